/* The one JSON rule that libdsipc and dsd both apply to event data. */
#include <check.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "check-run.h"
#include "json_check.h"

static bool ok(const char *s)
{
	char err[200] = "";
	bool r = json_check(s, strlen(s), err, sizeof(err));

	ck_assert(r || err[0] != '\0');
	return r;
}

/* json_check's verdict on len bytes, checked against the reference
 * (jansson, with the flags the rule names). */
static bool agree(const char *s, size_t len)
{
	char err[200] = "";
	bool fast = json_check(s, len, err, sizeof(err));
	json_t *v = json_loadb(s, len, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES,
	                       NULL);

	ck_assert_msg(fast == (v != NULL), "json_check %d, jansson %d: %.*s",
	              fast, v != NULL, (int)(len > 300 ? 300 : len), s);
	ck_assert(fast || err[0] != '\0');
	json_decref(v);
	return fast;
}

static bool ok2(const char *s)
{
	return agree(s, strlen(s));
}

/* open x "[" (or "{\"k\":"), then inner, then the closings. */
static char *nest(int n, bool objects, const char *inner)
{
	size_t open = objects ? 5 : 1, len = n * (open + 1) + strlen(inner);
	char *t = malloc(len + 1), *p = t;

	ck_assert_ptr_nonnull(t);
	for (int i = 0; i < n; i++) {
		memcpy(p, objects ? "{\"k\":" : "[", open);
		p += open;
	}
	p += sprintf(p, "%s", inner);
	for (int i = 0; i < n; i++)
		*p++ = objects ? '}' : ']';
	*p = '\0';
	return t;
}

START_TEST(test_depth)
{
	/* jansson counts values: 2048 deep at most, the scalar included */
	struct {
		int n;
		bool objects;
		const char *inner;
		bool valid;
	} v[] = {
	        {2048, false, "", true},  {2049, false, "", false},
	        {2047, false, "1", true}, {2048, false, "1", false},
	        {2047, true, "1", true},  {2048, true, "1", false},
	        {2047, true, "{}", true}, {2048, true, "[]", false},
	        {3000, false, "", false},
	};

	for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
		char *t = nest(v[i].n, v[i].objects, v[i].inner);

		ck_assert_msg(ok2(t) == v[i].valid, "case %zu", i);
		free(t);
	}
}
END_TEST

START_TEST(test_numbers)
{
	static const char *const valid[] = {
	        "0",
	        "-0",
	        "1",
	        "-1",
	        "0.5",
	        "-0.0e-0",
	        "1E5",
	        "1e+5",
	        "1e-5",
	        "9223372036854775807",
	        "-9223372036854775808",
	        "9223372036854775807.0",
	        "1e308",
	        "1.7976931348623157e308",
	        "1.7976931348623158e308",
	        "-1.7976931348623158e308",
	        "17976931348623158079372897140530341507993413271003782693617377"
	        "8"
	        "98044496829276475094664901797758720709633028641669288791094655"
	        "5"
	        "54785194040263065748867150582068190890200070838367627385484581"
	        "7"
	        "71153176447573027006985557136695962284291481986083493647529271"
	        "9"
	        "074168444365510704342711559699508093042880177904174497791.9",
	        "0.00000000001e318",
	        "1e-400",
	        "0e99999999999999999999",
	        "1e-99999999999999999999",
	        "[1,2.5,-3e2]",
	};
	static const char *const invalid[] = {
	        "01",
	        "-01",
	        "00",
	        "+1",
	        ".5",
	        "1.",
	        "1.e5",
	        "1e",
	        "1e+",
	        "-",
	        "--1",
	        "1x",
	        "0x10",
	        "NaN",
	        "Infinity",
	        "-Infinity",
	        "9223372036854775808",
	        "-9223372036854775809",
	        "99999999999999999999",
	        "1.7976931348623159e308",
	        "1e309",
	        "-1e309",
	        "10e308",
	        "17976931348623158079372897140530341507993413271003782693617377"
	        "8"
	        "98044496829276475094664901797758720709633028641669288791094655"
	        "5"
	        "54785194040263065748867150582068190890200070838367627385484581"
	        "7"
	        "71153176447573027006985557136695962284291481986083493647529271"
	        "9"
	        "074168444365510704342711559699508093042880177904174497792.0",
	        "1e99999999999999999999",
	        "[1,]",
	        "[01]",
	};

	for (size_t i = 0; i < sizeof(valid) / sizeof(valid[0]); i++)
		ck_assert_msg(ok2(valid[i]), "%s", valid[i]);
	for (size_t i = 0; i < sizeof(invalid) / sizeof(invalid[0]); i++)
		ck_assert_msg(!ok2(invalid[i]), "%s", invalid[i]);
}
END_TEST

START_TEST(test_strings)
{
	static const char *const valid[] = {
	        "\"\"",
	        "\"\\\"\\\\\\/\\b\\f\\n\\r\\t\"",
	        "\"\\u0041\\u00fc\\uFFFF\"",
	        "\"\\ud83d\\ude00\"",
	        "\"\\uD800\\uDC00\"",
	        "\"\xc3\xbc\xe2\x82\xac\xf0\x9f\x98\x80\"",
	        "\"\xef\xbf\xbf\xf4\x8f\xbf\xbf\"",
	        "\"\x7f\"",
	        "\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\xc3\xbc\"",
	};
	static const char *const invalid[] = {
	        "\"",
	        "\"abc",
	        "\"\\\"",
	        "\"\\x\"",
	        "\"\\u12\"",
	        "\"\\u12G4\"",
	        "\"\\u0000\"",
	        "{\"\\u0000\":1}",
	        "\"\\ud800\"",
	        "\"\\udc00\"",
	        "\"\\ud800\\u0041\"",
	        "\"\\ud800\\ud800\"",
	        "\"\\ud800\\n\"",
	        "\"\\ud800x\"",
	        "\"a\tb\"",
	        "\"a\nb\"",
	        "\"\xc0\xaf\"",
	        "\"\xc1\xbf\"",
	        "\"\xe0\x80\xaf\"",
	        "\"\xf0\x80\x80\xaf\"",
	        "\"\xed\xa0\x80\"",
	        "\"\xf4\x90\x80\x80\"",
	        "\"\xf5\x80\x80\x80\"",
	        "\"\xff\"",
	        "\"\x80\"",
	        "\"\xc3\"",
	        "\"\xe2\x82\"",
	        "\"aaaaaaaaaaaaaaaaaaaaaaaaaaa\xc3\"",
	        "'a'",
	        "\xc3\xbc",
	        "[\"a\" \"b\"]",
	};

	for (size_t i = 0; i < sizeof(valid) / sizeof(valid[0]); i++)
		ck_assert_msg(ok2(valid[i]), "%s", valid[i]);
	for (size_t i = 0; i < sizeof(invalid) / sizeof(invalid[0]); i++)
		ck_assert_msg(!ok2(invalid[i]), "%s", invalid[i]);
}
END_TEST

START_TEST(test_structure)
{
	static const char *const valid[] = {
	        " \t\r\n{ \"a\" : [ 1 , { } , [ ] ] } \n",
	        "true",
	        "false",
	        "null",
	        "[true,false,null]",
	        "{\"a\":{},\"b\":[]}",
	};
	static const char *const invalid[] = {
	        "",
	        " ",
	        "tru",
	        "truex",
	        "true1",
	        "nul",
	        "[true false]",
	        "[",
	        "]",
	        "{",
	        "}",
	        "{\"a\"}",
	        "{\"a\":}",
	        "{\"a\" 1}",
	        "{1:1}",
	        "{\"a\":1,}",
	        "[,1]",
	        "[1 2]",
	        "[1,,2]",
	        "{\"a\":1}}",
	        "[1]]",
	        "1 2",
	        "{} x",
	        "\f1",
	        "\v1",
	        "1\f",
	        "[1}",
	        "{\"a\":1]",
	};

	for (size_t i = 0; i < sizeof(valid) / sizeof(valid[0]); i++)
		ck_assert_msg(ok2(valid[i]), "%s", valid[i]);
	for (size_t i = 0; i < sizeof(invalid) / sizeof(invalid[0]); i++)
		ck_assert_msg(!ok2(invalid[i]), "%s", invalid[i]);
}
END_TEST

/* Keys beyond what the fast path tracks, and escaped keys, go to jansson:
 * the verdict must not change. */
START_TEST(test_many_and_escaped_keys)
{
	char *t = malloc(300 * 16 + 16), *p;

	ck_assert_ptr_nonnull(t);
	p = t;
	*p++ = '{';
	for (int i = 0; i < 300; i++)
		p += sprintf(p, "%s\"k%d\":%d", i ? "," : "", i, i);
	strcpy(p, "}");
	ck_assert(ok2(t));
	/* the same key again, last */
	strcpy(p, ",\"k7\":1}");
	ck_assert(!ok2(t));
	free(t);
	ck_assert(!ok2("{\"\\u0061\":1,\"a\":2}"));
	ck_assert(!ok2("{\"a\":1,\"\\u0061\":2}"));
	ck_assert(ok2("{\"\\u0061\":1,\"b\":2}"));
	ck_assert(ok2("{\"a\\\"\":1,\"a\\\\\":2}"));
	ck_assert(!ok2("{\"ab\":1,\"x\":{\"ab\":1,\"ab\":2}}"));
	ck_assert(ok2("{\"ab\":1,\"x\":{\"ab\":1},\"y\":{\"ab\":2}}"));
	ck_assert(!ok2("{\"ab\":1,\"x\":{\"cd\":1},\"ab\":2}"));
}
END_TEST

/* The one place json_check is stricter than jansson 2.14, which drops a
 * NUL byte right after a number or a literal. */
START_TEST(test_nul_bytes)
{
	char err[200];

	ck_assert(!json_check("3\0", 2, err, sizeof(err)));
	ck_assert(!json_check("[true\0]", 7, err, sizeof(err)));
	ck_assert(!json_check("\"a\0b\"", 5, err, sizeof(err)));
	ck_assert(!json_check("\0", 1, err, sizeof(err)));
}
END_TEST

START_TEST(test_values)
{
	ck_assert(ok("{\"a\":1}"));
	ck_assert(ok("[1,2,{\"b\":[null,true,false]}]"));
	ck_assert(ok("\"text\""));
	ck_assert(ok("42"));
	ck_assert(ok("null"));
	ck_assert(ok(" {\"a\" : \"\\u00fc\"} "));
	ck_assert(!ok(""));
	ck_assert(!ok("{"));
	ck_assert(!ok("{\"a\":1} x"));
	ck_assert(!ok("{'a':1}"));
	ck_assert(!ok("[1,]"));
}
END_TEST

START_TEST(test_duplicate_keys)
{
	char err[200];

	ck_assert(!ok("{\"a\":1,\"a\":2}"));
	ck_assert(!ok("[{\"x\":{\"k\":1,\"k\":1}}]"));
	ck_assert(ok("{\"a\":{\"a\":1}}")); /* same key, other object */
	ck_assert(!json_check("{\"a\":1,\"a\":2}", 13, err, sizeof(err)));
	ck_assert_ptr_nonnull(strstr(err, "duplicate"));
}
END_TEST

START_TEST(test_length_obeyed)
{
	char err[200];

	/* only len bytes count: a valid prefix is judged alone */
	ck_assert(json_check("[1][2]", 3, err, sizeof(err)));
	ck_assert(!json_check("{\"a\":1}", 5, err, sizeof(err)));
}
END_TEST

int main(void)
{
	Suite *s = suite_create("json_check");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, test_values);
	tcase_add_test(tc, test_duplicate_keys);
	tcase_add_test(tc, test_length_obeyed);
	tcase_add_test(tc, test_depth);
	tcase_add_test(tc, test_numbers);
	tcase_add_test(tc, test_strings);
	tcase_add_test(tc, test_structure);
	tcase_add_test(tc, test_many_and_escaped_keys);
	tcase_add_test(tc, test_nul_bytes);
	suite_add_tcase(s, tc);
	return check_run(s);
}

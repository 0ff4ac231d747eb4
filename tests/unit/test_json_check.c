/* The one JSON rule that libdsipc and dsd both apply to event data. */
#include <check.h>
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
	suite_add_tcase(s, tc);
	return check_run(s);
}

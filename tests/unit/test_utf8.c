/* The one UTF-8 check: every class of malformed input RFC 3629 excludes. */
#include <check.h>
#include <string.h>

#include "check-run.h"
#include "utf8.h"

static bool ok(const char *s)
{
	return utf8_valid(s, strlen(s));
}

START_TEST(test_valid)
{
	ck_assert(utf8_valid("", 0));
	ck_assert(ok("plain ascii"));
	ck_assert(ok("\xc2\x80"));         /* U+0080, first 2-byte */
	ck_assert(ok("\xdf\xbf"));         /* U+07FF */
	ck_assert(ok("\xe0\xa0\x80"));     /* U+0800, first 3-byte */
	ck_assert(ok("\xed\x9f\xbf"));     /* U+D7FF, below surrogates */
	ck_assert(ok("\xee\x80\x80"));     /* U+E000, above them */
	ck_assert(ok("\xef\xbf\xbf"));     /* U+FFFF */
	ck_assert(ok("\xf0\x90\x80\x80")); /* U+10000, first 4-byte */
	ck_assert(ok("\xf4\x8f\xbf\xbf")); /* U+10FFFF, the last */
	ck_assert(ok("gr\xc3\xbc\xc3\x9f \xe2\x82\xac \xf0\x9f\x98\x80"));
	ck_assert(utf8_valid("a\0b", 3)); /* NUL is the callers' business */
}
END_TEST

START_TEST(test_invalid)
{
	ck_assert(!ok("\x80")); /* lone continuation */
	ck_assert(!ok("\xbf"));
	ck_assert(!ok("\xc0\x80"));         /* overlong NUL */
	ck_assert(!ok("\xc1\xbf"));         /* overlong U+007F */
	ck_assert(!ok("\xe0\x9f\xbf"));     /* overlong U+07FF */
	ck_assert(!ok("\xf0\x8f\xbf\xbf")); /* overlong U+FFFF */
	ck_assert(!ok("\xed\xa0\x80"));     /* U+D800, a surrogate */
	ck_assert(!ok("\xed\xbf\xbf"));     /* U+DFFF */
	ck_assert(!ok("\xf4\x90\x80\x80")); /* U+110000 */
	ck_assert(!ok("\xf8\x88\x80\x80\x80"));
	ck_assert(!ok("\xfe"));
	ck_assert(!ok("\xff"));
	ck_assert(!ok("\xc3")); /* cut short */
	ck_assert(!ok("\xe2\x82"));
	ck_assert(!ok("\xf0\x9f\x98"));
	ck_assert(!ok("\xc3\x28")); /* a non-continuation inside */
	ck_assert(!ok("\xe2\x28\xa1"));
	ck_assert(!ok("ok so far \xe2\x82")); /* cut at the very end */
	/* the length is obeyed: a valid sequence cut by len is invalid */
	ck_assert(!utf8_valid("\xc3\xbc", 1));
}
END_TEST

int main(void)
{
	Suite *s = suite_create("utf8");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, test_valid);
	tcase_add_test(tc, test_invalid);
	suite_add_tcase(s, tc);
	return check_run(s);
}

/* [platform] proxy parsing: the forms accepted, the ones refused, and that
 * no reason ever quotes the credentials. */
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "check-run.h"
#include "proxy_url.h"

static void good(const char *s, const char *host, unsigned port,
                 const char *auth)
{
	struct proxy_url u;
	const char *why = NULL;

	ck_assert_msg(proxy_url_parse(s, &u, &why) == 0, "%s: %s", s, why);
	ck_assert_str_eq(u.host, host);
	ck_assert_uint_eq(u.port, port);
	ck_assert_int_eq(u.has_auth, auth != NULL);
	if (auth)
		ck_assert_str_eq(u.auth, auth);
}

static void bad(const char *s, const char *want)
{
	struct proxy_url u;
	const char *why = NULL;

	ck_assert_int_eq(proxy_url_parse(s, &u, &why), -EINVAL);
	ck_assert_ptr_nonnull(why);
	ck_assert_msg(strstr(why, want) != NULL, "%s: \"%s\"", s, why);
	ck_assert_ptr_null(strstr(why, "secret"));
}

START_TEST(test_forms)
{
	good("http://proxy.corp:3128", "proxy.corp", 3128, NULL);
	good("HTTP://10.0.0.1:8080/", "10.0.0.1", 8080, NULL);
	good("http://[::1]:3128", "::1", 3128, NULL);
	good("http://u:p@proxy:1", "proxy", 1, "u:p");
	/* No password still sends "user:". */
	good("http://u@proxy:1", "proxy", 1, "u:");
	/* Percent-encoded: '@', ':' and '%' in the password. */
	good("http://u:p%40s%3As%25@proxy:1", "proxy", 1, "u:p@s:s%");
	/* The last '@' ends the credentials. */
	good("http://u:a@b@proxy:1", "proxy", 1, "u:a@b");
}
END_TEST

START_TEST(test_refused)
{
	bad("https://proxy:3128", "scheme");
	bad("socks5://proxy:1080", "scheme");
	bad("http://proxy", "port is required");
	bad("http://[::1]", "port is required");
	bad("http://u:secret@proxy", "port is required");
	bad("http://proxy:0", "invalid port");
	bad("http://proxy:65536", "invalid port");
	bad("http://proxy:3128/path", "nothing may follow");
	bad("http://proxy:3128?x", "nothing may follow");
	bad("http://:secret@proxy:1", "empty proxy user name");
	bad("http://u%3Ax:secret@proxy:1", "':' in the proxy user name");
	bad("http://u:secret%0a@proxy:1", "control character");
	bad("http://u:secret%zz@proxy:1", "percent-encoding");
	bad("http://u:secret%4@proxy:1", "percent-encoding");
	bad("http://u:secret @proxy:1", "space");
	bad("http://pro xy:1", "space");
	bad("http://u:secret@:1", "empty host");
	bad("http://u:secret@pro!xy:1", "invalid character in host");
	bad(NULL, "no proxy");
}
END_TEST

START_TEST(test_auth_length)
{
	char s[256], pw[128];
	struct proxy_url u;

	/* "u:" + 93 = 95 bytes: the most lws takes. */
	memset(pw, 'x', 93);
	pw[93] = '\0';
	snprintf(s, sizeof(s), "http://u:%s@p:1", pw);
	ck_assert_int_eq(proxy_url_parse(s, &u, NULL), 0);
	ck_assert_uint_eq(strlen(u.auth), 95);
	pw[93] = 'x';
	pw[94] = '\0';
	snprintf(s, sizeof(s), "http://u:%s@p:1", pw);
	bad(s, "longer than 95 bytes");
}
END_TEST

START_TEST(test_show_and_clear)
{
	struct proxy_url u;
	char buf[64];

	ck_assert_int_eq(proxy_url_parse("http://u:pw@[::1]:3128", &u, NULL),
	                 0);
	ck_assert_str_eq(proxy_url_show(&u, buf, sizeof(buf)),
	                 "http://[::1]:3128");
	proxy_url_clear(&u);
	ck_assert(!u.has_auth);
	for (size_t i = 0; i < sizeof(u.auth); i++)
		ck_assert_int_eq(u.auth[i], 0);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("proxy_url");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, test_forms);
	tcase_add_test(tc, test_refused);
	tcase_add_test(tc, test_auth_length);
	tcase_add_test(tc, test_show_and_clear);
	suite_add_tcase(s, tc);
	return check_run(s);
}

/* Unit tests for url.c: every accepted form and every refusal. */
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check-run.h"
#include "url.h"

static void assert_ok(const char *s, bool tls, const char *host, unsigned port,
                      const char *path)
{
	struct url u;
	const char *why = NULL;

	ck_assert_msg(url_parse(s, &u, &why) == 0, "%s: %s", s, why);
	ck_assert_int_eq(u.tls, tls);
	ck_assert_str_eq(u.host, host);
	ck_assert_uint_eq(u.port, port);
	ck_assert_str_eq(u.path, path);
}

static void assert_bad(const char *s, const char *reason)
{
	struct url u;
	const char *why = NULL;

	memset(&u, 0xa5, sizeof(u));
	ck_assert_int_eq(url_parse(s, &u, &why), -EINVAL);
	ck_assert_ptr_nonnull(why);
	ck_assert_msg(strstr(why, reason) != NULL,
	              "%s: got \"%s\", want \"%s\"", s, why, reason);
	/* Untouched on failure. */
	ck_assert_uint_eq(((unsigned char *)&u)[0], 0xa5);
	ck_assert_uint_eq(u.port, 0xa5a5);
}

START_TEST(test_defaults)
{
	assert_ok("ws://example.com", false, "example.com", 80, "/deepstream");
	assert_ok("wss://example.com", true, "example.com", 443, "/deepstream");
	assert_ok("WSS://Example.COM", true, "Example.COM", 443, "/deepstream");
	/* An explicit "/" is a path and stays, as in the JS client. */
	assert_ok("ws://h/", false, "h", 80, "/");
}
END_TEST

START_TEST(test_port_and_path)
{
	assert_ok("ws://localhost:6020", false, "localhost", 6020,
	          "/deepstream");
	assert_ok("wss://a-b_c.d:1/x/y", true, "a-b_c.d", 1, "/x/y");
	assert_ok("ws://h:65535/deepstream?token=1", false, "h", 65535,
	          "/deepstream?token=1");
	assert_ok("ws://h?x=1", false, "h", 80, "/deepstream?x=1");
	assert_ok("ws://127.0.0.1:6020/", false, "127.0.0.1", 6020, "/");
}
END_TEST

START_TEST(test_ipv6)
{
	assert_ok("ws://[::1]", false, "::1", 80, "/deepstream");
	assert_ok("wss://[2001:db8::7]:8443/ds", true, "2001:db8::7", 8443,
	          "/ds");
	assert_bad("ws://[::1", "unterminated");
	assert_bad("ws://[]", "empty host");
	assert_bad("ws://[xyz]", "invalid IPv6");
	assert_bad("ws://[fe80::1%25eth0]", "invalid IPv6");
	assert_bad("ws://[::1]x", "junk after");
	assert_bad("ws://[::1]:", "empty port");
	assert_bad("ws://::1/", "empty host");
	assert_bad("ws://h::1/", "invalid port");
}
END_TEST

START_TEST(test_bad_scheme)
{
	assert_bad("http://h", "scheme");
	assert_bad("h:6020", "scheme");
	assert_bad("ws:/h", "scheme");
	assert_bad("", "scheme");
	assert_bad("wss:", "scheme");
}
END_TEST

START_TEST(test_bad_host_port)
{
	assert_bad("ws://", "empty host");
	assert_bad("ws:///deepstream", "empty host");
	assert_bad("ws://:80", "empty host");
	assert_bad("ws://h:", "empty port");
	assert_bad("ws://h:0", "invalid port");
	assert_bad("ws://h:65536", "invalid port");
	assert_bad("ws://h:123456", "invalid port");
	assert_bad("ws://h:8a", "invalid port");
	assert_bad("ws://h:-1", "invalid port");
	assert_bad("ws://h:80:81", "invalid port");
	assert_bad("ws://user@h", "user info");
	assert_bad("ws://user:pw@h:80/", "user info");
	assert_bad("ws://h%41", "invalid character in host");
	assert_bad("ws://h/x#frag", "fragment");
	assert_bad("ws://h#", "fragment");
}
END_TEST

START_TEST(test_bad_chars)
{
	assert_bad("ws://h/a b", "control");
	assert_bad("ws://h/a\tb", "control");
	assert_bad("ws://h/a\nb", "control");
	assert_bad("ws://h/a\x7f", "control");
	assert_bad("ws://h/\xc3\xa9", "non-ASCII");
	assert_bad(" ws://h", "control");
}
END_TEST

START_TEST(test_lengths)
{
	char s[2200], host[300];

	/* 255 host bytes fit, 256 do not. */
	memset(host, 'a', 255);
	host[255] = '\0';
	snprintf(s, sizeof(s), "ws://%s/", host);
	assert_ok(s, false, host, 80, "/");
	snprintf(s, sizeof(s), "ws://%sa/", host);
	assert_bad(s, "host too long");
	snprintf(s, sizeof(s), "ws://[%s]/", host);
	assert_bad(s, "invalid IPv6");
	memset(host, 'a', 256);
	host[256] = '\0';
	snprintf(s, sizeof(s), "ws://[%s]/", host);
	assert_bad(s, "host too long");

	/* 1023 path bytes fit, 1024 do not. */
	char path[1100];
	path[0] = '/';
	memset(path + 1, 'p', 1022);
	path[1023] = '\0';
	snprintf(s, sizeof(s), "ws://h%s", path);
	assert_ok(s, false, "h", 80, path);
	snprintf(s, sizeof(s), "ws://h%sp", path);
	assert_bad(s, "path too long");
	/* The default path counts when it is prefixed to a query. */
	memset(path, 'q', 1023 - 11);
	path[0] = '?';
	path[1023 - 11] = '\0';
	snprintf(s, sizeof(s), "ws://h%s", path);
	struct url u;
	ck_assert_int_eq(url_parse(s, &u, NULL), 0);
	ck_assert_uint_eq(strlen(u.path), 1023);
	snprintf(s, sizeof(s), "ws://h%sq", path);
	ck_assert_int_eq(url_parse(s, &u, NULL), -EINVAL);
}
END_TEST

START_TEST(test_null_and_no_error_ptr)
{
	struct url u;

	ck_assert_int_eq(url_parse(NULL, &u, NULL), -EINVAL);
	ck_assert_int_eq(url_parse("ftp://x", &u, NULL), -EINVAL);
}
END_TEST

START_TEST(test_format)
{
	static const char *const round[] = {
	        "ws://example.com/deepstream",
	        "wss://example.com/deepstream",
	        "ws://example.com:443/x?y=1",
	        "wss://example.com:80/",
	        "wss://[2001:db8::1]:8443/deepstream",
	        "ws://[::1]/deepstream",
	};
	char buf[1400];
	struct url u;

	for (size_t i = 0; i < sizeof(round) / sizeof(round[0]); i++) {
		ck_assert_int_eq(url_parse(round[i], &u, NULL), 0);
		ck_assert_str_eq(url_format(&u, buf, sizeof(buf)), round[i]);
	}
	ck_assert_int_eq(url_parse("wss://h:443", &u, NULL), 0);
	ck_assert_str_eq(url_format(&u, buf, sizeof(buf)),
	                 "wss://h/deepstream");
	/* Truncates, always terminated. */
	ck_assert_str_eq(url_format(&u, buf, 8), "wss://h");
	ck_assert_ptr_eq(url_format(&u, buf, 0), buf);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("url");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, test_defaults);
	tcase_add_test(tc, test_port_and_path);
	tcase_add_test(tc, test_ipv6);
	tcase_add_test(tc, test_bad_scheme);
	tcase_add_test(tc, test_bad_host_port);
	tcase_add_test(tc, test_bad_chars);
	tcase_add_test(tc, test_lengths);
	tcase_add_test(tc, test_null_and_no_error_ptr);
	tcase_add_test(tc, test_format);
	suite_add_tcase(s, tc);
	return check_run(s);
}

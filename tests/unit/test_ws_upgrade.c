/* The WebSocket opening handshake as dsd speaks it (ws_upgrade.c) and the
 * SHA-1 under it (sha1.c): published vectors and every kind of answer. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check-run.h"
#include "sha1.h"
#include "url.h"
#include "ws_upgrade.h"

static void hex(const uint8_t *d, char *out)
{
	for (int i = 0; i < SHA1_DIGEST_SIZE; i++)
		sprintf(out + 2 * i, "%02x", d[i]);
}

/* FIPS 180 examples, and lengths around the padding's block boundary. */
START_TEST(test_sha1_vectors)
{
	static const char *b56 =
	        "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
	uint8_t d[SHA1_DIGEST_SIZE];
	char h[41];
	char *million = malloc(1000000);

	ck_assert_ptr_nonnull(million);
	sha1("abc", 3, d);
	hex(d, h);
	ck_assert_str_eq(h, "a9993e364706816aba3e25717850c26c9cd0d89d");
	sha1("", 0, d);
	hex(d, h);
	ck_assert_str_eq(h, "da39a3ee5e6b4b0d3255bfef95601890afd80709");
	sha1(b56, strlen(b56), d);
	hex(d, h);
	ck_assert_str_eq(h, "84983e441c3bd26ebaae4aa1f95129e5e54670f1");
	memset(million, 'a', 1000000);
	sha1(million, 1000000, d);
	hex(d, h);
	ck_assert_str_eq(h, "34aa973cd4c4daa4f61eeb2bdbad27316534016f");
	free(million);
}
END_TEST

/* RFC 6455, section 1.3: the example key and its accept value. */
START_TEST(test_accept_of_the_rfc_example)
{
	static const uint8_t nonce[16] = "the sample nonce";
	char key[WS_KEY_SIZE], accept[WS_ACCEPT_SIZE];

	ws_upgrade_key(nonce, key);
	ck_assert_str_eq(key, "dGhlIHNhbXBsZSBub25jZQ==");
	ws_upgrade_accept(key, accept);
	ck_assert_str_eq(accept, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
}
END_TEST

START_TEST(test_request)
{
	char buf[512];
	int n;

	n = ws_upgrade_request(buf, sizeof(buf), "127.0.0.1", 6020, false,
	                       "/deepstream", "KEY");
	ck_assert_int_eq(n, (int)strlen(buf));
	ck_assert_str_eq(buf, "GET /deepstream HTTP/1.1\r\n"
	                      "Host: 127.0.0.1:6020\r\n"
	                      "Upgrade: websocket\r\n"
	                      "Connection: Upgrade\r\n"
	                      "Sec-WebSocket-Key: KEY\r\n"
	                      "Sec-WebSocket-Version: 13\r\n"
	                      "\r\n");
	/* The default port is not named; an IPv6 literal is bracketed. */
	ws_upgrade_request(buf, sizeof(buf), "example.org", 80, false, "/ds",
	                   "K");
	ck_assert_ptr_nonnull(strstr(buf, "\r\nHost: example.org\r\n"));
	ws_upgrade_request(buf, sizeof(buf), "::1", 6020, false, "", "K");
	ck_assert_ptr_nonnull(strstr(buf, "GET / HTTP/1.1\r\n"));
	ck_assert_ptr_nonnull(strstr(buf, "\r\nHost: [::1]:6020\r\n"));
	ck_assert_int_eq(ws_upgrade_request(buf, 20, "h", 1, false, "/", "K"),
	                 -ENOSPC);
}
END_TEST

/* The request for the longest URL url_parse() accepts (a 255-character
 * host, the highest port, a 1,023-character path) fits WS_REQUEST_MAX, the
 * buffer dsd writes it into: no URL it takes can fail to connect for it. */
START_TEST(test_longest_url_fits)
{
	char text[1400], host[256], path[1024], buf[WS_REQUEST_MAX];
	struct url u;
	int n;

	memset(host, 'h', 255);
	for (int i = 63; i < 255; i += 64)
		host[i] = '.';
	host[255] = '\0';
	path[0] = '/';
	memset(path + 1, 'p', 1022);
	path[1023] = '\0';
	snprintf(text, sizeof(text), "ws://%s:65535%s", host, path);
	ck_assert_int_eq(url_parse(text, &u, NULL), 0);
	ck_assert_uint_eq(strlen(u.host), sizeof(u.host) - 1);
	ck_assert_uint_eq(strlen(u.path), sizeof(u.path) - 1);
	n = ws_upgrade_request(buf, sizeof(buf), u.host, u.port, u.tls, u.path,
	                       "dGhlIHNhbXBsZSBub25jZQ==");
	ck_assert_int_gt(n, 0);
	/* And with the brackets of an IPv6 literal as long as the host. */
	host[1] = ':';
	n = ws_upgrade_request(buf, sizeof(buf), host, 65535, false, u.path,
	                       "dGhlIHNhbXBsZSBub25jZQ==");
	ck_assert_int_gt(n, 0);
}
END_TEST

#define ACCEPT "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="

static int answer(const char *text, char *why)
{
	return ws_upgrade_answer(text, strlen(text), ACCEPT, why, 200);
}

START_TEST(test_good_answer)
{
	static const char head[] = "HTTP/1.1 101 Switching Protocols\r\n"
	                           "upgrade: WebSocket\r\n"
	                           "Connection: keep-alive, Upgrade\r\n"
	                           "Sec-WebSocket-Accept: " ACCEPT "\r\n"
	                           "\r\n";
	char buf[256], why[200] = "";
	size_t n = strlen(head);

	/* The frames after the head are not part of it. */
	snprintf(buf, sizeof(buf), "%s\x82\x01x", head);
	ck_assert_int_eq(answer(buf, why), (int)n);
	/* Not whole yet, at every length short of the empty line. */
	for (size_t i = 0; i < n; i++)
		ck_assert_int_eq(ws_upgrade_answer(head, i, ACCEPT, why, 200),
		                 0);
	/* Bare LF line ends are taken too. */
	ck_assert_int_gt(answer("HTTP/1.1 101 OK\nUpgrade: websocket\n"
	                        "Connection: upgrade\n"
	                        "Sec-WebSocket-Accept: " ACCEPT "\n\n",
	                        why),
	                 0);
}
END_TEST

START_TEST(test_bad_answers)
{
	char why[200] = "", *big;

	ck_assert_int_eq(answer("HTTP/1.1 400 Bad Request\r\n\r\n", why),
	                 -EPROTO);
	ck_assert_str_eq(why,
	                 "HTTP 400 instead of 101 to the WebSocket upgrade");
	ck_assert_int_eq(answer("HTTP/1.1 302 Found\r\nLocation: "
	                        "ws://elsewhere:1/x\x01\r\n\r\n",
	                        why),
	                 -EPROTO);
	ck_assert_str_eq(why, "HTTP 302 redirect to \"ws://elsewhere:1/x?\" at "
	                      "the WebSocket upgrade, not followed");
	ck_assert_int_eq(answer("SSH-2.0-OpenSSH_9.2\r\n\r\n", why), -EPROTO);
	ck_assert_ptr_nonnull(strstr(why, "not an HTTP answer"));
	ck_assert_int_eq(answer("HTTP/1.1 101 OK\r\nConnection: Upgrade\r\n"
	                        "Sec-WebSocket-Accept: " ACCEPT "\r\n\r\n",
	                        why),
	                 -EPROTO);
	ck_assert_ptr_nonnull(strstr(why, "Upgrade: websocket"));
	ck_assert_int_eq(answer("HTTP/1.1 101 OK\r\nUpgrade: websocket\r\n"
	                        "Sec-WebSocket-Accept: " ACCEPT "\r\n\r\n",
	                        why),
	                 -EPROTO);
	ck_assert_ptr_nonnull(strstr(why, "Connection: Upgrade"));
	ck_assert_int_eq(answer("HTTP/1.1 101 OK\r\nUpgrade: websocket\r\n"
	                        "Connection: Upgrade\r\n"
	                        "Sec-WebSocket-Accept: x" ACCEPT "\r\n\r\n",
	                        why),
	                 -EPROTO);
	ck_assert_ptr_nonnull(strstr(why, "Sec-WebSocket-Accept"));
	ck_assert_int_eq(answer("HTTP/1.1 101 OK\r\nUpgrade: websocket\r\n"
	                        "Connection: Upgrade\r\n\r\n",
	                        why),
	                 -EPROTO);
	ck_assert_int_eq(
	        answer("HTTP/1.1 101 OK\r\nUpgrade: websocket\r\n"
	               "Connection: Upgrade\r\n"
	               "Sec-WebSocket-Accept: " ACCEPT "\r\n"
	               "Sec-WebSocket-Extensions: permessage-deflate\r\n"
	               "\r\n",
	               why),
	        -EPROTO);
	ck_assert_ptr_nonnull(strstr(why, "extension"));

	/* A head that never ends is refused once it passes the bound. */
	big = malloc(WS_ANSWER_MAX);
	ck_assert_ptr_nonnull(big);
	memcpy(big, "HTTP/1.1 101 OK\r\n", 17);
	memset(big + 17, 'x', WS_ANSWER_MAX - 17);
	ck_assert_int_eq(ws_upgrade_answer(big, WS_ANSWER_MAX - 1, ACCEPT, why,
	                                   sizeof(why)),
	                 0);
	ck_assert_int_eq(
	        ws_upgrade_answer(big, WS_ANSWER_MAX, ACCEPT, why, sizeof(why)),
	        -EMSGSIZE);
	free(big);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("ws_upgrade");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, test_sha1_vectors);
	tcase_add_test(tc, test_accept_of_the_rfc_example);
	tcase_add_test(tc, test_request);
	tcase_add_test(tc, test_longest_url_fits);
	tcase_add_test(tc, test_good_answer);
	tcase_add_test(tc, test_bad_answers);
	suite_add_tcase(s, tc);
	return check_run(s);
}

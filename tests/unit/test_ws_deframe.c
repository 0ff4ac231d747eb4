/* Reading a server's WebSocket frames (ws_deframe.c): the same callbacks
 * whatever pieces the bytes come in, no copy for a frame that came whole,
 * and every frame a server may not send refused with the right code. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check-run.h"
#include "ws_deframe.h"

/* A server frame (unmasked) with any header bits. */
static size_t frame(uint8_t *out, uint8_t b0, const void *payload, size_t len)
{
	size_t h;

	out[0] = b0;
	if (len < 126) {
		out[1] = (uint8_t)len;
		h = 2;
	} else if (len <= 0xffff) {
		out[1] = 126;
		out[2] = (uint8_t)(len >> 8);
		out[3] = (uint8_t)len;
		h = 4;
	} else {
		out[1] = 127;
		for (int k = 0; k < 8; k++)
			out[2 + k] = (uint8_t)((uint64_t)len >> (56 - 8 * k));
		h = 10;
	}
	if (len)
		memcpy(out + h, payload, len);
	return h + len;
}

/* What the callbacks saw, as a log: one line per call, "what:len:sum". */
struct seen {
	char log[4096];
	const uint8_t *in, *in_end; /* the piece being fed */
	int copies_avoided;
	int stop_at; /* return non-zero on this call (1-based), 0: never */
	int calls;
};

static int record(void *ctx, enum ws_what what, const uint8_t *data, size_t len)
{
	struct seen *s = ctx;
	unsigned sum = 0;
	size_t n = strlen(s->log);

	for (size_t i = 0; i < len; i++)
		sum = sum * 31 + data[i];
	snprintf(s->log + n, sizeof(s->log) - n, "%d:%zu:%u\n", (int)what, len,
	         sum);
	if (len && data >= s->in && data + len <= s->in_end)
		s->copies_avoided++;
	s->calls++;
	return s->calls == s->stop_at ? 7 : 0;
}

/* Feeds buf in pieces of step bytes (0: whole). */
static int feed(struct ws_deframe *d, struct seen *s, const uint8_t *buf,
                size_t len, size_t step)
{
	size_t off = 0;
	int r = 0;

	if (!step)
		step = len;
	while (off < len && r == 0) {
		size_t n = len - off < step ? len - off : step;

		s->in = buf + off;
		s->in_end = buf + off + n;
		r = ws_deframe_feed(d, buf + off, n, record, s);
		off += n;
	}
	return r;
}

/* A stream with every kind of frame: small, 16-bit and 64-bit lengths, a
 * fragmented message with a PING between its pieces, empty messages, a
 * PONG and a close. */
static size_t stream(uint8_t *buf, uint8_t *big, size_t big_len)
{
	size_t n = 0;

	n += frame(buf + n, 0x82, "hello", 5);
	n += frame(buf + n, 0x82, big, 200);
	n += frame(buf + n, 0x82, big, big_len);
	n += frame(buf + n, 0x81, "", 0);
	n += frame(buf + n, 0x02, "frag", 4);
	n += frame(buf + n, 0x89, "ping!", 5);
	n += frame(buf + n, 0x00, "ment", 4);
	n += frame(buf + n, 0x80, "ed", 2);
	n += frame(buf + n, 0x02, "", 0);
	n += frame(buf + n, 0x80, "x", 1);
	n += frame(buf + n, 0x8a, "", 0);
	n += frame(buf + n, 0x88, "\x03\xe8", 2);
	return n;
}

START_TEST(test_any_split_gives_the_same_messages)
{
	size_t big_len = 70000, n;
	uint8_t *big = malloc(big_len), *buf = malloc(big_len + 1024);
	struct ws_deframe d;
	struct seen whole = {0};
	static const size_t steps[] = {1, 2, 3, 7, 13, 125, 4096};

	ck_assert_ptr_nonnull(big);
	ck_assert_ptr_nonnull(buf);
	for (size_t i = 0; i < big_len; i++)
		big[i] = (uint8_t)(i * 13 + 1);
	n = stream(buf, big, big_len);

	ws_deframe_init(&d, 100000);
	ck_assert_int_eq(feed(&d, &whole, buf, n, 0), 0);
	ws_deframe_free(&d);
	/* 9 callbacks: 6 messages, the PING, the PONG, the close. */
	ck_assert_int_eq(whole.calls, 9);
	ck_assert_ptr_nonnull(strstr(whole.log, "0:10:")); /* "fragmented" */
	ck_assert_ptr_nonnull(strstr(whole.log, "1:5:"));  /* the PING */
	ck_assert_ptr_nonnull(strstr(whole.log, "3:2:"));  /* the close */
	/* Fed whole, what came in one piece is handed on where it lies: the
	 * three unfragmented messages with bytes, the PING, the close, and
	 * "x", whose message's first fragment was empty.  Only "fragmented"
	 * is put together. */
	ck_assert_int_eq(whole.copies_avoided, 6);

	for (size_t k = 0; k < sizeof(steps) / sizeof(steps[0]); k++) {
		struct seen s = {0};

		ws_deframe_init(&d, 100000);
		ck_assert_int_eq(feed(&d, &s, buf, n, steps[k]), 0);
		ws_deframe_free(&d);
		ck_assert_str_eq(s.log, whole.log);
	}
	/* And split at every single point of the small frames' part. */
	for (size_t cut = 1; cut < 300; cut++) {
		struct seen s = {0};

		n = stream(buf, big, 10);
		ws_deframe_init(&d, 100000);
		s.in = buf;
		s.in_end = buf + n;
		ck_assert_int_eq(
		        ws_deframe_feed(&d, buf, cut < n ? cut : n, record, &s),
		        0);
		if (cut < n)
			ck_assert_int_eq(ws_deframe_feed(&d, buf + cut, n - cut,
			                                 record, &s),
			                 0);
		ws_deframe_free(&d);
		ck_assert_int_eq(s.calls, 9);
	}
	free(big);
	free(buf);
}
END_TEST

/* The close codes a server may send, with a reason or without, and a
 * close frame without any. */
START_TEST(test_close_codes_accepted)
{
	static const unsigned good[] = {1000, 1001, 1002, 1003, 1007,
	                                1008, 1009, 1010, 1011, 1012,
	                                1013, 1014, 3000, 4000, 4999};
	uint8_t buf[64], payload[8];
	size_t n;

	for (size_t k = 0; k < sizeof(good) / sizeof(good[0]); k++) {
		struct ws_deframe d;
		struct seen s = {0};

		payload[0] = (uint8_t)(good[k] >> 8);
		payload[1] = (uint8_t)good[k];
		memcpy(payload + 2, "bye", 3);
		n = frame(buf, 0x88, payload, k % 2 ? 5 : 2);
		n += frame(buf + n, 0x88, "", 0);
		ws_deframe_init(&d, 1000);
		ck_assert_int_eq(feed(&d, &s, buf, n, k % 3), 0);
		ck_assert_int_eq(s.calls, 2);
		ws_deframe_free(&d);
	}
}
END_TEST

/* A message whose first fragment is empty, read by a fresh reader (no
 * buffer yet): nothing is appended to a buffer that does not exist (UB
 * that UBSan reports, and tools/test halts on). */
START_TEST(test_empty_first_fragment)
{
	static const size_t steps[] = {0, 1};
	uint8_t buf[16];
	size_t n = 0;

	n += frame(buf + n, 0x02, "", 0);
	n += frame(buf + n, 0x00, "", 0);
	n += frame(buf + n, 0x80, "x", 1);
	for (size_t k = 0; k < 2; k++) {
		struct ws_deframe d;
		struct seen s = {0};

		ws_deframe_init(&d, 1000);
		ck_assert_int_eq(feed(&d, &s, buf, n, steps[k]), 0);
		ck_assert_int_eq(s.calls, 1);
		ck_assert_ptr_nonnull(strstr(s.log, "0:1:120\n"));
		ws_deframe_free(&d);
	}
}
END_TEST

/* A callback's non-zero answer stops the reading and is returned. */
START_TEST(test_callback_stops)
{
	uint8_t buf[64];
	size_t n = 0;
	struct ws_deframe d;
	struct seen s = {.stop_at = 2};

	n += frame(buf + n, 0x82, "a", 1);
	n += frame(buf + n, 0x88, "\x03\xe8", 2);
	n += frame(buf + n, 0x82, "b", 1);
	ws_deframe_init(&d, 1000);
	ck_assert_int_eq(feed(&d, &s, buf, n, 0), 7);
	ck_assert_int_eq(s.calls, 2);
	ws_deframe_free(&d);
}
END_TEST

/* Feeds one bad stream and checks the error and the close code. */
static void refused(const uint8_t *buf, size_t n, size_t max, int err,
                    unsigned code)
{
	struct ws_deframe d;
	struct seen s = {0};

	ws_deframe_init(&d, max);
	ck_assert_int_eq(feed(&d, &s, buf, n, 0), err);
	ck_assert_uint_eq(d.close_code, code);
	ck_assert(d.why[0] != '\0');
	ws_deframe_free(&d);
	/* The same byte by byte. */
	ws_deframe_init(&d, max);
	memset(&s, 0, sizeof(s));
	ck_assert_int_eq(feed(&d, &s, buf, n, 1), err);
	ws_deframe_free(&d);
}

START_TEST(test_frames_a_server_may_not_send)
{
	uint8_t buf[300], big[200] = {0};
	size_t n;

	/* Masked. */
	n = frame(buf, 0x82, "abcd", 4);
	buf[1] |= 0x80;
	refused(buf, n, 1000, -EPROTO, 1002);
	/* Reserved bits (no extension was agreed). */
	n = frame(buf, 0xc2, "a", 1);
	refused(buf, n, 1000, -EPROTO, 1002);
	/* Unknown opcodes. */
	n = frame(buf, 0x83, "a", 1);
	refused(buf, n, 1000, -EPROTO, 1002);
	n = frame(buf, 0x8b, "a", 1);
	refused(buf, n, 1000, -EPROTO, 1002);
	/* A fragmented control frame, an over-long one. */
	n = frame(buf, 0x09, "a", 1);
	refused(buf, n, 1000, -EPROTO, 1002);
	n = frame(buf, 0x89, big, 126);
	refused(buf, n, 1000, -EPROTO, 1002);
	/* A continuation without a message; a new message inside one. */
	n = frame(buf, 0x80, "a", 1);
	refused(buf, n, 1000, -EPROTO, 1002);
	n = frame(buf, 0x02, "a", 1);
	n += frame(buf + n, 0x82, "b", 1);
	refused(buf, n, 1000, -EPROTO, 1002);
	/* A close frame with one byte of payload, or a code no endpoint may
	 * send (RFC 6455, 7.4): 1005, 1006 and 1015 only stand for a missing
	 * or unseen close, others are unassigned. */
	n = frame(buf, 0x88, "\x03", 1);
	refused(buf, n, 1000, -EPROTO, 1002);
	{
		static const unsigned bad[] = {0,    999,  1004, 1005, 1006,
		                               1015, 1016, 2999, 5000, 65535};

		for (size_t k = 0; k < sizeof(bad) / sizeof(bad[0]); k++) {
			uint8_t code[2] = {(uint8_t)(bad[k] >> 8),
			                   (uint8_t)bad[k]};

			n = frame(buf, 0x88, code, 2);
			refused(buf, n, 1000, -EPROTO, 1002);
		}
	}
	/* A 64-bit length with its top bit set. */
	buf[0] = 0x82;
	buf[1] = 127;
	memset(buf + 2, 0, 8);
	buf[2] = 0x80;
	refused(buf, 10, 1000, -EPROTO, 1002);
	/* Too big: one frame, and the pieces of one message together. */
	n = frame(buf, 0x82, big, 101);
	refused(buf, n, 100, -EMSGSIZE, 1009);
	n = frame(buf, 0x02, big, 60);
	n += frame(buf + n, 0x80, big, 41);
	refused(buf, n, 100, -EMSGSIZE, 1009);
	/* Exactly the bound is fine. */
	{
		struct ws_deframe d;
		struct seen s = {0};

		n = frame(buf, 0x02, big, 60);
		n += frame(buf + n, 0x80, big, 40);
		ws_deframe_init(&d, 100);
		ck_assert_int_eq(feed(&d, &s, buf, n, 3), 0);
		ck_assert_int_eq(s.calls, 1);
		ck_assert_ptr_nonnull(strstr(s.log, "0:100:"));
		ws_deframe_free(&d);
	}
}
END_TEST

/* After an error the reader is spent: what comes next (here the payload of
 * the message that was too big, which may look like anything, a close
 * frame with another code for one) is not read as frames, and every feed
 * keeps returning the error. */
START_TEST(test_spent_after_an_error)
{
	uint8_t buf[64];
	size_t n;
	struct ws_deframe d;
	struct seen s = {0};

	/* A header announcing 200 bytes against a bound of 100. */
	buf[0] = 0x82;
	buf[1] = 126;
	buf[2] = 0;
	buf[3] = 200;
	n = 4;
	ws_deframe_init(&d, 100);
	ck_assert_int_eq(feed(&d, &s, buf, n, 0), -EMSGSIZE);
	ck_assert_uint_eq(d.close_code, 1009);
	/* Its payload starts with what looks like a close frame (4001) and a
	 * PING. */
	n = frame(buf, 0x88, "\x0f\xa1", 2);
	n += frame(buf + n, 0x89, "p", 1);
	ck_assert_int_eq(feed(&d, &s, buf, n, 0), -EMSGSIZE);
	ck_assert_int_eq(s.calls, 0);
	ck_assert_uint_eq(d.close_code, 1009);
	ws_deframe_free(&d);

	/* The same after a protocol error (a masked frame), byte by byte. */
	memset(&s, 0, sizeof(s));
	n = frame(buf, 0x82, "abcd", 4);
	buf[1] |= 0x80;
	ws_deframe_init(&d, 100);
	ck_assert_int_eq(feed(&d, &s, buf, n, 1), -EPROTO);
	n = frame(buf, 0x82, "ok", 2);
	ck_assert_int_eq(feed(&d, &s, buf, n, 1), -EPROTO);
	ck_assert_int_eq(s.calls, 0);
	ck_assert_uint_eq(d.close_code, 1002);
	ws_deframe_free(&d);
}
END_TEST

/* The close frame as the log and the status say it. */
START_TEST(test_close_text)
{
	char buf[200];

	ws_close_text(buf, sizeof(buf),
	              (const uint8_t *)"\x0f\xa0"
	                               "bye",
	              5);
	ck_assert_str_eq(buf, "closed by server (code 4000, \"bye\")");
	ws_close_text(buf, sizeof(buf), (const uint8_t *)"\x03\xe8", 2);
	ck_assert_str_eq(buf, "closed by server (code 1000)");
	ws_close_text(buf, sizeof(buf), NULL, 0);
	ck_assert_str_eq(buf, "closed by server (code 1005)");
	/* Untrusted text: printable ASCII only. */
	ws_close_text(buf, sizeof(buf),
	              (const uint8_t *)"\x03\xe8"
	                               "a\nb\xff",
	              6);
	ck_assert_str_eq(buf, "closed by server (code 1000, \"a?b?\")");
}
END_TEST

int main(void)
{
	Suite *s = suite_create("ws_deframe");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, test_any_split_gives_the_same_messages);
	tcase_add_test(tc, test_callback_stops);
	tcase_add_test(tc, test_close_text);
	tcase_add_test(tc, test_empty_first_fragment);
	tcase_add_test(tc, test_close_codes_accepted);
	tcase_add_test(tc, test_frames_a_server_may_not_send);
	tcase_add_test(tc, test_spent_after_an_error);
	suite_add_tcase(s, tc);
	return check_run(s);
}

/*
 * Tests for wire.c: byte-exact vectors captured from a live deepstream 7.0.2
 * server (tests/wire/vectors.txt, plus the server answers listed in
 * docs/deepstream-protocol.md, section 10), round trips, and malformed input
 * that must be rejected without crashing.
 */
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check-run.h"
#include "wire.h"

/* 24 'a's: the other field's text, of any length up to 24, ends here. */
static const char A24[] = "aaaaaaaaaaaaaaaaaaaaaaaa";

#define MAX_FRAME 65536

/* Parses "3f 10 02 ..." into out; returns the byte count. */
static size_t unhex(const char *s, uint8_t *out, size_t cap)
{
	size_t n = 0;

	while (*s) {
		unsigned v;
		int used;

		if (*s == ' ') {
			s++;
			continue;
		}
		ck_assert_int_eq(sscanf(s, "%2x%n", &v, &used), 1);
		ck_assert_int_eq(used, 2);
		ck_assert_uint_lt(n, cap);
		out[n++] = (uint8_t)v;
		s += used;
	}
	return n;
}

static void assert_str_eq_or_null(const char *what, const char *got,
                                  const char *want)
{
	if (!want) {
		ck_assert_msg(got == NULL, "%s: expected absent, got \"%s\"",
		              what, got);
		return;
	}
	ck_assert_msg(got != NULL, "%s: expected \"%s\", got absent", what,
	              want);
	ck_assert_msg(strcmp(got, want) == 0, "%s: expected \"%s\", got \"%s\"",
	              what, want, got);
}

/* Compares every field of the view, absent ones included. */
static void assert_msg_eq(const struct wire_msg *got,
                          const struct wire_msg *want)
{
	size_t i;

	ck_assert_int_eq(got->topic, want->topic);
	ck_assert_int_eq(got->action, want->action);
	assert_str_eq_or_null("data", got->data, want->data);
	assert_str_eq_or_null("name", got->name, want->name);
	assert_str_eq_or_null("correlation_id", got->correlation_id,
	                      want->correlation_id);
	assert_str_eq_or_null("url", got->url, want->url);
	assert_str_eq_or_null("protocol_version", got->protocol_version,
	                      want->protocol_version);
	assert_str_eq_or_null("sdk_version", got->sdk_version,
	                      want->sdk_version);
	assert_str_eq_or_null("sdk_type", got->sdk_type, want->sdk_type);
	ck_assert_uint_eq(got->n_names, want->n_names);
	if (want->n_names == 0)
		ck_assert_ptr_null(got->names);
	for (i = 0; i < want->n_names; i++)
		assert_str_eq_or_null("names[]", got->names[i], want->names[i]);
	ck_assert_int_eq(got->has_is_ack, want->has_is_ack);
	ck_assert_int_eq(got->is_ack, want->is_ack);
	ck_assert_int_eq(got->has_is_error, want->has_is_error);
	ck_assert_int_eq(got->is_error, want->is_error);
	ck_assert_int_eq(got->has_original_action, want->has_original_action);
	ck_assert_int_eq(got->original_action, want->original_action);
}

static struct wire_scratch scratch;

/* The decoders give the lengths of data and name with them. */
static void assert_lengths(const struct wire_msg *got)
{
	ck_assert_uint_eq(got->data_len, got->data ? strlen(got->data) : 0);
	ck_assert_uint_eq(got->name_len, got->name ? strlen(got->name) : 0);
}

static void assert_decodes_to(const uint8_t *buf, size_t len,
                              const struct wire_msg *want)
{
	struct wire_decoded *d = NULL;

	ck_assert_int_eq(wire_decode(buf, len, &d), 0);
	ck_assert_ptr_nonnull(d);
	assert_msg_eq(wire_decoded_msg(d), want);
	assert_lengths(wire_decoded_msg(d));
	wire_decoded_free(d);
	/* The same in the caller's scratch (freeing it must not free()). */
	d = NULL;
	ck_assert_int_eq(wire_decode_in(buf, len, &scratch, &d), 0);
	ck_assert_ptr_nonnull(d);
	assert_msg_eq(wire_decoded_msg(d), want);
	assert_lengths(wire_decoded_msg(d));
	wire_decoded_free(d);
}

static void assert_rejected(const uint8_t *buf, size_t len)
{
	struct wire_decoded *d = (struct wire_decoded *)0x1;

	ck_assert_int_eq(wire_decode(buf, len, &d), -EBADMSG);
	/* ret_* is left alone on failure */
	ck_assert_ptr_eq(d, (struct wire_decoded *)0x1);
	ck_assert_int_eq(wire_decode_in(buf, len, &scratch, &d), -EBADMSG);
	ck_assert_ptr_eq(d, (struct wire_decoded *)0x1);
}

static void assert_hex_rejected(const char *hex)
{
	uint8_t buf[256];
	size_t n = unhex(hex, buf, sizeof(buf));

	assert_rejected(buf, n);
}

/* Encodes m and checks the result against hex, byte for byte. */
static void assert_encodes_to(const struct wire_msg *m, const char *hex)
{
	uint8_t want[512], got[512];
	size_t nwant = unhex(hex, want, sizeof(want));
	size_t ngot = 0, size = 0;

	ck_assert_int_eq(wire_encoded_size(m, &size), 0);
	ck_assert_uint_eq(size, nwant);
	ck_assert_int_eq(wire_encode(m, got, sizeof(got), &ngot), 0);
	ck_assert_uint_eq(ngot, nwant);
	ck_assert_mem_eq(got, want, nwant);
	/* and the vector decodes back to the same message */
	assert_decodes_to(want, nwant, m);
}

static const char *const news_sport[] = {"news/sport"};

/* Client-to-server frames: our encoder must produce the server's bytes. */
static const struct enc_vector {
	const char *what;
	struct wire_msg m;
	const char *hex;
} enc_vectors[] = {
        {"CHALLENGE full",
         {.topic = WIRE_TOPIC_CONNECTION,
          .action = WIRE_CONN_CHALLENGE,
          .url = "ws://127.0.0.1:6020/deepstream",
          .protocol_version = "0.1a",
          .sdk_version = "7.0.5",
          .sdk_type = "javascript"},
         "3f 10 02 1a 3b 08 05 2a 1e 77 73 3a 2f 2f 31 32 37 2e 30 2e 30 2e 31 "
         "3a 36 30 32 30 2f 64 65 65 70 73 74 72 65 61 6d 32 04 30 2e 31 61 3a "
         "05 37 2e 30 2e 35 42 0a 6a 61 76 61 73 63 72 69 70 74"},
        {"CHALLENGE minimal",
         {.topic = WIRE_TOPIC_CONNECTION, .action = WIRE_CONN_CHALLENGE},
         "06 10 02 1a 02 08 05"},
        {"AUTH REQUEST alice",
         {.topic = WIRE_TOPIC_AUTH,
          .action = WIRE_AUTH_REQUEST,
          .data = "{\"username\":\"alice\"}"},
         "1c 10 03 1a 18 08 02 12 14 7b 22 75 73 65 72 6e 61 6d 65 22 3a 22 61 "
         "6c 69 63 65 22 7d"},
        {"AUTH REQUEST {}",
         {.topic = WIRE_TOPIC_AUTH, .action = WIRE_AUTH_REQUEST, .data = "{}"},
         "0a 10 03 1a 06 08 02 12 02 7b 7d"},
        {"PING",
         {.topic = WIRE_TOPIC_CONNECTION, .action = WIRE_CONN_PING},
         "06 10 02 1a 02 08 02"},
        {"EVENT SUBSCRIBE",
         {.topic = WIRE_TOPIC_EVENT,
          .action = WIRE_EVENT_SUBSCRIBE,
          .correlation_id = "0",
          .names = news_sport,
          .n_names = 1},
         "15 10 04 1a 11 08 03 1a 01 30 3a 0a 6e 65 77 73 2f 73 70 6f 72 74"},
        {"EVENT EMIT",
         {.topic = WIRE_TOPIC_EVENT,
          .action = WIRE_EVENT_EMIT,
          .name = "news/sport",
          .data = "{\"score\":3}"},
         "1f 10 04 1a 1b 08 02 12 0b 7b 22 73 63 6f 72 65 22 3a 33 7d 32 0a 6e "
         "65 77 73 2f 73 70 6f 72 74"},
        {"EVENT UNSUBSCRIBE",
         {.topic = WIRE_TOPIC_EVENT,
          .action = WIRE_EVENT_UNSUBSCRIBE,
          .correlation_id = "1",
          .names = news_sport,
          .n_names = 1},
         "15 10 04 1a 11 08 04 1a 01 31 3a 0a 6e 65 77 73 2f 73 70 6f 72 74"},
};

START_TEST(test_encode_vectors)
{
	const struct enc_vector *v = &enc_vectors[_i];

	ck_assert_msg(v->what != NULL, "vector");
	assert_encodes_to(&v->m, v->hex);
}
END_TEST

/* Server-to-client frames: every field must come out as captured. */
static const struct dec_vector {
	const char *what;
	const char *hex;
	struct wire_msg m;
} dec_vectors[] = {
        {"ACCEPT",
         "06 10 02 1a 02 08 04",
         {.topic = WIRE_TOPIC_CONNECTION, .action = WIRE_CONN_ACCEPT}},
        {"AUTH_SUCCESSFUL without data",
         "06 10 03 1a 02 08 03",
         {.topic = WIRE_TOPIC_AUTH, .action = WIRE_AUTH_SUCCESSFUL}},
        {"AUTH_SUCCESSFUL with data",
         "20 10 03 1a 1c 08 03 12 18 7b 22 66 61 76 6f 75 72 69 74 65 43 6f 6c "
         "6f 72 22 3a 22 72 65 64 22 7d",
         {.topic = WIRE_TOPIC_AUTH,
          .action = WIRE_AUTH_SUCCESSFUL,
          .data = "{\"favouriteColor\":\"red\"}"}},
        {"AUTH_UNSUCCESSFUL",
         "06 10 03 1a 02 08 04",
         {.topic = WIRE_TOPIC_AUTH, .action = WIRE_AUTH_UNSUCCESSFUL}},
        {"TOO_MANY_AUTH_ATTEMPTS",
         "06 10 03 1a 02 08 64",
         {.topic = WIRE_TOPIC_AUTH,
          .action = WIRE_AUTH_TOO_MANY_AUTH_ATTEMPTS}},
        {"AUTHENTICATION_TIMEOUT",
         "06 10 02 1a 02 08 64",
         {.topic = WIRE_TOPIC_CONNECTION,
          .action = WIRE_CONN_AUTHENTICATION_TIMEOUT}},
        {"CONNECTION INVALID_MESSAGE",
         "06 10 02 1a 02 08 65",
         {.topic = WIRE_TOPIC_CONNECTION, .action = WIRE_CONN_INVALID_MESSAGE}},
        {"AUTH INVALID_MESSAGE",
         "06 10 03 1a 02 08 65",
         {.topic = WIRE_TOPIC_AUTH, .action = WIRE_AUTH_INVALID_MESSAGE}},
        {"AUTH INVALID_MESSAGE_DATA",
         "06 10 03 1a 02 08 66",
         {.topic = WIRE_TOPIC_AUTH, .action = WIRE_AUTH_INVALID_MESSAGE_DATA}},
        {"PONG",
         "06 10 02 1a 02 08 03",
         {.topic = WIRE_TOPIC_CONNECTION, .action = WIRE_CONN_PONG}},
        {"SUBSCRIBE ack",
         "0b 10 04 1a 07 08 03 1a 01 30 28 01",
         {.topic = WIRE_TOPIC_EVENT,
          .action = WIRE_EVENT_SUBSCRIBE,
          .correlation_id = "0",
          .has_is_ack = true,
          .is_ack = true}},
        {"UNSUBSCRIBE ack",
         "0b 10 04 1a 07 08 04 1a 01 31 28 01",
         {.topic = WIRE_TOPIC_EVENT,
          .action = WIRE_EVENT_UNSUBSCRIBE,
          .correlation_id = "1",
          .has_is_ack = true,
          .is_ack = true}},
        {"MULTIPLE_SUBSCRIPTIONS",
         "14 10 04 1a 10 08 6a 32 0a 6e 65 77 73 2f 73 70 6f 72 74 58 03",
         {.topic = WIRE_TOPIC_EVENT,
          .action = WIRE_EVENT_MULTIPLE_SUBSCRIPTIONS,
          .name = "news/sport",
          .has_original_action = true,
          .original_action = WIRE_EVENT_SUBSCRIBE}},
        {"PARSER UNKNOWN_TOPIC",
         "06 10 01 1a 02 08 01",
         {.topic = WIRE_TOPIC_PARSER, .action = WIRE_PARSER_UNKNOWN_TOPIC}},
        {"EMIT received",
         "1f 10 04 1a 1b 08 02 12 0b 7b 22 73 63 6f 72 65 22 3a 33 7d 32 0a 6e "
         "65 77 73 2f 73 70 6f 72 74",
         {.topic = WIRE_TOPIC_EVENT,
          .action = WIRE_EVENT_EMIT,
          .data = "{\"score\":3}",
          .name = "news/sport"}},
};

START_TEST(test_decode_vectors)
{
	const struct dec_vector *v = &dec_vectors[_i];
	uint8_t buf[256];
	size_t n = unhex(v->hex, buf, sizeof(buf));

	ck_assert_msg(v->what != NULL, "vector");
	assert_decodes_to(buf, n, &v->m);
}
END_TEST

/* Every captured frame (section 10 of docs/deepstream-protocol.md), all
 * topics, for the truncation loop. */
static const char *const all_frames[] = {
        "3f 10 02 1a 3b 08 05 2a 1e 77 73 3a 2f 2f 31 32 37 2e 30 2e 30 2e 31 "
        "3a 36 30 32 30 2f 64 65 65 70 73 74 72 65 61 6d 32 04 30 2e 31 61 3a "
        "05 37 2e 30 2e 35 42 0a 6a 61 76 61 73 63 72 69 70 74",
        "06 10 02 1a 02 08 04",
        "1c 10 03 1a 18 08 02 12 14 7b 22 75 73 65 72 6e 61 6d 65 22 3a 22 61 "
        "6c 69 63 65 22 7d",
        "06 10 03 1a 02 08 03",
        "06 10 02 1a 02 08 05",
        "0a 10 03 1a 06 08 02 12 02 7b 7d",
        "06 10 02 1a 02 08 02",
        "06 10 02 1a 02 08 03",
        "15 10 04 1a 11 08 03 1a 01 30 3a 0a 6e 65 77 73 2f 73 70 6f 72 74",
        "0b 10 04 1a 07 08 03 1a 01 30 28 01",
        "1f 10 04 1a 1b 08 02 12 0b 7b 22 73 63 6f 72 65 22 3a 33 7d 32 0a 6e "
        "65 77 73 2f 73 70 6f 72 74",
        "15 10 04 1a 11 08 04 1a 01 31 3a 0a 6e 65 77 73 2f 73 70 6f 72 74",
        "0b 10 04 1a 07 08 04 1a 01 31 28 01",
        "14 10 04 1a 10 08 6a 32 0a 6e 65 77 73 2f 73 70 6f 72 74 58 03",
        "06 10 01 1a 02 08 01",
        "20 10 03 1a 1c 08 03 12 18 7b 22 66 61 76 6f 75 72 69 74 65 43 6f 6c "
        "6f 72 22 3a 22 72 65 64 22 7d",
        "06 10 03 1a 02 08 04",
        "06 10 03 1a 02 08 64",
        "06 10 02 1a 02 08 64",
        "06 10 02 1a 02 08 65",
        "06 10 03 1a 02 08 65",
        "06 10 03 1a 02 08 66",
        "17 10 05 1a 13 08 17 1a 01 30 3a 0c 76 65 63 2f 6d 78 30 36 74 39 75 "
        "61",
        "19 10 05 1a 15 08 17 1a 01 30 28 01 3a 0c 76 65 63 2f 6d 78 30 36 74 "
        "39 75 61",
        "1a 10 05 1a 16 08 04 12 02 7b 7d 32 0c 76 65 63 2f 6d 78 30 36 74 39 "
        "75 61 68 00",
        "1f 10 05 1a 1b 08 12 12 07 7b 22 61 22 3a 31 7d 32 0c 76 65 63 2f 6d "
        "78 30 36 74 39 75 61 68 01",
        "21 10 05 1a 1d 08 12 12 07 7b 22 61 22 3a 31 7d 32 0c 76 65 63 2f 6d "
        "78 30 36 74 39 75 61 58 00 68 01",
        "21 10 05 1a 1d 08 13 12 01 32 1a 01 31 32 0c 76 65 63 2f 6d 78 30 36 "
        "74 39 75 61 58 01 62 01 61 68 02",
        "19 10 05 1a 15 08 0e 1a 01 31 32 0c 76 65 63 2f 6d 78 30 36 74 39 75 "
        "61 58 01",
        "1e 10 05 1a 1a 08 13 12 01 32 32 0c 76 65 63 2f 6d 78 30 36 74 39 75 "
        "61 58 00 62 01 61 68 02",
        "29 10 05 1a 25 08 10 12 07 7b 22 7a 22 3a 30 7d 32 0d 76 65 63 2f 6d "
        "78 30 36 74 39 75 61 62 68 ff ff ff ff ff ff ff ff ff 01",
        "0e 10 06 1a 0a 08 08 1a 01 30 32 03 61 64 64",
        "0b 10 06 1a 07 08 08 1a 01 30 28 01",
        "1e 10 06 1a 1a 08 02 12 0d 7b 22 61 22 3a 31 2c 22 62 22 3a 32 7d 1a "
        "02 72 31 3a 03 61 64 64",
        "12 10 06 1a 0e 08 05 12 01 33 1a 02 72 31 3a 03 61 64 64",
        "0e 10 07 1a 0a 08 04 2a 01 71 4a 03 62 6f 62",
        "18 10 07 1a 14 08 05 22 0d 7b 22 62 6f 62 22 3a 66 61 6c 73 65 7d 2a "
        "01 71",
};

#define N_ELEMS(a) (sizeof(a) / sizeof((a)[0]))

START_TEST(test_all_frames_decode)
{
	struct wire_decoded *d = NULL;
	uint8_t buf[256];
	size_t n = unhex(all_frames[_i], buf, sizeof(buf));

	ck_assert_int_eq(wire_decode(buf, n, &d), 0);
	ck_assert_int_eq(wire_decoded_msg(d)->topic, buf[2]);
	wire_decoded_free(d);
}
END_TEST

/* Unmapped topics come back with only the topic set. */
START_TEST(test_unmapped_topics)
{
	/* RECORD READ_RESPONSE and RPC PROVIDE from the live server */
	static const char *const frames[] = {
	        "1a 10 05 1a 16 08 04 12 02 7b 7d 32 0c 76 65 63 2f 6d 78 30 "
	        "36 74 39 75 61 68 00",
	        "0e 10 06 1a 0a 08 08 1a 01 30 32 03 61 64 64",
	};
	struct wire_msg want = {.topic = WIRE_TOPIC_RECORD};
	uint8_t buf[64];
	size_t n;

	n = unhex(frames[0], buf, sizeof(buf));
	assert_decodes_to(buf, n, &want);
	n = unhex(frames[1], buf, sizeof(buf));
	want.topic = WIRE_TOPIC_RPC;
	assert_decodes_to(buf, n, &want);

	/* a topic number nobody knows, with an inner message */
	n = unhex("06 10 2a 1a 02 08 01", buf, sizeof(buf));
	want.topic = 42;
	assert_decodes_to(buf, n, &want);
	/* a negative topic (10-byte varint) */
	n = unhex("0f 10 ff ff ff ff ff ff ff ff ff 01 1a 02 08 01", buf,
	          sizeof(buf));
	want.topic = -1;
	assert_decodes_to(buf, n, &want);
	/* a topic with no inner message type at all */
	n = unhex("06 10 64 1a 02 08 01", buf, sizeof(buf));
	want.topic = WIRE_TOPIC_ERROR;
	assert_decodes_to(buf, n, &want);
}
END_TEST

/* Encodes m, checks the size functions agree, decodes, compares. */
static void assert_round_trip(const struct wire_msg *m)
{
	uint8_t *buf;
	size_t size = 0, len = 0;
	struct wire_decoded *d = NULL;

	ck_assert_int_eq(wire_encoded_size(m, &size), 0);
	buf = malloc(size);
	ck_assert_ptr_nonnull(buf);
	/* one byte short is refused, exact fits */
	if (size > 0)
		ck_assert_int_eq(wire_encode(m, buf, size - 1, &len), -ENOBUFS);
	ck_assert_int_eq(wire_encode(m, buf, size, &len), 0);
	ck_assert_uint_eq(len, size);
	ck_assert_int_eq(wire_decode(buf, len, &d), 0);
	assert_msg_eq(wire_decoded_msg(d), m);
	wire_decoded_free(d);
	free(buf);
}

START_TEST(test_round_trips)
{
	static const char *const three[] = {"a/1", "", "ü/\xe2\x82\xac/😀"};
	struct wire_msg conn = {
	        .topic = WIRE_TOPIC_CONNECTION,
	        .action = WIRE_CONN_REDIRECT,
	        .data = "",
	        .url = "wss://example.invalid:6020/deepstream",
	        .protocol_version = "",
	        .sdk_version = "0.1.0",
	        .sdk_type = "dsd",
	        .has_is_ack = true,
	        .is_ack = false,
	        .has_is_error = true,
	        .is_error = true,
	};
	struct wire_msg auth = {
	        .topic = WIRE_TOPIC_AUTH,
	        .action = WIRE_AUTH_UNSUCCESSFUL,
	        .data = "{\"error\":\"nope\"}",
	        .has_is_error = true,
	        .is_error = false,
	};
	struct wire_msg ev = {
	        .topic = WIRE_TOPIC_EVENT,
	        .action = WIRE_EVENT_MESSAGE_DENIED,
	        .data = "null",
	        .name = "secret/a",
	        .correlation_id = "mx06n1sm-1nghfx5ddj8",
	        .names = three,
	        .n_names = 3,
	        .has_is_ack = true,
	        .is_ack = true,
	        .has_is_error = true,
	        .is_error = true,
	        .has_original_action = true,
	        .original_action = WIRE_EVENT_EMIT,
	};
	struct wire_msg parser = {
	        .topic = WIRE_TOPIC_PARSER,
	        .action = WIRE_PARSER_MESSAGE_PARSE_ERROR,
	        .data = "x",
	        .has_original_action = true,
	        .original_action = -1,
	};
	/* numbers nobody defined survive both ways */
	struct wire_msg odd = {
	        .topic = WIRE_TOPIC_EVENT,
	        .action = 250,
	        .has_original_action = true,
	        .original_action = INT32_MIN,
	};
	struct wire_msg neg = {.topic = WIRE_TOPIC_AUTH, .action = -7};
	/* false flags are present, and written */
	struct wire_msg nack = {
	        .topic = WIRE_TOPIC_EVENT,
	        .action = WIRE_EVENT_SUBSCRIBE,
	        .has_is_ack = true,
	        .is_ack = false,
	        .has_is_error = true,
	        .is_error = false,
	};

	assert_round_trip(&conn);
	assert_round_trip(&auth);
	assert_round_trip(&ev);
	assert_round_trip(&parser);
	assert_round_trip(&odd);
	assert_round_trip(&neg);
	assert_round_trip(&nack);
	assert_encodes_to(&nack, "0a 10 04 1a 06 08 03 20 00 28 00");
}
END_TEST

/* Negative numbers go out as 10-byte varints, as the JS client does. */
START_TEST(test_negative_int32)
{
	struct wire_msg m = {
	        .topic = WIRE_TOPIC_EVENT,
	        .action = WIRE_EVENT_MESSAGE_DENIED,
	        .has_original_action = true,
	        .original_action = -1,
	};

	assert_encodes_to(&m, "11 10 04 1a 0d 08 68 58 ff ff ff ff ff ff ff "
	                      "ff ff 01");
	/* the 5-byte form is accepted too */
	{
		uint8_t buf[32];
		size_t n = unhex("0c 10 04 1a 08 08 68 58 ff ff ff ff 0f", buf,
		                 sizeof(buf));

		assert_decodes_to(buf, n, &m);
	}
}
END_TEST

/* A 20 kB emit needs a 3-byte length prefix on both levels. */
START_TEST(test_big_emit)
{
	const size_t payload = 20000;
	char *data = malloc(payload + 3);
	struct wire_msg m = {
	        .topic = WIRE_TOPIC_EVENT,
	        .action = WIRE_EVENT_EMIT,
	        .name = "big/one",
	};
	uint8_t *buf;
	size_t size = 0, len = 0, i, inner, outer;
	uint64_t prefix = 0;

	ck_assert_ptr_nonnull(data);
	data[0] = '"';
	for (i = 1; i <= payload; i++)
		data[i] = (char)('a' + i % 26);
	data[payload + 1] = '"';
	data[payload + 2] = '\0';
	m.data = data;

	/* inner: 08 02, 12 len(3) data, 32 07 "big/one" */
	inner = 2 + 1 + 3 + (payload + 2) + 2 + 7;
	/* outer: 10 04 1a len(3) inner */
	outer = 2 + 1 + 3 + inner;
	ck_assert_int_eq(wire_encoded_size(&m, &size), 0);
	ck_assert_uint_eq(size, 3 + outer);

	buf = malloc(size);
	ck_assert_ptr_nonnull(buf);
	ck_assert_int_eq(wire_encode(&m, buf, size, &len), 0);
	ck_assert_uint_eq(len, size);
	/* decode the prefix by hand */
	ck_assert(buf[0] & 0x80);
	ck_assert(buf[1] & 0x80);
	ck_assert(!(buf[2] & 0x80));
	for (i = 0; i < 3; i++)
		prefix |= (uint64_t)(buf[i] & 0x7f) << (7 * i);
	ck_assert_uint_eq(prefix, outer);
	ck_assert_uint_eq(buf[3], 0x10);
	ck_assert_uint_eq(buf[4], 0x04);
	ck_assert_uint_eq(buf[5], 0x1a);

	assert_round_trip(&m);
	/* losing the last byte, or gaining one, is a broken frame */
	assert_rejected(buf, len - 1);
	free(buf);
	free(data);
}
END_TEST

/* The hot-path EMIT encoder writes what wire_encode() writes, across the
 * varint boundaries of both strings and of the frame. */
START_TEST(test_emit_fast_path)
{
	static const size_t sizes[] = {0,     1,     2,     125,    126,
	                               127,   128,   129,   16370,  16383,
	                               16384, 16385, 20000, 100000, 2097152};
	static const size_t names[] = {1, 7, 127, 128, 1024};
	char *data = malloc(2097152 + 3), name[1025];
	uint8_t *a = malloc(2097152 + 2048), *b = malloc(2097152 + 2048);

	ck_assert(data != NULL && a != NULL && b != NULL);
	memset(name, 'n', sizeof(name));
	for (size_t ni = 0; ni < N_ELEMS(names); ni++) {
		for (size_t di = 0; di <= N_ELEMS(sizes); di++) {
			/* di == N_ELEMS(sizes): no data at all */
			bool none = di == N_ELEMS(sizes);
			size_t dl = none ? 0 : sizes[di], size = 0, len = 0;
			struct wire_msg m = {.topic = WIRE_TOPIC_EVENT,
			                     .action = WIRE_EVENT_EMIT,
			                     .name = name,
			                     .data = none ? NULL : data};

			memset(data, 'x', dl);
			data[dl] = '\0';
			name[names[ni]] = '\0';
			ck_assert_int_eq(wire_encoded_size(&m, &size), 0);
			ck_assert_uint_eq(wire_emit_size(names[ni], m.data, dl),
			                  size);
			ck_assert_int_eq(wire_encode(&m, a, size, &len), 0);
			ck_assert_uint_eq(
			        wire_emit_write(name, names[ni], m.data, dl, b),
			        len);
			ck_assert_mem_eq(a, b, len);
			name[names[ni]] = 'n';
		}
	}
	free(data);
	free(a);
	free(b);
}
END_TEST

/* wire_decode_in(): in the scratch when the message fits, on the heap when
 * it does not; either way the same message, and wire_decoded_free() frees
 * only the heap one (ASan and valgrind see both). */
START_TEST(test_decode_in_scratch)
{
	static char data[3 * WIRE_SCRATCH_SIZE];
	static uint8_t buf[4 * WIRE_SCRATCH_SIZE];
	const unsigned char *lo = scratch.buf, *hi = lo + sizeof(scratch.buf);
	struct wire_msg m = {.topic = WIRE_TOPIC_EVENT,
	                     .action = WIRE_EVENT_EMIT,
	                     .name = "a/b",
	                     .data = "{\"i\":1}"};
	struct wire_decoded *d;
	size_t len;

	ck_assert_int_eq(wire_encode(&m, buf, sizeof(buf), &len), 0);
	ck_assert_int_eq(wire_decode_in(buf, len, &scratch, &d), 0);
	ck_assert((const unsigned char *)d >= lo &&
	          (const unsigned char *)d < hi);
	assert_msg_eq(wire_decoded_msg(d), &m);
	wire_decoded_free(d);

	memset(data, 'x', sizeof(data) - 1);
	data[0] = '"';
	data[sizeof(data) - 2] = '"';
	m.data = data;
	ck_assert_int_eq(wire_encode(&m, buf, sizeof(buf), &len), 0);
	ck_assert_int_eq(wire_decode_in(buf, len, &scratch, &d), 0);
	ck_assert((const unsigned char *)d < lo ||
	          (const unsigned char *)d >= hi);
	assert_msg_eq(wire_decoded_msg(d), &m);
	wire_decoded_free(d);
}
END_TEST

/* An EVENT frame (action EMIT) with data and name as raw bytes, built by
 * hand so that it may hold what wire_encode() refuses. */
static size_t raw_event(const uint8_t *data, size_t dlen, const uint8_t *name,
                        size_t nlen, uint8_t *out)
{
	size_t inner = 2 + 2 + dlen + 2 + nlen, n = 0;

	out[n++] = (uint8_t)(4 + inner);
	out[n++] = 0x10;
	out[n++] = WIRE_TOPIC_EVENT;
	out[n++] = 0x1a;
	out[n++] = (uint8_t)inner;
	out[n++] = 0x08;
	out[n++] = WIRE_EVENT_EMIT;
	out[n++] = 0x12;
	out[n++] = (uint8_t)dlen;
	memcpy(out + n, data, dlen);
	n += dlen;
	out[n++] = 0x32;
	out[n++] = (uint8_t)nlen;
	memcpy(out + n, name, nlen);
	return n + nlen;
}

/* The EVENT short cut checks its texts as it copies them, eight bytes at a
 * time: a NUL, a stray byte over 0x7f or a valid UTF-8 sequence at every
 * position of every length around the word size, in data and in name. */
START_TEST(test_event_text_every_position)
{
	static const uint8_t bad[] = {0x00, 0x80, 0xc3, 0xff};
	uint8_t text[24], plain[24], frame[128];
	char want_text[32];

	memset(plain, 'a', sizeof(plain));
	for (size_t len = 1; len <= sizeof(text); len++) {
		for (size_t at = 0; at < len; at++) {
			for (int field = 0; field < 2; field++) {
				const uint8_t *d = field ? plain : text;
				const uint8_t *nm = field ? text : plain;
				struct wire_msg want = {
				        .topic = WIRE_TOPIC_EVENT,
				        .action = WIRE_EVENT_EMIT};
				size_t n;

				memset(text, 'x', sizeof(text));
				for (size_t b = 0; b < sizeof(bad); b++) {
					text[at] = bad[b];
					n = raw_event(d, len, nm, len, frame);
					assert_rejected(frame, n);
				}
				/* 0x01 and 0x7f are plain ASCII */
				text[at] = at % 2 ? 0x01 : 0x7f;
				memcpy(want_text, text, len);
				want_text[len] = '\0';
				want.data = field ? &A24[24 - len] : want_text;
				want.name = field ? want_text : &A24[24 - len];
				n = raw_event(d, len, nm, len, frame);
				assert_decodes_to(frame, n, &want);
				if (at + 2 > len)
					continue;
				/* "é", two bytes, from at */
				text[at] = 0xc3;
				text[at + 1] = 0xa9;
				memcpy(want_text, text, len);
				n = raw_event(d, len, nm, len, frame);
				assert_decodes_to(frame, n, &want);
			}
		}
	}
}
END_TEST

START_TEST(test_encode_errors)
{
	static const char *const with_null[] = {"a", NULL};
	struct wire_msg m = {.topic = WIRE_TOPIC_RECORD, .action = 3};
	uint8_t buf[64];
	size_t len = 12345, size = 12345;

	/* topics we do not map */
	ck_assert_int_eq(wire_encode(&m, buf, sizeof(buf), &len), -EINVAL);
	ck_assert_int_eq(wire_encoded_size(&m, &size), -EINVAL);
	m.topic = 0;
	ck_assert_int_eq(wire_encode(&m, buf, sizeof(buf), &len), -EINVAL);
	m.topic = 42;
	ck_assert_int_eq(wire_encode(&m, buf, sizeof(buf), &len), -EINVAL);

	/* fields the topic does not have */
	m = (struct wire_msg){.topic = WIRE_TOPIC_EVENT,
	                      .action = WIRE_EVENT_EMIT,
	                      .url = "ws://x"};
	ck_assert_int_eq(wire_encode(&m, buf, sizeof(buf), &len), -EINVAL);
	m = (struct wire_msg){.topic = WIRE_TOPIC_AUTH,
	                      .action = WIRE_AUTH_REQUEST,
	                      .name = "n"};
	ck_assert_int_eq(wire_encode(&m, buf, sizeof(buf), &len), -EINVAL);
	m = (struct wire_msg){.topic = WIRE_TOPIC_CONNECTION,
	                      .action = WIRE_CONN_PING,
	                      .has_original_action = true};
	ck_assert_int_eq(wire_encode(&m, buf, sizeof(buf), &len), -EINVAL);
	m = (struct wire_msg){
	        .topic = WIRE_TOPIC_PARSER, .action = 1, .has_is_ack = true};
	ck_assert_int_eq(wire_encode(&m, buf, sizeof(buf), &len), -EINVAL);

	/* bad names */
	m = (struct wire_msg){.topic = WIRE_TOPIC_EVENT,
	                      .action = WIRE_EVENT_SUBSCRIBE,
	                      .names = with_null,
	                      .n_names = 2};
	ck_assert_int_eq(wire_encode(&m, buf, sizeof(buf), &len), -EINVAL);
	m.names = NULL;
	ck_assert_int_eq(wire_encode(&m, buf, sizeof(buf), &len), -EINVAL);

	/* not UTF-8: a lone continuation byte, an overlong '/', a surrogate */
	m = (struct wire_msg){.topic = WIRE_TOPIC_EVENT,
	                      .action = WIRE_EVENT_EMIT,
	                      .name = "a\x80"};
	ck_assert_int_eq(wire_encode(&m, buf, sizeof(buf), &len), -EINVAL);
	m.name = "\xc0\xaf";
	ck_assert_int_eq(wire_encode(&m, buf, sizeof(buf), &len), -EINVAL);
	m.name = "\xed\xa0\x80";
	ck_assert_int_eq(wire_encode(&m, buf, sizeof(buf), &len), -EINVAL);
	m.name = "ok";
	m.data = "\"\xf4\x90\x80\x80\""; /* past U+10FFFF */
	ck_assert_int_eq(wire_encoded_size(&m, &size), -EINVAL);

	/* too small a buffer */
	m = (struct wire_msg){.topic = WIRE_TOPIC_CONNECTION,
	                      .action = WIRE_CONN_PING};
	ck_assert_int_eq(wire_encode(&m, buf, 6, &len), -ENOBUFS);
	ck_assert_int_eq(wire_encode(&m, buf, 0, &len), -ENOBUFS);

	/* ret_* untouched on failure */
	ck_assert_uint_eq(len, 12345);
	ck_assert_uint_eq(size, 12345);
}
END_TEST

START_TEST(test_malformed)
{
	/* empty */
	assert_rejected((const uint8_t *)"", 0);
	/* prefix only, zero-length message: no topic */
	assert_hex_rejected("00");
	/* truncated prefix */
	assert_hex_rejected("80");
	assert_hex_rejected("ff ff");
	/* prefix longer than the rest */
	assert_hex_rejected("07 10 02 1a 02 08 04");
	/* prefix shorter than the rest (a second message or trailing junk) */
	assert_hex_rejected("05 10 02 1a 02 08 04");
	assert_hex_rejected("06 10 02 1a 02 08 04 06 10 02 1a 02 08 03");
	/* no prefix at all */
	assert_hex_rejected("10 02 1a 02 08 04");
	/* a prefix that does not fit in 64 bits */
	assert_hex_rejected("ff ff ff ff ff ff ff ff ff 7f 00");
	assert_hex_rejected("80 80 80 80 80 80 80 80 80 80 01");
	/* garbage */
	assert_hex_rejected("ff ff ff ff");
	assert_hex_rejected("04 ff ff ff ff");
	/* outer message without a topic */
	assert_hex_rejected("04 1a 02 08 04");
	/* inner message truncated: says 2 bytes, has 1 */
	assert_hex_rejected("05 10 02 1a 02 08");
	/* inner message cut inside a varint */
	assert_hex_rejected("06 10 02 1a 02 08 84");
	/* string field running past its message */
	assert_hex_rejected("0a 10 04 1a 06 08 02 32 09 61 62");
	/* wrong wire type for a known field: action as length-delimited */
	assert_hex_rejected("07 10 02 1a 03 0a 01 04");
	/* topic as length-delimited */
	assert_hex_rejected("07 12 01 02 1a 02 08 04");
	/* a field number 0 */
	assert_hex_rejected("06 10 02 1a 02 00 04");
	/* an end-group tag (wire type 4) with no group */
	assert_hex_rejected("06 10 02 1a 02 0c 04");
	/* NUL inside a string */
	assert_hex_rejected("0a 10 04 1a 06 08 02 32 02 61 00");
	/* invalid UTF-8 in data, name and names */
	assert_hex_rejected("0a 10 04 1a 06 08 02 12 02 c3 28");
	assert_hex_rejected("0b 10 04 1a 07 08 02 32 03 ed a0 80");
	assert_hex_rejected("0a 10 04 1a 06 08 03 3a 02 f8 88");
	assert_hex_rejected("0b 10 02 1a 07 08 05 2a 03 f0 9f 98");
}
END_TEST

START_TEST(test_lenient)
{
	uint8_t buf[128];
	size_t n;
	struct wire_msg want = {.topic = WIRE_TOPIC_CONNECTION,
	                        .action = WIRE_CONN_ACCEPT};

	/* unknown varint field 15 in the inner message */
	n = unhex("08 10 02 1a 04 08 04 78 05", buf, sizeof(buf));
	assert_decodes_to(buf, n, &want);
	/* unknown length-delimited field 20 and fixed32/64 fields outside */
	n = unhex("15 10 02 a2 01 03 61 62 63 1a 02 08 04 0d 01 02 03 04 "
	          "09 01 02 03 04 05 06 07 08",
	          buf, sizeof(buf));
	/* fix the prefix: count what follows */
	buf[0] = (uint8_t)(n - 1);
	assert_decodes_to(buf, n, &want);
	/* fields in reverse order */
	n = unhex("06 1a 02 08 04 10 02", buf, sizeof(buf));
	assert_decodes_to(buf, n, &want);
	/* a 10-byte prefix for 11 */
	n = unhex("8b 80 80 80 80 80 80 80 80 00 10 04 1a 07 08 03 1a 01 30 28 "
	          "01",
	          buf, sizeof(buf));
	want = (struct wire_msg){.topic = WIRE_TOPIC_EVENT,
	                         .action = WIRE_EVENT_SUBSCRIBE,
	                         .correlation_id = "0",
	                         .has_is_ack = true,
	                         .is_ack = true};
	assert_decodes_to(buf, n, &want);
	/* the same, but with bits past the 64th: must not wrap to 11 */
	buf[9] = 0x02;
	assert_rejected(buf, n);
	want = (struct wire_msg){.topic = WIRE_TOPIC_CONNECTION,
	                         .action = WIRE_CONN_ACCEPT};
	/* a non-minimal prefix (2 bytes for 6) */
	n = unhex("86 00 10 02 1a 02 08 04", buf, sizeof(buf));
	assert_decodes_to(buf, n, &want);
	/* no inner message: action 0, nothing else */
	want.action = 0;
	n = unhex("02 10 02", buf, sizeof(buf));
	assert_decodes_to(buf, n, &want);
	/* empty inner message */
	n = unhex("04 10 02 1a 00", buf, sizeof(buf));
	assert_decodes_to(buf, n, &want);

	/* EVENT with subscription (8), field 9 (unused) and originalTOPIC */
	n = unhex("1a 10 04 1a 16 08 0b 42 03 61 2f 2a 4a 02 78 79 50 04 32 "
	          "03 61 2f 62 28 00",
	          buf, sizeof(buf));
	buf[0] = (uint8_t)(n - 1);
	buf[4] = (uint8_t)(n - 5);
	want = (struct wire_msg){
	        .topic = WIRE_TOPIC_EVENT,
	        .action = WIRE_EVENT_SUBSCRIPTION_FOR_PATTERN_FOUND,
	        .name = "a/b",
	        .has_is_ack = true,
	        .is_ack = false};
	assert_decodes_to(buf, n, &want);

	/* unknown action numbers stay as they are */
	n = unhex("07 10 04 1a 03 08 c8 01", buf, sizeof(buf));
	want = (struct wire_msg){.topic = WIRE_TOPIC_EVENT, .action = 200};
	assert_decodes_to(buf, n, &want);

	/* empty strings are present, not absent */
	n = unhex("0a 10 04 1a 06 08 02 12 00 32 00", buf, sizeof(buf));
	want = (struct wire_msg){.topic = WIRE_TOPIC_EVENT,
	                         .action = WIRE_EVENT_EMIT,
	                         .data = "",
	                         .name = ""};
	assert_decodes_to(buf, n, &want);

	/* a field seen twice: the last one wins, as protobuf says */
	n = unhex("08 10 02 1a 04 08 02 08 03", buf, sizeof(buf));
	want = (struct wire_msg){.topic = WIRE_TOPIC_CONNECTION,
	                         .action = WIRE_CONN_PONG};
	assert_decodes_to(buf, n, &want);

	/* EVENT EMIT frames take a short cut (wire.c, fast_event); what it
	 * does not take goes the general way, with the same result. */
	n = unhex("0e 10 04 1a 0a 08 02 32 01 61 12 03 7b 7d 20", buf,
	          sizeof(buf));
	buf[0] = (uint8_t)(n - 1);
	buf[4] = (uint8_t)(n - 5);
	want = (struct wire_msg){.topic = WIRE_TOPIC_EVENT,
	                         .action = WIRE_EVENT_EMIT,
	                         .data = "{} ",
	                         .name = "a"};
	assert_decodes_to(buf, n, &want);
	/* name twice: the last one */
	n = unhex("0e 10 04 1a 0a 08 02 32 01 61 32 01 62 12 00", buf,
	          sizeof(buf));
	buf[0] = (uint8_t)(n - 1);
	buf[4] = (uint8_t)(n - 5);
	want.name = "b";
	want.data = "";
	assert_decodes_to(buf, n, &want);
	/* a name and no data; neither: absent fields stay NULL */
	n = unhex("09 10 04 1a 05 08 02 32 01 61", buf, sizeof(buf));
	want = (struct wire_msg){.topic = WIRE_TOPIC_EVENT,
	                         .action = WIRE_EVENT_EMIT,
	                         .name = "a"};
	assert_decodes_to(buf, n, &want);
	n = unhex("06 10 04 1a 02 08 02", buf, sizeof(buf));
	want.name = NULL;
	assert_decodes_to(buf, n, &want);
	/* topic twice: the last one */
	n = unhex("08 10 04 1a 02 08 02 10 02", buf, sizeof(buf));
	want = (struct wire_msg){.topic = WIRE_TOPIC_CONNECTION,
	                         .action = WIRE_CONN_PING};
	assert_decodes_to(buf, n, &want);
	/* a name with a NUL or bad UTF-8, either way: rejected */
	assert_hex_rejected("0a 10 04 1a 06 08 02 32 02 61 00");
	assert_hex_rejected("0a 10 04 1a 06 08 02 32 02 c3 28");
	/* a length past the inner message */
	assert_hex_rejected("08 10 04 1a 04 08 02 32 05");
}
END_TEST

/*
 * A decode that succeeds must give a view that encodes again and decodes
 * to the same thing (for mapped topics); one that fails must fail cleanly.
 */
static void check_any_input(const uint8_t *buf, size_t len)
{
	struct wire_decoded *d = NULL, *d2 = NULL;
	const struct wire_msg *m;
	uint8_t *again;
	size_t size, n, i;
	int r;

	r = wire_decode(buf, len, &d);
	if (r < 0) {
		ck_assert_int_eq(r, -EBADMSG);
		return;
	}
	m = wire_decoded_msg(d);
	for (i = 0; i < m->n_names; i++)
		ck_assert_ptr_nonnull(m->names[i]);
	/* only mapped topics name their action 0 */
	if (strcmp(wire_action_name(m->topic, 0), "UNKNOWN") != 0) {
		wire_decoded_free(d);
		return;
	}
	ck_assert_int_eq(wire_encoded_size(m, &size), 0);
	again = malloc(size);
	ck_assert_ptr_nonnull(again);
	ck_assert_int_eq(wire_encode(m, again, size, &n), 0);
	ck_assert_int_eq(wire_decode(again, n, &d2), 0);
	assert_msg_eq(wire_decoded_msg(d2), m);
	wire_decoded_free(d2);
	free(again);
	wire_decoded_free(d);
}

/* Puts a correct prefix in front of body; returns the frame length. */
static size_t frame(const uint8_t *body, size_t len, uint8_t *out)
{
	size_t n = 0;
	size_t v = len;

	while (v >= 0x80) {
		out[n++] = (uint8_t)(v | 0x80);
		v >>= 7;
	}
	out[n++] = (uint8_t)v;
	memcpy(out + n, body, len);
	return n + len;
}

START_TEST(test_truncations)
{
	uint8_t buf[256], fixed[300];
	size_t i, n, cut;

	for (i = 0; i < N_ELEMS(all_frames); i++) {
		n = unhex(all_frames[i], buf, sizeof(buf));
		ck_assert_uint_lt(buf[0], 0x80);
		for (cut = 0; cut < n; cut++) {
			/* as cut: the prefix no longer matches */
			assert_rejected(buf, cut);
			/* with the prefix fixed, protobuf-c sees the cut */
			if (cut >= 1)
				check_any_input(fixed,
				                frame(buf + 1, cut - 1, fixed));
		}
	}
}
END_TEST

static uint64_t xorshift64(uint64_t *s)
{
	uint64_t x = *s;

	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	*s = x;
	return x;
}

START_TEST(test_random_input)
{
	uint64_t seed = 0x9e3779b97f4a7c15ull;
	uint8_t body[200], buf[256];
	size_t round, i, len;

	for (round = 0; round < 6000; round++) {
		len = xorshift64(&seed) % 120;
		for (i = 0; i < len; i++)
			body[i] = (uint8_t)xorshift64(&seed);
		switch (round % 4) {
		case 0: /* raw bytes */
			check_any_input(body, len);
			break;
		case 1: /* a correct prefix, random message */
			check_any_input(buf, frame(body, len, buf));
			break;
		case 2: { /* a real outer message, random inner one */
			uint8_t outer[200];
			size_t k = 0;

			outer[k++] = 0x10;
			outer[k++] = (uint8_t)(1 + round / 4 % 4);
			outer[k++] = 0x1a;
			outer[k++] = (uint8_t)(len & 0x7f);
			memcpy(outer + k, body, len & 0x7f);
			k += len & 0x7f;
			check_any_input(buf, frame(outer, k, buf));
			break;
		}
		default: { /* a real vector with a few bytes changed */
			const char *v =
			        all_frames[round / 4 % N_ELEMS(all_frames)];
			uint8_t orig[256];
			size_t n = unhex(v, orig, sizeof(orig)), flips;

			for (flips = 1 + xorshift64(&seed) % 3; flips; flips--)
				orig[1 + xorshift64(&seed) % (n - 1)] =
				        (uint8_t)xorshift64(&seed);
			check_any_input(buf, frame(orig + 1, n - 1, buf));
			break;
		}
		}
	}
}
END_TEST

START_TEST(test_names)
{
	ck_assert_str_eq(wire_topic_name(WIRE_TOPIC_EVENT), "EVENT");
	ck_assert_str_eq(wire_topic_name(WIRE_TOPIC_ERROR), "ERROR");
	ck_assert_str_eq(wire_topic_name(42), "?");
	ck_assert_str_eq(wire_action_name(WIRE_TOPIC_CONNECTION,
	                                  WIRE_CONN_AUTHENTICATION_TIMEOUT),
	                 "AUTHENTICATION_TIMEOUT");
	ck_assert_str_eq(wire_action_name(WIRE_TOPIC_AUTH,
	                                  WIRE_AUTH_TOO_MANY_AUTH_ATTEMPTS),
	                 "TOO_MANY_AUTH_ATTEMPTS");
	ck_assert_str_eq(wire_action_name(WIRE_TOPIC_EVENT,
	                                  WIRE_EVENT_MULTIPLE_SUBSCRIPTIONS),
	                 "MULTIPLE_SUBSCRIPTIONS");
	ck_assert_str_eq(
	        wire_action_name(WIRE_TOPIC_PARSER, WIRE_PARSER_UNKNOWN_TOPIC),
	        "UNKNOWN_TOPIC");
	ck_assert_str_eq(wire_action_name(WIRE_TOPIC_EVENT, 99), "?");
	ck_assert_str_eq(wire_action_name(WIRE_TOPIC_RECORD, 1), "?");
	ck_assert_str_eq(wire_action_name(42, 0), "?");
	wire_decoded_free(NULL);
}
END_TEST

static Suite *wire_suite(void)
{
	Suite *s = suite_create("wire");
	TCase *t = tcase_create("vectors");

	tcase_add_loop_test(t, test_encode_vectors, 0, N_ELEMS(enc_vectors));
	tcase_add_loop_test(t, test_decode_vectors, 0, N_ELEMS(dec_vectors));
	tcase_add_loop_test(t, test_all_frames_decode, 0, N_ELEMS(all_frames));
	tcase_add_test(t, test_unmapped_topics);
	tcase_add_test(t, test_negative_int32);
	suite_add_tcase(s, t);

	t = tcase_create("round trips");
	tcase_add_test(t, test_round_trips);
	tcase_add_test(t, test_big_emit);
	tcase_add_test(t, test_emit_fast_path);
	tcase_add_test(t, test_encode_errors);
	tcase_add_test(t, test_decode_in_scratch);
	tcase_add_test(t, test_event_text_every_position);
	tcase_add_test(t, test_names);
	suite_add_tcase(s, t);

	t = tcase_create("hostile input");
	tcase_set_timeout(t, 60);
	tcase_add_test(t, test_malformed);
	tcase_add_test(t, test_lenient);
	tcase_add_test(t, test_truncations);
	tcase_add_test(t, test_random_input);
	suite_add_tcase(s, t);
	return s;
}

int main(void)
{
	return check_run(wire_suite());
}

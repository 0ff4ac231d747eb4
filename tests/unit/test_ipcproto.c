/*
 * The IPC protocol module: encode/decode round trips, framing, and the
 * decoder's behaviour on hostile input (it must say -EBADMSG, never crash,
 * never allocate in proportion to what a header claims).
 */
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include <msgpack.h>

#include "check-run.h"
#include "ipc_ref.h"
#include "ipcproto.h"

/* ---- helpers ---- */

/* Frames an arbitrary body with a correct length header. */
static uint8_t *frame_of(const void *body, size_t n, size_t *ret_len)
{
	uint8_t *f = malloc(n + IPC_HEADER_SIZE);

	ck_assert_ptr_nonnull(f);
	f[0] = (uint8_t)(n >> 24);
	f[1] = (uint8_t)(n >> 16);
	f[2] = (uint8_t)(n >> 8);
	f[3] = (uint8_t)n;
	if (n)
		memcpy(f + IPC_HEADER_SIZE, body, n);
	*ret_len = n + IPC_HEADER_SIZE;
	return f;
}

static int decode_body(const void *body, size_t n, struct ipc_msg *m)
{
	size_t len;
	uint8_t *f = frame_of(body, n, &len);
	int r = ipc_decode(f, len, m);

	free(f);
	return r;
}

/* A decode that must fail and leave *m cleared. */
static void expect_bad(const void *body, size_t n)
{
	struct ipc_msg m;

	memset(&m, 0x5a, sizeof(m));
	ck_assert_int_eq(decode_body(body, n, &m), -EBADMSG);
	ck_assert_int_eq(m.type, 0);
	ck_assert_ptr_null(m.name);
	ck_assert_ptr_null(m.zone_);
	ck_assert(!m.has_id);
}

static void pk_str(msgpack_packer *pk, const char *s)
{
	msgpack_pack_str(pk, strlen(s));
	msgpack_pack_str_body(pk, s, strlen(s));
}

static bool str_eq(const char *a, const char *b)
{
	if (!a || !b)
		return a == b;
	return strcmp(a, b) == 0;
}

/* ---- round trips ---- */

static void roundtrip(const struct ipc_msg *in)
{
	struct ipc_buf b;
	struct ipc_msg out;
	size_t flen = 0;

	ipc_buf_init(&b, IPC_HEADER_SIZE + IPC_MAX_FRAME);
	ck_assert_int_eq(ipc_encode(&b, in), 0);
	ck_assert_int_eq(ipc_frame_peek(b.data, b.len, &flen), 0);
	ck_assert_uint_eq(flen, b.len);
	/* every strict prefix is "need more" */
	for (size_t k = 0; k < b.len; k++) {
		size_t dummy = 0;

		ck_assert_int_eq(ipc_frame_peek(b.data, k, &dummy), -EAGAIN);
	}
	ck_assert_int_eq(ipc_decode(b.data, flen, &out), 0);
	ck_assert_int_eq(out.type, in->type);
	ck_assert_int_eq(out.has_id, in->has_id);
	if (in->has_id)
		ck_assert_uint_eq(out.id, in->id);
	ck_assert_int_eq(out.has_code, in->has_code);
	if (in->has_code)
		ck_assert(out.code == in->code);
	ck_assert(out.at == in->at);
	ck_assert(str_eq(out.name, in->name));
	ck_assert(str_eq(out.text, in->text));
	ck_assert(str_eq(out.state, in->state));
	if (in->data) {
		ck_assert_ptr_nonnull(out.data);
		ck_assert_uint_eq(out.data_len, in->data_len);
		ck_assert(memcmp(out.data, in->data, in->data_len) == 0);
		ck_assert_int_eq(out.data[out.data_len], '\0');
	} else {
		ck_assert_ptr_null(out.data);
		ck_assert_uint_eq(out.data_len, 0);
	}
	ipc_msg_clear(&out);
	ipc_buf_free(&b);
}

START_TEST(test_roundtrip_every_type)
{
	static const char big_json[] = "{\"state\":\"OPEN\",\"n\":[1,2,3]}";
	const struct ipc_msg msgs[] = {
	        {.type = IPC_HELLO,
	         .has_code = true,
	         .code = IPC_PROTOCOL_VERSION,
	         .text = "dsctl 0.1"},
	        {.type = IPC_HELLO_OK,
	         .has_code = true,
	         .code = IPC_PROTOCOL_VERSION,
	         .text = "dsd 0.1.0"},
	        {.type = IPC_OK, .has_id = true, .id = 7},
	        {.type = IPC_ERROR,
	         .has_id = true,
	         .id = UINT32_MAX,
	         .has_code = true,
	         .code = -ENOENT,
	         .text = "no such thing"},
	        {.type = IPC_STATUS, .has_id = true, .id = 0},
	        {.type = IPC_STATUS_REPLY,
	         .has_id = true,
	         .id = 1,
	         .text = big_json},
	        {.type = IPC_PAUSE, .has_id = true, .id = 2},
	        {.type = IPC_RESUME, .has_id = true, .id = 3},
	        {.type = IPC_RELOAD, .has_id = true, .id = 4},
	        {.type = IPC_WATCH, .has_id = true, .id = 5},
	        {.type = IPC_STATE,
	         .state = "OPEN",
	         .text = "connected",
	         .at = 1700000000123LL},
	        {.type = IPC_STATE, .state = "CLOSED", .at = 0},
	        {.type = IPC_SUBSCRIBE,
	         .has_id = true,
	         .id = 65536,
	         .name = "news/\xc3\xa9t\xc3\xa9"},
	        {.type = IPC_UNSUBSCRIBE, .has_id = true, .id = 9, .name = "a"},
	        {.type = IPC_EMIT,
	         .has_id = true,
	         .id = 10,
	         .name = "x",
	         .data = "{\"a\":1}",
	         .data_len = 7},
	        {.type = IPC_EMIT, .has_id = true, .id = 11, .name = "nodata"},
	        {.type = IPC_EMIT_REPLY,
	         .has_id = true,
	         .id = 10,
	         .has_code = true,
	         .code = IPC_EMIT_QUEUED},
	        {.type = IPC_EVENT, .name = "x", .data = "[]", .data_len = 2},
	        {.type = IPC_EVENT, .name = "empty", .data = "", .data_len = 0},
	        {.type = IPC_SUB_DENIED, .name = "x", .text = "denied"},
	        {.type = IPC_ERROR,
	         .has_code = true,
	         .code = INT64_MIN,
	         .at = INT64_MAX},
	};

	for (size_t k = 0; k < sizeof(msgs) / sizeof(msgs[0]); k++)
		roundtrip(&msgs[k]);
}
END_TEST

START_TEST(test_roundtrip_large)
{
	char *name = malloc(IPC_MAX_NAME + 1);
	char *data = malloc(IPC_MAX_DATA + 1);
	struct ipc_msg m = {.type = IPC_EVENT};

	memset(name, 'n', IPC_MAX_NAME);
	name[IPC_MAX_NAME] = '\0';
	memset(data, '1', IPC_MAX_DATA);
	data[IPC_MAX_DATA] = '\0';
	m.name = name;
	m.data = data;
	m.data_len = IPC_MAX_DATA;
	roundtrip(&m);
	free(name);
	free(data);
}
END_TEST

START_TEST(test_check_catalogue)
{
	struct ipc_msg m = {0};

	m.type = IPC_SUBSCRIBE;
	m.has_id = true;
	m.name = "n";
	ck_assert_int_eq(ipc_msg_check(&m, IPC_DIR_C2S), 0);
	ck_assert_int_eq(ipc_msg_check(&m, IPC_DIR_S2C), -EPROTO);
	m.name = "";
	ck_assert_int_eq(ipc_msg_check(&m, IPC_DIR_C2S), -EBADMSG);
	m.name = "n";
	m.has_id = false;
	ck_assert_int_eq(ipc_msg_check(&m, IPC_DIR_C2S), -EBADMSG);
	m.type = 999;
	ck_assert_int_eq(ipc_msg_check(&m, IPC_DIR_C2S), -EOPNOTSUPP);
	ck_assert_str_eq(ipc_type_name(999), "UNKNOWN");
	ck_assert_str_eq(ipc_type_name(IPC_EMIT_REPLY), "EMIT_REPLY");
	ck_assert(ipc_type_is_request(IPC_STATUS));
	ck_assert(!ipc_type_is_request(IPC_HELLO));
	ck_assert(!ipc_type_is_request(IPC_OK));

	memset(&m, 0, sizeof(m));
	m.type = IPC_HELLO;
	ck_assert_int_eq(ipc_msg_check(&m, IPC_DIR_C2S), -EBADMSG);
	m.has_code = true;
	ck_assert_int_eq(ipc_msg_check(&m, IPC_DIR_C2S), 0);
	m.type = IPC_STATE;
	ck_assert_int_eq(ipc_msg_check(&m, IPC_DIR_S2C), -EBADMSG);
	m.state = "OPEN";
	ck_assert_int_eq(ipc_msg_check(&m, IPC_DIR_S2C), 0);
}
END_TEST

/* ---- framing ---- */

START_TEST(test_peek_partial_and_oversize)
{
	uint8_t h[IPC_HEADER_SIZE + 4] = {0, 0, 0, 3, 0x81, 0xa1, 't'};
	uint8_t *big;
	size_t n = 42;

	for (size_t k = 0; k < IPC_HEADER_SIZE; k++)
		ck_assert_int_eq(ipc_frame_peek(h, k, &n), -EAGAIN);
	ck_assert_int_eq(ipc_frame_peek(h, 6, &n), -EAGAIN);
	ck_assert_uint_eq(n, 42); /* untouched when not ready */
	ck_assert_int_eq(ipc_frame_peek(h, 7, &n), 0);
	ck_assert_uint_eq(n, 7);
	ck_assert_int_eq(ipc_frame_peek(h, 8, &n), 0); /* extra bytes ok */
	ck_assert_uint_eq(n, 7);

	/* exactly IPC_MAX_FRAME is allowed, one more is not */
	big = calloc(1, IPC_HEADER_SIZE + IPC_MAX_FRAME);
	big[0] = (uint8_t)(IPC_MAX_FRAME >> 24);
	big[1] = (uint8_t)(IPC_MAX_FRAME >> 16);
	big[2] = (uint8_t)(IPC_MAX_FRAME >> 8);
	big[3] = (uint8_t)IPC_MAX_FRAME;
	ck_assert_int_eq(ipc_frame_peek(big, IPC_HEADER_SIZE, &n), -EAGAIN);
	ck_assert_int_eq(
	        ipc_frame_peek(big, IPC_HEADER_SIZE + IPC_MAX_FRAME - 1, &n),
	        -EAGAIN);
	ck_assert_int_eq(
	        ipc_frame_peek(big, IPC_HEADER_SIZE + IPC_MAX_FRAME, &n), 0);
	ck_assert_uint_eq(n, IPC_HEADER_SIZE + IPC_MAX_FRAME);
	/* a whole frame of zero bytes is not a map */
	ck_assert_int_eq(ipc_decode(big, n, &(struct ipc_msg){0}), -EBADMSG);

	big[3] = (uint8_t)(IPC_MAX_FRAME + 1);
	ck_assert_int_eq(ipc_frame_peek(big, IPC_HEADER_SIZE, &n), -EMSGSIZE);
	memset(big, 0xff, IPC_HEADER_SIZE);
	ck_assert_int_eq(ipc_frame_peek(big, IPC_HEADER_SIZE, &n), -EMSGSIZE);
	free(big);
}
END_TEST

START_TEST(test_decode_header_mismatch)
{
	struct ipc_msg out;
	struct ipc_buf b;
	struct ipc_msg m = {.type = IPC_OK, .has_id = true, .id = 1};

	ipc_buf_init(&b, 4096);
	ck_assert_int_eq(ipc_encode(&b, &m), 0);
	/* the frame handed over must be exactly the announced length */
	ck_assert_int_eq(ipc_decode(b.data, b.len - 1, &out), -EBADMSG);
	ck_assert_int_eq(ipc_decode(b.data, 3, &out), -EBADMSG);
	ck_assert_int_eq(ipc_encode(&b, &m), 0);
	ck_assert_int_eq(ipc_decode(b.data, b.len, &out), -EBADMSG);
	ck_assert_int_eq(ipc_decode(b.data, b.len / 2, &out), 0);
	ipc_msg_clear(&out);
	ipc_buf_free(&b);
}
END_TEST

/* ---- malformed bodies ---- */

START_TEST(test_not_a_map)
{
	static const uint8_t arr[] = {0x92, 0xa1, 't', 0x64};
	static const uint8_t fixint[] = {0x05};
	static const uint8_t nil[] = {0xc0};
	static const uint8_t str[] = {0xa1, 't'};
	static const uint8_t never[] = {0xc1};

	expect_bad(arr, sizeof(arr));
	expect_bad(fixint, sizeof(fixint));
	expect_bad(nil, sizeof(nil));
	expect_bad(str, sizeof(str));
	expect_bad(never, sizeof(never));
	expect_bad("", 0);
}
END_TEST

START_TEST(test_truncated_everywhere)
{
	struct ipc_msg m = {.type = IPC_EMIT,
	                    .has_id = true,
	                    .id = 123456,
	                    .has_code = true,
	                    .code = -1000000,
	                    .name = "some/event",
	                    .data = "{\"k\":[1,2]}",
	                    .data_len = 11,
	                    .text = "hi"};
	struct ipc_buf b;

	ipc_buf_init(&b, 4096);
	ck_assert_int_eq(ipc_encode(&b, &m), 0);
	/* every shorter body, framed honestly, is malformed */
	for (size_t n = 0; n < b.len - IPC_HEADER_SIZE; n++)
		expect_bad(b.data + IPC_HEADER_SIZE, n);
	ipc_buf_free(&b);
}
END_TEST

START_TEST(test_trailing_bytes)
{
	static const uint8_t body[] = {0x81, 0xa1, 't', 0x64, 0x00};

	expect_bad(body, sizeof(body));
}
END_TEST

/*
 * Lowers the address-space limit so that honouring any of the hostile
 * counts below (hundreds of MB) would fail with ENOMEM instead of
 * -EBADMSG.  ASan reserves terabytes of shadow, so it runs without.
 */
static void limit_memory(void)
{
#if !defined(__SANITIZE_ADDRESS__)
	struct rlimit rl;
	unsigned long pages = 0;
	FILE *f = fopen("/proc/self/statm", "r");

	if (!f || fscanf(f, "%lu", &pages) != 1)
		pages = 0;
	if (f)
		fclose(f);
	if (!pages || getrlimit(RLIMIT_AS, &rl) < 0)
		return;
	rl.rlim_cur = pages * 4096UL + 64UL * 1024 * 1024;
	ck_assert_int_eq(setrlimit(RLIMIT_AS, &rl), 0);
	{
		/* the limit bites: a decoder that trusted a count would fail */
		void *volatile p = malloc(512UL * 1024 * 1024);

		ck_assert_ptr_null(p);
	}
#endif
}

START_TEST(test_huge_counts)
{
	/* top-level map32 claiming 50M pairs in a few bytes */
	static const uint8_t map32[] = {0xdf, 0x02, 0xfa, 0xf0,
	                                0x80, 0xa1, 't',  0x64};
	static const uint8_t map32max[] = {0xdf, 0xff, 0xff, 0xff, 0xff};
	static const uint8_t map16[] = {0xde, 0xff, 0xff, 0xa1, 't', 0x64};
	/* {"t":100, "x": array32 of 4G} */
	static const uint8_t arr32[] = {0x82, 0xa1, 't',  0x64, 0xa1, 'x',
	                                0xdd, 0xff, 0xff, 0xff, 0xff, 0x01};
	/* {"t":100, "x": array16 of 65535} */
	static const uint8_t arr16[] = {0x82, 0xa1, 't',  0x64, 0xa1,
	                                'x',  0xdc, 0xff, 0xff, 0x01};
	/* {"t":100, "name": str32 of 2 GiB} */
	static const uint8_t str32[] = {0x82, 0xa1, 't',  0x64, 0xa4,
	                                'n',  'a',  'm',  'e',  0xdb,
	                                0x80, 0x00, 0x00, 0x00, 'a'};
	/* {"t":100, "x": bin32 of 4 GiB} */
	static const uint8_t bin32[] = {0x82, 0xa1, 't',  0x64, 0xa1, 'x',
	                                0xc6, 0xff, 0xff, 0xff, 0xff, 0};
	/* {"t":100, "x": ext32 of 4 GiB} */
	static const uint8_t ext32[] = {0x82, 0xa1, 't',  0x64, 0xa1, 'x', 0xc9,
	                                0xff, 0xff, 0xff, 0xff, 0x01, 0};
	/* map with fixmap count 15 but 1 pair present */
	static const uint8_t fixmap[] = {0x8f, 0xa1, 't', 0x64};
	/* a map count exactly at the byte budget: 2 pairs need 4 bytes */
	static const uint8_t mapn[] = {0x81, 0xa1, 'x', 0x82, 0x01};

	limit_memory();
	expect_bad(map32, sizeof(map32));
	expect_bad(map32max, sizeof(map32max));
	expect_bad(map16, sizeof(map16));
	expect_bad(arr32, sizeof(arr32));
	expect_bad(arr16, sizeof(arr16));
	expect_bad(str32, sizeof(str32));
	expect_bad(bin32, sizeof(bin32));
	expect_bad(ext32, sizeof(ext32));
	expect_bad(fixmap, sizeof(fixmap));
	expect_bad(mapn, sizeof(mapn));
}
END_TEST

START_TEST(test_bad_str_lengths)
{
	/* {"t":100,"name": fixstr of 5 with 2 bytes} */
	static const uint8_t fix[] = {0x82, 0xa1, 't', 0x64, 0xa4, 'n',
	                              'a',  'm',  'e', 0xa5, 'a',  'b'};
	/* str8 claiming 200 bytes */
	static const uint8_t s8[] = {0x82, 0xa1, 't',  0x64, 0xa4, 'n', 'a',
	                             'm',  'e',  0xd9, 200,  'a',  'b'};
	/* a key whose str16 length runs past the end */
	static const uint8_t key[] = {0x81, 0xda, 0x00, 0x10, 't', 0x64};

	expect_bad(fix, sizeof(fix));
	expect_bad(s8, sizeof(s8));
	expect_bad(key, sizeof(key));
}
END_TEST

/* Packs {"t": t, key: <value written by fn>} and decodes it. */
static int decode_kv(int t, const char *key,
                     void (*fn)(msgpack_packer *pk, void *arg), void *arg,
                     struct ipc_msg *out)
{
	msgpack_sbuffer sb;
	msgpack_packer pk;
	int r;

	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	msgpack_pack_map(&pk, 2);
	pk_str(&pk, "t");
	msgpack_pack_int(&pk, t);
	pk_str(&pk, key);
	fn(&pk, arg);
	r = decode_body(sb.data, sb.size, out);
	msgpack_sbuffer_destroy(&sb);
	return r;
}

static void v_str(msgpack_packer *pk, void *arg)
{
	pk_str(pk, arg);
}
static void v_int(msgpack_packer *pk, void *arg)
{
	msgpack_pack_int64(pk, *(int64_t *)arg);
}
static void v_u64max(msgpack_packer *pk, void *arg)
{
	(void)arg;
	msgpack_pack_uint64(pk, UINT64_MAX);
}
static void v_array(msgpack_packer *pk, void *arg)
{
	(void)arg;
	msgpack_pack_array(pk, 1);
	msgpack_pack_int(pk, 1);
}
static void v_true(msgpack_packer *pk, void *arg)
{
	(void)arg;
	msgpack_pack_true(pk);
}
static void v_float(msgpack_packer *pk, void *arg)
{
	(void)arg;
	msgpack_pack_double(pk, 1.5);
}
static void v_bin(msgpack_packer *pk, void *arg)
{
	(void)arg;
	msgpack_pack_bin(pk, 2);
	msgpack_pack_bin_body(pk, "ab", 2);
}
static void v_nil(msgpack_packer *pk, void *arg)
{
	(void)arg;
	msgpack_pack_nil(pk);
}

START_TEST(test_wrong_value_types)
{
	struct ipc_msg m;
	int64_t neg = -1, big = (int64_t)UINT32_MAX + 1, ok = 5;

	ck_assert_int_eq(decode_kv(IPC_OK, "id", v_int, &neg, &m), -EBADMSG);
	ck_assert_int_eq(decode_kv(IPC_OK, "id", v_int, &big, &m), -EBADMSG);
	ck_assert_int_eq(decode_kv(IPC_OK, "id", v_str, "1", &m), -EBADMSG);
	ck_assert_int_eq(decode_kv(IPC_OK, "id", v_float, NULL, &m), -EBADMSG);
	ck_assert_int_eq(decode_kv(IPC_OK, "code", v_u64max, NULL, &m),
	                 -EBADMSG);
	ck_assert_int_eq(decode_kv(IPC_OK, "code", v_true, NULL, &m), -EBADMSG);
	ck_assert_int_eq(decode_kv(IPC_OK, "at", v_str, "x", &m), -EBADMSG);
	ck_assert_int_eq(decode_kv(IPC_EVENT, "name", v_int, &ok, &m),
	                 -EBADMSG);
	ck_assert_int_eq(decode_kv(IPC_EVENT, "name", v_bin, NULL, &m),
	                 -EBADMSG);
	ck_assert_int_eq(decode_kv(IPC_EVENT, "data", v_array, NULL, &m),
	                 -EBADMSG);
	ck_assert_int_eq(decode_kv(IPC_ERROR, "msg", v_int, &ok, &m), -EBADMSG);
	ck_assert_int_eq(decode_kv(IPC_STATE, "state", v_true, NULL, &m),
	                 -EBADMSG);
	/* invalid UTF-8, embedded NUL, surrogates, overlong forms */
	ck_assert_int_eq(decode_kv(IPC_EVENT, "name", v_str, "a\xff", &m),
	                 -EBADMSG);
	ck_assert_int_eq(
	        decode_kv(IPC_EVENT, "name", v_str, "\xed\xa0\x80", &m),
	        -EBADMSG);
	ck_assert_int_eq(decode_kv(IPC_EVENT, "name", v_str, "\xc0\xaf", &m),
	                 -EBADMSG);
	ck_assert_int_eq(decode_kv(IPC_EVENT, "name", v_str, "\xe2\x82", &m),
	                 -EBADMSG);

	/* and the valid counterparts decode */
	ck_assert_int_eq(decode_kv(IPC_OK, "id", v_int, &ok, &m), 0);
	ck_assert(m.has_id && m.id == 5);
	ipc_msg_clear(&m);
	ck_assert_int_eq(
	        decode_kv(IPC_EVENT, "name", v_str, "\xe2\x82\xac", &m), 0);
	ck_assert_str_eq(m.name, "\xe2\x82\xac");
	ipc_msg_clear(&m);
	/* nil is "absent" */
	ck_assert_int_eq(decode_kv(IPC_EVENT, "data", v_nil, NULL, &m), 0);
	ck_assert_ptr_null(m.data);
	ipc_msg_clear(&m);
}
END_TEST

START_TEST(test_type_key)
{
	static const uint8_t no_t[] = {0x81, 0xa2, 'i', 'd', 0x01};
	static const uint8_t neg_t[] = {0x81, 0xa1, 't', 0xff};
	static const uint8_t str_t[] = {0x81, 0xa1, 't', 0xa1, '1'};
	static const uint8_t nil_t[] = {0x81, 0xa1, 't', 0xc0};

	expect_bad(no_t, sizeof(no_t));
	expect_bad(neg_t, sizeof(neg_t));
	expect_bad(str_t, sizeof(str_t));
	expect_bad(nil_t, sizeof(nil_t));
}
END_TEST

/* {"t":100, "x": depth nested one-element arrays around 1} */
static size_t nested(uint8_t *buf, int depth)
{
	size_t n = 0;

	buf[n++] = 0x82;
	buf[n++] = 0xa1;
	buf[n++] = 't';
	buf[n++] = 0x64;
	buf[n++] = 0xa1;
	buf[n++] = 'x';
	for (int k = 0; k < depth; k++)
		buf[n++] = 0x91;
	buf[n++] = 0x01;
	return n;
}

START_TEST(test_nesting)
{
	uint8_t buf[64];
	struct ipc_msg m;
	size_t n;

	/* the top map is level 1: 7 more containers fit, 8 do not */
	n = nested(buf, 7);
	ck_assert_int_eq(decode_body(buf, n, &m), 0);
	ck_assert_int_eq(m.type, 100);
	ipc_msg_clear(&m);
	n = nested(buf, 8);
	expect_bad(buf, n);
	n = nested(buf, 40);
	expect_bad(buf, n);
}
END_TEST

START_TEST(test_unknown_keys_and_aliases)
{
	msgpack_sbuffer sb;
	msgpack_packer pk;
	struct ipc_msg m;

	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	msgpack_pack_map(&pk, 8);
	pk_str(&pk, "future");
	msgpack_pack_map(&pk, 1);
	pk_str(&pk, "a");
	msgpack_pack_array(&pk, 2);
	msgpack_pack_double(&pk, 2.5);
	msgpack_pack_bin(&pk, 1);
	msgpack_pack_bin_body(&pk, "z", 1);
	msgpack_pack_int(&pk, 42); /* a non-string key: skipped */
	pk_str(&pk, "ignored");
	msgpack_pack_array(&pk, 1); /* a container as a key: skipped too */
	msgpack_pack_int(&pk, 1);
	msgpack_pack_nil(&pk);
	pk_str(&pk, "t");
	msgpack_pack_int(&pk, IPC_EMIT_REPLY);
	pk_str(&pk, "id");
	msgpack_pack_uint32(&pk, 77);
	pk_str(&pk, "result");
	msgpack_pack_int(&pk, IPC_EMIT_QUEUED);
	pk_str(&pk, "name");
	pk_str(&pk, "first");
	pk_str(&pk, "name"); /* repeated: the last one wins */
	pk_str(&pk, "second");

	ck_assert_int_eq(decode_body(sb.data, sb.size, &m), 0);
	ck_assert_int_eq(m.type, IPC_EMIT_REPLY);
	ck_assert(m.has_id && m.id == 77);
	ck_assert(m.has_code && m.code == IPC_EMIT_QUEUED);
	ck_assert_str_eq(m.name, "second");
	ck_assert_ptr_null(m.text);
	ck_assert_int_eq(ipc_msg_check(&m, IPC_DIR_S2C), 0);
	ipc_msg_clear(&m);
	msgpack_sbuffer_destroy(&sb);

	/* "v" is the version's other spelling; "client" is the text */
	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	msgpack_pack_map(&pk, 3);
	pk_str(&pk, "t");
	msgpack_pack_int(&pk, IPC_HELLO);
	pk_str(&pk, "v");
	msgpack_pack_int(&pk, 1);
	pk_str(&pk, "client");
	pk_str(&pk, "me");
	ck_assert_int_eq(decode_body(sb.data, sb.size, &m), 0);
	ck_assert(m.has_code && m.code == 1);
	ck_assert_str_eq(m.text, "me");
	ipc_msg_clear(&m);
	msgpack_sbuffer_destroy(&sb);
}
END_TEST

START_TEST(test_name_too_long)
{
	char *name = malloc(IPC_MAX_NAME + 2);
	struct ipc_msg m;

	memset(name, 'a', IPC_MAX_NAME + 1);
	name[IPC_MAX_NAME + 1] = '\0';
	ck_assert_int_eq(decode_kv(IPC_EVENT, "name", v_str, name, &m),
	                 -EBADMSG);
	name[IPC_MAX_NAME] = '\0';
	ck_assert_int_eq(decode_kv(IPC_EVENT, "name", v_str, name, &m), 0);
	ipc_msg_clear(&m);
	free(name);
}
END_TEST

/* ---- the output buffer ---- */

START_TEST(test_buf_limit)
{
	struct ipc_msg m = {.type = IPC_EVENT,
	                    .name = "ev",
	                    .data = "[1,2,3]",
	                    .data_len = 7};
	struct ipc_buf b;
	uint8_t copy[256];
	size_t one, len;

	ipc_buf_init(&b, 256);
	ck_assert_int_eq(ipc_encode(&b, &m), 0);
	one = b.len;
	while (b.len + one <= 256)
		ck_assert_int_eq(ipc_encode(&b, &m), 0);
	len = b.len;
	memcpy(copy, b.data, len);
	ck_assert_int_eq(ipc_encode(&b, &m), -ENOBUFS);
	ck_assert_uint_eq(b.len, len);
	ck_assert(memcmp(copy, b.data, len) == 0);
	ck_assert_uint_le(b.cap, 256);

	/* consume makes room again, and frames stay whole */
	ipc_buf_consume(&b, one);
	ck_assert_int_eq(ipc_encode(&b, &m), 0);
	ck_assert(memcmp(b.data, copy + one, len - one) == 0);
	ipc_buf_consume(&b, b.len + 10);
	ck_assert_uint_eq(b.len, 0);
	ipc_buf_free(&b);

	/* fields out of range */
	ipc_buf_init(&b, 1 << 22);
	{
		char *name = malloc(IPC_MAX_NAME + 2);

		memset(name, 'a', IPC_MAX_NAME + 1);
		name[IPC_MAX_NAME + 1] = '\0';
		m.name = name;
		ck_assert_int_eq(ipc_encode(&b, &m), -EINVAL);
		free(name);
	}
	m.name = "ev";
	m.data_len = IPC_MAX_DATA + 1;
	ck_assert_int_eq(ipc_encode(&b, &m), -EINVAL);
	m.data = NULL;
	m.data_len = 3;
	ck_assert_int_eq(ipc_encode(&b, &m), -EINVAL);
	{
		char *text = malloc(IPC_MAX_FRAME + 2);

		memset(text, 'j', IPC_MAX_FRAME + 1);
		text[IPC_MAX_FRAME + 1] = '\0';
		m.data_len = 0;
		m.text = text;
		ck_assert_int_eq(ipc_encode(&b, &m), -EMSGSIZE);
		free(text);
	}
	ck_assert_uint_eq(b.len, 0);
	ipc_buf_free(&b);
}
END_TEST

/* ---- random input never crashes ---- */

static uint64_t rng_state;

static uint32_t rnd(void)
{
	/* xorshift64*: seeded, so a failure can be replayed */
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return (uint32_t)((rng_state * 0x2545f4914f6cdd1dULL) >> 32);
}

START_TEST(test_random_bytes)
{
	const struct ipc_msg seed_msg = {.type = IPC_EMIT,
	                                 .has_id = true,
	                                 .id = 99,
	                                 .has_code = true,
	                                 .code = 3,
	                                 .at = 12345678901LL,
	                                 .name = "room/1",
	                                 .data = "{\"x\":[true,null]}",
	                                 .data_len = 17,
	                                 .text = "t",
	                                 .state = "s"};
	static const uint8_t interesting[] = {
	        0x80, 0x8f, 0x90, 0x9f, 0xa0, 0xbf, 0xc0, 0xc1, 0xc2, 0xc4,
	        0xc6, 0xc7, 0xc9, 0xca, 0xcb, 0xcf, 0xd3, 0xd4, 0xd8, 0xd9,
	        0xdb, 0xdc, 0xdd, 0xde, 0xdf, 0xe0, 0xff, 0x00, 0x7f};
	struct ipc_buf good;
	uint8_t body[512];
	unsigned ok = 0, bad = 0;

	rng_state = 0x9e3779b97f4a7c15ULL ^ (uint64_t)_i;
	ipc_buf_init(&good, 4096);
	ck_assert_int_eq(ipc_encode(&good, &seed_msg), 0);

	for (int iter = 0; iter < 50000; iter++) {
		size_t n;
		struct ipc_msg m;
		int r;

		if (iter % 2) {
			/* mutate a valid body */
			n = good.len - IPC_HEADER_SIZE;
			memcpy(body, good.data + IPC_HEADER_SIZE, n);
			for (unsigned k = rnd() % 4 + 1; k; k--) {
				size_t at = rnd() % n;

				body[at] =
				        rnd() % 3
				                ? (uint8_t)rnd()
				                : interesting
				                          [rnd() %
				                           sizeof(interesting)];
			}
			if (rnd() % 4 == 0)
				n = rnd() % n;
		} else {
			/* structure-heavy noise starting with a map */
			n = rnd() % sizeof(body);
			for (size_t k = 0; k < n; k++)
				body[k] =
				        rnd() % 2
				                ? interesting
				                          [rnd() %
				                           sizeof(interesting)]
				                : (uint8_t)rnd();
			if (n)
				body[0] = 0x80 | (rnd() % 16);
		}
		r = decode_body(body, n, &m);
		ck_assert_msg(r == 0 || r == -EBADMSG, "iter %d: %d", iter, r);
		if (r == 0) {
			ok++;
			(void)ipc_msg_check(&m, IPC_DIR_C2S);
			(void)ipc_type_name(m.type);
			ipc_msg_clear(&m);
		} else {
			bad++;
		}
	}
	/* the loop exercised both outcomes */
	ck_assert_uint_gt(ok, 0);
	ck_assert_uint_gt(bad, 0);
	ipc_buf_free(&good);
}
END_TEST

/* ---- against the reference codec (tests/ref/ipc_ref.c) ---- */

/* Both encoders give the same result and, on success, the same bytes; on
 * failure both leave the buffer as it was. */
static void same_encoding(const struct ipc_msg *m, size_t limit)
{
	struct ipc_buf a, b;
	int ra, rb;

	ipc_buf_init(&a, limit);
	ipc_buf_init(&b, limit);
	ra = ipc_encode(&a, m);
	rb = ref_ipc_encode(&b, m);
	ck_assert_int_eq(ra, rb);
	ck_assert_uint_eq(a.len, b.len);
	if (a.len)
		ck_assert(memcmp(a.data, b.data, a.len) == 0);
	ipc_buf_free(&a);
	ipc_buf_free(&b);
}

static bool msg_eq(const struct ipc_msg *a, const struct ipc_msg *b)
{
	return a->type == b->type && a->has_id == b->has_id && a->id == b->id &&
	       a->has_code == b->has_code && a->code == b->code &&
	       a->at == b->at && str_eq(a->name, b->name) &&
	       str_eq(a->text, b->text) && str_eq(a->state, b->state) &&
	       a->data_len == b->data_len && (!a->data) == (!b->data) &&
	       (!a->data || memcmp(a->data, b->data, a->data_len) == 0);
}

/* A string of ipc_decode_in_place() lies within the frame it came from. */
static bool inside(const char *s, size_t n, const uint8_t *f, size_t len)
{
	return !s ||
	       ((const uint8_t *)s >= f && (const uint8_t *)s + n < f + len);
}

/* Both decoders give the same result and the same fields; so does
 * ipc_decode_in_place(), on a copy exactly as long as the frame (ASan
 * catches a write past it), with every string inside that copy. */
static void same_decoding(const uint8_t *f, size_t len)
{
	struct ipc_msg a, b, c;
	int ra = ipc_decode(f, len, &a);
	int rb = ref_ipc_decode(f, len, &b);
	uint8_t *copy = malloc(len ? len : 1);
	int rc;

	ck_assert_ptr_nonnull(copy);
	if (len)
		memcpy(copy, f, len);
	rc = ipc_decode_in_place(copy, len, &c);
	ck_assert_int_eq(ra, rb);
	ck_assert(msg_eq(&a, &b));
	ck_assert_int_eq(rc, ra);
	ck_assert(msg_eq(&c, &a));
	ck_assert_ptr_null(c.zone_);
	if (rc == 0) {
		ck_assert(
		        inside(c.name, c.name ? strlen(c.name) : 0, copy, len));
		ck_assert(inside(c.data, c.data_len, copy, len));
		ck_assert(
		        inside(c.text, c.text ? strlen(c.text) : 0, copy, len));
		ck_assert(inside(c.state, c.state ? strlen(c.state) : 0, copy,
		                 len));
		if (c.data)
			ck_assert_int_eq(c.data[c.data_len], '\0');
	}
	ipc_msg_clear(&c);
	free(copy);
	ipc_msg_clear(&a);
	ipc_msg_clear(&b);
}

/* Every integer width msgpack has, at both ends of each. */
static const int64_t edge_ints[] = {INT64_MIN,
                                    -(INT64_C(1) << 31) - 1,
                                    -(INT64_C(1) << 31),
                                    -32769,
                                    -32768,
                                    -129,
                                    -128,
                                    -33,
                                    -32,
                                    -1,
                                    0,
                                    1,
                                    127,
                                    128,
                                    255,
                                    256,
                                    65535,
                                    65536,
                                    UINT32_MAX,
                                    (INT64_C(1) << 32),
                                    INT64_MAX};
/* Every string header size, at both ends of each. */
static const size_t edge_lens[] = {0,    1,    31,    32,    255,  256,
                                   1024, 1025, 65535, 65536, 70000};

START_TEST(test_encode_as_reference)
{
	const size_t nints = sizeof(edge_ints) / sizeof(edge_ints[0]);
	const size_t nlens = sizeof(edge_lens) / sizeof(edge_lens[0]);
	const int types[] = {IPC_HELLO,
	                     IPC_HELLO_OK,
	                     IPC_OK,
	                     IPC_ERROR,
	                     IPC_STATUS_REPLY,
	                     IPC_STATE,
	                     IPC_EMIT,
	                     IPC_EMIT_REPLY,
	                     IPC_EVENT,
	                     0,
	                     127,
	                     128,
	                     255,
	                     256,
	                     65535,
	                     65536,
	                     INT32_MAX};
	char *text = malloc(IPC_MAX_FRAME + 2);

	ck_assert_ptr_nonnull(text);
	memset(text, 'x', IPC_MAX_FRAME + 1);
	text[IPC_MAX_FRAME + 1] = '\0';
	for (size_t t = 0; t < sizeof(types) / sizeof(types[0]); t++) {
		for (size_t i = 0; i < nints; i++) {
			struct ipc_msg m = {.type = types[t],
			                    .has_id =
			                            edge_ints[i] >= 0 &&
			                            edge_ints[i] <= UINT32_MAX,
			                    .id = (uint32_t)edge_ints[i],
			                    .has_code = i % 2 == 0,
			                    .code = edge_ints[i],
			                    .at = edge_ints[nints - 1 - i]};

			same_encoding(&m, IPC_HEADER_SIZE + IPC_MAX_FRAME);
			/* numbers only (ipc_encode()'s short path), with and
			 * without an id and a code */
			m.at = 0;
			same_encoding(&m, IPC_HEADER_SIZE + IPC_MAX_FRAME);
			m.has_code = !m.has_code;
			same_encoding(&m, IPC_HEADER_SIZE + IPC_MAX_FRAME);
			m.has_id = !m.has_id;
			same_encoding(&m, IPC_HEADER_SIZE + IPC_MAX_FRAME);
		}
		for (size_t i = 0; i < nlens; i++) {
			size_t n = edge_lens[i];
			struct ipc_msg m = {.type = types[t],
			                    .has_id = true,
			                    .id = 7,
			                    .name = text + IPC_MAX_FRAME + 1 -
			                            (n > 1100 ? 1100 : n),
			                    .data = text,
			                    .data_len = n,
			                    .text = text + IPC_MAX_FRAME + 1 -
			                            n,
			                    .state = i % 2 ? "OPEN" : NULL};

			same_encoding(&m, IPC_HEADER_SIZE + IPC_MAX_FRAME);
			/* a limit too small: -ENOBUFS from both */
			same_encoding(&m, 40);
			m.data = NULL;
			m.data_len = 0;
			m.text = NULL;
			m.state = text + IPC_MAX_FRAME + 1 - n;
			same_encoding(&m, IPC_HEADER_SIZE + IPC_MAX_FRAME);
		}
	}
	{
		/* the refusals: data over the limit, text over the frame */
		struct ipc_msg m = {.type = IPC_EMIT,
		                    .data = text,
		                    .data_len = IPC_MAX_DATA + 1};

		same_encoding(&m, IPC_HEADER_SIZE + IPC_MAX_FRAME);
		m.data_len = IPC_MAX_DATA;
		m.text = text;
		same_encoding(&m, IPC_HEADER_SIZE + IPC_MAX_FRAME);
		m.data = NULL;
		m.data_len = 5;
		same_encoding(&m, IPC_HEADER_SIZE + IPC_MAX_FRAME);
	}
	free(text);
}
END_TEST

/* Frames both decoders must read alike: valid ones of every shape, each
 * cut short at every length, and each with every byte changed. */
START_TEST(test_decode_as_reference)
{
	const size_t nints = sizeof(edge_ints) / sizeof(edge_ints[0]);
	struct ipc_buf b;

	ipc_buf_init(&b, 1 << 20);
	for (size_t i = 0; i < nints; i++) {
		struct ipc_msg m = {.type = i % 2 ? IPC_EMIT : IPC_STATE,
		                    .has_id = true,
		                    .id = (uint32_t)i,
		                    .has_code = true,
		                    .code = edge_ints[i],
		                    .at = edge_ints[i],
		                    .name = "a.b",
		                    .data = "{\"k\":[1,2]}",
		                    .data_len = 11,
		                    .text = i % 3 ? "why" : NULL,
		                    .state = i % 2 ? NULL : "OPEN"};

		b.len = 0;
		ck_assert_int_eq(ipc_encode(&b, &m), 0);
		for (size_t k = 0; k <= b.len; k++) {
			uint8_t *f = malloc(b.len);

			ck_assert_ptr_nonnull(f);
			memcpy(f, b.data, b.len);
			same_decoding(f, k);
			/* the header told the truth: only the body is cut */
			if (k >= IPC_HEADER_SIZE) {
				size_t body = k - IPC_HEADER_SIZE;

				f[0] = (uint8_t)(body >> 24);
				f[1] = (uint8_t)(body >> 16);
				f[2] = (uint8_t)(body >> 8);
				f[3] = (uint8_t)body;
				same_decoding(f, k);
			}
			for (unsigned v = 0; k < b.len && v < 256; v += 7) {
				memcpy(f, b.data, b.len);
				f[k] ^= (uint8_t)(v ? v : 0xff);
				same_decoding(f, b.len);
			}
			free(f);
		}
	}
	ipc_buf_free(&b);
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("ipcproto");
	TCase *tc = tcase_create("core");

	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_roundtrip_every_type);
	tcase_add_test(tc, test_roundtrip_large);
	tcase_add_test(tc, test_check_catalogue);
	tcase_add_test(tc, test_peek_partial_and_oversize);
	tcase_add_test(tc, test_decode_header_mismatch);
	tcase_add_test(tc, test_not_a_map);
	tcase_add_test(tc, test_truncated_everywhere);
	tcase_add_test(tc, test_trailing_bytes);
	tcase_add_test(tc, test_huge_counts);
	tcase_add_test(tc, test_bad_str_lengths);
	tcase_add_test(tc, test_wrong_value_types);
	tcase_add_test(tc, test_type_key);
	tcase_add_test(tc, test_nesting);
	tcase_add_test(tc, test_unknown_keys_and_aliases);
	tcase_add_test(tc, test_name_too_long);
	tcase_add_test(tc, test_buf_limit);
	tcase_add_test(tc, test_encode_as_reference);
	tcase_add_test(tc, test_decode_as_reference);
	tcase_add_loop_test(tc, test_random_bytes, 0, 4);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return check_run(suite());
}

/*
 * The local IPC protocol: framing, and an encoder and a decoder of our own
 * (msgpack-c is only the tests' reference).
 *
 * The decoder does not use msgpack_unpack: msgpack-c 4.0's unpacker reserves
 * count * 24 bytes for any container header it sees (a 5-byte header can ask
 * for a gigabyte), so a hostile client could make dsd allocate at will.
 * Instead a small cursor walks the bytes in place, rejects any container
 * claiming more elements than there are bytes left, bounds nesting, and only
 * then copies the few strings we keep into one exactly-sized zone (or, for
 * ipc_decode_in_place(), makes them C strings inside the frame itself).
 */
#include <errno.h>
#include <limits.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif
#include <stdlib.h>
#include <string.h>

#include "ipcproto.h"
#include "utf8.h"

/* Unknown values may nest, but not without bound (the recursion is ours). */
#define MAX_DEPTH 8

/* ---- output buffer ---- */

void ipc_buf_init(struct ipc_buf *b, size_t limit)
{
	b->data = NULL;
	b->len = 0;
	b->cap = 0;
	b->limit = limit;
}

void ipc_buf_free(struct ipc_buf *b)
{
	free(b->data);
	b->data = NULL;
	b->len = 0;
	b->cap = 0;
}

void ipc_buf_consume(struct ipc_buf *b, size_t n)
{
	if (n >= b->len) {
		b->len = 0;
		return;
	}
	memmove(b->data, b->data + n, b->len - n);
	b->len -= n;
}

int ipc_buf_reserve(struct ipc_buf *b, size_t extra)
{
	size_t want, cap;
	uint8_t *p;

	if (extra > b->limit || b->len > b->limit - extra)
		return -ENOBUFS;
	want = b->len + extra;
	if (want <= b->cap)
		return 0;
	/* Grow geometrically, but never past the limit. */
	cap = b->cap ? b->cap : 256;
	while (cap < want)
		cap = cap > SIZE_MAX / 2 ? want : cap * 2;
	if (cap > b->limit)
		cap = b->limit;
	p = realloc(b->data, cap);
	if (!p)
		return -ENOMEM;
	b->data = p;
	b->cap = cap;
	return 0;
}

/* ---- encoding ---- */

/*
 * Written directly, in one pass once the size is known, with the same
 * bytes msgpack-c's packer chose (tests/unit/test_ipcproto.c compares them
 * across every boundary): keys in a fixed order, each integer in its
 * shortest form (non-negative values unsigned), each string with the
 * shortest header (str8 from 32 bytes on).
 */

/* Which key carries the free text of each type. */
static const char *text_key(int type)
{
	switch (type) {
	case IPC_HELLO:
		return "client";
	case IPC_HELLO_OK:
		return "server";
	case IPC_STATUS_REPLY:
		return "json";
	case IPC_STATE:
		return "reason";
	default:
		return "msg";
	}
}

static inline size_t int_size(int64_t d)
{
	if (d >= 0) {
		if (d < 128)
			return 1;
		if (d < 256)
			return 2;
		if (d < 65536)
			return 3;
		return d <= UINT32_MAX ? 5 : 9;
	}
	if (d >= -32)
		return 1;
	if (d >= -128)
		return 2;
	if (d >= -32768)
		return 3;
	return d >= INT32_MIN ? 5 : 9;
}

static uint8_t *put_be(uint8_t *p, uint8_t tag, uint64_t v, size_t width)
{
	*p++ = tag;
	for (size_t k = width; k > 0; k--)
		*p++ = (uint8_t)(v >> (8 * (k - 1)));
	return p;
}

static inline __attribute__((always_inline)) uint8_t *put_int(uint8_t *p,
                                                              int64_t d)
{
	uint64_t u = (uint64_t)d;

	switch (int_size(d)) {
	case 1:
		*p = (uint8_t)u; /* positive or negative fixint */
		return p + 1;
	case 2:
		return put_be(p, d >= 0 ? 0xcc : 0xd0, u, 1);
	case 3:
		return put_be(p, d >= 0 ? 0xcd : 0xd1, u, 2);
	case 5:
		return put_be(p, d >= 0 ? 0xce : 0xd2, u, 4);
	default:
		return put_be(p, d >= 0 ? 0xcf : 0xd3, u, 8);
	}
}

static size_t str_size(size_t n)
{
	return n < 32 ? 1 : n < 256 ? 2 : n < 65536 ? 3 : 5;
}

static uint8_t *put_str(uint8_t *p, const void *s, size_t n)
{
	switch (str_size(n)) {
	case 1:
		*p++ = (uint8_t)(0xa0 | n);
		break;
	case 2:
		p = put_be(p, 0xd9, n, 1);
		break;
	case 3:
		p = put_be(p, 0xda, n, 2);
		break;
	default:
		p = put_be(p, 0xdb, n, 4);
		break;
	}
	if (n)
		memcpy(p, s, n);
	return p + n;
}

/* A key: always a fixstr. */
static size_t key_size(const char *k)
{
	return 1 + strlen(k);
}

static inline __attribute__((always_inline)) uint8_t *
put_key(uint8_t *p, const char *k, size_t n)
{
	*p++ = (uint8_t)(0xa0 | n);
	memcpy(p, k, n);
	return p + n;
}

/* A message of numbers only (OK, EMIT_REPLY, EMIT_CONFIRMED: most of
 * what dsd writes), without the checks and sizes of strings; the same
 * bytes as ipc_encode()'s general path. */
static int encode_numbers(struct ipc_buf *b, const struct ipc_msg *m)
{
	size_t body = 1 + 2 + int_size(m->type), fields = 1;
	uint8_t *p;
	int r;

	if (m->has_id)
		body += 3 + int_size(m->id), fields++;
	if (m->has_code)
		body += 5 + int_size(m->code), fields++;
	r = ipc_buf_reserve(b, IPC_HEADER_SIZE + body);
	if (r < 0)
		return r;
	p = b->data + b->len;
	p[0] = 0;
	p[1] = 0;
	p[2] = 0;
	p[3] = (uint8_t)body; /* at most 1 + 3 + 12 + 14 bytes */
	p += IPC_HEADER_SIZE;
	*p++ = (uint8_t)(0x80 | fields);
	p = put_int(put_key(p, "t", 1), m->type);
	if (m->has_id)
		p = put_int(put_key(p, "id", 2), m->id);
	if (m->has_code)
		p = put_int(put_key(p, "code", 4), m->code);
	b->len += IPC_HEADER_SIZE + body;
	return 0;
}

int ipc_encode(struct ipc_buf *b, const struct ipc_msg *m)
{
	bool has_at = m->type == IPC_STATE || m->at != 0;
	const char *tkey;
	size_t name_len = 0, text_len = 0, state_len = 0, body, fields = 1;
	uint8_t *p;
	int r;

	if (!has_at && !m->name && !m->data && !m->data_len && !m->text &&
	    !m->state)
		return encode_numbers(b, m);
	tkey = text_key(m->type);
	if (m->name) {
		name_len = strnlen(m->name, IPC_MAX_NAME + 1);
		if (name_len > IPC_MAX_NAME)
			return -EINVAL;
	}
	if (m->data_len > IPC_MAX_DATA || (!m->data && m->data_len))
		return -EINVAL;
	if (m->text)
		text_len = strlen(m->text);
	if (m->state)
		state_len = strlen(m->state);

	/* Measured first so b is either grown once or left untouched. */
	body = key_size("t") + int_size(m->type);
	if (m->has_id)
		body += key_size("id") + int_size(m->id), fields++;
	if (m->has_code)
		body += key_size("code") + int_size(m->code), fields++;
	if (has_at)
		body += key_size("at") + int_size(m->at), fields++;
	if (m->name)
		body += key_size("name") + str_size(name_len) + name_len,
		        fields++;
	if (m->data)
		body += key_size("data") + str_size(m->data_len) + m->data_len,
		        fields++;
	if (m->text) {
		if (text_len > IPC_MAX_FRAME)
			return -EMSGSIZE;
		body += key_size(tkey) + str_size(text_len) + text_len,
		        fields++;
	}
	if (m->state) {
		if (state_len > IPC_MAX_FRAME)
			return -EMSGSIZE;
		body += key_size("state") + str_size(state_len) + state_len,
		        fields++;
	}
	body += 1; /* the map header: at most 9 fields, a fixmap */
	if (body > IPC_MAX_FRAME)
		return -EMSGSIZE;
	r = ipc_buf_reserve(b, IPC_HEADER_SIZE + body);
	if (r < 0)
		return r;

	p = b->data + b->len;
	p[0] = (uint8_t)(body >> 24);
	p[1] = (uint8_t)(body >> 16);
	p[2] = (uint8_t)(body >> 8);
	p[3] = (uint8_t)body;
	p += IPC_HEADER_SIZE;
	*p++ = (uint8_t)(0x80 | fields);
	p = put_int(put_key(p, "t", 1), m->type);
	if (m->has_id)
		p = put_int(put_key(p, "id", 2), m->id);
	if (m->has_code)
		p = put_int(put_key(p, "code", 4), m->code);
	if (has_at)
		p = put_int(put_key(p, "at", 2), m->at);
	if (m->name)
		p = put_str(put_key(p, "name", 4), m->name, name_len);
	if (m->data)
		p = put_str(put_key(p, "data", 4), m->data, m->data_len);
	if (m->text)
		p = put_str(put_key(p, tkey, strlen(tkey)), m->text, text_len);
	if (m->state)
		p = put_str(put_key(p, "state", 5), m->state, state_len);
	b->len += IPC_HEADER_SIZE + body;
	return 0;
}

/* ---- framing ---- */

static uint32_t be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
	       (uint32_t)p[2] << 8 | p[3];
}

int ipc_frame_peek(const uint8_t *buf, size_t len, size_t *ret_frame_len)
{
	uint32_t body;

	if (len < IPC_HEADER_SIZE)
		return -EAGAIN;
	body = be32(buf);
	if (body > IPC_MAX_FRAME)
		return -EMSGSIZE;
	if (len - IPC_HEADER_SIZE < body)
		return -EAGAIN;
	*ret_frame_len = IPC_HEADER_SIZE + (size_t)body;
	return 0;
}

/* ---- decoding: a cursor over msgpack bytes ---- */

enum mp_kind {
	MP_NIL,
	MP_BOOL,
	MP_INT,    /* fits int64: .i */
	MP_BIGINT, /* uint64 over INT64_MAX */
	MP_FLOAT,
	MP_STR, /* .p, .n bytes */
	MP_BIN,
	MP_EXT,
	MP_ARRAY, /* .n elements follow */
	MP_MAP,   /* .n pairs follow */
};

struct mp_val {
	enum mp_kind kind;
	int64_t i;
	const uint8_t *p;
	uint32_t n;
};

struct cur {
	const uint8_t *p;
	size_t left;
};

static inline int take(struct cur *c, size_t n, const uint8_t **ret)
{
	if (n > c->left)
		return -EBADMSG;
	*ret = c->p;
	c->p += n;
	c->left -= n;
	return 0;
}

static inline int take_uint(struct cur *c, size_t width, uint64_t *ret)
{
	const uint8_t *q;
	uint64_t v = 0;

	if (take(c, width, &q) < 0)
		return -EBADMSG;
	for (size_t k = 0; k < width; k++)
		v = v << 8 | q[k];
	*ret = v;
	return 0;
}

/* Reads a str/bin/ext payload of n bytes, which must all be present. */
static inline int take_body(struct cur *c, uint64_t n, struct mp_val *v)
{
	if (n > c->left)
		return -EBADMSG;
	v->n = (uint32_t)n;
	return take(c, (size_t)n, &v->p);
}

/* A container of n elements, each at least one byte: n <= bytes left. */
static int container(struct cur *c, uint64_t n, size_t per, enum mp_kind k,
                     struct mp_val *v)
{
	if (n > c->left / per)
		return -EBADMSG;
	v->kind = k;
	v->n = (uint32_t)n;
	return 0;
}

static int sign_extend(uint64_t u, unsigned bits, int64_t *ret)
{
	if (bits < 64 && (u & (UINT64_C(1) << (bits - 1))))
		u |= ~UINT64_C(0) << bits;
	memcpy(ret, &u, sizeof(*ret));
	return 0;
}

/* Reads one value's header (and, for scalars, the whole value).  Inlined
 * where the decoder reads keys and values, so the cursor stays in
 * registers. */
static inline __attribute__((always_inline)) int read_val(struct cur *c,
                                                          struct mp_val *v)
{
	const uint8_t *q;
	uint64_t u;
	uint8_t b;
	int r;

	if (take(c, 1, &q) < 0)
		return -EBADMSG;
	b = *q;
	/* What most keys and values are: a short string, a small int. */
	if ((b & 0xe0) == 0xa0) {
		v->kind = MP_STR;
		v->i = 0;
		return take_body(c, b & 0x1f, v);
	}
	memset(v, 0, sizeof(*v));
	if (b <= 0x7f) {
		v->kind = MP_INT;
		v->i = b;
		return 0;
	}
	if (b >= 0xe0) {
		v->kind = MP_INT;
		v->i = (int64_t)(int8_t)b;
		return 0;
	}
	if ((b & 0xf0) == 0x80)
		return container(c, b & 0x0f, 2, MP_MAP, v);
	if ((b & 0xf0) == 0x90)
		return container(c, b & 0x0f, 1, MP_ARRAY, v);
	if ((b & 0xe0) == 0xa0) {
		v->kind = MP_STR;
		return take_body(c, b & 0x1f, v);
	}
	switch (b) {
	case 0xc0:
		v->kind = MP_NIL;
		return 0;
	case 0xc2:
	case 0xc3:
		v->kind = MP_BOOL;
		v->i = b == 0xc3;
		return 0;
	case 0xc4:
	case 0xc5:
	case 0xc6:
		v->kind = MP_BIN;
		if (take_uint(c, (size_t)1 << (b - 0xc4), &u) < 0)
			return -EBADMSG;
		return take_body(c, u, v);
	case 0xc7:
	case 0xc8:
	case 0xc9:
		/* ext: length, one type byte, then the payload */
		v->kind = MP_EXT;
		if (take_uint(c, (size_t)1 << (b - 0xc7), &u) < 0 ||
		    take(c, 1, &q) < 0)
			return -EBADMSG;
		return take_body(c, u, v);
	case 0xca:
	case 0xcb:
		v->kind = MP_FLOAT;
		return take(c, b == 0xca ? 4 : 8, &q);
	case 0xcc:
	case 0xcd:
	case 0xce:
	case 0xcf:
		if (take_uint(c, (size_t)1 << (b - 0xcc), &u) < 0)
			return -EBADMSG;
		if (u > INT64_MAX) {
			v->kind = MP_BIGINT;
			return 0;
		}
		v->kind = MP_INT;
		v->i = (int64_t)u;
		return 0;
	case 0xd0:
	case 0xd1:
	case 0xd2:
	case 0xd3: {
		size_t w = (size_t)1 << (b - 0xd0);

		if (take_uint(c, w, &u) < 0)
			return -EBADMSG;
		v->kind = MP_INT;
		return sign_extend(u, (unsigned)(w * 8), &v->i);
	}
	case 0xd4:
	case 0xd5:
	case 0xd6:
	case 0xd7:
	case 0xd8:
		/* fixext: one type byte and 1..16 bytes of payload */
		v->kind = MP_EXT;
		if (take(c, 1, &q) < 0)
			return -EBADMSG;
		return take_body(c, (uint64_t)1 << (b - 0xd4), v);
	case 0xd9:
	case 0xda:
	case 0xdb:
		v->kind = MP_STR;
		if (take_uint(c, (size_t)1 << (b - 0xd9), &u) < 0)
			return -EBADMSG;
		return take_body(c, u, v);
	case 0xdc:
	case 0xdd:
		r = take_uint(c, b == 0xdc ? 2 : 4, &u);
		return r < 0 ? r : container(c, u, 1, MP_ARRAY, v);
	case 0xde:
	case 0xdf:
		r = take_uint(c, b == 0xde ? 2 : 4, &u);
		return r < 0 ? r : container(c, u, 2, MP_MAP, v);
	default: /* 0xc1 is never used */
		return -EBADMSG;
	}
}

static bool is_container(const struct mp_val *v)
{
	return v->kind == MP_ARRAY || v->kind == MP_MAP;
}

/* Skips the elements of a container whose header was just read. */
static int skip_children(struct cur *c, const struct mp_val *v, int depth)
{
	uint64_t n = v->n;
	struct mp_val e;

	if (v->kind != MP_ARRAY && v->kind != MP_MAP)
		return 0;
	if (depth > MAX_DEPTH)
		return -EBADMSG;
	if (v->kind == MP_MAP)
		n *= 2;
	for (uint64_t k = 0; k < n; k++) {
		if (read_val(c, &e) < 0 || skip_children(c, &e, depth + 1) < 0)
			return -EBADMSG;
	}
	return 0;
}

/*
 * Text fields carry no NUL: it would cut them short in C.  Plain ASCII
 * without NUL (most names and data) goes sixteen bytes at a time with SSE2
 * (every x86-64; a signed comparison with 0 flags NUL and non-ASCII
 * together), then eight, and a tail of 1 to 7 bytes is checked as the last
 * eight bytes of the text when it has that many; from the first other
 * byte on, the general checks.
 */
static bool text_valid(const uint8_t *s, size_t n)
{
	const uint64_t ones = 0x0101010101010101ull, highs = ones << 7;
	size_t i = 0;
	uint64_t w;

#ifdef __SSE2__
	const __m128i zero = _mm_setzero_si128();

	while (n - i >= 16) {
		__m128i v =
		        _mm_loadu_si128((const __m128i *)(const void *)(s + i));

		if (_mm_movemask_epi8(_mm_cmpgt_epi8(v, zero)) != 0xffff)
			break;
		i += 16;
	}
#endif
	while (n - i >= 8) {
		memcpy(&w, s + i, 8);
		/* a high bit, or a zero byte */
		if ((w & highs) | ((w - ones) & ~w & highs))
			break;
		i += 8;
	}
	if (i < n && n - i < 8 && n >= 8) {
		/* The tail (under 8 bytes), with bytes already passed in
		 * front of it. */
		memcpy(&w, s + n - 8, 8);
		if (!((w & highs) | ((w - ones) & ~w & highs)))
			return true;
	}
	while (i < n && s[i] != 0 && s[i] < 0x80)
		i++;
	if (i == n)
		return true;
	return memchr(s + i, 0, n - i) == NULL && utf8_valid(s + i, n - i);
}

struct strref {
	const uint8_t *p;
	uint32_t n;
	bool set;
};

struct fields {
	bool has_t;
	int64_t t;
	struct strref name, data, text, state;
};

static bool key_is(const struct mp_val *k, const char *s, size_t n)
{
	return memcmp(k->p, s, n) == 0;
}

static int want_int(const struct mp_val *v, int64_t lo, int64_t hi,
                    int64_t *ret)
{
	if (v->kind != MP_INT || v->i < lo || v->i > hi)
		return -EBADMSG;
	*ret = v->i;
	return 0;
}

/* nil means "absent" for every optional string field. */
static int want_str(const struct mp_val *v, size_t max, struct strref *ret)
{
	if (v->kind == MP_NIL) {
		ret->set = false;
		return 0;
	}
	if (v->kind != MP_STR || v->n > max)
		return -EBADMSG;
	ret->p = v->p;
	ret->n = v->n;
	ret->set = true;
	return 0;
}

static int take_id(const struct mp_val *v, struct ipc_msg *m)
{
	int64_t x;

	if (v->kind == MP_NIL)
		return m->has_id = false, 0;
	if (want_int(v, 0, UINT32_MAX, &x) < 0)
		return -EBADMSG;
	m->has_id = true;
	m->id = (uint32_t)x;
	return 0;
}

static int take_code(const struct mp_val *v, struct ipc_msg *m)
{
	if (v->kind == MP_NIL)
		return m->has_code = false, 0;
	if (want_int(v, INT64_MIN, INT64_MAX, &m->code) < 0)
		return -EBADMSG;
	m->has_code = true;
	return 0;
}

static int take_at(const struct mp_val *v, struct ipc_msg *m)
{
	if (v->kind == MP_NIL)
		return m->at = 0, 0;
	return want_int(v, INT64_MIN, INT64_MAX, &m->at);
}

/* The keys we know, found by their length first. */
static int take_field(const struct mp_val *k, const struct mp_val *v,
                      struct ipc_msg *m, struct fields *f)
{
	switch (k->n) {
	case 1:
		if (key_is(k, "t", 1)) {
			f->has_t = true;
			return want_int(v, 0, INT_MAX, &f->t);
		}
		/* "v" and "result" are accepted spellings of "code". */
		if (key_is(k, "v", 1))
			return take_code(v, m);
		break;
	case 2:
		if (key_is(k, "id", 2))
			return take_id(v, m);
		if (key_is(k, "at", 2))
			return take_at(v, m);
		break;
	case 3:
		if (key_is(k, "msg", 3))
			return want_str(v, IPC_MAX_FRAME, &f->text);
		break;
	case 4:
		if (key_is(k, "code", 4))
			return take_code(v, m);
		if (key_is(k, "name", 4))
			return want_str(v, IPC_MAX_NAME, &f->name);
		if (key_is(k, "data", 4))
			return want_str(v, IPC_MAX_DATA, &f->data);
		if (key_is(k, "json", 4))
			return want_str(v, IPC_MAX_FRAME, &f->text);
		break;
	case 5:
		if (key_is(k, "state", 5))
			return want_str(v, IPC_MAX_FRAME, &f->state);
		break;
	case 6:
		if (key_is(k, "result", 6))
			return take_code(v, m);
		if (key_is(k, "reason", 6) || key_is(k, "client", 6) ||
		    key_is(k, "server", 6))
			return want_str(v, IPC_MAX_FRAME, &f->text);
		break;
	default:
		break;
	}
	return 0; /* unknown key: ignored so the protocol can grow */
}

static const char *zone_put(char **z, const struct strref *s)
{
	char *out = *z;

	if (!s->set)
		return NULL;
	if (s->n)
		memcpy(out, s->p, s->n);
	out[s->n] = '\0';
	*z += s->n + 1;
	return out;
}

/*
 * One pass: each key and value is read once, the structure checked as it
 * goes (every count against the bytes left, nesting bounded), the fields
 * we know taken on the way.  Any fault is -EBADMSG whichever check finds
 * it first, and nothing is allocated: *ret_m gets the numbers and the
 * type, *ret_f where the strings are in frame.
 */
static int decode_fields(const uint8_t *frame, size_t len,
                         struct ipc_msg *ret_m, struct fields *ret_f)
{
	struct ipc_msg m = {0};
	struct fields f = {0};
	struct mp_val top, k, v;
	struct cur c;

	if (len < IPC_HEADER_SIZE || len - IPC_HEADER_SIZE > IPC_MAX_FRAME ||
	    be32(frame) != len - IPC_HEADER_SIZE)
		return -EBADMSG;

	/* The whole body is one well-formed map, nothing after it. */
	c.p = frame + IPC_HEADER_SIZE;
	c.left = len - IPC_HEADER_SIZE;
	if (read_val(&c, &top) < 0 || top.kind != MP_MAP)
		return -EBADMSG;
	for (uint32_t i = 0; i < top.n; i++) {
		if (read_val(&c, &k) < 0 ||
		    (is_container(&k) && skip_children(&c, &k, 2) < 0) ||
		    read_val(&c, &v) < 0)
			return -EBADMSG;
		if (k.kind == MP_STR && take_field(&k, &v, &m, &f) < 0)
			return -EBADMSG;
		if (is_container(&v) && skip_children(&c, &v, 2) < 0)
			return -EBADMSG;
	}
	if (c.left != 0 || !f.has_t)
		return -EBADMSG;
	m.type = (int)f.t;
	if ((f.name.set && !text_valid(f.name.p, f.name.n)) ||
	    (f.text.set && !text_valid(f.text.p, f.text.n)) ||
	    (f.state.set && !text_valid(f.state.p, f.state.n)) ||
	    (f.data.set && !text_valid(f.data.p, f.data.n)))
		return -EBADMSG;
	*ret_m = m;
	*ret_f = f;
	return 0;
}

int ipc_decode(const uint8_t *frame, size_t len, struct ipc_msg *ret)
{
	struct ipc_msg m;
	struct fields f;
	size_t zlen = 0;
	char *zone, *z;
	int r;

	memset(ret, 0, sizeof(*ret));
	r = decode_fields(frame, len, &m, &f);
	if (r < 0)
		return r;

	/* One allocation, sized exactly, never more than the frame. */
	if (f.name.set)
		zlen += f.name.n + 1;
	if (f.data.set)
		zlen += f.data.n + 1;
	if (f.text.set)
		zlen += f.text.n + 1;
	if (f.state.set)
		zlen += f.state.n + 1;
	if (zlen) {
		zone = malloc(zlen);
		if (!zone)
			return -ENOMEM;
		z = zone;
		m.name = zone_put(&z, &f.name);
		m.data = zone_put(&z, &f.data);
		m.data_len = f.data.set ? f.data.n : 0;
		m.text = zone_put(&z, &f.text);
		m.state = zone_put(&z, &f.state);
		m.zone_ = zone;
	}
	*ret = m;
	return 0;
}

/* A string of the frame made a C string where it is: moved one byte back,
 * over the last byte of its own header (a msgpack string has a header of
 * at least one byte), and its NUL written where its last byte was.  Every
 * byte written belongs to this string's own header and body, so the
 * strings of one frame never touch each other, and nothing past the frame
 * is touched. */
static const char *terminate_in_place(uint8_t *frame, const struct strref *s)
{
	uint8_t *at;

	if (!s->set)
		return NULL;
	at = frame + (s->p - frame) - 1;
	memmove(at, s->p, s->n);
	at[s->n] = '\0';
	return (const char *)at;
}

int ipc_decode_in_place(uint8_t *frame, size_t len, struct ipc_msg *ret)
{
	struct ipc_msg m;
	struct fields f;
	int r;

	memset(ret, 0, sizeof(*ret));
	r = decode_fields(frame, len, &m, &f);
	if (r < 0)
		return r;
	m.name = terminate_in_place(frame, &f.name);
	m.data = terminate_in_place(frame, &f.data);
	m.data_len = f.data.set ? f.data.n : 0;
	m.text = terminate_in_place(frame, &f.text);
	m.state = terminate_in_place(frame, &f.state);
	*ret = m;
	return 0;
}

void ipc_msg_clear(struct ipc_msg *m)
{
	free(m->zone_);
	memset(m, 0, sizeof(*m));
}

/* ---- the message catalogue: one table for names, roles and fields ---- */

enum {
	NEED_ID = 1 << 0,
	NEED_CODE = 1 << 1,
	NEED_NAME = 1 << 2,
	NEED_TEXT = 1 << 3,
	NEED_STATE = 1 << 4,
};

static const struct type_info {
	int type;
	const char *name;
	enum ipc_dir dir;
	unsigned need;
} types[] = {
        /* looked up for every message: the one most frequent first */
        {IPC_EMIT, "EMIT", IPC_DIR_C2S, NEED_ID | NEED_NAME},
        {IPC_HELLO, "HELLO", IPC_DIR_C2S, NEED_CODE},
        {IPC_HELLO_OK, "HELLO_OK", IPC_DIR_S2C, NEED_CODE},
        {IPC_OK, "OK", IPC_DIR_S2C, NEED_ID},
        {IPC_ERROR, "ERROR", IPC_DIR_S2C, NEED_CODE},
        {IPC_STATUS, "STATUS", IPC_DIR_C2S, NEED_ID},
        {IPC_STATUS_REPLY, "STATUS_REPLY", IPC_DIR_S2C, NEED_ID | NEED_TEXT},
        {IPC_PAUSE, "PAUSE", IPC_DIR_C2S, NEED_ID},
        {IPC_RESUME, "RESUME", IPC_DIR_C2S, NEED_ID},
        {IPC_RELOAD, "RELOAD", IPC_DIR_C2S, NEED_ID},
        {IPC_WATCH, "WATCH", IPC_DIR_C2S, NEED_ID},
        {IPC_STATE, "STATE", IPC_DIR_S2C, NEED_STATE},
        {IPC_SUBSCRIBE, "SUBSCRIBE", IPC_DIR_C2S, NEED_ID | NEED_NAME},
        {IPC_UNSUBSCRIBE, "UNSUBSCRIBE", IPC_DIR_C2S, NEED_ID | NEED_NAME},
        {IPC_EMIT_REPLY, "EMIT_REPLY", IPC_DIR_S2C, NEED_ID | NEED_CODE},
        {IPC_EVENT, "EVENT", IPC_DIR_S2C, NEED_NAME},
        {IPC_SUB_DENIED, "SUB_DENIED", IPC_DIR_S2C, NEED_NAME},
        {IPC_EMIT_CONFIRMED, "EMIT_CONFIRMED", IPC_DIR_S2C, NEED_ID},
};

static const struct type_info *find_type(int type)
{
	for (size_t k = 0; k < sizeof(types) / sizeof(types[0]); k++)
		if (types[k].type == type)
			return &types[k];
	return NULL;
}

const char *ipc_type_name(int type)
{
	const struct type_info *t = find_type(type);

	return t ? t->name : "UNKNOWN";
}

bool ipc_type_is_request(int type)
{
	const struct type_info *t = find_type(type);

	return t && t->dir == IPC_DIR_C2S && (t->need & NEED_ID);
}

int ipc_msg_check(const struct ipc_msg *m, enum ipc_dir dir)
{
	const struct type_info *t = find_type(m->type);

	if (!t)
		return -EOPNOTSUPP;
	if (t->dir != dir)
		return -EPROTO;
	if (((t->need & NEED_ID) && !m->has_id) ||
	    ((t->need & NEED_CODE) && !m->has_code) ||
	    ((t->need & NEED_NAME) && (!m->name || !m->name[0])) ||
	    ((t->need & NEED_TEXT) && !m->text) ||
	    ((t->need & NEED_STATE) && !m->state))
		return -EBADMSG;
	return 0;
}

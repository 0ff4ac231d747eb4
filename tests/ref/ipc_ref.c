/*
 * The IPC codec as it was before it was rewritten for speed (msgpack-c's
 * packer for encoding, a two-pass cursor for decoding), kept as the
 * reference the new one is compared with: byte for byte for encoding,
 * result and fields for decoding (tests/unit/test_ipcproto.c,
 * tests/fuzz/fuzz-ipc.c).  Not linked into dsd or libdsipc.
 */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include <msgpack.h>

#include "ipc_ref.h"
#include "utf8.h"

#define MAX_DEPTH 8

static int count_write(void *data, const char *buf, size_t len)
{
	(void)buf;
	*(size_t *)data += len;
	return 0;
}

struct fill {
	uint8_t *p;
	size_t left;
};

static int fill_write(void *data, const char *buf, size_t len)
{
	struct fill *f = data;

	if (len > f->left)
		return -1;
	memcpy(f->p, buf, len);
	f->p += len;
	f->left -= len;
	return 0;
}

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

static void pack_key(msgpack_packer *pk, const char *k)
{
	size_t n = strlen(k);

	msgpack_pack_str(pk, n);
	msgpack_pack_str_body(pk, k, n);
}

static void pack_str(msgpack_packer *pk, const char *k, const char *v, size_t n)
{
	pack_key(pk, k);
	msgpack_pack_str(pk, n);
	msgpack_pack_str_body(pk, v, n);
}

/* Both passes (measure, then fill) go through this one function. */
static int pack_msg(msgpack_packer *pk, const struct ipc_msg *m)
{
	bool has_at = m->type == IPC_STATE || m->at != 0;
	uint32_t n = 1;
	int r = 0;

	n += m->has_id + m->has_code + has_at + !!m->name + !!m->data +
	     !!m->text + !!m->state;
	r |= msgpack_pack_map(pk, n);
	pack_key(pk, "t");
	r |= msgpack_pack_int(pk, m->type);
	if (m->has_id) {
		pack_key(pk, "id");
		r |= msgpack_pack_uint32(pk, m->id);
	}
	if (m->has_code) {
		pack_key(pk, "code");
		r |= msgpack_pack_int64(pk, m->code);
	}
	if (has_at) {
		pack_key(pk, "at");
		r |= msgpack_pack_int64(pk, m->at);
	}
	if (m->name)
		pack_str(pk, "name", m->name, strlen(m->name));
	if (m->data)
		pack_str(pk, "data", m->data, m->data_len);
	if (m->text)
		pack_str(pk, text_key(m->type), m->text, strlen(m->text));
	if (m->state)
		pack_str(pk, "state", m->state, strlen(m->state));
	return r;
}

int ref_ipc_encode(struct ipc_buf *b, const struct ipc_msg *m)
{
	msgpack_packer pk;
	struct fill f;
	size_t body = 0;
	uint8_t *hdr;
	int r;

	if (m->name && strnlen(m->name, IPC_MAX_NAME + 1) > IPC_MAX_NAME)
		return -EINVAL;
	if (m->data_len > IPC_MAX_DATA || (!m->data && m->data_len))
		return -EINVAL;

	/* Measure first so b is either grown once or left untouched. */
	msgpack_packer_init(&pk, &body, count_write);
	pack_msg(&pk, m);
	if (body > IPC_MAX_FRAME)
		return -EMSGSIZE;
	r = ipc_buf_reserve(b, IPC_HEADER_SIZE + body);
	if (r < 0)
		return r;

	hdr = b->data + b->len;
	hdr[0] = (uint8_t)(body >> 24);
	hdr[1] = (uint8_t)(body >> 16);
	hdr[2] = (uint8_t)(body >> 8);
	hdr[3] = (uint8_t)body;
	f.p = hdr + IPC_HEADER_SIZE;
	f.left = body;
	msgpack_packer_init(&pk, &f, fill_write);
	if (pack_msg(&pk, m) != 0 || f.left != 0)
		return -EINVAL; /* cannot happen: both passes pack the same */
	b->len += IPC_HEADER_SIZE + body;
	return 0;
}

static uint32_t be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
	       (uint32_t)p[2] << 8 | p[3];
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

static int take(struct cur *c, size_t n, const uint8_t **ret)
{
	if (n > c->left)
		return -EBADMSG;
	*ret = c->p;
	c->p += n;
	c->left -= n;
	return 0;
}

static int take_uint(struct cur *c, size_t width, uint64_t *ret)
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
static int take_body(struct cur *c, uint64_t n, struct mp_val *v)
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

/* Reads one value's header (and, for scalars, the whole value). */
static int read_val(struct cur *c, struct mp_val *v)
{
	const uint8_t *q;
	uint64_t u;
	uint8_t b;
	int r;

	memset(v, 0, sizeof(*v));
	if (take(c, 1, &q) < 0)
		return -EBADMSG;
	b = *q;
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

/* Text fields carry no NUL: it would cut them short in C. */
static bool text_valid(const uint8_t *s, size_t n)
{
	return memchr(s, 0, n) == NULL && utf8_valid(s, n);
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

static bool key_is(const struct mp_val *k, const char *s)
{
	size_t n = strlen(s);

	return k->n == n && memcmp(k->p, s, n) == 0;
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

static int take_field(const struct mp_val *k, const struct mp_val *v,
                      struct ipc_msg *m, struct fields *f)
{
	int64_t x;

	if (key_is(k, "t")) {
		f->has_t = true;
		return want_int(v, 0, INT_MAX, &f->t);
	}
	if (key_is(k, "id")) {
		if (v->kind == MP_NIL)
			return m->has_id = false, 0;
		if (want_int(v, 0, UINT32_MAX, &x) < 0)
			return -EBADMSG;
		m->has_id = true;
		m->id = (uint32_t)x;
		return 0;
	}
	/* "v" and "result" are accepted spellings of "code". */
	if (key_is(k, "code") || key_is(k, "v") || key_is(k, "result")) {
		if (v->kind == MP_NIL)
			return m->has_code = false, 0;
		if (want_int(v, INT64_MIN, INT64_MAX, &m->code) < 0)
			return -EBADMSG;
		m->has_code = true;
		return 0;
	}
	if (key_is(k, "at")) {
		if (v->kind == MP_NIL)
			return m->at = 0, 0;
		return want_int(v, INT64_MIN, INT64_MAX, &m->at);
	}
	if (key_is(k, "name"))
		return want_str(v, IPC_MAX_NAME, &f->name);
	if (key_is(k, "data"))
		return want_str(v, IPC_MAX_DATA, &f->data);
	if (key_is(k, "msg") || key_is(k, "json") || key_is(k, "reason") ||
	    key_is(k, "client") || key_is(k, "server"))
		return want_str(v, IPC_MAX_FRAME, &f->text);
	if (key_is(k, "state"))
		return want_str(v, IPC_MAX_FRAME, &f->state);
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

int ref_ipc_decode(const uint8_t *frame, size_t len, struct ipc_msg *ret)
{
	struct ipc_msg m = {0};
	struct fields f = {0};
	struct mp_val top, k, v;
	struct cur c;
	size_t zlen = 0;
	char *zone, *z;

	memset(ret, 0, sizeof(*ret));
	if (len < IPC_HEADER_SIZE || len - IPC_HEADER_SIZE > IPC_MAX_FRAME ||
	    be32(frame) != len - IPC_HEADER_SIZE)
		return -EBADMSG;

	/* Pass 1: the whole body is one well-formed map, nothing after it. */
	c.p = frame + IPC_HEADER_SIZE;
	c.left = len - IPC_HEADER_SIZE;
	if (read_val(&c, &top) < 0 || top.kind != MP_MAP ||
	    skip_children(&c, &top, 1) < 0 || c.left != 0)
		return -EBADMSG;

	/* Pass 2: pick the fields we know; structure is known to be sound. */
	c.p = frame + IPC_HEADER_SIZE;
	c.left = len - IPC_HEADER_SIZE;
	read_val(&c, &top);
	for (uint32_t i = 0; i < top.n; i++) {
		if (read_val(&c, &k) < 0 || skip_children(&c, &k, 2) < 0 ||
		    read_val(&c, &v) < 0)
			return -EBADMSG;
		if (k.kind == MP_STR && take_field(&k, &v, &m, &f) < 0)
			return -EBADMSG;
		if (skip_children(&c, &v, 2) < 0)
			return -EBADMSG;
	}
	if (!f.has_t)
		return -EBADMSG;
	m.type = (int)f.t;
	if ((f.name.set && !text_valid(f.name.p, f.name.n)) ||
	    (f.text.set && !text_valid(f.text.p, f.text.n)) ||
	    (f.state.set && !text_valid(f.state.p, f.state.n)) ||
	    (f.data.set && !text_valid(f.data.p, f.data.n)))
		return -EBADMSG;

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

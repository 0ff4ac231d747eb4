/*
 * The deepstream ws-binary wire format (see wire.h).
 *
 * Encoding: the inner message is packed by protobuf-c straight into the
 * caller's buffer; the outer Message is two fields, written by hand in front
 * of it so no temporary buffer is needed.
 *
 * Decoding: protobuf-c unpacks the outer and the inner message; the fields
 * are then checked (text: no NUL byte, valid UTF-8) and copied into one heap
 * block that holds the flat view and its strings, and the protobuf-c
 * objects are freed at once.  So a decoded message is a single allocation
 * and does not depend on protobuf-c's memory layout.
 */
#include "wire.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "deepstream.pb-c.h"
#include "utf8.h"

/* A varint holds at most 64 bits, 7 per byte. */
#define VARINT_MAX 10

/* Outer Message tags: (field << 3) | wire type. */
#define TAG_TOPIC   0x10 /* field 2, varint */
#define TAG_MESSAGE 0x1a /* field 3, length-delimited */

static size_t varint_size(uint64_t v)
{
	size_t n = 1;

	while (v >= 0x80) {
		v >>= 7;
		n++;
	}
	return n;
}

static size_t varint_write(uint64_t v, uint8_t *out)
{
	size_t n = 0;

	while (v >= 0x80) {
		out[n++] = (uint8_t)(v | 0x80);
		v >>= 7;
	}
	out[n++] = (uint8_t)v;
	return n;
}

/*
 * Reads a varint from the start of buf.  Returns the number of bytes it
 * took, or 0 if it is truncated or does not fit in 64 bits.
 */
static size_t varint_read(const uint8_t *buf, size_t len, uint64_t *ret_v)
{
	uint64_t v = 0;
	size_t i;

	/* One byte: every tag and every length under 128. */
	if (len > 0 && buf[0] < 0x80) {
		*ret_v = buf[0];
		return 1;
	}
	for (i = 0; i < len && i < VARINT_MAX; i++) {
		uint64_t bits = buf[i] & 0x7f;

		/* The 10th byte may only carry the 64th bit. */
		if (i == VARINT_MAX - 1 && bits > 1)
			return 0;
		v |= bits << (7 * i);
		if (!(buf[i] & 0x80)) {
			*ret_v = v;
			return i + 1;
		}
	}
	return 0;
}

/* ------------------------------------------------------------------ */
/* Encoding                                                           */

/* Optional fields of struct wire_msg, for the per-topic check. */
enum {
	F_DATA = 1u << 0,
	F_NAME = 1u << 1,
	F_CID = 1u << 2,
	F_URL = 1u << 3,
	F_PROTOCOL_VERSION = 1u << 4,
	F_SDK_VERSION = 1u << 5,
	F_SDK_TYPE = 1u << 6,
	F_NAMES = 1u << 7,
	F_IS_ACK = 1u << 8,
	F_IS_ERROR = 1u << 9,
	F_ORIGINAL_ACTION = 1u << 10,
};

static unsigned fields_set(const struct wire_msg *m)
{
	unsigned f = 0;

	f |= m->data ? F_DATA : 0;
	f |= m->name ? F_NAME : 0;
	f |= m->correlation_id ? F_CID : 0;
	f |= m->url ? F_URL : 0;
	f |= m->protocol_version ? F_PROTOCOL_VERSION : 0;
	f |= m->sdk_version ? F_SDK_VERSION : 0;
	f |= m->sdk_type ? F_SDK_TYPE : 0;
	f |= m->n_names > 0 ? F_NAMES : 0;
	f |= m->has_is_ack ? F_IS_ACK : 0;
	f |= m->has_is_error ? F_IS_ERROR : 0;
	f |= m->has_original_action ? F_ORIGINAL_ACTION : 0;
	return f;
}

/* The fields each mapped topic has; 0 for a topic we cannot encode. */
static unsigned fields_allowed(int topic)
{
	switch (topic) {
	case WIRE_TOPIC_PARSER:
		return F_DATA | F_ORIGINAL_ACTION;
	case WIRE_TOPIC_CONNECTION:
		return F_DATA | F_IS_ERROR | F_IS_ACK | F_URL |
		       F_PROTOCOL_VERSION | F_SDK_VERSION | F_SDK_TYPE;
	case WIRE_TOPIC_AUTH:
		return F_DATA | F_IS_ERROR | F_IS_ACK;
	case WIRE_TOPIC_EVENT:
		return F_DATA | F_CID | F_IS_ERROR | F_IS_ACK | F_NAME |
		       F_NAMES | F_ORIGINAL_ACTION;
	default:
		return 0;
	}
}

union inner {
	ProtobufCMessage base;
	Deepstream__ParserMessage parser;
	Deepstream__ConnectionMessage conn;
	Deepstream__AuthMessage auth;
	Deepstream__EventMessage event;
};

/* An inner message ready to pack; names is a heap array (EVENT only). */
struct enc {
	union inner in;
	ProtobufCBinaryData *names;
};

/* protobuf-c's structs are not const-correct; packing only reads them. */
static int set_text(const char *s, protobuf_c_boolean *ret_has,
                    ProtobufCBinaryData *ret_v)
{
	size_t len;

	if (!s)
		return 0;
	len = strlen(s);
	if (!utf8_valid(s, len))
		return -EINVAL;
	*ret_has = 1;
	ret_v->len = len;
	ret_v->data = (uint8_t *)(uintptr_t)s;
	return 0;
}

static int enc_event(const struct wire_msg *m, struct enc *e)
{
	Deepstream__EventMessage *ev = &e->in.event;
	size_t i;
	int r = 0;

	deepstream__event_message__init(ev);
	ev->has_action = 1;
	ev->action = m->action;
	r |= set_text(m->data, &ev->has_data, &ev->data);
	r |= set_text(m->correlation_id, &ev->has_correlationid,
	              &ev->correlationid);
	r |= set_text(m->name, &ev->has_name, &ev->name);
	if (r < 0)
		return -EINVAL;
	ev->has_iserror = m->has_is_error;
	ev->iserror = m->is_error;
	ev->has_isack = m->has_is_ack;
	ev->isack = m->is_ack;
	ev->has_originalaction = m->has_original_action;
	ev->originalaction = m->original_action;
	if (m->n_names == 0)
		return 0;
	if (!m->names)
		return -EINVAL;
	e->names = calloc(m->n_names, sizeof(*e->names));
	if (!e->names)
		return -ENOMEM;
	for (i = 0; i < m->n_names; i++) {
		protobuf_c_boolean has = 0;

		if (!m->names[i] || set_text(m->names[i], &has, &e->names[i]))
			return -EINVAL;
	}
	ev->n_names = m->n_names;
	ev->names = e->names;
	return 0;
}

static int enc_prepare(const struct wire_msg *m, struct enc *e)
{
	unsigned allowed = fields_allowed(m->topic);
	int r = 0;

	e->names = NULL;
	if (allowed == 0 || (fields_set(m) & ~allowed))
		return -EINVAL;

	switch (m->topic) {
	case WIRE_TOPIC_PARSER: {
		Deepstream__ParserMessage *p = &e->in.parser;

		deepstream__parser_message__init(p);
		p->has_action = 1;
		p->action = m->action;
		r = set_text(m->data, &p->has_data, &p->data);
		p->has_originalaction = m->has_original_action;
		p->originalaction = m->original_action;
		return r;
	}
	case WIRE_TOPIC_CONNECTION: {
		Deepstream__ConnectionMessage *c = &e->in.conn;

		deepstream__connection_message__init(c);
		c->has_action = 1;
		c->action = m->action;
		r |= set_text(m->data, &c->has_data, &c->data);
		r |= set_text(m->url, &c->has_url, &c->url);
		r |= set_text(m->protocol_version, &c->has_protocolversion,
		              &c->protocolversion);
		r |= set_text(m->sdk_version, &c->has_sdkversion,
		              &c->sdkversion);
		r |= set_text(m->sdk_type, &c->has_sdktype, &c->sdktype);
		c->has_iserror = m->has_is_error;
		c->iserror = m->is_error;
		c->has_isack = m->has_is_ack;
		c->isack = m->is_ack;
		return r < 0 ? -EINVAL : 0;
	}
	case WIRE_TOPIC_AUTH: {
		Deepstream__AuthMessage *a = &e->in.auth;

		deepstream__auth_message__init(a);
		a->has_action = 1;
		a->action = m->action;
		r = set_text(m->data, &a->has_data, &a->data);
		a->has_iserror = m->has_is_error;
		a->iserror = m->is_error;
		a->has_isack = m->has_is_ack;
		a->isack = m->is_ack;
		return r;
	}
	case WIRE_TOPIC_EVENT:
		return enc_event(m, e);
	default:
		return -EINVAL;
	}
}

/* Sizes of the inner message, the outer message and the whole payload. */
struct enc_sizes {
	size_t inner, outer, total;
};

static int enc_sizes(const struct wire_msg *m, const struct enc *e,
                     struct enc_sizes *ret)
{
	struct enc_sizes s;

	s.inner = protobuf_c_message_get_packed_size(&e->in.base);
	/* topic is int32 on the wire: negative numbers take 10 bytes. */
	s.outer = 1 + varint_size((uint64_t)(int64_t)m->topic) + 1 +
	          varint_size(s.inner) + s.inner;
	if (s.outer > INT32_MAX)
		return -EMSGSIZE;
	s.total = varint_size(s.outer) + s.outer;
	*ret = s;
	return 0;
}

int wire_encoded_size(const struct wire_msg *m, size_t *ret_size)
{
	struct enc e = {0};
	struct enc_sizes s = {0};
	int r;

	r = enc_prepare(m, &e);
	if (r == 0)
		r = enc_sizes(m, &e, &s);
	free(e.names);
	if (r < 0)
		return r;
	*ret_size = s.total;
	return 0;
}

int wire_encode(const struct wire_msg *m, uint8_t *out, size_t cap,
                size_t *ret_len)
{
	struct enc e = {0};
	struct enc_sizes s = {0};
	size_t n = 0;
	int r;

	r = enc_prepare(m, &e);
	if (r < 0)
		goto out;
	r = enc_sizes(m, &e, &s);
	if (r < 0)
		goto out;
	if (s.total > cap) {
		r = -ENOBUFS;
		goto out;
	}
	n += varint_write(s.outer, out + n);
	out[n++] = TAG_TOPIC;
	n += varint_write((uint64_t)(int64_t)m->topic, out + n);
	out[n++] = TAG_MESSAGE;
	n += varint_write(s.inner, out + n);
	n += protobuf_c_message_pack(&e.in.base, out + n);
	*ret_len = n;
out:
	free(e.names);
	return r;
}

/* EventMessage: action (field 1, varint), data (2), name (6), both
 * length-delimited: the order protobuf-c writes them in. */
#define TAG_EV_ACTION 0x08
#define TAG_EV_DATA   0x12
#define TAG_EV_NAME   0x32

static size_t emit_inner_size(size_t name_len, const char *data,
                              size_t data_len)
{
	size_t n = 2 + 1 + varint_size(name_len) + name_len;

	if (data != NULL)
		n += 1 + varint_size(data_len) + data_len;
	return n;
}

size_t wire_emit_size(size_t name_len, const char *data, size_t data_len)
{
	size_t inner = emit_inner_size(name_len, data, data_len);
	size_t outer = 2 + 1 + varint_size(inner) + inner;

	return varint_size(outer) + outer;
}

size_t wire_emit_write(const char *name, size_t name_len, const char *data,
                       size_t data_len, uint8_t *out)
{
	size_t inner = emit_inner_size(name_len, data, data_len);
	size_t n;

	n = varint_write(2 + 1 + varint_size(inner) + inner, out);
	out[n++] = TAG_TOPIC;
	out[n++] = WIRE_TOPIC_EVENT;
	out[n++] = TAG_MESSAGE;
	n += varint_write(inner, out + n);
	out[n++] = TAG_EV_ACTION;
	out[n++] = WIRE_EVENT_EMIT;
	if (data != NULL) {
		out[n++] = TAG_EV_DATA;
		n += varint_write(data_len, out + n);
		memcpy(out + n, data, data_len);
		n += data_len;
	}
	out[n++] = TAG_EV_NAME;
	n += varint_write(name_len, out + n);
	memcpy(out + n, name, name_len);
	return n + name_len;
}

/* ------------------------------------------------------------------ */
/* Decoding                                                           */

enum text_slot {
	T_DATA,
	T_NAME,
	T_CID,
	T_URL,
	T_PROTOCOL_VERSION,
	T_SDK_VERSION,
	T_SDK_TYPE,
	T_COUNT,
};

/* What was read from the inner message, still in protobuf-c's memory. */
struct dec_src {
	int action;
	const ProtobufCBinaryData *text[T_COUNT]; /* NULL: absent */
	const ProtobufCBinaryData *names;
	size_t n_names;
	bool has_is_ack, is_ack;
	bool has_is_error, is_error;
	bool has_original_action;
	int original_action;
};

struct wire_decoded {
	bool heap; /* malloc'd, not in the caller's scratch */
	struct wire_msg msg;
	/* then msg.n_names string pointers, then the strings themselves */
	const char *names[];
};

#define TEXT(pb, field) ((pb)->has_##field ? &(pb)->field : NULL)

static bool text_ok(const ProtobufCBinaryData *v)
{
	return v->len == 0 ||
	       (!memchr(v->data, 0, v->len) && utf8_valid(v->data, v->len));
}

static char *copy_text(const ProtobufCBinaryData *v, char **pos)
{
	char *s = *pos;

	if (v->len > 0)
		memcpy(s, v->data, v->len);
	s[v->len] = '\0';
	*pos = s + v->len + 1;
	return s;
}

/* The decoded message's block: the caller's scratch buffer when it fits
 * (no allocation per platform event), else the heap. */
static struct wire_decoded *decoded_alloc(struct wire_scratch *scratch,
                                          size_t size)
{
	struct wire_decoded *d;

	if (scratch && size <= sizeof(scratch->buf)) {
		d = (struct wire_decoded *)(void *)scratch->buf;
		d->heap = false;
		return d;
	}
	d = malloc(size);
	if (d)
		d->heap = true;
	return d;
}

/* Checks the text in src and builds the single-block decoded message. */
static int dec_build(int topic, const struct dec_src *src,
                     struct wire_scratch *scratch, struct wire_decoded **ret)
{
	const char **dst[T_COUNT];
	struct wire_decoded *d;
	size_t size, i;
	char *pos;

	size = sizeof(*d) + src->n_names * sizeof(d->names[0]);
	for (i = 0; i < T_COUNT; i++) {
		if (!src->text[i])
			continue;
		if (!text_ok(src->text[i]))
			return -EBADMSG;
		size += src->text[i]->len + 1;
	}
	for (i = 0; i < src->n_names; i++) {
		if (!text_ok(&src->names[i]))
			return -EBADMSG;
		size += src->names[i].len + 1;
	}

	/* Every byte after msg is written below (pointers, then texts with
	 * their NULs): only msg needs clearing. */
	d = decoded_alloc(scratch, size);
	if (!d)
		return -ENOMEM;
	d->msg = (struct wire_msg){0};
	d->msg.topic = topic;
	d->msg.action = src->action;
	d->msg.has_is_ack = src->has_is_ack;
	d->msg.is_ack = src->has_is_ack && src->is_ack;
	d->msg.has_is_error = src->has_is_error;
	d->msg.is_error = src->has_is_error && src->is_error;
	d->msg.has_original_action = src->has_original_action;
	d->msg.original_action =
	        src->has_original_action ? src->original_action : 0;

	dst[T_DATA] = &d->msg.data;
	dst[T_NAME] = &d->msg.name;
	dst[T_CID] = &d->msg.correlation_id;
	dst[T_URL] = &d->msg.url;
	dst[T_PROTOCOL_VERSION] = &d->msg.protocol_version;
	dst[T_SDK_VERSION] = &d->msg.sdk_version;
	dst[T_SDK_TYPE] = &d->msg.sdk_type;
	pos = (char *)&d->names[src->n_names];
	for (i = 0; i < T_COUNT; i++) {
		if (src->text[i])
			*dst[i] = copy_text(src->text[i], &pos);
	}
	if (src->text[T_DATA])
		d->msg.data_len = src->text[T_DATA]->len;
	if (src->text[T_NAME])
		d->msg.name_len = src->text[T_NAME]->len;
	for (i = 0; i < src->n_names; i++)
		d->names[i] = copy_text(&src->names[i], &pos);
	if (src->n_names > 0) {
		d->msg.names = d->names;
		d->msg.n_names = src->n_names;
	}
	*ret = d;
	return 0;
}

/* A word with a zero byte or a byte over 0x7f: the bytes copy_plain()
 * leaves to the full check. */
static bool word_not_plain(uint64_t w)
{
	const uint64_t lo = 0x0101010101010101ull, hi = 0x8080808080808080ull;

	return ((w | (w - lo)) & hi) != 0;
}

/* copy_text() of text that is plain ASCII without NUL (nearly every event
 * name and data), checked while it is copied, eight bytes at a time (the
 * last word overlapping the one before; four for a text of 4 to 7 bytes).
 * Returns false, having copied some of it, when a byte is anything else:
 * the caller then checks and copies the whole text the general way. */
static bool copy_plain(const ProtobufCBinaryData *v, char **pos)
{
	const uint8_t *src = v->data;
	char *s = *pos;
	size_t i, len = v->len;
	uint64_t w;
	uint32_t a, b;

	if (len >= 8) {
		for (i = 0; len - i > 8; i += 8) {
			memcpy(&w, src + i, 8);
			if (word_not_plain(w))
				return false;
			memcpy(s + i, &w, 8);
		}
		memcpy(&w, src + len - 8, 8);
		if (word_not_plain(w))
			return false;
		memcpy(s + len - 8, &w, 8);
	} else if (len >= 4) {
		memcpy(&a, src, 4);
		memcpy(&b, src + len - 4, 4);
		if (word_not_plain((uint64_t)a << 32 | b))
			return false;
		memcpy(s, &a, 4);
		memcpy(s + len - 4, &b, 4);
	} else {
		for (i = 0; i < len; i++) {
			if (src[i] == 0 || src[i] > 0x7f)
				return false;
			s[i] = (char)src[i];
		}
	}
	s[len] = '\0';
	*pos = s + len + 1;
	return true;
}

/* Checks v and copies it to *pos: text_ok() then copy_text(), with plain
 * text read once. */
static const char *take_text(const ProtobufCBinaryData *v, char **pos)
{
	char *s = *pos;

	if (copy_plain(v, pos))
		return s;
	return text_ok(v) ? copy_text(v, pos) : NULL;
}

/* dec_build() for an EVENT of at most data and name (NULL: absent), the one
 * message the platform sends most: the same block, without walking every
 * text field twice, each text checked as it is copied. */
static int dec_build_event(int action, const ProtobufCBinaryData *data,
                           const ProtobufCBinaryData *name,
                           struct wire_scratch *scratch,
                           struct wire_decoded **ret)
{
	struct wire_decoded *d;
	size_t size = sizeof(*d);
	char *pos;

	if (data)
		size += data->len + 1;
	if (name)
		size += name->len + 1;
	d = decoded_alloc(scratch, size);
	if (!d)
		return -ENOMEM;
	d->msg = (struct wire_msg){.topic = WIRE_TOPIC_EVENT, .action = action};
	pos = (char *)&d->names[0];
	if (data) {
		if (!(d->msg.data = take_text(data, &pos)))
			goto bad;
		d->msg.data_len = data->len;
	}
	if (name) {
		if (!(d->msg.name = take_text(name, &pos)))
			goto bad;
		d->msg.name_len = name->len;
	}
	*ret = d;
	return 0;
bad:
	wire_decoded_free(d);
	return -EBADMSG;
}

static const ProtobufCMessageDescriptor *inner_descriptor(int topic)
{
	switch (topic) {
	case WIRE_TOPIC_PARSER:
		return &deepstream__parser_message__descriptor;
	case WIRE_TOPIC_CONNECTION:
		return &deepstream__connection_message__descriptor;
	case WIRE_TOPIC_AUTH:
		return &deepstream__auth_message__descriptor;
	case WIRE_TOPIC_EVENT:
		return &deepstream__event_message__descriptor;
	default:
		return NULL;
	}
}

/* Points src at the fields of an unpacked inner message of topic. */
static void dec_fill(int topic, const ProtobufCMessage *pb, struct dec_src *src)
{
	memset(src, 0, sizeof(*src));
	switch (topic) {
	case WIRE_TOPIC_PARSER: {
		const Deepstream__ParserMessage *p = (const void *)pb;

		src->action = p->has_action ? p->action : 0;
		src->text[T_DATA] = TEXT(p, data);
		src->has_original_action = p->has_originalaction;
		src->original_action = p->originalaction;
		break;
	}
	case WIRE_TOPIC_CONNECTION: {
		const Deepstream__ConnectionMessage *c = (const void *)pb;

		src->action = c->has_action ? c->action : 0;
		src->text[T_DATA] = TEXT(c, data);
		src->text[T_URL] = TEXT(c, url);
		src->text[T_PROTOCOL_VERSION] = TEXT(c, protocolversion);
		src->text[T_SDK_VERSION] = TEXT(c, sdkversion);
		src->text[T_SDK_TYPE] = TEXT(c, sdktype);
		src->has_is_error = c->has_iserror;
		src->is_error = c->iserror;
		src->has_is_ack = c->has_isack;
		src->is_ack = c->isack;
		break;
	}
	case WIRE_TOPIC_AUTH: {
		const Deepstream__AuthMessage *a = (const void *)pb;

		src->action = a->has_action ? a->action : 0;
		src->text[T_DATA] = TEXT(a, data);
		src->has_is_error = a->has_iserror;
		src->is_error = a->iserror;
		src->has_is_ack = a->has_isack;
		src->is_ack = a->isack;
		break;
	}
	case WIRE_TOPIC_EVENT: {
		const Deepstream__EventMessage *ev = (const void *)pb;

		src->action = ev->has_action ? ev->action : 0;
		src->text[T_DATA] = TEXT(ev, data);
		src->text[T_CID] = TEXT(ev, correlationid);
		src->text[T_NAME] = TEXT(ev, name);
		src->names = ev->names;
		src->n_names = ev->n_names;
		src->has_is_error = ev->has_iserror;
		src->is_error = ev->iserror;
		src->has_is_ack = ev->has_isack;
		src->is_ack = ev->isack;
		src->has_original_action = ev->has_originalaction;
		src->original_action = ev->originalaction;
		break;
	}
	default:
		break;
	}
}

/*
 * The frame the platform sends most, an EVENT with only action, name and
 * data (each at most once, fields 1, 6, 2 of EventMessage), read straight
 * from the bytes without protobuf-c's two unpacks and their allocations.
 * Anything else (another topic, another field, a repeated one, a value
 * protobuf-c would read differently) returns 0: the caller decodes it the
 * general way, so this path only ever agrees with that one.
 */
static int fast_event(const uint8_t *p, size_t len,
                      struct wire_scratch *scratch, struct wire_decoded **ret)
{
	ProtobufCBinaryData data = {0}, name = {0};
	const uint8_t *in = NULL;
	size_t in_len = 0, i = 0, n;
	uint64_t v, l;
	bool topic = false, action = false;
	int act = 0;

	/* outer: topic = 4 (field 2, varint), message (field 3, bytes) */
	while (i < len) {
		uint8_t key = p[i++];

		if (key == 0x10 && !topic) {
			if (i >= len || p[i] != WIRE_TOPIC_EVENT)
				return 0;
			i++;
			topic = true;
		} else if (key == 0x1a && in == NULL) {
			n = varint_read(p + i, len - i, &l);
			if (n == 0 || l > len - i - n)
				return 0;
			in = p + i + n;
			in_len = (size_t)l;
			i += n + (size_t)l;
		} else
			return 0;
	}
	if (!topic || in == NULL)
		return 0;
	for (i = 0; i < in_len;) {
		uint8_t key = in[i++];
		ProtobufCBinaryData *t;

		if (key == 0x08 && !action) {
			n = varint_read(in + i, in_len - i, &v);
			if (n == 0 || v > INT32_MAX)
				return 0;
			act = (int)v;
			action = true;
			i += n;
			continue;
		}
		if (key == 0x12 && data.data == NULL)
			t = &data;
		else if (key == 0x32 && name.data == NULL)
			t = &name;
		else
			return 0;
		n = varint_read(in + i, in_len - i, &l);
		if (n == 0 || l > in_len - i - n)
			return 0;
		t->data = (uint8_t *)(in + i + n);
		t->len = (size_t)l;
		i += n + (size_t)l;
	}
	return dec_build_event(act, data.data ? &data : NULL,
	                       name.data ? &name : NULL, scratch, ret) < 0
	               ? -EBADMSG
	               : 1;
}

int wire_decode(const uint8_t *buf, size_t len, struct wire_decoded **ret)
{
	return wire_decode_in(buf, len, NULL, ret);
}

int wire_decode_in(const uint8_t *buf, size_t len, struct wire_scratch *scratch,
                   struct wire_decoded **ret)
{
	static const uint8_t empty[1];
	const ProtobufCMessageDescriptor *desc;
	Deepstream__Message *outer = NULL;
	ProtobufCMessage *inner = NULL;
	struct dec_src src;
	uint64_t body_len;
	size_t n;
	int topic, r;

	/* The prefix must cover exactly the rest: the server never sends
	 * trailing bytes, so any mismatch means a broken frame. */
	n = varint_read(buf, len, &body_len);
	if (n == 0 || body_len != len - n)
		return -EBADMSG;
	r = fast_event(buf + n, len - n, scratch, ret);
	if (r != 0)
		return r < 0 ? r : 0;
	/* protobuf-c returns NULL for bad input and for a failed allocation
	 * alike; bad input is by far the likelier. */
	outer = deepstream__message__unpack(NULL, len - n, buf + n);
	if (!outer)
		return -EBADMSG;
	if (!outer->has_topic) {
		r = -EBADMSG;
		goto out;
	}
	topic = outer->topic;
	desc = inner_descriptor(topic);
	if (!desc) {
		/* A topic we do not map: report it, do not look inside. */
		memset(&src, 0, sizeof(src));
		r = dec_build(topic, &src, scratch, ret);
		goto out;
	}
	/* An absent inner message reads as an empty one. */
	inner = protobuf_c_message_unpack(
	        desc, NULL, outer->has_message ? outer->message.len : 0,
	        outer->has_message && outer->message.data ? outer->message.data
	                                                  : empty);
	if (!inner) {
		r = -EBADMSG;
		goto out;
	}
	dec_fill(topic, inner, &src);
	r = dec_build(topic, &src, scratch, ret);
out:
	if (inner)
		protobuf_c_message_free_unpacked(inner, NULL);
	deepstream__message__free_unpacked(outer, NULL);
	return r;
}

const struct wire_msg *wire_decoded_msg(const struct wire_decoded *d)
{
	return &d->msg;
}

void wire_decoded_free(struct wire_decoded *d)
{
	if (d && d->heap)
		free(d);
}

/* ------------------------------------------------------------------ */
/* Names for logs                                                     */

struct wire_name {
	int value;
	const char *name;
};

#define NAMES(t) t, sizeof(t) / sizeof((t)[0])

static const struct wire_name topic_names[] = {
        {0, "UNKNOWN"}, {1, "PARSER"},   {2, "CONNECTION"},
        {3, "AUTH"},    {4, "EVENT"},    {5, "RECORD"},
        {6, "RPC"},     {7, "PRESENCE"}, {8, "MONITORING"},
        {9, "CLUSTER"}, {10, "LOCK"},    {11, "STATE_REGISTRY"},
        {100, "ERROR"},
};

static const struct wire_name parser_names[] = {
        {0, "UNKNOWN"},
        {1, "UNKNOWN_TOPIC"},
        {2, "UNKNOWN_ACTION"},
        {3, "INVALID_MESSAGE"},
        {4, "MESSAGE_PARSE_ERROR"},
        {5, "MAXIMUM_MESSAGE_SIZE_EXCEEDED"},
        {6, "ERROR"},
        {7, "INVALID_META_PARAMS"},
};

static const struct wire_name connection_names[] = {
        {0, "UNKNOWN"},
        {1, "ERROR"},
        {2, "PING"},
        {3, "PONG"},
        {4, "ACCEPT"},
        {5, "CHALLENGE"},
        {6, "REJECT"},
        {7, "REDIRECT"},
        {8, "CLOSING"},
        {9, "CLOSED"},
        {100, "AUTHENTICATION_TIMEOUT"},
        {101, "INVALID_MESSAGE"},
};

static const struct wire_name auth_names[] = {
        {0, "UNKNOWN"},           {1, "ERROR"},
        {2, "REQUEST"},           {3, "AUTH_SUCCESSFUL"},
        {4, "AUTH_UNSUCCESSFUL"}, {100, "TOO_MANY_AUTH_ATTEMPTS"},
        {101, "INVALID_MESSAGE"}, {102, "INVALID_MESSAGE_DATA"},
};

static const struct wire_name event_names[] = {
        {0, "UNKNOWN"},
        {1, "ERROR"},
        {2, "EMIT"},
        {3, "SUBSCRIBE"},
        {4, "UNSUBSCRIBE"},
        {5, "LISTEN"},
        {6, "UNLISTEN"},
        {7, "LISTEN_ACCEPT"},
        {8, "LISTEN_REJECT"},
        {9, "SUBSCRIPTION_HAS_PROVIDER"},
        {10, "SUBSCRIPTION_HAS_NO_PROVIDER"},
        {11, "SUBSCRIPTION_FOR_PATTERN_FOUND"},
        {12, "SUBSCRIPTION_FOR_PATTERN_REMOVED"},
        {100, "INVALID_LISTEN_REGEX"},
        {101, "LISTEN_RESPONSE_TIMEOUT"},
        {102, "LISTEN_UNSUCCESSFUL"},
        {103, "MESSAGE_PERMISSION_ERROR"},
        {104, "MESSAGE_DENIED"},
        {105, "INVALID_MESSAGE_DATA"},
        {106, "MULTIPLE_SUBSCRIPTIONS"},
        {107, "NOT_SUBSCRIBED"},
};

static const char *name_lookup(const struct wire_name *t, size_t n, int v)
{
	size_t i;

	for (i = 0; i < n; i++) {
		if (t[i].value == v)
			return t[i].name;
	}
	return "?";
}

const char *wire_topic_name(int topic)
{
	return name_lookup(NAMES(topic_names), topic);
}

const char *wire_action_name(int topic, int action)
{
	switch (topic) {
	case WIRE_TOPIC_PARSER:
		return name_lookup(NAMES(parser_names), action);
	case WIRE_TOPIC_CONNECTION:
		return name_lookup(NAMES(connection_names), action);
	case WIRE_TOPIC_AUTH:
		return name_lookup(NAMES(auth_names), action);
	case WIRE_TOPIC_EVENT:
		return name_lookup(NAMES(event_names), action);
	default:
		return "?";
	}
}

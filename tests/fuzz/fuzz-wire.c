/*
 * Fuzzes wire_decode(), the parser of every byte the deepstream server (or
 * whoever answers on its address) sends us.
 *
 * Beyond "does not crash": a message that decodes must come back unchanged
 * through wire_encode() and a second decode, and re-encoding that must give
 * the same bytes.  wire.h promises exactly that (the decoder keeps unknown
 * action numbers as they are, the encoder writes every present field), and
 * the daemon relies on it when it forwards what it read.
 */
#include <errno.h>
#include <string.h>

#include "fuzz.h"
#include "wire.h"

static bool str_eq(const char *a, const char *b)
{
	if (!a || !b)
		return a == b;
	return strcmp(a, b) == 0;
}

static bool msg_eq(const struct wire_msg *a, const struct wire_msg *b)
{
	size_t i;

	if (a->topic != b->topic || a->action != b->action ||
	    !str_eq(a->data, b->data) || !str_eq(a->name, b->name) ||
	    !str_eq(a->correlation_id, b->correlation_id) ||
	    !str_eq(a->url, b->url) ||
	    !str_eq(a->protocol_version, b->protocol_version) ||
	    !str_eq(a->sdk_version, b->sdk_version) ||
	    !str_eq(a->sdk_type, b->sdk_type) || a->n_names != b->n_names ||
	    a->has_is_ack != b->has_is_ack || a->is_ack != b->is_ack ||
	    a->has_is_error != b->has_is_error || a->is_error != b->is_error ||
	    a->has_original_action != b->has_original_action ||
	    a->original_action != b->original_action)
		return false;
	for (i = 0; i < a->n_names; i++) {
		if (!str_eq(a->names[i], b->names[i]))
			return false;
	}
	return true;
}

static bool topic_mapped(int topic)
{
	return topic == WIRE_TOPIC_PARSER || topic == WIRE_TOPIC_CONNECTION ||
	       topic == WIRE_TOPIC_AUTH || topic == WIRE_TOPIC_EVENT;
}

/* Encodes m into a heap block of exactly the announced size. */
static uint8_t *encode_exact(const struct wire_msg *m, size_t *ret_len)
{
	size_t size = 0, len = 0;
	uint8_t *out;

	FUZZ_CHECK(wire_encoded_size(m, &size) == 0);
	FUZZ_CHECK(size > 0);
	out = malloc(size);
	FUZZ_CHECK(out);
	/* One byte short must be refused, not overrun. */
	FUZZ_CHECK(wire_encode(m, out, size - 1, &len) == -ENOBUFS);
	FUZZ_CHECK(wire_encode(m, out, size, &len) == 0);
	FUZZ_CHECK(len == size);
	*ret_len = len;
	return out;
}

static void round_trip(const struct wire_msg *m)
{
	struct wire_decoded *d2 = NULL;
	uint8_t *enc1, *enc2;
	size_t len1, len2;

	enc1 = encode_exact(m, &len1);
	FUZZ_CHECK(wire_decode(enc1, len1, &d2) == 0);
	FUZZ_CHECK(msg_eq(m, wire_decoded_msg(d2)));
	enc2 = encode_exact(wire_decoded_msg(d2), &len2);
	FUZZ_CHECK(len1 == len2 && memcmp(enc1, enc2, len1) == 0);
	free(enc2);
	wire_decoded_free(d2);
	free(enc1);
}

static void one_payload(const uint8_t *data, size_t size)
{
	struct wire_decoded *d = NULL;
	const struct wire_msg *m;
	size_t n;
	int r;

	r = wire_decode(data, size, &d);
	if (r < 0) {
		FUZZ_CHECK(r == -EBADMSG || r == -ENOMEM);
		FUZZ_CHECK(!d);
		return;
	}
	FUZZ_CHECK(d);
	m = wire_decoded_msg(d);
	FUZZ_CHECK(wire_topic_name(m->topic));
	FUZZ_CHECK(wire_action_name(m->topic, m->action));
	FUZZ_CHECK((m->n_names == 0) == (m->names == NULL));
	for (size_t i = 0; i < m->n_names; i++)
		FUZZ_CHECK(m->names[i]);

	if (topic_mapped(m->topic)) {
		round_trip(m);
	} else {
		/* Unmapped topics carry only .topic and cannot be encoded. */
		FUZZ_CHECK(m->action == 0 && !m->data && m->n_names == 0);
		FUZZ_CHECK(wire_encoded_size(m, &n) == -EINVAL);
	}
	wire_decoded_free(d);
}

/* Length of the varint at the start of buf, 0 if there is none. */
static size_t prefix_len(const uint8_t *buf, size_t len)
{
	for (size_t i = 0; i < len && i < 10; i++) {
		if (!(buf[i] & 0x80))
			return i + 1;
	}
	return 0;
}

#define MAX_PIECES 16

/*
 * The other direction, which catches a decoder that refuses what the
 * encoder writes: a message of a mapped topic is built from the input (a
 * 10-byte head, then NUL-separated strings for the topic's text fields in
 * order, the rest of them EVENT names), and if it encodes, what
 * wire_encode() wrote must decode to the same message.
 */
static void from_bytes(const uint8_t *data, size_t size)
{
	static const int topics[] = {WIRE_TOPIC_PARSER, WIRE_TOPIC_CONNECTION,
	                             WIRE_TOPIC_AUTH, WIRE_TOPIC_EVENT};
	const char *piece[MAX_PIECES];
	struct wire_msg m = {0};
	struct wire_decoded *d = NULL;
	size_t n_pieces = 0, len = 0, enc_size;
	uint8_t flags, *enc;
	int32_t v;
	char *text;

	if (size < 10)
		return;
	/* Pieces are the NUL-terminated runs of the tail. */
	text = malloc(size - 10 + 1);
	FUZZ_CHECK(text);
	memcpy(text, data + 10, size - 10);
	text[size - 10] = '\0';
	for (char *p = text; p < text + (size - 10) && n_pieces < MAX_PIECES;
	     p += strlen(p) + 1)
		piece[n_pieces++] = p;

	m.topic = topics[data[0] & 3];
	memcpy(&v, data + 1, sizeof(v));
	m.action = v;
	flags = data[5];
	memcpy(&v, data + 6, sizeof(v));
	if (m.topic != WIRE_TOPIC_PARSER) {
		m.has_is_ack = flags & 1;
		m.is_ack = m.has_is_ack && (flags & 2);
		m.has_is_error = flags & 4;
		m.is_error = m.has_is_error && (flags & 8);
	}
	if (m.topic == WIRE_TOPIC_PARSER || m.topic == WIRE_TOPIC_EVENT) {
		m.has_original_action = flags & 16;
		m.original_action = m.has_original_action ? v : 0;
	}
	m.data = n_pieces > 0 ? piece[0] : NULL;
	if (m.topic == WIRE_TOPIC_CONNECTION) {
		m.url = n_pieces > 1 ? piece[1] : NULL;
		m.protocol_version = n_pieces > 2 ? piece[2] : NULL;
		m.sdk_version = n_pieces > 3 ? piece[3] : NULL;
		m.sdk_type = n_pieces > 4 ? piece[4] : NULL;
	} else if (m.topic == WIRE_TOPIC_EVENT) {
		m.correlation_id = n_pieces > 1 ? piece[1] : NULL;
		m.name = n_pieces > 2 ? piece[2] : NULL;
		if (n_pieces > 3) {
			m.names = piece + 3;
			m.n_names = n_pieces - 3;
		}
	}

	/* The encoder refuses text that is not UTF-8: nothing to compare. */
	if (wire_encoded_size(&m, &enc_size) == -EINVAL)
		goto out;
	enc = encode_exact(&m, &len);
	FUZZ_CHECK(wire_decode(enc, len, &d) == 0);
	FUZZ_CHECK(msg_eq(&m, wire_decoded_msg(d)));
	wire_decoded_free(d);
	free(enc);
out:
	free(text);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	size_t skip = prefix_len(data, size), body = size - skip, n = 0;
	uint8_t *fixed;
	size_t v;

	one_payload(data, size);

	/* Again with the length prefix made right: a mutation that changes
	 * the body's length would otherwise never get past the prefix check,
	 * and the fuzzer would not reach the protobuf at all. */
	fixed = malloc(10 + body);
	FUZZ_CHECK(fixed);
	for (v = body; v >= 0x80; v >>= 7)
		fixed[n++] = (uint8_t)(v | 0x80);
	fixed[n++] = (uint8_t)v;
	if (body > 0)
		memcpy(fixed + n, data + skip, body);
	if (n + body != size || memcmp(fixed, data, size) != 0)
		one_payload(fixed, n + body);
	free(fixed);

	from_bytes(data, size);
	return 0;
}

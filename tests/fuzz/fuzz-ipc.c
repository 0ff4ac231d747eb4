/*
 * Fuzzes the IPC decoder, which reads whatever a local client (or a
 * process posing as dsd) writes on the Unix socket.
 *
 * The input is treated as a byte stream the way dsd and libdsipc read it:
 * ipc_frame_peek() measures a frame, ipc_decode() decodes it, and so on
 * until the bytes run out or a header is refused.  Every message that
 * decodes is checked against the catalogue in both directions, re-encoded
 * with ipc_encode() and decoded again: the fields must match, and encoding
 * the copy must give the same bytes.  Differential too: the codec it
 * replaced (tests/ref/ipc_ref.c) must decode every frame alike and encode
 * every message to the same bytes.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "ipc_ref.h"
#include "ipcproto.h"

#define BUF_LIMIT (IPC_HEADER_SIZE + IPC_MAX_FRAME)

static bool str_eq(const char *a, const char *b)
{
	if (!a || !b)
		return a == b;
	return strcmp(a, b) == 0;
}

static bool msg_eq(const struct ipc_msg *a, const struct ipc_msg *b)
{
	return a->type == b->type && a->has_id == b->has_id &&
	       (!a->has_id || a->id == b->id) && a->has_code == b->has_code &&
	       (!a->has_code || a->code == b->code) && a->at == b->at &&
	       str_eq(a->name, b->name) && a->data_len == b->data_len &&
	       (!a->data) == (!b->data) &&
	       (!a->data || memcmp(a->data, b->data, a->data_len) == 0) &&
	       str_eq(a->text, b->text) && str_eq(a->state, b->state);
}

/* The reference decoder reads the frame alike. */
static void same_as_ref(const uint8_t *frame, size_t len, int r,
                        const struct ipc_msg *m)
{
	struct ipc_msg ref;
	int rr = ref_ipc_decode(frame, len, &ref);

	FUZZ_CHECK(rr == r);
	FUZZ_CHECK(msg_eq(m, &ref));
	ipc_msg_clear(&ref);
}

/* The reference encoder writes the same bytes (or refuses alike). */
static void same_encoding(const struct ipc_msg *m, const struct ipc_buf *b,
                          int r)
{
	struct ipc_buf ref;

	ipc_buf_init(&ref, BUF_LIMIT);
	FUZZ_CHECK(ref_ipc_encode(&ref, m) == r);
	FUZZ_CHECK(ref.len == b->len);
	FUZZ_CHECK(!b->len || memcmp(ref.data, b->data, b->len) == 0);
	ipc_buf_free(&ref);
}

static void check_catalogue(const struct ipc_msg *m)
{
	int c2s = ipc_msg_check(m, IPC_DIR_C2S);
	int s2c = ipc_msg_check(m, IPC_DIR_S2C);

	FUZZ_CHECK(ipc_type_name(m->type));
	if (c2s == -EOPNOTSUPP || s2c == -EOPNOTSUPP) {
		/* Unknown is unknown whichever way it travels. */
		FUZZ_CHECK(c2s == -EOPNOTSUPP && s2c == -EOPNOTSUPP);
		FUZZ_CHECK(strcmp(ipc_type_name(m->type), "UNKNOWN") == 0);
		FUZZ_CHECK(!ipc_type_is_request(m->type));
		return;
	}
	/* A known type travels exactly one way. */
	FUZZ_CHECK((c2s == -EPROTO) != (s2c == -EPROTO));
	FUZZ_CHECK(c2s == 0 || c2s == -EPROTO || c2s == -EBADMSG);
	FUZZ_CHECK(s2c == 0 || s2c == -EPROTO || s2c == -EBADMSG);
	if (ipc_type_is_request(m->type)) {
		FUZZ_CHECK(s2c == -EPROTO);
		FUZZ_CHECK(c2s != 0 || m->has_id);
	}
}

static void round_trip(const struct ipc_msg *m, size_t frame_len)
{
	struct ipc_buf b1, b2;
	struct ipc_msg m2;
	size_t len;
	int r;

	ipc_buf_init(&b1, BUF_LIMIT);
	ipc_buf_init(&b2, BUF_LIMIT);
	r = ipc_encode(&b1, m);
	same_encoding(m, &b1, r);
	if (r == -EMSGSIZE) {
		/* Only a frame near the limit may grow past it: keys are
		 * written in their canonical spelling ("v" becomes "code")
		 * and STATE always gets an "at". */
		FUZZ_CHECK(frame_len > BUF_LIMIT - 64);
		FUZZ_CHECK(b1.len == 0);
		goto out;
	}
	FUZZ_CHECK(r == 0);
	FUZZ_CHECK(ipc_frame_peek(b1.data, b1.len, &len) == 0);
	FUZZ_CHECK(len == b1.len);
	FUZZ_CHECK(ipc_decode(b1.data, b1.len, &m2) == 0);
	FUZZ_CHECK(msg_eq(m, &m2));
	FUZZ_CHECK(ipc_encode(&b2, &m2) == 0);
	FUZZ_CHECK(b1.len == b2.len && memcmp(b1.data, b2.data, b1.len) == 0);
	ipc_msg_clear(&m2);
out:
	ipc_buf_free(&b2);
	ipc_buf_free(&b1);
}

/* ipc_decode_in_place() on a copy exactly as long as the frame (ASan
 * sees a write past it) reads it alike, with every string inside it. */
static void same_in_place(const uint8_t *frame, size_t len, int r,
                          const struct ipc_msg *m)
{
	uint8_t *copy = malloc(len ? len : 1);
	struct ipc_msg c;
	int rc;

	FUZZ_CHECK(copy);
	if (len)
		memcpy(copy, frame, len);
	rc = ipc_decode_in_place(copy, len, &c);
	FUZZ_CHECK(rc == (r == -ENOMEM ? 0 : r) || rc == -ENOMEM);
	if (rc == 0 && r == 0)
		FUZZ_CHECK(msg_eq(&c, m));
	FUZZ_CHECK(c.zone_ == NULL);
	FUZZ_CHECK(!c.name ||
	           ((const uint8_t *)c.name >= copy &&
	            (const uint8_t *)c.name + strlen(c.name) < copy + len));
	FUZZ_CHECK(!c.data ||
	           ((const uint8_t *)c.data >= copy &&
	            (const uint8_t *)c.data + c.data_len < copy + len &&
	            c.data[c.data_len] == '\0'));
	FUZZ_CHECK(!c.text ||
	           ((const uint8_t *)c.text >= copy &&
	            (const uint8_t *)c.text + strlen(c.text) < copy + len));
	FUZZ_CHECK(!c.state ||
	           ((const uint8_t *)c.state >= copy &&
	            (const uint8_t *)c.state + strlen(c.state) < copy + len));
	ipc_msg_clear(&c);
	free(copy);
}

static void one_frame(const uint8_t *frame, size_t len)
{
	struct ipc_msg m;
	int r;

	r = ipc_decode(frame, len, &m);
	same_as_ref(frame, len, r, &m);
	same_in_place(frame, len, r, &m);
	if (r < 0) {
		FUZZ_CHECK(r == -EBADMSG || r == -ENOMEM);
		/* "On error *ret is left cleared." */
		FUZZ_CHECK(m.type == 0 && !m.zone_ && !m.name && !m.data &&
		           !m.text && !m.state && !m.has_id && !m.has_code);
		return;
	}
	/* Strings are NUL-terminated within their zone. */
	if (m.data)
		FUZZ_CHECK(m.data[m.data_len] == '\0');
	else
		FUZZ_CHECK(m.data_len == 0);
	if (m.name)
		FUZZ_CHECK(strlen(m.name) <= IPC_MAX_NAME);
	check_catalogue(&m);
	round_trip(&m, len);
	ipc_msg_clear(&m);
}

#define HEAD_SIZE 22

/*
 * The other direction, which catches a decoder that refuses what the
 * encoder writes: a message is built from the input (a 22-byte head, then
 * NUL-separated name, data, text and state, made ASCII so they are valid
 * UTF-8), and whatever ipc_encode() accepts must decode to the same fields.
 */
static void from_bytes(const uint8_t *data, size_t size)
{
	static const int types[] = {
	        IPC_HELLO,
	        IPC_HELLO_OK,
	        IPC_OK,
	        IPC_ERROR,
	        IPC_STATUS,
	        IPC_STATUS_REPLY,
	        IPC_PAUSE,
	        IPC_RESUME,
	        IPC_RELOAD,
	        IPC_WATCH,
	        IPC_STATE,
	        IPC_SUBSCRIBE,
	        IPC_UNSUBSCRIBE,
	        IPC_EMIT,
	        IPC_EMIT_REPLY,
	        IPC_EVENT,
	        IPC_SUB_DENIED,
	        0,
	        999,
	        INT32_MAX,
	};
	const char *piece[4] = {NULL, NULL, NULL, NULL};
	struct ipc_msg m = {0}, m2;
	struct ipc_buf b;
	size_t n_pieces = 0, k, tail;
	uint8_t flags;
	char *text;
	int r;

	if (size < HEAD_SIZE || size > 64 * 1024)
		return;
	tail = size - HEAD_SIZE;
	text = malloc(tail + 1);
	FUZZ_CHECK(text);
	for (k = 0; k < tail; k++) {
		uint8_t c = data[HEAD_SIZE + k];

		text[k] = (char)(c == 0 ? 0 : (c & 0x7f) ? (c & 0x7f) : '?');
	}
	text[tail] = '\0';
	for (char *p = text; p < text + tail && n_pieces < 4;
	     p += strlen(p) + 1)
		piece[n_pieces++] = p;

	m.type = types[data[0] % (sizeof(types) / sizeof(types[0]))];
	flags = data[1];
	m.has_id = flags & 1;
	memcpy(&m.id, data + 2, sizeof(m.id));
	m.has_code = flags & 2;
	memcpy(&m.code, data + 6, sizeof(m.code));
	memcpy(&m.at, data + 14, sizeof(m.at));
	/* A piece may still be left out, so absent fields get tried too. */
	m.name = (flags & 4) ? piece[0] : NULL;
	m.data = (flags & 8) ? piece[1] : NULL;
	m.data_len = m.data ? strlen(m.data) : 0;
	m.text = (flags & 16) ? piece[2] : NULL;
	m.state = (flags & 32) ? piece[3] : NULL;

	ipc_buf_init(&b, BUF_LIMIT);
	r = ipc_encode(&b, &m);
	same_encoding(&m, &b, r);
	if (r < 0) {
		/* A name over the limit is the one reason to refuse. */
		FUZZ_CHECK(r == -EINVAL && m.name &&
		           strlen(m.name) > IPC_MAX_NAME);
		FUZZ_CHECK(b.len == 0);
		goto out;
	}
	FUZZ_CHECK(ipc_decode(b.data, b.len, &m2) == 0);
	FUZZ_CHECK(msg_eq(&m, &m2));
	ipc_msg_clear(&m2);
out:
	ipc_buf_free(&b);
	free(text);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	size_t off = 0, flen;
	struct ipc_msg m;
	int r;

	/* The whole input as one frame, whatever its header says. */
	r = ipc_decode(data, size, &m);
	same_as_ref(data, size, r, &m);
	if (r == 0)
		ipc_msg_clear(&m);

	/* The input as a stream of frames. */
	for (;;) {
		r = ipc_frame_peek(data + off, size - off, &flen);
		if (r < 0) {
			FUZZ_CHECK(r == -EAGAIN || r == -EMSGSIZE);
			break;
		}
		FUZZ_CHECK(flen >= IPC_HEADER_SIZE && flen <= size - off);
		FUZZ_CHECK(flen <= BUF_LIMIT);
		one_frame(data + off, flen);
		off += flen;
	}

	from_bytes(data, size);
	return 0;
}

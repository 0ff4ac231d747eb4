/*
 * The local IPC protocol between dsd and its clients (libdsipc, dsctl).
 *
 * One implementation, shared by the daemon and the library: both link
 * ipcproto.c.  It reads and writes msgpack itself (msgpack-c is the tests'
 * reference only: test_ipcproto compares the bytes).
 *
 * Framing: a 4-byte big-endian length, then a msgpack map of that many
 * bytes.  The length is checked against IPC_MAX_FRAME before anything is
 * allocated.  Map keys are short strings; unknown keys are ignored so the
 * protocol can grow.  See PROTOCOL.md for the message catalogue.
 */
#ifndef DSD_IPCPROTO_H
#define DSD_IPCPROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define IPC_PROTOCOL_VERSION 1
#define IPC_HEADER_SIZE      4
/* 1 MiB of event data (the platform's limit) plus name and envelope. */
#define IPC_MAX_FRAME (1024 * 1024 + 64 * 1024)
#define IPC_MAX_NAME  1024
#define IPC_MAX_DATA  (1024 * 1024)

/*
 * Message types, numbered in blocks: 1xx session, 2xx control, 3xx state,
 * 4xx events.  Requests carry an "id" chosen by the client; every request
 * is answered by exactly one reply carrying the same id (IPC_OK, IPC_ERROR
 * or the request's own reply type).
 */
enum ipc_type {
	IPC_HELLO = 100,    /* c>s {code: v, client}    -> IPC_HELLO_OK */
	IPC_HELLO_OK = 101, /* s>c {code: v, server}                    */
	IPC_OK = 110,       /* s>c {id}                                 */
	IPC_ERROR = 111,    /* s>c {id, code (negative errno), msg}     */

	IPC_STATUS = 200,       /* c>s {id}                 -> STATUS_REPLY */
	IPC_STATUS_REPLY = 201, /* s>c {id, json}                           */
	IPC_PAUSE = 202,        /* c>s {id}                 -> OK/ERROR     */
	IPC_RESUME = 203,       /* c>s {id}                 -> OK/ERROR     */
	IPC_RELOAD = 204,       /* c>s {id}                 -> OK/ERROR     */
	IPC_WATCH = 205,        /* c>s {id}  -> OK, then a STATE now and on
	                           every transition                         */

	IPC_STATE = 300, /* s>c {state, reason, at (unix ms)}        */

	IPC_SUBSCRIBE = 400,      /* c>s {id, name}           -> OK/ERROR     */
	IPC_UNSUBSCRIBE = 401,    /* c>s {id, name}           -> OK/ERROR     */
	IPC_EMIT = 402,           /* c>s {id, name, [data], [code: 1 confirm]}
	                                              -> EMIT_REPLY/ERROR */
	IPC_EMIT_REPLY = 403,     /* s>c {id, code: 0 sent, 1 queued}         */
	IPC_EVENT = 404,          /* s>c {name, [data]}                       */
	IPC_SUB_DENIED = 405,     /* s>c {name, msg}: the platform refused it */
	IPC_EMIT_CONFIRMED = 406, /* s>c {id}: the platform has that EMIT
	                             (asked for with code 1) */
};

/* The code of an EMIT request. */
enum ipc_emit_flags {
	IPC_EMIT_WANT_CONFIRM = 1, /* send EMIT_CONFIRMED when confirmed */
};

enum ipc_emit_result {
	IPC_EMIT_SENT = 0,
	IPC_EMIT_QUEUED = 1,
};

/*
 * A decoded message.  Strings are NUL-terminated and point into the
 * frame's decode zone, living until ipc_msg_clear() (ipc_decode()), or
 * into the frame itself, living as long as it (ipc_decode_in_place()).  Absent
 * fields are NULL (strings) or have their has_* flag false.
 */
struct ipc_msg {
	int type;
	bool has_id;
	uint32_t id;
	bool has_code;
	int64_t code;     /* "code": errno (ERROR), version (HELLO), result
	                     (EMIT_REPLY) */
	int64_t at;       /* "at": unix ms (STATE) */
	const char *name; /* "name" */
	const char *data; /* "data": JSON text, NULL when the event has none */
	size_t data_len;
	const char *text;  /* "msg" / "json" / "reason" / "client" / "server" */
	const char *state; /* "state" */
	void *zone_;       /* private */
};

/* Growable output buffer with a hard cap (every buffer is bounded). */
struct ipc_buf {
	uint8_t *data;
	size_t len;
	size_t cap;
	size_t limit;
};

void ipc_buf_init(struct ipc_buf *b, size_t limit);
void ipc_buf_free(struct ipc_buf *b);
/* Drop n bytes from the front (after a write). */
void ipc_buf_consume(struct ipc_buf *b, size_t n);

/*
 * Makes room for extra more bytes.  Returns 0, -ENOBUFS when len + extra
 * would pass the limit, or -ENOMEM; b is unchanged on failure.
 */
int ipc_buf_reserve(struct ipc_buf *b, size_t extra);

/*
 * Appends one framed message to b.  Returns 0, -ENOBUFS when b would grow
 * past its limit (b is unchanged), -EINVAL for a field out of range (name
 * over IPC_MAX_NAME, data over IPC_MAX_DATA), or -EMSGSIZE when the body
 * would pass IPC_MAX_FRAME (a huge "json" text, say).  "at" is written for
 * IPC_STATE and whenever it is not 0.
 */
int ipc_encode(struct ipc_buf *b, const struct ipc_msg *m);

/*
 * Looks at the front of an input buffer.  Returns 0 and sets *ret_frame_len
 * (header included) when a whole frame is there, -EAGAIN when more bytes are
 * needed, -EMSGSIZE when the announced length is over IPC_MAX_FRAME.
 */
int ipc_frame_peek(const uint8_t *buf, size_t len, size_t *ret_frame_len);

/*
 * Decodes one whole frame (as measured by ipc_frame_peek) into *ret.
 * Returns 0 or -EBADMSG for anything malformed (not a map, a container
 * claiming more elements than bytes left, wrong value types, ...).  On
 * error *ret is left cleared.
 *
 * *ret is overwritten, not cleared: ipc_msg_clear() a previous result first.
 * Decoding is syntactic plus value types; ipc_msg_check() checks the type,
 * its direction and its required fields.  Unknown keys (and keys that are
 * not strings) are skipped; nil counts as absent; a repeated key keeps its
 * last value; strings must be UTF-8 without NUL.  -ENOMEM is possible.
 */
int ipc_decode(const uint8_t *frame, size_t len, struct ipc_msg *ret);

/*
 * ipc_decode() without an allocation: the same checks and the same
 * results, but the strings of *ret are not copied out; each is made
 * NUL-terminated where it is, inside frame (moved one byte back over its
 * msgpack header), so frame's bytes change and cannot be decoded again.
 * The strings are borrowed: they live as long as frame's bytes stay
 * where they are, and ipc_msg_clear() frees nothing of them (it may still
 * be called).  Only bytes of frame[0..len) are written.
 */
int ipc_decode_in_place(uint8_t *frame, size_t len, struct ipc_msg *ret);
void ipc_msg_clear(struct ipc_msg *m);

/* "HELLO", ...; "UNKNOWN" for a type not in the catalogue. */
const char *ipc_type_name(int type);

enum ipc_dir {
	IPC_DIR_C2S = 1, /* client -> server */
	IPC_DIR_S2C = 2, /* server -> client */
};

/*
 * Checks a decoded message against the catalogue (one table, in
 * ipcproto.c): a known type, travelling in direction dir, with its required
 * fields.  Returns 0, -EOPNOTSUPP for an unknown type, -EPROTO for a type
 * that travels the other way, -EBADMSG for a missing field (id of a
 * request, code of HELLO/HELLO_OK/ERROR/EMIT_REPLY, a non-empty name of
 * SUBSCRIBE/UNSUBSCRIBE/EMIT/EVENT/SUB_DENIED, the json of STATUS_REPLY,
 * the state of STATE).
 */
int ipc_msg_check(const struct ipc_msg *m, enum ipc_dir dir);

/* True for the client->server types that carry an id and need a reply. */
bool ipc_type_is_request(int type);

#endif

/*
 * The deepstream ws-binary wire format: the only module that includes the
 * code protoc-c generates from deepstream.proto.
 *
 * One WebSocket binary payload holds exactly one deepstream message:
 *
 *	payload = varint(len(M)) || M,  M = protobuf Message {topic, message}
 *
 * where `message` is the inner message of that topic, encoded (see
 * docs/deepstream-protocol.md, sections 1 to 4).  This module turns
 * one such payload into a flat struct wire_msg and back.  It does no I/O,
 * keeps no state and never logs.
 *
 * Topics mapped: PARSER, CONNECTION, AUTH and EVENT.  RECORD, RPC and
 * PRESENCE are in the schema but not mapped yet.
 */
#ifndef DSD_WIRE_H
#define DSD_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Numbers as on the wire (the TOPIC enum). */
enum wire_topic {
	WIRE_TOPIC_UNKNOWN = 0,
	WIRE_TOPIC_PARSER = 1,
	WIRE_TOPIC_CONNECTION = 2,
	WIRE_TOPIC_AUTH = 3,
	WIRE_TOPIC_EVENT = 4,
	WIRE_TOPIC_RECORD = 5,
	WIRE_TOPIC_RPC = 6,
	WIRE_TOPIC_PRESENCE = 7,
	WIRE_TOPIC_MONITORING = 8,
	WIRE_TOPIC_CLUSTER = 9,
	WIRE_TOPIC_LOCK = 10,
	WIRE_TOPIC_STATE_REGISTRY = 11,
	WIRE_TOPIC_ERROR = 100,
};

/* PARSER is server to client only; in practice only UNKNOWN_TOPIC. */
enum wire_parser_action {
	WIRE_PARSER_UNKNOWN = 0,
	WIRE_PARSER_UNKNOWN_TOPIC = 1,
	WIRE_PARSER_UNKNOWN_ACTION = 2,
	WIRE_PARSER_INVALID_MESSAGE = 3,
	WIRE_PARSER_MESSAGE_PARSE_ERROR = 4,
	WIRE_PARSER_MAXIMUM_MESSAGE_SIZE_EXCEEDED = 5,
	WIRE_PARSER_ERROR = 6,
	WIRE_PARSER_INVALID_META_PARAMS = 7,
};

enum wire_connection_action {
	WIRE_CONN_UNKNOWN = 0,
	WIRE_CONN_ERROR = 1,
	WIRE_CONN_PING = 2,
	WIRE_CONN_PONG = 3,
	WIRE_CONN_ACCEPT = 4,
	WIRE_CONN_CHALLENGE = 5,
	WIRE_CONN_REJECT = 6,
	WIRE_CONN_REDIRECT = 7,
	WIRE_CONN_CLOSING = 8, /* never on the wire */
	WIRE_CONN_CLOSED = 9,  /* never on the wire */
	WIRE_CONN_AUTHENTICATION_TIMEOUT = 100,
	WIRE_CONN_INVALID_MESSAGE = 101,
};

enum wire_auth_action {
	WIRE_AUTH_UNKNOWN = 0,
	WIRE_AUTH_ERROR = 1,
	WIRE_AUTH_REQUEST = 2,
	WIRE_AUTH_SUCCESSFUL = 3,
	WIRE_AUTH_UNSUCCESSFUL = 4,
	WIRE_AUTH_TOO_MANY_AUTH_ATTEMPTS = 100,
	WIRE_AUTH_INVALID_MESSAGE = 101,
	WIRE_AUTH_INVALID_MESSAGE_DATA = 102,
};

enum wire_event_action {
	WIRE_EVENT_UNKNOWN = 0,
	WIRE_EVENT_ERROR = 1,
	WIRE_EVENT_EMIT = 2,
	WIRE_EVENT_SUBSCRIBE = 3,
	WIRE_EVENT_UNSUBSCRIBE = 4,
	WIRE_EVENT_LISTEN = 5,
	WIRE_EVENT_UNLISTEN = 6,
	WIRE_EVENT_LISTEN_ACCEPT = 7,
	WIRE_EVENT_LISTEN_REJECT = 8,
	WIRE_EVENT_SUBSCRIPTION_HAS_PROVIDER = 9,
	WIRE_EVENT_SUBSCRIPTION_HAS_NO_PROVIDER = 10,
	WIRE_EVENT_SUBSCRIPTION_FOR_PATTERN_FOUND = 11,
	WIRE_EVENT_SUBSCRIPTION_FOR_PATTERN_REMOVED = 12,
	WIRE_EVENT_INVALID_LISTEN_REGEX = 100,
	WIRE_EVENT_LISTEN_RESPONSE_TIMEOUT = 101,
	WIRE_EVENT_LISTEN_UNSUCCESSFUL = 102,
	WIRE_EVENT_MESSAGE_PERMISSION_ERROR = 103,
	WIRE_EVENT_MESSAGE_DENIED = 104,
	WIRE_EVENT_INVALID_MESSAGE_DATA = 105,
	WIRE_EVENT_MULTIPLE_SUBSCRIPTIONS = 106,
	WIRE_EVENT_NOT_SUBSCRIBED = 107,
};

/*
 * One flat view of a PARSER, CONNECTION, AUTH or EVENT message.  A NULL
 * string, n_names == 0 or a false has_* flag means "absent": the field is
 * not written on encode and was not on the wire on decode.  An empty string
 * is present and is written.  Strings are NUL-terminated UTF-8; `data` holds
 * JSON text (the caller must only send valid JSON: invalid JSON in an AUTH
 * REQUEST crashes the 7.0.2 server).  `action` is always written.
 *
 * Which fields each topic has (encoding anything else is -EINVAL):
 *   PARSER:     data, original_action
 *   CONNECTION: data, is_error, is_ack, url, protocol_version, sdk_version,
 *               sdk_type
 *   AUTH:       data, is_error, is_ack
 *   EVENT:      data, correlation_id, is_error, is_ack, name, names,
 *               original_action
 * Start from a zeroed struct (`struct wire_msg m = {.topic = ...};`).
 */
struct wire_msg {
	int topic;  /* enum wire_topic, or any number read from the wire */
	int action; /* enum wire_*_action of the topic, or any number */
	const char *data;
	const char *name;
	const char *correlation_id;
	const char *url;
	const char *protocol_version;
	const char *sdk_version;
	const char *sdk_type;
	const char *const *names;
	size_t n_names;
	bool has_is_ack, is_ack;
	bool has_is_error, is_error;
	bool has_original_action;
	int original_action;
	/* strlen() of data and name, set by the decoders (the receive path
	 * passes them on instead of measuring again); the encoders ignore
	 * them. */
	size_t data_len, name_len;
};

/*
 * Stores in *ret_size the exact length of the payload wire_encode() writes
 * for m.  Returns 0, -EINVAL for an unmapped topic, a field the topic does
 * not have, a NULL entry in names or a string that is not valid UTF-8,
 * -EMSGSIZE if the message would exceed INT32_MAX bytes, -ENOMEM.
 */
int wire_encoded_size(const struct wire_msg *m, size_t *ret_size);

/*
 * Encodes m as one whole WebSocket payload (length prefix included) into
 * out, which has room for cap bytes, and stores its length in *ret_len.
 * Fields are written in field-number order, so the bytes match the JS
 * client's.  Returns 0, -ENOBUFS if cap is too small (nothing useful is
 * written then; size the buffer with wire_encoded_size()), or the errors of
 * wire_encoded_size().  The transport copies the payload, so no LWS_PRE
 * headroom is needed here.
 */
int wire_encode(const struct wire_msg *m, uint8_t *out, size_t cap,
                size_t *ret_len);

/*
 * The hot path of every local emit: an EVENT EMIT of name (name_len bytes)
 * and data (data_len bytes; data NULL: no data field), byte for byte what
 * wire_encode() writes for it, without protobuf-c and without checking the
 * text again: the caller has (the IPC decoder refuses invalid UTF-8 and
 * NUL in both, json_check() validates data).  wire_emit_size() is the
 * exact length wire_emit_write() writes; out must hold that many bytes.
 */
size_t wire_emit_size(size_t name_len, const char *data, size_t data_len);
size_t wire_emit_write(const char *name, size_t name_len, const char *data,
                       size_t data_len, uint8_t *out);

/* A decoded message: one block holding the view and its strings. */
struct wire_decoded;

/*
 * Decodes one whole payload.  The varint length prefix must equal the
 * number of bytes after it exactly.  Unknown fields are skipped; unknown
 * action (and original_action) numbers are kept as they are.  For a topic
 * that is not mapped (RECORD, ..., or a number we do not know) only
 * .topic is set and the inner message is not looked at: the caller decides
 * whether that is an error.  Strings containing a NUL byte or invalid UTF-8
 * are rejected.
 *
 * Returns 0 and *ret, to be freed with wire_decoded_free(); -EBADMSG for
 * anything malformed (bad or mismatched prefix, bad protobuf, no topic);
 * -ENOMEM.
 */
int wire_decode(const uint8_t *buf, size_t len, struct wire_decoded **ret);

/* Room for a decoded message on the caller's stack (wire_decode_in()). */
#define WIRE_SCRATCH_SIZE 2048
struct wire_scratch {
	_Alignas(max_align_t) unsigned char buf[WIRE_SCRATCH_SIZE];
};

/* wire_decode() that builds *ret in scratch when it fits there, without an
 * allocation (the receive path decodes every platform event).  Call
 * wire_decoded_free() all the same: it leaves scratch alone.  *ret lives
 * no longer than scratch.  scratch NULL: wire_decode(). */
int wire_decode_in(const uint8_t *buf, size_t len, struct wire_scratch *scratch,
                   struct wire_decoded **ret);

/* The view; valid until wire_decoded_free(d). */
const struct wire_msg *wire_decoded_msg(const struct wire_decoded *d);

/* NULL is a no-op. */
void wire_decoded_free(struct wire_decoded *d);

/*
 * Names for logs, e.g. "EVENT" and "MULTIPLE_SUBSCRIPTIONS".  Never NULL,
 * so they can go straight into a "%s": a number without a name gives "?"
 * (log the number too where it matters).  wire_action_name() knows the
 * actions of the mapped topics only.
 */
const char *wire_topic_name(int topic);
const char *wire_action_name(int topic, int action);

#endif

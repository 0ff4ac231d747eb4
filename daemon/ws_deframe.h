/*
 * Reads the WebSocket frames a server sends (RFC 6455, section 5) from the
 * bytes as they arrive, in whatever pieces the socket gives them, for a
 * ws:// connection on the main loop (ws_direct.h).  libwebsockets 4.1's
 * client parser runs once per byte (~3,100 instructions per small event,
 * most of what a delivered event cost; docs/performance.md): here a frame
 * that arrived whole is handed on where it lies, without a copy, and only
 * a frame split across reads or a fragmented message is put together.
 *
 * Pure: no I/O, no lws.  The caller feeds bytes and gets one callback per
 * data message and per control frame.
 */
#ifndef DSD_WS_DEFRAME_H
#define DSD_WS_DEFRAME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum ws_what {
	WS_MESSAGE, /* a whole data message (binary or text) */
	WS_PING,    /* payload: what the PONG must carry back */
	WS_PONG,
	WS_CLOSE, /* payload: the close frame's (code and reason) */
};

/* Returns 0 to go on; anything else stops ws_deframe_feed(), which
 * returns it (after a WS_CLOSE the caller stops anyway). */
typedef int (*ws_deframe_cb)(void *ctx, enum ws_what what, const uint8_t *data,
                             size_t len);

struct ws_deframe {
	size_t max_message; /* a data message's bound, set by the caller */

	/* The header of the frame being read, while it is incomplete. */
	uint8_t hdr[14];
	size_t hdr_len;
	/* The frame whose payload is being read. */
	bool in_payload;
	uint8_t opcode;
	bool fin;
	uint64_t left; /* payload bytes still to come */
	/* A data message being put together (fragments, or one frame that
	 * came in pieces), and its opcode; in_message: fragments so far. */
	uint8_t *msg;
	size_t msg_len, msg_cap;
	bool in_message;
	/* A control frame that came in pieces (at most 125 bytes). */
	uint8_t ctl[125];
	size_t ctl_len;

	/* Set with a negative return: the close code dsd should send (1002
	 * protocol error, 1009 too big) and why, for the log.  error: that
	 * return, kept, for every later feed. */
	int error;
	uint16_t close_code;
	char why[96];
};

/* A server's close frame as a sentence for the log and the status:
 * "closed by server (code C)" or "closed by server (code C, \"why\")",
 * the reason in printable ASCII only; 1005 ("no status") when the frame
 * carried none. */
void ws_close_text(char *buf, size_t size, const uint8_t *payload, size_t len);

/* A reader for messages of at most max_message bytes. */
void ws_deframe_init(struct ws_deframe *d, size_t max_message);
void ws_deframe_free(struct ws_deframe *d);

/*
 * Feeds len bytes; calls cb for each message and control frame completed.
 * Returns 0 when all was taken, the callback's non-zero return, or a
 * negative errno with close_code and why set: -EPROTO for a frame no
 * server may send (masked, reserved bits, an unknown opcode, a fragmented
 * or over-long control frame, a continuation out of place, a close frame
 * with one byte of payload or a code RFC 6455 does not allow in a frame:
 * 1005, 1006, 1015, unassigned ones), -EMSGSIZE
 * for a message over max_message, -ENOMEM.  After an error the reader is
 * spent: the connection must close, and every later feed returns the same
 * error without reading a byte (what follows a refused header is no frame
 * boundary: the payload of a message over the bound would otherwise be
 * read as frames, a close frame with another code among them).
 */
int ws_deframe_feed(struct ws_deframe *d, const uint8_t *in, size_t len,
                    ws_deframe_cb cb, void *ctx);

#endif

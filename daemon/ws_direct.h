/*
 * A ws:// connection run on the main loop: dsd's own TCP connect, WebSocket
 * upgrade (ws_upgrade.h) and framing (ws_frame.h, ws_deframe.h), with no
 * thread in between.  transport.c uses it for ws:// without a proxy; wss://
 * and proxied connections go through libwebsockets in its thread.
 *
 * Why: with lws in its own thread (Debian 12's lws cannot join a libevent
 * loop), every event that travels alone crosses the threads twice each way,
 * and those wakeups, not instructions, were most of dsd's CPU per round trip
 * (docs/performance.md).  Here an emit is framed straight into the output
 * buffer and written at the end of the loop iteration; a received frame is
 * handed to the caller where it lies in the read buffer.
 *
 * Host names are resolved with getaddrinfo() in a short-lived thread of its
 * own (as lws does, but without blocking anything else), numeric addresses
 * at once.  Every callback runs on the main loop; none runs from inside a
 * ws_direct_*() call.
 */
#ifndef DSD_WS_DIRECT_H
#define DSD_WS_DIRECT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct event_base;
struct url;
struct ws_direct;

struct ws_direct_ops {
	/* The upgrade was answered with a good 101. */
	void (*opened)(void *ud);
	/* A whole message; data borrowed until the callback returns. */
	void (*message)(const uint8_t *data, size_t len, void *ud);
	/* The output backlog fell below half its limit after a send was
	 * refused with -ENOBUFS. */
	void (*drained)(void *ud);
	/* The connection is gone, with why; the last call.  The link frees
	 * itself once this returns. */
	void (*closed)(const char *reason, void *ud);
};

/* Starts connecting to u (ws://).  max_message bounds a received message.
 * Returns 0, -ENOMEM, -EINVAL (u is wss://). */
int ws_direct_open(struct event_base *base, const struct url *u,
                   size_t max_message, const struct ws_direct_ops *ops,
                   void *ud, struct ws_direct **ret);
/*
 * Queues one binary message (framed and masked into the output buffer at
 * once; written at the end of the loop iteration).  Returns 0, -ENOBUFS
 * when the bytes waiting would pass limit (drained follows), -ENOTCONN
 * before opened or once closing, -ENOMEM.
 */
int ws_direct_send(struct ws_direct *l, const uint8_t *data, size_t len,
                   size_t limit);
/* Bytes queued and not yet taken by the socket. */
size_t ws_direct_backlog(const struct ws_direct *l);
/* Closes: with a close frame of code and reason when open (then waits a
 * few seconds at most for the server's), at once otherwise.  closed
 * follows, later, with reason. */
void ws_direct_close(struct ws_direct *l, uint16_t code, const char *reason);
/* Drops it without any further callback (a close frame is attempted). */
void ws_direct_abort(struct ws_direct *l);

#endif

/*
 * The WebSocket transport: transport.c, with two ways to carry a connection:
 *
 * - ws:// without a proxy runs on the main loop (ws_direct.c): dsd's own
 *   TCP connect, upgrade and framing, no thread in between;
 * - wss:// and proxied connections go through libwebsockets (the only module
 *   that uses it: transport.c's lws half and ws_thread.c), in its own thread
 *   (Debian 12's lws has neither libevent integration nor external-poll
 *   callbacks), bridged to the main loop (bridge.c).
 *
 * Everything here is called from the main (libevent) thread and every
 * callback below is delivered on the main thread, whichever way the
 * connection goes.
 *
 * Each connection attempt carries a generation number chosen by the caller;
 * callbacks carry it back so events of an old socket can be told apart from
 * those of the current one.  Internally every transport_connect() gets a
 * fresh epoch, so frames queued for one connection are never written on the
 * next, and opened/message/drained of a connection that was disconnected or
 * superseded are not delivered at all (closed always is).
 */
#ifndef DSD_TRANSPORT_H
#define DSD_TRANSPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct event_base;
struct transport;

struct transport_callbacks {
	/* The WebSocket handshake completed. */
	void (*opened)(uint32_t gen, void *userdata);
	/* One whole binary message (reassembled, at most max_message bytes);
	 * data is borrowed until the callback returns and has no particular
	 * alignment (it may sit inside a batch of messages). */
	void (*message)(uint32_t gen, const uint8_t *data, size_t len,
	                void *userdata);
	/* The socket is gone (connect failed, closed by either side, ...).
	 * Delivered exactly once per successful transport_connect(), also
	 * after transport_disconnect() and when a newer transport_connect()
	 * superseded it; never after transport_free().  reason is readable
	 * text ("closed by server (code 1000)", "message over N bytes", ...),
	 * borrowed until the callback returns. */
	void (*closed)(uint32_t gen, const char *reason, void *userdata);
	/* The send backlog dropped below half of max_send_backlog after a
	 * transport_send() returned -ENOBUFS. */
	void (*drained)(uint32_t gen, void *userdata);
};

/* Sizes of 0 take the defaults (1 MiB, 4 MiB, 64 MiB). */
struct transport_config {
	/* Set up TLS (OpenSSL, the CA store, the client certificate) for
	 * wss://.  Without it nothing of TLS is initialised or loaded (a
	 * few MB less) and transport_connect() refuses wss:// URLs. */
	bool tls;
	const char *ca_file; /* added to the system store; NULL: system only */
	/* A client certificate (PEM, its chain may follow) and its key, both
	 * or neither; the caller checked that they match. */
	const char *cert_file;
	const char *key_file;
	/* An HTTP proxy every connect goes through (CONNECT), for ws:// and
	 * wss://; NULL: none, whatever $http_proxy says.  proxy_auth is
	 * "user:password" (at most 95 bytes) or NULL; it is not kept. */
	const char *proxy_host;
	uint16_t proxy_port;
	const char *proxy_auth;
	size_t max_message;      /* receive cap; bigger messages close */
	size_t max_send_backlog; /* bytes queued for the socket */
	size_t max_recv_queue;   /* received bytes not yet dispatched by the
	                            main loop; past it the connection closes
	                            (lws's thread only: on the main loop a
	                            message is handed over as it is read) */
	unsigned fd_limit;       /* highest fd number lws may be handed + 1;
	                            0: a small default */
	/* ws:// through libwebsockets' thread too, as wss:// and proxied
	 * connections always are; by default a ws:// connection without a
	 * proxy runs on the main loop (ws_direct.h).  For tests of the lws
	 * path. */
	bool ws_via_lws;
};

/* Returns 0, -EINVAL, -ENOMEM, -errno of access(ca_file, R_OK), -EIO when
 * lws cannot create its context (a certificate or key it cannot load). */
int transport_new(struct event_base *base, const struct transport_config *cfg,
                  const struct transport_callbacks *cb, void *userdata,
                  struct transport **ret);
/* Stops the lws thread, closing any connection (a few seconds at most even
 * for a peer that stopped reading; a connection on the main loop gets a
 * close frame if its socket takes it); no callback runs from or after it.
 * NULL is a no-op; safe to call from inside a callback. */
void transport_free(struct transport *t);

/* Opens url (ws:// or wss://); a previous connection is closed first (its
 * closed callback still comes).  Returns 0, -EINVAL for a bad url,
 * -EPROTONOSUPPORT for wss:// on a transport made without tls, -ENOMEM.
 * Use a different gen for each connect. */
int transport_connect(struct transport *t, const char *url, uint32_t gen);
/* Whether it was made with tls (can open wss://). */
bool transport_has_tls(const struct transport *t);
/* How the open connection is carried: "main loop" (ws_direct.c) or
 * "libwebsockets" (its thread); NULL while none is open (before opened,
 * after closed or transport_disconnect()).  A static string. */
const char *transport_kind(const struct transport *t);
/* Closes the connection of generation gen, if it is the current one. */
void transport_disconnect(struct transport *t, uint32_t gen);
/*
 * Queues one binary message for generation gen (copied).  Returns 0,
 * -ENOBUFS when the backlog is full (retry after drained), -ENOTCONN when
 * gen is not the current open connection (opened delivered, closed not, no
 * disconnect), -EMSGSIZE when len exceeds max_send_backlog.
 */
int transport_send(struct transport *t, uint32_t gen, const uint8_t *data,
                   size_t len);
/* The same for protocol frames (SUBSCRIBE, ...): they may exceed
 * max_send_backlog by a quarter, so app data cannot hold them back. */
int transport_send_control(struct transport *t, uint32_t gen,
                           const uint8_t *data, size_t len);
/* Bytes queued and not yet handed to the socket. */
size_t transport_backlog(const struct transport *t);

/* Frames of a connection that closed before they were written are dropped:
 * the caller keeps every app frame until the platform confirms it and
 * writes it again on the next connection (pubsub.c's store). */

#endif

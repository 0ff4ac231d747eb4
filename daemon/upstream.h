/*
 * The platform side of dsd: one connection to the deepstream platform.
 *
 * It owns the connection state machine (conn.c), its timer, the transport
 * (the WebSocket, transport.c) and the generation bookkeeping that tells
 * the current socket from older ones.  It carries out what the state
 * machine asks for (connect, handshake, ping, disconnect), turns what the
 * transport reports into the machine's inputs, and logs transitions (rate
 * limited where the platform could repeat them at will).
 *
 * It knows nothing of local apps: what matters to them is reported upward
 * through the callbacks the owner sets, never by calling a file above.
 */
#ifndef DSD_UPSTREAM_H
#define DSD_UPSTREAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "conn.h"
#include "transport.h"

struct dsd_config;
struct event_base;
struct netwatch;
struct upstream;
struct wire_msg;

struct upstream_callbacks {
	/* A state transition (already logged), for watchers and systemd. */
	void (*state)(const struct conn_action *a, void *userdata);
	/* OPEN reached: app traffic may flow now. */
	void (*opened)(void *userdata);
	/* OPEN left: nothing is subscribed upstream any more. */
	void (*lost)(void *userdata);
	/* An EVENT topic message on the open connection (borrowed). */
	void (*event)(const struct wire_msg *m, void *userdata);
	/* The transport has room again after upstream_send() said -ENOBUFS. */
	void (*drained)(void *userdata);
	/* The platform has every app frame handed with a number up to seq
	 * (a PONG answered a PING written after them). */
	void (*confirmed)(uint64_t seq, void *userdata);
	/* No transport could be made (a transport swap, for a reload or for
	 * TLS after a REDIRECT to wss://, failed twice):
	 * nothing can connect any more, dsd must stop. */
	void (*fatal)(const char *why, void *userdata);
};

/*
 * Reads from cfg what it needs (URL, intervals, credentials, caFile,
 * certFile/keyFile, proxy, the client count for the transport's descriptor
 * table) and keeps its own copies.  TLS is set up only for a wss:// URL
 * (or once a connect goes to one).  Nothing connects until
 * upstream_start().
 */
int upstream_new(struct event_base *base, const struct dsd_config *cfg,
                 const struct upstream_callbacks *cb, void *userdata,
                 struct upstream **ret);
/* Stops the transport thread first; no callback runs from or after it. */
void upstream_free(struct upstream *u);

int upstream_start(struct upstream *u);
/* Feeds one input (pause, resume, close, ...) and carries out what follows.
 * Returns conn_handle()'s answer: 0, or -EALREADY and friends when the
 * input means nothing in the current state. */
int upstream_feed(struct upstream *u, const struct conn_input *in);

/*
 * A reloaded configuration: checks it first (a refusal changes nothing and
 * says why in err), then takes the new options; a new caFile, certFile,
 * keyFile (path or bytes), proxy or need for TLS makes a new transport, and
 * any of those or a new URL or credentials make a fresh connection unless
 * paused or closed.  *ret_restart says whether it did.
 */
int upstream_reconfigure(struct upstream *u, const struct dsd_config *fresh,
                         bool *ret_restart, char *err, size_t errlen);

/* One encoded app frame on the open connection, numbered seq by the caller
 * (increasing): -ENOTCONN when not OPEN, -ENOBUFS when the transport backlog
 * is full (drained follows).  When it is lost with the connection, the
 * caller writes it again: upstream keeps no copy. */
int upstream_send(struct upstream *u, const uint8_t *frame, size_t len,
                  uint64_t seq);
/* Asks the platform to confirm what was handed so far: a PING on the same
 * ordered path, unless one in flight covers it all already.  Its PONG
 * comes back as the confirmed callback.  0, -ENOTCONN, -ENOBUFS. */
int upstream_fence(struct upstream *u);
/* The same for protocol frames (SUBSCRIBE...): they never wait behind the
 * apps' emits. */
int upstream_send_control(struct upstream *u, const uint8_t *frame, size_t len);

const struct conn *upstream_conn(const struct upstream *u);
/* The network watcher (NULL with followNetwork off or unavailable). */
const struct netwatch *upstream_netwatch(const struct upstream *u);
bool upstream_is_open(const struct upstream *u);
/* How the open WebSocket is carried (transport_kind()), or NULL. */
const char *upstream_transport_kind(const struct upstream *u);

#endif

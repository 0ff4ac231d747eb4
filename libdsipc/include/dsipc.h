/*
 * libdsipc: the client library local programs use to reach dsd, the daemon
 * that shares one deepstream connection over a Unix socket.
 *
 * Conventions (sd-bus / libmosquitto shape):
 *  - every handle is opaque and made by a *_new() or a registration call;
 *  - every call returns 0 (or a documented non-negative value) or a
 *    negative errno; out-parameters are named ret_* and come last, and are
 *    left untouched on failure;
 *  - callbacks get their userdata last; the strings handed to a callback are
 *    borrowed and only valid until it returns;
 *  - the library never prints, never exits, keeps no global state and needs
 *    no global initialisation.  One handle must not be used from two threads
 *    at once; separate handles are independent.
 *
 * Loop integration: poll dsipc_get_fd() for dsipc_get_events(), at most
 * for dsipc_get_timeout(), and call dsipc_process() when it is ready or
 * the time is up (ask for the fd again after: reconnecting changes it);
 * or use the blocking helpers
 * (dsipc_wait(), dsipc_wait_event(), the *_sync control calls), or the
 * header-only libevent adapter in <dsipc-libevent.h>.
 *
 * Freeing the handle from inside one of its callbacks is allowed: the free
 * is deferred until the callback returns, and the library call that ran the
 * callback (dsipc_process(), dsipc_wait(), ...) then returns -ECANCELED
 * after releasing everything.  Do not touch the handle after that.
 */
#ifndef DSIPC_H
#define DSIPC_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#include "dsipc-version.h" /* DSIPC_VERSION_MAJOR, _MINOR, _PATCH */
#define DSIPC_VERSION                                                          \
	(DSIPC_VERSION_MAJOR * 10000 + DSIPC_VERSION_MINOR * 100 +             \
	 DSIPC_VERSION_PATCH)

#if defined(__GNUC__)
#define DSIPC_EXPORT __attribute__((visibility("default")))
#else
#define DSIPC_EXPORT
#endif

/* Where dsd listens unless $DSD_SOCKET or an explicit path says otherwise. */
#define DSIPC_DEFAULT_SOCKET "/run/dsd/dsd.sock"
/* Output queued towards dsd is capped; past it calls fail with -ENOBUFS. */
#define DSIPC_MAX_OUTPUT (16 * 1024 * 1024)
/* Limits checked locally before anything is sent (same as the daemon's). */
#define DSIPC_MAX_NAME 1024
#define DSIPC_MAX_DATA (1024 * 1024)

typedef struct dsipc dsipc;
typedef struct dsipc_slot dsipc_slot;

typedef enum dsipc_emit_result {
	DSIPC_EMIT_SENT = 0,   /* written to the platform, not yet confirmed */
	DSIPC_EMIT_QUEUED = 1, /* dsd is offline: queued until it is back */
	DSIPC_EMIT_CONFIRMED = 2, /* the platform has it (dsipc_emit_sync()) */
	/* dsd is away: kept in this process's buffer until the library is
	 * connected again (since 1.1, only while connecting or reconnecting) */
	DSIPC_EMIT_BUFFERED = 3,
} dsipc_emit_result;

/*
 * The link between this handle and dsd (since 1.1), apart from dsd's own
 * link to the platform (dsipc_watch_state()).
 */
typedef enum dsipc_link {
	DSIPC_LINK_DOWN = 0,       /* not connected and not trying */
	DSIPC_LINK_CONNECTING = 1, /* socket open, waiting for dsd's HELLO */
	DSIPC_LINK_UP = 2,         /* connected: requests go to dsd */
	DSIPC_LINK_WAITING = 3,    /* lost or refused: the next try is due at
	                              dsipc_get_timeout() */
} dsipc_link;

/* Defaults of dsipc_set_reconnect() and dsipc_set_buffer(). */
#define DSIPC_RECONNECT_MIN_MS 100
#define DSIPC_RECONNECT_MAX_MS 5000
#define DSIPC_BUFFER_EMITS     10000
#define DSIPC_BUFFER_BYTES     (8 * 1024 * 1024)

/* Connection state of dsd towards the platform ("OPEN", "RECONNECTING"...).
 * reason is never NULL (may be empty); at_unix_ms is when it changed. */
typedef void (*dsipc_state_cb)(dsipc *c, const char *state, const char *reason,
                               int64_t at_unix_ms, void *userdata);
/* One event.  json is the event's data as JSON text, NULL when it has none. */
typedef void (*dsipc_event_cb)(dsipc *c, const char *name, const char *json,
                               void *userdata);
/*
 * Errors nobody waits for: a subscription the platform refused
 * (IPC_SUB_DENIED: code -EACCES), a failed SUBSCRIBE or WATCH request, a
 * failed dsipc_emit() (which has no callback of its own), or an error about
 * the connection itself (name "", e.g. -EUSERS before dsd hangs up).  name
 * is the event name concerned (never NULL), msg the daemon's text (never
 * NULL).  A failed UNSUBSCRIBE is not reported.
 */
typedef void (*dsipc_error_cb)(dsipc *c, const char *name, int code,
                               const char *msg, void *userdata);
/*
 * Outcome of dsipc_emit_async(): result is DSIPC_EMIT_SENT, DSIPC_EMIT_QUEUED
 * or a negative errno (the daemon's refusal, or -ECONNRESET when the
 * connection went away first); msg is the daemon's text or "" (never NULL).
 */
typedef void (*dsipc_emit_cb)(dsipc *c, int result, const char *msg,
                              void *userdata);
/*
 * Called when dsipc_get_events() may have changed outside dsipc_process()
 * (output was queued and could not be written at once), and whenever the
 * socket changes (connecting, lost, reconnected).  Meant for loop adapters;
 * must not call back into the library except the dsipc_get_* getters.
 */
typedef void (*dsipc_events_cb)(dsipc *c, int events, void *userdata);
/*
 * A change of the link to dsd: link is the new dsipc_link, error why it went
 * down or could not be made (a negative errno; 0 when nothing failed).
 */
typedef void (*dsipc_link_cb)(dsipc *c, int link, int error, void *userdata);

/* -- lifetime -- */
DSIPC_EXPORT int dsipc_new(dsipc **ret);
/* NULL-safe; returns NULL.  Frees floating slots (registered with a NULL
 * ret_slot); slots the caller holds are detached and must still be freed
 * with dsipc_slot_free(). */
DSIPC_EXPORT dsipc *dsipc_free(dsipc *c);

/*
 * Connects to dsd at path (NULL: $DSD_SOCKET, else DSIPC_DEFAULT_SOCKET),
 * says HELLO and waits up to a few seconds for the answer, so failures are
 * immediate: -ENOENT / -ECONNREFUSED when dsd is not there,
 * -EPROTONOSUPPORT when it speaks another protocol version, -ETIMEDOUT,
 * -EISCONN when already connected.  After a lost connection it may be
 * called again: existing subscriptions and state watches are re-sent.
 */
DSIPC_EXPORT int dsipc_connect(dsipc *c, const char *path);
DSIPC_EXPORT int dsipc_is_connected(dsipc *c);
/*
 * Since 1.1.  Starts connecting and returns at once: the socket is opened
 * (a local connect does not wait), HELLO is queued, and dsipc_process()
 * finishes the handshake when dsd answers (DSIPC_LINK_UP) or fails it after
 * a few seconds.  Subscriptions, state watches and emits made meanwhile are
 * sent once it is up (emits are kept in the buffer of dsipc_set_buffer()).
 * Without reconnection a failure is returned (at once, or by
 * dsipc_process()); with it, the library tries again on its schedule.
 * -EISCONN when connected or already connecting.
 */
DSIPC_EXPORT int dsipc_connect_async(dsipc *c, const char *path);
/*
 * Since 1.1.  Opt-in automatic reconnection: after the link to dsd is lost
 * (or a dsipc_connect_async() attempt fails), try again after min_ms, then
 * twice as long each time up to max_ms (each delay drawn between half and
 * all of it); the first try after a loss is immediate.  Subscriptions and
 * state watches are made again, emits made meanwhile are buffered and sent
 * in order, and emits dsd had not answered (or refused because it was
 * stopping) are sent again: delivery stays at least once.  give_up_ms: how
 * long the link may stay down before the library gives up (-1: never);
 * then buffered emits fail, the link is DSIPC_LINK_DOWN and
 * dsipc_process() returns the last error once.  min_ms 0 turns it off.
 * Opt-in because it changes what dsipc_process() returns on a loss (0
 * instead of -ECONNRESET) and moves the socket (see dsipc_get_fd()).
 */
DSIPC_EXPORT int dsipc_set_reconnect(dsipc *c, int min_ms, int max_ms,
                                     int give_up_ms);
/*
 * Since 1.1.  Bounds the emits kept while the link is not up (default
 * DSIPC_BUFFER_EMITS, DSIPC_BUFFER_BYTES as encoded).  An emit that does
 * not fit is refused with -ENOBUFS and a message, never dropped later.
 * max_emits 0: no buffer (emits fail with -ENOTCONN while away).
 */
DSIPC_EXPORT int dsipc_set_buffer(dsipc *c, unsigned max_emits,
                                  size_t max_bytes);
/* Since 1.1.  Emits held in the buffer, not yet given to dsd. */
DSIPC_EXPORT int dsipc_get_buffered(dsipc *c);
/* Since 1.1.  The current dsipc_link. */
DSIPC_EXPORT int dsipc_get_link(dsipc *c);
/*
 * Since 1.1.  Calls cb with the current link at once (from inside this
 * call), then on every change.  Same slot rules as dsipc_watch_state().
 */
DSIPC_EXPORT int dsipc_watch_link(dsipc *c, dsipc_link_cb cb, void *userdata,
                                  dsipc_slot **ret_slot);

/* -- loop integration -- */
/* The socket, or -ENOTCONN.  It changes when the library reconnects: ask
 * again after every dsipc_process() (and in the dsipc_events_cb). */
DSIPC_EXPORT int dsipc_get_fd(dsipc *c);
/* POLLIN, plus POLLOUT while output is pending; 0 when not connected. */
DSIPC_EXPORT int dsipc_get_events(dsipc *c);
/*
 * Non-blocking: writes pending output, reads what is there and runs the
 * callbacks.  Returns 0, -ECONNRESET when dsd went away (the handle stays
 * valid; pending requests fail with -ECONNRESET), -EBADMSG on a protocol
 * error, -ENOTCONN when not connected, -ECANCELED when a callback freed
 * the handle.
 */
DSIPC_EXPORT int dsipc_process(dsipc *c);
/* Lets a loop adapter learn that POLLOUT is wanted (see dsipc_events_cb). */
DSIPC_EXPORT void dsipc_set_events_cb(dsipc *c, dsipc_events_cb cb,
                                      void *userdata);
/*
 * Since 1.1.  In *ret_ms, how long a loop may wait before it must call
 * dsipc_process() even if the socket stays quiet (a HELLO that must not
 * wait for ever, the next reconnection attempt): 0 now, -1 no deadline.
 */
DSIPC_EXPORT int dsipc_get_timeout(dsipc *c, int *ret_ms);

/* -- blocking helpers -- */
/*
 * Processes for up to timeout_ms (-1: forever).  Returns 0 when the time is
 * up, -EINTR when a signal interrupted the wait, or dsipc_process()'s
 * errors.
 */
DSIPC_EXPORT int dsipc_wait(dsipc *c, int timeout_ms);
/*
 * Subscribes to name if no slot does yet, waits for one event of that name
 * (other callbacks keep running) and returns its data as malloc'd JSON in
 * *ret_json (NULL when the event has no data).  -ETIMEDOUT when none came.
 */
DSIPC_EXPORT int dsipc_wait_event(dsipc *c, const char *name, int timeout_ms,
                                  char **ret_json);

/* -- state -- */
/* The last state dsd reported (borrowed until the next library call);
 * -ENODATA before the first report.  ret_* may be NULL. */
DSIPC_EXPORT int dsipc_get_state(dsipc *c, const char **ret_state,
                                 const char **ret_reason);
/*
 * Calls cb with the current state (at once, from inside this call, when it
 * is already known; else as soon as dsd reports it) and then on every
 * transition.  Asks dsd once per connection.  ret_slot NULL: the
 * registration lives as long as the handle.  -ECANCELED when that first
 * call freed the handle (*ret_slot is then left alone).
 */
DSIPC_EXPORT int dsipc_watch_state(dsipc *c, dsipc_state_cb cb, void *userdata,
                                   dsipc_slot **ret_slot);

/* -- events -- */
/*
 * Calls cb for every event called name.  Several slots for one name share
 * one subscription with dsd; freeing the last one unsubscribes.  Refusals
 * arrive at the error callback.
 */
DSIPC_EXPORT int dsipc_subscribe(dsipc *c, const char *name, dsipc_event_cb cb,
                                 void *userdata, dsipc_slot **ret_slot);
/* Cancels the registration; NULL-safe, allowed inside callbacks.  Returns
 * NULL. */
DSIPC_EXPORT dsipc_slot *dsipc_slot_free(dsipc_slot *s);
DSIPC_EXPORT void dsipc_set_error_cb(dsipc *c, dsipc_error_cb cb,
                                     void *userdata);

/*
 * Emits an event.  name must be non-empty, at most DSIPC_MAX_NAME bytes of
 * valid UTF-8; json, when not NULL, one valid JSON value (no duplicate
 * keys) of at most DSIPC_MAX_DATA bytes.  Otherwise -EINVAL or -EMSGSIZE is
 * returned, nothing is sent and dsipc_last_error() says why.
 *
 * dsipc_emit() queues the event and returns: a refusal by dsd arrives at the
 * error callback.  dsipc_emit_async() reports the outcome to cb (accepted:
 * DSIPC_EMIT_SENT or DSIPC_EMIT_QUEUED).
 *
 * dsipc_emit_sync() waits up to timeout_ms: 0 with *ret set, or the
 * daemon's negative errno with dsipc_last_error() giving its message.
 * When dsd wrote the event at once, it also waits (within the same
 * timeout) for the platform to confirm it: *ret is DSIPC_EMIT_CONFIRMED
 * then, or DSIPC_EMIT_SENT if the confirmation did not come in time.  When
 * dsd is offline it returns at once with DSIPC_EMIT_QUEUED.  Whatever *ret
 * says, an accepted event is delivered at least once (dsd(8), DELIVERY).
 */
DSIPC_EXPORT int dsipc_emit(dsipc *c, const char *name, const char *json);
DSIPC_EXPORT int dsipc_emit_async(dsipc *c, const char *name, const char *json,
                                  dsipc_emit_cb cb, void *userdata);
DSIPC_EXPORT int dsipc_emit_sync(dsipc *c, const char *name, const char *json,
                                 int timeout_ms, dsipc_emit_result *ret);

/* -- control (used by dsctl); blocking, with a timeout -- */
/* The daemon's status as one JSON object, malloc'd. */
DSIPC_EXPORT int dsipc_status_json(dsipc *c, int timeout_ms, char **ret_json);
DSIPC_EXPORT int dsipc_pause(dsipc *c, int timeout_ms);
DSIPC_EXPORT int dsipc_resume(dsipc *c, int timeout_ms);
DSIPC_EXPORT int dsipc_reload(dsipc *c, int timeout_ms);

/* Since 1.1.  The library's version at run time, as DSIPC_VERSION. */
DSIPC_EXPORT int dsipc_version(void);

/* The message of the last failure (the daemon's, or the local validation's);
 * "" when none.  Borrowed until the next call. */
DSIPC_EXPORT const char *dsipc_last_error(dsipc *c);

#ifdef __cplusplus
}
#endif

#endif

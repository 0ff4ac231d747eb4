/*
 * The event subscription registry.
 *
 * Local side: which local client (uint32 id) wants which event name.
 * Upstream side: one subscription per name on the single deepstream
 * connection, however many local clients want it, with its state.
 *
 * Pure data structure: no I/O, no clocks, no event loop.  The daemon asks
 * it what to send (subs_take_pending) and tells it what came back
 * (subs_ack, subs_denied, subs_connection_reset).
 *
 * Upstream states of a name:
 *
 *   NONE                 not subscribed upstream (and nothing in flight)
 *   PENDING_SUBSCRIBE    SUBSCRIBE sent, waiting for its ack
 *   ACKED                subscribed upstream
 *   DENIED               the server refused it (MESSAGE_DENIED)
 *   PENDING_UNSUBSCRIBE  UNSUBSCRIBE sent, waiting for its ack
 *
 * A name *needs* an upstream action when its state disagrees with whether
 * anyone locally wants it:
 *
 *   refcount > 0 and NONE   -> needs SUBSCRIBE
 *   refcount = 0 and ACKED  -> needs UNSUBSCRIBE
 *   refcount = 0 and NONE or DENIED -> forgotten (entry freed)
 *
 * At most one request per name is in flight: a name in a PENDING state
 * waits for the ack before anything else is decided for it.  So a name that
 * loses its last subscriber while its SUBSCRIBE is pending stays
 * PENDING_SUBSCRIBE; the ack makes it ACKED with refcount 0, which makes it
 * need an UNSUBSCRIBE, taken by the next subs_take_pending().  Sending the
 * UNSUBSCRIBE only after the ack means the server always sees SUBSCRIBE
 * then UNSUBSCRIBE, and nothing is sent at all if the SUBSCRIBE is denied.
 * Symmetrically, a name re-subscribed locally while its UNSUBSCRIBE is
 * pending gets a new SUBSCRIBE after that ack.
 *
 * DENIED is sticky for the connection while anyone wants the name: later
 * local subscribers join the denied name (the daemon tells them, see
 * subs_get_state) instead of asking the server again.  It is retried after
 * subs_connection_reset() or once every local subscriber has gone.
 *
 * deepstream 7.0.2 acks a bulk SUBSCRIBE even when some of its names were
 * denied (the denials arrive first).  A denied name leaves its batch, so the
 * later ack does not touch it: DENIED wins over the ack, in either order.
 *
 * 7.0.2 also has a bug there (docs/deepstream-protocol.md, 5.3): in a bulk
 * SUBSCRIBE with a denied name it leaves the *last* name of the list
 * unsubscribed instead of the denied one, yet acks.  So when a SUBSCRIBE batch
 * had a denial, its other names are not trusted on the ack: those still wanted
 * go back to NONE and are sent again in a later batch (which has no denied
 * name left in it, so this ends after one round); those no longer wanted
 * get an UNSUBSCRIBE.  Names that were in fact subscribed then draw an
 * EVENT MULTIPLE_SUBSCRIPTIONS (106) before the ack, which the daemon
 * should ignore for subscriptions it asked for.  Counted in stats.retries.
 * (A daemon can also avoid the case by taking batches of one name.)
 */
#ifndef DSD_SUBS_H
#define DSD_SUBS_H

#include <stddef.h>
#include <stdint.h>

struct subs;

enum subs_state {
	SUBS_NONE,
	SUBS_PENDING_SUBSCRIBE,
	SUBS_ACKED,
	SUBS_DENIED,
	SUBS_PENDING_UNSUBSCRIBE,
};

enum subs_action {
	SUBS_SUBSCRIBE,
	SUBS_UNSUBSCRIBE,
};

struct subs_limits {
	size_t max_names;      /* distinct names known (any state) */
	size_t max_clients;    /* client ids are 0 .. max_clients - 1 */
	size_t max_per_client; /* names per local client */
	size_t max_name_len;   /* bytes, without the NUL; e.g. IPC_MAX_NAME */
};

struct subs_stats {
	/* names == acked + pending + denied */
	size_t names;         /* names known, in any state */
	size_t acked;         /* ACKED and wanted: nothing to do */
	size_t pending;       /* needing an action, or with one in flight */
	size_t denied;        /* DENIED */
	size_t clients;       /* local clients with >= 1 subscription */
	size_t subscriptions; /* (client, name) pairs */
	uint64_t denies;      /* subs_denied() calls that matched a name */
	uint64_t retries;     /* names re-sent after a batch with a denial */
};

/* Room for the decimal correlation id of a batch, with its NUL. */
#define SUBS_CORR_MAX 21
/* Deny reasons are kept up to this many bytes (then truncated). */
#define SUBS_MAX_REASON 255

/* -EINVAL when a limit is 0, -ENOMEM. */
int subs_new(const struct subs_limits *limits, struct subs **ret);
/* NULL is a no-op. */
void subs_free(struct subs *s);

/*
 * Local subscribe.  Returns 1 if client is the first local subscriber of
 * name (the daemon should schedule an upstream flush), 0 if others already
 * had it; -EINVAL (empty name, or a client id not below max_clients),
 * -ENAMETOOLONG, -EEXIST (client already has it), -ENOSPC (client at
 * max_per_client), -ENOBUFS (max_names reached), -ENOMEM.
 */
int subs_add(struct subs *s, uint32_t client, const char *name);

/*
 * Local unsubscribe.  Returns 1 if client was the last local subscriber
 * (the daemon should schedule an upstream flush), 0 if others remain;
 * -ENOENT if client did not have name.
 */
int subs_remove(struct subs *s, uint32_t client, const char *name);

/*
 * Called by subs_remove_client() for each name whose last local subscriber
 * was the removed client.  name is borrowed until the callback returns;
 * the callback must not call into s.
 */
typedef void (*subs_unused_fn)(const char *name, void *userdata);

/*
 * Drops every subscription of client (it disconnected).  Returns how many
 * it had (0 for an unknown client).  cb may be NULL.
 */
int subs_remove_client(struct subs *s, uint32_t client, subs_unused_fn cb,
                       void *userdata);

/*
 * The local subscribers of name, for fan-out: a borrowed array of
 * *ret_count client ids in no particular order, valid until the next call
 * that modifies s (so copy it before removing clients while fanning out).
 * NULL with *ret_count = 0 when nobody has name.
 */
const uint32_t *subs_subscribers(const struct subs *s, const char *name,
                                 size_t *ret_count);
/* subs_subscribers() of a name whose length, strlen(name), the caller
 * already knows (a platform event's). */
const uint32_t *subs_subscribers_n(const struct subs *s, const char *name,
                                   size_t len, size_t *ret_count);

/* Number of names client has. */
size_t subs_client_count(const struct subs *s, uint32_t client);

/*
 * Upstream state and local refcount of name; *ret_reason is the deny
 * reason (borrowed, valid until s next changes) or NULL.  Outputs are
 * optional.  -ENOENT if the name is not known.
 */
int subs_get_state(const struct subs *s, const char *name,
                   enum subs_state *ret_state, size_t *ret_refcount,
                   const char **ret_reason);

/* Number of names currently needing action (not yet taken). */
size_t subs_pending(const struct subs *s, enum subs_action action);

/*
 * Takes up to max names needing action, oldest need first, into
 * ret_names[] (borrowed: valid until the batch is acked, denied or reset,
 * and at least until the next call into s), moves them to the PENDING
 * state under a fresh correlation id written to ret_corr (decimal counter,
 * "0" first on each connection, like the JS client).  Returns the number
 * of names taken; 0 when none need it (no id is used up then).
 */
int subs_take_pending(struct subs *s, enum subs_action action,
                      const char **ret_names, size_t max,
                      char ret_corr[SUBS_CORR_MAX]);

/*
 * The ack of the batch corr (EVENT SUBSCRIBE/UNSUBSCRIBE with isAck).
 * Names of the batch still pending become ACKED (subscribe) or NONE
 * (unsubscribe); denied names are left alone, and the other names of a
 * SUBSCRIBE batch that had a denial are retried (see the top of this
 * file).  Returns how many names
 * changed state (0 is normal when all were denied); -ENOENT for a
 * correlation id not issued on this connection, -EINVAL if corr is not
 * one of our decimal ids.
 */
int subs_ack(struct subs *s, const char *corr);

/*
 * MESSAGE_DENIED for a SUBSCRIBE of name (the daemon must not pass denials
 * of emits here).  The name becomes DENIED and leaves its batch; reason is
 * copied (truncated to SUBS_MAX_REASON).  Counted in stats.denies.  The
 * daemon reports it to subs_subscribers(name).  -ENOENT for an unknown name.
 */
int subs_denied(struct subs *s, const char *name, const char *reason);

/*
 * The upstream session ended (or a new one starts): nothing is subscribed
 * upstream any more and correlation ids restart at "0".  Names with local
 * subscribers need a SUBSCRIBE again (that is how subscriptions are rebuilt
 * after a reconnect: from this state, not from a replay queue); names
 * without are forgotten.  Call it between every two sessions.
 */
void subs_connection_reset(struct subs *s);

void subs_get_stats(const struct subs *s, struct subs_stats *ret);

#endif

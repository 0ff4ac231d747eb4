/*
 * The one store of accepted emits, from acceptance until the platform has
 * confirmed them.  Pure data structure: no I/O, no clock, no logging.
 *
 * - Every app (one local connection) has its own FIFO.  The next message
 *   to write is chosen across apps by deficit round robin over bytes: an
 *   app with one message queued gets it written after at most one quantum
 *   of every other app's data, however much a flooding app has queued.
 * - Life cycle of a message: push (accepted) -> peek/hand (given to the
 *   connection; it moves to the in-flight list, numbered in hand-off
 *   order) -> confirm (the platform answered a PING written after it:
 *   freed).  When the connection is lost, requeue() puts every in-flight
 *   message back at the head of its app's FIFO, in order; those handed
 *   again count as resent (the only source of duplicates).
 * - Bounded: messages and bytes in the whole store (in flight included)
 *   and per app.  The overflow policy applies to an app's own share first,
 *   so a flooding app hits its limit before anyone else is refused or
 *   dropped.
 */
#ifndef DSD_SENDQ_H
#define DSD_SENDQ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct sendq;
struct sendq_app;

enum sendq_policy {
	SENDQ_REJECT,      /* refuse the new message */
	SENDQ_DROP_OLDEST, /* evict the app's oldest queued message */
};

struct sendq_limits {
	size_t max_messages; /* whole store, in flight included */
	uint64_t max_bytes;
	size_t max_app_messages; /* one app's share (queued + in flight) */
	uint64_t max_app_bytes;
	enum sendq_policy policy;
	uint32_t quantum; /* DRR bytes per turn; 0: 16 KiB */
};

/* A message as the caller sees it (borrowed from the store). */
struct sendq_msg {
	const uint8_t *data;
	size_t len;
	uint32_t tag;      /* the caller's (the sender's uid, for quotas) */
	uint32_t reply_id; /* answer the app when confirmed, if want_reply */
	bool want_reply;
	bool maybe_sent;   /* may have reached the platform already (restored
	                      after a crash): counted as resent when written */
	uint64_t spool_id; /* the caller's: its durable copy, 0 for none */
};

struct sendq_callbacks {
	/* A message leaves the store unsent (drop-oldest) or confirmed.  owner
	 * is what sendq_app_set_owner() said (NULL once released). */
	void (*dropped)(void *owner, const struct sendq_msg *m, void *userdata);
	void (*confirmed)(void *owner, const struct sendq_msg *m,
	                  void *userdata);
};

struct sendq_stats {
	size_t queued, in_flight; /* messages */
	uint64_t queued_bytes, in_flight_bytes;
	size_t apps; /* with messages queued or in flight */
	uint64_t pushed, rejected, dropped, handed, resent, confirmed;
};

int sendq_new(const struct sendq_limits *lim, const struct sendq_callbacks *cb,
              void *userdata, struct sendq **ret);
/* Frees every message (no callbacks) and every app. */
void sendq_free(struct sendq *q);
/* New limits apply to new pushes; nothing held is dropped. */
int sendq_set_limits(struct sendq *q, const struct sendq_limits *lim);

/* A new app's FIFO; id is the caller's (for sendq_top()). */
struct sendq_app *sendq_app_new(struct sendq *q, uint32_t id, void *owner);
/* Its turn is weight (1 or more) times the quantum; the next turn uses
 * it. */
void sendq_app_set_weight(struct sendq_app *a, uint32_t weight);
/* Its messages go before those of every app not so marked (emits restored
 * after a restart are older than anything accepted since: per-app order
 * holds across the restart whatever connection the app comes back on). */
void sendq_app_set_first(struct sendq *q, struct sendq_app *a);
/* The app is gone: its messages stay until written and confirmed (they
 * were accepted), then the FIFO goes. */
void sendq_app_release(struct sendq *q, struct sendq_app *a);

/*
 * Accepts a copy of data for app a.  0, or -ENOBUFS (full, policy reject:
 * the app's share, or the store), -EMSGSIZE (bigger than a share could
 * ever hold), -ENOMEM.  With drop-oldest, *ret_dropped says how many of
 * the app's oldest queued messages were evicted to make room (dropped
 * callback for each).
 */
int sendq_push(struct sendq *q, struct sendq_app *a, const void *data,
               size_t len, const struct sendq_msg *meta, unsigned *ret_dropped);

/* The next message to write, fairly chosen, or NULL when none is queued.
 * Stays the next one until sendq_hand() (pushes do not change it). */
const struct sendq_msg *sendq_peek(struct sendq *q);
/*
 * The window is full: the next message of an app that has nothing in
 * flight and whose next message is at most max_len bytes, or NULL.  This
 * is the reserve that keeps a light app from waiting for the confirmation
 * of a flooding app's window; what it adds in flight is bounded by apps
 * times max_len.  It becomes the peeked message.
 */
const struct sendq_msg *sendq_peek_idle(struct sendq *q, size_t max_len);
/* The peeked message was given to the connection: it is in flight now
 * with the returned number (1, 2, ... in hand-off order). */
uint64_t sendq_hand(struct sendq *q);
/* The platform confirmed everything handed up to and including seq. */
size_t sendq_confirm(struct sendq *q, uint64_t seq);
/* The connection is lost: every message in flight goes back to the head
 * of its app's FIFO, in order.  Returns how many. */
size_t sendq_requeue(struct sendq *q);
/* The number the next sendq_hand() will give. */
uint64_t sendq_next_seq(const struct sendq *q);

void sendq_get_stats(const struct sendq *q, struct sendq_stats *ret);
/* The same figures one at a time, for the hot path. */
size_t sendq_in_flight(const struct sendq *q, uint64_t *ret_bytes);
size_t sendq_held(const struct sendq *q);           /* queued + in flight */
size_t sendq_app_depth(const struct sendq_app *a);  /* queued + in flight */
size_t sendq_app_queued(const struct sendq_app *a); /* not yet written */
uint64_t sendq_app_queued_bytes(const struct sendq_app *a);

/* The n apps with the most bytes held, most first: ids and bytes. */
struct sendq_talker {
	uint32_t id;
	size_t messages;
	uint64_t bytes;
};
size_t sendq_top(const struct sendq *q, struct sendq_talker *out, size_t n);

#endif

/*
 * A bridge between the main thread, which runs libevent, and one other
 * thread that runs a loop of its own (in dsd: the libwebsockets thread of
 * transport.c).  Nothing here knows about WebSockets.
 *
 * Two queues of caller-owned items, each under the bridge's one mutex:
 *
 *   out (main -> other)  bridge_out_push() appends; when the queue was
 *                        empty it has the libevent loop call the
 *                        wake_other hook once the running callback
 *                        returns (one wakeup for a burst of pushes); the
 *                        other thread takes items with bridge_out_pop().
 *
 *   in  (other -> main)  bridge_in_post() appends and, only when the queue
 *                        was empty, writes an eventfd that a libevent event
 *                        on the main thread watches.  That event's callback
 *                        reads the eventfd FIRST and only then takes the
 *                        whole queue under the lock, then hands the items
 *                        to deliver() without the lock.  In the other order
 *                        an item posted between taking the queue and
 *                        reading the eventfd would find the queue empty and
 *                        write a wakeup that the read then swallows: the
 *                        item would wait until something else arrived.
 *
 * Generations: every item carries an epoch (the caller's generation, for
 * instance one per connection).  bridge_out_pop(b, epoch) first moves the
 * items of older epochs off the out queue, so an item queued for one
 * generation is never taken by the next: items marked `keep` go to a stale
 * list the main thread takes back with bridge_take_stale(), the others are
 * freed.  The in queue is not filtered: the main thread knows which
 * generation is current and decides in deliver().
 *
 * Flow control: the out queue counts bytes (the items' len).  A push over
 * the caller's limit fails with -ENOBUFS and arms a low-water mark; once a
 * pop leaves at most low_water bytes queued, drained() runs on the main
 * thread, with the epoch that pop asked for.
 *
 * Every function is safe from either thread unless it says otherwise.
 */
#ifndef DSD_BRIDGE_H
#define DSD_BRIDGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct event_base;
struct bridge;

/* Embedded in the caller's own structure (see bridge_entry()). */
struct bridge_item {
	struct bridge_item *next; /* the bridge's */
	uint64_t epoch;           /* the generation the item belongs to */
	size_t len;               /* bytes it counts for against the limits */
	bool keep; /* out queue: when stale, kept for bridge_take_stale() */
};

/* The structure of type `type` whose member `member` is item `it`. */
#define bridge_entry(it, type, member)                                         \
	((type *)(void *)((char *)(it)-offsetof(type, member)))

struct bridge_ops {
	/* Main thread: one item of the in queue, oldest first.  The bridge
	 * frees it with free_in() afterwards.  May call bridge_free(): the
	 * items still to come are then freed and not delivered. */
	void (*deliver)(struct bridge_item *it, void *userdata);
	/* Main thread, after the items of the same wakeup: see flow control
	 * above.  Optional. */
	void (*drained)(uint64_t epoch, void *userdata);
	/* Main thread, from the loop, without the lock, after a push found
	 * the out queue empty (once for all the pushes made before it runs):
	 * make the other thread look at the out queue.  Optional. */
	void (*wake_other)(void *userdata);
	/* Free an item of the in queue, of the out queue or stale list.
	 * Called without the lock.  Required. */
	void (*free_in)(struct bridge_item *it);
	void (*free_out)(struct bridge_item *it);
};

/* Returns 0, -EINVAL, -ENOMEM, -errno of eventfd(). */
int bridge_new(struct event_base *base, const struct bridge_ops *ops,
               void *userdata, size_t low_water, struct bridge **ret);
/*
 * Main thread, once the other thread no longer calls into the bridge (it
 * has been joined).  Frees every item still queued or stale.  Safe from
 * inside deliver() and drained(): nothing is delivered after it.  NULL is a
 * no-op.
 */
void bridge_free(struct bridge *b);

/* Main thread.  Appends it unless the queue would then hold more than limit
 * bytes: -ENOBUFS (it stays the caller's, and drained() is armed). */
int bridge_out_push(struct bridge *b, struct bridge_item *it, size_t limit);
/* Other thread.  Drops or keeps (see `keep`) the items of epochs before
 * epoch, then takes the first item if it belongs to epoch; NULL if there is
 * none.  *ret_more: another item of epoch waits behind it. */
struct bridge_item *bridge_out_pop(struct bridge *b, uint64_t epoch,
                                   bool *ret_more);
/* Other thread.  The same for a run: the items of epoch at the head of
 * the queue, in order and linked by next, as many as fit in max_bytes of
 * len (the first always), under one lock. */
struct bridge_item *bridge_out_pop_run(struct bridge *b, uint64_t epoch,
                                       size_t max_bytes, bool *ret_more);
/* Drops or keeps the items of epochs before epoch (UINT64_MAX: all). */
void bridge_out_purge(struct bridge *b, uint64_t epoch);
/* bridge_out_purge(b, UINT64_MAX) that also forgets an armed drained():
 * nothing that was refused is waiting for room any more. */
void bridge_out_flush(struct bridge *b);
/* Whether the out queue holds anything. */
bool bridge_out_pending(struct bridge *b);
/* Bytes in the out queue; lock-free, may be a moment old. */
size_t bridge_out_bytes(const struct bridge *b);

/* Hands the stale items kept by a purge to the caller, oldest first, as a
 * list linked by next; the caller frees them. */
struct bridge_item *bridge_take_stale(struct bridge *b);

/* Any thread.  Appends it unless the in queue would then hold more than
 * limit bytes (SIZE_MAX: never refuse): -ENOBUFS, it stays the caller's. */
int bridge_in_post(struct bridge *b, struct bridge_item *it, size_t limit);
/* Bytes in the in queue; lock-free, may be a moment old.  To a thread
 * that is the only one posting items with bytes, it is never less than
 * the truth (the main thread only takes them). */
size_t bridge_in_bytes(const struct bridge *b);

#endif

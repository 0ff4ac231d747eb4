/*
 * The outgoing queue: a bounded FIFO of opaque byte messages (encoded
 * frames) that dsd keeps while the upstream connection is not OPEN and
 * flushes in order once it is.
 *
 * Pure data structure: no I/O, no clocks, no event loop.  One allocation
 * per message (header and bytes together), so pushing and popping are O(1)
 * whatever the queue length.
 *
 * Sizes: "bytes" counts message payload bytes only, not our per-message
 * header, so the limit means the same thing as the frame sizes the caller
 * sees.
 */
#ifndef DSD_OUTQ_H
#define DSD_OUTQ_H

#include <stddef.h>
#include <stdint.h>

struct outq;

enum outq_policy {
	/* A push that does not fit fails with -ENOBUFS; the queue is left
	 * unchanged. */
	OUTQ_REJECT,
	/* A push that does not fit evicts messages from the head (oldest
	 * first) until it fits. */
	OUTQ_DROP_OLDEST,
};

struct outq_limits {
	size_t max_messages; /* > 0 */
	uint64_t max_bytes;  /* > 0 */
	enum outq_policy policy;
};

/* Totals since outq_new().  Invariant:
 * pushed + requeued == popped + dropped + count. */
struct outq_counters {
	uint64_t pushed;   /* accepted by outq_push() */
	uint64_t dropped;  /* evicted by OUTQ_DROP_OLDEST */
	uint64_t rejected; /* refused by outq_push() (-ENOBUFS or -EMSGSIZE) */
	uint64_t popped;   /* removed by outq_pop() */
	uint64_t requeued; /* put back by outq_unpop() */
};

/*
 * Called for each message evicted under OUTQ_DROP_OLDEST, before it is
 * freed (data is borrowed until the callback returns), so the owner can
 * account the loss to the client in tag.  Must not call back into q.
 */
typedef void (*outq_drop_fn)(const void *data, size_t len, uint32_t tag,
                             void *userdata);

/* -EINVAL when a limit is 0 or the policy is unknown, -ENOMEM. */
int outq_new(const struct outq_limits *limits, struct outq **ret);
/* Frees the queue and every message still in it; NULL is a no-op. */
void outq_free(struct outq *q);

/* Optional; cb NULL removes it. */
void outq_set_drop_callback(struct outq *q, outq_drop_fn cb, void *userdata);

/*
 * Appends a copy of data[0..len) with tag (opaque to the queue, e.g. the
 * originating client id).  Returns 0; -EINVAL for len 0; -EMSGSIZE when
 * len alone exceeds max_bytes (under either policy: it could never fit);
 * -ENOBUFS under OUTQ_REJECT when it does not fit (queue unchanged);
 * -ENOMEM.  *ret_dropped (optional) is set on success to the number of
 * messages evicted to make room (always 0 under OUTQ_REJECT).
 */
int outq_push(struct outq *q, const void *data, size_t len, uint32_t tag,
              unsigned *ret_dropped);

/*
 * The oldest message, borrowed until the next outq_pop(), outq_push() or
 * outq_set_limits(); NULL when empty.  ret_len and ret_tag are optional.
 */
const void *outq_peek(const struct outq *q, size_t *ret_len, uint32_t *ret_tag);
/* Removes the oldest message; no-op when empty. */
void outq_pop(struct outq *q);
/*
 * Puts a message back at the head, the inverse of outq_pop(): for messages
 * popped and handed on that came back unsent.  Put several back newest
 * first.  No limit applies (they were accepted once); 0, -EINVAL, -ENOMEM.
 */
int outq_unpop(struct outq *q, const void *data, size_t len, uint32_t tag);

size_t outq_count(const struct outq *q);
uint64_t outq_bytes(const struct outq *q);
void outq_get_counters(const struct outq *q, struct outq_counters *ret);
void outq_get_limits(const struct outq *q, struct outq_limits *ret);

/*
 * Replaces the limits (config reload).  Nothing already accepted is lost:
 * when the new limits are smaller than what is queued, the queue stays over
 * them until it drains.  Meanwhile a push is judged against the new limits
 * as usual: under OUTQ_REJECT it fails with -ENOBUFS until there is room,
 * under OUTQ_DROP_OLDEST it evicts from the head until the new message
 * fits (which may evict several).  -EINVAL as in outq_new(), limits kept.
 */
int outq_set_limits(struct outq *q, const struct outq_limits *limits);

#endif

/*
 * The pure parts of libdsipc's reconnection: when the next try is due, and
 * whether one more emit fits the buffer kept while dsd is away.  No clock,
 * no I/O: the time is handed in, so the unit test walks whole schedules.
 */
#ifndef DSIPC_BACKOFF_H
#define DSIPC_BACKOFF_H

#include <stddef.h>
#include <stdint.h>

struct backoff {
	unsigned min_ms; /* the second try's delay; doubles from there */
	unsigned max_ms; /* no delay is longer */
	int give_up_ms;  /* how long the link may stay down; -1: for ever */
};

/*
 * The delay before try number attempt (0: the first after a loss, at
 * once), drawn between half and all of min(min_ms * 2^(attempt-1), max_ms)
 * so that many apps that lost the same dsd do not come back in step.
 * seed is a xorshift32 state (never 0).
 */
unsigned backoff_delay(const struct backoff *b, unsigned attempt,
                       uint32_t *seed);

/*
 * When try number attempt is due, for a link lost at lost_at, asked at
 * now (any monotonic ms): never after lost_at + give_up_ms, so the last
 * try falls on the give-up time.  -1 when now is past it: give up.
 */
int64_t backoff_next(const struct backoff *b, unsigned attempt, int64_t lost_at,
                     int64_t now, uint32_t *seed);

struct buffer_bound {
	unsigned max_emits;
	size_t max_bytes;
};

struct buffer_use {
	unsigned emits;
	size_t bytes;
};

/* 0 when one more emit of len bytes fits, -ENOBUFS when it does not. */
int buffer_admit(const struct buffer_bound *b, const struct buffer_use *u,
                 size_t len);

#endif

/* See backoff.h. */
#include <errno.h>

#include "backoff.h"

static uint32_t xorshift32(uint32_t *s)
{
	uint32_t x = *s ? *s : 0x9e3779b9u;

	x ^= x << 13;
	x ^= x >> 17;
	x ^= x << 5;
	*s = x;
	return x;
}

unsigned backoff_delay(const struct backoff *b, unsigned attempt,
                       uint32_t *seed)
{
	uint64_t d;
	unsigned half;

	if (attempt == 0)
		return 0;
	d = b->min_ms;
	/* min_ms << (attempt - 1), without overflowing on a long outage */
	for (unsigned k = 1; k < attempt && d < b->max_ms; k++)
		d *= 2;
	if (d > b->max_ms)
		d = b->max_ms;
	half = (unsigned)(d / 2);
	return half + xorshift32(seed) % ((unsigned)d - half + 1);
}

int64_t backoff_next(const struct backoff *b, unsigned attempt, int64_t lost_at,
                     int64_t now, uint32_t *seed)
{
	int64_t at = now + backoff_delay(b, attempt, seed);

	if (b->give_up_ms < 0)
		return at;
	if (now >= lost_at + b->give_up_ms && attempt > 0)
		return -1;
	if (at > lost_at + b->give_up_ms)
		at = lost_at + b->give_up_ms;
	return at;
}

int buffer_admit(const struct buffer_bound *b, const struct buffer_use *u,
                 size_t len)
{
	if (u->emits >= b->max_emits)
		return -ENOBUFS;
	if (len > b->max_bytes || u->bytes > b->max_bytes - len)
		return -ENOBUFS;
	return 0;
}

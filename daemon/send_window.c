/*
 * The send window from the confirmation rate (see send_window.h).
 */
#include "send_window.h"

#define US_PER_S 1000000u

static uint64_t clamp(uint64_t v, uint64_t lo, uint64_t hi)
{
	return v < lo ? lo : v > hi ? hi : v;
}

/* The rate at which the floor drains in exactly the target delay: the
 * starting point, so an unknown link gets the floor. */
static uint64_t floor_rate(uint64_t floor)
{
	return floor * US_PER_S / SEND_WINDOW_TARGET_US;
}

/* A quarter of the way from rate to sample: one odd sample (a scheduling
 * hiccup, a pause of the app) moves the window a little, a lasting change
 * within a few samples. */
static uint64_t smooth(uint64_t rate, uint64_t sample)
{
	if (sample >= rate)
		return rate + (sample - rate) / 4;
	return rate - (rate - sample) / 4;
}

static void apply(struct send_window *w)
{
	w->bytes = clamp(w->byte_rate * SEND_WINDOW_TARGET_US / US_PER_S,
	                 SEND_WINDOW_MIN_BYTES, SEND_WINDOW_MAX_BYTES);
	w->messages = clamp(w->message_rate * SEND_WINDOW_TARGET_US / US_PER_S,
	                    SEND_WINDOW_MIN_MESSAGES, SEND_WINDOW_MAX_MESSAGES);
}

void send_window_reset(struct send_window *w)
{
	*w = (struct send_window){
	        .byte_rate = floor_rate(SEND_WINDOW_MIN_BYTES),
	        .message_rate = floor_rate(SEND_WINDOW_MIN_MESSAGES),
	};
	apply(w);
}

void send_window_confirmed(struct send_window *w, uint64_t now_us,
                           uint64_t bytes, uint64_t messages)
{
	uint64_t elapsed;

	/* What the first confirmation confirms was written before any
	 * interval began: it only starts the clock. */
	if (!w->started || now_us < w->sample_start_us) {
		w->started = 1;
		w->sample_start_us = now_us;
		w->sample_bytes = 0;
		w->sample_messages = 0;
		return;
	}
	w->sample_bytes += bytes;
	w->sample_messages += messages;
	elapsed = now_us - w->sample_start_us;
	if (elapsed < SEND_WINDOW_SAMPLE_US)
		return;
	/* Per wall time, idle time included: a link that confirmed little
	 * because little was written is not credited with more. */
	w->byte_rate =
	        smooth(w->byte_rate, w->sample_bytes * US_PER_S / elapsed);
	w->message_rate = smooth(w->message_rate,
	                         w->sample_messages * US_PER_S / elapsed);
	w->measured = 1;
	w->sample_start_us = now_us;
	w->sample_bytes = 0;
	w->sample_messages = 0;
	apply(w);
}

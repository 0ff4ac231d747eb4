/*
 * How much may be written to the platform and not yet confirmed: a window
 * that bounds *time* rather than bytes.  Pure: no I/O, no clock (the time
 * is handed in), no allocation.
 *
 * The window exists for fairness: a light app's event waits behind what
 * is already written.  A fixed 16 KiB is a few milliseconds behind a busy
 * deepstream server but starves a fast link (a PONG round trip every 16
 * emits of 1 KiB).  So, the way delay-based congestion control does it:
 * the rate at which the platform confirms bytes (and messages) is measured
 * from the PONGs, over wall time, and the window is that rate times
 * SEND_WINDOW_TARGET_US, clamped between the old fixed window (floor) and
 * SEND_WINDOW_MAX_* (cap).
 *
 * It cannot run away: the rate is confirmed bytes per wall time, which no
 * window can push past what the link drains.  A bigger window raises the
 * measured rate only while the link has room; once it saturates, more
 * window is only queueing delay, the rate stays, and so does the window
 * (rate x target).  A slower link confirms less per second and the window
 * shrinks with it, down to the floor.
 */
#ifndef DSD_SEND_WINDOW_H
#define DSD_SEND_WINDOW_H

#include <stdint.h>

/* The floor: the fixed window before (docs/fairness.md), small enough
 * that a busy server works through it in a few milliseconds. */
#define SEND_WINDOW_MIN_BYTES    (16 * 1024)
#define SEND_WINDOW_MIN_MESSAGES 128
/* The cap: every buffer is bounded, whatever the link measures.  In
 * messages only twice the floor: 2,048 cost a fifth of the 64-B ingest
 * into the local sink on 2 cores (docs/performance.md), and 256 emits of
 * 1 KiB already fill the byte cap. */
#define SEND_WINDOW_MAX_BYTES    (256 * 1024)
#define SEND_WINDOW_MAX_MESSAGES 256
/* The longest a light app should wait behind what is already written. */
#define SEND_WINDOW_TARGET_US 2000
/* A rate sample spans at least this long (several PONGs on a fast link;
 * one on a slow one). */
#define SEND_WINDOW_SAMPLE_US 2000

struct send_window {
	/* What may be in flight now: read these. */
	uint64_t bytes;
	uint64_t messages;
	/* The smoothed confirmation rates, per second.  Until a sample set
	 * them (measured), the rates at which the floor lasts the target. */
	uint64_t byte_rate;
	uint64_t message_rate;
	int measured; /* a sample has set the rates */
	/* The sample being taken: confirmed since sample_start_us. */
	uint64_t sample_start_us;
	uint64_t sample_bytes;
	uint64_t sample_messages;
	int started; /* sample_start_us is set */
};

/* At the floor, no rate known (also after a lost connection: a new link's
 * rate is unknown). */
void send_window_reset(struct send_window *w);
/* The platform confirmed bytes in messages at now_us (monotonic). */
void send_window_confirmed(struct send_window *w, uint64_t now_us,
                           uint64_t bytes, uint64_t messages);

#endif

/*
 * The send window from the confirmation rate (daemon/send_window.c: pure,
 * the time handed in).  A fluid model of a link stands in for the
 * platform: the sender keeps the window full, a PING goes out every half
 * window, and a half window is confirmed as fast as the link drains it
 * (its rate) or the round trip allows (window / base round trip),
 * whichever is slower.
 */
#include <check.h>

#include "check-run.h"
#include "send_window.h"

struct link {
	uint64_t rate;    /* bytes per second it drains at most */
	uint64_t rtt_us;  /* the round trip with nothing queued */
	uint64_t msg_len; /* bytes per message */
	uint64_t now_us;
};

static uint64_t min_u64(uint64_t a, uint64_t b)
{
	return a < b ? a : b;
}

/* One PONG: half the window confirmed.  Checks the bounds every time. */
static void step(struct send_window *w, struct link *l)
{
	uint64_t half = w->bytes / 2;
	uint64_t msgs = w->messages / 2;
	uint64_t through, dt;

	/* a half window counts in messages too: whichever is reached first */
	if (msgs * l->msg_len < half)
		half = msgs * l->msg_len;
	through = min_u64(l->rate, w->bytes * 1000000 / l->rtt_us);
	dt = half * 1000000 / through;
	l->now_us += dt > 0 ? dt : 1;
	send_window_confirmed(w, l->now_us, half, half / l->msg_len);
	ck_assert_uint_ge(w->bytes, SEND_WINDOW_MIN_BYTES);
	ck_assert_uint_le(w->bytes, SEND_WINDOW_MAX_BYTES);
	ck_assert_uint_ge(w->messages, SEND_WINDOW_MIN_MESSAGES);
	ck_assert_uint_le(w->messages, SEND_WINDOW_MAX_MESSAGES);
}

/* Runs the link for us microseconds. */
static void run(struct send_window *w, struct link *l, uint64_t us)
{
	uint64_t end = l->now_us + us;

	while (l->now_us < end)
		step(w, l);
}

START_TEST(test_starts_at_the_floor)
{
	struct send_window w;

	send_window_reset(&w);
	ck_assert_uint_eq(w.bytes, SEND_WINDOW_MIN_BYTES);
	ck_assert_uint_eq(w.messages, SEND_WINDOW_MIN_MESSAGES);
	/* the first confirmation only starts the clock, however much */
	send_window_confirmed(&w, 1000, 1000000, 1000);
	ck_assert_uint_eq(w.bytes, SEND_WINDOW_MIN_BYTES);
	/* shorter than a sample: nothing measured yet */
	send_window_confirmed(&w, 1000 + SEND_WINDOW_SAMPLE_US - 1, 1000000,
	                      1000);
	ck_assert_uint_eq(w.bytes, SEND_WINDOW_MIN_BYTES);
}
END_TEST

/* A busy deepstream server: ~25k emits of ~100 bytes per second. */
START_TEST(test_slow_link_keeps_the_floor)
{
	struct send_window w;
	struct link l = {.rate = 2500000, .rtt_us = 1000, .msg_len = 100};

	send_window_reset(&w);
	for (int k = 0; k < 10000; k++) {
		step(&w, &l);
		ck_assert_uint_eq(w.bytes, SEND_WINDOW_MIN_BYTES);
		ck_assert_uint_eq(w.messages, SEND_WINDOW_MIN_MESSAGES);
	}
}
END_TEST

/* A round trip longer than the target: the floor, whatever the rate. */
START_TEST(test_long_round_trip_keeps_the_floor)
{
	struct send_window w;
	struct link l = {.rate = 1000000000, .rtt_us = 5000, .msg_len = 1024};

	send_window_reset(&w);
	run(&w, &l, 2000000);
	ck_assert_uint_eq(w.bytes, SEND_WINDOW_MIN_BYTES);
}
END_TEST

/* A fast link (the local sink): the window grows to the cap, quickly,
 * and never past it. */
START_TEST(test_fast_link_grows_to_the_cap)
{
	struct send_window w;
	struct link l = {.rate = 400000000, .rtt_us = 100, .msg_len = 1024};

	send_window_reset(&w);
	run(&w, &l, 50000);
	ck_assert_uint_eq(w.bytes, SEND_WINDOW_MAX_BYTES);
	run(&w, &l, 5000000);
	ck_assert_uint_eq(w.bytes, SEND_WINDOW_MAX_BYTES);
}
END_TEST

/* A link that saturates below the cap: the window settles at rate x
 * target, where the wait behind it is the target, and grows no further
 * though a bigger window would fit under the cap. */
START_TEST(test_saturated_link_stops_growing)
{
	struct send_window w;
	struct link l = {.rate = 50000000, .rtt_us = 100, .msg_len = 1024};
	uint64_t want = 50000000ull * SEND_WINDOW_TARGET_US / 1000000;

	send_window_reset(&w);
	run(&w, &l, 200000);
	for (int k = 0; k < 1000; k++) {
		step(&w, &l);
		ck_assert_uint_ge(w.bytes, want * 95 / 100);
		ck_assert_uint_le(w.bytes, want * 105 / 100);
		/* what a light app waits behind: about the target */
		ck_assert_uint_le(w.bytes * 1000000 / l.rate,
		                  SEND_WINDOW_TARGET_US * 105 / 100);
	}
}
END_TEST

/* The link slows: the window follows it down to the floor. */
START_TEST(test_shrinks_when_the_link_slows)
{
	struct send_window w;
	struct link l = {.rate = 400000000, .rtt_us = 100, .msg_len = 1024};

	send_window_reset(&w);
	run(&w, &l, 100000);
	ck_assert_uint_eq(w.bytes, SEND_WINDOW_MAX_BYTES);
	l.rate = 30000000;
	run(&w, &l, 200000);
	ck_assert_uint_le(w.bytes, 30000000ull * SEND_WINDOW_TARGET_US /
	                                   1000000 * 105 / 100);
	ck_assert_uint_ge(w.bytes, 30000000ull * SEND_WINDOW_TARGET_US /
	                                   1000000 * 95 / 100);
	l.rate = 2000000;
	run(&w, &l, 1000000);
	ck_assert_uint_eq(w.bytes, SEND_WINDOW_MIN_BYTES);
	/* and up again */
	l.rate = 400000000;
	run(&w, &l, 100000);
	ck_assert_uint_eq(w.bytes, SEND_WINDOW_MAX_BYTES);
}
END_TEST

/* Small messages: the window in messages grows with the message rate, to
 * its own cap. */
START_TEST(test_messages_follow_the_message_rate)
{
	struct send_window w;
	struct link l = {.rate = 5000000, .rtt_us = 100, .msg_len = 64};
	uint64_t want = 5000000ull / 64 * SEND_WINDOW_TARGET_US / 1000000;

	send_window_reset(&w);
	run(&w, &l, 200000);
	/* 5 MB/s of 64 bytes is ~78k messages/s: ~156 in 2 ms, over the
	 * floor, while the bytes (10 KB in 2 ms) stay at theirs */
	ck_assert_uint_ge(w.messages, want * 95 / 100);
	ck_assert_uint_le(w.messages, want * 105 / 100);
	ck_assert_uint_eq(w.bytes, SEND_WINDOW_MIN_BYTES);
	l.rate = 400000000;
	run(&w, &l, 200000);
	ck_assert_uint_eq(w.messages, SEND_WINDOW_MAX_MESSAGES);
}
END_TEST

/* The rate is per wall time, not per window: a big confirmation after a
 * long quiet spell is a slow link, not a fast one. */
START_TEST(test_rate_is_per_wall_time)
{
	struct send_window w;
	uint64_t t = 1000;

	send_window_reset(&w);
	send_window_confirmed(&w, t, 0, 0);
	for (int k = 0; k < 100; k++) {
		t += 1000000; /* 200 KiB confirmed per second */
		send_window_confirmed(&w, t, 200 * 1024, 200);
		ck_assert_uint_eq(w.bytes, SEND_WINDOW_MIN_BYTES);
		ck_assert_uint_eq(w.messages, SEND_WINDOW_MIN_MESSAGES);
	}
	/* many small confirmations add up over the sample, not each alone */
	send_window_reset(&w);
	send_window_confirmed(&w, t, 0, 0);
	for (int k = 0; k < 20000; k++) {
		t += 100; /* 10 KiB per 100 us: 200 KiB in 2 ms */
		send_window_confirmed(&w, t, 10 * 1024, 10);
	}
	ck_assert_uint_ge(w.bytes, 200 * 1024 * 99 / 100);
	ck_assert_uint_le(w.bytes, 200 * 1024);
}
END_TEST

/* A lost connection: the floor again; a clock that steps back restarts
 * the sample instead of dividing by a wrapped interval. */
START_TEST(test_reset_and_clock_step_back)
{
	struct send_window w;
	struct link l = {.rate = 400000000, .rtt_us = 100, .msg_len = 1024};

	send_window_reset(&w);
	run(&w, &l, 100000);
	ck_assert_uint_eq(w.bytes, SEND_WINDOW_MAX_BYTES);
	send_window_reset(&w);
	ck_assert_uint_eq(w.bytes, SEND_WINDOW_MIN_BYTES);
	ck_assert_uint_eq(w.messages, SEND_WINDOW_MIN_MESSAGES);

	send_window_confirmed(&w, 5000000, 0, 0);
	send_window_confirmed(&w, 1000, 1 << 30, 1 << 20);
	ck_assert_uint_eq(w.bytes, SEND_WINDOW_MIN_BYTES);
	send_window_confirmed(&w, 1000 + SEND_WINDOW_SAMPLE_US, 4096, 4);
	ck_assert_uint_eq(w.bytes, SEND_WINDOW_MIN_BYTES);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("send_window");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, test_starts_at_the_floor);
	tcase_add_test(tc, test_slow_link_keeps_the_floor);
	tcase_add_test(tc, test_long_round_trip_keeps_the_floor);
	tcase_add_test(tc, test_fast_link_grows_to_the_cap);
	tcase_add_test(tc, test_saturated_link_stops_growing);
	tcase_add_test(tc, test_shrinks_when_the_link_slows);
	tcase_add_test(tc, test_messages_follow_the_message_rate);
	tcase_add_test(tc, test_rate_is_per_wall_time);
	tcase_add_test(tc, test_reset_and_clock_step_back);
	suite_add_tcase(s, tc);
	return check_run(s);
}

/*
 * libdsipc's reconnection schedule and the bound of its emit buffer
 * (libdsipc/backoff.c: pure, the time handed in).
 */
#include <check.h>
#include <errno.h>

#include "backoff.h"
#include "check-run.h"

START_TEST(test_first_try_at_once_then_doubling)
{
	struct backoff b = {.min_ms = 100, .max_ms = 5000, .give_up_ms = -1};
	unsigned want_max[] = {0, 100, 200, 400, 800, 1600, 3200, 5000, 5000};
	uint32_t seed = 12345;

	for (unsigned a = 0; a < sizeof(want_max) / sizeof(want_max[0]); a++) {
		/* many draws: always within [half, all] of the step */
		for (int k = 0; k < 200; k++) {
			unsigned d = backoff_delay(&b, a, &seed);
			ck_assert_uint_le(d, want_max[a]);
			ck_assert_uint_ge(d, want_max[a] / 2);
		}
	}
	/* a long outage does not overflow the doubling */
	ck_assert_uint_le(backoff_delay(&b, 4000000000u, &seed), 5000);
	ck_assert_uint_ge(backoff_delay(&b, 4000000000u, &seed), 2500);
}
END_TEST

START_TEST(test_jitter_spreads)
{
	struct backoff b = {.min_ms = 1000, .max_ms = 1000, .give_up_ms = -1};
	uint32_t seed = 1;
	unsigned lo = 1000, hi = 0;

	for (int k = 0; k < 500; k++) {
		unsigned d = backoff_delay(&b, 3, &seed);
		lo = d < lo ? d : lo;
		hi = d > hi ? d : hi;
	}
	/* apps that lost the same dsd do not all come back at once */
	ck_assert_uint_lt(lo, 600);
	ck_assert_uint_gt(hi, 900);
}
END_TEST

START_TEST(test_give_up)
{
	struct backoff b = {.min_ms = 100, .max_ms = 400, .give_up_ms = 1000};
	uint32_t seed = 7;
	int64_t lost = 50000, now = lost, at;
	unsigned a;

	/* Walk a whole outage: every try fails at once. */
	for (a = 0;; a++) {
		at = backoff_next(&b, a, lost, now, &seed);
		if (at < 0)
			break;
		ck_assert_int_ge(at, now);
		ck_assert_int_le(at, lost + 1000); /* never past the give-up */
		now = at;
	}
	/* gave up only once the give-up time was reached, and the last
	 * try fell on it */
	ck_assert_int_eq(now, lost + 1000);
	ck_assert_uint_ge(a, 4);
	/* the first try after a loss happens even with give_up_ms 0 */
	b.give_up_ms = 0;
	ck_assert_int_eq(backoff_next(&b, 0, lost, lost, &seed), lost);
	ck_assert_int_eq(backoff_next(&b, 1, lost, lost, &seed), -1);
	/* -1: for ever */
	b.give_up_ms = -1;
	ck_assert_int_ge(backoff_next(&b, 50, lost, lost + 86400000, &seed),
	                 lost + 86400000);
}
END_TEST

START_TEST(test_buffer_bound)
{
	struct buffer_bound b = {.max_emits = 3, .max_bytes = 100};
	struct buffer_use u = {0};

	ck_assert_int_eq(buffer_admit(&b, &u, 40), 0);
	u = (struct buffer_use){.emits = 1, .bytes = 40};
	ck_assert_int_eq(buffer_admit(&b, &u, 60), 0);
	/* the byte bound, exactly */
	ck_assert_int_eq(buffer_admit(&b, &u, 61), -ENOBUFS);
	u = (struct buffer_use){.emits = 2, .bytes = 50};
	ck_assert_int_eq(buffer_admit(&b, &u, 1), 0);
	/* the count bound */
	u = (struct buffer_use){.emits = 3, .bytes = 50};
	ck_assert_int_eq(buffer_admit(&b, &u, 1), -ENOBUFS);
	/* one emit larger than the whole buffer; no overflow near SIZE_MAX */
	u = (struct buffer_use){0};
	ck_assert_int_eq(buffer_admit(&b, &u, 101), -ENOBUFS);
	ck_assert_int_eq(buffer_admit(&b, &u, (size_t)-1), -ENOBUFS);
	/* emits put back after a loss may leave it above the bound: still
	 * refused, never wrapped */
	u = (struct buffer_use){.emits = 9, .bytes = 500};
	ck_assert_int_eq(buffer_admit(&b, &u, 1), -ENOBUFS);
	/* no buffer at all */
	b.max_emits = 0;
	u = (struct buffer_use){0};
	ck_assert_int_eq(buffer_admit(&b, &u, 1), -ENOBUFS);
}
END_TEST

static Suite *backoff_suite(void)
{
	Suite *s = suite_create("backoff");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, test_first_try_at_once_then_doubling);
	tcase_add_test(tc, test_jitter_spreads);
	tcase_add_test(tc, test_give_up);
	tcase_add_test(tc, test_buffer_bound);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return check_run(backoff_suite());
}

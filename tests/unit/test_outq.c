/* Unit tests for daemon/outq.c: limits, both policies, order, counters. */
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check-run.h"
#include "outq.h"

static struct outq *mkq(size_t max_messages, uint64_t max_bytes,
                        enum outq_policy policy)
{
	struct outq_limits l = {max_messages, max_bytes, policy};
	struct outq *q = NULL;

	ck_assert_int_eq(outq_new(&l, &q), 0);
	ck_assert_ptr_nonnull(q);
	return q;
}

/* Pushes a message of len bytes, every byte equal to fill. */
static int push_fill(struct outq *q, size_t len, unsigned char fill,
                     uint32_t tag, unsigned *ret_dropped)
{
	unsigned char buf[4096];

	ck_assert_uint_le(len, sizeof(buf));
	memset(buf, fill, len);
	return outq_push(q, buf, len, tag, ret_dropped);
}

/* Pops the head and checks its length, fill byte and tag. */
static void expect_pop(struct outq *q, size_t len, unsigned char fill,
                       uint32_t tag)
{
	size_t got_len = 0;
	uint32_t got_tag = 0;
	const unsigned char *p = outq_peek(q, &got_len, &got_tag);

	ck_assert_ptr_nonnull(p);
	ck_assert_uint_eq(got_len, len);
	ck_assert_uint_eq(got_tag, tag);
	for (size_t i = 0; i < len; i++)
		ck_assert_uint_eq(p[i], fill);
	outq_pop(q);
}

static void expect_counters(struct outq *q, uint64_t pushed, uint64_t dropped,
                            uint64_t rejected, uint64_t popped)
{
	struct outq_counters c;

	outq_get_counters(q, &c);
	ck_assert_uint_eq(c.pushed, pushed);
	ck_assert_uint_eq(c.dropped, dropped);
	ck_assert_uint_eq(c.rejected, rejected);
	ck_assert_uint_eq(c.popped, popped);
	ck_assert_uint_eq(c.pushed + c.requeued,
	                  c.popped + c.dropped + outq_count(q));
}

START_TEST(test_new_invalid)
{
	struct outq *q = (struct outq *)0x1;
	struct outq_limits l = {0, 10, OUTQ_REJECT};

	ck_assert_int_eq(outq_new(&l, &q), -EINVAL);
	l = (struct outq_limits){10, 0, OUTQ_REJECT};
	ck_assert_int_eq(outq_new(&l, &q), -EINVAL);
	l = (struct outq_limits){10, 10, (enum outq_policy)7};
	ck_assert_int_eq(outq_new(&l, &q), -EINVAL);
	ck_assert_int_eq(outq_new(NULL, &q), -EINVAL);
	/* ret untouched on failure */
	ck_assert_ptr_eq(q, (struct outq *)0x1);
	outq_free(NULL);
}
END_TEST

START_TEST(test_fifo_order_and_copy)
{
	struct outq *q = mkq(100, 10000, OUTQ_REJECT);
	char buf[32];
	unsigned dropped = 99;

	ck_assert_ptr_null(outq_peek(q, NULL, NULL));
	outq_pop(q); /* no-op on empty */
	for (int i = 0; i < 10; i++) {
		int n = snprintf(buf, sizeof(buf), "msg-%d", i);
		ck_assert_int_eq(
		        outq_push(q, buf, (size_t)n, (uint32_t)i * 3, &dropped),
		        0);
		ck_assert_uint_eq(dropped, 0);
		/* the queue must have copied the bytes */
		memset(buf, 'X', sizeof(buf));
	}
	ck_assert_uint_eq(outq_count(q), 10);
	ck_assert_uint_eq(outq_bytes(q), 10 * 5);
	for (int i = 0; i < 10; i++) {
		size_t len;
		uint32_t tag;
		const char *p = outq_peek(q, &len, &tag);
		char want[32];
		int n = snprintf(want, sizeof(want), "msg-%d", i);

		ck_assert_ptr_nonnull(p);
		ck_assert_uint_eq(len, (size_t)n);
		ck_assert_uint_eq(tag, (uint32_t)i * 3);
		ck_assert_mem_eq(p, want, len);
		/* peek does not consume */
		ck_assert_ptr_eq(outq_peek(q, NULL, NULL), p);
		outq_pop(q);
	}
	ck_assert_ptr_null(outq_peek(q, NULL, NULL));
	ck_assert_uint_eq(outq_count(q), 0);
	ck_assert_uint_eq(outq_bytes(q), 0);
	expect_counters(q, 10, 0, 0, 10);
	outq_free(q);
}
END_TEST

START_TEST(test_bad_push)
{
	struct outq *q = mkq(4, 100, OUTQ_REJECT);

	ck_assert_int_eq(outq_push(q, "x", 0, 0, NULL), -EINVAL);
	ck_assert_int_eq(outq_push(q, NULL, 3, 0, NULL), -EINVAL);
	ck_assert_uint_eq(outq_count(q), 0);
	expect_counters(q, 0, 0, 0, 0);
	outq_free(q);
}
END_TEST

START_TEST(test_reject_max_messages)
{
	struct outq *q = mkq(3, 1000, OUTQ_REJECT);
	unsigned dropped = 42;

	for (int i = 0; i < 3; i++)
		ck_assert_int_eq(push_fill(q, 10, 'a' + i, i, NULL), 0);
	/* at the limit: refused, queue unchanged, ret_dropped untouched */
	ck_assert_int_eq(push_fill(q, 1, 'z', 9, &dropped), -ENOBUFS);
	ck_assert_int_eq(push_fill(q, 1, 'z', 9, NULL), -ENOBUFS);
	ck_assert_uint_eq(dropped, 42);
	ck_assert_uint_eq(outq_count(q), 3);
	ck_assert_uint_eq(outq_bytes(q), 30);
	expect_counters(q, 3, 0, 2, 0);
	/* one out, one in */
	expect_pop(q, 10, 'a', 0);
	ck_assert_int_eq(push_fill(q, 5, 'd', 3, NULL), 0);
	expect_pop(q, 10, 'b', 1);
	expect_pop(q, 10, 'c', 2);
	expect_pop(q, 5, 'd', 3);
	expect_counters(q, 4, 0, 2, 4);
	outq_free(q);
}
END_TEST

START_TEST(test_reject_max_bytes)
{
	struct outq *q = mkq(100, 100, OUTQ_REJECT);

	ck_assert_int_eq(push_fill(q, 60, 'a', 1, NULL), 0);
	/* 60 + 41 = 101: one byte past */
	ck_assert_int_eq(push_fill(q, 41, 'b', 2, NULL), -ENOBUFS);
	ck_assert_uint_eq(outq_bytes(q), 60);
	/* 60 + 40 = 100: exactly at the limit is allowed */
	ck_assert_int_eq(push_fill(q, 40, 'c', 3, NULL), 0);
	ck_assert_uint_eq(outq_bytes(q), 100);
	ck_assert_int_eq(push_fill(q, 1, 'd', 4, NULL), -ENOBUFS);
	expect_counters(q, 2, 0, 2, 0);
	expect_pop(q, 60, 'a', 1);
	expect_pop(q, 40, 'c', 3);
	outq_free(q);
}
END_TEST

START_TEST(test_msgsize_both_policies)
{
	for (int p = 0; p < 2; p++) {
		struct outq *q =
		        mkq(10, 50, p ? OUTQ_DROP_OLDEST : OUTQ_REJECT);
		unsigned dropped = 7;

		ck_assert_int_eq(push_fill(q, 20, 'a', 1, NULL), 0);
		/* bigger than max_bytes: never fits, nothing evicted */
		ck_assert_int_eq(push_fill(q, 51, 'b', 2, &dropped), -EMSGSIZE);
		ck_assert_uint_eq(dropped, 7);
		ck_assert_uint_eq(outq_count(q), 1);
		expect_counters(q, 1, 0, 1, 0);
		/* exactly max_bytes fits (after evicting, under drop) */
		if (p) {
			ck_assert_int_eq(push_fill(q, 50, 'c', 3, &dropped), 0);
			ck_assert_uint_eq(dropped, 1);
			expect_pop(q, 50, 'c', 3);
			expect_counters(q, 2, 1, 1, 1);
		} else {
			ck_assert_int_eq(push_fill(q, 50, 'c', 3, NULL),
			                 -ENOBUFS);
			expect_pop(q, 20, 'a', 1);
			ck_assert_int_eq(push_fill(q, 50, 'c', 3, NULL), 0);
			expect_pop(q, 50, 'c', 3);
			expect_counters(q, 2, 0, 2, 2);
		}
		outq_free(q);
	}
}
END_TEST

struct drops {
	uint32_t tags[64];
	size_t lens[64];
	unsigned n;
};

static void on_drop(const void *data, size_t len, uint32_t tag, void *ud)
{
	struct drops *d = ud;

	ck_assert_ptr_nonnull(data);
	ck_assert_uint_lt(d->n, 64);
	d->tags[d->n] = tag;
	d->lens[d->n] = len;
	d->n++;
}

START_TEST(test_drop_oldest_messages)
{
	struct outq *q = mkq(3, 1000, OUTQ_DROP_OLDEST);
	struct drops d = {0};
	unsigned dropped = 99;

	outq_set_drop_callback(q, on_drop, &d);
	for (int i = 0; i < 3; i++) {
		ck_assert_int_eq(push_fill(q, 10, 'a' + i, i, &dropped), 0);
		ck_assert_uint_eq(dropped, 0);
	}
	/* each further push evicts exactly the oldest */
	ck_assert_int_eq(push_fill(q, 10, 'd', 3, &dropped), 0);
	ck_assert_uint_eq(dropped, 1);
	ck_assert_int_eq(push_fill(q, 10, 'e', 4, &dropped), 0);
	ck_assert_uint_eq(dropped, 1);
	ck_assert_uint_eq(outq_count(q), 3);
	ck_assert_uint_eq(d.n, 2);
	ck_assert_uint_eq(d.tags[0], 0);
	ck_assert_uint_eq(d.tags[1], 1);
	expect_counters(q, 5, 2, 0, 0);
	expect_pop(q, 10, 'c', 2);
	expect_pop(q, 10, 'd', 3);
	expect_pop(q, 10, 'e', 4);
	expect_counters(q, 5, 2, 0, 3);
	outq_free(q);
}
END_TEST

START_TEST(test_drop_oldest_bytes_multi)
{
	struct outq *q = mkq(100, 100, OUTQ_DROP_OLDEST);
	struct drops d = {0};
	unsigned dropped = 0;

	outq_set_drop_callback(q, on_drop, &d);
	ck_assert_int_eq(push_fill(q, 30, 'a', 10, NULL), 0);
	ck_assert_int_eq(push_fill(q, 30, 'b', 11, NULL), 0);
	ck_assert_int_eq(push_fill(q, 30, 'c', 12, NULL), 0);
	ck_assert_int_eq(push_fill(q, 10, 'd', 13, NULL), 0);
	ck_assert_uint_eq(outq_bytes(q), 100);
	/* 100 + 65: must evict a, b and c (30+30+30) to fit; 10+65 <= 100 */
	ck_assert_int_eq(push_fill(q, 65, 'e', 14, &dropped), 0);
	ck_assert_uint_eq(dropped, 3);
	ck_assert_uint_eq(d.n, 3);
	ck_assert_uint_eq(d.tags[0], 10);
	ck_assert_uint_eq(d.tags[1], 11);
	ck_assert_uint_eq(d.tags[2], 12);
	ck_assert_uint_eq(d.lens[2], 30);
	ck_assert_uint_eq(outq_bytes(q), 75);
	expect_counters(q, 5, 3, 0, 0);
	/* 75 + 25 = 100 exactly: no eviction */
	ck_assert_int_eq(push_fill(q, 25, 'f', 15, &dropped), 0);
	ck_assert_uint_eq(dropped, 0);
	expect_pop(q, 10, 'd', 13);
	expect_pop(q, 65, 'e', 14);
	expect_pop(q, 25, 'f', 15);
	ck_assert_uint_eq(outq_bytes(q), 0);
	expect_counters(q, 6, 3, 0, 3);
	/* removing the callback */
	outq_set_drop_callback(q, NULL, NULL);
	ck_assert_int_eq(push_fill(q, 100, 'g', 16, NULL), 0);
	ck_assert_int_eq(push_fill(q, 1, 'h', 17, &dropped), 0);
	ck_assert_uint_eq(dropped, 1);
	ck_assert_uint_eq(d.n, 3);
	outq_free(q);
}
END_TEST

START_TEST(test_shrink_reject)
{
	struct outq *q = mkq(10, 1000, OUTQ_REJECT);
	struct outq_limits l = {3, 1000, OUTQ_REJECT}, got;

	for (int i = 0; i < 6; i++)
		ck_assert_int_eq(push_fill(q, 10, 'a' + i, i, NULL), 0);
	ck_assert_int_eq(outq_set_limits(q, &l), 0);
	outq_get_limits(q, &got);
	ck_assert_uint_eq(got.max_messages, 3);
	/* nothing already accepted is lost */
	ck_assert_uint_eq(outq_count(q), 6);
	expect_counters(q, 6, 0, 0, 0);
	ck_assert_int_eq(push_fill(q, 1, 'z', 99, NULL), -ENOBUFS);
	expect_pop(q, 10, 'a', 0);
	expect_pop(q, 10, 'b', 1);
	expect_pop(q, 10, 'c', 2);
	/* 3 left: still at the new limit */
	ck_assert_int_eq(push_fill(q, 1, 'z', 99, NULL), -ENOBUFS);
	expect_pop(q, 10, 'd', 3);
	ck_assert_int_eq(push_fill(q, 1, 'z', 99, NULL), 0);
	ck_assert_int_eq(push_fill(q, 1, 'y', 98, NULL), -ENOBUFS);
	expect_counters(q, 7, 0, 3, 4);
	expect_pop(q, 10, 'e', 4);
	expect_pop(q, 10, 'f', 5);
	expect_pop(q, 1, 'z', 99);

	/* shrinking bytes below what is queued */
	ck_assert_int_eq(push_fill(q, 100, 'a', 1, NULL), 0);
	ck_assert_int_eq(push_fill(q, 100, 'b', 2, NULL), 0);
	l = (struct outq_limits){100, 50, OUTQ_REJECT};
	ck_assert_int_eq(outq_set_limits(q, &l), 0);
	ck_assert_uint_eq(outq_bytes(q), 200);
	ck_assert_int_eq(push_fill(q, 1, 'z', 0, NULL), -ENOBUFS);
	ck_assert_int_eq(push_fill(q, 51, 'z', 0, NULL), -EMSGSIZE);
	expect_pop(q, 100, 'a', 1);
	ck_assert_int_eq(push_fill(q, 1, 'z', 0, NULL), -ENOBUFS);
	expect_pop(q, 100, 'b', 2);
	ck_assert_int_eq(push_fill(q, 50, 'c', 3, NULL), 0);

	/* invalid limits are refused and the old ones kept */
	l = (struct outq_limits){0, 50, OUTQ_REJECT};
	ck_assert_int_eq(outq_set_limits(q, &l), -EINVAL);
	outq_get_limits(q, &got);
	ck_assert_uint_eq(got.max_messages, 100);
	ck_assert_uint_eq(got.max_bytes, 50);
	outq_free(q);
}
END_TEST

START_TEST(test_shrink_drop_oldest)
{
	struct outq *q = mkq(10, 1000, OUTQ_DROP_OLDEST);
	struct outq_limits l = {3, 1000, OUTQ_DROP_OLDEST};
	unsigned dropped = 0;

	for (int i = 0; i < 8; i++)
		ck_assert_int_eq(push_fill(q, 10, 'a' + i, i, NULL), 0);
	ck_assert_int_eq(outq_set_limits(q, &l), 0);
	ck_assert_uint_eq(outq_count(q), 8);
	/* the next push evicts down to the new limit, oldest first */
	ck_assert_int_eq(push_fill(q, 10, 'z', 99, &dropped), 0);
	ck_assert_uint_eq(dropped, 6);
	ck_assert_uint_eq(outq_count(q), 3);
	expect_counters(q, 9, 6, 0, 0);
	expect_pop(q, 10, 'g', 6);
	expect_pop(q, 10, 'h', 7);
	expect_pop(q, 10, 'z', 99);

	/* growing takes effect at once */
	l = (struct outq_limits){5, 1000, OUTQ_DROP_OLDEST};
	ck_assert_int_eq(outq_set_limits(q, &l), 0);
	for (int i = 0; i < 5; i++) {
		ck_assert_int_eq(push_fill(q, 10, 'a', i, &dropped), 0);
		ck_assert_uint_eq(dropped, 0);
	}
	/* switching policy on reload */
	l.policy = OUTQ_REJECT;
	ck_assert_int_eq(outq_set_limits(q, &l), 0);
	ck_assert_int_eq(push_fill(q, 10, 'a', 5, NULL), -ENOBUFS);
	ck_assert_uint_eq(outq_count(q), 5);
	outq_free(q);
}
END_TEST

START_TEST(test_many)
{
	/* 200,000 messages through a queue that holds 10,000: cheap, in
	 * order, counters exact.  The hot loops count mismatches and assert
	 * once, so the test measures the queue, not Check. */
	const unsigned n = 200000, cap = 10000;
	struct outq *q = mkq(cap, (uint64_t)cap * 8, OUTQ_REJECT);
	unsigned next_pop = 0, bad = 0, rejected = 0;

	for (unsigned i = 0; i < n; i++) {
		uint64_t v = i;

		if (outq_count(q) == cap) {
			bad += outq_push(q, &v, sizeof(v), i, NULL) != -ENOBUFS;
			rejected++;
			/* drain half */
			while (outq_count(q) > cap / 2) {
				size_t len;
				uint32_t tag;
				const void *p = outq_peek(q, &len, &tag);
				uint64_t got;

				/* no alignment is promised: copy out */
				memcpy(&got, p, sizeof(got));
				bad += len != sizeof(v) || tag != next_pop ||
				       got != next_pop;
				outq_pop(q);
				next_pop++;
			}
		}
		bad += outq_push(q, &v, sizeof(v), i, NULL) != 0;
	}
	while (outq_count(q)) {
		uint32_t tag = UINT32_MAX;

		bad += outq_peek(q, NULL, &tag) == NULL || tag != next_pop;
		outq_pop(q);
		next_pop++;
	}
	ck_assert_uint_eq(bad, 0);
	ck_assert_uint_eq(next_pop, n);
	ck_assert_uint_eq(outq_bytes(q), 0);
	/* full at i = 10000, 15000, ..., 195000 */
	ck_assert_uint_eq(rejected, 38);
	expect_counters(q, n, 0, 38, n);
	outq_free(q);

	/* and under drop-oldest, full the whole time */
	q = mkq(cap, (uint64_t)cap * 8, OUTQ_DROP_OLDEST);
	for (unsigned i = 0; i < n; i++) {
		uint64_t v = i;
		unsigned dropped = 99;

		bad += outq_push(q, &v, sizeof(v), i, &dropped) != 0;
		bad += dropped != (i >= cap ? 1u : 0u);
	}
	ck_assert_uint_eq(bad, 0);
	ck_assert_uint_eq(outq_count(q), cap);
	ck_assert_uint_eq(outq_bytes(q), (uint64_t)cap * 8);
	expect_counters(q, n, n - cap, 0, 0);
	{
		uint32_t tag;

		outq_peek(q, NULL, &tag);
		ck_assert_uint_eq(tag, n - cap);
	}
	/* freed with messages still queued: ASan checks nothing leaks */
	outq_free(q);
}
END_TEST

/* Messages popped and handed on that come back unsent go back to the head,
 * in their order, past the limits (they were accepted once). */
START_TEST(test_unpop)
{
	struct outq_limits l = {
	        .max_messages = 3, .max_bytes = 100, .policy = OUTQ_REJECT};
	struct outq *q;
	const char *p;
	size_t len;
	uint32_t tag;

	ck_assert_int_eq(outq_new(&l, &q), 0);
	ck_assert_int_eq(outq_push(q, "c", 1, 3, NULL), 0);
	ck_assert_int_eq(outq_push(q, "d", 1, 4, NULL), 0);
	ck_assert_int_eq(outq_push(q, "e", 1, 5, NULL), 0);
	ck_assert_int_eq(outq_push(q, "f", 1, 6, NULL), -ENOBUFS);
	/* a and b were popped earlier and came back: newest first. */
	ck_assert_int_eq(outq_unpop(q, "b", 1, 2), 0);
	ck_assert_int_eq(outq_unpop(q, "a", 1, 1), 0);
	ck_assert_uint_eq(outq_count(q), 5);
	ck_assert_uint_eq(outq_bytes(q), 5);
	for (const char *want = "abcde"; *want; want++) {
		p = outq_peek(q, &len, &tag);
		ck_assert_ptr_nonnull(p);
		ck_assert_uint_eq(len, 1);
		ck_assert_int_eq(p[0], *want);
		ck_assert_uint_eq(tag, (uint32_t)(*want - 'a' + 1));
		outq_pop(q);
	}
	ck_assert_ptr_null(outq_peek(q, NULL, NULL));
	ck_assert_int_eq(outq_unpop(q, "z", 1, 9), 0);
	ck_assert_int_eq(outq_push(q, "y", 1, 8, NULL), 0);
	p = outq_peek(q, NULL, NULL);
	ck_assert_int_eq(p[0], 'z');
	ck_assert_int_eq(outq_unpop(q, "x", 0, 1), -EINVAL);
	expect_counters(q, 4, 0, 1, 5);
	outq_free(q);
}
END_TEST

static Suite *outq_suite(void)
{
	Suite *s = suite_create("outq");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, test_new_invalid);
	tcase_add_test(tc, test_fifo_order_and_copy);
	tcase_add_test(tc, test_bad_push);
	tcase_add_test(tc, test_reject_max_messages);
	tcase_add_test(tc, test_reject_max_bytes);
	tcase_add_test(tc, test_msgsize_both_policies);
	tcase_add_test(tc, test_drop_oldest_messages);
	tcase_add_test(tc, test_drop_oldest_bytes_multi);
	tcase_add_test(tc, test_shrink_reject);
	tcase_add_test(tc, test_shrink_drop_oldest);
	tcase_add_test(tc, test_many);
	tcase_add_test(tc, test_unpop);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return check_run(outq_suite());
}

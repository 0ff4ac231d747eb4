/* The store of accepted emits: fairness, order, confirm, requeue, bounds. */
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check-run.h"
#include "sendq.h"

static int dropped_calls, confirmed_calls;
static uint32_t last_confirmed_reply;

static void on_dropped(void *owner, const struct sendq_msg *m, void *ud)
{
	(void)owner;
	(void)m;
	(void)ud;
	dropped_calls++;
}

static void on_confirmed(void *owner, const struct sendq_msg *m, void *ud)
{
	(void)owner;
	(void)ud;
	confirmed_calls++;
	if (m->want_reply)
		last_confirmed_reply = m->reply_id;
}

static const struct sendq_callbacks cbs = {
        .dropped = on_dropped,
        .confirmed = on_confirmed,
};

static struct sendq *mk(size_t msgs, uint64_t bytes, size_t app_msgs,
                        uint64_t app_bytes, enum sendq_policy p)
{
	struct sendq_limits l = {
	        .max_messages = msgs,
	        .max_bytes = bytes,
	        .max_app_messages = app_msgs,
	        .max_app_bytes = app_bytes,
	        .policy = p,
	        .quantum = 1000,
	};
	struct sendq *q;

	dropped_calls = confirmed_calls = 0;
	ck_assert_int_eq(sendq_new(&l, &cbs, NULL, &q), 0);
	return q;
}

/* Pushes "A:k" style messages padded to len bytes. */
static int push(struct sendq *q, struct sendq_app *a, char app, int k,
                size_t len)
{
	char buf[4096];

	memset(buf, '.', sizeof(buf));
	snprintf(buf, sizeof(buf), "%c:%d", app, k);
	buf[strlen(buf)] = '.';
	return sendq_push(q, a, buf, len, NULL, NULL);
}

/* Hands the next message and returns its "A:k" label. */
static const char *take(struct sendq *q, char *out, size_t cap)
{
	const struct sendq_msg *m = sendq_peek(q);
	size_t n = 0;

	ck_assert_ptr_nonnull(m);
	while (n + 1 < cap && n < m->len && m->data[n] != '.')
		n++;
	memcpy(out, m->data, n);
	out[n] = '\0';
	sendq_hand(q);
	return out;
}

static void take_n(struct sendq *q, int n)
{
	char l[32];

	for (int k = 0; k < n; k++)
		take(q, l, sizeof(l));
}

/* Freed blocks are reused by later pushes (sendq.c, spare blocks): each
 * message keeps its own bytes, its length and its meta, whatever sizes
 * came and went before it, with and without a spool id. */
START_TEST(test_blocks_reused_keep_each_message)
{
	struct sendq *q = mk(4000, 1u << 24, 0, 0, SENDQ_REJECT);
	struct sendq_app *a = sendq_app_new(q, 1, NULL);
	uint8_t buf[600];

	for (int round = 0; round < 4; round++) {
		for (int k = 0; k < 1500; k++) {
			size_t len = 1 + (size_t)(k * 37 + round * 101) % 500;
			struct sendq_msg meta = {.reply_id = (uint32_t)k,
			                         .spool_id = (uint64_t)(k % 3)};

			memset(buf, (int)(k + round), len);
			ck_assert_int_eq(
			        sendq_push(q, a, buf, len, &meta, NULL), 0);
		}
		for (int k = 0; k < 1500; k++) {
			size_t len = 1 + (size_t)(k * 37 + round * 101) % 500;
			const struct sendq_msg *m = sendq_peek(q);

			ck_assert_ptr_nonnull(m);
			ck_assert_uint_eq(m->len, len);
			ck_assert_uint_eq(m->reply_id, (uint32_t)k);
			ck_assert_uint_eq(m->spool_id, (uint64_t)(k % 3));
			memset(buf, (int)(k + round), len);
			ck_assert(memcmp(m->data, buf, len) == 0);
			sendq_hand(q);
		}
		ck_assert_uint_eq(sendq_confirm(q, sendq_next_seq(q) - 1),
		                  1500);
	}
	sendq_free(q);
}
END_TEST

START_TEST(test_order_and_confirm)
{
	struct sendq *q = mk(100, 100000, 0, 0, SENDQ_REJECT);
	struct sendq_app *a = sendq_app_new(q, 1, NULL);
	struct sendq_stats st;
	char l[32];

	for (int k = 0; k < 5; k++)
		ck_assert_int_eq(push(q, a, 'A', k, 10), 0);
	ck_assert_str_eq(take(q, l, sizeof(l)), "A:0");
	ck_assert_uint_eq(sendq_next_seq(q), 2);
	ck_assert_str_eq(take(q, l, sizeof(l)), "A:1");
	ck_assert_str_eq(take(q, l, sizeof(l)), "A:2");
	sendq_get_stats(q, &st);
	ck_assert_uint_eq(st.in_flight, 3);
	ck_assert_uint_eq(st.queued, 2);
	/* a PONG covering seq 2 frees the first two, in order */
	ck_assert_uint_eq(sendq_confirm(q, 2), 2);
	ck_assert_int_eq(confirmed_calls, 2);
	sendq_get_stats(q, &st);
	ck_assert_uint_eq(st.in_flight, 1);
	ck_assert_uint_eq(st.confirmed, 2);
	ck_assert_uint_eq(sendq_confirm(q, 2), 0);
	ck_assert_uint_eq(sendq_app_depth(a), 3);
	sendq_free(q);
}
END_TEST

START_TEST(test_requeue_keeps_order_and_counts_resent)
{
	struct sendq *q = mk(100, 100000, 0, 0, SENDQ_REJECT);
	struct sendq_app *a = sendq_app_new(q, 1, NULL);
	struct sendq_app *b = sendq_app_new(q, 2, NULL);
	struct sendq_stats st;
	char l[32], got[256] = "";

	for (int k = 0; k < 3; k++) {
		push(q, a, 'A', k, 10);
		push(q, b, 'B', k, 10);
	}
	for (int k = 0; k < 4; k++)
		take(q, l, sizeof(l));
	sendq_confirm(q, 1); /* the first is through */
	/* lost: the three unconfirmed go back, ahead of the rest */
	ck_assert_uint_eq(sendq_requeue(q), 3);
	while (sendq_peek(q)) {
		strcat(got, take(q, l, sizeof(l)));
		strcat(got, " ");
	}
	/* per app, nothing reordered, nothing missing; the app of the oldest
	 * unconfirmed message goes first */
	ck_assert_str_eq(got, "A:1 A:2 B:0 B:1 B:2 ");
	ck_assert_ptr_nonnull(strstr(got, "A:1"));
	ck_assert(strstr(got, "A:1") < strstr(got, "A:2"));
	ck_assert(strstr(got, "B:0") < strstr(got, "B:1"));
	ck_assert(strstr(got, "B:1") < strstr(got, "B:2"));
	ck_assert_ptr_null(strstr(got, "A:0"));
	sendq_get_stats(q, &st);
	ck_assert_uint_eq(st.resent, 3);
	ck_assert_uint_eq(st.in_flight, 5);
	sendq_free(q);
}
END_TEST

/* An app with one message waits for at most one quantum of a flooding
 * app's bytes. */
START_TEST(test_fair_against_a_flood)
{
	struct sendq *q = mk(100000, 100000000, 0, 0, SENDQ_REJECT);
	struct sendq_app *flood = sendq_app_new(q, 1, NULL);
	struct sendq_app *calm = sendq_app_new(q, 2, NULL);
	char l[32], want[32];
	int before = 0;

	for (int k = 0; k < 10000; k++)
		push(q, flood, 'F', k, 100);
	for (int k = 0; k < 5; k++)
		take(q, l, sizeof(l));
	push(q, calm, 'C', 0, 100);
	while (strcmp(take(q, l, sizeof(l)), "C:0") != 0)
		before++;
	/* quantum 1000 bytes = 10 of the flood's 100-byte messages */
	ck_assert_int_le(before, 10);
	/* and the flood goes on in its own order */
	snprintf(want, sizeof(want), "F:%d", 5 + before);
	ck_assert_str_eq(take(q, l, sizeof(l)), want);
	sendq_free(q);
}
END_TEST

/* With the window full, only an app with nothing in flight gets through,
 * one message of at most max_len, in its own order; restored emits are
 * never overtaken. */
START_TEST(test_peek_idle_is_the_reserve)
{
	struct sendq *q = mk(100000, 100000000, 0, 0, SENDQ_REJECT);
	struct sendq_app *flood = sendq_app_new(q, 1, NULL);
	struct sendq_app *calm = sendq_app_new(q, 2, NULL);
	struct sendq_app *big = sendq_app_new(q, 3, NULL);
	struct sendq_app *old;
	const struct sendq_msg *m;
	struct sendq_stats st;

	for (int k = 0; k < 100; k++)
		push(q, flood, 'F', k, 100);
	take_n(q, 3);
	/* the flood has messages in flight: it gets nothing from the reserve */
	ck_assert_ptr_null(sendq_peek_idle(q, 1024));
	push(q, big, 'G', 0, 2000);
	ck_assert_ptr_null(sendq_peek_idle(q, 1024));
	push(q, calm, 'C', 0, 100);
	push(q, calm, 'C', 1, 100);
	m = sendq_peek_idle(q, 1024);
	ck_assert_ptr_nonnull(m);
	ck_assert_mem_eq(m->data, "C:0", 3);
	sendq_hand(q);
	/* one message per app: C:1 waits for C:0's confirmation */
	ck_assert_ptr_null(sendq_peek_idle(q, 1024));
	/* all confirmed: every app is idle again, taken in ring order, each
	 * in its own order */
	sendq_confirm(q, 4);
	m = sendq_peek_idle(q, 1024);
	ck_assert_ptr_nonnull(m);
	ck_assert_mem_eq(m->data, "F:3", 3);
	sendq_hand(q);
	m = sendq_peek_idle(q, 1024);
	ck_assert_ptr_nonnull(m);
	ck_assert_mem_eq(m->data, "C:1", 3);
	sendq_hand(q);
	ck_assert_ptr_null(sendq_peek_idle(q, 1024));
	sendq_get_stats(q, &st);
	ck_assert_uint_eq(st.in_flight, 2);
	/* the normal round goes on, the flood in its order */
	m = sendq_peek(q);
	ck_assert_ptr_nonnull(m);
	ck_assert(m->len == 2000 || memcmp(m->data, "F:4", 3) == 0);
	/* restored emits go first: nothing overtakes them */
	old = sendq_app_new(q, 4, NULL);
	push(q, old, 'R', 0, 10);
	sendq_app_set_first(q, old);
	push(q, calm, 'C', 2, 100);
	sendq_confirm(q, 6);
	ck_assert_ptr_null(sendq_peek_idle(q, 1024));
	sendq_free(q);
}
END_TEST

/* A weight of 4 gets four turns' worth for each of a weight-1 app's. */
START_TEST(test_weights_share_the_connection)
{
	struct sendq *q = mk(100000, 100000000, 0, 0, SENDQ_REJECT);
	struct sendq_app *heavy = sendq_app_new(q, 1, NULL);
	struct sendq_app *plain = sendq_app_new(q, 2, NULL);
	char l[32];
	int h = 0, p = 0;

	sendq_app_set_weight(heavy, 4);
	for (int k = 0; k < 2000; k++) {
		push(q, heavy, 'H', k, 100);
		push(q, plain, 'P', k, 100);
	}
	for (int k = 0; k < 1000; k++) {
		if (take(q, l, sizeof(l))[0] == 'H')
			h++;
		else
			p++;
	}
	ck_assert_int_eq(h, 800);
	ck_assert_int_eq(p, 200);
	sendq_free(q);
}
END_TEST

START_TEST(test_share_before_store_reject)
{
	/* store 10 messages, an app's share 4 */
	struct sendq *q = mk(10, 100000, 4, 0, SENDQ_REJECT);
	struct sendq_app *a = sendq_app_new(q, 1, NULL);
	struct sendq_app *b = sendq_app_new(q, 2, NULL);
	struct sendq_stats st;

	for (int k = 0; k < 4; k++)
		ck_assert_int_eq(push(q, a, 'A', k, 10), 0);
	ck_assert_int_eq(push(q, a, 'A', 4, 10), -ENOBUFS);
	/* the flood hit its own limit; b still gets in */
	ck_assert_int_eq(push(q, b, 'B', 0, 10), 0);
	/* in flight counts against the share too */
	sendq_peek(q);
	sendq_hand(q);
	ck_assert_int_eq(push(q, a, 'A', 5, 10), -ENOBUFS);
	sendq_confirm(q, 1);
	ck_assert_int_eq(push(q, a, 'A', 5, 10), 0);
	ck_assert_int_eq(push(q, a, 'A', 6, 1000000), -EMSGSIZE);
	sendq_get_stats(q, &st);
	ck_assert_uint_eq(st.rejected, 3);
	sendq_free(q);
}
END_TEST

START_TEST(test_drop_oldest_own_share_first)
{
	struct sendq *q = mk(6, 100000, 3, 0, SENDQ_DROP_OLDEST);
	struct sendq_app *a = sendq_app_new(q, 1, NULL);
	struct sendq_app *b = sendq_app_new(q, 2, NULL);
	unsigned dropped;
	char l[32];

	for (int k = 0; k < 3; k++)
		push(q, b, 'B', k, 10);
	for (int k = 0; k < 5; k++)
		ck_assert_int_eq(push(q, a, 'A', k, 10), 0);
	/* a evicted its own oldest, b kept all of its */
	ck_assert_int_eq(dropped_calls, 2);
	ck_assert_uint_eq(sendq_app_depth(b), 3);
	ck_assert_int_eq(sendq_push(q, a, "A:5.", 4, NULL, &dropped), 0);
	ck_assert_uint_eq(dropped, 1);
	ck_assert_str_eq(take(q, l, sizeof(l)), "B:0");
	ck_assert_str_eq(take(q, l, sizeof(l)), "B:1");
	ck_assert_str_eq(take(q, l, sizeof(l)), "B:2");
	ck_assert_str_eq(take(q, l, sizeof(l)), "A:3");
	sendq_free(q);
}
END_TEST

START_TEST(test_released_app_drains_then_goes)
{
	struct sendq *q = mk(100, 100000, 0, 0, SENDQ_REJECT);
	struct sendq_app *a = sendq_app_new(q, 7, (void *)0x1);
	struct sendq_msg meta = {.want_reply = true, .reply_id = 42};
	struct sendq_stats st;
	char l[32];

	ck_assert_int_eq(sendq_push(q, a, "A:0.", 4, &meta, NULL), 0);
	sendq_app_release(q, a); /* the app left; its emit still goes */
	sendq_get_stats(q, &st);
	ck_assert_uint_eq(st.apps, 1);
	ck_assert_str_eq(take(q, l, sizeof(l)), "A:0");
	sendq_confirm(q, 1);
	ck_assert_uint_eq(last_confirmed_reply, 42);
	sendq_get_stats(q, &st);
	ck_assert_uint_eq(st.apps, 0);
	sendq_free(q);
}
END_TEST

/* Restored emits (marked first) go before any newer app's, however the
 * turns would fall. */
START_TEST(test_first_apps_go_first)
{
	struct sendq *q = mk(1000, 1000000, 0, 0, SENDQ_REJECT);
	struct sendq_app *old = sendq_app_new(q, 1, NULL);
	struct sendq_app *now = sendq_app_new(q, 2, NULL);
	char l[32];

	sendq_app_set_first(q, old);
	for (int k = 0; k < 50; k++)
		push(q, now, 'N', k, 100);
	for (int k = 0; k < 50; k++)
		push(q, old, 'O', k, 100);
	for (int k = 0; k < 50; k++) {
		char want[16];

		snprintf(want, sizeof(want), "O:%d", k);
		ck_assert_str_eq(take(q, l, sizeof(l)), want);
	}
	ck_assert_str_eq(take(q, l, sizeof(l)), "N:0");
	sendq_free(q);
}
END_TEST

START_TEST(test_top_talkers)
{
	struct sendq *q = mk(1000, 1000000, 0, 0, SENDQ_REJECT);
	struct sendq_app *a[4];
	struct sendq_talker t[2];

	for (uint32_t i = 0; i < 4; i++) {
		a[i] = sendq_app_new(q, 10 + i, NULL);
		for (uint32_t k = 0; k <= i * 3; k++)
			push(q, a[i], 'X', (int)k, 100);
	}
	ck_assert_uint_eq(sendq_top(q, t, 2), 2);
	ck_assert_uint_eq(t[0].id, 13);
	ck_assert_uint_eq(t[0].messages, 10);
	ck_assert_uint_eq(t[1].id, 12);
	ck_assert_uint_eq(t[1].bytes, 700);
	sendq_free(q);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("sendq");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, test_order_and_confirm);
	tcase_add_test(tc, test_blocks_reused_keep_each_message);
	tcase_add_test(tc, test_requeue_keeps_order_and_counts_resent);
	tcase_add_test(tc, test_fair_against_a_flood);
	tcase_add_test(tc, test_peek_idle_is_the_reserve);
	tcase_add_test(tc, test_weights_share_the_connection);
	tcase_add_test(tc, test_share_before_store_reject);
	tcase_add_test(tc, test_drop_oldest_own_share_first);
	tcase_add_test(tc, test_released_app_drains_then_goes);
	tcase_add_test(tc, test_first_apps_go_first);
	tcase_add_test(tc, test_top_talkers);
	suite_add_tcase(s, tc);
	return check_run(s);
}

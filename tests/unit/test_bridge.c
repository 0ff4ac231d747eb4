/*
 * Unit tests for daemon/bridge.c: the thread bridge of the transport, with
 * a plain pthread standing in for the libwebsockets thread and libevent on
 * the main thread.  No lws, no Node.
 *
 * Every item is counted when allocated and when freed; each test checks
 * the two agree, and AddressSanitizer checks nothing else leaks.
 */
#include <check.h>
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>

#include <event2/event.h>

#include "bridge.h"
#include "check-run.h"

#define HAMMER_ITEMS 100000u

struct titem {
	struct bridge_item item;
	unsigned seq;
};

static unsigned allocated, freed; /* atomic: freed on either thread */

static struct titem *titem_new(unsigned seq, uint64_t epoch, size_t len,
                               bool keep)
{
	struct titem *ti = calloc(1, sizeof(*ti));

	ck_assert_ptr_nonnull(ti);
	ti->seq = seq;
	ti->item.epoch = epoch;
	ti->item.len = len;
	ti->item.keep = keep;
	__atomic_add_fetch(&allocated, 1, __ATOMIC_RELAXED);
	return ti;
}

static void titem_free(struct bridge_item *it)
{
	free(bridge_entry(it, struct titem, item));
	__atomic_add_fetch(&freed, 1, __ATOMIC_RELAXED);
}

static unsigned seq_of(const struct bridge_item *it)
{
	return bridge_entry(it, const struct titem, item)->seq;
}

/* What the main thread saw. */
struct main_side {
	struct event_base *base;
	struct bridge *b;
	unsigned delivered; /* items */
	unsigned next_seq;  /* the seq the next item must have */
	bool out_of_order;
	unsigned expect;  /* break the loop after this many items */
	unsigned drained; /* drained() calls */
	uint64_t drained_epoch;
	unsigned wakes_other; /* wake_other() calls */
	bool free_in_deliver; /* bridge_free() from the first deliver() */
	/* lockstep: the producer waits for this many items */
	pthread_mutex_t lock;
	pthread_cond_t cond;
	unsigned acked;
	bool stalled;
	unsigned last_progress;
};

static void m_deliver(struct bridge_item *it, void *userdata)
{
	struct main_side *m = userdata;

	if (seq_of(it) != m->next_seq)
		m->out_of_order = true;
	m->next_seq = seq_of(it) + 1;
	m->delivered++;
	pthread_mutex_lock(&m->lock);
	m->acked = m->delivered;
	pthread_cond_signal(&m->cond);
	pthread_mutex_unlock(&m->lock);
	if (m->free_in_deliver && m->delivered == 1) {
		bridge_free(m->b);
		m->b = NULL;
	}
	if (m->expect && m->delivered == m->expect)
		event_base_loopbreak(m->base);
}

static void m_drained(uint64_t epoch, void *userdata)
{
	struct main_side *m = userdata;

	m->drained++;
	m->drained_epoch = epoch;
}

static void m_wake_other(void *userdata)
{
	struct main_side *m = userdata;

	m->wakes_other++;
}

static const struct bridge_ops m_ops = {
        .deliver = m_deliver,
        .drained = m_drained,
        .wake_other = m_wake_other,
        .free_in = titem_free,
        .free_out = titem_free,
};

static void setup_main(struct main_side *m, const struct bridge_ops *ops,
                       size_t low_water)
{
	*m = (struct main_side){0};
	pthread_mutex_init(&m->lock, NULL);
	pthread_cond_init(&m->cond, NULL);
	allocated = freed = 0;
	m->base = event_base_new();
	ck_assert_ptr_nonnull(m->base);
	ck_assert_int_eq(bridge_new(m->base, ops, m, low_water, &m->b), 0);
}

static void teardown_main(struct main_side *m)
{
	bridge_free(m->b);
	event_base_free(m->base);
	pthread_mutex_destroy(&m->lock);
	pthread_cond_destroy(&m->cond);
	ck_assert_uint_eq(freed, allocated);
}

/* Runs what is ready on the main thread, without waiting. */
static void run_ready(struct main_side *m)
{
	ck_assert_int_ge(event_base_loop(m->base, EVLOOP_NONBLOCK), 0);
}

/* Fails the test when no item arrived for two seconds: a lost wakeup. */
static void on_watchdog(evutil_socket_t fd, short what, void *arg)
{
	struct main_side *m = arg;

	(void)fd;
	(void)what;
	if (m->delivered == m->last_progress) {
		m->stalled = true;
		event_base_loopbreak(m->base);
	}
	m->last_progress = m->delivered;
}

static void run_until_expected(struct main_side *m)
{
	struct timeval two = {2, 0};
	struct event *dog = event_new(m->base, -1, EV_PERSIST, on_watchdog, m);

	ck_assert_ptr_nonnull(dog);
	ck_assert_int_eq(event_add(dog, &two), 0);
	ck_assert_int_ge(event_base_dispatch(m->base), 0);
	event_free(dog);
}

START_TEST(test_new_rejects_missing_ops)
{
	struct event_base *base = event_base_new();
	struct bridge_ops ops = m_ops;
	struct bridge *b = NULL;

	ops.free_in = NULL;
	ck_assert_int_eq(bridge_new(base, &ops, NULL, 0, &b), -EINVAL);
	ck_assert_int_eq(bridge_new(NULL, &m_ops, NULL, 0, &b), -EINVAL);
	ck_assert_ptr_null(b);
	bridge_free(NULL);
	event_base_free(base);
}
END_TEST

/* main -> other: FIFO, a wake when the queue stops being empty (the other
 * side takes until it is empty), `more` says what follows. */
START_TEST(test_out_in_order)
{
	struct main_side m;
	struct bridge_item *it;
	bool more = true;

	setup_main(&m, &m_ops, 0);
	for (unsigned i = 0; i < 3; i++)
		ck_assert_int_eq(
		        bridge_out_push(m.b, &titem_new(i, 1, 10, false)->item,
		                        SIZE_MAX),
		        0);
	ck_assert_uint_eq(m.wakes_other, 0); /* once the loop runs */
	run_ready(&m);
	ck_assert_uint_eq(m.wakes_other, 1);
	ck_assert_uint_eq(bridge_out_bytes(m.b), 30);
	ck_assert(bridge_out_pending(m.b));
	for (unsigned i = 0; i < 3; i++) {
		it = bridge_out_pop(m.b, 1, &more);
		ck_assert_ptr_nonnull(it);
		ck_assert_uint_eq(seq_of(it), i);
		ck_assert(more == (i < 2));
		titem_free(it);
	}
	ck_assert_ptr_null(bridge_out_pop(m.b, 1, &more));
	ck_assert(!more);
	ck_assert_uint_eq(bridge_out_bytes(m.b), 0);
	ck_assert(!bridge_out_pending(m.b));
	/* empty again: the next push wakes the other side again */
	ck_assert_int_eq(bridge_out_push(m.b, &titem_new(3, 1, 10, false)->item,
	                                 SIZE_MAX),
	                 0);
	run_ready(&m);
	ck_assert_uint_eq(m.wakes_other, 2);
	/* a push while a wakeup is pending adds none, even when the queue
	 * was emptied in between */
	titem_free(bridge_out_pop(m.b, 1, &more));
	ck_assert_int_eq(bridge_out_push(m.b, &titem_new(4, 1, 10, false)->item,
	                                 SIZE_MAX),
	                 0);
	titem_free(bridge_out_pop(m.b, 1, &more));
	ck_assert_int_eq(bridge_out_push(m.b, &titem_new(5, 1, 10, false)->item,
	                                 SIZE_MAX),
	                 0);
	run_ready(&m);
	ck_assert_uint_eq(m.wakes_other, 3);
	titem_free(bridge_out_pop(m.b, 1, &more));
	teardown_main(&m);
}
END_TEST

/* A run: the items of the epoch at the head, in order, as many as fit in
 * max_bytes (the first always); older epochs purged first as by a pop. */
START_TEST(test_out_pop_run)
{
	static const size_t lens[] = {10, 10, 10, 50, 10};
	struct main_side m;
	struct bridge_item *run;
	bool more = false;

	setup_main(&m, &m_ops, 0);
	ck_assert_int_eq(bridge_out_push(m.b,
	                                 &titem_new(99, 1, 10, false)->item,
	                                 SIZE_MAX),
	                 0);
	for (unsigned i = 0; i < 5; i++)
		ck_assert_int_eq(
		        bridge_out_push(m.b,
		                        &titem_new(i, 2, lens[i], false)->item,
		                        SIZE_MAX),
		        0);
	ck_assert_int_eq(bridge_out_push(m.b, &titem_new(5, 3, 10, false)->item,
	                                 SIZE_MAX),
	                 0);
	run_ready(&m);

	/* epoch 1 is stale: dropped; 0 and 1 fit in 25 bytes, 2 does not */
	run = bridge_out_pop_run(m.b, 2, 25, &more);
	ck_assert_ptr_nonnull(run);
	ck_assert_uint_eq(seq_of(run), 0);
	ck_assert_uint_eq(seq_of(run->next), 1);
	ck_assert_ptr_null(run->next->next);
	ck_assert(more);
	titem_free(run->next);
	titem_free(run);
	/* the first is taken even when it is over max_bytes */
	run = bridge_out_pop_run(m.b, 2, 5, &more);
	ck_assert_uint_eq(seq_of(run), 2);
	ck_assert_ptr_null(run->next);
	ck_assert(more);
	titem_free(run);
	/* the rest of epoch 2, and nothing of epoch 3 */
	run = bridge_out_pop_run(m.b, 2, 1000, &more);
	ck_assert_uint_eq(seq_of(run), 3);
	ck_assert_uint_eq(seq_of(run->next), 4);
	ck_assert_ptr_null(run->next->next);
	ck_assert(!more);
	titem_free(run->next);
	titem_free(run);
	ck_assert_uint_eq(bridge_out_bytes(m.b), 10);
	run = bridge_out_pop_run(m.b, 3, 0, &more);
	ck_assert_uint_eq(seq_of(run), 5);
	ck_assert(!more);
	titem_free(run);
	ck_assert_ptr_null(bridge_out_pop_run(m.b, 3, 1000, &more));
	teardown_main(&m);
}
END_TEST

/* other -> main: FIFO, delivered by the libevent loop; the byte cap. */
START_TEST(test_in_in_order_and_limit)
{
	struct main_side m;
	struct titem *big, *late;

	setup_main(&m, &m_ops, 0);
	ck_assert_int_eq(
	        bridge_in_post(m.b, &titem_new(0, 1, 60, false)->item, 100), 0);
	big = titem_new(1, 1, 41, false);
	ck_assert_int_eq(bridge_in_post(m.b, &big->item, 100), -ENOBUFS);
	/* SIZE_MAX: never refused. */
	ck_assert_int_eq(bridge_in_post(m.b, &big->item, SIZE_MAX), 0);
	ck_assert_uint_eq(bridge_in_bytes(m.b), 101);
	/* Over the cap, even an empty item is refused and stays ours. */
	late = titem_new(2, 1, 0, false);
	ck_assert_int_eq(bridge_in_post(m.b, &late->item, 100), -ENOBUFS);
	titem_free(&late->item);
	ck_assert_uint_eq(m.delivered, 0);
	run_ready(&m);
	ck_assert_uint_eq(m.delivered, 2);
	ck_assert(!m.out_of_order);
	ck_assert_uint_eq(bridge_in_bytes(m.b), 0);
	/* The queue was handed over: its bytes no longer count. */
	ck_assert_int_eq(
	        bridge_in_post(m.b, &titem_new(2, 1, 100, false)->item, 100),
	        0);
	run_ready(&m);
	ck_assert_uint_eq(m.delivered, 3);
	ck_assert(!m.out_of_order);
	teardown_main(&m);
}
END_TEST

/*
 * Purge by generation: pop(2) moves the items of epoch 1 off the queue
 * first; `keep` ones go to the stale list in order, the others are freed.
 * An item of a newer epoch is neither taken nor purged by an older pop.
 */
START_TEST(test_purge_stale_generations)
{
	struct main_side m;
	struct bridge_item *it, *stale;
	bool more = true;

	setup_main(&m, &m_ops, 0);
	ck_assert_int_eq(
	        bridge_out_push(m.b, &titem_new(0, 1, 5, true)->item, SIZE_MAX),
	        0);
	ck_assert_int_eq(bridge_out_push(m.b, &titem_new(1, 1, 5, false)->item,
	                                 SIZE_MAX),
	                 0);
	ck_assert_int_eq(
	        bridge_out_push(m.b, &titem_new(2, 1, 5, true)->item, SIZE_MAX),
	        0);
	ck_assert_int_eq(
	        bridge_out_push(m.b, &titem_new(3, 2, 7, true)->item, SIZE_MAX),
	        0);
	ck_assert_int_eq(
	        bridge_out_push(m.b, &titem_new(4, 3, 9, true)->item, SIZE_MAX),
	        0);
	ck_assert_uint_eq(bridge_out_bytes(m.b), 31);

	it = bridge_out_pop(m.b, 2, &more);
	ck_assert_ptr_nonnull(it);
	ck_assert_uint_eq(seq_of(it), 3);
	ck_assert(!more); /* seq 4 is epoch 3, not 2 */
	titem_free(it);
	ck_assert_uint_eq(freed, 2); /* seq 1 (not kept) and seq 3 */
	ck_assert_uint_eq(bridge_out_bytes(m.b), 9);

	/* An older generation does not touch a newer item. */
	ck_assert_ptr_null(bridge_out_pop(m.b, 2, &more));
	ck_assert_ptr_null(bridge_out_pop(m.b, 1, &more));
	ck_assert(bridge_out_pending(m.b));

	stale = bridge_take_stale(m.b);
	ck_assert_ptr_nonnull(stale);
	ck_assert_uint_eq(seq_of(stale), 0);
	ck_assert_ptr_nonnull(stale->next);
	ck_assert_uint_eq(seq_of(stale->next), 2);
	ck_assert_ptr_null(stale->next->next);
	titem_free(stale->next);
	titem_free(stale);
	ck_assert_ptr_null(bridge_take_stale(m.b));

	/* purge(UINT64_MAX) takes everything; seq 4 is kept as stale. */
	bridge_out_purge(m.b, UINT64_MAX);
	ck_assert(!bridge_out_pending(m.b));
	ck_assert_uint_eq(bridge_out_bytes(m.b), 0);
	stale = bridge_take_stale(m.b);
	ck_assert_ptr_nonnull(stale);
	ck_assert_uint_eq(seq_of(stale), 4);
	titem_free(stale);
	ck_assert_uint_eq(m.delivered, 0);
	teardown_main(&m);
}
END_TEST

/* A refused push arms drained(); the pop that gets down to low water fires
 * it once, on the main thread, with its epoch.  A flush disarms it. */
START_TEST(test_drained)
{
	struct main_side m;
	struct titem *extra;
	bool more;

	setup_main(&m, &m_ops, 10);
	ck_assert_int_eq(
	        bridge_out_push(m.b, &titem_new(0, 4, 8, false)->item, 16), 0);
	ck_assert_int_eq(
	        bridge_out_push(m.b, &titem_new(1, 4, 8, false)->item, 16), 0);
	extra = titem_new(2, 4, 1, false);
	ck_assert_int_eq(bridge_out_push(m.b, &extra->item, 16), -ENOBUFS);
	run_ready(&m);
	ck_assert_uint_eq(m.wakes_other, 1); /* one batch, none refused */
	ck_assert_uint_eq(m.drained, 0);

	titem_free(bridge_out_pop(m.b, 4, &more)); /* 8 bytes left <= 10 */
	ck_assert_uint_eq(m.drained, 0);           /* main did not run yet */
	run_ready(&m);
	ck_assert_uint_eq(m.drained, 1);
	ck_assert_uint_eq(m.drained_epoch, 4);
	titem_free(bridge_out_pop(m.b, 4, &more));
	run_ready(&m);
	ck_assert_uint_eq(m.drained, 1); /* once per refusal */

	ck_assert_int_eq(bridge_out_push(m.b, &extra->item, 0), -ENOBUFS);
	bridge_out_flush(m.b);
	ck_assert_ptr_null(bridge_out_pop(m.b, 4, &more));
	run_ready(&m);
	ck_assert_uint_eq(m.drained, 1);
	titem_free(&extra->item);
	teardown_main(&m);
}
END_TEST

/* ---- threads ------------------------------------------------------------ */

/* The producer posts HAMMER_ITEMS items in order; with lockstep it waits
 * after every round (1 to 7 items) until main has delivered them all, so
 * each round's last item needs a wakeup of its own. */
struct producer {
	struct main_side *m;
	bool lockstep;
};

static void *produce(void *arg)
{
	struct producer *p = arg;
	struct main_side *m = p->m;
	unsigned seq = 0, round = 0;

	while (seq < HAMMER_ITEMS) {
		unsigned n = 1 + round++ % 7;

		for (; n && seq < HAMMER_ITEMS; n--, seq++)
			ck_assert_int_eq(
			        bridge_in_post(
			                m->b,
			                &titem_new(seq, 1, 1, false)->item,
			                SIZE_MAX),
			        0);
		if (!p->lockstep)
			continue;
		pthread_mutex_lock(&m->lock);
		while (m->acked < seq && !m->stalled)
			pthread_cond_wait(&m->cond, &m->lock);
		pthread_mutex_unlock(&m->lock);
	}
	return NULL;
}

static void hammer(bool lockstep)
{
	struct main_side m;
	struct producer p = {.m = NULL, .lockstep = lockstep};
	pthread_t thread;

	setup_main(&m, &m_ops, 0);
	p.m = &m;
	m.expect = HAMMER_ITEMS;
	ck_assert_int_eq(pthread_create(&thread, NULL, produce, &p), 0);
	run_until_expected(&m);
	/* A producer waiting for an ack sees the stall and goes on. */
	pthread_mutex_lock(&m.lock);
	pthread_cond_signal(&m.cond);
	pthread_mutex_unlock(&m.lock);
	pthread_join(thread, NULL);
	ck_assert_msg(!m.stalled, "no item for 2 s after %u of %u: lost wakeup",
	              m.delivered, HAMMER_ITEMS);
	ck_assert_uint_eq(m.delivered, HAMMER_ITEMS);
	ck_assert(!m.out_of_order);
	teardown_main(&m);
}

START_TEST(test_hammer_free_running)
{
	hammer(false);
}
END_TEST

START_TEST(test_hammer_lockstep)
{
	hammer(true);
}
END_TEST

/*
 * Both ways at once, as the transport uses it: main pushes, the hook wakes
 * an echo thread, which pops everything of its epoch and posts it back.
 */
struct echo {
	struct main_side m;
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool kicked, stop;
};

static void echo_wake(void *userdata)
{
	struct echo *e = userdata;

	pthread_mutex_lock(&e->lock);
	e->kicked = true;
	pthread_cond_signal(&e->cond);
	pthread_mutex_unlock(&e->lock);
}

static void echo_deliver(struct bridge_item *it, void *userdata)
{
	m_deliver(it, &((struct echo *)userdata)->m);
}

static void *echo_thread(void *arg)
{
	struct echo *e = arg;
	struct bridge_item *it;
	bool more;

	for (;;) {
		pthread_mutex_lock(&e->lock);
		while (!e->kicked && !e->stop)
			pthread_cond_wait(&e->cond, &e->lock);
		e->kicked = false;
		if (e->stop) {
			pthread_mutex_unlock(&e->lock);
			return NULL;
		}
		pthread_mutex_unlock(&e->lock);
		/* Cleared before popping: a push after the last pop kicks
		 * again. */
		while ((it = bridge_out_pop(e->m.b, 1, &more)))
			ck_assert_int_eq(bridge_in_post(e->m.b, it, SIZE_MAX),
			                 0);
	}
}

static const struct bridge_ops echo_ops = {
        .deliver = echo_deliver,
        .wake_other = echo_wake,
        .free_in = titem_free,
        .free_out = titem_free,
};

START_TEST(test_both_ways_threaded)
{
	static struct echo e; /* m first: userdata is &e == &e.m */
	const unsigned n = 20000;

	setup_main(&e.m, &echo_ops, 0);
	pthread_mutex_init(&e.lock, NULL);
	pthread_cond_init(&e.cond, NULL);
	e.kicked = e.stop = false;
	ck_assert_int_eq(pthread_create(&e.thread, NULL, echo_thread, &e), 0);
	e.m.expect = n;
	for (unsigned i = 0; i < n; i++)
		ck_assert_int_eq(
		        bridge_out_push(e.m.b, &titem_new(i, 1, 3, false)->item,
		                        SIZE_MAX),
		        0);
	run_until_expected(&e.m);
	pthread_mutex_lock(&e.lock);
	e.stop = true;
	pthread_cond_signal(&e.cond);
	pthread_mutex_unlock(&e.lock);
	pthread_join(e.thread, NULL);
	ck_assert(!e.m.stalled);
	ck_assert_uint_eq(e.m.delivered, n);
	ck_assert(!e.m.out_of_order);
	ck_assert_uint_eq(bridge_out_bytes(e.m.b), 0);
	teardown_main(&e.m);
	pthread_mutex_destroy(&e.lock);
	pthread_cond_destroy(&e.cond);
}
END_TEST

/* Shutdown with items everywhere: bridge_free() frees them all. */
START_TEST(test_free_with_items_queued)
{
	struct main_side m;

	setup_main(&m, &m_ops, 0);
	for (unsigned i = 0; i < 5; i++) {
		ck_assert_int_eq(
		        bridge_out_push(m.b, &titem_new(i, 1, 4, i % 2)->item,
		                        SIZE_MAX),
		        0);
		ck_assert_int_eq(
		        bridge_in_post(m.b, &titem_new(i, 1, 4, false)->item,
		                       SIZE_MAX),
		        0);
	}
	ck_assert_int_eq(bridge_out_push(m.b, &titem_new(9, 2, 4, false)->item,
	                                 SIZE_MAX),
	                 0);
	/* Epoch 1 goes: two kept as stale, three freed; epoch 2 stays. */
	bridge_out_purge(m.b, 2);
	ck_assert_uint_eq(freed, 3);
	ck_assert_uint_eq(bridge_out_bytes(m.b), 4);
	bridge_free(m.b);
	m.b = NULL;
	ck_assert_uint_eq(m.delivered, 0);
	teardown_main(&m);
}
END_TEST

/* bridge_free() from inside deliver(): the rest is freed, not delivered,
 * and drained() does not run either. */
START_TEST(test_free_inside_deliver)
{
	struct main_side m;
	struct titem *refused;
	bool more;

	setup_main(&m, &m_ops, 0);
	m.free_in_deliver = true;
	ck_assert_int_eq(
	        bridge_out_push(m.b, &titem_new(0, 1, 4, false)->item, 4), 0);
	refused = titem_new(1, 1, 4, false);
	ck_assert_int_eq(bridge_out_push(m.b, &refused->item, 4), -ENOBUFS);
	titem_free(&refused->item);
	for (unsigned i = 0; i < 3; i++)
		ck_assert_int_eq(
		        bridge_in_post(m.b, &titem_new(i, 1, 4, false)->item,
		                       SIZE_MAX),
		        0);
	titem_free(bridge_out_pop(m.b, 1, &more)); /* arms drained() */
	run_ready(&m);
	ck_assert_ptr_null(m.b);
	ck_assert_uint_eq(m.delivered, 1);
	ck_assert_uint_eq(m.drained, 0);
	teardown_main(&m);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("bridge");
	TCase *tc = tcase_create("single thread");
	TCase *th = tcase_create("threads");

	tcase_add_test(tc, test_new_rejects_missing_ops);
	tcase_add_test(tc, test_out_in_order);
	tcase_add_test(tc, test_out_pop_run);
	tcase_add_test(tc, test_in_in_order_and_limit);
	tcase_add_test(tc, test_purge_stale_generations);
	tcase_add_test(tc, test_drained);
	tcase_add_test(tc, test_free_with_items_queued);
	tcase_add_test(tc, test_free_inside_deliver);
	suite_add_tcase(s, tc);
	/* Generous for sanitizer builds; a stall fails after 2 s anyway. */
	tcase_set_timeout(th, 100);
	tcase_add_test(th, test_hammer_free_running);
	tcase_add_test(th, test_hammer_lockstep);
	tcase_add_test(th, test_both_ways_threaded);
	suite_add_tcase(s, th);
	return check_run(s);
}

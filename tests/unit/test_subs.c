/* Unit tests for daemon/subs.c: local refcounts, batching, acks, denials,
 * reconnect rebuild. */
#include <check.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check-run.h"
#include "subs.h"

#define MAX_NAME 1024

static struct subs *mks(size_t max_names, size_t max_clients,
                        size_t max_per_client)
{
	struct subs_limits l = {max_names, max_clients, max_per_client,
	                        MAX_NAME};
	struct subs *s = NULL;

	ck_assert_int_eq(subs_new(&l, &s), 0);
	ck_assert_ptr_nonnull(s);
	return s;
}

static struct subs *mk_default(void)
{
	return mks(100000, 10000, 10000);
}

static void expect_state(struct subs *s, const char *name,
                         enum subs_state state, size_t refcount)
{
	enum subs_state got;
	size_t rc;

	ck_assert_int_eq(subs_get_state(s, name, &got, &rc, NULL), 0);
	ck_assert_int_eq(got, state);
	ck_assert_uint_eq(rc, refcount);
}

static void expect_gone(struct subs *s, const char *name)
{
	ck_assert_int_eq(subs_get_state(s, name, NULL, NULL, NULL), -ENOENT);
}

static void expect_stats(struct subs *s, size_t names, size_t acked,
                         size_t pending, size_t denied, uint64_t denies)
{
	struct subs_stats st;

	subs_get_stats(s, &st);
	ck_assert_uint_eq(st.names, names);
	ck_assert_uint_eq(st.acked, acked);
	ck_assert_uint_eq(st.pending, pending);
	ck_assert_uint_eq(st.denied, denied);
	ck_assert_uint_eq(st.denies, denies);
	ck_assert_uint_eq(st.names, st.acked + st.pending + st.denied);
}

/* Takes one batch and checks its names (in order) and correlation id. */
static void expect_take(struct subs *s, enum subs_action a, size_t max,
                        const char *corr, const char *const *want, size_t nwant)
{
	const char *names[64];
	char got_corr[SUBS_CORR_MAX] = "untouched";
	int n;

	ck_assert_uint_le(max, 64);
	n = subs_take_pending(s, a, names, max, got_corr);
	ck_assert_int_eq(n, (int)nwant);
	if (nwant == 0) {
		ck_assert_str_eq(got_corr, "untouched");
		return;
	}
	ck_assert_str_eq(got_corr, corr);
	for (size_t i = 0; i < nwant; i++)
		ck_assert_str_eq(names[i], want[i]);
}

START_TEST(test_new_invalid)
{
	struct subs_limits l = {10, 10, 10, MAX_NAME};
	struct subs *s = (struct subs *)0x1;

	l.max_names = 0;
	ck_assert_int_eq(subs_new(&l, &s), -EINVAL);
	l = (struct subs_limits){10, 0, 10, MAX_NAME};
	ck_assert_int_eq(subs_new(&l, &s), -EINVAL);
	l = (struct subs_limits){10, 10, 0, MAX_NAME};
	ck_assert_int_eq(subs_new(&l, &s), -EINVAL);
	l = (struct subs_limits){10, 10, 10, 0};
	ck_assert_int_eq(subs_new(&l, &s), -EINVAL);
	ck_assert_int_eq(subs_new(NULL, &s), -EINVAL);
	ck_assert_ptr_eq(s, (struct subs *)0x1);
	subs_free(NULL);
}
END_TEST

/* Every length around the hash's word size, names that differ in one byte
 * at each position, found by both lookups and only by their own name. */
START_TEST(test_lookup_by_length)
{
	struct subs *s = mk_default();
	static char long_name[MAX_NAME + 2];
	char name[48];
	uint32_t id = 0;
	size_t n;

	for (size_t len = 1; len < sizeof(name); len++) {
		for (size_t at = 0; at < len; at++) {
			memset(name, 'n', len);
			name[len] = '\0';
			name[at] = 'x';
			ck_assert_int_eq(subs_add(s, id % 100, name), 1);
			id++;
		}
	}
	id = 0;
	for (size_t len = 1; len < sizeof(name); len++) {
		for (size_t at = 0; at < len; at++) {
			const uint32_t *v, *w;

			memset(name, 'n', len);
			name[len] = '\0';
			name[at] = 'x';
			v = subs_subscribers(s, name, &n);
			ck_assert_uint_eq(n, 1);
			ck_assert_uint_eq(v[0], id % 100);
			w = subs_subscribers_n(s, name, len, &n);
			ck_assert_ptr_eq(w, v);
			ck_assert_uint_eq(n, 1);
			id++;
		}
		/* the same length without an 'x': nobody */
		memset(name, 'n', len);
		ck_assert_ptr_null(subs_subscribers_n(s, name, len, &n));
		ck_assert_uint_eq(n, 0);
	}
	ck_assert_ptr_null(subs_subscribers_n(s, "", 0, &n));
	ck_assert_uint_eq(n, 0);
	ck_assert_ptr_null(subs_subscribers_n(s, NULL, 0, &n));
	memset(long_name, 'x', MAX_NAME + 1);
	ck_assert_int_eq(subs_add(s, 1, long_name), -ENAMETOOLONG);
	long_name[MAX_NAME] = '\0';
	ck_assert_int_eq(subs_add(s, 1, long_name), 1);
	ck_assert_ptr_nonnull(subs_subscribers_n(s, long_name, MAX_NAME, &n));
	long_name[MAX_NAME] = 'x';
	ck_assert_ptr_null(subs_subscribers_n(s, long_name, MAX_NAME + 1, &n));
	ck_assert_uint_eq(n, 0);
	subs_free(s);
}
END_TEST

START_TEST(test_add_remove)
{
	struct subs *s = mk_default();
	size_t n;
	const uint32_t *v;

	ck_assert_int_eq(subs_add(s, 1, "news"), 1);
	ck_assert_int_eq(subs_add(s, 2, "news"), 0);
	ck_assert_int_eq(subs_add(s, 1, "news"), -EEXIST);
	ck_assert_int_eq(subs_add(s, 2, "news"), -EEXIST);
	ck_assert_int_eq(subs_add(s, 1, "other"), 1);
	ck_assert_uint_eq(subs_client_count(s, 1), 2);
	ck_assert_uint_eq(subs_client_count(s, 2), 1);
	ck_assert_uint_eq(subs_client_count(s, 3), 0);

	v = subs_subscribers(s, "news", &n);
	ck_assert_uint_eq(n, 2);
	ck_assert(v[0] + v[1] == 3 && v[0] != v[1]);
	ck_assert_ptr_null(subs_subscribers(s, "nobody", &n));
	ck_assert_uint_eq(n, 0);

	ck_assert_int_eq(subs_remove(s, 3, "news"), -ENOENT);
	ck_assert_int_eq(subs_remove(s, 2, "other"), -ENOENT);
	ck_assert_int_eq(subs_remove(s, 1, "nothing"), -ENOENT);
	ck_assert_int_eq(subs_remove(s, 1, "news"), 0);
	ck_assert_int_eq(subs_remove(s, 1, "news"), -ENOENT);
	ck_assert_int_eq(subs_remove(s, 2, "news"), 1);
	/* never sent upstream, so simply forgotten */
	expect_gone(s, "news");
	ck_assert_int_eq(subs_remove(s, 1, "other"), 1);
	ck_assert_uint_eq(subs_client_count(s, 1), 0);
	expect_stats(s, 0, 0, 0, 0, 0);
	/* a client's second chance after leaving */
	ck_assert_int_eq(subs_add(s, 1, "news"), 1);
	subs_free(s);
}
END_TEST

START_TEST(test_names)
{
	struct subs *s = mk_default();
	char *big = malloc(MAX_NAME + 2);

	ck_assert_int_eq(subs_add(s, 1, ""), -EINVAL);
	ck_assert_int_eq(subs_add(s, 1, NULL), -EINVAL);
	memset(big, 'x', MAX_NAME + 1);
	big[MAX_NAME + 1] = '\0';
	ck_assert_int_eq(subs_add(s, 1, big), -ENAMETOOLONG);
	big[MAX_NAME] = '\0';
	ck_assert_int_eq(subs_add(s, 1, big), 1);
	expect_state(s, big, SUBS_NONE, 1);
	/* arbitrary UTF-8, and names that differ only at the end */
	ck_assert_int_eq(subs_add(s, 1, "caf\xc3\xa9/\xe2\x82\xac"), 1);
	ck_assert_int_eq(subs_add(s, 1, "caf\xc3\xa9/\xe2\x82\xad"), 1);
	ck_assert_int_eq(subs_add(s, 1, "caf\xc3\xa9"), 1);
	ck_assert_int_eq(subs_add(s, 2, "caf\xc3\xa9/\xe2\x82\xac"), 0);
	ck_assert_uint_eq(subs_client_count(s, 1), 4);
	free(big);
	subs_free(s);
}
END_TEST

START_TEST(test_limits)
{
	struct subs *s = mks(5, 3, 2);

	ck_assert_int_eq(subs_add(s, 0, "a"), 1);
	ck_assert_int_eq(subs_add(s, 0, "b"), 1);
	ck_assert_int_eq(subs_add(s, 0, "c"), -ENOSPC);
	/* -EEXIST is reported even at the limit */
	ck_assert_int_eq(subs_add(s, 0, "a"), -EEXIST);
	ck_assert_int_eq(subs_add(s, 1, "c"), 1);
	ck_assert_int_eq(subs_add(s, 1, "d"), 1);
	ck_assert_int_eq(subs_add(s, 2, "e"), 1);
	/* 5 names known: a new name is refused, a known one is fine */
	ck_assert_int_eq(subs_add(s, 2, "f"), -ENOBUFS);
	ck_assert_int_eq(subs_add(s, 2, "a"), 0);
	/* client ids are slots below max_clients (3) */
	ck_assert_int_eq(subs_add(s, 3, "a"), -EINVAL);
	ck_assert_int_eq(subs_add(s, UINT32_MAX, "a"), -EINVAL);
	ck_assert_uint_eq(subs_client_count(s, 3), 0);
	ck_assert_int_eq(subs_remove_client(s, 3, NULL, NULL), 0);
	/* room again after removals */
	ck_assert_int_eq(subs_remove(s, 0, "b"), 1);
	ck_assert_int_eq(subs_add(s, 0, "f"), 1);
	ck_assert_int_eq(subs_remove_client(s, 2, NULL, NULL), 2);
	/* the slot is free for the next client */
	ck_assert_int_eq(subs_add(s, 2, "a"), 0);
	/* "e" lost its only subscriber before it was ever sent: forgotten */
	expect_gone(s, "e");
	expect_stats(s, 4, 0, 4, 0, 0);
	subs_free(s);
}
END_TEST

START_TEST(test_thousand_clients_one_name)
{
	struct subs *s = mk_default();
	const uint32_t *v;
	size_t n;
	static bool seen[1000];

	for (uint32_t c = 0; c < 1000; c++)
		ck_assert_int_eq(subs_add(s, c + 100, "hot"), c == 0 ? 1 : 0);
	v = subs_subscribers(s, "hot", &n);
	ck_assert_uint_eq(n, 1000);
	memset(seen, 0, sizeof(seen));
	for (size_t i = 0; i < n; i++) {
		ck_assert_uint_ge(v[i], 100);
		ck_assert_uint_lt(v[i], 1100);
		ck_assert(!seen[v[i] - 100]);
		seen[v[i] - 100] = true;
	}
	/* one upstream SUBSCRIBE however many local subscribers */
	ck_assert_uint_eq(subs_pending(s, SUBS_SUBSCRIBE), 1);
	{
		const char *want[] = {"hot"};

		expect_take(s, SUBS_SUBSCRIBE, 10, "0", want, 1);
	}
	ck_assert_int_eq(subs_ack(s, "0"), 1);
	expect_state(s, "hot", SUBS_ACKED, 1000);
	/* remove in an order unrelated to insertion: odd ones, then even */
	for (uint32_t c = 1; c < 1000; c += 2)
		ck_assert_int_eq(subs_remove(s, c + 100, "hot"), 0);
	v = subs_subscribers(s, "hot", &n);
	ck_assert_uint_eq(n, 500);
	for (size_t i = 0; i < n; i++)
		ck_assert_uint_eq((v[i] - 100) % 2, 0);
	for (uint32_t c = 0; c < 1000; c += 2)
		ck_assert_int_eq(subs_remove(s, c + 100, "hot"),
		                 c == 998 ? 1 : 0);
	expect_state(s, "hot", SUBS_ACKED, 0);
	ck_assert_uint_eq(subs_pending(s, SUBS_UNSUBSCRIBE), 1);
	expect_stats(s, 1, 0, 1, 0, 0);
	subs_free(s);
}
END_TEST

START_TEST(test_many_names)
{
	struct subs *s = mk_default();
	char name[32];
	size_t n;

	/* 20,000 names over 100 clients: the tables grow, lookups hold */
	for (int i = 0; i < 20000; i++) {
		snprintf(name, sizeof(name), "topic/%d", i);
		ck_assert_int_eq(subs_add(s, (uint32_t)(i % 100), name), 1);
		if (i % 7 == 0)
			ck_assert_int_eq(subs_add(s, 1000, name), 0);
	}
	for (int i = 0; i < 20000; i++) {
		const uint32_t *v;

		snprintf(name, sizeof(name), "topic/%d", i);
		v = subs_subscribers(s, name, &n);
		ck_assert_uint_eq(n, i % 7 == 0 ? 2 : 1);
		ck_assert_uint_eq(v[0], (uint32_t)(i % 100));
	}
	ck_assert_uint_eq(subs_client_count(s, 5), 200);
	ck_assert_uint_eq(subs_client_count(s, 1000), 2858);
	ck_assert_uint_eq(subs_pending(s, SUBS_SUBSCRIBE), 20000);
	/* batches of 1000, oldest first */
	for (int b = 0; b < 20; b++) {
		const char *names[1000];
		char corr[SUBS_CORR_MAX], want[SUBS_CORR_MAX];

		ck_assert_int_eq(
		        subs_take_pending(s, SUBS_SUBSCRIBE, names, 1000, corr),
		        1000);
		snprintf(want, sizeof(want), "%d", b);
		ck_assert_str_eq(corr, want);
		snprintf(name, sizeof(name), "topic/%d", b * 1000);
		ck_assert_str_eq(names[0], name);
		snprintf(name, sizeof(name), "topic/%d", b * 1000 + 999);
		ck_assert_str_eq(names[999], name);
	}
	for (int b = 0; b < 20; b++) {
		char corr[SUBS_CORR_MAX];

		snprintf(corr, sizeof(corr), "%d", b);
		ck_assert_int_eq(subs_ack(s, corr), 1000);
	}
	expect_stats(s, 20000, 20000, 0, 0, 0);
	ck_assert_int_eq(subs_remove_client(s, 1000, NULL, NULL), 2858);
	ck_assert_uint_eq(subs_pending(s, SUBS_UNSUBSCRIBE), 0);
	subs_free(s);
}
END_TEST

struct unused {
	char names[16][32];
	int n;
};

static void on_unused(const char *name, void *userdata)
{
	struct unused *u = userdata;

	ck_assert_int_lt(u->n, 16);
	snprintf(u->names[u->n++], 32, "%s", name);
}

static bool unused_has(const struct unused *u, const char *name)
{
	for (int i = 0; i < u->n; i++)
		if (strcmp(u->names[i], name) == 0)
			return true;
	return false;
}

START_TEST(test_remove_client)
{
	struct subs *s = mk_default();
	struct unused u = {0};
	size_t n;
	const uint32_t *v;

	ck_assert_int_eq(subs_add(s, 7, "a"), 1);
	ck_assert_int_eq(subs_add(s, 7, "b"), 1);
	ck_assert_int_eq(subs_add(s, 7, "c"), 1);
	ck_assert_int_eq(subs_add(s, 8, "b"), 0);
	ck_assert_int_eq(subs_add(s, 9, "d"), 1);
	{
		const char *want[] = {"a", "b", "c", "d"};

		expect_take(s, SUBS_SUBSCRIBE, 10, "0", want, 4);
	}
	ck_assert_int_eq(subs_ack(s, "0"), 4);

	ck_assert_int_eq(subs_remove_client(s, 7, on_unused, &u), 3);
	ck_assert_int_eq(u.n, 2);
	ck_assert(unused_has(&u, "a"));
	ck_assert(unused_has(&u, "c"));
	ck_assert_uint_eq(subs_client_count(s, 7), 0);
	v = subs_subscribers(s, "b", &n);
	ck_assert_uint_eq(n, 1);
	ck_assert_uint_eq(v[0], 8);
	ck_assert_ptr_null(subs_subscribers(s, "a", &n));
	expect_state(s, "a", SUBS_ACKED, 0);
	expect_state(s, "b", SUBS_ACKED, 1);
	ck_assert_uint_eq(subs_pending(s, SUBS_UNSUBSCRIBE), 2);
	/* unknown or already removed client */
	ck_assert_int_eq(subs_remove_client(s, 7, on_unused, &u), 0);
	ck_assert_int_eq(u.n, 2);
	{
		struct subs_stats st;

		subs_get_stats(s, &st);
		ck_assert_uint_eq(st.clients, 2);
		ck_assert_uint_eq(st.subscriptions, 2);
	}
	subs_free(s);
}
END_TEST

START_TEST(test_batching_and_corr)
{
	struct subs *s = mk_default();
	const char *names[8];
	char corr[SUBS_CORR_MAX];

	/* nothing pending: no id used up */
	ck_assert_int_eq(subs_take_pending(s, SUBS_SUBSCRIBE, names, 8, corr),
	                 0);
	ck_assert_int_eq(subs_add(s, 1, "n1"), 1);
	ck_assert_int_eq(subs_add(s, 1, "n2"), 1);
	ck_assert_int_eq(subs_add(s, 2, "n3"), 1);
	ck_assert_int_eq(subs_add(s, 2, "n4"), 1);
	ck_assert_int_eq(subs_add(s, 3, "n5"), 1);
	ck_assert_uint_eq(subs_pending(s, SUBS_SUBSCRIBE), 5);
	ck_assert_uint_eq(subs_pending(s, SUBS_UNSUBSCRIBE), 0);
	{
		const char *w0[] = {"n1", "n2"}, *w1[] = {"n3", "n4", "n5"};

		expect_take(s, SUBS_SUBSCRIBE, 2, "0", w0, 2);
		expect_state(s, "n1", SUBS_PENDING_SUBSCRIBE, 1);
		expect_state(s, "n3", SUBS_NONE, 1);
		expect_take(s, SUBS_SUBSCRIBE, 8, "1", w1, 3);
		expect_take(s, SUBS_SUBSCRIBE, 8, NULL, NULL, 0);
		expect_take(s, SUBS_UNSUBSCRIBE, 8, NULL, NULL, 0);
	}
	ck_assert_uint_eq(subs_pending(s, SUBS_SUBSCRIBE), 0);
	expect_stats(s, 5, 0, 5, 0, 0);

	/* ids we never issued */
	ck_assert_int_eq(subs_ack(s, "2"), -ENOENT);
	ck_assert_int_eq(subs_ack(s, "18446744073709551615"), -ENOENT);
	ck_assert_int_eq(subs_ack(s, "18446744073709551616"), -EINVAL);
	ck_assert_int_eq(subs_ack(s, "01"), -EINVAL);
	ck_assert_int_eq(subs_ack(s, "-1"), -EINVAL);
	ck_assert_int_eq(subs_ack(s, "1 "), -EINVAL);
	ck_assert_int_eq(subs_ack(s, ""), -EINVAL);
	ck_assert_int_eq(subs_ack(s, NULL), -EINVAL);
	ck_assert_int_eq(subs_ack(s, "mx06n1sm-1nghfx5ddj8"), -EINVAL);

	/* out of order acks work too */
	ck_assert_int_eq(subs_ack(s, "1"), 3);
	expect_state(s, "n1", SUBS_PENDING_SUBSCRIBE, 1);
	expect_state(s, "n5", SUBS_ACKED, 1);
	ck_assert_int_eq(subs_ack(s, "0"), 2);
	expect_state(s, "n1", SUBS_ACKED, 1);
	/* a duplicate ack changes nothing */
	ck_assert_int_eq(subs_ack(s, "0"), 0);
	expect_stats(s, 5, 5, 0, 0, 0);

	/* the counter goes on: the next batch is "2" */
	ck_assert_int_eq(subs_add(s, 4, "n6"), 1);
	ck_assert_int_eq(subs_take_pending(s, SUBS_SUBSCRIBE, names, 8, corr),
	                 1);
	ck_assert_str_eq(corr, "2");
	ck_assert_int_eq(subs_take_pending(s, 9, names, 8, corr), -EINVAL);
	subs_free(s);
}
END_TEST

START_TEST(test_unsubscribe_flow)
{
	struct subs *s = mk_default();
	const char *w[] = {"x"};

	ck_assert_int_eq(subs_add(s, 1, "x"), 1);
	expect_take(s, SUBS_SUBSCRIBE, 4, "0", w, 1);
	ck_assert_int_eq(subs_ack(s, "0"), 1);
	ck_assert_int_eq(subs_remove(s, 1, "x"), 1);
	expect_state(s, "x", SUBS_ACKED, 0);
	ck_assert_uint_eq(subs_pending(s, SUBS_UNSUBSCRIBE), 1);
	expect_take(s, SUBS_SUBSCRIBE, 4, NULL, NULL, 0);
	expect_take(s, SUBS_UNSUBSCRIBE, 4, "1", w, 1);
	expect_state(s, "x", SUBS_PENDING_UNSUBSCRIBE, 0);
	expect_stats(s, 1, 0, 1, 0, 0);
	ck_assert_int_eq(subs_ack(s, "1"), 1);
	expect_gone(s, "x");
	expect_stats(s, 0, 0, 0, 0, 0);

	/* unsubscribed and resubscribed before anything was taken: no
	 * traffic at all */
	ck_assert_int_eq(subs_add(s, 1, "y"), 1);
	{
		const char *wy[] = {"y"};

		expect_take(s, SUBS_SUBSCRIBE, 4, "2", wy, 1);
	}
	ck_assert_int_eq(subs_ack(s, "2"), 1);
	ck_assert_int_eq(subs_remove(s, 1, "y"), 1);
	ck_assert_uint_eq(subs_pending(s, SUBS_UNSUBSCRIBE), 1);
	ck_assert_int_eq(subs_add(s, 2, "y"), 1);
	ck_assert_uint_eq(subs_pending(s, SUBS_UNSUBSCRIBE), 0);
	ck_assert_uint_eq(subs_pending(s, SUBS_SUBSCRIBE), 0);
	expect_state(s, "y", SUBS_ACKED, 1);

	/* subscribed and unsubscribed before being taken: forgotten */
	ck_assert_int_eq(subs_add(s, 1, "z"), 1);
	ck_assert_int_eq(subs_remove(s, 1, "z"), 1);
	expect_gone(s, "z");
	ck_assert_uint_eq(subs_pending(s, SUBS_SUBSCRIBE), 0);
	subs_free(s);
}
END_TEST

/*
 * The name loses its last local subscriber while its SUBSCRIBE is in
 * flight.  Nothing is sent until the ack; then the UNSUBSCRIBE goes out.
 */
START_TEST(test_unsubscribe_while_subscribe_pending)
{
	struct subs *s = mk_default();
	const char *w[] = {"p"};

	ck_assert_int_eq(subs_add(s, 1, "p"), 1);
	expect_take(s, SUBS_SUBSCRIBE, 4, "0", w, 1);
	ck_assert_int_eq(subs_remove(s, 1, "p"), 1);
	expect_state(s, "p", SUBS_PENDING_SUBSCRIBE, 0);
	/* not yet: the SUBSCRIBE must be acked first */
	ck_assert_uint_eq(subs_pending(s, SUBS_UNSUBSCRIBE), 0);
	expect_take(s, SUBS_UNSUBSCRIBE, 4, NULL, NULL, 0);
	ck_assert_int_eq(subs_ack(s, "0"), 1);
	expect_state(s, "p", SUBS_ACKED, 0);
	ck_assert_uint_eq(subs_pending(s, SUBS_UNSUBSCRIBE), 1);
	expect_take(s, SUBS_UNSUBSCRIBE, 4, "1", w, 1);
	ck_assert_int_eq(subs_ack(s, "1"), 1);
	expect_gone(s, "p");

	/* same, but back again before the ack: stays subscribed, no
	 * UNSUBSCRIBE at all */
	ck_assert_int_eq(subs_add(s, 1, "p"), 1);
	expect_take(s, SUBS_SUBSCRIBE, 4, "2", w, 1);
	ck_assert_int_eq(subs_remove(s, 1, "p"), 1);
	ck_assert_int_eq(subs_add(s, 2, "p"), 1);
	ck_assert_int_eq(subs_ack(s, "2"), 1);
	expect_state(s, "p", SUBS_ACKED, 1);
	ck_assert_uint_eq(subs_pending(s, SUBS_UNSUBSCRIBE), 0);

	/* resubscribed while the UNSUBSCRIBE is in flight: a new
	 * SUBSCRIBE follows its ack */
	ck_assert_int_eq(subs_remove(s, 2, "p"), 1);
	expect_take(s, SUBS_UNSUBSCRIBE, 4, "3", w, 1);
	ck_assert_int_eq(subs_add(s, 3, "p"), 1);
	expect_state(s, "p", SUBS_PENDING_UNSUBSCRIBE, 1);
	ck_assert_uint_eq(subs_pending(s, SUBS_SUBSCRIBE), 0);
	ck_assert_int_eq(subs_ack(s, "3"), 1);
	expect_state(s, "p", SUBS_NONE, 1);
	expect_take(s, SUBS_SUBSCRIBE, 4, "4", w, 1);
	ck_assert_int_eq(subs_ack(s, "4"), 1);
	expect_state(s, "p", SUBS_ACKED, 1);

	/* denied while nobody wants it any more: forgotten, no
	 * UNSUBSCRIBE (nothing was subscribed) */
	ck_assert_int_eq(subs_add(s, 1, "q"), 1);
	{
		const char *wq[] = {"q"};

		expect_take(s, SUBS_SUBSCRIBE, 4, "5", wq, 1);
	}
	ck_assert_int_eq(subs_remove(s, 1, "q"), 1);
	ck_assert_int_eq(subs_denied(s, "q", "MESSAGE_DENIED"), 0);
	expect_gone(s, "q");
	ck_assert_int_eq(subs_ack(s, "5"), 0);
	ck_assert_uint_eq(subs_pending(s, SUBS_UNSUBSCRIBE), 0);
	expect_stats(s, 1, 1, 0, 0, 1);
	subs_free(s);
}
END_TEST

START_TEST(test_denied_wins_over_ack)
{
	struct subs *s = mk_default();
	const char *w[] = {"open/a", "secret/a", "open/b"};
	const char *reason = (const char *)1;
	enum subs_state st;

	ck_assert_int_eq(subs_add(s, 1, "open/a"), 1);
	ck_assert_int_eq(subs_add(s, 1, "secret/a"), 1);
	ck_assert_int_eq(subs_add(s, 2, "secret/a"), 0);
	ck_assert_int_eq(subs_add(s, 2, "open/b"), 1);
	expect_take(s, SUBS_SUBSCRIBE, 8, "0", w, 3);
	/* 7.0.2: the denial comes first, then the ack of the whole batch */
	ck_assert_int_eq(subs_denied(s, "secret/a", "MESSAGE_DENIED"), 0);
	expect_state(s, "secret/a", SUBS_DENIED, 2);
	ck_assert_int_eq(subs_ack(s, "0"), 2);
	ck_assert_int_eq(subs_get_state(s, "secret/a", &st, NULL, &reason), 0);
	ck_assert_int_eq(st, SUBS_DENIED);
	ck_assert_str_eq(reason, "MESSAGE_DENIED");
	/* the others are sent again (7.0.2 drops the last name instead) */
	expect_state(s, "open/a", SUBS_NONE, 1);
	expect_state(s, "open/b", SUBS_NONE, 1);
	expect_stats(s, 3, 0, 2, 1, 1);
	{
		const char *w1[] = {"open/a", "open/b"};

		expect_take(s, SUBS_SUBSCRIBE, 8, "1", w1, 2);
	}
	ck_assert_int_eq(subs_ack(s, "1"), 2);
	expect_state(s, "open/a", SUBS_ACKED, 1);
	expect_state(s, "open/b", SUBS_ACKED, 1);
	expect_stats(s, 3, 2, 0, 1, 1);
	{
		size_t n;

		/* its local subscribers are there to be told */
		subs_subscribers(s, "secret/a", &n);
		ck_assert_uint_eq(n, 2);
	}

	/* sticky while wanted: a new subscriber joins the denied name */
	ck_assert_int_eq(subs_add(s, 3, "secret/a"), 0);
	expect_state(s, "secret/a", SUBS_DENIED, 3);
	ck_assert_uint_eq(subs_pending(s, SUBS_SUBSCRIBE), 0);
	/* last one leaves: forgotten, and no UNSUBSCRIBE */
	ck_assert_int_eq(subs_remove_client(s, 1, NULL, NULL), 2);
	ck_assert_int_eq(subs_remove_client(s, 2, NULL, NULL), 2);
	ck_assert_int_eq(subs_remove(s, 3, "secret/a"), 1);
	expect_gone(s, "secret/a");
	ck_assert_uint_eq(subs_pending(s, SUBS_UNSUBSCRIBE), 2);
	/* asked again later: retried upstream */
	ck_assert_int_eq(subs_add(s, 4, "secret/a"), 1);
	ck_assert_uint_eq(subs_pending(s, SUBS_SUBSCRIBE), 1);

	/* a denial after the ack wins too; no reason is fine */
	ck_assert_int_eq(subs_add(s, 5, "late"), 1);
	{
		const char *names[8];
		char corr[SUBS_CORR_MAX];

		ck_assert_int_eq(
		        subs_take_pending(s, SUBS_SUBSCRIBE, names, 8, corr),
		        2);
		ck_assert_int_eq(subs_ack(s, corr), 2);
	}
	ck_assert_int_eq(subs_denied(s, "late", NULL), 0);
	ck_assert_int_eq(subs_get_state(s, "late", &st, NULL, &reason), 0);
	ck_assert_int_eq(st, SUBS_DENIED);
	ck_assert_ptr_null(reason);
	ck_assert_int_eq(subs_denied(s, "unknown", "x"), -ENOENT);
	{
		struct subs_stats sst;

		subs_get_stats(s, &sst);
		ck_assert_uint_eq(sst.denies, 2);
		ck_assert_uint_eq(sst.denied, 1);
	}
	subs_free(s);
}
END_TEST

/*
 * 7.0.2 drops the last name of a bulk SUBSCRIBE with a denied name (and
 * still acks), so the rest of such a batch is not trusted: wanted names
 * are subscribed again, unwanted ones unsubscribed.  Other batches in
 * flight are not affected.
 */
START_TEST(test_deny_retry)
{
	struct subs *s = mk_default();
	struct subs_stats st;
	const char *names[8];
	char corr[SUBS_CORR_MAX];

	ck_assert_int_eq(subs_add(s, 1, "a"), 1);
	ck_assert_int_eq(subs_add(s, 1, "s"), 1);
	ck_assert_int_eq(subs_add(s, 2, "b"), 1);
	{
		const char *w0[] = {"a", "s", "b"};

		expect_take(s, SUBS_SUBSCRIBE, 8, "0", w0, 3);
	}
	ck_assert_int_eq(subs_add(s, 3, "c"), 1);
	{
		const char *w1[] = {"c"};

		expect_take(s, SUBS_SUBSCRIBE, 8, "1", w1, 1);
	}
	ck_assert_int_eq(subs_denied(s, "s", "no"), 0);
	/* b loses its subscriber while in flight */
	ck_assert_int_eq(subs_remove_client(s, 2, NULL, NULL), 1);
	ck_assert_int_eq(subs_ack(s, "0"), 2);
	ck_assert_int_eq(subs_ack(s, "1"), 1);
	expect_state(s, "a", SUBS_NONE, 1);
	expect_state(s, "b", SUBS_ACKED, 0);
	expect_state(s, "c", SUBS_ACKED, 1);
	expect_state(s, "s", SUBS_DENIED, 1);
	subs_get_stats(s, &st);
	ck_assert_uint_eq(st.retries, 2);
	{
		const char *wa[] = {"a"}, *wb[] = {"b"};

		expect_take(s, SUBS_SUBSCRIBE, 8, "2", wa, 1);
		expect_take(s, SUBS_UNSUBSCRIBE, 8, "3", wb, 1);
	}
	/* the retry batch has no denied name: plain acks now */
	ck_assert_int_eq(subs_ack(s, "2"), 1);
	ck_assert_int_eq(subs_ack(s, "3"), 1);
	expect_state(s, "a", SUBS_ACKED, 1);
	expect_gone(s, "b");
	expect_stats(s, 3, 2, 0, 1, 1);

	/* a denial after the ack retries nothing */
	ck_assert_int_eq(subs_add(s, 4, "d"), 1);
	ck_assert_int_eq(subs_add(s, 4, "e"), 1);
	ck_assert_int_eq(subs_take_pending(s, SUBS_SUBSCRIBE, names, 8, corr),
	                 2);
	ck_assert_int_eq(subs_ack(s, corr), 2);
	ck_assert_int_eq(subs_denied(s, "d", "late"), 0);
	expect_state(s, "e", SUBS_ACKED, 1);
	expect_state(s, "d", SUBS_DENIED, 1);
	subs_get_stats(s, &st);
	ck_assert_uint_eq(st.retries, 2);
	ck_assert_uint_eq(st.denies, 2);
	subs_free(s);
}
END_TEST

START_TEST(test_deny_reason_truncated)
{
	struct subs *s = mk_default();
	char reason[SUBS_MAX_REASON + 50];
	const char *got;

	memset(reason, 'r', sizeof(reason) - 1);
	reason[sizeof(reason) - 1] = '\0';
	ck_assert_int_eq(subs_add(s, 1, "n"), 1);
	ck_assert_int_eq(subs_denied(s, "n", reason), 0);
	ck_assert_int_eq(subs_get_state(s, "n", NULL, NULL, &got), 0);
	ck_assert_uint_eq(strlen(got), SUBS_MAX_REASON);
	/* a second denial replaces the reason */
	ck_assert_int_eq(subs_denied(s, "n", "again"), 0);
	ck_assert_int_eq(subs_get_state(s, "n", NULL, NULL, &got), 0);
	ck_assert_str_eq(got, "again");
	subs_free(s);
}
END_TEST

START_TEST(test_connection_reset_rebuild)
{
	struct subs *s = mk_default();
	const char *names[16];
	char corr[SUBS_CORR_MAX];
	int n;

	/* one name in every state */
	ck_assert_int_eq(subs_add(s, 1, "acked"), 1);
	ck_assert_int_eq(subs_add(s, 1, "denied"), 1);
	ck_assert_int_eq(subs_add(s, 1, "unwanted"), 1);
	ck_assert_int_eq(subs_add(s, 2, "acked"), 0);
	ck_assert_int_eq(subs_take_pending(s, SUBS_SUBSCRIBE, names, 16, corr),
	                 3);
	ck_assert_int_eq(subs_denied(s, "denied", "no"), 0);
	ck_assert_int_eq(subs_ack(s, "0"), 2);
	/* the 7.0.2 retry round (see test_deny_retry) */
	ck_assert_int_eq(subs_take_pending(s, SUBS_SUBSCRIBE, names, 16, corr),
	                 2);
	ck_assert_str_eq(corr, "1");
	ck_assert_int_eq(subs_ack(s, "1"), 2);
	ck_assert_int_eq(subs_remove(s, 1, "unwanted"), 1); /* todo UNSUB */
	ck_assert_int_eq(subs_add(s, 1, "inflight"), 1);
	ck_assert_int_eq(subs_take_pending(s, SUBS_SUBSCRIBE, names, 16, corr),
	                 1);
	ck_assert_str_eq(corr, "2");
	ck_assert_int_eq(subs_add(s, 3, "unsubbing"), 1);
	ck_assert_int_eq(subs_take_pending(s, SUBS_SUBSCRIBE, names, 16, corr),
	                 1);
	ck_assert_int_eq(subs_ack(s, "3"), 1);
	ck_assert_int_eq(subs_remove(s, 3, "unsubbing"), 1);
	ck_assert_int_eq(subs_add(s, 3, "inflight-2"), 1);
	ck_assert_int_eq(subs_add(s, 3, "gone-pending"), 1);
	ck_assert_int_eq(
	        subs_take_pending(s, SUBS_UNSUBSCRIBE, names, 16, corr), 2);
	ck_assert_str_eq(corr, "4");
	ck_assert_int_eq(subs_take_pending(s, SUBS_SUBSCRIBE, names, 16, corr),
	                 2);
	ck_assert_int_eq(subs_remove(s, 3, "gone-pending"), 1);
	ck_assert_int_eq(subs_add(s, 3, "todo"), 1);
	expect_state(s, "unsubbing", SUBS_PENDING_UNSUBSCRIBE, 0);
	expect_state(s, "gone-pending", SUBS_PENDING_SUBSCRIBE, 0);
	expect_stats(s, 8, 1, 6, 1, 1);

	subs_connection_reset(s);

	/* wanted names need SUBSCRIBE again, the rest is forgotten */
	expect_state(s, "acked", SUBS_NONE, 2);
	expect_state(s, "denied", SUBS_NONE, 1);
	expect_state(s, "inflight", SUBS_NONE, 1);
	expect_state(s, "inflight-2", SUBS_NONE, 1);
	expect_state(s, "todo", SUBS_NONE, 1);
	expect_gone(s, "unwanted");
	expect_gone(s, "unsubbing");
	expect_gone(s, "gone-pending");
	{
		const char *reason = "x";

		subs_get_state(s, "denied", NULL, NULL, &reason);
		ck_assert_ptr_null(reason);
	}
	ck_assert_uint_eq(subs_pending(s, SUBS_SUBSCRIBE), 5);
	ck_assert_uint_eq(subs_pending(s, SUBS_UNSUBSCRIBE), 0);
	/* acks of the old session mean nothing now */
	ck_assert_int_eq(subs_ack(s, "1"), -ENOENT);
	expect_stats(s, 5, 0, 5, 0, 1);

	/* the ids restart at "0" and one batch rebuilds everything */
	n = subs_take_pending(s, SUBS_SUBSCRIBE, names, 16, corr);
	ck_assert_int_eq(n, 5);
	ck_assert_str_eq(corr, "0");
	{
		const char *want[] = {"acked", "denied", "inflight",
		                      "inflight-2", "todo"};

		for (size_t i = 0; i < 5; i++) {
			bool found = false;

			for (int j = 0; j < n; j++)
				found |= strcmp(names[j], want[i]) == 0;
			ck_assert_msg(found, "%s not rebuilt", want[i]);
		}
	}
	ck_assert_int_eq(subs_ack(s, "0"), 5);
	expect_stats(s, 5, 5, 0, 0, 1);
	/* a reset with nothing wanted empties the registry */
	ck_assert_int_eq(subs_remove_client(s, 1, NULL, NULL), 3);
	ck_assert_int_eq(subs_remove_client(s, 2, NULL, NULL), 1);
	ck_assert_int_eq(subs_remove_client(s, 3, NULL, NULL), 2);
	ck_assert_uint_eq(subs_pending(s, SUBS_UNSUBSCRIBE), 5);
	subs_connection_reset(s);
	expect_stats(s, 0, 0, 0, 0, 1);
	subs_free(s);
}
END_TEST

/*
 * Random operations against a plain model of the local side (a matrix of
 * client x name), checking every return value; and for the upstream side,
 * that a quiet connection that takes and acks everything converges to
 * "ACKED exactly when wanted".
 */
#define MC 40
#define MN 60

static uint64_t rng_state;

static uint32_t rnd(uint32_t n)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return (uint32_t)(rng_state % n);
}

static void model_check(struct subs *s, bool model[MC][MN])
{
	char name[16];
	size_t total = 0;

	for (int c = 0; c < MC; c++) {
		size_t cnt = 0;

		for (int k = 0; k < MN; k++)
			cnt += model[c][k];
		ck_assert_uint_eq(subs_client_count(s, (uint32_t)c), cnt);
		total += cnt;
	}
	for (int k = 0; k < MN; k++) {
		size_t n, want = 0;
		const uint32_t *v;

		snprintf(name, sizeof(name), "ev/%d", k);
		v = subs_subscribers(s, name, &n);
		for (int c = 0; c < MC; c++)
			want += model[c][k];
		ck_assert_uint_eq(n, want);
		for (size_t i = 0; i < n; i++)
			ck_assert(model[v[i]][k]);
	}
	{
		struct subs_stats st;

		subs_get_stats(s, &st);
		ck_assert_uint_eq(st.subscriptions, total);
		ck_assert_uint_eq(st.names, st.acked + st.pending + st.denied);
	}
}

START_TEST(test_random_model)
{
	static bool model[MC][MN];
	struct subs *s = mks(MN, MC, MN);
	char name[16];

	rng_state = 0x9e3779b97f4a7c15ULL + (uint64_t)_i;
	memset(model, 0, sizeof(model));
	for (int step = 0; step < 20000; step++) {
		uint32_t c = rnd(MC), k = rnd(MN), op = rnd(100);
		size_t refs = 0;

		snprintf(name, sizeof(name), "ev/%u", k);
		for (int i = 0; i < MC; i++)
			refs += model[i][k];
		if (op < 45) {
			int r = subs_add(s, c, name);

			if (model[c][k])
				ck_assert_int_eq(r, -EEXIST);
			else
				ck_assert_int_eq(r, refs == 0 ? 1 : 0);
			model[c][k] = true;
		} else if (op < 85) {
			int r = subs_remove(s, c, name);

			if (!model[c][k])
				ck_assert_int_eq(r, -ENOENT);
			else
				ck_assert_int_eq(r, refs == 1 ? 1 : 0);
			model[c][k] = false;
		} else if (op < 88) {
			int had = 0;

			for (int i = 0; i < MN; i++) {
				had += model[c][i];
				model[c][i] = false;
			}
			ck_assert_int_eq(subs_remove_client(s, c, NULL, NULL),
			                 had);
		} else if (op < 95) {
			const char *names[MN];
			char corr[SUBS_CORR_MAX];
			enum subs_action a = rnd(2);

			subs_take_pending(s, a, names, 1 + rnd(8), corr);
		} else if (op < 99) {
			char corr[SUBS_CORR_MAX];

			snprintf(corr, sizeof(corr), "%u", rnd(64));
			ck_assert_int_ge(subs_ack(s, corr), -ENOENT);
		} else if (rnd(4) == 0) {
			subs_connection_reset(s);
		} else {
			int r = subs_denied(s, name, "no");

			ck_assert(r == 0 || r == -ENOENT);
		}
		if (step % 97 == 0)
			model_check(s, model);
	}
	model_check(s, model);

	/* Quiesce on a fresh session: take everything, ack in order. */
	subs_connection_reset(s);
	for (int round = 0; round < 4; round++) {
		for (int a = 0; a < 2; a++) {
			const char *names[MN];
			char corr[SUBS_CORR_MAX];

			while (subs_take_pending(s, a, names, 7, corr) > 0)
				ck_assert_int_ge(subs_ack(s, corr), 1);
		}
	}
	for (int k = 0; k < MN; k++) {
		size_t refs = 0;

		for (int i = 0; i < MC; i++)
			refs += model[i][k];
		snprintf(name, sizeof(name), "ev/%d", k);
		if (refs)
			expect_state(s, name, SUBS_ACKED, refs);
		else
			expect_gone(s, name);
	}
	subs_free(s);
}
END_TEST

static Suite *subs_suite(void)
{
	Suite *s = suite_create("subs");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, test_new_invalid);
	tcase_add_test(tc, test_add_remove);
	tcase_add_test(tc, test_lookup_by_length);
	tcase_add_test(tc, test_names);
	tcase_add_test(tc, test_limits);
	tcase_add_test(tc, test_thousand_clients_one_name);
	tcase_add_test(tc, test_many_names);
	tcase_add_test(tc, test_remove_client);
	tcase_add_test(tc, test_batching_and_corr);
	tcase_add_test(tc, test_unsubscribe_flow);
	tcase_add_test(tc, test_unsubscribe_while_subscribe_pending);
	tcase_add_test(tc, test_denied_wins_over_ack);
	tcase_add_test(tc, test_deny_retry);
	tcase_add_test(tc, test_deny_reason_truncated);
	tcase_add_test(tc, test_connection_reset_rebuild);
	tcase_add_loop_test(tc, test_random_model, 0, 4);
	tcase_set_timeout(tc, 60);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return check_run(subs_suite());
}

/*
 * The store of accepted emits (see sendq.h).
 *
 * One allocation per message (its header and its bytes).  A message is on
 * exactly one list: its app's FIFO while queued, the store's in-flight
 * list (hand-off order) while written and unconfirmed.  Apps with queued
 * messages are on the active ring that deficit round robin walks: the app
 * at its head is the one whose turn it is.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>

#include "sendq.h"

#define DEFAULT_QUANTUM 1024

struct msg {
	TAILQ_ENTRY(msg) entry; /* on app->fifo or q->in_flight */
	struct sendq_app *app;
	uint64_t seq; /* while in flight */
	bool handed_before;
	struct sendq_msg pub; /* pub.data points at bytes */
	uint8_t bytes[];
};

TAILQ_HEAD(msg_list, msg);

struct sendq_app {
	TAILQ_ENTRY(sendq_app) ring; /* on its ring while it has queued */
	LIST_ENTRY(sendq_app) all;
	struct msg_list fifo;
	struct sendq *q;
	uint32_t id;
	void *owner;
	bool released;
	bool first; /* restored: written before any other app */
	bool active;
	bool in_turn;
	uint64_t deficit;
	uint32_t weight; /* turns are weight quanta long */
	size_t queued, in_flight;
	uint64_t queued_bytes, in_flight_bytes;
};

struct sendq {
	struct sendq_limits lim;
	struct sendq_callbacks cb;
	void *userdata;
	TAILQ_HEAD(app_ring, sendq_app) active;
	struct app_ring first; /* apps written before the others */
	LIST_HEAD(, sendq_app) apps;
	struct msg_list in_flight;
	struct msg *peeked;
	uint64_t next_seq;
	size_t napps;
	struct sendq_stats st; /* st.apps: apps holding anything */
};

static void fix_limits(struct sendq_limits *l)
{
	if (l->max_app_messages == 0 || l->max_app_messages > l->max_messages)
		l->max_app_messages = l->max_messages;
	if (l->max_app_bytes == 0 || l->max_app_bytes > l->max_bytes)
		l->max_app_bytes = l->max_bytes;
	if (l->quantum == 0)
		l->quantum = DEFAULT_QUANTUM;
}

int sendq_new(const struct sendq_limits *lim, const struct sendq_callbacks *cb,
              void *userdata, struct sendq **ret)
{
	struct sendq *q;

	if (lim == NULL || lim->max_messages == 0 || lim->max_bytes == 0)
		return -EINVAL;
	q = calloc(1, sizeof(*q));
	if (q == NULL)
		return -ENOMEM;
	q->lim = *lim;
	fix_limits(&q->lim);
	if (cb != NULL)
		q->cb = *cb;
	q->userdata = userdata;
	TAILQ_INIT(&q->active);
	TAILQ_INIT(&q->first);
	LIST_INIT(&q->apps);
	TAILQ_INIT(&q->in_flight);
	q->next_seq = 1;
	*ret = q;
	return 0;
}

static void free_list(struct msg_list *l)
{
	struct msg *m;

	while ((m = TAILQ_FIRST(l)) != NULL) {
		TAILQ_REMOVE(l, m, entry);
		free(m);
	}
}

void sendq_free(struct sendq *q)
{
	struct sendq_app *a;

	if (q == NULL)
		return;
	free_list(&q->in_flight);
	while ((a = LIST_FIRST(&q->apps)) != NULL) {
		LIST_REMOVE(a, all);
		free_list(&a->fifo);
		free(a);
	}
	free(q);
}

int sendq_set_limits(struct sendq *q, const struct sendq_limits *lim)
{
	if (lim == NULL || lim->max_messages == 0 || lim->max_bytes == 0)
		return -EINVAL;
	q->lim = *lim;
	fix_limits(&q->lim);
	return 0;
}

/* ---- apps ---- */

struct sendq_app *sendq_app_new(struct sendq *q, uint32_t id, void *owner)
{
	struct sendq_app *a = calloc(1, sizeof(*a));

	if (a == NULL)
		return NULL;
	a->q = q;
	a->id = id;
	a->owner = owner;
	a->weight = 1;
	TAILQ_INIT(&a->fifo);
	LIST_INSERT_HEAD(&q->apps, a, all);
	q->napps++;
	return a;
}

/* A released app goes once nothing of it is left in the store. */
static void maybe_free_app(struct sendq *q, struct sendq_app *a)
{
	if (!a->released || a->queued > 0 || a->in_flight > 0)
		return;
	LIST_REMOVE(a, all);
	q->napps--;
	free(a);
}

void sendq_app_release(struct sendq *q, struct sendq_app *a)
{
	if (a == NULL)
		return;
	a->released = true;
	a->owner = NULL;
	maybe_free_app(q, a);
}

size_t sendq_app_depth(const struct sendq_app *a)
{
	return a->queued + a->in_flight;
}

size_t sendq_app_queued(const struct sendq_app *a)
{
	return a->queued;
}

static struct app_ring *ring_of(struct sendq *q, const struct sendq_app *a)
{
	return a->first ? &q->first : &q->active;
}

static void activate(struct sendq *q, struct sendq_app *a, bool at_head)
{
	if (a->active)
		return;
	a->active = true;
	a->in_turn = false;
	a->deficit = 0;
	if (at_head)
		TAILQ_INSERT_HEAD(ring_of(q, a), a, ring);
	else
		TAILQ_INSERT_TAIL(ring_of(q, a), a, ring);
}

static void deactivate(struct sendq *q, struct sendq_app *a)
{
	if (!a->active)
		return;
	TAILQ_REMOVE(ring_of(q, a), a, ring);
	a->active = false;
	a->in_turn = false;
	a->deficit = 0;
}

void sendq_app_set_weight(struct sendq_app *a, uint32_t weight)
{
	a->weight = weight ? weight : 1;
}

void sendq_app_set_first(struct sendq *q, struct sendq_app *a)
{
	bool was = a->active;

	if (a->first)
		return;
	deactivate(q, a);
	a->first = true;
	if (was)
		activate(q, a, false);
}

/* ---- accepting ---- */

/* Evicts a's oldest queued message (drop-oldest); false if none. */
static bool evict_oldest(struct sendq *q, struct sendq_app *a)
{
	struct msg *m = TAILQ_FIRST(&a->fifo);

	if (m == NULL)
		return false;
	if (q->peeked == m)
		q->peeked = NULL;
	TAILQ_REMOVE(&a->fifo, m, entry);
	a->queued--;
	a->queued_bytes -= m->pub.len;
	q->st.queued--;
	q->st.queued_bytes -= m->pub.len;
	q->st.dropped++;
	if (a->queued + a->in_flight == 0)
		q->st.apps--;
	if (TAILQ_EMPTY(&a->fifo))
		deactivate(q, a);
	if (q->cb.dropped)
		q->cb.dropped(a->owner, &m->pub, q->userdata);
	free(m);
	return true;
}

static bool app_over(const struct sendq *q, const struct sendq_app *a,
                     size_t len)
{
	return a->queued + a->in_flight + 1 > q->lim.max_app_messages ||
	       a->queued_bytes + a->in_flight_bytes + len >
	               q->lim.max_app_bytes;
}

static bool store_over(const struct sendq *q, size_t len)
{
	return q->st.queued + q->st.in_flight + 1 > q->lim.max_messages ||
	       q->st.queued_bytes + q->st.in_flight_bytes + len >
	               q->lim.max_bytes;
}

/* The app holding the most queued bytes (the one to shrink first). */
static struct sendq_app *biggest_queue(struct sendq *q)
{
	struct sendq_app *a, *best = NULL;

	for (int k = 0; k < 2; k++) {
		TAILQ_FOREACH(a, k ? &q->first : &q->active, ring)
		{
			if (best == NULL ||
			    a->queued_bytes > best->queued_bytes)
				best = a;
		}
	}
	return best;
}

/* Makes room for len more bytes from a, or says it cannot. */
static int make_room(struct sendq *q, struct sendq_app *a, size_t len,
                     unsigned *dropped)
{
	if (q->lim.policy == SENDQ_REJECT)
		return app_over(q, a, len) || store_over(q, len) ? -ENOBUFS : 0;
	/* Drop-oldest: the app's own share first ... */
	while (app_over(q, a, len)) {
		if (!evict_oldest(q, a))
			return -ENOBUFS;
		(*dropped)++;
	}
	/* ... then, if the store is full, whoever holds the most. */
	while (store_over(q, len)) {
		struct sendq_app *big = biggest_queue(q);

		if (big == NULL || !evict_oldest(q, big))
			return -ENOBUFS;
		if (big == a)
			(*dropped)++;
	}
	return 0;
}

int sendq_push(struct sendq *q, struct sendq_app *a, const void *data,
               size_t len, const struct sendq_msg *meta, unsigned *ret_dropped)
{
	unsigned dropped = 0;
	struct msg *m;
	int r;

	if (ret_dropped)
		*ret_dropped = 0;
	if (len > q->lim.max_app_bytes || len > q->lim.max_bytes) {
		q->st.rejected++;
		return -EMSGSIZE;
	}
	m = malloc(sizeof(*m) + len);
	if (m == NULL)
		return -ENOMEM;
	r = make_room(q, a, len, &dropped);
	if (ret_dropped)
		*ret_dropped = dropped;
	if (r < 0) {
		free(m);
		q->st.rejected++;
		return r;
	}
	memcpy(m->bytes, data, len);
	m->app = a;
	m->seq = 0;
	m->pub = meta ? *meta : (struct sendq_msg){0};
	m->handed_before = m->pub.maybe_sent;
	m->pub.data = m->bytes;
	m->pub.len = len;
	TAILQ_INSERT_TAIL(&a->fifo, m, entry);
	if (a->queued + a->in_flight == 0)
		q->st.apps++;
	a->queued++;
	a->queued_bytes += len;
	q->st.queued++;
	q->st.queued_bytes += len;
	q->st.pushed++;
	activate(q, a, false);
	return 0;
}

/* ---- writing: deficit round robin ---- */

const struct sendq_msg *sendq_peek(struct sendq *q)
{
	struct sendq_app *a;

	struct app_ring *r;

	if (q->peeked)
		return &q->peeked->pub;
	/* Apps marked first (emits restored from before a restart: older
	 * than anything accepted since) go before every other. */
	r = TAILQ_EMPTY(&q->first) ? &q->active : &q->first;
	while ((a = TAILQ_FIRST(r)) != NULL) {
		struct msg *m = TAILQ_FIRST(&a->fifo);

		if (!a->in_turn) {
			a->in_turn = true;
			a->deficit += (uint64_t)q->lim.quantum * a->weight;
		}
		if (m->pub.len <= a->deficit) {
			q->peeked = m;
			return &m->pub;
		}
		/* Its turn is over: the rest waits for the next round. */
		a->in_turn = false;
		TAILQ_REMOVE(r, a, ring);
		TAILQ_INSERT_TAIL(r, a, ring);
	}
	return NULL;
}

const struct sendq_msg *sendq_peek_idle(struct sendq *q, size_t max_len)
{
	struct sendq_app *a;

	/* Restored emits are older than anything else: nobody overtakes
	 * them, not even through the reserve. */
	if (!TAILQ_EMPTY(&q->first))
		return NULL;
	TAILQ_FOREACH(a, &q->active, ring)
	{
		struct msg *m = TAILQ_FIRST(&a->fifo);

		if (a->in_flight == 0 && m->pub.len <= max_len) {
			q->peeked = m;
			return &m->pub;
		}
	}
	return NULL;
}

uint64_t sendq_hand(struct sendq *q)
{
	struct msg *m = q->peeked;
	struct sendq_app *a;

	if (m == NULL)
		return 0;
	q->peeked = NULL;
	a = m->app;
	TAILQ_REMOVE(&a->fifo, m, entry);
	/* A message taken through sendq_peek_idle() may exceed the deficit:
	 * the app's turn is simply used up. */
	a->deficit = a->deficit > m->pub.len ? a->deficit - m->pub.len : 0;
	a->queued--;
	a->queued_bytes -= m->pub.len;
	a->in_flight++;
	a->in_flight_bytes += m->pub.len;
	q->st.queued--;
	q->st.queued_bytes -= m->pub.len;
	q->st.in_flight++;
	q->st.in_flight_bytes += m->pub.len;
	q->st.handed++;
	if (m->handed_before)
		q->st.resent++;
	m->handed_before = true;
	m->seq = q->next_seq++;
	TAILQ_INSERT_TAIL(&q->in_flight, m, entry);
	if (TAILQ_EMPTY(&a->fifo))
		deactivate(q, a);
	return m->seq;
}

uint64_t sendq_next_seq(const struct sendq *q)
{
	return q->next_seq;
}

size_t sendq_confirm(struct sendq *q, uint64_t seq)
{
	struct msg *m;
	size_t n = 0;

	while ((m = TAILQ_FIRST(&q->in_flight)) != NULL && m->seq <= seq) {
		struct sendq_app *a = m->app;

		TAILQ_REMOVE(&q->in_flight, m, entry);
		a->in_flight--;
		a->in_flight_bytes -= m->pub.len;
		q->st.in_flight--;
		q->st.in_flight_bytes -= m->pub.len;
		q->st.confirmed++;
		if (a->queued + a->in_flight == 0)
			q->st.apps--;
		if (q->cb.confirmed)
			q->cb.confirmed(a->owner, &m->pub, q->userdata);
		free(m);
		maybe_free_app(q, a);
		n++;
	}
	return n;
}

size_t sendq_requeue(struct sendq *q)
{
	struct msg *m;
	size_t n = 0;

	q->peeked = NULL;
	/* Newest first, each to the head of its FIFO: per-app order holds,
	 * and the app of the oldest lands at the head of the ring. */
	while ((m = TAILQ_LAST(&q->in_flight, msg_list)) != NULL) {
		struct sendq_app *a = m->app;

		TAILQ_REMOVE(&q->in_flight, m, entry);
		TAILQ_INSERT_HEAD(&a->fifo, m, entry);
		a->in_flight--;
		a->in_flight_bytes -= m->pub.len;
		a->queued++;
		a->queued_bytes += m->pub.len;
		q->st.in_flight--;
		q->st.in_flight_bytes -= m->pub.len;
		q->st.queued++;
		q->st.queued_bytes += m->pub.len;
		if (a->active) {
			TAILQ_REMOVE(ring_of(q, a), a, ring);
			a->active = false;
		}
		activate(q, a, true);
		n++;
	}
	return n;
}

/* ---- figures ---- */

void sendq_get_stats(const struct sendq *q, struct sendq_stats *ret)
{
	*ret = q->st;
}

size_t sendq_in_flight(const struct sendq *q, uint64_t *ret_bytes)
{
	*ret_bytes = q->st.in_flight_bytes;
	return q->st.in_flight;
}

size_t sendq_held(const struct sendq *q)
{
	return q->st.queued + q->st.in_flight;
}

size_t sendq_top(const struct sendq *q, struct sendq_talker *out, size_t n)
{
	size_t k = 0;

	for (struct sendq_app *a = LIST_FIRST(&q->apps); a;
	     a = LIST_NEXT(a, all)) {
		struct sendq_talker t = {
		        .id = a->id,
		        .messages = a->queued + a->in_flight,
		        .bytes = a->queued_bytes + a->in_flight_bytes,
		};
		size_t i;

		if (t.messages == 0 || n == 0)
			continue;
		/* insertion into a list kept sorted, most bytes first */
		if (k < n)
			k++;
		else if (t.bytes <= out[n - 1].bytes)
			continue;
		for (i = k - 1; i > 0 && out[i - 1].bytes < t.bytes; i--)
			out[i] = out[i - 1];
		out[i] = t;
	}
	return k;
}

/*
 * The store of accepted emits (see sendq.h).
 *
 * One allocation per message (its header and its bytes).  A message is on
 * exactly one list: its app's FIFO while queued, the store's in-flight
 * list (hand-off order) while written and unconfirmed.  Apps with queued
 * messages are on the active ring that deficit round robin walks: the app
 * at its head is the one whose turn it is.
 *
 * The header is kept small, since a store can hold a million messages
 * (the benchmark queues 1,000,000): 32 bytes, plus 8 for a spool id when
 * there is one.  Both lists are singly linked (every operation is at the
 * head or the tail; requeue walks the in-flight list front to back), and
 * a message in flight has no number of its own: the list holds a run of
 * consecutive numbers, the last one next_seq - 1.  What the caller sees
 * (struct sendq_msg) is filled in from the header on demand.
 *
 * Spare blocks: pushes and confirmations come in bursts of hundreds (an
 * app's socket read; a PONG confirming a window), far more than the
 * allocator's per-thread cache keeps, so most pushes took the allocator's
 * slow path.  Up to SPARE_MAX freed blocks of at most SPARE_SIZE usable
 * bytes are kept and reused by the next pushes (a block is taken when it
 * is big enough); the rest go back to malloc.  That is at most 256 KiB,
 * memory a heap keeps after free() anyway.
 */
#include <errno.h>
#include <malloc.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>

#include "sendq.h"

#define DEFAULT_QUANTUM 1024
#define SPARE_MAX       1024
#define SPARE_SIZE      256

enum {
	M_WANT_REPLY = 1 << 0,
	M_MAYBE_SENT = 1 << 1,
	M_HANDED_BEFORE = 1 << 2, /* written once already: a resend next */
	M_SPOOL = 1 << 3,         /* bytes start with the spool id */
};

struct msg {
	struct msg *next; /* on app->fifo or q->in_flight */
	struct sendq_app *app;
	uint32_t len;
	uint32_t tag;
	uint32_t reply_id;
	uint32_t flags;
	uint8_t bytes[]; /* [spool id, 8 bytes,] then the message */
};

struct msg_list {
	struct msg *head, *tail;
};

struct sendq_app {
	TAILQ_ENTRY(sendq_app) ring; /* on its ring while it has queued */
	LIST_ENTRY(sendq_app) all;
	struct msg_list fifo;
	struct msg_list requeued;       /* sendq_requeue()'s, for a moment */
	struct sendq_app *requeue_next; /* the apps that have some */
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
	struct sendq_msg view; /* what sendq_peek() returns */
	uint64_t next_seq;
	struct msg *spare; /* freed blocks for the next pushes, by next */
	size_t n_spare;
	size_t napps;
	struct sendq_stats st; /* st.apps: apps holding anything */
};

/* ---- messages and their lists ---- */

static const uint8_t *msg_data(const struct msg *m)
{
	return m->bytes + (m->flags & M_SPOOL ? sizeof(uint64_t) : 0);
}

/* The caller's view of m. */
static struct sendq_msg view_of(const struct msg *m)
{
	struct sendq_msg v = {
	        .data = msg_data(m),
	        .len = m->len,
	        .tag = m->tag,
	        .reply_id = m->reply_id,
	        .want_reply = m->flags & M_WANT_REPLY,
	        .maybe_sent = m->flags & M_MAYBE_SENT,
	};

	if (m->flags & M_SPOOL)
		memcpy(&v.spool_id, m->bytes, sizeof(v.spool_id));
	return v;
}

/* A block for a message of size bytes (header included). */
static struct msg *msg_alloc(struct sendq *q, size_t size)
{
	struct msg *m = q->spare;

	if (m != NULL && size <= SPARE_SIZE && malloc_usable_size(m) >= size) {
		q->spare = m->next;
		q->n_spare--;
		return m;
	}
	return malloc(size);
}

static void msg_free(struct sendq *q, struct msg *m)
{
	if (q->n_spare < SPARE_MAX && malloc_usable_size(m) <= SPARE_SIZE) {
		m->next = q->spare;
		q->spare = m;
		q->n_spare++;
		return;
	}
	free(m);
}

static void list_push_tail(struct msg_list *l, struct msg *m)
{
	m->next = NULL;
	if (l->tail)
		l->tail->next = m;
	else
		l->head = m;
	l->tail = m;
}

static struct msg *list_pop_head(struct msg_list *l)
{
	struct msg *m = l->head;

	if (m == NULL)
		return NULL;
	l->head = m->next;
	if (l->head == NULL)
		l->tail = NULL;
	m->next = NULL;
	return m;
}

/* Puts all of from before the messages of to; from ends empty. */
static void list_prepend(struct msg_list *to, struct msg_list *from)
{
	if (from->head == NULL)
		return;
	from->tail->next = to->head;
	if (to->tail == NULL)
		to->tail = from->tail;
	to->head = from->head;
	from->head = from->tail = NULL;
}

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
	q->next_seq = 1;
	*ret = q;
	return 0;
}

static void free_list(struct msg_list *l)
{
	struct msg *m;

	while ((m = list_pop_head(l)) != NULL)
		free(m);
}

void sendq_free(struct sendq *q)
{
	struct sendq_app *a;
	struct msg *m;

	if (q == NULL)
		return;
	free_list(&q->in_flight);
	while ((m = q->spare) != NULL) {
		q->spare = m->next;
		free(m);
	}
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

uint64_t sendq_app_queued_bytes(const struct sendq_app *a)
{
	return a->queued_bytes;
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
	struct msg *m = list_pop_head(&a->fifo);
	struct sendq_msg v;

	if (m == NULL)
		return false;
	if (q->peeked == m)
		q->peeked = NULL;
	a->queued--;
	a->queued_bytes -= m->len;
	q->st.queued--;
	q->st.queued_bytes -= m->len;
	q->st.dropped++;
	if (a->queued + a->in_flight == 0)
		q->st.apps--;
	if (a->fifo.head == NULL)
		deactivate(q, a);
	v = view_of(m);
	if (q->cb.dropped)
		q->cb.dropped(a->owner, &v, q->userdata);
	msg_free(q, m);
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
	size_t extra = meta && meta->spool_id ? sizeof(uint64_t) : 0;
	struct msg *m;
	int r;

	if (ret_dropped)
		*ret_dropped = 0;
	if (len > q->lim.max_app_bytes || len > q->lim.max_bytes ||
	    len > UINT32_MAX) {
		q->st.rejected++;
		return -EMSGSIZE;
	}
	m = msg_alloc(q, sizeof(*m) + extra + len);
	if (m == NULL)
		return -ENOMEM;
	r = make_room(q, a, len, &dropped);
	if (ret_dropped)
		*ret_dropped = dropped;
	if (r < 0) {
		msg_free(q, m);
		q->st.rejected++;
		return r;
	}
	*m = (struct msg){.app = a, .len = (uint32_t)len};
	if (meta) {
		m->tag = meta->tag;
		m->reply_id = meta->reply_id;
		if (meta->want_reply)
			m->flags |= M_WANT_REPLY;
		if (meta->maybe_sent)
			m->flags |= M_MAYBE_SENT | M_HANDED_BEFORE;
		if (extra) {
			m->flags |= M_SPOOL;
			memcpy(m->bytes, &meta->spool_id, sizeof(uint64_t));
		}
	}
	memcpy(m->bytes + extra, data, len);
	list_push_tail(&a->fifo, m);
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
		return &q->view;
	/* Apps marked first (emits restored from before a restart: older
	 * than anything accepted since) go before every other. */
	r = TAILQ_EMPTY(&q->first) ? &q->active : &q->first;
	while ((a = TAILQ_FIRST(r)) != NULL) {
		struct msg *m = a->fifo.head;

		if (!a->in_turn) {
			a->in_turn = true;
			a->deficit += (uint64_t)q->lim.quantum * a->weight;
		}
		if (m->len <= a->deficit) {
			q->peeked = m;
			q->view = view_of(m);
			return &q->view;
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
		struct msg *m = a->fifo.head;

		if (a->in_flight == 0 && m->len <= max_len) {
			q->peeked = m;
			q->view = view_of(m);
			return &q->view;
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
	(void)list_pop_head(&a->fifo); /* m: the peeked one is the head */
	/* A message taken through sendq_peek_idle() may exceed the deficit:
	 * the app's turn is simply used up. */
	a->deficit = a->deficit > m->len ? a->deficit - m->len : 0;
	a->queued--;
	a->queued_bytes -= m->len;
	a->in_flight++;
	a->in_flight_bytes += m->len;
	q->st.queued--;
	q->st.queued_bytes -= m->len;
	q->st.in_flight++;
	q->st.in_flight_bytes += m->len;
	q->st.handed++;
	if (m->flags & M_HANDED_BEFORE)
		q->st.resent++;
	m->flags |= M_HANDED_BEFORE;
	list_push_tail(&q->in_flight, m);
	if (a->fifo.head == NULL)
		deactivate(q, a);
	return q->next_seq++;
}

uint64_t sendq_next_seq(const struct sendq *q)
{
	return q->next_seq;
}

size_t sendq_confirm(struct sendq *q, uint64_t seq)
{
	size_t n = 0;

	/* The in-flight list holds the numbers next_seq - in_flight up to
	 * next_seq - 1, oldest first. */
	while (q->st.in_flight > 0 && q->next_seq - q->st.in_flight <= seq) {
		struct msg *m = list_pop_head(&q->in_flight);
		struct sendq_app *a = m->app;
		struct sendq_msg v;

		a->in_flight--;
		a->in_flight_bytes -= m->len;
		q->st.in_flight--;
		q->st.in_flight_bytes -= m->len;
		q->st.confirmed++;
		if (a->queued + a->in_flight == 0)
			q->st.apps--;
		v = view_of(m);
		if (q->cb.confirmed)
			q->cb.confirmed(a->owner, &v, q->userdata);
		msg_free(q, m);
		maybe_free_app(q, a);
		n++;
	}
	return n;
}

size_t sendq_requeue(struct sendq *q)
{
	struct sendq_app *apps = NULL, *a;
	struct msg *m;
	size_t n = 0;

	q->peeked = NULL;
	/* Oldest first, each to its app's side list, in order; the apps in
	 * the order their oldest message was handed, last first. */
	while ((m = list_pop_head(&q->in_flight)) != NULL) {
		a = m->app;
		if (a->requeued.head == NULL) {
			a->requeue_next = apps;
			apps = a;
		}
		list_push_tail(&a->requeued, m);
		a->in_flight--;
		a->in_flight_bytes -= m->len;
		a->queued++;
		a->queued_bytes += m->len;
		q->st.in_flight--;
		q->st.in_flight_bytes -= m->len;
		q->st.queued++;
		q->st.queued_bytes += m->len;
		n++;
	}
	/* Each side list goes before its app's FIFO: per-app order holds.
	 * Each app goes to the head of the ring, the app of the oldest
	 * message last, so that it is first. */
	while ((a = apps) != NULL) {
		apps = a->requeue_next;
		a->requeue_next = NULL;
		list_prepend(&a->fifo, &a->requeued);
		if (a->active) {
			TAILQ_REMOVE(ring_of(q, a), a, ring);
			a->active = false;
		}
		activate(q, a, true);
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

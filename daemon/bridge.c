/*
 * The thread bridge: two locked queues, an eventfd to wake the main thread
 * and a hook to wake the other one.  bridge.h says how it is used and why
 * the main thread reads the eventfd before it takes the queue.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <event2/event.h>

#include "bridge.h"

struct queue {
	struct bridge_item *head, **tail;
	size_t bytes;
};

struct bridge {
	struct bridge_ops ops;
	void *userdata;
	size_t low_water;
	int efd;
	struct event *ev;
	struct event *wake_ev; /* runs wake_other once the callback returns */

	/* Main thread only. */
	bool dispatching, freeing;
	bool wake_pending; /* wake_ev is active */

	pthread_mutex_t lock;
	/* Under lock (bridge_out_bytes() and bridge_in_bytes() read the bytes
	 * without). */
	struct queue out, in, stale;
	bool want_drained; /* a push was refused since the last drained */
	bool drained;      /* drained() to run, for drained_epoch */
	uint64_t drained_epoch;
};

static void queue_init(struct queue *q)
{
	q->head = NULL;
	q->tail = &q->head;
	__atomic_store_n(&q->bytes, 0, __ATOMIC_RELAXED);
}

/* bytes changes under the lock; bridge_out_bytes() and bridge_in_bytes()
 * read it without, so every change is an atomic store. */
static void queue_append(struct queue *q, struct bridge_item *it)
{
	it->next = NULL;
	*q->tail = it;
	q->tail = &it->next;
	__atomic_store_n(&q->bytes, q->bytes + it->len, __ATOMIC_RELAXED);
}

static struct bridge_item *queue_take_head(struct queue *q)
{
	struct bridge_item *it = q->head;

	if (!it)
		return NULL;
	q->head = it->next;
	if (!q->head)
		q->tail = &q->head;
	__atomic_store_n(&q->bytes, q->bytes - it->len, __ATOMIC_RELAXED);
	it->next = NULL;
	return it;
}

static void free_list(struct bridge_item *it, void (*fn)(struct bridge_item *))
{
	struct bridge_item *next;

	for (; it; it = next) {
		next = it->next;
		fn(it);
	}
}

static void wake_main(struct bridge *b)
{
	uint64_t one = 1;

	/* Only fails with EAGAIN when the counter is saturated: then the main
	 * thread has a wakeup pending anyway. */
	if (write(b->efd, &one, sizeof(one)) < 0) {
	}
}

/* Lock held.  Moves the items of epochs before epoch off the out queue;
 * returns those to free (linked by next), keeping the others as stale. */
static struct bridge_item *purge_locked(struct bridge *b, uint64_t epoch)
{
	struct bridge_item *drop = NULL, **drop_tail = &drop, *it;

	while (b->out.head && b->out.head->epoch < epoch) {
		it = queue_take_head(&b->out);
		if (it->keep) {
			queue_append(&b->stale, it);
		} else {
			*drop_tail = it;
			drop_tail = &it->next;
		}
	}
	return drop;
}

static void bridge_release(struct bridge *b)
{
	free_list(b->in.head, b->ops.free_in);
	free_list(b->out.head, b->ops.free_out);
	free_list(b->stale.head, b->ops.free_out);
	if (b->ev)
		event_free(b->ev);
	if (b->wake_ev)
		event_free(b->wake_ev);
	if (b->efd >= 0)
		close(b->efd);
	pthread_mutex_destroy(&b->lock);
	free(b);
}

/* Main thread: the eventfd is readable. */
static void on_wakeup(evutil_socket_t fd, short what, void *arg)
{
	struct bridge *b = arg;
	struct bridge_item *list, *it;
	uint64_t n, drained_epoch;
	bool drained;

	(void)what;
	/* Read first, then take the queue: see bridge.h. */
	if (read(fd, &n, sizeof(n)) < 0) {
	}
	pthread_mutex_lock(&b->lock);
	list = b->in.head;
	queue_init(&b->in);
	drained = b->drained;
	drained_epoch = b->drained_epoch;
	b->drained = false;
	pthread_mutex_unlock(&b->lock);

	b->dispatching = true;
	while ((it = list)) {
		list = it->next;
		it->next = NULL;
		if (!b->freeing)
			b->ops.deliver(it, b->userdata);
		b->ops.free_in(it);
	}
	if (!b->freeing && drained && b->ops.drained)
		b->ops.drained(drained_epoch, b->userdata);
	b->dispatching = false;
	if (b->freeing)
		bridge_release(b);
}

/* Main thread: the wakeup that bridge_out_push() put off. */
static void on_wake_other(evutil_socket_t fd, short what, void *arg)
{
	struct bridge *b = arg;

	(void)fd;
	(void)what;
	b->wake_pending = false;
	b->ops.wake_other(b->userdata);
}

int bridge_new(struct event_base *base, const struct bridge_ops *ops,
               void *userdata, size_t low_water, struct bridge **ret)
{
	struct bridge *b;
	int r;

	if (!base || !ops || !ops->deliver || !ops->free_in || !ops->free_out ||
	    !ret)
		return -EINVAL;
	b = calloc(1, sizeof(*b));
	if (!b)
		return -ENOMEM;
	b->ops = *ops;
	b->userdata = userdata;
	b->low_water = low_water;
	queue_init(&b->out);
	queue_init(&b->in);
	queue_init(&b->stale);
	pthread_mutex_init(&b->lock, NULL);
	b->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (b->efd < 0) {
		r = -errno;
		goto fail;
	}
	b->ev = event_new(base, b->efd, EV_READ | EV_PERSIST, on_wakeup, b);
	if (!b->ev || event_add(b->ev, NULL) < 0) {
		r = -ENOMEM;
		goto fail;
	}
	if (ops->wake_other) {
		b->wake_ev = event_new(base, -1, 0, on_wake_other, b);
		if (!b->wake_ev) {
			r = -ENOMEM;
			goto fail;
		}
	}
	*ret = b;
	return 0;

fail:
	bridge_release(b);
	return r;
}

void bridge_free(struct bridge *b)
{
	if (!b || b->freeing)
		return;
	b->freeing = true;
	/* Inside deliver() on_wakeup() still walks its list: it frees. */
	if (!b->dispatching)
		bridge_release(b);
}

int bridge_out_push(struct bridge *b, struct bridge_item *it, size_t limit)
{
	bool fits, was_empty;

	pthread_mutex_lock(&b->lock);
	was_empty = b->out.head == NULL;
	fits = b->out.bytes <= limit && it->len <= limit - b->out.bytes;
	if (fits)
		queue_append(&b->out, it);
	else {
		b->want_drained = true;
	}
	pthread_mutex_unlock(&b->lock);
	if (!fits)
		return -ENOBUFS;
	/* One wakeup per batch: the other side takes items until the queue
	 * is empty (or asks to be called again), so a queue that was not
	 * empty has a wakeup on its way already.  And the wakeup waits until
	 * the running callback returns: the other thread would otherwise take
	 * the first item at once and leave the queue empty for the second, so
	 * a burst of pushes (the emits of one socket read) would cost a
	 * wakeup each.  A wakeup still pending covers every later push. */
	if (was_empty && b->ops.wake_other && !b->wake_pending) {
		b->wake_pending = true;
		event_active(b->wake_ev, 0, 0);
	}
	return 0;
}

/* Takes the first item of epoch and, while the next ones fit in max_bytes
 * with it, those too (one: max_bytes 0 and !run). */
static struct bridge_item *pop_locked(struct bridge *b, uint64_t epoch,
                                      bool run, size_t max_bytes)
{
	struct bridge_item *head = NULL, **tail = &head;
	size_t bytes = 0;

	while (b->out.head && b->out.head->epoch == epoch) {
		size_t len = b->out.head->len;

		if (head != NULL && (!run || len > max_bytes - bytes))
			break;
		bytes += len;
		*tail = queue_take_head(&b->out);
		tail = &(*tail)->next;
		if (bytes > max_bytes)
			break;
	}
	return head;
}

static struct bridge_item *pop(struct bridge *b, uint64_t epoch, bool run,
                               size_t max_bytes, bool *ret_more)
{
	struct bridge_item *drop, *it;
	bool more, drained;

	pthread_mutex_lock(&b->lock);
	drop = purge_locked(b, epoch);
	it = pop_locked(b, epoch, run, max_bytes);
	more = b->out.head && b->out.head->epoch == epoch;
	drained = b->want_drained && b->out.bytes <= b->low_water;
	if (drained) {
		b->want_drained = false;
		b->drained = true;
		b->drained_epoch = epoch;
	}
	pthread_mutex_unlock(&b->lock);
	if (drained)
		wake_main(b);
	free_list(drop, b->ops.free_out);
	if (ret_more)
		*ret_more = more;
	return it;
}

struct bridge_item *bridge_out_pop(struct bridge *b, uint64_t epoch,
                                   bool *ret_more)
{
	return pop(b, epoch, false, 0, ret_more);
}

struct bridge_item *bridge_out_pop_run(struct bridge *b, uint64_t epoch,
                                       size_t max_bytes, bool *ret_more)
{
	return pop(b, epoch, true, max_bytes, ret_more);
}

void bridge_out_purge(struct bridge *b, uint64_t epoch)
{
	struct bridge_item *drop;

	pthread_mutex_lock(&b->lock);
	drop = purge_locked(b, epoch);
	pthread_mutex_unlock(&b->lock);
	free_list(drop, b->ops.free_out);
}

void bridge_out_flush(struct bridge *b)
{
	struct bridge_item *drop;

	pthread_mutex_lock(&b->lock);
	drop = purge_locked(b, UINT64_MAX);
	b->want_drained = false;
	pthread_mutex_unlock(&b->lock);
	free_list(drop, b->ops.free_out);
}

bool bridge_out_pending(struct bridge *b)
{
	bool pending;

	pthread_mutex_lock(&b->lock);
	pending = b->out.head != NULL;
	pthread_mutex_unlock(&b->lock);
	return pending;
}

size_t bridge_out_bytes(const struct bridge *b)
{
	return __atomic_load_n(&b->out.bytes, __ATOMIC_RELAXED);
}

size_t bridge_in_bytes(const struct bridge *b)
{
	return __atomic_load_n(&b->in.bytes, __ATOMIC_RELAXED);
}

struct bridge_item *bridge_take_stale(struct bridge *b)
{
	struct bridge_item *list;

	pthread_mutex_lock(&b->lock);
	list = b->stale.head;
	queue_init(&b->stale);
	pthread_mutex_unlock(&b->lock);
	return list;
}

int bridge_in_post(struct bridge *b, struct bridge_item *it, size_t limit)
{
	bool fits, was_empty = false;

	pthread_mutex_lock(&b->lock);
	fits = b->in.bytes <= limit && it->len <= limit - b->in.bytes;
	if (fits) {
		was_empty = b->in.head == NULL;
		queue_append(&b->in, it);
	}
	pthread_mutex_unlock(&b->lock);
	if (!fits)
		return -ENOBUFS;
	/* A non-empty queue already has a wakeup on its way. */
	if (was_empty)
		wake_main(b);
	return 0;
}

/*
 * Bounded FIFO of byte messages: a singly linked list with head and tail,
 * one allocation per message holding the header and the bytes.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "outq.h"

struct outq_msg {
	struct outq_msg *next;
	uint32_t tag;
	size_t len;
	unsigned char data[];
};

struct outq {
	struct outq_msg *head;
	struct outq_msg *tail;
	size_t count;
	uint64_t bytes;
	struct outq_limits limits;
	struct outq_counters counters;
	outq_drop_fn drop_cb;
	void *drop_userdata;
};

static int limits_valid(const struct outq_limits *l)
{
	if (!l || l->max_messages == 0 || l->max_bytes == 0)
		return 0;
	return l->policy == OUTQ_REJECT || l->policy == OUTQ_DROP_OLDEST;
}

int outq_new(const struct outq_limits *limits, struct outq **ret)
{
	struct outq *q;

	if (!limits_valid(limits) || !ret)
		return -EINVAL;
	q = calloc(1, sizeof(*q));
	if (!q)
		return -ENOMEM;
	q->limits = *limits;
	*ret = q;
	return 0;
}

/* Unlinks and frees the head; the caller accounts for why. */
static void remove_head(struct outq *q)
{
	struct outq_msg *m = q->head;

	q->head = m->next;
	if (!q->head)
		q->tail = NULL;
	q->count--;
	q->bytes -= m->len;
	free(m);
}

void outq_free(struct outq *q)
{
	if (!q)
		return;
	while (q->head)
		remove_head(q);
	free(q);
}

void outq_set_drop_callback(struct outq *q, outq_drop_fn cb, void *userdata)
{
	q->drop_cb = cb;
	q->drop_userdata = userdata;
}

static int fits(const struct outq *q, size_t len)
{
	/* Written so that a queue already over a shrunken limit cannot
	 * underflow the subtraction. */
	if (q->count >= q->limits.max_messages)
		return 0;
	if (q->bytes > q->limits.max_bytes)
		return 0;
	return len <= q->limits.max_bytes - q->bytes;
}

int outq_push(struct outq *q, const void *data, size_t len, uint32_t tag,
              unsigned *ret_dropped)
{
	struct outq_msg *m;
	unsigned dropped = 0;

	if (len == 0 || !data)
		return -EINVAL;
	if ((uint64_t)len > q->limits.max_bytes) {
		q->counters.rejected++;
		return -EMSGSIZE;
	}
	if (!fits(q, len) && q->limits.policy == OUTQ_REJECT) {
		q->counters.rejected++;
		return -ENOBUFS;
	}
	/* Allocate before evicting, so -ENOMEM leaves the queue intact. */
	if (len > SIZE_MAX - sizeof(*m))
		return -ENOMEM;
	m = malloc(sizeof(*m) + len);
	if (!m)
		return -ENOMEM;
	m->next = NULL;
	m->len = len;
	m->tag = tag;
	memcpy(m->data, data, len);

	/* len <= max_bytes and max_messages >= 1, so an empty queue always
	 * fits: this loop ends. */
	while (!fits(q, len)) {
		if (q->drop_cb)
			q->drop_cb(q->head->data, q->head->len, q->head->tag,
			           q->drop_userdata);
		remove_head(q);
		q->counters.dropped++;
		dropped++;
	}

	if (q->tail)
		q->tail->next = m;
	else
		q->head = m;
	q->tail = m;
	q->count++;
	q->bytes += len;
	q->counters.pushed++;
	if (ret_dropped)
		*ret_dropped = dropped;
	return 0;
}

int outq_unpop(struct outq *q, const void *data, size_t len, uint32_t tag)
{
	struct outq_msg *m;

	if (len == 0 || !data)
		return -EINVAL;
	if (len > SIZE_MAX - sizeof(*m))
		return -ENOMEM;
	m = malloc(sizeof(*m) + len);
	if (!m)
		return -ENOMEM;
	m->len = len;
	m->tag = tag;
	memcpy(m->data, data, len);
	/* No limit applies: this message was accepted once already. */
	m->next = q->head;
	q->head = m;
	if (!q->tail)
		q->tail = m;
	q->count++;
	q->bytes += len;
	q->counters.requeued++;
	return 0;
}

const void *outq_peek(const struct outq *q, size_t *ret_len, uint32_t *ret_tag)
{
	if (!q->head)
		return NULL;
	if (ret_len)
		*ret_len = q->head->len;
	if (ret_tag)
		*ret_tag = q->head->tag;
	return q->head->data;
}

void outq_pop(struct outq *q)
{
	if (!q->head)
		return;
	remove_head(q);
	q->counters.popped++;
}

size_t outq_count(const struct outq *q)
{
	return q->count;
}

uint64_t outq_bytes(const struct outq *q)
{
	return q->bytes;
}

void outq_get_counters(const struct outq *q, struct outq_counters *ret)
{
	*ret = q->counters;
}

void outq_get_limits(const struct outq *q, struct outq_limits *ret)
{
	*ret = q->limits;
}

int outq_set_limits(struct outq *q, const struct outq_limits *limits)
{
	if (!limits_valid(limits))
		return -EINVAL;
	q->limits = *limits;
	return 0;
}

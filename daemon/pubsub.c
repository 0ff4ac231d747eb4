/*
 * Events shared by local apps over the one platform connection (see
 * pubsub.h).
 *
 * - Subscriptions are reference counted per name (subs.c): the first local
 *   subscriber makes dsd subscribe upstream, the last one leaving makes it
 *   unsubscribe.  SUBSCRIBE/UNSUBSCRIBE go out in bulk, batched per loop
 *   iteration, with correlation ids whose acks are tracked.
 * - After every (re)connect the upstream subscriptions are rebuilt from
 *   that state before the queued emits are flushed.
 * - Emits are written at once when OPEN and nothing is waiting, otherwise
 *   queued (outq.c, bounded) and flushed in FIFO order once OPEN again.
 * - Events fan out to every local subscriber of the name; a local emit
 *   also reaches the local subscribers at once, because the platform never
 *   echoes an event to the connection that sent it.
 * - The per-uid quotas (access.c) are checked before anything is queued or
 *   subscribed.  Queued emits are tagged with the sender's uid, so each
 *   uid's share of the queue is known until they leave it (sent or
 *   dropped).
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "access.h"
#include "client.h"
#include "clock.h"
#include "config.h"
#include "ipc_server.h"
#include "ipcproto.h"
#include "json_check.h"
#include "log.h"
#include "pubsub.h"
#include "upstream.h"
#include "wire.h"

#define BULK_NAMES           256
#define PLATFORM_MAX_MESSAGE (1024 * 1024)
/* subs.c's table of names; a per-uid share is half of it by default. */
#define MAX_NAMES 65536

struct pubsub {
	const struct dsd_config *cfg; /* the root's, read at each request */
	struct upstream *up;
	struct access_usage *usage;
	struct pubsub_callbacks cb;
	void *userdata;

	struct outq *queue;
	struct subs *subs;
	struct dsd_client **slots; /* subscriber id -> client */
	uint32_t slot_count, next_slot;
	struct event *subs_flush;
	/* Upstream subscriptions must be rebuilt from the local ones (a new
	 * connection, or a batch that could not be sent). */
	bool subs_rebuild;

	struct pubsub_counters count;
	struct log_ratelimit queue_log, deny_log;
};

static void refuse(struct pubsub_refusal *why, bool quota, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));

static void refuse(struct pubsub_refusal *why, bool quota, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why->text, sizeof(why->text), fmt, ap);
	va_end(ap);
	why->quota = quota;
}

/* ---- subscriber ids ---- */

static struct dsd_client *client_by_slot(struct pubsub *p, uint32_t slot)
{
	return slot < p->slot_count ? p->slots[slot] : NULL;
}

static int attach_slot(struct pubsub *p, struct dsd_client *c)
{
	for (uint32_t i = 0; i < p->slot_count; i++) {
		uint32_t s = (p->next_slot + i) % p->slot_count;

		if (p->slots[s] == NULL) {
			p->slots[s] = c;
			c->slot = s;
			p->next_slot = (s + 1) % p->slot_count;
			return 0;
		}
	}
	return -EUSERS;
}

/* ---- life cycle ---- */

static struct outq_limits queue_limits(const struct dsd_config *cfg)
{
	struct outq_limits l = {
	        .max_messages = cfg->queue_max_messages,
	        .max_bytes = cfg->queue_max_bytes,
	        .policy = cfg->queue_overflow == QUEUE_OVERFLOW_DROP_OLDEST
	                          ? OUTQ_DROP_OLDEST
	                          : OUTQ_REJECT,
	};
	return l;
}

static void on_subs_flush(evutil_socket_t fd, short what, void *userdata);

/* An emit evicted by drop-oldest leaves its sender's share. */
static void on_queue_drop(const void *data, size_t len, uint32_t tag,
                          void *userdata)
{
	struct pubsub *p = userdata;

	(void)data;
	(void)access_usage_add(p->usage, (uid_t)tag, 0, 0, -1, -(int64_t)len);
}

int pubsub_new(struct event_base *base, const struct dsd_config *cfg,
               struct upstream *up, struct access_usage *usage,
               const struct pubsub_callbacks *cb, void *userdata,
               struct pubsub **ret)
{
	struct outq_limits ql = queue_limits(cfg);
	struct subs_limits sl = {
	        .max_names = MAX_NAMES,
	        .max_clients = cfg->max_clients + cfg->reserved_admin_clients,
	        .max_per_client = cfg->max_subscriptions_per_client,
	        .max_name_len = IPC_MAX_NAME,
	};
	struct pubsub *p;
	int r;

	p = calloc(1, sizeof(*p));
	if (p == NULL)
		return -ENOMEM;
	p->cfg = cfg;
	p->up = up;
	p->usage = usage;
	p->cb = *cb;
	p->userdata = userdata;
	p->queue_log = (struct log_ratelimit)LOG_RATELIMIT_INIT(10000, 3);
	p->deny_log = (struct log_ratelimit)LOG_RATELIMIT_INIT(10000, 3);
	r = outq_new(&ql, &p->queue);
	if (r == 0)
		r = subs_new(&sl, &p->subs);
	if (r < 0)
		goto fail;
	outq_set_drop_callback(p->queue, on_queue_drop, p);
	p->slot_count = sl.max_clients;
	p->slots = calloc(p->slot_count, sizeof(*p->slots));
	p->subs_flush = event_new(base, -1, 0, on_subs_flush, p);
	if (p->slots == NULL || p->subs_flush == NULL) {
		r = -ENOMEM;
		goto fail;
	}
	*ret = p;
	return 0;
fail:
	pubsub_free(p);
	return r;
}

void pubsub_free(struct pubsub *p)
{
	if (p == NULL)
		return;
	outq_free(p->queue);
	subs_free(p->subs);
	free(p->slots);
	if (p->subs_flush)
		event_free(p->subs_flush);
	free(p);
}

int pubsub_apply_limits(struct pubsub *p)
{
	struct outq_limits ql = queue_limits(p->cfg);

	return outq_set_limits(p->queue, &ql);
}

size_t pubsub_queue_depth(const struct pubsub *p)
{
	return p ? outq_count(p->queue) : 0;
}

const struct pubsub_counters *pubsub_get_counters(const struct pubsub *p)
{
	return &p->count;
}

const struct outq *pubsub_queue(const struct pubsub *p)
{
	return p->queue;
}

const struct subs *pubsub_subs(const struct pubsub *p)
{
	return p->subs;
}

/* ---- fan-out ---- */

static void send_event(struct pubsub *p, struct dsd_client *c, const char *name,
                       const char *data)
{
	struct ipc_msg m = {.type = IPC_EVENT, .name = name, .data = data};

	if (data != NULL)
		m.data_len = strlen(data);
	if (ipc_client_send(c->ipc, &m) == 0)
		p->count.events_delivered++;
}

static void tell_denied(struct pubsub *p, struct dsd_client *c,
                        const char *name, const char *reason)
{
	struct ipc_msg m = {
	        .type = IPC_SUB_DENIED, .name = name, .text = reason};

	(void)p;
	ipc_client_send(c->ipc, &m);
}

typedef void (*subscriber_fn)(struct pubsub *p, struct dsd_client *c,
                              const char *name, const char *text);

/* Calls fn for every local subscriber of name.  fn may drop a slow client,
 * which changes the registry: walk a copy. */
static void for_each_subscriber(struct pubsub *p, const char *name,
                                subscriber_fn fn, const char *text)
{
	const uint32_t *ids;
	uint32_t copy[64];
	uint32_t *list = copy;
	size_t n;

	ids = subs_subscribers(p->subs, name, &n);
	if (n == 0)
		return;
	if (n > sizeof(copy) / sizeof(copy[0])) {
		list = malloc(n * sizeof(*list));
		if (list == NULL)
			return;
	}
	memcpy(list, ids, n * sizeof(*list));
	for (size_t i = 0; i < n; i++) {
		struct dsd_client *c = client_by_slot(p, list[i]);

		if (c != NULL)
			fn(p, c, name, text);
	}
	if (list != copy)
		free(list);
}

/* ---- upstream subscriptions ---- */

/* Sends one bulk SUBSCRIBE or UNSUBSCRIBE; false when nothing was due. */
static bool send_bulk(struct pubsub *p, enum subs_action action)
{
	const char *names[BULK_NAMES];
	char corr[SUBS_CORR_MAX];
	struct wire_msg m = {.topic = WIRE_TOPIC_EVENT};
	uint8_t *buf;
	size_t size, len;
	int n, r;

	n = subs_take_pending(p->subs, action, names, BULK_NAMES, corr);
	if (n <= 0)
		return false;
	m.action = action == SUBS_SUBSCRIBE ? WIRE_EVENT_SUBSCRIBE
	                                    : WIRE_EVENT_UNSUBSCRIBE;
	m.names = names;
	m.n_names = (size_t)n;
	m.correlation_id = corr;
	if (wire_encoded_size(&m, &size) < 0 || (buf = malloc(size)) == NULL) {
		p->subs_rebuild = true;
		return false;
	}
	r = wire_encode(&m, buf, size, &len);
	if (r == 0)
		r = upstream_send_control(p->up, buf, len);
	if (r < 0) {
		/* Those names now wait for an ack that cannot come: rebuild
		 * the upstream state from the local one once the connection
		 * has room again (acked names draw a harmless
		 * MULTIPLE_SUBSCRIPTIONS). */
		log_warn("could not send %s for %d names: %s; retrying",
		         action == SUBS_SUBSCRIBE ? "SUBSCRIBE" : "UNSUBSCRIBE",
		         n, strerror(-r));
		p->subs_rebuild = true;
	}
	free(buf);
	return r == 0;
}

static void flush_subscriptions(struct pubsub *p)
{
	if (!upstream_is_open(p->up))
		return;
	if (p->subs_rebuild) {
		p->subs_rebuild = false;
		subs_connection_reset(p->subs);
	}
	while (send_bulk(p, SUBS_SUBSCRIBE))
		;
	while (send_bulk(p, SUBS_UNSUBSCRIBE))
		;
}

static void on_subs_flush(evutil_socket_t fd, short what, void *userdata)
{
	(void)fd;
	(void)what;
	flush_subscriptions(userdata);
}

/* Coalesces the subscription changes of one loop iteration into bulk
 * messages. */
static void schedule_subs_flush(struct pubsub *p)
{
	if (upstream_is_open(p->up))
		event_active(p->subs_flush, 0, 0);
}

/* ---- the write queue ---- */

/* Writes queued emits as far as the connection takes them. */
static void flush_queue(struct pubsub *p)
{
	const void *frame;
	size_t len;
	uint32_t tag;

	while ((frame = outq_peek(p->queue, &len, &tag)) != NULL) {
		if (upstream_send(p->up, frame, len) < 0)
			break;
		/* Leaving the queue leaves the sender's share (never
		 * allocates). */
		(void)access_usage_add(p->usage, (uid_t)tag, 0, 0, -1,
		                       -(int64_t)len);
		outq_pop(p->queue);
		p->count.emits_sent++;
	}
	p->cb.queue_changed(p->userdata);
}

void pubsub_drained(struct pubsub *p)
{
	if (p->subs_rebuild)
		flush_subscriptions(p);
	flush_queue(p);
}

struct unsent {
	uint8_t **data;
	size_t *len;
	size_t n, cap;
	bool failed;
};

static void collect_unsent(const uint8_t *data, size_t len, void *userdata)
{
	struct unsent *u = userdata;

	if (u->n == u->cap) {
		size_t cap = u->cap ? 2 * u->cap : 64;
		uint8_t **d = realloc(u->data, cap * sizeof(*d));
		size_t *l = d ? realloc(u->len, cap * sizeof(*l)) : NULL;

		if (d)
			u->data = d;
		if (!d || !l) {
			u->failed = true;
			return;
		}
		u->len = l;
		u->cap = cap;
	}
	u->data[u->n] = malloc(len);
	if (u->data[u->n] == NULL) {
		u->failed = true;
		return;
	}
	memcpy(u->data[u->n], data, len);
	u->len[u->n++] = len;
}

void pubsub_take_back(struct pubsub *p)
{
	struct unsent u = {0};
	size_t n;

	n = upstream_take_unsent(p->up, collect_unsent, &u);
	if (n == 0)
		return;
	/* Older than anything still queued: back to the head, in order. */
	for (size_t i = u.n; i-- > 0;) {
		if (outq_unpop(p->queue, u.data[i], u.len[i], 0) < 0)
			u.failed = true;
		free(u.data[i]);
	}
	free(u.data);
	free(u.len);
	p->count.emits_sent -= u.n;
	p->count.emits_requeued += u.n;
	if (u.failed) {
		p->count.emits_lost += n - u.n;
		log_err("out of memory: %zu unsent emits lost", n - u.n);
	}
	log_info("%zu emits not yet written when the connection closed are "
	         "queued again",
	         u.n);
}

void pubsub_connection_lost(struct pubsub *p)
{
	/* Nothing is subscribed upstream any more; status says so until
	 * the next connection rebuilds it. */
	subs_connection_reset(p->subs);
}

void pubsub_connection_opened(struct pubsub *p)
{
	/* Anything an earlier connection left unwritten is older than what
	 * is queued (normally already taken back when it closed). */
	pubsub_take_back(p);
	/* From state, not from a replay queue: exactly the names local apps
	 * want now, before anything they queued. */
	p->subs_rebuild = true;
	flush_subscriptions(p);
	flush_queue(p);
}

/* ---- requests ---- */

static int check_name(struct dsd_client *c, struct pubsub *p, const char *name,
                      struct pubsub_refusal *why)
{
	if (name == NULL || name[0] == '\0' || strlen(name) > IPC_MAX_NAME) {
		refuse(why, false,
		       "an event name of 1 to 1024 bytes is required");
		return -EINVAL;
	}
	if (c->slot == UINT32_MAX && attach_slot(p, c) < 0) {
		refuse(why, false, "too many clients");
		return -EUSERS;
	}
	return 0;
}

/* Encodes the EMIT frame into a malloc'd buffer, checked against what the
 * platform takes. */
static int encode_emit(const char *name, const char *data, size_t data_len,
                       uint8_t **ret_buf, size_t *ret_len,
                       struct pubsub_refusal *why)
{
	struct wire_msg w = {.topic = WIRE_TOPIC_EVENT,
	                     .action = WIRE_EVENT_EMIT,
	                     .name = name,
	                     .data = data};
	char err[200];
	size_t size;
	uint8_t *buf;
	int r;

	if (data != NULL && data_len > IPC_MAX_DATA) {
		refuse(why, false,
		       "event data over 1 MiB (the platform's limit)");
		return -EMSGSIZE;
	}
	if (data != NULL && !json_check(data, data_len, err, sizeof(err))) {
		refuse(why, false, "invalid JSON data: %s", err);
		return -EINVAL;
	}
	if (wire_encoded_size(&w, &size) < 0) {
		refuse(why, false, "cannot encode the event");
		return -EINVAL;
	}
	/* The whole frame must fit the platform's maxMessageSize (1 MiB by
	 * default), or the server closes the connection on it. */
	if (size > PLATFORM_MAX_MESSAGE) {
		refuse(why, false,
		       "event (name and data) over the platform's 1 MiB "
		       "message limit");
		return -EMSGSIZE;
	}
	buf = malloc(size);
	if (buf == NULL) {
		refuse(why, false, "out of memory");
		return -ENOMEM;
	}
	r = wire_encode(&w, buf, size, ret_len);
	if (r < 0) {
		free(buf);
		refuse(why, false, "cannot encode the event");
		return r;
	}
	*ret_buf = buf;
	return 0;
}

static int enqueue(struct pubsub *p, struct dsd_client *c, const uint8_t *buf,
                   size_t len, struct pubsub_refusal *why)
{
	struct access_count mine = access_usage_get(p->usage, c->peer.uid);
	unsigned dropped = 0;
	int r;

	r = access_check_queue_quota(p->cfg, c->peer.uid, &mine, len, why->text,
	                             sizeof(why->text));
	if (r < 0) {
		why->quota = true;
		return r;
	}
	/* Reserved before the push: the drop callback may give back some of
	 * this uid's own older emits. */
	if (access_usage_add(p->usage, c->peer.uid, 0, 0, 1, (int64_t)len) <
	    0) {
		refuse(why, false, "out of memory");
		return -ENOMEM;
	}
	r = outq_push(p->queue, buf, len, (uint32_t)c->peer.uid, &dropped);
	if (r < 0) {
		(void)access_usage_add(p->usage, c->peer.uid, 0, 0, -1,
		                       -(int64_t)len);
		if (r == -EMSGSIZE)
			refuse(why, false, "event larger than the write queue");
		else
			refuse(why, false,
			       "write queue full (%zu messages, %llu bytes; "
			       "overflow = reject)",
			       outq_count(p->queue),
			       (unsigned long long)outq_bytes(p->queue));
		return r;
	}
	p->count.emits_queued++;
	if (dropped > 0)
		log_full_ratelimited(&p->queue_log, clock_mono_ms(),
		                     LOG_WARNING,
		                     "write queue full: dropped %u oldest "
		                     "emit(s) (overflow = drop-oldest)",
		                     dropped);
	p->cb.queue_changed(p->userdata);
	return IPC_EMIT_QUEUED;
}

int pubsub_emit(struct pubsub *p, struct dsd_client *c, const char *name,
                const char *data, size_t data_len, struct pubsub_refusal *why)
{
	uint8_t *buf;
	size_t len;
	int r;

	r = check_name(c, p, name, why);
	if (r == 0)
		r = encode_emit(name, data, data_len, &buf, &len, why);
	if (r < 0)
		return r;
	/* Straight out only when nothing older is waiting: FIFO order. */
	if (outq_count(p->queue) == 0 && upstream_send(p->up, buf, len) == 0) {
		p->count.emits_sent++;
		r = IPC_EMIT_SENT;
	} else {
		r = enqueue(p, c, buf, len, why);
	}
	free(buf);
	if (r >= 0)
		for_each_subscriber(p, name, send_event, data);
	return r;
}

static bool subscribed(struct pubsub *p, struct dsd_client *c, const char *name)
{
	size_t n;
	const uint32_t *ids = subs_subscribers(p->subs, name, &n);

	for (size_t i = 0; i < n; i++)
		if (ids[i] == c->slot)
			return true;
	return false;
}

int pubsub_subscribe(struct pubsub *p, struct dsd_client *c, const char *name,
                     struct pubsub_refusal *why)
{
	struct access_count mine;
	enum subs_state st;
	size_t refs;
	const char *reason;
	int r;

	r = check_name(c, p, name, why);
	if (r < 0)
		return r;
	mine = access_usage_get(p->usage, c->peer.uid);
	r = access_check_subscription_quota(p->cfg, c->peer.uid, &mine,
	                                    why->text, sizeof(why->text));
	if (r < 0) {
		if (subscribed(p, c, name))
			return 0; /* nothing new */
		why->quota = true;
		return r;
	}
	if (access_usage_add(p->usage, c->peer.uid, 0, 1, 0, 0) < 0) {
		refuse(why, false, "out of memory");
		return -ENOMEM;
	}
	r = subs_add(p->subs, c->slot, name);
	if (r < 0) {
		(void)access_usage_add(p->usage, c->peer.uid, 0, -1, 0, 0);
		switch (r) {
		case -EEXIST:
			return 0;
		case -ENOSPC:
			refuse(why, false,
			       "too many subscriptions for this client (max "
			       "%u)",
			       p->cfg->max_subscriptions_per_client);
			break;
		case -ENOBUFS:
			refuse(why, false, "too many subscribed names");
			break;
		default:
			refuse(why, false, "cannot subscribe: %s",
			       strerror(-r));
			break;
		}
		return r;
	}
	if (r == 1) {
		schedule_subs_flush(p);
		return 0;
	}
	if (subs_get_state(p->subs, name, &st, &refs, &reason) == 0 &&
	    st == SUBS_DENIED) {
		refuse(why, false, "%s", reason);
		return 1;
	}
	return 0;
}

int pubsub_unsubscribe(struct pubsub *p, struct dsd_client *c, const char *name,
                       struct pubsub_refusal *why)
{
	int r = check_name(c, p, name, why);

	if (r < 0)
		return r;
	r = subs_remove(p->subs, c->slot, name);
	if (r == -ENOENT) {
		refuse(why, false, "not subscribed");
		return r;
	}
	(void)access_usage_add(p->usage, c->peer.uid, 0, -1, 0, 0);
	if (r == 1)
		schedule_subs_flush(p);
	return 0;
}

void pubsub_client_gone(struct pubsub *p, struct dsd_client *c)
{
	int n;

	if (c->slot == UINT32_MAX)
		return;
	n = subs_remove_client(p->subs, c->slot, NULL, NULL);
	if (n > 0) {
		(void)access_usage_add(p->usage, c->peer.uid, 0, -n, 0, 0);
		schedule_subs_flush(p);
	}
	p->slots[c->slot] = NULL;
	c->slot = UINT32_MAX;
}

/* ---- from the platform ---- */

static void platform_denied(struct pubsub *p, const struct wire_msg *m)
{
	char reason[160], name[128];

	if (m->name == NULL)
		return;
	log_escape(m->name, strlen(m->name), name, sizeof(name));
	if (!m->has_original_action ||
	    m->original_action != WIRE_EVENT_SUBSCRIBE) {
		p->count.emits_denied++;
		log_full_ratelimited(&p->deny_log, clock_mono_ms(), LOG_WARNING,
		                     "the platform denied an emit of \"%s\"",
		                     name);
		return;
	}
	snprintf(reason, sizeof(reason), "%s by the platform",
	         m->action == WIRE_EVENT_MESSAGE_DENIED ? "subscription denied"
	                                                : "permission error");
	if (subs_denied(p->subs, m->name, reason) < 0)
		return;
	p->count.subs_denied++;
	log_full_ratelimited(&p->deny_log, clock_mono_ms(), LOG_WARNING,
	                     "the platform denied the subscription to \"%s\"",
	                     name);
	for_each_subscriber(p, m->name, tell_denied, reason);
}

void pubsub_platform_event(struct pubsub *p, const struct wire_msg *m)
{
	switch (m->action) {
	case WIRE_EVENT_EMIT:
		if (m->name == NULL)
			return;
		p->count.events_received++;
		for_each_subscriber(p, m->name, send_event, m->data);
		return;
	case WIRE_EVENT_SUBSCRIBE:
	case WIRE_EVENT_UNSUBSCRIBE:
		if (!m->is_ack || m->correlation_id == NULL)
			return;
		if (subs_ack(p->subs, m->correlation_id) < 0)
			log_debug("ack for an unknown correlation id");
		/* An ack can leave work: a name dropped while its SUBSCRIBE
		 * was in flight, or a batch the server mangled (see subs.h). */
		if (subs_pending(p->subs, SUBS_SUBSCRIBE) > 0 ||
		    subs_pending(p->subs, SUBS_UNSUBSCRIBE) > 0)
			schedule_subs_flush(p);
		return;
	case WIRE_EVENT_MESSAGE_DENIED:
	case WIRE_EVENT_MESSAGE_PERMISSION_ERROR:
		platform_denied(p, m);
		return;
	default:
		log_debug("platform: EVENT %s",
		          wire_action_name(m->topic, m->action));
		return;
	}
}

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
 * - Every accepted emit goes into one store (sendq.c), per app, and stays
 *   there until the platform confirms it: written fairly across apps
 *   (deficit round robin) while OPEN, at most a small window ahead of the
 *   last confirmation, then confirmed by the PONG of a PING written after
 *   it (upstream_fence()).  A lost connection puts the unconfirmed ones
 *   back at the head of their apps' queues, to be written again after the
 *   subscriptions are rebuilt.
 * - Events fan out to every local subscriber of the name; a local emit
 *   also reaches the local subscribers at once, because the platform never
 *   echoes an event to the connection that sent it.
 * - The per-uid quotas (access.c) are checked before anything is queued or
 *   subscribed.  Stored emits are tagged with the sender's uid, so each
 *   uid's share is known until they leave the store (confirmed or
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
#include "sendq.h"
#include "upstream.h"
#include "wire.h"

#define BULK_NAMES           256
#define PLATFORM_MAX_MESSAGE (1024 * 1024)
/*
 * What may be written and not yet confirmed.  Small on purpose: the server
 * works through it in a few milliseconds, so an app's event never waits
 * behind much of another's, and the kernel's socket buffer never holds a
 * backlog a stall would take with it.  A fence PING goes out every half
 * window, so writing never stops for a round trip.
 */
#define WINDOW_BYTES    (32 * 1024)
#define WINDOW_MESSAGES 256
/* subs.c's table of names; a per-uid share is half of it by default. */
#define MAX_NAMES 65536

struct pubsub {
	const struct dsd_config *cfg; /* the root's, read at each request */
	struct upstream *up;
	struct access_usage *usage;
	struct pubsub_callbacks cb;
	void *userdata;

	struct sendq *store;
	struct event *fence_ev; /* a PING after what one loop pass wrote */
	uint64_t since_fence;   /* bytes written since the last PING */
	unsigned since_fence_n; /* emits written since the last PING */
	struct subs *subs;
	struct dsd_client **slots; /* subscriber id -> client */
	uint32_t slot_count, next_slot;
	struct event *subs_flush;
	/* Upstream subscriptions must be rebuilt from the local ones (a new
	 * connection, or a batch that could not be sent). */
	bool subs_rebuild;
	bool closed; /* dsd is stopping: no new emits */

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

/* An app's share is half the store: one flooding app always leaves room
 * for the others. */
static struct sendq_limits store_limits(const struct dsd_config *cfg)
{
	struct sendq_limits l = {
	        .max_messages = cfg->queue_max_messages,
	        .max_bytes = cfg->queue_max_bytes,
	        .max_app_messages = (cfg->queue_max_messages + 1) / 2,
	        .max_app_bytes = (cfg->queue_max_bytes + 1) / 2,
	        .policy = cfg->queue_overflow == QUEUE_OVERFLOW_DROP_OLDEST
	                          ? SENDQ_DROP_OLDEST
	                          : SENDQ_REJECT,
	};
	return l;
}

static void on_subs_flush(evutil_socket_t fd, short what, void *userdata);

static void on_fence(evutil_socket_t fd, short what, void *userdata);

/* An emit leaves the store: it leaves its sender's share (never
 * allocates). */
static void leave_share(struct pubsub *p, const struct sendq_msg *m)
{
	(void)access_usage_add(p->usage, (uid_t)m->tag, 0, 0, -1,
	                       -(int64_t)m->len);
}

static void on_store_dropped(void *owner, const struct sendq_msg *m,
                             void *userdata)
{
	(void)owner;
	leave_share(userdata, m);
}

/* Confirmed by the platform: an app that asked is told (IPC_EMIT_CONFIRMED,
 * the id of its EMIT). */
static void on_store_confirmed(void *owner, const struct sendq_msg *m,
                               void *userdata)
{
	struct dsd_client *c = owner;

	leave_share(userdata, m);
	if (m->want_reply && c != NULL) {
		struct ipc_msg n = {.type = IPC_EMIT_CONFIRMED,
		                    .has_id = true,
		                    .id = m->reply_id};

		ipc_client_send(c->ipc, &n);
	}
}

int pubsub_new(struct event_base *base, const struct dsd_config *cfg,
               struct upstream *up, struct access_usage *usage,
               const struct pubsub_callbacks *cb, void *userdata,
               struct pubsub **ret)
{
	static const struct sendq_callbacks store_cb = {
	        .dropped = on_store_dropped,
	        .confirmed = on_store_confirmed,
	};
	struct sendq_limits ql = store_limits(cfg);
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
	r = sendq_new(&ql, &store_cb, p, &p->store);
	if (r == 0)
		r = subs_new(&sl, &p->subs);
	if (r < 0)
		goto fail;
	p->slot_count = sl.max_clients;
	p->slots = calloc(p->slot_count, sizeof(*p->slots));
	p->subs_flush = event_new(base, -1, 0, on_subs_flush, p);
	p->fence_ev = event_new(base, -1, 0, on_fence, p);
	if (p->slots == NULL || p->subs_flush == NULL || p->fence_ev == NULL) {
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
	sendq_free(p->store);
	subs_free(p->subs);
	free(p->slots);
	if (p->subs_flush)
		event_free(p->subs_flush);
	if (p->fence_ev)
		event_free(p->fence_ev);
	free(p);
}

int pubsub_apply_limits(struct pubsub *p)
{
	struct sendq_limits ql = store_limits(p->cfg);

	return sendq_set_limits(p->store, &ql);
}

size_t pubsub_queue_depth(const struct pubsub *p)
{
	return p ? sendq_held(p->store) : 0;
}

const struct pubsub_counters *pubsub_get_counters(const struct pubsub *p)
{
	return &p->count;
}

const struct sendq *pubsub_store(const struct pubsub *p)
{
	return p->store;
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

/* ---- the store: writing and confirming ---- */

static bool window_full(const struct pubsub *p)
{
	uint64_t bytes;
	size_t n = sendq_in_flight(p->store, &bytes);

	return n > 0 && (bytes >= WINDOW_BYTES || n >= WINDOW_MESSAGES);
}

/* Writes what the window and the connection take, fairly across apps. */
static void flush_store(struct pubsub *p)
{
	const struct sendq_msg *m;
	bool wrote = false;

	while (!window_full(p) && (m = sendq_peek(p->store)) != NULL) {
		size_t len = m->len;

		if (upstream_send(p->up, m->data, len,
		                  sendq_next_seq(p->store)) < 0)
			break;
		sendq_hand(p->store);
		wrote = true;
		p->since_fence += len;
		p->since_fence_n++;
		/* A PING every half window keeps the pipe full: the first
		 * half is confirmed while the second is on its way. */
		if (p->since_fence >= WINDOW_BYTES / 2 ||
		    p->since_fence_n >= WINDOW_MESSAGES / 2) {
			p->since_fence = 0;
			p->since_fence_n = 0;
			(void)upstream_fence(p->up);
		}
	}
	/* What this pass wrote is asked to be confirmed once the loop has
	 * nothing else to do: one PING for a whole burst. */
	if (wrote)
		event_active(p->fence_ev, 0, 0);
	p->cb.queue_changed(p->userdata);
}

static void on_fence(evutil_socket_t fd, short what, void *userdata)
{
	struct pubsub *p = userdata;

	(void)fd;
	(void)what;
	p->since_fence = 0;
	p->since_fence_n = 0;
	(void)upstream_fence(p->up);
}

void pubsub_confirmed(struct pubsub *p, uint64_t seq)
{
	if (sendq_confirm(p->store, seq) > 0)
		flush_store(p);
}

void pubsub_drained(struct pubsub *p)
{
	if (p->subs_rebuild)
		flush_subscriptions(p);
	flush_store(p);
}

void pubsub_connection_lost(struct pubsub *p)
{
	size_t n;

	/* Nothing is subscribed upstream any more; status says so until
	 * the next connection rebuilds it. */
	subs_connection_reset(p->subs);
	/* Unconfirmed emits may or may not have arrived: they go again, in
	 * order, on the next connection (the only source of duplicates). */
	n = sendq_requeue(p->store);
	p->count.emits_requeued += n;
	if (n > 0)
		log_info("%zu emits not confirmed when the connection was lost "
		         "will be written again",
		         n);
}

void pubsub_connection_opened(struct pubsub *p)
{
	/* From state, not from a replay queue: exactly the names local apps
	 * want now, before anything they queued. */
	p->subs_rebuild = true;
	flush_subscriptions(p);
	flush_store(p);
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

static int store(struct pubsub *p, struct dsd_client *c, const uint8_t *buf,
                 size_t len, const struct sendq_msg *meta,
                 struct pubsub_refusal *why)
{
	struct access_count mine = access_usage_get(p->usage, c->peer.uid);
	struct sendq_stats st;
	unsigned dropped = 0;
	int r;

	r = access_check_queue_quota(p->cfg, c->peer.uid, &mine, len, why->text,
	                             sizeof(why->text));
	if (r < 0) {
		why->quota = true;
		return r;
	}
	if (c->store_app == NULL &&
	    (c->store_app = sendq_app_new(p->store, c->id, c)) == NULL) {
		refuse(why, false, "out of memory");
		return -ENOMEM;
	}
	/* Reserved before the push: the drop callback may give back some of
	 * this uid's own older emits. */
	if (access_usage_add(p->usage, c->peer.uid, 0, 0, 1, (int64_t)len) <
	    0) {
		refuse(why, false, "out of memory");
		return -ENOMEM;
	}
	r = sendq_push(p->store, c->store_app, buf, len, meta, &dropped);
	if (r < 0) {
		(void)access_usage_add(p->usage, c->peer.uid, 0, 0, -1,
		                       -(int64_t)len);
		sendq_get_stats(p->store, &st);
		if (r == -EMSGSIZE)
			refuse(why, false, "event larger than the write queue");
		else if (r == -ENOBUFS)
			refuse(why, false,
			       "write queue full for this app or for all "
			       "(%zu messages, %llu bytes; overflow = reject)",
			       st.queued + st.in_flight,
			       (unsigned long long)(st.queued_bytes +
			                            st.in_flight_bytes));
		else
			refuse(why, false, "out of memory");
		return r;
	}
	if (dropped > 0)
		log_full_ratelimited(&p->queue_log, clock_mono_ms(),
		                     LOG_WARNING,
		                     "write queue full: dropped %u oldest "
		                     "emit(s) of local client %u (overflow = "
		                     "drop-oldest)",
		                     dropped, c->id);
	return 0;
}

int pubsub_emit(struct pubsub *p, struct dsd_client *c, const char *name,
                const char *data, size_t data_len, uint32_t reply_id,
                bool want_confirm, struct pubsub_refusal *why)
{
	struct sendq_msg meta = {.tag = (uint32_t)c->peer.uid,
	                         .reply_id = reply_id,
	                         .want_reply = want_confirm};
	uint8_t *buf = NULL;
	size_t len = 0;
	int r;

	if (p->closed) {
		refuse(why, false, "dsd is stopping: no more emits");
		return -ESHUTDOWN;
	}
	r = check_name(c, p, name, why);
	if (r == 0)
		r = encode_emit(name, data, data_len, &buf, &len, why);
	if (r < 0)
		return r;
	r = store(p, c, buf, len, &meta, why);
	free(buf);
	if (r < 0)
		return r;
	flush_store(p);
	/* Written already when nothing of this app waits any more. */
	if (sendq_app_queued(c->store_app) == 0) {
		r = IPC_EMIT_SENT;
	} else {
		r = IPC_EMIT_QUEUED;
		p->count.emits_queued++;
	}
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

	/* What it emitted was accepted: it stays until confirmed. */
	sendq_app_release(p->store, c->store_app);
	c->store_app = NULL;
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

void pubsub_close(struct pubsub *p)
{
	p->closed = true;
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

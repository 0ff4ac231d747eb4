/*
 * Events shared by local apps over the one platform connection.
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
 * - [acl] and the per-uid quotas (access.c) are checked before anything
 *   is sent, queued or subscribed.  Queued emits are tagged with the
 *   sender's uid, so each uid's share of the queue is known until they
 *   leave it (sent or dropped).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>
#include <jansson.h>

#include "access.h"
#include "dsd.h"
#include "ipc_server.h"
#include "ipcproto.h"
#include "json_check.h"
#include "log.h"
#include "outq.h"
#include "subs.h"
#include "transport.h"
#include "wire.h"

#define BULK_NAMES           256
#define PLATFORM_MAX_MESSAGE (1024 * 1024)

static struct dsd_client *client_by_slot(struct dsd *d, uint32_t slot)
{
	return slot < d->slot_count ? d->slots[slot] : NULL;
}

static int attach_slot(struct dsd *d, struct dsd_client *c)
{
	for (uint32_t i = 0; i < d->slot_count; i++) {
		uint32_t s = (d->next_slot + i) % d->slot_count;

		if (d->slots[s] == NULL) {
			d->slots[s] = c;
			c->slot = s;
			d->next_slot = (s + 1) % d->slot_count;
			return 0;
		}
	}
	return -EUSERS;
}

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
	struct dsd *d = userdata;

	(void)data;
	(void)access_usage_add(d->usage, (uid_t)tag, 0, 0, -1, -(int64_t)len);
}

int pubsub_new(struct dsd *d)
{
	struct outq_limits ql = queue_limits(&d->cfg);
	struct subs_limits sl = {
	        .max_names = 65536,
	        .max_clients =
	                d->cfg.max_clients + d->cfg.reserved_admin_clients,
	        .max_per_client = d->cfg.max_subscriptions_per_client,
	        .max_name_len = IPC_MAX_NAME,
	};
	int r;

	r = outq_new(&ql, &d->queue);
	if (r < 0)
		return r;
	outq_set_drop_callback(d->queue, on_queue_drop, d);
	r = subs_new(&sl, &d->subs);
	if (r < 0)
		return r;
	d->slot_count = d->cfg.max_clients + d->cfg.reserved_admin_clients;
	d->slots = calloc(d->slot_count, sizeof(*d->slots));
	d->subs_flush = event_new(d->base, -1, 0, on_subs_flush, d);
	if (d->slots == NULL || d->subs_flush == NULL)
		return -ENOMEM;
	return 0;
}

void pubsub_free(struct dsd *d)
{
	outq_free(d->queue);
	subs_free(d->subs);
	free(d->slots);
	if (d->subs_flush)
		event_free(d->subs_flush);
}

int pubsub_apply_limits(struct dsd *d)
{
	struct outq_limits ql = queue_limits(&d->cfg);

	return outq_set_limits(d->queue, &ql);
}

size_t dsd_queue_depth(struct dsd *d)
{
	return d->queue ? outq_count(d->queue) : 0;
}

static void send_event(struct dsd *d, struct dsd_client *c, const char *name,
                       const char *data)
{
	struct ipc_msg m = {.type = IPC_EVENT, .name = name, .data = data};

	if (data != NULL)
		m.data_len = strlen(data);
	if (ipc_client_send(c->ipc, &m) == 0)
		d->count.events_delivered++;
}

typedef void (*subscriber_fn)(struct dsd *d, struct dsd_client *c,
                              const char *name, const char *text);

/* Calls fn for every local subscriber of name.  fn may drop a slow client,
 * which changes the registry: walk a copy. */
static void for_each_subscriber(struct dsd *d, const char *name,
                                subscriber_fn fn, const char *text)
{
	const uint32_t *ids;
	uint32_t copy[64];
	uint32_t *list = copy;
	size_t n;

	ids = subs_subscribers(d->subs, name, &n);
	if (n == 0)
		return;
	if (n > sizeof(copy) / sizeof(copy[0])) {
		list = malloc(n * sizeof(*list));
		if (list == NULL)
			return;
	}
	memcpy(list, ids, n * sizeof(*list));
	for (size_t i = 0; i < n; i++) {
		struct dsd_client *c = client_by_slot(d, list[i]);

		if (c != NULL)
			fn(d, c, name, text);
	}
	if (list != copy)
		free(list);
}

static void tell_denied(struct dsd *d, struct dsd_client *c, const char *name,
                        const char *reason)
{
	struct ipc_msg m = {
	        .type = IPC_SUB_DENIED, .name = name, .text = reason};

	(void)d;
	ipc_client_send(c->ipc, &m);
}

/* Sends one bulk SUBSCRIBE or UNSUBSCRIBE; false when nothing was due. */
static bool send_bulk(struct dsd *d, enum subs_action action)
{
	const char *names[BULK_NAMES];
	char corr[SUBS_CORR_MAX];
	struct wire_msg m = {.topic = WIRE_TOPIC_EVENT};
	uint8_t *buf;
	size_t size, len;
	int n, r;

	n = subs_take_pending(d->subs, action, names, BULK_NAMES, corr);
	if (n <= 0)
		return false;
	m.action = action == SUBS_SUBSCRIBE ? WIRE_EVENT_SUBSCRIBE
	                                    : WIRE_EVENT_UNSUBSCRIBE;
	m.names = names;
	m.n_names = (size_t)n;
	m.correlation_id = corr;
	if (wire_encoded_size(&m, &size) < 0 || (buf = malloc(size)) == NULL) {
		d->subs_rebuild = true;
		return false;
	}
	r = wire_encode(&m, buf, size, &len);
	if (r == 0)
		r = upstream_send_control(d, buf, len);
	if (r < 0) {
		/* Those names now wait for an ack that cannot come: rebuild
		 * the upstream state from the local one once the connection
		 * has room again (acked names draw a harmless
		 * MULTIPLE_SUBSCRIPTIONS). */
		log_warn("could not send %s for %d names: %s; retrying",
		         action == SUBS_SUBSCRIBE ? "SUBSCRIBE" : "UNSUBSCRIBE",
		         n, strerror(-r));
		d->subs_rebuild = true;
	}
	free(buf);
	return r == 0;
}

static void flush_subscriptions(struct dsd *d)
{
	if (!conn_is_open(&d->conn))
		return;
	if (d->subs_rebuild) {
		d->subs_rebuild = false;
		subs_connection_reset(d->subs);
	}
	while (send_bulk(d, SUBS_SUBSCRIBE))
		;
	while (send_bulk(d, SUBS_UNSUBSCRIBE))
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
static void schedule_subs_flush(struct dsd *d)
{
	if (conn_is_open(&d->conn))
		event_active(d->subs_flush, 0, 0);
}

void pubsub_drained(struct dsd *d)
{
	if (d->subs_rebuild)
		flush_subscriptions(d);
	pubsub_flush(d);
}

void pubsub_flush(struct dsd *d)
{
	const void *frame;
	size_t len;
	uint32_t tag;

	while ((frame = outq_peek(d->queue, &len, &tag)) != NULL) {
		if (upstream_send(d, frame, len) < 0)
			return;
		outq_pop(d->queue);
		(void)access_usage_add(d->usage, (uid_t)tag, 0, 0, -1,
		                       -(int64_t)len);
		d->count.emits_sent++;
	}
	dsd_notify_status_soon(d);
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

void pubsub_take_back_unsent(struct dsd *d, struct transport *t)
{
	struct unsent u = {0};
	size_t n;

	n = transport_take_unsent(t, collect_unsent, &u);
	if (n == 0)
		return;
	/* Older than anything still queued: back to the head, in order.
	 * They left their senders' shares when they were sent, and count
	 * against nobody now. */
	for (size_t i = u.n; i-- > 0;) {
		if (outq_unpop(d->queue, u.data[i], u.len[i],
		               (uint32_t)ACCESS_NO_UID) < 0)
			u.failed = true;
		free(u.data[i]);
	}
	free(u.data);
	free(u.len);
	d->count.emits_sent -= u.n;
	d->count.emits_requeued += u.n;
	if (u.failed) {
		d->count.emits_dropped += n - u.n;
		log_err("out of memory: %zu unsent emits lost", n - u.n);
	}
	log_info("%zu emits not yet written when the connection closed are "
	         "queued again",
	         u.n);
}

void pubsub_connection_lost(struct dsd *d)
{
	/* Nothing is subscribed upstream any more; status says so until
	 * the next connection rebuilds it. */
	subs_connection_reset(d->subs);
}

void upstream_connection_opened(struct dsd *d)
{
	/* Anything an earlier connection left unwritten is older than what
	 * is queued (normally already taken back when it closed). */
	pubsub_take_back_unsent(d, d->transport);
	/* From state, not from a replay queue: exactly the names local apps
	 * want now, before anything they queued. */
	d->subs_rebuild = true;
	flush_subscriptions(d);
	pubsub_flush(d);
}

static bool valid_json(const char *data, size_t len, char *err, size_t errlen)
{
	char why[200];

	if (json_check(data, len, why, sizeof(why)))
		return true;
	snprintf(err, errlen, "invalid JSON data: %s", why);
	return false;
}

static void emit(struct dsd *d, struct dsd_client *c, const struct ipc_msg *m)
{
	struct wire_msg w = {
	        .topic = WIRE_TOPIC_EVENT,
	        .action = WIRE_EVENT_EMIT,
	        .name = m->name,
	        .data = m->data,
	};
	struct ipc_msg reply = {.type = IPC_EMIT_REPLY,
	                        .has_id = true,
	                        .id = m->id,
	                        .has_code = true};
	char err[256];
	uint8_t *buf;
	size_t size, len;
	unsigned dropped = 0;
	int r;

	if (m->data != NULL && m->data_len > IPC_MAX_DATA) {
		control_reply_error(
		        c->ipc, m->id, -EMSGSIZE,
		        "event data over 1 MiB (the platform's limit)");
		return;
	}
	if (m->data != NULL &&
	    !valid_json(m->data, m->data_len, err, sizeof(err))) {
		control_reply_error(c->ipc, m->id, -EINVAL, err);
		return;
	}
	if (wire_encoded_size(&w, &size) < 0) {
		control_reply_error(c->ipc, m->id, -EINVAL,
		                    "cannot encode the event");
		return;
	}
	/* The whole frame must fit the platform's maxMessageSize (1 MiB by
	 * default), or the server closes the connection on it. */
	if (size > PLATFORM_MAX_MESSAGE) {
		control_reply_error(c->ipc, m->id, -EMSGSIZE,
		                    "event (name and data) over the platform's "
		                    "1 MiB message limit");
		return;
	}
	buf = malloc(size);
	if (buf == NULL) {
		control_reply_error(c->ipc, m->id, -ENOMEM, "out of memory");
		return;
	}
	r = wire_encode(&w, buf, size, &len);
	if (r < 0) {
		free(buf);
		control_reply_error(c->ipc, m->id, r,
		                    "cannot encode the event");
		return;
	}
	/* Straight out only when nothing older is waiting: FIFO order. */
	if (outq_count(d->queue) == 0 && upstream_send(d, buf, len) == 0) {
		d->count.emits_sent++;
		reply.code = IPC_EMIT_SENT;
	} else {
		struct access_count mine =
		        access_usage_get(d->usage, c->peer.uid);

		r = access_check_queue_quota(&d->cfg, c->peer.uid, &mine, len,
		                             err, sizeof(err));
		if (r < 0) {
			free(buf);
			control_deny(d, c, m, r, err);
			return;
		}
		/* Reserved before the push: the drop callback may give back
		 * some of this uid's own older emits. */
		if (access_usage_add(d->usage, c->peer.uid, 0, 0, 1,
		                     (int64_t)len) < 0) {
			free(buf);
			control_reply_error(c->ipc, m->id, -ENOMEM,
			                    "out of memory");
			return;
		}
		r = outq_push(d->queue, buf, len, (uint32_t)c->peer.uid,
		              &dropped);
		if (r < 0) {
			(void)access_usage_add(d->usage, c->peer.uid, 0, 0, -1,
			                       -(int64_t)len);
			d->count.emits_rejected++;
			snprintf(err, sizeof(err),
			         r == -EMSGSIZE
			                 ? "event larger than the write queue"
			                 : "write queue full (%zu messages, "
			                   "%llu "
			                   "bytes; overflow = reject)",
			         outq_count(d->queue),
			         (unsigned long long)outq_bytes(d->queue));
			free(buf);
			control_reply_error(c->ipc, m->id, r, err);
			return;
		}
		d->count.emits_queued++;
		d->count.emits_dropped += dropped;
		if (dropped > 0)
			log_full_ratelimited(
			        &d->queue_log, dsd_now(), LOG_WARNING,
			        "write queue full: dropped %u oldest "
			        "emit(s) (overflow = drop-oldest)",
			        dropped);
		reply.code = IPC_EMIT_QUEUED;
		dsd_notify_status_soon(d);
	}
	free(buf);
	ipc_client_send(c->ipc, &reply);
	for_each_subscriber(d, m->name, send_event, m->data);
}

static bool subscribed(struct dsd *d, struct dsd_client *c, const char *name)
{
	size_t n;
	const uint32_t *ids = subs_subscribers(d->subs, name, &n);

	for (size_t i = 0; i < n; i++)
		if (ids[i] == c->slot)
			return true;
	return false;
}

static void subscribe(struct dsd *d, struct dsd_client *c,
                      const struct ipc_msg *m)
{
	struct access_count mine = access_usage_get(d->usage, c->peer.uid);
	enum subs_state st;
	size_t refs;
	const char *reason;
	char err[160];
	int r;

	r = access_check_subscription_quota(&d->cfg, c->peer.uid, &mine, err,
	                                    sizeof(err));
	if (r < 0 && subscribed(d, c, m->name)) {
		control_reply_ok(c->ipc, m->id); /* nothing new */
		return;
	}
	if (r < 0) {
		control_deny(d, c, m, r, err);
		return;
	}
	if (access_usage_add(d->usage, c->peer.uid, 0, 1, 0, 0) < 0) {
		control_reply_error(c->ipc, m->id, -ENOMEM, "out of memory");
		return;
	}
	r = subs_add(d->subs, c->slot, m->name);
	if (r < 0) {
		(void)access_usage_add(d->usage, c->peer.uid, 0, -1, 0, 0);
		switch (r) {
		case -EEXIST:
			control_reply_ok(c->ipc, m->id);
			return;
		case -ENOSPC:
			snprintf(err, sizeof(err),
			         "too many subscriptions for this client (max "
			         "%u)",
			         d->cfg.max_subscriptions_per_client);
			break;
		case -ENOBUFS:
			snprintf(err, sizeof(err), "too many subscribed names");
			break;
		default:
			snprintf(err, sizeof(err), "cannot subscribe: %s",
			         strerror(-r));
			break;
		}
		control_reply_error(c->ipc, m->id, r, err);
		return;
	}
	control_reply_ok(c->ipc, m->id);
	if (r == 1)
		schedule_subs_flush(d);
	else if (subs_get_state(d->subs, m->name, &st, &refs, &reason) == 0 &&
	         st == SUBS_DENIED)
		tell_denied(d, c, m->name, reason);
}

static void unsubscribe(struct dsd *d, struct dsd_client *c,
                        const struct ipc_msg *m)
{
	int r = subs_remove(d->subs, c->slot, m->name);

	if (r == -ENOENT) {
		control_reply_error(c->ipc, m->id, r, "not subscribed");
		return;
	}
	(void)access_usage_add(d->usage, c->peer.uid, 0, -1, 0, 0);
	control_reply_ok(c->ipc, m->id);
	if (r == 1)
		schedule_subs_flush(d);
}

void pubsub_request(struct dsd *d, struct dsd_client *c,
                    const struct ipc_msg *m)
{
	if (m->name == NULL || m->name[0] == '\0' ||
	    strlen(m->name) > IPC_MAX_NAME) {
		control_reply_error(
		        c->ipc, m->id, -EINVAL,
		        "an event name of 1 to 1024 bytes is required");
		return;
	}
	if (c->slot == UINT32_MAX && attach_slot(d, c) < 0) {
		control_reply_error(c->ipc, m->id, -EUSERS, "too many clients");
		return;
	}
	if (m->type == IPC_EMIT || m->type == IPC_SUBSCRIBE) {
		char why[200];
		int r = m->type == IPC_EMIT
		                ? access_check_emit(&d->cfg, d->self_uid,
		                                    &c->peer, m->name, why,
		                                    sizeof(why))
		                : access_check_subscribe(&d->cfg, d->self_uid,
		                                         &c->peer, m->name, why,
		                                         sizeof(why));

		if (r < 0) {
			control_deny(d, c, m, r, why);
			return;
		}
	}
	switch (m->type) {
	case IPC_EMIT:
		emit(d, c, m);
		break;
	case IPC_SUBSCRIBE:
		subscribe(d, c, m);
		break;
	case IPC_UNSUBSCRIBE:
		unsubscribe(d, c, m);
		break;
	default:
		break;
	}
}

void pubsub_client_gone(struct dsd *d, struct dsd_client *c)
{
	int n;

	if (c->slot == UINT32_MAX)
		return;
	n = subs_remove_client(d->subs, c->slot, NULL, NULL);
	if (n > 0) {
		(void)access_usage_add(d->usage, c->peer.uid, 0, -n, 0, 0);
		schedule_subs_flush(d);
	}
	d->slots[c->slot] = NULL;
	c->slot = UINT32_MAX;
}

void pubsub_platform_message(struct dsd *d, const void *msg)
{
	const struct wire_msg *m = msg;
	char reason[160], name[128];

	switch (m->action) {
	case WIRE_EVENT_EMIT:
		if (m->name == NULL)
			return;
		d->count.events_received++;
		for_each_subscriber(d, m->name, send_event, m->data);
		return;
	case WIRE_EVENT_SUBSCRIBE:
	case WIRE_EVENT_UNSUBSCRIBE:
		if (!m->is_ack || m->correlation_id == NULL)
			return;
		if (subs_ack(d->subs, m->correlation_id) < 0)
			log_debug("ack for an unknown correlation id");
		/* An ack can leave work: a name dropped while its SUBSCRIBE
		 * was in flight, or a batch the server mangled (see subs.h). */
		if (subs_pending(d->subs, SUBS_SUBSCRIBE) > 0 ||
		    subs_pending(d->subs, SUBS_UNSUBSCRIBE) > 0)
			schedule_subs_flush(d);
		return;
	case WIRE_EVENT_MESSAGE_DENIED:
	case WIRE_EVENT_MESSAGE_PERMISSION_ERROR:
		if (m->name == NULL)
			return;
		if (!m->has_original_action ||
		    m->original_action != WIRE_EVENT_SUBSCRIBE) {
			d->count.emits_denied++;
			log_full_ratelimited(
			        &d->deny_log, dsd_now(), LOG_WARNING,
			        "the platform denied an emit of "
			        "\"%s\"",
			        log_escape(m->name, strlen(m->name), name,
			                   sizeof(name)));
			return;
		}
		snprintf(reason, sizeof(reason), "%s by the platform",
		         m->action == WIRE_EVENT_MESSAGE_DENIED
		                 ? "subscription denied"
		                 : "permission error");
		if (subs_denied(d->subs, m->name, reason) < 0)
			return;
		d->count.subs_denied++;
		log_warn("the platform denied the subscription to \"%s\"",
		         log_escape(m->name, strlen(m->name), name,
		                    sizeof(name)));
		for_each_subscriber(d, m->name, tell_denied, reason);
		return;
	default:
		log_debug("platform: EVENT %s",
		          wire_action_name(m->topic, m->action));
		return;
	}
}

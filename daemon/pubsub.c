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
 * - With [queue] spool, an emit is accepted only once it is on disk
 *   (spool.c, docs/spool.md): it joins the loop iteration's batch
 *   (pending), one commit per iteration makes the batch durable, and only
 *   then is each emit pushed into the store and answered.  The store stays
 *   the working copy; each message carries its record's id, removed from
 *   the spool when confirmed or dropped.  At start the spool's records are
 *   pushed back, per app, in order.  A spool that cannot be opened or
 *   fails a commit is given up: dsd goes on from memory only and says so.
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
#include "spool.h"
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
#define WINDOW_BYTES    (16 * 1024)
#define WINDOW_MESSAGES 128
/* subs.c's table of names; a per-uid share is half of it by default. */
#define MAX_NAMES 65536
/*
 * One spool batch holds at most this many emits and bytes; past either
 * the batch is committed at once, within the iteration.  The IPC server
 * reads at most 64 KiB per client per event, so a batch stays far smaller
 * unless thousands of clients write in the same iteration.
 */
#define PENDING_MAX       1024
#define PENDING_MAX_BYTES (8u * 1024 * 1024)
/* The tag of emits restored from the spool: their senders are gone, and
 * they count against no uid's share. */
#define RESTORED_TAG UINT32_MAX

/* An emit in the open spool batch: answered, pushed into the store and
 * handed to local subscribers once the batch is committed. */
struct pending {
	struct dsd_client *c; /* NULL once the client left */
	struct sendq_app *app;
	uid_t uid;
	uint32_t reply_id;
	bool want_confirm;
	bool done;        /* settled (pushed or refused) */
	bool release_app; /* the client left: release app after this one */
	uint64_t spool_id;
	uint8_t *frame;
	size_t len;
	char *name, *data; /* for the local subscribers (data may be NULL) */
};

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

	/* The durable spool: spool NULL when not configured or given up. */
	struct spool *spool;
	char *spool_path;
	bool spool_failed;
	char spool_err[512];
	int64_t started_ms; /* part of each app's spool key */
	bool batch_open;
	struct event *commit_ev; /* commits the batch once per iteration */
	struct pending *pending; /* PENDING_MAX */
	size_t n_pending;
	size_t pending_bytes;
	uint64_t *removals; /* spool ids confirmed or dropped */
	size_t n_removals, cap_removals;
	struct log_ratelimit spool_log;

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

/* A spool record to delete with the next spool_remove() (after the
 * store's callbacks; one transaction for a whole confirmation).  Out of
 * memory it is kept: delivered again after a restart, which
 * at-least-once allows. */
static void add_removal(struct pubsub *p, uint64_t id)
{
	if (id == 0 || p->spool == NULL)
		return;
	if (p->n_removals == p->cap_removals) {
		size_t cap = p->cap_removals ? p->cap_removals * 2 : 256;
		uint64_t *n = realloc(p->removals, cap * sizeof(*n));

		if (n == NULL)
			return;
		p->removals = n;
		p->cap_removals = cap;
	}
	p->removals[p->n_removals++] = id;
}

static void flush_removals(struct pubsub *p)
{
	int r;

	if (p->n_removals == 0)
		return;
	if (p->spool != NULL) {
		r = spool_remove(p->spool, p->removals, p->n_removals);
		if (r < 0)
			log_full_ratelimited(
			        &p->spool_log, clock_mono_ms(), LOG_WARNING,
			        "%s; %zu confirmed emits stay in it and would "
			        "be delivered again after a restart",
			        spool_error(p->spool), p->n_removals);
	}
	p->n_removals = 0;
}

/* An emit leaves the store: it leaves its sender's share (never
 * allocates), and the spool. */
static void leave_share(struct pubsub *p, const struct sendq_msg *m)
{
	add_removal(p, m->spool_id);
	if (m->tag == RESTORED_TAG)
		return;
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

static void on_commit(evutil_socket_t fd, short what, void *userdata);
static int spool_setup(struct pubsub *p);

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
	p->spool_log = (struct log_ratelimit)LOG_RATELIMIT_INIT(10000, 3);
	r = sendq_new(&ql, &store_cb, p, &p->store);
	if (r == 0)
		r = subs_new(&sl, &p->subs);
	if (r < 0)
		goto fail;
	p->slot_count = sl.max_clients;
	p->slots = calloc(p->slot_count, sizeof(*p->slots));
	p->subs_flush = event_new(base, -1, 0, on_subs_flush, p);
	p->fence_ev = event_new(base, -1, 0, on_fence, p);
	p->commit_ev = event_new(base, -1, 0, on_commit, p);
	p->pending = calloc(PENDING_MAX, sizeof(*p->pending));
	if (p->slots == NULL || p->subs_flush == NULL || p->fence_ev == NULL ||
	    p->commit_ev == NULL || p->pending == NULL) {
		r = -ENOMEM;
		goto fail;
	}
	r = spool_setup(p);
	if (r < 0)
		goto fail;
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
	/* An uncommitted batch was never accepted: spool_close() rolls it
	 * back (its apps were not answered). */
	for (size_t i = 0; i < p->n_pending; i++) {
		free(p->pending[i].frame);
		free(p->pending[i].name);
		free(p->pending[i].data);
	}
	free(p->pending);
	spool_close(p->spool);
	free(p->spool_path);
	free(p->removals);
	if (p->commit_ev)
		event_free(p->commit_ev);
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
	if (sendq_confirm(p->store, seq) > 0) {
		flush_removals(p);
		flush_store(p);
	}
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

/* The sender's uid quota, then its share reserved before the push (the
 * drop callback may give back some of this uid's own older emits). */
static int reserve_share(struct pubsub *p, struct dsd_client *c, size_t len,
                         struct pubsub_refusal *why)
{
	struct access_count mine = access_usage_get(p->usage, c->peer.uid);
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
	if (access_usage_add(p->usage, c->peer.uid, 0, 0, 1, (int64_t)len) <
	    0) {
		refuse(why, false, "out of memory");
		return -ENOMEM;
	}
	return 0;
}

static void give_back_share(struct pubsub *p, uid_t uid, size_t len)
{
	(void)access_usage_add(p->usage, uid, 0, 0, -1, -(int64_t)len);
}

/* Into the store, within its bounds (the share is reserved already and
 * given back on failure). */
static int push(struct pubsub *p, struct sendq_app *app, uint32_t client_id,
                uid_t uid, const uint8_t *buf, size_t len,
                const struct sendq_msg *meta, struct pubsub_refusal *why)
{
	struct sendq_stats st;
	unsigned dropped = 0;
	int r;

	r = sendq_push(p->store, app, buf, len, meta, &dropped);
	if (r < 0) {
		give_back_share(p, uid, len);
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
		                     dropped, client_id);
	return 0;
}

static int store(struct pubsub *p, struct dsd_client *c, const uint8_t *buf,
                 size_t len, const struct sendq_msg *meta,
                 struct pubsub_refusal *why)
{
	int r = reserve_share(p, c, len, why);

	if (r < 0)
		return r;
	return push(p, c->store_app, c->id, c->peer.uid, buf, len, meta, why);
}

/* ---- the durable spool ---- */

/* The spool is given up: memory only from now on.  Logged once; what it
 * holds stays in the file (and in memory), so a restart may deliver some
 * of it again. */
static void spool_give_up(struct pubsub *p, const char *what)
{
	snprintf(p->spool_err, sizeof(p->spool_err), "%s: %s", what,
	         spool_error(p->spool));
	log_err("%s; serving from memory only until dsd restarts (emits are "
	        "no longer kept on disk)",
	        p->spool_err);
	spool_close(p->spool);
	p->spool = NULL;
	p->spool_failed = true;
	p->batch_open = false;
	p->n_removals = 0;
}

/* Restoring at start: one store app per spool app key. */
struct restore {
	struct pubsub *p;
	struct restored_app {
		char *key;
		struct sendq_app *app;
	} * apps;
	size_t n, cap;
	size_t restored, refused;
};

static struct sendq_app *restored_app(struct restore *rs, const char *key)
{
	const char *dash = strchr(key, '-');
	struct restored_app *a;

	/* Newest first: records of one app tend to come together. */
	for (size_t i = rs->n; i > 0; i--)
		if (strcmp(rs->apps[i - 1].key, key) == 0)
			return rs->apps[i - 1].app;
	if (rs->n == rs->cap) {
		size_t cap = rs->cap ? rs->cap * 2 : 16;

		a = realloc(rs->apps, cap * sizeof(*a));
		if (a == NULL)
			return NULL;
		rs->apps = a;
		rs->cap = cap;
	}
	a = &rs->apps[rs->n];
	a->key = strdup(key);
	/* The id status shows (topApps) is the client id the key names. */
	a->app = sendq_app_new(rs->p->store,
	                       dash ? (uint32_t)strtoul(dash + 1, NULL, 10) : 0,
	                       NULL);
	if (a->key == NULL || a->app == NULL) {
		free(a->key);
		if (a->app)
			sendq_app_release(rs->p->store, a->app);
		return NULL;
	}
	/* Older than whatever the apps emit after this start. */
	sendq_app_set_first(rs->p->store, a->app);
	rs->n++;
	return a->app;
}

static int restore_one(const struct spool_record *rec, void *userdata)
{
	struct restore *rs = userdata;
	/* Written or not before dsd went away, nobody knows: if it was, this
	 * copy is a duplicate, and it is counted as one (emits.resent). */
	struct sendq_msg meta = {
	        .tag = RESTORED_TAG, .spool_id = rec->id, .maybe_sent = true};
	struct sendq_app *app = restored_app(rs, rec->app);
	unsigned dropped = 0;

	if (app == NULL)
		return -ENOMEM;
	if (sendq_push(rs->p->store, app, rec->data, rec->len, &meta,
	               &dropped) < 0) {
		/* Over today's [queue] bounds (smaller than when it was
		 * written): not kept in either place. */
		add_removal(rs->p, rec->id);
		rs->refused++;
		return 0;
	}
	rs->restored++;
	return 0;
}

static int spool_restore(struct pubsub *p)
{
	struct restore rs = {.p = p};
	int r;

	r = spool_load(p->spool, restore_one, &rs);
	/* The apps are gone: their FIFOs drain and free themselves. */
	for (size_t i = 0; i < rs.n; i++) {
		sendq_app_release(p->store, rs.apps[i].app);
		free(rs.apps[i].key);
	}
	free(rs.apps);
	if (r == -ENOMEM)
		return r;
	if (r < 0) {
		spool_give_up(p, "cannot read it back");
		return 0;
	}
	if (rs.refused > 0)
		log_warn("spool %s: %zu emits over the [queue] bounds were "
		         "dropped",
		         p->spool_path, rs.refused);
	flush_removals(p);
	log_notice("spool %s: %zu emits restored, to be written once the "
	           "platform connection is open",
	           p->spool_path, rs.restored);
	return 0;
}

static int spool_setup(struct pubsub *p)
{
	/* The memory store's bounds plus one batch: a batch is in the spool
	 * before the store takes (or, drop-oldest, evicts for) it, so the
	 * store alone decides what fits. */
	struct spool_options opt = {
	        .sync = p->cfg->queue_spool_sync,
	        .max_records =
	                (uint64_t)p->cfg->queue_max_messages + PENDING_MAX,
	        .max_bytes = p->cfg->queue_max_bytes + PENDING_MAX_BYTES,
	};
	char err[512];
	int r;

	if (p->cfg->queue_spool == NULL)
		return 0;
	p->spool_path = strdup(p->cfg->queue_spool);
	if (p->spool_path == NULL)
		return -ENOMEM;
	p->started_ms = clock_unix_ms();
	r = spool_open(p->spool_path, &opt, &p->spool, err, sizeof(err));
	if (r == -ENOMEM)
		return r;
	if (r < 0) {
		snprintf(p->spool_err, sizeof(p->spool_err), "%s", err);
		p->spool_failed = true;
		log_err("%s; serving from memory only (emits are not kept on "
		        "disk)",
		        err);
		return 0;
	}
	return spool_restore(p);
}

bool pubsub_spool_info(const struct pubsub *p, struct pubsub_spool_info *ret)
{
	struct spool_stats st = {0};

	if (p->spool_path == NULL)
		return false;
	if (p->spool != NULL)
		spool_get_stats(p->spool, &st);
	*ret = (struct pubsub_spool_info){
	        .path = p->spool_path,
	        .failed = p->spool_failed,
	        .error = p->spool_err,
	        .records = st.records,
	        .bytes = st.bytes,
	};
	return true;
}

static void reply_emit(struct dsd_client *c, uint32_t id, int code)
{
	struct ipc_msg m = {.type = IPC_EMIT_REPLY,
	                    .has_id = true,
	                    .id = id,
	                    .has_code = true,
	                    .code = code};

	if (c != NULL)
		ipc_client_send(c->ipc, &m);
}

/*
 * One emit of a batch, after its commit (r: its result): refused, or into
 * the store, written if it can be, handed to local subscribers and
 * answered.  Replies and events may drop a client, which calls
 * pubsub_client_gone(): e->c is read again after each.
 */
static void settle(struct pubsub *p, struct pending *e, int r)
{
	struct pubsub_refusal why = {0};
	struct sendq_msg meta = {.tag = (uint32_t)e->uid,
	                         .reply_id = e->reply_id,
	                         .want_reply = e->want_confirm,
	                         .spool_id = e->spool_id};
	uint32_t client_id = e->c ? e->c->id : 0;
	int code;

	e->done = true;
	if (r < 0) {
		give_back_share(p, e->uid, e->len);
		refuse(&why, false,
		       "the spool failed, the emit is not accepted (%s)",
		       p->spool_err);
	} else {
		r = push(p, e->app, client_id, e->uid, e->frame, e->len, &meta,
		         &why);
		if (r < 0)
			add_removal(p, e->spool_id);
	}
	if (r < 0) {
		if (e->c != NULL)
			ipc_client_reply_error(e->c->ipc, e->reply_id, r,
			                       why.text);
	} else {
		flush_store(p);
		if (sendq_app_queued(e->app) == 0) {
			code = IPC_EMIT_SENT;
		} else {
			code = IPC_EMIT_QUEUED;
			p->count.emits_queued++;
		}
		for_each_subscriber(p, e->name, send_event, e->data);
		reply_emit(e->c, e->reply_id, code);
	}
	if (e->release_app)
		sendq_app_release(p->store, e->app);
}

/* Commits the open batch and settles its emits. */
static void commit_batch(struct pubsub *p)
{
	size_t n = p->n_pending;
	int r = 0;

	if (!p->batch_open)
		return;
	p->batch_open = false;
	r = spool_commit(p->spool);
	if (r < 0)
		spool_give_up(p, "cannot commit emits");
	for (size_t i = 0; i < n; i++)
		settle(p, &p->pending[i], r);
	for (size_t i = 0; i < n; i++) {
		free(p->pending[i].frame);
		free(p->pending[i].name);
		free(p->pending[i].data);
	}
	memset(p->pending, 0, n * sizeof(*p->pending));
	p->n_pending = 0;
	p->pending_bytes = 0;
	flush_removals(p);
}

static void on_commit(evutil_socket_t fd, short what, void *userdata)
{
	(void)fd;
	(void)what;
	commit_batch(userdata);
}

/*
 * An encoded emit into the spool's batch.  PUBSUB_EMIT_PENDING (buf is
 * taken), a negative errno and why (refused), or 1: the spool is given up
 * now, the caller goes on from memory.
 */
static int hold(struct pubsub *p, struct dsd_client *c, const char *name,
                const char *data, size_t data_len, uint8_t *buf, size_t len,
                uint32_t reply_id, bool want_confirm,
                struct pubsub_refusal *why)
{
	struct pending e = {.c = c,
	                    .uid = c->peer.uid,
	                    .reply_id = reply_id,
	                    .want_confirm = want_confirm,
	                    .frame = buf,
	                    .len = len};
	char key[48];
	int r;

	if (p->n_pending == PENDING_MAX ||
	    p->pending_bytes + len > PENDING_MAX_BYTES)
		commit_batch(p);
	if (p->spool == NULL)
		return 1;
	r = reserve_share(p, c, len, why);
	if (r < 0)
		return r;
	e.app = c->store_app;
	e.name = strdup(name);
	if (data != NULL && (e.data = malloc(data_len + 1)) != NULL) {
		memcpy(e.data, data, data_len);
		e.data[data_len] = '\0';
	}
	if (e.name == NULL || (data != NULL && e.data == NULL)) {
		r = -ENOMEM;
		refuse(why, false, "out of memory");
		goto fail;
	}
	if (!p->batch_open) {
		r = spool_begin(p->spool);
		if (r < 0) {
			spool_give_up(p, "cannot begin a batch");
			r = 1;
			goto fail;
		}
		p->batch_open = true;
		event_active(p->commit_ev, 0, 0);
	}
	/* Unique per app across restarts: this start's time and the
	 * client's id. */
	snprintf(key, sizeof(key), "%lld-%u", (long long)p->started_ms, c->id);
	r = spool_add(p->spool, key, buf, len, &e.spool_id);
	if (r < 0) {
		/* Refused alone; if the file failed, the commit says so and
		 * refuses the rest of the batch. */
		refuse(why, false, "%s", spool_error(p->spool));
		goto fail;
	}
	p->pending[p->n_pending++] = e;
	p->pending_bytes += len;
	return PUBSUB_EMIT_PENDING;
fail:
	give_back_share(p, e.uid, len);
	free(e.name);
	free(e.data);
	return r;
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
	if (p->spool != NULL) {
		r = hold(p, c, name, data, data_len, buf, len, reply_id,
		         want_confirm, why);
		if (r != 1) {
			if (r < 0)
				free(buf);
			return r;
		}
	}
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
	struct pending *last = NULL;
	int n;

	/* Its emits in the spool batch are settled without it; its store
	 * app is released after the last of them. */
	for (size_t i = 0; i < p->n_pending; i++) {
		struct pending *e = &p->pending[i];

		if (e->c != c)
			continue;
		e->c = NULL;
		if (!e->done)
			last = e;
	}
	/* What it emitted was accepted: it stays until confirmed. */
	if (last != NULL)
		last->release_app = true;
	else
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
	/* What joined the batch is answered before the loop ends. */
	commit_batch(p);
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

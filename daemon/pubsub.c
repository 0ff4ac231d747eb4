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
#include "pubsub_core.h"
#include "pubsub_spool.h"
#include "pubsub_subs.h"
#include "sendq.h"
#include "spool.h"
#include "upstream.h"
#include "wire.h"

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

static void on_fence(evutil_socket_t fd, short what, void *userdata);

/* A spool record to delete with the next spool_remove() (after the
 * store's callbacks; one transaction for a whole confirmation).  Out of
 * memory it is kept: delivered again after a restart, which
 * at-least-once allows. */
/* An emit leaves the store: it leaves its sender's share (never
 * allocates), and the spool. */
static void leave_share(struct pubsub *p, const struct sendq_msg *m)
{
	ps_add_removal(p, m->spool_id);
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
	TAILQ_INIT(&p->paced);
	send_window_reset(&p->window);
	p->now_us = clock_mono_us;
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
	p->subs_flush = event_new(base, -1, 0, ps_on_subs_flush, p);
	p->fence_ev = event_new(base, -1, 0, on_fence, p);
	p->commit_ev = event_new(base, -1, 0, ps_on_commit, p);
	p->pace_ev = event_new(base, -1, 0, ps_on_pace_check, p);
	p->pending = calloc(PENDING_MAX, sizeof(*p->pending));
	if (p->slots == NULL || p->subs_flush == NULL || p->fence_ev == NULL ||
	    p->commit_ev == NULL || p->pace_ev == NULL || p->pending == NULL) {
		r = -ENOMEM;
		goto fail;
	}
	r = ps_spool_setup(p);
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
	free(p->scratch);
	if (p->commit_ev)
		event_free(p->commit_ev);
	if (p->pace_ev)
		event_free(p->pace_ev);
	sendq_free(p->store);
	subs_free(p->subs);
	free(p->slots);
	ipc_buf_free(&p->fanout);
	if (p->subs_flush)
		event_free(p->subs_flush);
	if (p->fence_ev)
		event_free(p->fence_ev);
	free(p);
}

int pubsub_apply_limits(struct pubsub *p)
{
	struct sendq_limits ql = store_limits(p->cfg);

	/* New [queue] weights count from each app's next turn. */
	for (uint32_t i = 0; i < p->slot_count; i++) {
		struct dsd_client *c = p->slots[i];

		if (c != NULL && c->store_app != NULL)
			sendq_app_set_weight(
			        c->store_app,
			        access_queue_weight(p->cfg, &c->peer));
	}
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

const struct send_window *pubsub_send_window(const struct pubsub *p)
{
	return &p->window;
}

const struct subs *pubsub_registry(const struct pubsub *p)
{
	return p->subs;
}

/* ---- the store: writing and confirming ---- */

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
	if (ps_confirm(p, seq) > 0) {
		p->confirmations++;
		p->drain_stalled = false;
		ps_flush_removals(p);
		ps_flush_store(p);
	}
}

void pubsub_drained(struct pubsub *p)
{
	if (p->subs_rebuild)
		ps_flush_subscriptions(p);
	ps_flush_store(p);
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
	/* The next link's rate is unknown: the floor until it shows. */
	send_window_reset(&p->window);
	/* Not OPEN: the queue takes what it may, nobody waits to be read. */
	ps_unpace(p, true);
	p->drain_stalled = false;
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
	ps_flush_subscriptions(p);
	ps_flush_store(p);
}

/* ---- requests ---- */

int pubsub_emit(struct pubsub *p, struct dsd_client *c, const char *name,
                const char *data, size_t data_len, uint32_t reply_id,
                bool want_confirm, struct pubsub_refusal *why)
{
	struct sendq_msg meta = {.tag = (uint32_t)c->peer.uid,
	                         .reply_id = reply_id,
	                         .want_reply = want_confirm};
	uint8_t *buf = NULL;
	size_t len = 0;
	bool owned = false;
	int r;

	if (p->closed) {
		ps_refuse(why, false, "dsd is stopping: no more emits");
		return -ESHUTDOWN;
	}
	r = ps_check_name(c, p, name, why);
	if (r == 0)
		r = ps_encode_emit(p, name, data, data_len, p->spool != NULL,
		                   &buf, &len, &owned, why);
	if (r < 0)
		return r;
	/* The spool's batch takes the frame: a buffer of its own. */
	if (p->spool != NULL) {
		r = ps_hold(p, c, name, data, data_len, buf, len, reply_id,
		            want_confirm, why);
		if (r != 1) {
			if (r < 0)
				free(buf);
			return r;
		}
	}
	r = ps_store(p, c, buf, len, &meta, why);
	if (owned)
		free(buf);
	if (r < 0)
		return r;
	ps_flush_store(p);
	/* Written already when nothing of this app waits any more. */
	if (sendq_app_queued(c->store_app) == 0) {
		r = IPC_EMIT_SENT;
	} else {
		r = IPC_EMIT_QUEUED;
		p->count.emits_queued++;
	}
	ps_fan_out_event(p, name, data);
	ps_pace(p, c);
	return r;
}

void pubsub_client_gone(struct pubsub *p, struct dsd_client *c)
{
	struct pending *last = NULL;
	int n;

	if (c->paced) {
		TAILQ_REMOVE(&p->paced, c, paced_entry);
		c->paced = false;
	}
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
		ps_schedule_subs_flush(p);
	}
	p->slots[c->slot] = NULL;
	c->slot = UINT32_MAX;
}

void pubsub_close(struct pubsub *p)
{
	/* What joined the batch is answered before the loop ends. */
	ps_commit_batch(p);
	p->closed = true;
	/* What paced apps sent is refused now, not left unanswered. */
	ps_unpace(p, true);
}

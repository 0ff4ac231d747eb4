/*
 * pubsub with the durable spool (spool.c, docs/spool.md): an emit is
 * accepted only once on disk.  It joins the loop iteration's batch
 * (pending); one commit per iteration makes the batch durable, and only
 * then is each emit pushed into the store and answered.  Confirmed and
 * dropped emits leave the spool; at start its records are pushed back.
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
#include "pubsub_core.h"
#include "pubsub_spool.h"
#include "sendq.h"
#include "spool.h"
#include "upstream.h"
#include "wire.h"

void ps_add_removal(struct pubsub *p, uint64_t id)
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

void ps_flush_removals(struct pubsub *p)
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
		ps_add_removal(rs->p, rec->id);
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
	ps_flush_removals(p);
	log_notice("spool %s: %zu emits restored, to be written once the "
	           "platform connection is open",
	           p->spool_path, rs.restored);
	return 0;
}

int ps_spool_setup(struct pubsub *p)
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
 * answered.  Replies and events may drop a client, which clears e->c:
 * it is read again after each.
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
		ps_give_back_share(p, e->uid, e->len);
		ps_refuse(&why, false,
		          "the spool failed, the emit is not accepted (%s)",
		          p->spool_err);
	} else {
		r = ps_push(p, e->app, client_id, e->uid, e->frame, e->len,
		            &meta, &why);
		if (r < 0)
			ps_add_removal(p, e->spool_id);
	}
	if (r < 0) {
		if (e->c != NULL)
			ipc_client_reply_error(e->c->ipc, e->reply_id, r,
			                       why.text);
	} else {
		ps_flush_store(p);
		if (sendq_app_queued(e->app) == 0) {
			code = IPC_EMIT_SENT;
		} else {
			code = IPC_EMIT_QUEUED;
			p->count.emits_queued++;
		}
		ps_fan_out_event(p, e->name, e->data);
		reply_emit(e->c, e->reply_id, code);
		/* Paced as an emit without a spool is (pubsub_emit()). */
		if (e->c != NULL)
			ps_pace(p, e->c);
	}
	if (e->release_app)
		sendq_app_release(p->store, e->app);
}

/* Commits the open batch and settles its emits. */
void ps_commit_batch(struct pubsub *p)
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
	ps_flush_removals(p);
}

void ps_on_commit(evutil_socket_t fd, short what, void *userdata)
{
	(void)fd;
	(void)what;
	ps_commit_batch(userdata);
}

/*
 * An encoded emit into the spool's batch.  PUBSUB_EMIT_PENDING (buf is
 * taken), a negative errno and why (refused), or 1: the spool is given up
 * now, the caller goes on from memory.
 */
int ps_hold(struct pubsub *p, struct dsd_client *c, const char *name,
            const char *data, size_t data_len, uint8_t *buf, size_t len,
            uint32_t reply_id, bool want_confirm, struct pubsub_refusal *why)
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
		ps_commit_batch(p);
	if (p->spool == NULL)
		return 1;
	r = ps_reserve_share(p, c, len, why);
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
		ps_refuse(why, false, "out of memory");
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
		ps_refuse(why, false, "%s", spool_error(p->spool));
		goto fail;
	}
	p->pending[p->n_pending++] = e;
	p->pending_bytes += len;
	return PUBSUB_EMIT_PENDING;
fail:
	ps_give_back_share(p, e.uid, len);
	free(e.name);
	free(e.data);
	return r;
}

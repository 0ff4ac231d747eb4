/*
 * The request layer (see control.h).  Who may connect, and who may use
 * which request, is decided by access.c; every refusal is logged here
 * with the peer's credentials (rate limited: a local user can repeat them
 * at will).
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "access.h"
#include "client.h"
#include "clock.h"
#include "config.h"
#include "control.h"
#include "ipcproto.h"
#include "log.h"
#include "pubsub.h"
#include "pubsub_spool.h"
#include "pubsub_subs.h"
#include "status.h"
#include "upstream.h"

struct control {
	const struct dsd_config *cfg;
	uid_t self_uid; /* the uid dsd runs as */
	struct upstream *up;
	struct pubsub *ps;
	struct access_usage *usage;
	struct ipc_server *ipc;
	struct control_callbacks cb;
	void *userdata;
	uint64_t started_mono;

	struct dsd_client_list clients;
	struct control_counters count;
	struct log_ratelimit refuse_log, access_log;
};

int control_new(const struct dsd_config *cfg, struct upstream *up,
                struct pubsub *ps, struct access_usage *usage,
                const struct control_callbacks *cb, void *userdata,
                struct control **ret)
{
	struct control *ctl = calloc(1, sizeof(*ctl));

	if (ctl == NULL)
		return -ENOMEM;
	ctl->cfg = cfg;
	ctl->self_uid = geteuid();
	ctl->up = up;
	ctl->ps = ps;
	ctl->usage = usage;
	ctl->cb = *cb;
	ctl->userdata = userdata;
	ctl->started_mono = clock_mono_ms();
	TAILQ_INIT(&ctl->clients);
	ctl->refuse_log = (struct log_ratelimit)LOG_RATELIMIT_INIT(10000, 3);
	ctl->access_log = (struct log_ratelimit)LOG_RATELIMIT_INIT(10000, 5);
	*ret = ctl;
	return 0;
}

void control_set_ipc(struct control *ctl, struct ipc_server *ipc)
{
	ctl->ipc = ipc;
}

void control_free(struct control *ctl)
{
	free(ctl);
}

const struct control_counters *control_get_counters(const struct control *ctl)
{
	return &ctl->count;
}

/* ---- state for watchers ---- */

static void send_state(struct ipc_client *c, enum conn_state state,
                       const char *reason, uint64_t at_mono)
{
	struct ipc_msg m = {
	        .type = IPC_STATE,
	        .state = conn_state_name(state),
	        .text = reason,
	        .at = clock_mono_to_unix(at_mono),
	};

	ipc_client_send(c, &m);
}

void control_broadcast_state(struct control *ctl, enum conn_state state,
                             const char *reason, uint64_t at_mono)
{
	struct dsd_client *dc, *next;

	/* Sending may drop a slow client, which unlinks it: walk safely. */
	for (dc = TAILQ_FIRST(&ctl->clients); dc != NULL; dc = next) {
		next = TAILQ_NEXT(dc, entry);
		if (dc->watching)
			send_state(dc->ipc, state, reason, at_mono);
	}
}

/* ---- refusals ---- */

/* Refuses request m of c with code and why, and logs it with c's
 * credentials. */
static void deny(struct control *ctl, struct dsd_client *c,
                 const struct ipc_msg *m, int code, const char *why)
{
	char who[256], name[128] = "";

	ctl->count.requests_denied++;
	access_format_peer(&c->peer, who, sizeof(who));
	if (m->name != NULL)
		log_escape(m->name, strlen(m->name), name, sizeof(name));
	log_full_ratelimited(&ctl->access_log, clock_mono_ms(), LOG_WARNING,
	                     "local client %u (%s) refused %s%s%s%s: %s", c->id,
	                     who, ipc_type_name(m->type), m->name ? " \"" : "",
	                     name, m->name ? "\"" : "", why);
	ipc_client_reply_error(c->ipc, m->id, code, why);
}

/* ---- one handler per request type ---- */

typedef void (*handler_fn)(struct control *ctl, struct dsd_client *c,
                           const struct ipc_msg *m);

/* status_sources.client_of: a linear search, fine for the few top apps
 * of a status request. */
static bool client_of(uint32_t id, uid_t *ret_uid, pid_t *ret_pid,
                      const void *userdata)
{
	const struct control *ctl = userdata;
	const struct dsd_client *dc;

	TAILQ_FOREACH(dc, &ctl->clients, entry)
	{
		if (dc->id == id) {
			*ret_uid = dc->peer.uid;
			*ret_pid = dc->peer.pid;
			return true;
		}
	}
	return false;
}

void control_status_sources(const struct control *ctl,
                            struct status_sources *ret)
{
	const struct control_counters *cc = &ctl->count;

	*ret = (struct status_sources){
	        .cfg = ctl->cfg,
	        .up = ctl->up,
	        .ps = ctl->ps,
	        .ipc = ctl->ipc,
	        .started_mono = ctl->started_mono,
	        .clients_dropped = cc->clients_dropped,
	        .clients_refused = cc->clients_refused,
	        .requests_denied = cc->requests_denied,
	        .client_of = client_of,
	        .client_userdata = ctl,
	};
}

static void do_status(struct control *ctl, struct dsd_client *c,
                      const struct ipc_msg *m)
{
	struct status_sources src;
	struct ipc_msg r = {
	        .type = IPC_STATUS_REPLY, .has_id = true, .id = m->id};
	char *json;

	control_status_sources(ctl, &src);
	json = status_json(&src);

	if (json == NULL) {
		ipc_client_reply_error(c->ipc, m->id, -ENOMEM, "out of memory");
		return;
	}
	r.text = json;
	ipc_client_send(c->ipc, &r);
	free(json);
}

static void do_watch(struct control *ctl, struct dsd_client *c,
                     const struct ipc_msg *m)
{
	const struct conn *conn = upstream_conn(ctl->up);

	c->watching = true;
	ipc_client_reply_ok(c->ipc, m->id);
	send_state(c->ipc, conn_get_state(conn), conn_reason(conn),
	           conn_since(conn));
}

static void operator_input(struct control *ctl, struct dsd_client *c,
                           const struct ipc_msg *m, enum conn_input_kind kind,
                           const char *verb)
{
	struct conn_input in = {.kind = kind};
	char msg[160];
	int r;

	r = upstream_feed(ctl->up, &in);
	if (r == 0) {
		log_notice("%s requested by local client %u (uid %ld)", verb,
		           c->id, (long)c->peer.uid);
		ipc_client_reply_ok(c->ipc, m->id);
		return;
	}
	snprintf(msg, sizeof(msg), "cannot %s in state %s", verb,
	         conn_state_name(conn_get_state(upstream_conn(ctl->up))));
	ipc_client_reply_error(c->ipc, m->id, r, msg);
}

static void do_pause(struct control *ctl, struct dsd_client *c,
                     const struct ipc_msg *m)
{
	operator_input(ctl, c, m, CONN_IN_PAUSE, "pause");
}

static void do_resume(struct control *ctl, struct dsd_client *c,
                      const struct ipc_msg *m)
{
	operator_input(ctl, c, m, CONN_IN_RESUME, "resume");
}

static void do_reload(struct control *ctl, struct dsd_client *c,
                      const struct ipc_msg *m)
{
	char err[512];
	int r = ctl->cb.reload(err, sizeof(err), ctl->userdata);

	if (r < 0)
		ipc_client_reply_error(c->ipc, m->id, r, err);
	else
		ipc_client_reply_ok(c->ipc, m->id);
}

/* The answer to an event request pubsub refused. */
static void refused(struct control *ctl, struct dsd_client *c,
                    const struct ipc_msg *m, int r,
                    const struct pubsub_refusal *why)
{
	if (why->quota)
		deny(ctl, c, m, r, why->text);
	else
		ipc_client_reply_error(c->ipc, m->id, r, why->text);
}

static void do_emit(struct control *ctl, struct dsd_client *c,
                    const struct ipc_msg *m)
{
	struct pubsub_refusal why = {0};
	struct ipc_msg reply = {.type = IPC_EMIT_REPLY,
	                        .has_id = true,
	                        .id = m->id,
	                        .has_code = true};
	bool confirm = m->has_code && (m->code & IPC_EMIT_WANT_CONFIRM);
	int r = pubsub_emit(ctl->ps, c, m->name, m->data, m->data_len, m->id,
	                    confirm, &why);

	if (r < 0) {
		refused(ctl, c, m, r, &why);
		return;
	}
	/* In the spool's batch: pubsub answers once it is on disk. */
	if (r == PUBSUB_EMIT_PENDING)
		return;
	reply.code = r;
	ipc_client_send(c->ipc, &reply);
}

static void do_subscribe(struct control *ctl, struct dsd_client *c,
                         const struct ipc_msg *m)
{
	struct pubsub_refusal why = {0};
	int r = pubsub_subscribe(ctl->ps, c, m->name, &why);

	if (r < 0) {
		refused(ctl, c, m, r, &why);
		return;
	}
	ipc_client_reply_ok(c->ipc, m->id);
	if (r == 1) {
		/* Registered, but the platform refused the name already. */
		struct ipc_msg d = {.type = IPC_SUB_DENIED,
		                    .name = m->name,
		                    .text = why.text};

		ipc_client_send(c->ipc, &d);
	}
}

static void do_unsubscribe(struct control *ctl, struct dsd_client *c,
                           const struct ipc_msg *m)
{
	struct pubsub_refusal why = {0};
	int r = pubsub_unsubscribe(ctl->ps, c, m->name, &why);

	if (r < 0)
		refused(ctl, c, m, r, &why);
	else
		ipc_client_reply_ok(c->ipc, m->id);
}

enum check { CHECK_NONE, CHECK_ADMIN, CHECK_EMIT_ACL, CHECK_SUBSCRIBE_ACL };

/* Every request the daemon answers: its handler and the policy check it
 * needs first. */
static const struct handler {
	int type;
	enum check check;
	const char *verb; /* for messages */
	handler_fn fn;
} handlers[] = {
        {IPC_STATUS, CHECK_NONE, "status", do_status},
        {IPC_WATCH, CHECK_NONE, "watch", do_watch},
        {IPC_PAUSE, CHECK_ADMIN, "pause", do_pause},
        {IPC_RESUME, CHECK_ADMIN, "resume", do_resume},
        {IPC_RELOAD, CHECK_ADMIN, "reload", do_reload},
        {IPC_EMIT, CHECK_EMIT_ACL, "emit", do_emit},
        {IPC_SUBSCRIBE, CHECK_SUBSCRIBE_ACL, "subscribe", do_subscribe},
        {IPC_UNSUBSCRIBE, CHECK_NONE, "unsubscribe", do_unsubscribe},
};

/* 0 when c may make request m, else a negative errno and why. */
static int allowed(const struct control *ctl, const struct dsd_client *c,
                   const struct handler *h, const struct ipc_msg *m, char *why,
                   size_t whylen)
{
	switch (h->check) {
	case CHECK_ADMIN:
		return access_check_control(ctl->cfg, ctl->self_uid, &c->peer,
		                            h->verb, why, whylen);
	case CHECK_EMIT_ACL:
		return access_check_emit(ctl->cfg, ctl->self_uid, &c->peer,
		                         m->name, why, whylen);
	case CHECK_SUBSCRIBE_ACL:
		return access_check_subscribe(ctl->cfg, ctl->self_uid, &c->peer,
		                              m->name, why, whylen);
	case CHECK_NONE:
	default:
		return 0;
	}
}

void control_request(struct ipc_client *c, const struct ipc_msg *m,
                     void *userdata)
{
	struct control *ctl = userdata;
	struct dsd_client *dc = ipc_client_get_data(c);
	char why[200];

	if (dc == NULL) {
		/* cannot happen: control_admit made it */
		ipc_client_reply_error(c, m->id, -EPERM, "unknown client");
		return;
	}
	for (size_t i = 0; i < sizeof(handlers) / sizeof(handlers[0]); i++) {
		const struct handler *h = &handlers[i];
		int r;

		if (h->type != m->type)
			continue;
		r = allowed(ctl, dc, h, m, why, sizeof(why));
		if (r < 0)
			deny(ctl, dc, m, r, why);
		else
			h->fn(ctl, dc, m);
		return;
	}
	ipc_client_reply_error(c, m->id, -EOPNOTSUPP,
	                       "request type not supported");
}

/* ---- clients coming and going ---- */

/*
 * A new connection: within the limits for its uid (and the slots left for
 * it), it gets the daemon's record with its credentials, which every later
 * decision uses.
 */
int control_admit(struct ipc_client *c, const struct ipc_peer *peer, char *why,
                  size_t whylen, void *userdata)
{
	struct control *ctl = userdata;
	struct access_count mine = access_usage_get(ctl->usage, peer->uid);
	/* c is counted already */
	size_t others = ipc_server_client_count(ctl->ipc) - 1;
	struct dsd_client *dc;
	int r;

	r = access_check_connect(ctl->cfg, ctl->self_uid, peer, others, &mine,
	                         why, whylen);
	if (r < 0)
		return r;
	dc = calloc(1, sizeof(*dc));
	if (dc != NULL && peer->ngroups > 0) {
		dc->groups = malloc(peer->ngroups * sizeof(gid_t));
		if (dc->groups == NULL) {
			free(dc);
			dc = NULL;
		}
	}
	if (dc == NULL ||
	    access_usage_add(ctl->usage, peer->uid, 1, 0, 0, 0) < 0) {
		if (dc != NULL)
			free(dc->groups);
		free(dc);
		snprintf(why, whylen, "out of memory");
		return -ENOMEM;
	}
	dc->peer = *peer;
	if (peer->ngroups > 0)
		memcpy(dc->groups, peer->groups, peer->ngroups * sizeof(gid_t));
	dc->peer.groups = dc->groups;
	dc->ipc = c;
	dc->id = ipc_client_id(c);
	dc->slot = UINT32_MAX;
	TAILQ_INSERT_TAIL(&ctl->clients, dc, entry);
	ipc_client_set_data(c, dc);
	return 0;
}

void control_disconnected(struct ipc_client *c, enum ipc_close_reason why,
                          const char *text, void *userdata)
{
	struct control *ctl = userdata;
	struct dsd_client *dc = ipc_client_get_data(c);

	/* The daemon cutting a client off (slow reader, malformed frame,
	 * ...) is logged and counted; a client leaving, or our own
	 * shutdown, is not. */
	if (!ipc_close_is_departure(why)) {
		log_notice("local client %u dropped: %s", ipc_client_id(c),
		           text);
		ctl->count.clients_dropped++;
	}
	if (dc == NULL)
		return;
	pubsub_client_gone(ctl->ps, dc);
	/* Giving back never allocates. */
	(void)access_usage_add(ctl->usage, dc->peer.uid, -1, 0, 0, 0);
	TAILQ_REMOVE(&ctl->clients, dc, entry);
	ipc_client_set_data(c, NULL);
	free(dc->groups);
	free(dc);
}

void control_rejected(const struct ipc_peer *peer, const char *reason,
                      void *userdata)
{
	struct control *ctl = userdata;
	char who[256] = "accept failed";

	if (peer != NULL)
		access_format_peer(peer, who, sizeof(who));
	ctl->count.clients_refused++;
	log_full_ratelimited(&ctl->refuse_log, clock_mono_ms(), LOG_WARNING,
	                     "local connection refused (%s): %s", who, reason);
}

/*
 * Local requests that steer or inspect the daemon: status, watch, pause,
 * resume, reload.  Event requests are passed on to pubsub.c.  Every
 * request is answered exactly once.  Who may connect, and who may use the
 * control verbs, is decided by access.c; every refusal is logged here with
 * the peer's credentials.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "access.h"
#include "client.h"
#include "dsd.h"
#include "ipc_server.h"
#include "ipcproto.h"
#include "log.h"

void control_reply_ok(struct ipc_client *c, uint32_t id)
{
	struct ipc_msg r = {.type = IPC_OK, .has_id = true, .id = id};

	ipc_client_send(c, &r);
}

void control_reply_error(struct ipc_client *c, uint32_t id, int code,
                         const char *msg)
{
	struct ipc_msg r = {
	        .type = IPC_ERROR,
	        .has_id = true,
	        .id = id,
	        .has_code = true,
	        .code = code,
	        .text = msg,
	};

	ipc_client_send(c, &r);
}

static void send_state(struct ipc_client *c, enum conn_state state,
                       const char *reason, uint64_t at_mono)
{
	struct ipc_msg m = {
	        .type = IPC_STATE,
	        .state = conn_state_name(state),
	        .text = reason,
	        .at = dsd_mono_to_unix(at_mono),
	};

	ipc_client_send(c, &m);
}

void control_broadcast_state(struct dsd *d, enum conn_state state,
                             const char *reason, uint64_t at_mono)
{
	struct dsd_client *dc, *next;

	/* Sending may drop a slow client, which unlinks it: walk safely. */
	for (dc = TAILQ_FIRST(&d->clients); dc != NULL; dc = next) {
		next = TAILQ_NEXT(dc, entry);
		if (dc->watching)
			send_state(dc->ipc, state, reason, at_mono);
	}
}

void control_deny(struct dsd *d, struct dsd_client *c, const struct ipc_msg *m,
                  int code, const char *why)
{
	char who[256], name[128] = "";

	d->count.requests_denied++;
	access_format_peer(&c->peer, who, sizeof(who));
	if (m->name != NULL)
		log_escape(m->name, strlen(m->name), name, sizeof(name));
	log_full_ratelimited(&d->access_log, dsd_now(), LOG_WARNING,
	                     "local client %u (%s) refused %s%s%s%s: %s", c->id,
	                     who, ipc_type_name(m->type), m->name ? " \"" : "",
	                     name, m->name ? "\"" : "", why);
	control_reply_error(c->ipc, m->id, code, why);
}

static void operator_input(struct dsd *d, struct ipc_client *c,
                           const struct ipc_msg *m, enum conn_input_kind kind,
                           const char *verb)
{
	struct conn_input in = {.kind = kind};
	char msg[160];
	int r;

	r = upstream_feed(d, &in);
	if (r == 0) {
		log_notice("%s requested by local client %u (uid %ld)", verb,
		           ipc_client_id(c), (long)ipc_client_uid(c));
		control_reply_ok(c, m->id);
		return;
	}
	snprintf(msg, sizeof(msg), "cannot %s in state %s", verb,
	         conn_state_name(conn_get_state(&d->conn)));
	control_reply_error(c, m->id, r, msg);
}

static void reload(struct dsd *d, struct ipc_client *c, const struct ipc_msg *m)
{
	char err[512];
	int r = dsd_reload(d, err, sizeof(err));

	if (r < 0)
		control_reply_error(c, m->id, r, err);
	else
		control_reply_ok(c, m->id);
}

static void status(struct dsd *d, struct ipc_client *c, const struct ipc_msg *m)
{
	struct ipc_msg r = {
	        .type = IPC_STATUS_REPLY, .has_id = true, .id = m->id};
	char *json = status_json(d);

	if (json == NULL) {
		control_reply_error(c, m->id, -ENOMEM, "out of memory");
		return;
	}
	r.text = json;
	ipc_client_send(c, &r);
	free(json);
}

/*
 * A new connection: within the limits for its uid (and the slots left for
 * it), it gets the daemon's record with its credentials, which every later
 * decision uses.
 */
int control_admit(struct ipc_client *c, const struct ipc_peer *peer, char *why,
                  size_t whylen, void *userdata)
{
	struct dsd *d = userdata;
	struct access_count mine = access_usage_get(d->usage, peer->uid);
	/* c is counted already */
	size_t others = ipc_server_client_count(d->ipc) - 1;
	struct dsd_client *dc;
	int r;

	r = access_check_connect(&d->cfg, d->self_uid, peer, others, &mine, why,
	                         whylen);
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
	    access_usage_add(d->usage, peer->uid, 1, 0, 0, 0) < 0) {
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
	TAILQ_INSERT_TAIL(&d->clients, dc, entry);
	ipc_client_set_data(c, dc);
	return 0;
}

/* Pause, resume and reload need an admin (access.c). */
static bool may_control(struct dsd *d, struct dsd_client *dc,
                        const struct ipc_msg *m, const char *verb)
{
	char why[200];
	int r = access_check_control(&d->cfg, d->self_uid, &dc->peer, verb, why,
	                             sizeof(why));

	if (r < 0)
		control_deny(d, dc, m, r, why);
	return r == 0;
}

void control_request(struct ipc_client *c, const struct ipc_msg *m,
                     void *userdata)
{
	struct dsd *d = userdata;
	struct dsd_client *dc = ipc_client_get_data(c);

	if (dc == NULL) {
		/* cannot happen: control_admit made it */
		control_reply_error(c, m->id, -EPERM, "unknown client");
		return;
	}
	switch (m->type) {
	case IPC_STATUS:
		status(d, c, m);
		break;
	case IPC_PAUSE:
		if (may_control(d, dc, m, "pause"))
			operator_input(d, c, m, CONN_IN_PAUSE, "pause");
		break;
	case IPC_RESUME:
		if (may_control(d, dc, m, "resume"))
			operator_input(d, c, m, CONN_IN_RESUME, "resume");
		break;
	case IPC_RELOAD:
		if (may_control(d, dc, m, "reload"))
			reload(d, c, m);
		break;
	case IPC_WATCH:
		dc->watching = true;
		control_reply_ok(c, m->id);
		send_state(c, conn_get_state(&d->conn), conn_reason(&d->conn),
		           conn_since(&d->conn));
		break;
	case IPC_SUBSCRIBE:
	case IPC_UNSUBSCRIBE:
	case IPC_EMIT:
		pubsub_request(d, dc, m);
		break;
	default:
		control_reply_error(c, m->id, -EOPNOTSUPP,
		                    "request type not supported");
		break;
	}
}

static bool client_left(const char *reason)
{
	static const char *const gone[] = {
	        "closed by peer",
	        "read error",
	        "write error",
	        "server shutting down",
	};

	for (size_t i = 0; i < sizeof(gone) / sizeof(gone[0]); i++)
		if (strncmp(reason, gone[i], strlen(gone[i])) == 0)
			return true;
	return false;
}

void control_disconnected(struct ipc_client *c, const char *reason,
                          void *userdata)
{
	struct dsd *d = userdata;
	struct dsd_client *dc = ipc_client_get_data(c);

	/* The daemon cutting a client off (slow reader, malformed frame,
	 * ...) is logged and counted; a client leaving, or our own
	 * shutdown, is not. */
	if (reason != NULL && !client_left(reason)) {
		log_notice("local client %u dropped: %s", ipc_client_id(c),
		           reason);
		d->count.clients_dropped++;
	}
	if (dc == NULL)
		return;
	pubsub_client_gone(d, dc);
	/* Giving back never allocates. */
	(void)access_usage_add(d->usage, dc->peer.uid, -1, 0, 0, 0);
	TAILQ_REMOVE(&d->clients, dc, entry);
	ipc_client_set_data(c, NULL);
	free(dc->groups);
	free(dc);
}

void control_rejected(const struct ipc_peer *peer, const char *reason,
                      void *userdata)
{
	struct dsd *d = userdata;
	char who[256] = "accept failed";

	if (peer != NULL)
		access_format_peer(peer, who, sizeof(who));
	d->count.clients_refused++;
	log_full_ratelimited(&d->refuse_log, dsd_now(), LOG_WARNING,
	                     "local connection refused (%s): %s", who, reason);
}

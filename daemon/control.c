/*
 * Local requests that steer or inspect the daemon: status, watch, pause,
 * resume, reload.  Event requests are passed on to pubsub.c.  Every
 * request is answered exactly once.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

static void operator_input(struct dsd *d, struct ipc_client *c,
                           const struct ipc_msg *m, enum conn_input_kind kind,
                           const char *verb)
{
	struct conn_input in = {.kind = kind};
	char msg[160];
	int r;

	r = upstream_feed(d, &in);
	if (r == 0) {
		log_notice("%s requested by local client %u", verb,
		           ipc_client_id(c));
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

struct dsd_client *control_client(struct dsd *d, struct ipc_client *c)
{
	struct dsd_client *dc = ipc_client_get_data(c);

	if (dc != NULL)
		return dc;
	dc = calloc(1, sizeof(*dc));
	if (dc == NULL)
		return NULL;
	dc->ipc = c;
	dc->id = ipc_client_id(c);
	dc->slot = UINT32_MAX;
	TAILQ_INSERT_TAIL(&d->clients, dc, entry);
	ipc_client_set_data(c, dc);
	return dc;
}

void control_request(struct ipc_client *c, const struct ipc_msg *m,
                     void *userdata)
{
	struct dsd *d = userdata;
	struct dsd_client *dc = control_client(d, c);

	if (dc == NULL) {
		control_reply_error(c, m->id, -ENOMEM, "out of memory");
		return;
	}
	switch (m->type) {
	case IPC_STATUS:
		status(d, c, m);
		break;
	case IPC_PAUSE:
		operator_input(d, c, m, CONN_IN_PAUSE, "pause");
		break;
	case IPC_RESUME:
		operator_input(d, c, m, CONN_IN_RESUME, "resume");
		break;
	case IPC_RELOAD:
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
	TAILQ_REMOVE(&d->clients, dc, entry);
	ipc_client_set_data(c, NULL);
	free(dc);
}

void control_rejected(pid_t pid, const char *reason, void *userdata)
{
	struct dsd *d = userdata;

	d->count.clients_refused++;
	log_full_ratelimited(&d->refuse_log, dsd_now(), LOG_WARNING,
	                     "local connection refused (pid %ld): %s",
	                     (long)pid, reason);
}

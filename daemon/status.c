/*
 * The status document behind `dsctl status`: one JSON object.  Secrets
 * (the auth data) never appear in it.
 */
#include <stdlib.h>

#include <jansson.h>

#include "dsd.h"
#include "ipc_server.h"
#include "outq.h"
#include "subs.h"
#include "transport.h"

static json_t *attempts_max(const struct dsd *d)
{
	if (d->cfg.max_reconnect_attempts == CONFIG_INFINITE)
		return json_string("infinity");
	return json_integer(d->cfg.max_reconnect_attempts);
}

char *status_json(struct dsd *d)
{
	const struct conn *c = &d->conn;
	uint64_t now = dsd_now();
	int64_t retry = conn_next_retry_in(c, now);
	struct outq_counters qc;
	struct outq_limits ql;
	struct subs_stats ss;
	struct ipc_server_stats is;
	json_t *o;
	char *text;

	outq_get_counters(d->queue, &qc);
	outq_get_limits(d->queue, &ql);
	subs_get_stats(d->subs, &ss);
	ipc_server_get_stats(d->ipc, &is);
	/* clang-format off */
	o = json_pack(
	        "{s:s, s:s, s:I, s:I, s:s, s:s, s:I, s:o, s:o, s:I,"
	        " s:{s:I, s:I, s:I, s:I, s:I, s:I},"
	        " s:{s:I, s:I, s:I, s:I, s:I, s:I, s:I},"
	        " s:{s:I, s:I, s:I, s:I, s:I, s:I},"
	        " s:{s:I, s:I, s:I, s:I, s:s},"
	        " s:{s:I, s:I, s:I, s:I, s:I, s:I},"
	        " s:{s:I, s:I}}",
	        "state", conn_state_name(conn_get_state(c)),
	        "reason", conn_reason(c),
	        "since", (json_int_t)dsd_mono_to_unix(conn_since(c)),
	        "sinceMs", (json_int_t)(now - conn_since(c)),
	        "url", conn_current_url(c),
	        "configuredUrl", conn_configured_url(c),
	        "attempt", (json_int_t)conn_attempt(c),
	        "maxAttempts", attempts_max(d),
	        "nextRetryMs", retry < 0 ? json_null() : json_integer(retry),
	        "uptimeMs", (json_int_t)(now - d->started_mono),
	        "connection",
	        "attempts", (json_int_t)c->count.attempts,
	        "opens", (json_int_t)c->count.opens,
	        "losses", (json_int_t)c->count.losses,
	        "framesIn", (json_int_t)c->count.frames_in,
	        "pings", (json_int_t)c->count.pings,
	        "transitions", (json_int_t)c->count.transitions,
	        "clients",
	        "connected", (json_int_t)is.clients,
	        "dropped", (json_int_t)d->count.clients_dropped,
	        "refused", (json_int_t)d->count.clients_refused,
	        "bufferedBytes", (json_int_t)is.buffered,
	        "bufferLimit", (json_int_t)is.buffered_limit,
	        "droppedOverBuffer", (json_int_t)is.over_budget,
	        "denied", (json_int_t)d->count.requests_denied,
	        "subscriptions",
	        "names", (json_int_t)ss.names,
	        "acked", (json_int_t)ss.acked,
	        "pending", (json_int_t)ss.pending,
	        "denied", (json_int_t)ss.denied,
	        "local", (json_int_t)ss.subscriptions,
	        "denials", (json_int_t)ss.denies,
	        "queue",
	        "messages", (json_int_t)outq_count(d->queue),
	        "bytes", (json_int_t)outq_bytes(d->queue),
	        "maxMessages", (json_int_t)ql.max_messages,
	        "maxBytes", (json_int_t)ql.max_bytes,
	        "overflow", ql.policy == OUTQ_DROP_OLDEST ? "drop-oldest" : "reject",
	        "emits",
	        "sent", (json_int_t)d->count.emits_sent,
	        "queued", (json_int_t)d->count.emits_queued,
	        "dropped", (json_int_t)d->count.emits_dropped,
	        "rejected", (json_int_t)d->count.emits_rejected,
	        "denied", (json_int_t)d->count.emits_denied,
	        "requeued", (json_int_t)d->count.emits_requeued,
	        "events",
	        "received", (json_int_t)d->count.events_received,
	        "delivered", (json_int_t)d->count.events_delivered);
	/* clang-format on */
	if (o == NULL)
		return NULL;
	text = json_dumps(o, JSON_COMPACT);
	json_decref(o);
	return text;
}

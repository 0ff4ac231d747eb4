/*
 * The status document behind `dsctl status`: one JSON object.  Secrets
 * (the auth data) never appear in it.
 */
#include <stdlib.h>
#include <unistd.h>

#include <jansson.h>

#define TOP_APPS 5

#include "clock.h"
#include "config.h"
#include "ipc_server.h"
#include "procstat.h"
#include "pubsub.h"
#include "pubsub_spool.h"
#include "pubsub_subs.h"
#include "send_window.h"
#include "sendq.h"
#include "status.h"
#include "upstream.h"

static json_t *attempts_max(const struct dsd_config *cfg)
{
	if (cfg->max_reconnect_attempts == CONFIG_INFINITE)
		return json_string("infinity");
	return json_integer(cfg->max_reconnect_attempts);
}

/* Who client id is, while it is connected: uid, pid and comm. */
static void add_client(json_t *app, const struct status_sources *src,
                       uint32_t id)
{
	uid_t uid;
	pid_t pid;
	char comm[64];

	if (app == NULL || src->client_of == NULL ||
	    !src->client_of(id, &uid, &pid, src->client_userdata))
		return;
	json_object_set_new(app, "uid", json_integer((json_int_t)uid));
	json_object_set_new(app, "pid", json_integer((json_int_t)pid));
	if (procstat_comm(pid, comm, sizeof(comm)))
		json_object_set_new(app, "comm", json_string(comm));
}

/* The apps holding the most in the store: [{client, messages, bytes}],
 * with uid, pid and comm of those still connected. */
static json_t *top_apps(const struct status_sources *src)
{
	struct sendq_talker t[TOP_APPS];
	size_t n = sendq_top(pubsub_store(src->ps), t, TOP_APPS);
	json_t *a = json_array();

	for (size_t i = 0; a != NULL && i < n; i++) {
		json_t *app = json_pack("{s:I, s:I, s:I}", "client",
		                        (json_int_t)t[i].id, "messages",
		                        (json_int_t)t[i].messages, "bytes",
		                        (json_int_t)t[i].bytes);

		add_client(app, src, t[i].id);
		json_array_append_new(a, app);
	}
	return a;
}

/* The durable spool: null without [queue] spool. */
static json_t *spool_status(const struct pubsub *ps)
{
	struct pubsub_spool_info si;

	if (!pubsub_spool_info(ps, &si))
		return json_null();
	return json_pack("{s:s, s:s, s:s, s:I, s:I}", "path", si.path, "state",
	                 si.failed ? "failed" : "ok", "error", si.error,
	                 "records", (json_int_t)si.records, "bytes",
	                 (json_int_t)si.bytes);
}

json_t *status_send_window(const struct send_window *w)
{
	/* Before the first sample the rates are only the window's starting
	 * point, not something the platform did. */
	return json_pack("{s:I, s:I, s:I, s:I}", "bytes", (json_int_t)w->bytes,
	                 "messages", (json_int_t)w->messages,
	                 "confirmedBytesPerSecond",
	                 (json_int_t)(w->measured ? w->byte_rate : 0),
	                 "confirmedMessagesPerSecond",
	                 (json_int_t)(w->measured ? w->message_rate : 0));
}

/* State changes by the state entered: {"OPEN": n, ...}, every state. */
static json_t *transitions_to(const struct conn *c)
{
	json_t *o = json_object();

	for (int s = 0; o != NULL && s < CONN_STATE_COUNT; s++)
		json_object_set_new(
		        o, conn_state_name((enum conn_state)s),
		        json_integer((json_int_t)c->count.entered[s]));
	return o;
}

/* dsd's own resource use; a figure /proc did not give is left out. */
static json_t *process_status(void)
{
	struct procstat p;
	json_t *o = json_object();

	procstat_read(&p);
	if (o == NULL)
		return NULL;
	json_object_set_new(o, "pid", json_integer((json_int_t)getpid()));
	/* Milliseconds, as every time in the status. */
	if (p.cpu_seconds >= 0)
		json_object_set_new(
		        o, "cpuMs",
		        json_integer((json_int_t)(p.cpu_seconds * 1000 + 0.5)));
	if (p.resident_bytes >= 0)
		json_object_set_new(o, "residentBytes",
		                    json_integer(p.resident_bytes));
	if (p.virtual_bytes >= 0)
		json_object_set_new(o, "virtualBytes",
		                    json_integer(p.virtual_bytes));
	if (p.open_fds >= 0)
		json_object_set_new(o, "openFds", json_integer(p.open_fds));
	if (p.max_fds >= 0)
		json_object_set_new(o, "maxFds", json_integer(p.max_fds));
	if (p.start_time >= 0)
		json_object_set_new(
		        o, "startTime",
		        json_integer((json_int_t)(p.start_time * 1000 + 0.5)));
	return o;
}

/* The platform URLs, in order: [{url, current, failures, lastFailure,
 * lastFailureAt}], the last two null until an attempt at it failed. */
static json_t *url_list(const struct conn *c)
{
	json_t *a = json_array();

	for (unsigned i = 0; a != NULL && i < conn_url_count(c); i++) {
		const struct conn_url_status *st = conn_url_status_at(c, i);

		json_array_append_new(
		        a,
		        json_pack("{s:s, s:b, s:I, s:o, s:o}", "url",
		                  conn_url_at(c, i), "current",
		                  i == conn_url_index(c), "failures",
		                  (json_int_t)st->failures, "lastFailure",
		                  st->failed ? json_string(st->failure)
		                             : json_null(),
		                  "lastFailureAt",
		                  st->failed ? json_integer(clock_mono_to_unix(
		                                       st->failed_at))
		                             : json_null()));
	}
	return a;
}

char *status_json(const struct status_sources *src)
{
	json_t *o = status_object(src);
	char *text;

	if (o == NULL)
		return NULL;
	text = json_dumps(o, JSON_COMPACT);
	json_decref(o);
	return text;
}

json_t *status_object(const struct status_sources *src)
{
	const struct conn *c = upstream_conn(src->up);
	const struct pubsub_counters *pc = pubsub_get_counters(src->ps);
	uint64_t now = clock_mono_ms();
	int64_t retry = conn_next_retry_in(c, now);
	enum conn_error_cause cause = conn_error_cause(c);
	struct sendq_stats qs;
	struct subs_stats ss;
	struct ipc_server_stats is;
	json_t *o;

	sendq_get_stats(pubsub_store(src->ps), &qs);
	subs_get_stats(pubsub_registry(src->ps), &ss);
	ipc_server_get_stats(src->ipc, &is);
	/* clang-format off */
	o = json_pack(
	        "{s:s, s:s, s:o, s:o, s:I, s:I, s:s, s:s?, s:s, s:o, s:I, s:o, s:o, s:I,"
	        " s:{s:I, s:I, s:I, s:I, s:I, s:I},"
	        " s:{s:I, s:I, s:I, s:I, s:I, s:I, s:I},"
	        " s:{s:I, s:I, s:I, s:I, s:I, s:I},"
	        " s:{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:s, s:o, s:o},"
	        " s:{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I},"
	        " s:{s:I, s:I}}",
	        "state", conn_state_name(conn_get_state(c)),
	        "reason", conn_reason(c),
	        "errorCause", cause == CONN_ERR_NONE ? json_null()
	                : json_string(conn_error_cause_name(cause)),
	        "errorKind", cause == CONN_ERR_NONE ? json_null()
	                : json_string(conn_error_kind_name(conn_error_kind_of(cause))),
	        "since", (json_int_t)clock_mono_to_unix(conn_since(c)),
	        "sinceMs", (json_int_t)(now - conn_since(c)),
	        "url", conn_current_url(c),
	        "transport", upstream_transport_kind(src->up),
	        "configuredUrl", conn_configured_url(c),
	        "urls", url_list(c),
	        "attempt", (json_int_t)conn_attempt(c),
	        "maxAttempts", attempts_max(src->cfg),
	        "nextRetryMs", retry < 0 ? json_null() : json_integer(retry),
	        "uptimeMs", (json_int_t)(now - src->started_mono),
	        "connection",
	        "attempts", (json_int_t)c->count.attempts,
	        "opens", (json_int_t)c->count.opens,
	        "losses", (json_int_t)c->count.losses,
	        "framesIn", (json_int_t)c->count.frames_in,
	        "pings", (json_int_t)c->count.pings,
	        "transitions", (json_int_t)c->count.transitions,
	        "clients",
	        "connected", (json_int_t)is.clients,
	        "dropped", (json_int_t)src->clients_dropped,
	        "refused", (json_int_t)src->clients_refused,
	        "bufferedBytes", (json_int_t)is.buffered,
	        "bufferLimit", (json_int_t)is.buffered_limit,
	        "droppedOverBuffer", (json_int_t)is.over_budget,
	        "denied", (json_int_t)src->requests_denied,
	        "subscriptions",
	        "names", (json_int_t)ss.names,
	        "acked", (json_int_t)ss.acked,
	        "pending", (json_int_t)ss.pending,
	        "denied", (json_int_t)ss.denied,
	        "local", (json_int_t)ss.subscriptions,
	        "denials", (json_int_t)ss.denies,
	        "queue",
	        "messages", (json_int_t)qs.queued,
	        "bytes", (json_int_t)qs.queued_bytes,
	        "unconfirmed", (json_int_t)qs.in_flight,
	        "unconfirmedBytes", (json_int_t)qs.in_flight_bytes,
	        "apps", (json_int_t)qs.apps,
	        "maxMessages", (json_int_t)src->cfg->queue_max_messages,
	        "maxBytes", (json_int_t)src->cfg->queue_max_bytes,
	        "overflow", src->cfg->queue_overflow == QUEUE_OVERFLOW_DROP_OLDEST
	                            ? "drop-oldest" : "reject",
	        "topApps", top_apps(src),
	        "spool", spool_status(src->ps),
	        "emits",
	        "accepted", (json_int_t)qs.pushed,
	        "sent", (json_int_t)(qs.handed - qs.resent),
	        "queued", (json_int_t)pc->emits_queued,
	        "confirmed", (json_int_t)qs.confirmed,
	        "unconfirmed", (json_int_t)qs.in_flight,
	        "resent", (json_int_t)qs.resent,
	        "requeued", (json_int_t)pc->emits_requeued,
	        "dropped", (json_int_t)qs.dropped,
	        "rejected", (json_int_t)qs.rejected,
	        "denied", (json_int_t)pc->emits_denied,
	        "events",
	        "received", (json_int_t)pc->events_received,
	        "delivered", (json_int_t)pc->events_delivered);
	/* clang-format on */
	if (o == NULL)
		return NULL;
	json_object_set_new(json_object_get(o, "connection"), "transitionsTo",
	                    transitions_to(c));
	json_object_set_new(json_object_get(o, "queue"), "window",
	                    status_send_window(pubsub_send_window(src->ps)));
	json_object_set_new(o, "process", process_status());
	return o;
}

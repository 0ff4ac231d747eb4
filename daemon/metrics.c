/*
 * The status document in the Prometheus text format (see metrics.h).
 *
 * Most figures are one number at one place in the document: the table
 * `plain` says where, and what kind of metric it is.  The few with labels
 * (the state, transitions by state, the platform URL, the top talkers)
 * have a function each below.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "metrics.h"

/* INFO: a gauge that is always 1 and carries labels (name ends in _info). */
enum kind { GAUGE, COUNTER, INFO };

struct out {
	FILE *f;
	bool om; /* OpenMetrics 1.0.0 rather than the text format 0.0.4 */
};

/* "a.b.c" in the document, or NULL. */
static const json_t *at(const json_t *o, const char *path)
{
	char key[64];

	while (o != NULL && *path) {
		size_t n = strcspn(path, ".");

		if (n >= sizeof(key))
			return NULL;
		memcpy(key, path, n);
		key[n] = '\0';
		o = json_is_object(o) ? json_object_get(o, key) : NULL;
		path += n;
		if (*path == '.')
			path++;
	}
	return o;
}

/* The number at v divided by div (1000: milliseconds to seconds; a
 * division, as 0.001 is not exact in binary). */
static bool number(const json_t *v, double div, double *ret)
{
	if (json_is_integer(v))
		*ret = (double)json_integer_value(v) / div;
	else if (json_is_real(v))
		*ret = json_real_value(v) / div;
	else
		return false;
	return true;
}

/*
 * HELP and TYPE.  The text format names a family like its samples and
 * has no info type; OpenMetrics names a counter's family without _total
 * and an info's without _info (the samples keep them), and has both.
 */
static void header(struct out *o, const char *name, enum kind k,
                   const char *help)
{
	static const char *const type[] = {
	        [GAUGE] = "gauge", [COUNTER] = "counter", [INFO] = "info"};
	int n = (int)strlen(name);

	if (o->om && k == COUNTER)
		n -= (int)strlen("_total");
	else if (o->om && k == INFO)
		n -= (int)strlen("_info");
	fprintf(o->f, "# HELP %.*s %s\n# TYPE %.*s %s\n", n, name, help, n,
	        name, type[o->om || k != INFO ? k : GAUGE]);
}

/* The shortest of %.15g .. %.17g that reads back as v (0.1, not
 * 0.10000000000000001). */
static const char *shortest(double v, char *buf, size_t len)
{
	for (int prec = 15; prec <= 17; prec++) {
		snprintf(buf, len, "%.*g", prec, v);
		if (strtod(buf, NULL) == v)
			break;
	}
	return buf;
}

/* Integers as integers (exact up to 2^53), the rest with enough digits. */
static void value(struct out *o, double v)
{
	char buf[32];

	if (v > -9007199254740992.0 && v < 9007199254740992.0 &&
	    v == (double)(int64_t)v)
		fprintf(o->f, "%lld\n", (long long)v);
	else
		fprintf(o->f, "%s\n", shortest(v, buf, sizeof(buf)));
}

/* A label value: '\\', '"' and a newline escaped, as the format says. */
static void escaped(struct out *o, const char *s)
{
	for (; *s; s++) {
		if (*s == '\\')
			fputs("\\\\", o->f);
		else if (*s == '"')
			fputs("\\\"", o->f);
		else if (*s == '\n')
			fputs("\\n", o->f);
		else
			fputc(*s, o->f);
	}
}

/* name{k1="v1",k2="v2"} v: n label pairs in kv, the values escaped. */
static void sample(struct out *o, const char *name, size_t n,
                   const char *const *kv, double v)
{
	fputs(name, o->f);
	for (size_t i = 0; i < n; i++) {
		fprintf(o->f, "%s%s=\"", i ? "," : "{", kv[2 * i]);
		escaped(o, kv[2 * i + 1]);
		fputc('"', o->f);
	}
	fputs(n ? "} " : " ", o->f);
	value(o, v);
}

static void labelled(struct out *o, const char *name, const char *label,
                     const char *lv, double v)
{
	const char *kv[] = {label, lv};

	sample(o, name, 1, kv, v);
}

/* ---- figures that are one number each ---- */

static const struct plain {
	const char *name;
	enum kind kind;
	const char *path;
	double div; /* to the base unit: 1, or 1000 for milliseconds */
	const char *help;
} plain[] = {
        {"dsd_connection_state_seconds", GAUGE, "sinceMs", 1000,
         "Time since the connection entered its current state."},
        {"dsd_connection_attempt", GAUGE, "attempt", 1,
         "Connection attempts since the connection was last up."},
        {"dsd_connection_attempts_total", COUNTER, "connection.attempts", 1,
         "Connection attempts made."},
        {"dsd_connection_opens_total", COUNTER, "connection.opens", 1,
         "Times the connection reached OPEN."},
        {"dsd_connection_losses_total", COUNTER, "connection.losses", 1,
         "Established connections lost."},
        {"dsd_connection_frames_received_total", COUNTER, "connection.framesIn",
         1, "Frames received from the platform."},
        {"dsd_connection_pings_total", COUNTER, "connection.pings", 1,
         "PINGs sent to the platform."},
        {"dsd_clients", GAUGE, "clients.connected", 1,
         "Local clients connected."},
        {"dsd_clients_dropped_total", COUNTER, "clients.dropped", 1,
         "Local clients cut off by dsd (slow, malformed, ...)."},
        {"dsd_clients_refused_total", COUNTER, "clients.refused", 1,
         "Local connections refused."},
        {"dsd_clients_dropped_over_buffer_total", COUNTER,
         "clients.droppedOverBuffer", 1,
         "Local clients dropped to keep all output buffers under their "
         "limit."},
        {"dsd_client_buffered_bytes", GAUGE, "clients.bufferedBytes", 1,
         "Bytes held in local clients' output buffers."},
        {"dsd_client_buffer_limit_bytes", GAUGE, "clients.bufferLimit", 1,
         "The limit on all local clients' output buffers together."},
        {"dsd_requests_denied_total", COUNTER, "clients.denied", 1,
         "Requests refused by the access policy or a per-user quota."},
        {"dsd_subscriptions", GAUGE, "subscriptions.local", 1,
         "Local subscriptions (client and name pairs)."},
        {"dsd_subscription_names", GAUGE, "subscriptions.names", 1,
         "Event names subscribed to on the platform, in any state."},
        {"dsd_subscription_names_pending", GAUGE, "subscriptions.pending", 1,
         "Event names whose subscription is not settled yet."},
        {"dsd_subscription_names_denied", GAUGE, "subscriptions.denied", 1,
         "Event names the platform refused."},
        {"dsd_subscription_denials_total", COUNTER, "subscriptions.denials", 1,
         "Subscription refusals from the platform."},
        {"dsd_queue_messages", GAUGE, "queue.messages", 1,
         "Emits in the write queue, not written yet."},
        {"dsd_queue_bytes", GAUGE, "queue.bytes", 1,
         "Bytes of the emits in the write queue."},
        {"dsd_queue_unconfirmed_messages", GAUGE, "queue.unconfirmed", 1,
         "Emits written but not confirmed by the platform yet."},
        {"dsd_queue_unconfirmed_bytes", GAUGE, "queue.unconfirmedBytes", 1,
         "Bytes of the emits written but not confirmed yet."},
        {"dsd_queue_apps", GAUGE, "queue.apps", 1,
         "Local clients with emits in the write queue."},
        {"dsd_queue_max_messages", GAUGE, "queue.maxMessages", 1,
         "The write queue's limit in emits (maxMessages)."},
        {"dsd_queue_max_bytes", GAUGE, "queue.maxBytes", 1,
         "The write queue's limit in bytes (maxBytes)."},
        {"dsd_send_window_bytes", GAUGE, "queue.window.bytes", 1,
         "Bytes that may be written and not confirmed now (the send "
         "window)."},
        {"dsd_send_window_messages", GAUGE, "queue.window.messages", 1,
         "Emits that may be written and not confirmed now (the send "
         "window)."},
        {"dsd_confirm_rate_bytes_per_second", GAUGE,
         "queue.window.confirmedBytesPerSecond", 1,
         "Bytes the platform confirms per second, smoothed; 0 until "
         "measured."},
        {"dsd_confirm_rate_messages_per_second", GAUGE,
         "queue.window.confirmedMessagesPerSecond", 1,
         "Emits the platform confirms per second, smoothed; 0 until "
         "measured."},
        {"dsd_spool_records", GAUGE, "queue.spool.records", 1,
         "Emits held in the durable spool."},
        {"dsd_spool_bytes", GAUGE, "queue.spool.bytes", 1,
         "Bytes of the emits held in the durable spool."},
        {"dsd_emits_accepted_total", COUNTER, "emits.accepted", 1,
         "Emits accepted from local clients."},
        {"dsd_emits_sent_total", COUNTER, "emits.sent", 1,
         "Emits written to the platform (the first time)."},
        {"dsd_emits_queued_total", COUNTER, "emits.queued", 1,
         "Emits answered queued (the platform was not reachable)."},
        {"dsd_emits_confirmed_total", COUNTER, "emits.confirmed", 1,
         "Emits the platform confirmed."},
        {"dsd_emits_resent_total", COUNTER, "emits.resent", 1,
         "Emits written again after a connection was lost."},
        {"dsd_emits_requeued_total", COUNTER, "emits.requeued", 1,
         "Unconfirmed emits put back in the queue after a loss."},
        {"dsd_emits_dropped_total", COUNTER, "emits.dropped", 1,
         "Emits dropped from a full queue (overflow = drop-oldest)."},
        {"dsd_emits_rejected_total", COUNTER, "emits.rejected", 1,
         "Emits refused because the queue was full (overflow = reject)."},
        {"dsd_emits_denied_total", COUNTER, "emits.denied", 1,
         "Emits the platform refused (no permission)."},
        {"dsd_events_received_total", COUNTER, "events.received", 1,
         "Events received from the platform."},
        {"dsd_events_delivered_total", COUNTER, "events.delivered", 1,
         "Events handed to local subscribers (one per subscriber)."},
        {"process_cpu_seconds_total", COUNTER, "process.cpuMs", 1000,
         "Total user and system CPU time spent in seconds."},
        {"process_resident_memory_bytes", GAUGE, "process.residentBytes", 1,
         "Resident memory size in bytes."},
        {"process_virtual_memory_bytes", GAUGE, "process.virtualBytes", 1,
         "Virtual memory size in bytes."},
        {"process_open_fds", GAUGE, "process.openFds", 1,
         "Number of open file descriptors."},
        {"process_max_fds", GAUGE, "process.maxFds", 1,
         "Maximum number of open file descriptors."},
        {"process_start_time_seconds", GAUGE, "process.startTime", 1000,
         "Start time of the process since unix epoch in seconds."},
};

static void render_plain(struct out *o, const json_t *st, const struct plain *p)
{
	double v;

	if (!number(at(st, p->path), p->div, &v))
		return;
	header(o, p->name, p->kind, p->help);
	fprintf(o->f, "%s ", p->name);
	value(o, v);
}

/* ---- figures with labels ---- */

/*
 * One gauge per state, 1 for the current one.  The states are the keys of
 * connection.transitionsTo (every state, in the state machine's order).
 */
static void render_state(struct out *o, const json_t *st)
{
	const char *cur = json_string_value(at(st, "state"));
	const json_t *by = at(st, "connection.transitionsTo");
	const char *k;
	json_t *v;

	if (cur == NULL)
		return;
	header(o, "dsd_connection_state", GAUGE,
	       "The connection's state: 1 for the current one, else 0.");
	if (!json_is_object(by) || json_object_get(by, cur) == NULL) {
		labelled(o, "dsd_connection_state", "state", cur, 1);
		return;
	}
	json_object_foreach((json_t *)by, k, v) labelled(
	        o, "dsd_connection_state", "state", k, strcmp(k, cur) == 0);
}

static void render_transitions(struct out *o, const json_t *st)
{
	const json_t *by = at(st, "connection.transitionsTo");
	const char *k;
	json_t *v;

	if (!json_is_object(by) || json_object_size(by) == 0)
		return;
	header(o, "dsd_connection_transitions_total", COUNTER,
	       "State changes of the connection, by the state entered.");
	json_object_foreach((json_t *)by, k, v) if (json_is_integer(v))
	        labelled(o, "dsd_connection_transitions_total", "state", k,
	                 (double)json_integer_value(v));
}

/* Why the connection is in ERROR, while it is. */
static void render_error(struct out *o, const json_t *st)
{
	const char *cause = json_string_value(at(st, "errorCause"));
	const char *kind = json_string_value(at(st, "errorKind"));
	const char *kv[] = {"cause", cause, "kind", kind ? kind : ""};

	if (cause == NULL)
		return;
	header(o, "dsd_connection_error_info", INFO,
	       "Present while the connection is in ERROR: its cause and kind.");
	sample(o, "dsd_connection_error_info", 2, kv, 1);
}

/*
 * The platform: the URL dsd dials now (after a redirect, the one it was
 * sent to) and the configured one.  Both come from the status's "url" and
 * "configuredUrl", so whatever decides those decides these.
 */
static void render_platform(struct out *o, const json_t *st)
{
	const char *url = json_string_value(at(st, "url"));
	const char *conf = json_string_value(at(st, "configuredUrl"));
	const char *kv[] = {"url", url, "configured_url", conf ? conf : ""};

	if (url == NULL)
		return;
	header(o, "dsd_platform_info", INFO,
	       "The platform URL in use (label url) and the configured one.");
	sample(o, "dsd_platform_info", 2, kv, 1);
}

/* The durable spool's health, when there is one. */
static void render_spool_failed(struct out *o, const json_t *st)
{
	const char *state = json_string_value(at(st, "queue.spool.state"));

	if (state == NULL)
		return;
	header(o, "dsd_spool_failed", GAUGE,
	       "1 when the durable spool failed (emits are refused), else 0.");
	fprintf(o->f, "dsd_spool_failed %d\n", strcmp(state, "ok") != 0);
}

/*
 * The local clients holding the most in the write queue (queue.topApps:
 * at most a handful, so the number of series stays bounded).  Labels:
 * client, the number dsd gives each local connection (as in the log);
 * uid and comm (the program's name) while it is connected, else empty.
 */
static void render_top_apps(struct out *o, const json_t *st)
{
	static const struct {
		const char *name, *field, *help;
	} fam[] = {
	        {"dsd_queue_app_messages", "messages",
	         "Emits in the write queue of one of the local clients "
	         "holding the most."},
	        {"dsd_queue_app_bytes", "bytes",
	         "Bytes in the write queue of one of the local clients "
	         "holding the most."},
	};
	const json_t *apps = at(st, "queue.topApps");

	if (!json_is_array(apps))
		return;
	for (size_t f = 0; f < sizeof(fam) / sizeof(fam[0]); f++) {
		size_t i;
		json_t *a;

		header(o, fam[f].name, GAUGE, fam[f].help);
		json_array_foreach(apps, i, a)
		{
			const json_t *id = json_object_get(a, "client");
			const json_t *uid = json_object_get(a, "uid");
			const char *comm =
			        json_string_value(json_object_get(a, "comm"));
			const json_t *v = json_object_get(a, fam[f].field);
			char num[24], unum[24] = "";
			const char *kv[] = {"client", num,    "uid",
			                    unum,     "comm", comm ? comm : ""};

			if (!json_is_integer(id) || !json_is_integer(v))
				continue;
			snprintf(num, sizeof(num), "%lld",
			         (long long)json_integer_value(id));
			if (json_is_integer(uid))
				snprintf(unum, sizeof(unum), "%lld",
				         (long long)json_integer_value(uid));
			sample(o, fam[f].name, 3, kv,
			       (double)json_integer_value(v));
		}
	}
}

char *metrics_render(const json_t *status, size_t *ret_len)
{
	return metrics_render_as(status, METRICS_TEXT, ret_len);
}

char *metrics_render_as(const json_t *status, enum metrics_format format,
                        size_t *ret_len)
{
	struct out o = {.om = format == METRICS_OPENMETRICS};
	char *text = NULL;
	size_t len = 0;

	if (!json_is_object(status))
		return NULL;
	o.f = open_memstream(&text, &len);
	if (o.f == NULL)
		return NULL;
	render_state(&o, status);
	render_transitions(&o, status);
	render_error(&o, status);
	render_platform(&o, status);
	for (size_t i = 0; i < sizeof(plain) / sizeof(plain[0]); i++)
		render_plain(&o, status, &plain[i]);
	render_spool_failed(&o, status);
	render_top_apps(&o, status);
	if (o.om)
		fputs("# EOF\n", o.f);
	if (ferror(o.f)) {
		fclose(o.f);
		free(text);
		return NULL;
	}
	if (fclose(o.f) != 0) {
		free(text);
		return NULL;
	}
	if (ret_len)
		*ret_len = len;
	return text;
}

/*
 * `dsctl status` in human form.  The daemon's status object is guaranteed
 * to have state, reason, url and attempt; everything else is optional and
 * may grow.  The connection's own lines come first, composed from several
 * keys; then every other key, sections indented, each with a label.
 *
 * Labels come from the table `labels` (path "section.key" -> words and
 * the kind of value).  A key that is not in the table still gets a
 * readable line: its camelCase name is spelt out in words, and a name
 * ending in Ms or Bytes is shown as a duration or a size.  So a new key in
 * dsd shows up readably at once; an entry in the table only improves its
 * wording.  Nothing here prints raw key names.
 */
#include <ctype.h>
#include <stdbool.h>
#include <string.h>
#include <time.h>

#include "dsctl.h"

/* Values start in this column, nested or not. */
#define LABEL_WIDTH 24

int64_t dsctl_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void dsctl_format_time(int64_t unix_ms, char *buf, size_t size)
{
	time_t secs = (time_t)(unix_ms / 1000);
	int ms = (int)(unix_ms % 1000);
	struct tm tm;
	size_t n;

	if (ms < 0) {
		ms += 1000;
		secs--;
	}
	if (!gmtime_r(&secs, &tm) ||
	    (n = strftime(buf, size, "%Y-%m-%dT%H:%M:%S", &tm)) == 0) {
		snprintf(buf, size, "%lld", (long long)unix_ms);
		return;
	}
	snprintf(buf + n, size - n, ".%03dZ", ms);
}

void dsctl_format_duration(int64_t ms, char *buf, size_t size)
{
	long long s = (long long)(ms / 1000);

	if (ms < 0)
		snprintf(buf, size, "%lldms", (long long)ms);
	else if (ms < 1000)
		snprintf(buf, size, "%lldms", (long long)ms);
	else if (s < 60)
		snprintf(buf, size, "%.1fs", (double)ms / 1000);
	else if (s < 3600)
		snprintf(buf, size, "%lldm %02llds", s / 60, s % 60);
	else if (s < 86400)
		snprintf(buf, size, "%lldh %02lldm", s / 3600, s % 3600 / 60);
	else
		snprintf(buf, size, "%lldd %02lldh", s / 86400,
		         s % 86400 / 3600);
}

void dsctl_format_bytes(int64_t n, char *buf, size_t size)
{
	static const char *const units[] = {"KiB", "MiB", "GiB", "TiB"};
	double v = (double)n;
	int u = -1;

	if (n < 1024) {
		snprintf(buf, size, "%lld B", (long long)n);
		return;
	}
	while (v >= 1024 && u < 3) {
		v /= 1024;
		u++;
	}
	if (v == (double)(long long)v)
		snprintf(buf, size, "%lld %s", (long long)v, units[u]);
	else
		snprintf(buf, size, "%.1f %s", v, units[u]);
}

/* -- labels -- */

enum kind {
	K_PLAIN,    /* as it comes */
	K_DURATION, /* milliseconds */
	K_BYTES,
	K_COUNTS,    /* an object of NAME: count, on one line, zeros left out */
	K_BYTE_RATE, /* bytes per second; 0: not measured yet */
	K_RATE,      /* per second; 0: not measured yet */
};

struct label {
	const char *path; /* "key" at the top, "section.key" below */
	const char *text;
	enum kind kind;
	const char *if_null; /* shown for null; NULL: the line is left out */
};

static const struct label labels[] = {
        {"errorCause", "Error cause", K_PLAIN, NULL},
        {"errorKind", "Error kind", K_PLAIN, NULL},
        {"uptimeMs", "Up for", K_DURATION, NULL},

        {"connection", "Connection", K_PLAIN, NULL},
        {"connection.attempts", "Attempts made", K_PLAIN, NULL},
        {"connection.opens", "Times opened", K_PLAIN, NULL},
        {"connection.losses", "Connections lost", K_PLAIN, NULL},
        {"connection.framesIn", "Frames received", K_PLAIN, NULL},
        {"connection.pings", "Pings sent", K_PLAIN, NULL},
        {"connection.transitions", "State changes", K_PLAIN, NULL},
        {"connection.transitionsTo", "Entered", K_COUNTS, NULL},

        {"clients", "Local clients", K_PLAIN, NULL},
        {"clients.connected", "Connected", K_PLAIN, NULL},
        {"clients.dropped", "Dropped by dsd", K_PLAIN, NULL},
        {"clients.refused", "Turned away", K_PLAIN, NULL},
        {"clients.bufferedBytes", "Buffered for them", K_BYTES, NULL},
        {"clients.bufferLimit", "Buffer limit", K_BYTES, NULL},
        {"clients.droppedOverBuffer", "Dropped, buffer full", K_PLAIN, NULL},
        {"clients.denied", "Requests denied", K_PLAIN, NULL},

        {"subscriptions", "Subscriptions", K_PLAIN, NULL},
        {"subscriptions.names", "Names upstream", K_PLAIN, NULL},
        {"subscriptions.acked", "Acknowledged", K_PLAIN, NULL},
        {"subscriptions.pending", "Pending", K_PLAIN, NULL},
        {"subscriptions.denied", "Denied", K_PLAIN, NULL},
        {"subscriptions.local", "Local subscriptions", K_PLAIN, NULL},
        {"subscriptions.denials", "Denials received", K_PLAIN, NULL},

        {"queue", "Write queue", K_PLAIN, NULL},
        {"queue.messages", "Messages", K_PLAIN, NULL},
        {"queue.bytes", "Size", K_BYTES, NULL},
        {"queue.unconfirmed", "Unconfirmed", K_PLAIN, NULL},
        {"queue.unconfirmedBytes", "Unconfirmed size", K_BYTES, NULL},
        {"queue.apps", "Apps with emits held", K_PLAIN, NULL},
        {"queue.maxMessages", "Limit, messages", K_PLAIN, NULL},
        {"queue.maxBytes", "Limit, size", K_BYTES, NULL},
        {"queue.overflow", "When full", K_PLAIN, NULL},
        {"queue.window", "Send window", K_PLAIN, NULL},
        {"window.bytes", "Size", K_BYTES, NULL},
        {"window.messages", "Messages", K_PLAIN, NULL},
        {"window.confirmedBytesPerSecond", "Confirmed, size", K_BYTE_RATE,
         NULL},
        {"window.confirmedMessagesPerSecond", "Confirmed, messages", K_RATE,
         NULL},
        {"queue.topApps", "Apps holding most", K_PLAIN, NULL},
        {"queue.spool", "Spool", K_PLAIN, "none (memory only)"},
        {"spool.path", "Path", K_PLAIN, NULL},
        {"spool.state", "State", K_PLAIN, NULL},
        {"spool.error", "Error", K_PLAIN, NULL},
        {"spool.records", "Records", K_PLAIN, NULL},
        {"spool.bytes", "Size", K_BYTES, NULL},

        {"emits", "Emits", K_PLAIN, NULL},
        {"emits.accepted", "Accepted", K_PLAIN, NULL},
        {"emits.sent", "Sent", K_PLAIN, NULL},
        {"emits.queued", "Answered queued", K_PLAIN, NULL},
        {"emits.confirmed", "Confirmed", K_PLAIN, NULL},
        {"emits.unconfirmed", "Awaiting confirmation", K_PLAIN, NULL},
        {"emits.resent", "Resent", K_PLAIN, NULL},
        {"emits.requeued", "Requeued", K_PLAIN, NULL},
        {"emits.dropped", "Dropped (drop-oldest)", K_PLAIN, NULL},
        {"emits.rejected", "Rejected", K_PLAIN, NULL},
        {"emits.denied", "Denied by platform", K_PLAIN, NULL},

        {"events", "Events", K_PLAIN, NULL},
        {"events.received", "From the platform", K_PLAIN, NULL},
        {"events.delivered", "Delivered locally", K_PLAIN, NULL},

        {"process", "Process", K_PLAIN, NULL},
        {"process.pid", "PID", K_PLAIN, NULL},
        {"process.cpuMs", "CPU time", K_DURATION, NULL},
        {"process.residentBytes", "Resident memory", K_BYTES, NULL},
        {"process.virtualBytes", "Virtual memory", K_BYTES, NULL},
        {"process.openFds", "Open files", K_PLAIN, NULL},
        {"process.maxFds", "Open files limit", K_PLAIN, NULL},
        {"process.startTime", "Started", K_PLAIN, NULL},
};

static const struct label *find_label(const char *section, const char *key)
{
	char path[256];
	size_t i;

	snprintf(path, sizeof(path), "%s%s%s", section ? section : "",
	         section ? "." : "", key);
	for (i = 0; i < sizeof(labels) / sizeof(labels[0]); i++)
		if (strcmp(labels[i].path, path) == 0)
			return &labels[i];
	return NULL;
}

static bool ends_with(const char *s, const char *end)
{
	size_t n = strlen(s), m = strlen(end);

	return n >= m && strcmp(s + n - m, end) == 0;
}

/* "droppedOverBuffer" -> "Dropped over buffer", "framesIn" -> "Frames
 * in"; a trailing "Ms" goes (the value says it is a duration). */
static void words(const char *key, bool capital, char *buf, size_t size)
{
	size_t n = 0, len = strlen(key);

	if (ends_with(key, "Ms") && len > 2)
		len -= 2;
	for (size_t i = 0; i < len && n + 2 < size; i++) {
		char ch = key[i];

		if (ch == '_' || ch == '-') {
			buf[n++] = ' ';
			continue;
		}
		if (isupper((unsigned char)ch) && i > 0) {
			buf[n++] = ' ';
			ch = (char)tolower((unsigned char)ch);
		}
		buf[n++] = ch;
	}
	buf[n] = '\0';
	if (capital && n > 0)
		buf[0] = (char)toupper((unsigned char)buf[0]);
}

static enum kind guess_kind(const char *key)
{
	if (ends_with(key, "Ms") || ends_with(key, "_ms"))
		return K_DURATION;
	if (ends_with(key, "Bytes") || ends_with(key, "bytes"))
		return K_BYTES;
	return K_PLAIN;
}

static bool looks_like_time(const char *key, json_t *v)
{
	size_t n = strlen(key);

	/* After 2001 in unix ms: a timestamp, not a count. */
	if (!json_is_integer(v) || json_integer_value(v) < 1000000000000LL)
		return false;
	return strcmp(key, "at") == 0 || strstr(key, "since") ||
	       (n > 3 && strcmp(key + n - 3, "_at") == 0) ||
	       (n > 2 && strcmp(key + n - 2, "At") == 0) ||
	       (n > 4 && strcmp(key + n - 4, "Time") == 0);
}

static void print_scalar(FILE *f, const char *key, enum kind kind, json_t *v)
{
	char buf[64];

	if (looks_like_time(key, v)) {
		dsctl_format_time(json_integer_value(v), buf, sizeof(buf));
		fputs(buf, f);
	} else if (kind == K_DURATION && json_is_integer(v)) {
		dsctl_format_duration(json_integer_value(v), buf, sizeof(buf));
		fputs(buf, f);
	} else if (kind == K_BYTES && json_is_integer(v)) {
		dsctl_format_bytes(json_integer_value(v), buf, sizeof(buf));
		fputs(buf, f);
	} else if ((kind == K_BYTE_RATE || kind == K_RATE) &&
	           json_is_integer(v) && json_integer_value(v) == 0) {
		fputs("not measured yet", f);
	} else if (kind == K_BYTE_RATE && json_is_integer(v)) {
		dsctl_format_bytes(json_integer_value(v), buf, sizeof(buf));
		fprintf(f, "%s/s", buf);
	} else if (kind == K_RATE && json_is_integer(v)) {
		fprintf(f, "%lld/s", (long long)json_integer_value(v));
	} else if (json_is_string(v)) {
		fputs(json_string_value(v), f);
	} else {
		char *s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
		fputs(s ? s : "?", f);
		free(s);
	}
}

/* One object of a list on one line: "client 7, messages 12, size 3 KiB". */
static void print_item(FILE *f, const char *section, json_t *o)
{
	const char *k, *sep = "";
	json_t *x;

	json_object_foreach(o, k, x)
	{
		const struct label *l = find_label(section, k);
		char w[128];

		words(k, false, w, sizeof(w));
		fprintf(f, "%s%s ", sep, w);
		print_scalar(f, k, l ? l->kind : guess_kind(k), x);
		sep = ", ";
	}
}

static void print_value(FILE *f, int indent, const char *section,
                        const char *key, json_t *v)
{
	const struct label *l = find_label(section, key);
	char label[160], w[128];

	if (l)
		snprintf(label, sizeof(label), "%s:", l->text);
	else {
		words(key, true, w, sizeof(w));
		snprintf(label, sizeof(label), "%s:", w);
	}
	if (json_is_null(v)) {
		if (l && l->if_null)
			fprintf(f, "%*s%-*s %s\n", indent, "",
			        LABEL_WIDTH - indent, label, l->if_null);
		return; /* null says "not applicable" */
	}
	if (l && l->kind == K_COUNTS && json_is_object(v)) {
		const char *k, *sep = "";
		json_t *x;

		fprintf(f, "%*s%-*s ", indent, "", LABEL_WIDTH - indent, label);
		json_object_foreach(v, k, x)
		{
			if (json_is_integer(x) && json_integer_value(x) == 0)
				continue;
			fprintf(f, "%s%s ", sep, k);
			print_scalar(f, k, K_PLAIN, x);
			sep = ", ";
		}
		fputs(*sep ? "\n" : "none\n", f);
		return;
	}
	if (json_is_object(v) && json_object_size(v) > 0) {
		const char *k;
		json_t *x;

		fprintf(f, "%*s%s\n", indent, "", label);
		json_object_foreach(v, k, x)
		        print_value(f, indent + 2, key, k, x);
		return;
	}
	if (json_is_array(v) && json_array_size(v) > 0) {
		size_t i;
		json_t *x;

		fprintf(f, "%*s%s\n", indent, "", label);
		json_array_foreach(v, i, x)
		{
			fprintf(f, "%*s- ", indent + 2, "");
			if (json_is_object(x))
				print_item(f, key, x);
			else
				print_scalar(f, key, K_PLAIN, x);
			fputc('\n', f);
		}
		return;
	}
	fprintf(f, "%*s%-*s ", indent, "", LABEL_WIDTH - indent, label);
	if (json_is_array(v) || json_is_object(v))
		fputs("none", f);
	else
		print_scalar(f, key, l ? l->kind : guess_kind(key), v);
	fputc('\n', f);
}

/* -- the connection's lines -- */

/* The first of several spellings the daemon might use. */
static json_t *get_any(json_t *o, const char *const *keys, const char **ret)
{
	for (; *keys; keys++) {
		json_t *v = json_object_get(o, *keys);
		if (v && !json_is_null(v)) {
			*ret = *keys;
			return v;
		}
	}
	return NULL;
}

/* dsd's names first; the snake_case spellings cost nothing to accept. */
static const char *const k_state[] = {"state", NULL};
static const char *const k_since[] = {"since", "state_since", NULL};
static const char *const k_ago[] = {"sinceMs", "since_ms", NULL};
static const char *const k_reason[] = {"reason", NULL};
static const char *const k_url[] = {"url", "current_url", NULL};
static const char *const k_transport[] = {"transport", NULL};
static const char *const k_conf_url[] = {"configuredUrl", "configured_url",
                                         NULL};
static const char *const k_urls[] = {"urls", NULL};
static const char *const k_attempt[] = {"attempt", NULL};
static const char *const k_max[] = {"maxAttempts", "max_attempts", NULL};
static const char *const k_retry[] = {"nextRetryMs", "next_retry_ms", NULL};

struct used {
	const char *key[16];
	size_t n;
};

static void use(struct used *u, const char *const *keys)
{
	for (; *keys; keys++)
		if (u->n < sizeof(u->key) / sizeof(u->key[0]))
			u->key[u->n++] = *keys;
}

static bool is_used(const struct used *u, const char *k)
{
	size_t i;

	for (i = 0; i < u->n; i++)
		if (strcmp(u->key[i], k) == 0)
			return true;
	return false;
}

static void print_since(FILE *f, json_t *st, int64_t now_ms)
{
	const char *key;
	json_t *v = get_any(st, k_since, &key), *a;
	int64_t at, ago;
	char ts[40], d[64];

	if (!v)
		return;
	if (!json_is_integer(v)) {
		fputs(" since ", f);
		print_scalar(f, key, K_PLAIN, v);
		return;
	}
	at = json_integer_value(v);
	ago = now_ms - at;
	/* dsd's own count is immune to clock steps. */
	a = get_any(st, k_ago, &key);
	if (a && json_is_integer(a))
		ago = json_integer_value(a);
	dsctl_format_time(at, ts, sizeof(ts));
	fprintf(f, " since %s", ts);
	if (ago >= 0) {
		dsctl_format_duration(ago, d, sizeof(d));
		fprintf(f, " (%s ago)", d);
	}
}

/* The platform URLs, one line each: which one dsd is on, and the last
 * failure of each (when, why).  A single URL that never failed says
 * nothing the "URL:" line did not. */
static void print_urls(FILE *f, json_t *st)
{
	json_t *a = json_object_get(st, "urls"), *x;
	size_t i;

	if (!json_is_array(a))
		return;
	if (json_array_size(a) == 1 &&
	    !json_is_string(
	            json_object_get(json_array_get(a, 0), "lastFailure")))
		return;
	json_array_foreach(a, i, x)
	{
		json_t *why = json_object_get(x, "lastFailure");
		json_t *at = json_object_get(x, "lastFailureAt");
		const char *url = json_string_value(json_object_get(x, "url"));
		char ts[40] = "";

		if (json_is_integer(at))
			dsctl_format_time(json_integer_value(at), ts,
			                  sizeof(ts));
		fprintf(f, "%-*s %s%s", LABEL_WIDTH,
		        i == 0 ? "Platform URLs:" : "", url ? url : "?",
		        json_is_true(json_object_get(x, "current"))
		                ? " (current)"
		                : "");
		if (json_is_string(why))
			fprintf(f, "; failed %lld times, last at %s: %s",
			        (long long)json_integer_value(
			                json_object_get(x, "failures")),
			        ts, json_string_value(why));
		fputc('\n', f);
	}
}

/* One "Label: value" line for the first key of keys that is there. */
static json_t *known(FILE *f, json_t *st, const char *label,
                     const char *const *keys, enum kind kind, bool newline)
{
	const char *key;
	json_t *v = get_any(st, keys, &key);

	if (!v)
		return NULL;
	fprintf(f, "%-*s ", LABEL_WIDTH, label);
	print_scalar(f, key, kind, v);
	if (newline)
		fputc('\n', f);
	return v;
}

/*
 * attempt is the number of the current or last attempt, and 0 once a
 * connection has held: "0 of 5" would read as "no retries left", so 0 is
 * spelt out, and the maximum is called what it is, a limit.
 */
static void print_attempt(FILE *f, json_t *st)
{
	const char *key;
	json_t *n = get_any(st, k_attempt, &key);
	json_t *max = get_any(st, k_max, &key);
	char limit[64] = "";

	if (!n)
		return;
	if (max && json_is_integer(max))
		snprintf(limit, sizeof(limit), "up to %lld in a row",
		         (long long)json_integer_value(max));
	else if (max && json_is_string(max))
		snprintf(limit, sizeof(limit), "no limit"); /* "infinity" */
	fprintf(f, "%-*s ", LABEL_WIDTH, "Attempt:");
	if (json_is_integer(n) && json_integer_value(n) == 0)
		fputs("none since the connection held", f);
	else
		print_scalar(f, key, K_PLAIN, n);
	if (*limit)
		fprintf(f, " (%s)", limit);
	fputc('\n', f);
}

void dsctl_print_status(FILE *f, json_t *st, int64_t now_ms)
{
	struct used u = {.n = 0};
	const char *k;
	json_t *v, *url, *conf;

	if (known(f, st, "State:", k_state, K_PLAIN, false)) {
		print_since(f, st, now_ms);
		fputc('\n', f);
	}
	known(f, st, "Reason:", k_reason, K_PLAIN, true);
	url = known(f, st, "URL:", k_url, K_PLAIN, true);
	/* How the open connection is carried; null (left out) when none. */
	known(f, st, "Transport:", k_transport, K_PLAIN, true);
	/* Only when it differs: after a REDIRECT. */
	conf = get_any(st, k_conf_url, &k);
	if (conf && !(url && json_equal(url, conf)))
		known(f, st, "Configured URL:", k_conf_url, K_PLAIN, true);
	print_urls(f, st);
	print_attempt(f, st);
	known(f, st, "Next attempt in:", k_retry, K_DURATION, true);
	use(&u, k_state);
	use(&u, k_since);
	use(&u, k_ago);
	use(&u, k_reason);
	use(&u, k_url);
	use(&u, k_transport);
	use(&u, k_conf_url);
	use(&u, k_urls);
	use(&u, k_attempt);
	use(&u, k_max);
	use(&u, k_retry);

	json_object_foreach(st, k, v)
	{
		if (!is_used(&u, k))
			print_value(f, 0, NULL, k, v);
	}
}

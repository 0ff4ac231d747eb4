/*
 * `dsctl status` in human form.  The daemon's status object is guaranteed
 * to have state, reason, url and attempt; everything else is optional and
 * may grow, so known keys get a tidy line and the rest are printed as they
 * come, nested objects indented.
 */
#include <stdbool.h>
#include <string.h>
#include <time.h>

#include "dsctl.h"

#define LABEL_WIDTH 18

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

static bool looks_like_time(const char *key, json_t *v)
{
	size_t n = strlen(key);

	/* After 2001 in unix ms: a timestamp, not a count. */
	if (!json_is_integer(v) || json_integer_value(v) < 1000000000000LL)
		return false;
	return strcmp(key, "at") == 0 || strstr(key, "since") ||
	       (n > 3 && strcmp(key + n - 3, "_at") == 0) ||
	       (n > 2 && strcmp(key + n - 2, "At") == 0);
}

static void print_scalar(FILE *f, const char *key, json_t *v)
{
	char ts[40];

	if (looks_like_time(key, v)) {
		dsctl_format_time(json_integer_value(v), ts, sizeof(ts));
		fputs(ts, f);
	} else if (json_is_string(v)) {
		fputs(json_string_value(v), f);
	} else {
		char *s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
		fputs(s ? s : "?", f);
		free(s);
	}
}

static void print_value(FILE *f, int indent, const char *key, json_t *v)
{
	char label[256];

	snprintf(label, sizeof(label), "%s:", key);
	if (json_is_object(v) && json_object_size(v) > 0) {
		const char *k;
		json_t *x;

		fprintf(f, "%*s%s\n", indent, "", label);
		json_object_foreach(v, k, x) print_value(f, indent + 2, k, x);
		return;
	}
	if (json_is_array(v) && json_array_size(v) > 0 &&
	    (json_is_object(json_array_get(v, 0)) ||
	     json_is_array(json_array_get(v, 0)))) {
		size_t i;
		json_t *x;

		fprintf(f, "%*s%s\n", indent, "", label);
		json_array_foreach(v, i, x)
		{
			char idx[32];

			snprintf(idx, sizeof(idx), "[%zu]", i);
			print_value(f, indent + 2, idx, x);
		}
		return;
	}
	fprintf(f, "%*s%-*s ", indent, "", LABEL_WIDTH - indent, label);
	print_scalar(f, key, v);
	fputc('\n', f);
}

/* dsd's names first; the snake_case spellings cost nothing to accept. */
static const char *const k_state[] = {"state", NULL};
static const char *const k_since[] = {"since", "state_since", NULL};
static const char *const k_ago[] = {"sinceMs", "since_ms", NULL};
static const char *const k_reason[] = {"reason", NULL};
static const char *const k_url[] = {"url", "current_url", NULL};
static const char *const k_conf_url[] = {"configuredUrl", "configured_url",
                                         NULL};
static const char *const k_urls[] = {"urls", NULL};
static const char *const k_attempt[] = {"attempt", NULL};
static const char *const k_max[] = {"maxAttempts", "max_attempts", NULL};
static const char *const k_retry[] = {"nextRetryMs", "next_retry_ms", NULL};

static void format_duration(int64_t ms, char *buf, size_t size)
{
	long long s = (long long)(ms / 1000);

	if (s < 60)
		snprintf(buf, size, "%llds", s);
	else if (s < 3600)
		snprintf(buf, size, "%lldm %llds", s / 60, s % 60);
	else if (s < 86400)
		snprintf(buf, size, "%lldh %lldm", s / 3600, s % 3600 / 60);
	else
		snprintf(buf, size, "%lldd %lldh", s / 86400, s % 86400 / 3600);
}

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
		print_scalar(f, key, v);
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
		format_duration(ago, d, sizeof(d));
		fprintf(f, " (%s ago)", d);
	}
}

/* The platform URLs, one line each: which one dsd is on, and the last
 * failure of each (when, why). */
static void print_urls(FILE *f, json_t *st)
{
	json_t *a = json_object_get(st, "urls"), *x;
	size_t i;

	if (!json_is_array(a))
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
                     const char *const *keys, bool newline)
{
	const char *key;
	json_t *v = get_any(st, keys, &key);

	if (!v)
		return NULL;
	fprintf(f, "%-*s ", LABEL_WIDTH, label);
	print_scalar(f, key, v);
	if (newline)
		fputc('\n', f);
	return v;
}

void dsctl_print_status(FILE *f, json_t *st, int64_t now_ms)
{
	struct used u = {.n = 0};
	const char *k;
	json_t *v;

	if (known(f, st, "State:", k_state, false)) {
		print_since(f, st, now_ms);
		fputc('\n', f);
	}
	known(f, st, "Reason:", k_reason, true);
	known(f, st, "URL:", k_url, true);
	known(f, st, "Configured URL:", k_conf_url, true);
	print_urls(f, st);
	if (known(f, st, "Attempt:", k_attempt, false)) {
		const char *key;
		json_t *max = get_any(st, k_max, &key);

		if (max) {
			fputs(" of ", f);
			print_scalar(f, key, max);
		}
		fputc('\n', f);
	}
	if ((v = known(f, st, "Next retry:", k_retry, false)))
		fputs(json_is_number(v) ? " ms\n" : "\n", f);
	use(&u, k_state);
	use(&u, k_since);
	use(&u, k_ago);
	use(&u, k_reason);
	use(&u, k_url);
	use(&u, k_conf_url);
	use(&u, k_urls);
	use(&u, k_attempt);
	use(&u, k_max);
	use(&u, k_retry);

	json_object_foreach(st, k, v)
	{
		/* null says "not applicable" (no retry pending, ...). */
		if (!is_used(&u, k) && !json_is_null(v))
			print_value(f, 0, k, v);
	}
}

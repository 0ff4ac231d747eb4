/* Unit tests for metrics.c: the status document in Prometheus' text
 * format.  Every family has HELP and TYPE, names keep the conventions,
 * label values are escaped, absent figures leave their family out. */
#include <check.h>
#include <ctype.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "check-run.h"
#include "metrics.h"

/* A status document shaped as status.c builds it (the parts metrics.c
 * reads), with a URL that needs every escape. */
static json_t *sample_status(const char *url)
{
	json_t *app;
	json_t *st = json_pack(
	        "{s:s, s:s, s:n, s:n, s:I, s:s, s:s, s:I,"
	        " s:{s:I, s:I, s:I, s:I, s:I, s:I,"
	        "    s:{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I}},"
	        " s:{s:I, s:I, s:I, s:I, s:I, s:I, s:I},"
	        " s:{s:I, s:I, s:I, s:I, s:I, s:I},"
	        " s:{s:I, s:I, s:I, s:I, s:I, s:I, s:I,"
	        "    s:[{s:I, s:I, s:I}, {s:I, s:I, s:I}], s:n},"
	        " s:{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I},"
	        " s:{s:I, s:I},"
	        " s:{s:I, s:I, s:I, s:I, s:I, s:I, s:I}}",
	        "state", "OFFLINE", "reason", "paused", "errorCause",
	        "errorKind", "sinceMs", (json_int_t)1500, "url", url,
	        "configuredUrl", "ws://a/ds", "attempt", (json_int_t)0,
	        "connection", "attempts", (json_int_t)3, "opens", (json_int_t)2,
	        "losses", (json_int_t)1, "framesIn", (json_int_t)40, "pings",
	        (json_int_t)5, "transitions", (json_int_t)9, "transitionsTo",
	        "CLOSED", (json_int_t)0, "AWAITING_CONNECTION", (json_int_t)2,
	        "CHALLENGING", (json_int_t)2, "AWAITING_AUTHENTICATION",
	        (json_int_t)2, "AUTHENTICATING", (json_int_t)2, "OPEN",
	        (json_int_t)2, "RECONNECTING", (json_int_t)1, "OFFLINE",
	        (json_int_t)1, "ERROR", (json_int_t)0, "clients", "connected",
	        (json_int_t)2, "dropped", (json_int_t)0, "refused",
	        (json_int_t)0, "bufferedBytes", (json_int_t)0, "bufferLimit",
	        (json_int_t)1024, "droppedOverBuffer", (json_int_t)0, "denied",
	        (json_int_t)0, "subscriptions", "names", (json_int_t)1, "acked",
	        (json_int_t)1, "pending", (json_int_t)0, "denied",
	        (json_int_t)0, "local", (json_int_t)1, "denials", (json_int_t)0,
	        "queue", "messages", (json_int_t)7, "bytes", (json_int_t)700,
	        "unconfirmed", (json_int_t)0, "unconfirmedBytes", (json_int_t)0,
	        "apps", (json_int_t)2, "maxMessages", (json_int_t)100000,
	        "maxBytes", (json_int_t)67108864, "topApps", "client",
	        (json_int_t)4, "messages", (json_int_t)5, "bytes",
	        (json_int_t)500, "client", (json_int_t)9, "messages",
	        (json_int_t)2, "bytes", (json_int_t)200, "spool", "emits",
	        "accepted", (json_int_t)12, "sent", (json_int_t)5, "queued",
	        (json_int_t)7, "confirmed", (json_int_t)5, "resent",
	        (json_int_t)1, "requeued", (json_int_t)1, "dropped",
	        (json_int_t)0, "rejected", (json_int_t)0, "denied",
	        (json_int_t)0, "events", "received", (json_int_t)3, "delivered",
	        (json_int_t)6, "process", "pid", (json_int_t)42, "cpuMs",
	        (json_int_t)100, "residentBytes", (json_int_t)1000000,
	        "virtualBytes", (json_int_t)2000000, "openFds", (json_int_t)9,
	        "maxFds", (json_int_t)1024, "startTime",
	        (json_int_t)1796033749500);

	ck_assert_ptr_nonnull(st);
	/* The first top app is still connected: its uid and program name
	 * (which the program chose: escaped like any label value). */
	app = json_array_get(
	        json_object_get(json_object_get(st, "queue"), "topApps"), 0);
	json_object_set_new(app, "uid", json_integer(1000));
	json_object_set_new(app, "comm", json_string("pub\"x"));
	/* The send window after a fast link's first sample (test_status.c
	 * derives these from send_window.c). */
	json_object_set_new(
	        json_object_get(st, "queue"), "window",
	        json_pack("{s:I, s:I, s:I, s:I}", "bytes", (json_int_t)28672,
	                  "messages", (json_int_t)221,
	                  "confirmedBytesPerSecond", (json_int_t)14336000,
	                  "confirmedMessagesPerSecond", (json_int_t)110500));
	return st;
}

static char *render(json_t *st)
{
	char *text = metrics_render(st, NULL);

	json_decref(st);
	ck_assert_ptr_nonnull(text);
	return text;
}

static bool has_line(const char *text, const char *line)
{
	size_t n = strlen(line);

	for (const char *p = text; (p = strstr(p, line)) != NULL; p++)
		if ((p == text || p[-1] == '\n') && p[n] == '\n')
			return true;
	return false;
}

static bool valid_name(const char *s, size_t n)
{
	if (n == 0 || !(isalpha((unsigned char)s[0]) || s[0] == '_'))
		return false;
	for (size_t i = 1; i < n; i++)
		if (!isalnum((unsigned char)s[i]) && s[i] != '_')
			return false;
	return true;
}

/*
 * Walks the text as promtool would: every sample belongs to the family
 * whose HELP and TYPE came just before it, names are valid, a family is
 * declared once, counters end in _total, and every family has a sample.
 */
START_TEST(test_every_family_declared)
{
	char *text = render(sample_status("ws://a/ds"));
	char family[128] = "", type[16] = "", seen[8192] = " ";
	int samples_in_family = -1, families = 0;
	char *save = NULL;

	for (char *l = strtok_r(text, "\n", &save); l;
	     l = strtok_r(NULL, "\n", &save)) {
		char name[128];

		if (strncmp(l, "# HELP ", 7) == 0) {
			char key[140];
			size_t n = strcspn(l + 7, " ");

			ck_assert_msg(samples_in_family != 0,
			              "family %s has no sample", family);
			ck_assert_msg(valid_name(l + 7, n), "bad name: %s", l);
			ck_assert_uint_lt(n, sizeof(family));
			memcpy(family, l + 7, n);
			family[n] = '\0';
			ck_assert_msg(l[7 + n] == ' ' && l[8 + n] != '\0',
			              "HELP without text: %s", l);
			snprintf(key, sizeof(key), " %s ", family);
			ck_assert_msg(strstr(seen, key) == NULL,
			              "family %s declared twice", family);
			ck_assert_uint_lt(strlen(seen) + strlen(key),
			                  sizeof(seen));
			strcat(seen, key + 1);
			type[0] = '\0';
			samples_in_family = -1;
			families++;
			continue;
		}
		if (strncmp(l, "# TYPE ", 7) == 0) {
			char want[160];

			ck_assert_msg(samples_in_family == -1 && !type[0],
			              "TYPE not right after HELP: %s", l);
			snprintf(want, sizeof(want), "# TYPE %s ", family);
			ck_assert_msg(strncmp(l, want, strlen(want)) == 0,
			              "TYPE for another family: %s", l);
			snprintf(type, sizeof(type), "%s", l + strlen(want));
			ck_assert_msg(strcmp(type, "gauge") == 0 ||
			                      strcmp(type, "counter") == 0,
			              "type %s", type);
			if (strcmp(type, "counter") == 0)
				ck_assert_msg(
				        strlen(family) > 6 &&
				                strcmp(family + strlen(family) -
				                               6,
				                       "_total") == 0,
				        "counter %s without _total", family);
			samples_in_family = 0;
			continue;
		}
		ck_assert_msg(l[0] != '#', "stray comment: %s", l);
		ck_assert_msg(type[0], "sample before HELP/TYPE: %s", l);
		snprintf(name, sizeof(name), "%.*s", (int)strcspn(l, "{ "), l);
		ck_assert_msg(strcmp(name, family) == 0,
		              "sample %s under family %s", name, family);
		ck_assert_msg(strchr(l, ' ') != NULL, "no value: %s", l);
		samples_in_family++;
	}
	ck_assert_int_gt(samples_in_family, 0);
	ck_assert_int_ge(families, 40);
	free(text);
}
END_TEST

START_TEST(test_label_values_escaped)
{
	char *text = render(sample_status("ws://h/\"q\"\\p\nx"));

	ck_assert(has_line(
	        text, "dsd_platform_info{url=\"ws://h/\\\"q\\\"\\\\p\\nx\","
	              "configured_url=\"ws://a/ds\"} 1"));
	free(text);
}
END_TEST

START_TEST(test_values)
{
	char *text = render(sample_status("ws://a/ds"));

	/* One state gauge per state, 1 for the current one only. */
	ck_assert(has_line(text, "dsd_connection_state{state=\"OFFLINE\"} 1"));
	ck_assert(has_line(text, "dsd_connection_state{state=\"OPEN\"} 0"));
	ck_assert(has_line(text, "dsd_connection_state{state=\"ERROR\"} 0"));
	ck_assert(has_line(
	        text, "dsd_connection_transitions_total{state=\"OPEN\"} 2"));
	/* Base units: milliseconds become seconds. */
	ck_assert(has_line(text, "dsd_connection_state_seconds 1.5"));
	ck_assert(has_line(text, "dsd_connection_losses_total 1"));
	ck_assert(has_line(text, "dsd_queue_messages 7"));
	ck_assert(has_line(text, "dsd_queue_bytes 700"));
	ck_assert(has_line(text, "dsd_send_window_bytes 28672"));
	ck_assert(has_line(text, "dsd_send_window_messages 221"));
	ck_assert(has_line(text, "dsd_confirm_rate_bytes_per_second 14336000"));
	ck_assert(
	        has_line(text, "dsd_confirm_rate_messages_per_second 110500"));
	ck_assert(has_line(text, "dsd_queue_app_messages{client=\"4\","
	                         "uid=\"1000\",comm=\"pub\\\"x\"} 5"));
	/* A client gone: its emits stay, its uid and name are unknown. */
	ck_assert(has_line(text, "dsd_queue_app_bytes{client=\"9\",uid=\"\","
	                         "comm=\"\"} 200"));
	ck_assert(has_line(text, "dsd_emits_queued_total 7"));
	ck_assert(has_line(text, "dsd_emits_resent_total 1"));
	ck_assert(has_line(text, "dsd_events_delivered_total 6"));
	ck_assert(has_line(text, "dsd_clients 2"));
	ck_assert(has_line(text, "dsd_subscriptions 1"));
	/* The shortest form that reads back. */
	ck_assert(has_line(text, "process_cpu_seconds_total 0.1"));
	ck_assert(has_line(text, "process_start_time_seconds 1796033749.5"));
	ck_assert(has_line(text, "process_open_fds 9"));
	free(text);
}
END_TEST

/* No spool, no ERROR: those families are left out whole, not empty. */
START_TEST(test_absent_figures_left_out)
{
	json_t *st = sample_status("ws://a/ds");
	char *text;

	json_object_del(json_object_get(st, "process"), "openFds");
	text = render(st);
	ck_assert_ptr_null(strstr(text, "dsd_spool_"));
	ck_assert_ptr_null(strstr(text, "dsd_connection_error_info"));
	ck_assert_ptr_null(strstr(text, "process_open_fds"));
	ck_assert_ptr_nonnull(strstr(text, "process_max_fds 1024\n"));
	free(text);
}
END_TEST

START_TEST(test_error_and_spool)
{
	json_t *st = sample_status("ws://a/ds");
	char *text;

	json_object_set_new(st, "state", json_string("ERROR"));
	json_object_set_new(st, "errorCause", json_string("rejected"));
	json_object_set_new(st, "errorKind", json_string("permanent"));
	json_object_set_new(json_object_get(st, "queue"), "spool",
	                    json_pack("{s:s, s:s, s:s, s:I, s:I}", "path", "/x",
	                              "state", "failed", "error", "disk",
	                              "records", (json_int_t)3, "bytes",
	                              (json_int_t)30));
	text = render(st);
	ck_assert(has_line(text, "dsd_connection_state{state=\"ERROR\"} 1"));
	ck_assert(has_line(text, "dsd_connection_state{state=\"OFFLINE\"} 0"));
	ck_assert(has_line(text, "dsd_connection_error_info{cause=\"rejected\","
	                         "kind=\"permanent\"} 1"));
	ck_assert(has_line(text, "dsd_spool_failed 1"));
	ck_assert(has_line(text, "dsd_spool_records 3"));
	free(text);
}
END_TEST

/* OpenMetrics: counter and info families named without their suffix,
 * the info type, "# EOF" last; the samples as in the text format. */
START_TEST(test_openmetrics)
{
	json_t *st = sample_status("ws://a/ds");
	char *om = metrics_render_as(st, METRICS_OPENMETRICS, NULL);
	char *text = metrics_render(st, NULL);
	size_t n;

	json_decref(st);
	ck_assert_ptr_nonnull(om);
	ck_assert_ptr_nonnull(text);
	n = strlen(om);
	ck_assert_uint_gt(n, 6);
	ck_assert_str_eq(om + n - 6, "# EOF\n");
	ck_assert_ptr_null(strstr(text, "# EOF"));
	ck_assert(has_line(om, "# TYPE dsd_emits_sent counter"));
	ck_assert(has_line(om, "# HELP dsd_emits_sent Emits written to the "
	                       "platform (the first time)."));
	ck_assert(has_line(om, "dsd_emits_sent_total 5"));
	ck_assert(has_line(om, "# TYPE dsd_platform info"));
	ck_assert(has_line(om, "dsd_platform_info{url=\"ws://a/ds\","
	                       "configured_url=\"ws://a/ds\"} 1"));
	ck_assert(has_line(om, "# TYPE dsd_queue_bytes gauge"));
	ck_assert(has_line(om, "# TYPE dsd_connection_transitions counter"));
	ck_assert(has_line(om, "# TYPE process_cpu_seconds counter"));
	/* The text format: families named like their samples, no info. */
	ck_assert(has_line(text, "# TYPE dsd_emits_sent_total counter"));
	ck_assert(has_line(text, "# TYPE dsd_platform_info gauge"));
	/* No help text needs escaping in either format. */
	for (const char *p = text; (p = strstr(p, "# HELP ")) != NULL; p++)
		ck_assert_msg(memchr(p, '"', strcspn(p, "\n")) == NULL &&
		                      memchr(p, '\\', strcspn(p, "\n")) == NULL,
		              "a quote or backslash in %.60s", p);
	free(om);
	free(text);
}
END_TEST

START_TEST(test_not_an_object)
{
	json_t *a = json_array();

	ck_assert_ptr_null(metrics_render(a, NULL));
	ck_assert_ptr_null(metrics_render(NULL, NULL));
	json_decref(a);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("metrics");
	TCase *tc = tcase_create("render");

	tcase_add_test(tc, test_every_family_declared);
	tcase_add_test(tc, test_label_values_escaped);
	tcase_add_test(tc, test_values);
	tcase_add_test(tc, test_absent_figures_left_out);
	tcase_add_test(tc, test_error_and_spool);
	tcase_add_test(tc, test_openmetrics);
	tcase_add_test(tc, test_not_an_object);
	suite_add_tcase(s, tc);
	return check_run(s);
}

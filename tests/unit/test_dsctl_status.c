/*
 * Unit tests for tools/dsctl-status.c: `dsctl status` in human form from
 * a status object, without dsd.  Every line has a label in words (keys
 * dsctl does not know yet included), durations and sizes are readable,
 * and the attempt line never reads "0 of 5".
 */
#include <check.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check-run.h"
#include "dsctl.h"

/* The human status of a JSON text, malloc'd. */
static char *render(const char *json)
{
	json_error_t e;
	json_t *st = json_loads(json, 0, &e);
	char *out = NULL;
	size_t len = 0;
	FILE *f;

	ck_assert_msg(st != NULL, "%s", e.text);
	f = open_memstream(&out, &len);
	ck_assert_ptr_nonnull(f);
	dsctl_print_status(f, st, 1796033575583LL + 2500);
	fclose(f);
	json_decref(st);
	return out;
}

static void assert_has(const char *text, const char *want)
{
	ck_assert_msg(strstr(text, want) != NULL, "no \"%s\" in:\n%s", want,
	              text);
}

/* Every line starts with a capitalised label without camelCase. */
static void assert_labels(const char *text)
{
	const char *line = text;

	while (*line) {
		const char *end = strchr(line, '\n'), *p = line, *colon;

		ck_assert_ptr_nonnull(end);
		while (*p == ' ')
			p++;
		if (p[0] == '-' && p[1] == ' ') { /* a list item */
			line = end + 1;
			continue;
		}
		colon = memchr(p, ':', (size_t)(end - p));
		ck_assert_msg(colon != NULL, "no label: %.*s",
		              (int)(end - line), line);
		ck_assert_msg(isupper((unsigned char)*p), "label: %.*s",
		              (int)(end - line), line);
		for (const char *q = p + 1; q < colon; q++)
			ck_assert_msg(!(islower((unsigned char)q[-1]) &&
			                isupper((unsigned char)q[0])),
			              "camelCase label: %.*s",
			              (int)(end - line), line);
		line = end + 1;
	}
}

static const char open_held[] =
        "{\"state\":\"OPEN\",\"reason\":\"authenticated\",\"since\":"
        "1796033575583,\"sinceMs\":2500,\"url\":\"ws://h/ds\","
        "\"configuredUrl\":\"ws://h/ds\",\"attempt\":0,\"maxAttempts\":5,"
        "\"nextRetryMs\":null,\"errorCause\":null,\"errorKind\":null,"
        "\"uptimeMs\":7213,\"connection\":{\"attempts\":1,\"framesIn\":9},"
        "\"clients\":{\"bufferedBytes\":65792,\"bufferLimit\":67108864,"
        "\"droppedOverBuffer\":0},\"queue\":{\"messages\":0,\"bytes\":"
        "1536,\"topApps\":[{\"client\":7,\"messages\":2,\"bytes\":3072}],"
        "\"spool\":null},\"events\":{\"received\":3}}";

START_TEST(test_known_keys)
{
	char *t = render(open_held);

	assert_labels(t);
	assert_has(t, "State:                   OPEN since "
	              "2026-11-30T10:12:55.583Z (2.5s ago)\n");
	assert_has(t, "Up for:                  7.2s\n");
	assert_has(t, "  Frames received:       9\n");
	assert_has(t, "  Buffered for them:     64.2 KiB\n");
	assert_has(t, "  Buffer limit:          64 MiB\n");
	assert_has(t, "  Size:                  1.5 KiB\n");
	assert_has(t, "    - client 7, messages 2, bytes 3 KiB\n");
	assert_has(t, "  Spool:                 none (memory only)\n");
	ck_assert_ptr_null(strstr(t, "uptimeMs"));
	ck_assert_ptr_null(strstr(t, "Next attempt")); /* null: left out */
	ck_assert_ptr_null(strstr(t, "Error"));
	free(t);
}
END_TEST

START_TEST(test_attempt_wording)
{
	char *t = render(open_held);

	/* attempt 0 of maxAttempts 5 is not "out of retries". */
	ck_assert_ptr_null(strstr(t, "0 of 5"));
	assert_has(t, "Attempt:                 none since the connection "
	              "held (up to 5 in a row)\n");
	free(t);
	t = render("{\"state\":\"RECONNECTING\",\"attempt\":2,"
	           "\"maxAttempts\":5,\"nextRetryMs\":3163}");
	assert_has(t, "Attempt:                 2 (up to 5 in a row)\n");
	assert_has(t, "Next attempt in:         3.2s\n");
	free(t);
	t = render("{\"state\":\"RECONNECTING\",\"attempt\":40,"
	           "\"maxAttempts\":\"infinity\",\"nextRetryMs\":180000}");
	assert_has(t, "Attempt:                 40 (no limit)\n");
	assert_has(t, "Next attempt in:         3m 00s\n");
	free(t);
}
END_TEST

/* One URL, dialled as configured: one line, not three.  A REDIRECT, or a
 * list of several, shows each. */
START_TEST(test_url_lines)
{
	char *t = render("{\"state\":\"OPEN\",\"url\":\"ws://a/ds\","
	                 "\"configuredUrl\":\"ws://a/ds\",\"urls\":[{\"url\":"
	                 "\"ws://a/ds\",\"current\":true,\"failures\":0,"
	                 "\"lastFailure\":null,\"lastFailureAt\":null}]}");

	assert_has(t, "URL:                     ws://a/ds\n");
	ck_assert_ptr_null(strstr(t, "Configured URL"));
	ck_assert_ptr_null(strstr(t, "Platform URLs"));
	free(t);
	t = render("{\"state\":\"OPEN\",\"url\":\"wss://r/ds\","
	           "\"configuredUrl\":\"ws://a/ds\",\"urls\":[{\"url\":"
	           "\"ws://a/ds\",\"current\":true,\"failures\":0,"
	           "\"lastFailure\":null,\"lastFailureAt\":null},{\"url\":"
	           "\"ws://b/ds\",\"current\":false,\"failures\":1,"
	           "\"lastFailure\":\"refused\",\"lastFailureAt\":"
	           "1796033575583}]}");
	assert_has(t, "Configured URL:          ws://a/ds\n");
	assert_has(t, "Platform URLs:           ws://a/ds (current)\n");
	assert_has(t,
	           "                         ws://b/ds; failed 1 times, last "
	           "at 2026-11-30T10:12:55.583Z: refused\n");
	free(t);
	/* One URL that failed: its line says how. */
	t = render("{\"state\":\"RECONNECTING\",\"url\":\"ws://a/ds\","
	           "\"configuredUrl\":\"ws://a/ds\",\"urls\":[{\"url\":"
	           "\"ws://a/ds\",\"current\":true,\"failures\":2,"
	           "\"lastFailure\":\"refused\",\"lastFailureAt\":"
	           "1796033575583}]}");
	assert_has(t, "Platform URLs:           ws://a/ds (current); failed 2 "
	              "times");
	free(t);
}
END_TEST

/* How the connection is carried: right under the URL, none when null.
 * The send window with readable sizes and rates; a rate not measured yet
 * (0) says so. */
START_TEST(test_transport_and_window)
{
	char *t = render(
	        "{\"state\":\"OPEN\",\"url\":\"ws://a/ds\",\"transport\":"
	        "\"main loop\",\"attempt\":0,\"queue\":{\"messages\":0,"
	        "\"window\":{\"bytes\":28672,\"messages\":221,"
	        "\"confirmedBytesPerSecond\":14336000,"
	        "\"confirmedMessagesPerSecond\":110500}}}");

	assert_labels(t);
	assert_has(t, "URL:                     ws://a/ds\n"
	              "Transport:               main loop\n"
	              "Attempt:");
	assert_has(t, "  Send window:\n"
	              "    Size:                28 KiB\n"
	              "    Messages:            221\n"
	              "    Confirmed, size:     13.7 MiB/s\n"
	              "    Confirmed, messages: 110500/s\n");
	free(t);
	t = render("{\"state\":\"RECONNECTING\",\"url\":\"ws://a/ds\","
	           "\"transport\":null,\"queue\":{\"window\":{\"bytes\":"
	           "16384,\"messages\":128,\"confirmedBytesPerSecond\":0,"
	           "\"confirmedMessagesPerSecond\":0}}}");
	assert_labels(t);
	ck_assert_ptr_null(strstr(t, "Transport"));
	assert_has(t, "    Size:                16 KiB\n");
	assert_has(t, "    Confirmed, size:     not measured yet\n"
	              "    Confirmed, messages: not measured yet\n");
	free(t);
}
END_TEST

/* A key dsctl does not know yet (another version of dsd) still reads. */
START_TEST(test_unknown_keys)
{
	char *t = render("{\"state\":\"OPEN\",\"clusterNodes\":[\"ws://a\","
	                 "\"ws://b\"],\"cluster\":{\"leaderUrl\":\"ws://a\","
	                 "\"failoverMs\":90061000,\"sentBytes\":2048,"
	                 "\"peers\":[]}}");

	assert_labels(t);
	assert_has(t, "Cluster nodes:\n  - ws://a\n  - ws://b\n");
	assert_has(t, "Cluster:\n  Leader url:            ws://a\n");
	assert_has(t, "  Failover:              1d 01h\n");
	assert_has(t, "  Sent bytes:            2 KiB\n");
	assert_has(t, "  Peers:                 none\n");
	free(t);
}
END_TEST

START_TEST(test_durations_and_sizes)
{
	static const struct {
		long long ms;
		const char *want;
	} d[] = {{0, "0ms"},          {999, "999ms"},      {1000, "1.0s"},
	         {59949, "59.9s"},    {60000, "1m 00s"},   {3599000, "59m 59s"},
	         {3600000, "1h 00m"}, {86400000, "1d 00h"}};
	static const struct {
		long long n;
		const char *want;
	} b[] = {{0, "0 B"},        {1023, "1023 B"},     {1024, "1 KiB"},
	         {1536, "1.5 KiB"}, {67108864, "64 MiB"}, {3LL << 30, "3 GiB"}};
	char buf[64];

	for (size_t i = 0; i < sizeof(d) / sizeof(d[0]); i++) {
		dsctl_format_duration(d[i].ms, buf, sizeof(buf));
		ck_assert_str_eq(buf, d[i].want);
	}
	for (size_t i = 0; i < sizeof(b) / sizeof(b[0]); i++) {
		dsctl_format_bytes(b[i].n, buf, sizeof(buf));
		ck_assert_str_eq(buf, b[i].want);
	}
}
END_TEST

int main(void)
{
	Suite *s = suite_create("dsctl_status");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, test_known_keys);
	tcase_add_test(tc, test_attempt_wording);
	tcase_add_test(tc, test_url_lines);
	tcase_add_test(tc, test_transport_and_window);
	tcase_add_test(tc, test_unknown_keys);
	tcase_add_test(tc, test_durations_and_sizes);
	suite_add_tcase(s, tc);
	return check_run(s);
}

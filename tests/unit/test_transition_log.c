/*
 * The journal's fields of a state transition (transition_log.c), from the
 * real upstream over the fake transport, with a log sink in place of the
 * journal: each transition is one entry carrying DSD_STATE,
 * DSD_PREVIOUS_STATE, DSD_REASON, DSD_URL and the MESSAGE_ID of the state
 * entered; an ERROR also carries its cause and kind.  And log_fields()
 * itself: the sink, the level filter, the rate limiter.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "access.h"
#include "check-run.h"
#include "config.h"
#include "fake_transport.h"
#include "glue_wiring.h"
#include "log.h"
#include "pubsub.h"
#include "transition_log.h"
#include "upstream.h"

/* ---- the sink: every entry, its fields as "NAME=value" lines ---- */

#define ENTRIES_MAX 64

struct entry {
	int level;
	char msg[LOG_LINE_MAX];
	char fields[4096];
	size_t n;
};

static struct entry entries[ENTRIES_MAX];
static size_t n_entries;

static void sink(int level, const char *msg, const struct log_field *f,
                 size_t n, void *userdata)
{
	struct entry *e;
	size_t used = 0;

	(void)userdata;
	if (n_entries >= ENTRIES_MAX)
		return;
	e = &entries[n_entries++];
	*e = (struct entry){.level = level, .n = n};
	snprintf(e->msg, sizeof(e->msg), "%s", msg);
	for (size_t i = 0; i < n; i++)
		used += (size_t)snprintf(e->fields + used,
		                         sizeof(e->fields) - used, "%s=%s\n",
		                         f[i].name, f[i].value);
}

/* The entry with field DSD_STATE=state, the last one, or NULL. */
static const struct entry *entered(const char *state)
{
	char want[64];

	snprintf(want, sizeof(want), "DSD_STATE=%s\n", state);
	for (size_t i = n_entries; i-- > 0;)
		if (strstr(entries[i].fields, want) != NULL)
			return &entries[i];
	return NULL;
}

#define ck_field(e, line)                                                      \
	ck_assert_msg(strstr((e)->fields, line "\n") != NULL, "no %s in:\n%s", \
	              line, (e)->fields)

/* ---- the fixture: upstream and pubsub as dsd.c wires them ---- */

static struct event_base *base;
static struct dsd_config cfg;
static struct upstream *up;
static struct glue_wiring wiring;
static struct access_usage *usage;

static void setup(void)
{
	fake_reset();
	n_entries = 0;
	log_init(LOG_TARGET_CONSOLE, LOG_DEBUG);
	log_set_sink(sink, NULL);
	wiring = (struct glue_wiring){0};
	base = event_base_new();
	ck_assert_ptr_nonnull(base);
	ck_assert_int_eq(config_init(&cfg), 0);
	cfg.url = strdup("ws://platform.test:6020/deepstream");
	ck_assert_int_eq(access_usage_new(&usage), 0);
	ck_assert_int_eq(upstream_new(base, &cfg, &glue_upstream_callbacks,
	                              &wiring, &up),
	                 0);
	ck_assert_int_eq(pubsub_new(base, &cfg, up, usage,
	                            &glue_pubsub_callbacks, NULL, &wiring.ps),
	                 0);
}

static void teardown(void)
{
	upstream_free(up);
	pubsub_free(wiring.ps);
	access_usage_free(usage);
	config_free(&cfg);
	event_base_free(base);
	fake_reset();
	log_set_sink(NULL, NULL);
	log_init(LOG_TARGET_CONSOLE, LOG_INFO);
}

static void receive(enum wire_topic topic, int action)
{
	struct wire_msg m = {.topic = topic, .action = action};

	fake_receive(&m);
}

START_TEST(test_open_pause_reject)
{
	struct conn_input pause = {.kind = CONN_IN_PAUSE};
	struct conn_input resume = {.kind = CONN_IN_RESUME};
	const struct entry *e;

	ck_assert_int_eq(upstream_start(up), 0);
	fake_open();
	receive(WIRE_TOPIC_CONNECTION, WIRE_CONN_ACCEPT);
	receive(WIRE_TOPIC_AUTH, WIRE_AUTH_SUCCESSFUL);
	ck_assert(upstream_is_open(up));

	e = entered("OPEN");
	ck_assert_ptr_nonnull(e);
	ck_assert_int_eq(e->level, LOG_INFO);
	ck_assert_uint_eq(e->n, 5);
	ck_field(e, "DSD_PREVIOUS_STATE=AUTHENTICATING");
	ck_field(e, "DSD_URL=ws://platform.test:6020/deepstream");
	/* The ID is the one dsd(8) lists, not only whatever the table says. */
	ck_field(e, "MESSAGE_ID=df408e67d98346b2af553318ae104d73");
	ck_assert_ptr_nonnull(strstr(e->msg, "AUTHENTICATING -> OPEN"));

	ck_assert_int_eq(upstream_feed(up, &pause), 0);
	e = entered("OFFLINE");
	ck_assert_ptr_nonnull(e);
	ck_field(e, "DSD_PREVIOUS_STATE=OPEN");
	ck_field(e, "MESSAGE_ID=1c94609ad84e44bbb45d0f16aec0ec76");
	ck_assert_ptr_nonnull(strstr(e->fields, "DSD_REASON="));
	ck_assert_ptr_null(strstr(e->fields, "DSD_ERROR_CAUSE="));

	/* The platform refuses dsd: a permanent ERROR, with its cause. */
	ck_assert_int_eq(upstream_feed(up, &resume), 0);
	fake_open();
	receive(WIRE_TOPIC_CONNECTION, WIRE_CONN_REJECT);
	e = entered("ERROR");
	ck_assert_ptr_nonnull(e);
	ck_assert_int_eq(e->level, LOG_ERR);
	ck_assert_uint_eq(e->n, 7);
	ck_field(e, "MESSAGE_ID=af2293c44ddf4645bcf7f1775b8dda1f");
	ck_field(e, "DSD_ERROR_CAUSE=rejected");
	ck_field(e, "DSD_ERROR_KIND=permanent");
	ck_assert_ptr_nonnull(strstr(e->msg, "-> ERROR: "));
}
END_TEST

/* Every state has its own ID, 32 lower-case hex digits, listed in dsd(8)
 * as "- STATE: ID". */
START_TEST(test_message_ids)
{
	FILE *f = fopen(MAN_DSD8, "r");
	static char man[256 * 1024];
	size_t len;

	ck_assert_ptr_nonnull(f);
	len = fread(man, 1, sizeof(man) - 1, f);
	fclose(f);
	man[len] = '\0';
	for (int s = 0; s < CONN_STATE_COUNT; s++) {
		const char *id = transition_message_id((enum conn_state)s);
		char line[128];

		ck_assert_ptr_nonnull(id);
		ck_assert_uint_eq(strlen(id), 32);
		ck_assert_uint_eq(strspn(id, "0123456789abcdef"), 32);
		for (int t = 0; t < s; t++)
			ck_assert_str_ne(
			        id, transition_message_id((enum conn_state)t));
		snprintf(line, sizeof(line), "\t- %s: %s\n",
		         conn_state_name((enum conn_state)s), id);
		ck_assert_msg(strstr(man, line) != NULL, "dsd(8) lacks %s",
		              line);
	}
	ck_assert_ptr_null(transition_message_id(CONN_STATE_COUNT));
}
END_TEST

START_TEST(test_log_fields_sink_level_limit)
{
	struct log_field f[] = {{"DSD_A", "1"}, {"DSD_B", "two"}};
	struct log_ratelimit rl = LOG_RATELIMIT_INIT(1000, 1);

	log_init(LOG_TARGET_JOURNAL, LOG_INFO);
	log_fields(LOG_WARNING, f, 2, "a %s\nline", "message");
	ck_assert_uint_eq(n_entries, 1);
	ck_assert_int_eq(entries[0].level, LOG_WARNING);
	/* One entry, one line. */
	ck_assert_str_eq(entries[0].msg, "a message?line");
	ck_assert_str_eq(entries[0].fields, "DSD_A=1\nDSD_B=two\n");
	/* Below the level: nothing. */
	log_fields(LOG_DEBUG, f, 2, "hidden");
	ck_assert_uint_eq(n_entries, 1);
	/* Plain lines reach the sink too, without fields. */
	log_info("plain %d", 7);
	ck_assert_uint_eq(n_entries, 2);
	ck_assert_str_eq(entries[1].msg, "plain 7");
	ck_assert_uint_eq(entries[1].n, 0);
	/* The limiter: one per second, then the count of those dropped. */
	log_fields_ratelimited(&rl, 0, LOG_INFO, f, 1, "x");
	log_fields_ratelimited(&rl, 10, LOG_INFO, f, 1, "x");
	log_fields_ratelimited(&rl, 2000, LOG_INFO, f, 1, "x");
	ck_assert_uint_eq(n_entries, 4);
	ck_assert_str_eq(entries[3].msg, "x (1 similar messages suppressed)");
	ck_assert_str_eq(entries[3].fields, "DSD_A=1\n");
}
END_TEST

int main(void)
{
	Suite *s = suite_create("transition_log");
	TCase *tc = tcase_create("fields");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_open_pause_reject);
	tcase_add_test(tc, test_message_ids);
	tcase_add_test(tc, test_log_fields_sink_level_limit);
	suite_add_tcase(s, tc);
	return check_run(s);
}

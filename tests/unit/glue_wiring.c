/* The root's wiring of upstream to pubsub, minus logging and status. */
#include <check.h>

#include "glue_wiring.h"
#include "pubsub_subs.h"

static void on_state(const struct conn_action *a, void *ud)
{
	(void)a;
	(void)ud;
}

static void on_opened(void *ud)
{
	struct glue_wiring *w = ud;

	w->opened++;
	pubsub_connection_opened(w->ps);
}

static void on_lost(void *ud)
{
	struct glue_wiring *w = ud;

	w->lost++;
	pubsub_connection_lost(w->ps);
}

static void on_event(const struct wire_msg *m, void *ud)
{
	struct glue_wiring *w = ud;

	pubsub_platform_event(w->ps, m);
}

static void on_drained(void *ud)
{
	struct glue_wiring *w = ud;

	pubsub_drained(w->ps);
}

static void on_confirmed(uint64_t seq, void *ud)
{
	struct glue_wiring *w = ud;

	pubsub_confirmed(w->ps, seq);
}

static void on_fatal(const char *why, void *ud)
{
	(void)ud;
	ck_abort_msg("fatal: %s", why);
}

static void on_queue_changed(void *ud)
{
	(void)ud;
}

const struct upstream_callbacks glue_upstream_callbacks = {
        .state = on_state,
        .opened = on_opened,
        .lost = on_lost,
        .event = on_event,
        .drained = on_drained,
        .confirmed = on_confirmed,
        .fatal = on_fatal,
};

const struct pubsub_callbacks glue_pubsub_callbacks = {
        .queue_changed = on_queue_changed,
};

/*
 * The connection state machine, driven with a fake clock: every
 * (state, input) pair from a table, then whole scenarios (the reconnect
 * schedule, connections lost before they held, heartbeats, redirects, auth
 * failures, pause/resume, restart, and how each kind of ERROR ends).
 */
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "check-run.h"
#include "conn.h"

#define URL "ws://127.0.0.1:6020/deepstream"
#define INC 1000
#define CAP 2500
#define HB  1000
#define HS  3000

static struct conn_options opts(uint32_t max_attempts, uint32_t restart)
{
	struct conn_options o = {
	        .url = URL,
	        .reconnect_interval_increment = INC,
	        .max_reconnect_interval = CAP,
	        .max_reconnect_attempts = max_attempts,
	        .heartbeat_interval = HB,
	        .restart_after_error = restart,
	        .handshake_timeout = HS,
	};
	return o;
}

/* A fake world: the clock and the last result. */
struct world {
	struct conn c;
	uint64_t now;
	struct conn_result r;
	int rc;
};

static int feed(struct world *w, enum conn_input_kind kind, uint32_t gen,
                enum conn_frame frame, const char *text)
{
	struct conn_input in = {
	        .kind = kind, .gen = gen, .frame = frame, .text = text};
	w->rc = conn_handle(&w->c, w->now, &in, &w->r);
	return w->rc;
}

static int input(struct world *w, enum conn_input_kind kind)
{
	return feed(w, kind, w->c.gen, CONN_FRAME_OTHER, NULL);
}

static int frame(struct world *w, enum conn_frame f, const char *text)
{
	return feed(w, CONN_IN_FRAME, w->c.gen, f, text);
}

/* Renders the last result's actions as letters: C connect, D disconnect,
 * H challenge, A auth, P ping, S state change. */
static const char *actions(const struct world *w)
{
	static char buf[CONN_MAX_ACTIONS + 1];
	static const char letters[] = {
	        [CONN_ACT_CONNECT] = 'C',        [CONN_ACT_DISCONNECT] = 'D',
	        [CONN_ACT_SEND_CHALLENGE] = 'H', [CONN_ACT_SEND_AUTH] = 'A',
	        [CONN_ACT_SEND_PING] = 'P',      [CONN_ACT_STATE] = 'S',
	};
	unsigned i;

	for (i = 0; i < w->r.n; i++)
		buf[i] = letters[w->r.act[i].kind];
	buf[i] = '\0';
	return buf;
}

/* Advances the clock to the deadline and feeds the timer. */
static void fire(struct world *w)
{
	uint64_t d = conn_deadline(&w->c);

	ck_assert_uint_ne(d, CONN_NO_DEADLINE);
	if (d > w->now)
		w->now = d;
	input(w, CONN_IN_TIMER);
}

static void world_init(struct world *w, uint32_t max_attempts, uint32_t restart)
{
	struct conn_options o = opts(max_attempts, restart);

	memset(w, 0, sizeof(*w));
	w->now = 1000000;
	ck_assert_int_eq(conn_init(&w->c, &o), 0);
}

/* The resting points a table row starts from. */
enum start {
	AT_CLOSED_NEW,
	AT_CLOSED_CONNECTING,
	AT_CHALLENGING,
	AT_AUTHENTICATING,
	AT_AWAITING_AUTH_REFUSED,
	AT_OPEN_FRESH, /* just authenticated: not yet up */
	AT_OPEN,       /* held: a heartbeat answered */
	AT_RECONNECTING_WAITING,
	AT_RECONNECTING_CONNECTING,
	AT_OFFLINE,
	AT_ERROR,           /* REJECT: permanent, restartAfterError 60000 */
	AT_ERROR_OPERATOR,  /* REJECT: permanent, restartAfterError 0 */
	AT_ERROR_HEARTBEAT, /* transient, restartAfterError 0 */
	AT_ERROR_GAVE_UP,   /* maxReconnectAttempts: transient, 0 */
	AT_CLOSED_FINAL,
	AT_COUNT
};

static const char *const start_names[AT_COUNT] = {
        "CLOSED(new)",
        "CLOSED(connecting)",
        "CHALLENGING",
        "AUTHENTICATING",
        "AWAITING_AUTH(refused)",
        "OPEN(fresh)",
        "OPEN(held)",
        "RECONNECTING(waiting)",
        "RECONNECTING(connecting)",
        "OFFLINE",
        "ERROR(rejected)",
        "ERROR(rejected, restartAfterError 0)",
        "ERROR(heartbeat, restartAfterError 0)",
        "ERROR(gave up, restartAfterError 0)",
        "CLOSED(final)",
};

static void reach(struct world *w, enum start s)
{
	bool restart_zero = s == AT_ERROR_OPERATOR || s == AT_ERROR_HEARTBEAT ||
	                    s == AT_ERROR_GAVE_UP;

	world_init(w, 5, restart_zero ? 0 : 60000);
	if (s == AT_CLOSED_NEW)
		return;
	input(w, CONN_IN_START);
	if (s == AT_CLOSED_CONNECTING)
		return;
	if (s == AT_CLOSED_FINAL) {
		input(w, CONN_IN_CLOSE);
		return;
	}
	if (s == AT_OFFLINE) {
		input(w, CONN_IN_PAUSE);
		return;
	}
	if (s == AT_ERROR_GAVE_UP) {
		/* Five refused attempts, each after its backoff. */
		while (conn_get_state(&w->c) != CONN_ERROR) {
			if (w->c.sock == CONN_SOCKET_NONE)
				fire(w);
			else
				input(w, CONN_IN_SOCKET_CLOSED);
		}
		ck_assert_int_eq(conn_error_cause(&w->c), CONN_ERR_GAVE_UP);
		return;
	}
	if (s == AT_RECONNECTING_WAITING || s == AT_RECONNECTING_CONNECTING ||
	    s == AT_ERROR || s == AT_ERROR_OPERATOR) {
		/* Two refused attempts: the third waits for its backoff. */
		input(w, CONN_IN_SOCKET_CLOSED);
		input(w, CONN_IN_SOCKET_CLOSED);
		if (s == AT_RECONNECTING_CONNECTING)
			fire(w);
		if (s == AT_ERROR || s == AT_ERROR_OPERATOR)
			frame(w, CONN_FRAME_OTHER, NULL),
			        input(w, CONN_IN_PAUSE),
			        input(w, CONN_IN_RESUME),
			        input(w, CONN_IN_SOCKET_OPEN),
			        frame(w, CONN_FRAME_REJECT, NULL);
		return;
	}
	input(w, CONN_IN_SOCKET_OPEN);
	if (s == AT_CHALLENGING)
		return;
	frame(w, CONN_FRAME_ACCEPT, NULL);
	if (s == AT_AUTHENTICATING)
		return;
	if (s == AT_AWAITING_AUTH_REFUSED) {
		frame(w, CONN_FRAME_AUTH_FAILED, "{\"error\":\"bad\"}");
		return;
	}
	frame(w, CONN_FRAME_AUTH_OK, NULL);
	if (s == AT_OPEN_FRESH)
		return;
	/* The first PING, at heartbeatInterval, and its PONG. */
	fire(w);
	ck_assert_str_eq(actions(w), "P");
	w->now += 5;
	frame(w, CONN_FRAME_OTHER, NULL);
	if (s == AT_OPEN)
		return;
	/* AT_ERROR_HEARTBEAT: from now on the platform is silent. */
	while (conn_get_state(&w->c) == CONN_OPEN)
		fire(w);
	ck_assert_int_eq(conn_error_cause(&w->c), CONN_ERR_HEARTBEAT);
}

enum in {
	IN_START,
	IN_OPEN,
	IN_OPEN_STALE,
	IN_CLOSED,
	IN_CLOSED_STALE,
	IN_F_OTHER,
	IN_F_ACCEPT,
	IN_F_REJECT,
	IN_F_REDIRECT,
	IN_F_AUTH_TIMEOUT,
	IN_F_AUTH_OK,
	IN_F_AUTH_FAILED,
	IN_F_TOO_MANY,
	IN_F_BAD_DATA,
	IN_TIMER_EARLY,
	IN_TIMER_DUE,
	IN_PAUSE,
	IN_RESUME,
	IN_RESTART,
	IN_CLOSE,
	IN_NET_DOWN,
	IN_NET_UP,
	IN_COUNT
};

static const char *const in_names[IN_COUNT] = {
        "START",      "OPEN",        "OPEN(stale)", "CLOSED",   "CLOSED(stale)",
        "OTHER",      "ACCEPT",      "REJECT",      "REDIRECT", "AUTH_TIMEOUT",
        "AUTH_OK",    "AUTH_FAILED", "TOO_MANY",    "BAD_DATA", "TIMER(early)",
        "TIMER(due)", "PAUSE",       "RESUME",      "RESTART",  "CLOSE",
        "NET_DOWN",   "NET_UP",
};

static void apply(struct world *w, enum in i)
{
	static const enum conn_frame frames[] = {
	        [IN_F_OTHER] = CONN_FRAME_OTHER,
	        [IN_F_ACCEPT] = CONN_FRAME_ACCEPT,
	        [IN_F_REJECT] = CONN_FRAME_REJECT,
	        [IN_F_REDIRECT] = CONN_FRAME_REDIRECT,
	        [IN_F_AUTH_TIMEOUT] = CONN_FRAME_AUTH_TIMEOUT,
	        [IN_F_AUTH_OK] = CONN_FRAME_AUTH_OK,
	        [IN_F_AUTH_FAILED] = CONN_FRAME_AUTH_FAILED,
	        [IN_F_TOO_MANY] = CONN_FRAME_AUTH_TOO_MANY,
	        [IN_F_BAD_DATA] = CONN_FRAME_AUTH_BAD_DATA,
	};
	uint64_t d;

	switch (i) {
	case IN_START:
		input(w, CONN_IN_START);
		break;
	case IN_OPEN:
		input(w, CONN_IN_SOCKET_OPEN);
		break;
	case IN_OPEN_STALE:
		feed(w, CONN_IN_SOCKET_OPEN, w->c.gen - 1, 0, NULL);
		break;
	case IN_CLOSED:
		feed(w, CONN_IN_SOCKET_CLOSED, w->c.gen, 0, "refused");
		break;
	case IN_CLOSED_STALE:
		feed(w, CONN_IN_SOCKET_CLOSED, w->c.gen - 1, 0, "old");
		break;
	case IN_TIMER_EARLY:
		d = conn_deadline(&w->c);
		if (d != CONN_NO_DEADLINE && d > w->now)
			w->now = d - 1;
		input(w, CONN_IN_TIMER);
		break;
	case IN_TIMER_DUE:
		d = conn_deadline(&w->c);
		/* No deadline: an hour passes and the timer fires anyway. */
		w->now = d == CONN_NO_DEADLINE ? w->now + 3600000 : d;
		input(w, CONN_IN_TIMER);
		break;
	case IN_PAUSE:
		input(w, CONN_IN_PAUSE);
		break;
	case IN_RESUME:
		input(w, CONN_IN_RESUME);
		break;
	case IN_RESTART:
		input(w, CONN_IN_RESTART);
		break;
	case IN_CLOSE:
		input(w, CONN_IN_CLOSE);
		break;
	case IN_NET_DOWN:
		feed(w, CONN_IN_NET_DOWN, 0, 0, "link eth0 down: no route");
		break;
	case IN_NET_UP:
		feed(w, CONN_IN_NET_UP, 0, 0, "route added: route");
		break;
	default:
		frame(w, frames[i],
		      i == IN_F_REDIRECT ? "ws://127.0.0.2:7000/deepstream"
		                         : NULL);
		break;
	}
}

/*
 * Expected outcome per (start, input): "STATE actions [rc]".  A state of
 * "=" means unchanged; ERROR comes with its kind, "ERROR/t" transient (it
 * ends after one reconnect step) or "ERROR/p" permanent (restartAfterError
 * or the operator); actions as in actions(); rc -EALREADY as "!A", -EPERM
 * as "!P".  TIMER(due) moves the clock to the deadline, or by an hour when
 * there is none.
 */
/* clang-format off */
static const char *const table[AT_COUNT][IN_COUNT] = {
	[AT_CLOSED_NEW] = {
		"= C", "= ", "= ", "= ", "= ", "= ", "= ", "= ", "= ", "= ", "= ", "= ", "= ", "= ", "= ", "= ", "= !P", "= !P", "= !P", "CLOSED ", "= ", "= ",
	},
	[AT_CLOSED_CONNECTING] = {
		"= !A", "CHALLENGING SHS", "= ", "RECONNECTING S", "= ", "= ", "= ", "= ", "= ", "= ", "= ", "= ", "= ", "= ", "= ", "RECONNECTING DS", "OFFLINE DS", "= !A", "RECONNECTING DSC", "= D", "RECONNECTING DS", "= ",
	},
	[AT_CHALLENGING] = {
		"= !A", "= ", "= ", "RECONNECTING S", "= ", "= ", "AUTHENTICATING SAS", "ERROR/p DS", "RECONNECTING DSC", "ERROR/t DS", "= ", "= ", "= ", "= ", "= ", "RECONNECTING DS", "OFFLINE DS", "= !A", "RECONNECTING DSC", "CLOSED DS", "RECONNECTING DS", "= ",
	},
	[AT_AUTHENTICATING] = {
		"= !A", "= ", "= ", "RECONNECTING S", "= ", "= ", "= ", "= ", "= ", "ERROR/t DS", "OPEN S", "AWAITING_AUTHENTICATION S", "ERROR/p DS", "ERROR/p DS", "= ", "RECONNECTING DS", "OFFLINE DS", "= !A", "RECONNECTING DSC", "CLOSED DS", "RECONNECTING DS", "= ",
	},
	[AT_AWAITING_AUTH_REFUSED] = {
		"= !A", "= ", "= ", "RECONNECTING S", "= ", "= ", "= ", "= ", "= ", "ERROR/p DS", "= ", "= ", "ERROR/p DS", "ERROR/p DS", "= ", "= P", "OFFLINE DS", "= !A", "RECONNECTING DSC", "CLOSED DS", "RECONNECTING DS", "= ",
	},
	[AT_OPEN_FRESH] = {
		"= !A", "= ", "= ", "RECONNECTING S", "= ", "= ", "= ", "= ", "= ", "= ", "= ", "= ", "= ", "= ", "= ", "= P", "OFFLINE DS", "= !A", "RECONNECTING DSC", "CLOSED DS", "RECONNECTING DS", "= ",
	},
	[AT_OPEN] = {
		"= !A", "= ", "= ", "RECONNECTING SC", "= ", "= ", "= ", "= ", "= ", "= ", "= ", "= ", "= ", "= ", "= ", "= P", "OFFLINE DS", "= !A", "RECONNECTING DSC", "CLOSED DS", "RECONNECTING DS", "= ",
	},
	[AT_RECONNECTING_WAITING] = {
		"= !A", "= ", "= ", "= ", "= ", "= ", "= ", "= ", "= ", "= ", "= ", "= ", "= ", "= ", "= ", "= C", "OFFLINE S", "= C", "= C", "CLOSED S", "= ", "= C",
	},
	[AT_RECONNECTING_CONNECTING] = {
		"= !A", "CHALLENGING SHS", "= ", "= ", "= ", "= ", "= ", "= ", "= ", "= ", "= ", "= ", "= ", "= ", "= ", "= D", "OFFLINE DS", "= !A", "= DC", "CLOSED DS", "= D", "= ",
	},
	[AT_OFFLINE] = {
		"= !A", "= ", "= ", "= ", "= ", "= ", "= ", "= ", "= ", "= ", "= ", "= ", "= ", "= ", "= ", "= ", "= !A", "RECONNECTING SC", "RECONNECTING SC", "CLOSED S", "= ", "= ",
	},
	[AT_ERROR] = {
		"= !A", "= ", "= ", "= ", "= ", "= ", "= ", "= ", "= ", "= ", "= ", "= ", "= ", "= ", "= ", "RECONNECTING SC", "OFFLINE S", "RECONNECTING SC", "RECONNECTING SC", "CLOSED S", "= ", "= ",
	},
	[AT_ERROR_OPERATOR] = {
		"= !A", "= ", "= ", "= ", "= ", "= ", "= ", "= ", "= ", "= ", "= ", "= ", "= ", "= ", "= ", "= ", "OFFLINE S", "RECONNECTING SC", "RECONNECTING SC", "CLOSED S", "= ", "= ",
	},
	[AT_ERROR_HEARTBEAT] = {
		"= !A", "= ", "= ", "= ", "= ", "= ", "= ", "= ", "= ", "= ", "= ", "= ", "= ", "= ", "= ", "RECONNECTING SC", "OFFLINE S", "RECONNECTING SC", "RECONNECTING SC", "CLOSED S", "= ", "RECONNECTING SC",
	},
	[AT_ERROR_GAVE_UP] = {
		"= !A", "= ", "= ", "= ", "= ", "= ", "= ", "= ", "= ", "= ", "= ", "= ", "= ", "= ", "= ", "RECONNECTING SC", "OFFLINE S", "RECONNECTING SC", "RECONNECTING SC", "CLOSED S", "= ", "RECONNECTING SC",
	},
	[AT_CLOSED_FINAL] = {
		"= !A", "= ", "= ", "= ", "= ", "= ", "= ", "= ", "= ", "= ", "= ", "= ", "= ", "= ", "= ", "= ", "= !P", "= !P", "= !P", "= !A", "= ", "= ",
	},
};
/* clang-format on */

/* 't' transient, 'p' permanent, '-' not in ERROR. */
static char kind_letter(const struct conn *c)
{
	switch (conn_error_kind_of(conn_error_cause(c))) {
	case CONN_ERROR_TRANSIENT:
		return 't';
	case CONN_ERROR_PERMANENT:
		return 'p';
	default:
		return '-';
	}
}

START_TEST(test_every_state_input_pair)
{
	char what[128], expect_state[64], expect_act[16], got[160];
	char *expect_kind;
	static char report[16384];
	size_t used = 0;
	unsigned bad = 0;
	struct world w;
	enum conn_state before, want;
	int want_rc;

	report[0] = '\0';
	for (int s = 0; s < AT_COUNT; s++) {
		for (int i = 0; i < IN_COUNT; i++) {
			const char *e = table[s][i];
			const char *sp = strchr(e, ' ');
			const char *bang;

			ck_assert_ptr_nonnull(sp);
			snprintf(expect_state, sizeof(expect_state), "%.*s",
			         (int)(sp - e), e);
			expect_kind = strchr(expect_state, '/');
			if (expect_kind != NULL)
				*expect_kind++ = '\0';
			expect_act[0] = '\0';
			sscanf(sp + 1, "%15[A-Z]", expect_act);
			bang = strchr(sp, '!');
			want_rc = bang == NULL     ? 0
			          : bang[1] == 'A' ? -EALREADY
			                           : -EPERM;
			reach(&w, (enum start)s);
			before = conn_get_state(&w.c);
			apply(&w, (enum in)i);
			snprintf(what, sizeof(what), "%s + %s", start_names[s],
			         in_names[i]);
			if (strcmp(expect_state, "=") == 0)
				want = before;
			else
				ck_assert_msg(conn_state_from_name(expect_state,
				                                   &want) == 0,
				              "bad table entry %s", what);
			/* Every state change is reported, with from/to. */
			for (unsigned k = 0; k < w.r.n; k++)
				if (w.r.act[k].kind == CONN_ACT_STATE)
					ck_assert_int_ne(w.r.act[k].from,
					                 w.r.act[k].to);
			if (conn_get_state(&w.c) == want &&
			    strcmp(actions(&w), expect_act) == 0 &&
			    w.rc == want_rc &&
			    (expect_kind == NULL ||
			     kind_letter(&w.c) == expect_kind[0]))
				continue;
			bad++;
			snprintf(
			        got, sizeof(got), "%s/%c %s rc=%d",
			        conn_get_state(&w.c) == before
			                ? "="
			                : conn_state_name(conn_get_state(&w.c)),
			        kind_letter(&w.c), actions(&w), w.rc);
			used += snprintf(report + used, sizeof(report) - used,
			                 "\n  %s: got \"%s\", table \"%s\"",
			                 what, got, e);
			if (used >= sizeof(report))
				used = sizeof(report) - 1;
		}
	}
	ck_assert_msg(bad == 0, "%u mismatches:%s", bad, report);
}
END_TEST

/* Fails the current attempt, advances to the next one and returns the
 * time it was made. */
static uint64_t refuse_and_wait(struct world *w)
{
	input(w, CONN_IN_SOCKET_CLOSED);
	if (conn_get_state(&w->c) == CONN_ERROR)
		return 0;
	if (w->c.sock == CONN_SOCKET_NONE)
		fire(w);
	ck_assert_int_eq(w->c.sock, CONN_SOCKET_CONNECTING);
	return w->now;
}

START_TEST(test_reconnect_schedule_first_connect)
{
	struct world w;
	uint64_t t0, t;

	world_init(&w, 5, 0);
	t0 = w.now;
	input(&w, CONN_IN_START);
	ck_assert_str_eq(actions(&w), "C");
	ck_assert_uint_eq(conn_attempt(&w.c), 1);
	/* The start is attempt 1; attempts 2..5 follow after 1x, 2x, 3x the
	 * increment, the last two capped at 2500 ms. */
	t = refuse_and_wait(&w);
	ck_assert_uint_eq(t - t0, 1000);
	ck_assert_uint_eq(conn_attempt(&w.c), 2);
	t = refuse_and_wait(&w);
	ck_assert_uint_eq(t - t0, 3000);
	t = refuse_and_wait(&w);
	ck_assert_uint_eq(t - t0, 5500);
	t = refuse_and_wait(&w);
	ck_assert_uint_eq(t - t0, 8000);
	ck_assert_uint_eq(conn_attempt(&w.c), 5);
	/* The fifth unsuccessful attempt ends in ERROR. */
	input(&w, CONN_IN_SOCKET_CLOSED);
	ck_assert_int_eq(conn_get_state(&w.c), CONN_ERROR);
	ck_assert_ptr_nonnull(strstr(conn_reason(&w.c), "5 unsuccessful"));
	ck_assert_uint_eq(w.c.count.attempts, 5);
	/* An unreachable platform is a transient ERROR: it ends one reconnect
	 * step later even with restartAfterError 0. */
	ck_assert_int_eq(conn_error_cause(&w.c), CONN_ERR_GAVE_UP);
	ck_assert_uint_eq(conn_deadline(&w.c), w.now + INC);
}
END_TEST

START_TEST(test_reconnect_schedule_after_loss)
{
	struct world w;
	uint64_t lost;

	reach(&w, AT_OPEN);
	w.now += 500;
	lost = w.now;
	input(&w, CONN_IN_SOCKET_CLOSED);
	/* The first attempt after a loss is immediate. */
	ck_assert_int_eq(conn_get_state(&w.c), CONN_RECONNECTING);
	ck_assert_str_eq(actions(&w), "SC");
	ck_assert_uint_eq(conn_attempt(&w.c), 1);
	ck_assert_uint_eq(refuse_and_wait(&w) - lost, 1000);
	ck_assert_uint_eq(refuse_and_wait(&w) - lost, 3000);
	ck_assert_uint_eq(refuse_and_wait(&w) - lost, 5500);
	ck_assert_uint_eq(refuse_and_wait(&w) - lost, 8000);
	input(&w, CONN_IN_SOCKET_CLOSED);
	ck_assert_int_eq(conn_get_state(&w.c), CONN_ERROR);
}
END_TEST

START_TEST(test_backoff_values)
{
	struct conn_options o = opts(5, 0);

	o.reconnect_interval_increment = 4000;
	o.max_reconnect_interval = 180000;
	ck_assert_uint_eq(conn_backoff(&o, 1), 0);
	ck_assert_uint_eq(conn_backoff(&o, 2), 4000);
	ck_assert_uint_eq(conn_backoff(&o, 3), 8000);
	ck_assert_uint_eq(conn_backoff(&o, 5), 16000);
	ck_assert_uint_eq(conn_backoff(&o, 46), 180000);
	ck_assert_uint_eq(conn_backoff(&o, 4000000000u), 180000);
}
END_TEST

START_TEST(test_infinite_attempts)
{
	struct world w;

	world_init(&w, CONN_ATTEMPTS_INFINITE, 0);
	input(&w, CONN_IN_START);
	for (int i = 0; i < 1000; i++)
		ck_assert_uint_ne(refuse_and_wait(&w), 0);
	ck_assert_int_eq(conn_get_state(&w.c), CONN_RECONNECTING);
	ck_assert_uint_eq(conn_next_retry_in(&w.c, w.now), (uint64_t)-1);
}
END_TEST

START_TEST(test_accept_and_drop_does_not_reset_counter)
{
	struct world w;

	world_init(&w, 3, 0);
	input(&w, CONN_IN_START);
	for (int i = 0; i < 3; i++) {
		input(&w, CONN_IN_SOCKET_OPEN);
		ck_assert_int_eq(conn_get_state(&w.c), CONN_CHALLENGING);
		frame(&w, CONN_FRAME_ACCEPT, NULL);
		input(&w, CONN_IN_SOCKET_CLOSED);
		if (i < 2) {
			ck_assert_int_eq(conn_get_state(&w.c),
			                 CONN_RECONNECTING);
			if (w.c.sock == CONN_SOCKET_NONE)
				fire(&w);
		}
	}
	ck_assert_int_eq(conn_get_state(&w.c), CONN_ERROR);
}
END_TEST

/* The current attempt reaches OPEN (socket, ACCEPT, AUTH_SUCCESSFUL). */
static void authenticate(struct world *w)
{
	input(w, CONN_IN_SOCKET_OPEN);
	frame(w, CONN_FRAME_ACCEPT, NULL);
	frame(w, CONN_FRAME_AUTH_OK, NULL);
	ck_assert_int_eq(conn_get_state(&w->c), CONN_OPEN);
}

/* Drops an OPEN connection that never held and makes the next attempt
 * reach OPEN again; returns when that attempt was made, 0 on ERROR. */
static uint64_t open_and_drop(struct world *w)
{
	w->now += 3;
	input(w, CONN_IN_SOCKET_CLOSED);
	if (conn_get_state(&w->c) == CONN_ERROR)
		return 0;
	ck_assert_int_eq(conn_get_state(&w->c), CONN_RECONNECTING);
	if (w->c.sock == CONN_SOCKET_NONE)
		fire(w);
	ck_assert_int_eq(w->c.sock, CONN_SOCKET_CONNECTING);
	authenticate(w);
	return w->now;
}

START_TEST(test_counter_resets_once_held)
{
	struct world w;
	uint64_t opened;

	world_init(&w, 3, 0);
	input(&w, CONN_IN_START);
	refuse_and_wait(&w);
	refuse_and_wait(&w);
	ck_assert_uint_eq(conn_attempt(&w.c), 3);
	authenticate(&w);
	opened = w.now;
	/* OPEN alone proves nothing yet: the counter stands... */
	ck_assert_uint_eq(conn_attempt(&w.c), 3);
	/* ...until the first heartbeat is answered (it goes out at
	 * heartbeatInterval, which is below CONN_HELD_MAX here). */
	ck_assert_uint_eq(conn_held_time(&w.c.opt), HB);
	ck_assert_uint_eq(conn_deadline(&w.c), opened + HB);
	fire(&w);
	ck_assert_str_eq(actions(&w), "P");
	w.now += 20;
	frame(&w, CONN_FRAME_OTHER, NULL); /* the PONG */
	ck_assert_uint_eq(conn_attempt(&w.c), 0);
	/* Its loss is that of an established connection: attempt 1 at once,
	 * and the whole schedule again. */
	w.now += 5000;
	input(&w, CONN_IN_SOCKET_CLOSED);
	ck_assert_int_eq(conn_get_state(&w.c), CONN_RECONNECTING);
	ck_assert_str_eq(actions(&w), "SC");
	ck_assert_uint_eq(conn_attempt(&w.c), 1);
	ck_assert_ptr_nonnull(strstr(conn_reason(&w.c), "connection lost: "));
}
END_TEST

START_TEST(test_open_and_drop_follows_the_schedule)
{
	struct world w;
	uint64_t t0;

	/* A platform that authenticates every connection and drops it at
	 * once: each one is an unsuccessful attempt. */
	world_init(&w, 5, 0);
	t0 = w.now;
	input(&w, CONN_IN_START);
	authenticate(&w);
	w.now += 3;
	input(&w, CONN_IN_SOCKET_CLOSED);
	ck_assert_str_eq(actions(&w), "S");
	ck_assert_int_eq(w.r.act[0].from, CONN_OPEN);
	ck_assert_str_eq(w.r.act[0].reason,
	                 "attempt failed: connection lost 3 ms after OPEN: "
	                 "socket closed");
	ck_assert_uint_eq(conn_next_retry_in(&w.c, w.now), INC);
	fire(&w);
	ck_assert_uint_eq(w.now - t0, 3 + 1000);
	ck_assert_uint_eq(conn_attempt(&w.c), 2);
	authenticate(&w);
	ck_assert_uint_eq(open_and_drop(&w) - t0, 2 * 3 + 3000);
	ck_assert_uint_eq(open_and_drop(&w) - t0, 3 * 3 + 5500);
	ck_assert_uint_eq(open_and_drop(&w) - t0, 4 * 3 + 8000);
	ck_assert_uint_eq(conn_attempt(&w.c), 5);
	ck_assert_uint_eq(open_and_drop(&w), 0);
	ck_assert_int_eq(conn_get_state(&w.c), CONN_ERROR);
	ck_assert_ptr_nonnull(strstr(conn_reason(&w.c),
	                             "gave up after 5 unsuccessful attempts: "
	                             "connection lost 3 ms after OPEN"));
	ck_assert_uint_eq(w.c.count.attempts, 5);
	ck_assert_uint_eq(w.c.count.opens, 5);
	ck_assert_uint_eq(w.c.count.losses, 5);
}
END_TEST

START_TEST(test_flapping_after_a_held_connection)
{
	struct world w;
	uint64_t lost;

	/* An established connection is lost: attempt 1 at once.  From then
	 * on every OPEN that drops before it held continues the backoff
	 * (+1x, +2x the increment) and the third ends in ERROR. */
	world_init(&w, 3, 0);
	input(&w, CONN_IN_START);
	authenticate(&w);
	w.now += HB;
	input(&w, CONN_IN_TIMER);
	ck_assert_uint_eq(conn_attempt(&w.c), 0);
	lost = w.now + 3;
	ck_assert_uint_eq(open_and_drop(&w), lost);
	ck_assert_uint_eq(conn_attempt(&w.c), 1);
	ck_assert_uint_eq(open_and_drop(&w) - lost, 3 + 1000);
	ck_assert_uint_eq(open_and_drop(&w) - lost, 2 * 3 + 3000);
	ck_assert_uint_eq(open_and_drop(&w), 0);
	ck_assert_int_eq(conn_get_state(&w.c), CONN_ERROR);
	ck_assert_ptr_nonnull(strstr(conn_reason(&w.c), "3 unsuccessful"));
}
END_TEST

START_TEST(test_held_time_boundary_and_cap)
{
	struct world w;
	struct conn_options o = opts(5, 0);
	uint64_t opened;

	/* One millisecond short of held: unsuccessful, with a backoff. */
	world_init(&w, 5, 0);
	input(&w, CONN_IN_START);
	authenticate(&w);
	opened = w.now;
	w.now = opened + HB - 1;
	input(&w, CONN_IN_SOCKET_CLOSED);
	ck_assert_str_eq(actions(&w), "S");
	ck_assert_uint_eq(conn_next_retry_in(&w.c, w.now), INC);
	/* Exactly held, even before the timer said so: established. */
	world_init(&w, 5, 0);
	input(&w, CONN_IN_START);
	authenticate(&w);
	w.now += HB;
	input(&w, CONN_IN_SOCKET_CLOSED);
	ck_assert_str_eq(actions(&w), "SC");
	ck_assert_uint_eq(conn_attempt(&w.c), 1);
	/* A long heartbeat interval does not make the wait longer than
	 * CONN_HELD_MAX. */
	o.heartbeat_interval = 30000;
	ck_assert_uint_eq(conn_held_time(&o), CONN_HELD_MAX);
	o.heartbeat_interval = 100;
	ck_assert_uint_eq(conn_held_time(&o), 100);
}
END_TEST

START_TEST(test_heartbeat_pings_and_loss)
{
	struct world w;
	uint64_t opened;

	reach(&w, AT_OPEN_FRESH);
	opened = w.now;
	ck_assert_uint_eq(conn_deadline(&w.c), opened + HB);
	fire(&w);
	ck_assert_str_eq(actions(&w), "P");
	/* A PONG keeps it alive. */
	w.now += 10;
	frame(&w, CONN_FRAME_OTHER, NULL);
	fire(&w);
	ck_assert_str_eq(actions(&w), "P");
	ck_assert_uint_eq(w.now, opened + 2 * HB);
	/* From now on the platform is silent: the last frame was at
	 * opened + HB + 10; two intervals later it is ERROR. */
	fire(&w);
	ck_assert_str_eq(actions(&w), "P");
	ck_assert_int_eq(conn_get_state(&w.c), CONN_OPEN);
	fire(&w);
	ck_assert_int_eq(conn_get_state(&w.c), CONN_ERROR);
	ck_assert_str_eq(actions(&w), "DS");
	ck_assert_uint_eq(w.now, opened + HB + 10 + 2 * HB);
	ck_assert_ptr_nonnull(strstr(conn_reason(&w.c), "heartbeat"));
}
END_TEST

START_TEST(test_no_ping_before_auth_but_handshake_timeout)
{
	struct world w;
	uint64_t t0;

	reach(&w, AT_CLOSED_CONNECTING);
	t0 = w.now;
	input(&w, CONN_IN_SOCKET_OPEN);
	ck_assert_uint_eq(conn_deadline(&w.c), t0 + HS);
	w.now = t0 + HS - 1;
	input(&w, CONN_IN_TIMER);
	ck_assert_str_eq(actions(&w), "");
	w.now = t0 + HS;
	input(&w, CONN_IN_TIMER);
	ck_assert_int_eq(conn_get_state(&w.c), CONN_RECONNECTING);
	ck_assert_ptr_nonnull(strstr(conn_reason(&w.c), "handshake"));
}
END_TEST

START_TEST(test_redirect)
{
	struct world w;
	uint32_t g;

	reach(&w, AT_CHALLENGING);
	g = w.c.gen;
	frame(&w, CONN_FRAME_REDIRECT, "ws://127.0.0.1:7001/deepstream");
	ck_assert_str_eq(actions(&w), "DSC");
	ck_assert_uint_ne(w.r.act[0].gen, w.r.act[2].gen);
	ck_assert_uint_eq(w.r.act[0].gen, g);
	ck_assert_str_eq(conn_current_url(&w.c),
	                 "ws://127.0.0.1:7001/deepstream");
	ck_assert_uint_eq(conn_attempt(&w.c), 1);
	/* The old socket's close is stale now. */
	feed(&w, CONN_IN_SOCKET_CLOSED, g, 0, "closed");
	ck_assert_str_eq(actions(&w), "");
	input(&w, CONN_IN_SOCKET_OPEN);
	frame(&w, CONN_FRAME_ACCEPT, NULL);
	frame(&w, CONN_FRAME_AUTH_OK, NULL);
	ck_assert_int_eq(conn_get_state(&w.c), CONN_OPEN);
	/* A later reconnect starts from the configured URL again. */
	input(&w, CONN_IN_SOCKET_CLOSED);
	ck_assert_str_eq(conn_current_url(&w.c), URL);
}
END_TEST

START_TEST(test_redirect_loop_is_an_error)
{
	struct world w;

	reach(&w, AT_CHALLENGING);
	for (int i = 0; i < CONN_MAX_REDIRECTS; i++) {
		frame(&w, CONN_FRAME_REDIRECT, URL);
		ck_assert_int_eq(conn_get_state(&w.c), CONN_RECONNECTING);
		input(&w, CONN_IN_SOCKET_OPEN);
	}
	frame(&w, CONN_FRAME_REDIRECT, URL);
	ck_assert_int_eq(conn_get_state(&w.c), CONN_ERROR);
	ck_assert_ptr_nonnull(strstr(conn_reason(&w.c), "redirect"));
}
END_TEST

START_TEST(test_reject_and_auth_errors)
{
	struct world w;

	reach(&w, AT_CHALLENGING);
	frame(&w, CONN_FRAME_REJECT, NULL);
	ck_assert_int_eq(conn_get_state(&w.c), CONN_ERROR);
	ck_assert_ptr_nonnull(strstr(conn_reason(&w.c), "rejected"));

	reach(&w, AT_AUTHENTICATING);
	frame(&w, CONN_FRAME_AUTH_FAILED, "{\"error\":\"nope\"}");
	ck_assert_int_eq(conn_get_state(&w.c), CONN_AWAITING_AUTHENTICATION);
	ck_assert_ptr_nonnull(strstr(conn_reason(&w.c), "nope"));
	/* No retry loop: an hour passes with PINGs only. */
	for (int i = 0; i < 3600; i++) {
		fire(&w);
		ck_assert_str_eq(actions(&w), "P");
	}
	/* New credentials: a fresh instance logs in again. */
	input(&w, CONN_IN_RESTART);
	ck_assert_int_eq(conn_get_state(&w.c), CONN_RECONNECTING);
	ck_assert_str_eq(actions(&w), "DSC");
	input(&w, CONN_IN_SOCKET_OPEN);
	frame(&w, CONN_FRAME_ACCEPT, NULL);
	ck_assert_int_eq(conn_get_state(&w.c), CONN_AUTHENTICATING);
	frame(&w, CONN_FRAME_AUTH_FAILED, NULL);
	frame(&w, CONN_FRAME_AUTH_TOO_MANY, NULL);
	ck_assert_int_eq(conn_get_state(&w.c), CONN_ERROR);
	ck_assert_ptr_nonnull(strstr(conn_reason(&w.c), "too many"));

	reach(&w, AT_AUTHENTICATING);
	frame(&w, CONN_FRAME_AUTH_TIMEOUT, NULL);
	ck_assert_int_eq(conn_get_state(&w.c), CONN_ERROR);
	ck_assert_ptr_nonnull(strstr(conn_reason(&w.c), "timeout"));
}
END_TEST

START_TEST(test_pause_resume)
{
	struct world w;

	reach(&w, AT_OPEN);
	input(&w, CONN_IN_PAUSE);
	ck_assert_int_eq(conn_get_state(&w.c), CONN_OFFLINE);
	/* No reconnects, no heartbeats while OFFLINE. */
	ck_assert_uint_eq(conn_deadline(&w.c), CONN_NO_DEADLINE);
	ck_assert_int_eq(input(&w, CONN_IN_PAUSE), -EALREADY);
	w.now += 100000;
	input(&w, CONN_IN_RESUME);
	ck_assert_int_eq(conn_get_state(&w.c), CONN_RECONNECTING);
	ck_assert_str_eq(actions(&w), "SC");
	ck_assert_uint_eq(conn_attempt(&w.c), 1);
}
END_TEST

START_TEST(test_restart_after_error)
{
	struct world w;
	uint64_t t;

	/* A permanent ERROR waits restartAfterError. */
	world_init(&w, 1, 5000);
	input(&w, CONN_IN_START);
	input(&w, CONN_IN_SOCKET_OPEN);
	frame(&w, CONN_FRAME_REJECT, NULL);
	ck_assert_int_eq(conn_get_state(&w.c), CONN_ERROR);
	ck_assert_int_eq(conn_error_cause(&w.c), CONN_ERR_REJECTED);
	t = w.now;
	ck_assert_uint_eq(conn_deadline(&w.c), t + 5000);
	ck_assert_int_eq(conn_next_retry_in(&w.c, t + 1000), 4000);
	fire(&w);
	ck_assert_uint_eq(w.now, t + 5000);
	ck_assert_int_eq(conn_get_state(&w.c), CONN_RECONNECTING);
	ck_assert_str_eq(actions(&w), "SC");
	ck_assert_uint_eq(conn_attempt(&w.c), 1);
	ck_assert_str_eq(conn_reason(&w.c),
	                 "fresh instance after ERROR (restartAfterError)");
	ck_assert_int_eq(conn_error_cause(&w.c), CONN_ERR_NONE);
}
END_TEST

/* Fails attempts until ERROR; returns when each attempt was made. */
static unsigned refuse_until_error(struct world *w, uint64_t *ret_at,
                                   unsigned max)
{
	unsigned n = 0;

	ck_assert_int_eq(w->c.sock, CONN_SOCKET_CONNECTING);
	ret_at[n++] = w->now;
	for (;;) {
		input(w, CONN_IN_SOCKET_CLOSED);
		if (conn_get_state(&w->c) == CONN_ERROR)
			return n;
		if (w->c.sock == CONN_SOCKET_NONE)
			fire(w);
		ck_assert_uint_lt(n, max);
		ret_at[n++] = w->now;
	}
}

START_TEST(test_heartbeat_loss_restarts_after_one_step)
{
	struct world w;
	uint64_t t, at[8];

	/* The default restartAfterError does not apply: a stall is no
	 * outage. */
	world_init(&w, 3, 60000);
	input(&w, CONN_IN_START);
	authenticate(&w);
	while (conn_get_state(&w.c) == CONN_OPEN)
		fire(&w);
	t = w.now;
	ck_assert_str_eq(actions(&w), "DS");
	ck_assert_int_eq(w.r.act[1].error, CONN_ERR_HEARTBEAT);
	ck_assert_int_eq(conn_error_kind_of(conn_error_cause(&w.c)),
	                 CONN_ERROR_TRANSIENT);
	ck_assert_ptr_nonnull(strstr(conn_reason(&w.c), "heartbeat"));
	/* status: the fresh instance in one reconnect step. */
	ck_assert_uint_eq(conn_deadline(&w.c), t + INC);
	ck_assert_int_eq(conn_next_retry_in(&w.c, t), INC);
	ck_assert_int_eq(conn_next_retry_in(&w.c, t + 400), INC - 400);
	w.now = t + INC - 1;
	input(&w, CONN_IN_TIMER);
	ck_assert_str_eq(actions(&w), "");
	ck_assert_int_eq(conn_get_state(&w.c), CONN_ERROR);
	ck_assert_ptr_nonnull(strstr(conn_reason(&w.c), "heartbeat"));
	fire(&w);
	ck_assert_uint_eq(w.now, t + INC);
	ck_assert_str_eq(actions(&w), "SC");
	ck_assert_int_eq(conn_get_state(&w.c), CONN_RECONNECTING);
	ck_assert_str_eq(conn_reason(&w.c),
	                 "fresh instance after a transient ERROR");
	ck_assert_uint_eq(conn_attempt(&w.c), 1);
	/* The fresh instance follows the reconnect schedule: attempts at
	 * +0, +1x, +2x the increment after it started, then ERROR again,
	 * and again one step later a fresh instance. */
	ck_assert_uint_eq(refuse_until_error(&w, at, 8), 3);
	ck_assert_uint_eq(at[0] - t, INC);
	ck_assert_uint_eq(at[1] - t, INC + 1000);
	ck_assert_uint_eq(at[2] - t, INC + 3000);
	ck_assert_int_eq(conn_error_cause(&w.c), CONN_ERR_GAVE_UP);
	ck_assert_int_eq(conn_next_retry_in(&w.c, w.now), INC);
	/* The platform is back: OPEN again. */
	fire(&w);
	authenticate(&w);
}
END_TEST

START_TEST(test_unreachable_platform_restarts_on_schedule)
{
	struct world w;
	uint64_t t0, at[8];

	/* restartAfterError 0 means "the operator" only for permanent
	 * errors: an unreachable platform is retried for ever, each fresh
	 * instance one reconnect step after the ERROR. */
	world_init(&w, 3, 0);
	t0 = w.now;
	input(&w, CONN_IN_START);
	for (int cycle = 0; cycle < 3; cycle++) {
		uint64_t base = t0 + (uint64_t)cycle * (3000 + INC);

		ck_assert_uint_eq(refuse_until_error(&w, at, 8), 3);
		ck_assert_uint_eq(at[0], base);
		ck_assert_uint_eq(at[1], base + 1000);
		ck_assert_uint_eq(at[2], base + 3000);
		ck_assert_int_eq(conn_get_state(&w.c), CONN_ERROR);
		ck_assert_str_eq(conn_reason(&w.c),
		                 "gave up after 3 unsuccessful attempts: "
		                 "socket closed");
		ck_assert_uint_eq(conn_deadline(&w.c), w.now + INC);
		fire(&w);
		ck_assert_str_eq(actions(&w), "SC");
		ck_assert_uint_eq(conn_attempt(&w.c), 1);
	}
	ck_assert_uint_eq(w.c.count.attempts, 3 * 3 + 1);
}
END_TEST

START_TEST(test_handshake_deadline_gives_a_transient_error)
{
	struct world w;
	uint64_t t0;

	/* The socket opens but the platform never answers the CHALLENGE. */
	world_init(&w, 1, 0);
	t0 = w.now;
	input(&w, CONN_IN_START);
	input(&w, CONN_IN_SOCKET_OPEN);
	fire(&w);
	ck_assert_uint_eq(w.now, t0 + HS);
	ck_assert_int_eq(conn_get_state(&w.c), CONN_ERROR);
	ck_assert_str_eq(conn_reason(&w.c),
	                 "gave up after 1 unsuccessful attempts: no "
	                 "handshake within 3000 ms");
	ck_assert_int_eq(conn_error_cause(&w.c), CONN_ERR_GAVE_UP);
	ck_assert_uint_eq(conn_deadline(&w.c), t0 + HS + INC);
	fire(&w);
	ck_assert_int_eq(conn_get_state(&w.c), CONN_RECONNECTING);
	ck_assert_str_eq(actions(&w), "SC");
}
END_TEST

/* Leads a fresh world with restartAfterError `restart` into a permanent
 * ERROR, one way per `how`; returns the expected cause. */
static enum conn_error_cause permanent_error(struct world *w, int how,
                                             uint32_t restart)
{
	world_init(w, 2, restart);
	input(w, CONN_IN_START);
	input(w, CONN_IN_SOCKET_OPEN);
	switch (how) {
	case 0:
		frame(w, CONN_FRAME_REJECT, NULL);
		return CONN_ERR_REJECTED;
	case 1:
		for (int i = 0; i <= CONN_MAX_REDIRECTS; i++) {
			frame(w, CONN_FRAME_REDIRECT, URL);
			input(w, CONN_IN_SOCKET_OPEN);
		}
		return CONN_ERR_REDIRECTS;
	default:
		break;
	}
	frame(w, CONN_FRAME_ACCEPT, NULL);
	switch (how) {
	case 2:
		frame(w, CONN_FRAME_AUTH_TOO_MANY, NULL);
		return CONN_ERR_AUTH_TOO_MANY;
	case 3:
		frame(w, CONN_FRAME_AUTH_BAD_DATA, NULL);
		return CONN_ERR_AUTH_DATA;
	default:
		break;
	}
	frame(w, CONN_FRAME_AUTH_FAILED, NULL);
	if (how == 4) {
		frame(w, CONN_FRAME_AUTH_TIMEOUT, NULL);
		return CONN_ERR_CREDENTIALS;
	}
	/* The socket of a refused login closes, twice: maxReconnectAttempts
	 * used up with the credentials refused. */
	input(w, CONN_IN_SOCKET_CLOSED);
	fire(w);
	input(w, CONN_IN_SOCKET_OPEN);
	frame(w, CONN_FRAME_ACCEPT, NULL);
	frame(w, CONN_FRAME_AUTH_FAILED, NULL);
	input(w, CONN_IN_SOCKET_CLOSED);
	return CONN_ERR_CREDENTIALS;
}

START_TEST(test_permanent_errors_wait)
{
	static const char *const reasons[] = {
	        "connection rejected by the platform",
	        "too many redirects (last to " URL ")",
	        "too many authentication attempts",
	        "the platform refused the auth data (INVALID_MESSAGE_DATA)",
	        "authentication timeout, the credentials refused",
	        "gave up after 2 unsuccessful attempts, the credentials "
	        "refused: socket closed",
	};
	struct world w;

	for (int how = 0; how < 6; how++) {
		enum conn_error_cause cause = permanent_error(&w, how, 0);
		uint64_t t = w.now;

		ck_assert_int_eq(conn_get_state(&w.c), CONN_ERROR);
		ck_assert_int_eq(conn_error_cause(&w.c), cause);
		ck_assert_int_eq(conn_error_kind_of(cause),
		                 CONN_ERROR_PERMANENT);
		ck_assert_str_eq(conn_reason(&w.c), reasons[how]);
		/* restartAfterError 0: only the operator ends it. */
		ck_assert_uint_eq(conn_deadline(&w.c), CONN_NO_DEADLINE);
		ck_assert_int_eq(conn_next_retry_in(&w.c, t), -1);
		w.now += 86400000;
		input(&w, CONN_IN_TIMER);
		ck_assert_int_eq(conn_get_state(&w.c), CONN_ERROR);
		ck_assert_int_eq(input(&w, CONN_IN_RESUME), 0);
		ck_assert_int_eq(conn_get_state(&w.c), CONN_RECONNECTING);
		ck_assert_str_eq(actions(&w), "SC");

		/* Otherwise restartAfterError, not the reconnect step. */
		permanent_error(&w, how, 60000);
		t = w.now;
		ck_assert_uint_eq(conn_deadline(&w.c), t + 60000);
		ck_assert_int_eq(conn_next_retry_in(&w.c, t + INC), 59000);
		w.now = t + 60000 - 1;
		input(&w, CONN_IN_TIMER);
		ck_assert_int_eq(conn_get_state(&w.c), CONN_ERROR);
		fire(&w);
		ck_assert_int_eq(conn_get_state(&w.c), CONN_RECONNECTING);
	}
}
END_TEST

START_TEST(test_error_waits_and_classes)
{
	struct conn_options o = opts(5, 0);
	struct world w;
	uint64_t t;

	/* One reconnect step, capped like any other. */
	ck_assert_uint_eq(conn_error_wait(&o, CONN_ERROR_TRANSIENT), INC);
	o.reconnect_interval_increment = 4000;
	o.max_reconnect_interval = 3000;
	ck_assert_uint_eq(conn_error_wait(&o, CONN_ERROR_TRANSIENT), 3000);
	ck_assert_uint_eq(conn_error_wait(&o, CONN_ERROR_PERMANENT),
	                  CONN_NO_DEADLINE);
	o.restart_after_error = 60000;
	ck_assert_uint_eq(conn_error_wait(&o, CONN_ERROR_TRANSIENT), 3000);
	ck_assert_uint_eq(conn_error_wait(&o, CONN_ERROR_PERMANENT), 60000);
	ck_assert_uint_eq(conn_error_wait(&o, CONN_ERROR_NONE),
	                  CONN_NO_DEADLINE);
	/* Every cause is classified, and named for the status. */
	for (int i = CONN_ERR_NONE + 1; i < CONN_ERR_CAUSE_COUNT; i++) {
		ck_assert_int_ne(conn_error_kind_of(i), CONN_ERROR_NONE);
		ck_assert_str_ne(conn_error_cause_name(i), "unknown");
	}
	ck_assert_int_eq(conn_error_kind_of(CONN_ERR_NONE), CONN_ERROR_NONE);

	/* A reload with a new increment moves a transient ERROR's end. */
	world_init(&w, 1, 0);
	input(&w, CONN_IN_START);
	input(&w, CONN_IN_SOCKET_CLOSED);
	t = w.now;
	ck_assert_uint_eq(conn_deadline(&w.c), t + INC);
	o = opts(1, 0);
	o.reconnect_interval_increment = 200;
	ck_assert_int_eq(conn_set_options(&w.c, &o), 0);
	ck_assert_uint_eq(conn_deadline(&w.c), t + 200);
	/* Leaving ERROR any way clears the cause. */
	input(&w, CONN_IN_PAUSE);
	ck_assert_int_eq(conn_error_cause(&w.c), CONN_ERR_NONE);
	ck_assert_int_eq(conn_next_retry_in(&w.c, w.now), -1);
}
END_TEST

START_TEST(test_close_is_final)
{
	struct world w;

	reach(&w, AT_OPEN);
	input(&w, CONN_IN_CLOSE);
	ck_assert_int_eq(conn_get_state(&w.c), CONN_CLOSED);
	ck_assert_uint_eq(conn_deadline(&w.c), CONN_NO_DEADLINE);
	ck_assert_int_eq(input(&w, CONN_IN_RESUME), -EPERM);
	ck_assert_int_eq(input(&w, CONN_IN_START), -EALREADY);
}
END_TEST

START_TEST(test_transitions_carry_time_and_reason)
{
	struct world w;

	world_init(&w, 5, 0);
	input(&w, CONN_IN_START);
	w.now += 7;
	input(&w, CONN_IN_SOCKET_OPEN);
	ck_assert_uint_eq(conn_since(&w.c), w.now);
	ck_assert_str_eq(conn_reason(&w.c), "challenge sent to " URL);
	ck_assert_int_eq(w.r.act[0].kind, CONN_ACT_STATE);
	ck_assert_int_eq(w.r.act[0].from, CONN_CLOSED);
	ck_assert_int_eq(w.r.act[0].to, CONN_AWAITING_CONNECTION);
}
END_TEST

START_TEST(test_bad_options)
{
	struct conn c;
	struct conn_options o = opts(5, 0);

	o.heartbeat_interval = 0;
	ck_assert_int_eq(conn_init(&c, &o), -EINVAL);
	o = opts(0, 0);
	ck_assert_int_eq(conn_init(&c, &o), -EINVAL);
	o = opts(5, 0);
	o.url = "";
	ck_assert_int_eq(conn_init(&c, &o), -EINVAL);
}
END_TEST

static Suite *conn_suite(void)
{
	Suite *s = suite_create("conn");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, test_every_state_input_pair);
	tcase_add_test(tc, test_reconnect_schedule_first_connect);
	tcase_add_test(tc, test_reconnect_schedule_after_loss);
	tcase_add_test(tc, test_backoff_values);
	tcase_add_test(tc, test_infinite_attempts);
	tcase_add_test(tc, test_accept_and_drop_does_not_reset_counter);
	tcase_add_test(tc, test_counter_resets_once_held);
	tcase_add_test(tc, test_open_and_drop_follows_the_schedule);
	tcase_add_test(tc, test_flapping_after_a_held_connection);
	tcase_add_test(tc, test_held_time_boundary_and_cap);
	tcase_add_test(tc, test_heartbeat_pings_and_loss);
	tcase_add_test(tc, test_no_ping_before_auth_but_handshake_timeout);
	tcase_add_test(tc, test_redirect);
	tcase_add_test(tc, test_redirect_loop_is_an_error);
	tcase_add_test(tc, test_reject_and_auth_errors);
	tcase_add_test(tc, test_pause_resume);
	tcase_add_test(tc, test_restart_after_error);
	tcase_add_test(tc, test_heartbeat_loss_restarts_after_one_step);
	tcase_add_test(tc, test_unreachable_platform_restarts_on_schedule);
	tcase_add_test(tc, test_handshake_deadline_gives_a_transient_error);
	tcase_add_test(tc, test_permanent_errors_wait);
	tcase_add_test(tc, test_error_waits_and_classes);
	tcase_add_test(tc, test_close_is_final);
	tcase_add_test(tc, test_transitions_carry_time_and_reason);
	tcase_add_test(tc, test_bad_options);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return check_run(conn_suite());
}

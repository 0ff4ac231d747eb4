/*
 * The connection state machine with several platform URLs (the nodes of a
 * cluster), driven with a fake clock: which URL each attempt dials, that
 * the reconnect schedule and maxReconnectAttempts count over the whole
 * list, what is noted per URL, redirects, ERRORs, pause/resume, a changed
 * list, the reconnect jitter with an injected random source, and what
 * news from the network (netwatch: route gone, route back) does.
 */
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "check-run.h"
#include "conn.h"

#define A   "ws://127.0.0.1:7001/deepstream"
#define B   "ws://127.0.0.1:7002/deepstream"
#define C   "ws://127.0.0.1:7003/deepstream"
#define ABC A " " B "\t" C
#define INC 1000
#define CAP 2500
#define HB  1000
#define HS  3000
#define T0  1000000

struct world {
	struct conn c;
	uint64_t now;
	struct conn_result r;
};

static struct conn_options opts(const char *urls, uint32_t max_attempts)
{
	struct conn_options o = {
	        .url = urls,
	        .reconnect_interval_increment = INC,
	        .max_reconnect_interval = CAP,
	        .max_reconnect_attempts = max_attempts,
	        .heartbeat_interval = HB,
	        .restart_after_error = 5000,
	        .handshake_timeout = HS,
	};
	return o;
}

static void world_init(struct world *w, const char *urls, uint32_t max_attempts)
{
	struct conn_options o = opts(urls, max_attempts);

	memset(w, 0, sizeof(*w));
	w->now = T0;
	ck_assert_int_eq(conn_init(&w->c, &o), 0);
}

static int feed(struct world *w, enum conn_input_kind kind,
                enum conn_frame frame, const char *text)
{
	struct conn_input in = {
	        .kind = kind, .gen = w->c.gen, .frame = frame, .text = text};

	return conn_handle(&w->c, w->now, &in, &w->r);
}

static int input(struct world *w, enum conn_input_kind kind)
{
	return feed(w, kind, CONN_FRAME_OTHER, NULL);
}

/* Did the last input ask for a connect? */
static bool connected(const struct world *w)
{
	for (unsigned i = 0; i < w->r.n; i++)
		if (w->r.act[i].kind == CONN_ACT_CONNECT)
			return true;
	return false;
}

static void fire(struct world *w)
{
	uint64_t d = conn_deadline(&w->c);

	ck_assert_uint_ne(d, CONN_NO_DEADLINE);
	if (d > w->now)
		w->now = d;
	input(w, CONN_IN_TIMER);
}

static void authenticate(struct world *w)
{
	input(w, CONN_IN_SOCKET_OPEN);
	feed(w, CONN_IN_FRAME, CONN_FRAME_ACCEPT, NULL);
	feed(w, CONN_IN_FRAME, CONN_FRAME_AUTH_OK, NULL);
	ck_assert_int_eq(conn_get_state(&w->c), CONN_OPEN);
}

/* OPEN and held: the heartbeat's PING answered. */
static void open_held(struct world *w)
{
	authenticate(w);
	fire(w);
	w->now += 5;
	feed(w, CONN_IN_FRAME, CONN_FRAME_OTHER, NULL);
	ck_assert(w->c.held);
}

START_TEST(test_list_is_split)
{
	struct world w;

	world_init(&w, "  " ABC "  ", 5);
	ck_assert_uint_eq(conn_url_count(&w.c), 3);
	ck_assert_str_eq(conn_url_at(&w.c, 0), A);
	ck_assert_str_eq(conn_url_at(&w.c, 1), B);
	ck_assert_str_eq(conn_url_at(&w.c, 2), C);
	ck_assert_int_eq(conn_find_url(&w.c, C), 2);
	ck_assert_int_eq(conn_find_url(&w.c, "ws://127.0.0.1:7001"), -ENOENT);
	ck_assert_str_eq(conn_configured_url(&w.c), A);
	ck_assert_str_eq(conn_current_url(&w.c), A);
	/* One URL is a list of one. */
	world_init(&w, A, 5);
	ck_assert_uint_eq(conn_url_count(&w.c), 1);
}
END_TEST

START_TEST(test_bad_lists)
{
	struct conn c;
	struct conn_options o = opts(" \t ", 5);
	char many[CONN_URL_LIST_MAX];
	size_t at = 0;

	ck_assert_int_eq(conn_init(&c, &o), -EINVAL);
	o.url = NULL;
	ck_assert_int_eq(conn_init(&c, &o), -EINVAL);
	for (unsigned i = 0; i <= CONN_URLS_MAX; i++)
		at += (size_t)snprintf(many + at, sizeof(many) - at,
		                       "ws://h%u ", i);
	o.url = many;
	ck_assert_int_eq(conn_init(&c, &o), -EINVAL);
	/* Exactly CONN_URLS_MAX is fine. */
	*strrchr(many, 'w') = '\0';
	ck_assert_int_eq(conn_init(&c, &o), 0);
	ck_assert_uint_eq(conn_url_count(&c), CONN_URLS_MAX);
}
END_TEST

/* A failed attempt moves on; the schedule counts over the whole list. */
START_TEST(test_failed_attempts_walk_the_list)
{
	struct world w;
	const struct conn_url_status *st;

	world_init(&w, ABC, 5);
	input(&w, CONN_IN_START);
	ck_assert_str_eq(conn_current_url(&w.c), A);
	w.now += 7;
	feed(&w, CONN_IN_SOCKET_CLOSED, 0, "connection refused");
	/* Attempt 2 goes to B after one increment, as with one URL. */
	ck_assert_int_eq(conn_get_state(&w.c), CONN_RECONNECTING);
	ck_assert_str_eq(conn_current_url(&w.c), B);
	ck_assert_uint_eq(conn_deadline(&w.c), w.now + INC);
	ck_assert_ptr_nonnull(strstr(conn_reason(&w.c), "next " B));
	st = conn_url_status_at(&w.c, 0);
	ck_assert(st->failed);
	ck_assert_uint_eq(st->failed_at, T0 + 7);
	ck_assert_uint_eq(st->failures, 1);
	ck_assert_str_eq(st->failure, "connection refused");
	ck_assert(!conn_url_status_at(&w.c, 1)->failed);
	fire(&w);
	ck_assert(connected(&w));
	ck_assert_uint_eq(conn_attempt(&w.c), 2);
	input(&w, CONN_IN_SOCKET_CLOSED);
	ck_assert_str_eq(conn_current_url(&w.c), C);
	ck_assert_uint_eq(conn_deadline(&w.c), w.now + 2 * INC);
	fire(&w);
	input(&w, CONN_IN_SOCKET_CLOSED);
	/* Round again to A, capped at maxReconnectInterval. */
	ck_assert_str_eq(conn_current_url(&w.c), A);
	ck_assert_uint_eq(conn_deadline(&w.c), w.now + CAP);
	fire(&w);
	authenticate(&w);
	ck_assert_str_eq(conn_configured_url(&w.c), A);
	ck_assert_uint_eq(conn_url_status_at(&w.c, 0)->failures, 1);
}
END_TEST

/* maxReconnectAttempts counts attempts over the list, not per URL. */
START_TEST(test_attempts_count_over_the_list)
{
	struct world w;

	world_init(&w, ABC, 3);
	input(&w, CONN_IN_START);
	input(&w, CONN_IN_SOCKET_CLOSED); /* A */
	fire(&w);
	input(&w, CONN_IN_SOCKET_CLOSED); /* B */
	fire(&w);
	ck_assert_str_eq(conn_current_url(&w.c), C);
	input(&w, CONN_IN_SOCKET_CLOSED); /* C: the third, the last */
	ck_assert_int_eq(conn_get_state(&w.c), CONN_ERROR);
	ck_assert_int_eq(conn_error_cause(&w.c), CONN_ERR_GAVE_UP);
	ck_assert_uint_eq(conn_url_status_at(&w.c, 2)->failures, 1);
	/* The fresh instance after the transient ERROR goes on to A. */
	fire(&w);
	ck_assert(connected(&w));
	ck_assert_str_eq(conn_current_url(&w.c), A);
	ck_assert_uint_eq(conn_attempt(&w.c), 1);
}
END_TEST

/* Losing the node: the reconnect made at once dials the next one, and the
 * one that held keeps its place until it is lost (no flapping back). */
START_TEST(test_loss_goes_to_the_next_node_at_once)
{
	struct world w;
	uint64_t lost_at;

	world_init(&w, ABC, 5);
	input(&w, CONN_IN_START);
	input(&w, CONN_IN_SOCKET_CLOSED); /* A refused */
	fire(&w);
	open_held(&w); /* on B */
	ck_assert_str_eq(conn_configured_url(&w.c), B);
	/* Staying OPEN on B: timers never move it back to A. */
	for (int i = 0; i < 10; i++) {
		fire(&w);
		w.now += 1;
		feed(&w, CONN_IN_FRAME, CONN_FRAME_OTHER, NULL);
	}
	ck_assert_int_eq(conn_get_state(&w.c), CONN_OPEN);
	ck_assert_str_eq(conn_configured_url(&w.c), B);
	lost_at = w.now;
	feed(&w, CONN_IN_SOCKET_CLOSED, 0, "connection reset");
	ck_assert(connected(&w));
	ck_assert_str_eq(conn_current_url(&w.c), C);
	ck_assert_uint_eq(conn_attempt(&w.c), 1);
	ck_assert_str_eq(conn_reason(&w.c),
	                 "connection lost: connection reset; next " C);
	ck_assert_uint_eq(conn_url_status_at(&w.c, 1)->failed_at, lost_at);
	ck_assert_str_eq(conn_url_status_at(&w.c, 1)->failure,
	                 "connection reset");
	authenticate(&w);
	ck_assert_str_eq(conn_configured_url(&w.c), C);
}
END_TEST

/* A loss before the connection held is a failed attempt: the next URL,
 * after the backoff. */
START_TEST(test_early_loss_moves_on_with_backoff)
{
	struct world w;

	world_init(&w, A " " B, 5);
	input(&w, CONN_IN_START);
	authenticate(&w);
	w.now += 3;
	input(&w, CONN_IN_SOCKET_CLOSED);
	ck_assert_str_eq(conn_current_url(&w.c), B);
	ck_assert_uint_eq(conn_deadline(&w.c), w.now + INC);
}
END_TEST

/* A REDIRECT stands for the listed URL that led to it. */
START_TEST(test_redirect_counts_as_the_current_url)
{
	struct world w;

	world_init(&w, ABC, 5);
	input(&w, CONN_IN_START);
	input(&w, CONN_IN_SOCKET_CLOSED);
	fire(&w); /* B */
	input(&w, CONN_IN_SOCKET_OPEN);
	feed(&w, CONN_IN_FRAME, CONN_FRAME_REDIRECT, "ws://10.0.0.9:6020/ds");
	ck_assert(connected(&w));
	ck_assert_str_eq(conn_current_url(&w.c), "ws://10.0.0.9:6020/ds");
	ck_assert_str_eq(conn_configured_url(&w.c), B);
	open_held(&w);
	input(&w, CONN_IN_SOCKET_CLOSED);
	ck_assert_str_eq(conn_current_url(&w.c), C);
	ck_assert_uint_eq(conn_url_status_at(&w.c, 1)->failures, 1);
}
END_TEST

/* ERRORs the node caused move on; pause and resume stay. */
START_TEST(test_errors_and_pause)
{
	struct world w;

	world_init(&w, ABC, 5);
	input(&w, CONN_IN_START);
	open_held(&w); /* on A */
	/* Silence: heartbeat ERROR, the fresh instance dials B. */
	while (conn_get_state(&w.c) == CONN_OPEN)
		fire(&w);
	ck_assert_int_eq(conn_error_cause(&w.c), CONN_ERR_HEARTBEAT);
	ck_assert_ptr_nonnull(
	        strstr(conn_url_status_at(&w.c, 0)->failure, "heartbeat"));
	fire(&w);
	ck_assert(connected(&w));
	ck_assert_str_eq(conn_current_url(&w.c), B);
	/* B rejects: permanent ERROR; restartAfterError later, C. */
	input(&w, CONN_IN_SOCKET_OPEN);
	feed(&w, CONN_IN_FRAME, CONN_FRAME_REJECT, NULL);
	ck_assert_int_eq(conn_error_cause(&w.c), CONN_ERR_REJECTED);
	fire(&w);
	ck_assert_str_eq(conn_current_url(&w.c), C);
	/* Pause and resume: not the node's fault, C again. */
	authenticate(&w);
	ck_assert_int_eq(input(&w, CONN_IN_PAUSE), 0);
	ck_assert_int_eq(input(&w, CONN_IN_RESUME), 0);
	ck_assert(connected(&w));
	ck_assert_str_eq(conn_current_url(&w.c), C);
	ck_assert_uint_eq(conn_url_status_at(&w.c, 2)->failures, 0);
	/* So does a restart (new credentials). */
	input(&w, CONN_IN_RESTART);
	ck_assert_str_eq(conn_current_url(&w.c), C);
}
END_TEST

/* A new list keeps the node dsd is on, and what is known of each URL. */
START_TEST(test_new_list_keeps_the_node)
{
	struct world w;
	struct conn_options o;

	world_init(&w, ABC, 5);
	input(&w, CONN_IN_START);
	input(&w, CONN_IN_SOCKET_CLOSED);
	fire(&w);
	open_held(&w); /* on B, A failed once */
	o = opts(C " " B, 5);
	ck_assert_int_eq(conn_set_options(&w.c, &o), 0);
	ck_assert_int_eq(conn_get_state(&w.c), CONN_OPEN);
	ck_assert_uint_eq(conn_url_index(&w.c), 1);
	ck_assert_str_eq(conn_configured_url(&w.c), B);
	ck_assert_uint_eq(conn_url_count(&w.c), 2);
	/* Lost: the next after B in the new list is C (wrapping). */
	input(&w, CONN_IN_SOCKET_CLOSED);
	ck_assert_str_eq(conn_current_url(&w.c), C);
	/* A back in the list has forgotten nothing; B's failure moved with
	 * it. */
	o = opts(B " " A " " C, 5);
	ck_assert_int_eq(conn_set_options(&w.c, &o), 0);
	ck_assert_str_eq(conn_configured_url(&w.c), C);
	ck_assert_uint_eq(conn_url_status_at(&w.c, 0)->failures, 1);
	ck_assert_uint_eq(conn_url_status_at(&w.c, 1)->failures, 0);
	/* A list without the current node starts at its first URL. */
	o = opts(A " " B, 5);
	ck_assert_int_eq(conn_set_options(&w.c, &o), 0);
	ck_assert_int_eq(conn_find_url(&w.c, C), -ENOENT);
	ck_assert_uint_eq(conn_url_index(&w.c), 0);
	input(&w, CONN_IN_RESTART);
	ck_assert_str_eq(conn_current_url(&w.c), A);
}
END_TEST

/* ---- jitter, with an injected random source ---- */

struct dice {
	uint32_t values[8];
	unsigned n, next, calls;
};

static uint32_t roll(void *userdata)
{
	struct dice *d = userdata;

	d->calls++;
	return d->values[d->next++ % d->n];
}

START_TEST(test_jitter_needs_a_source_and_a_range)
{
	struct conn c;
	struct dice d = {.values = {0}, .n = 1};
	struct conn_options o = opts(A, 5);

	o.reconnect_jitter = 10;
	ck_assert_int_eq(conn_init(&c, &o), -EINVAL);
	o.random = roll;
	o.random_userdata = &d;
	ck_assert_int_eq(conn_init(&c, &o), 0);
	o.reconnect_jitter = 101;
	ck_assert_int_eq(conn_init(&c, &o), -EINVAL);
}
END_TEST

START_TEST(test_jitter_zero_keeps_the_schedule_exact)
{
	struct world w;
	struct dice d = {.values = {12345}, .n = 1};
	struct conn_options o = opts(A " " B, CONN_ATTEMPTS_INFINITE);

	memset(&w, 0, sizeof(w));
	w.now = T0;
	o.random = roll;
	o.random_userdata = &d;
	ck_assert_int_eq(conn_init(&w.c, &o), 0);
	input(&w, CONN_IN_START);
	for (uint32_t n = 2; n < 6; n++) {
		input(&w, CONN_IN_SOCKET_CLOSED);
		ck_assert_uint_eq(conn_deadline(&w.c),
		                  w.now + conn_backoff(&o, n));
		fire(&w);
	}
	ck_assert_uint_eq(d.calls, 0);
}
END_TEST

/*
 * 20 %: a wait w is one of w - 20 % .. w + 20 %, r % (2 * spread + 1) above
 * the low end; the at-once reconnect after a loss one of 0 .. 20 % of the
 * increment.
 */
START_TEST(test_jitter_spreads_each_wait)
{
	struct world w;
	/* spread for INC (1000): 200, so r % 401; for 2000: 400, r % 801. */
	struct dice d = {.values = {0, 400, 800, 150, 201}, .n = 5};
	struct conn_options o = opts(A " " B, CONN_ATTEMPTS_INFINITE);

	memset(&w, 0, sizeof(w));
	w.now = T0;
	o.reconnect_jitter = 20;
	o.random = roll;
	o.random_userdata = &d;
	ck_assert_int_eq(conn_init(&w.c, &o), 0);
	input(&w, CONN_IN_START); /* the first connect: never jittered */
	ck_assert(connected(&w));
	ck_assert_uint_eq(d.calls, 0);
	input(&w, CONN_IN_SOCKET_CLOSED); /* 1000 - 200 + 0 */
	ck_assert_uint_eq(conn_deadline(&w.c), w.now + 800);
	fire(&w);
	input(&w, CONN_IN_SOCKET_CLOSED); /* 2000 - 400 + 400 */
	ck_assert_uint_eq(conn_deadline(&w.c), w.now + 2000);
	fire(&w);
	input(&w, CONN_IN_SOCKET_CLOSED); /* 2500 - 500 + 800 */
	ck_assert_uint_eq(conn_deadline(&w.c), w.now + 2800);
	fire(&w);
	open_held(&w);
	/* Lost after it held: 0 .. 200, here 150 % 201. */
	input(&w, CONN_IN_SOCKET_CLOSED);
	ck_assert(!connected(&w));
	ck_assert_uint_eq(conn_deadline(&w.c), w.now + 150);
	fire(&w);
	ck_assert(connected(&w));
	open_held(&w);
	/* 201 % 201 = 0: at once. */
	input(&w, CONN_IN_SOCKET_CLOSED);
	ck_assert(connected(&w));
	ck_assert_uint_eq(d.calls, 5);
}
END_TEST

/* ---- the network: no route, a route again ---- */

static int net(struct world *w, enum conn_input_kind kind, const char *why)
{
	return feed(w, kind, CONN_FRAME_OTHER, why);
}

static const char *acts(const struct world *w)
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

/* OPEN, then the route goes: left at once, the node kept, no attempt
 * until the route is back (or one step passed). */
START_TEST(test_net_down_leaves_open_at_once)
{
	struct world w;

	world_init(&w, ABC, 5);
	ck_assert_int_eq(net(&w, CONN_IN_NET_DOWN, "x"), 0); /* not started */
	ck_assert_uint_eq(w.r.n, 0);
	input(&w, CONN_IN_START);
	open_held(&w);
	ck_assert_int_eq(net(&w, CONN_IN_NET_DOWN, "link eth0 down"), 0);
	ck_assert_str_eq(acts(&w), "DS");
	ck_assert_int_eq(conn_get_state(&w.c), CONN_RECONNECTING);
	ck_assert_str_eq(conn_reason(&w.c),
	                 "network: link eth0 down; waiting for a route");
	ck_assert_uint_eq(conn_deadline(&w.c), w.now + INC);
	ck_assert_str_eq(conn_configured_url(&w.c), A);
	ck_assert(!conn_url_status_at(&w.c, 0)->failed);
	ck_assert_uint_eq(w.c.count.losses, 1);
	/* Repeated news changes nothing. */
	net(&w, CONN_IN_NET_DOWN, "route removed");
	ck_assert_uint_eq(w.r.n, 0);
	/* The route is back 30 ms later: the attempt now, to the same node. */
	w.now += 30;
	net(&w, CONN_IN_NET_UP, "route added");
	ck_assert_str_eq(acts(&w), "C");
	ck_assert_str_eq(conn_current_url(&w.c), A);
	ck_assert_str_eq(conn_reason(&w.c),
	                 "network: route added; attempt now");
	ck_assert_uint_eq(conn_attempt(&w.c), 1);
	authenticate(&w);
	/* A route appearing while OPEN means nothing. */
	net(&w, CONN_IN_NET_UP, "route added");
	ck_assert_uint_eq(w.r.n, 0);
}
END_TEST

/* A route gone during the handshake drops the attempt too. */
START_TEST(test_net_down_during_handshake)
{
	struct world w;

	world_init(&w, ABC, 5);
	input(&w, CONN_IN_START);
	input(&w, CONN_IN_SOCKET_OPEN);
	ck_assert_int_eq(conn_get_state(&w.c), CONN_CHALLENGING);
	net(&w, CONN_IN_NET_DOWN, "no route");
	ck_assert_str_eq(acts(&w), "DS");
	ck_assert_int_eq(conn_get_state(&w.c), CONN_RECONNECTING);
	/* attempt 1 stays counted: the next is attempt 2, after INC. */
	ck_assert_uint_eq(conn_deadline(&w.c), w.now + INC);
	fire(&w);
	ck_assert(connected(&w));
	ck_assert_uint_eq(conn_attempt(&w.c), 2);
}
END_TEST

/* A flapping link gets at most one early attempt per reconnect step. */
START_TEST(test_net_up_is_rate_limited)
{
	struct world w;
	uint64_t first;

	world_init(&w, A, CONN_ATTEMPTS_INFINITE);
	input(&w, CONN_IN_START);
	open_held(&w);
	net(&w, CONN_IN_NET_DOWN, "down");
	w.now += 10;
	net(&w, CONN_IN_NET_UP, "up");
	ck_assert_str_eq(acts(&w), "C");
	first = w.now;
	/* It fails (the link flapped again): attempt 2 due after INC. */
	w.now += 5;
	input(&w, CONN_IN_SOCKET_CLOSED);
	ck_assert_uint_eq(conn_deadline(&w.c), w.now + INC);
	net(&w, CONN_IN_NET_DOWN, "down");
	ck_assert_uint_eq(w.r.n, 0);
	w.now += 10;
	net(&w, CONN_IN_NET_UP, "up");
	ck_assert_str_eq(acts(&w), ""); /* too soon after the first */
	ck_assert_uint_eq(conn_deadline(&w.c), first + INC);
	/* Up again once a step has passed since the first: at once. */
	w.now = first + INC;
	net(&w, CONN_IN_NET_UP, "up");
	ck_assert_str_eq(acts(&w), "C");
	/* A long backoff is cut short to the rate limit, never made longer. */
	input(&w, CONN_IN_SOCKET_CLOSED);
	input(&w, CONN_IN_NET_UP);
	ck_assert_uint_eq(w.r.n, 0);
	ck_assert_uint_le(conn_deadline(&w.c), w.now + INC);
}
END_TEST

/* ERROR: a transient one ends when a route is back; a permanent one does
 * not, nor does OFFLINE. */
START_TEST(test_net_up_and_errors)
{
	struct world w;

	world_init(&w, A, 2);
	input(&w, CONN_IN_START);
	input(&w, CONN_IN_SOCKET_CLOSED);
	fire(&w);
	input(&w, CONN_IN_SOCKET_CLOSED);
	ck_assert_int_eq(conn_error_cause(&w.c), CONN_ERR_GAVE_UP);
	net(&w, CONN_IN_NET_DOWN, "down");
	ck_assert_uint_eq(w.r.n, 0);
	ck_assert_int_eq(conn_get_state(&w.c), CONN_ERROR);
	w.now += 1;
	net(&w, CONN_IN_NET_UP, "route added");
	ck_assert_str_eq(acts(&w), "SC");
	ck_assert_ptr_nonnull(strstr(conn_reason(&w.c), "fresh instance now"));
	/* Permanent: only restartAfterError or the operator end it. */
	input(&w, CONN_IN_SOCKET_OPEN);
	feed(&w, CONN_IN_FRAME, CONN_FRAME_REJECT, NULL);
	ck_assert_int_eq(conn_error_cause(&w.c), CONN_ERR_REJECTED);
	w.now += 2 * INC;
	net(&w, CONN_IN_NET_UP, "up");
	ck_assert_uint_eq(w.r.n, 0);
	ck_assert_int_eq(conn_get_state(&w.c), CONN_ERROR);
	/* OFFLINE stays OFFLINE. */
	input(&w, CONN_IN_RESUME);
	ck_assert_int_eq(input(&w, CONN_IN_PAUSE), 0);
	net(&w, CONN_IN_NET_DOWN, "down");
	net(&w, CONN_IN_NET_UP, "up");
	ck_assert_uint_eq(w.r.n, 0);
	ck_assert_int_eq(conn_get_state(&w.c), CONN_OFFLINE);
	input(&w, CONN_IN_CLOSE);
	ck_assert_int_eq(net(&w, CONN_IN_NET_UP, "up"), 0);
	ck_assert_uint_eq(w.r.n, 0);
}
END_TEST

static Suite *conn_urls_suite(void)
{
	Suite *s = suite_create("conn_urls");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, test_list_is_split);
	tcase_add_test(tc, test_bad_lists);
	tcase_add_test(tc, test_failed_attempts_walk_the_list);
	tcase_add_test(tc, test_attempts_count_over_the_list);
	tcase_add_test(tc, test_loss_goes_to_the_next_node_at_once);
	tcase_add_test(tc, test_early_loss_moves_on_with_backoff);
	tcase_add_test(tc, test_redirect_counts_as_the_current_url);
	tcase_add_test(tc, test_errors_and_pause);
	tcase_add_test(tc, test_new_list_keeps_the_node);
	tcase_add_test(tc, test_jitter_needs_a_source_and_a_range);
	tcase_add_test(tc, test_jitter_zero_keeps_the_schedule_exact);
	tcase_add_test(tc, test_jitter_spreads_each_wait);
	tcase_add_test(tc, test_net_down_leaves_open_at_once);
	tcase_add_test(tc, test_net_down_during_handshake);
	tcase_add_test(tc, test_net_up_is_rate_limited);
	tcase_add_test(tc, test_net_up_and_errors);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return check_run(conn_urls_suite());
}

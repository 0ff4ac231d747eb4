/*
 * upstream.c and pubsub.c together, wired as dsd.c wires them, over the
 * fake transport (fake_transport.c is linked instead of transport.c): the
 * paths that only the Node integration suite reached before — the
 * handshake, subscriptions rebuilt before queued emits, a connection lost
 * with frames in flight, take-back and requeue order, back-pressure,
 * reload, a failed SUBSCRIBE batch.
 */
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "access.h"
#include "check-run.h"
#include "client.h"
#include "clock.h"
#include "config.h"
#include "fake_transport.h"
#include "pubsub_core.h" /* PACE_MESSAGES */
#include "glue_wiring.h"
#include "ipcproto.h"
#include "netwatch.h"
#include "pubsub.h"
#include "pubsub_spool.h"
#include "pubsub_subs.h"
#include "upstream.h"

/* ---- the fixture: the root's wiring, minus the local socket ---- */

static struct event_base *base;
static struct dsd_config cfg;
static struct upstream *up;
static struct glue_wiring wiring;
static struct access_usage *usage;
static struct dsd_client app; /* one local app, never sent events */
/* The window's clock: still unless a test moves it, so the window stays
 * at its floor whatever the machine's speed. */
static uint64_t fake_us = 1;

static uint64_t fake_now_us(void)
{
	return fake_us;
}

static void setup(void)
{
	fake_reset();
	wiring = (struct glue_wiring){0};
	base = event_base_new();
	ck_assert_ptr_nonnull(base);
	ck_assert_int_eq(config_init(&cfg), 0);
	cfg.url = strdup("ws://platform.test:6020/deepstream");
	/* A lost connection is retried after 100 ms (it never held). */
	cfg.reconnect_interval_increment = 100;
	cfg.max_reconnect_attempts = 100;
	cfg.max_clients = 8;
	cfg.reserved_admin_clients = 0;
	ck_assert_int_eq(access_usage_new(&usage), 0);
	ck_assert_int_eq(upstream_new(base, &cfg, &glue_upstream_callbacks,
	                              &wiring, &up),
	                 0);
	ck_assert_int_eq(pubsub_new(base, &cfg, up, usage,
	                            &glue_pubsub_callbacks, NULL, &wiring.ps),
	                 0);
	fake_us = 1;
	wiring.ps->now_us = fake_now_us;
	app = (struct dsd_client){.id = 1, .slot = UINT32_MAX};
	app.peer.uid = 1000;
}

static void teardown(void)
{
	pubsub_client_gone(wiring.ps, &app);
	upstream_free(up);
	pubsub_free(wiring.ps);
	access_usage_free(usage);
	config_free(&cfg);
	event_base_free(base);
	fake_reset();
}

/* A configuration for a reload: url, and the fixture's reconnect
 * options. */
static void fresh_config(struct dsd_config *fresh, const char *url)
{
	ck_assert_int_eq(config_init(fresh), 0);
	fresh->url = strdup(url);
	fresh->reconnect_interval_increment = 100;
	fresh->max_reconnect_attempts = 100;
}

/* Runs the loop until fake.connects reaches n (2 s at most). */
static void wait_connects(unsigned n)
{
	uint64_t end = clock_mono_ms() + 2000;

	while (fake.connects < n && clock_mono_ms() < end)
		event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
	ck_assert_uint_eq(fake.connects, n);
}

/* Runs what the loop has ready now (batched SUBSCRIBEs, ...). */
static void pump(void)
{
	for (int i = 0; i < 10; i++)
		event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
}

/* The platform's side of a handshake, up to OPEN. */
static void handshake(void)
{
	struct wire_msg accept = {.topic = WIRE_TOPIC_CONNECTION,
	                          .action = WIRE_CONN_ACCEPT};
	struct wire_msg ok = {.topic = WIRE_TOPIC_AUTH,
	                      .action = WIRE_AUTH_SUCCESSFUL};

	fake_open();
	fake_receive(&accept);
	fake_receive(&ok);
	ck_assert(upstream_is_open(up));
	pump();
}

/* The platform answers the oldest PING. */
static void pong(void)
{
	struct wire_msg m = {.topic = WIRE_TOPIC_CONNECTION,
	                     .action = WIRE_CONN_PONG};

	fake_receive(&m);
	pump();
}

static struct sendq_stats store_stats(void)
{
	struct sendq_stats st;

	sendq_get_stats(pubsub_store(wiring.ps), &st);
	return st;
}

static void emit(int i)
{
	struct pubsub_refusal why = {0};
	char data[32];
	int r;

	snprintf(data, sizeof(data), "{\"i\":%d}", i);
	r = pubsub_emit(wiring.ps, &app, "numbers", data, strlen(data), 0,
	                false, &why);
	ck_assert_msg(r >= 0, "emit %d: %s", i, why.text);
}

static void subscribe(const char *name)
{
	struct pubsub_refusal why = {0};

	ck_assert_int_eq(pubsub_subscribe(wiring.ps, &app, name, &why), 0);
}

static int by_name(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* S[a,b] or U[a,b], names sorted: a batch carries them in hash order. */
static void names_text(const struct wire_msg *m, char *out, size_t cap)
{
	const char *names[64];
	size_t n = m->n_names < 64 ? m->n_names : 64, k;

	memcpy(names, m->names, n * sizeof(*names));
	qsort(names, n, sizeof(*names), by_name);
	k = (size_t)snprintf(out, cap, "%c[",
	                     m->action == WIRE_EVENT_SUBSCRIBE ? 'S' : 'U');
	for (size_t j = 0; j < n; j++)
		k += (size_t)snprintf(out + k, cap - k, "%s%s", j ? "," : "",
		                      names[j]);
	snprintf(out + k, cap - k, "]");
}

/*
 * What was sent from frame `from` on, as a compact text: C (challenge),
 * A (auth), P (ping), S[a,b] (subscribe), U[...] (unsubscribe), E<i> (an
 * emit of {"i":<i>}), separated by spaces.
 */
static void sent_text(size_t from, char *out, size_t cap)
{
	size_t used = 0;

	out[0] = '\0';
	for (size_t i = from; i < fake.n_sent; i++) {
		struct wire_decoded *d;
		const struct wire_msg *m = fake_sent_msg(i, &d);
		char one[256] = "?";

		if (m->topic == WIRE_TOPIC_CONNECTION)
			snprintf(one, sizeof(one), "%s",
			         m->action == WIRE_CONN_CHALLENGE ? "C"
			         : m->action == WIRE_CONN_PING    ? "P"
			                                          : "?");
		else if (m->topic == WIRE_TOPIC_AUTH)
			snprintf(one, sizeof(one), "A");
		else if (m->action == WIRE_EVENT_EMIT)
			snprintf(one, sizeof(one), "E%d",
			         atoi(strchr(m->data, ':') + 1));
		else if (m->action == WIRE_EVENT_SUBSCRIBE ||
		         m->action == WIRE_EVENT_UNSUBSCRIBE)
			names_text(m, one, sizeof(one));
		used += (size_t)snprintf(out + used, cap - used, "%s%s",
		                         used ? " " : "", one);
		wire_decoded_free(d);
	}
}

#define ck_sent(from, want)                                                    \
	do {                                                                   \
		char got_[2048];                                               \
		sent_text((from), got_, sizeof(got_));                         \
		ck_assert_str_eq(got_, (want));                                \
	} while (0)

/* ---- tests ---- */

START_TEST(test_open_rebuilds_then_flushes)
{
	subscribe("a");
	subscribe("b");
	emit(1);
	emit(2);
	ck_assert_uint_eq(pubsub_queue_depth(wiring.ps), 2);
	ck_assert_int_eq(upstream_start(up), 0);
	ck_assert_uint_eq(fake.connects, 1);
	ck_assert_str_eq(fake.last_url, "ws://platform.test:6020/deepstream");
	handshake();
	/* Handshake, the subscriptions from state, the queue, and one PING
	 * asking the platform to confirm the burst. */
	ck_sent(0, "C A S[a,b] E1 E2 P");
	ck_assert_int_eq(wiring.opened, 1);
	ck_assert_uint_eq(store_stats().in_flight, 2);
	pong();
	ck_assert_uint_eq(store_stats().confirmed, 2);
	ck_assert_uint_eq(pubsub_queue_depth(wiring.ps), 0);
	emit(3);
	pump();
	ck_sent(6, "E3 P");
	pong();
	ck_assert_uint_eq(store_stats().confirmed, 3);
}
END_TEST

START_TEST(test_loss_requeues_unconfirmed_in_order)
{
	const struct pubsub_counters *pc = pubsub_get_counters(wiring.ps);
	size_t mark;

	subscribe("a");
	ck_assert_int_eq(upstream_start(up), 0);
	handshake();
	emit(1);
	pump();
	pong(); /* E1 confirmed: it will not come again */
	emit(2);
	emit(3);
	emit(4);
	pump();
	/* written, PING sent, no PONG yet: the link dies */
	fake_close("reset by the test");
	ck_assert_int_eq(wiring.lost, 1);
	ck_assert_uint_eq(pubsub_queue_depth(wiring.ps), 3);
	ck_assert_uint_eq(pc->emits_requeued, 3);
	ck_assert_uint_eq(store_stats().confirmed, 1);
	/* Newer emits queue behind them. */
	emit(5);
	wait_connects(2);
	mark = fake.n_sent;
	handshake();
	/* Subscriptions rebuilt before the requeued emits, then the rest. */
	ck_sent(mark, "C A S[a] E2 E3 E4 E5 P");
	ck_assert_uint_eq(store_stats().resent, 3);
	pong();
	ck_assert_uint_eq(store_stats().confirmed, 5);
	ck_assert_uint_eq(pubsub_queue_depth(wiring.ps), 0);
}
END_TEST

/* A PONG for a PING sent before a loss must not confirm what came back. */
START_TEST(test_stale_pong_confirms_nothing)
{
	ck_assert_int_eq(upstream_start(up), 0);
	handshake();
	emit(1);
	pump();
	fake_close("gone");
	wait_connects(2);
	handshake();
	/* E1 again and its PING; the first PONG on this connection answers
	 * that PING, nothing older */
	ck_assert_uint_eq(store_stats().in_flight, 1);
	pong();
	ck_assert_uint_eq(store_stats().in_flight, 0);
	ck_assert_uint_eq(store_stats().confirmed, 1);
}
END_TEST

START_TEST(test_window_bounds_what_is_unconfirmed)
{
	int pongs = 0;

	ck_assert_int_eq(upstream_start(up), 0);
	handshake();
	for (int i = 1; i <= 600; i++)
		emit(i);
	pump();
	/* 128 written, with a PING after each half; the rest waits for the
	 * platform to catch up */
	ck_assert_uint_eq(store_stats().in_flight, 128);
	ck_assert_uint_eq(store_stats().queued, 472);
	pong();
	ck_assert_uint_eq(store_stats().confirmed, 64);
	ck_assert_uint_eq(store_stats().in_flight, 128);
	/* each PONG confirms half a window and lets the next half out */
	while (store_stats().confirmed < 600 && pongs++ < 20) {
		pong();
		ck_assert_uint_le(store_stats().in_flight, 128);
	}
	ck_assert_uint_eq(store_stats().confirmed, 600);
	ck_assert_int_le(pongs, 9);
}
END_TEST

static void light_emit(struct dsd_client *c, const char *data)
{
	struct pubsub_refusal why = {0};
	int r = pubsub_emit(wiring.ps, c, "numbers", data, strlen(data), 0,
	                    false, &why);

	ck_assert_msg(r >= 0, "emit %s: %s", data, why.text);
}

/* Every emit 1..n was sent in order, and x was sent before y. */
static void ck_emits_in_order(int n, int x, int y)
{
	int next = 1;
	size_t at_x = 0, at_y = 0;

	for (size_t i = 0; i < fake.n_sent; i++) {
		struct wire_decoded *d;
		const struct wire_msg *m = fake_sent_msg(i, &d);

		if (m->topic == WIRE_TOPIC_EVENT &&
		    m->action == WIRE_EVENT_EMIT) {
			int v = atoi(strchr(m->data, ':') + 1);

			if (v == x)
				at_x = i;
			else if (v == y)
				at_y = i;
			else
				ck_assert_int_eq(v, next++);
		}
		wire_decoded_free(d);
	}
	ck_assert_int_eq(next, n + 1);
	ck_assert_uint_gt(at_x, 0);
	ck_assert_uint_gt(at_y, at_x);
}

/* The emits recorded since the last call are *next, *next + 1, ...: none
 * lost or out of order on one connection.  Then forgets them. */
static void ck_consecutive_and_forget(int *next)
{
	for (size_t i = 0; i < fake.n_sent; i++) {
		struct wire_decoded *d;
		const struct wire_msg *m = fake_sent_msg(i, &d);

		if (m->topic == WIRE_TOPIC_EVENT &&
		    m->action == WIRE_EVENT_EMIT)
			ck_assert_int_eq(atoi(strchr(m->data, ':') + 1),
			                 (*next)++);
		wire_decoded_free(d);
	}
	fake_forget();
}

/* Confirms at one PONG per dt_us for n PONGs, keeping the store full;
 * returns the most that was in flight after a PONG.  *emitted: the last
 * emit made; *written: the next emit expected on the wire. */
static size_t run_link(int *emitted, int *written, uint64_t dt_us, int n)
{
	size_t most = 0;

	for (int k = 0; k < n; k++) {
		while (store_stats().queued < 4096)
			emit(++*emitted);
		pump();
		if (store_stats().in_flight > most)
			most = store_stats().in_flight;
		ck_assert_uint_le(store_stats().in_flight,
		                  SEND_WINDOW_MAX_MESSAGES);
		ck_consecutive_and_forget(written);
		fake_us += dt_us;
		pong();
	}
	return most;
}

/* The window follows the rate at which the platform confirms: the floor
 * (128 emits) at first, more on a fast link but never past the cap, the
 * floor again when the link slows and after a lost connection.  Nothing
 * lost or reordered on the way. */
START_TEST(test_window_follows_the_confirmation_rate)
{
	int emitted = 0, written = 1, pongs = 0;

	ck_assert_int_eq(upstream_start(up), 0);
	handshake();
	/* a still clock: no rate, the floor */
	ck_assert_uint_eq(run_link(&emitted, &written, 0, 20), 128);
	/* a PONG every 20 us: thousands of emits confirmed per ms */
	ck_assert_uint_eq(run_link(&emitted, &written, 20, 400),
	                  SEND_WINDOW_MAX_MESSAGES);
	/* a PONG every 50 ms: the floor again */
	(void)run_link(&emitted, &written, 50000, 40);
	ck_assert_uint_eq(run_link(&emitted, &written, 50000, 10), 128);
	/* fast again, then the connection is lost: a new link starts at
	 * the floor, with what was not confirmed */
	ck_assert_uint_gt(run_link(&emitted, &written, 20, 400), 128);
	fake_close("gone");
	wait_connects(2);
	fake_forget();
	written = (int)store_stats().confirmed + 1;
	handshake();
	ck_assert_uint_eq(store_stats().in_flight, 128);
	while (store_stats().queued + store_stats().in_flight > 0 &&
	       pongs++ < 1000) {
		ck_consecutive_and_forget(&written);
		fake_us += 20;
		pong();
	}
	ck_consecutive_and_forget(&written);
	/* every emit confirmed once, all written in order */
	ck_assert_uint_eq(store_stats().confirmed, (unsigned)emitted);
	ck_assert_int_eq(written, emitted + 1);
}
END_TEST

/* The reserve: with the window full of one app's emits, another app's
 * single emit is written at once, not after the next PONG. */
START_TEST(test_light_app_does_not_wait_for_the_window)
{
	struct dsd_client light = {.id = 2, .slot = UINT32_MAX};
	size_t before;

	light.peer.uid = 1001;
	ck_assert_int_eq(upstream_start(up), 0);
	handshake();
	for (int i = 1; i <= 600; i++)
		emit(i);
	pump();
	ck_assert_uint_eq(store_stats().in_flight, 128);
	before = fake.n_sent;
	light_emit(&light, "{\"i\":9001}");
	light_emit(&light, "{\"i\":9002}");
	pump();
	/* the first goes past the full window (its PING follows the next
	 * PONG: two are in flight already); the second waits for it */
	ck_sent(before, "E9001");
	ck_assert_uint_eq(store_stats().in_flight, 129);
	/* and nobody's order suffers: all written, each app in order */
	for (int k = 0; k < 40 && store_stats().confirmed < 602; k++)
		pong();
	ck_assert_uint_eq(store_stats().confirmed, 602);
	ck_emits_in_order(600, 9001, 9002);
	pubsub_client_gone(wiring.ps, &light);
}
END_TEST

/* Pacing: while OPEN, an app whose backlog passes PACE_MESSAGES is paced
 * (its input held) until its backlog is down to half; not while the
 * connection is down, where the queue takes what it may. */
START_TEST(test_flooding_app_is_paced_while_open)
{
	int i, pongs = 0;

	ck_assert_int_eq(upstream_start(up), 0);
	handshake();
	for (i = 1; !app.paced && i <= 5000; i++)
		emit(i);
	ck_assert(app.paced);
	/* the window is written, the rest waits: exactly the pace */
	ck_assert_uint_eq(store_stats().queued, PACE_MESSAGES);
	while (app.paced && pongs++ < 100)
		pong();
	ck_assert(!app.paced);
	ck_assert_uint_le(store_stats().queued, PACE_MESSAGES / 2);
	/* paced again; the platform confirms nothing for PACE_STALL_MS: the
	 * link is stalled, its emits queue up as they would while not OPEN */
	for (; !app.paced && i <= 10000; i++)
		emit(i);
	ck_assert(app.paced);
	/* (the check runs every PACE_STALL_MS: noticed within two) */
	for (int k = 0; k < 2; k++) {
		usleep((PACE_STALL_MS + 50) * 1000);
		pump();
	}
	ck_assert(!app.paced);
	for (int k = 0; k < 2 * PACE_MESSAGES; k++)
		emit(i++);
	ck_assert(!app.paced);
	/* a confirmation: the link drains again, and pacing is back */
	pong();
	emit(i++);
	ck_assert(app.paced);
	/* the connection goes: nobody is paced */
	for (; !app.paced && i <= 10000; i++)
		emit(i);
	ck_assert(app.paced);
	fake_close("gone");
	pump();
	ck_assert(!app.paced);
	for (int k = 0; k < 2 * PACE_MESSAGES; k++)
		emit(i++);
	ck_assert(!app.paced);
}
END_TEST

START_TEST(test_backpressure_keeps_order)
{
	ck_assert_int_eq(upstream_start(up), 0);
	handshake();
	fake.send_budget = 2;
	for (int i = 1; i <= 5; i++)
		emit(i);
	pump(); /* the PING finds no room either */
	ck_sent(2, "E1 E2");
	ck_assert_uint_eq(store_stats().queued, 3);
	/* Even with room again, nothing jumps the queue before drained. */
	fake.send_budget = -1;
	emit(6);
	ck_sent(2, "E1 E2");
	fake_drain(-1);
	pump();
	ck_sent(2, "E1 E2 E3 E4 E5 E6 P");
	pong();
	ck_assert_uint_eq(pubsub_queue_depth(wiring.ps), 0);
}
END_TEST

START_TEST(test_failed_subscribe_batch_is_rebuilt)
{
	ck_assert_int_eq(upstream_start(up), 0);
	handshake();
	fake.control_fails = 1;
	subscribe("x");
	subscribe("y");
	pump(); /* the batch fails */
	ck_sent(2, "");
	fake_drain(-1); /* room again: rebuilt from state */
	ck_sent(2, "S[x,y]");
}
END_TEST

/* The platform acks frame i (a SUBSCRIBE or UNSUBSCRIBE). */
static void ack(size_t i)
{
	struct wire_decoded *d;
	const struct wire_msg *m = fake_sent_msg(i, &d);
	struct wire_msg a = {.topic = WIRE_TOPIC_EVENT,
	                     .action = m->action,
	                     .correlation_id = m->correlation_id,
	                     .has_is_ack = true,
	                     .is_ack = true};

	fake_receive(&a);
	wire_decoded_free(d);
}

START_TEST(test_unsubscribe_last_app)
{
	struct pubsub_refusal why = {0};

	ck_assert_int_eq(upstream_start(up), 0);
	handshake();
	subscribe("n");
	pump();
	/* Dropped while its SUBSCRIBE is in flight: the UNSUBSCRIBE waits
	 * for the ack, or the two could cross. */
	ck_assert_int_eq(pubsub_unsubscribe(wiring.ps, &app, "n", &why), 0);
	pump();
	ck_sent(2, "S[n]");
	ack(2);
	pump();
	ck_sent(2, "S[n] U[n]");
	ck_assert_int_eq(pubsub_unsubscribe(wiring.ps, &app, "n", &why),
	                 -ENOENT);
	ck_assert_str_eq(why.text, "not subscribed");
}
END_TEST

START_TEST(test_reload_new_url_reconnects)
{
	struct dsd_config fresh;
	char err[256];
	bool restarted = true;

	ck_assert_int_eq(upstream_start(up), 0);
	handshake();
	/* The same options: nothing happens. */
	fresh_config(&fresh, cfg.url);
	ck_assert_int_eq(
	        upstream_reconfigure(up, &fresh, &restarted, err, sizeof(err)),
	        0);
	ck_assert(!restarted);
	ck_assert_uint_eq(fake.connects, 1);
	/* A new URL: a fresh connection to it. */
	free(fresh.url);
	fresh.url = strdup("ws://other.test:6020/deepstream");
	ck_assert_int_eq(
	        upstream_reconfigure(up, &fresh, &restarted, err, sizeof(err)),
	        0);
	ck_assert(restarted);
	wait_connects(2);
	ck_assert_str_eq(fake.last_url, "ws://other.test:6020/deepstream");
	ck_assert_uint_ge(fake.disconnects, 1);
	config_free(&fresh);
}
END_TEST

/*
 * TLS only where it is used: a ws:// configuration makes a transport
 * without it; a REDIRECT to wss:// makes one with it before that connect;
 * a reload that keeps the URL keeps it, one back to ws:// drops it.
 */
START_TEST(test_tls_only_for_wss)
{
	struct wire_msg redirect = {.topic = WIRE_TOPIC_CONNECTION,
	                            .action = WIRE_CONN_REDIRECT,
	                            .url = "wss://secure.test/deepstream"};
	struct dsd_config fresh;
	char err[256];
	bool restarted;

	ck_assert(!fake.tls);
	ck_assert_uint_eq(fake.transports_made, 1);
	ck_assert_int_eq(upstream_start(up), 0);
	wait_connects(1);
	fake_open();
	fake_receive(&redirect);
	wait_connects(2);
	ck_assert_str_eq(fake.last_url, "wss://secure.test/deepstream");
	ck_assert(fake.tls);
	ck_assert_uint_eq(fake.transports_made, 2);

	/* Another option changes: the TLS transport stays. */
	ck_assert_int_eq(config_init(&fresh), 0);
	fresh.url = strdup(cfg.url);
	fresh.reconnect_interval_increment = 100;
	fresh.max_reconnect_attempts = 50;
	ck_assert_int_eq(
	        upstream_reconfigure(up, &fresh, &restarted, err, sizeof(err)),
	        0);
	ck_assert(!restarted);
	ck_assert_uint_eq(fake.transports_made, 2);
	/* A proxy: a new transport (still with TLS) and a fresh connect. */
	fresh.proxy = strdup("http://u:pw@proxy.test:3128");
	ck_assert_int_eq(
	        upstream_reconfigure(up, &fresh, &restarted, err, sizeof(err)),
	        0);
	ck_assert(restarted);
	ck_assert_uint_eq(fake.transports_made, 3);
	ck_assert(fake.tls);
	ck_assert_str_eq(fake.last_proxy, "proxy.test:3128");
	/* Another ws:// URL, no proxy: TLS is dropped. */
	free(fresh.url);
	fresh.url = strdup("ws://other.test/deepstream");
	free(fresh.proxy);
	fresh.proxy = NULL;
	ck_assert_int_eq(
	        upstream_reconfigure(up, &fresh, &restarted, err, sizeof(err)),
	        0);
	ck_assert(restarted);
	ck_assert_uint_eq(fake.transports_made, 4);
	ck_assert(!fake.tls);
	ck_assert_str_eq(fake.last_proxy, "");
	config_free(&fresh);
}
END_TEST

/* A renewed client certificate under the same names (other bytes, so
 * another digest) is taken up by a reload: a new transport, a fresh
 * connect.  The same bytes change nothing. */
START_TEST(test_reload_renewed_certificate)
{
	struct dsd_config fresh;
	char err[256];
	bool restarted;

	ck_assert_int_eq(upstream_start(up), 0);
	handshake();
	fresh_config(&fresh, cfg.url);
	fresh.cert_file = strdup("/etc/dsd/client.pem");
	fresh.key_file = strdup("/etc/dsd/client.key");
	ck_assert_int_eq(
	        upstream_reconfigure(up, &fresh, &restarted, err, sizeof(err)),
	        0);
	ck_assert(restarted);
	ck_assert_uint_eq(fake.transports_made, 2);
	ck_assert_int_eq(
	        upstream_reconfigure(up, &fresh, &restarted, err, sizeof(err)),
	        0);
	ck_assert(!restarted);
	ck_assert_uint_eq(fake.transports_made, 2);
	fresh.client_cert_digest[0] ^= 1;
	ck_assert_int_eq(
	        upstream_reconfigure(up, &fresh, &restarted, err, sizeof(err)),
	        0);
	ck_assert(restarted);
	ck_assert_uint_eq(fake.transports_made, 3);
	/* One fresh connect per restart. */
	wait_connects(3);
	config_free(&fresh);
}
END_TEST

/* Losing node A of a cluster: what A never confirmed goes to node B, after
 * the subscriptions, in order, and at once (the first reconnect after a
 * loss is not delayed). */
START_TEST(test_loss_of_a_node_resends_to_the_next)
{
	struct dsd_config fresh;
	char err[256];
	bool restarted = true;
	size_t mark;
	uint64_t t;

	fresh_config(&fresh, "ws://a.test:6020/deepstream "
	                     "ws://b.test:6020/deepstream");
	/* Held after one interval, on the real clock: long enough that a
	 * loaded machine's stall does not miss the heartbeat (100 ms once
	 * failed here while other tests ran). */
	fresh.heartbeat_interval = 400;
	ck_assert_int_eq(
	        upstream_reconfigure(up, &fresh, &restarted, err, sizeof(err)),
	        0);
	subscribe("a");
	ck_assert_int_eq(upstream_start(up), 0);
	ck_assert_str_eq(fake.last_url, "ws://a.test:6020/deepstream");
	handshake();
	t = clock_mono_ms() + 450;
	while (clock_mono_ms() < t)
		event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
	pong(); /* the heartbeat's PING */
	emit(1);
	emit(2);
	pump();
	fake_close("node a killed");
	ck_assert_uint_eq(pubsub_queue_depth(wiring.ps), 2);
	emit(3);
	/* The connect is asked for in the same pass: no backoff. */
	ck_assert_uint_eq(fake.connects, 2);
	ck_assert_str_eq(fake.last_url, "ws://b.test:6020/deepstream");
	mark = fake.n_sent;
	handshake();
	ck_sent(mark, "C A S[a] E1 E2 E3 P");
	pong();
	ck_assert_uint_eq(store_stats().confirmed, 3);
	ck_assert_uint_eq(store_stats().resent, 2);
	config_free(&fresh);
}
END_TEST

/* A reload with another list that still has the node keeps the
 * connection; one without it moves to the new list's first URL. */
START_TEST(test_reload_list_keeps_the_node)
{
	struct dsd_config fresh;
	char err[256];
	bool restarted = true;

	ck_assert_int_eq(upstream_start(up), 0);
	handshake();
	fresh_config(&fresh, "ws://b.test/deepstream "
	                     "ws://platform.test:6020/deepstream");
	ck_assert_int_eq(
	        upstream_reconfigure(up, &fresh, &restarted, err, sizeof(err)),
	        0);
	ck_assert(!restarted);
	ck_assert(upstream_is_open(up));
	ck_assert_uint_eq(fake.connects, 1);
	ck_assert_uint_eq(conn_url_index(upstream_conn(up)), 1);
	free(fresh.url);
	fresh.url = strdup("ws://c.test/deepstream ws://b.test/deepstream");
	ck_assert_int_eq(
	        upstream_reconfigure(up, &fresh, &restarted, err, sizeof(err)),
	        0);
	ck_assert(restarted);
	wait_connects(2);
	ck_assert_str_eq(fake.last_url, "ws://c.test/deepstream");
	config_free(&fresh);
}
END_TEST

/* A wss:// node added to a ws:// list that still has the node dsd is on:
 * the connection stays (no new transport yet); TLS is set up when an
 * attempt really goes to the wss:// node. */
START_TEST(test_reload_adding_wss_keeps_the_node)
{
	struct dsd_config fresh;
	char err[256];
	bool restarted = true;

	ck_assert_int_eq(upstream_start(up), 0);
	handshake();
	ck_assert(!fake.tls);
	fresh_config(&fresh, "ws://platform.test:6020/deepstream "
	                     "wss://b.test/deepstream");
	ck_assert_int_eq(
	        upstream_reconfigure(up, &fresh, &restarted, err, sizeof(err)),
	        0);
	ck_assert(!restarted);
	ck_assert(upstream_is_open(up));
	ck_assert_uint_eq(fake.transports_made, 1);
	ck_assert_uint_eq(fake.connects, 1);
	fake_close("node a killed");
	wait_connects(2);
	ck_assert_str_eq(fake.last_url, "wss://b.test/deepstream");
	ck_assert(fake.tls);
	config_free(&fresh);
}
END_TEST

/* Through a proxy, the route that decides whether the platform can be
 * reached is the route to the proxy: the platform's own address may have
 * none from this machine. */
START_TEST(test_network_watch_follows_the_proxy)
{
	struct dsd_config fresh;
	char err[256];
	bool restarted;

	if (upstream_netwatch(up) == NULL) {
		fprintf(stderr, "no rtnetlink here: nothing to check\n");
		return;
	}
	fresh_config(&fresh, "ws://10.99.99.99:6020/deepstream");
	fresh.proxy = strdup("http://127.0.0.1:3128");
	ck_assert_int_eq(
	        upstream_reconfigure(up, &fresh, &restarted, err, sizeof(err)),
	        0);
	ck_assert_int_eq(upstream_start(up), 0);
	wait_connects(1);
	ck_assert_str_eq(netwatch_target_host(upstream_netwatch(up)),
	                 "127.0.0.1");
	/* Without the proxy: the platform's own route. */
	free(fresh.proxy);
	fresh.proxy = NULL;
	ck_assert_int_eq(
	        upstream_reconfigure(up, &fresh, &restarted, err, sizeof(err)),
	        0);
	ck_assert(restarted);
	wait_connects(2);
	ck_assert_str_eq(netwatch_target_host(upstream_netwatch(up)),
	                 "10.99.99.99");
	config_free(&fresh);
}
END_TEST

START_TEST(test_reload_refused_changes_nothing)
{
	struct dsd_config fresh;
	char err[256] = "";
	bool restarted = true;

	ck_assert_int_eq(upstream_start(up), 0);
	handshake();
	ck_assert_int_eq(config_init(&fresh), 0);
	fresh.url = strdup("ws://other.test/deepstream");
	fresh.heartbeat_interval = 0; /* the parser never lets this through */
	ck_assert_int_lt(
	        upstream_reconfigure(up, &fresh, &restarted, err, sizeof(err)),
	        0);
	ck_assert(!restarted);
	ck_assert_str_eq(err, "the new connection options are unusable");
	ck_assert(upstream_is_open(up));
	ck_assert_uint_eq(fake.connects, 1);
	config_free(&fresh);
}
END_TEST

START_TEST(test_platform_acks_and_denial)
{
	const struct subs *s = pubsub_registry(wiring.ps);
	struct subs_stats st;

	ck_assert_int_eq(upstream_start(up), 0);
	handshake();
	subscribe("ok");
	pump();
	ack(2);
	subs_get_stats(s, &st);
	ck_assert_uint_eq(st.acked, 1);
	ck_assert_uint_eq(st.pending, 0);
	/* The loss of OPEN: nothing counts as subscribed upstream. */
	fake_close("gone");
	subs_get_stats(s, &st);
	ck_assert_uint_eq(st.acked, 0);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("glue");
	TCase *tc = tcase_create("upstream+pubsub");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_open_rebuilds_then_flushes);
	tcase_add_test(tc, test_loss_requeues_unconfirmed_in_order);
	tcase_add_test(tc, test_stale_pong_confirms_nothing);
	tcase_add_test(tc, test_window_bounds_what_is_unconfirmed);
	tcase_add_test(tc, test_light_app_does_not_wait_for_the_window);
	tcase_add_test(tc, test_window_follows_the_confirmation_rate);
	tcase_add_test(tc, test_flooding_app_is_paced_while_open);
	tcase_add_test(tc, test_backpressure_keeps_order);
	tcase_add_test(tc, test_failed_subscribe_batch_is_rebuilt);
	tcase_add_test(tc, test_unsubscribe_last_app);
	tcase_add_test(tc, test_reload_new_url_reconnects);
	tcase_add_test(tc, test_loss_of_a_node_resends_to_the_next);
	tcase_add_test(tc, test_reload_list_keeps_the_node);
	tcase_add_test(tc, test_reload_adding_wss_keeps_the_node);
	tcase_add_test(tc, test_network_watch_follows_the_proxy);
	tcase_add_test(tc, test_reload_refused_changes_nothing);
	tcase_add_test(tc, test_tls_only_for_wss);
	tcase_add_test(tc, test_reload_renewed_certificate);
	tcase_add_test(tc, test_platform_acks_and_denial);
	suite_add_tcase(s, tc);
	return check_run(s);
}

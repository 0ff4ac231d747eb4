/*
 * The durable spool wired into the daemon: upstream, pubsub, control and
 * the IPC server as dsd.c wires them, over the fake transport, with a
 * spool file in a temp dir and a raw local client on the socket.  What an
 * app is told and what the file holds: answered only once on disk,
 * removed once confirmed, read back in order by the next daemon on the
 * same file; a spool that cannot be used, or fails a commit, leaves dsd
 * serving from memory with a clear state.
 */
#include <check.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <event2/event.h>

#include "access.h"
#include "check-run.h"
#include "clock.h"
#include "config.h"
#include "control.h"
#include "fake_transport.h"
#include "glue_wiring.h"
#include "ipc_server.h"
#include "ipcproto.h"
#include "pubsub.h"
#include "pubsub_core.h" /* PACE_MESSAGES */
#include "pubsub_spool.h"
#include "pubsub_subs.h"
#include "spool.h"
#include "upstream.h"

#define WAIT_MS 3000

static char dir[64], sock_path[96], spool_path[96];
static struct event_base *base;
static struct dsd_config cfg;
static struct upstream *up;
static struct glue_wiring wiring;
static struct control *ctl;
static struct access_usage *usage;
static struct ipc_server *srv;

/* ---- the daemon's parts, wired as dsd.c wires them ---- */

static int on_reload(char *err, size_t errlen, void *ud)
{
	(void)ud;
	snprintf(err, errlen, "no reload here");
	return -ENOTSUP;
}

/* Builds every part on the configured spool (dsd starting). */
static void start_daemon(void)
{
	static const struct control_callbacks ccb = {.reload = on_reload};
	static const struct ipc_server_callbacks icb = {
	        .admit = control_admit,
	        .request = control_request,
	        .disconnected = control_disconnected,
	        .rejected = control_rejected,
	};
	struct ipc_server_limits lim = {.max_clients = 8};

	fake_reset();
	base = event_base_new();
	ck_assert_ptr_nonnull(base);
	ck_assert_int_eq(access_usage_new(&usage), 0);
	ck_assert_int_eq(upstream_new(base, &cfg, &glue_upstream_callbacks,
	                              &wiring, &up),
	                 0);
	ck_assert_int_eq(pubsub_new(base, &cfg, up, usage,
	                            &glue_pubsub_callbacks, NULL, &wiring.ps),
	                 0);
	ck_assert_int_eq(
	        control_new(&cfg, up, wiring.ps, usage, &ccb, NULL, &ctl), 0);
	unlink(sock_path);
	ck_assert_int_eq(
	        ipc_server_new(base, sock_path, -1, &lim, &icb, ctl, &srv), 0);
	control_set_ipc(ctl, srv);
}

/* Takes it all down, as dsd_free() does (the spool is closed cleanly). */
static void stop_daemon(void)
{
	ipc_server_free(srv);
	upstream_free(up);
	control_free(ctl);
	pubsub_free(wiring.ps);
	access_usage_free(usage);
	event_base_free(base);
	srv = NULL;
	up = NULL;
	wiring.ps = NULL;
	ctl = NULL;
	usage = NULL;
	base = NULL;
}

static void setup(void)
{
	snprintf(dir, sizeof(dir), "/tmp/dsd-spool-glue-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(dir));
	snprintf(sock_path, sizeof(sock_path), "%s/dsd.sock", dir);
	snprintf(spool_path, sizeof(spool_path), "%s/spool.db", dir);
	ck_assert_int_eq(config_init(&cfg), 0);
	cfg.url = strdup("ws://platform.test:6020/deepstream");
	cfg.reconnect_interval_increment = 100;
	cfg.max_reconnect_attempts = 100;
	cfg.max_clients = 8;
	cfg.reserved_admin_clients = 0;
	cfg.queue_spool = strdup(spool_path);
}

static void teardown(void)
{
	char cmd[128];

	if (base != NULL)
		stop_daemon();
	config_free(&cfg);
	fake_reset();
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	ck_assert_int_eq(system(cmd), 0);
}

static void pump(void)
{
	for (int i = 0; i < 10; i++)
		event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
}

/* ---- a local app on the socket ---- */

struct app {
	int fd;
	uint8_t *buf;
	size_t len;
};

static void app_send(struct app *a, const struct ipc_msg *m)
{
	struct ipc_buf b;
	size_t off = 0;

	ipc_buf_init(&b, IPC_HEADER_SIZE + IPC_MAX_FRAME);
	ck_assert_int_eq(ipc_encode(&b, m), 0);
	while (off < b.len) {
		ssize_t w = send(a->fd, b.data + off, b.len - off,
		                 MSG_NOSIGNAL | MSG_DONTWAIT);

		if (w < 0 && errno == EAGAIN) {
			pump();
			continue;
		}
		ck_assert_int_gt(w, 0);
		off += (size_t)w;
	}
	ipc_buf_free(&b);
}

/* The next frame from dsd (the loop runs meanwhile). */
static void app_recv(struct app *a, struct ipc_msg *m)
{
	uint64_t end = clock_mono_ms() + WAIT_MS;

	for (;;) {
		size_t flen;
		ssize_t n;

		if (ipc_frame_peek(a->buf, a->len, &flen) == 0) {
			ck_assert_int_eq(ipc_decode(a->buf, flen, m), 0);
			memmove(a->buf, a->buf + flen, a->len - flen);
			a->len -= flen;
			return;
		}
		n = recv(a->fd, a->buf + a->len,
		         IPC_HEADER_SIZE + IPC_MAX_FRAME - a->len,
		         MSG_DONTWAIT);
		if (n > 0) {
			a->len += (size_t)n;
			continue;
		}
		ck_assert_msg(n < 0 && errno == EAGAIN,
		              "dsd closed the socket");
		ck_assert_msg(clock_mono_ms() < end, "no answer from dsd");
		event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
	}
}

static struct app *app_connect(void)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	struct app *a = calloc(1, sizeof(*a));
	struct ipc_msg m = {.type = IPC_HELLO,
	                    .has_code = true,
	                    .code = IPC_PROTOCOL_VERSION,
	                    .text = "spool-test"};

	ck_assert_ptr_nonnull(a);
	a->buf = malloc(IPC_HEADER_SIZE + IPC_MAX_FRAME);
	a->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	ck_assert_int_ge(a->fd, 0);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", sock_path);
	ck_assert_int_eq(connect(a->fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	app_send(a, &m);
	app_recv(a, &m);
	ck_assert_int_eq(m.type, IPC_HELLO_OK);
	ipc_msg_clear(&m);
	return a;
}

static void app_free(struct app *a)
{
	close(a->fd);
	free(a->buf);
	free(a);
}

static void send_emit(struct app *a, uint32_t id, const char *data)
{
	struct ipc_msg m = {.type = IPC_EMIT,
	                    .has_id = true,
	                    .id = id,
	                    .name = "numbers",
	                    .data = data,
	                    .data_len = strlen(data)};

	app_send(a, &m);
}

/* Emits {"i":i} (request id i) and returns dsd's answer: the EMIT_REPLY
 * code, or the error's code (negative) with its text in err. */
static int emit(struct app *a, int i, char *err, size_t errlen)
{
	struct ipc_msg m;
	char data[32];
	int r;

	snprintf(data, sizeof(data), "{\"i\":%d}", i);
	send_emit(a, (uint32_t)i, data);
	app_recv(a, &m);
	ck_assert(m.has_id);
	ck_assert_uint_eq(m.id, (uint32_t)i);
	ck_assert(m.type == IPC_EMIT_REPLY || m.type == IPC_ERROR);
	r = m.code;
	if (err != NULL)
		snprintf(err, errlen, "%s", m.text ? m.text : "");
	ipc_msg_clear(&m);
	return r;
}

static struct pubsub_spool_info spool_info(void)
{
	struct pubsub_spool_info si = {0};

	ck_assert(pubsub_spool_info(wiring.ps, &si));
	return si;
}

/* ---- the platform ---- */

static void handshake(void)
{
	struct wire_msg accept = {.topic = WIRE_TOPIC_CONNECTION,
	                          .action = WIRE_CONN_ACCEPT};
	struct wire_msg ok = {.topic = WIRE_TOPIC_AUTH,
	                      .action = WIRE_AUTH_SUCCESSFUL};

	ck_assert_int_eq(upstream_start(up), 0);
	fake_open();
	fake_receive(&accept);
	fake_receive(&ok);
	ck_assert(upstream_is_open(up));
	pump();
}

static void pong(void)
{
	struct wire_msg m = {.topic = WIRE_TOPIC_CONNECTION,
	                     .action = WIRE_CONN_PONG};

	fake_receive(&m);
	pump();
}

/* The emits sent from frame `from` on: "E1 E2 ..." (pings left out). */
static void sent_emits(size_t from, char *out, size_t cap)
{
	size_t used = 0;

	out[0] = '\0';
	for (size_t i = from; i < fake.n_sent; i++) {
		struct wire_decoded *d;
		const struct wire_msg *m = fake_sent_msg(i, &d);

		if (m->topic == WIRE_TOPIC_EVENT &&
		    m->action == WIRE_EVENT_EMIT)
			used += (size_t)snprintf(
			        out + used, cap - used, "%sE%d",
			        used ? " " : "",
			        atoi(strchr(m->data, ':') + 1));
		wire_decoded_free(d);
	}
}

#define ck_emits(want)                                                         \
	do {                                                                   \
		char got_[1024];                                               \
		sent_emits(0, got_, sizeof(got_));                             \
		ck_assert_str_eq(got_, (want));                                \
	} while (0)

/* ---- tests ---- */

START_TEST(test_accepted_on_disk_confirmed_removed)
{
	struct app *a;
	struct ipc_msg m;

	start_daemon();
	a = app_connect();
	ck_assert_int_eq(spool_info().failed, false);
	ck_assert_uint_eq(spool_info().records, 0);
	/* Offline: queued, and on disk before the answer. */
	for (int i = 1; i <= 5; i++) {
		ck_assert_int_eq(emit(a, i, NULL, 0), IPC_EMIT_QUEUED);
		ck_assert_uint_eq(spool_info().records, (uint64_t)i);
	}
	/* Several in one iteration: one batch, answered in order. */
	send_emit(a, 6, "{\"i\":6}");
	send_emit(a, 7, "{\"i\":7}");
	app_recv(a, &m);
	ck_assert_uint_eq(m.id, 6);
	app_recv(a, &m);
	ck_assert_uint_eq(m.id, 7);
	ck_assert_uint_eq(spool_info().records, 7);
	/* Written once OPEN; removed only once confirmed. */
	handshake();
	ck_emits("E1 E2 E3 E4 E5 E6 E7");
	ck_assert_uint_eq(spool_info().records, 7);
	pong();
	ck_assert_uint_eq(spool_info().records, 0);
	ck_assert_uint_eq(pubsub_queue_depth(wiring.ps), 0);
	/* OPEN and idle: written at once, still through the spool. */
	ck_assert_int_eq(emit(a, 8, NULL, 0), IPC_EMIT_SENT);
	ck_assert_uint_eq(spool_info().records, 1);
	pong();
	ck_assert_uint_eq(spool_info().records, 0);
	app_free(a);
}
END_TEST

START_TEST(test_next_start_restores_in_order)
{
	struct app *a, *b;
	char got[1024];

	start_daemon();
	a = app_connect();
	b = app_connect();
	ck_assert_int_eq(emit(a, 1, NULL, 0), IPC_EMIT_QUEUED);
	ck_assert_int_eq(emit(b, 10, NULL, 0), IPC_EMIT_QUEUED);
	ck_assert_int_eq(emit(a, 2, NULL, 0), IPC_EMIT_QUEUED);
	ck_assert_int_eq(emit(b, 11, NULL, 0), IPC_EMIT_QUEUED);
	ck_assert_int_eq(emit(a, 3, NULL, 0), IPC_EMIT_QUEUED);
	/* Written and unconfirmed when dsd goes: kept too. */
	handshake();
	ck_emits("E1 E2 E3 E10 E11");
	app_free(a);
	app_free(b);
	stop_daemon();

	start_daemon();
	ck_assert_uint_eq(spool_info().records, 5);
	ck_assert_uint_eq(pubsub_queue_depth(wiring.ps), 5);
	/* Each app's emits in its order, the oldest app first. */
	handshake();
	ck_emits("E1 E2 E3 E10 E11");
	pong();
	ck_assert_uint_eq(spool_info().records, 0);
	stop_daemon();

	start_daemon();
	ck_assert_uint_eq(pubsub_queue_depth(wiring.ps), 0);
	handshake();
	sent_emits(0, got, sizeof(got));
	ck_assert_str_eq(got, "");
}
END_TEST

/* An app that leaves before its batch is committed: its emits are still
 * accepted (on disk and in the store). */
START_TEST(test_app_gone_before_commit)
{
	struct app *a;

	start_daemon();
	a = app_connect();
	send_emit(a, 1, "{\"i\":1}");
	send_emit(a, 2, "{\"i\":2}");
	app_free(a);
	pump();
	ck_assert_uint_eq(spool_info().records, 2);
	ck_assert_uint_eq(pubsub_queue_depth(wiring.ps), 2);
	handshake();
	ck_emits("E1 E2");
	pong();
	ck_assert_uint_eq(spool_info().records, 0);
}
END_TEST

/* The EMIT_REPLYs that arrived so far (the loop runs once first). */
static int count_replies(struct app *a)
{
	struct ipc_msg m;
	int n = 0;

	event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
	for (;;) {
		size_t flen;
		ssize_t got;

		if (ipc_frame_peek(a->buf, a->len, &flen) == 0) {
			ck_assert_int_eq(ipc_decode(a->buf, flen, &m), 0);
			ck_assert_int_eq(m.type, IPC_EMIT_REPLY);
			ipc_msg_clear(&m);
			memmove(a->buf, a->buf + flen, a->len - flen);
			a->len -= flen;
			n++;
			continue;
		}
		got = recv(a->fd, a->buf + a->len,
		           IPC_HEADER_SIZE + IPC_MAX_FRAME - a->len,
		           MSG_DONTWAIT);
		if (got <= 0)
			return n;
		a->len += (size_t)got;
	}
}

/*
 * Pacing with a spool as without: while the platform drains, a flooding
 * app is read only until about PACE_MESSAGES of its emits wait in the
 * store, the rest stays in its socket; as confirmations come, everything
 * is read and answered.
 */
START_TEST(test_flooding_app_is_paced)
{
	enum { FLOOD = 2500 };
	struct sendq_stats st;
	struct ipc_buf b;
	struct app *a;
	size_t off = 0;
	int replies = 0;
	uint64_t end;

	start_daemon();
	a = app_connect();
	handshake();
	/* One write for the whole flood: it fits the socket's buffer. */
	ipc_buf_init(&b, 1 << 20);
	for (int i = 1; i <= FLOOD; i++) {
		char data[32];
		struct ipc_msg m = {.type = IPC_EMIT,
		                    .has_id = true,
		                    .id = (uint32_t)i,
		                    .name = "numbers",
		                    .data = data};

		m.data_len =
		        (size_t)snprintf(data, sizeof(data), "{\"i\":%d}", i);
		ck_assert_int_eq(ipc_encode(&b, &m), 0);
	}
	while (off < b.len) {
		ssize_t w = send(a->fd, b.data + off, b.len - off,
		                 MSG_NOSIGNAL | MSG_DONTWAIT);

		ck_assert_int_gt(w, 0);
		off += (size_t)w;
	}
	ipc_buf_free(&b);
	for (int k = 0; k < 30; k++) {
		pump();
		replies += count_replies(a);
	}
	sendq_get_stats(pubsub_store(wiring.ps), &st);
	ck_assert_uint_lt(st.queued + st.in_flight, 2 * PACE_MESSAGES);
	ck_assert_int_lt(replies, FLOOD);
	end = clock_mono_ms() + WAIT_MS;
	while (replies < FLOOD && clock_mono_ms() < end) {
		pong();
		replies += count_replies(a);
	}
	ck_assert_int_eq(replies, FLOOD);
	app_free(a);
}
END_TEST

START_TEST(test_unusable_spool_serves_from_memory)
{
	struct pubsub_spool_info si;
	struct app *a;

	/* A directory where the file should be. */
	ck_assert_int_eq(mkdir(spool_path, 0700), 0);
	start_daemon();
	si = spool_info();
	ck_assert(si.failed);
	ck_assert_str_eq(si.path, spool_path);
	ck_assert_msg(strstr(si.error, spool_path) != NULL, "%s", si.error);
	a = app_connect();
	ck_assert_int_eq(emit(a, 1, NULL, 0), IPC_EMIT_QUEUED);
	ck_assert_uint_eq(pubsub_queue_depth(wiring.ps), 1);
	app_free(a);
}
END_TEST

START_TEST(test_damaged_spool_serves_from_memory)
{
	FILE *f = fopen(spool_path, "w");

	ck_assert_ptr_nonnull(f);
	for (int i = 0; i < 1000; i++)
		fputs("not a database ", f);
	fclose(f);
	start_daemon();
	ck_assert(spool_info().failed);
	ck_assert_ptr_nonnull(strstr(spool_info().error, "spool"));
}
END_TEST

/* A commit that fails (here: the file may not grow, as on a full disk):
 * the batch is refused to its app, the spool is given up, and dsd goes on
 * from memory. */
START_TEST(test_failed_commit_refuses_and_degrades)
{
	struct rlimit old, small = {.rlim_cur = 64 * 1024};
	struct app *a;
	char err[256] = "", *big;
	struct ipc_msg m;

	start_daemon();
	a = app_connect();
	ck_assert_int_eq(emit(a, 1, NULL, 0), IPC_EMIT_QUEUED);
	big = malloc(300 * 1024);
	memset(big, 'x', 300 * 1024);
	big[0] = '"';
	big[300 * 1024 - 2] = '"';
	big[300 * 1024 - 1] = '\0';
	ck_assert_int_eq(getrlimit(RLIMIT_FSIZE, &old), 0);
	small.rlim_max = old.rlim_max;
	signal(SIGXFSZ, SIG_IGN);
	ck_assert_int_eq(setrlimit(RLIMIT_FSIZE, &small), 0);
	send_emit(a, 2, big);
	app_recv(a, &m);
	ck_assert_int_eq(setrlimit(RLIMIT_FSIZE, &old), 0);
	free(big);
	ck_assert_int_eq(m.type, IPC_ERROR);
	ck_assert_uint_eq(m.id, 2);
	ck_assert_int_lt(m.code, 0);
	ck_assert_msg(strstr(m.text, "the spool failed") != NULL, "%s", m.text);
	ipc_msg_clear(&m);
	ck_assert(spool_info().failed);
	ck_assert_str_ne(spool_info().error, "");
	/* Memory only from now on; what was accepted before is kept. */
	ck_assert_int_eq(emit(a, 3, err, sizeof(err)), IPC_EMIT_QUEUED);
	ck_assert_uint_eq(pubsub_queue_depth(wiring.ps), 2);
	handshake();
	ck_emits("E1 E3");
	app_free(a);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("spool_glue");
	TCase *tc = tcase_create("spool");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, test_accepted_on_disk_confirmed_removed);
	tcase_add_test(tc, test_next_start_restores_in_order);
	tcase_add_test(tc, test_app_gone_before_commit);
	tcase_add_test(tc, test_flooding_app_is_paced);
	tcase_add_test(tc, test_unusable_spool_serves_from_memory);
	tcase_add_test(tc, test_damaged_spool_serves_from_memory);
	tcase_add_test(tc, test_failed_commit_refuses_and_degrades);
	suite_add_tcase(s, tc);
	return check_run(s);
}

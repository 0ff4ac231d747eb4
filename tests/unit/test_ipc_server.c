/*
 * The IPC server on a real Unix socket in a temporary directory, driven by
 * an event_base in this thread and raw client sockets.  The clients never
 * block: every wait pumps the loop, so the server makes progress while the
 * test waits for it.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "check-run.h"
#include "ipc_server.h"
#include "ipcproto.h"

#define WAIT_MS 3000

/* ---- the fixture: one server and what its callbacks saw ---- */

struct seen {
	int requests;
	int connected;
	int disconnected;
	int rejected;
	char reason[256]; /* last disconnect reason */
	enum ipc_close_reason why;
	char reject_reason[256];
	int flood_result; /* what ipc_client_send said last in flood */
	int flood_sent;
	struct ipc_client *held; /* a request answered later */
	uint32_t held_id;
	char connected_name[64];
	int status_at;            /* requests served before the last STATUS */
	struct ipc_client *paced; /* input held by a RESUME request */
};

static struct event_base *base;
static struct ipc_server *srv;
static char dir[64];
static char path[100];
static struct seen seen;

static void on_request(struct ipc_client *c, const struct ipc_msg *m,
                       void *userdata)
{
	struct ipc_msg r = {.has_id = true, .id = m->id};
	char json[64];

	ck_assert_ptr_eq(userdata, &seen);
	seen.requests++;
	switch (m->type) {
	case IPC_STATUS:
		seen.status_at = seen.requests - 1;
		snprintf(json, sizeof(json), "{\"clients\":%zu}",
		         ipc_server_client_count(srv));
		r.type = IPC_STATUS_REPLY;
		r.text = json;
		ck_assert_int_eq(ipc_client_send(c, &r), 0);
		break;
	case IPC_RESUME:
		/* holds the client's input: the requests after it wait */
		ipc_client_hold_input(c, true);
		seen.paced = c;
		r.type = IPC_OK;
		ck_assert_int_eq(ipc_client_send(c, &r), 0);
		break;
	case IPC_RELOAD:
		/* answered later, from the test body */
		seen.held = c;
		seen.held_id = m->id;
		break;
	case IPC_WATCH: {
		/* far more than any socket buffer plus the output limit */
		static char data[2050];
		struct ipc_msg ev = {.type = IPC_EVENT,
		                     .name = "flood",
		                     .data = data,
		                     .data_len = 2048};

		memset(data, '7', 2048);
		for (int k = 0; k < 4000; k++) {
			seen.flood_result = ipc_client_send(c, &ev);
			if (seen.flood_result < 0)
				break;
			seen.flood_sent++;
		}
		break;
	}
	case IPC_UNSUBSCRIBE: {
		/* id events of 2 KiB, to build a backlog of a chosen size */
		static char data[2050];
		struct ipc_msg ev = {.type = IPC_EVENT,
		                     .name = "flood",
		                     .data = data,
		                     .data_len = 2048};

		memset(data, '5', 2048);
		seen.flood_result = 0;
		for (uint32_t k = 0; k < m->id && seen.flood_result == 0; k++)
			seen.flood_result = ipc_client_send(c, &ev);
		break;
	}
	case IPC_SUBSCRIBE:
		if (strcmp(m->name, "close-me") == 0) {
			ipc_client_close(c, "asked to");
			/* the client is still valid, but no longer sends */
			ck_assert_int_eq(ipc_client_send(c, &r), -ENOTCONN);
			ipc_client_close(c, "twice");
			break;
		}
		/* fall through */
	default:
		r.type = IPC_OK;
		ck_assert_int_eq(ipc_client_send(c, &r), 0);
		break;
	}
}

static void on_connected(struct ipc_client *c, void *userdata)
{
	(void)userdata;
	seen.connected++;
	snprintf(seen.connected_name, sizeof(seen.connected_name), "%s",
	         ipc_client_name(c));
	ck_assert_uint_gt(ipc_client_id(c), 0);
}

static void on_disconnected(struct ipc_client *c, enum ipc_close_reason why,
                            const char *reason, void *userdata)
{
	(void)userdata;
	seen.disconnected++;
	seen.why = why;
	snprintf(seen.reason, sizeof(seen.reason), "%s", reason);
	if (seen.held == c)
		seen.held = NULL;
	/* must still be usable here, and refuse to send */
	ck_assert_int_eq(ipc_client_send(c, &(struct ipc_msg){.type = IPC_OK,
	                                                      .has_id = true}),
	                 -ENOTCONN);
}

static void on_rejected(const struct ipc_peer *peer, const char *reason,
                        void *userdata)
{
	(void)userdata;
	(void)peer;
	seen.rejected++;
	snprintf(seen.reject_reason, sizeof(seen.reject_reason), "%s", reason);
}

static const struct ipc_server_callbacks callbacks = {
        .request = on_request,
        .connected = on_connected,
        .disconnected = on_disconnected,
        .rejected = on_rejected,
};

static int start_server(const struct ipc_server_limits *lim)
{
	int r = ipc_server_new(base, path, -1, lim, &callbacks, &seen, &srv);

	if (r == 0)
		ck_assert_int_eq(ipc_server_set_name(srv, "dsd-test"), 0);
	return r;
}

static void setup(void)
{
	memset(&seen, 0, sizeof(seen));
	snprintf(dir, sizeof(dir), "/tmp/ipcsrv-test-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/dsd.sock", dir);
	base = event_base_new();
	ck_assert_ptr_nonnull(base);
	srv = NULL;
}

static void teardown(void)
{
	char p[160];

	ipc_server_free(srv);
	srv = NULL;
	event_base_free(base);
	unlink(path);
	snprintf(p, sizeof(p), "%s/other.sock", dir);
	unlink(p);
	snprintf(p, sizeof(p), "%s/plain", dir);
	unlink(p);
	rmdir(dir);
}

/* ---- loop and client helpers ---- */

static long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

/* Runs the loop for about ms milliseconds. */
static void pump(int ms)
{
	struct timeval tv = {ms / 1000, (ms % 1000) * 1000};

	event_base_loopexit(base, &tv);
	event_base_dispatch(base);
}

struct tcli {
	int fd;
	uint8_t *buf;
	size_t len;
	bool eof;
};

static int raw_connect(const char *p)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	ck_assert_int_ge(fd, 0);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", p);
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		int e = errno;

		close(fd);
		return -e;
	}
	return fd;
}

static struct tcli *cli_new(void)
{
	struct tcli *t = calloc(1, sizeof(*t));

	t->fd = raw_connect(path);
	ck_assert_int_ge(t->fd, 0);
	t->buf = malloc(IPC_HEADER_SIZE + IPC_MAX_FRAME);
	return t;
}

static void cli_free(struct tcli *t)
{
	if (!t)
		return;
	if (t->fd >= 0)
		close(t->fd);
	free(t->buf);
	free(t);
}

static void cli_write(struct tcli *t, const void *p, size_t n)
{
	const uint8_t *q = p;

	while (n) {
		ssize_t w = send(t->fd, q, n, MSG_NOSIGNAL | MSG_DONTWAIT);

		if (w < 0 && errno == EAGAIN) {
			pump(1);
			continue;
		}
		ck_assert_int_gt(w, 0);
		q += w;
		n -= (size_t)w;
	}
}

static void cli_send(struct tcli *t, const struct ipc_msg *m)
{
	struct ipc_buf b;

	ipc_buf_init(&b, IPC_HEADER_SIZE + IPC_MAX_FRAME);
	ck_assert_int_eq(ipc_encode(&b, m), 0);
	cli_write(t, b.data, b.len);
	ipc_buf_free(&b);
}

/* Pulls whatever is readable now; notes EOF. */
static void cli_pull(struct tcli *t)
{
	for (;;) {
		size_t room = IPC_HEADER_SIZE + IPC_MAX_FRAME - t->len;
		ssize_t n;

		if (!room || t->eof)
			return;
		n = recv(t->fd, t->buf + t->len, room, MSG_DONTWAIT);
		if (n > 0) {
			t->len += (size_t)n;
			continue;
		}
		if (n == 0 || (errno != EAGAIN && errno != EINTR))
			t->eof = true;
		return;
	}
}

/*
 * Waits for one frame: 0 and *m decoded, or -ECONNRESET at EOF with
 * nothing pending, or -ETIMEDOUT.
 */
static int cli_recv(struct tcli *t, struct ipc_msg *m, int ms)
{
	long end = now_ms() + ms;

	for (;;) {
		size_t flen;

		cli_pull(t);
		if (ipc_frame_peek(t->buf, t->len, &flen) == 0) {
			ck_assert_int_eq(ipc_decode(t->buf, flen, m), 0);
			memmove(t->buf, t->buf + flen, t->len - flen);
			t->len -= flen;
			return 0;
		}
		if (t->eof)
			return -ECONNRESET;
		if (now_ms() > end)
			return -ETIMEDOUT;
		pump(2);
	}
}

/* Expects a frame of the given type (and id, for id >= 0). */
static void expect(struct tcli *t, int type, long id, struct ipc_msg *m)
{
	ck_assert_int_eq(cli_recv(t, m, WAIT_MS), 0);
	ck_assert_msg(m->type == type, "got %s, wanted %s",
	              ipc_type_name(m->type), ipc_type_name(type));
	if (id >= 0) {
		ck_assert(m->has_id);
		ck_assert_uint_eq(m->id, (uint32_t)id);
	}
}

static void expect_error(struct tcli *t, long id, int code)
{
	struct ipc_msg m;

	expect(t, IPC_ERROR, id, &m);
	ck_assert(m.has_code);
	ck_assert_int_eq(m.code, code);
	ck_assert_ptr_nonnull(m.text);
	ipc_msg_clear(&m);
}

/* Frames are skipped; returns once the server has closed the socket. */
static void expect_eof(struct tcli *t)
{
	struct ipc_msg m;
	int r;

	while ((r = cli_recv(t, &m, WAIT_MS)) == 0)
		ipc_msg_clear(&m);
	ck_assert_int_eq(r, -ECONNRESET);
}

static void hello(struct tcli *t)
{
	struct ipc_msg m = {.type = IPC_HELLO,
	                    .has_code = true,
	                    .code = IPC_PROTOCOL_VERSION,
	                    .text = "test-client"};

	cli_send(t, &m);
	expect(t, IPC_HELLO_OK, -1, &m);
	ck_assert(m.has_code);
	ck_assert_int_eq(m.code, IPC_PROTOCOL_VERSION);
	ck_assert_str_eq(m.text, "dsd-test");
	ipc_msg_clear(&m);
}

static struct tcli *cli_hello(void)
{
	struct tcli *t = cli_new();

	hello(t);
	return t;
}

static void status_roundtrip(struct tcli *t, uint32_t id)
{
	struct ipc_msg m = {.type = IPC_STATUS, .has_id = true, .id = id};

	cli_send(t, &m);
	expect(t, IPC_STATUS_REPLY, id, &m);
	ck_assert_ptr_nonnull(m.text);
	ck_assert(strncmp(m.text, "{\"clients\":", 11) == 0);
	ipc_msg_clear(&m);
}

static void wait_for(const int *counter, int value)
{
	long end = now_ms() + WAIT_MS;

	while (*counter < value && now_ms() < end)
		pump(2);
	ck_assert_int_ge(*counter, value);
}

/* ---- tests ---- */

START_TEST(test_hello)
{
	struct tcli *t;
	struct stat st;

	ck_assert_int_eq(start_server(NULL), 0);
	ck_assert_int_eq(stat(path, &st), 0);
	ck_assert(S_ISSOCK(st.st_mode));
	ck_assert_int_eq(st.st_mode & 0777, 0660);

	t = cli_hello();
	ck_assert_int_eq(seen.connected, 1);
	ck_assert_str_eq(seen.connected_name, "test-client");
	ck_assert_uint_eq(ipc_server_client_count(srv), 1);
	status_roundtrip(t, 1);
	cli_free(t);
	wait_for(&seen.disconnected, 1);
	ck_assert_str_eq(seen.reason, "closed by peer");
	ck_assert_uint_eq(ipc_server_client_count(srv), 0);
}
END_TEST

START_TEST(test_hello_wrong_version)
{
	struct ipc_msg m = {.type = IPC_HELLO, .has_code = true, .code = 99};
	struct tcli *t;

	ck_assert_int_eq(start_server(NULL), 0);
	t = cli_new();
	cli_send(t, &m);
	expect_error(t, -1, -EPROTONOSUPPORT);
	expect_eof(t);
	wait_for(&seen.disconnected, 1);
	ck_assert(strstr(seen.reason, "unsupported protocol version 99"));
	ck_assert_int_eq(seen.connected, 0);
	cli_free(t);

	/* HELLO without a version is no better */
	t = cli_new();
	m.has_code = false;
	cli_send(t, &m);
	expect_error(t, -1, -EPROTONOSUPPORT);
	expect_eof(t);
	cli_free(t);
}
END_TEST

START_TEST(test_request_before_hello)
{
	struct ipc_msg m = {.type = IPC_STATUS, .has_id = true, .id = 5};
	struct tcli *t;

	ck_assert_int_eq(start_server(NULL), 0);
	t = cli_new();
	cli_send(t, &m);
	expect_error(t, 5, -EPROTO);
	expect_eof(t);
	ck_assert_int_eq(seen.requests, 0);
	wait_for(&seen.disconnected, 1);
	ck_assert(strstr(seen.reason, "expected HELLO"));
	cli_free(t);
}
END_TEST

START_TEST(test_dispatch_and_replies)
{
	struct ipc_msg m;
	struct tcli *t;

	ck_assert_int_eq(start_server(NULL), 0);
	t = cli_hello();
	status_roundtrip(t, 42);
	m = (struct ipc_msg){.type = IPC_PAUSE, .has_id = true, .id = 43};
	cli_send(t, &m);
	expect(t, IPC_OK, 43, &m);
	ipc_msg_clear(&m);

	/* a reply given later, outside any callback */
	m = (struct ipc_msg){.type = IPC_RELOAD, .has_id = true, .id = 44};
	cli_send(t, &m);
	wait_for(&seen.requests, 3);
	ck_assert_int_eq(cli_recv(t, &m, 100), -ETIMEDOUT);
	ck_assert_ptr_nonnull(seen.held);
	m = (struct ipc_msg){
	        .type = IPC_OK, .has_id = true, .id = seen.held_id};
	ck_assert_int_eq(ipc_client_send(seen.held, &m), 0);
	expect(t, IPC_OK, 44, &m);
	ipc_msg_clear(&m);

	/* unknown type, a server-only type, a missing field: an ERROR with
	 * the same id each, and the client stays */
	m = (struct ipc_msg){.type = 999, .has_id = true, .id = 45};
	cli_send(t, &m);
	expect_error(t, 45, -EOPNOTSUPP);
	m = (struct ipc_msg){
	        .type = IPC_EVENT, .has_id = true, .id = 46, .name = "x"};
	cli_send(t, &m);
	expect_error(t, 46, -EPROTO);
	m = (struct ipc_msg){.type = IPC_SUBSCRIBE, .has_id = true, .id = 47};
	cli_send(t, &m);
	expect_error(t, 47, -EBADMSG);
	m = (struct ipc_msg){.type = IPC_STATUS}; /* no id */
	cli_send(t, &m);
	expect_error(t, -1, -EBADMSG);
	m = (struct ipc_msg){.type = IPC_HELLO, .has_code = true, .code = 1};
	cli_send(t, &m);
	expect_error(t, -1, -EALREADY);
	ck_assert_int_eq(seen.requests, 3);
	status_roundtrip(t, 48);
	ck_assert_int_eq(seen.disconnected, 0);
	cli_free(t);
}
END_TEST

START_TEST(test_pipelined_and_fragmented)
{
	struct ipc_buf b;
	struct ipc_msg m;
	struct tcli *t;

	ck_assert_int_eq(start_server(NULL), 0);
	t = cli_hello();

	/* ten requests in one write, answered in order */
	ipc_buf_init(&b, 1 << 16);
	for (uint32_t id = 100; id < 110; id++) {
		m = (struct ipc_msg){
		        .type = IPC_PAUSE, .has_id = true, .id = id};
		ck_assert_int_eq(ipc_encode(&b, &m), 0);
	}
	cli_write(t, b.data, b.len);
	for (uint32_t id = 100; id < 110; id++) {
		expect(t, IPC_OK, id, &m);
		ipc_msg_clear(&m);
	}

	/* one request a byte at a time */
	b.len = 0;
	m = (struct ipc_msg){.type = IPC_STATUS, .has_id = true, .id = 7};
	ck_assert_int_eq(ipc_encode(&b, &m), 0);
	for (size_t k = 0; k < b.len; k++) {
		cli_write(t, b.data + k, 1);
		pump(1);
	}
	expect(t, IPC_STATUS_REPLY, 7, &m);
	ipc_msg_clear(&m);
	ipc_buf_free(&b);
	cli_free(t);
}
END_TEST

/* A client with a thousand requests buffered gets a turn of 64, then the
 * next ready client is served: one request of a light app waits behind at
 * most a turn of each other app, not behind everything they wrote. */
START_TEST(test_turns_between_clients)
{
	struct ipc_buf b;
	struct ipc_msg m;
	struct tcli *heavy, *light;

	ck_assert_int_eq(start_server(NULL), 0);
	heavy = cli_hello();
	light = cli_hello();
	seen.requests = 0;
	ipc_buf_init(&b, 1 << 16);
	for (uint32_t id = 1; id <= 1000; id++) {
		m = (struct ipc_msg){
		        .type = IPC_PAUSE, .has_id = true, .id = id};
		ck_assert_int_eq(ipc_encode(&b, &m), 0);
	}
	ck_assert_uint_lt(b.len, 64 * 1024); /* one read takes it all */
	cli_write(heavy, b.data, b.len);
	m = (struct ipc_msg){.type = IPC_STATUS, .has_id = true, .id = 5000};
	cli_send(light, &m);
	expect(light, IPC_STATUS_REPLY, 5000, &m);
	ipc_msg_clear(&m);
	ck_assert_int_le(seen.status_at, 64);
	/* and the heavy client's requests are all answered, in order */
	for (uint32_t id = 1; id <= 1000; id++) {
		expect(heavy, IPC_OK, id, &m);
		ipc_msg_clear(&m);
	}
	ipc_buf_free(&b);
	cli_free(light);
	cli_free(heavy);
}
END_TEST

/* Quiet clients hold no buffers: a thousand of them once held 64 KiB
 * each and exhausted the total budget. */
START_TEST(test_quiet_clients_hold_nothing)
{
	struct ipc_server_stats st = {0};
	struct tcli *t[8];

	ck_assert_int_eq(start_server(NULL), 0);
	for (int i = 0; i < 8; i++) {
		t[i] = cli_hello();
		status_roundtrip(t[i], 100 + i);
	}
	pump(20);
	ipc_server_get_stats(srv, &st);
	ck_assert_uint_eq(st.clients, 8);
	ck_assert_uint_eq(st.buffered, 0);
	for (int i = 0; i < 8; i++)
		cli_free(t[i]);
}
END_TEST

/* A held client's next requests wait, the others are served; released,
 * what it sent meanwhile is served in order. */
START_TEST(test_hold_input)
{
	struct ipc_buf b;
	struct ipc_msg m;
	struct tcli *t, *other;

	ck_assert_int_eq(start_server(NULL), 0);
	t = cli_hello();
	other = cli_hello();
	ipc_buf_init(&b, 1 << 16);
	m = (struct ipc_msg){.type = IPC_RESUME, .has_id = true, .id = 1};
	ck_assert_int_eq(ipc_encode(&b, &m), 0);
	for (uint32_t id = 2; id <= 4; id++) {
		m = (struct ipc_msg){
		        .type = IPC_PAUSE, .has_id = true, .id = id};
		ck_assert_int_eq(ipc_encode(&b, &m), 0);
	}
	cli_write(t, b.data, b.len);
	expect(t, IPC_OK, 1, &m);
	ipc_msg_clear(&m);
	ck_assert_ptr_nonnull(seen.paced);
	ck_assert_int_eq(cli_recv(t, &m, 100), -ETIMEDOUT);
	status_roundtrip(other, 9);
	ipc_client_hold_input(seen.paced, false);
	for (uint32_t id = 2; id <= 4; id++) {
		expect(t, IPC_OK, id, &m);
		ipc_msg_clear(&m);
	}
	ipc_buf_free(&b);
	cli_free(other);
	cli_free(t);
}
END_TEST

START_TEST(test_garbage_closes_only_that_client)
{
	/* a well-framed body that is not msgpack we accept */
	static const uint8_t bad[] = {0, 0, 0, 3, 0xc1, 0xc1, 0xc1};
	static const char http[] = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
	struct tcli *a, *b, *c;

	ck_assert_int_eq(start_server(NULL), 0);
	a = cli_hello();
	b = cli_hello();
	c = cli_new();
	cli_write(a, bad, sizeof(bad));
	expect_eof(a);
	wait_for(&seen.disconnected, 1);
	ck_assert_str_eq(seen.reason, "malformed frame");
	status_roundtrip(b, 1);

	/* plain text reads as an absurd length */
	cli_write(c, http, sizeof(http) - 1);
	expect_eof(c);
	wait_for(&seen.disconnected, 2);
	ck_assert_str_eq(seen.reason, "frame length over the limit");
	status_roundtrip(b, 2);
	ck_assert_uint_eq(ipc_server_client_count(srv), 1);
	cli_free(a);
	cli_free(b);
	cli_free(c);
}
END_TEST

static void send_header(struct tcli *t, uint32_t n)
{
	uint8_t h[4] = {(uint8_t)(n >> 24), (uint8_t)(n >> 16),
	                (uint8_t)(n >> 8), (uint8_t)n};

	cli_write(t, h, 4);
}

START_TEST(test_oversize_header)
{
	struct tcli *a, *b;
	struct ipc_msg m;

	ck_assert_int_eq(start_server(NULL), 0);
	a = cli_hello();
	b = cli_hello();
	/* at the limit: the server waits for the body */
	send_header(b, IPC_MAX_FRAME);
	/* past it: closed on the header alone, no body needed */
	send_header(a, IPC_MAX_FRAME + 1);
	expect_eof(a);
	wait_for(&seen.disconnected, 1);
	ck_assert_str_eq(seen.reason, "frame length over the limit");
	ck_assert_int_eq(cli_recv(b, &m, 200), -ETIMEDOUT);
	ck_assert_int_eq(seen.disconnected, 1);
	ck_assert_uint_eq(ipc_server_client_count(srv), 1);
	cli_free(a);
	cli_free(b);
}
END_TEST

START_TEST(test_max_frame_request)
{
	/* a request of exactly IPC_MAX_FRAME bytes is read and answered */
	struct ipc_buf b;
	struct ipc_msg m = {.type = IPC_PAUSE, .has_id = true, .id = 9};
	struct tcli *t;
	uint8_t *frame;
	size_t pad;

	ck_assert_int_eq(start_server(NULL), 0);
	t = cli_hello();
	ipc_buf_init(&b, 4096);
	ck_assert_int_eq(ipc_encode(&b, &m), 0);
	/* grow the map by one unknown str32 key whose value fills the rest */
	frame = calloc(1, IPC_HEADER_SIZE + IPC_MAX_FRAME);
	memcpy(frame, b.data, b.len);
	ck_assert_int_eq(frame[4] & 0xf0, 0x80);
	frame[4]++;
	frame[b.len] = 0xa1;
	frame[b.len + 1] = 'z';
	pad = IPC_HEADER_SIZE + IPC_MAX_FRAME - (b.len + 2) - 5;
	frame[b.len + 2] = 0xdb;
	frame[b.len + 3] = (uint8_t)(pad >> 24);
	frame[b.len + 4] = (uint8_t)(pad >> 16);
	frame[b.len + 5] = (uint8_t)(pad >> 8);
	frame[b.len + 6] = (uint8_t)pad;
	memset(frame + b.len + 7, 'p', pad);
	frame[0] = (uint8_t)(IPC_MAX_FRAME >> 24);
	frame[1] = (uint8_t)(IPC_MAX_FRAME >> 16);
	frame[2] = (uint8_t)(IPC_MAX_FRAME >> 8);
	frame[3] = (uint8_t)IPC_MAX_FRAME;
	cli_write(t, frame, IPC_HEADER_SIZE + IPC_MAX_FRAME);
	expect(t, IPC_OK, 9, &m);
	ipc_msg_clear(&m);
	free(frame);
	ipc_buf_free(&b);
	cli_free(t);
}
END_TEST

/* The admit callback: sees the kernel's credentials, may refuse. */
static struct {
	int calls;
	struct ipc_peer last;
	size_t ngroups_want;
	bool groups_match;
} admitted;

static int on_admit(struct ipc_client *c, const struct ipc_peer *peer,
                    char *why, size_t whylen, void *userdata)
{
	gid_t mine[256];
	int n = getgroups(256, mine);

	(void)c;
	(void)userdata;
	admitted.calls++;
	admitted.last = *peer;
	admitted.groups_match =
	        n >= 0 && peer->ngroups == (size_t)n &&
	        (n == 0 ||
	         memcmp(mine, peer->groups, (size_t)n * sizeof(gid_t)) == 0);
	if (admitted.calls % 2 == 0) {
		snprintf(why, whylen, "go away");
		return -EACCES;
	}
	return 0;
}

START_TEST(test_admit)
{
	static const struct ipc_server_callbacks cb = {
	        .admit = on_admit,
	        .request = on_request,
	        .disconnected = on_disconnected,
	        .rejected = on_rejected,
	};
	struct tcli *a, *b, *c;

	memset(&admitted, 0, sizeof(admitted));
	ck_assert_int_eq(ipc_server_new(base, path, -1, NULL, &cb, &seen, &srv),
	                 0);
	ck_assert_int_eq(ipc_server_set_name(srv, "dsd-test"), 0);
	a = cli_hello();
	ck_assert_int_eq(admitted.calls, 1);
	ck_assert_int_eq(admitted.last.pid, getpid());
	ck_assert_uint_eq(admitted.last.uid, getuid());
	ck_assert_uint_eq(admitted.last.gid, getgid());
	ck_assert(admitted.last.groups_known);
	ck_assert(admitted.groups_match);
	/* Refused: ERROR with admit's code and text, closed, never a client. */
	b = cli_new();
	expect_error(b, -1, -EACCES);
	expect_eof(b);
	ck_assert_int_eq(admitted.calls, 2);
	ck_assert_int_eq(seen.rejected, 1);
	ck_assert_str_eq(seen.reject_reason, "go away");
	ck_assert_uint_eq(ipc_server_client_count(srv), 1);
	pump(50);
	ck_assert_int_eq(seen.disconnected, 0);
	c = cli_hello();
	status_roundtrip(a, 1);
	status_roundtrip(c, 2);
	ck_assert_uint_eq(ipc_server_client_count(srv), 2);
	cli_free(a);
	cli_free(b);
	cli_free(c);
	wait_for(&seen.disconnected, 2);
}
END_TEST

START_TEST(test_max_clients)
{
	struct ipc_server_limits lim = {.max_clients = 2};
	struct tcli *a, *b, *c, *d;

	ck_assert_int_eq(start_server(&lim), 0);
	a = cli_hello();
	b = cli_hello(); /* at the limit */
	ck_assert_uint_eq(ipc_server_client_count(srv), 2);
	c = cli_new(); /* past it */
	expect_error(c, -1, -EUSERS);
	expect_eof(c);
	ck_assert_int_eq(seen.rejected, 1);
	ck_assert_str_eq(seen.reject_reason, "too many clients");
	ck_assert_uint_eq(ipc_server_client_count(srv), 2);
	status_roundtrip(a, 1);
	status_roundtrip(b, 2);

	/* a place frees up */
	cli_free(a);
	wait_for(&seen.disconnected, 1);
	d = cli_hello();
	status_roundtrip(d, 3);
	ck_assert_int_eq(seen.rejected, 1);
	cli_free(b);
	cli_free(c);
	cli_free(d);
}
END_TEST

START_TEST(test_slow_reader)
{
	struct ipc_server_limits lim = {.client_out_limit = 256 * 1024};
	struct ipc_msg m = {.type = IPC_WATCH, .has_id = true, .id = 1};
	struct tcli *slow, *fast;
	char want[128];

	ck_assert_int_eq(start_server(&lim), 0);
	slow = cli_hello();
	fast = cli_hello();
	/* the slow client asks for a flood and then reads nothing */
	cli_send(slow, &m);
	wait_for(&seen.disconnected, 1);
	ck_assert_int_eq(seen.flood_result, -ENOBUFS);
	ck_assert_int_gt(seen.flood_sent, 100);
	ck_assert_int_lt(seen.flood_sent, 4000);
	snprintf(want, sizeof(want), "slow reader: output buffer over %d bytes",
	         256 * 1024);
	ck_assert_str_eq(seen.reason, want);
	/* nobody else waited for it */
	status_roundtrip(fast, 2);
	ck_assert_uint_eq(ipc_server_client_count(srv), 1);
	/* the slow one, reading at last, finds frames and then the end */
	expect_eof(slow);
	cli_free(slow);
	cli_free(fast);
}
END_TEST

/* Output waits for the end of the loop iteration (ipc_server.c), but a
 * burst bigger than the client's limit that its socket takes is no slow
 * reader: the buffer is written out before the limit is judged. */
START_TEST(test_burst_the_socket_takes)
{
	struct ipc_server_limits lim = {.client_out_limit = 32 * 1024};
	struct ipc_msg burst = {.type = IPC_UNSUBSCRIBE,
	                        .has_id = true,
	                        .id = 40, /* 40 x 2 KiB: over 32 KiB */
	                        .name = "f"};
	struct ipc_msg m;
	struct tcli *t;

	ck_assert_int_eq(start_server(&lim), 0);
	t = cli_hello();
	cli_send(t, &burst);
	wait_for(&seen.requests, 1);
	ck_assert_int_eq(seen.flood_result, 0);
	for (int k = 0; k < 40; k++) {
		expect(t, IPC_EVENT, -1, &m);
		ck_assert_uint_eq(m.data_len, 2048);
		ipc_msg_clear(&m);
	}
	status_roundtrip(t, 2);
	ck_assert_int_eq(seen.disconnected, 0);
	cli_free(t);
}
END_TEST

/* An app that writes its requests and closes at once, without reading a
 * reply: every request it wrote is still handled, although the first reply
 * already meets a closed socket (EPIPE). */
START_TEST(test_requests_after_peer_closed)
{
	struct ipc_msg hi = {.type = IPC_HELLO,
	                     .has_code = true,
	                     .code = IPC_PROTOCOL_VERSION};
	struct ipc_buf b;
	struct tcli *t, *other;

	ck_assert_int_eq(start_server(NULL), 0);
	ipc_buf_init(&b, 1024 * 1024);
	ck_assert_int_eq(ipc_encode(&b, &hi), 0);
	for (uint32_t k = 1; k <= 100; k++) {
		struct ipc_msg m = {.type = IPC_SUBSCRIBE,
		                    .has_id = true,
		                    .id = k,
		                    .name = "n"};

		ck_assert_int_eq(ipc_encode(&b, &m), 0);
	}
	t = cli_new();
	cli_write(t, b.data, b.len);
	ipc_buf_free(&b);
	close(t->fd);
	t->fd = -1;
	wait_for(&seen.disconnected, 1);
	ck_assert_int_eq(seen.requests, 100);
	ck_assert_str_eq(seen.reason, "closed by peer");
	/* and the server is fine for the next one */
	other = cli_hello();
	status_roundtrip(other, 1);
	cli_free(other);
	cli_free(t);
}
END_TEST

/* Two clients that stop reading, under a total budget that fits neither
 * backlog next to the other: the one holding more is dropped, with a
 * reason, and the other keeps its place. */
START_TEST(test_total_budget_drops_heaviest)
{
	struct ipc_server_limits lim = {.client_out_limit = 8 * 1024 * 1024,
	                                .total_buffer_limit = 6 * 1024 * 1024};
	struct ipc_msg big = {.type = IPC_UNSUBSCRIBE,
	                      .has_id = true,
	                      .id = 1500,
	                      .name = "f"};
	struct ipc_msg small = {.type = IPC_UNSUBSCRIBE,
	                        .has_id = true,
	                        .id = 800,
	                        .name = "f"};
	struct ipc_server_stats st;
	struct ipc_msg m;
	struct tcli *a, *b, *fast;

	ck_assert_int_eq(start_server(&lim), 0);
	a = cli_hello();
	b = cli_hello();
	fast = cli_hello();
	cli_send(a, &big);
	wait_for(&seen.requests, 1);
	ck_assert_int_eq(seen.flood_result, 0);
	ipc_server_get_stats(srv, &st);
	ck_assert_uint_eq(st.over_budget, 0);
	ck_assert_uint_le(st.buffered, lim.total_buffer_limit);
	cli_send(b, &small);
	wait_for(&seen.disconnected, 1);
	/* b's sends all went in: a made room */
	ck_assert_int_eq(seen.flood_result, 0);
	ck_assert(strncmp(seen.reason,
	                  "slow reader: local clients' buffers over 6291456 "
	                  "bytes, this client was the slowest",
	                  70) == 0);
	ipc_server_get_stats(srv, &st);
	ck_assert_uint_eq(st.over_budget, 1);
	ck_assert_uint_eq(st.clients, 2);
	ck_assert_uint_le(st.buffered, lim.total_buffer_limit);
	ck_assert_uint_gt(st.buffered, 1024 * 1024);
	status_roundtrip(fast, 9);
	/* a gets what its socket held, then the end (the reason is sent
	 * too, but into a full socket it is only a best effort) */
	expect_eof(a);
	/* b, reading at last, gets all its 800 events */
	for (int k = 0; k < 800; k++) {
		expect(b, IPC_EVENT, -1, &m);
		ipc_msg_clear(&m);
	}
	cli_free(a);
	cli_free(b);
	cli_free(fast);
}
END_TEST

START_TEST(test_close_inside_callback)
{
	struct ipc_msg m = {.type = IPC_SUBSCRIBE,
	                    .has_id = true,
	                    .id = 3,
	                    .name = "close-me"};
	struct tcli *a, *b;

	ck_assert_int_eq(start_server(NULL), 0);
	a = cli_hello();
	b = cli_hello();
	/* a second request in the same write must not be dispatched */
	cli_send(a, &m);
	m.name = "fine";
	cli_send(a, &m);
	expect_eof(a);
	wait_for(&seen.disconnected, 1);
	ck_assert_str_eq(seen.reason, "asked to");
	ck_assert_int_eq(seen.disconnected, 1);
	status_roundtrip(b, 1);
	cli_free(a);
	cli_free(b);
}
END_TEST

START_TEST(test_stale_socket_replaced)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);
	struct tcli *t;

	/* a dead dsd's socket file: bound, never closed cleanly */
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	ck_assert_int_eq(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	close(fd);
	ck_assert_int_eq(raw_connect(path), -ECONNREFUSED);
	ck_assert_int_eq(start_server(NULL), 0);
	t = cli_hello();
	status_roundtrip(t, 1);
	cli_free(t);
}
END_TEST

START_TEST(test_not_a_socket_left_alone)
{
	char plain[160];
	struct stat st;
	int fd;

	snprintf(path, sizeof(path), "%s/plain", dir);
	fd = open(path, O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, "keep", 4), 4);
	close(fd);
	ck_assert_int_eq(start_server(NULL), -EEXIST);
	ck_assert_ptr_null(srv);
	ck_assert_int_eq(stat(path, &st), 0);
	ck_assert(S_ISREG(st.st_mode));
	ck_assert_int_eq(st.st_size, 4);

	/* a missing directory and an overlong path are clear errors */
	snprintf(plain, sizeof(plain), "%s/nodir/dsd.sock", dir);
	ck_assert_int_eq(
	        ipc_server_new(base, plain, -1, NULL, &callbacks, &seen, &srv),
	        -ENOENT);
	memset(plain, 'a', sizeof(plain) - 1);
	plain[0] = '/';
	plain[sizeof(plain) - 1] = '\0';
	ck_assert_int_eq(
	        ipc_server_new(base, plain, -1, NULL, &callbacks, &seen, &srv),
	        -ENAMETOOLONG);
	ck_assert_ptr_null(srv);
}
END_TEST

START_TEST(test_second_server_refused)
{
	struct ipc_server *other = NULL;
	struct tcli *t;
	struct stat st;
	int before;

	ck_assert_int_eq(start_server(NULL), 0);
	ck_assert_int_eq(
	        ipc_server_new(base, path, -1, NULL, &callbacks, &seen, &other),
	        -EADDRINUSE);
	ck_assert_ptr_null(other);
	/* the first one is untouched */
	t = cli_hello();
	status_roundtrip(t, 1);
	/* freeing closes clients, tells why, and removes the socket file
	 * (the refused server's probe connection was a client too) */
	before = seen.disconnected;
	ipc_server_free(srv);
	srv = NULL;
	ck_assert_int_eq(seen.disconnected, before + 1);
	ck_assert_str_eq(seen.reason, "server shutting down");
	ck_assert_int_eq(stat(path, &st), -1);
	ck_assert_int_eq(errno, ENOENT);
	expect_eof(t);
	cli_free(t);
}
END_TEST

START_TEST(test_passed_fd)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int lfd, bad;
	struct tcli *t;
	struct stat st;

	/* as systemd would: bound and listening before we start */
	snprintf(path, sizeof(path), "%s/other.sock", dir);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	lfd = socket(AF_UNIX, SOCK_STREAM, 0);
	ck_assert_int_eq(bind(lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	ck_assert_int_eq(listen(lfd, 8), 0);

	/* not a listening socket */
	bad = socket(AF_UNIX, SOCK_STREAM, 0);
	ck_assert_int_eq(
	        ipc_server_new(base, path, bad, NULL, &callbacks, &seen, &srv),
	        -EINVAL);
	ck_assert_int_eq(fcntl(bad, F_GETFD), 0); /* still open, ours */
	close(bad);
	bad = open("/dev/null", O_RDONLY);
	ck_assert_int_eq(
	        ipc_server_new(base, path, bad, NULL, &callbacks, &seen, &srv),
	        -EINVAL);
	close(bad);

	ck_assert_int_eq(
	        ipc_server_new(base, path, lfd, NULL, &callbacks, &seen, &srv),
	        0);
	ck_assert(fcntl(lfd, F_GETFD) & FD_CLOEXEC);
	ck_assert(fcntl(lfd, F_GETFL) & O_NONBLOCK);
	ipc_server_set_name(srv, "dsd-test");
	t = cli_hello();
	status_roundtrip(t, 1);
	cli_free(t);
	/* the file belongs to whoever made it: left in place */
	ipc_server_free(srv);
	srv = NULL;
	ck_assert_int_eq(stat(path, &st), 0);
	ck_assert_int_eq(fcntl(lfd, F_GETFD), -1); /* the server closed it */
}
END_TEST

/* A connection that never says HELLO gives its slot back. */
START_TEST(test_hello_timeout)
{
	struct ipc_server_limits lim = {.max_clients = 1,
	                                .hello_timeout_ms = 100};
	struct tcli *silent, *ok;
	long t0;

	ck_assert_int_eq(start_server(&lim), 0);
	t0 = now_ms();
	silent = cli_new();
	expect_eof(silent);
	ck_assert_int_ge(now_ms() - t0, 90);
	wait_for(&seen.disconnected, 1);
	ck_assert_str_eq(seen.reason, "no HELLO within 100 ms");
	/* The slot is free again, and HELLO in time keeps a client. */
	ok = cli_hello();
	pump(300);
	status_roundtrip(ok, 1);
	cli_free(ok);
	wait_for(&seen.disconnected, 2);
	cli_free(silent);
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("ipc_server");
	TCase *tc = tcase_create("server");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, test_hello);
	tcase_add_test(tc, test_hello_wrong_version);
	tcase_add_test(tc, test_request_before_hello);
	tcase_add_test(tc, test_dispatch_and_replies);
	tcase_add_test(tc, test_pipelined_and_fragmented);
	tcase_add_test(tc, test_turns_between_clients);
	tcase_add_test(tc, test_quiet_clients_hold_nothing);
	tcase_add_test(tc, test_hold_input);
	tcase_add_test(tc, test_garbage_closes_only_that_client);
	tcase_add_test(tc, test_oversize_header);
	tcase_add_test(tc, test_max_frame_request);
	tcase_add_test(tc, test_max_clients);
	tcase_add_test(tc, test_admit);
	tcase_add_test(tc, test_hello_timeout);
	tcase_add_test(tc, test_slow_reader);
	tcase_add_test(tc, test_burst_the_socket_takes);
	tcase_add_test(tc, test_requests_after_peer_closed);
	tcase_add_test(tc, test_total_budget_drops_heaviest);
	tcase_add_test(tc, test_close_inside_callback);
	tcase_add_test(tc, test_stale_socket_replaced);
	tcase_add_test(tc, test_not_a_socket_left_alone);
	tcase_add_test(tc, test_second_server_refused);
	tcase_add_test(tc, test_passed_fd);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return check_run(suite());
}

/*
 * libdsipc against a fake dsd built from ipcproto.  The fake listens on a
 * temporary Unix socket; a thread answers HELLO (dsipc_connect() blocks on
 * it) and hands the accepted socket back, then the test plays the daemon
 * step by step from the main thread.  Blocking calls (emit_sync, status,
 * wait_event) get a responder thread instead.
 */
#include <check.h>
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "check-run.h"
#include "dsipc-internal.h" /* white-box: the input buffer's size */
#include "dsipc-libevent.h"
#include "dsipc.h"
#include "ipcproto.h"

/* -- the fake daemon -- */

struct fake {
	char dir[64];
	char path[128];
	int lfd;
	int sfd;
	int64_t answer_version; /* HELLO_OK's version; 0: answer ERROR */
	pthread_t th;
	int hello_type;
	int64_t hello_code;
	char hello_client[64];
};

static void srv_send(int fd, const struct ipc_msg *m)
{
	struct ipc_buf b;
	size_t off = 0;

	ipc_buf_init(&b, 4 * 1024 * 1024);
	ck_assert_int_eq(ipc_encode(&b, m), 0);
	while (off < b.len) {
		ssize_t n = send(fd, b.data + off, b.len - off, MSG_NOSIGNAL);
		ck_assert_int_gt(n, 0);
		off += (size_t)n;
	}
	ipc_buf_free(&b);
}

/* One frame from the client, or -ETIMEDOUT. */
static int srv_recv(int fd, struct ipc_msg *ret, int timeout_ms)
{
	struct pollfd p = {.fd = fd, .events = POLLIN};
	uint8_t hdr[IPC_HEADER_SIZE], *frame;
	size_t len;
	int r;

	if (poll(&p, 1, timeout_ms) <= 0)
		return -ETIMEDOUT;
	if (recv(fd, hdr, sizeof(hdr), MSG_WAITALL) != sizeof(hdr))
		return -ECONNRESET;
	len = (size_t)hdr[0] << 24 | (size_t)hdr[1] << 16 |
	      (size_t)hdr[2] << 8 | hdr[3];
	ck_assert_uint_le(len, IPC_MAX_FRAME);
	frame = malloc(sizeof(hdr) + len);
	ck_assert_ptr_nonnull(frame);
	memcpy(frame, hdr, sizeof(hdr));
	if (len > 0)
		ck_assert_int_eq(
		        recv(fd, frame + sizeof(hdr), len, MSG_WAITALL),
		        (ssize_t)len);
	r = ipc_decode(frame, sizeof(hdr) + len, ret);
	free(frame);
	ck_assert_int_eq(r, 0);
	ck_assert_msg(ipc_msg_check(ret, IPC_DIR_C2S) == 0, "bad %s",
	              ipc_type_name(ret->type));
	return 0;
}

static void srv_expect(int fd, int type, struct ipc_msg *ret)
{
	ck_assert_int_eq(srv_recv(fd, ret, 2000), 0);
	ck_assert_msg(ret->type == type, "expected %s, got %s",
	              ipc_type_name(type), ipc_type_name(ret->type));
}

/* Nothing more was written by the client. */
static void srv_quiet(int fd)
{
	struct pollfd p = {.fd = fd, .events = POLLIN};

	ck_assert_int_eq(poll(&p, 1, 50), 0);
}

static void *accept_hello(void *arg)
{
	struct fake *f = arg;
	struct ipc_msg m;

	f->sfd = accept4(f->lfd, NULL, NULL, SOCK_CLOEXEC);
	if (f->sfd < 0)
		return NULL;
	if (srv_recv(f->sfd, &m, 5000) < 0)
		return NULL;
	f->hello_type = m.type;
	f->hello_code = m.code;
	snprintf(f->hello_client, sizeof(f->hello_client), "%s",
	         m.text ? m.text : "");
	ipc_msg_clear(&m);
	if (f->answer_version > 0) {
		struct ipc_msg ok = {.type = IPC_HELLO_OK,
		                     .has_code = true,
		                     .code = f->answer_version,
		                     .text = "fake-dsd"};
		srv_send(f->sfd, &ok);
	} else {
		struct ipc_msg err = {.type = IPC_ERROR,
		                      .has_code = true,
		                      .code = -EPERM,
		                      .text = "go away"};
		srv_send(f->sfd, &err);
	}
	return NULL;
}

static void fake_listen(struct fake *f, int64_t answer_version)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};

	memset(f, 0, sizeof(*f));
	f->sfd = -1;
	f->answer_version = answer_version;
	strcpy(f->dir, "/tmp/test-dsipc-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(f->dir));
	snprintf(f->path, sizeof(f->path), "%s/dsd.sock", f->dir);
	strcpy(sa.sun_path, f->path);
	f->lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	ck_assert_int_ge(f->lfd, 0);
	ck_assert_int_eq(bind(f->lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	ck_assert_int_eq(listen(f->lfd, 4), 0);
}

/* Connects c to the fake (which answers HELLO in a thread). */
static int fake_connect(struct fake *f, dsipc *c)
{
	int r;

	ck_assert_int_eq(pthread_create(&f->th, NULL, accept_hello, f), 0);
	r = dsipc_connect(c, f->path);
	pthread_join(f->th, NULL);
	return r;
}

static void fake_close(struct fake *f)
{
	if (f->sfd >= 0)
		close(f->sfd);
	f->sfd = -1;
	close(f->lfd);
	unlink(f->path);
	rmdir(f->dir);
}

/* A fake and a connected handle, the usual start. */
static dsipc *setup(struct fake *f)
{
	dsipc *c;

	fake_listen(f, IPC_PROTOCOL_VERSION);
	ck_assert_int_eq(dsipc_new(&c), 0);
	ck_assert_int_eq(fake_connect(f, c), 0);
	return c;
}

static void reply_ok(int fd, uint32_t id)
{
	struct ipc_msg ok = {.type = IPC_OK, .has_id = true, .id = id};
	srv_send(fd, &ok);
}

/* Processes until the client has handled what the fake sent. */
static int pump(dsipc *c)
{
	struct pollfd p = {.fd = dsipc_get_fd(c), .events = POLLIN};

	if (p.fd < 0)
		return p.fd;
	poll(&p, 1, 1000);
	return dsipc_process(c);
}

/* -- callbacks that record -- */

struct rec {
	int calls;
	char name[64];
	char json[256];
	bool json_null;
	char state[32];
	char reason[64];
	int64_t at;
	int code;
	dsipc *free_handle;    /* dsipc_free() this from the callback */
	dsipc_slot *free_slot; /* dsipc_slot_free() this from the callback */
};

static void rec_event(dsipc *c, const char *name, const char *json, void *ud)
{
	struct rec *r = ud;

	(void)c;
	r->calls++;
	snprintf(r->name, sizeof(r->name), "%s", name);
	r->json_null = !json;
	snprintf(r->json, sizeof(r->json), "%s", json ? json : "");
	if (r->free_slot)
		r->free_slot = dsipc_slot_free(r->free_slot);
	if (r->free_handle)
		r->free_handle = dsipc_free(r->free_handle);
}

static void rec_state(dsipc *c, const char *state, const char *reason,
                      int64_t at, void *ud)
{
	struct rec *r = ud;

	(void)c;
	r->calls++;
	snprintf(r->state, sizeof(r->state), "%s", state);
	snprintf(r->reason, sizeof(r->reason), "%s", reason);
	r->at = at;
	if (r->free_handle)
		r->free_handle = dsipc_free(r->free_handle);
}

static void rec_error(dsipc *c, const char *name, int code, const char *msg,
                      void *ud)
{
	struct rec *r = ud;

	(void)c;
	r->calls++;
	r->code = code;
	snprintf(r->name, sizeof(r->name), "%s", name);
	snprintf(r->reason, sizeof(r->reason), "%s", msg);
}

static void rec_emit(dsipc *c, int result, const char *msg, void *ud)
{
	struct rec *r = ud;

	(void)c;
	r->calls++;
	r->code = result;
	snprintf(r->reason, sizeof(r->reason), "%s", msg);
}

/* A responder thread: answers n requests with answer(). */
struct responder {
	int fd;
	int n;
	void (*answer)(int fd, const struct ipc_msg *req);
	int types[16];
	char names[16][DSIPC_MAX_NAME + 1];
	size_t data_len[16];
	pthread_t th;
};

static void *respond(void *arg)
{
	struct responder *r = arg;
	int k;

	for (k = 0; k < r->n; k++) {
		struct ipc_msg m;

		if (srv_recv(r->fd, &m, 5000) < 0)
			break;
		r->types[k] = m.type;
		snprintf(r->names[k], sizeof(r->names[k]), "%s",
		         m.name ? m.name : "");
		r->data_len[k] = m.data_len;
		r->answer(r->fd, &m);
		ipc_msg_clear(&m);
	}
	return NULL;
}

static void responder_start(struct responder *r, int fd, int n,
                            void (*answer)(int, const struct ipc_msg *))
{
	memset(r, 0, sizeof(*r));
	r->fd = fd;
	r->n = n;
	r->answer = answer;
	ck_assert_int_eq(pthread_create(&r->th, NULL, respond, r), 0);
}

static void answer_nothing(int fd, const struct ipc_msg *req)
{
	(void)fd;
	(void)req;
}

/* -- connecting -- */

START_TEST(test_hello)
{
	struct fake f;
	dsipc *c = setup(&f);

	ck_assert_int_eq(f.hello_type, IPC_HELLO);
	ck_assert_int_eq(f.hello_code, IPC_PROTOCOL_VERSION);
	ck_assert_str_eq(f.hello_client, "libdsipc/" LIBDSIPC_VERSION_STR);
	/* header, library and meson's version agree */
	ck_assert_int_eq(dsipc_version(), DSIPC_VERSION);
	ck_assert_int_eq(DSIPC_VERSION, 10100);
	ck_assert(dsipc_is_connected(c));
	ck_assert_int_ge(dsipc_get_fd(c), 0);
	ck_assert_int_eq(dsipc_get_events(c), POLLIN);
	ck_assert_int_eq(dsipc_connect(c, f.path), -EISCONN);
	ck_assert_int_eq(dsipc_get_state(c, NULL, NULL), -ENODATA);
	ck_assert_int_eq(dsipc_process(c), 0);
	dsipc_free(c);
	fake_close(&f);
}
END_TEST

START_TEST(test_version_mismatch)
{
	struct fake f;
	dsipc *c;

	fake_listen(&f, IPC_PROTOCOL_VERSION + 1);
	ck_assert_int_eq(dsipc_new(&c), 0);
	ck_assert_int_eq(fake_connect(&f, c), -EPROTONOSUPPORT);
	ck_assert(!dsipc_is_connected(c));
	ck_assert_int_eq(dsipc_get_fd(c), -ENOTCONN);
	ck_assert_ptr_nonnull(strstr(dsipc_last_error(c), "version"));
	dsipc_free(c);
	fake_close(&f);
}
END_TEST

START_TEST(test_hello_refused)
{
	struct fake f;
	dsipc *c;

	fake_listen(&f, 0);
	ck_assert_int_eq(dsipc_new(&c), 0);
	ck_assert_int_eq(fake_connect(&f, c), -EPERM);
	ck_assert_str_eq(dsipc_last_error(c), "go away");
	ck_assert(!dsipc_is_connected(c));
	dsipc_free(c);
	fake_close(&f);
}
END_TEST

START_TEST(test_daemon_absent)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	char dir[] = "/tmp/test-dsipc-XXXXXX", path[128];
	dsipc *c;
	int fd;

	ck_assert_ptr_nonnull(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/dsd.sock", dir);
	ck_assert_int_eq(dsipc_new(&c), 0);
	ck_assert_int_eq(dsipc_connect(c, path), -ENOENT);

	/* A socket file nobody listens on any more. */
	strcpy(sa.sun_path, path);
	fd = socket(AF_UNIX, SOCK_STREAM, 0);
	ck_assert_int_eq(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	close(fd);
	ck_assert_int_eq(dsipc_connect(c, path), -ECONNREFUSED);

	/* $DSD_SOCKET is the default. */
	setenv("DSD_SOCKET", path, 1);
	ck_assert_int_eq(dsipc_connect(c, NULL), -ECONNREFUSED);
	ck_assert_ptr_nonnull(strstr(dsipc_last_error(c), path));
	unsetenv("DSD_SOCKET");

	ck_assert_int_eq(dsipc_emit(c, "x", NULL), -ENOTCONN);
	ck_assert_int_eq(dsipc_process(c), -ENOTCONN);
	dsipc_free(c);
	unlink(path);
	rmdir(dir);
	ck_assert_ptr_null(dsipc_free(NULL));
}
END_TEST

/* -- emit -- */

START_TEST(test_emit_validation)
{
	static const char *const bad_json[] = {
	        "", "{", "{\"a\":1,\"a\":2}", "[1,]", "nul", "\"\xff\"", "1 2"};
	dsipc_emit_result res = 99;
	struct responder resp;
	struct fake f;
	struct rec rec = {0};
	struct ipc_msg m;
	char *name, *big;
	size_t k;
	dsipc *c = setup(&f);

	ck_assert_int_eq(dsipc_emit(c, "", NULL), -EINVAL);
	ck_assert_int_eq(dsipc_emit(c, NULL, NULL), -EINVAL);
	ck_assert_int_eq(dsipc_emit(c, "bad\xc3\x28", NULL), -EINVAL);
	ck_assert_int_eq(dsipc_emit(c, "overlong\xc0\xaf", NULL), -EINVAL);
	ck_assert_int_eq(dsipc_emit(c, "surrogate\xed\xa0\x80", NULL), -EINVAL);

	name = malloc(DSIPC_MAX_NAME + 2);
	memset(name, 'n', DSIPC_MAX_NAME + 1);
	name[DSIPC_MAX_NAME + 1] = 0;
	ck_assert_int_eq(dsipc_emit(c, name, NULL), -EINVAL);
	ck_assert_int_eq(dsipc_emit_async(c, name, NULL, rec_emit, &rec),
	                 -EINVAL);
	ck_assert_int_eq(dsipc_emit_sync(c, name, NULL, 100, &res), -EINVAL);

	for (k = 0; k < sizeof(bad_json) / sizeof(bad_json[0]); k++) {
		ck_assert_msg(dsipc_emit(c, "x", bad_json[k]) == -EINVAL,
		              "accepted %s", bad_json[k]);
		ck_assert_int_eq(
		        dsipc_emit_async(c, "x", bad_json[k], rec_emit, &rec),
		        -EINVAL);
		ck_assert_int_eq(
		        dsipc_emit_sync(c, "x", bad_json[k], 100, &res),
		        -EINVAL);
	}
	ck_assert_ptr_nonnull(strstr(dsipc_last_error(c), "invalid JSON"));

	/* A JSON string one byte over the limit (quotes included). */
	big = malloc(DSIPC_MAX_DATA + 2);
	memset(big, 'a', DSIPC_MAX_DATA + 1);
	big[0] = big[DSIPC_MAX_DATA] = '"';
	big[DSIPC_MAX_DATA + 1] = 0;
	ck_assert_int_eq(dsipc_emit(c, "x", big), -EMSGSIZE);
	ck_assert_int_eq(dsipc_emit_sync(c, "x", big, 100, &res), -EMSGSIZE);
	ck_assert_int_eq(res, 99);
	ck_assert_int_eq(rec.calls, 0);
	srv_quiet(f.sfd);
	ck_assert_int_eq(dsipc_get_events(c), POLLIN);

	/* The limits themselves are fine. */
	name[DSIPC_MAX_NAME] = 0;
	big[DSIPC_MAX_DATA - 1] = '"';
	big[DSIPC_MAX_DATA] = 0;
	/* Bigger than the socket buffer: a thread reads while we write. */
	responder_start(&resp, f.sfd, 1, answer_nothing);
	ck_assert_int_eq(dsipc_emit(c, name, big), 0);
	for (k = 0; k < 200 && (dsipc_get_events(c) & POLLOUT); k++)
		ck_assert_int_eq(dsipc_wait(c, 10), 0);
	pthread_join(resp.th, NULL);
	ck_assert_int_eq(resp.types[0], IPC_EMIT);
	ck_assert_str_eq(resp.names[0], name);
	ck_assert_uint_eq(resp.data_len[0], DSIPC_MAX_DATA);
	ck_assert_int_eq(dsipc_emit(c, "caf\xc3\xa9", "{\"a\":[1,2]}"), 0);
	srv_expect(f.sfd, IPC_EMIT, &m);
	ck_assert_str_eq(m.name, "caf\xc3\xa9");
	ck_assert_str_eq(m.data, "{\"a\":[1,2]}");
	ipc_msg_clear(&m);
	ck_assert_int_eq(dsipc_emit(c, "nodata", NULL), 0);
	srv_expect(f.sfd, IPC_EMIT, &m);
	ck_assert_ptr_null(m.data);
	ipc_msg_clear(&m);

	free(name);
	free(big);
	dsipc_free(c);
	fake_close(&f);
}
END_TEST

START_TEST(test_emit_async_and_errors)
{
	struct rec got = {0}, err = {0};
	struct fake f;
	struct ipc_msg m, reply = {.type = IPC_EMIT_REPLY,
	                           .has_id = true,
	                           .has_code = true};
	struct ipc_msg refuse = {.type = IPC_ERROR,
	                         .has_id = true,
	                         .has_code = true,
	                         .code = -EACCES,
	                         .text = "not allowed"};
	dsipc *c = setup(&f);

	dsipc_set_error_cb(c, rec_error, &err);
	ck_assert_int_eq(dsipc_emit_async(c, "a", "1", rec_emit, &got), 0);
	srv_expect(f.sfd, IPC_EMIT, &m);
	reply.id = m.id;
	reply.code = IPC_EMIT_QUEUED;
	ipc_msg_clear(&m);
	srv_send(f.sfd, &reply);
	ck_assert_int_eq(pump(c), 0);
	ck_assert_int_eq(got.calls, 1);
	ck_assert_int_eq(got.code, DSIPC_EMIT_QUEUED);

	/* Plain emit: a refusal goes to the error callback, with the name. */
	ck_assert_int_eq(dsipc_emit(c, "secret", NULL), 0);
	srv_expect(f.sfd, IPC_EMIT, &m);
	refuse.id = m.id;
	ipc_msg_clear(&m);
	srv_send(f.sfd, &refuse);
	ck_assert_int_eq(pump(c), 0);
	ck_assert_int_eq(err.calls, 1);
	ck_assert_int_eq(err.code, -EACCES);
	ck_assert_str_eq(err.name, "secret");
	ck_assert_str_eq(err.reason, "not allowed");

	/* Pending when dsd goes away: the callback hears about it. */
	ck_assert_int_eq(dsipc_emit_async(c, "a", NULL, rec_emit, &got), 0);
	srv_expect(f.sfd, IPC_EMIT, &m);
	ipc_msg_clear(&m);
	close(f.sfd);
	f.sfd = -1;
	ck_assert_int_eq(pump(c), -ECONNRESET);
	ck_assert_int_eq(got.calls, 2);
	ck_assert_int_eq(got.code, -ECONNRESET);
	dsipc_free(c);
	fake_close(&f);
}
END_TEST

static void answer_control(int fd, const struct ipc_msg *req)
{
	struct ipc_msg m = {.has_id = true, .id = req->id};

	switch (req->type) {
	case IPC_EMIT:
		m.type = IPC_EMIT_REPLY;
		m.has_code = true;
		m.code = strcmp(req->name, "later") == 0 ? IPC_EMIT_QUEUED
		                                         : IPC_EMIT_SENT;
		if (strcmp(req->name, "forbidden") == 0) {
			m.type = IPC_ERROR;
			m.code = -EACCES;
			m.text = "emit refused by platform";
		}
		break;
	case IPC_STATUS:
		m.type = IPC_STATUS_REPLY;
		m.text = "{\"state\":\"OPEN\",\"reason\":\"\",\"url\":\"ws://"
		         "x\",\"attempt\":0}";
		break;
	case IPC_RELOAD:
		m.type = IPC_ERROR;
		m.has_code = true;
		m.code = -EINVAL;
		m.text = "dsd.conf:3: unknown key";
		break;
	default:
		m.type = IPC_OK;
		break;
	}
	/* An unrelated event first: blocking calls must keep dispatching. */
	if (req->type == IPC_STATUS) {
		struct ipc_msg ev = {.type = IPC_EVENT, .name = "noise"};
		srv_send(fd, &ev);
	}
	srv_send(fd, &m);
	/* dsd confirms an emit it wrote, when asked to ("slow": never) */
	if (req->type == IPC_EMIT && m.type == IPC_EMIT_REPLY &&
	    m.code == IPC_EMIT_SENT && req->has_code &&
	    (req->code & IPC_EMIT_WANT_CONFIRM) &&
	    strcmp(req->name, "slow") != 0) {
		struct ipc_msg done = {.type = IPC_EMIT_CONFIRMED,
		                       .has_id = true,
		                       .id = req->id};
		srv_send(fd, &done);
	}
}

START_TEST(test_sync_calls)
{
	struct responder resp;
	struct rec noise = {0};
	dsipc_emit_result res;
	struct fake f;
	char *json = NULL;
	dsipc *c = setup(&f);

	ck_assert_int_eq(dsipc_subscribe(c, "noise", rec_event, &noise, NULL),
	                 0);
	responder_start(&resp, f.sfd, 9, answer_control);
	ck_assert_int_eq(dsipc_emit_sync(c, "now", "true", 2000, &res), 0);
	ck_assert_int_eq(res, DSIPC_EMIT_CONFIRMED);
	/* written, but no confirmation within the timeout: still accepted */
	ck_assert_int_eq(dsipc_emit_sync(c, "slow", "1", 200, &res), 0);
	ck_assert_int_eq(res, DSIPC_EMIT_SENT);
	ck_assert_int_eq(dsipc_emit_sync(c, "later", NULL, 2000, &res), 0);
	ck_assert_int_eq(res, DSIPC_EMIT_QUEUED);
	ck_assert_int_eq(dsipc_emit_sync(c, "forbidden", NULL, 2000, &res),
	                 -EACCES);
	ck_assert_str_eq(dsipc_last_error(c), "emit refused by platform");
	ck_assert_int_eq(dsipc_status_json(c, 2000, &json), 0);
	ck_assert_ptr_nonnull(strstr(json, "\"OPEN\""));
	ck_assert_int_eq(noise.calls, 1);
	free(json);
	ck_assert_int_eq(dsipc_pause(c, 2000), 0);
	ck_assert_int_eq(dsipc_resume(c, 2000), 0);
	ck_assert_int_eq(dsipc_reload(c, 2000), -EINVAL);
	ck_assert_str_eq(dsipc_last_error(c), "dsd.conf:3: unknown key");
	pthread_join(resp.th, NULL);
	/* SUBSCRIBE "noise" went first, before the responder started. */
	ck_assert_int_eq(resp.types[0], IPC_SUBSCRIBE);
	ck_assert_int_eq(resp.types[5], IPC_STATUS);
	ck_assert_int_eq(resp.types[6], IPC_PAUSE);
	ck_assert_int_eq(resp.types[7], IPC_RESUME);
	ck_assert_int_eq(resp.types[8], IPC_RELOAD);

	/* Nobody answers: a timeout, and the late reply is harmless. */
	ck_assert_int_eq(dsipc_pause(c, 50), -ETIMEDOUT);
	{
		struct ipc_msg m;

		srv_expect(f.sfd, IPC_PAUSE, &m);
		reply_ok(f.sfd, m.id);
		ipc_msg_clear(&m);
	}
	ck_assert_int_eq(pump(c), 0);
	dsipc_free(c);
	fake_close(&f);
}
END_TEST

/* -- subscriptions -- */

START_TEST(test_subscribe_refcount)
{
	struct rec a = {0}, b = {0}, other = {0};
	dsipc_slot *sa, *sb, *so;
	struct fake f;
	struct ipc_msg m;
	dsipc *c = setup(&f);

	ck_assert_int_eq(dsipc_subscribe(c, "x", rec_event, &a, &sa), 0);
	ck_assert_int_eq(dsipc_subscribe(c, "x", rec_event, &b, &sb), 0);
	ck_assert_int_eq(dsipc_subscribe(c, "y", rec_event, &other, &so), 0);
	ck_assert_int_eq(dsipc_subscribe(c, "", rec_event, &a, NULL), -EINVAL);
	srv_expect(f.sfd, IPC_SUBSCRIBE, &m);
	ck_assert_str_eq(m.name, "x");
	reply_ok(f.sfd, m.id);
	ipc_msg_clear(&m);
	srv_expect(f.sfd, IPC_SUBSCRIBE, &m);
	ck_assert_str_eq(m.name, "y");
	reply_ok(f.sfd, m.id);
	ipc_msg_clear(&m);
	srv_quiet(f.sfd);

	/* One event reaches both slots of its name, and only those. */
	{
		struct ipc_msg ev = {.type = IPC_EVENT,
		                     .name = "x",
		                     .data = "{\"n\":1}",
		                     .data_len = 7};
		srv_send(f.sfd, &ev);
	}
	ck_assert_int_eq(pump(c), 0);
	ck_assert_int_eq(a.calls, 1);
	ck_assert_int_eq(b.calls, 1);
	ck_assert_int_eq(other.calls, 0);
	ck_assert_str_eq(a.name, "x");
	ck_assert_str_eq(a.json, "{\"n\":1}");
	ck_assert_str_eq(b.json, "{\"n\":1}");

	/* An event without data: NULL. */
	{
		struct ipc_msg ev = {.type = IPC_EVENT, .name = "y"};
		srv_send(f.sfd, &ev);
	}
	ck_assert_int_eq(pump(c), 0);
	ck_assert_int_eq(other.calls, 1);
	ck_assert(other.json_null);

	ck_assert_ptr_null(dsipc_slot_free(sa));
	srv_quiet(f.sfd);
	ck_assert_ptr_null(dsipc_slot_free(sb));
	srv_expect(f.sfd, IPC_UNSUBSCRIBE, &m);
	ck_assert_str_eq(m.name, "x");
	ipc_msg_clear(&m);
	srv_quiet(f.sfd);

	/* After the last slot went, events for x are dropped. */
	{
		struct ipc_msg ev = {.type = IPC_EVENT, .name = "x"};
		srv_send(f.sfd, &ev);
	}
	ck_assert_int_eq(pump(c), 0);
	ck_assert_int_eq(a.calls + b.calls, 2);

	/* Resubscribing after that is a new SUBSCRIBE. */
	ck_assert_int_eq(dsipc_subscribe(c, "x", rec_event, &a, NULL), 0);
	srv_expect(f.sfd, IPC_SUBSCRIBE, &m);
	ipc_msg_clear(&m);
	dsipc_slot_free(so);
	ck_assert_ptr_null(dsipc_slot_free(NULL));
	dsipc_free(c);
	fake_close(&f);
}
END_TEST

START_TEST(test_sub_denied)
{
	struct rec err = {0};
	struct fake f;
	dsipc *c = setup(&f);
	struct ipc_msg m, denied = {.type = IPC_SUB_DENIED,
	                            .name = "x",
	                            .text = "no permission"};

	dsipc_set_error_cb(c, rec_error, &err);
	ck_assert_int_eq(dsipc_subscribe(c, "x", rec_event, &err, NULL), 0);
	srv_expect(f.sfd, IPC_SUBSCRIBE, &m);
	reply_ok(f.sfd, m.id);
	ipc_msg_clear(&m);
	srv_send(f.sfd, &denied);
	ck_assert_int_eq(pump(c), 0);
	ck_assert_int_eq(err.calls, 1);
	ck_assert_int_eq(err.code, -EACCES);
	ck_assert_str_eq(err.name, "x");
	ck_assert_str_eq(err.reason, "no permission");
	dsipc_free(c);
	fake_close(&f);
}
END_TEST

/* -- state -- */

static void send_state(int fd, const char *state, const char *reason,
                       int64_t at)
{
	struct ipc_msg m = {
	        .type = IPC_STATE, .state = state, .text = reason, .at = at};
	srv_send(fd, &m);
}

START_TEST(test_state_watch)
{
	struct rec one = {0}, two = {0};
	const char *st, *rs;
	dsipc_slot *s1, *s2;
	struct fake f;
	struct ipc_msg m;
	dsipc *c = setup(&f);

	ck_assert_int_eq(dsipc_watch_state(c, rec_state, &one, &s1), 0);
	ck_assert_int_eq(one.calls, 0);
	srv_expect(f.sfd, IPC_WATCH, &m);
	reply_ok(f.sfd, m.id);
	ipc_msg_clear(&m);
	send_state(f.sfd, "OPEN", "connected", 1700000000123);
	ck_assert_int_eq(pump(c), 0);
	ck_assert_int_eq(one.calls, 1);
	ck_assert_str_eq(one.state, "OPEN");
	ck_assert_str_eq(one.reason, "connected");
	ck_assert_int_eq(one.at, 1700000000123);
	ck_assert_int_eq(dsipc_get_state(c, &st, &rs), 0);
	ck_assert_str_eq(st, "OPEN");
	ck_assert_str_eq(rs, "connected");

	/* A second watcher gets the current state at once, and dsd is not
	 * asked again. */
	ck_assert_int_eq(dsipc_watch_state(c, rec_state, &two, &s2), 0);
	ck_assert_int_eq(two.calls, 1);
	ck_assert_str_eq(two.state, "OPEN");
	ck_assert_int_eq(two.at, 1700000000123);
	srv_quiet(f.sfd);

	send_state(f.sfd, "RECONNECTING", "closed by peer", 1700000001000);
	ck_assert_int_eq(pump(c), 0);
	ck_assert_int_eq(one.calls, 2);
	ck_assert_int_eq(two.calls, 2);
	ck_assert_str_eq(two.state, "RECONNECTING");
	ck_assert_str_eq(two.reason, "closed by peer");

	dsipc_slot_free(s1);
	send_state(f.sfd, "OPEN", NULL, 1700000002000);
	ck_assert_int_eq(pump(c), 0);
	ck_assert_int_eq(one.calls, 2);
	ck_assert_int_eq(two.calls, 3);
	ck_assert_str_eq(two.reason, "");
	dsipc_slot_free(s2);
	dsipc_free(c);
	fake_close(&f);
}
END_TEST

/* -- freeing from callbacks -- */

START_TEST(test_free_in_event_callback)
{
	struct rec a = {0}, b = {0};
	struct fake f;
	dsipc_slot *held;
	dsipc *c = setup(&f);
	struct ipc_msg ev = {
	        .type = IPC_EVENT, .name = "x", .data = "[]", .data_len = 2};

	a.free_handle = c;
	ck_assert_int_eq(dsipc_subscribe(c, "x", rec_event, &a, NULL), 0);
	ck_assert_int_eq(dsipc_subscribe(c, "x", rec_event, &b, &held), 0);
	srv_send(f.sfd, &ev);
	srv_send(f.sfd, &ev);
	ck_assert_int_eq(pump(c), -ECANCELED);
	/* Stopped right after the free: b never ran, nothing was left. */
	ck_assert_int_eq(a.calls, 1);
	ck_assert_int_eq(b.calls, 0);
	ck_assert_ptr_null(a.free_handle);
	/* The held slot was detached and is still the caller's to free. */
	ck_assert_ptr_null(dsipc_slot_free(held));
	fake_close(&f);
}
END_TEST

START_TEST(test_free_in_state_callback)
{
	struct rec one = {0};
	dsipc_slot *s = NULL;
	struct fake f;
	struct ipc_msg m;
	dsipc *c = setup(&f);

	ck_assert_int_eq(dsipc_watch_state(c, rec_state, &one, NULL), 0);
	srv_expect(f.sfd, IPC_WATCH, &m);
	ipc_msg_clear(&m);
	send_state(f.sfd, "OPEN", "", 1);
	ck_assert_int_eq(pump(c), 0);

	/* The first delivery comes from inside dsipc_watch_state(). */
	one.free_handle = c;
	ck_assert_int_eq(dsipc_watch_state(c, rec_state, &one, &s), -ECANCELED);
	ck_assert_ptr_null(s);
	ck_assert_int_eq(one.calls, 2);
	fake_close(&f);
}
END_TEST

START_TEST(test_slot_free_in_callback)
{
	struct rec a = {0}, b = {0};
	dsipc_slot *sa, *sb;
	struct fake f;
	struct ipc_msg m;
	dsipc *c = setup(&f);
	struct ipc_msg ev = {.type = IPC_EVENT, .name = "x"};

	ck_assert_int_eq(dsipc_subscribe(c, "x", rec_event, &a, &sa), 0);
	ck_assert_int_eq(dsipc_subscribe(c, "x", rec_event, &b, &sb), 0);
	srv_expect(f.sfd, IPC_SUBSCRIBE, &m);
	ipc_msg_clear(&m);
	/* a's callback frees both slots: b must not run, and the name is
	 * unsubscribed once. */
	a.free_slot = sb;
	srv_send(f.sfd, &ev);
	ck_assert_int_eq(pump(c), 0);
	ck_assert_int_eq(b.calls, 0);
	a.free_slot = sa;
	srv_send(f.sfd, &ev);
	ck_assert_int_eq(pump(c), 0);
	ck_assert_int_eq(a.calls, 2);
	srv_expect(f.sfd, IPC_UNSUBSCRIBE, &m);
	ipc_msg_clear(&m);
	srv_quiet(f.sfd);
	dsipc_free(c);
	fake_close(&f);
}
END_TEST

/* -- the connection ending -- */

START_TEST(test_peer_gone)
{
	struct fake f;
	struct rec a = {0};
	struct ipc_msg m;
	dsipc *c = setup(&f);

	ck_assert_int_eq(dsipc_subscribe(c, "x", rec_event, &a, NULL), 0);
	ck_assert_int_eq(dsipc_watch_state(c, rec_state, &a, NULL), 0);
	close(f.sfd);
	f.sfd = -1;
	ck_assert_int_eq(pump(c), -ECONNRESET);
	ck_assert(!dsipc_is_connected(c));
	ck_assert_int_eq(dsipc_get_fd(c), -ENOTCONN);
	ck_assert_int_eq(dsipc_get_events(c), 0);
	ck_assert_int_eq(dsipc_emit(c, "x", NULL), -ENOTCONN);
	ck_assert_int_eq(dsipc_process(c), -ENOTCONN);
	ck_assert_int_eq(dsipc_pause(c, 100), -ENOTCONN);

	/* Reconnecting restores the subscription and the state watch. */
	ck_assert_int_eq(fake_connect(&f, c), 0);
	srv_expect(f.sfd, IPC_SUBSCRIBE, &m);
	ck_assert_str_eq(m.name, "x");
	ipc_msg_clear(&m);
	srv_expect(f.sfd, IPC_WATCH, &m);
	ipc_msg_clear(&m);
	srv_quiet(f.sfd);
	dsipc_free(c);
	fake_close(&f);
}
END_TEST

START_TEST(test_garbage_from_peer)
{
	static const uint8_t huge[] = {0x7f, 0xff, 0xff, 0xff};
	struct fake f;
	dsipc *c = setup(&f);

	ck_assert_int_eq(send(f.sfd, huge, sizeof(huge), 0), 4);
	ck_assert_int_eq(pump(c), -EBADMSG);
	ck_assert(!dsipc_is_connected(c));
	dsipc_free(c);
	fake_close(&f);
}
END_TEST

START_TEST(test_output_bounded)
{
	struct fake f;
	char *big;
	int k, r = 0;
	dsipc *c = setup(&f);

	big = malloc(DSIPC_MAX_DATA + 1);
	memset(big, 'a', DSIPC_MAX_DATA);
	big[0] = big[DSIPC_MAX_DATA - 1] = '"';
	big[DSIPC_MAX_DATA] = 0;
	/* The fake never reads: the output buffer must hit its cap. */
	for (k = 0; k < 64 && r == 0; k++)
		r = dsipc_emit(c, "x", big);
	ck_assert_int_eq(r, -ENOBUFS);
	ck_assert_int_gt(k, 8);
	ck_assert_int_eq(dsipc_get_events(c), POLLIN | POLLOUT);
	free(big);
	dsipc_free(c);
	fake_close(&f);
}
END_TEST

/* -- blocking helpers -- */

static void answer_subscribe_with_event(int fd, const struct ipc_msg *req)
{
	if (req->type == IPC_SUBSCRIBE) {
		struct ipc_msg other = {.type = IPC_EVENT, .name = "other"};
		struct ipc_msg ev = {.type = IPC_EVENT,
		                     .name = req->name,
		                     .data = "{\"hi\":true}",
		                     .data_len = 11};
		reply_ok(fd, req->id);
		srv_send(fd, &other);
		srv_send(fd, &ev);
		srv_send(fd, &ev);
	} else {
		reply_ok(fd, req->id);
	}
}

START_TEST(test_wait_event)
{
	struct responder resp;
	struct fake f;
	char *json = NULL;
	dsipc *c = setup(&f);

	responder_start(&resp, f.sfd, 2, answer_subscribe_with_event);
	ck_assert_int_eq(dsipc_wait_event(c, "greet", 2000, &json), 0);
	ck_assert_str_eq(json, "{\"hi\":true}");
	free(json);
	pthread_join(resp.th, NULL);
	ck_assert_int_eq(resp.types[0], IPC_SUBSCRIBE);
	ck_assert_str_eq(resp.names[0], "greet");
	ck_assert_int_eq(resp.types[1], IPC_UNSUBSCRIBE);
	ck_assert_str_eq(resp.names[1], "greet");

	json = (char *)"untouched";
	ck_assert_int_eq(dsipc_wait_event(c, "never", 50, &json), -ETIMEDOUT);
	ck_assert_str_eq(json, "untouched");
	ck_assert_int_eq(dsipc_wait(c, 20), 0);
	dsipc_free(c);
	fake_close(&f);
}
END_TEST

/* -- the libevent adapter -- */

static void on_closed(dsipc *c, int error, void *ud)
{
	(void)c;
	*(int *)ud = error;
}

START_TEST(test_libevent_adapter)
{
	struct event_base *base = event_base_new();
	struct dsipc_libevent *a;
	struct rec got = {0};
	int closed = 0, k;
	struct fake f;
	struct ipc_msg m;
	dsipc *c = setup(&f);
	struct ipc_msg ev = {
	        .type = IPC_EVENT, .name = "x", .data = "5", .data_len = 1};

	ck_assert_int_eq(dsipc_libevent_attach(c, base, on_closed, &closed, &a),
	                 0);
	ck_assert_int_eq(dsipc_subscribe(c, "x", rec_event, &got, NULL), 0);
	srv_expect(f.sfd, IPC_SUBSCRIBE, &m);
	ipc_msg_clear(&m);
	srv_send(f.sfd, &ev);
	for (k = 0; k < 50 && got.calls == 0; k++)
		event_base_loop(base, EVLOOP_ONCE);
	ck_assert_int_eq(got.calls, 1);
	ck_assert_str_eq(got.json, "5");

	close(f.sfd);
	f.sfd = -1;
	for (k = 0; k < 50 && closed == 0; k++)
		event_base_loop(base, EVLOOP_ONCE);
	ck_assert_int_eq(closed, -ECONNRESET);
	dsipc_libevent_detach(a);
	dsipc_free(c);
	event_base_free(base);
	fake_close(&f);
}
END_TEST

/* One turn of the loop, never longer than 50 ms (a broken adapter that
 * waits on nothing must fail the test, not hang it). */
static void loop_once(struct event_base *base)
{
	struct timeval tv = {0, 50000};

	event_base_loopexit(base, &tv);
	event_base_loop(base, EVLOOP_ONCE);
}

/* With reconnection on, the adapter moves to the new socket by itself:
 * the subscription delivers again, closed_cb is not called. */
START_TEST(test_libevent_follows_reconnect)
{
	struct event_base *base = event_base_new();
	struct dsipc_libevent *a;
	struct rec got = {0};
	int closed = 0, k;
	struct fake f;
	struct ipc_msg m;
	dsipc *c;
	struct ipc_msg ev = {
	        .type = IPC_EVENT, .name = "x", .data = "6", .data_len = 1};

	fake_listen(&f, IPC_PROTOCOL_VERSION);
	ck_assert_int_eq(dsipc_new(&c), 0);
	ck_assert_int_eq(dsipc_set_reconnect(c, 10, 20, -1), 0);
	ck_assert_int_eq(fake_connect(&f, c), 0);
	ck_assert_int_eq(dsipc_libevent_attach(c, base, on_closed, &closed, &a),
	                 0);
	ck_assert_int_eq(dsipc_subscribe(c, "x", rec_event, &got, NULL), 0);
	srv_expect(f.sfd, IPC_SUBSCRIBE, &m);
	ipc_msg_clear(&m);
	close(f.sfd);
	f.sfd = -1;
	/* the fake answers the next HELLO from a thread */
	ck_assert_int_eq(pthread_create(&f.th, NULL, accept_hello, &f), 0);
	for (k = 0; k < 50 && dsipc_is_connected(c); k++)
		loop_once(base);
	ck_assert(!dsipc_is_connected(c));
	for (k = 0; k < 100 && !dsipc_is_connected(c); k++)
		loop_once(base);
	if (!dsipc_is_connected(c))
		shutdown(f.lfd, SHUT_RDWR); /* ends the fake's accept() */
	pthread_join(f.th, NULL);
	ck_assert(dsipc_is_connected(c));
	srv_expect(f.sfd, IPC_SUBSCRIBE, &m);
	ck_assert_str_eq(m.name, "x");
	ipc_msg_clear(&m);
	srv_send(f.sfd, &ev);
	for (k = 0; k < 50 && got.calls == 0; k++)
		loop_once(base);
	ck_assert_int_eq(got.calls, 1);
	ck_assert_str_eq(got.json, "6");
	ck_assert_int_eq(closed, 0);
	dsipc_libevent_detach(a);
	dsipc_free(c);
	event_base_free(base);
	fake_close(&f);
}
END_TEST

/* A callback may detach the adapter (and then free the handle). */
struct detacher {
	struct dsipc_libevent *a;
	dsipc *c;
	bool free_too;
	int calls;
};

static void detach_in_event(dsipc *c, const char *name, const char *json,
                            void *ud)
{
	struct detacher *x = ud;

	(void)c;
	(void)name;
	(void)json;
	x->calls++;
	x->a = dsipc_libevent_detach(x->a);
	if (x->free_too)
		x->c = dsipc_free(x->c);
}

START_TEST(test_libevent_detach_in_callback)
{
	struct event_base *base = event_base_new();
	struct detacher x = {0};
	struct fake f;
	struct ipc_msg m;
	dsipc *c = setup(&f);
	struct ipc_msg ev = {.type = IPC_EVENT, .name = "x"};
	int k;

	x.c = c;
	x.free_too = _i == 1;
	ck_assert_int_eq(dsipc_libevent_attach(c, base, NULL, NULL, &x.a), 0);
	ck_assert_int_eq(dsipc_subscribe(c, "x", detach_in_event, &x, NULL), 0);
	srv_expect(f.sfd, IPC_SUBSCRIBE, &m);
	ipc_msg_clear(&m);
	srv_send(f.sfd, &ev);
	for (k = 0; k < 50 && x.calls == 0; k++)
		event_base_loop(base, EVLOOP_ONCE);
	ck_assert_int_eq(x.calls, 1);
	ck_assert_ptr_null(x.a);
	/* Detached: the loop no longer drives the handle (nor touches the
	 * freed adapter, which ASan would catch). */
	if (x.c)
		srv_send(f.sfd, &ev);
	for (k = 0; k < 5; k++)
		event_base_loop(base, EVLOOP_NONBLOCK);
	ck_assert_int_eq(x.calls, 1);
	if (x.c) {
		ck_assert_int_eq(pump(c), 0);
		ck_assert_int_eq(x.calls, 2);
		dsipc_free(c);
	}
	event_base_free(base);
	fake_close(&f);
}
END_TEST

/* dsd not accepting (hung) with a full backlog: connect must not block. */
START_TEST(test_connect_backlog_full)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	struct fake f;
	int fill[4], k, n = 0;
	dsipc *c;

	fake_listen(&f, IPC_PROTOCOL_VERSION);
	close(f.lfd);
	unlink(f.path);
	strcpy(sa.sun_path, f.path);
	f.lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	ck_assert_int_eq(bind(f.lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	ck_assert_int_eq(listen(f.lfd, 0), 0);
	for (k = 0; k < 4; k++) {
		fill[k] = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0);
		if (connect(fill[k], (struct sockaddr *)&sa, sizeof(sa)) < 0)
			ck_assert_int_eq(errno, EAGAIN);
		else
			n++;
	}
	ck_assert_int_ge(n, 1); /* the backlog is full now */
	ck_assert_int_eq(dsipc_new(&c), 0);
	alarm(20); /* the bug was a connect() that never returned */
	ck_assert_int_eq(dsipc_connect(c, f.path), -ETIMEDOUT);
	alarm(0);
	ck_assert(!dsipc_is_connected(c));
	ck_assert_ptr_nonnull(strstr(dsipc_last_error(c), "timed out"));
	dsipc_free(c);
	for (k = 0; k < 4; k++)
		close(fill[k]);
	fake_close(&f);
}
END_TEST

/* A reply to a request whose blocking caller gave up is dropped quietly. */
START_TEST(test_late_reply_dropped)
{
	struct rec e = {0};
	struct fake f;
	struct ipc_msg m;
	dsipc *c = setup(&f);
	struct ipc_msg err = {.type = IPC_ERROR,
	                      .has_id = true,
	                      .has_code = true,
	                      .code = -EPERM,
	                      .text = "late"};

	dsipc_set_error_cb(c, rec_error, &e);
	ck_assert_int_eq(dsipc_pause(c, 30), -ETIMEDOUT);
	srv_expect(f.sfd, IPC_PAUSE, &m);
	err.id = m.id;
	ipc_msg_clear(&m);
	srv_send(f.sfd, &err);
	ck_assert_int_eq(pump(c), 0);
	ck_assert_int_eq(e.calls, 0);
	dsipc_free(c);
	fake_close(&f);
}
END_TEST

struct sender {
	int fd;
	const struct ipc_msg *m;
};

static void *send_in_thread(void *arg)
{
	struct sender *x = arg;

	srv_send(x->fd, x->m);
	return NULL;
}

/* The room one big frame needed is given back once it is handled. */
START_TEST(test_input_buffer_shrinks)
{
	struct rec a = {0};
	struct fake f;
	struct ipc_msg m;
	dsipc *c = setup(&f);
	size_t n = 900 * 1024;
	char *big = malloc(n + 1);
	struct ipc_msg ev = {.type = IPC_EVENT, .name = "x"};
	int k;

	memset(big, '1', n);
	big[n] = 0;
	ev.data = big;
	ev.data_len = n;
	ck_assert_int_eq(dsipc_subscribe(c, "x", rec_event, &a, NULL), 0);
	srv_expect(f.sfd, IPC_SUBSCRIBE, &m);
	ipc_msg_clear(&m);
	struct sender snd = {.fd = f.sfd, .m = &ev};
	pthread_t th;

	ck_assert_int_eq(pthread_create(&th, NULL, send_in_thread, &snd), 0);
	for (k = 0; k < 1000 && a.calls == 0; k++)
		ck_assert_int_eq(pump(c), 0);
	pthread_join(th, NULL);
	ck_assert_int_eq(a.calls, 1);
	ev.data = "2";
	ev.data_len = 1;
	srv_send(f.sfd, &ev);
	ck_assert_int_eq(pump(c), 0);
	ck_assert_int_eq(a.calls, 2);
	ck_assert_uint_le(ipc_reader_capacity(&c->in), 64 * 1024);
	free(big);
	dsipc_free(c);
	fake_close(&f);
}
END_TEST

/* -- the link to dsd: non-blocking connect, reconnection, the buffer -- */

struct links {
	int n;
	int link[32];
	int error[32];
};

static void rec_link(dsipc *c, int link, int error, void *ud)
{
	struct links *l = ud;

	(void)c;
	if (l->n < 32) {
		l->link[l->n] = link;
		l->error[l->n] = error;
	}
	l->n++;
}

/* The fake takes the next connection and answers its HELLO. */
static void fake_accept(struct fake *f)
{
	struct ipc_msg m;
	struct ipc_msg ok = {.type = IPC_HELLO_OK,
	                     .has_code = true,
	                     .code = IPC_PROTOCOL_VERSION};
	struct pollfd p = {.fd = f->lfd, .events = POLLIN};

	ck_assert_int_eq(poll(&p, 1, 2000), 1);
	if (f->sfd >= 0)
		close(f->sfd);
	f->sfd = accept4(f->lfd, NULL, NULL, SOCK_CLOEXEC);
	ck_assert_int_ge(f->sfd, 0);
	srv_expect(f->sfd, IPC_HELLO, &m);
	ipc_msg_clear(&m);
	srv_send(f->sfd, &ok);
}

/* Runs the library as an event loop would, until pred(c) or 3 s. */
static void loop_until(dsipc *c, bool (*pred)(dsipc *c))
{
	for (int k = 0; k < 3000 && !pred(c); k++) {
		struct pollfd p = {.fd = dsipc_get_fd(c),
		                   .events = (short)dsipc_get_events(c)};
		int t = -1;

		ck_assert_int_eq(dsipc_get_timeout(c, &t), 0);
		poll(&p, p.fd >= 0 ? 1 : 0, t < 0 || t > 1 ? 1 : t);
		ck_assert_int_eq(dsipc_process(c), 0);
	}
	ck_assert(pred(c));
}

static bool is_up(dsipc *c)
{
	return dsipc_get_link(c) == DSIPC_LINK_UP;
}

static bool is_connecting(dsipc *c)
{
	return dsipc_get_link(c) == DSIPC_LINK_CONNECTING;
}

static int64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void expect_emit(int fd, const char *name, const char *data,
                        uint32_t *ret_id)
{
	struct ipc_msg m;

	srv_expect(fd, IPC_EMIT, &m);
	ck_assert_str_eq(m.name, name);
	ck_assert_uint_eq(m.data_len, strlen(data));
	ck_assert(memcmp(m.data, data, m.data_len) == 0);
	*ret_id = m.id;
	ipc_msg_clear(&m);
}

static void reply_emit(int fd, uint32_t id, int64_t code)
{
	struct ipc_msg r = {.type = IPC_EMIT_REPLY,
	                    .has_id = true,
	                    .id = id,
	                    .has_code = true,
	                    .code = code};
	srv_send(fd, &r);
}

/* dsipc_connect_async() does not wait for HELLO; what is made meanwhile is
 * sent once dsd answered: registrations first, then the emits in order. */
START_TEST(test_connect_async)
{
	struct fake f;
	struct links l = {0};
	struct rec e1 = {0}, ev = {0};
	struct ipc_msg m;
	uint32_t id1, id2;
	dsipc *c;
	int t = -2;

	fake_listen(&f, IPC_PROTOCOL_VERSION);
	ck_assert_int_eq(dsipc_new(&c), 0);
	ck_assert_int_eq(dsipc_watch_link(c, rec_link, &l, NULL), 0);
	ck_assert_int_eq(l.n, 1);
	ck_assert_int_eq(l.link[0], DSIPC_LINK_DOWN);
	ck_assert_int_eq(dsipc_get_timeout(c, &t), 0);
	ck_assert_int_eq(t, -1);
	/* nobody accepts yet: it returns at once all the same */
	ck_assert_int_eq(dsipc_connect_async(c, f.path), 0);
	ck_assert_int_eq(dsipc_connect_async(c, f.path), -EISCONN);
	ck_assert_int_eq(dsipc_get_link(c), DSIPC_LINK_CONNECTING);
	ck_assert_int_eq(l.link[l.n - 1], DSIPC_LINK_CONNECTING);
	ck_assert(!dsipc_is_connected(c));
	ck_assert_int_ge(dsipc_get_fd(c), 0);
	ck_assert_int_eq(dsipc_get_timeout(c, &t), 0);
	ck_assert_int_gt(t, 0);
	ck_assert_int_le(t, DSIPC_HELLO_TIMEOUT_MS);
	ck_assert_int_eq(dsipc_emit_async(c, "a", "1", rec_emit, &e1), 0);
	ck_assert_int_eq(dsipc_emit(c, "a", "2"), 0);
	ck_assert_int_eq(dsipc_get_buffered(c), 2);
	ck_assert_int_eq(dsipc_subscribe(c, "x", rec_event, &ev, NULL), 0);
	/* control requests need dsd */
	ck_assert_int_eq(dsipc_pause(c, 100), -ENOTCONN);

	fake_accept(&f);
	loop_until(c, is_up);
	ck_assert_int_eq(l.link[l.n - 1], DSIPC_LINK_UP);
	ck_assert_int_eq(dsipc_get_timeout(c, &t), 0);
	ck_assert_int_eq(t, -1);
	srv_expect(f.sfd, IPC_SUBSCRIBE, &m);
	ck_assert_str_eq(m.name, "x");
	ipc_msg_clear(&m);
	expect_emit(f.sfd, "a", "1", &id1);
	expect_emit(f.sfd, "a", "2", &id2);
	ck_assert_int_eq(dsipc_get_buffered(c), 0);
	reply_emit(f.sfd, id1, IPC_EMIT_SENT);
	reply_emit(f.sfd, id2, IPC_EMIT_SENT);
	ck_assert_int_eq(pump(c), 0);
	ck_assert_int_eq(e1.calls, 1);
	ck_assert_int_eq(e1.code, DSIPC_EMIT_SENT);
	dsipc_free(c);
	fake_close(&f);
}
END_TEST

/* Without reconnection, an async connect that cannot be made fails. */
START_TEST(test_connect_async_fails)
{
	struct fake f;
	dsipc *c;

	fake_listen(&f, IPC_PROTOCOL_VERSION);
	ck_assert_int_eq(dsipc_new(&c), 0);
	unlink(f.path);
	ck_assert_int_eq(dsipc_connect_async(c, f.path), -ENOENT);
	ck_assert_int_eq(dsipc_get_link(c), DSIPC_LINK_DOWN);
	ck_assert_int_eq(dsipc_emit(c, "a", NULL), -ENOTCONN);
	ck_assert_int_eq(dsipc_process(c), -ENOTCONN);
	dsipc_free(c);
	fake_close(&f);
}
END_TEST

static void answer_shutdown(int fd, uint32_t id)
{
	struct ipc_msg e = {.type = IPC_ERROR,
	                    .has_id = true,
	                    .id = id,
	                    .has_code = true,
	                    .code = -ESHUTDOWN,
	                    .text = "dsd is stopping: no more emits"};
	srv_send(fd, &e);
}

/*
 * dsd goes away: the library tries again by itself, subscribes again,
 * and sends again, in order and with their ids, the emits dsd never
 * answered or refused because it was stopping, then those made while
 * it was away; each callback hears dsd's answer once.
 */
START_TEST(test_reconnect_resends)
{
	struct fake f;
	struct links l = {0};
	struct rec e1 = {0}, e2 = {0}, e3 = {0}, errs = {0}, ev = {0};
	dsipc_emit_result how = DSIPC_EMIT_SENT;
	struct ipc_msg m;
	uint32_t id1, id2, id3, id4, again;
	dsipc *c;

	fake_listen(&f, IPC_PROTOCOL_VERSION);
	ck_assert_int_eq(dsipc_new(&c), 0);
	ck_assert_int_eq(dsipc_set_reconnect(c, 20, 40, -1), 0);
	dsipc_set_error_cb(c, rec_error, &errs);
	ck_assert_int_eq(fake_connect(&f, c), 0);
	ck_assert_int_eq(dsipc_watch_link(c, rec_link, &l, NULL), 0);
	ck_assert_int_eq(dsipc_subscribe(c, "x", rec_event, &ev, NULL), 0);
	srv_expect(f.sfd, IPC_SUBSCRIBE, &m);
	ipc_msg_clear(&m);
	ck_assert_int_eq(dsipc_emit_async(c, "a", "1", rec_emit, &e1), 0);
	ck_assert_int_eq(dsipc_emit_async(c, "a", "2", rec_emit, &e2), 0);
	expect_emit(f.sfd, "a", "1", &id1);
	expect_emit(f.sfd, "a", "2", &id2);
	/* 1 unanswered; 2 refused by a stopping dsd; then dsd is gone */
	answer_shutdown(f.sfd, id2);
	ck_assert_int_eq(pump(c), 0);
	ck_assert_int_eq(e2.calls, 0);
	close(f.sfd);
	f.sfd = -1;
	ck_assert_int_eq(pump(c), 0); /* not an error: it will try again */
	ck_assert_int_eq(e1.calls, 0);
	ck_assert_int_eq(e2.calls, 0);
	ck_assert_int_eq(errs.calls, 0);
	ck_assert_int_ne(dsipc_get_link(c), DSIPC_LINK_UP);
	ck_assert_int_eq(dsipc_get_buffered(c), 2);
	/* made while away: buffered, and said so */
	ck_assert_int_eq(dsipc_emit_async(c, "a", "3", rec_emit, &e3), 0);
	ck_assert_int_eq(dsipc_emit_sync(c, "a", "4", 1000, &how), 0);
	ck_assert_int_eq(how, DSIPC_EMIT_BUFFERED);
	ck_assert_int_eq(dsipc_get_buffered(c), 4);

	loop_until(c, is_connecting);
	fake_accept(&f);
	loop_until(c, is_up);
	srv_expect(f.sfd, IPC_SUBSCRIBE, &m);
	ck_assert_str_eq(m.name, "x");
	ipc_msg_clear(&m);
	expect_emit(f.sfd, "a", "1", &again);
	ck_assert_uint_eq(again, id1);
	expect_emit(f.sfd, "a", "2", &again);
	ck_assert_uint_eq(again, id2);
	expect_emit(f.sfd, "a", "3", &id3);
	expect_emit(f.sfd, "a", "4", &id4);
	srv_quiet(f.sfd);
	reply_emit(f.sfd, id1, IPC_EMIT_SENT);
	reply_emit(f.sfd, id2, IPC_EMIT_QUEUED);
	reply_emit(f.sfd, id3, IPC_EMIT_SENT);
	reply_emit(f.sfd, id4, IPC_EMIT_SENT);
	ck_assert_int_eq(pump(c), 0);
	ck_assert_int_eq(e1.calls, 1);
	ck_assert_int_eq(e1.code, DSIPC_EMIT_SENT);
	ck_assert_int_eq(e2.calls, 1);
	ck_assert_int_eq(e2.code, DSIPC_EMIT_QUEUED);
	ck_assert_int_eq(e3.calls, 1);
	ck_assert_int_eq(errs.calls, 0);
	/* the link went UP, WAITING (why), ..., UP */
	ck_assert_int_eq(l.link[0], DSIPC_LINK_UP);
	ck_assert_int_eq(l.link[1], DSIPC_LINK_WAITING);
	ck_assert_int_eq(l.error[1], -ECONNRESET);
	ck_assert_int_eq(l.link[l.n - 1], DSIPC_LINK_UP);
	dsipc_free(c);
	fake_close(&f);
}
END_TEST

/* The buffer is bounded: past it an emit is refused at once, with a
 * message; what it holds is kept. */
START_TEST(test_buffer_full)
{
	struct fake f;
	dsipc *c;

	fake_listen(&f, IPC_PROTOCOL_VERSION);
	unlink(f.path);
	ck_assert_int_eq(dsipc_new(&c), 0);
	ck_assert_int_eq(dsipc_set_reconnect(c, 1000, 1000, -1), 0);
	ck_assert_int_eq(dsipc_set_buffer(c, 2, 1024), 0);
	/* dsd is not there: with reconnection that is no failure */
	ck_assert_int_eq(dsipc_connect_async(c, f.path), 0);
	ck_assert_int_eq(dsipc_get_link(c), DSIPC_LINK_WAITING);
	ck_assert_int_eq(dsipc_get_fd(c), -ENOTCONN);
	ck_assert_int_eq(dsipc_emit(c, "a", "1"), 0);
	ck_assert_int_eq(dsipc_emit(c, "a", "2"), 0);
	ck_assert_int_eq(dsipc_emit(c, "a", "3"), -ENOBUFS);
	ck_assert_ptr_nonnull(strstr(dsipc_last_error(c), "buffer is full"));
	ck_assert_int_eq(dsipc_get_buffered(c), 2);
	/* by bytes too */
	ck_assert_int_eq(dsipc_set_buffer(c, 100, 1024), 0);
	ck_assert_int_eq(dsipc_emit(c, "a",
	                            "\"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
	                            "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
	                            "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
	                            "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
	                            "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
	                            "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
	                            "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
	                            "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
	                            "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
	                            "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
	                            "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
	                            "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
	                            "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
	                            "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
	                            "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
	                            "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
	                            "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
	                            "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
	                            "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
	                            "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
	                            "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
	                            "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
	                            "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
	                            "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
	                            "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
	                            "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
	                            "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
	                            "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
	                            "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
	                            "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
	                            "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
	                            "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
	                            "\""),
	                 -ENOBUFS);
	ck_assert_int_eq(dsipc_get_buffered(c), 2);
	/* no buffer: emits while away fail as in 1.0 */
	ck_assert_int_eq(dsipc_set_buffer(c, 0, 0), 0);
	ck_assert_int_eq(dsipc_emit(c, "a", "4"), -ENOTCONN);
	dsipc_free(c);
	fake_close(&f);
}
END_TEST

/* After give_up_ms of failed tries the library gives up: what it held
 * fails (each to its callback), dsipc_wait() returns the error once. */
START_TEST(test_give_up)
{
	struct fake f;
	struct links l = {0};
	struct rec e1 = {0}, errs = {0};
	int64_t t0;
	dsipc *c;

	fake_listen(&f, IPC_PROTOCOL_VERSION);
	unlink(f.path);
	ck_assert_int_eq(dsipc_new(&c), 0);
	ck_assert_int_eq(dsipc_set_reconnect(c, 10, 20, 150), 0);
	dsipc_set_error_cb(c, rec_error, &errs);
	ck_assert_int_eq(dsipc_watch_link(c, rec_link, &l, NULL), 0);
	ck_assert_int_eq(dsipc_connect_async(c, f.path), 0);
	ck_assert_int_eq(dsipc_emit_async(c, "a", "1", rec_emit, &e1), 0);
	ck_assert_int_eq(dsipc_emit(c, "b", "2"), 0);
	t0 = mono_ms();
	ck_assert_int_eq(dsipc_wait(c, 5000), -ENOENT);
	ck_assert_int_ge(mono_ms() - t0, 140);
	ck_assert_int_lt(mono_ms() - t0, 3000);
	ck_assert_ptr_nonnull(strstr(dsipc_last_error(c), "gave up"));
	ck_assert_int_eq(e1.calls, 1);
	ck_assert_int_eq(e1.code, -ENOENT);
	ck_assert_int_eq(errs.calls, 1);
	ck_assert_str_eq(errs.name, "b");
	ck_assert_int_eq(l.link[l.n - 1], DSIPC_LINK_DOWN);
	ck_assert_int_gt(l.n, 4); /* several tries */
	ck_assert_int_eq(dsipc_get_buffered(c), 0);
	ck_assert_int_eq(dsipc_process(c), -ENOTCONN);
	ck_assert_int_eq(dsipc_emit(c, "a", "3"), -ENOTCONN);
	dsipc_free(c);
	fake_close(&f);
}
END_TEST

/* Freeing the handle from the link callback while it reconnects. */
static void free_on_waiting(dsipc *c, int link, int error, void *ud)
{
	(void)error;
	(void)ud;
	if (link == DSIPC_LINK_WAITING)
		dsipc_free(c);
}

START_TEST(test_free_in_link_callback)
{
	struct fake f;
	dsipc *c = NULL;

	fake_listen(&f, IPC_PROTOCOL_VERSION);
	ck_assert_int_eq(dsipc_new(&c), 0);
	ck_assert_int_eq(dsipc_set_reconnect(c, 10, 10, -1), 0);
	ck_assert_int_eq(fake_connect(&f, c), 0);
	ck_assert_int_eq(dsipc_emit(c, "a", "1"), 0);
	ck_assert_int_eq(dsipc_watch_link(c, free_on_waiting, NULL, NULL), 0);
	close(f.sfd);
	f.sfd = -1;
	ck_assert_int_eq(pump(c), -ECANCELED);
	fake_close(&f);
}
END_TEST

static Suite *libdsipc_suite(void)
{
	Suite *s = suite_create("libdsipc");
	TCase *t = tcase_create("core");

	tcase_set_timeout(t, 30);
	tcase_add_test(t, test_hello);
	tcase_add_test(t, test_version_mismatch);
	tcase_add_test(t, test_hello_refused);
	tcase_add_test(t, test_daemon_absent);
	tcase_add_test(t, test_emit_validation);
	tcase_add_test(t, test_emit_async_and_errors);
	tcase_add_test(t, test_sync_calls);
	tcase_add_test(t, test_subscribe_refcount);
	tcase_add_test(t, test_sub_denied);
	tcase_add_test(t, test_state_watch);
	tcase_add_test(t, test_free_in_event_callback);
	tcase_add_test(t, test_free_in_state_callback);
	tcase_add_test(t, test_slot_free_in_callback);
	tcase_add_test(t, test_peer_gone);
	tcase_add_test(t, test_garbage_from_peer);
	tcase_add_test(t, test_output_bounded);
	tcase_add_test(t, test_wait_event);
	tcase_add_test(t, test_libevent_adapter);
	tcase_add_loop_test(t, test_libevent_detach_in_callback, 0, 2);
	tcase_add_test(t, test_connect_backlog_full);
	tcase_add_test(t, test_late_reply_dropped);
	tcase_add_test(t, test_input_buffer_shrinks);
	tcase_add_test(t, test_connect_async);
	tcase_add_test(t, test_connect_async_fails);
	tcase_add_test(t, test_reconnect_resends);
	tcase_add_test(t, test_buffer_full);
	tcase_add_test(t, test_give_up);
	tcase_add_test(t, test_free_in_link_callback);
	tcase_add_test(t, test_libevent_follows_reconnect);
	suite_add_tcase(s, t);
	return s;
}

int main(void)
{
	return check_run(libdsipc_suite());
}

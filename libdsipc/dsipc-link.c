/*
 * The link to dsd: opening the socket, the HELLO handshake without
 * blocking, what happens when the link is lost, the reconnection schedule
 * (backoff.c) and the buffer of emits made while dsd is away.
 *
 * The link is one of DOWN, CONNECTING, UP and WAITING (dsipc_link).  Only
 * dsipc_process() (and the blocking helpers, which run it) moves it on
 * time: a HELLO overdue fails the attempt, a due try opens a new socket.
 * With reconnection off, a lost link ends DOWN and dsipc_process() returns
 * the error, as libdsipc 1.0 did; with it on, the link goes WAITING, emits
 * dsd had not answered are put back at the head of the buffer (so order
 * holds and nothing accepted is lost: at least once, like dsd itself), and
 * only giving up ends it DOWN.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include "dsipc-internal.h"

/* The buffer is not sent faster than the socket takes it: the output
 * holds at most this much more before the next dsipc_process(). */
#define PUMP_OUTPUT (256 * 1024)

/*
 * blocking: dsipc_connect(), which may wait in connect() while dsd's
 * backlog is full (bounded by a send timeout); otherwise EAGAIN at once.
 */
static int open_socket(const char *path, bool blocking, int *ret_fd)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	struct timeval tv = {
	        .tv_sec = DSIPC_HELLO_TIMEOUT_MS / 1000,
	        .tv_usec = DSIPC_HELLO_TIMEOUT_MS % 1000 * 1000,
	};
	int fd, flags;

	if (strlen(path) >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	strcpy(sa.sun_path, path);
	fd = socket(AF_UNIX,
	            SOCK_STREAM | SOCK_CLOEXEC | (blocking ? 0 : SOCK_NONBLOCK),
	            0);
	if (fd < 0)
		return -errno;
	/*
	 * A local connect waits only while the listener's backlog is full
	 * (dsd hung or swamped), and then without end unless the socket has
	 * a send timeout: bound it like the HELLO wait.  It then fails with
	 * EAGAIN.
	 */
	if ((blocking &&
	     setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) < 0) ||
	    connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		int r = errno == EAGAIN ? -ETIMEDOUT : -errno;
		close(fd);
		return r;
	}
	if (blocking) {
		tv.tv_sec = tv.tv_usec = 0;
		(void)setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
		flags = fcntl(fd, F_GETFL);
		if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0) {
			int r = -errno;
			close(fd);
			return r;
		}
	}
	*ret_fd = fd;
	return 0;
}

static void set_link(dsipc *c, enum dsipc_link link, int error)
{
	c->link = link;
	if (error < 0)
		c->link_error = error;
	dsipc_notify_events(c);
	dsipc_call_link(c, link, error);
}

/* The buffer, failed: giving up, or a first connect that failed. */
static void fail_buffer(dsipc *c, int error)
{
	struct req *q = c->buf, *next;

	c->buf = c->buf_tail = NULL;
	c->used = (struct buffer_use){0};
	for (; q; q = next) {
		next = q->next;
		q->next = NULL;
		dsipc_req_fail(c, q, error);
	}
}

static void go_down(dsipc *c, int error, bool report)
{
	dsipc_reset_connection(c);
	c->link = DSIPC_LINK_DOWN;
	c->link_error = error;
	c->report_error = report ? error : 0;
	fail_buffer(c, error);
	if (c->link == DSIPC_LINK_DOWN && !c->free_pending)
		set_link(c, DSIPC_LINK_DOWN, error);
}

/* An attempt failed: 0 when another is scheduled, else error. */
static int attempt_failed(dsipc *c, int error)
{
	dsipc_reset_connection(c);
	c->link_error = error;
	if (c->reconnect && !c->blocking) {
		int64_t now = dsipc_now_ms(), at;

		c->attempt++;
		at = backoff_next(&c->backoff, c->attempt, c->lost_at, now,
		                  &c->seed);
		if (at >= 0) {
			c->deadline = at;
			set_link(c, DSIPC_LINK_WAITING, error);
			return 0;
		}
		dsipc_set_last_error(c, "gave up on dsd after %lld ms: %s",
		                     (long long)(now - c->lost_at),
		                     strerror(-error));
	}
	go_down(c, error, !c->blocking);
	return error;
}

#define STR_(x) #x
#define STR(x)  STR_(x)

static int try_connect(dsipc *c)
{
	struct ipc_msg m = {
	        .type = IPC_HELLO,
	        .has_code = true,
	        .code = IPC_PROTOCOL_VERSION,
	        .text = "libdsipc/" STR(DSIPC_VERSION_MAJOR) "." STR(
	                DSIPC_VERSION_MINOR) "." STR(DSIPC_VERSION_PATCH),
	};
	int fd = -1, r;

	r = open_socket(c->path, c->blocking, &fd);
	if (r < 0) {
		dsipc_set_last_error(c, "cannot connect to %s: %s", c->path,
		                     strerror(-r));
		return attempt_failed(c, r);
	}
	dsipc_reset_connection(c);
	c->fd = fd;
	c->deadline = dsipc_now_ms() + DSIPC_HELLO_TIMEOUT_MS;
	c->link = DSIPC_LINK_CONNECTING;
	r = dsipc_queue_msg(c, &m);
	if (r < 0)
		return attempt_failed(c, r);
	set_link(c, DSIPC_LINK_CONNECTING, 0);
	return 0;
}

int dsipc_link_start(dsipc *c, const char *path, bool blocking)
{
	char *p;

	if (c->fd >= 0 || c->link == DSIPC_LINK_CONNECTING)
		return -EISCONN;
	if (c->link == DSIPC_LINK_WAITING)
		return -EALREADY;
	if (!path) {
		path = getenv("DSD_SOCKET");
		if (!path || !*path)
			path = DSIPC_DEFAULT_SOCKET;
	}
	p = strdup(path);
	if (!p)
		return -ENOMEM;
	free(c->path);
	c->path = p;
	c->blocking = blocking;
	c->attempt = 0;
	c->lost_at = dsipc_now_ms();
	c->report_error = 0;
	return try_connect(c);
}

void dsipc_link_hello(dsipc *c, const struct ipc_msg *m)
{
	int r;

	if (m->type == IPC_ERROR) {
		/* The daemon refused our HELLO. */
		if (m->text)
			dsipc_set_last_error(c, "%s", m->text);
		(void)attempt_failed(c, dsipc_errno_of(m));
		return;
	}
	if (!m->has_code || m->code != IPC_PROTOCOL_VERSION) {
		dsipc_set_last_error(c,
		                     "dsd speaks protocol version %lld, this "
		                     "library %d",
		                     m->has_code ? (long long)m->code : -1LL,
		                     IPC_PROTOCOL_VERSION);
		(void)attempt_failed(c, -EPROTONOSUPPORT);
		return;
	}
	c->connected = true;
	c->link = DSIPC_LINK_UP;
	c->attempt = 0;
	r = dsipc_resend_registrations(c);
	if (r == 0)
		r = dsipc_link_pump(c);
	if (r < 0) {
		(void)dsipc_link_lost(c, r);
		return;
	}
	set_link(c, DSIPC_LINK_UP, 0);
}

/* Emits dsd has not answered (or refused while stopping), in the order
 * they were sent, back to the head of the buffer; the rest fail. */
static void requeue(dsipc *c, int error)
{
	struct req *q = c->reqs, *next, *head = NULL, *tail = NULL;

	c->reqs = c->reqs_tail = NULL;
	c->n_reqs = 0;
	for (; q; q = next) {
		next = q->next;
		q->next = NULL;
		if (q->type != IPC_EMIT || !q->frame) {
			dsipc_req_fail(c, q, error);
			continue;
		}
		q->held = false;
		if (tail)
			tail->next = q;
		else
			head = q;
		tail = q;
		c->used.emits++;
		c->used.bytes += q->frame_len;
	}
	if (!head)
		return;
	tail->next = c->buf;
	if (!c->buf)
		c->buf_tail = tail;
	c->buf = head;
}

int dsipc_link_lost(dsipc *c, int error)
{
	if (c->link == DSIPC_LINK_CONNECTING)
		return attempt_failed(c, error);
	dsipc_reset_connection(c);
	if (c->reconnect) {
		/* Set first: callbacks run by requeue() see the link down. */
		c->link = DSIPC_LINK_WAITING;
		c->link_error = error;
		c->lost_at = dsipc_now_ms();
		c->attempt = 0;
		c->deadline = c->lost_at; /* the first try at once */
		requeue(c, error);
		if (c->link == DSIPC_LINK_WAITING && !c->free_pending)
			set_link(c, DSIPC_LINK_WAITING, error);
		return 0;
	}
	c->link = DSIPC_LINK_DOWN;
	dsipc_fail_requests(c, error);
	/* A callback may have connected again. */
	if (c->link == DSIPC_LINK_DOWN && c->fd < 0 && !c->free_pending)
		go_down(c, error, false);
	return error;
}

int dsipc_link_tick(dsipc *c)
{
	int r;

	switch (c->link) {
	case DSIPC_LINK_DOWN:
		r = c->report_error ? c->report_error : -ENOTCONN;
		c->report_error = 0;
		return r;
	case DSIPC_LINK_WAITING:
		if (dsipc_now_ms() < c->deadline)
			return 0;
		return try_connect(c);
	case DSIPC_LINK_CONNECTING:
		if (dsipc_now_ms() < c->deadline)
			return 0;
		dsipc_set_last_error(c, "dsd did not answer HELLO");
		return attempt_failed(c, -ETIMEDOUT);
	case DSIPC_LINK_UP:
	default:
		return 0;
	}
}

int dsipc_link_timeout(dsipc *c)
{
	int64_t d;

	if (c->link != DSIPC_LINK_WAITING && c->link != DSIPC_LINK_CONNECTING)
		return -1;
	d = c->deadline - dsipc_now_ms();
	if (d < 0)
		return 0;
	return d > INT_MAX ? INT_MAX : (int)d;
}

bool dsipc_link_buffering(dsipc *c)
{
	return c->link == DSIPC_LINK_CONNECTING ||
	       c->link == DSIPC_LINK_WAITING ||
	       (c->link == DSIPC_LINK_UP && c->buf);
}

int dsipc_link_pump(dsipc *c)
{
	bool any = false;
	int r = 0;

	while (c->buf && c->connected && c->fd >= 0 &&
	       c->out.len < PUMP_OUTPUT && c->n_reqs < DSIPC_MAX_PENDING) {
		struct req *q = c->buf;

		r = dsipc_queue_frame(c, q->frame, q->frame_len);
		if (r < 0)
			break;
		any = true;
		c->buf = q->next;
		if (!c->buf)
			c->buf_tail = NULL;
		c->used.emits--;
		c->used.bytes -= q->frame_len;
		dsipc_req_pending(c, q);
	}
	if (any) {
		(void)dsipc_flush_output(c);
		dsipc_notify_events(c);
	}
	/* A full output is not an error: the rest waits in the buffer. */
	return r == -ENOBUFS ? 0 : r;
}

void dsipc_link_free(dsipc *c)
{
	struct req *q, *next;

	for (q = c->buf; q; q = next) {
		next = q->next;
		dsipc_req_free(q);
	}
	c->buf = c->buf_tail = NULL;
	free(c->path);
	c->path = NULL;
}

/* -- public -- */

DSIPC_EXPORT int dsipc_connect_async(dsipc *c, const char *path)
{
	int r;

	if (!c)
		return -EINVAL;
	if (c->free_pending)
		return -ECANCELED;
	r = dsipc_link_start(c, path, false);
	if (r < 0)
		c->report_error = 0; /* returned here */
	return dsipc_leave(c, r);
}

DSIPC_EXPORT int dsipc_set_reconnect(dsipc *c, int min_ms, int max_ms,
                                     int give_up_ms)
{
	if (!c || min_ms < 0 || (min_ms > 0 && max_ms < min_ms) ||
	    give_up_ms < -1)
		return -EINVAL;
	c->reconnect = min_ms > 0;
	c->backoff.min_ms = (unsigned)min_ms;
	c->backoff.max_ms = (unsigned)max_ms;
	c->backoff.give_up_ms = give_up_ms;
	return 0;
}

DSIPC_EXPORT int dsipc_set_buffer(dsipc *c, unsigned max_emits,
                                  size_t max_bytes)
{
	if (!c)
		return -EINVAL;
	c->bound.max_emits = max_emits;
	c->bound.max_bytes = max_bytes;
	return 0;
}

DSIPC_EXPORT int dsipc_get_buffered(dsipc *c)
{
	if (!c)
		return -EINVAL;
	return c->used.emits > INT_MAX ? INT_MAX : (int)c->used.emits;
}

DSIPC_EXPORT int dsipc_get_link(dsipc *c)
{
	if (!c)
		return -EINVAL;
	return c->link;
}

DSIPC_EXPORT int dsipc_get_timeout(dsipc *c, int *ret_ms)
{
	if (!c || !ret_ms)
		return -EINVAL;
	*ret_ms = dsipc_link_timeout(c);
	return 0;
}

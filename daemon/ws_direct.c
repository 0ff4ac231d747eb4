/* A ws:// connection on the main loop (see ws_direct.h). */
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/event.h>

#include "url.h"
#include "ws_deframe.h"
#include "ws_direct.h"
#include "ws_frame.h"
#include "ws_mask.h"
#include "ws_upgrade.h"

/* Bytes read at once: many small frames per recv() under load. */
#define READ_SIZE (64 * 1024)
/* Seconds the server gets to answer our close frame. */
#define CLOSE_GRACE_SECS 5
/* An output buffer this big is given back once it has drained. */
#define OUT_KEEP (256 * 1024)

enum state {
	ST_RESOLVING,
	ST_CONNECTING,
	ST_UPGRADING,
	ST_OPEN,
	ST_CLOSING, /* our close frame is queued: waiting for the server's */
	ST_DONE,    /* closed is due (ev_finish) */
};

/* getaddrinfo() in a thread of its own; shared by the thread and the link
 * until both let go (either may go first). */
struct resolve_job {
	pthread_mutex_t lock;
	int refs;
	int fd; /* the thread's end of the socketpair: one byte when done */
	char host[256];
	char port[8];
	struct addrinfo *res; /* under lock */
	int err;              /* getaddrinfo()'s, under lock */
};

struct ws_direct {
	struct event_base *base;
	const struct ws_direct_ops *ops;
	void *ud;
	enum state state;
	char host[256];
	uint16_t port;
	char path[1024];
	char reason[256]; /* the first one wins */

	struct resolve_job *job;
	int job_fd;
	struct event *ev_resolved;
	struct addrinfo *addrs, *next_addr;
	int connect_errno;

	int fd;
	struct event *ev_read, *ev_write, *ev_flush, *ev_finish, *ev_grace;
	bool flush_due;

	uint8_t *out; /* frames waiting for the socket: out[out_off..out_len) */
	size_t out_off, out_len, out_cap;
	bool refused; /* a send got -ENOBUFS: drained is due below half */
	size_t refused_limit;
	/* Bytes the socket took so far, and where the last PONG queued ends
	 * in that count: while it waits, a PING gets no second one; the
	 * newest PING's payload waits here instead (RFC 6455, 5.5.3: a PONG
	 * may answer only the most recent PING) and goes out once the
	 * socket has taken the waiting PONG. */
	uint64_t sent_total, pong_end;
	uint8_t ping[125];
	size_t ping_len;
	bool ping_due;

	char accept[WS_ACCEPT_SIZE];
	char *answer; /* the upgrade's answer so far */
	size_t answer_len;
	struct ws_deframe deframe;
	uint8_t *in;

	struct ws_masks masks;

	int busy;  /* inside a callback to the owner */
	bool dead; /* aborted meanwhile: freed once the callback returns */
};

static void set_reason(struct ws_direct *l, const char *fmt, ...)
        __attribute__((format(printf, 2, 3)));

static void set_reason(struct ws_direct *l, const char *fmt, ...)
{
	va_list ap;

	if (l->reason[0])
		return;
	va_start(ap, fmt);
	vsnprintf(l->reason, sizeof(l->reason), fmt, ap);
	va_end(ap);
}

/* ---- resolving ----------------------------------------------------------- */

static void job_unref(struct resolve_job *j)
{
	int refs;

	pthread_mutex_lock(&j->lock);
	refs = --j->refs;
	pthread_mutex_unlock(&j->lock);
	if (refs)
		return;
	if (j->res)
		freeaddrinfo(j->res);
	close(j->fd);
	pthread_mutex_destroy(&j->lock);
	free(j);
}

static void *resolve_thread(void *arg)
{
	struct resolve_job *j = arg;
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM,
	                         .ai_flags = AI_ADDRCONFIG};
	struct addrinfo *res = NULL;
	int err;

	err = getaddrinfo(j->host, j->port, &hints, &res);
	pthread_mutex_lock(&j->lock);
	j->res = res;
	j->err = err;
	pthread_mutex_unlock(&j->lock);
	/* The link may be gone (its end closed): no SIGPIPE for that. */
	(void)send(j->fd, "r", 1, MSG_NOSIGNAL);
	job_unref(j);
	return NULL;
}

static void try_connect(struct ws_direct *l);
static void finish(struct ws_direct *l);

static void on_resolved(evutil_socket_t fd, short what, void *arg)
{
	struct ws_direct *l = arg;
	struct resolve_job *j = l->job;
	int err;

	(void)fd;
	(void)what;
	pthread_mutex_lock(&j->lock);
	l->addrs = j->res;
	j->res = NULL;
	err = j->err;
	pthread_mutex_unlock(&j->lock);
	job_unref(j);
	l->job = NULL;
	event_free(l->ev_resolved);
	l->ev_resolved = NULL;
	close(l->job_fd);
	l->job_fd = -1;
	/* Closed in this same turn of the loop, before this ran: closed is
	 * due already, no connect. */
	if (l->state != ST_RESOLVING)
		return;
	if (err || !l->addrs) {
		set_reason(l, "connect to %s:%u failed: %s", l->host,
		           (unsigned)l->port,
		           err ? gai_strerror(err) : "no address");
		finish(l);
		return;
	}
	l->next_addr = l->addrs;
	try_connect(l);
}

/* A numeric address at once; a name in a thread (getaddrinfo() may wait
 * for DNS for seconds). */
static int resolve(struct ws_direct *l)
{
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM,
	                         .ai_flags = AI_NUMERICHOST};
	struct resolve_job *j;
	char port[8];
	pthread_attr_t attr;
	pthread_t th;
	sigset_t all, old;
	int sv[2], r;

	snprintf(port, sizeof(port), "%u", (unsigned)l->port);
	if (getaddrinfo(l->host, port, &hints, &l->addrs) == 0) {
		l->next_addr = l->addrs;
		return 1;
	}
	l->addrs = NULL;
	j = calloc(1, sizeof(*j));
	if (!j)
		return -ENOMEM;
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
		r = -errno;
		free(j);
		return r;
	}
	pthread_mutex_init(&j->lock, NULL);
	j->refs = 1; /* the link's; the thread's is taken below */
	j->fd = sv[1];
	snprintf(j->host, sizeof(j->host), "%s", l->host);
	snprintf(j->port, sizeof(j->port), "%s", port);
	l->job = j;
	l->job_fd = sv[0];
	l->ev_resolved = event_new(l->base, sv[0], EV_READ, on_resolved, l);
	if (!l->ev_resolved || event_add(l->ev_resolved, NULL) < 0)
		goto fail;
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	/* Signals stay with the main thread (libevent handles them). */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	j->refs = 2;
	r = pthread_create(&th, &attr, resolve_thread, j);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	pthread_attr_destroy(&attr);
	if (r) {
		j->refs = 1; /* the thread never took its reference */
		goto fail;
	}
	return 0;

fail:
	if (l->ev_resolved)
		event_free(l->ev_resolved);
	l->ev_resolved = NULL;
	close(l->job_fd);
	l->job_fd = -1;
	l->job = NULL;
	job_unref(j);
	return -ENOMEM;
}

/* ---- output -------------------------------------------------------------- */

static int out_reserve(struct ws_direct *l, size_t len)
{
	size_t cap;
	uint8_t *p;

	if (l->out_off > 0 && l->out_off == l->out_len)
		l->out_off = l->out_len = 0;
	if (l->out_len + len <= l->out_cap)
		return 0;
	/* Move what waits to the front before growing. */
	if (l->out_off > 0) {
		memmove(l->out, l->out + l->out_off, l->out_len - l->out_off);
		l->out_len -= l->out_off;
		l->out_off = 0;
		if (l->out_len + len <= l->out_cap)
			return 0;
	}
	cap = l->out_cap ? l->out_cap : 16 * 1024;
	while (cap < l->out_len + len)
		cap *= 2;
	p = realloc(l->out, cap);
	if (!p)
		return -ENOMEM;
	l->out = p;
	l->out_cap = cap;
	return 0;
}

/* The end of this loop iteration writes what was queued during it: one
 * send() for a burst. */
static void schedule_flush(struct ws_direct *l)
{
	if (l->flush_due)
		return;
	l->flush_due = true;
	event_active(l->ev_flush, 0, 0);
}

static int queue_frame(struct ws_direct *l, uint8_t opcode,
                       const uint8_t *payload, size_t len)
{
	const uint8_t *mask = ws_masks_next(&l->masks);

	if (!mask)
		return -EIO;
	if (out_reserve(l, ws_frame_size(len)) < 0)
		return -ENOMEM;
	l->out_len += ws_frame_write_op(l->out + l->out_len, opcode, payload,
	                                len, mask);
	schedule_flush(l);
	return 0;
}

static void queue_close(struct ws_direct *l, uint16_t code, const char *why)
{
	uint8_t payload[125];
	size_t n = strlen(why);

	if (n > 123) /* a control frame holds 125 bytes */
		n = 123;
	payload[0] = (uint8_t)(code >> 8);
	payload[1] = (uint8_t)code;
	memcpy(payload + 2, why, n);
	(void)queue_frame(l, WS_OP_CLOSE, payload, n + 2);
}

/* Writes what waits.  Returns 0, or -1 when the connection failed. */
static int write_out(struct ws_direct *l)
{
	while (l->out_off < l->out_len) {
		ssize_t n = send(l->fd, l->out + l->out_off,
		                 l->out_len - l->out_off, MSG_NOSIGNAL);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK) {
				event_add(l->ev_write, NULL);
				return 0;
			}
			set_reason(l, "connection lost (%s)", strerror(errno));
			return -1;
		}
		l->out_off += (size_t)n;
		l->sent_total += (uint64_t)n;
	}
	l->out_off = l->out_len = 0;
	if (l->out_cap > OUT_KEEP) {
		free(l->out);
		l->out = NULL;
		l->out_cap = 0;
	}
	return 0;
}

static void link_free(struct ws_direct *l);

/* After a write: drained when a refused sender may go on. */
/* The PONG of the newest PING, when no other PONG waits in the buffer. */
static void answer_ping(struct ws_direct *l, const uint8_t *data, size_t len)
{
	if (l->sent_total < l->pong_end) {
		memcpy(l->ping, data, len);
		l->ping_len = len;
		l->ping_due = true;
		return;
	}
	l->ping_due = false;
	if (queue_frame(l, WS_OP_PONG, data, len) == 0)
		l->pong_end = l->sent_total + ws_direct_backlog(l);
}

static void after_write(struct ws_direct *l)
{
	if (l->ping_due && l->state == ST_OPEN)
		answer_ping(l, l->ping, l->ping_len);
	if (!l->refused || l->state != ST_OPEN ||
	    ws_direct_backlog(l) > l->refused_limit / 2)
		return;
	l->refused = false;
	if (!l->ops->drained)
		return;
	l->busy++;
	l->ops->drained(l->ud);
	l->busy--;
}

/* Writes what waits, at the end of an iteration or when the socket takes
 * more: drained may follow, and an abort inside it frees the link here. */
static void write_pending(struct ws_direct *l)
{
	if (write_out(l) < 0) {
		finish(l);
		return;
	}
	after_write(l);
	if (l->dead && !l->busy)
		link_free(l);
}

static void on_flush(evutil_socket_t fd, short what, void *arg)
{
	struct ws_direct *l = arg;

	(void)fd;
	(void)what;
	l->flush_due = false;
	if (l->fd < 0 || l->state == ST_DONE)
		return;
	write_pending(l);
}

/* ---- the end ------------------------------------------------------------- */

static void drop_socket(struct ws_direct *l)
{
	if (l->fd < 0)
		return;
	event_del(l->ev_read);
	event_del(l->ev_write);
	event_del(l->ev_grace);
	close(l->fd);
	l->fd = -1;
}

/* The connection is over: closed runs from a callback of its own. */
static void finish(struct ws_direct *l)
{
	if (l->state == ST_DONE)
		return;
	l->state = ST_DONE;
	drop_socket(l);
	if (!l->reason[0])
		set_reason(l, "connection closed");
	event_active(l->ev_finish, 0, 0);
}

static void on_finish(evutil_socket_t fd, short what, void *arg)
{
	struct ws_direct *l = arg;

	(void)fd;
	(void)what;
	if (!l->dead && l->ops->closed) {
		l->busy++;
		l->ops->closed(l->reason, l->ud);
		l->busy--;
	}
	link_free(l);
}

static void on_grace(evutil_socket_t fd, short what, void *arg)
{
	struct ws_direct *l = arg;

	(void)fd;
	(void)what;
	/* The server never answered our close frame: the reason is ours. */
	finish(l);
}

/* Closes the socket once the close frame queued last is written (or at
 * once if the socket will not take it now). */
static void close_after_flush(struct ws_direct *l)
{
	if (l->fd >= 0)
		(void)write_out(l);
	finish(l);
}

/* ---- input --------------------------------------------------------------- */

static int on_frame(void *ctx, enum ws_what what, const uint8_t *data,
                    size_t len)
{
	struct ws_direct *l = ctx;

	switch (what) {
	case WS_MESSAGE:
		if (l->state != ST_OPEN)
			return 0; /* closing: what is still in flight is dropped
			           */
		l->busy++;
		l->ops->message(data, len, l->ud);
		l->busy--;
		/* A close started in the callback (ST_CLOSING) reads on: the
		 * rest of this read is the same stream, and the server's
		 * answer to our close frame may be in it. */
		return l->dead || l->state == ST_DONE ? 1 : 0;
	case WS_PING:
		/* One PONG waiting at most: a server that pings and does not
		 * read would otherwise grow the buffer without end. */
		if (l->state == ST_OPEN)
			answer_ping(l, data, len);
		return 0;
	case WS_PONG:
		return 0;
	case WS_CLOSE:
		if (l->state == ST_CLOSING) {
			/* The answer to ours (or the server's own, sent at the
			 * same time): the handshake is done once ours, which
			 * may still wait for this iteration's flush, is out. */
			close_after_flush(l);
			return 1;
		}
		if (!l->reason[0])
			ws_close_text(l->reason, sizeof(l->reason), data, len);
		/* Answer with the server's own code (RFC 6455, 5.5.1). */
		queue_close(
		        l, len >= 2 ? (uint16_t)(data[0] << 8 | data[1]) : 1000,
		        "");
		close_after_flush(l);
		return 1;
	}
	return 0;
}

static void deframe(struct ws_direct *l, const uint8_t *in, size_t len)
{
	int r = ws_deframe_feed(&l->deframe, in, len, on_frame, l);

	if (r < 0 && l->state != ST_DONE && !l->dead) {
		set_reason(l, "%s", l->deframe.why);
		/* Closing: ours is queued or sent; one close frame a side. */
		if (l->state == ST_CLOSING) {
			close_after_flush(l);
			return;
		}
		queue_close(l, l->deframe.close_code, l->deframe.why);
		close_after_flush(l);
	}
}

/* The answer to the upgrade; then the frames that came with it. */
static void on_answer(struct ws_direct *l, const uint8_t *in, size_t len)
{
	char why[200];
	size_t take;
	int r;

	if (!l->answer) {
		l->answer = malloc(WS_ANSWER_MAX);
		if (!l->answer) {
			set_reason(l, "out of memory");
			finish(l);
			return;
		}
	}
	take = WS_ANSWER_MAX - l->answer_len;
	if (take > len)
		take = len;
	memcpy(l->answer + l->answer_len, in, take);
	l->answer_len += take;
	r = ws_upgrade_answer(l->answer, l->answer_len, l->accept, why,
	                      sizeof(why));
	if (r == 0)
		return;
	if (r < 0) {
		set_reason(l, "connect to %s:%u failed: %s", l->host,
		           (unsigned)l->port, why);
		finish(l);
		return;
	}
	l->state = ST_OPEN;
	l->busy++;
	l->ops->opened(l->ud);
	l->busy--;
	/* Closing from the callback still reads what follows (on_frame()). */
	if (l->dead || l->state == ST_DONE)
		return;
	/* The answer's buffer is let go before the frames run callbacks. */
	{
		char *answer = l->answer;
		size_t rest = l->answer_len - (size_t)r;

		l->answer = NULL;
		l->answer_len = 0;
		if (rest)
			deframe(l, (const uint8_t *)answer + r, rest);
		free(answer);
	}
	if (!l->dead && l->state != ST_DONE && take < len)
		deframe(l, in + take, len - take);
}

static void on_read(evutil_socket_t fd, short what, void *arg)
{
	struct ws_direct *l = arg;
	ssize_t n;

	(void)what;
	n = recv(fd, l->in, READ_SIZE, 0);
	if (n < 0 &&
	    (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
		return;
	if (n <= 0) {
		if (l->state == ST_UPGRADING)
			set_reason(l, "closed before the WebSocket handshake "
			              "completed");
		else
			set_reason(l, "connection lost");
		finish(l);
		return;
	}
	l->busy++;
	if (l->state == ST_UPGRADING)
		on_answer(l, l->in, (size_t)n);
	else if (l->state == ST_OPEN || l->state == ST_CLOSING)
		deframe(l, l->in, (size_t)n);
	l->busy--;
	if (l->dead && !l->busy)
		link_free(l);
}

/* ---- connecting ---------------------------------------------------------- */

static int start_upgrade(struct ws_direct *l)
{
	char req[WS_REQUEST_MAX], key[WS_KEY_SIZE];
	uint8_t nonce[16];
	int n;

	if (getrandom(nonce, sizeof(nonce), 0) != (ssize_t)sizeof(nonce)) {
		set_reason(l, "no random");
		return -1;
	}
	ws_upgrade_key(nonce, key);
	ws_upgrade_accept(key, l->accept);
	n = ws_upgrade_request(req, sizeof(req), l->host, l->port, false,
	                       l->path, key);
	if (n < 0 || out_reserve(l, (size_t)n) < 0) {
		set_reason(l, "WebSocket upgrade request too long");
		return -1;
	}
	memcpy(l->out + l->out_len, req, (size_t)n);
	l->out_len += (size_t)n;
	l->state = ST_UPGRADING;
	if (event_add(l->ev_read, NULL) < 0)
		return -1;
	return write_out(l);
}

static void on_writable(evutil_socket_t fd, short what, void *arg)
{
	struct ws_direct *l = arg;
	int err = 0;
	socklen_t elen = sizeof(err);

	(void)what;
	if (l->state == ST_CONNECTING) {
		if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &elen) < 0)
			err = errno;
		if (err) {
			l->connect_errno = err;
			drop_socket(l);
			try_connect(l);
			return;
		}
		if (start_upgrade(l) < 0)
			finish(l);
		return;
	}
	write_pending(l);
}

/* The next address of the list, until one takes the connect. */
static void try_connect(struct ws_direct *l)
{
	struct addrinfo *ai;
	int one = 1, fd;

	while ((ai = l->next_addr) != NULL) {
		l->next_addr = ai->ai_next;
		fd = socket(ai->ai_family,
		            SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		if (fd < 0) {
			l->connect_errno = errno;
			continue;
		}
		/* Frames go out as they are written, batched by dsd. */
		(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one,
		                 sizeof(one));
		if (connect(fd, ai->ai_addr, ai->ai_addrlen) < 0 &&
		    errno != EINPROGRESS) {
			l->connect_errno = errno;
			close(fd);
			continue;
		}
		l->fd = fd;
		l->state = ST_CONNECTING;
		event_assign(l->ev_read, l->base, fd, EV_READ | EV_PERSIST,
		             on_read, l);
		event_assign(l->ev_write, l->base, fd, EV_WRITE, on_writable,
		             l);
		event_add(l->ev_write, NULL);
		return;
	}
	set_reason(
	        l, "connect to %s:%u failed: %s", l->host, (unsigned)l->port,
	        strerror(l->connect_errno ? l->connect_errno : EHOSTUNREACH));
	finish(l);
}

/* ---- API ----------------------------------------------------------------- */

static void link_free(struct ws_direct *l)
{
	drop_socket(l);
	if (l->ev_resolved)
		event_free(l->ev_resolved);
	if (l->job_fd >= 0)
		close(l->job_fd);
	if (l->job)
		job_unref(l->job);
	if (l->addrs)
		freeaddrinfo(l->addrs);
	/* Any of them may be missing when ws_direct_open() ran out of
	 * memory, and libevent's event_free() does not take NULL. */
	if (l->ev_read)
		event_free(l->ev_read);
	if (l->ev_write)
		event_free(l->ev_write);
	if (l->ev_flush)
		event_free(l->ev_flush);
	if (l->ev_finish)
		event_free(l->ev_finish);
	if (l->ev_grace)
		event_free(l->ev_grace);
	ws_deframe_free(&l->deframe);
	free(l->answer);
	free(l->in);
	free(l->out);
	free(l);
}

int ws_direct_open(struct event_base *base, const struct url *u,
                   size_t max_message, const struct ws_direct_ops *ops,
                   void *ud, struct ws_direct **ret)
{
	struct ws_direct *l;
	int r;

	if (u->tls)
		return -EINVAL;
	l = calloc(1, sizeof(*l));
	if (!l)
		return -ENOMEM;
	l->base = base;
	l->ops = ops;
	l->ud = ud;
	l->fd = -1;
	l->job_fd = -1;
	ws_masks_init(&l->masks);
	snprintf(l->host, sizeof(l->host), "%s", u->host);
	snprintf(l->path, sizeof(l->path), "%s", u->path);
	l->port = u->port;
	ws_deframe_init(&l->deframe, max_message);
	l->in = malloc(READ_SIZE);
	/* Assigned to the socket in try_connect(). */
	l->ev_read = event_new(base, -1, 0, on_read, l);
	l->ev_write = event_new(base, -1, 0, on_writable, l);
	l->ev_flush = event_new(base, -1, 0, on_flush, l);
	l->ev_finish = event_new(base, -1, 0, on_finish, l);
	l->ev_grace = evtimer_new(base, on_grace, l);
	if (!l->in || !l->ev_read || !l->ev_write || !l->ev_flush ||
	    !l->ev_finish || !l->ev_grace) {
		link_free(l);
		return -ENOMEM;
	}
	l->state = ST_RESOLVING;
	r = resolve(l);
	if (r < 0) {
		link_free(l);
		return r;
	}
	if (r == 1)
		try_connect(l);
	*ret = l;
	return 0;
}

int ws_direct_send(struct ws_direct *l, const uint8_t *data, size_t len,
                   size_t limit)
{
	if (l->state != ST_OPEN)
		return -ENOTCONN;
	if (ws_direct_backlog(l) + len > limit) {
		l->refused = true;
		l->refused_limit = limit;
		return -ENOBUFS;
	}
	return queue_frame(l, WS_OP_BINARY, data, len);
}

size_t ws_direct_backlog(const struct ws_direct *l)
{
	return l->out_len - l->out_off;
}

void ws_direct_close(struct ws_direct *l, uint16_t code, const char *reason)
{
	struct timeval grace = {.tv_sec = CLOSE_GRACE_SECS};

	if (l->state == ST_DONE || l->state == ST_CLOSING)
		return;
	set_reason(l, "%s", reason);
	if (l->state != ST_OPEN) {
		finish(l);
		return;
	}
	l->state = ST_CLOSING;
	queue_close(l, code, reason);
	evtimer_add(l->ev_grace, &grace);
}

void ws_direct_abort(struct ws_direct *l)
{
	if (!l)
		return;
	/* Closing: its close frame may still wait for the end of the loop
	 * iteration. */
	if ((l->state == ST_OPEN || l->state == ST_CLOSING) && l->fd >= 0) {
		if (l->state == ST_OPEN)
			queue_close(l, 1001, "going away");
		(void)write_out(l);
	}
	l->dead = true;
	if (l->busy) {
		drop_socket(l);
		return;
	}
	link_free(l);
}

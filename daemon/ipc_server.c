/*
 * The IPC server: Unix socket, accept, per-client framing and buffers.
 *
 * Why it looks the way it does:
 * - Every socket is non-blocking and every write is send(MSG_NOSIGNAL), so
 *   one client that stops reading can delay nobody: its output piles up in
 *   its own bounded buffer, and when that is full it is dropped.
 * - Input is bounded by one maximum frame; the length prefix is checked
 *   (ipc_frame_peek) as soon as the header is in, before waiting for the
 *   body, so an absurd length closes the client at once.
 * - A client is never freed inside a call chain that may still touch it:
 *   closing moves it to a dead list and activates a reap event; the reap
 *   runs from the loop, calls disconnected, then frees.
 * - Memory is bounded twice: per client (one input frame, client_out_limit
 *   of output) and for all clients together (total_buffer_limit, counted by
 *   buffer capacity, which is what the process really holds).  Past the
 *   total, the client holding the most is dropped: with many readers that
 *   stopped reading, the slowest goes first and the others keep going.
 * - A peer that closes its end right after writing is still heard out:
 *   when a reply cannot be written (EPIPE), its output is dropped but its
 *   input is read to the end of file, so an app's last emits are not lost.
 * - Output is written once per loop iteration, not once per message: a
 *   message is appended to the client's buffer and the client put on the
 *   server's pending list; one event, run after the current callbacks,
 *   flushes every pending client with one send() each.  A burst of replies
 *   or of fan-out deliveries so costs one system call per client.  So
 *   that deferring changes no limit, a client whose buffer would pass its
 *   bound, or all clients' buffers the total, is flushed first and only
 *   then judged, as if each message had been written at once; a buffer
 *   past FLUSH_AT is flushed at once.
 * - No logging here: reasons go to the callbacks, the daemon logs them.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <event2/event.h>

#include "ipc_listen.h"
#include "ipc_server.h"
#include "ipc_reader.h"
#include "ipcproto.h"

/* One recv at most this big per readable event: fairness between clients. */
#define READ_CHUNK (64 * 1024)
/*
 * At most this many requests of one client per turn; the rest wait in its
 * input buffer until every other ready client had its turn.  64 KiB holds
 * about a thousand small emits: served in one go, they kept a light app's
 * single request waiting for milliseconds (docs/fairness.md).
 */
#define DISPATCH_BUDGET 64
#define ACCEPT_BURST    16
/* Output this big is written at once instead of at the end of the loop
 * iteration: buffers stay small while a burst is being answered. */
#define FLUSH_AT     (64 * 1024)
#define REASON_MAX   160
#define NAME_MAX_LEN 128

/* meson passes the project version to every file */
#ifdef PACKAGE_VERSION
#define DEFAULT_NAME "dsd " PACKAGE_VERSION
#else
#define DEFAULT_NAME "dsd"
#endif

struct ipc_client {
	struct ipc_server *srv;
	LIST_ENTRY(ipc_client) entry; /* on srv->live or srv->dead */
	int fd;
	unsigned id;
	struct event *rev, *wev;
	struct event *hello_ev; /* until HELLO: a slot held by a silent
	                           connection is given back */
	struct ipc_reader in;
	struct ipc_buf out;
	bool hello_done;
	bool closing;
	bool out_broken; /* the peer cannot read any more: output dropped */
	bool backlog;    /* requests left in `in` after its last turn */
	bool input_held; /* ipc_client_hold_input(): not read or served */
	bool pending;    /* on srv->pending: output to write this iteration */
	TAILQ_ENTRY(ipc_client) pending_entry;
	enum ipc_close_reason why;
	uint64_t held;    /* in.cap + out.cap, as counted in srv->held */
	uint64_t stalled; /* when its output last stopped draining (srv->seq),
	                     0 while it drains */
	char reason[REASON_MAX];
	char name[NAME_MAX_LEN];
	void *data;
};

struct ipc_server {
	struct event_base *base;
	int fd; /* listener.fd once listening, else -1 */
	char *path;
	struct ipc_listener listener;
	struct event *accept_ev;
	struct event *retry_ev; /* accept paused after EMFILE and friends */
	struct event *reap_ev;
	struct event *flush_ev; /* writes the pending clients' output */
	TAILQ_HEAD(, ipc_client) pending;
	struct ipc_server_limits lim;
	struct ipc_server_callbacks cb;
	void *userdata;
	char *name;
	LIST_HEAD(, ipc_client) live, dead;
	size_t nlive;
	unsigned next_id;
	uint64_t held;        /* sum of held over live clients */
	uint64_t over_budget; /* clients dropped to keep held in bounds */
	uint64_t seq;         /* orders the moments clients stalled */
};

/* Closing is deferred (see reap); the text is for the log. */
static void close_why(struct ipc_client *c, enum ipc_close_reason why,
                      const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));

/* ---- memory ---- */

/* An empty buffer goes: thousands of quiet clients must not each keep
 * what one burst needed (64 KiB a client once exhausted the total budget
 * with a thousand clients, and the slowest healthy one was dropped). */
static void shrink(struct ipc_buf *b)
{
	if (b->len == 0 && b->cap > 0)
		ipc_buf_free(b);
}

/* Brings srv->held up to date after c's buffers grew or shrank.  A closing
 * client counts as nothing: its buffers go at the next reap. */
static void account(struct ipc_client *c)
{
	uint64_t now =
	        c->closing ? 0
	                   : (uint64_t)ipc_reader_capacity(&c->in) + c->out.cap;

	c->srv->held = c->srv->held - c->held + now;
	c->held = now;
}

/* The slowest reader: the one whose output has waited longest for its
 * socket; failing that (nobody has output waiting), the one holding most. */
static struct ipc_client *slowest(const struct ipc_server *s)
{
	struct ipc_client *best = NULL, *c;

	LIST_FOREACH(c, &s->live, entry)
	{
		if (best == NULL)
			best = c;
		else if (c->stalled &&
		         (!best->stalled || c->stalled < best->stalled))
			best = c;
		else if (!c->stalled && !best->stalled && c->held > best->held)
			best = c;
	}
	return best;
}

static void drop_over_budget(struct ipc_client *c)
{
	struct ipc_server *s = c->srv;
	char why[REASON_MAX];
	struct ipc_msg e = {
	        .type = IPC_ERROR, .has_code = true, .code = -ENOBUFS};

	snprintf(why, sizeof(why),
	         "slow reader: local clients' buffers over %llu bytes, "
	         "this client was the slowest (holding %llu)",
	         (unsigned long long)s->lim.total_buffer_limit,
	         (unsigned long long)c->held);
	/* Its backlog will never be read: the memory goes now, not at the
	 * next reap, and the last try at close carries only the reason. */
	ipc_buf_free(&c->out);
	e.text = why;
	(void)ipc_encode(&c->out, &e);
	s->over_budget++;
	close_why(c, IPC_CLOSE_OVER_BUDGET, "%s", why);
}

static void flush_pending(struct ipc_server *s);

/* Drops the heaviest clients until all of them together fit again.  Output
 * not yet written only because writes wait for the end of the loop
 * iteration is written first: only what the sockets refuse counts. */
static void enforce_budget(struct ipc_server *s)
{
	if (s->held > s->lim.total_buffer_limit)
		flush_pending(s);
	while (s->held > s->lim.total_buffer_limit) {
		struct ipc_client *c = slowest(s);

		if (c == NULL)
			break;
		drop_over_budget(c);
	}
}

/* ---- output ---- */

/* The peer closed its end: nothing we write will be read, but what it
 * wrote before closing is still to be handled (read until end of file). */
static void output_broken(struct ipc_client *c)
{
	c->out_broken = true;
	event_del(c->wev);
	ipc_buf_free(&c->out);
	account(c);
}

/* Writes what the socket takes now; arms EV_WRITE for the rest. */
static void flush(struct ipc_client *c)
{
	while (c->out.len > 0) {
		ssize_t n = send(c->fd, c->out.data, c->out.len,
		                 MSG_NOSIGNAL | MSG_DONTWAIT);

		if (n > 0) {
			ipc_buf_consume(&c->out, (size_t)n);
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			if (!c->stalled)
				c->stalled = ++c->srv->seq;
			if (!c->closing)
				event_add(c->wev, NULL);
			return;
		}
		if (n < 0 && (errno == EPIPE || errno == ECONNRESET) &&
		    !c->closing) {
			output_broken(c);
			return;
		}
		c->out.len = 0;
		close_why(c, IPC_CLOSE_IO_ERROR, "write error: %s",
		          strerror(errno));
		return;
	}
	c->stalled = 0;
	event_del(c->wev);
	shrink(&c->out);
	if (!c->closing)
		account(c);
}

static void on_write(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	flush(arg);
}

static void unpend(struct ipc_client *c)
{
	if (!c->pending)
		return;
	c->pending = false;
	TAILQ_REMOVE(&c->srv->pending, c, pending_entry);
}

/* Writes the output of every client that has some waiting for the end of
 * the loop iteration. */
static void flush_pending(struct ipc_server *s)
{
	struct ipc_client *c;

	while ((c = TAILQ_FIRST(&s->pending)) != NULL) {
		unpend(c);
		if (!c->closing)
			flush(c);
	}
}

static void on_flush(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	flush_pending(arg);
}

/* c's output grew: written at the end of this loop iteration, or now when
 * it is big.  A stalled client (EV_WRITE armed) waits for its socket,
 * which keeps the order. */
static void schedule(struct ipc_client *c)
{
	struct ipc_server *s = c->srv;

	if (c->stalled)
		return;
	if (c->out.len >= FLUSH_AT) {
		unpend(c);
		flush(c);
		return;
	}
	if (c->pending)
		return;
	c->pending = true;
	if (TAILQ_EMPTY(&s->pending))
		event_active(s->flush_ev, 0, 0);
	TAILQ_INSERT_TAIL(&s->pending, c, pending_entry);
}

/* Appends one message with put (an encoder, or a copy of a frame encoded
 * already).  A buffer that would pass its bound is written out first if
 * it only waited for the end of the loop iteration: the client is a slow
 * reader only when its socket does not take the backlog. */
static int append(struct ipc_client *c,
                  int (*put)(struct ipc_buf *b, const void *arg),
                  const void *arg)
{
	int r;

	if (c->closing)
		return -ENOTCONN;
	if (c->out_broken)
		return 0;
	r = put(&c->out, arg);
	if (r == -ENOBUFS && c->pending) {
		unpend(c);
		flush(c);
		if (c->closing)
			return -ENOTCONN;
		if (c->out_broken)
			return 0;
		r = put(&c->out, arg);
	}
	if (r == -ENOBUFS) {
		/* Nothing more of it will be read: do not flush it at close. */
		c->out.len = 0;
		close_why(c, IPC_CLOSE_SLOW_READER,
		          "slow reader: output buffer over %zu bytes",
		          c->out.limit);
		return r;
	}
	if (r < 0)
		return r;
	account(c);
	enforce_budget(c->srv);
	if (c->closing)
		return -ENOBUFS;
	schedule(c);
	return 0;
}

static int put_msg(struct ipc_buf *b, const void *arg)
{
	return ipc_encode(b, arg);
}

struct frame {
	const uint8_t *data;
	size_t len;
};

static int put_frame(struct ipc_buf *b, const void *arg)
{
	const struct frame *f = arg;
	int r = ipc_buf_reserve(b, f->len);

	if (r < 0)
		return r;
	memcpy(b->data + b->len, f->data, f->len);
	b->len += f->len;
	return 0;
}

int ipc_client_send(struct ipc_client *c, const struct ipc_msg *m)
{
	return append(c, put_msg, m);
}

int ipc_client_send_frame(struct ipc_client *c, const uint8_t *frame,
                          size_t len)
{
	struct frame f = {.data = frame, .len = len};

	return append(c, put_frame, &f);
}

int ipc_client_reply_ok(struct ipc_client *c, uint32_t id)
{
	struct ipc_msg r = {.type = IPC_OK, .has_id = true, .id = id};

	return ipc_client_send(c, &r);
}

int ipc_client_reply_error(struct ipc_client *c, uint32_t id, int code,
                           const char *text)
{
	struct ipc_msg e = {.type = IPC_ERROR,
	                    .has_id = true,
	                    .id = id,
	                    .has_code = true,
	                    .code = code,
	                    .text = text};

	return ipc_client_send(c, &e);
}

/* An ERROR for a request that may carry no id (a bad HELLO). */
static void send_error(struct ipc_client *c, const struct ipc_msg *req,
                       int code, const char *text)
{
	struct ipc_msg e = {.type = IPC_ERROR,
	                    .has_id = req && req->has_id,
	                    .id = req && req->has_id ? req->id : 0,
	                    .has_code = true,
	                    .code = code,
	                    .text = text};

	(void)ipc_client_send(c, &e);
}

/* ---- closing and reaping ---- */

static void close_why(struct ipc_client *c, enum ipc_close_reason why,
                      const char *fmt, ...)
{
	struct ipc_server *s = c->srv;
	va_list ap;

	if (c->closing)
		return;
	c->closing = true;
	c->why = why;
	va_start(ap, fmt);
	vsnprintf(c->reason, sizeof(c->reason), fmt, ap);
	va_end(ap);
	shrink(&c->out);
	event_del(c->rev);
	event_del(c->wev);
	unpend(c);
	LIST_REMOVE(c, entry);
	s->nlive--;
	account(c);
	LIST_INSERT_HEAD(&s->dead, c, entry);
	event_active(s->reap_ev, 0, 0);
}

void ipc_client_close(struct ipc_client *c, const char *reason)
{
	close_why(c, IPC_CLOSE_BY_DAEMON, "%s", reason ? reason : "");
}

static void client_free(struct ipc_client *c)
{
	event_free(c->rev);
	event_free(c->wev);
	if (c->hello_ev)
		event_free(c->hello_ev);
	if (c->fd >= 0)
		close(c->fd);
	ipc_reader_free(&c->in);
	ipc_buf_free(&c->out);
	free(c);
}

static void reap(struct ipc_server *s)
{
	struct ipc_client *c;

	/* disconnected may close more clients: take them one at a time */
	while ((c = LIST_FIRST(&s->dead))) {
		LIST_REMOVE(c, entry);
		/* One last try for what is queued (an ERROR before close). */
		if (c->out.len)
			(void)send(c->fd, c->out.data, c->out.len,
			           MSG_NOSIGNAL | MSG_DONTWAIT);
		if (s->cb.disconnected)
			s->cb.disconnected(c, c->why, c->reason, s->userdata);
		client_free(c);
	}
}

static void on_reap(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	reap(arg);
}

/* ---- input ---- */

static void dispatch_hello(struct ipc_client *c, const struct ipc_msg *m)
{
	struct ipc_server *s = c->srv;
	struct ipc_msg ok = {.type = IPC_HELLO_OK,
	                     .has_code = true,
	                     .code = IPC_PROTOCOL_VERSION};
	char why[REASON_MAX];

	if (m->type != IPC_HELLO) {
		send_error(c, m, -EPROTO, "HELLO expected");
		close_why(c, IPC_CLOSE_PROTOCOL, "expected HELLO, got %s (%d)",
		          ipc_type_name(m->type), m->type);
		return;
	}
	if (!m->has_code || m->code != IPC_PROTOCOL_VERSION) {
		snprintf(why, sizeof(why),
		         "unsupported protocol version %lld (server speaks %d)",
		         m->has_code ? (long long)m->code : -1LL,
		         IPC_PROTOCOL_VERSION);
		send_error(c, m, -EPROTONOSUPPORT, why);
		close_why(c, IPC_CLOSE_PROTOCOL, "%s", why);
		return;
	}
	c->hello_done = true;
	event_del(c->hello_ev);
	if (m->text)
		snprintf(c->name, sizeof(c->name), "%s", m->text);
	ok.text = s->name;
	ok.has_id = m->has_id;
	ok.id = m->id;
	if (ipc_client_send(c, &ok) < 0)
		return;
	if (s->cb.connected)
		s->cb.connected(c, s->userdata);
}

static void dispatch(struct ipc_client *c, const struct ipc_msg *m)
{
	struct ipc_server *s = c->srv;
	int r;

	if (!c->hello_done) {
		dispatch_hello(c, m);
		return;
	}
	r = ipc_msg_check(m, IPC_DIR_C2S);
	if (r == 0 && m->type == IPC_HELLO)
		r = -EALREADY;
	if (r < 0) {
		/* Well-framed but not answerable: say so, keep the client. */
		char why[REASON_MAX];

		snprintf(why, sizeof(why), "%s (%d): %s",
		         ipc_type_name(m->type), m->type,
		         r == -EOPNOTSUPP ? "unknown message type"
		         : r == -EPROTO   ? "not a client message"
		         : r == -EALREADY ? "HELLO already done"
		                          : "missing or empty required field");
		send_error(c, m, r, why);
		return;
	}
	if (!s->cb.request) {
		send_error(c, m, -ENOSYS, "not implemented");
		return;
	}
	s->cb.request(c, m, s->userdata);
}

/* The input cannot be read on: ipc_reader's error, as a reason. */
static void close_input_error(struct ipc_client *c, int r)
{
	if (r == -ENOMEM)
		close_why(c, IPC_CLOSE_NO_MEMORY, "out of memory");
	else if (r == -EMSGSIZE)
		close_why(c, IPC_CLOSE_PROTOCOL, "frame length over the limit");
	else
		close_why(c, IPC_CLOSE_PROTOCOL, "malformed frame");
}

/* Reads what the socket holds into c->in; false once c is closing or when
 * nothing came. */
static bool read_more(struct ipc_client *c, evutil_socket_t fd)
{
	uint8_t *p;
	size_t room;
	ssize_t n;
	int r;

	r = ipc_reader_space(&c->in, READ_CHUNK, &p, &room);
	if (r < 0) {
		close_input_error(c, r);
		return false;
	}
	account(c);
	enforce_budget(c->srv);
	if (c->closing)
		return false;
	n = recv(fd, p, room < READ_CHUNK ? room : READ_CHUNK, MSG_DONTWAIT);
	if (n == 0) {
		close_why(c, IPC_CLOSE_PEER_LEFT, "closed by peer");
		return false;
	}
	if (n < 0) {
		if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
			return false;
		close_why(c, IPC_CLOSE_IO_ERROR, "read error: %s",
		          strerror(errno));
		return false;
	}
	ipc_reader_wrote(&c->in, (size_t)n);
	return true;
}

static void on_read(evutil_socket_t fd, short what, void *arg)
{
	struct ipc_client *c = arg;
	struct ipc_msg m;
	unsigned budget = DISPATCH_BUDGET;
	int r = 0;

	(void)what;
	if (c->closing || c->input_held)
		return;
	/* With requests left from its last turn, the socket waits: what is
	 * buffered is served first, and the buffer does not grow. */
	if (!c->backlog && !read_more(c, fd))
		return;
	c->backlog = false;
	/* Borrowed strings (no copy, no allocation per message): dispatch()
	 * is done with m, and whatever it keeps it copied, before the reader
	 * is touched again; a client closed meanwhile keeps its buffer until
	 * the reap. */
	while (!c->closing && (r = ipc_reader_next_borrowed(&c->in, &m)) == 1) {
		dispatch(c, &m);
		ipc_msg_clear(&m);
		if (c->input_held) {
			c->backlog = true; /* served on release */
			break;
		}
		if (--budget == 0) {
			/* Its turn is over: back after the others ready now. */
			c->backlog = true;
			event_active(c->rev, EV_READ, 0);
			break;
		}
	}
	if (c->closing)
		return;
	if (r < 0) {
		close_input_error(c, r);
		return;
	}
	if (!c->backlog)
		ipc_reader_trim(&c->in); /* as shrink(): nothing kept idle */
	account(c);
}

void ipc_client_hold_input(struct ipc_client *c, bool hold)
{
	if (c == NULL || c->closing || c->input_held == hold)
		return;
	c->input_held = hold;
	if (hold) {
		event_del(c->rev);
		return;
	}
	event_add(c->rev, NULL);
	/* What it sent meanwhile may all be in its buffer already. */
	c->backlog = true;
	event_active(c->rev, EV_READ, 0);
}

/* ---- accepting ---- */

static void reject(struct ipc_server *s, int fd, const struct ipc_peer *peer,
                   int code, const char *why)
{
	uint8_t raw[256];
	struct ipc_buf b = {
	        .data = raw, .cap = sizeof(raw), .limit = sizeof(raw)};
	struct ipc_msg e = {
	        .type = IPC_ERROR, .has_code = true, .code = code, .text = why};

	/* Best effort: a fresh socket's buffer takes a small frame. */
	if (ipc_encode(&b, &e) == 0)
		(void)send(fd, b.data, b.len, MSG_NOSIGNAL | MSG_DONTWAIT);
	close(fd);
	if (s->cb.rejected)
		s->cb.rejected(peer, why, s->userdata);
}

/*
 * The peer's credentials; *ret_groups is malloc'd (or NULL), the caller
 * frees it.  SO_PEERGROUPS (Linux 4.13) says how much room it needs with
 * ERANGE; without it, or out of memory, only the primary gid is known.
 */
static void on_hello_timeout(evutil_socket_t fd, short what, void *arg)
{
	struct ipc_client *c = arg;

	(void)fd;
	(void)what;
	if (c->hello_done)
		return;
	close_why(c, IPC_CLOSE_HELLO_TIMEOUT, "no HELLO within %u ms",
	          c->srv->lim.hello_timeout_ms);
}

static int client_new(struct ipc_server *s, int fd, struct ipc_client **ret)
{
	struct timeval tv = {
	        .tv_sec = s->lim.hello_timeout_ms / 1000,
	        .tv_usec = (suseconds_t)(s->lim.hello_timeout_ms % 1000) * 1000,
	};
	struct ipc_client *c = calloc(1, sizeof(*c));

	if (!c)
		return -ENOMEM;
	c->srv = s;
	c->fd = fd;
	c->id = s->next_id++;
	if (s->next_id == 0)
		s->next_id = 1;
	ipc_buf_init(&c->out, s->lim.client_out_limit);
	c->rev = event_new(s->base, fd, EV_READ | EV_PERSIST, on_read, c);
	c->wev = event_new(s->base, fd, EV_WRITE | EV_PERSIST, on_write, c);
	c->hello_ev = evtimer_new(s->base, on_hello_timeout, c);
	if (!c->rev || !c->wev || !c->hello_ev || event_add(c->rev, NULL) < 0 ||
	    evtimer_add(c->hello_ev, &tv) < 0) {
		if (c->rev)
			event_free(c->rev);
		if (c->wev)
			event_free(c->wev);
		if (c->hello_ev)
			event_free(c->hello_ev);
		free(c);
		return -ENOMEM;
	}
	LIST_INSERT_HEAD(&s->live, c, entry);
	s->nlive++;
	*ret = c;
	return 0;
}

/* Asks the admit callback; a refused client goes as if never accepted. */
static void admit(struct ipc_server *s, struct ipc_client *c,
                  const struct ipc_peer *peer)
{
	char why[REASON_MAX] = "";
	int fd = c->fd, r;

	if (!s->cb.admit)
		return;
	r = s->cb.admit(c, peer, why, sizeof(why), s->userdata);
	if (r >= 0)
		return;
	unpend(c);
	LIST_REMOVE(c, entry);
	s->nlive--;
	c->fd = -1; /* reject() says why, then closes it */
	client_free(c);
	reject(s, fd, peer, r, why[0] ? why : "refused");
}

static void on_retry(evutil_socket_t fd, short what, void *arg)
{
	struct ipc_server *s = arg;

	(void)fd;
	(void)what;
	event_add(s->accept_ev, NULL);
}

static void on_accept(evutil_socket_t lfd, short what, void *arg)
{
	struct ipc_server *s = arg;

	(void)what;
	for (int k = 0; k < ACCEPT_BURST; k++) {
		int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		struct ipc_peer peer;
		struct ipc_client *c;
		gid_t *groups;

		if (fd < 0) {
			char why[REASON_MAX];
			struct timeval one_s = {1, 0};

			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				return;
			/* EMFILE and the like: the listen socket would stay
			 * readable and spin the loop; pause accepting. */
			snprintf(why, sizeof(why),
			         "accept: %s; pausing for 1 s",
			         strerror(errno));
			event_del(s->accept_ev);
			evtimer_add(s->retry_ev, &one_s);
			if (s->cb.rejected)
				s->cb.rejected(NULL, why, s->userdata);
			return;
		}
		ipc_peer_read(fd, &peer, &groups);
		if (s->nlive >= s->lim.max_clients)
			reject(s, fd, &peer, -EUSERS, "too many clients");
		else if (client_new(s, fd, &c) < 0) {
			close(fd);
			if (s->cb.rejected)
				s->cb.rejected(&peer, "out of memory",
				               s->userdata);
		} else
			admit(s, c, &peer);
		free(groups);
	}
}

int ipc_server_new(struct event_base *base, const char *path, int passed_fd,
                   const struct ipc_server_limits *lim,
                   const struct ipc_server_callbacks *cb, void *userdata,
                   struct ipc_server **ret)
{
	struct ipc_server *s;
	int r;

	if (!base || !path || !cb || !ret)
		return -EINVAL;
	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->base = base;
	s->fd = -1;
	s->listener.fd = -1;
	s->cb = *cb;
	s->userdata = userdata;
	s->next_id = 1;
	TAILQ_INIT(&s->pending);
	if (lim)
		s->lim = *lim;
	if (!s->lim.max_clients)
		s->lim.max_clients = IPC_SERVER_DEFAULT_MAX_CLIENTS;
	if (!s->lim.client_out_limit)
		s->lim.client_out_limit = IPC_SERVER_DEFAULT_OUT_LIMIT;
	if (!s->lim.hello_timeout_ms)
		s->lim.hello_timeout_ms = IPC_SERVER_DEFAULT_HELLO_TIMEOUT_MS;
	if (!s->lim.total_buffer_limit)
		s->lim.total_buffer_limit = IPC_SERVER_DEFAULT_TOTAL_LIMIT;
	s->path = strdup(path);
	s->name = strdup(DEFAULT_NAME);
	if (!s->path || !s->name) {
		r = -ENOMEM;
		goto fail;
	}
	r = passed_fd >= 0 ? ipc_listen_adopt(passed_fd, &s->listener)
	                   : ipc_listen_bind(path, &s->listener);
	if (r < 0)
		goto fail;
	s->fd = s->listener.fd;
	s->accept_ev =
	        event_new(base, s->fd, EV_READ | EV_PERSIST, on_accept, s);
	s->retry_ev = evtimer_new(base, on_retry, s);
	s->reap_ev = event_new(base, -1, 0, on_reap, s);
	s->flush_ev = event_new(base, -1, 0, on_flush, s);
	if (!s->accept_ev || !s->retry_ev || !s->reap_ev || !s->flush_ev ||
	    event_add(s->accept_ev, NULL) < 0) {
		r = -ENOMEM;
		goto fail;
	}
	*ret = s;
	return 0;

fail:
	if (passed_fd >= 0 && s->fd < 0)
		s->listener.fd = -1; /* still the caller's */
	ipc_server_free(s);
	return r;
}

void ipc_server_free(struct ipc_server *s)
{
	if (!s)
		return;
	while (!LIST_EMPTY(&s->live))
		close_why(LIST_FIRST(&s->live), IPC_CLOSE_SHUTDOWN,
		          "server shutting down");
	reap(s);
	if (s->accept_ev)
		event_free(s->accept_ev);
	if (s->retry_ev)
		event_free(s->retry_ev);
	if (s->reap_ev)
		event_free(s->reap_ev);
	if (s->flush_ev)
		event_free(s->flush_ev);
	ipc_listen_close(&s->listener, s->path);
	free(s->path);
	free(s->name);
	free(s);
}

int ipc_server_set_name(struct ipc_server *s, const char *name)
{
	char *n = strdup(name);

	if (!n)
		return -ENOMEM;
	free(s->name);
	s->name = n;
	return 0;
}

size_t ipc_server_client_count(const struct ipc_server *s)
{
	return s->nlive;
}

void ipc_server_get_stats(const struct ipc_server *s,
                          struct ipc_server_stats *ret)
{
	*ret = (struct ipc_server_stats){
	        .clients = s->nlive,
	        .buffered = s->held,
	        .buffered_limit = s->lim.total_buffer_limit,
	        .over_budget = s->over_budget,
	};
}

/* ---- accessors ---- */

void ipc_client_set_data(struct ipc_client *c, void *p)
{
	c->data = p;
}

void *ipc_client_get_data(const struct ipc_client *c)
{
	return c->data;
}

unsigned ipc_client_id(const struct ipc_client *c)
{
	return c->id;
}

const char *ipc_client_name(const struct ipc_client *c)
{
	return c->name;
}

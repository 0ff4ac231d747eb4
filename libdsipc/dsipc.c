/*
 * libdsipc core: the handle, the connection to dsd, non-blocking reading
 * and writing, the dispatch of what dsd sends, slots and the state cache.
 *
 * Re-entrancy: callbacks may call any function, including blocking ones
 * that process input themselves and dsipc_free().  So a frame is taken out
 * of the input buffer before it is dispatched, slots freed during callbacks
 * are only marked and swept when the outermost call returns, and a free is
 * deferred until no callback runs (dsipc_leave()).
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include "dsipc-internal.h"

#define IN_CHUNK (64 * 1024)
/* Reads per dsipc_process() call, so one busy peer cannot starve a loop. */
#define READ_BUDGET 16

DSIPC_EXPORT int dsipc_new(dsipc **ret)
{
	dsipc *c;

	if (!ret)
		return -EINVAL;
	c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	c->fd = -1;
	c->next_id = 1;
	ipc_buf_init(&c->out, DSIPC_MAX_OUTPUT);
	*ret = c;
	return 0;
}

static void reset_connection(dsipc *c)
{
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
	c->connected = false;
	c->hello = HELLO_NONE;
	c->watch_sent = false;
	ipc_reader_free(&c->in);
	ipc_buf_free(&c->out);
	ipc_buf_init(&c->out, DSIPC_MAX_OUTPUT);
}

static void slot_release(struct dsipc_slot *s)
{
	free(s->name);
	free(s);
}

static void really_free(dsipc *c)
{
	struct dsipc_slot *s, *next;

	reset_connection(c);
	ipc_buf_free(&c->out);
	dsipc_free_requests(c);
	for (s = c->slots; s; s = next) {
		next = s->next;
		if (s->floating || s->removed) {
			slot_release(s);
		} else {
			/* The caller still holds it: leave it detached. */
			s->c = NULL;
			s->next = NULL;
		}
	}
	ipc_reader_free(&c->in);
	free(c->state);
	free(c->reason);
	free(c->last_error);
	free(c);
}

DSIPC_EXPORT dsipc *dsipc_free(dsipc *c)
{
	if (!c)
		return NULL;
	if (c->depth > 0) {
		c->free_pending = true;
		return NULL;
	}
	really_free(c);
	return NULL;
}

static void sweep_slots(dsipc *c)
{
	struct dsipc_slot **p = &c->slots, *s;

	c->slots_tail = NULL;
	while ((s = *p)) {
		if (s->removed) {
			*p = s->next;
			slot_release(s);
		} else {
			c->slots_tail = s;
			p = &s->next;
		}
	}
	c->slots_dirty = false;
}

/*
 * Every public call that may run callbacks returns through here: it does
 * the deferred free or sweep once no callback is on the stack.
 */
int dsipc_leave(dsipc *c, int r)
{
	if (c->free_pending) {
		if (c->depth == 0)
			really_free(c);
		return -ECANCELED;
	}
	if (c->depth == 0 && c->slots_dirty)
		sweep_slots(c);
	return r;
}

void dsipc_set_last_error(dsipc *c, const char *fmt, ...)
{
	va_list ap;
	char *s;

	va_start(ap, fmt);
	if (vasprintf(&s, fmt, ap) < 0)
		s = NULL;
	va_end(ap);
	/* Out of memory: the old message is better than a wrong one. */
	if (!s)
		return;
	free(c->last_error);
	c->last_error = s;
}

DSIPC_EXPORT const char *dsipc_last_error(dsipc *c)
{
	if (!c || !c->last_error)
		return "";
	return c->last_error;
}

/* A peer's error code, kept to the range of errno values. */
int dsipc_errno_of(const struct ipc_msg *m)
{
	if (m->has_code && m->code < 0 && m->code > -4096)
		return (int)m->code;
	return -EIO;
}

void dsipc_call_error(dsipc *c, const char *name, int code, const char *msg)
{
	if (!c->error_cb)
		return;
	c->depth++;
	c->error_cb(c, name ? name : "", code, msg ? msg : "",
	            c->error_userdata);
	c->depth--;
}

/* -- output -- */

static int flush_output(dsipc *c)
{
	while (c->out.len > 0) {
		ssize_t n = send(c->fd, c->out.data, c->out.len,
		                 MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				return 0;
			return -errno;
		}
		ipc_buf_consume(&c->out, (size_t)n);
	}
	return 0;
}

int dsipc_queue_msg(dsipc *c, const struct ipc_msg *m)
{
	int r;

	if (c->fd < 0)
		return -ENOTCONN;
	r = ipc_encode(&c->out, m);
	if (r < 0)
		return r;
	/*
	 * Write at once so a loop that only polls for input still makes
	 * progress.  A failure here is left for dsipc_process() to find, so
	 * the connection is only ever torn down in one place.
	 */
	(void)flush_output(c);
	if (c->out.len > 0 && c->events_cb)
		c->events_cb(c, POLLIN | POLLOUT, c->events_userdata);
	return 0;
}

/* -- dispatch -- */

static void on_state(dsipc *c, const struct ipc_msg *m)
{
	const char *reason = m->text ? m->text : "";
	struct dsipc_slot *s, *last;
	char *st, *rs;

	if (!m->state)
		return;
	st = strdup(m->state);
	rs = strdup(reason);
	if (st && rs) {
		free(c->state);
		free(c->reason);
		c->state = st;
		c->reason = rs;
		c->state_at = m->at;
		c->have_state = true;
	} else {
		free(st);
		free(rs);
	}
	/* Slots added by the callbacks below do not see this transition. */
	last = c->slots_tail;
	for (s = c->slots; s; s = s->next) {
		if (s->kind == SLOT_STATE && !s->removed) {
			c->depth++;
			s->state_cb(c, m->state, reason, m->at, s->userdata);
			c->depth--;
			if (c->free_pending)
				return;
		}
		if (s == last)
			break;
	}
}

static void on_event(dsipc *c, const struct ipc_msg *m)
{
	struct dsipc_slot *s, *last;

	if (!m->name)
		return;
	last = c->slots_tail;
	for (s = c->slots; s; s = s->next) {
		if (s->kind == SLOT_EVENT && !s->removed &&
		    strcmp(s->name, m->name) == 0) {
			c->depth++;
			s->event_cb(c, m->name, m->data, s->userdata);
			c->depth--;
			if (c->free_pending)
				return;
		}
		if (s == last)
			break;
	}
}

static void dispatch(dsipc *c, const struct ipc_msg *m)
{
	/* Unknown types (a newer daemon) and malformed ones are skipped;
	 * the protocol is meant to grow. */
	if (ipc_msg_check(m, IPC_DIR_S2C) < 0)
		return;
	switch (m->type) {
	case IPC_HELLO_OK:
		if (c->hello == HELLO_WAITING) {
			c->hello_version = m->has_code ? m->code : -1;
			c->hello_done = true;
		}
		break;
	case IPC_OK:
	case IPC_ERROR:
	case IPC_STATUS_REPLY:
	case IPC_EMIT_REPLY:
		if (m->type == IPC_ERROR && !m->has_id &&
		    c->hello == HELLO_WAITING) {
			/* The daemon refused our HELLO. */
			c->hello_error = dsipc_errno_of(m);
			if (m->text)
				dsipc_set_last_error(c, "%s", m->text);
			c->hello_done = true;
			break;
		}
		if (m->type == IPC_ERROR && !m->has_id) {
			/* About the connection (dsd usually closes next):
			 * keep the reason for dsipc_last_error(). */
			if (m->text)
				dsipc_set_last_error(c, "%s", m->text);
			dsipc_call_error(c, "", dsipc_errno_of(m), m->text);
			break;
		}
		dsipc_handle_reply(c, m);
		break;
	case IPC_STATE:
		on_state(c, m);
		break;
	case IPC_EVENT:
		on_event(c, m);
		break;
	case IPC_SUB_DENIED:
		dsipc_call_error(c, m->name, -EACCES, m->text);
		break;
	case IPC_EMIT_CONFIRMED:
		/* Only a dsipc_emit_sync() in progress asks for these. */
		if (c->confirm_waiting && m->id == c->confirm_id)
			c->confirmed = true;
		break;
	default:
		break;
	}
}

/* Dispatches every whole message buffered. */
static int dispatch_frames(dsipc *c)
{
	struct ipc_msg m;
	int r;

	while (c->fd >= 0 && (r = ipc_reader_next(&c->in, &m)) == 1) {
		dispatch(c, &m);
		ipc_msg_clear(&m);
		if (c->free_pending)
			return -ECANCELED;
	}
	if (c->fd >= 0 && r < 0)
		return r == -ENOMEM ? -ENOMEM : -EBADMSG;
	/* A nested call inside a callback may have lost the connection. */
	return c->fd >= 0 ? 0 : -ECONNRESET;
}

static int read_and_dispatch(dsipc *c)
{
	int r, budget;

	for (budget = READ_BUDGET; budget > 0; budget--) {
		uint8_t *p;
		size_t room;
		ssize_t n;

		r = ipc_reader_space(&c->in, IN_CHUNK, &p, &room);
		if (r < 0)
			return r == -ENOMEM ? -ENOMEM : -EBADMSG;
		n = recv(c->fd, p, room, MSG_DONTWAIT);
		if (n == 0)
			return -ECONNRESET;
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				return 0;
			return -errno;
		}
		ipc_reader_wrote(&c->in, (size_t)n);
		r = dispatch_frames(c);
		if (r < 0)
			return r;
	}
	return 0;
}

/* Closes the connection and fails what waited on it. */
static int connection_lost(dsipc *c, int error)
{
	reset_connection(c);
	dsipc_fail_requests(c, error);
	return error;
}

int dsipc_process_io(dsipc *c)
{
	int r;

	if (c->fd < 0)
		return -ENOTCONN;
	r = flush_output(c);
	if (r < 0) {
		/* dsd may have said why before it closed (a refused HELLO,
		 * "too many clients"): take that in before giving up. */
		int rr = read_and_dispatch(c);

		if (rr == -ECANCELED)
			return rr;
		if (c->fd < 0)
			return r;
		return connection_lost(c, r == -EPIPE ? -ECONNRESET : r);
	}
	r = read_and_dispatch(c);
	if (r == -ECANCELED)
		return r;
	if (r < 0)
		return c->fd >= 0 ? connection_lost(c, r) : r;
	r = flush_output(c);
	if (r < 0)
		return connection_lost(c, r == -EPIPE ? -ECONNRESET : r);
	return 0;
}

DSIPC_EXPORT int dsipc_process(dsipc *c)
{
	if (!c)
		return -EINVAL;
	if (c->free_pending)
		return -ECANCELED;
	return dsipc_leave(c, dsipc_process_io(c));
}

DSIPC_EXPORT int dsipc_get_fd(dsipc *c)
{
	if (!c)
		return -EINVAL;
	return c->fd >= 0 ? c->fd : -ENOTCONN;
}

DSIPC_EXPORT int dsipc_get_events(dsipc *c)
{
	if (!c || c->fd < 0)
		return 0;
	return POLLIN | (c->out.len > 0 ? POLLOUT : 0);
}

DSIPC_EXPORT void dsipc_set_events_cb(dsipc *c, dsipc_events_cb cb,
                                      void *userdata)
{
	if (!c)
		return;
	c->events_cb = cb;
	c->events_userdata = userdata;
}

DSIPC_EXPORT void dsipc_set_error_cb(dsipc *c, dsipc_error_cb cb,
                                     void *userdata)
{
	if (!c)
		return;
	c->error_cb = cb;
	c->error_userdata = userdata;
}

DSIPC_EXPORT int dsipc_is_connected(dsipc *c)
{
	return c && c->connected && c->fd >= 0;
}

/* -- connecting -- */

static int open_socket(const char *path, int *ret_fd)
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
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	/*
	 * A local connect waits only while the listener's backlog is full
	 * (dsd hung or swamped), and then without end unless the socket has
	 * a send timeout: bound it like the HELLO wait.  It then fails with
	 * EAGAIN.
	 */
	if (setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) < 0 ||
	    connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		int r = errno == EAGAIN ? -ETIMEDOUT : -errno;
		close(fd);
		return r;
	}
	tv.tv_sec = tv.tv_usec = 0;
	(void)setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	flags = fcntl(fd, F_GETFL);
	if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0) {
		int r = -errno;
		close(fd);
		return r;
	}
	*ret_fd = fd;
	return 0;
}

#define STR_(x) #x
#define STR(x)  STR_(x)

static int hello(dsipc *c)
{
	struct ipc_msg m = {
	        .type = IPC_HELLO,
	        .has_code = true,
	        .code = IPC_PROTOCOL_VERSION,
	        .text = "libdsipc/" STR(DSIPC_VERSION_MAJOR) "." STR(
	                DSIPC_VERSION_MINOR) "." STR(DSIPC_VERSION_PATCH),
	};
	int r;

	c->hello = HELLO_WAITING;
	c->hello_done = false;
	c->hello_error = 0;
	r = dsipc_queue_msg(c, &m);
	if (r < 0)
		return r;
	r = dsipc_wait_until(c, &c->hello_done, DSIPC_HELLO_TIMEOUT_MS, false);
	if (r < 0 && !c->hello_done) {
		if (r == -ETIMEDOUT)
			dsipc_set_last_error(c, "dsd did not answer HELLO");
		return r;
	}
	c->hello = HELLO_NONE;
	if (c->hello_error < 0)
		return c->hello_error;
	if (c->hello_version != IPC_PROTOCOL_VERSION) {
		dsipc_set_last_error(c,
		                     "dsd speaks protocol version %lld, this "
		                     "library %d",
		                     (long long)c->hello_version,
		                     IPC_PROTOCOL_VERSION);
		return -EPROTONOSUPPORT;
	}
	return 0;
}

DSIPC_EXPORT int dsipc_connect(dsipc *c, const char *path)
{
	int fd = -1, r;

	if (!c)
		return -EINVAL;
	if (c->free_pending)
		return -ECANCELED;
	if (c->fd >= 0)
		return -EISCONN;
	if (!path) {
		path = getenv("DSD_SOCKET");
		if (!path || !*path)
			path = DSIPC_DEFAULT_SOCKET;
	}
	r = open_socket(path, &fd);
	if (r < 0) {
		dsipc_set_last_error(c, "cannot connect to %s: %s", path,
		                     strerror(-r));
		return r;
	}
	reset_connection(c);
	c->fd = fd;
	r = hello(c);
	if (r == 0) {
		c->connected = true;
		r = dsipc_resend_registrations(c);
	}
	if (r < 0 && r != -ECANCELED)
		reset_connection(c);
	return dsipc_leave(c, r);
}

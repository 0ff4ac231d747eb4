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
#include <time.h>
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
	c->bound.max_emits = DSIPC_BUFFER_EMITS;
	c->bound.max_bytes = DSIPC_BUFFER_BYTES;
	c->backoff.min_ms = DSIPC_RECONNECT_MIN_MS;
	c->backoff.max_ms = DSIPC_RECONNECT_MAX_MS;
	c->backoff.give_up_ms = -1;
	c->seed = (uint32_t)getpid() ^ (uint32_t)(uintptr_t)c ^
	          (uint32_t)dsipc_now_ms();
	ipc_buf_init(&c->out, DSIPC_MAX_OUTPUT);
	*ret = c;
	return 0;
}

int64_t dsipc_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void dsipc_reset_connection(dsipc *c)
{
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
	c->connected = false;
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

	dsipc_reset_connection(c);
	ipc_buf_free(&c->out);
	dsipc_free_requests(c);
	dsipc_link_free(c);
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

int dsipc_flush_output(dsipc *c)
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
	(void)dsipc_flush_output(c);
	if (c->out.len > 0 && c->events_cb)
		c->events_cb(c, POLLIN | POLLOUT, c->events_userdata);
	return 0;
}

/* Appends an encoded frame; the caller flushes. */
int dsipc_queue_frame(dsipc *c, const uint8_t *frame, size_t len)
{
	int r;

	if (c->fd < 0)
		return -ENOTCONN;
	r = ipc_buf_reserve(&c->out, len);
	if (r < 0)
		return r;
	memcpy(c->out.data + c->out.len, frame, len);
	c->out.len += len;
	return 0;
}

void dsipc_notify_events(dsipc *c)
{
	if (c->events_cb)
		c->events_cb(c, dsipc_get_events(c), c->events_userdata);
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
		if (c->link == DSIPC_LINK_CONNECTING)
			dsipc_link_hello(c, m);
		break;
	case IPC_OK:
	case IPC_ERROR:
	case IPC_STATUS_REPLY:
	case IPC_EMIT_REPLY:
		if (m->type == IPC_ERROR && !m->has_id &&
		    c->link == DSIPC_LINK_CONNECTING) {
			dsipc_link_hello(c, m);
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

/* After the socket went away inside dispatching: what the caller hears. */
static int after_close(dsipc *c, int r)
{
	if (c->link != DSIPC_LINK_DOWN)
		return 0; /* trying again */
	if (c->report_error) {
		r = c->report_error;
		c->report_error = 0;
	}
	return r;
}

static int process_io(dsipc *c);

int dsipc_process_io(dsipc *c)
{
	int r = process_io(c);

	/* A failure is reported once, by the call that met it. */
	if (r < 0 && r == c->report_error)
		c->report_error = 0;
	return r;
}

static int process_io(dsipc *c)
{
	int r;

	r = dsipc_link_tick(c);
	if (c->free_pending)
		return -ECANCELED; /* a link callback freed the handle */
	if (r < 0 || c->fd < 0)
		return r;
	r = dsipc_flush_output(c);
	if (r < 0) {
		/* dsd may have said why before it closed (a refused HELLO,
		 * "too many clients"): take that in before giving up. */
		int rr = read_and_dispatch(c);

		if (rr == -ECANCELED)
			return rr;
		if (c->fd < 0)
			return after_close(c, r);
		return dsipc_link_lost(c, r == -EPIPE ? -ECONNRESET : r);
	}
	r = read_and_dispatch(c);
	if (r == -ECANCELED)
		return r;
	if (r < 0)
		return c->fd >= 0 ? dsipc_link_lost(c, r) : after_close(c, r);
	r = dsipc_link_pump(c);
	if (r == 0)
		r = dsipc_flush_output(c);
	if (r < 0)
		return dsipc_link_lost(c, r == -EPIPE ? -ECONNRESET : r);
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

DSIPC_EXPORT int dsipc_connect(dsipc *c, const char *path)
{
	int r;

	if (!c)
		return -EINVAL;
	if (c->free_pending)
		return -ECANCELED;
	r = dsipc_link_start(c, path, true);
	if (r == -EISCONN || r == -EALREADY || r == -ENOMEM) {
		c->blocking = false;
		return r;
	}
	/* HELLO's own deadline (dsipc_link_tick()) ends the wait. */
	while (r == 0 && c->link == DSIPC_LINK_CONNECTING && !c->free_pending) {
		struct pollfd p = {.fd = c->fd,
		                   .events = (short)dsipc_get_events(c)};

		if (poll(&p, 1, dsipc_link_timeout(c)) < 0 && errno != EINTR)
			r = -errno;
		else
			r = dsipc_process_io(c);
	}
	if (r < 0 && c->link == DSIPC_LINK_CONNECTING && !c->free_pending)
		(void)dsipc_link_lost(c, r);
	if (c->free_pending)
		r = -ECANCELED;
	c->blocking = false;
	if (r != -ECANCELED)
		r = c->link == DSIPC_LINK_UP ? 0 : c->link_error;
	return dsipc_leave(c, r);
}

DSIPC_EXPORT int dsipc_version(void)
{
	return DSIPC_VERSION;
}

/*
 * Requests that dsd answers: emit (three flavours), the control verbs, and
 * the blocking helpers that wait for replies or events.  Also the local
 * validation of event names and JSON, done before anything is queued so a
 * bad call fails at once and the wire never carries it.
 */
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "dsipc-internal.h"
#include "json_check.h"
#include "utf8.h"

/* -- pending requests -- */

void dsipc_req_free(struct req *q)
{
	free(q->name);
	free(q->frame);
	free(q);
}

void dsipc_req_pending(dsipc *c, struct req *q)
{
	q->next = NULL;
	if (c->reqs_tail)
		c->reqs_tail->next = q;
	else
		c->reqs = q;
	c->reqs_tail = q;
	c->n_reqs++;
}

/* A request numbered id, and the message m that carries it (m's strings
 * are the caller's); NULL when out of memory. */
static struct req *req_new(int type, uint32_t id, const char *name,
                           const char *data, dsipc_emit_cb cb, void *userdata,
                           struct waiter *w, bool keep_name, struct ipc_msg *m)
{
	struct req *q = calloc(1, sizeof(*q));

	if (!q)
		return NULL;
	if (keep_name && name) {
		q->name = strdup(name);
		if (!q->name) {
			free(q);
			return NULL;
		}
	}
	q->id = id;
	q->type = type;
	q->emit_cb = cb;
	q->userdata = userdata;
	q->w = w;
	*m = (struct ipc_msg){.type = type,
	                      .has_id = true,
	                      .id = id,
	                      .name = name,
	                      .data = data,
	                      .data_len = data ? strlen(data) : 0};
	if (w && w->want_confirm) {
		m->has_code = true;
		m->code = IPC_EMIT_WANT_CONFIRM;
	}
	return q;
}

int dsipc_send_request(dsipc *c, int type, const char *name, const char *data,
                       dsipc_emit_cb cb, void *userdata, struct waiter *w,
                       bool keep_name)
{
	struct ipc_msg m;
	struct req *q;
	int r;

	if (c->fd < 0 || !c->connected)
		return -ENOTCONN;
	if (c->n_reqs >= DSIPC_MAX_PENDING)
		return -ENOBUFS;
	q = req_new(type, c->next_id, name, data, cb, userdata, w, keep_name,
	            &m);
	if (!q)
		return -ENOMEM;
	c->next_id++;
	if (c->next_id == 0)
		c->next_id = 1;
	r = dsipc_queue_msg(c, &m);
	if (r < 0) {
		dsipc_req_free(q);
		return r;
	}
	dsipc_req_pending(c, q);
	return 0;
}

/*
 * An emit that may have to be sent again (reconnection on) or later (the
 * link is not up): encoded once, its frame kept until dsd answers.  Emits
 * go through the buffer whenever it holds any, so they keep their order.
 */
int dsipc_send_emit(dsipc *c, const char *name, const char *data,
                    dsipc_emit_cb cb, void *userdata, struct waiter *w,
                    bool keep_name, bool *ret_buffered)
{
	struct ipc_msg m;
	struct ipc_buf b;
	struct req *q;
	int r;

	if (c->link == DSIPC_LINK_UP && !c->reconnect && !c->buf) {
		*ret_buffered = false;
		return dsipc_send_request(c, IPC_EMIT, name, data, cb, userdata,
		                          w, keep_name);
	}
	if (c->link == DSIPC_LINK_DOWN)
		return -ENOTCONN;
	if (c->link != DSIPC_LINK_UP && c->bound.max_emits == 0)
		return -ENOTCONN;
	q = req_new(IPC_EMIT, c->next_id, name, data, cb, userdata, w,
	            keep_name, &m);
	if (!q)
		return -ENOMEM;
	ipc_buf_init(&b, IPC_HEADER_SIZE + IPC_MAX_FRAME);
	r = ipc_encode(&b, &m);
	if (r < 0) {
		ipc_buf_free(&b);
		dsipc_req_free(q);
		return r;
	}
	q->frame = b.data;
	q->frame_len = b.len;
	if (c->link == DSIPC_LINK_UP && !c->buf &&
	    c->n_reqs < DSIPC_MAX_PENDING) {
		r = dsipc_queue_frame(c, q->frame, q->frame_len);
		if (r < 0) {
			dsipc_req_free(q);
			return r;
		}
		(void)dsipc_flush_output(c);
		if (c->out.len > 0)
			dsipc_notify_events(c);
		dsipc_req_pending(c, q);
		*ret_buffered = false;
	} else {
		r = buffer_admit(&c->bound, &c->used, q->frame_len);
		if (r < 0) {
			dsipc_set_last_error(
			        c,
			        "dsd is away and the emit buffer is "
			        "full (%u emits, %zu bytes)",
			        c->used.emits, c->used.bytes);
			dsipc_req_free(q);
			return r;
		}
		if (c->buf_tail)
			c->buf_tail->next = q;
		else
			c->buf = q;
		c->buf_tail = q;
		c->used.emits++;
		c->used.bytes += q->frame_len;
		*ret_buffered = c->link != DSIPC_LINK_UP;
	}
	c->next_id++;
	if (c->next_id == 0)
		c->next_id = 1;
	return 0;
}

static struct req *req_take(dsipc *c, uint32_t id)
{
	struct req **p, *q, *prev = NULL;

	/* Replies come in order, so this is nearly always the head. */
	for (p = &c->reqs; (q = *p); prev = q, p = &q->next) {
		if (q->id != id)
			continue;
		*p = q->next;
		if (c->reqs_tail == q)
			c->reqs_tail = prev;
		c->n_reqs--;
		q->next = NULL;
		return q;
	}
	return NULL;
}

static struct req *req_find(dsipc *c, uint32_t id)
{
	struct req *q;

	for (q = c->reqs; q; q = q->next)
		if (q->id == id)
			return q;
	for (q = c->buf; q; q = q->next)
		if (q->id == id)
			return q;
	return NULL;
}

void dsipc_handle_reply(dsipc *c, const struct ipc_msg *m)
{
	int result = 0;
	struct req *q;

	if (!m->has_id)
		return;
	q = req_find(c, m->id);
	if (!q || q->held)
		return;
	if (m->type == IPC_ERROR && dsipc_errno_of(m) == -ESHUTDOWN &&
	    c->reconnect && q->frame) {
		/* dsd is stopping: this one goes to the next dsd, in
		 * order, when the link is lost. */
		q->held = true;
		return;
	}
	q = req_take(c, m->id);
	if (q->abandoned) {
		/* Its caller already returned -ETIMEDOUT (or the like): a late
		 * refusal is no news for the error callback. */
		dsipc_req_free(q);
		return;
	}
	if (m->type == IPC_ERROR)
		result = dsipc_errno_of(m);
	if (q->w) {
		q->w->done = true;
		q->w->result = result;
		q->w->code = m->has_code ? m->code : 0;
		if (m->text)
			q->w->text = strdup(m->text);
		if (m->text && !q->w->text && result == 0)
			q->w->result = -ENOMEM;
	} else if (q->emit_cb) {
		if (result == 0 && m->type == IPC_EMIT_REPLY && m->has_code)
			result = m->code == IPC_EMIT_QUEUED ? DSIPC_EMIT_QUEUED
			                                    : DSIPC_EMIT_SENT;
		c->depth++;
		q->emit_cb(c, result, m->text ? m->text : "", q->userdata);
		c->depth--;
	} else if (result < 0 && q->type != IPC_UNSUBSCRIBE) {
		/* Nobody waits for this one: SUBSCRIBE, WATCH, plain emit.  A
		 * failed UNSUBSCRIBE has no one left to tell. */
		dsipc_call_error(c, q->name, result, m->text);
	}
	dsipc_req_free(q);
}

void dsipc_req_fail(dsipc *c, struct req *q, int error)
{
	if (q->w) {
		q->w->done = true;
		q->w->result = error;
	} else if (q->abandoned || c->free_pending) {
		/* nobody to tell */
	} else if (q->emit_cb) {
		c->depth++;
		q->emit_cb(c, error, "", q->userdata);
		c->depth--;
	} else if (q->type == IPC_EMIT) {
		/* A plain emit that dsd may never have seen: never silent. */
		dsipc_call_error(c, q->name, error, "the link to dsd was lost");
	}
	dsipc_req_free(q);
}

void dsipc_fail_requests(dsipc *c, int error)
{
	struct req *q = c->reqs, *next;

	/* Detached first: callbacks may start new requests (or reconnect). */
	c->reqs = c->reqs_tail = NULL;
	c->n_reqs = 0;
	for (; q; q = next) {
		next = q->next;
		q->next = NULL;
		dsipc_req_fail(c, q, error);
	}
}

void dsipc_free_requests(dsipc *c)
{
	struct req *q, *next;

	for (q = c->reqs; q; q = next) {
		next = q->next;
		dsipc_req_free(q);
	}
	c->reqs = c->reqs_tail = NULL;
	c->n_reqs = 0;
}

/* -- waiting -- */

int dsipc_wait_until(dsipc *c, const bool *done, int timeout_ms, bool intr)
{
	int64_t deadline = timeout_ms < 0 ? -1 : dsipc_now_ms() + timeout_ms;

	for (;;) {
		struct pollfd p = {.fd = -1};
		int r, left = -1, link;

		if (done && *done)
			return 0;
		if (c->free_pending)
			return -ECANCELED;
		/* Waiting for the next try to reconnect is waiting too. */
		if (c->fd < 0 && c->link != DSIPC_LINK_WAITING)
			return dsipc_process_io(c);
		if (deadline >= 0) {
			int64_t d = deadline - dsipc_now_ms();
			if (d <= 0)
				return done ? -ETIMEDOUT : 0;
			left = d > 1000000 ? 1000000 : (int)d;
		}
		link = dsipc_link_timeout(c);
		if (link >= 0 && (left < 0 || link < left))
			left = link;
		if (c->fd >= 0) {
			p.fd = c->fd;
			p.events = (short)dsipc_get_events(c);
		}
		r = poll(&p, c->fd >= 0 ? 1 : 0, left);
		if (r < 0) {
			if (errno == EINTR && !intr)
				continue;
			return -errno;
		}
		if (r == 0 && dsipc_link_timeout(c) != 0)
			continue;
		r = dsipc_process_io(c);
		if (r < 0)
			return (done && *done) ? 0 : r;
	}
}

DSIPC_EXPORT int dsipc_wait(dsipc *c, int timeout_ms)
{
	if (!c)
		return -EINVAL;
	if (c->free_pending)
		return -ECANCELED;
	return dsipc_leave(c, dsipc_wait_until(c, NULL, timeout_ms, true));
}

/* Runs one request to its reply; the caller owns w->text afterwards. */
static int request_sync(dsipc *c, int type, const char *name, const char *data,
                        int timeout_ms, struct waiter *w)
{
	uint32_t id = c->next_id;
	bool buffered = false;
	int r;

	if (type == IPC_EMIT)
		r = dsipc_send_emit(c, name, data, NULL, NULL, w, false,
		                    &buffered);
	else
		r = dsipc_send_request(c, type, name, data, NULL, NULL, w,
		                       false);
	if (r < 0)
		return r;
	r = dsipc_wait_until(c, &w->done, timeout_ms, false);
	if (!w->done) {
		/* Giving up: a late reply must not write to our stack. */
		struct req *q = req_find(c, id);
		if (q) {
			q->w = NULL;
			q->abandoned = true;
		}
		if (r == -ETIMEDOUT)
			dsipc_set_last_error(c, "dsd did not answer in time");
		return r;
	}
	if (w->result < 0) {
		if (w->text)
			dsipc_set_last_error(c, "%s", w->text);
		else
			dsipc_set_last_error(c, "%s", strerror(-w->result));
		return w->result;
	}
	return 0;
}

static int control(dsipc *c, int type, int timeout_ms)
{
	struct waiter w = {0};
	int r;

	if (!c)
		return -EINVAL;
	if (c->free_pending)
		return -ECANCELED;
	r = request_sync(c, type, NULL, NULL, timeout_ms, &w);
	free(w.text);
	return dsipc_leave(c, r);
}

DSIPC_EXPORT int dsipc_pause(dsipc *c, int timeout_ms)
{
	return control(c, IPC_PAUSE, timeout_ms);
}

DSIPC_EXPORT int dsipc_resume(dsipc *c, int timeout_ms)
{
	return control(c, IPC_RESUME, timeout_ms);
}

DSIPC_EXPORT int dsipc_reload(dsipc *c, int timeout_ms)
{
	return control(c, IPC_RELOAD, timeout_ms);
}

DSIPC_EXPORT int dsipc_status_json(dsipc *c, int timeout_ms, char **ret_json)
{
	struct waiter w = {0};
	int r;

	if (!c || !ret_json)
		return -EINVAL;
	if (c->free_pending)
		return -ECANCELED;
	r = request_sync(c, IPC_STATUS, NULL, NULL, timeout_ms, &w);
	if (r == 0 && !w.text) {
		dsipc_set_last_error(c, "dsd sent an empty status");
		r = -EBADMSG;
	}
	r = dsipc_leave(c, r);
	if (r < 0) {
		free(w.text);
		return r;
	}
	*ret_json = w.text;
	return 0;
}

/* -- validation -- */

int dsipc_check_name(dsipc *c, const char *name)
{
	size_t len;

	if (!name || !*name) {
		dsipc_set_last_error(c, "event name is empty");
		return -EINVAL;
	}
	len = strnlen(name, DSIPC_MAX_NAME + 1);
	if (len > DSIPC_MAX_NAME) {
		dsipc_set_last_error(c, "event name is longer than %d bytes",
		                     DSIPC_MAX_NAME);
		return -EINVAL;
	}
	if (!utf8_valid(name, len)) {
		dsipc_set_last_error(c, "event name is not valid UTF-8");
		return -EINVAL;
	}
	return 0;
}

static int check_json(dsipc *c, const char *json)
{
	char why[200];

	if (!json)
		return 0;
	if (strnlen(json, DSIPC_MAX_DATA + 1) > DSIPC_MAX_DATA) {
		dsipc_set_last_error(c, "event data is larger than %d bytes",
		                     DSIPC_MAX_DATA);
		return -EMSGSIZE;
	}
	if (!json_check(json, strlen(json), why, sizeof(why))) {
		dsipc_set_last_error(c, "invalid JSON: %s", why);
		return -EINVAL;
	}
	return 0;
}

static int check_emit(dsipc *c, const char *name, const char *json)
{
	int r = dsipc_check_name(c, name);

	if (r < 0)
		return r;
	r = check_json(c, json);
	if (r < 0)
		return r;
	return c->connected || dsipc_link_buffering(c) ? 0 : -ENOTCONN;
}

/* -- emit -- */

DSIPC_EXPORT int dsipc_emit(dsipc *c, const char *name, const char *json)
{
	/* Without a callback a refusal goes to the error callback. */
	return dsipc_emit_async(c, name, json, NULL, NULL);
}

DSIPC_EXPORT int dsipc_emit_async(dsipc *c, const char *name, const char *json,
                                  dsipc_emit_cb cb, void *userdata)
{
	bool buffered;
	int r;

	if (!c)
		return -EINVAL;
	if (c->free_pending)
		return -ECANCELED;
	r = check_emit(c, name, json);
	if (r < 0)
		return r;
	/* Without a callback the name is kept, so a refusal reaching the
	 * error callback can say which event it was. */
	return dsipc_send_emit(c, name, json, cb, userdata, NULL, !cb,
	                       &buffered);
}

DSIPC_EXPORT int dsipc_emit_sync(dsipc *c, const char *name, const char *json,
                                 int timeout_ms, dsipc_emit_result *ret)
{
	struct waiter w = {.want_confirm = true};
	dsipc_emit_result res;
	int64_t start = dsipc_now_ms(), left = -1;
	int r;

	if (!c)
		return -EINVAL;
	if (c->free_pending)
		return -ECANCELED;
	r = check_emit(c, name, json);
	if (r < 0)
		return r;
	if (!c->connected) {
		/* dsd is away: kept in the buffer, and its outcome (should
		 * dsd refuse it) goes to the error callback, as for
		 * dsipc_emit(). */
		bool buffered;

		r = dsipc_send_emit(c, name, json, NULL, NULL, NULL, true,
		                    &buffered);
		if (r == 0 && ret)
			*ret = DSIPC_EMIT_BUFFERED;
		return r;
	}
	/* Armed before the request: the confirmation may come in the same
	 * read as the reply. */
	c->confirm_id = c->next_id;
	c->confirm_waiting = true;
	c->confirmed = false;
	r = request_sync(c, IPC_EMIT, name, json, timeout_ms, &w);
	free(w.text);
	res = w.code == IPC_EMIT_QUEUED ? DSIPC_EMIT_QUEUED : DSIPC_EMIT_SENT;
	if (r == 0 && res == DSIPC_EMIT_SENT && !c->confirmed) {
		if (timeout_ms >= 0) {
			left = timeout_ms - (dsipc_now_ms() - start);
			if (left < 0)
				left = 0;
		}
		/* A lost connection or the timeout ends it: still accepted. */
		(void)dsipc_wait_until(c, &c->confirmed, (int)left, false);
	}
	if (r == 0 && res == DSIPC_EMIT_SENT && c->confirmed)
		res = DSIPC_EMIT_CONFIRMED;
	c->confirm_waiting = false;
	r = dsipc_leave(c, r);
	if (r < 0)
		return r;
	if (ret)
		*ret = res;
	return 0;
}

/* -- waiting for one event -- */

struct event_wait {
	bool got;
	int error;
	char *json;
};

static void on_wait_event(dsipc *c, const char *name, const char *json,
                          void *userdata)
{
	struct event_wait *ew = userdata;

	(void)c;
	(void)name;
	if (ew->got)
		return;
	ew->got = true;
	if (json) {
		ew->json = strdup(json);
		if (!ew->json)
			ew->error = -ENOMEM;
	}
}

DSIPC_EXPORT int dsipc_wait_event(dsipc *c, const char *name, int timeout_ms,
                                  char **ret_json)
{
	struct event_wait ew = {0};
	dsipc_slot *slot;
	int r;

	if (!c || !ret_json)
		return -EINVAL;
	if (c->free_pending)
		return -ECANCELED;
	if (!c->connected)
		return -ENOTCONN;
	r = dsipc_subscribe(c, name, on_wait_event, &ew, &slot);
	if (r < 0)
		return r;
	r = dsipc_wait_until(c, &ew.got, timeout_ms, true);
	if (r == 0 && ew.error < 0)
		r = ew.error;
	/* Unsubscribes unless other slots still want this name. */
	dsipc_slot_free(slot);
	r = dsipc_leave(c, r);
	if (r < 0) {
		free(ew.json);
		return r;
	}
	*ret_json = ew.json;
	return 0;
}

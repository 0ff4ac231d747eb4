/*
 * What the rest of pubsub builds on: subscriber slots, fan-out to local
 * clients, writing the store into the window, and taking an emit in
 * (name, encoding, per-uid share, push).  Calls nothing above it.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "access.h"
#include "client.h"
#include "clock.h"
#include "config.h"
#include "event_frame.h"
#include "ipc_server.h"
#include "ipcproto.h"
#include "json_check.h"
#include "log.h"
#include "pubsub_core.h"
#include "sendq.h"
#include "spool.h"
#include "upstream.h"
#include "wire.h"

void ps_refuse(struct pubsub_refusal *why, bool quota, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why->text, sizeof(why->text), fmt, ap);
	va_end(ap);
	why->quota = quota;
}

/* ---- subscriber ids ---- */

static struct dsd_client *client_by_slot(struct pubsub *p, uint32_t slot)
{
	return slot < p->slot_count ? p->slots[slot] : NULL;
}

static int attach_slot(struct pubsub *p, struct dsd_client *c)
{
	for (uint32_t i = 0; i < p->slot_count; i++) {
		uint32_t s = (p->next_slot + i) % p->slot_count;

		if (p->slots[s] == NULL) {
			p->slots[s] = c;
			c->slot = s;
			p->next_slot = (s + 1) % p->slot_count;
			return 0;
		}
	}
	return -EUSERS;
}

/* ---- fan-out ---- */

void ps_tell_denied(struct pubsub *p, struct dsd_client *c, const char *name,
                    const char *reason)
{
	struct ipc_msg m = {
	        .type = IPC_SUB_DENIED, .name = name, .text = reason};

	(void)p;
	ipc_client_send(c->ipc, &m);
}

/* A send may drop a slow client, which changes the registry: the slots of
 * name's subscribers (ids, n) are walked in a copy, *ret_list (copy, or
 * malloc'd when longer than cap: free it when it is not copy).  Returns how
 * many; 0 when there are none or out of memory. */
static size_t copy_ids(const uint32_t *ids, size_t n, uint32_t *copy,
                       size_t cap, uint32_t **ret_list)
{
	*ret_list = copy;
	if (n == 0)
		return 0;
	if (n > cap) {
		*ret_list = malloc(n * sizeof(**ret_list));
		if (*ret_list == NULL)
			return 0;
	}
	memcpy(*ret_list, ids, n * sizeof(**ret_list));
	return n;
}

static size_t subscribers_copy(struct pubsub *p, const char *name,
                               uint32_t *copy, size_t cap, uint32_t **ret_list)
{
	size_t n;
	const uint32_t *ids = subs_subscribers(p->subs, name, &n);

	return copy_ids(ids, n, copy, cap, ret_list);
}

/* ps_fan_out_event_n(); data's length is measured (known_data_len NULL) only
 * when name has subscribers: most emits have none. */
static void fan_out(struct pubsub *p, const char *name, size_t name_len,
                    const char *data, const size_t *known_data_len)
{
	uint32_t copy[64];
	uint32_t *list;
	size_t n, data_len;
	const uint32_t *ids = subs_subscribers_n(p->subs, name, name_len, &n);

	n = copy_ids(ids, n, copy, sizeof(copy) / sizeof(copy[0]), &list);
	if (n == 0)
		return;
	if (known_data_len)
		data_len = *known_data_len;
	else
		data_len = data ? strlen(data) : 0;
	if (p->fanout.limit == 0)
		ipc_buf_init(&p->fanout, IPC_HEADER_SIZE + IPC_MAX_FRAME);
	p->fanout.len = 0;
	if (event_frame_encode(&p->fanout, name, name_len, data, data_len) ==
	    0) {
		for (size_t i = 0; i < n; i++) {
			struct dsd_client *c = client_by_slot(p, list[i]);

			if (c != NULL &&
			    ipc_client_send_frame(c->ipc, p->fanout.data,
			                          p->fanout.len) == 0)
				p->count.events_delivered++;
		}
	}
	if (list != copy)
		free(list);
	/* A big event's buffer is not kept. */
	if (p->fanout.cap > 64 * 1024)
		ipc_buf_free(&p->fanout);
}

void ps_fan_out_event(struct pubsub *p, const char *name, const char *data)
{
	fan_out(p, name, name ? strlen(name) : 0, data, NULL);
}

void ps_fan_out_event_n(struct pubsub *p, const char *name, size_t name_len,
                        const char *data, size_t data_len)
{
	fan_out(p, name, name_len, data, &data_len);
}

/* Calls fn for every local subscriber of name (see subscribers_copy()). */
void ps_for_each_subscriber(struct pubsub *p, const char *name,
                            subscriber_fn fn, const char *text)
{
	uint32_t copy[64];
	uint32_t *list;
	size_t n = subscribers_copy(p, name, copy,
	                            sizeof(copy) / sizeof(copy[0]), &list);

	for (size_t i = 0; i < n; i++) {
		struct dsd_client *c = client_by_slot(p, list[i]);

		if (c != NULL)
			fn(p, c, name, text);
	}
	if (list != copy)
		free(list);
}

static bool window_full(const struct pubsub *p)
{
	uint64_t bytes;
	size_t n = sendq_in_flight(p->store, &bytes);

	return n > 0 && (bytes >= p->window.bytes || n >= p->window.messages);
}

size_t ps_confirm(struct pubsub *p, uint64_t seq)
{
	uint64_t before, after;
	size_t n;

	(void)sendq_in_flight(p->store, &before);
	n = sendq_confirm(p->store, seq);
	if (n > 0) {
		(void)sendq_in_flight(p->store, &after);
		send_window_confirmed(&p->window, p->now_us(), before - after,
		                      n);
	}
	return n;
}

/* The next message the window lets through: fairly chosen while there is
 * room, else only from an app with nothing in flight (the reserve). */
static const struct sendq_msg *next_to_write(struct pubsub *p)
{
	if (!window_full(p))
		return sendq_peek(p->store);
	return sendq_peek_idle(p->store, RESERVE_BYTES);
}

/* Writes what the window and the connection take, fairly across apps. */
void ps_flush_store(struct pubsub *p)
{
	const struct sendq_msg *m;
	bool wrote = false;

	while ((m = next_to_write(p)) != NULL) {
		size_t len = m->len;

		if (upstream_send(p->up, m->data, len,
		                  sendq_next_seq(p->store)) < 0)
			break;
		sendq_hand(p->store);
		wrote = true;
		p->since_fence += len;
		p->since_fence_n++;
		/* A PING every half window keeps the pipe full: the first
		 * half is confirmed while the second is on its way. */
		if (p->since_fence >= p->window.bytes / 2 ||
		    p->since_fence_n >= p->window.messages / 2) {
			p->since_fence = 0;
			p->since_fence_n = 0;
			(void)upstream_fence(p->up);
		}
	}
	/* What this pass wrote is asked to be confirmed once the loop has
	 * nothing else to do: one PING for a whole burst. */
	if (wrote)
		event_active(p->fence_ev, 0, 0);
	if (!TAILQ_EMPTY(&p->paced))
		ps_unpace(p, false);
	p->cb.queue_changed(p->userdata);
}

/* Over eight windows queued (or half that, the way back). */
static bool over_pace(const struct pubsub *p, const struct sendq_app *a,
                      unsigned shift)
{
	return sendq_app_queued(a) >= (8 * p->window.messages) >> shift ||
	       sendq_app_queued_bytes(a) >= (8 * p->window.bytes) >> shift;
}

static void arm_pace_check(struct pubsub *p)
{
	struct timeval tv = {.tv_sec = PACE_STALL_MS / 1000,
	                     .tv_usec = (PACE_STALL_MS % 1000) * 1000};

	p->pace_mark = p->confirmations;
	event_add(p->pace_ev, &tv);
}

void ps_pace(struct pubsub *p, struct dsd_client *c)
{
	if (c->paced || c->store_app == NULL || p->drain_stalled ||
	    !upstream_is_open(p->up) || !over_pace(p, c->store_app, 0))
		return;
	c->paced = true;
	TAILQ_INSERT_TAIL(&p->paced, c, paced_entry);
	ipc_client_hold_input(c->ipc, true);
	if (!event_pending(p->pace_ev, EV_TIMEOUT, NULL))
		arm_pace_check(p);
}

void ps_on_pace_check(evutil_socket_t fd, short what, void *userdata)
{
	struct pubsub *p = userdata;

	(void)fd;
	(void)what;
	if (TAILQ_EMPTY(&p->paced))
		return;
	if (p->confirmations == p->pace_mark) {
		p->drain_stalled = true;
		ps_unpace(p, true);
		return;
	}
	arm_pace_check(p);
}

void ps_unpace(struct pubsub *p, bool all)
{
	struct dsd_client *c, *next;
	bool open = upstream_is_open(p->up);

	for (c = TAILQ_FIRST(&p->paced); c != NULL; c = next) {
		next = TAILQ_NEXT(c, paced_entry);
		if (!all && open && over_pace(p, c->store_app, 1))
			continue;
		TAILQ_REMOVE(&p->paced, c, paced_entry);
		c->paced = false;
		ipc_client_hold_input(c->ipc, false);
	}
}

int ps_check_name(struct dsd_client *c, struct pubsub *p, const char *name,
                  struct pubsub_refusal *why)
{
	if (name == NULL || name[0] == '\0' || strlen(name) > IPC_MAX_NAME) {
		ps_refuse(why, false,
		          "an event name of 1 to 1024 bytes is required");
		return -EINVAL;
	}
	if (c->slot == UINT32_MAX && attach_slot(p, c) < 0) {
		ps_refuse(why, false, "too many clients");
		return -EUSERS;
	}
	return 0;
}

/* Encodes the EMIT frame, checked against what the platform takes.  One
 * pass over data (json_check(), which checks its UTF-8 too) and one copy
 * into the frame (wire_emit_write()): name and data came through the IPC
 * decoder, which refuses invalid UTF-8 and NUL. */
int ps_encode_emit(struct pubsub *p, const char *name, const char *data,
                   size_t data_len, bool owned, uint8_t **ret_buf,
                   size_t *ret_len, bool *ret_owned, struct pubsub_refusal *why)
{
	char err[200];
	size_t size, name_len = strlen(name);
	uint8_t *buf;

	if (data != NULL && data_len > IPC_MAX_DATA) {
		ps_refuse(why, false,
		          "event data over 1 MiB (the platform's limit)");
		return -EMSGSIZE;
	}
	if (data != NULL && !json_check(data, data_len, err, sizeof(err))) {
		ps_refuse(why, false, "invalid JSON data: %s", err);
		return -EINVAL;
	}
	size = wire_emit_size(name_len, data, data_len);
	/* The whole frame must fit the platform's maxMessageSize (1 MiB by
	 * default), or the server closes the connection on it. */
	if (size > PLATFORM_MAX_MESSAGE) {
		ps_refuse(why, false,
		          "event (name and data) over the platform's 1 MiB "
		          "message limit");
		return -EMSGSIZE;
	}
	owned = owned || size > SCRATCH_MAX;
	if (!owned && size > p->scratch_cap) {
		buf = realloc(p->scratch, size);
		if (buf != NULL) {
			p->scratch = buf;
			p->scratch_cap = size;
		}
	}
	buf = owned ? malloc(size) : size <= p->scratch_cap ? p->scratch : NULL;
	if (buf == NULL) {
		ps_refuse(why, false, "out of memory");
		return -ENOMEM;
	}
	*ret_len = wire_emit_write(name, name_len, data, data_len, buf);
	*ret_buf = buf;
	*ret_owned = owned;
	return 0;
}

/* The sender's uid quota, then its share reserved before the push (the
 * drop callback may give back some of this uid's own older emits). */
int ps_reserve_share(struct pubsub *p, struct dsd_client *c, size_t len,
                     struct pubsub_refusal *why)
{
	struct access_count mine = access_usage_get(p->usage, c->peer.uid);
	int r;

	r = access_check_queue_quota(p->cfg, c->peer.uid, &mine, len, why->text,
	                             sizeof(why->text));
	if (r < 0) {
		why->quota = true;
		return r;
	}
	if (c->store_app == NULL) {
		c->store_app = sendq_app_new(p->store, c->id, c);
		if (c->store_app == NULL) {
			ps_refuse(why, false, "out of memory");
			return -ENOMEM;
		}
		sendq_app_set_weight(c->store_app,
		                     access_queue_weight(p->cfg, &c->peer));
	}
	if (access_usage_add(p->usage, c->peer.uid, 0, 0, 1, (int64_t)len) <
	    0) {
		ps_refuse(why, false, "out of memory");
		return -ENOMEM;
	}
	return 0;
}

void ps_give_back_share(struct pubsub *p, uid_t uid, size_t len)
{
	(void)access_usage_add(p->usage, uid, 0, 0, -1, -(int64_t)len);
}

/* Into the store, within its bounds (the share is reserved already and
 * given back on failure). */
int ps_push(struct pubsub *p, struct sendq_app *app, uint32_t client_id,
            uid_t uid, const uint8_t *buf, size_t len,
            const struct sendq_msg *meta, struct pubsub_refusal *why)
{
	struct sendq_stats st;
	unsigned dropped = 0;
	int r;

	r = sendq_push(p->store, app, buf, len, meta, &dropped);
	if (r < 0) {
		ps_give_back_share(p, uid, len);
		sendq_get_stats(p->store, &st);
		if (r == -EMSGSIZE)
			ps_refuse(why, false,
			          "event larger than the write queue");
		else if (r == -ENOBUFS)
			ps_refuse(
			        why, false,
			        "write queue full for this app or for all "
			        "(%zu messages, %llu bytes; overflow = reject)",
			        st.queued + st.in_flight,
			        (unsigned long long)(st.queued_bytes +
			                             st.in_flight_bytes));
		else
			ps_refuse(why, false, "out of memory");
		return r;
	}
	if (dropped > 0)
		log_full_ratelimited(&p->queue_log, clock_mono_ms(),
		                     LOG_WARNING,
		                     "write queue full: dropped %u oldest "
		                     "emit(s) of local client %u (overflow = "
		                     "drop-oldest)",
		                     dropped, client_id);
	return 0;
}

int ps_store(struct pubsub *p, struct dsd_client *c, const uint8_t *buf,
             size_t len, const struct sendq_msg *meta,
             struct pubsub_refusal *why)
{
	int r = ps_reserve_share(p, c, len, why);

	if (r < 0)
		return r;
	return ps_push(p, c->store_app, c->id, c->peer.uid, buf, len, meta,
	               why);
}

/*
 * Registrations: event subscriptions and state watches, each held by a
 * slot whose free cancels it.  Slots for one event name share a single
 * subscription with dsd, so the wire sees SUBSCRIBE for the first slot of a
 * name and UNSUBSCRIBE when its last one goes.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "dsipc-internal.h"

/* Is there a live slot for name, looking only at slots before `before`? */
static bool live_slot_named(dsipc *c, const char *name,
                            const struct dsipc_slot *before)
{
	struct dsipc_slot *s;

	for (s = c->slots; s && s != before; s = s->next)
		if (s->kind == SLOT_EVENT && !s->removed &&
		    strcmp(s->name, name) == 0)
			return true;
	return false;
}

int dsipc_resend_registrations(dsipc *c)
{
	struct dsipc_slot *s;
	bool want_state = false;
	int r;

	for (s = c->slots; s; s = s->next) {
		if (s->removed || s->kind == SLOT_LINK)
			continue;
		if (s->kind == SLOT_STATE) {
			want_state = true;
			continue;
		}
		if (live_slot_named(c, s->name, s))
			continue;
		r = dsipc_send_request(c, IPC_SUBSCRIBE, s->name, NULL, NULL,
		                       NULL, NULL, true);
		if (r < 0)
			return r;
	}
	if (want_state && !c->watch_sent) {
		r = dsipc_send_request(c, IPC_WATCH, NULL, NULL, NULL, NULL,
		                       NULL, false);
		if (r < 0)
			return r;
		c->watch_sent = true;
	}
	return 0;
}

static void slot_link(dsipc *c, struct dsipc_slot *s)
{
	if (c->slots_tail)
		c->slots_tail->next = s;
	else
		c->slots = s;
	c->slots_tail = s;
}

/* Only for a slot just linked, before any callback could see it. */
static void slot_unlink_last(dsipc *c, struct dsipc_slot *s)
{
	s->removed = true;
	c->slots_dirty = true;
	if (c->depth == 0) {
		struct dsipc_slot **p = &c->slots;

		while (*p != s)
			p = &(*p)->next;
		*p = NULL;
		c->slots_tail = NULL;
		for (p = &c->slots; *p; p = &(*p)->next)
			c->slots_tail = *p;
		free(s->name);
		free(s);
	}
}

DSIPC_EXPORT int dsipc_subscribe(dsipc *c, const char *name, dsipc_event_cb cb,
                                 void *userdata, dsipc_slot **ret_slot)
{
	struct dsipc_slot *s;
	bool first;
	int r;

	if (!c || !cb)
		return -EINVAL;
	if (c->free_pending)
		return -ECANCELED;
	r = dsipc_check_name(c, name);
	if (r < 0)
		return r;
	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->name = strdup(name);
	if (!s->name) {
		free(s);
		return -ENOMEM;
	}
	s->c = c;
	s->kind = SLOT_EVENT;
	s->event_cb = cb;
	s->userdata = userdata;
	s->floating = !ret_slot;
	first = !live_slot_named(c, name, NULL);
	slot_link(c, s);
	/* Not connected yet: dsipc_connect() subscribes. */
	if (first && c->connected) {
		r = dsipc_send_request(c, IPC_SUBSCRIBE, name, NULL, NULL, NULL,
		                       NULL, true);
		if (r < 0) {
			slot_unlink_last(c, s);
			return r;
		}
	}
	if (ret_slot)
		*ret_slot = s;
	return 0;
}

DSIPC_EXPORT int dsipc_watch_state(dsipc *c, dsipc_state_cb cb, void *userdata,
                                   dsipc_slot **ret_slot)
{
	struct dsipc_slot *s;
	int r;

	if (!c || !cb)
		return -EINVAL;
	if (c->free_pending)
		return -ECANCELED;
	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->c = c;
	s->kind = SLOT_STATE;
	s->state_cb = cb;
	s->userdata = userdata;
	/* Floating while the first callback runs: if it frees the handle,
	 * the slot goes with it and *ret_slot stays untouched. */
	s->floating = true;
	slot_link(c, s);
	if (c->connected && !c->watch_sent) {
		r = dsipc_send_request(c, IPC_WATCH, NULL, NULL, NULL, NULL,
		                       NULL, false);
		if (r < 0) {
			slot_unlink_last(c, s);
			return r;
		}
		c->watch_sent = true;
	}
	if (c->have_state) {
		/* Copies: a nested call in the callback may replace them. */
		char *st = strdup(c->state), *rs = strdup(c->reason);

		if (st && rs) {
			c->depth++;
			cb(c, st, rs, c->state_at, userdata);
			c->depth--;
		}
		free(st);
		free(rs);
		if (c->free_pending)
			return dsipc_leave(c, -ECANCELED);
	}
	if (ret_slot) {
		s->floating = false;
		*ret_slot = s;
	}
	return dsipc_leave(c, 0);
}

DSIPC_EXPORT dsipc_slot *dsipc_slot_free(dsipc_slot *s)
{
	dsipc *c;

	if (!s)
		return NULL;
	c = s->c;
	if (!c) {
		/* Detached by dsipc_free(). */
		free(s->name);
		free(s);
		return NULL;
	}
	if (s->removed)
		return NULL;
	s->removed = true;
	c->slots_dirty = true;
	if (s->kind == SLOT_EVENT && c->connected && !c->free_pending &&
	    !live_slot_named(c, s->name, NULL)) {
		/* Best effort: if it cannot be queued, dsd keeps sending
		 * events nobody listens to, and they are dropped here. */
		(void)dsipc_send_request(c, IPC_UNSUBSCRIBE, s->name, NULL,
		                         NULL, NULL, NULL, false);
	}
	if (c->depth == 0 && !c->free_pending)
		(void)dsipc_leave(c, 0);
	return NULL;
}

void dsipc_call_link(dsipc *c, int link, int error)
{
	struct dsipc_slot *s, *last = c->slots_tail;

	/* Slots added by the callbacks below do not see this change. */
	for (s = c->slots; s; s = s->next) {
		if (s->kind == SLOT_LINK && !s->removed) {
			c->depth++;
			s->link_cb(c, link, error, s->userdata);
			c->depth--;
			if (c->free_pending)
				return;
		}
		if (s == last)
			break;
	}
}

DSIPC_EXPORT int dsipc_watch_link(dsipc *c, dsipc_link_cb cb, void *userdata,
                                  dsipc_slot **ret_slot)
{
	struct dsipc_slot *s;

	if (!c || !cb)
		return -EINVAL;
	if (c->free_pending)
		return -ECANCELED;
	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->c = c;
	s->kind = SLOT_LINK;
	s->link_cb = cb;
	s->userdata = userdata;
	/* Floating while the first callback runs (see dsipc_watch_state()). */
	s->floating = true;
	slot_link(c, s);
	c->depth++;
	cb(c, c->link, c->link == DSIPC_LINK_UP ? 0 : c->link_error, userdata);
	c->depth--;
	if (c->free_pending)
		return dsipc_leave(c, -ECANCELED);
	if (ret_slot) {
		s->floating = false;
		*ret_slot = s;
	}
	return dsipc_leave(c, 0);
}

DSIPC_EXPORT int dsipc_get_state(dsipc *c, const char **ret_state,
                                 const char **ret_reason)
{
	if (!c)
		return -EINVAL;
	if (!c->have_state)
		return -ENODATA;
	if (ret_state)
		*ret_state = c->state;
	if (ret_reason)
		*ret_reason = c->reason;
	return 0;
}

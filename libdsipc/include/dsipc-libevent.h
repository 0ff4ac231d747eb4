/*
 * Header-only adapter attaching a connected dsipc handle to a libevent
 * event_base (the hiredis way: the library never links an event library).
 *
 *	struct dsipc_libevent *a;
 *	dsipc_libevent_attach(c, base, on_closed, NULL, &a);
 *	...
 *	a = dsipc_libevent_detach(a);   (before dsipc_free())
 *
 * A read event waits on the socket all the time; a write event is added
 * while output is pending, checked after every dsipc_process() and
 * whenever the library queues output it could not write at once.  A timer
 * follows dsipc_get_timeout(), and the events move to the new socket when
 * the library reconnects (dsipc_set_reconnect()).  When the connection
 * ends for good (dsd gone without reconnection, or given up on; a protocol
 * error) the events are removed and closed_cb gets the error; when a
 * callback freed the handle the adapter goes quiet and closed_cb gets
 * -ECANCELED (the handle is gone by then: do not use c).
 */
#ifndef DSIPC_LIBEVENT_H
#define DSIPC_LIBEVENT_H

#include <errno.h>
#include <stdbool.h>
#include <poll.h>
#include <stdlib.h>

#include <event2/event.h>

#include "dsipc.h"

typedef void (*dsipc_libevent_closed_cb)(dsipc *c, int error, void *userdata);

struct dsipc_libevent {
	dsipc *c;
	struct event_base *base;
	struct event *ev_read;
	struct event *ev_write;
	struct event *ev_timer;
	int fd; /* the socket the events wait on, or -1 */
	bool writing;
	/* Inside dsipc_process(): a callback may detach (and free the
	 * handle); the adapter is then freed only once process returns. */
	bool dispatching;
	bool detached;
	dsipc_libevent_closed_cb closed_cb;
	void *userdata;
};

static inline void dsipc_libevent_ready_(evutil_socket_t fd, short what,
                                         void *ud);

static inline void dsipc_libevent_drop_fd_(struct dsipc_libevent *a)
{
	if (a->ev_read)
		event_free(a->ev_read);
	if (a->ev_write)
		event_free(a->ev_write);
	a->ev_read = a->ev_write = NULL;
	a->writing = false;
	a->fd = -1;
}

/* Follows the handle: its socket, whether it wants to write, its timer. */
static inline void dsipc_libevent_sync_(struct dsipc_libevent *a)
{
	int fd = dsipc_get_fd(a->c), events, ms = -1;
	bool want;

	if (fd < 0)
		fd = -1;
	if (fd != a->fd) {
		dsipc_libevent_drop_fd_(a);
		if (fd >= 0) {
			a->ev_read =
			        event_new(a->base, fd, EV_READ | EV_PERSIST,
			                  dsipc_libevent_ready_, a);
			a->ev_write =
			        event_new(a->base, fd, EV_WRITE | EV_PERSIST,
			                  dsipc_libevent_ready_, a);
			if (a->ev_read)
				event_add(a->ev_read, NULL);
			a->fd = fd;
		}
	}
	events = dsipc_get_events(a->c);
	want = (events & POLLOUT) != 0;
	if (a->ev_write && want != a->writing) {
		if (want)
			event_add(a->ev_write, NULL);
		else
			event_del(a->ev_write);
		a->writing = want;
	}
	if (a->ev_timer) {
		(void)dsipc_get_timeout(a->c, &ms);
		if (ms >= 0) {
			struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
			event_add(a->ev_timer, &tv);
		} else {
			event_del(a->ev_timer);
		}
	}
}

static inline void dsipc_libevent_events_(dsipc *c, int events, void *ud)
{
	(void)c;
	(void)events;
	dsipc_libevent_sync_((struct dsipc_libevent *)ud);
}

static inline void dsipc_libevent_stop_(struct dsipc_libevent *a, int error)
{
	dsipc *c = a->c;

	dsipc_libevent_drop_fd_(a);
	if (a->ev_timer)
		event_free(a->ev_timer);
	a->ev_timer = NULL;
	a->c = NULL;
	if (c && error != -ECANCELED)
		dsipc_set_events_cb(c, NULL, NULL);
	if (a->closed_cb)
		a->closed_cb(error == -ECANCELED ? NULL : c, error,
		             a->userdata);
}

static inline void dsipc_libevent_ready_(evutil_socket_t fd, short what,
                                         void *ud)
{
	struct dsipc_libevent *a = (struct dsipc_libevent *)ud;
	int r;

	(void)fd;
	(void)what;
	a->dispatching = true;
	r = dsipc_process(a->c);
	a->dispatching = false;
	if (a->detached) {
		free(a);
		return;
	}
	if (r < 0) {
		dsipc_libevent_stop_(a, r);
		return;
	}
	dsipc_libevent_sync_(a);
}

/* c must be connected, connecting or waiting to reconnect.  closed_cb may
 * be NULL. */
static inline int dsipc_libevent_attach(dsipc *c, struct event_base *base,
                                        dsipc_libevent_closed_cb closed_cb,
                                        void *userdata,
                                        struct dsipc_libevent **ret)
{
	struct dsipc_libevent *a;
	int link = dsipc_get_link(c);

	if (link < 0)
		return link;
	if (link == DSIPC_LINK_DOWN)
		return -ENOTCONN;
	if (!base || !ret)
		return -EINVAL;
	a = (struct dsipc_libevent *)calloc(1, sizeof(*a));
	if (!a)
		return -ENOMEM;
	a->c = c;
	a->base = base;
	a->fd = -1;
	a->closed_cb = closed_cb;
	a->userdata = userdata;
	a->ev_timer = evtimer_new(base, dsipc_libevent_ready_, a);
	if (!a->ev_timer) {
		free(a);
		return -ENOMEM;
	}
	dsipc_libevent_sync_(a);
	if (a->fd >= 0 && !a->ev_read) {
		dsipc_libevent_drop_fd_(a);
		event_free(a->ev_timer);
		free(a);
		return -ENOMEM;
	}
	dsipc_set_events_cb(c, dsipc_libevent_events_, a);
	*ret = a;
	return 0;
}

/* NULL-safe; returns NULL.  Does not call closed_cb.  Allowed inside the
 * handle's callbacks (then before any dsipc_free() there). */
static inline struct dsipc_libevent *
dsipc_libevent_detach(struct dsipc_libevent *a)
{
	if (!a)
		return NULL;
	a->closed_cb = NULL;
	if (a->c)
		dsipc_libevent_stop_(a, 0);
	if (a->dispatching)
		a->detached = true; /* dsipc_libevent_ready_() frees it */
	else
		free(a);
	return NULL;
}

#endif

/*
 * The WebSocket transport.  A ws:// connection without a proxy runs on the
 * main loop (ws_direct.c; the direct_* functions below keep its callbacks
 * to the current connection, as deliver_event() does for lws's).  The rest
 * of this comment is about the other way, libwebsockets in a thread of its
 * own, bridged to the daemon's libevent loop, which wss:// and proxied
 * connections take.  This file is its main-thread half: the public API, the
 * lws context and thread, and the delivery of events.
 *
 * Why a thread: Debian 12's lws 4.1.6 is built without libevent support and
 * without the external-poll callbacks, so libevent can never learn which fds
 * lws uses or when lws wants to write, and lws timers only run inside
 * lws_service().  So lws gets a thread that does nothing but lws_service(),
 * and the main thread keeps every bit of protocol state.
 *
 * Three files share the work:
 *
 *   transport.c   (this one, main thread) transport_connect/disconnect/free
 *                 set the wanted state in struct ws_thread under its lock
 *                 (pending connect, target epoch, stop flag), unlock and
 *                 call lws_cancel_service(): the only lws call the main
 *                 thread makes after start-up.  transport_send() hands
 *                 frames to the bridge, whose wake hook makes the same call.
 *
 *   ws_thread.c   (lws thread) the protocol callback.  The cancel arrives
 *                 as LWS_CALLBACK_EVENT_WAIT_CANCELLED, where reconcile()
 *                 makes the real connections (struct ws_link) match the
 *                 wanted state; it writes queued frames, reassembles
 *                 messages and posts opened / message / closed events.
 *
 *   bridge.c      (no lws) the two locked queues between the threads and
 *                 the eventfd that wakes libevent; the main thread reads
 *                 the eventfd before it takes the queue (bridge.h says why).
 *                 Events are delivered here, on the main thread, without
 *                 any lock held.
 *
 * Generations: every transport_connect() takes a fresh internal epoch.  The
 * link, its frames and its events carry it, so a frame queued for
 * connection N is never written on N+1 (the bridge purges it) and stale
 * events are
 * filtered here in deliver_event().  The caller's gen is only carried along
 * for callbacks.
 *
 * docs/libwebsockets.md has the facts about lws 4.1.6 behind these rules
 * and what goes wrong without each.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <libwebsockets.h>

#include "bridge.h"
#include "log.h"
#include "transport.h"
#include "url.h"
#include "ws_direct.h"
#include "ws_thread.h"

#define DEFAULT_MAX_MESSAGE      (1u << 20)
#define DEFAULT_MAX_SEND_BACKLOG (4u << 20)
#define DEFAULT_MAX_RECV_QUEUE   (64u << 20)
/* The cancel pipe, a connection being closed and its successor, slack. */
#define FD_LIMIT 16
/* "user:password@[host]:port": 95 + 1 + 255 + 2 + 6, and the NUL. */
#define PROXY_SPEC_MAX 384

/* Used when no ca_file is given, so lws never falls back to loading
 * LWS_OPENSSL_CLIENT_CERTS ("../share", relative to the working directory)
 * as a trusted CA directory.  The OS store is loaded anyway; adding the
 * bundle again only duplicates it. */
static const char *const system_ca_bundles[] = {
        "/etc/ssl/certs/ca-certificates.crt",
        "/etc/pki/tls/certs/ca-bundle.crt",
        "/etc/ssl/cert.pem",
};

/* A ws:// connection on the main loop (ws_direct.h) and what it is for. */
struct direct_ref {
	struct direct_ref *next;
	struct transport *t;
	struct ws_direct *link;
	uint64_t epoch;
	uint32_t gen;
};

struct transport {
	struct ws_thread ws; /* the lws context's user data */
	struct event_base *base;
	size_t max_message;
	/* ws:// goes through lws as well (a proxy is set, or the config
	 * asks for it); otherwise it runs on the main loop. */
	bool ws_via_lws;
	struct direct_ref *direct;  /* the current connection, if direct */
	struct direct_ref *closing; /* earlier direct ones, closing */
	struct transport_callbacks cb;
	void *userdata;
	size_t max_send_backlog;
	bool tls;
	char *ca_file;
	pthread_t thread;
	bool thread_started;

	/* Main thread only. */
	struct bridge_item *spare; /* frame blocks to reuse (ws_thread.h) */
	uint64_t cur_epoch;
	uint32_t cur_gen;
	bool cur_active; /* connect called, closed not yet delivered */
	bool cur_open;   /* opened delivered */
	bool dispatching, freeing;
};

/* ---- main thread --------------------------------------------------------- */

static void transport_release(struct transport *t);

/* The messages of a TEV_MESSAGES event (ws_thread.h), one by one, each as
 * if it had come alone: a callback may disconnect, connect again or free
 * the transport, and what follows it is then dropped. */
static void deliver_messages(struct transport *t, const struct tevent *ev)
{
	const uint8_t *p = ev->data, *end = ev->data + ev->used;
	uint32_t n;

	while (p < end && !t->freeing) {
		memcpy(&n, p, TEV_LEN_SIZE);
		p += TEV_LEN_SIZE;
		if (t->cur_active && t->cur_open &&
		    ev->item.epoch == t->cur_epoch && t->cb.message)
			t->cb.message(ev->gen, p, n, t->userdata);
		p += n;
	}
}

static void deliver_event(struct transport *t, struct tevent *ev)
{
	struct bridge_item *it = &ev->item;
	bool current = t->cur_active && it->epoch == t->cur_epoch;

	switch (ev->type) {
	case TEV_OPENED:
		if (!current)
			return;
		t->cur_open = true;
		if (t->cb.opened)
			t->cb.opened(ev->gen, t->userdata);
		break;
	case TEV_MESSAGE:
		if (current && t->cur_open && t->cb.message)
			t->cb.message(ev->gen, ev->data, it->len, t->userdata);
		break;
	case TEV_MESSAGES:
		deliver_messages(t, ev);
		break;
	case TEV_CLOSED:
		if (current) {
			t->cur_active = false;
			t->cur_open = false;
		}
		if (t->cb.closed)
			t->cb.closed(ev->gen, ev->reason, t->userdata);
		break;
	}
}

/* A callback may call transport_free(): t then lives until it returns, so
 * the calls it makes after that still see t->freeing. */
static void deliver(struct bridge_item *it, void *userdata)
{
	struct transport *t = userdata;

	t->dispatching = true;
	deliver_event(t, bridge_entry(it, struct tevent, item));
	t->dispatching = false;
	if (t->freeing)
		transport_release(t);
}

/* epoch is the link whose writes emptied the backlog; cur_gen belongs to
 * cur_epoch. */
static void on_drained(uint64_t epoch, void *userdata)
{
	struct transport *t = userdata;

	if (!t->cur_active || !t->cur_open || epoch != t->cur_epoch ||
	    !t->cb.drained)
		return;
	t->dispatching = true;
	t->cb.drained(t->cur_gen, t->userdata);
	t->dispatching = false;
	if (t->freeing)
		transport_release(t);
}

/* ---- ws:// on the main loop ---------------------------------------------- */

static bool direct_current(const struct direct_ref *d)
{
	const struct transport *t = d->t;

	return t->cur_active && d->epoch == t->cur_epoch && !t->freeing;
}

/* Runs a callback of the owner's; transport_free() inside it is finished
 * once it returns. */
#define DISPATCH(t, call)                                                      \
	do {                                                                   \
		(t)->dispatching = true;                                       \
		call;                                                          \
		(t)->dispatching = false;                                      \
		if ((t)->freeing)                                              \
			transport_release(t);                                  \
	} while (0)

static void direct_opened(void *ud)
{
	struct direct_ref *d = ud;
	struct transport *t = d->t;

	if (!direct_current(d))
		return;
	t->cur_open = true;
	if (t->cb.opened)
		DISPATCH(t, t->cb.opened(d->gen, t->userdata));
}

static void direct_message(const uint8_t *data, size_t len, void *ud)
{
	struct direct_ref *d = ud;
	struct transport *t = d->t;

	if (!direct_current(d) || !t->cur_open || !t->cb.message)
		return;
	DISPATCH(t, t->cb.message(d->gen, data, len, t->userdata));
}

static void direct_drained(void *ud)
{
	struct direct_ref *d = ud;
	struct transport *t = d->t;

	if (!direct_current(d) || !t->cur_open || !t->cb.drained)
		return;
	DISPATCH(t, t->cb.drained(d->gen, t->userdata));
}

static void direct_unlink(struct transport *t, struct direct_ref *d)
{
	struct direct_ref **p;

	if (t->direct == d) {
		t->direct = NULL;
		return;
	}
	for (p = &t->closing; *p; p = &(*p)->next) {
		if (*p == d) {
			*p = d->next;
			return;
		}
	}
}

/* The link frees itself once this returns; d goes with it. */
static void direct_closed(const char *reason, void *ud)
{
	struct direct_ref *d = ud;
	struct transport *t = d->t;
	uint32_t gen = d->gen;

	direct_unlink(t, d);
	if (direct_current(d)) {
		t->cur_active = false;
		t->cur_open = false;
	}
	free(d);
	if (t->cb.closed)
		DISPATCH(t, t->cb.closed(gen, reason, t->userdata));
}

static const struct ws_direct_ops direct_ops = {
        .opened = direct_opened,
        .message = direct_message,
        .drained = direct_drained,
        .closed = direct_closed,
};

/* The current direct connection, if any, starts closing; its closed
 * callback still comes. */
static void direct_close_current(struct transport *t, const char *reason)
{
	struct direct_ref *d = t->direct;

	if (!d)
		return;
	t->direct = NULL;
	d->next = t->closing;
	t->closing = d;
	ws_direct_close(d->link, 1000, reason);
}

/* The only lws call the main thread makes once the lws thread runs. */
static void wake_lws(void *userdata)
{
	struct transport *t = userdata;

	lws_cancel_service(t->ws.ctx);
}

static const struct bridge_ops bridge_ops = {
        .deliver = deliver,
        .drained = on_drained,
        .wake_other = wake_lws,
        .free_in = ws_tevent_free,
        .free_out = ws_frame_free,
};

/*
 * The proxy as lws_set_proxy() reads it: "[user:password@]host:port", an
 * IPv6 host in brackets.  Without a proxy, "none:0": lws otherwise takes
 * $http_proxy from the environment (with no regard for no_proxy), and a
 * port of 0 is how it is told there is none.
 */
static int proxy_spec(const struct transport_config *cfg, char *buf, size_t len)
{
	bool v6;
	int n;

	if (!cfg->proxy_host) {
		snprintf(buf, len, "none:0");
		return 0;
	}
	if (!cfg->proxy_port ||
	    (cfg->proxy_auth && strlen(cfg->proxy_auth) > 95))
		return -EINVAL;
	v6 = strchr(cfg->proxy_host, ':') != NULL;
	n = snprintf(buf, len, "%s%s%s%s%s:%u",
	             cfg->proxy_auth ? cfg->proxy_auth : "",
	             cfg->proxy_auth ? "@" : "", v6 ? "[" : "", cfg->proxy_host,
	             v6 ? "]" : "", (unsigned)cfg->proxy_port);
	if (n < 0 || (size_t)n >= len) {
		explicit_bzero(buf, len);
		return -EINVAL;
	}
	return 0;
}

int transport_new(struct event_base *base, const struct transport_config *cfg,
                  const struct transport_callbacks *cb, void *userdata,
                  struct transport **ret)
{
	struct lws_context_creation_info info;
	struct transport *t;
	char proxy[PROXY_SPEC_MAX];
	sigset_t all, old;
	size_t i;
	int r;

	if (!base || !cfg || !cb || !ret)
		return -EINVAL;
	t = calloc(1, sizeof(*t));
	if (!t)
		return -ENOMEM;
	pthread_mutex_init(&t->ws.lock, NULL);
	t->cb = *cb;
	t->userdata = userdata;
	t->ws.max_message =
	        cfg->max_message ? cfg->max_message : DEFAULT_MAX_MESSAGE;
	t->max_message = t->ws.max_message;
	t->max_send_backlog = cfg->max_send_backlog ? cfg->max_send_backlog
	                                            : DEFAULT_MAX_SEND_BACKLOG;
	t->ws.max_recv_queue = cfg->max_recv_queue ? cfg->max_recv_queue
	                                           : DEFAULT_MAX_RECV_QUEUE;
	t->tls = cfg->tls;
	t->base = base;
	t->ws_via_lws = cfg->ws_via_lws || cfg->proxy_host != NULL;
	if (cfg->tls && cfg->ca_file) {
		/* lws only logs an unreadable CA file and goes on without it;
		 * every wss connect would then fail verification. */
		if (access(cfg->ca_file, R_OK) < 0) {
			r = -errno;
			goto fail;
		}
		t->ca_file = strdup(cfg->ca_file);
		if (!t->ca_file) {
			r = -ENOMEM;
			goto fail;
		}
	}

	/* Without TLS and without a proxy every connect is a ws:// one on
	 * the main loop (wss:// is refused, see transport.h): no lws context,
	 * no thread, no bridge.  A REDIRECT to wss:// makes upstream.c build
	 * a transport with tls. */
	if (!t->tls && !t->ws_via_lws) {
		*ret = t;
		return 0;
	}

	/* drained once the backlog is down to half. */
	r = bridge_new(base, &bridge_ops, t, t->max_send_backlog / 2,
	               &t->ws.bridge);
	if (r < 0)
		goto fail;

	/* Process-wide in lws; the callback runs on the lws thread.  lws's
	 * notices are chatty: only when we log debug lines anyway. */
	lws_set_log_level(
	        LLL_ERR | LLL_WARN |
	                (log_level_enabled(LOG_DEBUG) ? LLL_NOTICE : 0),
	        ws_log_line);

	memset(&info, 0, sizeof(info));
	info.port = CONTEXT_PORT_NO_LISTEN;
	info.protocols = ws_protocols;
	info.user = &t->ws;
	info.gid = -1;
	info.uid = -1;
	/* Otherwise lws sizes its fd table from _SC_OPEN_MAX.  lws refuses
	 * sockets whose fd number is past its table; the daemon says how many
	 * descriptors it may hold (local clients included). */
	info.fd_limit_per_thread = cfg->fd_limit ? cfg->fd_limit : FD_LIMIT;
	if (t->tls) {
		/* Only then does lws initialise OpenSSL and make a client
		 * SSL_CTX, which parses the whole CA store: for ws:// that
		 * is megabytes for nothing. */
		info.options = LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT;
		info.client_ssl_ca_filepath = t->ca_file;
		for (i = 0; !info.client_ssl_ca_filepath &&
		            i < sizeof(system_ca_bundles) /
		                            sizeof(system_ca_bundles[0]);
		     i++) {
			if (access(system_ca_bundles[i], R_OK) == 0)
				info.client_ssl_ca_filepath =
				        system_ca_bundles[i];
		}
		info.client_ssl_cert_filepath = cfg->cert_file;
		info.client_ssl_private_key_filepath = cfg->key_file;
	}
	r = proxy_spec(cfg, proxy, sizeof(proxy));
	if (r < 0)
		goto fail;
	info.http_proxy_address = proxy;
	if (cfg->proxy_host)
		snprintf(t->ws.proxy, sizeof(t->ws.proxy), "http://%s%s%s:%u",
		         strchr(cfg->proxy_host, ':') ? "[" : "",
		         cfg->proxy_host,
		         strchr(cfg->proxy_host, ':') ? "]" : "",
		         (unsigned)cfg->proxy_port);
	t->ws.ctx = lws_create_context(&info);
	/* lws keeps its own copy (the credentials base64-encoded). */
	explicit_bzero(proxy, sizeof(proxy));
	if (!t->ws.ctx) {
		r = -EIO;
		goto fail;
	}

	/* Signals stay with the main thread (libevent handles them). */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	r = pthread_create(&t->thread, NULL, ws_thread_main, &t->ws);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (r) {
		r = -r;
		goto fail;
	}
	t->thread_started = true;
	*ret = t;
	return 0;

fail:
	transport_free(t);
	return r;
}

static void free_frames(struct bridge_item *it)
{
	struct bridge_item *next;

	for (; it != NULL; it = next) {
		next = it->next;
		ws_frame_free(it);
	}
}

static void transport_release(struct transport *t)
{
	free_frames(t->spare);
	free_frames(t->ws.spare);
	ws_link_free(t->ws.pending);
	/* Frees what is still queued either way and the unsent frames. */
	bridge_free(t->ws.bridge);
	pthread_mutex_destroy(&t->ws.lock);
	free(t->ca_file);
	free(t);
}

/* No callback of theirs runs after this. */
static void direct_abort_all(struct transport *t)
{
	struct direct_ref *d;

	if (t->direct) {
		t->direct->next = t->closing;
		t->closing = t->direct;
		t->direct = NULL;
	}
	while ((d = t->closing) != NULL) {
		t->closing = d->next;
		ws_direct_abort(d->link);
		free(d);
	}
}

void transport_free(struct transport *t)
{
	if (!t || t->freeing)
		return;
	direct_abort_all(t);
	if (t->thread_started) {
		pthread_mutex_lock(&t->ws.lock);
		t->ws.stop = true;
		t->ws.target_epoch = 0;
		pthread_mutex_unlock(&t->ws.lock);
		lws_cancel_service(t->ws.ctx);
		pthread_join(t->thread, NULL);
	}
	if (t->ws.ctx)
		lws_context_destroy(t->ws.ctx);
	t->ws.ctx = NULL;
	/* Inside a callback deliver() frees once it returns. */
	t->freeing = true;
	if (!t->dispatching)
		transport_release(t);
}

bool transport_has_tls(const struct transport *t)
{
	return t && t->tls;
}

const char *transport_kind(const struct transport *t)
{
	if (!t || t->freeing || !t->cur_open)
		return NULL;
	/* While open, a direct connection is always t->direct: only a
	 * connect or a disconnect moves it away, and both clear cur_open. */
	return t->direct ? "main loop" : "libwebsockets";
}

/* Tells the lws thread that no link of its own should exist now (the
 * current connection, if it was one of lws's, closes). */
static void lws_stand_down(struct transport *t, const char *reason)
{
	struct ws_link *old;

	if (!t->ws.ctx)
		return; /* made without lws: nothing of its to stand down */
	bridge_out_flush(t->ws.bridge);
	pthread_mutex_lock(&t->ws.lock);
	old = t->ws.pending;
	t->ws.pending = NULL;
	t->ws.target_epoch = 0;
	pthread_mutex_unlock(&t->ws.lock);
	ws_link_cancel(&t->ws, old, reason);
	lws_cancel_service(t->ws.ctx);
}

/* ws:// on the main loop (ws_direct.h). */
static int connect_direct(struct transport *t, const struct url *u,
                          uint32_t gen)
{
	struct direct_ref *d = calloc(1, sizeof(*d));
	bool was_lws = t->cur_active && !t->direct;
	int r;

	if (!d)
		return -ENOMEM;
	d->t = t;
	d->epoch = t->cur_epoch + 1;
	d->gen = gen;
	r = ws_direct_open(t->base, u, t->max_message, &direct_ops, d,
	                   &d->link);
	if (r < 0) {
		free(d);
		return r;
	}
	t->cur_epoch++;
	direct_close_current(t, "superseded by a new connect");
	if (was_lws)
		lws_stand_down(t, "superseded by a new connect");
	t->direct = d;
	t->cur_gen = gen;
	t->cur_active = true;
	t->cur_open = false;
	return 0;
}

int transport_connect(struct transport *t, const char *url, uint32_t gen)
{
	struct ws_link *wl, *old;
	struct url u;
	int r;

	if (!t || !url || t->freeing)
		return -EINVAL;
	if (url_parse(url, &u, NULL) < 0)
		return -EINVAL;
	if (u.tls && !t->tls)
		return -EPROTONOSUPPORT;
	if (!u.tls && !t->ws_via_lws)
		return connect_direct(t, &u, gen);
	r = ws_link_new(url, gen, t->cur_epoch + 1, &wl);
	if (r < 0)
		return r;
	t->cur_epoch++;
	direct_close_current(t, "superseded by a new connect");

	/* Frames of the old connection are never written on this one. */
	bridge_out_flush(t->ws.bridge);
	pthread_mutex_lock(&t->ws.lock);
	old = t->ws.pending;
	t->ws.target_epoch = t->cur_epoch;
	t->ws.pending = wl;
	pthread_mutex_unlock(&t->ws.lock);
	ws_link_cancel(&t->ws, old, "superseded by a new connect");
	lws_cancel_service(t->ws.ctx);

	t->cur_gen = gen;
	t->cur_active = true;
	t->cur_open = false;
	return 0;
}

void transport_disconnect(struct transport *t, uint32_t gen)
{
	if (!t || t->freeing || !t->cur_active || gen != t->cur_gen)
		return;
	if (t->direct)
		direct_close_current(t, "disconnected");
	else
		lws_stand_down(t, "disconnected");
	/* cur_active stays set until closed is delivered, so opened and
	 * message events still in flight are dropped but closed is not. */
	t->cur_open = false;
}

/* A block for a frame of len bytes: a small one from the blocks the lws
 * thread gave back, when it has some (ws_thread.h, FRAME_SPARE_SIZE). */
static struct frame *frame_alloc(struct transport *t, size_t len)
{
	size_t cap = len <= FRAME_SPARE_SIZE ? FRAME_SPARE_SIZE : len;
	struct bridge_item *it;
	struct frame *f;

	if (cap == FRAME_SPARE_SIZE && t->spare == NULL) {
		pthread_mutex_lock(&t->ws.lock);
		t->spare = t->ws.spare;
		t->ws.spare = NULL;
		t->ws.n_spare = 0;
		pthread_mutex_unlock(&t->ws.lock);
	}
	if (cap == FRAME_SPARE_SIZE && t->spare != NULL) {
		it = t->spare;
		t->spare = it->next;
		return bridge_entry(it, struct frame, item);
	}
	f = malloc(sizeof(*f) + LWS_PRE + cap);
	if (f)
		f->cap = cap;
	return f;
}

static int queue_frame(struct transport *t, uint32_t gen, const uint8_t *data,
                       size_t len, size_t limit)
{
	struct frame *f;
	int r;

	if (!t || (!data && len))
		return -EINVAL;
	if (t->freeing || !t->cur_active || !t->cur_open || gen != t->cur_gen)
		return -ENOTCONN;
	if (len > t->max_send_backlog)
		return -EMSGSIZE;
	if (t->direct)
		return ws_direct_send(t->direct->link, data, len, limit);
	if (!t->ws.bridge)
		return -ENOTCONN;
	f = frame_alloc(t, len);
	if (!f)
		return -ENOMEM;
	f->item = (struct bridge_item){
	        .epoch = t->cur_epoch,
	        .len = len,
	        .keep = false, /* the store resends: see transport.h */
	};
	if (len)
		memcpy(f->buf + LWS_PRE, data, len);
	/* On success the bridge wakes the lws thread (wake_lws()). */
	r = bridge_out_push(t->ws.bridge, &f->item, limit);
	if (r < 0)
		free(f);
	return r;
}

int transport_send(struct transport *t, uint32_t gen, const uint8_t *data,
                   size_t len)
{
	return queue_frame(t, gen, data, len, t ? t->max_send_backlog : 0);
}

int transport_send_control(struct transport *t, uint32_t gen,
                           const uint8_t *data, size_t len)
{
	/* Protocol frames get a reserve on top of the backlog limit, so a
	 * backlog full of app data cannot hold back a SUBSCRIBE. */
	return queue_frame(t, gen, data, len,
	                   t ? t->max_send_backlog + t->max_send_backlog / 4
	                     : 0);
}

size_t transport_backlog(const struct transport *t)
{
	if (!t)
		return 0;
	if (t->direct)
		return ws_direct_backlog(t->direct->link);
	return t->ws.bridge ? bridge_out_bytes(t->ws.bridge) : 0;
}

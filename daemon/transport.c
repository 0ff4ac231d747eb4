/*
 * The WebSocket transport: libwebsockets in a thread of its own, bridged to
 * the daemon's libevent loop.
 *
 * Why a thread: Debian 12's lws 4.1.6 is built without libevent support and
 * without the external-poll callbacks, so libevent can never learn which fds
 * lws uses or when lws wants to write, and lws timers only run inside
 * lws_service().  So lws gets a thread that does nothing but lws_service(),
 * and the main thread keeps every bit of protocol state.
 *
 * The bridge, in both directions, is a list under one mutex:
 *
 *   main -> lws   transport_connect/disconnect/send/free lock t->lock, change
 *                 the wanted state (pending connect, target epoch, stop flag)
 *                 or append a frame to txq, unlock, and call
 *                 lws_cancel_service(): the only lws call the main thread
 *                 makes after start-up.  It arrives on the lws thread as
 *                 LWS_CALLBACK_EVENT_WAIT_CANCELLED, where reconcile() makes
 *                 the real state match the wanted one (starts the connect,
 *                 closes stale connections, asks for WRITEABLE).
 *
 *   lws -> main   the lws thread locks, appends an event (opened, message,
 *                 closed) to rxq, unlocks and, if the list was empty, writes
 *                 an eventfd that a libevent event watches.  The libevent
 *                 callback reads the eventfd FIRST and then takes the whole
 *                 list under the lock; the other order could lose a wakeup.
 *                 Callbacks then run on the main thread, without the lock.
 *
 * Generations: every transport_connect() takes a fresh internal epoch.  The
 * connection object, its frames and its events carry it, so a frame queued
 * for connection N is never written on N+1 and stale events are filtered on
 * the main thread.  The caller's gen is only carried along for callbacks.
 *
 * Ownership of a connection (struct ws_link): created by transport_connect()
 * on the main thread, with its `closed` event preallocated so that the one
 * closed callback per connect can never be lost to a failed malloc.  While
 * it sits in t->pending the main thread may cancel it (and queue its closed
 * event itself); once reconcile() takes it, the lws thread owns it and frees
 * it in LWS_CALLBACK_WSI_DESTROY, the one callback lws 4.1.6 delivers for
 * every way a client wsi can end (a server that accepts TCP but never
 * answers the upgrade gets neither CONNECTION_ERROR nor CLIENT_CLOSED).
 *
 * Closing: an established connection is closed only from CLIENT_WRITEABLE
 * (lws_close_reason + return -1); closing inside CLIENT_RECEIVE in the middle
 * of a fragmented message corrupts lws's heap.  A connect still in progress
 * is killed with lws_set_timeout(..., LWS_TO_KILL_ASYNC).
 *
 * docs/libwebsockets.md has the facts about lws 4.1.6 behind these rules
 * and what goes wrong without each.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <event2/event.h>
#include <libwebsockets.h>

#include "bridge.h"
#include "log.h"
#include "transport.h"
#include "url.h"

#define DEFAULT_MAX_MESSAGE      (1u << 20)
#define DEFAULT_MAX_SEND_BACKLOG (4u << 20)
#define DEFAULT_MAX_RECV_QUEUE   (64u << 20)
#define REASON_MAX               256
/* Seconds an established connection gets to finish its close handshake
 * (or to drain a choked socket) before lws drops it. */
#define CLOSE_GRACE_SECS 5
/* The cancel pipe, a connection being closed and its successor, slack. */
#define FD_LIMIT 16

/* Used when no ca_file is given, so lws never falls back to loading
 * LWS_OPENSSL_CLIENT_CERTS ("../share", relative to the working directory)
 * as a trusted CA directory.  The OS store is loaded anyway; adding the
 * bundle again only duplicates it. */
static const char *const system_ca_bundles[] = {
        "/etc/ssl/certs/ca-certificates.crt",
        "/etc/pki/tls/certs/ca-bundle.crt",
        "/etc/ssl/cert.pem",
};

enum tevent_type {
	TEV_OPENED,
	TEV_MESSAGE,
	TEV_CLOSED,
};

/* lws -> main.  item.epoch: the link's; item.len: the message's length. */
struct tevent {
	struct bridge_item item;
	enum tevent_type type;
	uint32_t gen;
	uint8_t *data; /* TEV_MESSAGE, owned */
	char reason[REASON_MAX];
};

/* main -> lws.  item.keep: app data, handed back by transport_take_unsent()
 * when its link goes away unwritten; protocol frames are dropped. */
struct frame {
	struct bridge_item item;
	uint8_t buf[]; /* LWS_PRE bytes of headroom, then the payload */
};

struct ws_link {
	struct ws_link *next;
	uint64_t epoch;
	uint32_t gen;

	bool tls;
	uint16_t port;
	char host[256];
	char path[1024];

	/* Preallocated so opened/closed cannot be lost to ENOMEM. */
	struct tevent *opened_ev;
	struct tevent *closed_ev;

	/* lws thread only from here on. */
	struct lws *wsi;
	bool in_connect; /* inside lws_client_connect_via_info() */
	bool destroyed;  /* WSI_DESTROY ran while in_connect */
	bool established;
	bool closing;    /* close requested (from WRITEABLE if established) */
	bool discarding; /* over-cap message: drop the rest of it */
	bool tls_verify_failed;
	enum lws_close_status close_status;
	char reason[REASON_MAX]; /* first reason wins */
	uint8_t *rx;
	size_t rx_len, rx_cap;
};

struct transport {
	struct bridge *bridge;
	struct transport_callbacks cb;
	void *userdata;
	size_t max_message, max_send_backlog, max_recv_queue;
	unsigned fd_limit;
	char *ca_file;

	struct lws_context *ctx;
	pthread_t thread;
	bool thread_started;

	/* Main thread only. */
	uint64_t cur_epoch;
	uint32_t cur_gen;
	bool cur_active; /* connect called, closed not yet delivered */
	bool cur_open;   /* opened delivered */
	bool dispatching, freeing;

	/* lws thread only. */
	struct ws_link *links;
	bool stopped;

	/* What the main thread wants, for reconcile(). */
	pthread_mutex_t lock;
	/* Under lock. */
	bool stop;
	uint64_t target_epoch;   /* the link that should exist, 0: none */
	struct ws_link *pending; /* connect not yet picked up by lws */
};

/* Where lws's log lines go.  Runs on the lws thread; log.h is thread-safe. */
static void transport_log(int level, const char *line)
{
	int n = (int)strlen(line);

	while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
		n--;
	if (level & LLL_ERR)
		log_err("libwebsockets: %.*s", n, line);
	else if (level & LLL_WARN)
		log_warn("libwebsockets: %.*s", n, line);
	else
		log_debug("libwebsockets: %.*s", n, line);
}

/*
 * The last error line lws logged on this thread.  lws reports a failed
 * certificate check to its callback only as "connect SSL err 1"; the reason
 * OpenSSL gave is only in its log line.  Thread-local, and every transport
 * has its own lws thread, so two transports never see each other's lines.
 */
static __thread char last_lws_error[192];

static void lws_log_line(int level, const char *line)
{
	if (level & LLL_ERR)
		snprintf(last_lws_error, sizeof(last_lws_error), "%s", line);
	transport_log(level, line);
}

static void set_reason(struct ws_link *wl, const char *fmt, ...)
        __attribute__((format(printf, 2, 3)));

static void set_reason(struct ws_link *wl, const char *fmt, ...)
{
	va_list ap;

	if (wl->reason[0])
		return;
	va_start(ap, fmt);
	vsnprintf(wl->reason, sizeof(wl->reason), fmt, ap);
	va_end(ap);
}

/* Copies untrusted text for a log line: printable ASCII only. */
static void sanitize(char *dst, size_t dst_size, const char *src, size_t len)
{
	size_t i;

	if (dst_size == 0)
		return;
	if (len > dst_size - 1)
		len = dst_size - 1;
	for (i = 0; i < len; i++)
		dst[i] = src[i] >= 0x20 && src[i] < 0x7f ? src[i] : '?';
	dst[len] = '\0';
}

static void tevent_free(struct bridge_item *it)
{
	struct tevent *ev = bridge_entry(it, struct tevent, item);

	free(ev->data);
	free(ev);
}

static void frame_free(struct bridge_item *it)
{
	free(bridge_entry(it, struct frame, item));
}

/* For events that must reach main whatever the receive queue holds. */
static void post_event(struct transport *t, struct tevent *ev)
{
	bridge_in_post(t->bridge, &ev->item, SIZE_MAX);
}

static void link_free(struct ws_link *wl)
{
	if (!wl)
		return;
	free(wl->opened_ev);
	free(wl->closed_ev);
	free(wl->rx);
	free(wl);
}

/* ---- lws thread ---------------------------------------------------------- */

static void link_remove(struct transport *t, struct ws_link *wl)
{
	struct ws_link **p;

	for (p = &t->links; *p; p = &(*p)->next) {
		if (*p == wl) {
			*p = wl->next;
			return;
		}
	}
}

/* Hands the closed event to main; wl is freed by the caller. */
static void link_finish(struct transport *t, struct ws_link *wl)
{
	struct tevent *ev = wl->closed_ev;

	wl->closed_ev = NULL;
	if (!wl->reason[0])
		snprintf(wl->reason, sizeof(wl->reason), "connection closed");
	snprintf(ev->reason, sizeof(ev->reason), "%s", wl->reason);
	/* What this connection never wrote is handed back before main hears
	 * of the close, so the daemon can queue it again at once. */
	bridge_out_purge(t->bridge, wl->epoch + 1);
	post_event(t, ev);
}

static void maybe_stopped(struct transport *t)
{
	if (t->links)
		return;
	pthread_mutex_lock(&t->lock);
	if (t->stop)
		t->stopped = true;
	pthread_mutex_unlock(&t->lock);
	/* Without this lws_service() may sleep until its next timer. */
	if (t->stopped)
		lws_cancel_service(t->ctx);
}

/* Established: close from WRITEABLE.  Still connecting: kill it. */
static void link_arm_close(struct ws_link *wl)
{
	if (wl->established) {
		lws_callback_on_writable(wl->wsi);
		/* A peer that stops reading would otherwise hold us forever. */
		lws_set_timeout(wl->wsi, PENDING_TIMEOUT_USER_OK,
		                CLOSE_GRACE_SECS);
	} else {
		/* lws replaces this timeout at its next state change (TCP
		 * connected, upgrade answered); the callbacks refuse to go
		 * on with a closing conn at those points too. */
		lws_set_timeout(wl->wsi, PENDING_TIMEOUT_USER_OK,
		                LWS_TO_KILL_ASYNC);
	}
}

static void link_close(struct ws_link *wl, enum lws_close_status status,
                       const char *reason)
{
	if (wl->closing || !wl->wsi)
		return;
	wl->closing = true;
	wl->close_status = status;
	set_reason(wl, "%s", reason);
	link_arm_close(wl);
}

static void link_start(struct transport *t, struct ws_link *wl)
{
	struct lws_client_connect_info info;
	struct lws *wsi;

	memset(&info, 0, sizeof(info));
	info.context = t->ctx;
	info.address = wl->host;
	info.port = wl->port;
	info.ssl_connection = wl->tls ? LCCSCF_USE_SSL : 0;
	info.path = wl->path;
	/* Host header, SNI and the certificate name check. */
	info.host = wl->host;
	info.origin = wl->host;
	info.ietf_version_or_minus_one = -1;
	info.local_protocol_name = "dsd-transport";
	info.opaque_user_data = wl;
	info.pwsi = &wl->wsi;

	wl->next = t->links;
	t->links = wl;
	wl->in_connect = true;
	wsi = lws_client_connect_via_info(&info);
	wl->in_connect = false;
	if (wl->destroyed) {
		/* WSI_DESTROY already ran inside the call and posted closed. */
		link_remove(t, wl);
		link_free(wl);
		return;
	}
	if (!wsi) {
		wl->wsi = NULL;
		set_reason(wl, "connect to %s:%u failed", wl->host, wl->port);
		link_remove(t, wl);
		link_finish(t, wl);
		link_free(wl);
		return;
	}
	wl->wsi = wsi;
}

/* Makes the connections match what the main thread asked for. */
static void reconcile(struct transport *t)
{
	struct ws_link *start = NULL, *wl;
	uint64_t target;
	bool stop, frames;

	pthread_mutex_lock(&t->lock);
	stop = t->stop;
	target = t->target_epoch;
	if (t->pending && t->pending->epoch == target && !stop) {
		start = t->pending;
		t->pending = NULL;
	}
	pthread_mutex_unlock(&t->lock);
	frames = bridge_out_pending(t->bridge);

	for (wl = t->links; wl; wl = wl->next) {
		if (stop)
			link_close(wl, LWS_CLOSE_STATUS_GOINGAWAY,
			           "transport stopped");
		else if (wl->epoch != target)
			link_close(wl, LWS_CLOSE_STATUS_NORMAL, "disconnected");
		else if (wl->established && !wl->closing && frames)
			lws_callback_on_writable(wl->wsi);
	}
	if (start)
		link_start(t, start);
	if (stop)
		maybe_stopped(t);
}

static int on_writeable(struct transport *t, struct ws_link *wl)
{
	struct bridge_item *it;
	struct frame *f;
	bool more;
	int n;

	if (wl->closing) {
		/* A close frame carries at most 123 bytes of reason. */
		lws_close_reason(wl->wsi, wl->close_status,
		                 (unsigned char *)wl->reason,
		                 strnlen(wl->reason, 123));
		return -1;
	}
	for (;;) {
		it = bridge_out_pop(t->bridge, wl->epoch, &more);
		if (!it)
			break;
		f = bridge_entry(it, struct frame, item);
		n = lws_write(wl->wsi, f->buf + LWS_PRE, f->item.len,
		              LWS_WRITE_BINARY);
		free(f);
		if (n < 0) {
			set_reason(wl, "write failed");
			return -1;
		}
		if (!more)
			break;
		if (lws_send_pipe_choked(wl->wsi)) {
			lws_callback_on_writable(wl->wsi);
			break;
		}
	}
	return 0;
}

static void on_receive(struct transport *t, struct ws_link *wl, const void *in,
                       size_t len)
{
	struct tevent *ev;

	if (wl->closing)
		return;
	if (lws_is_first_fragment(wl->wsi)) {
		wl->rx_len = 0;
		wl->discarding = false;
	}
	if (wl->discarding)
		return;
	if (len > t->max_message - wl->rx_len) {
		/* Never close here: lws is in the middle of a message. */
		free(wl->rx);
		wl->rx = NULL;
		wl->rx_len = wl->rx_cap = 0;
		wl->discarding = true;
		set_reason(wl, "message over %zu bytes", t->max_message);
		link_close(wl, LWS_CLOSE_STATUS_MESSAGE_TOO_LARGE, wl->reason);
		return;
	}
	if (wl->rx_len + len > wl->rx_cap) {
		size_t cap = wl->rx_cap ? wl->rx_cap : 4096;
		uint8_t *p;

		while (cap < wl->rx_len + len +
		                       lws_remaining_packet_payload(wl->wsi) &&
		       cap < t->max_message)
			cap *= 2;
		if (cap > t->max_message)
			cap = t->max_message;
		if (cap < wl->rx_len + len)
			cap = wl->rx_len + len;
		p = realloc(wl->rx, cap);
		if (!p) {
			wl->discarding = true;
			link_close(wl, LWS_CLOSE_STATUS_NORMAL,
			           "out of memory");
			return;
		}
		wl->rx = p;
		wl->rx_cap = cap;
	}
	if (len)
		memcpy(wl->rx + wl->rx_len, in, len);
	wl->rx_len += len;
	if (!lws_is_final_fragment(wl->wsi))
		return;

	ev = calloc(1, sizeof(*ev));
	if (!ev) {
		wl->discarding = true;
		link_close(wl, LWS_CLOSE_STATUS_NORMAL, "out of memory");
		return;
	}
	ev->type = TEV_MESSAGE;
	ev->item.epoch = wl->epoch;
	ev->gen = wl->gen;
	ev->item.len = wl->rx_len;
	ev->data = wl->rx;
	wl->rx = NULL;
	wl->rx_len = wl->rx_cap = 0;

	if (bridge_in_post(t->bridge, &ev->item, t->max_recv_queue) < 0) {
		tevent_free(&ev->item);
		set_reason(wl, "receive queue over %zu bytes",
		           t->max_recv_queue);
		link_close(wl, LWS_CLOSE_STATUS_NORMAL, wl->reason);
	}
}

static void on_peer_close(struct ws_link *wl, const uint8_t *in, size_t len)
{
	char text[128];
	unsigned code = 1005; /* "no status received", RFC 6455 7.4.1 */

	if (len >= 2)
		code = (unsigned)in[0] << 8 | in[1];
	if (len > 2) {
		sanitize(text, sizeof(text), (const char *)in + 2, len - 2);
		set_reason(wl, "closed by server (code %u, \"%s\")", code,
		           text);
	} else {
		set_reason(wl, "closed by server (code %u)", code);
	}
}

/* lws's error strings are terse ("Unable to connect", ...) and carry no
 * errno: keep them, and say where to. */
static void on_connection_error(struct ws_link *wl, const char *in)
{
	char text[200];

	if (wl->tls_verify_failed) {
		/* "SSL error: <what> (preverify_ok=0;err=20;depth=0)" */
		const char *p = strstr(last_lws_error, "SSL error: ");
		const char *end = p ? strstr(p, " (preverify_ok") : NULL;

		if (p && end) {
			p += strlen("SSL error: ");
			sanitize(text, sizeof(text), p, (size_t)(end - p));
			set_reason(wl, "TLS certificate verify failed: %s",
			           text);
		} else {
			set_reason(wl, "TLS certificate verify failed");
		}
		return;
	}
	if (!in || !in[0]) {
		set_reason(wl, "connect to %s:%u failed", wl->host, wl->port);
		return;
	}
	sanitize(text, sizeof(text), in, strlen(in));
	set_reason(wl, "connect to %s:%u failed: %s", wl->host, wl->port, text);
}

/*
 * An HTTP redirect (301, 302, 303, 307, 308) in answer to the WebSocket
 * upgrade.  lws would follow it on its own, to any host, and report the
 * result under the original one; the only move between servers deepstream
 * has is its own REDIRECT message, which the connection state machine
 * follows and bounds.  So the attempt fails here, saying where to.
 */
static void on_http_redirect(struct ws_link *wl, const char *location,
                             unsigned status)
{
	char text[160];

	if (!wl)
		return;
	sanitize(text, sizeof(text), location ? location : "",
	         location ? strlen(location) : 0);
	set_reason(wl,
	           "HTTP %u redirect to \"%s\" at the WebSocket upgrade, not "
	           "followed",
	           status, text);
}

static int callback(struct lws *wsi, enum lws_callback_reasons reason,
                    void *user, void *in, size_t len)
{
	struct transport *t = lws_context_user(lws_get_context(wsi));
	struct ws_link *wl = lws_get_opaque_user_data(wsi);

	(void)user;
	switch (reason) {
	case LWS_CALLBACK_EVENT_WAIT_CANCELLED:
		reconcile(t);
		return 0;
	case LWS_CALLBACK_CLIENT_HTTP_REDIRECT:
		/* Non-zero: lws does not follow it and fails the connect. */
		on_http_redirect(wl, in, (unsigned)len);
		return -1;
	default:
		break;
	}
	if (!wl)
		return 0;

	switch (reason) {
	case LWS_CALLBACK_CLIENT_APPEND_HANDSHAKE_HEADER:
		/* Superseded or disconnected while connecting. */
		return wl->closing ? -1 : 0;
	case LWS_CALLBACK_CLIENT_FILTER_PRE_ESTABLISH:
		return wl->closing ? 1 : 0;
	case LWS_CALLBACK_CLIENT_ESTABLISHED:
		wl->established = true;
		if (wl->closing) {
			link_arm_close(wl);
			break;
		}
		if (wl->opened_ev) {
			post_event(t, wl->opened_ev);
			wl->opened_ev = NULL;
		}
		/* Closes it if it was superseded since
		 * reconcile() ran. */
		reconcile(t);
		break;
	case LWS_CALLBACK_CLIENT_RECEIVE:
		on_receive(t, wl, in, len);
		break;
	case LWS_CALLBACK_CLIENT_WRITEABLE:
		return on_writeable(t, wl);
	case LWS_CALLBACK_WS_PEER_INITIATED_CLOSE:
		on_peer_close(wl, in, len);
		break;
	case LWS_CALLBACK_OPENSSL_PERFORM_SERVER_CERT_VERIFICATION:
		/* len is OpenSSL's preverify_ok; returning 0
		 * keeps its verdict.
		 */
		if (!len)
			wl->tls_verify_failed = true;
		break;
	case LWS_CALLBACK_CLIENT_CONNECTION_ERROR:
		on_connection_error(wl, in);
		break;
	case LWS_CALLBACK_CLIENT_CLOSED:
		set_reason(wl, "connection lost");
		break;
	case LWS_CALLBACK_CLOSED_CLIENT_HTTP:
		if (!wl->established)
			set_reason(wl, "closed before the "
			               "WebSocket handshake "
			               "completed");
		break;
	case LWS_CALLBACK_WSI_DESTROY:
		lws_set_opaque_user_data(wsi, NULL);
		wl->wsi = NULL;
		link_finish(t, wl);
		if (wl->in_connect) {
			wl->destroyed = true; /* link_start()
			                        frees it */
			break;
		}
		link_remove(t, wl);
		link_free(wl);
		pthread_mutex_lock(&t->lock);
		bool stop = t->stop;
		pthread_mutex_unlock(&t->lock);
		if (stop)
			maybe_stopped(t);
		break;
	default:
		break;
	}
	return 0;
}

static const struct lws_protocols protocols[] = {
        {"dsd-transport", callback, 0, 0, 0, NULL, 0},
        {NULL, NULL, 0, 0, 0, NULL, 0},
};

static void *lws_thread(void *arg)
{
	struct transport *t = arg;

	while (!t->stopped) {
		if (lws_service(t->ctx, 0) < 0)
			break;
	}
	return NULL;
}

/* ---- main thread --------------------------------------------------------- */

static void transport_release(struct transport *t);

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

/* The only lws call the main thread makes once the lws thread runs. */
static void wake_lws(void *userdata)
{
	struct transport *t = userdata;

	lws_cancel_service(t->ctx);
}

static const struct bridge_ops bridge_ops = {
        .deliver = deliver,
        .drained = on_drained,
        .wake_other = wake_lws,
        .free_in = tevent_free,
        .free_out = frame_free,
};

static int parse_url(const char *s, struct ws_link *wl)
{
	struct url u;
	int r;

	r = url_parse(s, &u, NULL);
	if (r < 0)
		return r;
	wl->tls = u.tls;
	wl->port = u.port;
	memcpy(wl->host, u.host, sizeof(wl->host));
	memcpy(wl->path, u.path, sizeof(wl->path));
	return 0;
}

int transport_new(struct event_base *base, const struct transport_config *cfg,
                  const struct transport_callbacks *cb, void *userdata,
                  struct transport **ret)
{
	struct lws_context_creation_info info;
	struct transport *t;
	sigset_t all, old;
	size_t i;
	int r;

	if (!base || !cfg || !cb || !ret)
		return -EINVAL;
	t = calloc(1, sizeof(*t));
	if (!t)
		return -ENOMEM;
	pthread_mutex_init(&t->lock, NULL);
	t->cb = *cb;
	t->userdata = userdata;
	t->max_message =
	        cfg->max_message ? cfg->max_message : DEFAULT_MAX_MESSAGE;
	/* lws refuses sockets whose fd number is past its table; the daemon
	 * says how many descriptors it may hold (local clients included). */
	t->fd_limit = cfg->fd_limit ? cfg->fd_limit : FD_LIMIT;
	t->max_send_backlog = cfg->max_send_backlog ? cfg->max_send_backlog
	                                            : DEFAULT_MAX_SEND_BACKLOG;
	t->max_recv_queue = cfg->max_recv_queue ? cfg->max_recv_queue
	                                        : DEFAULT_MAX_RECV_QUEUE;
	if (cfg->ca_file) {
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

	/* drained once the backlog is down to half. */
	r = bridge_new(base, &bridge_ops, t, t->max_send_backlog / 2,
	               &t->bridge);
	if (r < 0)
		goto fail;

	/* Process-wide in lws; the callback runs on the lws thread.  lws's
	 * notices are chatty: only when we log debug lines anyway. */
	lws_set_log_level(
	        LLL_ERR | LLL_WARN |
	                (log_level_enabled(LOG_DEBUG) ? LLL_NOTICE : 0),
	        lws_log_line);

	memset(&info, 0, sizeof(info));
	info.port = CONTEXT_PORT_NO_LISTEN;
	info.protocols = protocols;
	info.user = t;
	info.gid = -1;
	info.uid = -1;
	/* Otherwise lws sizes its fd table from _SC_OPEN_MAX. */
	info.fd_limit_per_thread = t->fd_limit;
	info.options = LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT;
	info.client_ssl_ca_filepath = t->ca_file;
	for (i = 0;
	     !info.client_ssl_ca_filepath &&
	     i < sizeof(system_ca_bundles) / sizeof(system_ca_bundles[0]);
	     i++) {
		if (access(system_ca_bundles[i], R_OK) == 0)
			info.client_ssl_ca_filepath = system_ca_bundles[i];
	}
	t->ctx = lws_create_context(&info);
	if (!t->ctx) {
		r = -EIO;
		goto fail;
	}

	/* Signals stay with the main thread (libevent handles them). */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	r = pthread_create(&t->thread, NULL, lws_thread, t);
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

static void transport_release(struct transport *t)
{
	link_free(t->pending);
	/* Frees what is still queued either way and the unsent frames. */
	bridge_free(t->bridge);
	pthread_mutex_destroy(&t->lock);
	free(t->ca_file);
	free(t);
}

void transport_free(struct transport *t)
{
	if (!t || t->freeing)
		return;
	if (t->thread_started) {
		pthread_mutex_lock(&t->lock);
		t->stop = true;
		t->target_epoch = 0;
		pthread_mutex_unlock(&t->lock);
		lws_cancel_service(t->ctx);
		pthread_join(t->thread, NULL);
	}
	if (t->ctx)
		lws_context_destroy(t->ctx);
	t->ctx = NULL;
	/* Inside a callback deliver() frees once it returns. */
	t->freeing = true;
	if (!t->dispatching)
		transport_release(t);
}

/* Gives the closed event of a connect the lws thread never picked up. */
static void cancel_link(struct transport *t, struct ws_link *wl,
                        const char *reason)
{
	struct tevent *ev;

	if (!wl)
		return;
	ev = wl->closed_ev;
	wl->closed_ev = NULL;
	snprintf(ev->reason, sizeof(ev->reason), "%s", reason);
	link_free(wl);
	post_event(t, ev);
}

int transport_connect(struct transport *t, const char *url, uint32_t gen)
{
	struct ws_link *wl, *old;
	int r;

	if (!t || !url || t->freeing)
		return -EINVAL;
	wl = calloc(1, sizeof(*wl));
	if (!wl)
		return -ENOMEM;
	r = parse_url(url, wl);
	if (r < 0) {
		link_free(wl);
		return r;
	}
	wl->gen = gen;
	wl->opened_ev = calloc(1, sizeof(*wl->opened_ev));
	wl->closed_ev = calloc(1, sizeof(*wl->closed_ev));
	if (!wl->opened_ev || !wl->closed_ev) {
		link_free(wl);
		return -ENOMEM;
	}
	wl->opened_ev->type = TEV_OPENED;
	wl->closed_ev->type = TEV_CLOSED;
	wl->opened_ev->gen = wl->closed_ev->gen = gen;
	wl->epoch = ++t->cur_epoch;
	wl->opened_ev->item.epoch = wl->closed_ev->item.epoch = wl->epoch;

	/* Frames of the old connection are never written on this one. */
	bridge_out_flush(t->bridge);
	pthread_mutex_lock(&t->lock);
	old = t->pending;
	t->target_epoch = wl->epoch;
	t->pending = wl;
	pthread_mutex_unlock(&t->lock);
	cancel_link(t, old, "superseded by a new connect");
	lws_cancel_service(t->ctx);

	t->cur_gen = gen;
	t->cur_active = true;
	t->cur_open = false;
	return 0;
}

void transport_disconnect(struct transport *t, uint32_t gen)
{
	struct ws_link *old;

	if (!t || t->freeing || !t->cur_active || gen != t->cur_gen)
		return;
	bridge_out_flush(t->bridge);
	pthread_mutex_lock(&t->lock);
	old = t->pending;
	t->pending = NULL;
	t->target_epoch = 0;
	pthread_mutex_unlock(&t->lock);
	cancel_link(t, old, "disconnected");
	lws_cancel_service(t->ctx);
	/* cur_active stays set until closed is delivered, so opened and
	 * message events still in flight are dropped but closed is not. */
	t->cur_open = false;
}

static int queue_frame(struct transport *t, uint32_t gen, const uint8_t *data,
                       size_t len, size_t limit, bool control)
{
	struct frame *f;
	int r;

	if (!t || (!data && len))
		return -EINVAL;
	if (t->freeing || !t->cur_active || !t->cur_open || gen != t->cur_gen)
		return -ENOTCONN;
	if (len > t->max_send_backlog)
		return -EMSGSIZE;
	f = malloc(sizeof(*f) + LWS_PRE + len);
	if (!f)
		return -ENOMEM;
	f->item = (struct bridge_item){
	        .epoch = t->cur_epoch,
	        .len = len,
	        .keep = !control,
	};
	if (len)
		memcpy(f->buf + LWS_PRE, data, len);
	/* On success the bridge wakes the lws thread (wake_lws()). */
	r = bridge_out_push(t->bridge, &f->item, limit);
	if (r < 0)
		free(f);
	return r;
}

int transport_send(struct transport *t, uint32_t gen, const uint8_t *data,
                   size_t len)
{
	return queue_frame(t, gen, data, len, t ? t->max_send_backlog : 0,
	                   false);
}

int transport_send_control(struct transport *t, uint32_t gen,
                           const uint8_t *data, size_t len)
{
	/* Protocol frames get a reserve on top of the backlog limit, so a
	 * backlog full of app data cannot hold back a SUBSCRIBE. */
	return queue_frame(
	        t, gen, data, len,
	        t ? t->max_send_backlog + t->max_send_backlog / 4 : 0, true);
}

size_t transport_backlog(const struct transport *t)
{
	return t ? bridge_out_bytes(t->bridge) : 0;
}

size_t transport_take_unsent(struct transport *t, transport_unsent_fn fn,
                             void *userdata)
{
	struct bridge_item *list, *it;
	struct frame *f;
	size_t n = 0;

	if (!t)
		return 0;
	/* The purges keep only app frames (item.keep). */
	list = bridge_take_stale(t->bridge);
	while ((it = list)) {
		list = it->next;
		f = bridge_entry(it, struct frame, item);
		fn(f->buf + LWS_PRE, f->item.len, userdata);
		free(f);
		n++;
	}
	return n;
}

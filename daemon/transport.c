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
 * Ownership of a connection (struct conn): created by transport_connect()
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
#include <sys/eventfd.h>
#include <unistd.h>

#include <event2/event.h>
#include <libwebsockets.h>

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

struct tevent {
	struct tevent *next;
	enum tevent_type type;
	uint64_t epoch;
	uint32_t gen;
	size_t len;
	uint8_t *data; /* TEV_MESSAGE, owned */
	char reason[REASON_MAX];
};

struct frame {
	struct frame *next;
	uint64_t epoch;
	bool control; /* a protocol frame: never handed back as unsent */
	size_t len;
	uint8_t buf[]; /* LWS_PRE bytes of headroom, then the payload */
};

struct conn {
	struct conn *next;
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
	struct event_base *base;
	struct event *ev;
	int efd;
	struct transport_callbacks cb;
	void *userdata;
	size_t max_message, max_send_backlog, max_recv_queue;
	unsigned fd_limit;
	char *ca_file;

	struct lws_context *ctx;
	pthread_t thread;
	bool thread_started;

	/* Main thread only. */
	uint64_t cur_epoch; /* also written under lock: lws reads target */
	uint32_t cur_gen;
	bool cur_active; /* connect called, closed not yet delivered */
	bool cur_open;   /* opened delivered */
	bool dispatching, freeing;

	/* lws thread only. */
	struct conn *conns;
	bool stopped;

	pthread_mutex_t lock;
	/* Under lock. */
	bool stop;
	uint64_t target_epoch; /* the connection that should exist, 0: none */
	struct conn *pending;  /* connect not yet picked up by the lws thread */
	struct frame *txq, **txq_tail;
	/* App frames of a connection that went away before they were
	 * written, oldest first, for transport_take_unsent(). */
	struct frame *unsent, **unsent_tail;
	size_t backlog; /* bytes in txq; atomic loads for transport_backlog() */
	bool want_drained;
	uint64_t drained_epoch; /* drained to report, 0: none */
	uint32_t drained_gen;
	struct tevent *rxq, **rxq_tail;
	size_t rxq_bytes;
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

static void set_reason(struct conn *c, const char *fmt, ...)
        __attribute__((format(printf, 2, 3)));

static void set_reason(struct conn *c, const char *fmt, ...)
{
	va_list ap;

	if (c->reason[0])
		return;
	va_start(ap, fmt);
	vsnprintf(c->reason, sizeof(c->reason), fmt, ap);
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

static void wake_main(struct transport *t)
{
	uint64_t one = 1;

	/* Only fails with EAGAIN when the counter is saturated: then the main
	 * thread has a wakeup pending anyway. */
	if (write(t->efd, &one, sizeof(one)) < 0) {
	}
}

/* Called with t->lock held; returns true when main must be woken. */
static bool rxq_append_locked(struct transport *t, struct tevent *ev)
{
	bool was_empty = t->rxq == NULL;

	ev->next = NULL;
	*t->rxq_tail = ev;
	t->rxq_tail = &ev->next;
	t->rxq_bytes += ev->len;
	return was_empty;
}

static void post_event(struct transport *t, struct tevent *ev)
{
	bool wake;

	pthread_mutex_lock(&t->lock);
	wake = rxq_append_locked(t, ev);
	pthread_mutex_unlock(&t->lock);
	if (wake)
		wake_main(t);
}

/* Drops queued frames older than epoch (all of them when epoch is
 * UINT64_MAX); t->lock held. */
static void txq_purge_locked(struct transport *t, uint64_t epoch)
{
	struct frame *f;

	while ((f = t->txq) && f->epoch < epoch) {
		t->txq = f->next;
		__atomic_store_n(&t->backlog, t->backlog - f->len,
		                 __ATOMIC_RELAXED);
		if (f->control) {
			free(f);
			continue;
		}
		/* Accepted app data is not ours to lose: the daemon takes it
		 * back and queues it for the next connection. */
		f->next = NULL;
		*t->unsent_tail = f;
		t->unsent_tail = &f->next;
	}
	if (!t->txq)
		t->txq_tail = &t->txq;
}

static void conn_free(struct conn *c)
{
	if (!c)
		return;
	free(c->opened_ev);
	free(c->closed_ev);
	free(c->rx);
	free(c);
}

/* ---- lws thread ---------------------------------------------------------- */

static void conn_unlink(struct transport *t, struct conn *c)
{
	struct conn **p;

	for (p = &t->conns; *p; p = &(*p)->next) {
		if (*p == c) {
			*p = c->next;
			return;
		}
	}
}

/* Hands the closed event to main; c is freed by the caller. */
static void conn_finish(struct transport *t, struct conn *c)
{
	struct tevent *ev = c->closed_ev;

	c->closed_ev = NULL;
	if (!c->reason[0])
		snprintf(c->reason, sizeof(c->reason), "connection closed");
	snprintf(ev->reason, sizeof(ev->reason), "%s", c->reason);
	/* What this connection never wrote is handed back before main hears
	 * of the close, so the daemon can queue it again at once. */
	pthread_mutex_lock(&t->lock);
	txq_purge_locked(t, c->epoch + 1);
	pthread_mutex_unlock(&t->lock);
	post_event(t, ev);
}

static void maybe_stopped(struct transport *t)
{
	if (t->conns)
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
static void conn_arm_close(struct conn *c)
{
	if (c->established) {
		lws_callback_on_writable(c->wsi);
		/* A peer that stops reading would otherwise hold us forever. */
		lws_set_timeout(c->wsi, PENDING_TIMEOUT_USER_OK,
		                CLOSE_GRACE_SECS);
	} else {
		/* lws replaces this timeout at its next state change (TCP
		 * connected, upgrade answered); the callbacks refuse to go
		 * on with a closing conn at those points too. */
		lws_set_timeout(c->wsi, PENDING_TIMEOUT_USER_OK,
		                LWS_TO_KILL_ASYNC);
	}
}

static void conn_close(struct conn *c, enum lws_close_status status,
                       const char *reason)
{
	if (c->closing || !c->wsi)
		return;
	c->closing = true;
	c->close_status = status;
	set_reason(c, "%s", reason);
	conn_arm_close(c);
}

static void conn_start(struct transport *t, struct conn *c)
{
	struct lws_client_connect_info info;
	struct lws *wsi;

	memset(&info, 0, sizeof(info));
	info.context = t->ctx;
	info.address = c->host;
	info.port = c->port;
	info.ssl_connection = c->tls ? LCCSCF_USE_SSL : 0;
	info.path = c->path;
	/* Host header, SNI and the certificate name check. */
	info.host = c->host;
	info.origin = c->host;
	info.ietf_version_or_minus_one = -1;
	info.local_protocol_name = "dsd-transport";
	info.opaque_user_data = c;
	info.pwsi = &c->wsi;

	c->next = t->conns;
	t->conns = c;
	c->in_connect = true;
	wsi = lws_client_connect_via_info(&info);
	c->in_connect = false;
	if (c->destroyed) {
		/* WSI_DESTROY already ran inside the call and posted closed. */
		conn_unlink(t, c);
		conn_free(c);
		return;
	}
	if (!wsi) {
		c->wsi = NULL;
		set_reason(c, "connect to %s:%u failed", c->host, c->port);
		conn_unlink(t, c);
		conn_finish(t, c);
		conn_free(c);
		return;
	}
	c->wsi = wsi;
}

/* Makes the connections match what the main thread asked for. */
static void reconcile(struct transport *t)
{
	struct conn *start = NULL, *c;
	uint64_t target;
	bool stop, frames;

	pthread_mutex_lock(&t->lock);
	stop = t->stop;
	target = t->target_epoch;
	if (t->pending && t->pending->epoch == target && !stop) {
		start = t->pending;
		t->pending = NULL;
	}
	frames = t->txq != NULL;
	pthread_mutex_unlock(&t->lock);

	for (c = t->conns; c; c = c->next) {
		if (stop)
			conn_close(c, LWS_CLOSE_STATUS_GOINGAWAY,
			           "transport stopped");
		else if (c->epoch != target)
			conn_close(c, LWS_CLOSE_STATUS_NORMAL, "disconnected");
		else if (c->established && !c->closing && frames)
			lws_callback_on_writable(c->wsi);
	}
	if (start)
		conn_start(t, start);
	if (stop)
		maybe_stopped(t);
}

static int on_writeable(struct transport *t, struct conn *c)
{
	struct frame *f;
	bool more, drained;
	int n;

	if (c->closing) {
		/* A close frame carries at most 123 bytes of reason. */
		lws_close_reason(c->wsi, c->close_status,
		                 (unsigned char *)c->reason,
		                 strnlen(c->reason, 123));
		return -1;
	}
	for (;;) {
		pthread_mutex_lock(&t->lock);
		txq_purge_locked(t, c->epoch);
		f = t->txq && t->txq->epoch == c->epoch ? t->txq : NULL;
		if (f) {
			t->txq = f->next;
			if (!t->txq)
				t->txq_tail = &t->txq;
			__atomic_store_n(&t->backlog, t->backlog - f->len,
			                 __ATOMIC_RELAXED);
		}
		more = t->txq && t->txq->epoch == c->epoch;
		drained = t->want_drained &&
		          t->backlog <= t->max_send_backlog / 2;
		if (drained) {
			t->want_drained = false;
			t->drained_epoch = c->epoch;
			t->drained_gen = c->gen;
		}
		pthread_mutex_unlock(&t->lock);
		if (drained)
			wake_main(t);
		if (!f)
			break;
		n = lws_write(c->wsi, f->buf + LWS_PRE, f->len,
		              LWS_WRITE_BINARY);
		free(f);
		if (n < 0) {
			set_reason(c, "write failed");
			return -1;
		}
		if (!more)
			break;
		if (lws_send_pipe_choked(c->wsi)) {
			lws_callback_on_writable(c->wsi);
			break;
		}
	}
	return 0;
}

static void on_receive(struct transport *t, struct conn *c, const void *in,
                       size_t len)
{
	struct tevent *ev;
	bool wake, full;

	if (c->closing)
		return;
	if (lws_is_first_fragment(c->wsi)) {
		c->rx_len = 0;
		c->discarding = false;
	}
	if (c->discarding)
		return;
	if (len > t->max_message - c->rx_len) {
		/* Never close here: lws is in the middle of a message. */
		free(c->rx);
		c->rx = NULL;
		c->rx_len = c->rx_cap = 0;
		c->discarding = true;
		set_reason(c, "message over %zu bytes", t->max_message);
		conn_close(c, LWS_CLOSE_STATUS_MESSAGE_TOO_LARGE, c->reason);
		return;
	}
	if (c->rx_len + len > c->rx_cap) {
		size_t cap = c->rx_cap ? c->rx_cap : 4096;
		uint8_t *p;

		while (cap < c->rx_len + len +
		                       lws_remaining_packet_payload(c->wsi) &&
		       cap < t->max_message)
			cap *= 2;
		if (cap > t->max_message)
			cap = t->max_message;
		if (cap < c->rx_len + len)
			cap = c->rx_len + len;
		p = realloc(c->rx, cap);
		if (!p) {
			c->discarding = true;
			conn_close(c, LWS_CLOSE_STATUS_NORMAL, "out of memory");
			return;
		}
		c->rx = p;
		c->rx_cap = cap;
	}
	if (len)
		memcpy(c->rx + c->rx_len, in, len);
	c->rx_len += len;
	if (!lws_is_final_fragment(c->wsi))
		return;

	ev = calloc(1, sizeof(*ev));
	if (!ev) {
		c->discarding = true;
		conn_close(c, LWS_CLOSE_STATUS_NORMAL, "out of memory");
		return;
	}
	ev->type = TEV_MESSAGE;
	ev->epoch = c->epoch;
	ev->gen = c->gen;
	ev->len = c->rx_len;
	ev->data = c->rx;
	c->rx = NULL;
	c->rx_len = c->rx_cap = 0;

	pthread_mutex_lock(&t->lock);
	full = t->rxq_bytes + ev->len > t->max_recv_queue;
	wake = full ? false : rxq_append_locked(t, ev);
	pthread_mutex_unlock(&t->lock);
	if (full) {
		free(ev->data);
		free(ev);
		set_reason(c, "receive queue over %zu bytes",
		           t->max_recv_queue);
		conn_close(c, LWS_CLOSE_STATUS_NORMAL, c->reason);
		return;
	}
	if (wake)
		wake_main(t);
}

static void on_peer_close(struct conn *c, const uint8_t *in, size_t len)
{
	char text[128];
	unsigned code = 1005; /* "no status received", RFC 6455 7.4.1 */

	if (len >= 2)
		code = (unsigned)in[0] << 8 | in[1];
	if (len > 2) {
		sanitize(text, sizeof(text), (const char *)in + 2, len - 2);
		set_reason(c, "closed by server (code %u, \"%s\")", code, text);
	} else {
		set_reason(c, "closed by server (code %u)", code);
	}
}

/* lws's error strings are terse ("Unable to connect", ...) and carry no
 * errno: keep them, and say where to. */
static void on_connection_error(struct conn *c, const char *in)
{
	char text[200];

	if (c->tls_verify_failed) {
		/* "SSL error: <what> (preverify_ok=0;err=20;depth=0)" */
		const char *p = strstr(last_lws_error, "SSL error: ");
		const char *end = p ? strstr(p, " (preverify_ok") : NULL;

		if (p && end) {
			p += strlen("SSL error: ");
			sanitize(text, sizeof(text), p, (size_t)(end - p));
			set_reason(c, "TLS certificate verify failed: %s",
			           text);
		} else {
			set_reason(c, "TLS certificate verify failed");
		}
		return;
	}
	if (!in || !in[0]) {
		set_reason(c, "connect to %s:%u failed", c->host, c->port);
		return;
	}
	sanitize(text, sizeof(text), in, strlen(in));
	set_reason(c, "connect to %s:%u failed: %s", c->host, c->port, text);
}

/*
 * An HTTP redirect (301, 302, 303, 307, 308) in answer to the WebSocket
 * upgrade.  lws would follow it on its own, to any host, and report the
 * result under the original one; the only move between servers deepstream
 * has is its own REDIRECT message, which the connection state machine
 * follows and bounds.  So the attempt fails here, saying where to.
 */
static void on_http_redirect(struct conn *c, const char *location,
                             unsigned status)
{
	char text[160];

	if (!c)
		return;
	sanitize(text, sizeof(text), location ? location : "",
	         location ? strlen(location) : 0);
	set_reason(c,
	           "HTTP %u redirect to \"%s\" at the WebSocket upgrade, not "
	           "followed",
	           status, text);
}

static int callback(struct lws *wsi, enum lws_callback_reasons reason,
                    void *user, void *in, size_t len)
{
	struct transport *t = lws_context_user(lws_get_context(wsi));
	struct conn *c = lws_get_opaque_user_data(wsi);

	(void)user;
	switch (reason) {
	case LWS_CALLBACK_EVENT_WAIT_CANCELLED:
		reconcile(t);
		return 0;
	case LWS_CALLBACK_CLIENT_HTTP_REDIRECT:
		/* Non-zero: lws does not follow it and fails the connect. */
		on_http_redirect(c, in, (unsigned)len);
		return -1;
	default:
		break;
	}
	if (!c)
		return 0;

	switch (reason) {
	case LWS_CALLBACK_CLIENT_APPEND_HANDSHAKE_HEADER:
		/* Superseded or disconnected while connecting. */
		return c->closing ? -1 : 0;
	case LWS_CALLBACK_CLIENT_FILTER_PRE_ESTABLISH:
		return c->closing ? 1 : 0;
	case LWS_CALLBACK_CLIENT_ESTABLISHED:
		c->established = true;
		if (c->closing) {
			conn_arm_close(c);
			break;
		}
		if (c->opened_ev) {
			post_event(t, c->opened_ev);
			c->opened_ev = NULL;
		}
		/* Closes it if it was superseded since
		 * reconcile() ran. */
		reconcile(t);
		break;
	case LWS_CALLBACK_CLIENT_RECEIVE:
		on_receive(t, c, in, len);
		break;
	case LWS_CALLBACK_CLIENT_WRITEABLE:
		return on_writeable(t, c);
	case LWS_CALLBACK_WS_PEER_INITIATED_CLOSE:
		on_peer_close(c, in, len);
		break;
	case LWS_CALLBACK_OPENSSL_PERFORM_SERVER_CERT_VERIFICATION:
		/* len is OpenSSL's preverify_ok; returning 0
		 * keeps its verdict.
		 */
		if (!len)
			c->tls_verify_failed = true;
		break;
	case LWS_CALLBACK_CLIENT_CONNECTION_ERROR:
		on_connection_error(c, in);
		break;
	case LWS_CALLBACK_CLIENT_CLOSED:
		set_reason(c, "connection lost");
		break;
	case LWS_CALLBACK_CLOSED_CLIENT_HTTP:
		if (!c->established)
			set_reason(c, "closed before the "
			              "WebSocket handshake "
			              "completed");
		break;
	case LWS_CALLBACK_WSI_DESTROY:
		lws_set_opaque_user_data(wsi, NULL);
		c->wsi = NULL;
		conn_finish(t, c);
		if (c->in_connect) {
			c->destroyed = true; /* conn_start()
			                        frees it */
			break;
		}
		conn_unlink(t, c);
		conn_free(c);
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

static void deliver(struct transport *t, struct tevent *ev)
{
	bool current = t->cur_active && ev->epoch == t->cur_epoch;

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
			t->cb.message(ev->gen, ev->data, ev->len, t->userdata);
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

static void transport_release(struct transport *t);

static void on_wakeup(evutil_socket_t fd, short what, void *arg)
{
	struct transport *t = arg;
	struct tevent *list, *ev;
	uint64_t n, drained_epoch;
	uint32_t drained_gen;

	(void)what;
	/* Read first, then take the list: see the comment at the top. */
	if (read(fd, &n, sizeof(n)) < 0) {
	}
	pthread_mutex_lock(&t->lock);
	list = t->rxq;
	t->rxq = NULL;
	t->rxq_tail = &t->rxq;
	t->rxq_bytes = 0;
	drained_epoch = t->drained_epoch;
	drained_gen = t->drained_gen;
	t->drained_epoch = 0;
	pthread_mutex_unlock(&t->lock);

	t->dispatching = true;
	while ((ev = list)) {
		list = ev->next;
		if (!t->freeing)
			deliver(t, ev);
		free(ev->data);
		free(ev);
	}
	if (!t->freeing && drained_epoch && t->cur_active && t->cur_open &&
	    drained_epoch == t->cur_epoch && t->cb.drained)
		t->cb.drained(drained_gen, t->userdata);
	t->dispatching = false;
	if (t->freeing)
		transport_release(t);
}

static int parse_url(const char *s, struct conn *c)
{
	struct url u;
	int r;

	r = url_parse(s, &u, NULL);
	if (r < 0)
		return r;
	c->tls = u.tls;
	c->port = u.port;
	memcpy(c->host, u.host, sizeof(c->host));
	memcpy(c->path, u.path, sizeof(c->path));
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
	t->efd = -1;
	pthread_mutex_init(&t->lock, NULL);
	t->txq_tail = &t->txq;
	t->unsent_tail = &t->unsent;
	t->rxq_tail = &t->rxq;
	t->base = base;
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

	t->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (t->efd < 0) {
		r = -errno;
		goto fail;
	}
	t->ev = event_new(base, t->efd, EV_READ | EV_PERSIST, on_wakeup, t);
	if (!t->ev || event_add(t->ev, NULL) < 0) {
		r = -ENOMEM;
		goto fail;
	}

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
	struct tevent *ev;
	struct frame *f;

	while ((ev = t->rxq)) {
		t->rxq = ev->next;
		free(ev->data);
		free(ev);
	}
	while ((f = t->txq)) {
		t->txq = f->next;
		free(f);
	}
	while ((f = t->unsent)) {
		t->unsent = f->next;
		free(f);
	}
	conn_free(t->pending);
	if (t->ev)
		event_free(t->ev);
	if (t->efd >= 0)
		close(t->efd);
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
	/* Inside a callback on_wakeup() still walks its list: it frees. */
	t->freeing = true;
	if (!t->dispatching)
		transport_release(t);
}

/* Cancels a connect the lws thread has not picked up yet; t->lock held.
 * Returns true when main must be woken for the closed event. */
static bool cancel_pending_locked(struct transport *t, const char *reason)
{
	struct conn *c = t->pending;
	struct tevent *ev;

	if (!c)
		return false;
	t->pending = NULL;
	ev = c->closed_ev;
	c->closed_ev = NULL;
	snprintf(ev->reason, sizeof(ev->reason), "%s", reason);
	conn_free(c);
	return rxq_append_locked(t, ev);
}

int transport_connect(struct transport *t, const char *url, uint32_t gen)
{
	struct conn *c;
	bool wake;
	int r;

	if (!t || !url || t->freeing)
		return -EINVAL;
	c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	r = parse_url(url, c);
	if (r < 0) {
		conn_free(c);
		return r;
	}
	c->gen = gen;
	c->opened_ev = calloc(1, sizeof(*c->opened_ev));
	c->closed_ev = calloc(1, sizeof(*c->closed_ev));
	if (!c->opened_ev || !c->closed_ev) {
		conn_free(c);
		return -ENOMEM;
	}
	c->opened_ev->type = TEV_OPENED;
	c->closed_ev->type = TEV_CLOSED;
	c->opened_ev->gen = c->closed_ev->gen = gen;

	pthread_mutex_lock(&t->lock);
	wake = cancel_pending_locked(t, "superseded by a new connect");
	c->epoch = ++t->cur_epoch;
	c->opened_ev->epoch = c->closed_ev->epoch = c->epoch;
	t->target_epoch = c->epoch;
	t->pending = c;
	txq_purge_locked(t, UINT64_MAX);
	t->want_drained = false;
	pthread_mutex_unlock(&t->lock);
	if (wake)
		wake_main(t);
	lws_cancel_service(t->ctx);

	t->cur_gen = gen;
	t->cur_active = true;
	t->cur_open = false;
	return 0;
}

void transport_disconnect(struct transport *t, uint32_t gen)
{
	bool wake;

	if (!t || t->freeing || !t->cur_active || gen != t->cur_gen)
		return;
	pthread_mutex_lock(&t->lock);
	wake = cancel_pending_locked(t, "disconnected");
	t->target_epoch = 0;
	txq_purge_locked(t, UINT64_MAX);
	t->want_drained = false;
	pthread_mutex_unlock(&t->lock);
	if (wake)
		wake_main(t);
	lws_cancel_service(t->ctx);
	/* cur_active stays set until closed is delivered, so opened and
	 * message events still in flight are dropped but closed is not. */
	t->cur_open = false;
}

static int queue_frame(struct transport *t, uint32_t gen, const uint8_t *data,
                       size_t len, size_t limit, bool control)
{
	struct frame *f;
	int r = 0;

	if (!t || (!data && len))
		return -EINVAL;
	if (t->freeing || !t->cur_active || !t->cur_open || gen != t->cur_gen)
		return -ENOTCONN;
	if (len > t->max_send_backlog)
		return -EMSGSIZE;
	f = malloc(sizeof(*f) + LWS_PRE + len);
	if (!f)
		return -ENOMEM;
	f->next = NULL;
	f->epoch = t->cur_epoch;
	f->control = control;
	f->len = len;
	if (len)
		memcpy(f->buf + LWS_PRE, data, len);

	pthread_mutex_lock(&t->lock);
	if (t->backlog + len > limit) {
		t->want_drained = true;
		r = -ENOBUFS;
	} else {
		*t->txq_tail = f;
		t->txq_tail = &f->next;
		__atomic_store_n(&t->backlog, t->backlog + len,
		                 __ATOMIC_RELAXED);
	}
	pthread_mutex_unlock(&t->lock);
	if (r < 0) {
		free(f);
		return r;
	}
	lws_cancel_service(t->ctx);
	return 0;
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
	return t ? __atomic_load_n(&t->backlog, __ATOMIC_RELAXED) : 0;
}

size_t transport_take_unsent(struct transport *t, transport_unsent_fn fn,
                             void *userdata)
{
	struct frame *list, *f;
	size_t n = 0;

	if (!t)
		return 0;
	pthread_mutex_lock(&t->lock);
	list = t->unsent;
	t->unsent = NULL;
	t->unsent_tail = &t->unsent;
	pthread_mutex_unlock(&t->lock);
	while ((f = list)) {
		list = f->next;
		fn(f->buf + LWS_PRE, f->len, userdata);
		free(f);
		n++;
	}
	return n;
}

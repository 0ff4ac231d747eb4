/*
 * The lws thread of the transport: dsd's libwebsockets protocol callback and
 * one struct ws_link per connection attempt.  ws_thread.h says how the main
 * thread talks to it; docs/libwebsockets.md has the facts about lws 4.1.6
 * behind the rules below and what goes wrong without each.
 *
 * reconcile() runs on every LWS_CALLBACK_EVENT_WAIT_CANCELLED (the main
 * thread's lws_cancel_service()) and makes the real connections match the
 * wanted state: starts the pending connect, closes stale links, asks for
 * WRITEABLE where frames wait in the bridge.
 *
 * Ownership of a link: created by transport_connect() on the main thread
 * (ws_link_new()), with its `closed` event preallocated so that the one
 * closed callback per connect can never be lost to a failed malloc.  While
 * it sits in w->pending the main thread may cancel it (ws_link_cancel());
 * once reconcile() takes it, the lws thread owns it and frees it in
 * LWS_CALLBACK_WSI_DESTROY, the one callback lws 4.1.6 delivers for every
 * way a client wsi can end (a server that accepts TCP but never answers
 * the upgrade gets neither CONNECTION_ERROR nor CLIENT_CLOSED).
 *
 * Writing: only in CLIENT_WRITEABLE, frames of the link's own epoch
 * (bridge_out_pop_run()).  dsd frames them itself (ws_frame.c) into one
 * buffer, up to WRITE_BATCH bytes, and hands the buffer to lws as raw
 * bytes: one send() for many frames instead of one per frame, each with
 * its own read of /dev/urandom (docs/libwebsockets.md, section 5).
 *
 * Receiving: a message that arrives in one callback (one frame of at most
 * rx_buffer_size, nearly all of them) is copied into the batch
 * (w->batch, TEV_MESSAGES in ws_thread.h); everything one lws_service()
 * pass read is posted as one event once the pass returns, or before any
 * other event, so the main thread is woken and takes the lock once for the
 * lot and nothing allocates per message.  A message in pieces is put
 * together in the link's rx buffer and posted on its own (TEV_MESSAGE)
 * after the batch before it.  The receive queue's bound counts both.
 *
 * Closing: an established link is closed only from CLIENT_WRITEABLE
 * (lws_close_reason + return -1); closing inside CLIENT_RECEIVE in the
 * middle of a fragmented message corrupts lws's heap.  A connect still in
 * progress is killed with lws_set_timeout(..., LWS_TO_KILL_ASYNC).
 */
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "url.h"
#include "ws_deframe.h"
#include "ws_frame.h"
#include "ws_mask.h"
#include "ws_thread.h"

/* Seconds an established connection gets to finish its close handshake
 * (or to drain a choked socket) before lws drops it. */
#define CLOSE_GRACE_SECS 5

/* Bytes of frames gathered for one write (a bigger frame goes alone), and
 * so the most lws sends in one send() (the protocol's tx_packet_size);
 * lws keeps what the socket does not take and sends it first. */
#define WRITE_BATCH (64 * 1024)
/* Received messages gathered for one hand-over to the main thread: the
 * first allocation, and the size past which the next message starts a new
 * batch. */
#define BATCH_MIN   4096
#define BATCH_FLUSH (64 * 1024)

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
	char reason[WS_REASON_MAX]; /* first reason wins */
	uint8_t *rx;
	size_t rx_len, rx_cap;
	uint8_t *tx; /* LWS_PRE bytes, then frames gathered for one write */
	size_t tx_cap;
	struct ws_masks masks;
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

void ws_log_line(int level, const char *line)
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

void ws_tevent_free(struct bridge_item *it)
{
	struct tevent *ev = bridge_entry(it, struct tevent, item);

	free(ev->data);
	free(ev);
}

void ws_frame_free(struct bridge_item *it)
{
	free(bridge_entry(it, struct frame, item));
}

/* For events that must reach main whatever the receive queue holds. */
static void post_event(struct ws_thread *w, struct tevent *ev)
{
	bridge_in_post(w->bridge, &ev->item, SIZE_MAX);
}

/* lws thread: hands the messages gathered so far to main.  The receive
 * queue's bound was checked as each went in (batch_add()). */
static void batch_flush(struct ws_thread *w)
{
	struct tevent *b = w->batch;

	if (!b)
		return;
	w->batch = NULL;
	post_event(w, b);
}

/* lws thread: every other event goes after the messages before it. */
static void post_in_order(struct ws_thread *w, struct tevent *ev)
{
	batch_flush(w);
	post_event(w, ev);
}

void ws_link_free(struct ws_link *wl)
{
	if (!wl)
		return;
	free(wl->opened_ev);
	free(wl->closed_ev);
	free(wl->rx);
	free(wl->tx);
	free(wl);
}

/* ---- lws thread ---------------------------------------------------------- */

static void link_remove(struct ws_thread *w, struct ws_link *wl)
{
	struct ws_link **p;

	for (p = &w->links; *p; p = &(*p)->next) {
		if (*p == wl) {
			*p = wl->next;
			return;
		}
	}
}

/* Hands the closed event to main; wl is freed by the caller. */
static void link_finish(struct ws_thread *w, struct ws_link *wl)
{
	struct tevent *ev = wl->closed_ev;

	wl->closed_ev = NULL;
	if (!wl->reason[0])
		snprintf(wl->reason, sizeof(wl->reason), "connection closed");
	snprintf(ev->reason, sizeof(ev->reason), "%s", wl->reason);
	/* What this connection never wrote is handed back before main hears
	 * of the close, so the daemon can queue it again at once. */
	bridge_out_purge(w->bridge, wl->epoch + 1);
	post_in_order(w, ev);
}

static void maybe_stopped(struct ws_thread *w)
{
	if (w->links)
		return;
	pthread_mutex_lock(&w->lock);
	if (w->stop)
		w->stopped = true;
	pthread_mutex_unlock(&w->lock);
	/* Without this lws_service() may sleep until its next timer. */
	if (w->stopped)
		lws_cancel_service(w->ctx);
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

static void link_start(struct ws_thread *w, struct ws_link *wl)
{
	struct lws_client_connect_info info;
	struct lws *wsi;

	memset(&info, 0, sizeof(info));
	info.context = w->ctx;
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

	wl->next = w->links;
	w->links = wl;
	wl->in_connect = true;
	wsi = lws_client_connect_via_info(&info);
	wl->in_connect = false;
	if (wl->destroyed) {
		/* WSI_DESTROY already ran inside the call and posted closed. */
		link_remove(w, wl);
		ws_link_free(wl);
		return;
	}
	if (!wsi) {
		wl->wsi = NULL;
		set_reason(wl, "connect to %s:%u failed", wl->host, wl->port);
		link_remove(w, wl);
		link_finish(w, wl);
		ws_link_free(wl);
		return;
	}
	wl->wsi = wsi;
}

/* Makes the connections match what the main thread asked for. */
static void reconcile(struct ws_thread *w)
{
	struct ws_link *start = NULL, *wl;
	uint64_t target;
	bool stop, frames;

	pthread_mutex_lock(&w->lock);
	stop = w->stop;
	target = w->target_epoch;
	if (w->pending && w->pending->epoch == target && !stop) {
		start = w->pending;
		w->pending = NULL;
	}
	pthread_mutex_unlock(&w->lock);
	frames = bridge_out_pending(w->bridge);

	for (wl = w->links; wl; wl = wl->next) {
		if (stop)
			link_close(wl, LWS_CLOSE_STATUS_GOINGAWAY,
			           "transport stopped");
		else if (wl->epoch != target)
			link_close(wl, LWS_CLOSE_STATUS_NORMAL, "disconnected");
		else if (wl->established && !wl->closing && frames)
			lws_callback_on_writable(wl->wsi);
	}
	if (start)
		link_start(w, start);
	if (stop)
		maybe_stopped(w);
}

/* Room for len bytes of frames after the LWS_PRE headroom. */
static int tx_reserve(struct ws_link *wl, size_t len)
{
	uint8_t *p;
	size_t cap = wl->tx_cap ? wl->tx_cap : LWS_PRE + WRITE_BATCH;

	if (LWS_PRE + len <= wl->tx_cap)
		return 0;
	while (cap < LWS_PRE + len)
		cap *= 2;
	p = realloc(wl->tx, cap);
	if (!p)
		return -ENOMEM;
	wl->tx = p;
	wl->tx_cap = cap;
	return 0;
}

/* Gathers the waiting frames into one buffer and writes it.  Returns the
 * bytes written (0: nothing waited), or -1 with the reason set. */
/* The blocks of written small frames, for the main thread to reuse (see
 * FRAME_SPARE_SIZE); what the pool has no room for is freed. */
static void give_back(struct ws_thread *w, struct bridge_item *head)
{
	struct bridge_item *next;

	pthread_mutex_lock(&w->lock);
	for (; head != NULL && w->n_spare < FRAME_SPARE_MAX; head = next) {
		next = head->next;
		head->next = w->spare;
		w->spare = head;
		w->n_spare++;
	}
	pthread_mutex_unlock(&w->lock);
	for (; head != NULL; head = next) {
		next = head->next;
		ws_frame_free(head);
	}
}

static int write_batch(struct ws_thread *w, struct ws_link *wl, bool *ret_more)
{
	struct bridge_item *it, *run, *spare = NULL;
	const uint8_t *mask = NULL;
	struct frame *f;
	size_t len = 0;
	bool more = false;

	/* Frames taken a run at a time: one lock for many. */
	while (len < WRITE_BATCH) {
		run = bridge_out_pop_run(w->bridge, wl->epoch,
		                         WRITE_BATCH - len, &more);
		if (!run)
			break;
		while ((it = run) != NULL) {
			run = it->next;
			f = bridge_entry(it, struct frame, item);
			mask = ws_masks_next(&wl->masks);
			if (!mask ||
			    tx_reserve(wl, len + ws_frame_size(it->len)) < 0) {
				it->next = run;
				run = it;
				goto fail;
			}
			len += ws_frame_write(wl->tx + LWS_PRE + len,
			                      f->buf + LWS_PRE, it->len, mask);
			if (f->cap == FRAME_SPARE_SIZE) {
				it->next = spare;
				spare = it;
			} else {
				free(f);
			}
		}
		if (!more)
			break;
	}
	if (spare != NULL)
		give_back(w, spare);
	*ret_more = more;
	if (len == 0)
		return 0;
	/* Framed already: lws only sends the bytes (and keeps what the socket
	 * does not take, ahead of anything written later). */
	if (lws_write(wl->wsi, wl->tx + LWS_PRE, len, LWS_WRITE_RAW) < 0) {
		set_reason(wl, "write failed");
		return -1;
	}
	return (int)len;

fail:
	while ((it = run) != NULL) {
		run = it->next;
		ws_frame_free(it);
	}
	if (spare != NULL)
		give_back(w, spare);
	set_reason(wl, mask ? "out of memory" : "no random");
	return -1;
}

static int on_writeable(struct ws_thread *w, struct ws_link *wl)
{
	bool more = false;

	if (wl->closing) {
		/* A close frame carries at most 123 bytes of reason. */
		lws_close_reason(wl->wsi, wl->close_status,
		                 (unsigned char *)wl->reason,
		                 strnlen(wl->reason, 123));
		return -1;
	}
	do {
		if (write_batch(w, wl, &more) < 0)
			return -1;
	} while (more && !lws_send_pipe_choked(wl->wsi));
	if (more)
		lws_callback_on_writable(wl->wsi);
	/* A frame far over the batch size grew the buffer: give it back. */
	if (wl->tx_cap > 4 * (LWS_PRE + WRITE_BATCH)) {
		free(wl->tx);
		wl->tx = NULL;
		wl->tx_cap = 0;
	}
	return 0;
}

/* Past max_recv_queue bytes received and not yet dispatched by the main
 * loop, the connection closes instead of buffering without end. */
static bool recv_queue_full(struct ws_thread *w, struct ws_link *wl, size_t len)
{
	size_t queued = bridge_in_bytes(w->bridge);

	if (w->batch)
		queued += w->batch->item.len;
	if (queued <= w->max_recv_queue && len <= w->max_recv_queue - queued)
		return false;
	set_reason(wl, "receive queue over %zu bytes", w->max_recv_queue);
	link_close(wl, LWS_CLOSE_STATUS_NORMAL, wl->reason);
	return true;
}

/* A message that arrived whole goes into the batch (ws_thread.h,
 * TEV_MESSAGES), which is posted once lws_service() returns, before any
 * other event, or when it holds BATCH_FLUSH bytes. */
static void batch_add(struct ws_thread *w, struct ws_link *wl, const void *in,
                      size_t len)
{
	struct tevent *b = w->batch;
	size_t need, cap;
	uint32_t n = (uint32_t)len;
	uint8_t *p;

	if (b && (b->item.epoch != wl->epoch || b->used >= BATCH_FLUSH)) {
		batch_flush(w);
		b = NULL;
	}
	if (recv_queue_full(w, wl, len))
		return;
	if (!b) {
		b = malloc(sizeof(*b));
		if (!b)
			goto oom;
		*b = (struct tevent){
		        .item.epoch = wl->epoch,
		        .type = TEV_MESSAGES,
		        .gen = wl->gen,
		};
		w->batch = b;
	}
	need = b->used + TEV_LEN_SIZE + len;
	if (need > b->cap) {
		cap = b->cap ? b->cap : BATCH_MIN;
		while (cap < need)
			cap *= 2;
		p = realloc(b->data, cap);
		if (!p)
			goto oom;
		b->data = p;
		b->cap = cap;
	}
	memcpy(b->data + b->used, &n, TEV_LEN_SIZE);
	if (len)
		memcpy(b->data + b->used + TEV_LEN_SIZE, in, len);
	b->used = need;
	b->item.len += len;
	return;

oom:
	wl->discarding = true;
	link_close(wl, LWS_CLOSE_STATUS_NORMAL, "out of memory");
}

static void on_receive(struct ws_thread *w, struct ws_link *wl, const void *in,
                       size_t len)
{
	struct tevent *ev;
	bool first;

	if (wl->closing)
		return;
	first = lws_is_first_fragment(wl->wsi);
	if (first) {
		wl->rx_len = 0;
		wl->discarding = false;
	}
	if (wl->discarding)
		return;
	if (len > w->max_message - wl->rx_len) {
		/* Never close here: lws is in the middle of a message. */
		free(wl->rx);
		wl->rx = NULL;
		wl->rx_len = wl->rx_cap = 0;
		wl->discarding = true;
		set_reason(wl, "message over %zu bytes", w->max_message);
		link_close(wl, LWS_CLOSE_STATUS_MESSAGE_TOO_LARGE, wl->reason);
		return;
	}
	/* The common case, a message in one frame of at most rx_buffer_size:
	 * no reassembly, no allocation of its own. */
	if (first && lws_is_final_fragment(wl->wsi)) {
		batch_add(w, wl, in, len);
		return;
	}
	if (wl->rx_len + len > wl->rx_cap) {
		size_t cap = wl->rx_cap ? wl->rx_cap : 4096;
		uint8_t *p;

		while (cap < wl->rx_len + len +
		                       lws_remaining_packet_payload(wl->wsi) &&
		       cap < w->max_message)
			cap *= 2;
		if (cap > w->max_message)
			cap = w->max_message;
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
	if (first || !lws_is_final_fragment(wl->wsi))
		return;

	/* A message in pieces is handed over in the buffer it was put
	 * together in, after the messages before it. */
	batch_flush(w);
	if (recv_queue_full(w, wl, wl->rx_len))
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
	post_event(w, ev);
}

static void on_peer_close(struct ws_link *wl, const uint8_t *in, size_t len)
{
	if (!wl->reason[0])
		ws_close_text(wl->reason, sizeof(wl->reason), in, len);
}

/* lws's error strings are terse ("Unable to connect", ...) and carry no
 * errno: keep them, and say where to. */
static void on_connection_error(struct ws_thread *w, struct ws_link *wl,
                                struct lws *wsi, const char *in)
{
	unsigned status = lws_http_client_http_response(wsi);
	char text[200], answer[96];

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
		set_reason(wl, "connect to %s:%u%s%s failed", wl->host,
		           wl->port, w->proxy[0] ? " through the proxy " : "",
		           w->proxy);
		return;
	}
	/* lws's words for an upgrade answered with another HTTP status (a
	 * TLS-terminating proxy answers 400 for a missing or untrusted
	 * client certificate): say which. */
	if (status && status != 101 && strncmp(in, "HS: ws upgrade", 14) == 0) {
		snprintf(answer, sizeof(answer),
		         "HTTP %u instead of 101 to the WebSocket upgrade",
		         status);
		in = answer;
	}
	/* lws's words for a CONNECT the proxy did not answer with 200. */
	if (strcmp(in, "proxy not h1") == 0)
		in = "the proxy refused the tunnel (no 200 answer to CONNECT: "
		     "wrong credentials, or a port it does not allow?)";
	sanitize(text, sizeof(text), in, strlen(in));
	set_reason(wl, "connect to %s:%u%s%s failed: %s", wl->host, wl->port,
	           w->proxy[0] ? " through the proxy " : "", w->proxy, text);
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
	struct ws_thread *w = lws_context_user(lws_get_context(wsi));
	struct ws_link *wl = lws_get_opaque_user_data(wsi);

	(void)user;
	switch (reason) {
	case LWS_CALLBACK_EVENT_WAIT_CANCELLED:
		reconcile(w);
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
			post_in_order(w, wl->opened_ev);
			wl->opened_ev = NULL;
		}
		/* Closes it if it was superseded since
		 * reconcile() ran. */
		reconcile(w);
		break;
	case LWS_CALLBACK_CLIENT_RECEIVE:
		on_receive(w, wl, in, len);
		break;
	case LWS_CALLBACK_CLIENT_WRITEABLE:
		return on_writeable(w, wl);
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
		on_connection_error(w, wl, wsi, in);
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
		link_finish(w, wl);
		if (wl->in_connect) {
			wl->destroyed = true; /* link_start()
			                        frees it */
			break;
		}
		link_remove(w, wl);
		ws_link_free(wl);
		pthread_mutex_lock(&w->lock);
		bool stop = w->stop;
		pthread_mutex_unlock(&w->lock);
		if (stop)
			maybe_stopped(w);
		break;
	default:
		break;
	}
	return 0;
}

const struct lws_protocols ws_protocols[] = {
        {"dsd-transport", callback, 0, 0, 0, NULL, WRITE_BATCH},
        {NULL, NULL, 0, 0, 0, NULL, 0},
};

void *ws_thread_main(void *arg)
{
	struct ws_thread *w = arg;

	while (!w->stopped) {
		if (lws_service(w->ctx, 0) < 0)
			break;
		/* What one pass read goes to the main thread at once: one
		 * hand-over (and at most one wakeup) for the lot. */
		batch_flush(w);
	}
	batch_flush(w);
	return NULL;
}

/* ---- main thread --------------------------------------------------------- */

int ws_link_new(const char *url, uint32_t gen, uint64_t epoch,
                struct ws_link **ret)
{
	struct ws_link *wl;
	struct url u;
	int r;

	r = url_parse(url, &u, NULL);
	if (r < 0)
		return r;
	wl = calloc(1, sizeof(*wl));
	if (!wl)
		return -ENOMEM;
	wl->epoch = epoch;
	wl->gen = gen;
	ws_masks_init(&wl->masks);
	wl->tls = u.tls;
	wl->port = u.port;
	memcpy(wl->host, u.host, sizeof(wl->host));
	memcpy(wl->path, u.path, sizeof(wl->path));
	wl->opened_ev = calloc(1, sizeof(*wl->opened_ev));
	wl->closed_ev = calloc(1, sizeof(*wl->closed_ev));
	if (!wl->opened_ev || !wl->closed_ev) {
		ws_link_free(wl);
		return -ENOMEM;
	}
	wl->opened_ev->type = TEV_OPENED;
	wl->closed_ev->type = TEV_CLOSED;
	wl->opened_ev->gen = wl->closed_ev->gen = gen;
	wl->opened_ev->item.epoch = wl->closed_ev->item.epoch = epoch;
	*ret = wl;
	return 0;
}

void ws_link_cancel(struct ws_thread *w, struct ws_link *wl, const char *reason)
{
	struct tevent *ev;

	if (!wl)
		return;
	ev = wl->closed_ev;
	wl->closed_ev = NULL;
	snprintf(ev->reason, sizeof(ev->reason), "%s", reason);
	ws_link_free(wl);
	post_event(w, ev);
}

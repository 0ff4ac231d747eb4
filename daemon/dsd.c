/*
 * The root object's lifecycle: build everything, run the loop, take
 * signals, reload the configuration, tell systemd how things are.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/event.h>
#include <event2/thread.h>
#include <systemd/sd-daemon.h>

#include "dsd.h"
#include "ipc_server.h"
#include "log.h"
#include "transport.h"

uint64_t dsd_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

int64_t dsd_unix_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t dsd_mono_to_unix(uint64_t mono)
{
	return dsd_unix_ms() - (int64_t)(dsd_now() - mono);
}

void dsd_notify_status(struct dsd *d)
{
	char line[CONN_REASON_MAX + 128];

	snprintf(line, sizeof(line), "STATUS=%s: %s; queue %zu",
	         conn_state_name(conn_get_state(&d->conn)),
	         conn_reason(&d->conn), dsd_queue_depth(d));
	/* Without systemd this is a no-op; a dead notify socket is only
	 * worth a debug line, never fatal. */
	if (sd_notify(0, line) < 0)
		log_debug("sd_notify(STATUS) failed");
}

static void on_notify_timer(evutil_socket_t fd, short what, void *userdata)
{
	(void)fd;
	(void)what;
	dsd_notify_status(userdata);
}

void dsd_notify_status_soon(struct dsd *d)
{
	struct timeval tv = {0, 200 * 1000};

	if (d->notify_timer != NULL && !evtimer_pending(d->notify_timer, NULL))
		evtimer_add(d->notify_timer, &tv);
}

void dsd_stop(struct dsd *d, int exit_code)
{
	struct conn_input in = {.kind = CONN_IN_CLOSE};

	if (d->stopping)
		return;
	d->stopping = true;
	d->exit_code = exit_code;
	if (dsd_queue_depth(d) > 0)
		log_warn("discarding %zu queued emits: dsd is stopping",
		         dsd_queue_depth(d));
	sd_notify(0, "STOPPING=1");
	upstream_feed(d, &in);
	event_base_loopexit(d->base, NULL);
}

static void on_signal(evutil_socket_t sig, short what, void *userdata)
{
	struct dsd *d = userdata;
	char err[512];

	(void)what;
	if (sig == SIGHUP) {
		/* dsd_reload() logs a refusal itself. */
		dsd_reload(d, err, sizeof(err));
		return;
	}
	log_notice("%s: closing the platform connection",
	           sig == SIGTERM ? "SIGTERM" : "SIGINT");
	dsd_stop(d, 0);
}

static void on_watchdog(evutil_socket_t fd, short what, void *userdata)
{
	(void)fd;
	(void)what;
	(void)userdata;
	/* Fed from the loop itself: a stuck loop stops feeding it and
	 * systemd restarts us. */
	sd_notify(0, "WATCHDOG=1");
}

static int setup_watchdog(struct dsd *d)
{
	uint64_t usec = 0;
	struct timeval tv;

	if (sd_watchdog_enabled(0, &usec) <= 0 || usec == 0)
		return 0;
	d->watchdog = event_new(d->base, -1, EV_PERSIST, on_watchdog, d);
	if (d->watchdog == NULL)
		return -ENOMEM;
	usec /= 2;
	tv.tv_sec = (time_t)(usec / 1000000);
	tv.tv_usec = (suseconds_t)(usec % 1000000);
	event_add(d->watchdog, &tv);
	log_debug("watchdog: pinging every %llu us", (unsigned long long)usec);
	return 0;
}

/* libevent's own complaints go into our log, at matching priorities. */
static void on_libevent_log(int severity, const char *msg)
{
	int level = LOG_DEBUG;

	if (severity == EVENT_LOG_ERR)
		level = LOG_ERR;
	else if (severity == EVENT_LOG_WARN)
		level = LOG_WARNING;
	else if (severity == EVENT_LOG_MSG)
		level = LOG_INFO;
	log_full(level, "libevent: %s", msg);
}

static int setup_signals(struct dsd *d)
{
	d->sig_term = evsignal_new(d->base, SIGTERM, on_signal, d);
	d->sig_int = evsignal_new(d->base, SIGINT, on_signal, d);
	d->sig_hup = evsignal_new(d->base, SIGHUP, on_signal, d);
	if (!d->sig_term || !d->sig_int || !d->sig_hup)
		return -ENOMEM;
	event_add(d->sig_term, NULL);
	event_add(d->sig_int, NULL);
	event_add(d->sig_hup, NULL);
	/* Peers that go away must not kill us. */
	signal(SIGPIPE, SIG_IGN);
	return 0;
}

int dsd_new(const char *config_path, struct dsd_config *cfg, int passed_fd,
            struct dsd **ret)
{
	static const struct ipc_server_callbacks ipc_cb = {
	        .request = control_request,
	        .disconnected = control_disconnected,
	        .rejected = control_rejected,
	};
	struct ipc_server_limits lim = {0};
	struct dsd *d;
	int r;

	d = calloc(1, sizeof(*d));
	if (d == NULL)
		return -ENOMEM;
	TAILQ_INIT(&d->clients);
	/* Repeated failures are logged a few times per window, then summed. */
	d->reconnect_log = (struct log_ratelimit)LOG_RATELIMIT_INIT(60000, 5);
	d->queue_log = (struct log_ratelimit)LOG_RATELIMIT_INIT(10000, 3);
	d->refuse_log = (struct log_ratelimit)LOG_RATELIMIT_INIT(10000, 3);
	d->deny_log = (struct log_ratelimit)LOG_RATELIMIT_INIT(10000, 3);
	d->passed_fd = passed_fd;
	d->started_mono = dsd_now();
	d->cfg = *cfg;
	memset(cfg, 0, sizeof(*cfg));
	d->config_path = config_path ? strdup(config_path) : NULL;
	event_set_log_callback(on_libevent_log);
	d->base = event_base_new();
	if (d->base == NULL) {
		r = -ENOMEM;
		goto fail;
	}
	r = setup_signals(d);
	if (r < 0)
		goto fail;
	d->notify_timer = evtimer_new(d->base, on_notify_timer, d);
	if (d->notify_timer == NULL) {
		r = -ENOMEM;
		goto fail;
	}
	r = pubsub_new(d);
	if (r < 0)
		goto fail;
	lim.max_clients = d->cfg.max_clients;
	lim.client_out_limit = d->cfg.client_buffer;
	r = ipc_server_new(d->base, d->cfg.socket_path, passed_fd, &lim,
	                   &ipc_cb, d, &d->ipc);
	if (r < 0) {
		log_err("cannot listen on %s: %s", d->cfg.socket_path,
		        strerror(-r));
		goto fail;
	}
	r = setup_watchdog(d);
	if (r < 0)
		goto fail;
	*ret = d;
	return 0;
fail:
	dsd_free(d);
	return r;
}

int dsd_run(struct dsd *d)
{
	int r;

	r = upstream_start(d);
	if (r < 0) {
		log_err("cannot start the platform connection: %s",
		        strerror(-r));
		return r;
	}
	/* Ready means the local socket takes clients; the platform may
	 * still be far away, and apps' writes are queued meanwhile. */
	sd_notify(0, "READY=1");
	dsd_notify_status(d);
	log_notice("dsd %s listening on %s, platform %s", PACKAGE_VERSION,
	           d->cfg.socket_path, d->cfg.url);
	event_base_dispatch(d->base);
	return d->exit_code;
}

void dsd_free(struct dsd *d)
{
	if (d == NULL)
		return;
	/* The transport first: its thread must be gone before the loop. */
	transport_free(d->transport);
	ipc_server_free(d->ipc);
	pubsub_free(d);
	if (d->conn_timer)
		event_free(d->conn_timer);
	if (d->watchdog)
		event_free(d->watchdog);
	if (d->notify_timer)
		event_free(d->notify_timer);
	if (d->sig_term)
		event_free(d->sig_term);
	if (d->sig_int)
		event_free(d->sig_int);
	if (d->sig_hup)
		event_free(d->sig_hup);
	if (d->base)
		event_base_free(d->base);
	config_free(&d->cfg);
	free(d->config_path);
	free(d);
}

static bool str_differs(const char *a, const char *b)
{
	if (a == NULL || b == NULL)
		return a != b;
	return strcmp(a, b) != 0;
}

/* A fresh instance is due unless the operator paused. */
static bool wants_connection(const struct dsd *d)
{
	return conn_get_state(&d->conn) != CONN_OFFLINE;
}

/*
 * The trusted CAs are fixed when a transport is made, so a new caFile needs
 * a new one.  The old one goes first: lws 4.1 leaks a TLS context when two
 * live side by side and the older is destroyed.  Its connection goes with
 * it (unwritten emits are taken back); the caller restarts the connection.
 * If the new CA cannot be used, the old transport is made again and the
 * reload is refused.
 */
static int swap_transport(struct dsd *d, const struct dsd_config *fresh,
                          char *err, size_t errlen)
{
	int r;

	transport_disconnect(d->transport, conn_generation(&d->conn));
	pubsub_take_back_unsent(d, d->transport);
	transport_free(d->transport);
	d->transport = NULL;
	d->ready_gen = 0;
	r = upstream_transport_new(d, fresh, &d->transport);
	if (r == 0)
		return 0;
	snprintf(err, errlen, "cannot use caFile %s: %s",
	         fresh->ca_file ? fresh->ca_file : "(system)", strerror(-r));
	if (upstream_transport_new(d, &d->cfg, &d->transport) < 0) {
		log_err("cannot make a transport again: stopping");
		dsd_stop(d, 1);
	}
	return r;
}

int dsd_reload(struct dsd *d, char *err, size_t errlen)
{
	struct dsd_config fresh;
	struct conn_options co;
	struct conn_input in = {.kind = CONN_IN_RESTART};
	bool restart, swapped = false;
	int r;

	if (d->config_path == NULL) {
		snprintf(err, errlen, "no configuration file to reload");
		return -ENOENT;
	}
	sd_notify(0, "RELOADING=1");
	r = config_init(&fresh);
	if (r == 0)
		r = config_load(&fresh, d->config_path, err, errlen);
	if (r == 0) {
		upstream_options(&fresh, &co);
		/* Checked on the side first: a refused reload changes
		 * nothing. */
		struct conn scratch;
		r = conn_init(&scratch, &co);
		if (r < 0)
			snprintf(err, errlen,
			         "the new connection options are unusable");
	}
	if (r == 0 && str_differs(fresh.ca_file, d->cfg.ca_file)) {
		r = swap_transport(d, &fresh, err, errlen);
		swapped = true;
	}
	if (r < 0) {
		log_err("reload refused, keeping the running configuration: %s",
		        err);
		config_free(&fresh);
		if (swapped && !d->conn.closed && wants_connection(d)) {
			/* The old connection went with the old transport. */
			in.text =
			        "connection made again after a refused caFile";
			upstream_feed(d, &in);
		}
		sd_notify(0, "READY=1");
		return r;
	}
	if (str_differs(fresh.socket_path, d->cfg.socket_path))
		log_warn("reload: the IPC socket path changes only on restart");
	if (fresh.max_clients != d->cfg.max_clients ||
	    fresh.client_buffer != d->cfg.client_buffer ||
	    fresh.max_subscriptions_per_client !=
	            d->cfg.max_subscriptions_per_client)
		log_warn("reload: [ipc] limits change only on restart");
	restart = str_differs(fresh.url, d->cfg.url) ||
	          str_differs(fresh.auth_json, d->cfg.auth_json) ||
	          str_differs(fresh.ca_file, d->cfg.ca_file);
	conn_set_options(&d->conn, &co);
	/* Keep the socket path and [ipc] limits we actually run with. */
	free(fresh.socket_path);
	fresh.socket_path = d->cfg.socket_path;
	d->cfg.socket_path = NULL;
	fresh.max_clients = d->cfg.max_clients;
	fresh.client_buffer = d->cfg.client_buffer;
	fresh.max_subscriptions_per_client =
	        d->cfg.max_subscriptions_per_client;
	config_free(&d->cfg);
	d->cfg = fresh;
	pubsub_apply_limits(d);
	log_notice("configuration reloaded from %s%s", d->config_path,
	           restart ? "; new URL, credentials or CA: fresh connection"
	                   : "");
	if (restart && !d->conn.closed && wants_connection(d)) {
		in.text = "configuration reloaded with a new URL, credentials "
		          "or CA";
		upstream_feed(d, &in);
	}
	/* New intervals (restartAfterError, ...) move the deadline now. */
	upstream_arm_timer(d);
	sd_notify(0, "READY=1");
	return 0;
}

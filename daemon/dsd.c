/*
 * The root object's lifecycle (see dsd.h): build the parts and wire them,
 * run the loop, take signals, tell systemd how things are.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <systemd/sd-daemon.h>

#include "access.h"
#include "control.h"
#include "dsd.h"
#include "ipc_server.h"
#include "log.h"
#include "metrics.h"
#include "metrics_http.h"
#include "pubsub.h"
#include "pubsub_spool.h"
#include "pubsub_subs.h"
#include "reload.h"
#include "sendq.h"
#include "status.h"
#include "upstream.h"

/* ---- systemd ---- */

static void notify_status(struct dsd *d)
{
	const struct conn *c = upstream_conn(d->up);
	char line[CONN_REASON_MAX + 128];

	snprintf(line, sizeof(line), "STATUS=%s: %s; queue %zu",
	         conn_state_name(conn_get_state(c)), conn_reason(c),
	         pubsub_queue_depth(d->ps));
	/* Without systemd this is a no-op; a dead notify socket is only
	 * worth a debug line, never fatal. */
	if (sd_notify(0, line) < 0)
		log_debug("sd_notify(STATUS) failed");
}

static void on_notify_timer(evutil_socket_t fd, short what, void *userdata)
{
	struct dsd *d = userdata;

	(void)fd;
	(void)what;
	d->notify_armed = false;
	notify_status(d);
}

/* The same, coalesced: at most a few times a second.  Called for every
 * emit: a flag, not evtimer_pending() (which takes the loop's lock). */
static void notify_status_soon(struct dsd *d)
{
	struct timeval tv = {0, 200 * 1000};

	if (d->notify_timer != NULL && !d->notify_armed &&
	    evtimer_add(d->notify_timer, &tv) == 0)
		d->notify_armed = true;
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

/* ---- stopping and reloading ---- */

/* The end: whatever is still held is discarded, and said so. */
static void finish_stop(struct dsd *d)
{
	struct conn_input in = {.kind = CONN_IN_CLOSE};
	struct sendq_stats st = {0};
	struct pubsub_spool_info si = {0};

	if (d->finished)
		return;
	d->finished = true;
	if (d->flush_timer)
		evtimer_del(d->flush_timer);
	if (d->ps)
		sendq_get_stats(pubsub_store(d->ps), &st);
	if (st.queued + st.in_flight > 0 && d->ps &&
	    pubsub_spool_info(d->ps, &si) && !si.failed)
		log_notice("keeping %zu emits (%zu of them written but "
		           "unconfirmed) in the spool %s for the next start",
		           st.queued + st.in_flight, st.in_flight, si.path);
	else if (st.queued + st.in_flight > 0)
		log_warn("discarding %zu emits (%zu of them written but "
		         "unconfirmed): dsd is stopping",
		         st.queued + st.in_flight, st.in_flight);
	if (d->up)
		upstream_feed(d->up, &in);
	event_base_loopexit(d->base, NULL);
}

static void on_flush_timeout(evutil_socket_t fd, short what, void *userdata)
{
	(void)fd;
	(void)what;
	finish_stop(userdata);
}

/*
 * Stops: new emits are refused at once; what is held goes on being written
 * and confirmed for up to shutdownTimeout (flush true), then the
 * connection closes.  A second call, or flush false, ends it now.
 */
static void stop(struct dsd *d, int exit_code, bool flush)
{
	struct timeval tv;

	if (d->stopping) {
		finish_stop(d);
		return;
	}
	d->stopping = true;
	d->exit_code = exit_code;
	sd_notify(0, "STOPPING=1");
	if (d->ps)
		pubsub_close(d->ps);
	/* Paused by the operator (or closed): nothing could be written. */
	if (d->up && (conn_get_state(upstream_conn(d->up)) == CONN_OFFLINE ||
	              upstream_conn(d->up)->closed))
		flush = false;
	if (!flush || d->cfg.shutdown_timeout == 0 || d->ps == NULL ||
	    pubsub_queue_depth(d->ps) == 0 || d->flush_timer == NULL) {
		finish_stop(d);
		return;
	}
	log_notice("flushing %zu emits before stopping (up to %u ms)",
	           pubsub_queue_depth(d->ps), d->cfg.shutdown_timeout);
	tv.tv_sec = d->cfg.shutdown_timeout / 1000;
	tv.tv_usec = (suseconds_t)(d->cfg.shutdown_timeout % 1000) * 1000;
	evtimer_add(d->flush_timer, &tv);
}

void dsd_stop(struct dsd *d, int exit_code)
{
	stop(d, exit_code, false);
}

int dsd_reload(struct dsd *d, char *err, size_t errlen)
{
	struct reload_targets t = {.cfg = &d->cfg, .up = d->up, .ps = d->ps};
	int r;

	sd_notify(0, "RELOADING=1");
	r = reload_config(d->config_path, &t, err, errlen);
	sd_notify(0, "READY=1");
	return r;
}

static void on_signal(evutil_socket_t sig, short what, void *userdata)
{
	struct dsd *d = userdata;
	char err[512];

	(void)what;
	if (sig == SIGHUP) {
		/* reload_config() logs a refusal itself. */
		dsd_reload(d, err, sizeof(err));
		return;
	}
	log_notice("%s: closing the platform connection",
	           sig == SIGTERM ? "SIGTERM" : "SIGINT");
	stop(d, 0, true);
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

/*
 * [ipc] socketGroup: the socket dsd bound itself (mode 0660) goes to that
 * group, so its members, and nobody else but dsd's own user and group,
 * can connect.  A socket systemd passed in has what dsd.socket's
 * SocketGroup= gave it; dsd only says when the two disagree.
 */
static int apply_socket_group(struct dsd *d)
{
	const struct config_group *g = &d->cfg.socket_group;
	struct stat st;

	if (!g->set)
		return 0;
	if (d->passed_fd >= 0) {
		if (stat(d->cfg.socket_path, &st) == 0 && st.st_gid != g->gid)
			log_warn("socketGroup %s is not applied to a socket "
			         "passed by systemd (its group is %ld): set "
			         "SocketGroup= in dsd.socket",
			         g->name, (long)st.st_gid);
		return 0;
	}
	if (chown(d->cfg.socket_path, (uid_t)-1, g->gid) < 0) {
		int r = -errno;

		log_err("cannot give %s to socketGroup %s: %s (dsd must be "
		        "root or a member of the group)",
		        d->cfg.socket_path, g->name, strerror(-r));
		return r;
	}
	return 0;
}

/* ---- wiring: what one part reports, the others hear ---- */

static void up_state(const struct conn_action *a, void *userdata)
{
	struct dsd *d = userdata;

	control_broadcast_state(d->ctl, a->to, a->reason, a->at);
	notify_status(d);
}

static void up_opened(void *userdata)
{
	struct dsd *d = userdata;

	pubsub_connection_opened(d->ps);
}

static void up_lost(void *userdata)
{
	struct dsd *d = userdata;

	pubsub_connection_lost(d->ps);
}

static void up_event(const struct wire_msg *m, void *userdata)
{
	struct dsd *d = userdata;

	pubsub_platform_event(d->ps, m);
}

static void up_drained(void *userdata)
{
	struct dsd *d = userdata;

	pubsub_drained(d->ps);
}

static void up_confirmed(uint64_t seq, void *userdata)
{
	struct dsd *d = userdata;

	pubsub_confirmed(d->ps, seq);
}

static void up_fatal(const char *why, void *userdata)
{
	struct dsd *d = userdata;

	log_err("%s: stopping", why);
	dsd_stop(d, 1);
}

static void ps_queue_changed(void *userdata)
{
	struct dsd *d = userdata;

	notify_status_soon(d);
	/* Stopping, and everything held is confirmed: done. */
	if (d->stopping && pubsub_queue_depth(d->ps) == 0)
		finish_stop(d);
}

static int ctl_reload(char *err, size_t errlen, void *userdata)
{
	return dsd_reload(userdata, err, errlen);
}

static int make_parts(struct dsd *d)
{
	static const struct upstream_callbacks up_cb = {
	        .state = up_state,
	        .opened = up_opened,
	        .lost = up_lost,
	        .event = up_event,
	        .drained = up_drained,
	        .confirmed = up_confirmed,
	        .fatal = up_fatal,
	};
	static const struct pubsub_callbacks ps_cb = {
	        .queue_changed = ps_queue_changed,
	};
	static const struct control_callbacks ctl_cb = {
	        .reload = ctl_reload,
	};
	static const struct ipc_server_callbacks ipc_cb = {
	        .admit = control_admit,
	        .request = control_request,
	        .disconnected = control_disconnected,
	        .rejected = control_rejected,
	};
	struct ipc_server_limits lim = {0};
	int r;

	r = access_usage_new(&d->usage);
	if (r == 0)
		r = upstream_new(d->base, &d->cfg, &up_cb, d, &d->up);
	if (r == 0)
		r = pubsub_new(d->base, &d->cfg, d->up, d->usage, &ps_cb, d,
		               &d->ps);
	if (r == 0)
		r = control_new(&d->cfg, d->up, d->ps, d->usage, &ctl_cb, d,
		                &d->ctl);
	if (r < 0)
		return r;
	/* Past maxClients only admins get in (control_admit). */
	lim.max_clients = d->cfg.max_clients + d->cfg.reserved_admin_clients;
	lim.client_out_limit = d->cfg.client_buffer;
	lim.total_buffer_limit = d->cfg.client_buffer_total;
	r = ipc_server_new(d->base, d->cfg.socket_path, d->passed_fd, &lim,
	                   &ipc_cb, d->ctl, &d->ipc);
	if (r < 0) {
		log_err("cannot listen on %s: %s", d->cfg.socket_path,
		        strerror(-r));
		return r;
	}
	control_set_ipc(d->ctl, d->ipc);
	return apply_socket_group(d);
}

/* ---- metrics ---- */

static char *render_metrics(enum metrics_format format, size_t *ret_len,
                            void *userdata)
{
	struct dsd *d = userdata;
	struct status_sources src;
	json_t *st;
	char *text;

	control_status_sources(d->ctl, &src);
	st = status_object(&src);
	text = st ? metrics_render_as(st, format, ret_len) : NULL;
	json_decref(st);
	return text;
}

/* [metrics] listen: asked for and not possible is an error at start. */
static int start_metrics(struct dsd *d)
{
	int r;

	if (d->cfg.metrics_listen == NULL)
		return 0;
	r = metrics_http_new(d->base, d->cfg.metrics_listen, render_metrics, d,
	                     &d->metrics);
	if (r < 0) {
		log_err("cannot serve metrics on %s: %s", d->cfg.metrics_listen,
		        strerror(-r));
		return r;
	}
	log_info("metrics on http://%s/metrics", d->cfg.metrics_listen);
	return 0;
}

/* ---- life cycle ---- */

int dsd_new(const char *config_path, struct dsd_config *cfg, int passed_fd,
            struct dsd **ret)
{
	struct dsd *d;
	int r;

	d = calloc(1, sizeof(*d));
	if (d == NULL)
		return -ENOMEM;
	d->passed_fd = passed_fd;
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
	d->flush_timer = evtimer_new(d->base, on_flush_timeout, d);
	if (d->notify_timer == NULL || d->flush_timer == NULL) {
		r = -ENOMEM;
		goto fail;
	}
	r = make_parts(d);
	if (r == 0)
		r = start_metrics(d);
	if (r < 0)
		goto fail;
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

	r = upstream_start(d->up);
	if (r < 0) {
		log_err("cannot start the platform connection: %s",
		        strerror(-r));
		return r;
	}
	/* Ready means the local socket takes clients; the platform may
	 * still be far away, and apps' writes are queued meanwhile. */
	sd_notify(0, "READY=1");
	notify_status(d);
	log_notice("dsd %s listening on %s, platform %s", PACKAGE_VERSION,
	           d->cfg.socket_path, d->cfg.url);
	event_base_dispatch(d->base);
	return d->exit_code;
}

void dsd_free(struct dsd *d)
{
	if (d == NULL)
		return;
	/* The clients first: their records (control) and subscriptions
	 * (pubsub) are given back while every part still stands.  Then the
	 * transport (in upstream): its thread must be gone before the loop,
	 * and no callback comes from it after that. */
	metrics_http_free(d->metrics);
	ipc_server_free(d->ipc);
	upstream_free(d->up);
	control_free(d->ctl);
	pubsub_free(d->ps);
	access_usage_free(d->usage);
	if (d->watchdog)
		event_free(d->watchdog);
	if (d->notify_timer)
		event_free(d->notify_timer);
	if (d->flush_timer)
		event_free(d->flush_timer);
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

/*
 * The platform side of dsd: carries out what the connection state machine
 * asks for (connect, send the handshake, ping, disconnect), turns what the
 * transport reports into its inputs, and keeps its one timer armed.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "dsd.h"
#include "log.h"
#include "transport.h"
#include "wire.h"

#define SDK_TYPE         "dsd"
#define PROTOCOL_VERSION "0.1a"

/* Encodes m and sends it on generation gen, bypassing the write queue: the
 * handshake and pings must precede anything the apps queued. */
static int send_msg(struct dsd *d, uint32_t gen, const struct wire_msg *m)
{
	uint8_t small[512];
	uint8_t *buf = small;
	size_t size, len;
	int r;

	r = wire_encoded_size(m, &size);
	if (r < 0)
		return r;
	if (size > sizeof(small)) {
		buf = malloc(size);
		if (buf == NULL)
			return -ENOMEM;
	}
	r = wire_encode(m, buf, size, &len);
	if (r == 0)
		r = transport_send_control(d->transport, gen, buf, len);
	if (buf != small)
		free(buf);
	return r;
}

static void send_control(struct dsd *d, uint32_t gen, int action)
{
	struct wire_msg m = {.topic = WIRE_TOPIC_CONNECTION, .action = action};
	int r;

	if (action == WIRE_CONN_CHALLENGE) {
		m.url = conn_current_url(&d->conn);
		m.protocol_version = PROTOCOL_VERSION;
		m.sdk_version = PACKAGE_VERSION;
		m.sdk_type = SDK_TYPE;
	}
	r = send_msg(d, gen, &m);
	if (r < 0)
		log_warn("could not send %s: %s",
		         wire_action_name(WIRE_TOPIC_CONNECTION, action),
		         strerror(-r));
}

static void send_auth(struct dsd *d, uint32_t gen)
{
	/* auth_json was validated and re-serialised by the config loader:
	 * the platform never sees invalid JSON (it would crash 7.0.2). */
	struct wire_msg m = {
	        .topic = WIRE_TOPIC_AUTH,
	        .action = WIRE_AUTH_REQUEST,
	        .data = d->cfg.auth_json ? d->cfg.auth_json : "{}",
	};
	int r = send_msg(d, gen, &m);

	if (r < 0)
		log_warn("could not send the AUTH request: %s", strerror(-r));
}

struct failed_connect {
	struct dsd *d;
	uint32_t gen;
};

static void on_failed_connect(evutil_socket_t fd, short what, void *arg)
{
	struct failed_connect *f = arg;
	struct conn_input in = {.kind = CONN_IN_SOCKET_CLOSED,
	                        .gen = f->gen,
	                        .text = "cannot connect (unusable URL?)"};

	(void)fd;
	(void)what;
	upstream_feed(f->d, &in);
	free(f);
}

/* A connect that failed before it began is reported as a closed socket
 * from the loop, never recursively from inside carry_out(). */
static void report_failed_connect(struct dsd *d, uint32_t gen)
{
	struct failed_connect *f = malloc(sizeof(*f));
	struct timeval now = {0, 0};

	if (f == NULL)
		return;
	f->d = d;
	f->gen = gen;
	if (event_base_once(d->base, -1, EV_TIMEOUT, on_failed_connect, f,
	                    &now) < 0)
		free(f);
}

/*
 * ERROR, OFFLINE and CLOSED are always logged: the platform cannot repeat
 * them faster than restartAfterError or the operator allows.  The other
 * changes (the handshake steps, OPEN, its loss) a platform can repeat at
 * will, however the backoff is set: those lines are rate limited.  dsctl
 * watch still sees every change.
 */
static void log_transition(struct dsd *d, const struct conn_action *a)
{
	const char *from = conn_state_name(a->from);
	const char *to = conn_state_name(a->to);
	uint64_t now = dsd_now();

	if (a->to == CONN_ERROR)
		log_err("%s -> %s: %s", from, to, a->reason);
	else if (a->to == CONN_OFFLINE || a->to == CONN_CLOSED)
		log_info("%s -> %s: %s", from, to, a->reason);
	else if (a->to == CONN_RECONNECTING && a->from == CONN_OPEN)
		log_full_ratelimited(&d->loss_log, now, LOG_WARNING,
		                     "%s -> %s: %s", from, to, a->reason);
	else
		log_full_ratelimited(&d->state_log, now, LOG_INFO,
		                     "%s -> %s: %s", from, to, a->reason);
}

static void carry_out(struct dsd *d, const struct conn_result *res)
{
	for (unsigned i = 0; i < res->n; i++) {
		const struct conn_action *a = &res->act[i];
		int r;

		switch (a->kind) {
		case CONN_ACT_CONNECT:
			log_debug("connecting to %s (attempt %u)",
			          conn_current_url(&d->conn),
			          conn_attempt(&d->conn));
			r = transport_connect(d->transport,
			                      conn_current_url(&d->conn),
			                      a->gen);
			if (r < 0) {
				log_full_ratelimited(&d->reconnect_log,
				                     dsd_now(), LOG_WARNING,
				                     "cannot connect to %s: %s",
				                     conn_current_url(&d->conn),
				                     strerror(-r));
				report_failed_connect(d, a->gen);
			}
			break;
		case CONN_ACT_DISCONNECT:
			transport_disconnect(d->transport, a->gen);
			/* Its unwritten emits are back in our hands now. */
			pubsub_take_back_unsent(d, d->transport);
			break;
		case CONN_ACT_SEND_CHALLENGE:
			send_control(d, a->gen, WIRE_CONN_CHALLENGE);
			break;
		case CONN_ACT_SEND_AUTH:
			send_auth(d, a->gen);
			break;
		case CONN_ACT_SEND_PING:
			send_control(d, a->gen, WIRE_CONN_PING);
			break;
		case CONN_ACT_STATE:
			log_transition(d, a);
			control_broadcast_state(d, a->to, a->reason, a->at);
			dsd_notify_status(d);
			if (a->from == CONN_OPEN)
				pubsub_connection_lost(d);
			if (a->to == CONN_OPEN) {
				d->ready_gen = conn_generation(&d->conn);
				d->flushing_blocked = false;
				upstream_connection_opened(d);
			}
			break;
		}
	}
}

int upstream_feed(struct dsd *d, const struct conn_input *in)
{
	struct conn_result res;
	int r;

	r = conn_handle(&d->conn, dsd_now(), in, &res);
	carry_out(d, &res);
	upstream_arm_timer(d);
	return r;
}

static void on_timer(evutil_socket_t fd, short what, void *userdata)
{
	struct dsd *d = userdata;
	struct conn_input in = {.kind = CONN_IN_TIMER};

	(void)fd;
	(void)what;
	upstream_feed(d, &in);
}

void upstream_arm_timer(struct dsd *d)
{
	uint64_t deadline = conn_deadline(&d->conn);
	uint64_t now = dsd_now();
	uint64_t wait;
	struct timeval tv;

	if (deadline == CONN_NO_DEADLINE) {
		evtimer_del(d->conn_timer);
		return;
	}
	wait = deadline > now ? deadline - now : 0;
	tv.tv_sec = (time_t)(wait / 1000);
	tv.tv_usec = (suseconds_t)(wait % 1000) * 1000;
	evtimer_add(d->conn_timer, &tv);
}

static void on_opened(uint32_t gen, void *userdata)
{
	struct dsd *d = userdata;
	struct conn_input in = {.kind = CONN_IN_SOCKET_OPEN, .gen = gen};

	upstream_feed(d, &in);
}

static void on_closed(uint32_t gen, const char *reason, void *userdata)
{
	struct dsd *d = userdata;
	struct conn_input in = {
	        .kind = CONN_IN_SOCKET_CLOSED, .gen = gen, .text = reason};
	/* Only the current attempt's socket matters; older ones were given
	 * up on already (a reload, a redirect, a deadline). */
	bool current = gen == conn_generation(&d->conn);

	if (d->ready_gen == gen)
		d->ready_gen = 0;
	upstream_feed(d, &in);
	/* Whatever the closed connection had not written yet goes back into
	 * the queue (the feed above may have opened the next one already;
	 * these are older than anything queued for it). */
	pubsub_take_back_unsent(d, d->transport);
	/* A failed attempt that keeps us RECONNECTING is no transition, but an
	 * operator wants to see it: rate-limited, as these repeat. */
	if (current && conn_get_state(&d->conn) == CONN_RECONNECTING) {
		int64_t next = conn_next_retry_in(&d->conn, dsd_now());
		char when[32] = "at once";

		if (next >= 0)
			snprintf(when, sizeof(when), "in %lld ms",
			         (long long)next);
		log_full_ratelimited(&d->reconnect_log, dsd_now(), LOG_WARNING,
		                     "%s (attempt %u failed; next %s)",
		                     conn_reason(&d->conn),
		                     conn_attempt(&d->conn), when);
	}
}

static void on_drained(uint32_t gen, void *userdata)
{
	struct dsd *d = userdata;

	if (gen != d->ready_gen)
		return;
	d->flushing_blocked = false;
	pubsub_drained(d);
}

/* What a handshake-relevant frame means to the state machine. */
static enum conn_frame classify(const struct wire_msg *m)
{
	if (m->topic == WIRE_TOPIC_CONNECTION) {
		switch (m->action) {
		case WIRE_CONN_ACCEPT:
			return CONN_FRAME_ACCEPT;
		case WIRE_CONN_REJECT:
			return CONN_FRAME_REJECT;
		case WIRE_CONN_REDIRECT:
			return CONN_FRAME_REDIRECT;
		case WIRE_CONN_AUTHENTICATION_TIMEOUT:
			return CONN_FRAME_AUTH_TIMEOUT;
		default:
			return CONN_FRAME_OTHER;
		}
	}
	if (m->topic == WIRE_TOPIC_AUTH) {
		switch (m->action) {
		case WIRE_AUTH_SUCCESSFUL:
			return CONN_FRAME_AUTH_OK;
		case WIRE_AUTH_UNSUCCESSFUL:
			return CONN_FRAME_AUTH_FAILED;
		case WIRE_AUTH_TOO_MANY_AUTH_ATTEMPTS:
			return CONN_FRAME_AUTH_TOO_MANY;
		case WIRE_AUTH_INVALID_MESSAGE_DATA:
			return CONN_FRAME_AUTH_BAD_DATA;
		default:
			return CONN_FRAME_OTHER;
		}
	}
	return CONN_FRAME_OTHER;
}

static void on_message(uint32_t gen, const uint8_t *data, size_t len,
                       void *userdata)
{
	struct dsd *d = userdata;
	struct wire_decoded *dec;
	const struct wire_msg *m;
	struct conn_input in = {.kind = CONN_IN_FRAME, .gen = gen};
	char text[CONN_REASON_MAX / 2];
	int r;

	r = wire_decode(data, len, &dec);
	if (r < 0) {
		/* Still proof of life for the heartbeat check.  The platform
		 * can send these as fast as it likes: rate limited. */
		log_full_ratelimited(&d->frame_log, dsd_now(), LOG_WARNING,
		                     "undecodable frame of %zu bytes from the "
		                     "platform",
		                     len);
		upstream_feed(d, &in);
		return;
	}
	m = wire_decoded_msg(dec);
	in.frame = classify(m);
	if (in.frame == CONN_FRAME_REDIRECT)
		in.text = m->url;
	else if (in.frame == CONN_FRAME_AUTH_FAILED && m->data != NULL)
		in.text = log_escape(m->data, strlen(m->data), text,
		                     sizeof(text));
	if (in.frame == CONN_FRAME_OTHER)
		log_debug("platform: %s %s", wire_topic_name(m->topic),
		          wire_action_name(m->topic, m->action));
	upstream_feed(d, &in);
	if (m->topic == WIRE_TOPIC_EVENT && gen == d->ready_gen)
		pubsub_platform_message(d, m);
	else if (m->topic == WIRE_TOPIC_PARSER)
		log_full_ratelimited(&d->frame_log, dsd_now(), LOG_WARNING,
		                     "the platform could not parse a message "
		                     "(%s)",
		                     wire_action_name(m->topic, m->action));
	wire_decoded_free(dec);
}

void upstream_options(const struct dsd_config *cfg, struct conn_options *ret)
{
	struct conn_options co = {
	        .url = cfg->url,
	        .reconnect_interval_increment =
	                cfg->reconnect_interval_increment,
	        .max_reconnect_interval = cfg->max_reconnect_interval,
	        .max_reconnect_attempts = cfg->max_reconnect_attempts,
	        .heartbeat_interval = cfg->heartbeat_interval,
	        .restart_after_error = cfg->restart_after_error,
	        /* Before authentication the server answers no PING, so a
	         * handshake deadline stands in for the heartbeat check. */
	        .handshake_timeout = 2 * cfg->heartbeat_interval,
	};

	*ret = co;
}

int upstream_transport_new(struct dsd *d, const struct dsd_config *cfg,
                           struct transport **ret)
{
	static const struct transport_callbacks cb = {
	        .opened = on_opened,
	        .message = on_message,
	        .closed = on_closed,
	        .drained = on_drained,
	};
	struct transport_config tc = {
	        .ca_file = cfg->ca_file,
	        /* The platform's own maxMessageSize default. */
	        .max_message = 1024 * 1024 + 1024,
	        .max_send_backlog = 4 * 1024 * 1024,
	        /* Every local client holds a descriptor too. */
	        .fd_limit = cfg->max_clients + 64,
	};

	return transport_new(d->base, &tc, &cb, d, ret);
}

int upstream_start(struct dsd *d)
{
	struct conn_options co;
	struct conn_input start = {.kind = CONN_IN_START};
	int r;

	upstream_options(&d->cfg, &co);
	r = conn_init(&d->conn, &co);
	if (r < 0)
		return r;
	d->conn_timer = evtimer_new(d->base, on_timer, d);
	if (d->conn_timer == NULL)
		return -ENOMEM;
	r = upstream_transport_new(d, &d->cfg, &d->transport);
	if (r < 0)
		return r;
	upstream_feed(d, &start);
	return 0;
}

int upstream_send(struct dsd *d, const uint8_t *frame, size_t len)
{
	if (!conn_is_open(&d->conn) || d->ready_gen == 0)
		return -ENOTCONN;
	if (d->flushing_blocked)
		return -ENOBUFS;
	int r = transport_send(d->transport, d->ready_gen, frame, len);
	if (r == -ENOBUFS)
		d->flushing_blocked = true;
	return r;
}

int upstream_send_control(struct dsd *d, const uint8_t *frame, size_t len)
{
	if (!conn_is_open(&d->conn) || d->ready_gen == 0)
		return -ENOTCONN;
	return transport_send_control(d->transport, d->ready_gen, frame, len);
}

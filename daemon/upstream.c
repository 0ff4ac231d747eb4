/*
 * The platform connection (see upstream.h): conn.c decides, this file
 * carries it out against the transport and keeps the one timer armed to
 * the machine's deadline.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sys/random.h>
#include <unistd.h>

#include <event2/event.h>

#include "clock.h"
#include "config.h"
#include "log.h"
#include "netwatch.h"
#include "proxy_url.h"
#include "transition_log.h"
#include "upstream.h"
#include "url.h"
#include "wire.h"

/* What dsd says it is in the CHALLENGE (the server only logs it). */
#define SDK_TYPE "dsd"
/* The deepstream protocol version the CHALLENGE announces, as the 7.x JS
 * client does (not the version of dsd's own local IPC protocol). */
#define DEEPSTREAM_PROTOCOL_VERSION "0.1a"
/* PINGs awaiting their PONG on the open connection, at most. */
#define FENCES_MAX 64
/* Fences (PINGs asked for by upstream_fence()) in flight at most: two keep
 * the pipe full (one half of the window is confirmed while the other is on
 * its way); a PONG sends the next one if anything is left uncovered. */
#define FENCES_IN_FLIGHT 2

/*
 * What a transport is made with (own copies).  tls: whether it can open
 * wss:// at all; a transport without it never initialises OpenSSL nor
 * loads a CA store.  The rest come from the configuration: a change of any
 * of them (or of the client certificate's bytes) needs a new transport.
 */
struct net_opts {
	bool tls;
	char *ca_file, *cert_file, *key_file;
	uint8_t cert_digest[sizeof(
	        ((struct dsd_config *)0)->client_cert_digest)];
	char *proxy; /* a secret: it may hold a password */
};

struct upstream {
	struct event_base *base;
	struct upstream_callbacks cb;
	void *userdata;

	struct conn conn;
	struct event *timer; /* armed to conn_deadline() */
	uint64_t armed_at;   /* the deadline it is armed for, 0: none */
	struct transport *transport;
	uint32_t ready_gen;    /* generation whose handshake is done (OPEN) */
	bool flushing_blocked; /* the transport said -ENOBUFS: wait for
	                          drained */
	/*
	 * Confirmation.  The server handles one connection's frames in order
	 * and answers every PING after authentication with a PONG, and every
	 * PING goes out on the same ordered path as the apps' frames: so the
	 * PONG of a PING proves that every frame handed before it arrived.
	 * fences[] holds, per PING awaiting its PONG (oldest first), the
	 * number of the last app frame handed before it.
	 */
	uint64_t fences[FENCES_MAX];
	unsigned fence_first, fence_count;
	uint64_t last_seq;      /* of the last app frame handed */
	uint64_t fenced_seq;    /* the newest a PING in flight covers */
	uint64_t confirmed_seq; /* the newest a PONG confirmed */
	/* Own copies of what the connection needs from the configuration. */
	char *auth_json;
	struct net_opts net; /* what the transport was made with */
	unsigned fd_limit;
	/* The listed URL of the last attempt, to log a switch of node. */
	char last_node[CONN_URL_MAX];
	uint64_t jitter_state;     /* xorshift64 for reconnectJitter */
	struct netwatch *netwatch; /* NULL: followNetwork off, or unavailable */

	/* Repeated failures are logged a few times per window, then summed;
	 * so is what the platform can repeat at will: per-frame warnings,
	 * the loss of OPEN, a transient ERROR, the other state changes. */
	struct log_ratelimit reconnect_log, frame_log, loss_log, state_log;
	struct log_ratelimit error_log, net_log;
	/* Where on_message() decodes a platform frame that fits: no malloc
	 * per event.  Messages are delivered one at a time, never from inside
	 * on_message(). */
	struct wire_scratch scratch;
};

static void arm_timer(struct upstream *u);

/* ---- sending what the state machine asks for ---- */

/* Encodes m and sends it on generation gen ahead of the apps' emits: the
 * handshake and pings must precede anything queued. */
static int send_msg(struct upstream *u, uint32_t gen, const struct wire_msg *m)
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
		r = transport_send_control(u->transport, gen, buf, len);
	if (buf != small)
		free(buf);
	return r;
}

static void send_connection_msg(struct upstream *u, uint32_t gen, int action)
{
	struct wire_msg m = {.topic = WIRE_TOPIC_CONNECTION, .action = action};
	int r;

	if (action == WIRE_CONN_CHALLENGE) {
		m.url = conn_current_url(&u->conn);
		m.protocol_version = DEEPSTREAM_PROTOCOL_VERSION;
		m.sdk_version = PACKAGE_VERSION;
		m.sdk_type = SDK_TYPE;
	}
	r = send_msg(u, gen, &m);
	if (r < 0)
		log_warn("could not send %s: %s",
		         wire_action_name(WIRE_TOPIC_CONNECTION, action),
		         strerror(-r));
}

static void send_auth(struct upstream *u, uint32_t gen)
{
	/* auth_json was validated and re-serialised by the config loader:
	 * the platform never sees invalid JSON (it would crash 7.0.2). */
	struct wire_msg m = {
	        .topic = WIRE_TOPIC_AUTH,
	        .action = WIRE_AUTH_REQUEST,
	        .data = u->auth_json ? u->auth_json : "{}",
	};
	int r = send_msg(u, gen, &m);

	if (r < 0)
		log_warn("could not send the AUTH request: %s", strerror(-r));
}

static void clear_fences(struct upstream *u)
{
	u->fence_first = u->fence_count = 0;
	u->fenced_seq = u->confirmed_seq = u->last_seq;
}

/*
 * A PING on the apps' ordered path.  Once OPEN its PONG will confirm
 * everything handed before it (before authentication the server answers
 * no PING: nothing is recorded then).  -ENOBUFS when no PONG could be
 * told apart any more (FENCES_MAX awaiting) or the transport is full.
 */
static int send_ping(struct upstream *u, uint32_t gen)
{
	struct wire_msg m = {.topic = WIRE_TOPIC_CONNECTION,
	                     .action = WIRE_CONN_PING};
	bool open = gen == u->ready_gen && u->ready_gen != 0;
	uint8_t buf[32];
	size_t len;
	int r;

	if (open && u->fence_count == FENCES_MAX)
		return -ENOBUFS;
	r = wire_encode(&m, buf, sizeof(buf), &len);
	if (r == 0)
		r = transport_send(u->transport, gen, buf, len);
	if (r < 0) {
		log_debug("could not send a PING: %s", strerror(-r));
		return r;
	}
	if (open) {
		u->fences[(u->fence_first + u->fence_count) % FENCES_MAX] =
		        u->last_seq;
		u->fence_count++;
		u->fenced_seq = u->last_seq;
	}
	return 0;
}

/* A PONG on the open connection: its PING's cover is confirmed. */
static void on_pong(struct upstream *u)
{
	uint64_t cover;

	if (u->fence_count == 0)
		return; /* a PING sent before OPEN, answered late */
	cover = u->fences[u->fence_first];
	u->fence_first = (u->fence_first + 1) % FENCES_MAX;
	u->fence_count--;
	if (cover <= u->confirmed_seq)
		return;
	u->confirmed_seq = cover;
	/* What was handed after that PING gets its own, before anything
	 * else happens: confirmation never waits for the next heartbeat. */
	if (u->last_seq > u->fenced_seq && u->fence_count < FENCES_IN_FLIGHT)
		(void)send_ping(u, u->ready_gen);
	u->cb.confirmed(cover, u->userdata);
}

struct failed_connect {
	struct upstream *u;
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
	upstream_feed(f->u, &in);
	free(f);
}

/* A connect that failed before it began is reported as a closed socket
 * from the loop, never recursively from inside carry_out(). */
static void report_failed_connect(struct upstream *u, uint32_t gen)
{
	struct failed_connect *f = malloc(sizeof(*f));
	struct timeval now = {0, 0};

	if (f == NULL)
		return;
	f->u = u;
	f->gen = gen;
	if (event_base_once(u->base, -1, EV_TIMEOUT, on_failed_connect, f,
	                    &now) < 0)
		free(f);
}

/* A permanent ERROR: no more often than restartAfterError or the operator
 * allows, so always logged.  A transient one ends after one reconnect step
 * and can come back after the next round of attempts: rate limited. */
static void log_error(struct upstream *u, const struct conn_action *a,
                      uint64_t now)
{
	enum conn_error_kind kind = conn_error_kind_of(a->error);
	int64_t next = conn_next_retry_in(&u->conn, now);
	char then[64] = "waiting for the operator";

	if (next >= 0)
		snprintf(then, sizeof(then), "a fresh instance in %lld ms",
		         (long long)next);
	transition_log(a, conn_current_url(&u->conn), LOG_ERR,
	               kind == CONN_ERROR_TRANSIENT ? &u->error_log : NULL, now,
	               "%s -> ERROR: %s (%s; %s)", conn_state_name(a->from),
	               a->reason, conn_error_kind_name(kind), then);
}

/*
 * OFFLINE and CLOSED are always logged, ERROR as log_error() says.  The
 * other changes (the handshake steps, OPEN, its loss) a platform can repeat
 * at will, however the backoff is set: those lines are rate limited.  dsctl
 * watch still sees every change.
 */
static void log_transition(struct upstream *u, const struct conn_action *a)
{
	const char *url = conn_current_url(&u->conn);
	uint64_t now = clock_mono_ms();
	int level = LOG_INFO;
	struct log_ratelimit *rl = &u->state_log;

	if (a->to == CONN_ERROR) {
		log_error(u, a, now);
		return;
	}
	if (a->to == CONN_OFFLINE || a->to == CONN_CLOSED) {
		rl = NULL;
	} else if (a->to == CONN_RECONNECTING && a->from == CONN_OPEN) {
		level = LOG_WARNING;
		rl = &u->loss_log;
	}
	transition_log(a, url, level, rl, now, "%s -> %s: %s",
	               conn_state_name(a->from), conn_state_name(a->to),
	               a->reason);
}

static int swap_transport(struct upstream *u, const struct net_opts *net);
static bool url_wants_tls(const char *url);

/*
 * A ws:// configuration leads to wss:// (a REDIRECT): TLS is set up now,
 * with a new transport (lws 4.1 sets OpenSSL up only when a context is
 * created: docs/libwebsockets.md).  The old transport's connection is
 * already given up by then.
 */
static int add_tls(struct upstream *u)
{
	struct net_opts net = u->net;
	int r;

	net.tls = true;
	r = swap_transport(u, &net);
	if (r == 0)
		u->net.tls = true;
	return r;
}

/* Says which node dsd moves to and why: the last failure of the one it
 * leaves.  Rate limited with the reconnect messages. */
static void log_node_switch(struct upstream *u)
{
	const char *node = conn_configured_url(&u->conn);
	int was;

	if (strcmp(node, u->last_node) == 0)
		return;
	was = conn_find_url(&u->conn, u->last_node);
	if (u->last_node[0] != '\0')
		log_full_ratelimited(
		        &u->reconnect_log, clock_mono_ms(), LOG_NOTICE,
		        "switching to platform node %s (left %s: %s)", node,
		        u->last_node,
		        was >= 0 && conn_url_status_at(&u->conn, (unsigned)was)
		                                ->failed
		                ? conn_url_status_at(&u->conn, (unsigned)was)
		                          ->failure
		                : "no longer listed");
	snprintf(u->last_node, sizeof(u->last_node), "%s", node);
}

/* The route that matters: to the proxy when there is one (the platform
 * itself may have no route from here), else to url's host. */
static void watch_route(struct upstream *u, const char *url)
{
	struct proxy_url proxy;

	if (u->net.proxy && proxy_url_parse(u->net.proxy, &proxy, NULL) == 0) {
		netwatch_set_target_host(u->netwatch, proxy.host);
		proxy_url_clear(&proxy);
		return;
	}
	netwatch_set_target(u->netwatch, url);
}

static void connect_now(struct upstream *u, uint32_t gen)
{
	const char *url = conn_current_url(&u->conn);
	int r = 0;

	log_node_switch(u);
	watch_route(u, url);
	log_debug("connecting to %s (attempt %u)", url, conn_attempt(&u->conn));
	if (url_wants_tls(url) && !transport_has_tls(u->transport)) {
		r = add_tls(u);
		if (r < 0 && u->transport == NULL)
			return; /* fatal() was called */
	}
	if (r == 0)
		r = transport_connect(u->transport, url, gen);
	if (r < 0) {
		log_full_ratelimited(&u->reconnect_log, clock_mono_ms(),
		                     LOG_WARNING, "cannot connect to %s: %s",
		                     url, strerror(-r));
		report_failed_connect(u, gen);
	}
}

static void carry_out(struct upstream *u, const struct conn_result *res)
{
	for (unsigned i = 0; i < res->n; i++) {
		const struct conn_action *a = &res->act[i];

		/* Without a transport (see fatal) only states are left. */
		if (u->transport == NULL && a->kind != CONN_ACT_STATE)
			continue;
		switch (a->kind) {
		case CONN_ACT_CONNECT:
			connect_now(u, a->gen);
			break;
		case CONN_ACT_DISCONNECT:
			transport_disconnect(u->transport, a->gen);
			break;
		case CONN_ACT_SEND_CHALLENGE:
			send_connection_msg(u, a->gen, WIRE_CONN_CHALLENGE);
			break;
		case CONN_ACT_SEND_AUTH:
			send_auth(u, a->gen);
			break;
		case CONN_ACT_SEND_PING:
			send_ping(u, a->gen);
			break;
		case CONN_ACT_STATE:
			log_transition(u, a);
			if (a->to == CONN_OPEN) {
				u->ready_gen = conn_generation(&u->conn);
				u->flushing_blocked = false;
			}
			if (a->from == CONN_OPEN || a->to == CONN_OPEN)
				clear_fences(u);
			u->cb.state(a, u->userdata);
			if (a->from == CONN_OPEN)
				u->cb.lost(u->userdata);
			if (a->to == CONN_OPEN)
				u->cb.opened(u->userdata);
			break;
		}
	}
}

int upstream_feed(struct upstream *u, const struct conn_input *in)
{
	struct conn_result res;
	int r;

	r = conn_handle(&u->conn, clock_mono_ms(), in, &res);
	carry_out(u, &res);
	arm_timer(u);
	return r;
}

static void on_timer(evutil_socket_t fd, short what, void *userdata)
{
	struct conn_input in = {.kind = CONN_IN_TIMER};
	struct upstream *u = userdata;

	(void)fd;
	(void)what;
	u->armed_at = 0;
	upstream_feed(u, &in);
}

static void arm_timer(struct upstream *u)
{
	uint64_t deadline = conn_deadline(&u->conn);
	uint64_t now, wait;
	struct timeval tv;

	if (deadline == CONN_NO_DEADLINE) {
		evtimer_del(u->timer);
		u->armed_at = 0;
		return;
	}
	/* Every frame received moves the heartbeat deadline later: a timer
	 * armed for an earlier moment is left as it is (firing early does
	 * nothing but arm it again), which spares a timer-heap update per
	 * frame. */
	if (u->armed_at != 0 && deadline >= u->armed_at)
		return;
	u->armed_at = deadline;
	/* Read only when the timer moves: most frames leave it as it is. */
	now = clock_mono_ms();
	wait = deadline > now ? deadline - now : 0;
	tv.tv_sec = (time_t)(wait / 1000);
	tv.tv_usec = (suseconds_t)(wait % 1000) * 1000;
	evtimer_add(u->timer, &tv);
}

/* ---- what the transport reports ---- */

static void on_opened(uint32_t gen, void *userdata)
{
	struct conn_input in = {.kind = CONN_IN_SOCKET_OPEN, .gen = gen};

	upstream_feed(userdata, &in);
}

static void on_closed(uint32_t gen, const char *reason, void *userdata)
{
	struct upstream *u = userdata;
	struct conn_input in = {
	        .kind = CONN_IN_SOCKET_CLOSED, .gen = gen, .text = reason};
	/* Only the current attempt's socket matters; older ones were given
	 * up on already (a reload, a redirect, a deadline). */
	bool current = gen == conn_generation(&u->conn);

	if (u->ready_gen == gen)
		u->ready_gen = 0;
	upstream_feed(u, &in);
	/* A failed attempt that keeps us RECONNECTING is no transition, but an
	 * operator wants to see it: rate-limited, as these repeat. */
	if (current && conn_get_state(&u->conn) == CONN_RECONNECTING) {
		int64_t next = conn_next_retry_in(&u->conn, clock_mono_ms());
		char when[32] = "at once";

		if (next >= 0)
			snprintf(when, sizeof(when), "in %lld ms",
			         (long long)next);
		log_full_ratelimited(
		        &u->reconnect_log, clock_mono_ms(), LOG_WARNING,
		        "%s (attempt %u failed; next %s)",
		        conn_reason(&u->conn), conn_attempt(&u->conn), when);
	}
}

static void on_drained(uint32_t gen, void *userdata)
{
	struct upstream *u = userdata;

	if (gen != u->ready_gen)
		return;
	u->flushing_blocked = false;
	u->cb.drained(u->userdata);
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
	struct upstream *u = userdata;
	struct wire_decoded *dec;
	const struct wire_msg *m;
	struct conn_input in = {.kind = CONN_IN_FRAME, .gen = gen};
	char text[CONN_REASON_MAX / 2];
	int r;

	r = wire_decode_in(data, len, &u->scratch, &dec);
	if (r < 0) {
		/* Still proof of life for the heartbeat check.  The platform
		 * can send these as fast as it likes: rate limited. */
		log_full_ratelimited(&u->frame_log, clock_mono_ms(),
		                     LOG_WARNING,
		                     "undecodable frame of %zu bytes from the "
		                     "platform",
		                     len);
		upstream_feed(u, &in);
		return;
	}
	m = wire_decoded_msg(dec);
	in.frame = classify(m);
	if (in.frame == CONN_FRAME_REDIRECT)
		in.text = m->url;
	else if (in.frame == CONN_FRAME_AUTH_FAILED && m->data != NULL)
		in.text = log_escape(m->data, strlen(m->data), text,
		                     sizeof(text));
	/* Events are counted (status), not logged: a line per event would
	 * cost more than delivering it. */
	if (in.frame == CONN_FRAME_OTHER && m->topic != WIRE_TOPIC_EVENT)
		log_debug("platform: %s %s", wire_topic_name(m->topic),
		          wire_action_name(m->topic, m->action));
	upstream_feed(u, &in);
	if (gen != u->ready_gen || u->ready_gen == 0)
		; /* an older socket, or not OPEN: handshake only */
	else if (m->topic == WIRE_TOPIC_EVENT)
		u->cb.event(m, u->userdata);
	else if (m->topic == WIRE_TOPIC_CONNECTION &&
	         m->action == WIRE_CONN_PONG)
		on_pong(u);
	else if (m->topic == WIRE_TOPIC_PARSER)
		log_full_ratelimited(&u->frame_log, clock_mono_ms(),
		                     LOG_WARNING,
		                     "the platform could not parse a message "
		                     "(%s)",
		                     wire_action_name(m->topic, m->action));
	wire_decoded_free(dec);
}

/* ---- the network (netwatch.c) ---- */

static void on_net_changed(bool routable, const char *why, void *userdata)
{
	struct upstream *u = userdata;
	struct conn_input in = {
	        .kind = routable ? CONN_IN_NET_UP : CONN_IN_NET_DOWN,
	        .text = why,
	};

	log_full_ratelimited(&u->net_log, clock_mono_ms(), LOG_NOTICE,
	                     "network: %s", why);
	upstream_feed(u, &in);
}

/* followNetwork on: a watcher, unless the kernel will not give us one
 * (then dsd goes on as if it were off, and says so). */
static void follow_network(struct upstream *u, bool on)
{
	static const struct netwatch_callbacks cb = {.changed = on_net_changed};
	int r;

	if (!on) {
		netwatch_free(u->netwatch);
		u->netwatch = NULL;
		return;
	}
	if (u->netwatch != NULL)
		return;
	r = netwatch_new(u->base, &cb, u, &u->netwatch);
	if (r < 0) {
		log_warn("cannot follow the network (rtnetlink): %s",
		         strerror(-r));
		return;
	}
	watch_route(u, conn_current_url(&u->conn));
}

/* ---- set-up ---- */

/* xorshift64: the jitter needs spread, not secrecy. */
static uint32_t jitter_random(void *userdata)
{
	struct upstream *u = userdata;
	uint64_t x = u->jitter_state;

	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	u->jitter_state = x;
	return (uint32_t)(x >> 32);
}

static void options_of(struct upstream *u, const struct dsd_config *cfg,
                       struct conn_options *ret)
{
	*ret = (struct conn_options){
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
	        .reconnect_jitter = cfg->reconnect_jitter,
	        .random = jitter_random,
	        .random_userdata = u,
	};
}

static int make_transport(struct upstream *u, const struct net_opts *net,
                          struct transport **ret)
{
	static const struct transport_callbacks cb = {
	        .opened = on_opened,
	        .message = on_message,
	        .closed = on_closed,
	        .drained = on_drained,
	};
	struct transport_config tc = {
	        .tls = net->tls,
	        .ca_file = net->ca_file,
	        .cert_file = net->cert_file,
	        .key_file = net->key_file,
	        /* The platform's own maxMessageSize default. */
	        .max_message = 1024 * 1024 + 1024,
	        .max_send_backlog = 4 * 1024 * 1024,
	        .fd_limit = u->fd_limit,
	};
	struct proxy_url proxy;
	int r;

	if (net->proxy) {
		/* Checked when the configuration was read. */
		if (proxy_url_parse(net->proxy, &proxy, NULL) < 0)
			return -EINVAL;
		tc.proxy_host = proxy.host;
		tc.proxy_port = proxy.port;
		tc.proxy_auth = proxy.has_auth ? proxy.auth : NULL;
	}
	r = transport_new(u->base, &tc, &cb, u, ret);
	if (net->proxy) {
		char shown[300];

		/* Said once per transport; never the credentials. */
		if (r == 0)
			log_info("connections to the platform go through the "
			         "proxy %s%s",
			         proxy_url_show(&proxy, shown, sizeof(shown)),
			         proxy.has_auth ? " (with credentials)" : "");
		proxy_url_clear(&proxy);
	}
	return r;
}

static int dup_or_null(const char *s, char **ret)
{
	char *c = NULL;

	if (s != NULL && (c = strdup(s)) == NULL)
		return -ENOMEM;
	free(*ret);
	*ret = c;
	return 0;
}

static bool url_wants_tls(const char *url)
{
	struct url parsed;

	return url && url_parse(url, &parsed, NULL) == 0 && parsed.tls;
}

/* Whether the configuration's URL is wss://: TLS is set up from the start
 * then, and otherwise only once a connect really goes to wss://. */
static bool config_wants_tls(const struct dsd_config *cfg)
{
	char one[CONN_URL_MAX];
	const char *p = cfg->url;

	/* url is a list of nodes: TLS when any of them is wss://. */
	while (p != NULL && *p != '\0') {
		size_t n;

		p += strspn(p, " \t");
		n = strcspn(p, " \t");
		if (n > 0 && n < sizeof(one)) {
			memcpy(one, p, n);
			one[n] = '\0';
			if (url_wants_tls(one))
				return true;
		}
		p += n;
	}
	return false;
}

static void net_opts_free(struct net_opts *n)
{
	free(n->ca_file);
	free(n->cert_file);
	free(n->key_file);
	if (n->proxy)
		explicit_bzero(n->proxy, strlen(n->proxy));
	free(n->proxy);
	*n = (struct net_opts){0};
}

static int net_opts_of(const struct dsd_config *cfg, bool tls,
                       struct net_opts *ret)
{
	struct net_opts n = {.tls = tls};

	memcpy(n.cert_digest, cfg->client_cert_digest, sizeof(n.cert_digest));
	if (dup_or_null(cfg->ca_file, &n.ca_file) < 0 ||
	    dup_or_null(cfg->cert_file, &n.cert_file) < 0 ||
	    dup_or_null(cfg->key_file, &n.key_file) < 0 ||
	    dup_or_null(cfg->proxy, &n.proxy) < 0) {
		net_opts_free(&n);
		return -ENOMEM;
	}
	*ret = n;
	return 0;
}

static bool str_differs(const char *a, const char *b)
{
	if (a == NULL || b == NULL)
		return a != b;
	return strcmp(a, b) != 0;
}

static bool net_opts_differ(const struct net_opts *a, const struct net_opts *b)
{
	return a->tls != b->tls || str_differs(a->ca_file, b->ca_file) ||
	       str_differs(a->cert_file, b->cert_file) ||
	       str_differs(a->key_file, b->key_file) ||
	       str_differs(a->proxy, b->proxy) ||
	       memcmp(a->cert_digest, b->cert_digest, sizeof(a->cert_digest)) !=
	               0;
}

int upstream_new(struct event_base *base, const struct dsd_config *cfg,
                 const struct upstream_callbacks *cb, void *userdata,
                 struct upstream **ret)
{
	struct conn_options co;
	struct upstream *u;
	int r;

	u = calloc(1, sizeof(*u));
	if (u == NULL)
		return -ENOMEM;
	u->base = base;
	u->cb = *cb;
	u->userdata = userdata;
	/* Every local client holds a descriptor too. */
	u->fd_limit = cfg->max_clients + cfg->reserved_admin_clients + 64;
	u->reconnect_log = (struct log_ratelimit)LOG_RATELIMIT_INIT(60000, 5);
	u->frame_log = (struct log_ratelimit)LOG_RATELIMIT_INIT(10000, 3);
	u->loss_log = (struct log_ratelimit)LOG_RATELIMIT_INIT(60000, 5);
	/* Five whole reconnects (six state changes each) a minute. */
	u->state_log = (struct log_ratelimit)LOG_RATELIMIT_INIT(60000, 30);
	u->error_log = (struct log_ratelimit)LOG_RATELIMIT_INIT(60000, 5);
	u->net_log = (struct log_ratelimit)LOG_RATELIMIT_INIT(60000, 10);
	/* Machines that lost the same node must not draw the same waits. */
	if (getrandom(&u->jitter_state, sizeof(u->jitter_state),
	              GRND_NONBLOCK) != sizeof(u->jitter_state))
		u->jitter_state = clock_mono_ms() ^ ((uint64_t)getpid() << 32);
	u->jitter_state |= 1; /* xorshift never leaves 0 */
	options_of(u, cfg, &co);
	r = conn_init(&u->conn, &co);
	if (r < 0)
		goto fail;
	r = dup_or_null(cfg->auth_json, &u->auth_json);
	if (r == 0)
		r = net_opts_of(cfg, config_wants_tls(cfg), &u->net);
	if (r < 0)
		goto fail;
	u->timer = evtimer_new(base, on_timer, u);
	if (u->timer == NULL) {
		r = -ENOMEM;
		goto fail;
	}
	r = make_transport(u, &u->net, &u->transport);
	if (r < 0)
		goto fail;
	follow_network(u, cfg->follow_network);
	*ret = u;
	return 0;
fail:
	upstream_free(u);
	return r;
}

void upstream_free(struct upstream *u)
{
	if (u == NULL)
		return;
	/* The transport first: its thread must be gone before the loop. */
	transport_free(u->transport);
	netwatch_free(u->netwatch);
	if (u->timer)
		event_free(u->timer);
	if (u->auth_json)
		explicit_bzero(u->auth_json, strlen(u->auth_json));
	free(u->auth_json);
	net_opts_free(&u->net);
	free(u);
}

int upstream_start(struct upstream *u)
{
	struct conn_input start = {.kind = CONN_IN_START};

	return upstream_feed(u, &start);
}

/* ---- reload ---- */

/* A fresh instance is due unless closed for good or paused. */
static bool wants_connection(const struct upstream *u)
{
	return !u->conn.closed && conn_get_state(&u->conn) != CONN_OFFLINE;
}

static void restart(struct upstream *u, const char *why)
{
	struct conn_input in = {.kind = CONN_IN_RESTART, .text = why};

	if (wants_connection(u))
		upstream_feed(u, &in);
}

/*
 * The trusted CAs, the client certificate, the proxy and whether TLS is
 * set up at all are fixed when a transport is made, so a change needs a
 * new one.  The old one goes first: lws 4.1 leaks a TLS context when two
 * live side by side and the older is destroyed.  Its connection goes with
 * it (unwritten emits are taken back).  Returns 0, or the error of the new
 * transport with the old one made again from u->net (then only fatal if
 * that fails too).
 */
static int swap_transport(struct upstream *u, const struct net_opts *net)
{
	int r;

	transport_disconnect(u->transport, conn_generation(&u->conn));
	transport_free(u->transport);
	u->transport = NULL;
	u->ready_gen = 0;
	r = make_transport(u, net, &u->transport);
	if (r == 0)
		return 0;
	if (make_transport(u, &u->net, &u->transport) < 0)
		u->cb.fatal("cannot make a transport again", u->userdata);
	return r;
}

int upstream_reconfigure(struct upstream *u, const struct dsd_config *fresh,
                         bool *ret_restart, char *err, size_t errlen)
{
	struct conn scratch;
	struct conn_options co;
	struct net_opts net = {0};
	char *auth = NULL;
	bool again, new_url;
	int r;

	*ret_restart = false;
	options_of(u, fresh, &co);
	/* Checked on the side first: a refused reload changes nothing. */
	if (conn_init(&scratch, &co) < 0) {
		snprintf(err, errlen,
		         "the new connection options are unusable");
		return -EINVAL;
	}
	/* A new list that still has the node dsd is on keeps the connection;
	 * conn_set_options() keeps its place in the list. */
	new_url = conn_find_url(&scratch, conn_configured_url(&u->conn)) < 0;
	/* While the node is kept, so is the transport's TLS: set up earlier
	 * (a REDIRECT, a wss:// node) it stays; a wss:// node new in the
	 * list gets it when an attempt really goes there (connect_now()),
	 * so adding one does not drop the connection. */
	if (dup_or_null(fresh->auth_json, &auth) < 0 ||
	    net_opts_of(fresh, new_url ? config_wants_tls(fresh) : u->net.tls,
	                &net) < 0) {
		free(auth);
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	again = new_url || str_differs(auth, u->auth_json) ||
	        net_opts_differ(&net, &u->net);
	if (net_opts_differ(&net, &u->net)) {
		r = swap_transport(u, &net);
		if (r < 0) {
			snprintf(err, errlen,
			         "cannot set up the connection with the new "
			         "caFile, certFile, keyFile or proxy: %s",
			         strerror(-r));
			if (u->transport)
				restart(u, "connection made again after a "
				           "refused reload");
			free(auth);
			net_opts_free(&net);
			return r;
		}
	}
	conn_set_options(&u->conn, &co);
	if (u->auth_json)
		explicit_bzero(u->auth_json, strlen(u->auth_json));
	free(u->auth_json);
	net_opts_free(&u->net);
	u->auth_json = auth;
	u->net = net;
	if (again)
		restart(u, "configuration reloaded with a new URL, "
		           "credentials, certificate, CA or proxy");
	follow_network(u, fresh->follow_network);
	/* New intervals (restartAfterError, ...) move the deadline now. */
	arm_timer(u);
	*ret_restart = again;
	return 0;
}

/* ---- app traffic ---- */

int upstream_send(struct upstream *u, const uint8_t *frame, size_t len,
                  uint64_t seq)
{
	int r;

	if (!conn_is_open(&u->conn) || u->ready_gen == 0 || !u->transport)
		return -ENOTCONN;
	if (u->flushing_blocked)
		return -ENOBUFS;
	r = transport_send(u->transport, u->ready_gen, frame, len);
	if (r == -ENOBUFS)
		u->flushing_blocked = true;
	if (r == 0)
		u->last_seq = seq;
	return r;
}

int upstream_fence(struct upstream *u)
{
	if (!conn_is_open(&u->conn) || u->ready_gen == 0 || !u->transport)
		return -ENOTCONN;
	if (u->fenced_seq >= u->last_seq)
		return 0; /* a PING in flight covers it all already */
	if (u->fence_count >= FENCES_IN_FLIGHT)
		return 0; /* the next PONG sends one for the rest */
	return send_ping(u, u->ready_gen);
}

int upstream_send_control(struct upstream *u, const uint8_t *frame, size_t len)
{
	if (!conn_is_open(&u->conn) || u->ready_gen == 0 || !u->transport)
		return -ENOTCONN;
	return transport_send_control(u->transport, u->ready_gen, frame, len);
}

const struct conn *upstream_conn(const struct upstream *u)
{
	return &u->conn;
}

const struct netwatch *upstream_netwatch(const struct upstream *u)
{
	return u->netwatch;
}

bool upstream_is_open(const struct upstream *u)
{
	return conn_is_open(&u->conn);
}

const char *upstream_transport_kind(const struct upstream *u)
{
	return transport_kind(u->transport);
}

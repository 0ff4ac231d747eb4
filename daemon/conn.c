/*
 * The deepstream connectivity model, as the documentation describes it
 * (which differs from what the 7.0.5 JS client does; see dsd(8)):
 *
 *  - a lost connection is retried at once, then after 1x, 2x, 3x ...
 *    reconnectIntervalIncrement (capped at maxReconnectInterval); after
 *    maxReconnectAttempts unsuccessful attempts the state is ERROR.  The very
 *    first connect is retried the same way.
 *  - the attempt counter resets only once a connection is up: OPEN, and
 *    held for min(heartbeatInterval, CONN_HELD_MAX).  A server that accepts
 *    sockets and drops them, or authenticates and then drops them, makes
 *    unsuccessful attempts and gets the backoff, not a reconnect storm.
 *  - once authenticated a PING goes out every heartbeatInterval; when
 *    nothing at all has arrived for two intervals the state is ERROR.
 *  - ERROR and CLOSED are final for an instance; a fresh instance (resume,
 *    reload, or the timer below) starts with a clean attempt counter and
 *    makes its attempt 1 at once.
 *  - stalls are not outages: every ERROR has a cause (enum
 *    conn_error_cause), classified as transient or permanent.  A transient
 *    one (heartbeat loss, maxReconnectAttempts used up, the platform's auth
 *    deadline) lasts one reconnect step, then the fresh instance starts; a
 *    permanent one (REJECT, credentials, auth data, a redirect loop) lasts
 *    restartAfterError, or until the operator acts when that is 0.
 *  - the network (netwatch.c) may say that the route to the platform went
 *    away: a connection, or an attempt under way, is dropped at once
 *    rather than two heartbeats later, and the next attempt waits at least
 *    one reconnect step.  When a route is back, a pending attempt is made
 *    at once, at most one such early attempt per reconnect step, so a
 *    flapping link cannot make dsd hammer the platform.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "conn.h"

static const char *const state_names[CONN_STATE_COUNT] = {
        [CONN_CLOSED] = "CLOSED",
        [CONN_AWAITING_CONNECTION] = "AWAITING_CONNECTION",
        [CONN_CHALLENGING] = "CHALLENGING",
        [CONN_AWAITING_AUTHENTICATION] = "AWAITING_AUTHENTICATION",
        [CONN_AUTHENTICATING] = "AUTHENTICATING",
        [CONN_OPEN] = "OPEN",
        [CONN_RECONNECTING] = "RECONNECTING",
        [CONN_OFFLINE] = "OFFLINE",
        [CONN_ERROR] = "ERROR",
};

const char *conn_state_name(enum conn_state s)
{
	if ((unsigned)s >= CONN_STATE_COUNT)
		return "UNKNOWN";
	return state_names[s];
}

int conn_state_from_name(const char *name, enum conn_state *ret)
{
	for (unsigned i = 0; i < CONN_STATE_COUNT; i++) {
		if (strcmp(state_names[i], name) == 0) {
			*ret = (enum conn_state)i;
			return 0;
		}
	}
	return -EINVAL;
}

enum conn_error_kind conn_error_kind_of(enum conn_error_cause cause)
{
	switch (cause) {
	case CONN_ERR_NONE:
	case CONN_ERR_CAUSE_COUNT:
		return CONN_ERROR_NONE;
	/* The network or the platform failed us: trying again may work. */
	case CONN_ERR_HEARTBEAT:
	case CONN_ERR_GAVE_UP:
	case CONN_ERR_AUTH_TIMEOUT:
		return CONN_ERROR_TRANSIENT;
	/* The platform answered, and the answer was no: the same attempt
	 * would get the same answer until someone changes something. */
	case CONN_ERR_REJECTED:
	case CONN_ERR_AUTH_TOO_MANY:
	case CONN_ERR_AUTH_DATA:
	case CONN_ERR_CREDENTIALS:
	case CONN_ERR_REDIRECTS:
		return CONN_ERROR_PERMANENT;
	}
	return CONN_ERROR_NONE;
}

static const char *const cause_names[CONN_ERR_CAUSE_COUNT] = {
        [CONN_ERR_NONE] = "none",
        [CONN_ERR_HEARTBEAT] = "heartbeat",
        [CONN_ERR_GAVE_UP] = "attempts",
        [CONN_ERR_AUTH_TIMEOUT] = "authTimeout",
        [CONN_ERR_REJECTED] = "rejected",
        [CONN_ERR_AUTH_TOO_MANY] = "tooManyAuthAttempts",
        [CONN_ERR_AUTH_DATA] = "authData",
        [CONN_ERR_CREDENTIALS] = "credentials",
        [CONN_ERR_REDIRECTS] = "redirects",
};

const char *conn_error_cause_name(enum conn_error_cause cause)
{
	if ((unsigned)cause >= CONN_ERR_CAUSE_COUNT)
		return "unknown";
	return cause_names[cause];
}

const char *conn_error_kind_name(enum conn_error_kind kind)
{
	switch (kind) {
	case CONN_ERROR_TRANSIENT:
		return "transient";
	case CONN_ERROR_PERMANENT:
		return "permanent";
	case CONN_ERROR_NONE:
	default:
		return "none";
	}
}

static int copy_url(char *dst, const char *src)
{
	size_t n;

	if (src == NULL || *src == '\0')
		return -EINVAL;
	n = strlen(src);
	if (n >= CONN_URL_MAX)
		return -EINVAL;
	memcpy(dst, src, n + 1);
	return 0;
}

/* The URL list of the options, split into the list of c. */
struct url_list {
	char text[CONN_URL_LIST_MAX];
	uint16_t off[CONN_URLS_MAX];
	unsigned count;
};

static bool is_blank(char ch)
{
	return ch == ' ' || ch == '\t';
}

static int split_urls(const char *s, struct url_list *ret)
{
	size_t at = 0;

	ret->count = 0;
	if (s == NULL)
		return -EINVAL;
	while (*s != '\0') {
		size_t n = 0;

		while (is_blank(*s))
			s++;
		if (*s == '\0')
			break;
		while (s[n] != '\0' && !is_blank(s[n]))
			n++;
		if (ret->count == CONN_URLS_MAX || n >= CONN_URL_MAX ||
		    at + n + 1 > sizeof(ret->text))
			return -EINVAL;
		ret->off[ret->count++] = (uint16_t)at;
		memcpy(ret->text + at, s, n);
		ret->text[at + n] = '\0';
		at += n + 1;
		s += n;
	}
	return ret->count == 0 ? -EINVAL : 0;
}

int conn_find_url(const struct conn *c, const char *url)
{
	for (unsigned i = 0; i < c->url_count; i++)
		if (strcmp(conn_url_at(c, i), url) == 0)
			return (int)i;
	return -ENOENT;
}

int conn_set_options(struct conn *c, const struct conn_options *opt)
{
	struct conn_url_status kept[CONN_URLS_MAX];
	char was[CONN_URL_MAX] = "";
	struct url_list l;
	unsigned index = 0;

	if (opt->heartbeat_interval == 0 || opt->handshake_timeout == 0 ||
	    opt->max_reconnect_attempts == 0 || opt->reconnect_jitter > 100 ||
	    (opt->reconnect_jitter > 0 && opt->random == NULL))
		return -EINVAL;
	if (split_urls(opt->url, &l) < 0)
		return -EINVAL;
	if (c->url_count > 0)
		snprintf(was, sizeof(was), "%s", conn_configured_url(c));
	/* What is known of a URL stays with it wherever it moved. */
	for (unsigned i = 0; i < l.count; i++) {
		int old = conn_find_url(c, l.text + l.off[i]);

		kept[i] = old >= 0 ? c->url_status[old]
		                   : (struct conn_url_status){0};
		if (old >= 0 && strcmp(l.text + l.off[i], was) == 0)
			index = i;
	}
	memcpy(c->url_list, l.text, sizeof(l.text));
	memcpy(c->url_off, l.off, sizeof(l.off));
	memcpy(c->url_status, kept, sizeof(kept));
	c->url_count = l.count;
	c->url_index = index;
	c->opt = *opt;
	c->opt.url = NULL; /* the list above is the copy */
	return 0;
}

int conn_init(struct conn *c, const struct conn_options *opt)
{
	memset(c, 0, sizeof(*c));
	if (conn_set_options(c, opt) < 0)
		return -EINVAL;
	snprintf(c->current_url, sizeof(c->current_url), "%s",
	         conn_configured_url(c));
	c->state = CONN_CLOSED;
	snprintf(c->reason, sizeof(c->reason), "not started");
	return 0;
}

uint64_t conn_held_time(const struct conn_options *opt)
{
	/* The first PING goes out heartbeatInterval after OPEN, so with a
	 * shorter interval this is "held until the first heartbeat was due".
	 * A long one (the default is 30 s) should not make a link that stays
	 * up for 20 s at a time look like a failing one; 10 s still holds a
	 * platform that drops every connection to one cycle per 10 s. */
	return opt->heartbeat_interval < CONN_HELD_MAX ? opt->heartbeat_interval
	                                               : CONN_HELD_MAX;
}

uint64_t conn_backoff(const struct conn_options *opt, uint32_t attempt)
{
	uint64_t wait;

	if (attempt <= 1)
		return 0;
	wait = (uint64_t)(attempt - 1) * opt->reconnect_interval_increment;
	if (wait > opt->max_reconnect_interval)
		wait = opt->max_reconnect_interval;
	return wait;
}

uint64_t conn_error_wait(const struct conn_options *opt,
                         enum conn_error_kind kind)
{
	switch (kind) {
	case CONN_ERROR_TRANSIENT:
		/* One reconnect step: never back to back with the failure
		 * that led here, never longer than a reconnect wait. */
		return conn_backoff(opt, 2);
	case CONN_ERROR_PERMANENT:
		return opt->restart_after_error == 0 ? CONN_NO_DEADLINE
		                                     : opt->restart_after_error;
	case CONN_ERROR_NONE:
	default:
		return CONN_NO_DEADLINE;
	}
}

static void emit(struct conn_result *out, enum conn_action_kind kind,
                 uint32_t gen)
{
	/* CONN_MAX_ACTIONS is larger than any single input can produce; the
	 * unit tests walk every (state, input) pair to keep it so. */
	if (out->n >= CONN_MAX_ACTIONS)
		return;
	out->act[out->n].kind = kind;
	out->act[out->n].gen = gen;
	out->n++;
}

static void set_reason(struct conn *c, const char *fmt, const char *a,
                       const char *b)
{
	int n = snprintf(c->reason, sizeof(c->reason), fmt, a ? a : "",
	                 b ? b : "");

	/* A reason longer than the buffer is cut: it is for people. */
	if (n >= (int)sizeof(c->reason))
		memcpy(c->reason + sizeof(c->reason) - 4, "...", 4);
}

static void enter(struct conn *c, uint64_t now, enum conn_state to,
                  struct conn_result *out)
{
	enum conn_state from = c->state;

	if (from == to)
		return;
	c->state = to;
	c->since = now;
	c->count.transitions++;
	c->count.entered[to]++;
	if (to != CONN_ERROR)
		c->error_cause = CONN_ERR_NONE;
	if (out->n < CONN_MAX_ACTIONS) {
		out->act[out->n].kind = CONN_ACT_STATE;
		out->act[out->n].gen = c->gen;
		out->act[out->n].from = from;
		out->act[out->n].to = to;
		out->act[out->n].at = now;
		out->act[out->n].error = c->error_cause;
		memcpy(out->act[out->n].reason, c->reason, sizeof(c->reason));
		out->n++;
	}
}

/* Drops the current socket, if any; later events of it are stale. */
static void drop_socket(struct conn *c, struct conn_result *out)
{
	if (c->sock != CONN_SOCKET_NONE)
		emit(out, CONN_ACT_DISCONNECT, c->gen);
	c->sock = CONN_SOCKET_NONE;
	c->gen++;
}

static void connect_now(struct conn *c, uint64_t now, struct conn_result *out)
{
	c->gen++;
	c->attempt++;
	c->count.attempts++;
	c->sock = CONN_SOCKET_CONNECTING;
	c->attempt_started = now;
	c->retry_at = 0;
	emit(out, CONN_ACT_CONNECT, c->gen);
}

static bool attempts_exhausted(const struct conn *c)
{
	return c->opt.max_reconnect_attempts != CONN_ATTEMPTS_INFINITE &&
	       c->attempt >= c->opt.max_reconnect_attempts;
}

static void use_listed_url(struct conn *c)
{
	snprintf(c->current_url, sizeof(c->current_url), "%s",
	         conn_configured_url(c));
}

/* The attempt at the current URL failed, or its connection was lost: what
 * happened is noted against it, and the next attempt goes to the next URL
 * of the list. */
static void url_failed(struct conn *c, uint64_t now, const char *why)
{
	struct conn_url_status *st = &c->url_status[c->url_index];

	st->failed = true;
	st->failed_at = now;
	st->failures++;
	/* Cut to fit: the reason is for people, its start says enough. */
	snprintf(st->failure, sizeof(st->failure), "%.*s",
	         (int)sizeof(st->failure) - 1, why);
	c->url_index = (c->url_index + 1) % c->url_count;
	c->redirects = 0;
	use_listed_url(c);
}

/* The reason is set already; the cause decides what ends the ERROR. */
static void enter_error(struct conn *c, uint64_t now,
                        enum conn_error_cause cause, struct conn_result *out)
{
	drop_socket(c, out);
	c->error_at = now;
	c->error_cause = cause;
	c->auth_refused = false;
	enter(c, now, CONN_ERROR, out);
}

/* An ERROR caused by the current URL (its platform node said no, or went
 * silent): the fresh instance that ends it starts at the next URL. */
static void go_error(struct conn *c, uint64_t now, enum conn_error_cause cause,
                     struct conn_result *out)
{
	url_failed(c, now, c->reason);
	enter_error(c, now, cause, out);
}

/*
 * The wait before the next attempt, spread by reconnectJitter percent: a
 * wait w becomes one of w - j% .. w + j%, and the "at once" of a first
 * reconnect one of 0 .. j% of reconnectIntervalIncrement, so a fleet that
 * lost the same node does not come back to the next one in step.
 */
static uint64_t jittered(const struct conn *c, uint64_t wait)
{
	uint64_t spread;
	uint32_t r;

	if (c->opt.reconnect_jitter == 0 || c->opt.random == NULL)
		return wait;
	r = c->opt.random(c->opt.random_userdata);
	if (wait == 0) {
		spread = (uint64_t)c->opt.reconnect_interval_increment *
		         c->opt.reconnect_jitter / 100;
		return r % (spread + 1);
	}
	spread = wait * c->opt.reconnect_jitter / 100;
	return wait - spread + r % (2 * spread + 1);
}

/* When the fresh instance that ends this ERROR starts, or
 * CONN_NO_DEADLINE when only the operator ends it. */
static uint64_t error_ends_at(const struct conn *c)
{
	uint64_t wait =
	        conn_error_wait(&c->opt, conn_error_kind_of(c->error_cause));

	return wait == CONN_NO_DEADLINE ? CONN_NO_DEADLINE : c->error_at + wait;
}

/* Schedules the next attempt, at once when its backoff is zero. */
static void schedule_attempt(struct conn *c, uint64_t now,
                             struct conn_result *out)
{
	uint64_t wait = jittered(c, conn_backoff(&c->opt, c->attempt + 1));

	enter(c, now, CONN_RECONNECTING, out);
	if (wait == 0)
		connect_now(c, now, out);
	else
		c->retry_at = now + wait;
}

/* An OPEN connection that lasted long enough is up: the attempts that led
 * to it are forgotten. */
static void check_held(struct conn *c, uint64_t now)
{
	if (c->state != CONN_OPEN || c->held ||
	    now < c->opened_at + conn_held_time(&c->opt))
		return;
	c->held = true;
	c->attempt = 0;
}

/*
 * The current attempt ended without reaching OPEN, or an OPEN connection
 * was lost; why says what happened.
 */
static void attempt_over(struct conn *c, uint64_t now, const char *why,
                         struct conn_result *out)
{
	char attempts[32];
	char lost[CONN_REASON_MAX];
	char next[CONN_URL_MAX + 16] = "";
	/* Waiting with refused credentials: the platform's last word on this
	 * attempt was no. */
	bool refused = c->auth_refused;

	if (c->url_count > 1)
		snprintf(next, sizeof(next), "; next %s",
		         conn_url_at(c, (c->url_index + 1) % c->url_count));
	drop_socket(c, out);
	c->auth_refused = false;
	url_failed(c, now, why);
	if (c->state == CONN_OPEN) {
		c->count.losses++;
		check_held(c, now);
		if (c->held) {
			set_reason(c, "connection lost: %s%s", why, next);
			schedule_attempt(c, now, out);
			return;
		}
		/* Lost before it was up: the attempt that reached OPEN was
		 * unsuccessful after all. */
		snprintf(lost, sizeof(lost),
		         "connection lost %llu ms after OPEN: %s",
		         (unsigned long long)(now - c->opened_at), why);
		why = lost;
	}
	if (attempts_exhausted(c)) {
		snprintf(attempts, sizeof(attempts), "%u", c->attempt);
		set_reason(
		        c,
		        refused ? "gave up after %s unsuccessful attempts, "
		                  "the credentials refused: %s"
		                : "gave up after %s unsuccessful attempts: %s",
		        attempts, why);
		enter_error(c, now,
		            refused ? CONN_ERR_CREDENTIALS : CONN_ERR_GAVE_UP,
		            out);
		return;
	}
	set_reason(c, "attempt failed: %s%s", why, next);
	schedule_attempt(c, now, out);
}

/* A fresh instance: clean counters, the configured URL, connect at once. */
static void fresh_instance(struct conn *c, uint64_t now, const char *why,
                           struct conn_result *out)
{
	drop_socket(c, out);
	c->attempt = 0;
	c->redirects = 0;
	c->auth_refused = false;
	use_listed_url(c);
	set_reason(c, "%s%s", why, NULL);
	enter(c, now, CONN_RECONNECTING, out);
	connect_now(c, now, out);
}

static bool in_handshake(const struct conn *c)
{
	switch (c->state) {
	case CONN_AWAITING_CONNECTION:
	case CONN_CHALLENGING:
	case CONN_AUTHENTICATING:
		return true;
	case CONN_AWAITING_AUTHENTICATION:
		return !c->auth_refused;
	default:
		return false;
	}
}

static void on_socket_open(struct conn *c, uint64_t now,
                           struct conn_result *out)
{
	c->sock = CONN_SOCKET_UP;
	c->last_rx = now;
	set_reason(c, "socket open to %s%s", c->current_url, NULL);
	enter(c, now, CONN_AWAITING_CONNECTION, out);
	emit(out, CONN_ACT_SEND_CHALLENGE, c->gen);
	set_reason(c, "challenge sent to %s%s", c->current_url, NULL);
	enter(c, now, CONN_CHALLENGING, out);
}

static void send_auth(struct conn *c, uint64_t now, const char *why,
                      struct conn_result *out)
{
	c->auth_refused = false;
	emit(out, CONN_ACT_SEND_AUTH, c->gen);
	set_reason(c, "%s%s", why, NULL);
	enter(c, now, CONN_AUTHENTICATING, out);
}

static void on_redirect(struct conn *c, uint64_t now, const char *url,
                        struct conn_result *out)
{
	if (++c->redirects > CONN_MAX_REDIRECTS) {
		set_reason(c, "too many redirects (last to %s)%s", url, NULL);
		go_error(c, now, CONN_ERR_REDIRECTS, out);
		return;
	}
	if (copy_url(c->current_url, url) < 0) {
		attempt_over(c, now, "redirect without a usable URL", out);
		return;
	}
	drop_socket(c, out);
	set_reason(c, "redirected to %s%s", c->current_url, NULL);
	enter(c, now, CONN_RECONNECTING, out);
	/* A redirect is not a failed attempt: follow it at once and keep
	 * the attempt number. */
	c->attempt--;
	c->count.attempts--;
	connect_now(c, now, out);
}

static void on_frame(struct conn *c, uint64_t now, const struct conn_input *in,
                     struct conn_result *out)
{
	c->last_rx = now;
	c->count.frames_in++;

	switch (in->frame) {
	case CONN_FRAME_ACCEPT:
		if (c->state != CONN_CHALLENGING)
			return;
		set_reason(c, "challenge accepted%s%s", NULL, NULL);
		enter(c, now, CONN_AWAITING_AUTHENTICATION, out);
		send_auth(c, now, "authentication requested", out);
		return;
	case CONN_FRAME_REDIRECT:
		if (c->state == CONN_CHALLENGING)
			on_redirect(c, now, in->text ? in->text : "", out);
		return;
	case CONN_FRAME_REJECT:
		if (c->state != CONN_CHALLENGING)
			return;
		set_reason(c, "connection rejected by the platform%s%s", NULL,
		           NULL);
		go_error(c, now, CONN_ERR_REJECTED, out);
		return;
	case CONN_FRAME_AUTH_OK:
		if (c->state != CONN_AUTHENTICATING)
			return;
		/* The attempt counter resets once the connection has held
		 * (check_held), not here. */
		c->redirects = 0;
		c->opened_at = now;
		c->held = false;
		c->count.opens++;
		c->next_ping = now + c->opt.heartbeat_interval;
		set_reason(c, "authenticated at %s%s", c->current_url, NULL);
		enter(c, now, CONN_OPEN, out);
		return;
	case CONN_FRAME_AUTH_FAILED:
		if (c->state != CONN_AUTHENTICATING)
			return;
		/* Trying the same credentials again would only burn the
		 * server's maxAuthAttempts: wait for new ones (a reload
		 * starts a fresh instance with them).  The server counts our
		 * PINGs as traffic, so keep sending them to hold the socket
		 * meanwhile. */
		c->auth_refused = true;
		c->next_ping = now + c->opt.heartbeat_interval;
		set_reason(c, "authentication refused: %s%s",
		           in->text && *in->text ? in->text
		                                 : "invalid credentials",
		           NULL);
		enter(c, now, CONN_AWAITING_AUTHENTICATION, out);
		return;
	case CONN_FRAME_AUTH_TOO_MANY:
		if (c->state != CONN_AUTHENTICATING &&
		    c->state != CONN_AWAITING_AUTHENTICATION)
			return;
		set_reason(c, "too many authentication attempts%s%s", NULL,
		           NULL);
		go_error(c, now, CONN_ERR_AUTH_TOO_MANY, out);
		return;
	case CONN_FRAME_AUTH_TIMEOUT:
		if (!in_handshake(c) &&
		    c->state != CONN_AWAITING_AUTHENTICATION)
			return;
		/* During the handshake the platform (or its auth service)
		 * was too slow: a stall.  With the credentials refused, they
		 * are what stands in the way. */
		if (c->auth_refused) {
			set_reason(c,
			           "authentication timeout, the credentials "
			           "refused%s%s",
			           NULL, NULL);
			go_error(c, now, CONN_ERR_CREDENTIALS, out);
			return;
		}
		set_reason(c, "authentication timeout%s%s", NULL, NULL);
		go_error(c, now, CONN_ERR_AUTH_TIMEOUT, out);
		return;
	case CONN_FRAME_AUTH_BAD_DATA:
		if (c->state != CONN_AUTHENTICATING &&
		    c->state != CONN_AWAITING_AUTHENTICATION)
			return;
		set_reason(c,
		           "the platform refused the auth data "
		           "(INVALID_MESSAGE_DATA)%s%s",
		           NULL, NULL);
		go_error(c, now, CONN_ERR_AUTH_DATA, out);
		return;
	case CONN_FRAME_OTHER:
	default:
		return;
	}
}

static void on_timer(struct conn *c, uint64_t now, struct conn_result *out)
{
	char ms[32];

	switch (c->state) {
	case CONN_OPEN:
		check_held(c, now);
		if (now >= c->last_rx + 2ull * c->opt.heartbeat_interval) {
			snprintf(ms, sizeof(ms), "%llu",
			         (unsigned long long)(now - c->last_rx));
			c->count.losses++;
			set_reason(c,
			           "heartbeat: no answer from the platform for "
			           "%s ms (two intervals)%s",
			           ms, NULL);
			go_error(c, now, CONN_ERR_HEARTBEAT, out);
			return;
		}
		break;
	case CONN_ERROR:
		if (now < error_ends_at(c))
			return;
		if (conn_error_kind_of(c->error_cause) == CONN_ERROR_TRANSIENT)
			fresh_instance(c, now,
			               "fresh instance after a transient ERROR",
			               out);
		else
			fresh_instance(c, now,
			               "fresh instance after ERROR "
			               "(restartAfterError)",
			               out);
		return;
	case CONN_RECONNECTING:
		if (c->sock == CONN_SOCKET_NONE) {
			if (now >= c->retry_at)
				connect_now(c, now, out);
			return;
		}
		break;
	default:
		break;
	}
	if ((c->sock == CONN_SOCKET_CONNECTING || in_handshake(c)) &&
	    now >= c->attempt_started + c->opt.handshake_timeout) {
		snprintf(ms, sizeof(ms), "%u", c->opt.handshake_timeout);
		char why[64];
		snprintf(why, sizeof(why), "no handshake within %s ms", ms);
		attempt_over(c, now, why, out);
		return;
	}
	if (c->sock == CONN_SOCKET_UP &&
	    (c->state == CONN_OPEN || c->auth_refused) && now >= c->next_ping) {
		emit(out, CONN_ACT_SEND_PING, c->gen);
		c->count.pings++;
		c->next_ping = now + c->opt.heartbeat_interval;
	}
}

static bool is_final(const struct conn *c)
{
	return c->closed;
}

/* No usable route: what is under way cannot succeed.  Not the node's
 * fault, so the URL stays; the next attempt waits at least one step (it
 * would fail at once) unless the route comes back first. */
static void on_net_down(struct conn *c, uint64_t now, const char *why,
                        struct conn_result *out)
{
	uint64_t wait;

	c->net_down = true;
	if (c->sock == CONN_SOCKET_NONE || c->state == CONN_OFFLINE ||
	    c->state == CONN_ERROR)
		return;
	drop_socket(c, out);
	c->auth_refused = false;
	c->redirects = 0;
	use_listed_url(c);
	if (c->state == CONN_OPEN) {
		c->count.losses++;
		check_held(c, now);
	}
	wait = conn_backoff(&c->opt, c->attempt + 1);
	if (wait < conn_backoff(&c->opt, 2))
		wait = conn_backoff(&c->opt, 2);
	set_reason(c, "network: %s%s", why, "; waiting for a route");
	enter(c, now, CONN_RECONNECTING, out);
	c->retry_at = now + jittered(c, wait);
}

/* A usable route again: the attempt waiting out its backoff is made now,
 * and a transient ERROR ends now; at most once per reconnect step. */
static void on_net_up(struct conn *c, uint64_t now, const char *why,
                      struct conn_result *out)
{
	uint64_t step = conn_backoff(&c->opt, 2);
	uint64_t allowed = c->net_retried ? c->net_retry_at + step : 0;
	bool waiting =
	        c->state == CONN_RECONNECTING && c->sock == CONN_SOCKET_NONE;
	bool transient =
	        c->state == CONN_ERROR &&
	        conn_error_kind_of(c->error_cause) == CONN_ERROR_TRANSIENT;

	c->net_down = false;
	if (!waiting && !transient)
		return;
	if (now < allowed) {
		/* Too soon after the last one: as soon as allowed instead (a
		 * transient ERROR ends within one step anyway). */
		if (waiting && c->retry_at > allowed)
			c->retry_at = allowed;
		return;
	}
	c->net_retried = true;
	c->net_retry_at = now;
	if (transient) {
		char text[CONN_REASON_MAX];

		snprintf(text, sizeof(text), "network: %s; fresh instance now",
		         why);
		fresh_instance(c, now, text, out);
		return;
	}
	set_reason(c, "network: %s%s", why, "; attempt now");
	connect_now(c, now, out);
}

int conn_handle(struct conn *c, uint64_t now, const struct conn_input *in,
                struct conn_result *out)
{
	out->n = 0;

	switch (in->kind) {
	case CONN_IN_START:
		if (c->started)
			return -EALREADY;
		c->started = true;
		c->since = now;
		use_listed_url(c); /* the options may have changed since */
		set_reason(c, "connecting to %s%s", c->current_url, NULL);
		connect_now(c, now, out);
		return 0;
	case CONN_IN_SOCKET_OPEN:
		if (in->gen != c->gen || c->sock != CONN_SOCKET_CONNECTING)
			return 0;
		on_socket_open(c, now, out);
		return 0;
	case CONN_IN_SOCKET_CLOSED:
		if (in->gen != c->gen || c->sock == CONN_SOCKET_NONE)
			return 0;
		c->sock = CONN_SOCKET_NONE;
		attempt_over(c, now, in->text ? in->text : "socket closed",
		             out);
		return 0;
	case CONN_IN_FRAME:
		if (in->gen != c->gen || c->sock != CONN_SOCKET_UP)
			return 0;
		on_frame(c, now, in, out);
		return 0;
	case CONN_IN_TIMER:
		if (!is_final(c))
			on_timer(c, now, out);
		return 0;
	case CONN_IN_PAUSE:
		if (c->state == CONN_OFFLINE)
			return -EALREADY;
		if (is_final(c) || !c->started)
			return -EPERM;
		drop_socket(c, out);
		c->auth_refused = false;
		set_reason(c, "paused by the operator%s%s", NULL, NULL);
		enter(c, now, CONN_OFFLINE, out);
		return 0;
	case CONN_IN_RESUME:
		if (c->state == CONN_OFFLINE) {
			fresh_instance(c, now, "resumed by the operator", out);
			return 0;
		}
		if (c->state == CONN_ERROR) {
			fresh_instance(c, now,
			               "fresh instance after ERROR, resumed "
			               "by the operator",
			               out);
			return 0;
		}
		if (c->state == CONN_RECONNECTING &&
		    c->sock == CONN_SOCKET_NONE) {
			/* Waiting out a backoff: the operator asks for the
			 * attempt now. */
			set_reason(c, "retry requested by the operator%s%s",
			           NULL, NULL);
			connect_now(c, now, out);
			return 0;
		}
		return is_final(c) || !c->started ? -EPERM : -EALREADY;
	case CONN_IN_RESTART:
		if (is_final(c) || !c->started)
			return -EPERM;
		fresh_instance(c, now,
		               in->text ? in->text : "fresh instance requested",
		               out);
		return 0;
	case CONN_IN_NET_DOWN:
	case CONN_IN_NET_UP:
		if (is_final(c) || !c->started) {
			c->net_down = in->kind == CONN_IN_NET_DOWN;
			return 0;
		}
		if (in->kind == CONN_IN_NET_DOWN)
			on_net_down(c, now, in->text ? in->text : "no route",
			            out);
		else
			on_net_up(c, now, in->text ? in->text : "route back",
			          out);
		return 0;
	case CONN_IN_CLOSE:
		if (is_final(c))
			return -EALREADY;
		c->started = true;
		c->closed = true;
		drop_socket(c, out);
		c->auth_refused = false;
		set_reason(c, "closed deliberately%s%s", NULL, NULL);
		/* From the initial CLOSED (still connecting) there is no
		 * state change to report; the reason says what happened. */
		enter(c, now, CONN_CLOSED, out);
		return 0;
	}
	return -EINVAL;
}

uint64_t conn_deadline(const struct conn *c)
{
	uint64_t d = CONN_NO_DEADLINE;
	uint64_t t;

	if (is_final(c) || !c->started)
		return CONN_NO_DEADLINE;
	switch (c->state) {
	case CONN_OFFLINE:
		return CONN_NO_DEADLINE;
	case CONN_ERROR:
		return error_ends_at(c);
	case CONN_RECONNECTING:
		if (c->sock == CONN_SOCKET_NONE)
			return c->retry_at;
		break;
	case CONN_OPEN:
		t = c->last_rx + 2ull * c->opt.heartbeat_interval;
		d = t < c->next_ping ? t : c->next_ping;
		t = c->opened_at + conn_held_time(&c->opt);
		if (!c->held && t < d)
			d = t;
		return d;
	default:
		break;
	}
	if (c->sock == CONN_SOCKET_CONNECTING || in_handshake(c))
		d = c->attempt_started + c->opt.handshake_timeout;
	if (c->auth_refused && c->sock == CONN_SOCKET_UP && c->next_ping < d)
		d = c->next_ping;
	return d;
}

int64_t conn_next_retry_in(const struct conn *c, uint64_t now)
{
	uint64_t at;

	if (is_final(c) || !c->started)
		return -1;
	if (c->state == CONN_ERROR)
		at = error_ends_at(c);
	else if (c->state == CONN_RECONNECTING && c->sock == CONN_SOCKET_NONE)
		at = c->retry_at;
	else
		return -1;
	if (at == CONN_NO_DEADLINE)
		return -1;
	return at > now ? (int64_t)(at - now) : 0;
}

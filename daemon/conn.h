/*
 * The deepstream connection state machine.
 *
 * Pure: it never reads a clock, never does I/O and never allocates.  It is
 * fed inputs (start, socket opened/closed, a handshake frame, timer, pause,
 * resume, restart, close) together with the current monotonic time in
 * milliseconds, and answers with actions for the caller to carry out
 * (connect, disconnect, send CHALLENGE / AUTH / PING, state changed) plus
 * one deadline at which it wants a CONN_IN_TIMER.  The caller keeps a single
 * timer armed to conn_deadline().
 *
 * The platform may be several URLs (the nodes of a cluster): every attempt
 * goes to one of them, and an attempt that failed, or a connection that was
 * lost, moves on to the next one in the list (wrapping round), so the first
 * reconnect after losing a node already dials another.  The reconnect
 * schedule and maxReconnectAttempts count attempts over the whole list.
 *
 * Sockets are identified by a generation number: every CONN_ACT_CONNECT
 * carries a fresh one and socket inputs of any other generation are stale
 * and ignored, so events of a socket we already gave up on cannot disturb
 * the current attempt.
 */
#ifndef DSD_CONN_H
#define DSD_CONN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The states and their names are those of the deepstream documentation. */
enum conn_state {
	CONN_CLOSED,
	CONN_AWAITING_CONNECTION,
	CONN_CHALLENGING,
	CONN_AWAITING_AUTHENTICATION,
	CONN_AUTHENTICATING,
	CONN_OPEN,
	CONN_RECONNECTING,
	CONN_OFFLINE,
	CONN_ERROR,
	CONN_STATE_COUNT
};

#define CONN_ATTEMPTS_INFINITE UINT32_MAX
#define CONN_NO_DEADLINE       UINT64_MAX
/* Room for any URL url_parse() accepts (host 255, path 1023, ...). */
#define CONN_URL_MAX 1536
/* The URL list: at most this many URLs, this long altogether (one config
 * line). */
#define CONN_URLS_MAX     16
#define CONN_URL_LIST_MAX 4096
/* What is kept of the last failure of each URL (for people). */
#define CONN_FAILURE_MAX 256
#define CONN_REASON_MAX  512
/* Consecutive REDIRECTs followed before giving up (a redirect loop). */
#define CONN_MAX_REDIRECTS 5
/*
 * An OPEN connection counts as up (established) once it has stayed OPEN for
 * min(heartbeatInterval, CONN_HELD_MAX) ms; only then does its loss reset the
 * attempt counter.  One lost sooner is an unsuccessful attempt, so a
 * platform that authenticates and drops at once gets the backoff, not a
 * reconnect storm.
 */
#define CONN_HELD_MAX 10000

/*
 * Why the connection is in ERROR.  The cause decides how the fresh instance
 * that ends it is started (conn_error_kind_of(), conn_error_wait()):
 *
 *  - transient: the platform was unreachable, stalled, or dropped every
 *    connection before it held.  A retry may well succeed, so ERROR lasts
 *    one reconnect step, min(reconnectIntervalIncrement,
 *    maxReconnectInterval), whatever restartAfterError says; then a fresh
 *    instance makes its attempt 1 and follows the reconnect schedule.
 *  - permanent: the platform refused dsd (REJECT, credentials, auth data,
 *    a redirect loop).  The same attempt would be refused again, so ERROR
 *    lasts restartAfterError (0: until the operator resumes or reloads).
 */
enum conn_error_cause {
	CONN_ERR_NONE,          /* not in ERROR */
	CONN_ERR_HEARTBEAT,     /* transient: OPEN, silent for two intervals */
	CONN_ERR_GAVE_UP,       /* transient: maxReconnectAttempts failed */
	CONN_ERR_AUTH_TIMEOUT,  /* transient: AUTHENTICATION_TIMEOUT while
	                           the credentials were not refused */
	CONN_ERR_REJECTED,      /* permanent: CONNECTION REJECT */
	CONN_ERR_AUTH_TOO_MANY, /* permanent: TOO_MANY_AUTH_ATTEMPTS */
	CONN_ERR_AUTH_DATA,     /* permanent: INVALID_MESSAGE_DATA (auth) */
	CONN_ERR_CREDENTIALS, /* permanent: gave up, or AUTHENTICATION_TIMEOUT,
	                         while the credentials stood refused */
	CONN_ERR_REDIRECTS,   /* permanent: a redirect loop */
	CONN_ERR_CAUSE_COUNT
};

enum conn_error_kind {
	CONN_ERROR_NONE,      /* not in ERROR */
	CONN_ERROR_TRANSIENT, /* a retry can fix it: the reconnect step */
	CONN_ERROR_PERMANENT, /* it cannot: restartAfterError or the operator */
};

/*
 * A source of random numbers for the reconnect jitter, so that tests can
 * inject their own; any uint32_t, uniformly.
 */
typedef uint32_t (*conn_random_fn)(void *userdata);

struct conn_options {
	const char *url; /* the configured URLs, separated by spaces or tabs */
	uint32_t reconnect_interval_increment; /* ms */
	uint32_t max_reconnect_interval;       /* ms */
	uint32_t max_reconnect_attempts;       /* or CONN_ATTEMPTS_INFINITE */
	uint32_t heartbeat_interval;           /* ms */
	uint32_t restart_after_error; /* ms, 0 = wait for the operator */
	uint32_t handshake_timeout;   /* ms, socket connect to OPEN */
	/* Percent (0..100) by which each reconnect wait is spread; 0 keeps
	 * the schedule exact.  random is required when it is not 0. */
	uint32_t reconnect_jitter;
	conn_random_fn random;
	void *random_userdata;
};

enum conn_input_kind {
	CONN_IN_START,         /* begin connecting (once, from CLOSED) */
	CONN_IN_SOCKET_OPEN,   /* gen: the WebSocket is up */
	CONN_IN_SOCKET_CLOSED, /* gen, text: it is gone, and why */
	CONN_IN_FRAME,         /* gen, frame, text: something arrived */
	CONN_IN_TIMER,         /* the deadline passed */
	CONN_IN_PAUSE,         /* operator: go OFFLINE */
	CONN_IN_RESUME,        /* operator: leave OFFLINE / ERROR */
	CONN_IN_RESTART,       /* a fresh instance (new URL or credentials) */
	CONN_IN_CLOSE,         /* deliberate close: CLOSED, final */
	CONN_IN_NET_DOWN,      /* text: no usable route to the platform */
	CONN_IN_NET_UP,        /* text: a usable route to it again */
};

/* What a received frame means to the connection. */
enum conn_frame {
	CONN_FRAME_OTHER,         /* any other message: still proof of life */
	CONN_FRAME_ACCEPT,        /* CONNECTION ACCEPT */
	CONN_FRAME_REJECT,        /* CONNECTION REJECT */
	CONN_FRAME_REDIRECT,      /* CONNECTION REDIRECT, text = URL */
	CONN_FRAME_AUTH_TIMEOUT,  /* CONNECTION AUTHENTICATION_TIMEOUT */
	CONN_FRAME_AUTH_OK,       /* AUTH AUTH_SUCCESSFUL */
	CONN_FRAME_AUTH_FAILED,   /* AUTH AUTH_UNSUCCESSFUL, text = reason */
	CONN_FRAME_AUTH_TOO_MANY, /* AUTH TOO_MANY_AUTH_ATTEMPTS */
	CONN_FRAME_AUTH_BAD_DATA, /* AUTH INVALID_MESSAGE_DATA */
};

struct conn_input {
	enum conn_input_kind kind;
	uint32_t gen;
	enum conn_frame frame;
	const char *text; /* may be NULL */
};

enum conn_action_kind {
	CONN_ACT_CONNECT,        /* open conn_current_url() as generation gen */
	CONN_ACT_DISCONNECT,     /* close generation gen */
	CONN_ACT_SEND_CHALLENGE, /* on gen, with the URL we dialled */
	CONN_ACT_SEND_AUTH,      /* on gen, with the current credentials */
	CONN_ACT_SEND_PING,      /* on gen */
	CONN_ACT_STATE, /* the state changed from `from` to the current */
};

struct conn_action {
	enum conn_action_kind kind;
	uint32_t gen;
	enum conn_state from, to;     /* CONN_ACT_STATE */
	uint64_t at;                  /* CONN_ACT_STATE: when */
	enum conn_error_cause error;  /* CONN_ACT_STATE to ERROR: the cause */
	char reason[CONN_REASON_MAX]; /* CONN_ACT_STATE: why */
};

#define CONN_MAX_ACTIONS 8

struct conn_result {
	unsigned n;
	struct conn_action act[CONN_MAX_ACTIONS];
};

enum conn_socket {
	CONN_SOCKET_NONE,
	CONN_SOCKET_CONNECTING,
	CONN_SOCKET_UP,
};

struct conn_counters {
	uint64_t attempts;    /* connection attempts made */
	uint64_t opens;       /* times OPEN was reached */
	uint64_t losses;      /* established connections lost */
	uint64_t frames_in;   /* frames received */
	uint64_t pings;       /* PINGs sent */
	uint64_t transitions; /* state changes */
	/* state changes by the state entered (for the metrics) */
	uint64_t entered[CONN_STATE_COUNT];
};

/* What is known of one URL of the list. */
struct conn_url_status {
	bool failed;        /* an attempt at it failed, or it was lost */
	uint64_t failed_at; /* when, last */
	uint64_t failures;  /* how often */
	char failure[CONN_FAILURE_MAX]; /* why, last */
};

/* Public so it can live on the stack or inside the root object; treat the
 * fields as private and use the accessors. */
struct conn {
	struct conn_options opt;
	/* The URL list, each NUL-terminated, starting at url_off[i]. */
	char url_list[CONN_URL_LIST_MAX];
	uint16_t url_off[CONN_URLS_MAX];
	unsigned url_count;
	unsigned url_index; /* the URL of the current (or next) attempt */
	struct conn_url_status url_status[CONN_URLS_MAX];
	char current_url[CONN_URL_MAX]; /* url_index's, or a redirect's */
	enum conn_state state;
	bool started;
	bool closed; /* deliberately closed: final */
	char reason[CONN_REASON_MAX];
	uint64_t since;
	enum conn_socket sock;
	uint32_t gen;
	uint32_t attempt;   /* attempts since a connection was last up */
	uint32_t redirects; /* consecutive redirects followed */
	bool auth_refused;  /* waiting in AWAITING_AUTHENTICATION for new
	                       credentials after AUTH_UNSUCCESSFUL */
	uint64_t attempt_started;
	uint64_t opened_at; /* when OPEN was reached */
	bool held;          /* OPEN long enough to count as up */
	uint64_t retry_at;  /* RECONNECTING with no socket: next attempt */
	uint64_t next_ping;
	uint64_t last_rx;
	uint64_t error_at;
	enum conn_error_cause error_cause; /* CONN_ERR_NONE unless ERROR */
	bool net_down;                     /* the last network news: no route */
	bool net_retried;                  /* net_retry_at holds a time */
	uint64_t net_retry_at; /* the last attempt the network asked for */
	struct conn_counters count;
};

/* Returns -EINVAL for an unusable option (no URL, too many, zero
 * heartbeat, jitter without a random source, ...). */
int conn_init(struct conn *c, const struct conn_options *opt);
/* Takes new options; they apply from the next attempt (or CONN_IN_RESTART).
 * A URL still listed keeps what is known of it, and the next attempt stays
 * on the current URL when it is still listed (else it starts at the first). */
int conn_set_options(struct conn *c, const struct conn_options *opt);
/* The position of url in the list, or -ENOENT. */
int conn_find_url(const struct conn *c, const char *url);

/*
 * Feeds one input at time now.  Returns 0, or -EALREADY / -EPERM when an
 * operator input does not apply in the current state (nothing changes
 * then).  out receives the actions, in the order they must be carried out.
 */
int conn_handle(struct conn *c, uint64_t now, const struct conn_input *in,
                struct conn_result *out);

/* When the caller must feed CONN_IN_TIMER, or CONN_NO_DEADLINE. */
uint64_t conn_deadline(const struct conn *c);

/* How long an OPEN connection must last to count as up (see CONN_HELD_MAX). */
uint64_t conn_held_time(const struct conn_options *opt);

/* The wait before attempt number `attempt` (1-based) after a loss or failure:
 * 0 for the first, then reconnectIntervalIncrement more per failed attempt,
 * capped at maxReconnectInterval. */
uint64_t conn_backoff(const struct conn_options *opt, uint32_t attempt);

/* The classification of every cause; CONN_ERROR_NONE for CONN_ERR_NONE. */
enum conn_error_kind conn_error_kind_of(enum conn_error_cause cause);

/* How long an ERROR of this kind lasts before a fresh instance starts, or
 * CONN_NO_DEADLINE when only the operator ends it (see the enum). */
uint64_t conn_error_wait(const struct conn_options *opt,
                         enum conn_error_kind kind);

/* Stable names for the status document: "heartbeat", "transient", ... */
const char *conn_error_cause_name(enum conn_error_cause cause);
const char *conn_error_kind_name(enum conn_error_kind kind);

static inline enum conn_state conn_get_state(const struct conn *c)
{
	return c->state;
}
static inline const char *conn_reason(const struct conn *c)
{
	return c->reason;
}
static inline uint64_t conn_since(const struct conn *c)
{
	return c->since;
}
static inline const char *conn_current_url(const struct conn *c)
{
	return c->current_url;
}
/* The listed URL of the current (or next) attempt: the node dsd is on
 * while OPEN, even after a REDIRECT took it elsewhere. */
static inline const char *conn_configured_url(const struct conn *c)
{
	return c->url_list + c->url_off[c->url_index];
}
static inline unsigned conn_url_count(const struct conn *c)
{
	return c->url_count;
}
static inline unsigned conn_url_index(const struct conn *c)
{
	return c->url_index;
}
/* The i-th URL of the list (i < conn_url_count()) and what is known. */
static inline const char *conn_url_at(const struct conn *c, unsigned i)
{
	return c->url_list + c->url_off[i];
}
static inline const struct conn_url_status *
conn_url_status_at(const struct conn *c, unsigned i)
{
	return &c->url_status[i];
}
static inline uint32_t conn_attempt(const struct conn *c)
{
	return c->attempt;
}
static inline uint32_t conn_generation(const struct conn *c)
{
	return c->gen;
}
static inline bool conn_is_open(const struct conn *c)
{
	return c->state == CONN_OPEN;
}
static inline enum conn_error_cause conn_error_cause(const struct conn *c)
{
	return c->error_cause;
}
/* Milliseconds until the next attempt, or -1 if none is waiting: between
 * attempts (RECONNECTING without a socket) and in ERROR until the fresh
 * instance (-1 there when only the operator can end it). */
int64_t conn_next_retry_in(const struct conn *c, uint64_t now);

const char *conn_state_name(enum conn_state s);
/* Parses a state name; returns -EINVAL for an unknown one. */
int conn_state_from_name(const char *name, enum conn_state *ret);

#endif

/*
 * The root object: one struct dsd owns everything the daemon has at run
 * time (no globals), so a test can build two.
 *
 *   dsd.c       lifecycle, the loop, signals, the connection timer, reload
 *   upstream.c  the platform side: conn actions -> transport, frames -> conn
 *   control.c   local requests: hello/status/watch/pause/resume/reload
 *   pubsub.c    local subscriptions, emits, the write queue, fan-out
 *   status.c    the status document (JSON) for dsctl status
 */
#ifndef DSD_DSD_H
#define DSD_DSD_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "client.h"
#include "config.h"
#include "conn.h"
#include "log.h"

struct event;
struct event_base;
struct ipc_client;
struct ipc_msg;
struct ipc_peer;
struct ipc_server;
struct access_usage;
struct outq;
struct subs;
struct transport;

struct dsd_counters {
	uint64_t emits_sent;       /* handed to the platform connection */
	uint64_t emits_queued;     /* accepted into the write queue */
	uint64_t emits_rejected;   /* refused: queue full (overflow=reject) */
	uint64_t emits_dropped;    /* evicted from the queue (drop-oldest) */
	uint64_t events_received;  /* EVENT EMITs from the platform */
	uint64_t events_delivered; /* copies handed to local subscribers */
	uint64_t subs_denied; /* upstream subscriptions the platform denied */
	uint64_t clients_dropped; /* local clients cut off (slow, malformed) */
	uint64_t clients_refused; /* connections refused (too many clients) */
	uint64_t requests_denied; /* requests refused by the access policy
	                             or a per-uid quota */
	uint64_t emits_denied;    /* emits the platform refused (permissions) */
	uint64_t emits_requeued;  /* handed to a connection that closed before
	                             writing them, and queued again */
};

struct dsd {
	struct event_base *base;
	char *config_path;
	struct dsd_config cfg;
	int passed_fd; /* socket-activation fd, or -1 */

	struct conn conn;
	struct event *conn_timer;
	struct transport *transport;
	uint32_t ready_gen;    /* generation whose handshake is done (OPEN) */
	bool flushing_blocked; /* the transport said -ENOBUFS; wait for drained
	                        */
	/* Upstream subscriptions must be rebuilt from the local ones (a new
	 * connection, or a batch that could not be sent). */
	bool subs_rebuild;

	struct ipc_server *ipc;
	struct dsd_client_list clients;
	struct access_usage *usage; /* clients, subscriptions, queue per uid */
	uid_t self_uid;             /* the uid dsd runs as */
	struct outq *queue;
	struct subs *subs;
	struct dsd_client **slots; /* subscriber id -> client, max_clients */
	uint32_t slot_count, next_slot;
	struct event *subs_flush;
	struct log_ratelimit queue_log, deny_log, reconnect_log, refuse_log;
	/* What the platform can repeat at will: per-frame warnings, the
	 * loss of OPEN, the other connection state changes. */
	struct log_ratelimit frame_log, loss_log, state_log;
	struct log_ratelimit access_log; /* requests the policy refused */
	struct event *notify_timer;      /* coalesces STATUS= updates */

	struct event *sig_term, *sig_int, *sig_hup;
	struct event *watchdog;
	bool stopping;
	int exit_code;

	struct dsd_counters count;
	uint64_t started_mono;
};

/* Wall-clock and monotonic milliseconds. */
uint64_t dsd_now(void);
int64_t dsd_unix_ms(void);
/* The unix time of a past monotonic instant. */
int64_t dsd_mono_to_unix(uint64_t mono);

/* dsd.c */
int dsd_new(const char *config_path, struct dsd_config *cfg, int passed_fd,
            struct dsd **ret);
int dsd_run(struct dsd *d);
void dsd_free(struct dsd *d);
void dsd_stop(struct dsd *d, int exit_code);
int dsd_reload(struct dsd *d, char *err, size_t errlen);
void dsd_notify_status(struct dsd *d);
/* The same, coalesced: at most a few times a second. */
void dsd_notify_status_soon(struct dsd *d);

/* upstream.c */
int upstream_start(struct dsd *d);
/* The connection options a configuration asks for. */
void upstream_options(const struct dsd_config *cfg, struct conn_options *ret);
/* A transport set up as cfg says (its caFile), calling back into d. */
int upstream_transport_new(struct dsd *d, const struct dsd_config *cfg,
                           struct transport **ret);
/* Feeds one input to the connection and carries out its actions. */
int upstream_feed(struct dsd *d, const struct conn_input *in);
void upstream_arm_timer(struct dsd *d);
/* Sends one encoded frame on the open connection.  -ENOTCONN when not OPEN,
 * -ENOBUFS when the transport backlog is full. */
int upstream_send(struct dsd *d, const uint8_t *frame, size_t len);
/* The same for protocol frames (SUBSCRIBE...), which must not wait behind
 * the apps' emits. */
int upstream_send_control(struct dsd *d, const uint8_t *frame, size_t len);
void upstream_connection_opened(struct dsd *d); /* implemented in pubsub.c */
void pubsub_connection_lost(struct dsd *d);

/* control.c */
int control_admit(struct ipc_client *c, const struct ipc_peer *peer, char *why,
                  size_t whylen, void *userdata);
void control_request(struct ipc_client *c, const struct ipc_msg *m,
                     void *userdata);
void control_disconnected(struct ipc_client *c, const char *reason,
                          void *userdata);
void control_rejected(const struct ipc_peer *peer, const char *reason,
                      void *userdata);
/* Refuses request m of c with code and why, and logs it with c's
 * credentials (rate-limited). */
void control_deny(struct dsd *d, struct dsd_client *c, const struct ipc_msg *m,
                  int code, const char *why);
void control_broadcast_state(struct dsd *d, enum conn_state state,
                             const char *reason, uint64_t at_mono);
void control_reply_ok(struct ipc_client *c, uint32_t id);
void control_reply_error(struct ipc_client *c, uint32_t id, int code,
                         const char *msg);

/* pubsub.c */
int pubsub_new(struct dsd *d);
void pubsub_free(struct dsd *d);
void pubsub_request(struct dsd *d, struct dsd_client *c,
                    const struct ipc_msg *m);
void pubsub_client_gone(struct dsd *d, struct dsd_client *c);
/* An EVENT message from the platform. */
void pubsub_platform_message(struct dsd *d, const void *wire_msg);
/* Takes back the emits t could not write before its connection closed and
 * queues them again, ahead of everything else. */
void pubsub_take_back_unsent(struct dsd *d, struct transport *t);
/* The connection has room again: lost subscription batches, then the
 * write queue. */
void pubsub_drained(struct dsd *d);
/* Flushes the write queue as far as the transport takes it. */
void pubsub_flush(struct dsd *d);
int pubsub_apply_limits(struct dsd *d);
size_t dsd_queue_depth(struct dsd *d);

/* status.c: a malloc'd JSON object text. */
char *status_json(struct dsd *d);

#endif

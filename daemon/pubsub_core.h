/*
 * Inside pubsub: pubsub.c (life cycle, the connection's news, emits) is on
 * top; pubsub_subs.c (subscriptions, the platform's EVENT messages) and
 * pubsub_spool.c (the durable spool's batches) below it; pubsub_core.c
 * (slots, fan-out, writing the store, taking an emit in) under all three,
 * with the struct they share.  Calls go down only.  Not for the rest of
 * the daemon: pubsub.h is its face.
 */
#ifndef DSD_PUBSUB_CORE_H
#define DSD_PUBSUB_CORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <event2/event.h>

#include "client.h"
#include "log.h"
#include "ipcproto.h"
#include "pubsub_types.h"
#include "send_window.h"
#include "sendq.h"
#include "subs.h"

struct dsd_client;
struct spool;
struct wire_msg;

#define BULK_NAMES           256
#define PLATFORM_MAX_MESSAGE (1024 * 1024)
/*
 * What may be written and not yet confirmed: p->window (send_window.h),
 * the rate at which the platform confirms times a target delay of 2 ms,
 * between 16 KiB / 128 emits and 256 KiB / 256 emits.  Small enough that
 * an app's event never waits long behind another's and the kernel's
 * socket buffer never holds a backlog a stall would take with it.  A fence
 * PING goes out every half window, so writing never stops for a round
 * trip.
 */
/*
 * The reserve: while the window is full, an app with nothing in flight may
 * still write one message of up to this size.  Without it a light app's
 * event waited for the PONG that frees the window a flooding app keeps
 * full (the largest share of its delay in docs/fairness.md); with it the
 * light event waits only behind what is already on the wire.  Bounded:
 * at most one such message per app.
 */
#define RESERVE_BYTES 1024
/*
 * Pacing: while the connection is OPEN, an app with this many emits (or
 * bytes) queued and not yet written is read no further until its queue
 * is down to half.  Its socket fills and its writes wait in its own
 * process: dsd then ingests a flood only as fast as the platform drains
 * it, instead of spending the CPU the platform and the other apps need on
 * buffering thousands of emits ahead (docs/fairness.md).  Eight windows
 * deep (of the window now: these are the floor's), so the pipe never runs
 * dry.  While not OPEN nobody is paced: the queue takes what it may, as
 * configured.
 */
#define PACE_MESSAGES (8 * SEND_WINDOW_MIN_MESSAGES)
#define PACE_BYTES    (8 * SEND_WINDOW_MIN_BYTES)
/* Pacing follows a draining link only: when the platform confirmed
 * nothing for this long, the link is stalled (heartbeats will tell), the
 * paced apps are served again and their emits queue up as they would
 * while not OPEN, until the next confirmation. */
#define PACE_STALL_MS 250
/* subs.c's table of names; a per-uid share is half of it by default. */
#define MAX_NAMES 65536
/*
 * One spool batch holds at most this many emits and bytes; past either
 * the batch is committed at once, within the iteration.  The IPC server
 * reads at most 64 KiB per client per event, so a batch stays far smaller
 * unless thousands of clients write in the same iteration.
 */
#define PENDING_MAX       1024
#define PENDING_MAX_BYTES (8u * 1024 * 1024)
/* The tag of emits restored from the spool: their senders are gone, and
 * they count against no uid's share. */
#define RESTORED_TAG UINT32_MAX
/* The largest EMIT frame encoded in pubsub's scratch buffer; a bigger one
 * gets a buffer of its own. */
#define SCRATCH_MAX (64 * 1024)

/* An emit in the open spool batch: answered, pushed into the store and
 * handed to local subscribers once the batch is committed. */
struct pending {
	struct dsd_client *c; /* NULL once the client left */
	struct sendq_app *app;
	uid_t uid;
	uint32_t reply_id;
	bool want_confirm;
	bool done;        /* settled (pushed or refused) */
	bool release_app; /* the client left: release app after this one */
	uint64_t spool_id;
	uint8_t *frame;
	size_t len;
	char *name, *data; /* for the local subscribers (data may be NULL) */
};

struct pubsub {
	const struct dsd_config *cfg; /* the root's, read at each request */
	struct upstream *up;
	struct access_usage *usage;
	struct pubsub_callbacks cb;
	void *userdata;

	struct sendq *store;
	/* What may be in flight, from the confirmation rate. */
	struct send_window window;
	/* Microseconds for the window's rate: clock_mono_us() (a test may
	 * hand in its own clock). */
	uint64_t (*now_us)(void);
	struct event *fence_ev; /* a PING after what one loop pass wrote */
	uint64_t since_fence;   /* bytes written since the last PING */
	unsigned since_fence_n; /* emits written since the last PING */
	struct subs *subs;
	struct dsd_client **slots; /* subscriber id -> client */
	uint32_t slot_count, next_slot;
	struct event *subs_flush;
	/* Upstream subscriptions must be rebuilt from the local ones (a new
	 * connection, or a batch that could not be sent). */
	bool subs_rebuild;
	bool closed; /* dsd is stopping: no new emits */

	/* The durable spool: spool NULL when not configured or given up. */
	struct spool *spool;
	char *spool_path;
	bool spool_failed;
	char spool_err[512];
	int64_t started_ms; /* part of each app's spool key */
	bool batch_open;
	struct event *commit_ev; /* commits the batch once per iteration */
	struct pending *pending; /* PENDING_MAX */
	size_t n_pending;
	size_t pending_bytes;
	/* Where an emit is encoded on its way into the store (which keeps
	 * its own copy): no malloc()/free() per emit.  At most SCRATCH_MAX. */
	uint8_t *scratch;
	size_t scratch_cap;
	uint64_t *removals; /* spool ids confirmed or dropped */
	size_t n_removals, cap_removals;
	struct log_ratelimit spool_log;

	struct dsd_client_list paced; /* input held: backlog over PACE_* */
	struct event *pace_ev;        /* checks that the link drains */
	uint64_t confirmations;       /* PONGs that confirmed something */
	uint64_t pace_mark;           /* confirmations when pace_ev was set */
	bool drain_stalled; /* nothing confirmed for PACE_STALL_MS: no pacing */
	struct pubsub_counters count;
	struct log_ratelimit queue_log, deny_log;
	/* The EVENT frame of the event being fanned out: encoded once, its
	 * bytes copied to every subscriber. */
	struct ipc_buf fanout;
};

typedef void (*subscriber_fn)(struct pubsub *p, struct dsd_client *c,
                              const char *name, const char *text);

/* pubsub_core.c: the layer the others build on */
void ps_refuse(struct pubsub_refusal *why, bool quota, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));
int ps_check_name(struct dsd_client *c, struct pubsub *p, const char *name,
                  struct pubsub_refusal *why);
void ps_tell_denied(struct pubsub *p, struct dsd_client *c, const char *name,
                    const char *reason);
/* Sends EVENT {name, data} to every local subscriber of name: encoded
 * once, the same bytes for all of them. */
void ps_fan_out_event(struct pubsub *p, const char *name, const char *data);
/* The same, with the lengths (strlen) of name and data (0 for NULL data)
 * known already. */
void ps_fan_out_event_n(struct pubsub *p, const char *name, size_t name_len,
                        const char *data, size_t data_len);
/* Calls fn for every local subscriber of name (walking a copy: fn may
 * drop a slow client). */
void ps_for_each_subscriber(struct pubsub *p, const char *name,
                            subscriber_fn fn, const char *text);
/* Writes what the window and the connection take, fairly across apps. */
void ps_flush_store(struct pubsub *p);
/* The platform confirmed everything written up to seq: out of the store,
 * and the window learns the rate.  Returns how many were confirmed. */
size_t ps_confirm(struct pubsub *p, uint64_t seq);
/* c's input is held while its backlog is over PACE_* and the connection
 * is OPEN. */
void ps_pace(struct pubsub *p, struct dsd_client *c);
/* Serves again every paced app whose backlog drained (all: every one). */
void ps_unpace(struct pubsub *p, bool all);
/* pace_ev's callback. */
void ps_on_pace_check(evutil_socket_t fd, short what, void *userdata);
int ps_reserve_share(struct pubsub *p, struct dsd_client *c, size_t len,
                     struct pubsub_refusal *why);
void ps_give_back_share(struct pubsub *p, uid_t uid, size_t len);
int ps_push(struct pubsub *p, struct sendq_app *app, uint32_t client_id,
            uid_t uid, const uint8_t *buf, size_t len,
            const struct sendq_msg *meta, struct pubsub_refusal *why);
/* *ret_owned: *ret_buf is malloc'd and the caller's, else it is
 * p->scratch, good until the next call (owned: asked for, or too big for
 * the scratch buffer). */
int ps_encode_emit(struct pubsub *p, const char *name, const char *data,
                   size_t data_len, bool owned, uint8_t **ret_buf,
                   size_t *ret_len, bool *ret_owned,
                   struct pubsub_refusal *why);
int ps_store(struct pubsub *p, struct dsd_client *c, const uint8_t *buf,
             size_t len, const struct sendq_msg *meta,
             struct pubsub_refusal *why);

#endif

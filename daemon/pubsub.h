/*
 * Events shared by local apps over the one platform connection: the
 * subscription registry (subs.c), the store of accepted emits (sendq.c)
 * and its durable copy (spool.c, optional), batching of upstream
 * SUBSCRIBE/UNSUBSCRIBE, and fan-out to local subscribers.
 *
 * It does the work of the event requests and returns what happened; the
 * request layer (control.c) checks the access policy first and answers
 * the app.  What the platform sends comes in through pubsub_platform_event()
 * and the connection's life through the pubsub_connection_* calls, all
 * wired by the root.  It sends frames through upstream and events to local
 * clients through the IPC server, both below it.
 */
#ifndef DSD_PUBSUB_H
#define DSD_PUBSUB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sendq.h"
#include "subs.h"

struct access_usage;
struct dsd_client;
struct dsd_config;
struct event_base;
struct pubsub;
struct upstream;
struct wire_msg;

/* The store (sendq_get_stats()) counts pushes, rejections, evictions,
 * writes, resends and confirmations itself. */
struct pubsub_counters {
	uint64_t emits_queued;     /* answered "queued" (not written at once) */
	uint64_t emits_denied;     /* emits the platform refused */
	uint64_t emits_requeued;   /* unconfirmed when a connection was lost,
	                              queued to be written again */
	uint64_t events_received;  /* EVENT EMITs from the platform */
	uint64_t events_delivered; /* copies handed to local subscribers */
	uint64_t subs_denied; /* upstream subscriptions the platform denied */
};

struct pubsub_callbacks {
	/* The write queue's depth changed (for systemd's STATUS=). */
	void (*queue_changed)(void *userdata);
};

/* Why a request was not done: text for the app, and whether it was a
 * per-uid quota (the request layer logs those as refusals). */
struct pubsub_refusal {
	char text[256];
	bool quota;
};

/* pubsub_emit() took the emit into the spool's open batch: it answers the
 * app itself (EMIT_REPLY, or an error) once the batch is on disk. */
#define PUBSUB_EMIT_PENDING 100

/* The durable spool, for status. */
struct pubsub_spool_info {
	const char *path;
	bool failed;       /* not usable: memory only since (error says why) */
	const char *error; /* "" while it works */
	uint64_t records;  /* committed records (0 once failed) */
	uint64_t bytes;
};

/*
 * cfg is borrowed and read at every request (the root replaces its
 * contents on reload, then calls pubsub_apply_limits()); upstream and
 * usage are borrowed too.
 */
int pubsub_new(struct event_base *base, const struct dsd_config *cfg,
               struct upstream *up, struct access_usage *usage,
               const struct pubsub_callbacks *cb, void *userdata,
               struct pubsub **ret);
void pubsub_free(struct pubsub *p);
/* The [queue] limits after a reload. */
int pubsub_apply_limits(struct pubsub *p);

/*
 * An emit from local client c: IPC_EMIT_SENT (written at once) or
 * IPC_EMIT_QUEUED, or a negative errno and why (-ESHUTDOWN once dsd is
 * stopping).  Local subscribers of name get it either way.  With
 * want_confirm, c gets IPC_EMIT_CONFIRMED {reply_id} once the platform has
 * it.
 *
 * With a working spool ([queue] spool) it is PUBSUB_EMIT_PENDING instead
 * of SENT/QUEUED: the emit joined this loop iteration's batch, and at the
 * end of the iteration, once the batch is committed, pubsub sends c the
 * EMIT_REPLY {reply_id} (sent/queued), or an error when the batch failed,
 * and hands it to the local subscribers.
 */
int pubsub_emit(struct pubsub *p, struct dsd_client *c, const char *name,
                const char *data, size_t data_len, uint32_t reply_id,
                bool want_confirm, struct pubsub_refusal *why);
/* 0, or a negative errno and why.  1: subscribed, but the platform has
 * denied this name (why says so): tell the app after the reply. */
int pubsub_subscribe(struct pubsub *p, struct dsd_client *c, const char *name,
                     struct pubsub_refusal *why);
int pubsub_unsubscribe(struct pubsub *p, struct dsd_client *c, const char *name,
                       struct pubsub_refusal *why);
/* c is going away: its subscriptions go with it; its accepted emits stay
 * until confirmed. */
void pubsub_client_gone(struct pubsub *p, struct dsd_client *c);
/* dsd is stopping: the open spool batch is committed and answered, and
 * emits are refused from now on. */
void pubsub_close(struct pubsub *p);

/* An EVENT topic message from the open connection. */
void pubsub_platform_event(struct pubsub *p, const struct wire_msg *m);
/* OPEN: rebuild the upstream subscriptions, then flush the queue. */
void pubsub_connection_opened(struct pubsub *p);
/* OPEN lost: nothing is subscribed upstream any more. */
void pubsub_connection_lost(struct pubsub *p);
/* The connection has room again: lost subscription batches, then the
 * store. */
void pubsub_drained(struct pubsub *p);
/* The platform confirmed everything written up to seq. */
void pubsub_confirmed(struct pubsub *p, uint64_t seq);

/* Emits held: queued and written-but-unconfirmed. */
size_t pubsub_queue_depth(const struct pubsub *p);
const struct pubsub_counters *pubsub_get_counters(const struct pubsub *p);
const struct sendq *pubsub_store(const struct pubsub *p);
const struct subs *pubsub_subs(const struct pubsub *p);
/* false without [queue] spool. */
bool pubsub_spool_info(const struct pubsub *p, struct pubsub_spool_info *ret);

#endif

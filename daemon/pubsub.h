/*
 * Events shared by local apps over the one platform connection: the
 * subscription registry (subs.c), the write queue (outq.c), batching of
 * upstream SUBSCRIBE/UNSUBSCRIBE, and fan-out to local subscribers.
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
/* dsd is stopping: emits are refused from now on. */
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

#endif

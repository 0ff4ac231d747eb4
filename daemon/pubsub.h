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

#include "outq.h"
#include "subs.h"

struct access_usage;
struct dsd_client;
struct dsd_config;
struct event_base;
struct pubsub;
struct upstream;
struct wire_msg;

struct pubsub_counters {
	uint64_t emits_sent;      /* handed to the platform connection */
	uint64_t emits_queued;    /* accepted into the write queue */
	uint64_t emits_lost;      /* taken back from a closed connection but not
	                             queued again (out of memory); the queue
	                             counts its own rejections and evictions */
	uint64_t emits_denied;    /* emits the platform refused */
	uint64_t emits_requeued;  /* handed to a connection that closed
	                             before writing them, and queued again */
	uint64_t events_received; /* EVENT EMITs from the platform */
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

/* An emit from local client c: IPC_EMIT_SENT or IPC_EMIT_QUEUED, or a
 * negative errno and why.  Local subscribers of name get it either way. */
int pubsub_emit(struct pubsub *p, struct dsd_client *c, const char *name,
                const char *data, size_t data_len, struct pubsub_refusal *why);
/* 0, or a negative errno and why.  1: subscribed, but the platform has
 * denied this name (why says so): tell the app after the reply. */
int pubsub_subscribe(struct pubsub *p, struct dsd_client *c, const char *name,
                     struct pubsub_refusal *why);
int pubsub_unsubscribe(struct pubsub *p, struct dsd_client *c, const char *name,
                       struct pubsub_refusal *why);
/* c is going away: its subscriptions go with it. */
void pubsub_client_gone(struct pubsub *p, struct dsd_client *c);

/* An EVENT topic message from the open connection. */
void pubsub_platform_event(struct pubsub *p, const struct wire_msg *m);
/* OPEN: rebuild the upstream subscriptions, then flush the queue. */
void pubsub_connection_opened(struct pubsub *p);
/* OPEN lost: nothing is subscribed upstream any more. */
void pubsub_connection_lost(struct pubsub *p);
/* The connection has room again: lost subscription batches, then the
 * write queue. */
void pubsub_drained(struct pubsub *p);
/* Takes back the emits a closed connection had not written and queues
 * them again, ahead of everything else, in order. */
void pubsub_take_back(struct pubsub *p);

size_t pubsub_queue_depth(const struct pubsub *p);
const struct pubsub_counters *pubsub_get_counters(const struct pubsub *p);
const struct outq *pubsub_queue(const struct pubsub *p);
const struct subs *pubsub_subs(const struct pubsub *p);

#endif

/*
 * Events shared by local apps over the one platform connection: the
 * subscription registry (subs.c), the store of accepted emits (sendq.c)
 * and its durable copy (spool.c, optional), batching of upstream
 * SUBSCRIBE/UNSUBSCRIBE, and fan-out to local subscribers.
 *
 * It does the work of the event requests and returns what happened; the
 * request layer (control.c) checks the access policy first and answers
 * the app.  Subscriptions and what the platform sends are in
 * pubsub_subs.h, the spool's state in pubsub_spool.h; the connection's
 * life comes in through the pubsub_connection_* calls, all wired by the
 * root.  It sends frames through upstream and events to local
 * clients through the IPC server, both below it.
 */
#ifndef DSD_PUBSUB_H
#define DSD_PUBSUB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pubsub_types.h"
#include "sendq.h"
#include "subs.h"

struct access_usage;
struct dsd_client;
struct dsd_config;
struct event_base;
struct send_window;
struct upstream;

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

/* c is going away: its subscriptions go with it; its accepted emits stay
 * until confirmed. */
void pubsub_client_gone(struct pubsub *p, struct dsd_client *c);
/* dsd is stopping: the open spool batch is committed and answered, and
 * emits are refused from now on. */
void pubsub_close(struct pubsub *p);

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
/* How much may be in flight now and the confirmation rate it comes from,
 * for status (send_window.h). */
const struct send_window *pubsub_send_window(const struct pubsub *p);
/* The subscription registry, for status. */
const struct subs *pubsub_registry(const struct pubsub *p);

#endif

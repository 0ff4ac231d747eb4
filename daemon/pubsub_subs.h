/*
 * pubsub's subscriptions (local ones counted per name, upstream ones in
 * bulk) and what the platform sends on the EVENT topic.
 */
#ifndef DSD_PUBSUB_SUBS_H
#define DSD_PUBSUB_SUBS_H

#include <event2/event.h>

#include "pubsub_types.h"

struct dsd_client;
struct wire_msg;

/* 0, or a negative errno and why.  1: subscribed, but the platform has
 * denied this name (why says so): tell the app after the reply. */
int pubsub_subscribe(struct pubsub *p, struct dsd_client *c, const char *name,
                     struct pubsub_refusal *why);

int pubsub_unsubscribe(struct pubsub *p, struct dsd_client *c, const char *name,
                       struct pubsub_refusal *why);

/* An EVENT topic message from the open connection. */
void pubsub_platform_event(struct pubsub *p, const struct wire_msg *m);

/* Inside pubsub only (pubsub_core.h has the struct). */
void ps_flush_subscriptions(struct pubsub *p);
void ps_schedule_subs_flush(struct pubsub *p);
void ps_on_subs_flush(evutil_socket_t fd, short what, void *userdata);

#endif

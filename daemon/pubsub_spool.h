/*
 * The durable spool as pubsub runs it ([queue] spool): its state, for
 * status.
 */
#ifndef DSD_PUBSUB_SPOOL_H
#define DSD_PUBSUB_SPOOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <event2/event.h>

#include "pubsub_types.h"

/* false without [queue] spool. */
bool pubsub_spool_info(const struct pubsub *p, struct pubsub_spool_info *ret);

/* Inside pubsub only (pubsub_core.h has the struct). */
int ps_spool_setup(struct pubsub *p);
void ps_on_commit(evutil_socket_t fd, short what, void *userdata);
void ps_commit_batch(struct pubsub *p);
int ps_hold(struct pubsub *p, struct dsd_client *c, const char *name,
            const char *data, size_t data_len, uint8_t *buf, size_t len,
            uint32_t reply_id, bool want_confirm, struct pubsub_refusal *why);
void ps_add_removal(struct pubsub *p, uint64_t id);
void ps_flush_removals(struct pubsub *p);

#endif

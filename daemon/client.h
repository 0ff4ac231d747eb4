/*
 * What the daemon keeps per local client, on top of the IPC server's own
 * connection state.
 */
#ifndef DSD_CLIENT_H
#define DSD_CLIENT_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/queue.h>

#include "ipc_server.h"

struct sendq_app;

struct dsd_client {
	struct ipc_client *ipc;
	/* Who it is, from the kernel at accept time; peer.groups points
	 * into groups, which the client owns. */
	struct ipc_peer peer;
	gid_t *groups;
	uint32_t id;
	uint32_t slot; /* subscriber id in subs.c, UINT32_MAX until needed */
	bool watching; /* gets IPC_STATE on every transition */
	struct sendq_app *store_app; /* its emits in pubsub's store */
	bool paced; /* its input waits until its backlog drains (pubsub) */
	TAILQ_ENTRY(dsd_client) entry;
	TAILQ_ENTRY(dsd_client) paced_entry;
};

TAILQ_HEAD(dsd_client_list, dsd_client);

#endif

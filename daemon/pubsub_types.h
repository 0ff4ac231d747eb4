/*
 * The types pubsub shares with its callers and its own files (pubsub.h,
 * pubsub_subs.h, pubsub_spool.h, pubsub_internal.h).
 */
#ifndef DSD_PUBSUB_TYPES_H
#define DSD_PUBSUB_TYPES_H

#include <stdbool.h>
#include <stdint.h>

struct pubsub;

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

/* The durable spool, for status. */
struct pubsub_spool_info {
	const char *path;
	bool failed;       /* not usable: memory only since (error says why) */
	const char *error; /* "" while it works */
	uint64_t records;  /* committed records (0 once failed) */
	uint64_t bytes;
};

/* pubsub_emit() took the emit into the spool's open batch: it answers the
 * app itself (EMIT_REPLY, or an error) once the batch is on disk. */
#define PUBSUB_EMIT_PENDING 100

#endif

/*
 * The status document behind `dsctl status`: one JSON object built from
 * what each part of the daemon reports.  Secrets (the auth data) never
 * appear in it.
 */
#ifndef DSD_STATUS_H
#define DSD_STATUS_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

struct dsd_config;
struct ipc_server;
struct pubsub;
struct send_window;
struct upstream;

struct status_sources {
	const struct dsd_config *cfg;
	const struct upstream *up;
	const struct pubsub *ps;
	const struct ipc_server *ipc;
	uint64_t started_mono;
	/* the request layer's own counters */
	uint64_t clients_dropped;
	uint64_t clients_refused;
	uint64_t requests_denied;
	/* Who local client id is (queue.topApps shows it), or false when it
	 * is gone; NULL: only the ids are shown. */
	bool (*client_of)(uint32_t id, uid_t *ret_uid, pid_t *ret_pid,
	                  const void *userdata);
	const void *client_userdata;
};

/* A malloc'd JSON object text, or NULL (out of memory). */
char *status_json(const struct status_sources *src);
/* The same document as a jansson object (the caller's reference), or NULL:
 * the metrics are rendered from it (metrics.c). */
struct json_t;
struct json_t *status_object(const struct status_sources *src);

/* queue.window: the send window's size now and the confirmation rates it
 * comes from, {bytes, messages, confirmedBytesPerSecond,
 * confirmedMessagesPerSecond}; the rates are 0 until measured. */
struct json_t *status_send_window(const struct send_window *w);

#endif

/*
 * The request layer: every local client's record (its credentials, its
 * subscriber id, whether it watches), and every request from one, checked
 * against the access policy (access.c), dispatched by one table and
 * answered exactly once.  Control verbs go to upstream, event requests to
 * pubsub, status to status.c; a reload goes up to the root through the
 * callback it set.  The functions named control_admit ... control_rejected
 * are the IPC server's callbacks (userdata: the struct control).
 */
#ifndef DSD_CONTROL_H
#define DSD_CONTROL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "conn.h"
#include "ipc_server.h"

struct access_usage;
struct control;
struct dsd_config;
struct pubsub;
struct upstream;

struct control_callbacks {
	/* Reload the configuration file: 0, or a negative errno and a
	 * sentence in err. */
	int (*reload)(char *err, size_t errlen, void *userdata);
};

struct control_counters {
	uint64_t clients_dropped; /* cut off by dsd (slow, malformed, ...) */
	uint64_t clients_refused; /* connections refused */
	uint64_t requests_denied; /* refused by the access policy or a
	                             per-uid quota */
};

/* cfg (the root's, read at each request), up, ps and usage are borrowed. */
int control_new(const struct dsd_config *cfg, struct upstream *up,
                struct pubsub *ps, struct access_usage *usage,
                const struct control_callbacks *cb, void *userdata,
                struct control **ret);
/* The IPC server is made after control (its callbacks point here). */
void control_set_ipc(struct control *ctl, struct ipc_server *ipc);
/* After ipc_server_free(): every client record is gone by then. */
void control_free(struct control *ctl);

int control_admit(struct ipc_client *c, const struct ipc_peer *peer, char *why,
                  size_t whylen, void *userdata);
void control_request(struct ipc_client *c, const struct ipc_msg *m,
                     void *userdata);
void control_disconnected(struct ipc_client *c, enum ipc_close_reason why,
                          const char *text, void *userdata);
void control_rejected(const struct ipc_peer *peer, const char *reason,
                      void *userdata);

/* Tells every watching client about a state transition. */
void control_broadcast_state(struct control *ctl, enum conn_state state,
                             const char *reason, uint64_t at_mono);
const struct control_counters *control_get_counters(const struct control *ctl);
/* Where the status document's figures come from (for status.c). */
struct status_sources;
void control_status_sources(const struct control *ctl,
                            struct status_sources *ret);

#endif

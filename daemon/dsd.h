/*
 * The root object: one struct dsd owns everything the daemon has at run
 * time (no globals), so a test can build two.  It builds the parts, wires
 * each part's callbacks to the others, runs the loop, takes signals and
 * tells systemd how things are.  Data flows one way: a part reports to the
 * root through the callbacks the root set, and never calls a file above it.
 *
 * Who owns what (docs/architecture.md follows one emit and one event
 * through them):
 *
 *   dsd.c        the loop, signals, watchdog, systemd status, the config
 *   control.c    local clients' records and every request (a dispatch
 *                table, access checks, replies)
 *   reload.c     reading a changed configuration into the running parts
 *   status.c     the status document for dsctl status
 *   pubsub.c     subscriptions, the write queue, fan-out, their counters
 *   upstream.c   the platform connection: conn.c's state machine, its
 *                timer, the transport, generations
 *   ipc_server.c local sockets, framing, per-client and total buffers
 *   access.c     the access policy and per-uid usage
 */
#ifndef DSD_DSD_H
#define DSD_DSD_H

#include <stdbool.h>
#include <stdint.h>

#include "config.h"

struct access_usage;
struct control;
struct event;
struct event_base;
struct ipc_server;
struct metrics_http;
struct pubsub;
struct upstream;

struct dsd {
	struct event_base *base;
	char *config_path;
	struct dsd_config cfg; /* read by the parts; replaced on reload */
	int passed_fd;         /* socket-activation fd, or -1 */

	struct upstream *up;
	struct pubsub *ps;
	struct control *ctl;
	struct ipc_server *ipc;
	struct access_usage *usage; /* clients, subscriptions, queue per uid */
	struct metrics_http *metrics; /* [metrics] listen, or NULL */

	struct event *notify_timer; /* coalesces STATUS= updates */
	bool notify_armed;          /* notify_timer is pending */
	struct event *sig_term, *sig_int, *sig_hup;
	struct event *watchdog;
	struct event *flush_timer; /* ends the flush at shutdownTimeout */
	bool stopping;             /* emits refused, flushing what is held */
	bool finished;             /* the connection is closing: the end */
	int exit_code;
};

int dsd_new(const char *config_path, struct dsd_config *cfg, int passed_fd,
            struct dsd **ret);
int dsd_run(struct dsd *d);
void dsd_free(struct dsd *d);
void dsd_stop(struct dsd *d, int exit_code);
int dsd_reload(struct dsd *d, char *err, size_t errlen);

#endif

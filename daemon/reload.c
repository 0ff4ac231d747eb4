#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "log.h"
#include "pubsub.h"
#include "reload.h"
#include "upstream.h"

static bool str_differs(const char *a, const char *b)
{
	if (a == NULL || b == NULL)
		return a != b;
	return strcmp(a, b) != 0;
}

/* What only a restart changes: warned about, and kept as it runs. */
static void keep_restart_only(struct dsd_config *fresh, struct dsd_config *cur)
{
	if (str_differs(fresh->socket_path, cur->socket_path))
		log_warn("reload: the IPC socket path changes only on restart");
	if (fresh->max_clients != cur->max_clients ||
	    fresh->client_buffer != cur->client_buffer ||
	    fresh->client_buffer_total != cur->client_buffer_total ||
	    fresh->max_subscriptions_per_client !=
	            cur->max_subscriptions_per_client ||
	    fresh->reserved_admin_clients != cur->reserved_admin_clients)
		log_warn("reload: [ipc] limits change only on restart");
	if (fresh->socket_group.set != cur->socket_group.set ||
	    fresh->socket_group.gid != cur->socket_group.gid)
		log_warn("reload: socketGroup changes only on restart");
	free(fresh->socket_path);
	fresh->socket_path = cur->socket_path;
	cur->socket_path = NULL;
	fresh->max_clients = cur->max_clients;
	fresh->client_buffer = cur->client_buffer;
	fresh->client_buffer_total = cur->client_buffer_total;
	fresh->max_subscriptions_per_client = cur->max_subscriptions_per_client;
	fresh->reserved_admin_clients = cur->reserved_admin_clients;
	free(fresh->socket_group.name);
	fresh->socket_group = cur->socket_group;
	cur->socket_group = (struct config_group){0};
	/* The spool is opened (and read back) once, at start. */
	if (str_differs(fresh->queue_spool, cur->queue_spool) ||
	    fresh->queue_spool_sync != cur->queue_spool_sync)
		log_warn("reload: [queue] spool and spoolSync change only on "
		         "restart");
	free(fresh->queue_spool);
	fresh->queue_spool = cur->queue_spool;
	cur->queue_spool = NULL;
	fresh->queue_spool_sync = cur->queue_spool_sync;
	/* The metrics listener is bound once, at start, like the socket. */
	if (str_differs(fresh->metrics_listen, cur->metrics_listen))
		log_warn("reload: [metrics] listen changes only on restart");
	free(fresh->metrics_listen);
	fresh->metrics_listen = cur->metrics_listen;
	cur->metrics_listen = NULL;
}

int reload_config(const char *path, const struct reload_targets *t, char *err,
                  size_t errlen)
{
	struct dsd_config fresh = {0};
	bool restarted = false;
	int r;

	if (path == NULL) {
		snprintf(err, errlen, "no configuration file to reload");
		return -ENOENT;
	}
	r = config_init(&fresh);
	if (r < 0)
		snprintf(err, errlen, "out of memory");
	if (r == 0)
		r = config_load(&fresh, path, err, errlen);
	if (r == 0)
		r = upstream_reconfigure(t->up, &fresh, &restarted, err,
		                         errlen);
	if (r < 0) {
		log_err("reload refused, keeping the running configuration: %s",
		        err);
		config_free(&fresh);
		return r;
	}
	keep_restart_only(&fresh, t->cfg);
	/* adminGroup, the per-uid quotas and [acl] apply from now on, to
	 * new requests; what is held already is kept. */
	config_free(t->cfg);
	*t->cfg = fresh;
	pubsub_apply_limits(t->ps);
	log_notice("configuration reloaded from %s%s", path,
	           restarted ? "; new URL, credentials, certificate, CA or "
	                       "proxy: fresh connection"
	                     : "");
	return 0;
}

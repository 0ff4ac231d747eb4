/*
 * The configuration's values: their defaults, and freeing them.  Reading
 * files into them is config_load.c's job.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"

#define MIB (1024u * 1024)

void config_acl_clear(struct config_acl *a)
{
	for (size_t i = 0; i < a->n; i++)
		free(a->rules[i].name);
	free(a->rules);
	*a = (struct config_acl){0};
}

void config_weights_clear(struct config_weights *w)
{
	for (size_t i = 0; i < w->n; i++)
		free(w->w[i].name);
	free(w->w);
	*w = (struct config_weights){0};
}

int config_init(struct dsd_config *c)
{
	*c = (struct dsd_config){
	        .reconnect_interval_increment = 4000,
	        .max_reconnect_interval = 180000,
	        .max_reconnect_attempts = 5,
	        .heartbeat_interval = 30000,
	        .restart_after_error = 60000,
	        .follow_network = true,
	        .max_clients = 4096,
	        .max_subscriptions_per_client = 1024,
	        .client_buffer = 8 * MIB,
	        .client_buffer_total = 64 * MIB,
	        .reserved_admin_clients = 4,
	        .max_subscriptions_per_user = 32768,
	        .queue_max_messages = 100000,
	        .queue_max_bytes = 64 * MIB,
	        .queue_overflow = QUEUE_OVERFLOW_REJECT,
	        .shutdown_timeout = 5000,
	};
	c->auth_json = strdup("{}");
	c->socket_path = strdup("/run/dsd/dsd.sock");
	if (!c->auth_json || !c->socket_path) {
		config_free(c);
		return -ENOMEM;
	}
	return 0;
}

void config_free(struct dsd_config *c)
{
	if (!c)
		return;
	free(c->url);
	if (c->auth_json)
		explicit_bzero(c->auth_json, strlen(c->auth_json));
	free(c->auth_json);
	free(c->auth_file);
	free(c->ca_file);
	free(c->cert_file);
	free(c->key_file);
	if (c->proxy)
		explicit_bzero(c->proxy, strlen(c->proxy));
	free(c->proxy);
	free(c->socket_path);
	free(c->queue_spool);
	free(c->metrics_listen);
	free(c->socket_group.name);
	free(c->admin_group.name);
	config_acl_clear(&c->acl_emit);
	config_acl_clear(&c->acl_subscribe);
	config_weights_clear(&c->queue_weights);
	*c = (struct dsd_config){0};
}

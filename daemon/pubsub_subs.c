/*
 * pubsub's subscriptions: local ones counted per name (subs.c), upstream
 * ones sent in bulk per loop iteration with tracked correlation ids,
 * rebuilt from the local state after every (re)connect; and what the
 * platform sends on the EVENT topic (events, acks, denials).
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "access.h"
#include "client.h"
#include "clock.h"
#include "config.h"
#include "ipc_server.h"
#include "ipcproto.h"
#include "json_check.h"
#include "log.h"
#include "pubsub_core.h"
#include "pubsub_subs.h"
#include "sendq.h"
#include "spool.h"
#include "upstream.h"
#include "wire.h"

/* ---- upstream subscriptions ---- */

/* Sends one bulk SUBSCRIBE or UNSUBSCRIBE; false when nothing was due. */
static bool send_bulk(struct pubsub *p, enum subs_action action)
{
	const char *names[BULK_NAMES];
	char corr[SUBS_CORR_MAX];
	struct wire_msg m = {.topic = WIRE_TOPIC_EVENT};
	uint8_t *buf;
	size_t size, len;
	int n, r;

	n = subs_take_pending(p->subs, action, names, BULK_NAMES, corr);
	if (n <= 0)
		return false;
	m.action = action == SUBS_SUBSCRIBE ? WIRE_EVENT_SUBSCRIBE
	                                    : WIRE_EVENT_UNSUBSCRIBE;
	m.names = names;
	m.n_names = (size_t)n;
	m.correlation_id = corr;
	if (wire_encoded_size(&m, &size) < 0 || (buf = malloc(size)) == NULL) {
		p->subs_rebuild = true;
		return false;
	}
	r = wire_encode(&m, buf, size, &len);
	if (r == 0)
		r = upstream_send_control(p->up, buf, len);
	if (r < 0) {
		/* Those names now wait for an ack that cannot come: rebuild
		 * the upstream state from the local one once the connection
		 * has room again (acked names draw a harmless
		 * MULTIPLE_SUBSCRIPTIONS). */
		log_warn("could not send %s for %d names: %s; retrying",
		         action == SUBS_SUBSCRIBE ? "SUBSCRIBE" : "UNSUBSCRIBE",
		         n, strerror(-r));
		p->subs_rebuild = true;
	}
	free(buf);
	return r == 0;
}

void ps_flush_subscriptions(struct pubsub *p)
{
	if (!upstream_is_open(p->up))
		return;
	if (p->subs_rebuild) {
		p->subs_rebuild = false;
		subs_connection_reset(p->subs);
	}
	while (send_bulk(p, SUBS_SUBSCRIBE))
		;
	while (send_bulk(p, SUBS_UNSUBSCRIBE))
		;
}

void ps_on_subs_flush(evutil_socket_t fd, short what, void *userdata)
{
	(void)fd;
	(void)what;
	ps_flush_subscriptions(userdata);
}

/* Coalesces the subscription changes of one loop iteration into bulk
 * messages. */
void ps_schedule_subs_flush(struct pubsub *p)
{
	if (upstream_is_open(p->up))
		event_active(p->subs_flush, 0, 0);
}

static bool subscribed(struct pubsub *p, struct dsd_client *c, const char *name)
{
	size_t n;
	const uint32_t *ids = subs_subscribers(p->subs, name, &n);

	for (size_t i = 0; i < n; i++)
		if (ids[i] == c->slot)
			return true;
	return false;
}

int pubsub_subscribe(struct pubsub *p, struct dsd_client *c, const char *name,
                     struct pubsub_refusal *why)
{
	struct access_count mine;
	enum subs_state st;
	size_t refs;
	const char *reason;
	int r;

	r = ps_check_name(c, p, name, why);
	if (r < 0)
		return r;
	mine = access_usage_get(p->usage, c->peer.uid);
	r = access_check_subscription_quota(p->cfg, c->peer.uid, &mine,
	                                    why->text, sizeof(why->text));
	if (r < 0) {
		if (subscribed(p, c, name))
			return 0; /* nothing new */
		why->quota = true;
		return r;
	}
	if (access_usage_add(p->usage, c->peer.uid, 0, 1, 0, 0) < 0) {
		ps_refuse(why, false, "out of memory");
		return -ENOMEM;
	}
	r = subs_add(p->subs, c->slot, name);
	if (r < 0) {
		(void)access_usage_add(p->usage, c->peer.uid, 0, -1, 0, 0);
		switch (r) {
		case -EEXIST:
			return 0;
		case -ENOSPC:
			ps_refuse(why, false,
			          "too many subscriptions for this client (max "
			          "%u)",
			          p->cfg->max_subscriptions_per_client);
			break;
		case -ENOBUFS:
			ps_refuse(why, false, "too many subscribed names");
			break;
		default:
			ps_refuse(why, false, "cannot subscribe: %s",
			          strerror(-r));
			break;
		}
		return r;
	}
	if (r == 1) {
		ps_schedule_subs_flush(p);
		return 0;
	}
	if (subs_get_state(p->subs, name, &st, &refs, &reason) == 0 &&
	    st == SUBS_DENIED) {
		ps_refuse(why, false, "%s", reason);
		return 1;
	}
	return 0;
}

int pubsub_unsubscribe(struct pubsub *p, struct dsd_client *c, const char *name,
                       struct pubsub_refusal *why)
{
	int r = ps_check_name(c, p, name, why);

	if (r < 0)
		return r;
	r = subs_remove(p->subs, c->slot, name);
	if (r == -ENOENT) {
		ps_refuse(why, false, "not subscribed");
		return r;
	}
	(void)access_usage_add(p->usage, c->peer.uid, 0, -1, 0, 0);
	if (r == 1)
		ps_schedule_subs_flush(p);
	return 0;
}

/* ---- from the platform ---- */

static void platform_denied(struct pubsub *p, const struct wire_msg *m)
{
	char reason[160], name[128];

	if (m->name == NULL)
		return;
	log_escape(m->name, strlen(m->name), name, sizeof(name));
	if (!m->has_original_action ||
	    m->original_action != WIRE_EVENT_SUBSCRIBE) {
		p->count.emits_denied++;
		log_full_ratelimited(&p->deny_log, clock_mono_ms(), LOG_WARNING,
		                     "the platform denied an emit of \"%s\"",
		                     name);
		return;
	}
	snprintf(reason, sizeof(reason), "%s by the platform",
	         m->action == WIRE_EVENT_MESSAGE_DENIED ? "subscription denied"
	                                                : "permission error");
	if (subs_denied(p->subs, m->name, reason) < 0)
		return;
	p->count.subs_denied++;
	log_full_ratelimited(&p->deny_log, clock_mono_ms(), LOG_WARNING,
	                     "the platform denied the subscription to \"%s\"",
	                     name);
	ps_for_each_subscriber(p, m->name, ps_tell_denied, reason);
}

void pubsub_platform_event(struct pubsub *p, const struct wire_msg *m)
{
	switch (m->action) {
	case WIRE_EVENT_EMIT:
		if (m->name == NULL)
			return;
		p->count.events_received++;
		ps_fan_out_event_n(p, m->name, m->name_len, m->data,
		                   m->data_len);
		return;
	case WIRE_EVENT_SUBSCRIBE:
	case WIRE_EVENT_UNSUBSCRIBE:
		if (!m->is_ack || m->correlation_id == NULL)
			return;
		if (subs_ack(p->subs, m->correlation_id) < 0)
			log_debug("ack for an unknown correlation id");
		/* An ack can leave work: a name dropped while its SUBSCRIBE
		 * was in flight, or a batch the server mangled (see subs.h). */
		if (subs_pending(p->subs, SUBS_SUBSCRIBE) > 0 ||
		    subs_pending(p->subs, SUBS_UNSUBSCRIBE) > 0)
			ps_schedule_subs_flush(p);
		return;
	case WIRE_EVENT_MESSAGE_DENIED:
	case WIRE_EVENT_MESSAGE_PERMISSION_ERROR:
		platform_denied(p, m);
		return;
	default:
		log_debug("platform: EVENT %s",
		          wire_action_name(m->topic, m->action));
		return;
	}
}

/*
 * The access policy (see access.h).  Every decision is a function of the
 * configuration, the peer's credentials (taken by the kernel when the peer
 * connected, not claimed by it) and counts the caller keeps.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "access.h"

static bool in_group(const struct ipc_peer *p, gid_t gid)
{
	if (p->gid == gid)
		return true;
	for (size_t i = 0; i < p->ngroups; i++)
		if (p->groups[i] == gid)
			return true;
	return false;
}

/* Root and dsd's own uid can take dsd over anyway: no rule binds them. */
static bool unbound(uid_t self, const struct ipc_peer *p)
{
	return p->uid == 0 || p->uid == self;
}

bool access_is_admin(const struct dsd_config *cfg, uid_t self,
                     const struct ipc_peer *p)
{
	if (unbound(self, p))
		return true;
	return cfg->admin_group.set && in_group(p, cfg->admin_group.gid);
}

int access_check_control(const struct dsd_config *cfg, uid_t self,
                         const struct ipc_peer *p, const char *verb, char *why,
                         size_t whylen)
{
	if (access_is_admin(cfg, self, p))
		return 0;
	if (cfg->admin_group.set)
		snprintf(why, whylen,
		         "permission denied: %s needs root or group %s "
		         "(adminGroup)",
		         verb, cfg->admin_group.name);
	else
		snprintf(why, whylen,
		         "permission denied: %s needs root (no adminGroup is "
		         "configured)",
		         verb);
	return -EPERM;
}

static bool rule_matches(const struct config_acl_rule *r,
                         const struct ipc_peer *p, const char *name)
{
	if (!r->any_group && !in_group(p, r->gid))
		return false;
	if (r->prefix)
		return strncmp(name, r->name, strlen(r->name)) == 0;
	return strcmp(name, r->name) == 0;
}

static int check_acl(const struct config_acl *acl, const char *what, uid_t self,
                     const struct ipc_peer *p, const char *name, char *why,
                     size_t whylen)
{
	if (!acl->set || unbound(self, p))
		return 0;
	for (size_t i = 0; i < acl->n; i++)
		if (rule_matches(&acl->rules[i], p, name))
			return 0;
	snprintf(why, whylen,
	         "permission denied: [acl] %s allows no group of uid %ld "
	         "this name",
	         what, (long)p->uid);
	return -EACCES;
}

int access_check_emit(const struct dsd_config *cfg, uid_t self,
                      const struct ipc_peer *p, const char *name, char *why,
                      size_t whylen)
{
	return check_acl(&cfg->acl_emit, "emit", self, p, name, why, whylen);
}

int access_check_subscribe(const struct dsd_config *cfg, uid_t self,
                           const struct ipc_peer *p, const char *name,
                           char *why, size_t whylen)
{
	return check_acl(&cfg->acl_subscribe, "subscribe", self, p, name, why,
	                 whylen);
}

/* Half, rounded up, and never 0. */
static uint64_t half(uint64_t v)
{
	return v / 2 + (v & 1) + (v == 0);
}

uint32_t access_max_clients_per_user(const struct dsd_config *cfg)
{
	return cfg->max_clients_per_user ? cfg->max_clients_per_user
	                                 : (uint32_t)half(cfg->max_clients);
}

uint64_t access_max_queue_messages_per_user(const struct dsd_config *cfg)
{
	return cfg->queue_max_messages_per_user
	               ? cfg->queue_max_messages_per_user
	               : half(cfg->queue_max_messages);
}

uint32_t access_queue_weight(const struct dsd_config *cfg,
                             const struct ipc_peer *p)
{
	uint32_t w = 0;

	for (size_t i = 0; i < cfg->queue_weights.n; i++) {
		const struct config_weight *e = &cfg->queue_weights.w[i];

		if (e->weight > w && in_group(p, e->gid))
			w = e->weight;
	}
	return w ? w : 1;
}

uint64_t access_max_queue_bytes_per_user(const struct dsd_config *cfg)
{
	return cfg->queue_max_bytes_per_user ? cfg->queue_max_bytes_per_user
	                                     : half(cfg->queue_max_bytes);
}

int access_check_connect(const struct dsd_config *cfg, uid_t self,
                         const struct ipc_peer *p, size_t others,
                         const struct access_count *mine, char *why,
                         size_t whylen)
{
	uint32_t per_user = access_max_clients_per_user(cfg);

	if (access_is_admin(cfg, self, p)) {
		if (others <
		    (size_t)cfg->max_clients + cfg->reserved_admin_clients)
			return 0;
		snprintf(why, whylen,
		         "too many clients (%u, and all %u reserved for "
		         "admins taken)",
		         cfg->max_clients, cfg->reserved_admin_clients);
		return -EUSERS;
	}
	if (others >= cfg->max_clients) {
		snprintf(why, whylen, "too many clients (max %u)",
		         cfg->max_clients);
		return -EUSERS;
	}
	if (mine->clients >= per_user) {
		snprintf(why, whylen,
		         "too many clients for uid %ld (maxClientsPerUser %u)",
		         (long)p->uid, per_user);
		return -EUSERS;
	}
	return 0;
}

int access_check_subscription_quota(const struct dsd_config *cfg, uid_t uid,
                                    const struct access_count *mine, char *why,
                                    size_t whylen)
{
	if (mine->subscriptions < cfg->max_subscriptions_per_user)
		return 0;
	snprintf(why, whylen,
	         "quota: too many subscriptions for uid %ld "
	         "(maxSubscriptionsPerUser %u)",
	         (long)uid, cfg->max_subscriptions_per_user);
	return -EDQUOT;
}

int access_check_queue_quota(const struct dsd_config *cfg, uid_t uid,
                             const struct access_count *mine, size_t len,
                             char *why, size_t whylen)
{
	uint64_t max_msgs = access_max_queue_messages_per_user(cfg);
	uint64_t max_bytes = access_max_queue_bytes_per_user(cfg);

	/* A share as large as the queue is no share: the queue's own limits
	 * and its overflow policy decide then (one app on the machine with
	 * drop-oldest keeps dropping rather than being refused). */
	if (max_msgs < cfg->queue_max_messages &&
	    mine->queued_messages + 1 > max_msgs) {
		snprintf(why, whylen,
		         "quota: uid %ld has %llu emits queued "
		         "(maxMessagesPerUser %llu)",
		         (long)uid, (unsigned long long)mine->queued_messages,
		         (unsigned long long)max_msgs);
		return -EDQUOT;
	}
	if (max_bytes < cfg->queue_max_bytes &&
	    mine->queued_bytes + len > max_bytes) {
		snprintf(why, whylen,
		         "quota: uid %ld has %llu bytes queued, %zu more would "
		         "pass maxBytesPerUser %llu",
		         (long)uid, (unsigned long long)mine->queued_bytes, len,
		         (unsigned long long)max_bytes);
		return -EDQUOT;
	}
	return 0;
}

void access_format_peer(const struct ipc_peer *p, char *buf, size_t len)
{
	size_t n;
	int k;

	if (len == 0)
		return;
	k = snprintf(buf, len, "pid %ld uid %ld gid %ld groups ", (long)p->pid,
	             (long)p->uid, (long)p->gid);
	if (k < 0 || (size_t)k >= len)
		return;
	n = (size_t)k;
	if (p->ngroups == 0)
		snprintf(buf + n, len - n, "%s",
		         p->groups_known ? "none" : "unknown");
	for (size_t i = 0; i < p->ngroups && n < len; i++) {
		k = snprintf(buf + n, len - n, "%s%ld", i ? "," : "",
		             (long)p->groups[i]);
		if (k < 0)
			return;
		n += (size_t)k;
	}
}

/* ---- usage per uid ----
 * A handful of uids use dsd at a time: a flat array, searched linearly. */

struct usage_entry {
	uid_t uid;
	struct access_count n;
};

struct access_usage {
	struct usage_entry *e;
	size_t n, cap;
};

int access_usage_new(struct access_usage **ret)
{
	struct access_usage *u = calloc(1, sizeof(*u));

	if (!u)
		return -ENOMEM;
	*ret = u;
	return 0;
}

void access_usage_free(struct access_usage *u)
{
	if (!u)
		return;
	free(u->e);
	free(u);
}

static struct usage_entry *find(const struct access_usage *u, uid_t uid)
{
	for (size_t i = 0; i < u->n; i++)
		if (u->e[i].uid == uid)
			return &u->e[i];
	return NULL;
}

struct access_count access_usage_get(const struct access_usage *u, uid_t uid)
{
	const struct usage_entry *e = find(u, uid);
	struct access_count zero = {0};

	return e ? e->n : zero;
}

static uint64_t add_clamped(uint64_t v, int64_t d)
{
	if (d < 0 && (uint64_t)(-(d + 1)) + 1 > v)
		return 0;
	return v + (uint64_t)d;
}

int access_usage_add(struct access_usage *u, uid_t uid, int32_t clients,
                     int64_t subscriptions, int64_t messages, int64_t bytes)
{
	struct usage_entry *e;

	if (uid == ACCESS_NO_UID)
		return 0;
	e = find(u, uid);
	if (!e) {
		if (clients <= 0 && subscriptions <= 0 && messages <= 0 &&
		    bytes <= 0)
			return 0; /* nothing to take away from */
		if (u->n == u->cap) {
			size_t cap = u->cap ? 2 * u->cap : 8;
			struct usage_entry *ne =
			        realloc(u->e, cap * sizeof(*ne));

			if (!ne)
				return -ENOMEM;
			u->e = ne;
			u->cap = cap;
		}
		e = &u->e[u->n++];
		*e = (struct usage_entry){.uid = uid};
	}
	e->n.clients = (uint32_t)add_clamped(e->n.clients, clients);
	e->n.subscriptions = add_clamped(e->n.subscriptions, subscriptions);
	e->n.queued_messages = add_clamped(e->n.queued_messages, messages);
	e->n.queued_bytes = add_clamped(e->n.queued_bytes, bytes);
	if (e->n.clients == 0 && e->n.subscriptions == 0 &&
	    e->n.queued_messages == 0 && e->n.queued_bytes == 0)
		*e = u->e[--u->n];
	return 0;
}

size_t access_usage_users(const struct access_usage *u)
{
	return u->n;
}

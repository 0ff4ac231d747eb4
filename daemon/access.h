/*
 * Who may do what with dsd: the access policy, from the configuration and
 * a local peer's credentials to decisions.
 *
 * The socket's mode and group decide who can connect at all; everything
 * after that is decided here:
 *   - control verbs (pause, resume, reload) need an admin: root, the uid
 *     dsd runs as (which can signal and ptrace dsd anyway), or a member of
 *     [ipc] adminGroup;
 *   - [acl] emit / subscribe, when set, are allow lists of GROUP:NAME
 *     entries; root and dsd's own uid are not bound by them;
 *   - per-uid quotas (clients, subscriptions, queued messages and bytes)
 *     keep one user from taking a whole shared resource; admins are not
 *     bound by the clients quota and may use the reserved slots past
 *     [ipc] maxClients, so root's dsctl gets in when apps filled the rest.
 *
 * Pure: no I/O, no clock, no global state; the usage table is the only
 * thing with memory, and the caller owns it.  Denials come back as a
 * negative errno and a sentence for the client (and the log).
 */
#ifndef DSD_ACCESS_H
#define DSD_ACCESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "config.h"
#include "ipc_server.h"

/* The tag of queued bytes that count against nobody (taken back unsent). */
#define ACCESS_NO_UID ((uid_t)-1)

/* Root, dsd's own uid, or a member of adminGroup. */
bool access_is_admin(const struct dsd_config *cfg, uid_t self,
                     const struct ipc_peer *p);

/* 0, or -EPERM with why: the control verb needs an admin. */
int access_check_control(const struct dsd_config *cfg, uid_t self,
                         const struct ipc_peer *p, const char *verb, char *why,
                         size_t whylen);

/* 0, or -EACCES with why: [acl] emit / subscribe does not allow name. */
int access_check_emit(const struct dsd_config *cfg, uid_t self,
                      const struct ipc_peer *p, const char *name, char *why,
                      size_t whylen);
int access_check_subscribe(const struct dsd_config *cfg, uid_t self,
                           const struct ipc_peer *p, const char *name,
                           char *why, size_t whylen);

/* What one uid holds now. */
struct access_count {
	uint32_t clients;
	uint64_t subscriptions;
	uint64_t queued_messages;
	uint64_t queued_bytes;
};

/* The effective per-uid limits (the defaults derived from the global ones). */
uint32_t access_max_clients_per_user(const struct dsd_config *cfg);
/* The peer's [queue] weight: the largest of its groups' (primary or
 * supplementary), 1 when none is listed. */
uint32_t access_queue_weight(const struct dsd_config *cfg,
                             const struct ipc_peer *p);
uint64_t access_max_queue_messages_per_user(const struct dsd_config *cfg);
uint64_t access_max_queue_bytes_per_user(const struct dsd_config *cfg);

/*
 * May one more connection of p be served?  others: connections served now
 * (not counting this one); mine: what p's uid holds.  0, or -EUSERS with
 * why.  Non-admins get at most maxClients slots in all and
 * maxClientsPerUser per uid; admins maxClients + reservedAdminClients.
 */
int access_check_connect(const struct dsd_config *cfg, uid_t self,
                         const struct ipc_peer *p, size_t others,
                         const struct access_count *mine, char *why,
                         size_t whylen);
/* One more subscription for uid: 0, or -EDQUOT with why. */
int access_check_subscription_quota(const struct dsd_config *cfg, uid_t uid,
                                    const struct access_count *mine, char *why,
                                    size_t whylen);
/* len more queued bytes (one message) for uid: 0, or -EDQUOT with why. */
int access_check_queue_quota(const struct dsd_config *cfg, uid_t uid,
                             const struct access_count *mine, size_t len,
                             char *why, size_t whylen);

/* "pid P uid U gid G groups A,B,...", for the log. */
void access_format_peer(const struct ipc_peer *p, char *buf, size_t len);

/* ---- usage per uid ---- */

struct access_usage;

int access_usage_new(struct access_usage **ret);
void access_usage_free(struct access_usage *u);
/* What uid holds (all zero when nothing). */
struct access_count access_usage_get(const struct access_usage *u, uid_t uid);
/*
 * Adds the deltas to uid's counts (a count never goes below 0; an entry
 * that drops to all zero is forgotten).  ACCESS_NO_UID is ignored.
 * 0 or -ENOMEM (nothing changed then).
 */
int access_usage_add(struct access_usage *u, uid_t uid, int32_t clients,
                     int64_t subscriptions, int64_t messages, int64_t bytes);
/* How many uids hold something (for tests). */
size_t access_usage_users(const struct access_usage *u);

#endif

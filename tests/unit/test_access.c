/*
 * The access policy (daemon/access.c): control verbs, [acl] allow lists,
 * the connection slots and per-uid quotas, the usage table, and the
 * configuration keys they come from (parsed by config.c, so the tests see
 * what an administrator writes).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "access.h"
#include "check-run.h"
#include "config.h"

#define SELF  ((uid_t)4000) /* the uid dsd runs as, in these tests */
#define ADMIN ((gid_t)1234)
#define SENS  ((gid_t)2001)
#define OTHER ((gid_t)2002)

static struct dsd_config cfg;
static char err[512], why[256], path[64];

static void setup(void)
{
	ck_assert_int_eq(config_init(&cfg), 0);
	snprintf(path, sizeof(path), "/tmp/dsd-test-access-XXXXXX");
	int fd = mkstemp(path);
	ck_assert_int_ge(fd, 0);
	close(fd);
	err[0] = why[0] = '\0';
}

static void teardown(void)
{
	config_free(&cfg);
	unlink(path);
}

/* Loads text on top of cfg. */
static int load(const char *text)
{
	FILE *f = fopen(path, "w");

	ck_assert_ptr_nonnull(f);
	ck_assert_int_ge(fputs(text, f), 0);
	ck_assert_int_eq(fclose(f), 0);
	return config_load_file(&cfg, path, err, sizeof(err));
}

static struct ipc_peer peer(uid_t uid, gid_t gid, const gid_t *groups, size_t n)
{
	struct ipc_peer p = {.pid = 77,
	                     .uid = uid,
	                     .gid = gid,
	                     .groups = groups,
	                     .ngroups = n,
	                     .groups_known = true};
	return p;
}

START_TEST(test_defaults)
{
	ck_assert(!cfg.socket_group.set);
	ck_assert(!cfg.admin_group.set);
	ck_assert_uint_eq(cfg.reserved_admin_clients, 4);
	ck_assert_uint_eq(access_max_clients_per_user(&cfg), 2048);
	ck_assert_uint_eq(cfg.max_subscriptions_per_user, 32768);
	ck_assert_uint_eq(access_max_queue_messages_per_user(&cfg), 50000);
	ck_assert_uint_eq(access_max_queue_bytes_per_user(&cfg),
	                  32 * 1024 * 1024);
	ck_assert(!cfg.acl_emit.set);
	ck_assert(!cfg.acl_subscribe.set);
	/* The derived defaults follow the global limits, rounded up. */
	ck_assert_int_eq(load("[ipc]\nmaxClients = 5\n[queue]\nmaxMessages = "
	                      "3\nmaxBytes = 9999\n"),
	                 0);
	ck_assert_uint_eq(access_max_clients_per_user(&cfg), 3);
	ck_assert_uint_eq(access_max_queue_messages_per_user(&cfg), 2);
	ck_assert_uint_eq(access_max_queue_bytes_per_user(&cfg), 5000);
	ck_assert_int_eq(load("[ipc]\nmaxClientsPerUser = 7\n"
	                      "maxSubscriptionsPerUser = 8\n"
	                      "reservedAdminClients = 0\n"
	                      "[queue]\nmaxMessagesPerUser = 9\n"
	                      "maxBytesPerUser = 10\n"),
	                 0);
	ck_assert_uint_eq(access_max_clients_per_user(&cfg), 7);
	ck_assert_uint_eq(cfg.max_subscriptions_per_user, 8);
	ck_assert_uint_eq(cfg.reserved_admin_clients, 0);
	ck_assert_uint_eq(access_max_queue_messages_per_user(&cfg), 9);
	ck_assert_uint_eq(access_max_queue_bytes_per_user(&cfg), 10);
}
END_TEST

START_TEST(test_groups_parse)
{
	ck_assert_int_eq(load("[ipc]\nsocketGroup = root\nadminGroup = 1234\n"),
	                 0);
	ck_assert(cfg.socket_group.set);
	ck_assert_uint_eq(cfg.socket_group.gid, 0);
	ck_assert_str_eq(cfg.socket_group.name, "root");
	ck_assert(cfg.admin_group.set);
	ck_assert_uint_eq(cfg.admin_group.gid, 1234);

	ck_assert_int_eq(load("[ipc]\nadminGroup = no-such-group-dsd-test\n"),
	                 -EINVAL);
	ck_assert_ptr_nonnull(strstr(err, ":2: adminGroup"));
	ck_assert_ptr_nonnull(strstr(err, "no such group"));
	ck_assert_int_eq(load("[ipc]\nsocketGroup = 4294967295\n"), -EINVAL);
	ck_assert_ptr_nonnull(strstr(err, "gid out of range"));
}
END_TEST

START_TEST(test_control_verbs)
{
	const gid_t sup[] = {5, ADMIN};
	struct ipc_peer root = peer(0, 0, NULL, 0);
	struct ipc_peer self = peer(SELF, 9, NULL, 0);
	struct ipc_peer user = peer(1000, 1000, NULL, 0);
	struct ipc_peer by_primary = peer(1001, ADMIN, NULL, 0);
	struct ipc_peer by_sup = peer(1002, 1002, sup, 2);

	ck_assert_int_eq(access_check_control(&cfg, SELF, &root, "pause", why,
	                                      sizeof(why)),
	                 0);
	ck_assert_int_eq(access_check_control(&cfg, SELF, &self, "pause", why,
	                                      sizeof(why)),
	                 0);
	/* No adminGroup: root (and dsd's own uid) only. */
	ck_assert_int_eq(access_check_control(&cfg, SELF, &by_sup, "pause", why,
	                                      sizeof(why)),
	                 -EPERM);
	ck_assert_str_eq(why, "permission denied: pause needs root (no "
	                      "adminGroup is configured)");

	ck_assert_int_eq(load("[ipc]\nadminGroup = 1234\n"), 0);
	ck_assert_int_eq(access_check_control(&cfg, SELF, &by_primary, "resume",
	                                      why, sizeof(why)),
	                 0);
	ck_assert_int_eq(access_check_control(&cfg, SELF, &by_sup, "reload",
	                                      why, sizeof(why)),
	                 0);
	ck_assert_int_eq(access_check_control(&cfg, SELF, &user, "reload", why,
	                                      sizeof(why)),
	                 -EPERM);
	ck_assert_str_eq(why, "permission denied: reload needs root or group "
	                      "1234 (adminGroup)");
	ck_assert(access_is_admin(&cfg, SELF, &by_sup));
	ck_assert(!access_is_admin(&cfg, SELF, &user));
}
END_TEST

START_TEST(test_acl)
{
	const gid_t sens[] = {SENS};
	const gid_t other[] = {OTHER};
	struct ipc_peer member = peer(1000, 1000, sens, 1);
	struct ipc_peer primary = peer(1001, SENS, NULL, 0);
	struct ipc_peer outsider = peer(1002, 1002, other, 1);
	struct ipc_peer root = peer(0, 0, NULL, 0);
	struct ipc_peer self = peer(SELF, SELF, NULL, 0);

	/* No [acl]: everything, as before. */
	ck_assert_int_eq(
	        access_check_emit(&cfg, SELF, &outsider, "x", why, sizeof(why)),
	        0);
	ck_assert_int_eq(access_check_subscribe(&cfg, SELF, &outsider, "x", why,
	                                        sizeof(why)),
	                 0);

	ck_assert_int_eq(load("[acl]\n"
	                      "emit = 2001:sensors/*  2001:alerts\t*:public\n"),
	                 0);
	ck_assert(cfg.acl_emit.set);
	ck_assert_uint_eq(cfg.acl_emit.n, 3);
#define EMIT(p, name)                                                          \
	access_check_emit(&cfg, SELF, &(p), name, why, sizeof(why))
	ck_assert_int_eq(EMIT(member, "sensors/t1"), 0);
	ck_assert_int_eq(EMIT(member, "sensors/"), 0);
	ck_assert_int_eq(EMIT(primary, "sensors/t1"), 0);
	ck_assert_int_eq(EMIT(member, "alerts"), 0);
	ck_assert_int_eq(EMIT(member, "alerts2"), -EACCES);
	ck_assert_int_eq(EMIT(member, "sensors"), -EACCES);
	ck_assert_int_eq(EMIT(member, "public"), 0);
	ck_assert_int_eq(EMIT(outsider, "public"), 0);
	ck_assert_int_eq(EMIT(outsider, "sensors/t1"), -EACCES);
	ck_assert_str_eq(why, "permission denied: [acl] emit allows no group "
	                      "of uid 1002 this name");
	ck_assert_int_eq(EMIT(outsider, "alerts"), -EACCES);
	/* root and dsd's own uid are not bound by it */
	ck_assert_int_eq(EMIT(root, "anything"), 0);
	ck_assert_int_eq(EMIT(self, "anything"), 0);
	/* subscribe is its own list: still unset, still open */
	ck_assert_int_eq(access_check_subscribe(&cfg, SELF, &outsider,
	                                        "sensors/t1", why, sizeof(why)),
	                 0);

	/* A later file's list replaces the whole list. */
	ck_assert_int_eq(load("[acl]\nemit = 2002:*\nsubscribe = 2001:a\n"), 0);
	ck_assert_uint_eq(cfg.acl_emit.n, 1);
	ck_assert_int_eq(EMIT(member, "sensors/t1"), -EACCES);
	ck_assert_int_eq(EMIT(outsider, "sensors/t1"), 0);
	ck_assert_int_eq(EMIT(outsider, ""), 0);
	ck_assert_int_eq(access_check_subscribe(&cfg, SELF, &member, "a", why,
	                                        sizeof(why)),
	                 0);
	ck_assert_int_eq(access_check_subscribe(&cfg, SELF, &outsider, "a", why,
	                                        sizeof(why)),
	                 -EACCES);
	ck_assert_ptr_nonnull(strstr(why, "[acl] subscribe"));
#undef EMIT
}
END_TEST

START_TEST(test_acl_errors)
{
	static const struct {
		const char *line, *msg;
	} bad[] = {
	        {"emit = sensors", "\"sensors\" is not GROUP:NAME"},
	        {"emit = :x", "is not GROUP:NAME"},
	        {"emit = root:", "is not GROUP:NAME"},
	        {"emit = root:a*b", "'*' only at the end of a name"},
	        {"emit = root:**", "'*' only at the end of a name"},
	        {"subscribe = no-such-group-dsd-test:x", "no such group"},
	        {"subscribe = root:x bad", "\"bad\" is not GROUP:NAME"},
	};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char text[256];

		snprintf(text, sizeof(text), "[acl]\n%s\n", bad[i].line);
		ck_assert_int_eq(load(text), -EINVAL);
		ck_assert_msg(strstr(err, bad[i].msg) && strstr(err, ":2: "),
		              "%s: got \"%s\"", bad[i].line, err);
		/* A refused list leaves nothing behind. */
		ck_assert(!cfg.acl_emit.set && !cfg.acl_subscribe.set);
	}
	/* Names may hold ':'; the group ends at the first one. */
	ck_assert_int_eq(load("[acl]\nemit = root:a:b *:*\n"), 0);
	ck_assert_str_eq(cfg.acl_emit.rules[0].name, "a:b");
	ck_assert(!cfg.acl_emit.rules[0].prefix);
	ck_assert(cfg.acl_emit.rules[1].any_group);
	ck_assert(cfg.acl_emit.rules[1].prefix);
	ck_assert_str_eq(cfg.acl_emit.rules[1].name, "");
}
END_TEST

/* [queue] weights: the largest of the peer's groups, 1 for the others. */
START_TEST(test_queue_weights)
{
	static const gid_t sup[] = {OTHER, SENS};
	struct ipc_peer none = peer(1000, 100, NULL, 0);
	struct ipc_peer prim = peer(1000, SENS, NULL, 0);
	struct ipc_peer both = peer(1000, 100, sup, 2);
	static const char *const bad[] = {
	        "weights = 2001",    "weights = 2001:0",
	        "weights = 2001:65", "weights = 2001:x",
	        "weights = :3",      "weights = no-such-group-dsd-test:2",
	};

	ck_assert_uint_eq(access_queue_weight(&cfg, &none), 1);
	/* the range's ends are accepted, one past them is not (below) */
	ck_assert_int_eq(load("[queue]\nweights = 2001:1 2002:64\n"), 0);
	ck_assert_uint_eq(access_queue_weight(&cfg, &both), 64);
	ck_assert_int_eq(load("[queue]\nweights = 2001:4 2002:2\n"), 0);
	ck_assert_uint_eq(cfg.queue_weights.n, 2);
	ck_assert_uint_eq(access_queue_weight(&cfg, &none), 1);
	ck_assert_uint_eq(access_queue_weight(&cfg, &prim), 4);
	ck_assert_uint_eq(access_queue_weight(&cfg, &both), 4);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char text[256];

		snprintf(text, sizeof(text), "[queue]\n%s\n", bad[i]);
		config_free(&cfg);
		ck_assert_int_eq(config_init(&cfg), 0);
		ck_assert_int_eq(load(text), -EINVAL);
		ck_assert_msg(strstr(err, ":2: weights"), "%s: got \"%s\"",
		              bad[i], err);
		ck_assert_uint_eq(cfg.queue_weights.n, 0);
	}
	ck_assert_ptr_nonnull(strstr(err, "no such group"));
}
END_TEST

START_TEST(test_connect_slots)
{
	struct ipc_peer user = peer(1000, 1000, NULL, 0);
	struct ipc_peer root = peer(0, 0, NULL, 0);
	struct access_count none = {0}, mine = {.clients = 2};

	ck_assert_int_eq(load("[ipc]\nmaxClients = 4\nreservedAdminClients = "
	                      "2\n"),
	                 0);
	/* Per uid: half of maxClients by default. */
	ck_assert_int_eq(access_check_connect(&cfg, SELF, &user, 2, &mine, why,
	                                      sizeof(why)),
	                 -EUSERS);
	ck_assert_str_eq(why, "too many clients for uid 1000 "
	                      "(maxClientsPerUser 2)");
	ck_assert_int_eq(access_check_connect(&cfg, SELF, &user, 3, &none, why,
	                                      sizeof(why)),
	                 0);
	ck_assert_int_eq(access_check_connect(&cfg, SELF, &user, 4, &none, why,
	                                      sizeof(why)),
	                 -EUSERS);
	ck_assert_str_eq(why, "too many clients (max 4)");
	/* Admins: past maxClients into the reserved slots, whatever their
	 * uid holds, and not past those. */
	ck_assert_int_eq(access_check_connect(&cfg, SELF, &root, 4, &mine, why,
	                                      sizeof(why)),
	                 0);
	ck_assert_int_eq(access_check_connect(&cfg, SELF, &root, 5, &mine, why,
	                                      sizeof(why)),
	                 0);
	ck_assert_int_eq(access_check_connect(&cfg, SELF, &root, 6, &mine, why,
	                                      sizeof(why)),
	                 -EUSERS);
	ck_assert_ptr_nonnull(strstr(why, "reserved for admins"));
	ck_assert_int_eq(load("[ipc]\nadminGroup = 1000\n"), 0);
	ck_assert_int_eq(access_check_connect(&cfg, SELF, &user, 5, &mine, why,
	                                      sizeof(why)),
	                 0);
}
END_TEST

START_TEST(test_quotas)
{
	struct access_count mine = {0};

	ck_assert_int_eq(load("[ipc]\nmaxSubscriptionsPerUser = 2\n[queue]\n"
	                      "maxBytes = 10000\nmaxMessagesPerUser = 3\n"),
	                 0);
	mine.subscriptions = 1;
	ck_assert_int_eq(access_check_subscription_quota(&cfg, 7, &mine, why,
	                                                 sizeof(why)),
	                 0);
	mine.subscriptions = 2;
	ck_assert_int_eq(access_check_subscription_quota(&cfg, 7, &mine, why,
	                                                 sizeof(why)),
	                 -EDQUOT);
	ck_assert_str_eq(why, "quota: too many subscriptions for uid 7 "
	                      "(maxSubscriptionsPerUser 2)");

	/* Bytes: half of maxBytes by default; exactly full is fine. */
	mine.queued_messages = 1;
	mine.queued_bytes = 4000;
	ck_assert_int_eq(access_check_queue_quota(&cfg, 7, &mine, 1000, why,
	                                          sizeof(why)),
	                 0);
	ck_assert_int_eq(access_check_queue_quota(&cfg, 7, &mine, 1001, why,
	                                          sizeof(why)),
	                 -EDQUOT);
	ck_assert_str_eq(why, "quota: uid 7 has 4000 bytes queued, 1001 more "
	                      "would pass maxBytesPerUser 5000");
	mine.queued_messages = 3;
	mine.queued_bytes = 0;
	ck_assert_int_eq(
	        access_check_queue_quota(&cfg, 7, &mine, 1, why, sizeof(why)),
	        -EDQUOT);
	ck_assert_ptr_nonnull(strstr(why, "maxMessagesPerUser 3"));

	/* A share as large as the queue leaves it to the queue's limits. */
	ck_assert_int_eq(load("[queue]\nmaxMessages = 3\nmaxBytesPerUser = "
	                      "10000\n"),
	                 0);
	mine.queued_messages = 3;
	mine.queued_bytes = 9999;
	ck_assert_int_eq(access_check_queue_quota(&cfg, 7, &mine, 1000, why,
	                                          sizeof(why)),
	                 0);
}
END_TEST

START_TEST(test_usage)
{
	struct access_usage *u;
	struct access_count n;

	ck_assert_int_eq(access_usage_new(&u), 0);
	n = access_usage_get(u, 5);
	ck_assert_uint_eq(n.clients + n.subscriptions + n.queued_bytes, 0);
	/* Taking from nothing creates nothing. */
	ck_assert_int_eq(access_usage_add(u, 5, -1, -1, -1, -1), 0);
	ck_assert_uint_eq(access_usage_users(u), 0);
	ck_assert_int_eq(access_usage_add(u, ACCESS_NO_UID, 1, 1, 1, 1), 0);
	ck_assert_uint_eq(access_usage_users(u), 0);

	for (uid_t uid = 100; uid < 140; uid++)
		ck_assert_int_eq(access_usage_add(u, uid, 1, 2, 3, 400), 0);
	ck_assert_uint_eq(access_usage_users(u), 40);
	ck_assert_int_eq(access_usage_add(u, 120, 1, 0, 1, 100), 0);
	n = access_usage_get(u, 120);
	ck_assert_uint_eq(n.clients, 2);
	ck_assert_uint_eq(n.subscriptions, 2);
	ck_assert_uint_eq(n.queued_messages, 4);
	ck_assert_uint_eq(n.queued_bytes, 500);
	/* Never below zero; all zero is forgotten, the others kept. */
	ck_assert_int_eq(access_usage_add(u, 120, -5, -2, -4, -9999), 0);
	ck_assert_uint_eq(access_usage_users(u), 39);
	n = access_usage_get(u, 139);
	ck_assert_uint_eq(n.queued_bytes, 400);
	for (uid_t uid = 100; uid < 140; uid++)
		ck_assert_int_eq(access_usage_add(u, uid, -1, -2, -3, -400), 0);
	ck_assert_uint_eq(access_usage_users(u), 0);
	access_usage_free(u);
	access_usage_free(NULL);
}
END_TEST

START_TEST(test_format_peer)
{
	const gid_t g[] = {27, 100};
	struct ipc_peer p = peer(1000, 1000, g, 2);
	char buf[128], tiny[12];

	access_format_peer(&p, buf, sizeof(buf));
	ck_assert_str_eq(buf, "pid 77 uid 1000 gid 1000 groups 27,100");
	p.ngroups = 0;
	access_format_peer(&p, buf, sizeof(buf));
	ck_assert_str_eq(buf, "pid 77 uid 1000 gid 1000 groups none");
	p.groups_known = false;
	access_format_peer(&p, buf, sizeof(buf));
	ck_assert_str_eq(buf, "pid 77 uid 1000 gid 1000 groups unknown");
	p.ngroups = 2;
	p.groups_known = true;
	access_format_peer(&p, tiny, sizeof(tiny));
	ck_assert_str_eq(tiny, "pid 77 uid ");
}
END_TEST

int main(void)
{
	Suite *s = suite_create("access");
	TCase *tc = tcase_create("core");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_defaults);
	tcase_add_test(tc, test_groups_parse);
	tcase_add_test(tc, test_control_verbs);
	tcase_add_test(tc, test_acl);
	tcase_add_test(tc, test_acl_errors);
	tcase_add_test(tc, test_queue_weights);
	tcase_add_test(tc, test_connect_slots);
	tcase_add_test(tc, test_quotas);
	tcase_add_test(tc, test_usage);
	tcase_add_test(tc, test_format_peer);
	suite_add_tcase(s, tc);
	return check_run(s);
}

/* Unit tests for config.c: defaults, every key, every error with its
 * file:line, drop-ins, authFile lookup and the bounds of every number. */
#include <check.h>
#include <errno.h>
#include <ftw.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check-run.h"
#include "config.h"

static char tmpdir[64];
static char err[1024];
static struct dsd_config cfg;

static void setup(void)
{
	/* mkdtemp() rewrites its argument: start from the template each
	 * time (CK_FORK=no runs every test in one process). */
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/dsd-test-config-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(tmpdir));
	unsetenv("CREDENTIALS_DIRECTORY");
	ck_assert_int_eq(config_init(&cfg), 0);
	err[0] = '\0';
}

static int rm_one(const char *path, const struct stat *st, int flag,
                  struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static void teardown(void)
{
	config_free(&cfg);
	nftw(tmpdir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

/* Writes tmpdir/rel (creating no directories) and returns its path. */
static const char *write_file(const char *rel, const char *content)
{
	static char paths[8][PATH_MAX];
	static unsigned next;
	char *path = paths[next++ % 8];
	FILE *f;

	snprintf(path, PATH_MAX, "%s/%s", tmpdir, rel);
	f = fopen(path, "w");
	ck_assert_ptr_nonnull(f);
	ck_assert_int_eq(fputs(content, f) >= 0 || !*content, 1);
	ck_assert_int_eq(fclose(f), 0);
	return path;
}

static void make_dir(const char *rel)
{
	char path[PATH_MAX];

	snprintf(path, sizeof(path), "%s/%s", tmpdir, rel);
	ck_assert_int_eq(mkdir(path, 0700), 0);
}

static int load_str(const char *content)
{
	return config_load_file(&cfg, write_file("dsd.conf", content), err,
	                        sizeof(err));
}

/* Loads content, expects "PATH:LINE: ...msg..." and -EINVAL. */
static void expect_error(const char *content, unsigned line, const char *msg)
{
	char want[PATH_MAX + 32];
	const char *path = write_file("bad.conf", content);
	int r;

	config_free(&cfg);
	ck_assert_int_eq(config_init(&cfg), 0);
	err[0] = '\0';
	r = config_load_file(&cfg, path, err, sizeof(err));
	ck_assert_msg(r == -EINVAL, "%s: r=%d", content, r);
	snprintf(want, sizeof(want), "%s:%u: ", path, line);
	ck_assert_msg(strncmp(err, want, strlen(want)) == 0,
	              "got \"%s\", want prefix \"%s\"", err, want);
	ck_assert_msg(strstr(err, msg) != NULL, "got \"%s\", want \"%s\"", err,
	              msg);
}

START_TEST(test_defaults)
{
	ck_assert_ptr_null(cfg.url);
	ck_assert_str_eq(cfg.auth_json, "{}");
	ck_assert_ptr_null(cfg.auth_file);
	ck_assert_ptr_null(cfg.ca_file);
	ck_assert_uint_eq(cfg.reconnect_interval_increment, 4000);
	ck_assert_uint_eq(cfg.max_reconnect_interval, 180000);
	ck_assert_uint_eq(cfg.max_reconnect_attempts, 5);
	ck_assert_uint_eq(cfg.heartbeat_interval, 30000);
	ck_assert_uint_eq(cfg.restart_after_error, 60000);
	ck_assert_str_eq(cfg.socket_path, "/run/dsd/dsd.sock");
	ck_assert_uint_eq(cfg.max_clients, 4096);
	ck_assert_uint_eq(cfg.max_subscriptions_per_client, 1024);
	ck_assert_uint_eq(cfg.client_buffer, 8 * 1024 * 1024);
	ck_assert_uint_eq(cfg.queue_max_messages, 100000);
	ck_assert_uint_eq(cfg.queue_max_bytes, 64 * 1024 * 1024);
	ck_assert_int_eq(cfg.queue_overflow, QUEUE_OVERFLOW_REJECT);

	/* Nothing but comments: still the defaults, and finish wants url. */
	ck_assert_int_eq(load_str("# nothing\n; here\n\n   \n"), 0);
	ck_assert_uint_eq(cfg.max_clients, 4096);
	ck_assert_int_eq(config_finish(&cfg, err, sizeof(err)), -EINVAL);
	ck_assert_ptr_nonnull(strstr(err, "url"));
}
END_TEST

START_TEST(test_every_key)
{
	write_file("ca.pem", "-----BEGIN CERTIFICATE-----\nMIIB\n"
	                     "-----END CERTIFICATE-----\n");
	ck_assert_int_eq(
	        load_str("[platform]\n"
	                 "url = wss://ds.example.com:6020/deepstream\n"
	                 "auth = {\"username\": \"dsd\", \"n\": [1, 2]}\n"
	                 "caFile = ca.pem\n"
	                 "reconnectIntervalIncrement = 1000\n"
	                 "maxReconnectInterval = 60000\n"
	                 "maxReconnectAttempts = 12\n"
	                 "heartbeatInterval = 5000\n"
	                 "restartAfterError = 0\n"
	                 "[ipc]\n"
	                 "socket = /tmp/x.sock\n"
	                 "maxClients = 7\n"
	                 "maxSubscriptionsPerClient = 8\n"
	                 "clientBuffer = 3000000\n"
	                 "[queue]\n"
	                 "maxMessages = 9\n"
	                 "maxBytes = 5000000000\n"
	                 "overflow = drop-oldest\n"),
	        0);
	ck_assert_int_eq(config_finish(&cfg, err, sizeof(err)), 0);
	ck_assert_str_eq(cfg.url, "wss://ds.example.com:6020/deepstream");
	/* Re-serialised compact. */
	ck_assert_str_eq(cfg.auth_json, "{\"username\":\"dsd\",\"n\":[1,2]}");
	ck_assert_ptr_null(cfg.auth_file);
	char want[PATH_MAX];
	snprintf(want, sizeof(want), "%s/ca.pem", tmpdir);
	ck_assert_str_eq(cfg.ca_file, want);
	ck_assert_uint_eq(cfg.reconnect_interval_increment, 1000);
	ck_assert_uint_eq(cfg.max_reconnect_interval, 60000);
	ck_assert_uint_eq(cfg.max_reconnect_attempts, 12);
	ck_assert_uint_eq(cfg.heartbeat_interval, 5000);
	ck_assert_uint_eq(cfg.restart_after_error, 0);
	ck_assert_str_eq(cfg.socket_path, "/tmp/x.sock");
	ck_assert_uint_eq(cfg.max_clients, 7);
	ck_assert_uint_eq(cfg.max_subscriptions_per_client, 8);
	ck_assert_uint_eq(cfg.client_buffer, 3000000);
	ck_assert_uint_eq(cfg.queue_max_messages, 9);
	ck_assert_uint_eq(cfg.queue_max_bytes, 5000000000ull);
	ck_assert_int_eq(cfg.queue_overflow, QUEUE_OVERFLOW_DROP_OLDEST);

	/* overflow back to reject, in a second file on top. */
	ck_assert_int_eq(load_str("[queue]\noverflow = reject\n"), 0);
	ck_assert_int_eq(cfg.queue_overflow, QUEUE_OVERFLOW_REJECT);
	ck_assert_uint_eq(cfg.queue_max_messages, 9);
}
END_TEST

/* [queue] spool: relative to the config file's directory, absolute as it
 * is; the file need not exist.  spoolSync: the three settings. */
START_TEST(test_spool_keys)
{
	char want[PATH_MAX];

	ck_assert_ptr_null(cfg.queue_spool);
	ck_assert_int_eq(cfg.queue_spool_sync, SPOOL_SYNC_NORMAL);
	ck_assert_int_eq(load_str("[queue]\nspool = state/spool.db\n"
	                          "spoolSync = full\n"),
	                 0);
	snprintf(want, sizeof(want), "%s/state/spool.db", tmpdir);
	ck_assert_str_eq(cfg.queue_spool, want);
	ck_assert_int_eq(cfg.queue_spool_sync, SPOOL_SYNC_FULL);
	ck_assert_int_eq(load_str("[queue]\nspool = /var/lib/dsd/spool.db\n"
	                          "spoolSync = off\n"),
	                 0);
	ck_assert_str_eq(cfg.queue_spool, "/var/lib/dsd/spool.db");
	ck_assert_int_eq(cfg.queue_spool_sync, SPOOL_SYNC_OFF);
	ck_assert_int_eq(load_str("[queue]\nspoolSync = normal\n"), 0);
	ck_assert_int_eq(cfg.queue_spool_sync, SPOOL_SYNC_NORMAL);
}
END_TEST

/* [metrics] listen: an IP address and a port, nothing else. */
START_TEST(test_metrics_listen)
{
	ck_assert_ptr_null(cfg.metrics_listen);
	ck_assert_int_eq(load_str("[metrics]\nlisten = 127.0.0.1:9477\n"), 0);
	ck_assert_str_eq(cfg.metrics_listen, "127.0.0.1:9477");
	ck_assert_int_eq(load_str("[metrics]\nlisten = [::1]:9477\n"), 0);
	ck_assert_str_eq(cfg.metrics_listen, "[::1]:9477");
	expect_error("[metrics]\nlisten = localhost:9477\n", 2,
	             "is not HOST:PORT");
	expect_error("[metrics]\nlisten = 127.0.0.1\n", 2, "has no port");
	expect_error("[metrics]\nlisten = 127.0.0.1:0\n", 2, "listen: ");
	expect_error("[metrics]\nlisten = 127.0.0.1:65536\n", 2,
	             "is not HOST:PORT");
}
END_TEST

START_TEST(test_keys_list)
{
	static const char *const want[] = {
	        "platform.url",
	        "platform.auth",
	        "platform.authFile",
	        "platform.caFile",
	        "platform.certFile",
	        "platform.keyFile",
	        "platform.proxy",
	        "platform.reconnectIntervalIncrement",
	        "platform.maxReconnectInterval",
	        "platform.maxReconnectAttempts",
	        "platform.heartbeatInterval",
	        "platform.restartAfterError",
	        "platform.reconnectJitter",
	        "platform.followNetwork",
	        "ipc.socket",
	        "ipc.maxClients",
	        "ipc.maxSubscriptionsPerClient",
	        "ipc.clientBuffer",
	        "ipc.clientBufferTotal",
	        "ipc.socketGroup",
	        "ipc.adminGroup",
	        "ipc.reservedAdminClients",
	        "ipc.maxClientsPerUser",
	        "ipc.maxSubscriptionsPerUser",
	        "queue.maxMessages",
	        "queue.maxBytes",
	        "queue.overflow",
	        "queue.maxMessagesPerUser",
	        "queue.maxBytesPerUser",
	        "queue.shutdownTimeout",
	        "queue.spool",
	        "queue.spoolSync",
	        "queue.weights",
	        "acl.emit",
	        "acl.subscribe",
	        "metrics.listen",
	};
	const char *const *k = config_keys();
	size_t i;

	for (i = 0; k[i]; i++) {
		ck_assert_uint_lt(i, sizeof(want) / sizeof(want[0]));
		ck_assert_str_eq(k[i], want[i]);
	}
	ck_assert_uint_eq(i, sizeof(want) / sizeof(want[0]));
}
END_TEST

START_TEST(test_syntax)
{
	/* Whitespace, CRLF, both comment styles, '#' inside a value. */
	ck_assert_int_eq(load_str("  # comment\r\n"
	                          "\t; other comment\n"
	                          "[ platform ]\r\n"
	                          "\turl\t=\tws://h/p#x  \r\n"),
	                 -EINVAL); /* a fragment is refused by url_parse */
	ck_assert_int_eq(load_str("  # comment\r\n"
	                          "\t; other comment\n"
	                          "[ platform ]\r\n"
	                          "\turl\t=\tws://h/p?a=#  \r\n"),
	                 -EINVAL);
	ck_assert_int_eq(load_str("  # comment\r\n"
	                          "\t; other comment\n"
	                          "[ platform ]\r\n"
	                          "\turl\t=\tws://h/p?a=1  \r\n"
	                          "[ipc]\n"
	                          "maxClients=3"), /* no final newline */
	                 0);
	ck_assert_str_eq(cfg.url, "ws://h/p?a=1");
	ck_assert_uint_eq(cfg.max_clients, 3);
	/* Several URLs, separated by blanks, kept as written. */
	ck_assert_int_eq(load_str("[platform]\nurl = ws://a:1  ws://ab:1\t"
	                          "wss://[::1]/x\nreconnectJitter = 25\n"),
	                 0);
	ck_assert_str_eq(cfg.url, "ws://a:1  ws://ab:1\twss://[::1]/x");
	ck_assert_uint_eq(cfg.reconnect_jitter, 25);
	ck_assert(cfg.follow_network);
	ck_assert_int_eq(load_str("[platform]\nurl = ws://a\nfollowNetwork = "
	                          "off\n"),
	                 0);
	ck_assert(!cfg.follow_network);
	/* A prefix of another URL is not the same URL. */
	ck_assert_int_eq(load_str("[platform]\nurl = ws://ab ws://a\n"), 0);
	/* Values are literal: quotes stay (and make this url invalid). */
	ck_assert_int_eq(load_str("[platform]\nurl = \"ws://h\"\n"), -EINVAL);
	ck_assert_ptr_nonnull(strstr(err, "scheme"));
	/* Sections may repeat; keys are counted per section and file. */
	ck_assert_int_eq(load_str("[ipc]\nmaxClients = 4\n[queue]\n"
	                          "maxMessages = 5\n[ipc]\nclientBuffer = "
	                          "2097152\n"),
	                 0);
	ck_assert_uint_eq(cfg.max_clients, 4);
	ck_assert_uint_eq(cfg.client_buffer, 2097152);
}
END_TEST

START_TEST(test_line_length)
{
	char *text = malloc(CONFIG_LINE_MAX + 64);
	size_t n;

	ck_assert_ptr_nonnull(text);

	/* A comment line of exactly CONFIG_LINE_MAX bytes is fine. */
	memset(text, '#', CONFIG_LINE_MAX);
	strcpy(text + CONFIG_LINE_MAX, "\n[ipc]\nmaxClients = 2\n");
	ck_assert_int_eq(load_str(text), 0);
	ck_assert_uint_eq(cfg.max_clients, 2);
	/* So is a key line padded to the limit. */
	strcpy(text, "[ipc]\nmaxClients = 3");
	n = strlen(text);
	memset(text + n, ' ', CONFIG_LINE_MAX - (n - 6));
	strcpy(text + 6 + CONFIG_LINE_MAX, "\n");
	ck_assert_int_eq(load_str(text), 0);
	ck_assert_uint_eq(cfg.max_clients, 3);
	/* One more byte is an error on that line. */
	memset(text, '#', CONFIG_LINE_MAX + 1);
	strcpy(text + CONFIG_LINE_MAX + 1, "\n");
	expect_error(text, 1, "longer than 4096");
	strcpy(text, "[ipc]\n");
	memset(text + 6, ';', CONFIG_LINE_MAX + 1);
	text[6 + CONFIG_LINE_MAX + 1] = '\0'; /* and no newline */
	expect_error(text, 2, "longer than 4096");
	free(text);
}
END_TEST

static const struct {
	const char *text;
	unsigned line;
	const char *msg;
} errors[] = {
        {"[nope]\n", 1, "unknown section [nope]"},
        {"\n[platform\n", 2, "invalid section header \"[platform\""},
        {"[]\n", 1, "unknown section []"},
        {"url = ws://h\n", 1, "key \"url\" outside of a section"},
        {"[platform]\nURL = ws://h\n", 2, "unknown key \"URL\" in [platform]"},
        {"[ipc]\nurl = ws://h\n", 2, "unknown key \"url\" in [ipc]"},
        {"[platform]\nurl\n", 2, "missing '=' in \"url\""},
        {"[platform]\n = ws://h\n", 2, "missing key"},
        {"[platform]\nurl =\n", 2, "url: empty value"},
        {"[platform]\nurl = ws://a\n#\nurl = ws://b\n", 4,
         "duplicate key url (first on line 2)"},
        {"[platform]\nurl = ftp://h\n", 2, "invalid URL \"ftp://h\": scheme"},
        {"[platform]\nurl = ws://h:99999\n", 2, "invalid port"},
        /* Several URLs: the error names the one at fault. */
        {"[platform]\nurl = ws://a:1 ws://b:99999 ws://c\n", 2,
         "url: invalid URL \"ws://b:99999\": invalid port"},
        {"[platform]\nurl = ws://a\tftp://b\n", 2,
         "invalid URL \"ftp://b\": scheme"},
        {"[platform]\nurl = ws://a ws://b ws://a\n", 2,
         "url: \"ws://a\" is listed twice"},
        {"[platform]\nurl = ws://1 ws://2 ws://3 ws://4 ws://5 ws://6 "
         "ws://7 ws://8 ws://9 ws://10 ws://11 ws://12 ws://13 ws://14 "
         "ws://15 ws://16 ws://17\n",
         2, "url: more than 16 URLs"},
        {"[platform]\nreconnectJitter = 101\n", 2, "out of range 0..100"},
        {"[platform]\nfollowNetwork = maybe\n", 2,
         "followNetwork: \"maybe\" is not yes or no"},
        {"[ipc]\nmaxClients = 12x\n", 2, "invalid number \"12x\""},
        {"[ipc]\nmaxClients = -1\n", 2, "invalid number \"-1\""},
        {"[ipc]\nmaxClients = +1\n", 2, "invalid number \"+1\""},
        {"[ipc]\nmaxClients = 1 2\n", 2, "invalid number \"1 2\""},
        {"[ipc]\nmaxClients = 0x10\n", 2, "invalid number \"0x10\""},
        {"[ipc]\nmaxClients = 99999999999999999999999\n", 2,
         "out of range 1..1048576"},
        {"[platform]\nheartbeatInterval = 1s\n", 2, "invalid number \"1s\""},
        {"[platform]\nmaxReconnectAttempts = infinite\n", 2,
         "invalid number \"infinite\""},
        {"[platform]\nmaxReconnectAttempts = Infinity\n", 2, "invalid number"},
        {"[queue]\noverflow = drop\n", 2,
         "\"drop\" is not reject or drop-oldest"},
        {"[queue]\nspoolSync = sync\n", 2,
         "spoolSync: \"sync\" is not normal, full or off"},
        {"[ipc]\nsocket = run/dsd.sock\n", 2, "not an absolute path"},
        {"[platform]\nauth = {\"a\":\n", 2, "auth: invalid JSON"},
        {"[platform]\nauth = {\"a\":1,\"a\":2}\n", 2, "auth: invalid JSON"},
        {"[platform]\nauth = [1]\n", 2, "auth: must be a JSON object"},
        {"[platform]\nauth = \"x\"\n", 2, "must be a JSON object"},
        {"[platform]\nauth = {} x\n", 2, "invalid JSON"},
        {"[platform]\nauth = {}\nauthFile = a.json\n", 3,
         "auth and authFile exclude each other (auth is on line 2)"},
        {"[platform]\nauthFile = a.json\n\nauth = {}\n", 4,
         "auth and authFile exclude each other (authFile is on line 2)"},
        {"[platform]\nauthFile = missing.json\n", 2,
         "missing.json\": No such file"},
        {"[platform]\nauthFile = list.json\n", 2, "must be a JSON object"},
        {"[platform]\nauthFile = broken.json\n", 2,
         "invalid JSON (or a duplicate key) at line 2, column"},
        {"[platform]\nauthFile = sub\n", 2, "not a regular file"},
        {"[platform]\ncaFile = nothere.pem\n", 2, "nothere.pem\": No such"},
        {"[platform]\ncaFile = sub\n", 2, "caFile \""},
        {"[ipc]\nsocket = /a\x01\n", 2, "control character"},
        {"[ipc]\n\x1b[31m\n", 2, "control character"},
};

START_TEST(test_errors)
{
	write_file("a.json", "{\"user\":\"x\"}");
	write_file("list.json", "[\"secret\"]");
	write_file("broken.json", "{\"password\":\n \"hunter2\" x}");
	make_dir("sub");
	for (size_t i = 0; i < sizeof(errors) / sizeof(errors[0]); i++)
		expect_error(errors[i].text, errors[i].line, errors[i].msg);
}
END_TEST

START_TEST(test_error_escaping_and_secrets)
{
	/* Offending text is quoted and escaped. */
	expect_error("[ipc]\nmaxClients = 1\"\\\t\xc3\xa9\n", 2,
	             "invalid number \"1\\\"\\\\\\t\\xc3\\xa9\"");
	/* Secrets never show up in errors. */
	expect_error("[platform]\nauth = {\"password\":\"hunter2\" junk}\n", 2,
	             "invalid JSON");
	ck_assert_ptr_null(strstr(err, "hunter2"));
	ck_assert_ptr_null(strstr(err, "junk"));
	write_file("s.json", "{\"password\": \"hunter2\", tail}");
	expect_error("[platform]\nauthFile = s.json\n", 2, "invalid JSON");
	ck_assert_ptr_null(strstr(err, "hunter2"));
	ck_assert_ptr_null(strstr(err, "tail"));
	write_file("t.json", "[\"hunter2\"]");
	expect_error("[platform]\nauthFile = t.json\n", 2, "JSON object");
	ck_assert_ptr_null(strstr(err, "hunter2"));
}
END_TEST

START_TEST(test_nul_byte)
{
	const char *path = write_file("nul.conf", "");
	FILE *f = fopen(path, "w");

	ck_assert_ptr_nonnull(f);
	fwrite("[ipc]\nmaxClients = 1\0\n", 1, 23, f);
	fclose(f);
	ck_assert_int_eq(config_load_file(&cfg, path, err, sizeof(err)),
	                 -EINVAL);
	char want[PATH_MAX + 16];
	snprintf(want, sizeof(want), "%s:2: NUL byte in line", path);
	ck_assert_str_eq(err, want);
}
END_TEST

START_TEST(test_unreadable)
{
	char path[PATH_MAX], want[PATH_MAX + 64];

	snprintf(path, sizeof(path), "%s/none.conf", tmpdir);
	ck_assert_int_eq(config_load_file(&cfg, path, err, sizeof(err)),
	                 -EINVAL);
	snprintf(want, sizeof(want), "%s: No such file or directory", path);
	ck_assert_str_eq(err, want);

	ck_assert_int_eq(config_load_file(&cfg, tmpdir, err, sizeof(err)),
	                 -EINVAL);
	snprintf(want, sizeof(want), "%s: not a regular file", tmpdir);
	ck_assert_str_eq(err, want);

	/* Also through config_load, and with no room for the message. */
	ck_assert_int_eq(config_load(&cfg, path, err, sizeof(err)), -EINVAL);
	ck_assert_int_eq(config_load(&cfg, path, NULL, 0), -EINVAL);
	if (geteuid() != 0) {
		const char *p = write_file("locked.conf", "");
		chmod(p, 0);
		ck_assert_int_eq(config_load_file(&cfg, p, err, sizeof(err)),
		                 -EINVAL);
		ck_assert_ptr_nonnull(strstr(err, "Permission denied"));
	}
}
END_TEST

START_TEST(test_infinity)
{
	ck_assert_int_eq(load_str("[platform]\nmaxReconnectAttempts = "
	                          "infinity\n"),
	                 0);
	ck_assert_uint_eq(cfg.max_reconnect_attempts, CONFIG_INFINITE);
	ck_assert_int_eq(load_str("[platform]\nmaxReconnectAttempts = 3\n"), 0);
	ck_assert_uint_eq(cfg.max_reconnect_attempts, 3);
	/* The largest finite value is one below CONFIG_INFINITE. */
	ck_assert_int_eq(load_str("[platform]\nmaxReconnectAttempts = "
	                          "4294967294\n"),
	                 0);
	ck_assert_uint_eq(cfg.max_reconnect_attempts, CONFIG_INFINITE - 1);
	expect_error("[platform]\nmaxReconnectAttempts = 4294967295\n", 2,
	             "out of range");
	expect_error("[platform]\nmaxReconnectAttempts = 0\n", 2,
	             "out of range");
}
END_TEST

static const struct {
	const char *section, *key;
	uint64_t min, max;
	bool zero_ok;
} bounds[] = {
        {"platform", "reconnectIntervalIncrement", 100, 3600000, false},
        {"platform", "maxReconnectInterval", 100, 86400000, false},
        {"platform", "maxReconnectAttempts", 1, 4294967294ull, false},
        {"platform", "heartbeatInterval", 100, 3600000, false},
        {"platform", "restartAfterError", 100, 86400000, true},
        {"ipc", "maxClients", 1, 1048576, false},
        {"ipc", "maxSubscriptionsPerClient", 1, 1048576, false},
        {"ipc", "clientBuffer", 2097152, 1073741824, false},
        {"queue", "maxMessages", 1, 100000000, false},
        {"queue", "maxBytes", 4096, 68719476736ull, false},
};

/* Reads back the field of bounds[i]. */
static uint64_t bound_field(size_t i)
{
	const char *k = bounds[i].key;

	if (!strcmp(k, "reconnectIntervalIncrement"))
		return cfg.reconnect_interval_increment;
	if (!strcmp(k, "maxReconnectInterval"))
		return cfg.max_reconnect_interval;
	if (!strcmp(k, "maxReconnectAttempts"))
		return cfg.max_reconnect_attempts;
	if (!strcmp(k, "heartbeatInterval"))
		return cfg.heartbeat_interval;
	if (!strcmp(k, "restartAfterError"))
		return cfg.restart_after_error;
	if (!strcmp(k, "maxClients"))
		return cfg.max_clients;
	if (!strcmp(k, "maxSubscriptionsPerClient"))
		return cfg.max_subscriptions_per_client;
	if (!strcmp(k, "clientBuffer"))
		return cfg.client_buffer;
	if (!strcmp(k, "maxMessages"))
		return cfg.queue_max_messages;
	if (!strcmp(k, "maxBytes"))
		return cfg.queue_max_bytes;
	ck_abort_msg("no field for %s", k);
	return 0;
}

static void check_value(size_t i, uint64_t v, bool ok)
{
	char text[256], msg[64];

	snprintf(text, sizeof(text), "[%s]\n%s = %llu\n", bounds[i].section,
	         bounds[i].key, (unsigned long long)v);
	if (ok) {
		ck_assert_msg(load_str(text) == 0, "%s: %s", text, err);
		ck_assert_uint_eq(bound_field(i), v);
	} else {
		snprintf(msg, sizeof(msg), "out of range %llu..%llu",
		         (unsigned long long)bounds[i].min,
		         (unsigned long long)bounds[i].max);
		expect_error(text, 2, msg);
	}
}

START_TEST(test_bounds)
{
	for (size_t i = 0; i < sizeof(bounds) / sizeof(bounds[0]); i++) {
		check_value(i, bounds[i].min, true);
		check_value(i, bounds[i].max, true);
		check_value(i, bounds[i].min - 1,
		            bounds[i].zero_ok && bounds[i].min - 1 == 0);
		check_value(i, bounds[i].max + 1, false);
		if (bounds[i].min > 1)
			check_value(i, 1, false);
		if (!bounds[i].zero_ok)
			check_value(i, 0, false);
		/* Far past anything: must not wrap around. */
		check_value(i, UINT64_MAX, false);
		/* 2^32 + min would be min if cut to 32 bits. */
		if (bounds[i].max <= UINT32_MAX)
			check_value(i, (uint64_t)UINT32_MAX + 1 + bounds[i].min,
			            false);
	}
	/* restartAfterError = 0 means never. */
	ck_assert_int_eq(load_str("[platform]\nrestartAfterError = 0\n"), 0);
	ck_assert_uint_eq(cfg.restart_after_error, 0);
	/* Leading zeros are still digits. */
	ck_assert_int_eq(load_str("[ipc]\nmaxClients = 0010\n"), 0);
	ck_assert_uint_eq(cfg.max_clients, 10);

	/* The socket path must fit sockaddr_un (107 bytes + NUL). */
	char text[300], path[200];
	path[0] = '/';
	memset(path + 1, 's', 106);
	path[107] = '\0';
	snprintf(text, sizeof(text), "[ipc]\nsocket = %s\n", path);
	ck_assert_int_eq(load_str(text), 0);
	ck_assert_str_eq(cfg.socket_path, path);
	snprintf(text, sizeof(text), "[ipc]\nsocket = %ss\n", path);
	expect_error(text, 2, "longer than 107 bytes");
}
END_TEST

START_TEST(test_auth_file)
{
	char want[PATH_MAX];

	write_file("auth.json", "{ \"token\" : \"from-config-dir\" }\n");
	ck_assert_int_eq(load_str("[platform]\nauthFile = auth.json\n"), 0);
	ck_assert_str_eq(cfg.auth_json, "{\"token\":\"from-config-dir\"}");
	snprintf(want, sizeof(want), "%s/auth.json", tmpdir);
	ck_assert_str_eq(cfg.auth_file, want);

	/* $CREDENTIALS_DIRECTORY wins when the file is there... */
	make_dir("creds");
	write_file("creds/auth.json", "{\"token\":\"from-credentials\"}");
	snprintf(want, sizeof(want), "%s/creds", tmpdir);
	setenv("CREDENTIALS_DIRECTORY", want, 1);
	ck_assert_int_eq(load_str("[platform]\nauthFile = auth.json\n"), 0);
	ck_assert_str_eq(cfg.auth_json, "{\"token\":\"from-credentials\"}");
	snprintf(want, sizeof(want), "%s/creds/auth.json", tmpdir);
	ck_assert_str_eq(cfg.auth_file, want);

	/* ...and the config's directory is used when it is not. */
	write_file("other.json", "{\"token\":\"other\"}");
	ck_assert_int_eq(load_str("[platform]\nauthFile = other.json\n"), 0);
	ck_assert_str_eq(cfg.auth_json, "{\"token\":\"other\"}");

	/* Absolute paths ignore both. */
	snprintf(want, sizeof(want), "[platform]\nauthFile = %s/auth.json\n",
	         tmpdir);
	ck_assert_int_eq(load_str(want), 0);
	ck_assert_str_eq(cfg.auth_json, "{\"token\":\"from-config-dir\"}");

	/* Missing everywhere: error names the config-dir path. */
	expect_error("[platform]\nauthFile = gone.json\n", 2,
	             "/gone.json\": No such file");
	ck_assert_ptr_null(strstr(err, "/creds/"));

	/* A later inline auth replaces the file (a drop-in may do this). */
	ck_assert_int_eq(load_str("[platform]\nauthFile = auth.json\n"), 0);
	ck_assert_ptr_nonnull(cfg.auth_file);
	ck_assert_int_eq(load_str("[platform]\nauth = {\"a\":1}\n"), 0);
	ck_assert_ptr_null(cfg.auth_file);
	ck_assert_str_eq(cfg.auth_json, "{\"a\":1}");
}
END_TEST

START_TEST(test_auth_file_size)
{
	size_t max = CONFIG_AUTH_FILE_MAX;
	char *text = malloc(max + 2);

	ck_assert_ptr_nonnull(text);

	/* {"k":"xxx...x"} padded to exactly the limit, then one byte more. */
	strcpy(text, "{\"k\":\"");
	memset(text + 6, 'x', max - 8);
	strcpy(text + max - 2, "\"}");
	ck_assert_uint_eq(strlen(text), max);
	write_file("big.json", text);
	ck_assert_int_eq(load_str("[platform]\nauthFile = big.json\n"), 0);
	ck_assert_uint_eq(strlen(cfg.auth_json), max);
	strcat(text, " ");
	write_file("big.json", text);
	expect_error("[platform]\nauthFile = big.json\n", 2, "larger than");
	free(text);
}
END_TEST

START_TEST(test_dropins)
{
	char main_path[PATH_MAX], want[PATH_MAX + 64];

	snprintf(main_path, sizeof(main_path), "%s/dsd.conf", tmpdir);
	write_file("dsd.conf",
	           "[platform]\nurl = ws://main\n"
	           "[ipc]\nmaxClients = 10\nclientBuffer = 3000000\n");
	/* No drop-in directory: just the main file. */
	ck_assert_int_eq(config_load(&cfg, main_path, err, sizeof(err)), 0);
	ck_assert_str_eq(cfg.url, "ws://main");

	make_dir("dsd.conf.d");
	write_file("dsd.conf.d/20-b.conf", "[platform]\nurl = ws://b\n");
	write_file("dsd.conf.d/10-a.conf",
	           "[platform]\nurl = ws://a\n[ipc]\nmaxClients = 11\n");
	write_file("dsd.conf.d/README", "not a config\n");
	write_file("dsd.conf.d/.hidden.conf", "garbage\n");
	write_file("dsd.conf.d/30-c.conf.bak", "garbage\n");
	write_file("dsd.conf.d/Z-upper.conf", "[ipc]\nmaxClients = 12\n");
	write_file("dsd.conf.d/a-lower.conf", "[ipc]\nmaxClients = 13\n");
	config_free(&cfg);
	ck_assert_int_eq(config_init(&cfg), 0);
	ck_assert_int_eq(config_load(&cfg, main_path, err, sizeof(err)), 0);
	ck_assert_str_eq(cfg.url, "ws://b");
	/* strcmp order: "Z" < "a", so a-lower.conf is last. */
	ck_assert_uint_eq(cfg.max_clients, 13);
	ck_assert_uint_eq(cfg.client_buffer, 3000000);

	/* An error in a drop-in names the drop-in and its line. */
	write_file("dsd.conf.d/40-bad.conf", "[ipc]\n\nmaxClients = many\n");
	config_free(&cfg);
	ck_assert_int_eq(config_init(&cfg), 0);
	ck_assert_int_eq(config_load(&cfg, main_path, err, sizeof(err)),
	                 -EINVAL);
	snprintf(want, sizeof(want), "%s/dsd.conf.d/40-bad.conf:3: ", tmpdir);
	ck_assert_msg(strncmp(err, want, strlen(want)) == 0, "%s", err);
	/* The partly loaded config frees cleanly (ASan checks). */
	config_free(&cfg);
	config_free(&cfg);
	ck_assert_int_eq(config_init(&cfg), 0);
}
END_TEST

START_TEST(test_dropin_url_only_and_missing_url)
{
	char main_path[PATH_MAX];

	snprintf(main_path, sizeof(main_path), "%s/dsd.conf", tmpdir);
	write_file("dsd.conf", "[ipc]\nmaxClients = 10\n");
	ck_assert_int_eq(config_load(&cfg, main_path, err, sizeof(err)),
	                 -EINVAL);
	ck_assert_ptr_nonnull(strstr(err, "no url"));

	make_dir("dsd.conf.d");
	write_file("dsd.conf.d/url.conf", "[platform]\nurl = wss://x\n");
	ck_assert_int_eq(config_load(&cfg, main_path, err, sizeof(err)), 0);
	ck_assert_str_eq(cfg.url, "wss://x");

	/* A drop-in "directory" that is a file is an error. */
	snprintf(main_path, sizeof(main_path), "%s/two.conf", tmpdir);
	write_file("two.conf", "[platform]\nurl = ws://h\n");
	write_file("two.conf.d", "");
	ck_assert_int_eq(config_load(&cfg, main_path, err, sizeof(err)),
	                 -EINVAL);
	ck_assert_ptr_nonnull(strstr(err, "two.conf.d"));
}
END_TEST

START_TEST(test_free_safe)
{
	struct dsd_config c = {0};

	/* Zeroed and twice. */
	config_free(&c);
	config_free(NULL);
	ck_assert_int_eq(config_init(&c), 0);
	config_free(&c);
	config_free(&c);
	ck_assert_ptr_null(c.socket_path);
}
END_TEST

/* A CA file without a PEM certificate is an error, not a silent no-op. */
START_TEST(test_ca_file_must_be_pem)
{
	write_file("junk.pem", "this is not a certificate\n");
	ck_assert_int_eq(load_str("[platform]\nurl = ws://h/deepstream\n"
	                          "caFile = junk.pem\n"),
	                 -EINVAL);
	ck_assert_ptr_nonnull(strstr(err, "dsd.conf:3"));
	ck_assert_ptr_nonnull(strstr(err, "no PEM certificate"));
}
END_TEST

/*
 * A FIFO (or any file that is not regular) named as a config file, a
 * drop-in, an authFile or a caFile must be refused at once: dsd reads them
 * on its only thread, and an open() or read() that waits for a writer
 * would freeze it (no IPC replies, no heartbeats).  These tests run in
 * their own TCase with a short timeout, so a blocking open fails them.
 */
static const char *make_fifo(const char *rel)
{
	static char path[PATH_MAX];

	snprintf(path, sizeof(path), "%s/%s", tmpdir, rel);
	ck_assert_int_eq(mkfifo(path, 0600), 0);
	return path;
}

static void expect_not_regular(const char *what, const char *path)
{
	char want[PATH_MAX + 64];

	snprintf(want, sizeof(want), "%s\"%s\": not a regular file", what,
	         path);
	if (!*what)
		snprintf(want, sizeof(want), "%s: not a regular file", path);
	ck_assert_msg(strstr(err, want), "\"%s\" not in \"%s\"", want, err);
}

START_TEST(test_fifo_config)
{
	const char *path = make_fifo("fifo.conf");

	ck_assert_int_eq(config_load_file(&cfg, path, err, sizeof(err)),
	                 -EINVAL);
	expect_not_regular("", path);
	ck_assert_int_eq(config_load(&cfg, path, err, sizeof(err)), -EINVAL);
	expect_not_regular("", path);
}
END_TEST

START_TEST(test_fifo_dropin)
{
	char main_path[PATH_MAX];

	snprintf(main_path, sizeof(main_path), "%s",
	         write_file("dsd.conf", "[platform]\nurl = ws://h/ds\n"));
	make_dir("dsd.conf.d");
	const char *fifo = make_fifo("dsd.conf.d/10-fifo.conf");
	ck_assert_int_eq(config_load(&cfg, main_path, err, sizeof(err)),
	                 -EINVAL);
	expect_not_regular("", fifo);
}
END_TEST

START_TEST(test_fifo_auth_file)
{
	const char *fifo = make_fifo("auth.json");

	ck_assert_int_eq(load_str("[platform]\nauthFile = auth.json\n"),
	                 -EINVAL);
	ck_assert_ptr_nonnull(strstr(err, "dsd.conf:2: "));
	expect_not_regular("authFile ", fifo);

	/* Through $CREDENTIALS_DIRECTORY too. */
	setenv("CREDENTIALS_DIRECTORY", tmpdir, 1);
	ck_assert_int_eq(load_str("[platform]\nauthFile = auth.json\n"),
	                 -EINVAL);
	expect_not_regular("authFile ", fifo);
	unsetenv("CREDENTIALS_DIRECTORY");
}
END_TEST

START_TEST(test_fifo_ca_file)
{
	const char *fifo = make_fifo("ca.pem");

	ck_assert_int_eq(load_str("[platform]\nurl = wss://h/ds\n"
	                          "caFile = ca.pem\n"),
	                 -EINVAL);
	ck_assert_ptr_nonnull(strstr(err, "dsd.conf:3: "));
	expect_not_regular("caFile ", fifo);
}
END_TEST

/* A config file (or drop-in) is at most CONFIG_FILE_MAX bytes. */
START_TEST(test_config_file_size)
{
	size_t max = CONFIG_FILE_MAX;
	char *text = malloc(max + 2), *line;
	size_t len;

	ck_assert_ptr_nonnull(text);
	/* Comment lines up to exactly the limit; then one byte more. */
	strcpy(text, "[platform]\nurl = ws://h/ds\n");
	len = strlen(text);
	while (len < max) {
		size_t n = max - len < 1000 ? max - len : 1000;

		line = text + len;
		memset(line, '#', n);
		line[n - 1] = '\n';
		len += n;
	}
	text[len] = '\0';
	ck_assert_uint_eq(strlen(text), max);
	ck_assert_int_eq(load_str(text), 0);
	ck_assert_str_eq(cfg.url, "ws://h/ds");

	config_free(&cfg);
	ck_assert_int_eq(config_init(&cfg), 0);
	strcat(text, "#");
	ck_assert_int_eq(load_str(text), -EINVAL);
	ck_assert_ptr_nonnull(strstr(err, "larger than"));
	free(text);
}
END_TEST

/* proxy: kept as written when valid; an error names the key and line but
 * never quotes the value (it may hold a password). */
START_TEST(test_proxy)
{
	ck_assert_int_eq(load_str("[platform]\n"
	                          "proxy = http://u:pw@proxy.test:3128\n"),
	                 0);
	ck_assert_str_eq(cfg.proxy, "http://u:pw@proxy.test:3128");
	expect_error("[platform]\nproxy = http://u:hunter2@proxy.test\n", 2,
	             "proxy: the proxy's port is required");
	ck_assert_ptr_null(strstr(err, "hunter2"));
	expect_error("[platform]\nproxy = https://u:hunter2@p:1\n", 2,
	             "scheme is not http://");
	ck_assert_ptr_null(strstr(err, "hunter2"));
}
END_TEST

/* certFile and keyFile: a missing file is an error with its line; one
 * without the other is refused once all files are read. */
START_TEST(test_client_cert_paths)
{
	char text[PATH_MAX + 64];

	expect_error("[platform]\ncertFile = no-such.pem\n", 2, "certFile \"");
	ck_assert_ptr_nonnull(strstr(err, "No such file or directory"));
	snprintf(text, sizeof(text),
	         "[platform]\nurl = wss://h/\nkeyFile = %s\n",
	         write_file("k.pem", "not a key"));
	config_free(&cfg);
	ck_assert_int_eq(config_init(&cfg), 0);
	ck_assert_int_eq(load_str(text), 0);
	ck_assert_int_eq(config_finish(&cfg, err, sizeof(err)), -EINVAL);
	ck_assert_str_eq(err, "[platform] keyFile without certFile: a client "
	                      "certificate needs both");
}
END_TEST

/* config_load_buffer() reads text as config_load_file() reads a file. */
START_TEST(test_load_buffer)
{
	static const char text[] = "[platform]\nurl = ws://h/ds\n"
	                           "authFile = a.json\n[queue]\nmaxMessages "
	                           "= 7";
	char path[PATH_MAX], want[PATH_MAX + 64];

	write_file("a.json", "{\"u\":1}");
	snprintf(path, sizeof(path), "%s/virtual.conf", tmpdir);
	ck_assert_int_eq(config_load_buffer(&cfg, path, text, strlen(text), err,
	                                    sizeof(err)),
	                 0);
	ck_assert_str_eq(cfg.url, "ws://h/ds");
	ck_assert_str_eq(cfg.auth_json, "{\"u\":1}");
	ck_assert_uint_eq(cfg.queue_max_messages, 7);

	/* Not NUL-terminated: only len bytes are read. */
	ck_assert_int_eq(config_load_buffer(&cfg, path,
	                                    "[ipc]\nmaxClients = 12", 20, err,
	                                    sizeof(err)),
	                 0);
	ck_assert_uint_eq(cfg.max_clients, 1);
	ck_assert_int_eq(config_load_buffer(&cfg, path, "[ipc]\nx\0y", 9, err,
	                                    sizeof(err)),
	                 -EINVAL);
	snprintf(want, sizeof(want), "%s:2: NUL byte in line", path);
	ck_assert_str_eq(err, want);
	ck_assert_int_eq(
	        config_load_buffer(&cfg, path, "", 0, err, sizeof(err)), 0);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("config");
	TCase *tc = tcase_create("core");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, test_defaults);
	tcase_add_test(tc, test_every_key);
	tcase_add_test(tc, test_keys_list);
	tcase_add_test(tc, test_metrics_listen);
	tcase_add_test(tc, test_spool_keys);
	tcase_add_test(tc, test_syntax);
	tcase_add_test(tc, test_line_length);
	tcase_add_test(tc, test_errors);
	tcase_add_test(tc, test_error_escaping_and_secrets);
	tcase_add_test(tc, test_nul_byte);
	tcase_add_test(tc, test_unreadable);
	tcase_add_test(tc, test_infinity);
	tcase_add_test(tc, test_bounds);
	tcase_add_test(tc, test_auth_file);
	tcase_add_test(tc, test_auth_file_size);
	tcase_add_test(tc, test_dropins);
	tcase_add_test(tc, test_dropin_url_only_and_missing_url);
	tcase_add_test(tc, test_free_safe);
	tcase_add_test(tc, test_ca_file_must_be_pem);
	suite_add_tcase(s, tc);

	/* A blocking open() of a FIFO must fail these, not hang the suite. */
	TCase *nonreg = tcase_create("not-regular");
	tcase_add_checked_fixture(nonreg, setup, teardown);
	tcase_set_timeout(nonreg, 5);
	tcase_add_test(nonreg, test_fifo_config);
	tcase_add_test(nonreg, test_fifo_dropin);
	tcase_add_test(nonreg, test_fifo_auth_file);
	tcase_add_test(nonreg, test_fifo_ca_file);
	tcase_add_test(nonreg, test_config_file_size);
	tcase_add_test(nonreg, test_load_buffer);
	tcase_add_test(nonreg, test_proxy);
	tcase_add_test(nonreg, test_client_cert_paths);
	suite_add_tcase(s, nonreg);
	return check_run(s);
}

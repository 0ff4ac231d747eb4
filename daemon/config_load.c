/*
 * dsd.conf parsing.  Every key is one row of config_table below: its
 * section, its name, the parser for its value and where the value goes.
 * Adding an option means adding a row (and documenting it in dsd.conf(5)).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <jansson.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "config.h"
#include "config_parser.h"
#include "log.h"
#include "readfile.h"
#include "url.h"

#define MS_HOUR (60u * 60 * 1000)
#define MS_DAY  (24 * MS_HOUR)
#define KIB     1024ull
#define MIB     (1024 * KIB)
#define GIB     (1024 * MIB)

static int parse_auth(struct parser *, const struct config_item *, const char *,
                      struct dsd_config *);
static int parse_auth_file(struct parser *, const struct config_item *,
                           const char *, struct dsd_config *);
static int parse_ca_file(struct parser *, const struct config_item *,
                         const char *, struct dsd_config *);
static int parse_spool(struct parser *, const struct config_item *,
                       const char *, struct dsd_config *);

#define CA_SCAN_MAX (64 * 1024)

/*
 * The one table.  X(section, key, parser, field, min, max); it expands into
 * the parse table, the key list and an index per key.
 */
#define CONFIG_TABLE(X)                                                        \
	X(platform, url, config_parse_url, url, 0, 0)                          \
	X(platform, auth, parse_auth, auth_json, 0, 0)                         \
	X(platform, authFile, parse_auth_file, auth_json, 0, 0)                \
	X(platform, caFile, parse_ca_file, ca_file, 0, 0)                      \
	X(platform, certFile, config_parse_pem_path, cert_file, 0, 0)          \
	X(platform, keyFile, config_parse_pem_path, key_file, 0, 0)            \
	X(platform, proxy, config_parse_proxy, proxy, 0, 0)                    \
	X(platform, reconnectIntervalIncrement, config_parse_u32,              \
	  reconnect_interval_increment, 100, MS_HOUR)                          \
	X(platform, maxReconnectInterval, config_parse_u32,                    \
	  max_reconnect_interval, 100, MS_DAY)                                 \
	X(platform, maxReconnectAttempts, config_parse_u32_or_infinity,        \
	  max_reconnect_attempts, 1, UINT32_MAX - 1)                           \
	X(platform, heartbeatInterval, config_parse_u32, heartbeat_interval,   \
	  100, MS_HOUR)                                                        \
	X(platform, restartAfterError, config_parse_u32_or_never,              \
	  restart_after_error, 100, MS_DAY)                                    \
	X(platform, reconnectJitter, config_parse_u32, reconnect_jitter, 0,    \
	  100)                                                                 \
	X(platform, followNetwork, config_parse_bool, follow_network, 0, 0)    \
	X(ipc, socket, config_parse_socket, socket_path, 0, 0)                 \
	X(ipc, maxClients, config_parse_u32, max_clients, 1, 1024 * 1024)      \
	X(ipc, maxSubscriptionsPerClient, config_parse_u32,                    \
	  max_subscriptions_per_client, 1, 1024 * 1024)                        \
	X(ipc, clientBuffer, config_parse_u32, client_buffer, 2 * MIB, GIB)    \
	X(ipc, clientBufferTotal, config_parse_u64, client_buffer_total,       \
	  4 * MIB, 64 * GIB)                                                   \
	X(ipc, socketGroup, config_parse_group, socket_group, 0, 0)            \
	X(ipc, adminGroup, config_parse_group, admin_group, 0, 0)              \
	X(ipc, reservedAdminClients, config_parse_u32, reserved_admin_clients, \
	  0, 1024)                                                             \
	X(ipc, maxClientsPerUser, config_parse_u32, max_clients_per_user, 1,   \
	  1024 * 1024)                                                         \
	X(ipc, maxSubscriptionsPerUser, config_parse_u32,                      \
	  max_subscriptions_per_user, 1, 1024 * 1024 * 1024)                   \
	X(queue, maxMessages, config_parse_u32, queue_max_messages, 1,         \
	  100000000)                                                           \
	X(queue, maxBytes, config_parse_u64, queue_max_bytes, 4 * KIB,         \
	  64 * GIB)                                                            \
	X(queue, overflow, config_parse_overflow, queue_overflow, 0, 0)        \
	X(queue, maxMessagesPerUser, config_parse_u32,                         \
	  queue_max_messages_per_user, 1, 100000000)                           \
	X(queue, maxBytesPerUser, config_parse_u64, queue_max_bytes_per_user,  \
	  1, 64 * GIB)                                                         \
	X(queue, shutdownTimeout, config_parse_u32, shutdown_timeout, 0,       \
	  MS_HOUR)                                                             \
	X(queue, spool, parse_spool, queue_spool, 0, 0)                        \
	X(queue, spoolSync, config_parse_spool_sync, queue_spool_sync, 0, 0)   \
	X(queue, weights, config_parse_weights, queue_weights, 1, 64)          \
	X(acl, emit, config_parse_acl, acl_emit, 0, 0)                         \
	X(acl, subscribe, config_parse_acl, acl_subscribe, 0, 0)               \
	X(metrics, listen, config_parse_listen, metrics_listen, 0, 0)

#define X_ITEM(sec, key, fn, field, lo, hi)                                    \
	{#sec, #key, fn, offsetof(struct dsd_config, field), lo, hi},
#define X_NAME(sec, key, fn, field, lo, hi)  #sec "." #key,
#define X_INDEX(sec, key, fn, field, lo, hi) ITEM_##sec##_##key,

static const struct config_item config_table[] = {CONFIG_TABLE(X_ITEM)};
static const char *const config_key_names[] = {CONFIG_TABLE(X_NAME) NULL};
enum { CONFIG_TABLE(X_INDEX) ITEM_COUNT };

_Static_assert(ITEM_COUNT <= CONFIG_ITEMS_MAX, "CONFIG_ITEMS_MAX too small");

const char *const *config_keys(void)
{
	return config_key_names;
}

static int auth_from_json(struct parser *p, const char *what, const char *text,
                          size_t len, char **ret)
{
	json_error_t jerr;
	json_t *j = json_loadb(text, len,
	                       JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &jerr);
	char *s;

	if (!j)
		return config_perr(p,
		                   "%s: invalid JSON (or a duplicate key) at "
		                   "line %d, column %d",
		                   what, jerr.line, jerr.column);
	if (!json_is_object(j)) {
		json_decref(j);
		return config_perr(p, "%s: must be a JSON object", what);
	}
	s = json_dumps(j, JSON_COMPACT);
	json_decref(j);
	if (!s)
		return config_perr_nomem(p);
	*ret = s;
	return 0;
}

static int parse_auth(struct parser *p, const struct config_item *it,
                      const char *value, struct dsd_config *c)
{
	char *s;
	int r;

	if (p->seen[ITEM_platform_authFile])
		return config_perr(
		        p,
		        "auth and authFile exclude each other (authFile "
		        "is on line %u)",
		        p->seen[ITEM_platform_authFile]);
	r = auth_from_json(p, it->key, value, strlen(value), &s);
	if (r < 0)
		return r;
	free(c->auth_json);
	c->auth_json = s;
	free(c->auth_file);
	c->auth_file = NULL;
	return 0;
}

/* dir + "/" + rel into a new string. */
static int join_path(struct parser *p, const char *dir, const char *rel,
                     char **ret)
{
	char q[256];
	int n;

	if (rel[0] == '/')
		n = snprintf(NULL, 0, "%s", rel);
	else
		n = snprintf(NULL, 0, "%s/%s", dir, rel);
	if (n < 0 || n >= PATH_MAX)
		return config_perr(p, "path too long: \"%s\"",
		                   config_quote(rel, q, sizeof(q)));
	if (rel[0] == '/')
		*ret = strdup(rel);
	else if (asprintf(ret, "%s/%s", dir, rel) < 0)
		*ret = NULL;
	if (!*ret)
		return config_perr_nomem(p);
	return 0;
}

static int read_auth_file(struct parser *p, const char *path, char **ret)
{
	char q[256], *buf = NULL;
	size_t len = 0, size = 0;
	int r;

	r = readfile_read(path, CONFIG_AUTH_FILE_MAX, &buf, &len, &size);
	if (r == -ENOMEM)
		return config_perr_nomem(p);
	if (r == -EFBIG)
		return config_perr(p, "authFile \"%s\": larger than %u bytes",
		                   config_quote(path, q, sizeof(q)),
		                   CONFIG_AUTH_FILE_MAX);
	if (r < 0)
		return config_perr(p, "authFile \"%s\": %s",
		                   config_quote(path, q, sizeof(q)),
		                   readfile_error(r));
	snprintf(q, sizeof(q), "authFile \"");
	config_quote(path, q + strlen(q), sizeof(q) - strlen(q) - 1);
	strcat(q, "\"");
	r = auth_from_json(p, q, buf, len, ret);
	/* It holds a secret: do not leave it in freed memory. */
	readfile_free(buf, size);
	return r;
}

static int parse_auth_file(struct parser *p, const struct config_item *it,
                           const char *value, struct dsd_config *c)
{
	const char *creds = getenv("CREDENTIALS_DIRECTORY");
	char *path = NULL, *json = NULL;
	int r;

	(void)it;
	if (p->seen[ITEM_platform_auth])
		return config_perr(
		        p,
		        "auth and authFile exclude each other (auth is "
		        "on line %u)",
		        p->seen[ITEM_platform_auth]);
	/* systemd's LoadCredential= puts secrets there; prefer it. */
	if (value[0] != '/' && creds && *creds) {
		r = join_path(p, creds, value, &path);
		if (r < 0)
			return r;
		if (access(path, F_OK) < 0) {
			free(path);
			path = NULL;
		}
	}
	if (!path) {
		r = join_path(p, p->dir, value, &path);
		if (r < 0)
			return r;
	}
	r = read_auth_file(p, path, &json);
	if (r < 0) {
		free(path);
		return r;
	}
	free(c->auth_json);
	c->auth_json = json;
	free(c->auth_file);
	c->auth_file = path;
	return 0;
}

/* 1 when the file holds a PEM certificate near its start, 0 when not. */
static int has_pem_certificate(int fd)
{
	static const char marker[] = "-----BEGIN CERTIFICATE-----";
	char *buf = malloc(CA_SCAN_MAX + 1);
	size_t len = 0;
	ssize_t n;
	int r;

	if (buf == NULL)
		return -ENOMEM;
	while (len < CA_SCAN_MAX &&
	       (n = read(fd, buf + len, CA_SCAN_MAX - len)) != 0) {
		if (n < 0) {
			if (errno == EINTR)
				continue;
			r = -errno;
			free(buf);
			return r;
		}
		len += (size_t)n;
	}
	buf[len] = '\0';
	r = memmem(buf, len, marker, sizeof(marker) - 1) != NULL;
	free(buf);
	return r;
}

static int parse_ca_file(struct parser *p, const struct config_item *it,
                         const char *value, struct dsd_config *c)
{
	struct stat st;
	char *path, q[256];
	int fd, r;

	r = join_path(p, p->dir, value, &path);
	if (r < 0)
		return r;
	fd = readfile_open(path, &st);
	if (fd < 0) {
		r = config_perr(p, "%s \"%s\": %s", it->key,
		                config_quote(path, q, sizeof(q)),
		                readfile_error(fd));
		free(path);
		return r;
	}
	/* libwebsockets only logs a CA file it cannot use and goes on
	 * trusting the system store alone: catch the usual mistake here. */
	r = has_pem_certificate(fd);
	close(fd);
	if (r <= 0) {
		r = config_perr(p, "%s \"%s\": %s", it->key,
		                config_quote(path, q, sizeof(q)),
		                r < 0 ? strerror(-r)
		                      : "no PEM certificate (-----BEGIN "
		                        "CERTIFICATE-----) "
		                        "in its first 64 KiB");
		free(path);
		return r;
	}
	free(c->ca_file);
	c->ca_file = path;
	return 0;
}

/* The spool's file: relative to the config file's directory, like caFile.
 * It need not exist (dsd creates it); a file that cannot be opened is not
 * a configuration error either: dsd then serves from memory and says why
 * (the disk may be full or the file damaged, which a restart cannot fix by
 * refusing to start). */
static int parse_spool(struct parser *p, const struct config_item *it,
                       const char *value, struct dsd_config *c)
{
	char *path;
	int r;

	r = join_path(p, p->dir, value, &path);
	if (r < 0)
		return r;
	free(*(char **)config_field(c, it));
	*(char **)config_field(c, it) = path;
	return 0;
}

static char *trim(char *s)
{
	char *e;

	while (*s == ' ' || *s == '\t')
		s++;
	e = s + strlen(s);
	while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\r'))
		e--;
	*e = '\0';
	return s;
}

static bool known_section(const char *name, const char **ret)
{
	for (size_t i = 0; i < ITEM_COUNT; i++)
		if (strcmp(config_table[i].section, name) == 0) {
			*ret = config_table[i].section;
			return true;
		}
	return false;
}

static int parse_line(struct parser *p, char *line, struct dsd_config *c)
{
	char *s = trim(line), *eq, *key, *value, q[128];
	size_t i;

	for (char *t = s; *t; t++)
		if (((unsigned char)*t < ' ' && *t != '\t') || *t == 0x7f)
			return config_perr(p, "control character in line");
	if (*s == '\0' || *s == '#' || *s == ';')
		return 0;

	if (*s == '[') {
		size_t n = strlen(s);
		if (s[n - 1] != ']')
			return config_perr(p, "invalid section header \"%s\"",
			                   config_quote(s, q, sizeof(q)));
		s[n - 1] = '\0';
		s = trim(s + 1);
		if (!known_section(s, &p->section))
			return config_perr(p, "unknown section [%s]",
			                   config_quote(s, q, sizeof(q)));
		return 0;
	}

	eq = strchr(s, '=');
	if (!eq)
		return config_perr(p, "missing '=' in \"%s\"",
		                   config_quote(s, q, sizeof(q)));
	*eq = '\0';
	key = trim(s);
	value = trim(eq + 1);
	if (*key == '\0')
		return config_perr(p, "missing key before '='");
	if (!p->section)
		return config_perr(p, "key \"%s\" outside of a section",
		                   config_quote(key, q, sizeof(q)));
	for (i = 0; i < ITEM_COUNT; i++)
		if (config_table[i].section == p->section &&
		    strcmp(config_table[i].key, key) == 0)
			break;
	if (i == ITEM_COUNT)
		return config_perr(p, "unknown key \"%s\" in [%s]",
		                   config_quote(key, q, sizeof(q)), p->section);
	if (p->seen[i])
		return config_perr(p, "duplicate key %s (first on line %u)",
		                   key, p->seen[i]);
	if (*value == '\0')
		return config_perr(p, "%s: empty value", key);
	int r = config_table[i].parse(p, &config_table[i], value, c);
	if (r < 0)
		return r;
	p->seen[i] = p->line;
	return 0;
}

/*
 * Copies the line at text[*pos] (up to '\n' or the end) into buf
 * (CONFIG_LINE_MAX + 1 bytes) without its '\n' and moves *pos past it.
 * Returns 1, 0 at the end of the text, -E2BIG for a long line or -EILSEQ
 * for a NUL byte (whichever comes first in the line).
 */
static int next_line(const char *text, size_t len, size_t *pos, char *buf)
{
	size_t n = 0, i = *pos;

	if (i >= len)
		return 0;
	for (; i < len && text[i] != '\n'; i++) {
		if (text[i] == '\0')
			return -EILSEQ;
		if (n == CONFIG_LINE_MAX)
			return -E2BIG;
		buf[n++] = text[i];
	}
	buf[n] = '\0';
	*pos = i < len ? i + 1 : i;
	return 1;
}

int config_load_buffer(struct dsd_config *c, const char *path, const char *text,
                       size_t len, char *err, size_t errlen)
{
	struct parser *p;
	char *line = NULL, q[256];
	size_t pos = 0;
	int r;

	/* The parser and the line buffer are a few KiB: keep them off the
	 * stack of whoever calls us. */
	p = calloc(1, sizeof(*p));
	line = malloc(CONFIG_LINE_MAX + 1);
	if (!p || !line) {
		config_set_err(err, errlen, "%s: out of memory",
		               config_quote(path, q, sizeof(q)));
		r = -ENOMEM;
		goto out;
	}
	p->path = path;
	p->err = err;
	p->errlen = errlen;
	const char *slash = strrchr(path, '/');
	if (!slash)
		snprintf(p->dir, sizeof(p->dir), ".");
	else if (slash == path)
		snprintf(p->dir, sizeof(p->dir), "/");
	else
		snprintf(p->dir, sizeof(p->dir), "%.*s", (int)(slash - path),
		         path);

	for (;;) {
		p->line++;
		r = next_line(text, len, &pos, line);
		if (r == 0)
			break;
		if (r == -E2BIG)
			r = config_perr(p, "line longer than %u bytes",
			                CONFIG_LINE_MAX);
		else if (r == -EILSEQ)
			r = config_perr(p, "NUL byte in line");
		else
			r = parse_line(p, line, c);
		if (r < 0)
			goto out;
	}
	r = 0;
out:
	if (line)
		explicit_bzero(line, CONFIG_LINE_MAX + 1);
	free(line);
	free(p);
	return r;
}

/* The whole file is read into memory first (it is small: CONFIG_FILE_MAX),
 * so parsing never waits on the file. */
int config_load_file(struct dsd_config *c, const char *path, char *err,
                     size_t errlen)
{
	char *text = NULL, q[256];
	size_t len = 0, size = 0;
	int r;

	r = readfile_read(path, CONFIG_FILE_MAX, &text, &len, &size);
	if (r == -ENOMEM) {
		config_set_err(err, errlen, "%s: out of memory",
		               config_quote(path, q, sizeof(q)));
		return -ENOMEM;
	}
	if (r == -EFBIG) {
		config_set_err(err, errlen, "%s: larger than %u bytes",
		               config_quote(path, q, sizeof(q)),
		               CONFIG_FILE_MAX);
		return -EINVAL;
	}
	if (r < 0) {
		config_set_err(err, errlen, "%s: %s",
		               config_quote(path, q, sizeof(q)),
		               readfile_error(r));
		return -EINVAL;
	}
	r = config_load_buffer(c, path, text, len, err, errlen);
	/* An inline auth = is a secret too. */
	readfile_free(text, size);
	return r;
}

int config_finish(struct dsd_config *c, char *err, size_t errlen)
{
	if (!c->url) {
		config_set_err(err, errlen,
		               "no url in [platform]: the deepstream "
		               "server to connect to is required");
		return -EINVAL;
	}
	return config_check_client_cert(c, err, errlen);
}

static int dropin_filter(const struct dirent *d)
{
	size_t n = strlen(d->d_name);

	/* Hidden files are left out: editors and package managers leave
	 * their temporary copies there. */
	return d->d_name[0] != '.' && n > 5 &&
	       strcmp(d->d_name + n - 5, ".conf") == 0;
}

static int dropin_compare(const struct dirent **a, const struct dirent **b)
{
	return strcmp((*a)->d_name, (*b)->d_name);
}

int config_load(struct dsd_config *c, const char *main_path, char *err,
                size_t errlen)
{
	struct dirent **list = NULL;
	char dir[PATH_MAX], file[PATH_MAX], q[256];
	int n, r;

	r = config_load_file(c, main_path, err, errlen);
	if (r < 0)
		return r;

	r = snprintf(dir, sizeof(dir), "%s.d", main_path);
	if (r < 0 || (size_t)r >= sizeof(dir)) {
		config_set_err(err, errlen, "%s: path too long",
		               config_quote(main_path, q, sizeof(q)));
		return -EINVAL;
	}
	n = scandir(dir, &list, dropin_filter, dropin_compare);
	if (n < 0) {
		if (errno == ENOENT)
			return config_finish(c, err, errlen);
		config_set_err(err, errlen, "%s: %s",
		               config_quote(dir, q, sizeof(q)),
		               strerror(errno));
		return -EINVAL;
	}
	if (n > CONFIG_DROPIN_MAX) {
		config_set_err(err, errlen, "%s: more than %d *.conf files",
		               config_quote(dir, q, sizeof(q)),
		               CONFIG_DROPIN_MAX);
		r = -EINVAL;
		goto out;
	}
	r = 0;
	for (int i = 0; i < n && r >= 0; i++) {
		int k = snprintf(file, sizeof(file), "%s/%s", dir,
		                 list[i]->d_name);
		if (k < 0 || (size_t)k >= sizeof(file)) {
			config_set_err(err, errlen, "%s: path too long",
			               config_quote(dir, q, sizeof(q)));
			r = -EINVAL;
		} else {
			r = config_load_file(c, file, err, errlen);
		}
	}
	if (r >= 0)
		r = config_finish(c, err, errlen);
out:
	for (int i = 0; i < n; i++)
		free(list[i]);
	free(list);
	return r;
}

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
#include "log.h"
#include "url.h"

#define MS_HOUR (60u * 60 * 1000)
#define MS_DAY  (24 * MS_HOUR)
#define KIB     1024ull
#define MIB     (1024 * KIB)
#define GIB     (1024 * MIB)

struct parser;
struct config_item;

typedef int (*config_parse_fn)(struct parser *p, const struct config_item *it,
                               const char *value, struct dsd_config *c);

struct config_item {
	const char *section;
	const char *key;
	config_parse_fn parse;
	size_t offset;
	uint64_t min, max; /* for numbers */
};

static int parse_url(struct parser *, const struct config_item *, const char *,
                     struct dsd_config *);
static int parse_auth(struct parser *, const struct config_item *, const char *,
                      struct dsd_config *);
static int parse_auth_file(struct parser *, const struct config_item *,
                           const char *, struct dsd_config *);
static int parse_ca_file(struct parser *, const struct config_item *,
                         const char *, struct dsd_config *);
static int parse_u32(struct parser *, const struct config_item *, const char *,
                     struct dsd_config *);
static int parse_u32_or_never(struct parser *, const struct config_item *,
                              const char *, struct dsd_config *);
static int parse_u32_or_infinity(struct parser *, const struct config_item *,
                                 const char *, struct dsd_config *);
static int parse_u64(struct parser *, const struct config_item *, const char *,
                     struct dsd_config *);
static int parse_socket(struct parser *, const struct config_item *,
                        const char *, struct dsd_config *);
static int parse_overflow(struct parser *, const struct config_item *,
                          const char *, struct dsd_config *);
static int parse_group(struct parser *, const struct config_item *,
                       const char *, struct dsd_config *);
static int parse_acl(struct parser *, const struct config_item *, const char *,
                     struct dsd_config *);

#define CA_SCAN_MAX (64 * 1024)

/*
 * The one table.  X(section, key, parser, field, min, max); it expands into
 * the parse table, the key list and an index per key.
 */
#define CONFIG_TABLE(X)                                                        \
	X(platform, url, parse_url, url, 0, 0)                                 \
	X(platform, auth, parse_auth, auth_json, 0, 0)                         \
	X(platform, authFile, parse_auth_file, auth_json, 0, 0)                \
	X(platform, caFile, parse_ca_file, ca_file, 0, 0)                      \
	X(platform, reconnectIntervalIncrement, parse_u32,                     \
	  reconnect_interval_increment, 100, MS_HOUR)                          \
	X(platform, maxReconnectInterval, parse_u32, max_reconnect_interval,   \
	  100, MS_DAY)                                                         \
	X(platform, maxReconnectAttempts, parse_u32_or_infinity,               \
	  max_reconnect_attempts, 1, UINT32_MAX - 1)                           \
	X(platform, heartbeatInterval, parse_u32, heartbeat_interval, 100,     \
	  MS_HOUR)                                                             \
	X(platform, restartAfterError, parse_u32_or_never,                     \
	  restart_after_error, 100, MS_DAY)                                    \
	X(ipc, socket, parse_socket, socket_path, 0, 0)                        \
	X(ipc, maxClients, parse_u32, max_clients, 1, 1024 * 1024)             \
	X(ipc, maxSubscriptionsPerClient, parse_u32,                           \
	  max_subscriptions_per_client, 1, 1024 * 1024)                        \
	X(ipc, clientBuffer, parse_u32, client_buffer, 2 * MIB, GIB)           \
	X(ipc, clientBufferTotal, parse_u64, client_buffer_total, 4 * MIB,     \
	  64 * GIB)                                                            \
	X(ipc, socketGroup, parse_group, socket_group, 0, 0)                   \
	X(ipc, adminGroup, parse_group, admin_group, 0, 0)                     \
	X(ipc, reservedAdminClients, parse_u32, reserved_admin_clients, 0,     \
	  1024)                                                                \
	X(ipc, maxClientsPerUser, parse_u32, max_clients_per_user, 1,          \
	  1024 * 1024)                                                         \
	X(ipc, maxSubscriptionsPerUser, parse_u32, max_subscriptions_per_user, \
	  1, 1024 * 1024 * 1024)                                               \
	X(queue, maxMessages, parse_u32, queue_max_messages, 1, 100000000)     \
	X(queue, maxBytes, parse_u64, queue_max_bytes, 4 * KIB, 64 * GIB)      \
	X(queue, overflow, parse_overflow, queue_overflow, 0, 0)               \
	X(queue, maxMessagesPerUser, parse_u32, queue_max_messages_per_user,   \
	  1, 100000000)                                                        \
	X(queue, maxBytesPerUser, parse_u64, queue_max_bytes_per_user, 1,      \
	  64 * GIB)                                                            \
	X(acl, emit, parse_acl, acl_emit, 0, 0)                                \
	X(acl, subscribe, parse_acl, acl_subscribe, 0, 0)

#define X_ITEM(sec, key, fn, field, lo, hi)                                    \
	{#sec, #key, fn, offsetof(struct dsd_config, field), lo, hi},
#define X_NAME(sec, key, fn, field, lo, hi)  #sec "." #key,
#define X_INDEX(sec, key, fn, field, lo, hi) ITEM_##sec##_##key,

static const struct config_item config_table[] = {CONFIG_TABLE(X_ITEM)};
static const char *const config_key_names[] = {CONFIG_TABLE(X_NAME) NULL};
enum { CONFIG_TABLE(X_INDEX) ITEM_COUNT };

/* The state of reading one file. */
struct parser {
	const char *path;
	char dir[PATH_MAX]; /* the file's directory, for relative paths */
	unsigned line;
	const char *section;
	unsigned seen[ITEM_COUNT]; /* line of each key in this file, 0: unset */
	char *err;
	size_t errlen;
};

const char *const *config_keys(void)
{
	return config_key_names;
}

static const char *quote(const char *s, char *buf, size_t buflen)
{
	return log_escape(s, strlen(s), buf, buflen);
}

static void set_err(char *err, size_t errlen, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));
static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (!err || errlen == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

/* "FILE:LINE: message"; returns -EINVAL for the caller to pass up. */
static int perr(struct parser *p, const char *fmt, ...)
        __attribute__((format(printf, 2, 3)));
static int perr(struct parser *p, const char *fmt, ...)
{
	char msg[512], file[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	set_err(p->err, p->errlen, "%s:%u: %s",
	        quote(p->path, file, sizeof(file)), p->line, msg);
	return -EINVAL;
}

static int perr_nomem(struct parser *p)
{
	perr(p, "out of memory");
	return -ENOMEM;
}

static void *field_of(struct dsd_config *c, const struct config_item *it)
{
	return (char *)c + it->offset;
}

/* Replaces the string at *field by a copy of value. */
static int set_string(struct parser *p, char **field, const char *value)
{
	char *s = strdup(value);

	if (!s)
		return perr_nomem(p);
	free(*field);
	*field = s;
	return 0;
}

/* Plain decimal digits only: no sign, no spaces, no suffixes. */
static int parse_digits(const char *s, uint64_t *ret)
{
	uint64_t v = 0;

	if (!*s)
		return -EINVAL;
	for (; *s; s++) {
		if (*s < '0' || *s > '9')
			return -EINVAL;
		if (v > (UINT64_MAX - (uint64_t)(*s - '0')) / 10)
			return -ERANGE;
		v = v * 10 + (uint64_t)(*s - '0');
	}
	*ret = v;
	return 0;
}

static int parse_number(struct parser *p, const struct config_item *it,
                        const char *value, uint64_t *ret)
{
	char q[128];
	uint64_t v;
	int r = parse_digits(value, &v);

	if (r == -EINVAL)
		return perr(p, "%s: invalid number \"%s\"", it->key,
		            quote(value, q, sizeof(q)));
	if (r < 0 || v < it->min || v > it->max)
		return perr(p, "%s: \"%s\" is out of range %llu..%llu", it->key,
		            quote(value, q, sizeof(q)),
		            (unsigned long long)it->min,
		            (unsigned long long)it->max);
	*ret = v;
	return 0;
}

static int parse_u32(struct parser *p, const struct config_item *it,
                     const char *value, struct dsd_config *c)
{
	uint64_t v;
	int r = parse_number(p, it, value, &v);

	if (r < 0)
		return r;
	*(uint32_t *)field_of(c, it) = (uint32_t)v;
	return 0;
}

static int parse_u32_or_never(struct parser *p, const struct config_item *it,
                              const char *value, struct dsd_config *c)
{
	if (strcmp(value, "0") == 0) {
		*(uint32_t *)field_of(c, it) = 0;
		return 0;
	}
	return parse_u32(p, it, value, c);
}

static int parse_u32_or_infinity(struct parser *p, const struct config_item *it,
                                 const char *value, struct dsd_config *c)
{
	if (strcmp(value, "infinity") == 0) {
		*(uint32_t *)field_of(c, it) = CONFIG_INFINITE;
		return 0;
	}
	return parse_u32(p, it, value, c);
}

static int parse_u64(struct parser *p, const struct config_item *it,
                     const char *value, struct dsd_config *c)
{
	uint64_t v;
	int r = parse_number(p, it, value, &v);

	if (r < 0)
		return r;
	*(uint64_t *)field_of(c, it) = v;
	return 0;
}

static int parse_url(struct parser *p, const struct config_item *it,
                     const char *value, struct dsd_config *c)
{
	struct url u;
	const char *why;
	char q[256];

	if (url_parse(value, &u, &why) < 0)
		return perr(p, "%s: invalid URL \"%s\": %s", it->key,
		            quote(value, q, sizeof(q)), why);
	return set_string(p, field_of(c, it), value);
}

/*
 * Parses JSON that must be an object and returns it re-serialised compact,
 * so the platform only ever gets JSON that jansson accepted.  what names
 * the source in errors; the text itself is a secret and never shown (not
 * even jansson's error text, which quotes the input).
 */
static int auth_from_json(struct parser *p, const char *what, const char *text,
                          size_t len, char **ret)
{
	json_error_t jerr;
	json_t *j = json_loadb(text, len,
	                       JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &jerr);
	char *s;

	if (!j)
		return perr(p,
		            "%s: invalid JSON (or a duplicate key) at "
		            "line %d, column %d",
		            what, jerr.line, jerr.column);
	if (!json_is_object(j)) {
		json_decref(j);
		return perr(p, "%s: must be a JSON object", what);
	}
	s = json_dumps(j, JSON_COMPACT);
	json_decref(j);
	if (!s)
		return perr_nomem(p);
	*ret = s;
	return 0;
}

static int parse_auth(struct parser *p, const struct config_item *it,
                      const char *value, struct dsd_config *c)
{
	char *s;
	int r;

	if (p->seen[ITEM_platform_authFile])
		return perr(p,
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
		return perr(p, "path too long: \"%s\"",
		            quote(rel, q, sizeof(q)));
	if (rel[0] == '/')
		*ret = strdup(rel);
	else if (asprintf(ret, "%s/%s", dir, rel) < 0)
		*ret = NULL;
	if (!*ret)
		return perr_nomem(p);
	return 0;
}

/*
 * Opens path for reading, refusing anything but a regular file.  dsd reads
 * its files on its only thread: O_NONBLOCK makes the open() of a FIFO (or
 * a device) return at once instead of waiting for a writer, and the fstat()
 * then refuses it, so nothing named in a config can freeze the daemon.
 * O_NONBLOCK does not change how a regular file is read.
 */
static int open_regular(const char *path, struct stat *ret_st)
{
	int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);

	if (fd < 0)
		return -errno;
	if (fstat(fd, ret_st) < 0) {
		int r = -errno;
		close(fd);
		return r;
	}
	if (!S_ISREG(ret_st->st_mode)) {
		close(fd);
		return -EINVAL;
	}
	return fd;
}

static const char *open_error(int r)
{
	return r == -EINVAL ? "not a regular file" : strerror(-r);
}

/* Frees a buffer that may have held a secret (authFile, auth =). */
static void free_wiped(char *buf, size_t size)
{
	if (!buf)
		return;
	explicit_bzero(buf, size);
	free(buf);
}

/*
 * Reads the whole regular file path into a new NUL-terminated buffer of
 * *ret_size bytes (free it with free_wiped()).  Returns 0, -EINVAL (not a
 * regular file), -EFBIG (more than max bytes), -ENOMEM or another -errno.
 * The buffer is sized from fstat() and grows (wiping the old copy) only if
 * the file grew meanwhile, never past max + 2 bytes.
 */
static int read_regular(const char *path, size_t max, char **ret_buf,
                        size_t *ret_len, size_t *ret_size)
{
	struct stat st;
	size_t len = 0, size;
	char *buf, *grown;
	int fd, r = 0;

	fd = open_regular(path, &st);
	if (fd < 0)
		return fd;
	if ((uint64_t)st.st_size > max) {
		close(fd);
		return -EFBIG;
	}
	/* Room for one byte more than the file (to see its end, or that it
	 * grew) and the terminator. */
	size = (size_t)st.st_size + 2;
	buf = malloc(size);
	if (!buf) {
		close(fd);
		return -ENOMEM;
	}
	for (;;) {
		ssize_t n;

		if (len == size - 1) {
			size_t bigger = size * 2 < max + 2 ? size * 2 : max + 2;

			if (len > max) {
				r = -EFBIG;
				break;
			}
			grown = malloc(bigger);
			if (!grown) {
				r = -ENOMEM;
				break;
			}
			memcpy(grown, buf, len);
			free_wiped(buf, size);
			buf = grown;
			size = bigger;
		}
		n = read(fd, buf + len, size - 1 - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			r = -errno;
			break;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	close(fd);
	if (r == 0 && len > max)
		r = -EFBIG;
	if (r < 0) {
		free_wiped(buf, size);
		return r;
	}
	buf[len] = '\0';
	*ret_buf = buf;
	*ret_len = len;
	*ret_size = size;
	return 0;
}

static int read_auth_file(struct parser *p, const char *path, char **ret)
{
	char q[256], *buf = NULL;
	size_t len = 0, size = 0;
	int r;

	r = read_regular(path, CONFIG_AUTH_FILE_MAX, &buf, &len, &size);
	if (r == -ENOMEM)
		return perr_nomem(p);
	if (r == -EFBIG)
		return perr(p, "authFile \"%s\": larger than %u bytes",
		            quote(path, q, sizeof(q)), CONFIG_AUTH_FILE_MAX);
	if (r < 0)
		return perr(p, "authFile \"%s\": %s", quote(path, q, sizeof(q)),
		            open_error(r));
	snprintf(q, sizeof(q), "authFile \"");
	quote(path, q + strlen(q), sizeof(q) - strlen(q) - 1);
	strcat(q, "\"");
	r = auth_from_json(p, q, buf, len, ret);
	/* It holds a secret: do not leave it in freed memory. */
	free_wiped(buf, size);
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
		return perr(p,
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
	fd = open_regular(path, &st);
	if (fd < 0) {
		r = perr(p, "%s \"%s\": %s", it->key, quote(path, q, sizeof(q)),
		         open_error(fd));
		free(path);
		return r;
	}
	/* libwebsockets only logs a CA file it cannot use and goes on
	 * trusting the system store alone: catch the usual mistake here. */
	r = has_pem_certificate(fd);
	close(fd);
	if (r <= 0) {
		r = perr(p, "%s \"%s\": %s", it->key, quote(path, q, sizeof(q)),
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

static int parse_socket(struct parser *p, const struct config_item *it,
                        const char *value, struct dsd_config *c)
{
	char q[256];

	if (value[0] != '/')
		return perr(p, "%s: \"%s\" is not an absolute path", it->key,
		            quote(value, q, sizeof(q)));
	if (strlen(value) >= sizeof(((struct sockaddr_un *)0)->sun_path))
		return perr(p, "%s: path longer than %zu bytes", it->key,
		            sizeof(((struct sockaddr_un *)0)->sun_path) - 1);
	return set_string(p, field_of(c, it), value);
}

static int parse_overflow(struct parser *p, const struct config_item *it,
                          const char *value, struct dsd_config *c)
{
	enum queue_overflow *o = field_of(c, it);
	char q[128];

	if (strcmp(value, "reject") == 0)
		*o = QUEUE_OVERFLOW_REJECT;
	else if (strcmp(value, "drop-oldest") == 0)
		*o = QUEUE_OVERFLOW_DROP_OLDEST;
	else
		return perr(p, "%s: \"%s\" is not reject or drop-oldest",
		            it->key, quote(value, q, sizeof(q)));
	return 0;
}

/*
 * A group name or a decimal gid, resolved now: a name that does not exist
 * is a configuration error, caught by "dsd -n" and refused on reload.
 */
static int resolve_group(const char *value, gid_t *ret)
{
	struct group gr, *res = NULL;
	size_t len = 1024;
	uint64_t v;
	char *buf;
	int r;

	if (parse_digits(value, &v) == 0) {
		if (v >= (gid_t)-1)
			return -ERANGE;
		*ret = (gid_t)v;
		return 0;
	}
	for (;;) {
		buf = malloc(len);
		if (!buf)
			return -ENOMEM;
		r = getgrnam_r(value, &gr, buf, len, &res);
		if (r != ERANGE || len >= 1024 * 1024)
			break;
		free(buf);
		len *= 4;
	}
	if (r == 0 && res)
		*ret = res->gr_gid;
	free(buf);
	if (r != 0)
		return -r;
	return res ? 0 : -ENOENT;
}

static int group_error(struct parser *p, const char *what, const char *value,
                       int r)
{
	char q[128];

	if (r == -ENOMEM)
		return perr_nomem(p);
	return perr(p, "%s: \"%s\": %s", what, quote(value, q, sizeof(q)),
	            r == -ENOENT   ? "no such group"
	            : r == -ERANGE ? "gid out of range"
	                           : strerror(-r));
}

static int parse_group(struct parser *p, const struct config_item *it,
                       const char *value, struct dsd_config *c)
{
	struct config_group *g = field_of(c, it);
	gid_t gid;
	int r = resolve_group(value, &gid);

	if (r < 0)
		return group_error(p, it->key, value, r);
	r = set_string(p, &g->name, value);
	if (r < 0)
		return r;
	g->set = true;
	g->gid = gid;
	return 0;
}

static void acl_clear(struct config_acl *a)
{
	for (size_t i = 0; i < a->n; i++)
		free(a->rules[i].name);
	free(a->rules);
	*a = (struct config_acl){0};
}

/* One "GROUP:NAME" entry (entry is modified). */
static int parse_acl_entry(struct parser *p, const struct config_item *it,
                           char *entry, struct config_acl_rule *ret)
{
	char *colon = strchr(entry, ':'), *name, q[128];
	size_t n;
	int r;

	if (!colon || colon == entry || colon[1] == '\0')
		return perr(p, "%s: \"%s\" is not GROUP:NAME", it->key,
		            quote(entry, q, sizeof(q)));
	*colon = '\0';
	name = colon + 1;
	if (strcmp(entry, "*") == 0) {
		ret->any_group = true;
	} else {
		r = resolve_group(entry, &ret->gid);
		if (r < 0)
			return group_error(p, it->key, entry, r);
	}
	n = strlen(name);
	if (strchr(name, '*') != name + n - 1 && strchr(name, '*'))
		return perr(p, "%s: \"%s\": '*' only at the end of a name",
		            it->key, quote(name, q, sizeof(q)));
	if (name[n - 1] == '*') {
		ret->prefix = true;
		name[--n] = '\0';
	}
	ret->name = strdup(name);
	if (!ret->name)
		return perr_nomem(p);
	return 0;
}

/*
 * An allow list: "GROUP:NAME ..." separated by spaces or tabs (see
 * dsd.conf(5)).  The whole list replaces an earlier file's.
 */
static int parse_acl(struct parser *p, const struct config_item *it,
                     const char *value, struct dsd_config *c)
{
	struct config_acl *acl = field_of(c, it), fresh = {.set = true};
	char *copy = strdup(value), *save = NULL, *tok;
	size_t cap = 0;
	int r = 0;

	if (!copy)
		return perr_nomem(p);
	for (tok = strtok_r(copy, " \t", &save); tok;
	     tok = strtok_r(NULL, " \t", &save)) {
		if (fresh.n == cap) {
			size_t ncap = cap ? 2 * cap : 8;
			struct config_acl_rule *nr =
			        realloc(fresh.rules, ncap * sizeof(*nr));

			if (!nr) {
				r = perr_nomem(p);
				break;
			}
			fresh.rules = nr;
			cap = ncap;
		}
		fresh.rules[fresh.n] = (struct config_acl_rule){0};
		r = parse_acl_entry(p, it, tok, &fresh.rules[fresh.n]);
		if (r < 0)
			break;
		fresh.n++;
	}
	free(copy);
	if (r < 0) {
		acl_clear(&fresh);
		return r;
	}
	acl_clear(acl);
	*acl = fresh;
	return 0;
}

int config_init(struct dsd_config *c)
{
	*c = (struct dsd_config){
	        .reconnect_interval_increment = 4000,
	        .max_reconnect_interval = 180000,
	        .max_reconnect_attempts = 5,
	        .heartbeat_interval = 30000,
	        .restart_after_error = 60000,
	        .max_clients = 4096,
	        .max_subscriptions_per_client = 1024,
	        .client_buffer = 8 * MIB,
	        .client_buffer_total = 64 * MIB,
	        .reserved_admin_clients = 4,
	        .max_subscriptions_per_user = 32768,
	        .queue_max_messages = 100000,
	        .queue_max_bytes = 64 * MIB,
	        .queue_overflow = QUEUE_OVERFLOW_REJECT,
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
	free(c->socket_path);
	free(c->socket_group.name);
	free(c->admin_group.name);
	acl_clear(&c->acl_emit);
	acl_clear(&c->acl_subscribe);
	*c = (struct dsd_config){0};
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
			return perr(p, "control character in line");
	if (*s == '\0' || *s == '#' || *s == ';')
		return 0;

	if (*s == '[') {
		size_t n = strlen(s);
		if (s[n - 1] != ']')
			return perr(p, "invalid section header \"%s\"",
			            quote(s, q, sizeof(q)));
		s[n - 1] = '\0';
		s = trim(s + 1);
		if (!known_section(s, &p->section))
			return perr(p, "unknown section [%s]",
			            quote(s, q, sizeof(q)));
		return 0;
	}

	eq = strchr(s, '=');
	if (!eq)
		return perr(p, "missing '=' in \"%s\"", quote(s, q, sizeof(q)));
	*eq = '\0';
	key = trim(s);
	value = trim(eq + 1);
	if (*key == '\0')
		return perr(p, "missing key before '='");
	if (!p->section)
		return perr(p, "key \"%s\" outside of a section",
		            quote(key, q, sizeof(q)));
	for (i = 0; i < ITEM_COUNT; i++)
		if (config_table[i].section == p->section &&
		    strcmp(config_table[i].key, key) == 0)
			break;
	if (i == ITEM_COUNT)
		return perr(p, "unknown key \"%s\" in [%s]",
		            quote(key, q, sizeof(q)), p->section);
	if (p->seen[i])
		return perr(p, "duplicate key %s (first on line %u)", key,
		            p->seen[i]);
	if (*value == '\0')
		return perr(p, "%s: empty value", key);
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
		set_err(err, errlen, "%s: out of memory",
		        quote(path, q, sizeof(q)));
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
			r = perr(p, "line longer than %u bytes",
			         CONFIG_LINE_MAX);
		else if (r == -EILSEQ)
			r = perr(p, "NUL byte in line");
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

	r = read_regular(path, CONFIG_FILE_MAX, &text, &len, &size);
	if (r == -ENOMEM) {
		set_err(err, errlen, "%s: out of memory",
		        quote(path, q, sizeof(q)));
		return -ENOMEM;
	}
	if (r == -EFBIG) {
		set_err(err, errlen, "%s: larger than %u bytes",
		        quote(path, q, sizeof(q)), CONFIG_FILE_MAX);
		return -EINVAL;
	}
	if (r < 0) {
		set_err(err, errlen, "%s: %s", quote(path, q, sizeof(q)),
		        open_error(r));
		return -EINVAL;
	}
	r = config_load_buffer(c, path, text, len, err, errlen);
	/* An inline auth = is a secret too. */
	free_wiped(text, size);
	return r;
}

int config_finish(struct dsd_config *c, char *err, size_t errlen)
{
	if (!c->url) {
		set_err(err, errlen,
		        "no url in [platform]: the deepstream "
		        "server to connect to is required");
		return -EINVAL;
	}
	return 0;
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
		set_err(err, errlen, "%s: path too long",
		        quote(main_path, q, sizeof(q)));
		return -EINVAL;
	}
	n = scandir(dir, &list, dropin_filter, dropin_compare);
	if (n < 0) {
		if (errno == ENOENT)
			return config_finish(c, err, errlen);
		set_err(err, errlen, "%s: %s", quote(dir, q, sizeof(q)),
		        strerror(errno));
		return -EINVAL;
	}
	if (n > CONFIG_DROPIN_MAX) {
		set_err(err, errlen, "%s: more than %d *.conf files",
		        quote(dir, q, sizeof(q)), CONFIG_DROPIN_MAX);
		r = -EINVAL;
		goto out;
	}
	r = 0;
	for (int i = 0; i < n && r >= 0; i++) {
		int k = snprintf(file, sizeof(file), "%s/%s", dir,
		                 list[i]->d_name);
		if (k < 0 || (size_t)k >= sizeof(file)) {
			set_err(err, errlen, "%s: path too long",
			        quote(dir, q, sizeof(q)));
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

/*
 * dsd's configuration: INI files parsed through one table of
 * {section, key, parser, offset}.  See dsd.conf(5).
 *
 * Syntax, line by line (at most CONFIG_LINE_MAX bytes each, no NUL bytes,
 * no control characters but tab):
 *   - blank lines, and lines whose first non-blank character is '#' or ';',
 *     are ignored (no comments at the end of a line: '#' may be in a value);
 *   - "[section]" starts a section;
 *   - "key = value": key and value are trimmed of spaces and tabs (and a
 *     trailing CR).  Values are taken literally, with no quoting and no
 *     escapes: a value can then hold JSON (auth) as it is.  An empty value
 *     is an error.
 * Keys are case-sensitive and named as the deepstream client's options.
 * A key may appear once per file; a later file (drop-in) overrides it.
 *
 * Relative paths: authFile is looked up in $CREDENTIALS_DIRECTORY (systemd
 * LoadCredential=) when that is set and the file exists there, else in the
 * directory of the config file that names it; caFile and [queue] spool
 * are relative to that directory.  The stored paths are the resolved ones.
 */
#ifndef DSD_CONFIG_H
#define DSD_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "spool.h"

#define CONFIG_INFINITE UINT32_MAX
#define CONFIG_LINE_MAX 4096
/* An authFile bigger than this is refused (it is a small JSON object). */
#define CONFIG_AUTH_FILE_MAX (64 * 1024)
/* A config file or drop-in bigger than this is refused. */
#define CONFIG_FILE_MAX (1024 * 1024)
/* At most this many *.conf files in the drop-in directory. */
#define CONFIG_DROPIN_MAX 256

enum queue_overflow {
	QUEUE_OVERFLOW_REJECT = 0,
	QUEUE_OVERFLOW_DROP_OLDEST = 1,
};

/* A group named in the configuration, resolved when the file is read. */
struct config_group {
	bool set;
	gid_t gid;
	char *name; /* as written (a name or a number), for messages */
};

/*
 * One entry of an [acl] list, "GROUP:NAME": members of the group (or
 * everyone) may use the event name NAME, or every name starting with NAME
 * when it was written with a trailing '*'.
 */
struct config_acl_rule {
	bool any_group; /* GROUP was "*" */
	gid_t gid;
	bool prefix;
	char *name; /* without the '*' of a prefix; "" with "*" alone */
};

/* One entry of [queue] weights, "GROUP:N". */
struct config_weight {
	gid_t gid;
	char *name; /* the group as written, for messages */
	uint32_t weight;
};

/* [queue] weights: an app's turn is its weight times 1 KiB. */
struct config_weights {
	size_t n;
	struct config_weight *w;
};

/* An [acl] key: unset means "everything allowed". */
struct config_acl {
	bool set;
	size_t n;
	struct config_acl_rule *rules;
};

struct dsd_config {
	/* [platform] */
	char *url; /* required; ws:// or wss://, several separated by blanks */
	char *auth_json; /* validated JSON object; "{}" default */
	char *auth_file; /* where auth_json came from, if a file */
	char *ca_file;
	/* A client certificate for wss:// (resolved like authFile), checked
	 * as a pair; the digest of both files' bytes tells a reload that a
	 * pair was renewed under the same names. */
	char *cert_file;
	char *key_file;
	uint8_t client_cert_digest[32];
	/* http://[user:password@]host:port, as written (a secret: it may
	 * hold a password); NULL: connect directly. */
	char *proxy;
	uint32_t reconnect_interval_increment; /* ms, default 4000 */
	uint32_t max_reconnect_interval;       /* ms, default 180000 */
	uint32_t max_reconnect_attempts;       /* default 5; CONFIG_INFINITE */
	uint32_t heartbeat_interval;           /* ms, default 30000 */
	uint32_t restart_after_error; /* ms, default 60000; 0 = never */
	uint32_t reconnect_jitter;    /* percent, default 0 */
	bool follow_network;          /* rtnetlink (netwatch.c), default true */
	/* [ipc] */
	char *socket_path;                     /* default /run/dsd/dsd.sock */
	uint32_t max_clients;                  /* default 4096 */
	uint32_t max_subscriptions_per_client; /* default 1024 */
	uint32_t client_buffer; /* bytes per client output, default 8 MiB */
	uint64_t client_buffer_total; /* all clients' buffers, default 64 MiB */
	struct config_group socket_group; /* default: dsd's own group */
	struct config_group admin_group;  /* default: none (root only) */
	uint32_t reserved_admin_clients;  /* default 4 */
	uint32_t max_clients_per_user;    /* 0 (default): half of max_clients */
	uint32_t max_subscriptions_per_user; /* default 32768 */
	/* [queue] */
	uint32_t queue_max_messages;        /* default 100000 */
	uint64_t queue_max_bytes;           /* default 64 MiB */
	enum queue_overflow queue_overflow; /* default reject */
	/* 0 (default): half of the above */
	uint32_t queue_max_messages_per_user;
	uint64_t queue_max_bytes_per_user; /* 0 (default): half of the above */
	uint32_t shutdown_timeout; /* ms to flush at SIGTERM, default 5000 */
	/* The durable spool's file (resolved like caFile); NULL (default):
	 * memory only.  Both change only on restart. */
	char *queue_spool;
	enum spool_sync queue_spool_sync;    /* default normal */
	struct config_weights queue_weights; /* none: every app weighs 1 */
	/* [acl] */
	struct config_acl acl_emit;
	struct config_acl acl_subscribe;
	/* [metrics] */
	char *metrics_listen; /* HOST:PORT; NULL (default): no listener */
};

/*
 * Fills in every default; url stays NULL.  Returns 0 or -ENOMEM (then c is
 * still safe to config_free()).
 */
int config_init(struct dsd_config *c);
/* Frees an ACL's rules and leaves it empty. */
void config_acl_clear(struct config_acl *a);
void config_weights_clear(struct config_weights *w);
/* Frees what c owns and leaves it zeroed; safe on a partly loaded config
 * and when called twice. */
void config_free(struct dsd_config *c);

/*
 * Reads one INI file on top of c.  Errors are written to err as
 * "FILE:LINE: message" (or "FILE: message" when the file cannot be read:
 * missing, not a regular file, over CONFIG_FILE_MAX bytes) and -EINVAL is
 * returned (-ENOMEM when out of memory).  c may then be
 * partly updated: callers parse into a scratch config and swap on success.
 * The content of auth and authFile is never written to err.
 */
int config_load_file(struct dsd_config *c, const char *path, char *err,
                     size_t errlen);
/*
 * The same for text already in memory: len bytes (NUL bytes in them are
 * errors, no terminator needed), read as if they were the file path, which
 * names them in errors and is where relative paths start.
 */
int config_load_buffer(struct dsd_config *c, const char *path, const char *text,
                       size_t len, char *err, size_t errlen);
/* Checks cross-key rules after all files are read (url present, ...). */
int config_finish(struct dsd_config *c, char *err, size_t errlen);

/*
 * Loads main_path, then every "*.conf" in the directory main_path + ".d"
 * (if it exists) in strcmp() order of their names, then config_finish().
 * c must have been set up by config_init().  Same errors as above.
 */
int config_load(struct dsd_config *c, const char *main_path, char *err,
                size_t errlen);

/* Every key the parser accepts, as "section.key", NULL-terminated; for the
 * documentation test. */
const char *const *config_keys(void);

#endif

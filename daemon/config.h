/*
 * dsd's configuration: INI files parsed through one table of
 * {section, key, parser, offset}.  See dsd.conf(5).
 */
#ifndef DSD_CONFIG_H
#define DSD_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CONFIG_INFINITE UINT32_MAX

enum queue_overflow {
	QUEUE_OVERFLOW_REJECT = 0,
	QUEUE_OVERFLOW_DROP_OLDEST = 1,
};

struct dsd_config {
	/* [platform] */
	char *url;                          /* required; ws:// or wss:// */
	char *auth_json;                    /* validated JSON object; "{}" default */
	char *auth_file;                    /* where auth_json came from, if a file */
	char *ca_file;
	uint32_t reconnect_interval_increment; /* ms, default 4000 */
	uint32_t max_reconnect_interval;       /* ms, default 180000 */
	uint32_t max_reconnect_attempts;       /* default 5; CONFIG_INFINITE */
	uint32_t heartbeat_interval;           /* ms, default 30000 */
	uint32_t restart_after_error;          /* ms, default 60000; 0 = never */
	/* [ipc] */
	char *socket_path;                  /* default /run/dsd/dsd.sock */
	uint32_t max_clients;               /* default 4096 */
	uint32_t max_subscriptions_per_client; /* default 1024 */
	uint32_t client_buffer;             /* bytes per client output, default 8 MiB */
	/* [queue] */
	uint32_t queue_max_messages;        /* default 100000 */
	uint64_t queue_max_bytes;           /* default 64 MiB */
	enum queue_overflow queue_overflow; /* default reject */
};

/* Fills in every default; url stays NULL. */
void config_init(struct dsd_config *c);
void config_free(struct dsd_config *c);

/*
 * Reads one INI file on top of c.  Errors are written to err as
 * "FILE:LINE: message" and -EINVAL is returned (c may be partly updated:
 * callers parse into a scratch config and swap on success).
 */
int config_load_file(struct dsd_config *c, const char *path, char *err,
                     size_t errlen);
/* Checks cross-key rules after all files are read (url present, ...). */
int config_finish(struct dsd_config *c, char *err, size_t errlen);

/* Every key the parser accepts, as "section.key", NULL-terminated; for the
 * documentation test. */
const char *const *config_keys(void);

#endif

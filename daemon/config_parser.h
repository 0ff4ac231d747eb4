/*
 * Inside the configuration parser: what config_load.c (the file and line
 * walker, the key table) shares with the files that parse one kind of
 * value (config_values.c, config_access.c); config_parser.c has the
 * helpers.  Not for the rest of the daemon.
 */
#ifndef DSD_CONFIG_PARSER_H
#define DSD_CONFIG_PARSER_H

#include <stddef.h>
#include <limits.h>
#include <stdint.h>

#include "config.h"

/* Keys the table may have at most (config_load.c checks). */
#define CONFIG_ITEMS_MAX 64

/* The state of reading one file (config_load.c). */
struct parser {
	const char *path;
	char dir[PATH_MAX]; /* the file's directory, for relative paths */
	unsigned line;
	const char *section;
	unsigned seen[CONFIG_ITEMS_MAX]; /* line of each key in this file */
	char *err;
	size_t errlen;
};
struct config_item;

typedef int (*config_parse_fn)(struct parser *p, const struct config_item *it,
                               const char *value, struct dsd_config *c);

/* One row of the key table. */
struct config_item {
	const char *section;
	const char *key;
	config_parse_fn parse;
	size_t offset;
	uint64_t min, max; /* for numbers */
};

/* A message into an error buffer (err may be NULL). */
void config_set_err(char *err, size_t errlen, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));
/* "FILE:LINE: message" into the caller's error buffer; -EINVAL. */
int config_perr(struct parser *p, const char *fmt, ...)
        __attribute__((format(printf, 2, 3)));
/* The same for an allocation failure; -ENOMEM. */
int config_perr_nomem(struct parser *p);
/* Where its value goes in c. */
void *config_field(struct dsd_config *c, const struct config_item *it);
/* Replaces the string at *field by a copy of value. */
int config_set_string(struct parser *p, char **field, const char *value);
/* Plain decimal digits only (no sign, spaces or suffixes): 0 or -EINVAL
 * (-ERANGE past UINT64_MAX). */
int config_parse_digits(const char *s, uint64_t *ret);
/* s, escaped for a message. */
const char *config_quote(const char *s, char *buf, size_t buflen);

/* config_values.c: numbers within the item's min..max, "infinity" or
 * "never" where allowed, the URL, the socket path, the overflow policy. */
int config_parse_u32(struct parser *p, const struct config_item *it,
                     const char *value, struct dsd_config *c);
int config_parse_u32_or_never(struct parser *p, const struct config_item *it,
                              const char *value, struct dsd_config *c);
int config_parse_u32_or_infinity(struct parser *p, const struct config_item *it,
                                 const char *value, struct dsd_config *c);
int config_parse_u64(struct parser *p, const struct config_item *it,
                     const char *value, struct dsd_config *c);
/* yes/no, true/false, on/off. */
int config_parse_bool(struct parser *p, const struct config_item *it,
                      const char *value, struct dsd_config *c);
int config_parse_url(struct parser *p, const struct config_item *it,
                     const char *value, struct dsd_config *c);
int config_parse_socket(struct parser *p, const struct config_item *it,
                        const char *value, struct dsd_config *c);
int config_parse_overflow(struct parser *p, const struct config_item *it,
                          const char *value, struct dsd_config *c);
/* [queue] spoolSync: normal, full or off. */
int config_parse_spool_sync(struct parser *p, const struct config_item *it,
                            const char *value, struct dsd_config *c);

/* [metrics] listen: HOST:PORT or [IPv6]:PORT, a port from 1 to 65535. */
int config_parse_listen(struct parser *p, const struct config_item *it,
                        const char *value, struct dsd_config *c);

/* config_access.c: [ipc] socketGroup/adminGroup and [acl] (an ACL is
 * freed by config_acl_clear(), config.h). */
int config_parse_group(struct parser *p, const struct config_item *it,
                       const char *value, struct dsd_config *c);
int config_parse_acl(struct parser *p, const struct config_item *it,
                     const char *value, struct dsd_config *c);
/* [queue] weights: "GROUP:N ...", N within the item's lo..hi. */
int config_parse_weights(struct parser *p, const struct config_item *it,
                         const char *value, struct dsd_config *c);

/* config_tls.c: [platform] certFile and keyFile (paths, resolved like
 * authFile), proxy; the pair is checked once every file is read. */
int config_parse_pem_path(struct parser *p, const struct config_item *it,
                          const char *value, struct dsd_config *c);
int config_parse_proxy(struct parser *p, const struct config_item *it,
                       const char *value, struct dsd_config *c);
int config_check_client_cert(struct dsd_config *c, char *err, size_t errlen);

#endif

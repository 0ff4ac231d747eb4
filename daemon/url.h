/*
 * WebSocket URLs of the deepstream platform: ws:// and wss:// only.
 *
 * The defaults follow the deepstream JavaScript client: a URL without a path
 * gets "/deepstream" (the server's binary endpoint), so "wss://host" and
 * "wss://host/deepstream" dial the same place.
 */
#ifndef DSD_URL_H
#define DSD_URL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define URL_DEFAULT_PATH "/deepstream"

struct url {
	bool tls;        /* wss:// */
	char host[256];  /* name or address; an IPv6 literal without [] */
	uint16_t port;   /* 80 / 443 unless given */
	char path[1024]; /* starts with '/'; may hold a "?query" */
};

/*
 * Parses s into *ret.  Accepted: scheme ws or wss (any case), a host name
 * (letters, digits, '-', '.', '_') or an IPv4 address or a bracketed IPv6
 * literal, an optional port 1..65535, an optional path and query.  Refused:
 * other schemes, userinfo ("user@"), an empty host or port, fragments
 * ("#"), parts too long for struct url, and any byte that is not printable
 * ASCII (controls, spaces, non-ASCII: percent-encode them).
 *
 * Returns 0, or -EINVAL with *ret untouched and *ret_error (if ret_error is
 * not NULL) set to a static English reason.
 */
int url_parse(const char *s, struct url *ret, const char **ret_error);

/*
 * Writes u back as text for display ("wss://[::1]:8443/deepstream"); the
 * port is left out when it is the scheme's default.  Truncates to fit buf
 * (like snprintf) and returns buf.
 */
const char *url_format(const struct url *u, char *buf, size_t buflen);

#endif

/*
 * The HTTP proxy of [platform] proxy: "http://[user:password@]host:port".
 * dsd reaches the platform through it with HTTP CONNECT, for ws:// and
 * wss:// alike (the proxy then only sees a tunnel; TLS stays end to end).
 *
 * The user and password are a secret: nothing here ever puts them in an
 * error text, and proxy_url_show() leaves them out.
 */
#ifndef DSD_PROXY_URL_H
#define DSD_PROXY_URL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* libwebsockets 4.1 takes at most 95 bytes of "user:password". */
#define PROXY_AUTH_MAX 95

struct proxy_url {
	char host[256]; /* name or address; an IPv6 literal without [] */
	uint16_t port;
	bool has_auth;
	char auth[PROXY_AUTH_MAX + 1]; /* "user:password", percent-decoded */
};

/*
 * Parses s into *ret.  The scheme is http (any case); user and password
 * may be percent-encoded (a ':' in the user must not be: Basic
 * authentication cannot carry it), the host is a name, an IPv4 address or
 * a bracketed IPv6 literal, the port is required, and nothing but an
 * optional "/" may follow it.  Returns 0, or -EINVAL with *ret_error (if
 * not NULL) a static English reason that never quotes s.
 */
int proxy_url_parse(const char *s, struct proxy_url *ret,
                    const char **ret_error);

/* "http://host:port" (IPv6 in brackets), without the credentials, for
 * messages; truncates like snprintf and returns buf. */
const char *proxy_url_show(const struct proxy_url *p, char *buf, size_t len);

/* Wipes the credentials. */
void proxy_url_clear(struct proxy_url *p);

#endif

/*
 * ws:// and wss:// URL parsing.  Kept strict on purpose: the URL comes from
 * the administrator's config, and anything odd in it is more likely a typo
 * than an intention, so it is refused with a reason rather than guessed at.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "url.h"

static bool is_host_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	       (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_';
}

static int fail(const char **ret_error, const char *why)
{
	if (ret_error)
		*ret_error = why;
	return -EINVAL;
}

/* Parses the digits in [p, end) as a port; 1..65535, at most 5 digits. */
static int parse_port(const char *p, const char *end, uint16_t *ret)
{
	unsigned long v = 0;

	if (p == end || end - p > 5)
		return -EINVAL;
	for (; p < end; p++) {
		if (*p < '0' || *p > '9')
			return -EINVAL;
		v = v * 10 + (unsigned long)(*p - '0');
	}
	if (v == 0 || v > 65535)
		return -EINVAL;
	*ret = (uint16_t)v;
	return 0;
}

/* Host part [p, end) of the authority; writes it to u->host without []. */
static int parse_host(const char *p, const char *end, struct url *u,
                      const char **ret_error, const char **ret_rest)
{
	size_t n;

	if (*p == '[') {
		const char *close = memchr(p, ']', (size_t)(end - p));
		struct in6_addr a;

		if (!close)
			return fail(ret_error, "unterminated IPv6 literal");
		n = (size_t)(close - p - 1);
		if (n == 0)
			return fail(ret_error, "empty host");
		if (n >= sizeof(u->host))
			return fail(ret_error, "host too long");
		memcpy(u->host, p + 1, n);
		u->host[n] = '\0';
		/* No zone ids ("%25eth0"): a daemon's URL needs none. */
		if (inet_pton(AF_INET6, u->host, &a) != 1)
			return fail(ret_error, "invalid IPv6 literal");
		*ret_rest = close + 1;
		return 0;
	}

	const char *q = p;
	while (q < end && *q != ':') {
		if (!is_host_char(*q))
			return fail(ret_error, "invalid character in host");
		q++;
	}
	n = (size_t)(q - p);
	if (n == 0)
		return fail(ret_error, "empty host");
	if (n >= sizeof(u->host))
		return fail(ret_error, "host too long");
	memcpy(u->host, p, n);
	u->host[n] = '\0';
	*ret_rest = q;
	return 0;
}

int url_parse(const char *s, struct url *ret, const char **ret_error)
{
	struct url u = {0};
	const char *p, *auth_end, *rest;
	size_t n;

	if (!s)
		return fail(ret_error, "no URL");
	for (p = s; *p; p++)
		if ((unsigned char)*p <= ' ' || (unsigned char)*p >= 0x7f)
			return fail(ret_error,
			            "control, space or non-ASCII character");

	if (strncasecmp(s, "ws://", 5) == 0) {
		u.tls = false;
		u.port = 80;
		p = s + 5;
	} else if (strncasecmp(s, "wss://", 6) == 0) {
		u.tls = true;
		u.port = 443;
		p = s + 6;
	} else {
		return fail(ret_error, "scheme is not ws:// or wss://");
	}

	auth_end = p + strcspn(p, "/?#");
	if (memchr(p, '@', (size_t)(auth_end - p)))
		return fail(ret_error, "user info is not supported");
	if (p == auth_end)
		return fail(ret_error, "empty host");

	int r = parse_host(p, auth_end, &u, ret_error, &rest);
	if (r < 0)
		return r;
	if (rest < auth_end) {
		if (*rest != ':')
			return fail(ret_error, "junk after IPv6 literal");
		if (rest + 1 == auth_end)
			return fail(ret_error, "empty port");
		if (parse_port(rest + 1, auth_end, &u.port) < 0)
			return fail(ret_error, "invalid port");
	}

	p = auth_end;
	if (strchr(p, '#'))
		return fail(ret_error, "fragments are not supported");
	/* The JS client puts its default path in front of a bare "?query". */
	const char *prefix = *p == '/' ? "" : URL_DEFAULT_PATH;
	n = strlen(prefix) + strlen(p);
	if (n >= sizeof(u.path))
		return fail(ret_error, "path too long");
	memcpy(u.path, prefix, strlen(prefix));
	memcpy(u.path + strlen(prefix), p, strlen(p) + 1);

	*ret = u;
	return 0;
}

const char *url_format(const struct url *u, char *buf, size_t buflen)
{
	bool v6 = strchr(u->host, ':') != NULL;
	bool default_port = u->port == (u->tls ? 443 : 80);
	char port[8] = "";

	if (buflen == 0)
		return buf;
	if (!default_port)
		snprintf(port, sizeof(port), ":%u", (unsigned)u->port);
	snprintf(buf, buflen, "%s://%s%s%s%s%s", u->tls ? "wss" : "ws",
	         v6 ? "[" : "", u->host, v6 ? "]" : "", port, u->path);
	return buf;
}

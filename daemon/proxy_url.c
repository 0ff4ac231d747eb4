/*
 * [platform] proxy parsing (see proxy_url.h).  The host and port follow the
 * same rules as the platform URL's, so url_parse() checks them.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "proxy_url.h"
#include "url.h"

static int fail(const char **ret_error, const char *why)
{
	if (ret_error)
		*ret_error = why;
	return -EINVAL;
}

static int hex_value(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Percent-decodes [p, end) onto the end of out (size out_size); refuses
 * controls and NUL after decoding.  colon: whether a decoded ':' may be in
 * it (not in the user name). */
static int decode(const char *p, const char *end, char *out, size_t out_size,
                  bool colon, const char **ret_error)
{
	size_t n = strlen(out);

	for (; p < end; p++) {
		int c = (unsigned char)*p;

		if (c == '%') {
			int hi = end - p < 3 ? -1 : hex_value(p[1]);

			if (hi < 0 || hex_value(p[2]) < 0)
				return fail(ret_error,
				            "invalid percent-encoding "
				            "in the credentials");
			c = hi * 16 + hex_value(p[2]);
			p += 2;
			if (c == ':' && !colon)
				return fail(ret_error,
				            "a ':' in the proxy user name");
		}
		if (c < 0x20 || c == 0x7f)
			return fail(ret_error, "a control character in the "
			                       "credentials");
		if (n + 1 >= out_size)
			return fail(ret_error, "user and password longer than "
			                       "95 bytes together");
		out[n++] = (char)c;
		out[n] = '\0';
	}
	return 0;
}

static int parse_auth(const char *p, const char *at, struct proxy_url *u,
                      const char **ret_error)
{
	const char *colon = memchr(p, ':', (size_t)(at - p));
	int r;

	if (p == at || colon == p)
		return fail(ret_error, "empty proxy user name");
	u->auth[0] = '\0';
	r = decode(p, colon ? colon : at, u->auth, sizeof(u->auth), false,
	           ret_error);
	if (r < 0)
		return r;
	/* Basic authentication always has the ':', even for no password. */
	if (strlen(u->auth) + 1 >= sizeof(u->auth))
		return fail(ret_error, "user and password longer than 95 bytes "
		                       "together");
	strcat(u->auth, ":");
	if (colon) {
		r = decode(colon + 1, at, u->auth, sizeof(u->auth), true,
		           ret_error);
		if (r < 0)
			return r;
	}
	u->has_auth = true;
	return 0;
}

int proxy_url_parse(const char *s, struct proxy_url *ret,
                    const char **ret_error)
{
	struct proxy_url u = {0};
	const char *p, *end, *at, *colon, *bracket;
	char hostport[300];
	struct url parsed;
	int r;

	if (!s)
		return fail(ret_error, "no proxy");
	for (p = s; *p; p++)
		if ((unsigned char)*p <= ' ' || (unsigned char)*p >= 0x7f)
			return fail(ret_error,
			            "control, space or non-ASCII character");
	if (strncasecmp(s, "http://", 7) != 0)
		return fail(ret_error,
		            "scheme is not http:// (an HTTP proxy reached "
		            "with CONNECT)");
	p = s + 7;
	end = p + strcspn(p, "/?#");
	if (*end && strcmp(end, "/") != 0)
		return fail(ret_error,
		            "nothing may follow host:port but a \"/\"");
	at = NULL;
	for (const char *q = p; q < end; q++)
		if (*q == '@')
			at = q;
	if (at) {
		r = parse_auth(p, at, &u, ret_error);
		if (r < 0)
			goto out;
		p = at + 1;
	}
	/* A port is required: proxies have no one default. */
	bracket = memchr(p, ']', (size_t)(end - p));
	colon = NULL;
	for (const char *q = bracket ? bracket : p; q < end; q++)
		if (*q == ':')
			colon = q;
	if (!colon) {
		r = fail(ret_error, "the proxy's port is required");
		goto out;
	}
	if ((size_t)(end - p) + 6 >= sizeof(hostport)) {
		r = fail(ret_error, "proxy host too long");
		goto out;
	}
	snprintf(hostport, sizeof(hostport), "ws://%.*s/", (int)(end - p), p);
	r = url_parse(hostport, &parsed, ret_error);
	if (r < 0)
		goto out;
	memcpy(u.host, parsed.host, sizeof(u.host));
	u.port = parsed.port;
	*ret = u;
out:
	proxy_url_clear(&u);
	return r;
}

const char *proxy_url_show(const struct proxy_url *p, char *buf, size_t len)
{
	bool v6 = strchr(p->host, ':') != NULL;

	if (len)
		snprintf(buf, len, "http://%s%s%s:%u", v6 ? "[" : "", p->host,
		         v6 ? "]" : "", (unsigned)p->port);
	return buf;
}

void proxy_url_clear(struct proxy_url *p)
{
	explicit_bzero(p->auth, sizeof(p->auth));
	p->has_auth = false;
}

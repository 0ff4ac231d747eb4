/*
 * The plain values of dsd.conf: bounded numbers (with "infinity" and
 * "never" where the key allows them), the platform URL, the socket path
 * and the overflow policy.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>

#include <event2/util.h>

#include "config_parser.h"
#include "spool.h"
#include "conn.h"
#include "url.h"

static int parse_number(struct parser *p, const struct config_item *it,
                        const char *value, uint64_t *ret)
{
	char q[128];
	uint64_t v;
	int r = config_parse_digits(value, &v);

	if (r == -EINVAL)
		return config_perr(p, "%s: invalid number \"%s\"", it->key,
		                   config_quote(value, q, sizeof(q)));
	if (r < 0 || v < it->min || v > it->max)
		return config_perr(p, "%s: \"%s\" is out of range %llu..%llu",
		                   it->key, config_quote(value, q, sizeof(q)),
		                   (unsigned long long)it->min,
		                   (unsigned long long)it->max);
	*ret = v;
	return 0;
}

int config_parse_u32(struct parser *p, const struct config_item *it,
                     const char *value, struct dsd_config *c)
{
	uint64_t v;
	int r = parse_number(p, it, value, &v);

	if (r < 0)
		return r;
	*(uint32_t *)config_field(c, it) = (uint32_t)v;
	return 0;
}

int config_parse_u32_or_never(struct parser *p, const struct config_item *it,
                              const char *value, struct dsd_config *c)
{
	if (strcmp(value, "0") == 0) {
		*(uint32_t *)config_field(c, it) = 0;
		return 0;
	}
	return config_parse_u32(p, it, value, c);
}

int config_parse_u32_or_infinity(struct parser *p, const struct config_item *it,
                                 const char *value, struct dsd_config *c)
{
	if (strcmp(value, "infinity") == 0) {
		*(uint32_t *)config_field(c, it) = CONFIG_INFINITE;
		return 0;
	}
	return config_parse_u32(p, it, value, c);
}

int config_parse_u64(struct parser *p, const struct config_item *it,
                     const char *value, struct dsd_config *c)
{
	uint64_t v;
	int r = parse_number(p, it, value, &v);

	if (r < 0)
		return r;
	*(uint64_t *)config_field(c, it) = v;
	return 0;
}

int config_parse_bool(struct parser *p, const struct config_item *it,
                      const char *value, struct dsd_config *c)
{
	static const char *const yes[] = {"yes", "true", "on"};
	static const char *const no[] = {"no", "false", "off"};
	char q[128];

	for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
		if (strcmp(value, yes[i]) == 0 || strcmp(value, no[i]) == 0) {
			*(bool *)config_field(c, it) =
			        strcmp(value, yes[i]) == 0;
			return 0;
		}
	}
	return config_perr(p, "%s: \"%s\" is not yes or no", it->key,
	                   config_quote(value, q, sizeof(q)));
}

/*
 * One or more URLs separated by spaces or tabs (the nodes of a cluster),
 * each checked on its own so that the error names the one at fault.
 */
int config_parse_url(struct parser *p, const struct config_item *it,
                     const char *value, struct dsd_config *c)
{
	char one[CONFIG_LINE_MAX];
	const char *seen[CONN_URLS_MAX];
	const char *s = value;
	unsigned n = 0;
	struct url u;
	const char *why;
	char q[256];

	while (*s != '\0') {
		size_t len = strcspn(s, " \t");

		if (len == 0) {
			s++;
			continue;
		}
		memcpy(one, s, len);
		one[len] = '\0';
		if (url_parse(one, &u, &why) < 0)
			return config_perr(
			        p, "%s: invalid URL \"%s\": %s", it->key,
			        config_quote(one, q, sizeof(q)), why);
		for (unsigned i = 0; i < n; i++)
			if (strncmp(seen[i], s, len) == 0 &&
			    (seen[i][len] == '\0' || seen[i][len] == ' ' ||
			     seen[i][len] == '\t'))
				return config_perr(
				        p, "%s: \"%s\" is listed twice",
				        it->key,
				        config_quote(one, q, sizeof(q)));
		if (n == CONN_URLS_MAX)
			return config_perr(p, "%s: more than %d URLs", it->key,
			                   CONN_URLS_MAX);
		seen[n++] = s;
		s += len;
	}
	return config_set_string(p, config_field(c, it), value);
}

/*
 * Parses JSON that must be an object and returns it re-serialised compact,
 * so the platform only ever gets JSON that jansson accepted.  what names
 * the source in errors; the text itself is a secret and never shown (not
 * even jansson's error text, which quotes the input).
 */
int config_parse_socket(struct parser *p, const struct config_item *it,
                        const char *value, struct dsd_config *c)
{
	char q[256];

	if (value[0] != '/')
		return config_perr(p, "%s: \"%s\" is not an absolute path",
		                   it->key, config_quote(value, q, sizeof(q)));
	if (strlen(value) >= sizeof(((struct sockaddr_un *)0)->sun_path))
		return config_perr(p, "%s: path longer than %zu bytes", it->key,
		                   sizeof(((struct sockaddr_un *)0)->sun_path) -
		                           1);
	return config_set_string(p, config_field(c, it), value);
}

int config_parse_overflow(struct parser *p, const struct config_item *it,
                          const char *value, struct dsd_config *c)
{
	enum queue_overflow *o = config_field(c, it);
	char q[128];

	if (strcmp(value, "reject") == 0)
		*o = QUEUE_OVERFLOW_REJECT;
	else if (strcmp(value, "drop-oldest") == 0)
		*o = QUEUE_OVERFLOW_DROP_OLDEST;
	else
		return config_perr(p, "%s: \"%s\" is not reject or drop-oldest",
		                   it->key, config_quote(value, q, sizeof(q)));
	return 0;
}

/*
 * A group name or a decimal gid, resolved now: a name that does not exist
 * is a configuration error, caught by "dsd -n" and refused on reload.
 */

int config_parse_spool_sync(struct parser *p, const struct config_item *it,
                            const char *value, struct dsd_config *c)
{
	enum spool_sync *s = config_field(c, it);
	char q[128];

	if (spool_sync_from_string(value, s) < 0)
		return config_perr(p, "%s: \"%s\" is not normal, full or off",
		                   it->key, config_quote(value, q, sizeof(q)));
	return 0;
}

int config_parse_listen(struct parser *p, const struct config_item *it,
                        const char *value, struct dsd_config *c)
{
	struct sockaddr_storage ss = {0};
	int len = (int)sizeof(ss);
	char q[256];
	uint16_t port = 0;

	if (evutil_parse_sockaddr_port(value, (struct sockaddr *)&ss, &len) < 0)
		return config_perr(p,
		                   "%s: \"%s\" is not HOST:PORT (an IP address "
		                   "and a port; [IPv6]:PORT)",
		                   it->key, config_quote(value, q, sizeof(q)));
	if (ss.ss_family == AF_INET)
		port = ((struct sockaddr_in *)&ss)->sin_port;
	else if (ss.ss_family == AF_INET6)
		port = ((struct sockaddr_in6 *)&ss)->sin6_port;
	if (port == 0)
		return config_perr(p, "%s: \"%s\" has no port (1..65535)",
		                   it->key, config_quote(value, q, sizeof(q)));
	return config_set_string(p, config_field(c, it), value);
}

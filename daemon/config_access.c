/*
 * The values that name groups: [ipc] socketGroup and adminGroup, the [acl]
 * allow lists of GROUP:NAME entries and [queue] weights of GROUP:N entries.
 * Groups are looked up when the file is read, so a group that does not
 * exist is a configuration error (dsd -n catches it, a reload is refused).
 */
#include <errno.h>
#include <grp.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config_parser.h"

static int resolve_group(const char *value, gid_t *ret)
{
	struct group gr, *res = NULL;
	size_t len = 1024;
	uint64_t v;
	char *buf;
	int r;

	if (config_parse_digits(value, &v) == 0) {
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
		return config_perr_nomem(p);
	return config_perr(p, "%s: \"%s\": %s", what,
	                   config_quote(value, q, sizeof(q)),
	                   r == -ENOENT   ? "no such group"
	                   : r == -ERANGE ? "gid out of range"
	                                  : strerror(-r));
}

int config_parse_group(struct parser *p, const struct config_item *it,
                       const char *value, struct dsd_config *c)
{
	struct config_group *g = config_field(c, it);
	gid_t gid;
	int r = resolve_group(value, &gid);

	if (r < 0)
		return group_error(p, it->key, value, r);
	r = config_set_string(p, &g->name, value);
	if (r < 0)
		return r;
	g->set = true;
	g->gid = gid;
	return 0;
}

/* One "GROUP:NAME" entry (entry is modified). */
static int parse_acl_entry(struct parser *p, const struct config_item *it,
                           char *entry, void *out)
{
	struct config_acl_rule *ret = out;
	char *colon = strchr(entry, ':'), *name, q[128];
	size_t n;
	int r;

	if (!colon || colon == entry || colon[1] == '\0')
		return config_perr(p, "%s: \"%s\" is not GROUP:NAME", it->key,
		                   config_quote(entry, q, sizeof(q)));
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
		return config_perr(p,
		                   "%s: \"%s\": '*' only at the end of a name",
		                   it->key, config_quote(name, q, sizeof(q)));
	if (name[n - 1] == '*') {
		ret->prefix = true;
		name[--n] = '\0';
	}
	ret->name = strdup(name);
	if (!ret->name)
		return config_perr_nomem(p);
	return 0;
}

/* Parses one entry (modified) into *ret, a zeroed element of the list. */
typedef int parse_entry_fn(struct parser *p, const struct config_item *it,
                           char *entry, void *ret);

/*
 * A list of entries separated by spaces or tabs, each parsed by entry
 * into the next element (size bytes, zeroed first) of a growing array.
 * *ret_items and *ret_n hold what was parsed, on failure too: the caller
 * clears them either way.
 */
static int parse_entries(struct parser *p, const struct config_item *it,
                         const char *value, size_t size, parse_entry_fn *entry,
                         void **ret_items, size_t *ret_n)
{
	char *copy = strdup(value), *save = NULL, *tok;
	unsigned char *items = NULL;
	size_t n = 0, cap = 0;
	int r = 0;

	if (!copy)
		return config_perr_nomem(p);
	for (tok = strtok_r(copy, " \t", &save); tok;
	     tok = strtok_r(NULL, " \t", &save)) {
		if (n == cap) {
			size_t ncap = cap ? 2 * cap : 8;
			unsigned char *ni = realloc(items, ncap * size);

			if (!ni) {
				r = config_perr_nomem(p);
				break;
			}
			items = ni;
			cap = ncap;
		}
		memset(items + n * size, 0, size);
		r = entry(p, it, tok, items + n * size);
		if (r < 0)
			break;
		n++;
	}
	free(copy);
	*ret_items = items;
	*ret_n = n;
	return r;
}

/*
 * An allow list: "GROUP:NAME ..." separated by spaces or tabs (see
 * dsd.conf(5)).  The whole list replaces an earlier file's.
 */
int config_parse_acl(struct parser *p, const struct config_item *it,
                     const char *value, struct dsd_config *c)
{
	struct config_acl *acl = config_field(c, it), fresh = {.set = true};
	void *rules = NULL;
	int r;

	r = parse_entries(p, it, value, sizeof(*fresh.rules), parse_acl_entry,
	                  &rules, &fresh.n);
	fresh.rules = rules;
	if (r < 0) {
		config_acl_clear(&fresh);
		return r;
	}
	config_acl_clear(acl);
	*acl = fresh;
	return 0;
}

/* One "GROUP:N" entry (entry is modified). */
static int parse_weight_entry(struct parser *p, const struct config_item *it,
                              char *entry, void *out)
{
	struct config_weight *ret = out;
	char *colon = strrchr(entry, ':'), q[128];
	uint64_t v;
	int r;

	if (!colon || colon == entry || colon[1] == '\0')
		return config_perr(p, "%s: \"%s\" is not GROUP:WEIGHT", it->key,
		                   config_quote(entry, q, sizeof(q)));
	*colon = '\0';
	if (config_parse_digits(colon + 1, &v) < 0 || v < it->min ||
	    v > it->max)
		return config_perr(
		        p, "%s: \"%s\": weight out of range %llu..%llu",
		        it->key, config_quote(colon + 1, q, sizeof(q)),
		        (unsigned long long)it->min,
		        (unsigned long long)it->max);
	r = resolve_group(entry, &ret->gid);
	if (r < 0)
		return group_error(p, it->key, entry, r);
	ret->weight = (uint32_t)v;
	ret->name = strdup(entry);
	if (!ret->name)
		return config_perr_nomem(p);
	return 0;
}

/*
 * [queue] weights: "GROUP:N ..." separated by spaces or tabs; the whole
 * list replaces an earlier file's.
 */
int config_parse_weights(struct parser *p, const struct config_item *it,
                         const char *value, struct dsd_config *c)
{
	struct config_weights *ws = config_field(c, it), fresh = {0};
	void *w = NULL;
	int r;

	r = parse_entries(p, it, value, sizeof(*fresh.w), parse_weight_entry,
	                  &w, &fresh.n);
	fresh.w = w;
	if (r < 0) {
		config_weights_clear(&fresh);
		return r;
	}
	config_weights_clear(ws);
	*ws = fresh;
	return 0;
}

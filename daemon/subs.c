/*
 * The event subscription registry (see subs.h for the state rules).
 *
 * A chained hash table of names -> struct name (its local subscribers as
 * a small vector of client ids, for fast fan-out), and an array indexed by
 * client id -> struct client (its names, so a disconnect is cheap): client
 * ids are the daemon's subscriber slots, dense and below max_clients.  Every
 * name that needs an upstream action sits on one of two to-do lists, and every
 * name with a request in flight on the in-flight list, appended in batch order,
 * so taking and acking batches never walks the whole table.
 */
#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/types.h>

#include "subs.h"

enum list_id {
	LIST_NONE,
	LIST_TODO_SUBSCRIBE,
	LIST_TODO_UNSUBSCRIBE,
	LIST_INFLIGHT,
};

struct name {
	struct name *hnext;
	uint64_t hash;
	TAILQ_ENTRY(name) link; /* on the list named by list, if any */
	enum list_id list;
	enum subs_state state;
	uint64_t corr; /* batch, while PENDING_* */
	bool retry;    /* its SUBSCRIBE batch had a denial: see subs_ack() */
	char *reason;  /* while DENIED */
	uint32_t *clients;
	size_t nclients;
	size_t cap;
	size_t len;
	char str[];
};

struct client {
	uint32_t id;
	struct name **names;
	size_t n;
	size_t cap;
};

struct subs {
	struct subs_limits limits;

	struct name **names;
	size_t names_mask; /* bucket count - 1; the count is a power of 2 */
	size_t nnames;

	struct client **clients; /* by id, limits.max_clients of them */
	size_t nclients;

	size_t nsubscriptions;

	/* Circular lists with sentinels: to-do per action, and in flight. */
	TAILQ_HEAD(name_list, name) todo[2];
	size_t ntodo[2];
	struct name_list inflight;

	uint64_t next_corr;
	uint64_t denies;
	uint64_t retries;
};

#define INITIAL_BUCKETS 16

/* Names eight bytes at a time (every platform event looks its name up),
 * each word multiplied in, the last one overlapping the one before (the
 * length is in h), then the bits mixed down so that the bucket index, the
 * low bits, depends on all of them (the finaliser of SplitMix64).  Names
 * come from local clients only, so flooding is not a concern worth a keyed
 * hash. */
static uint64_t hash_name(const char *str, size_t len)
{
	const uint64_t k = 0x9e3779b97f4a7c15ULL;
	uint64_t h = 0xcbf29ce484222325ULL ^ len, w;
	size_t i = 0;

	if (len >= 8) {
		for (; len - i > 8; i += 8) {
			memcpy(&w, str + i, 8);
			h = (h ^ w) * k;
			h ^= h >> 32;
		}
		memcpy(&w, str + len - 8, 8);
		h = (h ^ w) * k;
	} else {
		w = 0;
		for (; i < len; i++)
			w |= (uint64_t)(unsigned char)str[i] << (8 * i);
		h = (h ^ w) * k;
	}
	h ^= h >> 30;
	h *= 0xbf58476d1ce4e5b9ULL;
	h ^= h >> 27;
	h *= 0x94d049bb133111ebULL;
	return h ^ (h >> 31);
}

int subs_new(const struct subs_limits *limits, struct subs **ret)
{
	struct subs *s;

	if (!limits || !ret || limits->max_names == 0 ||
	    limits->max_clients == 0 || limits->max_per_client == 0 ||
	    limits->max_name_len == 0)
		return -EINVAL;
	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->limits = *limits;
	s->names = calloc(INITIAL_BUCKETS, sizeof(*s->names));
	s->clients = calloc(limits->max_clients, sizeof(*s->clients));
	if (!s->names || !s->clients) {
		free(s->names);
		free(s->clients);
		free(s);
		return -ENOMEM;
	}
	s->names_mask = INITIAL_BUCKETS - 1;
	TAILQ_INIT(&s->todo[SUBS_SUBSCRIBE]);
	TAILQ_INIT(&s->todo[SUBS_UNSUBSCRIBE]);
	TAILQ_INIT(&s->inflight);
	*ret = s;
	return 0;
}

static void name_free(struct name *n)
{
	free(n->reason);
	free(n->clients);
	free(n);
}

void subs_free(struct subs *s)
{
	if (!s)
		return;
	for (size_t i = 0; i <= s->names_mask; i++) {
		struct name *n = s->names[i];

		while (n) {
			struct name *next = n->hnext;

			name_free(n);
			n = next;
		}
	}
	for (size_t i = 0; i < s->limits.max_clients; i++) {
		if (s->clients[i] != NULL) {
			free(s->clients[i]->names);
			free(s->clients[i]);
		}
	}
	free(s->names);
	free(s->clients);
	free(s);
}

/* Returns -EINVAL, -ENAMETOOLONG or the length. */
static ssize_t check_name(const struct subs *s, const char *name)
{
	size_t len;

	if (!name || !name[0])
		return -EINVAL;
	len = strnlen(name, s->limits.max_name_len + 1);
	if (len > s->limits.max_name_len)
		return -ENAMETOOLONG;
	return (ssize_t)len;
}

static struct name *find_name(const struct subs *s, const char *str, size_t len,
                              uint64_t hash)
{
	struct name *n = s->names[hash & s->names_mask];

	for (; n; n = n->hnext)
		if (n->hash == hash && n->len == len &&
		    memcmp(n->str, str, len) == 0)
			return n;
	return NULL;
}

static struct name *lookup_name(const struct subs *s, const char *str)
{
	ssize_t len = check_name(s, str);

	if (len < 0)
		return NULL;
	return find_name(s, str, (size_t)len, hash_name(str, (size_t)len));
}

static struct client *find_client(const struct subs *s, uint32_t id)
{
	return id < s->limits.max_clients ? s->clients[id] : NULL;
}

/* Best effort: on -ENOMEM the chains just get longer. */
static void grow_names(struct subs *s)
{
	size_t nb = (s->names_mask + 1) * 2;
	struct name **b;

	if (s->nnames <= s->names_mask + 1)
		return;
	b = calloc(nb, sizeof(*b));
	if (!b)
		return;
	for (size_t i = 0; i <= s->names_mask; i++) {
		struct name *n = s->names[i];

		while (n) {
			struct name *next = n->hnext;

			n->hnext = b[n->hash & (nb - 1)];
			b[n->hash & (nb - 1)] = n;
			n = next;
		}
	}
	free(s->names);
	s->names = b;
	s->names_mask = nb - 1;
}

static void unhash_name(struct subs *s, struct name *n)
{
	struct name **p = &s->names[n->hash & s->names_mask];

	while (*p != n)
		p = &(*p)->hnext;
	*p = n->hnext;
	s->nnames--;
}

static void drop_client(struct subs *s, struct client *c)
{
	s->clients[c->id] = NULL;
	s->nclients--;
	free(c->names);
	free(c);
}

static struct name_list *list_of(struct subs *s, enum list_id id)
{
	switch (id) {
	case LIST_TODO_SUBSCRIBE:
		return &s->todo[SUBS_SUBSCRIBE];
	case LIST_TODO_UNSUBSCRIBE:
		return &s->todo[SUBS_UNSUBSCRIBE];
	case LIST_INFLIGHT:
		return &s->inflight;
	case LIST_NONE:
	default:
		return NULL;
	}
}

static void unlist(struct subs *s, struct name *n)
{
	if (n->list == LIST_NONE)
		return;
	if (n->list == LIST_TODO_SUBSCRIBE)
		s->ntodo[SUBS_SUBSCRIBE]--;
	else if (n->list == LIST_TODO_UNSUBSCRIBE)
		s->ntodo[SUBS_UNSUBSCRIBE]--;
	TAILQ_REMOVE(list_of(s, n->list), n, link);
	n->list = LIST_NONE;
}

static void todo(struct subs *s, struct name *n, enum subs_action a)
{
	enum list_id want = a == SUBS_SUBSCRIBE ? LIST_TODO_SUBSCRIBE
	                                        : LIST_TODO_UNSUBSCRIBE;

	/* Already waiting: keep its place, so batches go oldest first. */
	if (n->list == want)
		return;
	unlist(s, n);
	TAILQ_INSERT_TAIL(&s->todo[a], n, link);
	n->list = want;
	s->ntodo[a]++;
}

/*
 * Called after every change to a name's refcount or state: puts it on the
 * list its (state, refcount) calls for, or frees it once nothing refers to
 * it any more.  n may be gone on return.
 */
static void settle(struct subs *s, struct name *n)
{
	bool wanted = n->nclients > 0;

	switch (n->state) {
	case SUBS_PENDING_SUBSCRIBE:
	case SUBS_PENDING_UNSUBSCRIBE:
		/* Wait for the ack before deciding anything else. */
		return;
	case SUBS_NONE:
		if (wanted) {
			todo(s, n, SUBS_SUBSCRIBE);
			return;
		}
		break;
	case SUBS_ACKED:
		if (wanted)
			unlist(s, n);
		else
			todo(s, n, SUBS_UNSUBSCRIBE);
		return;
	case SUBS_DENIED:
		if (wanted) {
			unlist(s, n);
			return;
		}
		break;
	}
	unlist(s, n);
	unhash_name(s, n);
	name_free(n);
}

static bool vec_has(const uint32_t *v, size_t n, uint32_t id)
{
	for (size_t i = 0; i < n; i++)
		if (v[i] == id)
			return true;
	return false;
}

static bool client_has(const struct client *c, const struct name *n)
{
	for (size_t i = 0; i < c->n; i++)
		if (c->names[i] == n)
			return true;
	return false;
}

/* Doubling growth to make room for one more entry. */
static int next_cap(size_t cap, size_t n, size_t *ret)
{
	if (n < cap)
		return 0;
	if (cap > SIZE_MAX / 2)
		return -ENOMEM;
	*ret = cap ? cap * 2 : 4;
	return 1;
}

static int reserve_names(struct client *c)
{
	size_t ncap;
	struct name **p;
	int r = next_cap(c->cap, c->n, &ncap);

	if (r <= 0)
		return r;
	p = reallocarray(c->names, ncap, sizeof(*p));
	if (!p)
		return -ENOMEM;
	c->names = p;
	c->cap = ncap;
	return 0;
}

static int reserve_clients(struct name *n)
{
	size_t ncap;
	uint32_t *p;
	int r = next_cap(n->cap, n->nclients, &ncap);

	if (r <= 0)
		return r;
	p = reallocarray(n->clients, ncap, sizeof(*p));
	if (!p)
		return -ENOMEM;
	n->clients = p;
	n->cap = ncap;
	return 0;
}

int subs_add(struct subs *s, uint32_t client, const char *name)
{
	ssize_t len = check_name(s, name);
	struct client *c, *new_c = NULL;
	struct name *n, *new_n = NULL;
	uint64_t hash;
	bool first;

	if (len < 0)
		return (int)len;
	hash = hash_name(name, (size_t)len);
	c = find_client(s, client);
	n = find_name(s, name, (size_t)len, hash);

	if (c && n) {
		/* Search the shorter of the two vectors. */
		if (c->n < n->nclients
		            ? client_has(c, n)
		            : vec_has(n->clients, n->nclients, client))
			return -EEXIST;
	}
	if (client >= s->limits.max_clients)
		return -EINVAL;
	if (c && c->n >= s->limits.max_per_client)
		return -ENOSPC;
	if (!n && s->nnames >= s->limits.max_names)
		return -ENOBUFS;

	/* Allocate everything first, so a failure changes nothing. */
	if (!c) {
		c = new_c = calloc(1, sizeof(*c));
		if (!c)
			goto fail;
		c->id = client;
	}
	if (!n) {
		n = new_n = calloc(1, sizeof(*n) + (size_t)len + 1);
		if (!n)
			goto fail;
		memcpy(n->str, name, (size_t)len);
		n->len = (size_t)len;
		n->hash = hash;
		n->state = SUBS_NONE;
		n->list = LIST_NONE;
	}
	if (reserve_names(c) < 0 || reserve_clients(n) < 0)
		goto fail;

	if (new_c) {
		s->clients[client] = new_c;
		s->nclients++;
	}
	if (new_n) {
		new_n->hnext = s->names[hash & s->names_mask];
		s->names[hash & s->names_mask] = new_n;
		s->nnames++;
		grow_names(s);
	}
	c->names[c->n++] = n;
	first = n->nclients == 0;
	n->clients[n->nclients++] = client;
	s->nsubscriptions++;
	settle(s, n);
	return first ? 1 : 0;

fail:
	if (new_c) {
		free(new_c->names);
		free(new_c);
	}
	if (new_n)
		name_free(new_n);
	return -ENOMEM;
}

/* Unlinks client and n from each other; order in the vectors is not kept.
 * Returns false if they were not linked. */
static bool unlink_pair(struct subs *s, struct client *c, struct name *n)
{
	size_t i, j;

	for (i = 0; i < n->nclients && n->clients[i] != c->id; i++)
		;
	for (j = 0; j < c->n && c->names[j] != n; j++)
		;
	if (i == n->nclients || j == c->n)
		return false;
	n->clients[i] = n->clients[--n->nclients];
	c->names[j] = c->names[--c->n];
	s->nsubscriptions--;
	return true;
}

int subs_remove(struct subs *s, uint32_t client, const char *name)
{
	struct client *c = find_client(s, client);
	struct name *n = lookup_name(s, name);
	bool last;

	if (!c || !n || !unlink_pair(s, c, n))
		return -ENOENT;
	if (c->n == 0)
		drop_client(s, c);
	last = n->nclients == 0;
	settle(s, n);
	return last ? 1 : 0;
}

int subs_remove_client(struct subs *s, uint32_t client, subs_unused_fn cb,
                       void *userdata)
{
	struct client *c = find_client(s, client);
	int count;

	if (!c)
		return 0;
	count = (int)c->n;
	while (c->n > 0) {
		struct name *n = c->names[c->n - 1];

		unlink_pair(s, c, n);
		if (n->nclients == 0 && cb)
			cb(n->str, userdata);
		settle(s, n);
	}
	drop_client(s, c);
	return count;
}

const uint32_t *subs_subscribers(const struct subs *s, const char *name,
                                 size_t *ret_count)
{
	ssize_t len;

	/* Nobody subscribed to anything (the usual case for an app that only
	 * emits): no name to check or hash. */
	if (s->nsubscriptions == 0) {
		*ret_count = 0;
		return NULL;
	}
	len = check_name(s, name);
	if (len < 0) {
		*ret_count = 0;
		return NULL;
	}
	return subs_subscribers_n(s, name, (size_t)len, ret_count);
}

const uint32_t *subs_subscribers_n(const struct subs *s, const char *name,
                                   size_t len, size_t *ret_count)
{
	struct name *n = NULL;

	if (s->nsubscriptions == 0) {
		*ret_count = 0;
		return NULL;
	}
	if (name && len > 0 && len <= s->limits.max_name_len)
		n = find_name(s, name, len, hash_name(name, len));
	if (!n || n->nclients == 0) {
		*ret_count = 0;
		return NULL;
	}
	*ret_count = n->nclients;
	return n->clients;
}

size_t subs_client_count(const struct subs *s, uint32_t client)
{
	struct client *c = find_client(s, client);

	return c ? c->n : 0;
}

int subs_get_state(const struct subs *s, const char *name,
                   enum subs_state *ret_state, size_t *ret_refcount,
                   const char **ret_reason)
{
	struct name *n = lookup_name(s, name);

	if (!n)
		return -ENOENT;
	if (ret_state)
		*ret_state = n->state;
	if (ret_refcount)
		*ret_refcount = n->nclients;
	if (ret_reason)
		*ret_reason = n->reason;
	return 0;
}

size_t subs_pending(const struct subs *s, enum subs_action action)
{
	if (action != SUBS_SUBSCRIBE && action != SUBS_UNSUBSCRIBE)
		return 0;
	return s->ntodo[action];
}

int subs_take_pending(struct subs *s, enum subs_action action,
                      const char **ret_names, size_t max,
                      char ret_corr[SUBS_CORR_MAX])
{
	size_t taken = 0;

	if (action != SUBS_SUBSCRIBE && action != SUBS_UNSUBSCRIBE)
		return -EINVAL;
	if (max > INT_MAX)
		max = INT_MAX;
	while (taken < max && !TAILQ_EMPTY(&s->todo[action])) {
		struct name *n = TAILQ_FIRST(&s->todo[action]);

		unlist(s, n);
		n->state = action == SUBS_SUBSCRIBE ? SUBS_PENDING_SUBSCRIBE
		                                    : SUBS_PENDING_UNSUBSCRIBE;
		n->corr = s->next_corr;
		TAILQ_INSERT_TAIL(&s->inflight, n, link);
		n->list = LIST_INFLIGHT;
		ret_names[taken++] = n->str;
	}
	if (taken == 0)
		return 0;
	snprintf(ret_corr, SUBS_CORR_MAX, "%llu",
	         (unsigned long long)s->next_corr);
	s->next_corr++;
	return (int)taken;
}

/* Our ids only: canonical decimal, no sign, no leading zeros. */
static int parse_corr(const char *corr, uint64_t *ret)
{
	uint64_t v = 0;
	size_t i;

	if (!corr || !corr[0] || (corr[0] == '0' && corr[1]))
		return -EINVAL;
	for (i = 0; corr[i]; i++) {
		unsigned d = (unsigned char)corr[i] - '0';

		if (d > 9 || v > (UINT64_MAX - d) / 10)
			return -EINVAL;
		v = v * 10 + d;
	}
	*ret = v;
	return 0;
}

int subs_ack(struct subs *s, const char *corr)
{
	struct name *n, *next;
	uint64_t id;
	int changed = 0;

	if (parse_corr(corr, &id) < 0)
		return -EINVAL;
	if (id >= s->next_corr)
		return -ENOENT;
	/* A batch's names are contiguous on the in-flight list (appended
	 * together, and removals keep the rest in order); acks come in
	 * order, so this normally stops at the head. */
	for (n = TAILQ_FIRST(&s->inflight); n != NULL; n = next) {
		next = TAILQ_NEXT(n, link);
		if (n->corr != id) {
			if (changed)
				break;
			continue;
		}
		unlist(s, n);
		if (n->state == SUBS_PENDING_UNSUBSCRIBE) {
			n->state = SUBS_NONE;
		} else if (n->retry) {
			/* The server may have dropped this name (7.0.2 bug,
			 * see subs.h): subscribe again if wanted, else
			 * unsubscribe in case it did not drop it. */
			n->retry = false;
			n->state = n->nclients > 0 ? SUBS_NONE : SUBS_ACKED;
			s->retries++;
		} else {
			n->state = SUBS_ACKED;
		}
		changed++;
		settle(s, n);
	}
	return changed;
}

/* Marks the names of SUBSCRIBE batch id for a retry after its ack. */
static void taint_batch(struct subs *s, uint64_t id)
{
	bool seen = false;
	struct name *n;

	TAILQ_FOREACH(n, &s->inflight, link)
	{
		if (n->corr != id) {
			if (seen)
				break;
			continue;
		}
		seen = true;
		if (n->state == SUBS_PENDING_SUBSCRIBE)
			n->retry = true;
	}
}

int subs_denied(struct subs *s, const char *name, const char *reason)
{
	struct name *n = lookup_name(s, name);
	char *copy = NULL;

	if (!n)
		return -ENOENT;
	if (reason) {
		copy = strndup(reason, SUBS_MAX_REASON);
		if (!copy)
			return -ENOMEM;
	}
	s->denies++;
	if (n->list == LIST_INFLIGHT && n->state == SUBS_PENDING_SUBSCRIBE)
		taint_batch(s, n->corr);
	n->retry = false;
	unlist(s, n);
	free(n->reason);
	n->reason = copy;
	n->state = SUBS_DENIED;
	settle(s, n);
	return 0;
}

void subs_connection_reset(struct subs *s)
{
	/* First take every name off its list, then settle each: settling
	 * may free names and re-append to the to-do list. */
	for (size_t i = 0; i <= s->names_mask; i++)
		for (struct name *n = s->names[i]; n; n = n->hnext) {
			unlist(s, n);
			n->state = SUBS_NONE;
			n->retry = false;
			free(n->reason);
			n->reason = NULL;
		}
	for (size_t i = 0; i <= s->names_mask; i++) {
		struct name *n = s->names[i];

		while (n) {
			struct name *next = n->hnext;

			settle(s, n);
			n = next;
		}
	}
	s->next_corr = 0;
}

void subs_get_stats(const struct subs *s, struct subs_stats *ret)
{
	struct subs_stats st = {0};

	for (size_t i = 0; i <= s->names_mask; i++)
		for (struct name *n = s->names[i]; n; n = n->hnext) {
			st.names++;
			/* A partition: names == acked + pending + denied. */
			if (n->list != LIST_NONE)
				st.pending++;
			else if (n->state == SUBS_ACKED)
				st.acked++;
			else if (n->state == SUBS_DENIED)
				st.denied++;
		}
	st.clients = s->nclients;
	st.subscriptions = s->nsubscriptions;
	st.denies = s->denies;
	st.retries = s->retries;
	*ret = st;
}

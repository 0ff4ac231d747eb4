/*
 * Following the network: the kernel's rtnetlink messages (links, addresses
 * and routes coming and going) make dsd look again at whether the platform
 * can be reached, without any other daemon.
 *
 * After a burst of messages has settled (NETWATCH_SETTLE_MS), it asks the
 * kernel for the route to the platform's address (RTM_GETROUTE) and checks
 * that the interface it leaves by is up and running (has a carrier).  For a
 * URL whose host is a name rather than an address (dsd does not know its
 * address: libwebsockets resolves it) it asks for the route to a
 * documentation address of each family instead (192.0.2.1, 2001:db8::1),
 * that is, whether the machine has a default route, and failing that
 * whether any link but loopback is up: only a machine cut off from
 * everything is judged unreachable.  "localhost" is 127.0.0.1.
 * The owner hears only changes: "routable" or "not routable", and why.
 *
 * The parsing is split from the sockets so that the unit tests can feed it
 * crafted messages: netwatch_parse_events() says what a batch of multicast
 * messages was about, netwatch_parse_route() what a route lookup answered.
 */
#ifndef DSD_NETWATCH_H
#define DSD_NETWATCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct event_base;
struct netwatch;

/* Quiet time after the last message before the route is looked up. */
#define NETWATCH_SETTLE_MS 100
#define NETWATCH_WHY_MAX   128

/* What a batch of rtnetlink messages was about (netwatch_parse_events). */
enum {
	NETWATCH_EV_LINK = 1 << 0,  /* a link changed (up, down, carrier) */
	NETWATCH_EV_ADDR = 1 << 1,  /* an address came or went */
	NETWATCH_EV_ROUTE = 1 << 2, /* a route came or went */
};

struct netwatch_events {
	unsigned mask;
	/* The first message, for people: "link 3 down", "route removed". */
	char why[NETWATCH_WHY_MAX];
};

/*
 * Reads len bytes of rtnetlink messages (one recv()) into ret.  Malformed
 * or truncated messages end the walk; unknown types are skipped.  Returns
 * the number of messages understood.
 */
int netwatch_parse_events(const void *buf, size_t len,
                          struct netwatch_events *ret);

/*
 * Reads the kernel's answer to an RTM_GETROUTE: 0 with *ret_routable and
 * *ret_oif (the interface index, 0 if none) set, or -ENOENT when it holds
 * no answer.  A route of a type that drops the packets (unreachable,
 * blackhole, prohibit) and an error answer (ENETUNREACH, ...) are "not
 * routable".
 */
int netwatch_parse_route(const void *buf, size_t len, bool *ret_routable,
                         int *ret_oif);

struct netwatch_callbacks {
	/* The platform became reachable (routable true) or not; why is for
	 * people ("link 3 down: no route to 10.0.0.5"). */
	void (*changed)(bool routable, const char *why, void *userdata);
};

/* Opens the rtnetlink socket; -errno when it cannot (then dsd goes on
 * without it). */
int netwatch_new(struct event_base *base, const struct netwatch_callbacks *cb,
                 void *userdata, struct netwatch **ret);
void netwatch_free(struct netwatch *w);
/* The platform URL whose route matters now (upstream calls it at each
 * attempt).  Does not look the route up: the next change does. */
void netwatch_set_target(struct netwatch *w, const char *url);
/* The same for a host (name or address): the proxy's, when the platform
 * is reached through one. */
void netwatch_set_target_host(struct netwatch *w, const char *host);
/* The host whose route is watched ("" without a watcher). */
const char *netwatch_target_host(const struct netwatch *w);
/* Looks the route up now: whether the target is routable, and why not.
 * Also what the last change reported is compared against. */
bool netwatch_check(struct netwatch *w, char *why, size_t whylen);

#endif

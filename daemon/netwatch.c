/*
 * Following the network through rtnetlink (see netwatch.h).
 *
 * One multicast socket hears link, address and route changes; after a
 * burst has settled, a second request on a short-lived socket asks the
 * kernel which route a packet to the platform would take (the same lookup
 * connect() makes), and the interface of that route is checked for a
 * carrier: a pulled cable leaves its routes in the table, marked linkdown.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <event2/event.h>

#include "netwatch.h"
#include "url.h"

struct netwatch {
	struct event_base *base;
	struct netwatch_callbacks cb;
	void *userdata;
	int fd;
	struct event *readable;
	struct event *settle;
	bool settling;
	struct netwatch_events pending;
	bool routable; /* as last reported (true until told otherwise) */
	/* The target: an address, or a name (then any default route). */
	char host[256];
	int family; /* AF_INET, AF_INET6, or AF_UNSPEC for a name */
	unsigned char addr[16];
};

/* ---- parsing (pure) ---- */

static const char *attr_string(const struct rtattr *rta, int len, int type)
{
	for (; RTA_OK(rta, len); rta = RTA_NEXT(rta, len)) {
		size_t n = RTA_PAYLOAD(rta);
		const char *s = RTA_DATA(rta);

		if (rta->rta_type == type && n > 0 && memchr(s, '\0', n))
			return s;
	}
	return NULL;
}

static void describe_link(const struct nlmsghdr *h, char *why, size_t len)
{
	const struct ifinfomsg *ifi = NLMSG_DATA(h);
	const char *name =
	        attr_string(IFLA_RTA(ifi), (int)IFLA_PAYLOAD(h), IFLA_IFNAME);
	char idx[32];

	snprintf(idx, sizeof(idx), "%d", ifi->ifi_index);
	snprintf(why, len, "link %s %s", name ? name : idx,
	         h->nlmsg_type == RTM_DELLINK     ? "removed"
	         : (ifi->ifi_flags & IFF_RUNNING) ? "up"
	         : (ifi->ifi_flags & IFF_UP)      ? "up without carrier"
	                                          : "down");
}

/* NLMSG_OK and NLMSG_NEXT without their int/unsigned comparisons (clang
 * refuses those with -Wsign-compare): a whole header, and a message that
 * fits what is left. */
static bool nl_ok(const struct nlmsghdr *h, size_t left)
{
	return left >= sizeof(*h) && h->nlmsg_len >= sizeof(*h) &&
	       h->nlmsg_len <= left;
}

static const struct nlmsghdr *nl_next(const struct nlmsghdr *h, size_t *left)
{
	size_t step = NLMSG_ALIGN(h->nlmsg_len);

	step = step < *left ? step : *left;
	*left -= step;
	return (const struct nlmsghdr *)(const void *)((const char *)h + step);
}

int netwatch_parse_events(const void *buf, size_t len,
                          struct netwatch_events *ret)
{
	const struct nlmsghdr *h = buf;
	size_t left = len;
	int n = 0;

	for (; nl_ok(h, left); h = nl_next(h, &left)) {
		unsigned bit = 0;
		size_t need = 0;
		char why[NETWATCH_WHY_MAX] = "";

		switch (h->nlmsg_type) {
		case RTM_NEWLINK:
		case RTM_DELLINK:
			bit = NETWATCH_EV_LINK;
			need = sizeof(struct ifinfomsg);
			break;
		case RTM_NEWADDR:
		case RTM_DELADDR:
			bit = NETWATCH_EV_ADDR;
			need = sizeof(struct ifaddrmsg);
			break;
		case RTM_NEWROUTE:
		case RTM_DELROUTE:
			bit = NETWATCH_EV_ROUTE;
			need = sizeof(struct rtmsg);
			break;
		default:
			continue; /* NLMSG_DONE, NOOP, others: nothing to us */
		}
		if (h->nlmsg_len < NLMSG_LENGTH(need))
			break; /* a message cut short: trust nothing after it */
		n++;
		if (bit == NETWATCH_EV_LINK)
			describe_link(h, why, sizeof(why));
		else if (bit == NETWATCH_EV_ADDR)
			snprintf(why, sizeof(why), "address %s on link %u",
			         h->nlmsg_type == RTM_NEWADDR ? "added"
			                                      : "removed",
			         ((const struct ifaddrmsg *)NLMSG_DATA(h))
			                 ->ifa_index);
		else
			snprintf(why, sizeof(why), "route %s",
			         h->nlmsg_type == RTM_NEWROUTE ? "added"
			                                       : "removed");
		if (ret->mask == 0)
			memcpy(ret->why, why, sizeof(ret->why));
		ret->mask |= bit;
	}
	return n;
}

int netwatch_parse_route(const void *buf, size_t len, bool *ret_routable,
                         int *ret_oif)
{
	const struct nlmsghdr *h = buf;
	size_t left = len;

	for (; nl_ok(h, left); h = nl_next(h, &left)) {
		if (h->nlmsg_type == NLMSG_ERROR) {
			const struct nlmsgerr *e = NLMSG_DATA(h);

			if (h->nlmsg_len < NLMSG_LENGTH(sizeof(*e)))
				return -ENOENT;
			if (e->error == 0)
				continue; /* an ack */
			*ret_routable = false;
			*ret_oif = 0;
			return 0;
		}
		if (h->nlmsg_type == RTM_NEWROUTE) {
			const struct rtmsg *rt = NLMSG_DATA(h);
			const struct rtattr *a;
			int alen;
			int oif = 0;

			if (h->nlmsg_len < NLMSG_LENGTH(sizeof(*rt)))
				return -ENOENT;
			a = RTM_RTA(rt);
			alen = (int)RTM_PAYLOAD(h);
			for (; RTA_OK(a, alen); a = RTA_NEXT(a, alen))
				if (a->rta_type == RTA_OIF &&
				    RTA_PAYLOAD(a) >= sizeof(int))
					memcpy(&oif, RTA_DATA(a), sizeof(int));
			*ret_routable = rt->rtm_type == RTN_UNICAST ||
			                rt->rtm_type == RTN_LOCAL;
			*ret_oif = oif;
			return 0;
		}
	}
	return -ENOENT;
}

/* ---- asking the kernel ---- */

/* The route a packet to addr would take: 1 routable, 0 not, -errno. */
static int route_to(int family, const unsigned char *addr, int *ret_oif)
{
	struct {
		struct nlmsghdr h;
		struct rtmsg rt;
		char attrs[64];
	} req = {0};
	union {
		struct nlmsghdr h;
		char buf[8192];
	} ans;
	size_t alen = family == AF_INET ? 4 : 16;
	struct rtattr *rta;
	struct timeval tv = {.tv_sec = 0, .tv_usec = 100000};
	struct sockaddr_nl kernel = {.nl_family = AF_NETLINK};
	bool routable = false;
	ssize_t n;
	int fd, r;

	req.h.nlmsg_len = NLMSG_LENGTH(sizeof(struct rtmsg));
	req.h.nlmsg_type = RTM_GETROUTE;
	req.h.nlmsg_flags = NLM_F_REQUEST;
	req.h.nlmsg_seq = 1;
	req.rt.rtm_family = (unsigned char)family;
	req.rt.rtm_dst_len = (unsigned char)(alen * 8);
	rta = (struct rtattr *)((char *)&req + NLMSG_ALIGN(req.h.nlmsg_len));
	rta->rta_type = RTA_DST;
	rta->rta_len = (unsigned short)RTA_LENGTH(alen);
	memcpy(RTA_DATA(rta), addr, alen);
	req.h.nlmsg_len = NLMSG_ALIGN(req.h.nlmsg_len) + RTA_LENGTH(alen);

	fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
	if (fd < 0)
		return -errno;
	/* The kernel answers at once; the bound only guards the loop. */
	(void)setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	if (sendto(fd, &req, req.h.nlmsg_len, 0, (struct sockaddr *)&kernel,
	           sizeof(kernel)) < 0) {
		r = -errno;
		close(fd);
		return r;
	}
	n = recv(fd, &ans, sizeof(ans), 0);
	r = n < 0 ? -errno : 0;
	close(fd);
	if (r < 0)
		return r;
	if (netwatch_parse_route(&ans, (size_t)n, &routable, ret_oif) < 0)
		return -EIO;
	return routable ? 1 : 0;
}

/* Whether the interface is up and has a carrier; the name into ret. */
static bool link_running(int oif, char *ret, size_t len)
{
	struct ifreq ifr = {0};
	bool up = false;
	int fd;

	snprintf(ret, len, "%d", oif);
	if (if_indextoname((unsigned)oif, ifr.ifr_name) == NULL)
		return false; /* gone between the lookup and now */
	snprintf(ret, len, "%s", ifr.ifr_name);
	fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return true; /* cannot tell: trust the route */
	if (ioctl(fd, SIOCGIFFLAGS, &ifr) == 0)
		up = (ifr.ifr_flags & IFF_UP) && (ifr.ifr_flags & IFF_RUNNING);
	else
		up = true;
	close(fd);
	return up;
}

/* One family's verdict for addr, and why in words. */
static bool check_one(int family, const unsigned char *addr, const char *what,
                      char *why, size_t whylen)
{
	char dev[IF_NAMESIZE + 16];
	int oif = 0;
	int r = route_to(family, addr, &oif);

	if (r < 0) {
		/* The question could not be asked: do not claim an outage. */
		snprintf(why, whylen, "route to %s unknown (%s)", what,
		         strerror(-r));
		return true;
	}
	if (r == 0) {
		snprintf(why, whylen, "no route to %s", what);
		return false;
	}
	if (oif > 0 && !link_running(oif, dev, sizeof(dev))) {
		snprintf(why, whylen,
		         "the route to %s leaves by %s, which is "
		         "down",
		         what, dev);
		return false;
	}
	snprintf(why, whylen, "route to %s", what);
	return true;
}

/* Is any link but loopback up with a carrier?  Its name into ret. */
static bool other_link_running(char *ret, size_t len)
{
	struct if_nameindex *all = if_nameindex(), *i;
	bool found = false;
	int fd;

	if (all == NULL)
		return true; /* cannot tell: do not claim an outage */
	fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	for (i = all; fd >= 0 && !found && i->if_index != 0; i++) {
		struct ifreq ifr = {0};

		snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", i->if_name);
		if (ioctl(fd, SIOCGIFFLAGS, &ifr) < 0 ||
		    (ifr.ifr_flags & IFF_LOOPBACK) ||
		    !(ifr.ifr_flags & IFF_UP) || !(ifr.ifr_flags & IFF_RUNNING))
			continue;
		snprintf(ret, len, "link %s is up", i->if_name);
		found = true;
	}
	if (fd < 0)
		found = true;
	else
		close(fd);
	if_freenameindex(all);
	return found;
}

bool netwatch_check(struct netwatch *w, char *why, size_t whylen)
{
	static const unsigned char probe4[4] = {192, 0, 2, 1};
	static const unsigned char probe6[16] = {0x20, 0x01, 0x0d,
	                                         0xb8, [15] = 1};
	char why6[NETWATCH_WHY_MAX];

	if (w->family != AF_UNSPEC)
		return check_one(w->family, w->addr, w->host, why, whylen);
	/* A name: any default route of either family will do, and so will
	 * any running link but loopback (a VPN may carry the platform
	 * without a default route): only a machine cut off from everything
	 * is judged unreachable. */
	if (check_one(AF_INET, probe4, "the IPv4 default", why, whylen))
		return true;
	if (check_one(AF_INET6, probe6, "the IPv6 default", why6, sizeof(why6)))
		return snprintf(why, whylen, "%s", why6), true;
	if (other_link_running(why6, sizeof(why6)))
		return snprintf(why, whylen, "no default route, but %s", why6),
		       true;
	snprintf(why, whylen, "no default route and no link up but loopback");
	return false;
}

/* ---- the loop side ---- */

static void on_settled(evutil_socket_t fd, short what, void *arg)
{
	struct netwatch *w = arg;
	char why[NETWATCH_WHY_MAX * 3 + 8];
	char verdict[NETWATCH_WHY_MAX * 2];
	bool routable;

	(void)fd;
	(void)what;
	w->settling = false;
	routable = netwatch_check(w, verdict, sizeof(verdict));
	snprintf(why, sizeof(why), "%s: %s", w->pending.why, verdict);
	w->pending = (struct netwatch_events){0};
	if (routable == w->routable)
		return;
	w->routable = routable;
	w->cb.changed(routable, why, w->userdata);
}

static void on_readable(evutil_socket_t fd, short what, void *arg)
{
	struct netwatch *w = arg;
	union {
		struct nlmsghdr h;
		char buf[16384];
	} msg;
	struct timeval settle = {.tv_sec = 0,
	                         .tv_usec = NETWATCH_SETTLE_MS * 1000};

	(void)what;
	for (int i = 0; i < 64; i++) {
		ssize_t n = recv(fd, &msg, sizeof(msg), MSG_DONTWAIT);

		if (n < 0 && errno == ENOBUFS) {
			/* Messages were lost: assume anything changed. */
			if (w->pending.mask == 0)
				snprintf(w->pending.why, sizeof(w->pending.why),
				         "rtnetlink overrun");
			w->pending.mask |= NETWATCH_EV_LINK;
			continue;
		}
		if (n <= 0)
			break;
		netwatch_parse_events(&msg, (size_t)n, &w->pending);
	}
	/* Looked at once per burst, NETWATCH_SETTLE_MS after its first
	 * message: a storm of messages costs one lookup per period. */
	if (w->pending.mask != 0 && !w->settling) {
		w->settling = true;
		evtimer_add(w->settle, &settle);
	}
}

int netwatch_new(struct event_base *base, const struct netwatch_callbacks *cb,
                 void *userdata, struct netwatch **ret)
{
	struct sockaddr_nl sa = {
	        .nl_family = AF_NETLINK,
	        .nl_groups = RTMGRP_LINK | RTMGRP_IPV4_IFADDR |
	                     RTMGRP_IPV6_IFADDR | RTMGRP_IPV4_ROUTE |
	                     RTMGRP_IPV6_ROUTE,
	};
	struct netwatch *w = calloc(1, sizeof(*w));
	int r;

	if (w == NULL)
		return -ENOMEM;
	w->base = base;
	w->cb = *cb;
	w->userdata = userdata;
	w->routable = true;
	w->family = AF_UNSPEC;
	w->fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC | SOCK_NONBLOCK,
	               NETLINK_ROUTE);
	if (w->fd < 0 || bind(w->fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		r = -errno;
		goto fail;
	}
	w->readable =
	        event_new(base, w->fd, EV_READ | EV_PERSIST, on_readable, w);
	w->settle = evtimer_new(base, on_settled, w);
	if (w->readable == NULL || w->settle == NULL ||
	    event_add(w->readable, NULL) < 0) {
		r = -ENOMEM;
		goto fail;
	}
	*ret = w;
	return 0;
fail:
	netwatch_free(w);
	return r;
}

void netwatch_free(struct netwatch *w)
{
	if (w == NULL)
		return;
	if (w->readable)
		event_free(w->readable);
	if (w->settle)
		event_free(w->settle);
	if (w->fd >= 0)
		close(w->fd);
	free(w);
}

void netwatch_set_target(struct netwatch *w, const char *url)
{
	struct url u;

	if (w == NULL || url_parse(url, &u, NULL) < 0)
		return;
	netwatch_set_target_host(w, u.host);
}

void netwatch_set_target_host(struct netwatch *w, const char *host)
{
	char addr[sizeof(w->host)];

	if (w == NULL)
		return;
	snprintf(w->host, sizeof(w->host), "%s", host);
	snprintf(addr, sizeof(addr), "%s", host);
	/* Never looked up in DNS: the loopback address (RFC 6761). */
	if (strcasecmp(host, "localhost") == 0 ||
	    (strlen(host) > 10 &&
	     strcasecmp(host + strlen(host) - 10, ".localhost") == 0))
		snprintf(addr, sizeof(addr), "127.0.0.1");
	if (inet_pton(AF_INET, addr, w->addr) == 1)
		w->family = AF_INET;
	else if (inet_pton(AF_INET6, addr, w->addr) == 1)
		w->family = AF_INET6;
	else
		w->family = AF_UNSPEC;
}

const char *netwatch_target_host(const struct netwatch *w)
{
	return w ? w->host : "";
}

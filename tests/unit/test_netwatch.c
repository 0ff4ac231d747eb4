/*
 * The rtnetlink parsing of netwatch.c, fed crafted messages: what a batch
 * of link, address and route messages was about (and that cut or foreign
 * messages are handled), and what a route lookup answered.  What the
 * connection does with the verdict is in test_conn_urls.c.
 */
#include <check.h>
#include <errno.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <string.h>

#include <event2/event.h>

#include "check-run.h"
#include "netwatch.h"

/* A buffer of messages built one by one. */
struct batch {
	_Alignas(struct nlmsghdr) char buf[4096];
	size_t len;
};

static struct nlmsghdr *add(struct batch *b, unsigned short type,
                            const void *body, size_t body_len)
{
	struct nlmsghdr *h = (struct nlmsghdr *)(b->buf + b->len);

	memset(h, 0, NLMSG_SPACE(body_len));
	h->nlmsg_len = NLMSG_LENGTH(body_len);
	h->nlmsg_type = type;
	memcpy(NLMSG_DATA(h), body, body_len);
	b->len += NLMSG_SPACE(body_len);
	return h;
}

static void add_attr(struct batch *b, struct nlmsghdr *h, unsigned short type,
                     const void *data, size_t len)
{
	struct rtattr *a =
	        (struct rtattr *)((char *)h + NLMSG_ALIGN(h->nlmsg_len));

	a->rta_type = type;
	a->rta_len = (unsigned short)RTA_LENGTH(len);
	memcpy(RTA_DATA(a), data, len);
	h->nlmsg_len = NLMSG_ALIGN(h->nlmsg_len) + RTA_SPACE(len);
	b->len = (size_t)((char *)h - b->buf) + NLMSG_ALIGN(h->nlmsg_len);
}

static struct nlmsghdr *link_msg(struct batch *b, unsigned short type,
                                 int index, unsigned flags, const char *name)
{
	struct ifinfomsg ifi = {.ifi_index = index, .ifi_flags = flags};
	struct nlmsghdr *h = add(b, type, &ifi, sizeof(ifi));

	if (name)
		add_attr(b, h, IFLA_IFNAME, name, strlen(name) + 1);
	return h;
}

START_TEST(test_link_down_and_up)
{
	struct batch b = {.len = 0};
	struct netwatch_events ev = {0};

	link_msg(&b, RTM_NEWLINK, 3, IFF_UP, "eth0");
	link_msg(&b, RTM_NEWLINK, 4, IFF_UP | IFF_RUNNING, "wlan0");
	ck_assert_int_eq(netwatch_parse_events(b.buf, b.len, &ev), 2);
	ck_assert_uint_eq(ev.mask, NETWATCH_EV_LINK);
	/* The first message describes the batch. */
	ck_assert_str_eq(ev.why, "link eth0 up without carrier");

	memset(&ev, 0, sizeof(ev));
	b.len = 0;
	link_msg(&b, RTM_NEWLINK, 4, IFF_UP | IFF_RUNNING, "wlan0");
	netwatch_parse_events(b.buf, b.len, &ev);
	ck_assert_str_eq(ev.why, "link wlan0 up");

	memset(&ev, 0, sizeof(ev));
	b.len = 0;
	link_msg(&b, RTM_NEWLINK, 7, 0, NULL); /* no name: the index */
	link_msg(&b, RTM_DELLINK, 8, 0, "tun0");
	netwatch_parse_events(b.buf, b.len, &ev);
	ck_assert_str_eq(ev.why, "link 7 down");
}
END_TEST

START_TEST(test_routes_and_addresses)
{
	struct batch b = {.len = 0};
	struct netwatch_events ev = {0};
	struct rtmsg rt = {.rtm_family = AF_INET, .rtm_type = RTN_UNICAST};
	struct ifaddrmsg ifa = {.ifa_family = AF_INET, .ifa_index = 2};

	add(&b, RTM_DELROUTE, &rt, sizeof(rt));
	add(&b, RTM_NEWADDR, &ifa, sizeof(ifa));
	add(&b, NLMSG_DONE, &rt, sizeof(int)); /* not about the network */
	ck_assert_int_eq(netwatch_parse_events(b.buf, b.len, &ev), 2);
	ck_assert_uint_eq(ev.mask, NETWATCH_EV_ROUTE | NETWATCH_EV_ADDR);
	ck_assert_str_eq(ev.why, "route removed");
	/* A batch adds to what is pending: the first why stays. */
	b.len = 0;
	add(&b, RTM_NEWROUTE, &rt, sizeof(rt));
	ck_assert_int_eq(netwatch_parse_events(b.buf, b.len, &ev), 1);
	ck_assert_str_eq(ev.why, "route removed");

	memset(&ev, 0, sizeof(ev));
	b.len = 0;
	add(&b, RTM_DELADDR, &ifa, sizeof(ifa));
	netwatch_parse_events(b.buf, b.len, &ev);
	ck_assert_str_eq(ev.why, "address removed on link 2");
}
END_TEST

START_TEST(test_cut_and_foreign_messages)
{
	struct batch b = {.len = 0};
	struct netwatch_events ev = {0};
	struct rtmsg rt = {.rtm_family = AF_INET};
	struct nlmsghdr *h;

	/* Unknown types are skipped, the walk goes on. */
	add(&b, 999, &rt, sizeof(rt));
	add(&b, RTM_NEWROUTE, &rt, sizeof(rt));
	ck_assert_int_eq(netwatch_parse_events(b.buf, b.len, &ev), 1);
	/* A header whose body is too short for its type ends the walk. */
	memset(&ev, 0, sizeof(ev));
	b.len = 0;
	h = add(&b, RTM_NEWLINK, &rt, 4);
	ck_assert_uint_lt(h->nlmsg_len, NLMSG_LENGTH(sizeof(struct ifinfomsg)));
	link_msg(&b, RTM_NEWLINK, 3, 0, "eth0");
	ck_assert_int_eq(netwatch_parse_events(b.buf, b.len, &ev), 0);
	ck_assert_uint_eq(ev.mask, 0);
	/* A length past the buffer, or a buffer shorter than a header. */
	b.len = 0;
	h = link_msg(&b, RTM_NEWLINK, 3, 0, "eth0");
	h->nlmsg_len = 4000;
	ck_assert_int_eq(netwatch_parse_events(b.buf, 64, &ev), 0);
	ck_assert_int_eq(netwatch_parse_events(b.buf, 7, &ev), 0);
	ck_assert_int_eq(netwatch_parse_events(b.buf, 0, &ev), 0);
	/* A name attribute without its NUL is not read past. */
	b.len = 0;
	h = link_msg(&b, RTM_NEWLINK, 5, IFF_UP | IFF_RUNNING, NULL);
	add_attr(&b, h, IFLA_IFNAME, "abcd", 4);
	ck_assert_int_eq(netwatch_parse_events(b.buf, b.len, &ev), 1);
	ck_assert_str_eq(ev.why, "link 5 up");
}
END_TEST

START_TEST(test_route_answers)
{
	struct batch b = {.len = 0};
	struct rtmsg rt = {.rtm_family = AF_INET, .rtm_type = RTN_UNICAST};
	struct nlmsgerr err = {.error = -ENETUNREACH};
	struct nlmsghdr *h;
	bool routable = false;
	int oif = -1, idx = 4;

	h = add(&b, RTM_NEWROUTE, &rt, sizeof(rt));
	add_attr(&b, h, RTA_OIF, &idx, sizeof(idx));
	ck_assert_int_eq(netwatch_parse_route(b.buf, b.len, &routable, &oif),
	                 0);
	ck_assert(routable);
	ck_assert_int_eq(oif, 4);
	/* Local addresses are routable; dropping route types are not. */
	static const struct {
		unsigned char type;
		bool routable;
	} types[] = {{RTN_LOCAL, true},
	             {RTN_UNREACHABLE, false},
	             {RTN_BLACKHOLE, false},
	             {RTN_PROHIBIT, false}};
	for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
		b.len = 0;
		rt.rtm_type = types[i].type;
		add(&b, RTM_NEWROUTE, &rt, sizeof(rt));
		ck_assert_int_eq(
		        netwatch_parse_route(b.buf, b.len, &routable, &oif), 0);
		ck_assert(routable == types[i].routable);
		ck_assert_int_eq(oif, 0);
	}
	/* The kernel's "no route": an error answer. */
	b.len = 0;
	add(&b, NLMSG_ERROR, &err, sizeof(err));
	routable = true;
	ck_assert_int_eq(netwatch_parse_route(b.buf, b.len, &routable, &oif),
	                 0);
	ck_assert(!routable);
	/* An ack, then nothing: no answer. */
	b.len = 0;
	err.error = 0;
	add(&b, NLMSG_ERROR, &err, sizeof(err));
	ck_assert_int_eq(netwatch_parse_route(b.buf, b.len, &routable, &oif),
	                 -ENOENT);
	/* A route message cut short. */
	b.len = 0;
	add(&b, RTM_NEWROUTE, &rt, 2);
	ck_assert_int_eq(netwatch_parse_route(b.buf, b.len, &routable, &oif),
	                 -ENOENT);
}
END_TEST

/* The live lookup: loopback is routable wherever the tests run. */
START_TEST(test_loopback_is_routable)
{
	struct event_base *base = event_base_new();
	struct netwatch_callbacks cb = {0};
	struct netwatch *w = NULL;
	char why[256] = "";

	ck_assert_ptr_nonnull(base);
	if (netwatch_new(base, &cb, NULL, &w) < 0) {
		/* No rtnetlink here (a sandbox): nothing to look at. */
		event_base_free(base);
		return;
	}
	netwatch_set_target(w, "ws://127.0.0.1:6020/deepstream");
	ck_assert_msg(netwatch_check(w, why, sizeof(why)), "%s", why);
	ck_assert_str_eq(why, "route to 127.0.0.1");
	/* localhost is never looked up: it is loopback. */
	netwatch_set_target(w, "ws://LocalHost:6020");
	ck_assert_msg(netwatch_check(w, why, sizeof(why)), "%s", why);
	ck_assert_str_eq(why, "route to LocalHost");
	netwatch_free(w);
	event_base_free(base);
}
END_TEST

static Suite *netwatch_suite(void)
{
	Suite *s = suite_create("netwatch");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, test_link_down_and_up);
	tcase_add_test(tc, test_routes_and_addresses);
	tcase_add_test(tc, test_cut_and_foreign_messages);
	tcase_add_test(tc, test_route_answers);
	tcase_add_test(tc, test_loopback_is_routable);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return check_run(netwatch_suite());
}

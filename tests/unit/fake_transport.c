#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <check.h>

#include "fake_transport.h"

struct fake_transport_log fake;

struct transport {
	struct transport_callbacks cb;
	void *userdata;
	bool tls;
};

/* The live transport (the daemon has one at a time). */
static struct transport *live;
/* Sent app frames of the current connection not yet "written". */
static size_t in_flight_from;

void fake_reset(void)
{
	for (size_t i = 0; i < fake.n_sent; i++)
		free(fake.sent[i].data);
	memset(&fake, 0, sizeof(fake));
	fake.send_budget = -1;
	in_flight_from = 0;
}

void fake_forget(void)
{
	for (size_t i = 0; i < fake.n_sent; i++)
		free(fake.sent[i].data);
	fake.n_sent = 0;
	in_flight_from = 0;
}

int transport_new(struct event_base *base, const struct transport_config *cfg,
                  const struct transport_callbacks *cb, void *userdata,
                  struct transport **ret)
{
	struct transport *t = calloc(1, sizeof(*t));

	(void)base;
	if (t == NULL)
		return -ENOMEM;
	t->tls = fake.tls = cfg->tls;
	if (cfg->proxy_host)
		snprintf(fake.last_proxy, sizeof(fake.last_proxy), "%s:%u",
		         cfg->proxy_host, (unsigned)cfg->proxy_port);
	else
		fake.last_proxy[0] = '\0';
	t->cb = *cb;
	t->userdata = userdata;
	live = t;
	fake.transports_made++;
	*ret = t;
	return 0;
}

void transport_free(struct transport *t)
{
	if (t == live)
		live = NULL;
	free(t);
}

bool transport_has_tls(const struct transport *t)
{
	return t && t->tls;
}

const char *transport_kind(const struct transport *t)
{
	(void)t;
	return fake.open ? "fake" : NULL;
}

int transport_connect(struct transport *t, const char *url, uint32_t gen)
{
	/* As the real one: wss:// needs a transport made with tls. */
	if (strncasecmp(url, "wss:", 4) == 0 && !t->tls)
		return -EPROTONOSUPPORT;
	snprintf(fake.last_url, sizeof(fake.last_url), "%s", url);
	fake.connects++;
	fake.gen = gen;
	fake.open = false;
	in_flight_from = fake.n_sent;
	return 0;
}

void transport_disconnect(struct transport *t, uint32_t gen)
{
	(void)t;
	if (gen != fake.gen)
		return;
	fake.disconnects++;
	fake.open = false;
}

static int record(uint32_t gen, const uint8_t *data, size_t len, bool control)
{
	struct fake_frame *f;

	if (!fake.open || gen != fake.gen)
		return -ENOTCONN;
	ck_assert_uint_lt(fake.n_sent, FAKE_MAX_FRAMES);
	f = &fake.sent[fake.n_sent++];
	f->data = malloc(len);
	ck_assert_ptr_nonnull(f->data);
	memcpy(f->data, data, len);
	f->len = len;
	f->control = control;
	f->gen = gen;
	return 0;
}

int transport_send(struct transport *t, uint32_t gen, const uint8_t *data,
                   size_t len)
{
	(void)t;
	if (fake.send_budget == 0)
		return -ENOBUFS;
	if (fake.send_budget > 0)
		fake.send_budget--;
	return record(gen, data, len, false);
}

int transport_send_control(struct transport *t, uint32_t gen,
                           const uint8_t *data, size_t len)
{
	(void)t;
	if (fake.control_fails > 0) {
		fake.control_fails--;
		return -ENOBUFS;
	}
	return record(gen, data, len, true);
}

size_t transport_backlog(const struct transport *t)
{
	(void)t;
	return 0;
}

void fake_open(void)
{
	ck_assert_ptr_nonnull(live);
	fake.open = true;
	live->cb.opened(fake.gen, live->userdata);
}

void fake_receive(const struct wire_msg *m)
{
	uint8_t buf[4096];
	size_t len;

	ck_assert_ptr_nonnull(live);
	ck_assert_int_eq(wire_encode(m, buf, sizeof(buf), &len), 0);
	live->cb.message(fake.gen, buf, len, live->userdata);
}

void fake_close(const char *reason)
{
	ck_assert_ptr_nonnull(live);
	fake.open = false;
	live->cb.closed(fake.gen, reason, live->userdata);
}

void fake_written(void)
{
	in_flight_from = fake.n_sent;
}

void fake_drain(int budget)
{
	ck_assert_ptr_nonnull(live);
	fake.send_budget = budget;
	live->cb.drained(fake.gen, live->userdata);
}

const struct wire_msg *fake_sent_msg(size_t i, struct wire_decoded **ret)
{
	ck_assert_uint_lt(i, fake.n_sent);
	ck_assert_int_eq(wire_decode(fake.sent[i].data, fake.sent[i].len, ret),
	                 0);
	return wire_decoded_msg(*ret);
}

/*
 * A stand-in for daemon/transport.c, linked into the glue tests in its
 * place: it implements transport.h without a thread or a socket, records
 * what the daemon sends, and lets the test play the platform (open, send a
 * frame, close, make room).
 */
#ifndef DSD_TEST_FAKE_TRANSPORT_H
#define DSD_TEST_FAKE_TRANSPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "transport.h"
#include "wire.h"

#define FAKE_MAX_FRAMES 4096

struct fake_frame {
	uint8_t *data;
	size_t len;
	bool control; /* sent with transport_send_control() */
	uint32_t gen;
};

struct fake_transport_log {
	struct fake_frame sent[FAKE_MAX_FRAMES];
	size_t n_sent;
	char last_url[256];
	unsigned connects, disconnects, transports_made;
	bool tls;             /* of the last transport made */
	char last_proxy[256]; /* proxy_host:proxy_port of it, "" for none */
	uint32_t gen;         /* of the last connect */
	bool open;            /* opened delivered, closed not */
	int send_budget;      /* app frames transport_send() takes before
	                         -ENOBUFS; negative: no limit */
	int control_fails;    /* transport_send_control() calls that fail */
};

/* What the one live fake has seen (reset by fake_reset()). */
extern struct fake_transport_log fake;

void fake_reset(void);
/* Frees the frames recorded so far (a long run records more than
 * FAKE_MAX_FRAMES); n_sent starts again at 0. */
void fake_forget(void);
/* The platform side: each delivers a callback as the real one would. */
void fake_open(void);
void fake_receive(const struct wire_msg *m);
void fake_close(const char *reason);
/* The socket took every frame sent so far: none can be taken back. */
void fake_written(void);
/* Room again after -ENOBUFS: budget frames more, then drained. */
void fake_drain(int budget);
/* sent[i] decoded (free with wire_decoded_free()). */
const struct wire_msg *fake_sent_msg(size_t i, struct wire_decoded **ret);

#endif

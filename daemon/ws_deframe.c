/* WebSocket frames from a server, in any pieces (see ws_deframe.h). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ws_deframe.h"

#define OP_CONT   0x0
#define OP_TEXT   0x1
#define OP_BINARY 0x2
#define OP_CLOSE  0x8
#define OP_PING   0x9
#define OP_PONG   0xa

#define CLOSE_PROTOCOL_ERROR 1002
#define CLOSE_TOO_BIG        1009

void ws_close_text(char *buf, size_t size, const uint8_t *payload, size_t len)
{
	char text[128];
	unsigned code = 1005; /* "no status received", RFC 6455 7.4.1 */
	size_t i, n;

	if (len >= 2)
		code = (unsigned)payload[0] << 8 | payload[1];
	if (len <= 2) {
		snprintf(buf, size, "closed by server (code %u)", code);
		return;
	}
	n = len - 2 < sizeof(text) - 1 ? len - 2 : sizeof(text) - 1;
	for (i = 0; i < n; i++)
		text[i] = payload[2 + i] >= 0x20 && payload[2 + i] < 0x7f
		                  ? (char)payload[2 + i]
		                  : '?';
	text[n] = '\0';
	snprintf(buf, size, "closed by server (code %u, \"%s\")", code, text);
}

void ws_deframe_init(struct ws_deframe *d, size_t max_message)
{
	*d = (struct ws_deframe){.max_message = max_message};
}

void ws_deframe_free(struct ws_deframe *d)
{
	free(d->msg);
	d->msg = NULL;
	d->msg_len = d->msg_cap = 0;
}

static int fail(struct ws_deframe *d, int r, uint16_t code, const char *why)
{
	d->error = r;
	d->close_code = code;
	snprintf(d->why, sizeof(d->why), "%s", why);
	return r;
}

/* The header's length once its first two bytes are known. */
static size_t header_size(const uint8_t *h)
{
	uint8_t n = h[1] & 0x7f;

	return (size_t)2 +
	       (n == 126   ? 2
	        : n == 127 ? 8
	                   : 0) +
	       (h[1] & 0x80 ? 4 : 0);
}

/*
 * Takes a whole header: checks it against what a server may send and
 * where the frame may come, and sets the frame being read.
 */
static int begin_frame(struct ws_deframe *d, const uint8_t *h)
{
	uint8_t op = h[0] & 0x0f, n = h[1] & 0x7f;
	bool fin = h[0] & 0x80;
	uint64_t len = n;

	if (h[0] & 0x70)
		return fail(d, -EPROTO, CLOSE_PROTOCOL_ERROR,
		            "frame with reserved bits set");
	if (h[1] & 0x80)
		return fail(d, -EPROTO, CLOSE_PROTOCOL_ERROR,
		            "masked frame from the server");
	if (n == 126) {
		len = (uint64_t)h[2] << 8 | h[3];
	} else if (n == 127) {
		len = 0;
		for (int i = 0; i < 8; i++)
			len = len << 8 | h[2 + i];
		if (len >> 63)
			return fail(d, -EPROTO, CLOSE_PROTOCOL_ERROR,
			            "frame length with the top bit set");
	}
	switch (op) {
	case OP_CLOSE:
	case OP_PING:
	case OP_PONG:
		if (!fin || len > 125)
			return fail(d, -EPROTO, CLOSE_PROTOCOL_ERROR,
			            "fragmented or over-long control frame");
		d->ctl_len = 0;
		break;
	case OP_CONT:
		if (!d->in_message)
			return fail(d, -EPROTO, CLOSE_PROTOCOL_ERROR,
			            "continuation frame without a message");
		break;
	case OP_TEXT:
	case OP_BINARY:
		if (d->in_message)
			return fail(d, -EPROTO, CLOSE_PROTOCOL_ERROR,
			            "new message inside a fragmented one");
		d->msg_len = 0;
		break;
	default:
		return fail(d, -EPROTO, CLOSE_PROTOCOL_ERROR,
		            "frame with an unknown opcode");
	}
	if ((op == OP_CONT || op == OP_TEXT || op == OP_BINARY) &&
	    len > d->max_message - (op == OP_CONT ? d->msg_len : 0)) {
		fail(d, -EMSGSIZE, CLOSE_TOO_BIG, "");
		snprintf(d->why, sizeof(d->why), "message over %zu bytes",
		         d->max_message);
		return -EMSGSIZE;
	}
	d->opcode = op;
	d->fin = fin;
	d->left = len;
	d->in_payload = true;
	return 0;
}

static int msg_append(struct ws_deframe *d, const uint8_t *p, size_t n)
{
	/* An empty fragment: there may be no buffer yet to add nothing to. */
	if (n == 0)
		return 0;
	if (d->msg_len + n > d->msg_cap) {
		size_t cap = d->msg_cap ? d->msg_cap : 4096;
		uint8_t *m;

		while (cap < d->msg_len + n)
			cap *= 2;
		if (cap > d->max_message)
			cap = d->max_message;
		m = realloc(d->msg, cap);
		if (!m)
			return fail(d, -ENOMEM, CLOSE_TOO_BIG, "out of memory");
		d->msg = m;
		d->msg_cap = cap;
	}
	memcpy(d->msg + d->msg_len, p, n);
	d->msg_len += n;
	return 0;
}

/*
 * Whether a close frame may carry code (RFC 6455, 7.4): the assigned codes
 * a frame may hold (1005, 1006 and 1015 only stand for "none received",
 * "connection lost" and "TLS failed", never sent), and the ranges for
 * libraries and applications.  A close frame with another code is a
 * protocol error, and echoing it back would be one of dsd's.
 */
static bool close_code_valid(unsigned code)
{
	return (code >= 1000 && code <= 1003) ||
	       (code >= 1007 && code <= 1014) || (code >= 3000 && code <= 4999);
}

/* A control frame's whole payload. */
static int control(struct ws_deframe *d, const uint8_t *p, size_t n,
                   ws_deframe_cb cb, void *ctx)
{
	enum ws_what what = d->opcode == OP_CLOSE  ? WS_CLOSE
	                    : d->opcode == OP_PING ? WS_PING
	                                           : WS_PONG;

	if (what == WS_CLOSE && n == 1)
		return fail(d, -EPROTO, CLOSE_PROTOCOL_ERROR,
		            "close frame with a one-byte payload");
	if (what == WS_CLOSE && n >= 2 &&
	    !close_code_valid((unsigned)p[0] << 8 | p[1])) {
		fail(d, -EPROTO, CLOSE_PROTOCOL_ERROR, "");
		snprintf(d->why, sizeof(d->why),
		         "close frame with the invalid code %u",
		         (unsigned)p[0] << 8 | p[1]);
		return -EPROTO;
	}
	return cb(ctx, what, p, n);
}

/* Takes up to n payload bytes of the frame being read; *used: how many. */
static int payload(struct ws_deframe *d, const uint8_t *p, size_t n,
                   size_t *used, ws_deframe_cb cb, void *ctx)
{
	size_t take = n < d->left ? n : (size_t)d->left;
	bool data = d->opcode == OP_CONT || d->opcode == OP_TEXT ||
	            d->opcode == OP_BINARY;
	int r;

	*used = take;
	d->left -= take;
	if (!data) {
		/* Whole in this piece: no copy. */
		if (d->left == 0 && d->ctl_len == 0) {
			d->in_payload = false;
			return control(d, p, take, cb, ctx);
		}
		memcpy(d->ctl + d->ctl_len, p, take);
		d->ctl_len += take;
		if (d->left)
			return 0;
		d->in_payload = false;
		return control(d, d->ctl, d->ctl_len, cb, ctx);
	}
	/* A whole message in this piece: handed on where it lies. */
	if (d->left == 0 && d->fin && d->msg_len == 0) {
		d->in_payload = false;
		d->in_message = false;
		return cb(ctx, WS_MESSAGE, p, take);
	}
	r = msg_append(d, p, take);
	if (r < 0)
		return r;
	if (d->left)
		return 0;
	d->in_payload = false;
	if (!d->fin) {
		d->in_message = true;
		return 0;
	}
	d->in_message = false;
	r = cb(ctx, WS_MESSAGE, d->msg, d->msg_len);
	d->msg_len = 0;
	/* One big message should not pin its buffer for good. */
	if (d->msg_cap > 64 * 1024) {
		free(d->msg);
		d->msg = NULL;
		d->msg_cap = 0;
	}
	return r;
}

int ws_deframe_feed(struct ws_deframe *d, const uint8_t *in, size_t len,
                    ws_deframe_cb cb, void *ctx)
{
	size_t used;
	int r;

	if (d->error)
		return d->error;
	while (len > 0) {
		if (d->in_payload) {
			r = payload(d, in, len, &used, cb, ctx);
			in += used;
			len -= used;
			if (r)
				return r;
			continue;
		}
		/* The common case: a whole header where the piece starts. */
		if (d->hdr_len == 0 && len >= 2 && len >= header_size(in)) {
			size_t h = header_size(in);

			r = begin_frame(d, in);
			if (r)
				return r;
			in += h;
			len -= h;
		} else {
			size_t need;

			d->hdr[d->hdr_len++] = *in++;
			len--;
			if (d->hdr_len < 2)
				continue;
			need = header_size(d->hdr);
			while (d->hdr_len < need && len > 0) {
				d->hdr[d->hdr_len++] = *in++;
				len--;
			}
			if (d->hdr_len < need)
				return 0;
			d->hdr_len = 0;
			r = begin_frame(d, d->hdr);
			if (r)
				return r;
		}
		/* An empty frame ends here: no payload byte will call it. */
		if (d->left == 0) {
			r = payload(d, in, 0, &used, cb, ctx);
			if (r)
				return r;
		}
	}
	return 0;
}

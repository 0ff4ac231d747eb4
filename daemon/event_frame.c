/*
 * EVENT frames in one pass (see event_frame.h).  The layout is
 * libdsipc/PROTOCOL.md's: a 4-byte big-endian body length, then a msgpack
 * map with the keys in ipc_encode()'s order ("t", "name", "data") and
 * msgpack-c's choice of the shortest header for each value.
 */
#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "event_frame.h"

/* msgpack's header for a string of n bytes; returns its length. */
static size_t str_header(uint8_t *p, size_t n)
{
	if (n < 32) {
		p[0] = (uint8_t)(0xa0 | n);
		return 1;
	}
	if (n < 256) {
		p[0] = 0xd9;
		p[1] = (uint8_t)n;
		return 2;
	}
	if (n < 65536) {
		p[0] = 0xda;
		p[1] = (uint8_t)(n >> 8);
		p[2] = (uint8_t)n;
		return 3;
	}
	p[0] = 0xdb;
	p[1] = (uint8_t)(n >> 24);
	p[2] = (uint8_t)(n >> 16);
	p[3] = (uint8_t)(n >> 8);
	p[4] = (uint8_t)n;
	return 5;
}

static uint8_t *put(uint8_t *p, const void *src, size_t n)
{
	memcpy(p, src, n);
	return p + n;
}

int event_frame_encode(struct ipc_buf *b, const char *name, size_t name_len,
                       const char *data, size_t data_len)
{
	/* "t": EVENT (404 > 255: a uint16) */
	static const uint8_t head_t[] = {0xa1, 't', 0xcd, IPC_EVENT >> 8,
	                                 IPC_EVENT & 0xff};
	uint8_t hdr[5];
	size_t body, h;
	uint8_t *p;
	int r;

	if (name_len > IPC_MAX_NAME || data_len > IPC_MAX_DATA ||
	    (!data && data_len) || (!name && name_len))
		return -EINVAL;
	/* map header, "t", then each string: key, header, bytes */
	body = 1 + sizeof(head_t);
	if (name)
		body += 5 + str_header(hdr, name_len) + name_len;
	if (data)
		body += 5 + str_header(hdr, data_len) + data_len;
	r = ipc_buf_reserve(b, IPC_HEADER_SIZE + body);
	if (r < 0)
		return r;
	p = b->data + b->len;
	*p++ = (uint8_t)(body >> 24);
	*p++ = (uint8_t)(body >> 16);
	*p++ = (uint8_t)(body >> 8);
	*p++ = (uint8_t)body;
	*p++ = (uint8_t)(0x80 | (1 + !!name + !!data));
	p = put(p, head_t, sizeof(head_t));
	if (name) {
		p = put(p, "\xa4name", 5);
		h = str_header(p, name_len);
		p = put(p + h, name, name_len);
	}
	if (data) {
		p = put(p,
		        "\xa4"
		        "data",
		        5);
		h = str_header(p, data_len);
		p = put(p + h, data, data_len);
	}
	b->len += IPC_HEADER_SIZE + body;
	return 0;
}

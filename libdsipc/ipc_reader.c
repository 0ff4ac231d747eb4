#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "ipc_reader.h"

/* Given back when the buffer empties, so an idle peer that once sent one
 * big frame does not keep a megabyte. */
#define KEEP_CAP (64 * 1024)

void ipc_reader_free(struct ipc_reader *r)
{
	free(r->buf);
	*r = (struct ipc_reader)IPC_READER_INIT;
}

static uint32_t be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
	       (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

int ipc_reader_space(struct ipc_reader *r, size_t chunk, uint8_t **ret_p,
                     size_t *ret_n)
{
	size_t want = chunk ? chunk : 1, unread;
	uint8_t *p;

	if (r->off > 0) {
		unread = r->len - r->off;
		memmove(r->buf, r->buf + r->off, unread);
		r->len = unread;
		r->off = 0;
	}
	/* A partial frame says how big it is: make the whole of it fit. */
	if (r->len >= IPC_HEADER_SIZE) {
		size_t need = IPC_HEADER_SIZE + (size_t)be32(r->buf);

		if (need > IPC_HEADER_SIZE + IPC_MAX_FRAME)
			return -EMSGSIZE;
		if (need > r->len && need - r->len > want)
			want = need - r->len;
	}
	if (r->cap - r->len < want) {
		p = realloc(r->buf, r->len + want);
		if (p == NULL)
			return -ENOMEM;
		r->buf = p;
		r->cap = r->len + want;
	}
	*ret_p = r->buf + r->len;
	*ret_n = r->cap - r->len;
	return 0;
}

void ipc_reader_wrote(struct ipc_reader *r, size_t n)
{
	r->len += n;
}

static int next(struct ipc_reader *r, struct ipc_msg *ret, bool in_place)
{
	size_t flen;
	int k;

	if (r->len == r->off) {
		/* All read: start over at the front, small again. */
		r->off = r->len = 0;
		if (r->cap > KEEP_CAP) {
			free(r->buf);
			r->buf = NULL;
			r->cap = 0;
		}
		return 0;
	}
	k = ipc_frame_peek(r->buf + r->off, r->len - r->off, &flen);
	if (k == -EAGAIN)
		return 0;
	if (k < 0)
		return k;
	k = in_place ? ipc_decode_in_place(r->buf + r->off, flen, ret)
	             : ipc_decode(r->buf + r->off, flen, ret);
	if (k < 0)
		return k == -ENOMEM ? -ENOMEM : -EBADMSG;
	r->off += flen;
	return 1;
}

int ipc_reader_next(struct ipc_reader *r, struct ipc_msg *ret)
{
	return next(r, ret, false);
}

int ipc_reader_next_borrowed(struct ipc_reader *r, struct ipc_msg *ret)
{
	return next(r, ret, true);
}

void ipc_reader_trim(struct ipc_reader *r)
{
	if (r->len != r->off)
		return;
	free(r->buf);
	*r = (struct ipc_reader)IPC_READER_INIT;
}

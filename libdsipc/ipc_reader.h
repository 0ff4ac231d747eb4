/*
 * The IPC frame reader, shared by dsd (ipc_server.c) and libdsipc: fed
 * bytes, it hands out whole decoded messages.  It never touches a socket
 * (the hiredis redisReader shape), so both sides frame, bound and decode
 * input the same way, and it can be tested on its own.
 *
 *   struct ipc_reader r = IPC_READER_INIT;
 *   ipc_reader_space(&r, chunk, &p, &n);   recv() into p, at most n bytes
 *   ipc_reader_wrote(&r, got);
 *   while ((k = ipc_reader_next(&r, &m)) == 1) { use m; ipc_msg_clear(&m); }
 *   k < 0: the stream is broken for good (close it)
 *
 * Memory: one buffer, grown to what a partial frame announces (never past
 * one IPC_MAX_FRAME plus its header, checked before allocating) and given
 * back when it empties after a big frame.  Consumed bytes are skipped by an
 * offset and compacted only when room is needed.
 */
#ifndef DSD_IPC_READER_H
#define DSD_IPC_READER_H

#include <stddef.h>
#include <stdint.h>

#include "ipcproto.h"

struct ipc_reader {
	uint8_t *buf;
	size_t off, len, cap; /* unread bytes are buf[off..len) */
};

#define IPC_READER_INIT                                                        \
	{                                                                      \
		0                                                              \
	}

/* Drops everything buffered and frees the buffer; r can be used again
 * (for a new connection). */
void ipc_reader_free(struct ipc_reader *r);

/*
 * Room to receive into: *ret_p and *ret_n (n >= 1).  At most chunk bytes
 * unless a partial frame needs more to complete.  -EMSGSIZE when the
 * buffered header announces a frame over the limit, -ENOMEM.
 */
int ipc_reader_space(struct ipc_reader *r, size_t chunk, uint8_t **ret_p,
                     size_t *ret_n);
/* n bytes were written where ipc_reader_space() pointed. */
void ipc_reader_wrote(struct ipc_reader *r, size_t n);

/*
 * The next whole message: 1 and *ret filled (ipc_msg_clear() it), 0 when
 * more bytes are needed, or -EMSGSIZE (announced length over the limit) /
 * -EBADMSG (undecodable) / -ENOMEM: the stream cannot be resynchronised.
 * The message owns its strings: later reads do not change it.
 */
int ipc_reader_next(struct ipc_reader *r, struct ipc_msg *ret);

/*
 * ipc_reader_next() without copying the strings out (ipc_decode_in_place()):
 * they are borrowed from r's buffer and live until the next call on r
 * (any ipc_reader_* function may move or free the buffer), so the message
 * must be done with before r is fed or asked again.  ipc_msg_clear() is
 * harmless and frees nothing.  For dsd's server, which handles each
 * message completely before the next (a request copies whatever it keeps).
 */
int ipc_reader_next_borrowed(struct ipc_reader *r, struct ipc_msg *ret);

/* Bytes of memory held now, for accounting. */
/* Nothing unread: the buffer goes, whatever its size (for a server that
 * keeps many quiet peers). */
void ipc_reader_trim(struct ipc_reader *r);
static inline size_t ipc_reader_capacity(const struct ipc_reader *r)
{
	return r->cap;
}

#endif

/*
 * The reference IPC codec (see ipc_ref.c): the same contract as
 * ipc_encode() and ipc_decode() in ipcproto.h.
 */
#ifndef DSD_IPC_REF_H
#define DSD_IPC_REF_H

#include "ipcproto.h"

int ref_ipc_encode(struct ipc_buf *b, const struct ipc_msg *m);
int ref_ipc_decode(const uint8_t *frame, size_t len, struct ipc_msg *ret);

#endif

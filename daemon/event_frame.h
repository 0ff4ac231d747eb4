/*
 * The EVENT frame a local subscriber receives, {t: EVENT, name, data},
 * written straight into a buffer: the same bytes ipc_encode() writes
 * (test_event_frame compares them), in one pass, without msgpack-c's
 * measuring pass.  Fan-out encodes each platform event once with it.
 */
#ifndef DSD_EVENT_FRAME_H
#define DSD_EVENT_FRAME_H

#include <stddef.h>

#include "ipcproto.h"

/*
 * Appends the frame (header included) to b.  name_len and data_len are
 * the lengths of name and data (0 for NULL); data may be NULL (no "data").
 * Returns 0, -EINVAL for a name over IPC_MAX_NAME or data over
 * IPC_MAX_DATA, -ENOBUFS when b would pass its limit (b is unchanged), or
 * -ENOMEM.
 */
int event_frame_encode(struct ipc_buf *b, const char *name, size_t name_len,
                       const char *data, size_t data_len);

#endif

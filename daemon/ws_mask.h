/*
 * The masks a WebSocket client puts on its frames (RFC 6455, section 5.3:
 * unpredictable, so from the kernel's generator), fetched 64 frames' worth
 * at a time: one getrandom() per 64 frames instead of one read of
 * /dev/urandom per frame, as lws 4.1 does.  One pool per connection.
 */
#ifndef DSD_WS_MASK_H
#define DSD_WS_MASK_H

#include <stddef.h>
#include <stdint.h>

#define WS_MASK_POOL 256

struct ws_masks {
	uint8_t pool[WS_MASK_POOL];
	size_t used; /* WS_MASK_POOL: spent, refilled at the next frame */
};

/* An empty pool (nothing is fetched until the first frame). */
void ws_masks_init(struct ws_masks *m);
/* The next frame's 4 bytes, or NULL when the kernel gave none. */
const uint8_t *ws_masks_next(struct ws_masks *m);

#endif

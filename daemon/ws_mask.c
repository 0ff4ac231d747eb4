/* WebSocket frame masks, 64 frames' worth at a time (see ws_mask.h). */
#include <sys/random.h>

#include "ws_mask.h"

void ws_masks_init(struct ws_masks *m)
{
	m->used = WS_MASK_POOL;
}

const uint8_t *ws_masks_next(struct ws_masks *m)
{
	if (m->used == WS_MASK_POOL) {
		if (getrandom(m->pool, WS_MASK_POOL, 0) != WS_MASK_POOL)
			return NULL;
		m->used = 0;
	}
	m->used += 4;
	return m->pool + m->used - 4;
}

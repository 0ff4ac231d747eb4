/* WebSocket client frames (see ws_frame.h). */
#include <string.h>

#include "ws_frame.h"

#define FIN    0x80
#define MASKED 0x80

static size_t header_size(size_t len)
{
	return len < 126 ? 2 : len <= 0xffff ? 4 : 10;
}

size_t ws_frame_size(size_t len)
{
	return header_size(len) + 4 + len;
}

size_t ws_frame_write(uint8_t *out, const uint8_t *payload, size_t len,
                      const uint8_t mask[4])
{
	return ws_frame_write_op(out, WS_OP_BINARY, payload, len, mask);
}

size_t ws_frame_write_op(uint8_t *out, uint8_t opcode, const uint8_t *payload,
                         size_t len, const uint8_t mask[4])
{
	size_t h = header_size(len), i = 0;
	uint64_t m8;
	uint32_t m4;
	uint8_t *dst;

	out[0] = (uint8_t)(FIN | opcode);
	if (h == 2) {
		out[1] = (uint8_t)(MASKED | len);
	} else if (h == 4) {
		out[1] = MASKED | 126;
		out[2] = (uint8_t)(len >> 8);
		out[3] = (uint8_t)len;
	} else {
		out[1] = MASKED | 127;
		for (int k = 0; k < 8; k++)
			out[2 + k] = (uint8_t)((uint64_t)len >> (56 - 8 * k));
	}
	memcpy(out + h, mask, 4);
	dst = out + h + 4;
	/* The mask repeats every 4 bytes from the payload's first: XOR 8
	 * bytes at a time with the mask twice over. */
	memcpy(&m4, mask, 4);
	m8 = (uint64_t)m4 << 32 | m4;
	for (; len - i >= 8; i += 8) {
		uint64_t w;

		memcpy(&w, payload + i, 8);
		w ^= m8;
		memcpy(dst + i, &w, 8);
	}
	for (; i < len; i++)
		dst[i] = payload[i] ^ mask[i & 3];
	return h + 4 + len;
}

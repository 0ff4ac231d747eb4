#include <stdint.h>
#include <string.h>

#include "utf8.h"

bool utf8_valid(const void *p, size_t len)
{
	const uint8_t *s = p;
	size_t i = 0;

	while (i < len) {
		uint8_t b = s[i];
		uint32_t cp, min;
		size_t more;

		if (b < 0x80) {
			uint64_t w;

			i++;
			/* ASCII runs (most event data) eight bytes at a time.
			 */
			while (len - i >= 8) {
				memcpy(&w, s + i, 8);
				if (w & 0x8080808080808080ull)
					break;
				i += 8;
			}
			continue;
		}
		if ((b & 0xe0) == 0xc0) {
			more = 1;
			cp = b & 0x1f;
			min = 0x80;
		} else if ((b & 0xf0) == 0xe0) {
			more = 2;
			cp = b & 0x0f;
			min = 0x800;
		} else if ((b & 0xf8) == 0xf0) {
			more = 3;
			cp = b & 0x07;
			min = 0x10000;
		} else {
			return false; /* a continuation byte, or 0xf8..0xff */
		}
		if (len - i - 1 < more)
			return false; /* cut short */
		for (size_t k = 1; k <= more; k++) {
			if ((s[i + k] & 0xc0) != 0x80)
				return false;
			cp = cp << 6 | (s[i + k] & 0x3f);
		}
		if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
			return false;
		i += more + 1;
	}
	return true;
}

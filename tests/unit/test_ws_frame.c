/* WebSocket client frames (daemon/ws_frame.c), read back as a server
 * reads them (RFC 6455, 5.2). */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "check-run.h"
#include "ws_frame.h"
#include "ws_mask.h"

/* Parses one frame as a server would; returns its payload (unmasked,
 * malloc'd) and checks every header bit. */
static uint8_t *server_read(const uint8_t *f, size_t flen, size_t *ret_len)
{
	size_t h = 2, len = f[1] & 0x7f;
	uint8_t *out;

	ck_assert_uint_eq(f[0], 0x82); /* FIN, no RSV, binary */
	ck_assert(f[1] & 0x80);        /* masked */
	if (len == 126) {
		len = (size_t)f[2] << 8 | f[3];
		h = 4;
		ck_assert_uint_ge(len, 126); /* shortest form */
	} else if (len == 127) {
		len = 0;
		for (int k = 0; k < 8; k++)
			len = len << 8 | f[2 + k];
		h = 10;
		ck_assert_uint_gt(len, 0xffff);
		ck_assert(!(f[2] & 0x80)); /* the top bit must be 0 */
	}
	ck_assert_uint_eq(flen, h + 4 + len);
	out = malloc(len + 1);
	ck_assert_ptr_nonnull(out);
	for (size_t i = 0; i < len; i++)
		out[i] = f[h + 4 + i] ^ f[h + (i & 3)];
	*ret_len = len;
	return out;
}

START_TEST(test_sizes_and_payloads)
{
	static const size_t sizes[] = {0,     1,     7,     8,      9,
	                               125,   126,   127,   1000,   65535,
	                               65536, 65537, 70001, 1 << 20};
	static const uint8_t mask[4] = {0x12, 0x34, 0xab, 0xff};
	uint8_t *payload = malloc((1 << 20) + 1);
	uint8_t *frame = malloc((1 << 20) + WS_FRAME_OVERHEAD);

	ck_assert(payload != NULL && frame != NULL);
	for (size_t i = 0; i < (1 << 20); i++)
		payload[i] = (uint8_t)(i * 7 + 3);
	for (size_t k = 0; k < sizeof(sizes) / sizeof(sizes[0]); k++) {
		size_t len = sizes[k], got = 0, n;
		uint8_t *back;

		n = ws_frame_write(frame, payload, len, mask);
		ck_assert_uint_eq(n, ws_frame_size(len));
		ck_assert_uint_le(n, len + WS_FRAME_OVERHEAD);
		back = server_read(frame, n, &got);
		ck_assert_uint_eq(got, len);
		ck_assert(len == 0 || memcmp(back, payload, len) == 0);
		free(back);
	}
	free(payload);
	free(frame);
}
END_TEST

/* Known bytes: a 3-byte payload "abc" with mask 01 02 03 04. */
START_TEST(test_vector)
{
	static const uint8_t mask[4] = {1, 2, 3, 4};
	static const uint8_t want[] = {0x82, 0x83,    1,       2,      3,
	                               4,    'a' ^ 1, 'b' ^ 2, 'c' ^ 3};
	uint8_t out[16];

	ck_assert_uint_eq(ws_frame_write(out, (const uint8_t *)"abc", 3, mask),
	                  sizeof(want));
	ck_assert_mem_eq(out, want, sizeof(want));
}
END_TEST

/* 64 frames from one pool, then a fresh pool from the kernel. */
START_TEST(test_mask_pool)
{
	struct ws_masks m;
	const uint8_t *first, *p = NULL;

	ws_masks_init(&m);
	first = ws_masks_next(&m);
	ck_assert_ptr_nonnull(first);
	ck_assert_ptr_eq(first, m.pool);
	for (int i = 1; i < WS_MASK_POOL / 4; i++) {
		p = ws_masks_next(&m);
		ck_assert_ptr_eq(p, m.pool + 4 * i);
	}
	/* Spent: the next one refills and starts at the front again. */
	ck_assert_ptr_eq(ws_masks_next(&m), m.pool);
	ck_assert_uint_eq(m.used, 4);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("ws_frame");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, test_sizes_and_payloads);
	tcase_add_test(tc, test_vector);
	tcase_add_test(tc, test_mask_pool);
	suite_add_tcase(s, tc);
	return check_run(s);
}

/* The shared IPC frame reader, fed by hand: no sockets. */
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "check-run.h"
#include "ipc_reader.h"

static void feed(struct ipc_reader *r, const uint8_t *p, size_t n, size_t chunk)
{
	while (n > 0) {
		uint8_t *dst;
		size_t room, k;

		ck_assert_int_eq(ipc_reader_space(r, chunk, &dst, &room), 0);
		ck_assert_uint_ge(room, 1);
		k = n < room ? n : room;
		if (k > chunk)
			k = chunk;
		memcpy(dst, p, k);
		ipc_reader_wrote(r, k);
		p += k;
		n -= k;
	}
}

static void encode_emits(struct ipc_buf *b, int count, size_t data_len)
{
	static char data[200000];

	memset(data, '7', sizeof(data));
	for (int k = 0; k < count; k++) {
		struct ipc_msg m = {.type = IPC_EMIT,
		                    .has_id = true,
		                    .id = (uint32_t)k + 1,
		                    .name = "n",
		                    .data = data,
		                    .data_len = data_len};

		ck_assert_int_eq(ipc_encode(b, &m), 0);
	}
}

START_TEST(test_byte_by_byte_and_batched)
{
	size_t chunks[] = {1, 3, 7, 64 * 1024};

	for (size_t i = 0; i < sizeof(chunks) / sizeof(chunks[0]); i++) {
		struct ipc_reader r = IPC_READER_INIT;
		struct ipc_buf b;
		struct ipc_msg m;
		int got = 0;

		ipc_buf_init(&b, 1 << 24);
		encode_emits(&b, 20, 10);
		/* feed in pieces, taking messages as they complete */
		for (size_t off = 0; off < b.len; off += chunks[i]) {
			size_t n = b.len - off < chunks[i] ? b.len - off
			                                   : chunks[i];

			feed(&r, b.data + off, n, chunks[i]);
			while (ipc_reader_next(&r, &m) == 1) {
				ck_assert_uint_eq(m.id, (uint32_t)++got);
				ck_assert_uint_eq(m.data_len, 10);
				ipc_msg_clear(&m);
			}
		}
		ck_assert_int_eq(got, 20);
		ck_assert_int_eq(ipc_reader_next(&r, &m), 0);
		ipc_buf_free(&b);
		ipc_reader_free(&r);
	}
}
END_TEST

/* Borrowed strings: each message is right though the frames before it
 * were rewritten in place, and its strings are in the reader's buffer. */
START_TEST(test_borrowed)
{
	struct ipc_reader r = IPC_READER_INIT;
	struct ipc_buf b;
	struct ipc_msg m;
	uint32_t want = 1;
	char data[40];

	ipc_buf_init(&b, 1 << 20);
	for (uint32_t k = 1; k <= 5; k++) {
		struct ipc_msg e = {.type = IPC_EMIT,
		                    .has_id = true,
		                    .id = k,
		                    .name = k % 2 ? "odd" : "",
		                    .data = data,
		                    .data_len =
		                            (size_t)snprintf(data, sizeof(data),
		                                             "{\"k\":%u}", k)};

		ck_assert_int_eq(ipc_encode(&b, &e), 0);
	}
	feed(&r, b.data, b.len, 64 * 1024);
	while (ipc_reader_next_borrowed(&r, &m) == 1) {
		snprintf(data, sizeof(data), "{\"k\":%u}", want);
		ck_assert_uint_eq(m.id, want);
		ck_assert_str_eq(m.name, want % 2 ? "odd" : "");
		ck_assert_uint_eq(m.data_len, strlen(data));
		ck_assert_str_eq(m.data, data);
		ck_assert_ptr_null(m.zone_);
		ck_assert((const uint8_t *)m.data > r.buf &&
		          (const uint8_t *)m.data < r.buf + r.off);
		ipc_msg_clear(&m);
		want++;
	}
	ck_assert_uint_eq(want, 6);
	ipc_reader_free(&r);
	ipc_buf_free(&b);
}
END_TEST

START_TEST(test_big_frame_memory_given_back)
{
	struct ipc_reader r = IPC_READER_INIT;
	struct ipc_buf b;
	struct ipc_msg m;

	ipc_buf_init(&b, 1 << 24);
	encode_emits(&b, 1, 150000);
	feed(&r, b.data, b.len, 4096);
	ck_assert_uint_ge(ipc_reader_capacity(&r), 150000);
	ck_assert_int_eq(ipc_reader_next(&r, &m), 1);
	ck_assert_uint_eq(m.data_len, 150000);
	ipc_msg_clear(&m);
	ck_assert_int_eq(ipc_reader_next(&r, &m), 0);
	ck_assert_uint_le(ipc_reader_capacity(&r), 64 * 1024);
	ipc_buf_free(&b);
	ipc_reader_free(&r);
}
END_TEST

START_TEST(test_oversize_announced)
{
	struct ipc_reader r = IPC_READER_INIT;
	uint8_t hdr[4] = {0x7f, 0xff, 0xff, 0xff};
	uint8_t *p;
	size_t room;
	struct ipc_msg m;

	feed(&r, hdr, sizeof(hdr), 64);
	/* refused before the body is awaited, before anything is allocated */
	ck_assert_int_eq(ipc_reader_next(&r, &m), -EMSGSIZE);
	ck_assert_int_eq(ipc_reader_space(&r, 64, &p, &room), -EMSGSIZE);
	ck_assert_uint_lt(ipc_reader_capacity(&r), 1024);
	ipc_reader_free(&r);
}
END_TEST

START_TEST(test_garbage)
{
	struct ipc_reader r = IPC_READER_INIT;
	uint8_t junk[] = {0, 0, 0, 3, 0xc1, 0xc1, 0xc1};
	struct ipc_msg m;

	feed(&r, junk, sizeof(junk), 64);
	ck_assert_int_eq(ipc_reader_next(&r, &m), -EBADMSG);
	ipc_reader_free(&r);
	/* and a freed reader works again */
	ck_assert_int_eq(ipc_reader_next(&r, &m), 0);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("ipc_reader");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, test_byte_by_byte_and_batched);
	tcase_add_test(tc, test_borrowed);
	tcase_add_test(tc, test_big_frame_memory_given_back);
	tcase_add_test(tc, test_oversize_announced);
	tcase_add_test(tc, test_garbage);
	suite_add_tcase(s, tc);
	return check_run(s);
}

/* EVENT frames written in one pass are byte for byte what ipc_encode()
 * writes, at every string header size, and decode to the same event. */
#include <check.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "check-run.h"
#include "event_frame.h"
#include "ipcproto.h"

static void same_as_ipc_encode(const char *name, const char *data,
                               size_t data_len)
{
	struct ipc_msg m = {.type = IPC_EVENT,
	                    .name = name,
	                    .data = data,
	                    .data_len = data_len};
	struct ipc_buf want, got;
	struct ipc_msg back;

	ipc_buf_init(&want, 4 * 1024 * 1024);
	ipc_buf_init(&got, 4 * 1024 * 1024);
	ck_assert_int_eq(ipc_encode(&want, &m), 0);
	/* appended after what is there, like ipc_encode() */
	ck_assert_int_eq(ipc_buf_reserve(&got, 3), 0);
	memcpy(got.data, "xyz", 3);
	got.len = 3;
	ck_assert_int_eq(event_frame_encode(&got, name, name ? strlen(name) : 0,
	                                    data, data_len),
	                 0);
	ck_assert_uint_eq(got.len, want.len + 3);
	ck_assert(memcmp(got.data + 3, want.data, want.len) == 0);
	ck_assert_int_eq(ipc_decode(got.data + 3, got.len - 3, &back), 0);
	ck_assert_int_eq(back.type, IPC_EVENT);
	ck_assert_str_eq(back.name, name);
	if (data) {
		ck_assert_uint_eq(back.data_len, data_len);
		ck_assert(memcmp(back.data, data, data_len) == 0);
	} else
		ck_assert_ptr_null(back.data);
	ipc_msg_clear(&back);
	ipc_buf_free(&want);
	ipc_buf_free(&got);
}

START_TEST(test_every_header_size)
{
	static const size_t sizes[] = {0,   1,     31,    32,     255,
	                               256, 65535, 65536, 1000000};
	char *data = malloc(IPC_MAX_DATA);
	char name[IPC_MAX_NAME + 1];

	ck_assert_ptr_nonnull(data);
	memset(data, 'd', IPC_MAX_DATA);
	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		same_as_ipc_encode("a/b", data, sizes[i]);
		if (sizes[i] <= IPC_MAX_NAME) {
			memset(name, 'n', sizes[i]);
			name[sizes[i]] = '\0';
			if (sizes[i] > 0) {
				same_as_ipc_encode(name, "{}", 2);
				same_as_ipc_encode(name, NULL, 0);
			}
		}
	}
	memset(name, 'n', IPC_MAX_NAME);
	name[IPC_MAX_NAME] = '\0';
	same_as_ipc_encode(name, data, IPC_MAX_DATA);
	free(data);
}
END_TEST

START_TEST(test_limits)
{
	char name[IPC_MAX_NAME + 2];
	struct ipc_buf b;

	ipc_buf_init(&b, 64);
	memset(name, 'n', sizeof(name) - 1);
	name[sizeof(name) - 1] = '\0';
	ck_assert_int_eq(event_frame_encode(&b, name, strlen(name), "1", 1),
	                 -EINVAL);
	ck_assert_int_eq(event_frame_encode(&b, "a", 1, NULL, 1), -EINVAL);
	ck_assert_int_eq(event_frame_encode(&b, "a", 1, "1", IPC_MAX_DATA + 1),
	                 -EINVAL);
	/* past the buffer's limit: nothing written */
	ck_assert_int_eq(event_frame_encode(&b, "a", 1, name, 100), -ENOBUFS);
	ck_assert_uint_eq(b.len, 0);
	ipc_buf_free(&b);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("event_frame");
	TCase *tc = tcase_create("encode");

	tcase_add_test(tc, test_every_header_size);
	tcase_add_test(tc, test_limits);
	suite_add_tcase(s, tc);
	return check_run(s);
}

/*
 * Unit tests for status.c's queue.window: the send window (send_window.c)
 * as `dsctl status --json` and the metrics show it, from known window
 * states.  The rates read 0 until a sample measured them: before that
 * they are only the window's starting point.
 */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "check-run.h"
#include "metrics.h"
#include "send_window.h"
#include "status.h"

static json_int_t field(const json_t *o, const char *key)
{
	const json_t *v = json_object_get(o, key);

	ck_assert_msg(json_is_integer(v), "no integer %s", key);
	return json_integer_value(v);
}

static void check_window(const struct send_window *w, json_int_t bytes,
                         json_int_t messages, json_int_t byte_rate,
                         json_int_t message_rate)
{
	json_t *o = status_send_window(w);

	ck_assert_ptr_nonnull(o);
	ck_assert_uint_eq(json_object_size(o), 4);
	ck_assert_int_eq(field(o, "bytes"), bytes);
	ck_assert_int_eq(field(o, "messages"), messages);
	ck_assert_int_eq(field(o, "confirmedBytesPerSecond"), byte_rate);
	ck_assert_int_eq(field(o, "confirmedMessagesPerSecond"), message_rate);
	json_decref(o);
}

START_TEST(test_floor_not_measured)
{
	struct send_window w;

	send_window_reset(&w);
	/* The starting rates are not zero inside, but nothing was
	 * measured. */
	ck_assert_uint_gt(w.byte_rate, 0);
	check_window(&w, 16384, 128, 0, 0);
	/* The first confirmation only starts the clock. */
	send_window_confirmed(&w, 1000000, 4096, 32);
	check_window(&w, 16384, 128, 0, 0);
	/* Less than a sample's span later: still nothing measured. */
	send_window_confirmed(&w, 1001000, 4096, 32);
	check_window(&w, 16384, 128, 0, 0);
}
END_TEST

/*
 * 64 KiB in 500 emits confirmed over 2 ms: samples of 32,768,000 B/s and
 * 250,000 emits/s, a quarter of the way from the floor's rates (16 KiB
 * and 128 emits per 2 ms: 8,192,000 and 64,000): 14,336,000 B/s and
 * 110,500 emits/s, a window of 28,672 bytes and 221 emits.
 */
START_TEST(test_after_a_sample)
{
	struct send_window w;

	send_window_reset(&w);
	send_window_confirmed(&w, 1000000, 1, 1);
	send_window_confirmed(&w, 1002000, 65536, 500);
	check_window(&w, 28672, 221, 14336000, 110500);
	/* A lost connection: the floor again, the rate unknown. */
	send_window_reset(&w);
	check_window(&w, 16384, 128, 0, 0);
}
END_TEST

/* The same figures as gauges (metrics.c reads them from the document). */
START_TEST(test_as_metrics)
{
	struct send_window w;
	json_t *st = json_object();
	json_t *q = json_object();
	char *text;

	send_window_reset(&w);
	send_window_confirmed(&w, 1000000, 1, 1);
	send_window_confirmed(&w, 1002000, 65536, 500);
	json_object_set_new(q, "window", status_send_window(&w));
	json_object_set_new(st, "queue", q);
	text = metrics_render(st, NULL);
	ck_assert_ptr_nonnull(text);
	ck_assert_ptr_nonnull(strstr(text, "\ndsd_send_window_bytes 28672\n"));
	ck_assert_ptr_nonnull(strstr(text, "\ndsd_send_window_messages 221\n"));
	ck_assert_ptr_nonnull(
	        strstr(text, "\ndsd_confirm_rate_bytes_per_second 14336000\n"));
	ck_assert_ptr_nonnull(strstr(
	        text, "\ndsd_confirm_rate_messages_per_second 110500\n"));
	free(text);
	json_decref(st);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("status");
	TCase *tc = tcase_create("window");

	tcase_add_test(tc, test_floor_not_measured);
	tcase_add_test(tc, test_after_a_sample);
	tcase_add_test(tc, test_as_metrics);
	suite_add_tcase(s, tc);
	return check_run(s);
}

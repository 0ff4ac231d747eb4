/* Unit tests for log.c: escaping, line formatting, the rate limiter (with a
 * fake clock) and whole lines from two threads. */
#include <check.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check-run.h"
#include "log.h"

static const char *esc(const char *s, size_t len, size_t buflen)
{
	static char buf[256];

	ck_assert_uint_le(buflen, sizeof(buf));
	return log_escape(s, len, buf, buflen);
}

START_TEST(test_escape_plain)
{
	ck_assert_str_eq(esc("hello", 5, 64), "hello");
	ck_assert_str_eq(esc("", 0, 64), "");
	ck_assert_str_eq(esc(NULL, 3, 64), "");
	/* len, not the NUL, decides. */
	ck_assert_str_eq(esc("abcdef", 3, 64), "abc");
}
END_TEST

START_TEST(test_escape_controls)
{
	ck_assert_str_eq(esc("a\nb", 3, 64), "a\\nb");
	ck_assert_str_eq(esc("\r\t", 2, 64), "\\r\\t");
	ck_assert_str_eq(esc("q\"b\\", 4, 64), "q\\\"b\\\\");
	ck_assert_str_eq(esc("\x1b[31m", 5, 64), "\\x1b[31m");
	ck_assert_str_eq(esc("a\0b", 3, 64), "a\\x00b");
	ck_assert_str_eq(esc("\x7f", 1, 64), "\\x7f");
	ck_assert_str_eq(esc("\xc3\xa9", 2, 64), "\\xc3\\xa9");
	ck_assert_str_eq(esc("\xff", 1, 64), "\\xff");
}
END_TEST

START_TEST(test_escape_truncate)
{
	/* Exactly fits: no dots. */
	ck_assert_str_eq(esc("abcdefg", 7, 8), "abcdefg");
	/* One byte over: cut with "..." inside buflen - 1. */
	ck_assert_str_eq(esc("abcdefgh", 8, 8), "abcd...");
	/* Never half an escape. */
	ck_assert_str_eq(esc("ab\ncdefgh", 9, 8), "ab\\n...");
	ck_assert_str_eq(esc("abc\ncdefgh", 10, 8), "abc...");
	ck_assert_str_eq(esc("\x01\x02", 2, 8), "\\x01...");
	ck_assert_str_eq(esc("\x01\x02", 2, 9), "\\x01\\x02");
	/* Tiny buffers. */
	ck_assert_str_eq(esc("abcdef", 6, 1), "");
	ck_assert_str_eq(esc("abcdef", 6, 2), ".");
	ck_assert_str_eq(esc("abcdef", 6, 4), "...");
	ck_assert_str_eq(esc("abc", 3, 4), "abc");
	ck_assert_str_eq(esc("\n", 1, 2), ".");
	char b[1];
	ck_assert_str_eq(log_escape("x", 1, b, 0), "");
}
END_TEST

static size_t fmt(char *buf, size_t buflen, enum log_target t, int level,
                  uint64_t now, const char *f, ...)
        __attribute__((format(printf, 6, 7)));
static size_t fmt(char *buf, size_t buflen, enum log_target t, int level,
                  uint64_t now, const char *f, ...)
{
	va_list ap;
	size_t n;

	va_start(ap, f);
	n = log_format_line(buf, buflen, t, level, now, f, ap);
	va_end(ap);
	ck_assert_uint_eq(n, strlen(buf));
	return n;
}

START_TEST(test_format_console)
{
	char buf[256];

	/* 2026-11-28T10:00:00.123Z */
	fmt(buf, sizeof(buf), LOG_TARGET_CONSOLE, LOG_WARNING, 1795860000123ULL,
	    "x=%d %s", 5, "y");
	ck_assert_str_eq(buf, "2026-11-28T10:00:00.123Z dsd warning: x=5 y\n");
	fmt(buf, sizeof(buf), LOG_TARGET_CONSOLE, LOG_ERR, 7, "boom");
	ck_assert_str_eq(buf, "1970-01-01T00:00:00.007Z dsd error: boom\n");
	fmt(buf, sizeof(buf), LOG_TARGET_CONSOLE, 99, 0, "d");
	ck_assert_str_eq(buf, "1970-01-01T00:00:00.000Z dsd debug: d\n");
}
END_TEST

START_TEST(test_format_journal)
{
	char buf[256];

	fmt(buf, sizeof(buf), LOG_TARGET_JOURNAL, LOG_ERR, 0, "a %u", 1u);
	ck_assert_str_eq(buf, "<3>a 1\n");
	fmt(buf, sizeof(buf), LOG_TARGET_JOURNAL, LOG_WARNING, 0, "w");
	ck_assert_str_eq(buf, "<4>w\n");
	fmt(buf, sizeof(buf), LOG_TARGET_JOURNAL, LOG_NOTICE, 0, "n");
	ck_assert_str_eq(buf, "<5>n\n");
	fmt(buf, sizeof(buf), LOG_TARGET_JOURNAL, LOG_INFO, 0, "i");
	ck_assert_str_eq(buf, "<6>i\n");
	fmt(buf, sizeof(buf), LOG_TARGET_JOURNAL, LOG_DEBUG, 0, "d");
	ck_assert_str_eq(buf, "<7>d\n");
	/* Embedded controls cannot start a second line. */
	fmt(buf, sizeof(buf), LOG_TARGET_JOURNAL, LOG_INFO, 0, "a\n<0>b%s",
	    "\r\x1b");
	ck_assert_str_eq(buf, "<6>a?<0>b??\n");
}
END_TEST

START_TEST(test_format_truncate)
{
	char buf[16];
	char big[LOG_LINE_MAX * 2];

	fmt(buf, sizeof(buf), LOG_TARGET_JOURNAL, LOG_INFO, 0, "0123456789");
	ck_assert_str_eq(buf, "<6>0123456789\n");
	fmt(buf, sizeof(buf), LOG_TARGET_JOURNAL, LOG_INFO, 0, "0123456789a");
	ck_assert_str_eq(buf, "<6>0123456789a\n");
	fmt(buf, sizeof(buf), LOG_TARGET_JOURNAL, LOG_INFO, 0, "0123456789ab");
	ck_assert_str_eq(buf, "<6>01234567...\n");
	/* Prefix longer than the buffer: still one terminated line. */
	fmt(buf, sizeof(buf), LOG_TARGET_CONSOLE, LOG_INFO, 0, "x");
	ck_assert_uint_eq(strlen(buf), sizeof(buf) - 1);
	ck_assert_int_eq(buf[sizeof(buf) - 2], '\n');

	char line[LOG_LINE_MAX];
	memset(big, 'z', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	size_t n = fmt(line, sizeof(line), LOG_TARGET_CONSOLE, LOG_INFO, 0,
	               "%s", big);
	ck_assert_uint_eq(n, sizeof(line) - 1);
	ck_assert_str_eq(line + n - 4, "...\n");
	ck_assert_uint_eq(fmt(line, 1, LOG_TARGET_CONSOLE, LOG_INFO, 0, "x"),
	                  0);
}
END_TEST

START_TEST(test_ratelimit)
{
	struct log_ratelimit rl = LOG_RATELIMIT_INIT(1000, 3);
	unsigned sup = 99;
	uint64_t t = 5000;

	/* burst lines pass, the rest of the interval is refused */
	for (int i = 0; i < 3; i++) {
		ck_assert(log_ratelimit_ok(&rl, t + (uint64_t)i, &sup));
		ck_assert_uint_eq(sup, 0);
	}
	sup = 77;
	for (int i = 0; i < 5; i++)
		ck_assert(!log_ratelimit_ok(&rl, t + 500, &sup));
	ck_assert_uint_eq(sup, 77); /* untouched when refused */
	ck_assert(!log_ratelimit_ok(&rl, t + 999, &sup));
	/* At exactly interval_ms after the first line a new interval opens
	 * and the first line reports what was dropped. */
	ck_assert(log_ratelimit_ok(&rl, t + 1000, &sup));
	ck_assert_uint_eq(sup, 6);
	ck_assert(log_ratelimit_ok(&rl, t + 1001, &sup));
	ck_assert_uint_eq(sup, 0);
	ck_assert(log_ratelimit_ok(&rl, t + 1002, &sup));
	ck_assert(!log_ratelimit_ok(&rl, t + 1003, &sup));
	/* A long pause: passes, with the one dropped line counted. */
	ck_assert(log_ratelimit_ok(&rl, t + 100000, &sup));
	ck_assert_uint_eq(sup, 1);
	/* NULL out-parameter is fine. */
	ck_assert(log_ratelimit_ok(&rl, t + 100001, NULL));
}
END_TEST

START_TEST(test_ratelimit_clock_back_and_disabled)
{
	struct log_ratelimit rl = LOG_RATELIMIT_INIT(1000, 1);
	struct log_ratelimit off1 = LOG_RATELIMIT_INIT(0, 1);
	struct log_ratelimit off2 = LOG_RATELIMIT_INIT(1000, 0);
	unsigned sup;

	ck_assert(log_ratelimit_ok(&rl, 10000, &sup));
	ck_assert(!log_ratelimit_ok(&rl, 10001, &sup));
	/* The clock went back: a new interval rather than a long silence. */
	ck_assert(log_ratelimit_ok(&rl, 50, &sup));
	ck_assert_uint_eq(sup, 1);
	for (int i = 0; i < 100; i++) {
		ck_assert(log_ratelimit_ok(&off1, 1, &sup));
		ck_assert(log_ratelimit_ok(&off2, 1, &sup));
		ck_assert_uint_eq(sup, 0);
	}
	/* Starting at time 0 works like any other time. */
	struct log_ratelimit z = LOG_RATELIMIT_INIT(10, 1);
	ck_assert(log_ratelimit_ok(&z, 0, &sup));
	ck_assert(!log_ratelimit_ok(&z, 9, &sup));
	ck_assert(log_ratelimit_ok(&z, 10, &sup));
	ck_assert_uint_eq(sup, 1);
}
END_TEST

/* Points stderr at a fresh temporary file and returns its fd for reading. */
static int capture_stderr(void)
{
	char path[] = "/tmp/dsd-test-log-XXXXXX";
	int fd = mkstemp(path);

	ck_assert_int_ge(fd, 0);
	unlink(path);
	ck_assert_int_ge(fcntl(fd, F_SETFL, O_APPEND), 0);
	ck_assert_int_eq(dup2(fd, STDERR_FILENO), STDERR_FILENO);
	return fd;
}

static char *read_all(int fd)
{
	static char buf[4 << 20];
	ssize_t n = pread(fd, buf, sizeof(buf) - 1, 0);

	ck_assert_int_ge(n, 0);
	ck_assert_int_lt(n, (ssize_t)sizeof(buf) - 1);
	buf[n] = '\0';
	return buf;
}

START_TEST(test_levels_and_output)
{
	int fd = capture_stderr();

	log_init(LOG_TARGET_JOURNAL, LOG_NOTICE);
	ck_assert_int_eq(log_get_max_level(), LOG_NOTICE);
	log_err("e%d", 1);
	log_warn("w");
	log_notice("n");
	log_info("hidden");
	log_debug("hidden");
	ck_assert_str_eq(read_all(fd), "<3>e1\n<4>w\n<5>n\n");

	log_init(LOG_TARGET_JOURNAL, 100);
	ck_assert_int_eq(log_get_max_level(), LOG_DEBUG);
	log_debug("d");
	ck_assert_str_eq(read_all(fd), "<3>e1\n<4>w\n<5>n\n<7>d\n");

	log_init(LOG_TARGET_CONSOLE, LOG_INFO);
	log_info("c");
	const char *all = read_all(fd);
	ck_assert_ptr_nonnull(strstr(all, "Z dsd info: c\n"));
}
END_TEST

START_TEST(test_ratelimited_output)
{
	struct log_ratelimit rl = LOG_RATELIMIT_INIT(1000, 1);
	int fd = capture_stderr();

	log_init(LOG_TARGET_JOURNAL, LOG_INFO);
	log_full_ratelimited(&rl, 0, LOG_WARNING, "fail %d", 1);
	log_full_ratelimited(&rl, 1, LOG_WARNING, "fail %d", 2);
	log_full_ratelimited(&rl, 2, LOG_WARNING, "fail %d", 3);
	/* A disabled level does not consume or count. */
	log_full_ratelimited(&rl, 3, LOG_DEBUG, "dbg");
	log_full_ratelimited(&rl, 1000, LOG_WARNING, "fail %d", 4);
	ck_assert_str_eq(read_all(fd), "<4>fail 1\n"
	                               "<4>fail 4 (2 similar messages "
	                               "suppressed)\n");
}
END_TEST

START_TEST(test_detect)
{
	unsetenv("JOURNAL_STREAM");
	ck_assert_int_eq(log_target_detect(), LOG_TARGET_CONSOLE);
	setenv("JOURNAL_STREAM", "", 1);
	ck_assert_int_eq(log_target_detect(), LOG_TARGET_CONSOLE);
	/* Set, but stderr is something else (a terminal, a pipe). */
	setenv("JOURNAL_STREAM", "8:12345", 1);
	ck_assert_int_eq(log_target_detect(), LOG_TARGET_CONSOLE);
	setenv("JOURNAL_STREAM", "garbage", 1);
	ck_assert_int_eq(log_target_detect(), LOG_TARGET_CONSOLE);
	/* stderr is the stream systemd named. */
	struct stat st;
	char v[64];
	ck_assert_int_eq(fstat(STDERR_FILENO, &st), 0);
	snprintf(v, sizeof(v), "%llu:%llu", (unsigned long long)st.st_dev,
	         (unsigned long long)st.st_ino);
	setenv("JOURNAL_STREAM", v, 1);
	ck_assert_int_eq(log_target_detect(), LOG_TARGET_JOURNAL);
	unsetenv("JOURNAL_STREAM");
}
END_TEST

#define THREAD_LINES 2000

static void *spam(void *arg)
{
	const char *tag = arg;
	char pad[600];

	memset(pad, tag[0], sizeof(pad) - 1);
	pad[sizeof(pad) - 1] = '\0';
	for (int i = 0; i < THREAD_LINES; i++)
		log_info("%s %04d %s", tag, i, pad);
	return NULL;
}

START_TEST(test_threads_whole_lines)
{
	int fd = capture_stderr();
	pthread_t a, b;

	log_init(LOG_TARGET_JOURNAL, LOG_INFO);
	pthread_create(&a, NULL, spam, "A");
	pthread_create(&b, NULL, spam, "B");
	pthread_join(a, NULL);
	pthread_join(b, NULL);

	/* Plain checks in the loop: each ck_assert costs a pipe write to
	 * the Check parent, and there are a million characters here. */
	char *all = read_all(fd), *save = NULL;
	int na = 0, nb = 0, bad = 0;
	for (char *l = strtok_r(all, "\n", &save); l;
	     l = strtok_r(NULL, "\n", &save)) {
		char tag = l[3];
		if (strlen(l) != 3 + 1 + 1 + 4 + 1 + 599)
			bad++;
		for (size_t i = 10; l[i]; i++)
			if (l[i] != tag)
				bad++;
		if (tag == 'A')
			na++;
		else if (tag == 'B')
			nb++;
		else
			bad++;
	}
	ck_assert_int_eq(bad, 0);
	ck_assert_int_eq(na, THREAD_LINES);
	ck_assert_int_eq(nb, THREAD_LINES);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("log");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, test_escape_plain);
	tcase_add_test(tc, test_escape_controls);
	tcase_add_test(tc, test_escape_truncate);
	tcase_add_test(tc, test_format_console);
	tcase_add_test(tc, test_format_journal);
	tcase_add_test(tc, test_format_truncate);
	tcase_add_test(tc, test_ratelimit);
	tcase_add_test(tc, test_ratelimit_clock_back_and_disabled);
	tcase_add_test(tc, test_levels_and_output);
	tcase_add_test(tc, test_ratelimited_output);
	tcase_add_test(tc, test_detect);
	tcase_add_test(tc, test_threads_whole_lines);
	suite_add_tcase(s, tc);
	return check_run(s);
}

/*
 * The daemon's logger: one line, one write(2), to stderr; lines with
 * structured fields go to the journal natively when stderr is the
 * journal's stream.
 */
#include <errno.h>
#include <limits.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <systemd/sd-daemon.h>
/* The entries carry their own fields; CODE_FILE=../daemon/log.c on each
 * would say nothing. */
#define SD_JOURNAL_SUPPRESS_LOCATION
#include <systemd/sd-journal.h>
#include <time.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include "log.h"

/*
 * Process-wide logging configuration (where to write, how verbose), not
 * runtime state: like stderr itself there is one per process, and it is
 * set once at start-up (and on reload).  Atomics because the lws thread
 * reads it while the main thread may change it.
 */
static struct {
	atomic_int target;
	atomic_int max_level;
} log_conf = {LOG_TARGET_CONSOLE, LOG_INFO};

/* The tests' sink (log_set_sink()): set while no other thread logs. */
static struct {
	log_sink_fn fn;
	void *userdata;
} log_sink;

void log_set_sink(log_sink_fn sink, void *userdata)
{
	log_sink.fn = sink;
	log_sink.userdata = userdata;
}

static const char *const journal_prefix[] = {
        [LOG_EMERG] = SD_EMERG,     [LOG_ALERT] = SD_ALERT,
        [LOG_CRIT] = SD_CRIT,       [LOG_ERR] = SD_ERR,
        [LOG_WARNING] = SD_WARNING, [LOG_NOTICE] = SD_NOTICE,
        [LOG_INFO] = SD_INFO,       [LOG_DEBUG] = SD_DEBUG,
};

static const char *const level_name[] = {
        [LOG_EMERG] = "emerg",     [LOG_ALERT] = "alert",
        [LOG_CRIT] = "crit",       [LOG_ERR] = "error",
        [LOG_WARNING] = "warning", [LOG_NOTICE] = "notice",
        [LOG_INFO] = "info",       [LOG_DEBUG] = "debug",
};

static int clamp_level(int level)
{
	if (level < LOG_EMERG)
		return LOG_EMERG;
	if (level > LOG_DEBUG)
		return LOG_DEBUG;
	return level;
}

/*
 * systemd sets JOURNAL_STREAM=DEV:INODE for a service whose stderr goes to
 * the journal.  Only when stderr still is that stream (not a terminal a
 * child of such a service was started from) do priority prefixes belong.
 */
enum log_target log_target_detect(void)
{
	const char *e = getenv("JOURNAL_STREAM");
	unsigned long long dev, ino;
	struct stat st;

	if (e == NULL || sscanf(e, "%llu:%llu", &dev, &ino) != 2)
		return LOG_TARGET_CONSOLE;
	if (fstat(STDERR_FILENO, &st) < 0)
		return LOG_TARGET_CONSOLE;
	if ((unsigned long long)st.st_dev != dev ||
	    (unsigned long long)st.st_ino != ino)
		return LOG_TARGET_CONSOLE;
	return LOG_TARGET_JOURNAL;
}

void log_init(enum log_target target, int max_level)
{
	atomic_store_explicit(&log_conf.target, (int)target,
	                      memory_order_relaxed);
	atomic_store_explicit(&log_conf.max_level, clamp_level(max_level),
	                      memory_order_relaxed);
}

int log_get_max_level(void)
{
	return atomic_load_explicit(&log_conf.max_level, memory_order_relaxed);
}

bool log_level_enabled(int level)
{
	return level <= log_get_max_level();
}

size_t log_format_line(char *buf, size_t buflen, enum log_target target,
                       int level, uint64_t now_ms, const char *fmt, va_list ap)
{
	size_t n, m, room;
	int r;

	if (buflen < 2) {
		if (buflen)
			buf[0] = '\0';
		return 0;
	}
	level = clamp_level(level);

	/* Everything below writes at most buflen - 1 bytes: '\n' comes last. */
	if (target == LOG_TARGET_JOURNAL) {
		r = snprintf(buf, buflen - 1, "%s", journal_prefix[level]);
	} else {
		time_t sec = (time_t)(now_ms / 1000);
		struct tm tm;

		gmtime_r(&sec, &tm);
		r = snprintf(buf, buflen - 1,
		             "%04d-%02d-%02dT%02d:%02d:%02d.%03uZ dsd %s: ",
		             tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
		             tm.tm_hour, tm.tm_min, tm.tm_sec,
		             (unsigned)(now_ms % 1000), level_name[level]);
	}
	n = r < 0 ? 0 : (size_t)r;
	if (n > buflen - 2)
		n = buflen - 2;

	room = buflen - 1 - n;
	r = vsnprintf(buf + n, room, fmt, ap);
	m = r < 0 ? 0 : (size_t)r;
	if (m >= room) {
		m = room - 1;
		if (m >= 3)
			memcpy(buf + n + m - 3, "...", 3);
	}
	/* One call, one line: no newline or terminal control gets through. */
	for (size_t i = n; i < n + m; i++)
		if ((unsigned char)buf[i] < ' ' || buf[i] == 0x7f)
			buf[i] = '?';
	buf[n + m] = '\n';
	buf[n + m + 1] = '\0';
	return n + m + 1;
}

static uint64_t now_unix_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

void log_fullv(int level, const char *fmt, va_list ap)
{
	char line[LOG_LINE_MAX];
	int saved_errno = errno;
	size_t len, off = 0;

	if (!log_level_enabled(level))
		return;
	if (log_sink.fn != NULL) {
		vsnprintf(line, sizeof(line), fmt, ap);
		log_sink.fn(clamp_level(level), line, NULL, 0,
		            log_sink.userdata);
		errno = saved_errno;
		return;
	}
	len = log_format_line(
	        line, sizeof(line),
	        atomic_load_explicit(&log_conf.target, memory_order_relaxed),
	        level, now_unix_ms(), fmt, ap);
	/* Nothing useful to do if stderr fails; a short write only happens
	 * on a full non-blocking pipe, and finishing the line is right. */
	while (off < len) {
		ssize_t w = write(STDERR_FILENO, line + off, len - off);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			break;
		off += (size_t)w;
	}
	errno = saved_errno;
}

void log_full(int level, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_fullv(level, fmt, ap);
	va_end(ap);
}

/* Writes the escape of byte c to out (at least 5 bytes); returns its length. */
static size_t escape_byte(unsigned char c, char *out)
{
	static const char hex[] = "0123456789abcdef";

	switch (c) {
	case '\n':
		memcpy(out, "\\n", 2);
		return 2;
	case '\r':
		memcpy(out, "\\r", 2);
		return 2;
	case '\t':
		memcpy(out, "\\t", 2);
		return 2;
	case '\\':
		memcpy(out, "\\\\", 2);
		return 2;
	case '"':
		memcpy(out, "\\\"", 2);
		return 2;
	}
	if (c < ' ' || c >= 0x7f) {
		out[0] = '\\';
		out[1] = 'x';
		out[2] = hex[c >> 4];
		out[3] = hex[c & 0xf];
		return 4;
	}
	out[0] = (char)c;
	return 1;
}

const char *log_escape(const char *s, size_t len, char *buf, size_t buflen)
{
	size_t o = 0, i = 0, limit, rest = 0;
	char e[5];

	if (buflen == 0)
		return "";
	if (!s)
		len = 0;
	/* First fill up to the point that still leaves room for "...". */
	limit = buflen - 1 >= 3 ? buflen - 1 - 3 : 0;
	for (; i < len; i++) {
		size_t k = escape_byte((unsigned char)s[i], e);
		if (o + k > limit)
			break;
		memcpy(buf + o, e, k);
		o += k;
	}
	/* If the rest fits in the room kept for "...", no need to cut. */
	for (size_t j = i; j < len && o + rest <= buflen - 1; j++)
		rest += escape_byte((unsigned char)s[j], e);
	if (o + rest <= buflen - 1) {
		for (; i < len; i++)
			o += escape_byte((unsigned char)s[i], buf + o);
	} else {
		size_t dots = buflen - 1 - o < 3 ? buflen - 1 - o : 3;
		memcpy(buf + o, "...", dots);
		o += dots;
	}
	buf[o] = '\0';
	return buf;
}

bool log_ratelimit_ok(struct log_ratelimit *rl, uint64_t now_ms,
                      unsigned *ret_suppressed)
{
	if (rl->interval_ms == 0 || rl->burst == 0)
		goto pass;
	/* A new interval starts with the first line after the previous one
	 * ended (or if the clock went back, which a monotonic one does not). */
	if (rl->n == 0 || now_ms < rl->begin_ms ||
	    now_ms - rl->begin_ms >= rl->interval_ms) {
		rl->begin_ms = now_ms;
		rl->n = 0;
	}
	if (rl->n >= rl->burst) {
		if (rl->suppressed < UINT_MAX)
			rl->suppressed++;
		return false;
	}
	rl->n++;
pass:
	if (ret_suppressed)
		*ret_suppressed = rl->suppressed;
	rl->suppressed = 0;
	return true;
}

void log_full_ratelimited(struct log_ratelimit *rl, uint64_t now_ms, int level,
                          const char *fmt, ...)
{
	char msg[LOG_LINE_MAX];
	unsigned suppressed;
	va_list ap;

	/* Lines that would not be written anyway do not use up the burst. */
	if (!log_level_enabled(level) ||
	    !log_ratelimit_ok(rl, now_ms, &suppressed))
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (suppressed)
		log_full(level, "%s (%u similar messages suppressed)", msg,
		         suppressed);
	else
		log_full(level, "%s", msg);
}

/* ---- structured lines ---- */

#define JOURNAL_SOCKET "/run/systemd/journal/socket"

/*
 * One native journal entry: MESSAGE=, PRIORITY=, SYSLOG_IDENTIFIER=dsd and
 * the fields.  0, or a negative errno (no journal socket, out of memory).
 */
static int journal_send(int level, const char *msg, const struct log_field *f,
                        size_t n)
{
	struct iovec iov[LOG_FIELDS_MAX + 3];
	char *text[LOG_FIELDS_MAX + 1] = {0};
	char prio[16];
	size_t k = 0;
	int r = 0;

	/* sd_journal_sendv() says nothing when journald is not there (it
	 * drops the entry and returns 0): then the line goes to stderr. */
	if (access(JOURNAL_SOCKET, F_OK) < 0)
		return -errno;
	snprintf(prio, sizeof(prio), "PRIORITY=%d", level);
	if (asprintf(&text[0], "MESSAGE=%s", msg) < 0) {
		text[0] = NULL;
		return -ENOMEM;
	}
	iov[k++] = (struct iovec){text[0], strlen(text[0])};
	iov[k++] = (struct iovec){prio, strlen(prio)};
	iov[k++] = (struct iovec){(char *)"SYSLOG_IDENTIFIER=dsd", 21};
	for (size_t i = 0; i < n; i++) {
		if (asprintf(&text[i + 1], "%s=%s", f[i].name,
		             f[i].value ? f[i].value : "") < 0) {
			text[i + 1] = NULL;
			r = -ENOMEM;
			goto out;
		}
		iov[k++] = (struct iovec){text[i + 1], strlen(text[i + 1])};
	}
	r = sd_journal_sendv(iov, (int)k);
out:
	for (size_t i = 0; i <= n; i++)
		free(text[i]);
	return r;
}

static void log_fieldsv(int level, const struct log_field *f, size_t n,
                        const char *fmt, va_list ap)
{
	char msg[LOG_LINE_MAX];
	int saved_errno = errno;

	if (!log_level_enabled(level))
		return;
	level = clamp_level(level);
	if (n > LOG_FIELDS_MAX)
		n = LOG_FIELDS_MAX;
	vsnprintf(msg, sizeof(msg), fmt, ap);
	/* One entry, one line: as log_format_line() does it. */
	for (char *p = msg; *p; p++)
		if ((unsigned char)*p < ' ' || *p == 0x7f)
			*p = '?';
	if (log_sink.fn != NULL)
		log_sink.fn(level, msg, f, n, log_sink.userdata);
	else if (atomic_load_explicit(&log_conf.target, memory_order_relaxed) !=
	                 LOG_TARGET_JOURNAL ||
	         journal_send(level, msg, f, n) < 0)
		log_full(level, "%s", msg);
	errno = saved_errno;
}

void log_fields(int level, const struct log_field *f, size_t n, const char *fmt,
                ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_fieldsv(level, f, n, fmt, ap);
	va_end(ap);
}

void log_fields_ratelimited(struct log_ratelimit *rl, uint64_t now_ms,
                            int level, const struct log_field *f, size_t n,
                            const char *fmt, ...)
{
	char msg[LOG_LINE_MAX];
	unsigned suppressed;
	va_list ap;

	if (!log_level_enabled(level) ||
	    !log_ratelimit_ok(rl, now_ms, &suppressed))
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (suppressed)
		log_fields(level, f, n, "%s (%u similar messages suppressed)",
		           msg, suppressed);
	else
		log_fields(level, f, n, "%s", msg);
}

/*
 * The daemon's logger.
 *
 * Under systemd (stderr connected to the journal, $JOURNAL_STREAM set) each
 * line is "<N>message" with the sd-daemon.h priority prefix; otherwise
 * lines are meant for a person: "2026-11-28T10:00:00.123Z dsd warning: ...".
 *
 * Thread-safe: the libwebsockets thread logs too.  Each line is formatted
 * into a stack buffer and written with one write(2) of at most LOG_LINE_MAX
 * bytes (below PIPE_BUF), so lines from two threads never interleave.
 * Control characters in the formatted text are replaced by '?' so one call
 * is always one line; strings from peers should still go through
 * log_escape() so that what they contained stays visible.
 *
 * Levels are syslog's (LOG_ERR .. LOG_DEBUG from <syslog.h>).
 *
 * Lines with structured fields (log_fields(): the connection's state
 * transitions) go to the journal natively under systemd, one entry with
 * MESSAGE=, PRIORITY=, SYSLOG_IDENTIFIER=dsd and the fields, so that
 * `journalctl DSD_STATE=ERROR` finds them; on the console they are plain
 * lines.
 */
#ifndef DSD_LOG_H
#define DSD_LOG_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <syslog.h>

#define LOG_LINE_MAX 2048

enum log_target {
	LOG_TARGET_CONSOLE = 0, /* readable lines with a UTC timestamp */
	LOG_TARGET_JOURNAL = 1, /* "<N>message" for journald's stream */
};

/* LOG_TARGET_JOURNAL when $JOURNAL_STREAM is set, else the console. */
enum log_target log_target_detect(void);

/*
 * Sets where lines go (always stderr) and the most verbose level written
 * (clamped to LOG_EMERG..LOG_DEBUG).  Before log_init, the console target
 * at LOG_INFO is used.  May be called again (e.g. on reload); safe while
 * other threads log.
 */
void log_init(enum log_target target, int max_level);
int log_get_max_level(void);
bool log_level_enabled(int level);

void log_full(int level, const char *fmt, ...)
        __attribute__((format(printf, 2, 3)));
void log_fullv(int level, const char *fmt, va_list ap)
        __attribute__((format(printf, 2, 0)));

#define log_err(...)    log_full(LOG_ERR, __VA_ARGS__)
#define log_warn(...)   log_full(LOG_WARNING, __VA_ARGS__)
#define log_notice(...) log_full(LOG_NOTICE, __VA_ARGS__)
#define log_info(...)   log_full(LOG_INFO, __VA_ARGS__)
#define log_debug(...)  log_full(LOG_DEBUG, __VA_ARGS__)

/*
 * Formats one line as log_full() would write it, without writing: used by
 * log_full() and by the tests.  now_ms is Unix time in milliseconds (only
 * the console target shows it).  The result always ends in '\n' and is
 * NUL-terminated; a message too long for buf is cut and ends in "...".
 * Returns the line's length without the NUL.
 */
size_t log_format_line(char *buf, size_t buflen, enum log_target target,
                       int level, uint64_t now_ms, const char *fmt, va_list ap)
        __attribute__((format(printf, 6, 0)));

/*
 * Escapes len bytes of s (which may hold NULs) for a log line: '\\', '"',
 * control characters and bytes >= 0x7f become C escapes (\n, \t, \x1b,
 * \xc3 ...), so that a peer cannot forge log lines or terminal sequences.
 * Non-ASCII text is escaped too: it is rare in names, and journald shows
 * lines with invalid UTF-8 as a blob.  Output that does not fit buflen ends
 * in "..." (an escape is never cut in half).  Returns buf (or "" when
 * buflen is 0).  Use it inside quotes: log_warn("bad name \"%s\"", ...).
 */
const char *log_escape(const char *s, size_t len, char *buf, size_t buflen);

/*
 * Rate limiter for lines that can repeat without end (reconnect failures):
 * at most burst lines per interval_ms.  Set interval_ms and burst, zero the
 * rest (LOG_RATELIMIT_INIT).  A zero interval_ms or burst disables it.
 * Pure: the caller passes a monotonic now_ms.
 */
struct log_ratelimit {
	uint64_t interval_ms;
	unsigned burst;
	/* private */
	uint64_t begin_ms;   /* start of the current interval */
	unsigned n;          /* lines let through in it */
	unsigned suppressed; /* lines refused since the last one let through */
};

#define LOG_RATELIMIT_INIT(interval, b)                                        \
	{                                                                      \
		.interval_ms = (interval), .burst = (b)                        \
	}

/*
 * Returns true when a line may be logged now; then *ret_suppressed (if not
 * NULL) is how many were refused since the previous line that was let
 * through, for the caller to mention.  Returns false (and counts it) when
 * the line is to be dropped.
 */
bool log_ratelimit_ok(struct log_ratelimit *rl, uint64_t now_ms,
                      unsigned *ret_suppressed);

/*
 * log_full() behind a rate limiter; when lines were dropped, the next line
 * let through ends with " (N similar messages suppressed)".
 */
void log_full_ratelimited(struct log_ratelimit *rl, uint64_t now_ms, int level,
                          const char *fmt, ...)
        __attribute__((format(printf, 4, 5)));

/* One structured journal field: name is upper case ([A-Z0-9_], not
 * starting with '_'), value any text. */
struct log_field {
	const char *name;
	const char *value;
};

#define LOG_FIELDS_MAX 16

/*
 * log_full() with fields (at most LOG_FIELDS_MAX; more are dropped).
 * Under the journal target the message and the fields are one native
 * journal entry (sd_journal_sendv); should that fail, or on the console,
 * the message is written as log_full() writes it, without the fields.
 */
void log_fields(int level, const struct log_field *f, size_t n, const char *fmt,
                ...) __attribute__((format(printf, 4, 5)));

/* log_fields() behind a rate limiter, as log_full_ratelimited(). */
void log_fields_ratelimited(struct log_ratelimit *rl, uint64_t now_ms,
                            int level, const struct log_field *f, size_t n,
                            const char *fmt, ...)
        __attribute__((format(printf, 6, 7)));

/*
 * For the tests: every line that would be written (log_full(),
 * log_fields(), at an enabled level) goes to sink instead, with its
 * fields (none for a plain line), until log_set_sink(NULL, NULL).  Set it
 * while no other thread logs.
 */
typedef void (*log_sink_fn)(int level, const char *msg,
                            const struct log_field *f, size_t n,
                            void *userdata);
void log_set_sink(log_sink_fn sink, void *userdata);

#endif

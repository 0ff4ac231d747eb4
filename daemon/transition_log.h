/*
 * The connection's state transitions in the log, with structured fields
 * for the journal (see log.h): DSD_STATE (the state entered),
 * DSD_PREVIOUS_STATE, DSD_REASON, DSD_URL (where dsd connects now), in
 * ERROR DSD_ERROR_CAUSE and DSD_ERROR_KIND, and a MESSAGE_ID per state
 * entered, so that `journalctl -u dsd DSD_STATE=ERROR` (or that
 * MESSAGE_ID) finds every failure.  The IDs are listed in dsd(8), JOURNAL;
 * they never change.
 */
#ifndef DSD_TRANSITION_LOG_H
#define DSD_TRANSITION_LOG_H

#include <stdint.h>

#include "conn.h"

struct log_ratelimit;

/* The MESSAGE_ID of entering state s (32 hex digits), or NULL. */
const char *transition_message_id(enum conn_state s);

/*
 * Logs transition a at level with the fields above and the message fmt;
 * through the limiter rl unless it is NULL (now_ms: monotonic).  url is
 * the URL the connection uses now (conn_current_url()).
 */
void transition_log(const struct conn_action *a, const char *url, int level,
                    struct log_ratelimit *rl, uint64_t now_ms, const char *fmt,
                    ...) __attribute__((format(printf, 6, 7)));

#endif

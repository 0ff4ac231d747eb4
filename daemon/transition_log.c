/*
 * State transitions with journal fields (see transition_log.h).
 */
#include <stdarg.h>
#include <stdio.h>

#include "log.h"
#include "transition_log.h"

/* Made once with `systemd-id128 new`; dsd(8) lists them.  Never change
 * one: operators' queries and alerts match on them. */
static const char *const message_id[CONN_STATE_COUNT] = {
        [CONN_CLOSED] = "f3f729e6a8a8408f99286b825137afdb",
        [CONN_AWAITING_CONNECTION] = "d4a019a322dc4d218063d86777e4034f",
        [CONN_CHALLENGING] = "7e5429daee3347728c7aa4f1f9ee94de",
        [CONN_AWAITING_AUTHENTICATION] = "240ace9b350b40ef89fe6bef7ff80d95",
        [CONN_AUTHENTICATING] = "7802547a354d4d1f8f3d1216f4868094",
        [CONN_OPEN] = "df408e67d98346b2af553318ae104d73",
        [CONN_RECONNECTING] = "f487374ac85245819aaf476764ac0157",
        [CONN_OFFLINE] = "1c94609ad84e44bbb45d0f16aec0ec76",
        [CONN_ERROR] = "af2293c44ddf4645bcf7f1775b8dda1f",
};

const char *transition_message_id(enum conn_state s)
{
	if ((unsigned)s >= CONN_STATE_COUNT)
		return NULL;
	return message_id[s];
}

void transition_log(const struct conn_action *a, const char *url, int level,
                    struct log_ratelimit *rl, uint64_t now_ms, const char *fmt,
                    ...)
{
	enum conn_error_cause cause =
	        a->to == CONN_ERROR ? a->error : CONN_ERR_NONE;
	struct log_field f[] = {
	        {"MESSAGE_ID", transition_message_id(a->to)},
	        {"DSD_STATE", conn_state_name(a->to)},
	        {"DSD_PREVIOUS_STATE", conn_state_name(a->from)},
	        {"DSD_REASON", a->reason},
	        {"DSD_URL", url},
	        {"DSD_ERROR_CAUSE", conn_error_cause_name(cause)},
	        {"DSD_ERROR_KIND",
	         conn_error_kind_name(conn_error_kind_of(cause))},
	};
	size_t n = cause == CONN_ERR_NONE ? 5 : 7;
	char msg[LOG_LINE_MAX];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (rl != NULL)
		log_fields_ratelimited(rl, now_ms, level, f, n, "%s", msg);
	else
		log_fields(level, f, n, "%s", msg);
}

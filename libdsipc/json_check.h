/*
 * The one rule for event data, applied by libdsipc before sending and by
 * dsd on receipt (an app may not use the library): one JSON value of any
 * type (RFC 8259), with no duplicate key in any object.  The platform's
 * JSON.parse would silently keep the last of two equal keys; a duplicate
 * is nearly always a bug in the app, so both sides refuse it.
 */
#ifndef DSD_JSON_CHECK_H
#define DSD_JSON_CHECK_H

#include <stdbool.h>
#include <stddef.h>

/* true, or false with a message in err ("... at byte N"). */
bool json_check(const char *text, size_t len, char *err, size_t errlen);

#endif

/*
 * The metrics: the status document (status.c) in the Prometheus text
 * exposition format (version 0.0.4), for the HTTP listener
 * (metrics_http.c) and for `dsctl metrics`.  Both render the same status
 * object with this one function, so the two outputs cannot drift apart
 * from each other or from `dsctl status --json`.
 *
 * The HTTP listener serves OpenMetrics to a scraper that asks for it
 * (Prometheus does), the text format to everyone else.
 *
 * Pure: no I/O, no clock.  Names follow Prometheus' conventions: the
 * dsd_ prefix, counters end in _total, base units (seconds, bytes), and
 * the process_* names of the official client libraries for the process's
 * own resources.  Every family has a HELP and a TYPE line; a family whose
 * figure the document lacks (an older dsd, no spool) is left out whole.
 */
#ifndef DSD_METRICS_H
#define DSD_METRICS_H

#include <stddef.h>

#include <jansson.h>

#define METRICS_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"
#define METRICS_OPENMETRICS_CONTENT_TYPE                                       \
	"application/openmetrics-text; version=1.0.0; charset=utf-8"

enum metrics_format {
	METRICS_TEXT,        /* Prometheus' text format 0.0.4 */
	METRICS_OPENMETRICS, /* OpenMetrics 1.0.0: the same figures, counter
	                        and info families named without _total and
	                        _info, an info type, "# EOF" at the end */
};

/*
 * Renders status (an object as status_object() builds it) into a malloc'd
 * NUL-terminated text; *ret_len (if not NULL) is its length.  Returns NULL
 * when out of memory or when status is not an object.
 */
char *metrics_render(const json_t *status, size_t *ret_len);
/* The same in either format. */
char *metrics_render_as(const json_t *status, enum metrics_format format,
                        size_t *ret_len);

#endif

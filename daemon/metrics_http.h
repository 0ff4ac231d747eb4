/*
 * The optional metrics listener ([metrics] listen): an HTTP server on the
 * daemon's loop (libevent's evhttp) that answers GET /metrics with the
 * text metrics.c renders, and nothing else.
 *
 * Bounded, because it listens on a TCP port: GET only (anything else gets
 * 501), /metrics only (404), no request body, request line and
 * headers at most METRICS_HTTP_MAX_HEADERS bytes, and a connection that
 * is idle, slow to send its request or slow to read the answer is closed
 * after METRICS_HTTP_TIMEOUT seconds.  It has no authentication: bind it
 * to loopback (the example) or a network only the monitoring reaches.
 */
#ifndef DSD_METRICS_HTTP_H
#define DSD_METRICS_HTTP_H

#include <stddef.h>

#include "metrics.h"

struct event_base;
struct metrics_http;

#define METRICS_HTTP_MAX_HEADERS 8192
#define METRICS_HTTP_TIMEOUT     10

/* Returns the current metrics text in format (malloc'd; *ret_len its
 * length) or NULL when out of memory. */
typedef char *(*metrics_http_render_fn)(enum metrics_format format,
                                        size_t *ret_len, void *userdata);

/*
 * Listens on listen ("HOST:PORT", "[IPv6]:PORT"; as config_parse_listen()
 * accepted it).  Returns 0, -EINVAL for an address it cannot parse, or
 * the errno of socket/bind/listen (-EADDRINUSE ...).
 */
int metrics_http_new(struct event_base *base, const char *listen,
                     metrics_http_render_fn render, void *userdata,
                     struct metrics_http **ret);
void metrics_http_free(struct metrics_http *m);

#endif

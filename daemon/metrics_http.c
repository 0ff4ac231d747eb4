/*
 * The metrics listener (see metrics_http.h).  Scrapes are rare (every few
 * seconds at most), so each one renders the whole text afresh.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/listener.h>

#include "log.h"
#include "metrics.h"
#include "metrics_http.h"

struct metrics_http {
	struct evhttp *http;
	metrics_http_render_fn render;
	void *userdata;
};

static void on_request(struct evhttp_request *req, void *userdata)
{
	struct metrics_http *m = userdata;
	const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
	const char *path = uri ? evhttp_uri_get_path(uri) : NULL;
	struct evkeyvalq *h = evhttp_request_get_output_headers(req);
	const char *accept = evhttp_find_header(
	        evhttp_request_get_input_headers(req), "Accept");
	/* Prometheus lists OpenMetrics first; anyone else gets the text
	 * format, which every Prometheus-compatible scraper reads. */
	enum metrics_format fmt =
	        accept && strstr(accept, "application/openmetrics-text")
	                ? METRICS_OPENMETRICS
	                : METRICS_TEXT;
	struct evbuffer *body;
	size_t len = 0;
	char *text;

	/* evhttp_set_allowed_methods() already refused everything but GET. */
	if (path == NULL || strcmp(path, "/metrics") != 0) {
		evhttp_send_error(req, HTTP_NOTFOUND, "only /metrics is here");
		return;
	}
	text = m->render(fmt, &len, m->userdata);
	body = evbuffer_new();
	if (text == NULL || body == NULL || evbuffer_add(body, text, len) < 0) {
		free(text);
		if (body)
			evbuffer_free(body);
		evhttp_send_error(req, HTTP_INTERNAL, "out of memory");
		return;
	}
	free(text);
	evhttp_add_header(h, "Content-Type",
	                  fmt == METRICS_OPENMETRICS
	                          ? METRICS_OPENMETRICS_CONTENT_TYPE
	                          : METRICS_CONTENT_TYPE);
	evhttp_add_header(h, "Cache-Control", "no-store");
	evhttp_send_reply(req, HTTP_OK, "OK", body);
	evbuffer_free(body);
}

int metrics_http_new(struct event_base *base, const char *listen,
                     metrics_http_render_fn render, void *userdata,
                     struct metrics_http **ret)
{
	struct sockaddr_storage ss = {0};
	int sslen = (int)sizeof(ss);
	struct evconnlistener *l;
	struct metrics_http *m;
	int r;

	if (evutil_parse_sockaddr_port(listen, (struct sockaddr *)&ss, &sslen) <
	    0)
		return -EINVAL;
	m = calloc(1, sizeof(*m));
	if (m == NULL)
		return -ENOMEM;
	m->render = render;
	m->userdata = userdata;
	m->http = evhttp_new(base);
	if (m->http == NULL) {
		free(m);
		return -ENOMEM;
	}
	evhttp_set_allowed_methods(m->http, EVHTTP_REQ_GET);
	evhttp_set_max_headers_size(m->http, METRICS_HTTP_MAX_HEADERS);
	evhttp_set_max_body_size(m->http, 0);
	evhttp_set_timeout(m->http, METRICS_HTTP_TIMEOUT);
	evhttp_set_gencb(m->http, on_request, m);
	errno = 0;
	l = evconnlistener_new_bind(base, NULL, NULL,
	                            LEV_OPT_CLOSE_ON_FREE |
	                                    LEV_OPT_CLOSE_ON_EXEC |
	                                    LEV_OPT_REUSEABLE,
	                            16, (struct sockaddr *)&ss, sslen);
	if (l == NULL) {
		r = errno ? -errno : -EADDRNOTAVAIL;
		goto fail;
	}
	if (evhttp_bind_listener(m->http, l) == NULL) {
		evconnlistener_free(l);
		r = -ENOMEM;
		goto fail;
	}
	*ret = m;
	return 0;
fail:
	evhttp_free(m->http);
	free(m);
	return r;
}

void metrics_http_free(struct metrics_http *m)
{
	if (m == NULL)
		return;
	/* Closes the listener and every connection still open. */
	evhttp_free(m->http);
	free(m);
}

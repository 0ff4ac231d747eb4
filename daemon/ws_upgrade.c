/* The WebSocket opening handshake, client side (see ws_upgrade.h). */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "sha1.h"
#include "ws_upgrade.h"

/* RFC 6455, section 1.3: appended to the key before hashing. */
static const char ws_guid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

static void base64(const uint8_t *in, size_t len, char *out)
{
	static const char abc[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmn"
	                          "opqrstuvwxyz0123456789+/";
	size_t i;

	for (i = 0; i + 3 <= len; i += 3) {
		uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 |
		             in[i + 2];

		*out++ = abc[v >> 18];
		*out++ = abc[(v >> 12) & 63];
		*out++ = abc[(v >> 6) & 63];
		*out++ = abc[v & 63];
	}
	if (len - i == 1) {
		uint32_t v = (uint32_t)in[i] << 16;

		*out++ = abc[v >> 18];
		*out++ = abc[(v >> 12) & 63];
		*out++ = '=';
		*out++ = '=';
	} else if (len - i == 2) {
		uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8;

		*out++ = abc[v >> 18];
		*out++ = abc[(v >> 12) & 63];
		*out++ = abc[(v >> 6) & 63];
		*out++ = '=';
	}
	*out = '\0';
}

void ws_upgrade_key(const uint8_t nonce[16], char key[WS_KEY_SIZE])
{
	base64(nonce, 16, key);
}

void ws_upgrade_accept(const char *key, char accept[WS_ACCEPT_SIZE])
{
	char text[WS_KEY_SIZE + sizeof(ws_guid)];
	uint8_t digest[SHA1_DIGEST_SIZE];
	int n;

	n = snprintf(text, sizeof(text), "%s%s", key, ws_guid);
	sha1(text, n < 0 ? 0 : (size_t)n, digest);
	base64(digest, sizeof(digest), accept);
}

int ws_upgrade_request(char *buf, size_t size, const char *host, uint16_t port,
                       bool tls, const char *path, const char *key)
{
	bool v6 = strchr(host, ':') != NULL;
	char port_text[8] = "";
	int n;

	if (port != (tls ? 443 : 80))
		snprintf(port_text, sizeof(port_text), ":%u", (unsigned)port);
	n = snprintf(buf, size,
	             "GET %s HTTP/1.1\r\n"
	             "Host: %s%s%s%s\r\n"
	             "Upgrade: websocket\r\n"
	             "Connection: Upgrade\r\n"
	             "Sec-WebSocket-Key: %s\r\n"
	             "Sec-WebSocket-Version: 13\r\n"
	             "\r\n",
	             path[0] ? path : "/", v6 ? "[" : "", host, v6 ? "]" : "",
	             port_text, key);
	if (n < 0 || (size_t)n >= size)
		return -ENOSPC;
	return n;
}

/* Untrusted text for a sentence: printable ASCII only, at most size - 1. */
static void printable(char *dst, size_t size, const char *src, size_t len)
{
	size_t i;

	if (len > size - 1)
		len = size - 1;
	for (i = 0; i < len; i++)
		dst[i] = src[i] >= 0x20 && src[i] < 0x7f ? src[i] : '?';
	dst[len] = '\0';
}

/* The value of header name in the head's lines (after the status line),
 * spaces trimmed; NULL when absent. */
static const char *header(const char *head, size_t len, const char *name,
                          size_t *ret_len)
{
	size_t name_len = strlen(name);
	const char *p = memchr(head, '\n', len), *end = head + len;

	while (p && p + 1 < end) {
		const char *line = p + 1, *eol = memchr(line, '\n', end - line);
		const char *v, *ve;

		if (!eol)
			eol = end;
		if ((size_t)(eol - line) > name_len && line[name_len] == ':' &&
		    strncasecmp(line, name, name_len) == 0) {
			v = line + name_len + 1;
			ve = eol;
			while (v < ve && (*v == ' ' || *v == '\t'))
				v++;
			while (ve > v && (ve[-1] == '\r' || ve[-1] == ' ' ||
			                  ve[-1] == '\t'))
				ve--;
			*ret_len = (size_t)(ve - v);
			return v;
		}
		p = eol < end ? eol : NULL;
	}
	return NULL;
}

/* Whether a comma-separated header value lists token (any case). */
static bool has_token(const char *v, size_t len, const char *token)
{
	size_t t = strlen(token);
	const char *end = v + len;

	while (v < end) {
		const char *comma = memchr(v, ',', end - v), *te;

		if (!comma)
			comma = end;
		while (v < comma && (*v == ' ' || *v == '\t'))
			v++;
		te = comma;
		while (te > v && (te[-1] == ' ' || te[-1] == '\t'))
			te--;
		if ((size_t)(te - v) == t && strncasecmp(v, token, t) == 0)
			return true;
		v = comma + 1;
	}
	return false;
}

/* The end of the head: just past its empty line (CRLF or bare LF lines). */
static size_t head_end(const char *buf, size_t len)
{
	for (size_t i = 0; i + 1 < len; i++) {
		if (buf[i] != '\n')
			continue;
		if (buf[i + 1] == '\n')
			return i + 2;
		if (buf[i + 1] == '\r' && i + 2 < len && buf[i + 2] == '\n')
			return i + 3;
	}
	return 0;
}

int ws_upgrade_answer(const char *buf, size_t len, const char *accept,
                      char *why, size_t why_size)
{
	size_t end = head_end(buf, len), vlen = 0;
	const char *v;
	char text[160];
	unsigned status;

	if (!end) {
		if (len < WS_ANSWER_MAX)
			return 0;
		snprintf(why, why_size,
		         "answer to the WebSocket upgrade over %d bytes",
		         WS_ANSWER_MAX);
		return -EMSGSIZE;
	}
	if (end > WS_ANSWER_MAX) {
		snprintf(why, why_size,
		         "answer to the WebSocket upgrade over %d bytes",
		         WS_ANSWER_MAX);
		return -EMSGSIZE;
	}
	if (end < 13 || strncmp(buf, "HTTP/1.", 7) != 0 || buf[8] != ' ' ||
	    buf[9] < '1' || buf[9] > '5' || buf[10] < '0' || buf[10] > '9' ||
	    buf[11] < '0' || buf[11] > '9' ||
	    (buf[12] != ' ' && buf[12] != '\r' && buf[12] != '\n')) {
		printable(text, 40, buf, end);
		snprintf(why, why_size,
		         "not an HTTP answer to the WebSocket upgrade: \"%s\"",
		         text);
		return -EPROTO;
	}
	status = (unsigned)(buf[9] - '0') * 100 +
	         (unsigned)(buf[10] - '0') * 10 + (unsigned)(buf[11] - '0');
	/* A redirect is not followed: the only move between servers
	 * deepstream has is its own REDIRECT message, which the connection
	 * state machine follows and bounds. */
	if (status >= 300 && status < 400 &&
	    (v = header(buf, end, "Location", &vlen)) != NULL) {
		printable(text, sizeof(text), v, vlen);
		snprintf(why, why_size,
		         "HTTP %u redirect to \"%s\" at the WebSocket upgrade, "
		         "not followed",
		         status, text);
		return -EPROTO;
	}
	if (status != 101) {
		snprintf(why, why_size,
		         "HTTP %u instead of 101 to the WebSocket upgrade",
		         status);
		return -EPROTO;
	}
	v = header(buf, end, "Upgrade", &vlen);
	if (!v || !has_token(v, vlen, "websocket")) {
		snprintf(why, why_size,
		         "101 answer without \"Upgrade: "
		         "websocket\"");
		return -EPROTO;
	}
	v = header(buf, end, "Connection", &vlen);
	if (!v || !has_token(v, vlen, "upgrade")) {
		snprintf(why, why_size,
		         "101 answer without \"Connection: "
		         "Upgrade\"");
		return -EPROTO;
	}
	v = header(buf, end, "Sec-WebSocket-Accept", &vlen);
	if (!v || vlen != strlen(accept) || memcmp(v, accept, vlen) != 0) {
		snprintf(why, why_size,
		         "101 answer with a wrong or no Sec-WebSocket-Accept");
		return -EPROTO;
	}
	/* dsd offers no extension and no subprotocol: a server that picks
	 * one anyway would frame differently. */
	if (header(buf, end, "Sec-WebSocket-Extensions", &vlen) ||
	    header(buf, end, "Sec-WebSocket-Protocol", &vlen)) {
		snprintf(why, why_size,
		         "101 answer choosing an extension or "
		         "subprotocol dsd did not offer");
		return -EPROTO;
	}
	return (int)end;
}

/*
 * The client side of the WebSocket opening handshake (RFC 6455, section 4),
 * done by dsd itself for a ws:// connection on the main loop (ws_direct.h;
 * docs/libwebsockets.md says why not through libwebsockets there).
 *
 * Pure: builds the request and judges the answer; no I/O.
 */
#ifndef DSD_WS_UPGRADE_H
#define DSD_WS_UPGRADE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Sec-WebSocket-Key: base64 of 16 random bytes (24 characters). */
#define WS_KEY_SIZE 25
/* Sec-WebSocket-Accept: base64 of a SHA-1 digest (28 characters). */
#define WS_ACCEPT_SIZE 29
/* The buffer for the request: room for the longest host (255) and path
 * (1,023) a struct url holds (url.h), with brackets, the port and the
 * fixed lines (about 1,430 bytes in all). */
#define WS_REQUEST_MAX 2048
/* The longest answer dsd reads before giving up on it. */
#define WS_ANSWER_MAX 8192

void ws_upgrade_key(const uint8_t nonce[16], char key[WS_KEY_SIZE]);
/* The Sec-WebSocket-Accept a server must answer to key. */
void ws_upgrade_accept(const char *key, char accept[WS_ACCEPT_SIZE]);

/* Writes the GET request for path on host:port (the port is named in the
 * Host header only when it is not the scheme's default).  Returns its
 * length, or -ENOSPC when size is too small. */
int ws_upgrade_request(char *buf, size_t size, const char *host, uint16_t port,
                       bool tls, const char *path, const char *key);

/*
 * Judges the first len bytes the server sent.  Returns the length of the
 * answer's head when it is a good "101 Switching Protocols" for accept
 * (the bytes after it are already WebSocket frames), 0 when the head is
 * not whole yet, or a negative errno with why set to a sentence for the
 * log and the status: -EPROTO for any other answer (another HTTP status,
 * with a redirect's Location named; a wrong Sec-WebSocket-Accept; ...),
 * -EMSGSIZE for a head over WS_ANSWER_MAX bytes.
 */
int ws_upgrade_answer(const char *buf, size_t len, const char *accept,
                      char *why, size_t why_size);

#endif

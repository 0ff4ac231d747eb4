/*
 * WebSocket client frames (RFC 6455, section 5), written by dsd itself so
 * that many of them go to the socket in one write: lws 4.1 frames each
 * lws_write() on its own, with its own read of /dev/urandom for the mask
 * and a byte-at-a-time masking loop, and sends it with its own send().
 * ws_thread.c collects the frames that wait into one buffer and hands it
 * to lws as raw bytes (docs/libwebsockets.md, section 5).
 *
 * Only what dsd sends: final (unfragmented) binary frames, and on a ws://
 * connection of its own (ws_direct.h) close and pong frames, masked as a
 * client must.  Pure: no I/O, no lws; the caller supplies the mask.
 */
#ifndef DSD_WS_FRAME_H
#define DSD_WS_FRAME_H

#include <stddef.h>
#include <stdint.h>

/* The most a frame adds to its payload: 10 bytes of header, 4 of mask. */
#define WS_FRAME_OVERHEAD 14

/* The bytes a frame with len bytes of payload takes. */
size_t ws_frame_size(size_t len);

/* Writes one final binary frame of payload (len bytes) masked with mask
 * into out, which holds ws_frame_size(len) bytes; returns that size. */
size_t ws_frame_write(uint8_t *out, const uint8_t *payload, size_t len,
                      const uint8_t mask[4]);

/* Opcodes of the frames dsd writes (RFC 6455, section 5.2). */
#define WS_OP_BINARY 0x2
#define WS_OP_CLOSE  0x8
#define WS_OP_PONG   0xa

/* The same with another opcode (a control frame: len at most 125). */
size_t ws_frame_write_op(uint8_t *out, uint8_t opcode, const uint8_t *payload,
                         size_t len, const uint8_t mask[4]);

#endif

/*
 * SHA-1 (FIPS 180-4), for one thing only: the Sec-WebSocket-Accept check of
 * the WebSocket upgrade (RFC 6455, section 4.1), which is a fixed function
 * of the key dsd sent, not a security property.  dsd has its own because
 * OpenSSL 3's one-shot SHA1() is deprecated and its EVP route loads the
 * default provider and its algorithm tables: hundreds of kilobytes of heap
 * in a daemon that may never speak TLS.  Pure: no I/O.
 */
#ifndef DSD_SHA1_H
#define DSD_SHA1_H

#include <stddef.h>
#include <stdint.h>

#define SHA1_DIGEST_SIZE 20

/* The digest of len bytes of data. */
void sha1(const void *data, size_t len, uint8_t out[SHA1_DIGEST_SIZE]);

#endif

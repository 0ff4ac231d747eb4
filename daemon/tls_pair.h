/*
 * The client certificate of [platform] certFile / keyFile, checked with
 * OpenSSL when the configuration is read: libwebsockets would only fail
 * later, at the first wss:// connect, with a terse log line.
 */
#ifndef DSD_TLS_PAIR_H
#define DSD_TLS_PAIR_H

#include <stddef.h>
#include <stdint.h>

#define TLS_PAIR_DIGEST_LEN 32

/*
 * cert: PEM text holding the certificate (its chain may follow); key: PEM
 * text holding its private key, not encrypted (a daemon has nobody to ask
 * for a passphrase).  Returns 0 when the key belongs to the certificate,
 * with ret_digest the SHA-256 of both texts (a reload compares it to see a
 * renewed pair under the same names); -EINVAL with *ret_error a static
 * English reason, or -ENOMEM.  Nothing of the key is ever put in a reason.
 */
int tls_pair_check(const char *cert, size_t cert_len, const char *key,
                   size_t key_len, uint8_t ret_digest[TLS_PAIR_DIGEST_LEN],
                   const char **ret_error);

#endif

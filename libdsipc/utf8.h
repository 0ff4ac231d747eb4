/*
 * One strict UTF-8 check for everything that crosses a boundary: local
 * requests (ipcproto.c, libdsipc) and platform frames (daemon/wire.c).
 * Strict means what RFC 3629 allows and nothing else: no overlong forms,
 * no UTF-16 surrogates, nothing past U+10FFFF.  A NUL byte is valid UTF-8;
 * callers that cannot carry one check for it themselves.
 */
#ifndef DSD_UTF8_H
#define DSD_UTF8_H

#include <stdbool.h>
#include <stddef.h>

bool utf8_valid(const void *s, size_t len);

#endif

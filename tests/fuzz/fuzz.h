/*
 * What every fuzz target shares: the libFuzzer entry point and a check that
 * survives NDEBUG.  A target reports a broken contract by aborting, which
 * libFuzzer records as a crash and fuzz-main.c turns into a failed test.
 */
#ifndef DSD_FUZZ_H
#define DSD_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

/* Called once per input; returns 0 (libFuzzer reserves other values). */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Not assert(): a release build must still check the contract. */
#define FUZZ_CHECK(cond)                                                       \
	do {                                                                   \
		if (!(cond)) {                                                 \
			fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, \
			        __LINE__, #cond);                              \
			abort();                                               \
		}                                                              \
	} while (0)

#endif

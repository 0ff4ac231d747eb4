/* dsctl's pieces: the command runner (dsctl.c) and the status printer
 * (dsctl-status.c). */
#ifndef DSCTL_H
#define DSCTL_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <jansson.h>

enum {
	EXIT_OK = 0,
	EXIT_FAILED = 1,
	EXIT_USAGE = 2,
	EXIT_UNREACHABLE = 3,
};

/* Wall-clock now, in unix milliseconds. */
int64_t dsctl_now_ms(void);
/* 2026-11-28T10:00:00.123Z */
void dsctl_format_time(int64_t unix_ms, char *buf, size_t size);
/* The daemon's status object in a readable layout: the keys we know first,
 * then every other key it has, as it has them. */
void dsctl_print_status(FILE *f, json_t *status, int64_t now_ms);

#endif

/* dsctl's pieces: the command runner (dsctl.c), the status printer
 * (dsctl-status.c) and emit's input handling (dsctl-emit.c). */
#ifndef DSCTL_H
#define DSCTL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <jansson.h>

#include "dsipc.h"

enum {
	EXIT_OK = 0,
	EXIT_FAILED = 1,
	EXIT_USAGE = 2,
	EXIT_UNREACHABLE = 3,
};

#define DSCTL_REQUEST_TIMEOUT_MS 10000

/* Prints why `what` failed once and returns the exit code for it. */
int dsctl_fail(dsipc *c, const char *what, int r);
/* Connects to dsd (socket NULL: the default); an exit code, the reason
 * printed. */
int dsctl_connect(const char *socket, dsipc **ret);

/* `dsctl emit`, as parsed from its command line. */
struct dsctl_emit {
	const char *name;
	const char *data; /* the argument after the name, or NULL */
	const char *file; /* -f: "-" is stdin */
	bool lines;       /* -l: one event per line */
	bool raw;         /* --raw: the text as a JSON string */
	bool no_data;     /* --no-data: do not read stdin */
};
/* Reads the input, connects, emits; returns an exit code. */
int dsctl_emit_run(const char *socket, const struct dsctl_emit *o);

/* Wall-clock now, in unix milliseconds. */
int64_t dsctl_now_ms(void);
/* 2026-11-28T10:00:00.123Z */
void dsctl_format_time(int64_t unix_ms, char *buf, size_t size);
/* 850ms, 3.2s, 4m 05s, 2h 03m, 3d 04h */
void dsctl_format_duration(int64_t ms, char *buf, size_t size);
/* 512 B, 64 KiB, 1.5 MiB */
void dsctl_format_bytes(int64_t n, char *buf, size_t size);
/* The daemon's status object in a readable layout: the keys we know first,
 * then every other key it has, as it has them. */
void dsctl_print_status(FILE *f, json_t *status, int64_t now_ms);

#endif

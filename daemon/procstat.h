/*
 * The daemon's own resource use, as Prometheus' process_* metrics name it:
 * CPU time, resident and virtual memory, open and allowed file
 * descriptors, start time.  Read from /proc/self (Linux); a figure that
 * cannot be read is -1 and left out of the status.
 */
#ifndef DSD_PROCSTAT_H
#define DSD_PROCSTAT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct procstat {
	double cpu_seconds;     /* user + system */
	int64_t resident_bytes; /* RSS */
	int64_t virtual_bytes;  /* VSZ */
	int64_t open_fds;       /* entries of /proc/self/fd */
	int64_t max_fds;        /* RLIMIT_NOFILE's soft limit */
	double start_time;      /* Unix seconds */
};

/* Fills every field it can read; the others are -1. */
void procstat_read(struct procstat *ret);

/* The command name of process pid (/proc/PID/comm, at most 15 bytes, as
 * the process set it) into buf; false when it cannot be read. */
bool procstat_comm(pid_t pid, char *buf, size_t len);

#endif

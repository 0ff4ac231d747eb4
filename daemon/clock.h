/*
 * The daemon's clock, in one small leaf every file may use.  Monotonic
 * milliseconds drive every timer and deadline (the connection state machine
 * is handed them, never reads them); wall-clock time is only for people
 * (status, logs, STATE messages).
 */
#ifndef DSD_CLOCK_H
#define DSD_CLOCK_H

#include <stdint.h>

/* CLOCK_MONOTONIC in milliseconds. */
uint64_t clock_mono_ms(void);
/* CLOCK_MONOTONIC in microseconds (rates measured over milliseconds). */
uint64_t clock_mono_us(void);
/* CLOCK_REALTIME in milliseconds since the epoch. */
int64_t clock_unix_ms(void);
/* The wall-clock time of a past monotonic instant. */
int64_t clock_mono_to_unix(uint64_t mono_ms);

#endif

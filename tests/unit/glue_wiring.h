/*
 * How the root (dsd.c) connects upstream's reports to pubsub, for the unit
 * tests that run the two together over the fake transport.  Both
 * callback tables take a struct glue_wiring as their userdata.
 */
#pragma once

#include "pubsub.h"
#include "upstream.h"

struct glue_wiring {
	struct pubsub *ps; /* set by pubsub_new() */
	unsigned opened;   /* connections that reached OPEN */
	unsigned lost;     /* open connections lost */
};

extern const struct upstream_callbacks glue_upstream_callbacks;
extern const struct pubsub_callbacks glue_pubsub_callbacks;

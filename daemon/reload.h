/*
 * Reloading the configuration (SIGHUP, dsctl reload): the whole file set is
 * read and checked before anything changes; a refused reload keeps the
 * running configuration and says why.  What can change at run time takes
 * effect (platform options, credentials, caFile, certFile, keyFile, proxy,
 * intervals, [queue] limits,
 * adminGroup, quotas, [acl]); what cannot (the socket, [ipc] limits,
 * socketGroup) is kept and a warning says so.
 */
#ifndef DSD_RELOAD_H
#define DSD_RELOAD_H

#include <stddef.h>

struct dsd_config;
struct pubsub;
struct upstream;

/* The parts a reload reaches; cfg is replaced in place on success. */
struct reload_targets {
	struct dsd_config *cfg;
	struct upstream *up;
	struct pubsub *ps;
};

/* 0, or a negative errno with a sentence in err (also logged). */
int reload_config(const char *path, const struct reload_targets *t, char *err,
                  size_t errlen);

#endif

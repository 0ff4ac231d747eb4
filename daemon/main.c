/*
 * dsd: holds one deepstream platform connection and shares it with local
 * apps.  Parse options, load the configuration, build the root object,
 * run the loop.  No daemon(), no PID file: systemd supervises.
 */
#include <errno.h>
#include <getopt.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include <systemd/sd-daemon.h>

#include "config.h"
#include "dsd.h"
#include "log.h"

#define DEFAULT_CONFIG SYSCONFDIR "/dsd/dsd.conf"

static void usage(FILE *f)
{
	fprintf(f,
	        "usage: dsd [-fnv] [-c FILE] | -V | -h\n"
	        "  -c FILE        configuration file (default " DEFAULT_CONFIG
	        ")\n"
	        "  -n             check the configuration and exit\n"
	        "  -f             foreground: readable log lines on stderr\n"
	        "  -v             debug logging\n"
	        "  -V, --version  print the version and exit\n"
	        "  -h, --help     this text\n");
}

/* Every local client is a descriptor: take what the hard limit allows
 * (maxClients is the real bound, checked by the IPC server). */
static void raise_fd_limit(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
			log_debug("cannot raise the descriptor limit: %s",
			          strerror(errno));
	}
}

/* The IPC socket systemd passed us, or -1. */
static int passed_socket(void)
{
	int n = sd_listen_fds(0);

	if (n < 0) {
		log_warn("ignoring passed sockets: %s", strerror(-n));
		return -1;
	}
	if (n == 0)
		return -1;
	if (n > 1)
		log_warn("%d sockets passed; using the first", n);
	return SD_LISTEN_FDS_START;
}

int main(int argc, char **argv)
{
	static const struct option long_opts[] = {
	        {"version", no_argument, NULL, 'V'},
	        {"help", no_argument, NULL, 'h'},
	        {0},
	};
	const char *path = DEFAULT_CONFIG;
	bool check_only = false, foreground = false, verbose = false;
	struct dsd_config cfg;
	struct dsd *d;
	char err[1024];
	int ch, r;

	/* Buffers of a few hundred kB and more (big events, a slow reader's
	 * backlog) come from mmap and go back to the system when freed.
	 * glibc would otherwise raise this threshold after the first such
	 * free and serve them from the heap, where holes of the wrong size
	 * pile up: RSS then stays far above what the buffer budgets allow. */
	mallopt(M_MMAP_THRESHOLD, 256 * 1024);

	while ((ch = getopt_long(argc, argv, "c:fnvVh", long_opts, NULL)) !=
	       -1) {
		switch (ch) {
		case 'c':
			path = optarg;
			break;
		case 'f':
			foreground = true;
			break;
		case 'n':
			check_only = true;
			break;
		case 'v':
			verbose = true;
			break;
		case 'V':
			printf("dsd %s\n", PACKAGE_VERSION);
			return 0;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind != argc) {
		usage(stderr);
		return 2;
	}
	log_init(foreground ? LOG_TARGET_CONSOLE : log_target_detect(),
	         verbose ? LOG_DEBUG : LOG_INFO);

	if (config_init(&cfg) < 0) {
		fprintf(stderr, "dsd: out of memory\n");
		return 1;
	}
	r = config_load(&cfg, path, err, sizeof(err));
	if (r < 0) {
		log_err("%s", err);
		config_free(&cfg);
		return 1;
	}
	if (check_only) {
		printf("dsd: configuration %s is valid\n", path);
		config_free(&cfg);
		return 0;
	}
	raise_fd_limit();
	r = dsd_new(path, &cfg, passed_socket(), &d);
	config_free(&cfg);
	if (r < 0)
		return 1;
	r = dsd_run(d);
	dsd_free(d);
	log_notice("stopped");
	return r < 0 ? 1 : r;
}

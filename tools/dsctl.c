/*
 * dsctl: control and inspect dsd through libdsipc.
 *
 * Exit codes: 0 ok, 1 refused or failed, 2 usage, 3 dsd unreachable (not
 * running, went away, or did not answer in time).
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "dsctl.h"
#include "dsipc.h"
#include "metrics.h"

#define REQUEST_TIMEOUT_MS 10000

static const char usage_text[] =
        "usage: dsctl [-s SOCKET] COMMAND [ARGS]\n"
        "\n"
        "Commands:\n"
        "  status [--json]                   connection state and counters\n"
        "  watch [--json]                    current state, then every "
        "change\n"
        "  metrics                           the status in Prometheus' "
        "text format\n"
        "  pause | resume | reload           control the connection\n"
        "  emit NAME [JSON]                  emit an event\n"
        "  subscribe [--json] [-n COUNT] NAME...\n"
        "                                    print events as they arrive\n"
        "\n"
        "Options:\n"
        "  -s, --socket SOCKET  dsd's socket (default: $DSD_SOCKET or "
        "/run/dsd/dsd.sock)\n"
        "  -h, --help           this text\n"
        "\n"
        "Exit status: 0 ok, 1 refused or failed, 2 usage, 3 dsd "
        "unreachable.\n";

static int usage(FILE *f, int code)
{
	fputs(usage_text, f);
	return code;
}

/* -- errors -- */

/*
 * Prints why `what` failed once and returns the exit code for it.  dsd's
 * own refusals may carry any errno (-ENOTCONN while the platform is down),
 * so "unreachable" is judged by the connection, not by the code.
 */
static int fail(dsipc *c, const char *what, int r)
{
	const char *msg = c ? dsipc_last_error(c) : "";
	bool gone = (c && !dsipc_is_connected(c)) || r == -ETIMEDOUT;

	if (gone && r != -ETIMEDOUT)
		msg = "dsd went away";
	if (!*msg)
		msg = strerror(-r);
	fprintf(stderr, "dsctl: %s: %s\n", what, msg);
	return gone ? EXIT_UNREACHABLE : EXIT_FAILED;
}

/* -- the signal-aware loop -- */

static volatile sig_atomic_t got_signal;

static void on_signal(int sig)
{
	got_signal = sig;
}

/*
 * SIGINT/SIGTERM stay blocked except inside ppoll(), so a signal can never
 * slip in between the check and the wait.
 */
static void block_signals(sigset_t *ret_old)
{
	struct sigaction sa = {.sa_handler = on_signal};
	sigset_t set;

	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	sigprocmask(SIG_BLOCK, &set, ret_old);
}

/* Runs until a signal (0), *stop (0) or the connection ends (error). */
static int run_loop(dsipc *c, const bool *stop)
{
	sigset_t old;

	block_signals(&old);
	while (!got_signal && !*stop) {
		struct pollfd p = {.fd = dsipc_get_fd(c),
		                   .events = (short)dsipc_get_events(c)};
		int r;

		if (p.fd < 0)
			return p.fd;
		r = ppoll(&p, 1, NULL, &old);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		r = dsipc_process(c);
		if (r < 0)
			return r;
	}
	return 0;
}

/* -- commands -- */

static int cmd_status(dsipc *c, bool json)
{
	char *text = NULL;
	json_t *v;
	int r;

	r = dsipc_status_json(c, REQUEST_TIMEOUT_MS, &text);
	if (r < 0)
		return fail(c, "status", r);
	v = json_loads(text, 0, NULL);
	if (!v || !json_is_object(v)) {
		fprintf(stderr, "dsctl: status: dsd sent no JSON object\n");
		json_decref(v);
		free(text);
		return EXIT_FAILED;
	}
	if (json) {
		char *line = json_dumps(v, JSON_COMPACT);
		puts(line ? line : text);
		free(line);
	} else {
		dsctl_print_status(stdout, v, dsctl_now_ms());
	}
	json_decref(v);
	free(text);
	return fflush(stdout) == 0 ? EXIT_OK : EXIT_FAILED;
}

/* The status, rendered as the HTTP listener renders it (metrics.c). */
static int cmd_metrics(dsipc *c)
{
	char *text = NULL, *out;
	json_t *v;
	int r;

	r = dsipc_status_json(c, REQUEST_TIMEOUT_MS, &text);
	if (r < 0)
		return fail(c, "metrics", r);
	v = json_loads(text, 0, NULL);
	free(text);
	out = v ? metrics_render(v, NULL) : NULL;
	json_decref(v);
	if (out == NULL) {
		fprintf(stderr, "dsctl: metrics: dsd sent no JSON object\n");
		return EXIT_FAILED;
	}
	fputs(out, stdout);
	free(out);
	return fflush(stdout) == 0 ? EXIT_OK : EXIT_FAILED;
}

static void on_state(dsipc *c, const char *state, const char *reason,
                     int64_t at, void *userdata)
{
	bool json = *(bool *)userdata;

	(void)c;
	if (json) {
		json_t *o = json_pack("{s:s, s:s, s:I}", "state", state,
		                      "reason", reason, "at", (json_int_t)at);
		char *line = o ? json_dumps(o, JSON_COMPACT) : NULL;

		if (line)
			puts(line);
		free(line);
		json_decref(o);
	} else {
		char ts[40];

		dsctl_format_time(at, ts, sizeof(ts));
		if (*reason)
			printf("%s %-5s %s\n", ts, state, reason);
		else
			printf("%s %s\n", ts, state);
	}
	fflush(stdout);
}

static int cmd_watch(dsipc *c, bool json)
{
	bool stop = false;
	int r;

	r = dsipc_watch_state(c, on_state, &json, NULL);
	if (r < 0)
		return fail(c, "watch", r);
	r = run_loop(c, &stop);
	if (r < 0)
		return fail(c, "watch", r);
	return EXIT_OK;
}

static int cmd_control(dsipc *c, const char *verb)
{
	int r;

	if (strcmp(verb, "pause") == 0)
		r = dsipc_pause(c, REQUEST_TIMEOUT_MS);
	else if (strcmp(verb, "resume") == 0)
		r = dsipc_resume(c, REQUEST_TIMEOUT_MS);
	else
		r = dsipc_reload(c, REQUEST_TIMEOUT_MS);
	if (r < 0)
		return fail(c, verb, r);
	return EXIT_OK;
}

static int cmd_emit(dsipc *c, const char *name, const char *json)
{
	dsipc_emit_result res;
	int r;

	r = dsipc_emit_sync(c, name, json, REQUEST_TIMEOUT_MS, &res);
	if (r < 0)
		return fail(c, "emit", r);
	puts(res == DSIPC_EMIT_CONFIRMED ? "confirmed"
	     : res == DSIPC_EMIT_QUEUED  ? "queued"
	                                 : "sent");
	return fflush(stdout) == 0 ? EXIT_OK : EXIT_FAILED;
}

struct sub_ctx {
	bool json;
	long count; /* 0: no limit */
	long seen;
	bool stop;
	bool refused;
};

static void on_event(dsipc *c, const char *name, const char *json,
                     void *userdata)
{
	struct sub_ctx *x = userdata;

	(void)c;
	if (x->stop)
		return;
	if (x->json) {
		json_t *data = json ? json_loads(json, JSON_DECODE_ANY, NULL)
		                    : json_null();
		json_t *o;
		char *line;

		if (!data) /* dsd checks JSON; keep the text if it did not */
			data = json_string(json);
		o = json_pack("{s:s, s:o}", "name", name, "data", data);
		line = o ? json_dumps(o, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
		if (line)
			puts(line);
		free(line);
		json_decref(o);
	} else if (json) {
		printf("%s %s\n", name, json);
	} else {
		printf("%s\n", name);
	}
	fflush(stdout);
	if (x->count > 0 && ++x->seen >= x->count)
		x->stop = true;
}

static void on_error(dsipc *c, const char *name, int code, const char *msg,
                     void *userdata)
{
	struct sub_ctx *x = userdata;

	(void)c;
	fprintf(stderr, "dsctl: subscription to %s refused: %s\n", name,
	        *msg ? msg : strerror(-code));
	x->refused = true;
	x->stop = true;
}

static int cmd_subscribe(dsipc *c, struct sub_ctx *x, char **names, int n)
{
	int r, k;

	dsipc_set_error_cb(c, on_error, x);
	for (k = 0; k < n; k++) {
		int j;

		/* A name given twice would print and count each event twice. */
		for (j = 0; j < k && strcmp(names[j], names[k]) != 0; j++)
			;
		if (j < k)
			continue;
		r = dsipc_subscribe(c, names[k], on_event, x, NULL);
		if (r < 0)
			return fail(c, "subscribe", r);
	}
	r = run_loop(c, &x->stop);
	if (r < 0)
		return fail(c, "subscribe", r);
	return x->refused ? EXIT_FAILED : EXIT_OK;
}

/* -- options -- */

/* Parses a command's own options: --json, and -n COUNT when count. */
static int parse_cmd_opts(int argc, char **argv, bool *json, long *count)
{
	static const struct option opts[] = {
	        {"json", no_argument, NULL, 'j'},
	        {"count", required_argument, NULL, 'n'},
	        {"help", no_argument, NULL, 'h'},
	        {0},
	};
	int o;

	optind = 1;
	while ((o = getopt_long(argc, argv, count ? "+n:h" : "+h", opts,
	                        NULL)) != -1) {
		switch (o) {
		case 'j':
			*json = true;
			break;
		case 'n': {
			char *end;

			if (!count)
				return -1;
			errno = 0;
			*count = strtol(optarg, &end, 10);
			if (errno || *end || end == optarg || *count <= 0) {
				fprintf(stderr, "dsctl: bad count: %s\n",
				        optarg);
				return -1;
			}
			break;
		}
		case 'h':
			return 1;
		default:
			return -1;
		}
	}
	return 0;
}

static int connect_or_fail(const char *socket, dsipc **ret)
{
	dsipc *c;
	int r;

	r = dsipc_new(&c);
	if (r < 0)
		return fail(NULL, "out of memory", r);
	r = dsipc_connect(c, socket);
	if (r < 0) {
		int code =
		        r == -EPROTONOSUPPORT ? EXIT_FAILED : EXIT_UNREACHABLE;
		const char *msg = dsipc_last_error(c);

		fprintf(stderr, "dsctl: cannot talk to dsd: %s\n",
		        *msg ? msg : strerror(-r));
		dsipc_free(c);
		return code;
	}
	*ret = c;
	return EXIT_OK;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
	        {"socket", required_argument, NULL, 's'},
	        {"help", no_argument, NULL, 'h'},
	        {0},
	};
	const char *socket = NULL, *cmd;
	struct sub_ctx sub = {0};
	bool json = false;
	dsipc *c = NULL;
	int o, r, nargs;
	char **args;

	while ((o = getopt_long(argc, argv, "+s:h", opts, NULL)) != -1) {
		switch (o) {
		case 's':
			socket = optarg;
			break;
		case 'h':
			return usage(stdout, EXIT_OK);
		default:
			return usage(stderr, EXIT_USAGE);
		}
	}
	if (optind >= argc)
		return usage(stderr, EXIT_USAGE);
	/* The command's own argv: the command name is its argv[0]. */
	args = argv + optind;
	nargs = argc - optind;
	cmd = args[0];

	if (strcmp(cmd, "status") == 0 || strcmp(cmd, "watch") == 0) {
		r = parse_cmd_opts(nargs, args, &json, NULL);
		if (r != 0 || optind != nargs)
			return usage(r > 0 ? stdout : stderr,
			             r > 0 ? EXIT_OK : EXIT_USAGE);
	} else if (strcmp(cmd, "pause") == 0 || strcmp(cmd, "resume") == 0 ||
	           strcmp(cmd, "reload") == 0 || strcmp(cmd, "metrics") == 0) {
		if (nargs != 1)
			return usage(stderr, EXIT_USAGE);
	} else if (strcmp(cmd, "emit") == 0) {
		r = parse_cmd_opts(nargs, args, &json, NULL);
		if (r != 0 || json || nargs - optind < 1 || nargs - optind > 2)
			return usage(r > 0 ? stdout : stderr,
			             r > 0 ? EXIT_OK : EXIT_USAGE);
	} else if (strcmp(cmd, "subscribe") == 0) {
		r = parse_cmd_opts(nargs, args, &sub.json, &sub.count);
		if (r != 0 || optind >= nargs)
			return usage(r > 0 ? stdout : stderr,
			             r > 0 ? EXIT_OK : EXIT_USAGE);
	} else if (strcmp(cmd, "help") == 0) {
		return usage(stdout, EXIT_OK);
	} else {
		fprintf(stderr, "dsctl: unknown command: %s\n", cmd);
		return usage(stderr, EXIT_USAGE);
	}

	r = connect_or_fail(socket, &c);
	if (r != EXIT_OK)
		return r;
	if (strcmp(cmd, "status") == 0)
		r = cmd_status(c, json);
	else if (strcmp(cmd, "watch") == 0)
		r = cmd_watch(c, json);
	else if (strcmp(cmd, "metrics") == 0)
		r = cmd_metrics(c);
	else if (strcmp(cmd, "emit") == 0)
		r = cmd_emit(c, args[optind],
		             optind + 1 < nargs ? args[optind + 1] : NULL);
	else if (strcmp(cmd, "subscribe") == 0)
		r = cmd_subscribe(c, &sub, args + optind, nargs - optind);
	else
		r = cmd_control(c, cmd);
	dsipc_free(c);
	return r;
}

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

/* Each command's synopsis and its help (`dsctl COMMAND --help`). */
struct command_help {
	const char *name;
	const char *synopsis;
	const char *summary; /* for the list of commands */
	const char *text;
};

static const struct command_help commands[] = {
        {"status", "status [--json]", "connection state and counters",
         "Print the connection state and dsd's counters.\n"
         "  --json  the status object as one line of JSON\n"},
        {"watch", "watch [--json]", "current state, then every change",
         "Print the current state, then every change, until interrupted.\n"
         "  --json  one JSON object a line: state, reason, at (unix ms)\n"},
        {"metrics", "metrics", "the status in Prometheus' text format",
         "Print dsd's figures in the Prometheus text format, as its\n"
         "[metrics] listener serves them (for node_exporter's textfile\n"
         "collector).\n"},
        {"pause", "pause", "close the connection until resume",
         "Close the platform connection and stay OFFLINE until resume.\n"},
        {"resume", "resume", "connect again now",
         "Leave OFFLINE or ERROR now, or make the next attempt now.\n"},
        {"reload", "reload", "re-read the configuration",
         "Make dsd re-read its configuration.\n"},
        {"emit", "emit [-l] [--raw] [-f FILE | --no-data] NAME [DATA]",
         "emit an event (DATA, FILE or stdin)",
         "Emit the event NAME.  Its data (one JSON value) is DATA, else the\n"
         "content of FILE, else standard input when that is not a terminal\n"
         "(empty input: no data).\n"
         "  -f, --file FILE  read the data from FILE (- is stdin)\n"
         "  -l, --lines      one event per input line (blank lines "
         "skipped),\n"
         "                   each reported as \"line N: RESULT\"\n"
         "  -r, --raw        send the text as a JSON string\n"
         "      --no-data    an event without data; stdin is not read\n"
         "Prints confirmed, sent or queued.\n"},
        {"subscribe", "subscribe [--json] [-n COUNT] NAME...",
         "print events as they arrive",
         "Print the events named as they arrive, until interrupted.\n"
         "  --json            one JSON object a line: name, and data when "
         "the\n"
         "                    event has data (null is data)\n"
         "  -n, --count COUNT exit after COUNT events\n"},
        {"help", "help [COMMAND]", "this text, or COMMAND's help",
         "Print the usage, or COMMAND's help.\n"},
};

static const struct command_help *find_command(const char *name)
{
	size_t i;

	for (i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		if (strcmp(commands[i].name, name) == 0)
			return &commands[i];
	return NULL;
}

#define SYNOPSIS_WIDTH 37

static int usage(FILE *f, int code)
{
	size_t i;

	fputs("usage: dsctl [-s SOCKET] COMMAND [ARGS]\n\nCommands:\n", f);
	for (i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
		const struct command_help *h = &commands[i];

		if (strlen(h->synopsis) <= SYNOPSIS_WIDTH)
			fprintf(f, "  %-*s  %s\n", SYNOPSIS_WIDTH, h->synopsis,
			        h->summary);
		else
			fprintf(f, "  %s\n  %-*s  %s\n", h->synopsis,
			        SYNOPSIS_WIDTH, "", h->summary);
	}
	fputs("\n"
	      "Options:\n"
	      "  -s, --socket SOCKET  dsd's socket (default: $DSD_SOCKET or "
	      "/run/dsd/dsd.sock)\n"
	      "  -h, --help           this text (dsctl COMMAND --help: that "
	      "command's)\n"
	      "  -V, --version        print dsctl's version\n"
	      "\n"
	      "Exit status: 0 ok, 1 refused or failed, 2 usage, 3 dsd "
	      "unreachable.\n",
	      f);
	return code;
}

static int command_usage(const struct command_help *h, FILE *f, int code)
{
	fprintf(f, "usage: dsctl [-s SOCKET] %s\n", h->synopsis);
	if (f == stdout)
		fprintf(f, "\n%s", h->text);
	else
		fprintf(f, "Try 'dsctl %s --help'.\n", h->name);
	return code;
}

/* A usage error of a command: what is wrong, then its synopsis. */
static int command_error(const struct command_help *h, const char *fmt,
                         const char *arg)
{
	fprintf(stderr, "dsctl %s: ", h->name);
	fprintf(stderr, fmt, arg);
	fputc('\n', stderr);
	return command_usage(h, stderr, EXIT_USAGE);
}

/* -- errors -- */

/*
 * Prints why `what` failed once and returns the exit code for it.  dsd's
 * own refusals may carry any errno (-ENOTCONN while the platform is down),
 * so "unreachable" is judged by the connection, not by the code.
 */
int dsctl_fail(dsipc *c, const char *what, int r)
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

	r = dsipc_status_json(c, DSCTL_REQUEST_TIMEOUT_MS, &text);
	if (r < 0)
		return dsctl_fail(c, "status", r);
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

#define STATE_WIDTH (sizeof("AWAITING_AUTHENTICATION") - 1)

/* The status, rendered as the HTTP listener renders it (metrics.c). */
static int cmd_metrics(dsipc *c)
{
	char *text = NULL, *out;
	json_t *v;
	int r;

	r = dsipc_status_json(c, DSCTL_REQUEST_TIMEOUT_MS, &text);
	if (r < 0)
		return dsctl_fail(c, "metrics", r);
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

		/* The state column as wide as the longest state's name, so
		 * that the reasons line up. */
		dsctl_format_time(at, ts, sizeof(ts));
		if (*reason)
			printf("%s  %-*s  %s\n", ts, (int)STATE_WIDTH, state,
			       reason);
		else
			printf("%s  %s\n", ts, state);
	}
	fflush(stdout);
}

static int cmd_watch(dsipc *c, bool json)
{
	bool stop = false;
	int r;

	r = dsipc_watch_state(c, on_state, &json, NULL);
	if (r < 0)
		return dsctl_fail(c, "watch", r);
	r = run_loop(c, &stop);
	if (r < 0)
		return dsctl_fail(c, "watch", r);
	return EXIT_OK;
}

static int cmd_control(dsipc *c, const char *verb)
{
	int r;

	if (strcmp(verb, "pause") == 0)
		r = dsipc_pause(c, DSCTL_REQUEST_TIMEOUT_MS);
	else if (strcmp(verb, "resume") == 0)
		r = dsipc_resume(c, DSCTL_REQUEST_TIMEOUT_MS);
	else
		r = dsipc_reload(c, DSCTL_REQUEST_TIMEOUT_MS);
	if (r < 0)
		return dsctl_fail(c, verb, r);
	return EXIT_OK;
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
		/* No data: no "data" key, so that it differs from null data. */
		json_t *o = json_pack("{s:s}", "name", name);
		char *line;

		if (o && json) {
			json_t *data = json_loads(json, JSON_DECODE_ANY, NULL);

			if (!data) /* dsd checks JSON; keep the text if not */
				data = json_string(json);
			json_object_set_new(o, "data", data);
		}
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
			return dsctl_fail(c, "subscribe", r);
	}
	r = run_loop(c, &x->stop);
	if (r < 0)
		return dsctl_fail(c, "subscribe", r);
	return x->refused ? EXIT_FAILED : EXIT_OK;
}

/* -- options -- */

/* What a command's command line says. */
struct cmd_opts {
	bool json;
	long count;
	struct dsctl_emit emit;
};

/*
 * Parses a command's own options (args[0] is the command's name) into x.
 * Returns 0 with optind at its first argument, 1 for --help, or an exit
 * code of a usage error (printed).
 */
static int parse_cmd_opts(const struct command_help *h, int argc, char **argv,
                          struct cmd_opts *x)
{
	enum { OPT_NO_DATA = 256 };
	static const struct option opts[] = {
	        {"json", no_argument, NULL, 'j'},
	        {"count", required_argument, NULL, 'n'},
	        {"file", required_argument, NULL, 'f'},
	        {"lines", no_argument, NULL, 'l'},
	        {"raw", no_argument, NULL, 'r'},
	        {"no-data", no_argument, NULL, OPT_NO_DATA},
	        {"help", no_argument, NULL, 'h'},
	        {0},
	};
	bool is_emit = strcmp(h->name, "emit") == 0;
	bool is_sub = strcmp(h->name, "subscribe") == 0;
	bool has_json = is_sub || strcmp(h->name, "status") == 0 ||
	                strcmp(h->name, "watch") == 0;
	int o;

	optind = 1;
	opterr = 0; /* our own messages, naming the command */
	while ((o = getopt_long(argc, argv, "+:n:f:lrh", opts, NULL)) != -1) {
		/* Options of another command are unknown here. */
		if ((o == 'j' && !has_json) || (o == 'n' && !is_sub) ||
		    ((o == 'f' || o == 'l' || o == 'r' || o == OPT_NO_DATA) &&
		     !is_emit))
			o = '?';
		switch (o) {
		case 'j':
			x->json = true;
			break;
		case 'n': {
			char *end;

			errno = 0;
			x->count = strtol(optarg, &end, 10);
			if (errno || *end || end == optarg || x->count <= 0)
				return command_error(
				        h, "bad count: %s (a positive number)",
				        optarg);
			break;
		}
		case 'f':
			x->emit.file = optarg;
			break;
		case 'l':
			x->emit.lines = true;
			break;
		case 'r':
			x->emit.raw = true;
			break;
		case OPT_NO_DATA:
			x->emit.no_data = true;
			break;
		case 'h':
			return 1;
		case ':':
			return command_error(h, "option %s needs an argument",
			                     argv[optind - 1]);
		default:
			return command_error(h, "unknown option: %s",
			                     argv[optind - 1]);
		}
	}
	return 0;
}

/* emit's options and arguments together; 0 or a usage error's code. */
static int check_emit(const struct command_help *h, int nargs, char **args,
                      struct dsctl_emit *e)
{
	int n = nargs - optind;

	if (n < 1)
		return command_error(h, "missing %s",
		                     "NAME (the event's name)");
	if (n > 2)
		return command_error(h, "unexpected argument: %s",
		                     args[optind + 2]);
	e->name = args[optind];
	e->data = n == 2 ? args[optind + 1] : NULL;
	if (e->data && e->file)
		return command_error(h, "%s", "DATA and -f FILE: give one");
	if (e->data && e->lines)
		return command_error(h, "%s",
		                     "-l reads lines from -f FILE or stdin, "
		                     "not from DATA");
	if (e->no_data && (e->data || e->file || e->lines || e->raw))
		return command_error(h, "%s",
		                     "--no-data goes with no DATA, -f, -l or "
		                     "--raw");
	return 0;
}

int dsctl_connect(const char *socket, dsipc **ret)
{
	dsipc *c;
	int r;

	r = dsipc_new(&c);
	if (r < 0)
		return dsctl_fail(NULL, "out of memory", r);
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
	        {"version", no_argument, NULL, 'V'},
	        {0},
	};
	const struct command_help *h;
	struct cmd_opts x = {.json = false};
	struct sub_ctx sub = {0};
	const char *socket = NULL;
	dsipc *c = NULL;
	int o, r, nargs;
	char **args;

	while ((o = getopt_long(argc, argv, "+s:hV", opts, NULL)) != -1) {
		switch (o) {
		case 's':
			socket = optarg;
			break;
		case 'h':
			return usage(stdout, EXIT_OK);
		case 'V':
			printf("dsctl %s\n", PACKAGE_VERSION);
			return fflush(stdout) == 0 ? EXIT_OK : EXIT_FAILED;
		default:
			return usage(stderr, EXIT_USAGE);
		}
	}
	if (optind >= argc) {
		fputs("dsctl: missing COMMAND\n", stderr);
		return usage(stderr, EXIT_USAGE);
	}
	/* The command's own argv: the command name is its argv[0]. */
	args = argv + optind;
	nargs = argc - optind;
	h = find_command(args[0]);
	if (!h) {
		fprintf(stderr, "dsctl: unknown command: %s\n", args[0]);
		return usage(stderr, EXIT_USAGE);
	}
	r = parse_cmd_opts(h, nargs, args, &x);
	if (r == 1)
		return command_usage(h, stdout, EXIT_OK);
	if (r != 0)
		return r;

	if (strcmp(h->name, "help") == 0) {
		const struct command_help *about;

		if (optind == nargs)
			return usage(stdout, EXIT_OK);
		about = find_command(args[optind]);
		if (!about || nargs - optind > 1)
			return command_error(h, "no such command: %s",
			                     args[optind]);
		return command_usage(about, stdout, EXIT_OK);
	}
	if (strcmp(h->name, "emit") == 0) {
		r = check_emit(h, nargs, args, &x.emit);
		return r != 0 ? r : dsctl_emit_run(socket, &x.emit);
	}
	if (strcmp(h->name, "subscribe") == 0) {
		if (optind >= nargs)
			return command_error(h, "missing %s",
			                     "NAME (at least one event name)");
		sub.json = x.json;
		sub.count = x.count;
	} else if (optind != nargs) {
		return command_error(h, "unexpected argument: %s",
		                     args[optind]);
	}

	r = dsctl_connect(socket, &c);
	if (r != EXIT_OK)
		return r;
	if (strcmp(h->name, "status") == 0)
		r = cmd_status(c, x.json);
	else if (strcmp(h->name, "watch") == 0)
		r = cmd_watch(c, x.json);
	else if (strcmp(h->name, "metrics") == 0)
		r = cmd_metrics(c);
	else if (strcmp(h->name, "subscribe") == 0)
		r = cmd_subscribe(c, &sub, args + optind, nargs - optind);
	else
		r = cmd_control(c, h->name);
	dsipc_free(c);
	return r;
}

/*
 * A test driver built on libdsipc, for the integration tests: many local
 * apps, many emits, a slow reader, garbage on the socket.  It prints its
 * findings as one JSON line so the tests judge them; it decides nothing.
 *
 *   dsipc-load -s SOCK emit NAME COUNT [PAD]  emits {"i":k,"pad":"x..."},
 *                                             k = 0..COUNT-1, PAD bytes of x
 *   dsipc-load -s SOCK subscribe NAME CLIENTS COUNT TIMEOUT_MS
 *   dsipc-load -s SOCK slow NAME [CLIENTS]    CLIENTS apps (1) subscribe and
 *                                             never read
 *   dsipc-load -s SOCK garbage                 writes junk, waits for close
 *   dsipc-load -s SOCK steady NAME APP RATE DURATION_MS
 *   dsipc-load -s SOCK tick NAME INTERVAL_MS COUNT
 *                                             emits {"i":k,"t":<unix us>}
 *                                             every INTERVAL_MS, COUNT
 *                                             times (a subscriber on the
 *                                             platform measures latency)
 *                                             emits {"app":APP,"n":k},
 *                                             k = 0, 1, ... at RATE per
 *                                             second until DURATION_MS is up
 *                                             or SIGTERM/SIGINT comes
 *
 * steady is the app of the fault suite: it keeps emitting while dsd goes
 * away and comes back.  Every number is emitted once, never retried: an
 * emit answered "sent" or "queued" is accepted, anything else (no dsd to
 * connect to, the connection lost before the answer, a refusal) is not.
 * Without dsd it makes a new handle and connects again every few
 * milliseconds.  Its line: {"app","emitted","accepted","sent","queued",
 * "refused","noDaemon","lostAnswer","daemonRefused","unanswered",
 * "reconnects","notAccepted":[[a,b],...]} where notAccepted lists the
 * numbers that were not accepted as ranges (bounded: they come in runs).
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <dsipc.h>

static const char *sock_path;

static long long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static dsipc *open_client(void)
{
	dsipc *c;
	int r;

	if (dsipc_new(&c) < 0)
		exit(1);
	r = dsipc_connect(c, sock_path);
	if (r < 0) {
		fprintf(stderr, "connect: %s\n", strerror(-r));
		exit(3);
	}
	return c;
}

struct emit_tally {
	long sent, queued, refused, pending;
	char first_error[256];
};

static void on_emitted(dsipc *c, int result, const char *msg, void *userdata)
{
	struct emit_tally *t = userdata;

	(void)c;
	t->pending--;
	if (result == DSIPC_EMIT_SENT)
		t->sent++;
	else if (result == DSIPC_EMIT_QUEUED)
		t->queued++;
	else {
		t->refused++;
		if (t->first_error[0] == '\0')
			snprintf(t->first_error, sizeof(t->first_error),
			         "%s (%d)", msg, result);
	}
}

/* Waits (up to wait_ms) for the answers still out, prints the tally as
 * one JSON line and frees c: 0 when every answer came. */
static int finish_tally(dsipc *c, struct emit_tally *t, long wait_ms)
{
	long long deadline = now_ms() + wait_ms;
	long pending;

	while (t->pending > 0 && now_ms() < deadline)
		if (dsipc_wait(c, 200) < 0)
			break;
	printf("{\"sent\":%ld,\"queued\":%ld,\"refused\":%ld,\"pending\":%ld,"
	       "\"firstError\":\"%s\"}\n",
	       t->sent, t->queued, t->refused, t->pending, t->first_error);
	pending = t->pending;
	dsipc_free(c);
	return pending == 0 ? 0 : 1;
}

static int do_emit(const char *name, long count, long pad)
{
	dsipc *c = open_client();
	struct emit_tally t = {0};
	char *data = malloc((size_t)pad + 64);
	int r;

	if (data == NULL)
		return 1;
	for (long i = 0; i < count; i++) {
		int n = snprintf(data, 64, "{\"i\":%ld", i);
		if (pad > 0) {
			n += snprintf(data + n, 64, ",\"pad\":\"");
			memset(data + n, 'x', (size_t)pad);
			n += (int)pad;
			data[n++] = '"';
		}
		data[n++] = '}';
		data[n] = '\0';
		t.pending++;
		while ((r = dsipc_emit_async(c, name, data, on_emitted, &t)) ==
		       -ENOBUFS) {
			/* Our own output buffer is full: let it drain. */
			if (dsipc_wait(c, 100) < 0)
				break;
		}
		if (r < 0) {
			fprintf(stderr, "emit %ld: %s\n", i, strerror(-r));
			return 1;
		}
	}
	free(data);
	return finish_tally(c, &t, 60000);
}

struct sub_client {
	dsipc *c;
	long got;
	long next; /* the i we expect next */
	bool in_order;
};

static void on_event(dsipc *c, const char *name, const char *json,
                     void *userdata)
{
	struct sub_client *s = userdata;
	long i = -1;

	(void)c;
	(void)name;
	if (json != NULL)
		sscanf(json, "{\"i\":%ld}", &i);
	if (i != s->next)
		s->in_order = false;
	s->next = i + 1;
	s->got++;
}

static int do_subscribe(const char *name, int clients, long count,
                        long timeout_ms)
{
	struct sub_client *s = calloc((size_t)clients, sizeof(*s));
	struct pollfd *pfd = calloc((size_t)clients, sizeof(*pfd));
	long long deadline;
	char *json;
	int i;

	if (s == NULL || pfd == NULL)
		return 1;
	for (i = 0; i < clients; i++) {
		s[i].c = open_client();
		s[i].in_order = true;
		if (dsipc_subscribe(s[i].c, name, on_event, &s[i], NULL) < 0)
			return 1;
	}
	/* Requests are answered in order: once status answers, dsd has
	 * taken the subscription. */
	for (i = 0; i < clients; i++) {
		if (dsipc_status_json(s[i].c, 10000, &json) < 0) {
			fprintf(stderr, "client %d: no status\n", i);
			return 1;
		}
		free(json);
	}
	printf("ready\n");
	fflush(stdout);
	deadline = now_ms() + timeout_ms;
	for (;;) {
		bool done = true;

		for (i = 0; i < clients; i++) {
			if (s[i].got < count)
				done = false;
			pfd[i].fd = dsipc_get_fd(s[i].c);
			pfd[i].events = (short)dsipc_get_events(s[i].c);
		}
		if (done || now_ms() >= deadline)
			break;
		poll(pfd, (nfds_t)clients, 50);
		for (i = 0; i < clients; i++)
			if (pfd[i].revents)
				dsipc_process(s[i].c);
	}
	long min = -1, max = 0, total = 0;
	bool in_order = true;
	for (i = 0; i < clients; i++) {
		if (min < 0 || s[i].got < min)
			min = s[i].got;
		if (s[i].got > max)
			max = s[i].got;
		total += s[i].got;
		in_order = in_order && s[i].in_order;
		dsipc_free(s[i].c);
	}
	printf("{\"clients\":%d,\"min\":%ld,\"max\":%ld,\"total\":%ld,"
	       "\"inOrder\":%s}\n",
	       clients, min, max, total, in_order ? "true" : "false");
	free(s);
	free(pfd);
	return 0;
}

static volatile sig_atomic_t stop;

static void on_term(int sig)
{
	(void)sig;
	stop = 1;
}

static int do_slow(const char *name, int clients)
{
	dsipc **c = calloc((size_t)clients, sizeof(*c));
	struct sub_client unused = {0};
	char *json;

	if (c == NULL)
		return 1;
	for (int i = 0; i < clients; i++) {
		c[i] = open_client();
		if (dsipc_subscribe(c[i], name, on_event, &unused, NULL) < 0)
			return 1;
		if (dsipc_status_json(c[i], 10000, &json) < 0)
			return 1;
		free(json);
	}
	printf("ready\n");
	fflush(stdout);
	/* Never read again: dsd must cut us off, not wait for us. */
	while (!stop)
		pause();
	for (int i = 0; i < clients; i++)
		dsipc_free(c[i]);
	free(c);
	return 0;
}

/* The steady app: one byte of outcome per emitted number. */
enum steady_outcome {
	OUT_NONE = 0, /* emitted, no answer (yet) */
	OUT_SENT,
	OUT_QUEUED,
	OUT_NO_DAEMON,   /* no connection to dsd: never handed over */
	OUT_LOST_ANSWER, /* the connection went away before the answer */
	OUT_REFUSED,     /* dsd said no */
};

struct steady {
	unsigned char *outcome;
	long cap;
	long pending;
};

static struct steady steady;

static void on_steady(dsipc *c, int result, const char *msg, void *userdata)
{
	long n = (long)(intptr_t)userdata;

	(void)c;
	(void)msg;
	steady.pending--;
	if (result == DSIPC_EMIT_SENT)
		steady.outcome[n] = OUT_SENT;
	else if (result == DSIPC_EMIT_QUEUED)
		steady.outcome[n] = OUT_QUEUED;
	else if (result == -ECONNRESET || result == -EPIPE)
		steady.outcome[n] = OUT_LOST_ANSWER;
	else
		steady.outcome[n] = OUT_REFUSED;
}

/* A fresh handle connected to dsd, or NULL when dsd is not there. */
static dsipc *steady_connect(void)
{
	dsipc *c;

	if (dsipc_new(&c) < 0)
		exit(1);
	if (dsipc_connect(c, sock_path) < 0) {
		dsipc_free(c); /* nothing pending on it */
		return NULL;
	}
	return c;
}

/* Hands one numbered emit to dsd; the handle is dropped (set to NULL)
 * when the connection is gone.  Pending answers on a lost connection
 * are failed by the library before dsipc_free() returns. */
static void steady_emit(dsipc **cp, const char *name, int app, long n)
{
	char data[64];
	int r;

	snprintf(data, sizeof(data), "{\"app\":%d,\"n\":%ld}", app, n);
	if (*cp == NULL) {
		steady.outcome[n] = OUT_NO_DAEMON;
		return;
	}
	steady.pending++;
	while ((r = dsipc_emit_async(*cp, name, data, on_steady,
	                             (void *)(intptr_t)n)) == -ENOBUFS) {
		/* Our own output buffer is full: let it drain. */
		if (dsipc_wait(*cp, 10) < 0) {
			r = -ECONNRESET;
			break;
		}
	}
	if (r < 0) {
		steady.pending--;
		steady.outcome[n] = OUT_NO_DAEMON;
		dsipc_free(*cp);
		*cp = NULL;
	}
}

static void print_ranges(long emitted)
{
	long a = -1, shown = 0;
	const long max_ranges = 100000;

	printf("[");
	for (long n = 0; n <= emitted; n++) {
		bool ok = n < emitted && (steady.outcome[n] == OUT_SENT ||
		                          steady.outcome[n] == OUT_QUEUED);
		bool bad = n < emitted && !ok;

		if (bad && a < 0)
			a = n;
		if (!bad && a >= 0) {
			if (shown < max_ranges)
				printf("%s[%ld,%ld]", shown ? "," : "", a,
				       n - 1);
			shown++;
			a = -1;
		}
	}
	printf("]");
	if (shown > max_ranges)
		fprintf(stderr, "steady: %ld ranges, only %ld shown\n", shown,
		        max_ranges);
}

static int do_steady(const char *name, int app, long rate, long duration_ms)
{
	dsipc *c = NULL;
	long long start, end, next_try = 0;
	long emitted = 0, reconnects = 0;
	long counts[OUT_REFUSED + 1] = {0};

	if (rate <= 0 || duration_ms <= 0)
		return 2;
	steady.cap = rate * (duration_ms / 1000 + 1) + 1;
	steady.outcome = calloc((size_t)steady.cap, 1);
	if (steady.outcome == NULL)
		return 1;
	start = now_ms();
	end = start + duration_ms;
	printf("ready\n");
	fflush(stdout);
	while (!stop) {
		long long now = now_ms();
		long due = (long)((now - start) * rate / 1000);

		if (now >= end || emitted >= steady.cap)
			break;
		if (c == NULL && now >= next_try) {
			c = steady_connect();
			if (c != NULL)
				reconnects++;
			else
				next_try = now + 10;
		}
		while (emitted < due && emitted < steady.cap)
			steady_emit(&c, name, app, emitted++);
		/* Sleep until the next number is due, answers read meanwhile.
		 */
		int wait =
		        (int)((emitted + 1) * 1000 / rate - (now_ms() - start));
		if (wait < 1)
			wait = 1;
		if (c != NULL) {
			struct pollfd p = {.fd = dsipc_get_fd(c),
			                   .events =
			                           (short)dsipc_get_events(c)};

			if (poll(&p, 1, wait) > 0 && dsipc_process(c) < 0) {
				dsipc_free(c);
				c = NULL;
			}
		} else {
			poll(NULL, 0, wait);
		}
	}
	/* The last answers, while the connection lasts. */
	long long deadline = now_ms() + 30000;
	while (c != NULL && steady.pending > 0 && now_ms() < deadline)
		if (dsipc_wait(c, 100) < 0)
			break;
	if (c != NULL)
		dsipc_free(c);
	for (long n = 0; n < emitted; n++)
		counts[steady.outcome[n]]++;
	printf("{\"app\":%d,\"emitted\":%ld,\"accepted\":%ld,\"sent\":%ld,"
	       "\"queued\":%ld,\"refused\":%ld,\"noDaemon\":%ld,"
	       "\"lostAnswer\":%ld,\"daemonRefused\":%ld,\"unanswered\":%ld,"
	       "\"reconnects\":%ld,\"notAccepted\":",
	       app, emitted, counts[OUT_SENT] + counts[OUT_QUEUED],
	       counts[OUT_SENT], counts[OUT_QUEUED],
	       emitted - counts[OUT_SENT] - counts[OUT_QUEUED],
	       counts[OUT_NO_DAEMON], counts[OUT_LOST_ANSWER],
	       counts[OUT_REFUSED], counts[OUT_NONE], reconnects);
	print_ranges(emitted);
	printf("}\n");
	free(steady.outcome);
	return 0;
}

static int do_garbage(void)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	static const char junk[] = "\x00\x00\x00\x05\xc1\xc1\xc1\xc1\xc1"
	                           "GET / HTTP/1.1\r\n\r\n";
	char buf[4096];
	ssize_t n;
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", sock_path);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		return 3;
	if (send(fd, junk, sizeof(junk) - 1, MSG_NOSIGNAL) < 0)
		return 1;
	struct timeval tv = {5, 0};
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	while ((n = read(fd, buf, sizeof(buf))) > 0)
		;
	printf("%s\n", n == 0 ? "closed" : "still open");
	close(fd);
	return n == 0 ? 0 : 1;
}

static long long unix_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (long long)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* A steady, light app: one emit every interval, never waiting for the
 * answers (they are tallied as they come). */
static int do_tick(const char *name, long interval_ms, long count)
{
	dsipc *c = open_client();
	struct emit_tally t = {0};
	long long next = now_ms();
	char data[96];

	for (long i = 0; i < count; i++) {
		int r;

		while (now_ms() < next)
			if (dsipc_wait(c, (int)(next - now_ms())) < 0)
				return 1;
		next += interval_ms;
		snprintf(data, sizeof(data), "{\"i\":%ld,\"t\":%lld}", i,
		         unix_us());
		t.pending++;
		r = dsipc_emit_async(c, name, data, on_emitted, &t);
		if (r < 0) {
			fprintf(stderr, "tick %ld: %s\n", i, strerror(-r));
			return 1;
		}
	}
	return finish_tally(c, &t, 30000);
}

int main(int argc, char **argv)
{
	struct sigaction sa = {.sa_handler = on_term};

	struct rlimit rl;

	/* A thousand clients need a thousand descriptors. */
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	if (argc >= 4 && strcmp(argv[1], "-s") == 0) {
		sock_path = argv[2];
		argv += 3;
		argc -= 3;
		if (strcmp(argv[0], "emit") == 0 && (argc == 3 || argc == 4))
			return do_emit(argv[1], atol(argv[2]),
			               argc == 4 ? atol(argv[3]) : 0);
		if (strcmp(argv[0], "subscribe") == 0 && argc == 5)
			return do_subscribe(argv[1], atoi(argv[2]),
			                    atol(argv[3]), atol(argv[4]));
		if (strcmp(argv[0], "slow") == 0 && (argc == 2 || argc == 3))
			return do_slow(argv[1], argc == 3 ? atoi(argv[2]) : 1);
		if (strcmp(argv[0], "tick") == 0 && argc == 4)
			return do_tick(argv[1], atol(argv[2]), atol(argv[3]));
		if (strcmp(argv[0], "steady") == 0 && argc == 5)
			return do_steady(argv[1], atoi(argv[2]), atol(argv[3]),
			                 atol(argv[4]));
		if (strcmp(argv[0], "garbage") == 0 && argc == 1)
			return do_garbage();
	}
	fprintf(stderr, "usage: see the comment at the top of dsipc-load.c\n");
	return 2;
}

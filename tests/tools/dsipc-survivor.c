/*
 * An app that leaves surviving dsd restarts to libdsipc (reconnection on),
 * for tests/integration/survive.test.js.  It decides nothing; it prints:
 *
 *   ready                     the link to dsd is up for the first time
 *   link STATE ERROR          every change of the link (dsipc_link numbers)
 *   event JSON                every event of SUBNAME it receives
 *   accepted N sent|queued    dsd accepted emit number N
 *   refused N ERRNO MSG       emit N was refused (at once or by dsd)
 *   {"emitted":..,"accepted":..,"refused":..,"maxBuffered":..}
 *                             last, after SIGTERM and every answer
 *
 *   dsipc-survivor SOCKET NAME SUBNAME INTERVAL_MS
 *
 * It emits {"n":k}, k = 0, 1, ..., as NAME every INTERVAL_MS, each once,
 * with dsipc_emit_async(); on SIGTERM it stops emitting, waits (up to
 * 20 s) for the answers of what it already emitted, prints its line and
 * exits 0.  It exits 1 if the library gives up on dsd.
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <dsipc.h>

static volatile sig_atomic_t stop;
static long emitted, accepted, refused, unanswered;
static int max_buffered;

static long long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void on_stop(int sig)
{
	(void)sig;
	stop = 1;
}

static void on_link(dsipc *c, int link, int error, void *ud)
{
	static int was_up;

	(void)c;
	(void)ud;
	printf("link %d %d\n", link, error);
	if (link == DSIPC_LINK_UP && !was_up) {
		was_up = 1;
		printf("ready\n");
	}
}

static void on_event(dsipc *c, const char *name, const char *json, void *ud)
{
	(void)c;
	(void)name;
	(void)ud;
	printf("event %s\n", json ? json : "null");
}

static void on_emitted(dsipc *c, int result, const char *msg, void *ud)
{
	long n = (long)(intptr_t)ud;

	(void)c;
	unanswered--;
	if (result == DSIPC_EMIT_SENT || result == DSIPC_EMIT_QUEUED) {
		accepted++;
		printf("accepted %ld %s\n", n,
		       result == DSIPC_EMIT_SENT ? "sent" : "queued");
	} else {
		refused++;
		printf("refused %ld %d %s\n", n, result, msg);
	}
}

static void on_error(dsipc *c, const char *name, int code, const char *msg,
                     void *ud)
{
	(void)c;
	(void)ud;
	fprintf(stderr, "error %s %d %s\n", name, code, msg);
}

int main(int argc, char **argv)
{
	struct sigaction sa = {.sa_handler = on_stop};
	long long next, give_up = 0;
	int interval, r;
	dsipc *c;

	if (argc != 5) {
		fprintf(stderr, "usage: %s SOCKET NAME SUBNAME INTERVAL_MS\n",
		        argv[0]);
		return 2;
	}
	interval = atoi(argv[4]);
	setvbuf(stdout, NULL, _IOLBF, 0);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	if (dsipc_new(&c) < 0 || dsipc_set_reconnect(c, 50, 500, 60000) < 0 ||
	    dsipc_set_buffer(c, 100000, 64 * 1024 * 1024) < 0)
		return 1;
	dsipc_set_error_cb(c, on_error, NULL);
	if (dsipc_watch_link(c, on_link, NULL, NULL) < 0 ||
	    dsipc_subscribe(c, argv[3], on_event, NULL, NULL) < 0)
		return 1;
	r = dsipc_connect_async(c, argv[1]);
	if (r < 0) {
		fprintf(stderr, "connect: %s\n", strerror(-r));
		return 1;
	}
	next = now_ms();
	for (;;) {
		struct pollfd p = {.fd = dsipc_get_fd(c),
		                   .events = (short)dsipc_get_events(c)};
		int t = -1, b;
		long long left;

		if (stop && !give_up)
			give_up = now_ms() + 20000;
		if (stop && (unanswered == 0 || now_ms() >= give_up))
			break;
		(void)dsipc_get_timeout(c, &t);
		left = stop ? 100 : next - now_ms();
		if (left < 0)
			left = 0;
		if (t < 0 || t > left)
			t = (int)left;
		poll(&p, p.fd >= 0 ? 1 : 0, t);
		r = dsipc_process(c);
		if (r < 0) {
			fprintf(stderr, "gave up: %s\n", dsipc_last_error(c));
			return 1;
		}
		if (!stop && now_ms() >= next) {
			char data[64];
			long n = emitted++;

			snprintf(data, sizeof(data), "{\"n\":%ld}", n);
			r = dsipc_emit_async(c, argv[2], data, on_emitted,
			                     (void *)(intptr_t)n);
			if (r < 0) {
				refused++;
				printf("refused %ld %d %s\n", n, r,
				       dsipc_last_error(c));
			} else {
				unanswered++;
			}
			next += interval;
		}
		b = dsipc_get_buffered(c);
		if (b > max_buffered)
			max_buffered = b;
	}
	printf("{\"emitted\":%ld,\"accepted\":%ld,\"refused\":%ld,"
	       "\"unanswered\":%ld,\"maxBuffered\":%d}\n",
	       emitted, accepted, refused, unanswered, max_buffered);
	dsipc_free(c);
	return 0;
}

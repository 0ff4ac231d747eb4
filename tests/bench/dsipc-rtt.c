/*
 * Round-trip latency driver for the benchmark (tests/bench/bench.js).
 *
 *   dsipc-rtt -s SOCK OUT BACK SAMPLES WARMUP TIMEOUT_MS
 *
 * Subscribes to BACK, then, one at a time, emits {"i":k} on OUT and waits
 * for {"i":k} to come back on BACK (a JS client on the platform echoes OUT
 * to BACK).  The first WARMUP round trips are not counted; each waits at
 * most 2 s (or TIMEOUT_MS if less) and is retried up to WARMUP_TRIES times,
 * because the upstream subscription may still be on its way when the first
 * emit goes out (the platform drops an event nobody is subscribed to).  A
 * counted round trip waits TIMEOUT_MS; one that does not come back in that
 * time is counted as lost.  Prints "ready" once subscribed and, at the
 * end, one JSON line with the latencies in microseconds.  It measures; it
 * judges nothing (exit 1 only when it could not run at all).
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <dsipc.h>

#define WARMUP_TRIES   10
#define WARMUP_WAIT_US 2000000

struct rtt {
	long last_i; /* the i of the newest echo seen */
};

static int64_t now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void on_back(dsipc *c, const char *name, const char *json,
                    void *userdata)
{
	struct rtt *r = userdata;
	long i;

	(void)c;
	(void)name;
	if (json != NULL && sscanf(json, "{\"i\":%ld}", &i) == 1)
		r->last_i = i;
}

/* Polls the socket until the echo of k arrives or timeout_us passes.
 * Returns 0, -ETIMEDOUT or dsipc_process()'s error. */
static int wait_echo(dsipc *c, struct rtt *r, long k, int64_t timeout_us)
{
	int64_t deadline = now_us() + timeout_us;

	while (r->last_i != k) {
		int64_t left = deadline - now_us();
		struct pollfd pfd = {.fd = dsipc_get_fd(c),
		                     .events = (short)dsipc_get_events(c)};
		int n, ret;

		if (left <= 0)
			return -ETIMEDOUT;
		/* Round up so a wait never spins on a 0 ms timeout. */
		n = poll(&pfd, 1, (int)((left + 999) / 1000));
		if (n < 0 && errno != EINTR)
			return -errno;
		if (n > 0) {
			ret = dsipc_process(c);
			if (ret < 0)
				return ret;
		}
	}
	return 0;
}

/* Emits {"i":k} on out and waits for its echo; the time in *ret_us. */
static int round_trip(dsipc *c, struct rtt *r, const char *out, long k,
                      int64_t timeout_us, int64_t *ret_us)
{
	char data[64];
	int64_t t0;
	int ret;

	snprintf(data, sizeof(data), "{\"i\":%ld}", k);
	t0 = now_us();
	ret = dsipc_emit(c, out, data);
	if (ret < 0)
		return ret;
	ret = wait_echo(c, r, k, timeout_us);
	if (ret < 0)
		return ret;
	*ret_us = now_us() - t0;
	return 0;
}

static int cmp_i64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

	return (x > y) - (x < y);
}

/* Nearest-rank percentile of a sorted array of n > 0 values. */
static int64_t percentile(const int64_t *v, long n, int p)
{
	long rank = (p * n + 99) / 100;

	return v[rank > 0 ? rank - 1 : 0];
}

static int run(const char *sock, const char *out, const char *back,
               long samples, long warmup, long timeout_ms)
{
	struct rtt r = {.last_i = -1};
	int64_t *lat = calloc((size_t)samples, sizeof(*lat));
	int64_t timeout_us = (int64_t)timeout_ms * 1000, sum = 0, us;
	int64_t warm_us =
	        timeout_us < WARMUP_WAIT_US ? timeout_us : WARMUP_WAIT_US;
	long k = 0, got = 0, lost = 0;
	dsipc *c = NULL;
	char *json;
	int ret;

	if (lat == NULL)
		return 1;
	if (dsipc_new(&c) < 0 || (ret = dsipc_connect(c, sock)) < 0) {
		fprintf(stderr, "connect %s failed\n", sock);
		goto fail;
	}
	if (dsipc_subscribe(c, back, on_back, &r, NULL) < 0 ||
	    dsipc_status_json(c, 10000, &json) < 0) {
		fprintf(stderr, "subscribe %s failed\n", back);
		goto fail;
	}
	free(json);
	printf("ready\n");
	fflush(stdout);

	for (long w = 0; w < warmup; w++, k++) {
		ret = round_trip(c, &r, out, k, warm_us, &us);
		for (int t = 1; ret == -ETIMEDOUT && t < WARMUP_TRIES; t++)
			ret = round_trip(c, &r, out, ++k, warm_us, &us);
		if (ret < 0) {
			fprintf(stderr, "warm-up round trip %ld: %s\n", w,
			        strerror(-ret));
			goto fail;
		}
	}
	for (long s = 0; s < samples; s++, k++) {
		ret = round_trip(c, &r, out, k, timeout_us, &us);
		if (ret == -ETIMEDOUT) {
			lost++;
			continue;
		}
		if (ret < 0) {
			fprintf(stderr, "round trip %ld: %s\n", s,
			        strerror(-ret));
			goto fail;
		}
		lat[got++] = us;
		sum += us;
	}
	if (got == 0) {
		fprintf(stderr, "no round trip came back\n");
		goto fail;
	}
	qsort(lat, (size_t)got, sizeof(*lat), cmp_i64);
	printf("{\"samples\":%ld,\"lost\":%ld,\"minUs\":%lld,\"p50Us\":%lld,"
	       "\"p90Us\":%lld,\"p99Us\":%lld,\"maxUs\":%lld,\"meanUs\":%lld}"
	       "\n",
	       got, lost, (long long)lat[0],
	       (long long)percentile(lat, got, 50),
	       (long long)percentile(lat, got, 90),
	       (long long)percentile(lat, got, 99), (long long)lat[got - 1],
	       (long long)(sum / got));
	dsipc_free(c);
	free(lat);
	return 0;
fail:
	dsipc_free(c);
	free(lat);
	return 1;
}

int main(int argc, char **argv)
{
	signal(SIGPIPE, SIG_IGN);
	if (argc == 8 && strcmp(argv[1], "-s") == 0) {
		long samples = atol(argv[5]), warmup = atol(argv[6]),
		     timeout_ms = atol(argv[7]);

		if (samples > 0 && warmup >= 0 && timeout_ms > 0)
			return run(argv[2], argv[3], argv[4], samples, warmup,
			           timeout_ms);
	}
	fprintf(stderr, "usage: dsipc-rtt -s SOCK OUT BACK SAMPLES WARMUP "
	                "TIMEOUT_MS\n");
	return 2;
}

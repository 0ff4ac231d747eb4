/*
 * handoff-cost: what dsd's thread structure costs per isolated round trip,
 * on this machine, with no dsd code in the way.
 *
 *   handoff-cost [ROUND_TRIPS]        (default 2000; one JSON line)
 *
 * An isolated emit and its echo, as dsd sees them (strace of dsd during
 * side-by-side's round trip): the app's request arrives on a Unix socket;
 * the EMIT frame and the PING fence go out in one TCP send; the app gets
 * its reply; the PONG comes back; later the echoed event comes back and is
 * written to the app.  A peer process (forked; its CPU is not counted)
 * plays the app and the platform.  The measured process does exactly the
 * system calls of that sequence and nothing else, two ways:
 *
 *   single: one thread, one epoll set with both sockets.  The least any
 *     design can do: 3 wakeups, 9 system calls per round trip.
 *   threaded: dsd's structure.  A main thread (epoll: the Unix socket and
 *     an eventfd) and a network thread (poll: the TCP socket and an
 *     eventfd, as libwebsockets 4.1 waits).  The main thread hands the
 *     frame over under a mutex and writes the network thread's eventfd
 *     (lws_cancel_service()); the network thread polls once more for
 *     POLLOUT (lws writes only from its WRITEABLE callback), sends, and
 *     hands each frame it reads (the PONG, then the event) back under the
 *     mutex with a write to the main thread's eventfd.  3 hand-offs, 19
 *     system calls per round trip: what dsd does.
 *
 * And as a reference, single without the fence: the request, one TCP send,
 * the reply, the echo (2 wakeups, 7 system calls): what a relay that does
 * not confirm its writes would need at least.
 *
 * Also the bare hand-off: two threads passing a token back and forth, one
 * waiting in epoll_wait() on an eventfd, the other in poll() on another.
 *
 * CPU is the measured process's (CLOCK_PROCESS_CPUTIME_ID, all its
 * threads; user and system apart from getrusage()), per round trip, the
 * median of 5 runs.  It judges nothing.
 */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define RUNS   5
#define WARMUP 200

/* Sizes as in the strace of dsd: request, reply, EMIT+PING, PONG, event. */
#define REQ_LEN   34
#define REPLY_LEN 20
#define OUT_LEN   38
#define PONG_LEN  9
#define PING_LEN  13
#define EVT_LEN   21
#define DELIV_LEN 30
/* The platform's PONG is immediate; the echo comes later (through the
 * echoing client): the peer waits this long in between, so that the two
 * arrive as two wakeups, as they do in dsd. */
#define ECHO_GAP_NS 100000

static void die(const char *what)
{
	perror(what);
	exit(1);
}

static void xread(int fd, size_t len)
{
	char buf[256];
	size_t got = 0;

	while (got < len) {
		ssize_t n = read(fd, buf, len - got);

		if (n <= 0)
			die("peer read");
		got += (size_t)n;
	}
}

static void xwrite(int fd, size_t len)
{
	char buf[256] = {0};

	if (write(fd, buf, len) != (ssize_t)len)
		die("write");
}

/* The app and the platform: n round trips, then exit. */
static void peer(int app, int tcp, long n, int fence)
{
	struct timespec gap = {.tv_nsec = ECHO_GAP_NS};

	for (long i = 0; i < n; i++) {
		xwrite(app, REQ_LEN);
		xread(tcp, fence ? OUT_LEN : OUT_LEN - PING_LEN);
		xread(app, REPLY_LEN);
		if (fence)
			xwrite(tcp, PONG_LEN);
		nanosleep(&gap, NULL);
		xwrite(tcp, EVT_LEN);
		xread(app, DELIV_LEN);
	}
	_exit(0);
}

/* Reads exactly len bytes from a non-blocking socket that is readable. */
static void recv_all(int fd, size_t len)
{
	char buf[256];
	size_t got = 0;

	while (got < len) {
		ssize_t n = recv(fd, buf, len - got, MSG_DONTWAIT);

		if (n > 0)
			got += (size_t)n;
		else if (n < 0 && errno == EAGAIN) {
			struct pollfd p = {.fd = fd, .events = POLLIN};
			poll(&p, 1, -1);
		} else
			die("recv");
	}
}

static void send_all(int fd, size_t len)
{
	char buf[256] = {0};

	if (send(fd, buf, len, MSG_DONTWAIT | MSG_NOSIGNAL) != (ssize_t)len)
		die("send");
}

static void epoll_one(int ep, int want)
{
	struct epoll_event ev;

	for (;;) {
		int n = epoll_wait(ep, &ev, 1, -1);

		if (n == 1 && (int)ev.data.fd == want)
			return;
		if (n < 0 && errno != EINTR)
			die("epoll_wait");
	}
}

/* -- single: one thread -- */

static void run_single(int app, int tcp, long n, int fence)
{
	struct epoll_event ev = {.events = EPOLLIN};
	int ep = epoll_create1(EPOLL_CLOEXEC);

	ev.data.fd = app;
	epoll_ctl(ep, EPOLL_CTL_ADD, app, &ev);
	ev.data.fd = tcp;
	epoll_ctl(ep, EPOLL_CTL_ADD, tcp, &ev);
	for (long i = 0; i < n; i++) {
		epoll_one(ep, app);
		recv_all(app, REQ_LEN);
		send_all(tcp, fence ? OUT_LEN : OUT_LEN - PING_LEN);
		send_all(app, REPLY_LEN);
		if (fence) {
			epoll_one(ep, tcp);
			recv_all(tcp, PONG_LEN);
		}
		epoll_one(ep, tcp);
		recv_all(tcp, EVT_LEN);
		send_all(app, DELIV_LEN);
	}
	close(ep);
}

/* -- threaded: dsd's structure -- */

struct shared {
	pthread_mutex_t lock;
	int to_net;  /* eventfd the network thread polls */
	int to_main; /* eventfd the main thread's epoll watches */
	int tcp;
	long n;
	long out_queued; /* frames main -> net */
	long in_queued;  /* frames net -> main */
};

static void signal_fd(int fd)
{
	uint64_t one = 1;

	if (write(fd, &one, sizeof(one)) != sizeof(one))
		die("eventfd write");
}

static void drain_fd(int fd)
{
	uint64_t v;

	if (read(fd, &v, sizeof(v)) != sizeof(v))
		die("eventfd read");
}

static void poll_for(struct pollfd *p, int nfds, int idx, short what)
{
	for (;;) {
		int r = poll(p, (nfds_t)nfds, -1);

		if (r > 0 && (p[idx].revents & what))
			return;
		if (r < 0 && errno != EINTR)
			die("poll");
	}
}

static void *net_thread(void *arg)
{
	struct shared *s = arg;
	struct pollfd p[2] = {{.fd = s->to_net, .events = POLLIN},
	                      {.fd = s->tcp, .events = POLLIN}};

	for (long i = 0; i < s->n; i++) {
		/* Woken by the main thread (lws_cancel_service()). */
		poll_for(p, 2, 0, POLLIN);
		drain_fd(s->to_net);
		pthread_mutex_lock(&s->lock);
		s->out_queued--;
		pthread_mutex_unlock(&s->lock);
		/* lws: callback_on_writable, then one more poll for POLLOUT. */
		p[1].events = POLLIN | POLLOUT;
		poll_for(p, 2, 1, POLLOUT);
		p[1].events = POLLIN;
		send_all(s->tcp, OUT_LEN);
		/* The PONG, then the event: each handed to the main thread. */
		for (int k = 0; k < 2; k++) {
			poll_for(p, 2, 1, POLLIN);
			recv_all(s->tcp, k == 0 ? PONG_LEN : EVT_LEN);
			pthread_mutex_lock(&s->lock);
			s->in_queued++;
			pthread_mutex_unlock(&s->lock);
			signal_fd(s->to_main);
		}
	}
	return NULL;
}

static void run_threaded(int app, int tcp, long n)
{
	struct shared s = {.tcp = tcp, .n = n};
	struct epoll_event ev = {.events = EPOLLIN};
	pthread_t t;
	int ep = epoll_create1(EPOLL_CLOEXEC);

	pthread_mutex_init(&s.lock, NULL);
	s.to_net = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	s.to_main = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	ev.data.fd = app;
	epoll_ctl(ep, EPOLL_CTL_ADD, app, &ev);
	ev.data.fd = s.to_main;
	epoll_ctl(ep, EPOLL_CTL_ADD, s.to_main, &ev);
	if (pthread_create(&t, NULL, net_thread, &s))
		die("pthread_create");
	for (long i = 0; i < n; i++) {
		epoll_one(ep, app);
		recv_all(app, REQ_LEN);
		pthread_mutex_lock(&s.lock);
		s.out_queued++;
		pthread_mutex_unlock(&s.lock);
		signal_fd(s.to_net);
		send_all(app, REPLY_LEN);
		/* The eventfd counts: two signals may come as one wakeup,
		 * so take what is queued, as dsd's bridge does. */
		for (long got = 0; got < 2;) {
			epoll_one(ep, s.to_main);
			drain_fd(s.to_main);
			pthread_mutex_lock(&s.lock);
			got += s.in_queued;
			s.in_queued = 0;
			pthread_mutex_unlock(&s.lock);
		}
		send_all(app, DELIV_LEN);
	}
	pthread_join(t, NULL);
	close(ep);
	close(s.to_net);
	close(s.to_main);
	pthread_mutex_destroy(&s.lock);
}

/* -- the bare hand-off: a token back and forth between two threads -- */

struct pingpong {
	int a, b; /* eventfds: a is epoll-waited, b is poll-waited */
	long n;
};

static void *pong_thread(void *arg)
{
	struct pingpong *pp = arg;
	struct pollfd p = {.fd = pp->b, .events = POLLIN};

	for (long i = 0; i < pp->n; i++) {
		poll_for(&p, 1, 0, POLLIN);
		drain_fd(pp->b);
		signal_fd(pp->a);
	}
	return NULL;
}

static void run_pingpong(long n)
{
	struct pingpong pp = {.n = n};
	struct epoll_event ev = {.events = EPOLLIN};
	pthread_t t;
	int ep = epoll_create1(EPOLL_CLOEXEC);

	pp.a = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	pp.b = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	ev.data.fd = pp.a;
	epoll_ctl(ep, EPOLL_CTL_ADD, pp.a, &ev);
	if (pthread_create(&t, NULL, pong_thread, &pp))
		die("pthread_create");
	for (long i = 0; i < n; i++) {
		signal_fd(pp.b);
		epoll_one(ep, pp.a);
		drain_fd(pp.a);
	}
	pthread_join(t, NULL);
	close(ep);
	close(pp.a);
	close(pp.b);
}

/* -- measuring -- */

struct cpu {
	double total_us, user_us, sys_us;
};

static double ts_us(const struct timespec *t)
{
	return (double)t->tv_sec * 1e6 + (double)t->tv_nsec / 1e3;
}

static double tv_us(const struct timeval *t)
{
	return (double)t->tv_sec * 1e6 + (double)t->tv_usec;
}

static struct cpu cpu_now(void)
{
	struct timespec ts;
	struct rusage ru;
	struct cpu c;

	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	getrusage(RUSAGE_SELF, &ru);
	c.total_us = ts_us(&ts);
	c.user_us = tv_us(&ru.ru_utime);
	c.sys_us = tv_us(&ru.ru_stime);
	return c;
}

static void tcp_pair(int *ret_a, int *ret_b)
{
	struct sockaddr_in sa = {.sin_family = AF_INET,
	                         .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof(sa);
	int one = 1, l, a, b;

	l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (l < 0 || bind(l, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
	    listen(l, 1) < 0 ||
	    getsockname(l, (struct sockaddr *)&sa, &len) < 0)
		die("listen");
	a = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (a < 0 || connect(a, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		die("connect");
	b = accept4(l, NULL, NULL, SOCK_CLOEXEC);
	if (b < 0)
		die("accept");
	close(l);
	setsockopt(a, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	setsockopt(b, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	*ret_a = a;
	*ret_b = b;
}

/* One run of a mode: per round trip (or per hand-off) CPU.  Modes: 0
 * single, 1 threaded, 2 the bare hand-off, 3 single without the fence. */
static struct cpu one_run(int mode, long n)
{
	struct cpu c0, c1, r;
	double per;

	if (mode == 2) {
		run_pingpong(WARMUP);
		c0 = cpu_now();
		run_pingpong(n);
		c1 = cpu_now();
		per = 2.0 * (double)n; /* two hand-offs per exchange */
	} else {
		int us[2], app, tcp, tcp_peer, st;
		pid_t pid;

		if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, us) < 0)
			die("socketpair");
		tcp_pair(&tcp, &tcp_peer);
		app = us[0];
		pid = fork();
		if (pid < 0)
			die("fork");
		if (pid == 0) {
			close(app);
			close(tcp);
			peer(us[1], tcp_peer, WARMUP + n, mode != 3);
		}
		close(us[1]);
		close(tcp_peer);
		for (int k = 0; k < 2; k++) {
			long m = k == 0 ? WARMUP : n;

			if (k == 1)
				c0 = cpu_now();
			if (mode == 1)
				run_threaded(app, tcp, m);
			else
				run_single(app, tcp, m, mode == 0);
		}
		c1 = cpu_now();
		waitpid(pid, &st, 0);
		close(app);
		close(tcp);
		per = (double)n;
	}
	r.total_us = (c1.total_us - c0.total_us) / per;
	r.user_us = (c1.user_us - c0.user_us) / per;
	r.sys_us = (c1.sys_us - c0.sys_us) / per;
	return r;
}

static int cmp_cpu(const void *a, const void *b)
{
	double x = ((const struct cpu *)a)->total_us,
	       y = ((const struct cpu *)b)->total_us;

	return (x > y) - (x < y);
}

static struct cpu median(int mode, long n, double *ret_min, double *ret_max)
{
	struct cpu runs[RUNS];

	for (int i = 0; i < RUNS; i++)
		runs[i] = one_run(mode, n);
	qsort(runs, RUNS, sizeof(runs[0]), cmp_cpu);
	*ret_min = runs[0].total_us;
	*ret_max = runs[RUNS - 1].total_us;
	return runs[RUNS / 2];
}

int main(int argc, char **argv)
{
	long n = argc > 1 ? atol(argv[1]) : 2000;
	double smin, smax, tmin, tmax, hmin, hmax, nmin, nmax;
	struct cpu single, threaded, hand, nofence;

	if (n <= 0) {
		fprintf(stderr, "usage: handoff-cost [ROUND_TRIPS]\n");
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);
	single = median(0, n, &smin, &smax);
	threaded = median(1, n, &tmin, &tmax);
	hand = median(2, 10 * n, &hmin, &hmax);
	nofence = median(3, n, &nmin, &nmax);
	printf("{\"roundTrips\":%ld,\"runs\":%d,"
	       "\"singleUsPerRtt\":%.1f,\"singleUserUs\":%.1f,"
	       "\"singleSysUs\":%.1f,\"singleRange\":[%.1f,%.1f],"
	       "\"threadedUsPerRtt\":%.1f,\"threadedUserUs\":%.1f,"
	       "\"threadedSysUs\":%.1f,\"threadedRange\":[%.1f,%.1f],"
	       "\"handoffUs\":%.1f,\"handoffRange\":[%.1f,%.1f],"
	       "\"noFenceUsPerRtt\":%.1f,\"noFenceRange\":[%.1f,%.1f]}\n",
	       n, RUNS, single.total_us, single.user_us, single.sys_us, smin,
	       smax, threaded.total_us, threaded.user_us, threaded.sys_us, tmin,
	       tmax, hand.total_us, hmin, hmax, nofence.total_us, nmin, nmax);
	return 0;
}

/*
 * A local client that speaks the IPC protocol by hand, below libdsipc, for
 * the hardening tests: the timings and closes a real app may produce that
 * the library never would.  Prints one JSON line; judges nothing.
 *
 *   ipc-raw SOCK burst NAME COUNT       HELLO and COUNT emits of {"i":k} in
 *                                       one write, then close unread
 *   ipc-raw SOCK burst-after-hello NAME COUNT
 *                                       the same, HELLO answered first
 *   ipc-raw SOCK late-hello DELAY_MS    connect, wait, HELLO, one STATUS
 *   ipc-raw SOCK silent                 connect, say nothing: how long
 *                                       until dsd closes (ms)
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "ipcproto.h"

static long long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int connect_to(const char *path)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		printf("{\"error\":\"connect: %s\"}\n", strerror(errno));
		exit(3);
	}
	return fd;
}

static void write_all(int fd, const struct ipc_buf *b)
{
	size_t off = 0;

	while (off < b->len) {
		ssize_t n = send(fd, b->data + off, b->len - off, MSG_NOSIGNAL);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			printf("{\"error\":\"send: %s\"}\n", strerror(errno));
			exit(1);
		}
		off += (size_t)n;
	}
}

static void add(struct ipc_buf *b, const struct ipc_msg *m)
{
	if (ipc_encode(b, m) < 0) {
		printf("{\"error\":\"encode\"}\n");
		exit(1);
	}
}

static void add_hello(struct ipc_buf *b)
{
	struct ipc_msg m = {.type = IPC_HELLO,
	                    .has_code = true,
	                    .code = IPC_PROTOCOL_VERSION,
	                    .text = "ipc-raw"};

	add(b, &m);
}

/* Reads one frame (5 s at most); its type, or -1 at EOF or timeout. */
static int read_frame(int fd)
{
	static uint8_t buf[IPC_HEADER_SIZE + IPC_MAX_FRAME];
	static size_t len;
	long long end = now_ms() + 5000;

	for (;;) {
		struct pollfd p = {.fd = fd, .events = POLLIN};
		struct ipc_msg m;
		size_t flen;
		ssize_t n;
		int type;

		if (ipc_frame_peek(buf, len, &flen) == 0) {
			if (ipc_decode(buf, flen, &m) < 0)
				return -1;
			type = m.type;
			ipc_msg_clear(&m);
			memmove(buf, buf + flen, len - flen);
			len -= flen;
			return type;
		}
		if (now_ms() >= end || poll(&p, 1, 100) < 0)
			return -1;
		if (!(p.revents & (POLLIN | POLLHUP)))
			continue;
		n = recv(fd, buf + len, sizeof(buf) - len, 0);
		if (n <= 0)
			return -1;
		len += (size_t)n;
	}
}

static int burst(const char *path, const char *name, long count,
                 bool hello_first)
{
	struct ipc_buf b;
	int fd = connect_to(path);

	ipc_buf_init(&b, (size_t)1 << 30);
	add_hello(&b);
	if (hello_first) {
		write_all(fd, &b);
		b.len = 0;
		if (read_frame(fd) != IPC_HELLO_OK) {
			printf("{\"error\":\"no HELLO_OK\"}\n");
			return 1;
		}
	}
	for (long k = 0; k < count; k++) {
		char data[32];
		struct ipc_msg m = {.type = IPC_EMIT,
		                    .has_id = true,
		                    .id = (uint32_t)k + 1,
		                    .name = name,
		                    .data = data};

		m.data_len =
		        (size_t)snprintf(data, sizeof(data), "{\"i\":%ld}", k);
		add(&b, &m);
	}
	write_all(fd, &b);
	/* Gone before reading a single reply. */
	close(fd);
	ipc_buf_free(&b);
	printf("{\"written\":%ld}\n", count);
	return 0;
}

static int late_hello(const char *path, long delay_ms)
{
	struct ipc_buf b;
	struct ipc_msg st = {.type = IPC_STATUS, .has_id = true, .id = 1};
	struct timespec ts = {delay_ms / 1000, (delay_ms % 1000) * 1000000};
	int fd = connect_to(path), hello_ok, status;

	nanosleep(&ts, NULL);
	ipc_buf_init(&b, 4096);
	add_hello(&b);
	add(&b, &st);
	write_all(fd, &b);
	ipc_buf_free(&b);
	hello_ok = read_frame(fd) == IPC_HELLO_OK;
	status = hello_ok && read_frame(fd) == IPC_STATUS_REPLY;
	printf("{\"helloOk\":%s,\"status\":%s}\n", hello_ok ? "true" : "false",
	       status ? "true" : "false");
	close(fd);
	return hello_ok && status ? 0 : 1;
}

static int silent(const char *path)
{
	long long start = now_ms();
	int fd = connect_to(path);
	struct pollfd p = {.fd = fd, .events = POLLIN};
	char c;

	/* 30 s at most: longer means dsd never closes a silent client. */
	while (now_ms() - start < 30000) {
		if (poll(&p, 1, 100) > 0 && recv(fd, &c, 1, 0) <= 0)
			break;
	}
	printf("{\"closedAfterMs\":%lld}\n", now_ms() - start);
	close(fd);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc == 5 && strcmp(argv[2], "burst") == 0)
		return burst(argv[1], argv[3], atol(argv[4]), false);
	if (argc == 5 && strcmp(argv[2], "burst-after-hello") == 0)
		return burst(argv[1], argv[3], atol(argv[4]), true);
	if (argc == 4 && strcmp(argv[2], "late-hello") == 0)
		return late_hello(argv[1], atol(argv[3]));
	if (argc == 3 && strcmp(argv[2], "silent") == 0)
		return silent(argv[1]);
	fprintf(stderr, "usage: see the comment at the top of ipc-raw.c\n");
	return 2;
}

/*
 * A trivial WebSocket sink that plays just enough of a deepstream platform
 * for dsd to reach OPEN, so dsd's own ingest ceiling can be measured with
 * no server in the way (tests/bench/README.md, docs/performance.md).
 *
 *   ws-sink [-p PORT] [-n EVENTS]
 *
 * Listens on 127.0.0.1:PORT (0, the default: any free port) and prints
 * {"port":N} as its first line.  Accepts any number of connections, one
 * after the other or at once.  Per connection: answers the HTTP upgrade
 * (RFC 6455), then reads client frames and
 *   - CONNECTION CHALLENGE -> CONNECTION ACCEPT
 *   - AUTH REQUEST         -> AUTH AUTH_SUCCESSFUL
 *   - CONNECTION PING      -> CONNECTION PONG (dsd's store waits for the
 *                             PONG of a PING written after its emits)
 *   - a close frame        -> a close frame, then the socket is closed
 * and discards everything else, counting frames, EVENT messages and bytes.
 *
 * With -n, after every EVENTS EVENT messages it prints one JSON line
 * {"events","frames","bytes","block_us"}: the totals so far and the time
 * from the first EVENT of that block to its last (so EVENTS / block_us is
 * the rate dsd delivered at).  On SIGTERM or SIGINT it prints the totals
 * the same way (block_us: of the unfinished block) and exits 0.  It judges
 * nothing.
 *
 * Client frames must be masked (RFC 6455 5.3); the sink unmasks only the
 * few bytes it needs to recognise a message.  Deepstream messages are
 * length-prefixed protobuf: varint length, field 2 (topic, varint), field
 * 3 (the inner message, whose field 1 is the action).
 */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/sha.h>

#define MAX_CONNS 16
#define BUF_SIZE  (4u << 20) /* frames up to half of it */

/* Deepstream topics and actions the sink answers. */
#define TOPIC_CONNECTION 2
#define TOPIC_AUTH       3
#define TOPIC_EVENT      4
#define CONN_PING        2
#define CONN_CHALLENGE   5
#define AUTH_REQUEST     2

/* Whole server frames: 0x82 (FIN, binary), length, payload. */
static const uint8_t frame_accept[] = {0x82, 7,    0x06, 0x10, 0x02,
                                       0x1a, 0x02, 0x08, 0x04};
static const uint8_t frame_auth_ok[] = {0x82, 7,    0x06, 0x10, 0x03,
                                        0x1a, 0x02, 0x08, 0x03};
static const uint8_t frame_pong[] = {0x82, 7,    0x06, 0x10, 0x02,
                                     0x1a, 0x02, 0x08, 0x03};
static const uint8_t frame_close[] = {0x88, 2, 0x03, 0xe8}; /* 1000 */

struct conn {
	int fd;
	bool upgraded;
	uint8_t *buf;
	size_t len;
};

struct totals {
	uint64_t frames, events, bytes;
	int64_t block_first_us, last_event_us; /* of the current block */
	uint64_t block_events;
};

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
	(void)sig;
	stop = 1;
}

static int64_t now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void print_totals(const struct totals *t)
{
	printf("{\"events\":%llu,\"frames\":%llu,\"bytes\":%llu,"
	       "\"block_us\":%lld}\n",
	       (unsigned long long)t->events, (unsigned long long)t->frames,
	       (unsigned long long)t->bytes,
	       (long long)(t->block_events
	                           ? t->last_event_us - t->block_first_us
	                           : 0));
	fflush(stdout);
}

static int write_all(int fd, const void *p, size_t len)
{
	const uint8_t *s = p;

	while (len > 0) {
		ssize_t n = write(fd, s, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			if (errno == EAGAIN) {
				struct pollfd pfd = {.fd = fd,
				                     .events = POLLOUT};

				poll(&pfd, 1, 1000);
				continue;
			}
			return -1;
		}
		s += n;
		len -= (size_t)n;
	}
	return 0;
}

/* Finds a header's value in the request (case-insensitive name). */
static bool header_value(const char *req, const char *name, char *out,
                         size_t cap)
{
	size_t nl = strlen(name);

	for (const char *p = strstr(req, "\r\n"); p != NULL;
	     p = strstr(p + 2, "\r\n")) {
		const char *h = p + 2, *e;
		size_t n;

		if (strncasecmp(h, name, nl) != 0 || h[nl] != ':')
			continue;
		h += nl + 1;
		while (*h == ' ')
			h++;
		e = strstr(h, "\r\n");
		if (e == NULL)
			return false;
		n = (size_t)(e - h);
		if (n >= cap)
			return false;
		memcpy(out, h, n);
		out[n] = '\0';
		return true;
	}
	return false;
}

/* Answers the upgrade once the request is complete: 1 done, 0 need more,
 * -1 bad. */
static int do_upgrade(struct conn *c)
{
	static const char guid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
	char key[128], cat[200], resp[256];
	uint8_t sha[SHA_DIGEST_LENGTH];
	unsigned char accept[64];
	uint8_t *end;
	size_t used;
	int n;

	end = memmem(c->buf, c->len, "\r\n\r\n", 4);
	if (end == NULL)
		return c->len > 8192 ? -1 : 0;
	used = (size_t)(end - c->buf) + 4;
	end[2] = '\0';
	if (!header_value((const char *)c->buf, "Sec-WebSocket-Key", key,
	                  sizeof(key)))
		return -1;
	snprintf(cat, sizeof(cat), "%s%s", key, guid);
	SHA1((const unsigned char *)cat, strlen(cat), sha);
	EVP_EncodeBlock(accept, sha, sizeof(sha));
	n = snprintf(resp, sizeof(resp),
	             "HTTP/1.1 101 Switching Protocols\r\n"
	             "Upgrade: websocket\r\nConnection: Upgrade\r\n"
	             "Sec-WebSocket-Accept: %s\r\n\r\n",
	             accept);
	if (write_all(c->fd, resp, (size_t)n) < 0)
		return -1;
	memmove(c->buf, c->buf + used, c->len - used);
	c->len -= used;
	c->upgraded = true;
	return 1;
}

static size_t varint(const uint8_t *p, size_t len, uint64_t *ret)
{
	uint64_t v = 0;

	for (size_t i = 0; i < len && i < 10; i++) {
		v |= (uint64_t)(p[i] & 0x7f) << (7 * i);
		if (!(p[i] & 0x80)) {
			*ret = v;
			return i + 1;
		}
	}
	return 0;
}

/* Topic and action of a deepstream message, from its first bytes. */
static void classify(const uint8_t *p, size_t len, uint64_t *topic,
                     uint64_t *action)
{
	uint64_t v;
	size_t n, i;

	*topic = *action = 0;
	n = varint(p, len, &v); /* the length prefix */
	if (n == 0 || n >= len || p[n] != 0x10)
		return;
	i = n + 1;
	n = varint(p + i, len - i, topic);
	if (n == 0)
		return;
	i += n;
	if (i >= len || p[i] != 0x1a)
		return;
	i++;
	n = varint(p + i, len - i, &v); /* the inner message's length */
	if (n == 0)
		return;
	i += n;
	if (i < len && p[i] == 0x08)
		(void)varint(p + i + 1, len - i - 1, action);
}

/* Handles the complete frames in c->buf; -1 closes the connection. */
static int do_frames(struct conn *c, struct totals *t, long report_at)
{
	size_t pos = 0;
	int r = 0;

	while (c->len - pos >= 2) {
		const uint8_t *f = c->buf + pos;
		size_t avail = c->len - pos, hdr = 2;
		uint64_t plen = f[1] & 0x7f, topic, action;
		uint8_t head[32];
		const uint8_t *mask;
		size_t k;

		if (!(f[1] & 0x80)) {
			r = -1; /* a client frame must be masked */
			break;
		}
		if (plen == 126) {
			if (avail < 4)
				break;
			plen = (uint64_t)f[2] << 8 | f[3];
			hdr = 4;
		} else if (plen == 127) {
			if (avail < 10)
				break;
			plen = 0;
			for (k = 0; k < 8; k++)
				plen = plen << 8 | f[2 + k];
			hdr = 10;
		}
		if (plen > BUF_SIZE / 2) {
			r = -1;
			break;
		}
		if (avail < hdr + 4 + plen)
			break;
		mask = f + hdr;
		pos += hdr + 4 + plen;
		t->frames++;
		t->bytes += plen;
		if ((f[0] & 0x0f) == 0x8) {
			(void)write_all(c->fd, frame_close,
			                sizeof(frame_close));
			r = -1;
			break;
		}
		if ((f[0] & 0x0f) != 0x2)
			continue;
		for (k = 0; k < plen && k < sizeof(head); k++)
			head[k] = f[hdr + 4 + k] ^ mask[k & 3];
		classify(head, k, &topic, &action);
		if (topic == TOPIC_EVENT) {
			int64_t now = now_us();

			if (t->block_events == 0)
				t->block_first_us = now;
			t->last_event_us = now;
			t->events++;
			t->block_events++;
			if (report_at > 0 &&
			    t->block_events == (uint64_t)report_at) {
				print_totals(t);
				t->block_events = 0;
			}
		} else if (topic == TOPIC_CONNECTION && action == CONN_PING) {
			(void)write_all(c->fd, frame_pong, sizeof(frame_pong));
		} else if (topic == TOPIC_CONNECTION &&
		           action == CONN_CHALLENGE) {
			(void)write_all(c->fd, frame_accept,
			                sizeof(frame_accept));
		} else if (topic == TOPIC_AUTH && action == AUTH_REQUEST) {
			(void)write_all(c->fd, frame_auth_ok,
			                sizeof(frame_auth_ok));
		}
	}
	memmove(c->buf, c->buf + pos, c->len - pos);
	c->len -= pos;
	return r;
}

static void conn_close(struct conn *c)
{
	close(c->fd);
	free(c->buf);
	*c = (struct conn){.fd = -1};
}

int main(int argc, char **argv)
{
	struct sockaddr_in sa = {.sin_family = AF_INET,
	                         .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	struct conn conns[MAX_CONNS];
	struct totals t = {0};
	struct sigaction act = {.sa_handler = on_signal};
	socklen_t sl = sizeof(sa);
	long report_at = 0;
	int port = 0, lfd, one = 1, opt;

	while ((opt = getopt(argc, argv, "p:n:")) != -1) {
		if (opt == 'p')
			port = atoi(optarg);
		else if (opt == 'n')
			report_at = atol(optarg);
		else {
			fprintf(stderr,
			        "usage: ws-sink [-p PORT] [-n EVENTS]\n");
			return 2;
		}
	}
	sigaction(SIGTERM, &act, NULL);
	sigaction(SIGINT, &act, NULL);
	signal(SIGPIPE, SIG_IGN);
	for (int i = 0; i < MAX_CONNS; i++)
		conns[i] = (struct conn){.fd = -1};

	lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	sa.sin_port = htons((uint16_t)port);
	if (lfd < 0 || bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
	    listen(lfd, 16) < 0 ||
	    getsockname(lfd, (struct sockaddr *)&sa, &sl) < 0) {
		perror("ws-sink: listen");
		return 1;
	}
	printf("{\"port\":%u}\n", ntohs(sa.sin_port));
	fflush(stdout);

	while (!stop) {
		struct pollfd pfd[MAX_CONNS + 1];
		int n = 0;

		pfd[n++] = (struct pollfd){.fd = lfd, .events = POLLIN};
		for (int i = 0; i < MAX_CONNS; i++)
			pfd[n++] = (struct pollfd){.fd = conns[i].fd,
			                           .events = POLLIN};
		if (poll(pfd, (nfds_t)n, 1000) < 0)
			continue; /* EINTR: stop is checked */
		if (pfd[0].revents & POLLIN) {
			int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
			int i;

			for (i = 0; fd >= 0 && i < MAX_CONNS; i++) {
				if (conns[i].fd < 0)
					break;
			}
			if (fd >= 0 && i < MAX_CONNS) {
				setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one,
				           sizeof(one));
				conns[i] = (struct conn){
				        .fd = fd, .buf = malloc(BUF_SIZE)};
				if (conns[i].buf == NULL)
					conn_close(&conns[i]);
			} else if (fd >= 0) {
				close(fd);
			}
		}
		for (int i = 0; i < MAX_CONNS; i++) {
			struct conn *c = &conns[i];
			ssize_t got;
			int r = 0;

			if (c->fd < 0 || !(pfd[i + 1].revents &
			                   (POLLIN | POLLHUP | POLLERR)))
				continue;
			got = read(c->fd, c->buf + c->len, BUF_SIZE - c->len);
			if (got < 0 && errno == EINTR)
				continue;
			if (got <= 0) {
				conn_close(c);
				continue;
			}
			c->len += (size_t)got;
			if (!c->upgraded)
				r = do_upgrade(c);
			if (r >= 0 && c->upgraded)
				r = do_frames(c, &t, report_at);
			if (r < 0 || c->len == BUF_SIZE)
				conn_close(c);
		}
	}
	print_totals(&t);
	for (int i = 0; i < MAX_CONNS; i++) {
		if (conns[i].fd >= 0)
			conn_close(&conns[i]);
	}
	close(lfd);
	return 0;
}

/*
 * Writes the valid half of corpus-ipc/: one frame of every message type in
 * the catalogue, made by ipc_encode() itself, plus a few streams of several
 * frames.  The malformed half is written by gen-seeds.py.
 *
 *	gen-ipc-seeds DIR
 *
 * Run it again only when the protocol changes; the files are committed.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ipcproto.h"

struct seed {
	const char *file;
	struct ipc_msg msg;
};

#define DATA(s) .data = s, .data_len = sizeof(s) - 1

static const struct seed seeds[] = {
        {"valid-hello",
         {.type = IPC_HELLO,
          .has_code = true,
          .code = 1,
          .text = "dsctl 0.1.0"}},
        {"valid-hello-ok",
         {.type = IPC_HELLO_OK,
          .has_code = true,
          .code = 1,
          .text = "dsd 0.1.0"}},
        {"valid-ok", {.type = IPC_OK, .has_id = true, .id = 7}},
        {"valid-error",
         {.type = IPC_ERROR,
          .has_id = true,
          .id = 8,
          .has_code = true,
          .code = -EAGAIN,
          .text = "not connected"}},
        {"valid-status", {.type = IPC_STATUS, .has_id = true, .id = 1}},
        {"valid-status-reply",
         {.type = IPC_STATUS_REPLY,
          .has_id = true,
          .id = 1,
          .text = "{\"state\":\"OPEN\",\"queued\":0,\"clients\":2}"}},
        {"valid-pause", {.type = IPC_PAUSE, .has_id = true, .id = 2}},
        {"valid-resume", {.type = IPC_RESUME, .has_id = true, .id = 3}},
        {"valid-reload", {.type = IPC_RELOAD, .has_id = true, .id = 4}},
        {"valid-watch", {.type = IPC_WATCH, .has_id = true, .id = 5}},
        {"valid-state",
         {.type = IPC_STATE,
          .state = "OPEN",
          .text = "authenticated",
          .at = 1700000000000}},
        {"valid-state-no-reason", {.type = IPC_STATE, .state = "RECONNECTING"}},
        {"valid-subscribe",
         {.type = IPC_SUBSCRIBE,
          .has_id = true,
          .id = 10,
          .name = "news/sport"}},
        {"valid-unsubscribe",
         {.type = IPC_UNSUBSCRIBE,
          .has_id = true,
          .id = 11,
          .name = "news/sport"}},
        {"valid-emit",
         {.type = IPC_EMIT,
          .has_id = true,
          .id = 12,
          .name = "news/sport",
          DATA("{\"score\":3}")}},
        {"valid-emit-no-data",
         {.type = IPC_EMIT, .has_id = true, .id = 4294967295u, .name = "ping"}},
        {"valid-emit-unicode",
         {.type = IPC_EMIT,
          .has_id = true,
          .id = 13,
          .name = "caf\xc3\xa9/\xf0\x9f\x8e\x89",
          DATA("\"\xe2\x82\xac\"")}},
        {"valid-emit-reply",
         {.type = IPC_EMIT_REPLY,
          .has_id = true,
          .id = 12,
          .has_code = true,
          .code = IPC_EMIT_QUEUED}},
        {"valid-event",
         {.type = IPC_EVENT, .name = "news/sport", DATA("{\"score\":3}")}},
        {"valid-sub-denied",
         {.type = IPC_SUB_DENIED, .name = "secret", .text = "MESSAGE_DENIED"}},
        /* Decodes, but the catalogue refuses it. */
        {"check-unknown-type", {.type = 999, .has_id = true, .id = 1}},
        {"check-subscribe-no-name",
         {.type = IPC_SUBSCRIBE, .has_id = true, .id = 1}},
        {"check-hello-no-code", {.type = IPC_HELLO}},
        {"check-code-min",
         {.type = IPC_ERROR, .has_code = true, .code = INT64_MIN, .at = -1}},
};

/* The message of a seed, by file name (the streams reuse them). */
static struct ipc_msg seed_msg(const char *file)
{
	for (size_t i = 0; i < sizeof(seeds) / sizeof(seeds[0]); i++) {
		if (strcmp(seeds[i].file, file) == 0)
			return seeds[i].msg;
	}
	abort();
}

static int write_file(const char *dir, const char *name, const uint8_t *p,
                      size_t n)
{
	char path[4096];
	int fd, r = 0;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return -errno;
	if (write(fd, p, n) != (ssize_t)n)
		r = -EIO;
	close(fd);
	return r;
}

static int put(const char *dir, const char *name, const struct ipc_msg *m,
               size_t count)
{
	struct ipc_buf b;
	size_t i;
	int r = 0;

	ipc_buf_init(&b, IPC_HEADER_SIZE + IPC_MAX_FRAME);
	for (i = 0; i < count && r == 0; i++)
		r = ipc_encode(&b, &m[i]);
	if (r == 0)
		r = write_file(dir, name, b.data, b.len);
	if (r < 0)
		fprintf(stderr, "%s: %s\n", name, strerror(-r));
	ipc_buf_free(&b);
	return r;
}

int main(int argc, char **argv)
{
	const size_t n = sizeof(seeds) / sizeof(seeds[0]);
	struct ipc_msg stream[3];
	size_t i;

	if (argc != 2) {
		fprintf(stderr, "usage: %s DIR\n", argv[0]);
		return 2;
	}
	for (i = 0; i < n; i++) {
		if (put(argv[1], seeds[i].file, &seeds[i].msg, 1) < 0)
			return 1;
	}
	/* What a client sends first, back to back in one read. */
	stream[0] = seed_msg("valid-hello");
	stream[1] = seed_msg("valid-subscribe");
	stream[2] = seed_msg("valid-emit");
	if (put(argv[1], "stream-hello-subscribe-emit", stream, 3) < 0)
		return 1;
	/* What dsd answers. */
	stream[0] = seed_msg("valid-hello-ok");
	stream[1] = seed_msg("valid-ok");
	stream[2] = seed_msg("valid-event");
	if (put(argv[1], "stream-hello-ok-ok-event", stream, 3) < 0)
		return 1;
	return 0;
}

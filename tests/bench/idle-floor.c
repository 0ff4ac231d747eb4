/*
 * idle-floor: the least memory a process shaped like dsd can hold while idle.
 *
 * It links the same shared libraries as dsd (meson.build gives it the same
 * dependencies; one symbol of each is referenced so that --as-needed keeps
 * every DT_NEEDED entry) and does only what dsd's structure cannot avoid:
 * a libevent base, a libwebsockets context without TLS made the way
 * transport.c makes it (no listener, the same fd table size, the same log
 * mask), and the lws service thread.  No connection, no configuration, no
 * local socket, no state.  It prints "ready" and then sleeps until it is
 * killed; side-by-side.js reads its RSS next to dsd's.
 *
 * Built a second time with -DFLOOR_NO_SYSTEMD (idle-floor-nosystemd):
 * the same without libsystemd, to show what that library and the ones it
 * pulls in (libgcrypt, liblzma, libzstd, liblz4, libcap, ...) cost a
 * process that only needs sd_notify(), sd_listen_fds() and journal lines.
 */
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>
#include <jansson.h>
#include <libwebsockets.h>
#include <openssl/evp.h>
#include <protobuf-c/protobuf-c.h>
#include <sqlite3.h>
#ifndef FLOOR_NO_SYSTEMD
#include <systemd/sd-daemon.h>
#endif

/* dsd's default: max_clients + reserved_admin_clients + 64. */
#define FD_LIMIT (4096 + 4 + 64)

/* Referenced, never called: keeps each library in the link. */
void *volatile keep_linked[] = {
        (void *)json_loads,      (void *)protobuf_c_message_pack,
        (void *)sqlite3_open_v2, (void *)EVP_MD_CTX_new,
#ifndef FLOOR_NO_SYSTEMD
        (void *)sd_notify,
#endif
};

static int callback(struct lws *wsi, enum lws_callback_reasons reason,
                    void *user, void *in, size_t len)
{
	(void)wsi;
	(void)reason;
	(void)user;
	(void)in;
	(void)len;
	return 0;
}

static const struct lws_protocols protocols[] = {
        {.name = "floor", .callback = callback},
        {0},
};

static void *service(void *arg)
{
	struct lws_context *ctx = arg;

	for (;;)
		if (lws_service(ctx, 0) < 0)
			break;
	return NULL;
}

int main(void)
{
	struct lws_context_creation_info info;
	struct lws_context *ctx;
	struct event_base *base;
	sigset_t all, old;
	pthread_t thread;

	mallopt(M_MMAP_THRESHOLD, 256 * 1024); /* as dsd's main() */
	base = event_base_new();
	if (!base)
		return 1;
	lws_set_log_level(LLL_ERR | LLL_WARN, NULL);
	memset(&info, 0, sizeof(info));
	info.port = CONTEXT_PORT_NO_LISTEN;
	info.protocols = protocols;
	info.gid = -1;
	info.uid = -1;
	info.fd_limit_per_thread = FD_LIMIT;
	ctx = lws_create_context(&info);
	if (!ctx)
		return 1;
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	if (pthread_create(&thread, NULL, service, ctx))
		return 1;
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	puts("ready");
	fflush(stdout);
	for (;;)
		pause();
}

/*
 * idle-floor: the least memory a process shaped like dsd can hold while idle.
 *
 * It links the same shared libraries as dsd (meson.build gives it the same
 * dependencies; one symbol of each is referenced so that --as-needed keeps
 * every DT_NEEDED entry) and does only what dsd does at start for a ws://
 * platform without a proxy: a libevent base.  (dsd makes a libwebsockets
 * context and its thread only for wss:// or a proxy.)  No connection, no
 * configuration, no local socket, no state.  It prints "ready" and then sleeps
 * until it is killed; side-by-side.js reads its RSS next to dsd's.
 *
 * Built a second time with -DFLOOR_NO_SYSTEMD (idle-floor-nosystemd):
 * the same without libsystemd, to show what that library and the ones it
 * pulls in (libgcrypt, liblzma, libzstd, liblz4, libcap, ...) cost a
 * process that only needs sd_notify(), sd_listen_fds() and journal lines.
 */
#include <malloc.h>
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

/* Referenced, never called: keeps each library in the link. */
void *volatile keep_linked[] = {
        (void *)json_loads,         (void *)protobuf_c_message_pack,
        (void *)sqlite3_open_v2,    (void *)EVP_MD_CTX_new,
        (void *)lws_create_context,
#ifndef FLOOR_NO_SYSTEMD
        (void *)sd_notify,
#endif
};

int main(void)
{
	struct event_base *base;

	mallopt(M_MMAP_THRESHOLD, 256 * 1024); /* as dsd's main() */
	base = event_base_new();
	if (!base)
		return 1;
	puts("ready");
	fflush(stdout);
	for (;;)
		pause();
}

/*
 * The libwebsockets side of the transport (internal to transport.c and
 * ws_thread.c, the only two files that include <libwebsockets.h>).
 *
 * ws_thread.c runs on the lws thread: dsd's protocol callback and one
 * struct ws_link per connection attempt.  transport.c, on the main thread,
 * owns the lws context and the thread, and tells the lws thread what it
 * wants through struct ws_thread: which connection should exist
 * (target_epoch, pending) or that everything should stop, then calls
 * lws_cancel_service(), which reaches the callback as
 * LWS_CALLBACK_EVENT_WAIT_CANCELLED.  Frames and events cross in the
 * bridge (bridge.h) as struct frame and struct tevent.
 */
#ifndef DSD_WS_THREAD_H
#define DSD_WS_THREAD_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <libwebsockets.h>

#include "bridge.h"

#define WS_REASON_MAX 256

struct ws_link;

enum tevent_type {
	TEV_OPENED,
	TEV_MESSAGE,
	TEV_MESSAGES,
	TEV_CLOSED,
};

/* The length before each message of a TEV_MESSAGES event. */
#define TEV_LEN_SIZE sizeof(uint32_t)

/*
 * lws -> main.  item.epoch: the link's; item.len: the message's length, or
 * for TEV_MESSAGES the sum of its messages' lengths.
 *
 * TEV_MESSAGES: the messages of one link that arrived whole (one frame,
 * one callback) during one lws_service() pass, in data one after the
 * other, each a native uint32_t length (memcpy it: not aligned) and its
 * bytes; used bytes of data are taken.  One event, one allocation for the
 * lot and one hand-over instead of one per message.  TEV_MESSAGE: one
 * message that came in pieces, data its bytes.
 */
struct tevent {
	struct bridge_item item;
	enum tevent_type type;
	uint32_t gen;
	uint8_t *data;    /* TEV_MESSAGE, TEV_MESSAGES: owned */
	size_t used, cap; /* TEV_MESSAGES: bytes of data taken, allocated */
	char reason[WS_REASON_MAX];
};

/* main -> lws.  A frame whose link goes away unwritten is dropped: the
 * store above resends what the platform has not confirmed. */
struct frame {
	struct bridge_item item;
	size_t cap;    /* payload bytes the block holds */
	uint8_t buf[]; /* LWS_PRE bytes of headroom, then the payload */
};

/*
 * Frames go back and forth instead of malloc() in one thread and free()
 * in the other (the allocator's slow path on both sides, every frame):
 * a small frame's block holds FRAME_SPARE_SIZE bytes of payload whatever
 * its length, and once written the lws thread hands the blocks back, a
 * batch at a time, to a pool the main thread takes whole when it runs
 * out.  At most FRAME_SPARE_MAX blocks wait there (about 40 KiB); the
 * rest are freed.
 */
#define FRAME_SPARE_SIZE 256
#define FRAME_SPARE_MAX  128

/* The lws context's user data. */
struct ws_thread {
	/* Set before the thread starts. */
	struct lws_context *ctx;
	struct bridge *bridge;
	size_t max_message, max_recv_queue;
	char proxy[300]; /* "http://host:port" for reasons; "" for none */

	/* What the main thread wants, for reconcile(). */
	pthread_mutex_t lock;
	/* Under lock. */
	bool stop;
	uint64_t target_epoch;     /* the link that should exist, 0: none */
	struct ws_link *pending;   /* connect not yet picked up by lws */
	struct bridge_item *spare; /* written small frames, by next */
	size_t n_spare;

	/* lws thread only. */
	struct ws_link *links;
	struct tevent *batch; /* TEV_MESSAGES being filled, not yet posted */
	bool stopped;
};

/* dsd's one protocol, for lws_create_context(). */
extern const struct lws_protocols ws_protocols[];
/* The thread's function: lws_service() until stopped; arg is the
 * struct ws_thread. */
void *ws_thread_main(void *arg);
/* For lws_set_log_level(): runs on the lws thread. */
void ws_log_line(int level, const char *line);

/* The bridge's free functions for the two item types. */
void ws_tevent_free(struct bridge_item *it);
void ws_frame_free(struct bridge_item *it);

/* Main thread: a link for url (ws:// or wss://) with its opened and closed
 * events preallocated.  Returns 0, -EINVAL for a bad url, -ENOMEM. */
int ws_link_new(const char *url, uint32_t gen, uint64_t epoch,
                struct ws_link **ret);
/* Main thread: a link the lws thread never picked up; posts its closed
 * event with reason and frees it.  NULL is a no-op. */
void ws_link_cancel(struct ws_thread *w, struct ws_link *wl,
                    const char *reason);
void ws_link_free(struct ws_link *wl);

#endif

/*
 * Private parts of libdsipc shared by its source files:
 *  dsipc.c          the handle, the connection, reading/writing, dispatch,
 *                   slots and state;
 *  dsipc-slot.c     registrations: subscriptions and state watches;
 *  dsipc-request.c  requests with replies: emit, control, the blocking
 *                   helpers, and the local validation of names and JSON;
 *  dsipc-link.c     the link to dsd: non-blocking connect, HELLO,
 *                   reconnection on a schedule, the emit buffer;
 *  backoff.c        the reconnection schedule and the buffer's bound
 *                   (pure: no clock, no I/O).
 */
#ifndef DSIPC_INTERNAL_H
#define DSIPC_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dsipc.h"
#include "ipc_reader.h"
#include "backoff.h"
#include "ipcproto.h"

_Static_assert(DSIPC_MAX_NAME == IPC_MAX_NAME, "name limits differ");
_Static_assert(DSIPC_MAX_DATA == IPC_MAX_DATA, "data limits differ");

/* How long dsipc_connect() waits for HELLO_OK. */
#define DSIPC_HELLO_TIMEOUT_MS 5000
/* Requests awaiting a reply; bounded like everything else. */
#define DSIPC_MAX_PENDING 65536

enum slot_kind {
	SLOT_STATE,
	SLOT_EVENT,
	SLOT_LINK,
};

struct dsipc_slot {
	dsipc *c; /* NULL once the handle is gone (the slot is detached) */
	struct dsipc_slot *next;
	enum slot_kind kind;
	bool floating; /* owned by the handle: the caller has no pointer */
	bool removed;  /* freed while callbacks ran; swept later */
	char *name;    /* SLOT_EVENT */
	dsipc_state_cb state_cb;
	dsipc_event_cb event_cb;
	dsipc_link_cb link_cb;
	void *userdata;
};

/* A blocking caller's view of one request; lives on its stack. */
struct waiter {
	bool done;
	int result;        /* 0 or negative errno */
	int64_t code;      /* EMIT_REPLY's result */
	char *text;        /* malloc'd: STATUS_REPLY's json, or ERROR's msg */
	bool want_confirm; /* an EMIT asking for EMIT_CONFIRMED */
};

struct req {
	struct req *next;
	uint32_t id;
	int type;
	char *name; /* for the error callback (SUBSCRIBE, plain EMIT) */
	dsipc_emit_cb emit_cb;
	void *userdata;
	struct waiter *w; /* a blocking caller, or NULL */
	bool confirm;     /* an EMIT that asked for EMIT_CONFIRMED */
	bool abandoned;   /* its blocking caller gave up: drop the reply */
	/* An emit kept for resending (reconnection on, or made while
	 * connecting): its whole frame, id included. */
	uint8_t *frame;
	size_t frame_len;
	bool held; /* refused by a stopping dsd: resent after reconnecting */
};

struct dsipc {
	int fd;
	bool connected; /* HELLO answered */

	/* the link (dsipc-link.c) */
	enum dsipc_link link;
	char *path;       /* of the last connect */
	bool blocking;    /* inside dsipc_connect(): no retries */
	int64_t deadline; /* HELLO's (CONNECTING) or the next try's */
	int64_t lost_at;  /* when the link went down (giving up) */
	unsigned attempt; /* tries since it went down */
	int link_error;   /* why it last went down or failed */
	int report_error; /* returned once by dsipc_process() when DOWN */
	uint32_t seed;    /* jitter */
	bool reconnect;
	struct backoff backoff;
	struct req *buf, *buf_tail; /* emits not yet given to dsd */
	struct buffer_bound bound;
	struct buffer_use used;

	struct ipc_buf out;
	struct ipc_reader in;

	/* dsipc_emit_sync() waiting for the platform's confirmation */
	uint32_t confirm_id;
	bool confirm_waiting, confirmed;
	uint32_t next_id;
	struct req *reqs, *reqs_tail;
	size_t n_reqs;

	struct dsipc_slot *slots, *slots_tail;
	bool slots_dirty;
	bool watch_sent;

	bool have_state;
	char *state, *reason;
	int64_t state_at;

	dsipc_error_cb error_cb;
	void *error_userdata;
	dsipc_events_cb events_cb;
	void *events_userdata;

	char *last_error;

	/* Callbacks running right now; a free is deferred while > 0. */
	unsigned depth;
	bool free_pending;
};

/* dsipc.c */
int dsipc_queue_msg(dsipc *c, const struct ipc_msg *m);
int dsipc_queue_frame(dsipc *c, const uint8_t *frame, size_t len);
void dsipc_reset_connection(dsipc *c);
int dsipc_flush_output(dsipc *c);
void dsipc_notify_events(dsipc *c);
int64_t dsipc_now_ms(void);
int dsipc_process_io(dsipc *c);
int dsipc_leave(dsipc *c, int r);
void dsipc_set_last_error(dsipc *c, const char *fmt, ...)
        __attribute__((format(printf, 2, 3)));
int dsipc_errno_of(const struct ipc_msg *m);
void dsipc_call_error(dsipc *c, const char *name, int code, const char *msg);

/* dsipc-slot.c */
int dsipc_resend_registrations(dsipc *c);
void dsipc_call_link(dsipc *c, int link, int error);

/* dsipc-link.c */
int dsipc_link_start(dsipc *c, const char *path, bool blocking);
void dsipc_link_hello(dsipc *c, const struct ipc_msg *m);
/* The link is lost: returns 0 when the library will try again, else
 * error. */
int dsipc_link_lost(dsipc *c, int error);
/* Timers: a HELLO overdue, a try due.  0, or the error when giving up. */
int dsipc_link_tick(dsipc *c);
/* ms until dsipc_link_tick() has work, -1 none. */
int dsipc_link_timeout(dsipc *c);
/* Emits from the buffer into the output, as room allows. */
int dsipc_link_pump(dsipc *c);
bool dsipc_link_buffering(dsipc *c);
void dsipc_link_free(dsipc *c);

/* dsipc-request.c */
int dsipc_send_request(dsipc *c, int type, const char *name, const char *data,
                       dsipc_emit_cb cb, void *userdata, struct waiter *w,
                       bool keep_name);
void dsipc_handle_reply(dsipc *c, const struct ipc_msg *m);
void dsipc_fail_requests(dsipc *c, int error);
void dsipc_free_requests(dsipc *c);
void dsipc_req_free(struct req *q);
/* Appends q to the requests awaiting dsd's answer. */
void dsipc_req_pending(dsipc *c, struct req *q);
/* Ends one request that will get no reply (error < 0). */
void dsipc_req_fail(dsipc *c, struct req *q, int error);
int dsipc_send_emit(dsipc *c, const char *name, const char *data,
                    dsipc_emit_cb cb, void *userdata, struct waiter *w,
                    bool keep_name, bool *ret_buffered);
/* Processes until *done, the timeout (-1: none) or an error; signals give
 * -EINTR when intr, else the wait goes on. */
int dsipc_wait_until(dsipc *c, const bool *done, int timeout_ms, bool intr);
int dsipc_check_name(dsipc *c, const char *name);

#endif

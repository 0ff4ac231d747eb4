/*
 * Private parts of libdsipc shared by its source files:
 *  dsipc.c          the handle, the connection, reading/writing, dispatch,
 *                   slots and state;
 *  dsipc-slot.c     registrations: subscriptions and state watches;
 *  dsipc-request.c  requests with replies: emit, control, the blocking
 *                   helpers, and the local validation of names and JSON.
 */
#ifndef DSIPC_INTERNAL_H
#define DSIPC_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dsipc.h"
#include "ipc_reader.h"
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
};

enum hello_state {
	HELLO_NONE,
	HELLO_WAITING,
};

struct dsipc {
	int fd;
	bool connected; /* HELLO answered */
	enum hello_state hello;
	bool hello_done;
	int hello_error;
	int64_t hello_version;

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
int dsipc_process_io(dsipc *c);
int dsipc_leave(dsipc *c, int r);
void dsipc_set_last_error(dsipc *c, const char *fmt, ...)
        __attribute__((format(printf, 2, 3)));
int dsipc_errno_of(const struct ipc_msg *m);
void dsipc_call_error(dsipc *c, const char *name, int code, const char *msg);

/* dsipc-slot.c */
int dsipc_resend_registrations(dsipc *c);

/* dsipc-request.c */
int dsipc_send_request(dsipc *c, int type, const char *name, const char *data,
                       dsipc_emit_cb cb, void *userdata, struct waiter *w,
                       bool keep_name);
void dsipc_handle_reply(dsipc *c, const struct ipc_msg *m);
void dsipc_fail_requests(dsipc *c, int error);
void dsipc_free_requests(dsipc *c);
/* Processes until *done, the timeout (-1: none) or an error; signals give
 * -EINTR when intr, else the wait goes on. */
int dsipc_wait_until(dsipc *c, const bool *done, int timeout_ms, bool intr);
int dsipc_check_name(dsipc *c, const char *name);

#endif

/*
 * The daemon's side of the local IPC protocol: a libevent Unix stream
 * socket server.
 *
 * It owns the sockets, the framing, the HELLO handshake and the per-client
 * buffers; it knows nothing about deepstream.  Each decoded request from a
 * client that has completed HELLO goes to the request callback, whose job is
 * to answer it exactly once with ipc_client_send() (the same id), now or
 * later.  The server never logs: every reason a client goes away is handed
 * to the disconnected callback, and refused connections to rejected, so the
 * daemon logs each of them once.  See libdsipc/PROTOCOL.md.
 *
 * Everything here runs on the thread of the event_base.
 */
#ifndef DSD_IPC_SERVER_H
#define DSD_IPC_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "ipc_listen.h"

struct event_base;
struct ipc_msg;
struct ipc_server;
struct ipc_client;

/* Defaults used for a zero field (or a NULL limits pointer). */
#define IPC_SERVER_DEFAULT_MAX_CLIENTS      64
#define IPC_SERVER_DEFAULT_OUT_LIMIT        (4 * 1024 * 1024)
#define IPC_SERVER_DEFAULT_HELLO_TIMEOUT_MS 5000
#define IPC_SERVER_DEFAULT_TOTAL_LIMIT      (64 * 1024 * 1024)

struct ipc_server_limits {
	uint32_t max_clients;      /* connections past this get ERROR -EUSERS */
	size_t client_out_limit;   /* bytes queued for one client; a frame
	                              bigger than this can never be sent, so
	                              keep it >= IPC_HEADER_SIZE + IPC_MAX_FRAME
	                            */
	uint32_t hello_timeout_ms; /* a connection that has not said HELLO by
	                              then is closed; 0: the default (5 s) */
	uint64_t total_buffer_limit; /* buffer memory (input and output, by
	                                capacity) held for all clients
	                                together; past it the slowest reader
	                                (output waiting longest) is dropped */
};

struct ipc_server_stats {
	size_t clients;          /* connected, not being closed */
	uint64_t buffered;       /* buffer bytes held for them now */
	uint64_t buffered_limit; /* total_buffer_limit in force */
	uint64_t over_budget;    /* clients dropped to stay under it */
};

/* Why a client went away: whether the daemon logs and counts it depends on
 * the kind, never on the text. */
enum ipc_close_reason {
	IPC_CLOSE_PEER_LEFT,     /* it closed its end */
	IPC_CLOSE_IO_ERROR,      /* reading or writing its socket failed */
	IPC_CLOSE_SHUTDOWN,      /* ipc_server_free() */
	IPC_CLOSE_BY_DAEMON,     /* ipc_client_close() */
	IPC_CLOSE_HELLO_TIMEOUT, /* no HELLO in time */
	IPC_CLOSE_PROTOCOL,      /* malformed, oversized, wrong HELLO */
	IPC_CLOSE_SLOW_READER,   /* its output passed client_out_limit */
	IPC_CLOSE_OVER_BUDGET,   /* the slowest when all buffers passed
	                            total_buffer_limit */
	IPC_CLOSE_NO_MEMORY,
};

/* true for the reasons that are the client's own doing or ours, false for
 * a client the server cut off. */
static inline bool ipc_close_is_departure(enum ipc_close_reason why)
{
	return why == IPC_CLOSE_PEER_LEFT || why == IPC_CLOSE_IO_ERROR ||
	       why == IPC_CLOSE_SHUTDOWN || why == IPC_CLOSE_BY_DAEMON;
}

struct ipc_server_callbacks {
	/*
	 * Optional: a new connection, already a client (counted by
	 * ipc_server_client_count()), before any other callback for it.
	 * peer (groups included) is borrowed until return.  Return 0 to
	 * serve it, or a negative errno and a sentence in why to refuse it:
	 * it is then sent ERROR (that code, why) and closed, rejected is
	 * called with why, and disconnected is never called for it.
	 */
	int (*admit)(struct ipc_client *c, const struct ipc_peer *peer,
	             char *why, size_t whylen, void *userdata);
	/*
	 * A request from a client that has said HELLO, already checked
	 * against the catalogue (known client->server type, id and required
	 * fields present).  Answer it with ipc_client_send() carrying the
	 * same id, possibly later.  msg is borrowed until return.  Closing
	 * the client here is fine (ipc_client_close is deferred).
	 */
	void (*request)(struct ipc_client *c, const struct ipc_msg *msg,
	                void *userdata);
	/* Optional: the client completed HELLO. */
	void (*connected)(struct ipc_client *c, void *userdata);
	/*
	 * The client is going away: why, and text that says it for a log
	 * ("closed by peer", "slow reader: output buffer over N bytes", ...).
	 * Called once per accepted client, also from ipc_server_free(), right
	 * before the client is freed: drop every pointer to it.
	 * ipc_client_send() to it returns -ENOTCONN from now on.
	 */
	void (*disconnected)(struct ipc_client *c, enum ipc_close_reason why,
	                     const char *text, void *userdata);
	/*
	 * Optional: a connection was refused (too many clients, or admit
	 * said no), or accepting failed (peer is NULL then).
	 */
	void (*rejected)(const struct ipc_peer *peer, const char *reason,
	                 void *userdata);
};

/*
 * Listens on path.  With passed_fd >= 0 (socket activation) that listening
 * AF_UNIX stream socket is used as is and path only names it; the server
 * takes ownership of the fd on success.  Otherwise the server binds path
 * itself with mode 0660, replacing a stale socket file nobody listens on.
 *
 * Returns 0, or:
 *   -EADDRINUSE   another process (another dsd) listens on path
 *   -EEXIST       path exists and is not a socket; it is left alone
 *   -ENOENT       the directory of path is missing (systemd's
 *                 RuntimeDirectory= is expected to create it)
 *   -ENAMETOOLONG path does not fit in sockaddr_un
 *   -EINVAL       passed_fd is not a listening AF_UNIX stream socket
 *   or another negative errno from socket/bind/listen.
 */
int ipc_server_new(struct event_base *base, const char *path, int passed_fd,
                   const struct ipc_server_limits *lim,
                   const struct ipc_server_callbacks *cb, void *userdata,
                   struct ipc_server **ret);
/*
 * Closes every client (disconnected is called for each, reason "server
 * shutting down"), stops listening and unlinks the path if this server bound
 * it and it is still the same socket.  NULL is a no-op.  Not from inside one
 * of this server's callbacks.
 */
void ipc_server_free(struct ipc_server *s);

/* The "server" text of HELLO_OK; default "dsd " PACKAGE_VERSION. */
int ipc_server_set_name(struct ipc_server *s, const char *name);
/* Clients that are connected and not being closed. */
size_t ipc_server_client_count(const struct ipc_server *s);
void ipc_server_get_stats(const struct ipc_server *s,
                          struct ipc_server_stats *ret);

/*
 * Queues one message for the client (encoded now); it is written at the
 * end of the current loop iteration together with everything else queued
 * for the client meanwhile (at once when the output passes 64 KiB), as much
 * as the socket takes without blocking; the rest goes out when it is
 * writable.
 * Returns 0, -ENOTCONN when the client is closing, -ENOBUFS when the
 * client's output would pass client_out_limit, or when all clients' buffers
 * together would pass total_buffer_limit and this client is the slowest
 * reader (the client is then closed as a slow reader), or -EINVAL/-EMSGSIZE for
 * a message that cannot be encoded (the client is kept).
 *
 * A client whose socket can no longer be written (it closed its end) stays
 * until its end of file is read, so every request it wrote before closing
 * is still handled; what is sent to it meanwhile is dropped and 0 returned.
 */
int ipc_client_send(struct ipc_client *c, const struct ipc_msg *m);
/*
 * The same for a frame encoded already (header included, as ipc_encode()
 * writes it): copied into the client's output.  For fan-out, where one
 * event goes to many clients: encode once, send the bytes to each.
 */
int ipc_client_send_frame(struct ipc_client *c, const uint8_t *frame,
                          size_t len);
/* Answers request id with OK, or with ERROR {code, text}; what
 * ipc_client_send() returns. */
int ipc_client_reply_ok(struct ipc_client *c, uint32_t id);
int ipc_client_reply_error(struct ipc_client *c, uint32_t id, int code,
                           const char *text);
/*
 * Closes the client: it stops reading at once, its queued output gets one
 * last non-blocking write, then it is freed from the event loop (never
 * inside the caller's stack).  Safe inside callbacks; a second call is a
 * no-op.  reason (copied) is handed to the disconnected callback.
 */
void ipc_client_close(struct ipc_client *c, const char *reason);
/* hold: read no more requests from c (the one being served is finished),
 * so that its socket fills and its writes wait in its own process; the
 * others go on.  !hold: serve it again, what it sent meanwhile first. */
void ipc_client_hold_input(struct ipc_client *c, bool hold);

void ipc_client_set_data(struct ipc_client *c, void *p);
void *ipc_client_get_data(const struct ipc_client *c);
/* A number unique within the server, for logs; starts at 1. */
unsigned ipc_client_id(const struct ipc_client *c);
/* The client's self-description from HELLO ("" before it). */
const char *ipc_client_name(const struct ipc_client *c);

#endif

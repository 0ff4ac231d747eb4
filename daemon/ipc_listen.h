/*
 * The IPC server's sockets as the kernel sees them: the listening socket bound
 * by dsd itself (mode 0660, a stale socket of a dead dsd replaced, a live one
 * left alone) or handed over by systemd's socket activation.
 */
#ifndef DSD_IPC_LISTEN_H
#define DSD_IPC_LISTEN_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

struct ipc_listener {
	int fd;
	bool bound; /* we created the path, so we remove it */
	dev_t dev;  /* ... only if it is still our socket */
	ino_t ino;
};

/* Binds and listens on path.  -EADDRINUSE (a live listener), -EEXIST (not
 * a socket: left alone), -ENOENT (no directory), -ENAMETOOLONG, -errno. */
int ipc_listen_bind(const char *path, struct ipc_listener *ret);
/* Takes fd, a listening AF_UNIX stream socket (-EINVAL if it is not),
 * non-blocking and close-on-exec from now on. */
int ipc_listen_adopt(int fd, struct ipc_listener *ret);
/* Closes the socket and removes path if we bound it and it is still ours
 * (never a socket a newer dsd has put in its place). */
void ipc_listen_close(struct ipc_listener *l, const char *path);

/* More supplementary groups than this are not read (NGROUPS_MAX is 65536;
 * a peer in more groups is judged by the first ones only). */
#define PEER_GROUPS_MAX 4096

/*
 * Who is on the other end, as the kernel saw it at connect() time
 * (SO_PEERCRED, and SO_PEERGROUPS for the supplementary groups, Linux
 * 4.13 and later).  Unknown ids are -1; groups_known is false when the
 * kernel could not tell the groups (ngroups is 0 then).
 */
struct ipc_peer {
	pid_t pid;
	uid_t uid;
	gid_t gid;
	const gid_t *groups;
	size_t ngroups;
	bool groups_known;
};
/* Who is at the other end of an accepted fd, from the kernel: pid, uid,
 * gid (SO_PEERCRED) and the supplementary groups (SO_PEERGROUPS, up to
 * PEER_GROUPS_MAX; *ret_groups is malloc'd for the caller, NULL when
 * unknown).  Fields it cannot learn are -1. */
void ipc_peer_read(int fd, struct ipc_peer *ret, gid_t **ret_groups);

#endif

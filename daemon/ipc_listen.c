#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "ipc_listen.h"

#define LISTEN_BACKLOG 128

/* EADDRINUSE on bind: is it a leftover of a dead dsd, or a live one? */
static int stale_check(const char *path, const struct sockaddr_un *sa)
{
	struct stat st;
	int fd, r;

	if (lstat(path, &st) < 0)
		return errno == ENOENT ? 0 : -errno;
	if (!S_ISSOCK(st.st_mode))
		return -EEXIST;
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -errno;
	r = connect(fd, (const struct sockaddr *)sa, sizeof(*sa));
	r = r < 0 ? -errno : 0;
	close(fd);
	if (r == -ENOENT)
		return 0; /* gone meanwhile: just bind again */
	/* Someone answers, or its backlog is full: a live listener. */
	if (r != -ECONNREFUSED)
		return -EADDRINUSE;
	if (unlink(path) < 0 && errno != ENOENT)
		return -errno;
	return 0;
}

int ipc_listen_bind(const char *path, struct ipc_listener *ret)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	struct stat st;
	int fd, r = 0;

	if (strlen(path) >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	memcpy(sa.sun_path, path, strlen(path) + 1);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	for (int attempt = 0; attempt < 2; attempt++) {
		/* The socket is born 0660: no window with a wider mode. */
		mode_t old = umask(0117);

		r = bind(fd, (struct sockaddr *)&sa, sizeof(sa));
		r = r < 0 ? -errno : 0;
		umask(old);
		if (r != -EADDRINUSE)
			break;
		r = stale_check(path, &sa);
		if (r < 0)
			break;
		r = -EADDRINUSE;
	}
	if (r == 0 && listen(fd, LISTEN_BACKLOG) < 0)
		r = -errno;
	if (r == 0 && stat(path, &st) < 0)
		r = -errno;
	if (r < 0) {
		close(fd);
		return r;
	}
	*ret = (struct ipc_listener){
	        .fd = fd, .bound = true, .dev = st.st_dev, .ino = st.st_ino};
	return 0;
}

int ipc_listen_adopt(int fd, struct ipc_listener *ret)
{
	int type = 0, listening = 0, domain = 0, fl;
	socklen_t sl = sizeof(int);

	if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &sl) < 0 ||
	    getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &sl) < 0 ||
	    getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &domain, &sl) < 0)
		return errno == ENOTSOCK ? -EINVAL : -errno;
	if (type != SOCK_STREAM || !listening || domain != AF_UNIX)
		return -EINVAL;
	fl = fcntl(fd, F_GETFL);
	if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
		return -errno;
	fl = fcntl(fd, F_GETFD);
	if (fl < 0 || fcntl(fd, F_SETFD, fl | FD_CLOEXEC) < 0)
		return -errno;
	*ret = (struct ipc_listener){.fd = fd};
	return 0;
}

void ipc_listen_close(struct ipc_listener *l, const char *path)
{
	struct stat st;

	if (l->fd >= 0)
		close(l->fd);
	l->fd = -1;
	if (l->bound && path != NULL && stat(path, &st) == 0 &&
	    st.st_dev == l->dev && st.st_ino == l->ino)
		unlink(path);
	l->bound = false;
}

void ipc_peer_read(int fd, struct ipc_peer *ret, gid_t **ret_groups)
{
	struct ucred uc;
	socklen_t sl = sizeof(uc);
	gid_t *g = NULL;

	*ret = (struct ipc_peer){.pid = -1, .uid = (uid_t)-1, .gid = (gid_t)-1};
	*ret_groups = NULL;
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &uc, &sl) == 0 &&
	    sl == sizeof(uc)) {
		ret->pid = uc.pid;
		ret->uid = uc.uid;
		ret->gid = uc.gid;
	}
	for (socklen_t want = 64 * sizeof(gid_t);;) {
		gid_t *ng = realloc(g, want);

		if (!ng)
			break;
		g = ng;
		sl = want;
		if (getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, g, &sl) == 0) {
			ret->groups = g;
			ret->ngroups = sl / sizeof(gid_t);
			ret->groups_known = true;
			*ret_groups = g;
			return;
		}
		if (errno != ERANGE || sl <= want ||
		    sl > PEER_GROUPS_MAX * sizeof(gid_t))
			break;
		want = sl;
	}
	free(g);
}

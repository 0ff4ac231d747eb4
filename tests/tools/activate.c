/*
 * Socket activation the way systemd does it for dsd.socket + dsd.service,
 * for the tests: it holds the listening socket for as long as it runs and
 * starts the program (LISTEN_FDS=1, the socket as fd 3) whenever a
 * connection is waiting and the program is not running, so a program
 * that stops (or is stopped) is started again by the next client, and a
 * client that connects meanwhile waits in the backlog, not refused.
 * (systemd-socket-activate hands the socket over once and is gone.)
 *
 *   activate SOCKET PROGRAM [ARG...]
 *
 * Prints "started PID" and "exited PID STATUS" lines; on SIGTERM it stops
 * the program (SIGTERM), waits for it and exits 0.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

static volatile sig_atomic_t stop;

static void on_stop(int sig)
{
	(void)sig;
	stop = 1;
}

int main(int argc, char **argv)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	struct sigaction act = {.sa_handler = on_stop};
	int lfd;

	if (argc < 3 || strlen(argv[1]) >= sizeof(sa.sun_path)) {
		fprintf(stderr, "usage: %s SOCKET PROGRAM [ARG...]\n", argv[0]);
		return 2;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	sigaction(SIGTERM, &act, NULL);
	sigaction(SIGINT, &act, NULL);
	strcpy(sa.sun_path, argv[1]);
	unlink(argv[1]);
	lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (lfd < 0 || bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
	    listen(lfd, 128) < 0) {
		perror("activate: listen");
		return 1;
	}
	printf("listening\n");
	while (!stop) {
		struct pollfd p = {.fd = lfd, .events = POLLIN};
		pid_t pid;
		int status;

		if (poll(&p, 1, -1) <= 0)
			continue;
		pid = fork();
		if (pid < 0) {
			perror("activate: fork");
			return 1;
		}
		if (pid == 0) {
			char n[32];

			/* dup2() onto itself would keep close-on-exec */
			if (lfd == 3 ? fcntl(3, F_SETFD, 0) < 0
			             : dup2(lfd, 3) < 0)
				_exit(127);
			snprintf(n, sizeof(n), "%d", (int)getpid());
			setenv("LISTEN_PID", n, 1);
			setenv("LISTEN_FDS", "1", 1);
			unsetenv("LISTEN_FDNAMES");
			execvp(argv[2], argv + 2);
			_exit(127);
		}
		printf("started %d\n", (int)pid);
		while (waitpid(pid, &status, 0) < 0) {
			if (errno != EINTR)
				return 1;
			if (stop)
				kill(pid, SIGTERM);
		}
		printf("exited %d %d\n", (int)pid, status);
	}
	close(lfd);
	return 0;
}

/*
 * Reading the files a configuration names (the config itself, drop-ins,
 * authFile, caFile) on the daemon's only thread, where nothing may block.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "readfile.h"

/*
 * Opens path for reading, refusing anything but a regular file.  dsd reads
 * its files on its only thread: O_NONBLOCK makes the open() of a FIFO (or
 * a device) return at once instead of waiting for a writer, and the fstat()
 * then refuses it, so nothing named in a config can freeze the daemon.
 * O_NONBLOCK does not change how a regular file is read.
 */
int readfile_open(const char *path, struct stat *ret_st)
{
	int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);

	if (fd < 0)
		return -errno;
	if (fstat(fd, ret_st) < 0) {
		int r = -errno;
		close(fd);
		return r;
	}
	if (!S_ISREG(ret_st->st_mode)) {
		close(fd);
		return -EINVAL;
	}
	return fd;
}

const char *readfile_error(int r)
{
	return r == -EINVAL ? "not a regular file" : strerror(-r);
}

/* Frees a buffer that may have held a secret (authFile, auth =). */
void readfile_free(char *buf, size_t size)
{
	if (!buf)
		return;
	explicit_bzero(buf, size);
	free(buf);
}

/*
 * Reads the whole regular file path into a new NUL-terminated buffer of
 * *ret_size bytes (free it with readfile_free()).  Returns 0, -EINVAL (not a
 * regular file), -EFBIG (more than max bytes), -ENOMEM or another -errno.
 * The buffer is sized from fstat() and grows (wiping the old copy) only if
 * the file grew meanwhile, never past max + 2 bytes.
 */
int readfile_read(const char *path, size_t max, char **ret_buf, size_t *ret_len,
                  size_t *ret_size)
{
	struct stat st;
	size_t len = 0, size;
	char *buf, *grown;
	int fd, r = 0;

	fd = readfile_open(path, &st);
	if (fd < 0)
		return fd;
	if ((uint64_t)st.st_size > max) {
		close(fd);
		return -EFBIG;
	}
	/* Room for one byte more than the file (to see its end, or that it
	 * grew) and the terminator. */
	size = (size_t)st.st_size + 2;
	buf = malloc(size);
	if (!buf) {
		close(fd);
		return -ENOMEM;
	}
	for (;;) {
		ssize_t n;

		if (len == size - 1) {
			size_t bigger = size * 2 < max + 2 ? size * 2 : max + 2;

			if (len > max) {
				r = -EFBIG;
				break;
			}
			grown = malloc(bigger);
			if (!grown) {
				r = -ENOMEM;
				break;
			}
			memcpy(grown, buf, len);
			readfile_free(buf, size);
			buf = grown;
			size = bigger;
		}
		n = read(fd, buf + len, size - 1 - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			r = -errno;
			break;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	close(fd);
	if (r == 0 && len > max)
		r = -EFBIG;
	if (r < 0) {
		readfile_free(buf, size);
		return r;
	}
	buf[len] = '\0';
	*ret_buf = buf;
	*ret_len = len;
	*ret_size = size;
	return 0;
}

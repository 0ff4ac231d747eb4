/*
 * A main() for the fuzz targets when libFuzzer is not linked in (gcc, or a
 * clang without it): runs LLVMFuzzerTestOneInput once over every file named
 * on the command line or found (not recursively) in a directory named
 * there.  So the seed corpus, and every crash input kept after a fix, is a
 * regression test in the ordinary build and under the sanitizers.
 *
 * Each input gets a heap block of exactly its size, as under libFuzzer, so
 * AddressSanitizer sees a read one byte past the end.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fuzz.h"

/* Well over the largest IPC frame; corpus files are far smaller. */
#define FUZZ_MAX_INPUT (4 * 1024 * 1024)

static int run_file(int dirfd, const char *name, const char *shown)
{
	struct stat st;
	uint8_t *buf = NULL;
	size_t got = 0;
	int fd, r = 0;

	fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &st) < 0) {
		r = -errno;
		goto out;
	}
	if (!S_ISREG(st.st_mode) || st.st_size > FUZZ_MAX_INPUT) {
		r = -EINVAL;
		goto out;
	}
	/* malloc(0) may return NULL; libFuzzer never passes NULL. */
	buf = malloc(st.st_size > 0 ? (size_t)st.st_size : 1);
	if (!buf) {
		r = -ENOMEM;
		goto out;
	}
	while (got < (size_t)st.st_size) {
		ssize_t n = read(fd, buf + got, (size_t)st.st_size - got);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			r = n < 0 ? -errno : -EIO;
			goto out;
		}
		got += (size_t)n;
	}
	LLVMFuzzerTestOneInput(buf, got);
out:
	if (r < 0)
		fprintf(stderr, "%s: %s\n", shown, strerror(-r));
	free(buf);
	if (fd >= 0)
		close(fd);
	return r;
}

static int cmp_names(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Runs every regular file in path, in name order (stable output). */
static int run_dir(const char *path, size_t *count)
{
	char **names = NULL, **grown;
	size_t n = 0, cap = 0, k;
	struct dirent *de;
	DIR *d;
	int r = 0;

	d = opendir(path);
	if (!d) {
		fprintf(stderr, "%s: %s\n", path, strerror(errno));
		return -errno;
	}
	while ((de = readdir(d))) {
		if (de->d_name[0] == '.')
			continue;
		if (n == cap) {
			cap = cap ? cap * 2 : 64;
			grown = realloc(names, cap * sizeof(*names));
			if (!grown) {
				r = -ENOMEM;
				goto out;
			}
			names = grown;
		}
		names[n] = strdup(de->d_name);
		if (!names[n]) {
			r = -ENOMEM;
			goto out;
		}
		n++;
	}
	qsort(names, n, sizeof(*names), cmp_names);
	for (k = 0; k < n && r == 0; k++) {
		char shown[4096];

		snprintf(shown, sizeof(shown), "%s/%s", path, names[k]);
		r = run_file(dirfd(d), names[k], shown);
		(*count)++;
	}
out:
	for (k = 0; k < n; k++)
		free(names[k]);
	free(names);
	closedir(d);
	return r;
}

int main(int argc, char **argv)
{
	size_t count = 0;
	int i;

	if (argc < 2) {
		fprintf(stderr, "usage: %s FILE|DIR...\n", argv[0]);
		return 2;
	}
	for (i = 1; i < argc; i++) {
		struct stat st;

		if (stat(argv[i], &st) < 0) {
			fprintf(stderr, "%s: %s\n", argv[i], strerror(errno));
			return 1;
		}
		if (S_ISDIR(st.st_mode)) {
			if (run_dir(argv[i], &count) < 0)
				return 1;
		} else {
			if (run_file(AT_FDCWD, argv[i], argv[i]) < 0)
				return 1;
			count++;
		}
	}
	/* An empty corpus would make this a test that cannot fail. */
	if (count == 0) {
		fprintf(stderr, "%s: no inputs\n", argv[0]);
		return 1;
	}
	printf("%s: %zu inputs, all passed\n", argv[0], count);
	return 0;
}

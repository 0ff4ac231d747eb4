/*
 * spool-bench: how many 100-byte records per second the durable spool
 * (daemon/spool.c) takes with 1, 10, 100 and 1000 records per commit, for
 * each synchronous setting, against a plain in-memory append (malloc +
 * memcpy into a list) as the baseline.  Prints figures, judges nothing.
 *
 *     spool-bench [DIR]        (default $TMPDIR, else /var/tmp)
 *
 * DIR must be on the file system the spool will live on: fsync costs what
 * that disk makes it cost (on tmpfs it costs nothing).  Two columns per
 * row: "add" only appends (the spool grows); "add+remove" also removes,
 * in the same transaction, the records of the batch before, as the daemon
 * does once the platform confirms them (the spool stays small).  Each cell
 * runs until BENCH_SPOOL_MS (default 1500) ms or 200,000 records.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statfs.h>
#include <time.h>
#include <unistd.h>

#include "spool.h"

#define RECORD_LEN  100
#define MAX_RECORDS 200000
#define MAX_BATCH   1000

static double now_s(void)
{
	struct timespec ts = {0};

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static const char *fs_name(const char *dir)
{
	struct statfs st = {0};

	if (statfs(dir, &st) < 0)
		return "unknown";
	switch ((unsigned long)st.f_type) {
	case 0xEF53:
		return "ext2/3/4";
	case 0x58465342:
		return "xfs";
	case 0x9123683E:
		return "btrfs";
	case 0x01021994:
		return "tmpfs (fsync is free here: figures are not a disk's)";
	case 0x794c7630:
		return "overlayfs";
	default:
		return "other";
	}
}

struct node {
	struct node *next;
	size_t len;
	unsigned char data[];
};

/* The memory queue's cost per record: one allocation and a copy. */
static double bench_memory(unsigned n)
{
	unsigned char rec[RECORD_LEN];
	struct node *head = NULL, **tail = &head;
	double t0 = now_s(), dt;

	memset(rec, 'x', sizeof(rec));
	for (unsigned i = 0; i < n; i++) {
		struct node *nd = malloc(sizeof(*nd) + sizeof(rec));

		if (!nd) {
			perror("malloc");
			exit(1);
		}
		nd->next = NULL;
		nd->len = sizeof(rec);
		memcpy(nd->data, rec, sizeof(rec));
		*tail = nd;
		tail = &nd->next;
	}
	dt = now_s() - t0;
	while (head) {
		struct node *nx = head->next;

		free(head);
		head = nx;
	}
	return n / dt;
}

/* Records per second through the spool at path; remove_prev makes each
 * batch also remove the batch before it. */
static double bench_spool(const char *path, enum spool_sync sync,
                          unsigned batch, int remove_prev, double budget_s)
{
	static uint64_t ids[2][MAX_BATCH];
	struct spool_options opt = {.sync = sync};
	unsigned char rec[RECORD_LEN];
	struct spool *s = NULL;
	char err[512];
	unsigned done = 0, b = 0;
	double t0, dt;
	int r;

	unlink(path);
	r = spool_open(path, &opt, &s, err, sizeof(err));
	if (r < 0) {
		fprintf(stderr, "spool-bench: %s\n", err);
		exit(1);
	}
	memset(rec, 'x', sizeof(rec));
	t0 = now_s();
	while (done < MAX_RECORDS && now_s() - t0 < budget_s) {
		uint64_t *cur = ids[b & 1], *prev = ids[(b + 1) & 1];

		if ((r = spool_begin(s)) < 0)
			goto fail;
		if (remove_prev && b > 0 &&
		    (r = spool_remove(s, prev, batch)) < 0)
			goto fail;
		for (unsigned i = 0; i < batch; i++) {
			memcpy(rec, &done, sizeof(done));
			if ((r = spool_add(s, "app", rec, sizeof(rec),
			                   &cur[i])) < 0)
				goto fail;
			done++;
		}
		if ((r = spool_commit(s)) < 0)
			goto fail;
		b++;
	}
	dt = now_s() - t0;
	spool_close(s);
	unlink(path);
	return done / dt;
fail:
	fprintf(stderr, "spool-bench: %s\n", spool_error(s));
	exit(1);
}

int main(int argc, char **argv)
{
	static const unsigned batches[] = {1, 10, 100, 1000};
	static const enum spool_sync syncs[] = {
	        SPOOL_SYNC_OFF, SPOOL_SYNC_NORMAL, SPOOL_SYNC_FULL};
	const char *env = getenv("BENCH_SPOOL_MS");
	const char *dir = argc > 1 ? argv[1] : getenv("TMPDIR");
	double budget = (env ? atof(env) : 1500) / 1000.0, mem;
	char tmpl[512], path[600];

	if (!dir || !*dir)
		dir = "/var/tmp";
	snprintf(tmpl, sizeof(tmpl), "%s/spool-bench.XXXXXX", dir);
	if (!mkdtemp(tmpl)) {
		fprintf(stderr, "spool-bench: mkdtemp %s: %s\n", tmpl,
		        strerror(errno));
		return 1;
	}
	snprintf(path, sizeof(path), "%s/spool.db", tmpl);

	printf("spool-bench: %d-byte records, file system of %s: %s\n",
	       RECORD_LEN, dir, fs_name(dir));
	mem = bench_memory(1000000);
	printf("memory baseline (malloc+memcpy into a list): %.0f records/s\n",
	       mem);
	printf("%-7s %6s %14s %14s %12s\n", "sync", "batch", "add rec/s",
	       "add+rm rec/s", "commits/s");
	for (size_t m = 0; m < sizeof(syncs) / sizeof(syncs[0]); m++) {
		for (size_t k = 0; k < sizeof(batches) / sizeof(batches[0]);
		     k++) {
			double add = bench_spool(path, syncs[m], batches[k], 0,
			                         budget);
			double both = bench_spool(path, syncs[m], batches[k], 1,
			                          budget);

			printf("%-7s %6u %14.0f %14.0f %12.0f\n",
			       spool_sync_to_string(syncs[m]), batches[k], add,
			       both, both / batches[k]);
			fflush(stdout);
		}
	}
	rmdir(tmpl);
	return 0;
}

/*
 * Unit tests for daemon/spool.c, on real files in temp dirs: order across
 * close and reopen, removal in any order, the bounds, a corrupt or foreign
 * file, an unwritable directory, a second process, kill -9 right after a
 * commit and in the middle of a stream of commits, and a full disk (a cap
 * on the file through SQLite's max_page_count, and a real tiny tmpfs when
 * the test may mount one).
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <grp.h>
#include <sched.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check-run.h"
#include "spool.h"

/* A child's exit code for "cannot run this here" (as meson's skip). */
#define CHILD_SKIP 77

static char dir[256];
static char path[300];

static void make_dir(void)
{
	const char *tmp = getenv("TMPDIR");

	snprintf(dir, sizeof(dir), "%s/test_spool.XXXXXX",
	         tmp && *tmp ? tmp : "/tmp");
	ck_assert_ptr_nonnull(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/spool.db", dir);
}

static int rm_one(const char *p, const struct stat *st, int flag,
                  struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(p);
}

static void remove_dir(void)
{
	chmod(dir, 0700);
	nftw(dir, rm_one, 8, FTW_DEPTH | FTW_PHYS);
}

/* Record i: app "appN" (N = i % 3) and len bytes that name i. */
static const char *app_of(unsigned i)
{
	static const char *const apps[] = {"app0", "app1", "app2"};

	return apps[i % 3];
}

/* The first 4 bytes hold i, the rest a pattern of i (len >= 4). */
static size_t fill_record(unsigned i, unsigned char *buf, size_t len)
{
	memcpy(buf, &i, sizeof(i));
	for (size_t k = sizeof(i); k < len; k++)
		buf[k] = (unsigned char)(i * 31 + k);
	return len;
}

static struct spool *open_ok(const struct spool_options *opt)
{
	struct spool *s = NULL;
	char err[512];
	int r = spool_open(path, opt, &s, err, sizeof(err));

	ck_assert_msg(r == 0, "spool_open: %d (%s)", r, err);
	ck_assert_ptr_nonnull(s);
	return s;
}

/* Adds records first..first+n-1 (len bytes each) in one batch. */
static void add_batch(struct spool *s, unsigned first, unsigned n, size_t len,
                      uint64_t *ids)
{
	unsigned char buf[2048];

	ck_assert_uint_le(len, sizeof(buf));
	ck_assert_int_eq(spool_begin(s), 0);
	for (unsigned i = first; i < first + n; i++) {
		fill_record(i, buf, len);
		ck_assert_int_eq(spool_add(s, app_of(i), buf, len,
		                           ids ? &ids[i - first] : NULL),
		                 0);
	}
	ck_assert_int_eq(spool_commit(s), 0);
}

/* What spool_load() handed out, copied. */
struct loaded {
	unsigned n;
	uint64_t ids[4096];
	unsigned idx[4096]; /* the record number found in the data */
	size_t len;         /* every record's length must be this */
	int bad;            /* records whose app or bytes do not match */
};

/* Which record i the bytes are (checked whole, app too), or -1. */
static int which_record(const struct spool_record *rec)
{
	unsigned char buf[2048];
	unsigned i;

	if (rec->len < sizeof(i) || rec->len > sizeof(buf))
		return -1;
	memcpy(&i, rec->data, sizeof(i));
	fill_record(i, buf, rec->len);
	if (memcmp(buf, rec->data, rec->len) != 0 ||
	    strcmp(rec->app, app_of(i)) != 0)
		return -1;
	return (int)i;
}

static int collect(const struct spool_record *rec, void *userdata)
{
	struct loaded *l = userdata;
	int i;

	ck_assert_uint_lt(l->n, 4096);
	ck_assert_int_gt(rec->created_ms, 1600000000000LL);
	i = which_record(rec);
	if (i < 0 || rec->len != l->len)
		l->bad++;
	l->ids[l->n] = rec->id;
	l->idx[l->n] = i < 0 ? 0 : (unsigned)i;
	l->n++;
	return 0;
}

static void load_all(struct spool *s, size_t len, struct loaded *l)
{
	memset(l, 0, sizeof(*l));
	l->len = len;
	ck_assert_int_eq(spool_load(s, collect, l), 0);
	ck_assert_int_eq(l->bad, 0);
	for (unsigned k = 1; k < l->n; k++)
		ck_assert_uint_gt(l->ids[k], l->ids[k - 1]);
}

START_TEST(test_sync_names)
{
	enum spool_sync m = SPOOL_SYNC_OFF;

	ck_assert_int_eq(spool_sync_from_string("full", &m), 0);
	ck_assert_int_eq(m, SPOOL_SYNC_FULL);
	ck_assert_int_eq(spool_sync_from_string("normal", &m), 0);
	ck_assert_int_eq(m, SPOOL_SYNC_NORMAL);
	ck_assert_int_eq(spool_sync_from_string("off", &m), 0);
	ck_assert_int_eq(m, SPOOL_SYNC_OFF);
	ck_assert_int_eq(spool_sync_from_string("FULL", &m), -EINVAL);
	ck_assert_int_eq(spool_sync_from_string("extra", &m), -EINVAL);
	ck_assert_str_eq(spool_sync_to_string(SPOOL_SYNC_FULL), "full");
	ck_assert_str_eq(spool_sync_to_string(SPOOL_SYNC_NORMAL), "normal");
}
END_TEST

/* Batches from three apps, interleaved, come back in acceptance order
 * after close and reopen; the file is created 0600 whatever the umask. */
START_TEST(test_order_across_reopen)
{
	struct spool_stats st = {0};
	struct loaded l;
	struct stat fst = {0};
	uint64_t ids[50];
	struct spool *s;
	mode_t old;

	make_dir();
	old = umask(0);
	s = open_ok(NULL);
	umask(old);
	ck_assert_int_eq(stat(path, &fst), 0);
	ck_assert_uint_eq(fst.st_mode & 0777, 0600);
	add_batch(s, 0, 10, 100, ids);
	add_batch(s, 10, 1, 100, ids + 10);
	add_batch(s, 11, 39, 100, ids + 11);
	for (unsigned i = 1; i < 50; i++)
		ck_assert_uint_gt(ids[i], ids[i - 1]);
	/* the WAL is created with the database's mode */
	ck_assert_int_eq(stat(path, &fst), 0);
	ck_assert_uint_eq(fst.st_mode & 0777, 0600);
	spool_get_stats(s, &st);
	ck_assert_uint_eq(st.records, 50);
	ck_assert_uint_eq(st.bytes, 5000);
	ck_assert_uint_gt(st.file_bytes + st.wal_bytes, 5000);
	spool_close(s);

	s = open_ok(NULL);
	spool_get_stats(s, &st);
	ck_assert_uint_eq(st.records, 50);
	ck_assert_uint_eq(st.bytes, 5000);
	load_all(s, 100, &l);
	ck_assert_uint_eq(l.n, 50);
	for (unsigned i = 0; i < 50; i++) {
		ck_assert_uint_eq(l.ids[i], ids[i]);
		ck_assert_uint_eq(l.idx[i], i);
	}
	/* a batch rolled back leaves nothing */
	ck_assert_int_eq(spool_begin(s), 0);
	ck_assert_int_eq(spool_add(s, "app0", "x", 1, NULL), 0);
	ck_assert_int_eq(spool_rollback(s), 0);
	spool_get_stats(s, &st);
	ck_assert_uint_eq(st.records, 50);
	spool_close(s);
	s = open_ok(NULL);
	load_all(s, 100, &l);
	ck_assert_uint_eq(l.n, 50);
	spool_close(s);
	remove_dir();
}
END_TEST

/* Misuse is refused without touching the file. */
START_TEST(test_misuse)
{
	struct spool *s;

	make_dir();
	s = open_ok(NULL);
	ck_assert_int_eq(spool_add(s, "app0", "x", 1, NULL), -EINVAL);
	ck_assert_str_ne(spool_error(s), "");
	ck_assert_int_eq(spool_commit(s), -EINVAL);
	ck_assert_int_eq(spool_rollback(s), -EINVAL);
	ck_assert_int_eq(spool_begin(s), 0);
	ck_assert_int_eq(spool_begin(s), -EINVAL);
	ck_assert_int_eq(spool_add(s, "app0", "x", 0, NULL), -EINVAL);
	ck_assert_int_eq(spool_add(s, "", "x", 1, NULL), -EINVAL);
	ck_assert_int_eq(spool_add(s, NULL, "x", 1, NULL), -EINVAL);
	ck_assert_int_eq(spool_load(s, collect, NULL), -EINVAL);
	ck_assert_int_eq(spool_commit(s), 0);
	spool_close(s);
	remove_dir();
}
END_TEST

/* Confirmed records are removed in whatever order they come; unknown ids
 * are skipped; what is left reloads in order. */
START_TEST(test_remove_any_order)
{
	const uint64_t gone[] = {8, 3, 16, 4, 1, 9999, 20};
	struct spool_stats st = {0};
	struct loaded l;
	uint64_t ids[20];
	struct spool *s;
	unsigned k = 0;

	make_dir();
	s = open_ok(NULL);
	add_batch(s, 0, 20, 64, ids);
	ck_assert_uint_eq(ids[0], 1);
	ck_assert_int_eq(spool_remove(s, gone, 7), 6);
	/* a confirmation seen twice is harmless */
	ck_assert_int_eq(spool_remove(s, gone, 2), 0);
	spool_get_stats(s, &st);
	ck_assert_uint_eq(st.records, 14);
	ck_assert_uint_eq(st.bytes, 14 * 64);
	spool_close(s);

	s = open_ok(NULL);
	load_all(s, 64, &l);
	ck_assert_uint_eq(l.n, 14);
	for (unsigned i = 0; i < 20; i++) {
		uint64_t id = i + 1;

		if (id == 8 || id == 3 || id == 16 || id == 4 || id == 1 ||
		    id == 20)
			continue;
		ck_assert_uint_eq(l.ids[k], id);
		ck_assert_uint_eq(l.idx[k], i);
		k++;
	}
	ck_assert_uint_eq(k, 14);

	/* removals inside a batch go with it: rolled back, they are undone */
	ck_assert_int_eq(spool_begin(s), 0);
	ck_assert_int_eq(spool_remove(s, (const uint64_t[]){2, 5}, 2), 2);
	ck_assert_int_eq(spool_rollback(s), 0);
	spool_get_stats(s, &st);
	ck_assert_uint_eq(st.records, 14);
	/* committed, they are done, together with the batch's adds */
	ck_assert_int_eq(spool_begin(s), 0);
	ck_assert_int_eq(spool_remove(s, (const uint64_t[]){5, 2}, 2), 2);
	ck_assert_int_eq(spool_add(s, "app1", "y", 1, &ids[0]), 0);
	ck_assert_int_eq(spool_commit(s), 0);
	/* ids are never reused, even after the highest was removed */
	ck_assert_uint_eq(ids[0], 21);
	spool_get_stats(s, &st);
	ck_assert_uint_eq(st.records, 13);
	ck_assert_uint_eq(st.bytes, 12 * 64 + 1);
	spool_close(s);

	s = open_ok(NULL);
	spool_get_stats(s, &st);
	ck_assert_uint_eq(st.records, 13);
	ck_assert_uint_eq(st.bytes, 12 * 64 + 1);
	spool_close(s);
	remove_dir();
}
END_TEST

/* max_records: the bound-th record fits, the next is refused (-ENOSPC)
 * without harming the batch; room comes back with a removal. */
START_TEST(test_limit_records)
{
	struct spool_options opt = {.max_records = 5};
	unsigned char buf[100] = {0};
	struct spool_stats st = {0};
	uint64_t ids[5];
	struct spool *s;

	make_dir();
	s = open_ok(&opt);
	ck_assert_int_eq(spool_begin(s), 0);
	for (unsigned i = 0; i < 5; i++)
		ck_assert_int_eq(spool_add(s, "a", buf, 100, &ids[i]), 0);
	ck_assert_int_eq(spool_add(s, "a", buf, 100, NULL), -ENOSPC);
	ck_assert_ptr_nonnull(strstr(spool_error(s), "5 records"));
	ck_assert_int_eq(spool_commit(s), 0);
	spool_get_stats(s, &st);
	ck_assert_uint_eq(st.records, 5);

	ck_assert_int_eq(spool_begin(s), 0);
	ck_assert_int_eq(spool_add(s, "a", buf, 1, NULL), -ENOSPC);
	/* a removal in the same batch makes room at once */
	ck_assert_int_eq(spool_remove(s, &ids[2], 1), 1);
	ck_assert_int_eq(spool_add(s, "a", buf, 1, NULL), 0);
	ck_assert_int_eq(spool_add(s, "a", buf, 1, NULL), -ENOSPC);
	ck_assert_int_eq(spool_commit(s), 0);
	spool_close(s);

	/* the bound counts what is already in the file */
	s = open_ok(&opt);
	spool_get_stats(s, &st);
	ck_assert_uint_eq(st.records, 5);
	ck_assert_int_eq(spool_begin(s), 0);
	ck_assert_int_eq(spool_add(s, "a", buf, 1, NULL), -ENOSPC);
	ck_assert_int_eq(spool_rollback(s), 0);
	spool_close(s);
	remove_dir();
}
END_TEST

/* max_bytes: payload bytes exactly at the bound fit, one byte more does
 * not; a record bigger than the bound never fits. */
START_TEST(test_limit_bytes)
{
	struct spool_options opt = {.max_bytes = 1000};
	unsigned char buf[1001] = {0};
	struct spool_stats st = {0};
	struct spool *s;

	make_dir();
	s = open_ok(&opt);
	ck_assert_int_eq(spool_begin(s), 0);
	ck_assert_int_eq(spool_add(s, "a", buf, 1001, NULL), -ENOSPC);
	for (unsigned i = 0; i < 9; i++)
		ck_assert_int_eq(spool_add(s, "a", buf, 100, NULL), 0);
	ck_assert_int_eq(spool_add(s, "a", buf, 101, NULL), -ENOSPC);
	ck_assert_ptr_nonnull(strstr(spool_error(s), "bound of 1000"));
	ck_assert_int_eq(spool_add(s, "a", buf, 100, NULL), 0);
	ck_assert_int_eq(spool_add(s, "a", buf, 1, NULL), -ENOSPC);
	ck_assert_int_eq(spool_commit(s), 0);
	spool_get_stats(s, &st);
	ck_assert_uint_eq(st.bytes, 1000);
	ck_assert_uint_eq(st.records, 10);
	spool_close(s);
	remove_dir();
}
END_TEST

static void write_file(const char *p, const void *data, size_t len, off_t at)
{
	int fd = open(p, O_WRONLY | O_CREAT, 0600);

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(pwrite(fd, data, len, at), (ssize_t)len);
	ck_assert_int_eq(close(fd), 0);
}

static int open_fails(const struct spool_options *opt, char *err, size_t errlen)
{
	struct spool *s = NULL;
	int r = spool_open(path, opt, &s, err, errlen);

	ck_assert_ptr_null(s);
	return r;
}

/* A file that is not a database at all. */
START_TEST(test_garbage_file)
{
	char garbage[8192], err[512];

	make_dir();
	for (size_t i = 0; i < sizeof(garbage); i++)
		garbage[i] = (char)(i * 7 + 3);
	write_file(path, garbage, sizeof(garbage), 0);
	ck_assert_int_eq(open_fails(NULL, err, sizeof(err)), -EBADMSG);
	ck_assert_msg(strstr(err, "is not a database or is corrupt"), "%s",
	              err);
	ck_assert_ptr_nonnull(strstr(err, path));
	remove_dir();
}
END_TEST

/* A spool whose inner pages were overwritten: the header is fine, so only
 * the check at open finds it. */
START_TEST(test_corrupt_pages)
{
	char garbage[3 * 4096], err[512];
	struct spool *s;

	make_dir();
	s = open_ok(NULL);
	for (unsigned b = 0; b < 10; b++)
		add_batch(s, b * 50, 50, 200, NULL);
	spool_close(s); /* checkpoints: the records are in the file now */

	for (size_t i = 0; i < sizeof(garbage); i++)
		garbage[i] = (char)(i * 13 + 5);
	write_file(path, garbage, sizeof(garbage), 2 * 4096);
	ck_assert_int_eq(open_fails(NULL, err, sizeof(err)), -EBADMSG);
	ck_assert_msg(strstr(err, "is corrupt"), "%s", err);
	remove_dir();
}
END_TEST

/* Another program's SQLite database is not written into. */
START_TEST(test_foreign_database)
{
	sqlite3 *db = NULL;
	char err[512];

	make_dir();
	ck_assert_int_eq(sqlite3_open(path, &db), SQLITE_OK);
	ck_assert_int_eq(
	        sqlite3_exec(db, "CREATE TABLE t (x)", NULL, NULL, NULL),
	        SQLITE_OK);
	sqlite3_close(db);
	ck_assert_int_eq(open_fails(NULL, err, sizeof(err)), -EBADMSG);
	ck_assert_msg(strstr(err, "another program"), "%s", err);
	remove_dir();
}
END_TEST

/* A second process on the same spool is refused while the first has it. */
START_TEST(test_busy)
{
	struct spool *s;
	char err[512];
	int status = 0;
	pid_t pid;

	make_dir();
	s = open_ok(NULL);
	add_batch(s, 0, 3, 10, NULL);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		struct spool *t = NULL;
		int r = spool_open(path, NULL, &t, err, sizeof(err));

		_exit(r == -EBUSY && strstr(err, "in use by another process")
		              ? 0
		              : 1);
	}
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	spool_close(s);
	/* once closed, it opens again */
	s = open_ok(NULL);
	spool_close(s);
	remove_dir();
}
END_TEST

/*
 * Runs the open in a child that cannot write to dir: root writes
 * anywhere, so as root the child first becomes nobody (owning nothing).
 * mode is given to dir (and the existing spool file, when there is one).
 * Returns what the child saw: the error as exit code, the text in err.
 */
static int open_unwritable(mode_t dir_mode, char *err, size_t errlen)
{
	int fds[2], status = 0;
	ssize_t n;
	pid_t pid;

	ck_assert_int_eq(pipe(fds), 0);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		struct spool *s = NULL;
		int r;

		close(fds[0]);
		if (geteuid() == 0 && (chown(dir, 65534, 65534) < 0 ||
		                       (access(path, F_OK) == 0 &&
		                        chown(path, 65534, 65534) < 0) ||
		                       setgroups(0, NULL) < 0 ||
		                       setgid(65534) < 0 || setuid(65534) < 0))
			_exit(CHILD_SKIP);
		if (chmod(dir, dir_mode) < 0)
			_exit(CHILD_SKIP);
		r = spool_open(path, NULL, &s, err, errlen);
		if (write(fds[1], err, strlen(err) + 1) < 0)
			_exit(CHILD_SKIP);
		spool_close(s);
		_exit(-r);
	}
	close(fds[1]);
	n = read(fds[0], err, errlen - 1);
	err[n > 0 ? n : 0] = '\0';
	close(fds[0]);
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert(WIFEXITED(status));
	ck_assert_int_ne(WEXITSTATUS(status), CHILD_SKIP);
	return -WEXITSTATUS(status);
}

START_TEST(test_unwritable_dir)
{
	char err[512] = "";
	struct spool *s;

	make_dir();
	ck_assert_int_eq(open_unwritable(0500, err, sizeof(err)), -EACCES);
	ck_assert_msg(strstr(err, "cannot open or create it: Permission"), "%s",
	              err);
	remove_dir();

	/* the file is there and writable, but the WAL cannot be made */
	make_dir();
	s = open_ok(NULL);
	add_batch(s, 0, 3, 10, NULL);
	spool_close(s);
	ck_assert_int_eq(open_unwritable(0500, err, sizeof(err)), -EACCES);
	ck_assert_msg(strstr(err, "cannot create its write-ahead log"), "%s",
	              err);
	remove_dir();
}
END_TEST

/*
 * kill -9 right after commits: the child commits n records in batches of
 * 10, tells the parent, adds 7 more without committing and kills itself.
 * The parent finds exactly the n committed records.  Run for each sync
 * setting: an application crash loses nothing under any of them.
 */
START_TEST(test_kill9_after_commit)
{
	static const enum spool_sync modes[] = {
	        SPOOL_SYNC_NORMAL, SPOOL_SYNC_OFF, SPOOL_SYNC_FULL};
	struct spool_options opt = {.sync = modes[_i]};
	const unsigned n = 1000;
	struct loaded l;
	struct spool *s;
	int fds[2], status = 0;
	unsigned told = 0;
	pid_t pid;

	make_dir();
	ck_assert_int_eq(pipe(fds), 0);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		unsigned char buf[100];

		close(fds[0]);
		s = open_ok(&opt);
		for (unsigned b = 0; b < n / 10; b++)
			add_batch(s, b * 10, 10, 100, NULL);
		if (write(fds[1], &n, sizeof(n)) != sizeof(n))
			_exit(1);
		ck_assert_int_eq(spool_begin(s), 0);
		for (unsigned i = n; i < n + 7; i++) {
			fill_record(i, buf, sizeof(buf));
			ck_assert_int_eq(
			        spool_add(s, app_of(i), buf, sizeof(buf), NULL),
			        0);
		}
		raise(SIGKILL);
		_exit(1);
	}
	close(fds[1]);
	ck_assert_int_eq(read(fds[0], &told, sizeof(told)), sizeof(told));
	close(fds[0]);
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
	ck_assert_uint_eq(told, n);

	s = open_ok(&opt);
	load_all(s, 100, &l);
	ck_assert_uint_eq(l.n, n);
	for (unsigned i = 0; i < n; i++)
		ck_assert_uint_eq(l.idx[i], i);
	spool_close(s);
	remove_dir();
}
END_TEST

/*
 * kill -9 from outside, in the middle of a stream of commits: every
 * commit the child reported is in the file, and nothing beyond the one
 * batch that may have committed after the last report.
 */
START_TEST(test_kill9_mid_stream)
{
	const unsigned batch = 10;
	unsigned reported = 0, got;
	struct loaded l;
	struct spool *s;
	int fds[2], status = 0;
	pid_t pid;

	make_dir();
	ck_assert_int_eq(pipe(fds), 0);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		close(fds[0]);
		s = open_ok(NULL);
		for (unsigned b = 0; b < 4096 / batch - 1; b++) {
			unsigned done = (b + 1) * batch;

			add_batch(s, b * batch, batch, 100, NULL);
			if (write(fds[1], &done, sizeof(done)) != sizeof(done))
				_exit(1);
		}
		pause(); /* ran out of records: wait for the kill */
		_exit(1);
	}
	close(fds[1]);
	while (reported < 1000 &&
	       read(fds[0], &got, sizeof(got)) == sizeof(got))
		reported = got;
	ck_assert_int_eq(kill(pid, SIGKILL), 0);
	/* reports written before it died */
	while (read(fds[0], &got, sizeof(got)) == sizeof(got))
		reported = got;
	close(fds[0]);
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);

	s = open_ok(NULL);
	load_all(s, 100, &l);
	ck_assert_uint_ge(l.n, reported);
	ck_assert_uint_le(l.n, reported + batch);
	ck_assert_uint_eq(l.n % batch, 0); /* whole batches or nothing */
	for (unsigned i = 0; i < l.n; i++)
		ck_assert_uint_eq(l.idx[i], i);
	spool_close(s);
	remove_dir();
}
END_TEST

/*
 * Adds batches of 10 records of 1 KiB until the file or the disk is full;
 * checks the refusal and that the failed batch left nothing behind.
 * Returns the records committed.
 */
static unsigned fill_until_full(struct spool *s)
{
	struct spool_stats before = {0}, after = {0};
	unsigned char buf[1024];
	unsigned i = 0;
	int r = 0;

	for (;;) {
		spool_get_stats(s, &before);
		ck_assert_int_eq(spool_begin(s), 0);
		for (unsigned k = 0; k < 10 && r == 0; k++, i++) {
			fill_record(i, buf, sizeof(buf));
			r = spool_add(s, app_of(i), buf, sizeof(buf), NULL);
		}
		if (r == 0)
			r = spool_commit(s);
		else
			/* the batch is lost: the commit says so again */
			ck_assert_int_eq(spool_commit(s), r);
		if (r < 0)
			break;
		ck_assert_uint_lt(i, 100000);
	}
	ck_assert_int_eq(r, -ENOSPC);
	ck_assert_msg(strstr(spool_error(s), "no space left"), "%s",
	              spool_error(s));
	spool_get_stats(s, &after);
	ck_assert_uint_eq(after.records, before.records);
	ck_assert_uint_gt(after.records, 0);
	return (unsigned)after.records;
}

/* A full file, simulated by the spool's own cap (SQLite max_page_count):
 * -ENOSPC with a clear text, the committed records intact, and room again
 * once records are removed. */
START_TEST(test_file_cap_full)
{
	struct spool_options opt = {.max_file_bytes = 256 * 1024};
	struct loaded l;
	struct spool *s;
	unsigned n;

	make_dir();
	s = open_ok(&opt);
	n = fill_until_full(s);
	ck_assert_uint_lt(n, 256);
	ck_assert_int_eq(spool_remove(s, (const uint64_t[]){1, 2, 3}, 3), 3);
	ck_assert_int_eq(spool_begin(s), 0);
	ck_assert_int_eq(spool_add(s, "a", "after", 5, NULL), 0);
	ck_assert_int_eq(spool_commit(s), 0);
	spool_close(s);

	s = open_ok(&opt);
	memset(&l, 0, sizeof(l));
	l.len = 1024;
	ck_assert_int_eq(spool_load(s, collect, &l), 0);
	ck_assert_uint_eq(l.n, n - 3 + 1);
	ck_assert_int_eq(l.bad, 1); /* the 5-byte record */
	spool_close(s);
	remove_dir();
}
END_TEST

/* A really full disk: a 320 KiB tmpfs mounted in a private mount
 * namespace of a child.  Needs CAP_SYS_ADMIN; skipped (said so on stderr)
 * without it. */
START_TEST(test_tmpfs_full)
{
	int status = 0;
	pid_t pid;

	make_dir();
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		struct spool_options opt = {.sync = SPOOL_SYNC_FULL};
		struct loaded l;
		struct spool *s;
		unsigned n;

		if (unshare(CLONE_NEWNS) < 0 ||
		    mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0 ||
		    mount("tmpfs", dir, "tmpfs", 0, "size=320k,mode=0700") < 0)
			_exit(CHILD_SKIP);
		s = open_ok(&opt);
		n = fill_until_full(s);
		spool_close(s);
		s = open_ok(&opt);
		load_all(s, 1024, &l);
		ck_assert_uint_eq(l.n, n);
		spool_close(s);
		_exit(0);
	}
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert(WIFEXITED(status));
	if (WEXITSTATUS(status) == CHILD_SKIP)
		fprintf(stderr, "test_tmpfs_full: skipped: cannot mount a "
		                "tmpfs here (not root, or no CAP_SYS_ADMIN)\n");
	else
		ck_assert_int_eq(WEXITSTATUS(status), 0);
	remove_dir();
}
END_TEST

static Suite *spool_suite(void)
{
	Suite *s = suite_create("spool");
	TCase *tc = tcase_create("core");

	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_sync_names);
	tcase_add_test(tc, test_order_across_reopen);
	tcase_add_test(tc, test_misuse);
	tcase_add_test(tc, test_remove_any_order);
	tcase_add_test(tc, test_limit_records);
	tcase_add_test(tc, test_limit_bytes);
	tcase_add_test(tc, test_garbage_file);
	tcase_add_test(tc, test_corrupt_pages);
	tcase_add_test(tc, test_foreign_database);
	tcase_add_test(tc, test_busy);
	tcase_add_test(tc, test_unwritable_dir);
	tcase_add_loop_test(tc, test_kill9_after_commit, 0, 3);
	tcase_add_test(tc, test_kill9_mid_stream);
	tcase_add_test(tc, test_file_cap_full);
	tcase_add_test(tc, test_tmpfs_full);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return check_run(spool_suite());
}

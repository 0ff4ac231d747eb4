/*
 * The durable spool over SQLite: one table, WAL journal, the file locked
 * exclusively for as long as it is open (docs/spool.md).
 *
 * Counts: `records` and `bytes` are what is committed; `pend_*` is what
 * the open batch would change (adds minus removals), so a bound is judged
 * against committed + pending and a rolled-back batch leaves the counts as
 * they were.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "clock.h"
#include "spool.h"

/* 'DSD1' in the header's application_id: a file that is some other
 * program's SQLite database is refused, not written into. */
#define SPOOL_APPLICATION_ID 0x44534431
#define SPOOL_SCHEMA_VERSION 1
/* After a checkpoint the WAL file is cut back to this size, so one large
 * batch does not keep its space for ever. */
#define SPOOL_WAL_KEEP_BYTES (4 * 1024 * 1024)

static const char schema_sql[] = "CREATE TABLE records ("
                                 " id INTEGER PRIMARY KEY AUTOINCREMENT,"
                                 " app TEXT NOT NULL,"
                                 " created INTEGER NOT NULL,"
                                 " data BLOB NOT NULL);";

struct spool {
	sqlite3 *db;
	char *path;
	char *wal_path;
	sqlite3_stmt *begin;
	sqlite3_stmt *commit;
	sqlite3_stmt *rollback;
	sqlite3_stmt *insert;
	sqlite3_stmt *delete;
	sqlite3_stmt *length;
	sqlite3_stmt *select;
	struct spool_options opt;
	uint64_t records;
	uint64_t bytes;
	int64_t pend_records;
	int64_t pend_bytes;
	bool in_batch;
	int batch_err; /* the failure that spoiled the open batch, or 0 */
	int64_t batch_ms;
	char err[512];
};

static void set_err(struct spool *s, const char *fmt, ...)
        __attribute__((format(printf, 2, 3)));

static void set_err(struct spool *s, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(s->err, sizeof(s->err), fmt, ap);
	va_end(ap);
}

/* An SQLite result code as a negative errno. */
static int rc_to_errno(sqlite3 *db, int rc)
{
	int sys = db ? sqlite3_system_errno(db) : 0;

	if (rc == SQLITE_IOERR_NOMEM)
		return -ENOMEM;
	switch (rc & 0xff) {
	case SQLITE_NOMEM:
		return -ENOMEM;
	case SQLITE_FULL:
		return -ENOSPC;
	case SQLITE_CORRUPT:
	case SQLITE_NOTADB:
		return -EBADMSG;
	case SQLITE_BUSY:
	case SQLITE_LOCKED:
		return -EBUSY;
	case SQLITE_READONLY:
		return sys == EACCES ? -EACCES : -EROFS;
	case SQLITE_CANTOPEN:
		return sys > 0 ? -sys : -EACCES;
	case SQLITE_PERM:
	case SQLITE_AUTH:
		return -EACCES;
	case SQLITE_TOOBIG:
		return -EMSGSIZE;
	default:
		return -EIO;
	}
}

/* Records the failure of what with the database's own message, and
 * returns it as a negative errno.  A full disk says so plainly: that one
 * an operator can fix. */
static int db_fail(struct spool *s, int rc, const char *what)
{
	int r = rc_to_errno(s->db, rc);
	const char *msg = s->db ? sqlite3_errmsg(s->db) : sqlite3_errstr(rc);

	if (r == -ENOSPC)
		set_err(s,
		        "spool %s: %s: no space left (disk full or the "
		        "spool's file cap reached): %s",
		        s->path, what, msg);
	else if (r == -EBADMSG)
		set_err(s,
		        "spool %s is not a database or is corrupt (%s: %s); "
		        "move it away to start a new one",
		        s->path, what, msg);
	else if (r == -EBUSY)
		set_err(s, "spool %s is in use by another process (%s: %s)",
		        s->path, what, msg);
	else
		set_err(s, "spool %s: %s: %s", s->path, what, msg);
	return r;
}

/* Runs SQL that returns no rows (or whose rows do not matter). */
static int exec_sql(struct spool *s, const char *sql, const char *what)
{
	int rc = sqlite3_exec(s->db, sql, NULL, NULL, NULL);

	return rc == SQLITE_OK ? 0 : db_fail(s, rc, what);
}

/* Runs a query that returns one row; *ret is left on that row, for the
 * caller to read and finalise.  No row is an error. */
static int query_row(struct spool *s, const char *sql, sqlite3_stmt **ret,
                     const char *what)
{
	sqlite3_stmt *st = NULL;
	int rc = sqlite3_prepare_v2(s->db, sql, -1, &st, NULL);

	if (rc != SQLITE_OK)
		return db_fail(s, rc, what);
	rc = sqlite3_step(st);
	if (rc != SQLITE_ROW) {
		int r = db_fail(s, rc == SQLITE_DONE ? SQLITE_ERROR : rc, what);

		sqlite3_finalize(st);
		return r;
	}
	*ret = st;
	return 0;
}

/* The first column of a one-row query, as text. */
static int query_text(struct spool *s, const char *sql, char *buf, size_t len,
                      const char *what)
{
	sqlite3_stmt *st = NULL;
	const unsigned char *t;
	int r = query_row(s, sql, &st, what);

	if (r < 0)
		return r;
	t = sqlite3_column_text(st, 0);
	snprintf(buf, len, "%s", t ? (const char *)t : "");
	sqlite3_finalize(st);
	return 0;
}

static int query_int(struct spool *s, const char *sql, int64_t *ret,
                     const char *what)
{
	sqlite3_stmt *st = NULL;
	int r = query_row(s, sql, &st, what);

	if (r < 0)
		return r;
	*ret = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return 0;
}

static int prepare(struct spool *s, const char *sql, sqlite3_stmt **ret)
{
	int rc = sqlite3_prepare_v3(s->db, sql, -1, SQLITE_PREPARE_PERSISTENT,
	                            ret, NULL);

	return rc == SQLITE_OK ? 0 : db_fail(s, rc, "preparing statements");
}

/* Runs a prepared statement that returns no rows, and resets it. */
static int step_done(struct spool *s, sqlite3_stmt *st, const char *what)
{
	int rc = sqlite3_step(st);

	sqlite3_reset(st);
	return rc == SQLITE_DONE ? 0 : db_fail(s, rc, what);
}

int spool_sync_from_string(const char *s, enum spool_sync *ret)
{
	if (!s)
		return -EINVAL;
	if (strcmp(s, "normal") == 0)
		*ret = SPOOL_SYNC_NORMAL;
	else if (strcmp(s, "off") == 0)
		*ret = SPOOL_SYNC_OFF;
	else if (strcmp(s, "full") == 0)
		*ret = SPOOL_SYNC_FULL;
	else
		return -EINVAL;
	return 0;
}

const char *spool_sync_to_string(enum spool_sync sync)
{
	switch (sync) {
	case SPOOL_SYNC_OFF:
		return "off";
	case SPOOL_SYNC_FULL:
		return "full";
	case SPOOL_SYNC_NORMAL:
		break;
	}
	return "normal";
}

/* Makes a new file's name durable: without it a power loss soon after
 * could take the whole file away, committed batches included.  (SQLite
 * does the same for the -wal file it creates.) */
static int sync_parent_dir(struct spool *s)
{
	char *dir = strdup(s->path), *slash;
	int fd, r = 0;

	if (!dir)
		return -ENOMEM;
	slash = strrchr(dir, '/');
	if (!slash)
		strcpy(dir, ".");
	else if (slash == dir)
		dir[1] = '\0';
	else
		*slash = '\0';
	fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0 || fsync(fd) < 0) {
		r = -errno;
		set_err(s, "spool %s: cannot sync its directory %s: %s",
		        s->path, dir, strerror(-r));
	}
	if (fd >= 0)
		close(fd);
	free(dir);
	return r;
}

/* Creates the file with mode 0600 before SQLite sees it (SQLite would
 * create it 0644 less the umask; the WAL file copies the database's mode),
 * and refuses anything but a regular file. */
static int create_file(struct spool *s)
{
	struct stat st = {0};
	bool created = true;
	int fd = open(s->path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	int r = 0;

	if (fd < 0 && errno == EEXIST) {
		created = false;
		fd = open(s->path, O_RDWR | O_CLOEXEC);
	}
	if (fd < 0) {
		r = -errno;
		set_err(s, "spool %s: cannot open or create it: %s", s->path,
		        strerror(-r));
		return r;
	}
	if (fstat(fd, &st) < 0) {
		r = -errno;
		set_err(s, "spool %s: %s", s->path, strerror(-r));
	} else if (!S_ISREG(st.st_mode)) {
		r = -EINVAL;
		set_err(s, "spool %s: not a regular file", s->path);
	}
	close(fd);
	if (r == 0 && created)
		r = sync_parent_dir(s);
	return r;
}

/* Checks the whole file before anything in it is trusted. */
static int check_integrity(struct spool *s)
{
	char res[256];
	int r = query_text(s, "PRAGMA quick_check(1)", res, sizeof(res),
	                   "reading it");

	if (r < 0)
		return r;
	if (strcmp(res, "ok") != 0) {
		set_err(s,
		        "spool %s is corrupt (quick_check: %s); move it away "
		        "to start a new one",
		        s->path, res);
		return -EBADMSG;
	}
	return 0;
}

/* Creates the table in a fresh file; in an existing one checks that it is
 * ours and of a version we know. */
static int check_schema(struct spool *s)
{
	int64_t app_id = 0, version = 0, tables = 0;
	char sql[128];
	int r;

	if ((r = query_int(s, "PRAGMA application_id", &app_id,
	                   "reading its header")) < 0 ||
	    (r = query_int(s, "PRAGMA user_version", &version,
	                   "reading its header")) < 0 ||
	    (r = query_int(s, "SELECT count(*) FROM sqlite_schema", &tables,
	                   "reading its schema")) < 0)
		return r;
	if (app_id == 0 && tables == 0) {
		if ((r = exec_sql(s, "BEGIN", "creating its table")) < 0)
			return r;
		if ((r = exec_sql(s, schema_sql, "creating its table")) < 0)
			goto rollback;
		snprintf(sql, sizeof(sql),
		         "PRAGMA application_id = %d; PRAGMA user_version = %d",
		         SPOOL_APPLICATION_ID, SPOOL_SCHEMA_VERSION);
		if ((r = exec_sql(s, sql, "creating its table")) < 0)
			goto rollback;
		if ((r = exec_sql(s, "COMMIT", "creating its table")) < 0)
			goto rollback;
		return 0;
	}
	if (app_id != SPOOL_APPLICATION_ID) {
		set_err(s,
		        "spool %s is an SQLite database of another program "
		        "(application_id %" PRId64 "), not a dsd spool",
		        s->path, app_id);
		return -EBADMSG;
	}
	if (version != SPOOL_SCHEMA_VERSION) {
		set_err(s,
		        "spool %s has schema version %" PRId64
		        ", this dsd knows %d",
		        s->path, version, SPOOL_SCHEMA_VERSION);
		return -EPROTO;
	}
	return 0;
rollback:
	sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
	return r;
}

static int count_records(struct spool *s)
{
	sqlite3_stmt *st = NULL;
	int rc = sqlite3_prepare_v2(
	        s->db, "SELECT count(*), total(length(data)) FROM records", -1,
	        &st, NULL);

	if (rc != SQLITE_OK)
		return db_fail(s, rc, "counting records");
	rc = sqlite3_step(st);
	if (rc != SQLITE_ROW) {
		int r = db_fail(s, rc, "counting records");

		sqlite3_finalize(st);
		return r;
	}
	s->records = (uint64_t)sqlite3_column_int64(st, 0);
	s->bytes = (uint64_t)sqlite3_column_double(st, 1);
	sqlite3_finalize(st);
	return 0;
}

/* The pragmas that make it a spool: one process, WAL, the sync setting. */
static int configure(struct spool *s)
{
	static const char *const sync_sql[] = {
	        [SPOOL_SYNC_NORMAL] = "PRAGMA synchronous = NORMAL",
	        [SPOOL_SYNC_OFF] = "PRAGMA synchronous = OFF",
	        [SPOOL_SYNC_FULL] = "PRAGMA synchronous = FULL",
	};
	char mode[32], sql[96];
	int64_t page_size = 0, pages = 0;
	int r;

	/* Exclusive before WAL: the WAL index then lives in this process's
	 * memory (no -shm file), and the lock taken below is kept until
	 * close. */
	if ((r = query_text(s, "PRAGMA locking_mode = EXCLUSIVE", mode,
	                    sizeof(mode), "setting its locking mode")) < 0)
		return r;
	r = query_text(s, "PRAGMA journal_mode = WAL", mode, sizeof(mode),
	               "switching it to WAL");
	if (r == -EROFS || r == -EACCES) {
		/* SQLite says "readonly database" when it cannot create the
		 * -wal file next to a file it may write */
		set_err(s,
		        "spool %s: cannot create its write-ahead log %s (%s): "
		        "is the directory writable?",
		        s->path, s->wal_path, sqlite3_errmsg(s->db));
		return -EACCES;
	}
	if (r < 0)
		return r;
	if (strcmp(mode, "wal") != 0) {
		set_err(s,
		        "spool %s: cannot use a write-ahead log (journal mode "
		        "stays %s): is its directory writable?",
		        s->path, mode);
		return -EACCES;
	}
	if ((r = exec_sql(s, sync_sql[s->opt.sync], "setting synchronous")) < 0)
		return r;
	snprintf(sql, sizeof(sql), "PRAGMA journal_size_limit = %d",
	         SPOOL_WAL_KEEP_BYTES);
	if ((r = exec_sql(s, sql, "setting journal_size_limit")) < 0)
		return r;
	/* Take the write lock now, so a second dsd on this file is refused
	 * at open rather than at its first emit. */
	if ((r = exec_sql(s, "BEGIN EXCLUSIVE; COMMIT", "locking it")) < 0)
		return r;
	if (s->opt.max_file_bytes) {
		if ((r = query_int(s, "PRAGMA page_size", &page_size,
		                   "reading its page size")) < 0)
			return r;
		pages = (int64_t)(s->opt.max_file_bytes / (uint64_t)page_size);
		snprintf(sql, sizeof(sql), "PRAGMA max_page_count = %" PRId64,
		         pages > 0 ? pages : 1);
		if ((r = exec_sql(s, sql, "setting max_page_count")) < 0)
			return r;
	}
	return 0;
}

static int prepare_all(struct spool *s)
{
	int r;

	if ((r = prepare(s, "BEGIN", &s->begin)) < 0 ||
	    (r = prepare(s, "COMMIT", &s->commit)) < 0 ||
	    (r = prepare(s, "ROLLBACK", &s->rollback)) < 0 ||
	    (r = prepare(s,
	                 "INSERT INTO records (app, created, data)"
	                 " VALUES (?1, ?2, ?3)",
	                 &s->insert)) < 0 ||
	    (r = prepare(s, "DELETE FROM records WHERE id = ?1", &s->delete)) <
	            0 ||
	    (r = prepare(s, "SELECT length(data) FROM records WHERE id = ?1",
	                 &s->length)) < 0 ||
	    (r = prepare(s,
	                 "SELECT id, app, created, data FROM records"
	                 " ORDER BY id",
	                 &s->select)) < 0)
		return r;
	return 0;
}

static int options_valid(const struct spool_options *opt)
{
	return opt->sync == SPOOL_SYNC_NORMAL || opt->sync == SPOOL_SYNC_OFF ||
	       opt->sync == SPOOL_SYNC_FULL;
}

int spool_open(const char *path, const struct spool_options *opt,
               struct spool **ret, char *err, size_t errlen)
{
	static const struct spool_options defaults = {0};
	struct spool *s;
	int rc, r;

	if (err && errlen)
		err[0] = '\0';
	if (!opt)
		opt = &defaults;
	if (!path || !*path || !ret || !options_valid(opt)) {
		if (err && errlen)
			snprintf(err, errlen, "spool: invalid arguments");
		return -EINVAL;
	}
	s = calloc(1, sizeof(*s));
	if (!s)
		goto nomem;
	s->opt = *opt;
	s->path = strdup(path);
	if (!s->path || asprintf(&s->wal_path, "%s-wal", path) < 0) {
		s->wal_path = NULL;
		spool_close(s);
		goto nomem;
	}
	if ((r = create_file(s)) < 0)
		goto fail;
	rc = sqlite3_open_v2(path, &s->db,
	                     SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL);
	if (rc != SQLITE_OK) {
		r = db_fail(s, rc, "cannot open it");
		goto fail;
	}
	sqlite3_extended_result_codes(s->db, 1);
	if (sqlite3_db_readonly(s->db, "main") == 1) {
		set_err(s, "spool %s: can only be opened read-only", path);
		r = -EROFS;
		goto fail;
	}
	if ((r = configure(s)) < 0 || (r = check_integrity(s)) < 0 ||
	    (r = check_schema(s)) < 0 || (r = prepare_all(s)) < 0 ||
	    (r = count_records(s)) < 0)
		goto fail;
	s->err[0] = '\0';
	*ret = s;
	return 0;
nomem:
	if (err && errlen)
		snprintf(err, errlen, "spool %s: out of memory", path);
	return -ENOMEM;
fail:
	if (err && errlen)
		snprintf(err, errlen, "%s", s->err);
	spool_close(s);
	return r;
}

void spool_close(struct spool *s)
{
	if (!s)
		return;
	if (s->in_batch && s->db && !sqlite3_get_autocommit(s->db))
		sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
	sqlite3_finalize(s->begin);
	sqlite3_finalize(s->commit);
	sqlite3_finalize(s->rollback);
	sqlite3_finalize(s->insert);
	sqlite3_finalize(s->delete);
	sqlite3_finalize(s->length);
	sqlite3_finalize(s->select);
	sqlite3_close(s->db);
	free(s->path);
	free(s->wal_path);
	free(s);
}

/* Ends the open batch in the database (if SQLite has not already rolled
 * it back) and forgets its pending counts. */
static void drop_batch(struct spool *s)
{
	if (!sqlite3_get_autocommit(s->db)) {
		sqlite3_step(s->rollback);
		sqlite3_reset(s->rollback);
	}
	s->pend_records = 0;
	s->pend_bytes = 0;
}

/* A failure of the file inside a batch: the batch is gone; remember why so
 * that later adds and the commit say so. */
static int spoil_batch(struct spool *s, int r)
{
	drop_batch(s);
	s->batch_err = r;
	return r;
}

int spool_begin(struct spool *s)
{
	int r;

	if (s->in_batch) {
		set_err(s, "spool %s: a batch is already open", s->path);
		return -EINVAL;
	}
	if ((r = step_done(s, s->begin, "beginning a batch")) < 0)
		return r;
	s->in_batch = true;
	s->batch_err = 0;
	s->pend_records = 0;
	s->pend_bytes = 0;
	s->batch_ms = clock_unix_ms();
	return 0;
}

int spool_add(struct spool *s, const char *app, const void *data, size_t len,
              uint64_t *ret_id)
{
	int rc;

	if (!s->in_batch || !app || !*app || !data || len == 0) {
		set_err(s, "spool %s: %s", s->path,
		        s->in_batch ? "empty record" : "no batch open");
		return -EINVAL;
	}
	if (s->batch_err)
		return s->batch_err;
	if (s->opt.max_records &&
	    s->records + (uint64_t)s->pend_records >= s->opt.max_records) {
		set_err(s, "spool %s is full: %" PRIu64 " records (the bound)",
		        s->path, s->opt.max_records);
		return -ENOSPC;
	}
	if (s->opt.max_bytes &&
	    (len > s->opt.max_bytes ||
	     s->bytes + (uint64_t)s->pend_bytes > s->opt.max_bytes - len)) {
		set_err(s,
		        "spool %s is full: %zu more bytes would pass its bound "
		        "of %" PRIu64,
		        s->path, len, s->opt.max_bytes);
		return -ENOSPC;
	}
	sqlite3_bind_text(s->insert, 1, app, -1, SQLITE_STATIC);
	sqlite3_bind_int64(s->insert, 2, s->batch_ms);
	sqlite3_bind_blob64(s->insert, 3, data, len, SQLITE_STATIC);
	rc = sqlite3_step(s->insert);
	sqlite3_reset(s->insert);
	sqlite3_clear_bindings(s->insert);
	if (rc != SQLITE_DONE)
		return spoil_batch(s, db_fail(s, rc, "adding a record"));
	s->pend_records++;
	s->pend_bytes += (int64_t)len;
	if (ret_id)
		*ret_id = (uint64_t)sqlite3_last_insert_rowid(s->db);
	return 0;
}

int spool_commit(struct spool *s)
{
	int rc, r;

	if (!s->in_batch) {
		set_err(s, "spool %s: no batch open", s->path);
		return -EINVAL;
	}
	s->in_batch = false;
	if (s->batch_err) {
		r = s->batch_err;
		s->batch_err = 0;
		return r;
	}
	rc = sqlite3_step(s->commit);
	sqlite3_reset(s->commit);
	if (rc != SQLITE_DONE) {
		r = db_fail(s, rc, "committing a batch");
		drop_batch(s);
		return r;
	}
	s->records += (uint64_t)s->pend_records;
	s->bytes += (uint64_t)s->pend_bytes;
	s->pend_records = 0;
	s->pend_bytes = 0;
	return 0;
}

int spool_rollback(struct spool *s)
{
	if (!s->in_batch) {
		set_err(s, "spool %s: no batch open", s->path);
		return -EINVAL;
	}
	s->in_batch = false;
	s->batch_err = 0;
	drop_batch(s);
	return 0;
}

/*
 * Deletes one record; *ret_found says whether it was stored, *ret_len is
 * its payload size.
 * The size is read first by a lookup of its own: DELETE ... RETURNING
 * halved the rate of add+remove batches (it goes through a temporary
 * table), a second lookup of the same page costs little.
 */
static int delete_one(struct spool *s, uint64_t id, bool *ret_found,
                      uint64_t *ret_len)
{
	int rc;

	*ret_found = false;
	*ret_len = 0;
	if (id > INT64_MAX)
		return 0;
	sqlite3_bind_int64(s->length, 1, (sqlite3_int64)id);
	rc = sqlite3_step(s->length);
	if (rc == SQLITE_ROW)
		*ret_len = (uint64_t)sqlite3_column_int64(s->length, 0);
	sqlite3_reset(s->length);
	if (rc == SQLITE_DONE)
		return 0; /* not stored */
	if (rc != SQLITE_ROW)
		return db_fail(s, rc, "removing records");
	*ret_found = true;
	sqlite3_bind_int64(s->delete, 1, (sqlite3_int64)id);
	return step_done(s, s->delete, "removing records");
}

int spool_remove(struct spool *s, const uint64_t *ids, size_t n)
{
	bool own = !s->in_batch, found;
	uint64_t removed = 0, bytes = 0, len;
	int r;

	if (n == 0)
		return 0;
	if (!ids || n > INT32_MAX) {
		set_err(s, "spool %s: invalid arguments", s->path);
		return -EINVAL;
	}
	if (s->batch_err)
		return s->batch_err;
	if (own && (r = step_done(s, s->begin, "beginning a removal")) < 0)
		return r;
	for (size_t i = 0; i < n; i++) {
		if ((r = delete_one(s, ids[i], &found, &len)) < 0)
			goto fail;
		if (found) {
			removed++;
			bytes += len;
		}
	}
	if (!own) {
		s->pend_records -= (int64_t)removed;
		s->pend_bytes -= (int64_t)bytes;
		return (int)removed;
	}
	if ((r = step_done(s, s->commit, "committing a removal")) < 0)
		goto fail;
	s->records -= removed;
	s->bytes -= bytes;
	return (int)removed;
fail:
	if (own) {
		if (!sqlite3_get_autocommit(s->db)) {
			sqlite3_step(s->rollback);
			sqlite3_reset(s->rollback);
		}
		return r;
	}
	return spoil_batch(s, r);
}

int spool_load(struct spool *s, spool_record_fn fn, void *userdata)
{
	struct spool_record rec = {0};
	int rc, r = 0;

	if (s->in_batch || !fn) {
		set_err(s, "spool %s: cannot load inside a batch", s->path);
		return -EINVAL;
	}
	while ((rc = sqlite3_step(s->select)) == SQLITE_ROW) {
		rec.id = (uint64_t)sqlite3_column_int64(s->select, 0);
		rec.app = (const char *)sqlite3_column_text(s->select, 1);
		rec.created_ms = sqlite3_column_int64(s->select, 2);
		rec.data = sqlite3_column_blob(s->select, 3);
		rec.len = (size_t)sqlite3_column_bytes(s->select, 3);
		if (!rec.app || !rec.data) {
			/* NULL with a type we did not store: memory ran
			 * out, or the row is not ours */
			rc = sqlite3_errcode(s->db) == SQLITE_NOMEM
			             ? SQLITE_NOMEM
			             : SQLITE_CORRUPT;
			break;
		}
		if ((r = fn(&rec, userdata)) != 0)
			break;
	}
	sqlite3_reset(s->select);
	if (r != 0)
		return r;
	return rc == SQLITE_DONE ? 0 : db_fail(s, rc, "loading records");
}

static uint64_t file_size(const char *path)
{
	struct stat st = {0};

	return stat(path, &st) == 0 ? (uint64_t)st.st_size : 0;
}

void spool_get_stats(const struct spool *s, struct spool_stats *ret)
{
	*ret = (struct spool_stats){
	        .records = s->records,
	        .bytes = s->bytes,
	        .file_bytes = file_size(s->path),
	        .wal_bytes = file_size(s->wal_path),
	};
}

const char *spool_error(const struct spool *s)
{
	return s->err;
}

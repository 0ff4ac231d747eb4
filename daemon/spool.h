/*
 * The durable spool: accepted emits kept in an SQLite file (WAL mode) so
 * that they survive kill -9 of dsd, a crash or a reboot until the platform
 * confirms them.  Optional (`[queue] spool = PATH`); the in-memory queue
 * stays the working copy, the spool is what a restart reads back.
 *
 * A leaf: no event loop, no logging, no clocks but the wall-clock stamp of
 * each record.  Every failure returns a negative errno and leaves a text
 * for the log in spool_error() (spool_open() writes it into err).  See
 * docs/spool.md for the design and the loss window of each synchronous
 * setting.
 *
 * One file, one process: the file is locked exclusively while it is open,
 * so a second dsd on the same spool is refused (-EBUSY) rather than
 * delivering the same records twice.
 */
#ifndef DSD_SPOOL_H
#define DSD_SPOOL_H

#include <stddef.h>
#include <stdint.h>

struct spool;

/* When a committed batch reaches the disk (docs/spool.md has the loss
 * window of each). */
enum spool_sync {
	SPOOL_SYNC_NORMAL = 0, /* the default */
	SPOOL_SYNC_OFF,
	SPOOL_SYNC_FULL,
};

struct spool_options {
	enum spool_sync sync;
	/* Bounds, like the memory queue's: spool_add() past either gives
	 * -ENOSPC.  0 means no bound. */
	uint64_t max_records;
	uint64_t max_bytes; /* payload bytes (data), not the file's size */
	/* A cap on the database file itself (pages, overhead included),
	 * rounded down to whole pages; past it the spool behaves as on a
	 * full disk.  0 means no cap. */
	uint64_t max_file_bytes;
};

struct spool_stats {
	uint64_t records;    /* committed records */
	uint64_t bytes;      /* their payload bytes */
	uint64_t file_bytes; /* the database file's size on disk */
	uint64_t wal_bytes;  /* the write-ahead log's size (0 when none) */
};

/* One stored record, borrowed for the duration of the callback. */
struct spool_record {
	uint64_t id;        /* order of acceptance, never reused */
	const char *app;    /* the queue key the record was added with */
	const void *data;   /* the encoded frame */
	size_t len;         /* > 0 */
	int64_t created_ms; /* wall clock at spool_begin(), ms since epoch */
};

/* Return 0 to go on; anything else stops spool_load(), which returns it. */
typedef int (*spool_record_fn)(const struct spool_record *rec, void *userdata);

/* Parses "off", "normal" or "full"; -EINVAL otherwise. */
int spool_sync_from_string(const char *s, enum spool_sync *ret);
const char *spool_sync_to_string(enum spool_sync sync);

/*
 * Opens the spool at path, creating the file (mode 0600) and its table
 * when missing, and checks it (PRAGMA quick_check) before anything is
 * trusted.  opt NULL means the defaults (normal, no bounds).  Errors (text
 * in err): -EINVAL (bad options), -EACCES/-EROFS/-ENOENT and friends (the
 * file or its directory cannot be created or written), -EBADMSG (not a
 * database, or corrupt), -EBUSY (another process holds it), -ENOSPC (no
 * room for the WAL), -EIO, -ENOMEM.  The daemon then keeps serving from
 * memory.
 */
int spool_open(const char *path, const struct spool_options *opt,
               struct spool **ret, char *err, size_t errlen);
/* Rolls back an open batch and closes; NULL is a no-op. */
void spool_close(struct spool *s);

/*
 * Group commit.  spool_begin() opens a batch; spool_add() appends records
 * to it; spool_commit() makes the whole batch durable (per the sync
 * setting) in one transaction, so one fsync per batch, not per record.
 * The caller answers the apps only after spool_commit() returned 0.
 *
 * spool_add() copies app and data; *ret_id (optional) is the record's id.
 * Errors: -EINVAL (no batch open, len 0, app NULL or empty), -ENOSPC past
 * max_records/max_bytes (the batch is unharmed: refuse just this record),
 * and any failure of the file itself (disk full -ENOSPC, -EIO, ...), after
 * which the batch is lost: further adds fail and spool_commit() returns the
 * same error.  So the caller's rule is simple: a record whose add failed
 * is refused; when spool_commit() fails, every record of the batch is.
 *
 * spool_commit() returns 0 or a negative errno (the batch rolled back; the
 * spool is as before spool_begin()).  spool_rollback() drops the batch.
 * -EINVAL from spool_begin() when a batch is already open; from
 * spool_commit()/spool_rollback() when none is.
 */
int spool_begin(struct spool *s);
int spool_add(struct spool *s, const char *app, const void *data, size_t len,
              uint64_t *ret_id);
int spool_commit(struct spool *s);
int spool_rollback(struct spool *s);

/*
 * Deletes confirmed records, in any order, in one transaction.  Ids that
 * are not stored are skipped (a confirmation seen twice is harmless).
 * Inside an open batch the deletions join it and become durable with
 * spool_commit(); otherwise they are committed here.  Returns the number
 * of records deleted, or a negative errno (nothing deleted).
 */
int spool_remove(struct spool *s, const uint64_t *ids, size_t n);

/*
 * Calls fn for every committed record in id order (acceptance order; per
 * app, that app's order).  For start-up, outside a batch.  Returns 0, fn's
 * non-zero value, or a negative errno.
 */
int spool_load(struct spool *s, spool_record_fn fn, void *userdata);

void spool_get_stats(const struct spool *s, struct spool_stats *ret);

/* The text of the last failure ("" when none); valid until the next call. */
const char *spool_error(const struct spool *s);

#endif

/*
 * Files read without blocking: a FIFO, a device or a directory named where
 * a file is expected is refused at once ("not a regular file"), never
 * waited on, and a file is read whole up to a size cap.
 */
#ifndef DSD_READFILE_H
#define DSD_READFILE_H

#include <stddef.h>
#include <sys/stat.h>

/* An fd open for reading on a regular file (*ret_st filled), or -EINVAL
 * (not a regular file) or another -errno. */
int readfile_open(const char *path, struct stat *ret_st);
/* The words for readfile_open()'s and readfile_read()'s errors. */
const char *readfile_error(int r);
/* The whole file into a new NUL-terminated buffer of *ret_size bytes
 * holding *ret_len of text: 0, -EINVAL, -EFBIG (over max), -ENOMEM, -errno. */
int readfile_read(const char *path, size_t max, char **ret_buf, size_t *ret_len,
                  size_t *ret_size);
/* Wipes (it may have held a secret) and frees a buffer of size bytes. */
void readfile_free(char *buf, size_t size);

#endif

/*
 * Fuzzes the dsd.conf parser: the input is the text of one config file,
 * given to config_load_buffer() as if it were DIR/dsd.conf.  The parser
 * reads what an administrator (or a package's drop-in) wrote, and a
 * reload runs it inside the live daemon: it must refuse anything broken
 * with a message, never crash or leak.
 *
 * DIR is a scratch directory made once, holding the files a config may
 * name relatively: auth.json (valid credentials), bad.json (broken JSON),
 * ca.pem (a PEM marker), notpem.pem, and a FIFO fifo (which must be refused
 * at once, never waited on).  All of them hold SECRET, which must never
 * appear in an error message unless the input itself contains it.
 *
 * Beyond "does not crash":
 * - the result is 0, -EINVAL or -ENOMEM; an error comes with a message
 *   that starts with the file's path;
 * - a loaded config holds what config.h promises (auth_json is a JSON
 *   object, the socket path fits a sockaddr_un, overflow is one of the
 *   two policies) and config_finish() succeeds exactly when url is set;
 * - the same bytes written to DIR/dsd.conf and read by config_load_file()
 *   give the same result, the same message and the same values: the file
 *   reader adds nothing to the buffer parser.
 */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdbool.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "config.h"
#include "fuzz.h"

/*
 * Starts with a letter that no escape in an error message ends with
 * (log_escape() writes \xNN with lower-case hex, \n, \t, ...) and holds no
 * backslash: so it can only be in a message if the input holds it.  The
 * first marker, "fuzz-S3cr3t", was formed by the "ff" of "\xff" followed by
 * "uzz-S3cr3t" from the input (corpus: bad-escaped-bytes-in-key).
 */
#define SECRET "Qz-S3cr3t-Z"

static char dir[64];
static char conf_path[128];

static void put_file(const char *name, const char *text)
{
	char path[128];
	int fd;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	FUZZ_CHECK(fd >= 0);
	FUZZ_CHECK(write(fd, text, strlen(text)) == (ssize_t)strlen(text));
	close(fd);
}

static const char *const scratch_files[] = {
        "auth.json", "bad.json", "ca.pem", "notpem.pem", "fifo", "dsd.conf",
};

/* At exit (libFuzzer exits too when its time is up): leave no scratch. */
static void clean_up(void)
{
	char path[128];

	for (size_t i = 0; i < sizeof(scratch_files) / sizeof(*scratch_files);
	     i++) {
		snprintf(path, sizeof(path), "%s/%s", dir, scratch_files[i]);
		unlink(path);
	}
	rmdir(dir);
}

static void set_up_once(void)
{
	char fifo[128];

	if (dir[0])
		return;
	snprintf(dir, sizeof(dir), "/tmp/dsd-fuzz-config-XXXXXX");
	FUZZ_CHECK(mkdtemp(dir));
	snprintf(conf_path, sizeof(conf_path), "%s/dsd.conf", dir);
	put_file("auth.json", "{\"username\":\"" SECRET "\"}");
	put_file("bad.json", "{\"" SECRET "\": ");
	put_file("ca.pem", "-----BEGIN CERTIFICATE-----\n" SECRET "\n");
	put_file("notpem.pem", SECRET "\n");
	snprintf(fifo, sizeof(fifo), "%s/fifo", dir);
	FUZZ_CHECK(mkfifo(fifo, 0600) == 0 || errno == EEXIST);
	atexit(clean_up);
	/* Only the config directory is a place to find credentials. */
	unsetenv("CREDENTIALS_DIRECTORY");
}

static bool str_eq(const char *a, const char *b)
{
	if (!a || !b)
		return a == b;
	return strcmp(a, b) == 0;
}

static bool config_eq(const struct dsd_config *a, const struct dsd_config *b)
{
	return str_eq(a->url, b->url) && str_eq(a->auth_json, b->auth_json) &&
	       str_eq(a->auth_file, b->auth_file) &&
	       str_eq(a->ca_file, b->ca_file) &&
	       str_eq(a->socket_path, b->socket_path) &&
	       a->reconnect_interval_increment ==
	               b->reconnect_interval_increment &&
	       a->max_reconnect_interval == b->max_reconnect_interval &&
	       a->max_reconnect_attempts == b->max_reconnect_attempts &&
	       a->heartbeat_interval == b->heartbeat_interval &&
	       a->restart_after_error == b->restart_after_error &&
	       a->max_clients == b->max_clients &&
	       a->max_subscriptions_per_client ==
	               b->max_subscriptions_per_client &&
	       a->client_buffer == b->client_buffer &&
	       a->queue_max_messages == b->queue_max_messages &&
	       a->queue_max_bytes == b->queue_max_bytes &&
	       a->queue_overflow == b->queue_overflow;
}

static void check_loaded(struct dsd_config *c)
{
	struct sockaddr_un sun;
	json_t *j;
	char err[512] = "";

	FUZZ_CHECK(c->auth_json);
	j = json_loads(c->auth_json, 0, NULL);
	FUZZ_CHECK(j && json_is_object(j));
	json_decref(j);
	FUZZ_CHECK(c->socket_path);
	FUZZ_CHECK(strlen(c->socket_path) < sizeof(sun.sun_path));
	FUZZ_CHECK(c->queue_overflow == QUEUE_OVERFLOW_REJECT ||
	           c->queue_overflow == QUEUE_OVERFLOW_DROP_OLDEST);
	FUZZ_CHECK((config_finish(c, err, sizeof(err)) == 0) ==
	           (c->url != NULL));
	FUZZ_CHECK(c->url || strstr(err, "no url"));
}

static void check_error(int r, const char *err, const uint8_t *data,
                        size_t size)
{
	FUZZ_CHECK(r == -EINVAL || r == -ENOMEM);
	FUZZ_CHECK(strncmp(err, conf_path, strlen(conf_path)) == 0);
	if (!memmem(data, size, SECRET, strlen(SECRET)))
		FUZZ_CHECK(!strstr(err, SECRET));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct dsd_config a = {0}, b = {0};
	char err_a[512] = "", err_b[512] = "";
	int ra, rb, fd;

	/* Far past CONFIG_LINE_MAX; bigger inputs only slow the search. */
	if (size > 64 * 1024)
		return 0;
	set_up_once();

	FUZZ_CHECK(config_init(&a) == 0);
	ra = config_load_buffer(&a, conf_path, (const char *)data, size, err_a,
	                        sizeof(err_a));
	if (ra == 0)
		check_loaded(&a);
	else
		check_error(ra, err_a, data, size);

	/* The same bytes through the file reader. */
	fd = open(conf_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	FUZZ_CHECK(fd >= 0);
	FUZZ_CHECK(size == 0 || write(fd, data, size) == (ssize_t)size);
	close(fd);
	FUZZ_CHECK(config_init(&b) == 0);
	rb = config_load_file(&b, conf_path, err_b, sizeof(err_b));
	FUZZ_CHECK(ra == rb);
	if (ra == 0) {
		/* check_loaded() ran config_finish(), which changes nothing. */
		FUZZ_CHECK(config_eq(&a, &b));
	} else {
		FUZZ_CHECK(strcmp(err_a, err_b) == 0);
	}

	config_free(&a);
	config_free(&b);
	/* Safe twice (config.h). */
	config_free(&a);
	return 0;
}

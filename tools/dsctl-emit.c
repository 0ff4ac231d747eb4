/*
 * `dsctl emit`: where the event's data comes from, and what is said about
 * each event.
 *
 * The data is, in this order: the argument after the name; the file of -f
 * ("-" is stdin); nothing with --no-data; else standard input, unless it
 * is a terminal.  A terminal means nobody piped anything in, so the event
 * has no data, as it always had (an interactive `dsctl emit ping` must not
 * sit waiting for Ctrl-D).  A pipe or a file that turns out to be empty
 * (or only white space) also means no data: `dsctl emit x </dev/null`, cron
 * and systemd units behave like the terminal case.
 *
 * With -l every line is an event of its own and is emitted as soon as it
 * has been read, so `tail -f log | dsctl emit -l x` streams.  Blank lines
 * are skipped.  With --raw the text becomes a JSON string instead of being
 * parsed (one trailing newline of the whole input is dropped, as the
 * shell's $(...) does).
 *
 * JSON is checked here, with the same parser and flags libdsipc and dsd
 * use, before dsd is asked, so an error can name the line and column of
 * the input instead of a byte offset.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dsctl.h"

/* White space around a JSON value, and a line's own end. */
static bool blank(const char *s, size_t len)
{
	size_t i;

	for (i = 0; i < len; i++)
		if (!strchr(" \t\r\n", s[i]))
			return false;
	return true;
}

/*
 * The JSON text to send for one piece of input, malloc'd, or NULL with an
 * error printed ("where" names the input: "stdin", "line 3", ...).
 */
static char *to_json(const struct dsctl_emit *o, const char *where,
                     const char *text, size_t len)
{
	json_error_t e;
	json_t *v;
	char *out;

	if (o->raw) {
		v = json_stringn(text, len);
		if (!v) {
			fprintf(stderr,
			        "dsctl: emit: %s: --raw text is not valid "
			        "UTF-8\n",
			        where);
			return NULL;
		}
		out = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
		json_decref(v);
		if (!out)
			fprintf(stderr, "dsctl: emit: out of memory\n");
		return out;
	}
	v = json_loadb(text, len, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, &e);
	if (!v) {
		if (o->lines)
			fprintf(stderr,
			        "dsctl: emit: %s: invalid JSON at column %d: "
			        "%s\n",
			        where, e.column, e.text);
		else
			fprintf(stderr,
			        "dsctl: emit: %s: invalid JSON at line %d, "
			        "column %d: %s\n",
			        where, e.line, e.column, e.text);
		return NULL;
	}
	json_decref(v);
	/* Sent as given: dsd checks it again and the platform gets it as is. */
	out = strndup(text, len);
	if (!out)
		fprintf(stderr, "dsctl: emit: out of memory\n");
	return out;
}

/*
 * Emits one event; returns an exit code.  what names it in an error
 * ("emit", "emit: line 3"), prefix in the result ("", "line 3: ").
 */
static int emit_one(dsipc *c, const char *name, const char *json,
                    const char *what, const char *prefix)
{
	dsipc_emit_result res;
	int r;

	r = dsipc_emit_sync(c, name, json, DSCTL_REQUEST_TIMEOUT_MS, &res);
	if (r < 0)
		return dsctl_fail(c, what, r);
	printf("%s%s\n", prefix,
	       res == DSIPC_EMIT_CONFIRMED ? "confirmed"
	       : res == DSIPC_EMIT_QUEUED  ? "queued"
	                                   : "sent");
	return fflush(stdout) == 0 ? EXIT_OK : EXIT_FAILED;
}

/* The input named by -f, or stdin; NULL with an error printed. */
static FILE *open_input(const struct dsctl_emit *o)
{
	FILE *f;

	if (!o->file || strcmp(o->file, "-") == 0)
		return stdin;
	f = fopen(o->file, "re");
	if (!f)
		fprintf(stderr, "dsctl: emit: cannot open %s: %s\n", o->file,
		        strerror(errno));
	return f;
}

/*
 * The whole input, up to a little more than the data limit (more cannot
 * be sent anyway).  Returns 0, -EMSGSIZE or -errno.
 */
static int read_all(FILE *f, char **ret_buf, size_t *ret_len)
{
	size_t cap = DSIPC_MAX_DATA + 64, len = 0, n;
	char *buf = malloc(cap + 1);

	if (!buf)
		return -ENOMEM;
	while ((n = fread(buf + len, 1, cap + 1 - len, f)) > 0) {
		len += n;
		if (len > cap) {
			free(buf);
			return -EMSGSIZE;
		}
	}
	if (ferror(f)) {
		int r = errno ? -errno : -EIO;

		free(buf);
		return r;
	}
	buf[len] = '\0';
	*ret_buf = buf;
	*ret_len = len;
	return 0;
}

/* -l: one event per line, each one reported; 1 if any failed. */
static int emit_lines(dsipc *c, const struct dsctl_emit *o, FILE *in)
{
	char *line = NULL, where[40], what[48], prefix[48];
	size_t cap = 0;
	ssize_t n;
	unsigned long no = 0;
	int code = EXIT_OK;

	while ((n = getline(&line, &cap, in)) >= 0) {
		size_t len = (size_t)n;
		char *json;
		int r;

		no++;
		if (len > 0 && line[len - 1] == '\n')
			len--;
		if (len > 0 && line[len - 1] == '\r')
			len--;
		if (blank(line, len))
			continue;
		snprintf(where, sizeof(where), "line %lu", no);
		json = to_json(o, where, line, len);
		if (!json) {
			code = EXIT_FAILED;
			continue;
		}
		snprintf(what, sizeof(what), "emit: line %lu", no);
		snprintf(prefix, sizeof(prefix), "line %lu: ", no);
		r = emit_one(c, o->name, json, what, prefix);
		free(json);
		if (r == EXIT_UNREACHABLE) {
			code = r; /* the rest cannot be sent either */
			break;
		}
		if (r != EXIT_OK)
			code = EXIT_FAILED;
	}
	if (ferror(in)) {
		fprintf(stderr, "dsctl: emit: reading %s: %s\n",
		        o->file ? o->file : "stdin", strerror(errno));
		code = code == EXIT_OK ? EXIT_FAILED : code;
	}
	free(line);
	return code;
}

/* The one event's data: NULL for none; returns an exit code. */
static int whole_input(const struct dsctl_emit *o, char **ret_json)
{
	const char *where = o->file && strcmp(o->file, "-") ? o->file : "stdin";
	char *buf = NULL;
	size_t len = 0;
	FILE *in;
	int r;

	*ret_json = NULL;
	if (o->data) /* the argument */
		return (*ret_json = to_json(o, "argument", o->data,
		                            strlen(o->data)))
		               ? EXIT_OK
		               : EXIT_FAILED;
	if (o->no_data)
		return EXIT_OK;
	if (!o->file && isatty(STDIN_FILENO)) {
		if (!o->raw)
			return EXIT_OK;
		fprintf(stderr, "dsctl: emit: --raw needs text: an argument, "
		                "-f FILE or standard input\n");
		return EXIT_USAGE;
	}
	in = open_input(o);
	if (!in)
		return EXIT_FAILED;
	r = read_all(in, &buf, &len);
	if (in != stdin)
		fclose(in);
	if (r < 0) {
		if (r == -EMSGSIZE)
			fprintf(stderr,
			        "dsctl: emit: %s: data larger than %d bytes\n",
			        where, DSIPC_MAX_DATA);
		else
			fprintf(stderr, "dsctl: emit: reading %s: %s\n", where,
			        strerror(-r));
		return EXIT_FAILED;
	}
	if (o->raw) {
		if (len > 0 && buf[len - 1] == '\n')
			len--;
		if (len > 0 && buf[len - 1] == '\r')
			len--;
	} else if (blank(buf, len)) {
		free(buf);
		return EXIT_OK; /* empty input: no data */
	}
	*ret_json = to_json(o, where, buf, len);
	free(buf);
	return *ret_json ? EXIT_OK : EXIT_FAILED;
}

int dsctl_emit_run(const char *socket, const struct dsctl_emit *o)
{
	char *json = NULL;
	FILE *in = NULL;
	dsipc *c = NULL;
	int r;

	/* Read and check before connecting: a bad input needs no dsd. */
	if (o->lines) {
		in = open_input(o);
		if (!in)
			return EXIT_FAILED;
	} else {
		r = whole_input(o, &json);
		if (r != EXIT_OK)
			return r;
	}
	r = dsctl_connect(socket, &c);
	if (r == EXIT_OK)
		r = o->lines ? emit_lines(c, o, in)
		             : emit_one(c, o->name, json, "emit", "");
	if (in && in != stdin)
		fclose(in);
	free(json);
	dsipc_free(c);
	return r;
}

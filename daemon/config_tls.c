/*
 * [platform] certFile, keyFile and proxy: what dsd needs to reach a
 * platform that is not on an open network (see dsd.conf(5)).
 *
 * certFile and keyFile are looked up like authFile: a relative name in
 * $CREDENTIALS_DIRECTORY (systemd's LoadCredential=) first, then next to
 * the file that names it.  When a file is read the paths are checked
 * (exists, readable, a regular file) with its line; once all files are
 * read config_check_client_cert() checks the pair itself.  The key's bytes
 * are wiped after use and never put in a message; neither is the proxy's
 * password.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"
#include "config_parser.h"
#include "proxy_url.h"
#include "readfile.h"
#include "tls_pair.h"

/* A certificate chain or a key is a few KiB; this is generous. */
#define PEM_FILE_MAX (1024 * 1024)

static int path_join(struct parser *p, const char *dir, const char *rel,
                     char **ret)
{
	char q[256];
	int n;

	n = rel[0] == '/' ? asprintf(ret, "%s", rel)
	                  : asprintf(ret, "%s/%s", dir, rel);
	if (n < 0) {
		*ret = NULL;
		return config_perr_nomem(p);
	}
	if (n >= PATH_MAX) {
		free(*ret);
		*ret = NULL;
		return config_perr(p, "path too long: \"%s\"",
		                   config_quote(rel, q, sizeof(q)));
	}
	return 0;
}

/* Where a relative credential is: $CREDENTIALS_DIRECTORY if it is there. */
static int credential_path(struct parser *p, const char *value, char **ret)
{
	const char *creds = getenv("CREDENTIALS_DIRECTORY");
	int r;

	if (value[0] != '/' && creds && *creds) {
		r = path_join(p, creds, value, ret);
		if (r < 0)
			return r;
		if (access(*ret, F_OK) == 0)
			return 0;
		free(*ret);
		*ret = NULL;
	}
	return path_join(p, p->dir, value, ret);
}

/* certFile and keyFile: the path, resolved, of a readable regular file. */
int config_parse_pem_path(struct parser *p, const struct config_item *it,
                          const char *value, struct dsd_config *c)
{
	struct stat st;
	char *path = NULL, q[256];
	int fd, r;

	r = credential_path(p, value, &path);
	if (r < 0)
		return r;
	fd = readfile_open(path, &st);
	if (fd < 0) {
		r = config_perr(p, "%s \"%s\": %s", it->key,
		                config_quote(path, q, sizeof(q)),
		                readfile_error(fd));
		free(path);
		return r;
	}
	close(fd);
	free(*(char **)config_field(c, it));
	*(char **)config_field(c, it) = path;
	return 0;
}

int config_parse_proxy(struct parser *p, const struct config_item *it,
                       const char *value, struct dsd_config *c)
{
	struct proxy_url u;
	const char *why = NULL;
	char **field = config_field(c, it);

	/* The value may hold a password: it is never quoted back. */
	if (proxy_url_parse(value, &u, &why) < 0)
		return config_perr(p,
		                   "%s: %s (the form is "
		                   "http://[user:password@]host:port)",
		                   it->key, why);
	proxy_url_clear(&u);
	if (*field)
		explicit_bzero(*field, strlen(*field));
	free(*field);
	*field = strdup(value);
	if (!*field)
		return config_perr_nomem(p);
	return 0;
}

static int read_pem(const char *key, const char *path, char **ret_buf,
                    size_t *ret_len, size_t *ret_size, char *err, size_t errlen)
{
	char q[256];
	int r;

	r = readfile_read(path, PEM_FILE_MAX, ret_buf, ret_len, ret_size);
	if (r == -ENOMEM) {
		config_set_err(err, errlen, "out of memory");
		return r;
	}
	if (r < 0) {
		config_set_err(err, errlen, "%s \"%s\": %s", key,
		               config_quote(path, q, sizeof(q)),
		               r == -EFBIG ? "larger than 1 MiB"
		                           : readfile_error(r));
		return -EINVAL;
	}
	return 0;
}

int config_check_client_cert(struct dsd_config *c, char *err, size_t errlen)
{
	char *cert = NULL, *key = NULL, qc[256], qk[256];
	size_t cert_len = 0, cert_size = 0, key_len = 0, key_size = 0;
	const char *why = NULL;
	int r;

	if (!c->cert_file && !c->key_file)
		return 0;
	if (!c->cert_file || !c->key_file) {
		config_set_err(err, errlen,
		               "[platform] %s without %s: a client "
		               "certificate needs both",
		               c->cert_file ? "certFile" : "keyFile",
		               c->cert_file ? "keyFile" : "certFile");
		return -EINVAL;
	}
	r = read_pem("certFile", c->cert_file, &cert, &cert_len, &cert_size,
	             err, errlen);
	if (r == 0)
		r = read_pem("keyFile", c->key_file, &key, &key_len, &key_size,
		             err, errlen);
	if (r == 0) {
		r = tls_pair_check(cert, cert_len, key, key_len,
		                   c->client_cert_digest, &why);
		if (r == -ENOMEM)
			config_set_err(err, errlen, "out of memory");
		else if (r < 0)
			config_set_err(
			        err, errlen,
			        "certFile \"%s\", keyFile \"%s\": %s",
			        config_quote(c->cert_file, qc, sizeof(qc)),
			        config_quote(c->key_file, qk, sizeof(qk)), why);
	}
	readfile_free(cert, cert_size);
	readfile_free(key, key_size);
	return r;
}

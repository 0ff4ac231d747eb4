/*
 * What every value parser shares (config_parser.h): errors as
 * "FILE:LINE: message", the field a table row names, strings and digits.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config_parser.h"
#include "log.h"

const char *config_quote(const char *s, char *buf, size_t buflen)
{
	return log_escape(s, strlen(s), buf, buflen);
}

void config_set_err(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (!err || errlen == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

/* "FILE:LINE: message"; returns -EINVAL for the caller to pass up. */
int config_perr(struct parser *p, const char *fmt, ...)
{
	char msg[512], file[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	config_set_err(p->err, p->errlen, "%s:%u: %s",
	               config_quote(p->path, file, sizeof(file)), p->line, msg);
	return -EINVAL;
}

int config_perr_nomem(struct parser *p)
{
	config_perr(p, "out of memory");
	return -ENOMEM;
}

void *config_field(struct dsd_config *c, const struct config_item *it)
{
	return (char *)c + it->offset;
}

int config_set_string(struct parser *p, char **field, const char *value)
{
	char *s = strdup(value);

	if (!s)
		return config_perr_nomem(p);
	free(*field);
	*field = s;
	return 0;
}

/* Plain decimal digits only: no sign, no spaces, no suffixes. */
int config_parse_digits(const char *s, uint64_t *ret)
{
	uint64_t v = 0;

	if (!*s)
		return -EINVAL;
	for (; *s; s++) {
		if (*s < '0' || *s > '9')
			return -EINVAL;
		if (v > (UINT64_MAX - (uint64_t)(*s - '0')) / 10)
			return -ERANGE;
		v = v * 10 + (uint64_t)(*s - '0');
	}
	*ret = v;
	return 0;
}

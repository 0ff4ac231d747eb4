#include <stdio.h>

#include <jansson.h>

#include "json_check.h"

bool json_check(const char *text, size_t len, char *err, size_t errlen)
{
	json_error_t e;
	json_t *v = json_loadb(text, len,
	                       JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, &e);

	if (v == NULL) {
		snprintf(err, errlen, "%s (at byte %d)", e.text, e.position);
		return false;
	}
	json_decref(v);
	return true;
}

/*
 * Differential fuzz target for the JSON rule (libdsipc/json_check.c): the
 * single-pass validator must accept exactly what jansson accepts with the
 * flags the rule names (JSON_DECODE_ANY | JSON_REJECT_DUPLICATES).  jansson
 * is the reference; any disagreement aborts, with both verdicts printed.
 *
 * One known difference, on purpose: jansson 2.14 silently drops a NUL byte
 * that directly follows a number or a literal ("3\0" is valid to it: its
 * lexer puts the byte back into a buffer where NUL means "empty").  A NUL
 * byte is never valid outside a string (RFC 8259) and never raw inside
 * one, so json_check must refuse every text holding one; for those texts
 * that is what is checked instead of jansson's verdict.
 *
 * Each input is judged as it is, and also wrapped once in an array and in
 * an object ("[" input "]", {"k":input}), so that mutations of scalars also
 * reach the container and key paths.
 */
#include <jansson.h>
#include <string.h>

#include "fuzz.h"
#include "json_check.h"

static bool reference(const char *text, size_t len)
{
	json_error_t e;
	json_t *v = json_loadb(text, len,
	                       JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, &e);

	if (v == NULL)
		return false;
	json_decref(v);
	return true;
}

static void compare(const char *text, size_t len)
{
	char err[200] = "";
	bool fast = json_check(text, len, err, sizeof(err));
	bool ref;

	if (memchr(text, '\0', len) != NULL) {
		FUZZ_CHECK(!fast && err[0] != '\0');
		return;
	}
	ref = reference(text, len);

	if (fast != ref) {
		fprintf(stderr,
		        "json_check says %s (%s), jansson says %s, for %zu "
		        "bytes: %.*s\n",
		        fast ? "valid" : "invalid", err,
		        ref ? "valid" : "invalid", len,
		        (int)(len > 400 ? 400 : len), text);
		abort();
	}
	FUZZ_CHECK(fast || err[0] != '\0');
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *w;

	compare((const char *)data, size);
	w = malloc(size + 8);
	FUZZ_CHECK(w != NULL);
	w[0] = '[';
	memcpy(w + 1, data, size);
	w[size + 1] = ']';
	compare(w, size + 2);
	memcpy(w, "{\"k\":", 5);
	memcpy(w + 5, data, size);
	w[size + 5] = '}';
	compare(w, size + 6);
	free(w);
	return 0;
}

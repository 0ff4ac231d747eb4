/*
 * Prints every key the configuration parser accepts, one "section.key" a
 * line, straight from config_keys(): the documentation test compares the
 * man page with what the parser really takes, not with a copy of its table.
 */
#include <stdio.h>

#include "config.h"

int main(void)
{
	const char *const *k = config_keys();

	for (; *k; k++)
		if (puts(*k) < 0)
			return 1;
	return fflush(stdout) == 0 ? 0 : 1;
}

/*
 * Fuzz target for what dsd reads from a ws:// server itself: the answer to
 * the WebSocket upgrade (ws_upgrade_answer()) and the frames after it
 * (ws_deframe.c).  Contracts checked: no crash or overread; an accepted
 * answer's head is within the input; and the deframer's callbacks and
 * verdict are the same whether the bytes come whole or split, at a point
 * the input's first bytes choose, into pieces of any size; after an error
 * the reader reads nothing more.
 */
#include <string.h>

#include "fuzz.h"
#include "ws_deframe.h"
#include "ws_upgrade.h"

/* A digest of every callback: what, length and a hash of the bytes. */
struct trace {
	uint64_t h;
	unsigned calls;
};

static int record(void *ctx, enum ws_what what, const uint8_t *data, size_t len)
{
	struct trace *t = ctx;

	t->h = t->h * 1000003u ^ (uint64_t)what ^ (uint64_t)len << 8;
	for (size_t i = 0; i < len; i++)
		t->h = t->h * 31 + data[i];
	t->calls++;
	/* A close frame ends the reading, as dsd does. */
	return what == WS_CLOSE ? 1 : 0;
}

static int run(const uint8_t *data, size_t size, size_t max, size_t step,
               struct trace *t, uint16_t *code)
{
	struct ws_deframe d;
	size_t off = 0;
	int r = 0;

	ws_deframe_init(&d, max);
	while (off < size && r == 0) {
		size_t n = size - off < step ? size - off : step;

		r = ws_deframe_feed(&d, data + off, n, record, t);
		off += n;
	}
	/* A spent reader stays spent: the same error, no callback. */
	if (r < 0 && size > 0) {
		unsigned calls = t->calls;

		FUZZ_CHECK(ws_deframe_feed(&d, data, size, record, t) == r);
		FUZZ_CHECK(t->calls == calls);
	}
	*code = d.close_code;
	ws_deframe_free(&d);
	return r;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct trace whole = {0}, split = {0};
	uint16_t code_whole = 0, code_split = 0;
	size_t max, step;
	char why[200];
	int r1, r2;

	/* As an answer to the upgrade. */
	r1 = ws_upgrade_answer((const char *)data, size,
	                       "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=", why,
	                       sizeof(why));
	FUZZ_CHECK(r1 <= (int)size);
	FUZZ_CHECK(r1 >= 0 || why[0] != '\0');

	/* As frames: the first two bytes choose the message bound and the
	 * size of the pieces. */
	if (size < 2)
		return 0;
	max = (size_t)data[0] * 64 + 1;
	step = (size_t)data[1] % 17 + 1;
	data += 2;
	size -= 2;
	r1 = run(data, size, max, size ? size : 1, &whole, &code_whole);
	r2 = run(data, size, max, step, &split, &code_split);
	FUZZ_CHECK(r1 == r2);
	FUZZ_CHECK(whole.calls == split.calls);
	FUZZ_CHECK(whole.h == split.h);
	FUZZ_CHECK(code_whole == code_split);
	FUZZ_CHECK(r1 >= 0 || code_whole == 1002 || code_whole == 1009);
	return 0;
}

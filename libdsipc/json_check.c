/*
 * The JSON rule for event data (json_check.h), in one pass that allocates
 * nothing: RFC 8259 grammar, UTF-8, escapes and the duplicate-key rule at
 * once, with an explicit stack instead of recursion.
 *
 * It accepts exactly what jansson's json_loadb(JSON_DECODE_ANY |
 * JSON_REJECT_DUPLICATES) accepts: jansson stays the reference, a
 * differential fuzz target (tests/fuzz/fuzz-json.c) and the unit tests
 * compare the two.  jansson's limits are part of that rule, so they are
 * kept here too:
 *   - nesting: at most JSON_PARSER_MAX_DEPTH (2048) values deep, counting
 *     the innermost scalar;
 *   - an integer (no fraction, no exponent) must fit in 64 bits;
 *   - a number with a fraction or exponent must not round to infinity as a
 *     double: decided exactly by comparing its digits with the smallest
 *     decimal that does, 2^1024 - 2^970 (no strtod, so no locale);
 *   - \u0000 is refused in every string, and a lone surrogate escape too;
 *   - whitespace is space, tab, CR and LF only.
 *
 * Duplicate keys: the keys of the objects being read sit on a small stack
 * (KEYS_MAX); a key is compared by its raw bytes, which is exact as long
 * as no key has an escape.  A key with an escape, or more keys open at
 * once than the stack holds, hands the duplicate question to jansson,
 * once the text has passed everything else: slower, still exact, and rare
 * for event data.
 */
#include <jansson.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "json_check.h"

#define MAX_DEPTH 2048 /* jansson's JSON_PARSER_MAX_DEPTH */
#define KEYS_MAX  128  /* keys (and object markers) tracked at once */

/* The smallest decimal that rounds to infinity as a double: 2^1024 -
 * 2^970, 309 digits (the first at 10^308). */
static const char overflow_digits[] =
        "17976931348623158079372897140530341507993413271003782693617377898"
        "04449682927647509466490179775872070963302864166928879109465555478"
        "51940402630657488671505820681908902000708383676273854845817711531"
        "76447573027006985557136695962284291481986083493647529271907416844"
        "4365510704342711559699508093042880177904174497792";

struct key {
	uint32_t off, len; /* len == UINT32_MAX: an object starts here */
	uint32_t hash;
};

struct jc {
	const uint8_t *start, *p, *end;
	const char *why;      /* set on failure */
	size_t depth;         /* containers open */
	uint64_t *kind;       /* bit set: that level is an object */
	bool keys_by_jansson; /* duplicates are decided by jansson */
	size_t nkeys;
	struct key *keys; /* KEYS_MAX */
};

static bool fail(struct jc *c, const char *why)
{
	if (c->why == NULL)
		c->why = why;
	return false;
}

static void skip_ws(struct jc *c)
{
	/* Most calls find no whitespace at all: every whitespace byte is
	 * at most ' ', so one comparison says so. */
	if (c->p<c->end && * c->p> ' ')
		return;
	while (c->p < c->end && (*c->p == ' ' || *c->p == '\n' ||
	                         *c->p == '\r' || *c->p == '\t'))
		c->p++;
}

static bool is_object(const struct jc *c)
{
	size_t l = c->depth - 1;

	return (c->kind[l / 64] >> (l % 64)) & 1;
}

/* ---- strings ---- */

#define ONES  0x0101010101010101ull
#define HIGHS 0x8080808080808080ull

/* Non-zero when one of the 8 bytes of w is a quote, a backslash, a
 * control character or not ASCII; the lowest flagged byte is always a
 * real one (borrows only run upwards). */
static uint64_t special8(uint64_t w)
{
	uint64_t q = w ^ (ONES * '"'), b = w ^ (ONES * '\\');

	return ((q - ONES) & ~q) | ((b - ONES) & ~b) |
	       ((w - ONES * 0x20) & ~w) | w;
}

#ifdef __SSE2__
/* Bit k set: byte k of the 16 at p is one that special8() would flag.  A
 * signed comparison with ' ' flags the control characters and the
 * non-ASCII bytes at once. */
static unsigned special16(const uint8_t *p)
{
	const __m128i quote = _mm_set1_epi8('"'), bslash = _mm_set1_epi8('\\'),
	              space = _mm_set1_epi8(' ');
	__m128i v = _mm_loadu_si128((const __m128i *)(const void *)p);
	__m128i hit = _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(v, quote),
	                                        _mm_cmpeq_epi8(v, bslash)),
	                           _mm_cmplt_epi8(v, space));

	return (unsigned)_mm_movemask_epi8(hit);
}
#endif

/* The first byte from p on that special8() would flag, end when there is
 * none, or (short texts only) a point where fewer than 8 bytes are left,
 * from which the caller goes on byte by byte.  With SSE2 (every x86-64) 16
 * bytes at a time, and the last few bytes as the text's last 16 (the bytes
 * before p in them are masked off) when the text has that many. */
static const uint8_t *skip_plain(const uint8_t *p, const uint8_t *start,
                                 const uint8_t *end)
{
	uint64_t w, m;

#ifdef __SSE2__
	while (end - p >= 16) {
		unsigned bits = special16(p);

		if (bits != 0)
			return p + __builtin_ctz(bits);
		p += 16;
	}
	if (p < end && end - start >= 16) {
		unsigned bits = special16(end - 16) >> (16 - (end - p));

		return bits != 0 ? p + __builtin_ctz(bits) : end;
	}
#else
	(void)start;
#endif
	while (end - p >= 8) {
		memcpy(&w, p, 8);
		m = special8(w) & HIGHS;
		if (m != 0)
			return p + __builtin_ctzll(m) / 8;
		p += 8;
	}
	return p;
}

static int hexval(uint8_t h)
{
	if (h >= '0' && h <= '9')
		return h - '0';
	h |= 0x20;
	if (h >= 'a' && h <= 'f')
		return h - 'a' + 10;
	return -1;
}

/* Four hex digits at p (p + 4 <= end checked by the caller). */
static long hex4(const uint8_t *p)
{
	long v = 0;

	for (int i = 0; i < 4; i++) {
		int h = hexval(p[i]);

		if (h < 0)
			return -1;
		v = v << 4 | h;
	}
	return v;
}

/* One UTF-8 sequence of 2 to 4 bytes at c->p, strictly (no overlong
 * form, no surrogate, nothing past U+10FFFF). */
static bool utf8_seq(struct jc *c)
{
	const uint8_t *s = c->p;
	size_t left = (size_t)(c->end - s);
	uint8_t b = s[0];

	if (b >= 0xc2 && b <= 0xdf) {
		if (left < 2 || (s[1] & 0xc0) != 0x80)
			return fail(c, "invalid UTF-8");
		c->p += 2;
		return true;
	}
	if (b >= 0xe0 && b <= 0xef) {
		if (left < 3 || (s[1] & 0xc0) != 0x80 ||
		    (s[2] & 0xc0) != 0x80 || (b == 0xe0 && s[1] < 0xa0) ||
		    (b == 0xed && s[1] >= 0xa0))
			return fail(c, "invalid UTF-8");
		c->p += 3;
		return true;
	}
	if (b >= 0xf0 && b <= 0xf4) {
		if (left < 4 || (s[1] & 0xc0) != 0x80 ||
		    (s[2] & 0xc0) != 0x80 || (s[3] & 0xc0) != 0x80 ||
		    (b == 0xf0 && s[1] < 0x90) || (b == 0xf4 && s[1] >= 0x90))
			return fail(c, "invalid UTF-8");
		c->p += 4;
		return true;
	}
	return fail(c, "invalid UTF-8");
}

/* A backslash escape at c->p. */
static bool escape(struct jc *c)
{
	const uint8_t *s = c->p;
	long v, lo;

	if (c->end - s < 2)
		return fail(c, "premature end of input");
	switch (s[1]) {
	case '"':
	case '\\':
	case '/':
	case 'b':
	case 'f':
	case 'n':
	case 'r':
	case 't':
		c->p += 2;
		return true;
	case 'u':
		break;
	default:
		return fail(c, "invalid escape");
	}
	if (c->end - s < 6 || (v = hex4(s + 2)) < 0)
		return fail(c, "invalid escape");
	if (v == 0)
		return fail(c, "\\u0000 is not allowed");
	if (v >= 0xdc00 && v <= 0xdfff)
		return fail(c, "invalid Unicode escape (lone low surrogate)");
	if (v < 0xd800 || v > 0xdbff) {
		c->p += 6;
		return true;
	}
	/* A high surrogate: a low one must follow at once. */
	if (c->end - s < 12 || s[6] != '\\' || s[7] != 'u' ||
	    (lo = hex4(s + 8)) < 0)
		return fail(c, "invalid Unicode escape (lone high surrogate)");
	if (lo < 0xdc00 || lo > 0xdfff)
		return fail(c, "invalid Unicode escape (bad surrogate pair)");
	c->p += 12;
	return true;
}

/* A string from its opening quote at c->p; *ret_escaped: it had an
 * escape.  Inlined into its two callers (gcc 12 would not): the scan of
 * plain bytes is skip_plain()'s, so this costs the long strings nothing
 * and saves a call per key and per string value. */
static inline __attribute__((always_inline)) bool string(struct jc *c,
                                                         bool *ret_escaped)
{
	bool escaped = false;

	c->p++;
	for (;;) {
		c->p = skip_plain(c->p, c->start, c->end);
		if (c->p >= c->end)
			return fail(c, "premature end of input");
		switch (*c->p) {
		case '"':
			c->p++;
			*ret_escaped = escaped;
			return true;
		case '\\':
			escaped = true;
			if (!escape(c))
				return false;
			continue;
		default:
			break;
		}
		if (*c->p < 0x20)
			return fail(c, "control character in a string");
		if (*c->p >= 0x80) {
			if (!utf8_seq(c))
				return false;
		} else {
			c->p++;
		}
	}
}

/* ---- numbers ---- */

static bool is_digit(const uint8_t *p, const uint8_t *end)
{
	return p < end && *p >= '0' && *p <= '9';
}

/* The n digits at d, an unsigned decimal without leading zeros: whether
 * it fits in a json_int_t (64 bits) with the sign given. */
static bool int_fits(const uint8_t *d, size_t n, bool neg)
{
	static const char max[] = "9223372036854775807";
	int cmp;

	if (n != sizeof(max) - 1)
		return n < sizeof(max) - 1;
	cmp = memcmp(d, max, n);
	/* -9223372036854775808 fits too */
	return cmp <= 0 || (neg && memcmp(d, "9223372036854775808", n) == 0);
}

/* Whether a real number rounds to infinity: int_d (n_int digits) then
 * frac_d (n_frac digits) times 10^exp10. */
static bool real_overflows(const uint8_t *int_d, size_t n_int,
                           const uint8_t *frac_d, size_t n_frac, long exp10)
{
	size_t total = n_int + n_frac, first = 0, i;
	long e;

#define DIGIT(k) ((k) < n_int ? int_d[k] : frac_d[(k)-n_int])
	while (first < total && DIGIT(first) == '0')
		first++;
	if (first == total)
		return false; /* zero */
	/* The power of ten of the first significant digit. */
	e = (long)n_int - 1 - (long)first + exp10;
	if (e != 308)
		return e > 308;
	for (i = 0; first + i < total; i++) {
		uint8_t d = DIGIT(first + i);

		if (i == sizeof(overflow_digits) - 1)
			return true; /* equal so far, and more digits */
		if (d != (uint8_t)overflow_digits[i])
			return d > (uint8_t)overflow_digits[i];
	}
	/* A prefix of the limit: smaller (its last digit is not 0). */
	return false;
#undef DIGIT
}

static bool number(struct jc *c)
{
	const uint8_t *p = c->p, *end = c->end, *int_d, *frac_d = NULL;
	size_t n_int, n_frac = 0;
	bool neg = false;
	long exp10 = 0;

	if (*p == '-') {
		neg = true;
		p++;
	}
	if (!is_digit(p, end))
		return fail(c, "invalid token");
	int_d = p;
	if (*p == '0') {
		p++;
		if (is_digit(p, end))
			return fail(c, "invalid token (leading zero)");
	} else {
		while (is_digit(p, end))
			p++;
	}
	n_int = (size_t)(p - int_d);
	if (p == end || (*p != '.' && *p != 'e' && *p != 'E')) {
		c->p = p;
		if (!int_fits(int_d, n_int, neg))
			return fail(c, neg ? "too big negative integer"
			                   : "too big integer");
		return true;
	}
	if (*p == '.') {
		p++;
		if (!is_digit(p, end))
			return fail(c, "invalid token");
		frac_d = p;
		while (is_digit(p, end))
			p++;
		n_frac = (size_t)(p - frac_d);
	}
	if (p < end && (*p == 'e' || *p == 'E')) {
		bool eneg = false;

		p++;
		if (p < end && (*p == '+' || *p == '-'))
			eneg = *p++ == '-';
		if (!is_digit(p, end))
			return fail(c, "invalid token");
		while (is_digit(p, end)) {
			/* Saturates far beyond anything a 1 MiB text can
			 * shift back. */
			if (exp10 < 100000000)
				exp10 = exp10 * 10 + (*p - '0');
			p++;
		}
		if (eneg)
			exp10 = -exp10;
	}
	c->p = p;
	if (real_overflows(int_d, n_int, frac_d, n_frac, exp10))
		return fail(c, "real number overflow");
	return true;
}

/* ---- keys ---- */

static uint32_t key_hash(const uint8_t *k, uint32_t len)
{
	uint32_t a = 0, b = 0;

	if (len >= 4) {
		memcpy(&a, k, 4);
		memcpy(&b, k + len - 4, 4);
	} else if (len > 0) {
		a = (uint32_t)k[0] << 16 | (uint32_t)k[len / 2] << 8 |
		    k[len - 1];
	}
	return a ^ (b * 0x9e3779b1u) ^ len;
}

static void keys_push(struct jc *c, struct key k)
{
	if (c->keys_by_jansson)
		return;
	if (c->nkeys == KEYS_MAX) {
		c->keys_by_jansson = true;
		return;
	}
	c->keys[c->nkeys++] = k;
}

/* Drops the keys of the object being closed, and its marker. */
static void keys_pop_object(struct jc *c)
{
	if (c->keys_by_jansson)
		return;
	while (c->nkeys > 0 && c->keys[--c->nkeys].len != UINT32_MAX) {
	}
}

/* The key from k to c->p (quotes included) in the innermost object. */
static bool key_add(struct jc *c, const uint8_t *k, bool escaped)
{
	struct key n = {.off = (uint32_t)(k - c->start),
	                .len = (uint32_t)(c->p - k)};

	if (c->keys_by_jansson)
		return true;
	if (escaped) {
		c->keys_by_jansson = true;
		return true;
	}
	n.hash = key_hash(k, n.len);
	for (size_t i = c->nkeys; i > 0; i--) {
		const struct key *o = &c->keys[i - 1];

		if (o->len == UINT32_MAX)
			break;
		if (o->hash == n.hash && o->len == n.len &&
		    memcmp(c->start + o->off, k, n.len) == 0)
			return fail(c, "duplicate object key");
	}
	keys_push(c, n);
	return true;
}

/* ---- the grammar ---- */

static bool push(struct jc *c, bool object)
{
	size_t l = c->depth;

	if (object) {
		c->kind[l / 64] |= 1ull << (l % 64);
		keys_push(c, (struct key){.len = UINT32_MAX});
	} else {
		c->kind[l / 64] &= ~(1ull << (l % 64));
	}
	c->depth++;
	c->p++;
	return true;
}

static void pop(struct jc *c)
{
	if (is_object(c))
		keys_pop_object(c);
	c->depth--;
	c->p++;
}

static bool literal(struct jc *c, const char *word, size_t n)
{
	if ((size_t)(c->end - c->p) < n || memcmp(c->p, word, n) != 0)
		return fail(c, "invalid token");
	c->p += n;
	return true;
}

/* A scalar at c->p, or the opening of a container. */
static bool value_start(struct jc *c)
{
	bool escaped;

	if (c->depth + 1 > MAX_DEPTH)
		return fail(c, "maximum parsing depth reached");
	if (c->p >= c->end)
		return fail(c, "premature end of input");
	switch (*c->p) {
	case '{':
		return push(c, true);
	case '[':
		return push(c, false);
	case '"':
		return string(c, &escaped);
	case 't':
		return literal(c, "true", 4);
	case 'f':
		return literal(c, "false", 5);
	case 'n':
		return literal(c, "null", 4);
	default:
		if (*c->p == '-' || (*c->p >= '0' && *c->p <= '9'))
			return number(c);
		return fail(c, "invalid token");
	}
}

static bool key_colon(struct jc *c)
{
	const uint8_t *k = c->p;
	bool escaped;

	if (c->p >= c->end || *c->p != '"')
		return fail(c, "string or '}' expected");
	if (!string(c, &escaped) || !key_add(c, k, escaped))
		return false;
	skip_ws(c);
	if (c->p >= c->end || *c->p != ':')
		return fail(c, "':' expected");
	c->p++;
	return true;
}

static bool parse(struct jc *c)
{
	size_t opened;

	skip_ws(c);
	for (;;) {
		/* A value is expected. */
		opened = c->depth;
		if (!value_start(c))
			return false;
		skip_ws(c);
		if (c->depth > opened) {
			/* Just opened: empty, or its first member. */
			if (c->p < c->end &&
			    *c->p == (is_object(c) ? '}' : ']')) {
				pop(c);
				skip_ws(c);
			} else {
				if (is_object(c) && !key_colon(c))
					return false;
				skip_ws(c);
				continue;
			}
		}
		/* After a value: a comma, a closing bracket or the end. */
		for (;;) {
			if (c->depth == 0) {
				if (c->p != c->end)
					return fail(c, "end of file expected");
				return true;
			}
			if (c->p >= c->end)
				return fail(c, "premature end of input");
			if (*c->p == ',') {
				c->p++;
				skip_ws(c);
				if (is_object(c) && !key_colon(c))
					return false;
				skip_ws(c);
				break;
			}
			if (*c->p != (is_object(c) ? '}' : ']'))
				return fail(c, is_object(c) ? "'}' expected"
				                            : "']' expected");
			pop(c);
			skip_ws(c);
		}
	}
}

/* The reference: jansson, for the duplicate keys the fast path could not
 * decide. */
static bool json_check_jansson(const char *text, size_t len, char *err,
                               size_t errlen)
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

bool json_check(const char *text, size_t len, char *err, size_t errlen)
{
	/* Not cleared: nearly 2 KiB, a third of the cost of checking a
	 * small event.  Each level and each key is written when it is opened
	 * or read, before it is ever looked at (push(), keys_push()). */
	uint64_t kind[MAX_DEPTH / 64];
	struct key keys[KEYS_MAX];
	struct jc c = {
	        .start = (const uint8_t *)text,
	        .p = (const uint8_t *)text,
	        .end = (const uint8_t *)text + len,
	        .kind = kind,
	        .keys = keys,
	};

	/* Key offsets are 32 bits; event data is far smaller anyway. */
	if (len > UINT32_MAX)
		return json_check_jansson(text, len, err, errlen);
	if (!parse(&c)) {
		snprintf(err, errlen, "%s (at byte %zu)", c.why,
		         (size_t)(c.p - c.start));
		return false;
	}
	if (c.keys_by_jansson)
		return json_check_jansson(text, len, err, errlen);
	return true;
}

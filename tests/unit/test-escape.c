// SPDX-License-Identifier: GPL-3.0-or-later
/*
 * test-escape: what stands between the target's bytes and the user's
 * terminal (sb_add_escaped, escape_dup, esc) or a JSON consumer
 * (sb_add_utf8_sanitized, json_target_str), and the parsers and printers of
 * sizes and durations.
 *
 * Strings read out of a target are hostile: a thread name or a Python
 * string can hold ESC sequences that rewrite the terminal, bidi overrides
 * that reorder what is shown, bytes that are not UTF-8.  The checks here are
 * made with a UTF-8 decoder of our own, on fixed cases and on 10,000 random
 * byte strings (a fixed seed, so that a failure is reproducible).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "output.h"
#include "util.h"

#define FUZZ_ROUNDS 10000

/* ----- an independent UTF-8 decoder ----- */

/*
 * The code point at p (n bytes left) and its length, or 0 when the bytes
 * there are not a well-formed UTF-8 sequence (Unicode table 3-7).
 */
static size_t decode(const unsigned char *p, size_t n, uint32_t *cp)
{
	unsigned char b = p[0];
	unsigned char lo = 0x80, hi = 0xbf;
	size_t len;
	uint32_t c;

	if (b < 0x80) {
		*cp = b;
		return 1;
	}
	if (b >= 0xc2 && b <= 0xdf) {
		len = 2;
		c = b & 0x1f;
	} else if (b >= 0xe0 && b <= 0xef) {
		len = 3;
		c = b & 0x0f;
		if (b == 0xe0)
			lo = 0xa0; /* no overlong */
		if (b == 0xed)
			hi = 0x9f; /* no surrogates */
	} else if (b >= 0xf0 && b <= 0xf4) {
		len = 4;
		c = b & 0x07;
		if (b == 0xf0)
			lo = 0x90;
		if (b == 0xf4)
			hi = 0x8f; /* nothing past U+10FFFF */
	} else {
		return 0;
	}
	if (n < len || p[1] < lo || p[1] > hi)
		return 0;
	for (size_t i = 1; i < len; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return 0;
		c = (c << 6) | (p[i] & 0x3f);
	}
	*cp = c;
	return len;
}

static int valid_utf8(const char *s, size_t n)
{
	const unsigned char *p = (const unsigned char *)s;
	uint32_t cp;

	for (size_t i = 0; i < n;) {
		size_t len = decode(p + i, n - i, &cp);

		if (!len)
			return 0;
		i += len;
	}
	return 1;
}

static size_t encode(uint32_t cp, char *out)
{
	if (cp < 0x80) {
		out[0] = (char)cp;
		return 1;
	}
	if (cp < 0x800) {
		out[0] = (char)(0xc0 | (cp >> 6));
		out[1] = (char)(0x80 | (cp & 0x3f));
		return 2;
	}
	if (cp < 0x10000) {
		out[0] = (char)(0xe0 | (cp >> 12));
		out[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
		out[2] = (char)(0x80 | (cp & 0x3f));
		return 3;
	}
	out[0] = (char)(0xf0 | (cp >> 18));
	out[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
	out[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
	out[3] = (char)(0x80 | (cp & 0x3f));
	return 4;
}

/*
 * Code points that must never reach a terminal raw: C0 and DEL, C1, the
 * Unicode Bidi_Control set (which reorders text: ALM, LRM, RLM, the
 * embeddings and overrides, the isolates), the zero-width characters that
 * hide or join text, and the line and paragraph separators.
 */
static int must_escape(uint32_t c)
{
	return c < 0x20 || c == 0x7f || (c >= 0x80 && c <= 0x9f) || c == 0x061c ||
	       (c >= 0x200b && c <= 0x200f) || (c >= 0x202a && c <= 0x202e) ||
	       (c >= 0x2066 && c <= 0x2069) || c == 0x2028 || c == 0x2029 || c == 0xfeff;
}

/* Fails unless out is valid UTF-8 with nothing from must_escape in it. */
static void check_terminal_safe(const char *out, size_t n, const unsigned char *in, size_t inlen)
{
	const unsigned char *p = (const unsigned char *)out;
	uint32_t cp;

	for (size_t i = 0; i < n;) {
		size_t len = decode(p + i, n - i, &cp);

		if (!len || must_escape(cp)) {
			struct strbuf hex = STRBUF_INIT;

			for (size_t k = 0; k < inlen; k++)
				sb_addf(&hex, "%02x", in[k]);
			print_error("input: %s\n", sb_str(&hex));
			sb_release(&hex);
			if (!len)
				fail_msg("escaped output is not UTF-8 at byte %zu: %02x", i, p[i]);
			fail_msg("escaped output holds U+%04" PRIX32 " raw", cp);
		}
		i += len;
	}
}

static uint64_t rng_state = 0x2545f4914f6cdd1dull;

static uint64_t rng(void)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return rng_state;
}

/* Random bytes, biased towards what makes UTF-8 hard: lead bytes, continuations, controls. */
static size_t random_bytes(unsigned char *buf, size_t max)
{
	static const unsigned char special[] = {0x00, 0x1b, 0x07, 0x7f, 0x0a, 0x0d, 0x09, 0x80,
						0xbf, 0xc0, 0xc1, 0xc2, 0xdf, 0xe0, 0xe2, 0xed,
						0xef, 0xf0, 0xf4, 0xf5, 0xf8, 0xfe, 0xff, 0x9b,
						0xa0, 0x80, 0x8f, 0x90, 0x9f, 0xd8, 0x5c, 0x22};
	size_t n = rng() % (max + 1);

	for (size_t i = 0; i < n; i++) {
		uint64_t r = rng();

		switch (r % 4) {
		case 0:
			buf[i] = (unsigned char)(r >> 8);
			break;
		case 1:
			buf[i] = special[(r >> 8) % sizeof(special)];
			break;
		case 2:
			buf[i] = (unsigned char)(0x80 | ((r >> 8) & 0x3f)); /* continuation */
			break;
		default: {
			/* a whole code point, sometimes one of the dangerous ones */
			static const uint32_t cps[] = {0x85,   0x9b,   0xe9,   0x202e,	0x2067,
						       0x200b, 0xfeff, 0x4e2d, 0x1f600, 0x10ffff,
						       0xfffd, 0x2028, 0x7ff,  0x800,	0xffff};
			char tmp[4];
			uint32_t cp = r % 3 ? cps[(r >> 8) % ARRAY_SIZE(cps)]
					    : (uint32_t)((r >> 8) % 0x110000);
			size_t len;

			if (cp >= 0xd800 && cp <= 0xdfff)
				cp = 0xfffd;
			len = encode(cp, tmp);
			if (i + len > n)
				len = n - i; /* truncated: also a case */
			memcpy(buf + i, tmp, len);
			i += len - 1;
		}
		}
	}
	return n;
}

/* ----- escaping for the terminal ----- */

static void expect_escaped(const char *in, size_t n, const char *want)
{
	char *got = escape_dup(in, n);

	if (strcmp(got, want)) {
		struct strbuf hex = STRBUF_INIT;

		for (size_t k = 0; k < n; k++)
			sb_addf(&hex, "%02x ", (unsigned char)in[k]);
		print_error("input: %s\n", sb_str(&hex));
		sb_release(&hex);
		fail_msg("escaped to \"%s\", want \"%s\"", got, want);
	}
	check_terminal_safe(got, strlen(got), (const unsigned char *)in, n);
	free(got);
}

#define EXPECT(lit, want) expect_escaped((lit), sizeof(lit) - 1, (want))

static void test_ascii_unchanged(void **state)
{
	char in[96], *out;

	(void)state;
	for (int c = 0x20; c < 0x7f; c++)
		in[c - 0x20] = (char)c;
	out = escape_dup(in, 0x7f - 0x20);
	assert_int_equal(strlen(out), 0x7f - 0x20);
	assert_memory_equal(out, in, 0x7f - 0x20);
	free(out);
	EXPECT("hello, world", "hello, world");
	EXPECT("a \"quoted\" 'str' \\ back", "a \"quoted\" 'str' \\ back");
}

/*
 * Nothing in, nothing out: an empty string from the target (a thread with
 * no name, an empty repr) must not show the heap's leftovers.  The freed
 * block of the size the buffer will get makes them visible.
 */
static void dirty_heap(void)
{
	for (size_t size = 16; size <= 128; size += 16) {
		char *p = malloc(size);

		memset(p, 'X', size);
		free(p);
	}
}

static void test_escape_empty(void **state)
{
	struct strbuf sb = STRBUF_INIT, bad = STRBUF_INIT;
	const char *e;
	char *out;

	(void)state;
	/* only the first byte is looked at: the rest may be past the end of the buffer */
	dirty_heap();
	sb_add_escaped(&sb, "", 0);
	assert_int_equal(sb.len, 0);
	if (sb_str(&sb)[0])
		sb_addf(&bad,
			"sb_add_escaped of 0 bytes into an empty strbuf leaves it "
			"unterminated: it starts with byte 0x%02x\n",
			(unsigned char)sb_str(&sb)[0]);
	sb_release(&sb);

	dirty_heap();
	out = escape_dup("", 0);
	if (out[0])
		sb_addf(&bad,
			"escape_dup(\"\", 0) is unterminated old heap: it starts with "
			"byte 0x%02x\n",
			(unsigned char)out[0]);
	free(out);

	/* esc(""), on a ring freshly emptied by the end of a command */
	out_begin("test");
	out_end(1, NULL);
	dirty_heap();
	e = esc("");
	if (e[0])
		sb_addf(&bad, "esc(\"\") is unterminated old heap: it starts with byte 0x%02x\n",
			(unsigned char)e[0]);
	out_begin("test");
	out_end(1, NULL); /* frees the ring */
	if (bad.len) {
		print_error("%s", sb_str(&bad));
		sb_release(&bad);
		fail_msg("escaping an empty string gives garbage");
	}
}

static void test_controls_escaped(void **state)
{
	(void)state;
	EXPECT("a\nb", "a\\nb");
	EXPECT("a\tb", "a\\tb");
	EXPECT("a\rb", "a\\rb");
	EXPECT("\x1b[31mred\x1b[0m", "\\x1b[31mred\\x1b[0m");
	EXPECT("\x1b]0;title\x07", "\\x1b]0;title\\x07");
	EXPECT("bell\x07", "bell\\x07");
	EXPECT("del\x7f", "del\\x7f");
	EXPECT("nul\0after", "nul\\x00after"); /* an embedded NUL is shown, and what follows */
	EXPECT("\0", "\\x00");
	EXPECT("\b\f\v", "\\x08\\x0c\\x0b");

	/* every C0 byte and DEL, alone and amid text */
	for (int c = 0; c < 0x80; c++) {
		char in[3] = {'a', (char)c, 'b'}, *out;

		if (c >= 0x20 && c < 0x7f)
			continue;
		out = escape_dup(in, 3);
		for (char *p = out; *p; p++)
			if ((unsigned char)*p < 0x20 || *p == 0x7f)
				fail_msg("byte 0x%02x came out raw in \"%s\"", c, out);
		assert_int_equal(out[0], 'a');
		assert_int_equal(out[strlen(out) - 1], 'b');
		assert_int_equal(out[1], '\\');
		free(out);
	}
}

static void test_utf8_passes(void **state)
{
	(void)state;
	EXPECT("caf\xc3\xa9", "caf\xc3\xa9");				/* é */
	EXPECT("\xe4\xb8\xad\xe6\x96\x87", "\xe4\xb8\xad\xe6\x96\x87"); /* 中文 */
	EXPECT("\xf0\x9f\x98\x80", "\xf0\x9f\x98\x80");			/* U+1F600 */
	EXPECT("\xc2\xa0", "\xc2\xa0");					/* U+00A0, past C1 */
	EXPECT("\xef\xbf\xbd", "\xef\xbf\xbd");				/* U+FFFD */
	EXPECT("\xf4\x8f\xbf\xbf", "\xf4\x8f\xbf\xbf");			/* U+10FFFF */
	EXPECT("\xdf\xbf\xe0\xa0\x80", "\xdf\xbf\xe0\xa0\x80");		/* U+07FF U+0800 */
	EXPECT("\xd7\x90\xd7\x91", "\xd7\x90\xd7\x91"); /* Hebrew: RTL letters are fine */
}

/* C1 controls and the invisible or reordering code points become \uNNNN. */
static void test_unsafe_codepoints_escaped(void **state)
{
	char in[8], want[16];

	(void)state;
	for (uint32_t cp = 0x80; cp <= 0x9f; cp++) {
		size_t n = encode(cp, in);

		snprintf(want, sizeof(want), "\\u%04" PRIx32, cp);
		expect_escaped(in, n, want);
	}
	EXPECT("\xc2\x9b"
	       "31m",
	       "\\u009b31m"); /* CSI as C1 */
	EXPECT("abc\xe2\x80\xae"
	       "fed",
	       "abc\\u202efed");	   /* RIGHT-TO-LEFT OVERRIDE */
	EXPECT("\xe2\x80\x8b", "\\u200b"); /* ZERO WIDTH SPACE */
	EXPECT("\xef\xbb\xbf", "\\ufeff"); /* ZERO WIDTH NO-BREAK SPACE */
	EXPECT("\xe2\x80\xa8", "\\u2028"); /* LINE SEPARATOR */
	EXPECT("\xe2\x80\xa9", "\\u2029"); /* PARAGRAPH SEPARATOR */
	for (uint32_t cp = 0x2066; cp <= 0x2069; cp++) {
		size_t n = encode(cp, in);

		snprintf(want, sizeof(want), "\\u%04" PRIx32, cp);
		expect_escaped(in, n, want);
	}
}

/*
 * The whole Unicode Bidi_Control set (UCD PropList.txt): U+061C ARABIC
 * LETTER MARK, U+200E-U+200F, U+202A-U+202E, U+2066-U+2069.  Each one can
 * reorder the text around it (the "Trojan Source" attack).
 */
static void test_bidi_controls_escaped(void **state)
{
	static const uint32_t bidi[] = {0x061c, 0x200e, 0x200f, 0x202a, 0x202b, 0x202c,
					0x202d, 0x202e, 0x2066, 0x2067, 0x2068, 0x2069};
	struct strbuf raw = STRBUF_INIT;

	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(bidi); i++) {
		char in[8], want[16], *out;
		size_t n = encode(bidi[i], in);

		snprintf(want, sizeof(want), "\\u%04" PRIx32, bidi[i]);
		out = escape_dup(in, n);
		if (strcmp(out, want))
			sb_addf(&raw, " U+%04" PRIX32, bidi[i]);
		free(out);
	}
	if (raw.len) {
		print_error("bidi controls left raw:%s\n", sb_str(&raw));
		sb_release(&raw);
		fail_msg("a Bidi_Control code point reaches the terminal unescaped");
	}
}

static void test_invalid_utf8_escaped(void **state)
{
	(void)state;
	EXPECT("\x80", "\\x80"); /* lone continuation bytes */
	EXPECT("a\xbf"
	       "b",
	       "a\\xbfb");
	EXPECT("\xe4\xb8", "\\xe4\\xb8"); /* truncated at the end */
	EXPECT("\xe4\xb8"
	       "A",
	       "\\xe4\\xb8A"); /* truncated by ASCII */
	EXPECT("\xf0\x9f\x98", "\\xf0\\x9f\\x98");
	EXPECT("\xc3\xc3\xa9", "\\xc3\xc3\xa9"); /* a bad lead, then a good é */
	EXPECT("\xc0\xaf", "\\xc0\\xaf");	 /* overlong '/' */
	EXPECT("\xc1\xbf", "\\xc1\\xbf");
	EXPECT("\xe0\x80\xaf", "\\xe0\\x80\\xaf");	    /* overlong, 3 bytes */
	EXPECT("\xf0\x80\x80\xaf", "\\xf0\\x80\\x80\\xaf"); /* overlong, 4 bytes */
	EXPECT("\xc0\x80", "\\xc0\\x80");		    /* "modified UTF-8" NUL */
	EXPECT("\xed\xa0\x80", "\\xed\\xa0\\x80");	    /* surrogate D800 */
	EXPECT("\xed\xbf\xbf", "\\xed\\xbf\\xbf");	    /* surrogate DFFF */
	EXPECT("\xf4\x90\x80\x80", "\\xf4\\x90\\x80\\x80"); /* U+110000 */
	EXPECT("\xf5\x80\x80\x80", "\\xf5\\x80\\x80\\x80");
	EXPECT("\xf8\x88\x80\x80\x80", "\\xf8\\x88\\x80\\x80\\x80"); /* 5-byte form */
	EXPECT("\xfe\xff", "\\xfe\\xff");
	EXPECT("\xe2\x80", "\\xe2\\x80"); /* half a U+202E */
}

static void test_escape_appends(void **state)
{
	struct strbuf sb = STRBUF_INIT;

	(void)state;
	sb_adds(&sb, "pre:");
	sb_add_escaped(&sb,
		       "\x1b"
		       "x",
		       2);
	sb_add_escaped(&sb, "", 0);
	sb_add_escaped(&sb, "\xe4\xb8\xad", 3);
	assert_string_equal(sb_str(&sb), "pre:\\x1bx\xe4\xb8\xad");
	assert_int_equal(sb.len, strlen(sb_str(&sb)));
	sb_release(&sb);
}

/*
 * Undo the escapes (for input without backslashes, where they cannot be
 * confused with the input's own): the escaping must lose nothing.
 */
static size_t unescape(const char *s, unsigned char *out)
{
	size_t n = 0;

	while (*s) {
		if (*s != '\\') {
			out[n++] = (unsigned char)*s++;
			continue;
		}
		s++;
		switch (*s) {
		case 'n':
			out[n++] = '\n';
			s++;
			break;
		case 't':
			out[n++] = '\t';
			s++;
			break;
		case 'r':
			out[n++] = '\r';
			s++;
			break;
		case 'x': {
			unsigned v;

			assert_int_equal(sscanf(s + 1, "%2x", &v), 1);
			out[n++] = (unsigned char)v;
			s += 3;
			break;
		}
		case 'u': {
			unsigned v;

			assert_int_equal(sscanf(s + 1, "%4x", &v), 1);
			n += encode(v, (char *)out + n);
			s += 5;
			break;
		}
		default:
			fail_msg("unknown escape \\%c", *s);
		}
	}
	return n;
}

static void test_escape_fuzz(void **state)
{
	unsigned char in[80], back[80 * 4];

	(void)state;
	for (int round = 0; round < FUZZ_ROUNDS; round++) {
		size_t n = random_bytes(in, sizeof(in)), m;
		char *out;

		if (!n)
			continue; /* test_escape_empty */

		for (size_t i = 0; i < n; i++)
			if (in[i] == '\\')
				in[i] = '/';
		/* U+061C (D8 9C) is checked on its own, in test_bidi_controls_escaped */
		for (size_t i = 0; i + 1 < n; i++)
			if (in[i] == 0xd8 && in[i + 1] == 0x9c)
				in[i + 1] = 0x9d;
		out = escape_dup(in, n);
		for (const char *p = out; *p; p++)
			if ((unsigned char)*p < 0x20 || *p == 0x7f)
				fail_msg("round %d: raw byte 0x%02x in escaped output", round,
					 (unsigned char)*p);
		check_terminal_safe(out, strlen(out), in, n);
		m = unescape(out, back);
		if (m != n || memcmp(back, in, n))
			fail_msg("round %d: the escaped text does not hold the input", round);
		free(out);
	}
}

/* esc(): NULL-safe, escaped, and each result outlives the next 63 calls. */
static void test_esc_ring(void **state)
{
	const char *p[64];
	char want[32];

	(void)state;
	assert_string_equal(esc(NULL), "");
	assert_string_equal(esc("\x1b[2J"), "\\x1b[2J");
	assert_string_equal(esc("caf\xc3\xa9\xe2\x80\xae"), "caf\xc3\xa9\\u202e");
	for (int i = 0; i < 64; i++) {
		snprintf(want, sizeof(want), "s%d\x07", i);
		p[i] = esc(want);
	}
	for (int i = 0; i < 64; i++) {
		snprintf(want, sizeof(want), "s%d\\x07", i);
		assert_string_equal(p[i], want);
	}
	{
		json_t *o = json_pack("{s:s, s:i}", "name",
				      "x\x1b"
				      "y",
				      "n", 1);

		assert_string_equal(esc_member(o, "name"), "x\\x1by");
		assert_string_equal(esc_member(o, "n"), "");
		assert_string_equal(esc_member(o, "absent"), "");
		json_decref(o);
	}
}

/* ----- UTF-8 for JSON ----- */

static void expect_sanitized(const char *in, size_t n, const char *want)
{
	struct strbuf sb = STRBUF_INIT;

	sb_add_utf8_sanitized(&sb, in, n);
	assert_string_equal(sb_str(&sb), want);
	assert_true(valid_utf8(sb.buf ? sb.buf : "", sb.len));
	sb_release(&sb);
}

#define SANE(lit, want) expect_sanitized((lit), sizeof(lit) - 1, (want))
#define FFFD		"\xef\xbf\xbd"

static void test_sanitize(void **state)
{
	(void)state;
	SANE("plain", "plain");
	SANE("caf\xc3\xa9 \xe4\xb8\xad \xf0\x9f\x98\x80",
	     "caf\xc3\xa9 \xe4\xb8\xad \xf0\x9f\x98\x80");
	SANE("\x1b\n\t", "\x1b\n\t"); /* JSON escapes controls itself */
	SANE("a\0b", "a" FFFD "b");   /* NUL cannot be in a C string */
	SANE("\x80", FFFD);
	SANE("\xc0\xaf", FFFD FFFD);
	SANE("\xe0\x80\xaf", FFFD FFFD FFFD);
	SANE("\xed\xa0\x80", FFFD FFFD FFFD);
	SANE("\xf4\x90\x80\x80", FFFD FFFD FFFD FFFD);
	SANE("\xe4\xb8", FFFD FFFD);
	SANE("\xe4\xb8"
	     "A",
	     FFFD FFFD "A");
	SANE("\xff\xfe", FFFD FFFD);
	SANE("\xc3\xc3\xa9", FFFD "\xc3\xa9");
}

static int json_roundtrip(json_t *j, size_t flags)
{
	json_error_t err;
	char *dump = json_dumps(j, flags | JSON_ENCODE_ANY);
	json_t *back;
	int same;

	if (!dump)
		return 0;
	back = json_loads(dump, JSON_DECODE_ANY, &err);
	free(dump);
	if (!back)
		return 0;
	same = json_is_string(back) && json_string_length(back) == json_string_length(j) &&
	       !memcmp(json_string_value(back), json_string_value(j), json_string_length(j));
	json_decref(back);
	return same;
}

static void test_json_target_str(void **state)
{
	json_t *j;

	(void)state;
	j = json_target_str("caf\xc3\xa9", 5);
	assert_string_equal(json_string_value(j), "caf\xc3\xa9");
	json_decref(j);
	j = json_target_str("a\xff\0b", 4);
	assert_string_equal(json_string_value(j), "a" FFFD FFFD "b");
	assert_int_equal(json_string_length(j), strlen("a" FFFD FFFD "b"));
	json_decref(j);
	j = json_target_str("", 0);
	assert_string_equal(json_string_value(j), "");
	json_decref(j);
	j = json_target_str(NULL, 0);
	assert_true(json_is_string(j));
	assert_string_equal(json_string_value(j), "");
	json_decref(j);
	j = json_target_cstr(NULL);
	assert_true(json_is_null(j));
	json_decref(j);
	j = json_target_cstr("\x1b[31m\xed\xa0\x80");
	assert_string_equal(json_string_value(j), "\x1b[31m" FFFD FFFD FFFD);
	assert_true(json_roundtrip(j, JSON_ENSURE_ASCII));
	json_decref(j);
}

static void test_json_target_str_fuzz(void **state)
{
	unsigned char in[80];

	(void)state;
	for (int round = 0; round < FUZZ_ROUNDS; round++) {
		size_t n = random_bytes(in, sizeof(in));
		struct strbuf sb = STRBUF_INIT;
		json_t *j = json_target_str((const char *)in, n);
		const char *s;

		if (!j || !json_is_string(j))
			fail_msg("round %d: json_target_str gave no string", round);
		s = json_string_value(j);
		if (!valid_utf8(s, json_string_length(j)) || strlen(s) != json_string_length(j))
			fail_msg("round %d: not valid UTF-8 without NUL", round);
		/* it is the sanitized text, and valid input is kept as it is */
		sb_add_utf8_sanitized(&sb, (const char *)in, n);
		assert_string_equal(s, sb_str(&sb));
		if (valid_utf8((const char *)in, n) && !memchr(in, 0, n)) {
			assert_int_equal(json_string_length(j), n);
			assert_memory_equal(s, in, n);
		}
		sb_release(&sb);
		if (!json_roundtrip(j, 0) || !json_roundtrip(j, JSON_ENSURE_ASCII | JSON_COMPACT))
			fail_msg("round %d: json_dumps/json_loads does not give the string back",
				 round);
		json_decref(j);
	}
}

/* ----- sizes and durations ----- */

static void size_is(const char *s, uint64_t want)
{
	uint64_t v = 0xdeadbeef;

	if (parse_size(s, &v) != 0)
		fail_msg("parse_size(\"%s\") failed", s);
	if (v != want)
		fail_msg("parse_size(\"%s\") = %" PRIu64 ", want %" PRIu64, s, v, want);
}

static void size_bad(const char *s)
{
	uint64_t v = 0xdeadbeef;

	if (parse_size(s, &v) != -1)
		fail_msg("parse_size(\"%s\") accepted it as %" PRIu64, s ? s : "(null)", v);
}

static void test_parse_size(void **state)
{
	(void)state;
	size_is("4096", 4096);
	size_is("0", 0);
	size_is("0x1000", 0x1000);
	size_is("0X1000", 0x1000);
	size_is("0xffffffffffffffff", UINT64_MAX);
	size_is("4K", 4096);
	size_is("4k", 4096);
	size_is("4KB", 4096);
	size_is("4KiB", 4096);
	size_is("4kib", 4096);
	size_is("512B", 512);
	size_is("100M", 100ull << 20);
	size_is("2G", 2ull << 30);
	size_is("1.5GiB", 3ull << 29);
	size_is("1T", 1ull << 40);
	size_is("1P", 1ull << 50);
	size_is("0.5K", 512);
	size_is("15.99P", (uint64_t)(15.99 * (double)(1ull << 50)));
	size_is("9007199254740992", 9007199254740992ull); /* 2^53 */

	size_bad(NULL);
	size_bad("");
	size_bad("-1");
	size_bad("-0");
	size_bad("G");
	size_bad("K4");
	size_bad("4X");
	size_bad("4E");
	size_bad("1e400");
	size_bad("4KBB");
	size_bad("4KiBB");
	size_bad("4 K");
	size_bad(" 4K");
	size_bad("4K ");
	size_bad("nan");
	size_bad("inf");
	size_bad("infK");
	size_bad("0x");
	size_bad("0xg");
	size_bad("0x1000K");
	size_bad("16384P"); /* 2^64 */
	size_bad("99999999999999999999");
	size_bad("0x10000000000000000");
}

/* A decimal integer is a count of bytes: it is that number, or refused, never a neighbour. */
static void test_parse_size_exact_integers(void **state)
{
	static const struct {
		const char *s;
		uint64_t v;
	} cases[] = {
	    {"9007199254740993", 9007199254740993ull}, /* 2^53 + 1 */
	    {"18446744073709551000", 18446744073709551000ull},
	    {"12345678901234567", 12345678901234567ull},
	};

	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		uint64_t v = 0;

		if (parse_size(cases[i].s, &v) == 0 && v != cases[i].v)
			fail_msg("parse_size(\"%s\") = %" PRIu64 ": another number", cases[i].s, v);
	}
}

static void duration_is(const char *s, uint64_t want)
{
	uint64_t v = 0xdeadbeef;

	if (parse_duration_us(s, &v) != 0)
		fail_msg("parse_duration_us(\"%s\") failed", s);
	if (v != want)
		fail_msg("parse_duration_us(\"%s\") = %" PRIu64 " us, want %" PRIu64, s, v, want);
}

static void duration_bad(const char *s)
{
	uint64_t v = 0xdeadbeef;

	if (parse_duration_us(s, &v) != -1)
		fail_msg("parse_duration_us(\"%s\") accepted it as %" PRIu64, s ? s : "(null)", v);
}

static void test_parse_duration(void **state)
{
	(void)state;
	duration_is("100us", 100);
	duration_is("5ms", 5000);
	duration_is("2s", 2000000);
	duration_is("1.5s", 1500000);
	duration_is("2", 2000000); /* bare: seconds */
	duration_is("0.5ms", 500);
	duration_is("2000ns", 2);
	duration_is("0s", 0);
	duration_is("1e9s", 1000000000000000ull);

	duration_bad(NULL);
	duration_bad("");
	duration_bad("-1");
	duration_bad("-1s");
	duration_bad("s");
	duration_bad("ms");
	duration_bad("5m");
	duration_bad("5min");
	duration_bad("5 s");
	duration_bad("5sec");
	duration_bad("5ss");
	duration_bad("1e400s");
	duration_bad("1e10s"); /* beyond the limit */
	duration_bad("inf");
	duration_bad("nan");
	duration_bad("infs");
}

/* "4.1s" is 4,100,000 us, exactly: decimal fractions must not round down by one. */
static void test_parse_duration_decimals(void **state)
{
	static const struct {
		const char *s;
		uint64_t us;
	} cases[] = {
	    {"4.1s", 4100000}, {"8.2s", 8200000}, {"2.01ms", 2010},
	    {"1.005ms", 1005}, {"0.3s", 300000},  {"2.3ms", 2300},
	};
	struct strbuf bad = STRBUF_INIT;

	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		uint64_t v = 0;

		assert_int_equal(parse_duration_us(cases[i].s, &v), 0);
		if (v != cases[i].us)
			sb_addf(&bad, " \"%s\"=%" PRIu64 "us (want %" PRIu64 ")", cases[i].s, v,
				cases[i].us);
	}
	if (bad.len) {
		print_error("off by one:%s\n", sb_str(&bad));
		sb_release(&bad);
		fail_msg("parse_duration_us truncates instead of rounding");
	}
}

static void bytes_are(uint64_t n, const char *want)
{
	struct strbuf sb = STRBUF_INIT;

	sb_add_bytes(&sb, n);
	if (strcmp(sb_str(&sb), want))
		fail_msg("sb_add_bytes(%" PRIu64 ") = \"%s\", want \"%s\"", n, sb_str(&sb), want);
	sb_release(&sb);
}

static void test_bytes_format(void **state)
{
	struct strbuf sb = STRBUF_INIT;

	(void)state;
	bytes_are(0, "0 B");
	bytes_are(12, "12 B");
	bytes_are(512, "512 B");
	bytes_are(1023, "1023 B");
	bytes_are(1024, "1.00 KiB");
	bytes_are(1536, "1.50 KiB");
	bytes_are(10 * 1024, "10.00 KiB");
	bytes_are(100 * 1024, "100.0 KiB");
	bytes_are(812 * 1024 + 410, "812.4 KiB");
	bytes_are(1363149, "1.30 MiB");
	bytes_are(851862323, "812.4 MiB"); /* 812.4 MiB */
	bytes_are(1ull << 30, "1.00 GiB");
	bytes_are(5ull << 40, "5.00 TiB");
	bytes_are(1ull << 50, "1.00 PiB");
	bytes_are(UINT64_MAX, "16.00 EiB"); /* the largest unit */

	sb_adds(&sb, "rss ");
	sb_add_bytes(&sb, 2048);
	sb_add_bytes_delta(&sb, 0);
	sb_adds(&sb, " ");
	sb_add_bytes_delta(&sb, -12);
	sb_adds(&sb, " ");
	sb_add_bytes_delta(&sb, 1363149);
	sb_adds(&sb, " ");
	sb_add_bytes_delta(&sb, INT64_MIN);
	assert_string_equal(sb_str(&sb), "rss 2.00 KiB+0 B -12 B +1.30 MiB -8.00 EiB");
	sb_release(&sb);
}

/*
 * Every size is shown in the largest unit it reaches, with 3 or 4
 * significant digits, correctly rounded: never "1024.0 KiB" for a size just
 * under 1 MiB, never "100.00 KiB".
 */
static void test_bytes_format_boundaries(void **state)
{
	static const char *const units[] = {"KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
	struct strbuf bad = STRBUF_INIT;
	size_t nbad = 0;

	(void)state;
	for (int u = 0; u < 5; u++) {
		uint64_t scale = 1ull << (10 * (u + 1));
		uint64_t probes[] = {scale,
				     scale + 1,
				     scale * 100 - 1,
				     scale * 100,
				     scale * 1024 - 1,
				     scale * 1000,
				     scale * 1023 + scale / 2,
				     scale * 10 - 1,
				     scale * 999 + scale / 20 * 19};

		for (size_t k = 0; k < ARRAY_SIZE(probes); k++) {
			struct strbuf sb = STRBUF_INIT;
			uint64_t n = probes[k];
			double v = 0, exact = (double)n / (double)scale;
			char unit[8] = "", *dot;
			size_t decimals;
			int ok;

			sb_add_bytes(&sb, n);
			ok = sscanf(sb_str(&sb), "%lf %7s", &v, unit) == 2;
			dot = strchr(sb_str(&sb), '.');
			decimals = dot ? strcspn(dot + 1, " ") : 0;
			if (ok && exact >= 1023.95) /* rounds up into the next unit */
				ok = !strcmp(unit, units[u + 1]) && decimals == 2;
			else if (ok)
				ok = !strcmp(unit, units[u]) && decimals == (v >= 100 ? 1 : 2) &&
				     v < 1024 &&
				     v - exact < 0.5001 * (decimals == 1 ? 0.1 : 0.01) &&
				     exact - v < 0.5001 * (decimals == 1 ? 0.1 : 0.01);
			if (!ok) {
				sb_addf(&bad, "  %" PRIu64 " -> \"%s\"\n", n, sb_str(&sb));
				nbad++;
			}
			sb_release(&sb);
		}
	}
	if (nbad) {
		print_error("%s", sb_str(&bad));
		sb_release(&bad);
		fail_msg("%zu sizes shown out of range or with the wrong precision", nbad);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_ascii_unchanged),
	    cmocka_unit_test(test_escape_empty),
	    cmocka_unit_test(test_controls_escaped),
	    cmocka_unit_test(test_utf8_passes),
	    cmocka_unit_test(test_unsafe_codepoints_escaped),
	    cmocka_unit_test(test_bidi_controls_escaped),
	    cmocka_unit_test(test_invalid_utf8_escaped),
	    cmocka_unit_test(test_escape_appends),
	    cmocka_unit_test(test_escape_fuzz),
	    cmocka_unit_test(test_esc_ring),
	    cmocka_unit_test(test_sanitize),
	    cmocka_unit_test(test_json_target_str),
	    cmocka_unit_test(test_json_target_str_fuzz),
	    cmocka_unit_test(test_parse_size),
	    cmocka_unit_test(test_parse_size_exact_integers),
	    cmocka_unit_test(test_parse_duration),
	    cmocka_unit_test(test_parse_duration_decimals),
	    cmocka_unit_test(test_bytes_format),
	    cmocka_unit_test(test_bytes_format_boundaries),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

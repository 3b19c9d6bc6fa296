// SPDX-License-Identifier: GPL-3.0-or-later
/*
 * py_addr2line against the lines the real interpreters give (one test per
 * CPython version in linetable-vectors.h, every instruction offset of every
 * code object), then hand-made tables for the corners the compilers never
 * produce, then hostile input: truncated, endless, all-ones and random
 * tables must give -1 or a line, never a crash (run it under ASan too).
 */
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "linetable.h"
#include "linetable-vectors.h"

#define N_ELEMS(a)   (sizeof(a) / sizeof((a)[0]))
#define CODE_UNIT    2	/* every instruction starts on a 2-byte boundary */
#define MAX_REPORTED 10 /* mismatches printed per test before just counting */

/* Location-table first bytes: 1cccclll, lll = code units - 1. */
#define LOC_ENTRY(code, units) ((uint8_t)(0x80 | ((code) << 3) | ((units)-1)))
#define LOC_ONE_LINE1	       11
#define LOC_NO_COLUMNS	       13
#define LOC_LONG	       14
#define LOC_NONE	       15
#define VARINT_MORE	       0x40

/* ---- the real interpreters' answers ---- */

static int check_case(const struct lt_case *c, int *reported)
{
	int bad = 0;
	size_t r;

	for (r = 0; r < c->nruns; r++) {
		const struct lt_run *run = &c->runs[r];
		int off;

		for (off = run->start; off < run->end; off += CODE_UNIT) {
			int got = py_addr2line(c->kind, c->table, c->len, c->firstlineno, off);

			if (got == run->line)
				continue;
			if ((*reported)++ < MAX_REPORTED)
				print_error("%s %s (firstlineno %d): offset %d: want %d, got %d\n",
					    c->version, c->name, c->firstlineno, off, run->line,
					    got);
			bad++;
		}
	}
	/* Only the 3.10+ tables know where the code ends. */
	if (c->kind != PY_LT_LNOTAB &&
	    py_addr2line(c->kind, c->table, c->len, c->firstlineno, c->nbytes) != -1) {
		if ((*reported)++ < MAX_REPORTED)
			print_error("%s %s: offset %d past the code has a line\n", c->version,
				    c->name, c->nbytes);
		bad++;
	}
	return bad;
}

static void test_version(void **state)
{
	const struct lt_version *v = *state;
	int bad = 0, reported = 0;
	size_t i, ncases = 0, noffsets = 0;

	for (i = 0; i < N_ELEMS(lt_cases); i++) {
		const struct lt_case *c = &lt_cases[i];

		if (strcmp(c->version, v->version))
			continue;
		assert_int_equal(c->kind, v->kind);
		bad += check_case(c, &reported);
		ncases++;
		noffsets += (size_t)c->nbytes / CODE_UNIT;
	}
	assert_int_equal(ncases, v->ncases);
	assert_true(noffsets > 0);
	assert_int_equal(bad, 0);
}

/*
 * Cutting a 3.10+ table anywhere may lose answers (-1) but never changes
 * one: they are decoded front to back and know where the code ends.  A cut
 * co_lnotab just looks like one whose last line carries on, so there it
 * only has to give some answer.
 */
static void test_truncated_real_tables(void **state)
{
	size_t i;

	(void)state;
	for (i = 0; i < N_ELEMS(lt_cases); i++) {
		const struct lt_case *c = &lt_cases[i];
		size_t step = c->len > 64 ? c->len / 64 : 1;
		size_t cut;

		for (cut = 0; cut < c->len; cut += step) {
			/* an exact-size copy, so that ASan sees any overread */
			uint8_t *t = malloc(cut ? cut : 1);
			size_t r;

			assert_non_null(t);
			if (cut)
				memcpy(t, c->table, cut);
			for (r = 0; r < c->nruns && r < 32; r++) {
				int off = c->runs[r].start;
				int got = py_addr2line(c->kind, t, cut, c->firstlineno, off);

				if (c->kind == PY_LT_LNOTAB)
					assert_true(got >= -1);
				else if (got != -1 && got != c->runs[r].line)
					fail_msg(
					    "%s %s cut at %zu: offset %d: want %d or -1, got %d",
					    c->version, c->name, cut, off, c->runs[r].line, got);
			}
			free(t);
		}
	}
}

/* ---- hand-made tables ---- */

static void test_lnotab(void **state)
{
	/* +2 lines at 0; 300 bytes on that line (255 + 45) then +1; 40 lines
	 * back, still at 300; a -128 line step at 304 (an ordinary step in
	 * co_lnotab, not a marker) */
	static const uint8_t t[] = {0, 2, 255, 0, 45, 1, 0, (uint8_t)-40, 4, (uint8_t)-128};

	(void)state;
	assert_int_equal(py_addr2line(PY_LT_LNOTAB, t, sizeof(t), 200, 0), 202);
	assert_int_equal(py_addr2line(PY_LT_LNOTAB, t, sizeof(t), 200, 298), 202);
	assert_int_equal(py_addr2line(PY_LT_LNOTAB, t, sizeof(t), 200, 300), 163);
	assert_int_equal(py_addr2line(PY_LT_LNOTAB, t, sizeof(t), 200, 302), 163);
	assert_int_equal(py_addr2line(PY_LT_LNOTAB, t, sizeof(t), 200, 304), 35);
	/* no code length in co_lnotab: the last line carries on */
	assert_int_equal(py_addr2line(PY_LT_LNOTAB, t, sizeof(t), 200, INT_MAX), 35);
	/* the line would go negative: corrupt */
	assert_int_equal(py_addr2line(PY_LT_LNOTAB, t, sizeof(t), 100, 304), -1);
	/* odd length */
	assert_int_equal(py_addr2line(PY_LT_LNOTAB, t, sizeof(t) - 1, 200, 0), -1);
}

static void test_linetable310(void **state)
{
	/* 6 bytes at +1; +127 lines in a zero-length range then 4 bytes at
	 * +3; 300 bytes with no line (split 254 + 46); 2 bytes 5 lines back */
	static const uint8_t t[] = {
	    6, 1, 0, 127, 4, 3, 254, (uint8_t)-128, 46, (uint8_t)-128, 2, (uint8_t)-5,
	};

	(void)state;
	assert_int_equal(py_addr2line(PY_LT_LINETABLE310, t, sizeof(t), 10, 0), 11);
	assert_int_equal(py_addr2line(PY_LT_LINETABLE310, t, sizeof(t), 10, 4), 11);
	assert_int_equal(py_addr2line(PY_LT_LINETABLE310, t, sizeof(t), 10, 6), 141);
	assert_int_equal(py_addr2line(PY_LT_LINETABLE310, t, sizeof(t), 10, 8), 141);
	assert_int_equal(py_addr2line(PY_LT_LINETABLE310, t, sizeof(t), 10, 10), -1);
	assert_int_equal(py_addr2line(PY_LT_LINETABLE310, t, sizeof(t), 10, 262), -1);
	assert_int_equal(py_addr2line(PY_LT_LINETABLE310, t, sizeof(t), 10, 308), -1);
	/* -128 did not move the line: 141 - 5 */
	assert_int_equal(py_addr2line(PY_LT_LINETABLE310, t, sizeof(t), 10, 310), 136);
	assert_int_equal(py_addr2line(PY_LT_LINETABLE310, t, sizeof(t), 10, 312), -1);
	assert_int_equal(py_addr2line(PY_LT_LINETABLE310, t, sizeof(t) - 1, 10, 0), -1);
}

static void test_locations(void **state)
{
	/* one entry a line */
	/* clang-format off */
	static const uint8_t t[] = {
		/* 1 unit, no columns, +100: svarint 200 = varint 0x48 0x03 */
		LOC_ENTRY(LOC_NO_COLUMNS, 1), 0x48, 0x03,
		/* 2 units, short form (code 3): same line */
		LOC_ENTRY(3, 2), 0x25,
		/* 8 units, one-line form +1, columns 72 and 82 */
		LOC_ENTRY(LOC_ONE_LINE1, 8), 0x48, 0x52,
		/* 1 unit, no location */
		LOC_ENTRY(LOC_NONE, 1),
		/* 3 units, long form -5 (svarint 11), end line +2, columns */
		LOC_ENTRY(LOC_LONG, 3), 0x0b, 0x02, 0x05, 0x07,
	};
	/* clang-format on */

	(void)state;
	assert_int_equal(py_addr2line(PY_LT_LOCATIONS, t, sizeof(t), 7, 0), 107);
	assert_int_equal(py_addr2line(PY_LT_LOCATIONS, t, sizeof(t), 7, 2), 107);
	assert_int_equal(py_addr2line(PY_LT_LOCATIONS, t, sizeof(t), 7, 4), 107);
	assert_int_equal(py_addr2line(PY_LT_LOCATIONS, t, sizeof(t), 7, 6), 108);
	assert_int_equal(py_addr2line(PY_LT_LOCATIONS, t, sizeof(t), 7, 20), 108);
	assert_int_equal(py_addr2line(PY_LT_LOCATIONS, t, sizeof(t), 7, 22), -1);
	/* the no-location entry did not move the line: 108 - 5 */
	assert_int_equal(py_addr2line(PY_LT_LOCATIONS, t, sizeof(t), 7, 24), 103);
	assert_int_equal(py_addr2line(PY_LT_LOCATIONS, t, sizeof(t), 7, 28), 103);
	assert_int_equal(py_addr2line(PY_LT_LOCATIONS, t, sizeof(t), 7, 30), -1);
	/* odd offsets fall in the instruction that holds them */
	assert_int_equal(py_addr2line(PY_LT_LOCATIONS, t, sizeof(t), 7, 1), 107);
}

/* ---- hostile input ---- */

static const enum py_linetable_kind kinds[] = {PY_LT_LNOTAB, PY_LT_LINETABLE310, PY_LT_LOCATIONS};

static void test_empty(void **state)
{
	static const uint8_t one = 0;

	(void)state;
	/* an empty co_lnotab means every instruction is on co_firstlineno
	 * (3.6's `lambda: 0`); the newer tables cover the code, so empty
	 * means nothing has a line */
	assert_int_equal(py_addr2line(PY_LT_LNOTAB, NULL, 0, 5, 0), 5);
	assert_int_equal(py_addr2line(PY_LT_LINETABLE310, NULL, 0, 5, 0), -1);
	assert_int_equal(py_addr2line(PY_LT_LOCATIONS, NULL, 0, 5, 0), -1);
	assert_int_equal(py_addr2line(PY_LT_LOCATIONS, &one, 0, 5, 0), -1);
	/* NULL with a length is a caller bug, not a reason to crash */
	assert_int_equal(py_addr2line(PY_LT_LNOTAB, NULL, 2, 5, 0), -1);
	assert_int_equal(py_addr2line(PY_LT_LOCATIONS, NULL, 2, 5, 0), -1);
	assert_int_equal(py_addr2line(PY_LT_NONE, &one, 1, 5, 0), -1);
	assert_int_equal(py_addr2line((enum py_linetable_kind)99, &one, 1, 5, 0), -1);
}

static void test_truncated(void **state)
{
	static const uint8_t no_varint[] = {LOC_ENTRY(LOC_NO_COLUMNS, 1)};
	static const uint8_t cut_varint[] = {LOC_ENTRY(LOC_LONG, 1), VARINT_MORE | 1};
	/* the varint runs into the next entry's start byte */
	static const uint8_t into_next[] = {LOC_ENTRY(LOC_LONG, 1), VARINT_MORE | 1,
					    LOC_ENTRY(0, 1), 0};
	/* a first byte without the entry bit: framing lost */
	static const uint8_t no_start[] = {0x10, LOC_ENTRY(0, 1), 0};
	/* a short form with its column byte cut: the line is still known */
	static const uint8_t no_columns[] = {LOC_ENTRY(0, 1)};
	static const uint8_t pair[] = {4, 1, 4};

	(void)state;
	assert_int_equal(py_addr2line(PY_LT_LOCATIONS, no_varint, sizeof(no_varint), 1, 0), -1);
	assert_int_equal(py_addr2line(PY_LT_LOCATIONS, cut_varint, sizeof(cut_varint), 1, 0), -1);
	assert_int_equal(py_addr2line(PY_LT_LOCATIONS, into_next, sizeof(into_next), 1, 0), -1);
	assert_int_equal(py_addr2line(PY_LT_LOCATIONS, no_start, sizeof(no_start), 1, 0), -1);
	assert_int_equal(py_addr2line(PY_LT_LOCATIONS, no_columns, sizeof(no_columns), 1, 0), 1);
	assert_int_equal(py_addr2line(PY_LT_LNOTAB, pair, sizeof(pair), 1, 0), -1);
	assert_int_equal(py_addr2line(PY_LT_LINETABLE310, pair, sizeof(pair), 1, 0), -1);
}

static void test_endless_varint(void **state)
{
	uint8_t t[4096];
	size_t n;

	(void)state;
	t[0] = LOC_ENTRY(LOC_LONG, 1);
	memset(t + 1, VARINT_MORE | 0x3f, sizeof(t) - 1);
	for (n = 1; n <= sizeof(t); n++)
		assert_int_equal(py_addr2line(PY_LT_LOCATIONS, t, n, 1, 0), -1);

	/* six chunks are the most a line delta may use: 2^35 - 1 lines is a
	 * legal varint, but no line number */
	memset(t + 1, VARINT_MORE | 0x3f, 5);
	t[6] = 0x3f;
	assert_int_equal(py_addr2line(PY_LT_LOCATIONS, t, 7, 1, 0), -1);
	/* and a seventh chunk is refused even when it is zero */
	memset(t + 1, VARINT_MORE, 6);
	t[7] = 0;
	assert_int_equal(py_addr2line(PY_LT_LOCATIONS, t, 8, 1, 0), -1);
	/* while six zero-padded chunks are fine */
	memset(t + 1, VARINT_MORE, 5);
	t[1] = VARINT_MORE | 4; /* +2 */
	t[6] = 0;
	assert_int_equal(py_addr2line(PY_LT_LOCATIONS, t, 7, 1, 0), 3);
}

static void test_line_overflow(void **state)
{
	static const uint8_t up_lnotab[] = {0, 1};
	static const uint8_t up_310[] = {2, 1};
	static const uint8_t up_loc[] = {LOC_ENTRY(LOC_ONE_LINE1, 1), 0, 0};
	static const uint8_t down_loc[] = {LOC_ENTRY(LOC_NO_COLUMNS, 1), 0x03}; /* -1 */

	(void)state;
	assert_int_equal(py_addr2line(PY_LT_LNOTAB, up_lnotab, 2, INT_MAX, 0), -1);
	assert_int_equal(py_addr2line(PY_LT_LINETABLE310, up_310, 2, INT_MAX, 0), -1);
	assert_int_equal(py_addr2line(PY_LT_LOCATIONS, up_loc, 3, INT_MAX, 0), -1);
	assert_int_equal(py_addr2line(PY_LT_LOCATIONS, down_loc, 2, INT_MIN, 0), -1);
	assert_int_equal(py_addr2line(PY_LT_LOCATIONS, down_loc, 2, 0, 0), -1);
	/* 3.12+ modules put RESUME on line 0, one below co_firstlineno */
	assert_int_equal(py_addr2line(PY_LT_LOCATIONS, down_loc, 2, 1, 0), 0);
}

static void test_offsets(void **state)
{
	static const int offsets[] = {-1, -2, INT_MIN, INT_MAX, INT_MAX - 1};
	size_t i, k;

	(void)state;
	for (i = 0; i < N_ELEMS(lt_cases); i++) {
		const struct lt_case *c = &lt_cases[i];

		for (k = 0; k < N_ELEMS(offsets); k++) {
			int got =
			    py_addr2line(c->kind, c->table, c->len, c->firstlineno, offsets[k]);

			/* co_lnotab cannot tell where the code ends */
			if (c->kind == PY_LT_LNOTAB && offsets[k] >= 0)
				assert_int_equal(got, c->runs[c->nruns - 1].line);
			else
				assert_int_equal(got, -1);
		}
	}
}

static void test_all_ones(void **state)
{
	uint8_t t[1024];
	size_t k;
	int off;

	(void)state;
	memset(t, 0xff, sizeof(t));
	/* 0xff is a no-location entry of 8 units: never a line */
	for (off = 0; off < 8192; off += 7)
		assert_int_equal(py_addr2line(PY_LT_LOCATIONS, t, sizeof(t), 1, off), -1);
	/* (255, -1) pairs: lines walk down, and stop being lines below 0.
	 * co_lnotab steps the line at the end of each 255 bytes, 3.10's
	 * table for the range itself. */
	assert_int_equal(py_addr2line(PY_LT_LNOTAB, t, sizeof(t), 1000, 0), 1000);
	assert_int_equal(py_addr2line(PY_LT_LNOTAB, t, sizeof(t), 1000, 255), 999);
	assert_int_equal(py_addr2line(PY_LT_LNOTAB, t, sizeof(t), 2, 255 * 3), -1);
	assert_int_equal(py_addr2line(PY_LT_LINETABLE310, t, sizeof(t), 1000, 0), 999);
	assert_int_equal(py_addr2line(PY_LT_LINETABLE310, t, sizeof(t), 1000, 255), 998);
	assert_int_equal(py_addr2line(PY_LT_LINETABLE310, t, sizeof(t), 2, 255 * 2), -1);
	for (k = 0; k < N_ELEMS(kinds); k++)
		assert_int_equal(py_addr2line(kinds[k], t, sizeof(t), INT_MIN, 0), -1);
}

/* xorshift64: reproducible without depending on libc's rand() */
static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static uint64_t rng(void)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return rng_state;
}

#define FUZZ_ITERATIONS 200000
#define FUZZ_MAX_LEN	96

static void fuzz_one(enum py_linetable_kind kind, const uint8_t *src, size_t len)
{
	/* an exact-size heap copy, so that ASan catches a read past len */
	uint8_t *t = malloc(len ? len : 1);
	static const int firsts[] = {0, 1, 1000, INT_MAX, INT_MIN, -5};
	int first, off, got;

	assert_non_null(t);
	if (len)
		memcpy(t, src, len);
	first = firsts[rng() % N_ELEMS(firsts)];
	switch (rng() % 3) {
	case 0:
		off = (int)(rng() % (len * 8 + 2));
		break;
	case 1:
		off = (int)(uint32_t)rng();
		break;
	default:
		off = (int)(rng() % 64) * CODE_UNIT;
		break;
	}
	got = py_addr2line(kind, t, len, first, off);
	assert_true(got >= -1);
	free(t);
}

static void test_fuzz_random(void **state)
{
	uint8_t buf[FUZZ_MAX_LEN];
	int i;

	(void)state;
	for (i = 0; i < FUZZ_ITERATIONS; i++) {
		size_t len = rng() % (FUZZ_MAX_LEN + 1), j;
		uint64_t bias = rng() % 4;

		for (j = 0; j < len; j++) {
			uint8_t b = (uint8_t)rng();

			/* bias some tables towards entry starts and varint
			 * continuations, where the interesting paths are */
			if (bias == 1 && !(j % 3))
				b |= 0x80;
			else if (bias == 2)
				b = (b & 0x80) ? b : (b | VARINT_MORE);
			buf[j] = b;
		}
		fuzz_one(kinds[rng() % N_ELEMS(kinds)], buf, len);
	}
}

/* Real tables with a few bytes flipped, under every kind. */
static void test_fuzz_mutated(void **state)
{
	uint8_t buf[4096];
	int i;

	(void)state;
	for (i = 0; i < FUZZ_ITERATIONS / 4; i++) {
		const struct lt_case *c = &lt_cases[rng() % N_ELEMS(lt_cases)];
		size_t len = c->len < sizeof(buf) ? c->len : sizeof(buf);
		int flips = (int)(rng() % 4), f;

		if (len)
			memcpy(buf, c->table, len);
		for (f = 0; f < flips && len; f++)
			buf[rng() % len] ^= (uint8_t)(1u << (rng() % 8));
		if (len && rng() % 2)
			len = rng() % len;
		fuzz_one(rng() % 4 ? c->kind : kinds[rng() % N_ELEMS(kinds)], buf, len);
	}
}

int main(void)
{
	static const struct CMUnitTest fixed[] = {
	    cmocka_unit_test(test_truncated_real_tables),
	    cmocka_unit_test(test_lnotab),
	    cmocka_unit_test(test_linetable310),
	    cmocka_unit_test(test_locations),
	    cmocka_unit_test(test_empty),
	    cmocka_unit_test(test_truncated),
	    cmocka_unit_test(test_endless_varint),
	    cmocka_unit_test(test_line_overflow),
	    cmocka_unit_test(test_offsets),
	    cmocka_unit_test(test_all_ones),
	    cmocka_unit_test(test_fuzz_random),
	    cmocka_unit_test(test_fuzz_mutated),
	};
	static char names[N_ELEMS(lt_versions)][32];
	static struct lt_version versions[N_ELEMS(lt_versions)];
	struct CMUnitTest tests[N_ELEMS(lt_versions) + N_ELEMS(fixed)];
	size_t i, n = 0;

	/* one test per interpreter the vectors came from */
	for (i = 0; i < N_ELEMS(lt_versions); i++) {
		versions[i] = lt_versions[i];
		snprintf(names[i], sizeof(names[i]), "vectors_%s", lt_versions[i].version);
		tests[n++] = (struct CMUnitTest){
		    .name = names[i], .test_func = test_version, .initial_state = &versions[i]};
	}
	for (i = 0; i < N_ELEMS(fixed); i++)
		tests[n++] = fixed[i];
	return _cmocka_run_group_tests("linetable", tests, n, NULL, NULL);
}

// SPDX-License-Identifier: GPL-3.0-or-later
/*
 * linetable: instruction offset -> source line, for the three line-table
 * formats CPython 3.6 - 3.13 use (co_lnotab, 3.10's co_linetable, and the
 * 3.11+ PEP 657 location table).
 *
 * Promises: the answer is the one the target's own PyCode_Addr2Line() would
 * give for a non-negative byte offset, or -1 ("no line", offset outside the
 * table, or a table that is not well formed).  The table comes out of a
 * possibly hostile process, so decoding never reads past len, visits each
 * byte at most once (every loop is bounded by len), keeps line arithmetic in
 * 64 bits with a range check, caps varints, and allocates nothing.
 */
#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "linetable.h"

/* co_lnotab (3.6 - 3.9) and 3.10's co_linetable are byte pairs. */
#define PAIR_SIZE 2

/* 3.10: a line delta of -128 marks a range that has no line. */
#define LT310_NO_LINE (-128)

/*
 * 3.11+ location entries.  The first byte of an entry is 1cccclll: the high
 * bit starts an entry (every following byte of the entry has it clear), cccc
 * is the code below, lll is the number of code units covered, minus one.
 */
#define LOC_ENTRY_START 0x80
#define LOC_CODE_SHIFT	3
#define LOC_CODE_MASK	0x0f
#define LOC_LENGTH_MASK 0x07
#define CODE_UNIT_SIZE	2 /* sizeof(_Py_CODEUNIT): the table counts these */

enum loc_code {
	LOC_SHORT0 = 0, /* 0 - 9: same line, columns in one more byte */
	LOC_SHORT9 = 9,
	LOC_ONE_LINE0 = 10, /* 10 - 12: line delta = code - 10 */
	LOC_ONE_LINE1 = 11,
	LOC_ONE_LINE2 = 12,
	LOC_NO_COLUMNS = 13, /* svarint line delta */
	LOC_LONG = 14,	     /* svarint line delta, varint end line, col, end col */
	LOC_NONE = 15,	     /* no location: the instruction has no line */
};

/*
 * varint: 6-bit chunks, least significant first, bit 6 set on every chunk
 * but the last.  Real line deltas fit in 32 bits (6 chunks); more chunks
 * than that can only come from a corrupt table, so they are refused rather
 * than shifted out of range.
 */
#define VARINT_CHUNK_BITS 6
#define VARINT_CHUNK_MASK 0x3f
#define VARINT_MORE	  0x40
#define VARINT_MAX_BYTES  6

/* Line numbers are C ints; anything that leaves this range is corruption. */
static bool line_ok(int64_t line)
{
	return line >= INT_MIN && line <= INT_MAX;
}

/* The line to hand back: a negative line cannot be real, and would be
 * mistaken for (or collide with) the -1 "no line" answer. */
static int result(int64_t line)
{
	return line >= 0 && line <= INT_MAX ? (int)line : -1;
}

/*
 * 3.6 - 3.9 co_lnotab: (addr increment, line increment) pairs, the line
 * increment signed since 3.6.  An increment applies to the instructions at
 * and after the new address.  The table does not record the code's length,
 * so an offset past the last pair gets the last line, as in CPython; the
 * caller must bound the offset by len(co_code).
 */
static int lnotab_line(const uint8_t *t, size_t len, int firstlineno, int64_t offset)
{
	int64_t line = firstlineno;
	int64_t addr = 0;
	size_t i;

	/* An odd length means the table is not what we think it is. */
	if (len % PAIR_SIZE)
		return -1;
	for (i = 0; i < len; i += PAIR_SIZE) {
		addr += t[i];
		if (addr > offset)
			break;
		line += (int8_t)t[i + 1];
		if (!line_ok(line))
			return -1;
	}
	return result(line);
}

/*
 * 3.10 co_linetable: (byte delta, line delta) pairs, each describing the
 * range [end, end + delta) of bytecode.  Zero-length ranges only carry line
 * increments (for line jumps beyond +-127); a line delta of -128 means the
 * range has no line, without moving the running line.
 */
static int linetable310_line(const uint8_t *t, size_t len, int firstlineno, int64_t offset)
{
	int64_t computed = firstlineno;
	int64_t end = 0;
	size_t i;

	if (len % PAIR_SIZE)
		return -1;
	for (i = 0; i < len; i += PAIR_SIZE) {
		int ldelta = (int8_t)t[i + 1];
		int64_t line = -1;

		end += t[i];
		if (ldelta != LT310_NO_LINE) {
			computed += ldelta;
			if (!line_ok(computed))
				return -1;
			line = computed;
		}
		/* The range starts at the previous end, which is <= offset,
		 * else we would have returned already. */
		if (offset < end)
			return result(line);
	}
	return -1;
}

/*
 * Read an unsigned varint at t[*pos], stopping at len.  Returns false when
 * it runs off the table, into the next entry, or past VARINT_MAX_BYTES.
 */
static bool read_varint(const uint8_t *t, size_t len, size_t *pos, uint64_t *val)
{
	uint64_t v = 0;
	int n;

	for (n = 0; n < VARINT_MAX_BYTES; n++) {
		uint8_t b;

		if (*pos >= len)
			return false;
		b = t[(*pos)++];
		if (b & LOC_ENTRY_START)
			return false;
		v |= (uint64_t)(b & VARINT_CHUNK_MASK) << (n * VARINT_CHUNK_BITS);
		if (!(b & VARINT_MORE)) {
			*val = v;
			return true;
		}
	}
	return false;
}

/* svarint: a varint whose lowest bit is the sign, the rest the magnitude. */
static bool read_svarint(const uint8_t *t, size_t len, size_t *pos, int64_t *val)
{
	uint64_t u;

	if (!read_varint(t, len, pos, &u))
		return false;
	/* u < 2^36, so the magnitude fits an int64 either way */
	*val = (u & 1) ? -(int64_t)(u >> 1) : (int64_t)(u >> 1);
	return true;
}

/*
 * 3.11 - 3.13 location table (Objects/locations.md; the format did not change
 * between these versions).  Each entry covers 1 - 8 code units and moves the
 * running start line; only the start line matters here, the columns and end
 * line are skipped like CPython does, by looking for the next entry's start
 * byte.
 */
static int locations_line(const uint8_t *t, size_t len, int firstlineno, int64_t offset)
{
	int64_t computed = firstlineno;
	int64_t end = 0;
	size_t pos = 0;

	while (pos < len) {
		uint8_t first = t[pos++];
		enum loc_code code = (first >> LOC_CODE_SHIFT) & LOC_CODE_MASK;
		int64_t delta = 0;
		int64_t line;

		/* Every entry begins with its start bit; a table that does not
		 * has lost its framing. */
		if (!(first & LOC_ENTRY_START))
			return -1;
		switch (code) {
		case LOC_ONE_LINE0:
		case LOC_ONE_LINE1:
		case LOC_ONE_LINE2:
			delta = code - LOC_ONE_LINE0;
			break;
		case LOC_NO_COLUMNS:
		case LOC_LONG:
			if (!read_svarint(t, len, &pos, &delta))
				return -1;
			break;
		case LOC_NONE:
		default: /* LOC_SHORT0 - LOC_SHORT9: same line */
			break;
		}
		computed += delta;
		if (!line_ok(computed))
			return -1;
		line = code == LOC_NONE ? -1 : computed;
		end += ((first & LOC_LENGTH_MASK) + 1) * CODE_UNIT_SIZE;
		if (offset < end)
			return result(line);
		/* skip the columns (and end line) to the next entry */
		while (pos < len && !(t[pos] & LOC_ENTRY_START))
			pos++;
	}
	return -1;
}

int py_addr2line(enum py_linetable_kind kind, const uint8_t *table, size_t len, int firstlineno,
		 int offset)
{
	/*
	 * CPython answers co_firstlineno for a negative address (a frame that
	 * has not started yet); we promise -1 for anything outside the table
	 * and leave that choice to the caller.
	 */
	if (offset < 0)
		return -1;
	if (!table && len)
		return -1;
	switch (kind) {
	case PY_LT_LNOTAB:
		return lnotab_line(table, len, firstlineno, offset);
	case PY_LT_LINETABLE310:
		return linetable310_line(table, len, firstlineno, offset);
	case PY_LT_LOCATIONS:
		return locations_line(table, len, firstlineno, offset);
	case PY_LT_NONE:
	default:
		return -1;
	}
}

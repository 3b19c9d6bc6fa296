/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * linetable: map an instruction offset in a code object to its source line,
 * for every line-table format CPython has used since 3.6.
 *
 * The table bytes come from the target and are untrusted: decoding never
 * reads past len, every loop is bounded by len, and a malformed table gives
 * -1, never a crash.
 */
#ifndef PYLEAKDB_LINETABLE_H
#define PYLEAKDB_LINETABLE_H

#include <stddef.h>
#include <stdint.h>

#include "pyoffsets.h"

/*
 * The line of the instruction that starts at byte offset `offset` of the
 * code object's bytecode, given its line table (co_lnotab or co_linetable,
 * per `kind`) and co_firstlineno.  Returns -1 when the instruction has no
 * line (3.10+ tables can say so), the offset lies outside the table, or the
 * table is malformed.
 */
int py_addr2line(enum py_linetable_kind kind, const uint8_t *table, size_t len, int firstlineno,
		 int offset);

#endif

/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * disasm: machine code of the target, decoded with capstone, with call and
 * jump targets named by symbol.
 */
#ifndef PYLEAKDB_DISASM_H
#define PYLEAKDB_DISASM_H

#include <stddef.h>
#include <stdint.h>

#include "maps.h"
#include "task.h"

struct insn {
	uint64_t addr;
	uint8_t bytes[16];
	size_t len;
	char text[224];	 /* "call 0x4a0b10": capstone mnemonic (32) and operands (160) */
	uint64_t target; /* a direct call or jump's destination, 0 when none */
	int is_call;
};

/*
 * Decode up to n instructions starting at addr.  *out is allocated; returns
 * how many were decoded (0 when the memory is unreadable or not code),
 * -1 with an error when capstone cannot start.
 */
int disasm(struct task *t, uint64_t addr, size_t n, struct insn **out);

#endif

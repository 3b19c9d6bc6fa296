// SPDX-License-Identifier: GPL-3.0-or-later
/*
 * disasm: capstone over target memory.  See include/disasm.h.
 */
#include <capstone/capstone.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "arch.h"
#include "disasm.h"
#include "mem.h"
#include "util.h"

#define DISASM_MAX 10000

int disasm(struct task *t, uint64_t addr, size_t n, struct insn **out)
{
	csh handle;
	cs_insn *ci;
	unsigned char *code;
	size_t len, got, count, i;

	*out = NULL;
	if (n > DISASM_MAX)
		n = DISASM_MAX;
	if (cs_open(CS_ARCH_X86, CS_MODE_64, &handle) != CS_ERR_OK)
		return error("cannot start the capstone disassembler");
	cs_option(handle, CS_OPT_DETAIL, CS_OPT_ON);
	len = n * ARCH_MAX_INSN_LEN;
	code = xmalloc(len);
	/* read as much as is mapped: the code may end at a page boundary */
	got = len;
	while (got && mem_read(t, addr, code, got) < 0)
		got = got > 4096 ? got - 4096 : got / 2;
	count = got ? cs_disasm(handle, code, got, addr, n, &ci) : 0;
	*out = xcalloc(count ? count : 1, sizeof(**out));
	for (i = 0; i < count; i++) {
		struct insn *in = &(*out)[i];
		cs_detail *d = ci[i].detail;

		in->addr = ci[i].address;
		in->len = ci[i].size < sizeof(in->bytes) ? ci[i].size : sizeof(in->bytes);
		memcpy(in->bytes, ci[i].bytes, in->len);
		snprintf(in->text, sizeof(in->text), "%s%s%s", ci[i].mnemonic,
			 ci[i].op_str[0] ? " " : "", ci[i].op_str);
		for (uint8_t g = 0; d && g < d->groups_count; g++) {
			int call = d->groups[g] == CS_GRP_CALL;

			if (!call && d->groups[g] != CS_GRP_JUMP)
				continue;
			in->is_call = call;
			if (d->x86.op_count == 1 && d->x86.operands[0].type == X86_OP_IMM)
				in->target = (uint64_t)d->x86.operands[0].imm;
		}
	}
	if (count)
		cs_free(ci, count);
	free(code);
	cs_close(&handle);
	return (int)count;
}

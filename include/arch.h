/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * arch: the machine, as data.  Register roles, the breakpoint instruction,
 * the calling and syscall conventions.  Only x86-64 Linux is supported; the
 * logic elsewhere reaches registers through these accessors and never names
 * a register itself.
 */
#ifndef PYLEAKDB_ARCH_H
#define PYLEAKDB_ARCH_H

#include <stdint.h>
#include <sys/user.h>

typedef struct user_regs_struct arch_regs;

#define ARCH_NAME "x86-64"

static inline uint64_t arch_pc(const arch_regs *r)
{
	return r->rip;
}
static inline void arch_set_pc(arch_regs *r, uint64_t pc)
{
	r->rip = pc;
}
static inline uint64_t arch_sp(const arch_regs *r)
{
	return r->rsp;
}
static inline void arch_set_sp(arch_regs *r, uint64_t sp)
{
	r->rsp = sp;
}
static inline uint64_t arch_fp(const arch_regs *r)
{
	return r->rbp;
}
/* The thread pointer: on x86-64 glibc it is also pthread_self(). */
static inline uint64_t arch_thread_pointer(const arch_regs *r)
{
	return r->fs_base;
}

/*
 * A register by its DWARF number (the x86-64 psABI's: 0 rax, 1 rdx, 2 rcx,
 * 3 rbx, 4 rsi, 5 rdi, 6 rbp, 7 rsp, 8-15 r8-r15, 16 the return address).
 * -1 for a number that names no general register.
 */
static inline int arch_dwarf_reg(const arch_regs *r, int regno, uint64_t *out)
{
	const unsigned long long *by_number[] = {
	    &r->rax, &r->rdx, &r->rcx, &r->rbx, &r->rsi, &r->rdi, &r->rbp, &r->rsp, &r->r8,
	    &r->r9,  &r->r10, &r->r11, &r->r12, &r->r13, &r->r14, &r->r15, &r->rip,
	};

	if (regno < 0 || regno >= (int)(sizeof(by_number) / sizeof(by_number[0])))
		return -1;
	*out = *by_number[regno];
	return 0;
}

/* The function-call convention (System V AMD64). */
#define ARCH_MAX_CALL_ARGS 6
#define ARCH_RED_ZONE	   128
#define ARCH_STACK_ALIGN   16
static inline void arch_set_call_arg(arch_regs *r, int i, uint64_t v)
{
	switch (i) {
	case 0:
		r->rdi = v;
		break;
	case 1:
		r->rsi = v;
		break;
	case 2:
		r->rdx = v;
		break;
	case 3:
		r->rcx = v;
		break;
	case 4:
		r->r8 = v;
		break;
	case 5:
		r->r9 = v;
		break;
	}
}
static inline uint64_t arch_return_value(const arch_regs *r)
{
	return r->rax;
}

/* The syscall convention: number in rax, arguments rdi rsi rdx r10 r8 r9. */
#define ARCH_MAX_SYSCALL_ARGS 6
static inline void arch_set_syscall(arch_regs *r, long nr, const uint64_t *args, int nargs)
{
	uint64_t a[ARCH_MAX_SYSCALL_ARGS] = {0};

	for (int i = 0; i < nargs && i < ARCH_MAX_SYSCALL_ARGS; i++)
		a[i] = args[i];
	r->rax = (uint64_t)nr;
	r->rdi = a[0];
	r->rsi = a[1];
	r->rdx = a[2];
	r->r10 = a[3];
	r->r8 = a[4];
	r->r9 = a[5];
}
/* The i-th argument of the syscall the thread is in (rdi, rsi, rdx, r10, r8, r9). */
static inline uint64_t arch_syscall_arg(const arch_regs *r, int i)
{
	switch (i) {
	case 0:
		return r->rdi;
	case 1:
		return r->rsi;
	case 2:
		return r->rdx;
	case 3:
		return r->r10;
	case 4:
		return r->r8;
	case 5:
		return r->r9;
	}
	return 0;
}

/* The syscall the thread was in when it stopped, -1 when none. */
static inline long arch_orig_syscall(const arch_regs *r)
{
	return (long)r->orig_rax;
}
/* Keeps the kernel from restarting an interrupted syscall under our registers. */
static inline void arch_clear_syscall_restart(arch_regs *r)
{
	r->orig_rax = (uint64_t)-1;
}

/* int3, and the instruction after which a trap leaves the PC. */
#define ARCH_BREAKPOINT_INSN	 "\xcc"
#define ARCH_BREAKPOINT_LEN	 1
#define ARCH_PC_AFTER_BREAKPOINT 1
/* syscall; int3: a remote syscall executes this and traps right after. */
#define ARCH_SYSCALL_INSN "\x0f\x05"
#define ARCH_SYSCALL_LEN  2

/* The longest instruction, for disassembly buffers. */
#define ARCH_MAX_INSN_LEN 15

#endif

// SPDX-License-Identifier: GPL-3.0-or-later
/*
 * inject: remote system calls and remote function calls on x86-64.  See
 * include/inject.h for what it promises.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "arch.h"
#include "inject.h"
#include "mem.h"
#include "procfs.h"
#include "util.h"

/* Room below the red zone before the frame of a remote call. */
#define CALL_STACK_SLACK 256
/* How long a remote system call (mmap) may take. */
#define SYSCALL_TIMEOUT_US (5 * 1000 * 1000)
/* How far into an executable mapping we look for a `syscall` instruction. */
#define SYSCALL_SCAN_BYTES (256 * 1024)
/* Where the trampoline's control block sits in the data area. */
#define TRAMP_CTL_OFFSET 0

/* The kernel's internal "restart me" codes (include/linux/errno.h in the kernel). */
#define ERESTARTSYS	      512
#define ERESTARTNOINTR	      513
#define ERESTARTNOHAND	      514
#define ERESTART_RESTARTBLOCK 516

void inject_init(struct injector *ij, struct task *t, struct modules *mods)
{
	memset(ij, 0, sizeof(*ij));
	ij->task = t;
	ij->mods = mods;
	ij->call_timeout_us = 10ll * 1000 * 1000;
	ij->safepoint_timeout_us = 30ll * 1000 * 1000;
	ij->others_run = 1;
}

void inject_progress(struct injector *ij, const char *what, uint64_t start_us, uint64_t *last_us)
{
	uint64_t now = now_us();

	if (!ij->progress || now - start_us < 1000000 || now - *last_us < 1000000)
		return;
	*last_us = now;
	ij->progress(ij->progress_arg, what, (double)(now - start_us) / 1e6);
}

/* ----- the stubs, assembled here (the unit test disassembles them) ----- */

struct emit {
	uint8_t *out;
	size_t len, pos;
};

static void emit(struct emit *e, const void *bytes, size_t n)
{
	if (e->pos + n <= e->len)
		memcpy(e->out + e->pos, bytes, n);
	e->pos += n;
}

static void emit_u8(struct emit *e, uint8_t b)
{
	emit(e, &b, 1);
}

static void emit_imm32(struct emit *e, uint32_t v)
{
	emit(e, &v, 4);
}

/* mov eax, imm32 */
static void emit_mov_eax(struct emit *e, uint32_t v)
{
	emit_u8(e, 0xb8);
	emit_imm32(e, v);
}

static void emit_syscall(struct emit *e)
{
	emit(e, ARCH_SYSCALL_INSN, ARCH_SYSCALL_LEN);
}

/* An instruction with a RIP-relative memory operand: opcode bytes, ModRM reg field, target. */
static void emit_riprel(struct emit *e, const char *op, size_t oplen, int reg, uint64_t code_at,
			uint64_t target)
{
	int64_t disp;

	emit(e, op, oplen);
	emit_u8(e, (uint8_t)(((reg & 7) << 3) | 5));
	disp = (int64_t)(target - (code_at + e->pos + 4));
	emit_imm32(e, (uint32_t)(int32_t)disp);
}

/* mov r64, [rip + target] for register number r (rax 0 ... r15 15) */
static void emit_load(struct emit *e, int r, uint64_t code_at, uint64_t target)
{
	char op[2] = {(char)(0x48 | (r >= 8 ? 4 : 0)), (char)0x8b};

	emit_riprel(e, op, 2, r, code_at, target);
}

/* a forward jump (jz, jnz, jmp: its opcode), patched by patch_jump once the label is known */
static size_t emit_jump(struct emit *e, uint8_t opcode)
{
	emit_u8(e, opcode);
	emit_u8(e, 0);
	return e->pos - 1;
}

static void patch_jump(struct emit *e, size_t at)
{
	if (at < e->len)
		e->out[at] = (uint8_t)(e->pos - (at + 1));
}

#define RESCUE(field) (rescue + offsetof(struct inject_rescue, field))

/*
 * The return stub: keep the return value in r12, raise sig at this thread
 * (traced, pyleakdb takes the thread there).  If that returns, nobody traces
 * us any more: the thread the rescue record names is put back as it was;
 * any other parks.
 */
size_t inject_ret_stub_code(uint8_t *out, size_t len, int sig, uint64_t at, uint64_t rescue)
{
	/* the registers in the order of struct inject_rescue's regs (rsp apart) */
	static const int gprs[] = {0, 3, 1, 2, 6, 7, 5, 8, 9, 10, 11, 12, 13, 14, 15};
	struct emit e = {out, len, 0};
	size_t park, to_park, no_swap, no_leave, no_gil, own_gstate, no_xsave, back;

	emit(&e, "\x49\x89\xc4", 3); /* mov r12, rax */
	emit_mov_eax(&e, __NR_getpid);
	emit_syscall(&e);
	emit(&e, "\x49\x89\xc5", 3); /* mov r13, rax */
	emit_mov_eax(&e, __NR_gettid);
	emit_syscall(&e);
	emit(&e, "\x48\x89\xc6", 3); /* mov rsi, rax */
	emit(&e, "\x4c\x89\xef", 3); /* mov rdi, r13 */
	emit_u8(&e, 0xba);	     /* mov edx, sig */
	emit_imm32(&e, (uint32_t)sig);
	emit_mov_eax(&e, __NR_tgkill);
	emit_syscall(&e);

	/* untraced from here on: is this the thread the record is for? */
	emit_mov_eax(&e, __NR_gettid);
	emit_syscall(&e);
	emit_riprel(&e, "\x3b", 1, 0, at, RESCUE(tid)); /* cmp eax, [tid] */
	emit(&e, "\x0f\x85", 2);			/* jne park (rel32) */
	to_park = e.pos;
	emit_imm32(&e, 0);
	/* the stack is 16-byte aligned here (the call's return address was popped) */
	emit_load(&e, 7, at, RESCUE(swap_ts)); /* mov rdi, [swap_ts] */
	emit(&e, "\x48\x85\xff", 3);	       /* test rdi, rdi */
	no_swap = emit_jump(&e, 0x74);
	emit_riprel(&e, "\xff", 1, 2, at, RESCUE(swap_fn)); /* call [swap_fn] */
	patch_jump(&e, no_swap);
	emit_load(&e, 7, at, RESCUE(leave_ts)); /* mov rdi, [leave_ts] */
	emit(&e, "\x48\x85\xff", 3);
	no_leave = emit_jump(&e, 0x74);
	emit_riprel(&e, "\xff", 1, 2, at, RESCUE(leave_fn)); /* call [leave_fn] */
	patch_jump(&e, no_leave);
	emit_riprel(&e, "\x8b", 1, 0, at, RESCUE(gil_mode)); /* mov eax, [gil_mode] */
	emit(&e, "\x85\xc0", 2);			     /* test eax, eax */
	no_gil = emit_jump(&e, 0x74);
	emit_load(&e, 7, at, RESCUE(gstate)); /* mov rdi, [gstate] */
	emit(&e, "\x83\xf8\x02", 3);	      /* cmp eax, 2 */
	own_gstate = emit_jump(&e, 0x75);
	emit(&e, "\x4c\x89\xe7", 3); /* mov rdi, r12: what PyGILState_Ensure returned */
	patch_jump(&e, own_gstate);
	emit_riprel(&e, "\xff", 1, 2, at, RESCUE(gil_release)); /* call [gil_release] */
	patch_jump(&e, no_gil);
	/* rt_sigprocmask(SIG_SETMASK, &sigmask, NULL, 8) */
	emit_mov_eax(&e, __NR_rt_sigprocmask);
	emit_u8(&e, 0xbf); /* mov edi, SIG_SETMASK */
	emit_imm32(&e, SIG_SETMASK);
	emit_riprel(&e, "\x48\x8d", 2, 6, at, RESCUE(sigmask)); /* lea rsi, [sigmask] */
	emit(&e, "\x31\xd2", 2);				/* xor edx, edx */
	emit(&e, "\x41\xba\x08\x00\x00\x00", 6);		/* mov r10d, 8 */
	emit_syscall(&e);
	/* the extended state, every component the area holds */
	emit_load(&e, 0, at, RESCUE(xsave_len)); /* mov rax, [xsave_len] */
	emit(&e, "\x48\x85\xc0", 3);		 /* test rax, rax */
	no_xsave = emit_jump(&e, 0x74);
	emit(&e, "\xb8\xff\xff\xff\xff", 5);			  /* mov eax, -1 */
	emit(&e, "\xba\xff\xff\xff\xff", 5);			  /* mov edx, -1 */
	emit_riprel(&e, "\x48\x0f\xae", 3, 5, at, RESCUE(xsave)); /* xrstor64 [xsave] */
	patch_jump(&e, no_xsave);
	/* flags, then the registers (mov leaves the flags alone), the stack, the PC */
	emit_riprel(&e, "\xff", 1, 6, at, RESCUE(regs[15])); /* push [rflags] */
	emit_u8(&e, 0x9d);				     /* popfq */
	for (size_t i = 0; i < ARRAY_SIZE(gprs); i++)
		emit_load(&e, gprs[i], at, RESCUE(regs[i]));
	emit_load(&e, 4, at, RESCUE(regs[16]));		     /* mov rsp, [rsp] */
	emit_riprel(&e, "\xff", 1, 4, at, RESCUE(regs[17])); /* jmp [rip] */

	park = e.pos;
	emit_mov_eax(&e, __NR_pause);
	emit_syscall(&e);
	back = e.pos + 2;
	emit_u8(&e, 0xeb); /* jmp park */
	emit_u8(&e, (uint8_t)(park - back));
	if (to_park + 4 <= e.len) {
		int32_t rel = (int32_t)(park - (to_park + 4));

		memcpy(out + to_park, &rel, 4);
	}
	return e.pos;
}

/*
 * The pending-call trampoline, int tramp(struct inject_tramp_ctl *ctl):
 * in the traced process, count the call and raise ctl->sig at this thread
 * (we stop it there, at a safe point, with the GIL held), then return
 * ctl->ret; in a forked child, return 0 at once.
 */
size_t inject_tramp_code(uint8_t *out, size_t len)
{
	struct emit e = {out, len, 0};
	size_t jne_at, not_ours;

	emit_u8(&e, 0x53);	     /* push rbx */
	emit(&e, "\x48\x89\xfb", 3); /* mov rbx, rdi */
	emit_mov_eax(&e, __NR_getpid);
	emit_syscall(&e);
	emit(&e, "\x3b\x03", 2); /* cmp eax, [rbx]   (ctl->pid) */
	emit_u8(&e, 0x75);	 /* jne not_ours */
	jne_at = e.pos;
	emit_u8(&e, 0);
	emit(&e, "\xff\x43\x0c", 3); /* inc dword [rbx+12] (ctl->fired) */
	emit(&e, "\x41\x89\xc0", 3); /* mov r8d, eax */
	emit_mov_eax(&e, __NR_gettid);
	emit_syscall(&e);
	emit(&e, "\x89\xc6", 2);     /* mov esi, eax */
	emit(&e, "\x44\x89\xc7", 3); /* mov edi, r8d */
	emit(&e, "\x8b\x53\x04", 3); /* mov edx, [rbx+4] (ctl->sig) */
	emit_mov_eax(&e, __NR_tgkill);
	emit_syscall(&e);
	emit(&e, "\x8b\x43\x08", 3); /* mov eax, [rbx+8] (ctl->ret) */
	emit_u8(&e, 0x5b);	     /* pop rbx */
	emit_u8(&e, 0xc3);	     /* ret */
	not_ours = e.pos;
	emit(&e, "\x31\xc0", 2); /* xor eax, eax */
	emit_u8(&e, 0x5b);	 /* pop rbx */
	emit_u8(&e, 0xc3);	 /* ret */
	if (jne_at < len)
		out[jne_at] = (uint8_t)(not_ours - (jne_at + 1));
	return e.pos;
}

_Static_assert(offsetof(struct inject_tramp_ctl, pid) == 0, "trampoline reads pid at +0");
_Static_assert(offsetof(struct inject_tramp_ctl, sig) == 4, "trampoline reads sig at +4");
_Static_assert(offsetof(struct inject_tramp_ctl, ret) == 8, "trampoline reads ret at +8");
_Static_assert(offsetof(struct inject_tramp_ctl, fired) == 12, "trampoline counts at +12");

/* ----- choosing the signal ----- */

static uint64_t status_mask(pid_t pid, const char *field)
{
	char path[64], line[256];
	uint64_t v = 0;
	size_t n = strlen(field);
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/status", pid);
	f = fopen(path, "re");
	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f))
		if (!strncmp(line, field, n) && line[n] == ':')
			v = strtoull(line + n + 1, NULL, 16);
	fclose(f);
	return v;
}

int inject_pick_trap_signal(pid_t pid, int *sig)
{
	/* both are ignored by default: if we are gone when the stub runs, nothing happens */
	static const int candidates[] = {SIGURG, SIGWINCH};
	uint64_t caught = status_mask(pid, "SigCgt");

	for (size_t i = 0; i < ARRAY_SIZE(candidates); i++) {
		if (caught & (1ull << (candidates[i] - 1)))
			continue;
		*sig = candidates[i];
		return 0;
	}
	return error("process %d handles both SIGURG and SIGWINCH; pyleakdb needs one of them at "
		     "its default to run code in it safely",
		     pid);
}

/* ----- system calls ----- */

/* Any `syscall` instruction in executable memory will do: we execute just it. */
static int find_syscall_insn(struct injector *ij)
{
	unsigned char *buf;
	struct maps m;

	if (ij->syscall_insn)
		return 0;
	if (maps_read(ij->task->pid, &m) < 0)
		return -1;
	buf = xmalloc(SYSCALL_SCAN_BYTES);
	for (size_t i = 0; i < m.n && !ij->syscall_insn; i++) {
		const struct map *mp = &m.v[i];
		size_t len = mp->end - mp->start;
		unsigned char *hit;

		if (mp->perms[2] != 'x' || !strcmp(mp->path, "[vsyscall]"))
			continue;
		if (len > SYSCALL_SCAN_BYTES)
			len = SYSCALL_SCAN_BYTES;
		if (mem_read(ij->task, mp->start, buf, len) < 0)
			continue;
		hit = memmem(buf, len, ARCH_SYSCALL_INSN, ARCH_SYSCALL_LEN);
		if (hit)
			ij->syscall_insn = mp->start + (uint64_t)(hit - buf);
	}
	free(buf);
	maps_release(&m);
	if (!ij->syscall_insn)
		return error("no syscall instruction found in the target's code");
	return 0;
}

/* Async signals stay pending while we use a thread; faults, and our own trap, must reach us. */
static uint64_t call_sigmask(int trap_sig)
{
	static const int sync[] = {SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGTRAP, SIGSYS, SIGABRT};
	uint64_t mask = ~0ull;

	for (size_t i = 0; i < ARRAY_SIZE(sync); i++)
		mask &= ~(1ull << (sync[i] - 1));
	if (trap_sig)
		mask &= ~(1ull << (trap_sig - 1));
	return mask;
}

/*
 * Where the thread goes on from, as the kernel would let it go: an
 * interrupted system call that is to be restarted is set up to run again.
 */
static void resume_point(const arch_regs *r, uint64_t *regs)
{
	uint64_t rip = r->rip, rax = r->rax;

	if ((int64_t)r->orig_rax >= 0) {
		switch ((int64_t)r->rax) {
		case -ERESTARTSYS:
		case -ERESTARTNOINTR:
		case -ERESTARTNOHAND:
			rax = r->orig_rax;
			rip -= ARCH_SYSCALL_LEN;
			break;
		case -ERESTART_RESTARTBLOCK:
			rax = __NR_restart_syscall;
			rip -= ARCH_SYSCALL_LEN;
			break;
		}
	}
	regs[0] = rax;
	regs[1] = r->rbx;
	regs[2] = r->rcx;
	regs[3] = r->rdx;
	regs[4] = r->rsi;
	regs[5] = r->rdi;
	regs[6] = r->rbp;
	regs[7] = r->r8;
	regs[8] = r->r9;
	regs[9] = r->r10;
	regs[10] = r->r11;
	regs[11] = r->r12;
	regs[12] = r->r13;
	regs[13] = r->r14;
	regs[14] = r->r15;
	regs[15] = r->eflags;
	regs[16] = r->rsp;
	regs[17] = rip;
}

/* The rescue record for a thread just guarded (nothing else to undo yet). */
static void rescue_arm(struct injector *ij, struct task_thread *thr)
{
	struct inject_rescue *rec;
	size_t head = offsetof(struct inject_rescue, xsave);

	if (!ij->rescue)
		return; /* the system calls that map the scratch area come before it */
	rec = xcalloc(1, sizeof(*rec));
	rec->sigmask = thr->guard_sigmask;
	resume_point(&thr->guard_regs, rec->regs);
	if (thr->guard_xstate && thr->guard_xstate_len <= sizeof(rec->xsave)) {
		memcpy(rec->xsave, thr->guard_xstate, thr->guard_xstate_len);
		rec->xsave_len = thr->guard_xstate_len;
	}
	/* the thread id last, once the rest is in place */
	if (mem_write(ij->task, ij->rescue + head, rec->xsave, rec->xsave_len) < 0 ||
	    mem_write(ij->task, ij->rescue + sizeof(uint32_t), (char *)rec + sizeof(uint32_t),
		      head - sizeof(uint32_t)) < 0 ||
	    mem_write(ij->task, ij->rescue, &thr->tid, sizeof(uint32_t)) < 0)
		warning("cannot write pyleakdb's rescue record into the target");
	else
		ij->rescue_tid = thr->tid;
	free(rec);
}

static void rescue_disarm(struct injector *ij)
{
	uint32_t none = 0;

	if (ij->rescue)
		mem_write(ij->task, ij->rescue, &none, sizeof(none));
	ij->rescue_tid = 0;
}

void inject_rescue_gil(struct injector *ij, uint32_t mode, uint64_t release_fn, uint64_t gstate)
{
	uint64_t v[2] = {release_fn, gstate};

	if (!ij->rescue)
		return;
	/* the argument first, then the mode that makes the stub use it */
	mem_write(ij->task, ij->rescue + offsetof(struct inject_rescue, gil_release), v, sizeof(v));
	mem_write(ij->task, ij->rescue + offsetof(struct inject_rescue, gil_mode), &mode,
		  sizeof(mode));
}

void inject_rescue_swap(struct injector *ij, uint64_t swap_fn, uint64_t back_to)
{
	uint64_t v[2] = {swap_fn, back_to};

	if (ij->rescue)
		mem_write(ij->task, ij->rescue + offsetof(struct inject_rescue, swap_fn), v,
			  sizeof(v));
}

void inject_rescue_leave(struct injector *ij, uint64_t leave_fn, uint64_t tstate)
{
	uint64_t v[2] = {leave_fn, tstate};

	if (ij->rescue)
		mem_write(ij->task, ij->rescue + offsetof(struct inject_rescue, leave_fn), v,
			  sizeof(v));
}

int inject_prepare(struct injector *ij, struct task_thread *thr)
{
	if (!thr->guarded) {
		if (task_guard(ij->task, thr) < 0)
			return -1;
		/* a signal it was about to receive is delivered after we are done */
		if (thr->stop == STOP_SIGNAL && thr->sig) {
			thr->deferred_sig = thr->sig;
			thr->sig = 0;
		}
	}
	/* (guarded before the scratch area existed, the thread gets its record now) */
	if (ij->rescue && ij->rescue_tid != thr->tid)
		rescue_arm(ij, thr);
	return task_set_sigmask(ij->task, thr, call_sigmask(ij->trap_sig));
}

int inject_syscall(struct injector *ij, struct task_thread *thr, long nr, const uint64_t *args,
		   int nargs, uint64_t *ret)
{
	arch_regs r;
	int w;

	if (find_syscall_insn(ij) < 0 || inject_prepare(ij, thr) < 0)
		return -1;
	r = thr->guard_regs;
	arch_set_syscall(&r, nr, args, nargs);
	arch_set_pc(&r, ij->syscall_insn);
	arch_clear_syscall_restart(&r);
	if (task_set_regs(ij->task, thr, &r) < 0)
		return -1;
	for (int tries = 0;; tries++) {
		if (task_step_thread(ij->task, thr) < 0)
			return -1;
		w = task_wait_thread(ij->task, thr, SYSCALL_TIMEOUT_US);
		if (w <= 0) {
			if (w == 0) {
				task_interrupt_thread(ij->task, thr);
				task_wait_thread(ij->task, thr, SYSCALL_TIMEOUT_US);
			}
			if (thr->state == THR_STOPPED)
				task_set_regs(ij->task, thr, &thr->guard_regs);
			return error("the system call %ld in thread %d did not complete", nr,
				     thr->tid);
		}
		if (thr->stop == STOP_TRAP)
			break;
		/* a stop we asked for earlier, delivered before the step: step again; a
		 * signal that got through the mask is the program's, for later */
		if (thr->stop == STOP_SIGNAL) {
			thr->deferred_sig = thr->sig;
			thr->sig = 0;
		}
		if (tries > 8 || (thr->stop != STOP_INTERRUPT && thr->stop != STOP_SIGNAL)) {
			task_set_regs(ij->task, thr, &thr->guard_regs);
			return error("the system call %ld in thread %d was interrupted (stop %d)",
				     nr, thr->tid, (int)thr->stop);
		}
		if (task_get_regs(ij->task, thr, &r) < 0)
			return -1;
		if (arch_pc(&r) != ij->syscall_insn) {
			/* it went somewhere else: put it back and give up */
			task_set_regs(ij->task, thr, &thr->guard_regs);
			return error("the system call %ld in thread %d did not run", nr, thr->tid);
		}
	}
	if (task_get_regs(ij->task, thr, &r) < 0)
		return -1;
	*ret = arch_return_value(&r);
	return 0;
}

/* ----- the scratch mapping ----- */

int inject_setup(struct injector *ij, struct task_thread *thr)
{
	uint8_t code[INJECT_CODE_SIZE];
	uint64_t args[6], addr, r;
	size_t n, stub_len;

	if (ij->scratch)
		return 0;
	if (inject_pick_trap_signal(ij->task->pid, &ij->trap_sig) < 0)
		return -1;
	args[0] = 0;
	args[1] = INJECT_CODE_SIZE + INJECT_DATA_SIZE;
	args[2] = PROT_READ | PROT_WRITE;
	args[3] = MAP_PRIVATE | MAP_ANONYMOUS;
	args[4] = (uint64_t)-1;
	args[5] = 0;
	if (inject_syscall(ij, thr, __NR_mmap, args, 6, &addr) < 0)
		return -1;
	if (addr > (uint64_t)-4096)
		return error("cannot map memory in the target: %s", strerror((int)-addr));
	ij->scratch = addr;
	ij->data = addr + INJECT_CODE_SIZE;

	memset(code, 0xcc, sizeof(code)); /* anything we do not mean to run traps */
	ij->rescue = ij->data + INJECT_RESCUE_OFFSET;
	stub_len = inject_ret_stub_code(code, sizeof(code), ij->trap_sig, addr, ij->rescue);
	ij->ret_stub = addr;
	n = (stub_len + 15) & ~(size_t)15;
	ij->pending_tramp = addr + n;
	inject_tramp_code(code + n, sizeof(code) - n);
	if (mem_write(ij->task, addr, code, sizeof(code)) < 0)
		return -1;
	/* the code page becomes read-only and executable; the data stays writable */
	args[0] = addr;
	args[1] = INJECT_CODE_SIZE;
	args[2] = PROT_READ | PROT_EXEC;
	if (inject_syscall(ij, thr, __NR_mprotect, args, 3, &r) < 0)
		return -1;
	if (r)
		return error("cannot make pyleakdb's code page executable in the target: %s",
			     strerror((int)-r));
	return 0;
}

int inject_teardown(struct injector *ij, struct task_thread *thr)
{
	uint64_t args[2], r;

	if (!ij->scratch)
		return 0;
	if (ij->pending_queued) {
		/* the interpreter may still call our trampoline: its page must stay */
		warning("a pending call never ran; leaving pyleakdb's %u KiB mapping at %#" PRIx64
			" in the target (it is inert)",
			(INJECT_CODE_SIZE + INJECT_DATA_SIZE) / 1024, ij->scratch);
		return 0;
	}
	args[0] = ij->scratch;
	args[1] = INJECT_CODE_SIZE + INJECT_DATA_SIZE;
	if (inject_syscall(ij, thr, __NR_munmap, args, 2, &r) < 0)
		return -1;
	ij->scratch = 0;
	ij->rescue = 0;
	ij->rescue_tid = 0;
	return r ? error("cannot unmap pyleakdb's memory in the target") : 0;
}

int inject_put(struct injector *ij, size_t off, const void *buf, size_t len, uint64_t *addr)
{
	if (!ij->scratch)
		BUG("inject_put before inject_setup");
	if (off > INJECT_RESCUE_OFFSET || len > INJECT_RESCUE_OFFSET - off)
		return error("%zu bytes do not fit in pyleakdb's %u KiB buffer in the target", len,
			     INJECT_DATA_SIZE / 1024);
	*addr = ij->data + off;
	return mem_write(ij->task, *addr, buf, len);
}

int inject_owns_pc(const struct injector *ij, uint64_t pc)
{
	return ij->scratch && pc >= ij->scratch && pc < ij->scratch + INJECT_CODE_SIZE;
}

/* ----- function calls ----- */

static int is_fault(int sig)
{
	return sig == SIGSEGV || sig == SIGBUS || sig == SIGILL || sig == SIGFPE ||
	       sig == SIGTRAP || sig == SIGSYS || sig == SIGABRT;
}

int inject_finish(struct injector *ij, struct task_thread *thr)
{
	/* our trap signal is consumed; a real one we held back goes out on resume */
	thr->sig = 0;
	if (ij->rescue_tid == thr->tid)
		rescue_disarm(ij);
	return task_unguard(ij->task, thr);
}

/*
 * Our call waits for the GIL, and another thread of the program keeps it:
 * a thread that lets the GIL go around very frequent short system calls
 * takes it back before ours wakes up, every time, and ours never gets to
 * ask for it (CPython asks only after a whole switch interval without a
 * release).  The other threads are stopped for a little longer than the
 * switch interval: ours then times out and asks, and the holder, let go,
 * hands the GIL over at its next release.  Bounded, so that a native lock
 * one of them holds can only delay us.
 */
#define ASSIST_AFTER_US (200 * 1000)
#define ASSIST_PAUSE_US (15 * 1000)

static void assist_gil(struct task *t, struct task_thread *thr)
{
	pid_t tid = thr->tid;

	if (proc_thread_syscall(t->pid, tid) != SYS_futex)
		return; /* not asleep in a futex wait (a lock, or the GIL) */
	for (size_t i = 0; i < t->nthr; i++)
		if (t->thr[i] != thr && !t->thr[i]->is_new && !t->thr[i]->listening)
			task_interrupt_thread(t, t->thr[i]);
	for (size_t i = 0; i < t->nthr; i++)
		if (t->thr[i]->tid != tid && t->thr[i]->interrupted &&
		    t->thr[i]->state == THR_RUNNING)
			task_wait_thread(t, t->thr[i], 100 * 1000);
	usleep(ASSIST_PAUSE_US);
	thr = task_thread_by_tid(t, tid);
	task_resume_others(t, thr);
}

static void describe_fn(struct injector *ij, uint64_t fn, char *buf, size_t len)
{
	const struct symbol *sym;
	uint64_t off;

	if (modules_symbolize(ij->mods, fn, &sym, &off, NULL) == 0 && sym)
		snprintf(buf, len, "%s", sym->name);
	else
		snprintf(buf, len, "%#" PRIx64, fn);
}

int inject_call(struct injector *ij, struct task_thread *thr, uint64_t fn, const uint64_t *args,
		int nargs, uint64_t *ret)
{
	struct task *t = ij->task;
	uint64_t sp, start = now_us();
	pid_t tid = thr->tid;
	sigset_t catch;
	arch_regs r;
	char name[128], what[192];
	int warned = 0, asked = 0;
	uint64_t last_progress = 0;

	if (!ij->scratch)
		BUG("inject_call before inject_setup");
	if (nargs > ARCH_MAX_CALL_ARGS)
		BUG("remote call with %d arguments", nargs);
	if (inject_prepare(ij, thr) < 0)
		return -1;
	describe_fn(ij, fn, name, sizeof(name));
	snprintf(what, sizeof(what), "running %s in thread %d", name, thr->tid);
	r = thr->guard_regs;
	sp = arch_sp(&r) - ARCH_RED_ZONE - CALL_STACK_SLACK;
	sp &= ~(uint64_t)(ARCH_STACK_ALIGN - 1);
	sp -= sizeof(uint64_t); /* as if `call` had pushed the return address */
	if (mem_write(t, sp, &ij->ret_stub, sizeof(ij->ret_stub)) < 0)
		return error("cannot write to the stack of thread %d", thr->tid);
	arch_set_sp(&r, sp);
	arch_set_pc(&r, fn);
	for (int i = 0; i < nargs; i++)
		arch_set_call_arg(&r, i, args[i]);
	r.rax = 0; /* no vector registers for variadic callees */
	arch_clear_syscall_restart(&r);
	if (task_set_regs(t, thr, &r) < 0)
		return -1;
	thr->sig = 0;
	if (ij->others_run && task_resume_others(t, thr) < 0)
		return -1;
	if (task_resume_thread(t, thr, 0) < 0)
		return -1;

	sigemptyset(&catch);
	sigaddset(&catch, ij->trap_sig);
	for (int s = 1; s < 32; s++)
		if (is_fault(s))
			sigaddset(&catch, s);
	for (;;) {
		struct task_event ev;
		arch_regs now;

		if (task_wait(t, &catch, 100 * 1000, &ev) < 0)
			return -1;
		if (ev.kind == TEV_EXITED) {
			char why[64];

			return error("the target %s during a call to %s",
				     task_end_reason(t, why, sizeof(why)), name);
		}
		if (ev.kind == TEV_EXEC)
			return error("the target replaced its program during a call to %s", name);
		if (ev.kind == TEV_TIMEOUT) {
			inject_progress(ij, what, start, &last_progress);
			if (ij->others_run && (int64_t)(now_us() - start) > ASSIST_AFTER_US) {
				assist_gil(t, thr);
				thr = task_thread_by_tid(t, tid);
				if (!thr)
					return error("thread %d ended during a call to %s", tid,
						     name);
			}
			if (!warned && (int64_t)(now_us() - start) > ij->call_timeout_us) {
				note("the call to %s in thread %d has not returned after %lld s; "
				     "still "
				     "waiting (Ctrl-C twice abandons it)",
				     name, thr->tid, (long long)(ij->call_timeout_us / 1000000));
				warned = 1;
			}
			continue;
		}
		if (ev.kind == TEV_INTERRUPTED && !asked) {
			/* the thread is inside the interpreter: stopping it half-way could leave a
			 * lock held or an object half built, so the first Ctrl-C only asks */
			note("pyleakdb's call to %s is running inside the target; abandoning it "
			     "half-way could corrupt the interpreter, so pyleakdb waits for it to "
			     "finish.  Press Ctrl-C again to abandon it anyway.",
			     name);
			asked = 1;
			continue;
		}
		if (ev.kind == TEV_INTERRUPTED) {
			warning("abandoning the call to %s in thread %d: the target may be left "
				"inconsistent",
				name, thr->tid);
			task_interrupt_thread(t, thr);
			task_wait_thread(t, thr, SYSCALL_TIMEOUT_US);
			task_stop_all(t);
			if (thr->state == THR_STOPPED)
				task_set_regs(t, thr, &thr->guard_regs);
			return error("interrupted: the call to %s in thread %d was abandoned", name,
				     thr->tid);
		}
		if (ev.kind == TEV_GROUP_STOP)
			continue;
		if (ev.thr != thr) {
			arch_regs other;

			/* the main thread running into our pending-call trampoline while we were
			 * still queueing it: it stays where it is, stopped, for the caller */
			if (ev.sig == ij->trap_sig && task_get_regs(t, ev.thr, &other) == 0 &&
			    inject_owns_pc(ij, arch_pc(&other))) {
				ev.thr->sig = 0;
				ev.thr->held = 1; /* not to be resumed as we wait on */
				ij->parked_tid = ev.thr->tid;
				continue;
			}
			/* another thread's signal or trap is its own business */
			if (is_fault(ev.sig)) {
				arch_regs fr;

				if (task_get_regs(t, ev.thr, &fr) == 0)
					debug("thread %d faults (signal %d, pc %#" PRIx64
					      ", address %#" PRIx64 ") while thread %d runs %s",
					      ev.thr->tid, ev.sig, arch_pc(&fr),
					      (uint64_t)ev.thr->siginfo.si_addr, thr->tid, name);
			}
			task_resume_thread(t, ev.thr, ev.sig);
			continue;
		}
		if (task_get_regs(t, thr, &now) < 0)
			return -1;
		if (ev.sig == ij->trap_sig && inject_owns_pc(ij, arch_pc(&now))) {
			*ret = now.r12; /* the stub moved the return value there */
			thr->sig = 0;
			break;
		}
		if (ev.kind == TEV_TRAP || is_fault(ev.sig)) {
			uint64_t addr = (uint64_t)thr->siginfo.si_addr;

			thr->sig = 0;
			if (ij->others_run)
				task_stop_all(t);
			task_set_regs(t, thr, &thr->guard_regs);
			return error(
			    "the call to %s in thread %d faulted (signal %d at pc %#" PRIx64
			    ", address %#" PRIx64 "); the thread was put back as it was",
			    name, thr->tid, ev.sig, arch_pc(&now), addr);
		}
		/* an asynchronous signal got through: hold it back for later */
		thr->deferred_sig = ev.sig;
		task_resume_thread(t, thr, 0);
	}
	if (ij->others_run && task_stop_all(t) < 0)
		return -1;
	return 0;
}

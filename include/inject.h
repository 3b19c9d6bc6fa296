/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * inject: making a stopped thread of the target execute a system call or
 * call a function, and putting it back exactly as it was.
 *
 * A remote call runs on the thread's own stack, below the red zone, with
 * the arguments in registers, `orig_rax = -1` so the kernel does not
 * restart an interrupted syscall under our registers, and every
 * asynchronous signal blocked.  It returns into a stub in pyleakdb's
 * scratch mapping that raises a signal the target ignores (SIGURG or
 * SIGWINCH, whichever it leaves at its default): traced, that signal stops
 * the thread for us.  Untraced (pyleakdb was killed), the signal is
 * dropped and the stub puts the thread back by itself, from a rescue record
 * pyleakdb keeps in the scratch mapping while the thread is guarded: it
 * swaps the thread state back, leaves the tracing mark, releases the GIL it
 * took, restores the signal mask, the extended state, the flags and every
 * register, restarting an interrupted system call as the kernel would, and
 * jumps back to where the thread was.
 *
 * The thread's registers, extended state and signal mask are saved with
 * task_guard() before the first call and restored by inject_finish(); a
 * fault inside a call aborts it and restores them; a signal that arrives
 * meanwhile stays pending and is delivered after.
 */
#ifndef PYLEAKDB_INJECT_H
#define PYLEAKDB_INJECT_H

#include <stddef.h>
#include <stdint.h>

#include "maps.h"
#include "task.h"

/* Where things live in the scratch mapping. */
#define INJECT_CODE_SIZE 4096
#define INJECT_DATA_SIZE (1u << 20)

/*
 * What the return stub needs to put a thread back by itself when pyleakdb
 * is gone: kept at the end of the data area while a thread is guarded.
 */
#define RESCUE_REGS 18 /* rax rbx rcx rdx rsi rdi rbp r8-r15, rflags, rsp, rip */
struct inject_rescue {
	uint32_t tid;	   /* the guarded thread; 0: nobody to rescue */
	uint32_t gil_mode; /* 0: nothing; 1: release gstate; 2: release what the call returned */
	uint64_t gil_release, gstate; /* PyGILState_Release and its argument */
	uint64_t swap_fn, swap_ts;    /* PyThreadState_Swap(swap_ts) first, when swap_ts */
	uint64_t leave_fn, leave_ts;  /* PyThreadState_LeaveTracing(leave_ts), when leave_ts */
	uint64_t sigmask;
	uint64_t xsave_len; /* 0: no extended state to restore */
	uint64_t regs[RESCUE_REGS];
	uint8_t xsave[XSTATE_MAX] __attribute__((aligned(64)));
};
#define INJECT_RESCUE_OFFSET                                                                       \
	(INJECT_DATA_SIZE - ((sizeof(struct inject_rescue) + 4095) & ~(size_t)4095))

struct injector {
	struct task *task;
	struct modules *mods;
	uint64_t syscall_insn;	 /* a `syscall` instruction in the target's text */
	uint64_t scratch;	 /* our mapping: code page, then data */
	uint64_t ret_stub;	 /* remote calls return here */
	uint64_t pending_tramp;	 /* the pending-call trampoline */
	uint64_t data;		 /* start of the data area */
	uint64_t rescue;	 /* the rescue record, at the end of the data area */
	pid_t rescue_tid;	 /* the thread it is armed for, 0 if none */
	int trap_sig;		 /* the signal our stubs raise */
	int64_t call_timeout_us; /* before we say the call is slow */
	/* a pending call that may still run: the scratch mapping must stay */
	int pending_queued;
	/* the other threads run during calls, so that nothing they hold can block us */
	int others_run;
	/* a thread that ran into our trampoline while another call was under way: it
	 * stays stopped there, for safepoint to find */
	pid_t parked_tid;
	/* a thread stopped at a source breakpoint, inside the agent with the GIL held: the
	 * safe point for whatever runs next, until the target runs again */
	pid_t hit_tid;
	/* the main thread, kept in our pending-call trampoline between safe points while
	 * the target stays stopped: the next one needs no new pending call */
	pid_t held_tid;
	/* told, about once a second, how long a call or a wait has been under way */
	void (*progress)(void *arg, const char *what, double seconds);
	void *progress_arg;
	/* how long to wait for a safe point before giving up (microseconds) */
	int64_t safepoint_timeout_us;
};

/* Report progress through ij->progress, at most once a second. */
void inject_progress(struct injector *ij, const char *what, uint64_t start_us, uint64_t *last_us);

void inject_init(struct injector *ij, struct task *t, struct modules *mods);

/* A system call on a stopped thread (no scratch mapping needed).  *ret is the raw result. */
int inject_syscall(struct injector *ij, struct task_thread *thr, long nr, const uint64_t *args,
		   int nargs, uint64_t *ret);

/* Map the scratch area and write the stubs, once per attach. */
int inject_setup(struct injector *ij, struct task_thread *thr);
/* Unmap it (on a stopped thread), unless a queued pending call may still run our code. */
int inject_teardown(struct injector *ij, struct task_thread *thr);

/* Write bytes into the data area at offset off; their address in *addr. */
int inject_put(struct injector *ij, size_t off, const void *buf, size_t len, uint64_t *addr);

/*
 * Call fn(args...) on a stopped, guarded thread.  The thread stops again
 * when the call returns; *ret is its return value.  -1 with an error when
 * it faulted (the thread is restored) or the target went away.
 */
int inject_call(struct injector *ij, struct task_thread *thr, uint64_t fn, const uint64_t *args,
		int nargs, uint64_t *ret);

/* Guard a thread for calls (inject_call does it too): its state saved, its rescue armed. */
int inject_prepare(struct injector *ij, struct task_thread *thr);

/* Put a guarded thread back as it was: registers, extended state, signal mask. */
int inject_finish(struct injector *ij, struct task_thread *thr);

/* Does this PC lie in our stubs? (a stop there is ours) */
int inject_owns_pc(const struct injector *ij, uint64_t pc);

/* The signal a target leaves at its default and ignores: SIGURG or SIGWINCH. */
int inject_pick_trap_signal(pid_t pid, int *sig);

/*
 * While a thread is guarded, what else the rescue must undo if pyleakdb dies:
 * the GIL it took (mode 1: gstate; mode 2: whatever the call under way
 * returns, for PyGILState_Ensure itself), a thread-state swap, a tracing mark.
 * A zero argument clears each.
 */
void inject_rescue_gil(struct injector *ij, uint32_t mode, uint64_t release_fn, uint64_t gstate);
void inject_rescue_swap(struct injector *ij, uint64_t swap_fn, uint64_t back_to);
void inject_rescue_leave(struct injector *ij, uint64_t leave_fn, uint64_t tstate);

/* Encodings of our stubs: the return stub is position-dependent (it reads its rescue
 * record relative to itself), so it is given where it and the record will be. */
size_t inject_ret_stub_code(uint8_t *out, size_t len, int sig, uint64_t at, uint64_t rescue);
size_t inject_tramp_code(uint8_t *out, size_t len);
/* The layout of the block the trampoline reads (its argument). */
struct inject_tramp_ctl {
	int32_t pid;   /* only this process stops: a forked child just returns */
	int32_t sig;   /* the signal to raise */
	int32_t ret;   /* what the trampoline returns to the interpreter */
	int32_t fired; /* counts the times it ran in this process */
};

#endif

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
 * the thread for us; untraced (pyleakdb killed), it is dropped and the
 * thread parks instead of dying of a SIGTRAP.
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

struct injector {
	struct task *task;
	struct modules *mods;
	uint64_t syscall_insn;	 /* a `syscall` instruction in the target's text */
	uint64_t scratch;	 /* our mapping: code page, then data */
	uint64_t ret_stub;	 /* remote calls return here */
	uint64_t pending_tramp;	 /* the pending-call trampoline */
	uint64_t data;		 /* start of the data area */
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

/* Put a guarded thread back as it was: registers, extended state, signal mask. */
int inject_finish(struct injector *ij, struct task_thread *thr);

/* Does this PC lie in our stubs? (a stop there is ours) */
int inject_owns_pc(const struct injector *ij, uint64_t pc);

/* The signal a target leaves at its default and ignores: SIGURG or SIGWINCH. */
int inject_pick_trap_signal(pid_t pid, int *sig);

/* Encodings of our stubs, exposed for the unit test that disassembles them. */
size_t inject_ret_stub_code(uint8_t *out, size_t len, int sig);
size_t inject_tramp_code(uint8_t *out, size_t len);
/* The layout of the block the trampoline reads (its argument). */
struct inject_tramp_ctl {
	int32_t pid;   /* only this process stops: a forked child just returns */
	int32_t sig;   /* the signal to raise */
	int32_t ret;   /* what the trampoline returns to the interpreter */
	int32_t fired; /* counts the times it ran in this process */
};

#endif

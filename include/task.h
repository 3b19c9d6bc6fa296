/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * task: the only door to ptrace(2).
 *
 * A task is the traced process: every thread seized (PTRACE_SEIZE, so that
 * attaching neither stops nor signals it), every thread it creates later
 * followed through PTRACE_O_TRACECLONE.  Waiting is a state machine: each
 * thread is RUNNING, STOPPED (and why) or GONE, and the calls below advance
 * threads between those states; no other module calls waitpid() on them.
 *
 * Promises:
 *  - a signal the target receives while we hold it is delivered on resume or
 *    detach, unless a caller explicitly consumed it;
 *  - code patches (breakpoints) and saved registers are recorded here before
 *    they are applied, so that detach, and the emergency path run on a fatal
 *    signal or SIGTERM/SIGHUP, put the target back exactly as it was;
 *  - a process that was stopped by job control when we came stays stopped
 *    when we leave;
 *  - nothing blocks forever: every wait has a timeout and reports how the
 *    target ended when it goes away.
 */
#ifndef PYLEAKDB_TASK_H
#define PYLEAKDB_TASK_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "arch.h"

enum thr_state {
	THR_RUNNING,
	THR_STOPPED,
	THR_GONE,
};

enum thr_stop {
	STOP_NONE,
	STOP_INTERRUPT, /* PTRACE_INTERRUPT, or a new thread's first stop */
	STOP_GROUP,	/* job control: SIGSTOP/SIGTSTP/SIGTTIN/SIGTTOU */
	STOP_SIGNAL,	/* a signal is about to be delivered: thr->sig */
	STOP_TRAP,	/* SIGTRAP from a breakpoint or a single step */
	STOP_EVENT,	/* clone, exec or exit event */
};

struct task_thread {
	pid_t tid;
	enum thr_state state;
	enum thr_stop stop;
	int sig;	   /* STOP_SIGNAL: signal to deliver on resume (0 once consumed) */
	siginfo_t siginfo; /* STOP_SIGNAL/STOP_TRAP: what the kernel said */
	char sched_state;  /* R, S, D, T...: sampled just before we stopped it */
	int interrupted;   /* we asked it to stop (sched_state was sampled then) */
	int listening;	   /* held in group-stop with PTRACE_LISTEN */
	int held;	   /* stays stopped through task_wait (a safe point found early) */
	int exiting;	   /* PTRACE_EVENT_EXIT seen */
	int regs_valid;
	arch_regs regs;
	int is_new;	  /* created after attach: its first stop is still to come */
	int deferred_sig; /* a signal held back while we used the thread; delivered after */
	/* saved before an injection changes them; restored on any exit path */
	int guarded;
	arch_regs guard_regs;
	uint64_t guard_sigmask;
	void *guard_xstate;
	size_t guard_xstate_len;
};

/* A code patch: the original bytes, restored on detach whatever happens. */
#define TASK_PATCH_MAX 16
struct task_patch {
	uint64_t addr;
	size_t len;
	unsigned char orig[TASK_PATCH_MAX];
	int active;
};

/* The largest extended register state (XSAVE area) we save for a thread. */
#define XSTATE_MAX (16 * 1024)

struct task {
	pid_t pid;
	int is_child; /* started by `run`: we reap it, and kill it on quit */
	/* live threads; each struct stays where it is while it lives, so pointers to it hold
	 * across waits.  Threads that ended wait in the graveyard until the next resume_all. */
	struct task_thread **thr;
	size_t nthr, cap;
	struct task_thread **graveyard;
	size_t ngrave, cap_grave;
	unsigned long generation; /* bumped on every resume: caches key on it */
	int job_stopped;	  /* group-stop in effect (state T) */
	int job_stopped_at_attach;
	int memfd; /* /proc/PID/mem, for writes that must reach read-only text */
	/* how the process ended, once every thread is gone */
	int gone;
	int exit_code; /* when it exited */
	int term_sig;  /* when a signal killed it */
	int exec_seen; /* it replaced its program image */
	struct task_patch *patches;
	size_t npatches, cap_patches;
	/* called before every task_resume_all(): whoever keeps a thread somewhere it must
	 * not run on from (our trampoline) moves it out first */
	void (*before_resume)(void *arg);
	void *before_resume_arg;
};

enum task_event_kind {
	TEV_NONE,
	TEV_TIMEOUT,
	TEV_INTERRUPTED, /* Ctrl-C: pyleakdb got SIGINT */
	TEV_SIGNAL,	 /* a thread stopped with a signal in the caught set */
	TEV_TRAP,	 /* a thread stopped with SIGTRAP (breakpoint, step) */
	TEV_GROUP_STOP,	 /* the process was stopped by job control */
	TEV_EXITED,	 /* the process is gone */
	TEV_EXEC,	 /* the process replaced its program */
};

struct task_event {
	enum task_event_kind kind;
	struct task_thread *thr; /* TEV_SIGNAL, TEV_TRAP */
	int sig;
};

/* pyleakdb's own signals: Ctrl-C, and the fatal ones that must detach first. */
void task_signals_init(void);
/* Set by SIGINT; task_wait() turns it into TEV_INTERRUPTED. Clear after handling. */
extern volatile sig_atomic_t task_sigint;
int task_take_sigint(void);
/* How many times Ctrl-C was pressed so far, taken or not: a remote call that was running
 * takes the first one only to ask, and a command that loops must still end. */
int task_sigint_count(void);

void task_init(struct task *t);
/* Seize every thread of pid and stop them all.  -1 with an error saying why (and what to do). */
int task_attach(struct task *t, pid_t pid);
/* Start argv under the debugger, stopped right after exec. */
int task_spawn(struct task *t, char *const argv[]);
/* Undo every patch, deliver held signals, let the process run free. */
int task_detach(struct task *t);
/* Kill a process started with task_spawn(), and reap it. */
int task_kill(struct task *t);
void task_release(struct task *t);

/* Advance every live thread to STOPPED; timeout per thread in milliseconds. */
int task_stop_all(struct task *t);
/* Let every stopped thread run, delivering held signals. */
int task_resume_all(struct task *t);
/* The same for every thread but one (it stays as it is). */
int task_resume_others(struct task *t, struct task_thread *except);
int task_all_stopped(const struct task *t);
size_t task_live_threads(const struct task *t);

/*
 * Wait while the target runs, up to timeout_us (negative: no limit), for an
 * event a caller must act on.  Clone, exit and signals outside `catch` are
 * handled here: new threads are resumed, signals passed on.  When an event
 * is returned, the thread it names is stopped; the others may still run.
 */
int task_wait(struct task *t, const sigset_t *catch, int64_t timeout_us, struct task_event *ev);

/* Single-thread control, for injection. */
int task_resume_thread(struct task *t, struct task_thread *thr, int sig);
int task_step_thread(struct task *t, struct task_thread *thr);
int task_interrupt_thread(struct task *t, struct task_thread *thr);
/* Wait for this one thread to stop; 1 stopped, 0 timeout, -1 error (gone). */
int task_wait_thread(struct task *t, struct task_thread *thr, int64_t timeout_us);

struct task_thread *task_thread_by_tid(struct task *t, pid_t tid);
struct task_thread *task_main_thread(struct task *t);

int task_get_regs(struct task *t, struct task_thread *thr, arch_regs *regs);
int task_set_regs(struct task *t, struct task_thread *thr, const arch_regs *regs);
/* The extended (x87/SSE/AVX...) state, as one opaque blob of *len bytes. */
int task_get_xstate(struct task *t, struct task_thread *thr, void *buf, size_t *len);
int task_set_xstate(struct task *t, struct task_thread *thr, const void *buf, size_t len);
int task_get_sigmask(struct task *t, struct task_thread *thr, uint64_t *mask);
int task_set_sigmask(struct task *t, struct task_thread *thr, uint64_t mask);

/* Write bytes over code (read-only mappings too), remembering the original. */
int task_patch(struct task *t, uint64_t addr, const void *bytes, size_t len);
int task_unpatch(struct task *t, uint64_t addr);
/* Writes through /proc/PID/mem: works on read-only text as ptrace does. */
int task_poke(struct task *t, uint64_t addr, const void *buf, size_t len);

/*
 * Save a stopped thread's registers, extended state and signal mask before
 * an injection changes them; task_unguard() puts them back.  Until then,
 * detach and the emergency path restore them too.
 */
int task_guard(struct task *t, struct task_thread *thr);
int task_unguard(struct task *t, struct task_thread *thr);

/* A human sentence for how the target ended: "exited with status 0". */
const char *task_end_reason(const struct task *t, char *buf, size_t len);

#endif

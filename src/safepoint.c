// SPDX-License-Identifier: GPL-3.0-or-later
/*
 * safepoint: choosing where running Python in the target is safe, and
 * getting there.  See include/safepoint.h and doc/design.md.
 */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>

#include "arch.h"
#include "mem.h"
#include "pyframes.h"
#include "safepoint.h"
#include "util.h"

/* How long we wait for the main thread to reach a bytecode boundary before saying so. */
#define PENDING_PATIENCE_US (500 * 1000)
/* How many native frames above a futex wait we look at to see what waits. */
#define FUTEX_LOOKUP_FRAMES 12
/* The trampoline's tail after its trap is three instructions: a few steps more is wrong. */
#define TRAMPOLINE_STEPS_MAX 16
/* While the pending call waits: how often to look whether the main thread went to wait on
 * a Python lock, where it would never reach the call unless kicked. */
#define KICK_EVERY_US (100 * 1000)
/* Where the trampoline's control block lives in the data area. */
#define CTL_OFFSET 0

/* System calls that only wait: a thread blocked in one holds nothing we could need. */
static const long waiting_syscalls[] = {
    __NR_select,	__NR_pselect6,	      __NR_poll,
    __NR_ppoll,		__NR_epoll_wait,      __NR_epoll_pwait,
    __NR_nanosleep,	__NR_clock_nanosleep, __NR_read,
    __NR_readv,		__NR_recvfrom,	      __NR_recvmsg,
    __NR_accept,	__NR_accept4,	      __NR_wait4,
    __NR_waitid,	__NR_pause,	      __NR_rt_sigtimedwait,
    __NR_rt_sigsuspend, __NR_futex,	      __NR_restart_syscall,
};

/*
 * A futex is a wait on some lock.  It is safe only when the thread waits on
 * one of CPython's own locks from Python code (lock.acquire(), Event.wait()),
 * which it does on a semaphore while holding nothing else.  Not when it waits
 * for the GIL: that is a condition variable, and glibc's condition variables
 * deadlock when the same thread enters one again while a wait of its own is
 * suspended inside it (our PyGILState_Ensure would).  Nor under a C
 * library's mutex, which our code might need.
 */
static const char *const python_lock_waits[] = {
    "PyThread_acquire_lock_timed", "PyThread_acquire_lock", "_PySemaphore_Wait",
    "_PyParkingLot_Park",	   "_PyMutex_LockTimed",
};

int pyapi_resolve(struct pyapi *api, struct pyinterp *pi)
{
	static const struct {
		const char *name;
		size_t off;
		int optional;
	} want[] = {
	    {"PyGILState_Ensure", offsetof(struct pyapi, gil_ensure), 0},
	    {"PyGILState_Release", offsetof(struct pyapi, gil_release), 0},
	    {"PyErr_Fetch", offsetof(struct pyapi, err_fetch), 0},
	    {"PyErr_Restore", offsetof(struct pyapi, err_restore), 0},
	    {"PyErr_Clear", offsetof(struct pyapi, err_clear), 0},
	    {"PyDict_New", offsetof(struct pyapi, dict_new), 0},
	    {"PyDict_SetItemString", offsetof(struct pyapi, dict_set_item_string), 0},
	    {"PyDict_Clear", offsetof(struct pyapi, dict_clear), 0},
	    {"PyEval_GetBuiltins", offsetof(struct pyapi, eval_get_builtins), 0},
	    {"Py_CompileString", offsetof(struct pyapi, compile_string), 0},
	    {"PyEval_EvalCode", offsetof(struct pyapi, eval_code), 0},
	    {"Py_DecRef", offsetof(struct pyapi, decref), 0},
	    {"Py_IncRef", offsetof(struct pyapi, incref), 0},
	    {"PyThreadState_Swap", offsetof(struct pyapi, thread_swap), 0},
	    {"PyDict_GetItemString", offsetof(struct pyapi, dict_get_item_string), 0},
	    {"PyBytes_FromStringAndSize", offsetof(struct pyapi, bytes_from_size), 0},
	    {"PyObject_CallFunctionObjArgs", offsetof(struct pyapi, call_obj_args), 0},
	    {"PyObject_GC_UnTrack", offsetof(struct pyapi, gc_untrack), 0},
	    {"Py_AddPendingCall", offsetof(struct pyapi, add_pending_call), 0},
	    {"PyThreadState_Get", offsetof(struct pyapi, thread_get), 0},
	    {"PyThreadState_EnterTracing", offsetof(struct pyapi, enter_tracing), 1},
	    {"PyThreadState_LeaveTracing", offsetof(struct pyapi, leave_tracing), 1},
	};
	struct symtab *st = module_symtab(&pi->mods, pi->pymod);

	memset(api, 0, sizeof(*api));
	if (!st)
		return error("cannot read the interpreter's symbols");
	for (size_t i = 0; i < ARRAY_SIZE(want); i++) {
		const struct symbol *s = symtab_find(st, want[i].name);

		if (!s) {
			if (want[i].optional)
				continue;
			return error("the interpreter does not export %s; cannot run code in it",
				     want[i].name);
		}
		*(uint64_t *)((char *)api + want[i].off) = s->value + pi->pymod->bias;
	}
	/* glibc's, for trim; absent with another libc */
	if (modules_lookup(&pi->mods, "malloc_trim", &api->malloc_trim, NULL) < 0)
		api->malloc_trim = 0;
	return 0;
}

static int is_waiting_syscall(long nr)
{
	for (size_t i = 0; i < ARRAY_SIZE(waiting_syscalls); i++)
		if (waiting_syscalls[i] == nr)
			return 1;
	return 0;
}

/*
 * Is this futex CPython waiting on one of its locks for Python code?  Not
 * if the futex word lies in the GIL's state; else judged from the native
 * stack: the first interpreter function above the C library must be a
 * lock acquisition.
 */
static int futex_is_python_wait(struct pyinterp *pi, struct unwinder *unw, struct task_thread *thr,
				uint64_t interp)
{
	struct native_stack ns;
	uint64_t lo, hi;
	arch_regs regs;
	int verdict = 0;

	if (task_get_regs(pi->task, thr, &regs) < 0)
		return 0;
	if (arch_orig_syscall(&regs) == __NR_futex) {
		if (py_gil_range(pi, interp, &lo, &hi) < 0)
			return 0; /* cannot tell a GIL wait from a lock wait: not safe */
		if (arch_syscall_arg(&regs, 0) >= lo && arch_syscall_arg(&regs, 0) < hi)
			return 0;
	}
	if (unwinder_backtrace(unw, thr, &ns) < 0)
		return 0;
	for (size_t i = 0; i < ns.n && i < FUTEX_LOOKUP_FRAMES; i++) {
		const struct native_frame *f = &ns.v[i];

		if (!f->module || strcmp(f->module, pi->pymod->path))
			continue; /* the C library's wait functions lead up to whoever waits */
		if (!f->symbol)
			continue; /* a static function of a stripped interpreter: look further */
		for (size_t j = 0; j < ARRAY_SIZE(python_lock_waits); j++)
			if (!strcmp(f->symbol, python_lock_waits[j]))
				verdict = 1;
		break;
	}
	native_stack_release(&ns);
	return verdict;
}

static int has_python_frames(struct pyinterp *pi, uint64_t tstate)
{
	struct pystack ps;
	int n;

	if (py_stack(pi, tstate, &ps) < 0 && !ps.n) {
		pystack_release(&ps);
		return 0;
	}
	n = (int)ps.n;
	pystack_release(&ps);
	return n > 0;
}

static const char *syscall_label(long nr)
{
	switch (nr) {
	case __NR_select:
	case __NR_pselect6:
		return "select";
	case __NR_poll:
	case __NR_ppoll:
		return "poll";
	case __NR_epoll_wait:
	case __NR_epoll_pwait:
		return "epoll_wait";
	case __NR_nanosleep:
	case __NR_clock_nanosleep:
		return "sleep";
	case __NR_futex:
		return "a lock wait";
	default:
		return "a blocking system call";
	}
}

/* The best thread blocked in a waiting syscall with the GIL released, or NULL. */
static struct task_thread *pick_blocked(struct pyinterp *pi, struct unwinder *unw,
					struct pythread *pts, size_t npts, struct safepoint *sp)
{
	struct task_thread *best = NULL;
	int best_score = 0;

	for (size_t i = 0; i < npts; i++) {
		struct task_thread *thr =
		    pts[i].tid ? task_thread_by_tid(pi->task, pts[i].tid) : NULL;
		arch_regs regs;
		long nr;
		int score;

		if (!thr || thr->state != THR_STOPPED || pts[i].holds_gil)
			continue;
		if (task_get_regs(pi->task, thr, &regs) < 0)
			continue;
		nr = arch_orig_syscall(&regs);
		if (nr < 0 || !is_waiting_syscall(nr))
			continue;
		/* a futex, or an interrupted wait resumed (which may be one), must be CPython's */
		if ((nr == __NR_futex || nr == __NR_restart_syscall) &&
		    !futex_is_python_wait(pi, unw, thr, pts[i].interp))
			continue;
		if (!has_python_frames(pi, pts[i].tstate))
			continue;
		/* another thread than the main one: the main thread handles Python's signals, and
		 * a handler run inside our code would be ours to swallow */
		score = pts[i].is_main ? 1 : 2;
		if (score > best_score) {
			best = thr;
			best_score = score;
			snprintf(sp->where, sizeof(sp->where), "thread %d%s, blocked in %s",
				 thr->tid, pts[i].is_main ? " (MainThread)" : "",
				 syscall_label(nr));
		}
	}
	return best;
}

static struct pythread *main_pythread(struct pythread *pts, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (pts[i].is_main)
			return &pts[i];
	return n ? &pts[0] : NULL;
}

static int step_out_of_trampoline(struct injector *ij, struct task_thread *thr);

/*
 * A thread in our pending-call trampoline runs a pending call: it must hold
 * the GIL.  Checked before anything runs there, so that a thread taken for
 * the wrong one is refused, not crashed (unknown when the GIL's state cannot
 * be read: then trusted).
 */
static int check_pending_thread(struct injector *ij, struct pyinterp *pi, struct safepoint *sp)
{
	struct pythread *pts;
	size_t n;
	pid_t holder = 0;

	if (py_threads(pi, &pts, &n) < 0)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (pts[i].holds_gil)
			holder = pts[i].tid;
	free(pts);
	if (!holder || holder == sp->thr->tid)
		return 0;
	step_out_of_trampoline(ij, sp->thr);
	sp->kind = SAFEPOINT_NONE;
	return error("thread %d ran pyleakdb's pending call but thread %d holds the GIL; nothing "
		     "was run (try again)",
		     sp->thr->tid, holder);
}

/*
 * The main thread waits on a Python lock (Event.wait, join, a queue): the
 * pending call would wait as long.  Its futex wait is made to return EINTR,
 * as a signal would: CPython then runs its pending calls, ours among them,
 * and waits again for what time is left.  1 if it was kicked.
 */
static int kick_lock_wait(struct pyinterp *pi, struct unwinder *unw, struct pythread *mainpt,
			  struct task_thread *mainthr)
{
	arch_regs regs;
	long nr;

	if (mainthr->state != THR_STOPPED || mainpt->holds_gil ||
	    task_get_regs(pi->task, mainthr, &regs) < 0)
		return 0;
	nr = arch_orig_syscall(&regs);
	if ((nr != __NR_futex && nr != __NR_restart_syscall) ||
	    !futex_is_python_wait(pi, unw, mainthr, mainpt->interp))
		return 0;
	regs.rax = (uint64_t)-EINTR;
	arch_clear_syscall_restart(&regs);
	if (task_set_regs(pi->task, mainthr, &regs) < 0)
		return 0;
	debug("the main thread (%d) waits on a Python lock: interrupted, so that it runs "
	      "pending calls",
	      mainthr->tid);
	return 1;
}

/* Queue our trampoline as a pending call and let the main thread run into it. */
static int enter_pending(struct injector *ij, struct pyinterp *pi, struct unwinder *unw,
			 const struct pyapi *api, struct pythread *pts, size_t npts,
			 struct safepoint *sp)
{
	struct task *t = pi->task;
	struct pythread *mainpt = main_pythread(pts, npts);
	struct task_thread *caller = NULL, *mainthr;
	struct inject_tramp_ctl ctl = {0};
	uint64_t ctl_addr, args[2], r, start, last_progress = 0, last_kick;
	sigset_t catch;
	int said = 0;

	if (!mainpt || !mainpt->tid || !(mainthr = task_thread_by_tid(t, mainpt->tid)))
		return error("cannot find the main Python thread");
	/* Py_AddPendingCall takes only the queue's lock; any thread in a syscall is not
	 * inside it, and the main thread will do otherwise */
	for (size_t i = 0; i < t->nthr && !caller; i++) {
		arch_regs regs;

		if (t->thr[i]->state == THR_STOPPED && task_get_regs(t, t->thr[i], &regs) == 0 &&
		    arch_orig_syscall(&regs) >= 0)
			caller = t->thr[i];
	}
	if (!caller)
		caller = mainthr;
	if (inject_setup(ij, caller) < 0)
		return -1;
	if (ij->pending_queued) {
		/* the one we queued before (it timed out) is still in the queue: wait for it */
		debug("a pending call of ours is still queued; waiting for it");
		goto wait;
	}
	ctl.pid = t->pid;
	ctl.sig = ij->trap_sig;
	if (inject_put(ij, CTL_OFFSET, &ctl, sizeof(ctl), &ctl_addr) < 0)
		return -1;
	args[0] = ij->pending_tramp;
	args[1] = ctl_addr;
	ij->parked_tid = 0;
	if (inject_call(ij, caller, api->add_pending_call, args, 2, &r) < 0) {
		inject_finish(ij, caller);
		return -1;
	}
	inject_finish(ij, caller);
	if ((int)r != 0)
		return error("the interpreter's queue of pending calls is full; try again");
	ij->pending_queued = 1;
	debug("pending call queued by thread %d (tramp %#" PRIx64 ", ctl %#" PRIx64 ")",
	      caller->tid, ij->pending_tramp, ctl_addr);

	snprintf(sp->where, sizeof(sp->where), "thread %d (MainThread), between two bytecodes",
		 mainthr->tid);
	/* the trampoline may have run already, while the other threads ran during the
	 * queueing: then its thread is stopped on our signal, which must not be delivered */
	for (size_t i = 0; i < t->nthr && !ij->parked_tid; i++) {
		struct task_thread *other = t->thr[i];
		arch_regs regs;

		if (other->state == THR_STOPPED && other->stop == STOP_SIGNAL &&
		    other->sig == ij->trap_sig && task_get_regs(t, other, &regs) == 0 &&
		    inject_owns_pc(ij, arch_pc(&regs))) {
			other->sig = 0;
			ij->parked_tid = other->tid;
		}
	}
	if (ij->parked_tid) {
		/* it ran at once, while the other threads ran during the queueing */
		debug("the pending call ran during its queueing, in thread %d", ij->parked_tid);
		sp->thr = task_thread_by_tid(t, ij->parked_tid);
		ij->parked_tid = 0;
		ij->pending_queued = 0;
		if (!sp->thr)
			return error("the thread that ran the pending call is gone");
		sp->kind = SAFEPOINT_PENDING;
		return check_pending_thread(ij, pi, sp);
	}
wait:
	sigemptyset(&catch);
	sigaddset(&catch, ij->trap_sig);
	start = last_kick = now_us();
	if (task_resume_all(t) < 0)
		return -1;
	for (;;) {
		struct task_event ev;
		arch_regs regs;

		if (task_wait(t, &catch, KICK_EVERY_US, &ev) < 0)
			return -1;
		if (ev.kind == TEV_EXITED) {
			char why[64];

			return error("the target %s while we waited for a safe point",
				     task_end_reason(t, why, sizeof(why)));
		}
		if (ev.kind == TEV_INTERRUPTED) {
			task_stop_all(t);
			return error(
			    "interrupted while waiting for a safe point (the queued call is "
			    "inert and stays until the interpreter runs it)");
		}
		if (ev.kind == TEV_TIMEOUT) {
			if (!said && now_us() - start > PENDING_PATIENCE_US) {
				note("waiting for a safe point: the main thread (%d) has not "
				     "reached a "
				     "bytecode boundary yet (a long C call?); Ctrl-C gives up",
				     mainthr->tid);
				said = 1;
			}
			inject_progress(ij, "waiting for a safe point", start, &last_progress);
			if (now_us() - last_kick >= KICK_EVERY_US) {
				struct pythread *now_pts;
				size_t now_n;

				last_kick = now_us();
				if (task_stop_all(t) < 0)
					return -1;
				if (py_threads(pi, &now_pts, &now_n) == 0) {
					struct pythread *m = main_pythread(now_pts, now_n);

					if (m && m->tid == mainthr->tid)
						kick_lock_wait(pi, unw, m, mainthr);
					free(now_pts);
				}
				if (task_resume_all(t) < 0)
					return -1;
			}
			if ((int64_t)(now_us() - start) > ij->safepoint_timeout_us) {
				task_stop_all(t);
				return error(
				    "no safe point within %lld s: the main thread never reached "
				    "a bytecode boundary and no other thread waits in a safe "
				    "place (see 'bt all'); the queued call is inert and stays "
				    "until the interpreter runs it",
				    (long long)(ij->safepoint_timeout_us / 1000000));
			}
			continue;
		}
		if (ev.kind == TEV_EXEC)
			return error("the target replaced its program");
		if (ev.thr)
			debug(
			    "while waiting for the pending call: event %d on thread %d, signal %d",
			    ev.kind, ev.thr->tid, ev.sig);
		if (ev.kind != TEV_SIGNAL || task_get_regs(t, ev.thr, &regs) < 0 ||
		    !inject_owns_pc(ij, arch_pc(&regs))) {
			/* not ours: let it go on */
			if (ev.thr)
				task_resume_thread(t, ev.thr, ev.sig);
			continue;
		}
		ij->pending_queued = 0; /* the interpreter took it off its queue to run it */
		sp->thr = ev.thr;
		ev.thr->sig = 0;
		break;
	}
	if (task_stop_all(t) < 0)
		return -1;
	sp->kind = SAFEPOINT_PENDING;
	return check_pending_thread(ij, pi, sp);
}

/*
 * PyGILState_Ensure on the safe point's thread.  Its rescue learns first to
 * release whatever the call returns, then the state itself: pyleakdb killed
 * at any moment, the thread gives the GIL back by itself.
 */
static int take_gil(struct injector *ij, const struct pyapi *api, struct safepoint *sp)
{
	if (inject_prepare(ij, sp->thr) < 0) {
		inject_finish(ij, sp->thr);
		return -1;
	}
	inject_rescue_gil(ij, 2, api->gil_release, 0);
	if (inject_call(ij, sp->thr, api->gil_ensure, NULL, 0, &sp->gstate) < 0) {
		inject_finish(ij, sp->thr);
		return -1;
	}
	inject_rescue_gil(ij, 1, api->gil_release, sp->gstate);
	return 0;
}

int safepoint_enter(struct injector *ij, struct pyinterp *pi, struct unwinder *unw,
		    const struct pyapi *api, struct safepoint *sp)
{
	struct pythread *pts;
	size_t npts;
	struct task_thread *thr;
	int ret;

	memset(sp, 0, sizeof(*sp));
	if (pi->task->job_stopped)
		return error("process %d is stopped by job control (SIGSTOP); send it SIGCONT "
			     "before running code in it",
			     pi->task->pid);
	if (py_threads(pi, &pts, &npts) < 0)
		return -1;
	if (!npts) {
		free(pts);
		return error("the interpreter has no threads (finalising?)");
	}
	/* still in our trampoline from the last safe point: the target has not run since */
	thr = ij->held_tid ? task_thread_by_tid(pi->task, ij->held_tid) : NULL;
	if (thr && thr->state == THR_STOPPED) {
		free(pts);
		sp->kind = SAFEPOINT_PENDING;
		sp->thr = thr;
		snprintf(sp->where, sizeof(sp->where),
			 "thread %d (MainThread), between two bytecodes", thr->tid);
		return 0;
	}
	ij->held_tid = 0;
	/* stopped at a breakpoint: that thread is inside the agent, holding the GIL */
	thr = ij->hit_tid ? task_thread_by_tid(pi->task, ij->hit_tid) : NULL;
	if (thr && thr->state == THR_STOPPED) {
		free(pts);
		sp->kind = SAFEPOINT_BLOCKED;
		sp->thr = thr;
		snprintf(sp->where, sizeof(sp->where), "thread %d, stopped at a breakpoint",
			 thr->tid);
		return take_gil(ij, api, sp);
	}
	thr = pick_blocked(pi, unw, pts, npts, sp);
	debug("safe point: %s", thr ? sp->where : "none blocked; queueing a pending call");
	if (thr) {
		sp->kind = SAFEPOINT_BLOCKED;
		sp->thr = thr;
		free(pts);
		if (inject_setup(ij, thr) < 0)
			return -1;
		return take_gil(ij, api, sp);
	}
	ret = enter_pending(ij, pi, unw, api, pts, npts, sp);
	free(pts);
	return ret;
}

/*
 * The main thread stopped inside our trampoline: walk it out, one
 * instruction at a time, back into the interpreter.  Our code page can then
 * go away (detach unmaps it) without a thread left running in it.
 */
static int step_out_of_trampoline(struct injector *ij, struct task_thread *thr)
{
	for (int i = 0; i < TRAMPOLINE_STEPS_MAX; i++) {
		arch_regs regs;

		if (task_get_regs(ij->task, thr, &regs) < 0)
			return -1;
		if (!inject_owns_pc(ij, arch_pc(&regs)))
			return 0;
		if (task_step_thread(ij->task, thr) < 0 ||
		    task_wait_thread(ij->task, thr, 1000 * 1000) <= 0)
			return error("cannot step thread %d out of pyleakdb's trampoline",
				     thr->tid);
		if (thr->stop == STOP_SIGNAL) {
			/* a real signal arrived as we stepped: it is the program's, keep it */
			thr->deferred_sig = thr->sig;
			thr->sig = 0;
		}
	}
	return error("thread %d did not leave pyleakdb's trampoline", thr->tid);
}

int safepoint_leave(struct injector *ij, const struct pyapi *api, struct safepoint *sp)
{
	int ret = 0;

	if (sp->kind == SAFEPOINT_NONE)
		return 0;
	if (sp->kind == SAFEPOINT_BLOCKED) {
		uint64_t arg = sp->gstate, r;

		inject_rescue_gil(ij, 0, 0, 0); /* released below, never twice */
		if (inject_call(ij, sp->thr, api->gil_release, &arg, 1, &r) < 0)
			ret = -1;
	}
	if (inject_finish(ij, sp->thr) < 0)
		ret = -1;
	if (sp->kind == SAFEPOINT_PENDING) {
		/* it stays in the trampoline until the target runs again (safepoint_unpark) */
		ij->held_tid = sp->thr->tid;
		sp->thr->held = 1;
	}
	sp->kind = SAFEPOINT_NONE;
	return ret;
}

void safepoint_unpark(struct injector *ij)
{
	struct task_thread *thr;

	if (!ij->held_tid)
		return;
	thr = task_thread_by_tid(ij->task, ij->held_tid);
	ij->held_tid = 0;
	if (thr && thr->state == THR_STOPPED && step_out_of_trampoline(ij, thr) < 0)
		warning("thread %d stays in pyleakdb's trampoline; pyleakdb's code page stays "
			"mapped in the target",
			thr->tid);
}

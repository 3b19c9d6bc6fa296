/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * safepoint: when, and in which thread, calling into CPython is safe.
 *
 * Never at an arbitrary stop: a thread stopped inside malloc, inside the
 * collector, or between two halves of a bytecode would corrupt the heap or
 * deadlock if we made it run Python.  Two kinds of place are safe:
 *
 *  - BLOCKED: a thread with a Python frame, blocked in a system call that
 *    only waits (select, poll, sleep, a lock or the GIL itself), with the
 *    GIL released.  It is in C code that gave the GIL up on purpose, so it
 *    may take it back like any C extension thread does (PyGILState_Ensure).
 *    The kernel restarts its syscall afterwards as if it had been
 *    interrupted by a signal with SA_RESTART.
 *
 *  - PENDING: the main thread between two bytecodes.  We queue a pending
 *    call (Py_AddPendingCall) whose function is our trampoline; the
 *    interpreter runs it at the next bytecode boundary with the GIL held,
 *    and it raises our trap signal, stopping there for us.
 *
 * While we run code at the safe point the other threads run too: they
 * cannot run Python without the GIL, and whatever native lock they hold
 * they will release, so nothing they hold can deadlock us.  doc/design.md
 * has the reasoning.
 */
#ifndef PYLEAKDB_SAFEPOINT_H
#define PYLEAKDB_SAFEPOINT_H

#include "inject.h"
#include "pyinterp.h"
#include "unwind.h"

enum safepoint_kind {
	SAFEPOINT_NONE,
	SAFEPOINT_BLOCKED,
	SAFEPOINT_PENDING,
};

struct safepoint {
	enum safepoint_kind kind;
	struct task_thread *thr;
	uint64_t gstate; /* BLOCKED: what PyGILState_Ensure returned */
	char where[256]; /* "thread 4242 (MainThread) blocked in select" */
};

/* The functions of the C API that the injection needs, resolved once. */
struct pyapi {
	uint64_t gil_ensure, gil_release;
	uint64_t err_fetch, err_restore, err_clear;
	uint64_t dict_new, dict_set_item_string, dict_clear, eval_get_builtins;
	uint64_t compile_string, eval_code; /* Py_CompileString, PyEval_EvalCode */
	uint64_t decref, incref, add_pending_call;
	uint64_t thread_swap; /* PyThreadState_Swap */
	uint64_t thread_get;  /* PyThreadState_Get */
	/* PyThreadState_EnterTracing/LeaveTracing (3.11+, else 0): the agent runs untraced */
	uint64_t enter_tracing, leave_tracing;
	uint64_t dict_get_item_string, bytes_from_size, call_obj_args, gc_untrack;
	uint64_t malloc_trim; /* glibc's, where there is one */
};

int pyapi_resolve(struct pyapi *api, struct pyinterp *pi);

/*
 * Reach a safe point: all threads stopped on entry and on return, the chosen
 * thread guarded and holding the GIL.  Says what it waits for when it has
 * to wait.  -1 with an error when none can be reached (Ctrl-C, timeout).
 */
int safepoint_enter(struct injector *ij, struct pyinterp *pi, struct unwinder *unw,
		    const struct pyapi *api, struct safepoint *sp);
/* Give the GIL back and put the thread back as it was. */
int safepoint_leave(struct injector *ij, const struct pyapi *api, struct safepoint *sp);
/*
 * A pending-call safe point keeps its thread in our trampoline after
 * safepoint_leave(), for the next one, as long as the target stays stopped.
 * This walks it out, back into the interpreter: called before the target
 * runs again (task_resume_all does, through its before_resume hook) and
 * before our code page goes.
 */
void safepoint_unpark(struct injector *ij);

#endif

/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * agent: pyleakdb's Python inside the target, and the calls into it.
 *
 * The agent (src/agent/agent.py, embedded in the binary) is executed once
 * per attach into a private namespace dict that only pyleakdb refers to;
 * agent_release() drops it, stops what it started and unmaps pyleakdb's
 * memory.  Each call reaches a safe point, runs one agent function and
 * reads its JSON result straight out of the bytes object it returns: no
 * file, pipe or socket in the target's world.
 */
#ifndef PYLEAKDB_AGENT_H
#define PYLEAKDB_AGENT_H

#include <jansson.h>
#include <stdint.h>

#include "inject.h"
#include "pyinterp.h"
#include "safepoint.h"
#include "unwind.h"
#include "util.h"

struct agent {
	struct task *task;
	struct pyinterp *pi;
	struct unwinder *unw;
	struct injector ij;
	struct pyapi api;
	int api_ok;
	uint64_t ns; /* the agent's namespace (a dict we hold one reference to), 0 if none */
	unsigned long calls;
	struct safepoint last; /* where the last call ran, for the user */
};

/*
 * The arguments of an agent call, packed in marshal's format (a tuple of
 * bytes, ints and None): one bytes object in the target, unpacked by the
 * agent with marshal.loads.  Nothing is compiled per call, and nothing a
 * user types is ever read as code.
 */
struct agent_args {
	struct strbuf buf;
	int n;
};
void agent_args_init(struct agent_args *a, const char *function);
void agent_arg_int(struct agent_args *a, long long v);
void agent_arg_str(struct agent_args *a, const char *s, size_t len);
void agent_arg_none(struct agent_args *a);
void agent_args_release(struct agent_args *a);

void agent_init(struct agent *ag, struct task *t, struct pyinterp *pi, struct unwinder *unw);
/*
 * Run an agent function at a safe point; *result is its JSON reply (the
 * caller decrefs it).  An {"error": ...} reply is printed and gives -1.
 */
int agent_call(struct agent *ag, struct agent_args *args, json_t **result);
/* Call a C function of the target at a safe point (malloc_trim): *ret is its return value. */
int agent_call_native(struct agent *ag, uint64_t fn, const uint64_t *args, int nargs,
		      uint64_t *ret);
/*
 * Run an agent function once "as" each of the given thread states (at one
 * safe point, swapping the current thread state, the other threads held
 * stopped): how per-thread state such as a trace function is set in
 * threads that are not at a safe point themselves.  The replies go into
 * *results (a JSON array, the caller decrefs), one per thread state.
 */
int agent_call_each_thread(struct agent *ag, const char *function, const uint64_t *tstates,
			   size_t n, json_t **results);
/* How many threads are running agent code right now (read from their Python stacks). */
int agent_busy_threads(struct agent *ag);

/* Remove everything the agent put in the target.  Needs a safe point if it was installed. */
int agent_release(struct agent *ag);
int agent_installed(const struct agent *ag);

/* The packed arguments, finished (exposed for tests). */
const struct strbuf *agent_args_finish(struct agent_args *a);

#endif

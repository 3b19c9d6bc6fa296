// SPDX-License-Identifier: GPL-3.0-or-later
/*
 * agent: installing pyleakdb's Python in the target, calling it, reading
 * its answers, and removing it.  See include/agent.h.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <unistd.h>

#include "agent-blob.h"
#include "agent.h"
#include "mem.h"
#include "pyframes.h"

/* Python's start symbols for compiling (Include/compile.h: Py_file_input, Py_eval_input). */
#define PY_FILE_INPUT 257
#define PY_EVAL_INPUT 258
/* How long threads get to leave agent code before the namespace goes, and how often. */
#define DRAIN_TRIES    50
#define DRAIN_SLICE_US 2000
/* The largest reply we read back. */
#define REPLY_MAX (256u << 20)

/* Where things go in the injector's data area. */
enum {
	OFF_ERR_SLOTS = 64, /* PyErr_Fetch's three out-pointers */
	OFF_NAMES = 128,    /* "__builtins__", AGENT_FILENAME */
	OFF_SOURCE = 4096,  /* the code to compile */
};

/* marshal's type codes (Python/marshal.c), stable across every version we read */
#define MARSHAL_TUPLE '('
#define MARSHAL_BYTES 's'
#define MARSHAL_INT32 'i'
#define MARSHAL_LONG  'l'
#define MARSHAL_NONE  'N'
/* marshal writes big ints in 15-bit digits */
#define MARSHAL_DIGIT_BITS 15
/* where the tuple's item count goes, after its type byte */
#define ARGS_COUNT_AT 1

static void put_u32(struct strbuf *sb, uint32_t v)
{
	unsigned char b[4] = {(unsigned char)v, (unsigned char)(v >> 8), (unsigned char)(v >> 16),
			      (unsigned char)(v >> 24)};

	sb_add(sb, b, 4);
}

void agent_args_init(struct agent_args *a, const char *function)
{
	sb_init(&a->buf);
	sb_addc(&a->buf, MARSHAL_TUPLE);
	put_u32(&a->buf, 0); /* the count, filled in by agent_args_finish() */
	a->n = 0;
	agent_arg_str(a, function, strlen(function));
}

void agent_arg_int(struct agent_args *a, long long v)
{
	a->n++;
	if (v >= INT32_MIN && v <= INT32_MAX) {
		sb_addc(&a->buf, MARSHAL_INT32);
		put_u32(&a->buf, (uint32_t)(int32_t)v);
		return;
	} else {
		unsigned long long m = v < 0 ? 0ull - (unsigned long long)v : (unsigned long long)v;
		unsigned char digits[2 * 5];
		int nd = 0;

		while (m) {
			digits[2 * nd] = (unsigned char)(m & 0xff);
			digits[2 * nd + 1] = (unsigned char)((m >> 8) & 0x7f);
			m >>= MARSHAL_DIGIT_BITS;
			nd++;
		}
		sb_addc(&a->buf, MARSHAL_LONG);
		put_u32(&a->buf, (uint32_t)(v < 0 ? -nd : nd));
		sb_add(&a->buf, digits, (size_t)nd * 2);
	}
}

void agent_arg_str(struct agent_args *a, const char *s, size_t len)
{
	a->n++;
	sb_addc(&a->buf, MARSHAL_BYTES);
	put_u32(&a->buf, (uint32_t)len);
	sb_add(&a->buf, s, len);
}

void agent_arg_none(struct agent_args *a)
{
	a->n++;
	sb_addc(&a->buf, MARSHAL_NONE);
}

const struct strbuf *agent_args_finish(struct agent_args *a)
{
	uint32_t n = (uint32_t)a->n;

	memcpy(a->buf.buf + ARGS_COUNT_AT, &n, sizeof(n)); /* little-endian, as marshal */
	return &a->buf;
}

void agent_args_release(struct agent_args *a)
{
	sb_release(&a->buf);
}

static void unpark(void *arg)
{
	safepoint_unpark(arg);
}

void agent_init(struct agent *ag, struct task *t, struct pyinterp *pi, struct unwinder *unw)
{
	memset(ag, 0, sizeof(*ag));
	ag->task = t;
	ag->pi = pi;
	ag->unw = unw;
	inject_init(&ag->ij, t, &pi->mods);
	/* the thread a safe point keeps in our trampoline leaves it before the target runs */
	t->before_resume = unpark;
	t->before_resume_arg = &ag->ij;
}

int agent_installed(const struct agent *ag)
{
	return ag->ns != 0;
}

static int call(struct agent *ag, struct task_thread *thr, uint64_t fn, const uint64_t *args,
		int nargs, uint64_t *ret)
{
	return inject_call(&ag->ij, thr, fn, args, nargs, ret);
}

static int put_string(struct agent *ag, size_t off, const char *s, size_t len, uint64_t *addr)
{
	char *buf = xmalloc(len + 1);
	int r;

	memcpy(buf, s, len);
	buf[len] = '\0';
	r = inject_put(&ag->ij, off, buf, len + 1, addr);
	free(buf);
	return r;
}

/* Compile source under our file name and run it in the agent's namespace: a new reference. */
static int run_source(struct agent *ag, struct task_thread *thr, const char *src, size_t len,
		      int start, uint64_t filename, uint64_t *result)
{
	uint64_t src_addr, code, args[3], r;

	if (put_string(ag, OFF_SOURCE, src, len, &src_addr) < 0)
		return -1;
	args[0] = src_addr;
	args[1] = filename;
	args[2] = (uint64_t)start;
	if (call(ag, thr, ag->api.compile_string, args, 3, &code) < 0)
		return -1;
	if (!code) {
		call(ag, thr, ag->api.err_clear, NULL, 0, &r);
		return error("the agent's code did not compile in the target (Python %d.%d)",
			     ag->pi->major, ag->pi->minor);
	}
	args[0] = code;
	args[1] = ag->ns;
	args[2] = ag->ns;
	if (call(ag, thr, ag->api.eval_code, args, 3, result) < 0)
		return -1;
	args[0] = code;
	call(ag, thr, ag->api.decref, args, 1, &r);
	if (!*result) {
		call(ag, thr, ag->api.err_clear, NULL, 0, &r);
		return error("the agent raised an exception in the target");
	}
	return 0;
}

/* agent.py first (the others build on it), then every other file, in name order. */
static int run_agent_files(struct agent *ag, struct task_thread *thr, uint64_t filename)
{
	const struct agent_file *order[16];
	size_t n = 0;
	uint64_t args[1], r, result;

	for (size_t i = 0; i < agent_files_count; i++)
		if (!strcmp(agent_files[i].name, "agent"))
			order[n++] = &agent_files[i];
	if (n != 1)
		BUG("the agent's source is not in the binary");
	for (size_t i = 0; i < agent_files_count && n < ARRAY_SIZE(order); i++)
		if (strcmp(agent_files[i].name, "agent"))
			order[n++] = &agent_files[i];
	for (size_t i = 0; i < n; i++) {
		if (run_source(ag, thr, (const char *)order[i]->data, order[i]->len, PY_FILE_INPUT,
			       filename, &result) < 0)
			return -1;
		args[0] = result;
		if (call(ag, thr, ag->api.decref, args, 1, &r) < 0)
			return -1;
	}
	return 0;
}

static int call_packed(struct agent *ag, struct task_thread *thr, const struct strbuf *packed,
		       struct strbuf *reply);

/*
 * From 3.11 a code object keeps the names of its locals in a tuple that
 * Python code cannot reach (co_varnames is a copy), so the agent cannot
 * leave its own out of a census.  They hold only strings: untracking them
 * is harmless, and then no census sees them.
 */
static int untrack_hidden(struct agent *ag, struct task_thread *thr)
{
	const struct py_layout *L = &ag->pi->L;
	struct strbuf reply = STRBUF_INIT;
	struct agent_args a;
	json_error_t jerr;
	json_t *ids = NULL, *v;
	size_t i;
	int ret = 0;

	if (L->code.localsplusnames < 0)
		return 0;
	agent_args_init(&a, "_own_code_ids");
	if (call_packed(ag, thr, agent_args_finish(&a), &reply) == 0)
		ids = json_loadb(reply.buf, reply.len, 0, &jerr);
	agent_args_release(&a);
	sb_release(&reply);
	json_array_foreach (json_object_get(ids, "ids"), i, v) {
		uint64_t tuple, args[1], r;

		if (mem_read_u64(ag->task,
				 (uint64_t)json_integer_value(v) +
				     (uint64_t)L->code.localsplusnames,
				 &tuple) < 0 ||
		    !tuple)
			continue;
		args[0] = tuple;
		if (call(ag, thr, ag->api.gc_untrack, args, 1, &r) < 0) {
			ret = -1;
			break;
		}
	}
	json_decref(ids);
	return ret;
}

/*
 * While agent code runs, its thread counts as being inside a trace function
 * (PyThreadState_EnterTracing, 3.11 and later): the program's own tracers
 * and profilers, and pyleakdb's breakpoints, never see the agent's frames.
 * On 3.11 it also keeps the interpreter out of a loop: a traced frame whose
 * first instruction finds the eval breaker set goes back to check it again
 * and again while pending calls cannot run, which is the case inside our
 * pending-call trampoline once another pending call has been queued.
 * Before 3.11 there is no such call, and no such loop.
 */
static void untraced_begin(struct agent *ag, struct task_thread *thr, uint64_t tstate)
{
	uint64_t r;

	if (ag->api.enter_tracing && tstate &&
	    call(ag, thr, ag->api.enter_tracing, &tstate, 1, &r) == 0)
		inject_rescue_leave(&ag->ij, ag->api.leave_tracing, tstate);
}

static void untraced_end(struct agent *ag, struct task_thread *thr, uint64_t tstate)
{
	uint64_t r;

	if (ag->api.leave_tracing && tstate) {
		inject_rescue_leave(&ag->ij, 0, 0);
		call(ag, thr, ag->api.leave_tracing, &tstate, 1, &r);
	}
}

/* The thread state the safe point's thread runs as (0 if it cannot be had). */
static uint64_t current_tstate(struct agent *ag, struct task_thread *thr)
{
	uint64_t ts = 0;

	if (!ag->api.enter_tracing || call(ag, thr, ag->api.thread_get, NULL, 0, &ts) < 0)
		return 0;
	return ts;
}

static int install(struct agent *ag, struct task_thread *thr, uint64_t filename)
{
	uint64_t ns, builtins, name, args[3], r;

	if (call(ag, thr, ag->api.dict_new, NULL, 0, &ns) < 0)
		return -1;
	if (!ns)
		return error("cannot create the agent's namespace in the target");
	if (call(ag, thr, ag->api.eval_get_builtins, NULL, 0, &builtins) < 0 ||
	    put_string(ag, OFF_NAMES, "__builtins__", strlen("__builtins__"), &name) < 0)
		return -1;
	args[0] = ns;
	args[1] = name;
	args[2] = builtins;
	if (call(ag, thr, ag->api.dict_set_item_string, args, 3, &r) < 0)
		return -1;
	ag->ns = ns;
	if (run_agent_files(ag, thr, filename) < 0 || untrack_hidden(ag, thr) < 0) {
		args[0] = ns;
		call(ag, thr, ag->api.dict_clear, args, 1, &r);
		call(ag, thr, ag->api.decref, args, 1, &r);
		ag->ns = 0;
		return -1;
	}
	return 0;
}

/* Read a bytes object's contents out of the target. */
static int read_bytes_object(struct agent *ag, uint64_t obj, struct strbuf *out)
{
	const struct py_layout *L = &ag->pi->L;
	int64_t size;

	if (mem_read(ag->task, obj + (uint64_t)L->object.size, &size, sizeof(size)) < 0 ||
	    size < 0 || (uint64_t)size > REPLY_MAX)
		return error("cannot read the agent's reply at %#" PRIx64, obj);
	sb_reset(out);
	sb_grow(out, (size_t)size);
	if (mem_read_direct(ag->task, obj + (uint64_t)L->bytes.sval, out->buf, (size_t)size) < 0)
		return error("cannot read the agent's reply at %#" PRIx64, obj);
	out->len = (size_t)size;
	out->buf[out->len] = '\0';
	return 0;
}

static int prepare(struct agent *ag)
{
	if (!ag->api_ok) {
		if (pyapi_resolve(&ag->api, ag->pi) < 0)
			return -1;
		ag->api_ok = 1;
	}
	if (ag->pi->L.version_hex < (3u << 24 | 6u << 16) ||
	    ag->pi->L.version_hex > (3u << 24 | 13u << 16))
		return error("running code in the target needs CPython 3.6 to 3.13; this is %d.%d",
			     ag->pi->major, ag->pi->minor);
	return 0;
}

/* At a safe point: save the thread's exception state, run, restore it. */
/*
 * The agent's door, called with the packed arguments as one bytes object:
 * _call_packed(b) -> bytes.  A reply that is not bytes, or an exception
 * escaping (it never should), is an error.
 */
static int call_packed(struct agent *ag, struct task_thread *thr, const struct strbuf *packed,
		       struct strbuf *reply)
{
	uint64_t data, bobj, fn, name, result, args[3], r;
	int ret = -1;

	if (inject_put(&ag->ij, OFF_SOURCE, packed->buf, packed->len, &data) < 0 ||
	    put_string(ag, OFF_NAMES + 64, "_call_packed", strlen("_call_packed"), &name) < 0)
		return -1;
	args[0] = ag->ns;
	args[1] = name;
	if (call(ag, thr, ag->api.dict_get_item_string, args, 2, &fn) < 0)
		return -1;
	if (!fn)
		return error("the agent's door is missing from its namespace");
	args[0] = data;
	args[1] = packed->len;
	if (call(ag, thr, ag->api.bytes_from_size, args, 2, &bobj) < 0)
		return -1;
	if (!bobj) {
		call(ag, thr, ag->api.err_clear, NULL, 0, &r);
		return error("the target cannot allocate %zu bytes", packed->len);
	}
	args[0] = fn;
	args[1] = bobj;
	args[2] = 0; /* the NULL that ends PyObject_CallFunctionObjArgs' arguments */
	if (call(ag, thr, ag->api.call_obj_args, args, 3, &result) == 0) {
		if (!result) {
			call(ag, thr, ag->api.err_clear, NULL, 0, &r);
			error("the agent raised an exception in the target");
		} else {
			if (read_bytes_object(ag, result, reply) == 0)
				ret = 0;
			args[0] = result;
			call(ag, thr, ag->api.decref, args, 1, &r);
		}
	}
	args[0] = bobj;
	call(ag, thr, ag->api.decref, args, 1, &r);
	return ret;
}

static int with_safepoint(struct agent *ag, const struct strbuf *packed, struct strbuf *reply)
{
	struct safepoint sp;
	uint64_t slots[3] = {0, 0, 0}, slots_addr, filename, args[3], r, ts = 0;
	int ret = -1, fetched = 0;

	if (safepoint_enter(&ag->ij, ag->pi, ag->unw, &ag->api, &sp) < 0)
		return -1;
	ag->last = sp;
	if (inject_put(&ag->ij, OFF_ERR_SLOTS, slots, sizeof(slots), &slots_addr) < 0 ||
	    put_string(ag, OFF_NAMES + 32, AGENT_FILENAME, strlen(AGENT_FILENAME), &filename) < 0)
		goto leave;
	/* an exception the thread was carrying is put aside and given back untouched */
	args[0] = slots_addr;
	args[1] = slots_addr + 8;
	args[2] = slots_addr + 16;
	if (call(ag, sp.thr, ag->api.err_fetch, args, 3, &r) < 0)
		goto leave;
	fetched = 1;
	ts = current_tstate(ag, sp.thr);
	untraced_begin(ag, sp.thr, ts);
	if (!ag->ns && install(ag, sp.thr, filename) < 0)
		goto restore;
	if (packed) {
		if (call_packed(ag, sp.thr, packed, reply) == 0)
			ret = 0;
	} else {
		ret = 0;
	}
restore:
	untraced_end(ag, sp.thr, ts);
	if (fetched) {
		if (mem_read(ag->task, slots_addr, slots, sizeof(slots)) == 0) {
			args[0] = slots[0];
			args[1] = slots[1];
			args[2] = slots[2];
			call(ag, sp.thr, ag->api.err_restore, args, 3, &r);
		}
	}
leave:
	if (safepoint_leave(&ag->ij, &ag->api, &sp) < 0)
		ret = -1;
	ag->calls++;
	return ret;
}

int agent_call(struct agent *ag, struct agent_args *a, json_t **result)
{
	struct strbuf reply = STRBUF_INIT;
	json_error_t jerr;
	json_t *err;

	*result = NULL;
	if (prepare(ag) < 0)
		return -1;
	if (with_safepoint(ag, agent_args_finish(a), &reply) < 0) {
		sb_release(&reply);
		return -1;
	}
	*result = json_loadb(reply.buf, reply.len, 0, &jerr);
	sb_release(&reply);
	if (!*result)
		return error("cannot parse the agent's reply: %s", jerr.text);
	err = json_object_get(*result, "error");
	if (json_is_string(err)) {
		error("%s", json_string_value(err));
		json_decref(*result);
		*result = NULL;
		return -1;
	}
	return 0;
}

int agent_call_native(struct agent *ag, uint64_t fn, const uint64_t *args, int nargs, uint64_t *ret)
{
	struct safepoint sp;
	int r;

	if (prepare(ag) < 0)
		return -1;
	if (safepoint_enter(&ag->ij, ag->pi, ag->unw, &ag->api, &sp) < 0)
		return -1;
	ag->last = sp;
	r = call(ag, sp.thr, fn, args, nargs, ret);
	if (safepoint_leave(&ag->ij, &ag->api, &sp) < 0)
		r = -1;
	return r;
}

int agent_call_each_thread(struct agent *ag, const char *function, const uint64_t *tstates,
			   size_t n, json_t **results)
{
	struct strbuf reply = STRBUF_INIT;
	struct agent_args a;
	struct safepoint sp;
	uint64_t filename, args[1], old = 0, r, ts;
	int ret = 0, others = ag->ij.others_run;

	*results = json_array();
	if (prepare(ag) < 0)
		return -1;
	agent_args_init(&a, function);
	if (safepoint_enter(&ag->ij, ag->pi, ag->unw, &ag->api, &sp) < 0) {
		agent_args_release(&a);
		return -1;
	}
	ag->last = sp;
	/* nobody else may run while our thread stands in for another: that thread's own code
	 * would find its state in use */
	ag->ij.others_run = 0;
	ts = current_tstate(ag, sp.thr);
	untraced_begin(ag, sp.thr, ts);
	if (put_string(ag, OFF_NAMES + 32, AGENT_FILENAME, strlen(AGENT_FILENAME), &filename) < 0 ||
	    (!ag->ns && install(ag, sp.thr, filename) < 0))
		ret = -1;
	untraced_end(ag, sp.thr, ts);
	for (size_t i = 0; ret == 0 && i < n; i++) {
		json_error_t jerr;
		json_t *j = NULL;

		args[0] = tstates[i];
		if (call(ag, sp.thr, ag->api.thread_swap, args, 1, &old) < 0) {
			ret = -1;
			break;
		}
		inject_rescue_swap(&ag->ij, ag->api.thread_swap, old);
		untraced_begin(ag, sp.thr, tstates[i]);
		if (call_packed(ag, sp.thr, agent_args_finish(&a), &reply) == 0)
			j = json_loadb(reply.buf, reply.len, 0, &jerr);
		untraced_end(ag, sp.thr, tstates[i]);
		json_array_append_new(*results, j ? j : json_null());
		/* back to the thread state the safe point gave us, whatever happened */
		inject_rescue_swap(&ag->ij, 0, 0);
		args[0] = old;
		if (call(ag, sp.thr, ag->api.thread_swap, args, 1, &r) < 0)
			ret = -1;
	}
	ag->ij.others_run = others;
	if (safepoint_leave(&ag->ij, &ag->api, &sp) < 0)
		ret = -1;
	agent_args_release(&a);
	sb_release(&reply);
	return ret;
}

int agent_busy_threads(struct agent *ag)
{
	struct pythread *pts;
	size_t n;
	int busy = 0;

	if (py_threads(ag->pi, &pts, &n) < 0)
		return -1;
	for (size_t i = 0; i < n; i++) {
		struct pystack ps;

		if (py_stack(ag->pi, pts[i].tstate, &ps) == 0 || ps.n) {
			for (size_t j = 0; j < ps.n; j++)
				if (ps.v[j].file && !strcmp(ps.v[j].file, AGENT_FILENAME)) {
					busy++;
					break;
				}
		}
		pystack_release(&ps);
	}
	free(pts);
	return busy;
}

/* Let threads that are inside agent code (a trace function, a breakpoint) run out of it. */
static int drain_agent_code(struct agent *ag)
{
	for (int tries = 0; tries < DRAIN_TRIES; tries++) {
		int busy = agent_busy_threads(ag);

		if (busy <= 0)
			return busy;
		debug("%d thread(s) still run agent code; letting them go on briefly", busy);
		ag->ij.hit_tid = 0;
		if (task_resume_all(ag->task) < 0)
			return -1;
		usleep(DRAIN_SLICE_US);
		if (task_stop_all(ag->task) < 0)
			return -1;
	}
	return agent_busy_threads(ag);
}

int agent_release(struct agent *ag)
{
	struct task_thread *thr;
	int ret = 0;

	if (ag->ns) {
		struct strbuf reply = STRBUF_INIT;
		struct safepoint sp;
		uint64_t args[1], r;

		int busy = drain_agent_code(ag);

		/* stop what we started, then drop the namespace and everything in it */
		if (safepoint_enter(&ag->ij, ag->pi, ag->unw, &ag->api, &sp) < 0) {
			warning(
			    "cannot reach a safe point to remove the agent; its namespace stays "
			    "in the target, unreachable from the program");
			ret = -1;
		} else {
			struct agent_args un;
			uint64_t ts = current_tstate(ag, sp.thr);

			untraced_begin(ag, sp.thr, ts);
			agent_args_init(&un, "_uninstall");
			call_packed(ag, sp.thr, agent_args_finish(&un), &reply);
			agent_args_release(&un);
			args[0] = ag->ns;
			/* clearing breaks the namespace's cycles so it goes at once; but a thread
			 * still in agent code needs its globals: then only let go of ours */
			if (busy == 0)
				call(ag, sp.thr, ag->api.dict_clear, args, 1, &r);
			else
				warning("a thread is still running pyleakdb's code; its namespace "
					"will go "
					"at the next garbage collection");
			call(ag, sp.thr, ag->api.decref, args, 1, &r);
			untraced_end(ag, sp.thr, ts);
			ag->ns = 0;
			if (safepoint_leave(&ag->ij, &ag->api, &sp) < 0)
				ret = -1;
		}
		sb_release(&reply);
	}
	safepoint_unpark(&ag->ij);
	if (ag->ij.scratch) {
		thr = task_main_thread(ag->task);
		if (!thr && ag->task->nthr)
			thr = ag->task->thr[0];
		if (thr && inject_teardown(&ag->ij, thr) < 0)
			ret = -1;
		if (thr)
			inject_finish(&ag->ij, thr);
	}
	return ret;
}

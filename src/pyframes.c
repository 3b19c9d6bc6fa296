// SPDX-License-Identifier: GPL-3.0-or-later
/*
 * pyframes: thread states and frames, out of process.  See include/pyframes.h.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "linetable.h"
#include "mem.h"
#include "pyframes.h"

#define NAME_CHARS_MAX	 512
#define FILE_CHARS_MAX	 4096
#define LINETABLE_MAX	 (1u << 22)
#define CODE_CACHE_SLOTS 1024
#define INTERPS_MAX	 256
/* Python bytecode is made of 2-byte code units since 3.6 */
#define CODE_UNIT_BYTES 2

/* What we know of one code object, for as long as the target stays stopped. */
struct code_info {
	uint64_t addr;
	unsigned long generation;
	pid_t pid;
	char *name;
	char *file;
	int firstlineno;
	uint8_t *table;
	size_t table_len;
	int ok;
};

static struct code_info code_cache[CODE_CACHE_SLOTS];

static void code_info_clear(struct code_info *ci)
{
	free(ci->name);
	free(ci->file);
	free(ci->table);
	memset(ci, 0, sizeof(*ci));
}

static struct code_info *code_info_get(struct pyinterp *pi, uint64_t code)
{
	const struct py_layout *L = &pi->L;
	struct code_info *ci = &code_cache[(code >> 4) % CODE_CACHE_SLOTS];
	struct strbuf sb = STRBUF_INIT;
	uint64_t type, p;
	int32_t first;

	if (ci->addr == code && ci->generation == pi->task->generation && ci->pid == pi->task->pid)
		return ci->ok ? ci : NULL;
	code_info_clear(ci);
	ci->addr = code;
	ci->generation = pi->task->generation;
	ci->pid = pi->task->pid;
	if (py_obj_type(pi, code, &type) < 0 || (pi->type_code && type != pi->type_code))
		return NULL;
	/* the qualified name says which class a method belongs to (3.11+) */
	if (L->code.qualname >= 0 && py_read_ptr(pi, code + (uint64_t)L->code.qualname, &p) == 0 &&
	    py_str(pi, p, NAME_CHARS_MAX, &sb) == 0)
		ci->name = xstrdup(sb_str(&sb));
	else if (py_read_ptr(pi, code + (uint64_t)L->code.name, &p) == 0 &&
		 py_str(pi, p, NAME_CHARS_MAX, &sb) == 0)
		ci->name = xstrdup(sb_str(&sb));
	if (py_read_ptr(pi, code + (uint64_t)L->code.filename, &p) == 0 &&
	    py_str(pi, p, FILE_CHARS_MAX, &sb) == 0)
		ci->file = xstrdup(sb_str(&sb));
	if (mem_read_i32(pi->task, code + (uint64_t)L->code.firstlineno, &first) == 0)
		ci->firstlineno = first;
	p = 0;
	if (L->linetable == PY_LT_LNOTAB)
		py_read_ptr(pi, code + (uint64_t)L->code.lnotab, &p);
	else
		py_read_ptr(pi, code + (uint64_t)L->code.linetable, &p);
	if (p && py_bytes(pi, p, LINETABLE_MAX, &sb) == 0) {
		ci->table_len = sb.len;
		ci->table = (uint8_t *)sb_detach(&sb);
	}
	sb_release(&sb);
	if (!ci->name || !ci->file) {
		code_info_clear(ci);
		ci->addr = code;
		ci->generation = pi->task->generation;
		ci->pid = pi->task->pid;
		return NULL;
	}
	ci->ok = 1;
	return ci;
}

static int line_at(struct pyinterp *pi, struct code_info *ci, int64_t offset)
{
	int line;

	/* a frame that has not run its first instruction is at its first line, as CPython says */
	if (offset < 0)
		return ci->firstlineno;
	if (offset > INT32_MAX || !ci->table)
		return -1;
	line =
	    py_addr2line(pi->L.linetable, ci->table, ci->table_len, ci->firstlineno, (int)offset);
	return line;
}

int py_code_info(struct pyinterp *pi, uint64_t code, struct pyframe *f)
{
	struct code_info *ci = code_info_get(pi, code);

	if (!ci)
		return -1;
	f->func = xstrdup(ci->name);
	f->file = xstrdup(ci->file);
	f->firstlineno = ci->firstlineno;
	f->code = code;
	return 0;
}

static struct pyframe *push_frame(struct pystack *st, size_t *cap)
{
	if (st->n == *cap) {
		*cap = *cap ? *cap * 2 : 32;
		st->v = xrealloc(st->v, *cap * sizeof(*st->v));
	}
	memset(&st->v[st->n], 0, sizeof(st->v[0]));
	return &st->v[st->n++];
}

static void stack_fail(struct pystack *st, const char *fmt, uint64_t addr)
{
	char buf[128];

	snprintf(buf, sizeof(buf), fmt, addr);
	free(st->error);
	st->error = xstrdup(buf);
}

static int fill_frame(struct pyinterp *pi, struct pyframe *f, uint64_t frame, uint64_t code,
		      int64_t offset)
{
	struct code_info *ci = code_info_get(pi, code);

	if (!ci)
		return -1;
	f->func = xstrdup(ci->name);
	f->file = xstrdup(ci->file);
	f->firstlineno = ci->firstlineno;
	f->line = line_at(pi, ci, offset);
	f->frame = frame;
	f->code = code;
	return 0;
}

/* 3.6 - 3.10: PyFrameObject, one per native call of the evaluation loop. */
static int walk_frame_objects(struct pyinterp *pi, uint64_t tstate, struct pystack *st)
{
	const struct py_layout *L = &pi->L;
	uint64_t f, code;
	size_t cap = 0;
	int32_t lasti;

	if (py_read_ptr(pi, tstate + (uint64_t)L->tstate.frame, &f) < 0) {
		stack_fail(st, "cannot read the thread state at %#" PRIx64, tstate);
		return -1;
	}
	while (f) {
		struct pyframe *pf;
		int64_t offset;

		if (st->n >= PY_FRAMES_MAX) {
			st->truncated = 1;
			break;
		}
		if (py_read_ptr(pi, f + (uint64_t)L->frame.code, &code) < 0 ||
		    mem_read_i32(pi->task, f + (uint64_t)L->frame.lasti, &lasti) < 0) {
			stack_fail(st, "cannot read frame at %#" PRIx64, f);
			return -1;
		}
		offset = lasti;
		if (L->lasti_in_code_units && lasti >= 0)
			offset = (int64_t)lasti * CODE_UNIT_BYTES;
		pf = push_frame(st, &cap);
		if (fill_frame(pi, pf, f, code, offset) < 0) {
			st->n--;
			stack_fail(st, "cannot read the code object of frame at %#" PRIx64, f);
			return -1;
		}
		pf->ends_native_call = 1;
		if (py_read_ptr(pi, f + (uint64_t)L->frame.back, &f) < 0) {
			stack_fail(st, "cannot read frame at %#" PRIx64, f);
			return -1;
		}
	}
	return 0;
}

/* 3.11+: _PyInterpreterFrame, several per native call of the evaluation loop. */
static int walk_interp_frames(struct pyinterp *pi, uint64_t tstate, struct pystack *st)
{
	const struct py_layout *L = &pi->L;
	uint64_t f = 0, cframe;
	size_t cap = 0, steps = 0;

	if (L->tstate.current_frame >= 0) {
		if (py_read_ptr(pi, tstate + (uint64_t)L->tstate.current_frame, &f) < 0) {
			stack_fail(st, "cannot read the thread state at %#" PRIx64, tstate);
			return -1;
		}
	} else if (py_read_ptr(pi, tstate + (uint64_t)L->tstate.cframe, &cframe) < 0 ||
		   (cframe &&
		    py_read_ptr(pi, cframe + (uint64_t)L->cframe.current_frame, &f) < 0)) {
		stack_fail(st, "cannot read the thread state at %#" PRIx64, tstate);
		return -1;
	}
	while (f) {
		struct pyframe *pf;
		uint64_t code, instr;
		uint8_t owner = 0, is_entry = 0;

		/* shim frames count towards the bound too */
		if (st->n >= PY_FRAMES_MAX || ++steps > 2 * PY_FRAMES_MAX) {
			st->truncated = 1;
			break;
		}
		if ((L->iframe.owner >= 0 &&
		     mem_read_u8(pi->task, f + (uint64_t)L->iframe.owner, &owner) < 0) ||
		    py_read_ptr(pi, f + (uint64_t)L->iframe.code, &code) < 0 ||
		    py_read_ptr(pi, f + (uint64_t)L->iframe.instr, &instr) < 0) {
			stack_fail(st, "cannot read frame at %#" PRIx64, f);
			return -1;
		}
		if (L->frame_owned_by_cstack >= 0 && owner == L->frame_owned_by_cstack) {
			/* the entry shim of a native call: the frame before it ended that call */
			if (st->n)
				st->v[st->n - 1].ends_native_call = 1;
		} else {
			uint64_t start = code + (uint64_t)L->code.code_adaptive;
			int64_t offset = (int64_t)(instr - start);

			if (L->iframe.is_entry >= 0)
				mem_read_u8(pi->task, f + (uint64_t)L->iframe.is_entry, &is_entry);
			pf = push_frame(st, &cap);
			if (fill_frame(pi, pf, f, code, offset) < 0) {
				/* 3.13 frames may run something other than code (f_executable) */
				st->n--;
				if (!L->instr_ptr_is_current) {
					stack_fail(
					    st, "cannot read the code object of frame at %#" PRIx64,
					    f);
					return -1;
				}
			} else {
				pf->ends_native_call = is_entry;
			}
		}
		if (py_read_ptr(pi, f + (uint64_t)L->iframe.previous, &f) < 0) {
			stack_fail(st, "cannot read frame at %#" PRIx64, f);
			return -1;
		}
	}
	/* the outermost frame was run by the outermost native call */
	if (st->n)
		st->v[st->n - 1].ends_native_call = 1;
	return 0;
}

int py_stack(struct pyinterp *pi, uint64_t tstate, struct pystack *st)
{
	memset(st, 0, sizeof(*st));
	switch (pi->L.frames) {
	case PY_FRAMES_OBJECT:
		return walk_frame_objects(pi, tstate, st);
	case PY_FRAMES_INTERP:
		return walk_interp_frames(pi, tstate, st);
	default:
		stack_fail(st, "no frame layout for this version (%#" PRIx64 ")",
			   pi->L.version_hex);
		return -1;
	}
}

void pystack_release(struct pystack *st)
{
	for (size_t i = 0; i < st->n; i++) {
		free(st->v[i].func);
		free(st->v[i].file);
	}
	free(st->v);
	free(st->error);
	memset(st, 0, sizeof(*st));
}

const struct pyframe *pystack_innermost(const struct pystack *ps)
{
	for (size_t i = 0; i < ps->n; i++)
		if (!ps->v[i].file || strcmp(ps->v[i].file, AGENT_FILENAME))
			return &ps->v[i];
	return NULL;
}

/* The GIL's state: which thread state holds it, 0 when nobody does. */
static uint64_t gil_holder(struct pyinterp *pi, uint64_t interp)
{
	const struct py_layout *L = &pi->L;
	uint64_t locked_addr = 0, holder_addr = 0, gil, holder;
	int32_t locked;

	if (L->runtime.gil_locked >= 0 && L->runtime.gil_last_holder >= 0 && pi->runtime) {
		locked_addr = pi->runtime + (uint64_t)L->runtime.gil_locked;
		holder_addr = pi->runtime + (uint64_t)L->runtime.gil_last_holder;
	} else if (L->interp.ceval_gil >= 0 && L->gil.locked >= 0 && L->gil.last_holder >= 0) {
		if (py_read_ptr(pi, interp + (uint64_t)L->interp.ceval_gil, &gil) < 0 || !gil)
			return 0;
		locked_addr = gil + (uint64_t)L->gil.locked;
		holder_addr = gil + (uint64_t)L->gil.last_holder;
	} else if (pi->gil_locked_addr && pi->gil_holder_addr) {
		locked_addr = pi->gil_locked_addr;
		holder_addr = pi->gil_holder_addr;
	} else {
		return 0;
	}
	if (mem_read_i32(pi->task, locked_addr, &locked) < 0 || locked <= 0 ||
	    py_read_ptr(pi, holder_addr, &holder) < 0)
		return 0;
	return holder;
}

/* Name the threads v[0..n) of one interpreter after its threading module. */
static void name_threads(struct pyinterp *pi, uint64_t interp, struct pythread *v, size_t n)
{
	struct py_thread_name *names;
	size_t nnames;

	/* a failure only leaves threads unnamed: names are a nicety, never an error */
	py_thread_names(pi, interp, PY_THREAD_NAME_CHARS, &names, &nnames);
	for (size_t i = 0; i < n; i++) {
		for (size_t j = 0; j < nnames; j++) {
			if (names[j].ident != v[i].thread_id)
				continue;
			snprintf(v[i].name, sizeof(v[i].name), "%s", names[j].name);
			v[i].has_name = 1;
			break;
		}
	}
	py_thread_names_release(names, nnames);
}

int py_threads(struct pyinterp *pi, struct pythread **out, size_t *n)
{
	const struct py_layout *L = &pi->L;
	struct pythread *v = NULL;
	size_t cap = 0, count = 0;
	uint64_t interp, main_thread = 0;
	int interps = 0;

	*out = NULL;
	*n = 0;
	if (py_first_interp(pi, &interp) < 0)
		return -1;
	if (L->runtime.main_thread >= 0 && pi->runtime)
		py_read_ptr(pi, pi->runtime + (uint64_t)L->runtime.main_thread, &main_thread);
	while (interp && interps++ < INTERPS_MAX) {
		uint64_t ts, holder = gil_holder(pi, interp);
		int64_t id = 0;
		size_t first = count;

		if (L->interp.id >= 0)
			mem_read(pi->task, interp + (uint64_t)L->interp.id, &id, sizeof(id));
		if (py_read_ptr(pi, interp + (uint64_t)L->interp.tstate_head, &ts) < 0) {
			free(v);
			return error("cannot read the interpreter at %#" PRIx64, interp);
		}
		while (ts) {
			struct pythread *pt;
			uint64_t native = 0;

			if (count >= PY_THREADS_MAX) {
				warning("more than %d Python threads; showing the first %d",
					PY_THREADS_MAX, PY_THREADS_MAX);
				break;
			}
			if (count == cap) {
				cap = cap ? cap * 2 : 16;
				v = xrealloc(v, cap * sizeof(*v));
			}
			pt = &v[count];
			memset(pt, 0, sizeof(*pt));
			pt->tstate = ts;
			pt->interp = interp;
			pt->interp_id = (int)id;
			if (py_read_ptr(pi, ts + (uint64_t)L->tstate.thread_id, &pt->thread_id) <
			    0) {
				free(v);
				return error("cannot read the thread state at %#" PRIx64, ts);
			}
			if (L->tstate.native_thread_id >= 0 &&
			    py_read_ptr(pi, ts + (uint64_t)L->tstate.native_thread_id, &native) ==
				0 &&
			    native > 0 && native < (uint64_t)INT32_MAX)
				pt->tid = (pid_t)native;
			pt->holds_gil = holder == ts;
			pt->is_main = main_thread && pt->thread_id == main_thread;
			count++;
			if (py_read_ptr(pi, ts + (uint64_t)L->tstate.next, &ts) < 0) {
				free(v);
				return error("cannot read the thread state list");
			}
			/* a corrupt list may loop: a thread state seen twice ends it */
			for (size_t j = 0; ts && j < count; j++)
				if (v[j].tstate == ts)
					ts = 0;
		}
		if (count > first)
			name_threads(pi, interp, v + first, count - first);
		if (L->interp.next < 0 ||
		    py_read_ptr(pi, interp + (uint64_t)L->interp.next, &interp) < 0)
			break;
	}
	/* pthread_self() is the thread pointer on x86-64: match threads by fs_base */
	for (size_t i = 0; i < count; i++) {
		if (v[i].tid)
			continue;
		for (size_t j = 0; j < pi->task->nthr; j++) {
			struct task_thread *thr = pi->task->thr[j];
			arch_regs regs;

			if (thr->state != THR_STOPPED)
				continue;
			if (task_get_regs(pi->task, thr, &regs) == 0 &&
			    arch_thread_pointer(&regs) == v[i].thread_id) {
				v[i].tid = thr->tid;
				break;
			}
		}
	}
	/* before 3.7 the runtime does not record the main thread: it is the leader's */
	if (!main_thread)
		for (size_t i = 0; i < count; i++)
			v[i].is_main = v[i].tid == pi->task->pid;
	*out = v;
	*n = count;
	return 0;
}

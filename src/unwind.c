// SPDX-License-Identifier: GPL-3.0-or-later
/*
 * unwind: native backtraces.  The libunwind-ptrace backend reads memory
 * and registers through pyleakdb's caches; only finding the unwind tables
 * (which opens the ELF files) is left to libunwind's ptrace helpers.
 */
#include <libunwind-ptrace.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mem.h"
#include "unwind.h"
#include "util.h"

struct unwinder {
	const struct unwinder_ops *ops;
	struct task *task;
	struct modules *mods;
};

struct unwinder *unwinder_create(const struct unwinder_ops *ops, struct task *t,
				 struct modules *mods)
{
	return ops->create(t, mods);
}

int unwinder_backtrace(struct unwinder *u, struct task_thread *thr, struct native_stack *out)
{
	memset(out, 0, sizeof(*out));
	return u->ops->backtrace(u, thr, out);
}

void unwinder_destroy(struct unwinder *u)
{
	if (u)
		u->ops->destroy(u);
}

void unwinder_set_modules(struct unwinder *u, struct modules *mods)
{
	u->mods = mods;
}

void native_stack_release(struct native_stack *st)
{
	free(st->v);
	free(st->error);
	memset(st, 0, sizeof(*st));
}

/* ----- libunwind-ptrace ----- */

struct lu_unwinder {
	struct unwinder base;
	unw_addr_space_t as;
	unsigned long generation; /* libunwind's rule cache is valid while this holds */
	pid_t pid;
};

/* What the accessors need beside libunwind's own ptrace context. */
struct lu_ctx {
	struct lu_unwinder *u;
	struct task_thread *thr;
	arch_regs regs;
	void *upt;
};

/* libunwind hands every accessor the same arg; _UPT_find_proc_info needs it to be the
 * _UPT context, so ours is found through this pointer while a walk is under way */
static struct lu_ctx *cur;

static int lu_find_proc_info(unw_addr_space_t as, unw_word_t ip, unw_proc_info_t *pi,
			     int need_unwind_info, void *arg)
{
	return _UPT_find_proc_info(as, ip, pi, need_unwind_info, arg);
}

static void lu_put_unwind_info(unw_addr_space_t as, unw_proc_info_t *pi, void *arg)
{
	_UPT_put_unwind_info(as, pi, arg);
}

static int lu_get_dyn_info_list_addr(unw_addr_space_t as, unw_word_t *addr, void *arg)
{
	return _UPT_get_dyn_info_list_addr(as, addr, arg);
}

static int lu_access_mem(unw_addr_space_t as, unw_word_t addr, unw_word_t *val, int write,
			 void *arg)
{
	(void)as;
	(void)arg;
	if (write)
		return -UNW_EREADONLYREG; /* an unwinder never writes the target */
	if (mem_read(cur->u->base.task, addr, val, sizeof(*val)) < 0)
		return -UNW_EINVAL;
	return 0;
}

static int lu_access_reg(unw_addr_space_t as, unw_regnum_t reg, unw_word_t *val, int write,
			 void *arg)
{
	uint64_t v;

	(void)as;
	(void)arg;
	if (write)
		return -UNW_EREADONLYREG;
	/* libunwind's x86-64 register numbers are the DWARF ones */
	if (arch_dwarf_reg(&cur->regs, reg, &v) < 0)
		return -UNW_EBADREG;
	*val = v;
	return 0;
}

static int lu_access_fpreg(unw_addr_space_t as, unw_regnum_t reg, unw_fpreg_t *val, int write,
			   void *arg)
{
	(void)write;
	return _UPT_access_fpreg(as, reg, val, 0, arg);
}

static int lu_resume(unw_addr_space_t as, unw_cursor_t *c, void *arg)
{
	(void)as;
	(void)c;
	(void)arg;
	return -UNW_EINVAL; /* never: we only look */
}

static int lu_get_proc_name(unw_addr_space_t as, unw_word_t addr, char *buf, size_t len,
			    unw_word_t *off, void *arg)
{
	const struct symbol *sym;
	uint64_t o;

	(void)as;
	(void)arg;
	if (modules_symbolize(cur->u->base.mods, addr, &sym, &o, NULL) < 0)
		return -UNW_ENOINFO;
	snprintf(buf, len, "%s", sym->name);
	*off = o;
	return 0;
}

static unw_accessors_t lu_accessors = {
    .find_proc_info = lu_find_proc_info,
    .put_unwind_info = lu_put_unwind_info,
    .get_dyn_info_list_addr = lu_get_dyn_info_list_addr,
    .access_mem = lu_access_mem,
    .access_reg = lu_access_reg,
    .access_fpreg = lu_access_fpreg,
    .resume = lu_resume,
    .get_proc_name = lu_get_proc_name,
};

static struct unwinder *lu_create(struct task *t, struct modules *mods)
{
	struct lu_unwinder *u = xcalloc(1, sizeof(*u));

	u->base.ops = &unwinder_libunwind;
	u->base.task = t;
	u->base.mods = mods;
	u->as = unw_create_addr_space(&lu_accessors, 0);
	if (!u->as) {
		free(u);
		error("cannot create a libunwind address space");
		return NULL;
	}
	/* deep recursion returns to the same few addresses: remember their unwind rules (per
	 * thread: pyleakdb has one, and the global cache takes a lock and masks signals on
	 * every step) */
	unw_set_caching_policy(u->as, UNW_CACHE_GLOBAL);
	u->generation = t->generation;
	u->pid = t->pid;
	return &u->base;
}

static void add_frame(struct lu_unwinder *u, struct native_stack *out, size_t *cap, uint64_t pc,
		      uint64_t sp)
{
	struct native_frame *f;
	const struct symbol *sym;
	struct module *mod;
	uint64_t off;

	if (out->n == *cap) {
		*cap = *cap ? *cap * 2 : 64;
		out->v = xrealloc(out->v, *cap * sizeof(*out->v));
	}
	f = &out->v[out->n++];
	memset(f, 0, sizeof(*f));
	f->pc = pc;
	f->sp = sp;
	/* a return address points after the call: look up the call itself */
	modules_symbolize(u->base.mods, out->n > 1 && pc ? pc - 1 : pc, &sym, &off, &mod);
	if (sym) {
		f->symbol = sym->name;
		f->offset = out->n > 1 ? off + 1 : off;
	} else {
		f->offset = mod ? pc - mod->start : pc;
	}
	f->module = mod ? mod->path : NULL;
}

static int lu_backtrace(struct unwinder *base, struct task_thread *thr, struct native_stack *out)
{
	struct lu_unwinder *u = (struct lu_unwinder *)base;
	struct lu_ctx ctx = {.u = u, .thr = thr};
	unw_cursor_t cursor;
	size_t cap = 0;
	uint64_t last_sp = 0, last_pc = 0;
	int r;

	if (task_get_regs(base->task, thr, &ctx.regs) < 0)
		return -1;
	if (u->generation != base->task->generation || u->pid != base->task->pid) {
		/* the target ran: code may have been loaded or unloaded */
		unw_flush_cache(u->as, 0, 0);
		u->generation = base->task->generation;
		u->pid = base->task->pid;
	}
	ctx.upt = _UPT_create(thr->tid);
	if (!ctx.upt)
		return error("cannot create a libunwind context for thread %d", thr->tid);
	cur = &ctx;
	r = unw_init_remote(&cursor, u->as, ctx.upt);
	if (r < 0) {
		out->error = xstrdup("cannot start unwinding");
		add_frame(u, out, &cap, arch_pc(&ctx.regs), arch_sp(&ctx.regs));
		goto done;
	}
	for (;;) {
		unw_word_t pc = 0, sp = 0;

		if (unw_get_reg(&cursor, UNW_REG_IP, &pc) < 0 ||
		    unw_get_reg(&cursor, UNW_REG_SP, &sp) < 0)
			break;
		if (!pc)
			break;
		if (out->n && pc == last_pc && sp == last_sp) {
			out->error = xstrdup("the unwinder made no progress");
			break;
		}
		if (out->n >= NATIVE_FRAMES_MAX) {
			out->truncated = 1;
			break;
		}
		add_frame(u, out, &cap, pc, sp);
		last_pc = pc;
		last_sp = sp;
		r = unw_step(&cursor);
		if (r == 0)
			break;
		if (r < 0) {
			/* the outermost frames of a thread often have no unwind info: not an error
			 * worth a line, unless we got nowhere */
			if (out->n < 2) {
				char buf[96];

				snprintf(buf, sizeof(buf), "unwinding stopped: %s",
					 unw_strerror(r));
				out->error = xstrdup(buf);
			}
			break;
		}
	}
done:
	cur = NULL;
	_UPT_destroy(ctx.upt);
	return 0;
}

static void lu_destroy(struct unwinder *base)
{
	struct lu_unwinder *u = (struct lu_unwinder *)base;

	unw_destroy_addr_space(u->as);
	free(u);
}

const struct unwinder_ops unwinder_libunwind = {
    .name = "libunwind-ptrace",
    .create = lu_create,
    .backtrace = lu_backtrace,
    .destroy = lu_destroy,
};

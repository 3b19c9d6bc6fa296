/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * unwind: native backtraces of a stopped thread.
 *
 * A backend is a small table of functions, so that another unwinder (a core
 * file, frame pointers) is an addition, not an edit.  The one backend today
 * is libunwind-ptrace, fed through pyleakdb's page cache and register cache
 * so that a deep stack costs few system calls, with libunwind's own cache
 * of unwind rules kept for as long as the target stays stopped.
 */
#ifndef PYLEAKDB_UNWIND_H
#define PYLEAKDB_UNWIND_H

#include <stddef.h>
#include <stdint.h>

#include "maps.h"
#include "task.h"

#define NATIVE_FRAMES_MAX 1024

struct native_frame {
	uint64_t pc;
	uint64_t sp;
	const char *symbol; /* owned by the module's symtab; NULL when unknown */
	uint64_t offset;    /* from the symbol, or from the module when no symbol */
	const char *module; /* path, owned by the modules list; NULL when unmapped */
};

struct native_stack {
	struct native_frame *v; /* innermost first */
	size_t n;
	int truncated;
	char *error; /* why the walk ended early, or NULL */
};

struct unwinder;

struct unwinder_ops {
	const char *name;
	struct unwinder *(*create)(struct task *t, struct modules *mods);
	int (*backtrace)(struct unwinder *u, struct task_thread *thr, struct native_stack *out);
	void (*destroy)(struct unwinder *u);
};

extern const struct unwinder_ops unwinder_libunwind;

struct unwinder *unwinder_create(const struct unwinder_ops *ops, struct task *t,
				 struct modules *mods);
int unwinder_backtrace(struct unwinder *u, struct task_thread *thr, struct native_stack *out);
void unwinder_destroy(struct unwinder *u);
/* The modules list was rebuilt: use this one from now on. */
void unwinder_set_modules(struct unwinder *u, struct modules *mods);

void native_stack_release(struct native_stack *st);

#endif

/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * pyinterp: finding the CPython interpreter in a process, its version, its
 * layout and _PyRuntime, and reading Python objects out of its memory.
 *
 * Nothing here runs code in the target.  The version is read from the
 * running interpreter (Py_Version, _Py_DebugOffsets, the version string
 * Py_GetVersion() fills in); a file name is only a hint, accepted after the
 * structures it implies are found consistent in memory.
 *
 * Everything read from the target is untrusted: lengths are capped, types
 * are checked against the interpreter's own type objects, and a failed
 * check is an error ("cannot read ..."), never a crash.
 */
#ifndef PYLEAKDB_PYINTERP_H
#define PYLEAKDB_PYINTERP_H

#include <stdint.h>
#include <sys/types.h>

#include "maps.h"
#include "pyoffsets.h"
#include "task.h"
#include "util.h"

/* The oldest and newest versions pyleakdb knows; others are refused by name. */
#define PY_MIN_MAJOR 3
#define PY_MIN_MINOR 6
#define PY_MAX_MINOR 13

struct pyinterp {
	struct task *task;
	struct maps maps;
	struct modules mods;
	struct module *pymod; /* libpython, or the executable when linked statically */
	char exe[4096];
	int major, minor, micro;
	uint32_t hexversion; /* PY_VERSION_HEX when known, else major/minor only */
	char
	    version_str[128]; /* "3.11.2 (main, ...)" when the interpreter's own string was found */
	const char *version_how;
	uint64_t runtime; /* &_PyRuntime, 0 before 3.7 */
	const char *runtime_how;
	uint64_t interp_head_addr; /* where the pointer to the first interpreter lives */
	struct py_layout L;
	int layout_from_debug_offsets;
	/* the interpreter's own type objects, to check what we read */
	uint64_t type_code, type_str, type_bytes, type_tuple, type_dict, type_long, type_frame;
	uint64_t type_module;
	/* _PyEval_EvalFrameDefault (and its .cold part): native frames we replace */
	struct {
		uint64_t lo, hi;
	} eval[4];
	int neval;
	/* 3.6 keeps the GIL in file-local variables */
	uint64_t gil_locked_addr, gil_holder_addr;
};

/*
 * Before attaching: is pid a CPython process at all?  Reads /proc only.
 * Returns 0 when it looks like one (or when we cannot tell without
 * attaching), -1 with an error naming what it is otherwise.
 */
int pyinterp_precheck(pid_t pid);

/* After attaching (target stopped): find everything.  -1 with an error. */
int pyinterp_open(struct pyinterp *pi, struct task *t);
void pyinterp_release(struct pyinterp *pi);
/* Re-read the maps after the target ran (libraries loaded, for instance). */
int pyinterp_refresh_maps(struct pyinterp *pi);

/* The first interpreter (PyInterpreterState *), 0 when none (not initialised yet). */
int py_first_interp(struct pyinterp *pi, uint64_t *interp);
/*
 * Where the GIL's own state (its mutexes and condition variables) lives for
 * this interpreter: [*lo, *hi).  0, or -1 when it cannot be told.
 */
int py_gil_range(struct pyinterp *pi, uint64_t interp, uint64_t *lo, uint64_t *hi);
/* Is the address inside _PyEval_EvalFrameDefault? */
int py_is_eval_frame(const struct pyinterp *pi, uint64_t pc);

/* ----- objects ----- */

int py_read_ptr(struct pyinterp *pi, uint64_t addr, uint64_t *out);
int py_obj_type(struct pyinterp *pi, uint64_t obj, uint64_t *type);
/* tp_name of a type object, raw bytes (escape before printing). */
int py_type_name(struct pyinterp *pi, uint64_t type, struct strbuf *out);
/* A str object as UTF-8, at most max_chars characters (longer ones end in "..."). */
int py_str(struct pyinterp *pi, uint64_t obj, size_t max_chars, struct strbuf *out);
/* A bytes object's contents, at most max bytes; -1 when longer or not bytes. */
int py_bytes(struct pyinterp *pi, uint64_t obj, size_t max, struct strbuf *out);
/* A small int; -1 when not an int or it does not fit. */
int py_long(struct pyinterp *pi, uint64_t obj, int64_t *out);
/* dict[key] for an ASCII str key (combined or split table); 0 found, 1 absent, -1 error. */
int py_dict_get_str(struct pyinterp *pi, uint64_t dict, const char *key, uint64_t *value);

/*
 * Called by py_dict_each() for each key and value (both non-NULL) of a
 * dict; returns 0 to go on, or a positive number to stop the walk.
 */
typedef int (*py_dict_fn)(struct pyinterp *pi, uint64_t key, uint64_t value, void *arg);
/*
 * Every entry of a dict, in table order, at most a bounded number: -1 when
 * the dict cannot be read (possibly after some entries), 0 when all were
 * seen, or what fn returned to stop.
 */
int py_dict_each(struct pyinterp *pi, uint64_t dict, py_dict_fn fn, void *arg);

/*
 * obj.name, looked up in the instance's own attributes only (its __dict__,
 * wherever the version keeps it: no descriptors, no class attributes, no
 * code run): 0 found, 1 absent, -1 when the object cannot be read.
 */
int py_instance_attr(struct pyinterp *pi, uint64_t obj, const char *name, uint64_t *value);

/* ----- threading ----- */

/* At most this many names are read from threading._active. */
#define PY_THREAD_NAMES_MAX 4096

struct py_thread_name {
	uint64_t ident; /* threading.get_ident(): the thread's pthread_t */
	char *name;	/* Thread.name as UTF-8: raw bytes, escape before printing */
};

/*
 * The threading module's names of the threads of one interpreter: the
 * Thread objects of sys.modules['threading']._active (ident -> Thread) and
 * their _name, each cut to max_chars characters.  Threads that threading
 * does not know (no threading imported, threads started with _thread) are
 * simply absent.  Nothing is printed: the target is untrusted, and any
 * object that does not check out leaves its thread unnamed.  Returns 0
 * (even with no names), or -1 when the threading module could not be
 * read; *out is always to be freed with py_thread_names_release().
 */
int py_thread_names(struct pyinterp *pi, uint64_t interp, size_t max_chars,
		    struct py_thread_name **out, size_t *n);
void py_thread_names_release(struct py_thread_name *v, size_t n);

#endif

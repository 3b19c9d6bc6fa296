/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * pyframes: Python threads and their frames, read from the stopped target.
 *
 * Every walk is bounded (threads, frames, string lengths) and a frame that
 * does not check out (its code object is not a code object, a pointer leads
 * nowhere) ends the walk with a note, never a crash or a loop.
 */
#ifndef PYLEAKDB_PYFRAMES_H
#define PYLEAKDB_PYFRAMES_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "pyinterp.h"

#define PY_THREADS_MAX 4096
#define PY_FRAMES_MAX  10000

/* Thread names are cut to this many characters (then end in "...") */
#define PY_THREAD_NAME_CHARS 64
/* ... which take at most 4 bytes each in UTF-8, then "..." and the NUL */
#define PY_UTF8_CHAR_MAX    4
#define PY_THREAD_NAME_SIZE (PY_THREAD_NAME_CHARS * PY_UTF8_CHAR_MAX + sizeof("..."))

struct pythread {
	uint64_t tstate;
	uint64_t interp;
	uint64_t thread_id; /* pthread_t */
	pid_t tid;	    /* the OS thread, 0 when it cannot be matched */
	int holds_gil;
	int is_main;
	int interp_id;
	/*
	 * The threading module's name of the thread ("MainThread",
	 * "Thread-3 (worker)"), when has_name: UTF-8 from the target, raw
	 * bytes to escape before printing.  Kept in the struct, so that
	 * freeing the array frees it.  Unknown (has_name 0, name "") when
	 * threading is not imported, does not know the thread, or its
	 * objects do not check out.
	 */
	int has_name;
	char name[PY_THREAD_NAME_SIZE];
};

struct pyframe {
	char *func; /* qualified name where the version keeps one; raw bytes */
	char *file; /* raw bytes: escape before printing */
	int line;   /* -1 when unknown */
	int firstlineno;
	uint64_t frame; /* the frame's address */
	uint64_t code;	/* the code object's address */
	/* the last Python frame run by one native call of the evaluation loop */
	int ends_native_call;
};

/* The file name the agent's code compiles under: stacks and tracebacks tell it apart. */
#define AGENT_FILENAME "<pyleakdb-agent>"

struct pystack {
	struct pyframe *v; /* innermost first */
	size_t n;
	int truncated; /* the walk stopped at PY_FRAMES_MAX */
	char *error;   /* why the walk ended early, or NULL */
};

/* The innermost frame of the program's own code: agent frames (a trace function, a hit) skipped. */
const struct pyframe *pystack_innermost(const struct pystack *ps);

/*
 * The Python threads of every interpreter, matched to OS threads and
 * named after the threading module (read once per interpreter per call).
 * The target must be stopped.  The caller frees *out.
 */
int py_threads(struct pyinterp *pi, struct pythread **out, size_t *n);

/* The frames of one thread state. */
int py_stack(struct pyinterp *pi, uint64_t tstate, struct pystack *st);
void pystack_release(struct pystack *st);

/* Name and line of a code object at an instruction offset (for one-off use). */
int py_code_info(struct pyinterp *pi, uint64_t code, struct pyframe *f);

#endif

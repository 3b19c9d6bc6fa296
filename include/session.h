/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * session: one debugging session of one target: attaching (or starting
 * it), the interpreter found in it, the unwinder, running and stopping it,
 * and leaving it as it was.  It knows nothing of commands or the terminal.
 */
#ifndef PYLEAKDB_SESSION_H
#define PYLEAKDB_SESSION_H

#include <stdint.h>
#include <sys/types.h>

#include "agent.h"
#include "breakpoint.h"
#include "pyinterp.h"
#include "task.h"
#include "unwind.h"

struct session {
	struct task task;
	struct pyinterp pi;
	struct unwinder *unw;
	struct agent agent; /* valid while python_ok */
	struct bpset bps;
	uint64_t last_stop_rss; /* RSS at the previous stop, for "+10.2 MiB since" */
	int attached;
	int python_ok;
	unsigned long maps_generation; /* task generation the maps were read at */
};

void session_init(struct session *s);
/* Attach to a running Python process and find its interpreter. */
int session_attach(struct session *s, pid_t pid);
/* Start a program and stop it once the interpreter is ready, before the program's first line. */
int session_run(struct session *s, char *const argv[]);
/* Put the target back as it was and let it go. */
int session_detach(struct session *s);
/* End a program we started. */
int session_kill(struct session *s);
void session_release(struct session *s);

/* Is there a live, stopped target with a readable interpreter?  Errors say what to do. */
int session_require_target(struct session *s);
int session_require_python(struct session *s);
/*
 * Before showing native state (stacks, registers, memory at a PC): a thread
 * pyleakdb keeps in its own code between safe points goes back to where the
 * program had it.
 */
void session_settle(struct session *s);
/* The process ended under us: forget it, cleanly. */
void session_ended(struct session *s);

/* The agent, ready to be called (installed on first use). */
int session_agent(struct session *s, struct agent **out);

/* Make sure maps and symbols describe the target as it is now (after it ran). */
int session_sync(struct session *s);

/*
 * Let the target run until Ctrl-C, timeout_us (negative: none), or an event
 * in `catch`.  The whole process is stopped again when this returns, unless
 * it is gone (ev->kind == TEV_EXITED).
 */
int session_continue(struct session *s, const sigset_t *catch, int64_t timeout_us,
		     struct task_event *ev);

#endif

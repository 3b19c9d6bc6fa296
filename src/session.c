// SPDX-License-Identifier: GPL-3.0-or-later
/*
 * session: attach or start, run and stop, detach.  See include/session.h.
 */
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "arch.h"
#include "mem.h"
#include "session.h"
#include "util.h"

/* How long `run` lets a program take to reach its interpreter's main. */
#define RUN_TO_MAIN_TIMEOUT_US (60ll * 1000 * 1000)
/* Programs may exec a few times (env, wrappers) before they are Python. */
#define RUN_EXEC_MAX 8

void session_init(struct session *s)
{
	memset(s, 0, sizeof(*s));
	task_init(&s->task);
	bpset_init(&s->bps);
}

static int open_python(struct session *s)
{
	if (pyinterp_open(&s->pi, &s->task) < 0)
		return -1;
	s->unw = unwinder_create(&unwinder_libunwind, &s->task, &s->pi.mods);
	if (!s->unw)
		return -1;
	agent_init(&s->agent, &s->task, &s->pi, s->unw);
	s->python_ok = 1;
	s->maps_generation = s->task.generation;
	return 0;
}

void session_settle(struct session *s)
{
	if (s->python_ok && !s->task.gone)
		safepoint_unpark(&s->agent.ij);
}

int session_agent(struct session *s, struct agent **out)
{
	if (session_require_python(s) < 0)
		return -1;
	*out = &s->agent;
	return 0;
}

int session_attach(struct session *s, pid_t pid)
{
	if (s->attached)
		return error("already attached to process %d; detach first", s->task.pid);
	if (pyinterp_precheck(pid) < 0)
		return -1;
	task_init(&s->task);
	if (task_attach(&s->task, pid) < 0)
		return -1;
	s->attached = 1;
	if (open_python(s) < 0) {
		/* nothing was changed in the target: leave it as it was, and say only why */
		error_quiet(1);
		session_detach(s);
		error_quiet(0);
		return -1;
	}
	return 0;
}

/* The program's entry point, from the auxiliary vector the kernel gave it. */
static int read_entry(pid_t pid, uint64_t *entry)
{
	char path[64];
	uint64_t av[2];
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/auxv", pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return error("cannot read '%s': %s", path, strerror(errno));
	while (read(fd, av, sizeof(av)) == sizeof(av) && av[0] != AT_NULL) {
		if (av[0] == AT_ENTRY) {
			*entry = av[1];
			close(fd);
			return 0;
		}
	}
	close(fd);
	return error("no entry point in '%s'", path);
}

/* Run until one of the breakpoints at addrs[] is hit; they are all removed after. */
static int run_to(struct session *s, const uint64_t *addrs, size_t n, uint64_t *hit, int *exec_seen)
{
	struct task *t = &s->task;
	struct task_event ev;
	size_t armed = 0;
	int ret = -1;

	*hit = 0;
	*exec_seen = 0;
	for (size_t i = 0; i < n; i++)
		if (task_patch(t, addrs[i], ARCH_BREAKPOINT_INSN, ARCH_BREAKPOINT_LEN) == 0)
			armed++;
	if (!armed)
		return error("cannot set a breakpoint to stop the program at its start");
	if (task_resume_all(t) < 0)
		goto out;
	for (;;) {
		arch_regs regs;

		if (task_wait(t, NULL, RUN_TO_MAIN_TIMEOUT_US, &ev) < 0)
			goto out;
		if (ev.kind == TEV_EXITED) {
			char why[64];

			error("the program %s before Python started",
			      task_end_reason(t, why, sizeof(why)));
			goto out;
		}
		if (ev.kind == TEV_INTERRUPTED || ev.kind == TEV_TIMEOUT) {
			task_stop_all(t);
			error(ev.kind == TEV_TIMEOUT
				  ? "the program did not reach Python's main within "
				    "60 s; it is stopped where it was"
				  : "interrupted; the program is stopped where it was");
			goto out;
		}
		if (ev.kind == TEV_EXEC) {
			/* a wrapper (env, a shell) started the real program: start over there */
			t->exec_seen = 0;
			*exec_seen = 1;
			for (size_t i = 0; i < t->npatches; i++)
				t->patches[i].active =
				    0; /* the old image is gone, and its patches */
			t->npatches = 0;
			task_stop_all(t);
			ret = 0;
			goto out;
		}
		if (ev.kind != TEV_TRAP)
			continue;
		if (task_get_regs(t, ev.thr, &regs) < 0)
			goto out;
		for (size_t i = 0; i < n; i++) {
			if (arch_pc(&regs) - ARCH_PC_AFTER_BREAKPOINT != addrs[i])
				continue;
			/* back onto the instruction we replaced: it runs as if nothing happened */
			arch_set_pc(&regs, addrs[i]);
			if (task_set_regs(t, ev.thr, &regs) < 0)
				goto out;
			*hit = addrs[i];
		}
		if (!*hit) {
			/* a SIGTRAP of the program's own: give it back */
			ev.thr->stop = STOP_SIGNAL;
			ev.thr->sig = SIGTRAP;
			task_resume_thread(t, ev.thr, SIGTRAP);
			continue;
		}
		ret = task_stop_all(t);
		goto out;
	}
out:
	for (size_t i = 0; i < n; i++)
		for (size_t j = 0; j < t->npatches; j++)
			if (t->patches[j].active && t->patches[j].addr == addrs[i])
				task_unpatch(t, addrs[i]);
	return ret;
}

/* A program that is not Python may be a wrapper (env, a shell): wait for its exec. */
static int wait_for_exec(struct session *s, const char *name)
{
	struct task *t = &s->task;
	struct task_event ev;

	if (task_resume_all(t) < 0 || task_wait(t, NULL, RUN_TO_MAIN_TIMEOUT_US, &ev) < 0)
		return -1;
	if (ev.kind == TEV_EXEC) {
		t->exec_seen = 0;
		return task_stop_all(t);
	}
	if (ev.kind != TEV_EXITED)
		task_stop_all(t);
	return error("'%s' is not a Python program (no CPython interpreter in it)", name);
}

/* Where the interpreter is ready and the program's own code has not run. */
static size_t main_breakpoints(struct modules *mods, struct module *pymod, uint64_t *out,
			       size_t max)
{
	/* Py_RunMain (3.8+) runs after initialisation (site included); older versions go
	 * straight to one of the PyRun entry points */
	static const char *const names[] = {"Py_RunMain", "PyRun_AnyFileExFlags",
					    "PyRun_SimpleStringFlags",
					    "PyRun_InteractiveLoopFlags"};
	struct symtab *st = module_symtab(mods, pymod);
	size_t n = 0;

	for (size_t i = 0; st && i < ARRAY_SIZE(names) && n < max; i++) {
		const struct symbol *sym = symtab_find(st, names[i]);

		if (sym)
			out[n++] = sym->value + pymod->bias;
		if (n && i == 0)
			break; /* Py_RunMain comes before all the others */
	}
	return n;
}

int session_run(struct session *s, char *const argv[])
{
	struct task *t = &s->task;
	int execs;

	if (s->attached)
		return error("already attached to process %d; detach first", t->pid);
	task_init(t);
	if (task_spawn(t, argv) < 0)
		return -1;
	s->attached = 1;
	for (execs = 0; execs < RUN_EXEC_MAX; execs++) {
		uint64_t entry, hit, bps[8];
		struct maps maps;
		struct modules mods;
		struct module *pymod = NULL;
		size_t nbp;
		int exec_seen;

		/* 1. to the entry point: the dynamic linker has loaded libpython by then */
		if (read_entry(t->pid, &entry) < 0 || run_to(s, &entry, 1, &hit, &exec_seen) < 0)
			goto fail;
		if (exec_seen)
			continue;
		/* 2. is it Python?  Then to its main */
		if (maps_read(t->pid, &maps) < 0)
			goto fail;
		modules_build(t->pid, &maps, &mods);
		pymod = modules_find_name(&mods, "libpython3");
		if (!pymod) {
			char exe[64];

			snprintf(exe, sizeof(exe), "/proc/%d/exe", t->pid);
			for (size_t i = 0; i < mods.n && !pymod; i++) {
				struct symtab *st = module_symtab(&mods, &mods.v[i]);

				if (st && symtab_find(st, "Py_Initialize"))
					pymod = &mods.v[i];
			}
		}
		nbp = pymod ? main_breakpoints(&mods, pymod, bps, ARRAY_SIZE(bps)) : 0;
		if (!nbp) {
			modules_release(&mods);
			maps_release(&maps);
			/* not Python (yet): a wrapper may still exec it */
			if (wait_for_exec(s, argv[0]) < 0)
				goto fail;
			continue;
		}
		if (run_to(s, bps, nbp, &hit, &exec_seen) < 0) {
			modules_release(&mods);
			maps_release(&maps);
			goto fail;
		}
		modules_release(&mods);
		maps_release(&maps);
		if (exec_seen)
			continue;
		if (open_python(s) < 0)
			goto fail;
		return 0;
	}
	error("the program kept replacing itself (exec) and never started Python");
fail:
	if (!t->gone) {
		error_quiet(1);
		task_kill(t);
		error_quiet(0);
	}
	s->attached = 0;
	task_release(t);
	return -1;
}

int session_detach(struct session *s)
{
	int ret, left = 0;

	if (!s->attached)
		return error("not attached to any process");
	/* hooks out first, then the agent they belong to */
	if (s->python_ok && !s->task.gone && task_stop_all(&s->task) == 0 && bp_remove_all(s) < 0)
		left = 1;
	bpset_release(&s->bps);
	if (s->python_ok && !s->task.gone && task_stop_all(&s->task) == 0 &&
	    agent_release(&s->agent) < 0)
		left = 1;
	if (left)
		error("pyleakdb could not remove everything it put in process %d (see above); it "
		      "detached anyway and the process runs on",
		      s->task.pid);
	ret = task_detach(&s->task);
	if (left)
		ret = -1;
	unwinder_destroy(s->unw);
	s->unw = NULL;
	if (s->python_ok)
		pyinterp_release(&s->pi);
	s->python_ok = 0;
	s->attached = 0;
	task_release(&s->task);
	mem_invalidate();
	return ret;
}

int session_kill(struct session *s)
{
	if (!s->attached)
		return error("not attached to any process");
	bpset_release(&s->bps);
	task_kill(&s->task);
	unwinder_destroy(s->unw);
	s->unw = NULL;
	if (s->python_ok)
		pyinterp_release(&s->pi);
	s->python_ok = 0;
	s->attached = 0;
	task_release(&s->task);
	return 0;
}

void session_release(struct session *s)
{
	if (s->attached) {
		if (s->task.is_child)
			session_kill(s);
		else
			session_detach(s);
	}
}

int session_require_target(struct session *s)
{
	if (!s->attached)
		return error("no process; use 'attach PID' or 'run PROGRAM' first");
	if (s->task.gone) {
		char why[64];

		return error("the process %s; use 'attach PID' or 'run PROGRAM'",
			     task_end_reason(&s->task, why, sizeof(why)));
	}
	return 0;
}

int session_require_python(struct session *s)
{
	if (session_require_target(s) < 0)
		return -1;
	if (!s->python_ok)
		return error("no Python interpreter found in process %d", s->task.pid);
	return session_sync(s);
}

int session_sync(struct session *s)
{
	if (!s->python_ok || s->maps_generation == s->task.generation)
		return 0;
	/* the target ran: libraries may have come and gone */
	if (pyinterp_refresh_maps(&s->pi) < 0)
		return -1;
	s->maps_generation = s->task.generation;
	return 0;
}

void session_ended(struct session *s)
{
	unwinder_destroy(s->unw);
	s->unw = NULL;
	if (s->python_ok)
		pyinterp_release(&s->pi);
	s->python_ok = 0;
	if (s->task.is_child) {
		int status;

		waitpid(s->task.pid, &status, WNOHANG);
	}
}

int session_continue(struct session *s, const sigset_t *catch, int64_t timeout_us,
		     struct task_event *ev)
{
	struct task *t = &s->task;

	if (session_require_target(s) < 0)
		return -1;
	if (task_resume_all(t) < 0)
		return -1;
	if (task_wait(t, catch, timeout_us, ev) < 0)
		return -1;
	if (ev->kind == TEV_EXITED) {
		session_ended(s);
		return 0;
	}
	if (ev->kind == TEV_EXEC) {
		/* a new program: nothing we knew holds; let it go */
		t->exec_seen = 0;
		task_stop_all(t);
		session_detach(s);
		return error("the process replaced its program (exec); detached");
	}
	if (task_stop_all(t) < 0)
		return -1;
	return session_sync(s);
}

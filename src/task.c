// SPDX-License-Identifier: GPL-3.0-or-later
/*
 * task: every ptrace(2) and every waitpid() on a traced thread is here.
 * See include/task.h for what it promises.
 */
#include <dirent.h>
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "procfs.h"
#include "task.h"
#include "util.h"

/* How long one thread may take to reach a stop before we say so. */
#define STOP_TIMEOUT_US (3 * 1000 * 1000)
/* The longest ppoll() sleep: Ctrl-C and exits are noticed at least this often. */
#define WAIT_SLICE_US (50 * 1000)
/* Re-scans of /proc/PID/task before we accept the thread list as stable. */
#define ATTACH_SCAN_MAX 100

#define SEIZE_OPTIONS (PTRACE_O_TRACECLONE | PTRACE_O_TRACEEXEC | PTRACE_O_TRACEEXIT)

volatile sig_atomic_t task_sigint;
static volatile sig_atomic_t sigint_count;
static volatile sig_atomic_t in_emergency;
/* The task the emergency path restores: there is only ever one. */
static struct task *current_task;
static sigset_t wait_blocked; /* signals held while we are between ppoll()s */

int task_sigint_count(void)
{
	return sigint_count;
}

int task_take_sigint(void)
{
	int was = task_sigint;

	task_sigint = 0;
	return was;
}

static long pt(enum __ptrace_request req, pid_t tid, void *addr, void *data)
{
	return ptrace(req, tid, addr, data);
}

/* ----- the emergency path: async-signal-safe, no malloc, no stdio ----- */

static void emergency_write(const char *s)
{
	ssize_t unused = write(STDERR_FILENO, s, strlen(s));
	(void)unused;
}

static void emergency_restore(struct task *t)
{
	size_t i;

	if (!t || t->gone || !t->pid)
		return;
	/* every thread must be in a ptrace-stop before registers or detach */
	for (i = 0; i < t->nthr; i++) {
		struct task_thread *thr = t->thr[i];
		int status;

		if (thr->state != THR_RUNNING && !thr->listening)
			continue;
		if (pt(PTRACE_INTERRUPT, thr->tid, 0, 0) < 0)
			continue;
		for (int tries = 0; tries < 2000; tries++) {
			pid_t r = waitpid(thr->tid, &status, __WALL | WNOHANG);

			if (r == thr->tid) {
				if (WIFSTOPPED(status)) {
					thr->state = THR_STOPPED;
					if ((status >> 16) == 0 && WSTOPSIG(status) != SIGTRAP) {
						thr->stop = STOP_SIGNAL;
						thr->sig = WSTOPSIG(status);
					}
				} else {
					thr->state = THR_GONE;
				}
				break;
			}
			if (r < 0)
				break;
			usleep(1000);
		}
	}
	for (i = t->npatches; i-- > 0;) {
		struct task_patch *p = &t->patches[i];

		if (p->active && t->memfd >= 0 &&
		    pwrite(t->memfd, p->orig, p->len, (off_t)p->addr) == (ssize_t)p->len)
			p->active = 0;
	}
	for (i = 0; i < t->nthr; i++) {
		struct task_thread *thr = t->thr[i];

		if (thr->state != THR_STOPPED)
			continue;
		if (thr->guarded) {
			struct iovec iov = {thr->guard_xstate, thr->guard_xstate_len};

			pt(PTRACE_SETREGS, thr->tid, 0, &thr->guard_regs);
			if (thr->guard_xstate)
				pt(PTRACE_SETREGSET, thr->tid, (void *)NT_X86_XSTATE, &iov);
			pt(PTRACE_SETSIGMASK, thr->tid, (void *)sizeof(uint64_t),
			   &thr->guard_sigmask);
			thr->guarded = 0;
		}
		pt(PTRACE_DETACH, thr->tid, 0,
		   (void *)(long)(thr->stop == STOP_SIGNAL && thr->sig ? thr->sig
								       : thr->deferred_sig));
		thr->state = THR_GONE;
	}
	t->gone = 1;
}

static void task_emergency(void)
{
	if (in_emergency)
		return;
	in_emergency = 1;
	emergency_restore(current_task);
}

static void on_sigint(int sig)
{
	(void)sig;
	task_sigint = 1;
	sigint_count++;
}

static void on_wake(int sig)
{
	(void)sig;
}

static void on_terminate(int sig)
{
	if (current_task && !current_task->gone) {
		emergency_write("\npyleakdb: terminated; target restored and detached\n");
		task_emergency();
	}
	_exit(128 + sig);
}

static void on_fatal(int sig)
{
	if (current_task && !current_task->gone) {
		emergency_write("\npyleakdb: fatal signal; restoring and detaching the target\n");
		task_emergency();
	}
	signal(sig, SIG_DFL);
	raise(sig);
}

void task_signals_init(void)
{
	static const int fatal[] = {SIGSEGV, SIGBUS, SIGABRT, SIGFPE, SIGILL, SIGTRAP, SIGSYS};
	static const int term[] = {SIGTERM, SIGHUP, SIGQUIT};
	struct sigaction sa;
	size_t i;

	memset(&sa, 0, sizeof(sa));
	sigemptyset(&sa.sa_mask);
	sa.sa_handler = on_sigint;
	sigaction(SIGINT, &sa, NULL);
	sa.sa_handler = on_wake;
	sa.sa_flags = SA_RESTART;
	sigaction(SIGCHLD, &sa, NULL);
	sa.sa_flags = 0;
	sa.sa_handler = on_terminate;
	for (i = 0; i < ARRAY_SIZE(term); i++)
		sigaction(term[i], &sa, NULL);
	sa.sa_handler = on_fatal;
	sa.sa_flags = SA_RESETHAND;
	for (i = 0; i < ARRAY_SIZE(fatal); i++)
		sigaction(fatal[i], &sa, NULL);
	/* a reader that went away (a pipe to `head`) is not a reason to leave the target stopped */
	signal(SIGPIPE, SIG_IGN);

	sigemptyset(&wait_blocked);
	sigaddset(&wait_blocked, SIGCHLD);
	sigaddset(&wait_blocked, SIGINT);
	util_set_emergency_hook(task_emergency);
}

/* ----- thread bookkeeping ----- */

void task_init(struct task *t)
{
	memset(t, 0, sizeof(*t));
	t->memfd = -1;
}

static struct task_thread *add_thread(struct task *t, pid_t tid)
{
	struct task_thread *thr;

	if (t->nthr == t->cap) {
		t->cap = t->cap ? t->cap * 2 : 16;
		t->thr = xrealloc(t->thr, t->cap * sizeof(*t->thr));
	}
	thr = xcalloc(1, sizeof(*thr));
	t->thr[t->nthr++] = thr;
	thr->tid = tid;
	thr->state = THR_RUNNING;
	return thr;
}

struct task_thread *task_thread_by_tid(struct task *t, pid_t tid)
{
	for (size_t i = 0; i < t->nthr; i++)
		if (t->thr[i]->tid == tid && t->thr[i]->state != THR_GONE)
			return t->thr[i];
	return NULL;
}

struct task_thread *task_main_thread(struct task *t)
{
	return task_thread_by_tid(t, t->pid);
}

size_t task_live_threads(const struct task *t)
{
	size_t n = 0;

	for (size_t i = 0; i < t->nthr; i++)
		n += t->thr[i]->state != THR_GONE;
	return n;
}

int task_all_stopped(const struct task *t)
{
	for (size_t i = 0; i < t->nthr; i++)
		if (t->thr[i]->state == THR_RUNNING || t->thr[i]->listening)
			return 0;
	return 1;
}

static void free_thread(struct task_thread *thr)
{
	free(thr->guard_xstate);
	free(thr);
}

/* Move threads that are gone to the graveyard, so the list stays short on thread-heavy
 * targets while pointers callers hold stay valid until the next resume_all. */
static void compact_threads(struct task *t)
{
	size_t j = 0;

	for (size_t i = 0; i < t->nthr; i++) {
		if (t->thr[i]->state == THR_GONE) {
			if (t->ngrave == t->cap_grave) {
				t->cap_grave = t->cap_grave ? t->cap_grave * 2 : 16;
				t->graveyard =
				    xrealloc(t->graveyard, t->cap_grave * sizeof(*t->graveyard));
			}
			t->graveyard[t->ngrave++] = t->thr[i];
			continue;
		}
		t->thr[j++] = t->thr[i];
	}
	t->nthr = j;
}

static void empty_graveyard(struct task *t)
{
	for (size_t i = 0; i < t->ngrave; i++)
		free_thread(t->graveyard[i]);
	t->ngrave = 0;
}

/* The kernel's one-letter scheduler state of a thread, '?' when it is gone. */
static char read_sched_state(pid_t pid, pid_t tid)
{
	char c = proc_thread_state(pid, tid);

	return c ? c : '?';
}

static void mark_process_gone(struct task *t, int status)
{
	if (WIFEXITED(status)) {
		t->exit_code = WEXITSTATUS(status);
		t->term_sig = 0;
	} else if (WIFSIGNALED(status)) {
		t->term_sig = WTERMSIG(status);
	}
}

static void check_all_gone(struct task *t)
{
	if (!task_live_threads(t))
		t->gone = 1;
}

/* Apply one waitpid() status to a thread. */
static void handle_status(struct task *t, struct task_thread *thr, int status)
{
	int sig, event;
	unsigned long msg = 0;

	thr->regs_valid = 0;
	if (WIFEXITED(status) || WIFSIGNALED(status)) {
		thr->state = THR_GONE;
		if (thr->tid == t->pid)
			mark_process_gone(t, status);
		check_all_gone(t);
		return;
	}
	if (!WIFSTOPPED(status))
		return;
	sig = WSTOPSIG(status);
	event = status >> 16;
	/* a thread that stops by itself (trap, signal, event) was running to get there */
	if (thr->state == THR_RUNNING && !thr->listening && !thr->interrupted)
		thr->sched_state = 'R';
	thr->interrupted = 0;
	thr->state = THR_STOPPED;
	thr->listening = 0;
	thr->sig = 0;
	switch (event) {
	case PTRACE_EVENT_STOP:
		if (sig == SIGTRAP) {
			thr->stop = STOP_INTERRUPT;
		} else {
			thr->stop = STOP_GROUP;
			t->job_stopped = 1;
		}
		thr->is_new = 0;
		break;
	case PTRACE_EVENT_CLONE:
		thr->stop = STOP_EVENT;
		if (pt(PTRACE_GETEVENTMSG, thr->tid, 0, &msg) == 0 && msg &&
		    !task_thread_by_tid(t, (pid_t)msg))
			add_thread(t, (pid_t)msg)->is_new = 1;
		break;
	case PTRACE_EVENT_EXEC:
		thr->stop = STOP_EVENT;
		t->exec_seen = 1;
		/* the exec'ing thread now has the leader's TID; the others are gone */
		for (size_t i = 0; i < t->nthr; i++)
			if (t->thr[i] != thr && t->thr[i]->tid != t->pid)
				t->thr[i]->state = THR_GONE;
		thr->tid = t->pid;
		break;
	case PTRACE_EVENT_EXIT:
		thr->stop = STOP_EVENT;
		thr->exiting = 1;
		if (thr->tid == t->pid && pt(PTRACE_GETEVENTMSG, thr->tid, 0, &msg) == 0)
			mark_process_gone(t, (int)msg);
		break;
	default:
		if (sig == SIGTRAP && pt(PTRACE_GETSIGINFO, thr->tid, 0, &thr->siginfo) == 0 &&
		    thr->siginfo.si_code > 0) {
			/* the kernel's own trap (int3, single step), not a kill() */
			thr->stop = STOP_TRAP;
			break;
		}
		pt(PTRACE_GETSIGINFO, thr->tid, 0, &thr->siginfo);
		thr->stop = STOP_SIGNAL;
		thr->sig = sig;
		break;
	}
}

/* Collect every status waiting for our threads.  Returns how many were handled. */
static int reap(struct task *t)
{
	int handled = 0;

	/* index loop: handle_status() may append threads */
	for (size_t i = 0; i < t->nthr; i++) {
		int status;
		pid_t r;

		if (t->thr[i]->state == THR_GONE)
			continue;
		if (t->thr[i]->state == THR_STOPPED && !t->thr[i]->listening)
			continue;
		r = waitpid(t->thr[i]->tid, &status, __WALL | WNOHANG);
		if (r == 0)
			continue;
		if (r < 0) {
			if (errno == ECHILD) {
				/* not ours any more: the thread is gone */
				t->thr[i]->state = THR_GONE;
				check_all_gone(t);
			}
			continue;
		}
		handle_status(t, t->thr[i], status);
		handled++;
	}
	return handled;
}

/* Sleep until a child changes state, a signal arrives, or timeout_us passes. */
static void wait_slice(int64_t timeout_us)
{
	struct timespec ts;
	sigset_t old, unblocked;

	if (timeout_us < 0 || timeout_us > WAIT_SLICE_US)
		timeout_us = WAIT_SLICE_US;
	ts.tv_sec = timeout_us / 1000000;
	ts.tv_nsec = (timeout_us % 1000000) * 1000;
	sigprocmask(SIG_BLOCK, &wait_blocked, &old);
	unblocked = old;
	sigdelset(&unblocked, SIGCHLD);
	sigdelset(&unblocked, SIGINT);
	ppoll(NULL, 0, &ts, &unblocked);
	sigprocmask(SIG_SETMASK, &old, NULL);
}

/* ----- attach, spawn, detach ----- */

static int read_status_field(pid_t pid, const char *field, char *out, size_t len)
{
	char path[64], line[512];
	size_t flen = strlen(field);
	FILE *f;
	int found = -1;

	snprintf(path, sizeof(path), "/proc/%d/status", pid);
	f = fopen(path, "re");
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f)) {
		if (!strncmp(line, field, flen) && line[flen] == ':') {
			char *v = line + flen + 1;

			v += strspn(v, " \t");
			v[strcspn(v, "\n")] = '\0';
			snprintf(out, len, "%s", v);
			found = 0;
			break;
		}
	}
	fclose(f);
	return found;
}

static int have_cap_sys_ptrace(void)
{
	char caps[64];
	unsigned long long v;

	if (read_status_field(getpid(), "CapEff", caps, sizeof(caps)) < 0)
		return 0;
	v = strtoull(caps, NULL, 16);
	return (v >> 19) & 1; /* CAP_SYS_PTRACE */
}

/* Explain why PTRACE_SEIZE said EPERM, with what the user can do about it. */
static int explain_eperm(pid_t pid)
{
	char buf[256], comm[64];
	unsigned uid_target = 0;
	long tracer;
	FILE *f;
	int scope = -1;

	if (read_status_field(pid, "TracerPid", buf, sizeof(buf)) == 0 && (tracer = atol(buf))) {
		proc_thread_comm((pid_t)tracer, (pid_t)tracer, comm, sizeof(comm));
		return error("process %d is already traced by '%s' (PID %ld); detach that debugger "
			     "first",
			     pid, comm, tracer);
	}
	if (read_status_field(pid, "Uid", buf, sizeof(buf)) == 0)
		sscanf(buf, "%*u %u", &uid_target);
	if (uid_target != geteuid() && !have_cap_sys_ptrace())
		return error("permission denied: process %d runs as uid %u and pyleakdb as uid %u; "
			     "run pyleakdb as that user or as root (CAP_SYS_PTRACE)",
			     pid, uid_target, geteuid());
	f = fopen("/proc/sys/kernel/yama/ptrace_scope", "re");
	if (f) {
		if (fscanf(f, "%d", &scope) != 1)
			scope = -1;
		fclose(f);
	}
	if (scope == 1 && !have_cap_sys_ptrace())
		return error("permission denied: kernel.yama.ptrace_scope is 1 (only a parent may "
			     "trace); run pyleakdb as root or set it to 0 with 'sysctl "
			     "kernel.yama.ptrace_scope=0'");
	if (scope == 2 && !have_cap_sys_ptrace())
		return error("permission denied: kernel.yama.ptrace_scope is 2 (admin only); run "
			     "pyleakdb as root (CAP_SYS_PTRACE)");
	if (scope == 3)
		return error(
		    "permission denied: kernel.yama.ptrace_scope is 3 (no attaching at all "
		    "until reboot); start the program under 'pyleakdb run' instead");
	return error("permission denied attaching to process %d (it may be setuid or not "
		     "dumpable, or a security module refused); run pyleakdb as root",
		     pid);
}

static int seize(struct task *t, pid_t tid)
{
	if (pt(PTRACE_SEIZE, tid, 0, (void *)(long)SEIZE_OPTIONS) == 0) {
		add_thread(t, tid);
		return 1;
	}
	if (errno == ESRCH)
		return 0; /* the thread exited between the scan and the seize */
	if (errno == EPERM) {
		char buf[32], state;

		/* created by a thread we had seized already: it is ours from birth, and its
		 * clone event is still on its way */
		if (read_status_field(tid, "TracerPid", buf, sizeof(buf)) == 0 &&
		    atol(buf) == (long)getpid()) {
			if (!task_thread_by_tid(t, tid))
				add_thread(t, tid)->is_new = 1;
			return 1;
		}
		/* the kernel refuses a thread that is exiting: it is as good as gone */
		state = proc_thread_state(t->pid, tid);
		if (tid != t->pid && (!state || state == 'Z' || state == 'X'))
			return 0;
		return explain_eperm(t->pid);
	}
	return error("cannot attach to thread %d of process %d: %s", tid, t->pid, strerror(errno));
}

/* Seize every thread listed in /proc/PID/task not seized yet; how many were new. */
static int seize_new_threads(struct task *t)
{
	char path[64];
	struct dirent *de;
	DIR *d;
	int added = 0;

	snprintf(path, sizeof(path), "/proc/%d/task", t->pid);
	d = opendir(path);
	if (!d)
		return error("process %d is gone", t->pid);
	while ((de = readdir(d))) {
		char *end;
		long tid = strtol(de->d_name, &end, 10);
		int r;

		if (*end || tid <= 0 || task_thread_by_tid(t, (pid_t)tid))
			continue;
		r = seize(t, (pid_t)tid);
		if (r < 0) {
			closedir(d);
			return -1;
		}
		added += r;
	}
	closedir(d);
	return added;
}

static int open_memfd(struct task *t)
{
	char path[64];

	snprintf(path, sizeof(path), "/proc/%d/mem", t->pid);
	t->memfd = open(path, O_RDWR | O_CLOEXEC);
	if (t->memfd < 0)
		return error("cannot open '%s': %s", path, strerror(errno));
	return 0;
}

/* An attach that failed half-way: let the threads we seized go, and seize no more. */
static void release_seized(struct task *t)
{
	for (size_t i = 0; i < t->nthr; i++) {
		struct task_thread *thr = t->thr[i];
		int status;

		if (thr->state == THR_RUNNING && pt(PTRACE_INTERRUPT, thr->tid, 0, 0) == 0 &&
		    waitpid(thr->tid, &status, __WALL) == thr->tid && WIFSTOPPED(status)) {
			thr->state = THR_STOPPED;
			thr->stop = STOP_NONE;
			if ((status >> 16) == 0 && WSTOPSIG(status) != SIGTRAP) {
				thr->stop = STOP_SIGNAL;
				thr->sig = WSTOPSIG(status);
			}
		}
		if (thr->state == THR_STOPPED)
			pt(PTRACE_DETACH, thr->tid, 0,
			   (void *)(long)(thr->stop == STOP_SIGNAL ? thr->sig : 0));
		thr->state = THR_GONE;
	}
	if (t->memfd >= 0)
		close(t->memfd);
	t->memfd = -1;
	t->gone = 1;
}

int task_attach(struct task *t, pid_t pid)
{
	char state[64];
	int scans, r;

	t->pid = pid;
	if (kill(pid, 0) < 0 && errno == ESRCH)
		return error("no process with PID %d; check the PID with 'ps' or 'pgrep'", pid);
	if (pid == getpid())
		return error("PID %d is pyleakdb itself; give the PID of the Python process", pid);
	if (read_status_field(pid, "State", state, sizeof(state)) == 0 && state[0] == 'Z')
		return error("process %d is a zombie: it has exited and waits for its parent", pid);
	if (read_status_field(pid, "State", state, sizeof(state)) == 0 &&
	    (state[0] == 'T' || state[0] == 't'))
		t->job_stopped_at_attach = state[0] == 'T';

	current_task = t;
	for (scans = 0; scans < ATTACH_SCAN_MAX; scans++) {
		r = seize_new_threads(t);
		if (r < 0)
			goto fail;
		if (r == 0 && t->nthr)
			break;
	}
	if (!t->nthr) {
		error("no process with PID %d; check the PID with 'ps' or 'pgrep'", pid);
		goto fail;
	}
	if (open_memfd(t) < 0)
		goto fail;
	if (task_stop_all(t) < 0)
		goto fail;
	/* threads created while we were seizing were caught by TRACECLONE or the scans */
	return 0;
fail:
	release_seized(t);
	t->pid = 0;
	current_task = NULL;
	return -1;
}

int task_spawn(struct task *t, char *const argv[])
{
	struct task_thread *thr;
	int status, pipefd[2];
	char errbuf[8];
	pid_t pid;
	ssize_t n;

	/* the child reports a failed exec through this pipe; a successful one closes it */
	if (pipe2(pipefd, O_CLOEXEC) < 0)
		return error("cannot create a pipe: %s", strerror(errno));
	pid = fork();
	if (pid < 0)
		return error("cannot fork: %s", strerror(errno));
	if (pid == 0) {
		sigset_t none;
		int err;

		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		signal(SIGINT, SIG_DFL);
		signal(SIGPIPE, SIG_DFL);
		/* its own process group: Ctrl-C at our prompt is ours, not the program's */
		setpgid(0, 0);
		close(pipefd[0]);
		raise(SIGSTOP); /* wait here until the parent has seized us */
		execvp(argv[0], argv);
		err = errno;
		n = write(pipefd[1], &err, sizeof(err));
		(void)n;
		_exit(127);
	}
	close(pipefd[1]);
	t->pid = pid;
	t->is_child = 1;
	current_task = t;
	if (waitpid(pid, &status, WUNTRACED) != pid || !WIFSTOPPED(status)) {
		close(pipefd[0]);
		return error("the program did not start");
	}
	if (pt(PTRACE_SEIZE, pid, 0, (void *)(long)SEIZE_OPTIONS) < 0) {
		int err = errno;

		kill(pid, SIGKILL);
		waitpid(pid, &status, 0);
		close(pipefd[0]);
		return error("cannot trace the new process: %s", strerror(err));
	}
	thr = add_thread(t, pid);
	thr->state = THR_RUNNING;
	kill(pid, SIGCONT);
	/* run it to the exec event, passing on SIGCONT and anything else */
	for (;;) {
		if (waitpid(pid, &status, __WALL) != pid) {
			close(pipefd[0]);
			return error("lost the new process: %s", strerror(errno));
		}
		handle_status(t, thr, status);
		if (thr->state == THR_GONE) {
			int err = 0;

			n = read(pipefd[0], &err, sizeof(err));
			close(pipefd[0]);
			t->pid = 0;
			current_task = NULL;
			if (n == sizeof(err))
				return error("cannot run '%s': %s", argv[0], strerror(err));
			return error("'%s' exited before it started", argv[0]);
		}
		if (thr->stop == STOP_EVENT && t->exec_seen)
			break;
		if (thr->stop == STOP_GROUP) {
			pt(PTRACE_CONT, pid, 0, 0);
			t->job_stopped = 0;
		} else {
			pt(PTRACE_CONT, pid, 0, (void *)(long)thr->sig);
		}
		thr->state = THR_RUNNING;
	}
	n = read(pipefd[0], errbuf, sizeof(errbuf));
	close(pipefd[0]);
	t->job_stopped = 0;
	t->exec_seen = 0;
	return open_memfd(t);
}

int task_detach(struct task *t)
{
	int ret = 0;

	if (!t->pid || t->gone) {
		current_task = NULL;
		return 0;
	}
	task_stop_all(t);
	for (size_t i = t->npatches; i-- > 0;)
		if (t->patches[i].active)
			task_unpatch(t, t->patches[i].addr);
	for (size_t i = 0; i < t->nthr; i++) {
		struct task_thread *thr = t->thr[i];
		long sig;

		if (thr->state != THR_STOPPED)
			continue;
		if (thr->guarded)
			task_unguard(t, thr);
		sig = thr->stop == STOP_SIGNAL ? thr->sig : 0;
		if (!sig)
			sig = thr->deferred_sig;
		if (pt(PTRACE_DETACH, thr->tid, 0, (void *)sig) < 0 && errno != ESRCH)
			ret = error("cannot detach from thread %d: %s", thr->tid, strerror(errno));
		thr->state = THR_GONE;
	}
	/* threads that would not stop (uninterruptible sleep) the kernel lets go when we exit */
	if (t->memfd >= 0)
		close(t->memfd);
	t->memfd = -1;
	t->gone = 1;
	current_task = NULL;
	return ret;
}

int task_kill(struct task *t)
{
	int status;

	if (!t->pid || t->gone)
		return 0;
	kill(t->pid, SIGKILL);
	/* SIGKILL wakes tracees from any stop; an exit stop must be let go on */
	for (size_t i = 0; i < t->nthr; i++)
		if (t->thr[i]->state == THR_STOPPED)
			t->thr[i]->state = THR_RUNNING;
	for (int i = 0; i < 2000 && !t->gone; i++) {
		int got = reap(t);

		for (size_t j = 0; j < t->nthr; j++) {
			struct task_thread *thr = t->thr[j];

			if (thr->state == THR_STOPPED) {
				pt(PTRACE_CONT, thr->tid, 0, 0);
				thr->state = THR_RUNNING;
			}
		}
		if (!got)
			wait_slice(1000);
	}
	/* the leader's exit status is ours to collect when we started it */
	if (t->is_child)
		for (int i = 0; i < 1000; i++) {
			pid_t r = waitpid(t->pid, &status, __WALL | WNOHANG);

			if (r == t->pid)
				mark_process_gone(t, status);
			if (r != 0)
				break;
			wait_slice(1000);
		}
	t->gone = 1;
	current_task = NULL;
	return 0;
}

void task_release(struct task *t)
{
	for (size_t i = 0; i < t->nthr; i++)
		free_thread(t->thr[i]);
	free(t->thr);
	empty_graveyard(t);
	free(t->graveyard);
	free(t->patches);
	if (t->memfd >= 0)
		close(t->memfd);
	if (current_task == t)
		current_task = NULL;
	task_init(t);
}

const char *task_end_reason(const struct task *t, char *buf, size_t len)
{
	if (t->term_sig)
		snprintf(buf, len, "was killed by signal %d (%s)", t->term_sig,
			 sigabbrev_np(t->term_sig) ? sigabbrev_np(t->term_sig) : "?");
	else
		snprintf(buf, len, "exited with status %d", t->exit_code);
	return buf;
}

/* ----- stop and resume ----- */

int task_stop_all(struct task *t)
{
	uint64_t deadline = now_us() + STOP_TIMEOUT_US;
	int rescanned = 0;

	if (t->gone)
		return 0;
	for (;;) {
		size_t i;

		for (i = 0; i < t->nthr; i++) {
			struct task_thread *thr = t->thr[i];

			if (thr->state != THR_RUNNING && !thr->listening)
				continue;
			if (thr->is_new)
				continue; /* its first stop is on the way */
			thr->sched_state = read_sched_state(t->pid, thr->tid);
			thr->interrupted = 1;
			if (pt(PTRACE_INTERRUPT, thr->tid, 0, 0) < 0 && errno == ESRCH)
				continue; /* dying: its exit status will come */
			thr->is_new = 0;
			thr->listening = 0;
		}
		while (!task_all_stopped(t) && !t->gone) {
			if (!reap(t)) {
				if (now_us() > deadline)
					break;
				wait_slice(1000);
			}
			/* new threads seen by reap() need no interrupt: they stop on their own */
		}
		if (t->gone)
			break;
		if (!task_all_stopped(t)) {
			for (i = 0; i < t->nthr; i++)
				if (t->thr[i]->state == THR_RUNNING)
					return error(
					    "thread %d of process %d did not stop within %d s "
					    "(state %c); try again",
					    t->thr[i]->tid, t->pid, STOP_TIMEOUT_US / 1000000,
					    read_sched_state(t->pid, t->thr[i]->tid));
		}
		/* a thread cloned just before its parent stopped may have escaped the event */
		if (rescanned++ || seize_new_threads(t) <= 0)
			break;
	}
	compact_threads(t);
	if (t->gone) {
		char why[64];

		return error("process %d %s", t->pid, task_end_reason(t, why, sizeof(why)));
	}
	return 0;
}

static int resume_one(struct task *t, struct task_thread *thr, int sig)
{
	enum __ptrace_request req = PTRACE_CONT;

	if (thr->stop == STOP_GROUP && t->job_stopped)
		req = PTRACE_LISTEN; /* stopped by job control: stay stopped until SIGCONT */
	if (pt(req, thr->tid, 0, (void *)(long)(req == PTRACE_CONT ? sig : 0)) < 0) {
		if (errno == ESRCH) {
			/* killed while stopped: its exit status will come through waitpid */
			thr->state = THR_RUNNING;
			return 0;
		}
		return error("cannot resume thread %d: %s", thr->tid, strerror(errno));
	}
	/* a listening thread waits for SIGCONT: from our side it is running */
	thr->listening = req == PTRACE_LISTEN;
	thr->held = 0;
	thr->state = THR_RUNNING;
	thr->stop = STOP_NONE;
	thr->sig = 0;
	thr->regs_valid = 0;
	return 0;
}

static int resume_except(struct task *t, struct task_thread *except)
{
	int ret = 0;

	if (t->gone)
		return error("the target is gone");
	t->generation++;
	for (size_t i = 0; i < t->nthr; i++) {
		struct task_thread *thr = t->thr[i];
		int sig;

		if (thr->state != THR_STOPPED || thr == except)
			continue;
		sig = thr->stop == STOP_SIGNAL ? thr->sig : 0;
		if (!sig && thr->deferred_sig)
			sig = thr->deferred_sig;
		thr->deferred_sig = 0;
		if (resume_one(t, thr, sig) < 0)
			ret = -1;
	}
	return ret;
}

int task_resume_all(struct task *t)
{
	if (t->before_resume && !t->gone)
		t->before_resume(t->before_resume_arg);
	/* nobody holds a thread pointer across a whole resume: the dead can go now */
	empty_graveyard(t);
	return resume_except(t, NULL);
}

int task_resume_others(struct task *t, struct task_thread *except)
{
	return resume_except(t, except);
}

int task_resume_thread(struct task *t, struct task_thread *thr, int sig)
{
	t->generation++;
	if (thr->state != THR_STOPPED)
		return error("thread %d is not stopped", thr->tid);
	if (pt(PTRACE_CONT, thr->tid, 0, (void *)(long)sig) < 0)
		return error("cannot resume thread %d: %s", thr->tid, strerror(errno));
	thr->held = 0;
	thr->state = THR_RUNNING;
	thr->stop = STOP_NONE;
	thr->sig = 0;
	thr->regs_valid = 0;
	return 0;
}

int task_step_thread(struct task *t, struct task_thread *thr)
{
	t->generation++;
	if (thr->state != THR_STOPPED)
		return error("thread %d is not stopped", thr->tid);
	if (pt(PTRACE_SINGLESTEP, thr->tid, 0, 0) < 0)
		return error("cannot step thread %d: %s", thr->tid, strerror(errno));
	thr->held = 0;
	thr->state = THR_RUNNING;
	thr->stop = STOP_NONE;
	thr->regs_valid = 0;
	return 0;
}

int task_interrupt_thread(struct task *t, struct task_thread *thr)
{
	(void)t;
	if (thr->state != THR_RUNNING)
		return 0;
	thr->sched_state = read_sched_state(t->pid, thr->tid);
	thr->interrupted = 1;
	if (pt(PTRACE_INTERRUPT, thr->tid, 0, 0) < 0 && errno != ESRCH)
		return error("cannot interrupt thread %d: %s", thr->tid, strerror(errno));
	return 0;
}

int task_wait_thread(struct task *t, struct task_thread *thr, int64_t timeout_us)
{
	uint64_t deadline = timeout_us < 0 ? UINT64_MAX : now_us() + (uint64_t)timeout_us;
	pid_t tid = thr->tid;

	for (;;) {
		int status;
		pid_t r = waitpid(tid, &status, __WALL | WNOHANG);

		/* thr may move if handle_status() appends threads: find it again by TID */
		thr = task_thread_by_tid(t, tid);
		if (!thr)
			return -1;
		if (r == tid) {
			handle_status(t, thr, status);
			if (thr->state == THR_GONE)
				return -1;
			if (thr->state == THR_STOPPED)
				return 1;
		} else if (r < 0) {
			thr->state = THR_GONE;
			check_all_gone(t);
			return -1;
		}
		if (now_us() >= deadline)
			return 0;
		wait_slice((int64_t)(deadline - now_us()));
	}
}

/* ----- waiting while the target runs ----- */

int task_wait(struct task *t, const sigset_t *catch, int64_t timeout_us, struct task_event *ev)
{
	uint64_t deadline = timeout_us < 0 ? UINT64_MAX : now_us() + (uint64_t)timeout_us;

	memset(ev, 0, sizeof(*ev));
	for (;;) {
		if (task_take_sigint()) {
			ev->kind = TEV_INTERRUPTED;
			return 0;
		}
		reap(t);
		if (t->gone) {
			ev->kind = TEV_EXITED;
			return 0;
		}
		for (size_t i = 0; i < t->nthr; i++) {
			struct task_thread *thr = t->thr[i];

			if (thr->state != THR_STOPPED || thr->listening || thr->held)
				continue;
			switch (thr->stop) {
			case STOP_SIGNAL:
				if (catch && sigismember(catch, thr->sig)) {
					ev->kind = TEV_SIGNAL;
					ev->thr = thr;
					ev->sig = thr->sig;
					return 0;
				}
				resume_one(t, thr, thr->sig);
				break;
			case STOP_TRAP:
				ev->kind = TEV_TRAP;
				ev->thr = thr;
				ev->sig = SIGTRAP;
				return 0;
			case STOP_EVENT:
				if (t->exec_seen) {
					ev->kind = TEV_EXEC;
					ev->thr = thr;
					return 0;
				}
				resume_one(t, thr, 0);
				break;
			case STOP_INTERRUPT:
				/* a new thread's first stop, or the end of a job-control stop */
				if (t->job_stopped && !thr->is_new) {
					t->job_stopped = 0;
				}
				thr->is_new = 0;
				resume_one(t, thr, 0);
				break;
			case STOP_GROUP:
				resume_one(t, thr, 0); /* PTRACE_LISTEN while job_stopped */
				break;
			case STOP_NONE:
				resume_one(t, thr, 0);
				break;
			}
		}
		if (now_us() >= deadline) {
			ev->kind = TEV_TIMEOUT;
			return 0;
		}
		wait_slice(deadline == UINT64_MAX ? -1 : (int64_t)(deadline - now_us()));
	}
}

/* ----- registers and memory ----- */

static int need_stopped(struct task_thread *thr)
{
	if (thr->state != THR_STOPPED || thr->listening)
		return error("thread %d is not stopped", thr->tid);
	return 0;
}

int task_get_regs(struct task *t, struct task_thread *thr, arch_regs *regs)
{
	(void)t;
	if (need_stopped(thr) < 0)
		return -1;
	if (!thr->regs_valid) {
		if (pt(PTRACE_GETREGS, thr->tid, 0, &thr->regs) < 0)
			return error("cannot read the registers of thread %d: %s", thr->tid,
				     strerror(errno));
		thr->regs_valid = 1;
	}
	*regs = thr->regs;
	return 0;
}

int task_set_regs(struct task *t, struct task_thread *thr, const arch_regs *regs)
{
	(void)t;
	if (need_stopped(thr) < 0)
		return -1;
	if (pt(PTRACE_SETREGS, thr->tid, 0, (void *)regs) < 0)
		return error("cannot write the registers of thread %d: %s", thr->tid,
			     strerror(errno));
	thr->regs = *regs;
	thr->regs_valid = 1;
	return 0;
}

int task_get_xstate(struct task *t, struct task_thread *thr, void *buf, size_t *len)
{
	struct iovec iov = {buf, *len};

	(void)t;
	if (need_stopped(thr) < 0)
		return -1;
	if (pt(PTRACE_GETREGSET, thr->tid, (void *)NT_X86_XSTATE, &iov) < 0)
		return error("cannot read the vector registers of thread %d: %s", thr->tid,
			     strerror(errno));
	*len = iov.iov_len;
	return 0;
}

int task_set_xstate(struct task *t, struct task_thread *thr, const void *buf, size_t len)
{
	struct iovec iov = {(void *)buf, len};

	(void)t;
	if (need_stopped(thr) < 0)
		return -1;
	if (pt(PTRACE_SETREGSET, thr->tid, (void *)NT_X86_XSTATE, &iov) < 0)
		return error("cannot write the vector registers of thread %d: %s", thr->tid,
			     strerror(errno));
	return 0;
}

int task_get_sigmask(struct task *t, struct task_thread *thr, uint64_t *mask)
{
	(void)t;
	if (need_stopped(thr) < 0)
		return -1;
	if (pt(PTRACE_GETSIGMASK, thr->tid, (void *)sizeof(*mask), mask) < 0)
		return error("cannot read the signal mask of thread %d: %s", thr->tid,
			     strerror(errno));
	return 0;
}

int task_set_sigmask(struct task *t, struct task_thread *thr, uint64_t mask)
{
	(void)t;
	if (need_stopped(thr) < 0)
		return -1;
	if (pt(PTRACE_SETSIGMASK, thr->tid, (void *)sizeof(mask), &mask) < 0)
		return error("cannot write the signal mask of thread %d: %s", thr->tid,
			     strerror(errno));
	return 0;
}

int task_guard(struct task *t, struct task_thread *thr)
{
	unsigned char *xs;
	size_t len = XSTATE_MAX;

	if (thr->guarded)
		return 0;
	if (task_get_regs(t, thr, &thr->guard_regs) < 0 ||
	    task_get_sigmask(t, thr, &thr->guard_sigmask) < 0)
		return -1;
	xs = xmalloc(XSTATE_MAX);
	if (task_get_xstate(t, thr, xs, &len) < 0) {
		free(xs);
		return -1;
	}
	free(thr->guard_xstate);
	thr->guard_xstate = xs;
	thr->guard_xstate_len = len;
	thr->guarded = 1;
	return 0;
}

int task_unguard(struct task *t, struct task_thread *thr)
{
	int ret = 0;

	if (!thr->guarded)
		return 0;
	if (task_set_regs(t, thr, &thr->guard_regs) < 0 ||
	    task_set_xstate(t, thr, thr->guard_xstate, thr->guard_xstate_len) < 0 ||
	    task_set_sigmask(t, thr, thr->guard_sigmask) < 0)
		ret = -1;
	thr->guarded = 0;
	free(thr->guard_xstate);
	thr->guard_xstate = NULL;
	return ret;
}

int task_poke(struct task *t, uint64_t addr, const void *buf, size_t len)
{
	ssize_t n;

	if (t->memfd < 0)
		return error("the target is not attached");
	n = pwrite(t->memfd, buf, len, (off_t)addr);
	if (n != (ssize_t)len)
		return error("cannot write %zu bytes at %#" PRIx64 ": %s", len, addr,
			     n < 0 ? strerror(errno) : "short write");
	return 0;
}

int task_patch(struct task *t, uint64_t addr, const void *bytes, size_t len)
{
	struct task_patch *p;

	if (len > TASK_PATCH_MAX)
		BUG("patch of %zu bytes", len);
	for (size_t i = 0; i < t->npatches; i++)
		if (t->patches[i].active && addr < t->patches[i].addr + t->patches[i].len &&
		    t->patches[i].addr < addr + len)
			return error("address %#" PRIx64 " is already patched", addr);
	if (t->npatches == t->cap_patches) {
		t->cap_patches = t->cap_patches ? t->cap_patches * 2 : 8;
		t->patches = xrealloc(t->patches, t->cap_patches * sizeof(*t->patches));
	}
	p = &t->patches[t->npatches];
	memset(p, 0, sizeof(*p));
	p->addr = addr;
	p->len = len;
	if (pread(t->memfd, p->orig, len, (off_t)addr) != (ssize_t)len)
		return error("cannot read the code at %#" PRIx64 ": %s", addr, strerror(errno));
	/* recorded before written: the emergency path must know what to undo */
	p->active = 1;
	t->npatches++;
	if (task_poke(t, addr, bytes, len) < 0) {
		p->active = 0;
		t->npatches--;
		return -1;
	}
	return 0;
}

int task_unpatch(struct task *t, uint64_t addr)
{
	for (size_t i = 0; i < t->npatches; i++) {
		struct task_patch *p = &t->patches[i];

		if (!p->active || p->addr != addr)
			continue;
		if (task_poke(t, p->addr, p->orig, p->len) < 0)
			return -1;
		p->active = 0;
		/* keep the array short: drop trailing inactive entries */
		while (t->npatches && !t->patches[t->npatches - 1].active)
			t->npatches--;
		return 0;
	}
	return error("no patch at %#" PRIx64, addr);
}

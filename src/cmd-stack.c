// SPDX-License-Identifier: GPL-3.0-or-later
/*
 * cmd-stack: bt, pystack and info threads: where every thread is, read
 * from the stopped target without running anything in it.
 */
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "cmd.h"
#include "procfs.h"
#include "pyframes.h"

/* The system calls a blocked Python thread is usually in, by name. */
static const struct {
	long nr;
	const char *name;
} syscall_names[] = {
    {__NR_select, "select"},
    {__NR_pselect6, "pselect6"},
    {__NR_poll, "poll"},
    {__NR_ppoll, "ppoll"},
    {__NR_epoll_wait, "epoll_wait"},
    {__NR_epoll_pwait, "epoll_pwait"},
    {__NR_futex, "futex"},
    {__NR_nanosleep, "nanosleep"},
    {__NR_clock_nanosleep, "clock_nanosleep"},
    {__NR_read, "read"},
    {__NR_write, "write"},
    {__NR_recvfrom, "recvfrom"},
    {__NR_recvmsg, "recvmsg"},
    {__NR_sendto, "sendto"},
    {__NR_accept, "accept"},
    {__NR_accept4, "accept4"},
    {__NR_connect, "connect"},
    {__NR_wait4, "wait4"},
    {__NR_waitid, "waitid"},
    {__NR_pause, "pause"},
    {__NR_rt_sigtimedwait, "rt_sigtimedwait"},
    {__NR_rt_sigsuspend, "rt_sigsuspend"},
    {__NR_openat, "openat"},
    {__NR_pread64, "pread64"},
    {__NR_fsync, "fsync"},
    {__NR_flock, "flock"},
    /* the kernel resuming an interrupted sleep or wait after a stop */
    {__NR_restart_syscall, "restart_syscall"},
};

static const char *syscall_name(long nr)
{
	for (size_t i = 0; i < ARRAY_SIZE(syscall_names); i++)
		if (syscall_names[i].nr == nr)
			return syscall_names[i].name;
	return NULL;
}

/* Every OS thread with its Python thread state, if it has one. */
struct thread_view {
	struct task_thread *thr;
	struct pythread *py;
	char comm[32];
};

struct threads_snapshot {
	struct thread_view *v;
	size_t n;
	struct pythread *py;
	size_t npy;
};

static int snapshot(struct session *s, struct threads_snapshot *snap)
{
	struct task *t = &s->task;

	memset(snap, 0, sizeof(*snap));
	session_settle(s);
	if (s->python_ok && py_threads(&s->pi, &snap->py, &snap->npy) < 0)
		warning("cannot list the Python threads; showing native stacks only");
	snap->v = xcalloc(t->nthr ? t->nthr : 1, sizeof(*snap->v));
	for (size_t i = 0; i < t->nthr; i++) {
		struct thread_view *tv = &snap->v[snap->n];

		if (t->thr[i]->state == THR_GONE)
			continue;
		tv->thr = t->thr[i];
		proc_thread_comm(t->pid, t->thr[i]->tid, tv->comm, sizeof(tv->comm));
		for (size_t j = 0; j < snap->npy; j++)
			if (snap->py[j].tid == t->thr[i]->tid)
				tv->py = &snap->py[j];
		snap->n++;
	}
	return 0;
}

static void snapshot_release(struct threads_snapshot *snap)
{
	free(snap->v);
	free(snap->py);
	memset(snap, 0, sizeof(*snap));
}

static json_t *thread_header(struct session *s, struct thread_view *tv)
{
	json_t *o = json_object();
	arch_regs regs;
	long sc = -1;
	char state[2] = {tv->thr->sched_state ? tv->thr->sched_state : '?', 0};

	json_object_set_new(o, "tid", json_integer(tv->thr->tid));
	json_object_set_new(o, "os_name", json_target_cstr(tv->comm));
	if (tv->thr->stop == STOP_GROUP)
		state[0] = 'T';
	json_object_set_new(o, "state", json_string(state));
	if (task_get_regs(&s->task, tv->thr, &regs) == 0)
		sc = arch_orig_syscall(&regs);
	if (sc >= 0 && state[0] != 'R') {
		const char *name = syscall_name(sc);
		char buf[32];

		if (!name) {
			snprintf(buf, sizeof(buf), "syscall %ld", sc);
			name = buf;
		}
		json_object_set_new(o, "syscall", json_string(name));
	}
	json_object_set_new(o, "python", json_boolean(tv->py != NULL));
	if (tv->py) {
		json_object_set_new(o, "holds_gil", json_boolean(tv->py->holds_gil));
		if (tv->py->has_name)
			json_object_set_new(o, "python_name", json_target_cstr(tv->py->name));
		else if (tv->py->is_main)
			json_object_set_new(o, "python_name", json_string("MainThread"));
		json_object_set_new(o, "thread_state", json_hex(tv->py->tstate));
		json_object_set_new(o, "thread_ident", json_integer((json_int_t)tv->py->thread_id));
	}
	return o;
}

static json_t *pyframe_json(const struct pyframe *f)
{
	json_t *o = json_object();

	json_object_set_new(o, "kind", json_string("python"));
	json_object_set_new(o, "function", json_target_cstr(f->func));
	json_object_set_new(o, "file", json_target_cstr(f->file));
	json_object_set_new(o, "line", json_integer(f->line));
	return o;
}

static json_t *native_json(const struct native_frame *f)
{
	json_t *o = json_object();

	json_object_set_new(o, "kind", json_string("native"));
	json_object_set_new(o, "pc", json_hex(f->pc));
	if (f->symbol) {
		json_object_set_new(o, "symbol", json_target_cstr(f->symbol));
		json_object_set_new(o, "offset", json_integer((json_int_t)f->offset));
	}
	if (f->module) {
		const char *b = strrchr(f->module, '/');

		json_object_set_new(o, "module", json_target_cstr(b ? b + 1 : f->module));
	}
	return o;
}

static void add_py_frames(json_t *frames, const struct pystack *ps, size_t from, size_t to)
{
	for (size_t i = from; i < to; i++)
		json_array_append_new(frames, pyframe_json(&ps->v[i]));
}

/*
 * Merge: each native frame of the evaluation loop is replaced by the Python
 * frames that native call was running, innermost first.  The counts must
 * agree; when they do not, the Python frames are shown apart and we say so.
 */
static json_t *merged_stack(struct session *s, struct thread_view *tv, int want_native)
{
	json_t *o = thread_header(s, tv), *frames = json_array();
	struct native_stack ns = {0};
	struct pystack ps = {0};
	size_t evals = 0, segs = 0, seg_start = 0;
	const char *merge = "python";

	if (tv->py && py_stack(&s->pi, tv->py->tstate, &ps) < 0 && !ps.n)
		json_object_set_new(o, "python_error", json_target_cstr(ps.error));
	else if (ps.error)
		json_object_set_new(o, "python_error", json_target_cstr(ps.error));
	if (ps.truncated)
		json_object_set_new(o, "python_truncated", json_true());
	if (!want_native) {
		add_py_frames(frames, &ps, 0, ps.n);
		goto done;
	}
	if (unwinder_backtrace(s->unw, tv->thr, &ns) < 0)
		json_object_set_new(o, "native_error", json_target_cstr(last_error()));
	if (ns.error)
		json_object_set_new(o, "native_error", json_target_cstr(ns.error));
	for (size_t i = 0; i < ns.n; i++)
		evals += py_is_eval_frame(&s->pi, ns.v[i].pc - (i ? 1 : 0));
	for (size_t i = 0; i < ps.n; i++)
		segs += ps.v[i].ends_native_call;
	if (!ps.n) {
		merge = "native";
	} else if (evals == segs) {
		merge = "exact";
	} else {
		merge = "ambiguous";
		json_object_set_new(
		    o, "merge_note",
		    json_sprintf("%zu evaluation-loop frames, %zu native calls of Python; Python "
				 "frames shown after the native ones",
				 evals, segs));
	}
	for (size_t i = 0; i < ns.n; i++) {
		int is_eval = py_is_eval_frame(&s->pi, ns.v[i].pc - (i ? 1 : 0));

		if (!strcmp(merge, "exact") && is_eval) {
			size_t end = seg_start;

			while (end < ps.n && !ps.v[end].ends_native_call)
				end++;
			if (end < ps.n)
				end++;
			add_py_frames(frames, &ps, seg_start, end);
			seg_start = end;
			continue;
		}
		json_array_append_new(frames, native_json(&ns.v[i]));
	}
	if (!strcmp(merge, "ambiguous"))
		add_py_frames(frames, &ps, 0, ps.n);
	if (ns.truncated)
		json_object_set_new(o, "native_truncated", json_true());
done:
	json_object_set_new(o, "merge", json_string(merge));
	json_object_set_new(o, "frames", frames);
	native_stack_release(&ns);
	pystack_release(&ps);
	return o;
}

/* Parse [all|TID]: which threads to show.  Default: the GIL holder, else the main thread. */
static int pick_threads(struct cmd_ctx *ctx, int argc, char **argv, struct threads_snapshot *snap,
			int *all, pid_t *tid)
{
	*all = 0;
	*tid = 0;
	if (argc && !strcmp(argv[0], "all")) {
		*all = 1;
		return 0;
	}
	if (argc)
		return cmd_parse_tid(ctx, argv[0], tid);
	for (size_t i = 0; i < snap->n; i++)
		if (snap->v[i].py && snap->v[i].py->holds_gil)
			*tid = snap->v[i].thr->tid;
	if (!*tid)
		*tid = ctx->s->task.pid;
	if (!task_thread_by_tid(&ctx->s->task, *tid) && ctx->s->task.nthr)
		*tid = ctx->s->task.thr[0]->tid;
	return 0;
}

static int stack_cmd(struct cmd_ctx *ctx, int argc, char **argv, int native)
{
	struct threads_snapshot snap;
	json_t *threads = json_array();
	int all;
	pid_t tid;

	snapshot(ctx->s, &snap);
	if (pick_threads(ctx, argc, argv, &snap, &all, &tid) < 0) {
		snapshot_release(&snap);
		json_decref(threads);
		return -1;
	}
	for (size_t i = 0; i < snap.n; i++) {
		if (!all && snap.v[i].thr->tid != tid)
			continue;
		if (!native && !snap.v[i].py)
			continue;
		json_array_append_new(threads, merged_stack(ctx->s, &snap.v[i], native));
	}
	if (!native && !json_array_size(threads)) {
		snapshot_release(&snap);
		json_decref(threads);
		if (all)
			return error("no Python threads in process %d", ctx->s->task.pid);
		return error("thread %d runs no Python code; 'bt %d' shows its native stack", tid,
			     tid);
	}
	json_object_set_new(out_result(), "threads", threads);
	snapshot_release(&snap);
	return 0;
}

static int cmd_bt(struct cmd_ctx *ctx, int argc, char **argv)
{
	return stack_cmd(ctx, argc, argv, 1);
}

static int cmd_pystack(struct cmd_ctx *ctx, int argc, char **argv)
{
	return stack_cmd(ctx, argc, argv, 0);
}

static void render_thread_title(const json_t *t)
{
	const json_t *name = json_object_get(t, "python_name");

	out_printf("Thread %lld (%s)", json_int_member(t, "tid", 0), esc_member(t, "os_name"));
	if (name)
		out_printf(" \"%s\"", esc(json_string_value(name)));
	if (json_is_true(json_object_get(t, "holds_gil")))
		out_printf(" [holds the GIL]");
	if (json_object_get(t, "syscall"))
		out_printf(" [in %s]", esc_member(t, "syscall"));
	out_printf(":\n");
}

static void render_frame_line(const json_t *f, int i, int numbered)
{
	if (!strcmp(esc_member(f, "kind"), "python")) {
		if (numbered)
			out_printf("#%-3d ", i);
		else
			out_printf("    ");
		out_printf("%s (%s:%lld)\n", esc_member(f, "function"), esc_member(f, "file"),
			   json_int_member(f, "line", -1));
		return;
	}
	out_printf("#%-3d %s in %s", i, esc_member(f, "pc"),
		   json_object_get(f, "symbol") ? esc_member(f, "symbol") : "??");
	if (json_object_get(f, "symbol") && json_int_member(f, "offset", 0))
		out_printf("+%#llx", json_int_member(f, "offset", 0));
	if (json_object_get(f, "module"))
		out_printf(" (%s)", esc_member(f, "module"));
	out_printf("\n");
}

static void render_stacks(const json_t *r, int numbered)
{
	const json_t *threads = json_object_get(r, "threads"), *t;
	size_t i;

	json_array_foreach (threads, i, t) {
		const json_t *frames = json_object_get(t, "frames"), *f;
		size_t j;

		if (i)
			out_printf("\n");
		render_thread_title(t);
		if (json_object_get(t, "merge_note"))
			out_printf("  (native and Python frames could not be matched: %s)\n",
				   esc_member(t, "merge_note"));
		json_array_foreach (frames, j, f) {
			/* the Python frames of an ambiguous merge come last, apart */
			if (numbered && !strcmp(esc_member(t, "merge"), "ambiguous") && j &&
			    !strcmp(esc_member(f, "kind"), "python") &&
			    strcmp(esc_member(json_array_get(frames, j - 1), "kind"), "python"))
				out_printf("  Python frames:\n");
			render_frame_line(f, (int)j, numbered);
		}
		if (!json_array_size(frames))
			out_printf("    (no frames)\n");
		if (json_object_get(t, "python_error"))
			out_printf("    (%s)\n", esc_member(t, "python_error"));
		if (json_object_get(t, "native_error") && numbered)
			out_printf("    (%s)\n", esc_member(t, "native_error"));
		if (json_is_true(json_object_get(t, "python_truncated")))
			out_printf("    (more Python frames not shown)\n");
	}
}

static void render_bt(const json_t *r)
{
	render_stacks(r, 1);
}

static void render_pystack(const json_t *r)
{
	render_stacks(r, 0);
}

/* ----- info threads ----- */

int cmd_info_threads(struct cmd_ctx *ctx, int argc, char **argv)
{
	struct threads_snapshot snap;
	json_t *threads = json_array();

	(void)argc;
	(void)argv;
	snapshot(ctx->s, &snap);
	for (size_t i = 0; i < snap.n; i++) {
		json_t *o = thread_header(ctx->s, &snap.v[i]);

		if (snap.v[i].py) {
			struct pystack ps;

			if (py_stack(&ctx->s->pi, snap.v[i].py->tstate, &ps) == 0 &&
			    pystack_innermost(&ps))
				json_object_set_new(o, "innermost",
						    pyframe_json(pystack_innermost(&ps)));
			pystack_release(&ps);
		}
		json_array_append_new(threads, o);
	}
	json_object_set_new(out_result(), "threads", threads);
	snapshot_release(&snap);
	return 0;
}

static const char *python_label(const json_t *t)
{
	if (json_object_get(t, "python_name"))
		return esc_member(t, "python_name");
	return json_is_true(json_object_get(t, "python")) ? "(python)" : "-";
}

void render_info_threads(const json_t *r)
{
	const json_t *threads = json_object_get(r, "threads"), *t;
	size_t i;
	int wname = 6, wpy = 6;

	/* widths from the data: thread names are the program's, of any length */
	json_array_foreach (threads, i, t) {
		int a = (int)strlen(esc_member(t, "os_name")), b = (int)strlen(python_label(t));

		wname = a > wname ? a : wname;
		wpy = b > wpy ? b : wpy;
	}
	wname = wname > 32 ? 32 : wname;
	wpy = wpy > 40 ? 40 : wpy;
	out_printf("  %-8s %-*s %-20s %-4s %-*s %s\n", "TID", wname, "NAME", "STATE", "GIL", wpy,
		   "PYTHON", "INNERMOST PYTHON FRAME");
	json_array_foreach (threads, i, t) {
		const json_t *in = json_object_get(t, "innermost");
		char state[64], where[512] = "";

		if (json_object_get(t, "syscall"))
			snprintf(state, sizeof(state), "%s (%s)", esc_member(t, "state"),
				 esc_member(t, "syscall"));
		else
			snprintf(state, sizeof(state), "%s", esc_member(t, "state"));
		if (in)
			snprintf(where, sizeof(where), "%s (%s:%lld)", esc_member(in, "function"),
				 esc_member(in, "file"), json_int_member(in, "line", -1));
		out_printf("%c %-8lld %-*s %-20s %-4s %-*s %s\n",
			   json_is_true(json_object_get(t, "holds_gil")) ? '*' : ' ',
			   json_int_member(t, "tid", 0), wname, esc_member(t, "os_name"), state,
			   json_is_true(json_object_get(t, "holds_gil")) ? "yes" : "", wpy,
			   python_label(t), where);
	}
}

json_t *cmd_thread_stack(struct session *s, pid_t tid)
{
	struct threads_snapshot snap;
	json_t *o = NULL;

	snapshot(s, &snap);
	for (size_t i = 0; i < snap.n; i++)
		if (snap.v[i].thr->tid == tid)
			o = merged_stack(s, &snap.v[i], 1);
	snapshot_release(&snap);
	return o;
}

void render_thread_stack(const json_t *t)
{
	const json_t *frames = json_object_get(t, "frames"), *f;
	size_t j;

	render_thread_title(t);
	json_array_foreach (frames, j, f)
		render_frame_line(f, (int)j, 1);
	if (json_object_get(t, "instruction"))
		out_printf("    => %s\n", esc_member(t, "instruction"));
}

json_t *cmd_thread_where(struct session *s, pid_t tid)
{
	struct threads_snapshot snap;
	json_t *o = NULL;

	snapshot(s, &snap);
	for (size_t i = 0; i < snap.n; i++) {
		struct pystack ps;

		if (snap.v[i].thr->tid != tid)
			continue;
		o = thread_header(s, &snap.v[i]);
		if (snap.v[i].py && py_stack(&s->pi, snap.v[i].py->tstate, &ps) == 0 &&
		    pystack_innermost(&ps))
			json_object_set_new(o, "innermost", pyframe_json(pystack_innermost(&ps)));
		if (snap.v[i].py)
			pystack_release(&ps);
	}
	snapshot_release(&snap);
	return o;
}

void render_where_line(const json_t *w, const char *indent)
{
	const json_t *in = json_object_get(w, "innermost");

	out_printf("%sthread %lld %s", indent, json_int_member(w, "tid", 0),
		   json_object_get(w, "python_name") ? esc_member(w, "python_name")
						     : esc_member(w, "os_name"));
	if (in)
		out_printf(" at %s:%lld in %s", esc_member(in, "file"),
			   json_int_member(in, "line", -1), esc_member(in, "function"));
	else
		out_printf(" (no Python frame)");
	out_printf("\n");
}

static const char *const thread_words[] = {"all", NULL};

const struct cmd cmd_stack_cmds[] = {
    {
	.name = "bt",
	.aliases = "backtrace where",
	.usage = "bt [all|TID]",
	.summary = "native and Python frames of a thread, merged",
	.help = "Shows the thread's native backtrace (libunwind) with each frame of the\n"
		"evaluation loop replaced by the Python frames it runs.  Without an\n"
		"argument: the thread holding the GIL, else the main thread.",
	.max_args = 1,
	.flags = CMD_NEEDS_PYTHON,
	.fn = cmd_bt,
	.render = render_bt,
	.arg_words = thread_words,
	.complete = cmd_complete_tids,
    },
    {
	.name = "pystack",
	.aliases = "py-bt",
	.usage = "pystack [all|TID]",
	.summary = "Python frames of a thread, innermost first",
	.max_args = 1,
	.flags = CMD_NEEDS_PYTHON,
	.fn = cmd_pystack,
	.render = render_pystack,
	.arg_words = thread_words,
	.complete = cmd_complete_tids,
    },
    {0},
};

// SPDX-License-Identifier: GPL-3.0-or-later
/*
 * cmd-target: attach, run, continue, detach, kill, quit.
 */
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd.h"

static int describe_attach(struct cmd_ctx *ctx, const char *how)
{
	struct session *s = ctx->s;
	json_t *r = out_result();
	char ver[32];

	snprintf(ver, sizeof(ver), "%d.%d.%d", s->pi.major, s->pi.minor, s->pi.micro);
	json_object_set_new(r, "event", json_string(how));
	json_object_set_new(r, "pid", json_integer(s->task.pid));
	json_object_set_new(r, "python", json_string(ver));
	json_object_set_new(r, "threads", json_integer((json_int_t)task_live_threads(&s->task)));
	json_object_set_new(r, "executable", json_target_cstr(s->pi.exe));
	if (s->task.job_stopped_at_attach)
		json_object_set_new(r, "job_stopped", json_true());
	return 0;
}

static void render_attach(const json_t *r)
{
	long long n = json_int_member(r, "threads", 0);

	out_printf("%s process %lld (Python %s, %lld thread%s): %s\n",
		   !strcmp(esc_member(r, "event"), "started") ? "Started" : "Attached to",
		   json_int_member(r, "pid", 0), esc_member(r, "python"), n, n == 1 ? "" : "s",
		   esc_member(r, "executable"));
	if (json_is_true(json_object_get(r, "job_stopped")))
		out_printf(
		    "The process was stopped by job control (SIGSTOP); it stays stopped after "
		    "detach.\n");
}

int cmd_attach_pid(struct cmd_ctx *ctx, pid_t pid)
{
	if (session_attach(ctx->s, pid) < 0)
		return -1;
	return describe_attach(ctx, "attached");
}

static int cmd_attach(struct cmd_ctx *ctx, int argc, char **argv)
{
	uint64_t pid;

	(void)argc;
	if (parse_u64(argv[0], &pid) < 0 || !pid || pid > INT32_MAX)
		return cmd_usage_error(ctx->cmd, "not a process id: \"%s\"", esc(argv[0]));
	return cmd_attach_pid(ctx, (pid_t)pid);
}

int cmd_run_argv(struct cmd_ctx *ctx, char *const argv[])
{
	if (session_run(ctx->s, argv) < 0)
		return -1;
	return describe_attach(ctx, "started");
}

static int cmd_run(struct cmd_ctx *ctx, int argc, char **argv)
{
	char **args = xcalloc((size_t)argc + 1, sizeof(*args));
	int r, skip = argc && !strcmp(argv[0], "--");

	if (argc - skip < 1) {
		free(args);
		return cmd_usage_error(ctx->cmd, "run needs a program");
	}
	for (int i = skip; i < argc; i++)
		args[i - skip] = argv[i];
	r = cmd_run_argv(ctx, args);
	free(args);
	return r;
}

static int cmd_detach(struct cmd_ctx *ctx, int argc, char **argv)
{
	pid_t pid = ctx->s->task.pid;

	(void)argc;
	(void)argv;
	if (ctx->s->task.gone) {
		session_detach(ctx->s);
		return error("the process is gone");
	}
	if (session_detach(ctx->s) < 0) {
		/* detached all the same, with something left behind */
		if (!ctx->s->attached)
			json_object_set_new(out_result(), "detached", json_integer(pid));
		return -1;
	}
	json_object_set_new(out_result(), "detached", json_integer(pid));
	return 0;
}

static void render_detach(const json_t *r)
{
	out_printf("Detached from process %lld.\n", json_int_member(r, "detached", 0));
}

static int cmd_kill(struct cmd_ctx *ctx, int argc, char **argv)
{
	pid_t pid = ctx->s->task.pid;

	(void)argc;
	(void)argv;
	if (!ctx->s->task.is_child)
		return error("process %d was attached to, not started here: pyleakdb does not kill "
			     "it; use 'detach'",
			     pid);
	session_kill(ctx->s);
	json_object_set_new(out_result(), "killed", json_integer(pid));
	return 0;
}

static void render_kill(const json_t *r)
{
	out_printf("Killed process %lld.\n", json_int_member(r, "killed", 0));
}

static void render_continuing(const json_t *ev)
{
	(void)ev;
	out_printf("Continuing.\n");
}

static int cmd_continue(struct cmd_ctx *ctx, int argc, char **argv)
{
	struct session *s = ctx->s;
	struct stop_info st;
	uint64_t us = 0;
	int64_t timeout = -1;
	json_t *stop;

	if (argc) {
		if (parse_duration_us(argv[0], &us) < 0 || !us)
			return cmd_usage_error(ctx->cmd, "not a duration: \"%s\" (e.g. 2s, 500ms)",
					       esc(argv[0]));
		timeout = (int64_t)us;
	} else if (ctx->batch && !s->bps.n) {
		note("continuing until the process exits (give a duration to stop it sooner: "
		     "'continue 5s')");
	}
	out_event(json_pack("{s:s}", "event", "continuing"), render_continuing);
	task_take_sigint();
	if (bp_run(s, timeout, &st) < 0)
		return -1;
	stop = cmd_describe_stop(s, &st);
	json_decref(st.hit);
	json_object_update(out_result(), stop);
	json_decref(stop);
	return 0;
}

static void render_continue(const json_t *r)
{
	render_stop(r);
}

static int cmd_quit(struct cmd_ctx *ctx, int argc, char **argv)
{
	(void)argc;
	(void)argv;
	ctx->quit = 1;
	if (!ctx->s->attached)
		return 0;
	if (ctx->s->task.gone) {
		/* it already ended, and was reported then: just forget it */
		session_kill(ctx->s);
		return 0;
	}
	if (ctx->s->task.is_child) {
		json_object_set_new(out_result(), "killed", json_integer(ctx->s->task.pid));
		return session_kill(ctx->s);
	}
	json_object_set_new(out_result(), "detached", json_integer(ctx->s->task.pid));
	return session_detach(ctx->s);
}

static void render_quit(const json_t *r)
{
	if (json_object_get(r, "killed"))
		render_kill(r);
	else if (json_object_get(r, "detached"))
		render_detach(r);
}

const struct cmd cmd_target_cmds[] = {
    {
	.name = "attach",
	.usage = "attach PID",
	.summary = "attach to a running Python process",
	.min_args = 1,
	.max_args = 1,
	.flags = CMD_NO_TARGET,
	.fn = cmd_attach,
	.render = render_attach,
    },
    {
	.name = "run",
	.usage = "run [--] PROGRAM [ARGS...]",
	.summary = "start a program, stopped before its first Python line",
	.min_args = 1,
	.max_args = -1,
	.flags = CMD_NO_TARGET,
	.fn = cmd_run,
	.render = render_attach,
    },
    {
	.name = "continue",
	.aliases = "c",
	.usage = "continue [DURATION]",
	.summary = "let the target run, until Ctrl-C (or DURATION: 2s, 500ms)",
	.max_args = 1,
	.flags = CMD_NEEDS_TARGET | CMD_REPEATS,
	.fn = cmd_continue,
	.render = render_continue,
    },
    {
	.name = "detach",
	.usage = "detach",
	.summary = "leave the target exactly as it was, running",
	.max_args = 0,
	.flags = CMD_NEEDS_TARGET,
	.fn = cmd_detach,
	.render = render_detach,
    },
    {
	.name = "kill",
	.usage = "kill",
	.summary = "end a program started with 'run'",
	.max_args = 0,
	.flags = CMD_NEEDS_TARGET,
	.fn = cmd_kill,
	.render = render_kill,
    },
    {
	.name = "quit",
	.aliases = "q exit",
	.usage = "quit",
	.summary = "detach (or end a program started with 'run') and exit",
	.max_args = 0,
	.fn = cmd_quit,
	.render = render_quit,
    },
    {0},
};

// SPDX-License-Identifier: GPL-3.0-or-later
/*
 * cmd-break: break, tbreak, delete, disable, enable, condition, info
 * breakpoints, iter, set; and the report of why the target stopped.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd.h"
#include "disasm.h"
#include "procfs.h"

#define ITER_DEFAULT	  1
#define ITER_MAX	  100000
#define ITER_GROWTH_TYPES 6
#define GROWTH_ALL	  100000

/* ----- describing a stop ----- */

static void add_rss_change(struct session *s, json_t *o, uint64_t rss)
{
	json_object_set_new(o, "rss", json_integer((json_int_t)rss));
	if (s->last_stop_rss)
		json_object_set_new(o, "rss_change",
				    json_integer((json_int_t)rss - (json_int_t)s->last_stop_rss));
	s->last_stop_rss = rss;
}

/* The instruction a stopped thread is at, for the RSS report. */
static void add_instruction(struct session *s, json_t *stack, pid_t tid)
{
	struct task_thread *thr = task_thread_by_tid(&s->task, tid);
	struct insn *in = NULL;
	arch_regs regs;

	if (!thr || task_get_regs(&s->task, thr, &regs) < 0)
		return;
	if (disasm(&s->task, arch_pc(&regs), 1, &in) == 1)
		json_object_set_new(stack, "instruction",
				    json_sprintf("%#" PRIx64 ": %s", in[0].addr, in[0].text));
	free(in);
}

json_t *cmd_describe_stop(struct session *s, const struct stop_info *st)
{
	json_t *o = json_object(), *threads, *w;
	uint64_t rss = st->rss;

	json_object_set_new(o, "pid", json_integer(s->task.pid));
	switch (st->kind) {
	case STOPPED_EXIT: {
		char why[64];

		json_object_set_new(o, "stopped", json_string("exited"));
		json_object_set_new(o, "how",
				    json_string(task_end_reason(&s->task, why, sizeof(why))));
		return o;
	}
	case STOPPED_INTERRUPT:
		json_object_set_new(o, "stopped", json_string("interrupted"));
		break;
	case STOPPED_TIME:
		json_object_set_new(o, "stopped", json_string("time"));
		break;
	case STOPPED_RSS:
		json_object_set_new(o, "stopped", json_string("rss"));
		json_object_set_new(o, "breakpoint", json_integer(st->bp_id));
		json_object_set_new(o, "threshold", json_integer((json_int_t)st->threshold));
		json_object_set_new(o, "overshoot",
				    json_integer((json_int_t)(st->rss - st->threshold)));
		json_object_set_new(o, "tid", json_integer(st->tid));
		break;
	case STOPPED_BREAK:
		json_object_set_new(o, "stopped", json_string("breakpoint"));
		json_object_set_new(o, "breakpoint", json_integer(st->bp_id));
		json_object_set_new(o, "tid", json_integer(st->tid));
		if (st->hit) {
			json_object_set(o, "file", json_object_get(st->hit, "file"));
			json_object_set(o, "line", json_object_get(st->hit, "line"));
			json_object_set(o, "function", json_object_get(st->hit, "function"));
			if (json_is_string(json_object_get(st->hit, "source"))) {
				json_object_set(o, "source", json_object_get(st->hit, "source"));
			} else {
				/* not in the program's linecache: the file, as the program sees it
				 */
				char *src = proc_source_line(
				    s->task.pid,
				    json_string_value(json_object_get(st->hit, "file")),
				    (int)json_integer_value(json_object_get(st->hit, "line")));

				if (src)
					json_object_set_new(o, "source", json_target_cstr(src));
				free(src);
			}
		}
		break;
	}
	if (!rss)
		proc_rss(s->task.pid, &rss);
	add_rss_change(s, o, rss);
	/* who was doing what: the thread of the stop, running threads and the GIL holder */
	threads = json_array();
	for (size_t i = 0; i < s->task.nthr; i++) {
		pid_t tid = s->task.thr[i]->tid;
		int running = s->task.thr[i]->sched_state == 'R';

		w = cmd_thread_where(s, tid);
		if (!w)
			continue;
		if (tid == st->tid || (st->kind != STOPPED_BREAK && tid == s->task.pid) ||
		    json_is_true(json_object_get(w, "holds_gil")) ||
		    (st->kind == STOPPED_RSS && running))
			json_array_append_new(threads, w);
		else
			json_decref(w);
	}
	json_object_set_new(o, "threads", threads);
	if (st->kind == STOPPED_RSS) {
		/* the full picture for an RSS stop: merged stacks and the instruction each is at */
		json_t *stacks = json_array(), *t;
		size_t i;

		json_array_foreach (threads, i, t) {
			pid_t tid = (pid_t)json_int_member(t, "tid", 0);
			int running = 0;
			json_t *stack;

			for (size_t j = 0; j < s->task.nthr; j++)
				if (s->task.thr[j]->tid == tid)
					running = s->task.thr[j]->sched_state == 'R';
			if (!running && !json_is_true(json_object_get(t, "holds_gil")) &&
			    tid != st->tid)
				continue;
			stack = cmd_thread_stack(s, tid);
			if (!stack)
				continue;
			add_instruction(s, stack, tid);
			json_array_append_new(stacks, stack);
		}
		json_object_set_new(o, "stacks", stacks);
	}
	return o;
}

static const json_t *thread_of(const json_t *stop, long long tid)
{
	const json_t *t;
	size_t i;

	json_array_foreach (json_object_get(stop, "threads"), i, t) {
		if (json_int_member(t, "tid", 0) == tid)
			return t;
	}
	return NULL;
}

static void render_rss_line(const json_t *o)
{
	struct strbuf sb = STRBUF_INIT;

	sb_adds(&sb, "RSS ");
	sb_add_bytes(&sb, (uint64_t)json_int_member(o, "rss", 0));
	if (json_object_get(o, "rss_change")) {
		sb_adds(&sb, " (");
		sb_add_bytes_delta(&sb, json_int_member(o, "rss_change", 0));
		sb_adds(&sb, " since the previous stop)");
	}
	out_printf("%s\n", sb_str(&sb));
	sb_release(&sb);
}

void render_stop(const json_t *o)
{
	const char *why = esc_member(o, "stopped");
	const json_t *t;
	size_t i;

	if (!strcmp(why, "exited")) {
		out_printf("Process %lld %s.\n", json_int_member(o, "pid", 0),
			   esc_member(o, "how"));
		return;
	}
	if (!strcmp(why, "rss")) {
		struct strbuf sb = STRBUF_INIT;
		const json_t *who = thread_of(o, json_int_member(o, "tid", 0));

		sb_addf(&sb, "rss breakpoint %lld: ", json_int_member(o, "breakpoint", 0));
		sb_add_bytes(&sb, (uint64_t)json_int_member(o, "threshold", 0));
		sb_adds(&sb, " crossed (");
		sb_add_bytes_delta(&sb, json_int_member(o, "overshoot", 0));
		sb_adds(&sb, " over)");
		out_printf("\n%s", sb_str(&sb));
		sb_release(&sb);
		if (who) {
			const json_t *in = json_object_get(who, "innermost");

			out_printf(" in thread %lld %s\n", json_int_member(who, "tid", 0),
				   json_object_get(who, "python_name")
				       ? esc_member(who, "python_name")
				       : esc_member(who, "os_name"));
			if (in)
				out_printf("  at %s:%lld in %s\n", esc_member(in, "file"),
					   json_int_member(in, "line", 0),
					   esc_member(in, "function"));
		} else {
			out_printf("\n");
		}
		render_rss_line(o);
		json_array_foreach (json_object_get(o, "stacks"), i, t) {
			out_printf("\n");
			render_thread_stack(t);
		}
		return;
	}
	if (!strcmp(why, "breakpoint")) {
		const json_t *who = thread_of(o, json_int_member(o, "tid", 0));

		out_printf("\nBreakpoint %lld, %s at %s:%lld", json_int_member(o, "breakpoint", 0),
			   esc_member(o, "function"), esc_member(o, "file"),
			   json_int_member(o, "line", 0));
		if (who)
			out_printf(" (thread %lld %s)", json_int_member(who, "tid", 0),
				   json_object_get(who, "python_name")
				       ? esc_member(who, "python_name")
				       : esc_member(who, "os_name"));
		out_printf("\n");
		if (json_object_get(o, "source"))
			out_printf("%lld\t%s\n", json_int_member(o, "line", 0),
				   esc_member(o, "source"));
		render_rss_line(o);
		return;
	}
	out_printf("\nProcess %lld stopped (%s).\n", json_int_member(o, "pid", 0),
		   !strcmp(why, "interrupted") ? "Ctrl-C"
		   : !strcmp(why, "time")      ? "time is up"
					       : why);
	json_array_foreach (json_object_get(o, "threads"), i, t)
		render_where_line(t, "  ");
	render_rss_line(o);
}

/* ----- break, tbreak ----- */

static int add_breakpoint(struct cmd_ctx *ctx, const char *line, int temporary)
{
	struct session *s = ctx->s;
	struct breakpoint *bp;
	char *spec = xstrdup(line), *cond = NULL, *iff;
	enum bp_rss_mode mode;
	uint64_t value;
	json_t *r = out_result();
	int rc;

	/* "FILE:LINE if EXPR": the condition is everything after the first " if " */
	iff = strstr(spec, " if ");
	if (iff) {
		cond = iff + 4;
		*iff = '\0';
		cond += strspn(cond, " \t");
		if (!*cond) {
			free(spec);
			return cmd_usage_error(ctx->cmd, "'if' needs a condition");
		}
	}
	rc = bp_parse_rss(spec, &mode, &value);
	if (rc < 0) {
		free(spec);
		return -1;
	}
	if (rc > 0) {
		if (cond) {
			free(spec);
			return error(
			    "an RSS breakpoint takes no 'if' condition; its threshold is one");
		}
		rc = bp_add_rss(s, spec, temporary, &bp);
	} else {
		if (strchr(spec, ' ') || !*spec) {
			free(spec);
			return cmd_usage_error(ctx->cmd,
					       "expected FILE:LINE, FUNCTION or rss > SIZE");
		}
		rc = bp_add_source(s, spec, cond, temporary, &bp);
	}
	free(spec);
	if (rc < 0)
		return -1;
	json_object_set_new(r, "id", json_integer(bp->id));
	json_object_set_new(r, "temporary", json_boolean(bp->temporary));
	json_object_set_new(r, "kind",
			    json_string(bp->kind == BP_RSS    ? "rss"
					: bp->kind == BP_LINE ? "line"
							      : "function"));
	if (bp->kind == BP_RSS) {
		uint64_t rss = 0;

		proc_rss(s->task.pid, &rss);
		json_object_set_new(r, "threshold", json_integer((json_int_t)bp->threshold));
		json_object_set_new(r, "rss", json_integer((json_int_t)rss));
		json_object_set_new(r, "armed", json_boolean(bp->rss_armed));
	} else {
		json_object_set_new(r, "file", json_target_cstr(bp->file));
		json_object_set_new(r, "line", json_integer(bp->line));
		json_object_set_new(r, "function", json_target_cstr(bp->function));
		if (bp->cond)
			json_object_set_new(r, "condition", json_string(bp->cond));
	}
	return 0;
}

static int cmd_break(struct cmd_ctx *ctx, int argc, char **argv)
{
	(void)argc;
	return add_breakpoint(ctx, argv[0], 0);
}

static int cmd_tbreak(struct cmd_ctx *ctx, int argc, char **argv)
{
	(void)argc;
	return add_breakpoint(ctx, argv[0], 1);
}

static void render_break(const json_t *r)
{
	const char *kind = esc_member(r, "kind");

	out_printf("%s %lld",
		   json_is_true(json_object_get(r, "temporary")) ? "Temporary breakpoint"
								 : "Breakpoint",
		   json_int_member(r, "id", 0));
	if (!strcmp(kind, "rss")) {
		struct strbuf sb = STRBUF_INIT;

		sb_adds(&sb, ": when RSS > ");
		sb_add_bytes(&sb, (uint64_t)json_int_member(r, "threshold", 0));
		sb_adds(&sb, " (now ");
		sb_add_bytes(&sb, (uint64_t)json_int_member(r, "rss", 0));
		sb_adds(&sb, ")");
		out_printf("%s\n", sb_str(&sb));
		if (!json_is_true(json_object_get(r, "armed")))
			out_printf(
			    "RSS is already above it: the breakpoint fires when RSS comes back "
			    "below and crosses it again.\n");
		sb_release(&sb);
		return;
	}
	out_printf(" at %s:%lld in %s", esc_member(r, "file"), json_int_member(r, "line", 0),
		   esc_member(r, "function"));
	if (json_object_get(r, "condition"))
		out_printf(" if %s", esc_member(r, "condition"));
	out_printf("\n");
}

/* ----- delete, disable, enable, condition ----- */

static int parse_bp_id(struct cmd_ctx *ctx, const char *arg, int *id)
{
	uint64_t v;

	if (parse_u64(arg, &v) < 0 || !v || v > INT32_MAX)
		return cmd_usage_error(ctx->cmd, "not a breakpoint number: \"%s\"", esc(arg));
	*id = (int)v;
	return 0;
}

static int cmd_delete(struct cmd_ctx *ctx, int argc, char **argv)
{
	json_t *ids = json_array();
	int id;

	if (!argc) {
		/* gdb's delete with no argument: all of them */
		while (ctx->s->bps.n) {
			id = ctx->s->bps.v[0].id;
			json_array_append_new(ids, json_integer(id));
			if (bp_delete(ctx->s, id) < 0) {
				json_decref(ids);
				return -1;
			}
		}
	}
	for (int i = 0; i < argc; i++) {
		if (parse_bp_id(ctx, argv[i], &id) < 0 || bp_delete(ctx->s, id) < 0) {
			json_decref(ids);
			return -1;
		}
		json_array_append_new(ids, json_integer(id));
	}
	json_object_set_new(out_result(), "deleted", ids);
	return 0;
}

static void render_delete(const json_t *r)
{
	size_t n = json_array_size(json_object_get(r, "deleted"));

	out_printf("Deleted %zu breakpoint%s.\n", n, n == 1 ? "" : "s");
}

static int enable_cmd(struct cmd_ctx *ctx, int argc, char **argv, int on)
{
	json_t *ids = json_array();
	int id;

	for (int i = 0; i < argc; i++) {
		if (parse_bp_id(ctx, argv[i], &id) < 0 || bp_enable(ctx->s, id, on) < 0) {
			json_decref(ids);
			return -1;
		}
		json_array_append_new(ids, json_integer(id));
	}
	json_object_set_new(out_result(), on ? "enabled" : "disabled", ids);
	return 0;
}

static void render_enable(const json_t *r)
{
	const json_t *ids = json_object_get(r, "enabled"), *id;
	const char *what = "enabled";
	size_t i;

	if (!ids) {
		ids = json_object_get(r, "disabled");
		what = "disabled";
	}
	json_array_foreach (ids, i, id)
		out_printf("Breakpoint %lld %s.\n", json_integer_value(id), what);
}

static int cmd_enable(struct cmd_ctx *ctx, int argc, char **argv)
{
	return enable_cmd(ctx, argc, argv, 1);
}

static int cmd_disable(struct cmd_ctx *ctx, int argc, char **argv)
{
	return enable_cmd(ctx, argc, argv, 0);
}

static int cmd_condition(struct cmd_ctx *ctx, int argc, char **argv)
{
	const char *rest;
	char *num;
	int id, r;

	(void)argc;
	/* the raw rest of the line: "N EXPR", or "N" alone to remove the condition */
	rest = argv[0];
	num = xstrndup(rest, strcspn(rest, " \t"));
	r = parse_bp_id(ctx, num, &id);
	free(num);
	if (r < 0)
		return -1;
	rest += strcspn(rest, " \t");
	rest += strspn(rest, " \t");
	if (bp_condition(ctx->s, id, *rest ? rest : NULL) < 0)
		return -1;
	json_object_set_new(out_result(), "id", json_integer(id));
	json_object_set_new(out_result(), "condition", *rest ? json_string(rest) : json_null());
	return 0;
}

static void render_condition(const json_t *r)
{
	if (json_is_string(json_object_get(r, "condition")))
		out_printf("Breakpoint %lld stops only if %s.\n", json_int_member(r, "id", 0),
			   esc_member(r, "condition"));
	else
		out_printf("Breakpoint %lld is now unconditional.\n", json_int_member(r, "id", 0));
}

/* ----- info breakpoints ----- */

int cmd_info_breakpoints(struct cmd_ctx *ctx, int argc, char **argv)
{
	json_t *arr = json_array();

	(void)argc;
	(void)argv;
	for (size_t i = 0; i < ctx->s->bps.n; i++) {
		const struct breakpoint *bp = &ctx->s->bps.v[i];
		json_t *o = json_object();

		json_object_set_new(o, "id", json_integer(bp->id));
		json_object_set_new(o, "kind",
				    json_string(bp->kind == BP_RSS    ? "rss"
						: bp->kind == BP_LINE ? "line"
								      : "function"));
		json_object_set_new(o, "enabled", json_boolean(bp->enabled));
		json_object_set_new(o, "temporary", json_boolean(bp->temporary));
		json_object_set_new(o, "hits", json_integer((json_int_t)bp->hits));
		json_object_set_new(o, "spec", json_string(bp->spec));
		if (bp->kind == BP_RSS) {
			json_object_set_new(o, "threshold",
					    json_integer((json_int_t)bp->threshold));
			json_object_set_new(o, "armed", json_boolean(bp->rss_armed));
		} else {
			json_object_set_new(o, "file", json_target_cstr(bp->file));
			json_object_set_new(o, "line", json_integer(bp->line));
			json_object_set_new(o, "function", json_target_cstr(bp->function));
		}
		if (bp->cond)
			json_object_set_new(o, "condition", json_string(bp->cond));
		json_array_append_new(arr, o);
	}
	json_object_set_new(out_result(), "breakpoints", arr);
	return 0;
}

void render_info_breakpoints(const json_t *r)
{
	const json_t *arr = json_object_get(r, "breakpoints"), *b;
	size_t i;

	if (!json_array_size(arr)) {
		out_printf("No breakpoints.\n");
		return;
	}
	out_printf("%-4s %-8s %-5s %-4s %6s  %s\n", "NUM", "TYPE", "DISP", "ENB", "HITS", "WHAT");
	json_array_foreach (arr, i, b) {
		struct strbuf what = STRBUF_INIT;

		if (!strcmp(esc_member(b, "kind"), "rss")) {
			sb_adds(&what, "rss > ");
			sb_add_bytes(&what, (uint64_t)json_int_member(b, "threshold", 0));
			if (!json_is_true(json_object_get(b, "armed")))
				sb_adds(&what, " (re-arms below it)");
		} else {
			sb_addf(&what, "%s at %s:%lld", esc_member(b, "function"),
				esc_member(b, "file"), json_int_member(b, "line", 0));
		}
		if (json_object_get(b, "condition"))
			sb_addf(&what, " if %s", esc_member(b, "condition"));
		out_printf("%-4lld %-8s %-5s %-4s %6lld  %s\n", json_int_member(b, "id", 0),
			   esc_member(b, "kind"),
			   json_is_true(json_object_get(b, "temporary")) ? "del" : "keep",
			   json_is_true(json_object_get(b, "enabled")) ? "y" : "n",
			   json_int_member(b, "hits", 0), sb_str(&what));
		sb_release(&what);
	}
}

/* ----- iter ----- */

static void render_iteration(const json_t *line);

/* The growth census at a stop, through the agent. */
static int census(struct cmd_ctx *ctx, int mark, json_t **reply)
{
	struct agent_args a;
	struct agent *ag;

	if (session_agent(ctx->s, &ag) < 0)
		return -1;
	agent_args_init(&a, "growth");
	agent_arg_int(&a, GROWTH_ALL);
	agent_arg_int(&a, 0);
	agent_arg_int(&a, mark);
	agent_arg_int(&a, 0);
	agent_arg_str(&a, "iter", 4); /* a baseline of its own: growth's stays where it was */
	if (agent_call(ag, &a, reply) < 0) {
		agent_args_release(&a);
		return -1;
	}
	agent_args_release(&a);
	return 0;
}

struct until {
	int kind; /* 0 none, 1 rss > N, 2 growth TYPE > N */
	uint64_t rss;
	char *type;
	long long count;
};

static int parse_until(struct cmd_ctx *ctx, char **argv, int argc, int *i, struct until *u)
{
	/* "--until rss > 2G" or "--until growth Item > 0" */
	if (*i + 1 >= argc)
		return cmd_usage_error(ctx->cmd, "--until needs a condition");
	if (!strcmp(argv[*i + 1], "rss")) {
		struct strbuf spec = STRBUF_INIT;
		enum bp_rss_mode mode;
		int r;

		for (int j = *i + 1; j < argc && j < *i + 4; j++)
			sb_addf(&spec, "%s%s", j > *i + 1 ? " " : "", argv[j]);
		r = bp_parse_rss(sb_str(&spec), &mode, &u->rss);
		sb_release(&spec);
		if (r <= 0 || mode != RSS_ABOVE)
			return r < 0 ? -1
				     : cmd_usage_error(ctx->cmd, "expected --until rss > SIZE");
		u->kind = 1;
		*i += 3;
		return 0;
	}
	if (!strcmp(argv[*i + 1], "growth") && *i + 4 < argc && !strcmp(argv[*i + 3], ">")) {
		uint64_t v;

		if (parse_u64(argv[*i + 4], &v) < 0)
			return cmd_usage_error(ctx->cmd, "not a count: \"%s\"", esc(argv[*i + 4]));
		u->kind = 2;
		u->type = argv[*i + 2];
		u->count = (long long)v;
		*i += 4;
		return 0;
	}
	return cmd_usage_error(ctx->cmd, "--until takes 'rss > SIZE' or 'growth TYPE > N'");
}

/* A growth row matches a type the user named: the qualified name, or its last part. */
static int type_matches(const char *qualified, const char *want)
{
	const char *dot = strrchr(qualified, '.');

	return !strcmp(qualified, want) || (dot && !strcmp(dot + 1, want));
}

/* The id of the only enabled source breakpoint; 0 if there is none, -1 if several. */
static int sole_source_breakpoint(struct session *s)
{
	int id = 0;

	for (size_t i = 0; i < s->bps.n; i++) {
		const struct breakpoint *bp = &s->bps.v[i];

		if (bp->kind == BP_RSS || !bp->enabled)
			continue;
		if (id)
			return -1;
		id = bp->id;
	}
	return id;
}

/* Run until breakpoint id fires, or something else stops the target (not another breakpoint). */
static int run_to(struct session *s, int id, struct stop_info *st)
{
	for (;;) {
		if (bp_run(s, -1, st) < 0)
			return -1;
		if (st->kind != STOPPED_BREAK || st->bp_id == id)
			return 0;
		/* another breakpoint: iter goes on to its own */
		json_decref(st->hit);
	}
}

static int cmd_iter(struct cmd_ctx *ctx, int argc, char **argv)
{
	struct session *s = ctx->s;
	struct until until = {0};
	uint64_t n = ITER_DEFAULT;
	json_t *r = out_result(), *iterations = json_array(), *reply = NULL;
	int target_bp = s->bps.last_hit_id, have_n = 0, sigints = task_sigint_count();

	for (int i = 0; i < argc; i++) {
		if (!strcmp(argv[i], "--until")) {
			if (parse_until(ctx, argv, argc, &i, &until) < 0)
				goto fail;
		} else if (!have_n && parse_u64(argv[i], &n) == 0 && n && n <= ITER_MAX) {
			have_n = 1;
		} else {
			cmd_usage_error(ctx->cmd, "unexpected \"%s\"", esc(argv[i]));
			goto fail;
		}
	}
	if (until.kind && !have_n)
		n = ITER_MAX;
	if (!target_bp || !bp_find(&s->bps, target_bp)) {
		/* not standing at a breakpoint: run to the only source breakpoint there is */
		struct stop_info st;

		target_bp = sole_source_breakpoint(s);
		if (target_bp <= 0) {
			error(target_bp < 0
				  ? "iter steps from one hit of a source breakpoint to the "
				    "next, and there are several: 'continue' to the one "
				    "to step first"
				  : "iter steps from one hit of a source breakpoint to the "
				    "next; set one with 'break FILE:LINE' first");
			goto fail;
		}
		if (run_to(s, target_bp, &st) < 0)
			goto fail;
		json_object_set_new(r, "start", cmd_describe_stop(s, &st));
		json_decref(st.hit);
		if (st.kind != STOPPED_BREAK)
			goto done;
		out_event(json_incref(json_object_get(r, "start")), render_stop);
	}
	/* the baseline: the heap as it is at this stop */
	if (census(ctx, 0, &reply) < 0)
		goto fail;
	json_decref(reply);
	for (uint64_t k = 1; k <= n; k++) {
		struct stop_info st;
		json_t *line, *rows, *row, *top;
		size_t i;
		int done = 0;

		if (run_to(s, target_bp, &st) < 0)
			goto fail;
		if (st.kind != STOPPED_BREAK) {
			json_t *stop = cmd_describe_stop(s, &st);

			json_object_set_new(r, "stop", stop);
			json_decref(st.hit);
			break;
		}
		json_decref(st.hit);
		if (census(ctx, 1, &reply) < 0)
			goto fail;
		line = json_object();
		json_object_set_new(line, "iteration", json_integer((json_int_t)k));
		json_object_set_new(line, "rss", json_integer((json_int_t)st.rss));
		json_object_set_new(
		    line, "rss_change",
		    json_integer((json_int_t)st.rss - (json_int_t)s->last_stop_rss));
		s->last_stop_rss = st.rss;
		rows = json_object_get(reply, "rows");
		top = json_array();
		json_array_foreach (rows, i, row) {
			if (i < ITER_GROWTH_TYPES)
				json_array_append(top, row);
			if (until.kind == 2 &&
			    type_matches(json_string_value(json_object_get(row, "type")),
					 until.type) &&
			    json_int_member(row, "delta", 0) > until.count)
				done = 1;
		}
		json_object_set_new(line, "growth", top);
		json_object_set_new(line, "types_grown",
				    json_integer((json_int_t)json_array_size(rows)));
		json_decref(reply);
		if (until.kind == 1 && st.rss > until.rss)
			done = 1;
		out_event(json_incref(line), render_iteration);
		json_array_append_new(iterations, line);
		if (done)
			break;
		/* Ctrl-C outside the run to the breakpoint (a census call only asks) ends it too */
		if (task_take_sigint() || task_sigint_count() != sigints) {
			struct stop_info intr = {.kind = STOPPED_INTERRUPT};

			json_object_set_new(r, "stop", cmd_describe_stop(s, &intr));
			break;
		}
	}
done:
	json_object_set_new(r, "iterations", iterations);
	json_object_set_new(r, "breakpoint", json_integer(target_bp));
	return 0;
fail:
	json_decref(iterations);
	return -1;
}

static void render_iteration(const json_t *line)
{
	const json_t *rows = json_object_get(line, "growth"), *row;
	struct strbuf sb = STRBUF_INIT;
	size_t i;

	sb_addf(&sb, "iteration %lld  rss ", json_int_member(line, "iteration", 0));
	sb_add_bytes(&sb, (uint64_t)json_int_member(line, "rss", 0));
	sb_adds(&sb, " (");
	sb_add_bytes_delta(&sb, json_int_member(line, "rss_change", 0));
	sb_adds(&sb, ")");
	json_array_foreach (rows, i, row) {
		const char *type = esc_member(row, "type");
		const char *dot = strrchr(type, '.');

		sb_addf(&sb, "  %+lld %s", json_int_member(row, "delta", 0), dot ? dot + 1 : type);
	}
	if (!json_array_size(rows))
		sb_adds(&sb, "  no type grew");
	out_printf("%s\n", sb_str(&sb));
	sb_release(&sb);
}

static void render_iter(const json_t *r)
{
	const json_t *start = json_object_get(r, "start");
	const char *why = json_string_value(json_object_get(start, "stopped"));

	/* the run to the breakpoint ended elsewhere (a hit was already shown as it came) */
	if (why && strcmp(why, "breakpoint"))
		render_stop(start);
	if (json_object_get(r, "stop"))
		render_stop(json_object_get(r, "stop"));
}

/* ----- set ----- */

static int cmd_set(struct cmd_ctx *ctx, int argc, char **argv)
{
	uint64_t us;

	(void)argc;
	if (parse_duration_us(argv[1], &us) < 0 || !us)
		return cmd_usage_error(ctx->cmd, "not a duration: \"%s\" (100us, 5ms, 2s)",
				       esc(argv[1]));
	if (!strcmp(argv[0], "rss-interval")) {
		ctx->s->bps.rss_interval_us = us;
	} else if (!strcmp(argv[0], "call-timeout")) {
		ctx->s->agent.ij.call_timeout_us = (int64_t)us;
	} else if (!strcmp(argv[0], "safepoint-timeout")) {
		ctx->s->agent.ij.safepoint_timeout_us = (int64_t)us;
	} else {
		return cmd_usage_error(ctx->cmd, "no setting \"%s\"", esc(argv[0]));
	}
	json_object_set_new(out_result(), "setting", json_string(argv[0]));
	json_object_set_new(out_result(), "microseconds", json_integer((json_int_t)us));
	return 0;
}

static void render_set(const json_t *r)
{
	out_printf("%s = %lld us\n", esc_member(r, "setting"),
		   json_int_member(r, "microseconds", 0));
}

static const char *const set_words[] = {"rss-interval", "call-timeout", "safepoint-timeout", NULL};

const struct cmd cmd_break_cmds[] = {
    {
	.name = "break",
	.usage = "break FILE:LINE [if EXPR] | FUNCTION [if EXPR] | when rss > SIZE",
	.summary = "stop when a line runs, a function is called, or RSS crosses a size",
	.help = "break app.py:42            stop when line 42 of app.py runs (any thread)\n"
		"break app.py:42 if n > 10  ... when the Python condition holds in that frame;\n"
		"                           `rss` in it is the RSS in bytes\n"
		"break Worker.sync_items    stop when the function is called\n"
		"break when rss > 2G        stop the moment RSS crosses 2 GiB (also: rss > 500M,\n"
		"                           rss +100M from now, rss > 80% of the memory limit)\n"
		"RSS is watched from outside, with no hook in the target; line breakpoints use\n"
		"sys.monitoring on 3.12+ (unwatched code runs at full speed), a trace function\n"
		"that declines unwatched frames before.",
	.min_args = 1,
	.max_args = 1,
	.flags = CMD_NEEDS_TARGET | CMD_RAW_ARGS,
	.fn = cmd_break,
	.render = render_break,
    },
    {
	.name = "tbreak",
	.usage = "tbreak FILE:LINE [if EXPR] | FUNCTION [if EXPR] | when rss > SIZE",
	.summary = "a breakpoint that is deleted when it first fires",
	.min_args = 1,
	.max_args = 1,
	.flags = CMD_NEEDS_TARGET | CMD_RAW_ARGS,
	.fn = cmd_tbreak,
	.render = render_break,
    },
    {
	.name = "delete",
	.usage = "delete [N...]",
	.summary = "delete breakpoints (all of them without an argument)",
	.max_args = -1,
	.flags = CMD_NEEDS_TARGET,
	.fn = cmd_delete,
	.render = render_delete,
    },
    {
	.name = "disable",
	.usage = "disable N...",
	.summary = "keep breakpoints but stop them firing",
	.min_args = 1,
	.max_args = -1,
	.flags = CMD_NEEDS_TARGET,
	.fn = cmd_disable,
	.render = render_enable,
    },
    {
	.name = "enable",
	.usage = "enable N...",
	.summary = "let disabled breakpoints fire again",
	.min_args = 1,
	.max_args = -1,
	.flags = CMD_NEEDS_TARGET,
	.fn = cmd_enable,
	.render = render_enable,
    },
    {
	.name = "condition",
	.usage = "condition N [EXPR]",
	.summary = "make source breakpoint N conditional on EXPR (none: unconditional)",
	.min_args = 1,
	.max_args = 1,
	.flags = CMD_NEEDS_PYTHON | CMD_RAW_ARGS,
	.fn = cmd_condition,
	.render = render_condition,
    },
    {
	.name = "iter",
	.usage = "iter [N] [--until rss > SIZE | --until growth TYPE > N]",
	.summary = "run the loop N more times to the same breakpoint; growth per iteration",
	.help = "From a stop at a source breakpoint, continues to the same breakpoint N times\n"
		"(default 1) and prints one line per iteration: the RSS, its change, and the\n"
		"types whose instance count grew, exactly, between two consecutive stops.\n"
		"'growth --since-iteration' shows the whole table of the last iteration.",
	.max_args = -1,
	.flags = CMD_NEEDS_PYTHON | CMD_REPEATS,
	.fn = cmd_iter,
	.render = render_iter,
    },
    {
	.name = "set",
	.usage = "set rss-interval|call-timeout|safepoint-timeout DURATION",
	.summary = "how often RSS is polled, how long calls and safe points may take",
	.min_args = 2,
	.max_args = 2,
	.flags = 0,
	.fn = cmd_set,
	.render = render_set,
	.arg_words = set_words,
    },
    {0},
};

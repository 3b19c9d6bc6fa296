// SPDX-License-Identifier: GPL-3.0-or-later
/*
 * cmd-heap: gc, top, growth, cycles, tracemalloc, trim, eval, exec: the
 * commands that run pyleakdb's agent inside the target, at a safe point.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd.h"
#include "procfs.h"

#define TOP_DEFAULT		   20
#define GROWTH_DEFAULT		   20
#define CYCLES_DEFAULT		   10
#define TRACEMALLOC_FRAMES_DEFAULT 1
#define TRACEMALLOC_TOP_DEFAULT	   10
#define REPR_LIMIT		   400
#define COUNT_MAX		   100000

/* Options of the form --name VALUE or --flag, after the positional arguments. */
struct opts {
	long long n; /* the positional count, or -1 */
	int collect;
	int since_iteration;
	const char *by;
	long long sample;
};

static int parse_count(const struct cmd *c, const char *s, long long *out)
{
	uint64_t v;

	if (parse_u64(s, &v) < 0 || v == 0 || v > COUNT_MAX)
		return cmd_usage_error(c, "not a count (1 to %d): \"%s\"", COUNT_MAX, esc(s));
	*out = (long long)v;
	return 0;
}

static int parse_opts(const struct cmd *c, int argc, char **argv, struct opts *o)
{
	o->n = -1;
	o->collect = 0;
	o->since_iteration = 0;
	o->by = "count";
	o->sample = 0;
	for (int i = 0; i < argc; i++) {
		const char *a = argv[i];

		if (!strcmp(a, "--collect")) {
			o->collect = 1;
		} else if (!strcmp(a, "--since-iteration")) {
			o->since_iteration = 1;
		} else if (!strcmp(a, "--by") || !strncmp(a, "--by=", 5)) {
			const char *v = a[4] == '=' ? a + 5 : (i + 1 < argc ? argv[++i] : NULL);

			if (!v || (strcmp(v, "count") && strcmp(v, "size")))
				return cmd_usage_error(c, "--by takes count or size");
			o->by = v;
		} else if (!strcmp(a, "--sample") || !strncmp(a, "--sample=", 9)) {
			const char *v = a[8] == '=' ? a + 9 : (i + 1 < argc ? argv[++i] : NULL);

			if (!v)
				return cmd_usage_error(c, "--sample needs a count");
			if (parse_count(c, v, &o->sample) < 0)
				return -1;
		} else if (a[0] == '-' && a[1] == '-') {
			return cmd_usage_error(c, "unknown option \"%s\"", esc(a));
		} else if (o->n < 0) {
			if (parse_count(c, a, &o->n) < 0)
				return -1;
		} else {
			return cmd_usage_error(c, "unexpected \"%s\"", esc(a));
		}
	}
	return 0;
}

static void progress(void *arg, const char *what, double seconds)
{
	(void)arg;
	out_progress(what, seconds);
}

static int heap_agent(struct cmd_ctx *ctx, struct agent **ag)
{
	if (session_agent(ctx->s, ag) < 0)
		return -1;
	(*ag)->ij.progress = progress;
	return 0;
}

/* Run an agent function; the reply's members are copied into the command's result. */
static int agent_into_result(struct cmd_ctx *ctx, struct agent_args *a)
{
	struct agent *ag;
	json_t *reply;
	int r;

	if (heap_agent(ctx, &ag) < 0) {
		agent_args_release(a);
		return -1;
	}
	r = agent_call(ag, a, &reply);
	agent_args_release(a);
	if (r < 0)
		return -1;
	json_object_update(out_result(), reply);
	json_object_set_new(out_result(), "safe_point", json_string(ag->last.where));
	json_decref(reply);
	return 0;
}

static void add_rss(const char *key, pid_t pid)
{
	uint64_t rss;

	if (proc_rss(pid, &rss) == 0)
		json_object_set_new(out_result(), key, json_integer((json_int_t)rss));
}

static void render_rss_change(const json_t *r)
{
	long long before = json_int_member(r, "rss_before", -1),
		  after = json_int_member(r, "rss_after", -1);
	struct strbuf sb = STRBUF_INIT;

	if (before < 0 || after < 0)
		return;
	sb_add_bytes(&sb, (uint64_t)before);
	sb_adds(&sb, " -> ");
	sb_add_bytes(&sb, (uint64_t)after);
	sb_adds(&sb, " (");
	sb_add_bytes_delta(&sb, after - before);
	sb_adds(&sb, ")");
	out_printf("RSS %s\n", sb_str(&sb));
	sb_release(&sb);
}

/* ----- gc ----- */

static int cmd_gc(struct cmd_ctx *ctx, int argc, char **argv)
{
	struct agent_args a;
	uint64_t gen = 0;

	if (argc && (parse_u64(argv[0], &gen) < 0 || gen > 2))
		return cmd_usage_error(ctx->cmd, "a generation is 0, 1 or 2");
	add_rss("rss_before", ctx->s->task.pid);
	agent_args_init(&a, "collect");
	if (argc)
		agent_arg_int(&a, (long long)gen);
	else
		agent_arg_none(&a);
	if (agent_into_result(ctx, &a) < 0)
		return -1;
	add_rss("rss_after", ctx->s->task.pid);
	return 0;
}

static void render_gc(const json_t *r)
{
	const json_t *gens = json_object_get(r, "generations"), *g;
	size_t i;

	out_printf("gc: %lld unreachable objects found", json_int_member(r, "unreachable", 0));
	if (json_int_member(r, "new_garbage", 0))
		out_printf(", %lld uncollectable (now in gc.garbage, %lld in all)",
			   json_int_member(r, "new_garbage", 0), json_int_member(r, "garbage", 0));
	out_printf("\n  %-10s %10s %14s\n", "generation", "collected", "uncollectable");
	json_array_foreach (gens, i, g) {
		if (!json_int_member(g, "collections", 0))
			continue;
		out_printf("  %-10lld %10lld %14lld\n", json_int_member(g, "generation", 0),
			   json_int_member(g, "collected", 0),
			   json_int_member(g, "uncollectable", 0));
	}
	render_rss_change(r);
}

/* ----- top ----- */

static int cmd_top(struct cmd_ctx *ctx, int argc, char **argv)
{
	struct agent_args a;
	struct opts o;

	if (parse_opts(ctx->cmd, argc, argv, &o) < 0)
		return -1;
	if (o.collect)
		return cmd_usage_error(ctx->cmd, "top does not collect; run 'gc' first");
	agent_args_init(&a, "top");
	agent_arg_int(&a, o.n > 0 ? o.n : TOP_DEFAULT);
	agent_arg_str(&a, o.by, strlen(o.by));
	agent_arg_int(&a, o.sample);
	return agent_into_result(ctx, &a);
}

static void render_samples(const json_t *row)
{
	const json_t *samples = json_object_get(row, "samples"), *s;
	size_t i;

	json_array_foreach (samples, i, s) {
		struct strbuf sz = STRBUF_INIT;

		sb_add_bytes(&sz, (uint64_t)json_int_member(s, "size", 0));
		out_printf("      $%-4lld %#llx  %9s  %s\n", json_int_member(s, "handle", 0),
			   json_int_member(s, "address", 0), sb_str(&sz), esc_member(s, "repr"));
		sb_release(&sz);
	}
}

static int name_width(const json_t *rows, int min)
{
	const json_t *row;
	size_t i;
	int w = min;

	json_array_foreach (rows, i, row) {
		int len = (int)strlen(esc_member(row, "type"));

		if (len > w)
			w = len;
	}
	return w > 60 ? 60 : w;
}

static void render_top(const json_t *r)
{
	const json_t *rows = json_object_get(r, "rows"), *row;
	size_t i;
	int w = name_width(rows, 20);

	out_printf("%-*s %10s %12s\n", w, "TYPE", "COUNT", "SIZE");
	json_array_foreach (rows, i, row) {
		struct strbuf sz = STRBUF_INIT;

		sb_add_bytes(&sz, (uint64_t)json_int_member(row, "size", 0));
		out_printf("%-*s %10lld %12s\n", w, esc_member(row, "type"),
			   json_int_member(row, "count", 0), sb_str(&sz));
		sb_release(&sz);
		render_samples(row);
	}
	out_printf("(%lld objects of %lld types tracked by the collector; sizes are shallow)\n",
		   json_int_member(r, "objects", 0), json_int_member(r, "types", 0));
}

/* ----- growth ----- */

static int cmd_growth(struct cmd_ctx *ctx, int argc, char **argv)
{
	struct agent_args a;
	struct opts o;

	if (parse_opts(ctx->cmd, argc, argv, &o) < 0)
		return -1;
	if (o.since_iteration) {
		agent_args_init(&a, "last_iteration");
		agent_arg_int(&a, o.n > 0 ? o.n : GROWTH_DEFAULT);
		return agent_into_result(ctx, &a);
	}
	agent_args_init(&a, "growth");
	agent_arg_int(&a, o.n > 0 ? o.n : GROWTH_DEFAULT);
	agent_arg_int(&a, o.collect);
	agent_arg_int(&a, 0);
	agent_arg_int(&a, o.sample);
	return agent_into_result(ctx, &a);
}

static void render_growth(const json_t *r)
{
	const json_t *rows = json_object_get(r, "rows"), *row;
	size_t i;
	int w = name_width(rows, 20);

	if (json_is_true(json_object_get(r, "first")))
		out_printf("(first look at this heap: every type counts as growth)\n");
	json_array_foreach (rows, i, row) {
		out_printf("%-*s %10lld %+10lld\n", w, esc_member(row, "type"),
			   json_int_member(row, "count", 0), json_int_member(row, "delta", 0));
		render_samples(row);
	}
	if (!json_array_size(rows))
		out_printf("no type grew\n");
	else if (json_int_member(r, "grew", 0) > (long long)json_array_size(rows))
		out_printf("(%lld types grew; showing %zu)\n", json_int_member(r, "grew", 0),
			   json_array_size(rows));
}

/* ----- cycles ----- */

static int cmd_cycles(struct cmd_ctx *ctx, int argc, char **argv)
{
	struct agent_args a;
	struct opts o;

	if (parse_opts(ctx->cmd, argc, argv, &o) < 0)
		return -1;
	add_rss("rss_before", ctx->s->task.pid);
	agent_args_init(&a, "cycles");
	agent_arg_int(&a, o.n > 0 ? o.n : CYCLES_DEFAULT);
	agent_arg_int(&a, o.sample ? o.sample : 3);
	return agent_into_result(ctx, &a);
}

static void render_cycles(const json_t *r)
{
	const json_t *rows = json_object_get(r, "rows"), *row;
	size_t i;
	int w = name_width(rows, 20);

	if (!json_int_member(r, "objects", 0)) {
		out_printf("no cyclic garbage: every object is reachable or freed by reference "
			   "counting\n");
		return;
	}
	out_printf("%lld objects in unreachable cycles (only the cycle collector frees them):\n",
		   json_int_member(r, "objects", 0));
	json_array_foreach (rows, i, row) {
		const json_t *samples = json_object_get(row, "samples"), *s;
		size_t j;

		out_printf("  %-*s %10lld\n", w, esc_member(row, "type"),
			   json_int_member(row, "count", 0));
		json_array_foreach (samples, j, s) {
			out_printf("      %#llx  %s\n", json_int_member(s, "address", 0),
				   esc_member(s, "repr"));
		}
	}
}

/* ----- tracemalloc ----- */

static int cmd_tm_start(struct cmd_ctx *ctx, int argc, char **argv)
{
	struct agent_args a;
	long long n = TRACEMALLOC_FRAMES_DEFAULT;

	if (argc && parse_count(ctx->cmd, argv[0], &n) < 0)
		return -1;
	agent_args_init(&a, "tm_start");
	agent_arg_int(&a, n);
	return agent_into_result(ctx, &a);
}

static void render_tm_start(const json_t *r)
{
	if (json_is_true(json_object_get(r, "already")))
		out_printf("tracemalloc was already tracing (%lld frames); pyleakdb will leave it "
			   "on\n",
			   json_int_member(r, "nframes", 1));
	else
		out_printf(
		    "tracemalloc started (%lld frame%s); new allocations are traced from now "
		    "on\n",
		    json_int_member(r, "nframes", 1),
		    json_int_member(r, "nframes", 1) == 1 ? "" : "s");
}

static int tm_top(struct cmd_ctx *ctx, int argc, char **argv, int diff)
{
	struct agent_args a;
	long long n = TRACEMALLOC_TOP_DEFAULT;

	if (argc && parse_count(ctx->cmd, argv[0], &n) < 0)
		return -1;
	agent_args_init(&a, "tm_top");
	agent_arg_int(&a, n);
	agent_arg_int(&a, diff);
	return agent_into_result(ctx, &a);
}

static int cmd_tm_top(struct cmd_ctx *ctx, int argc, char **argv)
{
	return tm_top(ctx, argc, argv, 0);
}

static int cmd_tm_diff(struct cmd_ctx *ctx, int argc, char **argv)
{
	return tm_top(ctx, argc, argv, 1);
}

/* tracemalloc's own shape: "file:line: size=3167 KiB (+3167 KiB), count=6001 (+6000), average=540
 * B" */
static void render_tm_top(const json_t *r)
{
	const json_t *rows = json_object_get(r, "rows"), *row;
	int diff = json_is_true(json_object_get(r, "diff"));
	size_t i;

	json_array_foreach (rows, i, row) {
		struct strbuf sb = STRBUF_INIT;
		long long size = json_int_member(row, "size", 0),
			  count = json_int_member(row, "count", 0);

		sb_addf(&sb, "%s:%lld: size=", esc_member(row, "file"),
			json_int_member(row, "line", 0));
		sb_add_bytes(&sb, (uint64_t)size);
		if (diff) {
			sb_adds(&sb, " (");
			sb_add_bytes_delta(&sb, json_int_member(row, "size_diff", 0));
			sb_adds(&sb, ")");
		}
		sb_addf(&sb, ", count=%lld", count);
		if (diff)
			sb_addf(&sb, " (%+lld)", json_int_member(row, "count_diff", 0));
		if (count) {
			sb_adds(&sb, ", average=");
			sb_add_bytes(&sb, (uint64_t)(size / count));
		}
		out_printf("%s\n", sb_str(&sb));
		sb_release(&sb);
	}
	if (!json_array_size(rows))
		out_printf(diff ? "no change since the previous snapshot\n"
				: "no traced allocations yet\n");
}

static int cmd_tm_stop(struct cmd_ctx *ctx, int argc, char **argv)
{
	struct agent_args a;

	(void)argc;
	(void)argv;
	agent_args_init(&a, "tm_stop");
	return agent_into_result(ctx, &a);
}

static void render_tm_stop(const json_t *r)
{
	if (!json_is_true(json_object_get(r, "was_tracing")))
		out_printf("tracemalloc was not tracing\n");
	else
		out_printf("tracemalloc stopped; its traces are freed\n");
}

static const struct cmd tracemalloc_cmds[] = {
    {
	.name = "start",
	.usage = "tracemalloc start [NFRAMES]",
	.summary = "start tracing allocations, keeping NFRAMES frames (default 1)",
	.max_args = 1,
	.flags = CMD_NEEDS_PYTHON,
	.fn = cmd_tm_start,
	.render = render_tm_start,
    },
    {
	.name = "top",
	.usage = "tracemalloc top [N]",
	.summary = "the N allocation sites holding the most memory now",
	.max_args = 1,
	.flags = CMD_NEEDS_PYTHON,
	.fn = cmd_tm_top,
	.render = render_tm_top,
    },
    {
	.name = "diff",
	.usage = "tracemalloc diff [N]",
	.summary = "the N sites that changed most since the previous top or diff",
	.max_args = 1,
	.flags = CMD_NEEDS_PYTHON,
	.fn = cmd_tm_diff,
	.render = render_tm_top,
    },
    {
	.name = "stop",
	.usage = "tracemalloc stop",
	.summary = "stop tracing and free the traces",
	.max_args = 0,
	.flags = CMD_NEEDS_PYTHON,
	.fn = cmd_tm_stop,
	.render = render_tm_stop,
    },
    {0},
};

/* ----- trim ----- */

static int cmd_trim(struct cmd_ctx *ctx, int argc, char **argv)
{
	struct agent *ag;
	uint64_t arg = 0, released;

	(void)argc;
	(void)argv;
	if (heap_agent(ctx, &ag) < 0)
		return -1;
	if (!ag->api_ok && pyapi_resolve(&ag->api, ag->pi) == 0)
		ag->api_ok = 1;
	if (!ag->api.malloc_trim)
		return error("the target has no malloc_trim (not glibc's malloc)");
	add_rss("rss_before", ctx->s->task.pid);
	if (agent_call_native(ag, ag->api.malloc_trim, &arg, 1, &released) < 0)
		return -1;
	add_rss("rss_after", ctx->s->task.pid);
	json_object_set_new(out_result(), "released", json_boolean((int)released != 0));
	json_object_set_new(out_result(), "safe_point", json_string(ag->last.where));
	return 0;
}

static void render_trim(const json_t *r)
{
	out_printf("malloc_trim(0): %s\n", json_is_true(json_object_get(r, "released"))
					       ? "memory was given back to the system"
					       : "nothing to give back");
	render_rss_change(r);
}

/* ----- eval, exec ----- */

static int run_python(struct cmd_ctx *ctx, const char *src, const char *mode)
{
	struct agent_args a;
	const json_t *raised;

	agent_args_init(&a, "run");
	agent_arg_str(&a, src, strlen(src));
	agent_arg_str(&a, mode, strlen(mode));
	agent_arg_int(&a, REPR_LIMIT);
	if (agent_into_result(ctx, &a) < 0)
		return -1;
	/* an exception in the user's code is the command's failure, shown as a traceback */
	raised = json_object_get(out_result(), "raised");
	if (!raised)
		return 0;
	if (out_json_mode()) {
		/* the record's errors say why it failed, as for every other command */
		const json_t *tb = json_object_get(raised, "traceback");
		const char *last = json_string_value(json_array_get(tb, json_array_size(tb) - 1));

		error("the %s raised %s", !strcmp(mode, "eval") ? "expression" : "statement",
		      last ? last : "an exception");
	}
	return -1;
}

static int cmd_eval(struct cmd_ctx *ctx, int argc, char **argv)
{
	(void)argc;
	return run_python(ctx, argv[0], "eval");
}

static int cmd_exec(struct cmd_ctx *ctx, int argc, char **argv)
{
	(void)argc;
	return run_python(ctx, argv[0], "exec");
}

static void render_run(const json_t *r)
{
	const json_t *raised = json_object_get(r, "raised"), *line;
	size_t i;

	if (raised) {
		json_array_foreach (json_object_get(raised, "traceback"), i, line) {
			out_printf("%s\n", esc(json_string_value(line)));
		}
		return;
	}
	if (json_object_get(r, "repr"))
		out_printf("%s\n", esc_member(r, "repr"));
}

const struct cmd cmd_heap_cmds[] = {
    {
	.name = "gc",
	.usage = "gc [GEN]",
	.summary = "run a garbage collection in the target; RSS before and after",
	.max_args = 1,
	.flags = CMD_NEEDS_PYTHON,
	.fn = cmd_gc,
	.render = render_gc,
    },
    {
	.name = "top",
	.usage = "top [N] [--by count|size] [--sample N]",
	.summary = "object census by type: count and total shallow size",
	.help = "Counts the objects the garbage collector tracks, by type (module-qualified),\n"
		"like objgraph's show_most_common_types, with their total shallow size\n"
		"(sys.getsizeof).  pyleakdb's own objects are left out.",
	.max_args = -1,
	.flags = CMD_NEEDS_PYTHON,
	.fn = cmd_top,
	.render = render_top,
    },
    {
	.name = "growth",
	.usage = "growth [N] [--collect] [--sample N] [--since-iteration]",
	.summary = "types whose instance count grew since the previous growth",
	.help = "objgraph's show_growth: TYPE  COUNT  +DELTA, biggest growth first.  The first\n"
		"call shows every type.  --collect runs a collection first (objgraph always\n"
		"does; pyleakdb does only when asked).",
	.max_args = -1,
	.flags = CMD_NEEDS_PYTHON,
	.fn = cmd_growth,
	.render = render_growth,
    },
    {
	.name = "cycles",
	.usage = "cycles [N] [--sample N]",
	.summary = "what only the cycle collector would free: types, counts, samples",
	.help = "Runs one collection with gc.DEBUG_SAVEALL to see the unreachable cycles,\n"
		"then restores the collector's flags and gc.garbage.",
	.max_args = -1,
	.flags = CMD_NEEDS_PYTHON,
	.fn = cmd_cycles,
	.render = render_cycles,
    },
    {
	.name = "tracemalloc",
	.usage = "tracemalloc start|top|diff|stop",
	.summary = "allocation sites with size and count, as tracemalloc shows them",
	.subcmds = tracemalloc_cmds,
    },
    {
	.name = "trim",
	.usage = "trim",
	.summary = "malloc_trim(0) in the target: tells a leak from fragmentation",
	.max_args = 0,
	.flags = CMD_NEEDS_PYTHON,
	.fn = cmd_trim,
	.render = render_trim,
    },
    {
	.name = "eval",
	.aliases = "p print",
	.usage = "eval EXPR",
	.summary = "evaluate a Python expression in __main__, or in the frame of a breakpoint stop",
	.min_args = 1,
	.max_args = 1,
	.flags = CMD_NEEDS_PYTHON | CMD_RAW_ARGS,
	.fn = cmd_eval,
	.render = render_run,
    },
    {
	.name = "exec",
	.usage = "exec STATEMENT",
	.summary = "execute Python statements in __main__, or in the frame of a breakpoint stop",
	.min_args = 1,
	.max_args = 1,
	.flags = CMD_NEEDS_PYTHON | CMD_RAW_ARGS,
	.fn = cmd_exec,
	.render = render_run,
    },
    {0},
};

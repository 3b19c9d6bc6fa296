// SPDX-License-Identifier: GPL-3.0-or-later
/*
 * cmd: command lookup, argument splitting, dispatch, help and completion.
 * See include/cmd.h.
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd.h"

/* The families, in the order help lists them. */
static const struct {
	const char *title;
	const struct cmd *table;
} families[] = {
    {"Running the target", cmd_target_cmds},
    {"Stacks", cmd_stack_cmds},
    {"The heap (runs pyleakdb's agent in the target at a safe point)", cmd_heap_cmds},
    {"Why is it still alive (handles, reference chains, graphs)", cmd_refs_cmds},
    {"Breakpoints", cmd_break_cmds},
    {"Memory and code", cmd_mem_cmds},
    {"Support", cmd_misc_cmds},
};

/* Every command of tbl_, or of every family when tbl_ is NULL. */
#define FOR_EACH_CMD(tbl_, c_)                                                                     \
	for (size_t f_ = 0; f_ < ((tbl_) ? 1 : ARRAY_SIZE(families)); f_++)                        \
		for (const struct cmd *c_ = (tbl_) ? (tbl_) : families[f_].table; c_->name; c_++)

static int has_alias(const struct cmd *c, const char *word)
{
	const char *a = c->aliases;
	size_t n = strlen(word);

	while (a && *a) {
		size_t len = strcspn(a, " ");

		if (len == n && !strncmp(a, word, n))
			return 1;
		a += len;
		a += strspn(a, " ");
	}
	return 0;
}

int cmd_lookup(const struct cmd *table, const char *word, const struct cmd **out)
{
	struct strbuf names = STRBUF_INIT;
	const struct cmd *found = NULL;
	size_t n = strlen(word), matches = 0;

	*out = NULL;
	/* an exact name first, then an alias, then a unique prefix */
	FOR_EACH_CMD (table, c)
		if (!strcmp(c->name, word)) {
			*out = c;
			return 0;
		}
	FOR_EACH_CMD (table, c)
		if (has_alias(c, word)) {
			*out = c;
			return 0;
		}
	FOR_EACH_CMD (table, c)
		if (!strncmp(c->name, word, n)) {
			matches++;
			found = c;
		}
	if (matches == 1) {
		*out = found;
		return 0;
	}
	if (matches > 1) {
		/* the candidates in alphabetical order, as gdb lists them */
		const char *last = "";

		for (size_t k = 0; k < matches; k++) {
			const char *next = NULL;

			FOR_EACH_CMD (table, c) {
				if (!strncmp(c->name, word, n) && strcmp(c->name, last) > 0 &&
				    (!next || strcmp(c->name, next) < 0))
					next = c->name;
			}
			if (!next)
				break;
			if (k)
				sb_adds(&names, ", ");
			sb_adds(&names, next);
			last = next;
		}
		error("ambiguous command: %s, could be: %s", esc(word), sb_str(&names));
	} else if (table) {
		error("undefined subcommand: \"%s\"; try \"help\"", esc(word));
	} else {
		error("undefined command: \"%s\"; try \"help\"", esc(word));
	}
	sb_release(&names);
	return -1;
}

int cmd_split(const char *line, char ***argvp, int *argcp)
{
	struct strbuf word = STRBUF_INIT;
	char **argv = NULL;
	int argc = 0, cap = 0, in_word = 0;
	char quote = 0;

	for (const char *p = line;; p++) {
		char ch = *p;

		if (!ch || (!quote && isspace((unsigned char)ch))) {
			if (quote) {
				sb_release(&word);
				cmd_free_argv(argv, argc);
				return error("unbalanced quotes in: %s", esc(line));
			}
			if (in_word) {
				if (argc + 2 > cap) {
					cap = cap ? cap * 2 : 8;
					argv = xrealloc(argv, (size_t)cap * sizeof(*argv));
				}
				argv[argc++] = sb_detach(&word);
				argv[argc] = NULL;
				in_word = 0;
			}
			if (!ch)
				break;
			continue;
		}
		in_word = 1;
		if (quote) {
			if (ch == quote)
				quote = 0;
			else if (ch == '\\' && quote == '"' && p[1])
				sb_addc(&word, *++p);
			else
				sb_addc(&word, ch);
		} else if (ch == '\'' || ch == '"') {
			quote = ch;
		} else if (ch == '\\' && p[1]) {
			sb_addc(&word, *++p);
		} else {
			sb_addc(&word, ch);
		}
	}
	sb_release(&word);
	*argvp = argv;
	*argcp = argc;
	return 0;
}

void cmd_free_argv(char **argv, int argc)
{
	for (int i = 0; i < argc; i++)
		free(argv[i]);
	free(argv);
}

int cmd_usage_error(const struct cmd *cmd, const char *fmt, ...)
{
	struct strbuf sb = STRBUF_INIT;
	va_list ap;

	va_start(ap, fmt);
	sb_vaddf(&sb, fmt, ap);
	va_end(ap);
	error("%s; usage: %s", sb_str(&sb), cmd->usage);
	sb_release(&sb);
	return -1;
}

/* The words of the line after the command word, as typed (for raw-argument commands). */
static const char *rest_of_line(const char *line, int words)
{
	const char *p = line;

	for (int i = 0; i < words; i++) {
		p += strspn(p, " \t");
		p += strcspn(p, " \t");
	}
	return p + strspn(p, " \t");
}

static int run(struct cmd_ctx *ctx, const struct cmd *c, const char *line, int depth, int argc,
	       char **argv)
{
	char *raw[3] = {argv[0], NULL, NULL};

	if ((c->flags & CMD_NEEDS_PYTHON) && session_require_python(ctx->s) < 0)
		return -1;
	if ((c->flags & CMD_NEEDS_TARGET) && session_require_target(ctx->s) < 0)
		return -1;
	if ((c->flags & CMD_NO_TARGET) && ctx->s->attached && !ctx->s->task.gone)
		return error("already debugging process %d; 'detach' (or 'kill') first",
			     ctx->s->task.pid);
	if (c->flags & CMD_RAW_ARGS) {
		const char *rest = rest_of_line(line, depth);

		raw[1] = (char *)rest;
		argc = *rest ? 1 : 0;
		argv = raw;
	} else {
		argc--;
	}
	if (argc < c->min_args)
		return cmd_usage_error(c, "%s needs %s argument%s", c->name,
				       c->min_args == 1 ? "an" : "more",
				       c->min_args == 1 ? "" : "s");
	if (c->max_args >= 0 && argc > c->max_args)
		return cmd_usage_error(c, "too many arguments for %s", c->name);
	ctx->cmd = c;
	return c->fn(ctx, argc, argv + 1);
}

int cmd_execute(struct cmd_ctx *ctx, const char *line)
{
	const struct cmd *c = NULL, *sub;
	out_render_fn render = NULL;
	char **argv;
	int argc, r = -1, depth = 1;

	if (line[strspn(line, " \t")] == '\0' || line[strspn(line, " \t")] == '#')
		return 0;
	/* begun before splitting: a quoting error belongs to this command's record */
	out_begin(line);
	if (cmd_split(line, &argv, &argc) < 0) {
		out_end(0, NULL);
		return -1;
	}
	if (!argc) {
		out_end(1, NULL);
		cmd_free_argv(argv, argc);
		return 0;
	}
	if (cmd_lookup(NULL, argv[0], &c) < 0)
		goto out;
	/* "info threads": the next word picks from the command's own table */
	while (c->subcmds && argc > depth) {
		if (cmd_lookup(c->subcmds, argv[depth], &sub) < 0)
			goto out;
		c = sub;
		depth++;
	}
	render = c->render;
	if (!c->fn) {
		error("\"%s\" must be followed by the name of a subcommand; try \"help %s\"",
		      c->name, c->name);
		goto out;
	}
	r = run(ctx, c, line, depth, argc - depth + 1, argv + depth - 1);
out:
	out_end(r == 0, render);
	cmd_free_argv(argv, argc);
	return r < 0 ? -1 : 0;
}

int cmd_execute_fn(struct cmd_ctx *ctx, const char *as_typed, const char *cmd_name,
		   int (*fn)(struct cmd_ctx *ctx, void *arg), void *arg)
{
	const struct cmd *c = NULL;
	int r;

	out_begin(as_typed);
	error_quiet(1);
	cmd_lookup(NULL, cmd_name, &c);
	error_quiet(0);
	ctx->cmd = c;
	r = fn(ctx, arg);
	out_end(r == 0, c ? c->render : NULL);
	return r < 0 ? -1 : 0;
}

int cmd_line_repeats(const char *line)
{
	const struct cmd *c;
	char **argv;
	int argc, repeats = 0;

	if (cmd_split(line, &argv, &argc) < 0)
		return 0;
	error_quiet(1);
	if (argc && cmd_lookup(NULL, argv[0], &c) == 0)
		repeats = (c->flags & CMD_REPEATS) != 0;
	error_quiet(0);
	cmd_free_argv(argv, argc);
	return repeats;
}

void cmd_complete(struct cmd_ctx *ctx, const char *line, const char *prefix,
		  void (*offer)(const char *word, void *arg), void *arg)
{
	const struct cmd *table = NULL, *c = NULL;
	char **argv;
	int argc, i;
	size_t n = strlen(prefix);

	if (cmd_split(line, &argv, &argc) < 0)
		return;
	error_quiet(1);
	/* walk the complete words before the one being typed */
	for (i = 0; i < argc; i++) {
		const struct cmd *found;

		if (c && !c->subcmds)
			break;
		if (cmd_lookup(table, argv[i], &found) < 0) {
			c = NULL;
			goto out;
		}
		c = found;
		table = c->subcmds;
	}
	if (!c) {
		FOR_EACH_CMD (NULL, t)
			if (!strncmp(t->name, prefix, n))
				offer(t->name, arg);
	} else if (c->subcmds) {
		FOR_EACH_CMD (c->subcmds, t)
			if (!strncmp(t->name, prefix, n))
				offer(t->name, arg);
	} else if (c->arg_words) {
		for (const char *const *w = c->arg_words; *w; w++)
			if (!strncmp(*w, prefix, n))
				offer(*w, arg);
		if (c->complete)
			c->complete(ctx, prefix, offer, arg);
	} else if (c->complete) {
		c->complete(ctx, prefix, offer, arg);
	}
out:
	error_quiet(0);
	cmd_free_argv(argv, argc);
}

int cmd_parse_tid(struct cmd_ctx *ctx, const char *arg, pid_t *tid)
{
	uint64_t v;

	if (parse_u64(arg, &v) < 0 || v == 0 || v > INT32_MAX)
		return cmd_usage_error(ctx->cmd, "not a thread id: \"%s\" (see 'info threads')",
				       esc(arg));
	if (!task_thread_by_tid(&ctx->s->task, (pid_t)v))
		return error("no thread %s in process %d; see 'info threads'", arg,
			     ctx->s->task.pid);
	*tid = (pid_t)v;
	return 0;
}

void cmd_complete_tids(struct cmd_ctx *ctx, const char *prefix,
		       void (*offer)(const char *word, void *arg), void *arg)
{
	char buf[16];

	if (!ctx->s->attached)
		return;
	for (size_t i = 0; i < ctx->s->task.nthr; i++) {
		snprintf(buf, sizeof(buf), "%d", ctx->s->task.thr[i]->tid);
		if (!strncmp(buf, prefix, strlen(prefix)))
			offer(buf, arg);
	}
}

/* ----- help ----- */

static void add_cmd_json(json_t *arr, const struct cmd *c)
{
	json_t *o = json_object();

	json_object_set_new(o, "name", json_string(c->name));
	json_object_set_new(o, "usage", json_string(c->usage));
	json_object_set_new(o, "summary", json_string(c->summary));
	if (c->aliases)
		json_object_set_new(o, "aliases", json_string(c->aliases));
	json_array_append_new(arr, o);
}

static int cmd_help(struct cmd_ctx *ctx, int argc, char **argv)
{
	json_t *r = out_result();
	const struct cmd *c = NULL;
	int depth;

	(void)ctx;
	if (!argc) {
		json_t *groups = json_array();

		for (size_t f = 0; f < ARRAY_SIZE(families); f++) {
			json_t *g = json_object(), *cmds = json_array();

			json_object_set_new(g, "title", json_string(families[f].title));
			for (const struct cmd *t = families[f].table; t->name; t++)
				add_cmd_json(cmds, t);
			json_object_set_new(g, "commands", cmds);
			json_array_append_new(groups, g);
		}
		json_object_set_new(r, "groups", groups);
		return 0;
	}
	if (cmd_lookup(NULL, argv[0], &c) < 0)
		return -1;
	for (depth = 1; depth < argc && c->subcmds; depth++)
		if (cmd_lookup(c->subcmds, argv[depth], &c) < 0)
			return -1;
	json_object_set_new(r, "name", json_string(c->name));
	json_object_set_new(r, "usage", json_string(c->usage));
	json_object_set_new(r, "summary", json_string(c->summary));
	if (c->help)
		json_object_set_new(r, "help", json_string(c->help));
	if (c->aliases)
		json_object_set_new(r, "aliases", json_string(c->aliases));
	if (c->subcmds) {
		json_t *subs = json_array();

		for (const struct cmd *t = c->subcmds; t->name; t++)
			add_cmd_json(subs, t);
		json_object_set_new(r, "subcommands", subs);
	}
	return 0;
}

static void render_cmd_list(const json_t *cmds)
{
	size_t i;
	json_t *c;

	json_array_foreach (cmds, i, c) {
		out_printf("  %-30s -- %s\n", esc_member(c, "usage"), esc_member(c, "summary"));
	}
}

static void render_help(const json_t *r)
{
	const json_t *groups = json_object_get(r, "groups");

	if (groups) {
		size_t i;
		json_t *g;

		out_printf("pyleakdb: a memory debugger for live CPython processes\n");
		json_array_foreach (groups, i, g) {
			out_printf("\n%s:\n", esc_member(g, "title"));
			render_cmd_list(json_object_get(g, "commands"));
		}
		out_printf(
		    "\nType \"help\" followed by a command name for its full documentation.\n"
		    "Command names may be abbreviated when the abbreviation is unambiguous.\n");
		return;
	}
	out_printf("usage: %s\n%s\n", esc_member(r, "usage"), esc_member(r, "summary"));
	if (json_object_get(r, "aliases"))
		out_printf("aliases: %s\n", esc_member(r, "aliases"));
	if (json_object_get(r, "help"))
		out_printf("\n%s\n", json_string_value(json_object_get(r, "help")));
	if (json_object_get(r, "subcommands")) {
		out_printf("\nsubcommands:\n");
		render_cmd_list(json_object_get(r, "subcommands"));
	}
}

static void complete_command_names(struct cmd_ctx *ctx, const char *prefix,
				   void (*offer)(const char *word, void *arg), void *arg)
{
	(void)ctx;
	FOR_EACH_CMD (NULL, t)
		if (!strncmp(t->name, prefix, strlen(prefix)))
			offer(t->name, arg);
}

/* gdb's echo: the text, with \n and \t escapes, no newline of its own */
static int cmd_echo(struct cmd_ctx *ctx, int argc, char **argv)
{
	struct strbuf sb = STRBUF_INIT;
	const char *p = argc ? argv[0] : "";

	(void)ctx;
	for (; *p; p++) {
		if (*p == '\\' && p[1] == 'n') {
			sb_addc(&sb, '\n');
			p++;
		} else if (*p == '\\' && p[1] == 't') {
			sb_addc(&sb, '\t');
			p++;
		} else if (*p == '\\' && p[1]) {
			sb_addc(&sb, *++p);
		} else {
			sb_addc(&sb, *p);
		}
	}
	json_object_set_new(out_result(), "text", json_string(sb_str(&sb)));
	sb_release(&sb);
	return 0;
}

static void render_echo(const json_t *r)
{
	/* the user's own text, not the target's: printed as typed */
	out_printf("%s", json_string_value(json_object_get(r, "text")));
}

const struct cmd cmd_misc_cmds[] = {
    {
	.name = "echo",
	.usage = "echo TEXT",
	.summary = "print TEXT (\\n for a new line), to label the output of a script",
	.max_args = 1,
	.flags = CMD_RAW_ARGS,
	.fn = cmd_echo,
	.render = render_echo,
    },
    {
	.name = "info",
	.aliases = "i",
	.usage = "info SUBCOMMAND",
	.summary = "threads, memory, maps, interp, breakpoints: see \"help info\"",
	.subcmds = cmd_info_cmds,
    },
    {
	.name = "help",
	.usage = "help [COMMAND [SUBCOMMAND]]",
	.summary = "list the commands, or describe one",
	.max_args = 2,
	.fn = cmd_help,
	.render = render_help,
	.complete = complete_command_names,
    },
    {0},
};

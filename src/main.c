// SPDX-License-Identifier: GPL-3.0-or-later
/*
 * main: the command line (gdb's habits: -p, -ex, -x, --batch), then the
 * prompt or the batch run.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cmd.h"
#include "repl.h"
#include "task.h"

static const char usage_text[] =
    "usage: pyleakdb [OPTIONS] attach PID\n"
    "       pyleakdb [OPTIONS] -p PID\n"
    "       pyleakdb [OPTIONS] run [--] PROGRAM [ARGS...]\n"
    "       pyleakdb [OPTIONS]\n"
    "\n"
    "A memory debugger for live CPython processes: attach to the process that is\n"
    "leaking now, see every thread's stack, and (at safe points) count, trace and\n"
    "explain the objects that keep memory alive.\n"
    "\n"
    "options:\n"
    "  -p, --pid PID         attach to process PID\n"
    "  -ex, --eval-command CMD\n"
    "                        run CMD after attaching (repeatable, in order)\n"
    "  -x, --command FILE    run the commands in FILE (one a line, # comments)\n"
    "  --batch               run the commands, detach and exit; exit status 1 if any\n"
    "                        command failed\n"
    "  --json                print each command's output as one JSON object per line\n"
    "  -q, --quiet           no banner\n"
    "  --version             print the version and exit\n"
    "  -h, --help            print this help and exit\n"
    "\n"
    "Type \"help\" at the (pyleakdb) prompt for the commands.\n";

enum script_kind { SCRIPT_CMD, SCRIPT_FILE };

struct script_item {
	enum script_kind kind;
	const char *text;
};

struct options {
	pid_t pid;
	char **run_argv;
	struct script_item *items;
	size_t nitems;
	int batch, json, quiet;
};

static NORETURN PRINTF(1, 2) void usage_fail(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "pyleakdb: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\nTry 'pyleakdb --help' for more information.\n");
	exit(2);
}

static pid_t parse_pid(const char *s)
{
	uint64_t v;

	if (!s || parse_u64(s, &v) < 0 || !v || v > INT32_MAX)
		usage_fail("not a process id: '%s'", s ? s : "");
	return (pid_t)v;
}

static void add_item(struct options *o, enum script_kind kind, const char *text)
{
	o->items = xrealloc(o->items, (o->nitems + 1) * sizeof(*o->items));
	o->items[o->nitems].kind = kind;
	o->items[o->nitems].text = text;
	o->nitems++;
}

/* "-x", "--x", "-x=V": is arg the option name (one or two dashes), and its inline value? */
static int is_opt(const char *arg, const char *name, const char **inline_value)
{
	size_t n = strlen(name);

	*inline_value = NULL;
	if (arg[0] != '-')
		return 0;
	arg += arg[1] == '-' ? 2 : 1;
	if (strncmp(arg, name, n))
		return 0;
	if (arg[n] == '=') {
		*inline_value = arg + n + 1;
		return 1;
	}
	return arg[n] == '\0';
}

static const char *opt_value(int argc, char **argv, int *i, const char *inline_value)
{
	if (inline_value)
		return inline_value;
	if (*i + 1 >= argc)
		usage_fail("option '%s' needs a value", argv[*i]);
	return argv[++*i];
}

static void parse_args(int argc, char **argv, struct options *o)
{
	int i;

	for (i = 1; i < argc; i++) {
		const char *a = argv[i], *v;

		if (is_opt(a, "ex", &v) || is_opt(a, "eval-command", &v)) {
			add_item(o, SCRIPT_CMD, opt_value(argc, argv, &i, v));
		} else if (is_opt(a, "x", &v) || is_opt(a, "command", &v)) {
			add_item(o, SCRIPT_FILE, opt_value(argc, argv, &i, v));
		} else if (is_opt(a, "p", &v) || is_opt(a, "pid", &v)) {
			o->pid = parse_pid(opt_value(argc, argv, &i, v));
		} else if (!strncmp(a, "-p", 2) && a[2] >= '0' && a[2] <= '9') {
			o->pid = parse_pid(a + 2);
		} else if (is_opt(a, "batch", &v)) {
			o->batch = 1;
		} else if (is_opt(a, "json", &v)) {
			o->json = 1;
		} else if (is_opt(a, "q", &v) || is_opt(a, "quiet", &v) ||
			   is_opt(a, "silent", &v)) {
			o->quiet = 1;
		} else if (is_opt(a, "version", &v)) {
			printf("pyleakdb %s\n", PYLEAKDB_VERSION);
			exit(0);
		} else if (is_opt(a, "h", &v) || is_opt(a, "help", &v)) {
			fputs(usage_text, stdout);
			exit(0);
		} else if (!strcmp(a, "attach")) {
			if (i + 1 >= argc)
				usage_fail("%s needs a PID", a);
			o->pid = parse_pid(argv[++i]);
		} else if (!strcmp(a, "run")) {
			if (i + 1 < argc && !strcmp(argv[i + 1], "--"))
				i++;
			if (i + 1 >= argc)
				usage_fail("%s needs a program to run", a);
			o->run_argv = &argv[i + 1];
			break;
		} else if (a[0] == '-') {
			usage_fail("unknown option '%s'", a);
		} else {
			usage_fail("unexpected argument '%s' (did you mean 'attach %s'?)", a, a);
		}
	}
	if (o->pid && o->run_argv)
		usage_fail("%s", "give either a PID to attach to or a program to run, not both");
}

static int start_attach(struct cmd_ctx *ctx, void *arg)
{
	return cmd_attach_pid(ctx, *(pid_t *)arg);
}

static int start_run(struct cmd_ctx *ctx, void *arg)
{
	return cmd_run_argv(ctx, arg);
}

/* " WORD", quoted the way a shell would read it back when it needs quoting. */
static void add_shell_word(struct strbuf *sb, const char *w)
{
	sb_addc(sb, ' ');
	if (*w && !w[strspn(w, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
			       "@%_+=:,./-")]) {
		sb_adds(sb, w);
		return;
	}
	sb_addc(sb, '\'');
	for (; *w; w++) {
		if (*w == '\'')
			sb_adds(sb, "'\\''");
		else
			sb_addc(sb, *w);
	}
	sb_addc(sb, '\'');
}

int main(int argc, char **argv)
{
	struct options o = {0};
	struct session s;
	struct cmd_ctx ctx = {0};
	int failures = 0;

	parse_args(argc, argv, &o);
	task_signals_init();
	out_init(o.json ? OUT_JSON : OUT_HUMAN);
	session_init(&s);
	ctx.s = &s;
	ctx.batch = o.batch;
	if (!o.quiet && !o.batch && !o.json && isatty(STDIN_FILENO))
		printf("pyleakdb %s: a memory debugger for live CPython processes.\n"
		       "Type \"help\" for the commands.\n",
		       PYLEAKDB_VERSION);
	if (o.pid) {
		char line[64];

		snprintf(line, sizeof(line), "attach %d", o.pid);
		if (cmd_execute_fn(&ctx, line, "attach", start_attach, &o.pid) < 0) {
			free(o.items);
			return 1;
		}
	} else if (o.run_argv) {
		struct strbuf line = STRBUF_INIT;

		sb_adds(&line, "run --");
		for (char **a = o.run_argv; *a; a++)
			add_shell_word(&line, *a);
		if (cmd_execute_fn(&ctx, sb_str(&line), "run", start_run, o.run_argv) < 0) {
			sb_release(&line);
			free(o.items);
			return 1;
		}
		sb_release(&line);
	}
	for (size_t i = 0; i < o.nitems && !ctx.quit; i++) {
		int r;

		if (o.items[i].kind == SCRIPT_CMD) {
			r = cmd_execute(&ctx, o.items[i].text) < 0;
		} else {
			r = repl_run_file(&ctx, o.items[i].text);
			if (r < 0)
				r = 1;
		}
		failures += r;
	}
	if (!o.batch && !ctx.quit)
		failures += repl_run(&ctx);
	else if (!ctx.quit && s.attached)
		/* the end of a batch is a quit: detach, or end what we started */
		failures += cmd_execute(&ctx, "quit") < 0;
	session_release(&s);
	free(o.items);
	return o.batch && failures ? 1 : 0;
}

// SPDX-License-Identifier: GPL-3.0-or-later
/*
 * repl: the readline prompt with history, completion and gdb's habits
 * (Enter repeats continue and stepping, Ctrl-C abandons the line, Ctrl-D
 * quits), and command files.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <readline/history.h>
#include <readline/readline.h>

#include "repl.h"
#include "task.h"

#define PROMPT	     "(pyleakdb) "
#define HISTORY_FILE ".pyleakdb_history"
#define HISTORY_MAX  1000

static struct cmd_ctx *cur_ctx;

/* ----- completion ----- */

struct offers {
	char **v;
	size_t n, cap;
};

static void offer(const char *word, void *arg)
{
	struct offers *o = arg;

	for (size_t i = 0; i < o->n; i++)
		if (!strcmp(o->v[i], word))
			return;
	if (o->n + 1 >= o->cap) {
		o->cap = o->cap ? o->cap * 2 : 16;
		o->v = xrealloc(o->v, o->cap * sizeof(*o->v));
	}
	o->v[o->n++] = xstrdup(word);
}

static struct offers pending;
static size_t pending_next;

static char *generator(const char *text, int state)
{
	(void)text;
	if (!state)
		pending_next = 0;
	if (pending_next < pending.n) {
		char *w = pending.v[pending_next];

		pending.v[pending_next++] = NULL;
		return w;
	}
	return NULL;
}

static char **complete(const char *text, int start, int end)
{
	char *line = xmalloc((size_t)start + 1);

	(void)end;
	for (size_t i = 0; i < pending.n; i++)
		free(pending.v[i]);
	pending.n = 0;
	memcpy(line, rl_line_buffer, (size_t)start);
	line[start] = '\0';
	cmd_complete(cur_ctx, line, text, offer, &pending);
	free(line);
	rl_attempted_completion_over = 1; /* never fall back to file names */
	return rl_completion_matches(text, generator);
}

/* ----- Ctrl-C at the prompt ----- */

/* Called by readline when a signal interrupts its read: Ctrl-C abandons the line. */
static int on_signal_event(void)
{
	if (task_take_sigint()) {
		rl_replace_line("", 0);
		rl_crlf();
		rl_on_new_line();
		rl_redisplay();
	}
	return 0;
}

static char *history_path(void)
{
	const char *home = getenv("HOME");
	struct strbuf sb = STRBUF_INIT;

	if (!home || !*home)
		return NULL;
	sb_addf(&sb, "%s/%s", home, HISTORY_FILE);
	return sb_detach(&sb);
}

static int run_line(struct cmd_ctx *ctx, const char *line)
{
	int r;

	task_take_sigint();
	r = cmd_execute(ctx, line);
	task_take_sigint();
	return r;
}

int repl_run(struct cmd_ctx *ctx)
{
	char *hist = history_path(), *last = NULL, *line;
	int failures = 0;

	cur_ctx = ctx;
	if (!isatty(STDIN_FILENO)) {
		/* commands piped in: no prompt, no line editing */
		size_t cap = 0;
		ssize_t n;

		line = NULL;
		while (!ctx->quit && (n = getline(&line, &cap, stdin)) >= 0) {
			line[strcspn(line, "\n")] = '\0';
			if (run_line(ctx, line) < 0)
				failures++;
		}
		free(line);
		free(hist);
		return failures;
	}
	rl_readline_name = "pyleakdb";
	rl_attempted_completion_function = complete;
	rl_catch_signals = 0; /* our SIGINT handler only sets a flag; we act on it here */
	rl_signal_event_hook = on_signal_event;
	using_history();
	stifle_history(HISTORY_MAX);
	if (hist && read_history(hist) != 0)
		write_history(hist); /* append_history() needs the file to exist */
	while (!ctx->quit) {
		task_take_sigint();
		line = readline(PROMPT);
		if (!line) {
			/* Ctrl-D: as gdb, say quit and do it */
			printf("quit\n");
			run_line(ctx, "quit");
			break;
		}
		if (line[strspn(line, " \t")] == '\0') {
			/* an empty line repeats continue and stepping, nothing else */
			free(line);
			if (last && cmd_line_repeats(last) && run_line(ctx, last) < 0)
				failures++;
			continue;
		}
		add_history(line);
		if (hist)
			append_history(1, hist);
		free(last);
		last = line;
		if (run_line(ctx, line) < 0)
			failures++;
	}
	if (hist)
		history_truncate_file(hist, HISTORY_MAX);
	free(last);
	free(hist);
	return failures;
}

int repl_run_file(struct cmd_ctx *ctx, const char *path)
{
	FILE *f = fopen(path, "re");
	char *line = NULL;
	size_t cap = 0;
	int failures = 0;

	if (!f)
		return error("cannot read command file '%s': %s", esc(path), strerror(errno));
	while (!ctx->quit && getline(&line, &cap, f) >= 0) {
		line[strcspn(line, "\r\n")] = '\0';
		if (run_line(ctx, line) < 0)
			failures++;
	}
	free(line);
	fclose(f);
	return failures;
}

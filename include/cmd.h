/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * cmd: the command table, and running one command line.
 *
 * Each command is one entry: name, usage, argument bounds, what it needs
 * (a target, a stopped target, an interpreter), help, handler and renderer.
 * Lookup is gdb's: an exact name, then an alias, then a unique prefix, else
 * "ambiguous command: b, could be: break, bt".  Help and completion are
 * generated from the table.  Command families live in cmd-*.c, each
 * exporting its entries; cmd.c gathers them.
 */
#ifndef PYLEAKDB_CMD_H
#define PYLEAKDB_CMD_H

#include <stddef.h>

#include "output.h"
#include "session.h"

enum cmd_flags {
	CMD_NEEDS_TARGET = 1 << 0, /* a live process */
	CMD_NEEDS_PYTHON = 1 << 1, /* a live process with a readable interpreter */
	CMD_REPEATS = 1 << 2,	   /* Enter on an empty line runs it again */
	CMD_NO_TARGET = 1 << 3,	   /* refuses when a process is already attached */
	CMD_RAW_ARGS = 1 << 4,	   /* gets the rest of the line as one argument */
};

struct cmd_ctx;

/* What a completer offers for the word being typed. */
typedef void (*cmd_complete_fn)(struct cmd_ctx *ctx, const char *prefix,
				void (*offer)(const char *word, void *arg), void *arg);

struct cmd {
	const char *name;
	const char *aliases;	/* space-separated: "c" for continue */
	const char *usage;	/* "bt [all|TID]" */
	const char *summary;	/* one line */
	const char *help;	/* more, or NULL */
	int min_args, max_args; /* max -1: any */
	unsigned flags;
	int (*fn)(struct cmd_ctx *ctx, int argc, char **argv);
	out_render_fn render;
	const struct cmd *subcmds;    /* "info threads": the table of the words after */
	const char *const *arg_words; /* fixed words the arguments may be, for completion */
	cmd_complete_fn complete;     /* or a function that offers them */
};

struct cmd_ctx {
	struct session *s;
	const struct cmd *cmd;
	int quit;  /* set by quit */
	int batch; /* non-interactive */
};

/*
 * Find a command in a table (NULL: the top level, every family): 0 and
 * *out, or -1 after printing "undefined command" or "ambiguous command".
 */
int cmd_lookup(const struct cmd *table, const char *word, const struct cmd **out);

/* Split a line into words: quotes and backslashes as a shell does.  -1 on unbalanced quotes. */
int cmd_split(const char *line, char ***argv, int *argc);
void cmd_free_argv(char **argv, int argc);

/* Run one command line; 0 when it succeeded (or was empty), -1 when it failed. */
int cmd_execute(struct cmd_ctx *ctx, const char *line);
/* Does this line's command repeat on an empty line (continue, step...)? */
int cmd_line_repeats(const char *line);

/* For the REPL's completion: offer every word that may come next after `line`. */
void cmd_complete(struct cmd_ctx *ctx, const char *line, const char *prefix,
		  void (*offer)(const char *word, void *arg), void *arg);

/* The command families' tables, NULL-name terminated. */
extern const struct cmd cmd_target_cmds[];
extern const struct cmd cmd_stack_cmds[];
extern const struct cmd cmd_mem_cmds[];
extern const struct cmd cmd_heap_cmds[];
extern const struct cmd cmd_refs_cmds[];
extern const struct cmd cmd_break_cmds[];
extern const struct cmd cmd_info_cmds[]; /* the words after "info" */
extern const struct cmd cmd_misc_cmds[]; /* help, and the like */

/* The start-up actions of the command line: attach PID, run PROGRAM. */
int cmd_attach_pid(struct cmd_ctx *ctx, pid_t pid);
int cmd_run_argv(struct cmd_ctx *ctx, char *const argv[]);
/* Run a start-up action under the output protocol, as if it were typed. */
int cmd_execute_fn(struct cmd_ctx *ctx, const char *as_typed, const char *cmd_name,
		   int (*fn)(struct cmd_ctx *ctx, void *arg), void *arg);

/* "info" subcommands that live with their families. */
int cmd_info_threads(struct cmd_ctx *ctx, int argc, char **argv);
void render_info_threads(const json_t *r);
int cmd_info_memory(struct cmd_ctx *ctx, int argc, char **argv);
void render_info_memory(const json_t *r);
int cmd_info_maps(struct cmd_ctx *ctx, int argc, char **argv);
void render_info_maps(const json_t *r);

/* One thread's merged stack, as bt shows it; NULL when there is no such thread. */
json_t *cmd_thread_stack(struct session *s, pid_t tid);
void render_thread_stack(const json_t *t);
/* Why the target stopped, for continue and iter: render with render_stop(). */
json_t *cmd_describe_stop(struct session *s, const struct stop_info *st);
void render_stop(const json_t *stop);
/* "info breakpoints" and "set", which live with the breakpoint commands. */
int cmd_info_breakpoints(struct cmd_ctx *ctx, int argc, char **argv);
void render_info_breakpoints(const json_t *r);

/* Where a thread is, as {"tid", "name", "function", "file", "line"}; NULL when unknown. */
json_t *cmd_thread_where(struct session *s, pid_t tid);
/* Render one such object as "thread 4242 MainThread at app.py:12 in main". */
void render_where_line(const json_t *where, const char *indent);

/* Shared by the families: the usage line as an error. */
int cmd_usage_error(const struct cmd *cmd, const char *fmt, ...) PRINTF(2, 3);
/* Parse "TID" or "all"; 0 ok. */
int cmd_parse_tid(struct cmd_ctx *ctx, const char *arg, pid_t *tid);
/* Offer the TIDs of the target (completion). */
void cmd_complete_tids(struct cmd_ctx *ctx, const char *prefix,
		       void (*offer)(const char *word, void *arg), void *arg);

#endif

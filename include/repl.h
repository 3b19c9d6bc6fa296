/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * repl: the interactive prompt (readline), and reading commands from files.
 */
#ifndef PYLEAKDB_REPL_H
#define PYLEAKDB_REPL_H

#include "cmd.h"

/* The (pyleakdb) prompt until quit or end of input.  Returns how many commands failed. */
int repl_run(struct cmd_ctx *ctx);
/* Run the commands of a file, one a line, # comments; -1 if it cannot be read, else failures. */
int repl_run_file(struct cmd_ctx *ctx, const char *path);

#endif

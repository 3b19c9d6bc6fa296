// SPDX-License-Identifier: GPL-3.0-or-later
/*
 * cmd-info: "info" and its subcommands.  Most live with their families;
 * info interp is here.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "cmd.h"

static int cmd_info_interp(struct cmd_ctx *ctx, int argc, char **argv)
{
	struct pyinterp *pi = &ctx->s->pi;
	json_t *r = out_result();
	char ver[32];

	(void)argc;
	(void)argv;
	snprintf(ver, sizeof(ver), "%d.%d.%d", pi->major, pi->minor, pi->micro);
	json_object_set_new(r, "version", json_string(ver));
	json_object_set_new(r, "version_string", json_target_cstr(pi->version_str));
	json_object_set_new(r, "version_from", json_string(pi->version_how));
	if (pi->hexversion)
		json_object_set_new(r, "hexversion", json_hex(pi->hexversion));
	json_object_set_new(r, "executable", json_target_cstr(pi->exe));
	json_object_set_new(r, "interpreter_file", json_target_cstr(pi->pymod->path));
	json_object_set_new(r, "linkage",
			    json_string(strcmp(pi->pymod->path, pi->exe)
					    ? "shared libpython"
					    : "linked into the executable"));
	json_object_set_new(
	    r, "symbols",
	    json_string(pi->pymod->symtab && symtab_has_full_symbols(pi->pymod->symtab)
			    ? "full symbol table"
			    : "exported symbols only (stripped: static functions "
			      "show as ?\?)"));
	json_object_set_new(r, "load_bias", json_hex(pi->pymod->bias));
	if (pi->runtime)
		json_object_set_new(r, "runtime", json_hex(pi->runtime));
	json_object_set_new(r, "runtime_from",
			    json_string(pi->runtime_how ? pi->runtime_how : "?"));
	json_object_set_new(r, "layout",
			    json_string(pi->layout_from_debug_offsets
					    ? "_Py_DebugOffsets published by the interpreter"
					    : "generated from CPython's headers"));
	json_object_set_new(r, "layout_headers", json_string(pi->L.headers_from));
	json_object_set_new(r, "pid", json_integer(ctx->s->task.pid));
	return 0;
}

static void render_info_interp(const json_t *r)
{
	out_printf("process:          %lld\n", json_int_member(r, "pid", 0));
	out_printf("Python:           %s (from %s)\n", esc_member(r, "version"),
		   esc_member(r, "version_from"));
	if (strlen(esc_member(r, "version_string")) > strlen(esc_member(r, "version")))
		out_printf("build:            %s\n", esc_member(r, "version_string"));
	out_printf("executable:       %s\n", esc_member(r, "executable"));
	out_printf("interpreter in:   %s\n", esc_member(r, "interpreter_file"));
	out_printf("                  %s; %s\n", esc_member(r, "linkage"),
		   esc_member(r, "symbols"));
	out_printf("load bias:        %s\n", esc_member(r, "load_bias"));
	out_printf("_PyRuntime:       %s (%s)\n",
		   json_object_get(r, "runtime") ? esc_member(r, "runtime") : "none",
		   esc_member(r, "runtime_from"));
	out_printf("struct layout:    %s (%s; layouts hold within a minor version)\n",
		   esc_member(r, "layout"), esc_member(r, "layout_headers"));
}

const struct cmd cmd_info_cmds[] = {
    {
	.name = "breakpoints",
	.usage = "info breakpoints",
	.summary = "the breakpoints, with their hit counts",
	.max_args = 0,
	.flags = 0,
	.fn = cmd_info_breakpoints,
	.render = render_info_breakpoints,
    },
    {
	.name = "threads",
	.usage = "info threads",
	.summary = "every thread: TID, name, state, GIL, innermost Python frame",
	.max_args = 0,
	.flags = CMD_NEEDS_PYTHON,
	.fn = cmd_info_threads,
	.render = render_info_threads,
    },
    {
	.name = "memory",
	.usage = "info memory",
	.summary = "RSS, peak RSS, virtual size, and where the resident memory is",
	.max_args = 0,
	.flags = CMD_NEEDS_TARGET,
	.fn = cmd_info_memory,
	.render = render_info_memory,
    },
    {
	.name = "maps",
	.usage = "info maps",
	.summary = "the target's memory mappings",
	.max_args = 0,
	.flags = CMD_NEEDS_TARGET,
	.fn = cmd_info_maps,
	.render = render_info_maps,
    },
    {
	.name = "interp",
	.usage = "info interp",
	.summary = "the interpreter: version, build, file, _PyRuntime and how it was found",
	.max_args = 0,
	.flags = CMD_NEEDS_PYTHON,
	.fn = cmd_info_interp,
	.render = render_info_interp,
    },
    {0},
};

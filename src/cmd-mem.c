// SPDX-License-Identifier: GPL-3.0-or-later
/*
 * cmd-mem: x, disas, info memory, info maps: the target's memory and
 * machine code, read without running anything in it.
 */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd.h"
#include "disasm.h"
#include "mem.h"

#define X_DEFAULT_BYTES	 64
#define X_MAX_BYTES	 (64 * 1024)
#define X_BYTES_PER_LINE 16
#define DISAS_DEFAULT	 16
#define DISAS_MAX	 2000
/* Instructions shown before the PC when disassembling around it. */
#define DISAS_CONTEXT_BYTES 32

/* The thread $pc, $sp and disas look at: the main thread (the first one if it is gone). */
static struct task_thread *default_thread(struct session *s)
{
	struct task_thread *thr = task_main_thread(&s->task);

	return thr ? thr : (s->task.nthr ? s->task.thr[0] : NULL);
}

/* "0x7f00", "4096", "$pc", "$sp", "SYMBOL", "SYMBOL+0x10" to an address. */
static int parse_address(struct session *s, const char *arg, uint64_t *addr)
{
	struct strbuf name = STRBUF_INIT;
	const char *plus = strchr(arg, '+');
	uint64_t off = 0;
	struct task_thread *thr;
	arch_regs regs;

	if (!parse_u64(arg, addr))
		return 0;
	if (!strcmp(arg, "$pc") || !strcmp(arg, "$sp")) {
		thr = default_thread(s);
		if (!thr || task_get_regs(&s->task, thr, &regs) < 0)
			return -1;
		*addr = arg[1] == 'p' ? arch_pc(&regs) : arch_sp(&regs);
		return 0;
	}
	if (plus && parse_u64(plus + 1, &off) < 0)
		return error("not an address: \"%s\" (use 0xADDR, SYMBOL or SYMBOL+OFFSET)",
			     esc(arg));
	sb_add(&name, arg, plus ? (size_t)(plus - arg) : strlen(arg));
	if (modules_lookup(&s->pi.mods, sb_str(&name), addr, NULL) < 0) {
		error("no symbol \"%s\" in the target (use 0xADDR, SYMBOL or SYMBOL+OFFSET)",
		      esc(sb_str(&name)));
		sb_release(&name);
		return -1;
	}
	sb_release(&name);
	*addr += off;
	return 0;
}

static json_t *symbolize_json(struct session *s, uint64_t addr)
{
	const struct symbol *sym;
	struct module *mod;
	uint64_t off;

	if (modules_symbolize(&s->pi.mods, addr, &sym, &off, &mod) < 0 || !sym)
		return NULL;
	return off ? json_sprintf("%s+%#" PRIx64, sym->name, off) : json_string(sym->name);
}

static int cmd_x(struct cmd_ctx *ctx, int argc, char **argv)
{
	struct session *s = ctx->s;
	uint64_t addr, n = X_DEFAULT_BYTES;
	unsigned char *buf;
	json_t *r = out_result(), *lines, *sym;

	session_settle(s); /* $pc and $sp as the program has them */
	if (parse_address(s, argv[0], &addr) < 0)
		return -1;
	if (argc > 1 && (parse_size(argv[1], &n) < 0 || !n))
		return cmd_usage_error(ctx->cmd, "not a byte count: \"%s\"", esc(argv[1]));
	if (n > X_MAX_BYTES)
		return error("at most %d bytes at a time", X_MAX_BYTES);
	lines = json_array();
	buf = xmalloc(n);
	if (mem_read(&s->task, addr, buf, n) < 0) {
		free(buf);
		json_decref(lines);
		return error("cannot read %" PRIu64 " bytes at %#" PRIx64 ": not mapped in process "
			     "%d (see 'info maps')",
			     n, addr, s->task.pid);
	}
	for (uint64_t off = 0; off < n; off += X_BYTES_PER_LINE) {
		struct strbuf hex = STRBUF_INIT, text = STRBUF_INIT;
		json_t *l = json_object();

		for (uint64_t i = off; i < off + X_BYTES_PER_LINE && i < n; i++) {
			sb_addf(&hex, "%02x", buf[i]);
			sb_addc(&text, isprint(buf[i]) ? (char)buf[i] : '.');
		}
		json_object_set_new(l, "address", json_hex(addr + off));
		json_object_set_new(l, "hex", json_string(sb_str(&hex)));
		json_object_set_new(l, "ascii", json_string(sb_str(&text)));
		json_array_append_new(lines, l);
		sb_release(&hex);
		sb_release(&text);
	}
	json_object_set_new(r, "address", json_hex(addr));
	json_object_set_new(r, "length", json_integer((json_int_t)n));
	if ((sym = symbolize_json(s, addr)))
		json_object_set_new(r, "symbol", sym);
	json_object_set_new(r, "lines", lines);
	free(buf);
	return 0;
}

static void render_x(const json_t *r)
{
	const json_t *lines = json_object_get(r, "lines"), *l;
	size_t i;

	if (json_object_get(r, "symbol"))
		out_printf("%s <%s>:\n", esc_member(r, "address"), esc_member(r, "symbol"));
	json_array_foreach (lines, i, l) {
		const char *hex = json_string_value(json_object_get(l, "hex"));
		size_t len = strlen(hex);

		out_printf("%-18s ", esc_member(l, "address"));
		for (size_t b = 0; b < X_BYTES_PER_LINE; b++) {
			if (2 * b < len)
				out_printf("%.2s ", hex + 2 * b);
			else
				out_printf("   ");
			if (b == 7)
				out_printf(" ");
		}
		out_printf(" |%s|\n", esc_member(l, "ascii"));
	}
}

/* Decode from a little before pc so the instructions leading to it show, aligned on it. */
static int disas_around(struct task *t, uint64_t pc, size_t n, struct insn **out, size_t *first)
{
	for (uint64_t back = DISAS_CONTEXT_BYTES; back > 0; back--) {
		struct insn *v;
		int got = disasm(t, pc - back, n + DISAS_CONTEXT_BYTES, &v);

		for (int i = 0; i < got; i++) {
			if (v[i].addr != pc)
				continue;
			/* an instruction boundary lands on pc: keep up to 4 before it */
			*first = i > 4 ? (size_t)i - 4 : 0;
			*out = v;
			return got;
		}
		free(v);
	}
	*first = 0;
	return disasm(t, pc, n, out);
}

static int cmd_disas(struct cmd_ctx *ctx, int argc, char **argv)
{
	struct session *s = ctx->s;
	struct task_thread *thr;
	uint64_t addr = 0, pc = 0, n = DISAS_DEFAULT;
	struct insn *v = NULL;
	size_t first = 0;
	json_t *r = out_result(), *insns = json_array(), *sym;
	arch_regs regs;
	int got, at_pc = 0;

	session_settle(s); /* the PC as the program has it */
	thr = default_thread(s);

	if (thr && task_get_regs(&s->task, thr, &regs) == 0)
		pc = arch_pc(&regs);
	if (argc >= 1) {
		if (parse_address(s, argv[0], &addr) < 0) {
			json_decref(insns);
			return -1;
		}
	} else {
		addr = pc;
		at_pc = 1;
	}
	if (argc >= 2 && (parse_u64(argv[1], &n) < 0 || !n || n > DISAS_MAX)) {
		json_decref(insns);
		return cmd_usage_error(ctx->cmd, "not an instruction count (1 to %d): \"%s\"",
				       DISAS_MAX, esc(argv[1]));
	}
	got = at_pc ? disas_around(&s->task, addr, n, &v, &first) : disasm(&s->task, addr, n, &v);
	if (got < 0) {
		json_decref(insns);
		return -1;
	}
	if (got == 0) {
		free(v);
		json_decref(insns);
		if (argc == 1 && addr < 4096)
			return error("cannot disassemble at %#" PRIx64
				     ": no code mapped there; for "
				     "%" PRIu64
				     " instructions at the current PC say 'disas $pc %" PRIu64 "'",
				     addr, addr, addr);
		return error("cannot disassemble at %#" PRIx64 ": no code mapped there (see 'info "
			     "maps')",
			     addr);
	}
	for (size_t i = first; i < (size_t)got && i < first + n; i++) {
		json_t *o = json_object();
		struct strbuf hex = STRBUF_INIT;

		for (size_t b = 0; b < v[i].len; b++)
			sb_addf(&hex, "%02x", v[i].bytes[b]);
		json_object_set_new(o, "address", json_hex(v[i].addr));
		json_object_set_new(o, "bytes", json_string(sb_str(&hex)));
		json_object_set_new(o, "text", json_string(v[i].text));
		if ((sym = symbolize_json(s, v[i].addr)))
			json_object_set_new(o, "where", sym);
		if (v[i].target && (sym = symbolize_json(s, v[i].target)))
			json_object_set_new(o, "target", sym);
		if (v[i].addr == pc)
			json_object_set_new(o, "current", json_true());
		json_array_append_new(insns, o);
		sb_release(&hex);
	}
	free(v);
	json_object_set_new(r, "address", json_hex(addr));
	json_object_set_new(r, "instructions", insns);
	return 0;
}

static void render_disas(const json_t *r)
{
	const json_t *insns = json_object_get(r, "instructions"), *in;
	size_t i;

	out_printf("Dump of machine code at %s:\n", esc_member(r, "address"));
	json_array_foreach (insns, i, in) {
		out_printf("%s %s", json_is_true(json_object_get(in, "current")) ? "=>" : "  ",
			   esc_member(in, "address"));
		if (json_object_get(in, "where"))
			out_printf(" <%s>", esc_member(in, "where"));
		out_printf(":\t%s", esc_member(in, "text"));
		if (json_object_get(in, "target"))
			out_printf(" <%s>", esc_member(in, "target"));
		out_printf("\n");
	}
}

static int complete_symbol_cb(const struct symbol *sym, void *arg)
{
	void **a = arg;
	void (*offer)(const char *, void *) = (void (*)(const char *, void *))a[0];

	offer(sym->name, a[1]);
	return 0;
}

static void complete_symbols(struct cmd_ctx *ctx, const char *prefix,
			     void (*offer)(const char *word, void *arg), void *arg)
{
	void *a[2] = {(void *)offer, arg};
	struct symtab *st;

	if (!ctx->s->python_ok || !*prefix)
		return;
	st = module_symtab(&ctx->s->pi.mods, ctx->s->pi.pymod);
	if (st)
		symtab_each_prefix(st, prefix, complete_symbol_cb, a);
}

/* ----- info memory ----- */

/* "Key:   1234 kB" lines of a /proc file, into a JSON object of bytes. */
static void read_kb_fields(const char *path, const char *const *keys, size_t nkeys, json_t *o)
{
	char line[256];
	FILE *f = fopen(path, "re");

	if (!f)
		return;
	while (fgets(line, sizeof(line), f)) {
		for (size_t i = 0; i < nkeys; i++) {
			size_t klen = strlen(keys[i]);
			unsigned long long kb;

			if (!strncmp(line, keys[i], klen) && line[klen] == ':' &&
			    sscanf(line + klen + 1, "%llu", &kb) == 1)
				json_object_set_new(o, keys[i],
						    json_integer((json_int_t)(kb * 1024)));
		}
	}
	fclose(f);
}

/* The resident size of the [heap] mapping, from smaps. */
static long long heap_rss(pid_t pid)
{
	char path[64], line[512];
	long long rss = -1;
	int in_heap = 0;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/smaps", pid);
	f = fopen(path, "re");
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f)) {
		unsigned long long kb, start, end;

		/* a mapping's header line starts "start-end "; its fields follow it */
		if (sscanf(line, "%llx-%llx ", &start, &end) == 2)
			in_heap = strstr(line, "[heap]") != NULL;
		if (in_heap && sscanf(line, "Rss: %llu kB", &kb) == 1) {
			rss = (long long)kb * 1024;
			break;
		}
	}
	fclose(f);
	return rss;
}

int cmd_info_memory(struct cmd_ctx *ctx, int argc, char **argv)
{
	static const char *const status_keys[] = {"VmRSS",   "VmHWM",	"VmSize",
						  "VmPeak",  "VmData",	"VmSwap",
						  "RssAnon", "RssFile", "RssShmem"};
	static const char *const rollup_keys[] = {"Rss",	   "Pss",	   "Anonymous",
						  "Private_Dirty", "Shared_Clean", "Swap"};
	pid_t pid = ctx->s->task.pid;
	json_t *r = out_result(), *status = json_object(), *rollup = json_object();
	char path[64];
	long long heap;

	(void)argc;
	(void)argv;
	snprintf(path, sizeof(path), "/proc/%d/status", pid);
	read_kb_fields(path, status_keys, ARRAY_SIZE(status_keys), status);
	snprintf(path, sizeof(path), "/proc/%d/smaps_rollup", pid);
	read_kb_fields(path, rollup_keys, ARRAY_SIZE(rollup_keys), rollup);
	if (!json_object_size(status)) {
		json_decref(status);
		json_decref(rollup);
		return error("cannot read the memory figures of process %d", pid);
	}
	json_object_set_new(r, "rss", json_incref(json_object_get(status, "VmRSS")));
	json_object_set_new(r, "peak_rss", json_incref(json_object_get(status, "VmHWM")));
	json_object_set_new(r, "vm_size", json_incref(json_object_get(status, "VmSize")));
	json_object_set_new(r, "vm_data", json_incref(json_object_get(status, "VmData")));
	json_object_set_new(r, "swap", json_incref(json_object_get(status, "VmSwap")));
	if (json_object_get(rollup, "Anonymous")) {
		json_object_set_new(r, "anonymous",
				    json_incref(json_object_get(rollup, "Anonymous")));
		json_object_set_new(r, "pss", json_incref(json_object_get(rollup, "Pss")));
	}
	if (json_object_get(status, "RssFile"))
		json_object_set_new(r, "file_backed",
				    json_incref(json_object_get(status, "RssFile")));
	if (json_object_get(status, "RssShmem"))
		json_object_set_new(r, "shmem", json_incref(json_object_get(status, "RssShmem")));
	heap = heap_rss(pid);
	if (heap >= 0)
		json_object_set_new(r, "heap", json_integer(heap));
	json_decref(status);
	json_decref(rollup);
	return 0;
}

static void render_bytes_row(const json_t *r, const char *key, const char *label)
{
	const json_t *v = json_object_get(r, key);
	struct strbuf sb = STRBUF_INIT;

	if (!json_is_integer(v))
		return;
	sb_add_bytes(&sb, (uint64_t)json_integer_value(v));
	out_printf("  %-26s %12s\n", label, sb_str(&sb));
	sb_release(&sb);
}

void render_info_memory(const json_t *r)
{
	render_bytes_row(r, "rss", "RSS");
	render_bytes_row(r, "peak_rss", "peak RSS");
	render_bytes_row(r, "vm_size", "virtual size (VmSize)");
	render_bytes_row(r, "vm_data", "data + heap (VmData)");
	render_bytes_row(r, "swap", "swapped out");
	render_bytes_row(r, "pss", "proportional (PSS)");
	render_bytes_row(r, "anonymous", "anonymous (resident)");
	render_bytes_row(r, "file_backed", "file-backed (resident)");
	render_bytes_row(r, "shmem", "shared memory (resident)");
	render_bytes_row(r, "heap", "[heap] (brk, resident)");
}

/* ----- info maps ----- */

int cmd_info_maps(struct cmd_ctx *ctx, int argc, char **argv)
{
	struct maps m;
	json_t *arr = json_array();

	(void)argc;
	(void)argv;
	if (maps_read(ctx->s->task.pid, &m) < 0) {
		json_decref(arr);
		return -1;
	}
	for (size_t i = 0; i < m.n; i++) {
		json_t *o = json_object();

		json_object_set_new(o, "start", json_hex(m.v[i].start));
		json_object_set_new(o, "end", json_hex(m.v[i].end));
		json_object_set_new(o, "size",
				    json_integer((json_int_t)(m.v[i].end - m.v[i].start)));
		json_object_set_new(o, "perms", json_string(m.v[i].perms));
		json_object_set_new(o, "offset", json_hex(m.v[i].offset));
		json_object_set_new(o, "path", json_target_cstr(m.v[i].path));
		json_array_append_new(arr, o);
	}
	json_object_set_new(out_result(), "maps", arr);
	maps_release(&m);
	return 0;
}

void render_info_maps(const json_t *r)
{
	const json_t *maps = json_object_get(r, "maps"), *m;
	size_t i;

	out_printf("%-18s %-18s %10s %-5s %10s %s\n", "START", "END", "SIZE", "PERM", "OFFSET",
		   "PATH");
	json_array_foreach (maps, i, m) {
		struct strbuf sz = STRBUF_INIT;

		sb_add_bytes(&sz, (uint64_t)json_int_member(m, "size", 0));
		out_printf("%-18s %-18s %10s %-5s %10s %s\n", esc_member(m, "start"),
			   esc_member(m, "end"), sb_str(&sz), esc_member(m, "perms"),
			   esc_member(m, "offset"), esc_member(m, "path"));
		sb_release(&sz);
	}
}

const struct cmd cmd_mem_cmds[] = {
    {
	.name = "x",
	.usage = "x ADDR [N]",
	.summary = "hexdump N bytes of target memory (default 64)",
	.help = "ADDR is 0xADDR, a symbol, SYMBOL+OFFSET, $pc or $sp.",
	.min_args = 1,
	.max_args = 2,
	.flags = CMD_NEEDS_PYTHON,
	.fn = cmd_x,
	.render = render_x,
	.complete = complete_symbols,
    },
    {
	.name = "disas",
	.aliases = "disassemble",
	.usage = "disas [ADDR|SYMBOL] [N]",
	.summary = "disassemble N instructions (default: around the PC)",
	.help = "Without an address: around the main thread's current instruction, marked "
		"=>.\nCall and jump targets are named by symbol.",
	.max_args = 2,
	.flags = CMD_NEEDS_PYTHON,
	.fn = cmd_disas,
	.render = render_disas,
	.complete = complete_symbols,
    },
    {0},
};

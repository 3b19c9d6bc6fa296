// SPDX-License-Identifier: GPL-3.0-or-later
/*
 * test-symtab: symtab against ELF files compiled here, at run time, with
 * symbols we chose (global, static, weak, versioned, a sized and a zero-sized
 * function, a custom section), as an executable, a PIE and a shared library,
 * with and without .symtab; against readelf's view of real system files
 * (libpython3.12, Debian's stripped python3.11, libc); and against files that
 * are empty, truncated, 32-bit, garbage or corrupted at random, which must
 * give NULL or a consistent result and never a crash.  Everything lives in
 * one mkdtemp directory that the group teardown removes.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "symtab.h"
#include "util.h"

#define LIBPYTHON312	 "/root/.pyenv/versions/3.12.1/lib/libpython3.12.so.1.0"
#define DEBIAN_PYTHON311 "/usr/bin/python3.11"

/* The embedded C reads better laid out by hand. */
/* clang-format off */
static const char *const libc_candidates[] = {
	"/lib/x86_64-linux-gnu/libc.so.6",
	"/usr/lib/x86_64-linux-gnu/libc.so.6",
	"/lib64/libc.so.6",
};

/* Two translation units, so that a static and a global share a name. */
static const char sample_a[] =
	"int global_var = 7;\n"
	"int global_array[100] = { 1 };\n"
	"__attribute__((section(\".mysec\"))) int mysec_var = 42;\n"
	"static int static_counter;\n"
	"__attribute__((noinline, used)) static int static_fn(int x)\n"
	"{\n\treturn x * 3 + static_counter++;\n}\n"
	"__attribute__((noinline)) int global_fn(int x)\n"
	"{\n\treturn static_fn(x) + global_array[x & 63];\n}\n"
	"__attribute__((weak, noinline)) int weak_fn(int x)\n"
	"{\n\treturn x - 1;\n}\n"
	"__attribute__((noinline)) static int dup_name(void)\n"
	"{\n\treturn 1;\n}\n"
	"int call_dup_a(void)\n"
	"{\n\treturn dup_name();\n}\n"
	/* A function of exactly 101 bytes, then a label with no size. */
	"__asm__(\".pushsection .text\\n\"\n"
	"\t\".globl sized_fn\\n.type sized_fn, @function\\n\"\n"
	"\t\"sized_fn:\\n.fill 100, 1, 0x90\\nret\\n.size sized_fn, 101\\n\"\n"
	"\t\".globl zero_label\\n.type zero_label, @function\\n\"\n"
	"\t\"zero_label:\\n.fill 32, 1, 0x90\\nret\\n\"\n"
	/* 64 bytes of outer_fn, with 8 bytes at +16 named on their own */
	"\t\".globl outer_fn\\n.type outer_fn, @function\\n\"\n"
	"\t\".globl inner_part\\n.type inner_part, @object\\n\"\n"
	"\t\"outer_fn:\\n.fill 16, 1, 0x90\\n\"\n"
	"\t\"inner_part:\\n.fill 8, 1, 0x90\\n.size inner_part, 8\\n\"\n"
	"\t\".fill 39, 1, 0x90\\nret\\n.size outer_fn, 64\\n\"\n"
	"\t\".popsection\\n\");\n"
	/* an untyped local, at a lower address than b.c's function of the same name */
	"__asm__(\".pushsection .text\\n\"\n"
	"\t\"pref_name:\\nnop\\n.size pref_name, 1\\n.popsection\\n\");\n"
	"int main(void)\n"
	"{\n\treturn global_fn(1) + weak_fn(2) + mysec_var + global_var + call_dup_a();\n}\n";

static const char sample_b[] =
	"int dup_name(void)\n{\n\treturn 2;\n}\n"
	"__attribute__((noinline)) static int pref_name(void)\n"
	"{\n\treturn 5;\n}\n"
	"int call_pref(void)\n"
	"{\n\treturn pref_name();\n}\n";

/* An old and a default version of one name. */
static const char sample_v[] =
	"__asm__(\".symver versioned_fn_v1, versioned_fn@VERS_1\");\n"
	"__asm__(\".symver versioned_fn_v2, versioned_fn@@VERS_2\");\n"
	"int versioned_fn_v1(void)\n{\n\treturn 1;\n}\n"
	"int versioned_fn_v2(void)\n{\n\treturn 2;\n}\n"
	"int plain_fn(void)\n{\n\treturn 3;\n}\n";

static const char sample_vmap[] = "VERS_1 { global: versioned_fn; plain_fn; local: *; };\n"
				  "VERS_2 { global: versioned_fn; } VERS_1;\n";

struct sample {
	const char *file;
	const char *cc_flags; /* NULL: a stripped copy of the sample before it */
	int type;
	int has_main_symbols; /* built from sample_a/sample_b */
};

static const struct sample samples[] = {
	{ "exe", "-no-pie -rdynamic a.c b.c", ET_EXEC, 1 },
	{ "exe.stripped", NULL, ET_EXEC, 1 },
	{ "pie", "-fPIE -pie -rdynamic a.c b.c", ET_DYN, 1 },
	{ "pie.stripped", NULL, ET_DYN, 1 },
	{ "lib.so", "-fPIC -shared a.c b.c", ET_DYN, 1 },
	{ "lib.so.stripped", NULL, ET_DYN, 1 },
	{ "ver.so", "-fPIC -shared -Wl,--version-script=v.map v.c", ET_DYN, 0 },
	{ "ver.so.stripped", NULL, ET_DYN, 0 },
};
/* clang-format on */

static char tmpdir[PATH_MAX];

static const char *tpath(char *buf, size_t size, const char *name)
{
	int n = snprintf(buf, size, "%s/%s", tmpdir, name);

	if (n < 0 || (size_t)n >= size)
		fail_msg("path too long: %s/%s", tmpdir, name);
	return buf;
}

#define TPATH(buf, name) tpath(buf, sizeof(buf), name)

static int is_stripped(const char *file)
{
	return strstr(file, ".stripped") != NULL;
}

static int run(const char *fmt, ...) PRINTF(1, 2);
static int run(const char *fmt, ...)
{
	char cmd[4 * PATH_MAX];
	va_list ap;
	int st;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	st = system(cmd);
	return st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : -1;
}

static int write_file(const char *path, const void *data, size_t n)
{
	FILE *f = fopen(path, "wb");
	int ok;

	if (!f)
		return -1;
	ok = fwrite(data, 1, n, f) == n;
	return fclose(f) == 0 && ok ? 0 : -1;
}

static unsigned char *read_whole(const char *path, size_t *n)
{
	FILE *f = fopen(path, "rb");
	unsigned char *buf = NULL;
	size_t alloc = 0, len = 0, r;

	if (!f)
		return NULL;
	do {
		if (len == alloc) {
			alloc = alloc ? alloc * 2 : 65536;
			buf = xrealloc(buf, alloc);
		}
		r = fread(buf + len, 1, alloc - len, f);
		len += r;
	} while (r);
	fclose(f);
	*n = len;
	return buf;
}

static int have_tool(const char *tool)
{
	return run("command -v %s >/dev/null 2>&1", tool) == 0;
}

static int remove_one(const char *path, const struct stat *sb UNUSED, int flag UNUSED,
		      struct FTW *ftw UNUSED)
{
	remove(path);
	return 0;
}

static int group_teardown(void **state UNUSED)
{
	if (tmpdir[0])
		nftw(tmpdir, remove_one, 16, FTW_DEPTH | FTW_PHYS);
	return 0;
}

/* cmocka skips the teardown when the setup fails: clean up here then. */
static int setup_failed(void)
{
	run("cat '%s/cc.log' >&2 2>/dev/null", tmpdir);
	group_teardown(NULL);
	return -1;
}

static int group_setup(void **state UNUSED)
{
	const char *base = getenv("TMPDIR");
	char p[PATH_MAX];
	size_t i;

	snprintf(tmpdir, sizeof(tmpdir), "%s/test-symtab.XXXXXX", base && *base ? base : "/tmp");
	if (!mkdtemp(tmpdir)) {
		fprintf(stderr, "mkdtemp %s: %s\n", tmpdir, strerror(errno));
		return -1;
	}
	if (write_file(TPATH(p, "a.c"), sample_a, strlen(sample_a)) ||
	    write_file(TPATH(p, "b.c"), sample_b, strlen(sample_b)) ||
	    write_file(TPATH(p, "v.c"), sample_v, strlen(sample_v)) ||
	    write_file(TPATH(p, "v.map"), sample_vmap, strlen(sample_vmap)))
		return setup_failed();

	for (i = 0; i < ARRAY_SIZE(samples); i++) {
		const struct sample *s = &samples[i];
		int r;

		if (s->cc_flags)
			r = run("cd '%s' && cc -O0 -w -o '%s' %s 2>>cc.log", tmpdir, s->file,
				s->cc_flags);
		else
			r = run("cd '%s' && strip -o '%s' '%s' 2>>cc.log", tmpdir, s->file,
				samples[i - 1].file);
		if (r) {
			fprintf(stderr, "cannot build %s\n", s->file);
			return setup_failed();
		}
	}
	/* A relocatable object: ELF, 64-bit, but no addresses to speak of. */
	if (run("cd '%s' && cc -O0 -w -c -o a.o a.c 2>>cc.log", tmpdir))
		return setup_failed();
	return 0;
}

/* ---- readelf's view of a file, to compare against ---- */

struct ref_sym {
	char *name; /* as symtab names it: "foo@@V" is foo, "foo@V" in .symtab stays */
	uint64_t value, size;
	int type;
	int global;
	int hidden;	/* a .dynsym entry of a non-default version */
	int in_section; /* Ndx is a section, not ABS or COM */
};

struct ref {
	struct ref_sym *syms;
	size_t n;
};

static int ref_type(const char *t)
{
	/* clang-format off */
	static const struct {
		const char *name;
		int type;
	} types[] = {
		{ "NOTYPE", STT_NOTYPE }, { "OBJECT", STT_OBJECT }, { "FUNC", STT_FUNC },
		{ "SECTION", STT_SECTION }, { "FILE", STT_FILE }, { "COMMON", STT_COMMON },
		{ "TLS", STT_TLS }, { "IFUNC", STT_GNU_IFUNC },
	};
	/* clang-format on */
	size_t i;

	for (i = 0; i < ARRAY_SIZE(types); i++)
		if (!strcmp(t, types[i].name))
			return types[i].type;
	return -1;
}

static void ref_load(struct ref *r, const char *path)
{
	char cmd[PATH_MAX + 64], line[4096];
	size_t alloc = 0;
	int dynamic = 0;
	FILE *f;

	memset(r, 0, sizeof(*r));
	snprintf(cmd, sizeof(cmd), "readelf -sW '%s' 2>/dev/null", path);
	f = popen(cmd, "r");
	assert_non_null(f);
	while (fgets(line, sizeof(line), f)) {
		char val[32], size[32], type[16], bind[16], vis[16], ndx[16], *name, *at;
		struct ref_sym *s;
		int off = 0, hidden, fields;

		if (strstr(line, "Symbol table '")) {
			dynamic = strstr(line, "'.dynsym'") != NULL;
			continue;
		}
		/* "  12: 0000000000001139    11 FUNC    GLOBAL DEFAULT   14 name" */
		fields = sscanf(line, " %*u: %31s %31s %15s %15s %15s %15s %n", val, size, type,
				bind, vis, ndx, &off);
		if (fields != 6 || !off)
			continue;
		if (ndx[0] == '[' || !strcmp(ndx, "UND"))
			continue;
		name = line + off;
		name[strcspn(name, "\n")] = '\0';
		if (ref_type(type) == STT_SECTION || ref_type(type) == STT_FILE)
			continue;
		if (dynamic) {
			char *paren = strstr(name, " (");

			if (paren)
				*paren = '\0';
		}
		at = strchr(name, '@');
		hidden = 0;
		if (dynamic && at) {
			/* readelf shows .gnu.version as foo@V (old) or foo@@V (default) */
			hidden = at[1] != '@';
			*at = '\0';
		} else if (at && at != name && at[1] == '@') {
			*at = '\0'; /* .symtab's own foo@@V is the default foo */
		}
		if (!*name)
			continue;
		if (r->n == alloc) {
			alloc = alloc ? alloc * 2 : 1024;
			r->syms = xrealloc(r->syms, alloc * sizeof(*r->syms));
		}
		s = &r->syms[r->n++];
		s->hidden = hidden;
		s->value = strtoull(val, NULL, 16);
		s->size = strtoull(size, NULL, 0);
		s->type = ref_type(type);
		s->global = strcmp(bind, "LOCAL") != 0;
		s->in_section = strcmp(ndx, "ABS") && strcmp(ndx, "COM");
		s->name = xstrdup(name);
	}
	pclose(f);
}

static void ref_free(struct ref *r)
{
	size_t i;

	for (i = 0; i < r->n; i++)
		free(r->syms[i].name);
	free(r->syms);
	memset(r, 0, sizeof(*r));
}

/* symtab's documented preference between symbols of one name, higher wins. */
static int ref_rank(const struct ref_sym *s)
{
	int r = s->global ? (s->hidden ? 2 : 4) : 0;

	return r + (s->type == STT_FUNC || s->type == STT_OBJECT);
}

static int ref_addressable(const struct ref_sym *s)
{
	return s->in_section && (s->type == STT_FUNC || s->type == STT_OBJECT);
}

static int ref_cmp_name(const void *pa, const void *pb)
{
	const struct ref_sym *a = pa, *b = pb;

	return strcmp(a->name, b->name);
}

/* What symtab_find() must return for the run [from, to) of one name. */
static const struct ref_sym *ref_best(const struct ref_sym *from, const struct ref_sym *to)
{
	const struct ref_sym *best = from, *s;

	for (s = from + 1; s < to; s++) {
		int rs = ref_rank(s), rb = ref_rank(best);

		if (rs != rb) {
			if (rs > rb)
				best = s;
			continue;
		}
		if ((s->size != 0) != (best->size != 0)) {
			if (s->size)
				best = s;
			continue;
		}
		if (s->value < best->value)
			best = s;
	}
	return best;
}

/* Every name readelf reports: symtab_find() must agree, by the rules. */
static void check_find_all(const struct symtab *st, struct ref *r)
{
	size_t i, j;

	qsort(r->syms, r->n, sizeof(*r->syms), ref_cmp_name);
	for (i = 0; i < r->n; i = j) {
		const struct ref_sym *want;
		const struct symbol *got;

		for (j = i + 1; j < r->n && !strcmp(r->syms[i].name, r->syms[j].name); j++)
			;
		want = ref_best(&r->syms[i], &r->syms[j]);
		got = symtab_find(st, want->name);
		if (!got)
			fail_msg("symbol '%s' not found", want->name);
		assert_string_equal(got->name, want->name);
		if (got->value != want->value)
			fail_msg("symbol '%s': value %#" PRIx64 ", readelf says %#" PRIx64,
				 want->name, got->value, want->value);
		assert_int_equal(got->global, want->global);
		assert_int_equal(got->type, want->type);
	}
}

/* The address lookup rule, by brute force over readelf's symbols. */
static void check_lookup_at(const struct symtab *st, const struct ref *r, uint64_t addr)
{
	const struct symbol *got = symtab_lookup_addr(st, addr);
	uint64_t best_in = 0, below = 0;
	int have_in = 0, have_below = 0, sized_below = 0;
	size_t i;

	for (i = 0; i < r->n; i++) {
		const struct ref_sym *s = &r->syms[i];

		if (!ref_addressable(s) || s->value > addr)
			continue;
		if (addr - s->value < s->size && (!have_in || s->value > best_in)) {
			best_in = s->value;
			have_in = 1;
		}
		if (!have_below || s->value > below) {
			below = s->value;
			have_below = 1;
			sized_below = 0;
		}
		if (s->value == below && s->size)
			sized_below = 1;
	}
	if (have_in) {
		if (!got)
			fail_msg("nothing found at %#" PRIx64 " (inside a symbol at %#" PRIx64 ")",
				 addr, best_in);
		assert_true(got->value <= addr && addr - got->value < got->size);
		assert_int_equal(got->value, best_in);
	} else if (!have_below || sized_below) {
		if (got)
			fail_msg("%#" PRIx64 " is in no symbol, but symtab says '%s' at %#" PRIx64,
				 addr, got->name, got->value);
	} else {
		if (!got)
			fail_msg("nothing found at %#" PRIx64 " (after a label at %#" PRIx64 ")",
				 addr, below);
		assert_int_equal(got->value, below);
		assert_int_equal(got->size, 0);
	}
}

/* Probe the start, middle, end and neighbours of up to max symbols. */
static void check_lookup_all(const struct symtab *st, const struct ref *r, size_t max)
{
	size_t i, step = r->n > max ? r->n / max : 1;

	check_lookup_at(st, r, 0);
	check_lookup_at(st, r, UINT64_MAX);
	check_lookup_at(st, r, UINT64_MAX / 2);
	for (i = 0; i < r->n; i += step) {
		const struct ref_sym *s = &r->syms[i];

		if (!ref_addressable(s))
			continue;
		check_lookup_at(st, r, s->value);
		check_lookup_at(st, r, s->value + s->size / 2);
		check_lookup_at(st, r, s->value + s->size);
		if (s->value)
			check_lookup_at(st, r, s->value - 1);
	}
}

struct prefix_walk {
	const char *prefix;
	char last[512];
	size_t count, stop_after;
};

static int prefix_cb(const struct symbol *sym, void *arg)
{
	struct prefix_walk *w = arg;

	assert_int_equal(strncmp(sym->name, w->prefix, strlen(w->prefix)), 0);
	assert_true(sym->name[0] != '\0');
	/* Sorted and without repeats: strictly increasing. */
	if (w->count)
		assert_true(strcmp(w->last, sym->name) < 0);
	snprintf(w->last, sizeof(w->last), "%s", sym->name);
	w->count++;
	return w->stop_after && w->count >= w->stop_after;
}

static size_t walk_prefix(const struct symtab *st, const char *prefix, size_t stop_after)
{
	struct prefix_walk w;

	memset(&w, 0, sizeof(w));
	w.prefix = prefix;
	w.stop_after = stop_after;
	symtab_each_prefix(st, prefix, prefix_cb, &w);
	return w.count;
}

/* symtab_each_prefix() sees each distinct name readelf shows with prefix once. */
static void check_prefix(const struct symtab *st, const struct ref *r, const char *prefix)
{
	size_t i, want = 0, plen = strlen(prefix);
	const char *prev = NULL;

	/* r is sorted by name (check_find_all ran first) */
	for (i = 0; i < r->n; i++) {
		if (strncmp(r->syms[i].name, prefix, plen))
			continue;
		if (!prev || strcmp(prev, r->syms[i].name))
			want++;
		prev = r->syms[i].name;
	}
	assert_int_equal(walk_prefix(st, prefix, 0), want);
	if (want > 3)
		assert_int_equal(walk_prefix(st, prefix, 3), 3);
}

struct ref_sect {
	char name[128];
	uint64_t addr, size;
};

/* The sections readelf shows: symtab_section() must report the first of each name. */
static void check_sections(const struct symtab *st, const char *path)
{
	char cmd[PATH_MAX + 64], line[1024];
	struct ref_sect seen[256];
	size_t nseen = 0, i;
	FILE *f;

	snprintf(cmd, sizeof(cmd), "readelf -SW '%s' 2>/dev/null", path);
	f = popen(cmd, "r");
	assert_non_null(f);
	while (fgets(line, sizeof(line), f)) {
		char *br = strchr(line, ']'), name[128], type[64];
		unsigned idx;
		uint64_t addr, off, size;
		int dup = 0;

		if (!br || sscanf(line, " [%u]", &idx) != 1 || idx == 0)
			continue;
		if (sscanf(br + 1, " %127s %63s %" SCNx64 " %" SCNx64 " %" SCNx64, name, type,
			   &addr, &off, &size) != 5)
			continue;
		for (i = 0; i < nseen; i++)
			dup |= !strcmp(seen[i].name, name);
		if (dup || nseen == ARRAY_SIZE(seen))
			continue;
		snprintf(seen[nseen].name, sizeof(seen[nseen].name), "%s", name);
		seen[nseen].addr = addr;
		seen[nseen++].size = size;
	}
	pclose(f);
	assert_true(nseen > 5);
	for (i = 0; i < nseen; i++) {
		uint64_t addr = 1, size = 1;

		if (symtab_section(st, seen[i].name, &addr, &size))
			fail_msg("section '%s' not found", seen[i].name);
		assert_int_equal(addr, seen[i].addr);
		assert_int_equal(size, seen[i].size);
	}
	assert_int_equal(symtab_section(st, ".no-such-section", NULL, NULL), -1);
	assert_int_equal(symtab_section(st, "", NULL, NULL), -1);
}

/* The PT_LOAD rows readelf shows, in order. */
static void check_segments(const struct symtab *st, const char *path)
{
	char cmd[PATH_MAX + 64], line[1024];
	const struct symtab_segment *segs;
	size_t nsegs = symtab_segments(st, &segs), n = 0;
	FILE *f;

	snprintf(cmd, sizeof(cmd), "readelf -lW '%s' 2>/dev/null", path);
	f = popen(cmd, "r");
	assert_non_null(f);
	while (fgets(line, sizeof(line), f)) {
		uint64_t off, vaddr, paddr, filesz, memsz;
		uint32_t flags = 0;
		int end = 0;
		char *p;

		if (sscanf(line,
			   " LOAD %" SCNx64 " %" SCNx64 " %" SCNx64 " %" SCNx64 " %" SCNx64 "%n",
			   &off, &vaddr, &paddr, &filesz, &memsz, &end) != 5)
			continue;
		/* then "R E", "RW", ... and the alignment, which starts 0x */
		for (p = line + end; *p && strncmp(p, "0x", 2); p++) {
			flags |= *p == 'R' ? PF_R : 0;
			flags |= *p == 'W' ? PF_W : 0;
			flags |= *p == 'E' ? PF_X : 0;
		}
		assert_true(n < nsegs);
		assert_int_equal(segs[n].offset, off);
		assert_int_equal(segs[n].vaddr, vaddr);
		assert_int_equal(segs[n].filesz, filesz);
		assert_int_equal(segs[n].memsz, memsz);
		assert_int_equal(segs[n].flags, flags);
		n++;
	}
	pclose(f);
	assert_true(n > 0);
	assert_int_equal(n, nsegs);
}

/* Everything readelf can tell us about path, compared. */
static void check_against_readelf(const struct symtab *st, const char *path, size_t probes)
{
	static const char *const prefixes[] = {
	    "", "_", "Py", "PyUnicode_", "_Py", "global", "zzzz-none", "\x7f",
	};
	struct ref r;
	size_t i;

	ref_load(&r, path);
	assert_true(r.n > 0);
	check_find_all(st, &r);
	check_lookup_all(st, &r, probes);
	for (i = 0; i < ARRAY_SIZE(prefixes); i++)
		check_prefix(st, &r, prefixes[i]);
	check_sections(st, path);
	check_segments(st, path);
	ref_free(&r);
}

static int need_binutils(void)
{
	if (have_tool("readelf"))
		return 0;
	print_message("readelf is not installed\n");
	return -1;
}

/* ---- the samples we compiled ---- */

static void test_samples_against_readelf(void **state UNUSED)
{
	char p[PATH_MAX];
	size_t i;

	if (need_binutils())
		skip();
	for (i = 0; i < ARRAY_SIZE(samples); i++) {
		struct symtab *st = symtab_open(TPATH(p, samples[i].file));

		assert_non_null(st);
		assert_int_equal(symtab_elf_type(st), samples[i].type);
		assert_int_equal(symtab_has_full_symbols(st), !is_stripped(samples[i].file));
		check_against_readelf(st, p, SIZE_MAX);
		symtab_free(st);
	}
}

static const struct symbol *must_find(const struct symtab *st, const char *name)
{
	const struct symbol *s = symtab_find(st, name);

	if (!s)
		fail_msg("symbol '%s' not found", name);
	assert_string_equal(s->name, name);
	return s;
}

static void check_sample_symbols(const struct sample *smp)
{
	const struct symbol *s, *sized, *zero, *fn, *outer, *inner;
	const struct symtab_segment *segs;
	uint64_t addr, size;
	int full = !is_stripped(smp->file), code_seg = 0, data_seg = 0;
	char p[PATH_MAX];
	struct symtab *st = symtab_open(TPATH(p, smp->file));
	size_t i, nsegs;

	assert_non_null(st);
	assert_int_equal(symtab_elf_type(st), smp->type);
	assert_int_equal(symtab_has_full_symbols(st), full);

	fn = must_find(st, "global_fn");
	assert_int_equal(fn->type, STT_FUNC);
	assert_int_equal(fn->global, 1);
	assert_true(fn->size > 0);
	s = symtab_lookup_addr(st, fn->value + fn->size / 2);
	assert_non_null(s);
	assert_string_equal(s->name, "global_fn");

	s = must_find(st, "weak_fn");
	assert_int_equal(s->type, STT_FUNC);
	assert_int_equal(s->global, 1);

	s = must_find(st, "global_var");
	assert_int_equal(s->type, STT_OBJECT);
	assert_int_equal(s->size, sizeof(int));
	s = must_find(st, "global_array");
	assert_int_equal(s->size, 100 * sizeof(int));
	assert_ptr_equal(symtab_lookup_addr(st, s->value + 123), s);

	sized = must_find(st, "sized_fn");
	assert_int_equal(sized->size, 101);
	zero = must_find(st, "zero_label");
	assert_int_equal(zero->size, 0);
	assert_int_equal(zero->value, sized->value + 101);
	assert_ptr_equal(symtab_lookup_addr(st, sized->value), sized);
	assert_ptr_equal(symtab_lookup_addr(st, sized->value + 100), sized);
	/* past sized_fn: the zero-sized label below is the answer */
	assert_ptr_equal(symtab_lookup_addr(st, zero->value), zero);
	assert_ptr_equal(symtab_lookup_addr(st, zero->value + 20), zero);

	/* Past inner_part but still inside outer_fn, which encloses it. */
	outer = must_find(st, "outer_fn");
	inner = must_find(st, "inner_part");
	assert_int_equal(inner->value, outer->value + 16);
	assert_ptr_equal(symtab_lookup_addr(st, outer->value + 8), outer);
	assert_ptr_equal(symtab_lookup_addr(st, outer->value + 20), inner);
	assert_ptr_equal(symtab_lookup_addr(st, outer->value + 24), outer);
	assert_ptr_equal(symtab_lookup_addr(st, outer->value + 63), outer);
	assert_true(symtab_lookup_addr(st, outer->value + 64) != outer);

	/* The static and the global dup_name: the global one wins. */
	s = must_find(st, "dup_name");
	assert_int_equal(s->global, 1);

	s = must_find(st, "mysec_var");
	assert_int_equal(symtab_section(st, ".mysec", &addr, &size), 0);
	assert_int_equal(addr, s->value);
	assert_int_equal(size, sizeof(int));

	assert_int_equal(symtab_section(st, ".text", &addr, &size), 0);
	assert_true(fn->value >= addr && fn->value < addr + size);
	assert_int_equal(symtab_section(st, ".dynsym", &addr, &size), 0);
	assert_true(size > 0);
	assert_int_equal(symtab_section(st, ".symtab", NULL, NULL), full ? 0 : -1);

	if (full) {
		s = must_find(st, "static_fn");
		assert_int_equal(s->global, 0);
		assert_int_equal(s->type, STT_FUNC);
		assert_ptr_equal(symtab_lookup_addr(st, s->value + 1), s);
		/* two local pref_name: the function beats the untyped label below it */
		s = must_find(st, "pref_name");
		assert_int_equal(s->type, STT_FUNC);
		assert_int_equal(s->size > 1, 1);
		s = must_find(st, "static_counter");
		assert_int_equal(s->global, 0);
		assert_int_equal(s->type, STT_OBJECT);
	} else {
		assert_null(symtab_find(st, "static_fn"));
		assert_null(symtab_find(st, "static_counter"));
	}
	assert_null(symtab_find(st, "no_such_symbol"));
	assert_null(symtab_find(st, ""));
	assert_null(symtab_find(st, "global_fn_"));
	assert_null(symtab_find(st, "global_f"));

	/* Loadable segments: an executable one holds the code, a writable one the data. */
	nsegs = symtab_segments(st, &segs);
	assert_true(nsegs >= 2);
	s = must_find(st, "global_var");
	for (i = 0; i < nsegs; i++) {
		if ((segs[i].flags & PF_X) && fn->value - segs[i].vaddr < segs[i].memsz)
			code_seg++;
		if ((segs[i].flags & PF_W) && s->value - segs[i].vaddr < segs[i].memsz)
			data_seg++;
		if (i)
			assert_true(segs[i].vaddr >= segs[i - 1].vaddr);
	}
	assert_int_equal(code_seg, 1);
	assert_int_equal(data_seg, 1);

	assert_int_equal(walk_prefix(st, "global_", 0), 3); /* _array, _fn, _var */
	assert_int_equal(walk_prefix(st, "global_", 2), 2);
	assert_int_equal(walk_prefix(st, "dup_name", 0), 1); /* two symbols, one name */
	assert_int_equal(walk_prefix(st, "zero_label", 0), 1);
	assert_int_equal(walk_prefix(st, "zero_label_", 0), 0);
	assert_int_equal(walk_prefix(st, "static_", 0), full ? 2 : 0);
	symtab_free(st);
}

static void test_sample_symbols(void **state UNUSED)
{
	size_t i;

	for (i = 0; i < ARRAY_SIZE(samples); i++)
		if (samples[i].has_main_symbols)
			check_sample_symbols(&samples[i]);
}

/* A stripped file keeps its layout: the same segments and section addresses. */
static void test_strip_keeps_layout(void **state UNUSED)
{
	size_t i, j;

	for (i = 0; i < ARRAY_SIZE(samples); i += 2) {
		char p1[PATH_MAX], p2[PATH_MAX];
		struct symtab *full = symtab_open(TPATH(p1, samples[i].file));
		struct symtab *stripped = symtab_open(TPATH(p2, samples[i + 1].file));
		const struct symtab_segment *a, *b;
		size_t na, nb;
		uint64_t addr1, addr2;

		assert_non_null(full);
		assert_non_null(stripped);
		assert_true(is_stripped(samples[i + 1].file) && !is_stripped(samples[i].file));
		na = symtab_segments(full, &a);
		nb = symtab_segments(stripped, &b);
		assert_int_equal(na, nb);
		for (j = 0; j < na; j++)
			assert_memory_equal(&a[j], &b[j], sizeof(a[j]));
		assert_int_equal(symtab_section(full, ".text", &addr1, NULL), 0);
		assert_int_equal(symtab_section(stripped, ".text", &addr2, NULL), 0);
		assert_int_equal(addr1, addr2);
		symtab_free(full);
		symtab_free(stripped);
	}
}

/* versioned_fn@VERS_1 and versioned_fn@@VERS_2: plain versioned_fn is the default. */
static void test_symbol_versions(void **state UNUSED)
{
	static const char *const files[] = {"ver.so", "ver.so.stripped"};
	size_t i;

	for (i = 0; i < ARRAY_SIZE(files); i++) {
		char p[PATH_MAX];
		struct symtab *st = symtab_open(TPATH(p, files[i]));
		const struct symbol *s, *old;

		assert_non_null(st);
		s = must_find(st, "versioned_fn");
		assert_int_equal(s->global, 1);
		assert_null(symtab_find(st, "versioned_fn@@VERS_2"));
		must_find(st, "plain_fn");
		if (symtab_has_full_symbols(st)) {
			assert_int_equal(s->value, must_find(st, "versioned_fn_v2")->value);
			old = must_find(st, "versioned_fn@VERS_1");
			assert_int_equal(old->value, must_find(st, "versioned_fn_v1")->value);
			assert_true(old->value != s->value);
		}
		/* The old version's code still has a name. */
		assert_non_null(symtab_lookup_addr(st, s->value));
		symtab_free(st);
	}
}

/* The result owns its strings: deleting or clobbering the file changes nothing. */
static void test_outlives_file(void **state UNUSED)
{
	char src[PATH_MAX], copy[PATH_MAX];
	const struct symbol *s;
	struct symtab *st;
	uint64_t addr;

	assert_int_equal(run("cp '%s' '%s'", TPATH(src, "lib.so"), TPATH(copy, "lib.copy")), 0);
	st = symtab_open(copy);
	assert_non_null(st);
	assert_int_equal(truncate(copy, 0), 0);
	assert_int_equal(unlink(copy), 0);
	s = must_find(st, "global_fn");
	assert_ptr_equal(symtab_lookup_addr(st, s->value + 1), s);
	assert_int_equal(symtab_section(st, ".mysec", &addr, NULL), 0);
	assert_int_equal(walk_prefix(st, "", 0) > 10, 1);
	symtab_free(st);
}

/* ---- real files on this system ---- */

/* The value readelf gives name in path, or 0 when absent (or readelf is). */
static uint64_t readelf_value(const char *path, const char *name)
{
	struct ref r;
	uint64_t v = 0;
	size_t i;

	ref_load(&r, path);
	for (i = 0; i < r.n; i++)
		if (!strcmp(r.syms[i].name, name) && r.syms[i].global && !r.syms[i].hidden)
			v = r.syms[i].value;
	ref_free(&r);
	return v;
}

static void test_libpython312(void **state UNUSED)
{
	const struct symbol *s;
	struct symtab *st;
	uint64_t want;

	if (access(LIBPYTHON312, R_OK)) {
		print_message("%s is absent\n", LIBPYTHON312);
		skip();
	}
	if (need_binutils())
		skip();
	st = symtab_open(LIBPYTHON312);
	assert_non_null(st);
	assert_int_equal(symtab_elf_type(st), ET_DYN);
	assert_int_equal(symtab_has_full_symbols(st), 1);
	want = readelf_value(LIBPYTHON312, "_PyRuntime");
	assert_true(want != 0);
	s = must_find(st, "_PyRuntime");
	assert_int_equal(s->value, want);
	assert_int_equal(s->type, STT_OBJECT);
	assert_ptr_equal(symtab_lookup_addr(st, s->value + s->size / 2), s);
	s = must_find(st, "PyObject_Malloc");
	assert_int_equal(s->type, STT_FUNC);
	assert_ptr_equal(symtab_lookup_addr(st, s->value + 1), s);
	check_against_readelf(st, LIBPYTHON312, 1500);
	symtab_free(st);
}

static void test_debian_python311(void **state UNUSED)
{
	static const char *const names[] = {"_PyRuntime", "Py_Version", "Py_Main"};
	struct symtab *st;
	size_t i;

	if (access(DEBIAN_PYTHON311, R_OK)) {
		print_message("%s is absent\n", DEBIAN_PYTHON311);
		skip();
	}
	if (need_binutils())
		skip();
	st = symtab_open(DEBIAN_PYTHON311);
	assert_non_null(st);
	/* Debian strips it: only .dynsym */
	assert_int_equal(symtab_has_full_symbols(st), 0);
	assert_int_equal(symtab_section(st, ".dynsym", NULL, NULL), 0);
	for (i = 0; i < ARRAY_SIZE(names); i++) {
		uint64_t want = readelf_value(DEBIAN_PYTHON311, names[i]);
		const struct symbol *s = must_find(st, names[i]);

		assert_true(want != 0);
		assert_int_equal(s->value, want);
		assert_int_equal(s->global, 1);
	}
	check_against_readelf(st, DEBIAN_PYTHON311, 1500);
	symtab_free(st);
}

/* libc exports memcpy twice: @GLIBC_2.2.5 (old) and @@GLIBC_2.14 (default). */
static void test_libc_versions(void **state UNUSED)
{
	const char *path = NULL;
	struct symtab *st;
	struct ref r;
	uint64_t want_default = 0, old = 0;
	size_t i;

	for (i = 0; i < ARRAY_SIZE(libc_candidates) && !path; i++)
		if (!access(libc_candidates[i], R_OK))
			path = libc_candidates[i];
	if (!path || need_binutils())
		skip();
	st = symtab_open(path);
	assert_non_null(st);
	ref_load(&r, path);
	for (i = 0; i < r.n; i++) {
		if (strcmp(r.syms[i].name, "memcpy"))
			continue;
		if (r.syms[i].hidden)
			old = r.syms[i].value;
		else
			want_default = r.syms[i].value;
	}
	assert_true(want_default != 0);
	assert_int_equal(must_find(st, "memcpy")->value, want_default);
	if (!old)
		print_message("no old memcpy version in %s\n", path);
	assert_non_null(symtab_lookup_addr(st, must_find(st, "malloc")->value + 1));
	check_against_readelf(st, path, 1500);
	ref_free(&r);
	symtab_free(st);
}

/* Opening must take a few ms even for a full .symtab (~15k symbols). */
static void test_open_speed(void **state UNUSED)
{
	static const char *const paths[] = {LIBPYTHON312, DEBIAN_PYTHON311};
	size_t i;
	int tried = 0;

	for (i = 0; i < ARRAY_SIZE(paths); i++) {
		uint64_t best = UINT64_MAX;
		int round;

		if (access(paths[i], R_OK))
			continue;
		for (round = 0; round < 10; round++) {
			uint64_t t0 = now_us(), t;
			struct symtab *st = symtab_open(paths[i]);

			t = now_us() - t0;
			assert_non_null(st);
			symtab_free(st);
			if (t < best)
				best = t;
		}
		print_message("symtab_open %s: %.2f ms (best of 10)\n", paths[i], best / 1000.0);
		/* generous: sanitizer builds and loaded machines must pass too */
		assert_true(best < 200 * 1000);
		tried = 1;
	}
	if (!tried)
		skip();
}

/* ---- files that are not what they claim ---- */

/* path must give NULL and one error line that names it and contains what. */
static void expect_rejected(const char *path, const char *what)
{
	struct symtab *st;
	char quoted[PATH_MAX + 2];

	error_quiet(1);
	st = symtab_open(path);
	error_quiet(0);
	if (st)
		fail_msg("'%s' was accepted", path);
	snprintf(quoted, sizeof(quoted), "'%s'", path);
	if (!strstr(last_error(), quoted) || (what && !strstr(last_error(), what)) ||
	    strchr(last_error(), '\n'))
		fail_msg("'%s': unexpected error \"%s\"", path, last_error());
}

static void test_reject_not_elf(void **state UNUSED)
{
	static const char text[] = "#!/bin/sh\necho this is not an ELF file\n";
	char p[PATH_MAX];

	expect_rejected(TPATH(p, "no-such-file"), "No such file");
	expect_rejected(tmpdir, "not a regular file");
	expect_rejected("/dev/null", "not a regular file");
	assert_int_equal(write_file(TPATH(p, "empty"), "", 0), 0);
	expect_rejected(p, "not an ELF file");
	assert_int_equal(write_file(TPATH(p, "text"), text, sizeof(text) - 1), 0);
	expect_rejected(p, "not an ELF file");
	assert_int_equal(write_file(TPATH(p, "magic-only"), ELFMAG, SELFMAG), 0);
	expect_rejected(p, NULL);
	expect_rejected(TPATH(p, "a.o"), "not an executable or shared object");
}

static void test_reject_truncated(void **state UNUSED)
{
	static const char *const real[] = {LIBPYTHON312, DEBIAN_PYTHON311};
	static const size_t cuts[] = {4096, 63, 64, 65, 1000};
	char p[PATH_MAX], src[PATH_MAX];
	unsigned char *buf;
	size_t n, i, j;

	for (i = 0; i < ARRAY_SIZE(real) + 1; i++) {
		const char *from = i < ARRAY_SIZE(real) ? real[i] : TPATH(src, "lib.so");

		buf = read_whole(from, &n);
		if (!buf)
			continue;
		for (j = 0; j < ARRAY_SIZE(cuts); j++) {
			if (cuts[j] >= n)
				continue;
			assert_int_equal(write_file(TPATH(p, "truncated"), buf, cuts[j]), 0);
			expect_rejected(p, NULL);
		}
		/* Everything but the last byte: section headers run off the end. */
		assert_int_equal(write_file(TPATH(p, "truncated"), buf, n - 1), 0);
		expect_rejected(p, "past the end");
		free(buf);
	}
}

static void test_reject_32bit(void **state UNUSED)
{
	Elf32_Ehdr eh;
	char p[PATH_MAX];

	memset(&eh, 0, sizeof(eh));
	memcpy(eh.e_ident, ELFMAG, SELFMAG);
	eh.e_ident[EI_CLASS] = ELFCLASS32;
	eh.e_ident[EI_DATA] = ELFDATA2LSB;
	eh.e_ident[EI_VERSION] = EV_CURRENT;
	eh.e_type = ET_EXEC;
	eh.e_machine = EM_386;
	eh.e_version = EV_CURRENT;
	eh.e_ehsize = sizeof(eh);
	assert_int_equal(write_file(TPATH(p, "elf32"), &eh, sizeof(eh)), 0);
	expect_rejected(p, "not a 64-bit ELF file");

	/* A real one when the compiler can make it (linking needs the 32-bit libc). */
	if (!run("cd '%s' && cc -m32 -w -o m32 a.c b.c >/dev/null 2>&1", tmpdir) ||
	    !run("cd '%s' && cc -m32 -w -c -o m32 a.c >/dev/null 2>&1", tmpdir))
		expect_rejected(TPATH(p, "m32"), "not a 64-bit ELF file");
	else
		print_message("cc -m32 does not work here: only the hand-made header tested\n");
}

/* A small xorshift: the same corruptions on every run. */
static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static uint64_t rng(void)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return rng_state;
}

static void test_reject_garbage_after_header(void **state UNUSED)
{
	unsigned char *buf, *junk;
	char p[PATH_MAX], src[PATH_MAX];
	size_t n, i, j, len;

	buf = read_whole(TPATH(src, "lib.so"), &n);
	assert_non_null(buf);
	junk = xmalloc(65536);
	for (i = 0; i < 64; i++) {
		/* the real header, whose tables now lie beyond a short file or in noise */
		len = sizeof(Elf64_Ehdr) + rng() % 8192;
		memcpy(junk, buf, sizeof(Elf64_Ehdr));
		for (j = sizeof(Elf64_Ehdr); j < len; j++)
			junk[j] = (unsigned char)rng();
		assert_int_equal(write_file(TPATH(p, "junk"), junk, len), 0);
		expect_rejected(p, NULL);
	}
	free(junk);
	free(buf);
}

/* The test's own view of an ELF file it made; NULL when the section is absent. */
static Elf64_Shdr *shdr_find(unsigned char *buf, size_t n, const char *name)
{
	Elf64_Ehdr *eh = (Elf64_Ehdr *)buf;
	Elf64_Shdr *sh = (Elf64_Shdr *)(buf + eh->e_shoff), *strsh;
	size_t i;

	assert_true(eh->e_shoff + (uint64_t)eh->e_shnum * sizeof(*sh) <= n);
	strsh = &sh[eh->e_shstrndx];
	for (i = 1; i < eh->e_shnum; i++)
		if (!strcmp((char *)buf + strsh->sh_offset + sh[i].sh_name, name))
			return &sh[i];
	return NULL;
}

static Elf64_Shdr *shdr_named(unsigned char *buf, size_t n, const char *name)
{
	Elf64_Shdr *sh = shdr_find(buf, n, name);

	if (!sh)
		fail_msg("no section %s", name);
	return sh;
}

/* Use everything an open symtab offers, so that the sanitizers see it all. */
static void exercise(const struct symtab *st)
{
	const struct symtab_segment *segs;
	size_t i, nsegs = symtab_segments(st, &segs);

	symtab_find(st, "global_fn");
	symtab_find(st, "");
	symtab_section(st, ".text", NULL, NULL);
	symtab_has_full_symbols(st);
	symtab_elf_type(st);
	for (i = 0; i < nsegs; i++) {
		symtab_lookup_addr(st, segs[i].vaddr);
		symtab_lookup_addr(st, segs[i].vaddr + segs[i].memsz / 2);
	}
	for (i = 0; i < 16; i++)
		symtab_lookup_addr(st, rng() % 0x10000);
	walk_prefix(st, "", 0);
	walk_prefix(st, "g", 0);
}

static struct symtab *open_mutant(const char *path, const unsigned char *buf, size_t n)
{
	struct symtab *st;

	assert_int_equal(write_file(path, buf, n), 0);
	error_quiet(1);
	st = symtab_open(path);
	error_quiet(0);
	return st;
}

/* Crafted headers and tables, each with the answer it must give. */
static void test_crafted(void **state UNUSED)
{
	unsigned char *orig, *buf;
	char p[PATH_MAX], src[PATH_MAX];
	Elf64_Ehdr *eh;
	Elf64_Shdr *sh, *sh0;
	const struct symtab_segment *segs;
	Elf64_Sym *sym;
	struct symtab *st;
	size_t n, i;

	orig = read_whole(TPATH(src, "lib.so"), &n);
	assert_non_null(orig);
	buf = xmalloc(n);
	TPATH(p, "crafted");

	/* Extended section count in section 0: four billion sections. */
	memcpy(buf, orig, n);
	eh = (Elf64_Ehdr *)buf;
	sh0 = (Elf64_Shdr *)(buf + eh->e_shoff);
	eh->e_shnum = 0;
	sh0->sh_size = 0xffffffffu;
	assert_null(open_mutant(p, buf, n));

	/* Program headers far past the end. */
	memcpy(buf, orig, n);
	eh->e_phnum = 0xfffe;
	assert_null(open_mutant(p, buf, n));
	memcpy(buf, orig, n);
	eh->e_phoff = UINT64_MAX - 8;
	assert_null(open_mutant(p, buf, n));

	/* Section headers at offset 0, over the ELF header. */
	memcpy(buf, orig, n);
	eh->e_shoff = 0;
	assert_null(open_mutant(p, buf, n));

	/* An extended program header count with no section 0 to hold it. */
	memcpy(buf, orig, n);
	eh->e_phnum = PN_XNUM;
	eh->e_shoff = 0;
	eh->e_shnum = 0;
	assert_null(open_mutant(p, buf, n));

	/* No section headers at all (as sstrip leaves): segments, no symbols. */
	memcpy(buf, orig, n);
	eh->e_shoff = 0;
	eh->e_shnum = 0;
	eh->e_shstrndx = 0;
	st = open_mutant(p, buf, n);
	assert_non_null(st);
	assert_int_equal(symtab_has_full_symbols(st), 0);
	assert_null(symtab_find(st, "global_fn"));
	assert_int_equal(symtab_section(st, ".text", NULL, NULL), -1);
	assert_true(symtab_segments(st, &segs) >= 2);
	exercise(st);
	symtab_free(st);

	/* A wrong entry size for the header tables. */
	memcpy(buf, orig, n);
	eh->e_shentsize = 1;
	assert_null(open_mutant(p, buf, n));

	/* Big-endian: not a file a traced x86-64 process maps. */
	memcpy(buf, orig, n);
	eh->e_ident[EI_DATA] = ELFDATA2MSB;
	assert_null(open_mutant(p, buf, n));

	/* .symtab claims more than the file holds: it is skipped, .dynsym remains. */
	memcpy(buf, orig, n);
	shdr_named(buf, n, ".symtab")->sh_size = UINT64_MAX - 100;
	st = open_mutant(p, buf, n);
	assert_non_null(st);
	assert_int_equal(symtab_has_full_symbols(st), 0);
	must_find(st, "global_fn");
	assert_null(symtab_find(st, "static_fn"));
	exercise(st);
	symtab_free(st);

	/* .symtab's names in a section that is not a string table: skipped. */
	memcpy(buf, orig, n);
	sh = shdr_named(buf, n, ".symtab");
	sh->sh_link = (uint32_t)(shdr_named(buf, n, ".text") - (Elf64_Shdr *)(buf + eh->e_shoff));
	st = open_mutant(p, buf, n);
	assert_non_null(st);
	assert_null(symtab_find(st, "static_fn"));
	symtab_free(st);
	sh->sh_link = 0xffffffffu;
	st = open_mutant(p, buf, n);
	assert_non_null(st);
	symtab_free(st);

	/* Names beyond the string table, and an unterminated string table. */
	memcpy(buf, orig, n);
	sh = shdr_named(buf, n, ".symtab");
	sym = (Elf64_Sym *)(buf + sh->sh_offset);
	for (i = 1; i < sh->sh_size / sizeof(*sym); i++)
		sym[i].st_name = 0xfffffff0u - (uint32_t)i;
	sh = shdr_named(buf, n, ".dynstr");
	memset(buf + sh->sh_offset, 'A', sh->sh_size);
	st = open_mutant(p, buf, n);
	assert_non_null(st);
	assert_null(symtab_find(st, "static_fn"));
	exercise(st);
	symtab_free(st);

	/* Every .symtab name empty: those symbols are left out, .dynsym's remain. */
	memcpy(buf, orig, n);
	sh = shdr_named(buf, n, ".symtab");
	sym = (Elf64_Sym *)(buf + sh->sh_offset);
	for (i = 1; i < sh->sh_size / sizeof(*sym); i++)
		sym[i].st_name = 0;
	st = open_mutant(p, buf, n);
	assert_non_null(st);
	assert_null(symtab_find(st, ""));
	assert_null(symtab_find(st, "static_fn"));
	must_find(st, "global_fn");
	assert_true(walk_prefix(st, "", 0) > 5);
	symtab_free(st);

	/* Sizes that wrap the address space, at the top of it. */
	memcpy(buf, orig, n);
	sh = shdr_named(buf, n, ".symtab");
	sym = (Elf64_Sym *)(buf + sh->sh_offset);
	for (i = 1; i < sh->sh_size / sizeof(*sym); i++) {
		sym[i].st_value = UINT64_MAX - i * 16;
		sym[i].st_size = UINT64_MAX - i;
	}
	st = open_mutant(p, buf, n);
	assert_non_null(st);
	exercise(st);
	assert_non_null(symtab_lookup_addr(st, UINT64_MAX));
	symtab_free(st);

	free(buf);
	free(orig);
}

/*
 * Random corruption of the parts symtab reads (header, program and section
 * headers, symbol, string and version tables): NULL or a usable result,
 * never a crash; the sanitizer build checks the rest.
 */
static void test_fuzz(void **state UNUSED)
{
	static const char *const targets[] = {".symtab", ".strtab",	 ".dynsym",
					      ".dynstr", ".gnu.version", ".shstrtab"};
	static const char *const files[] = {"lib.so", "exe", "ver.so"};
	char p[PATH_MAX], src[PATH_MAX];
	size_t f, iter, accepted = 0, total = 0;

	for (f = 0; f < ARRAY_SIZE(files); f++) {
		unsigned char *orig, *buf;
		uint64_t region[ARRAY_SIZE(targets) + 3][2];
		size_t n, nregions = 0, i;
		Elf64_Ehdr *eh;

		orig = read_whole(TPATH(src, files[f]), &n);
		assert_non_null(orig);
		eh = (Elf64_Ehdr *)orig;
		region[nregions][0] = 0;
		region[nregions++][1] = sizeof(*eh);
		region[nregions][0] = eh->e_phoff;
		region[nregions++][1] = (uint64_t)eh->e_phnum * sizeof(Elf64_Phdr);
		region[nregions][0] = eh->e_shoff;
		region[nregions++][1] = (uint64_t)eh->e_shnum * sizeof(Elf64_Shdr);
		for (i = 0; i < ARRAY_SIZE(targets); i++) {
			Elf64_Shdr *sh = shdr_find(orig, n, targets[i]);

			if (!sh)
				continue;
			region[nregions][0] = sh->sh_offset;
			region[nregions++][1] = sh->sh_size;
		}
		buf = xmalloc(n);
		for (iter = 0; iter < 400; iter++) {
			size_t flips = 1 + rng() % 8, k;
			struct symtab *st;

			memcpy(buf, orig, n);
			for (k = 0; k < flips; k++) {
				uint64_t *r = region[rng() % nregions];
				uint64_t at = r[0] + (r[1] ? rng() % r[1] : 0);
				static const unsigned char special[] = {0, 0xff, 0x7f, 0x80, 1};

				if (at >= n)
					continue;
				buf[at] = rng() % 2 ? (unsigned char)rng() : special[rng() % 5];
			}
			st = open_mutant(TPATH(p, "fuzz"), buf, n);
			total++;
			if (!st)
				continue;
			accepted++;
			exercise(st);
			symtab_free(st);
		}
		free(buf);
		free(orig);
	}
	print_message("fuzz: %zu of %zu corrupted files still opened\n", accepted, total);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_sample_symbols),
	    cmocka_unit_test(test_samples_against_readelf),
	    cmocka_unit_test(test_strip_keeps_layout),
	    cmocka_unit_test(test_symbol_versions),
	    cmocka_unit_test(test_outlives_file),
	    cmocka_unit_test(test_libpython312),
	    cmocka_unit_test(test_debian_python311),
	    cmocka_unit_test(test_libc_versions),
	    cmocka_unit_test(test_open_speed),
	    cmocka_unit_test(test_reject_not_elf),
	    cmocka_unit_test(test_reject_truncated),
	    cmocka_unit_test(test_reject_32bit),
	    cmocka_unit_test(test_reject_garbage_after_header),
	    cmocka_unit_test(test_crafted),
	    cmocka_unit_test(test_fuzz),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}

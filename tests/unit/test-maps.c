// SPDX-License-Identifier: GPL-3.0-or-later
/*
 * test-maps: the /proc/PID/maps parser and the modules built from it.
 *
 * maps_parse() on lines as the kernel writes them (paths with spaces, a
 * " (deleted)" suffix, [heap] and friends, anonymous mappings, the
 * vsyscall page at the top of the address space) and on malformed text,
 * which must give -1 and leak nothing; maps_find() at every boundary and
 * against a linear search; then the test process's own maps: its code is in
 * the test binary, its stack in [stack], and the symbol addresses that
 * modules_lookup() computes (file address + load bias) are the ones the
 * dynamic linker gives (dlsym) — for libc, for the test binary itself, and
 * for a library whose file was deleted after it was loaded.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "maps.h"
#include "symtab.h"
#include "util.h"

/* ----- helpers ----- */

static void check_map(const struct map *m, uint64_t start, uint64_t end, const char *perms,
		      uint64_t offset, const char *dev, unsigned long inode, const char *path)
{
	assert_non_null(m);
	if (m->start != start || m->end != end)
		fail_msg("mapping %" PRIx64 "-%" PRIx64 ", want %" PRIx64 "-%" PRIx64, m->start,
			 m->end, start, end);
	assert_string_equal(m->perms, perms);
	assert_int_equal(m->offset, offset);
	assert_string_equal(m->dev, dev);
	assert_int_equal(m->inode, inode);
	assert_non_null(m->path);
	assert_string_equal(m->path, path);
}

static void parse_ok(const char *text, struct maps *m)
{
	error_quiet(1);
	if (maps_parse(text, m) != 0)
		fail_msg("maps_parse failed on:\n%s", text);
	error_quiet(0);
}

/* Does maps_parse reject text (-1, nothing left to free)?  Describes what it accepted in why. */
static int rejects(const char *text, struct strbuf *why)
{
	struct maps m = {(struct map *)&m, 12345};
	int r;

	error_quiet(1);
	r = maps_parse(text, &m);
	error_quiet(0);
	if (r == -1) {
		/* nothing left for the caller to free */
		assert_null(m.v);
		assert_int_equal(m.n, 0);
		return 1;
	}
	assert_int_equal(r, 0);
	if (m.n)
		sb_addf(why,
			"accepted \"%s\" as %" PRIx64 "-%" PRIx64 " %s off %" PRIx64
			" dev %s inode %lu path '%s'\n",
			text, m.v[m.n - 1].start, m.v[m.n - 1].end, m.v[m.n - 1].perms,
			m.v[m.n - 1].offset, m.v[m.n - 1].dev, m.v[m.n - 1].inode,
			m.v[m.n - 1].path);
	else
		sb_addf(why, "accepted \"%s\" as nothing\n", text);
	maps_release(&m);
	return 0;
}

static void parse_fails(const char *text)
{
	struct strbuf why = STRBUF_INIT;

	if (!rejects(text, &why)) {
		print_error("%s", sb_str(&why));
		sb_release(&why);
		fail_msg("maps_parse accepted a malformed line");
	}
}

/* Our own path, as the kernel shows it in maps. */
static char self_exe[PATH_MAX];

static int group_setup(void **state)
{
	ssize_t n = readlink("/proc/self/exe", self_exe, sizeof(self_exe) - 1);

	(void)state;
	if (n <= 0)
		return -1;
	self_exe[n] = '\0';
	return 0;
}

/* A function of this file, to find in the maps and in the symbols. */
__attribute__((noinline, used)) int maps_test_marker(int x);
__attribute__((noinline, used)) int maps_test_marker(int x)
{
	__asm__ volatile("" ::: "memory");
	return x * 7 + 3;
}

/* The address of a local variable, on the real stack even under ASan's fake stacks. */
__attribute__((noinline, no_sanitize_address)) static uint64_t stack_var_addr(void)
{
	volatile int local = 42;

	return (uint64_t)(uintptr_t)&local + (uint64_t)(local - 42);
}

/* ----- maps_parse ----- */

static const char sample[] =
    "55d4c8a00000-55d4c8a28000 r--p 00000000 fd:01 1835042                    "
    "/usr/bin/python3.11\n"
    "55d4c8a28000-55d4c8d1c000 r-xp 00028000 fd:01 1835042                    "
    "/usr/bin/python3.11\n"
    "55d4ca1f7000-55d4ca3b1000 rw-p 00000000 00:00 0                          [heap]\n"
    "7f3c1a000000-7f3c1a021000 rw-p 00000000 00:00 0 \n"
    "7f3c1a021000-7f3c1c000000 ---p 00000000 00:00 0\n"
    "7f3c1c5d0000-7f3c1c5f6000 r--p 00000000 fd:01 1837206                    "
    "/usr/lib/x86_64-linux-gnu/libc.so.6\n"
    "7f3c1c7e0000-7f3c1c7e2000 rw-s 00000000 00:01 4242                       "
    "/memfd:shm (deleted)\n"
    "7f3c1c800000-7f3c1c801000 r--p 00000000 103:02 99                        "
    "/tmp/my dir/lib with  spaces.so\n"
    "7f3c1c801000-7f3c1c802000 r-xp 00001000 fd:01 100                        "
    "/tmp/gone.so (deleted)\n"
    "7f3c1c802000-7f3c1c803000 r--p 00000000 fd:01 101                        "
    "/tmp/trailing space \n"
    "7f3c1c803000-7f3c1c804000 r--p 00000000 fd:01 102                        "
    "/tmp/new\\012line\n"
    "7ffd6a3c1000-7ffd6a3e2000 rw-p 00000000 00:00 0                          [stack]\n"
    "7ffd6a3f4000-7ffd6a3f8000 r--p 00000000 00:00 0                          [vvar]\n"
    "7ffd6a3f8000-7ffd6a3fa000 r-xp 00000000 00:00 0                          [vdso]\n"
    "ffffffffff600000-ffffffffff601000 --xp 00000000 00:00 0                  "
    "[vsyscall]\n";

static void test_parse_sample(void **state)
{
	struct maps m;

	(void)state;
	parse_ok(sample, &m);
	assert_int_equal(m.n, 15);
	check_map(&m.v[0], 0x55d4c8a00000, 0x55d4c8a28000, "r--p", 0, "fd:01", 1835042,
		  "/usr/bin/python3.11");
	check_map(&m.v[1], 0x55d4c8a28000, 0x55d4c8d1c000, "r-xp", 0x28000, "fd:01", 1835042,
		  "/usr/bin/python3.11");
	check_map(&m.v[2], 0x55d4ca1f7000, 0x55d4ca3b1000, "rw-p", 0, "00:00", 0, "[heap]");
	check_map(&m.v[3], 0x7f3c1a000000, 0x7f3c1a021000, "rw-p", 0, "00:00", 0, "");
	check_map(&m.v[4], 0x7f3c1a021000, 0x7f3c1c000000, "---p", 0, "00:00", 0, "");
	check_map(&m.v[5], 0x7f3c1c5d0000, 0x7f3c1c5f6000, "r--p", 0, "fd:01", 1837206,
		  "/usr/lib/x86_64-linux-gnu/libc.so.6");
	check_map(&m.v[6], 0x7f3c1c7e0000, 0x7f3c1c7e2000, "rw-s", 0, "00:01", 4242,
		  "/memfd:shm (deleted)");
	check_map(&m.v[7], 0x7f3c1c800000, 0x7f3c1c801000, "r--p", 0, "103:02", 99,
		  "/tmp/my dir/lib with  spaces.so");
	check_map(&m.v[8], 0x7f3c1c801000, 0x7f3c1c802000, "r-xp", 0x1000, "fd:01", 100,
		  "/tmp/gone.so (deleted)");
	check_map(&m.v[9], 0x7f3c1c802000, 0x7f3c1c803000, "r--p", 0, "fd:01", 101,
		  "/tmp/trailing space ");
	check_map(&m.v[10], 0x7f3c1c803000, 0x7f3c1c804000, "r--p", 0, "fd:01", 102,
		  "/tmp/new\\012line");
	check_map(&m.v[11], 0x7ffd6a3c1000, 0x7ffd6a3e2000, "rw-p", 0, "00:00", 0, "[stack]");
	check_map(&m.v[12], 0x7ffd6a3f4000, 0x7ffd6a3f8000, "r--p", 0, "00:00", 0, "[vvar]");
	check_map(&m.v[13], 0x7ffd6a3f8000, 0x7ffd6a3fa000, "r-xp", 0, "00:00", 0, "[vdso]");
	check_map(&m.v[14], 0xffffffffff600000, 0xffffffffff601000, "--xp", 0, "00:00", 0,
		  "[vsyscall]");
	maps_release(&m);
	assert_null(m.v);
	assert_int_equal(m.n, 0);
}

/* Large values: a 64-bit offset, a big inode, the last page of the address space. */
static void test_parse_extremes(void **state)
{
	struct maps m;

	(void)state;
	parse_ok("0-1000 r--p 00000000 00:00 0\n"
		 "7ffffffff000-800000000000 rw-p 7fffffffffff0000 fe:ff 18446744073709551615 /x\n"
		 "fffffffffffff000-ffffffffffffffff r--p 00000000 00:00 0 [top]\n",
		 &m);
	assert_int_equal(m.n, 3);
	check_map(&m.v[0], 0, 0x1000, "r--p", 0, "00:00", 0, "");
	check_map(&m.v[1], 0x7ffffffff000, 0x800000000000, "rw-p", 0x7fffffffffff0000, "fe:ff",
		  (unsigned long)18446744073709551615ull, "/x");
	check_map(&m.v[2], 0xfffffffffffff000, 0xffffffffffffffff, "r--p", 0, "00:00", 0, "[top]");
	maps_release(&m);
}

static void test_parse_empty_and_newlines(void **state)
{
	struct maps m;

	(void)state;
	parse_ok("", &m);
	assert_int_equal(m.n, 0);
	maps_release(&m);
	parse_ok("\n\n\n", &m);
	assert_int_equal(m.n, 0);
	maps_release(&m);

	/* no final newline: the last line still counts */
	parse_ok("1000-2000 r-xp 00000000 fd:01 7 /bin/a\n3000-4000 rw-p 00000000 00:00 0 [heap]",
		 &m);
	assert_int_equal(m.n, 2);
	check_map(&m.v[1], 0x3000, 0x4000, "rw-p", 0, "00:00", 0, "[heap]");
	maps_release(&m);

	parse_ok("1000-2000 r-xp 00000000 fd:01 7 /bin/a", &m);
	assert_int_equal(m.n, 1);
	check_map(&m.v[0], 0x1000, 0x2000, "r-xp", 0, "fd:01", 7, "/bin/a");
	maps_release(&m);

	/* blank lines between entries are skipped */
	parse_ok("\n1000-2000 r-xp 00000000 fd:01 7 /bin/a\n\n\n3000-4000 rw-p 0 00:00 0\n\n", &m);
	assert_int_equal(m.n, 2);
	maps_release(&m);
}

/* More mappings than the first allocation holds, all kept in order. */
static void test_parse_many(void **state)
{
	struct strbuf sb = STRBUF_INIT;
	struct maps m;
	const size_t count = 5000;

	(void)state;
	for (size_t i = 0; i < count; i++)
		sb_addf(&sb, "%zx-%zx r--p %08zx fd:01 %zu /lib/l%zu.so\n", 0x10000 + i * 0x2000,
			0x11000 + i * 0x2000, i * 0x1000, i + 1, i);
	parse_ok(sb_str(&sb), &m);
	assert_int_equal(m.n, count);
	for (size_t i = 0; i < count; i++) {
		char path[64];

		snprintf(path, sizeof(path), "/lib/l%zu.so", i);
		check_map(&m.v[i], 0x10000 + i * 0x2000, 0x11000 + i * 0x2000, "r--p", i * 0x1000,
			  "fd:01", i + 1, path);
	}
	maps_release(&m);
	sb_release(&sb);
}

static void test_parse_malformed(void **state)
{
	static const char *const bad[] = {
	    "garbage",
	    "zzzz-2000 r-xp 00000000 fd:01 1 /bin/a", /* bad hex start */
	    "1000-zzzz r-xp 00000000 fd:01 1 /bin/a", /* bad hex end */
	    "10g0-2000 r-xp 00000000 fd:01 1 /bin/a", /* hex, then junk */
	    "1000 2000 r-xp 00000000 fd:01 1 /bin/a", /* no dash */
	    "1000-2000",			      /* missing fields */
	    "1000-2000 r-xp",
	    "1000-2000 r-xp 00000000",
	    "1000-2000 r-xp 00000000 fd:01",		  /* no inode */
	    "1000-2000 r-xp zzzz fd:01 1",		  /* bad offset */
	    "1000-2000 r-xp 00000000 fd:01 inode /bin/a", /* bad inode */
	    "2000-1000 r-xp 00000000 fd:01 1 /bin/a",	  /* end < start */
	    "ffffffffff601000-ffffffffff600000 --xp 00000000 00:00 0 [vsyscall]",
	    "1000-2000 r-x 00000000 fd:01 1 /bin/a",   /* perms too short */
	    "1000-2000 r-xpp 00000000 fd:01 1 /bin/a", /* perms too long */
	    " ",				       /* a line of spaces */
	};

	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		struct strbuf sb = STRBUF_INIT;

		parse_fails(bad[i]);
		/* after good lines (which must be freed), and before them */
		sb_addf(&sb, "%s%s\n%s", sample, bad[i], sample);
		parse_fails(sb_str(&sb));
		sb_reset(&sb);
		sb_addf(&sb, "%s\n%s", bad[i], sample);
		parse_fails(sb_str(&sb));
		sb_release(&sb);
	}
}

/*
 * Numbers that do not fit or are not the kernel's digits must not turn into
 * other numbers: an overflowing address (17 hex digits), a minus sign that
 * wraps, junk glued to the inode that becomes part of the path.
 */
static void test_parse_rejects_wrong_numbers(void **state)
{
	static const char *const bad[] = {
	    "10000000000000000-10000000000001000 r--p 00000000 00:00 0 [x]",
	    "1000--2000 r--p 00000000 00:00 0 [x]",
	    "1000-2000 r--p -1000 00:00 0 [x]",
	    "1000-2000 r--p 00000000 fd:01 12x /lib/a.so",
	};
	struct strbuf why = STRBUF_INIT;
	size_t accepted = 0;

	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++)
		accepted += !rejects(bad[i], &why);
	if (accepted) {
		print_error("%s", sb_str(&why));
		sb_release(&why);
		fail_msg("maps_parse accepted %zu of %zu lines with wrong numbers", accepted,
			 ARRAY_SIZE(bad));
	}
}

/* ----- maps_find ----- */

static void test_find(void **state)
{
	struct maps m, empty = {NULL, 0};

	(void)state;
	parse_ok(sample, &m);
	assert_null(maps_find(&empty, 0x1000));
	assert_null(maps_find(&m, 0));
	assert_null(maps_find(&m, 0x55d4c8a00000 - 1));
	assert_ptr_equal(maps_find(&m, 0x55d4c8a00000), &m.v[0]); /* start: inside */
	assert_ptr_equal(maps_find(&m, 0x55d4c8a27fff), &m.v[0]);
	assert_ptr_equal(maps_find(&m, 0x55d4c8a28000), &m.v[1]); /* end: the next one */
	assert_null(maps_find(&m, 0x55d4c8d1c000));		  /* a gap */
	assert_ptr_equal(maps_find(&m, 0x55d4ca300000), &m.v[2]);
	assert_ptr_equal(maps_find(&m, 0x7f3c1a021000), &m.v[4]);
	assert_ptr_equal(maps_find(&m, 0x7f3c1bffffff), &m.v[4]);
	assert_ptr_equal(maps_find(&m, 0x7ffd6a3c1008), &m.v[11]);
	assert_ptr_equal(maps_find(&m, 0xffffffffff600000), &m.v[14]);
	assert_ptr_equal(maps_find(&m, 0xffffffffff600fff), &m.v[14]);
	assert_null(maps_find(&m, 0xffffffffff601000));
	assert_null(maps_find(&m, UINT64_MAX));
	maps_release(&m);
}

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static uint64_t rng(void)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return rng_state;
}

/* maps_find against a linear search, over random layouts with gaps and touching mappings. */
static void test_find_random(void **state)
{
	(void)state;
	for (int round = 0; round < 50; round++) {
		struct strbuf sb = STRBUF_INIT;
		struct maps m;
		size_t n = rng() % 300;
		uint64_t at = (rng() % 16) * 0x1000;

		for (size_t i = 0; i < n; i++) {
			uint64_t len = (1 + rng() % 8) * 0x1000;

			sb_addf(&sb, "%" PRIx64 "-%" PRIx64 " rw-p 00000000 00:00 0\n", at,
				at + len);
			at += len + (rng() % 3 ? 0 : (rng() % 4) * 0x1000);
		}
		parse_ok(sb_str(&sb), &m);
		assert_int_equal(m.n, n);
		for (int k = 0; k < 2000; k++) {
			uint64_t addr = at ? rng() % (at + 0x3000) : rng() % 0x3000;
			const struct map *want = NULL;

			if (k < (int)n * 2 && n) /* every boundary too */
				addr = k % 2 ? m.v[k / 2].start : m.v[k / 2].end - 1;
			for (size_t i = 0; i < m.n; i++)
				if (addr >= m.v[i].start && addr < m.v[i].end)
					want = &m.v[i];
			if (maps_find(&m, addr) != want)
				fail_msg("maps_find(%#" PRIx64 ") disagrees with a linear search",
					 addr);
		}
		maps_release(&m);
		sb_release(&sb);
	}
}

/* ----- the test process's own maps ----- */

static void test_read_self(void **state)
{
	struct maps m;
	const struct map *code, *stack;
	uint64_t fn = (uint64_t)(uintptr_t)&maps_test_marker;
	uint64_t var = stack_var_addr();
	uint64_t frame = (uint64_t)(uintptr_t)__builtin_frame_address(0);

	(void)state;
	assert_int_equal(maps_read(getpid(), &m), 0);
	assert_true(m.n > 5);

	/* in order, not overlapping, well formed */
	for (size_t i = 0; i < m.n; i++) {
		assert_true(m.v[i].start < m.v[i].end);
		assert_int_equal(strlen(m.v[i].perms), 4);
		if (i)
			assert_true(m.v[i - 1].end <= m.v[i].start);
		if (m.v[i].inode)
			assert_true(m.v[i].path[0] == '/');
	}

	code = maps_find(&m, fn);
	assert_non_null(code);
	assert_string_equal(code->path, self_exe);
	assert_int_equal(code->perms[2], 'x');
	assert_true(code->inode != 0);

	stack = maps_find(&m, var);
	assert_non_null(stack);
	assert_string_equal(stack->path, "[stack]");
	assert_int_equal(stack->perms[0], 'r');
	assert_int_equal(stack->perms[1], 'w');
	assert_ptr_equal(maps_find(&m, frame), stack);

	/* a symbol of libc is in a libc mapping */
	{
		const struct map *lc = maps_find(&m, (uint64_t)(uintptr_t)&getpid);

		assert_non_null(lc);
		assert_non_null(strstr(lc->path, "/libc.so"));
	}
	maps_release(&m);

	/* no such process */
	error_quiet(1);
	assert_int_equal(maps_read(INT_MAX, &m), -1);
	error_quiet(0);
	assert_true(!strncmp(last_error(), "cannot read '/proc/2147483647/maps': ",
			     strlen("cannot read '/proc/2147483647/maps': ")));
}

/* A symbol's run-time address, from the dynamic linker, in the object at path. */
static uint64_t dl_addr_in(const char *path, const char *name)
{
	void *h = dlopen(path, RTLD_LAZY | RTLD_NOLOAD);
	void *p;

	if (!h)
		fail_msg("dlopen(%s, RTLD_NOLOAD): %s", path, dlerror());
	p = dlsym(h, name);
	if (!p)
		fail_msg("dlsym(%s, %s): %s", path, name, dlerror());
	dlclose(h);
	return (uint64_t)(uintptr_t)p;
}

static void test_modules_self(void **state)
{
	struct maps m;
	struct modules mods;
	struct module *libc, *exe, *mod = NULL;
	struct symtab *st;
	const struct symbol *sym;
	uint64_t addr = 0, off = 99, fn = (uint64_t)(uintptr_t)&maps_test_marker;

	(void)state;
	assert_int_equal(maps_read(getpid(), &m), 0);
	assert_int_equal(modules_build(getpid(), &m, &mods), 0);
	assert_int_equal(mods.pid, getpid());
	assert_true(mods.n >= 2);

	/* one module per file, spanning every mapping of that file */
	for (size_t i = 0; i < mods.n; i++) {
		assert_true(mods.v[i].path[0] == '/');
		assert_null(mods.v[i].symtab);
		for (size_t j = 0; j < i; j++)
			assert_false(mods.v[j].inode == mods.v[i].inode &&
				     !strcmp(mods.v[j].path, mods.v[i].path));
		for (size_t k = 0; k < m.n; k++)
			if (m.v[k].inode == mods.v[i].inode &&
			    !strcmp(m.v[k].path, mods.v[i].path)) {
				assert_true(m.v[k].start >= mods.v[i].start);
				assert_true(m.v[k].end <= mods.v[i].end);
			}
	}

	/* libc: found by name, and its malloc is where the dynamic linker put it */
	libc = modules_find_name(&mods, "libc.so");
	assert_non_null(libc);
	assert_non_null(strstr(libc->path, "/libc.so"));
	st = module_symtab(&mods, libc);
	assert_non_null(st);
	assert_true(libc->bias_known);
	assert_ptr_equal(module_symtab(&mods, libc), st); /* read once */
	sym = symtab_find(st, "malloc");
	assert_non_null(sym);
	assert_int_equal(sym->value + libc->bias, dl_addr_in(libc->path, "malloc"));
	assert_int_equal(libc->bias, libc->start); /* a DSO's first page is its file's first */

	/* modules_lookup: the first module defining it, at its run-time address */
	assert_int_equal(modules_lookup(&mods, "malloc", &addr, &mod), 0);
	assert_non_null(mod);
	assert_int_equal(addr, dl_addr_in(mod->path, "malloc"));
#if !defined(__SANITIZE_ADDRESS__)
	/* without ASan's interposed malloc, that is the malloc this program calls */
	assert_ptr_equal(mod, libc);
	assert_int_equal(addr, (uint64_t)(uintptr_t)&malloc);
#endif
	assert_int_equal(modules_lookup(&mods, "getpid", &addr, NULL), 0);
	assert_int_equal(addr, (uint64_t)(uintptr_t)&getpid);
	assert_int_equal(modules_lookup(&mods, "no_such_symbol_in_any_module_4711", &addr, NULL),
			 -1);

	/* the test binary (a PIE): our own function, by address and by name */
	exe = modules_find_addr(&mods, fn);
	assert_non_null(exe);
	assert_string_equal(exe->path, self_exe);
	assert_ptr_equal(&mods.v[0], exe); /* the executable is mapped first */
	assert_int_equal(modules_symbolize(&mods, fn + 5, &sym, &off, &mod), 0);
	assert_ptr_equal(mod, exe);
	assert_string_equal(sym->name, "maps_test_marker");
	assert_int_equal(off, 5);
	assert_int_equal(modules_lookup(&mods, "maps_test_marker", &addr, &mod), 0);
	assert_ptr_equal(mod, exe);
	assert_int_equal(addr, fn);

	/* outside every module */
	assert_int_equal(modules_symbolize(&mods, 0x10, &sym, &off, &mod), -1);
	assert_null(sym);
	assert_null(mod);
	assert_null(modules_find_addr(&mods, stack_var_addr()));
	assert_null(modules_find_name(&mods, "no-such-library"));

	modules_release(&mods);
	assert_null(mods.v);
	assert_int_equal(mods.n, 0);
	maps_release(&m);
}

/*
 * A module whose file was deleted is opened through /proc/PID/map_files,
 * whose entries are named after single mappings "START-END".
 */
static void test_module_open_path(void **state)
{
	struct maps m;
	struct modules mods;
	char buf[256];

	(void)state;
	parse_ok("7f0000000000-7f0000001000 r--p 00000000 fd:01 100 /tmp/gone.so (deleted)\n"
		 "7f0000001000-7f0000003000 r-xp 00001000 fd:01 100 /tmp/gone.so (deleted)\n"
		 "7f0000003000-7f0000004000 rw-p 00003000 fd:01 100 /tmp/gone.so (deleted)\n"
		 "7f0000010000-7f0000011000 r--p 00000000 fd:01 200 /usr/lib/libz.so\n"
		 "7f0000011000-7f0000012000 r-xp 00001000 fd:01 200 /usr/lib/libz.so\n",
		 &m);
	assert_int_equal(modules_build(4242, &m, &mods), 0);
	assert_int_equal(mods.n, 2);
	assert_int_equal(mods.v[0].start, 0x7f0000000000);
	assert_int_equal(mods.v[0].end, 0x7f0000004000);

	module_open_path(&mods, &mods.v[1], buf, sizeof(buf));
	assert_string_equal(buf, "/proc/4242/root/usr/lib/libz.so");

	module_open_path(&mods, &mods.v[0], buf, sizeof(buf));
	modules_release(&mods);
	maps_release(&m);
	if (strcmp(buf, "/proc/4242/map_files/7f0000000000-7f0000001000"))
		fail_msg("open path of a deleted 3-mapping module is \"%s\": map_files has no "
			 "such entry, want the first mapping's "
			 "\"/proc/4242/map_files/7f0000000000-7f0000001000\"",
			 buf);
}

/* ----- a library deleted after it was loaded ----- */

static const char deleted_src[] = "int pyleakdb_deleted_fn(int x);\n"
				  "int pyleakdb_deleted_fn(int x) { return x + 12345; }\n"
				  "int pyleakdb_deleted_data = 77;\n";

static void test_deleted_library(void **state)
{
	char dir[] = "/tmp/test-maps-XXXXXX", src[64], so[64], cmd[256];
	struct maps m;
	struct modules mods;
	struct module *mod = NULL;
	void *h;
	uint64_t want, addr = 0;
	FILE *f;
	size_t nmaps = 0;

	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(src, sizeof(src), "%s/lib.c", dir);
	snprintf(so, sizeof(so), "%s/libdeleted.so", dir);
	f = fopen(src, "w");
	assert_non_null(f);
	fputs(deleted_src, f);
	fclose(f);
	snprintf(cmd, sizeof(cmd), "cc -shared -fPIC -O1 -o %s %s 2>/dev/null", so, src);
	if (system(cmd) != 0) {
		unlink(src);
		rmdir(dir);
		skip(); /* no compiler here */
	}
	h = dlopen(so, RTLD_NOW | RTLD_LOCAL);
	assert_non_null(h);
	want = (uint64_t)(uintptr_t)dlsym(h, "pyleakdb_deleted_fn");
	assert_true(want != 0);
	unlink(so);
	unlink(src);
	rmdir(dir);

	assert_int_equal(maps_read(getpid(), &m), 0);
	assert_int_equal(modules_build(getpid(), &m, &mods), 0);
	mod = modules_find_addr(&mods, want);
	assert_non_null(mod);
	assert_non_null(strstr(mod->path, "/libdeleted.so (deleted)"));
	for (size_t i = 0; i < m.n; i++)
		if (!strcmp(m.v[i].path, mod->path))
			nmaps++;
	print_message("the deleted library has %zu mappings\n", nmaps);
	if (!module_symtab(&mods, mod)) {
		char buf[PATH_MAX + 64], first[128], why[PATH_MAX + 512];

		module_open_path(&mods, mod, buf, sizeof(buf));
		snprintf(first, sizeof(first), "/proc/%d/map_files/%" PRIx64 "-%" PRIx64, getpid(),
			 maps_find(&m, mod->start)->start, maps_find(&m, mod->start)->end);
		snprintf(why, sizeof(why),
			 "no symbols for a deleted library of %zu mappings: opened as %s (%s), "
			 "while the first mapping's %s %s",
			 nmaps, buf, access(buf, R_OK) ? strerror(errno) : "readable", first,
			 access(first, R_OK) ? "is not readable either" : "is readable");
		modules_release(&mods);
		maps_release(&m);
		dlclose(h);
		fail_msg("%s", why);
	}
	assert_int_equal(modules_lookup(&mods, "pyleakdb_deleted_fn", &addr, NULL), 0);
	modules_release(&mods);
	maps_release(&m);
	dlclose(h);
	assert_int_equal(addr, want);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_parse_sample),
	    cmocka_unit_test(test_parse_extremes),
	    cmocka_unit_test(test_parse_empty_and_newlines),
	    cmocka_unit_test(test_parse_many),
	    cmocka_unit_test(test_parse_malformed),
	    cmocka_unit_test(test_parse_rejects_wrong_numbers),
	    cmocka_unit_test(test_find),
	    cmocka_unit_test(test_find_random),
	    cmocka_unit_test(test_read_self),
	    cmocka_unit_test(test_modules_self),
	    cmocka_unit_test(test_module_open_path),
	    cmocka_unit_test(test_deleted_library),
	};

	return cmocka_run_group_tests(tests, group_setup, NULL);
}

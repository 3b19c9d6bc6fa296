// SPDX-License-Identifier: GPL-3.0-or-later
/*
 * symtab: the symbols, sections and PT_LOAD segments of one 64-bit ELF file.
 *
 * What this module promises:
 *  - symtab_open() reads everything it will ever need and closes the file
 *    before returning: the result holds no pointer into libelf memory or into
 *    the file, so the file may change or vanish afterwards.
 *  - The file is hostile.  The ELF header is checked by hand before libelf
 *    sees it (libelf sizes its allocations from the header's counts), every
 *    table is checked against the file size, and a malformed file gives one
 *    error line and NULL, never a crash, a hang or memory out of proportion
 *    to the file's size.
 *  - Lookups never allocate: symtab_find() and symtab_each_prefix() binary
 *    search a by-name index, symtab_lookup_addr() a by-address index.
 *
 * The file is read with ELF_C_READ (pread), not ELF_C_READ_MMAP: a target
 * that truncates a file we have mapped would turn our next read of it into
 * SIGBUS, and the tables we read are small enough that copying costs nothing.
 * Symbol versions: .symtab may name a symbol foo@@V (the default version,
 * which we call foo) or foo@V (an old one, kept as is); .dynsym says the same
 * through .gnu.version, and there the old version loses to the default.
 */
#include <errno.h>
#include <fcntl.h>
#include <gelf.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "symtab.h"
#include "util.h"

/* Far beyond any real file (libpython with .symtab has ~15k symbols). */
#define SYMTAB_MAX_SYMBOLS (50u * 1000 * 1000)
/*
 * How far symtab_lookup_addr() walks back from the nearest symbol to find one
 * that encloses the address (a sized symbol nested in a larger one).  Real
 * files need a step or two; the cap bounds the cost of a crafted one.
 */
#define SYMTAB_MAX_WALK 1024

/* The versym bit that marks a non-default version (foo@V1, not foo@@V2). */
#define SYMTAB_VERSYM_HIDDEN 0x8000

struct symtab_entry {
	struct symbol sym;	   /* first, so that &entry->sym is what callers get */
	unsigned char rank;	   /* higher wins: see symtab_rank() */
	unsigned char addressable; /* a FUNC or OBJECT in a real section */
};

struct symtab_addr {
	uint64_t value;
	uint64_t maxend; /* the highest value+size of this and all earlier entries */
	const struct symtab_entry *e;
};

/* What we sort: a name's first bytes or a symbol's value, and the symbol. */
struct symtab_key {
	uint64_t key;
	const struct symtab_entry *e;
};

struct symtab_sect {
	const char *name;
	uint64_t addr, size;
};

struct symtab {
	char *pool;		   /* every string we hand out */
	struct symtab_entry *syms; /* sorted by name, then value */
	size_t nsyms;
	const struct symtab_entry **by_name; /* one per distinct name, the best */
	size_t nnames;
	struct symtab_addr *by_addr;
	size_t naddr;
	struct symtab_sect *sects;
	size_t nsects;
	struct symtab_segment *segs;
	size_t nsegs;
	int type;
	int full;
};

/* The file being read, as symtab_check_header() found it. */
struct symtab_file {
	const char *path;
	uint64_t size;
	Elf64_Ehdr eh;
	uint64_t shnum, phnum;
};

/* One of the (at most two) symbol tables we read: .symtab and .dynsym. */
struct symtab_table {
	size_t ndx; /* section index, 0 when absent */
	size_t count;
	size_t str_ndx;	 /* its string table */
	size_t str_base; /* where that string table starts in the pool */
	uint64_t str_size;
	size_t versym_ndx; /* .gnu.version for .dynsym, 0 when absent */
};

static int symtab_pread(int fd, void *buf, size_t n, uint64_t off)
{
	char *p = buf;

	while (n) {
		ssize_t r = pread(fd, p, n, (off_t)off);

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return -1;
		p += r;
		n -= (size_t)r;
		off += (uint64_t)r;
	}
	return 0;
}

/* Does [off, off+size) lie within a file of fsize bytes? */
static int symtab_in_file(uint64_t off, uint64_t size, uint64_t fsize)
{
	return off <= fsize && size <= fsize - off;
}

/*
 * Check the ELF header and the extent of the section and program header
 * tables before libelf sees them.  libelf sizes an allocation by e_shnum (or
 * the extended count in section 0), and with ELF_C_READ it never learns the
 * file size, so it cannot compare the tables against it.
 */
static int symtab_check_header(int fd, struct symtab_file *f)
{
	Elf64_Ehdr eh;
	Elf64_Shdr sh0;
	uint64_t fsize = f->size, shnum = 0, phnum;
	const char *why;

	memset(&eh, 0, sizeof(eh));
	memset(&sh0, 0, sizeof(sh0));
	why = "not an ELF file";
	if (fsize < EI_NIDENT || symtab_pread(fd, eh.e_ident, EI_NIDENT, 0) < 0 ||
	    memcmp(eh.e_ident, ELFMAG, SELFMAG))
		goto bad;
	why = "not a 64-bit ELF file";
	if (eh.e_ident[EI_CLASS] != ELFCLASS64)
		goto bad;
	why = "truncated ELF header";
	if (fsize < sizeof(eh) || symtab_pread(fd, &eh, sizeof(eh), 0) < 0)
		goto bad;
	/* Only a native file can be mapped by a process we can trace. */
	why = "not a little-endian ELF file";
	if (eh.e_ident[EI_DATA] != ELFDATA2LSB)
		goto bad;
	why = "not an executable or shared object";
	if (eh.e_type != ET_EXEC && eh.e_type != ET_DYN)
		goto bad;

	why = "bad section header table";
	if (eh.e_shoff) {
		if (eh.e_shentsize != sizeof(Elf64_Shdr))
			goto bad;
		why = "section headers past the end of the file";
		if (!symtab_in_file(eh.e_shoff, sizeof(sh0), fsize) ||
		    symtab_pread(fd, &sh0, sizeof(sh0), eh.e_shoff) < 0)
			goto bad;
		shnum = eh.e_shnum ? eh.e_shnum : sh0.sh_size; /* extended numbering */
		if (shnum > (fsize - eh.e_shoff) / sizeof(Elf64_Shdr))
			goto bad;
	} else if (eh.e_shnum) {
		goto bad; /* libelf would read the ELF header as section headers */
	}

	why = "bad program header table";
	phnum = eh.e_phnum;
	if (phnum == PN_XNUM) {
		if (!eh.e_shoff)
			goto bad;
		phnum = sh0.sh_info; /* extended numbering */
	}
	if (phnum) {
		if (eh.e_phentsize != sizeof(Elf64_Phdr))
			goto bad;
		why = "program headers past the end of the file";
		if (eh.e_phoff > fsize || phnum > (fsize - eh.e_phoff) / sizeof(Elf64_Phdr))
			goto bad;
	}
	f->eh = eh;
	f->shnum = shnum;
	f->phnum = phnum;
	return 0;
bad:
	return error("cannot read ELF file '%s': %s", f->path, why);
}

/*
 * The preference between symbols of one name: a global definition (not a
 * hidden old version) over a local one, then a function or object over
 * anything else.
 */
static unsigned char symtab_rank(unsigned char bind, unsigned char type, int hidden)
{
	unsigned char r = 0;

	if (bind == STB_GLOBAL || bind == STB_WEAK || bind == STB_GNU_UNIQUE)
		r = hidden ? 2 : 4;
	if (type == STT_FUNC || type == STT_OBJECT)
		r += 1;
	return r;
}

static int symtab_cmp_u64(uint64_t a, uint64_t b)
{
	return a < b ? -1 : a > b;
}

/*
 * The by-name sort key: the first eight bytes of the name, big-endian, so
 * that most comparisons never touch the strings.
 */
static uint64_t symtab_name_key(const char *s)
{
	uint64_t k = 0;
	int i;

	for (i = 0; i < 8 && s[i]; i++)
		k |= (uint64_t)(unsigned char)s[i] << (56 - 8 * i);
	return k;
}

/* Two names whose keys are equal: compare them past the key. */
static int symtab_tie_name(const struct symtab_key *x, const struct symtab_key *y)
{
	const struct symtab_entry *a = x->e, *b = y->e;
	int c;

	/* A key with a NUL in it held the whole name. */
	if ((x->key & 0xff) && (c = strcmp(a->sym.name + 8, b->sym.name + 8)))
		return c;
	/* The same name: by value, and within one (name, value) the best first. */
	if ((c = symtab_cmp_u64(a->sym.value, b->sym.value)))
		return c;
	if (a->rank != b->rank)
		return b->rank - a->rank;
	if (a->addressable != b->addressable)
		return b->addressable - a->addressable;
	if ((c = symtab_cmp_u64(b->sym.size, a->sym.size)))
		return c;
	return a->sym.type - b->sym.type;
}

static size_t symtab_underscores(const char *s)
{
	return strspn(s, "_");
}

/*
 * Two symbols at one address: the best comes last, so that the nearest entry
 * at or below an address is the one to report.  A sized symbol beats a
 * zero-sized label, then global beats local, the larger wins, then the
 * public-looking name (malloc over __libc_malloc).
 */
static int symtab_tie_addr(const struct symtab_key *x, const struct symtab_key *y)
{
	const struct symtab_entry *a = x->e, *b = y->e;
	int c;

	if ((a->sym.size != 0) != (b->sym.size != 0))
		return a->sym.size != 0 ? 1 : -1;
	if (a->rank != b->rank)
		return a->rank - b->rank;
	if ((c = symtab_cmp_u64(a->sym.size, b->sym.size)))
		return c;
	if (symtab_underscores(a->sym.name) != symtab_underscores(b->sym.name))
		return symtab_underscores(a->sym.name) > symtab_underscores(b->sym.name) ? -1 : 1;
	return strcmp(b->sym.name, a->sym.name);
}

/* The key decides almost every comparison; the tie-breakers are the slow path. */
static inline int symtab_cmp_key(const struct symtab_key *x, const struct symtab_key *y,
				 int by_addr)
{
	if (x->key != y->key)
		return x->key < y->key ? -1 : 1;
	return by_addr ? symtab_tie_addr(x, y) : symtab_tie_name(x, y);
}

/*
 * A merge sort with the comparison inlined: qsort's indirect calls and
 * string compares made it half of symtab_open() on a full .symtab.  Merge
 * sort also has no worst case for a crafted file to aim at.
 */
static void symtab_sort(struct symtab_key *a, size_t n, int by_addr)
{
	struct symtab_key *tmp, *src = a, *dst, *t;
	size_t i, j, w;

	for (i = 0; i < n; i += 16) { /* insertion sort runs of 16 first */
		size_t end = n - i < 16 ? n : i + 16;

		for (j = i + 1; j < end; j++) {
			struct symtab_key v = a[j];
			size_t k;

			for (k = j; k > i && symtab_cmp_key(&v, &a[k - 1], by_addr) < 0; k--)
				a[k] = a[k - 1];
			a[k] = v;
		}
	}
	if (n <= 16)
		return;
	tmp = dst = xmalloc(n * sizeof(*tmp));
	for (w = 16; w < n; w *= 2) {
		for (i = 0; i < n; i += 2 * w) {
			size_t m = n - i < w ? n : i + w;
			size_t r = n - i < 2 * w ? n : i + 2 * w;
			size_t p = i, q = m, k = i;

			while (p < m && q < r) {
				if (symtab_cmp_key(&src[q], &src[p], by_addr) < 0)
					dst[k++] = src[q++];
				else
					dst[k++] = src[p++];
			}
			while (p < m)
				dst[k++] = src[p++];
			while (q < r)
				dst[k++] = src[q++];
		}
		t = src;
		src = dst;
		dst = t;
	}
	if (src != a)
		memcpy(a, src, n * sizeof(*a));
	free(tmp);
}

/* Should b replace a as the symbol symtab_find() returns for their name? */
static int symtab_better_named(const struct symtab_entry *a, const struct symtab_entry *b)
{
	if (a->rank != b->rank)
		return b->rank > a->rank;
	if ((a->sym.size != 0) != (b->sym.size != 0))
		return b->sym.size != 0;
	return 0; /* keep the lower address */
}

/* Section headers, and the symbol tables and string tables we will read. */
static int symtab_scan_sections(struct symtab *st, Elf *elf, const struct symtab_file *f,
				struct symtab_table tabs[2], size_t *shstr_ndx)
{
	const char *path = f->path;
	uint64_t fsize = f->size;
	size_t shnum, i;

	if (elf_getshdrnum(elf, &shnum) < 0)
		return error("cannot read ELF file '%s': %s", path, elf_errmsg(-1));
	if (shnum != f->shnum)
		return error("cannot read ELF file '%s': it changed while being read", path);
	if (shnum && elf_getshdrstrndx(elf, shstr_ndx) < 0)
		return error("cannot read ELF file '%s': %s", path, elf_errmsg(-1));
	st->sects = xcalloc(shnum ? shnum : 1, sizeof(*st->sects));
	st->nsects = shnum;

	for (i = 1; i < shnum; i++) {
		GElf_Shdr sh;
		Elf_Scn *scn = elf_getscn(elf, i);
		struct symtab_table *t;

		if (!scn || !gelf_getshdr(scn, &sh))
			return error("cannot read ELF file '%s': %s", path, elf_errmsg(-1));
		st->sects[i].addr = sh.sh_addr;
		st->sects[i].size = sh.sh_size;
		if (sh.sh_type == SHT_SYMTAB)
			t = &tabs[0];
		else if (sh.sh_type == SHT_DYNSYM)
			t = &tabs[1];
		else
			continue;
		/* The gABI allows one of each; a second one is noise. */
		if (t->ndx || (sh.sh_flags & SHF_COMPRESSED) ||
		    !symtab_in_file(sh.sh_offset, sh.sh_size, fsize) || sh.sh_link == 0 ||
		    sh.sh_link >= shnum)
			continue;
		t->ndx = i;
		t->count = sh.sh_size / sizeof(Elf64_Sym);
		t->str_ndx = sh.sh_link;
	}

	for (i = 0; i < 2; i++) {
		struct symtab_table *t = &tabs[i];
		GElf_Shdr sh;

		if (!t->ndx)
			continue;
		if (!gelf_getshdr(elf_getscn(elf, t->str_ndx), &sh) || sh.sh_type != SHT_STRTAB ||
		    (sh.sh_flags & SHF_COMPRESSED) ||
		    !symtab_in_file(sh.sh_offset, sh.sh_size, fsize)) {
			t->ndx = 0; /* names we cannot read: skip the table */
			continue;
		}
		t->str_size = sh.sh_size;
	}
	if (tabs[0].ndx && tabs[1].ndx && tabs[0].count + tabs[1].count > SYMTAB_MAX_SYMBOLS)
		return error("cannot read ELF file '%s': too many symbols", path);
	if ((tabs[0].ndx && tabs[0].count > SYMTAB_MAX_SYMBOLS) ||
	    (tabs[1].ndx && tabs[1].count > SYMTAB_MAX_SYMBOLS))
		return error("cannot read ELF file '%s': too many symbols", path);

	/* .gnu.version tells the default version of a .dynsym name from old ones. */
	if (tabs[1].ndx) {
		for (i = 1; i < shnum; i++) {
			GElf_Shdr sh;

			if (gelf_getshdr(elf_getscn(elf, i), &sh) && sh.sh_type == SHT_GNU_versym &&
			    sh.sh_link == tabs[1].ndx && !(sh.sh_flags & SHF_COMPRESSED) &&
			    symtab_in_file(sh.sh_offset, sh.sh_size, fsize)) {
				tabs[1].versym_ndx = i;
				break;
			}
		}
	}
	return 0;
}

/* Copy a string table into the pool at base, NUL-terminated whatever it holds. */
static int symtab_copy_strings(Elf *elf, size_t ndx, char *dst, uint64_t size)
{
	Elf_Data *d = NULL;
	uint64_t done = 0;

	/* A string table may come in several Elf_Data pieces in theory. */
	while (done < size && (d = elf_getdata(elf_getscn(elf, ndx), d))) {
		size_t n = d->d_size;

		if (!d->d_buf && n)
			return -1;
		if (n > size - done)
			n = (size_t)(size - done);
		if (n)
			memcpy(dst + done, d->d_buf, n);
		done += n;
	}
	if (done < size)
		return -1;
	dst[size] = '\0';
	return 0;
}

/* A name as symtab_find() should see it: "foo@@VER" (the default version) is foo. */
static void symtab_strip_version(char *name)
{
	char *at = strchr(name, '@');

	if (at && at != name && at[1] == '@')
		*at = '\0';
}

static void symtab_read_table(struct symtab *st, Elf *elf, const struct symtab_table *t,
			      int dynamic)
{
	Elf_Data *data, *versym = NULL;
	size_t n, i;

	data = elf_getdata(elf_getscn(elf, t->ndx), NULL);
	if (!data || !data->d_buf)
		return; /* an unreadable table is one we skip */
	n = data->d_size / sizeof(Elf64_Sym);
	if (n > t->count)
		n = t->count;
	if (t->versym_ndx)
		versym = elf_getdata(elf_getscn(elf, t->versym_ndx), NULL);

	for (i = 1; i < n; i++) { /* entry 0 is the null symbol */
		GElf_Sym s;
		GElf_Versym vs;
		unsigned char type, bind;
		struct symtab_entry *e;
		char *name;
		int hidden = 0;

		if (!gelf_getsym(data, (int)i, &s))
			continue;
		type = GELF_ST_TYPE(s.st_info);
		bind = GELF_ST_BIND(s.st_info);
		if (s.st_shndx == SHN_UNDEF || type == STT_SECTION || type == STT_FILE)
			continue;
		if (s.st_name >= t->str_size)
			continue;
		name = st->pool + t->str_base + s.st_name;
		symtab_strip_version(name);
		if (!*name)
			continue;
		if (dynamic && versym && gelf_getversym(versym, (int)i, &vs) &&
		    (vs & SYMTAB_VERSYM_HIDDEN))
			hidden = 1;

		e = &st->syms[st->nsyms++];
		e->sym.name = name;
		e->sym.value = s.st_value;
		e->sym.size = s.st_size;
		e->sym.type = type;
		e->sym.global = bind == STB_GLOBAL || bind == STB_WEAK || bind == STB_GNU_UNIQUE;
		e->rank = symtab_rank(bind, type, hidden);
		/* TLS values are offsets, absolute and common ones are not addresses. */
		e->addressable = (type == STT_FUNC || type == STT_OBJECT) &&
				 s.st_shndx != SHN_ABS && s.st_shndx != SHN_COMMON;
	}
}

static int symtab_read_segments(struct symtab *st, Elf *elf, const struct symtab_file *f)
{
	const char *path = f->path;
	size_t phnum, i;

	if (elf_getphdrnum(elf, &phnum) < 0)
		return error("cannot read ELF file '%s': %s", path, elf_errmsg(-1));
	if (phnum != f->phnum)
		return error("cannot read ELF file '%s': it changed while being read", path);
	st->segs = xcalloc(phnum ? phnum : 1, sizeof(*st->segs));
	for (i = 0; i < phnum; i++) {
		GElf_Phdr ph;
		struct symtab_segment *sg;

		if (!gelf_getphdr(elf, (int)i, &ph))
			return error("cannot read ELF file '%s': %s", path, elf_errmsg(-1));
		if (ph.p_type != PT_LOAD)
			continue;
		sg = &st->segs[st->nsegs++];
		sg->vaddr = ph.p_vaddr;
		sg->memsz = ph.p_memsz;
		sg->offset = ph.p_offset;
		sg->filesz = ph.p_filesz;
		sg->flags = ph.p_flags;
	}
	return 0;
}

/* Drop repeated (name, value) pairs, then index by name and by address. */
static void symtab_build_indexes(struct symtab *st)
{
	struct symtab_key *keys = xmalloc((st->nsyms ? st->nsyms : 1) * sizeof(*keys));
	struct symtab_entry *sorted;
	size_t i, n = 0;

	for (i = 0; i < st->nsyms; i++) {
		keys[i].key = symtab_name_key(st->syms[i].sym.name);
		keys[i].e = &st->syms[i];
	}
	symtab_sort(keys, st->nsyms, 0);
	sorted = xmalloc((st->nsyms ? st->nsyms : 1) * sizeof(*sorted));
	for (i = 0; i < st->nsyms; i++) {
		const struct symtab_entry *e = keys[i].e;

		if (n && e->sym.value == sorted[n - 1].sym.value &&
		    !strcmp(e->sym.name, sorted[n - 1].sym.name))
			continue; /* sorted best first: the kept one is the better */
		sorted[n++] = *e;
	}
	free(keys);
	free(st->syms);
	st->syms = sorted;
	st->nsyms = n;

	st->by_name = xmalloc((n ? n : 1) * sizeof(*st->by_name));
	st->nnames = 0;
	for (i = 0; i < n; i++) {
		const struct symtab_entry *e = &st->syms[i];
		const struct symtab_entry **last = st->nnames ? &st->by_name[st->nnames - 1] : NULL;

		if (last && !strcmp((*last)->sym.name, e->sym.name)) {
			if (symtab_better_named(*last, e))
				*last = e;
			continue;
		}
		st->by_name[st->nnames++] = e;
	}

	keys = xmalloc((n ? n : 1) * sizeof(*keys));
	st->naddr = 0;
	for (i = 0; i < n; i++) {
		if (!st->syms[i].addressable)
			continue;
		keys[st->naddr].key = st->syms[i].sym.value;
		keys[st->naddr++].e = &st->syms[i];
	}
	symtab_sort(keys, st->naddr, 1);
	st->by_addr = xmalloc((st->naddr ? st->naddr : 1) * sizeof(*st->by_addr));
	for (i = 0; i < st->naddr; i++) {
		struct symtab_addr *a = &st->by_addr[i];
		uint64_t end = keys[i].key + keys[i].e->sym.size;

		if (end < keys[i].key)
			end = UINT64_MAX; /* a crafted size: saturate, never wrap */
		a->value = keys[i].key;
		a->e = keys[i].e;
		a->maxend = i && st->by_addr[i - 1].maxend > end ? st->by_addr[i - 1].maxend : end;
	}
	free(keys);
}

/* Everything but opening the file; errors leave the cleanup to the caller. */
static int symtab_load(struct symtab *st, Elf *elf, const struct symtab_file *f)
{
	const char *path = f->path;
	uint64_t fsize = f->size;
	struct symtab_table tabs[2];
	size_t shstr_ndx = 0, i, pool_size = 0, shstr_base = 0, total;
	uint64_t shstr_size = 0;
	GElf_Ehdr eh;
	GElf_Shdr sh;

	if (elf_kind(elf) != ELF_K_ELF || !gelf_getehdr(elf, &eh))
		return error("cannot read ELF file '%s': not an ELF file", path);
	/* libelf read the header again: it must be the one we checked. */
	if (memcmp(&eh, &f->eh, sizeof(eh)))
		return error("cannot read ELF file '%s': it changed while being read", path);
	st->type = eh.e_type;

	memset(tabs, 0, sizeof(tabs));
	if (symtab_scan_sections(st, elf, f, tabs, &shstr_ndx) < 0)
		return -1;

	/* One pool: the section names, then each string table we need, once. */
	if (shstr_ndx && shstr_ndx < st->nsects && gelf_getshdr(elf_getscn(elf, shstr_ndx), &sh) &&
	    sh.sh_type == SHT_STRTAB && !(sh.sh_flags & SHF_COMPRESSED) &&
	    symtab_in_file(sh.sh_offset, sh.sh_size, fsize)) {
		shstr_size = sh.sh_size;
		pool_size += shstr_size + 1;
	}
	for (i = 0; i < 2; i++) {
		if (!tabs[i].ndx)
			continue;
		if (i == 1 && tabs[0].ndx && tabs[0].str_ndx == tabs[1].str_ndx) {
			tabs[1].str_base = tabs[0].str_base;
			continue;
		}
		tabs[i].str_base = pool_size;
		pool_size += tabs[i].str_size + 1;
	}
	/* Each piece lies within the file, so this is at most three times its size. */
	st->pool = xmalloc(pool_size + 1);
	st->pool[pool_size] = '\0';
	if (shstr_size &&
	    symtab_copy_strings(elf, shstr_ndx, st->pool + shstr_base, shstr_size) < 0)
		shstr_size = 0;
	for (i = 0; i < 2; i++) {
		if (!tabs[i].ndx || (i == 1 && tabs[0].ndx && tabs[0].str_ndx == tabs[1].str_ndx))
			continue;
		if (symtab_copy_strings(elf, tabs[i].str_ndx, st->pool + tabs[i].str_base,
					tabs[i].str_size) < 0)
			return error("cannot read ELF file '%s': unreadable string table", path);
	}

	for (i = 0; i < st->nsects; i++) {
		GElf_Shdr s;

		st->sects[i].name = "";
		if (i && shstr_size && gelf_getshdr(elf_getscn(elf, i), &s) &&
		    s.sh_name < shstr_size)
			st->sects[i].name = st->pool + shstr_base + s.sh_name;
	}

	total = (tabs[0].ndx ? tabs[0].count : 0) + (tabs[1].ndx ? tabs[1].count : 0);
	st->syms = xmalloc((total ? total : 1) * sizeof(*st->syms));
	st->nsyms = 0;
	for (i = 0; i < 2; i++)
		if (tabs[i].ndx)
			symtab_read_table(st, elf, &tabs[i], i == 1);
	st->full = tabs[0].ndx != 0;

	if (symtab_read_segments(st, elf, f) < 0)
		return -1;
	symtab_build_indexes(st);
	return 0;
}

struct symtab *symtab_open(const char *path)
{
	static int libelf_ready;
	struct symtab *st;
	struct symtab_file f;
	struct stat sb;
	Elf *elf;
	int fd, ret;

	if (!libelf_ready) {
		if (elf_version(EV_CURRENT) == EV_NONE) {
			error("cannot initialise libelf: %s", elf_errmsg(-1));
			return NULL;
		}
		libelf_ready = 1;
	}

	/* O_NONBLOCK: a FIFO swapped in at this path must not hang us. */
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd < 0) {
		error("cannot open ELF file '%s': %s", path, strerror(errno));
		return NULL;
	}
	if (fstat(fd, &sb) < 0) {
		error("cannot open ELF file '%s': %s", path, strerror(errno));
		close(fd);
		return NULL;
	}
	if (!S_ISREG(sb.st_mode)) {
		error("cannot read ELF file '%s': not a regular file", path);
		close(fd);
		return NULL;
	}
	f.path = path;
	f.size = (uint64_t)sb.st_size;
	if (symtab_check_header(fd, &f) < 0) {
		close(fd);
		return NULL;
	}

	elf = elf_begin(fd, ELF_C_READ, NULL);
	if (!elf) {
		error("cannot read ELF file '%s': %s", path, elf_errmsg(-1));
		close(fd);
		return NULL;
	}
	st = xcalloc(1, sizeof(*st));
	ret = symtab_load(st, elf, &f);
	elf_end(elf);
	close(fd);
	if (ret < 0) {
		symtab_free(st);
		return NULL;
	}
	return st;
}

void symtab_free(struct symtab *st)
{
	if (!st)
		return;
	free(st->pool);
	free(st->syms);
	free(st->by_name);
	free(st->by_addr);
	free(st->sects);
	free(st->segs);
	free(st);
}

/* The first by-name index at or after name. */
static size_t symtab_lower_bound(const struct symtab *st, const char *name)
{
	size_t lo = 0, hi = st->nnames;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (strcmp(st->by_name[mid]->sym.name, name) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

const struct symbol *symtab_find(const struct symtab *st, const char *name)
{
	size_t i = symtab_lower_bound(st, name);

	if (i < st->nnames && !strcmp(st->by_name[i]->sym.name, name))
		return &st->by_name[i]->sym;
	return NULL;
}

const struct symbol *symtab_lookup_addr(const struct symtab *st, uint64_t vaddr)
{
	size_t lo = 0, hi = st->naddr, j, steps;
	const struct symtab_entry *nearest;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (st->by_addr[mid].value <= vaddr)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo == 0)
		return NULL;
	nearest = st->by_addr[lo - 1].e;

	/* The nearest may be a label inside, or a neighbour nested in, the real container. */
	for (j = lo - 1, steps = 0; steps < SYMTAB_MAX_WALK; j--, steps++) {
		const struct symtab_addr *a = &st->by_addr[j];

		/* Nothing at or below j reaches vaddr (UINT64_MAX: a size that wrapped). */
		if (a->maxend <= vaddr && a->maxend != UINT64_MAX)
			break;
		if (vaddr - a->value < a->e->sym.size)
			return &a->e->sym;
		if (j == 0)
			break;
	}
	return nearest->sym.size == 0 ? &nearest->sym : NULL;
}

int symtab_section(const struct symtab *st, const char *name, uint64_t *addr, uint64_t *size)
{
	size_t i;

	if (!*name)
		return -1; /* unnamed sections are not worth finding */
	for (i = 1; i < st->nsects; i++) {
		if (strcmp(st->sects[i].name, name))
			continue;
		if (addr)
			*addr = st->sects[i].addr;
		if (size)
			*size = st->sects[i].size;
		return 0;
	}
	return -1;
}

size_t symtab_segments(const struct symtab *st, const struct symtab_segment **segs)
{
	*segs = st->segs;
	return st->nsegs;
}

int symtab_has_full_symbols(const struct symtab *st)
{
	return st->full;
}

int symtab_elf_type(const struct symtab *st)
{
	return st->type;
}

void symtab_each_prefix(const struct symtab *st, const char *prefix,
			int (*fn)(const struct symbol *sym, void *arg), void *arg)
{
	size_t plen = strlen(prefix), i;

	for (i = symtab_lower_bound(st, prefix); i < st->nnames; i++) {
		const struct symbol *sym = &st->by_name[i]->sym;

		if (strncmp(sym->name, prefix, plen))
			break;
		if (fn(sym, arg))
			break;
	}
}

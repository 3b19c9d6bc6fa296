// SPDX-License-Identifier: GPL-3.0-or-later
/*
 * maps: /proc/PID/maps, and the ELF modules in it.  See include/maps.h.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <elf.h>

#include "maps.h"
#include "util.h"

/* A maps file larger than this is not something we will parse. */
#define MAPS_MAX_BYTES (64u << 20)

/* A hex field of at most 16 digits ending at one of `stops`; NULL when it is not one. */
static const char *hex_field(const char *p, uint64_t *v, const char *stops)
{
	size_t n = strspn(p, "0123456789abcdefABCDEF");

	if (!n || n > 16 || !p[n] || !strchr(stops, p[n]))
		return NULL;
	*v = strtoull(p, NULL, 16);
	return p + n;
}

/* "start-end perms offset dev inode [path]", as the kernel writes it, nothing looser. */
static int parse_line(const char *line, struct map *m)
{
	const char *p = line;
	uint64_t start, end, offset;
	size_t n;

	if (!(p = hex_field(p, &start, "-")) || !(p = hex_field(p + 1, &end, " ")) || end < start)
		return -1;
	p++;
	if (strspn(p, "rwxps-") != 4 || p[4] != ' ')
		return -1;
	memcpy(m->perms, p, 4);
	m->perms[4] = '\0';
	if (!(p = hex_field(p + 5, &offset, " ")))
		return -1;
	p++;
	n = strspn(p, "0123456789abcdefABCDEF:");
	if (!n || n >= sizeof(m->dev) || p[n] != ' ')
		return -1;
	memcpy(m->dev, p, n);
	m->dev[n] = '\0';
	p += n + 1;
	n = strspn(p, "0123456789");
	if (!n || n > 20 || (p[n] && p[n] != ' '))
		return -1;
	m->inode = strtoul(p, NULL, 10);
	p += n;
	p += strspn(p, " ");
	m->start = start;
	m->end = end;
	m->offset = offset;
	m->path = xstrdup(p);
	return 0;
}

int maps_parse(const char *text, struct maps *out)
{
	size_t cap = 0;
	const char *p = text;

	out->v = NULL;
	out->n = 0;
	while (*p) {
		const char *nl = strchr(p, '\n');
		size_t len = nl ? (size_t)(nl - p) : strlen(p);
		char *line;

		if (len) {
			line = xmalloc(len + 1);
			memcpy(line, p, len);
			line[len] = '\0';
			if (out->n == cap) {
				cap = cap ? cap * 2 : 64;
				out->v = xrealloc(out->v, cap * sizeof(*out->v));
			}
			if (parse_line(line, &out->v[out->n]) < 0) {
				free(line);
				maps_release(out);
				return -1;
			}
			out->n++;
			free(line);
		}
		p += len;
		if (*p == '\n')
			p++;
	}
	return 0;
}

int maps_read(pid_t pid, struct maps *out)
{
	struct strbuf sb = STRBUF_INIT;
	char path[64], buf[65536];
	ssize_t n;
	int fd, r;

	snprintf(path, sizeof(path), "/proc/%d/maps", pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return error("cannot read '%s': %s", path, strerror(errno));
	while ((n = read(fd, buf, sizeof(buf))) > 0) {
		sb_add(&sb, buf, (size_t)n);
		if (sb.len > MAPS_MAX_BYTES)
			break;
	}
	close(fd);
	if (n < 0) {
		sb_release(&sb);
		return error("cannot read '%s': %s", path, strerror(errno));
	}
	r = maps_parse(sb_str(&sb), out);
	sb_release(&sb);
	if (r < 0)
		return error("cannot parse '%s'", path);
	return 0;
}

void maps_release(struct maps *m)
{
	for (size_t i = 0; i < m->n; i++)
		free(m->v[i].path);
	free(m->v);
	m->v = NULL;
	m->n = 0;
}

const struct map *maps_find(const struct maps *m, uint64_t addr)
{
	size_t lo = 0, hi = m->n;

	/* the kernel lists mappings in address order */
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (addr < m->v[mid].start)
			hi = mid;
		else if (addr >= m->v[mid].end)
			lo = mid + 1;
		else
			return &m->v[mid];
	}
	return NULL;
}

static int is_file_path(const char *path)
{
	return path[0] == '/';
}

int modules_build(pid_t pid, const struct maps *m, struct modules *out)
{
	size_t cap = 0;

	out->pid = pid;
	out->v = NULL;
	out->n = 0;
	for (size_t i = 0; i < m->n; i++) {
		const struct map *mp = &m->v[i];
		struct module *mod = NULL;

		if (!is_file_path(mp->path) || !mp->inode)
			continue;
		for (size_t j = 0; j < out->n; j++)
			if (out->v[j].inode == mp->inode && !strcmp(out->v[j].path, mp->path)) {
				mod = &out->v[j];
				break;
			}
		if (!mod) {
			if (out->n == cap) {
				cap = cap ? cap * 2 : 32;
				out->v = xrealloc(out->v, cap * sizeof(*out->v));
			}
			mod = &out->v[out->n++];
			memset(mod, 0, sizeof(*mod));
			mod->path = xstrdup(mp->path);
			mod->inode = mp->inode;
			mod->start = mp->start;
			mod->end = mp->end;
			mod->first_map_start = mp->start;
			mod->first_map_end = mp->end;
			mod->first_map_offset = mp->offset;
			continue;
		}
		if (mp->start < mod->start) {
			mod->start = mp->start;
			mod->first_map_start = mp->start;
			mod->first_map_end = mp->end;
			mod->first_map_offset = mp->offset;
		}
		if (mp->end > mod->end)
			mod->end = mp->end;
	}
	return 0;
}

void modules_release(struct modules *mods)
{
	/* symbol tables belong to the cache of symtab_open_cached, not to the modules */
	for (size_t i = 0; i < mods->n; i++)
		free(mods->v[i].path);
	free(mods->v);
	mods->v = NULL;
	mods->n = 0;
}

struct module *modules_find_addr(struct modules *mods, uint64_t addr)
{
	for (size_t i = 0; i < mods->n; i++)
		if (addr >= mods->v[i].start && addr < mods->v[i].end)
			return &mods->v[i];
	return NULL;
}

static const char *base_name(const char *path)
{
	const char *s = strrchr(path, '/');

	return s ? s + 1 : path;
}

struct module *modules_find_name(struct modules *mods, const char *prefix)
{
	for (size_t i = 0; i < mods->n; i++)
		if (!strncmp(base_name(mods->v[i].path), prefix, strlen(prefix)))
			return &mods->v[i];
	return NULL;
}

void module_open_path(const struct modules *mods, const struct module *mod, char *buf, size_t len)
{
	const char *del = " (deleted)";
	size_t plen = strlen(mod->path), dlen = strlen(del);

	if (plen > dlen && !strcmp(mod->path + plen - dlen, del))
		/* the file is gone from the file system, but the mapping still holds it */
		snprintf(buf, len, "/proc/%d/map_files/%" PRIx64 "-%" PRIx64, mods->pid,
			 mod->first_map_start, mod->first_map_end);
	else
		snprintf(buf, len, "/proc/%d/root%s", mods->pid, mod->path);
}

/* The load bias: which file offset the first mapping holds, and the PT_LOAD that covers it. */
static void compute_bias(struct module *mod)
{
	const struct symtab_segment *seg;
	size_t n = symtab_segments(mod->symtab, &seg);

	for (size_t i = 0; i < n; i++) {
		uint64_t page_off = seg[i].offset & ~0xfffull;

		if (mod->first_map_offset >= page_off &&
		    mod->first_map_offset < seg[i].offset + (seg[i].filesz ? seg[i].filesz : 1)) {
			uint64_t vaddr = seg[i].vaddr - seg[i].offset + mod->first_map_offset;

			mod->bias = mod->first_map_start - vaddr;
			mod->bias_known = 1;
			return;
		}
	}
	/* no PT_LOAD covers it: an ET_DYN file mapped from offset 0 is still at start */
	mod->bias = symtab_elf_type(mod->symtab) == ET_EXEC ? 0 : mod->start;
	mod->bias_known = 1;
}

/*
 * Symbol tables, read once per file for the life of pyleakdb: the modules
 * are rebuilt at every attach and after every continue, the files behind
 * them rarely change.  A file is known by what stat() says of it, so the
 * same library seen through two paths (/proc/PID/root/..., map_files) is
 * read once, and a file replaced in place is read again.
 */
struct symtab_file {
	dev_t dev;
	ino_t ino;
	off_t size;
	struct timespec mtime;
	struct symtab *st;
};

static struct symtab_file *symtab_files;
static size_t nsymtab_files, symtab_files_cap;

static struct symtab *symtab_open_cached(const char *path)
{
	struct stat sb;
	struct symtab *st;

	if (stat(path, &sb) < 0)
		return NULL;
	for (size_t i = 0; i < nsymtab_files; i++) {
		struct symtab_file *f = &symtab_files[i];

		if (f->dev == sb.st_dev && f->ino == sb.st_ino && f->size == sb.st_size &&
		    f->mtime.tv_sec == sb.st_mtim.tv_sec && f->mtime.tv_nsec == sb.st_mtim.tv_nsec)
			return f->st;
	}
	st = symtab_open(path);
	if (!st)
		return NULL;
	if (nsymtab_files == symtab_files_cap) {
		symtab_files_cap = symtab_files_cap ? 2 * symtab_files_cap : 16;
		symtab_files = xrealloc(symtab_files, symtab_files_cap * sizeof(*symtab_files));
	}
	symtab_files[nsymtab_files++] = (struct symtab_file){
	    .dev = sb.st_dev,
	    .ino = sb.st_ino,
	    .size = sb.st_size,
	    .mtime = sb.st_mtim,
	    .st = st,
	};
	return st;
}

struct symtab *module_symtab(struct modules *mods, struct module *mod)
{
	char path[PATH_MAX + 64];

	if (mod->symtab_tried)
		return mod->symtab;
	mod->symtab_tried = 1;
	module_open_path(mods, mod, path, sizeof(path));
	error_quiet(1);
	mod->symtab = symtab_open_cached(path);
	if (!mod->symtab) {
		/* a file replaced since it was mapped: map_files still has the original */
		/* map_files names one mapping: the first one's start and end */
		snprintf(path, sizeof(path), "/proc/%d/map_files/%" PRIx64 "-%" PRIx64, mods->pid,
			 mod->first_map_start, mod->first_map_end);
		mod->symtab = symtab_open_cached(path);
	}
	error_quiet(0);
	if (mod->symtab)
		compute_bias(mod);
	return mod->symtab;
}

int modules_symbolize(struct modules *mods, uint64_t addr, const struct symbol **sym, uint64_t *off,
		      struct module **modp)
{
	struct module *mod = modules_find_addr(mods, addr);
	struct symtab *st;
	const struct symbol *s;

	*sym = NULL;
	*off = 0;
	if (modp)
		*modp = mod;
	if (!mod)
		return -1;
	st = module_symtab(mods, mod);
	if (!st) {
		*off = addr - mod->start;
		return -1;
	}
	s = symtab_lookup_addr(st, addr - mod->bias);
	if (!s) {
		*off = addr - mod->bias;
		return -1;
	}
	*sym = s;
	*off = addr - mod->bias - s->value;
	return 0;
}

int modules_lookup(struct modules *mods, const char *name, uint64_t *addr, struct module **modp)
{
	for (size_t i = 0; i < mods->n; i++) {
		struct symtab *st = module_symtab(mods, &mods->v[i]);
		const struct symbol *s;

		if (!st)
			continue;
		s = symtab_find(st, name);
		if (s) {
			*addr = s->value + mods->v[i].bias;
			if (modp)
				*modp = &mods->v[i];
			return 0;
		}
	}
	return -1;
}

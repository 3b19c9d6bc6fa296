/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * maps: the target's memory map, from /proc/PID/maps, and the ELF modules
 * (executable, libraries) mapped in it with their load bias.
 *
 * ELF files are opened through /proc/PID/root, so a process in a container
 * or chroot is read with its own files, and through /proc/PID/map_files for
 * a file deleted since it was mapped.  Symbols are read on first use.
 */
#ifndef PYLEAKDB_MAPS_H
#define PYLEAKDB_MAPS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "symtab.h"

struct map {
	uint64_t start, end, offset;
	char perms[5]; /* "r-xp" */
	unsigned long inode;
	char dev[16];
	char *path; /* "" for anonymous; "[heap]", "[stack]"...; raw as the kernel wrote it */
};

struct maps {
	struct map *v;
	size_t n;
};

/* Parse the text of a maps file (exposed for unit tests). 0, or -1 on a malformed line. */
int maps_parse(const char *text, struct maps *out);
int maps_read(pid_t pid, struct maps *out);
void maps_release(struct maps *m);
/* The mapping that holds addr, or NULL. */
const struct map *maps_find(const struct maps *m, uint64_t addr);

struct module {
	char *path;	     /* as in maps */
	uint64_t start, end; /* the lowest and highest address of its mappings */
	uint64_t bias;	     /* add to a file address to get the run-time address */
	int bias_known;
	int symtab_tried;
	struct symtab *symtab; /* NULL until loaded, or when unreadable */
	unsigned long inode;
	uint64_t first_map_start, first_map_end, first_map_offset;
};

struct modules {
	pid_t pid;
	struct module *v;
	size_t n;
};

/* Group the file-backed mappings into modules.  Symbols are not read yet. */
int modules_build(pid_t pid, const struct maps *m, struct modules *out);
void modules_release(struct modules *mods);
/* The module whose mappings span addr, or NULL. */
struct module *modules_find_addr(struct modules *mods, uint64_t addr);
/* The first module whose file name (the part after the last '/') starts with prefix. */
struct module *modules_find_name(struct modules *mods, const char *prefix);
/* The module's symbols, read and its bias computed on first call; NULL when unreadable. */
struct symtab *module_symtab(struct modules *mods, struct module *mod);
/* The path to open the module's file with, from our side: /proc/PID/root/... */
void module_open_path(const struct modules *mods, const struct module *mod, char *buf, size_t len);

/*
 * Resolve a run-time address to "symbol+0x12", with the module's file name
 * when no symbol covers it ("libc.so.6+0x1234").  Returns 0 and fills sym
 * and off when a symbol was found.
 */
int modules_symbolize(struct modules *mods, uint64_t addr, const struct symbol **sym, uint64_t *off,
		      struct module **modp);
/* A symbol's run-time address by name, searching every module (main executable first). */
int modules_lookup(struct modules *mods, const char *name, uint64_t *addr, struct module **modp);

#endif

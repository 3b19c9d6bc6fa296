/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * symtab: the symbols, sections and loadable segments of one ELF file, read
 * with libelf.
 *
 * Addresses are the file's own (st_value, sh_addr, p_vaddr): the caller adds
 * the load bias of the mapping.  The file is untrusted (a hostile target can
 * map anything): every table is bounds-checked and a malformed file gives an
 * error, never a crash.
 */
#ifndef PYLEAKDB_SYMTAB_H
#define PYLEAKDB_SYMTAB_H

#include <stddef.h>
#include <stdint.h>

struct symbol {
	const char *name; /* owned by the symtab */
	uint64_t value;
	uint64_t size;
	unsigned char type;   /* STT_FUNC, STT_OBJECT, ... */
	unsigned char global; /* STB_GLOBAL or STB_WEAK */
};

struct symtab_segment {
	uint64_t vaddr, memsz, offset, filesz;
	uint32_t flags; /* PF_R | PF_W | PF_X */
};

struct symtab;

/*
 * Read the symbols of the ELF file at path: .symtab and .dynsym merged, one
 * entry per (name, value), undefined and empty-named symbols left out.
 * Returns NULL after printing an error when the file cannot be opened or is
 * not a 64-bit ELF file.  The caller frees the result with symtab_free().
 */
struct symtab *symtab_open(const char *path);
void symtab_free(struct symtab *st);

/* The defined symbol called name, or NULL.  Global symbols win over local ones. */
const struct symbol *symtab_find(const struct symtab *st, const char *name);

/*
 * The function or object symbol that contains vaddr, or else the nearest
 * one below it when that symbol's size is 0; NULL when none.
 */
const struct symbol *symtab_lookup_addr(const struct symtab *st, uint64_t vaddr);

/* The section called name: 0 and its address and size, or -1 when absent. */
int symtab_section(const struct symtab *st, const char *name, uint64_t *addr, uint64_t *size);

/* The PT_LOAD segments, in file order. */
size_t symtab_segments(const struct symtab *st, const struct symtab_segment **segs);

/* The file had a .symtab (not just .dynsym). */
int symtab_has_full_symbols(const struct symtab *st);

/* ELF e_type: ET_EXEC or ET_DYN. */
int symtab_elf_type(const struct symtab *st);

/* Calls fn for each symbol whose name starts with prefix, until fn returns non-zero. */
void symtab_each_prefix(const struct symtab *st, const char *prefix,
			int (*fn)(const struct symbol *sym, void *arg), void *arg);

#endif

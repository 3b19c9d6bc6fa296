/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * mem: reading and writing the target's memory.
 *
 * Reads go through a page cache that is valid while the target stays
 * stopped: it is keyed on the task's resume generation, so the first read
 * after any resume starts afresh.  Walking a thousand frames costs a few
 * dozen process_vm_readv() calls instead of thousands.
 *
 * Reads never print: they return -1 (errno EFAULT for unmapped memory) and
 * the caller, which knows what it was reading, says so.
 */
#ifndef PYLEAKDB_MEM_H
#define PYLEAKDB_MEM_H

#include <stddef.h>
#include <stdint.h>

#include "task.h"
#include "util.h"

int mem_read(struct task *t, uint64_t addr, void *buf, size_t len);
int mem_read_u64(struct task *t, uint64_t addr, uint64_t *out);
int mem_read_u32(struct task *t, uint64_t addr, uint32_t *out);
int mem_read_i32(struct task *t, uint64_t addr, int32_t *out);
int mem_read_u8(struct task *t, uint64_t addr, uint8_t *out);
/* A NUL-terminated string of at most max bytes (not counting the NUL); raw bytes, unescaped. */
int mem_read_cstr(struct task *t, uint64_t addr, size_t max, struct strbuf *out);
/* Bypasses the cache: for large one-off reads (agent results). */
int mem_read_direct(struct task *t, uint64_t addr, void *buf, size_t len);
/* Writes through the kernel (works on read-only text) and keeps the cache coherent. */
int mem_write(struct task *t, uint64_t addr, const void *buf, size_t len);
/* Forget everything cached (the caller knows memory changed under us). */
void mem_invalidate(void);

#endif

// SPDX-License-Identifier: GPL-3.0-or-later
/*
 * mem: target memory through a page cache keyed on the task's resume
 * generation.  See include/mem.h.
 */
#include <errno.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#include "mem.h"

#define PAGE_SHIFT  12
#define PAGE_SIZE_  (1ul << PAGE_SHIFT)
#define CACHE_SLOTS 4096 /* 16 MiB at most: far more than any stack walk touches */
/* Reads larger than this skip the cache: they are one-off bulk copies. */
#define DIRECT_THRESHOLD (64 * 1024)

struct page_slot {
	uint64_t page; /* page address; 0 = empty */
	int readable;
	unsigned char *data;
};

static struct page_slot slots[CACHE_SLOTS];
static size_t slots_used;
/* what the cached pages belong to: a resume or another target empties the cache */
static unsigned long cache_generation;
static pid_t cache_pid;

void mem_invalidate(void)
{
	for (size_t i = 0; i < CACHE_SLOTS; i++)
		slots[i].page = 0;
	slots_used = 0;
}

static size_t slot_hash(uint64_t page)
{
	return (size_t)(((page >> PAGE_SHIFT) * 0x9e3779b97f4a7c15ull) >> 40) % CACHE_SLOTS;
}

int mem_read_direct(struct task *t, uint64_t addr, void *buf, size_t len)
{
	struct iovec local = {buf, len}, remote = {(void *)addr, len};
	ssize_t n;

	if (!len)
		return 0;
	if (addr + len < addr) {
		errno = EFAULT;
		return -1;
	}
	n = process_vm_readv(t->pid, &local, 1, &remote, 1, 0);
	if (n == (ssize_t)len)
		return 0;
	/* process_vm_readv stops at the first unreadable page; /proc/PID/mem may still read it */
	if (t->memfd >= 0 && pread(t->memfd, buf, len, (off_t)addr) == (ssize_t)len)
		return 0;
	errno = EFAULT;
	return -1;
}

static struct page_slot *lookup_page(struct task *t, uint64_t page)
{
	size_t h = slot_hash(page);
	struct page_slot *s;

	if (cache_generation != t->generation || cache_pid != t->pid ||
	    slots_used >= CACHE_SLOTS * 3 / 4) {
		mem_invalidate();
		cache_generation = t->generation;
		cache_pid = t->pid;
	}
	for (size_t probe = 0;; probe++) {
		s = &slots[(h + probe) % CACHE_SLOTS];
		if (!s->page || s->page == page)
			break;
	}
	if (s->page == page)
		return s;
	if (!s->data)
		s->data = xmalloc(PAGE_SIZE_);
	s->page = page;
	s->readable = mem_read_direct(t, page, s->data, PAGE_SIZE_) == 0;
	slots_used++;
	return s;
}

int mem_read(struct task *t, uint64_t addr, void *buf, size_t len)
{
	unsigned char *out = buf;

	if (len > DIRECT_THRESHOLD)
		return mem_read_direct(t, addr, buf, len);
	/* the NULL page is never mapped, and page 0 marks an empty cache slot */
	if (addr < PAGE_SIZE_ || addr + len < addr) {
		errno = EFAULT;
		return -1;
	}
	while (len) {
		uint64_t page = addr & ~(PAGE_SIZE_ - 1);
		size_t off = (size_t)(addr - page);
		size_t n = PAGE_SIZE_ - off < len ? PAGE_SIZE_ - off : len;
		struct page_slot *s = lookup_page(t, page);

		if (!s->readable) {
			errno = EFAULT;
			return -1;
		}
		memcpy(out, s->data + off, n);
		out += n;
		addr += n;
		len -= n;
	}
	return 0;
}

int mem_read_u64(struct task *t, uint64_t addr, uint64_t *out)
{
	return mem_read(t, addr, out, sizeof(*out));
}

int mem_read_u32(struct task *t, uint64_t addr, uint32_t *out)
{
	return mem_read(t, addr, out, sizeof(*out));
}

int mem_read_i32(struct task *t, uint64_t addr, int32_t *out)
{
	return mem_read(t, addr, out, sizeof(*out));
}

int mem_read_u8(struct task *t, uint64_t addr, uint8_t *out)
{
	return mem_read(t, addr, out, sizeof(*out));
}

int mem_read_cstr(struct task *t, uint64_t addr, size_t max, struct strbuf *out)
{
	char chunk[256];

	sb_reset(out);
	while (out->len < max) {
		/* read up to the end of the page, so a string near unmapped memory still reads */
		size_t room = PAGE_SIZE_ - (addr & (PAGE_SIZE_ - 1));
		size_t n = room < sizeof(chunk) ? room : sizeof(chunk);
		char *nul;

		if (n > max - out->len)
			n = max - out->len;
		if (mem_read(t, addr, chunk, n) < 0)
			return -1;
		nul = memchr(chunk, '\0', n);
		if (nul) {
			sb_add(out, chunk, (size_t)(nul - chunk));
			return 0;
		}
		sb_add(out, chunk, n);
		addr += n;
	}
	return 0;
}

int mem_write(struct task *t, uint64_t addr, const void *buf, size_t len)
{
	if (task_poke(t, addr, buf, len) < 0)
		return -1;
	mem_invalidate();
	return 0;
}

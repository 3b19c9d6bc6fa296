// SPDX-License-Identifier: GPL-3.0-or-later
/*
 * heapgraph: the reference graph of a heap snapshot, its searches, and
 * taking one from a live target.  See include/heapgraph.h.
 */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/uio.h>

#include "heapgraph.h"
#include "mem.h"
#include "pyframes.h"

/* Addresses looked up together, their memory fetched at once. */
#define LOOKUP_BATCH 32
/* Temporary marks of the searches, cleared before they return. */
#define HG_WANTED (1 << 6)
#define HG_SEEN	  (1 << 7)

/* An object's references as the agent's chunked lists: referents per call. */
#define EDGES_PER_CALL 1000000
/* Objects per gc.get_referents() call inside the target. */
#define OBJECTS_PER_CHUNK 50000
/* The largest list we read from the agent, in items. */
#define LIST_MAX (1ull << 31)
/* A frame with more local slots than this is not believed. */
#define FRAME_LOCALS_MAX 65536
/* A chain longer than this is not one (parents form no cycle, but memory is finite). */
#define CHAIN_MAX (1u << 20)
/* Words read per process_vm_readv() call. */
#define SCATTER_IOVS 1024
/* Refcounts at or above this are immortal objects (3.12+) or not to be believed. */
#define REFCNT_IMMORTAL (1ll << 30)
/* Seed of the shape hash, and what stands for "any item". */
#define SHAPE_SEED 0xcbf29ce484222325ull
#define SHAPE_ANY  UINT64_MAX

/* Arrays at least this big are searched at random: huge pages spare the TLB. */
#define HUGE_MIN   (4u << 20)
#define HUGE_ALIGN (2u << 20)

/* An array for random access: on huge pages when it is big (free() frees it). */
static void *big_alloc(size_t bytes)
{
	void *p;

	if (bytes < HUGE_MIN)
		return xmalloc(bytes ? bytes : 1);
	bytes = (bytes + HUGE_ALIGN - 1) & ~(size_t)(HUGE_ALIGN - 1);
	if (posix_memalign(&p, HUGE_ALIGN, bytes))
		die("out of memory (%zu bytes)", bytes);
	/* a hint: without transparent huge pages, small pages do */
	madvise(p, bytes, MADV_HUGEPAGE);
	return p;
}

static void *big_zalloc(size_t bytes)
{
	void *p = big_alloc(bytes);

	memset(p, 0, bytes);
	return p;
}

static void *big_realloc(void *old, size_t old_bytes, size_t bytes)
{
	void *p;

	if (bytes < HUGE_MIN)
		return xrealloc(old, bytes ? bytes : 1);
	p = big_alloc(bytes);
	memcpy(p, old, old_bytes < bytes ? old_bytes : bytes);
	free(old);
	return p;
}

void hg_init(struct hg *g)
{
	memset(g, 0, sizeof(*g));
}

void hg_release(struct hg *g)
{
	free(g->addr);
	free(g->type);
	free(g->flags);
	free(g->indeg);
	free(g->off);
	free(g->tgt);
	free(g->roff);
	free(g->rsrc);
	free(g->slot);
	free(g->parent);
	free(g->pedge);
	memset(g, 0, sizeof(*g));
}

/* ----- the address hash ----- */

/* The first slot for an address: the top bits of a multiplicative hash (the low ones only
 * depend on the address's low bits, and objects are 16-byte aligned). */
static inline uint64_t hash_addr(const struct hg *g, uint64_t a)
{
	return ((a >> 4) * 0x9e3779b97f4a7c15ull) >> g->shift;
}

static void hash_insert(struct hg *g, uint32_t node)
{
	uint64_t h = hash_addr(g, g->addr[node]);

	for (;; h++) {
		uint32_t *s = &g->slot[h & g->mask];

		if (*s == HG_NONE) {
			*s = node;
			return;
		}
		if (g->addr[*s] == g->addr[node])
			return; /* the first keeps the address */
	}
}

static void hash_rebuild(struct hg *g, uint64_t size)
{
	free(g->slot);
	g->slot = big_alloc(size * sizeof(*g->slot));
	g->mask = size - 1;
	g->shift = 64;
	while (size > 1) {
		size >>= 1;
		g->shift--;
	}
	size = g->mask + 1;
	memset(g->slot, 0xff, size * sizeof(*g->slot));
	for (uint32_t i = 0; i < g->n; i++)
		hash_insert(g, i);
}

int hg_lookup(const struct hg *g, uint64_t addr, uint32_t *node)
{
	uint64_t h;

	if (!g->slot)
		return -1;
	h = hash_addr(g, addr);
	if (!g->slot)
		return -1;
	for (;; h++) {
		uint32_t s = g->slot[h & g->mask];

		if (s == HG_NONE)
			return -1;
		if (g->addr[s] == addr) {
			*node = s;
			return 0;
		}
	}
}

/* ----- building ----- */

static void grow_nodes(struct hg *g, uint32_t cap)
{
	size_t old = g->cap;

	g->addr = big_realloc(g->addr, old * sizeof(*g->addr), cap * sizeof(*g->addr));
	g->type = big_realloc(g->type, old * sizeof(*g->type), cap * sizeof(*g->type));
	g->flags = big_realloc(g->flags, old * sizeof(*g->flags), cap * sizeof(*g->flags));
	g->indeg = big_realloc(g->indeg, old * sizeof(*g->indeg), cap * sizeof(*g->indeg));
	g->off =
	    big_realloc(g->off, (old + 1) * sizeof(*g->off), ((size_t)cap + 1) * sizeof(*g->off));
	memset(g->type + old, 0, (cap - old) * sizeof(*g->type));
	memset(g->flags + old, 0, (cap - old) * sizeof(*g->flags));
	memset(g->indeg + old, 0, (cap - old) * sizeof(*g->indeg));
	g->cap = cap;
}

int hg_alloc_objects(struct hg *g, uint32_t n)
{
	/* room for the frames added later without moving everything */
	uint32_t cap = n + 1024;

	if (g->addr || n > HG_MAX_NODES - 1024)
		return error("a graph of %" PRIu32 " objects is more than pyleakdb handles", n);
	g->addr = big_alloc((size_t)cap * sizeof(*g->addr));
	g->n = g->nobjs = n;
	g->type = big_zalloc((size_t)cap * sizeof(*g->type));
	g->flags = big_zalloc(cap * sizeof(*g->flags));
	g->indeg = big_zalloc((size_t)cap * sizeof(*g->indeg));
	g->off = big_zalloc(((size_t)cap + 1) * sizeof(*g->off));
	g->cap = cap;
	return 0;
}

void hg_index_objects(struct hg *g)
{
	uint64_t size = 1024;

	while (size < 2ull * g->nobjs + 2048)
		size <<= 1;
	hash_rebuild(g, size);
	g->cap_edges = (size_t)g->nobjs * 3 + 1024;
	g->tgt = big_alloc(g->cap_edges * sizeof(*g->tgt));
	g->nedges = 0;
	g->building = 0;
}

int hg_set_objects(struct hg *g, uint64_t *addr, uint32_t n)
{
	if (hg_alloc_objects(g, n) < 0) {
		free(addr);
		return -1;
	}
	memcpy(g->addr, addr, (size_t)n * sizeof(*addr));
	free(addr);
	hg_index_objects(g);
	return 0;
}

void hg_set_types(struct hg *g, uint64_t *types)
{
	if (!types)
		return;
	memcpy(g->type, types, (size_t)g->nobjs * sizeof(*types));
	free(types);
}

void hg_mark_own(struct hg *g, uint64_t addr)
{
	uint32_t node;

	if (hg_lookup(g, addr, &node) == 0)
		g->flags[node] |= HG_OWN;
}

static inline void push_edge(struct hg *g, uint32_t to)
{
	if (g->nedges == g->cap_edges) {
		/* half again: a doubling would cost a whole copy more at the peak */
		size_t old = g->cap_edges;

		g->cap_edges += g->cap_edges / 2 + 1024;
		if (g->cap_edges > HG_MAX_EDGES)
			g->cap_edges = HG_MAX_EDGES;
		g->tgt = big_realloc(g->tgt, old * sizeof(*g->tgt), g->cap_edges * sizeof(*g->tgt));
	}
	g->tgt[g->nedges++] = to;
	g->indeg[to]++;
}

/*
 * The node at each of n addresses (HG_NONE: none), in three passes so that
 * the memory they need is fetched for a whole batch at once: the table's
 * slots, then the addresses the slots name, then the comparisons.  Most
 * lookups miss the caches twice; one at a time, they would wait in turn.
 */
static void lookup_batch(const struct hg *g, const uint64_t *a, size_t n, uint32_t *out)
{
	uint64_t h[LOOKUP_BATCH];

	for (size_t j = 0; j < n; j++) {
		h[j] = hash_addr(g, a[j]);
		__builtin_prefetch(&g->slot[h[j]]);
	}
	for (size_t j = 0; j < n; j++) {
		out[j] = g->slot[h[j]];
		if (out[j] != HG_NONE)
			__builtin_prefetch(&g->addr[out[j]]);
	}
	for (size_t j = 0; j < n; j++) {
		uint64_t k = h[j];
		uint32_t s = out[j];

		while (s != HG_NONE && g->addr[s] != a[j]) {
			k = (k + 1) & g->mask;
			s = g->slot[k];
		}
		out[j] = s;
	}
}

int hg_add_referents(struct hg *g, const uint64_t *flat, size_t len, uint64_t mark, uint32_t lo,
		     uint32_t hi)
{
	uint32_t cur = g->building, node[LOOKUP_BATCH];
	int own;

	if (lo != cur || hi < lo || hi > g->nobjs)
		return error("the agent's referents of objects %" PRIu32 "..%" PRIu32
			     " come out of order (expected %" PRIu32 ")",
			     lo, hi, cur);
	if (cur == hi)
		return len ? error("the agent's referent list has more objects than it should") : 0;
	own = g->flags[cur] & HG_OWN;
	for (size_t i = 0; i < len; i += LOOKUP_BATCH) {
		size_t k = len - i < LOOKUP_BATCH ? len - i : LOOKUP_BATCH;

		lookup_batch(g, flat + i, k, node);
		for (size_t j = 0; j < k; j++) {
			if (flat[i + j] == mark) {
				if (cur == hi)
					return error(
					    "the agent's referent list has more objects than "
					    "it should");
				g->off[++cur] = (uint32_t)g->nedges;
				if (cur < hi)
					own = g->flags[cur] & HG_OWN;
				continue;
			}
			if (cur == hi)
				return error(
				    "the agent's referent list goes on after its last object");
			if (own || node[j] == HG_NONE)
				continue;
			if (g->nedges >= HG_MAX_EDGES)
				return error("more than %u references in the snapshot",
					     HG_MAX_EDGES);
			push_edge(g, node[j]);
		}
	}
	if (cur != hi)
		return error("the agent's referent list ends after %" PRIu32 " of %" PRIu32
			     " objects",
			     cur - lo, hi - lo);
	g->building = cur;
	return 0;
}

uint32_t hg_add_node(struct hg *g, uint64_t addr, uint64_t type, unsigned flags)
{
	uint32_t id = g->n;

	if (g->building != g->n && !(g->building + 1 == g->n && g->n > g->nobjs))
		BUG("graph node added before the objects' references");
	if (g->n == g->cap)
		grow_nodes(g, g->cap + g->cap / 2 + 16);
	g->addr[id] = addr;
	g->type[id] = type;
	g->flags[id] = (uint8_t)flags;
	g->indeg[id] = 0;
	g->off[id] = (uint32_t)g->nedges;
	g->n++;
	g->building = id;
	if ((uint64_t)g->n * 10 > (g->mask + 1) * 7)
		hash_rebuild(g, (g->mask + 1) * 2);
	else
		hash_insert(g, id);
	return id;
}

void hg_add_edge(struct hg *g, uint32_t from, uint32_t to)
{
	if (from != g->building || from + 1 != g->n || to >= g->n)
		BUG("graph edge %u -> %u out of order", from, to);
	if (g->nedges < HG_MAX_EDGES)
		push_edge(g, to);
}

int hg_finish(struct hg *g)
{
	if (g->n == g->nobjs && g->building != g->nobjs)
		return error("the snapshot has the references of %" PRIu32 " of its %" PRIu32
			     " objects",
			     g->building, g->nobjs);
	g->off[g->n] = (uint32_t)g->nedges;
	g->building = g->n;
	g->parent = big_alloc(((size_t)g->n + 1) * sizeof(*g->parent));
	g->pedge = big_alloc(((size_t)g->n + 1) * sizeof(*g->pedge));
	memset(g->parent, 0xff, ((size_t)g->n + 1) * sizeof(*g->parent));
	memset(g->pedge, 0xff, ((size_t)g->n + 1) * sizeof(*g->pedge));
	return 0;
}

void hg_build_reverse(struct hg *g)
{
	uint32_t *cursor;

	if (g->roff)
		return;
	g->roff = big_alloc(((size_t)g->n + 1) * sizeof(*g->roff));
	g->roff[0] = 0;
	for (uint32_t i = 0; i < g->n; i++)
		g->roff[i + 1] = g->roff[i] + g->indeg[i];
	g->rsrc = big_alloc(g->nedges * sizeof(*g->rsrc));
	cursor = xmalloc(((size_t)g->n + 1) * sizeof(*cursor));
	memcpy(cursor, g->roff, ((size_t)g->n + 1) * sizeof(*cursor));
	/* sources in increasing order: each node's referrers come sorted, repeats together */
	for (uint32_t i = 0; i < g->n; i++)
		for (uint32_t e = g->off[i]; e < g->off[i + 1]; e++)
			g->rsrc[cursor[g->tgt[e]]++] = i;
	free(cursor);
}

/* ----- searching ----- */

size_t hg_search(struct hg *g, const struct hg_root *roots, size_t nroots, const uint32_t *until,
		 size_t nuntil)
{
	uint32_t *queue = big_alloc(((size_t)g->n + 1) * sizeof(*queue));
	size_t head = 0, tail = 0, want = 0;

	for (size_t i = 0; i < nuntil; i++) {
		if (until[i] < g->n && !(g->flags[until[i]] & (HG_REACHED | HG_WANTED))) {
			g->flags[until[i]] |= HG_WANTED;
			want++;
		}
	}
	for (size_t i = 0; i < nroots; i++) {
		uint32_t r = roots[i].node;

		if (r >= g->n || (g->flags[r] & (HG_REACHED | HG_OWN)))
			continue;
		g->flags[r] |= HG_REACHED | HG_ROOT;
		g->parent[r] = HG_NONE;
		g->pedge[r] = roots[i].tag;
		queue[tail++] = r;
		if (g->flags[r] & HG_WANTED) {
			g->flags[r] &= (uint8_t)~HG_WANTED;
			want--;
		}
	}
	while (head < tail && (!nuntil || want)) {
		uint32_t p = queue[head++];

		for (uint32_t e = g->off[p]; e < g->off[p + 1]; e++) {
			uint32_t c = g->tgt[e];

			if (g->flags[c] & HG_REACHED)
				continue;
			g->flags[c] |= HG_REACHED;
			g->parent[c] = p;
			g->pedge[c] = e;
			queue[tail++] = c;
			if (g->flags[c] & HG_WANTED) {
				g->flags[c] &= (uint8_t)~HG_WANTED;
				want--;
			}
		}
	}
	for (size_t i = 0; i < nuntil; i++)
		if (until[i] < g->n)
			g->flags[until[i]] &= (uint8_t)~HG_WANTED;
	free(queue);
	return tail;
}

uint32_t hg_root_tag(const struct hg *g, uint32_t node)
{
	uint32_t steps = 0;

	if (node >= g->n || !(g->flags[node] & HG_REACHED))
		return HG_NONE;
	while (g->parent[node] != HG_NONE && steps++ < CHAIN_MAX)
		node = g->parent[node];
	return (g->flags[node] & HG_ROOT) ? g->pedge[node] : HG_NONE;
}

size_t hg_chain(const struct hg *g, uint32_t node, uint32_t *out, size_t max)
{
	size_t len = 1;
	uint32_t x = node;

	if (node >= g->n || !(g->flags[node] & HG_REACHED))
		return 0;
	while (g->parent[x] != HG_NONE && len < CHAIN_MAX) {
		x = g->parent[x];
		len++;
	}
	x = node;
	for (size_t i = len; i-- > 0;) {
		if (i < max)
			out[i] = x;
		x = g->parent[x];
	}
	return len;
}

uint32_t hg_edge_pos(const struct hg *g, uint32_t c)
{
	uint32_t p = g->parent[c];

	if (p == HG_NONE)
		return HG_NONE;
	return g->pedge[c] - g->off[p];
}

static int in_list(uint64_t v, const uint64_t *list, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (list[i] == v)
			return 1;
	return 0;
}

enum { KIND_OTHER, KIND_SEQ, KIND_MAP };

static int node_kind(const struct hg *g, uint32_t node, const struct hg_shape_types *t)
{
	uint64_t ty = g->type[node];

	if (!ty)
		return KIND_OTHER;
	if (in_list(ty, t->seq, t->nseq))
		return KIND_SEQ;
	if (in_list(ty, t->map, t->nmap))
		return KIND_MAP;
	return KIND_OTHER;
}

static inline uint64_t mix(uint64_t h, uint64_t v)
{
	h ^= v + 0x9e3779b97f4a7c15ull + (h << 6) + (h >> 2);
	return h * 0x100000001b3ull;
}

uint64_t hg_chain_shape(const struct hg *g, uint32_t node, const struct hg_shape_types *t,
			const uint64_t *root_keys, size_t nkeys)
{
	uint32_t buf[64], *ch = buf;
	size_t len = hg_chain(g, node, buf, ARRAY_SIZE(buf));
	uint64_t h = SHAPE_SEED;
	uint32_t tag;
	int kp = KIND_OTHER, kpp = KIND_OTHER;

	if (!len)
		return 0;
	if (len > ARRAY_SIZE(buf)) {
		ch = xmalloc(len * sizeof(*ch));
		hg_chain(g, node, ch, len);
	}
	tag = g->pedge[ch[0]];
	h = mix(h, tag < nkeys ? root_keys[tag] : tag);
	for (size_t i = 1; i < len; i++) {
		uint32_t c = ch[i];
		int significant;

		kpp = i >= 2 ? kp : KIND_OTHER;
		kp = node_kind(g, ch[i - 1], t);
		/* which item of a list, or of a dict held in a container, does not matter;
		 * which attribute of an object, module or class, does */
		if (kp == KIND_SEQ)
			significant = 0;
		else if (kp == KIND_MAP)
			significant = i < 2 || (kpp != KIND_SEQ && kpp != KIND_MAP);
		else
			significant = 1;
		h = mix(h, g->type[c]);
		h = mix(h, significant ? hg_edge_pos(g, c) : SHAPE_ANY);
	}
	if (ch != buf)
		free(ch);
	return h;
}

size_t hg_referrers(struct hg *g, uint32_t node, uint32_t *out, size_t max)
{
	size_t n = 0;

	if (node >= g->n)
		return 0;
	if (g->roff) {
		for (uint32_t e = g->roff[node]; e < g->roff[node + 1]; e++, n++)
			if (n < max)
				out[n] = g->rsrc[e];
		return n;
	}
	for (uint32_t i = 0; i < g->n; i++)
		for (uint32_t e = g->off[i]; e < g->off[i + 1]; e++)
			if (g->tgt[e] == node) {
				if (n < max)
					out[n] = i;
				n++;
			}
	return n;
}

void hg_nodes_push(struct hg_nodes *s, uint32_t node)
{
	if (s->n == s->cap) {
		s->cap = s->cap ? s->cap * 2 : 64;
		s->v = xrealloc(s->v, s->cap * sizeof(*s->v));
	}
	s->v[s->n++] = node;
}

void hg_nodes_release(struct hg_nodes *s)
{
	free(s->v);
	memset(s, 0, sizeof(*s));
}

void hg_unreached_holders(struct hg *g, const uint32_t *seeds, size_t nseeds, size_t max,
			  struct hg_nodes *out)
{
	size_t head = out->n, first = out->n;

	hg_build_reverse(g);
	for (size_t i = 0; i < nseeds && out->n < max; i++) {
		uint32_t s = seeds[i];

		if (s >= g->n || (g->flags[s] & (HG_REACHED | HG_SEEN)))
			continue;
		g->flags[s] |= HG_SEEN;
		hg_nodes_push(out, s);
	}
	while (head < out->n && out->n < max) {
		uint32_t x = out->v[head++];

		for (uint32_t e = g->roff[x]; e < g->roff[x + 1] && out->n < max; e++) {
			uint32_t r = g->rsrc[e];

			if (g->flags[r] & (HG_REACHED | HG_SEEN))
				continue;
			g->flags[r] |= HG_SEEN;
			hg_nodes_push(out, r);
		}
	}
	for (size_t i = first; i < out->n; i++)
		g->flags[out->v[i]] &= (uint8_t)~HG_SEEN;
}

size_t hg_cycle(struct hg *g, uint32_t node, uint32_t *out, size_t max)
{
	uint32_t *from, *queue;
	size_t head = 0, tail = 0, len = 0;
	int found = 0;

	if (node >= g->n || max < 2)
		return 0;
	from = xmalloc(((size_t)g->n + 1) * sizeof(*from));
	queue = xmalloc(((size_t)g->n + 1) * sizeof(*queue));
	memset(from, 0xff, ((size_t)g->n + 1) * sizeof(*from));
	queue[tail++] = node;
	while (head < tail && !found) {
		uint32_t p = queue[head++];

		for (uint32_t e = g->off[p]; e < g->off[p + 1]; e++) {
			uint32_t c = g->tgt[e];

			if (c == node) {
				from[g->n] = p; /* the edge that closes the cycle */
				found = 1;
				break;
			}
			if (from[c] != HG_NONE || (g->flags[c] & HG_REACHED))
				continue;
			from[c] = p;
			queue[tail++] = c;
		}
	}
	if (found) {
		uint32_t x = from[g->n];

		len = 2;
		while (x != node && len < max) {
			len++;
			x = from[x];
		}
		if (x != node) {
			len = 0;
		} else {
			out[0] = out[len - 1] = node;
			x = from[g->n];
			for (size_t i = len - 1; i-- > 1;) {
				out[i] = x;
				x = from[x];
			}
		}
	}
	free(from);
	free(queue);
	return len;
}

/* ----- small graphs ----- */

static uint32_t sub_add(struct hg_sub *sub, uint32_t node, uint32_t depth)
{
	if (sub->n == sub->cap) {
		sub->cap = sub->cap ? sub->cap * 2 : 32;
		sub->node = xrealloc(sub->node, sub->cap * sizeof(*sub->node));
		sub->depth = xrealloc(sub->depth, sub->cap * sizeof(*sub->depth));
	}
	sub->node[sub->n] = node;
	sub->depth[sub->n] = depth;
	return (uint32_t)sub->n++;
}

static void sub_edge(struct hg_sub *sub, uint32_t from, uint32_t to)
{
	if (sub->nedge == sub->capedge) {
		sub->capedge = sub->capedge ? sub->capedge * 2 : 32;
		sub->edge = xrealloc(sub->edge, sub->capedge * sizeof(*sub->edge));
	}
	sub->edge[sub->nedge].from = from;
	sub->edge[sub->nedge].to = to;
	sub->nedge++;
}

static void sub_more(struct hg_sub *sub, uint32_t at, uint32_t count)
{
	if (sub->nmore == sub->capmore) {
		sub->capmore = sub->capmore ? sub->capmore * 2 : 8;
		sub->more = xrealloc(sub->more, sub->capmore * sizeof(*sub->more));
	}
	sub->more[sub->nmore].at = at;
	sub->more[sub->nmore].count = count;
	sub->nmore++;
}

/* Index of node in sub, or HG_NONE: a linear scan, sub graphs are small. */
static uint32_t sub_find(const struct hg_sub *sub, uint32_t node)
{
	for (size_t i = 0; i < sub->n; i++)
		if (sub->node[i] == node)
			return (uint32_t)i;
	return HG_NONE;
}

void hg_backrefs(struct hg *g, uint32_t node, uint32_t depth, uint32_t too_many, struct hg_sub *sub)
{
	memset(sub, 0, sizeof(*sub));
	if (node >= g->n)
		return;
	hg_build_reverse(g);
	sub_add(sub, node, 0);
	for (size_t at = 0; at < sub->n; at++) {
		uint32_t x = sub->node[at], d = sub->depth[at], taken = 0, skipped = 0;
		uint32_t prev = HG_NONE;

		if (d >= depth || (at && (g->flags[x] & HG_ROOT)))
			continue;
		for (uint32_t e = g->roff[x]; e < g->roff[x + 1]; e++) {
			uint32_t r = g->rsrc[e], j;

			if (r == prev) /* a second reference from the same referrer */
				continue;
			prev = r;
			if (taken >= too_many) {
				skipped++;
				continue;
			}
			taken++;
			j = sub_find(sub, r);
			if (j == HG_NONE)
				j = sub_add(sub, r, d + 1);
			sub_edge(sub, j, (uint32_t)at);
		}
		if (skipped)
			sub_more(sub, (uint32_t)at, skipped);
	}
}

void hg_sub_release(struct hg_sub *sub)
{
	free(sub->node);
	free(sub->depth);
	free(sub->edge);
	free(sub->more);
	memset(sub, 0, sizeof(*sub));
}

/* ----- reading the target ----- */

/*
 * Words at scattered addresses, SCATTER_IOVS per system call; a word that
 * cannot be read (a batch fails) is read alone, and is -1 when it still
 * cannot.  process_vm_readv() here rather than in mem.c: these reads bypass
 * the page cache, which a million random objects would only flush.
 */
static void read_scattered(struct task *t, const uint64_t *addrs, size_t n, uint64_t *out)
{
	struct iovec local[SCATTER_IOVS], remote[SCATTER_IOVS];

	for (size_t i = 0; i < n; i += SCATTER_IOVS) {
		size_t k = n - i < SCATTER_IOVS ? n - i : SCATTER_IOVS;
		ssize_t got;

		for (size_t j = 0; j < k; j++) {
			local[j].iov_base = &out[i + j];
			local[j].iov_len = sizeof(uint64_t);
			remote[j].iov_base = (void *)addrs[i + j];
			remote[j].iov_len = sizeof(uint64_t);
		}
		got = process_vm_readv(t->pid, local, k, remote, k, 0);
		if (got == (ssize_t)(k * sizeof(uint64_t)))
			continue;
		for (size_t j = 0; j < k; j++)
			if (mem_read_direct(t, addrs[i + j], &out[i + j], sizeof(uint64_t)) < 0)
				out[i + j] = UINT64_MAX;
	}
}

int hg_read_refcounts(struct pyinterp *pi, const struct hg *g, const uint32_t *nodes, size_t n,
		      int64_t *out)
{
	uint64_t *addrs, *words;

	if (pi->L.object.refcnt < 0)
		return error("no reference count layout for this version");
	addrs = xmalloc((n ? n : 1) * sizeof(*addrs));
	words = xmalloc((n ? n : 1) * sizeof(*words));
	for (size_t i = 0; i < n; i++)
		addrs[i] = g->addr[nodes[i]] + (uint64_t)pi->L.object.refcnt;
	read_scattered(pi->task, addrs, n, words);
	for (size_t i = 0; i < n; i++) {
		int64_t v = (int64_t)words[i];

		/* 3.12+: the low 32 bits count, and immortal objects saturate them */
		out[i] =
		    (v < 0 || v >= REFCNT_IMMORTAL || (g->flags[nodes[i]] & HG_SYNTHETIC)) ? -1 : v;
	}
	free(addrs);
	free(words);
	return 0;
}

/* A list object of the agent's: how many items, and where they are. */
struct agent_list {
	uint64_t addr, items;
	size_t n;
};

static int list_open(struct pyinterp *pi, uint64_t list, struct agent_list *l)
{
	const struct py_layout *L = &pi->L;
	int64_t size;

	memset(l, 0, sizeof(*l));
	l->addr = list;
	if (L->object.size < 0 || L->list.ob_item < 0 ||
	    mem_read(pi->task, list + (uint64_t)L->object.size, &size, sizeof(size)) < 0 ||
	    py_read_ptr(pi, list + (uint64_t)L->list.ob_item, &l->items) < 0)
		return error("cannot read the agent's list at %#" PRIx64, list);
	if (size < 0 || (uint64_t)size > LIST_MAX || (size && !l->items))
		return error("the agent's list at %#" PRIx64 " has %" PRId64 " items", list, size);
	l->n = (size_t)size;
	return 0;
}

/* Its items, straight into out (room for l->n). */
static int list_read(struct pyinterp *pi, const struct agent_list *l, uint64_t *out)
{
	if (l->n && mem_read_direct(pi->task, l->items, out, l->n * sizeof(*out)) < 0)
		return error("cannot read the %zu items of the agent's list at %#" PRIx64, l->n,
			     l->addr);
	return 0;
}

static int call(struct agent *ag, struct agent_args *a, json_t **reply)
{
	int r = agent_call(ag, a, reply);

	agent_args_release(a);
	return r;
}

static uint64_t json_u64(const json_t *obj, const char *key)
{
	return (uint64_t)json_integer_value(json_object_get(obj, key));
}

/* The local-variable slots of a frame, and the tuple naming them. */
static int frame_locals(struct pyinterp *pi, struct hg_frame *f)
{
	const struct py_layout *L = &pi->L;
	uint64_t code, names, type;
	int64_t count;

	f->locals = 0;
	f->nlocals = 0;
	f->names = 0;
	if (L->frames == PY_FRAMES_OBJECT) {
		int32_t nlocals;

		if (L->frame.code < 0 || L->frame.localsplus < 0 || L->code.nlocals < 0 ||
		    L->code.varnames < 0 ||
		    py_read_ptr(pi, f->frame + (uint64_t)L->frame.code, &code) < 0 ||
		    mem_read_i32(pi->task, code + (uint64_t)L->code.nlocals, &nlocals) < 0 ||
		    py_read_ptr(pi, code + (uint64_t)L->code.varnames, &names) < 0)
			return -1;
		count = nlocals;
		f->locals = f->frame + (uint64_t)L->frame.localsplus;
	} else {
		if (L->iframe.code < 0 || L->iframe.localsplus < 0 || L->code.localsplusnames < 0 ||
		    py_read_ptr(pi, f->frame + (uint64_t)L->iframe.code, &code) < 0 ||
		    py_read_ptr(pi, code + (uint64_t)L->code.localsplusnames, &names) < 0 ||
		    mem_read(pi->task, names + (uint64_t)L->object.size, &count, sizeof(count)) < 0)
			return -1;
		f->locals = f->frame + (uint64_t)L->iframe.localsplus;
	}
	/* 3.13 frames may run something other than a code object */
	if (pi->type_code && (py_obj_type(pi, code, &type) < 0 || type != pi->type_code))
		return -1;
	if (count < 0 || count > FRAME_LOCALS_MAX)
		return -1;
	f->nlocals = (uint32_t)count;
	f->names = names;
	return 0;
}

int hg_frame_local_name(struct pyinterp *pi, const struct hg_frame *f, uint32_t index,
			struct strbuf *out)
{
	uint64_t name;
	int64_t size;

	if (!f->names || index >= f->nlocals || pi->L.tuple.ob_item < 0 ||
	    mem_read(pi->task, f->names + (uint64_t)pi->L.object.size, &size, sizeof(size)) < 0 ||
	    size < 0 || index >= (uint64_t)size ||
	    py_read_ptr(pi, f->names + (uint64_t)pi->L.tuple.ob_item + 8ull * index, &name) < 0)
		return -1;
	return py_str(pi, name, 80, out);
}

int hg_frame_local_of(struct pyinterp *pi, const struct hg_frame *f, uint64_t addr, uint32_t *index)
{
	uint64_t *slots;
	int r = -1;

	if (!f->locals || !f->nlocals)
		return -1;
	slots = xmalloc(f->nlocals * sizeof(*slots));
	if (mem_read(pi->task, f->locals, slots, f->nlocals * sizeof(*slots)) == 0) {
		for (uint32_t i = 0; i < f->nlocals; i++) {
			if (slots[i] == addr) {
				*index = i;
				r = 0;
				break;
			}
		}
	}
	free(slots);
	return r;
}

struct pending_frame {
	struct hg_frame f;
	uint64_t *slots; /* 3.11+: the locals, read now, turned into edges at the end */
};

/*
 * The frames of every thread, innermost first.  Up to 3.10 a frame is an
 * object (refs_begin put the running ones in the snapshot); from 3.11 it is
 * memory only, and its references become edges of a node of our own.
 */
static int walk_threads(struct pyinterp *pi, struct hg_snap *s, struct pending_frame **out,
			size_t *nout)
{
	struct pythread *threads;
	size_t nthreads, cap = 0;

	*out = NULL;
	*nout = 0;
	if (py_threads(pi, &threads, &nthreads) < 0)
		return error("cannot read the target's threads for their stacks");
	for (size_t i = 0; i < nthreads; i++) {
		struct pystack st;

		if (py_stack(pi, threads[i].tstate, &st) < 0 && !st.n) {
			pystack_release(&st);
			continue;
		}
		for (size_t j = 0; j < st.n; j++) {
			struct pending_frame *p;

			if (*nout == cap) {
				cap = cap ? cap * 2 : 64;
				*out = xrealloc(*out, cap * sizeof(**out));
			}
			p = &(*out)[(*nout)++];
			memset(p, 0, sizeof(*p));
			p->f.node = HG_NONE;
			p->f.tid = threads[i].tid;
			p->f.thread = threads[i].has_name ? xstrdup(threads[i].name) : NULL;
			p->f.is_main = threads[i].is_main;
			p->f.func = xstrdup(st.v[j].func ? st.v[j].func : "?");
			p->f.file = xstrdup(st.v[j].file ? st.v[j].file : "?");
			p->f.line = st.v[j].line;
			p->f.depth = (int)j;
			p->f.frame = st.v[j].frame;
			if (frame_locals(pi, &p->f) == 0 && pi->L.frames != PY_FRAMES_OBJECT &&
			    p->f.nlocals) {
				p->slots = xmalloc(p->f.nlocals * sizeof(*p->slots));
				if (mem_read(pi->task, p->f.locals, p->slots,
					     p->f.nlocals * sizeof(*p->slots)) < 0) {
					free(p->slots);
					p->slots = NULL;
				}
			}
		}
		pystack_release(&st);
	}
	free(threads);
	(void)s;
	return 0;
}

static void progress_note(struct agent *ag, uint64_t start, uint32_t done, uint32_t n)
{
	uint64_t now = now_us();
	char what[96];

	if (!ag->ij.progress || now - start < 1000000)
		return;
	snprintf(what, sizeof(what), "heap snapshot, %" PRIu32 " of %" PRIu32 " objects", done, n);
	ag->ij.progress(ag->ij.progress_arg, what, (double)(now - start) / 1e6);
}

static int read_edges(struct agent *ag, struct hg_snap *s, uint64_t mark)
{
	struct hg *g = &s->g;
	uint64_t start = now_us(), t_call = 0, t_read = 0, t_parse = 0, t, *flat = NULL;
	size_t cap = 0;
	uint32_t next = 0;
	int ret = -1;

	/* one more call after the last: the agent lets its last lists go */
	for (;;) {
		struct agent_args a;
		json_t *reply, *lists, *l;
		size_t i;
		int done = next >= g->nobjs;

		agent_args_init(&a, "refs_edges");
		agent_arg_int(&a, next);
		agent_arg_int(&a, EDGES_PER_CALL);
		agent_arg_int(&a, OBJECTS_PER_CHUNK);
		t = now_us();
		if (call(ag, &a, &reply) < 0)
			goto out;
		t_call += now_us() - t;
		if (done) {
			json_decref(reply);
			debug("heap snapshot: references: agent calls %.1f ms, reading %.1f ms, "
			      "parsing %.1f ms",
			      (double)t_call / 1e3, (double)t_read / 1e3, (double)t_parse / 1e3);
			ret = 0;
			goto out;
		}
		lists = json_object_get(reply, "lists");
		json_array_foreach (lists, i, l) {
			struct agent_list al;
			int r;

			t = now_us();
			/* one buffer for every list: fresh memory would cost page faults each time
			 */
			if (list_open(ag->pi, (uint64_t)json_integer_value(json_array_get(l, 0)),
				      &al) < 0) {
				json_decref(reply);
				goto out;
			}
			if (al.n > cap) {
				free(flat);
				cap = al.n + al.n / 4;
				flat = big_alloc(cap * sizeof(*flat));
			}
			if (list_read(ag->pi, &al, flat) < 0) {
				json_decref(reply);
				goto out;
			}
			t_read += now_us() - t;
			t = now_us();
			r = hg_add_referents(g, flat, al.n, mark,
					     (uint32_t)json_integer_value(json_array_get(l, 1)),
					     (uint32_t)json_integer_value(json_array_get(l, 2)));
			t_parse += now_us() - t;
			if (r < 0) {
				json_decref(reply);
				goto out;
			}
		}
		next = (uint32_t)json_u64(reply, "next");
		json_decref(reply);
		if (next < g->building) {
			error("the agent went back to object %" PRIu32, next);
			goto out;
		}
		progress_note(ag, start, next, g->nobjs);
	}
out:
	free(flat);
	return ret;
}

static int begin(struct agent *ag, const char *spec, int want_types, struct hg_snap *s)
{
	struct agent_args a;

	agent_args_init(&a, "refs_begin");
	agent_arg_str(&a, spec, strlen(spec));
	agent_arg_int(&a, ag->pi->L.frames == PY_FRAMES_OBJECT);
	agent_arg_int(&a, want_types);
	return call(ag, &a, &s->begin);
}

int hg_take(struct agent *ag, const char *spec, int want_types, struct hg_snap *s)
{
	struct pending_frame *pf = NULL;
	struct agent_list objs, types;
	size_t npf = 0;
	uint64_t mark;
	const json_t *own, *v, *gens;
	size_t i;

	uint64_t t0 = now_us(), t1, t2, t3;

	memset(s, 0, sizeof(*s));
	hg_init(&s->g);
	s->target = HG_NONE;
	if (begin(ag, spec, want_types, s) < 0)
		return -1;
	t1 = now_us();
	if (json_is_true(json_object_get(s->begin, "gone"))) {
		s->gone = 1;
		return 0;
	}
	/* what the agent's lists hold, straight out of memory into the graph */
	if (list_open(ag->pi, json_u64(s->begin, "objs"), &objs) < 0)
		goto fail;
	types.n = objs.n;
	if (json_u64(s->begin, "types") &&
	    list_open(ag->pi, json_u64(s->begin, "types"), &types) < 0)
		goto fail;
	if (objs.n != types.n || objs.n != json_u64(s->begin, "n") || objs.n > HG_MAX_NODES) {
		error("the agent's snapshot lists disagree (%zu objects, %zu types)", objs.n,
		      types.n);
		goto fail;
	}
	if (hg_alloc_objects(&s->g, (uint32_t)objs.n) < 0 ||
	    list_read(ag->pi, &objs, s->g.addr) < 0 ||
	    (json_u64(s->begin, "types") && list_read(ag->pi, &types, s->g.type) < 0))
		goto fail;
	hg_index_objects(&s->g);
	own = json_object_get(s->begin, "own");
	json_array_foreach (own, i, v) {
		hg_mark_own(&s->g, (uint64_t)json_integer_value(v));
	}
	gens = json_object_get(s->begin, "gens");
	if (json_array_size(gens) == 2) {
		s->have_gen = 1;
		s->gen[0] = (uint32_t)json_integer_value(json_array_get(gens, 0));
		s->gen[1] = (uint32_t)json_integer_value(json_array_get(gens, 1));
	}
	/* the stacks now, while they are what the agent saw */
	if (walk_threads(ag->pi, s, &pf, &npf) < 0)
		goto fail;
	mark = json_u64(s->begin, "mark");
	t2 = now_us();
	if (read_edges(ag, s, mark) < 0)
		goto fail;
	t3 = now_us();
	/* frames: an object of the snapshot (up to 3.10), or a node of our own */
	s->frames = xcalloc(npf ? npf : 1, sizeof(*s->frames));
	for (i = 0; i < npf; i++) {
		struct hg_frame *f = &s->frames[s->nframes];
		uint32_t node;

		*f = pf[i].f;
		if (hg_lookup(&s->g, f->frame, &node) == 0 && node < s->g.nobjs) {
			f->node = node;
		} else {
			f->node = hg_add_node(&s->g, f->frame, 0, HG_SYNTHETIC);
			for (uint32_t j = 0; pf[i].slots && j < f->nlocals; j++)
				if (pf[i].slots[j] &&
				    hg_lookup(&s->g, pf[i].slots[j], &node) == 0 &&
				    node < s->g.nobjs)
					hg_add_edge(&s->g, f->node, node);
		}
		free(pf[i].slots);
		s->nframes++;
	}
	free(pf);
	pf = NULL;
	if (hg_finish(&s->g) < 0)
		goto fail;
	debug("heap snapshot: %" PRIu32 " objects, %zu references, %zu frames; agent's objects "
	      "%.1f ms, lists read and stacks %.1f ms, references %.1f ms, the rest %.1f ms",
	      s->g.nobjs, s->g.nedges, s->nframes, (double)(t1 - t0) / 1e3, (double)(t2 - t1) / 1e3,
	      (double)(t3 - t2) / 1e3, (double)(now_us() - t3) / 1e3);
	v = json_object_get(s->begin, "target");
	if (v && hg_lookup(&s->g, json_u64(v, "address"), &s->target) < 0)
		s->target = HG_NONE;
	v = json_object_get(s->begin, "type");
	if (v)
		s->type = json_u64(v, "address");
	return 0;
fail:
	for (i = 0; i < npf; i++) {
		free(pf[i].f.thread);
		free(pf[i].f.func);
		free(pf[i].f.file);
		free(pf[i].slots);
	}
	free(pf);
	hg_snap_drop(ag);
	return -1;
}

int hg_snap_describe(struct agent *ag, const char *req, int release, int repr_limit, json_t **reply)
{
	struct agent_args a;

	agent_args_init(&a, "refs_describe");
	agent_arg_str(&a, req, strlen(req));
	agent_arg_int(&a, release);
	agent_arg_int(&a, repr_limit);
	return call(ag, &a, reply);
}

int hg_snap_drop(struct agent *ag)
{
	struct agent_args a;
	json_t *reply;

	if (!agent_installed(ag))
		return 0;
	agent_args_init(&a, "refs_release");
	if (call(ag, &a, &reply) < 0)
		return -1;
	json_decref(reply);
	return 0;
}

void hg_snap_release(struct hg_snap *s)
{
	hg_release(&s->g);
	json_decref(s->begin);
	for (size_t i = 0; i < s->nframes; i++) {
		free(s->frames[i].thread);
		free(s->frames[i].func);
		free(s->frames[i].file);
	}
	free(s->frames);
	memset(s, 0, sizeof(*s));
}

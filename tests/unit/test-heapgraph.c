// SPDX-License-Identifier: GPL-3.0-or-later
/*
 * test-heapgraph: the reference graph behind refs and graph, on synthetic
 * heaps.
 *
 * Objects are given made-up addresses, and their references come as the
 * agent sends them: each object's referents, then the marker.  Checked:
 * references to what is not in the snapshot are dropped and those of
 * pyleakdb's own objects ignored; lists that do not match their objects are
 * refused; the search gives every node a shortest chain from the nearest
 * root (against a naive search, on random graphs with a fixed seed), in
 * tiers, and stops early once its targets are reached; chains, shapes
 * (same way, other way), referrers, what holds the unreached, cycles,
 * objgraph-style neighbourhoods with "N more", and nodes of our own.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "heapgraph.h"
#include "util.h"

#define MARK	      0x5000u
#define RANDOM_ROUNDS 20

/* Object i lives at ADDR(i): 48 bytes apart, like small objects in an arena. */
#define ADDR(i) (0x7f0000000000ull + (uint64_t)(i)*48)
/* Something that is not in the snapshot (a string, a number). */
#define ATOM(i) (0x5500000000ull + (uint64_t)(i)*32)

/* A graph of n objects from an adjacency list: refs[i] ends with -1. */
static void build(struct hg *g, uint32_t n, const int *const *refs, const uint32_t *own,
		  size_t nown)
{
	uint64_t *addr = xmalloc(n * sizeof(*addr)), *flat;
	size_t len = 0, cap = 16;

	for (uint32_t i = 0; i < n; i++)
		addr[i] = ADDR(i);
	hg_init(g);
	assert_int_equal(hg_set_objects(g, addr, n), 0);
	for (size_t i = 0; i < nown; i++)
		hg_mark_own(g, ADDR(own[i]));
	flat = xmalloc(cap * sizeof(*flat));
	for (uint32_t i = 0; i < n; i++) {
		for (const int *r = refs[i]; r && *r != -1; r++) {
			if (len + 2 > cap)
				flat = xrealloc(flat, (cap *= 2) * sizeof(*flat));
			flat[len++] = *r >= 0 ? ADDR(*r) : ATOM(-*r);
		}
		if (len + 2 > cap)
			flat = xrealloc(flat, (cap *= 2) * sizeof(*flat));
		flat[len++] = MARK;
	}
	assert_int_equal(hg_add_referents(g, flat, len, MARK, 0, n), 0);
	free(flat);
}

static void edges_of(const struct hg *g, uint32_t i, const int *want)
{
	size_t k = 0;

	for (uint32_t e = g->off[i]; e < g->off[i + 1]; e++, k++) {
		assert_int_not_equal(want[k], -1);
		assert_int_equal(g->tgt[e], (uint32_t)want[k]);
	}
	assert_int_equal(want[k], -1);
}

/*
 * 0 module -> 1 module dict -> 2 registry dict -> 3, 4 instances
 * 5 list (a collection) -> 3
 * 6 own (the agent's) -> 3
 * atoms (negative) everywhere, dropped
 */
static const int r0[] = {1, -1}, r1[] = {-2, 2, -3, 5, -1}, r2[] = {-4, 3, -5, 4, -1},
		 r3[] = {-6, -1}, r4[] = {-1}, r5[] = {3, 3, -1}, r6[] = {3, 2, -1};
static const int *const small_refs[] = {r0, r1, r2, r3, r4, r5, r6};
static const uint32_t small_own[] = {6};

static void test_build_edges(void **state)
{
	struct hg g;
	uint32_t node;

	(void)state;
	build(&g, 7, small_refs, small_own, 1);
	assert_int_equal(hg_finish(&g), 0);
	{
		const int e0[] = {1, -1}, e1[] = {2, 5, -1}, e2[] = {3, 4, -1}, none[] = {-1},
			  e5[] = {3, 3, -1};

		edges_of(&g, 0, e0);
		edges_of(&g, 1, e1);
		edges_of(&g, 2, e2);
		edges_of(&g, 3, none);
		edges_of(&g, 4, none);
		edges_of(&g, 5, e5);
		edges_of(&g, 6, none); /* pyleakdb's own refer to nothing */
	}
	assert_int_equal(g.nedges, 7);
	assert_int_equal(g.indeg[3], 3); /* registry once, the list twice; not the agent */
	assert_int_equal(g.indeg[0], 0);
	assert_true(g.flags[6] & HG_OWN);
	assert_int_equal(hg_lookup(&g, ADDR(4), &node), 0);
	assert_int_equal(node, 4);
	assert_int_equal(hg_lookup(&g, ATOM(4), &node), -1);
	hg_release(&g);
}

static void test_chunks_and_errors(void **state)
{
	uint64_t flat[] = {ADDR(1), MARK, ADDR(0), MARK, MARK};
	struct hg g;
	uint64_t *addr;

	(void)state;
	/* three objects in two lists, in order */
	addr = xmalloc(3 * sizeof(*addr));
	for (int i = 0; i < 3; i++)
		addr[i] = ADDR(i);
	hg_init(&g);
	assert_int_equal(hg_set_objects(&g, addr, 3), 0);
	error_quiet(1);
	assert_int_equal(hg_add_referents(&g, flat, 2, MARK, 1, 2), -1); /* out of order */
	assert_int_equal(hg_add_referents(&g, flat, 2, MARK, 0, 1), 0);
	assert_int_equal(hg_add_referents(&g, flat + 2, 3, MARK, 1, 3), 0);
	assert_int_equal(hg_finish(&g), 0);
	assert_int_equal(g.nedges, 2);
	hg_release(&g);

	/* a list with an object too many, then one too few */
	addr = xmalloc(2 * sizeof(*addr));
	addr[0] = ADDR(0);
	addr[1] = ADDR(1);
	hg_init(&g);
	assert_int_equal(hg_set_objects(&g, addr, 2), 0);
	assert_int_equal(hg_add_referents(&g, flat, 5, MARK, 0, 2), -1);
	hg_release(&g);
	addr = xmalloc(2 * sizeof(*addr));
	addr[0] = ADDR(0);
	addr[1] = ADDR(1);
	hg_init(&g);
	assert_int_equal(hg_set_objects(&g, addr, 2), 0);
	assert_int_equal(hg_add_referents(&g, flat, 2, MARK, 0, 2), -1);
	assert_int_equal(hg_finish(&g), -1); /* the second object's references never came */
	hg_release(&g);
	/* referents after the last object */
	{
		uint64_t tail[] = {MARK, ADDR(0)};

		addr = xmalloc(sizeof(*addr));
		addr[0] = ADDR(0);
		hg_init(&g);
		assert_int_equal(hg_set_objects(&g, addr, 1), 0);
		assert_int_equal(hg_add_referents(&g, tail, 2, MARK, 0, 1), -1);
		hg_release(&g);
	}
	error_quiet(0);
}

static void test_search_chain_shape(void **state)
{
	struct hg g;
	struct hg_root roots[] = {{0, 7}};
	uint32_t ch[8];
	uint64_t keys[8] = {0};
	uint64_t seq[] = {0x1000}, map[] = {0x2000};
	struct hg_shape_types t = {seq, 1, map, 1};
	uint64_t *types = xcalloc(7, sizeof(*types));

	(void)state;
	build(&g, 7, small_refs, small_own, 1);
	/* 0 module, 1 and 2 dicts, 3 and 4 instances, 5 a list, 6 own */
	types[0] = 0x3000;
	types[1] = types[2] = 0x2000;
	types[3] = types[4] = 0x4000;
	types[5] = 0x1000;
	types[6] = 0x1000;
	hg_set_types(&g, types);
	assert_int_equal(hg_finish(&g), 0);
	keys[7] = 0xabc;
	assert_int_equal(hg_search(&g, roots, 1, NULL, 0), 6);
	assert_int_equal(hg_chain(&g, 3, ch, 8), 4);
	assert_int_equal(ch[0], 0);
	assert_int_equal(ch[1], 1);
	assert_int_equal(ch[2], 2);
	assert_int_equal(ch[3], 3);
	assert_int_equal(hg_root_tag(&g, 4), 7);
	assert_int_equal(hg_root_tag(&g, 6), HG_NONE); /* the agent's: no chain */
	assert_int_equal(hg_chain(&g, 6, ch, 8), 0);
	/* only the length when there is no room */
	assert_int_equal(hg_chain(&g, 3, ch, 2), 4);
	assert_int_equal(hg_edge_pos(&g, 4), 1);
	assert_int_equal(hg_edge_pos(&g, 5), 1);
	/* 3 and 4: any key of a dict held in a namespace dict: held the same way */
	assert_true(hg_chain_shape(&g, 3, &t, keys, 8) == hg_chain_shape(&g, 4, &t, keys, 8));
	/* 2 and 5: different attributes of the module's namespace */
	assert_true(hg_chain_shape(&g, 2, &t, keys, 8) != hg_chain_shape(&g, 5, &t, keys, 8));
	assert_true(hg_chain_shape(&g, 6, &t, keys, 8) == 0);
	hg_release(&g);
}

/* A shortest-distance search done the slow way, for comparison. */
static void naive_dist(uint32_t n, uint8_t *adj, const uint32_t *roots, size_t nroots, int *dist)
{
	int changed = 1;

	for (uint32_t i = 0; i < n; i++)
		dist[i] = -1;
	for (size_t i = 0; i < nroots; i++)
		dist[roots[i]] = 0;
	while (changed) {
		changed = 0;
		for (uint32_t p = 0; p < n; p++) {
			if (dist[p] < 0)
				continue;
			for (uint32_t c = 0; c < n; c++)
				if (adj[p * n + c] && (dist[c] < 0 || dist[c] > dist[p] + 1)) {
					dist[c] = dist[p] + 1;
					changed = 1;
				}
		}
	}
}

static void test_search_random(void **state)
{
	(void)state;
	srand(4242);
	for (int round = 0; round < RANDOM_ROUNDS; round++) {
		uint32_t n = 50 + (uint32_t)(rand() % 150), nroots = 1 + (uint32_t)(rand() % 4);
		uint8_t *adj = xcalloc((size_t)n * n, 1);
		int *dist = xmalloc(n * sizeof(*dist));
		uint64_t *addr = xmalloc(n * sizeof(*addr)),
			 *flat = xmalloc(((size_t)n * 8 + n) * 8);
		uint32_t rootv[4];
		struct hg_root roots[4];
		uint32_t ch[256];
		size_t len = 0;
		struct hg g;

		for (uint32_t i = 0; i < n; i++) {
			int k = rand() % 4;

			addr[i] = ADDR(i * 7 % n + n * 3) ^ ((uint64_t)i << 33);
			for (int j = 0; j < k; j++) {
				uint32_t c = (uint32_t)rand() % n;

				adj[i * n + c] = 1;
				flat[len++] = ADDR(c * 7 % n + n * 3) ^ ((uint64_t)c << 33);
				if (rand() % 3 == 0)
					flat[len++] = ATOM(rand() % 100);
			}
			flat[len++] = MARK;
		}
		hg_init(&g);
		assert_int_equal(hg_set_objects(&g, addr, n), 0);
		assert_int_equal(hg_add_referents(&g, flat, len, MARK, 0, n), 0);
		assert_int_equal(hg_finish(&g), 0);
		for (uint32_t i = 0; i < nroots; i++) {
			rootv[i] = (uint32_t)rand() % n;
			roots[i].node = rootv[i];
			roots[i].tag = i;
		}
		naive_dist(n, adj, rootv, nroots, dist);
		hg_search(&g, roots, nroots, NULL, 0);
		for (uint32_t i = 0; i < n; i++) {
			size_t clen = hg_chain(&g, i, ch, 256);

			if (dist[i] < 0) {
				assert_int_equal(clen, 0);
				continue;
			}
			/* shortest, and every hop an edge of the graph */
			assert_int_equal(clen, (size_t)dist[i] + 1);
			assert_int_equal(ch[clen - 1], i);
			for (size_t h = 1; h < clen; h++)
				assert_true(adj[ch[h - 1] * n + ch[h]]);
			assert_true(hg_root_tag(&g, i) < nroots);
			assert_int_equal(rootv[hg_root_tag(&g, i)], ch[0]);
		}
		/* the reverse edges are the same edges */
		hg_build_reverse(&g);
		for (uint32_t c = 0; c < n; c++) {
			uint32_t from[256];
			size_t k = hg_referrers(&g, c, from, 256), want = 0;

			for (uint32_t p = 0; p < n; p++)
				for (uint32_t e = g.off[p]; e < g.off[p + 1]; e++)
					want += g.tgt[e] == c;
			assert_int_equal(k, want);
			for (size_t j = 0; j < k && j < 256; j++)
				assert_true(adj[from[j] * n + c]);
		}
		hg_release(&g);
		free(flat);
		free(adj);
		free(dist);
	}
}

/* 0 root -> 1 -> 2 -> target 3; the search stops once 3 is reached. */
static void test_search_until_and_tiers(void **state)
{
	static const int a0[] = {1, 4, -1}, a1[] = {2, -1}, a2[] = {3, -1}, a3[] = {-1},
			 a4[] = {5, -1}, a5[] = {6, -1}, a6[] = {-1}, a7[] = {8, -1},
			 a8[] = {7, 9, -1}, a9[] = {-1};
	static const int *const refs[] = {a0, a1, a2, a3, a4, a5, a6, a7, a8, a9};
	struct hg_root tier0[] = {{0, 0}}, tier1[] = {{8, 1}};
	uint32_t want = 2, ch[8];
	struct hg g;

	(void)state;
	build(&g, 10, refs, NULL, 0);
	assert_int_equal(hg_finish(&g), 0);
	/* early: 2 is found before 5 and 6 are */
	assert_true(hg_search(&g, tier0, 1, &want, 1) < 7);
	assert_true(g.flags[2] & HG_REACHED);
	hg_release(&g);

	build(&g, 10, refs, NULL, 0);
	assert_int_equal(hg_finish(&g), 0);
	assert_int_equal(hg_search(&g, tier0, 1, NULL, 0), 7);
	/* 7, 8, 9 form a cycle with a tail: nothing reached them */
	assert_false(g.flags[9] & HG_REACHED);
	assert_int_equal(hg_search(&g, tier1, 1, NULL, 0), 3);
	assert_int_equal(hg_root_tag(&g, 9), 1);
	assert_int_equal(hg_root_tag(&g, 3), 0);
	assert_int_equal(hg_chain(&g, 7, ch, 8), 2);
	assert_int_equal(ch[0], 8);
	/* a root a search already reached is no root of a later one */
	assert_int_equal(hg_search(&g, tier0, 1, NULL, 0), 0);
	hg_release(&g);
}

static void test_unreached_and_cycles(void **state)
{
	/* 0 root -> 1; 2 <-> 3 (garbage), 4 -> 2 (4 held from outside: native), 5 -> 5 */
	static const int a0[] = {1, -1}, a1[] = {-1}, a2[] = {3, -1}, a3[] = {2, -1},
			 a4[] = {2, -1}, a5[] = {5, -1};
	static const int *const refs[] = {a0, a1, a2, a3, a4, a5};
	struct hg_root roots[] = {{0, 0}};
	struct hg_nodes held = {0};
	uint32_t seed = 3, ch[8];
	struct hg g;
	int seen[6] = {0};

	(void)state;
	build(&g, 6, refs, NULL, 0);
	assert_int_equal(hg_finish(&g), 0);
	hg_search(&g, roots, 1, NULL, 0);
	hg_unreached_holders(&g, &seed, 1, 100, &held);
	for (size_t i = 0; i < held.n; i++)
		seen[held.v[i]]++;
	assert_int_equal(held.n, 3);
	assert_int_equal(seen[2] + seen[3] + seen[4], 3);
	hg_nodes_release(&held);
	/* the bound holds */
	hg_unreached_holders(&g, &seed, 1, 2, &held);
	assert_int_equal(held.n, 2);
	hg_nodes_release(&held);
	/* cycles through the unreached */
	assert_int_equal(hg_cycle(&g, 2, ch, 8), 3);
	assert_int_equal(ch[0], 2);
	assert_int_equal(ch[1], 3);
	assert_int_equal(ch[2], 2);
	assert_int_equal(hg_cycle(&g, 5, ch, 8), 2);
	assert_int_equal(hg_cycle(&g, 4, ch, 8), 0);
	assert_int_equal(hg_cycle(&g, 1, ch, 8), 0);
	hg_release(&g);
}

static void test_backrefs(void **state)
{
	/* 0..11 each refer to 12 (twice for 0); 13 refers to 0; 13 is a root */
	static const int many[] = {12, 12, -1}, one[] = {12, -1}, top[] = {0, -1}, none[] = {-1};
	static const int *const refs[] = {many, one, one, one, one, one,  one,
					  one,	one, one, one, one, none, top};
	struct hg_root roots[] = {{13, 0}};
	struct hg_sub sub;
	struct hg g;
	int more = 0;

	(void)state;
	build(&g, 14, refs, NULL, 0);
	assert_int_equal(hg_finish(&g), 0);
	hg_search(&g, roots, 1, NULL, 0);
	hg_backrefs(&g, 12, 3, 5, &sub);
	assert_int_equal(sub.node[0], 12);
	/* five referrers (0 once, though it refers twice), seven more, then 0's referrer */
	assert_int_equal(sub.n, 7);
	assert_int_equal(sub.nmore, 1);
	assert_int_equal(sub.more[0].at, 0);
	assert_int_equal(sub.more[0].count, 7);
	for (size_t i = 0; i < sub.nedge; i++) {
		assert_int_equal(sub.edge[i].to == 0 ? 1 : 0, sub.node[sub.edge[i].from] != 13);
		more += sub.node[sub.edge[i].from] == 13;
	}
	assert_int_equal(more, 1);
	assert_int_equal(sub.nedge, 6);
	hg_sub_release(&sub);
	/* depth 1: the referrers only */
	hg_backrefs(&g, 12, 1, 100, &sub);
	assert_int_equal(sub.n, 13);
	assert_int_equal(sub.nmore, 0);
	hg_sub_release(&sub);
	hg_release(&g);
}

static void test_nodes_of_our_own(void **state)
{
	static const int a0[] = {-1}, a1[] = {-1};
	static const int *const refs[] = {a0, a1};
	struct hg_root roots[1];
	uint32_t ch[4], node;
	struct hg g;

	(void)state;
	build(&g, 2, refs, NULL, 0);
	/* a thousand and more frames: the hash grows under them */
	for (uint32_t i = 0; i < 3000; i++) {
		uint32_t f = hg_add_node(&g, 0x10000000ull + i * 64, 0, HG_SYNTHETIC);

		assert_int_equal(f, 2 + i);
		if (i == 2999)
			hg_add_edge(&g, f, 1);
	}
	assert_int_equal(hg_finish(&g), 0);
	assert_int_equal(hg_lookup(&g, 0x10000000ull + 1234 * 64, &node), 0);
	assert_int_equal(node, 2 + 1234);
	assert_int_equal(hg_lookup(&g, ADDR(1), &node), 0);
	assert_int_equal(node, 1);
	assert_int_equal(g.indeg[1], 1);
	roots[0].node = 3001;
	roots[0].tag = 5;
	hg_search(&g, roots, 1, NULL, 0);
	assert_int_equal(hg_chain(&g, 1, ch, 4), 2);
	assert_int_equal(ch[0], 3001);
	assert_int_equal(hg_root_tag(&g, 1), 5);
	hg_release(&g);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_build_edges),
	    cmocka_unit_test(test_chunks_and_errors),
	    cmocka_unit_test(test_search_chain_shape),
	    cmocka_unit_test(test_search_random),
	    cmocka_unit_test(test_search_until_and_tiers),
	    cmocka_unit_test(test_unreached_and_cycles),
	    cmocka_unit_test(test_backrefs),
	    cmocka_unit_test(test_nodes_of_our_own),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

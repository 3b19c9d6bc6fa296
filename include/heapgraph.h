/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * heapgraph: a snapshot of the target's reference graph, and the searches
 * `refs` and `graph` make in it.
 *
 * A node is an object of the snapshot, numbered as in the agent's list of
 * them (refs_begin in src/agent/refs.py), or a node pyleakdb adds itself: a
 * running frame of 3.11+, whose references the collector cannot see, read
 * out of the frame's memory.  An edge p -> c says p holds a reference to c,
 * once per reference, as gc.get_referents(p) reports them.  References to
 * objects outside the snapshot (strings, numbers: what the collector does
 * not track) are left out: no chain goes through them.
 *
 * The search is breadth first, from every root at once, so one pass over
 * the graph gives every node its shortest chain from the nearest root
 * (O(nodes + edges)); a chain is then a walk up the parents.  Roots are
 * searched in tiers (modules and thread stacks first, then what only native
 * code holds), each tier over what the previous ones left.
 *
 * Memory: nodes cost about 36 bytes (address, type, flags, offsets, in-degree,
 * the address hash, parents), edges 4 bytes, and 4 more each once the
 * reverse index is built: a million objects with three million references
 * take about 60 MB.  Node numbers are 32 bits.
 *
 * Building and searching (hg_*) touch no target; hg_take() and the readers
 * below it fill a graph from a live target through the agent.
 */
#ifndef PYLEAKDB_HEAPGRAPH_H
#define PYLEAKDB_HEAPGRAPH_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "agent.h"
#include "pyinterp.h"

#define HG_NONE UINT32_MAX
/* The most nodes and edges a graph holds (node numbers and offsets are 32 bits). */
#define HG_MAX_NODES (UINT32_MAX - 1)
#define HG_MAX_EDGES (UINT32_MAX - 1)

enum hg_flag {
	HG_OWN = 1 << 0,       /* pyleakdb's own object: no references out, never a root */
	HG_SYNTHETIC = 1 << 1, /* not an object: a running frame read out of memory */
	HG_REACHED = 1 << 2,   /* a search reached it (it has a chain) */
	HG_ROOT = 1 << 3,      /* a search started from it (pedge holds its root's tag) */
};

struct hg {
	uint32_t n;	/* nodes */
	uint32_t nobjs; /* of which the snapshot's objects: 0 .. nobjs-1 */
	uint32_t cap;
	uint64_t *addr; /* each node's address */
	uint64_t *type; /* each node's type's address, 0 when unknown */
	uint8_t *flags;
	uint32_t *indeg; /* references to the node from the graph's other nodes */
	/* forward edges (CSR): node i refers to tgt[off[i] .. off[i + 1]) */
	uint32_t *off;
	uint32_t *tgt;
	size_t nedges, cap_edges;
	uint32_t building; /* the node whose edges come next */
	/* reverse edges (CSR), once hg_build_reverse() ran: rsrc[roff[i] .. roff[i + 1]) */
	uint32_t *roff;
	uint32_t *rsrc;
	/* address -> node, open addressing on node numbers */
	uint32_t *slot;
	uint64_t mask;
	unsigned shift; /* 64 - log2(slots) */
	/* search results: the node a chain reaches i from, and the edge (index into tgt);
	 * for a root, pedge is the tag its search was given */
	uint32_t *parent;
	uint32_t *pedge;
};

void hg_init(struct hg *g);
void hg_release(struct hg *g);

/* ----- building ----- */

/* The snapshot's objects, by address, in the agent's order: g takes addr (malloc'ed). */
int hg_set_objects(struct hg *g, uint64_t *addr, uint32_t n);
/* The same in two steps, without a copy: room for n objects (fill g->addr, and g->type
 * if known), then the address index over them. */
int hg_alloc_objects(struct hg *g, uint32_t n);
void hg_index_objects(struct hg *g);
/* Each object's type's address, same order: g takes types (malloc'ed), or NULL. */
void hg_set_types(struct hg *g, uint64_t *types);
/* The node at an address: 0 and *node, or -1 when none. */
int hg_lookup(const struct hg *g, uint64_t addr, uint32_t *node);
/* Mark the object at addr as pyleakdb's own (before its edges are added). */
void hg_mark_own(struct hg *g, uint64_t addr);

/*
 * The referents of objects lo .. hi-1, as one of the agent's lists: each
 * object's referents, then `mark`.  Lists come in node order.  -1 (with an
 * error) when the list does not match the objects.
 */
int hg_add_referents(struct hg *g, const uint64_t *flat, size_t len, uint64_t mark, uint32_t lo,
		     uint32_t hi);
/* After every object's edges: a node of our own (flags HG_SYNTHETIC...), then its edges. */
uint32_t hg_add_node(struct hg *g, uint64_t addr, uint64_t type, unsigned flags);
void hg_add_edge(struct hg *g, uint32_t from, uint32_t to);
/* Every edge is in: the last check, and the arrays shrink to size. */
int hg_finish(struct hg *g);
/* The reverse edges (referrers), built once, on demand. */
void hg_build_reverse(struct hg *g);

/* ----- searching ----- */

struct hg_root {
	uint32_t node;
	uint32_t tag; /* the caller's: which module, frame, ... */
};

/*
 * Breadth-first search from roots (in this order of preference) over the
 * nodes no earlier search reached; every node reached gets a parent.  Stops
 * early once each node of until[] is reached (nuntil 0: never).  Returns how
 * many nodes it reached.
 */
size_t hg_search(struct hg *g, const struct hg_root *roots, size_t nroots, const uint32_t *until,
		 size_t nuntil);
/* The tag of the root the chain to node starts at; HG_NONE when unreached. */
uint32_t hg_root_tag(const struct hg *g, uint32_t node);
/*
 * The chain to node: out[0] is the root, out[len-1] the node.  Returns its
 * length (0 when unreached); only the first max are written.
 */
size_t hg_chain(const struct hg *g, uint32_t node, uint32_t *out, size_t max);
/* The position of edge p -> c among p's references (its chain edge), for shapes. */
uint32_t hg_edge_pos(const struct hg *g, uint32_t c);

/* What the caller knows of types, to tell how a chain holds an object. */
struct hg_shape_types {
	const uint64_t *seq; /* list, tuple, set...: which item does not matter */
	size_t nseq;
	const uint64_t *map; /* dict types: which key matters for a namespace only */
	size_t nmap;
};

/*
 * The shape of node's chain: equal for two nodes held the same way (the same
 * root key, the same types along the chain, the same attributes, any item of
 * the same container).  root_keys[tag] stands for each root.
 */
uint64_t hg_chain_shape(const struct hg *g, uint32_t node, const struct hg_shape_types *t,
			const uint64_t *root_keys, size_t nkeys);

/* The referrers of node (once per reference), up to max: how many there are in all. */
size_t hg_referrers(struct hg *g, uint32_t node, uint32_t *out, size_t max);

/* A growable array of node numbers. */
struct hg_nodes {
	uint32_t *v;
	size_t n, cap;
};
void hg_nodes_push(struct hg_nodes *s, uint32_t node);
void hg_nodes_release(struct hg_nodes *s);

/*
 * The nodes no search reached that hold seeds (and seeds themselves),
 * following referrers, at most max of them: what decides whether they are
 * garbage or held from native code.  Builds the reverse edges.
 */
void hg_unreached_holders(struct hg *g, const uint32_t *seeds, size_t nseeds, size_t max,
			  struct hg_nodes *out);

/*
 * A shortest cycle through node among the nodes no search reached: out[0]
 * and out[len-1] are node.  Returns its length (0: none within max).
 */
size_t hg_cycle(struct hg *g, uint32_t node, uint32_t *out, size_t max);

/* A small graph around one node, objgraph's show_backrefs and show_refs way. */
struct hg_sub_edge {
	uint32_t from, to; /* indices into node[]: from refers to to */
};
struct hg_sub_more {
	uint32_t at;	/* index into node[] */
	uint32_t count; /* references past too_many */
};
struct hg_sub {
	uint32_t *node; /* node[0]: where it starts */
	uint32_t *depth;
	size_t n, cap;
	struct hg_sub_edge *edge;
	size_t nedge, capedge;
	struct hg_sub_more *more;
	size_t nmore, capmore;
};
/*
 * The referrers of node, depth levels deep, at most too_many for each node
 * (the rest counted in more[]); roots are not expanded.  Builds the
 * reverse edges.
 */
void hg_backrefs(struct hg *g, uint32_t node, uint32_t depth, uint32_t too_many,
		 struct hg_sub *sub);
void hg_sub_release(struct hg_sub *sub);

/* ----- taking a snapshot of a live target ----- */

/* A running frame on a thread's stack: a root. */
struct hg_frame {
	uint32_t node;
	pid_t tid;
	char *thread; /* the threading module's name, or NULL; raw bytes */
	int is_main;
	char *func, *file; /* raw bytes */
	int line;
	int depth;	 /* 0: the innermost frame of its thread */
	uint64_t frame;	 /* PyFrameObject (3.6 - 3.10) or _PyInterpreterFrame (3.11+) */
	uint64_t locals; /* its local variables' slots, and their names (a tuple) */
	uint32_t nlocals;
	uint64_t names;
};

struct hg_snap {
	struct hg g;
	json_t *begin; /* the agent's reply to refs_begin */
	struct hg_frame *frames;
	size_t nframes;
	uint32_t target; /* the node of "$N" or "0xADDR", HG_NONE otherwise */
	uint64_t type;	 /* the type of a TYPE spec, 0 otherwise */
	uint32_t gen[2]; /* where generations 1 and 2 begin among the objects */
	int have_gen;
	int gone; /* the handle's object is gone: begin says which */
};

/*
 * Take a snapshot for spec ("$N", "0xADDR", a type name, or "" for none):
 * the objects, their references, the thread stacks, and with want_types (or
 * a type name) every object's type.  The agent
 * still holds every object afterwards (nothing can die or move), and only
 * that: one reference each.  Give it up with hg_snap_describe(..., release
 * 1) or hg_snap_drop().  -1 with an error.
 */
int hg_take(struct agent *ag, const char *spec, int want_types, struct hg_snap *s);
/*
 * Ask the agent about nodes (refs_describe): req is its request text; *reply
 * is its JSON.  release: the snapshot is dropped after.
 */
int hg_snap_describe(struct agent *ag, const char *req, int release, int repr_limit,
		     json_t **reply);
/* Drop the agent's side of the snapshot (safe to call twice). */
int hg_snap_drop(struct agent *ag);
void hg_snap_release(struct hg_snap *s);

/*
 * Reference counts of nodes, read out of memory (ob_refcnt): out[i] for
 * nodes[i], -1 when it cannot be read or is immortal (3.12+).
 */
int hg_read_refcounts(struct pyinterp *pi, const struct hg *g, const uint32_t *nodes, size_t n,
		      int64_t *out);
/* The name of local variable slot `index` of a frame root, as UTF-8 (out), 0 found. */
int hg_frame_local_name(struct pyinterp *pi, const struct hg_frame *f, uint32_t index,
			struct strbuf *out);
/* Which local slot of frame f holds addr: 0 and *index, or -1. */
int hg_frame_local_of(struct pyinterp *pi, const struct hg_frame *f, uint64_t addr,
		      uint32_t *index);

#endif

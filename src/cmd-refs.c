// SPDX-License-Identifier: GPL-3.0-or-later
/*
 * cmd-refs: why is it still alive.  sample, show, refs and graph: handles
 * ($N) on objects of the target, the shortest chains of references from a
 * root to an object, and Graphviz pictures of what refers to it.
 *
 * Their JSON results are described in doc/json.md.
 */
#include <errno.h>
#include <inttypes.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cmd.h"
#include "heapgraph.h"

#define SAMPLE_DEFAULT 5
#define SAMPLE_MAX     10000
#define REPR_LIMIT     200
#define SHOW_REFERENTS 30
#define RETAINED_LIMIT 20000
/* refs: groups shown without and with --all; referrers considered by refs $N --all */
#define GROUPS_SHOWN	 3
#define GROUPS_SHOWN_ALL 50
#define REFERRERS_MAX	 100000
/* what decides between garbage and native for unreached objects, at most */
#define HOLDERS_MAX	       (4u << 20)
#define DEPTH_MAX	       1000
#define GRAPH_DEPTH_DEFAULT    3
#define GRAPH_TOO_MANY_DEFAULT 10
#define GRAPH_NODES_MAX	       5000
/* the describe request goes into the target as an escaped bytes literal (4 bytes a byte) */
#define DESCRIBE_MAX (200 * 1024)

extern char **environ;

static void progress(void *arg, const char *what, double seconds)
{
	(void)arg;
	out_progress(what, seconds);
}

static int refs_agent(struct cmd_ctx *ctx, struct agent **ag)
{
	if (session_agent(ctx->s, ag) < 0)
		return -1;
	(*ag)->ij.progress = progress;
	return 0;
}

static int parse_number(const struct cmd *c, const char *what, const char *s, uint64_t max,
			uint64_t *out)
{
	if (!s)
		return cmd_usage_error(c, "%s needs a number", what);
	if (parse_u64(s, out) < 0 || *out == 0 || *out > max)
		return cmd_usage_error(c, "%s takes 1 to %" PRIu64 ", not \"%s\"", what, max,
				       esc(s));
	return 0;
}

/* "--name VALUE" or "--name=VALUE": the value, or NULL when argv[i] is not --name. */
static const char *opt_value(const char *name, int argc, char **argv, int *i, int *missing)
{
	size_t n = strlen(name);

	*missing = 0;
	if (strncmp(argv[*i], name, n))
		return NULL;
	if (argv[*i][n] == '=')
		return argv[*i] + n + 1;
	if (argv[*i][n])
		return NULL;
	if (*i + 1 >= argc) {
		*missing = 1;
		return NULL;
	}
	return argv[++*i];
}

/* Run an agent function; its reply becomes the command's result. */
static int agent_result(struct cmd_ctx *ctx, struct agent_args *a)
{
	struct agent *ag;
	json_t *reply;

	if (refs_agent(ctx, &ag) < 0) {
		agent_args_release(a);
		return -1;
	}
	if (agent_call(ag, a, &reply) < 0) {
		agent_args_release(a);
		return -1;
	}
	agent_args_release(a);
	json_object_update(out_result(), reply);
	json_decref(reply);
	return 0;
}

static void render_node_line(const json_t *n, const char *indent)
{
	struct strbuf sz = STRBUF_INIT;
	char handle[24] = "";

	if (json_object_get(n, "handle"))
		snprintf(handle, sizeof(handle), "$%lld", json_int_member(n, "handle", 0));
	sb_add_bytes(&sz, (uint64_t)json_int_member(n, "size", 0));
	out_printf("%s%-5s %#llx %9s  %s\n", indent, handle, json_int_member(n, "address", 0),
		   sb_str(&sz), esc_member(n, "repr"));
	sb_release(&sz);
}

static int render_gone(const json_t *r)
{
	if (!json_is_true(json_object_get(r, "gone")))
		return 0;
	out_printf("$%lld: the %s at %#llx is gone\n", json_int_member(r, "handle", 0),
		   esc_member(r, "type"), json_int_member(r, "address", 0));
	return 1;
}

/* ----- sample ----- */

static int cmd_sample(struct cmd_ctx *ctx, int argc, char **argv)
{
	struct agent_args a;
	uint64_t n = SAMPLE_DEFAULT;

	if (argc > 1 && parse_number(ctx->cmd, "N", argv[1], SAMPLE_MAX, &n) < 0)
		return -1;
	agent_args_init(&a, "sample");
	agent_arg_str(&a, argv[0], strlen(argv[0]));
	agent_arg_int(&a, (long long)n);
	agent_arg_int(&a, REPR_LIMIT);
	return agent_result(ctx, &a);
}

static void render_sample(const json_t *r)
{
	const json_t *s;
	size_t i;

	out_printf("%lld %s alive (%s):\n", json_int_member(r, "count", 0), esc_member(r, "type"),
		   esc_member(r, "order"));
	json_array_foreach (json_object_get(r, "samples"), i, s) {
		render_node_line(s, "  ");
	}
}

/* ----- show ----- */

static int cmd_show(struct cmd_ctx *ctx, int argc, char **argv)
{
	struct agent_args a;

	(void)argc;
	agent_args_init(&a, "show");
	agent_arg_str(&a, argv[0], strlen(argv[0]));
	agent_arg_int(&a, SHOW_REFERENTS);
	agent_arg_int(&a, REPR_LIMIT);
	agent_arg_int(&a, RETAINED_LIMIT);
	return agent_result(ctx, &a);
}

static void render_show(const json_t *r)
{
	const json_t *refs = json_object_get(r, "referents"), *kept, *x;
	struct strbuf sb = STRBUF_INIT;
	size_t i;
	int w = 10;

	if (render_gone(r))
		return;
	out_printf("$%lld %s @%#llx\n", json_int_member(r, "handle", 0), esc_member(r, "type"),
		   json_int_member(r, "address", 0));
	out_printf("  type         %s\n", esc_member(r, "type"));
	out_printf("  id           %#llx (%lld)\n", json_int_member(r, "address", 0),
		   json_int_member(r, "address", 0));
	sb_add_bytes(&sb, (uint64_t)json_int_member(r, "size", 0));
	out_printf("  size         %s (shallow)\n", sb_str(&sb));
	if (json_is_integer(json_object_get(r, "refcount")))
		out_printf("  refcount     %lld\n", json_int_member(r, "refcount", 0));
	else
		out_printf("  refcount     immortal\n");
	kept = json_object_get(r, "keeps_alive");
	if (kept) {
		sb_reset(&sb);
		sb_add_bytes(&sb, (uint64_t)json_int_member(kept, "size", 0));
		out_printf(
		    "  keeps alive  %s in %lld object%s (itself included; what only it holds)\n",
		    sb_str(&sb), json_int_member(kept, "objects", 0),
		    json_int_member(kept, "objects", 0) == 1 ? "" : "s");
	} else {
		out_printf("  keeps alive  (not computed: too much to look at)\n");
	}
	if (!json_is_true(json_object_get(r, "tracked")))
		out_printf("  tracked      no (the collector does not track it)\n");
	out_printf("  repr         %s\n", esc_member(r, "repr"));
	json_array_foreach (refs, i, x) {
		int len = (int)strlen(esc_member(x, "label"));

		if (len > w)
			w = len > 40 ? 40 : len;
	}
	out_printf("  referents (%lld):\n", json_int_member(r, "referents_total", 0));
	json_array_foreach (refs, i, x) {
		char handle[24] = "";

		if (json_object_get(x, "handle"))
			snprintf(handle, sizeof(handle), "$%lld", json_int_member(x, "handle", 0));
		out_printf("    %-*s %-6s %-16s %s\n", w, esc_member(x, "label"), handle,
			   esc_member(x, "type"), esc_member(x, "repr"));
	}
	if (json_int_member(r, "referents_total", 0) > (long long)json_array_size(refs))
		out_printf("    ... %lld more\n", json_int_member(r, "referents_total", 0) -
						      (long long)json_array_size(refs));
	sb_release(&sb);
}

/* ----- the search behind refs and graph ----- */

enum root_kind {
	ROOT_MODULE,
	ROOT_FRAME,
	ROOT_GARBAGE,
	ROOT_NATIVE,
};

struct root_info {
	enum root_kind kind;
	uint32_t node;
	const char *name; /* a module's, inside the snapshot's JSON */
	const struct hg_frame *frame;
	int64_t unaccounted;
};

/* One refs or graph command: the snapshot, its roots, what they found. */
struct search {
	struct agent *ag;
	struct hg_snap s;
	struct root_info *roots;
	size_t nroots, cap;
	uint64_t *root_keys;
	uint64_t seq[8], map[8];
	struct hg_shape_types types;
	int64_t *refcount; /* by node, for the nodes that needed one (-1: unknown) */
};

static uint32_t add_root(struct search *q, enum root_kind kind, uint32_t node)
{
	struct root_info *ri;

	if (q->nroots == q->cap) {
		q->cap = q->cap ? q->cap * 2 : 256;
		q->roots = xrealloc(q->roots, q->cap * sizeof(*q->roots));
	}
	ri = &q->roots[q->nroots];
	memset(ri, 0, sizeof(*ri));
	ri->kind = kind;
	ri->node = node;
	return (uint32_t)q->nroots++;
}

static void search_release(struct search *q)
{
	hg_snap_release(&q->s);
	free(q->roots);
	free(q->root_keys);
	free(q->refcount);
	memset(q, 0, sizeof(*q));
}

static void load_types(struct search *q)
{
	const json_t *c = json_object_get(q->s.begin, "collections"), *v;
	size_t i;

	json_array_foreach (json_object_get(c, "seq"), i, v) {
		if (q->types.nseq < ARRAY_SIZE(q->seq))
			q->seq[q->types.nseq++] = (uint64_t)json_integer_value(v);
	}
	json_array_foreach (json_object_get(c, "dict"), i, v) {
		if (q->types.nmap < ARRAY_SIZE(q->map))
			q->map[q->types.nmap++] = (uint64_t)json_integer_value(v);
	}
	q->types.seq = q->seq;
	q->types.map = q->map;
}

/* Modules first (__main__ leads), then every thread's frames, then gc.garbage. */
static void tier0_roots(struct search *q, struct hg_root **out, size_t *n)
{
	const json_t *m;
	struct hg_root *r;
	uint32_t node;
	size_t i;

	json_array_foreach (json_object_get(q->s.begin, "modules"), i, m) {
		if (hg_lookup(&q->s.g, (uint64_t)json_integer_value(json_array_get(m, 1)), &node) ==
		    0) {
			uint32_t t = add_root(q, ROOT_MODULE, node);

			q->roots[t].name = json_string_value(json_array_get(m, 0));
		}
	}
	for (i = 0; i < q->s.nframes; i++) {
		uint32_t t = add_root(q, ROOT_FRAME, q->s.frames[i].node);

		q->roots[t].frame = &q->s.frames[i];
	}
	if (hg_lookup(&q->s.g, (uint64_t)json_int_member(q->s.begin, "garbage", 0), &node) == 0)
		add_root(q, ROOT_GARBAGE, node);
	r = xmalloc((q->nroots ? q->nroots : 1) * sizeof(*r));
	for (i = 0; i < q->nroots; i++) {
		r[i].node = q->roots[i].node;
		r[i].tag = (uint32_t)i;
	}
	*out = r;
	*n = q->nroots;
}

/*
 * References nobody in the graph accounts for: the count, less the agent's
 * one reference to every object of the snapshot, less the referrers found.
 */
static int64_t unaccounted(const struct search *q, uint32_t node, int64_t refcount)
{
	int64_t held = (node < q->s.g.nobjs) + (int64_t)q->s.g.indeg[node];

	if (refcount < 0)
		return -1;
	return refcount > held ? refcount - held : 0;
}

static void remember_refcounts(struct search *q, const uint32_t *nodes, size_t n)
{
	int64_t *rc = xmalloc((n ? n : 1) * sizeof(*rc));

	if (!q->refcount) {
		q->refcount = xmalloc(((size_t)q->s.g.n + 1) * sizeof(*q->refcount));
		for (uint32_t i = 0; i <= q->s.g.n; i++)
			q->refcount[i] = -1;
	}
	if (hg_read_refcounts(q->ag->pi, &q->s.g, nodes, n, rc) == 0)
		for (size_t i = 0; i < n; i++)
			q->refcount[nodes[i]] = rc[i];
	free(rc);
}

/*
 * Search from the roots until every target is reached; what is left is held
 * either from native code (more references than referrers: those become the
 * roots of a second search) or only by cycles nothing reaches: garbage.
 */
static void run_search(struct search *q, const uint32_t *targets, size_t ntargets)
{
	struct hg_root *roots;
	struct hg_nodes left = {0}, holders = {0};
	size_t nroots;

	tier0_roots(q, &roots, &nroots);
	hg_search(&q->s.g, roots, nroots, targets, ntargets);
	free(roots);
	for (size_t i = 0; i < ntargets; i++)
		if (!(q->s.g.flags[targets[i]] & HG_REACHED))
			hg_nodes_push(&left, targets[i]);
	/* the targets' own counts, for "unaccounted for" */
	remember_refcounts(q, targets, ntargets < REFERRERS_MAX ? ntargets : REFERRERS_MAX);
	if (left.n) {
		size_t first = q->nroots;

		hg_unreached_holders(&q->s.g, left.v, left.n, HOLDERS_MAX, &holders);
		remember_refcounts(q, holders.v, holders.n);
		for (size_t i = 0; i < holders.n; i++) {
			uint32_t u = holders.v[i];
			int64_t k = unaccounted(q, u, q->refcount[u]);

			if (k > 0 && !(q->s.g.flags[u] & HG_SYNTHETIC)) {
				uint32_t t = add_root(q, ROOT_NATIVE, u);

				q->roots[t].unaccounted = k;
			}
		}
		roots = xmalloc((q->nroots - first + 1) * sizeof(*roots));
		for (size_t i = first; i < q->nroots; i++) {
			roots[i - first].node = q->roots[i].node;
			roots[i - first].tag = (uint32_t)i;
		}
		hg_search(&q->s.g, roots, q->nroots - first, left.v, left.n);
		free(roots);
	}
	hg_nodes_release(&left);
	hg_nodes_release(&holders);
	/* what stands for each root in a chain's shape */
	q->root_keys = xmalloc((q->nroots ? q->nroots : 1) * sizeof(*q->root_keys));
	for (size_t i = 0; i < q->nroots; i++) {
		const struct root_info *ri = &q->roots[i];

		q->root_keys[i] = ri->kind == ROOT_NATIVE  ? q->s.g.type[ri->node] ^ 0x5a5a
				  : ri->kind == ROOT_FRAME ? ri->frame->frame
							   : q->s.g.addr[ri->node];
	}
}

static int search_begin(struct cmd_ctx *ctx, struct search *q, const char *spec, int want_types)
{
	memset(q, 0, sizeof(*q));
	if (refs_agent(ctx, &q->ag) < 0)
		return -1;
	if (hg_take(q->ag, spec, want_types, &q->s) < 0)
		return -1;
	if (!q->s.gone)
		load_types(q);
	return 0;
}

/* ----- describing chains: the agent labels what is printed ----- */

struct chain_req {
	uint32_t *node;
	size_t len;
};

static void add_node_req(struct strbuf *req, uint32_t node, const struct hg *g, int full)
{
	if (node < g->nobjs)
		sb_addf(req, "n %" PRIu32 " %d\n", node, full);
}

static void add_chain_req(struct strbuf *req, const struct chain_req *c, const struct hg *g)
{
	sb_adds(req, "c");
	for (size_t i = 0; i < c->len; i++) {
		if (c->node[i] < g->nobjs)
			sb_addf(req, " %" PRIu32, c->node[i]);
		else
			sb_adds(req, " -1");
	}
	sb_addc(req, '\n');
	for (size_t i = 0; i < c->len; i++)
		add_node_req(req, c->node[i], g, i == c->len - 1);
}

static json_t *node_json(const json_t *nodes, uint32_t node)
{
	char key[16];
	json_t *n;

	snprintf(key, sizeof(key), "%" PRIu32, node);
	n = json_object_get(nodes, key);
	return n ? json_deep_copy(n) : json_object();
}

/* "Processor @0x7f..": a node as the one-line chain ends it. */
static void add_node_text(struct strbuf *sb, const json_t *n)
{
	const char *type = json_string_value(json_object_get(n, "type"));
	const char *dot = type ? strrchr(type, '.') : NULL;

	/* the class's own name reads better than module.qualname in a chain */
	sb_addf(sb, "%s @%#llx",
		dot    ? dot + 1
		: type ? type
		       : "?",
		json_int_member(n, "address", 0));
}

static json_t *root_json(const struct search *q, uint32_t tag)
{
	const struct root_info *ri = &q->roots[tag];
	json_t *o = json_object();
	const char *kinds[] = {"module", "frame", "garbage", "native"};

	json_object_set_new(o, "kind", json_string(kinds[ri->kind]));
	json_object_set_new(o, "address", json_integer((json_int_t)q->s.g.addr[ri->node]));
	switch (ri->kind) {
	case ROOT_MODULE:
		json_object_set_new(o, "name", json_target_cstr(ri->name ? ri->name : "?"));
		break;
	case ROOT_FRAME:
		json_object_set_new(o, "tid", json_integer(ri->frame->tid));
		if (ri->frame->thread)
			json_object_set_new(o, "thread", json_target_cstr(ri->frame->thread));
		json_object_set_new(o, "main_thread", json_boolean(ri->frame->is_main));
		json_object_set_new(o, "function", json_target_cstr(ri->frame->func));
		json_object_set_new(o, "file", json_target_cstr(ri->frame->file));
		json_object_set_new(o, "line", json_integer(ri->frame->line));
		json_object_set_new(o, "depth", json_integer(ri->frame->depth));
		break;
	case ROOT_GARBAGE:
		break;
	case ROOT_NATIVE:
		json_object_set_new(o, "unaccounted", json_integer(ri->unaccounted));
		break;
	}
	return o;
}

static void add_root_text(struct strbuf *sb, const json_t *root, const json_t *first)
{
	const char *kind = json_string_value(json_object_get(root, "kind"));

	if (!strcmp(kind, "module")) {
		sb_addf(sb, "%s module", json_string_value(json_object_get(root, "name")));
	} else if (!strcmp(kind, "frame")) {
		const char *thread = json_string_value(json_object_get(root, "thread"));

		sb_addf(sb, "thread %lld", json_int_member(root, "tid", 0));
		if (thread)
			sb_addf(sb, " (%s)", thread);
		sb_addf(sb, " %s() at %s:%lld",
			json_string_value(json_object_get(root, "function")),
			json_string_value(json_object_get(root, "file")),
			json_int_member(root, "line", 0));
	} else if (!strcmp(kind, "garbage")) {
		sb_adds(sb, "gc.garbage");
	} else {
		long long k = json_int_member(root, "unaccounted", 0);

		sb_addf(sb,
			"held from native code or an untracked container (%lld reference%s "
			"unaccounted for): ",
			k, k == 1 ? "" : "s");
		add_node_text(sb, first);
	}
}

/* The label of a frame's reference to addr: the name of the local that holds it. */
static int frame_label(struct search *q, const struct hg_frame *f, uint64_t addr,
		       struct strbuf *out)
{
	uint32_t index;
	struct strbuf name = STRBUF_INIT;

	if (hg_frame_local_of(q->ag->pi, f, addr, &index) < 0)
		return -1;
	if (hg_frame_local_name(q->ag->pi, f, index, &name) < 0)
		sb_addf(out, "local #%" PRIu32, index);
	else
		sb_addf(out, "local '%s'", sb_str(&name));
	sb_release(&name);
	return 0;
}

/*
 * A chain as JSON: hops (the agent's labels; a frame's from its memory)
 * with the node each reaches, and the one-line text.  tag: the root's, or
 * HG_NONE for a cycle.
 */
static json_t *chain_json(struct search *q, const struct chain_req *c, uint32_t tag,
			  const json_t *hops, const json_t *nodes)
{
	json_t *o = json_object(), *out = json_array(), *root = NULL, *first;
	struct strbuf text = STRBUF_INIT;
	const json_t *h;
	size_t i;

	first = node_json(nodes, c->node[0]);
	if (tag != HG_NONE) {
		root = root_json(q, tag);
		add_root_text(&text, root, first);
		json_object_set_new(o, "root", root);
	} else {
		add_node_text(&text, first);
	}
	json_array_foreach (hops, i, h) {
		size_t to = (size_t)json_int_member(h, "to", 0);
		const char *kind = json_string_value(json_object_get(h, "kind"));
		json_t *hop;
		struct strbuf label = STRBUF_INIT;

		if (to >= c->len)
			break;
		hop = node_json(nodes, c->node[to]);
		sb_adds(&label, json_string_value(json_object_get(h, "label")));
		if (i == 0 && tag != HG_NONE && q->roots[tag].kind == ROOT_FRAME &&
		    (!kind || !strcmp(kind, "frame") || !strcmp(kind, "referent"))) {
			sb_reset(&label);
			if (frame_label(q, q->roots[tag].frame, q->s.g.addr[c->node[to]], &label) ==
			    0)
				kind = "local";
		}
		if (q->s.g.flags[c->node[to]] & HG_SYNTHETIC)
			json_object_set_new(hop, "address",
					    json_integer((json_int_t)q->s.g.addr[c->node[to]]));
		json_object_set_new(hop, "kind", json_string(kind ? kind : "referent"));
		json_object_set_new(hop, "label", json_target_cstr(sb_str(&label)));
		sb_adds(&text, " -> ");
		if (label.len) {
			sb_adds(&text, sb_str(&label));
		} else {
			const char *type = json_string_value(json_object_get(hop, "type"));

			sb_addf(&text, "(%s)", type ? type : "?");
		}
		json_array_append_new(out, hop);
		sb_release(&label);
	}
	if (c->len > 1 || tag == HG_NONE) {
		json_t *last = node_json(nodes, c->node[c->len - 1]);

		sb_adds(&text, " -> ");
		add_node_text(&text, last);
		json_decref(last);
	}
	json_decref(first);
	json_object_set_new(o, "hops", out);
	json_object_set_new(o, "text", json_target_cstr(sb_str(&text)));
	sb_release(&text);
	return o;
}

/* ----- refs ----- */

struct refs_opts {
	const char *spec;
	int all;
	uint64_t max_depth; /* 0: none */
};

struct group {
	uint64_t shape;
	uint32_t count;
	uint32_t rep; /* the newest node held this way */
	int held;     /* HELD_* */
	uint32_t via; /* refs $N --all: the referrer the chain goes through, or HG_NONE */
};

enum { HELD_ROOT, HELD_NATIVE, HELD_GARBAGE };

static const char *const held_names[] = {"root", "native", "garbage"};

/* Which of two objects was created later, as far as the collector's lists tell. */
static int newer(const struct search *q, uint32_t a, uint32_t b)
{
	int ga, gb;

	if (!q->s.have_gen)
		return a > b;
	ga = a < q->s.gen[0] ? 0 : a < q->s.gen[1] ? 1 : 2;
	gb = b < q->s.gen[0] ? 0 : b < q->s.gen[1] ? 1 : 2;
	return ga != gb ? ga < gb : a > b;
}

struct groups {
	struct group *v;
	size_t n, cap;
	uint64_t *slot_shape;
	uint32_t *slot;
	size_t mask;
};

static void groups_init(struct groups *gs, size_t expect)
{
	size_t size = 64;

	memset(gs, 0, sizeof(*gs));
	while (size < expect * 2)
		size <<= 1;
	gs->mask = size - 1;
	gs->slot = xmalloc(size * sizeof(*gs->slot));
	memset(gs->slot, 0xff, size * sizeof(*gs->slot));
}

static void groups_release(struct groups *gs)
{
	free(gs->v);
	free(gs->slot);
	memset(gs, 0, sizeof(*gs));
}

static void groups_add(const struct search *q, struct groups *gs, uint64_t shape, int held,
		       uint32_t node, uint32_t via)
{
	size_t h = (size_t)(shape * 0x9e3779b97f4a7c15ull) & gs->mask;
	struct group *g;

	for (;; h = (h + 1) & gs->mask) {
		uint32_t s = gs->slot[h];

		if (s == HG_NONE)
			break;
		g = &gs->v[s];
		if (g->shape == shape && g->held == held) {
			g->count++;
			if (newer(q, node, g->rep)) {
				g->rep = node;
				g->via = via;
			}
			return;
		}
	}
	if (gs->n == gs->cap) {
		gs->cap = gs->cap ? gs->cap * 2 : 16;
		gs->v = xrealloc(gs->v, gs->cap * sizeof(*gs->v));
	}
	/* the slot table never fills: it has room for twice what was expected, and grows */
	if ((gs->n + 1) * 2 > gs->mask) {
		size_t size = (gs->mask + 1) * 2;

		free(gs->slot);
		gs->mask = size - 1;
		gs->slot = xmalloc(size * sizeof(*gs->slot));
		memset(gs->slot, 0xff, size * sizeof(*gs->slot));
		for (size_t i = 0; i < gs->n; i++) {
			size_t k = (size_t)(gs->v[i].shape * 0x9e3779b97f4a7c15ull) & gs->mask;

			while (gs->slot[k] != HG_NONE)
				k = (k + 1) & gs->mask;
			gs->slot[k] = (uint32_t)i;
		}
		h = (size_t)(shape * 0x9e3779b97f4a7c15ull) & gs->mask;
		while (gs->slot[h] != HG_NONE)
			h = (h + 1) & gs->mask;
	}
	g = &gs->v[gs->n];
	g->shape = shape;
	g->count = 1;
	g->rep = node;
	g->held = held;
	g->via = via;
	gs->slot[h] = (uint32_t)gs->n++;
}

static int held_of(const struct search *q, uint32_t node)
{
	uint32_t tag = hg_root_tag(&q->s.g, node);

	if (tag == HG_NONE)
		return HELD_GARBAGE;
	return q->roots[tag].kind == ROOT_NATIVE ? HELD_NATIVE : HELD_ROOT;
}

static uint64_t shape_of(const struct search *q, uint32_t node)
{
	return hg_chain_shape(&q->s.g, node, &q->types, q->root_keys, q->nroots);
}

/* Bigger groups first; qsort_r's comparison of two groups. */
static int group_cmp(const void *a, const void *b, void *arg)
{
	const struct group *x = a, *y = b;

	if (x->count != y->count)
		return x->count < y->count ? 1 : -1;
	return newer(arg, x->rep, y->rep) ? -1 : 1;
}

/* The group of the newest target first (the one refs TYPE shows), then by size. */
static void order_groups(const struct search *q, struct groups *gs, const struct hg_nodes *targets,
			 int by_newest)
{
	uint32_t newest = targets->v[0];

	if (!gs->n)
		return;
	for (size_t i = 1; i < targets->n; i++)
		if (newer(q, targets->v[i], newest))
			newest = targets->v[i];
	qsort_r(gs->v, gs->n, sizeof(*gs->v), group_cmp, (void *)q);
	for (size_t i = 0; by_newest && i < gs->n; i++) {
		if (gs->v[i].rep == newest) {
			struct group g = gs->v[i];

			memmove(gs->v + 1, gs->v, i * sizeof(*gs->v));
			gs->v[0] = g;
			break;
		}
	}
	/* the slots point at old places now: no more groups_add() */
}

static int parse_refs_opts(const struct cmd *c, int argc, char **argv, struct refs_opts *o,
			   int graph, uint64_t *too_many, int *direction, const char **file)
{
	memset(o, 0, sizeof(*o));
	for (int i = 0; i < argc; i++) {
		const char *v;
		int missing;

		if (!strcmp(argv[i], "--all") && !graph) {
			o->all = 1;
		} else if ((v = opt_value("--max-depth", argc, argv, &i, &missing)) || missing) {
			if (parse_number(c, "--max-depth", v, DEPTH_MAX, &o->max_depth) < 0)
				return -1;
		} else if (graph &&
			   ((v = opt_value("--too-many", argc, argv, &i, &missing)) || missing)) {
			if (parse_number(c, "--too-many", v, GRAPH_NODES_MAX, too_many) < 0)
				return -1;
		} else if (graph &&
			   (!strcmp(argv[i], "--refs") || !strcmp(argv[i], "--referrers"))) {
			*direction = 0;
		} else if (graph && !strcmp(argv[i], "--referents")) {
			*direction = 1;
		} else if (graph && ((v = opt_value("-o", argc, argv, &i, &missing)) || missing)) {
			if (!v)
				return cmd_usage_error(c, "-o needs a file name");
			*file = v;
		} else if (argv[i][0] == '-' && argv[i][1]) {
			return cmd_usage_error(c, "unknown option \"%s\"", esc(argv[i]));
		} else if (!o->spec) {
			o->spec = argv[i];
		} else {
			return cmd_usage_error(c, "unexpected \"%s\"", esc(argv[i]));
		}
	}
	if (!o->spec)
		return cmd_usage_error(c, "which object? $N, 0xADDR or a type name");
	return 0;
}

/* The chain of a group's representative (through its referrer, for refs $N --all). */
static void group_chain(const struct search *q, const struct group *g, struct chain_req *c)
{
	uint32_t end = g->via != HG_NONE ? g->via : g->rep;
	size_t len = hg_chain(&q->s.g, end, NULL, 0);

	c->node = xmalloc((len + 2) * sizeof(*c->node));
	c->len = hg_chain(&q->s.g, end, c->node, len);
	if (g->via != HG_NONE)
		c->node[c->len++] = g->rep;
}

static void add_refcount_facts(struct search *q, json_t *r, uint32_t x)
{
	int64_t rc = q->refcount ? q->refcount[x] : -1;
	int64_t k = unaccounted(q, x, rc);

	if (rc < 0)
		return;
	/* the snapshot's own reference to the object is not the program's */
	json_object_set_new(r, "refcount", json_integer(rc - (x < q->s.g.nobjs)));
	json_object_set_new(r, "referrers", json_integer(q->s.g.indeg[x]));
	json_object_set_new(r, "unaccounted", json_integer(k));
}

static int cmd_refs(struct cmd_ctx *ctx, int argc, char **argv)
{
	struct refs_opts o;
	struct search q;
	struct groups gs;
	struct hg_nodes targets = {0};
	struct chain_req *reqs = NULL;
	struct strbuf req = STRBUF_INIT;
	json_t *r = out_result(), *reply = NULL, *jgroups;
	size_t shown, nreq = 0;
	int ret = -1, dropped = 0;

	if (parse_refs_opts(ctx->cmd, argc, argv, &o, 0, NULL, NULL, NULL) < 0)
		return -1;
	if (search_begin(ctx, &q, o.spec, o.all) < 0)
		goto out;
	if (q.s.gone) {
		json_object_update(r, q.s.begin);
		dropped = 1;
		ret = 0;
		goto out;
	}
	json_object_set_new(r, "objects", json_integer(q.s.g.nobjs));
	if (q.s.type) {
		for (uint32_t i = 0; i < q.s.g.nobjs; i++)
			if (q.s.g.type[i] == q.s.type && !(q.s.g.flags[i] & HG_OWN))
				hg_nodes_push(&targets, i);
		json_object_set(r, "type",
				json_object_get(json_object_get(q.s.begin, "type"), "name"));
		json_object_set_new(r, "instances", json_integer((json_int_t)targets.n));
		if (!targets.n) {
			error("no instance of %s is alive",
			      esc(json_string_value(json_object_get(r, "type"))));
			goto out;
		}
	} else if (q.s.target != HG_NONE) {
		hg_nodes_push(&targets, q.s.target);
		if (o.all) {
			/* every referrer needs its own chain: search until they all have one */
			uint32_t *refs = xmalloc(REFERRERS_MAX * sizeof(*refs));
			size_t n = hg_referrers(&q.s.g, q.s.target, refs, REFERRERS_MAX);

			for (size_t i = 0; i < n && i < REFERRERS_MAX; i++)
				hg_nodes_push(&targets, refs[i]);
			free(refs);
		}
	} else {
		error("%s is not in the snapshot", esc(o.spec));
		goto out;
	}
	run_search(&q, targets.v, targets.n);

	groups_init(&gs, targets.n);
	if (q.s.type || !o.all) {
		for (size_t i = 0; i < targets.n; i++) {
			uint32_t t = targets.v[i];
			int held = held_of(&q, t);

			groups_add(&q, &gs, held == HELD_GARBAGE ? 0 : shape_of(&q, t), held, t,
				   HG_NONE);
		}
	} else {
		/* every referrer's own shortest chain, then the hop to the object */
		uint32_t x = targets.v[0];

		for (size_t i = 1; i < targets.n; i++) {
			uint32_t via = targets.v[i];
			int held;

			if (i > 1 && via == targets.v[i - 1])
				continue;
			held = held_of(&q, via);
			if (held == HELD_GARBAGE)
				continue;
			groups_add(&q, &gs, shape_of(&q, via) ^ (q.s.g.type[via] * 31 + 7), held, x,
				   via);
		}
		if (!gs.n) /* no referrer with a chain: the object alone tells */
			groups_add(&q, &gs, 0, held_of(&q, x), x, HG_NONE);
	}
	order_groups(&q, &gs, &targets, q.s.type != 0);
	shown = gs.n < (o.all ? GROUPS_SHOWN_ALL : GROUPS_SHOWN)
		    ? gs.n
		    : (o.all ? GROUPS_SHOWN_ALL : GROUPS_SHOWN);
	/* what to ask the agent: each group's chain (or cycle), labelled */
	reqs = xcalloc(shown ? shown : 1, sizeof(*reqs));
	for (size_t i = 0; i < shown; i++) {
		const struct group *g = &gs.v[i];

		if (g->held == HELD_GARBAGE) {
			size_t len;

			reqs[i].node = xmalloc(64 * sizeof(uint32_t));
			len = hg_cycle(&q.s.g, g->rep, reqs[i].node, 64);
			if (!len) {
				reqs[i].node[0] = g->rep;
				len = 1;
			}
			reqs[i].len = len;
		} else {
			group_chain(&q, g, &reqs[i]);
		}
		nreq++;
		if (req.len < DESCRIBE_MAX)
			add_chain_req(&req, &reqs[i], &q.s.g);
	}
	if (q.s.target != HG_NONE)
		add_refcount_facts(&q, r, q.s.target);
	if (hg_snap_describe(q.ag, sb_str(&req), 1, REPR_LIMIT, &reply) < 0)
		goto groups_out;
	dropped = 1;
	jgroups = json_array();
	for (size_t i = 0; i < shown; i++) {
		const struct group *g = &gs.v[i];
		json_t *jg = json_object(), *chains = json_object_get(reply, "chains");
		json_t *nodes = json_object_get(reply, "nodes");
		const json_t *hops = json_array_get(chains, i);

		json_object_set_new(jg, "count", json_integer(g->count));
		json_object_set_new(jg, "held", json_string(held_names[g->held]));
		json_object_set_new(jg, "representative", node_json(nodes, g->rep));
		if (!hops) {
			json_array_append_new(jgroups, jg);
			continue;
		}
		if (g->held == HELD_GARBAGE) {
			if (reqs[i].len > 1)
				json_object_set_new(jg, "cycle",
						    chain_json(&q, &reqs[i], HG_NONE, hops, nodes));
		} else {
			uint32_t tag = hg_root_tag(&q.s.g, reqs[i].node[0]);

			json_object_set_new(jg, "chain",
					    chain_json(&q, &reqs[i], tag, hops, nodes));
			/* hops as printed: an attribute is one, not its __dict__ and a key */
			if (o.max_depth && json_array_size(hops) > o.max_depth)
				json_object_set_new(
				    jg, "too_deep",
				    json_integer((json_int_t)json_array_size(hops)));
		}
		json_array_append_new(jgroups, jg);
	}
	if (q.s.target != HG_NONE)
		json_object_set(r, "target",
				json_object_get(json_array_get(jgroups, 0), "representative"));
	json_object_set_new(
	    r, "held",
	    json_string(
		held_names[q.s.target != HG_NONE ? held_of(&q, q.s.target) : gs.v[0].held]));
	/* the young generations list objects in the order they were made, or survived a
	 * collection of the youngest; the oldest, once a full collection ran, in no order */
	json_object_set_new(r, "newest_known",
			    json_boolean(q.s.have_gen && gs.v[0].rep < q.s.gen[1]));
	json_object_set_new(r, "groups", jgroups);
	json_object_set_new(r, "more_groups", json_integer((json_int_t)(gs.n - shown)));
	json_object_set_new(r, "all", json_boolean(o.all));
	json_object_set_new(r, "gc_enabled",
			    json_boolean(json_is_true(json_object_get(q.s.begin, "gc_enabled"))));
	if (o.max_depth)
		json_object_set_new(r, "max_depth", json_integer((json_int_t)o.max_depth));
	ret = 0;
groups_out:
	for (size_t i = 0; i < nreq; i++)
		free(reqs[i].node);
	free(reqs);
	groups_release(&gs);
out:
	if (!dropped && q.ag)
		hg_snap_drop(q.ag);
	json_decref(reply);
	sb_release(&req);
	hg_nodes_release(&targets);
	search_release(&q);
	return ret;
}

static void render_chain(const json_t *chain)
{
	const json_t *hops = json_object_get(chain, "hops"), *h,
		     *root = json_object_get(chain, "root");
	size_t i;

	out_printf("  %s\n", esc_member(chain, "text"));
	if (root && !strcmp(json_string_value(json_object_get(root, "kind")), "frame"))
		out_printf("      thread %lld%s%s%s, frame #%lld: %s() at %s:%lld\n",
			   json_int_member(root, "tid", 0),
			   json_object_get(root, "thread") ? " (" : "", esc_member(root, "thread"),
			   json_object_get(root, "thread") ? ")" : "",
			   json_int_member(root, "depth", 0), esc_member(root, "function"),
			   esc_member(root, "file"), json_int_member(root, "line", 0));
	json_array_foreach (hops, i, h) {
		const char *label = esc_member(h, "label");

		out_printf("      -> %-24s %-20s @%#llx  %s\n", *label ? label : "(referent)",
			   esc_member(h, "type"), json_int_member(h, "address", 0),
			   esc_member(h, "repr"));
	}
}

static void render_refs(const json_t *r)
{
	const json_t *groups = json_object_get(r, "groups"), *g;
	const json_t *type = json_object_get(r, "type");
	size_t i;

	if (render_gone(r))
		return;
	json_array_foreach (groups, i, g) {
		const json_t *rep = json_object_get(g, "representative");
		const char *held = json_string_value(json_object_get(g, "held"));
		long long count = json_int_member(g, "count", 0);
		char handle[24] = "";

		if (json_object_get(rep, "handle"))
			snprintf(handle, sizeof(handle), "$%lld ",
				 json_int_member(rep, "handle", 0));
		if (i == 0 && type)
			out_printf("%s%s @%#llx (%s of %lld alive):\n", handle,
				   esc_member(rep, "type"), json_int_member(rep, "address", 0),
				   json_is_true(json_object_get(r, "newest_known")) ? "the newest"
										    : "one",
				   json_int_member(r, "instances", 0));
		else if (i == 0)
			out_printf("%s%s @%#llx:\n", handle, esc_member(rep, "type"),
				   json_int_member(rep, "address", 0));
		else if (type)
			out_printf("%lld %s held another way, like %s@%#llx:\n", count,
				   esc_member(rep, "type"), handle,
				   json_int_member(rep, "address", 0));
		else
			out_printf("%lld more chain%s, like:\n", count, count == 1 ? "" : "s");
		if (!strcmp(held, "garbage")) {
			out_printf(
			    "  unreachable: only reference cycles hold it; the collector will "
			    "free it%s\n",
			    json_is_true(json_object_get(r, "gc_enabled"))
				? " at its next full collection"
				: " when it runs (it is disabled in this process)");
			if (json_object_get(g, "cycle"))
				out_printf("  in the cycle: %s\n",
					   esc_member(json_object_get(g, "cycle"), "text"));
		} else if (json_object_get(g, "too_deep")) {
			out_printf(
			    "  the shortest chain has %lld hops, more than --max-depth %lld\n",
			    json_int_member(g, "too_deep", 0), json_int_member(r, "max_depth", 0));
		} else if (json_object_get(g, "chain")) {
			render_chain(json_object_get(g, "chain"));
		}
		if (i == 0 && type && count > 1)
			out_printf("  %lld more %s held the same way\n", count - 1,
				   esc_member(rep, "type"));
		else if (i == 0 && !type && count > 1)
			out_printf("  (%lld chains of this shape)\n", count);
	}
	if (json_int_member(r, "more_groups", 0))
		out_printf(
		    "(%lld more way%s of holding %s%s)\n", json_int_member(r, "more_groups", 0),
		    json_int_member(r, "more_groups", 0) == 1 ? "" : "s", type ? "them" : "it",
		    json_is_true(json_object_get(r, "all")) ? "" : "; --all shows them");
	if (json_int_member(r, "unaccounted", 0) > 0) {
		long long k = json_int_member(r, "unaccounted", 0);

		out_printf(
		    "refcount %lld: %lld from referrers the collector tracks, %lld unaccounted "
		    "for (native code, an untracked container, or a frame's evaluation "
		    "stack)\n",
		    json_int_member(r, "refcount", 0), json_int_member(r, "referrers", 0), k);
	}
}

/* ----- graph ----- */

/* A Graphviz double-quoted string. */
static void dot_str(struct strbuf *sb, const char *s)
{
	sb_addc(sb, '"');
	for (; s && *s; s++) {
		unsigned char ch = (unsigned char)*s;

		if (ch == '"' || ch == '\\')
			sb_addf(sb, "\\%c", ch);
		else if (ch == '\n')
			sb_adds(sb, "\\n");
		else if (ch < 0x20 || ch == 0x7f)
			sb_addc(sb, '?');
		else
			sb_addc(sb, (char)ch);
	}
	sb_addc(sb, '"');
}

/* A node's label: its type, then a short repr, cut the way objgraph cuts them. */
static void dot_node(struct strbuf *sb, size_t i, const json_t *n, const char *color)
{
	struct strbuf label = STRBUF_INIT;
	const char *repr = json_string_value(json_object_get(n, "repr"));
	size_t len = repr ? strlen(repr) : 0;

	sb_addf(&label, "%s\n", json_string_value(json_object_get(n, "type")));
	if (len > 60) {
		/* at a character boundary: UTF-8 continuation bytes stay with their start */
		size_t cut = 57;

		while (cut && ((unsigned char)repr[cut] & 0xc0) == 0x80)
			cut--;
		sb_add(&label, repr, cut);
		sb_adds(&label, "...");
	} else if (repr) {
		sb_adds(&label, repr);
	}
	sb_addf(sb, "  o%zu [label=", i);
	dot_str(sb, sb_str(&label));
	sb_addf(sb, ", fillcolor=\"%s\"];\n", color);
	sb_release(&label);
}

static int write_file(const char *path, const char *data, size_t len)
{
	FILE *f = fopen(path, "w");

	if (!f)
		return error("cannot write %s: %s", esc(path), strerror(errno));
	if (fwrite(data, 1, len, f) != len || fclose(f) != 0) {
		if (f)
			fclose(f);
		return error("cannot write %s: %s", esc(path), strerror(errno));
	}
	return 0;
}

/* Is `prog` on PATH? */
static int on_path(const char *prog)
{
	const char *path = getenv("PATH");
	struct strbuf sb = STRBUF_INIT;
	int found = 0;

	if (!path)
		path = "/usr/bin:/bin";
	while (*path && !found) {
		size_t n = strcspn(path, ":");

		sb_reset(&sb);
		sb_add(&sb, path, n);
		sb_addf(&sb, "/%s", prog);
		found = access(sb_str(&sb), X_OK) == 0;
		path += n;
		path += *path == ':';
	}
	sb_release(&sb);
	return found;
}

/* dot -Tfmt -o out in: run and wait for that one child, never any other. */
static int run_dot(const char *fmt, const char *in, const char *out)
{
	char tflag[32];
	char *argv[] = {"dot", tflag, "-o", (char *)out, (char *)in, NULL};
	pid_t pid;
	int status, err;

	snprintf(tflag, sizeof(tflag), "-T%s", fmt);
	err = posix_spawnp(&pid, "dot", NULL, NULL, argv, environ);
	if (err)
		return error("cannot run dot: %s", strerror(err));
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			return error("cannot wait for dot: %s", strerror(errno));
	if (!WIFEXITED(status) || WEXITSTATUS(status))
		return error("dot failed to render %s", esc(out));
	return 0;
}

/* The picture: nodes (json: type, repr), edges (from -> to, label), "N more" nodes. */
static int write_graph(const char *file, const json_t *nodes, const struct hg_sub_edge *edges,
		       const json_t *labels, size_t nedges, const struct hg_sub_more *more,
		       size_t nmore, int referents)
{
	const char *ext = strrchr(file, '.');
	struct strbuf dot = STRBUF_INIT, dotfile = STRBUF_INIT;
	json_t *r = out_result();
	const json_t *n;
	size_t i;
	int render = 0, ret = -1;

	if (ext && (!strcmp(ext, ".png") || !strcmp(ext, ".svg") || !strcmp(ext, ".pdf")))
		render = 1;
	else if (!ext || (strcmp(ext, ".dot") && strcmp(ext, ".gv")))
		return error(
		    "%s: the output is FILE.dot (or .gv), or FILE.png, .svg or .pdf rendered "
		    "by Graphviz",
		    esc(file));
	sb_adds(&dot, "digraph ObjectGraph {\n"
		      "  node [shape=box, style=filled, fillcolor=white, fontname=Helvetica];\n"
		      "  edge [fontname=Helvetica, fontsize=10];\n");
	json_array_foreach (nodes, i, n) {
		const char *color = i == 0 ? "#ff8080" : "#ffffff";

		if (json_is_true(json_object_get(n, "root")))
			color = "#80ff80";
		dot_node(&dot, i, n, color);
	}
	for (i = 0; i < nedges; i++) {
		const json_t *l = json_array_get(labels, i);

		sb_addf(&dot, "  o%" PRIu32 " -> o%" PRIu32, edges[i].from, edges[i].to);
		if (json_is_string(l) && *json_string_value(l)) {
			sb_adds(&dot, " [label=");
			dot_str(&dot, json_string_value(l));
			sb_adds(&dot, "]");
		}
		sb_adds(&dot, ";\n");
	}
	for (i = 0; i < nmore; i++) {
		sb_addf(&dot,
			"  more%zu [label=\"%" PRIu32 " more %s\", shape=box, style=dotted];\n", i,
			more[i].count, referents ? "references" : "backreferences");
		if (referents)
			sb_addf(&dot, "  o%" PRIu32 " -> more%zu;\n", more[i].at, i);
		else
			sb_addf(&dot, "  more%zu -> o%" PRIu32 ";\n", i, more[i].at);
	}
	sb_adds(&dot, "}\n");
	if (render) {
		sb_add(&dotfile, file, (size_t)(ext - file));
		sb_adds(&dotfile, ".dot");
	} else {
		sb_adds(&dotfile, file);
	}
	if (write_file(sb_str(&dotfile), dot.buf, dot.len) < 0)
		goto out;
	json_object_set_new(r, "dot_file", json_target_cstr(sb_str(&dotfile)));
	json_object_set_new(r, "file", json_target_cstr(file));
	json_object_set_new(r, "format", json_string(render ? ext + 1 : "dot"));
	json_object_set_new(r, "nodes", json_integer((json_int_t)json_array_size(nodes)));
	json_object_set_new(r, "edges", json_integer((json_int_t)nedges));
	json_object_set_new(r, "direction", json_string(referents ? "referents" : "referrers"));
	json_object_set_new(r, "rendered", json_false());
	if (render) {
		struct strbuf cmd = STRBUF_INIT;

		sb_addf(&cmd, "dot -T%s %s -o %s", ext + 1, sb_str(&dotfile), file);
		json_object_set_new(r, "render_command", json_target_cstr(sb_str(&cmd)));
		sb_release(&cmd);
		if (!on_path("dot")) {
			ret = 0;
			goto out;
		}
		if (run_dot(ext + 1, sb_str(&dotfile), file) < 0)
			goto out;
		json_object_set_new(r, "rendered", json_true());
	}
	ret = 0;
out:
	sb_release(&dot);
	sb_release(&dotfile);
	return ret;
}

static int graph_referrers(struct cmd_ctx *ctx, const char *spec, uint64_t depth, uint64_t too_many,
			   const char *file)
{
	struct search q;
	struct hg_sub sub = {0};
	struct strbuf req = STRBUF_INIT;
	json_t *reply = NULL, *nodes = NULL, *labels = NULL;
	struct hg_root *roots;
	size_t nroots;
	uint32_t x;
	int ret = -1, dropped = 0;

	if (search_begin(ctx, &q, spec, 0) < 0)
		goto out;
	if (q.s.gone) {
		json_object_update(out_result(), q.s.begin);
		dropped = 1;
		ret = 0;
		goto out;
	}
	x = q.s.target;
	if (x == HG_NONE && q.s.type) {
		/* a type: its newest instance */
		for (uint32_t i = 0; i < q.s.g.nobjs; i++)
			if (q.s.g.type[i] == q.s.type && !(q.s.g.flags[i] & HG_OWN) &&
			    (x == HG_NONE || newer(&q, i, x)))
				x = i;
	}
	if (x == HG_NONE) {
		error("%s is not in the snapshot", esc(spec));
		goto out;
	}
	/* the roots only need their mark: expansion stops at them */
	tier0_roots(&q, &roots, &nroots);
	hg_search(&q.s.g, roots, nroots, &x, 1);
	free(roots);
	hg_backrefs(&q.s.g, x, (uint32_t)depth, (uint32_t)too_many, &sub);
	if (sub.n > GRAPH_NODES_MAX) {
		error("the graph has %zu nodes; fewer with --max-depth or --too-many", sub.n);
		goto out;
	}
	for (size_t i = 0; i < sub.n; i++)
		add_node_req(&req, sub.node[i], &q.s.g, i == 0);
	for (size_t i = 0; i < sub.nedge; i++) {
		uint32_t from = sub.node[sub.edge[i].from], to = sub.node[sub.edge[i].to];

		sb_addf(&req, "e %" PRId64 " %" PRId64 "\n",
			from < q.s.g.nobjs ? (int64_t)from : -1,
			to < q.s.g.nobjs ? (int64_t)to : -1);
	}
	if (req.len > DESCRIBE_MAX) {
		error("the graph is too big to label; fewer with --max-depth or --too-many");
		goto out;
	}
	if (hg_snap_describe(q.ag, sb_str(&req), 1, REPR_LIMIT, &reply) < 0)
		goto out;
	dropped = 1;
	nodes = json_array();
	for (size_t i = 0; i < sub.n; i++) {
		uint32_t node = sub.node[i];
		json_t *n = node_json(json_object_get(reply, "nodes"), node);

		if (q.s.g.flags[node] & HG_ROOT) {
			uint32_t tag = q.s.g.pedge[node];
			const struct root_info *ri = &q.roots[tag];

			json_object_set_new(n, "root", json_true());
			if (ri->kind == ROOT_FRAME) {
				struct strbuf sb = STRBUF_INIT;

				sb_addf(&sb, "%s() at %s:%d", ri->frame->func, ri->frame->file,
					ri->frame->line);
				json_object_set_new(n, "type", json_string("frame"));
				json_object_set_new(n, "repr", json_target_cstr(sb_str(&sb)));
				sb_release(&sb);
			}
		}
		json_array_append_new(nodes, n);
	}
	labels = json_array();
	for (size_t i = 0; i < sub.nedge; i++) {
		const json_t *e = json_array_get(json_object_get(reply, "edges"), i);
		uint32_t from = sub.node[sub.edge[i].from];
		struct strbuf label = STRBUF_INIT;

		if (json_is_array(e))
			sb_adds(&label, json_string_value(json_array_get(e, 1)));
		if (!label.len && (q.s.g.flags[from] & HG_ROOT) &&
		    q.roots[q.s.g.pedge[from]].kind == ROOT_FRAME)
			frame_label(&q, q.roots[q.s.g.pedge[from]].frame,
				    q.s.g.addr[sub.node[sub.edge[i].to]], &label);
		json_array_append_new(labels, json_target_cstr(sb_str(&label)));
		sb_release(&label);
	}
	ret = write_graph(file, nodes, sub.edge, labels, sub.nedge, sub.more, sub.nmore, 0);
out:
	if (!dropped && q.ag)
		hg_snap_drop(q.ag);
	json_decref(reply);
	json_decref(nodes);
	json_decref(labels);
	sb_release(&req);
	hg_sub_release(&sub);
	search_release(&q);
	return ret;
}

static int graph_referents(struct cmd_ctx *ctx, const char *spec, uint64_t depth, uint64_t too_many,
			   const char *file)
{
	struct agent_args a;
	struct agent *ag;
	struct hg_sub_edge *edges;
	struct hg_sub_more *more;
	json_t *reply, *labels, *e;
	size_t i, nedges, nmore;
	int ret;

	if (refs_agent(ctx, &ag) < 0)
		return -1;
	agent_args_init(&a, "graph_referents");
	agent_arg_str(&a, spec, strlen(spec));
	agent_arg_int(&a, (long long)depth);
	agent_arg_int(&a, (long long)too_many);
	agent_arg_int(&a, REPR_LIMIT);
	ret = agent_call(ag, &a, &reply);
	agent_args_release(&a);
	if (ret < 0)
		return -1;
	if (json_is_true(json_object_get(reply, "gone"))) {
		json_object_update(out_result(), reply);
		json_decref(reply);
		return 0;
	}
	nedges = json_array_size(json_object_get(reply, "edges"));
	nmore = json_array_size(json_object_get(reply, "more"));
	edges = xcalloc(nedges + 1, sizeof(*edges));
	more = xcalloc(nmore + 1, sizeof(*more));
	labels = json_array();
	json_array_foreach (json_object_get(reply, "edges"), i, e) {
		edges[i].from = (uint32_t)json_integer_value(json_array_get(e, 0));
		edges[i].to = (uint32_t)json_integer_value(json_array_get(e, 1));
		json_array_append(labels, json_array_get(e, 2));
	}
	json_array_foreach (json_object_get(reply, "more"), i, e) {
		more[i].at = (uint32_t)json_integer_value(json_array_get(e, 0));
		more[i].count = (uint32_t)json_integer_value(json_array_get(e, 1));
	}
	ret = write_graph(file, json_object_get(reply, "nodes"), edges, labels, nedges, more, nmore,
			  1);
	free(edges);
	free(more);
	json_decref(labels);
	json_decref(reply);
	return ret;
}

static int cmd_graph(struct cmd_ctx *ctx, int argc, char **argv)
{
	struct refs_opts o;
	uint64_t too_many = GRAPH_TOO_MANY_DEFAULT;
	int referents = 0;
	const char *file = NULL;

	if (parse_refs_opts(ctx->cmd, argc, argv, &o, 1, &too_many, &referents, &file) < 0)
		return -1;
	if (!file)
		return cmd_usage_error(ctx->cmd, "where to? -o FILE.dot (or .png, .svg)");
	if (!o.max_depth)
		o.max_depth = GRAPH_DEPTH_DEFAULT;
	if (referents)
		return graph_referents(ctx, o.spec, o.max_depth, too_many, file);
	return graph_referrers(ctx, o.spec, o.max_depth, too_many, file);
}

static void render_graph(const json_t *r)
{
	if (render_gone(r))
		return;
	if (json_is_true(json_object_get(r, "rendered")))
		out_printf("wrote %s (%lld nodes, %lld edges; Graphviz source in %s)\n",
			   esc_member(r, "file"), json_int_member(r, "nodes", 0),
			   json_int_member(r, "edges", 0), esc_member(r, "dot_file"));
	else if (json_object_get(r, "render_command"))
		out_printf("wrote %s (%lld nodes, %lld edges); Graphviz's dot is not installed: "
			   "apt-get install graphviz, then: %s\n",
			   esc_member(r, "dot_file"), json_int_member(r, "nodes", 0),
			   json_int_member(r, "edges", 0), esc_member(r, "render_command"));
	else
		out_printf("wrote %s (%lld nodes, %lld edges); render it with: dot -Tpng %s -o "
			   "graph.png\n",
			   esc_member(r, "file"), json_int_member(r, "nodes", 0),
			   json_int_member(r, "edges", 0), esc_member(r, "file"));
}

const struct cmd cmd_refs_cmds[] = {
    {
	.name = "sample",
	.usage = "sample TYPE [N]",
	.summary = "list N instances of TYPE (default 5, newest first) as handles $1, $2 and on",
	.help = "Handles name objects for the rest of the attach, across 'continue', without\n"
		"keeping them alive: a weak reference where the type allows one, else the\n"
		"address and type.  A handle whose object died says so.",
	.min_args = 1,
	.max_args = 2,
	.flags = CMD_NEEDS_PYTHON,
	.fn = cmd_sample,
	.render = render_sample,
    },
    {
	.name = "show",
	.usage = "show $N|0xADDR",
	.summary = "an object: type, size, refcount, what it alone keeps alive, referents",
	.help = "The referents are labelled with attribute names, dict keys and list indices,\n"
		"each with a handle of its own when it can be found again.  'keeps alive' counts\n"
		"the objects only this one holds (classes and modules never count), when fewer\n"
		"than 20000 objects must be looked at.",
	.min_args = 1,
	.max_args = 1,
	.flags = CMD_NEEDS_PYTHON,
	.fn = cmd_show,
	.render = render_show,
    },
    {
	.name = "refs",
	.usage = "refs $N|0xADDR|TYPE [--all] [--max-depth D]",
	.summary = "why is it still alive: the shortest chain of references from a root",
	.help = "Roots are module globals, the frames of every thread (a local variable of a\n"
		"running loop), gc.garbage, and what native code holds: an object with more\n"
		"references than referrers the collector can see.  What no root reaches is\n"
		"cyclic garbage.  pyleakdb's own objects never appear.\n"
		"refs TYPE shows its newest instance's chain and how many more are held the same\n"
		"way; --all lists every way (refs $N --all: every referrer's chain).  --max-depth\n"
		"D: only chains of at most D hops as printed.  The search is one pass over a\n"
		"snapshot of the whole heap, taken at a safe point.",
	.min_args = 1,
	.max_args = -1,
	.flags = CMD_NEEDS_PYTHON,
	.fn = cmd_refs,
	.render = render_refs,
    },
    {
	.name = "graph",
	.usage = "graph $N|0xADDR|TYPE [--refs|--referents] [--max-depth D] [--too-many K] "
		 "-o FILE",
	.summary = "a Graphviz picture of what refers to an object (or what it refers to)",
	.help =
	    "objgraph's show_backrefs and show_refs: nodes with their type and a short\n"
	    "repr, edges with their labels, 'N more' past --too-many (default 10), --max-depth\n"
	    "levels (default 3).  FILE.dot is Graphviz source; FILE.png, .svg or .pdf are\n"
	    "rendered with dot when it is installed.",
	.min_args = 1,
	.max_args = -1,
	.flags = CMD_NEEDS_PYTHON,
	.fn = cmd_graph,
	.render = render_graph,
    },
    {0},
};

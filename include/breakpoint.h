/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * breakpoint: stops that fire on memory (RSS thresholds) and on source
 * (FILE:LINE, FUNCTION), and the loop that runs the target until one fires.
 *
 * RSS breakpoints are checked from outside: pyleakdb reads /proc/PID/statm
 * every rss_interval while the target runs at full speed, with no hook in
 * it.  Source breakpoints live in the agent (src/agent/breakpoints.py): a
 * hit raises pyleakdb's trap signal at the hitting thread, which stops
 * there, inside the agent, with the GIL held: a safe point for whatever the
 * user asks next.
 *
 * A breakpoint that fired on RSS re-arms only once RSS has fallen below its
 * threshold again; a temporary one (tbreak) is deleted when it fires.
 */
#ifndef PYLEAKDB_BREAKPOINT_H
#define PYLEAKDB_BREAKPOINT_H

#include <jansson.h>
#include <stdint.h>

struct session;

enum bp_kind {
	BP_RSS,
	BP_LINE,
	BP_FUNC,
};

enum bp_rss_mode {
	RSS_ABOVE,   /* rss > N */
	RSS_GROWTH,  /* rss +N: N above what it was when set */
	RSS_PERCENT, /* rss > N% of the memory limit */
};

struct breakpoint {
	int id;
	enum bp_kind kind;
	int enabled;
	int temporary;
	unsigned long hits;
	char *spec; /* as the user gave it: "rss > 2G", "app.py:42" */
	/* RSS */
	enum bp_rss_mode rss_mode;
	uint64_t threshold; /* bytes */
	int rss_armed;	    /* fires only when armed; re-arms below the threshold */
	/* source */
	char *file; /* as resolved by the agent */
	int line;
	char *function;
	char *cond; /* Python, or NULL */
};

struct bpset {
	struct breakpoint *v;
	size_t n, cap;
	int next_id;
	uint64_t rss_interval_us;
	int agent_armed;    /* the agent's hooks are on in the target */
	int per_thread;	    /* hooks are per thread (trace functions, before 3.12) */
	uint64_t rss_cell;  /* where the agent reads the RSS we write, 0 when unknown */
	uint64_t heartbeat; /* written after the RSS: the agent's hooks watch it to know we live */
	int last_hit_id;    /* the source breakpoint of the last stop, for iter */
};

/* Why the target stopped. */
enum stop_kind {
	STOPPED_INTERRUPT, /* Ctrl-C */
	STOPPED_TIME,	   /* the duration asked for ran out */
	STOPPED_EXIT,	   /* the process ended */
	STOPPED_RSS,	   /* an RSS breakpoint */
	STOPPED_BREAK,	   /* a source breakpoint */
};

struct stop_info {
	enum stop_kind kind;
	int bp_id;
	uint64_t rss;	    /* at the stop */
	uint64_t threshold; /* RSS breakpoints */
	pid_t tid;	    /* the thread that hit, or ran, or held the GIL */
	json_t *hit; /* the agent's description of a source hit (file, line, function, source) */
};

/* The default poll interval: fine enough to stop within ~1 MiB at 1 GB/s, at a few percent of a
 * core. */
#define BP_RSS_INTERVAL_DEFAULT_US 250

void bpset_init(struct bpset *b);
void bpset_release(struct bpset *b);
struct breakpoint *bp_find(struct bpset *b, int id);

/* Parse "when rss > 2G", "rss > 500M", "rss +100M", "rss > 80%": 1 if it is an RSS spec,
 * 0 if not one, -1 (with an error) if it is a malformed one. */
int bp_parse_rss(const char *spec, enum bp_rss_mode *mode, uint64_t *value);

/* Add breakpoints; the source ones are armed in the target through the agent. */
int bp_add_rss(struct session *s, const char *spec, int temporary, struct breakpoint **out);
int bp_add_source(struct session *s, const char *where, const char *cond, int temporary,
		  struct breakpoint **out);
int bp_delete(struct session *s, int id);
int bp_enable(struct session *s, int id, int enabled);
int bp_condition(struct session *s, int id, const char *cond);

/* Take every hook out of the target (detach). */
int bp_remove_all(struct session *s);

/*
 * Let the target run until a breakpoint fires, Ctrl-C, timeout_us passes
 * (negative: no limit) or it exits.  The whole process is stopped again on
 * return, unless it ended.  stop->hit is the caller's to decref.
 */
int bp_run(struct session *s, int64_t timeout_us, struct stop_info *stop);

#endif

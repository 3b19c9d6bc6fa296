// SPDX-License-Identifier: GPL-3.0-or-later
/*
 * breakpoint: RSS and source breakpoints, and the run loop that watches
 * for them.  See include/breakpoint.h.
 */
#include <ctype.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "breakpoint.h"
#include "mem.h"
#include "procfs.h"
#include "pyframes.h"
#include "session.h"

/* How long the run loop sleeps when no RSS breakpoint needs polling. */
#define IDLE_SLICE_US (100 * 1000)
/* The longest sleep between two looks at the RSS while an RSS breakpoint is armed. */
#define RSS_SLICE_MAX_US (10 * 1000)
/* How fast, in bytes per microsecond, a target is assumed able to grow (4 GiB/s). */
#define RSS_FAST_RATE 4295
#define PERCENT_MAX   1000

void bpset_init(struct bpset *b)
{
	memset(b, 0, sizeof(*b));
	b->next_id = 1;
	b->rss_interval_us = BP_RSS_INTERVAL_DEFAULT_US;
}

static void bp_free_fields(struct breakpoint *bp)
{
	free(bp->spec);
	free(bp->file);
	free(bp->function);
	free(bp->cond);
}

void bpset_release(struct bpset *b)
{
	for (size_t i = 0; i < b->n; i++)
		bp_free_fields(&b->v[i]);
	free(b->v);
	bpset_init(b);
}

struct breakpoint *bp_find(struct bpset *b, int id)
{
	for (size_t i = 0; i < b->n; i++)
		if (b->v[i].id == id)
			return &b->v[i];
	return NULL;
}

static struct breakpoint *bp_new(struct bpset *b, enum bp_kind kind, const char *spec,
				 int temporary)
{
	struct breakpoint *bp;

	if (b->n == b->cap) {
		b->cap = b->cap ? b->cap * 2 : 8;
		b->v = xrealloc(b->v, b->cap * sizeof(*b->v));
	}
	bp = &b->v[b->n++];
	memset(bp, 0, sizeof(*bp));
	bp->id = b->next_id++;
	bp->kind = kind;
	bp->enabled = 1;
	bp->temporary = temporary;
	bp->spec = xstrdup(spec);
	return bp;
}

static void bp_remove_entry(struct bpset *b, int id)
{
	for (size_t i = 0; i < b->n; i++) {
		if (b->v[i].id != id)
			continue;
		bp_free_fields(&b->v[i]);
		memmove(&b->v[i], &b->v[i + 1], (b->n - i - 1) * sizeof(*b->v));
		b->n--;
		return;
	}
}

static int source_count(const struct bpset *b)
{
	int n = 0;

	for (size_t i = 0; i < b->n; i++)
		n += b->v[i].kind != BP_RSS;
	return n;
}

/* ----- RSS ----- */

static const char *skip_space(const char *p)
{
	while (isspace((unsigned char)*p))
		p++;
	return p;
}

int bp_parse_rss(const char *spec, enum bp_rss_mode *mode, uint64_t *value)
{
	const char *p = skip_space(spec);
	char num[64];
	size_t n;

	if (!strncmp(p, "when", 4) && (isspace((unsigned char)p[4]) || !p[4]))
		p = skip_space(p + 4);
	if (strncmp(p, "rss", 3) ||
	    (p[3] && !isspace((unsigned char)p[3]) && p[3] != '>' && p[3] != '+'))
		return 0;
	p = skip_space(p + 3);
	if (*p == '>') {
		*mode = RSS_ABOVE;
		p = skip_space(p + 1);
	} else if (*p == '+') {
		*mode = RSS_GROWTH;
		p = skip_space(p + 1);
	} else {
		return error("an RSS breakpoint is 'rss > SIZE', 'rss +SIZE' or 'rss > N%%' "
			     "(SIZE like 500M, 2G)");
	}
	n = strcspn(p, " \t");
	if (!n || n >= sizeof(num) || *skip_space(p + n))
		return error("expected one size after the operator, as in 'rss > 2G'");
	memcpy(num, p, n);
	num[n] = '\0';
	if (num[n - 1] == '%') {
		uint64_t pct;

		num[n - 1] = '\0';
		if (*mode != RSS_ABOVE || parse_u64(num, &pct) < 0 || !pct || pct > PERCENT_MAX)
			return error("a percentage goes with '>', as in 'rss > 80%%'");
		*mode = RSS_PERCENT;
		*value = pct;
		return 1;
	}
	if (parse_size(num, value) < 0 || !*value)
		return error(
		    "not a size: \"%s\" (use K, M, G or T, with or without iB: 500M, 2GiB)", num);
	return 1;
}

int bp_add_rss(struct session *s, const char *spec, int temporary, struct breakpoint **out)
{
	enum bp_rss_mode mode;
	uint64_t value, rss, threshold, limit;
	const char *from;
	struct breakpoint *bp;
	int r = bp_parse_rss(spec, &mode, &value);

	if (r <= 0)
		return r < 0 ? -1 : error("not an RSS breakpoint: %s", spec);
	if (proc_rss(s->task.pid, &rss) < 0)
		return error("cannot read the RSS of process %d", s->task.pid);
	switch (mode) {
	case RSS_ABOVE:
		threshold = value;
		break;
	case RSS_GROWTH:
		threshold = rss + value;
		break;
	case RSS_PERCENT:
		if (proc_memory_limit(s->task.pid, &limit, &from) < 0)
			return -1;
		threshold = limit / 100 * value;
		break;
	default:
		BUG("rss mode %d", (int)mode);
	}
	bp = bp_new(&s->bps, BP_RSS, spec, temporary);
	bp->rss_mode = mode;
	bp->threshold = threshold;
	/* it fires on crossing: from below */
	bp->rss_armed = rss < threshold;
	*out = bp;
	return 0;
}

/* ----- source ----- */

static int call_agent(struct session *s, struct agent_args *a, json_t **reply)
{
	struct agent *ag;
	int r;

	if (session_agent(s, &ag) < 0) {
		agent_args_release(a);
		return -1;
	}
	r = agent_call(ag, a, reply);
	agent_args_release(a);
	return r;
}

static int simple_call(struct session *s, const char *fn)
{
	struct agent_args a;
	json_t *reply;

	agent_args_init(&a, fn);
	if (call_agent(s, &a, &reply) < 0)
		return -1;
	json_decref(reply);
	return 0;
}

/* Run fn as every Python thread: per-thread trace functions before 3.12. */
static int each_thread(struct session *s, const char *fn)
{
	struct pythread *pts;
	json_t *results, *r;
	uint64_t *ts;
	size_t n, i;
	int ret = 0;

	if (py_threads(&s->pi, &pts, &n) < 0)
		return -1;
	ts = xcalloc(n ? n : 1, sizeof(*ts));
	for (i = 0; i < n; i++)
		ts[i] = pts[i].tstate;
	free(pts);
	if (agent_call_each_thread(&s->agent, fn, ts, n, &results) < 0)
		ret = -1;
	json_array_foreach (results, i, r) {
		const json_t *err = json_object_get(r, "error");

		if (json_is_string(err)) {
			ret = error("%s", json_string_value(err));
			break;
		}
	}
	json_decref(results);
	free(ts);
	return ret;
}

static int arm(struct session *s)
{
	struct agent_args a;
	json_t *reply;

	/* an agent call (bp_add) came first, so the injector has chosen its trap signal */
	if (!s->agent.ij.trap_sig)
		BUG("no trap signal after an agent call");
	agent_args_init(&a, "bp_arm");
	agent_arg_int(&a, s->agent.ij.trap_sig);
	if (call_agent(s, &a, &reply) < 0)
		return -1;
	s->bps.per_thread = json_is_true(json_object_get(reply, "per_thread"));
	json_decref(reply);
	if (s->bps.per_thread && !s->bps.agent_armed && each_thread(s, "arm_current") < 0) {
		simple_call(s, "bp_disarm");
		return -1;
	}
	s->bps.agent_armed = 1;
	return 0;
}

static int disarm(struct session *s)
{
	int ret = 0;

	if (!s->bps.agent_armed)
		return 0;
	if (simple_call(s, "bp_disarm") < 0)
		ret = -1;
	if (s->bps.per_thread && each_thread(s, "disarm_current") < 0)
		ret = -1;
	s->bps.agent_armed = 0;
	return ret;
}

/* "app.py:42" is a line; anything else names a function. */
static int split_where(const char *where, char **file, int *line)
{
	const char *colon = strrchr(where, ':');
	uint64_t v;

	*file = NULL;
	*line = 0;
	if (!colon || colon == where || !colon[1] ||
	    strspn(colon + 1, "0123456789") != strlen(colon + 1))
		return 0;
	if (parse_u64(colon + 1, &v) < 0 || !v || v > INT32_MAX)
		return error("not a line number: \"%s\"", colon + 1);
	*file = xstrndup(where, (size_t)(colon - where));
	*line = (int)v;
	return 1;
}

int bp_add_source(struct session *s, const char *where, const char *cond, int temporary,
		  struct breakpoint **out)
{
	struct agent_args a;
	struct breakpoint *bp;
	json_t *reply;
	char *file;
	int line, is_line = split_where(where, &file, &line), id;

	if (is_line < 0)
		return -1;
	if (session_require_python(s) < 0) {
		free(file);
		return -1;
	}
	id = s->bps.next_id;
	agent_args_init(&a, "bp_add");
	agent_arg_int(&a, id);
	agent_arg_str(&a, is_line ? "line" : "func", strlen(is_line ? "line" : "func"));
	agent_arg_str(&a, is_line ? file : where, strlen(is_line ? file : where));
	agent_arg_int(&a, line);
	if (cond)
		agent_arg_str(&a, cond, strlen(cond));
	else
		agent_arg_none(&a);
	free(file);
	if (call_agent(s, &a, &reply) < 0)
		return -1;
	bp = bp_new(&s->bps, is_line ? BP_LINE : BP_FUNC, where, temporary);
	bp->file = xstrdup(json_string_value(json_object_get(reply, "file")) ?: "?");
	bp->function = xstrdup(json_string_value(json_object_get(reply, "function")) ?: "?");
	bp->line = (int)json_integer_value(json_object_get(reply, "line"));
	bp->cond = cond ? xstrdup(cond) : NULL;
	json_decref(reply);
	if (arm(s) < 0) {
		int bad = bp->id;

		agent_args_init(&a, "bp_delete");
		agent_arg_int(&a, bad);
		if (call_agent(s, &a, &reply) == 0)
			json_decref(reply);
		bp_remove_entry(&s->bps, bad);
		return -1;
	}
	*out = bp_find(&s->bps, id);
	return 0;
}

int bp_delete(struct session *s, int id)
{
	struct breakpoint *bp = bp_find(&s->bps, id);
	struct agent_args a;
	json_t *reply;
	int source;

	if (!bp)
		return error("no breakpoint %d; see 'info breakpoints'", id);
	source = bp->kind != BP_RSS;
	bp_remove_entry(&s->bps, id);
	if (!source || !s->python_ok || s->task.gone)
		return 0;
	agent_args_init(&a, "bp_delete");
	agent_arg_int(&a, id);
	if (call_agent(s, &a, &reply) < 0)
		return -1;
	json_decref(reply);
	/* the last source breakpoint gone: no hook stays in the target */
	if (!source_count(&s->bps))
		return disarm(s);
	return 0;
}

int bp_enable(struct session *s, int id, int enabled)
{
	struct breakpoint *bp = bp_find(&s->bps, id);
	struct agent_args a;
	json_t *reply;
	uint64_t rss;

	if (!bp)
		return error("no breakpoint %d; see 'info breakpoints'", id);
	bp->enabled = enabled;
	if (bp->kind == BP_RSS) {
		if (enabled && proc_rss(s->task.pid, &rss) == 0)
			bp->rss_armed = rss < bp->threshold;
		return 0;
	}
	agent_args_init(&a, "bp_set");
	agent_arg_int(&a, id);
	agent_arg_int(&a, enabled);
	agent_arg_none(&a);
	agent_arg_int(&a, 0);
	if (call_agent(s, &a, &reply) < 0)
		return -1;
	json_decref(reply);
	return 0;
}

int bp_condition(struct session *s, int id, const char *cond)
{
	struct breakpoint *bp = bp_find(&s->bps, id);
	struct agent_args a;
	json_t *reply;

	if (!bp)
		return error("no breakpoint %d; see 'info breakpoints'", id);
	if (bp->kind == BP_RSS)
		return error("breakpoint %d is an RSS breakpoint: its condition is its threshold",
			     id);
	agent_args_init(&a, "bp_set");
	agent_arg_int(&a, id);
	agent_arg_none(&a);
	if (cond)
		agent_arg_str(&a, cond, strlen(cond));
	else
		agent_arg_none(&a);
	agent_arg_int(&a, 1);
	if (call_agent(s, &a, &reply) < 0)
		return -1;
	json_decref(reply);
	free(bp->cond);
	bp->cond = cond ? xstrdup(cond) : NULL;
	return 0;
}

int bp_remove_all(struct session *s)
{
	int ret = 0;

	while (s->bps.n)
		bp_remove_entry(&s->bps, s->bps.v[0].id);
	if (s->python_ok && !s->task.gone && s->bps.agent_armed && disarm(s) < 0)
		ret = -1;
	return ret;
}

/* ----- running ----- */

/* The RSS cell the agent reads for conditions: once, after it is installed. */
static void find_rss_cell(struct session *s)
{
	struct agent_args a;
	json_t *reply;

	if (s->bps.rss_cell || !s->bps.agent_armed)
		return;
	agent_args_init(&a, "rss_cell");
	if (call_agent(s, &a, &reply) < 0)
		return;
	s->bps.rss_cell = (uint64_t)json_integer_value(json_object_get(reply, "address"));
	if (s->bps.rss_cell)
		s->bps.rss_cell += (uint64_t)s->pi.L.bytes.sval;
	json_decref(reply);
}

/* A thread stopped on our trap signal: ask the agent whether it hit a breakpoint. */
static int check_hit(struct session *s, struct task_thread *thr, struct stop_info *stop)
{
	struct agent_args a;
	json_t *reply, *ids, *v;
	size_t i;
	int first = 0;

	s->agent.ij.hit_tid = thr->tid;
	thr->sig = 0;
	agent_args_init(&a, "bp_hit");
	if (call_agent(s, &a, &reply) < 0) {
		s->agent.ij.hit_tid = 0;
		return -1;
	}
	if (!json_is_true(json_object_get(reply, "hit"))) {
		/* someone else's SIGURG: it is delivered when the thread runs again */
		json_decref(reply);
		s->agent.ij.hit_tid = 0;
		thr = task_thread_by_tid(&s->task, thr->tid);
		if (thr) {
			thr->stop = STOP_SIGNAL;
			thr->sig = s->agent.ij.trap_sig;
		}
		return 0;
	}
	ids = json_object_get(reply, "ids");
	json_array_foreach (ids, i, v) {
		struct breakpoint *bp = bp_find(&s->bps, (int)json_integer_value(v));

		if (!bp)
			continue;
		bp->hits++;
		if (!first)
			first = bp->id;
	}
	stop->kind = STOPPED_BREAK;
	stop->bp_id = first;
	stop->tid = thr->tid;
	stop->hit = reply;
	s->bps.last_hit_id = first;
	proc_rss(s->task.pid, &stop->rss);
	return 1;
}

/* Another thread may have hit as well while we stopped everyone: report it next. */
static int pending_hit(struct session *s, struct stop_info *stop)
{
	int sig = s->agent.ij.trap_sig;

	if (!s->bps.agent_armed || !sig)
		return 0;
	for (size_t i = 0; i < s->task.nthr; i++) {
		struct task_thread *thr = s->task.thr[i];
		int r;

		if (thr->state != THR_STOPPED || thr->stop != STOP_SIGNAL || thr->sig != sig ||
		    thr->tid == s->agent.ij.hit_tid)
			continue;
		r = check_hit(s, thr, stop);
		if (r != 0)
			return r;
	}
	return 0;
}

static void finish_temporary(struct session *s, struct stop_info *stop)
{
	struct breakpoint *bp = bp_find(&s->bps, stop->bp_id);

	if (bp && bp->temporary)
		bp_delete(s, bp->id);
}

/* CPU time of every thread as the target is let go, to tell later which one ran. */
struct cpu_sample {
	pid_t tid;
	uint64_t ns;
};

static struct cpu_sample *sample_cpu(struct task *t, size_t *n)
{
	struct cpu_sample *v = xcalloc(t->nthr ? t->nthr : 1, sizeof(*v));

	*n = 0;
	for (size_t i = 0; i < t->nthr; i++)
		if (proc_thread_cpu_ns(t->pid, t->thr[i]->tid, &v[*n].ns) == 0)
			v[(*n)++].tid = t->thr[i]->tid;
	return v;
}

/*
 * The thread that was doing the work when RSS crossed: the GIL holder, else
 * the one that spent the most CPU time since the target was let go, else a
 * running one.
 */
static pid_t busy_thread(struct session *s, const struct cpu_sample *before, size_t nbefore)
{
	struct pythread *pts;
	size_t n;
	pid_t tid = 0;
	uint64_t most = 0;

	if (py_threads(&s->pi, &pts, &n) == 0) {
		for (size_t i = 0; i < n && !tid; i++)
			if (pts[i].holds_gil)
				tid = pts[i].tid;
		free(pts);
	}
	for (size_t i = 0; i < nbefore && !tid; i++) {
		uint64_t now;

		if (proc_thread_cpu_ns(s->task.pid, before[i].tid, &now) == 0 &&
		    now - before[i].ns > most && now > before[i].ns)
			most = now - before[i].ns;
	}
	for (size_t i = 0; i < nbefore && !tid && most; i++) {
		uint64_t now;

		if (proc_thread_cpu_ns(s->task.pid, before[i].tid, &now) == 0 &&
		    now > before[i].ns && now - before[i].ns == most)
			tid = before[i].tid;
	}
	for (size_t i = 0; i < s->task.nthr && !tid; i++)
		if (s->task.thr[i]->sched_state == 'R')
			tid = s->task.thr[i]->tid;
	return tid ? tid : s->task.pid;
}

/*
 * How long to sleep before the next look at the RSS.  Each look costs a
 * wake-up of pyleakdb (tens of microseconds of CPU).  Far below every armed
 * threshold there is no hurry: the target cannot reach the nearest one before
 * distance / rate, rate being RSS_FAST_RATE or twice the fastest growth seen,
 * so the next look may wait that long, up to RSS_SLICE_MAX_US.  Near one, the
 * user's interval.  The overshoot stays what the interval gives, and the CPU
 * pyleakdb burns while a leak is still far from its threshold is small.
 */
static int64_t rss_slice(const struct bpset *b, uint64_t rss, uint64_t fastest)
{
	uint64_t near = UINT64_MAX,
		 rate = fastest > RSS_FAST_RATE / 2 ? 2 * fastest : RSS_FAST_RATE;
	uint64_t us;

	if (!rss)
		return (int64_t)b->rss_interval_us; /* not looked at yet */
	for (size_t i = 0; i < b->n; i++) {
		const struct breakpoint *bp = &b->v[i];

		if (bp->kind == BP_RSS && bp->enabled && bp->rss_armed && bp->threshold > rss &&
		    bp->threshold - rss < near)
			near = bp->threshold - rss;
	}
	us = near / rate;
	if (us > RSS_SLICE_MAX_US)
		us = RSS_SLICE_MAX_US;
	if (us < b->rss_interval_us)
		us = b->rss_interval_us;
	return (int64_t)us;
}

int bp_run(struct session *s, int64_t timeout_us, struct stop_info *stop)
{
	struct task *t = &s->task;
	uint64_t start = now_us(), rss = 0, rss_at = 0, fastest = 0;
	int statm = -1, need_rss = 0, ret = -1, r;
	struct cpu_sample *cpu = NULL;
	size_t ncpu = 0;
	sigset_t catch;

	memset(stop, 0, sizeof(*stop));
	if (session_require_target(s) < 0)
		return -1;
	for (size_t i = 0; i < s->bps.n; i++)
		need_rss |= s->bps.v[i].kind == BP_RSS && s->bps.v[i].enabled;
	if (s->bps.agent_armed) {
		find_rss_cell(s);
		need_rss |= s->bps.rss_cell != 0;
	}
	/* a thread that hit at the same time as the last one is the next stop */
	r = pending_hit(s, stop);
	if (r)
		return r < 0 ? -1 : 0;
	sigemptyset(&catch);
	if (s->bps.agent_armed && s->agent.ij.trap_sig)
		sigaddset(&catch, s->agent.ij.trap_sig);
	if (need_rss && (statm = proc_rss_open(t->pid)) < 0)
		return error("cannot read the RSS of process %d", t->pid);
	s->agent.ij.hit_tid = 0;
	s->bps.last_hit_id = 0; /* until the next hit, the target stands at no breakpoint */
	if (need_rss)
		cpu = sample_cpu(t, &ncpu);
	if (task_resume_all(t) < 0)
		goto out;
	for (;;) {
		int64_t slice = need_rss ? rss_slice(&s->bps, rss, fastest) : IDLE_SLICE_US;
		struct task_event ev;

		if (timeout_us >= 0) {
			int64_t left = timeout_us - (int64_t)(now_us() - start);

			if (left <= 0) {
				stop->kind = STOPPED_TIME;
				if (task_stop_all(t) == 0)
					ret = 0;
				break;
			}
			if (left < slice)
				slice = left;
		}
		if (task_wait(t, &catch, slice, &ev) < 0)
			goto out;
		if (ev.kind == TEV_EXITED) {
			stop->kind = STOPPED_EXIT;
			session_ended(s);
			ret = 0;
			break;
		}
		if (ev.kind == TEV_INTERRUPTED) {
			stop->kind = STOPPED_INTERRUPT;
			if (task_stop_all(t) == 0)
				ret = 0;
			break;
		}
		if (ev.kind == TEV_EXEC) {
			t->exec_seen = 0;
			task_stop_all(t);
			error("the process replaced its program (exec)");
			goto out;
		}
		if (ev.kind == TEV_SIGNAL) {
			pid_t tid = ev.thr->tid;
			struct task_thread *thr;

			if (task_stop_all(t) < 0)
				goto out;
			thr = task_thread_by_tid(t, tid);
			r = thr ? check_hit(s, thr, stop) : 0;
			if (r < 0)
				goto out;
			if (r > 0) {
				finish_temporary(s, stop);
				ret = 0;
				break;
			}
			if (task_resume_all(t) < 0)
				goto out;
			continue;
		}
		/* the agent's hooks listen for this heartbeat: silence means pyleakdb died */
		if (s->bps.rss_cell) {
			s->bps.heartbeat++;
			task_poke(t, s->bps.rss_cell + sizeof(uint64_t), &s->bps.heartbeat,
				  sizeof(s->bps.heartbeat));
		}
		{
			uint64_t before = rss, at = now_us();

			if (statm < 0 || proc_rss_fd(statm, &rss) < 0)
				continue;
			/* bytes per microsecond, the fastest the target grew between two looks */
			if (before && rss > before && at > rss_at &&
			    (rss - before) / (at - rss_at) > fastest)
				fastest = (rss - before) / (at - rss_at);
			rss_at = at;
		}
		if (s->bps.rss_cell)
			task_poke(t, s->bps.rss_cell, &rss, sizeof(rss));
		for (size_t i = 0; i < s->bps.n; i++) {
			struct breakpoint *bp = &s->bps.v[i];

			if (bp->kind != BP_RSS || !bp->enabled)
				continue;
			if (!bp->rss_armed) {
				/* below again: the next crossing counts */
				bp->rss_armed = rss < bp->threshold;
				continue;
			}
			if (rss <= bp->threshold)
				continue;
			if (task_stop_all(t) < 0)
				goto out;
			stop->kind = STOPPED_RSS;
			stop->bp_id = bp->id;
			stop->threshold = bp->threshold;
			/* the figure at the moment everything stood still */
			if (proc_rss_fd(statm, &stop->rss) < 0)
				stop->rss = rss;
			bp->hits++;
			bp->rss_armed = 0;
			stop->tid = busy_thread(s, cpu, ncpu);
			finish_temporary(s, stop);
			ret = 0;
			goto out;
		}
	}
out:
	free(cpu);
	if (statm >= 0)
		close(statm);
	if (!t->gone && ret == 0)
		session_sync(s);
	return ret;
}

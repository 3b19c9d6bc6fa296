# SPDX-License-Identifier: GPL-3.0-or-later
"""Breakpoints on every interpreter: RSS breakpoints, source breakpoints
(FILE:LINE, FUNCTION, conditions, tbreak, disable/enable/delete), iter, and
what is left of them in the target after detach, Ctrl-C and a pyleakdb
killed with SIGKILL.

The target, targets/leak_loop.py, leaks in a loop (in its main thread, in a
worker thread, or in a thread it starts only when told to) and tells the test
what one turn of its loop leaks: before it says it is ready, it takes a census
of gc.get_objects() at the same place of a few consecutive turns and checks
that every turn grew the same.  Its collector is disabled (a collection
between two stops would untrack tuples and dicts: growth nobody can
foresee), so consecutive stops at any one line of the loop must see exactly
that growth, pyleakdb's own objects left out.  With --rss it leaks 64 KiB
anonymous mappings instead (written: resident), one per turn.

A control thread of the target answers commands on a FIFO; "state" tells how
the program sees itself: the trace function of each of its threads,
threading's trace hook, the sys.monitoring tools, its modules and threads.
After every detach (and after pyleakdb is killed) that must be as it was at
the target's start, its output (one number per turn, 1, 2, 3...) must go on
with no gap, and nothing may have been printed on its stderr.
"""
import json
import os
import re
import signal
import time

import pytest

from conftest import (PYLEAKDB_TIMEOUT, assert_free, is_alive, thread_ids, thread_states,
                      wait_for)

SCRIPT = "leak_loop.py"
KiB, MiB = 1 << 10, 1 << 20
# A breakpoint the loop runs through every turn (every 10 ms, every 2 ms with --rss)
# must stop the target long before this: a bound for a run that must end at a
# breakpoint, so that a lost breakpoint fails the test instead of hanging it.
STOP_WITHIN = "10s"
STOP_TIMEOUT = 60
# How long the hooks may stay in the target after pyleakdb was killed: the
# documented figure is 2 to 3 s (a heartbeat check); this is several times that.
ABANDON_WITHIN = 20
# The overshoot allowed past an RSS threshold.  leak_loop.py --rss grows by one
# 64 KiB chunk every ~2 ms (32 MiB/s at most, less on a loaded machine, which slows
# it as well), and pyleakdb polls /proc/PID/statm every 250 us: it should stop within
# a chunk or two, and pyleakdb promises about 1 MiB plus one allocation chunk.  We
# allow 4 MiB plus a chunk: ~125 ms of the target's full-speed growth, enough for a
# poll delayed by a busy 2-core machine, but a breakpoint that fired late by more
# than that (polling at a coarse interval, stopping the threads late, or not
# stopping until something else happens) fails, and one that fired early (a wrong
# unit or threshold) fails the lower bound.
RSS_BOUND = 4 * MiB
# Two reads of /proc/PID/statm of a stopped process may differ: the kernel's RSS
# counters are per-CPU, folded in now and then.
RSS_SLACK = 1 * MiB


# ----- the target ------------------------------------------------------------------------

def statm_rss(pid):
    with open("/proc/%d/statm" % pid) as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def short(type_name):
    return type_name.rsplit(".", 1)[-1]


class Loop(object):
    """A leak_loop.py process: its ready file, its FIFO, its output."""

    def __init__(self, t, python):
        self.t = t
        self.python = python
        self.pid = t.pid
        self.info = t.ready
        self.file = self.info["file"]
        self.lines = self.info["lines"]
        self.dir = os.path.dirname(t.ready_path)
        self.seq = 0
        self.start = self.info["start"]
        assert self.clean_problems(self.start, self.start["threads"]) == [], self.start

    @property
    def looper_tid(self):
        return self.info["threads"]["looper"]

    def where(self, key):
        """FILE:LINE of a marked line, the file named as a user would: by its base name."""
        return "%s:%d" % (SCRIPT, self.lines[key])

    def source(self, line):
        with open(self.file) as f:
            return f.read().split("\n")[line - 1]

    def function(self, key):
        """The name pyleakdb shows for the code of a marked line: the qualified name
        where the interpreter has one (3.11+), else co_name."""
        if key in ("def", "step", "step_append"):
            return "Leaker.step" if self.python.version >= (3, 11) else "step"
        return "looper"

    def per_turn(self):
        """What one turn leaks, as the target measured it: {type: delta}."""
        assert self.info["stable"], \
            "the target's turns did not all grow the same: %r" % self.info["deltas"]
        pt = self.info["per_turn"]
        assert pt.get("__main__.Item") == self.info["n_item"] and \
            pt.get("__main__.Record") == 1, pt
        return pt

    # the FIFO
    def send(self, word):
        self.seq += 1
        line = "%d %s\n" % (self.seq, word)
        fd = os.open(self.info["fifo"], os.O_WRONLY | os.O_NONBLOCK)
        try:
            assert os.write(fd, line.encode()) == len(line)
        finally:
            os.close(fd)
        return self.seq

    def reply(self, seq):
        path = os.path.join(self.dir, "reply-%d-%d.json" % (self.pid, seq))
        if not os.path.exists(path):
            return None
        with open(path) as f:
            o = json.load(f)
        assert "error" not in o, o
        return o

    def request(self, word, timeout=60):
        """Ask the free-running target; its reply."""
        seq = self.send(word)
        return wait_for(lambda: self.reply(seq) or self._dead(), timeout,
                        "the target's reply to %r" % word)

    def request_attached(self, s, word, timeout=60):
        """The same while pyleakdb session s holds the target: it runs a little at a time."""
        seq = self.send(word)
        deadline = time.time() + timeout
        while True:
            s.ok("continue 100ms")
            r = self.reply(seq)
            if r:
                return r
            if time.time() > deadline:
                pytest.fail("no reply from the target to %r under 'continue'" % word)

    def _dead(self):
        if not is_alive(self.pid):
            pytest.fail("the target died (exit %r); stderr:\n%s"
                        % (self.t.popen.poll(), self.t.errors()))
        return None

    # its output
    def turn(self):
        lines = self.t.lines()
        return int(lines[-1]) if lines else 0

    def wait_turns(self, n, timeout=30):
        start = self.turn()
        wait_for(lambda: self.turn() >= start + n or self._dead(), timeout,
                 "the target to run %d more turns of its loop" % n)

    def assert_output(self):
        """It printed 1, 2, 3... with no gap or repeat, nothing on stderr, and lives."""
        lines = self.t.lines()
        bad = [(k, x) for k, x in enumerate(lines, 1) if x != str(k)]
        assert not bad, "the target's output is not 1, 2, 3...: first difference %r" % (bad[0],)
        assert self.t.errors() == "", "the target printed on stderr:\n" + self.t.errors()
        assert self.t.popen.poll() is None, "the target ended: %r" % self.t.popen.poll()

    # how it sees itself
    @staticmethod
    def clean_problems(st, threads):
        """What in a state reply shows a hook, module or thread of pyleakdb's."""
        problems = []
        for k in ("looper_trace", "control_trace", "thread_hook", "profile_hook", "getprofile"):
            if st.get(k) is not None:
                problems.append("%s is %s" % (k, st[k]))
        if st["monitoring"] is not None and any(x is not None for x in st["monitoring"]):
            problems.append("sys.monitoring tools in use: %r" % st["monitoring"])
        if st["pyleakdb_modules"]:
            problems.append("modules %r" % st["pyleakdb_modules"])
        if st["threads"] != sorted(threads):
            problems.append("threads %r, expected %r" % (st["threads"], sorted(threads)))
        return problems

    def state_problems(self, st, threads=None):
        problems = self.clean_problems(st, threads or self.start["threads"])
        for k in ("modules", "signals", "gc_enabled"):
            if st[k] != self.start[k]:
                problems.append("%s: %r at the start, %r now" % (
                    k, self.start[k], st[k]) if k != "modules" else "modules: new %r, gone %r" % (
                    sorted(set(st[k]) - set(self.start[k])),
                    sorted(set(self.start[k]) - set(st[k]))))
        return problems

    def assert_clean(self, threads=None):
        """After pyleakdb has gone (detached or killed): free, untraced, unhooked, and
        going on as before."""
        assert_free(self.pid)
        st = self.request("state")
        problems = self.state_problems(st, threads)
        assert not problems, "pyleakdb left the target changed: " + "; ".join(problems)
        self.wait_turns(2)
        self.assert_output()
        return st


def start_loop(target, python, *args):
    return Loop(target(SCRIPT, python, *args), python)


# ----- pyleakdb ------------------------------------------------------------------------------

class Session(object):
    """pyleakdb --json -p PID with commands on a pipe."""

    def __init__(self, json_session, pid):
        self.pid = pid
        self.s = json_session("-p", pid)
        o = self.s.read()
        assert o["ok"] is True, o
        self.popen = self.s.popen

    def raw(self, line, timeout=PYLEAKDB_TIMEOUT):
        return self.s.cmd(line, timeout)

    def ok(self, line, timeout=PYLEAKDB_TIMEOUT):
        o = self.raw(line, timeout)
        assert o["ok"] is True and not o["errors"], o
        return o["result"]

    def fails(self, line):
        """A command that must fail with one error, and nothing else."""
        o = self.raw(line)
        assert o["ok"] is False and len(o["errors"]) == 1, o
        return o["errors"][0]

    def eval(self, expr):
        return self.ok("eval " + expr)["repr"]

    def stop_at(self, bp):
        """continue: the target must stop at breakpoint bp."""
        r = self.ok("continue " + STOP_WITHIN, timeout=STOP_TIMEOUT)
        assert r["stopped"] == "breakpoint" and r["breakpoint"] == bp, \
            "breakpoint %d did not stop the target (within %s): %r" % (bp, STOP_WITHIN, r)
        return r

    def runs_on(self, duration="300ms"):
        """continue DURATION: nothing may stop the target."""
        r = self.ok("continue " + duration)
        assert r["stopped"] == "time", "the target stopped: %r" % r
        return r

    def breakpoints(self):
        return dict((b["id"], b) for b in self.ok("info breakpoints")["breakpoints"])

    def close(self):
        assert self.s.close() == 0


def human(pyleakdb, pid, *cmds, **kw):
    """pyleakdb --batch -p PID -ex CMD...: the Result."""
    args = ["-q", "--batch", "-p", pid]
    for c in cmds:
        args += ["-ex", c]
    return pyleakdb(*args, timeout=kw.get("timeout", STOP_TIMEOUT))


def check_stop(stop, lp, key, tid=None):
    """A source breakpoint's stop, as --json shows it."""
    line = lp.lines[key]
    assert stop["stopped"] == "breakpoint", stop
    assert (stop["file"], stop["line"], stop["function"]) == (lp.file, line, lp.function(key)), stop
    assert stop["source"] == lp.source(line), stop
    assert stop["pid"] == lp.pid and stop["tid"] == (tid or lp.looper_tid), stop
    assert isinstance(stop["rss"], int) and stop["rss"] > 0, stop
    threads = dict((t["tid"], t) for t in stop["threads"])
    hit = threads.get(stop["tid"])
    assert hit and hit["holds_gil"] is True, stop
    inner = hit["innermost"]
    assert (inner["file"], inner["line"], inner["function"]) == (lp.file, line, lp.function(key)), \
        "the hitting thread's innermost frame is not the breakpoint's: %r" % hit
    assert set(threads) <= set(thread_ids(lp.pid)), stop
    assert stop["events"] == [{"event": "continuing"}], stop


def expected_rows(per_turn):
    """[(type, delta)] as growth orders them: the biggest growth first, then by name."""
    rows = [(t, d) for t, d in per_turn.items() if d > 0]
    return sorted(rows, key=lambda r: (-r[1], r[0]))


def check_iterations(its, n, per_turn, first=1):
    """iter's lines: each the target's own per-turn growth, exactly."""
    want = expected_rows(per_turn)
    assert [x["iteration"] for x in its] == list(range(first, first + n)), its
    prev = None
    for x in its:
        got = [(r["type"], r["delta"]) for r in x["growth"]]
        assert got == want[:6], \
            "iteration %d grew %r; one turn of the target's loop grows %r" % (
                x["iteration"], got, want)
        assert x["types_grown"] == len(want), x
        if prev is not None:
            counts = dict((r["type"], r["count"]) for r in prev["growth"])
            for r in x["growth"]:
                assert r["count"] == counts[r["type"]] + r["delta"], (prev, x)
            assert x["rss_change"] == x["rss"] - prev["rss"], (prev, x)
        prev = x


def all_stopped_by(pid, tracer):
    states = thread_states(pid)
    return states and all(s == ("t", tracer) for s in states.values())


# ----- RSS breakpoints ---------------------------------------------------------------------------

@pytest.mark.parametrize("where", ["main", "worker"])
def test_rss_breakpoint(python, where, target, json_session, pyleakdb):
    """break when rss > X: stops within the overshoot bound, the report names the
    breakpoint, RSS and overshoot, with stacks and instructions; growth at the stop
    names the leaking type; it re-arms only once RSS has come back below."""
    lp = Loop(target(SCRIPT, python, "--rss", "--where", where), python)
    s = Session(json_session, lp.pid)
    s.ok("growth 5")  # the baseline
    rss0 = statm_rss(lp.pid)
    threshold = (rss0 + 16 * MiB) // KiB * KiB
    b = s.ok("break when rss > %dK" % (threshold // KiB))
    assert b == dict(b, id=1, kind="rss", temporary=False, threshold=threshold, armed=True), b
    assert abs(b["rss"] - rss0) <= RSS_SLACK, (b, rss0)

    st = s.ok("continue 30s", timeout=STOP_TIMEOUT)
    assert st["stopped"] == "rss", \
        "RSS never crossed %d, or pyleakdb missed it: %r" % (threshold, st)
    assert (st["breakpoint"], st["threshold"]) == (1, threshold), st
    assert st["overshoot"] == st["rss"] - threshold, st
    assert 0 < st["overshoot"] <= RSS_BOUND + lp.info["chunk"], \
        "stopped %d bytes past the threshold (bound %d)" % (st["overshoot"],
                                                            RSS_BOUND + lp.info["chunk"])
    # everything stands still: RSS is what the report says (give or take what the
    # kernel's per-CPU RSS counters had not folded in yet)
    now = statm_rss(lp.pid)
    assert abs(now - st["rss"]) <= RSS_SLACK, (now, st)
    assert all_stopped_by(lp.pid, s.popen.pid), thread_states(lp.pid)
    # who was doing what: known threads, a merged stack and the instruction for each
    tids = set(thread_ids(lp.pid))
    assert st["tid"] in tids and set(t["tid"] for t in st["threads"]) <= tids, st
    assert st["stacks"], st
    for stack in st["stacks"]:
        assert re.match(r"^0x[0-9a-f]+: \S", stack["instruction"]), stack
    assert "rss_change" not in st, "the first stop of this attach has no previous one: %r" % st

    # growth names the leak, and its count is what made RSS grow (the rest is the
    # interpreter's own).  The other threads run while pyleakdb's agent does (they
    # cannot run Python but at the switch interval): the looper may have made a few
    # more since the stop, so the growth lies between the RSS at the stop and after.
    g = s.ok("growth 5")
    rss1 = statm_rss(lp.pid)
    top = g["rows"][0]
    assert top["type"] == "__main__.Blob", g
    chunk = lp.info["chunk"]
    assert st["rss"] - rss0 - 2 * MiB <= top["delta"] * chunk <= rss1 - rss0 + 2 * MiB, \
        (g, st, rss0, rss1)

    bp = s.breakpoints()[1]
    assert bp == dict(bp, hits=1, armed=False, enabled=True,
                      spec="when rss > %dK" % (threshold // KiB)), bp
    # still above the threshold: it does not fire again...
    ran = s.runs_on()
    assert ran["rss_change"] == ran["rss"] - st["rss"], (st, ran)
    assert s.breakpoints()[1]["hits"] == 1
    # ... until RSS has come back below it and crosses it again
    seq = lp.send("free")
    st2 = s.ok("continue 30s", timeout=STOP_TIMEOUT)
    freed = lp.reply(seq)
    assert freed and freed["freed"] > 0 and freed["rss"] < threshold, \
        "the target's RSS did not fall below the threshold: %r" % freed
    assert st2["stopped"] == "rss" and st2["breakpoint"] == 1, st2
    assert 0 < st2["overshoot"] <= RSS_BOUND + lp.info["chunk"], st2
    assert st2["rss_change"] == st2["rss"] - ran["rss"], (ran, st2)
    assert s.breakpoints()[1]["hits"] == 2
    s.close()
    lp.assert_clean()

    # the human form, and the one-shot 'tbreak rss +SIZE' (from now)
    r = human(pyleakdb, lp.pid, "tbreak rss +8M", "continue 30s", "info breakpoints")
    assert r.returncode == 0, r
    m = re.search(r"^Temporary breakpoint 1: when RSS > ([\d.]+ \S+) \(now [\d.]+ \S+\)$",
                  r.out, re.M)
    assert m, r
    assert re.search(r"^rss breakpoint 1: %s crossed \(\+[\d.]+ \S+ over\) in thread \d+ \S+$"
                     % re.escape(m.group(1)), r.out, re.M), r
    assert re.search(r"^RSS [\d.]+ \S+", r.out, re.M), r
    assert re.search(r"^    => 0x[0-9a-f]+: \S", r.out, re.M), "no instruction shown: %r" % r
    assert "\nNo breakpoints.\nDetached from process %d.\n" % lp.pid in r.out, r
    lp.assert_clean()


def test_rss_breakpoint_specs(debian_python, target, json_session, pyleakdb):
    """The ways to write an RSS breakpoint, and their thresholds to the byte."""
    lp = start_loop(target, debian_python)
    s = Session(json_session, lp.pid)
    rss = statm_rss(lp.pid)
    specs = [
        ("break when rss > 2G", 2 << 30),
        ("break rss > 500M", 500 * MiB),
        ("break rss>1.5GiB", 3 << 29),
        ("break rss > 3000000K", 3000000 * KiB),
        ("break rss > 1T", 1 << 40),
        ("tbreak rss > 700MB", 700 * MiB),
        ("break rss > 123456789", 123456789),
    ]
    for i, (c, want) in enumerate(specs, 1):
        b = s.ok(c)
        assert b == dict(b, id=i, kind="rss", threshold=want, armed=True,
                         temporary=c.startswith("tbreak")), (c, b)
    b = s.ok("break rss +100M")
    assert abs(b["threshold"] - (rss + 100 * MiB)) <= RSS_SLACK, (b, rss)
    # a percentage of the memory limit: the cgroup's, else the machine's
    limit = memory_limit(lp.pid)
    b = s.ok("break rss > 80%")
    assert abs(b["threshold"] - limit * 80 // 100) <= 100, (b, limit)
    # already above: armed only once RSS has been below it
    b = s.ok("break rss > 1K")
    assert b["armed"] is False, b
    s.runs_on()
    info = s.ok("info breakpoints")["breakpoints"]
    assert [x["id"] for x in info] == list(range(1, len(specs) + 4)), info
    assert all(x["hits"] == 0 and x["kind"] == "rss" for x in info), info
    assert s.ok("delete")["deleted"] == [x["id"] for x in info]
    assert s.ok("info breakpoints")["breakpoints"] == []
    s.close()

    r = human(pyleakdb, lp.pid, "break when rss > 2G", "break rss > 1K", "info breakpoints")
    assert r.returncode == 0, r
    assert "Breakpoint 1: when RSS > 2.00 GiB (now " in r.out, r
    assert "RSS is already above it: the breakpoint fires when RSS comes back below" in r.out, r
    assert re.search(r"^1\s+rss\s+keep\s+y\s+0\s+rss > 2\.00 GiB$", r.out, re.M), r
    assert re.search(r"^2\s+rss\s+keep\s+y\s+0\s+rss > 1\.00 KiB \(re-arms below it\)$",
                     r.out, re.M), r
    lp.assert_clean()


def memory_limit(pid):
    """cgroup v2 memory.max, v1 memory.limit_in_bytes (when it is one), else MemTotal."""
    with open("/proc/%d/cgroup" % pid) as f:
        for line in f:
            hid, ctrl, path = line.rstrip("\n").split(":", 2)
            if hid == "0" and ctrl == "":
                p = "/sys/fs/cgroup%s/memory.max" % path
            elif "memory" in ctrl.split(","):
                p = "/sys/fs/cgroup/memory%s/memory.limit_in_bytes" % path
            else:
                continue
            try:
                with open(p) as g:
                    v = g.read().strip()
            except OSError:
                continue
            if v != "max" and int(v) < (1 << 62):
                return int(v)
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * KiB
    pytest.fail("no memory limit")


# ----- iter ------------------------------------------------------------------------------

@pytest.mark.parametrize("where,body", [("main", "inline"), ("worker", "inline"),
                                        ("main", "call")],
                         ids=["main", "worker", "call"])
def test_iter(python, where, body, target, json_session, pyleakdb):
    """iter on the loop's line (in the main thread, in a worker, or inside the function
    the loop calls) reports, for each iteration, exactly what one turn leaks as the
    target measured it; growth --since-iteration the whole table."""
    lp = start_loop(target, python, "--where", where, "--body", body)
    per_turn = lp.per_turn()
    key = "loop" if body == "inline" else "step_append"
    s = Session(json_session, lp.pid)
    b = s.ok("break " + lp.where(key))
    assert b == dict(b, id=1, kind="line", temporary=False, file=lp.file,
                     line=lp.lines[key], function=lp.function(key)), b
    stop = s.stop_at(1)
    check_stop(stop, lp, key)
    i0 = int(s.eval("i"))

    it = s.ok("iter 3")
    assert "start" not in it and it["breakpoint"] == 1, it
    check_iterations(it["iterations"], 3, per_turn)
    assert [e["iteration"] for e in it["events"]] == [1, 2, 3], it
    assert int(s.eval("i")) == i0 + 3, "iter 3 did not run the loop 3 times"
    full = s.ok("growth --since-iteration 1000")
    assert dict((r["type"], r["delta"]) for r in full["rows"]) == \
        dict(expected_rows(per_turn)), (full, per_turn)
    last = dict((r["type"], r["count"]) for r in it["iterations"][-1]["growth"])
    assert all(r["count"] == last[r["type"]] for r in full["rows"] if r["type"] in last), (full, it)
    assert s.breakpoints()[1]["hits"] == 4

    # not standing at a breakpoint: iter runs to the only one first
    s.ok("disable 1")
    s.runs_on("50ms")
    s.ok("enable 1")
    it = s.ok("iter 2")
    start = it["start"]
    assert start["stopped"] == "breakpoint" and start["breakpoint"] == 1, it
    check_iterations(it["iterations"], 2, per_turn)
    # --until: the first iteration that grows Item by more than 0 is the first
    it = s.ok("iter --until growth Item > 0")
    assert len(it["iterations"]) == 1, it
    check_iterations(it["iterations"], 1, per_turn)
    # never more than N_ITEM: all 4 iterations run
    it = s.ok("iter 4 --until growth __main__.Item > %d" % lp.info["n_item"])
    check_iterations(it["iterations"], 4, per_turn)
    # --until rss: up to the first iteration past it
    limit = statm_rss(lp.pid) + 64 * KiB
    it = s.ok("iter 200 --until rss > %d" % limit, timeout=STOP_TIMEOUT)
    its = it["iterations"]
    assert all(x["rss"] <= limit for x in its[:-1]), (limit, its)
    # one turn leaks a few KiB: 200 turns go far past 64 KiB
    assert its[-1]["rss"] > limit and len(its) < 200, (limit, its[-1], len(its))
    s.close()
    lp.assert_clean()

    # the human form: one line per iteration, the table of the last
    r = human(pyleakdb, lp.pid, "break " + lp.where(key), "iter 2", "growth --since-iteration")
    assert r.returncode == 0, r
    assert re.search(r"^Breakpoint 1, %s at %s:%d \(thread %d \S+\)$" % (
        re.escape(lp.function(key)), re.escape(lp.file), lp.lines[key], lp.looper_tid),
        r.out, re.M), r
    assert "\n%d\t%s\n" % (lp.lines[key], lp.source(lp.lines[key])) in r.out, r
    grew = "".join("  %+d %s" % (d, short(t)) for t, d in expected_rows(per_turn)[:6])
    for n in (1, 2):
        assert re.search(r"^iteration %d  rss [\d.]+ \S+ \([-+][\d.]+ \S+\)%s$"
                         % (n, re.escape(grew)), r.out, re.M), (grew, r)
    for t, d in expected_rows(per_turn):
        assert re.search(r"^%s\s+\d+\s+\+%d$" % (re.escape(t), d), r.out, re.M), (t, d, r)
    lp.assert_clean()


# ----- source breakpoints ----------------------------------------------------------------

def test_conditions(python, target, json_session):
    """break FILE:LINE if EXPR, condition N EXPR, `rss` in a condition; a condition
    that raises never stops the program; a bad one changes nothing."""
    lp = start_loop(target, python)
    loop = lp.where("loop")
    s = Session(json_session, lp.pid)
    b = s.ok("break %s if i %% 7 == 3" % loop)
    assert b["condition"] == "i % 7 == 3", b
    s.stop_at(1)
    i1 = int(s.eval("i"))
    assert i1 % 7 == 3, i1
    s.stop_at(1)
    assert int(s.eval("i")) == i1 + 7
    assert s.breakpoints()[1] == dict(s.breakpoints()[1], hits=2, condition="i % 7 == 3")

    c = s.ok("condition 1 len(RECORDS) % 5 == 0")
    assert c == {"id": 1, "condition": "len(RECORDS) % 5 == 0"}, c
    s.stop_at(1)
    assert int(s.eval("len(RECORDS)")) % 5 == 0

    # a bad condition: one error, the old condition stays
    err = s.fails("condition 1 i ==")
    assert "bad condition" in err and "\n" not in err, err
    assert s.breakpoints()[1]["condition"] == "len(RECORDS) % 5 == 0"
    s.stop_at(1)
    assert int(s.eval("len(RECORDS)")) % 5 == 0

    # unconditional: every turn
    assert s.ok("condition 1") == {"id": 1, "condition": None}
    assert "condition" not in s.breakpoints()[1]
    s.stop_at(1)
    i2 = int(s.eval("i"))
    s.stop_at(1)
    assert int(s.eval("i")) == i2 + 1

    # a condition that raises (the name is nowhere) does not stop the program
    s.ok("condition 1 no_such_name > 0")
    s.runs_on()
    hits = s.breakpoints()[1]["hits"]

    # rss: the RSS in bytes, as pyleakdb polls it
    s.ok("condition 1 rss > 1 << 40")
    s.runs_on()
    limit = statm_rss(lp.pid) + 256 * KiB
    s.ok("condition 1 rss > %d" % limit)
    st = s.stop_at(1)
    assert st["rss"] > limit and statm_rss(lp.pid) > limit, (limit, st)
    assert s.breakpoints()[1]["hits"] == hits + 1
    s.ok("delete 1")
    # in the break command, with a name of the program's
    b = s.ok("break %s if rss > 0 and i %% 3 == 1" % loop)
    assert b["id"] == 2 and b["condition"] == "rss > 0 and i % 3 == 1", b
    s.stop_at(2)
    assert int(s.eval("i")) % 3 == 1
    s.close()
    lp.assert_clean()


def test_function_tbreak_disable_enable_delete(python, target, json_session, pyleakdb):
    """break FUNCTION (qualified), tbreak, disable, enable, delete, info breakpoints and
    its hit counts; at a stop eval, show and refs see the frame's locals."""
    lp = start_loop(target, python, "--body", "call")
    s = Session(json_session, lp.pid)
    b = s.ok("break Leaker.step")
    assert b == dict(b, id=1, kind="function", file=lp.file, line=lp.lines["def"],
                     function=lp.function("def")), b
    st = s.stop_at(1)
    check_stop(st, lp, "def")
    i1 = int(s.eval("i"))
    assert s.eval("self is LEAKER") == "True"

    t = s.ok("tbreak " + lp.where("step_append"))
    assert t == dict(t, id=2, kind="line", temporary=True), t
    st = s.stop_at(2)
    check_stop(st, lp, "step_append")
    assert int(s.eval("i")) == i1, "not the same call of Leaker.step"
    # the frame's locals: rec is held by nothing else yet
    addr = int(s.eval("id(rec)"))
    assert s.eval("rec.i == i and rec.items is batch") == "True"
    shown = s.ok("show %#x" % addr)
    assert shown["address"] == addr and shown["type"] == "__main__.Record", shown
    refs = s.ok("refs %#x" % addr)
    chain = refs["groups"][0]["chain"]
    assert chain["root"]["kind"] == "frame" and chain["root"]["tid"] == lp.looper_tid, refs
    assert chain["hops"][-1]["label"] == "local 'rec'", refs
    bps = s.breakpoints()
    assert list(bps) == [1], "the temporary breakpoint is still there: %r" % bps
    assert bps[1] == dict(bps[1], hits=1, enabled=True, kind="function"), bps

    assert s.ok("disable 1") == {"disabled": [1]}
    assert s.breakpoints()[1]["enabled"] is False
    s.runs_on()
    assert s.ok("enable 1") == {"enabled": [1]}
    s.stop_at(1)
    assert int(s.eval("i")) > i1
    assert s.breakpoints()[1]["hits"] == 2

    # a bare function name, then delete them all: nothing stops the target any more,
    # and no hook is left in it while pyleakdb is still attached
    b = s.ok("break step")
    assert b == dict(b, id=3, kind="function", function=lp.function("def")), b
    s.stop_at(1)  # the first breakpoint that matches: the older
    assert s.ok("delete 1") == {"deleted": [1]}
    s.stop_at(3)
    assert s.ok("delete") == {"deleted": [3]}
    assert s.breakpoints() == {}
    s.runs_on()
    st = lp.request_attached(s, "state")
    assert lp.state_problems(st) == [], st
    s.close()
    lp.assert_clean()

    # the human form: the stops and the table with its hit counts
    r = human(pyleakdb, lp.pid, "break Leaker.step", "tbreak " + lp.where("step_append"),
              "continue " + STOP_WITHIN, "continue " + STOP_WITHIN, "continue " + STOP_WITHIN,
              "info breakpoints")
    assert r.returncode == 0, r
    fn = re.escape(lp.function("def"))
    assert re.search(r"^Breakpoint 1 at %s:%d in %s$" % (re.escape(lp.file), lp.lines["def"], fn),
                     r.out, re.M), r
    assert re.search(r"^Temporary breakpoint 2 at %s:%d in %s$" % (
        re.escape(lp.file), lp.lines["step_append"], fn), r.out, re.M), r
    assert len(re.findall(r"^Breakpoint 1, %s at " % fn, r.out, re.M)) == 2, r
    assert len(re.findall(r"^Breakpoint 2, %s at " % fn, r.out, re.M)) == 1, r
    assert re.search(r"^NUM\s+TYPE\s+DISP\s+ENB\s+HITS\s+WHAT$", r.out, re.M), r
    assert re.search(r"^1\s+function\s+keep\s+y\s+2\s+%s at %s:%d$" % (
        fn, re.escape(lp.file), lp.lines["def"]), r.out, re.M), r
    assert not re.search(r"^2\s", r.out, re.M), r
    lp.assert_clean()


def test_thread_started_after_break(python, target, json_session):
    """A thread the program starts after the breakpoint was set stops at it too (before
    3.12 that takes threading's trace hook), and iter follows it."""
    lp = start_loop(target, python, "--where", "late")
    before = set(thread_ids(lp.pid))
    s = Session(json_session, lp.pid)
    s.ok("break " + lp.where("loop"))
    seq = lp.send("start")
    st = s.stop_at(1)
    assert st["tid"] not in before, st
    threads = dict((t["tid"], t) for t in st["threads"])
    assert threads[st["tid"]]["python_name"] == "leaker", st
    it = s.ok("iter 2")
    for x in it["iterations"]:
        got = dict((r["type"], r["delta"]) for r in x["growth"])
        assert got.get("__main__.Item") == lp.info["n_item"] and got.get("__main__.Record") == 1, it
    s.close()
    reply = wait_for(lambda: lp.reply(seq), 30, "the target's reply to 'start'")
    assert reply["threads"]["looper"] == st["tid"], (reply, st)
    lp.assert_clean(threads=lp.start["threads"] + ["leaker"])


def test_bad_input(python, target, json_session, pyleakdb):
    """A line with no code, a file not loaded, a bad condition...: each a one-line
    error, and nothing armed: the target runs untraced while pyleakdb is still there."""
    lp = start_loop(target, python)
    loop = lp.where("loop")
    bad = [
        ("break %s:%d" % (SCRIPT, lp.info["blank_line"]), "has no code"),
        ("break %s:99999" % SCRIPT, "has no code"),
        ("break no_such_file.py:10", "no code from a file"),
        ("tbreak no_such_file.py:3", "no code from a file"),
        ("break %s if i ==" % loop, "bad condition"),
        ("break %s if (" % loop, "bad condition"),
        ("break %s if" % loop, "expected FILE:LINE"),
        ("break no_such_function_anywhere", "no function"),
        ("break %s:0" % SCRIPT, "not a line number"),
        ("break rss > 12Q", "not a size"),
        ("break rss >", "expected one size"),
        ("break rss > 0%", "a percentage"),
        ("break rss +5%", "a percentage"),
        ("break when rss > 2G if i > 0", "takes no 'if' condition"),
        ("delete 99", "no breakpoint 99"),
        ("disable 99", "no breakpoint 99"),
        ("enable 99", "no breakpoint 99"),
        ("condition 99 i > 0", "no breakpoint 99"),
        ("iter", "set one with 'break FILE:LINE' first"),
    ]
    s = Session(json_session, lp.pid)
    for c, msg in bad:
        err = s.fails(c)
        assert msg in err and "\n" not in err, (c, err)
        assert s.breakpoints() == {}, c
    s.runs_on()
    st = lp.request_attached(s, "state")
    assert lp.state_problems(st) == [], "after failed breaks: %r" % st
    s.close()
    lp.assert_clean()

    # the human form: one line each, on stderr
    r = human(pyleakdb, lp.pid, *[c for c, _ in bad])
    assert r.returncode == 1, r
    errs = r.err.splitlines()
    assert len(errs) == len(bad), r
    for line, (c, msg) in zip(errs, bad):
        assert line.startswith("error: ") and msg in line, (c, line)
    lp.assert_clean()


# ----- what breakpoints leave behind -----------------------------------------------------------

@pytest.mark.parametrize("where", ["main", "worker"])
def test_detach_with_breakpoints_armed(python, where, target, json_session):
    """detach with every kind of breakpoint set takes every hook out: while the target
    stands at a breakpoint, and while it runs past a conditional one."""
    lp = start_loop(target, python, "--where", where)
    s = Session(json_session, lp.pid)
    s.ok("break " + lp.where("loop"))
    s.ok("break %s if i < 0" % lp.where("sleep"))
    s.ok("tbreak " + lp.where("step"))  # in code the loop never calls
    s.ok("break Leaker.step")
    s.ok("break looper")
    s.ok("break rss > 1T")
    s.ok("tbreak %s" % lp.where("inline"))
    s.ok("disable 7")
    st = s.stop_at(1)
    check_stop(st, lp, "loop")
    assert len(s.breakpoints()) == 7
    s.close()  # quit: detach, at the breakpoint
    lp.assert_clean()

    s = Session(json_session, lp.pid)
    s.ok("break %s if i < 0" % lp.where("loop"))
    s.ok("break rss > 1T")
    s.runs_on()
    assert s.ok("detach") == {"detached": lp.pid}
    lp.assert_clean()
    s.close()


def test_breakpoints_survive_commands_at_other_stops(python, target, json_session):
    """Commands that run Python in the target while a breakpoint is armed (here at a
    stop that is not the breakpoint's, the program's other threads running meanwhile)
    must not disarm it: the breakpoint still stops the program afterwards."""
    lp = start_loop(target, python)
    s = Session(json_session, lp.pid)
    s.ok("break " + lp.where("loop"))
    # a few ms of bytecode, long enough for the looper to want the GIL and run
    assert s.eval("sum(1 for _ in range(300000))") == "300000"
    s.ok("top 3")
    st = s.stop_at(1)
    check_stop(st, lp, "loop")
    s.close()
    lp.assert_clean()


def test_sigkill_while_armed(python, target, json_session):
    """pyleakdb killed with SIGKILL while breakpoints are armed: the target goes on, no
    stray signal kills it, and the hooks take themselves out (a hit nobody answers, or
    the heartbeat pyleakdb no longer beats)."""
    lp = start_loop(target, python)

    # 1. at the prompt, the target standing at a breakpoint
    s = Session(json_session, lp.pid)
    s.ok("break " + lp.where("loop"))
    s.ok("break rss > 1T")
    s.stop_at(1)
    os.kill(s.popen.pid, signal.SIGKILL)
    s.popen.wait(PYLEAKDB_TIMEOUT)
    wait_clean(lp)

    # 2. the target running, a conditional breakpoint evaluated at every turn
    s = Session(json_session, lp.pid)
    s.ok("break %s if i < 0" % lp.where("loop"))
    s.popen.stdin.write(b"continue\n")
    s.popen.stdin.flush()
    lp.wait_turns(20)
    assert all(tp == s.popen.pid for _, tp in thread_states(lp.pid).values())
    os.kill(s.popen.pid, signal.SIGKILL)
    s.popen.wait(PYLEAKDB_TIMEOUT)
    wait_clean(lp)


def wait_clean(lp):
    """After pyleakdb was killed: the target runs on, untraced, and within
    ABANDON_WITHIN seconds nothing of pyleakdb's is left hooked in it."""
    assert_free(lp.pid)
    seen = []

    def clean():
        st = lp.request("state")
        seen[:] = [st]
        return lp.state_problems(st) == []

    deadline = time.time() + ABANDON_WITHIN
    while not clean():
        if time.time() > deadline:
            pytest.fail("%ds after pyleakdb was killed, its hooks are still in the target: %s"
                        % (ABANDON_WITHIN, "; ".join(lp.state_problems(seen[0]))))
        time.sleep(0.2)
    lp.wait_turns(2)
    lp.assert_output()


# ----- Ctrl-C ----------------------------------------------------------------------------------

def test_ctrl_c(python, target, repl):
    """Ctrl-C while the target runs with a breakpoint armed, in the middle of iter, and
    while an RSS breakpoint is polled: the prompt comes back, the target stopped and
    consistent, the breakpoints as they were."""
    lp = start_loop(target, python)
    r = repl("-q", "-p", lp.pid)
    r.prompt()
    r.run("break %s if i < 0" % lp.where("loop"))

    def interrupt():
        r.c.send("\x03")
        out = r.prompt()
        assert "Process %d stopped (Ctrl-C)." % lp.pid in out, out
        assert all_stopped_by(lp.pid, r.pid), thread_states(lp.pid)
        n = lp.turn()
        time.sleep(0.2)
        assert lp.turn() == n, "the target ran on at the prompt"
        # consistent: Python runs in it, and its loop made as many Records as turns (or
        # is between the two)
        assert r.run("eval len(RECORDS) - LOOPER['i']").strip() in ("0", "1")
        out += r.run("pystack")
        assert re.search(r"^    looper \(%s:\d+\)$" % re.escape(lp.file), out, re.M), out
        assert all_stopped_by(lp.pid, r.pid), thread_states(lp.pid)
        return out

    r.c.sendline("continue")
    r.c.expect_exact("Continuing.")
    lp.wait_turns(10)  # it runs, the condition evaluated at every turn
    interrupt()
    out = r.run("info breakpoints")
    assert re.search(r"^1\s+line\s+keep\s+y\s+0\s+looper at %s:%d if i < 0$" % (
        re.escape(lp.file), lp.lines["loop"]), out, re.M), out

    # in the middle of iter
    r.run("condition 1")
    r.c.sendline("iter 100000")
    r.c.expect(r"iteration 3  rss ")
    interrupt()
    out = r.run("info breakpoints")
    assert re.search(r"^1\s+line\s+keep\s+y\s+\d+\s+looper at ", out, re.M), out

    # while an RSS breakpoint is watched
    r.run("delete")
    r.run("break rss > 1T")
    r.c.sendline("continue")
    r.c.expect_exact("Continuing.")
    lp.wait_turns(10)
    interrupt()

    assert "Detached from process %d." % lp.pid in r.run("detach")
    r.c.sendline("quit")
    r.c.expect(pytest.importorskip("pexpect").EOF)
    r.c.close()
    assert r.c.exitstatus == 0, (r.c.exitstatus, r.c.signalstatus)
    lp.assert_clean()

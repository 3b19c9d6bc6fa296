# SPDX-License-Identifier: GPL-3.0-or-later
"""Torture: many injections (eval, top, gc, tracemalloc) into targets in
awkward states, on every interpreter found.

Scenarios (tests/e2e/targets/torture_target.py MODE): idle in select; in
time.sleep; main thread in Event.wait with a worker allocating; a tight
bytecode loop; a long C call holding the GIL (sorting 3M elements); a thread
hashing 64 MB with the GIL released; 50 threads in short timed waits;
SIGUSR1 every millisecond and SIGCHLD from children; a target that forks;
threads that come and go (churn).

For every pyleakdb run:
  * it ends within its timeout (60 s for sort, 20 s otherwise) or it is a
    hang: it is killed by its PID and the target's state is reported;
  * every command succeeds and says the right thing (`eval 6*7` is 42,
    `eval counter[0]` an int that never goes down, ...);
  * afterwards the target is alive, no thread of it is stopped or traced,
    none died, and it has no new executable anonymous mapping (and none
    where pyleakdb's trampoline was).
After the last run the target is told to finish: it proves it still works
(every counter moves on), compares its state with the snapshot it took
before the first injection (see the target's docstring), writes its
verdict and exits with status 0 and an empty stderr.

This file is the short form (`make check`): a few runs per scenario and
interpreter.  tests/bench/torture is the full form (hundreds of runs, a
summary table); both use the engine below (`Torture`), which knows nothing
of pytest.
"""
import collections
import json
import os
import random
import re
import signal
import subprocess
import time

import pytest

from conftest import children_of, is_alive, popen_pyleakdb, start_time, thread_states

TARGET_SCRIPT = "torture_target.py"

Scenario = collections.namedtuple("Scenario", "name timeout finish_timeout doc")

SCENARIOS = collections.OrderedDict((s.name, s) for s in [
    Scenario("select", 20, 30, "idle in select()"),
    Scenario("sleep", 20, 30, "in time.sleep()"),
    Scenario("event", 20, 30, "main thread in Event.wait(), a worker allocating"),
    Scenario("loop", 20, 30, "a tight bytecode loop"),
    Scenario("sort", 60, 90, "a long C call holding the GIL (3M-element sort)"),
    Scenario("hash", 20, 30, "a thread hashing 64 MB without the GIL, main sleeping"),
    Scenario("threads", 20, 30, "50 threads in short timed waits"),
    Scenario("signals", 20, 30, "SIGUSR1 every ms, SIGCHLD from children"),
    Scenario("fork", 20, 30, "forking children, checking their exit status"),
    Scenario("churn", 20, 30, "short-lived threads coming and going"),
])

# What one pyleakdb run does, and how often the full form picks it.
MIX = [
    (4, ["eval 6*7"]),
    (4, ["eval counter[0]"]),
    (3, ["top 5"]),
    (3, ["gc"]),
    (2, ["eval counter[0]", "eval 6*7", "top 3"]),
    (2, ["gc 0", "eval counter[0]"]),
    # detach must stop the tracing pyleakdb started
    (1, ["tracemalloc start", "eval 6*7", "tracemalloc top 3"]),
    (1, ["tracemalloc start", "tracemalloc top 3", "tracemalloc stop"]),
]

# The short form: every kind of run once, ~10 injections.
SHORT_PLAN = [
    ["eval 6*7"],
    ["eval counter[0]"],
    ["top 5"],
    ["gc"],
    ["eval counter[0]", "eval 6*7"],
    ["tracemalloc start", "top 3", "tracemalloc top 3"],
    ["gc 0", "eval counter[0]"],
]
# A run on the sort target waits for a sort to end (1-2 s): fewer runs, more
# commands in each (each command is an injection of its own).
SHORT_PLAN_SORT = [
    ["eval 6*7", "eval counter[0]", "top 3"],
    ["gc", "eval counter[0]", "eval 6*7"],
    ["tracemalloc start", "tracemalloc top 3", "eval counter[0]"],
]

# Attaching while threads come and go is where churn hurts: more attaches.
SHORT_EXTRA_CHURN = [["eval 6*7"]] * 15

FAILURE_KINDS = ("hang", "crash", "stopped/traced", "command failed", "wrong answer",
                 "trace left", "behaviour", "exit")

_TRAMP_RE = re.compile(r"tramp (0x[0-9a-f]+)")


def safe_point_kind(where):
    """'main: sleep', 'other: a lock wait', 'main: pending call'... from the
    safe_point pyleakdb reports ("thread 42 (MainThread), blocked in sleep")."""
    who = "main" if "(MainThread)" in where else "other"
    if "between two bytecodes" in where:
        return who + ": pending call"
    m = re.search(r"blocked in (.+)$", where)
    return "%s: %s" % (who, m.group(1) if m else where.split(", ", 1)[-1] or "?")


# ----- /proc, from outside -----------------------------------------------------

def anon_exec_maps(pid):
    """The executable anonymous mappings of pid: ['start-end perms']."""
    out = []
    try:
        with open("/proc/%d/maps" % pid) as f:
            for line in f:
                parts = line.split(None, 5)
                path = parts[5].strip() if len(parts) > 5 else ""
                if "x" in parts[1] and (not path or path.startswith("[anon") or
                                        path.startswith("/dev/zero")):
                    out.append("%s %s" % (parts[0], parts[1]))
    except (FileNotFoundError, ProcessLookupError):
        return None
    return sorted(out)


def mapping_at(pid, addr):
    try:
        with open("/proc/%d/maps" % pid) as f:
            for line in f:
                lo, hi = (int(x, 16) for x in line.split()[0].split("-"))
                if lo <= addr < hi:
                    return line.strip()
    except (FileNotFoundError, ProcessLookupError):
        pass
    return None


def describe_target(pid):
    """One line on the target's state, for a report."""
    if not is_alive(pid):
        return "target %d is gone" % pid
    parts = []
    for tid, (st, tracer) in sorted(thread_states(pid).items()):
        try:
            with open("/proc/%d/task/%d/wchan" % (pid, tid)) as f:
                wchan = f.read().strip()
        except OSError:
            wchan = "?"
        try:
            with open("/proc/%d/task/%d/syscall" % (pid, tid)) as f:
                sc = f.read().split()[0]
        except (OSError, IndexError):
            sc = "?"
        parts.append("%d:%s%s wchan=%s syscall=%s" % (
            tid, st, " traced by %d" % tracer if tracer else "", wchan, sc))
    return "target %d threads: %s" % (pid, "; ".join(parts))


def tail(text, n=25):
    lines = text.rstrip("\n").split("\n")
    return "\n".join(lines[-n:])


# ----- the engine --------------------------------------------------------------

class Torture(object):
    """Injections into one running torture target.

    target: a conftest.Target already ready (its .ready is the target's
    ready JSON).  Failures are collected in self.failures as (kind, message)
    and never raised: the caller decides (pytest fails, the bench counts)."""

    def __init__(self, pyleakdb_bin, env, target, scenario, ctl_dir, seed=0):
        self.bin = pyleakdb_bin
        self.env = dict(env, PYLEAKDB_DEBUG="1")
        self.t = target
        self.pid = target.pid
        self.sc = SCENARIOS[scenario] if isinstance(scenario, str) else scenario
        self.ctl = ctl_dir
        self.rng = random.Random(seed)
        self.failures = []
        self.runs = 0
        self.injections = 0
        self.max_run = 0.0
        self.durations = []      # of every run that ended, seconds
        self.last_err = ""       # the last run's stderr (its debug trace)
        self.safe_points = collections.Counter()
        self.counter_seen = []
        self.broken = False      # the target cannot be trusted any more
        self.verdict = None
        self.base_maps = anon_exec_maps(self.pid)
        self.base_tids = sorted(thread_states(self.pid))
        self.label = getattr(target.python, "id", None) or str(target.python)

    def fail(self, kind, msg):
        assert kind in FAILURE_KINDS, kind
        self.failures.append((kind, "[%s, %s, run %d] %s" % (
            self.sc.name, self.label, self.runs, msg)))

    # -- one pyleakdb run --

    def run(self, cmds):
        """One `pyleakdb --batch --json -p PID -ex CMD...`; False when the
        target is broken (dead, stopped, traced) and the caller must stop."""
        if self.broken:
            return False
        argv = [self.bin, "--batch", "--json", "-p", str(self.pid)]
        for c in cmds:
            argv += ["-ex", c]
        self.runs += 1
        t0 = time.monotonic()
        p = popen_pyleakdb(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, env=self.env, cwd=self.ctl)
        try:
            out, err = p.communicate(timeout=self.sc.timeout)
        except subprocess.TimeoutExpired:
            kids = children_of(p.pid)
            os.kill(p.pid, signal.SIGKILL)
            for kid, st in kids:
                if start_time(kid) == st:
                    os.kill(kid, signal.SIGKILL)
            out, err = p.communicate()
            time.sleep(0.5)
            self.fail("hang", "pyleakdb %r did not finish in %d s (killed); after the kill: %s"
                      "\n--- stdout:\n%s\n--- stderr (debug trace, last lines):\n%s" % (
                          cmds, self.sc.timeout, describe_target(self.pid),
                          tail(out.decode("utf-8", "replace")),
                          tail(err.decode("utf-8", "replace"))))
            self.broken = True
            return False
        dt = time.monotonic() - t0
        self.max_run = max(self.max_run, dt)
        self.durations.append(dt)
        out = out.decode("utf-8", "replace")
        err = err.decode("utf-8", "replace")
        self.last_err = err
        self._check_output(cmds, p.returncode, out, err)
        return self._check_target(cmds, err)

    def _check_output(self, cmds, rc, out, err):
        ctx = "pyleakdb %r exit %s\n--- stdout:\n%s\n--- stderr (last lines):\n%s" % (
            cmds, rc, tail(out), tail(err))
        n0 = len(self.failures)
        objs = []
        for line in out.splitlines():
            try:
                objs.append(json.loads(line))
            except ValueError:
                self.fail("command failed", "a line that is not JSON: %r; %s" % (line, ctx))
                return
        first = objs[0] if objs else {}
        if first.get("command") != "attach %d" % self.pid or not first.get("ok"):
            self.fail("command failed", "attach failed; %s" % ctx)
            return
        seen = [o for o in objs[1:] if o.get("command") != "quit"]
        if [o.get("command") for o in seen] != cmds:
            self.fail("command failed", "expected one reply per command %r, got %r; %s" % (
                cmds, [o.get("command") for o in seen], ctx))
        for o in seen:
            c = o.get("command")
            if not o.get("ok") or o.get("errors"):
                self.fail("command failed", "%r failed (ok %r): %r; %s" % (
                    c, o.get("ok"), o.get("errors"), ctx))
                continue
            self.injections += 1
            res = o.get("result") or {}
            self.safe_points[safe_point_kind(res.get("safe_point", ""))] += 1
            problem = self._check_result(c, res)
            if problem:
                self.fail("wrong answer", "%r: %s; result %r" % (c, problem, res))
        quit_ = [o for o in objs if o.get("command") == "quit"]
        if not quit_ or not quit_[-1].get("ok") or quit_[-1].get("errors") or \
                (quit_[-1].get("result") or {}).get("detached") != self.pid:
            self.fail("command failed", "no clean detach (quit); %s" % ctx)
        elif quit_[-1].get("warnings"):
            self.fail("trace left", "detach warned %r; %s" % (quit_[-1]["warnings"], ctx))
        if rc != 0 and len(self.failures) == n0:
            self.fail("command failed", "exit status %s; %s" % (rc, ctx))

    def _check_result(self, c, res):
        if c == "eval 6*7":
            if res.get("repr") != "42" or res.get("type") != "int":
                return "not the int 42"
        elif c == "eval counter[0]":
            if res.get("type") != "int":
                return "not an int"
            try:
                v = int(res.get("repr"))
            except (TypeError, ValueError):
                return "repr is not an int"
            if self.counter_seen and v < self.counter_seen[-1]:
                return "counter went down: %d after %d" % (v, self.counter_seen[-1])
            self.counter_seen.append(v)
        elif c.startswith("top"):
            rows = res.get("rows")
            if not rows or not all(isinstance(r.get("type"), str) and
                                   isinstance(r.get("count"), int) for r in rows):
                return "no rows of types and counts"
        elif c.startswith("gc"):
            if not isinstance(res.get("generations"), list):
                return "no generations"
        elif c == "tracemalloc top 3":
            if not isinstance(res.get("rows"), list):
                return "no rows"
        elif c == "tracemalloc stop":
            if res.get("was_tracing") is not True:
                return "was not tracing"
        return None

    def _check_target(self, cmds, err):
        pid = self.pid
        if self.t.popen.poll() is not None or not is_alive(pid):
            self.fail("crash", "the target died during/after pyleakdb %r: exit %r\n"
                      "--- target stderr:\n%s\n--- pyleakdb stderr (last lines):\n%s" % (
                          cmds, self.t.popen.poll(), tail(self.t.errors()), tail(err)))
            self.broken = True
            return False
        states = thread_states(pid)
        bad = dict((tid, s) for tid, s in states.items() if s[1] != 0 or s[0] in "tT")
        if bad:
            self.fail("stopped/traced", "after pyleakdb %r: {tid: (state, TracerPid)} = %r; "
                      "%s\n--- pyleakdb stderr (last lines):\n%s" % (
                          cmds, bad, describe_target(pid), tail(err)))
            self.broken = True
            return False
        tids = sorted(states)
        stable = (self.t.ready or {}).get("stable_tids")
        if stable:  # threads come and go: only these must stay
            if not set(stable) <= set(tids):
                self.fail("crash", "after pyleakdb %r the target lost threads %r" % (
                    cmds, sorted(set(stable) - set(tids))))
        elif tids != self.base_tids:
            self.fail("crash", "after pyleakdb %r the target's threads changed: %d gone %r, "
                      "%d new %r" % (cmds, len(set(self.base_tids) - set(tids)),
                                     sorted(set(self.base_tids) - set(tids)),
                                     len(set(tids) - set(self.base_tids)),
                                     sorted(set(tids) - set(self.base_tids))))
            self.base_tids = tids
        maps = anon_exec_maps(pid)
        if maps is not None and maps != self.base_maps:
            self.fail("trace left", "after pyleakdb %r: executable anonymous mappings %r, "
                      "before %r" % (cmds, maps, self.base_maps))
            self.base_maps = maps
        for addr in set(_TRAMP_RE.findall(err)):
            m = mapping_at(pid, int(addr, 16))
            if m is not None:
                self.fail("trace left", "after pyleakdb %r: its trampoline %s is still "
                          "mapped: %s" % (cmds, addr, m))
        return True

    # -- plans --

    def short(self):
        plan = SHORT_PLAN_SORT if self.sc.name == "sort" else SHORT_PLAN
        if self.sc.name == "churn":
            plan = plan + SHORT_EXTRA_CHURN
        for cmds in plan:
            if not self.run(cmds):
                return
            time.sleep(self.rng.uniform(0, 0.03))

    def full(self, rounds, progress=None):
        weights = [w for w, _ in MIX]
        for i in range(rounds):
            cmds = self.rng.choices([c for _, c in MIX], weights)[0]
            if not self.run(cmds):
                return
            time.sleep(self.rng.uniform(0, 0.1))
            if progress:
                progress(i + 1)

    # -- the end --

    def finish(self):
        """Tell the target to finish; check its exit and its verdict."""
        if self.broken:
            return
        t = self.t
        with open(os.path.join(self.ctl, "finish"), "w"):
            pass
        try:
            rc = t.popen.wait(self.sc.finish_timeout)
        except subprocess.TimeoutExpired:
            self.fail("exit", "the target did not finish within %d s of being told to; %s"
                      % (self.sc.finish_timeout, describe_target(t.pid)))
            self.broken = True
            return
        errors = t.errors()
        if rc != 0:
            self.fail("exit", "the target exited with %r\n--- stderr:\n%s" % (rc, tail(errors)))
        if errors:
            self.fail("behaviour", "the target wrote on stderr:\n%s" % tail(errors, 40))
        try:
            with open(os.path.join(self.ctl, "verdict.json")) as f:
                v = json.load(f)
        except (OSError, ValueError) as e:
            self.fail("exit", "no verdict from the target (%s)" % e)
            return
        self.verdict = v
        if v["traces"]:
            self.fail("trace left", "the target found after the last detach:\n  " +
                      "\n  ".join(v["traces"]))
        if v["anomalies"]:
            self.fail("behaviour", "the target recorded %d anomalies:\n  %s" % (
                len(v["anomalies"]), "\n  ".join(v["anomalies"][:10])))
        ready, a, b = v["ready"], v["A"], v["B"]
        stuck = sorted(k for k in a if not b[k] > a[k])
        if stuck:
            self.fail("behaviour", "after the last detach these did not move on: %s "
                      "(before %r, after %r)" % (stuck, dict((k, a[k]) for k in stuck),
                                                 dict((k, b[k]) for k in stuck)))
        if self.runs > 1:
            idle = sorted(k for k in ready if not a[k] > ready[k])
            if idle:
                self.fail("behaviour", "did not move on while we injected: %s (ready %r, "
                          "finish %r)" % (idle, dict((k, ready[k]) for k in idle),
                                          dict((k, a[k]) for k in idle)))
        if self.counter_seen and v["counter"] < max(self.counter_seen):
            self.fail("wrong answer", "eval counter[0] said %d, the target's counter is "
                      "%d at the end" % (max(self.counter_seen), v["counter"]))
        st = v["stats"]
        for k in ("bad_children", "bad_sorts", "bad_digests", "bad_objects", "early",
                  "bad_work"):
            if st.get(k):
                self.fail("behaviour", "%s: %r" % (k, st[k]))
        if self.sc.name == "signals":
            # signals coalesce: no more handled than sent, and some handled
            if not 0 < b["usr1_handled"] <= b["usr1_sent"]:
                self.fail("behaviour", "SIGUSR1: %d handled, %d sent" % (
                    b["usr1_handled"], b["usr1_sent"]))
            if not 0 < b["chld_handled"] <= b["children"]:
                self.fail("behaviour", "SIGCHLD: %d handled, %d children" % (
                    b["chld_handled"], b["children"]))
            # real-time signals queue: each one sent is delivered exactly once
            if st.get("rt_sent") != st.get("rt_delivered") or not st.get("rt_handled"):
                self.fail("behaviour", "real-time signal: %r sent, %r delivered (bytes on "
                          "the wakeup fd), %r handler runs" % (
                              st.get("rt_sent"), st.get("rt_delivered"),
                              st.get("rt_handled")))

    def summary(self):
        return "%d runs, %d injections, %d failures, safe points %s, slowest run %.2f s" % (
            self.runs, self.injections, len(self.failures),
            dict(self.safe_points), self.max_run)


def start_target(start, python, scenario, tmp_path):
    """Start the torture target with the conftest `target` fixture."""
    ctl = tmp_path / ("ctl-" + scenario)
    ctl.mkdir()
    t = start(TARGET_SCRIPT, python, scenario, str(ctl))
    return t, str(ctl)


# ----- the short form ----------------------------------------------------------

@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_torture(python, scenario, target, pyleakdb, tmp_path):
    t, ctl = start_target(target, python, scenario, tmp_path)
    seed = int(os.environ.get("PYLEAKDB_TORTURE_SEED", "0")) or \
        sum(map(ord, scenario + python.id))
    tor = Torture(pyleakdb.bin, pyleakdb.env, t, scenario, ctl, seed=seed)
    t0 = time.monotonic()
    tor.short()
    t1 = time.monotonic()
    tor.finish()
    print("%s; runs %.1f s, finish %.1f s" % (tor.summary(), t1 - t0, time.monotonic() - t1))
    assert not tor.failures, "%s\n\n%s" % (
        tor.summary(), "\n\n".join("%s: %s" % f for f in tor.failures))

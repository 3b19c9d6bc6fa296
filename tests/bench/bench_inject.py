# SPDX-License-Identifier: GPL-3.0-or-later
"""Running code in a live Python: pyleakdb `eval 1` against gdb calling
PyGILState_Ensure / PyRun_SimpleString / PyGILState_Release, on an idle
target and on a busy one."""

import os
import re
import subprocess
import tempfile
import time
from pathlib import Path

from benchlib import (BENCH_ENV, BenchAbort, BenchFailure, Row, Target,
                      Timing, _schedule, find_interpreters, fmt_ms, fmt_ratio,
                      median_time, pinned_binary, time_once, tool_version)

K = 21                        # evals in the long batch
RUNS, WARMUP = 15, 2          # batches of 1 and of K evals, Debian
GDB_RUNS, GDB_WARMUP = 5, 1   # successful gdb runs wanted, Debian
PYENV_RUNS, PYENV_WARMUP = 5, 1
GDB_TIMEOUT = 30.0            # hard limit on one gdb run
GDB_HANG_S = 1.0              # every target thread asleep this long under gdb: hung
GDB_MAX_HANGS = 6             # give up on a tool after this many failures
TARGET_MS = {"idle": 20.0, "busy": 5.0}   # the targets, per eval

TITLE = "eval 1 in a live target: pyleakdb against gdb-based injection"
OTHER = "gdb"
DESCRIPTION = f"""\
Two targets under Debian's /usr/bin/python3: **idle**, whose only thread
sleeps in `time.sleep()`, and **busy**, whose main thread runs a tight
bytecode loop (`while True: n += 1`) while a worker thread computes in
Python (the two contend for the GIL).

- **whole run** (a): `pyleakdb --batch -p PID -ex 'eval 1'`, i.e. attach,
  install the agent, evaluate, uninstall, detach, exit; median of {RUNS}
  runs after {WARMUP} warm-ups. **round trip** (b): one `eval 1` in a
  session whose agent is installed: medians of a batch with {K} `-ex
  'eval 1'` (t_K) and of the whole run above (t_1), interleaved;
  per eval = (t_K - t_1) / ({K} - 1). The issue's targets (under
  {TARGET_MS['busy']:.0f} ms busy, under {TARGET_MS['idle']:.0f} ms idle) apply
  to (b); (a) is shown beside it, and a note says whether it meets them.
- **gdb**: `gdb -batch -nx -iex 'set debuginfod enabled off' -p PID -ex
  'call (int)PyGILState_Ensure()' -ex 'call (int)PyRun_SimpleString("1")'
  -ex 'call (void)PyGILState_Release($1)'` (the functions are exported by
  the stripped python3.11; the casts give their return types),
  {GDB_RUNS} successful runs after {GDB_WARMUP} warm-up, interleaved with
  the pyleakdb runs on the same target. Every gdb run must print
  `$2 = 0` (PyRun_SimpleString succeeded); once per target a run executes a
  statement writing the target's PID into a file, which must appear. gdb
  can hang the busy target: a run in which every target thread sleeps for
  {GDB_HANG_S:.0f} s while gdb waits for its call counts as hung (`pyleakdb
  bt` then shows where the main thread waits).
- Every pyleakdb run must print `1` once per eval; once per target,
  `eval __import__('os').getpid()` must print the target's PID. After
  every run the target must be alive, not stopped and not traced, and the
  busy one must still be using CPU; at the end both of its threads must
  have made progress (their counters, read with `eval`, grew).
- A run that fails (wrong output, an error, a hang) is not timed: it is
  reported below the table (pyleakdb's failures fail the benchmark, gdb's
  are a finding), the target is replaced by a fresh one (the failure may
  have damaged it), and the run is retried; the figures are of the runs
  that worked.
- The pyleakdb binary is copied aside first, so that a rebuild during the
  run changes nothing. Other processes may load the machine: the load
  average is given below the table.
- (b) is repeated for both targets under every pyenv CPython 3.8 to 3.13
  found ({PYENV_RUNS} runs each of t_1 and t_K), without gdb.
"""

IDLE_SRC = r'''
import os, sys, time
ready = sys.argv[1]
with open(ready + ".tmp", "w") as f:
    f.write(str(os.getpid()))
os.rename(ready + ".tmp", ready)
while True:
    time.sleep(3600)
'''

BUSY_SRC = r'''
import os, sys, threading, time
ready = sys.argv[1]
n = 0
w = 0

def work():
    global w
    while True:
        s = 0
        for i in range(1000):
            s += i * i
        w += 1

threading.Thread(target=work, name="worker", daemon=True).start()
while w < 10:
    n += 1
with open(ready + ".tmp", "w") as f:
    f.write(str(os.getpid()))
os.rename(ready + ".tmp", ready)
while True:
    n += 1
'''

SOURCES = {"idle": IDLE_SRC, "busy": BUSY_SRC}
BANNER_RE = re.compile(r"^(Attached to process|Detached from process) ")
GDB_BASE = ["gdb", "-batch", "-nx", "-iex", "set debuginfod enabled off"]


# --------------------------------------------------------------------------
# commands and their checks

def pyleakdb_cmd(ctx, pid, *cmds):
    argv = [ctx.pyleakdb, "--batch", "-p", str(pid)]
    for c in cmds:
        argv += ["-ex", c]
    return argv


def results(out):
    """pyleakdb's output without its attach/detach banners."""
    return [l for l in out.splitlines() if not BANNER_RE.match(l)]


def check_evals(n):
    def check(out, err):
        got = results(out)
        if got != ["1"] * n:
            raise BenchFailure(f"pyleakdb printed {got[:5]}... ({len(got)} "
                               f"lines), expected {n} lines '1':\n"
                               f"{out[-800:]}{err[-800:]}")
    return check


def gdb_cmd(pid, statement="1"):
    return GDB_BASE + ["-p", str(pid),
                       "-ex", "call (int)PyGILState_Ensure()",
                       "-ex", f'call (int)PyRun_SimpleString("{statement}")',
                       "-ex", "call (void)PyGILState_Release($1)"]


def check_gdb(out, err):
    ensure = re.search(r"^\$1 = (-?\d+)$", out, re.M)
    run = re.search(r"^\$2 = (-?\d+)$", out, re.M)
    if not ensure or ensure.group(1) not in ("0", "1"):
        raise BenchFailure(f"gdb: PyGILState_Ensure gave no state:\n"
                           f"{out[-800:]}{err[-800:]}")
    if not run or run.group(1) != "0":
        raise BenchFailure(f"gdb: PyRun_SimpleString did not return 0:\n"
                           f"{out[-800:]}{err[-800:]}")


# --------------------------------------------------------------------------
# the target's health

def _threads(pid):
    try:
        return sorted(os.listdir(f"/proc/{pid}/task"))
    except FileNotFoundError:
        return []


def thread_states(pid):
    out = {}
    for tid in _threads(pid):
        try:
            s = Path(f"/proc/{pid}/task/{tid}/stat").read_text()
        except FileNotFoundError:
            continue
        out[tid] = s[s.rindex(")") + 2]
    return out


def cpu_ns(pid):
    """CPU time the process has used, nanoseconds (schedstat; else ticks)."""
    try:
        return int(Path(f"/proc/{pid}/schedstat").read_text().split()[0])
    except (FileNotFoundError, ValueError, IndexError):
        f = Path(f"/proc/{pid}/stat").read_text()
        f = f[f.rindex(")") + 2:].split()
        return (int(f[11]) + int(f[12])) * 10_000_000


class Health:
    """After every run: alive, not stopped, not traced; a busy target must
    also have used CPU since the previous check (waiting up to 1 s)."""

    def __init__(self, t, busy):
        self.t, self.busy = t, busy
        self.last = cpu_ns(t.pid) if busy else 0

    def __call__(self):
        self.t.check()
        if not self.busy:
            return
        deadline = time.monotonic() + 1.0
        while True:
            now = cpu_ns(self.t.pid)
            if now > self.last:
                self.last = now
                return
            if time.monotonic() > deadline:
                raise BenchAbort(f"busy target {self.t.pid} used no CPU for 1 s "
                                 f"after a run: hung ({thread_states(self.t.pid)})")
            time.sleep(0.005)


# --------------------------------------------------------------------------
# gdb, which may hang the busy target

class GdbHang(Exception):
    pass


def run_gdb(pid, statement="1"):
    """One gdb run; returns (seconds, stdout, stderr). Raises GdbHang when the
    target's threads all sleep for GDB_HANG_S while gdb waits for them."""
    cmd = gdb_cmd(pid, statement)
    with tempfile.TemporaryFile() as fo, tempfile.TemporaryFile() as fe:
        t0 = time.perf_counter()
        p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=fo,
                             stderr=fe, env=BENCH_ENV)
        asleep_since = None
        while True:
            try:
                rc = p.wait(timeout=0.02)
                dt = time.perf_counter() - t0
                break
            except subprocess.TimeoutExpired:
                pass
            now = time.perf_counter()
            st = thread_states(pid)
            if st and all(s == "S" for s in st.values()):
                asleep_since = asleep_since or now
            else:
                asleep_since = None
            hung = asleep_since is not None and now - asleep_since > GDB_HANG_S
            if hung or now - t0 > GDB_TIMEOUT:
                p.kill()
                p.wait()
                raise GdbHang(f"after {now - t0:.1f} s, all {len(st)} target "
                              f"threads asleep for {GDB_HANG_S:.0f} s")
        fo.seek(0)
        fe.seek(0)
        out = fo.read().decode(errors="replace")
        err = fe.read().decode(errors="replace")
    if rc != 0:
        raise BenchFailure(f"gdb exit status {rc}:\n{out[-800:]}{err[-800:]}")
    return dt, out, err


def where_hung(ctx, pid):
    """The main thread's native frames of a hung target, as pyleakdb sees them."""
    try:
        _, out, _ = time_once(pyleakdb_cmd(ctx, pid, "bt"), timeout=20)
    except BenchFailure as e:
        return f"(pyleakdb bt failed: {str(e).splitlines()[0]})"
    names = re.findall(r"^#\d+\s+0x[0-9a-f]+ in (\S+)", out, re.M)
    names = [n.split("+")[0] for n in names if n != "??"]
    return " <- ".join(names[:6]) or "(no named frames)"


# --------------------------------------------------------------------------
# measuring one target kind

class Slot:
    """The current target of a kind, replaced when a tool breaks it."""

    def __init__(self, interp, kind):
        self.interp, self.kind = interp, kind
        self.t = None
        self.health = None
        self.count = 0

    def start(self):
        self.stop()
        self.t = Target(self.interp.path, SOURCES[self.kind],
                        name=f"inject_{self.kind}").__enter__()
        self.health = Health(self.t, self.kind == "busy")
        self.count += 1
        return self.t

    def stop(self):
        if self.t is not None:
            self.t.__exit__(None, None, None)
            self.t = None

    def state(self):
        """'dead', 'stopped or traced', 'hung' (no CPU over 0.3 s, busy
        only) or 'ok'."""
        if self.t.proc.poll() is not None:
            return f"dead (exit status {self.t.proc.returncode})"
        try:
            self.t.check()
        except BenchAbort as e:
            return str(e)
        if self.kind == "busy":
            c0 = cpu_ns(self.t.pid)
            time.sleep(0.3)
            if cpu_ns(self.t.pid) == c0:
                return "hung (no CPU used in 0.3 s)"
        return "ok"


def verify_target(ctx, slot):
    """Outside the timings: pyleakdb evaluates in the right process, and the
    busy target's two threads both make progress."""
    t = slot.t
    _, out, err = time_once(pyleakdb_cmd(ctx, t.pid, "eval __import__('os').getpid()"))
    slot.health()
    if results(out) != [str(t.pid)]:
        raise BenchFailure(f"eval getpid() printed {results(out)}, expected "
                           f"[{t.pid}]:\n{err[-800:]}")
    if slot.kind != "busy":
        return
    seen = []
    for _ in range(2):
        _, out, err = time_once(pyleakdb_cmd(ctx, t.pid, "eval (n, w)"))
        slot.health()
        m = re.fullmatch(r"\((\d+), (\d+)\)", "\n".join(results(out)))
        if not m:
            raise BenchFailure(f"eval (n, w) printed {results(out)}")
        seen.append((int(m.group(1)), int(m.group(2))))
        time.sleep(0.2)
    (n0, w0), (n1, w1) = seen
    if not (n1 > n0 and w1 > w0):
        raise BenchFailure(f"busy target's threads made no progress: "
                           f"main {n0} -> {n1}, worker {w0} -> {w1}")


def gdb_effect(ctx, slot, tmpdir, incidents):
    """gdb really runs code: a statement writing the PID into a file."""
    for _ in range(GDB_MAX_HANGS):
        mark = Path(tmpdir, f"gdb-mark-{slot.t.pid}")
        stmt = f"open('{mark}', 'w').write(str(__import__('os').getpid()))"
        try:
            _, out, err = run_gdb(slot.t.pid, stmt)
        except GdbHang as e:
            incidents["gdb"].append(f"gdb hung the target ({e}); its main "
                                    f"thread: {where_hung(ctx, slot.t.pid)}\n"
                                    f"[target then: {slot.state()}]")
            slot.start()
            continue
        check_gdb(out, err)
        slot.health()
        got = mark.read_text() if mark.exists() else None
        if got != str(slot.t.pid):
            raise BenchFailure(f"gdb's PyRun_SimpleString wrote {got!r} to "
                               f"{mark}, expected {slot.t.pid}")
        return
    raise BenchFailure("gdb hung the busy target every time it ran the "
                       "visible-effect check")


def measure(ctx, interp, kind, runs, warmup, with_gdb):
    """Interleaved t_1, t_K (and gdb) runs on a target of this kind. A run
    that fails or breaks the target is not timed: it is recorded in
    r['incidents'][tool], the target is replaced and the run retried."""
    slot = Slot(interp, kind)
    lab = f"{kind}, {interp.label}"
    samples = {"1": [], "K": [], "gdb": []}
    incidents = {"pyleakdb": [], "gdb": []}
    hang_where, attempts = None, {"pyleakdb": 0, "gdb": 0}
    tmpdir = tempfile.mkdtemp(prefix="pyleakdb-bench-gdb-")
    try:
        slot.start()
        ctx.log(f"{lab}: target pid {slot.t.pid}; eval 1 x1 and x{K}, "
                f"{runs} runs each (+{warmup} warm-up)"
                + (f", interleaved with gdb x{GDB_RUNS} (+{GDB_WARMUP})"
                   if with_gdb else ""))
        counts = {"1": runs, "K": runs}
        warm = {"1": warmup, "K": warmup}
        if with_gdb:
            counts["gdb"], warm["gdb"] = GDB_RUNS, GDB_WARMUP
        validate = {"1": check_evals(1), "K": check_evals(K)}
        for phase, cnt in (("warm-up", warm), ("timed", counts)):
            queue = _schedule(cnt)
            while queue:
                name = queue.pop(0)
                tool = "gdb" if name == "gdb" else "pyleakdb"
                attempts[tool] += 1
                try:
                    if tool == "gdb":
                        try:
                            dt, out, err = run_gdb(slot.t.pid)
                        except GdbHang as e:
                            if hang_where is None:
                                hang_where = where_hung(ctx, slot.t.pid)
                            raise BenchFailure(
                                f"gdb hung the target ({e}); its main thread: "
                                f"{hang_where}")
                        check_gdb(out, err)
                    else:
                        n = 1 if name == "1" else K
                        dt, out, err = time_once(
                            pyleakdb_cmd(ctx, slot.t.pid, *["eval 1"] * n))
                        validate[name](out, err)
                except BenchFailure as e:
                    state = slot.state()
                    msg = str(e).strip()
                    incidents[tool].append(f"{msg}\n[target then: {state}]")
                    ctx.log(f"{lab}: {tool} run failed, target {state}: "
                            + "; ".join(msg.splitlines()[:4])[:600])
                    if len(incidents[tool]) >= GDB_MAX_HANGS:
                        raise BenchFailure(f"{tool} failed {len(incidents[tool])}"
                                           f" times on the {kind} target; last: "
                                           f"{msg.splitlines()[0]}")
                    slot.start()     # a fault inside may have damaged it
                    queue.append(name)       # try again, later
                    continue
                slot.health()
                if phase == "timed":
                    samples[name].append(dt)
        verify_target(ctx, slot)
        if with_gdb:
            gdb_effect(ctx, slot, tmpdir, incidents)
    finally:
        slot.stop()
        for p in Path(tmpdir).iterdir():
            p.unlink()
        os.rmdir(tmpdir)
    r = {k: Timing(v) for k, v in samples.items() if v}
    t1, tk = r["1"], r["K"]
    r["per"] = (tk.median - t1.median) / (K - 1)
    r["per_spread"] = (t1.spread ** 2 + tk.spread ** 2) ** 0.5 / (K - 1)
    r["incidents"], r["attempts"] = incidents, attempts
    r["hang_where"], r["targets"] = hang_where, slot.count
    ctx.log(f"{lab}: whole run {t1.text}, x{K} {tk.text} -> "
            f"{fmt_ms(r['per'], r['per_spread'])} per eval"
            + (f"; gdb {r['gdb'].text}" if with_gdb else "")
            + "".join(f"; {len(v)} {k} failure(s) in {attempts[k]} runs"
                      for k, v in incidents.items() if v))
    return r


def report_incidents(ctx, lab, r):
    """pyleakdb failures fail the benchmark; gdb's are a finding."""
    inc, att = r["incidents"], r["attempts"]
    p = inc["pyleakdb"]
    if p:
        first = p[0].splitlines()
        lines = []
        for l in first[1:]:
            if l.startswith(("error", "[target")) and l not in lines:
                lines.append(l)
        n_err = sum(l.startswith("error") for l in first)
        detail = "; ".join(lines)
        if n_err > len([l for l in lines if l.startswith("error")]):
            detail += f" ({n_err} error lines in all: the session went on failing)"
        ctx.fail(f"{lab}: pyleakdb failed {len(p)} of {att['pyleakdb']} runs "
                 f"(each failed run was retried on a fresh target; the "
                 f"figures are of the runs that worked); "
                 f"first: {detail[:700]}")
    g = inc["gdb"]
    if g:
        states = sorted(set(re.search(r"\[target then: (.*)\]", x).group(1)
                            for x in g if "[target then:" in x))
        ctx.note(f"{lab}: gdb failed in {len(g)} of {att['gdb']} runs: "
                 f"{g[0].splitlines()[0][:300]}; target afterwards: "
                 f"{', '.join(states)}; each time gdb and the target were "
                 f"killed and a fresh target took its place "
                 f"({r['targets']} targets in all); gdb's figure is of the "
                 f"runs that completed")
    elif lab.startswith("busy") and att["gdb"]:
        ctx.note(f"{lab}: gdb did not hang the target in {att['gdb']} runs")


def run(ctx):
    rows = []
    interps = find_interpreters(pyenv=True, min_version=(3, 8),
                                max_version=(3, 13))
    ctx.log("interpreters: " + ", ".join(i.label for i in interps))
    load0 = os.getloadavg()[0]
    floor = median_time(["/bin/true"], 21, warmup=2)
    ctx.log(f"harness floor (spawn /bin/true): {floor.text}")

    debian, others = interps[0], interps[1:]
    for kind in ("idle", "busy"):
        lab = f"{kind}, {debian.label}"
        tgt = TARGET_MS[kind] / 1e3
        try:
            r = measure(ctx, debian, kind, RUNS, WARMUP, with_gdb=True)
        except BenchFailure as e:
            ctx.fail(f"{lab}: {e}")
            rows.append(Row(f"eval 1 ({lab})", "FAILED", "FAILED",
                            target=f"< {TARGET_MS[kind]:.0f} ms", met=False))
            continue
        report_incidents(ctx, lab, r)
        gdb = r["gdb"]
        rows.append(Row(f"eval 1, whole run: attach, agent, eval, detach ({lab})",
                        r["1"].text, gdb.text,
                        fmt_ratio(gdb.median / r["1"].median)))
        rows.append(Row(f"eval 1, round trip in a session ({lab})",
                        fmt_ms(r["per"], r["per_spread"]), gdb.text,
                        fmt_ratio(gdb.median / r["per"]) if r["per"] > 0 else "-",
                        f"< {TARGET_MS[kind]:.0f} ms", r["per"] < tgt))
        ctx.note(f"{lab}: the whole run (a), {fmt_ms(r['1'].median)}, "
                 f"{'meets' if r['1'].median < tgt else 'misses'} even the "
                 f"{TARGET_MS[kind]:.0f} ms set for the round trip")

    for interp in others:
        for kind in ("idle", "busy"):
            lab = f"{kind}, {interp.label}"
            tgt = TARGET_MS[kind] / 1e3
            try:
                r = measure(ctx, interp, kind, PYENV_RUNS, PYENV_WARMUP,
                            with_gdb=False)
            except BenchFailure as e:
                ctx.fail(f"{lab}: {e}")
                rows.append(Row(f"eval 1, round trip in a session ({lab})",
                                "FAILED", target=f"< {TARGET_MS[kind]:.0f} ms",
                                met=False))
                continue
            report_incidents(ctx, lab, r)
            rows.append(Row(f"eval 1, round trip in a session ({lab}; "
                            f"whole run {fmt_ms(r['1'].median)})",
                            fmt_ms(r["per"], r["per_spread"]),
                            target=f"< {TARGET_MS[kind]:.0f} ms",
                            met=r["per"] < tgt))

    rows.append(Row("harness floor: spawn and wait for /bin/true", floor.text))
    ctx.note(f"gdb: {tool_version(['gdb', '--version'])}; pyleakdb binary "
             f"sha1 {pinned_binary()[1]}; load average {load0:.2f} at the start, "
             f"{os.getloadavg()[0]:.2f} at the end ({os.cpu_count()} CPUs)")
    return rows

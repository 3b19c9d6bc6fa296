# SPDX-License-Identifier: GPL-3.0-or-later
"""Breakpoints: what an armed RSS or line breakpoint costs a busy target,
how far RSS overshoots before the stop, and the time per `iter` step; the
RSS breakpoint against memory_profiler's --pdb-mmem, the line breakpoint
against a plain sys.settrace tracer."""

import json
import os
import re
import select
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from benchlib import (BENCH_ENV, DEBIAN_PYTHON, BenchFailure,
                      Row, Target, find_interpreters, fmt_ms, fmt_ratio,
                      median_times, pinned_binary, tool_version)

# 1. armed `break when rss > ...` on a CPU-bound target (Debian python3)
STEPS = 10_000                # step() calls per chunk of work (~1 ms on 3.11)
WINDOW = 1.0                  # seconds per measuring window
RSS_ROUNDS = 8                # rounds of (off, each interval) windows
INTERVALS = ["250us", "100us", "1ms"]       # the default first
NEVER_RSS = "64G"             # a threshold the target never reaches
MPROF_CHUNKS, MPROF_RUNS = 80, 5            # memory_profiler runs, and plain ones
MPROF_LIMIT_MB = 100_000      # --pdb-mmem: armed, never reached

# 2. RSS overshoot at 1 GB/s
ALLOC_CHUNK = 64 * 1024       # one bytearray
ALLOC_RATE = 1e9              # bytes per second, at most
ALLOC_SPAN = 256 * 2 ** 20    # per cycle: grow by this much, free, again
OVERSHOOT_RUNS = 9            # per interval
OVERSHOOT_INTERVALS = ["250us", "100us"]

# 3. armed line breakpoint on unwatched code, every interpreter
LINE_ROUNDS = 4
LINE_WINDOW = 0.8

# 4. iter on a 100k-object heap
HEAP_RECORDS = 100_000        # objects the heap holds for good
ITEMS_PER_ITER = 10           # Item instances each loop iteration adds
ITEMS_CAP = 2_000             # the list of Items starts over past this
ITER_K1, ITER_K2 = 2, 22
ITER_RUNS, ITER_WARMUP = 9, 1            # Debian
ITER_PYENV_RUNS = 5

TARGET_RSS_SLOWDOWN = 0.01
TARGET_POLL_CPU = 0.05
TARGET_OVERSHOOT = 2 ** 20
TARGET_LINE = {"monitoring": 0.05, "settrace": 0.50}
TARGET_ITER = 0.050

TITLE = ("breakpoints: armed RSS and line breakpoints on a busy target, "
         "RSS overshoot, iter")
OTHER = "alternative"
DESCRIPTION = f"""\
The **CPU-bound target** computes in pure Python, in chunks of fixed work
(a loop making {STEPS:,} calls of a four-line function `step()`; about
1 ms under Debian's 3.11), and writes after each chunk its wall time
(`perf_counter`) and its own CPU time (`thread_time`). A figure is the
lower quartile of those per-chunk times over a **window** of {WINDOW:.1f} s
(line breakpoints: {LINE_WINDOW:.1f} s): other processes on the machine
delay some chunks and move the median, while a cost that pyleakdb adds
delays every chunk and moves the lower quartile too. A window runs with
nothing attached (**off**), or while pyleakdb runs `continue` (from the
moment it prints `Continuing.`, when it lets the target go, to the end of
the duration given to `continue`: the attach and the stop are outside).
Windows come in rounds: an off window, then one of each other kind (their
order rotated from round to round), and a last off window; each window is
compared with the mean of the off windows just before and after it, and a
slowdown is the median of those ratios over the rounds, minus one (± half
their interquartile range).
Slowdowns are given in wall time, what a user waits for, and in the
target's own CPU time, which other load on the machine disturbs less.

- **armed RSS breakpoint** (Debian's /usr/bin/python3): `pyleakdb --batch
  -p PID -ex 'set rss-interval I' -ex 'break when rss > {NEVER_RSS}' -ex
  'continue {WINDOW:.0f}s'`, {RSS_ROUNDS} rounds, for I = 250 us (the
  default; target: under 1 % slowdown) and, as extra rows, 100 us and 1 ms.
  **pyleakdb's CPU**: the CPU time pyleakdb itself used during `continue`
  (`/proc/PID/schedstat` of its threads) over the wall time (target: under
  5 % of one core at the default interval).  The threshold being far away,
  pyleakdb polls less often than the interval (at least every 10 ms); the
  interval applies near a threshold, which the overshoot rows measure.
- **memory_profiler** (Debian python3-memory-profiler): `python3 -m
  memory_profiler --pdb-mmem={MPROF_LIMIT_MB} prog.py`, the same program
  running {MPROF_CHUNKS} chunks, against `python3 prog.py` alone, {MPROF_RUNS}
  runs each, interleaved. memory_profiler checks memory only on the lines of
  functions decorated with `@profile`, through a `sys.settrace` tracer that
  stays on in everything they call: the program's `main()` carries the
  decorator (without it nothing is watched and nothing would ever stop). A
  run with `--pdb-mmem=1` must stop in pdb, proving that this set-up
  watches. Its figure is the ratio of chunk times (the medians over runs
  of each run's lower quartile); the ratio column is that factor over
  pyleakdb's.
- **overshoot**: a target allocates `bytearray({ALLOC_CHUNK // 1024} KiB)`
  objects, never faster than {ALLOC_RATE / 1e9:.0f} GB/s (one every
  {ALLOC_CHUNK / ALLOC_RATE * 1e6:.1f} us, busy-waiting in between, without
  catching up after a delay), up to {ALLOC_SPAN // 2**20} MiB over its
  starting RSS, then frees them all and starts again. `pyleakdb --batch
  --json -p PID -ex 'break when rss > T' -ex 'continue 10s'`, T half-way
  up, {OVERSHOOT_RUNS} runs per interval, interleaved: the `overshoot` of the
  stop (RSS after everything stopped, minus T). Target: under 1 MiB (median;
  the worst run is given too). It cannot be less than one allocation, and
  Linux's RSS counters (per-CPU since 6.2, read approximately) may be off
  by a few hundred KiB either way.
- **armed line breakpoint, unwatched code**, under every interpreter found
  (Debian's, pyenv 3.8 to 3.13): `pyleakdb --batch -p PID -ex 'break
  prog.py:L' -ex 'continue ...'`, L a line in a function the program never
  calls, {LINE_ROUNDS} rounds. Targets: under 5 % on 3.12+
  (sys.monitoring), under 50 % before (a trace function). **Alternative**:
  the program installs `sys.settrace` itself with a no-op tracer that
  returns itself (line events everywhere: a naive debugger's cost); a
  tracer that returns None (call events only, the least any Python trace
  function costs) and, where the interpreter's headers are installed, an
  empty trace function written in C (CPython's tracing machinery alone:
  the floor for any debugger built on it) are given below the table. The ratio column is the no-op
  tracer's slowdown factor over pyleakdb's. A check per chunk shows that
  pyleakdb's hook is in place during its windows and gone in the others;
  once per interpreter the program calls the function and pyleakdb must
  stop there.
- **iter**: a target holds {HEAP_RECORDS:,} instances of a class `Record`
  and runs a loop whose iteration appends {ITEMS_PER_ITER} `Item` instances
  to a list (restarted past {ITEMS_CAP:,}), a few microseconds each.
  `pyleakdb --batch -p PID -ex 'break prog.py:L' -ex 'iter K'` (L in the
  loop) for K = {ITER_K1} and K = {ITER_K2}, {ITER_RUNS} runs each after
  {ITER_WARMUP} warm-up, interleaved (pyenv interpreters: {ITER_PYENV_RUNS});
  per step = (t_{ITER_K2} - t_{ITER_K1}) / {ITER_K2 - ITER_K1}, so that
  attach, the run to the first hit and detach cancel out. Each step runs
  the loop to the breakpoint, counts the heap by type and prints the
  growth; every run must print K iterations, all showing
  `+{ITEMS_PER_ITER} Item` but at most one (where the list starts over).
  Target: under 50 ms per step.
- After every pyleakdb run the target must be alive, not stopped and not
  traced. Other processes may load the machine: the load average is given
  below the table.
"""

# --------------------------------------------------------------------------
# targets

CPU_SRC = r'''
import os, sys, time
ready, out, ctl = sys.argv[1], sys.argv[2], sys.argv[3]
nchunks, steps = int(sys.argv[4]), int(sys.argv[5])
try:
    profile             # memory_profiler's decorator, when it runs us
except NameError:
    def profile(f):
        return f

def step(x, k):
    y = (x * 31 + k) % 1000003
    if y & 1:
        y ^= k
    return y

def chunk(n):
    x = 1
    for k in range(n):
        x = step(x, k)
    return x

def rarely():
    return sum(range(10))  # BREAK-HERE: never called, unless asked

def tracer_lines(frame, event, arg):
    return tracer_lines

def tracer_calls(frame, event, arg):
    return None

OURS = (None, tracer_lines, tracer_calls)
sys.path.insert(0, os.path.dirname(os.path.abspath(ctl)))
try:
    import benchctrace      # an empty C trace function, when it could be built
except ImportError:
    benchctrace = None
MON = getattr(sys, "monitoring", None)

def hooks():
    """'t': a trace function not ours; 'm': a sys.monitoring tool in use."""
    h = ""
    if sys.gettrace() not in OURS:
        h += "t"
    if MON is not None and any(MON.get_tool(i) is not None for i in range(6)):
        h += "m"
    return h or "-"

@profile
def main():
    cfd = os.open(ctl, os.O_RDONLY)
    ofd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    mode = b"0"
    i = 0
    while nchunks == 0 or i < nchunks:
        m = os.pread(cfd, 1, 0) or b"0"
        if m != mode:
            if m in (b"1", b"2") or mode in (b"1", b"2"):
                # only our own tracer on and off: never pyleakdb's
                sys.settrace({b"1": tracer_lines, b"2": tracer_calls}.get(m))
            if m == b"4" and benchctrace:
                benchctrace.on()
            elif mode == b"4" and benchctrace:
                benchctrace.off()
            mode = m
            if m == b"3":
                rarely()
        h = hooks()
        t0 = time.perf_counter()
        c0 = time.thread_time()
        chunk(steps)
        c1 = time.thread_time()
        t1 = time.perf_counter()
        os.write(ofd, ("%.6f %.7f %.7f %s %s\n" % (time.monotonic(), t1 - t0,
                       c1 - c0, mode.decode(), h)).encode())
        i += 1
        if i == 3:
            with open(ready + ".tmp", "w") as f:
                f.write(str(os.getpid()))
            os.rename(ready + ".tmp", ready)

main()
'''

# The floor of any trace-function debugger: CPython's tracing machinery
# alone, with a trace function in C that does nothing.
CTRACE_SRC = r'''
#include <Python.h>
#include <frameobject.h>

static int nothing(PyObject *obj, PyFrameObject *frame, int what, PyObject *arg)
{
    (void)obj; (void)frame; (void)what; (void)arg;
    return 0;
}

static PyObject *on(PyObject *self, PyObject *unused)
{
    (void)self; (void)unused;
    PyEval_SetTrace(nothing, NULL);
    Py_RETURN_NONE;
}

static PyObject *off(PyObject *self, PyObject *unused)
{
    (void)self; (void)unused;
    PyEval_SetTrace(NULL, NULL);
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"on", on, METH_NOARGS, NULL}, {"off", off, METH_NOARGS, NULL}, {NULL, NULL, 0, NULL}};
static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "benchctrace", NULL, -1, methods};
PyMODINIT_FUNC PyInit_benchctrace(void) { return PyModule_Create(&module); }
'''

ALLOC_SRC = r'''
import os, sys, time
ready, chunk, rate, span = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4])
clock = time.perf_counter
gap = chunk / rate

def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

base = rss()
ofd = os.open(ready + ".cycles", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
first = True
while True:
    keep = []
    n = 0
    stalled = 0.0
    t0 = nxt = clock()
    while n < span:
        keep.append(bytearray(chunk))
        n += chunk
        nxt += gap
        now = clock()
        if now > nxt:
            if now - nxt > 0.001:       # descheduled or stopped: not allocating
                stalled += now - nxt
            nxt = now                   # no burst to catch up
        else:
            while clock() < nxt:
                pass
    dt = clock() - t0
    del keep
    os.write(ofd, ("%d %.6f %.6f\n" % (n, dt, stalled)).encode())
    if first:
        first = False
        with open(ready + ".info", "w") as f:
            f.write(str(base))
        with open(ready + ".tmp", "w") as f:
            f.write(str(os.getpid()))
        os.rename(ready + ".tmp", ready)
    time.sleep(0.01)
'''

HEAP_SRC = r'''
import os, sys
ready, records, per_iter, cap = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])

class Record:
    def __init__(self, i):
        self.i = i

class Item:
    def __init__(self, i):
        self.i = i

heap = [Record(i) for i in range(records)]

def loop():
    items = []
    n = 0
    while True:
        for k in range(per_iter):
            items.append(Item(n))
        n += 1  # ITER-HERE
        if len(items) >= cap:
            items = []
        if n == 100:
            with open(ready + ".tmp", "w") as f:
                f.write(str(os.getpid()))
            os.rename(ready + ".tmp", ready)

loop()
'''


def line_of(src, marker):
    for i, l in enumerate(src.splitlines(), 1):
        if marker in l:
            return i
    raise AssertionError(marker)


BREAK_LINE = line_of(CPU_SRC, "BREAK-HERE")
ITER_LINE = line_of(HEAP_SRC, "ITER-HERE")


# --------------------------------------------------------------------------
# helpers

def pyleakdb_cmd(ctx, pid, *cmds, json_out=False):
    argv = [ctx.pyleakdb, "--batch"] + (["--json"] if json_out else []) + \
        ["-p", str(pid)]
    for c in cmds:
        argv += ["-ex", c]
    return argv


def run_cmd(cmd, timeout=60, **kw):
    """subprocess.run, output captured; a timeout (the command is killed, by
    PID) is a failure of the measurement."""
    try:
        return subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True,
                              env=BENCH_ENV, timeout=timeout, **kw)
    except subprocess.TimeoutExpired:
        raise BenchFailure(f"timed out after {timeout} s: {' '.join(cmd)}")


def cpu_ns(pid):
    """CPU time of all threads of pid so far, nanoseconds (schedstat)."""
    total = 0
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except FileNotFoundError:
        return None
    for tid in tids:
        try:
            total += int(Path(f"/proc/{pid}/task/{tid}/schedstat")
                         .read_text().split()[0])
        except (FileNotFoundError, ValueError, IndexError):
            pass
    return total


def fmt_pct(x, spread=None):
    s = f"{x * 100:+.1f} %" if abs(x) < 10 else f"{x * 100:+.0f} %"
    if spread is not None:
        s += f" ± {spread * 100:.1f}"
    return s


def fmt_bytes(n):
    if abs(n) < 1024:
        return f"{n:.0f} B"
    if abs(n) < 2 ** 20:
        return f"{n / 1024:.0f} KiB"
    return f"{n / 2 ** 20:.2f} MiB"


def med_spread(xs):
    s = sorted(xs)
    m = statistics.median(s)
    if len(s) >= 4:
        q = statistics.quantiles(s, n=4)
        return m, (q[2] - q[0]) / 2
    return m, (s[-1] - s[0]) / 2


class Chunks:
    """The per-chunk records the CPU-bound target appends to its file."""

    def __init__(self, path):
        self.path, self.off, self.rows = path, 0, []

    def refresh(self):
        with open(self.path, "rb") as f:
            f.seek(self.off)
            data = f.read()
        end = data.rfind(b"\n") + 1
        self.off += end
        for line in data[:end].decode().splitlines():
            t, wall, cpu, mode, hooks = line.split()
            self.rows.append((float(t) - float(wall), float(t), float(wall),
                              float(cpu), mode, hooks))

    def between(self, t_a, t_b, mode):
        self.refresh()
        return [r for r in self.rows
                if r[0] >= t_a and r[1] <= t_b and r[4] == mode]


def preemptions(pid):
    """How often the target has been descheduled against its will."""
    try:
        st = Path(f"/proc/{pid}/status").read_text()
        return int(re.search(r"^nonvoluntary_ctxt_switches:\s+(\d+)", st,
                             re.M).group(1))
    except (FileNotFoundError, AttributeError):
        return 0


class Window:
    def __init__(self, kind, rows, pyleakdb_cpu=None, preempt=None):
        self.kind = kind
        self.preempt = preempt      # the target's involuntary switches per s
        self.n = len(rows)
        self.wall = low_quartile([r[2] for r in rows])
        self.cpu = low_quartile([r[3] for r in rows])
        self.wall_median = statistics.median(r[2] for r in rows)
        self.hooks = {r[5] for r in rows}
        self.pyleakdb_cpu = pyleakdb_cpu


def low_quartile(xs):
    """The time a chunk takes when nothing else gets in its way: other
    processes delay some chunks (the median moves), a cost pyleakdb adds to
    every chunk moves this too."""
    s = sorted(xs)
    return s[(len(s) - 1) // 4]


MIN_CHUNKS = 3      # a window with fewer: the target hardly ran


def off_window(t, chunks, secs, mode="0", kind="off"):
    t_a = time.monotonic()
    n0 = preemptions(t.pid)
    time.sleep(secs)
    t_b = time.monotonic()
    n1 = preemptions(t.pid)
    rows = chunks.between(t_a, t_b, mode)
    if len(rows) < MIN_CHUNKS:
        raise BenchFailure(f"{kind} window: only {len(rows)} chunks in "
                           f"{secs:.1f} s")
    t.check()
    return Window(kind, rows, preempt=(n1 - n0) / (t_b - t_a))


def settle(chunks, timeout=20.0):
    """Wait until the target has run a whole chunk in mode 0 since now."""
    t0 = time.monotonic()
    while time.monotonic() < t0 + timeout:
        if chunks.between(t0, float("inf"), "0"):
            return
        time.sleep(0.005)
    raise BenchFailure(f"the target did not go back to mode 0 in {timeout:.0f} s")


def pyleakdb_window(ctx, t, chunks, cmds, secs, kind, trigger=None):
    """Run pyleakdb with cmds then `continue secs`; the window is the time
    between its `Continuing.` and the end of that duration: returns its
    Window. With trigger, trigger() runs at `Continuing.` and pyleakdb's
    output is returned instead."""
    argv = pyleakdb_cmd(ctx, t.pid, *cmds, f"continue {secs * 1000:.0f}ms")
    p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, env=BENCH_ENV)
    try:
        buf = b""
        deadline = time.monotonic() + 30
        fd = p.stdout.fileno()
        while b"Continuing.\n" not in buf:
            left = deadline - time.monotonic()
            r = select.select([fd], [], [], max(left, 0))[0] if left > 0 else []
            if not r:
                raise BenchFailure(f"pyleakdb did not continue within 30 s: "
                                   f"{' '.join(argv)}\n{buf.decode()[-800:]}")
            d = os.read(fd, 65536)
            if not d:
                break
            buf += d
        if b"Continuing.\n" not in buf:
            out, err = p.communicate(timeout=30)
            raise BenchFailure(f"pyleakdb exited before continuing (status "
                               f"{p.returncode}): {' '.join(argv)}\n"
                               f"{(buf + out).decode()[-800:]}{err.decode()[-800:]}")
        t_a = time.monotonic()
        c0, n0 = cpu_ns(p.pid), preemptions(t.pid)
        if trigger:
            trigger()
        else:
            time.sleep(max(secs - 0.05, 0))
        c1, t_c, n1 = cpu_ns(p.pid), time.monotonic(), preemptions(t.pid)
        out, err = p.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        raise BenchFailure(f"pyleakdb did not finish: {' '.join(argv)}")
    finally:
        if p.poll() is None:
            p.kill()        # by PID
            p.wait()
    out = (buf + out).decode(errors="replace")
    err = err.decode(errors="replace")
    t.check()
    if p.returncode != 0:
        raise BenchFailure(f"exit status {p.returncode}: {' '.join(argv)}\n"
                           f"{out[-800:]}{err[-800:]}")
    if trigger:
        return out
    if "stopped (time is up)" not in out:
        raise BenchFailure(f"pyleakdb's continue did not run its time out:\n"
                           f"{out[-1200:]}{err[-800:]}")
    rows = chunks.between(t_a + 0.002, t_a + secs - 0.005, "0")
    if len(rows) < MIN_CHUNKS:
        raise BenchFailure(f"{kind} window: only {len(rows)} chunks in "
                           f"{secs:.1f} s")
    pcpu = (c1 - c0) / 1e9 / (t_c - t_a) if c0 is not None and c1 is not None \
        else None
    return Window(kind, rows, pcpu, (n1 - n0) / (t_c - t_a))


def rounds(kinds, n_rounds, measure):
    """off, then each kind (rotated per round), ..., a last off. Returns
    {kind: {"wall": [ratios], "cpu": [ratios], "windows": [Window]}}."""
    seq = []
    for r in range(n_rounds):
        seq.append(measure("off"))
        rot = kinds[r % len(kinds):] + kinds[:r % len(kinds)]
        for k in rot:
            seq.append(measure(k))
    seq.append(measure("off"))
    res = {k: {"wall": [], "cpu": [], "windows": []} for k in kinds + ["off"]}
    offs = [i for i, w in enumerate(seq) if w.kind == "off"]
    for i, w in enumerate(seq):
        res[w.kind]["windows"].append(w)
        if w.kind == "off":
            continue
        before = max(j for j in offs if j < i)
        after = min(j for j in offs if j > i)
        for f in ("wall", "cpu"):
            ref = (getattr(seq[before], f) + getattr(seq[after], f)) / 2
            res[w.kind][f].append(getattr(w, f) / ref)
    return res


def slowdown(res, kind, f="wall"):
    m, s = med_spread(res[kind][f])
    return m - 1, s


# --------------------------------------------------------------------------
# 1. armed RSS breakpoint; memory_profiler

def build_ctrace(interp, tmp):
    """Compile CTRACE_SRC for interp into tmp; False where its headers or a
    compiler are missing."""
    try:
        p = subprocess.run([interp.path, "-c",
                            "import sysconfig; print(sysconfig.get_paths()['include']);"
                            "print(sysconfig.get_config_var('EXT_SUFFIX'))"],
                           capture_output=True, text=True, timeout=30)
        inc, suffix = p.stdout.split()
    except (OSError, ValueError, subprocess.SubprocessError):
        return False
    if not Path(inc, "Python.h").exists() or not shutil.which("gcc"):
        return False
    for old in Path(tmp).glob("benchctrace*"):
        old.unlink()
    src = Path(tmp, "benchctrace.c")
    src.write_text(CTRACE_SRC)
    r = subprocess.run(["gcc", "-O2", "-shared", "-fPIC", "-I" + inc, str(src),
                        "-o", str(Path(tmp, "benchctrace" + suffix))],
                       capture_output=True, timeout=120)
    return r.returncode == 0


def cpu_target(interp, tmp, name="break_cpu"):
    ctl = Path(tmp, f"{name}.ctl")
    ctl.write_bytes(b"0")
    out = Path(tmp, f"{name}.chunks")
    if out.exists():
        out.unlink()
    t = Target(interp.path, CPU_SRC, [str(out), str(ctl), "0", str(STEPS)],
               name=name)
    return t, ctl, out


def check_hooks_off(ctx, lab, res):
    bad = {h for w in res["off"]["windows"] for h in w.hooks} - {"-"}
    if bad:
        ctx.fail(f"{lab}: hooks in the target after pyleakdb detached "
                 f"(flags {sorted(bad)}: t = a trace function, m = a "
                 f"sys.monitoring tool)")


def measure_rss(ctx, debian, tmp):
    lab = debian.label
    t, ctl, out = cpu_target(debian, tmp)
    with t:
        chunks = Chunks(out)
        ctx.log(f"{lab}: CPU-bound target pid {t.pid}; {RSS_ROUNDS} rounds of "
                f"off and rss-interval {', '.join(INTERVALS)} windows of "
                f"{WINDOW:.1f} s")

        def measure(kind):
            if kind == "off":
                return off_window(t, chunks, WINDOW)
            return pyleakdb_window(
                ctx, t, chunks, [f"set rss-interval {kind}",
                                 f"break when rss > {NEVER_RSS}"], WINDOW, kind)
        res = rounds(list(INTERVALS), RSS_ROUNDS, measure)
        check_hooks_off(ctx, lab, res)
        for k in INTERVALS:
            res[k]["pcpu"] = statistics.median(
                w.pyleakdb_cpu for w in res[k]["windows"])
            w, ws = slowdown(res, k)
            c, cs = slowdown(res, k, "cpu")
            ctx.log(f"{lab}: rss-interval {k}: slowdown wall {fmt_pct(w, ws)}, "
                    f"CPU {fmt_pct(c, cs)}; pyleakdb CPU "
                    f"{res[k]['pcpu'] * 100:.1f} %")
        res["chunk"] = statistics.median(w.wall for w in res["off"]["windows"])
        for k in ["off"] + INTERVALS:
            res[k]["preempt"] = statistics.median(
                w.preempt for w in res[k]["windows"])
    return res


def chunk_times(path):
    rows = [l.split() for l in Path(path).read_text().splitlines()]
    if len(rows) < MPROF_CHUNKS:
        raise BenchFailure(f"{path}: {len(rows)} chunks, expected {MPROF_CHUNKS}")
    return (low_quartile([float(r[1]) for r in rows]),
            low_quartile([float(r[2]) for r in rows]))


def measure_mprof(ctx, tmp):
    """Fresh processes, fixed work: python3 prog.py against python3 -m
    memory_profiler --pdb-mmem=LIMIT prog.py, interleaved."""
    if subprocess.run([DEBIAN_PYTHON, "-c", "import memory_profiler"],
                      capture_output=True, env=BENCH_ENV).returncode != 0:
        raise BenchFailure("memory_profiler is missing (Debian package "
                           "python3-memory-profiler)")
    d = Path(tmp, "mprof")
    d.mkdir()
    script = d / "break_cpu.py"
    script.write_text(CPU_SRC)
    ctl = d / "ctl"
    ctl.write_bytes(b"0")
    base = [str(script), str(d / "ready"), str(d / "chunks"), str(ctl),
            str(MPROF_CHUNKS), str(STEPS)]
    mp = [DEBIAN_PYTHON, "-m", "memory_profiler"]
    cmds = {"plain": [DEBIAN_PYTHON] + base,
            "mprof": mp + [f"--pdb-mmem={MPROF_LIMIT_MB}"] + base}

    def run1(cmd, timeout=120):
        if (d / "chunks").exists():
            (d / "chunks").unlink()
        return run_cmd(cmd, timeout, cwd=d)

    # it watches: with a 1 MB limit it stops in pdb (stdin at EOF ends it)
    p = run1(mp + ["--pdb-mmem=1"] + base, timeout=60)
    o = p.stdout.decode(errors="replace")
    if "exceeded the maximum" not in o or "Stepping into the debugger" not in o:
        raise BenchFailure("memory_profiler --pdb-mmem=1 did not stop:\n"
                           + o[-800:] + p.stderr.decode(errors="replace")[-800:])
    ctx.log(f"memory_profiler: {MPROF_RUNS} runs of {MPROF_CHUNKS} chunks, "
            f"interleaved with plain runs")
    res = {"plain": ([], []), "mprof": ([], [])}
    for i in range(MPROF_RUNS):
        for k in ("plain", "mprof"):
            p = run1(cmds[k])
            if p.returncode != 0:
                raise BenchFailure(f"{k} run: exit status {p.returncode}:\n"
                                   + p.stderr.decode(errors="replace")[-800:])
            w, c = chunk_times(d / "chunks")
            res[k][0].append(w)
            res[k][1].append(c)
    out = {}
    for f, i in (("wall", 0), ("cpu", 1)):
        out[f] = statistics.median(res["mprof"][i]) / statistics.median(res["plain"][i])
    out["chunk"] = statistics.median(res["plain"][0])
    ctx.log(f"memory_profiler: {out['wall']:.1f}x the plain program's chunk "
            f"time (CPU time {out['cpu']:.1f}x)")
    return out


# --------------------------------------------------------------------------
# 2. overshoot

def measure_overshoot(ctx, debian, tmp):
    lab = debian.label
    with Target(debian.path, ALLOC_SRC,
                [str(ALLOC_CHUNK), str(ALLOC_RATE), str(ALLOC_SPAN)],
                name="break_alloc") as t:
        d = Path(t._dir.name)
        base = int((d / "ready.info").read_text())
        thr_mib = (base + ALLOC_SPAN // 2) // 2 ** 20
        thr = thr_mib * 2 ** 20
        ctx.log(f"{lab}: allocating target pid {t.pid}, RSS {base / 2**20:.1f} "
                f"MiB to +{ALLOC_SPAN // 2**20} MiB and back; break when rss > "
                f"{thr_mib}M, {OVERSHOOT_RUNS} runs per interval")
        res = {k: [] for k in OVERSHOOT_INTERVALS}
        for i in range(OVERSHOOT_RUNS):
            for k in OVERSHOOT_INTERVALS:
                argv = pyleakdb_cmd(ctx, t.pid, f"set rss-interval {k}",
                                    f"break when rss > {thr_mib}M",
                                    "continue 10s", json_out=True)
                p = run_cmd(argv)
                t.check()
                out = p.stdout.decode(errors="replace")
                stop = None
                for l in out.splitlines():
                    if l.startswith("{"):
                        o = json.loads(l)
                        if o.get("command", "").startswith("continue"):
                            stop = o.get("result", {})
                if p.returncode != 0 or not stop or stop.get("stopped") != "rss":
                    raise BenchFailure(f"no RSS stop (exit status {p.returncode}):"
                                       f" {' '.join(argv)}\n{out[-1200:]}"
                                       f"{p.stderr.decode(errors='replace')[-800:]}")
                if stop.get("threshold") != thr:
                    raise BenchFailure(f"threshold {stop.get('threshold')}, "
                                       f"expected {thr}")
                res[k].append(stop["overshoot"])
        cycles = [l.split() for l in (d / "ready.cycles").read_text().splitlines()]
        rates = [int(n) / (float(dt) - float(st)) for n, dt, st in cycles
                 if float(dt) - float(st) > 0]
        res["rate"] = statistics.median(rates)
        res["cycles"] = len(cycles)
    for k in OVERSHOOT_INTERVALS:
        ctx.log(f"{lab}: overshoot at {k}: median "
                f"{fmt_bytes(statistics.median(res[k]))}, worst "
                f"{fmt_bytes(max(res[k]))} ({', '.join(fmt_bytes(x) for x in res[k])})")
    ctx.log(f"{lab}: the target allocated at {res['rate'] / 1e9:.2f} GB/s "
            f"(median over {res['cycles']} cycles, pauses left out)")
    return res


# --------------------------------------------------------------------------
# 3. armed line breakpoint on code that does not run

def measure_line(ctx, interp, tmp):
    lab = interp.label
    mon = interp.version[:2] >= (3, 12)
    floor = not mon and build_ctrace(interp, tmp)
    t, ctl, out = cpu_target(interp, tmp, name="break_line")
    with t:
        chunks = Chunks(out)
        where = f"{t.script}:{BREAK_LINE}"
        ctx.log(f"{lab}: target pid {t.pid}; {LINE_ROUNDS} rounds of off, "
                f"break {Path(t.script).name}:{BREAK_LINE}, settrace windows")

        def measure(kind):
            if kind == "off":
                return off_window(t, chunks, LINE_WINDOW)
            if kind == "line":
                return pyleakdb_window(ctx, t, chunks, [f"break {where}"],
                                       LINE_WINDOW, kind)
            m = {"st_lines": "1", "st_calls": "2", "st_c": "4"}[kind]
            ctl.write_bytes(m.encode())
            try:
                return off_window(t, chunks, LINE_WINDOW, mode=m, kind=kind)
            finally:
                ctl.write_bytes(b"0")
                settle(chunks)     # its own tracer gone before pyleakdb comes
        kinds = ["line", "st_lines", "st_calls"] + (["st_c"] if floor else [])
        res = rounds(kinds, LINE_ROUNDS, measure)
        check_hooks_off(ctx, lab, res)
        want = "m" if mon else "t"
        missing = [w for w in res["line"]["windows"] if want not in
                   "".join(w.hooks)]
        if missing:
            ctx.fail(f"{lab}: in {len(missing)} of {len(res['line']['windows'])}"
                     f" pyleakdb windows the target saw no "
                     f"{'sys.monitoring tool' if mon else 'trace function'}: "
                     f"the breakpoint was not armed")

        # the breakpoint does fire: the program calls rarely() once
        def trigger():
            ctl.write_bytes(b"3")
        try:
            o = pyleakdb_window(ctx, t, chunks, [f"break {where}"], 20.0,
                                "hit", trigger=trigger)
        finally:
            ctl.write_bytes(b"0")
        if not re.search(rf"^Breakpoint 1, rarely at .*:{BREAK_LINE}\b", o, re.M):
            ctx.fail(f"{lab}: the line breakpoint did not stop when rarely() "
                     f"ran:\n{o[-800:]}")
        res["chunk"] = statistics.median(w.wall for w in res["off"]["windows"])
        res["chunk_cpu"] = statistics.median(w.cpu for w in res["off"]["windows"])
        res["mon"] = mon
        res["floor"] = floor
    for k in kinds:
        w, ws = slowdown(res, k)
        c, cs = slowdown(res, k, "cpu")
        ctx.log(f"{lab}: {k}: wall {fmt_pct(w, ws)}, CPU {fmt_pct(c, cs)}")
    return res


# --------------------------------------------------------------------------
# 4. iter

def check_iter(k):
    def check(out, err):
        its = re.findall(r"^iteration (\d+)  rss .*$", out, re.M)
        if [int(x) for x in its] != list(range(1, k + 1)):
            raise BenchFailure(f"iter {k} printed iterations {its}:\n"
                               f"{out[-1500:]}{err[-800:]}")
        grew = len(re.findall(rf"^iteration \d+  rss .*  \+{ITEMS_PER_ITER} "
                              rf"Item\b", out, re.M))
        if grew < k - 1:       # one may be the list starting over
            raise BenchFailure(f"iter {k}: {grew} iterations show "
                               f"+{ITEMS_PER_ITER} Item, expected {k}:\n"
                               f"{out[-1500:]}")
    return check


def measure_iter(ctx, interp, runs, warmup):
    lab = interp.label
    with Target(interp.path, HEAP_SRC, [str(HEAP_RECORDS), str(ITEMS_PER_ITER),
                                        str(ITEMS_CAP)],
                ready_timeout=60, name="break_heap") as t:
        where = f"{t.script}:{ITER_LINE}"
        p = run_cmd(pyleakdb_cmd(ctx, t.pid, "top 3", json_out=True))
        t.check()
        objects = None
        for l in p.stdout.decode(errors="replace").splitlines():
            if l.startswith("{") and '"top 3"' in l:
                objects = json.loads(l)["result"]["objects"]
        if not objects or objects < HEAP_RECORDS:
            raise BenchFailure(f"{lab}: top counted {objects} objects")
        ctx.log(f"{lab}: heap target pid {t.pid}, {objects:,} tracked objects; "
                f"iter {ITER_K1} and iter {ITER_K2}, {runs} runs each "
                f"(+{warmup} warm-up)")
        r = median_times(
            {"1": pyleakdb_cmd(ctx, t.pid, f"break {where}", f"iter {ITER_K1}"),
             "K": pyleakdb_cmd(ctx, t.pid, f"break {where}", f"iter {ITER_K2}")},
            runs, warmup, timeout=120, check=t.check,
            validate={"1": check_iter(ITER_K1), "K": check_iter(ITER_K2)})
    t1, tk = r["1"], r["K"]
    per = (tk.median - t1.median) / (ITER_K2 - ITER_K1)
    spread = (t1.spread ** 2 + tk.spread ** 2) ** 0.5 / (ITER_K2 - ITER_K1)
    ctx.log(f"{lab}: iter {ITER_K1} {t1.text}, iter {ITER_K2} {tk.text} -> "
            f"{fmt_ms(per, spread)} per step")
    return {"t1": t1, "tk": tk, "per": per, "spread": spread, "objects": objects}


# --------------------------------------------------------------------------

def run(ctx):
    interps = find_interpreters(pyenv=True, min_version=(3, 8),
                                max_version=(3, 13))
    debian = interps[0]
    ctx.log("interpreters: " + ", ".join(i.label for i in interps))
    load0 = os.getloadavg()[0]
    rows = []
    tmp = tempfile.mkdtemp(prefix="pyleakdb-bench-break-")
    try:
        # 1. armed RSS breakpoint, against memory_profiler
        try:
            mprof = measure_mprof(ctx, tmp)
        except BenchFailure as e:
            ctx.fail(f"memory_profiler: {e}")
            mprof = None
        try:
            rss = measure_rss(ctx, debian, tmp)
        except BenchFailure as e:
            ctx.fail(f"armed RSS breakpoint: {e}")
            rss = None
        if rss:
            d = INTERVALS[0]
            w, ws = slowdown(rss, d)
            c, cs = slowdown(rss, d, "cpu")
            other, ratio = "", ""
            if mprof:
                other = f"{fmt_pct(mprof['wall'] - 1)} ({mprof['wall']:.1f}x)"
                ratio = fmt_ratio(mprof["wall"] / (1 + w))
            rows.append(Row(
                f"armed `break when rss > {NEVER_RSS}`, CPU-bound target: "
                f"slowdown, wall time per chunk of work ({debian.label}; "
                f"alternative: memory_profiler --pdb-mmem)",
                fmt_pct(w, ws), other, ratio,
                f"< {TARGET_RSS_SLOWDOWN * 100:.0f} %", w < TARGET_RSS_SLOWDOWN))
            rows.append(Row(
                "the same in the target's own CPU time per chunk",
                fmt_pct(c, cs),
                f"{fmt_pct(mprof['cpu'] - 1)} ({mprof['cpu']:.1f}x)" if mprof else "",
                fmt_ratio(mprof["cpu"] / (1 + c)) if mprof else ""))
            rows.append(Row(
                f"pyleakdb's own CPU use while armed, far below the threshold "
                f"(it polls every {d}, the default, only near it)",
                f"{rss[d]['pcpu'] * 100:.1f} % of a core", "", "",
                f"< {TARGET_POLL_CPU * 100:.0f} %", rss[d]["pcpu"] < TARGET_POLL_CPU))
            for k in INTERVALS[1:]:
                w2, ws2 = slowdown(rss, k)
                c2, _ = slowdown(rss, k, "cpu")
                rows.append(Row(
                    f"`set rss-interval {k}`: target slowdown, wall (CPU time) / "
                    f"pyleakdb's CPU use",
                    f"{fmt_pct(w2, ws2)} ({fmt_pct(c2)}) / "
                    f"{rss[k]['pcpu'] * 100:.1f} %"))
            ctx.note(f"CPU-bound target: {fmt_ms(rss['chunk'])} per chunk of "
                     f"{STEPS:,} calls under {debian.label} with nothing attached"
                     + (f" ({fmt_ms(mprof['chunk'])} in the fresh processes "
                        f"memory_profiler is compared with)" if mprof else "")
                     + "; it was descheduled involuntarily "
                     + ", ".join(f"{rss[k]['preempt']:.0f} times/s "
                                 + ("with nothing attached" if k == "off" else
                                    f"while pyleakdb polled every {k}")
                                 for k in ["off"] + INTERVALS)
                     + " (a poll that finds no idle CPU preempts it)")
        elif mprof:
            rows.append(Row(f"armed RSS breakpoint, CPU-bound target "
                            f"({debian.label})", "FAILED",
                            f"{fmt_pct(mprof['wall'] - 1)} ({mprof['wall']:.1f}x)",
                            target=f"< {TARGET_RSS_SLOWDOWN * 100:.0f} %",
                            met=False))

        # 2. overshoot
        try:
            ov = measure_overshoot(ctx, debian, tmp)
        except BenchFailure as e:
            ctx.fail(f"overshoot: {e}")
            ov = None
        if ov:
            for i, k in enumerate(OVERSHOOT_INTERVALS):
                m = statistics.median(ov[k])
                default = i == 0
                rows.append(Row(
                    f"RSS over the threshold at the stop, allocating "
                    f"{ov['rate'] / 1e9:.2f} GB/s (at most "
                    f"{ALLOC_RATE / 1e9:.0f}) in {ALLOC_CHUNK // 1024} KiB "
                    f"bytearrays, `rss-interval {k}`"
                    f"{' (default)' if default else ''}: median of "
                    f"{len(ov[k])} (worst)",
                    f"{fmt_bytes(m)} ({fmt_bytes(max(ov[k]))})", "", "",
                    f"< {TARGET_OVERSHOOT // 2**20} MiB" if default else "",
                    m < TARGET_OVERSHOOT if default else None))
            ctx.note(f"overshoot target: one allocation is "
                     f"{fmt_bytes(ALLOC_CHUNK)}; it allocated at "
                     f"{ov['rate'] / 1e9:.2f} GB/s (median over {ov['cycles']} "
                     f"cycles of {ALLOC_SPAN // 2**20} MiB, pauses left out); "
                     f"every stop, in bytes at "
                     + "; ".join(f"{k}: {', '.join(str(x) for x in ov[k])}"
                                 for k in OVERSHOOT_INTERVALS))

        # 3. armed line breakpoint, every interpreter
        calls_notes = []
        for interp in interps:
            try:
                ln = measure_line(ctx, interp, tmp)
            except BenchFailure as e:
                ctx.fail(f"line breakpoint ({interp.label}): {e}")
                rows.append(Row(f"armed line breakpoint, unwatched code "
                                f"({interp.label})", "FAILED", met=False))
                continue
            how = "monitoring" if ln["mon"] else "settrace"
            w, ws = slowdown(ln, "line")
            c, _ = slowdown(ln, "line", "cpu")
            sl, _ = slowdown(ln, "st_lines")
            sc, _ = slowdown(ln, "st_calls")
            tgt = TARGET_LINE[how]
            rows.append(Row(
                f"armed line breakpoint, unwatched code: slowdown, wall (CPU "
                f"time) ({interp.label}, "
                f"{'sys.monitoring' if ln['mon'] else 'trace function'}; "
                f"alternative: sys.settrace no-op tracer)",
                f"{fmt_pct(w, ws)} ({fmt_pct(c)})", fmt_pct(sl),
                fmt_ratio((1 + sl) / (1 + w)),
                f"< {tgt * 100:.0f} %", w < tgt))
            per_call = (ln["chunk_cpu"] * c) / (STEPS + 1)
            calls_notes.append(
                f"{interp.version_text}: {fmt_ms(ln['chunk'])} per chunk, "
                f"pyleakdb {per_call * 1e9:.0f} ns per call, a tracer "
                f"returning None {fmt_pct(sc)}"
                + (f", an empty C trace function {fmt_pct(slowdown(ln, 'st_c')[0])}"
                   if ln["floor"] else ""))
        ctx.note("line breakpoints: each chunk makes "
                 f"{STEPS + 1:,} Python calls of a few lines each, so that a "
                 "slowdown divided by them is a cost per call (call-heavy code "
                 "pays more, loops without calls less); an empty trace function "
                 "written in C (PyEval_SetTrace, built against the interpreter's "
                 "headers where they are installed) is the least that any "
                 "debugger using CPython's tracing pays before 3.12; per "
                 "interpreter: "
                 + "; ".join(calls_notes))

        # 4. iter
        for i, interp in enumerate(interps):
            runs, warm = (ITER_RUNS, ITER_WARMUP) if i == 0 else (ITER_PYENV_RUNS, 1)
            try:
                it = measure_iter(ctx, interp, runs, warm)
            except BenchFailure as e:
                ctx.fail(f"iter ({interp.label}): {e}")
                rows.append(Row(f"iter, per step ({interp.label})", "FAILED",
                                target=f"< {TARGET_ITER * 1e3:.0f} ms", met=False))
                continue
            rows.append(Row(
                f"iter, per step: run to the breakpoint, census, growth "
                f"({it['objects'] // 1000}k objects, {interp.label}; "
                f"whole `iter {ITER_K1}` {fmt_ms(it['t1'].median)})",
                fmt_ms(it["per"], it["spread"]), "", "",
                f"< {TARGET_ITER * 1e3:.0f} ms", it["per"] < TARGET_ITER))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    load1 = os.getloadavg()[0]
    if max(load0, load1) > (os.cpu_count() or 1):
        ctx.note(f"the machine was overloaded (load average {load0:.1f} at the "
                 f"start, {load1:.1f} at the end, on {os.cpu_count()} CPUs): "
                 f"other processes took the target's CPU, so wall-time "
                 f"slowdowns are mostly their noise; the CPU-time figures "
                 f"are the ones to read")
    ctx.note(f"memory_profiler "
             f"{tool_version([DEBIAN_PYTHON, '-c', 'import memory_profiler; print(memory_profiler.__version__)'])}"
             f" (Debian python3-memory-profiler, psutil backend); pyleakdb "
             f"binary sha1 {pinned_binary()[1]}; load average {load0:.2f} at "
             f"the start, {load1:.2f} at the end "
             f"({os.cpu_count()} CPUs)")
    return rows

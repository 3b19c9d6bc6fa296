# SPDX-License-Identifier: GPL-3.0-or-later
"""Stacks of a live Python: pyleakdb `bt all` / `pystack all` against gdb's
`thread apply all bt`, on a target with 16 threads 100 Python frames deep."""

import re

from benchlib import (BenchFailure, Row, Target, find_interpreters, fmt_ms,
                      fmt_ratio, median_time, median_times, tool_version)

NTHREADS = 16          # worker threads, plus the main thread
DEPTH = 100            # rec() frames on each worker's stack
BT_RUNS, BT_WARMUP = 31, 2
GDB_RUNS, GDB_WARMUP = 7, 1
PYSTACK_RUNS, PYSTACK_WARMUP, PYSTACK_K = 21, 2, 21
PYENV_BT_RUNS = 15
RATIO_TARGET = 50.0    # gdb / pyleakdb, bt all
PYSTACK_TARGET = 0.010 # seconds per `pystack all`, attach excluded

TITLE = f"all stacks of {NTHREADS} threads {DEPTH} Python frames deep"
OTHER = "gdb"
DESCRIPTION = f"""\
Target: a Python program whose {NTHREADS} worker threads each recurse
{DEPTH} calls deep in a function `rec()`, then block in `Event.wait()`; the
main thread blocks too ({NTHREADS + 1} threads). It is ready once
`sys._current_frames()` shows every worker blocked at the bottom of its
recursion.

- **bt all**: `pyleakdb --batch -p PID -ex 'bt all'` (merged native and
  Python frames of every thread), {BT_RUNS} runs after {BT_WARMUP} warm-ups,
  interleaved with `gdb -nx -iex 'set debuginfod enabled off' -batch -p PID
  -ex 'thread apply all bt'`, {GDB_RUNS} runs after {GDB_WARMUP} warm-up, under
  Debian's /usr/bin/python3 only. gdb shows native frames only: python3.11
  has no debug symbols installed (libc6-dbg is), and no gdb Python
  extension is loaded (`-nx`), so gdb does less work than pyleakdb. Every
  pyleakdb output must show {NTHREADS + 1} threads, {NTHREADS} of them with
  exactly {DEPTH} `rec()` frames and native frames; every gdb output must
  show {NTHREADS + 1} threads.
- **pystack all, per command**: the command itself, without process start-up,
  attach and detach: medians of a batch running `pystack all` {PYSTACK_K}
  times (t_K) and of one running it once (t_1), interleaved, {PYSTACK_RUNS}
  runs each after {PYSTACK_WARMUP} warm-ups; per command = (t_K - t_1) /
  (K - 1). **Whole batch** is t_1, what a user waits for.
- The pyleakdb figures are repeated under every pyenv CPython 3.8 to 3.13
  found ({PYENV_BT_RUNS} `bt all` runs each), so that a regression on one
  version shows.
- The harness floor (spawning `/bin/true` and waiting for it) is included in
  every figure above.
"""

TARGET_SRC = r'''
import os, sys, threading, time

ready, nthreads, depth = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
stop = threading.Event()

def rec(n):
    if n <= 1:
        stop.wait()
        return
    rec(n - 1)

workers = [threading.Thread(target=rec, args=(depth,), daemon=True)
           for _ in range(nthreads)]
for t in workers:
    t.start()

# Ready once every worker blocks in Event.wait at the bottom of its recursion.
ident = {t.ident for t in workers}
ev_wait, rec_code = threading.Event.wait.__code__, rec.__code__
def settled(f):
    n, seen_wait = 0, False
    while f is not None:
        seen_wait |= f.f_code is ev_wait
        n += f.f_code is rec_code
        f = f.f_back
    return seen_wait and n == depth
deadline = time.monotonic() + 30
while True:
    frames = sys._current_frames()
    if all(i in frames and settled(frames[i]) for i in ident):
        break
    if time.monotonic() > deadline:
        sys.exit("workers did not settle")
    time.sleep(0.01)
time.sleep(0.05)   # from Condition.wait's Python code into the futex

with open(ready + ".tmp", "w") as f:
    f.write(str(os.getpid()))
os.rename(ready + ".tmp", ready)
stop.wait()
'''

THREAD_RE = re.compile(r"^Thread (\d+)\b", re.M)
NATIVE_RE = re.compile(r"^#\d+\s+0x[0-9a-f]+ in ", re.M)


def _blocks(out):
    starts = [m.start() for m in THREAD_RE.finditer(out)]
    return [out[a:b] for a, b in zip(starts, starts[1:] + [len(out)])]


def check_pyleakdb(out, repeats=1, native=False, script="stacks_target.py"):
    """Each of `repeats` listings shows NTHREADS+1 threads, NTHREADS of them
    with exactly DEPTH rec() frames (and native frames when native)."""
    rec_re = re.compile(r"\brec \(.*" + re.escape(script) + r":\d+\)")
    blocks = _blocks(out)
    want = (NTHREADS + 1) * repeats
    if len(blocks) != want:
        raise BenchFailure(f"pyleakdb showed {len(blocks)} thread listings, "
                           f"expected {want}:\n{out[:1500]}")
    deep = [b for b in blocks if rec_re.search(b)]
    if len(deep) != NTHREADS * repeats:
        raise BenchFailure(f"{len(deep)} threads with rec() frames, expected "
                           f"{NTHREADS * repeats}")
    for b in deep:
        n = len(rec_re.findall(b))
        if n != DEPTH:
            raise BenchFailure(f"a thread shows {n} rec() frames, expected "
                               f"{DEPTH}:\n{b[:1500]}")
        if native and not NATIVE_RE.search(b):
            raise BenchFailure(f"no native frames in a bt listing:\n{b[:1500]}")


def check_gdb(out):
    n = len(re.findall(r"^Thread \d+ \(Thread 0x", out, re.M))
    if n != NTHREADS + 1:
        raise BenchFailure(f"gdb showed {n} threads, expected {NTHREADS + 1}:"
                           f"\n{out[:1500]}")


def pyleakdb_cmd(ctx, pid, *cmds):
    argv = [ctx.pyleakdb, "--batch", "-p", str(pid)]
    for c in cmds:
        argv += ["-ex", c]
    return argv


GDB_ARGV = ["gdb", "-nx", "-iex", "set debuginfod enabled off", "-batch"]


def measure(ctx, interp, t, bt_runs, with_gdb=False):
    """bt all (and gdb, interleaved with it) and pystack all figures for one
    target; returns a dict of Timings and the derived per-command time."""
    cmds = {"bt": pyleakdb_cmd(ctx, t.pid, "bt all")}
    n, warm = {"bt": bt_runs}, {"bt": BT_WARMUP}
    val = {"bt": lambda o, e: check_pyleakdb(o, native=True)}
    what = f"pyleakdb bt all x{bt_runs} (+{BT_WARMUP} warm-up)"
    if with_gdb:
        cmds["gdb"] = GDB_ARGV + ["-p", str(t.pid), "-ex", "thread apply all bt"]
        n["gdb"], warm["gdb"] = GDB_RUNS, GDB_WARMUP
        val["gdb"] = lambda o, e: check_gdb(o)
        what += (f", interleaved with gdb thread apply all bt x{GDB_RUNS} "
                 f"(+{GDB_WARMUP} warm-up)")
    ctx.log(f"{interp.label}: {what}")
    r = median_times(cmds, n, warm, check=t.check, validate=val, timeout=120)
    ctx.log(f"{interp.label}: bt all {r['bt'].text}"
            + (f", gdb {r['gdb'].text}" if with_gdb else ""))

    ctx.log(f"{interp.label}: pystack all x1 vs x{PYSTACK_K}, interleaved, "
            f"{PYSTACK_RUNS} runs each (+{PYSTACK_WARMUP} warm-up)")
    ps = median_times(
        {"1": pyleakdb_cmd(ctx, t.pid, "pystack all"),
         "K": pyleakdb_cmd(ctx, t.pid, *["pystack all"] * PYSTACK_K)},
        PYSTACK_RUNS, warmup=PYSTACK_WARMUP, check=t.check,
        validate={"1": lambda o, e: check_pyleakdb(o),
                  "K": lambda o, e: check_pyleakdb(o, repeats=PYSTACK_K)})
    t1, tk = ps["1"], ps["K"]
    r["t1"], r["tk"] = t1, tk
    r["per"] = (tk.median - t1.median) / (PYSTACK_K - 1)
    r["per_spread"] = (t1.spread ** 2 + tk.spread ** 2) ** 0.5 / (PYSTACK_K - 1)
    ctx.log(f"{interp.label}: pystack all batch {t1.text}, x{PYSTACK_K} "
            f"{tk.text} -> {fmt_ms(r['per'], r['per_spread'])} per command")
    return r


def pyleakdb_rows(interp, r):
    lab = interp.label
    return [
        Row(f"pystack all, per command ({lab})", fmt_ms(r["per"], r["per_spread"]),
            target=f"< {PYSTACK_TARGET * 1e3:.0f} ms",
            met=r["per"] < PYSTACK_TARGET),
        Row(f"pystack all, whole batch ({lab})", r["t1"].text),
    ]


def run(ctx):
    rows = []
    interps = find_interpreters(pyenv=True, min_version=(3, 8),
                                max_version=(3, 13))
    ctx.log("interpreters: " + ", ".join(i.label for i in interps))
    gdb_version = tool_version(["gdb", "--version"])
    ctx.note(f"gdb: {gdb_version}; target: {NTHREADS + 1} threads, "
             f"{DEPTH}-deep recursion in {NTHREADS} of them")

    floor = median_time(["/bin/true"], 21, warmup=2)
    ctx.log(f"harness floor (spawn /bin/true): {floor.text}")

    debian, others = interps[0], interps[1:]
    target = f">= {RATIO_TARGET:.0f}x"
    with Target(debian.path, TARGET_SRC, [str(NTHREADS), str(DEPTH)],
                name="stacks_target") as t:
        ctx.log(f"{debian.label}: target pid {t.pid}")
        try:
            r = measure(ctx, debian, t, BT_RUNS, with_gdb=True)
        except BenchFailure as e:
            ctx.fail(f"{debian.label}: {e}")
            r = None
    if r:
        ratio = r["gdb"].median / r["bt"].median
        rows.append(Row(f"bt all vs thread apply all bt ({debian.label})",
                        r["bt"].text, r["gdb"].text, fmt_ratio(ratio),
                        target, ratio >= RATIO_TARGET))
        rows += pyleakdb_rows(debian, r)
    else:
        rows.append(Row(f"bt all vs thread apply all bt ({debian.label})",
                        "FAILED", "FAILED", target=target, met=False))

    for interp in others:
        try:
            with Target(interp.path, TARGET_SRC, [str(NTHREADS), str(DEPTH)],
                        name="stacks_target") as t:
                ctx.log(f"{interp.label}: target pid {t.pid}")
                r = measure(ctx, interp, t, PYENV_BT_RUNS)
        except BenchFailure as e:
            ctx.fail(f"{interp.label}: {e}")
            rows.append(Row(f"bt all ({interp.label})", "FAILED", met=False))
            continue
        rows.append(Row(f"bt all ({interp.label})", r["bt"].text))
        rows += pyleakdb_rows(interp, r)

    rows.append(Row("harness floor: spawn and wait for /bin/true",
                    floor.text))
    return rows

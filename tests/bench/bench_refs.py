# SPDX-License-Identifier: GPL-3.0-or-later
"""Why is it still alive: pyleakdb `refs` against objgraph.find_backref_chain,
on a heap of a million objects."""

import json
import os
import re
import select
import signal
import time
from pathlib import Path

from benchlib import (BENCH_ENV, BenchFailure, Row, Target, Timing, find_interpreters, fmt_ms,
                      fmt_ratio, tool_version)

N_OBJECTS = 1_000_000
N_REFERRERS = 500
DEPTH = 16                 # hops from the module global to the object at the end
REFS_RUNS, REFS_WARMUP = 11, 1
TYPE_RUNS = 3              # refs Item: every instance's chain, grouped
OBJGRAPH_RUNS = 3
RATIO_TARGET = 20.0        # objgraph / pyleakdb, wall clock
RSS_TARGET_MB = 100
OBJGRAPH = "/usr/lib/python3/dist-packages/objgraph.py"

TITLE = f"refs on {N_OBJECTS:,} objects: {N_REFERRERS} referrers, a chain {DEPTH} deep"
OTHER = "objgraph"
DESCRIPTION = f"""\
Target: Debian's /usr/bin/python3 with {N_OBJECTS:,} objects the collector
tracks: a `Leaked` object that {N_REFERRERS} `Holder` objects (in a module
global list) refer to, a `Deep` object at the end of a chain of {DEPTH - 1}
`Link` objects from a module global (module, its dict, then {DEPTH} hops), and
`Item` objects (each with a list) to make up the count.

- **pyleakdb**: `pyleakdb --batch -p PID -ex 'refs Leaked'` (and `refs Deep`),
  the whole command as a user runs it (start, attach, agent, snapshot of the
  whole heap, search, labels, detach), {REFS_RUNS} runs each after
  {REFS_WARMUP} warm-up; every output must show the expected chain. Its peak RSS
  and CPU time come from wait4(); the target's CPU time and the growth of its
  peak RSS (VmHWM), from /proc.
- **objgraph**: Debian's python3-objgraph, `objgraph.find_backref_chain(obj,
  inspect.ismodule)` run inside a process of its own that builds the same heap
  (how objgraph is used: it runs in the process it looks at), timed around the
  call only, heap building excluded; {OBJGRAPH_RUNS} processes, interleaved
  with the pyleakdb runs. The chains it finds must have the expected length.
- The machine is shared with other work: wall-clock figures move with its
  load, CPU figures much less. Ratios are of wall-clock medians measured
  interleaved.
- objgraph's search calls gc.get_referrers() once per object it visits, one
  scan of the heap each: 500 referrers cost 500 scans; a chain 16 deep with no
  other referrers only about 18. pyleakdb's cost is the same for both: one
  snapshot of the whole heap, a few scans' worth, searched in C. Its advantage
  grows with the number of objects a backward search must visit, and is small
  on a bare chain.
- **refs Item** (no objgraph figure): the chains of all ~500,000 `Item`
  instances, grouped by shape ("499,999 more Item held the same way"),
  {TYPE_RUNS} runs.
"""

HEAP_SRC = r'''
import gc, sys
N_OBJECTS, N_REFERRERS, DEPTH = int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])

class Leaked(object):
    pass

class Holder(object):
    __slots__ = ("ref", "n")
    def __init__(self, ref, n):
        self.ref = ref
        self.n = n

class Item(object):
    def __init__(self, i):
        self.i = i
        self.tags = [i]

class Link(object):
    __slots__ = ("next",)
    def __init__(self, nxt):
        self.next = nxt

class Deep(object):
    pass

def build():
    g = globals()
    leaked = Leaked()
    g["HOLDERS"] = [Holder(leaked, i) for i in range(N_REFERRERS)]
    del leaked
    node = Deep()
    for i in range(DEPTH - 1):
        node = Link(node)
    g["CHAIN"] = node
    del node
    items = g["ITEMS"] = []
    gc.collect()
    while True:
        n = len(gc.get_objects())
        if n >= N_OBJECTS - 4:
            break
        items.extend(Item(i) for i in range((N_OBJECTS - n + 1) // 2))
    gc.collect()

build()
'''

TARGET_SRC = HEAP_SRC + r'''
import os, time
with open(sys.argv[1] + ".tmp", "w") as f:
    f.write(str(os.getpid()))
os.rename(sys.argv[1] + ".tmp", sys.argv[1])
while True:
    time.sleep(1)
'''

# objgraph and what it imports come first: the heap is then made up to the same count
OBJGRAPH_SRC = "import inspect, json, time\nimport objgraph\n" + HEAP_SRC + r'''

def timed(get):
    obj = get()
    t0, c0 = time.perf_counter(), time.process_time()
    chain = objgraph.find_backref_chain(obj, inspect.ismodule)
    return {"wall": time.perf_counter() - t0, "cpu": time.process_time() - c0,
            "len": len(chain), "start": type(chain[0]).__name__}

def deep():
    n = CHAIN
    while type(n) is Link:
        n = n.next
    return n

out = {"objects": len(gc.get_objects()),
       "leaked": timed(lambda: HOLDERS[0].ref), "deep": timed(deep)}
print(json.dumps(out))
'''


def proc_cpu(pid):
    """utime + stime of a process, in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def proc_hwm_kb(pid):
    m = re.search(r"^VmHWM:\s+(\d+) kB", Path(f"/proc/{pid}/status").read_text(), re.M)
    return int(m.group(1))


def run_wait4(argv, timeout=120):
    """Run argv: (wall seconds, CPU seconds, peak RSS in KiB, stdout), the figures the
    kernel keeps for that child (wait4 on its pid)."""
    r, w = os.pipe()
    t0 = time.perf_counter()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(r)
            os.dup2(w, 1)
            devnull = os.open(os.devnull, os.O_RDWR)
            os.dup2(devnull, 0)
            os.dup2(devnull, 2)
            os.execve(argv[0], argv, BENCH_ENV)
        finally:
            os._exit(127)
    os.close(w)
    chunks = []
    deadline = time.monotonic() + timeout
    try:
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                os.kill(pid, signal.SIGKILL)
                raise BenchFailure(f"timed out after {timeout}s: {' '.join(argv)}")
            ready, _, _ = select.select([r], [], [], left)
            if ready:
                data = os.read(r, 65536)
                if not data:
                    break
                chunks.append(data)
    finally:
        os.close(r)
        _, status, rusage = os.wait4(pid, 0)
    wall = time.perf_counter() - t0
    if not os.WIFEXITED(status) or os.WEXITSTATUS(status) != 0:
        raise BenchFailure(f"exit status {status}: {' '.join(argv)}")
    return (wall, rusage.ru_utime + rusage.ru_stime, rusage.ru_maxrss,
            b"".join(chunks).decode(errors="replace"))


def check_leaked(out):
    want = re.compile(r"^  __main__ module -> \.HOLDERS -> \[\d+\] -> \.ref -> Leaked @0x[0-9a-f]+$",
                      re.M)
    if not want.search(out):
        raise BenchFailure(f"refs Leaked did not show the chain:\n{out[:1500]}")


def check_deep(out):
    hops = " -> ".join([".next"] * (DEPTH - 1))
    want = re.compile(r"^  __main__ module -> \.CHAIN -> " + re.escape(hops)
                      + r" -> Deep @0x[0-9a-f]+$", re.M)
    if not want.search(out):
        raise BenchFailure(f"refs Deep did not show the chain:\n{out[:1500]}")


def run(ctx):
    interp = find_interpreters()[0]
    if not Path(OBJGRAPH).exists():
        raise BenchFailure(f"{OBJGRAPH} missing: apt-get install python3-objgraph")
    ctx.note(f"objgraph: Debian python3-objgraph "
             f"{tool_version(['dpkg-query', '-W', '-f=${Version}', 'python3-objgraph'])}; "
             f"{interp.label}")
    args = [str(N_OBJECTS), str(N_REFERRERS), str(DEPTH)]
    samples = {k: [] for k in ("leaked", "deep")}
    cpu = {k: [] for k in ("leaked", "deep")}
    tcpu = {k: [] for k in ("leaked", "deep")}
    og = {k: [] for k in ("leaked", "deep")}
    ogcpu = {k: [] for k in ("leaked", "deep")}
    peak_kb = 0
    with Target(interp.path, TARGET_SRC, args, ready_timeout=120, name="refs_target") as t:
        hwm0 = proc_hwm_kb(t.pid)
        ctx.log(f"{interp.label}: target pid {t.pid}, VmHWM {hwm0 // 1024} MiB")
        objgraph_script = Path(t.script).with_name("objgraph_run.py")
        objgraph_script.write_text(OBJGRAPH_SRC)
        cmd = {k: [ctx.pyleakdb, "--batch", "-p", str(t.pid), "-ex",
                   "refs " + ("Leaked" if k == "leaked" else "Deep")] for k in samples}
        check = {"leaked": check_leaked, "deep": check_deep}
        for k in samples:
            for _ in range(REFS_WARMUP):
                check[k](run_wait4(cmd[k])[3])
                t.check()
        per_round = (REFS_RUNS + OBJGRAPH_RUNS - 1) // OBJGRAPH_RUNS
        done = {k: 0 for k in samples}
        for rnd in range(OBJGRAPH_RUNS):
            ctx.log(f"round {rnd + 1}/{OBJGRAPH_RUNS}: objgraph in its own process")
            _, _, _, out = run_wait4([interp.path, str(objgraph_script), "-"] + args,
                                     timeout=900)
            res = json.loads(out.strip().splitlines()[-1])
            if abs(res["objects"] - N_OBJECTS) > 1000:
                raise BenchFailure(f"objgraph's heap has {res['objects']} objects")
            if res["leaked"]["len"] != 5 or res["deep"]["len"] != DEPTH + 2:
                raise BenchFailure(f"objgraph found chains of {res['leaked']['len']} and "
                                   f"{res['deep']['len']} objects, expected 5 and {DEPTH + 2}")
            for k in og:
                og[k].append(res[k]["wall"])
                ogcpu[k].append(res[k]["cpu"])
            ctx.log(f"objgraph: leaked {res['leaked']['wall']:.2f} s "
                    f"(cpu {res['leaked']['cpu']:.2f} s), deep {res['deep']['wall']:.2f} s")
            for k in samples:
                n = min(per_round, REFS_RUNS - done[k])
                for _ in range(n):
                    c0 = proc_cpu(t.pid)
                    wall, ucpu, rss, out = run_wait4(cmd[k])
                    tcpu[k].append(proc_cpu(t.pid) - c0)
                    check[k](out)
                    t.check()
                    samples[k].append(wall)
                    cpu[k].append(ucpu)
                    peak_kb = max(peak_kb, rss)
                done[k] += n
            ctx.log(f"pyleakdb so far: leaked {fmt_ms(Timing(samples['leaked']).median)}, "
                    f"deep {fmt_ms(Timing(samples['deep']).median)}, peak RSS "
                    f"{peak_kb / 1024:.1f} MiB")
        items = []
        for _ in range(TYPE_RUNS):
            wall, ucpu, rss, out = run_wait4([ctx.pyleakdb, "--batch", "-p", str(t.pid), "-ex",
                                              "refs Item"])
            if not re.search(r"^  \d+ more __main__\.Item held the same way$", out, re.M):
                raise BenchFailure(f"refs Item did not group the instances:\n{out[:1500]}")
            t.check()
            items.append(wall)
            peak_kb = max(peak_kb, rss)
        hwm1 = proc_hwm_kb(t.pid)
    rows = []
    names = {"leaked": f"refs Leaked: {N_REFERRERS} referrers ({interp.label})",
             "deep": f"refs Deep: a chain {DEPTH} deep ({interp.label})"}
    for k in ("leaked", "deep"):
        ours, theirs = Timing(samples[k]), Timing(og[k])
        ratio = theirs.median / ours.median
        rows.append(Row(names[k], ours.text, theirs.text, fmt_ratio(ratio),
                        f">= {RATIO_TARGET:.0f}x", ratio >= RATIO_TARGET))
        oc, tc, gc_ = Timing(cpu[k]), Timing(tcpu[k]), Timing(ogcpu[k])
        rows.append(Row(f"  CPU: pyleakdb + target vs objgraph ({k})",
                        f"{fmt_ms(oc.median)} + {fmt_ms(tc.median)}", fmt_ms(gc_.median),
                        fmt_ratio(gc_.median / (oc.median + tc.median))))
    rows.append(Row("refs Item: ~500,000 instances, grouped by chain shape",
                    Timing(items).text))
    rows.append(Row(f"pyleakdb peak RSS, refs on {N_OBJECTS:,} objects",
                    f"{peak_kb / 1024:.1f} MiB", target=f"< {RSS_TARGET_MB} MB",
                    met=peak_kb * 1024 < RSS_TARGET_MB * 1000 * 1000))
    rows.append(Row("target's peak RSS growth during the snapshots (VmHWM)",
                    f"{(hwm1 - hwm0) / 1024:.1f} MiB"))
    ctx.note(f"target VmHWM {hwm0 / 1024:.0f} MiB before the first refs, "
             f"{hwm1 / 1024:.0f} MiB after the last")
    return rows

# SPDX-License-Identifier: GPL-3.0-or-later
"""Object census of a big heap: pyleakdb `top 20` from outside against
objgraph.show_most_common_types() run inside the same kind of process."""

import json
import os
import re
import subprocess
import tempfile
import time
from pathlib import Path

from benchlib import (BENCH_ENV, BenchFailure, Row, Target, Timing,
                      find_interpreters, fmt_ms, fmt_ratio, median_times,
                      pinned_binary, tool_version)

N = 1_000_000                 # instances of the leaking class
K = 6                         # `top 20` in the long batch
RUNS_1, RUNS_K, RUNS_SIZE, WARMUP = 11, 7, 7, 1
OBJGRAPH_REPEATS = 7          # timed calls inside the objgraph copy, + 1 warm-up
RSS_RUNS = 3
CLASS = "__main__.Session"

TITLE = f"object census of a heap of {N // 1000}k class instances"
OTHER = "objgraph"
DESCRIPTION = f"""\
Target, under Debian's /usr/bin/python3: a service that leaked {N:,}
instances of a class `Session` with four attributes (an int, a shared
string, a float, a small int), held by a dict, besides the usual objects
of an interpreter that has imported `objgraph` (so that both copies below
have the same heap). It counts its own `Session` instances with
`gc.get_objects()` before it reports ready.

- **objgraph**: a separate copy of the target times
  `objgraph.show_most_common_types(limit=20, file=devnull)` in its own
  main thread with `time.perf_counter()`, {OBJGRAPH_REPEATS} calls after
  a warm-up; the figure is their median. This is what a user gets by
  adding objgraph to the program (no attach, no injection: the lower bound
  of doing it by hand). One more call to a string must list `Session` with
  the count the target found. The copy is killed before pyleakdb's target
  is built (they do not run side by side).
- **whole run** (a): `pyleakdb --batch -p PID -ex 'top 20'` (attach,
  install the agent, count, uninstall, detach, exit), {RUNS_1} runs.
  **per command** (b): medians of a batch of {K} `top 20` (t_K) and of
  the whole run (t_1), interleaved ({RUNS_K} runs of t_K); per command =
  (t_K - t_1) / ({K} - 1). `top 20 --by size` (every type's shallow size
  summed), {RUNS_SIZE} whole runs, interleaved with them. {WARMUP}
  warm-up of each first. Every listing must show `{CLASS}` with exactly
  the target's own count (and, by size, the right total: checked exactly
  once with `--json`). The target must be alive, running, not stopped and
  not traced after every run.
- Ratios are objgraph's median over pyleakdb's; the target is pyleakdb
  faster than objgraph in its own process (ratio > 1) for both.
- **peak RSS**: pyleakdb's maximum resident set over {RSS_RUNS} `top 20`
  runs (its VmHWM, polled until it exits; GNU time's figure is given
  below for comparison); and how much the target's own peak (VmHWM, reset
  through /proc/PID/clear_refs first) grew over all pyleakdb runs, against
  the growth of the objgraph copy's peak over its calls.
"""

TARGET_SRC = r'''
import gc, io, json, os, sys, time

ready, mode, n, repeats = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
import objgraph

USERS = ["user%d" % i for i in range(1000)]

class Session:
    def __init__(self, i):
        self.id = i
        self.user = USERS[i % 1000]
        self.created = 1700000000.0 + i
        self.hits = i % 7

gc.disable()        # building only; the target then runs with the collector on
sessions = {}
for i in range(n):
    sessions[i] = Session(i)
gc.enable()

def hwm_kib():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])

census = sum(1 for o in gc.get_objects() if type(o) is Session)
info = {"census": census, "sizeof": sys.getsizeof(sessions[0]),
        "objects": len(gc.get_objects())}

if mode == "objgraph":
    devnull = open(os.devnull, "w")
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")        # peak RSS := current RSS
    info["hwm_before_kib"] = hwm_kib()
    objgraph.show_most_common_types(limit=20, file=devnull)   # warm-up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        objgraph.show_most_common_types(limit=20, file=devnull)
        times.append(time.perf_counter() - t0)
    info["hwm_after_kib"] = hwm_kib()
    info["times"] = times
    buf = io.StringIO()
    objgraph.show_most_common_types(limit=20, file=buf)
    info["listing"] = buf.getvalue()

with open(ready + ".info", "w") as f:
    json.dump(info, f)
with open(ready + ".tmp", "w") as f:
    f.write(str(os.getpid()))
os.rename(ready + ".tmp", ready)
while True:
    time.sleep(3600)
'''

ROW_RE = re.compile(r"^(\S+)\s+(\d+)\s+([\d.]+ (?:B|KiB|MiB|GiB))\s*$", re.M)
UNITS = {"B": 1, "KiB": 1024, "MiB": 1024 ** 2, "GiB": 1024 ** 3}


def listings(out):
    """Each `top` listing of the output as a list of (type, count, bytes)."""
    blocks = re.split(r"^TYPE\s+COUNT\s+SIZE\s*$", out, flags=re.M)[1:]
    res = []
    for b in blocks:
        rows = []
        for m in ROW_RE.finditer(b.split("objects of", 1)[0]):
            v, u = m.group(3).split()
            rows.append((m.group(1), int(m.group(2)), float(v) * UNITS[u]))
        res.append(rows)
    return res


def check_top(census, repeats=1, by_size=False):
    def check(out, err):
        ls = listings(out)
        if len(ls) != repeats:
            raise BenchFailure(f"{len(ls)} top listings, expected {repeats}:\n"
                               f"{out[-1500:]}{err[-800:]}")
        for rows in ls:
            if len(rows) != 20:
                raise BenchFailure(f"a top listing has {len(rows)} rows, "
                                   f"expected 20:\n{out[-1500:]}")
            mine = [r for r in rows if r[0] == CLASS]
            if not mine or mine[0][1] != census:
                raise BenchFailure(f"{CLASS} shows {mine[0][1] if mine else 'no row'},"
                                   f" expected {census}:\n{out[-1500:]}")
            if rows[0][0] != CLASS:
                raise BenchFailure(f"first row is {rows[0][0]}, not {CLASS}"
                                   f"{' (by size)' if by_size else ''}:\n"
                                   f"{out[-1500:]}")
    return check


def pyleakdb_cmd(ctx, pid, *cmds, json_out=False):
    argv = [ctx.pyleakdb, "--batch"] + (["--json"] if json_out else []) + \
        ["-p", str(pid)]
    for c in cmds:
        argv += ["-ex", c]
    return argv


def run_rusage(cmd, timeout=120):
    """Run cmd; (wall seconds, stdout, stderr, rusage from wait4, peak RSS in
    KiB). The peak is the child's own VmHWM, polled until it exits:
    ru_maxrss would also count the harness's pages, which a forked child
    maps until it execs."""
    with tempfile.TemporaryFile() as fo, tempfile.TemporaryFile() as fe:
        t0 = time.perf_counter()
        p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=fo,
                             stderr=fe, env=BENCH_ENV)
        deadline = time.monotonic() + timeout
        peak = 0
        exe = os.path.realpath(cmd[0])
        while True:
            try:
                # only once the child runs cmd[0], not the harness's image
                if os.path.realpath(f"/proc/{p.pid}/exe") == exe:
                    peak = max(peak, hwm_kib(p.pid))
            except (OSError, ValueError):
                pass
            pid, status, ru = os.wait4(p.pid, os.WNOHANG)
            if pid:
                break
            if time.monotonic() > deadline:
                p.kill()
                os.wait4(p.pid, 0)
                p.returncode = -9
                raise BenchFailure(f"timed out: {' '.join(cmd)}")
            time.sleep(0.0005)
        dt = time.perf_counter() - t0
        p.returncode = os.waitstatus_to_exitcode(status)
        fo.seek(0)
        fe.seek(0)
        out, err = fo.read().decode(errors="replace"), fe.read().decode(errors="replace")
    if p.returncode != 0:
        raise BenchFailure(f"exit status {p.returncode}: {' '.join(cmd)}\n{err[-1500:]}")
    return dt, out, err, ru, peak


def gnu_time_maxrss(cmd):
    """Peak RSS in KiB as GNU time reports it (it forks from itself, a small
    process), or None without /usr/bin/time."""
    if not os.access("/usr/bin/time", os.X_OK):
        return None
    with tempfile.NamedTemporaryFile("r") as f:
        p = subprocess.run(["/usr/bin/time", "-o", f.name, "-f", "%M"] + cmd,
                           stdin=subprocess.DEVNULL, capture_output=True,
                           env=BENCH_ENV, timeout=120)
        try:
            return int(f.read().split()[-1]) if p.returncode == 0 else None
        except (ValueError, IndexError):
            return None


def hwm_kib(pid):
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


def read_info(t):
    return json.loads(Path(t._dir.name, "ready.info").read_text())


def run(ctx):
    debian = find_interpreters()[0]
    lab = f"{N // 1000}k instances, {debian.label}"
    load0 = os.getloadavg()[0]

    # objgraph, inside its own copy of the target
    ctx.log(f"objgraph copy: building {N:,} instances, then "
            f"{OBJGRAPH_REPEATS} timed show_most_common_types calls")
    with Target(debian.path, TARGET_SRC,
                ["objgraph", str(N), str(OBJGRAPH_REPEATS)],
                ready_timeout=120, name="top_target") as t:
        og = read_info(t)
    ogt = Timing(og["times"])
    m = re.search(r"^Session\s+(\d+)\s*$", og["listing"], re.M)
    if not m or int(m.group(1)) != og["census"]:
        raise BenchFailure(f"objgraph did not list Session x{og['census']}:\n"
                           f"{og['listing']}")
    og_hwm = (og["hwm_after_kib"] - og["hwm_before_kib"]) * 1024
    ctx.log(f"objgraph: {ogt.text} (census {og['census']}, "
            f"{og['objects']:,} objects; peak RSS grew {og_hwm / 2**20:.1f} MiB)")

    rows = []
    ctx.log(f"pyleakdb target: building {N:,} instances")
    with Target(debian.path, TARGET_SRC, ["pyleakdb", str(N), "0"],
                ready_timeout=120, name="top_target") as t:
        info = read_info(t)
        census = info["census"]
        if census != N:
            raise BenchFailure(f"the target counts {census} Session, not {N}")
        Path(f"/proc/{t.pid}/clear_refs").write_text("5")  # peak := current
        hwm0 = hwm_kib(t.pid)

        ctx.log(f"pid {t.pid}: top 20 x1 ({RUNS_1}), x{K} ({RUNS_K}), "
                f"--by size ({RUNS_SIZE}), interleaved, +{WARMUP} warm-up each")
        r = median_times(
            {"1": pyleakdb_cmd(ctx, t.pid, "top 20"),
             "K": pyleakdb_cmd(ctx, t.pid, *["top 20"] * K),
             "size": pyleakdb_cmd(ctx, t.pid, "top 20 --by size")},
            {"1": RUNS_1, "K": RUNS_K, "size": RUNS_SIZE}, WARMUP,
            timeout=120, check=t.check,
            validate={"1": check_top(census), "K": check_top(census, K),
                      "size": check_top(census, by_size=True)})
        t1, tk, ts = r["1"], r["K"], r["size"]
        per = (tk.median - t1.median) / (K - 1)
        per_spread = (t1.spread ** 2 + tk.spread ** 2) ** 0.5 / (K - 1)
        ctx.log(f"top 20 whole {t1.text}, x{K} {tk.text} -> "
                f"{fmt_ms(per, per_spread)} per command; --by size {ts.text}")

        # peak RSS and CPU of pyleakdb itself
        rss, cpus = [], []
        for _ in range(RSS_RUNS):
            dt, out, err, ru, peak = run_rusage(pyleakdb_cmd(ctx, t.pid, "top 20"))
            check_top(census)(out, err)
            t.check()
            rss.append(peak)
            cpus.append((ru.ru_utime + ru.ru_stime, dt))
        peak_kib = max(rss)
        cpu_s, cpu_wall = sorted(cpus)[len(cpus) // 2]
        gnu_kib = gnu_time_maxrss(pyleakdb_cmd(ctx, t.pid, "top 20"))
        t.check()

        # exact figures, once
        _, out, err, _, _ = run_rusage(pyleakdb_cmd(
            ctx, t.pid, "top 20", "top 20 --by size", json_out=True))
        t.check()
        res = [json.loads(l) for l in out.splitlines() if l.startswith("{")]
        tops = [x["result"] for x in res if x.get("command", "").startswith("top")]
        if len(tops) != 2:
            raise BenchFailure(f"--json gave {len(tops)} top results:\n{out[-1500:]}")
        for x in tops:
            row = [w for w in x["rows"] if w["type"] == CLASS]
            if not row or row[0]["count"] != census or \
                    row[0]["size"] != census * info["sizeof"]:
                raise BenchFailure(f"--json: {CLASS} row {row[:1]}, expected "
                                   f"count {census}, size "
                                   f"{census * info['sizeof']}")
        objects = tops[0]["objects"]
        hwm1 = hwm_kib(t.pid)
        if not 0.99 * info["objects"] < objects < 1.01 * info["objects"]:
            ctx.fail(f"pyleakdb counted {objects:,} objects in all; the target "
                     f"{info['objects']:,}")

    tgt_hwm = (hwm1 - hwm0) * 1024
    ratio_a, ratio_b = ogt.median / t1.median, ogt.median / per

    def ratio_text(x):      # 1.0x would hide which side of the target it is
        return f"{x:.2f}x" if x < 2 else fmt_ratio(x)
    rows += [
        Row(f"top 20, whole run: attach, agent, count, detach ({lab})",
            t1.text, ogt.text, ratio_text(ratio_a), "> 1x", ratio_a > 1),
        Row(f"top 20, per command in a session ({lab})",
            fmt_ms(per, per_spread), ogt.text, ratio_text(ratio_b), "> 1x",
            ratio_b > 1),
        Row(f"top 20 --by size, whole run ({lab})", ts.text),
        Row(f"pyleakdb's peak RSS, top 20 ({lab})", f"{peak_kib / 1024:.1f} MiB"),
        Row(f"target's peak RSS growth while counted ({lab})",
            f"{tgt_hwm / 2**20:.1f} MiB", f"{og_hwm / 2**20:.1f} MiB"),
    ]
    ctx.note(f"census: the target counts {census:,} {CLASS} "
             f"(sys.getsizeof {info['sizeof']} B) among {info['objects']:,} "
             f"tracked objects; pyleakdb counted {objects:,} (its own left out)")
    if gnu_kib is not None:
        ctx.note(f"pyleakdb's peak RSS as GNU time reports it (%M): "
                 f"{gnu_kib / 1024:.1f} MiB; the table's figure is the "
                 f"highest VmHWM of the pyleakdb process over {RSS_RUNS} runs")
    ctx.note(f"pyleakdb's own CPU time in a {fmt_ms(cpu_wall)} `top 20` run: "
             f"{fmt_ms(cpu_s)} (the rest is the count inside the target, and "
             f"waiting)")
    ctx.note(f"objgraph {tool_version(['/usr/bin/python3', '-c', 'import objgraph; print(objgraph.__version__)'])}"
             f" (Debian python3-objgraph); pyleakdb binary sha1 {pinned_binary()[1]}; "
             f"load average {load0:.2f} at the start, {os.getloadavg()[0]:.2f} "
             f"at the end ({os.cpu_count()} CPUs)")
    return rows

# SPDX-License-Identifier: GPL-3.0-or-later
"""Shared helpers for pyleakdb's benchmarks (tests/bench/bench_*.py).

A benchmark module exposes:

    TITLE       one line, the section heading in doc/benchmarks.md
    DESCRIPTION markdown paragraph(s): what is measured, against what, why
    OTHER       column heading for the other tool's figure (e.g. "gdb 13.1")
    run(ctx)    -> list of Row

and uses the helpers here to start targets, time commands and build rows.
Everything runs under Debian's /usr/bin/python3, standard library only.
"""

import ctypes
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, List, Optional, Sequence

REPO = Path(__file__).resolve().parents[2]
PYLEAKDB = REPO / "pyleakdb"
DEBIAN_PYTHON = "/usr/bin/python3"

# Every command the benchmarks run gets this environment: C locale, and no
# debuginfod downloads whatever the user's environment says.
BENCH_ENV = dict(os.environ, LC_ALL="C", LANG="C", DEBUGINFOD_URLS="")


class BenchFailure(Exception):
    """What was timed is wrong (e.g. missing threads or frames): the figures
    of the benchmark are not valid. The run goes on with other benchmarks."""


class BenchAbort(Exception):
    """The measurement damaged its surroundings (target died, or was left
    stopped or traced), or cannot run at all. The whole run stops."""


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# --------------------------------------------------------------------------
# result rows

@dataclass
class Row:
    measurement: str
    ours: str = ""
    other: str = ""
    ratio: str = ""
    target: str = ""
    met: Optional[bool] = None     # None: no target for this row

    @property
    def met_text(self) -> str:
        return {True: "yes", False: "no", None: "-"}[self.met]


def fmt_ms(seconds: float, spread: Optional[float] = None) -> str:
    """'4.21 ms', '227 ms', or with a spread (seconds) '4.21 ± 0.08 ms'."""
    ms = seconds * 1e3
    d = 0 if ms >= 100 else 1 if ms >= 10 else 2
    if spread is None:
        return f"{ms:.{d}f} ms"
    return f"{ms:.{d}f} ± {spread * 1e3:.{d}f} ms"


def fmt_ratio(r: float) -> str:
    return f"{r:.1f}x" if r < 100 else f"{r:.0f}x"


# --------------------------------------------------------------------------
# interpreters

@dataclass
class Interp:
    path: str
    version: tuple           # (3, 11, 2)
    label: str               # "Debian 3.11.2", "pyenv 3.8.18"

    @property
    def version_text(self) -> str:
        return ".".join(map(str, self.version))


def _interp_version(path: str) -> Optional[tuple]:
    try:
        out = subprocess.run(
            [path, "-c", "import sys; print(*sys.version_info[:3])"],
            capture_output=True, text=True, timeout=20, env=BENCH_ENV).stdout
        return tuple(int(x) for x in out.split())
    except (OSError, subprocess.SubprocessError, ValueError):
        return None


def pyenv_root() -> Optional[Path]:
    for exe in ("pyenv", "/root/.pyenv/bin/pyenv"):
        try:
            out = subprocess.run([exe, "root"], capture_output=True, text=True,
                                 timeout=20).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            continue
        if out and Path(out, "versions").is_dir():
            return Path(out)
    if Path("/root/.pyenv/versions").is_dir():
        return Path("/root/.pyenv")
    return None


def find_interpreters(pyenv: bool = False, min_version=(3, 0),
                      max_version=(3, 99)) -> List[Interp]:
    """Debian's /usr/bin/python3 always (first); with pyenv=True also every
    pyenv-installed CPython whose (major, minor) is in [min, max], sorted."""
    found = []
    v = _interp_version(DEBIAN_PYTHON)
    if v is None:
        raise BenchAbort(f"{DEBIAN_PYTHON} does not run")
    found.append(Interp(DEBIAN_PYTHON, v, f"Debian {'.'.join(map(str, v))}"))
    if not pyenv:
        return found
    root = pyenv_root()
    if root is None:
        return found
    extra = []
    for d in sorted((root / "versions").iterdir()):
        exe = d / "bin" / "python3"
        if not exe.exists() or not re.fullmatch(r"\d+\.\d+\.\d+", d.name):
            continue            # skip virtualenvs, pypy-, -dev builds...
        v = _interp_version(str(exe))
        if v is None or not (tuple(min_version) <= v[:2] <= tuple(max_version)):
            continue
        extra.append(Interp(str(exe), v, f"pyenv {'.'.join(map(str, v))}"))
    extra.sort(key=lambda i: i.version)
    return found + extra


# --------------------------------------------------------------------------
# targets

def _pdeathsig():
    # In the child before exec: die with the harness even if it is SIGKILLed.
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except Exception:
        pass


class Target:
    """A Python program run under a given interpreter, ready once it has
    written its PID into the ready file (its first argument). Use as a
    context manager: it is always killed by PID on the way out."""

    def __init__(self, python: str, source: str, args: Sequence[str] = (),
                 ready_timeout: float = 30.0, name: str = "target"):
        self.python, self.source, self.args = python, source, list(args)
        self.ready_timeout, self.name = ready_timeout, name
        self.proc = None
        self.pid = None
        self._dir = None

    def __enter__(self):
        self._dir = tempfile.TemporaryDirectory(prefix="pyleakdb-bench-")
        d = Path(self._dir.name)
        script = d / f"{self.name}.py"
        script.write_text(self.source)
        ready = d / "ready"
        self.script = str(script)
        self.proc = subprocess.Popen(
            [self.python, str(script), str(ready)] + self.args,
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=open(d / "stderr", "wb"), env=BENCH_ENV,
            preexec_fn=_pdeathsig, cwd=d)
        self.pid = self.proc.pid
        try:
            deadline = time.monotonic() + self.ready_timeout
            while True:
                if ready.exists() and ready.read_text().strip() == str(self.pid):
                    break
                if self.proc.poll() is not None:
                    raise BenchAbort(f"{self.name} under {self.python} exited "
                                     f"with {self.proc.returncode} before ready: "
                                     + (d / "stderr").read_text()[-2000:])
                if time.monotonic() > deadline:
                    raise BenchAbort(f"{self.name} under {self.python} not ready "
                                     f"after {self.ready_timeout}s")
                time.sleep(0.02)
            self.check()
        except BaseException:
            self._kill()
            raise
        return self

    def check(self) -> None:
        """Abort unless the target is alive, not stopped and not traced."""
        check_untraced(self.pid, self.proc)

    def _kill(self):
        if self.proc is not None and self.proc.poll() is None:
            try:
                os.kill(self.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                log(f"warning: target {self.pid} did not die after SIGKILL")
        if self._dir is not None:
            self._dir.cleanup()
            self._dir = None

    def __exit__(self, *exc):
        self._kill()
        return False


def check_untraced(pid: int, proc=None) -> None:
    if proc is not None and proc.poll() is not None:
        raise BenchAbort(f"target {pid} died (exit status {proc.returncode})")
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        raise BenchAbort(f"target {pid} is gone")
    state = re.search(r"^State:\s+(\S)", status, re.M).group(1)
    tracer = int(re.search(r"^TracerPid:\s+(\d+)", status, re.M).group(1))
    if state in "TtZXx":
        raise BenchAbort(f"target {pid} left in state {state!r}")
    if tracer != 0:
        raise BenchAbort(f"target {pid} still traced by {tracer}")


# --------------------------------------------------------------------------
# timing

@dataclass
class Timing:
    samples: List[float]
    median: float = 0.0
    spread: float = 0.0      # half the interquartile range, seconds
    lo: float = 0.0
    hi: float = 0.0
    last_stdout: str = ""

    def __post_init__(self):
        s = sorted(self.samples)
        self.median = statistics.median(s)
        self.lo, self.hi = s[0], s[-1]
        if len(s) >= 4:
            q = statistics.quantiles(s, n=4)
            self.spread = (q[2] - q[0]) / 2
        else:
            self.spread = (s[-1] - s[0]) / 2

    @property
    def text(self) -> str:
        return fmt_ms(self.median, self.spread)


def time_once(cmd: Sequence[str], timeout: float = 60.0):
    """Run cmd once; return (wall seconds, stdout, stderr). Raises BenchFailure
    on timeout or non-zero exit."""
    t0 = time.perf_counter()
    try:
        p = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True,
                           env=BENCH_ENV, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise BenchFailure(f"timed out after {timeout}s: {' '.join(cmd)}")
    dt = time.perf_counter() - t0
    out = p.stdout.decode(errors="replace")
    err = p.stderr.decode(errors="replace")
    if p.returncode != 0:
        raise BenchFailure(f"exit status {p.returncode}: {' '.join(cmd)}\n"
                           + err[-2000:])
    return dt, out, err


Validate = Callable[[str, str], None]    # (stdout, stderr) -> None or raise


def _schedule(counts: dict) -> list:
    """Names in run order: each name counts[name] times, spread evenly over
    max(counts) rounds (a b a b ..., or a a b a a b ... for 2:1)."""
    rounds = max(counts.values(), default=0)
    order = []
    for i in range(rounds):
        for name, c in counts.items():
            if (i + 1) * c // rounds > i * c // rounds:
                order.append(name)
    return order


def median_times(cmds: dict, n, warmup=0, timeout: float = 60.0,
                 validate: Optional[dict] = None,
                 check: Optional[Callable[[], None]] = None) -> dict:
    """Time several commands, interleaved so that drift in machine load hits
    them alike: n and warmup are ints, or dicts giving each command its own
    count (runs are then spread evenly, e.g. 3 of a per 1 of b). All warm-up
    runs come first. validate[name](stdout, stderr) checks every run's
    output, warm-ups included; check() runs after every run (e.g. the target
    is still alive and untraced). Returns {name: Timing}."""
    validate = validate or {}
    counts = n if isinstance(n, dict) else {k: n for k in cmds}
    warm = warmup if isinstance(warmup, dict) else {k: warmup for k in cmds}
    samples = {k: [] for k in cmds}
    last = {}
    for phase, cnt in (("warm-up", warm), ("timed", counts)):
        for name in _schedule({k: cnt.get(k, 0) for k in cmds}):
            dt, out, err = time_once(cmds[name], timeout)
            if check:
                check()
            if name in validate:
                validate[name](out, err)
            if phase == "timed":
                samples[name].append(dt)
            last[name] = out
    return {k: Timing(v, last_stdout=last.get(k, "")) for k, v in samples.items()}


def median_time(cmd: Sequence[str], n: int, warmup: int = 0,
                timeout: float = 60.0, validate: Optional[Validate] = None,
                check: Optional[Callable[[], None]] = None) -> Timing:
    """Run cmd warmup + n times (wall clock, subprocess, timeout per run);
    Timing of the last n: .median, .spread (half IQR), .lo, .hi."""
    return median_times({"x": cmd}, n, warmup, timeout,
                        {"x": validate} if validate else None, check)["x"]


def tool_version(cmd: Sequence[str]) -> str:
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=20,
                             env=BENCH_ENV).stdout
        return out.splitlines()[0].strip() if out else "?"
    except (OSError, subprocess.SubprocessError):
        return "?"


# --------------------------------------------------------------------------
# what run-bench hands to run(ctx)

_PINNED = None


def pinned_binary():
    """(path, SHA-1 prefix) of a private copy of ./pyleakdb, made once per
    harness run (the agent is built into the binary). Every benchmark of a
    run measures that copy: a `make` run by someone else meanwhile neither
    changes what is measured half-way nor makes exec fail while the linker
    rewrites ./pyleakdb. Falls back to ./pyleakdb itself when no working
    copy can be made within 30 s."""
    global _PINNED
    if _PINNED is not None:
        return _PINNED
    import atexit
    import hashlib
    import shutil
    d = tempfile.mkdtemp(prefix="pyleakdb-bench-bin-")
    atexit.register(shutil.rmtree, d, True)
    dst = Path(d, "pyleakdb")
    deadline = time.monotonic() + 30
    while True:
        try:
            shutil.copy2(PYLEAKDB, dst)
            ok = subprocess.run([str(dst), "--version"], capture_output=True,
                                timeout=20).returncode == 0
        except (OSError, subprocess.SubprocessError):
            ok = False
        if ok:     # a whole binary, not one the linker was half-way through
            _PINNED = (str(dst), hashlib.sha1(dst.read_bytes()).hexdigest()[:12])
            return _PINNED
        if time.monotonic() > deadline:
            log(f"warning: cannot copy {PYLEAKDB} aside; using it in place")
            _PINNED = (str(PYLEAKDB), "?")
            return _PINNED
        time.sleep(1)


class Context:
    def __init__(self, name: str):
        self.name = name
        self.repo = REPO
        # a private copy, the same for every benchmark of the run
        self.pyleakdb = pinned_binary()[0]
        self.failures: List[str] = []
        self.notes: List[str] = []   # printed and written under the table
        self.t0 = time.monotonic()

    def log(self, msg: str) -> None:
        log(f"[{self.name} {time.monotonic() - self.t0:5.1f}s] {msg}")

    def fail(self, msg: str) -> None:
        """Record that part of the benchmark measured something wrong; the
        benchmark is reported failed, the run goes on."""
        self.failures.append(msg)
        self.log("FAILED: " + msg)

    def note(self, msg: str) -> None:
        self.notes.append(msg)
        self.log("note: " + msg)

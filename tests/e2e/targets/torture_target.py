# SPDX-License-Identifier: GPL-3.0-or-later
"""The torture test's target: usage torture_target.py READY MODE CTLDIR.

MODE is one of the scenarios below.  The target sets its work going, waits
until every activity has done a little of it (so that every module it will
ever import is imported), takes a snapshot of everything pyleakdb must not
change, then writes READY (JSON: pid, counters) and works until the file
CTLDIR/finish appears.  It then

  1. records its counters (A), keeps working until every counter has moved
     on (B), which proves it still works after the last detach;
  2. with its workers quiesced, compares the state with the snapshot
     (sys.modules, threads, trace/profile hooks, fds, gc, tracemalloc,
     signal dispositions and every thread's blocked mask from
     /proc/self/task/*/status, executable mappings...);
  3. writes CTLDIR/verdict.json: {"traces": [...], "anomalies": [...],
     "ready": {...}, "A": {...}, "B": {...}, "stats": {...}};
  4. stops its threads and exits with status 0.

While it works it checks its own behaviour and records every deviation in
`anomalies` (also printed on stdout): a select/sleep/timed wait returning
early or with a wrong result, a wrong checksum, a child with a wrong exit
status, an exception in a thread, a thread whose signal mask or trace/profile
function changed.  A healthy run has no anomaly, no trace and an empty
stderr.

`counter[0]` is the number pyleakdb reads with `eval counter[0]`: an int
that only grows.

Python 3.6 syntax, standard library only.  tracemalloc is imported on
purpose (never started), so that the check can say whether pyleakdb left it
tracing.
"""
import gc
import hashlib
import json
import os
import select
import signal
import subprocess
import sys
import threading
import time
import traceback
import tracemalloc

READY, MODE, CTL = sys.argv[1], sys.argv[2], sys.argv[3]
FINISH = os.path.join(CTL, "finish")
VERDICT = os.path.join(CTL, "verdict.json")
# Every counter must move on within this after the finish file appears.
DRAIN_TIMEOUT = 30.0

counter = [0]        # what `eval counter[0]` reads
anomalies = []
stats = {}
running = [True]     # the workers run while running[0]
threads = []         # the workers
pause = threading.Lock()  # held by a worker around fd-creating work; the check takes it
_alock = threading.Lock()
_state = {"baseline": None, "ready": None, "a": None, "b": None, "phase": "run",
          "deadline": None, "sigblk": {}}
monotonic = time.monotonic


def anomaly(msg):
    with _alock:
        if len(anomalies) < 100:
            anomalies.append(msg)
    sys.stdout.write("ANOMALY %s\n" % msg)
    sys.stdout.flush()


def write_json(obj, path):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(obj, f, indent=1, sort_keys=True)
    os.rename(tmp, path)


# ----- each thread watches its own signal mask and trace/profile functions -----

_local = threading.local()


def self_check(where):
    mask = signal.pthread_sigmask(signal.SIG_BLOCK, [])
    base = getattr(_local, "mask", None)
    if base is None:
        _local.mask = mask
    elif mask != base:
        anomaly("%s: signal mask changed from %r to %r" % (where, sorted(base), sorted(mask)))
        _local.mask = mask
    if sys.gettrace() is not None or sys.getprofile() is not None:
        anomaly("%s: trace %r / profile %r installed" % (where, sys.gettrace(), sys.getprofile()))


def worker(name, fn, *args):
    def run():
        try:
            self_check(name)
            fn(*args)
        except BaseException:
            anomaly("thread %s died: %s" % (name, traceback.format_exc()))
    t = threading.Thread(target=run, name=name)
    t.daemon = True
    threads.append(t)
    return t


# ----- the snapshot of what pyleakdb must leave as it was -----

def _maps():
    execs, anon_exec = set(), []
    with open("/proc/self/maps") as f:
        for line in f:
            parts = line.split(None, 5)
            perms = parts[1]
            path = parts[5].strip() if len(parts) > 5 else ""
            if "x" in perms:
                execs.add("%s %s" % (perms, path))
                if not path or path.startswith("[anon") or path.startswith("/dev/zero"):
                    anon_exec.append("%s %s %s" % (parts[0], perms, path))
    return sorted(execs), sorted(anon_exec)


def _task_status():
    """{tid: (SigBlk, ...)} of every thread (kernel's view)."""
    out = {}
    for tid in os.listdir("/proc/self/task"):
        try:
            with open("/proc/self/task/%s/status" % tid) as f:
                st = dict(l.split(":", 1) for l in f.read().splitlines() if ":" in l)
        except OSError:
            continue
        out[tid] = st.get("SigBlk", "").strip()
    return out


def _fds():
    out = {}
    for fd in os.listdir("/proc/self/fd"):
        try:
            out[fd] = os.readlink("/proc/self/fd/" + fd)
        except OSError:
            out[fd] = "(closed: the listing's own)"
    return out


def snapshot():
    with open("/proc/self/status") as f:
        st = dict(l.split(":", 1) for l in f.read().splitlines() if ":" in l)
    execs, anon_exec = _maps()
    main = sys.modules["__main__"]
    import builtins
    s = {
        "sys.modules": sorted(sys.modules),
        "threading.enumerate": sorted("%s %s daemon=%s" % (t.ident, t.name, t.daemon)
                                      for t in threading.enumerate()),
        "sys.gettrace": repr(sys.gettrace()),
        "sys.getprofile": repr(sys.getprofile()),
        "threading._trace_hook": repr(getattr(threading, "_trace_hook", None)),
        "threading._profile_hook": repr(getattr(threading, "_profile_hook", None)),
        "asyncgen_hooks": repr(tuple(sys.get_asyncgen_hooks())),
        "fds": _fds(),
        "gc.get_debug": gc.get_debug(),
        "gc.isenabled": gc.isenabled(),
        "gc.get_threshold": list(gc.get_threshold()),
        "len(gc.garbage)": len(gc.garbage),
        "len(gc.callbacks)": len(gc.callbacks),
        "tracemalloc.is_tracing": tracemalloc.is_tracing(),
        "signal handlers": dict((str(int(n)), repr(signal.getsignal(n))) for n in
                                (signal.SIGINT, signal.SIGTERM, signal.SIGUSR1, signal.SIGUSR2,
                                 signal.SIGCHLD, signal.SIGURG, signal.SIGWINCH, signal.SIGPIPE,
                                 signal.SIGALRM, signal.SIGTRAP)),
        "SigIgn": st.get("SigIgn", "").strip(),
        "SigCgt": st.get("SigCgt", "").strip(),
        "thread SigBlk": _task_status(),
        "exec mappings": execs,
        "anonymous exec mappings": anon_exec,
        "__main__ globals": sorted(main.__dict__),
        "builtins": sorted(builtins.__dict__),
        "sys.path": list(sys.path),
        "len(sys.meta_path)": len(sys.meta_path),
        "len(sys.path_hooks)": len(sys.path_hooks),
        "sys.displayhook": repr(sys.displayhook),
        "sys.excepthook": repr(sys.excepthook),
        "sys.stdout": repr(sys.stdout),
        "sys.stderr": repr(sys.stderr),
        "switchinterval": sys.getswitchinterval(),
        "recursionlimit": sys.getrecursionlimit(),
        "cwd": os.getcwd(),
    }
    return s


def compare(base, now):
    diffs = []
    for k in sorted(base):
        a, b = base[k], now.get(k)
        if a == b:
            continue
        if k == "thread SigBlk":
            # threads that come and go are the business of threading.enumerate
            ch = dict((x, (a[x], b[x])) for x in set(a) & set(b) if a[x] != b[x])
            if ch:
                diffs.append("%s: changed {tid: (before, after)} %r" % (k, ch))
        elif isinstance(a, list) and isinstance(b, list):
            diffs.append("%s: added %r, removed %r" % (
                k, sorted(set(b) - set(a)), sorted(set(a) - set(b))))
        elif isinstance(a, dict) and isinstance(b, dict):
            ch = dict((x, (a.get(x), b.get(x))) for x in set(a) | set(b) if a.get(x) != b.get(x))
            diffs.append("%s: changed {key: (before, after)} %r" % (k, ch))
        else:
            diffs.append("%s: %r before, %r after" % (k, a, b))
    return diffs


# ----- the control protocol (see the docstring) -----

def counts():
    return dict((k, f()) for k, f in COUNTS.items())


def poll():
    """Called often by the thread that drives the target.  True when the
    verdict is written and the target should stop."""
    ph = _state["phase"]
    if ph == "run":
        if os.path.exists(FINISH):
            _state["a"] = counts()
            _state["deadline"] = monotonic() + DRAIN_TIMEOUT
            _state["phase"] = "drain"
        return False
    if ph == "drain":
        now = counts()
        a = _state["a"]
        if all(now[k] > a[k] for k in a) or monotonic() > _state["deadline"]:
            _state["b"] = now
            verdict()
            _state["phase"] = "done"
            return True
        return False
    return True


def verdict():
    for q in QUIESCE:
        q()
    with pause:
        traces = compare(_state["baseline"], snapshot())
    write_json({"mode": MODE, "traces": traces, "anomalies": list(anomalies),
                "ready": _state["ready"], "A": _state["a"], "B": _state["b"],
                "counter": counter[0], "stats": stats}, VERDICT)


def ready():
    """Once every activity did some work: snapshot, then the ready file."""
    deadline = monotonic() + 60
    while not all(v > 0 for v in counts().values()):
        if monotonic() > deadline:
            write_json({"error": "activities did not start: %r" % counts()}, READY)
            sys.exit(1)
        time.sleep(0.01)
    with pause:
        _state["baseline"] = snapshot()
    _state["ready"] = counts()
    write_json({"pid": os.getpid(), "mode": MODE, "version": list(sys.version_info[:3]),
                "counts": _state["ready"], "threads": len(threading.enumerate()),
                "stable_tids": stable_tids or None, "stats": stats}, READY)


def stop_workers():
    running[0] = False
    for t in threads:
        t.join(30)
        if t.is_alive():
            anomaly("thread %s did not stop" % t.name)


# ----- the scenarios -----

COUNTS = {}
QUIESCE = []      # run before the final check, in the thread that drives the target
stable_tids = []  # churn: the threads that stay (the others come and go)


def mode_select():
    """The main thread idles in select() on a pipe nobody writes to."""
    r, w = os.pipe()
    COUNTS["selects"] = lambda: counter[0]
    timeout = 0.1
    first = True
    while True:
        t0 = monotonic()
        res = select.select([r], [], [], timeout)
        dt = monotonic() - t0
        if res != ([], [], []):
            anomaly("select returned %r" % (res,))
        elif dt < timeout - 0.002:
            anomaly("select(%s) returned after %.4fs" % (timeout, dt))
        counter[0] += 1
        self_check("main")
        if first:
            ready()
            first = False
        if poll():
            break
    os.close(r)
    os.close(w)


def mode_sleep():
    """The main thread sleeps in time.sleep()."""
    COUNTS["sleeps"] = lambda: counter[0]
    step = 0.05
    first = True
    while True:
        t0 = monotonic()
        time.sleep(step)
        dt = monotonic() - t0
        if dt < step - 0.002:
            anomaly("time.sleep(%s) returned after %.4fs" % (step, dt))
        counter[0] += 1
        self_check("main")
        if first:
            ready()
            first = False
        if poll():
            break


def mode_event():
    """The main thread waits in Event.wait() (no timeout); a worker allocates
    and checks what it allocated; the worker drives the protocol."""
    done = threading.Event()
    COUNTS["allocations"] = lambda: counter[0]
    ring = [None] * 64
    stats["bad_objects"] = 0

    def make(i):
        return {"i": i, "l": list(range(i % 100)), "s": "x" * (i % 50), "t": (i, str(i)),
                "d": dict((str(j), j) for j in range(i % 20))}

    def alloc():
        i = 0
        first = True
        while True:
            slot = i % 64
            old = ring[slot]
            if old is not None and old != make(old["i"]):
                stats["bad_objects"] += 1
                anomaly("allocated object %d changed: %r" % (old["i"], old))
            ring[slot] = make(i)
            i += 1
            counter[0] = i
            if i % 64 == 0:
                self_check("allocator")
                if first:
                    ready()
                    first = False
                if poll():
                    break
        done.set()

    worker("allocator", alloc).start()
    self_check("main")
    done.wait()
    self_check("main")


def _loop():
    a = 0
    b = 0
    first = True
    while True:
        a += 1
        b += 2
        if not a & 0xFFFF:
            if b != 2 * a:
                anomaly("loop: b=%d, a=%d" % (b, a))
            counter[0] = a
            self_check("main")
            if first:
                ready()
                first = False
            if poll():
                break


def mode_loop():
    """A tight bytecode loop in the main thread: only a pending call stops it."""
    COUNTS["iterations"] = lambda: counter[0]
    _loop()


def mode_sort():
    """A long C call holding the GIL: sorting a 3M-element list, again and again."""
    n = 3000000
    base = [(i * 2654435761) % 1000003 for i in range(n)]
    expected = sorted(base)
    COUNTS["sorts"] = lambda: counter[0]
    stats["bad_sorts"] = 0
    counter[0] = 1  # the first sort, above
    ready()
    while True:
        w = base[:]
        w.sort()
        if w != expected:
            stats["bad_sorts"] += 1
            anomaly("sort %d: wrong result" % counter[0])
        del w
        counter[0] += 1
        self_check("main")
        if poll():
            break


def mode_hash():
    """A thread hashes 64 MB with the GIL released; the main thread sleeps
    in short steps."""
    algo = hashlib.sha256 if hashlib.sha256.__module__ == "_hashlib" else hashlib.blake2b
    data = bytes(range(256)) * ((64 << 20) // 256)
    expected = algo(data).hexdigest()
    stats["algorithm"] = algo().name
    stats["bad_digests"] = 0
    steps = [0]
    COUNTS["hashes"] = lambda: counter[0]
    COUNTS["steps"] = lambda: steps[0]

    def hasher():
        while running[0]:
            d = algo(data).hexdigest()
            if d != expected:
                stats["bad_digests"] += 1
                anomaly("hash %d: %s, expected %s" % (counter[0], d, expected))
            counter[0] += 1
            self_check("hasher")

    worker("hasher", hasher).start()
    first = True
    while True:
        t0 = monotonic()
        time.sleep(0.005)
        if monotonic() - t0 < 0.005 - 0.002:
            anomaly("time.sleep(0.005) returned after %.4fs" % (monotonic() - t0))
        steps[0] += 1
        if steps[0] % 10 == 0:
            self_check("main")
            if first:
                ready()
                first = False
            if poll():
                break
    stop_workers()


def mode_threads():
    """50 threads waiting with short timeouts (Event.wait and Lock.acquire,
    1 to 19 ms), the main thread sleeping in short steps."""
    nthreads = 50
    ticks = [0] * nthreads
    held = threading.Lock()
    held.acquire()  # never released: acquiring it always times out
    stats["early"] = 0
    COUNTS["main"] = lambda: counter[0]
    for i in range(nthreads):
        COUNTS["t%02d" % i] = (lambda i: lambda: ticks[i])(i)

    def waiter(i):
        ev = threading.Event()  # never set
        timeout = 0.001 + (i % 10) * 0.002
        name = "waiter-%02d" % i
        while running[0]:
            t0 = monotonic()
            if i % 2:
                got = ev.wait(timeout)
            else:
                got = held.acquire(True, timeout)
            dt = monotonic() - t0
            if got:
                anomaly("%s: the wait succeeded" % name)
            if dt < timeout - 0.002:
                stats["early"] += 1
                anomaly("%s: a %ss wait returned after %.4fs" % (name, timeout, dt))
            ticks[i] += 1
            if ticks[i] % 16 == 0:
                self_check(name)

    for i in range(nthreads):
        worker("waiter-%02d" % i, waiter, i).start()
    first = True
    while True:
        time.sleep(0.02)
        counter[0] += 1
        self_check("main")
        if first:
            ready()
            first = False
        if poll():
            break
    stop_workers()


def mode_signals():
    """SIGUSR1 sent to the process every millisecond by a thread, SIGCHLD
    from children (/bin/true) a second thread starts and reaps; Python
    handlers count them; the main thread sleeps in short steps.

    Signals coalesce, so the handlers run at most once per signal sent.
    For an exact count, the sender also sends a real-time signal (those
    queue) and the process has a wakeup fd: the C handler writes one byte
    per signal delivered, a reader thread counts the bytes, and at the end
    every real-time signal sent must have been delivered once."""
    rt = int(signal.SIGRTMIN) + 2
    chld = [0]
    sent = [0]
    rt_handled = [0]
    children = [0]
    steps = [0]
    woken = [0] * 256
    sending = [True]
    idle = threading.Event()
    stats["bad_children"] = []

    def on_usr1(signum, frame):
        counter[0] += 1

    def on_chld(signum, frame):
        chld[0] += 1

    def on_rt(signum, frame):
        rt_handled[0] += 1

    signal.signal(signal.SIGUSR1, on_usr1)
    signal.signal(signal.SIGCHLD, on_chld)
    signal.signal(rt, on_rt)
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_w, False)
    signal.set_wakeup_fd(wake_w)
    COUNTS["usr1_handled"] = lambda: counter[0]
    COUNTS["usr1_sent"] = lambda: sent[0]
    COUNTS["rt_handled"] = lambda: rt_handled[0]
    COUNTS["chld_handled"] = lambda: chld[0]
    COUNTS["children"] = lambda: children[0]
    COUNTS["steps"] = lambda: steps[0]

    def sender():
        pid = os.getpid()
        while running[0]:
            if not sending[0]:
                idle.set()
                time.sleep(0.01)
                continue
            os.kill(pid, signal.SIGUSR1)
            os.kill(pid, rt)
            sent[0] += 1
            time.sleep(0.001)
            if sent[0] % 64 == 0:
                self_check("sender")

    def reader():
        while running[0]:
            if select.select([wake_r], [], [], 0.05)[0]:
                for b in os.read(wake_r, 65536):
                    woken[b] += 1

    def quiesce():
        sending[0] = False
        idle.wait(10)
        deadline = monotonic() + 10
        while woken[rt] < sent[0] and monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.05)
        stats["rt_sent"] = sent[0]
        stats["rt_delivered"] = woken[rt]
        stats["rt_handled"] = rt_handled[0]
        stats["usr1_delivered"] = woken[int(signal.SIGUSR1)]
        stats["chld_delivered"] = woken[int(signal.SIGCHLD)]

    QUIESCE.append(quiesce)

    def spawner():
        while running[0]:
            with pause:
                p = subprocess.Popen(["/bin/true"], stdin=subprocess.DEVNULL)
                rc = p.wait()
            children[0] += 1
            if rc != 0:
                stats["bad_children"].append(rc)
                anomaly("child %d exited with %r" % (p.pid, rc))
            self_check("spawner")
            time.sleep(0.01)

    worker("sender", sender).start()
    worker("spawner", spawner).start()
    worker("wakeup-reader", reader).start()
    first = True
    while True:
        time.sleep(0.01)
        steps[0] += 1
        self_check("main")
        if first:
            ready()
            first = False
        if poll():
            break
    stop_workers()
    for n in (signal.SIGUSR1, signal.SIGCHLD, rt):
        signal.signal(n, signal.SIG_IGN)
    signal.set_wakeup_fd(-1)


def mode_fork():
    """The main thread forks children that do a little work and exit with a
    known status (1 + n % 200; 255 for a wrong result, 254 if traced, 253
    on an exception); it checks every child's exit status."""
    COUNTS["children"] = lambda: counter[0]
    stats["bad_children"] = []
    seq = 0
    first = True
    while True:
        seq += 1
        want = 1 + seq % 200
        pid = os.fork()
        if pid == 0:
            code = 253
            try:
                code = want if sum(i * i for i in range(300)) == 8955050 else 255
                with open("/proc/self/status") as f:
                    for line in f:
                        if line.startswith("TracerPid:") and line.split()[1] != "0":
                            code = 254
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        if not os.WIFEXITED(status) or os.WEXITSTATUS(status) != want:
            what = ("exit %d" % os.WEXITSTATUS(status) if os.WIFEXITED(status) else
                    "signal %d" % os.WTERMSIG(status) if os.WIFSIGNALED(status) else
                    "status %#x" % status)
            stats["bad_children"].append([seq, want, what])
            anomaly("child %d (#%d): %s, expected exit %d" % (pid, seq, what, want))
        counter[0] += 1
        self_check("main")
        if first:
            ready()
            first = False
        if poll():
            break
        time.sleep(0.002)


def mode_churn():
    """Threads that come and go: a spawner starts four short-lived threads
    (a little work each, then they exit) and joins them, again and again;
    the main thread sleeps in short steps."""
    started = [0]
    finished = [0]
    steps = [0]
    lock = threading.Lock()
    stats["bad_work"] = 0
    COUNTS["threads_finished"] = lambda: finished[0]
    COUNTS["steps"] = lambda: steps[0]
    stable_tids.append(os.getpid())

    def short(i):
        ok = sum(range(1000 + i)) == (1000 + i) * (999 + i) // 2
        with lock:
            finished[0] += 1
            if not ok:
                stats["bad_work"] += 1
                anomaly("a short-lived thread computed a wrong sum")

    def spawner():
        stable_tids.append(int(os.readlink("/proc/thread-self").split("/")[-1]))
        while running[0]:
            with pause:  # no short-lived thread alive during the final check
                ts = [threading.Thread(target=short, args=(started[0] + j,),
                                       name="short-%d" % (started[0] + j))
                      for j in range(4)]
                for t in ts:
                    t.start()
                started[0] += len(ts)
                for t in ts:
                    t.join(30)
                    if t.is_alive():
                        anomaly("thread %s did not end" % t.name)
            self_check("spawner")

    worker("spawner", spawner).start()
    first = True
    while True:
        time.sleep(0.01)
        steps[0] += 1
        self_check("main")
        if first:
            ready()
            first = False
        if poll():
            break
    stop_workers()


MODES = {
    "select": mode_select,
    "sleep": mode_sleep,
    "event": mode_event,
    "loop": mode_loop,
    "sort": mode_sort,
    "hash": mode_hash,
    "threads": mode_threads,
    "signals": mode_signals,
    "fork": mode_fork,
    "churn": mode_churn,
}


def main():
    if MODE not in MODES:
        write_json({"error": "no mode %r" % MODE}, READY)
        sys.exit(2)
    try:
        MODES[MODE]()
    except BaseException:
        anomaly("main thread: %s" % traceback.format_exc())
        raise
    stop_workers()


main()

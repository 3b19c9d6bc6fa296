# SPDX-License-Identifier: GPL-3.0-or-later
"""A program that leaks in a loop, for the breakpoint tests, and that tells
the test what one turn of its loop leaks.

    leak_loop.py READY [--where main|worker|late] [--body inline|call] [--rss]

One thread, the "looper", runs the loop below forever: each turn it leaks
N_ITEM Item instances (each with a list of its own), one list holding them
and one Record (or, with --rss, one Blob holding CHUNK bytes of touched
memory), prints its turn number on stdout (0, 1, 2... flushed), notes what
sys.gettrace() is in its thread, and sleeps.  With --body call the leaking
is a method call, Leaker.step(); else it is written in the loop itself.

    --where main    the main thread loops; a "control" thread serves the FIFO
    --where worker  a thread named "leaker" loops; the main thread serves the FIFO
    --where late    like worker, but the leaker starts only on the command "start"
                    (and loops once the reply is written: nothing else runs then)

The growth of one turn is measured by the looper itself, before the ready
file is written: it takes a census of gc.get_objects() (by module-qualified
type name) at the same place of WARMUP consecutive turns, leaving its own
census data out, and checks that every turn grew the same: "per_turn" in the
ready file is that growth, {type: delta}; "stable" says whether all the
measured turns agreed.  After the warm-up the loop does exactly what it did
during it, minus the census, so consecutive stops at any one line of the loop
must see exactly per_turn.

The control thread waits in os.read() on ./leak-cmd-PID.fifo for commands,
"SEQ WORD", each answered in ./reply-PID-SEQ.json:

  state   how the program sees itself now: the trace function of every
          thread of the program (the looper's as noted after at least two
          more turns), threading's trace hook, the sys.monitoring tools,
          modules whose name says pyleakdb, sys.modules, the threads, the
          SIGURG/SIGWINCH dispositions, the turn number
  start   (--where late) start the leaker thread
  free    (--rss) drop every Blob: RSS falls; the reply has the RSS after it

The ready file has the lines of the loop (marked with comments "# L_..."),
a blank line, per_turn, N_ITEM, CHUNK, the state at the start, the ids and
names of the threads.

Keep to Python 3.6 syntax: this runs on every interpreter from 3.6 to 3.13.
"""
import gc
import mmap
import os
import signal
import sys
import threading
import time

import _targetlib

HERE = os.path.abspath(__file__)
ARGV = sys.argv[2:]


def _opt(name, default):
    return ARGV[ARGV.index(name) + 1] if name in ARGV else default


WHERE = _opt("--where", "main")
BODY = _opt("--body", "inline")
RSS = "--rss" in ARGV

if not RSS:
    # a collection between two stops would untrack tuples and dicts: growth the
    # warm-up cannot foresee.  Nothing here is cyclic garbage: nothing is lost.
    gc.disable()

N_ITEM = 20
PAUSE = 0.002 if RSS else 0.01
CHUNK = 64 * 1024
ONES = b"\x01" * CHUNK
SKIP, WARMUP = 3, 6  # turns before the first census, then censuses taken

KEEP = []
RECORDS = []
CENSUS = []  # the warm-up censuses: ours, left out of every census
LOOPER = {"i": -1, "trace": "not started", "native_id": None}
CONTROL = {"native_id": None}
ready = threading.Event()
go = threading.Event()  # late: the leaker loops once the control thread has replied


class Item(object):
    def __init__(self, k):
        self.k = k
        self.tags = [k]


class Record(object):
    __slots__ = ("i", "items")

    def __init__(self, i, items):
        self.i = i
        self.items = items


class Blob(object):
    """CHUNK bytes of memory of its own (an anonymous mapping: freed, it goes back to
    the system at once), every page written: resident."""
    __slots__ = ("i", "data")

    def __init__(self, i):
        self.i = i
        self.data = mmap.mmap(-1, CHUNK)
        self.data[:] = ONES


class Leaker(object):
    def step(self, i):  # L_DEF
        batch = [Item(k) for k in range(N_ITEM)]  # L_STEP
        rec = Record(i, batch)
        RECORDS.append(rec)  # L_STEP_APPEND
        return rec


LEAKER = Leaker()


def type_name(t):
    mod = t.__module__
    name = getattr(t, "__qualname__", t.__name__)
    if mod == "builtins" or not isinstance(mod, str):
        return name
    return mod + "." + name


def census():
    """{type name: count} of the tracked objects, our census data left out."""
    counts = {}
    objs = gc.get_objects()
    for o in objs:
        n = type_name(type(o))
        counts[n] = counts.get(n, 0) + 1
    del o, objs
    for o in [CENSUS] + CENSUS:
        if gc.is_tracked(o):
            counts[type_name(type(o))] -= 1
    return counts


def note_census(i):
    if SKIP < i <= SKIP + WARMUP:
        CENSUS.append(census())
        if i == SKIP + WARMUP:
            ready.set()


def trace_name(fn):
    return None if fn is None else repr(fn)


def looper():
    LOOPER["native_id"] = _targetlib.native_id()
    rec = batch = blob = None
    i = 0
    measure = WHERE != "late" and not RSS
    go.wait()
    while True:
        i += 1  # L_LOOP
        if measure and i <= SKIP + WARMUP:
            note_census(i)
        if RSS:
            blob = Blob(i)  # L_BLOB
            KEEP.append(blob)
        elif BODY == "call":
            rec = LEAKER.step(i)  # L_CALL
        else:
            batch = [Item(k) for k in range(N_ITEM)]  # L_INLINE
            rec = Record(i, batch)
            RECORDS.append(rec)
        sys.stdout.write("%d\n" % i)
        sys.stdout.flush()
        LOOPER["trace"] = trace_name(sys.gettrace())
        LOOPER["i"] = i
        time.sleep(PAUSE)  # L_SLEEP


# a blank line with no code follows

def per_turn():
    """The growth of one turn, and whether every measured turn grew the same."""
    deltas = []
    for a, b in zip(CENSUS, CENSUS[1:]):
        deltas.append(dict((k, b.get(k, 0) - a.get(k, 0)) for k in set(a) | set(b)
                           if b.get(k, 0) != a.get(k, 0)))
    return deltas[0], all(d == deltas[0] for d in deltas), deltas


def state():
    """How the program sees itself; the looper's trace as noted after two more turns."""
    out = {}
    if LOOPER["native_id"] is not None:
        start = LOOPER["i"]
        deadline = time.time() + 20
        while LOOPER["i"] < start + 2:
            if time.time() > deadline:
                return {"error": "the looper did not turn (stuck at %d)" % start}
            time.sleep(0.005)
        out["looper_trace"] = LOOPER["trace"]
    out["control_trace"] = trace_name(sys.gettrace())
    out["turn"] = LOOPER["i"]
    out["thread_hook"] = trace_name(getattr(threading, "_trace_hook", None))
    out["profile_hook"] = trace_name(getattr(threading, "_profile_hook", None))
    out["getprofile"] = trace_name(sys.getprofile())
    mon = getattr(sys, "monitoring", None)
    out["monitoring"] = [mon.get_tool(i) for i in range(6)] if mon else None
    out["pyleakdb_modules"] = sorted(m for m in sys.modules if "pyleakdb" in m.lower())
    out["modules"] = sorted(sys.modules)
    out["threads"] = sorted(t.name for t in threading.enumerate())
    out["signals"] = [repr(signal.getsignal(s)) for s in (signal.SIGURG, signal.SIGWINCH)]
    out["gc_enabled"] = gc.isenabled()
    return out


def own_rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def threads_info():
    return {"looper": LOOPER["native_id"], "control": CONTROL["native_id"],
            "main": _main_native_id}


def control():
    CONTROL["native_id"] = _targetlib.native_id()
    fifo = os.path.abspath("leak-cmd-%d.fifo" % os.getpid())
    if not os.path.exists(fifo):
        os.mkfifo(fifo)
    fd = os.open(fifo, os.O_RDWR)  # never EOF, never waits for a writer
    if not ready.wait(60):
        _targetlib.write_json({"error": "the looper did not warm up"})
        return
    out = {
        "pid": os.getpid(), "version": list(sys.version_info[:3]), "file": HERE,
        "where": WHERE, "body": BODY, "rss_mode": RSS, "n_item": N_ITEM, "chunk": CHUNK,
        "fifo": fifo, "threads": threads_info(),
        "lines": dict((m[2:].lower(), _targetlib.marked_lines(HERE, "# " + m)[0])
                      for m in ("L_LOOP", "L_DEF", "L_STEP", "L_STEP_APPEND", "L_CALL", "L_INLINE",
                                "L_BLOB", "L_SLEEP")),
        "blank_line": [i for i, line in enumerate(open(HERE), 1)
                       if line.startswith("# a blank line")][0] + 1,
    }
    if CENSUS:
        out["per_turn"], out["stable"], out["deltas"] = per_turn()
    out["start"] = state()
    _targetlib.write_json(out)
    while True:
        data = os.read(fd, 4096)  # BLOCK
        words = data.decode().split()
        seq, cmd = int(words[0]), words[1]
        if cmd == "state":
            reply = state()
        elif cmd == "free":
            reply = {"freed": len(KEEP)}
            del KEEP[:]
            reply["rss"] = own_rss()
        elif cmd == "start":
            worker = threading.Thread(target=looper, name="leaker")
            worker.daemon = True
            worker.start()
            while LOOPER["native_id"] is None:
                time.sleep(0.001)
            reply = {"threads": threads_info()}
            del worker
        else:
            reply = {"error": "unknown command %r" % cmd}
        _targetlib.write_json(reply, "reply-%d-%d.json" % (os.getpid(), seq))
        go.set()
        del data, words, reply


_main_native_id = _targetlib.native_id()
if WHERE == "late" or RSS:
    ready.set()  # nothing to measure
if WHERE != "late":
    go.set()
if WHERE == "main":
    _c = threading.Thread(target=control, name="control")
    _c.daemon = True
    _c.start()
    looper()
else:
    if WHERE == "worker":
        _w = threading.Thread(target=looper, name="leaker")
        _w.daemon = True
        _w.start()
    control()

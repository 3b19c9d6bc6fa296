# SPDX-License-Identifier: GPL-3.0-or-later
"""A quiescent heap for the heap commands (top, growth, gc, cycles,
tracemalloc, trim, eval, exec) that tells the test the expected answers.

    heap_target.py READY [--tracemalloc] [--big N]

The collector is disabled for the whole run, so nothing the test does not
ask for is ever collected.  The main thread is the only thread; it waits in
os.read() on a FIFO, ./heap-cmd-PID.fifo (in the working directory), for one
command per write:

    SEQ WORD [ARGS...]

It does the work, takes a census of gc.get_objects() (by module-qualified
type name: count and sum of sys.getsizeof) and writes
{"seq", "result", "census", "sizes"} to ./reply-PID-SEQ.json, then waits
again.  Commands: census, more NALPHA NBETA, garbage RINGS SIZE LISTS
(cyclic garbage: RINGS rings of SIZE Links, LISTS lists holding themselves),
alive (how many of those Links live), collect, alloc N SIZE (N bytes objects
on the "# TM_ALLOC" line, kept), churn N (allocate and free), ids PATH (the
id() of every Big, to PATH), drop_alphas, state (what must be as at the
start once pyleakdb has left).

The census is what a heap census taken while the target waits must find:
it runs when the work is done, from main(), which then waits; what it and
the reply create is gone (or not tracked) by then, and the locals of main()
hold nothing tracked.  Only frames differ (the census' own frame exists
then, not later): the type "frame" is left out of it.

The ready file is the first reply (seq 0), with, in "result": the counts
the target created, the FIFO's fd, the line marked "# TM_ALLOC", the ids of
the Alphas, its state at the start, and "stable": whether a census taken
right after writing a reply equals the one taken before it (the census
method leaves nothing behind).  With --big N, N instances of Big exist and
the census is skipped (empty).

Keep to Python 3.6 syntax: this runs on every interpreter from 3.6 to 3.13.
"""
import gc
import json
import os
import sys
import threading
import weakref

if "--tracemalloc" in sys.argv:
    import tracemalloc
    tracemalloc.start(1)
else:
    import tracemalloc  # imported, not tracing: pyleakdb must leave it so

gc.collect()  # what the imports left (pickle's first exception classes...)
gc.disable()
# flags and a gc.garbage of its own, which pyleakdb must leave as they are
gc.set_debug(gc.DEBUG_UNCOLLECTABLE)
gc.garbage.append("heap_target sentinel")

HERE = os.path.abspath(__file__)
N_ALPHA, N_BETA, N_GAMMA = 12345, 2345, 345
N_FUNC, N_DICT, N_LIST, N_TUPLE = 1234, 2222, 3333, 4444


class Alpha(object):
    def __init__(self, i):
        self.i = i


class Beta(object):
    __slots__ = ("a", "b")

    def __init__(self, i):
        self.a = i
        self.b = None


class Gamma(object):
    def __init__(self):
        self.next = None


class Link(object):
    """A node of the cyclic garbage: one tracked object each (no __dict__)."""
    __slots__ = ("next", "__weakref__")


class Big(object):
    __slots__ = ("i",)

    def __init__(self, i):
        self.i = i


def make_closure(i):
    a = [i]
    b = (i, a)

    def f():
        return a, b
    return f


# ----- the heap -----
ALPHAS = [Alpha(i) for i in range(N_ALPHA)]
BETAS = [Beta(i) for i in range(N_BETA)]
GAMMAS = [Gamma() for i in range(N_GAMMA)]
for _i in range(N_GAMMA):
    GAMMAS[_i].next = GAMMAS[(_i + 1) % N_GAMMA]  # one ring: a live cycle
FUNCS = [make_closure(i) for i in range(N_FUNC)]  # N_FUNC functions, 2 cells each
DICTS = [{"k": [i]} for i in range(N_DICT)]  # tracked: they hold a list
LISTS = [[i, None] for i in range(N_LIST)]
TUPLES = [(i, [], i) for i in range(N_TUPLE)]  # tracked: they hold a list
del _i

WEAKS = []  # weak references to the cyclic garbage made by "garbage"
TM_KEEP = []  # what "alloc" keeps
BIGS = []
STATE = {}  # what the test may read back in a reply
RESULT = {}

if "--big" in sys.argv:
    _n = int(sys.argv[sys.argv.index("--big") + 1])
    BIGS.extend(Big(i) for i in range(_n))
    del _n

FIFO = os.path.abspath("heap-cmd-%d.fifo" % os.getpid())
if not os.path.exists(FIFO):
    os.mkfifo(FIFO)
# O_RDWR: the open does not wait for a writer, and the read never sees EOF
FD = os.open(FIFO, os.O_RDWR)


def type_name(t):
    mod = t.__module__
    name = getattr(t, "__qualname__", t.__name__)
    if mod == "builtins" or not isinstance(mod, str):
        return name
    return mod + "." + name


def census():
    """{type name: count}, {type name: sum of sys.getsizeof} of the tracked objects."""
    if BIGS:
        return {}, {}  # not needed with --big, and slow
    counts = {}
    sizes = {}
    getsizeof = sys.getsizeof
    objs = gc.get_objects()
    for o in objs:
        n = type_name(type(o))
        counts[n] = counts.get(n, 0) + 1
        sizes[n] = sizes.get(n, 0) + getsizeof(o)
    del o, objs
    counts.pop("frame", None)
    sizes.pop("frame", None)
    return counts, sizes


def write_reply(seq, counts, sizes):
    path = "reply-%d-%d.json" % (os.getpid(), seq)
    text = json.dumps({"seq": seq, "result": RESULT, "census": counts, "sizes": sizes})
    with open(path + ".tmp", "w") as f:
        f.write(text)
    del text, f
    os.rename(path + ".tmp", path)


def state():
    """What must be as it was at the start once pyleakdb has left."""
    return {
        "modules": sorted(sys.modules),
        "threads": sorted(t.ident for t in threading.enumerate()),
        "fds": sorted(os.listdir("/proc/self/fd")),
        "gettrace": repr(sys.gettrace()),
        "getprofile": repr(sys.getprofile()),
        "gc_enabled": gc.isenabled(),
        "gc_debug": gc.get_debug(),
        "gc_garbage": [repr(x) for x in gc.garbage],
        "gc_garbage_id": id(gc.garbage),
        "tracing": tracemalloc.is_tracing(),
    }


def make_garbage(rings, size, lists):
    """Drop `rings` rings of `size` Links and `lists` self-referencing lists."""
    del WEAKS[:]
    ids = []
    for r in range(rings):
        nodes = [Link() for i in range(size)]
        for i in range(size):
            nodes[i].next = nodes[(i + 1) % size]
        WEAKS.extend(weakref.ref(n) for n in nodes)
        ids.extend(id(n) for n in nodes)
    for i in range(lists):
        x = []
        x.append(x)
    return {"links": rings * size, "lists": lists, "ids": ids}


def tm_alloc(n, size):
    data = [bytes(size + i % 7) for i in range(n)]  # TM_ALLOC
    total = sum(sys.getsizeof(b) for b in data)
    TM_KEEP.append(data)
    return {"n": n, "bytes_size": total, "list_size": sys.getsizeof(data),
            "empty_list_size": sys.getsizeof([])}


def handle(words):
    cmd = words[0]
    RESULT.clear()
    if cmd == "census":
        pass
    elif cmd == "more":
        ALPHAS.extend(Alpha(i) for i in range(int(words[1])))
        BETAS.extend(Beta(i) for i in range(int(words[2])))
    elif cmd == "garbage":
        RESULT.update(make_garbage(int(words[1]), int(words[2]), int(words[3])))
    elif cmd == "collect":
        RESULT["found"] = [gc.collect() for i in range(3)]
    elif cmd == "drop_alphas":
        # drop every Alpha: do they go?  (weak references tell)
        weaks = [weakref.ref(a) for a in ALPHAS]
        del ALPHAS[:]
        RESULT["dropped"] = len(weaks)
        RESULT["alive"] = sum(1 for w in weaks if w() is not None)
        del weaks
    elif cmd == "alive":
        RESULT["alive"] = sum(1 for w in WEAKS if w() is not None)
        RESULT["weaks"] = len(WEAKS)
    elif cmd == "alloc":
        RESULT.update(tm_alloc(int(words[1]), int(words[2])))
    elif cmd == "churn":
        # many small objects and malloc'ed blocks, then freed: memory to give back
        junk = [bytearray(1500) for i in range(int(words[1]))]
        junk2 = [[i] for i in range(int(words[1]))]
        RESULT["freed"] = len(junk) + len(junk2)
        del junk, junk2
    elif cmd == "ids":
        with open(words[1], "w") as f:
            f.write("\n".join(str(id(o)) for o in BIGS))
        del f
        RESULT["n"] = len(BIGS)
    elif cmd == "state":
        RESULT.update(state())
        RESULT["x"] = repr(getattr(sys.modules["__main__"], "x", None))
    else:
        RESULT["error"] = "unknown command %r" % (words,)


def main():
    RESULT.update({
        "alpha": N_ALPHA, "beta": N_BETA, "gamma": N_GAMMA, "big": len(BIGS),
        "fifo_fd": FD, "pid": os.getpid(), "version": list(sys.version_info[:3]),
        "tm_alloc_line": [i for i, line in enumerate(open(HERE), 1)
                          if line.rstrip().endswith("# TM_ALLOC") and "def " not in line][0],
        "file": HERE,
        "alpha_ids": [id(a) for a in ALPHAS],
        "alpha_size": sys.getsizeof(ALPHAS[0]),
    })
    # warm up every path the census and the reply take, then check that a
    # census is not changed by writing a reply
    write_reply(-1, {}, {})
    c1, s1 = census()
    write_reply(-2, c1, s1)
    c2, s2 = census()
    RESULT["stable"] = c1 == c2
    RESULT["unstable"] = [(k, c1.get(k), c2.get(k)) for k in set(c1) | set(c2)
                          if c1.get(k) != c2.get(k)]
    del c1, s1, c2, s2
    RESULT["start"] = state()
    STATE["start"] = RESULT["start"]
    counts, sizes = census()
    write_reply(0, counts, sizes)
    del counts, sizes
    os.rename("reply-%d-0.json" % os.getpid(), sys.argv[1])
    while True:
        data = os.read(FD, 4096)  # BLOCK
        words = data.decode().split()
        del data
        seq = int(words[0])
        handle(words[1:])
        del words
        counts, sizes = census()
        write_reply(seq, counts, sizes)
        del counts, sizes, seq


main()

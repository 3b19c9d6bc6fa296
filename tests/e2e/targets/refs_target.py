# SPDX-License-Identifier: GPL-3.0-or-later
"""The leaks `refs` must explain, each told to the test by the target itself.

    refs_target.py READY [--no-collector]

Builds, then waits (the main thread in os.read() on ./refs-cmd-PID.fifo, a
worker thread in a loop that holds a local variable):

  registry  class Registry: instance_map = {} holds N_PROC Processor
            instances, keyed by number; the newest is Processor(NEWEST_KEY),
            made after the last collection
  closure   a callback closure over a big list (BigData), and a bound
            method of a Holder whose .payload is a big dict
  local     LoopWorker.run() keeps a Cache in the local variable `cache`
            while it loops (time.sleep between rounds)
  native    a Pinned object whose every Python reference is gone, but
            which ctypes.pythonapi.Py_IncRef() keeps alive (when ctypes is
            there)
  shared    one Shared object, held by N_BOX Box objects (.item), by a dict
            (OTHER['s']) and by a module global (SHARED): three ways
  cycle     two Node objects referring to each other, unreachable, kept
            for the test by disabling the collector (weak references tell
            whether they are still there)

The ready file has, for each, what the program knows about itself: ids,
keys, names, lines, reference counts.  Commands (one per write, "SEQ WORD
[ARGS]"), each answered in ./reply-PID-SEQ.json:

  state           counts of weak references, of every type's instances
                  (gc.get_objects), sys.modules, whether the cycle and the
                  dropped objects still exist
  drop            forget the newest Processor (a handle on it must say gone)
  refcount ID     the references to the Processor whose id is ID, as
                  sys.getrefcount counts them

Keep to Python 3.6 syntax.
"""
import gc
import json
import os
import sys
import threading
import time
import weakref

READY = sys.argv[1]
HERE = os.path.abspath(__file__)
N_PROC = 1000
FIRST_KEY = 140000
NEWEST_KEY = FIRST_KEY + N_PROC - 1

if "--no-collector" in sys.argv:
    gc.disable()


def write_json(obj, path):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(obj, f, indent=1, sort_keys=True)
    os.rename(tmp, path)


def marked(marker):
    with open(HERE) as f:
        for i, line in enumerate(f, 1):
            if line.rstrip().endswith(marker):
                return i
    raise RuntimeError(marker)


# ----- registry: a class attribute dict holding instances -----

class Processor(object):
    def __init__(self, key):
        self.key = key
        self.buffer = [key] * 10


class Registry(object):
    instance_map = {}

    @classmethod
    def register(cls, key):
        p = Processor(key)
        cls.instance_map[key] = p
        return p


for _k in range(FIRST_KEY, NEWEST_KEY):
    Registry.register(_k)
del _k


# ----- closures and bound methods -----

class BigData(object):
    """What a closure keeps alive: a list of a thousand numbers inside."""

    def __init__(self):
        self.rows = list(range(1000))


class Holder(object):
    def __init__(self):
        self.payload = {"k%d" % i: [i] for i in range(500)}

    def on_event(self):
        return len(self.payload)


def make_callback():
    big_data = BigData()

    def callback():
        return big_data.rows[0]
    return callback


CALLBACKS = [make_callback()]
HANDLERS = {"event": Holder().on_event}


# ----- one object, held three ways -----

N_BOX = 20


class Shared(object):
    pass


class Box(object):
    def __init__(self, item):
        self.item = item


SHARED = Shared()
BOXES = [Box(SHARED) for _i in range(N_BOX)]
OTHER = {"s": SHARED}


# ----- a local variable in a running loop -----

class Cache(object):
    def __init__(self):
        self.items = {}


LOOP_STATE = {}


class LoopWorker(object):
    def run(self):
        cache = Cache()
        LOOP_STATE["cache_id"] = id(cache)
        LOOP_STATE["line"] = marked("# LOOP")
        LOOP_STATE["tid"] = native_id()
        LOOP_STATE["ready"] = True
        while True:
            cache.items[len(cache.items) % 10] = time.time()
            time.sleep(0.05)  # LOOP


def native_id():
    if hasattr(threading, "get_native_id"):
        return threading.get_native_id()
    import ctypes
    return int(ctypes.CDLL(None).syscall(186))


# ----- held only from native code -----

class Pinned(object):
    pass


PINNED = {}


def pin():
    try:
        import ctypes
    except ImportError:
        return None
    p = Pinned()
    ctypes.pythonapi.Py_IncRef(ctypes.py_object(p))
    PINNED["ref"] = weakref.ref(p)
    PINNED["id"] = id(p)
    return True


# ----- cyclic garbage -----

class Node(object):
    pass


CYCLE = {}


def make_cycle():
    a, b = Node(), Node()
    a.other, b.other = b, a
    CYCLE["refs"] = [weakref.ref(a), weakref.ref(b)]
    CYCLE["ids"] = [id(a), id(b)]


# ----- talking to the test -----

DROPPED = {}


def type_name(t):
    mod = t.__module__
    name = getattr(t, "__qualname__", t.__name__)
    if mod == "builtins" or not isinstance(mod, str):
        return name
    return mod + "." + name


def census():
    counts = {}
    objs = gc.get_objects()
    for o in objs:
        n = type_name(type(o))
        counts[n] = counts.get(n, 0) + 1
    del objs, o
    # the census's own frame, and whatever replying makes, are not the heap's
    counts.pop("frame", None)
    return counts


def state():
    if gc.isenabled():
        gc.collect()  # what replying left behind
    c = census()
    return {
        "weakrefs": c.get("weakref", 0) + c.get("weakref.ReferenceType", 0),
        "census": c,
        "modules": sorted(sys.modules),
        "cycle_alive": [r() is not None for r in CYCLE["refs"]],
        "dropped_alive": DROPPED["ref"]() is not None if "ref" in DROPPED else None,
        "gc_enabled": gc.isenabled(),
        "switchinterval": sys.getswitchinterval(),
        "threads": len(threading.enumerate()),
    }


def handle(words):
    cmd = words[0]
    if cmd == "state":
        return state()
    if cmd == "drop":
        p = Registry.instance_map.pop(NEWEST_KEY)
        DROPPED["ref"] = weakref.ref(p)
        DROPPED["id"] = id(p)
        del p
        return {"alive": DROPPED["ref"]() is not None}
    if cmd == "refcount":
        want = int(words[1])
        found = None
        for p in Registry.instance_map.values():
            if id(p) == want:
                found = p
                break
        p = None
        # the registry's reference, as sys.getrefcount counts: less ours and the call's
        return {"refcount": sys.getrefcount(found) - 2 if found is not None else None}
    return {"error": "unknown command %r" % (words,)}


def main():
    make_cycle()
    pinned = pin()
    worker = threading.Thread(target=LoopWorker().run, name="loop-worker")
    worker.daemon = True
    worker.start()
    while not LOOP_STATE.get("ready"):
        time.sleep(0.01)
    fifo = os.path.abspath("refs-cmd-%d.fifo" % os.getpid())
    os.mkfifo(fifo)
    fd = os.open(fifo, os.O_RDWR)
    start = state()
    # the newest, made after the last collection: the collector's youngest list has it
    newest = Registry.register(NEWEST_KEY)
    ready = {
        "pid": os.getpid(),
        "version": list(sys.version_info[:3]),
        "file": HERE,
        "fifo": fifo,
        "n_proc": N_PROC,
        "newest_key": NEWEST_KEY,
        "newest_id": id(newest),
        "closure_big_id": id(CALLBACKS[0].__closure__[0].cell_contents),
        "closure_var": CALLBACKS[0].__code__.co_freevars[0],
        "holder_payload_id": id(HANDLERS["event"].__self__.payload),
        "loop": LOOP_STATE,
        "pinned": pinned is not None,
        "pinned_id": PINNED.get("id"),
        "cycle_ids": CYCLE["ids"],
        "shared_id": id(SHARED),
        "n_box": N_BOX,
        "gc_enabled": gc.isenabled(),
        "state": start,
    }
    del newest
    write_json(ready, READY)
    while True:
        data = os.read(fd, 4096)  # BLOCK
        words = data.decode().split()
        seq = int(words[0])
        reply = handle(words[1:])
        write_json(reply, "reply-%d-%d.json" % (os.getpid(), seq))
        del data, words, reply


main()

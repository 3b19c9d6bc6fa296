# SPDX-License-Identifier: GPL-3.0-or-later
"""Threads whose names pyleakdb must read out of the threading module.

usage: thread_names_target.py READY [MODE]

MODE "names" (the default): threads named plainly, in Unicode, with
terminal controls (ESC, BEL), too long to show whole, the default
"Thread-N (target)", renamed before start, a Thread subclass, one whose
instance dict was only materialised (vars(): a split table sharing the
class's keys), and one whose attributes then outgrew the shared keys (a
combined dict of its own holds _name).  One more thread is started with
_thread, so threading does not know it.  Every thread parks; READY gets
what _targetlib writes (each registered thread's native id, ident,
threading name and frames) and "unnamed": the native ids of the threads
threading does not know.

The other modes make threading's state hostile or absent; every thread
then blocks and READY gets {"pid", "mode", "threading_imported",
"threads": [{"native_id", "is_main", "expect"}]}, "expect" being the name
pyleakdb should show, or null:
  hostile       _name not a str (an int, bytes, a str subclass), _active
                entries whose key is not a small int or whose value keeps
                no dict, many junk entries
  no-active     threading._active is not a dict
  not-a-module  sys.modules["threading"] is not a module
  no-threading  threading is never imported (threads from _thread)
All files are JSON, ASCII-escaped.
"""
import _thread
import json
import os
import sys

READY_PATH = sys.argv[1]
MODE = sys.argv[2] if len(sys.argv) > 2 else "names"

ESCAPE_NAME = "\x1b[31mred\x07"
LONG_NAME = "long-" + "x" * 95
# enough attributes to outgrow an instance's shared keys (any version)
EXTRA_ATTRIBUTES = 64
# junk entries added to threading._active in the hostile mode
JUNK_ENTRIES = 50000
SYS_GETTID = 186  # x86-64


def native_id():
    """The kernel's TID of the calling thread, without importing threading."""
    if hasattr(_thread, "get_native_id"):
        return _thread.get_native_id()
    import ctypes
    return int(ctypes.CDLL(None, use_errno=True).syscall(SYS_GETTID))


def write_ready(obj):
    tmp = READY_PATH + ".tmp"
    with open(tmp, "w") as f:
        json.dump(obj, f, indent=1, sort_keys=True)
    os.rename(tmp, READY_PATH)


# ----- names ------------------------------------------------------------------

def names_mode():
    import threading

    import _targetlib

    gate = threading.Lock()
    gate.acquire()  # held forever: every thread parks on it
    raw_started = threading.Event()
    raw = {}

    def park():
        _targetlib.register()
        gate.acquire()  # BLOCK

    class NamedWorker(threading.Thread):
        def run(self):
            park()

    def raw_thread():
        # no threading.current_thread() here: that would make a _DummyThread
        raw["native_id"] = native_id()
        raw_started.set()
        gate.acquire()

    threads = [threading.Thread(target=park, name=name)
               for name in ("worker-1", "sync-worker", "\u540d\u524d-unicode",
                            ESCAPE_NAME, LONG_NAME)]
    threads.append(threading.Thread(target=park))  # Thread-N (park)
    threads.append(NamedWorker(name="subclassed"))
    renamed = threading.Thread(target=park, name="before-rename")
    renamed.name = "renamed"
    threads.append(renamed)
    vars_only = threading.Thread(target=park, name="vars-only")
    vars(vars_only)
    threads.append(vars_only)
    in_dict = threading.Thread(target=park, name="in-a-dict")
    vars(in_dict)  # materialise the instance dict
    for i in range(EXTRA_ATTRIBUTES):
        setattr(in_dict, "extra_%d" % i, i)
    threads.append(in_dict)
    for t in threads:
        t.daemon = True
        t.start()
    _thread.start_new_thread(raw_thread, ())
    raw_started.wait()
    _targetlib.dump_when_parked(len(threads) + 1, extra={"unnamed": [raw["native_id"]]})
    main_gate = threading.Lock()
    main_gate.acquire()
    _targetlib.register()
    main_gate.acquire()  # BLOCK


# ----- hostile and absent threading -------------------------------------------

def start_blocked(count, start):
    """Start count threads with start(fn) that record their native id and
    block; returns the native ids, in start order."""
    gate = _thread.allocate_lock()
    gate.acquire()  # held forever
    ids = [None] * count
    done = _thread.allocate_lock()
    left = [count]
    done.acquire()

    def body(i):
        ids[i] = native_id()
        left[0] -= 1  # one bytecode at a time: the GIL serialises this
        if left[0] == 0:
            done.release()
        gate.acquire()

    for i in range(count):
        start(body, i)
    done.acquire()
    return ids


class Slotted(object):
    """Keeps _name in a slot, not in a dict."""
    __slots__ = ("_name",)


class Str(str):
    pass


def hostile_mode():
    import threading

    names = ["good", "int-name", "bytes-name", "str-subclass", "slotted", "keyed-by-str",
             "keyed-by-bigint", "keyed-negative"]
    # what pyleakdb should show; a str subclass is not read (its instances
    # are not compact strings, and threading always stores str(name))
    expect = {"good": "good"}
    threads = [threading.Thread(name=n) for n in names]

    def start(body, i):
        threads[i]._target = body
        threads[i]._args = (i,)
        threads[i].daemon = True
        threads[i].start()

    ids = start_blocked(len(threads), start)
    by_name = dict(zip(names, threads))
    active = threading._active
    by_name["int-name"]._name = 42
    by_name["bytes-name"]._name = b"bytes"
    by_name["str-subclass"]._name = Str("sub")
    slotted = Slotted()
    slotted._name = "slotted"
    active[by_name["slotted"].ident] = slotted
    for name, key in (("keyed-by-str", "key"), ("keyed-by-bigint", 1 << 80),
                      ("keyed-negative", -1)):
        t = by_name[name]
        del active[t.ident]
        active[key] = t
    for i in range(JUNK_ENTRIES):
        active[(1 << 40) + i] = None
    return [{"native_id": tid, "is_main": False, "expect": expect.get(n)}
            for tid, n in zip(ids, names)]


def main():
    if MODE == "names":
        names_mode()
        return
    if MODE == "hostile":
        threads = hostile_mode()
    elif MODE in ("no-active", "not-a-module"):
        import threading
        ids = start_blocked(2, lambda body, i: threading.Thread(
            target=body, args=(i,), name="worker-%d" % i, daemon=True).start())
        if MODE == "no-active":
            threading._active = [1, 2]
        else:
            sys.modules["threading"] = type("NotAModule", (), {"_active": {}})()
        threads = [{"native_id": tid, "is_main": False, "expect": None} for tid in ids]
    elif MODE == "no-threading":
        ids = start_blocked(2, lambda body, i: _thread.start_new_thread(body, (i,)))
        threads = [{"native_id": tid, "is_main": False, "expect": None} for tid in ids]
    else:
        raise SystemExit("unknown mode %r" % MODE)
    # MainThread: threading's name, or pyleakdb's own for the main thread
    threads.append({"native_id": native_id(), "is_main": True, "expect": "MainThread"})
    write_ready({"pid": os.getpid(), "mode": MODE, "threads": threads,
                 "threading_imported": "threading" in sys.modules})
    forever = _thread.allocate_lock()
    forever.acquire()
    forever.acquire()


main()

# SPDX-License-Identifier: GPL-3.0-or-later
"""Helpers shared by the end-to-end target programs.

The targets run under every interpreter the suite finds (3.6 to 3.13), so
this file keeps to Python 3.6 syntax.  The idea: a target tells the test the
expected answer itself.  Once every thread is parked at a blocking call, a
short-lived "dumper" thread takes sys._current_frames(), writes each thread's
frames (innermost first: function, qualified name, file, line), its native
thread id and its ident to a JSON file, and exits.  Since a thread parked in a
blocking call cannot move, that is exactly what pyleakdb must show.

Each thread calls register() from the function that then parks, just before
it parks.  The thread counts as parked when the frames outside that function
are still those seen at register(), and either that function is the
innermost frame, on a source line marked "# BLOCK" (a call into C such as
time.sleep or lock.acquire, which pushes no Python frame), or it is in
Event.wait -> Condition.wait, on Condition.wait's "waiter.acquire(" line.
"""
import json
import linecache
import os
import sys
import threading
import time

# Only one JSON is written by a target; its path is argv[1].
READY_PATH = sys.argv[1] if len(sys.argv) > 1 else None

_registry_lock = threading.Lock()
_registry = {}  # ident -> {"native_id", "name", "is_main"}


def native_id():
    """The kernel's TID of the calling thread."""
    if hasattr(threading, "get_native_id"):
        return threading.get_native_id()
    import ctypes
    libc = ctypes.CDLL(None, use_errno=True)
    return int(libc.syscall(186))  # SYS_gettid on x86-64


def register(name=None):
    """Called by each thread the test should see, from the function that
    parks, just before it parks."""
    ident = threading.get_ident()
    caller = sys._getframe(1)
    with _registry_lock:
        _registry[ident] = {
            "native_id": native_id(),
            "ident": ident,
            "name": name or threading.current_thread().name,
            "is_main": threading.current_thread() is threading.main_thread(),
            "_code": (caller.f_code.co_name, caller.f_code.co_filename),
            "_outer": frames_of(caller.f_back),
        }


def frames_of(frame):
    """Frames innermost first, as pyleakdb lists them."""
    out = []
    while frame is not None:
        code = frame.f_code
        out.append({
            "function": code.co_name,
            "qualname": getattr(code, "co_qualname", None),
            "file": code.co_filename,
            "line": frame.f_lineno,
        })
        frame = frame.f_back
    return out


def _src(frame):
    return linecache.getline(frame["file"], frame["line"])


def is_parked(frames, info):
    outer = info["_outer"]
    k = len(frames) - len(outer) - 1
    if k < 0 or frames[k + 1:] != outer:
        return False
    if (frames[k]["function"], frames[k]["file"]) != info["_code"]:
        return False
    if k == 0:
        return _src(frames[0]).rstrip().endswith("# BLOCK")
    if k == 2:
        return (frames[0]["function"] == "wait" and "waiter.acquire(" in _src(frames[0])
                and frames[1]["function"] == "wait")
    return False


def marked_lines(path, marker):
    """Line numbers of path whose lines end with marker (a comment)."""
    with open(path) as f:
        return [i for i, line in enumerate(f, 1) if line.rstrip().endswith(marker)]


def write_json(obj, path=None):
    """Write obj atomically to path (default: READY_PATH)."""
    path = path or READY_PATH
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(obj, f, indent=1, sort_keys=True)
    os.rename(tmp, path)


def dump_when_parked(count, extra=None, timeout=60.0):
    """Start the dumper thread: once `count` registered threads are all
    parked, write every one's frames to READY_PATH; the dumper then exits."""

    def dumper():
        deadline = time.time() + timeout
        me = threading.get_ident()
        while True:
            with _registry_lock:
                reg = dict(_registry)
            frames = sys._current_frames()
            stacks = {}
            for ident in reg:
                if ident in frames and ident != me:
                    stacks[ident] = frames_of(frames[ident])
            del frames
            if len(reg) == count and len(stacks) == count and \
                    all(is_parked(s, reg[i]) for i, s in stacks.items()):
                break
            if time.time() > deadline:
                write_json({"error": "threads did not park: %r" % (stacks,)})
                return
            time.sleep(0.01)
        # Check twice, 50 ms apart: a parked thread does not move.
        time.sleep(0.05)
        frames = sys._current_frames()
        again = dict((i, frames_of(frames[i])) for i in reg)
        del frames
        if again != stacks:
            diff = [(i, stacks.get(i), again.get(i)) for i in again if stacks.get(i) != again.get(i)]
            write_json({"error": "stacks moved while parked: %r" % (diff,)})
            return
        threads = []
        for ident, info in reg.items():
            t = dict((k, v) for k, v in info.items() if not k.startswith("_"))
            t["frames"] = stacks[ident]
            threads.append(t)
        out = {
            "pid": os.getpid(),
            "version": list(sys.version_info[:3]),
            "threads": sorted(threads, key=lambda t: t["native_id"]),
        }
        if extra:
            out.update(extra)
        write_json(out)

    t = threading.Thread(target=dumper, name="dumper")
    t.daemon = True
    t.start()
    return t

# SPDX-License-Identifier: GPL-3.0-or-later
#
# Source breakpoints, inside the target.
#
# 3.12 and later: sys.monitoring, with LINE (or PY_START for a function)
# events switched on for the watched code objects only: the rest of the
# program runs at full speed.  Before 3.12: a trace function that declines
# every frame whose code is not watched, so only watched frames get line
# events.  pyleakdb installs it in every thread (it runs _arm_current() "as"
# each thread, with PyThreadState_Swap) and in threading's hook for new ones.
#
# A hit raises pyleakdb's trap signal at the hitting thread.  Traced, the
# thread stops there, inside this file with the GIL held: a safe point.
# pyleakdb acknowledges the hit before letting the thread go.  If nobody
# acknowledged it and nobody traces us, pyleakdb is gone (killed): every hook
# removes itself and the program goes on unhindered.  The signal is one the
# target ignores.

import _signal
import _thread

_bp = {
    "sig": 0,  # the trap signal, set by pyleakdb
    "lines": {},  # (code, line) -> [breakpoint ids]
    "funcs": {},  # code -> [breakpoint ids]
    "codes": set(),  # every watched code object
    "conds": {},  # id -> condition source
    "enabled": {},  # id -> bool
    "hits": {},  # thread ident -> hit record, while the thread waits for pyleakdb
    "tool": None,  # the sys.monitoring tool id we hold (3.12+)
    "armed": False,
    "old_thread_hook": None,
    "traced_threads": 0,
    "condfns": {},  # (id, id(globals)) -> the compiled condition
}
# pyleakdb writes here while the target runs (raw little-endian words): the RSS it
# polled, and a heartbeat it bumps at least ten times a second
_rss_cell = bytes(16)
_current = {"frame": None}
_life = {"beat": -1, "since": 0.0}
# how often the trace function's calls look for pyleakdb's heartbeat (a watched place
# looks every time), and how long a silence means it is gone
_CHECK_EVERY = 4096
_SILENCE = 2.0


def _rss():
    return int.from_bytes(_rss_cell[:8], "little")


def _traced():
    """Is anyone tracing us?  Read only when the heartbeat has gone quiet."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("TracerPid:"):
                    return int(line.split()[1]) != 0
    except Exception:
        pass
    return True


def _now():
    """Seconds on a clock that does not go back, from a module the program has
    loaded (time, else posix, which every CPython on Linux loads at start)."""
    clock = sys.modules.get("time")
    if clock is not None:
        return clock.monotonic()
    posix = sys.modules.get("posix")
    if posix is not None:
        return posix.times()[4]
    return None


def _check_alive():
    """Called now and then by the hooks: if pyleakdb has died, take every hook out."""
    beat = int.from_bytes(_rss_cell[8:], "little")
    now = _now()
    if now is None:
        return
    if beat != _life["beat"]:
        _life["beat"] = beat
        _life["since"] = now
    elif now - _life["since"] > _SILENCE:
        if _traced():
            _life["since"] = now  # only quiet (at the prompt, or busy): look again later
        else:
            _abandon()


def rss_cell():
    """Where pyleakdb writes the RSS it polls, for conditions that name rss."""
    return {"address": id(_rss_cell)}


def arm_current():
    return _arm_current()


def disarm_current():
    return _disarm_current()


def _monitoring():
    return getattr(sys, "monitoring", None)


# ----- finding code -----

def _code_lines(co):
    """The line numbers that start an instruction in this code object."""
    if hasattr(co, "co_lines"):
        return set(line for _, _, line in co.co_lines() if line is not None)
    # 3.6 - 3.9: co_lnotab, (byte increment, signed line increment) pairs
    lines = set()
    line = co.co_firstlineno
    lines.add(line)
    tab = co.co_lnotab
    for i in range(0, len(tab) - 1, 2):
        inc = tab[i + 1]
        if inc >= 0x80:
            inc -= 0x100
        line += inc
        if tab[i]:
            lines.add(line)
        lines.add(line)
    return lines


def _nested(co, out):
    out.append(co)
    for c in co.co_consts:
        if type(c) is type(co):
            _nested(c, out)


def _all_code():
    """Every code object we can reach: functions', running frames', and their nested ones."""
    seen = set()
    out = []
    roots = []
    fn_type = type(_code_lines)
    for o in _gc.get_objects():
        if type(o) is fn_type:
            roots.append(o.__code__)
    for f in sys._current_frames().values():
        while f is not None:
            roots.append(f.f_code)
            f = f.f_back
    for co in roots:
        if id(co) in seen:
            continue
        found = []
        _nested(co, found)
        for c in found:
            if id(c) not in seen:
                seen.add(id(c))
                out.append(c)
    return out


def _same_file(a, b):
    if a == b:
        return True
    # a relative name the user typed matches the end of the path the code keeps
    return a.endswith("/" + b) or b.endswith("/" + a)


def _qualname(co):
    return getattr(co, "co_qualname", co.co_name)


# ----- arming -----

def bp_add(bpid, kind, where, line, cond):
    """Watch a line (kind b'line': where=file) or a function (b'func': where=name)."""
    kind = _text(kind)
    where = _text(where)
    cond = _text(cond) if cond is not None else None
    if cond:
        try:
            # compiles the condition without running it (and without compile(): see run())
            eval("lambda: (" + cond + ")", {})
        except SyntaxError as e:
            return {"error": "bad condition %r: %s" % (cond, e.msg)}
    codes = _all_code()
    hits = []
    if kind == "line":
        files = set()
        for co in codes:
            if _same_file(co.co_filename, where):
                files.add(co.co_filename)
                if line in _code_lines(co):
                    hits.append(co)
        if not files:
            return {"error": "no code from a file %r is loaded in the target" % where}
        if not hits:
            return {"error": "line %d of %s has no code (a blank line, a comment, or a "
                             "continuation?)" % (line, sorted(files)[0])}
        for co in hits:
            _bp["lines"].setdefault((co, line), []).append(bpid)
        shown = {"file": hits[0].co_filename, "line": line,
                 "function": _qualname(hits[0]), "codes": len(hits)}
    else:
        for co in codes:
            if where in (co.co_name, _qualname(co)) or where.endswith("." + _qualname(co)):
                hits.append(co)
        if not hits:
            return {"error": "no function %r is loaded in the target" % where}
        for co in hits:
            _bp["funcs"].setdefault(co, []).append(bpid)
        shown = {"file": hits[0].co_filename, "line": hits[0].co_firstlineno,
                 "function": _qualname(hits[0]), "codes": len(hits)}
    _bp["codes"].update(hits)
    _bp["conds"][bpid] = cond
    _bp["enabled"][bpid] = True
    return shown


def bp_delete(bpid):
    for table in (_bp["lines"], _bp["funcs"]):
        for key in list(table):
            ids = [i for i in table[key] if i != bpid]
            if ids:
                table[key] = ids
            else:
                del table[key]
    _bp["conds"].pop(bpid, None)
    _bp["enabled"].pop(bpid, None)
    for key in [k for k in _bp["condfns"] if k[0] == bpid]:
        del _bp["condfns"][key]
    # in place: the trace function holds this very set
    codes = set(k[0] for k in _bp["lines"]) | set(_bp["funcs"])
    _bp["codes"].intersection_update(codes)
    _bp["codes"].update(codes)
    return {}


def bp_set(bpid, enabled, cond, set_cond):
    if bpid not in _bp["enabled"]:
        return {"error": "no breakpoint %d in the target" % bpid}
    if enabled is not None:
        _bp["enabled"][bpid] = bool(enabled)
    if set_cond:
        cond = _text(cond) if cond is not None else None
        if cond:
            try:
                eval("lambda: (" + cond + ")", {})
            except SyntaxError as e:
                return {"error": "bad condition %r: %s" % (cond, e.msg)}
        _bp["conds"][bpid] = cond
        for key in [k for k in _bp["condfns"] if k[0] == bpid]:
            del _bp["condfns"][key]
    return {}


def bp_arm(sig):
    """Switch the hooks on: sys.monitoring, or the trace function for this thread."""
    _bp["sig"] = sig
    mon = _monitoring()
    if mon is not None:
        tool = _bp["tool"]
        if tool is None:
            for candidate in (mon.DEBUGGER_ID, 3, 4, mon.PROFILER_ID):
                if mon.get_tool(candidate) is None:
                    mon.use_tool_id(candidate, "pyleakdb")
                    tool = candidate
                    break
            if tool is None:
                return {"error": "every sys.monitoring tool id is taken"}
            _bp["tool"] = tool
            mon.register_callback(tool, mon.events.LINE, _on_line)
            mon.register_callback(tool, mon.events.PY_START, _on_start)
        for co in _bp["codes"]:
            ev = 0
            if any(k[0] is co for k in _bp["lines"]):
                ev |= mon.events.LINE
            if co in _bp["funcs"]:
                ev |= mon.events.PY_START
            mon.set_local_events(tool, co, ev)
        _bp["armed"] = True
        mon.restart_events()
        return {"how": "sys.monitoring", "per_thread": False}
    _bp["armed"] = True
    th = sys.modules.get("threading")
    if th is not None and getattr(th, "_trace_hook", None) is not _tracer:
        _bp["old_thread_hook"] = getattr(th, "_trace_hook", None)
        th.settrace(_tracer)
    # frames already running watched code get line events from now on
    for f in sys._current_frames().values():
        while f is not None:
            if f.f_code in _bp["codes"] and f.f_globals is not _ns:
                f.f_trace = _tracer
            f = f.f_back
    return {"how": "trace function", "per_thread": True}


def _arm_current():
    """Install the trace function in the thread we run as (pyleakdb swaps thread states)."""
    old = sys.gettrace()
    if old is not None and old is not _tracer:
        return {"error": "a thread already has a trace function (%s); source breakpoints "
                         "need it to themselves before Python 3.12" % _type_name(type(old))}
    sys.settrace(_tracer)
    return {}


def _disarm_current():
    if sys.gettrace() is _tracer:
        sys.settrace(None)
    return {}


def bp_disarm():
    """Switch every hook off (pyleakdb then removes the trace function from each thread)."""
    _bp["armed"] = False
    mon = _monitoring()
    if mon is not None and _bp["tool"] is not None:
        tool = _bp["tool"]
        for co in _bp["codes"]:
            try:
                mon.set_local_events(tool, co, 0)
            except Exception:
                pass
        mon.register_callback(tool, mon.events.LINE, None)
        mon.register_callback(tool, mon.events.PY_START, None)
        mon.free_tool_id(tool)
        _bp["tool"] = None
        return {"per_thread": False}
    th = sys.modules.get("threading")
    if th is not None and getattr(th, "_trace_hook", None) is _tracer:
        th.settrace(_bp["old_thread_hook"])
    for f in sys._current_frames().values():
        while f is not None:
            if f.f_trace is _tracer:
                f.f_trace = None
            f = f.f_back
    return {"per_thread": True}


def _forget_everything():
    bp_disarm()
    _bp["lines"].clear()
    _bp["funcs"].clear()
    _bp["codes"].clear()
    _bp["hits"].clear()
    _bp["condfns"].clear()
    _current["frame"] = None


_cleanups.append(_forget_everything)


# ----- hitting -----

_MISSING = object()


def _cond_fn(bpid, cond, g):
    """The condition as a function of the names it reads, compiled once (not with
    compile(), whose first use creates the AST classes for good)."""
    key = (bpid, id(g))
    fn = _bp["condfns"].get(key)
    if fn is None:
        names = eval("lambda: (" + cond + ")", g).__code__.co_names
        fn = eval("lambda %s: (%s)" % (", ".join(names), cond), g)
        if hasattr(fn.__code__, "replace"):
            # stacks show it as ours, not as the program's "<string>"
            fn.__code__ = fn.__code__.replace(co_filename=_AGENT_FILE)
        _bp["condfns"][key] = fn
    return fn


def _cond_true(bpid, cond, frame):
    fn = _cond_fn(bpid, cond, frame.f_globals)
    loc = frame.f_locals
    g = frame.f_globals
    b = g.get("__builtins__", {})
    if type(b) is not dict:
        b = b.__dict__
    args = []
    for name in fn.__code__.co_varnames[: fn.__code__.co_argcount]:
        if name in loc:
            args.append(loc[name])
        elif name == "rss":
            args.append(_rss())
        elif name in g:
            args.append(g[name])
        else:
            args.append(b.get(name, _MISSING))
    return fn(*args)


def _fire(frame, ids):
    """A watched place ran: check the conditions, and stop for pyleakdb."""
    fired = []
    # at every watched place, not every _CHECK_EVERY: with sys.monitoring nothing else
    # runs a hook, and a watched line may run only a few times a second
    _check_alive()
    if not _bp["armed"]:
        return
    for bpid in ids:
        if not _bp["enabled"].get(bpid):
            continue
        cond = _bp["conds"].get(bpid)
        if cond:
            try:
                if not _cond_true(bpid, cond, frame):
                    continue
            except Exception:
                continue  # a condition that raises does not stop the program
        fired.append(bpid)
    if not fired:
        return
    ident = _thread.get_ident()
    record = {"ids": fired, "frame": frame, "acked": False}
    _bp["hits"][ident] = record
    try:
        _signal.pthread_kill(ident, _bp["sig"])
    finally:
        _bp["hits"].pop(ident, None)
        if _current["frame"] is frame:
            _current["frame"] = None
    if not record["acked"] and not _traced():
        # nobody stopped us: pyleakdb is gone; take every hook out and carry on.  (Still
        # traced, pyleakdb let the signal through while busy with a call of its own in
        # another thread, the program's other threads running meanwhile: the hit is let
        # go, the hooks stay.)
        _abandon()


def _abandon():
    _bp["armed"] = False
    try:
        bp_disarm()
    except BaseException:
        pass
    if sys.gettrace() is _tracer:
        sys.settrace(None)


def _make_tracer():
    # the body names itself through the global, never through its own cell: a
    # function in its own closure is a cycle that would outlive the agent
    codes = _bp["codes"]  # the very set breakpoints update in place
    left = _CHECK_EVERY

    def tracer(frame, event, arg):
        nonlocal left
        # the call of an unwatched function is by far the most frequent event: it
        # costs a set lookup, and every _CHECK_EVERY of them a look at pyleakdb
        if event == "call" and frame.f_code not in codes:
            left -= 1
            if left:
                return None
            left = _CHECK_EVERY
            if _bp["armed"]:
                _check_alive()
            if not _bp["armed"] and sys.gettrace() is _tracer:
                sys.settrace(None)
            return None
        if not _bp["armed"]:
            # disarmed (or abandoned): this thread stops tracing at its next call
            if sys.gettrace() is _tracer:
                sys.settrace(None)
            return None
        co = frame.f_code
        if event == "call":
            if co in _bp["funcs"]:
                _fire(frame, _bp["funcs"][co])
            return _tracer if co in codes else None
        if event == "line":
            ids = _bp["lines"].get((co, frame.f_lineno))
            if ids:
                _fire(frame, ids)
        return _tracer

    return tracer


_tracer = _make_tracer()


def _on_line(code, line):
    ids = _bp["lines"].get((code, line))
    if ids and _bp["armed"]:
        _fire(sys._getframe(1), ids)


def _on_start(code, offset):
    ids = _bp["funcs"].get(code)
    if ids and _bp["armed"]:
        _fire(sys._getframe(1), ids)


def bp_hit():
    """pyleakdb, stopped on our signal: which breakpoint, where; acknowledged."""
    rec = _bp["hits"].get(_thread.get_ident())
    if rec is None:
        return {"hit": False}
    rec["acked"] = True
    f = rec["frame"]
    _current["frame"] = f
    co = f.f_code
    return {"hit": True, "ids": rec["ids"], "file": co.co_filename, "line": f.f_lineno,
            "function": _qualname(co), "thread": _thread.get_ident(),
            "source": _source_line(co.co_filename, f.f_lineno, f.f_globals)}


def _source_line(filename, line, g):
    """The line from the target's own linecache if it has one (no file is opened here)."""
    lc = sys.modules.get("linecache")
    if lc is not None:
        entry = getattr(lc, "cache", {}).get(filename)
        if entry and len(entry) >= 3 and 0 < line <= len(entry[2]):
            return entry[2][line - 1].rstrip("\n")
    return None


def bp_release():
    """Before the program runs again: let go of the frame we looked at."""
    _current["frame"] = None
    return {}

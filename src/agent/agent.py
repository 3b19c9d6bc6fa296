# SPDX-License-Identifier: GPL-3.0-or-later
#
# pyleakdb's agent: the Python that runs inside the target, at a safe point
# chosen by pyleakdb, with the GIL held.
#
# It is executed into a private namespace dict that no module, thread or
# sys.modules entry refers to; pyleakdb keeps the only reference and drops
# it at detach.  It imports nothing the target has not imported, except
# built-in C modules, which it takes out of sys.modules again so the
# program never sees them.  It starts no thread, opens no file, installs no
# hook.  Every entry point returns UTF-8 JSON as bytes and never raises: an
# error comes back as {"error": ...}.
#
# Everything here must run on CPython 3.6 to 3.13: no walrus, no
# positional-only parameters, no f-string "=".

import sys

_ns = globals()
_state = {"growth": None, "tm_started": False, "tm_prev": None, "iteration": None}
_builtin_modules = {}
_imported_by_us = []
# functions the other agent files register to undo what they set up, run at detach
_cleanups = []
# functions the other agent files register that return objects they hold: counted as
# ours, and not walked into (a heap snapshot holds every object of the program)
_own_hooks = []


def _builtin(name):
    """A built-in C module, without leaving a sys.modules entry behind."""
    mod = _builtin_modules.get(name)
    if mod is not None:
        return mod
    present = name in sys.modules
    mod = __import__(name)
    if not present:
        sys.modules.pop(name, None)
        _imported_by_us.append(mod)
    _builtin_modules[name] = mod
    return mod


_gc = _builtin("gc")

# The C helpers below make a census of a million objects fast, but importing a module
# the program has not imported would leave a new module behind (from 3.12, with types
# of its own that only a collection frees).  So: the program's own copy when it has
# one, else a Python fallback in a plain module object of ours.


def _py_compress(data, selectors):
    return (d for d, keep in zip(data, selectors) if keep)


def _py_islice(it, n):
    out = []
    if n <= 0:
        return out
    for x in it:
        out.append(x)
        if len(out) >= n:
            break
    return out


def _py_repeat(x):
    while True:
        yield x


def _py_chain(*its):
    for it in its:
        for x in it:
            yield x


def _py_count_elements(counts, it):
    get = counts.get
    for x in it:
        counts[x] = get(x, 0) + 1


def _py_is(a, b):
    return a is b


def _namespace_module(name, **attrs):
    m = type(sys)(name)
    m.__dict__.update(attrs)
    _fallbacks.append(m)
    return m


_fallbacks = []
_itertools = sys.modules.get("itertools") or _namespace_module(
    "<pyleakdb itertools>", compress=_py_compress, islice=_py_islice, repeat=_py_repeat,
    chain=_py_chain)
_operator = sys.modules.get("_operator") or sys.modules.get("operator") or _namespace_module(
    "<pyleakdb operator>", is_=_py_is)
_collections = sys.modules.get("_collections") or _namespace_module(
    "<pyleakdb collections>", _count_elements=_py_count_elements, deque=None,
    defaultdict=None, OrderedDict=None)
_count_elements = _collections._count_elements
_compress = _itertools.compress
_getsizeof = sys.getsizeof
_object_sizeof = object.__sizeof__
_CONTAINERS = (dict, list, tuple, set, frozenset)

# ----- JSON out (the json module is not ours to import) -----

_ESC = {'"': '\\"', "\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _jstr(s):
    out = []
    for ch in s:
        c = ord(ch)
        if ch in _ESC:
            out.append(_ESC[ch])
        elif c < 0x20 or c == 0x7F:
            out.append("\\u%04x" % c)
        elif c < 0x80:
            out.append(ch)
        elif 0xD800 <= c <= 0xDFFF:
            out.append("\\ufffd")  # a lone surrogate is not text
        elif c > 0xFFFF:
            c -= 0x10000
            out.append("\\u%04x\\u%04x" % (0xD800 + (c >> 10), 0xDC00 + (c & 0x3FF)))
        else:
            out.append("\\u%04x" % c)
    return '"' + "".join(out) + '"'


def _json(v):
    if v is None:
        return "null"
    if v is True:
        return "true"
    if v is False:
        return "false"
    t = type(v)
    if t is int:
        return str(v)
    if t is float:
        return repr(v) if v == v and v not in (float("inf"), float("-inf")) else "null"
    if t is str:
        return _jstr(v)
    if t is dict:
        return "{" + ",".join(_jstr(str(k)) + ":" + _json(x) for k, x in v.items()) + "}"
    if t is list or t is tuple:
        return "[" + ",".join(_json(x) for x in v) + "]"
    return _jstr(str(v))


def _text(b):
    """Arguments come as bytes (pyleakdb escapes every byte): decode them losslessly."""
    if type(b) is bytes:
        return b.decode("utf-8", "surrogateescape")
    return b


# ----- what is ours -----

_FUNC = type(_builtin)
_CODE = type(_builtin.__code__)
_CELL = type((lambda x: lambda: x)(0).__closure__[0])
_OWNABLE = (dict, list, tuple, set, frozenset, _FUNC, _CODE, _CELL)


def _is_ours(o):
    """May o belong to the agent?  Our functions and code, never the target's."""
    t = type(o)
    if t is _FUNC:
        return o.__globals__ is _ns
    if t is _CODE:
        return o.co_filename == _AGENT_FILE
    return t in _OWNABLE


def _own_objects():
    """The tracked objects the agent itself holds, to leave out of every count.

    Call it before gc.get_objects(): everything it names then exists in the
    census, to be taken out again (the list it returns too: _counts() takes
    that one out).  It walks from our namespace, our imported modules and our
    own frames through containers, our functions, our code objects and cells,
    and never into anything of the target's (its code, its builtins).
    """
    builtins = _ns.get("__builtins__")
    roots = [_ns, _imported_by_us, _cleanups, _builtin_modules, _fallbacks]
    for m in _fallbacks:
        roots.append(m.__dict__)
    for m in _imported_by_us:
        # a module only we imported, all of it: its functions, its spec
        roots.append(m)
        roots.append(m.__dict__)
        roots.extend(m.__dict__.values())
        spec = m.__dict__.get("__spec__")
        if spec is not None and hasattr(spec, "__dict__"):
            roots.append(spec)
            roots.append(spec.__dict__)
            roots.extend(spec.__dict__.values())
    f = sys._getframe(1)
    while f is not None and f.f_globals is _ns:
        # our frames, and what only they hold: cells, argument tuples, the function
        # PyEval_EvalCode wraps around our code for the length of a call
        roots.append(f)
        roots.append(f.f_code)
        for r in _gc.get_referents(f):
            if r is not _ns and r is not builtins and _is_ours(r):
                roots.append(r)
        # from 3.11 a running frame shows its referents only through f_locals (a dict,
        # or 3.13's proxy, made for the asking and ours too)
        loc = f.f_locals
        if loc is not _ns:
            roots.append(loc)
            roots.extend(v for v in loc.values() if v is not _ns and _is_ours(v))
        f = f.f_back
    is_tracked = _gc.is_tracked
    seen = set()
    out = []
    for hook in _own_hooks:
        for o in hook():
            if id(o) not in seen:
                seen.add(id(o))
                if is_tracked(o):
                    out.append(o)
    todo = roots
    while todo:
        o = todo.pop()
        if id(o) in seen or o is builtins or o is None:
            continue
        seen.add(id(o))
        if is_tracked(o):
            out.append(o)
        t = type(o)
        if t is dict:
            todo.extend(k for k in o if _is_ours(k))
            todo.extend(v for v in o.values() if _is_ours(v))
        elif t in _CONTAINERS:
            todo.extend(x for x in o if _is_ours(x))
        elif t is _FUNC:
            todo.extend(x for x in (o.__code__, o.__defaults__, o.__kwdefaults__,
                                    o.__closure__) if x is not None)
        elif t is _CODE:
            todo.extend((o.co_consts, o.co_names, o.co_varnames, o.co_freevars,
                         o.co_cellvars))
            todo.extend(c for c in o.co_consts if type(c) is _CODE)
        elif t is _CELL:
            try:
                if _is_ours(o.cell_contents):
                    todo.append(o.cell_contents)
            except ValueError:
                pass
        elif t.__name__ == "frame":
            pass  # its own referents were added with it
    return out


def _type_name(t):
    try:
        mod = t.__module__
        name = getattr(t, "__qualname__", t.__name__)
    except Exception:
        return "?"
    if mod in ("builtins", None) or type(mod) is not str:
        return name
    return mod + "." + name


def _counts(objs, own):
    """Instance counts by type: a C loop, minus the agent's own objects (and the
    list naming them, which is in the census too)."""
    c = {}
    _count_elements(c, map(type, objs))
    for o in _itertools.chain(own, (own,)):
        t = type(o)
        n = c.get(t, 0)
        if n > 1:
            c[t] = n - 1
        elif n == 1:
            del c[t]
    return c


def _fixed_size(t):
    """Instances all have the same shallow size (no __sizeof__ of their own, no items)."""
    try:
        return t.__itemsize__ == 0 and getattr(t, "__sizeof__", None) is _object_sizeof
    except Exception:
        return False


def _sizes(objs, types, counts, own=()):
    """Total shallow size of the instances of each type in `types`, the agent's own
    objects left out."""
    out = {}
    fixed = [t for t in types if _fixed_size(t)]
    var = set(t for t in types if not _fixed_size(t))
    if fixed:
        want = set(fixed)
        sample = {}
        for o in _compress(objs, map(want.__contains__, map(type, objs))):
            t = type(o)
            if t not in sample:
                sample[t] = o
                if len(sample) == len(want):
                    break
        for t, o in sample.items():
            out[t] = _getsizeof(o) * counts.get(t, 0)
    if var:
        sel = list(_compress(objs, map(var.__contains__, map(type, objs))))
        pairs = {}
        _count_elements(pairs, zip(map(type, sel), map(_getsizeof, sel)))
        for (t, size), n in pairs.items():
            out[t] = out.get(t, 0) + size * n
        for o in _itertools.chain(own, (own,)):
            if type(o) in var and type(o) in out:
                out[type(o)] -= _getsizeof(o)
    return out


def _safe_repr(o, limit=120, passive=True):
    """A short, bounded repr.  Passive (every repr pyleakdb shows unasked: samples,
    referents, chains) runs none of the program's code: no __repr__ of its classes,
    nor of C types that call back into Python (a numpy array, a deque of its
    objects); those show as <module.Class object at 0x...>.  eval asks for the
    object's own repr, as the user would get it."""
    try:
        r = _bounded_repr(o, 2, passive)
    except BaseException as e:  # a broken __repr__ is the target's business, not ours
        r = "<%s object at %#x (repr raised %s)>" % (_type_name(type(o)), id(o), type(e).__name__)
    if len(r) > limit:
        r = r[: limit - 3] + "..."
    return r


_MODULE = type(sys)
_METHOD_TYPE = type(_builtin.__get__(0))  # a bound method, made without a class of ours
# types whose repr is C code that never calls back into Python
_PLAIN_REPR = (type(None), bool, int, float, complex, range, type(Ellipsis),
               type(NotImplemented), type(len), type(object.__init__), type(str.join),
               type(int.real), type((0).__add__), _CODE, _CELL)


def _bounded_repr(o, depth, passive=True):
    t = type(o)
    if t in (list, tuple, set, frozenset) and (passive or depth <= 0 or len(o) > 6):
        if depth <= 0:
            return "%s(len=%d)" % (t.__name__, len(o))
        items = [_bounded_repr(x, depth - 1, passive) for x in _itertools.islice(o, 6)]
        more = ", ... %d more" % (len(o) - 6) if len(o) > 6 else ""
        if t is list:
            return "[%s%s]" % (", ".join(items), more)
        if t is tuple:
            return "(%s%s)" % (", ".join(items), more if more or len(o) != 1 else ",")
        if not o:
            return "%s()" % t.__name__
        if t is set:
            return "{%s%s}" % (", ".join(items), more)
        return "frozenset({%s%s})" % (", ".join(items), more)
    if t is dict and (passive or depth <= 0 or len(o) > 6):
        if depth <= 0:
            return "dict(len=%d)" % len(o)
        items = ["%s: %s" % (_bounded_repr(k, depth - 1, passive), _bounded_repr(v, depth - 1, passive))
                 for k, v in _itertools.islice(o.items(), 6)]
        more = ", ... %d more" % (len(o) - 6) if len(o) > 6 else ""
        return "{%s%s}" % (", ".join(items), more)
    if t in (str, bytes, bytearray):
        if len(o) > 200:
            return repr(o[:200]) + "...(%d)" % len(o)
        return repr(o)
    if not passive or t in _PLAIN_REPR:
        return repr(o)
    if t is _FUNC:
        return "<function %s at %#x>" % (o.__qualname__ if hasattr(o, "__qualname__") else o.__name__, id(o))
    if t is type:
        return "<class '%s'>" % _type_name(o)
    if t is _MODULE:
        name = o.__dict__.get("__name__")
        return "<module %r>" % (name if type(name) is str else "?")
    if t is _METHOD_TYPE:
        f = o.__func__
        name = getattr(f, "__qualname__", None) if type(f) is _FUNC else None
        return "<bound method %s of <%s object at %#x>>" % (
            name if type(name) is str else "?", _type_name(type(o.__self__)), id(o.__self__))
    return "<%s object at %#x>" % (_type_name(t), id(o))


# ----- commands -----

def top(n, by, samples):
    own = _own_objects()
    objs = _gc.get_objects()
    try:
        counts = _counts(objs, own)
        total = sum(counts.values())
        # no lambdas over locals here: their cells would be ours and out of reach (3.11+)
        order = sorted(counts, key=counts.__getitem__, reverse=True)
        if _text(by) == "size":
            sizes = _sizes(objs, order, counts, own)
            # stable: the biggest total first, the most instances first among equals
            order = sorted(order, key=lambda t, s=sizes: s.get(t, 0), reverse=True)
        else:
            sizes = _sizes(objs, order[:n], counts, own)
        rows = []
        for t in order[:n]:
            row = {"type": _type_name(t), "count": counts[t], "size": sizes.get(t, 0)}
            if samples:
                row["samples"] = _samples_of(objs, t, samples, own)
            rows.append(row)
        return {"rows": rows, "objects": total, "types": len(counts)}
    finally:
        # our frame is in the census list and the list in our frame: break the cycle,
        # or the collector would have pyleakdb's garbage to free after we are gone
        del objs[:]
        del own[:]


def _samples_of(objs, t, n, own):
    ownids = set(map(id, own))
    out = []
    for o in _compress(objs, map(_operator.is_, map(type, objs), _itertools.repeat(t))):
        if id(o) in ownids:
            continue
        out.append({"address": id(o), "size": _getsizeof(o), "repr": _safe_repr(o),
                    "handle": _handle_new(o)})
        if len(out) >= n:
            break
    return out


def growth(n, collect, mark_iteration, samples=0, baseline=b"growth"):
    """Types whose count grew since the last census of the same baseline: the growth
    command's, or iter's own (stepping does not move growth's)."""
    key = _text(baseline)
    if collect:
        _gc.collect()
    own = _own_objects()
    objs = _gc.get_objects()
    try:
        now = _counts(objs, own)
        prev = _state.get(key)
        rows = []
        first = prev is None
        for t, c in now.items():
            before = 0 if first else prev.get(t, 0)
            if c > before:
                rows.append((c - before, c, t))
        gone = []
        if not first:
            for t, c in prev.items():
                after = now.get(t, 0)
                if after < c:
                    gone.append((after - c, after, t))
        rows.sort(key=lambda r: (-r[0], _type_name(r[2])))
        gone.sort(key=lambda r: (r[0], _type_name(r[2])))
        _state[key] = now
        if mark_iteration:
            # names and numbers only: nothing here for the next count to see
            _state["iteration"] = dict((_type_name(t), (d, c)) for d, c, t in rows)
        out = []
        for d, c, t in rows[:n]:
            row = {"type": _type_name(t), "count": c, "delta": d}
            if samples:
                row["samples"] = _samples_of(objs, t, samples, own)
            out.append(row)
        return {
            "first": first,
            "rows": out,
            "grew": len(rows),
            "shrank": [{"type": _type_name(t), "count": c, "delta": d} for d, c, t in gone[:n]],
        }
    finally:
        del objs[:]
        del own[:]


def last_iteration(n):
    """The whole growth table of the last iter step."""
    it = _state.get("iteration")
    if it is None:
        return {"error": "no iteration yet: 'iter' at a breakpoint records one"}
    rows = sorted(it.items(), key=lambda kv: (-kv[1][0], kv[0]))
    return {"first": False, "grew": len(rows),
            "rows": [{"type": name, "count": c, "delta": d} for name, (d, c) in rows[:n]],
            "shrank": []}


def collect(generation):
    before = _gc.get_stats()
    garbage_before = len(_gc.garbage)
    if generation is None:
        found = _gc.collect()
    else:
        found = _gc.collect(generation)
    after = _gc.get_stats()
    gens = []
    for i, (b, a) in enumerate(zip(before, after)):
        gens.append({
            "generation": i,
            "collected": a["collected"] - b["collected"],
            "uncollectable": a["uncollectable"] - b["uncollectable"],
            "collections": a["collections"] - b["collections"],
        })
    return {"unreachable": found, "generations": gens,
            "garbage": len(_gc.garbage), "new_garbage": len(_gc.garbage) - garbage_before}


def cycles(n, samples):
    """What only the cycle collector would free: collect with DEBUG_SAVEALL, look, restore."""
    flags = _gc.get_debug()
    saved = list(_gc.garbage)
    try:
        _gc.set_debug(_gc.DEBUG_SAVEALL)
        _gc.collect()
        found = _gc.garbage[len(saved):]
    finally:
        _gc.set_debug(flags)
        _gc.garbage[:] = saved
    del saved
    counts = {}
    _count_elements(counts, map(type, found))
    order = sorted(counts, key=lambda t: -counts[t])
    rows = []
    for t in order[:n]:
        row = {"type": _type_name(t), "count": counts[t]}
        if samples:
            row["samples"] = [{"address": id(o), "repr": _safe_repr(o)}
                              for o in _itertools.islice((o for o in found if type(o) is t), samples)]
        rows.append(row)
    total = len(found)
    del found
    return {"rows": rows, "objects": total, "types": len(counts)}


# ----- tracemalloc, through its C core (the tracemalloc module imports a dozen others) -----

_AGENT_FILE = "<pyleakdb-agent>"


def _tm():
    return _builtin("_tracemalloc")


def tm_start(nframes):
    tm = _tm()
    if tm.is_tracing():
        return {"already": True, "nframes": tm.get_traceback_limit()}
    tm.start(nframes)
    _state["tm_started"] = True
    _state["tm_prev"] = None
    return {"already": False, "nframes": nframes}


def _tm_stats():
    """(file, line) -> [size, count] over live traces, leaving out the agent's own."""
    stats = {}
    for trace in _tm()._get_traces():
        size, tb = trace[1], trace[2]
        key = tb[0] if tb else ("<unknown>", 0)
        if key[0] == _AGENT_FILE:
            continue
        s = stats.get(key)
        if s is None:
            stats[key] = [size, 1]
        else:
            s[0] += size
            s[1] += 1
    return stats


def tm_top(n, diff):
    tm = _tm()
    if not tm.is_tracing():
        return {"error": "tracemalloc is not tracing; start it with 'tracemalloc start'"}
    stats = _tm_stats()
    prev = _state["tm_prev"]
    rows = []
    if diff:
        if prev is None:
            prev = {}
        keys = set(stats) | set(prev)
        for k in keys:
            s = stats.get(k, (0, 0))
            p = prev.get(k, (0, 0))
            if s[0] != p[0] or s[1] != p[1]:
                rows.append((abs(s[0] - p[0]), k, s[0], s[0] - p[0], s[1], s[1] - p[1]))
        rows.sort(key=lambda r: (-r[0], r[1]))
    else:
        for k, s in stats.items():
            rows.append((s[0], k, s[0], 0, s[1], 0))
        rows.sort(key=lambda r: (-r[0], r[1]))
    _state["tm_prev"] = dict((k, tuple(v)) for k, v in stats.items())
    total = sum(s[0] for s in stats.values())
    out = []
    for _, (fname, line), size, dsize, count, dcount in rows[:n]:
        out.append({"file": fname, "line": line, "size": size, "size_diff": dsize,
                    "count": count, "count_diff": dcount})
    return {"rows": out, "total": total, "diff": bool(diff), "traced_memory": list(tm.get_traced_memory())}


def tm_stop():
    tm = _tm()
    if not tm.is_tracing():
        return {"was_tracing": False}
    ours = _state["tm_started"]
    tm.stop()
    _state["tm_started"] = False
    _state["tm_prev"] = None
    return {"was_tracing": True, "started_by_pyleakdb": ours}


# ----- running the user's Python -----

def _format_exception(e):
    lines = []
    tb = e.__traceback__
    # the first frames are the agent's own: show only the user's code
    while tb is not None and tb.tb_frame.f_globals is _ns:
        tb = tb.tb_next
    while tb is not None:
        co = tb.tb_frame.f_code
        lines.append('  File "%s", line %d, in %s' % (co.co_filename, tb.tb_lineno, co.co_name))
        tb = tb.tb_next
    msg = "%s: %s" % (_type_name(type(e)), e) if str(e) else _type_name(type(e))
    return {"exception": _type_name(type(e)), "message": str(e),
            "traceback": ["Traceback (most recent call last):"] + lines + [msg]}


def _namespace():
    """Where eval and exec run: the frame pyleakdb stopped at, else __main__."""
    cur = _ns.get("_current")
    if cur is not None and cur.get("frame") is not None:
        f = cur["frame"]
        return f.f_globals, f.f_locals
    main = sys.modules.get("__main__")
    g = main.__dict__ if main is not None else {}
    return g, g


def run(source, mode, limit):
    # eval() and exec() of a string, not compile(): the compile() builtin creates the
    # interpreter's AST classes on first use, which would stay in the target after us
    source = _text(source)
    mode = _text(mode)
    g, loc = _namespace()
    try:
        if mode == "eval":
            value = eval(source, g, loc)
        else:
            exec(source, g, loc)
            value = None
    except BaseException as e:  # the target's exceptions never escape into it
        r = {"raised": _format_exception(e)}
        del e
        return r
    if mode == "eval":
        r = _safe_repr(value, limit, passive=False)
        return {"repr": r, "type": _type_name(type(value))}
    return {}


# ----- the door -----

_marshal = sys.modules.get("marshal")


def _call_packed(packed):
    """pyleakdb's door: the function name and its arguments, packed by marshal."""
    try:
        args = _marshal.loads(packed)
    except BaseException:
        return b'{"error": "cannot unpack the call"}'
    return _call(*args)


def _own_code_ids():
    """Every code object of the agent's, nested ones too (pyleakdb untracks the tuples of
    local names they hide from Python, 3.11+)."""
    out = []
    todo = [v.__code__ for v in list(_ns.values()) if type(v) is _FUNC and v.__globals__ is _ns]
    seen = set()
    while todo:
        co = todo.pop()
        if id(co) in seen:
            continue
        seen.add(id(co))
        out.append(id(co))
        todo.extend(c for c in co.co_consts if type(c) is _CODE)
    return {"ids": out}


def _call(name, *args):
    """Run one agent function; JSON bytes come back whatever happens."""
    try:
        fn = _ns.get(_text(name))
        internal = _text(name) in ("_uninstall", "_own_code_ids")
        if fn is None or (_text(name).startswith("_") and not internal):
            result = {"error": "the agent has no command %r" % _text(name)}
        else:
            result = fn(*args)
    except MemoryError:
        result = {"error": "the target is out of memory"}
    except BaseException as e:  # never let anything escape into the target
        result = {"error": "%s: %s" % (_type_name(type(e)), e)}
    try:
        return _json(result).encode("ascii")
    except BaseException as e:
        return ('{"error": "cannot encode the result: %s"}' % type(e).__name__).encode("ascii")


def _uninstall():
    """Leave nothing behind: tracing we started stops, our state goes (returns {})."""
    for fn in reversed(_cleanups):
        try:
            fn()
        except BaseException:
            pass
    del _cleanups[:]
    try:
        if _state["tm_started"] and _tm().is_tracing():
            _tm().stop()
    except BaseException:
        pass
    _state.clear()
    _builtin_modules.clear()
    for m in _imported_by_us:
        # a module only we imported: empty it, so it goes now rather than as cyclic
        # garbage at the program's next collection (unless the program took it since)
        if sys.modules.get(m.__name__) is not m:
            try:
                m.__dict__.clear()
            except BaseException:
                pass
    del _imported_by_us[:]
    for m in _fallbacks:
        m.__dict__.clear()
    del _fallbacks[:]
    return {}

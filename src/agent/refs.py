# SPDX-License-Identifier: GPL-3.0-or-later
#
# refs: object handles, and the reference graph of the heap for `refs` and
# `graph` (run in the agent's namespace after agent.py: its helpers are ours).
#
# Handles.  `$N` names an object for the rest of the attach without keeping it
# alive: the agent keeps a weak reference when the type allows one, else the
# address and the type, looked up again among the objects the collector
# tracks.  A handle whose object died says so.
#
# Snapshots.  A reference search over a million objects cannot afford one
# Python call per object, nor one gc.get_referrers() scan per visited node.
# pyleakdb takes the graph in C-speed builtins instead and searches it in
# its own process:
#
#   refs_begin()  gc.get_objects() by generation (so that the newest objects
#                 can be told), their types, the roots, the agent's own
#                 objects; the lists stay here, pyleakdb reads their item
#                 arrays straight out of memory;
#   refs_edges()  the referents of every object in one gc.get_referents()
#                 call per chunk: the objects are interleaved with a private
#                 1-tuple whose only referent marks where each object's
#                 referents end;
#   refs_describe()  labels of the few edges pyleakdb prints (attribute
#                 names, keys, indices), and short descriptions of nodes;
#                 then everything is dropped.
#
# The snapshot holds a strong reference to every object while it exists, so
# no address is reused under pyleakdb's feet; it lives only for the length of
# one command.  Nothing here runs the program's code, with one exception the
# rest of the agent shares: the repr() of the objects that are shown.
#
# Keep to Python 3.6 syntax (see agent.py).

_weakref = _builtin("_weakref")
_getrefcount = sys.getrefcount
_is_tracked = _gc.is_tracked
_repeat = _itertools.repeat
_islice = _itertools.islice

_FunctionType = type(_own_objects)
_CodeType = type(_own_objects.__code__)
_ModuleType = type(sys)
_FrameType = type(sys._getframe())
_MEMBER = type(type.__dict__["__basicsize__"])
_GETSET = type(_FunctionType.__dict__["__code__"])
_type_dict = type.__dict__["__dict__"].__get__
_type_mro = type.__dict__["__mro__"].__get__
_object_getattribute = object.__getattribute__
_ATOMS = (str, int, float, bytes, bool, type(None), complex)

# C getters that only read what the object holds (anything else may run code,
# build objects the program would keep, or pin stale values: frame.f_locals
# before 3.13 copies the locals into a dict the frame keeps)
_GETSETS_OK = frozenset((
    "__code__", "__defaults__", "__kwdefaults__", "__name__", "__qualname__",
    "__doc__", "__bases__", "__type_params__", "cell_contents", "f_back", "f_code",
    "f_globals", "f_builtins", "f_trace", "gi_code", "gi_yieldfrom", "cr_code",
    "cr_await", "ag_code", "ag_await", "__traceback__", "__context__", "__cause__",
    "args", "__func__", "__self__", "tb_frame", "tb_next",
))

# objects per gc.get_referents() call: small enough to stay in the caches
_CHUNK = 50000
# functions of a module whose names may be attributes of its classes' instances
_MODULE_NAMES_MAX = 5000

_refs = {"snap": None}
_handles = {}          # number -> (weak reference or None, address, type name, type address)
_handle_by_addr = {}   # address -> number
_handle_next = [1]


def _refs_own():
    """What this file holds, for _own_objects(): never walked into."""
    out = []
    s = _refs["snap"]
    if s is not None:
        out.append(s)
        out.append(s["chunks"])
        out.extend(s["chunks"])
        for k in ("objs", "types", "sent"):
            if s.get(k) is not None:
                out.append(s[k])
    for rec in _handles.values():
        wr = rec[0]
        # a weak reference without callback is shared with the program's own, if it
        # has one: ours alone is held by the record, this variable and the call
        if wr is not None and _getrefcount(wr) == 3:
            out.append(wr)
    return out


def _refs_drop():
    """Let the snapshot go.  Its lists are emptied first: an object of the snapshot
    may hold one of them (on 3.6 our own running frame is in it, and holds it as a
    variable), and that cycle would keep the whole heap's list alive."""
    s = _refs["snap"]
    _refs["snap"] = None
    if s is not None:
        for k in ("objs", "types"):
            if s.get(k) is not None:
                del s[k][:]
        for c in s["chunks"]:
            del c[:]
        del s["chunks"][:]
        s.clear()


def _refs_cleanup():
    _refs_drop()
    _handles.clear()
    _handle_by_addr.clear()


_own_hooks.append(_refs_own)
_cleanups.append(_refs_cleanup)


# ----- handles -----

def _handle_new(o):
    a = id(o)
    n = _handle_by_addr.get(a)
    if n is not None:
        rec = _handles.get(n)
        if rec is not None:
            if rec[0] is not None and rec[0]() is o:
                return n
            if rec[0] is None and rec[3] == id(type(o)):
                return n
    try:
        wr = _weakref.ref(o)
    except TypeError:
        wr = None
    n = _handle_next[0]
    _handle_next[0] = n + 1
    _handles[n] = (wr, a, _type_name(type(o)), id(type(o)))
    _handle_by_addr[a] = n
    return n


def _can_handle(o):
    """A handle can find o again: a weak reference, or the collector tracks it."""
    if _is_tracked(o):
        return True
    try:
        _weakref.ref(o)
    except TypeError:
        return False
    return True


def _find_address(objs, addr, taddr):
    for o in _compress(objs, map(addr.__eq__, map(id, objs))):
        if taddr is None or id(type(o)) == taddr:
            return o
    return None


def _resolve(spec, objs):
    """The object named by "$N" or "0xADDR": (object or None, facts, error)."""
    if spec.startswith("$"):
        try:
            n = int(spec[1:])
        except ValueError:
            return None, None, "not a handle: %r" % spec
        rec = _handles.get(n)
        if rec is None:
            return None, None, ("no handle $%d (handles come from 'sample', 'top --sample', "
                                "'show' and 'refs')" % n)
        info = {"handle": n, "address": rec[1], "type": rec[2]}
        if rec[0] is not None:
            o = rec[0]()
        else:
            o = _find_address(objs if objs is not None else _gc.get_objects(), rec[1], rec[3])
        if o is None:
            info["gone"] = True
        return o, info, None
    try:
        addr = int(spec, 16) if spec.lower().startswith("0x") else int(spec)
    except ValueError:
        return None, None, "not a handle or an address: %r" % spec
    o = _find_address(objs if objs is not None else _gc.get_objects(), addr, None)
    if o is None:
        return None, None, ("no object the collector tracks at %#x (untracked objects, such "
                            "as strings and numbers, are found through handles only)" % addr)
    return o, {"handle": _handle_new(o), "address": addr, "type": _type_name(type(o))}, None


def _is_type_spec(spec):
    return not (spec.startswith("$") or spec[:1].isdigit())


def _match_types(types, name):
    exact = [t for t in types if _type_name(t) == name]
    if exact:
        return exact
    out = []
    for t in types:
        try:
            d = _type_dict(t)
        except TypeError:
            continue
        q = d.get("__qualname__")
        if type(q) is not str:
            q = getattr(t, "__qualname__", None)
        if q == name or t.__name__ == name:
            out.append(t)
    return out


def _one_type(types, name, objs):
    """The type named name among types: (type, error).  When several classes have the
    name, those with instances among objs win."""
    found = _match_types(types, name)
    if not found:
        return None, ("no class named %r" % name)
    if len(found) > 1:
        want = set(found)
        alive = set(filter(want.__contains__, map(type, objs)))
        if alive:
            found = [t for t in found if t in alive]
    if len(found) > 1:
        return None, ("ambiguous type name %r: %s" % (
            name, ", ".join(sorted(_type_name(t) for t in found))))
    return found[0], None


def _objects_by_generation():
    """gc.get_objects(), and where generations 1 and 2 begin in it: it lists the
    youngest generation first, and the lists asked for meanwhile are gone.  No
    collection may run in between (our own lists could start one)."""
    gc_was = _gc.isenabled()
    _gc.disable()
    try:
        bounds = _generation_bounds()
        # not in an exception handler: the list would hold the traceback, and through
        # it our frames
        return _gc.get_objects(), bounds
    finally:
        if gc_was:
            _gc.enable()


def _generation_bounds():
    try:
        b0 = len(_gc.get_objects(0))
        return [b0, b0 + len(_gc.get_objects(1))]
    except TypeError:  # 3.6, 3.7: no generation argument
        return None


def _forget(own):
    """Empty a list of ours that may hold our own running frames: on 3.6 they are
    tracked, so in gc.get_objects() and in _own_objects() (whose list also holds
    itself), and a frame holds the list as a variable: unbroken, that cycle would keep
    the list, and all in it, alive until the next collection."""
    del own[:]


def _all_types():
    """Every class, through the subclass lists (weak: they keep nothing alive)."""
    out = []
    seen = set()
    todo = [object]
    subclasses = type.__dict__["__subclasses__"]
    while todo:
        t = todo.pop()
        if id(t) in seen:
            continue
        seen.add(id(t))
        out.append(t)
        try:
            todo.extend(subclasses(t))
        except TypeError:
            pass
    return out


def _segments(n, bounds):
    """The generations' ranges of objs, youngest first: within each, the most recently
    created (or promoted) object is last."""
    if bounds is None:
        return [(0, n)]
    return [(0, bounds[0]), (bounds[0], bounds[1]), (bounds[1], n)]


# ----- describing objects -----

def _atom_text(x):
    t = type(x)
    if t in _ATOMS:
        if (t is str or t is bytes) and len(x) > 200:
            return repr(x[:200]) + "...(%d)" % len(x)
        return repr(x)
    return None


def _container_text(o, depth):
    """A list, tuple, set or dict as repr() would write it, bounded, made here: the
    containers' own repr() makes a list in the thread's state the first time it runs
    on a thread (Py_ReprEnter), and that list would stay after us."""
    t = type(o)
    n = len(o)
    if depth <= 0:
        return "%s(len=%d)" % (t.__name__, n)
    if t is dict:
        items = ["%s: %s" % (_item_text(k, depth - 1), _item_text(v, depth - 1))
                 for k, v in _islice(dict.items(o), 6)]
    else:
        items = [_item_text(x, depth - 1) for x in _islice(t.__iter__(o), 6)]
    if n > 6:
        items.append("... %d more" % (n - 6))
    body = ", ".join(items)
    if t is list:
        return "[" + body + "]"
    if t is tuple:
        return "(" + body + ("," if n == 1 else "") + ")"
    if t is dict:
        return "{" + body + "}"
    if not n:
        return t.__name__ + "()"
    return ("{" + body + "}") if t is set else (t.__name__ + "({" + body + "})")


def _item_text(x, depth):
    r = _atom_text(x)
    if r is not None:
        return r
    if type(x) in (list, tuple, set, frozenset, dict):
        return _container_text(x, depth)
    return _safe_repr(x, 80)


def _repr(o, limit):
    """repr(o), bounded; the program's __repr__ runs, the containers' does not."""
    t = type(o)
    if t in (list, tuple, set, frozenset, dict):
        try:
            r = _container_text(o, 2)
        except BaseException as e:
            r = "<%s object at %#x (%s)>" % (t.__name__, id(o), type(e).__name__)
    else:
        r = _safe_repr(o, limit)
    if len(r) > limit:
        r = r[:limit - 3] + "..."
    return r


def _short(o, limit):
    """A short description that runs none of the program's code for containers."""
    t = type(o)
    if t is dict or t is list or t is tuple or t is set or t is frozenset:
        n = len(o)
        if n > 3:
            return "%s of %d items" % (t.__name__, n)
    if t is _ModuleType:
        return "<module %r>" % _object_getattribute(o, "__name__")
    if t is _FunctionType:
        return "<function %s>" % o.__qualname__
    if issubclass(t, type):
        return "<class %r>" % _type_name(o)
    if t is _FrameType:
        return "<frame of %s>" % o.f_code.co_name
    return _repr(o, limit)


def _node_info(o, limit, full):
    try:
        size = _getsizeof(o)
    except Exception:
        size = 0
    return {"type": _type_name(type(o)), "address": id(o), "size": size,
            "repr": _repr(o, limit) if full else _short(o, limit)}


def _key_text(k):
    """A dict key or set member as text, without running the program's code."""
    t = type(k)
    if t in _ATOMS:
        r = repr(k)
    elif t is tuple and all(type(x) in _ATOMS for x in k):
        r = _container_text(k, 1)
    else:
        return "<%s object at %#x>" % (_type_name(t), id(k))
    if len(r) > 60:
        r = r[:57] + "..."
    return r


def _type_has(t, name):
    """Is name defined by t or a base, looked up without its metaclass's help?"""
    for k in _type_mro(t):
        if name in _type_dict(k):
            return True
    return False


def _has_get(v):
    return _type_has(type(v), "__get__")


def _code_names(code, out, depth):
    out.extend(code.co_names)
    if depth < 4:
        for k in code.co_consts:
            if type(k) is _CodeType:
                _code_names(k, out, depth + 1)


def _attr_candidates(t):
    """Names that instances of t may have as attributes, and that can be looked up
    without running code: 3.11+ keeps attributes without a dict, and asking for
    the dict would make one."""
    names = []
    unsafe = set()
    for k in _type_mro(t):
        d = _type_dict(k)
        for name, v in d.items():
            if _has_get(v):
                unsafe.add(name)
            f = v
            if type(f) in (staticmethod, classmethod):
                f = f.__func__
            fs = [f]
            if type(v) is property:
                fs = [v.fget, v.fset, v.fdel]
            for f in fs:
                if type(f) is _FunctionType:
                    _code_names(f.__code__, names, 0)
        for extra in ("__slots__", "__annotations__", "__dataclass_fields__"):
            v = d.get(extra)
            if type(v) is dict:
                names.extend(k2 for k2 in v if type(k2) is str)
            elif type(v) in (tuple, list):
                names.extend(k2 for k2 in v if type(k2) is str)
    # attributes set from outside the class: the names its module's code uses
    mod = sys.modules.get(_type_dict(t).get("__module__"))
    if type(mod) is _ModuleType:
        md = _object_getattribute(mod, "__dict__")
        for v in _islice(list(dict.values(md)), _MODULE_NAMES_MAX):
            if type(v) is _FunctionType:
                _code_names(v.__code__, names, 0)
            elif issubclass(type(v), type) and v is not t:
                for f in _islice(list(_type_dict(v).values()), _MODULE_NAMES_MAX):
                    if type(f) is _FunctionType:
                        _code_names(f.__code__, names, 0)
    seen = set()
    out = []
    for n in names:
        if type(n) is str and n not in unsafe and n not in seen:
            seen.add(n)
            out.append(n)
    return out


def _attr_name(p, c):
    """The C-level member or plain getter of p that holds c."""
    t = type(p)
    for k in _type_mro(t):
        for name, d in _type_dict(k).items():
            td = type(d)
            if td is _MEMBER or (td is _GETSET and name in _GETSETS_OK):
                try:
                    v = d.__get__(p, t)
                except BaseException:
                    continue
                if v is c:
                    return name
    return None


def _instance_attr(p, c, ctx):
    """The name of p's attribute holding c, looked up by the names p's class and
    module use (each instance's map is made once)."""
    attrs = ctx.get(("attrs", id(p)))
    if attrs is None:
        t = type(p)
        names = ctx.get(t)
        if names is None:
            try:
                names = _attr_candidates(t)
            except BaseException:
                names = []
            ctx[t] = names
        attrs = {}
        for name in names:
            try:
                v = _object_getattribute(p, name)
            except BaseException:
                continue
            attrs.setdefault(id(v), name)
        # the map holds ids only; p stays alive in the caller while it is used
        ctx[("attrs", id(p))] = attrs
    return attrs.get(id(c))


def _edge(p, c, ctx):
    """(kind, label) of the reference p holds on c, or None when it cannot be told.

    Kinds: key, dictkey, index, member, attr, dict (p's __dict__), class
    (p's type), frame (pyleakdb labels frames from their memory), genlocal.
    """
    if p is None:
        return None
    t = type(p)
    try:
        if issubclass(t, dict):
            for k, v in dict.items(p):
                if v is c:
                    return ("key", "[%s]" % _key_text(k))
            for k in dict.keys(p):
                if k is c:
                    return ("dictkey", "(key %s)" % _key_text(k))
        elif issubclass(t, (list, tuple)):
            it = list.__iter__(p) if issubclass(t, list) else tuple.__iter__(p)
            for i, x in enumerate(it):
                if x is c:
                    return ("index", "[%d]" % i)
        elif issubclass(t, (set, frozenset)):
            it = set.__iter__(p) if issubclass(t, set) else frozenset.__iter__(p)
            for x in it:
                if x is c:
                    return ("member", "{%s}" % _key_text(x))
        elif t is getattr(_collections, "deque", None):
            for i, x in enumerate(t.__iter__(p)):
                if x is c:
                    return ("index", "[%d]" % i)
        if c is t:
            return ("class", ".__class__")
        name = _attr_name(p, c)
        if name is not None:
            return ("dict" if name == "__dict__" else "attr", "." + name)
        if t is _FrameType:
            return ("frame", "")
        if issubclass(t, type):
            if type(c) is dict:
                return ("dict", ".__dict__")
            return None
        if _type_has(t, "gi_code") or _type_has(t, "cr_code") or _type_has(t, "ag_code"):
            return ("genlocal", "(a local of the suspended %s)" % t.__name__)
        name = _instance_attr(p, c, ctx)
        if name is not None:
            return ("attr", "." + name)
        if type(c) is dict:
            # never asked for: the __dict__ getter would make a dict that was not there
            return ("dict", ".__dict__")
    except BaseException:
        return None
    return None


def _hops(chain, ctx):
    """Labelled hops along a chain of objects, with p.__dict__[k] shown as .k and a
    closure's cell as the name of its variable."""
    hops = []
    m = len(chain)
    labels = [_edge(chain[i], chain[i + 1], ctx) for i in range(m - 1)]
    i = 0
    while i < m - 1:
        p = chain[i]
        e = labels[i]
        if e is not None and e[0] == "dict" and i + 2 < m and labels[i + 1] is not None and \
                labels[i + 1][0] == "key":
            k = None
            for k2, v in dict.items(chain[i + 1]):
                if v is chain[i + 2]:
                    k = k2
                    break
            if type(k) is str:
                hops.append({"to": i + 2, "kind": "attr", "label": "." + k})
                i += 2
                continue
        if e is not None and e == ("attr", ".__closure__") and i + 3 < m and \
                type(p) is _FunctionType and labels[i + 1] is not None and \
                labels[i + 1][0] == "index" and labels[i + 2] == ("attr", ".cell_contents"):
            j = int(labels[i + 1][1][1:-1])
            names = p.__code__.co_freevars
            name = names[j] if j < len(names) else "?"
            hops.append({"to": i + 3, "kind": "closure", "label": "closure %r" % name})
            i += 3
            continue
        if e is None:
            e = ("referent", "")
        hops.append({"to": i + 1, "kind": e[0], "label": e[1]})
        i += 1
    return hops


def _labelled_referents(o, k, ctx):
    """Up to k (label, referent) pairs of o, and how many referents it has in all."""
    t = type(o)
    out = []
    if issubclass(t, dict):
        for key, v in _islice(dict.items(o), k):
            out.append(("[%s]" % _key_text(key), v))
        return out, dict.__len__(o)
    if issubclass(t, (list, tuple)):
        it = list.__iter__(o) if issubclass(t, list) else tuple.__iter__(o)
        for i, v in enumerate(_islice(it, k)):
            out.append(("[%d]" % i, v))
        return out, len(o)
    if issubclass(t, (set, frozenset)):
        it = set.__iter__(o) if issubclass(t, set) else frozenset.__iter__(o)
        for v in _islice(it, k):
            out.append(("{%s}" % _key_text(v), v))
        return out, len(o)
    refs = _gc.get_referents(o)
    total = len(refs)
    for c in refs:
        if len(out) >= k:
            break
        e = _edge(o, c, ctx)
        if e is not None and e[0] == "dict" and type(c) is dict:
            # the instance's own dict: its attributes, one by one
            total += len(c) - 1
            for key, v in dict.items(c):
                if len(out) >= k:
                    break
                out.append(("." + key if type(key) is str else "[%s]" % _key_text(key), v))
            continue
        out.append((e[1] if e is not None and e[1] else "(referent)", c))
    return out, total


def _retained(o, limit):
    """(objects, bytes) that o alone keeps alive, or None when that would cost more than
    looking at `limit` objects.  Classes and modules are never counted: something else
    always holds them."""
    order = [o]
    index = {id(o): 0}
    edges = []
    i = 0
    while i < len(order):
        p = order[i]
        out = []
        for c in _gc.get_referents(p):
            j = index.get(id(c))
            if j is None:
                t = type(c)
                if t is _ModuleType or issubclass(t, type) or _getrefcount(c) > (1 << 29):
                    continue
                j = len(order)
                index[id(c)] = j
                order.append(c)
                if j > limit:
                    return None
            out.append(j)
        edges.append(out)
        i += 1
    p = c = None  # what the function holds on each object must be the same for all
    probe = object()
    order.append(probe)
    del probe
    inref = [0] * len(order)
    for out in edges:
        for j in out:
            inref[j] += 1
    rc = []
    x = None
    for j in range(len(order)):
        x = order[j]
        rc.append(_getrefcount(x))
    x = None
    extra = rc[-1]  # what this function holds on each: the list, a variable, the call
    order.pop()
    n = len(order)
    keep = [j == 0 or rc[j] - extra - inref[j] <= 0 for j in range(n)]
    changed = True
    while changed:
        changed = False
        fromkeep = [0] * n
        for j in range(n):
            if keep[j]:
                for c in edges[j]:
                    fromkeep[c] += 1
        for j in range(1, n):
            if keep[j] and fromkeep[j] < inref[j]:
                keep[j] = False
                changed = True
    count = 0
    size = 0
    for j in range(n):
        if keep[j]:
            count += 1
            try:
                size += _getsizeof(order[j])
            except Exception:
                pass
    return count, size


# ----- commands: sample, show, graph of referents -----

def _newest(objs, bounds, t, n, own):
    """Up to n instances of t, the newest first, and how many there are."""
    ownids = set(id(o) for o in own if type(o) is t)
    idx = list(_compress(range(len(objs)), map(_operator.is_, map(type, objs), _repeat(t))))
    total = len(idx) - len(ownids)
    picks = []
    for lo, hi in _segments(len(objs), bounds):
        a = _bisect_left(idx, lo)
        b = _bisect_left(idx, hi)
        for i in range(b - 1, a - 1, -1):
            if len(picks) >= n:
                break
            o = objs[idx[i]]
            if id(o) not in ownids:
                picks.append(o)
    return picks, total


def _bisect_left(a, x):
    lo, hi = 0, len(a)
    while lo < hi:
        mid = (lo + hi) // 2
        if a[mid] < x:
            lo = mid + 1
        else:
            hi = mid
    return lo


def sample(name, n, limit):
    name = _text(name)
    own = _own_objects()
    try:
        objs, bounds = _objects_by_generation()
        t, err = _one_type(_all_types(), name, objs)
        if err:
            return {"error": err}
        picks, total = _newest(objs, bounds, t, n, own)
    finally:
        _forget(own)
    objs = own = None
    rows = []
    for o in picks:
        row = _node_info(o, limit, True)
        row["handle"] = _handle_new(o)
        rows.append(row)
    return {"type": _type_name(t), "count": total, "samples": rows,
            "order": "newest first" if bounds is not None else "collector order"}


def show(spec, nref, limit, retained_limit):
    spec = _text(spec)
    o, info, err = _resolve(spec, None)
    if err:
        return {"error": err}
    if o is None:
        return info
    h = _handle_new(o)
    r = _node_info(o, limit, True)
    r["handle"] = h
    r["tracked"] = _is_tracked(o)
    rc = _getrefcount(o) - 2  # this variable and the call
    r["refcount"] = rc if rc < (1 << 29) else None
    refs = []
    pairs, total = _labelled_referents(o, nref, {})
    for label, c in pairs:
        row = _node_info(c, 60, False)
        row["label"] = label
        if _can_handle(c):
            row["handle"] = _handle_new(c)
        refs.append(row)
    pairs = c = None
    r["referents"] = refs
    r["referents_total"] = total
    kept = _retained(o, retained_limit) if retained_limit > 0 else None
    if kept is not None:
        r["keeps_alive"] = {"objects": kept[0], "size": kept[1]}
    return r


def graph_referents(spec, depth, too_many, limit):
    """The objects o refers to, depth levels deep, objgraph's show_refs way (a type
    name: its newest instance)."""
    spec = _text(spec)
    if _is_type_spec(spec):
        own = _own_objects()
        try:
            objs, bounds = _objects_by_generation()
            t, err = _one_type(_all_types(), spec, objs)
            if err:
                return {"error": err}
            picks, total = _newest(objs, bounds, t, 1, own)
        finally:
            _forget(own)
        objs = own = None
        if not picks:
            return {"error": "no instance of %s is alive" % _type_name(t)}
        o = picks[0]
        picks = None
    else:
        o, info, err = _resolve(spec, None)
        if err:
            return {"error": err}
        if o is None:
            return info
    nodes = [o]
    index = {id(o): 0}
    edges = []
    more = []
    ctx = {}
    frontier = [0]
    for d in range(depth):
        nxt = []
        for j in frontier:
            p = nodes[j]
            if type(p) is _ModuleType and j:
                continue  # a module refers to everything it defines
            pairs, total = _labelled_referents(p, too_many, ctx)
            for label, c in pairs:
                k = index.get(id(c))
                if k is None:
                    k = len(nodes)
                    index[id(c)] = k
                    nodes.append(c)
                    nxt.append(k)
                edges.append([j, k, label])
            if total > len(pairs):
                more.append([j, total - len(pairs)])
        frontier = nxt
    out = [_node_info(x, limit, False) for x in nodes]
    h = _handle_new(o)
    return {"handle": h, "nodes": out, "edges": edges, "more": more}


# ----- the snapshot -----

def _collection_types():
    # agent.py's stand-in for a _collections the program has not imported has None here
    seq = [list, tuple, set, frozenset, getattr(_collections, "deque", None)]
    maps = [dict, getattr(_collections, "defaultdict", None),
            getattr(_collections, "OrderedDict", None)]
    return {"seq": [id(t) for t in seq if t is not None],
            "dict": [id(t) for t in maps if t is not None]}


def _thread_frames():
    """Every thread's frame objects, innermost first, the agent's own left out."""
    out = []
    for ident, f in list(sys._current_frames().items()):
        while f is not None and f.f_globals is _ns:
            f = f.f_back
        n = 0
        while f is not None and n < 10000:
            out.append(f)
            f = f.f_back
            n += 1
    return out


def _contains(seq, x):
    for y in seq:
        if y is x:
            return True
    return False


# No closure, lambda or generator expression may use a local variable of
# refs_begin: that variable would be a cell, made when the call starts, so in
# the snapshot, holding whatever the variable holds: a referrer that is ours.
def refs_begin(spec, frames_as_objects, want_types):
    """Start a snapshot: the objects, their types, the roots.  spec is "$N", "0xADDR",
    a type name, or empty; frames_as_objects: the running frames' own references are
    visible to gc.get_referents() (up to 3.10), so put them in the snapshot;
    want_types: pyleakdb needs every object's type (a type name implies it)."""
    _refs_drop()
    spec = _text(spec)
    own = _own_objects()
    gc_was = _gc.isenabled()
    objs, bounds = _objects_by_generation()
    ownids = list(map(id, own))
    _forget(own)
    own = None
    result = {"gens": bounds, "gc_enabled": gc_was}
    extra = []
    if frames_as_objects:
        extra = [f for f in _thread_frames() if not _is_tracked(f)]
    target = None
    if spec and not _is_type_spec(spec):
        target, info, err = _resolve(spec, objs)
        if err or target is None:
            _forget(objs)
            return {"error": err} if err else info
        info["handle"] = _handle_new(target)
        result["target"] = info
        if not _is_tracked(target) and not _contains(extra, target):
            extra.append(target)
    objs.extend(extra)
    del extra
    if spec and _is_type_spec(spec):
        t, err = _one_type(_all_types(), spec, objs)
        if err:
            _forget(objs)
            return {"error": err}
        result["type"] = {"address": id(t), "name": _type_name(t)}
        want_types = True
    types = list(map(type, objs)) if want_types else None
    sent = (object(),)
    _refs["snap"] = {"objs": objs, "types": types, "sent": sent, "chunks": []}
    mods = []
    for name, m in list(sys.modules.items()):
        if _is_tracked(m):
            mods.append([name, id(m)])
    mods.sort(key=lambda x: x[0] != "__main__")
    result.update({
        "n": len(objs), "objs": id(objs), "types": id(types) if want_types else 0,
        "mark": id(sent[0]),
        "own": ownids, "modules": mods, "garbage": id(_gc.garbage),
        "collections": _collection_types(), "ns": id(_ns),
    })
    # up to 3.6 this running frame is an object of the snapshot, which keeps it, and
    # its variables, until the end: none may hold what pyleakdb counts references to
    target = info = t = m = objs = types = None
    return result


def refs_edges(start, budget, chunk):
    """The referents of objs[start:...], as lists pyleakdb reads, up to budget entries;
    the previous call's lists are dropped first."""
    s = _refs["snap"]
    if s is None:
        return {"error": "no snapshot is being taken"}
    for c in s["chunks"]:
        del c[:]
    del s["chunks"][:]
    if s["types"] is not None:
        del s["types"][:]
        s["types"] = None
    objs = s["objs"]
    sent = s["sent"]
    n = len(objs)
    chunk = chunk or _CHUNK
    get_referents = _gc.get_referents
    out = []
    total = 0
    gc_was = _gc.isenabled()
    # No collection meanwhile: its finalizers would run the program's code.  Each
    # gc.get_referents() call keeps the GIL; between two, another thread may run,
    # but every object of the snapshot stays alive at its address (we hold it), so
    # at worst a chunk sees references a little newer than the one before.  The
    # switch interval is left alone: raised, it is also how long this thread would
    # wait for the GIL back from a busy thread.
    _gc.disable()
    try:
        while start < n and total < budget:
            part = objs[start:start + chunk]
            k = len(part)
            args = [sent] * (2 * k)
            args[0::2] = part
            del part
            flat = get_referents(*args)
            del args
            s["chunks"].append(flat)
            out.append([id(flat), start, start + k])
            total += len(flat)
            start += k
    finally:
        if gc_was:
            _gc.enable()
    return {"lists": out, "next": start}


def refs_describe(req, release, limit):
    """Labels and descriptions pyleakdb asks for, one request a line:
         c I J K ...   the hops of the chain of nodes I, J, K... (-1: not an object)
         n I F         node I (F: 1 with its repr and a handle, 0 short)
         e I J         the label of the edge I -> J
    """
    s = _refs["snap"]
    try:
        if s is None:
            return {"error": "no snapshot is being taken"}
        objs = s["objs"]
        n = len(objs)

        def obj(i):
            i = int(i)
            return objs[i] if 0 <= i < n else None

        ctx = {}
        chains = []
        nodes = {}
        edges = []
        for line in _text(req).split("\n"):
            w = line.split()
            if not w:
                continue
            if w[0] == "c":
                chains.append(_hops([obj(i) for i in w[1:]], ctx))
            elif w[0] == "n":
                o = obj(w[1])
                if o is not None:
                    full = w[2] == "1"
                    d = _node_info(o, limit if full else 60, full)
                    if full and _can_handle(o):
                        d["handle"] = _handle_new(o)
                    nodes[w[1]] = d
            elif w[0] == "e":
                e = _edge(obj(w[1]), obj(w[2]), ctx)
                edges.append(list(e) if e is not None else None)
        return {"chains": chains, "nodes": nodes, "edges": edges}
    finally:
        if release:
            _refs_drop()


def refs_release():
    _refs_drop()
    return {}

# SPDX-License-Identifier: GPL-3.0-or-later
"""Why is it still alive: handles, refs, show and graph on every interpreter.

The target (targets/refs_target.py) builds the leaks of the issue and tells
the test, in its ready file, what it knows about each: the registry's key and
the newest instance's id, the closure's variable, the running loop's thread,
line and local, the object only native code holds, the unreachable cycle.
The chains pyleakdb prints must say the same.  At the end, the target counts
its own objects again: after detach, nothing pyleakdb made may be left.
"""
import json
import os
import re
import subprocess

import pytest

from conftest import PYLEAKDB_TIMEOUT, assert_free, popen_pyleakdb, wait_for

TIMEOUT = 60


def run_json(pyleakdb, pid, *commands):
    """pyleakdb --batch --json -p PID -ex C...: {command: record}."""
    args = ["--batch", "--json", "-p", pid]
    for c in commands:
        args += ["-ex", c]
    r = pyleakdb(*args, timeout=TIMEOUT)
    recs = {}
    for o in r.json_lines():
        recs.setdefault(o.get("command"), o)
    return r, recs


def ok(recs, command):
    o = recs[command]
    assert o["ok"] is True, o
    return o["result"]


def ask(t, seq, *words):
    """Send the target a command on its FIFO; its JSON reply."""
    fd = os.open(t.ready["fifo"], os.O_WRONLY)
    try:
        os.write(fd, (" ".join([str(seq)] + [str(w) for w in words])).encode())
    finally:
        os.close(fd)
    path = os.path.join(os.path.dirname(t.ready_path), "reply-%d-%d.json" % (t.pid, seq))
    wait_for(lambda: os.path.exists(path), 30, "the target's reply %d" % seq)
    with open(path) as f:
        return json.load(f)


def talk(t, s, seq, *words):
    """ask() while a pyleakdb session s holds the target: it runs for the reply."""
    fd = os.open(t.ready["fifo"], os.O_WRONLY)
    try:
        os.write(fd, (" ".join([str(seq)] + [str(w) for w in words])).encode())
    finally:
        os.close(fd)
    path = os.path.join(os.path.dirname(t.ready_path), "reply-%d-%d.json" % (t.pid, seq))
    for _ in range(50):
        o = s.cmd("continue 100ms")
        assert o["ok"] is True, o
        if os.path.exists(path):
            with open(path) as f:
                return json.load(f)
    pytest.fail("no reply %d from the target" % seq)


def chain(group):
    return group["chain"]["text"]


def test_registry(python, target, pyleakdb):
    """A class attribute dict holding instances: the newest, and 999 more held the same way."""
    t = target("refs_target.py", python)
    r, recs = run_json(pyleakdb, t.pid, "refs Processor")
    res = ok(recs, "refs Processor")
    assert res["type"] == "__main__.Processor" and res["instances"] == t.ready["n_proc"], res
    g = res["groups"][0]
    assert g["held"] == "root" and g["count"] == t.ready["n_proc"], g
    text = chain(g)
    assert text.startswith("__main__ module -> .Registry -> .instance_map -> ["), text
    rep = g["representative"]
    assert text.endswith("-> Processor @%#x" % rep["address"]), text
    key = int(re.search(r"\.instance_map -> \[(\d+)\]", text).group(1))
    first = t.ready["newest_key"] - t.ready["n_proc"] + 1
    assert first <= key <= t.ready["newest_key"], text
    if python.version >= (3, 8):
        # the collector's lists tell the newest: the target's own newest
        assert res["newest_known"] is True
        assert key == t.ready["newest_key"] and rep["address"] == t.ready["newest_id"], text
    root = g["chain"]["root"]
    assert root["kind"] == "module" and root["name"] == "__main__", root
    assert [h["label"] for h in g["chain"]["hops"]] == [".Registry", ".instance_map",
                                                         "[%d]" % key]
    assert g["chain"]["hops"][1]["type"] == "dict"
    assert "handle" in rep and res["more_groups"] == 0

    # a chain longer than --max-depth is only counted
    r, recs = run_json(pyleakdb, t.pid, "refs Processor --max-depth 2", "refs Processor --max-depth 3")
    g = ok(recs, "refs Processor --max-depth 2")["groups"][0]
    assert g["too_deep"] == 3, g
    assert "too_deep" not in ok(recs, "refs Processor --max-depth 3")["groups"][0]

    # the human view: one line per hop, and how many more are held the same way
    r = pyleakdb("--batch", "-p", t.pid, "-ex", "refs Processor", timeout=TIMEOUT)
    assert r.returncode == 0, r
    assert "__main__ module -> .Registry -> .instance_map -> [%d] -> Processor @" % key in r.out
    assert "%d more __main__.Processor held the same way" % (t.ready["n_proc"] - 1) in r.out, r.out
    assert "-> .instance_map" in r.out and "dict of %d items" % t.ready["n_proc"] in r.out


def test_closure_and_bound_method(python, target, pyleakdb):
    t = target("refs_target.py", python)
    payload = "%#x" % t.ready["holder_payload_id"]
    r, recs = run_json(pyleakdb, t.pid, "refs BigData", "refs " + payload)
    g = ok(recs, "refs BigData")["groups"][0]
    assert g["representative"]["address"] == t.ready["closure_big_id"], g
    assert chain(g) == ("__main__ module -> .CALLBACKS -> [0] -> closure %r -> BigData @%#x"
                        % (t.ready["closure_var"], t.ready["closure_big_id"])), chain(g)
    assert g["chain"]["hops"][2]["kind"] == "closure"
    res = ok(recs, "refs " + payload)
    g = res["groups"][0]
    assert chain(g) == ("__main__ module -> .HANDLERS -> ['event'] -> .__self__ -> .payload "
                        "-> dict @%s" % payload), chain(g)
    assert res["target"]["address"] == t.ready["holder_payload_id"]
    assert res["unaccounted"] == 0 and res["referrers"] == 1, res


def test_local_in_running_loop(python, target, pyleakdb):
    t = target("refs_target.py", python)
    loop = t.ready["loop"]
    r, recs = run_json(pyleakdb, t.pid, "refs Cache")
    g = ok(recs, "refs Cache")["groups"][0]
    root = g["chain"]["root"]
    assert root["kind"] == "frame", g
    assert root["tid"] == loop["tid"] and root["line"] == loop["line"], (root, loop)
    assert root["function"] in ("run", "LoopWorker.run") and root["depth"] == 0, root
    assert root["file"] == t.ready["file"] and root.get("thread") == "loop-worker", root
    hops = g["chain"]["hops"]
    assert [h["label"] for h in hops] == ["local 'cache'"], hops
    assert hops[0]["address"] == loop["cache_id"]
    assert chain(g).startswith("thread %d (loop-worker) %s() at %s:%d -> local 'cache' -> Cache @"
                               % (loop["tid"], root["function"], t.ready["file"], loop["line"]))


def test_held_from_native_code(python, target, pyleakdb):
    t = target("refs_target.py", python)
    if not t.ready["pinned"]:
        pytest.skip("no ctypes in %s" % python.path)
    r, recs = run_json(pyleakdb, t.pid, "refs Pinned")
    res = ok(recs, "refs Pinned")
    g = res["groups"][0]
    assert res["held"] == "native" and g["held"] == "native", res
    root = g["chain"]["root"]
    assert root["kind"] == "native" and root["unaccounted"] == 1, root
    assert root["address"] == t.ready["pinned_id"] == g["representative"]["address"]
    assert chain(g) == ("held from native code or an untracked container (1 reference "
                        "unaccounted for): Pinned @%#x" % t.ready["pinned_id"]), chain(g)
    r = pyleakdb("--batch", "-p", t.pid, "-ex", "refs Pinned", timeout=TIMEOUT)
    assert "held from native code or an untracked container (1 reference unaccounted for)" \
        in r.out, r


def test_cycle_only_the_collector_frees(python, target, pyleakdb):
    t = target("refs_target.py", python, "--no-collector")
    r, recs = run_json(pyleakdb, t.pid, "refs Node", "sample Node 2", "refs $2")
    res = ok(recs, "refs Node")
    assert res["held"] == "garbage" and res["gc_enabled"] is False, res
    g = res["groups"][0]
    assert g["count"] == 2 and "chain" not in g, g
    cycle = g["cycle"]["text"]
    ids = t.ready["cycle_ids"]
    assert g["representative"]["address"] in ids
    assert re.match(r"^Node @0x[0-9a-f]+ -> \.other -> \.other -> Node @0x[0-9a-f]+$", cycle), cycle
    res = ok(recs, "refs $2")
    assert res["held"] == "garbage" and res["unaccounted"] == 0, res
    r = pyleakdb("--batch", "-p", t.pid, "-ex", "refs Node", timeout=TIMEOUT)
    assert "unreachable: only reference cycles hold it" in r.out, r
    assert "it is disabled in this process" in r.out
    # looking collected nothing, and left the collector off
    st = ask(t, 1, "state")
    assert st["cycle_alive"] == [True, True] and st["gc_enabled"] is False, st


def test_refs_all_groups_the_ways(python, target, pyleakdb):
    """refs $N --all: every referrer's chain, grouped by shape."""
    t = target("refs_target.py", python)
    addr = "%#x" % t.ready["shared_id"]
    r, recs = run_json(pyleakdb, t.pid, "refs %s --all" % addr, "refs %s" % addr)
    res = ok(recs, "refs %s --all" % addr)
    counts = sorted(g["count"] for g in res["groups"])
    assert counts == [1, 1, t.ready["n_box"]], res["groups"]
    texts = [chain(g) for g in res["groups"]]
    assert texts[0].startswith("__main__ module -> .BOXES -> [") and \
        texts[0].endswith("] -> .item -> Shared @%s" % addr), texts
    assert "__main__ module -> .SHARED -> Shared @%s" % addr in texts, texts
    assert "__main__ module -> .OTHER -> ['s'] -> Shared @%s" % addr in texts, texts
    one = ok(recs, "refs %s" % addr)
    assert len(one["groups"]) == 1 and one["referrers"] == t.ready["n_box"] + 2, one
    assert chain(one["groups"][0]) == "__main__ module -> .SHARED -> Shared @%s" % addr


def test_handles(python, target, json_session):
    """Handles survive continue, die with their object, and do not keep it alive."""
    t = target("refs_target.py", python)
    s = json_session("-p", t.pid)
    assert s.read()["ok"] is True  # attach
    o = s.cmd("sample Processor 2")
    assert o["ok"] is True, o
    samples = o["result"]["samples"]
    assert [x["handle"] for x in samples] == [1, 2]
    assert o["result"]["count"] == t.ready["n_proc"]
    if python.version >= (3, 8):
        assert samples[0]["address"] == t.ready["newest_id"], samples
    first = samples[0]["address"]
    o = s.cmd("show $1")
    assert o["ok"] is True, o
    shown = o["result"]
    assert shown["address"] == first and shown["type"] == "__main__.Processor"
    assert shown["refcount"] == 1 and shown["tracked"] is True, shown
    labels = [x["label"] for x in shown["referents"]]
    assert ".key" in labels and ".buffer" in labels and ".__class__" in labels, labels
    assert shown["keeps_alive"]["objects"] >= 2, shown  # itself and its buffer
    # the same object again: the same handle
    o = s.cmd("show %#x" % first)
    assert o["result"]["handle"] == 1, o
    # the target counts the references to $2 itself, and pyleakdb agrees
    o = s.cmd("show $2")
    second = o["result"]
    assert talk(t, s, 1, "refcount", second["address"]) == {"refcount": second["refcount"]}
    # the target forgets the newest Processor while pyleakdb holds a handle on it
    if python.version >= (3, 8):
        assert talk(t, s, 2, "drop") == {"alive": False}  # no strong reference of ours
        o = s.cmd("show $1")
        assert o["ok"] is True and o["result"]["gone"] is True, o
        assert o["result"]["address"] == first
        o = s.cmd("refs $1")
        assert o["ok"] is True and o["result"]["gone"] is True, o
        o = s.cmd("show $2")
        assert o["ok"] is True and "gone" not in o["result"], o
    o = s.cmd("show $77")
    assert o["ok"] is False and "no handle $77" in o["errors"][0], o
    assert s.close() == 0
    assert_free(t.pid)


def test_detach_leaves_nothing(python, target, pyleakdb, tmp_path):
    t = target("refs_target.py", python)
    ask(t, 1, "state")  # what writing the ready file left, the collector untracks now
    before = ask(t, 2, "state")
    cmds = ["sample Processor 3", "show $1", "refs Processor", "refs $1 --all", "refs Cache",
            "graph $1 -o %s" % (tmp_path / "g.dot"),
            "graph $1 --referents -o %s" % (tmp_path / "r.dot"), "show $4"]
    r, recs = run_json(pyleakdb, t.pid, *cmds)
    for c in cmds:
        assert recs[c]["ok"] is True, recs[c]
    after = ask(t, 3, "state")
    # the program's own objects, type by type, its weak references, modules, settings
    assert after["weakrefs"] == before["weakrefs"]
    diff = dict((k, (before["census"].get(k), after["census"].get(k)))
                for k in set(before["census"]) | set(after["census"])
                if before["census"].get(k) != after["census"].get(k))
    assert not diff, diff
    assert after["modules"] == before["modules"]
    assert after["switchinterval"] == before["switchinterval"]
    assert after["gc_enabled"] is True and after["threads"] == before["threads"]


def test_graph(python, target, pyleakdb, tmp_path):
    t = target("refs_target.py", python)
    dot, png, ref = tmp_path / "p.dot", tmp_path / "q.png", tmp_path / "r.svg"
    cmds = ["refs Processor", "graph Processor -o %s" % dot, "graph $1 --max-depth 2 -o %s" % png,
            "graph Processor --referents -o %s" % ref]
    r, recs = run_json(pyleakdb, t.pid, *cmds)
    res = ok(recs, cmds[1])
    assert res["direction"] == "referrers" and res["format"] == "dot"
    text = dot.read_text()
    assert text.startswith("digraph ObjectGraph {") and text.rstrip().endswith("}")
    nodes = re.findall(r"^  (o\d+) \[label=\"([^\n]*?)\", fillcolor", text, re.M)
    edges = re.findall(r"^  (o\d+) -> (o\d+)(?: \[label=\"(.*)\"\])?;$", text, re.M)
    assert len(nodes) == res["nodes"] and len(edges) == res["edges"], text
    names = dict(nodes)
    assert names["o0"].startswith("__main__.Processor\\n"), names
    ids = set(names)
    assert all(a in ids and b in ids for a, b, _ in edges), text
    # the registry's key on the edge into the instance, the class dict's key above it
    labels = set(l for _, _, l in edges)
    assert "['instance_map']" in labels and ".__dict__" in labels, text
    assert any(re.match(r"^\[\d+\]$", l) for l in labels), labels
    res = ok(recs, cmds[2])
    assert res["rendered"] is True and res["format"] == "png", res
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    res = ok(recs, cmds[3])
    assert res["direction"] == "referents" and res["rendered"] is True
    svg = ref.read_text()
    assert "<svg" in svg and ".buffer" in svg and "__main__.Processor" in svg


def test_errors(python, target, pyleakdb):
    t = target("refs_target.py", python)
    cmds = ["refs NoSuchClass", "show $9", "graph Processor", "refs", "sample Processor 0",
            "refs Processor --bogus", "show 0x10"]
    r, recs = run_json(pyleakdb, t.pid, *cmds)
    errors = dict((c, recs[c]["errors"]) for c in cmds)
    assert all(recs[c]["ok"] is False for c in cmds), errors
    assert "no class named 'NoSuchClass'" in errors[cmds[0]][0]
    assert "no handle $9" in errors[cmds[1]][0]
    assert "-o FILE" in errors[cmds[2]][0]
    assert "usage: refs" in errors[cmds[3]][0]
    assert "usage: sample" in errors[cmds[4]][0]
    assert "unknown option" in errors[cmds[5]][0]
    assert "no object the collector tracks at 0x10" in errors[cmds[6]][0]
    # a failed command leaves no snapshot behind: the next one works
    r, recs = run_json(pyleakdb, t.pid, "refs NoSuchClass", "refs Cache")
    assert recs["refs Cache"]["ok"] is True


def test_graph_without_graphviz(debian_python, target, pyleakdb, tmp_path):
    """No dot on PATH: the Graphviz source is written, and the command to render it said."""
    t = target("refs_target.py", debian_python)
    png = tmp_path / "g.png"
    env = dict(pyleakdb.env, PATH=str(tmp_path / "no-such-dir"))
    p = popen_pyleakdb([pyleakdb.bin, "--batch", "-p", str(t.pid), "-ex",
                        "graph Processor -o %s" % png], stdin=subprocess.DEVNULL,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    out, err = p.communicate(timeout=PYLEAKDB_TIMEOUT)
    assert p.returncode == 0, (out, err)
    assert not png.exists() and (tmp_path / "g.dot").read_text().startswith("digraph")
    assert ("Graphviz's dot is not installed: apt-get install graphviz, then: dot -Tpng %s -o %s"
            % (tmp_path / "g.dot", png)) in out.decode(), out

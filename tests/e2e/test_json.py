# SPDX-License-Identifier: GPL-3.0-or-later
"""--json: one JSON object per command, on one line, with the documented keys."""
import json

from conftest import assert_free

KEYS = {"command", "ok", "result", "errors", "warnings", "notes"}

# (command, whether it succeeds)
COMMANDS = [
    ("pystack all", True),
    ("bt all", True),
    ("bt", True),
    ("info threads", True),
    ("info memory", True),
    ("info maps", True),
    ("info interp", True),
    ("x $sp 16", True),
    ("disas", True),
    ("help", True),
    ("help info", True),
    ("continue 100ms", True),
    ("x 0", False),
    ("bogus", False),
    ("pystack", True),
]


def test_json_output(python, target, pyleakdb):
    t = target("counter.py", python)
    args = ["--batch", "--json", "-p", t.pid]
    for c, _ in COMMANDS:
        args += ["-ex", c]
    if python.version >= (3, 11):
        args += ["-ex", "x Py_Version 4"]
    r = pyleakdb(*args)
    assert r.returncode == 1, r  # 'x 0' and 'bogus' fail
    assert r.err == "", "with --json, diagnostics belong in the JSON: %r" % r.err

    lines = r.out.split("\n")
    assert lines[-1] == "", r
    objs = []
    for line in lines[:-1]:
        o = json.loads(line)  # each line is one complete JSON object
        assert isinstance(o, dict), line
        assert set(o) == KEYS, line
        assert isinstance(o["command"], str) and isinstance(o["ok"], bool), line
        assert isinstance(o["result"], dict), line
        for k in ("errors", "warnings", "notes"):
            assert isinstance(o[k], list) and all(isinstance(x, str) for x in o[k]), line
        if o["ok"]:
            assert o["errors"] == [], line
        else:
            assert o["errors"], "a failed command must say why in 'errors': %s" % line
        objs.append(o)

    expected = [("attach %d" % t.pid, True)] + COMMANDS
    if python.version >= (3, 11):
        expected.append(("x Py_Version 4", True))
    expected.append(("quit", True))
    assert [(o["command"], o["ok"]) for o in objs] == expected, r

    by = dict((o["command"], o) for o in objs)
    attach = by["attach %d" % t.pid]["result"]
    assert attach["pid"] == t.pid and attach["python"] == "%d.%d.%d" % python.version
    assert attach["threads"] == 1
    xo = by["x 0"]
    assert xo["result"] == {} and len(xo["errors"]) == 1, xo
    assert "0" in xo["errors"][0] and "not mapped" in xo["errors"][0], xo
    assert by["bogus"]["errors"] == ['undefined command: "bogus"; try "help"'], by["bogus"]
    assert by["continue 100ms"]["result"]["stopped"] == "time", by["continue 100ms"]
    threads = by["pystack all"]["result"]["threads"]
    assert len(threads) == 1 and threads[0]["tid"] == t.pid, threads
    assert [f["function"] for f in threads[0]["frames"]] == ["main", "<module>"], threads
    assert by["x $sp 16"]["result"]["length"] == 16, by["x $sp 16"]
    assert by["disas"]["result"]["instructions"], by["disas"]
    assert by["quit"]["result"] == {"detached": t.pid}, by["quit"]
    if python.version >= (3, 11):
        # the interpreter's own version word, read from its memory
        hexv = by["x Py_Version 4"]["result"]["lines"][0]["hex"][:8]
        major, minor, micro = python.version
        assert int.from_bytes(bytes.fromhex(hexv), "little") == \
            (major << 24) | (minor << 16) | (micro << 8) | 0xf0, by["x Py_Version 4"]
    assert_free(t.pid)


def test_json_human_agree(python, target, pyleakdb):
    """The human view is made from the same data as the JSON one."""
    t = target("blocking.py", python)
    t.wait_threads(3)
    rj = pyleakdb("--batch", "--json", "-p", t.pid, "-ex", "pystack all")
    rh = pyleakdb("--batch", "-p", t.pid, "-ex", "pystack all")
    assert rj.returncode == 0 and rh.returncode == 0, (rj, rh)
    threads = rj.command("pystack all")["result"]["threads"]
    assert len(threads) == 3
    for th in threads:
        assert ("Thread %d (" % th["tid"]) in rh.out, rh
        for f in th["frames"]:
            assert "    %s (%s:%d)\n" % (f["function"], f["file"], f["line"]) in rh.out, (f, rh)

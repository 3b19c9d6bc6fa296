# SPDX-License-Identifier: GPL-3.0-or-later
"""Python thread names: threading's Thread.name, read out of the stopped
target's memory (sys.modules['threading']._active and each Thread's _name),
shown by `info threads`, `pystack` and `bt`."""
import pytest

from conftest import thread_ids

# PY_THREAD_NAME_CHARS in include/pyframes.h: a longer name is cut to this
# many characters and ends in "...".
NAME_CHARS = 64
COMMANDS = ("info threads", "pystack all", "bt all")

def shown_name(name):
    return name if len(name) <= NAME_CHARS else name[:NAME_CHARS] + "..."


def start(python, target):
    t = target("thread_names_target.py", python)
    # the registered threads and the one threading does not know; the
    # dumper thread has gone
    t.wait_threads(len(t.ready["threads"]) + len(t.ready["unnamed"]))
    return t


def run_json(pyleakdb, pid):
    """{command: {tid: thread}} for COMMANDS, run in one JSON batch; no
    command may fail or warn."""
    args = ["--batch", "--json", "-p", pid]
    for c in COMMANDS:
        args += ["-ex", c]
    r = pyleakdb(*args)
    assert r.returncode == 0, r
    out = {}
    for c in COMMANDS:
        o = r.command(c)
        assert o["ok"] is True, o
        assert not o.get("errors") and not o.get("warnings"), o
        out[c] = dict((x["tid"], x) for x in o["result"]["threads"])
    return r, out


def test_names_leave_output_sound(python, target, pyleakdb):
    """Whatever the names, every command works, shows every thread, keeps
    the main thread's name and prints no terminal control raw."""
    t = start(python, target)
    ready = t.ready
    r, out = run_json(pyleakdb, t.pid)
    want = sorted([x["native_id"] for x in ready["threads"]] + ready["unnamed"])
    assert want == thread_ids(t.pid)
    for c in COMMANDS:
        assert sorted(out[c]) == want, (c, r)
    assert b"\x1b" not in r.stdout_bytes and b"\x07" not in r.stdout_bytes, r
    main = [x for x in ready["threads"] if x["is_main"]][0]
    for c in COMMANDS:
        assert out[c][main["native_id"]].get("python_name") == "MainThread", (c, r)

    args = ["--batch", "-p", t.pid]
    for c in COMMANDS:
        args += ["-ex", c]
    h = pyleakdb(*args)
    assert h.returncode == 0, h
    assert b"\x1b" not in h.stdout_bytes and b"\x07" not in h.stdout_bytes, h
    assert b"\x1b" not in h.stderr_bytes and b"\x07" not in h.stderr_bytes, h


def test_names_in_json(python, target, pyleakdb):
    """Each thread threading knows is shown with its name, exactly (cut
    when long), by every command; the others with none."""
    t = start(python, target)
    ready = t.ready
    names = [x["name"] for x in ready["threads"]]
    # the target's own view: the names the test is about are there
    for n in ("worker-1", "sync-worker", "\u540d\u524d-unicode", "\x1b[31mred\x07",
              "subclassed", "renamed", "vars-only", "in-a-dict", "MainThread"):
        assert n in names, names
    assert any(len(n) > NAME_CHARS for n in names), names

    r, out = run_json(pyleakdb, t.pid)
    problems = []
    for c in COMMANDS:
        for x in ready["threads"]:
            got = out[c][x["native_id"]].get("python_name")
            if got != shown_name(x["name"]):
                problems.append("%s: thread %d named %r shown as %r"
                                % (c, x["native_id"], x["name"], got))
        for tid in ready["unnamed"]:
            got = out[c][tid].get("python_name")
            if got is not None:
                problems.append("%s: thread %d unknown to threading shown as %r"
                                % (c, tid, got))
    assert not problems, "\n".join(problems) + "\n%r" % r


def test_names_in_human_table(python, target, pyleakdb):
    """`info threads` for humans: a row per thread, with its name."""
    t = start(python, target)
    r = pyleakdb("--batch", "-p", t.pid, "-ex", "info threads")
    assert r.returncode == 0, r
    rows = {}
    for line in r.out.splitlines():
        f = line.lstrip("* ").split()
        if f and f[0].isdigit():
            rows[int(f[0])] = line
    for x in t.ready["threads"]:
        if x["name"] in ("worker-1", "sync-worker", "renamed", "vars-only", "in-a-dict",
                         "subclassed"):
            assert " %s " % x["name"] in rows[x["native_id"]], (x["name"], r)
        if x["name"] == "\x1b[31mred\x07":
            # escaped: the letters are there, the controls are not
            assert "[31mred" in rows[x["native_id"]], r


# ----- threading's state hostile or absent: names unknown, nothing else -------

# see tests/e2e/targets/thread_names_target.py
BAD_MODES = ("hostile", "no-active", "not-a-module", "no-threading")


def start_mode(python, target, mode):
    t = target("thread_names_target.py", python, mode)
    t.wait_threads(len(t.ready["threads"]))
    return t


@pytest.mark.parametrize("mode", BAD_MODES)
def test_unreadable_names_are_no_error(python, target, pyleakdb, mode):
    """_name not a str, _active keys that are not small ints, values with
    no dict, 50000 junk entries after the real ones, _active not a dict, threading not a
    module or not imported: every command still works, shows every
    thread, and says nothing about names."""
    t = start_mode(python, target, mode)
    ready = t.ready
    r, out = run_json(pyleakdb, t.pid)
    want = sorted(x["native_id"] for x in ready["threads"])
    assert want == thread_ids(t.pid)
    for c in COMMANDS:
        assert sorted(out[c]) == want, (c, r)
    assert "name" not in r.err.lower(), r
    main = [x for x in ready["threads"] if x["is_main"]][0]
    for c in COMMANDS:
        assert out[c][main["native_id"]].get("python_name") == "MainThread", (c, r)


@pytest.mark.parametrize("mode", BAD_MODES)
def test_unreadable_names_are_unknown(python, target, pyleakdb, mode):
    """The threads whose names do not check out are shown unnamed, the
    others named."""
    t = start_mode(python, target, mode)
    r, out = run_json(pyleakdb, t.pid)
    problems = []
    for c in COMMANDS:
        for x in t.ready["threads"]:
            got = out[c][x["native_id"]].get("python_name")
            if got != x["expect"]:
                problems.append("%s: thread %d shown as %r, expected %r"
                                % (c, x["native_id"], got, x["expect"]))
    assert not problems, "\n".join(problems) + "\n%r" % r

# SPDX-License-Identifier: GPL-3.0-or-later
"""Attach, detach, run, continue, exit status, and how the target ends up."""
import json
import os
import re
import signal
import subprocess
import time

import pytest

from conftest import (TARGETS, LineReader, PYLEAKDB_TIMEOUT, assert_free, is_alive,
                      kill_and_reap, popen_pyleakdb, proc_status, thread_states,
                      wait_for)


def _first_line_loop():
    with open(os.path.join(TARGETS, "first_line.py")) as f:
        lines = f.read().split("\n")
    sleep = [i for i, x in enumerate(lines, 1) if x.endswith("# LOOP")]
    assert len(sleep) == 1 and lines[sleep[0] - 2] == "while True:"
    # the sleep, or the 'while' line when caught on the jump back
    return (sleep[0] - 1, sleep[0])


FIRST_LINE_LOOP = _first_line_loop()


def assert_counting(t, more=5, timeout=10):
    """The counter target printed 0, 1, 2... with no gap and no repeat, and
    prints `more` numbers beyond what it has printed now."""
    start = len(t.lines())
    wait_for(lambda: len(t.lines()) >= start + more, timeout,
             "the target to print %d more numbers (it printed %d)" % (more, start))
    lines = t.lines()
    assert lines == [str(i) for i in range(len(lines))], \
        "the target's output is not contiguous: %r" % lines
    assert t.errors() == "", t.errors()
    assert t.popen.poll() is None


def assert_gone(pid, when):
    """A process pyleakdb started ('run') and killed is dead and reaped (by
    pyleakdb, its parent) once pyleakdb has exited."""
    st = proc_status(pid)
    if st is None:
        return
    state, ppid = st["State"], st["PPid"]
    if is_alive(pid):
        os.kill(pid, signal.SIGKILL)
    pytest.fail("process %d started by 'run' still exists after %s: State %s, PPid %s "
                "(pyleakdb said it killed it, but did not wait for it to die and reap it)"
                % (pid, when, state, ppid))


def start_background(pyleakdb, spawned, *args):
    p = popen_pyleakdb([pyleakdb.bin] + [str(a) for a in args], stdin=subprocess.DEVNULL,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=pyleakdb.env)
    spawned.append(p)
    return p


def wait_exit(p, timeout=PYLEAKDB_TIMEOUT):
    try:
        return p.wait(timeout)
    except subprocess.TimeoutExpired:
        kill_and_reap(p)
        pytest.fail("pyleakdb did not exit within %ss" % timeout)


# ----- 3. detach ------------------------------------------------------------------

def test_detach_leaves_output_untouched(python, target, pyleakdb):
    t = target("counter.py", python)
    loop, call = t.ready["loop_lines"], t.ready["main_call_line"]
    wait_for(lambda: len(t.lines()) >= 3, 10, "3 numbers")
    cmds = [
        ["-ex", "bt", "-ex", "pystack", "-ex", "detach"],
        ["-ex", "pystack all", "-ex", "info threads", "-ex", "info memory", "-ex", "detach"],
        ["-ex", "x $sp 32", "-ex", "disas", "-ex", "bt all"],  # detach at the end of the batch
    ]
    for i, more in enumerate(cmds):
        r = pyleakdb("--batch", "-p", t.pid, *more)
        assert r.returncode == 0, r
        assert "error" not in r.err, r
        assert "Detached from process %d." % t.pid in r.out, r
        assert_free(t.pid)
        assert_counting(t, more=3)
        if i == 0:
            m = re.search(r"^    main \((.*):(\d+)\)\n    <module> \((.*):(\d+)\)$", r.out, re.M)
            assert m, r
            assert m.group(1) == m.group(3) == os.path.join(TARGETS, "counter.py")
            assert int(m.group(2)) in loop and int(m.group(4)) == call, r
    states = thread_states(t.pid)
    assert len(states) == 1 and list(states.values())[0][0] in "SR", states


# ----- 4. run ---------------------------------------------------------------------

def test_run_stops_before_first_line_batch(python, pyleakdb, tmp_path):
    flag = tmp_path / "flag"
    r = pyleakdb("--batch", "-ex", "info threads", "-ex", "continue 1s", "-ex", "pystack",
                 "run", "--", python.path, os.path.join(TARGETS, "first_line.py"), flag, "--say")
    m = re.search(r"^Started process (\d+) \(Python ([\d.]+), 1 thread\)", r.out, re.M)
    assert m, r
    pid = int(m.group(1))
    st = proc_status(pid)  # looked at now, asserted last
    left = (st["State"], st["PPid"]) if st else None
    if is_alive(pid):
        os.kill(pid, signal.SIGKILL)
    assert r.returncode == 0, r
    assert m.group(2) == "%d.%d.%d" % python.version
    out = r.out
    table = out.find("INNERMOST PYTHON FRAME")
    ran = out.find("FIRST LINE RAN")
    stopped = out.find("stopped (time is up)")
    # its first line ran during 'continue 1s', not before: the program's
    # output comes after the table printed at the stop
    assert 0 <= table < ran < stopped, r
    assert flag.exists()
    # in its loop
    m = re.search(r"^    <module> \(%s:(\d+)\)$" % re.escape(os.path.join(TARGETS, "first_line.py")),
                  out, re.M)
    assert m and int(m.group(1)) in FIRST_LINE_LOOP, r
    assert "Killed process %d." % pid in out, r
    assert left is None, (
        "process %d started by 'run' still exists after the end of the batch: State %s, "
        "PPid %s (pyleakdb said it killed it, but did not wait for it to die and reap it)"
        % ((pid,) + left))


def test_run_stops_before_first_line_json(python, json_session, tmp_path, pid_guard):
    flag = tmp_path / "flag"
    script = os.path.join(TARGETS, "first_line.py")
    s = json_session("run", "--", python.path, script, flag)
    o = s.read()
    assert o["ok"] is True, o
    assert o["result"]["event"] == "started", o
    pid = o["result"]["pid"]
    pid_guard(pid)
    assert o["result"]["python"] == "%d.%d.%d" % python.version
    assert is_alive(pid)
    states = thread_states(pid)
    assert set(states) == {pid} and states[pid][0] == "t", states  # held by pyleakdb
    assert not flag.exists(), "the program's first line ran before 'continue'"

    o = s.cmd("info threads")
    assert o["ok"] is True, o
    assert [x["tid"] for x in o["result"]["threads"]] == [pid], o
    o = s.cmd("pystack")
    assert o["ok"] is True, o
    assert not [f for f in o["result"]["threads"][0]["frames"] if f["file"] == script], o
    assert not flag.exists(), "the program's first line ran before 'continue'"

    o = s.cmd("continue 500ms")
    assert o["ok"] is True, o
    assert o["result"]["stopped"] == "time", o
    assert flag.exists(), "the program did not run during 'continue 500ms'"
    o = s.cmd("pystack")
    assert o["ok"] is True, o
    frames = o["result"]["threads"][0]["frames"]
    assert [(f["function"], f["file"]) for f in frames] == [("<module>", script)], o
    assert frames[0]["line"] in FIRST_LINE_LOOP, o

    o = s.cmd("quit")
    assert o["ok"] is True and o["result"].get("killed") == pid, o
    assert s.close() == 0
    assert_gone(pid, "'quit' and the exit of pyleakdb")


# ----- 5. --batch exit status -------------------------------------------------------

def test_batch_exit_status(python, target, pyleakdb, tmp_path):
    t = target("counter.py", python)
    r = pyleakdb("--batch", "-p", t.pid, "-ex", "pystack all", "-ex", "info threads")
    assert r.returncode == 0, r
    assert r.err == "", r
    assert "<module>" in r.out, r
    assert_free(t.pid)
    assert_counting(t, more=2)

    r = pyleakdb("--batch", "-p", t.pid, "-ex", "bogus", "-ex", "pystack")
    assert r.returncode == 1, r
    assert 'undefined command: "bogus"' in r.err, r
    assert "<module>" in r.out, r  # the batch went on after the failure
    assert_free(t.pid)
    assert_counting(t, more=2)

    good = tmp_path / "good.cmds"
    good.write_text("# a comment\npystack\n\n   # another\ninfo threads\n")
    bad = tmp_path / "bad.cmds"
    bad.write_text("pystack\nx 0\n")
    r = pyleakdb("--batch", "-p", t.pid, "-x", good)
    assert r.returncode == 0, r
    r = pyleakdb("--batch", "--json", "-p", t.pid, "-x", bad)
    assert r.returncode == 1, r
    assert [o["ok"] for o in r.json_lines()] == [True, True, False, True], r
    assert_free(t.pid)
    assert_counting(t, more=2)


# ----- 9. the target ends while attached ---------------------------------------------

def test_target_exits_under_continue(python, target, pyleakdb, spawned, tmp_path):
    go = tmp_path / "go"
    t = target("exits.py", python, go)
    p = start_background(pyleakdb, spawned, "--batch", "-p", t.pid, "-ex", "continue")
    reader = LineReader(p.stdout)
    reader.read_until("Continuing.", PYLEAKDB_TIMEOUT)
    tmp = tmp_path / "go.tmp"
    tmp.write_text("7\n")
    os.rename(str(tmp), str(go))
    assert t.popen.wait(PYLEAKDB_TIMEOUT) == 7
    rc = wait_exit(p)
    out = reader.seen.decode() + p.stdout.read().decode()
    assert "Process %d exited with status 7." % t.pid in out, out
    assert rc == 0, (rc, out, p.stderr.read())


def test_target_killed_under_continue(python, target, pyleakdb, spawned, tmp_path):
    t = target("exits.py", python, tmp_path / "never")
    p = start_background(pyleakdb, spawned, "--batch", "--json", "-p", t.pid, "-ex", "continue")
    # continuing: traced by pyleakdb, and no thread stopped
    wait_for(lambda: all(s[1] == p.pid and s[0] != "t" for s in thread_states(t.pid).values())
             and thread_states(t.pid), PYLEAKDB_TIMEOUT, "the target to run under pyleakdb")
    time.sleep(0.1)
    os.kill(t.pid, signal.SIGKILL)
    assert t.popen.wait(PYLEAKDB_TIMEOUT) == -signal.SIGKILL
    rc = wait_exit(p)
    out = p.stdout.read().decode()
    objs = [json.loads(line) for line in out.splitlines()]
    cont = [o for o in objs if o["command"] == "continue"]
    assert len(cont) == 1, out
    res = cont[0]["result"]
    assert cont[0]["ok"] is True, out
    assert res.get("stopped") == "exited" and res.get("pid") == t.pid, out
    assert "signal 9" in res.get("how", ""), out
    assert rc == 0, (rc, out)


# ----- 11. SIGTERM to pyleakdb ---------------------------------------------------------

def test_sigterm_while_continuing(python, target, pyleakdb, spawned):
    t = target("counter.py", python)
    p = start_background(pyleakdb, spawned, "--batch", "-p", t.pid, "-ex", "continue")
    LineReader(p.stdout).read_until("Continuing.", PYLEAKDB_TIMEOUT)
    wait_for(lambda: all(s[1] == p.pid for s in thread_states(t.pid).values()), 10,
             "the target to be traced by pyleakdb")
    before = len(t.lines())
    wait_for(lambda: len(t.lines()) > before + 2, 10, "the target to run under 'continue'")
    os.kill(p.pid, signal.SIGTERM)
    wait_exit(p)
    assert_free(t.pid)
    assert_counting(t, more=3)


def test_sigterm_while_stopped(python, target, json_session):
    t = target("counter.py", python)
    s = json_session("-p", t.pid)
    o = s.read()
    assert o["ok"] is True, o
    states = thread_states(t.pid)
    assert all(st == ("t", s.popen.pid) for st in states.values()), states
    os.kill(s.popen.pid, signal.SIGTERM)
    try:
        s.popen.wait(PYLEAKDB_TIMEOUT)
    except subprocess.TimeoutExpired:
        pytest.fail("pyleakdb did not exit on SIGTERM")
    assert_free(t.pid)
    assert_counting(t, more=3)

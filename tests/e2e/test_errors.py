# SPDX-License-Identifier: GPL-3.0-or-later
"""Bad input: wrong PIDs, processes that cannot be debugged, wrong arguments.
Each is refused with one clear line, and leaves every process as it was."""
import os
import subprocess

import pytest

from conftest import (TARGETS, assert_free, kill_and_reap, proc_status,
                      thread_states, wait_for)


def error_lines(r):
    return [x for x in r.err.splitlines() if x.strip()]


def free_pid():
    with open("/proc/sys/kernel/pid_max") as f:
        pid_max = int(f.read())
    for pid in range(pid_max - 1, 1, -1):
        if not os.path.exists("/proc/%d" % pid):
            return pid
    pytest.skip("no free PID")


@pytest.mark.parametrize("form", ["-p", "attach"])
def test_attach_no_such_pid(pyleakdb, form):
    pid = free_pid()
    r = pyleakdb("--batch", form, pid)
    assert r.returncode == 1, r
    assert error_lines(r) == ["error: no process with PID %d; check the PID with 'ps' or "
                              "'pgrep'" % pid], r
    assert r.out == "", r


def test_attach_not_python(pyleakdb, spawned):
    sleep = subprocess.Popen(["sleep", "100"], stdin=subprocess.DEVNULL, start_new_session=True)
    spawned.append(sleep)
    wait_for(lambda: (proc_status(sleep.pid) or {}).get("Name") == "sleep", 10, "sleep to run")
    r = pyleakdb("--batch", "-p", sleep.pid, "-ex", "pystack")
    assert r.returncode == 1, r
    errs = error_lines(r)
    assert len(errs) == 1, r
    assert "process %d (sleep) is not a Python process" % sleep.pid in errs[0], r
    assert "/usr/bin/sleep" in errs[0], r
    # untouched: still there, sleeping, not traced
    assert sleep.poll() is None
    assert thread_states(sleep.pid) == {sleep.pid: ("S", 0)}


def test_cli_usage_errors(pyleakdb):
    for args, msg in [(["-p", "0"], "not a process id: '0'"),
                      (["-p", "abc"], "not a process id: 'abc'"),
                      (["--bogus"], "unknown option '--bogus'"),
                      (["attach"], "attach needs a PID"),
                      (["run"], "run needs a program to run"),
                      (["1234"], "unexpected argument '1234' (did you mean 'attach 1234'?)")]:
        r = pyleakdb("--batch", *args)
        assert r.returncode == 2, (args, r)
        assert error_lines(r)[0] == "pyleakdb: " + msg, (args, r)
        assert "Try 'pyleakdb --help'" in r.err, (args, r)


def test_attach_already_traced(python, target, pyleakdb, spawned, tmp_path):
    t = target("counter.py", python)
    ready = tmp_path / "tracer.json"
    tracer = subprocess.Popen(["/usr/bin/python3", os.path.join(TARGETS, "ptrace_seize.py"),
                               str(ready), str(t.pid)], stdin=subprocess.DEVNULL,
                              start_new_session=True)
    spawned.append(tracer)
    wait_for(ready.exists, 20, "the tracer helper to seize the target")
    assert "error" not in ready.read_text(), ready.read_text()
    assert all(s[1] == tracer.pid for s in thread_states(t.pid).values())

    r = pyleakdb("--batch", "-p", t.pid, "-ex", "pystack")
    assert r.returncode == 1, r
    errs = error_lines(r)
    assert errs and "already traced" in errs[0], r
    assert "PID %d" % tracer.pid in errs[0], r

    rj = pyleakdb("--batch", "--json", "-p", t.pid)
    assert rj.returncode == 1, rj
    o = rj.command("attach %d" % t.pid)
    assert o["ok"] is False and "already traced" in o["errors"][0], o

    # the other tracer still has it, and it still runs
    states = thread_states(t.pid)
    assert all(s[1] == tracer.pid and s[0] in "SR" for s in states.values()), states
    kill_and_reap(tracer)
    wait_for(lambda: all(s[1] == 0 for s in thread_states(t.pid).values()), 10,
             "the target to be untraced once the tracer helper is gone")
    n = len(t.lines())
    wait_for(lambda: len(t.lines()) > n + 2, 10, "the target to keep counting")

    # said once, not twice
    assert len(errs) == 1, "the error is printed %d times: %r" % (len(errs), errs)
    assert len(o["errors"]) == 1, "the error is in 'errors' %d times: %r" % (
        len(o["errors"]), o)


def test_attach_python2_refused(python2, target, pyleakdb):
    t = target("sleeper.py", python2)
    r = pyleakdb("--batch", "-p", t.pid, "-ex", "pystack")
    assert r.returncode == 1, r
    errs = error_lines(r)
    assert len(errs) == 1, r
    assert "Python 2" in errs[0] and "not support" in errs[0], r
    assert "process %d" % t.pid in errs[0], r
    assert r.out == "", r
    assert t.popen.poll() is None
    assert thread_states(t.pid) == {t.pid: ("S", 0)}


# (command, its usage line) -- the brief's three, and pystack's twin of bt
BAD_ARGS = [
    ("x", "usage: x ADDR [N]"),
    ("bt nonsense", "usage: bt [all|TID]"),
    ("disas 0 0", "usage: disas [ADDR|SYMBOL] [N]"),
    ("pystack nonsense", "usage: pystack [all|TID]"),
]


@pytest.mark.parametrize("cmd,usage", BAD_ARGS, ids=[c for c, _ in BAD_ARGS])
def test_bad_arguments(python, target, pyleakdb, cmd, usage):
    t = target("sleeper.py", python)
    r = pyleakdb("--batch", "-p", t.pid, "-ex", cmd)
    assert r.returncode == 1, r
    errs = error_lines(r)
    assert len(errs) == 1 and errs[0].startswith("error: "), r
    assert errs[0].endswith("; " + usage), "%r: the error should end with the usage (%r)" % (
        errs[0], usage)
    rj = pyleakdb("--batch", "--json", "-p", t.pid, "-ex", cmd)
    o = rj.command(cmd)
    assert o["ok"] is False and o["result"] == {}, o
    assert o["errors"] == [errs[0][len("error: "):]], o
    assert_free(t.pid)


@pytest.mark.parametrize("cmd,msg", [
    ("x 0x10 zz", 'not a byte count: "zz"; usage: x ADDR [N]'),
    ("x $sp -1", 'not a byte count: "-1"; usage: x ADDR [N]'),
    ("continue nonsense", 'not a duration: "nonsense" (e.g. 2s, 500ms); usage: continue [DURATION]'),
    ("continue 0s", 'not a duration: "0s" (e.g. 2s, 500ms); usage: continue [DURATION]'),
    ("pystack 1 2", "too many arguments for pystack; usage: pystack [all|TID]"),
    ("detach now", "too many arguments for detach; usage: detach"),
    ("info bogus", 'undefined subcommand: "bogus"; try "help"'),
    ("bt 1", "no thread 1 in process {pid}; see 'info threads'"),
    ("kill", "process {pid} was attached to, not started here: pyleakdb does not kill it; "
             "use 'detach'"),
])
def test_more_bad_arguments(debian_python, target, pyleakdb, cmd, msg):
    t = target("sleeper.py", debian_python)
    r = pyleakdb("--batch", "-p", t.pid, "-ex", cmd, "-ex", "pystack")
    assert r.returncode == 1, r
    assert error_lines(r) == ["error: " + msg.format(pid=t.pid)], r
    assert "<module>" in r.out, r  # the target is still fine to read
    assert_free(t.pid)

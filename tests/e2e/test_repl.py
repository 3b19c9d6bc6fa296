# SPDX-License-Identifier: GPL-3.0-or-later
"""The interactive prompt, through a pseudo-terminal."""
import re
import time

import pytest

from conftest import assert_free, thread_states, wait_for

pexpect = pytest.importorskip("pexpect")

COMMANDS = ["attach", "run", "continue", "detach", "kill", "quit", "bt", "pystack", "x",
            "disas", "info", "help"]


def counting(t, more=3, timeout=10):
    n = len(t.lines())
    wait_for(lambda: len(t.lines()) >= n + more, timeout,
             "the target to print %d more numbers" % more)
    lines = t.lines()
    assert lines == [str(i) for i in range(len(lines))], lines


def all_stopped_by(pid, tracer):
    states = thread_states(pid)
    return states and all(s == ("t", tracer) for s in states.values())


def test_repl_commands_and_completion(python, target, repl, tmp_path):
    t = target("counter.py", python)
    r = repl("-p", t.pid)
    banner = r.prompt()
    assert "Attached to process %d (Python %d.%d.%d" % ((t.pid,) + python.version) in banner
    assert all_stopped_by(t.pid, r.pid), thread_states(t.pid)

    out = r.run("help")
    for c in COMMANDS:
        assert re.search(r"^  %s\b.* -- " % re.escape(c), out, re.M), (c, out)

    # an unambiguous abbreviation runs the command
    out = r.run("pys")
    assert re.search(r"^Thread %d \(python3\) \"MainThread\"" % t.pid, out, re.M), out
    assert re.search(r"^    main \(.*counter\.py:\d+\)$", out, re.M), out
    assert re.search(r"^    <module> \(.*counter\.py:\d+\)$", out, re.M), out

    # an ambiguous one says which commands it could be, and runs none
    out = r.run("d")
    assert "ambiguous command: d, could be: delete, detach, disable, disas" in out, out
    assert "Detached" not in out
    out = r.run("in")
    assert "ambiguous command: in" not in out  # 'info' only: it asks for a subcommand
    assert '"info" must be followed by the name of a subcommand' in out, out

    # Tab completes a command name...
    r.c.send("pys\t")
    r.c.expect_exact("pystack")
    r.c.send("\r")
    out = r.prompt()
    assert "Thread %d" % t.pid in out and "<module>" in out, out
    # ... and a subcommand
    r.c.send("info th\t")
    r.c.expect_exact("info threads")
    r.c.send("\r")
    out = r.prompt()
    assert "INNERMOST PYTHON FRAME" in out, out
    assert re.search(r"^\*? *%d +python3 " % t.pid, out, re.M), out

    # Ctrl-C at the prompt abandons the line being typed
    r.c.send("detach")
    time.sleep(0.1)
    r.c.send("\x03")
    r.prompt()
    out = r.run("info threads")
    assert "Detached" not in out and "INNERMOST" in out, out
    assert all_stopped_by(t.pid, r.pid), thread_states(t.pid)

    # Ctrl-D quits: detaches, and the target runs on
    r.c.sendeof()
    r.c.expect_exact("Detached from process %d." % t.pid)
    r.c.expect(pexpect.EOF)
    r.c.close()
    assert r.c.exitstatus == 0, (r.c.exitstatus, r.c.signalstatus)
    assert_free(t.pid)
    counting(t)
    hist = (tmp_path / ".pyleakdb_history").read_text().split("\n")
    for line in ("help", "pys", "d", "pystack ", "info threads "):
        assert line in hist, hist


def test_repl_continue_interrupt_repeat(python, target, repl):
    t = target("counter.py", python)
    r = repl("-q", "-p", t.pid)
    r.prompt()
    assert all_stopped_by(t.pid, r.pid)

    # continue: it runs (traced), until Ctrl-C
    r.c.sendline("continue")
    r.c.expect_exact("Continuing.")
    counting(t)
    states = thread_states(t.pid)
    assert all(s[1] == r.pid and s[0] != "t" for s in states.values()), states
    r.c.send("\x03")
    out = r.prompt()
    assert "Process %d stopped (Ctrl-C)." % t.pid in out, out
    assert re.search(r"thread %d MainThread at .*counter\.py:\d+ in main" % t.pid, out), out
    assert all_stopped_by(t.pid, r.pid), thread_states(t.pid)
    n = len(t.lines())
    time.sleep(0.3)
    assert len(t.lines()) == n, "the target ran while stopped at the prompt"

    # continue with a duration, then Enter repeats it
    out = r.run("continue 0.2s")
    assert "Continuing." in out and "Process %d stopped (time is up)." % t.pid in out, out
    n = len(t.lines())
    assert all_stopped_by(t.pid, r.pid)
    r.c.sendline("")
    out = r.prompt()
    assert "Continuing." in out and "stopped (time is up)" in out, out
    assert len(t.lines()) > n, "Enter after 'continue 0.2s' did not let the target run"
    assert all_stopped_by(t.pid, r.pid)

    # Enter after anything else does nothing
    out = r.run("pystack")
    assert "<module>" in out
    r.c.sendline("")
    out = r.prompt()
    assert out.strip() == "", out

    # detach: it runs, untraced, while pyleakdb is still there
    out = r.run("detach")
    assert "Detached from process %d." % t.pid in out, out
    assert_free(t.pid)
    counting(t)
    out = r.run("pystack")
    assert "no process" in out, out
    r.c.sendline("quit")
    r.c.expect(pexpect.EOF)
    r.c.close()
    assert r.c.exitstatus == 0
    assert_free(t.pid)
    counting(t)


def test_help_text(pyleakdb):
    """'help CMD' prints its documentation as lines, not with \\n in them."""
    r = pyleakdb("--batch", "-ex", "help bt", "-ex", "help disas", "-ex", "help x",
                 "-ex", "help info")
    assert r.returncode == 0, r
    assert "usage: bt [all|TID]" in r.out and "usage: disas [ADDR|SYMBOL] [N]" in r.out, r
    assert "\\n" not in r.out, "literal backslash-n in the help text:\n" + r.out
    assert "\nevaluation loop replaced by the Python frames it runs." in r.out, r

# SPDX-License-Identifier: GPL-3.0-or-later
"""pyleakdb's stacks against what the target itself says they are."""
import os
import signal
import time

from conftest import (assert_free, compare_stacks, expected_name, pystack_all,
                      thread_states, wait_for)

NWORKERS = 16

# What a thread parked in each kind of call may be shown to wait in (the
# syscall depends on the interpreter and libc: 3.6-3.10 sleep with select).
SYSCALLS = {
    "select": {"select", "pselect6", "poll", "ppoll"},
    "sleep": {"clock_nanosleep", "nanosleep", "select", "pselect6"},
    "event": {"futex", "futex_waitv"},
}


def test_sixteen_deep_threads(python, target, pyleakdb):
    t = target("threads_deep.py", python)
    t.wait_threads(NWORKERS + 1)
    expected = t.ready["threads"]
    assert len(expected) == NWORKERS + 1
    r, shown = pystack_all(pyleakdb, t.pid)

    # exactly the process's threads, no more, no less
    assert sorted(shown) == sorted(x["native_id"] for x in expected), r
    compare_stacks(expected, shown)

    # and not vacuously: the depths are the ones asked for
    by_name = dict((x["name"], x) for x in expected)
    for name, depth in t.ready["depths"].items():
        frames = shown[by_name[name]["native_id"]]["frames"]
        names = [f["function"].rsplit(".", 1)[-1] for f in frames]
        assert names[0] == "park", names
        assert names.count("step") + names.count("descend") == depth + 1, (name, names)
        assert 30 <= depth <= 100
        assert names[-1] == "_bootstrap", names
    main = [x for x in expected if x["is_main"]][0]
    assert shown[main["native_id"]].get("python_name") == "MainThread"
    assert [f["function"] for f in shown[main["native_id"]]["frames"]] == ["main", "<module>"]
    assert len(set(t.ready["depths"].values())) == NWORKERS


def test_blocking_calls(python, target, pyleakdb):
    t = target("blocking.py", python)
    t.wait_threads(3)
    expected = t.ready["threads"]
    r, shown = pystack_all(pyleakdb, t.pid, "-ex", "info threads")
    assert sorted(shown) == sorted(x["native_id"] for x in expected), r
    compare_stacks(expected, shown)

    names = dict((x["name"], x) for x in expected)
    assert set(names) == {"MainThread", "sleeper", "waiter"}
    assert expected_name(names["MainThread"]["frames"][0]) == "selector"
    assert expected_name(names["sleeper"]["frames"][0]) == "sleeper"
    # Event.wait -> Condition.wait, in threading.py
    assert names["waiter"]["frames"][0]["function"] == "wait"
    assert names["waiter"]["frames"][1]["function"] == "wait"
    assert names["waiter"]["frames"][2]["function"] == "waiter"

    info = r.command("info threads")
    assert info["ok"] is True, info
    rows = dict((x["tid"], x) for x in info["result"]["threads"])
    for name, kind in t.ready["kinds"].items():
        tid = names[name]["native_id"]
        row = rows[tid]
        assert row["state"] == "S", row
        assert row.get("syscall") in SYSCALLS[kind], (name, row)
        inner = row["innermost"]
        want = names[name]["frames"][0]
        assert (inner["function"], inner["file"], inner["line"]) == \
            (expected_name(want), want["file"], want["line"]), row
    assert rows[names["MainThread"]["native_id"]].get("python_name") == "MainThread"

    # the same in the human table
    r = pyleakdb("--batch", "-p", t.pid, "-ex", "info threads")
    assert r.returncode == 0, r
    for name, kind in t.ready["kinds"].items():
        tid = names[name]["native_id"]
        line = [x for x in r.out.splitlines() if x.split()[:1] == [str(tid)]
                or x.split()[:2] == ["*", str(tid)]]
        assert len(line) == 1, r
        assert "S (%s)" % rows[tid]["syscall"] in line[0], line


def assert_still_job_stopped(pid, nthreads):
    """Every thread back in the job-control stop, untraced.  A thread let go by
    the tracer passes through R in the kernel on its way from the tracing stop
    (t) back to the group stop (T) without running any of its own code; had it
    been resumed, it would be back in its blocking call (S)."""
    deadline = time.time() + 5
    while True:
        states = thread_states(pid)
        assert len(states) == nthreads, states
        assert not any(s[0] == "S" for s in states.values()), states
        if all(s == ("T", 0) for s in states.values()):
            return
        assert time.time() < deadline, states
        time.sleep(0.001)


def test_job_stopped_target(python, target, pyleakdb):
    """A process stopped by SIGSTOP: pyleakdb shows its stacks, and leaves it
    stopped (T) and untraced; SIGCONT then lets it run on."""
    t = target("blocking.py", python)
    t.wait_threads(3)
    os.kill(t.pid, signal.SIGSTOP)
    t.allow_job_stop = True
    wait_for(lambda: all(s[0] == "T" for s in thread_states(t.pid).values()), 10,
             "every thread in state T")

    r, shown = pystack_all(pyleakdb, t.pid)
    compare_stacks(t.ready["threads"], shown)
    attach = r.json_lines()[0]
    assert attach["ok"] is True, attach
    assert attach["result"].get("job_stopped") is True, attach

    assert_still_job_stopped(t.pid, 3)

    r = pyleakdb("--batch", "-p", t.pid, "-ex", "pystack all")
    assert r.returncode == 0, r
    assert "stopped by job control" in r.out, r
    assert_still_job_stopped(t.pid, 3)

    os.kill(t.pid, signal.SIGCONT)
    t.allow_job_stop = False
    wait_for(lambda: all(s == ("S", 0) for s in thread_states(t.pid).values()), 10,
             "every thread back to S after SIGCONT")
    assert t.popen.poll() is None
    assert_free(t.pid)


def test_hostile_names_are_escaped(python, target, pyleakdb):
    """File, function and thread names full of terminal escapes and bidi
    controls: the human output has none of them raw, the JSON has them all,
    exactly."""
    t = target("hostile.py", python)
    ready = t.ready
    tid = ready["native_id"]
    assert tid == t.pid
    assert "\x1b" in ready["evil_func"] and "\x1b" in ready["evil_file"]

    # JSON: valid, and the strings are the target's, unchanged
    r, shown = pystack_all(pyleakdb, t.pid, "-ex", "info threads", "-ex", "bt all")
    assert b"\x1b" not in r.stdout_bytes and b"\x07" not in r.stdout_bytes
    frames = shown[tid]["frames"]
    assert frames[0]["function"] == ready["evil_func"], frames[0]
    assert frames[0]["file"] == ready["evil_file"], frames[0]
    assert frames[0]["line"] == ready["frames"][0]["line"] == 2
    assert [(f["function"], f["file"], f["line"]) for f in frames] == \
        [(expected_name(f), f["file"], f["line"]) for f in ready["frames"]]
    assert shown[tid]["os_name"] == ready["evil_comm"]
    bt = r.command("bt all")
    assert bt["ok"] is True, bt
    assert any(f.get("function") == ready["evil_func"]
               for th in bt["result"]["threads"] for f in th["frames"]), bt

    # human: no raw ESC, BEL, C1 or bidi control anywhere, but their escapes
    r = pyleakdb("--batch", "-p", t.pid, "-ex", "pystack all", "-ex", "info threads",
                 "-ex", "bt all", "-ex", "bt", "-ex", "pystack")
    assert r.returncode == 0, r
    for stream in (r.stdout_bytes, r.stderr_bytes):
        for bad in (b"\x1b", b"\x07", b"\x9b", "\u202e".encode(), "\u2066".encode(),
                    "\u009b".encode()):
            assert bad not in stream, (bad, r)
    assert r.out.count("\\x1b") >= 5, r
    assert "\\x07" in r.out and "\\u202e" in r.out, r
    assert "\\x1b[31mevil\\x07\\u202e.py:2" in r.out, r
    assert "\\x1b[5m\\x07pwn" in r.out, r  # the thread's comm

# SPDX-License-Identifier: GPL-3.0-or-later
"""Fixtures of the end-to-end tests: the pyleakdb binary, the interpreters
found on this machine, target programs (tests/e2e/targets) started under
them, and pyleakdb runs that can never hang the suite.

Rules every test relies on:
  * every subprocess runs under a timeout; a pyleakdb that does not finish
    in time is killed by its PID and the test fails;
  * every process a test starts is killed by its PID and reaped at teardown;
  * at teardown, every target still alive must be neither stopped (T/t) nor
    traced (TracerPid 0): pyleakdb must never leave a process like that.
"""
import collections
import errno
import glob
import json
import os
import select
import signal
import subprocess
import time

import pytest

TOP = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TARGETS = os.path.join(TOP, "tests", "e2e", "targets")
PYLEAKDB = os.environ.get("PYLEAKDB", os.path.join(TOP, "pyleakdb"))
DEBIAN_PYTHON = "/usr/bin/python3"

# A pyleakdb command that takes longer than this is hung (the machine may be
# loaded: the limit is generous, the normal run takes well under a second).
PYLEAKDB_TIMEOUT = 30
# How long a target may take to say it is ready.
READY_TIMEOUT = 30

Interp = collections.namedtuple("Interp", "id path version debian")


# ----- interpreters -----------------------------------------------------------

def _version_of(path):
    try:
        p = subprocess.run(
            [path, "-c", "import sys; print('%d %d %d' % sys.version_info[:3])"],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if p.returncode != 0:
        return None
    try:
        return tuple(int(x) for x in p.stdout.split())
    except ValueError:
        return None


def _pyenv_root():
    try:
        p = subprocess.run(["pyenv", "root"], stdout=subprocess.PIPE,
                           stderr=subprocess.DEVNULL, timeout=20)
        root = p.stdout.decode().strip()
        if p.returncode == 0 and root and os.path.isdir(root):
            return root
    except (OSError, subprocess.TimeoutExpired):
        pass
    return "/root/.pyenv"


_interps = None
_python2 = None


def find_interpreters():
    """Debian's python3 first, then each pyenv 3.x build, oldest first."""
    global _interps, _python2
    if _interps is not None:
        return _interps
    found = []
    v = _version_of(DEBIAN_PYTHON)
    if v:
        found.append(Interp("py%d.%d-debian" % v[:2], DEBIAN_PYTHON, v, True))
    root = _pyenv_root()
    pyenv = []
    for d in glob.glob(os.path.join(root, "versions", "3.*")):
        exe = os.path.join(d, "bin", "python3")
        if not os.access(exe, os.X_OK):
            continue
        v = _version_of(exe)
        if v:
            pyenv.append(Interp("py%d.%d" % v[:2], exe, v, False))
    pyenv.sort(key=lambda i: i.version)
    ids = set()
    for i in pyenv:
        if i.id in ids:  # two builds of one minor version
            i = i._replace(id="py%d.%d.%d" % i.version)
        ids.add(i.id)
        found.append(i)
    _interps = found
    py2 = os.path.join(root, "versions", "2.7.18", "bin", "python2.7")
    if not os.access(py2, os.X_OK):
        cands = sorted(glob.glob(os.path.join(root, "versions", "2.7*", "bin", "python2.7")))
        py2 = cands[-1] if cands else None
    _python2 = py2
    return _interps


def pytest_generate_tests(metafunc):
    if "python" in metafunc.fixturenames:
        interps = find_interpreters()
        metafunc.parametrize("python", interps, ids=[i.id for i in interps])


def pytest_report_header(config):
    interps = find_interpreters()
    return ["pyleakdb: %s" % PYLEAKDB,
            "interpreters: %s" % ", ".join("%s=%s" % (i.id, i.path) for i in interps),
            "python2: %s" % (_python2 or "none")]


@pytest.fixture(scope="session")
def python2():
    find_interpreters()
    if not _python2:
        pytest.skip("no Python 2.7 interpreter (pyenv versions/2.7*) on this machine")
    return _python2


@pytest.fixture(scope="session")
def debian_python():
    for i in find_interpreters():
        if i.debian:
            return i
    pytest.skip("no %s" % DEBIAN_PYTHON)


@pytest.fixture(scope="session")
def pyleakdb_bin():
    if not (os.path.isfile(PYLEAKDB) and os.access(PYLEAKDB, os.X_OK)):
        pytest.skip("%s is not built: run 'make' first (the e2e tests do not build it)"
                    % PYLEAKDB)
    return PYLEAKDB


# ----- /proc ------------------------------------------------------------------

def proc_status(pid, tid=None):
    """The fields of /proc/PID[/task/TID]/status, or None when gone."""
    path = "/proc/%d/status" % pid if tid is None else "/proc/%d/task/%d/status" % (pid, tid)
    try:
        with open(path) as f:
            text = f.read()
    except (FileNotFoundError, ProcessLookupError):
        return None
    out = {}
    for line in text.splitlines():
        k, _, v = line.partition(":")
        out[k] = v.strip()
    return out


def thread_ids(pid):
    try:
        return sorted(int(t) for t in os.listdir("/proc/%d/task" % pid))
    except FileNotFoundError:
        return []


def thread_states(pid):
    """{tid: (state letter, TracerPid)} for every thread of pid."""
    out = {}
    for tid in thread_ids(pid):
        st = proc_status(pid, tid)
        if st:
            out[tid] = (st["State"][:1], int(st["TracerPid"]))
    return out


def is_alive(pid):
    st = proc_status(pid)
    return st is not None and st["State"][:1] not in ("Z", "X")


def start_time(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[19]
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return None


def children_of(pid):
    """[(pid, start time)] of the processes whose parent is pid."""
    kids = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % d) as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError):
            continue
        if int(fields[1]) == pid:
            kids.append((int(d), fields[19]))
    return kids


def assert_free(pid, allow_job_stop=False):
    """Every thread of pid is neither stopped by a tracer (t) nor by job
    control (T, unless allowed), and none is traced."""
    states = thread_states(pid)
    bad = dict((tid, s) for tid, s in states.items()
               if s[1] != 0 or s[0] == "t" or (s[0] == "T" and not allow_job_stop))
    assert not bad, ("process %d left stopped or traced: {tid: (state, TracerPid)} = %r"
                     % (pid, bad))


def wait_for(pred, timeout, what, interval=0.01):
    deadline = time.time() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.time() > deadline:
            pytest.fail("timed out after %ss waiting for %s" % (timeout, what))
        time.sleep(interval)


def kill_and_reap(popen, timeout=10):
    """SIGKILL a Popen by its PID (if still running) and reap it."""
    if popen.poll() is None:
        try:
            os.kill(popen.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        try:
            popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            pass


# ----- targets ----------------------------------------------------------------

class Target(object):
    def __init__(self, popen, python, script, ready_path, out_path, err_path):
        self.popen = popen
        self.pid = popen.pid
        self.python = python
        self.script = script
        self.ready_path = ready_path
        self.out_path = out_path
        self.err_path = err_path
        self.ready = None
        self.allow_job_stop = False

    def output(self):
        with open(self.out_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def errors(self):
        with open(self.err_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def lines(self):
        """Complete lines of the target's stdout."""
        text = self.output()
        return text.split("\n")[:-1]

    def wait_ready(self, timeout=READY_TIMEOUT):
        deadline = time.time() + timeout
        while not os.path.exists(self.ready_path):
            if self.popen.poll() is not None:
                pytest.fail("target %s exited with %s before it was ready; stderr:\n%s"
                            % (self.script, self.popen.returncode, self.errors()))
            if time.time() > deadline:
                pytest.fail("target %s not ready after %ss; stderr:\n%s"
                            % (self.script, timeout, self.errors()))
            time.sleep(0.01)
        with open(self.ready_path) as f:
            self.ready = json.load(f)
        if "error" in self.ready:
            pytest.fail("target %s: %s" % (self.script, self.ready["error"]))
        return self.ready

    def wait_threads(self, n, timeout=10):
        """Wait until the process has exactly n threads (the dumper gone)."""
        return wait_for(lambda: len(thread_ids(self.pid)) == n, timeout,
                        "%d threads in process %d (has %r)" % (n, self.pid, thread_ids(self.pid)))


@pytest.fixture
def target(tmp_path, request):
    """start(script, python, *args, ready=True) -> Target.

    Runs tests/e2e/targets/SCRIPT under python (an Interp or a path) with
    argv[1] = the ready file, in a session of its own, stdout and stderr to
    files.  Waits for the ready file (unless ready=False)."""
    started = []

    def start(script, python, *args, **kw):
        path = python.path if isinstance(python, Interp) else python
        n = len(started)
        ready_path = str(tmp_path / ("ready-%d.json" % n))
        out_path = str(tmp_path / ("target-%d.out" % n))
        err_path = str(tmp_path / ("target-%d.err" % n))
        with open(out_path, "wb") as out, open(err_path, "wb") as err:
            popen = subprocess.Popen(
                [path, os.path.join(TARGETS, script), ready_path] + [str(a) for a in args],
                stdin=subprocess.DEVNULL, stdout=out, stderr=err, cwd=str(tmp_path),
                start_new_session=True, env=dict(os.environ, PYTHONDONTWRITEBYTECODE="1"))
        t = Target(popen, python, script, ready_path, out_path, err_path)
        started.append(t)
        if kw.get("ready", True):
            t.wait_ready()
        return t

    yield start

    problems = []
    for t in started:
        if t.popen.poll() is None and is_alive(t.pid):
            try:
                assert_free(t.pid, allow_job_stop=t.allow_job_stop)
            except AssertionError as e:
                problems.append(str(e))
        kill_and_reap(t.popen)
    if problems:
        pytest.fail("at teardown: " + "; ".join(problems))


# ----- running pyleakdb ---------------------------------------------------------

class Result(object):
    def __init__(self, args, returncode, stdout, stderr):
        self.args = args
        self.returncode = returncode
        self.stdout_bytes = stdout
        self.stderr_bytes = stderr
        self.out = stdout.decode("utf-8", "replace")
        self.err = stderr.decode("utf-8", "replace")

    def json_lines(self):
        """Every stdout line parsed as JSON (a line that is not JSON fails)."""
        objs = []
        for line in self.out.splitlines():
            try:
                objs.append(json.loads(line))
            except ValueError as e:
                pytest.fail("pyleakdb --json printed a line that is not JSON (%s): %r"
                            % (e, line))
        return objs

    def command(self, name):
        """The JSON object of the (first) command whose text is name."""
        for o in self.json_lines():
            if o.get("command") == name:
                return o
        pytest.fail("no JSON output for command %r in:\n%s" % (name, self.out))

    def __repr__(self):
        return "<pyleakdb %r: exit %s\n--- stdout:\n%s\n--- stderr:\n%s>" % (
            self.args, self.returncode, self.out, self.err)


@pytest.fixture
def spawned():
    """A list to put Popen objects in: each is killed by PID and reaped at
    teardown (for pyleakdb runs in the background, helpers, sleep...)."""
    procs = []
    yield procs
    for p in procs:
        kill_and_reap(p)


@pytest.fixture
def pid_guard():
    """guard(pid): kill pid at teardown if it still runs (same start time):
    for processes started by pyleakdb itself ('run')."""
    pids = []

    def guard(pid):
        pids.append((pid, start_time(pid)))

    yield guard
    for pid, st in pids:
        if st is not None and start_time(pid) == st and is_alive(pid):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def popen_pyleakdb(argv, **kw):
    """Popen, tolerating a binary that is being relinked right now (a few
    seconds of ENOENT, EACCES or ETXTBSY) while someone runs 'make'."""
    deadline = time.time() + 20
    while True:
        try:
            return subprocess.Popen(argv, **kw)
        except OSError as e:
            if e.errno not in (errno.ENOENT, errno.EACCES, errno.ETXTBSY) or \
                    time.time() > deadline:
                raise
            time.sleep(0.2)


@pytest.fixture
def pyleakdb(pyleakdb_bin, tmp_path):
    """pyleakdb(*args, timeout=.., input=b"") -> Result.  A run that takes
    longer than timeout is killed by its PID and fails the test."""
    env = dict(os.environ, HOME=str(tmp_path), TERM="dumb", LC_ALL="C.UTF-8")

    def run(*args, **kw):
        timeout = kw.get("timeout", PYLEAKDB_TIMEOUT)
        argv = [pyleakdb_bin] + [str(a) for a in args]
        p = popen_pyleakdb(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, env=env, cwd=str(tmp_path))
        try:
            out, err = p.communicate(kw.get("input", b""), timeout=timeout)
        except subprocess.TimeoutExpired:
            kids = children_of(p.pid)
            os.kill(p.pid, signal.SIGKILL)
            for kid, st in kids:  # what it started with 'run'
                if start_time(kid) == st:
                    os.kill(kid, signal.SIGKILL)
            out, err = p.communicate()
            pytest.fail("pyleakdb hung (killed after %ss): %r\n--- stdout:\n%s\n--- stderr:\n%s"
                        % (timeout, argv, out.decode("utf-8", "replace"),
                           err.decode("utf-8", "replace")))
        return Result(argv, p.returncode, out, err)

    run.env = env
    run.bin = pyleakdb_bin
    return run


class LineReader(object):
    """Reads lines from a pipe with a deadline (never blocks forever)."""

    def __init__(self, f):
        self.f = f
        self.buf = b""
        self.seen = b""

    def readline(self, timeout):
        deadline = time.time() + timeout
        while b"\n" not in self.buf:
            left = deadline - time.time()
            if left <= 0:
                return None
            r, _, _ = select.select([self.f], [], [], left)
            if r:
                chunk = os.read(self.f.fileno(), 65536)
                if not chunk:
                    line, self.buf = self.buf, b""
                    return line.decode("utf-8", "replace") if line else ""
                self.buf += chunk
                self.seen += chunk
        line, _, self.buf = self.buf.partition(b"\n")
        return line.decode("utf-8", "replace") + "\n"

    def read_until(self, needle, timeout):
        """Lines up to and including the first that contains needle."""
        deadline = time.time() + timeout
        got = []
        while True:
            line = self.readline(max(0.0, deadline - time.time()))
            if line is None or line == "":
                pytest.fail("pyleakdb output never said %r (%s); output so far:\n%s"
                            % (needle, "timeout" if line is None else "EOF",
                               self.seen.decode("utf-8", "replace")))
            got.append(line)
            if needle in line:
                return got


class JsonSession(object):
    """pyleakdb --json with commands piped in: one JSON line per command."""

    def __init__(self, popen):
        self.popen = popen
        self.reader = LineReader(popen.stdout)

    def read(self, timeout=PYLEAKDB_TIMEOUT):
        line = self.reader.readline(timeout)
        if line is None:
            pytest.fail("pyleakdb --json said nothing within %ss" % timeout)
        if line == "":
            pytest.fail("pyleakdb --json ended (exit %s) while a reply was expected"
                        % self.popen.wait(10))
        try:
            return json.loads(line)
        except ValueError:
            pytest.fail("not JSON: %r" % line)

    def cmd(self, line, timeout=PYLEAKDB_TIMEOUT):
        self.popen.stdin.write(line.encode() + b"\n")
        self.popen.stdin.flush()
        o = self.read(timeout)
        assert o["command"] == line, o
        return o

    def close(self, timeout=PYLEAKDB_TIMEOUT):
        """EOF on stdin; the exit status."""
        self.popen.stdin.close()
        try:
            return self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            pytest.fail("pyleakdb did not exit within %ss of the end of its input" % timeout)


@pytest.fixture
def json_session(pyleakdb, spawned):
    """json_session(*args) -> JsonSession of 'pyleakdb --json ARGS' reading
    commands from a pipe."""

    def start(*args):
        argv = [pyleakdb.bin, "--json"] + [str(a) for a in args]
        p = popen_pyleakdb(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, env=pyleakdb.env)
        spawned.append(p)
        return JsonSession(p)

    return start


# ----- expectations -------------------------------------------------------------

# ----- the REPL through a pty ----------------------------------------------------------------

PROMPT = "(pyleakdb) "


class Repl(object):
    """pyleakdb at its prompt, driven through pexpect."""

    def __init__(self, child):
        self.c = child
        self.pid = child.pid

    def prompt(self, timeout=PYLEAKDB_TIMEOUT):
        """Everything printed up to the next prompt."""
        self.c.expect_exact(PROMPT, timeout=timeout)
        return self.c.before.replace("\r\n", "\n")

    def run(self, line, timeout=PYLEAKDB_TIMEOUT):
        """Type line and Enter; what it printed (after the echoed line)."""
        self.c.sendline(line)
        out = self.prompt(timeout)
        first, _, rest = out.partition("\n")
        assert first.strip() == line.strip(), (line, out)
        return rest


@pytest.fixture
def repl(pyleakdb):
    """start(*args) -> Repl: pyleakdb ARGS in a pty (skips without pexpect); every one
    still alive at teardown is killed by its PID."""
    pexpect = pytest.importorskip("pexpect")
    children = []

    def start(*args):
        c = pexpect.spawn(pyleakdb.bin, [str(a) for a in args], env=pyleakdb.env,
                          encoding="utf-8", codec_errors="replace", timeout=PYLEAKDB_TIMEOUT,
                          dimensions=(50, 250))
        children.append(c)
        return Repl(c)

    yield start
    for c in children:
        if c.isalive():
            try:
                os.kill(c.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        c.close(force=True)


def expected_name(frame):
    """The name pyleakdb shows for a frame the target recorded: the code's
    qualified name where the interpreter has one (3.11+), else co_name."""
    return frame["qualname"] or frame["function"]


def expected_stack(thread):
    return [(expected_name(f), f["file"], f["line"]) for f in thread["frames"]]


def shown_stack(thread):
    return [(f["function"], f["file"], f["line"]) for f in thread["frames"]
            if f.get("kind", "python") == "python"]


def pystack_all(pyleakdb, pid, *more):
    """Run 'pystack all' in JSON mode; returns (Result, {tid: thread})."""
    r = pyleakdb("--batch", "--json", "-p", pid, "-ex", "pystack all", *more)
    assert r.returncode == 0, r
    o = r.command("pystack all")
    assert o["ok"] is True, o
    threads = o["result"]["threads"]
    return r, dict((t["tid"], t) for t in threads)


def compare_stacks(expected_threads, shown):
    """Every thread the target listed must be shown with exactly its frames."""
    assert expected_threads, "the target listed no thread"
    problems = []
    for t in expected_threads:
        tid = t["native_id"]
        if tid not in shown:
            problems.append("thread %d (%s) not shown" % (tid, t["name"]))
            continue
        want, got = expected_stack(t), shown_stack(shown[tid])
        assert len(want) >= 2, t
        if want != got:
            i = next((i for i, (w, g) in enumerate(zip(want, got)) if w != g),
                     min(len(want), len(got)))
            problems.append("thread %d (%s): %d frames expected, %d shown; first difference "
                            "at frame #%d: want %r, got %r"
                            % (tid, t["name"], len(want), len(got), i,
                               want[i] if i < len(want) else None,
                               got[i] if i < len(got) else None))
        if shown[tid].get("thread_ident") != t["ident"]:
            problems.append("thread %d (%s): thread_ident %r, threading.get_ident() %r"
                            % (tid, t["name"], shown[tid].get("thread_ident"), t["ident"]))
    assert not problems, "\n".join(problems)

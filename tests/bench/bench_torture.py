# SPDX-License-Identifier: GPL-3.0-or-later
"""The torture test's full form (tests/bench/torture) under `make bench`."""

import importlib.machinery
import importlib.util
import os
import time

from benchlib import Row

HERE = os.path.dirname(os.path.abspath(__file__))
# Runs per scenario and interpreter; the environment may lower it.
ROUNDS = int(os.environ.get("PYLEAKDB_TORTURE_ROUNDS", "0")) or None

TITLE = "torture: hundreds of injections into targets in awkward states"
OTHER = "failures"
DESCRIPTION = """\
`tests/bench/torture` (the full form of tests/e2e/test_torture.py): for each
scenario (idle in select; in time.sleep; main thread in Event.wait with a
worker allocating; a tight bytecode loop; a 3M-element sort holding the GIL;
a thread hashing 64 MB without the GIL; 50 threads in short timed waits;
SIGUSR1 every millisecond and SIGCHLD from children; a forking target;
threads that come and go) and
each interpreter found, one target takes hundreds of pyleakdb runs (eval,
top, gc, tracemalloc; one to three injections each) at random moments.
A failure is a hang (a run over 20 s, 60 s for the sort), a crash, a target
left stopped or traced, a failed command or a wrong answer, a trace left
behind (checked from outside after each run and from inside the target at
the end) or a change in the target's own behaviour. The target is no
benchmark of speed: the "pyleakdb" column counts what was done, the
"failures" column must be 0. `PYLEAKDB_TORTURE_ROUNDS` sets the runs per
target (default: the script's).
"""


def _load():
    path = os.path.join(HERE, "torture")
    loader = importlib.machinery.SourceFileLoader("pyleakdb_torture", path)
    spec = importlib.util.spec_from_loader("pyleakdb_torture", loader)
    mod = importlib.util.module_from_spec(spec)
    loader.exec_module(mod)
    return mod


def run(ctx):
    tor = _load()
    T = tor.T
    rounds = ROUNDS or tor.DEFAULT_ROUNDS
    sort_rounds = max(1, rounds // 3)
    seed = int(time.time())
    interps = tor.conftest.find_interpreters()
    ctx.log("%d scenarios x %d interpreters, %d runs each (%d for sort), seed %d"
            % (len(T.SCENARIOS), len(interps), rounds, sort_rounds, seed))
    rows = []
    slowest = []
    for sc in T.SCENARIOS.values():
        cells = []
        for py in interps:
            c = tor.run_cell(sc.name, py, sort_rounds if sc.name == "sort" else rounds,
                             seed + len(cells), False)
            cells.append(c)
            ctx.log("%s %s: %d runs, %d injections, failures: %s"
                    % (sc.name, py.id, c.runs, c.injections, tor.kinds_text(c.failures)))
            for k, msg in c.failures:
                if k != "note":
                    ctx.fail("%s: %s" % (k, msg))
                else:
                    ctx.note(msg)
        fails = [f for c in cells for f in c.failures if f[0] != "note"]
        rows.append(Row(
            measurement="%s: %s (%d interpreters)" % (sc.name, sc.doc, len(cells)),
            ours="%d injections in %d runs" % (sum(c.injections for c in cells),
                                               sum(c.runs for c in cells)),
            other=tor.kinds_text(fails),
            target="no failure", met=not fails))
        slowest.append("%s %.2f s" % (sc.name, max(c.max_run for c in cells)))
    ctx.note("seed %d; slowest run per scenario: %s" % (seed, ", ".join(slowest)))
    return rows

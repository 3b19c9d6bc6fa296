# SPDX-License-Identifier: GPL-3.0-or-later
"""16 threads, each recursing to its own depth (30 to 100 levels, through a
function and a method in turn), then parked on a lock; the main thread is
parked on another lock.  Writes the expected stacks to argv[1]."""
import sys
import threading

import _targetlib

NTHREADS = 16
gate = threading.Lock()
gate.acquire()  # held forever: every worker parks on it


DEPTHS = [30, 100, 47, 83, 35, 64, 91, 52, 71, 40, 96, 58, 77, 44, 88, 66]


def depth_of(i):
    # 30..100, all different, not in order of thread start
    return DEPTHS[i]


class Climber(object):
    def __init__(self, depth):
        self.depth = depth

    def step(self, n):
        if n <= 0:
            return park()
        return descend(self, n - 1)


def descend(climber, n):
    if n <= 0:
        return park()
    return climber.step(n - 1)


def park():
    _targetlib.register()
    gate.acquire()  # BLOCK


def worker(i):
    Climber(depth_of(i)).step(depth_of(i))


def main():
    sys.setrecursionlimit(1000)
    threads = [threading.Thread(target=worker, args=(i,), name="worker-%02d" % i)
               for i in range(NTHREADS)]
    for t in threads:
        t.daemon = True
        t.start()
    _targetlib.dump_when_parked(NTHREADS + 1, extra={
        "depths": dict(("worker-%02d" % i, depth_of(i)) for i in range(NTHREADS))})
    main_gate = threading.Lock()
    main_gate.acquire()
    _targetlib.register()
    main_gate.acquire()  # BLOCK


main()

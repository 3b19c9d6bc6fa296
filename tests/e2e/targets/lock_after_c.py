# SPDX-License-Identifier: GPL-3.0-or-later
"""The main thread runs a long loop in C, holding the GIL and crossing no
bytecode boundary, then, still inside that one C call, blocks for ever on a
lock.  A pending call queued while the loop runs is never reached unless
its wait is interrupted.  Writes {"pid"} to argv[1] just before the loop;
prints "acquired" and exits if the lock wait ever returns."""
import collections
import itertools
import json
import os
import sys
import threading

lock = threading.Lock()
with open(sys.argv[1] + ".tmp", "w") as f:
    json.dump({"pid": os.getpid()}, f)
os.rename(sys.argv[1] + ".tmp", sys.argv[1])
# the first acquire takes the lock, the second waits for ever
collections.deque(itertools.chain(range(5 * 10**7), map(lock.acquire, [True, True])), maxlen=0)
sys.stdout.write("acquired\n")

# SPDX-License-Identifier: GPL-3.0-or-later
"""The main thread is parked in select.select on a pipe nobody writes to, a
thread in time.sleep, another in threading.Event.wait.  Writes the expected
stacks, and what each thread waits in, to argv[1]."""
import os
import select
import threading
import time

import _targetlib

never = threading.Event()


def sleeper():
    _targetlib.register()
    time.sleep(3600)  # BLOCK


def waiter():
    _targetlib.register()
    never.wait()


def selector(rfd):
    _targetlib.register()
    select.select([rfd], [], [])  # BLOCK


def main():
    rfd, wfd = os.pipe()
    started = {}
    for name, fn in (("sleeper", sleeper), ("waiter", waiter)):
        t = threading.Thread(target=fn, name=name)
        t.daemon = True
        t.start()
        started[name] = t
    _targetlib.dump_when_parked(3, extra={"kinds": {
        "MainThread": "select", "sleeper": "sleep", "waiter": "event"}})
    selector(rfd)


main()

# SPDX-License-Identifier: GPL-3.0-or-later
"""Writes argv[1], then waits for the file argv[2] to appear and exits with
the status written in it (e.g. "7"), or stays forever if it never appears."""
import os
import sys
import time

import _targetlib


def main():
    go = sys.argv[2]
    _targetlib.write_json({"pid": os.getpid()})
    while not os.path.exists(go):
        time.sleep(0.01)
    with open(go) as f:
        status = int(f.read().strip() or "0")
    sys.exit(status)


main()

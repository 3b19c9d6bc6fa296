# SPDX-License-Identifier: GPL-3.0-or-later
"""Prints 0, 1, 2, ... one a line every 50 ms, flushed, forever.  Writes
argv[1] (with the lines of its loop) once it has printed its first number."""
import sys
import time

import _targetlib


def main():
    i = 0  # LOOP
    while True:  # LOOP
        sys.stdout.write("%d\n" % i)  # LOOP
        sys.stdout.flush()  # LOOP
        if i == 0:  # LOOP
            _targetlib.write_json({  # LOOP
                "loop_lines": _targetlib.marked_lines(__file__, "# LOOP"),  # LOOP
                "main_call_line": _targetlib.marked_lines(__file__, "# MAIN")[0],  # LOOP
            })  # LOOP
        i += 1  # LOOP
        time.sleep(0.05)  # LOOP


main()  # MAIN

# SPDX-License-Identifier: GPL-3.0-or-later
# Started with 'pyleakdb run': the first statement below creates argv[1], so
# the file must not exist while pyleakdb holds the program at its start.
open(__import__("sys").argv[1], "w").close()
import sys
import time

if sys.argv[2:] == ["--say"]:
    sys.stdout.write("FIRST LINE RAN\n")
    sys.stdout.flush()
while True:
    time.sleep(0.05)  # LOOP

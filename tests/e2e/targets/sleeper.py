# SPDX-License-Identifier: GPL-3.0-or-later
# Valid in Python 2.7 and 3: writes argv[1], then sleeps.
import os
import sys
import time

tmp = sys.argv[1] + ".tmp"
with open(tmp, "w") as f:
    f.write('{"pid": %d}\n' % os.getpid())
os.rename(tmp, sys.argv[1])
while True:
    time.sleep(3600)

# SPDX-License-Identifier: GPL-3.0-or-later
"""Not a target: a minimal second debugger.  PTRACE_SEIZEs the process
argv[2] (which does not stop it), writes argv[1], and stays until killed
(the kernel then detaches it from the tracee)."""
import ctypes
import os
import sys
import time

import _targetlib

PTRACE_SEIZE = 0x4206

libc = ctypes.CDLL(None, use_errno=True)
libc.ptrace.argtypes = [ctypes.c_long, ctypes.c_long, ctypes.c_void_p, ctypes.c_void_p]
libc.ptrace.restype = ctypes.c_long
pid = int(sys.argv[2])
if libc.ptrace(PTRACE_SEIZE, pid, None, None) != 0:
    err = ctypes.get_errno()
    _targetlib.write_json({"error": "PTRACE_SEIZE %d: %s" % (pid, os.strerror(err))})
    sys.exit(1)
_targetlib.write_json({"tracer": os.getpid(), "tracee": pid})
while True:
    time.sleep(3600)

# SPDX-License-Identifier: GPL-3.0-or-later
"""A target whose names are hostile to terminals: code compiled with a file
name holding escape sequences, a function whose name holds ESC, BEL and
Unicode bidi controls, and a thread whose kernel name (comm) holds ESC and
BEL.  It parks inside that function and writes the names and its frames to
argv[1] (JSON, ASCII-escaped)."""
import sys
import types

import _targetlib

EVIL_FILE = "\x1b[31mevil\x07\u202e.py"
EVIL_FUNC = "evil\x1b[2J\x1b]0;owned\x07\u202egnp\u2066_\x9bfunc"
EVIL_COMM = b"\x1b[5m\x07pwn"

SOURCE = (
    "def placeholder(record):\n"
    "    record() or __import__('time').sleep(3600)\n"
)


def rename(code, name):
    if hasattr(code, "replace"):  # 3.8+
        kw = {"co_name": name}
        if hasattr(code, "co_qualname"):
            kw["co_qualname"] = name
        return code.replace(**kw)
    # 3.6, 3.7
    return types.CodeType(
        code.co_argcount, code.co_kwonlyargcount, code.co_nlocals, code.co_stacksize,
        code.co_flags, code.co_code, code.co_consts, code.co_names, code.co_varnames,
        code.co_filename, name, code.co_firstlineno, code.co_lnotab, code.co_freevars,
        code.co_cellvars)


def record():
    # the caller's frame is parked on the same line as this call
    frames = _targetlib.frames_of(sys._getframe(1))
    with open("/proc/self/task/%d/comm" % _targetlib.native_id(), "wb") as f:
        f.write(EVIL_COMM)
    _targetlib.write_json({
        "evil_file": EVIL_FILE,
        "evil_func": EVIL_FUNC,
        "evil_comm": EVIL_COMM.decode("ascii"),
        "native_id": _targetlib.native_id(),
        "frames": frames,
    })
    return None


def main():
    ns = {}
    exec(compile(SOURCE, EVIL_FILE, "exec"), ns)
    fn = ns["placeholder"]
    fn.__code__ = rename(fn.__code__, EVIL_FUNC)
    fn(record)


main()

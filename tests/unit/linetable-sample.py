# SPDX-License-Identifier: GPL-3.0-or-later
#
# Source for the line-table test vectors: gen-linetable-vectors compiles this
# file (it is never run) in every interpreter and dumps each code object's
# line table with the lines the interpreter itself assigns.  It must stay
# valid Python 3.6 syntax.  Shapes that stress the encoders: loops (lines
# going backwards), exception handling, with, comprehensions, lambdas,
# decorators, generators, nested functions, multi-line expressions.  The
# generator adds synthetic code for huge line gaps and huge single lines.
import functools
import os

CONSTANT = [1, 2, 3]


def simple(a, b):
    c = a + b
    return c


def loops(n):
    total = 0
    for i in range(n):
        if i % 2:
            continue
        total += i
    else:
        total -= 1
    while total > 10:
        total //= 2
        if total == 7:
            break
    return total


def exceptions(path):
    try:
        f = open(path)
    except FileNotFoundError as e:
        print("missing", e)
        return None
    except (OSError, ValueError):
        raise
    else:
        data = f.read()
    finally:
        print("done")
    try:
        return int(data)
    finally:
        pass


def with_blocks(path):
    with open(path) as f, open(path) as g:
        a = f.read()
        b = g.read()
    with open(path):
        pass
    return a + b


def comprehensions(xs):
    sq = [x * x for x in xs if x]
    st = {x for x in xs}
    dc = {x: y
          for x, y in zip(xs,
                          xs)
          if x}
    gen = (x
           for x in xs)
    nested = [[a for a in range(b)] for b in xs]
    return sq, st, dc, list(gen), nested


lam = lambda x: (x +
                 1)

lam2 = lambda: 0


def decorator(fn):
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        return fn(*args, **kwargs)
    return wrapper


@decorator
@functools.lru_cache(maxsize=None)
def decorated(x):
    return x * 2


def generator(n):
    i = 0
    while i < n:
        yield i
        i += 1
    yield from range(3)


def outer(a):
    def middle(b):
        def inner(c):
            return a + b + c
        return inner
    return middle


class Klass(object):
    attr = 1

    def method(self):
        return self.attr

    @property
    def prop(self):
        return (self.attr
                +
                1)

    @staticmethod
    def static():
        return 0


async def coroutine(x):
    await x
    async with x as y:
        pass
    async for z in y:
        pass
    return z


def multiline_call(a, b, c):
    # the call's own instructions belong to its first line on 3.8+, after
    # the arguments' later lines: the line goes backwards
    return os.path.join(
        a,
        b,
        c,
    )


def backwards():
    x = [
        1,
        2,
    ]
    y = {
        'a': x,
        'b':
            x[0],
    }
    for k in y:
        x.append(
            k)
    return x, y


def empty():
    pass


def docstring_only():
    """A docstring only."""


def fstrings(a):
    return f"{a!r:>10} and {a + 1}"


def conditional(a):
    return (a if a
            else
            not a)


def deep_nesting(a):
    if a:
        if a > 1:
            if a > 2:
                try:
                    with open(a) as f:
                        for line in f:
                            while line:
                                line = line[1:]
                except Exception:
                    pass
    return a


if __name__ == "__main__":
    print(simple(1, 2))

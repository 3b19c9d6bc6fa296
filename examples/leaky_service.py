#!/usr/bin/python3
# SPDX-License-Identifier: GPL-3.0-or-later
"""leaky_service.py: a small service that leaks the way real ones do.

A "sync-worker" thread pulls pages of items from a slow fake upstream and
hands each item to a Processor (Worker.sync_items).  The main thread
supervises: the deadline, the signals, and a config reload every 5 s that
is published to every subscriber.  Four classic leaks are planted, each
marked "LEAK" below:

  (a) Processor.instance_map, a class-level registry that is never
      evicted: ~1000 Processor objects (and their payloads) per iteration.
  (b) SyncSession subscribes a bound method to the module-level EVENT_BUS
      and never unsubscribes, so every session lives forever.
  (c) Request <-> Response reference cycles: only the cyclic GC frees
      them (and nothing does with --gc-off).
  (d) functools.lru_cache(maxsize=None) on a method: the cache keys hold
      `self` and one entry per batch, forever.

Safe by default: it grows a few MiB per second at most, stops leaking once
its RSS reaches --max-rss (it keeps running, so you can still attach), and
exits by itself after --duration seconds or --iterations iterations.

  /usr/bin/python3 examples/leaky_service.py --duration 60 &
  ./pyleakdb -p $!

Python 3.6+, standard library only.
"""

import argparse
import functools
import gc
import os
import signal
import sys
import threading
import time

MiB = 1024 * 1024

# Module-level event bus: event name -> list of callbacks.
EVENT_BUS = {"config-reload": []}


def subscribe(event, callback):
    EVENT_BUS[event].append(callback)


def publish(event, payload):
    for callback in list(EVENT_BUS[event]):
        callback(payload)


def rss_bytes():
    """Resident set size of this process, from /proc/self/statm."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def native_tid():
    get_native_id = getattr(threading, "get_native_id", None)  # 3.8+
    if get_native_id is not None:
        return get_native_id()
    import ctypes
    return ctypes.CDLL(None, use_errno=True).syscall(186)  # SYS_gettid, x86-64


def name_this_thread(name):
    """Set the kernel's name for the thread (/proc/.../comm, 15 chars)."""
    try:
        import ctypes
        ctypes.CDLL(None).prctl(15, name.encode()[:15], 0, 0, 0)  # PR_SET_NAME
    except Exception:
        pass


class Item(object):
    __slots__ = ("id", "name", "payload")

    def __init__(self, item_id, name, payload):
        self.id = item_id
        self.name = name
        self.payload = payload


class UpstreamClient(object):
    """A fake, rate-limited, paginated HTTP API: each page has new items."""

    def __init__(self, page_size, payload_size, latency):
        self.page_size = page_size
        self.payload_size = payload_size
        self.latency = latency
        self.next_id = 0

    def fetch_page(self, request):
        time.sleep(self.latency)  # the "network": most of the worker's time
        items = []
        for _ in range(self.page_size):
            self.next_id += 1
            items.append(Item(self.next_id, "item-%d" % self.next_id,
                              os.urandom(self.payload_size)))
        return Response(request, items)


class Request(object):
    def __init__(self, session, page):
        self.session, self.page, self.response = session, page, None


class Response(object):
    def __init__(self, request, items):
        self.items = items
        self.request = request
        # LEAK (c): Request <-> Response cycle; no refcount ever drops to 0.
        request.response = self


class Processor(object):
    # LEAK (a): class-level registry, filled in __init__, never evicted.
    instance_map = {}

    def __init__(self, item, session):
        self.item = item
        self.session_id = session.id
        self.checksum = sum(item.payload[:16])
        Processor.instance_map[item.id] = self

    def process(self):
        return self.checksum & 0xFF


class SyncSession(object):
    """One per iteration: the state of one sync run."""

    def __init__(self, session_id):
        self.id = session_id
        self.processed = 0
        self.config = {}
        # LEAK (b): a bound method holds `self`; nobody ever unsubscribes.
        subscribe("config-reload", self.on_config_reload)

    def on_config_reload(self, config):
        self.config = dict(config)


class Worker(object):
    def __init__(self, args):
        self.args = args
        self.upstream = UpstreamClient(args.page_size, args.payload_size,
                                       latency=1.0 / (args.rate * args.pages))
        self.iteration = 0
        self.limited = False
        self.stop = threading.Event()
        self.tid = None
        self.finished = False  # run() returned normally (no exception)

    @functools.lru_cache(maxsize=None)
    def batch_config(self, session_id):
        # LEAK (d): unbounded cache keyed on (self, session_id).
        return {"session": session_id, "retries": 3, "tags": ["sync"] * 8}

    def sync_items(self, session):
        for page in range(self.args.pages):
            request = Request(session, page)
            response = self.upstream.fetch_page(request)
            for item in response.items:
                processor = Processor(item, session)
                processor.process()
                session.processed += 1
        self.batch_config(session.id)

    def run(self):
        name_this_thread("sync-worker")
        self.tid = native_tid()
        period = 1.0 / self.args.rate
        while not self.stop.is_set():
            started = time.time()
            if self.limited or rss_bytes() >= self.args.max_rss * MiB:
                if not self.limited:  # keep running, so you can attach
                    print("leaky_service: rss over %d MiB, no longer leaking"
                          % self.args.max_rss, flush=True)
                    self.limited = True
            else:
                self.iteration += 1
                # the loop's body: `make demo` steps iterations from here
                self.sync_items(SyncSession(self.iteration))
                if self.iteration % self.args.report_every == 0:
                    report(self)
                if self.iteration == self.args.iterations:
                    break
            self.stop.wait(max(0.0, period - (time.time() - started)))
        self.finished = True


def report(worker):
    print("iter %d: %d processors, %d sessions subscribed, rss %.1f MiB"
          % (worker.iteration, len(Processor.instance_map),
             len(EVENT_BUS["config-reload"]), rss_bytes() / MiB), flush=True)


def write_ready_file(path, worker):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write("pid=%d\nmain_tid=%d\nworker_tid=%d\n"
                % (os.getpid(), os.getpid(), worker.tid))
    os.rename(tmp, path)  # atomic: readers never see a half-written file


def parse_args(argv):
    p = argparse.ArgumentParser(
        description="A small service that leaks memory, to practise on.")
    p.add_argument("--rate", type=float, default=2.0,
                   help="sync iterations per second, at most (default 2)")
    p.add_argument("--iterations", type=int, default=0,
                   help="exit after N iterations (default 0: no limit)")
    p.add_argument("--duration", type=float, default=0,
                   help="exit after SECONDS (default 0: no limit)")
    p.add_argument("--max-rss", type=int, default=512, metavar="MIB",
                   help="stop leaking at this RSS in MiB (default 512)")
    p.add_argument("--pages", type=int, default=10,
                   help="pages per iteration (default 10)")
    p.add_argument("--page-size", type=int, default=100,
                   help="items per page (default 100)")
    p.add_argument("--payload-size", type=int, default=512,
                   help="bytes per item (default 512)")
    p.add_argument("--report-every", type=int, default=10, metavar="N",
                   help="print a line every N iterations (default 10)")
    p.add_argument("--gc-off", action="store_true",
                   help="disable the cyclic GC: leak (c) becomes a real leak")
    p.add_argument("--ready-file", metavar="PATH",
                   help="write pid and thread ids here once running")
    args = p.parse_args(argv)
    if min(args.rate, args.pages, args.report_every, args.max_rss) <= 0:
        p.error("--rate, --pages, --report-every, --max-rss must be positive")
    return args


def main(argv=None):
    args = parse_args(argv)
    if args.gc_off:
        gc.disable()

    stopping = []  # set by SIGTERM / SIGINT: exit cleanly, status 0
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda signum, frame: stopping.append(signum))

    worker = Worker(args)
    thread = threading.Thread(target=worker.run, name="sync-worker")
    thread.daemon = True
    thread.start()
    while worker.tid is None and thread.is_alive():
        time.sleep(0.01)
    print("leaky_service: pid %d, worker tid %s, %.0f iterations/s"
          % (os.getpid(), worker.tid, args.rate), flush=True)
    if args.ready_file:
        write_ready_file(args.ready_file, worker)

    deadline = time.time() + args.duration if args.duration > 0 else None
    next_reload = time.time() + 5
    while thread.is_alive() and not stopping:
        now = time.time()
        if deadline is not None and now >= deadline:
            break
        if now >= next_reload:  # every session that ever ran gets this
            publish("config-reload", {"log_level": "info"})
            next_reload = now + 5
        time.sleep(0.25)

    worker.stop.set()
    thread.join(5)
    print("leaky_service: exiting after %d iterations, rss %.1f MiB"
          % (worker.iteration, rss_bytes() / MiB), flush=True)
    return 0 if worker.finished else 1


if __name__ == "__main__":
    sys.exit(main())

"""Worker processes that build screening plans in parallel.

A plan is the scalar engine run once for a kind of line (``screen.plans``); a large book has tens of
thousands of kinds, so their plans are built by a pool of processes (one per core by default,
``TIERLINE_WORKERS`` to choose; 1 builds them in the screening process). The workers are forked
from the screening process (they start at once, with its caches, and never re-import the caller's
main module), are shared by every screening of the process and are only used when a batch needs
many new plans: small books never pay for them. Workers only run the scalar engine (pure Python).
Like the rest of a tierline process (its contexts and classifications are cached), a worker reads
the environment (``TIERLINE_POLICY_DIR``) as it was when the process started.
"""

from __future__ import annotations

import atexit
import copyreg
import multiprocessing
import os
import threading
import time
from concurrent.futures import Executor, Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from fractions import Fraction

from tierline.errors import TierlineError
from tierline.screen.plans import Built, Task, build


def _fraction(value: Fraction) -> tuple[type[Fraction], tuple[int, int]]:
    return Fraction, (value.numerator, value.denominator)


# Plans hold exact amounts as Fractions, which pickle as text parsed back with a regular expression;
# as two integers they load four times faster (the screening process loads every plan).
copyreg.pickle(Fraction, _fraction)

WORKERS_ENV = "TIERLINE_WORKERS"
MIN_PARALLEL = 512  # new plans in a batch below which they are built in the screening process
CHUNK = 128

_pool: Executor | None = None


def workers() -> int:
    raw = os.environ.get(WORKERS_ENV)
    if raw is None:
        return os.cpu_count() or 1
    try:
        return max(1, int(raw))
    except ValueError:
        raise TierlineError(WORKERS_ENV, f"{raw!r} is not a number of processes") from None


def _watch_parent(parent: int) -> None:
    """In a worker: exit as soon as the process that forked it is gone (killed, say, so that its
    exit handlers never shut the pool down); otherwise a worker would wait for work forever."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(0)

    threading.Thread(target=watch, name="tierline-parent-watch", daemon=True).start()


def _pool_for(n: int) -> Executor:
    global _pool
    if _pool is None:
        _pool = ProcessPoolExecutor(
            max_workers=n,
            mp_context=multiprocessing.get_context("fork"),
            initializer=_watch_parent,
            initargs=(os.getpid(),),
        )
        atexit.register(_pool.shutdown, cancel_futures=True)
    return _pool


def start_workers() -> None:
    """Fork the workers now, while the screening process is small (before it reads the book):
    their memory is then mostly the engine itself."""
    n = workers()
    if n > 1 and _pool is None:
        pool = _pool_for(n)
        for _ in range(n):
            pool.submit(build, [])


class Pending:
    """Plans being built: `result()` waits for them, in task order."""

    def __init__(self, tasks: list[Task], futures: list[Future[Built]] | None) -> None:
        self.tasks = tasks
        self.futures = futures
        self.done = build(tasks) if futures is None else None

    def result(self) -> Built:
        global _pool
        if self.done is None:
            assert self.futures is not None
            try:
                self.done = Built.join([future.result() for future in self.futures])
            except BrokenProcessPool:  # a worker died (killed, out of memory): build here, a new pool next time
                _pool = None
                self.done = build(self.tasks)
        return self.done


def submit_plans(tasks: list[Task]) -> Pending:
    """Start building the plan (or the error) of each task: in worker processes when there are
    many, otherwise here and now."""
    n = workers()
    if n == 1 or len(tasks) < MIN_PARALLEL:
        return Pending(tasks, None)
    size = max(1, min(CHUNK, len(tasks) // (4 * n)))
    try:
        pool = _pool_for(n)
        futures = [pool.submit(build, tasks[i : i + size]) for i in range(0, len(tasks), size)]
    except BrokenProcessPool:
        global _pool
        _pool = None
        return Pending(tasks, None)
    return Pending(tasks, futures)

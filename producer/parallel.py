"""Both cores for a batch: products extracted by a pool of threads (or
forked processes), item documents written by a bounded pool of threads.

Extraction is GDAL (open, header reads: it releases the GIL) and Python
(footprint, pystac, JSON-schema validation: it holds it). Measured side by
side on 1,000 local COGs (``bench/batch.py``, BENCHMARKS.md) on the shared
2-core machine, 2 threads beat 2 forked processes in both runs (37.7 s vs
50.3 s, and 77 s vs 82 s, serial 63 s and 147 s): with other work on both
cores a second process finds no idle core, and it pays the fork, the
pickling of every item and a cold validator cache, while threads overlap
GDAL's I/O with Python and share everything. Threads are the default
(:data:`EXTRACT_KIND`); processes stay available (``"process"``) for a
machine with idle cores, where the GIL-bound half would scale.
Writing item documents is I/O (an S3 PUT, a local temp file, its fsync and
rename) that releases the GIL, so it runs in threads (:func:`map_ordered`).

Results stay per product and in order whatever the pool does: a product
that fails in a worker fails alone, with the message it has serially.
Nothing here reads or writes the catalog itself: the callers' functions do.
"""

from __future__ import annotations

import contextvars
import os
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

T = TypeVar("T")
R = TypeVar("R")

#: below this many products a batch is extracted serially: starting workers
#: costs more than it saves
MIN_POOLED = 32
#: at most this many threads write item documents at once
MAX_WRITE_THREADS = 16
#: how pooled extraction runs: "thread" (default) or "process" (measured by
#: bench/batch.py; see the module docstring)
EXTRACT_KIND = "thread"

#: the function a forked worker applies to each product; set in the parent
#: just before the pool forks, so workers inherit it (closures included)
#: instead of unpickling a committer and a store
_JOB: Callable[[str], Any] | None = None
_FORKING = threading.Lock()


def cores() -> int:
    """The CPUs this process may run on (at least 1)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def extraction_workers(requested: int, products: int) -> int:
    """How many workers (threads, or processes) extract a batch of ``products``: ``requested``
    when positive (never more than the products), else automatic: one per
    core for a batch of :data:`MIN_POOLED` or more products, else 1."""
    if requested > 0:
        return max(1, min(requested, products))
    if products < MIN_POOLED:
        return 1
    return max(1, min(cores(), products))


def write_threads(items: int, concurrent_safe: bool) -> int:
    """Threads writing ``items`` documents: ``min(16, items)``, or 1 on a
    store whose conditional writes are not atomic (single-writer mode)."""
    if not concurrent_safe:
        return 1
    return max(1, min(MAX_WRITE_THREADS, items))


def map_ordered(fn: Callable[[T], R], items: Sequence[T], threads: int) -> list[R]:
    """``[fn(x) for x in items]`` on up to ``threads`` threads, in order.

    Each call sees the caller's context variables. ``fn`` must report
    per-item failures in what it returns; anything it
    raises (a ``BaseException`` such as a kill included) is raised here
    after every started call has finished, the first in ``items`` order.
    """
    if threads <= 1 or len(items) <= 1:
        return [fn(x) for x in items]
    with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="stac-write") as pool:
        # each call runs in a copy of the caller's context (a store's batch
        # durability is a context variable: see producer.store.local)
        futures = [pool.submit(contextvars.copy_context().run, fn, x) for x in items]
    return [f.result() for f in futures]


def _run_job(source: str) -> Any:
    assert _JOB is not None, "worker started without a job"
    return _JOB(source)


def _fork_context() -> Any | None:
    """The ``fork`` multiprocessing context, or None where there is none."""
    import multiprocessing  # noqa: PLC0415 (0.1 s of imports that only a pooled batch needs)

    if "fork" not in multiprocessing.get_all_start_methods():
        return None
    return multiprocessing.get_context("fork")


def prepare_all(
    job: Callable[[str], R],
    sources: Sequence[str],
    workers: int,
    on_broken: Callable[[str, BaseException], R],
    kind: str = "process",
) -> Iterator[R]:
    """Yield ``job(source)`` for each of ``sources``, in order, computed by
    ``workers`` forked processes (``kind="process"``), threads
    (``kind="thread"``) or in this process (``workers <= 1``, or where
    ``fork`` does not exist).

    ``job`` must catch a product's own errors and return them (its result
    must pickle). A worker process that dies (a crash inside GDAL) makes
    the products it had not returned yet ``on_broken(source, error)``; the
    others keep their results.
    """
    global _JOB
    context = _fork_context() if kind == "process" else None
    if workers <= 1 or len(sources) <= 1 or (kind == "process" and context is None):
        for source in sources:
            yield job(source)
        return
    if kind == "thread":
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="stac-extract") as threads:
            yield from threads.map(job, sources)
        return
    from concurrent.futures.process import BrokenProcessPool, ProcessPoolExecutor  # noqa: PLC0415 (see above)

    chunksize = max(1, min(16, len(sources) // (workers * 4)))
    with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        # a fork pool starts every worker at the first submit (inside map):
        # the lock keeps another thread's job out of them
        with _FORKING:
            _JOB = job
            try:
                results = pool.map(_run_job, sources, chunksize=chunksize)
            finally:
                _JOB = None
        for i in range(len(sources)):
            try:
                yield next(results)
            except BrokenProcessPool as exc:
                for rest in sources[i:]:
                    yield on_broken(rest, exc)
                return

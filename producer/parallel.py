"""Both cores for a batch: products extracted by a pool of threads (or
worker processes), item documents written by a bounded pool of threads.

Extraction is GDAL (open, header reads: it releases the GIL) and Python
(footprint, pystac, JSON-schema validation: it holds it), so threads
overlap only the GDAL part; forked processes run the Python part on both
cores too, and pay the fork, the pickling of every item and cold caches.
:data:`EXTRACT_KIND` "auto" (:func:`extract_kind`) uses processes for a
large batch: forked from this process when it runs a single thread, else
forked from a fork server (a clean single-threaded process multiprocessing
starts once: :mod:`producer.served`), since forking a process whose other
threads may hold locks is unsafe (an S3 catalog's client thread, a Prefect
worker's). Threads and processes are measured side by side by
``bench/batch.py`` (BENCHMARKS.md, batch-local and batch-s3).
A worker process that dies (a crash inside GDAL, the OOM killer) costs its
product only: the products lost with the pool are extracted again
(:func:`prepare_all`). A worker process dies with its parent
(:func:`_die_with_parent`): a batch killed with SIGKILL (the OOM killer,
``timeout -s KILL``, a cancelled CI job) leaves no worker behind holding its
output open.
Writing item documents is I/O (an S3 PUT, a local temp file, its fsync and
rename) that releases the GIL, so it runs in threads (:func:`map_ordered`).

Results stay per product and in order whatever the pool does: a product
that fails in a worker fails alone, with the message it has serially.
Nothing here reads or writes the catalog itself: the callers' functions do.
"""

from __future__ import annotations

import contextlib
import contextvars
import ctypes
import gc
import logging
import os
import pickle
import signal
import sys
import threading
from collections.abc import Callable, Generator, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from producer import served

T = TypeVar("T")
R = TypeVar("R")

#: below this many products a batch is extracted serially: starting workers
#: costs more than it saves
MIN_POOLED = 32
#: at most this many threads write item documents at once
MAX_WRITE_THREADS = 16
#: how pooled extraction runs: "auto" (default: :func:`extract_kind`),
#: "thread", "process" (forked from this process) or "forkserver" (forked
#: from a fork server; measured by bench/batch.py; see the module docstring)
EXTRACT_KIND = "auto"
#: "auto" forks for batches of at least this many products: below, the fork
#: and the workers' cold caches cost more than the second core gives
MIN_FORKED = 128
#: a batch whose worker processes die this many times (a pool broken each
#: time) stops forking: its remaining products fail, each saying so
MAX_BROKEN_POOLS = 3

#: the function a worker applies to each product, and the products; set in
#: the parent just before the pool forks, so forked workers inherit them
#: (closures included) instead of unpickling a committer and a store; a fork
#: server's workers receive them pickled (:func:`_install`)
_JOB: Callable[[str], Any] | None = None
_SOURCES: Sequence[str] = ()
#: per product: 0 not started, 1 being extracted, 2 extracted (shared memory
#: the workers write): after a pool breaks, the products at 1 were in a
#: worker when it died
_STATE: Any = None
_FORKING = threading.Lock()
#: whether this process warned that a fork server's workers could not start
_WARNED_SERVER = False

log = logging.getLogger(__name__)

_IDLE, _STARTED, _FINISHED = 0, 1, 2


#: where Linux mounts the cgroup file system (its CPU quota caps :func:`cores`)
CGROUP_ROOT = "/sys/fs/cgroup"


def cores() -> int:
    """The CPUs this process may use (at least 1): those it may run on, capped
    by its container's CPU quota (:func:`cgroup_cpus`), so a pod limited to 2
    CPUs on a 64-core node extracts with 2 workers, not 64."""
    try:
        allowed = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        allowed = os.cpu_count() or 1
    quota = cgroup_cpus()
    if quota is not None:
        allowed = min(allowed, quota)
    return max(1, allowed)


def _own_cgroup() -> str:
    """This process's cgroup v2 folder, or :data:`CGROUP_ROOT` when unknown."""
    try:
        with open("/proc/self/cgroup") as f:
            for line in f:
                if line.startswith("0::"):
                    own = os.path.join(CGROUP_ROOT, line[3:].strip().lstrip("/"))
                    return own if os.path.exists(os.path.join(own, "cpu.max")) else CGROUP_ROOT
    except OSError:
        pass
    return CGROUP_ROOT


def cgroup_cpus(root: str | None = None) -> int | None:
    """The CPU quota of this process's cgroup, rounded up to whole CPUs, or
    None when there is none (no limit, not Linux, unreadable). Reads cgroup
    v2's ``cpu.max`` ("200000 100000": 2 CPUs; "max 100000": no limit), else
    cgroup v1's ``cpu/cpu.cfs_quota_us`` and ``cpu.cfs_period_us`` (a quota
    of -1: no limit), under ``root`` (default: this process's own cgroup v2
    folder below :data:`CGROUP_ROOT`, as ``/proc/self/cgroup`` names it; in a
    container that is the root itself)."""
    base = root or _own_cgroup()
    try:
        with open(os.path.join(base, "cpu.max")) as f:
            quota, _, period = f.read().strip().partition(" ")
    except OSError:
        try:
            with open(os.path.join(base, "cpu", "cpu.cfs_quota_us")) as f:
                quota = f.read().strip()
            with open(os.path.join(base, "cpu", "cpu.cfs_period_us")) as f:
                period = f.read().strip()
        except OSError:
            return None
    try:
        limit, every = int(quota), int(period)
    except ValueError:  # "max": no limit
        return None
    if limit <= 0 or every <= 0:
        return None
    return max(1, -(-limit // every))


def extract_kind(products: int, workers: int) -> str:
    """How ``workers`` extract a batch of ``products`` when :data:`EXTRACT_KIND`
    is "auto": processes when the batch is large (:data:`MIN_FORKED`) and
    ``workers`` is at most one more than the cores, "thread" otherwise.
    The processes are forked from this process ("process") when it runs no
    other thread, else from a fork server ("forkserver"): a fork copies only
    the forking thread, so a lock another thread holds (an S3 client's event
    loop, a Prefect worker's) would stay held in the child. "thread" where
    neither fork exists. More workers than cores + 1 are asked for to overlap
    waiting (products read from object storage), which threads do without a
    process, and an S3 client, each. A daemonic process (a Dask worker) may
    start no process: threads.

    The machine's load does not enter: processes win on idle cores (1.8-2.2x
    threads in BENCHMARKS.md's batch-local tables) and on busy ones too
    (1.1-1.5x at a load of 2-6, 1.1x at 7-10: "Issue 12, autoload"), as the
    workers hold no GIL and each process gets its share of the cores.
    Reading the 1-minute load average, as this once did, counted the
    process's own earlier batches as other work: a backfill switched to
    threads after half a minute, at about 0.6x the throughput."""
    if workers <= 1 or workers > cores() + 1 or products < MIN_FORKED or _daemonic():
        return "thread"
    if threading.active_count() == 1 and _fork_context() is not None:
        return "process"
    return "forkserver" if served.available() else "thread"


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


def _run_chunk(indexes: list[int]) -> tuple[list[bytes | _Unsent], list[bytes]]:
    """In a worker: the job of each product in ``indexes``, each marked
    started, then finished, in the shared state, each result pickled on its
    own (:func:`_packed`); and the log records a fork server's worker
    captured meanwhile (:func:`producer.served.adopt`), each pickled on its
    own too (:func:`_packed_records`): what comes back always loads."""
    assert _JOB is not None and _STATE is not None, "worker started without a job"
    out: list[bytes | _Unsent] = []
    with contextlib.ExitStack() as stack:
        _hold_environment(stack, _JOB, [_SOURCES[i] for i in indexes])
        for i in indexes:
            _STATE[i] = _STARTED
            out.append(_packed(_JOB(_SOURCES[i])))
            _STATE[i] = _FINISHED
    return out, _packed_records(served.take_records())


def _hold_environment(stack: contextlib.ExitStack, job: Callable[[str], Any], sources: list[str]) -> None:
    """Enter on ``stack`` what ``job`` holds around a run of ``sources`` in
    one worker: its ``chunk_environment(sources)`` when it has one (an
    extraction: one GDAL environment for the chunk instead of one per
    product). One that cannot be set up is left out: each product then
    sets up its own, and reports its own error."""
    hold = getattr(job, "chunk_environment", None)
    if hold is None:
        return
    try:
        stack.enter_context(hold(sources))
    except Exception:
        log.debug("no shared environment for %d products", len(sources), exc_info=True)


def _daemonic() -> bool:
    """Whether this process is a daemonic multiprocessing child, which may not start processes."""
    import multiprocessing  # noqa: PLC0415 (see _fork_context)

    return bool(multiprocessing.current_process().daemon)


def _fork_context() -> Any | None:
    """The ``fork`` multiprocessing context, or None where there is none."""
    import multiprocessing  # noqa: PLC0415 (0.1 s of imports that only a pooled batch needs)

    if "fork" not in multiprocessing.get_all_start_methods():
        return None
    return multiprocessing.get_context("fork")


def _install(
    job: Callable[[str], Any], sources: Sequence[str], state: Any, setup: served.Setup, parent: int | None
) -> None:
    """In a fork server's worker, before its first product: it dies with
    the fork server (``parent``: :func:`_die_with_parent`), this process's
    environment and logging (:func:`producer.served.adopt`), the job and the
    products, received pickled (a forked worker inherits them instead)."""
    global _JOB, _SOURCES, _STATE
    served.release_server()
    _die_with_parent(parent)
    served.adopt(setup)
    _JOB, _SOURCES, _STATE = job, sources, state


#: Linux's prctl option that sends this process a signal when its parent dies
_PR_SET_PDEATHSIG = 1


def _die_with_parent(parent: int | None) -> None:
    """In a worker process, first: it is killed (SIGKILL) when its parent
    dies (Linux's ``prctl(PR_SET_PDEATHSIG)``), and exits at once if its
    parent (``parent``: its pid, None when unknown) died already, before
    this call. Without it, a batch killed with SIGKILL left its workers
    alive forever, reparented to init, holding the batch's stdout and
    stderr open (``stac-producer ... | tee`` never ended). The parent of a
    fork server's worker is the server, which exits when this process
    does (the end of its "alive" pipe, once the worker let go of its own
    copy: :func:`producer.served.release_server`), so the worker follows.
    Linux sends the signal when the *thread* that forked the worker ends:
    workers are started by the thread that consumes :func:`prepare_all`,
    which waits for them. Does nothing where ``prctl`` does not exist (not Linux)."""
    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
        except (OSError, AttributeError) as exc:  # no libc prctl: a worker as before
            log.debug("worker processes will not die with their parent: %s", exc)
    if parent is not None and os.getppid() != parent:
        os._exit(1)  # the parent died before the prctl: nothing waits for this worker


def _worker_parent(context: Any) -> int | None:
    """The pid a worker started by ``context`` has as its parent: this
    process for a fork, else the fork server's (started here if it is not
    running yet), None when unknown (read defensively: CPython's
    ``multiprocessing.forkserver`` keeps it private)."""
    if context.get_start_method() == "fork":
        return os.getpid()
    from multiprocessing import forkserver  # noqa: PLC0415 (see _fork_context)

    server = getattr(forkserver, "_forkserver", None)
    try:
        with served.starting():  # as when its first worker starts it (no main module)
            server.ensure_running()  # type: ignore[union-attr]
    except Exception as exc:  # it cannot start: starting its workers will say so
        log.debug("no fork server pid: %s", exc)
        return None
    pid = getattr(server, "_forkserver_pid", None)
    return pid if isinstance(pid, int) else None


class WorkerDied(RuntimeError):
    """A product's extraction gave no result because of the process it ran
    in (a crash inside GDAL, a kill). ``cause`` says which, so that a caller
    can tell a product that will fail the same way again from one that may not:

    - :data:`CRASHED`: it crashed or ended a process of its own too (a fatal
      signal such as SIGSEGV or SIGABRT, or an exit);
    - :data:`KILLED`: a process of its own was killed from outside (SIGKILL:
      the out-of-memory killer, a timeout; any other signal);
    - :data:`UNREADABLE`: its result could not be sent or read back (it does
      not pickle here, or does not load in the caller's process);
    - :data:`NOT_STARTED`: no process could be started to extract it alone;
    - :data:`NOT_TRIED`: not tried again after :data:`MAX_BROKEN_POOLS` broken pools;
    - :data:`RESOURCES`: its result could not travel back for want of memory
      or of a file descriptor.

    ``signal``: the number of the signal that ended its own process, if one did.
    """

    CRASHED = "crashed"
    KILLED = "killed"
    UNREADABLE = "unreadable"
    NOT_STARTED = "not-started"
    NOT_TRIED = "not-tried"
    RESOURCES = "resources"

    def __init__(self, message: str, cause: str = NOT_TRIED, signal: int | None = None) -> None:
        super().__init__(message)
        self.cause = cause
        self.signal = signal


#: signals a process sends itself when it crashes (as opposed to a kill from outside)
_CRASH_SIGNALS = frozenset(
    {
        signal.SIGSEGV,
        signal.SIGBUS,
        signal.SIGABRT,
        signal.SIGILL,
        signal.SIGFPE,
        signal.SIGTRAP,
        signal.SIGSYS,
    }
)


class _StartFailed(Exception):
    """Workers could not be started (the cause says why): nothing of their pool was yielded."""


def prepare_all(
    job: Callable[[str], R],
    sources: Sequence[str],
    workers: int,
    on_broken: Callable[[str, BaseException], R],
    kind: str = "process",
    before_fork: Callable[[], None] | None = None,
) -> Iterator[R]:
    """Yield ``job(source)`` for each of ``sources``, in order, computed by
    ``workers`` processes forked from this one (``kind="process"``) or from
    a fork server (``kind="forkserver"``: ``job`` must pickle), threads
    (``kind="thread"``), either as :func:`extract_kind` says (``"auto"``,
    which uses threads for a job that does not pickle where it would use a
    fork server), or in this process (``workers <= 1``, or where the start
    method does not exist).

    ``job`` must catch a product's own errors and return them (its result
    must pickle). Workers that a fork server cannot start (or that die before
    their first product) leave the batch to threads, with a warning. A worker process that dies (a crash inside GDAL, a kill)
    breaks its pool: the products that were inside a worker then are
    extracted again each alone in its own process, and one that kills that
    one too becomes ``on_broken(source, WorkerDied)``; the other products
    lost with the pool are extracted again by a new pool. After
    :data:`MAX_BROKEN_POOLS` broken pools the products not extracted yet
    become ``on_broken`` without being tried again.

    ``before_fork``, when given, runs before every fork of this process: a
    caller that starts threads while it consumes the results (the writes of
    :func:`producer.ingest._register_pipelined`) lets them finish what they
    do, so that no child inherits a lock one of them holds. A fork server's
    workers are not forked from this process: it is not called for them.
    """
    if workers <= 1 or len(sources) <= 1:  # in this process, whatever the kind (one product: a register's)
        for source in sources:
            yield job(source)
        return
    if kind == "auto":
        kind = extract_kind(len(sources), workers)
    if kind == "forkserver" and not served.picklable(job):
        kind = "thread"  # a closure, a lock, something of the main module: not for a fork server
    context = None
    if kind == "process":
        context = _fork_context()
    elif kind == "forkserver" and served.available():
        context = served.context()
    if workers <= 1 or len(sources) <= 1 or (kind in ("process", "forkserver") and context is None):
        for source in sources:
            yield job(source)
        return
    log.debug("extracting %d products with %d workers (%s)", len(sources), workers, kind)
    if kind == "thread":
        yield from _threaded(job, sources, workers)
        return
    yield from _forked(job, sources, workers, on_broken, context, before_fork or (lambda: None))


def _forked(
    job: Callable[[str], R],
    sources: Sequence[str],
    workers: int,
    on_broken: Callable[[str, BaseException], R],
    context: Any,
    before_fork: Callable[[], None],
) -> Iterator[R]:
    """:func:`prepare_all` in forked processes, surviving dead workers."""
    from multiprocessing.sharedctypes import RawArray  # noqa: PLC0415 (see _fork_context)

    server = context.get_start_method() != "fork"
    try:  # shared memory: where /dev/shm does not exist (AWS Lambda) this fails
        state = RawArray("b", len(sources))
    except Exception as exc:
        yield from _not_started(
            job, sources, list(range(len(sources))), set(), on_broken, workers, server, exc
        )
        return
    pending = list(range(len(sources)))  # not yielded yet, in order
    suspects: set[int] = set()
    breaks = 0
    while pending:
        if pending[0] in suspects:
            i = pending.pop(0)
            yield _alone(job, sources[i], on_broken, context, before_fork)
            continue
        if breaks >= MAX_BROKEN_POOLS:
            died = WorkerDied(
                f"not extracted: worker processes died {breaks} times in this batch, "
                "so its remaining products were not tried again",
                WorkerDied.NOT_TRIED,
            )
            for i in pending:
                yield on_broken(sources[i], died)
            return
        stop = next((k for k, i in enumerate(pending) if i in suspects), len(pending))
        batch, pending = pending[:stop], pending[stop:]
        try:
            lost = yield from _pool(job, sources, batch, workers, context, state, before_fork, on_broken)
        except _StartFailed as failed:  # nothing of this pool was yielded
            why = failed.__cause__ or failed
            yield from _not_started(job, sources, batch + pending, suspects, on_broken, workers, server, why)
            return
        if server and len(lost) == len(batch) and all(state[i] == _IDLE for i in lost):
            # every worker died before its first product: they cannot start here
            early = "they died before their first product"
            yield from _not_started(job, sources, lost + pending, suspects, on_broken, workers, server, early)
            return
        if lost:
            breaks += 1
            suspects.update(i for i in lost if state[i] == _STARTED)
            for i in lost:
                state[i] = _IDLE
            pending = lost + pending


def _not_started(
    job: Callable[[str], R],
    sources: Sequence[str],
    indexes: list[int],
    suspects: set[int],
    on_broken: Callable[[str, BaseException], R],
    workers: int,
    server: bool,
    why: BaseException | str,
) -> Iterator[R]:
    """The products ``indexes`` where no worker process could be started
    (``why``): by threads where a fork server's were asked for (this process
    runs other threads), else in this process (a fork refused: EAGAIN,
    ENOMEM). A suspect (it was in a worker that died earlier in the batch)
    never runs here: it may be what kills."""
    reason = f"{type(why).__name__}: {why}" if server and not isinstance(why, str) else str(why)
    if server:
        _server_failed(reason)
    else:
        log.warning("cannot start extraction processes (%s); extracting in this process", reason)
    died = _not_alone(reason)

    def one(i: int) -> R:
        return on_broken(sources[i], died) if i in suspects else job(sources[i])

    if server:
        yield from _threaded(one, indexes, workers)
    else:
        yield from map(one, indexes)


def _threaded(job: Callable[[T], R], sources: Sequence[T], workers: int) -> Iterator[R]:
    """``job`` of each of ``sources``, in order, by ``workers`` threads."""
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="stac-extract") as threads:
        yield from threads.map(job, sources)


def _server_failed(why: str) -> None:
    """A fork server's workers could not extract: warned once per process."""
    global _WARNED_SERVER
    level = logging.DEBUG if _WARNED_SERVER else logging.WARNING
    _WARNED_SERVER = True
    log.log(
        level,
        "extraction worker processes could not be started from a fork server (%s); extracting with threads",
        why,
    )


@contextlib.contextmanager
def _starting(context: Any, before_fork: Callable[[], None]) -> Iterator[None]:
    """Around starting workers: for a fork of this process, the fork lock
    (no other thread's job in the children), ``before_fork`` and the frozen
    heap (:func:`_frozen_fork`); for a fork server's workers, no import of
    the main module (:func:`producer.served.starting`)."""
    if context.get_start_method() != "fork":
        with served.starting():
            yield
        return
    with _FORKING:
        before_fork()  # first: what it loads is frozen with the rest
        with _frozen_fork():
            yield


@contextlib.contextmanager
def _frozen_fork() -> Iterator[None]:
    """Around a fork: the parent's heap moves out of the collector's reach
    (``gc.freeze``), so a child's collections do not walk, and so copy on
    write, every object it inherited. Unfrozen after, unless frozen before."""
    freeze = gc.get_freeze_count() == 0
    if freeze:
        gc.freeze()
    try:
        yield
    finally:
        if freeze:
            gc.unfreeze()


def _pool(
    job: Callable[[str], R],
    sources: Sequence[str],
    batch: list[int],
    workers: int,
    context: Any,
    state: Any,
    before_fork: Callable[[], None],
    on_broken: Callable[[str, BaseException], R],
) -> Generator[R, None, list[int]]:
    """Yield ``job`` of each product of ``batch`` (indexes into ``sources``),
    in order, from one pool of ``workers`` forked processes. Returns the
    products not yielded when the pool broke (none if it did not). Raises
    :class:`_StartFailed` when the workers cannot be started. A result
    that does not pickle in the worker, or does not load here, fails its
    own product (``on_broken``); a chunk that raised (its environment) is
    extracted again, each product in a process of its own."""
    global _JOB, _SOURCES, _STATE
    from concurrent.futures.process import BrokenProcessPool, ProcessPoolExecutor  # noqa: PLC0415 (see above)

    size = max(1, min(16, len(batch) // (workers * 4)))
    chunks = [batch[k : k + size] for k in range(0, len(batch), size)]
    forked = context.get_start_method() == "fork"
    size_pool = min(workers, len(chunks))
    try:  # its queues need POSIX semaphores, which AWS Lambda, say, does not have (ENOSYS)
        parent = _worker_parent(context)
        if forked:
            pool = ProcessPoolExecutor(
                max_workers=size_pool, mp_context=context, initializer=_die_with_parent, initargs=(parent,)
            )
        else:  # a fork server's workers receive the job and the products once each
            setup = served.setup()
            pool = ProcessPoolExecutor(
                size_pool, context, initializer=_install, initargs=(job, sources, state, setup, parent)
            )
    except Exception as exc:
        raise _StartFailed() from exc
    futures: list[Any] = []  # a consumed chunk's is dropped (None): its results go with what was yielded
    try:
        # a fork pool starts every worker at the first submit: the lock keeps
        # another thread's job out of them
        with _starting(context, before_fork):
            if forked:
                _JOB, _SOURCES, _STATE = job, sources, state
            try:
                for chunk in chunks:
                    futures.append(pool.submit(_run_chunk, chunk))
            except BrokenProcessPool:
                pass  # a worker died while chunks were being submitted: the rest are lost with it
            except BaseException as exc:
                # the pool starts all its workers in the first submit: when a
                # later fork fails, the ones started wait for work forever,
                # and being no daemons they would hold this process at exit
                _stop_workers(pool)
                if isinstance(exc, Exception):
                    raise _StartFailed() from exc
                raise
            finally:
                if forked:
                    _JOB, _SOURCES, _STATE = None, (), None
        for n, future in enumerate(futures):
            try:
                results, records = future.result()
            except BrokenProcessPool:
                return [i for rest in chunks[n:] for i in rest]
            except Exception:  # the worker lives, but the chunk raised (its environment's exit):
                # each of its products again in a process of its own
                for i in chunks[n]:
                    yield _alone(job, sources[i], on_broken, context, before_fork)
                continue
            futures[n] = None  # not kept for the whole pool (a thumbnail's PNG in each result)
            served.replay(_loaded_records(records))
            for i, packed in zip(chunks[n], results, strict=True):
                yield _unpacked(packed, sources[i], on_broken)
            del results, records
        return [i for rest in chunks[len(futures) :] for i in rest]
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _not_alone(exc: BaseException | str) -> WorkerDied:
    """Why a product whose worker died is not extracted again: no process
    could be started for it (it is not run in this one: it may be what kills)."""
    return WorkerDied(
        f"the worker process extracting it died, and no process could be started to extract it alone ({exc})",
        WorkerDied.NOT_STARTED,
    )


def _stop_workers(pool: Any) -> None:
    """Terminate and reap the worker processes ``pool`` started. Only its
    own: the caller's other children (a Prefect or Dask worker, a pool of
    its own) are not ours to stop. ``_processes`` (pid -> process) is the
    executor's record of them (CPython 3.8-3.13), read defensively."""
    for worker in list((getattr(pool, "_processes", None) or {}).values()):
        worker.terminate()
        worker.join()


def _alone(
    job: Callable[[str], R],
    source: str,
    on_broken: Callable[[str, BaseException], R],
    context: Any,
    before_fork: Callable[[], None],
) -> R:
    """``job(source)`` in a process of its own; ``on_broken`` if that dies
    too, or if it cannot be started (no pipe, no fork) or its result cannot
    be read back."""
    try:
        receive, send = context.Pipe(duplex=False)
    except OSError as exc:  # out of file descriptors (EMFILE): this product, not the batch
        return on_broken(source, _not_alone(exc))
    setup = served.setup() if context.get_start_method() != "fork" else None
    parent = _worker_parent(context)
    with _starting(context, before_fork):
        worker = context.Process(target=_send_result, args=(send, job, source, setup, parent), daemon=True)
        try:
            worker.start()
        except Exception as exc:  # not in this process: it may be what kills
            send.close()
            receive.close()
            return on_broken(source, _not_alone(exc))
    send.close()
    try:
        packed, records = receive.recv()
    except EOFError:
        worker.join()
        code = worker.exitcode or 0
        how = f"killed by signal {_signal_name(-code)}" if code < 0 else f"exit code {code}"
        # an exit (any code: the job never returned) or a fatal signal the
        # process raised itself repeats with the product; a kill from outside
        # may not, nor a fork server's 255 (it lost the process: the server died)
        server_lost = setup is not None and code == 255
        crashed = (code >= 0 or -code in _CRASH_SIGNALS) and not server_lost
        if server_lost:
            how = "its fork server reported it lost (exit code 255)"
        return on_broken(
            source,
            WorkerDied(
                f"the worker process extracting it died, and again when it was extracted alone ({how})",
                WorkerDied.CRASHED if crashed else WorkerDied.KILLED,
                -code if code < 0 else None,
            ),
        )
    except Exception as exc:  # a broken message: the worker is reaped all the same
        receive.close()
        worker.join()
        return on_broken(source, _unreadable(exc))
    finally:
        receive.close()
    worker.join()
    served.replay(_loaded_records(records))
    return _unpacked(packed, source, on_broken)


def _packed(result: Any) -> bytes | _Unsent:
    """In a worker: ``result`` pickled on its own, so that one result that
    does not load in the parent (a class only the worker has) fails its own
    product there, not the pool; or why it does not pickle."""
    try:
        return pickle.dumps(result, protocol=pickle.HIGHEST_PROTOCOL)
    except Exception as exc:  # e.g. a lock
        return _Unsent(f"{type(exc).__name__}: {exc}", resources=isinstance(exc, _WANT))


def _unpacked(packed: bytes | _Unsent, source: str, on_broken: Callable[[str, BaseException], R]) -> R:
    """In the parent: the result :func:`_packed` made of ``source``'s job,
    or ``on_broken`` saying why there is none."""
    if isinstance(packed, _Unsent):
        return on_broken(
            source,
            WorkerDied(
                f"its result could not be sent back from the worker process: {packed}",
                WorkerDied.RESOURCES if packed.resources else WorkerDied.UNREADABLE,
            ),
        )
    try:
        result: R = pickle.loads(packed)
    except Exception as exc:
        return on_broken(source, _unreadable(exc))
    return result


def _packed_records(records: list[logging.LogRecord]) -> list[bytes]:
    """In a worker: each captured log record pickled on its own (one that
    does not pickle is left out), so that one that does not load in the
    parent costs that record, not the chunk's results."""
    return [packed for packed in map(_packed, records) if not isinstance(packed, _Unsent)]


def _loaded_records(packed: list[bytes]) -> list[logging.LogRecord]:
    """In the parent: the records :func:`_packed_records` sent that load here."""
    out = []
    for data in packed:
        try:
            out.append(pickle.loads(data))
        except Exception as exc:  # a class only the worker has, an exception that does not rebuild
            log.debug("a worker's log record did not load here: %s: %s", type(exc).__name__, exc)
    return out


#: what a result's way back can run out of (memory, file descriptors): not the product's fault
_WANT = (MemoryError, OSError)


def _unreadable(exc: BaseException) -> WorkerDied:
    return WorkerDied(
        f"its result could not be read back from the worker process ({type(exc).__name__}: {exc})",
        WorkerDied.RESOURCES if isinstance(exc, _WANT) else WorkerDied.UNREADABLE,
    )


class _Unsent(str):
    """Why a result could not be sent back from a worker process (:func:`_packed`);
    ``resources``: for want of memory or a file descriptor."""

    resources: bool

    def __new__(cls, text: str, resources: bool = False) -> _Unsent:
        made = super().__new__(cls, text)
        made.resources = resources
        return made


def _send_result(
    send: Any, job: Callable[[str], Any], source: str, setup: served.Setup | None, parent: int | None
) -> None:
    """In a worker of its own (:func:`_alone`): ``job(source)`` and the
    records captured meanwhile (a fork server's worker: ``setup`` given), sent
    back; it dies with its parent (:func:`_die_with_parent`)."""
    if setup is not None:
        served.release_server()
    _die_with_parent(parent)
    if setup is not None:
        served.adopt(setup)
    packed = _packed(job(source))
    send.send((packed, _packed_records(served.take_records())))


def _signal_name(number: int) -> str:
    """``SIGKILL`` for 9; a real-time signal (no name in :class:`signal.Signals`) by number."""
    try:
        return signal.Signals(number).name
    except ValueError:
        return str(number)

"""Worker processes forked from a fork server (:mod:`producer.parallel`'s
"forkserver" kind): what multiprocessing's fork server does not give them.

A process that runs other threads (an S3 catalog's client, a Prefect flow
run) must not fork itself: a lock another thread holds stays held in the
child. multiprocessing's fork server is a clean interpreter, started once,
that forks each worker from its single thread. Its workers differ from a
fork of this process in four ways, each handled here:

- they import the main module again (as ``spawn`` children do), which runs
  a script's unguarded top level once more per worker, and ``prefect.engine``
  (a flow run's main) costs seconds each: :func:`starting` starts them
  without it; the job only needs ``producer`` (:func:`picklable` refuses one
  that needs ``__main__``);
- they start with the server's environment, not this process's: rotated
  credentials in ``AWS_*`` would be stale, so :func:`setup` sends the
  environment along and :func:`adopt` takes it;
- they have no logging configuration: their records are captured
  (:func:`adopt`) and handed back with the results, to go through this
  process's loggers (:func:`replay`), filtered by its levels;
- the server imports the extraction code once (:data:`PRELOAD`), with one
  BLAS thread, so that it stays single-threaded and each worker starts warm.
"""

from __future__ import annotations

import contextlib
import logging
import os
import pickle
import pickletools
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

#: the module the fork server imports before forking any worker
PRELOAD = "producer._server_preload"

_local = threading.local()
_original_preparation: Any = None
_installed = threading.Lock()


def available() -> bool:
    """Whether the ``forkserver`` start method exists here (POSIX, not Windows)."""
    import multiprocessing  # noqa: PLC0415 (0.1 s of imports that only a pooled batch needs)

    return "forkserver" in multiprocessing.get_all_start_methods()


def context() -> Any:
    """The ``forkserver`` multiprocessing context, set up for our workers:
    the server preloads :data:`PRELOAD` (with whatever else a caller asked
    for, but never ``__main__``), and processes started inside
    :func:`starting` do not import the main module. Call only where
    :func:`available`; only just before starting workers."""
    global _original_preparation
    import multiprocessing  # noqa: PLC0415 (see available)
    from multiprocessing import forkserver, spawn  # noqa: PLC0415

    with _installed:
        if _original_preparation is None:
            _original_preparation = spawn.get_preparation_data
            spawn.get_preparation_data = _preparation_data
        server = getattr(forkserver, "_forkserver", None)
        listed = list(getattr(server, "_preload_modules", None) or [])
        wanted = [m for m in listed if m != "__main__"]
        forkserver.set_forkserver_preload([*wanted, *([PRELOAD] if PRELOAD not in wanted else [])])
    return multiprocessing.get_context("forkserver")


def _preparation_data(name: str) -> dict[str, Any]:
    """multiprocessing's data for a starting child, without the main module
    when this thread is :func:`starting` our workers."""
    data: dict[str, Any] = _original_preparation(name)
    if getattr(_local, "starting", False):
        data.pop("init_main_from_path", None)
        data.pop("init_main_from_name", None)
    return data


@contextlib.contextmanager
def starting() -> Iterator[None]:
    """Around starting workers from this thread: they do not import the main module."""
    _local.starting = True
    try:
        yield
    finally:
        _local.starting = False


def picklable(job: Any) -> bool:
    """Whether ``job`` can go to a fork server's workers: it pickles, and
    refers to nothing in ``__main__`` (which they do not import)."""
    try:
        data = pickle.dumps(job)
    except Exception:  # a closure, a lock, a custom clock: not for a fork server
        return False
    return not any(
        isinstance(arg, str) and (arg == "__main__" or arg.startswith("__main__ "))
        for _, arg, _ in pickletools.genops(data)
    )


@dataclass(frozen=True)
class Setup:
    """What a worker takes from this process (:func:`adopt`)."""

    environ: dict[str, str]
    #: the effective level of the root logger and of each logger this
    #: process configured: records below them are not even captured
    levels: dict[str, int]


def setup() -> Setup:
    """This process's environment and logging levels, for its workers."""
    manager = logging.Logger.manager
    levels = {"": logging.getLogger().getEffectiveLevel()}
    for name, logger in list(manager.loggerDict.items()):
        if isinstance(logger, logging.Logger) and logger.level != logging.NOTSET:
            levels[name] = logger.level
    return Setup(dict(os.environ), levels)


class _Capture(logging.Handler):
    """Keeps every record a worker emits, made picklable, until taken."""

    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        record.msg, record.args, record.exc_info = record.getMessage(), None, None
        self.records.append(record)


_capture: _Capture | None = None


def adopt(given: Setup) -> None:
    """In a worker, first: this process's environment and levels, and every
    record captured instead of printed (:func:`take_records`)."""
    global _capture
    os.environ.clear()
    os.environ.update(given.environ)
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    _capture = _Capture()
    root.addHandler(_capture)
    for name, level in given.levels.items():
        logging.getLogger(name or None).setLevel(level)


def take_records() -> list[logging.LogRecord]:
    """The records captured since the last call (none where nothing captures)."""
    if _capture is None:
        return []
    records, _capture.records = _capture.records, []
    return records


def replay(records: list[logging.LogRecord]) -> None:
    """Records captured in a worker, through this process's loggers and
    their handlers, where this process's levels let them through."""
    for record in records:
        logger = logging.getLogger(record.name)
        if logger.isEnabledFor(record.levelno):
            logger.handle(record)

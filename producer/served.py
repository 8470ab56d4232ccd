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
import sys
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
        if spawn.get_preparation_data is not _preparation_data:
            _original_preparation = spawn.get_preparation_data
            spawn.get_preparation_data = _preparation_data
        # ours first: one BLAS thread before anything imports numpy
        server = getattr(forkserver, "_forkserver", None)
        listed = list(getattr(server, "_preload_modules", None) or [])
        forkserver.set_forkserver_preload([PRELOAD, *(m for m in listed if m not in ("__main__", PRELOAD))])
    return multiprocessing.get_context("forkserver")


def _preparation_data(name: str) -> dict[str, Any]:
    """multiprocessing's data for a starting child, without the main module
    when this thread is :func:`starting` our workers."""
    if not getattr(_local, "starting", False):
        return _original_preparation(name)
    # asking for the start method fixes the caller's default one, which a
    # later multiprocessing.set_start_method() of theirs would then refuse
    from multiprocessing import context  # noqa: PLC0415 (see available)

    default = getattr(context, "_default_context", None)
    unset = default is not None and getattr(default, "_actual_context", 0) is None
    try:
        data: dict[str, Any] = _original_preparation(name)
    finally:
        if unset:
            default._actual_context = None  # type: ignore[union-attr]
    data.pop("init_main_from_path", None)
    data.pop("init_main_from_name", None)
    return data


@contextlib.contextmanager
def starting() -> Iterator[None]:
    """Around starting workers from this thread: they do not import the main module."""
    before = getattr(_local, "starting", False)
    _local.starting = True
    try:
        yield
    finally:
        _local.starting = before


def picklable(job: Any) -> bool:
    """Whether ``job`` can go to a fork server's workers: it pickles, and
    refers to nothing in a main module (``__main__``, ``__mp_main__`` in a
    spawned caller, a package's ``__main__``), which they do not import."""
    import pickletools  # noqa: PLC0415 (a pooled batch's only: not on the cold start)

    try:
        data = pickle.dumps(job)
    except Exception:  # a closure, a lock, a custom clock: not for a fork server
        return False
    return not any(isinstance(arg, str) and _main_module(arg) for _, arg, _ in pickletools.genops(data))


def _main_module(name: str) -> bool:
    """Whether a module name in a pickle (protocol 0-3: ``"module attr"``) is a main module."""
    module = name.split(" ", 1)[0]
    return module in ("__main__", "__mp_main__") or module.endswith(".__main__")


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


#: the attributes every record has (an ``extra=`` adds others)
_STANDARD = frozenset(vars(logging.makeLogRecord({})))


class _Capture(logging.Handler):
    """Keeps every record a worker emits, made picklable, until taken."""

    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.records.append(_picklable_record(record))
        except Exception:  # a bad format string, as any handler reports it
            self.handleError(record)


def _picklable_record(record: logging.LogRecord) -> logging.LogRecord:
    """A copy of ``record`` that pickles: the message formatted unless its
    template and arguments pickle as they are, the traceback as text, an
    ``extra=`` attribute that does not pickle as its ``repr``."""
    message = record.getMessage()  # raises for a bad format string, as any handler would
    fields = dict(vars(record))
    if record.exc_info:
        fields["exc_text"] = record.exc_text or logging.Formatter().formatException(record.exc_info)
    fields["exc_info"] = None
    if not _pickles((record.msg, record.args)):
        fields["msg"], fields["args"] = message, None
    for name, value in vars(record).items():
        if name not in _STANDARD and not _pickles(value):
            fields[name] = repr(value)
    return logging.makeLogRecord(fields)


def _pickles(value: Any) -> bool:
    try:
        pickle.dumps(value)
    except Exception:
        return False
    return True


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
    if PRELOAD not in sys.modules:  # the server could not import it: each worker imports rasterio
        logging.getLogger(__name__).debug("the fork server did not preload %s", PRELOAD)


def release_server() -> None:
    """In a fork server's worker, first: close its copy of the write end of
    the server's "alive" pipe. The server exits when every copy is closed,
    which is meant to be when the process that started it ends; but the
    server hands one to every worker it forks, so a worker kept the server
    alive after that process was killed (SIGKILL), and the server kept the
    worker: neither ever ended. Without its copy, the worker no longer
    holds the server up, and dies with it (:func:`producer.parallel._die_with_parent`).
    It could start no process from the fork server itself: ours never do."""
    from multiprocessing import forkserver  # noqa: PLC0415 (see available)

    server = getattr(forkserver, "_forkserver", None)
    alive = getattr(server, "_forkserver_alive_fd", None)
    if isinstance(alive, int):
        with contextlib.suppress(OSError):
            os.close(alive)
        server._forkserver_alive_fd = None  # type: ignore[union-attr]


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

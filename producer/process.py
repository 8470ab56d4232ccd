"""Settings for a process stac-producer owns: the ``stac-producer`` program
and the Lambda handler (never a library caller's process).

Cold start (issue 12 point 6) is paid by every CLI call and every Lambda cold
start, so such a process:

- asks OpenBLAS (loaded by numpy, which rasterio imports) for one thread
  instead of one per core: the producer does no linear algebra, and starting
  the pool costs ~45 ms of CPU on this 2-core machine. :func:`prepare` sets
  ``OPENBLAS_NUM_THREADS=1`` unless the environment already says otherwise;
  it must run before numpy is imported.
- skips interpreter teardown once its work is done: :func:`quick_exit`
  flushes the standard streams, runs the ``atexit`` handlers (logging's
  flush among them) and ends with :func:`os._exit`, saving the 50-100 ms the
  interpreter spends freeing every module (numpy, GDAL, pystac). When a
  non-daemon thread is still alive it exits normally instead, so that thread
  is joined as Python would.

Nothing here runs at import time.
"""

from __future__ import annotations

import atexit
import os
import sys
import threading

__all__ = ["prepare", "quick_exit", "exit_code"]

#: thread-pool sizes of the BLAS libraries numpy may load; 1 unless set
THREAD_VARIABLES = ("OPENBLAS_NUM_THREADS",)


def prepare() -> None:
    """Set the environment of a stac-producer process before numpy loads.

    Mutates ``os.environ`` (``setdefault``: a value the user set wins). Call
    it first thing in an entry point; after numpy is imported it has no effect.
    """
    for name in THREAD_VARIABLES:
        os.environ.setdefault(name, "1")


def exit_code(code: object) -> int:
    """The status ``sys.exit(code)`` would give, printing a message code to
    stderr as Python does (``None`` is 0, an int itself, anything else 1)."""
    if code is None:
        return 0
    if isinstance(code, int):
        return code & 0xFF if code >= 0 else code % 256
    try:
        print(code, file=sys.stderr)
    except Exception:  # exiting anyway, as the interpreter would
        pass
    return 1


def _other_live_threads() -> bool:
    main = threading.main_thread()
    return any(t is not main and t.is_alive() and not t.daemon for t in threading.enumerate())


def _flush() -> None:
    for stream in (sys.stdout, sys.stderr):
        try:
            if stream is not None:
                stream.flush()
        except (OSError, ValueError):  # closed pipe or stream: nothing more to write
            pass


def quick_exit(code: object = 0) -> None:
    """End this process with ``code`` (as ``sys.exit`` takes it) without
    interpreter teardown. Flushes stdout and stderr, runs the ``atexit``
    handlers, flushes again, then :func:`os._exit`. Raises ``SystemExit``
    instead (a normal exit) while a non-daemon thread other than the main
    one is alive. Never returns."""
    if _other_live_threads():
        raise SystemExit(code)
    status = exit_code(code)
    _flush()
    atexit._run_exitfuncs()
    _flush()
    os._exit(status)

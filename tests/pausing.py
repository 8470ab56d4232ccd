"""Store wrappers that force a race: pause one side at the critical point.

Random schedules almost never hit the windows that matter, so a race test
wraps a real store, lets one writer run until it has read (or is about to
write) a chosen document, runs the other side to completion, then resumes
the first. Shared by the extent, identity and removal race tests.
"""

from __future__ import annotations

import inspect
import threading
from collections.abc import Callable
from typing import Any

from producer.errors import NotFound


class PauseAfterGet:
    """A real store that pauses the caller after its ``nth`` read of ``key``
    (the read has happened: what it returned is what the caller works on).

    ``reached`` is set when the caller is held, and ``held`` is then the
    ``(data, version)`` that read returned; set ``resume`` to let it go on.
    ``missing=True``: a read that found nothing counts too (``held`` None;
    the caller then gets the store's not-found error). Everything else is
    the wrapped store's.
    """

    def __init__(self, inner: Any, key: str, nth: int = 1, missing: bool = False) -> None:
        self.inner, self.key, self.nth, self.seen, self.missing = inner, key, nth, 0, missing
        self.url, self.concurrent_safe = inner.url, inner.concurrent_safe
        self.reached, self.resume = threading.Event(), threading.Event()
        self.held: tuple[bytes, str] | None = None

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def get(self, key: str) -> tuple[bytes, str]:
        try:
            out = self.inner.get(key)
        except NotFound:
            if self.missing:
                self._count(key, None)
            raise
        self._count(key, out)
        return out

    def _count(self, key: str, out: tuple[bytes, str] | None) -> None:
        if key == self.key:
            self.seen += 1
            if self.seen == self.nth:
                self.held = out
                self.reached.set()
                assert self.resume.wait(30), "the test never resumed the paused side"


def in_thread(target: Callable[[], object]) -> tuple[threading.Thread, dict]:
    """Run ``target`` in a daemon thread, started; the dict gets its
    ``result`` or the ``error`` it raised (join the thread first)."""
    out: dict = {}

    def run() -> None:
        try:
            out["result"] = target()
        except BaseException as exc:  # handed back to the test
            out["error"] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, out


def line_of(function: Any, needle: str) -> int:
    """The number of the first source line of ``function`` that holds ``needle``."""
    lines, first = inspect.getsourcelines(function)
    return first + next(i for i, line in enumerate(lines) if needle in line)


def hold_at_line(
    function: Any,
    lineno: int,
    reached: threading.Event,
    resume: threading.Event,
    *,
    timeout: float = 20.0,
    must_resume: bool = True,
) -> Callable[..., Any]:
    """A trace function (``sys.settrace`` it in the thread to hold) that
    holds that thread once, when ``function`` is about to run line
    ``lineno``: ``reached`` is set, then it waits up to ``timeout`` for
    ``resume`` (asserted when ``must_resume``; otherwise it goes on after
    the timeout, for a test whose other side is expected to wait for it)."""
    code = getattr(function, "__code__", None) or function.__func__.__code__
    done = [False]

    def tracer(frame: Any, event: str, arg: Any) -> Any:
        if frame.f_code is not code:
            return None

        def line(frame: Any, event: str, arg: Any) -> Any:
            if event == "line" and frame.f_lineno == lineno and not done[0]:
                done[0] = True
                reached.set()
                resumed = resume.wait(timeout)
                assert resumed or not must_resume, "the test never resumed the held thread"
            return line

        return line

    return tracer

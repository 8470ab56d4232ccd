"""Store wrappers that force a race: pause one side at the critical point.

Random schedules almost never hit the windows that matter, so a race test
wraps a real store, lets one writer run until it has read (or is about to
write) a chosen document, runs the other side to completion, then resumes
the first. Shared by the extent, identity and removal race tests.
"""

from __future__ import annotations

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

"""Crash injection for the commit protocol: kill a verb right after its N-th
storage write, for N = 1, 2, ... until it completes, and hand the state left
behind to the checks of ``tests/test_crash.py``.

A "kill" is :class:`SimulatedKill`, a :class:`BaseException` subclass, so no
``except Exception`` in the package can swallow it: like a SIGKILL, the verb
stops with its N-th write done and nothing after it. Only writes (``put``,
``delete``) are counted; reads are free. Also here: copying a catalog's
state (local directory or S3 prefix) so one crash state can be repaired in
two ways, and the tiny rasters the scenarios register.
"""

from __future__ import annotations

import copy
import shutil
import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

from producer.store.base import Store
from producer.store.local import LocalStore
from tests import rasters


class SimulatedKill(BaseException):
    """The process 'died' right after a storage write (not an ``Exception``)."""


class CrashingStore:
    """Forward every call to ``inner``; raise :class:`SimulatedKill` right
    after write number ``crash_after`` (1-based) has been carried out.

    ``crash_after=None`` never crashes (counts only). ``writes`` lists the
    keys written, in order (``"delete:<key>"`` for deletes). Thread-safe.
    Writes only what the wrapped verb asks for.
    """

    def __init__(self, inner: Store, crash_after: int | None = None) -> None:
        self.inner = inner
        self.url: str = inner.url
        self.concurrent_safe: bool = inner.concurrent_safe
        self.crash_after = crash_after
        self.writes: list[str] = []
        self._lock = threading.Lock()

    def _wrote(self, what: str) -> None:
        with self._lock:
            self.writes.append(what)
            n = len(self.writes)
        if self.crash_after is not None and n == self.crash_after:
            raise SimulatedKill(f"killed after write {n} ({what})")

    def get(self, key: str) -> tuple[bytes, str]:
        return self.inner.get(key)

    def put(self, key: str, data: bytes, *, if_version: str | None = None, create_only: bool = False) -> str:
        version = self.inner.put(key, data, if_version=if_version, create_only=create_only)
        self._wrote(key)
        return version

    def delete(self, key: str, *, if_version: str | None = None) -> None:
        self.inner.delete(key, if_version=if_version)
        self._wrote(f"delete:{key}")

    def list(self, prefix: str = "") -> Iterator[str]:
        return self.inner.list(prefix)

    def exists(self, key: str) -> bool:
        return self.inner.exists(key)


def crash_runs(
    make_store: Callable[[], Store], verb: Callable[[Store], object], limit: int = 40
) -> Iterator[tuple[int, Store, list[str]]]:
    """For N = 1, 2, ...: run ``verb`` on a fresh state (``make_store()``)
    killed after write N; yield ``(N, the real store it ran on, writes done)``.

    Stops when a run completes without being killed (that run is not
    yielded). Fails if no crash ever happened or ``limit`` is reached.
    """
    for n in range(1, limit + 1):
        real = make_store()
        crashing = CrashingStore(real, crash_after=n)
        try:
            verb(crashing)
        except SimulatedKill:
            yield n, real, list(crashing.writes)
            continue
        assert n > 1, "the verb wrote nothing: no crash point to test"
        return
    raise AssertionError(f"still crashing after {limit} writes")


def copy_state(store: Store) -> Store:
    """A new store holding a copy of every object of ``store`` (local: a new
    sibling directory; S3: a new prefix in the same bucket). Writes only the copy."""
    if isinstance(store, LocalStore):
        dest = store.root.parent / f"{store.root.name}-copy-{uuid.uuid4().hex[:8]}"
        if store.root.exists():
            shutil.copytree(store.root, dest, symlinks=True)
        return LocalStore(str(dest), durability=store.durability)
    bucket, prefix = store.bucket, store.prefix  # type: ignore[attr-defined]
    new_prefix = f"{prefix}-copy-{uuid.uuid4().hex[:8]}"
    fs = store.fs  # type: ignore[attr-defined]
    fs.invalidate_cache()
    for path in fs.find(f"{bucket}/{prefix}/"):
        fs.copy(path, f"{bucket}/{new_prefix}/{path[len(bucket) + len(prefix) + 2 :]}")
    return _moved_to(store, new_prefix)


def _moved_to(store: Store, prefix: str) -> Store:
    """``store`` (an S3 store) on ``prefix`` of its bucket, with the same
    client (a new s3fs file system costs a second of set-up). The obstore
    store's default client (its conditional deletes) moves along: a copy
    sharing it would delete under the original's prefix."""
    clone = copy.copy(store)
    clone.prefix = prefix  # type: ignore[attr-defined]
    clone.url = f"s3://{clone.bucket}/{prefix}"  # type: ignore[attr-defined]
    fallback = getattr(store, "_fallback", None)
    if fallback is not None:
        clone._fallback = _moved_to(fallback, prefix)  # type: ignore[attr-defined]
    return clone


def write_tile(folder: Path, name: str, lon: float, lat: float) -> Path:
    """A 4x4 EPSG:4326 GeoTIFF at (lon, lat); its date comes from ``name``."""
    return rasters.write_tile(folder, name, lon, lat, size=4, pixel=0.05)


class PausingStore(CrashingStore):
    """Forward every call to ``inner``; the first write whose description
    (``key``, or ``delete:<key>``) equals ``pause_before`` waits: it sets
    ``reached`` and blocks until ``resume`` is set, then runs. Used to force
    a race at the critical point of one verb while another verb runs.
    """

    def __init__(self, inner: Store, pause_before: str, timeout: float = 30.0) -> None:
        super().__init__(inner)
        self.pause_before = pause_before
        self.reached = threading.Event()
        self.resume = threading.Event()
        self.timeout = timeout

    def _maybe_pause(self, what: str) -> None:
        if what == self.pause_before and not self.reached.is_set():
            self.reached.set()
            if not self.resume.wait(self.timeout):
                raise TimeoutError(f"nobody resumed the write {what}")

    def put(self, key: str, data: bytes, *, if_version: str | None = None, create_only: bool = False) -> str:
        self._maybe_pause(key)
        return super().put(key, data, if_version=if_version, create_only=create_only)

    def delete(self, key: str, *, if_version: str | None = None) -> None:
        self._maybe_pause(f"delete:{key}")
        super().delete(key, if_version=if_version)


def run_paused(store: PausingStore, verb: Callable[[], object], meanwhile: Callable[[], object]) -> object:
    """Run ``verb`` in a thread until ``store`` pauses it, run ``meanwhile``
    here, then let ``verb`` finish; return what ``verb`` returned (re-raise
    what it raised)."""
    out: dict[str, object] = {}

    def target() -> None:
        try:
            out["result"] = verb()
        except BaseException as exc:  # handed back to the test below
            out["error"] = exc

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    assert store.reached.wait(30), "the verb never reached its pause point"
    try:
        meanwhile()
    finally:
        store.resume.set()
        thread.join(30)
    assert not thread.is_alive(), "the paused verb did not finish"
    if "error" in out:
        raise out["error"]  # type: ignore[misc]
    return out.get("result")

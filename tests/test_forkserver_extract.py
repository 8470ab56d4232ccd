"""Issue 12 point 3 and 4 for a process running other threads (an S3
catalog's client, a Prefect or Dask worker): a large batch is extracted by
processes forked from a fork server, never by a fork of the threaded
process itself; what cannot go there (a job that does not pickle, a
daemonic process, workers that cannot start) uses threads."""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

import producer
from producer import parallel
from producer.options import RegisterOptions
from tests import rasters
from tests.trees import assert_stac_valid_tree

pytestmark = pytest.mark.skipif(
    parallel._server_context() is None, reason="needs the forkserver start method"
)


class _Job:
    """A job that pickles (a fork server's workers receive it so), killing
    its worker on the products in ``bad``."""

    def __init__(self, bad: frozenset[str] = frozenset()) -> None:
        self.bad, self.parent = bad, os.getpid()

    def __call__(self, source: str) -> str:
        if source in self.bad and os.getpid() != self.parent:
            os.kill(os.getpid(), signal.SIGKILL)
        return f"ok {source} {os.getpid()}"


def _broken(source: str, exc: BaseException) -> str:
    return f"broken {source}: {exc}"


@pytest.fixture
def another_thread():
    """This process runs a second thread, as one with an S3 client does."""
    stop = threading.Event()
    thread = threading.Thread(target=stop.wait, daemon=True)
    thread.start()
    yield
    stop.set()
    thread.join()


def test_auto_kind_uses_a_fork_server_while_other_threads_run(monkeypatch, another_thread):
    monkeypatch.setattr(parallel, "cores", lambda: 2)
    assert parallel.extract_kind(1000, 2) == "forkserver"
    assert parallel.extract_kind(parallel.MIN_FORKED - 1, 2) == "thread"
    assert parallel.extract_kind(1000, 4) == "thread"  # more than cores + 1: waiting, not CPU
    monkeypatch.setattr(threading, "active_count", lambda: 1)
    assert parallel.extract_kind(1000, 2) == "process"  # a single thread forks itself


def test_fork_server_workers_extract_in_order_and_a_killer_fails_alone(another_thread):
    sources = [f"p{i:03d}" for i in range(40)]
    out = list(parallel.prepare_all(_Job(frozenset({"p017"})), sources, 2, _broken, kind="forkserver"))
    assert len(out) == len(sources)
    assert out[17].startswith("broken p017: ") and "died" in out[17]
    ok = [r for i, r in enumerate(out) if i != 17]
    assert [r.split()[1] for r in ok] == [s for s in sources if s != "p017"]
    assert all(int(r.split()[2]) != os.getpid() for r in ok)  # extracted in workers


def test_a_job_that_does_not_pickle_is_extracted_by_threads(monkeypatch, another_thread):
    monkeypatch.setattr(parallel, "cores", lambda: 2)
    lock = threading.Lock()  # a closure over a lock: no fork server takes it

    def job(source: str) -> int:
        with lock:
            return os.getpid()

    sources = [str(i) for i in range(parallel.MIN_FORKED)]
    assert set(parallel.prepare_all(job, sources, 2, _broken, kind="auto")) == {os.getpid()}


def _kind_in_a_daemon(out) -> None:
    parallel.cores = lambda: 2  # one thread, two cores: everything else says fork
    out.send(parallel.extract_kind(1000, 2))


def test_a_daemonic_process_extracts_with_threads():
    """A daemonic process (a Dask worker) may start no process: asking for
    one raised an AssertionError that failed the whole batch."""
    context = multiprocessing.get_context("fork")
    receive, send = context.Pipe(duplex=False)
    child = context.Process(target=_kind_in_a_daemon, args=(send,), daemon=True)
    child.start()
    assert receive.recv() == "thread"
    child.join()


def _items(root: Path) -> dict[str, dict]:
    out = {}
    for path in sorted((root / "c").glob("*/*.json")):
        doc = json.loads(path.read_text())
        for stamp in ("created", "updated"):
            doc["properties"].pop(stamp, None)
        out[path.name] = doc
    return out


def test_a_threaded_process_registers_a_large_batch_through_a_fork_server(
    tmp_path, monkeypatch, caplog, another_thread
):
    """Items made by the fork server's workers (the job pickled to them) are
    the items threads make."""
    monkeypatch.setattr(parallel, "cores", lambda: 2)
    sources = rasters.dated_cogs(tmp_path / "data", parallel.MIN_FORKED)
    with caplog.at_level(logging.DEBUG, logger="producer.parallel"):
        served = producer.register(
            sources, catalog=str(tmp_path / "served"), collection="c", options=RegisterOptions(workers=2)
        )
    assert [r.action for r in served] == ["created"] * len(sources)
    assert any("(forkserver)" in r.getMessage() for r in caplog.records)
    monkeypatch.setattr(parallel, "EXTRACT_KIND", "thread")
    threaded = producer.register(
        sources, catalog=str(tmp_path / "threaded"), collection="c", options=RegisterOptions(workers=2)
    )
    assert [r.action for r in threaded] == ["created"] * len(sources)
    assert _items(tmp_path / "served") == _items(tmp_path / "threaded")
    assert len(_items(tmp_path / "served")) == len(sources)
    assert_stac_valid_tree(tmp_path / "served")


_UNGUARDED = """
import os, sys, threading
import producer
from producer import parallel

parallel.cores = lambda: 2
threading.Thread(target=threading.Event().wait, daemon=True).start()
with open(sys.argv[3], "a") as runs:
    runs.write(f"{os.getpid()}\\n")
sources = open(sys.argv[1]).read().split()
results = producer.register(sources, catalog=sys.argv[2], collection="c")
print("actions", sorted({r.action.value for r in results}))
"""


def test_an_unguarded_script_registers_with_threads_and_is_told_how_to_use_processes(tmp_path):
    """A script calling register at its top level runs again in every worker
    a fork server starts (they import the main module): the register call
    there refuses, the workers die before any product, and the batch, and
    the process's later ones, are extracted by threads instead, with a
    warning that names the fix."""
    sources = rasters.dated_cogs(tmp_path / "data", parallel.MIN_FORKED)
    listing = tmp_path / "sources.txt"
    listing.write_text("\n".join(sources))
    script = tmp_path / "unguarded.py"
    script.write_text(_UNGUARDED)
    runs = tmp_path / "runs.txt"
    out = subprocess.run(
        [sys.executable, str(script), str(listing), str(tmp_path / "cat"), str(runs)],
        capture_output=True,
        text=True,
        cwd=Path(__file__).parents[1],
        env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])},
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert "actions ['created']" in out.stdout
    assert "register was called while a worker process" in out.stderr
    assert 'if __name__ == "__main__":' in out.stderr and "extracts with threads from now on" in out.stderr
    assert len(runs.read_text().split()) > 1  # the script did run again in a worker
    assert_stac_valid_tree(tmp_path / "cat")

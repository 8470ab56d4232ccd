"""Issue 12 point 3 and 4 for a process running other threads (an S3
catalog's client, a Prefect or Dask worker): a large batch is extracted by
processes forked from a fork server, never by a fork of the threaded
process itself, with this process's environment and logging, and without
importing its main module again; what cannot go there (a job that does not
pickle, a daemonic process, workers that cannot start) uses threads."""

from __future__ import annotations

import errno
import faulthandler
import json
import logging
import multiprocessing
import os
import pickle
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

import producer
from producer import ingest, parallel, served
from producer.commit import Committer
from producer.extract.options import ExtractOptions
from producer.options import RegisterOptions
from producer.store import LocalStore
from tests import rasters
from tests.test_parallel_extract import _LoadsOnlyInWorkers
from tests.trees import assert_stac_valid_tree

pytestmark = pytest.mark.skipif(not served.available(), reason="needs the forkserver start method")


class _Job:
    """A job that pickles (a fork server's workers receive it so), ending
    its worker on the products in ``bad``: ``how`` "kill" (SIGKILL, from
    outside), "crash" (SIGSEGV) or "exit"."""

    def __init__(self, bad: frozenset[str] = frozenset(), how: str = "kill") -> None:
        self.bad, self.parent, self.how = bad, os.getpid(), how

    def __call__(self, source: str) -> str:
        if source in self.bad and os.getpid() != self.parent:
            if self.how == "exit":
                os._exit(3)
            if self.how == "crash":
                faulthandler.disable()  # no traceback dump in the test's output
            os.kill(os.getpid(), signal.SIGKILL if self.how == "kill" else signal.SIGSEGV)
        return f"ok {source} {os.getpid()}"


def _broken(source: str, exc: BaseException) -> str:
    return f"broken {source}: {exc} [{getattr(exc, 'cause', None)}]"


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


@pytest.mark.parametrize(("how", "cause"), [("kill", "killed"), ("crash", "crashed"), ("exit", "crashed")])
def test_fork_server_workers_extract_in_order_and_a_killer_fails_alone(another_thread, how, cause):
    sources = [f"p{i:03d}" for i in range(40)]
    out = list(parallel.prepare_all(_Job(frozenset({"p017"}), how), sources, 2, _broken, kind="forkserver"))
    assert len(out) == len(sources)
    assert out[17].startswith("broken p017: ") and "died" in out[17]
    assert out[17].endswith(f"[{cause}]"), out[17]  # how its own process ended, as when forked
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
    context = multiprocessing.get_context("forkserver")  # a single-threaded child, whatever pytest runs
    receive, send = context.Pipe(duplex=False)
    child = context.Process(target=_kind_in_a_daemon, args=(send,), daemon=True)
    with served.starting():
        child.start()
    send.close()
    assert receive.poll(60), "the daemonic child answered nothing"
    assert receive.recv() == "thread"
    child.join()


class _Env:
    def __call__(self, source: str) -> tuple[str, int]:
        return os.environ.get("STAC_PRODUCER_TEST_TOKEN", "unset"), os.getpid()


def test_fork_server_workers_see_this_processs_environment_as_it_is_now(monkeypatch):
    """The fork server starts once, with the environment of that moment:
    credentials rotated in the environment since (AWS_SESSION_TOKEN) were
    stale in its workers."""
    sources = [str(i) for i in range(8)]
    monkeypatch.setenv("STAC_PRODUCER_TEST_TOKEN", "old")
    old = list(parallel.prepare_all(_Env(), sources, 2, _broken, kind="forkserver"))
    monkeypatch.setenv("STAC_PRODUCER_TEST_TOKEN", "rotated")
    rotated = list(parallel.prepare_all(_Env(), sources, 2, _broken, kind="forkserver"))
    assert {value for value, _ in old} == {"old"} and {value for value, _ in rotated} == {"rotated"}
    assert os.getpid() not in {pid for _, pid in old + rotated}  # read in the workers


class _Warns:
    def __call__(self, source: str) -> str:
        logging.getLogger("producer.test_served").warning(
            "thumbnail skipped for %s in %d", source, os.getpid()
        )
        return source


def test_fork_server_workers_log_through_this_processs_loggers_and_levels(caplog):
    """A fork server's workers have no logging configuration of their own:
    their warnings went to Python's last-resort stderr output, unformatted,
    whatever this process's levels."""
    sources = [f"p{i}" for i in range(6)]
    with caplog.at_level(logging.WARNING, logger="producer"):
        list(parallel.prepare_all(_Warns(), sources, 2, _broken, kind="forkserver"))
    seen = [r.getMessage() for r in caplog.records if r.name == "producer.test_served"]
    assert sorted(m.split()[3] for m in seen) == sorted(sources)
    assert all(int(m.split()[-1]) != os.getpid() for m in seen)  # emitted in the workers
    caplog.clear()
    with caplog.at_level(logging.ERROR, logger="producer"):
        list(parallel.prepare_all(_Warns(), sources, 2, _broken, kind="forkserver"))
    assert not [r for r in caplog.records if r.name == "producer.test_served"]


class _Awkward:
    """Logs what a worker's capture must survive, and returns a lock (which
    does not pickle) for the products in ``unsendable``."""

    def __init__(self, unsendable: frozenset[str] = frozenset()) -> None:
        self.unsendable = unsendable

    def __call__(self, source: str) -> object:
        log = logging.getLogger("producer.test_served")
        log.warning("client for %s", source, extra={"client": threading.Lock()})  # does not pickle
        if not self.unsendable:
            log.warning("a format with %s %s", "one argument")  # a library's logging bug
        return threading.Lock() if source in self.unsendable else f"ok {source}"


def test_worker_records_that_do_not_pickle_or_format_cost_nothing(caplog):
    """A record with an ``extra=`` that does not pickle failed the whole
    batch when its chunk's results were sent back; a bad format string
    raised inside the product's extraction."""
    sources = [f"p{i:03d}" for i in range(40)]
    with caplog.at_level(logging.WARNING, logger="producer"):
        out = list(parallel.prepare_all(_Awkward(), sources, 2, _broken, kind="forkserver"))
    assert out == [f"ok {s}" for s in sources]
    clients = [r for r in caplog.records if r.getMessage().startswith("client for")]
    assert len(clients) == len(sources) and all("unlocked" in str(r.client) for r in clients)


@pytest.mark.parametrize("kind", ["process", "forkserver"])
def test_a_result_that_does_not_pickle_fails_its_own_product_only(kind):
    """A result that cannot be sent back raised out of the batch, after the
    earlier results were yielded (a pipelined batch half-written); then it
    failed its whole chunk. Each result is now sent on its own."""
    sources = [f"p{i:03d}" for i in range(40)]
    out = list(parallel.prepare_all(_Awkward(frozenset({"p025"})), sources, 2, _broken, kind=kind))
    assert len(out) == len(sources)
    assert out[25].startswith("broken p025: ") and "could not be sent back" in out[25]
    assert [r for i, r in enumerate(out) if i != 25] == [f"ok {s}" for s in sources if s != "p025"]


def _arrive(parent: int) -> _Job:
    if os.getpid() != parent:
        os._exit(3)  # a worker that cannot start (its job does not unpickle there)
    return _Job()


class _DiesOnArrival(_Job):
    def __reduce__(self):
        return _arrive, (self.parent,)


def test_workers_that_cannot_start_leave_the_batch_to_threads(caplog):
    sources = [f"p{i:03d}" for i in range(20)]
    with caplog.at_level(logging.DEBUG, logger="producer.parallel"):
        out = list(parallel.prepare_all(_DiesOnArrival(), sources, 2, _broken, kind="forkserver"))
    assert [r.split()[1] for r in out] == sources
    assert {int(r.split()[2]) for r in out} == {os.getpid()}  # by threads, here
    assert any("could not be started from a fork server" in r.getMessage() for r in caplog.records)


def test_a_fork_server_pool_that_cannot_be_made_leaves_the_batch_to_threads(monkeypatch):
    """Where POSIX semaphores do not exist (AWS Lambda: ENOSYS) the pool's
    queues cannot be made: that error escaped and failed the whole batch."""
    from concurrent.futures import process

    def no_semaphores(self, *args, **kwargs):
        raise OSError(errno.ENOSYS, "Function not implemented")

    monkeypatch.setattr(process.ProcessPoolExecutor, "__init__", no_semaphores)
    sources = [f"p{i:03d}" for i in range(20)]
    out = list(parallel.prepare_all(_Job(), sources, 2, _broken, kind="forkserver"))
    assert [r.split()[1] for r in out] == sources
    assert {int(r.split()[2]) for r in out} == {os.getpid()}  # by threads, here


def test_no_shared_memory_leaves_the_batch_to_threads(monkeypatch):
    """Where /dev/shm does not exist (AWS Lambda) the products' shared state
    cannot be made: that error escaped and failed the whole batch."""
    from multiprocessing import sharedctypes

    def no_shm(*args, **kwargs):
        raise FileNotFoundError(errno.ENOENT, "No such file or directory", "/dev/shm")

    monkeypatch.setattr(sharedctypes, "RawArray", no_shm)
    sources = [f"p{i:03d}" for i in range(20)]
    out = list(parallel.prepare_all(_Job(), sources, 2, _broken, kind="forkserver"))
    assert [r.split()[1] for r in out] == sources
    assert {int(r.split()[2]) for r in out} == {os.getpid()}  # by threads, here


_START_METHOD = """
import multiprocessing, os, sys, threading
from producer import parallel
from tests.test_forkserver_extract import _Job, _broken
assert multiprocessing.get_start_method(allow_none=True) is None
out = list(parallel.prepare_all(_Job(), [str(i) for i in range(8)], 2, _broken, kind="forkserver"))
assert {int(r.split()[2]) for r in out} != {os.getpid()}, out
multiprocessing.set_start_method("spawn")  # the caller's choice, after our batch
print("set")
"""


def test_a_batch_leaves_the_callers_start_method_unset():
    """Starting a fork server's workers asked multiprocessing for the start
    method, which fixed the caller's default: their own
    ``set_start_method`` then raised 'context has already been set'."""
    out = subprocess.run(
        [sys.executable, "-c", _START_METHOD],
        capture_output=True,
        text=True,
        cwd=Path(__file__).parents[1],
        timeout=120,
    )
    assert out.returncode == 0 and "set" in out.stdout, out.stderr[-2000:]


def _custom_check(doc: dict, where: str) -> None:
    raise AssertionError(f"custom check of {where}")


def test_the_extraction_job_pickles_with_its_validator():
    committer = Committer(LocalStore("/nonexistent-catalog"), ingest.validator().check)
    job = ingest._Extraction.of(committer, "c", ExtractOptions(collection="c"), "c")
    again = pickle.loads(pickle.dumps(job))
    assert again == job and again.validate == ingest.validator().check  # the default, rebuilt
    custom = ingest._Extraction.of(
        Committer(LocalStore("/nonexistent-catalog"), _custom_check), "c", ExtractOptions(collection="c"), "c"
    )
    assert pickle.loads(pickle.dumps(custom)).validate is _custom_check


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
        by_server = producer.register(
            sources, catalog=str(tmp_path / "served"), collection="c", options=RegisterOptions(workers=2)
        )
    assert [r.action for r in by_server] == ["created"] * len(sources)
    messages = [r.getMessage() for r in caplog.records if r.name == "producer.parallel"]
    assert any("(forkserver)" in m for m in messages)
    assert not any("could not be started" in m for m in messages)
    monkeypatch.setattr(parallel, "EXTRACT_KIND", "thread")
    threaded = producer.register(
        sources, catalog=str(tmp_path / "threaded"), collection="c", options=RegisterOptions(workers=2)
    )
    assert [r.action for r in threaded] == ["created"] * len(sources)
    assert _items(tmp_path / "served") == _items(tmp_path / "threaded")
    assert len(_items(tmp_path / "served")) == len(sources)
    assert_stac_valid_tree(tmp_path / "served")


_UNGUARDED = """
import logging, os, sys, threading
import producer
from producer import parallel

logging.basicConfig(level=logging.WARNING)
logging.getLogger("producer.parallel").setLevel(logging.DEBUG)
parallel.cores = lambda: 2
threading.Thread(target=threading.Event().wait, daemon=True).start()
with open(sys.argv[3], "a") as runs:
    runs.write(f"{os.getpid()}\\n")
sources = open(sys.argv[1]).read().split()
results = producer.register(sources, catalog=sys.argv[2], collection="c")
print("actions", sorted({r.action.value for r in results}))
"""


def test_an_unguarded_script_runs_once_and_its_batch_goes_to_fork_server_workers(tmp_path):
    """Workers started by a fork server import the main module again, as
    ``spawn`` children do: a script registering at its top level ran again
    in each of them (and a flow run's main, ``prefect.engine``, cost
    seconds of imports per worker). Ours do not import it."""
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
    assert len(runs.read_text().split()) == 1, "the script ran again in a worker"
    assert "(forkserver)" in out.stderr and "could not be started" not in out.stderr, out.stderr[-3000:]
    assert_stac_valid_tree(tmp_path / "cat")


class _LogsWhatOnlyWorkersLoad:
    """Logs, for ``p025``, a record whose argument pickles in the worker but
    does not load in ``parent``."""

    def __init__(self, parent: int) -> None:
        self.parent = parent

    def __call__(self, source: str) -> str:
        log = logging.getLogger("producer.test_served")
        if source == "p025":
            log.warning("product %s: %s", source, _LoadsOnlyInWorkers(self.parent))
        log.warning("done %s", source)
        return f"ok {source}"


def test_a_workers_log_record_that_does_not_load_here_costs_that_record_only(caplog):
    """The chunk's records came back with its results in one message: one
    record that did not load here broke the pool, the chunk broke the next
    ones too, and after three broken pools the batch's remaining products
    failed (15 of 40)."""
    sources = [f"p{i:03d}" for i in range(40)]
    with caplog.at_level(logging.WARNING, logger="producer"):
        out = list(
            parallel.prepare_all(
                _LogsWhatOnlyWorkersLoad(os.getpid()), sources, 2, _broken, kind="forkserver"
            )
        )
    assert out == [f"ok {s}" for s in sources]
    done = [r.getMessage() for r in caplog.records if r.name == "producer.test_served"]
    assert done == [f"done {s}" for s in sources]  # the others replayed, in order

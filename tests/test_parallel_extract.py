"""Issue 12 point 4: large local batches extract in forked processes when
the machine has the cores for it, and a product that kills its worker
process fails alone, naming itself, while the rest of the batch is
extracted again and registered."""

from __future__ import annotations

import errno
import faulthandler
import gc
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

import producer
from producer import extract, ingest, parallel, served
from producer.errors import StoreError
from producer.ingest import register_products
from producer.options import RegisterOptions, flag_spelling
from producer.store import CountingStore, LocalStore
from tests import rasters
from tests.trees import assert_stac_valid_tree

pytestmark = pytest.mark.skipif(parallel._fork_context() is None, reason="needs fork")


def _broken(source: str, exc: BaseException) -> str:
    return f"broken {source}: {exc} [{getattr(exc, 'cause', None)}]"


def _kill_on(bad: set[str], how: str = "exit"):
    parent = os.getpid()

    def job(source: str) -> str:
        if source in bad and os.getpid() != parent:
            if how == "exit":
                os._exit(3)
            if how == "abort":  # what GDAL does on a failed assertion
                faulthandler.disable()  # no traceback dump in the test's output
                os.abort()
            # SIGRTMIN + 6 has no name in signal.Signals (its ValueError escaped)
            os.kill(os.getpid(), signal.SIGKILL if how == "sigkill" else signal.SIGRTMIN + 6)
        return f"ok {source} {os.getpid()}"

    return job


def test_auto_kind_forks_only_large_batches_from_a_single_thread(monkeypatch):
    monkeypatch.setattr(parallel, "cores", lambda: 2)
    with monkeypatch.context() as single:
        single.setattr(threading, "active_count", lambda: 1)  # pytest's own threads are not under test
        assert parallel.extract_kind(parallel.MIN_FORKED, 2) == "process"
        assert parallel.extract_kind(parallel.MIN_FORKED - 1, 2) == "thread"
        assert parallel.extract_kind(1000, 1) == "thread"  # one worker: nothing to fork for
        # more workers than cores + 1 overlap waiting: threads, not a process (and client) each
        assert parallel.extract_kind(1000, 4) == "thread"
        assert parallel.extract_kind(1000, 8) == "thread"
        single.setattr(parallel, "_fork_context", lambda: None)  # no fork (not POSIX): threads
        single.setattr(served, "available", lambda: False)
        assert parallel.extract_kind(1000, 2) == "thread"
    stop = threading.Event()
    other = threading.Thread(target=stop.wait)
    other.start()
    try:  # forking a process that runs other threads can copy a held lock into the child
        assert parallel.extract_kind(1000, 2) != "process"
    finally:
        stop.set()
        other.join()


@pytest.mark.parametrize("load", [0.0, 2.0, 10.0])
def test_auto_kind_forks_whatever_the_load_average_says(monkeypatch, load):
    """A long backfill's own batches raise the 1-minute load to ~2 on 2 cores
    within half a minute; reading that as other work switched every later
    batch to threads, at half the throughput (and processes win on busy
    cores too: BENCHMARKS.md, "sustained batches")."""
    monkeypatch.setattr(threading, "active_count", lambda: 1)  # pytest's own threads are not under test
    monkeypatch.setattr(os, "getloadavg", lambda: (load, load, load))
    monkeypatch.setattr(parallel, "cores", lambda: 2)
    assert parallel.extract_kind(1000, 2) == "process"
    assert parallel.extract_kind(1000, 3) == "process"


@pytest.mark.parametrize(
    ("files", "expected"),
    [
        ({"cpu.max": "200000 100000\n"}, 2),  # cgroup v2: 2 CPUs
        ({"cpu.max": "150000 100000\n"}, 2),  # 1.5 CPUs: a second worker still gets half a core
        ({"cpu.max": "50000 100000\n"}, 1),
        ({"cpu.max": "max 100000\n"}, None),  # no limit
        ({"cpu/cpu.cfs_quota_us": "400000\n", "cpu/cpu.cfs_period_us": "100000\n"}, 4),  # cgroup v1
        ({"cpu/cpu.cfs_quota_us": "-1\n", "cpu/cpu.cfs_period_us": "100000\n"}, None),
        ({}, None),  # no cgroup file system
    ],
)
def test_cgroup_cpu_quota_is_read_from_v2_then_v1(tmp_path, files, expected):
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    assert parallel.cgroup_cpus(str(tmp_path)) == expected


def test_cores_follow_the_container_quota_not_the_nodes_cpus(tmp_path, monkeypatch):
    """A pod limited to 2 CPUs on a big node: 2 extraction workers, not one
    per CPU of the node (each a forked process holding memory)."""
    (tmp_path / "cpu.max").write_text("200000 100000\n")
    monkeypatch.setattr(parallel, "CGROUP_ROOT", str(tmp_path))
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(64)))
    assert parallel.cores() == 2
    assert parallel.extraction_workers(0, 1000) == 2
    (tmp_path / "cpu.max").write_text("max 100000\n")
    assert parallel.cores() == 64


@pytest.mark.parametrize(
    ("how", "cause"),
    [("exit", "crashed"), ("abort", "crashed"), ("sigkill", "killed"), ("realtime-signal", "killed")],
)
def test_a_product_killing_its_worker_fails_alone_and_the_others_are_extracted_again(how, cause):
    sources = [f"p{i:03d}" for i in range(40)]
    out = list(parallel.prepare_all(_kill_on({"p017"}, how), sources, 2, _broken, kind="process"))
    assert len(out) == len(sources)
    assert out[17].startswith("broken p017: ") and "p017" in out[17]
    # an exit or a crash repeats with the product; a kill from outside (the
    # out-of-memory killer) may not: callers classify the failure by it
    assert out[17].endswith(f"[{cause}]"), out[17]
    ok = [r for i, r in enumerate(out) if i != 17]
    assert [r.split()[1] for r in ok] == [s for s in sources if s != "p017"]
    assert all(int(r.split()[2]) != os.getpid() for r in ok)  # extracted in workers


def test_a_pool_that_cannot_be_made_leaves_the_batch_to_this_process(monkeypatch):
    """Where POSIX semaphores do not exist (AWS Lambda: ENOSYS), making the
    pool's queues fails before any worker starts: that error escaped and
    failed the whole batch."""
    from concurrent.futures import process

    def no_semaphores(self, *args, **kwargs):
        raise OSError(errno.ENOSYS, "Function not implemented")

    monkeypatch.setattr(process.ProcessPoolExecutor, "__init__", no_semaphores)
    sources = [f"p{i:03d}" for i in range(20)]
    out = list(parallel.prepare_all(_kill_on(set()), sources, 2, _broken, kind="process"))
    assert [r.split()[1] for r in out] == sources
    assert {int(r.split()[2]) for r in out} == {os.getpid()}  # extracted here instead


def test_no_shared_memory_leaves_the_batch_to_this_process(monkeypatch):
    """Where /dev/shm does not exist (AWS Lambda) the products' shared state
    cannot be made: that error escaped and failed the whole batch."""
    from multiprocessing import sharedctypes

    def no_shm(*args, **kwargs):
        raise FileNotFoundError(errno.ENOENT, "No such file or directory", "/dev/shm")

    monkeypatch.setattr(sharedctypes, "RawArray", no_shm)
    sources = [f"p{i:03d}" for i in range(20)]
    out = list(parallel.prepare_all(_kill_on(set()), sources, 2, _broken, kind="process"))
    assert [r.split()[1] for r in out] == sources
    assert {int(r.split()[2]) for r in out} == {os.getpid()}


def test_what_is_loaded_before_a_fork_is_frozen_with_the_rest():
    """``before_fork`` (the batch loads rasterio there) ran after the heap
    was frozen: the children's collector walked, and so copied, every
    object it made."""
    kept: list[list] = []

    def load() -> None:
        if not kept:
            kept.extend([] for _ in range(20000))  # tracked by the collector

    def frozen(source: str) -> int:
        return gc.get_freeze_count()

    plain = list(parallel.prepare_all(frozen, [str(i) for i in range(8)], 2, _broken, kind="process"))
    loaded = list(
        parallel.prepare_all(frozen, [str(i) for i in range(8)], 2, _broken, kind="process", before_fork=load)
    )
    assert min(loaded) - max(plain) > 19000  # the 20,000 lists it made (give or take what was freed)


def test_a_broken_rasterio_install_fails_each_product_not_the_batch(tmp_path, monkeypatch):
    """Loading rasterio before forking (so that workers inherit it) raised
    out of the batch when the install is broken; each product failed alone
    before, saying why."""
    sources = rasters.dated_cogs(tmp_path / "data", 12)

    def broken_install(name: str):
        raise ImportError("libgdal.so.32: cannot open shared object file")

    monkeypatch.setattr(extract, "__getattr__", broken_install)
    monkeypatch.setattr(parallel, "EXTRACT_KIND", "process")
    results = producer.register(
        sources, catalog=str(tmp_path / "cat"), collection="c", options=RegisterOptions(workers=2)
    )
    assert [r.source for r in results] == sources
    assert all(r.action == "error" and "libgdal" in (r.error or "") for r in results), results[0].error


def test_broken_pools_are_bounded_and_the_rest_fail_clearly():
    sources = [f"p{i:03d}" for i in range(30)]
    out = list(parallel.prepare_all(_kill_on(set(sources)), sources, 2, _broken, kind="process"))
    assert len(out) == len(sources)
    assert all(r.startswith(f"broken {s}: ") for r, s in zip(out, sources, strict=True))
    assert any("worker processes died" in r for r in out)
    # every product exited alone too (its own doing) or was never tried again
    assert {r.rsplit("[", 1)[1] for r in out} <= {"crashed]", "not-tried]"}
    assert any(r.endswith("[not-tried]") for r in out)


def test_workers_share_the_parents_heap_frozen_and_the_parent_unfreezes():
    def frozen(source: str) -> int:
        return gc.get_freeze_count()

    before = gc.get_freeze_count()
    out = list(parallel.prepare_all(frozen, [str(i) for i in range(8)], 2, _broken, kind="process"))
    assert min(out) > before  # the heap the children inherited is out of the collector's reach
    assert gc.get_freeze_count() == before


@pytest.mark.parametrize(("how", "kind"), [("crash", "input"), ("kill", "storage")])
def test_register_with_a_product_that_kills_its_worker_registers_every_other(
    tmp_path, monkeypatch, how, kind
):
    """A local product that crashes its reader in a process of its own too
    will crash it again: an ``input`` error, which the Prefect task does not
    retry (it was ``storage``, retried in vain, with advice to extract it in
    the caller's process, which the crash would end). A kill from outside
    (the out-of-memory killer) stays ``storage``."""
    sources = rasters.dated_cogs(tmp_path / "data", 12)
    bad = sources[5]
    real = extract.create_item
    parent = os.getpid()

    def create_item(source, options):  # a crash inside GDAL, or the OOM killer, as the worker sees it
        if source == bad and os.getpid() != parent:
            if how == "crash":
                os._exit(11)
            os.kill(os.getpid(), signal.SIGKILL)
        return real(source, options)

    monkeypatch.setattr(extract, "create_item", create_item)
    monkeypatch.setattr(parallel, "EXTRACT_KIND", "process")
    results = producer.register(
        sources, catalog=str(tmp_path / "cat"), collection="c", options=RegisterOptions(workers=2)
    )
    assert [r.source for r in results] == sources
    assert results[5].action == "error"
    assert results[5].error is not None and bad in results[5].error
    assert "worker process" in results[5].error and "workers=1" not in results[5].error
    assert results[5].error_type == kind
    if how == "crash":
        assert "exit code 11" in results[5].error and "fails the same way" in results[5].error
    else:
        assert "SIGKILL" in results[5].error and "out-of-memory" in results[5].error
    assert [r.action for i, r in enumerate(results) if i != 5] == ["created"] * 11
    assert_stac_valid_tree(tmp_path / "cat")


def test_the_prefect_task_does_not_retry_a_batch_whose_product_crashes_its_reader(tmp_path, monkeypatch):
    """The retry condition of the Prefect task reads ``transient``: a batch
    whose only failure is a local product that crashes its reader each time
    is not retried (it was: the same crash, up to three more times)."""
    from producer.prefect import RegistrationFailed, register_and_report

    sources = rasters.dated_cogs(tmp_path / "data", 6)
    real = extract.create_item
    parent = os.getpid()

    def create_item(source, options):
        if source == sources[2] and os.getpid() != parent:
            faulthandler.disable()  # in the worker only: no traceback dump in the test's output
            os.kill(os.getpid(), signal.SIGSEGV)
        return real(source, options)

    monkeypatch.setattr(extract, "create_item", create_item)
    monkeypatch.setattr(parallel, "EXTRACT_KIND", "process")
    with pytest.raises(RegistrationFailed) as info:
        register_and_report(sources, catalog=str(tmp_path / "cat"), collection="c", workers=2)
    assert not info.value.transient
    assert [(r["action"], r.get("error_type")) for r in info.value.failed] == [("error", "input")]
    assert "SIGSEGV" in info.value.failed[0]["error"]


def test_register_with_a_result_that_cannot_be_read_back_reports_a_bug(tmp_path, monkeypatch):
    """A product whose extraction result does not load in the caller's
    process fails as ``internal`` (a bug to report: a retry fails the same
    way), not ``storage``."""
    sources = rasters.dated_cogs(tmp_path / "data", 12)
    bad = sources[7]
    real = ingest._prepare
    parent = os.getpid()

    def prepare(source, job):
        result, key, doc = real(source, job)
        if source == bad and doc is not None:
            doc["properties"]["plugin:state"] = _LoadsOnlyInWorkers(parent)
        return result, key, doc

    monkeypatch.setattr(ingest, "_prepare", prepare)
    monkeypatch.setattr(parallel, "EXTRACT_KIND", "process")
    results = producer.register(
        sources, catalog=str(tmp_path / "cat"), collection="c", options=RegisterOptions(workers=2)
    )
    assert results[7].action == "error" and results[7].error_type == "internal", results[7]
    assert bad in results[7].error and "could not be read back" in results[7].error
    assert "please report it" in results[7].error
    assert [r.action for i, r in enumerate(results) if i != 7] == ["created"] * 11
    assert_stac_valid_tree(tmp_path / "cat")


@pytest.mark.parametrize("cause", ["not-started", "not-tried"])
def test_a_product_not_tried_alone_is_retryable_and_its_hint_is_spelled_for_the_caller(cause):
    """Not extracted alone (no process to start, or too many broken pools):
    ``storage`` (a retry may succeed), with the way to see the cause spelled
    for each caller: the CLI's flag, not the Python keyword it wrote before."""

    result = producer.RegisterResult(source="/data/a.tif")
    why = ingest._why_broken("/data/a.tif", parallel.WorkerDied("the worker process died", cause))
    result.fail(str(why), why)
    assert result.error_type == "storage"
    assert result.error is not None and result.error.startswith("/data/a.tif: not registered: ")
    assert "died. Fix it with workers=1" in result.error
    spelled = result.error_for(flag_spelling)
    assert spelled is not None and "died. Fix it with --workers 1" in spelled and "workers=1" not in spelled


@pytest.mark.parametrize("source", ["s3://bucket/a.tif", "/vsis3/bucket/a.tif", "https://host/a.tif"])
def test_a_remote_product_that_crashed_its_reader_stays_retryable(source):
    """A read from object storage can crash GDAL on a storage fault (see
    rasterio's opener): a remote product's crash is worth a retry, and is
    not told to run in the caller's process, which the crash would end."""
    crashed = parallel.WorkerDied("died", parallel.WorkerDied.CRASHED, signal.SIGSEGV)
    result = producer.RegisterResult(source=source)
    why = ingest._why_broken(source, crashed)
    result.fail(str(why), why)
    assert result.error_type == "storage" and "retry later" in (result.error or "")
    assert not result.hints and "workers" not in (result.error or "")
    local = ingest._why_broken("/data/a.tif", crashed)
    result.fail(str(local), local)
    assert result.error_type == "input"


@pytest.mark.parametrize(
    ("number", "memory"), [(signal.SIGKILL, True), (signal.SIGTERM, False), (signal.SIGRTMIN + 6, False)]
)
def test_only_a_sigkill_is_told_to_retry_with_more_memory(number, memory):
    """The out-of-memory killer sends SIGKILL; a SIGTERM (a shutdown, a
    timeout) or another signal from outside is a retry, not a memory matter."""
    killed = parallel.WorkerDied("died", parallel.WorkerDied.KILLED, number)
    why = ingest._why_broken("/data/a.tif", killed)
    result = producer.RegisterResult(source="/data/a.tif")
    result.fail(str(why), why)
    assert result.error_type == "storage"
    assert ("out-of-memory" in (result.error or "")) is memory


class _TooBigToSend:
    def __reduce__(self):
        raise MemoryError("cannot allocate the pickle")


def test_a_result_without_memory_to_travel_back_is_retryable_not_a_bug():
    """Out of memory while pickling a result (a worker's) or loading it
    (here): the machine's state, not a bug in the result: ``resources``."""
    out = parallel._unpacked(parallel._packed(_TooBigToSend()), "p001", _broken)
    assert out.startswith("broken p001: ") and out.endswith("[resources]"), out
    assert parallel._unreadable(MemoryError()).cause == "resources"
    assert parallel._unreadable(ImportError("no module")).cause == "unreadable"
    why = ingest._why_broken("/data/a.tif", parallel._unreadable(MemoryError()))
    assert isinstance(why, StoreError)


def _item_puts(counting: CountingStore) -> int:
    with counting._lock:
        return sum(1 for kind, key in counting.calls if kind == "put" and key.startswith("c/cog_"))


@pytest.mark.parametrize("kind", ["thread", "process"])
def test_a_pooled_batch_writes_items_while_the_rest_are_still_extracted(tmp_path, monkeypatch, kind):
    monkeypatch.setattr(parallel, "EXTRACT_KIND", kind)
    sources = rasters.dated_cogs(tmp_path / "data", 40)
    broken = str(rasters.write_corrupt(tmp_path / "data"))
    sources.insert(3, broken)
    counting = CountingStore(LocalStore(str(tmp_path / "cat")))
    seen_writes: list[int] = []

    def progress(done: int, total: int) -> None:
        if done == 30:  # the parent, a product before the last: items already on their way
            deadline = time.monotonic() + 20
            while _item_puts(counting) == 0 and time.monotonic() < deadline:
                time.sleep(0.01)
            seen_writes.append(_item_puts(counting))

    results = register_products(
        sources,
        catalog=counting,
        collection="c",
        options=RegisterOptions(workers=2),
        progress=progress,
    )
    assert seen_writes and seen_writes[0] > 0, "no item written before extraction finished"
    assert [r.source for r in results] == sources
    assert results[3].action == "error" and broken in (results[3].error or "")
    assert [r.action for i, r in enumerate(results) if i != 3] == ["created"] * 40
    # every item is on storage before the collection links any (one CAS, after them)
    coll = [n for n, (k, key) in enumerate(counting.calls) if k == "put" and key == "c/collection.json"]
    last_item = max(n for n, (k, key) in enumerate(counting.calls) if k == "put" and key.startswith("c/cog_"))
    assert coll and min(coll) > last_item
    assert_stac_valid_tree(tmp_path / "cat")


def test_a_pooled_batch_into_a_malformed_collection_writes_nothing_and_says_so(tmp_path):
    sources = rasters.dated_cogs(tmp_path / "data", 6)
    catalog = tmp_path / "cat"
    (catalog / "c").mkdir(parents=True)
    (catalog / "c" / "collection.json").write_text("{not json")
    before = sorted(p.relative_to(catalog) for p in catalog.rglob("*"))
    results = register_products(
        sources, catalog=str(catalog), collection="c", options=RegisterOptions(workers=2)
    )
    assert all(r.action == "error" for r in results)
    assert all("collection.json" in (r.error or "") for r in results), results[0].error
    assert sorted(p.relative_to(catalog) for p in catalog.rglob("*")) == before


class _Sink:
    """Records what each ``apply`` is handed; ``down``: its ``check`` fails."""

    def __init__(self, root: Path, down: bool = False) -> None:
        self.root, self.down = root, down
        self.applied: list[tuple[str, bool]] = []

    def check(self) -> None:
        if self.down:
            raise StoreError("sink backend at 127.0.0.1:9 is down")

    def apply(self, collection: dict, changes: list) -> None:
        self.applied += [(c.item_id, (self.root / c.key).exists()) for c in changes]


def test_a_pooled_batch_checks_its_sinks_before_any_write_and_hands_them_what_it_committed(tmp_path):
    sources = rasters.dated_cogs(tmp_path / "data", 8)
    catalog = tmp_path / "cat"
    down = register_products(
        sources,
        catalog=str(catalog),
        collection="c",
        options=RegisterOptions(workers=2),
        sinks=[_Sink(catalog, down=True)],
    )
    assert not catalog.exists()
    assert all("127.0.0.1:9 is down" in (r.error or "") for r in down)
    assert all("nothing was written" in (r.error or "") for r in down)
    sink = _Sink(catalog)
    results = register_products(
        sources, catalog=str(catalog), collection="c", options=RegisterOptions(workers=2), sinks=[sink]
    )
    assert [r.action for r in results] == ["created"] * 8
    assert sorted(sink.applied) == sorted((Path(s).stem, True) for s in sources)


def _register_in_a_fresh_process(tmp_path: Path, code: str, record: Path) -> int:
    """Run ``code`` in a fresh interpreter with the arguments: a file listing
    :data:`parallel.MIN_FORKED` COGs, a catalog folder and ``record``; it
    must succeed and print its pid last, which is returned."""
    listing = tmp_path / "sources.txt"
    listing.write_text("\n".join(rasters.dated_cogs(tmp_path / "data", parallel.MIN_FORKED)))
    out = subprocess.run(
        [sys.executable, "-c", code, str(listing), str(tmp_path / "cat"), str(record)],
        capture_output=True,
        text=True,
        cwd=Path(__file__).parents[1],
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    return int(out.stdout.split()[-1])


def test_a_single_threaded_process_registering_128_products_forks_and_the_catalog_is_valid(tmp_path):
    """The automatic choice end to end, in a fresh process with no other
    thread (pytest's own may run threads): 128 products are extracted by
    forked workers, each registered once."""
    code = (
        "import os, sys\n"
        "import producer\n"
        "from producer import extract, parallel\n"
        "parallel.cores = lambda: 2\n"
        "real, pids = extract.create_item, sys.argv[3]\n"
        "def create_item(source, options):\n"
        "    with open(pids, 'a') as out:\n"
        "        out.write(f'{os.getpid()}\\n')\n"
        "    return real(source, options)\n"
        "extract.create_item = create_item\n"
        "sources = open(sys.argv[1]).read().split()\n"
        "results = producer.register(sources, catalog=sys.argv[2], collection='c')\n"
        "assert [r.action for r in results] == ['created'] * len(sources), [r.error for r in results][:3]\n"
        "print(os.getpid())\n"
    )
    pids = tmp_path / "pids.txt"
    parent = _register_in_a_fresh_process(tmp_path, code, pids)
    workers = set(map(int, pids.read_text().split()))
    assert parent not in workers and len(workers) == 2, (parent, workers)
    assert_stac_valid_tree(tmp_path / "cat")


def test_forked_workers_inherit_rasterio_loaded_instead_of_importing_it_each(tmp_path):
    """The CLI's process has not loaded rasterio when its batch forks (the
    extraction loads it lazily): every worker of every pool imported it on
    its first product, ~0.3 s of CPU each. The parent loads it once before
    forking."""
    code = (
        "import os, sys\n"
        "from producer import ingest, parallel\n"
        "from producer.options import RegisterOptions\n"
        "assert 'rasterio' not in sys.modules\n"
        "parallel.cores = lambda: 2\n"
        "parallel.EXTRACT_KIND = 'process'\n"
        "real, seen = ingest._prepare, sys.argv[3]\n"
        "def prepare(source, job):\n"
        "    with open(seen, 'a') as out:\n"
        "        out.write(f'{os.getpid()} {\"rasterio\" in sys.modules}\\n')\n"
        "    return real(source, job)\n"
        "ingest._prepare = prepare\n"
        "sources = open(sys.argv[1]).read().split()\n"
        "results = ingest.register_products(sources, catalog=sys.argv[2], collection='c',\n"
        "                                   options=RegisterOptions(workers=2))\n"
        "assert [r.action for r in results] == ['created'] * len(sources), [r.error for r in results][:3]\n"
        "print(os.getpid())\n"
    )
    seen = tmp_path / "seen.txt"
    parent = _register_in_a_fresh_process(tmp_path, code, seen)
    lines = [line.split() for line in seen.read_text().splitlines()]
    assert {int(pid) for pid, _ in lines} - {parent}, "not extracted in forked workers"
    assert all(loaded == "True" for _, loaded in lines), "a worker imported rasterio itself"


def test_a_pooled_batch_whose_extraction_fails_midway_reports_every_product(tmp_path, monkeypatch):
    """An error escaping extraction (a fork refused, say) ended the pipelined
    batch with the results extracted so far: the rest were never reported,
    and the CLI exited 0."""
    monkeypatch.setattr(parallel, "EXTRACT_KIND", "thread")
    sources = rasters.dated_cogs(tmp_path / "data", 12)
    real = ingest._prepare

    def prepare(source, *args, **kwargs):
        if source == sources[5]:
            raise OSError(errno.EAGAIN, "Resource temporarily unavailable")
        return real(source, *args, **kwargs)

    monkeypatch.setattr(ingest, "_prepare", prepare)
    results = register_products(
        sources, catalog=str(tmp_path / "cat"), collection="c", options=RegisterOptions(workers=2)
    )
    assert [r.source for r in results] == sources
    failed = [r for r in results if r.action == "error"]
    assert sources[5] in {r.source for r in failed}
    assert all(r.action in ("error", "created") for r in results)
    assert all("register it again" in (r.error or "") for r in failed)
    if (tmp_path / "cat" / "catalog.json").exists():  # items written before the error: none linked
        assert_stac_valid_tree(tmp_path / "cat")


def test_a_pooled_batch_makes_the_root_durable_before_its_first_item(tmp_path, monkeypatch):
    """The pipelined batch wrote the root inside the batch, so its folder was
    fsynced at the batch's end, after the items: a power loss could leave item
    folders and no catalog.json."""
    monkeypatch.setattr(parallel, "EXTRACT_KIND", "thread")
    sources = rasters.dated_cogs(tmp_path / "data", 12)
    root = tmp_path / "cat"
    events: list[str] = []  # fsynced paths, and the names renamed into place
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd: int) -> None:
        events.append(os.readlink(f"/proc/self/fd/{fd}"))
        real_fsync(fd)

    def replace(src, dst, *args, **kwargs) -> None:
        events.append(str(dst))
        real_replace(src, dst, *args, **kwargs)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    results = register_products(
        sources, catalog=str(root), collection="c", options=RegisterOptions(workers=2)
    )
    assert [r.action for r in results] == ["created"] * len(sources)
    root_dir = os.path.realpath(root)
    # the first item flushed or named (new items are flushed together, then named)
    first_item = min(i for i, path in enumerate(events) if "/c/cog_" in path)
    assert root_dir in events[:first_item], "the root's folder was not durable before the first item"


# A fork refused (EAGAIN under a process limit, ENOMEM under strict
# overcommit) after the pool started a worker: run in a child interpreter,
# because the failure this guards against is a process that never exits.
_FORK_REFUSED = """
import os, sys
import producer
from producer import extract, parallel
from producer.options import RegisterOptions
from tests import rasters

import multiprocessing, threading, time

work, refuse_from, bad = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
sources = rasters.dated_cogs(work + "/data", 12)
parallel.EXTRACT_KIND = "process"
parent, real_fork, real_create, forks = os.getpid(), os.fork, extract.create_item, [0]
theirs = []  # a child the caller's own code starts meanwhile (its Prefect worker, its pool)

def caller_starts_a_child():
    os.fork = real_fork
    child = multiprocessing.get_context("fork").Process(target=time.sleep, args=(60,))
    child.start()
    theirs.append(child)
    os.fork = fork

def fork():
    forks[0] += 1
    if forks[0] >= refuse_from:
        if not theirs:
            thread = threading.Thread(target=caller_starts_a_child)
            thread.start()
            thread.join()
        raise OSError(11, "Resource temporarily unavailable")
    return real_fork()

def create_item(source, options):  # a crash inside GDAL, as a worker sees it
    if bad >= 0 and source == sources[bad] and os.getpid() != parent:
        os._exit(11)
    return real_create(source, options)

os.fork, extract.create_item = fork, create_item
results = producer.register(sources, catalog=work + "/cat", collection="c", options=RegisterOptions(workers=2))
for r in results:
    print(r.action, r.error or "", sep="\\t")
print("caller's child", "alive" if theirs[0].is_alive() else f"stopped {theirs[0].exitcode}", file=sys.stderr)
theirs[0].terminate()
theirs[0].join()
"""


def _refused_fork_run(tmp_path: Path, refuse_from: int, bad: int) -> list[list[str]]:
    done = subprocess.run(
        [sys.executable, "-c", _FORK_REFUSED, str(tmp_path), str(refuse_from), str(bad)],
        capture_output=True,
        text=True,
        timeout=120,  # the bug: a started worker waits for work forever, and exit waits for it
        cwd=Path(__file__).parent.parent,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).parent.parent)},
    )
    assert done.returncode == 0, done.stderr
    assert "cannot start extraction processes" in done.stderr or bad >= 0, done.stderr
    assert "caller's child alive" in done.stderr, done.stderr  # only the pool's own workers are stopped
    return [line.split("\t") for line in done.stdout.splitlines()]


def test_a_fork_refused_midway_through_starting_the_pool_extracts_in_this_process_and_exits(tmp_path):
    rows = _refused_fork_run(tmp_path, refuse_from=2, bad=-1)  # the first worker started, the second not
    assert [action for action, _ in rows] == ["created"] * 12
    assert_stac_valid_tree(tmp_path / "cat")


def test_a_product_that_killed_its_worker_is_not_run_in_this_process_when_no_fork_is_left(tmp_path):
    rows = _refused_fork_run(tmp_path, refuse_from=3, bad=5)  # the pool's two workers, then none
    assert rows[5][0] == "error"
    # the products inside a worker when it died (the other worker's too: which
    # one killed it is unknown without a process each) fail, saying why
    failed = [i for i, (action, _) in enumerate(rows) if action != "created"]
    assert 5 in failed and len(failed) <= 2
    for i in failed:
        assert rows[i][0] == "error"
        assert "no process could be started to extract it alone" in rows[i][1]
    assert_stac_valid_tree(tmp_path / "cat")


def _in_alone() -> bool:
    """Whether the caller runs inside ``parallel._alone`` (a product
    extracted again in a process of its own)."""
    frame = sys._getframe(1)
    while frame is not None:
        if frame.f_code is parallel._alone.__code__:
            return True
        frame = frame.f_back
    return False


def test_no_pipe_left_for_a_product_alone_fails_that_product_not_the_batch(monkeypatch):
    """Out of file descriptors (EMFILE) when a product that was in a dying
    worker is extracted again alone: the pipe's OSError escaped the batch,
    after its earlier results were yielded (a pipelined batch half-written)."""
    real_pipe = os.pipe

    def pipe():
        if _in_alone():
            raise OSError(errno.EMFILE, os.strerror(errno.EMFILE))
        return real_pipe()

    monkeypatch.setattr(os, "pipe", pipe)
    sources = [f"p{i:03d}" for i in range(40)]
    out = list(parallel.prepare_all(_kill_on({"p017"}), sources, 2, _broken, kind="process"))
    assert len(out) == len(sources)
    failed = [i for i, r in enumerate(out) if r.startswith("broken ")]
    assert 17 in failed and len(failed) <= 2  # the products that were in the dying workers
    for i in failed:
        assert "Too many open files" in out[i] and sources[i] in out[i], out[i]
        assert out[i].endswith("[not-started]"), out[i]
    assert [r.split()[1] for i, r in enumerate(out) if i not in failed] == [
        s for i, s in enumerate(sources) if i not in failed
    ]


def _fails_to_load(parent: int) -> str:
    """Unpickles in a worker; in ``parent`` it raises (a result whose class
    the parent cannot rebuild)."""
    if os.getpid() == parent:
        raise ImportError("no module named 'worker_only_plugin'")
    return "unreachable"


class _LoadsOnlyInWorkers:
    def __init__(self, parent: int) -> None:
        self.parent = parent

    def __reduce__(self):
        return _fails_to_load, (self.parent,)


def _unloadable_for(bad: str):
    parent = os.getpid()

    def job(source: str) -> object:
        if source == bad:
            return _LoadsOnlyInWorkers(parent)
        return f"ok {source} {os.getpid()}"

    return job


def test_a_result_that_cannot_be_read_back_fails_its_own_product_only():
    """A result that pickles in the worker but not back in this process
    broke its pool (its chunk again, each product alone) and then escaped
    from the product's own process, failing the batch and leaving that
    process unreaped."""
    sources = [f"p{i:03d}" for i in range(40)]
    out = list(parallel.prepare_all(_unloadable_for("p025"), sources, 2, _broken, kind="process"))
    assert len(out) == len(sources)
    assert out[25].startswith("broken p025: ") and "could not be read back" in out[25], out[25]
    assert out[25].endswith("[unreadable]")
    assert "worker_only_plugin" in out[25]
    assert [r.split()[1] for i, r in enumerate(out) if i != 25] == [s for s in sources if s != "p025"]
    assert not [p for p in __import__("multiprocessing").active_children() if p.exitcode is None]


def _descendants(pid: int) -> set[int]:
    """Every process below ``pid`` (children, theirs, ...), from /proc."""
    found: set[int] = set()
    todo = [pid]
    while todo:
        here = todo.pop()
        try:
            tasks = os.listdir(f"/proc/{here}/task")
        except OSError:
            continue
        for task in tasks:
            try:
                with open(f"/proc/{here}/task/{task}/children") as f:
                    kids = {int(k) for k in f.read().split()}
            except OSError:
                continue
            todo.extend(kids - found)
            found |= kids
    return found


def _running(pid: int) -> bool:
    """Whether ``pid`` is a process that is not a zombie (one nobody reaped is dead)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rpartition(")")[2].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc; prctl is Linux's")
@pytest.mark.parametrize("kind", ["process", "forkserver"])
def test_a_batch_killed_with_sigkill_leaves_no_worker_process_behind(tmp_path, kind):
    """A CLI batch killed with SIGKILL (the OOM killer, ``timeout -s KILL``)
    left its worker processes alive forever, reparented to init and holding
    its stdout and stderr open: ``stac-producer ... | tee`` never ended.
    They now die with their parent (a fork server's: with the server, which
    exits with the batch)."""
    listing = tmp_path / "sources.txt"
    listing.write_text("\n".join(rasters.dated_cogs(tmp_path / "data", 400)))
    code = (
        "import sys\n"
        "from producer import parallel\n"
        "from producer.cli import main\n"
        "parallel.cores = lambda: 2\n"
        f"parallel.EXTRACT_KIND = {kind!r}\n"
        "main(['register', *open(sys.argv[1]).read().split(), '-c', sys.argv[2], '--collection', 'c',\n"
        "      '--workers', '2'])\n"
    )
    cli = subprocess.Popen(
        [sys.executable, "-c", code, str(listing), str(tmp_path / "cat")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd=Path(__file__).parents[1],
    )
    # the workers: 2 children (a fork) or 2 grandchildren below the fork server
    workers = 2 if kind == "process" else 3
    below: set[int] = set()
    try:
        deadline = time.monotonic() + 60
        while cli.poll() is None and time.monotonic() < deadline and len(below) < workers:
            below = _descendants(cli.pid)
            time.sleep(0.02)
        time.sleep(0.2)
        below |= _descendants(cli.pid)
        assert cli.poll() is None, "the batch ended before it could be killed"
        assert len(below) >= workers, below
    finally:
        cli.kill()
        cli.wait()
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and any(map(_running, below)):
            time.sleep(0.05)
        left = sorted(pid for pid in below if _running(pid))
        assert not left, f"still running 10 s after their parent was killed: {left}"
    finally:
        for pid in below:  # only the processes this test started, if any are left
            if _running(pid):
                os.kill(pid, signal.SIGKILL)

"""Batch throughput: 1,000 COGs in one register() call, locally and on S3
with 30 ms per request, against a rio-stac-like rasterio + pystac loop.

    python bench/batch.py --quick          # 100 COGs, 1 repeat, prints only
    python bench/batch.py                  # 1,000 COGs, 3 repeats, writes BENCHMARKS.md
    python bench/batch.py --sections split --count 300   # CPU per item by stage

Sections (``--sections local,s3``; ``split``, ``sustained``, ``threaded`` and ``cli`` on request):

``local``: the project with extraction serial, as the default chooses
(``auto``: forked processes from a single-threaded process, else threads;
the table says which), in 2 threads and in 2 forked processes (each also not pipelined:
items written only after the whole batch is extracted, as before), with
items written by one thread or by 16; serial and default with an fsync per
new item (its items not staged: as before issue 12's ``Staging``); and the
rio-stac-like loop doing the same work in
one process: rasterio open, footprint densified 32 segments per edge and
reprojected to WGS 84, a pystac Item (projection extension, one asset),
the same offline validation (the project's compiled validator), the items
and a collection written by pystac, then every written file fsynced (the
project makes every document durable before it is renamed into place: an
fsync each, or one ``syncfs`` for a batch's staged new items). Its
"machine" column is the busy time of all cores per item during the run:
other processes' work included, and the kernel's own threads, where a file
system's journal commits for the fsyncs run.

``s3``: the moto server in its own process behind a latency proxy adding
30 ms per request (``bench/latproxy.py``; where that is missing, a store
wrapper sleeps 30 ms per call instead, and the table says so), items
written by 16 threads or one.

``sustained``: the default (``auto``) batch, ``--batches`` times back to
back in one process, each into its own catalog (a long backfill is many
batches): items/s per stretch of batches, the kind ``auto`` chose and the
1-minute load average the kernel showed before each (it counts the
process's own earlier batches).

``threaded``: batches of 200 registered by a caller that runs another
thread (a Prefect flow run), one at a time and four at once (threads of
the caller), extraction as ``auto`` chooses there (a fork server's
processes) and by threads.

``cli``: ``stac-producer register`` of the COGs in a fresh process, wall
time and CPU (workers included), as an operator runs it.

``split``: CPU per item by stage, from one register() with 2 forked
processes and one serial: CPU in the workers (extraction and validation),
in the parent while the workers extract (forking, unpickling results) and
after (parents read, items written, linked, mirror), and the ceilings these
give on 2 cores with and without overlapping the parent's part with the
workers'. Tells where the time must come from, not how fast a run is.

Every configuration runs ``repeats`` times, interleaved, each into a fresh
catalog; the table gives medians. Every catalog is checked valid after its
first run (``validate_catalog``, untimed). Writes only under ``.bench/``.
"""

from __future__ import annotations

import argparse
import importlib
import os
import resource
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import common as c

DELAY = 0.030


def log(msg: str) -> None:
    print(msg, flush=True)


# --- the project ------------------------------------------------------------------


def run_ours(
    cogs: list[str],
    catalog: str,
    *,
    workers: int,
    kind: str,
    write_threads: int,
    storage_options: Any = None,
    pipelined: bool = True,
) -> float:
    """One register() call; returns seconds. Raises unless every COG is created.
    ``pipelined=False``: items written after the whole batch is extracted (as before)."""
    import producer
    from producer import ingest, parallel
    from producer.options import RegisterOptions

    parallel.EXTRACT_KIND, saved = kind, parallel.EXTRACT_KIND
    parallel.MAX_WRITE_THREADS, saved_threads = write_threads, parallel.MAX_WRITE_THREADS
    pipelines = ingest._pipelines
    if not pipelined:
        ingest._pipelines = lambda *args: False  # type: ignore[assignment]
    try:
        t0 = time.perf_counter()
        results = producer.register(
            cogs,
            catalog=catalog,
            collection=c.COLLECTION,
            options=RegisterOptions(
                workers=workers, batch_size=len(cogs), catalog_storage_options=storage_options
            ),
        )
        seconds = time.perf_counter() - t0
        if TAIL is not None:
            TAIL.report(t0 + seconds)
    finally:
        parallel.EXTRACT_KIND, parallel.MAX_WRITE_THREADS = saved, saved_threads
        ingest._pipelines = pipelines  # type: ignore[assignment]
    bad = [r for r in results if r.action != "created"]
    if bad:
        raise RuntimeError(f"{len(bad)} products not created, e.g. {bad[0].error}")
    return seconds


class TailTimer:
    """``--tail``: after each pooled register(), where the wall time after the
    last product was extracted went (ms from that moment: when each stage of
    the serial tail started and how long it took, and the main thread's CPU
    in it). Wraps the stages' functions with timers; changes no behaviour."""

    def __init__(self) -> None:
        self.marks: list[tuple[str, float, float, float]] = []  # stage, start, seconds, thread CPU
        self.extracted = 0.0
        self.written: list[float] = []  # when each item write ended (any thread)
        self._saved: list[tuple[Any, str, Any]] = []

    def _wrap(self, owner: Any, attr: str, stage: str) -> None:
        inner = getattr(owner, attr)
        self._saved.append((owner, attr, inner))
        import threading

        def timed(*args: Any, **kwargs: Any) -> Any:
            if threading.current_thread() is not threading.main_thread():
                return inner(*args, **kwargs)
            t0, c0 = time.perf_counter(), time.thread_time()
            try:
                return inner(*args, **kwargs)
            finally:
                self.marks.append((stage, t0, time.perf_counter() - t0, time.thread_time() - c0))

        setattr(owner, attr, timed)

    def install(self) -> None:
        from producer import commit, ingest, mirror

        each = ingest._extract_each

        def extract_each(*args: Any, **kwargs: Any) -> Any:
            yield from each(*args, **kwargs)
            self.extracted = time.perf_counter()

        self._saved.append((ingest, "_extract_each", each))
        ingest._extract_each = extract_each  # type: ignore[assignment]
        write_one = ingest._write_one

        def timed_write(*args: Any, **kwargs: Any) -> Any:
            try:
                return write_one(*args, **kwargs)
            finally:
                self.written.append(time.perf_counter())

        self._saved.append((ingest, "_write_one", write_one))
        ingest._write_one = timed_write  # type: ignore[assignment]
        self._wrap(commit.Committer, "preflight", "preflight")
        self._wrap(commit.Committer, "link_items", "link_items")
        self._wrap(commit.Committer, "settle_batch", "settle_batch")
        self._wrap(ingest, "_publish", "publish (sinks)")
        self._wrap(mirror, "encode_fragment", "  mirror fragment encode")
        self._wrap(mirror.MirrorSink, "_ensure_base", "  mirror base HEAD")

    def uninstall(self) -> None:
        for owner, attr, inner in reversed(self._saved):
            setattr(owner, attr, inner)
        self._saved.clear()

    def report(self, end: float) -> None:
        t = self.extracted
        if not t:
            return
        log(f"    tail after the last product: {1000 * (end - t):.0f} ms wall")
        late = [w for w in self.written if w > t]
        if late:
            log(
                f"    item writes still running then: {len(late)}, the last ends at {1000 * (max(late) - t):.0f} ms"
            )
        for stage, start, seconds, cpu in self.marks:
            if start + seconds >= t:
                log(
                    f"    {stage:28s} at {1000 * (start - t):7.0f} ms: {1000 * seconds:6.0f} ms, CPU {1000 * cpu:5.0f}"
                )
        self.marks.clear()
        self.written.clear()
        self.extracted = 0.0


TAIL: TailTimer | None = None


# --- the rio-stac-like loop -----------------------------------------------------------


def _ring(src: Any, densify: int = 32) -> list[list[float]]:
    """The grid outline, ``densify`` segments per edge, in WGS 84 (as the project)."""
    import numpy as np
    from rasterio.warp import transform

    t = np.arange(densify) / densify
    w, h = src.width, src.height
    cols = np.concatenate([t * w, np.full(densify, w), (1 - t) * w, np.zeros(densify)])
    rows = np.concatenate([np.zeros(densify), t * h, np.full(densify, h), (1 - t) * h])
    xs, ys = src.transform * (cols, rows)
    lon, lat = transform(src.crs, "EPSG:4326", list(xs), list(ys))
    ring = [[round(x, 7), round(y, 7)] for x, y in zip(lon, lat, strict=True)]
    return [*ring, ring[0]]


def run_loop(cogs: list[str], root: str) -> float:
    """rasterio + pystac, one product after another; returns seconds."""
    from datetime import UTC, datetime

    import pystac
    import rasterio
    from pystac.extensions.projection import ProjectionExtension

    from producer.validate import default_validator

    check = default_validator().check
    t0 = time.perf_counter()
    catalog = pystac.Catalog("root", "root catalog")
    collection = pystac.Collection(
        c.COLLECTION,
        "loop",
        pystac.Extent(
            pystac.SpatialExtent([[-180.0, -90.0, 180.0, 90.0]]),
            pystac.TemporalExtent([[datetime(2015, 1, 1, tzinfo=UTC), None]]),
        ),
    )
    catalog.add_child(collection)
    items = []
    for cog in cogs:
        with rasterio.open(cog) as src:
            ring = _ring(src)
            lons, lats = [p[0] for p in ring], [p[1] for p in ring]
            stem = Path(cog).stem
            day = datetime.strptime(stem.rsplit("_", 1)[1], "%Y%m%d").replace(tzinfo=UTC)
            item = pystac.Item(
                stem,
                {"type": "Polygon", "coordinates": [ring]},
                [min(lons), min(lats), max(lons), max(lats)],
                day,
                {},
            )
            proj = ProjectionExtension.ext(item, add_if_missing=True)
            proj.epsg = src.crs.to_epsg()
            proj.shape = [src.height, src.width]
            proj.transform = list(src.transform)[:6]
            item.add_asset("data", pystac.Asset(cog, media_type=pystac.MediaType.COG, roles=["data"]))
        doc = item.to_dict(include_self_link=False)
        check(doc, cog)
        items.append(item)
    collection.add_items(items)
    collection.update_extent_from_items()
    catalog.normalize_and_save(root, pystac.CatalogType.SELF_CONTAINED)
    for dirpath, _, files in os.walk(root):  # the same durability: every document synced
        for name in files:
            fd = os.open(os.path.join(dirpath, name), os.O_RDONLY)
            os.fsync(fd)
            os.close(fd)
        fd = os.open(dirpath, os.O_RDONLY)
        os.fsync(fd)
        os.close(fd)
    return time.perf_counter() - t0


# --- sections -------------------------------------------------------------------------


def _valid(catalog: str, storage_options: Any = None) -> None:
    import producer

    errors = [
        str(p) for p in producer.validate_catalog(catalog, storage_options=storage_options) if p.is_error
    ]
    if errors:
        raise RuntimeError(f"{catalog} is invalid: {errors[:3]}")


#: CPU seconds per run and config, by getrusage: (this process, its
#: finished children: the extraction workers), filled by :func:`_measure`
CPU: dict[str, list[tuple[float, float]]] = {}


def _cpu_now() -> tuple[float, float]:
    """User + system CPU seconds so far: this process, and its waited-for
    children with the fork server's (its own and its waited-for children's:
    a fork server's workers are its children, not this process's)."""
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime, kids.ru_utime + kids.ru_stime + _server_cpu()


def _server_cpu() -> float:
    """CPU seconds of multiprocessing's fork server and its reaped workers; 0 when none runs."""
    server = sys.modules.get("multiprocessing.forkserver")
    pid = getattr(getattr(server, "_forkserver", None), "_forkserver_pid", None)
    if pid is None:
        return 0.0
    time.sleep(0.05)  # the server reaps a worker the parent saw exit a moment later
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return sum(int(f) for f in fields[11:15]) / os.sysconf("SC_CLK_TCK")


def _measure(
    configs: Sequence[tuple[str, Callable[[Any], float], Callable[..., None]]],
    fresh: Callable[[str], str],
    repeats: int,
) -> dict[str, list[float]]:
    """Run each config ``repeats`` times, interleaved; check validity after
    the first run. ``fresh(name)`` gives a new catalog location. Each run's
    CPU (this process, workers) goes into :data:`CPU`: on a machine other
    work shares, CPU per item is the stable figure, wall time is not."""
    times: dict[str, list[float]] = {name: [] for name, _, _ in configs}
    for rep in range(repeats):
        for name, run, check in configs:
            where = fresh(f"{name}-{rep}")
            before, busy = _cpu_now(), _machine_busy()
            times[name].append(run(where))
            busy = _machine_busy() - busy
            after = _cpu_now()
            CPU.setdefault(name, []).append((after[0] - before[0], after[1] - before[1]))
            MACHINE.setdefault(name, []).append(busy)
            log(f"  {name}: {times[name][-1]:.2f} s")
            if rep == 0:
                check(where)
    return times


#: seconds the machine's cores were busy per run and config (all
#: processes and the kernel's own threads: a file system's journal work
#: runs there, not in the process that asked for it)
MACHINE: dict[str, list[float]] = {}


def _machine_busy() -> float:
    """Seconds of busy CPU of every core since boot (``/proc/stat``), 0.0 where unreadable."""
    try:
        with open("/proc/stat", encoding="ascii") as fh:
            fields = [int(v) for v in fh.readline().split()[1:]]
    except (OSError, ValueError):
        return 0.0
    # user, nice, system, irq, softirq (guest time is in user already; idle,
    # iowait and steal are not this machine's work)
    busy = sum(fields[i] for i in (0, 1, 2, 5, 6) if i < len(fields))
    return busy / os.sysconf("SC_CLK_TCK")


def _cpu_cells(name: str, n: int) -> list[str]:
    """Median CPU per item of config ``name`` over ``n`` items: this
    process, the workers, both (ms)."""
    runs = CPU.get(name) or [(0.0, 0.0)]
    me, kids = c.median([r[0] for r in runs]), c.median([r[1] for r in runs])
    return [f"{1000 * me / n:.2f}", f"{1000 * kids / n:.2f}", f"{1000 * (me + kids) / n:.2f}"]


def section_local(cogs: list[str], repeats: int) -> str:
    log(f"\n## local: {len(cogs)} COGs, {repeats} repeat(s)")
    n = len(cogs)
    base = c.fresh_work_dir("batch")

    def fresh(name: str) -> str:
        path = base / name.replace(" ", "_").replace(",", "").replace("/", "-")
        return str(path)

    def ours(workers: int, kind: str, threads: int, pipelined: bool = True) -> Callable[[str], float]:
        return lambda where: run_ours(
            cogs, where, workers=workers, kind=kind, write_threads=threads, pipelined=pipelined
        )

    def unstaged(workers: int) -> Callable[[str], float]:
        """``ours(workers, "auto", 16)`` with an fsync per new item, as before staging."""

        def run(where: str) -> float:
            from producer.store.local import LocalStore

            staging = LocalStore.staging
            LocalStore.staging = lambda self, count: None  # type: ignore[method-assign]
            try:
                return run_ours(cogs, where, workers=workers, kind="auto", write_threads=16)
            finally:
                LocalStore.staging = staging  # type: ignore[method-assign]

        return run

    configs = [
        ("serial extraction, 1 write thread", ours(1, "process", 1), _valid),
        ("serial extraction, 16 write threads", ours(1, "process", 16), _valid),
        ("serial extraction, 16 write threads, an fsync per new item (as before)", unstaged(1), _valid),
        ("default (auto: {kind}), 16 write threads", ours(0, "auto", 16), _valid),
        ("default, an fsync per new item (no staging, as before)", unstaged(0), _valid),
        ("2 threads, 16 write threads", ours(0, "thread", 16), _valid),
        ("2 processes, 16 write threads", ours(2, "process", 16), _valid),
        # what a process running other threads (an S3 client, Prefect) uses
        ("2 fork-server processes, 16 write threads", ours(2, "forkserver", 16), _valid),
        ("2 processes, not pipelined", ours(2, "process", 16, pipelined=False), _valid),
        ("2 threads, not pipelined", ours(2, "thread", 16, pipelined=False), _valid),
        ("rio-stac-like loop (rasterio + pystac)", lambda where: run_loop(cogs, where), _valid),
    ]
    from producer import parallel

    auto = parallel.extract_kind(n, parallel.extraction_workers(0, n))
    configs = [
        (name.format(kind=f"{auto}s" if auto != "process" else "processes"), *rest) for name, *rest in configs
    ]
    run_ours(cogs[:40], fresh("warm"), workers=0, kind="process", write_threads=16)  # imports, schemas
    run_loop(cogs[:5], fresh("warm-loop"))
    times = _measure(configs, fresh, repeats)
    shutil.rmtree(base, ignore_errors=True)
    loop = c.median(times["rio-stac-like loop (rasterio + pystac)"])
    rows = []
    for name, _, _ in configs:
        med = c.median(times[name])
        rows.append(
            [
                name,
                c.fmt_s(med),
                f"{n / med:.0f}",
                f"{1000 * med / n:.2f} ms",
                f"{loop / med:.2f}×",
                *_cpu_cells(name, n),
                f"{1000 * c.median(MACHINE.get(name) or [0.0]) / n:.2f}",
                "valid",
            ]
        )
    return c.table(
        [
            "configuration",
            "wall time (median)",
            "items/s",
            "per item",
            "loop / this",
            "CPU/item parent (ms)",
            "workers",
            "total",
            "machine (ms)",
            "catalog",
        ],
        rows,
    )


def _cpu_split(cogs: list[str], where: str, workers: int, stages: bool = True) -> dict[str, float]:
    """CPU seconds of one register() by where they were spent; ``stages``:
    extraction, then the rest (not pipelined), else as register() runs."""
    import resource

    from producer import ingest

    real = ingest._prepare_chunk
    spent: dict[str, float] = {"during": 0.0}

    def timed(*args: Any, **kwargs: Any) -> Any:
        t0 = time.process_time()
        try:
            return real(*args, **kwargs)
        finally:
            spent["during"] += time.process_time() - t0

    def children() -> float:
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        return usage.ru_utime + usage.ru_stime

    # the stages apart: extraction first, then the parent's part (a pipelined
    # batch overlaps them, so its extraction time would hide the writes)
    pipelines = ingest._pipelines
    if stages:
        ingest._prepare_chunk = timed  # type: ignore[assignment]  # the bench times, the code is unchanged
        ingest._pipelines = lambda *args: False  # type: ignore[assignment]
    try:
        c0, p0 = children(), time.process_time()
        wall = run_ours(cogs, where, workers=workers, kind="process", write_threads=16)
        spent["workers"] = children() - c0
        spent["parent"] = time.process_time() - p0
        spent["wall"] = wall
    finally:
        ingest._prepare_chunk, ingest._pipelines = real, pipelines  # type: ignore[assignment]
    return spent


def section_sustained(cogs: list[str], batches: int) -> str:
    """The default batch ``batches`` times back to back in this process."""
    import producer
    from producer import parallel
    from producer.options import RegisterOptions

    log(f"\n## sustained: {batches} batches of {len(cogs)} COGs back to back, default options")
    n = len(cogs)
    base = c.fresh_work_dir("sustained")
    chosen: list[str] = []
    decide = parallel.extract_kind

    def spy(products: int, workers: int) -> str:  # records the choice, changes nothing
        kind = decide(products, workers)
        chosen.append(kind)
        return kind

    parallel.extract_kind = spy  # type: ignore[assignment]
    runs: list[tuple[float, float, str]] = []  # seconds, load before, kind
    pooled = parallel.extraction_workers(0, n) > 1  # else every batch is extracted serially
    try:
        for b in range(batches):
            chosen.clear()
            load = os.getloadavg()[0]
            t0 = time.perf_counter()
            results = producer.register(
                cogs,
                catalog=str(base / f"b{b}"),
                collection=c.COLLECTION,
                options=RegisterOptions(batch_size=n),
            )
            seconds = time.perf_counter() - t0
            if any(r.action != "created" for r in results):
                raise RuntimeError(f"batch {b}: not every product was created")
            kind = ",".join(chosen) if pooled and chosen else "serial"
            runs.append((seconds, load, kind))
            log(f"  batch {b + 1}: {n / seconds:.0f} items/s, {kind}, load {load:.2f}")
    finally:
        parallel.extract_kind = decide  # type: ignore[assignment]
        shutil.rmtree(base, ignore_errors=True)
    stretch = max(1, -(-batches // 4))
    rows = []
    for start in range(0, batches, stretch):
        part = runs[start : start + stretch]
        kinds = sorted({r[2] for r in part})
        rows.append(
            [
                f"{start + 1}-{start + len(part)}",
                f"{n / c.median([r[0] for r in part]):.0f}",
                " / ".join(f"{k} {sum(r[2] == k for r in part)}" for k in kinds),
                f"{min(r[1] for r in part):.2f}-{max(r[1] for r in part):.2f}",
            ]
        )
    total = sum(r[0] for r in runs)
    rows.append(["all", f"{n * batches / total:.0f}", "", ""])
    return c.table(["batches", "items/s (median)", "auto chose", "1-min load before"], rows)


def section_threaded(cogs: list[str], repeats: int) -> str:
    """Batches of 200 registered by a caller that runs other threads (a
    Prefect flow run: its task threads register batches, its client runs an
    event loop), one at a time and four at once, with extraction as the
    default chooses (a fork server's processes) and with threads (the
    default before)."""
    import threading
    from concurrent.futures import ThreadPoolExecutor

    import producer
    from producer import parallel
    from producer.options import RegisterOptions

    log(f"\n## threaded caller: {len(cogs)} COGs in batches of 200, {repeats} repeat(s)")
    n = len(cogs)
    base = c.fresh_work_dir("threaded")
    batches = [cogs[k : k + 200] for k in range(0, n, 200)]
    stop = threading.Event()
    other = threading.Thread(target=stop.wait, name="the caller's other thread", daemon=True)
    other.start()

    def run(at_once: int, kind: str) -> Callable[[str], float]:
        def one(where: str) -> float:
            saved, parallel.EXTRACT_KIND = parallel.EXTRACT_KIND, kind
            try:
                t0 = time.perf_counter()
                with ThreadPoolExecutor(at_once) as pool:
                    done = list(
                        pool.map(
                            lambda b: producer.register(
                                b,
                                catalog=where,
                                collection=c.COLLECTION,
                                options=RegisterOptions(batch_size=200),
                            ),
                            batches,
                        )
                    )
                seconds = time.perf_counter() - t0
            finally:
                parallel.EXTRACT_KIND = saved
            if sum(r.action == "created" for rs in done for r in rs) != n:
                raise RuntimeError(f"{where}: not every product was created")
            return seconds

        return one

    def fresh(name: str) -> str:
        return str(base / name.replace(" ", "_").replace(",", ""))

    auto = parallel.extract_kind(200, parallel.extraction_workers(0, 200))
    configs = [
        (f"1 batch at a time, default (auto: {auto})", run(1, "auto"), _valid),
        (f"4 batches at once, default (auto: {auto})", run(4, "auto"), _valid),
        ("1 batch at a time, extraction threads", run(1, "thread"), _valid),
        ("4 batches at once, extraction threads", run(4, "thread"), _valid),
    ]
    try:
        run(1, "auto")(fresh("warm"))  # imports, schemas, the fork server
        times = _measure(configs, fresh, repeats)
    finally:
        stop.set()
        shutil.rmtree(base, ignore_errors=True)
    rows = [
        [name, c.fmt_s(c.median(times[name])), f"{n / c.median(times[name]):.0f}"] for name, _, _ in configs
    ]
    return c.table(["batches of 200, while another thread runs", "wall time (median)", "items/s"], rows)


def section_cli(cogs: list[str], repeats: int) -> str:
    """``stac-producer register <the COGs>`` in a fresh process, as an
    operator runs it: wall time and CPU (the process and every worker it
    waited for), ``repeats`` times."""
    log(f"\n## cli: {len(cogs)} COGs, {repeats} repeat(s), a fresh process each")
    n = len(cogs)
    base = c.fresh_work_dir("cli")
    listing = base / "cogs.txt"
    listing.write_text("\n".join(cogs))
    code = (
        "import sys; from producer.cli import main; "
        "sys.argv = ['stac-producer', 'register', *open(sys.argv[1]).read().split(), "
        "'--catalog', sys.argv[2], '--collection', 'c']; main()"
    )
    runs: list[tuple[float, float]] = []
    try:
        for rep in range(repeats):
            where = base / f"cat{rep}"
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            t0 = time.perf_counter()
            done = subprocess.run(
                [sys.executable, "-c", code, str(listing), str(where)], capture_output=True, text=True
            )
            wall = time.perf_counter() - t0
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            if done.returncode != 0:
                raise RuntimeError(f"stac-producer register failed: {done.stderr[-1000:]}")
            if rep == 0:
                _valid(str(where))
            cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
            runs.append((wall, cpu))
            log(f"  run {rep + 1}: {wall:.2f} s, CPU {cpu:.2f} s")
    finally:
        shutil.rmtree(base, ignore_errors=True)
    wall, cpu = c.median([r[0] for r in runs]), c.median([r[1] for r in runs])
    rows = [[f"register {n} COGs, fresh process", c.fmt_s(wall), f"{n / wall:.0f}", f"{cpu:.2f} s"]]
    return c.table(["command", "wall time (median)", "items/s", "CPU, workers included (median)"], rows)


def section_split(cogs: list[str]) -> str:
    n = len(cogs)
    log(f"\n## split: {n} COGs, CPU per item by stage")
    base = c.fresh_work_dir("batch-split")
    run_ours(cogs[:40], str(base / "warm"), workers=0, kind="process", write_threads=16)
    pooled = _cpu_split(cogs, str(base / "pooled"), 2)
    serial = _cpu_split(cogs, str(base / "serial"), 1)
    piped = _cpu_split(cogs, str(base / "piped"), 2, stages=False)
    shutil.rmtree(base, ignore_errors=True)

    def ms(seconds: float) -> str:
        return f"{1000 * seconds / n:.2f} ms"

    after = pooled["parent"] - pooled["during"]
    total = pooled["workers"] + pooled["parent"]
    # no overlap: the workers' half, then the parent's part after them
    batch_ceiling = n / (max(pooled["workers"] / 2, pooled["during"]) + after)
    # parent writing while workers extract: the busier of the two cores' shares
    piped_ceiling = n / max(total / 2, pooled["parent"])
    rows = [
        ["serial: extraction and validation", ms(serial["during"]), "one process"],
        [
            "serial: the rest (parents, writes, links, mirror)",
            ms(serial["parent"] - serial["during"]),
            "one process",
        ],
        ["2 processes: extraction and validation", ms(pooled["workers"]), "workers"],
        ["2 processes: while the workers extract", ms(pooled["during"]), "parent (fork, results)"],
        ["2 processes: after extraction", ms(after), "parent (parents, writes, links, mirror)"],
        ["2 processes: total CPU", ms(total), ""],
        ["2 processes: wall", f"{1000 * pooled['wall'] / n:.2f} ms ({n / pooled['wall']:.0f} items/s)", ""],
        ["ceiling, parent after the workers", f"{batch_ceiling:.0f} items/s", "2 cores"],
        ["2 processes, pipelined (default): workers", ms(piped["workers"]), "workers"],
        ["2 processes, pipelined (default): parent", ms(piped["parent"]), "parent (all of it)"],
        [
            "2 processes, pipelined (default): wall",
            f"{1000 * piped['wall'] / n:.2f} ms ({n / piped['wall']:.0f} items/s)",
            "",
        ],
        ["ceiling, parent overlapping the workers", f"{piped_ceiling:.0f} items/s", "2 cores"],
    ]
    return c.table(["stage", "CPU per item", "where"], rows)


class _DelayStore:
    """Fallback latency where bench/latproxy.py is missing: sleep ``delay``
    before each call (threads overlap their sleeps as requests would)."""

    def __init__(self, inner: Any, delay: float) -> None:
        self.inner, self.delay = inner, delay
        self.url, self.concurrent_safe = inner.url, inner.concurrent_safe

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self.inner, name)
        if name in ("get", "put", "delete", "exists", "list"):

            def delayed(*args: Any, **kwargs: Any) -> Any:
                time.sleep(self.delay)
                return attr(*args, **kwargs)

            return delayed
        return attr


class _ProxyProcess:
    """bench/latproxy.py served by a child interpreter: the proxy's CPU (it
    parses and forwards every request) is then not charged to the writer's
    process and GIL, as a real network's latency costs the client none."""

    def __init__(self, upstream: str, delay: float) -> None:
        script = Path(__file__).resolve().with_name("latproxy.py")
        self.proc = subprocess.Popen(
            [sys.executable, str(script), upstream, "--delay-ms", str(delay * 1000)],
            stdout=subprocess.PIPE,
            text=True,
        )
        line = self.proc.stdout.readline().strip() if self.proc.stdout else ""
        if not line.startswith("http://127.0.0.1:"):
            self.proc.kill()
            raise RuntimeError("the latency proxy process did not start")
        self.endpoint_url = line

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def _proc_cpu(pid: int | None) -> float:
    """CPU seconds (user + system, all threads) of process ``pid`` so far; 0 when unknown."""
    if pid is None:
        return 0.0
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


#: CPU seconds per run and config of the other processes of an S3 run: (moto, proxy)
SIDE_CPU: dict[str, list[tuple[float, float]]] = {}

S3_CONFIGS = ("16", "threads", "1", "unpiped")


def section_s3(
    cogs: list[str],
    serial_cogs: list[str],
    repeats: int,
    proxy_where: str = "process",
    which: Sequence[str] = S3_CONFIGS,
) -> str:
    log(
        f"\n## s3: {len(cogs)} COGs, {DELAY * 1000:.0f} ms per request, {repeats} repeat(s), proxy: {proxy_where}"
    )
    proxy_cls: Any = None
    try:  # the groupcommit branch's proxy (bench/latproxy.py)
        proxy_cls = importlib.import_module("bench.latproxy").LatencyProxy
    except ImportError:
        pass
    with c.S3Process() as s3:
        how = f"latency proxy (bench/latproxy.py) in {'its own process' if proxy_where == 'process' else 'a thread of this process'}"
        proxy: Any = None
        proxy_pid: int | None = None
        options = s3.storage_options
        if proxy_cls is not None:
            if proxy_where == "process":
                proxy = _ProxyProcess(s3.endpoint_url, DELAY)
                proxy_pid = proxy.proc.pid
            else:
                proxy = proxy_cls(s3.endpoint_url, delay=DELAY).start()
            options = {
                **s3.storage_options,
                "client_kwargs": {**s3.storage_options["client_kwargs"], "endpoint_url": proxy.endpoint_url},
            }
        else:
            how = "a store wrapper sleeping per call (bench/latproxy.py missing)"
        counter = iter(range(10**6))

        def fresh(name: str) -> str:
            return s3.url(f"batch-{next(counter)}")

        def catalog(where: str) -> Any:
            if proxy is not None:
                return where
            from producer.store import open_store

            return _DelayStore(open_store(where, options), DELAY)

        def ours(
            products: list[str], threads: int, pipelined: bool = True, kind: str = "auto"
        ) -> Callable[[str], float]:
            def run(where: str) -> float:
                side = _proc_cpu(s3.proc.pid), _proc_cpu(proxy_pid)
                seconds = run_ours(
                    products,
                    catalog(where),
                    workers=0,
                    kind=kind,
                    write_threads=threads,
                    storage_options=options,
                    pipelined=pipelined,
                )
                name = f"{threads}-{pipelined}-{len(products)}-{kind}"
                SIDE_CPU.setdefault(name, []).append(
                    (_proc_cpu(s3.proc.pid) - side[0], _proc_cpu(proxy_pid) - side[1])
                )
                return seconds

            return run

        def check(where: str) -> None:
            _valid(where, options)

        # the default extracts with processes from a fork server (this
        # process runs the S3 client's threads: see producer.parallel)
        every = {
            "16": (f"default: 16 write threads, {len(cogs)} COGs", cogs, 16, True, "auto"),
            "threads": (f"16 write threads, extraction threads, {len(cogs)} COGs", cogs, 16, True, "thread"),
            "1": (f"1 write thread, {len(serial_cogs)} COGs", serial_cogs, 1, True, "auto"),
            "unpiped": (f"16 write threads, not pipelined, {len(cogs)} COGs", cogs, 16, False, "auto"),
        }
        chosen = [every[w] for w in which]
        configs = [(name, ours(products, t, piped, kind), check) for name, products, t, piped, kind in chosen]
        run_ours(
            cogs[:20],
            catalog(fresh("warm")),
            workers=1,
            kind="process",
            write_threads=16,
            storage_options=options,
        )
        try:
            times = _measure(configs, fresh, repeats)
        finally:
            if proxy is not None:
                proxy.stop()
    rows = []
    fastest = len(chosen[0][1]) / c.median(times[chosen[0][0]])
    for name, products, t, piped, kind in chosen:
        n = len(products)
        med = c.median(times[name])
        rate = n / med
        side = SIDE_CPU.get(f"{t}-{piped}-{n}-{kind}") or [(0.0, 0.0)]
        moto, prox = c.median([s[0] for s in side]), c.median([s[1] for s in side])
        rows.append(
            [
                name,
                c.fmt_s(med),
                f"{rate:.0f}",
                f"{fastest / rate:.1f}×" if rate else "",
                *_cpu_cells(name, n),
                f"{1000 * moto / n:.2f}",
                f"{1000 * prox / n:.2f}" if proxy_pid is not None else "in parent",
                "valid",
            ]
        )
    note = (
        f"Latency: {DELAY * 1000:.0f} ms per request by {how}; every catalog checked valid after its first "
        "run. CPU per item: this process (its writes; the latency proxy's too when it runs as a thread "
        "here) and the extraction workers; the moto server and the proxy process, each measured apart."
    )
    headers = ["items written by", "wall time (median)", "items/s", f"{chosen[0][0].split(',')[0]} / this"]
    headers += ["CPU/item parent (ms)", "workers", "parent + workers", "moto", "proxy", "catalog"]
    return note + "\n\n" + c.table(headers, rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="100 COGs, 1 repeat, print only")
    parser.add_argument("--sections", default="local,s3")
    parser.add_argument("--repeats", type=int)
    parser.add_argument("--count", type=int, help="COGs per batch (default 1,000; 100 with --quick)")
    parser.add_argument(
        "--proxy",
        choices=("process", "thread"),
        default="process",
        help="s3: the latency proxy in its own process (default) or a thread of this one (as before)",
    )
    parser.add_argument(
        "--s3-configs",
        default=",".join(S3_CONFIGS),
        help="s3: which runs, of 16 (write threads: the default), threads (16, extraction threads), "
        "1 (write thread), unpiped (16, not pipelined)",
    )
    parser.add_argument(
        "--batches", type=int, default=30, help="sustained: batches back to back (default 30)"
    )
    parser.add_argument(
        "--tail", action="store_true", help="print where the time after the last extracted product goes"
    )
    args = parser.parse_args(argv)
    if args.batches < 1:
        parser.error("--batches must be at least 1")
    if args.tail:
        global TAIL
        TAIL = TailTimer()
        TAIL.install()
    n = args.count or (100 if args.quick else 1000)
    repeats = args.repeats or (1 if args.quick else 3)
    cogs = c.ensure_cogs(n, log)[:n]
    sections = args.sections.split(",")
    load_before = os.getloadavg()
    out = []
    if "local" in sections:
        out.append(("batch-local", section_local(cogs, repeats)))
    if "split" in sections:
        out.append(("batch-split", section_split(cogs)))
    if "sustained" in sections:
        out.append(("batch-sustained", section_sustained(cogs, args.batches)))
    if "cli" in sections:
        out.append(("batch-cli", section_cli(cogs, repeats)))
    if "threaded" in sections:
        out.append(("batch-threaded", section_threaded(cogs, repeats)))
    if "s3" in sections:
        out.append(
            (
                "batch-s3",
                section_s3(cogs, cogs[: max(20, n // 5)], repeats, args.proxy, args.s3_configs.split(",")),
            )
        )
    load_after = os.getloadavg()
    note = (
        f"{c.machine_note()}; load average (1 min) {load_before[0]:.1f} before, {load_after[0]:.1f} after "
        "(other engineers' tests share the 2 cores)"
    )
    for name, table in out:
        log(f"\n{table}\n")
        if not args.quick:
            c.write_section(name, f"{note}\n\n{table}")
    log(note)
    return 0


if __name__ == "__main__":
    sys.exit(main())

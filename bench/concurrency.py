"""Concurrent writers into ONE collection: throughput and CAS conflicts retried.

    .venv/bin/python bench/concurrency.py --quick     # ~1 min smoke test (CI), prints only
    .venv/bin/python bench/concurrency.py             # full run, writes BENCHMARKS.md

S3 runs go through ``bench/latproxy.py`` (asyncio, 127.0.0.1), which adds
``--latency-ms`` to every request (0 and 30 by default: moto alone, and the
round trip of real S3), so the table shows what one hot document costs when
each request takes as long as it does in production.

W writer processes (multiprocessing, spawn) each register their share of the
items, one ``producer.register([path])`` call per product (one commit per
product: the most contention, like a pipeline that registers each product as
it lands). Every worker warms up (imports, schemas) before a barrier; the
wall time runs from the barrier to the last worker's end. Conflicts are the
``PreconditionFailed`` answers to conditional puts, counted by a store
wrapper (each is one compare-and-swap the Committer lost and retried:
``producer.register`` does not expose ``Committer.conflicts``).

Each run starts from a seeded catalog: the root and the collection already
hold one item (registered before the timed window), so every run measures
commits into an existing collection (the production case) and runs compare;
on an empty catalog all W writers race to create the root and collection
first. ``BENCH_S3_PROFILE=<dir>`` writes one cProfile file per writer
(``<dir>/writer-<W>-<index>.prof``) of its timed loop.

Afterwards the catalog is checked: every item linked exactly once, nothing
else linked, ``producer.validate_catalog`` reports no error.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import shutil
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import common as c
from bench.latproxy import LatencyProxy

FULL: dict[str, Any] = {
    "writers": [1, 2, 4, 8, 16],
    "items": 160,
    "backends": ["s3"],
    "latency": [0.0, 30.0],
    "repeats": 1,
}
QUICK: dict[str, Any] = {"writers": [1, 8], "items": 24, "backends": ["s3"], "latency": [30.0], "repeats": 1}
WARM_COG = 998


def log(msg: str) -> None:
    print(msg, flush=True)


def _worker(
    index: int,
    writers: int,
    catalog: str,
    options: dict | None,
    files: Any,
    barrier: Any,
    out: Any,
    by_url: bool = False,
    ack: str = "linked",
) -> None:
    """One writer process: warm up, wait for the others, register one by one
    (``by_url``: each call from the catalog URL and storage options, as the
    event handler calls it; else through one store opened before the barrier).
    ``ack``: each register's ``ack`` option ("linked", the default, or "durable").
    ``files``: this writer's fixed share (a list), or a queue all writers take
    their next product from (ended by one None per writer: ``--feed queue``)."""
    try:
        import producer
        from producer import commit as commit_mod
        from producer.store import open_store

        slept = [0.0]
        original_sleep = getattr(commit_mod.Committer, "_sleep", None)
        if original_sleep is not None:  # measure the CAS backoff (the bench's view only)

            def timed_sleep(self: Any, *args: Any, **kwargs: Any) -> None:
                t = time.perf_counter()
                original_sleep(self, *args, **kwargs)
                slept[0] += time.perf_counter() - t

            commit_mod.Committer._sleep = timed_sleep  # type: ignore[method-assign]

        # every sleep of the commit module: the waiters' looks at the leader's
        # intent (LEADER_WAIT) and the backoff above (the bench's view only)
        waited = [0.0]
        timeline_path = os.environ.get("BENCH_TIMELINE")
        timeline: list[dict] | None = [] if timeline_path else None

        class _TimedTime:
            def __getattr__(self, name: str) -> Any:
                return getattr(time, name)

            def sleep(self, seconds: float) -> None:
                t = time.perf_counter()
                time.sleep(seconds)
                waited[0] += time.perf_counter() - t
                if timeline is not None:
                    timeline.append({"kind": "sleep", "key": "", "start": t, "end": time.perf_counter()})

        commit_mod.time = _TimedTime()  # type: ignore[assignment]

        scratch = c.fresh_work_dir(f"conc-warm-{os.getpid()}")
        producer.register([str(c.cog_path(WARM_COG))], catalog=str(scratch), collection="warm")
        shutil.rmtree(scratch)
        store = c.ConflictCountingStore(open_store(catalog, options))
        if timeline is not None:
            store = c.ConflictCountingStore(TimelineStore(store.inner, timeline))
        if by_url:
            # each call opens its own store: count the conflicts of every
            # S3 store of this process (the bench's view only)
            from producer.errors import PreconditionFailed
            from producer.store.s3 import S3Store

            original_put = S3Store.put

            def counted_put(self: Any, key: str, data: bytes, **kwargs: Any) -> str:
                try:
                    return original_put(self, key, data, **kwargs)
                except PreconditionFailed:
                    store.conflicts += 1
                    store.by_key[key] = store.by_key.get(key, 0) + 1
                    raise

            S3Store.put = counted_put  # type: ignore[method-assign]
        # the mirror's Arrow stack (pyarrow, stac-geoparquet, shapely: ~0.7 s
        # CPU), imported by the writer that compacts the mirror: a long-running
        # writer pays it once, here it would land inside one writer's timed
        # window (cold start is bench/coldstart.py's subject)
        from producer import mirror as mirror_mod

        for lazy in (mirror_mod.np, mirror_mod.pa, mirror_mod.pq, mirror_mod.shapely, mirror_mod.sga):
            getattr(lazy, "__name__", None)
        from producer.store.s3_obstore import ObstoreS3Store

        # (the obstore store's ``fs`` would build the default client it does not use)
        fs = None if isinstance(store.inner, ObstoreS3Store) else getattr(store.inner, "fs", None)
        if fs is not None and hasattr(fs, "connect"):
            # the S3 client (botocore's service model, ~0.5 s CPU) is built
            # before the barrier, with no request: a long-running writer pays
            # it once, and W writers would otherwise pay it W times inside
            # the timed window (cold start is bench/coldstart.py's subject)
            fs.connect()
        if not by_url:
            # and one request (a HEAD of the root): a process's first request
            # resolves the endpoint and opens a connection (here ~150 ms, and
            # over 1 s for some of 8 writers starting at once); a long-running
            # writer pays that once, so it stays out of the timed window too
            # (before, the W=8 wall held each writer's first-request start-up)
            # (and as many at once as a register sends in parallel: each opens
            # a connection of the client's pool, and 8 writers opening theirs
            # together inside the timed window took 1.2-1.4 s at the first item)
            from concurrent.futures import ThreadPoolExecutor

            bare = store.inner.inner if timeline is not None else store.inner
            with ThreadPoolExecutor(4) as pool:
                list(pool.map(lambda _: bare.exists("catalog.json"), range(4)))
        profile_dir = os.environ.get("BENCH_S3_PROFILE")
        profiler = None
        if profile_dir:
            import cProfile

            profiler = cProfile.Profile()
        barrier.wait()
        t0 = time.time()
        cpu0 = time.process_time()
        results = []
        if profiler is not None:
            profiler.enable()
        for path in files if isinstance(files, list) else iter(files.get, None):
            if by_url:
                (res,) = producer.register(
                    [path],
                    catalog=catalog,
                    collection=c.COLLECTION,
                    storage_options=dict(options or {}),
                    ack=ack,
                )
            else:
                t_item = time.perf_counter()
                (res,) = producer.register([path], catalog=store, collection=c.COLLECTION, ack=ack)
                if timeline is not None:
                    timeline.append(
                        {"kind": "item", "key": res.id, "start": t_item, "end": time.perf_counter()}
                    )
            results.append((res.id, res.action, res.error))
        if profiler is not None:
            profiler.disable()
            Path(profile_dir).mkdir(parents=True, exist_ok=True)
            profiler.dump_stats(str(Path(profile_dir) / f"writer-{writers}-{index}.prof"))
        t1 = time.time()
        if timeline is not None and timeline_path:
            # perf_counter is the machine's monotonic clock: one time base for every writer
            with open(f"{timeline_path}.{writers}.{index}", "w") as fh:
                for row in timeline:
                    fh.write(json.dumps({"writer": index, **row}) + "\n")
        out.put(
            {
                "index": index,
                "t0": t0,
                "t1": t1,
                "cpu": time.process_time() - cpu0,
                "slept": slept[0] if original_sleep is not None else None,
                "waited": waited[0],
                "conflicts": store.conflicts,
                "by_key": store.by_key,
                "results": results,
            }
        )
    except BaseException as exc:  # report instead of hanging the parent
        out.put({"index": index, "fatal": f"{type(exc).__name__}: {exc}"})
        raise


class TimelineStore:
    """Records each store call of a writer (kind, key, start, end, error) for
    ``BENCH_TIMELINE`` (the bench's view only; forwards everything else)."""

    def __init__(self, inner: Any, rows: list[dict]) -> None:
        self.inner = inner
        self.url = inner.url
        self.concurrent_safe = inner.concurrent_safe
        self.rows = rows

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def _timed(self, kind: str, key: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
        t = time.perf_counter()
        error = None
        try:
            result = fn(*args, **kwargs)
            if kind == "list":
                result = list(result)
            return result
        except Exception as exc:
            error = type(exc).__name__
            raise
        finally:
            self.rows.append(
                {"kind": kind, "key": key, "start": t, "end": time.perf_counter(), "error": error}
            )

    def get(self, key: str) -> Any:
        return self._timed("get", key, self.inner.get, key)

    def put(self, key: str, data: bytes, **kwargs: Any) -> Any:
        return self._timed("put", key, self.inner.put, key, data, **kwargs)

    def delete(self, key: str, **kwargs: Any) -> Any:
        return self._timed("delete", key, self.inner.delete, key, **kwargs)

    def list(self, prefix: str = "") -> Any:
        return self._timed("list", prefix, self.inner.list, prefix)

    def exists(self, key: str) -> Any:
        return self._timed("exists", key, self.inner.exists, key)

    def delete_many(self, keys: list[str]) -> Any:
        return self._timed("delete_many", ",".join(keys), self.inner.delete_many, keys)


def _request_kind(method: str, path: str, query: str) -> str:
    """What a request the proxy saw was about: ``<method> <document kind>``."""
    if "list-type" in query:
        what = "intents" if "_intents" in query else "mirror" if "items" in query else "other"
        return f"LIST {what}"
    if "/_intents/" in path:
        what = "intent"
    elif path.endswith("/collection.json"):
        what = "collection"
    elif path.endswith("/catalog.json"):
        what = "root"
    elif path.endswith(".json"):
        what = "item"
    else:
        what = "mirror/other"
    return f"{method} {what}"


def run_writers(
    catalog: str,
    options: dict | None,
    files: list[str],
    writers: int,
    by_url: bool = False,
    ack: str = "linked",
    feed: str = "shares",
) -> dict:
    ctx = mp.get_context("spawn")
    barrier = ctx.Barrier(writers)
    out = ctx.Queue()
    if feed == "queue":  # one queue: a writer takes the next product once it is done with one
        queue = ctx.Queue()
        for path in [*files, *([None] * writers)]:
            queue.put(path)
        shares: list[Any] = [queue] * writers
    else:  # a fixed share each: the wall time is the slowest share's
        shares = [files[w::writers] for w in range(writers)]
    procs = [
        ctx.Process(target=_worker, args=(w, writers, catalog, options, shares[w], barrier, out, by_url, ack))
        for w in range(writers)
    ]
    for p in procs:
        p.start()
    reports = []
    for _ in procs:
        reports.append(out.get(timeout=1800))
    for p in procs:
        p.join(timeout=60)
    fatal = [r["fatal"] for r in reports if "fatal" in r]
    if fatal:
        raise RuntimeError(f"writer failed: {fatal[0]}")
    wall = max(r["t1"] for r in reports) - min(r["t0"] for r in reports)
    results = [x for r in reports for x in r["results"]]
    by_key: Counter[str] = Counter()
    for r in reports:
        by_key.update(r["by_key"])
    slept = [r["slept"] for r in reports]
    return {
        "wall": wall,
        "conflicts": sum(r["conflicts"] for r in reports),
        "cpu": sum(r["cpu"] for r in reports),
        "slept": None if None in slept else sum(slept),
        "waited": sum(r["waited"] for r in reports),
        "per_worker": [r["conflicts"] for r in sorted(reports, key=lambda r: r["index"])],
        "by_key": dict(by_key),
        "results": results,
    }


def seed(catalog: str, options: dict | None) -> None:
    """The root and the collection with one item (``WARM_COG``), so that the
    timed writers commit into an existing collection."""
    import producer

    (res,) = producer.register(
        [str(c.cog_path(WARM_COG))], catalog=catalog, collection=c.COLLECTION, storage_options=options
    )
    if not res.ok:
        raise RuntimeError(f"seeding {catalog} failed: {res.error}")


def verify(catalog: str, options: dict | None, expected_ids: list[str]) -> dict:
    """Every expected item linked exactly once from the collection, nothing else; valid."""
    import producer
    from producer.store import open_store

    store = open_store(catalog, options)
    coll = json.loads(store.get(f"{c.COLLECTION}/collection.json")[0])
    hrefs = Counter(link["href"] for link in coll["links"] if link["rel"] == "item")
    want = Counter(f"./{i}/{i}.json" for i in expected_ids)
    problems = [str(p) for p in producer.validate_catalog(catalog, storage_options=options) if p.is_error]
    left = [k for k in store.list(f"{c.COLLECTION}/_intents")]
    return {
        "intents_left": len(left),
        "linked_once": hrefs == want,
        "missing": sorted(set(want) - set(hrefs))[:5],
        "duplicates": [h for h, k in hrefs.items() if k > 1][:5],
        "extra": sorted(set(hrefs) - set(want))[:5],
        "errors": problems[:5],
        "n_errors": len(problems),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="1 and 8 writers, 24 items, 30 ms (~1 min)")
    ap.add_argument("--writers", help="comma-separated writer counts (default 1,2,4,8,16)")
    ap.add_argument("--items", type=int, help="items in total (default 160)")
    ap.add_argument("--backends", help="local,s3 (default s3)")
    ap.add_argument(
        "--latency-ms", help="comma-separated delays the proxy adds per S3 request (default 0,30)"
    )
    ap.add_argument("--repeats", type=int, help="runs per (backend, writers); the median is shown")
    ap.add_argument(
        "--write",
        dest="write",
        action="store_true",
        default=None,
        help="write the table into BENCHMARKS.md (default: full runs only)",
    )
    ap.add_argument(
        "--by-url",
        action="store_true",
        help="each register() from the catalog URL and storage_options (the event handler's call)",
    )
    ap.add_argument(
        "--s3-clients",
        default="s3fs",
        help="comma-separated S3 clients of the writers' catalog store: s3fs (the default) and/or "
        "obstore (STAC_S3_CLIENT=obstore); each gets its own rows",
    )
    ap.add_argument(
        "--ack",
        choices=("linked", "durable"),
        default="linked",
        help="each register()'s ack option: 'durable' returns once a contended change is stored "
        "and a live leader is bound to link it",
    )
    ap.add_argument(
        "--feed",
        choices=("shares", "queue"),
        default="shares",
        help="shares: each writer registers a fixed 1/W of the products (the wall time is the slowest "
        "writer's); queue: writers take the next product from one queue, as workers behind an SQS queue do",
    )
    ap.add_argument("--no-write", dest="write", action="store_false")
    ap.add_argument("--out", type=Path, default=c.BENCHMARKS_MD)
    ap.add_argument("--json", type=Path, help="also dump the raw numbers here")
    args = ap.parse_args(argv)
    cfg = dict(QUICK if args.quick else FULL)
    if args.writers:
        cfg["writers"] = [int(x) for x in args.writers.split(",")]
    if args.items:
        cfg["items"] = args.items
    if args.backends:
        cfg["backends"] = args.backends.split(",")
    if args.repeats:
        cfg["repeats"] = args.repeats
    if args.latency_ms:
        cfg["latency"] = [float(x) for x in args.latency_ms.split(",")]
    write = (not args.quick) if args.write is None else args.write

    t_start = time.perf_counter()
    log(f"{'quick' if args.quick else 'full'} run on {c.machine_note()}")
    files = c.ensure_cogs(cfg["items"], log)
    if not c.cog_path(WARM_COG).exists():
        c._write_cog(WARM_COG)
    from producer.api import item_id_for

    ids = [item_id_for(f) for f in files]
    assert len(set(ids)) == len(ids)
    seeded = [*ids, item_id_for(c.cog_path(WARM_COG))]
    rows, raw = [], []
    s3 = c.S3Process() if "s3" in cfg["backends"] else None
    try:
        clients = args.s3_clients.split(",")
        settings = [
            (backend, latency, client)
            for backend in cfg["backends"]
            for latency in (cfg["latency"] if backend == "s3" else [0.0])
            for client in (clients if backend == "s3" else ["-"])
        ]
        for backend, latency, client in settings:
            # the writers are spawned: they read the catalog's S3 client from the environment
            os.environ.pop("STAC_S3_CLIENT", None)
            if client == "obstore":
                os.environ["STAC_S3_CLIENT"] = "obstore"
            base_rate = None
            proxy = None
            if backend == "s3":  # also at 0 ms: the proxy counts the requests
                assert s3 is not None
                proxy = LatencyProxy(s3.endpoint_url, latency / 1000.0).start()
            for w in cfg["writers"]:
                runs = []
                for rep in range(cfg["repeats"]):
                    if backend == "local":
                        catalog, options = str(c.fresh_work_dir(f"conc-{w}")), None
                    else:
                        assert s3 is not None
                        catalog, options = (
                            s3.url(f"conc-{w}-{rep}-{latency:.0f}-{client}"),
                            s3.storage_options,
                        )
                    writer_options = options
                    if proxy is not None and options is not None:
                        writer_options = {
                            **options,
                            "client_kwargs": {**options["client_kwargs"], "endpoint_url": proxy.endpoint_url},
                        }
                    seed(catalog, options)  # without the proxy: not measured
                    server_cpu0 = s3.cpu_seconds() if s3 is not None and backend == "s3" else 0.0
                    requests0 = sum(proxy.counts.values()) if proxy is not None else 0
                    trace0 = len(proxy.trace) if proxy is not None else 0
                    r = run_writers(catalog, writer_options, files, w, args.by_url, args.ack, args.feed)
                    r["requests"] = sum(proxy.counts.values()) - requests0 if proxy is not None else None
                    r["request_kinds"] = (
                        dict(Counter(_request_kind(*t) for t in proxy.trace[trace0:]))
                        if proxy is not None
                        else {}
                    )
                    r["server_cpu"] = (
                        s3.cpu_seconds() - server_cpu0 if s3 is not None and backend == "s3" else None
                    )
                    bad = [x for x in r["results"] if x[1] != "created"]
                    check = verify(catalog, options, seeded)
                    log(
                        f"  {backend:>5} {client} +{latency:.0f} ms W={w}: {r['wall']:.1f} s, {len(files) / r['wall']:.1f} items/s, "
                        f"cpu {r['cpu']:.1f} s (server {r['server_cpu'] or 0:.1f} s), backoff {r['slept'] or 0:.1f} s, "
                        f"all commit sleeps {r['waited']:.1f} s, "
                        f"load {os.getloadavg()[0]:.1f}, conflicts {r['conflicts']} {r['by_key']}, not created {len(bad)}, "
                        f"linked once {check['linked_once']}, errors {check['n_errors']}, "
                        f"intents left {check['intents_left']}"
                    )
                    if r["request_kinds"]:
                        per_item = {
                            k: round(v / len(files), 1) for k, v in sorted(r["request_kinds"].items())
                        }
                        log(f"    requests per item by kind: {per_item}")
                    if bad or not check["linked_once"] or check["n_errors"]:
                        log(f"    PROBLEM: {bad[:3]} {check}")
                    runs.append(
                        {
                            "backend": backend,
                            "writers": w,
                            **r,
                            "check": check,
                            "results": None,
                            "not_created": bad[:5],
                            "n_bad": len(bad),
                        }
                    )
                    if backend == "local":
                        shutil.rmtree(catalog)
                    else:
                        assert s3 is not None
                        s3.drop(f"conc-{w}-{rep}-{latency:.0f}")
                raw.extend(runs)
                walls = sorted(r["wall"] for r in runs)
                wall = c.median(walls)
                rate = len(files) / wall
                base_rate = base_rate or rate
                conflicts = sorted(r["conflicts"] for r in runs)
                n_bad = sum(r["n_bad"] for r in runs)
                linked = all(r["check"]["linked_once"] for r in runs)
                n_err = sum(r["check"]["n_errors"] for r in runs)
                spread = "" if len(walls) == 1 else f" ({c.fmt_s(walls[0])}–{c.fmt_s(walls[-1])})"
                crange = (
                    str(conflicts[0])
                    if len(conflicts) == 1
                    else f"{c.median(conflicts):.0f} ({conflicts[0]}–{conflicts[-1]})"
                )
                mid = sorted(runs, key=lambda r: r["wall"])[(len(runs) - 1) // 2]
                rows.append(
                    [
                        "local filesystem"
                        if backend == "local"
                        else f"S3 (moto), +{latency:.0f} ms/request"
                        + ("" if client == "s3fs" else f", {client} client"),
                        w,
                        c.fmt_s(wall) + spread,
                        f"{rate:.1f}",
                        f"{rate / base_rate:.2f}×",
                        f"{crange}; {c.median(conflicts) / len(files):.2f}/item",
                        f"{mid['cpu'] / mid['wall']:.2f}"
                        + (
                            ""
                            if mid["server_cpu"] is None
                            else f" (+{mid['server_cpu'] / mid['wall']:.2f} server)"
                        ),
                        "–" if mid["slept"] is None else f"{mid['slept']:.1f} s",
                        "–" if mid["requests"] is None else f"{mid['requests'] / len(files):.1f}",
                        "yes" if linked and not n_bad else f"NO ({n_bad} failed)",
                        "valid" if not n_err else f"{n_err} errors",
                    ]
                )
            if proxy is not None:
                proxy.stop()
    finally:
        if s3 is not None:
            s3.close()
    body = c.table(
        [
            "catalog",
            "writers",
            "wall time",
            "items/s",
            "vs 1 writer",
            "CAS conflicts retried",
            "writer CPU / wall",
            "backoff sleep (all writers)",
            "S3 requests/item",
            f"all {len(files)} linked exactly once",
            "validate_catalog",
        ],
        rows,
    )
    log("\n" + body)
    if args.json:
        args.json.write_text(json.dumps({"config": cfg, "runs": raw}, indent=1, default=str))
    if write:
        c.write_section(
            "concurrency-latency",
            f"_{c.machine_note()}; "
            f"{'quick' if args.quick else 'full'} mode; "
            f"{len(files)} items, one register() call per item, one process per writer; "
            f"median of {cfg['repeats']} runs (min–max)._\n\n{body}",
            args.out,
        )
        log(f"updated {args.out}")
    log(f"done in {time.perf_counter() - t_start:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

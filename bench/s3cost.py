"""What a registration costs on S3, request by request: requests and CPU per item.

    .venv/bin/python bench/s3cost.py --quick    # 24 items, prints only
    .venv/bin/python bench/s3cost.py            # 100 items, writes BENCHMARKS.md

The moto server runs in its own process (``bench/common.py:S3Process``)
behind ``bench/latproxy.py`` (``--latency-ms``, 30 by default), which counts
every request. Two shapes, each into a seeded catalog (root and collection
hold one item already, registered before the measurement):

- ``one by one``: one ``producer.register([path])`` call per item (the
  event-driven shape: one commit per product);
- ``one batch``: one ``producer.register(paths)`` call for all items;
- ``one by one, URL``: one ``producer.register([path], catalog="s3://...",
  storage_options=...)`` call per item, as the event handler and the Prefect
  task make them (each call opens its store from the URL and options).

The first two go through one store opened (and its S3 client built) before
the clock starts, as in a long-running writer; the third opens one per call
(one warm-up call before the clock, as a warm Lambda or worker has made). Per item: S3 requests by kind (method and document kind), the writer's CPU
(this process) and the server's CPU (the moto process). Writes nothing but
the catalogs on the local S3 (dropped afterwards) and, without ``--quick``
or with ``--write``, its section of BENCHMARKS.md.

``--timeline``: instead, one register per per-item shape ("one by one" and
"one by one, URL"), each into a seeded catalog after a warm-up register,
printed request by request as the proxy saw them (method, document kind,
start and end in ms from the register's start) with the product's
extraction (``extract.create_item``) as a row of its own: which request
waits on which. ``--repeats N`` (with ``--timeline``): N registers per
shape, their wall times (ms per register: min, median) and request counts.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import common as c
from bench.concurrency import WARM_COG, _request_kind
from bench.latproxy import LatencyProxy


def log(msg: str) -> None:
    print(msg, flush=True)


def measure(
    s3: Any, proxy: LatencyProxy, name: str, files: list[str], batch: bool, by_url: bool = False
) -> dict:
    """Register ``files`` into a fresh seeded catalog; requests and CPU per item."""
    import producer
    from producer.store import open_store

    catalog = s3.url(name)
    (seed,) = producer.register(
        [str(c.cog_path(WARM_COG))],
        catalog=catalog,
        collection=c.COLLECTION,
        storage_options=s3.storage_options,
    )
    assert seed.ok, seed.error
    options = {
        **s3.storage_options,
        "client_kwargs": {**s3.storage_options["client_kwargs"], "endpoint_url": proxy.endpoint_url},
    }
    # one store for the whole run, its S3 client built before the clock
    # starts (a register(storage_options=...) per item builds a new client
    # each time, ~0.2 s CPU: cold start is bench/coldstart.py's subject)
    store = open_store(catalog, options)
    store.fs.connect()
    if by_url:  # the warm-up call of a warm worker, on the seed item
        producer.register(
            [str(c.cog_path(WARM_COG))], catalog=catalog, collection=c.COLLECTION, storage_options=options
        )
    trace0 = len(proxy.trace)
    server0 = s3.cpu_seconds()
    cpu0, t0 = time.process_time(), time.perf_counter()
    if batch:
        results = producer.register(files, catalog=store, collection=c.COLLECTION)
    elif by_url:
        results = [
            r
            for path in files
            for r in producer.register(
                [path], catalog=catalog, collection=c.COLLECTION, storage_options=dict(options)
            )
        ]
    else:
        results = [
            r for path in files for r in producer.register([path], catalog=store, collection=c.COLLECTION)
        ]
    wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    server = s3.cpu_seconds() - server0
    failed = [r for r in results if not r.ok]
    if failed:
        raise RuntimeError(f"{name}: {len(failed)} failed, first: {failed[0].error}")
    kinds = Counter(_request_kind(*t) for t in proxy.trace[trace0:])
    problems = [
        p for p in producer.validate_catalog(catalog, storage_options=s3.storage_options) if p.is_error
    ]
    s3.drop(name)
    n = len(files)
    return {
        "items/s": n / wall,
        "requests": sum(kinds.values()) / n,
        "kinds": {k: v / n for k, v in sorted(kinds.items())},
        "cpu_ms": 1000 * cpu / n,
        "server_ms": 1000 * server / n,
        "valid": not problems,
    }


def _timeline_kind(method: str, path: str, query: str) -> str:
    """:func:`_request_kind`, naming the product's requests (``product``)."""
    if "/products-" in path or "products-" in query:
        return f"{method} product" + (" (list)" if "list-type" in query else "")
    return _request_kind(method, path, query)


def timeline(
    s3: Any,
    proxy: LatencyProxy,
    name: str,
    files: list[str],
    by_url: bool,
    show: bool = True,
    s3_products: bool = False,
) -> list[float]:
    """One register per file of ``files`` (one product each) into a seeded
    catalog, after one warm-up register; prints the first one's requests
    as the proxy saw them, with the extraction's span; returns each
    register's wall time in ms."""
    import producer
    import producer.extract
    from producer.store import open_store

    catalog = s3.url(name)
    options = {
        **s3.storage_options,
        "client_kwargs": {**s3.storage_options["client_kwargs"], "endpoint_url": proxy.endpoint_url},
    }
    store = open_store(catalog, options)
    store.fs.connect()
    warm = str(c.cog_path(WARM_COG))
    if s3_products:  # read in place on S3 through the proxy, as the event handler's products are

        def upload(path: str) -> str:
            key = f"products-{name}/{Path(path).name}"
            s3.client().put_object(Bucket=s3.bucket, Key=key, Body=Path(path).read_bytes())
            return f"s3://{s3.bucket}/{key}"

        warm, files = upload(warm), [upload(path) for path in files]

    def one(path: str) -> None:
        if by_url:
            results = producer.register(
                [path], catalog=catalog, collection=c.COLLECTION, storage_options=dict(options)
            )
        else:
            results = producer.register([path], catalog=store, collection=c.COLLECTION)
        assert all(r.ok for r in results), [r.error for r in results]

    one(warm)  # seed: the catalog, the collection and one item
    one(warm)  # warm-up (an unchanged item): clients, modules, caches
    spans: list[tuple[float, float]] = []
    create_item = producer.extract.create_item

    def timed(*args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        try:
            return create_item(*args, **kwargs)
        finally:
            spans.append((start, time.perf_counter()))

    walls: list[float] = []
    producer.extract.create_item = timed  # type: ignore[attr-defined]
    try:
        for n, path in enumerate(files):
            spans.clear()
            first = len(proxy.timeline)
            t0 = time.perf_counter()
            one(path)
            t1 = time.perf_counter()
            walls.append(1000 * (t1 - t0))
            if n or not show:
                continue
            rows = [
                (_timeline_kind(m, p, q), start, end) for m, p, q, start, end in proxy.timeline[first:]
            ] + [("extraction (create_item)", start, end) for start, end in spans]
            rows.sort(key=lambda row: row[1])
            log(f"  {name}: one register, {1000 * (t1 - t0):.0f} ms, {len(proxy.timeline) - first} requests")
            for what, start, end in rows:
                stop = f"{1000 * (end - t0):7.1f}" if end is not None else "      ?"
                log(f"    {what:28s} {1000 * (start - t0):7.1f} {stop}")
    finally:
        producer.extract.create_item = create_item  # type: ignore[attr-defined]
    s3.drop(name)
    return walls


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="24 items (CI smoke test), prints only")
    ap.add_argument("--items", type=int, help="items per shape (default 100)")
    ap.add_argument("--latency-ms", type=float, default=30.0)
    ap.add_argument("--write", action=argparse.BooleanOptionalAction, default=None)
    ap.add_argument("--out", type=Path, default=c.BENCHMARKS_MD)
    ap.add_argument("--timeline", action="store_true", help="one register's requests, as they overlap")
    ap.add_argument("--repeats", type=int, default=1, help="with --timeline: registers per shape")
    args = ap.parse_args(argv)
    if args.timeline:
        return main_timeline(args)
    n = args.items or (24 if args.quick else 100)
    write = (not args.quick) if args.write is None else args.write
    log(f"{'quick' if args.quick else 'full'} run on {c.machine_note()}")
    files = c.ensure_cogs(n, log)
    if not c.cog_path(WARM_COG).exists():
        c._write_cog(WARM_COG)
    load0 = os.getloadavg()[0]
    rows, kinds_lines = [], []
    with c.S3Process() as s3, LatencyProxy(s3.endpoint_url, args.latency_ms / 1000.0) as proxy:
        shapes = (("one by one", False, False), ("one batch", True, False), ("one by one, URL", False, True))
        for label, batch, by_url in shapes:
            name = f"s3cost-{'batch' if batch else 'url' if by_url else 'single'}"
            r = measure(s3, proxy, name, files, batch, by_url)
            log(
                f"  {label}: {r['items/s']:.1f} items/s, {r['requests']:.1f} requests/item, "
                f"cpu {r['cpu_ms']:.1f} ms/item (server {r['server_ms']:.1f}), load {os.getloadavg()[0]:.1f}"
            )
            kinds = ", ".join(f"{k} {v:.2f}" for k, v in r["kinds"].items())
            log(f"    {kinds}")
            kinds_lines.append(f"- {label}: {kinds}")
            rows.append(
                [
                    label,
                    n,
                    f"{r['items/s']:.1f}",
                    f"{r['requests']:.2f}",
                    f"{r['cpu_ms']:.1f} ms",
                    f"{r['server_ms']:.1f} ms",
                    f"{1000 * r['cpu_ms'] / 1000 / max(r['requests'], 1e-9):.1f} ms",
                    "valid" if r["valid"] else "ERRORS",
                ]
            )
    load1 = os.getloadavg()[0]
    body = c.table(
        [
            "shape",
            "items",
            "items/s",
            "S3 requests/item",
            "writer CPU/item",
            "server CPU/item",
            "writer CPU/request",
            "validate_catalog",
        ],
        rows,
    )
    note = f"_{c.machine_note()}; +{args.latency_ms:.0f} ms per request; load {load0:.1f} → {load1:.1f}._"
    log("\n" + note + "\n\n" + body + "\n\n" + "\n".join(kinds_lines))
    if write:
        c.write_section(
            "s3-cost",
            note + "\n\n" + body + "\n\nRequests per item by kind:\n\n" + "\n".join(kinds_lines),
            args.out,
        )
        log(f"updated {args.out}")
    return 0


def main_timeline(args: argparse.Namespace) -> int:
    files = c.ensure_cogs(max(1, args.repeats), log)
    if not c.cog_path(WARM_COG).exists():
        c._write_cog(WARM_COG)
    log(
        f"timeline on {c.machine_note()}; +{args.latency_ms:.0f} ms per request; load {os.getloadavg()[0]:.2f}"
    )
    log("    request (kind)               start     end   (ms from the register's start)")
    with c.S3Process() as s3, LatencyProxy(s3.endpoint_url, args.latency_ms / 1000.0) as proxy:
        shapes = (
            ("one by one", False, False),
            ("one by one, URL", True, False),
            ("one by one, URL, S3 product", True, True),
        )
        for label, by_url, s3_products in shapes:
            name = f"s3time-{'s3p' if s3_products else 'url' if by_url else 'single'}"
            walls = sorted(timeline(s3, proxy, name, files[: args.repeats], by_url, s3_products=s3_products))
            log(
                f"  {label}: {len(walls)} registers, ms per register min {walls[0]:.0f}, "
                f"median {walls[len(walls) // 2]:.0f}; load {os.getloadavg()[0]:.2f}"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

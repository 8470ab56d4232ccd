"""A million items: one upsert into a 1,000,000-item partitioned collection
vs N = 0, with and without bounded partition catalogs; reconcile's peak memory.

    python bench/million.py --quick     # 20,000 items, a few seconds of seeding, prints only
    python bench/million.py             # 1,000,000 items, writes the BENCHMARKS.md section

The big catalogs are built synthetically and fast: the parent documents a
``year/month`` collection of N items has (root, collection with the exact
extent, year and month catalogs and, with ``max_links``, the finer
partitions the project would have created, placed by the project's own
:meth:`~producer.catalog.layout.Layout.placed_partition_keys` and
:func:`~producer.catalog.layout.mark_if_full`), written directly. The item
documents themselves are not written: an upsert of a new item reads and
writes only its own chain (and the id index entry of its id), never the
other items. Each upsert registers a real COG (a new item) and is undone,
untimed, before the next; medians of ``--repeats``.

The reconcile rows register real items (``--reconcile-n``), then run
``producer.reconcile`` in a fresh process and report its peak RSS
(``resource.getrusage``) above the process's baseline.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import common as c

START = datetime(2015, 1, 1, tzinfo=UTC)
END = datetime(2024, 12, 31, 23, 0, tzinfo=UTC)
SECTION = "million"


def log(msg: str) -> None:
    print(msg, flush=True)


def _when(i: int, n: int) -> datetime:
    span = (END - START).total_seconds()
    return START + timedelta(seconds=int(span * i / max(1, n)))


def _bbox(i: int) -> list[float]:
    lon = -175.0 + (i % 340) * 1.0
    lat = -60.0 + ((i // 340) % 120) * 1.0
    return [lon, lat, lon + 0.5, lat + 0.5]


def seed_parents(root: Path, n: int, max_links: int | None) -> dict[str, int]:
    """Write the parent documents of an N-item ``year/month`` collection
    under ``root`` (see the module docstring); ``max_links=None``: partitions
    never split (the layout before bounded catalogs). Returns the largest
    number of item links in one document and the number of partition documents."""
    from producer.catalog import documents as docs
    from producer.catalog.layout import (
        DEFAULT_MAX_LINKS,
        SPLIT_FIELD,
        Layout,
        item_link_count,
        mark_if_full,
        partition_label,
        relative_href,
    )

    layout = Layout("year/month", max_links or DEFAULT_MAX_LINKS)
    coll = c.COLLECTION
    held: dict[str, dict] = {}  # partition docs of the current year, by key
    stats = {"largest": 0, "partitions": 0}

    def new(key: str, parent: str) -> dict:
        label = partition_label(coll, key)
        doc = docs.new_partition(key, parent, layout, coll, label, coll)
        held[key] = doc
        held.setdefault(parent, {"links": []})["links"].append(
            {
                "rel": "child",
                "href": relative_href(parent, key),
                "type": docs.JSON,
                "title": f"{coll} {label}",
            }
        )
        return doc

    def flush() -> None:
        for key, doc in held.items():
            if key.endswith("collection.json"):
                continue
            path = root / key
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(docs.dumps(doc))
            stats["largest"] = max(stats["largest"], item_link_count(doc))
            stats["partitions"] += 1
        coll_links.extend(held.pop(layout.collection_key(coll), {"links": []})["links"])
        held.clear()

    def split_mark(key: str) -> dict | None:
        return {SPLIT_FIELD: True} if held.get(key, {}).get(SPLIT_FIELD) else None

    counts: dict[str, int] = {}
    coll_links: list[dict] = []
    extent_items: list[dict] = []
    year = None
    for i in range(n):
        when = _when(i, n)
        if when.year != year:
            flush()
            year = when.year
        item_id = f"seed_{i:07d}"
        base = layout.partition_keys(coll, when)
        chain = [layout.collection_key(coll), *base]
        for parent, key in zip(chain, chain[1:]):
            if key not in held:
                new(key, parent)
        # the seeded ids are new: a split mark is all the rule needs to see (no scan of the links)
        keys = base if max_links is None else layout.placed_partition_keys(coll, when, item_id, split_mark)
        for parent, key in zip(keys, keys[1:]):
            if key not in held:
                new(key, parent)
        doc = held[keys[-1]]
        item_key = layout.placed_item_key(coll, item_id, keys)
        doc["links"].append(
            {"rel": "item", "href": relative_href(keys[-1], item_key), "type": docs.GEOJSON, "title": item_id}
        )
        counts[keys[-1]] = counts.get(keys[-1], 0) + 1
        if max_links is not None and counts[keys[-1]] >= max_links:  # counted here: O(1) per item
            mark_if_full(doc, keys[-1], coll, max_links)
        if i % 5000 == 0 or i == n - 1:  # the extent: exact union of a sample (ends included)
            extent_items.append(
                {"bbox": _bbox(i), "properties": {"datetime": when.strftime("%Y-%m-%dT%H:%M:%SZ")}}
            )
    flush()
    collection = docs.new_collection(coll, None, layout)
    collection["links"].extend(coll_links)
    if n:
        collection["extent"] = docs.exact_extent(
            [
                *extent_items,
                {"bbox": [-175.0, -60.0, 165.5, 60.0], "properties": extent_items[0]["properties"]},
            ]
        )
    (root / coll).mkdir(parents=True, exist_ok=True)
    (root / layout.collection_key(coll)).write_bytes(docs.dumps(collection))
    rootdoc = docs.new_root(None)
    rootdoc["links"].append(
        {
            "rel": "child",
            "href": relative_href(layout.root_key, layout.collection_key(coll)),
            "type": docs.JSON,
            "title": coll,
        }
    )
    (root / layout.root_key).write_bytes(docs.dumps(rootdoc))
    return stats


def upserts(root: Path, cogs: list[str]) -> dict[str, Any]:
    """Register each COG (a new item) into the catalog at ``root``, timed, and
    undo it untimed; returns the times and the documents read and written."""
    import producer
    from producer.store.counting import CountingStore
    from producer.store.local import LocalStore

    warm = c.fresh_work_dir(f"million-warm-{os.getpid()}")
    producer.register([cogs[-1]], catalog=str(warm), collection=c.COLLECTION, partition="year/month")
    shutil.rmtree(warm)
    times: list[float] = []
    counts: list[tuple[int, int]] = []
    keys: list[str] = []
    for cog in cogs[:-1]:
        undo = c.UndoStore(LocalStore(str(root)))
        counting = CountingStore(undo)
        t0 = time.perf_counter()
        (res,) = producer.register([cog], catalog=counting, collection=c.COLLECTION, partition="year/month")
        times.append(time.perf_counter() - t0)
        if res.action != "created":
            raise RuntimeError(f"upsert of {cog} gave {res.action}: {res.error}")
        tot = counting.totals()
        counts.append((tot["get"], tot["put"]))
        keys.append((res.href or "")[len(str(root)) + 1 :])
        undo.undo()
    return {"median": c.median(times), "times": times, "counts": counts, "keys": keys}


def reconcile_peak(n: int, max_links: int) -> dict[str, Any]:
    """Register ``n`` real items (copies of pool COGs' items written directly,
    as the upsert benchmark's seed does), then measure reconcile in a fresh process."""
    root = c.BENCH_DIR / "work" / f"million-reconcile-{n}"
    if root.exists():
        shutil.rmtree(root)
    for key, data in c.seed_documents("year/month", n):
        path = root / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    # baseline: the process after a reconcile of a one-item catalog (imports,
    # schemas); then the kernel's peak mark is reset and the big one runs
    small = c.BENCH_DIR / "work" / "million-reconcile-small"
    if small.exists():
        shutil.rmtree(small)
    for key, data in c.seed_documents("year/month", 1):
        (small / key).parent.mkdir(parents=True, exist_ok=True)
        (small / key).write_bytes(data)
    code = (
        "import json, resource, sys, time, producer\n"
        "from bench import common as c\n"
        "producer.reconcile(sys.argv[2], fix=False)\n"
        "base = c.rss_mb()\n"
        "c.reset_peak_rss()\n"
        "t0 = time.perf_counter()\n"
        "report = producer.reconcile(sys.argv[1], fix=False)\n"
        "dt = time.perf_counter() - t0\n"
        "peak = c.hwm_mb()\n"
        "maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024\n"
        "print(json.dumps({'seconds': dt, 'peak_mb': max(peak, 0.0), 'above_mb': peak - base,"
        " 'ru_maxrss_mb': maxrss, 'problems': len(report.problems)}))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(c.REPO)}
    proc = subprocess.run(
        [sys.executable, "-c", code, str(root), str(small)],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    shutil.rmtree(root)
    shutil.rmtree(small)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _seeded(name: str, n: int, max_links: int | None) -> tuple[Path, dict[str, int]]:
    root = c.BENCH_DIR / "work" / f"million-{name}"
    if root.exists():
        shutil.rmtree(root)
    t0 = time.perf_counter()
    stats = seed_parents(root, n, max_links) if n else {"largest": 0, "partitions": 0}
    if not n:
        root.mkdir(parents=True)
    log(f"  seeded {name}: {n:,} items in {time.perf_counter() - t0:.1f} s ({stats})")
    return root, stats


def _load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.1f} / {five:.1f} / {fifteen:.1f}"


def run(n: int, repeats: int, reconcile_ns: list[int], max_links: list[int]) -> str:
    cogs = c.ensure_cogs(repeats + 1, log)
    load_before = _load()
    rows: list[list[Any]] = []
    base_root, _ = _seeded("n0", 0, None)
    zero = upserts(base_root, cogs)
    rows.append(
        ["0", "–", "–", c.fmt_s(zero["median"]), "1.00", f"{zero['counts'][0][0]} / {zero['counts'][0][1]}"]
    )
    for limit in [None, *max_links]:
        name = f"n{n}-{'unsplit' if limit is None else limit}"
        root, stats = _seeded(name, n, limit)
        big = upserts(root, cogs)
        log(f"  {name}: median {c.fmt_s(big['median'])}, first key {big['keys'][0]}")
        rows.append(
            [
                f"{n:,}",
                "never (before)" if limit is None else f"{limit:,}",
                f"{stats['largest']:,}",
                c.fmt_s(big["median"]),
                f"{big['median'] / zero['median']:.2f}",
                f"{big['counts'][0][0]} / {big['counts'][0][1]}",
            ]
        )
        shutil.rmtree(root)
    shutil.rmtree(base_root)
    upsert_table = c.table(
        [
            "items in the collection",
            "max links per partition",
            "largest partition (item links)",
            f"upsert (median of {repeats})",
            "ratio to N = 0",
            "GETs / PUTs",
        ],
        rows,
    )
    rec_rows = []
    for rn in reconcile_ns:
        out = reconcile_peak(rn, max_links[0] if max_links else 2000)
        rec_rows.append(
            [f"{rn:,}", c.fmt_s(out["seconds"]), f"{out['peak_mb']:.0f} MB", f"{out['above_mb']:.0f} MB"]
        )
        log(f"  reconcile {rn:,}: {out}")
    rec_table = c.table(
        ["items", "reconcile (check only)", "peak RSS", "above the process baseline"], rec_rows
    )
    return (
        "## A million items (issue 12, point 7)\n\n"
        f"`bench/million.py` ({c.machine_note()}; load average 1/5/15 min {load_before} at the start, "
        f"{_load()} at the end: other engineers' tests ran beside it).\n\n"
        "One upsert of a new COG into a `year/month` collection, N = 0 vs N items "
        "(parent documents seeded directly; the upsert's own writes undone between repeats):\n\n"
        f"{upsert_table}\n\n"
        "Reconcile (`producer.reconcile`, no fixing) of a `year/month` collection, fresh process:\n\n"
        f"{rec_table}\n"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="20,000 items, prints only")
    parser.add_argument("--n", type=int, default=None)
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument("--max-links", type=int, action="append", default=None)
    parser.add_argument("--reconcile-n", type=int, action="append", default=None)
    args = parser.parse_args(argv)
    n = args.n or (20_000 if args.quick else 1_000_000)
    repeats = args.repeats or (3 if args.quick else 9)
    reconcile_ns = args.reconcile_n or ([500] if args.quick else [10_000, 40_000])
    body = run(n, repeats, reconcile_ns, args.max_links or [2000])
    print(body)
    if not args.quick:
        c.write_section(SECTION, body)
    return 0


if __name__ == "__main__":
    sys.exit(main())

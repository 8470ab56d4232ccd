"""Search over 100,000 items: the stac-geoparquet mirror with DuckDB vs
walking the JSON tree with pystac.

    python bench/search.py              # 100,000 items (seeded once, cached in .bench/seed)
    python bench/search.py --n 20000    # smaller

The catalog is the benchmarks' seeded one (``bench/common.py``: synthetic
items, year/month partitions over ten years, one item per ~1° cell); its
mirror files (one per month partition) are written from the item dicts with
:func:`producer.mirror.encode_items`. Timings:

* mirror build: converting every item dict and writing the 120 files;
* one upsert: :class:`producer.mirror.MirrorSink` applying one changed item
  (writes one fragment beside the item's partition file, reads nothing; the
  fragment is then compacted so the cached mirror stays clean; see
  ``bench/mirror_upsert.py`` for upserts, compaction and search with
  fragments pending);
* search, warm: the median of ``--repeats`` runs of :func:`producer.query.search`
  (bbox + datetime) in this process after one first (timed) run, returning
  every match, and with ``limit=10`` (a STAC API page: only ten rows are
  turned back into items);
* pystac: ``Catalog.from_file(...).get_items(recursive=True)`` then the same
  filter in Python; measured on ``--pystac-n`` items and extrapolated
  linearly to N when the full walk would take more than two minutes (the
  table says which).

Prints a markdown table. Writes the mirror files into the seeded catalog
(kept for the next run; ``--rebuild-mirror`` rewrites them) and links them
from its collection while it measures (as the commit path will).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import common as c

QUERIES = {  # the seed puts 2020's items between 40°S and 0°
    "small": ("5.5,-20,8,-18.6", "2020-01-01T00:00:00Z/2020-12-31T23:59:59Z"),
    "regional": ("0,-30,20,-10", "2020-01-01/2020-12-31"),
    "antimeridian": ("170,-30,-170,30", "2018-01-01/2019-12-31"),
}


def build_mirror(root: Path, partition: str, n: int, force: bool) -> tuple[float, int, list[Path]]:
    """Write the mirror files of the seeded catalog, or reuse those of an
    earlier run (``<seed>.mirror`` holds their build time); (seconds, bytes, paths)."""
    from producer import mirror

    marker = root.with_name(root.name + ".mirror")
    if marker.exists() and not force:
        paths = sorted(root.rglob(mirror.MIRROR_NAME))
        return float(marker.read_text()), sum(p.stat().st_size for p in paths), paths
    marker.unlink(missing_ok=True)
    t0 = time.perf_counter()
    groups: dict[str, list[dict[str, Any]]] = {}
    for key, data in c.seed_documents(partition, n):
        doc = json.loads(data)
        if doc.get("type") == "Feature":
            groups.setdefault(mirror.mirror_key(key), []).append(doc)
    paths = []
    for key, items in groups.items():
        path = root / key
        path.write_bytes(mirror.encode_items(items, key))
        paths.append(path)
    seconds = time.perf_counter() - t0
    marker.write_text(str(seconds))
    return seconds, sum(p.stat().st_size for p in paths), paths


def link_assets(collection_path: Path, keys: list[str]) -> None:
    """Link the mirror files from the collection, as the commit path will."""
    from producer import mirror

    doc = json.loads(collection_path.read_bytes())
    doc.setdefault("assets", {}).update(mirror.mirror_assets(c.COLLECTION, keys))
    collection_path.write_text(json.dumps(doc))


def time_upsert(root: Path) -> tuple[float, int]:
    """One changed item through MirrorSink: (seconds, rows in its partition).
    The fragment it writes is compacted afterwards (not timed)."""
    from producer.changes import Change, ChangeKind
    from producer.mirror import MirrorSink, compact, read_mirror
    from producer.store import open_store

    store = open_store(str(root))
    key = next(str(p.relative_to(root)) for p in sorted(root.rglob("items.parquet")))
    rows, _ = read_mirror(store, key)
    item = dict(next(iter(rows.values())))
    item["properties"] = dict(item["properties"], title=f"changed by the benchmark at {time.time()}")
    item_key = f"{key.rsplit('/', 1)[0]}/{item['id']}/{item['id']}.json"
    t0 = time.perf_counter()
    MirrorSink(store).apply({}, [Change(ChangeKind.UPDATED, c.COLLECTION, item["id"], item_key, item)])
    seconds = time.perf_counter() - t0
    compact(store, key)
    return seconds, len(rows)


def time_search(root: Path, bbox: str, window: str, repeats: int) -> tuple[float, float, float, int]:
    """(first run seconds, warm median seconds, warm median with limit=10, numberMatched)."""
    from producer.query import search

    t0 = time.perf_counter()
    result = search(str(root), bbox=bbox, datetime=window)
    first = time.perf_counter() - t0
    medians = []
    for limit in (None, 10):
        runs = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            search(str(root), bbox=bbox, datetime=window, limit=limit)
            runs.append(time.perf_counter() - t0)
        medians.append(statistics.median(runs))
    return first, medians[0], medians[1], result["numberMatched"]


def _meets(item: Any, box: list[float], start: datetime, end: datetime) -> bool:
    w, s, e, n = item.bbox
    spans = [(w, e)] if w <= e else [(w, 180.0), (-180.0, e)]
    qspans = [(box[0], box[2])] if box[0] <= box[2] else [(box[0], 180.0), (-180.0, box[2])]
    if s > box[3] or n < box[1]:
        return False
    if not any(a1 <= b2 and b1 <= a2 for a1, a2 in spans for b1, b2 in qspans):
        return False
    return start <= item.datetime <= end


def time_pystac(root: Path, bbox: str, window: str) -> tuple[float, int]:
    """Walk every item with pystac and filter: (seconds, matches)."""
    import pystac

    from producer.query import parse_bbox, parse_datetime

    box = list(parse_bbox(bbox) or ())
    start, end = parse_datetime(window) or (None, None)
    assert start is not None and end is not None
    t0 = time.perf_counter()
    catalog = pystac.Catalog.from_file(str(root / "catalog.json"))
    found = sum(1 for item in catalog.get_items(recursive=True) if _meets(item, box, start, end))
    return time.perf_counter() - t0, found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--pystac-n", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--rebuild-mirror", action="store_true", help="rewrite cached mirror files")
    args = parser.parse_args()
    partition = "year/month"

    root = c.seed_local(partition, args.n)
    rows: list[list[Any]] = []
    paths: list[Path] = []
    collection_path = root / c.COLLECTION / "collection.json"
    original = collection_path.read_bytes()
    try:
        build_s, size, paths = build_mirror(root, partition, args.n, args.rebuild_mirror)
        print(f"mirror: {len(paths)} files, {size / 1e6:.1f} MB, built in {build_s:.1f} s", flush=True)
        link_assets(collection_path, [str(p.relative_to(root)) for p in paths])
        upsert_s, upsert_rows = time_upsert(root)
        print(f"one upsert: {c.fmt_s(upsert_s)} (partition of {upsert_rows} rows)", flush=True)

        small_root = c.seed_local(partition, args.pystac_n) if args.pystac_n < args.n else root
        for name, (bbox, window) in QUERIES.items():
            first, warm, warm10, matched = time_search(root, bbox, window, args.repeats)
            walk_s, walk_found = time_pystac(small_root, bbox, window)
            scale = args.n / args.pystac_n if small_root is not root else 1.0
            estimate = walk_s * scale
            if small_root is not root and estimate <= 120:
                walk_s, walk_found = time_pystac(root, bbox, window)
                estimate, note = walk_s, "measured"
            else:
                note = (
                    f"extrapolated ×{scale:.0f} from {c.fmt_n(args.pystac_n)} items ({c.fmt_s(walk_s)})"
                    if small_root is not root
                    else "measured"
                )
            rows.append(
                [
                    name,
                    f"`{bbox}` `{window}`",
                    matched,
                    c.fmt_s(first),
                    c.fmt_s(warm),
                    c.fmt_s(warm10),
                    c.fmt_s(estimate),
                    note,
                    f"×{estimate / warm:,.0f}",
                ]
            )
            print(
                f"  {name}: {matched} matches, warm {c.fmt_s(warm)}, pystac {c.fmt_s(estimate)}", flush=True
            )
    finally:
        collection_path.write_bytes(original)

    print()
    print(
        f"Search over {c.fmt_n(args.n)} items ({partition} partitions, {len(paths)} mirror files, "
        f"{size / 1e6:.1f} MB; mirror built in {c.fmt_s(build_s)}, one upsert {c.fmt_s(upsert_s)} "
        f"for a {upsert_rows}-row partition). {c.machine_note()}"
    )
    print()
    print(
        c.table(
            [
                "query",
                "bbox, datetime",
                "matches",
                "mirror first run",
                f"mirror warm (median of {args.repeats})",
                "warm, limit 10",
                "pystac walk",
                "pystac how",
                "speed-up",
            ],
            rows,
        )
    )


if __name__ == "__main__":
    main()

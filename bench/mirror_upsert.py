"""Mirror write cost with per-writer fragments: one-item upserts into
partitions of 0, 1,000 and 10,000 rows, compaction, and search with
fragments pending.

    python bench/mirror_upsert.py               # sizes 0, 1,000, 10,000
    python bench/mirror_upsert.py --quick       # sizes 0, 1,000; fewer repeats

For each size a flat collection of the benchmarks' synthetic items
(``bench/common.py``) is written to a temporary local catalog (root and
collection documents, and the partition's base mirror file; no item JSON:
the mirror does not read it). Timings, in this process after a warm-up:

* one upsert: :meth:`producer.mirror.MirrorSink.apply` of one UPDATED item
  (a new ``updated`` each time), compaction off: one create-only fragment;
  median of ``--repeats``;
* compaction: :func:`producer.mirror.compact` folding 32 pending fragments
  into the base (one run), and that cost spread over the 33 upserts that
  trigger one compaction with ``COMPACT_AFTER = 32``;
* search warm: :func:`producer.query.search` (bbox + datetime), median of
  ``--repeats`` after one first run, with 0 and with 32 fragments pending.

Prints a markdown table. Writes only under a temporary directory.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import common as c

BBOX = "-180,-90,180,90"
WINDOW = "2020-01-01/2020-01-31"


def seed(root: Path, n: int) -> list[tuple[str, dict[str, Any]]]:
    """Write the root, the collection and (n > 0) the base mirror file of a
    flat collection of ``n`` items; return ``(key, item)`` of the items."""
    from producer import mirror

    items = []
    for key, data in c.seed_documents(None, n):
        doc = json.loads(data)
        if doc.get("type") == "Feature":
            items.append((key, doc))
        else:
            path = root / key
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
    if items:
        base = f"{c.COLLECTION}/{mirror.MIRROR_NAME}"
        (root / base).write_bytes(mirror.encode_items([item for _, item in items], base))
    return items


def one_change(key: str, item: dict[str, Any], n: int) -> Any:
    """An UPDATED change of ``item`` with ``updated`` moved on by ``n`` seconds."""
    from producer.changes import Change, ChangeKind

    changed = json.loads(json.dumps(item))
    when = datetime(2025, 1, 1, tzinfo=UTC) + timedelta(seconds=n)
    changed["properties"]["updated"] = when.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    changed["properties"]["title"] = f"upsert {n}"
    return Change(ChangeKind.UPDATED, c.COLLECTION, changed["id"], key, changed)


def time_search(root: Path, repeats: int) -> tuple[float, int]:
    """(warm median seconds, numberMatched)."""
    from producer.query import search

    result = search(str(root), bbox=BBOX, datetime=WINDOW)
    runs = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        search(str(root), bbox=BBOX, datetime=WINDOW)
        runs.append(time.perf_counter() - t0)
    return statistics.median(runs), result["numberMatched"]


def measure(n: int, repeats: int, tmp: Path) -> list[Any]:
    from producer import mirror
    from producer.mirror import MirrorSink
    from producer.store import open_store

    root = tmp / f"n{n}"
    items = seed(root, n)
    store = open_store(str(root))
    base = f"{c.COLLECTION}/{mirror.MIRROR_NAME}"
    if not items:  # an empty partition: upsert a fresh synthetic item
        docs = [(k, json.loads(d)) for k, d in c.seed_documents(None, 1)]
        items = [(k, doc) for k, doc in docs if doc.get("type") == "Feature"]
    key, item = items[len(items) // 2]
    sink = MirrorSink(store, compact_after=10**9)  # compaction measured on its own
    stamp = 0
    search_0, matched_0 = time_search(root, repeats) if n else (float("nan"), 0)
    runs = []
    for _ in range(repeats):
        stamp += 1
        change = one_change(key, item, stamp)
        t0 = time.perf_counter()
        sink.apply({}, [change])
        runs.append(time.perf_counter() - t0)
        mirror.compact(store, base)  # back to no pending fragment
    upsert = statistics.median(runs)
    for _ in range(mirror.COMPACT_AFTER):
        stamp += 1
        sink.apply({}, [one_change(key, item, stamp)])
    search_32, matched_32 = time_search(root, repeats)
    t0 = time.perf_counter()
    mirror.compact(store, base)
    compaction = time.perf_counter() - t0
    amortised = upsert + compaction / (mirror.COMPACT_AFTER + 1)
    return [
        c.fmt_n(n),
        c.fmt_s(upsert),
        c.fmt_s(compaction),
        c.fmt_s(amortised),
        f"{c.fmt_s(search_0)} ({matched_0})" if n else "–",
        f"{c.fmt_s(search_32)} ({matched_32})",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--repeats", type=int, default=None)
    args = parser.parse_args()
    sizes = [0, 1_000] if args.quick else [0, 1_000, 10_000]
    repeats = args.repeats or (3 if args.quick else 9)
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-mirror-") as tmp:
        measure(10, 2, Path(tmp))  # warm-up: imports, first parquet writes
        for n in sizes:
            rows.append(measure(n, repeats, Path(tmp)))
            print(f"  {rows[-1][0]} rows: upsert {rows[-1][1]}, compaction {rows[-1][2]}", flush=True)
    print()
    print(f"One-item mirror upserts, flat collection, local disk (median of {repeats}). {c.machine_note()}")
    print()
    print(
        c.table(
            [
                "rows in the partition",
                "one upsert (one fragment)",
                "compaction of 32 fragments",
                "upsert + 1/33 of a compaction",
                "search warm, 0 fragments (matches)",
                "search warm, 32 fragments (matches)",
            ],
            rows,
        )
    )


if __name__ == "__main__":
    main()

"""Cost of one mirror write (``MirrorSink.apply``): the parquet fragments of
the previous version against the NDJSON fragments of issue 12, in one run.

    python bench/mirror_write.py            # 30 timed writes, 264 counted writes
    python bench/mirror_write.py --quick    # 10 timed writes, 99 counted writes

"before" is the previous write path re-enacted with today's store calls:
HEAD of the base (create it if absent), a create-only PUT of a parquet
fragment (``producer.mirror.encode_parquet_fragment``, the previous
``encode_fragment``), then a LIST of the fragments and a compaction when
there are more than ``COMPACT_AFTER``. "after" is ``MirrorSink`` as it is.
Each write is one item in one flat partition of a local catalog seeded with
the benchmarks' synthetic items (``bench/common.py``); a new sink per write,
as in one CLI call or one Lambda invocation.

* time per write: median wall time of encoding a one-item fragment (CPU
  only), and of ``apply`` of one UPDATED item and of one CREATED item
  (compaction off, so that only the write is timed; the local store's
  create-only PUT includes two fsyncs, ~5 ms under load);
* store calls per write (each is one S3 request: GET, PUT, DELETE, LIST,
  HEAD) over many one-item writes with compaction on (``COMPACT_AFTER``),
  so that the compactions they trigger are included, amortised;
* cold import: a fresh ``python -c 'import producer.mirror'`` with and
  without the Arrow modules the previous version imported with it.

Prints markdown tables. Writes only under a temporary directory.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import common as c

REPO = Path(__file__).resolve().parents[1]


class BeforeSink:
    """The previous ``MirrorSink.apply`` for one-partition batches: HEAD of
    the base, PUT of a parquet fragment, LIST of the fragments (compaction
    when due). Writes what the previous version wrote."""

    def __init__(self, store: Any, compact_after: int) -> None:
        self.store, self.compact_after = store, compact_after

    def apply(self, collection: dict[str, Any], changes: Sequence[Any]) -> None:
        from producer import mirror
        from producer.changes import ChangeKind

        key = mirror.mirror_key(changes[0].key)
        upserts = {ch.item_id: ch.item for ch in changes if ch.kind is not ChangeKind.REMOVED}
        if not self.store.exists(key):
            self.store.put(key, mirror.empty_base(), create_only=True)
        frag = f"{mirror.fragments_prefix(key)}/{mirror._fragment_name().rsplit('.', 1)[0]}.parquet"
        self.store.put(frag, mirror.encode_parquet_fragment(upserts, {}, frag), create_only=True)
        if len(mirror.list_fragments(self.store, key)) > self.compact_after:
            mirror.compact(self.store, key)


def seed(root: Path, n: int) -> list[tuple[str, dict[str, Any]]]:
    """Root, collection and (n > 0) the base mirror file of a flat
    collection of ``n`` synthetic items; returns ``(key, item)`` of the items."""
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
    base = f"{c.COLLECTION}/{mirror.MIRROR_NAME}"
    (root / base).write_bytes(mirror.encode_items([item for _, item in items], base))
    return items


def change(kind: str, key: str, item: dict[str, Any], n: int) -> Any:
    """A change of ``item`` (kind ``created``/``updated``) stamped ``n`` seconds on."""
    from producer.changes import Change, ChangeKind

    changed = json.loads(json.dumps(item))
    when = datetime(2025, 1, 1, tzinfo=UTC) + timedelta(seconds=n)
    changed["properties"]["updated"] = when.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    changed["properties"]["title"] = f"write {n}"
    return Change(ChangeKind(kind), c.COLLECTION, changed["id"], key, changed)


def fresh(root: Path) -> None:
    """Back to the seeded state: no fragment (the base stays)."""
    import shutil

    shutil.rmtree(root / c.COLLECTION / "items-fragments", ignore_errors=True)


def time_writes(root: Path, make: Callable[[Any], Any], kind: str, items: list, runs: int) -> float:
    from producer.store import open_store

    store = open_store(str(root))
    key, item = items[0]
    times = []
    for n in range(runs):
        sink = make(store)
        ch = change(kind, key, item, n)
        t0 = time.perf_counter()
        sink.apply({}, [ch])
        times.append(time.perf_counter() - t0)
    fresh(root)
    return statistics.median(times)


def count_writes(
    root: Path, make: Callable[[Any], Any], kind: str, items: list, writes: int
) -> dict[str, float]:
    from producer.store import CountingStore, open_store

    counting = CountingStore(open_store(str(root)))
    key, item = items[0]
    for n in range(writes):
        make(counting).apply({}, [change(kind, key, item, 10_000 + n)])
    totals = {k: v / writes for k, v in counting.totals().items()}
    fresh(root)
    return totals


def time_encoding(encode: Callable[..., bytes], items: list, runs: int) -> float:
    """Median time of encoding one one-item fragment (CPU only: no store call)."""
    key, item = items[0]
    times = []
    for n in range(runs):
        ch = change("updated", key, item, n)
        t0 = time.perf_counter()
        encode({ch.item_id: ch.item}, {}, "bench")
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def cold_import(extra: str, repeats: int) -> float:
    code = "import producer.mirror" + (f"; import {extra}" if extra else "")
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], cwd=REPO, check=True, env={"PYTHONPATH": str(REPO)})
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    runs, writes, imports = (10, 99, 3) if args.quick else (30, 264, 5)
    from producer import mirror
    from producer.mirror import MirrorSink

    variants: dict[str, Callable[[Any], Any]] = {
        "before (parquet fragment)": lambda s: BeforeSink(s, 10**9),
        "after (NDJSON fragment)": lambda s: MirrorSink(s, compact_after=10**9),
    }
    counted: dict[str, Callable[[Any], Any]] = {
        "before (parquet fragment)": lambda s: BeforeSink(s, mirror.COMPACT_AFTER),
        "after (NDJSON fragment)": lambda s: MirrorSink(s),
    }
    timing_rows, request_rows = [], []
    with tempfile.TemporaryDirectory(prefix="bench-mirror-write-") as tmp:
        root = Path(tmp) / "cat"
        items = seed(root, 1_000)
        time_writes(root, variants["before (parquet fragment)"], "updated", items, 2)  # warm-up
        encoders = {
            "before (parquet fragment)": mirror.encode_parquet_fragment,
            "after (NDJSON fragment)": mirror.encode_fragment,
        }
        for name, make in variants.items():
            updated = time_writes(root, make, "updated", items, runs)
            created = time_writes(root, make, "created", items, runs)
            encoding = time_encoding(encoders[name], items, runs)
            timing_rows.append([name, c.fmt_s(encoding), c.fmt_s(updated), c.fmt_s(created)])
            print(f"  {name}: update {c.fmt_s(updated)}, create {c.fmt_s(created)}", flush=True)
        for name, make in counted.items():
            for kind in ("updated", "created"):
                t = count_writes(root, make, kind, items, writes)
                request_rows.append(
                    [name, kind, f"{sum(t.values()):.2f}"]
                    + [f"{t[k]:.2f}" for k in ("put", "exists", "list", "get", "delete")]
                )
    before_import = cold_import("pyarrow.parquet, stac_geoparquet.arrow, shapely, numpy", imports)
    after_import = cold_import("", imports)
    print()
    print(f"One-item mirror writes, flat partition of 1,000 rows, local disk. {c.machine_note()}")
    print()
    print(f"Time per write (median of {runs}, a new sink per write, compaction off):")
    print()
    print(
        c.table(
            ["write path", "encoding the fragment (CPU)", "apply: update one item", "apply: create one item"],
            timing_rows,
        )
    )
    print()
    print(
        f"Store calls (= S3 requests) per write, mean over {writes} one-item writes "
        f"with compaction on (COMPACT_AFTER = {mirror.COMPACT_AFTER}, amortised):"
    )
    print()
    print(c.table(["write path", "change", "total", "PUT", "HEAD", "LIST", "GET", "DELETE"], request_rows))
    print()
    print(f"Cold `import producer.mirror` in a fresh process (median of {imports}):")
    print()
    print(
        c.table(
            ["imports", "time"],
            [
                [
                    "before: with pyarrow.parquet, stac_geoparquet.arrow, shapely, numpy",
                    c.fmt_s(before_import),
                ],
                ["after: producer.mirror alone", c.fmt_s(after_import)],
            ],
        )
    )


if __name__ == "__main__":
    main()

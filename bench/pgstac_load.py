"""How fast committed items reach pgSTAC through :class:`PgstacSink`.

Starts a throw-away PostgreSQL 15 + PostGIS + pgSTAC on 127.0.0.1 (the test
suite's tests/pgserver.py: the Debian packages must be installed), then
applies one batch of N small items (default 10,000: footprint polygon, one
asset, a few properties, as the producer commits them) and times:

- created: the first apply (collection row + N inserts);
- unchanged: the same batch again (pgSTAC's upsert leaves every row alone);
- updated: every item changed (N rows rewritten);
- diff: reconcile's comparison of N catalog items with the database (in sync);
- removed: N deletions.

Target (issue 11): a batch of 10,000 items at >= 1,000 items/s. Prints a
markdown table; nothing is written outside the temporary data directory.

    PYTHONPATH=. python bench/pgstac_load.py [--items 10000] [--repeats 3]
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time
from collections.abc import Callable
from typing import Any

from producer.changes import Change, ChangeKind
from producer.sinks.pgstac import PgstacSink
from tests.pgserver import postgres_server

COLLECTION = "bench"


def collection() -> dict[str, Any]:
    return {
        "type": "Collection",
        "stac_version": "1.1.0",
        "id": COLLECTION,
        "description": "pgSTAC load benchmark",
        "license": "other",
        "extent": {
            "spatial": {"bbox": [[-180.0, -90.0, 180.0, 90.0]]},
            "temporal": {"interval": [["2024-01-01T00:00:00Z", "2024-12-31T00:00:00Z"]]},
        },
        "links": [],
    }


def item(i: int) -> dict[str, Any]:
    w = -170.0 + (i % 340)
    s = -80.0 + (i // 340) % 160
    return {
        "type": "Feature",
        "stac_version": "1.1.0",
        "stac_extensions": [],
        "id": f"item-{i:06d}",
        "collection": COLLECTION,
        "geometry": {
            "type": "Polygon",
            "coordinates": [[[w, s], [w + 0.5, s], [w + 0.5, s + 0.5], [w, s + 0.5], [w, s]]],
        },
        "bbox": [w, s, w + 0.5, s + 0.5],
        "properties": {
            "datetime": f"2024-{1 + i % 12:02d}-{1 + i % 28:02d}T10:00:00Z",
            "proj:code": "EPSG:32633",
            "proj:shape": [64, 64],
        },
        "links": [{"rel": "parent", "href": "../collection.json", "type": "application/json"}],
        "assets": {
            "data": {
                "href": f"https://data.example.com/products/item-{i:06d}.tif",
                "type": "image/tiff; application=geotiff; profile=cloud-optimized",
                "roles": ["data"],
            }
        },
    }


def changes(kind: ChangeKind, items: list[dict[str, Any]]) -> list[Change]:
    return [
        Change(kind, COLLECTION, it["id"], f"{COLLECTION}/{it['id']}/{it['id']}.json", it) for it in items
    ]


def timed(fn: Callable[[], Any]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def one_run(sink: PgstacSink, items: list[dict[str, Any]], updated: list[dict[str, Any]]) -> dict[str, float]:
    """Seconds per step, on a fresh database."""
    out = {
        "created": timed(lambda: sink.apply(collection(), changes(ChangeKind.CREATED, items))),
        "unchanged": timed(lambda: sink.apply(collection(), changes(ChangeKind.UPDATED, items))),
        "updated": timed(lambda: sink.apply(collection(), changes(ChangeKind.UPDATED, updated))),
    }
    assert sink.diff(collection(), updated).in_sync
    out["diff"] = timed(lambda: sink.diff(collection(), updated))
    out["removed"] = timed(lambda: sink.apply(collection(), changes(ChangeKind.REMOVED, items)))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    n = args.items
    items = [item(i) for i in range(n)]
    updated = copy.deepcopy(items)
    for it in updated:
        it["properties"]["platform"] = "bench-2"
    runs: dict[str, list[float]] = {k: [] for k in ("created", "unchanged", "updated", "diff", "removed")}
    with postgres_server() as server:
        for _ in range(args.repeats):
            for step, seconds in one_run(PgstacSink(server.new_database()), items, updated).items():
                runs[step].append(seconds)
    print(f"\npgSTAC sink, one batch of {n:,} items, median of {args.repeats} runs (2 cores)\n")
    print("| step | seconds | items/s |")
    print("| --- | ---: | ---: |")
    for step, times in runs.items():
        t = statistics.median(times)
        print(f"| {step} | {t:.2f} | {n / t:,.0f} |")


if __name__ == "__main__":
    main()

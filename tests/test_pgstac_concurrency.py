"""Concurrent batches of collections that are new in pgSTAC (issue: a
Prefect backfill's parallel batches, or Lambdas handling events at once, hit
PostgreSQL's "deadlock detected" and failed a batch; batches of several new
collections at once failed with "relation _items_N does not exist"). Real PostgreSQL +
PostGIS + pgSTAC on 127.0.0.1 (tests/pgserver.py); a barrier sends every
writer to the database at the same moment, for several rounds, each round
with a collection the database has never seen."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import psycopg
import pytest

from producer.changes import Change, ChangeKind
from producer.sinks.pgstac import PgstacSink
from tests.test_pgstac import make_collection, make_item

WRITERS = 6
ROUNDS = 5


@pytest.mark.parametrize("collections", [1, 3], ids=["one-collection", "three-collections"])
def test_concurrent_batches_of_new_collections_all_land(pgstac_dsn: str, collections: int) -> None:
    """The writers serialise in the database: pgSTAC's partition upkeep
    walks every collection's partition, so writers of different
    collections interfere as much as writers of one."""
    sink = PgstacSink(pgstac_dsn)
    for rnd in range(ROUNDS):
        cids = [f"new-{rnd}-{c}" for c in range(collections)]
        barrier = threading.Barrier(WRITERS)

        def batch(w: int, cids: list[str] = cids, barrier: threading.Barrier = barrier) -> None:
            # each writer commits its own product, in its own month (its own
            # partition when the collection is time-partitioned), and the
            # collection document with the extent its batch saw
            cid = cids[w % len(cids)]
            coll: dict[str, Any] = make_collection(
                bbox=[float(w), 45.0, float(w) + 1, 46.0],
                interval=[f"2024-{w + 1:02d}-01T00:00:00Z", f"2024-{w + 1:02d}-28T00:00:00Z"],
            )
            coll["id"] = cid
            items = [
                make_item(
                    f"p{w}-{k}",
                    [float(w), 45.0, float(w) + 1, 46.0],
                    f"2024-{w + 1:02d}-{k + 1:02d}T00:00:00Z",
                )
                for k in range(3)
            ]
            changes = [
                Change(ChangeKind.CREATED, cid, it["id"], f"{cid}/{it['id']}.json", it) for it in items
            ]
            barrier.wait()
            sink.apply(coll, changes)

        with ThreadPoolExecutor(WRITERS) as pool:
            futures = [pool.submit(batch, w) for w in range(WRITERS)]
            errors = [str(f.exception()) for f in futures if f.exception() is not None]
        assert errors == [], f"round {rnd}: {errors}"
        with psycopg.connect(pgstac_dsn) as conn:
            n = conn.execute(
                "SELECT count(*) FROM pgstac.items WHERE collection = ANY(%s)", (cids,)
            ).fetchone()
        assert n is not None and n[0] == WRITERS * 3

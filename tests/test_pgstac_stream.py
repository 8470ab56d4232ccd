"""reconcile's comparison with pgSTAC streams a collection's items to the
database (a temporary table compared there), so a collection of any size is
compared and synchronised in bounded memory here (issue 12, point 7: the
pgSTAC path held every item of a collection). Real PostgreSQL + PostGIS +
pgSTAC on 127.0.0.1 (tests/pgserver.py)."""

from __future__ import annotations

import tracemalloc
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pytest

import producer
from producer.sinks import pgstac as pg
from producer.sinks.pgstac import PgstacSink
from tests.crashes import write_tile

COLL = "big"


def collection() -> dict[str, Any]:
    return {
        "type": "Collection",
        "stac_version": "1.1.0",
        "id": COLL,
        "description": "streamed",
        "license": "proprietary",
        "extent": {
            "spatial": {"bbox": [[0.0, 0.0, 10.0, 10.0]]},
            "temporal": {"interval": [["2024-01-01T00:00:00Z", "2024-12-31T00:00:00Z"]]},
        },
        "links": [],
    }


def item(i: int, *, note: str = "") -> dict[str, Any]:
    x, y = (i % 100) / 10, (i // 100) / 10
    return {
        "type": "Feature",
        "stac_version": "1.1.0",
        "id": f"item-{i:05d}",
        "collection": COLL,
        "geometry": {
            "type": "Polygon",
            "coordinates": [[[x, y], [x + 0.1, y], [x + 0.1, y + 0.1], [x, y + 0.1], [x, y]]],
        },
        "bbox": [x, y, x + 0.1, y + 0.1],
        "properties": {"datetime": f"2024-{1 + i % 12:02d}-15T00:00:00Z", "note": note, "pad": "x" * 1500},
        "assets": {"data": {"href": f"s3://bucket/p/{i:05d}.tif", "type": "image/tiff"}},
        "links": [{"rel": "self", "href": f"./item-{i:05d}.json"}],
    }


def items(n: int, **kw: Any) -> Callable[[], Iterator[dict[str, Any]]]:
    """A fresh generator of ``n`` items per call, made on the fly (the source
    holds nothing, like a walk of the catalog)."""
    return lambda: (item(i, **kw) for i in range(n))


def peak_during(call: Callable[[], Any]) -> int:
    tracemalloc.start()
    try:
        call()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_comparing_ten_times_the_items_does_not_hold_ten_times_the_memory(pgstac_dsn, monkeypatch):
    monkeypatch.setattr(pg, "CHUNK", 100)
    sink = PgstacSink(pgstac_dsn)
    small, large = 200, 2000
    sink.sync(collection(), [item(i) for i in range(large)])
    assert sink.diff(collection(), items(large)()).in_sync
    # a one-shot generator, as a caller walking its catalog would pass
    peak_small = peak_during(lambda: sink.diff(collection(), items(small)()))
    peak_large = peak_during(lambda: sink.diff(collection(), items(large)()))
    # the large diff also returns 1,800 extra ids (~100 KB); holding the items
    # would add 1,800 documents of ~2 KB (~4 MB and more in Python objects)
    assert peak_large < 2 * peak_small + 1_000_000, (peak_small, peak_large)


def test_streamed_diff_and_sync_find_and_mend_every_drift(pgstac_dsn, monkeypatch):
    monkeypatch.setattr(pg, "CHUNK", 50)
    sink = PgstacSink(pgstac_dsn)
    n = 230
    before = sink.sync(collection(), items(n))
    assert before.collection_differs and len(before.missing) == n
    with psycopg.connect(pgstac_dsn, autocommit=True) as conn:
        conn.execute("SET search_path TO pgstac, public")
        conn.execute("DELETE FROM items WHERE id = ANY(%s)", (["item-00003", "item-00170"],))

    # the catalog now has a changed item 0..: every item's note differs, and
    # one item is linked twice (a walk yields it twice)
    def drifted() -> Iterator[dict[str, Any]]:
        yield from (item(i, note="v2" if i == 7 else "") for i in range(n))
        yield item(42)

    diff = sink.diff(collection(), drifted)
    assert diff.missing == ["item-00003", "item-00170"]
    assert diff.differing == ["item-00007"]
    assert diff.extra == [] and not diff.collection_differs
    fewer = items(n - 10)  # the last ten were removed from the catalog
    assert sink.diff(collection(), fewer).extra == [f"item-{i:05d}" for i in range(n - 10, n)]

    sink.sync(collection(), drifted)
    assert sink.diff(collection(), drifted).in_sync
    sink.sync(collection(), fewer)
    assert sink.diff(collection(), fewer).in_sync


def test_a_one_shot_iterator_is_still_synchronised(pgstac_dsn):
    """sync reads the items more than once: an iterator is held once, as before."""
    sink = PgstacSink(pgstac_dsn)
    sink.sync(collection(), iter([item(i) for i in range(5)]))
    assert sink.diff(collection(), [item(i) for i in range(5)]).in_sync


@pytest.mark.parametrize("fix", [False, True])
def test_reconcile_with_pgstac_names_each_drifted_item_by_its_key(tmp_path, pgstac_dsn, fix):
    folder = tmp_path / "tiles"
    tiles = [write_tile(folder, f"t{i}_2024011{i}.tif", 6.0 + i, 46.0) for i in range(3)]
    root = str(tmp_path / "catalog")
    res = producer.register(tiles, catalog=root, collection="c", pgstac=pgstac_dsn)
    assert all(r.action == "created" for r in res), [r.error for r in res]
    with psycopg.connect(pgstac_dsn, autocommit=True) as conn:
        conn.execute("SET search_path TO pgstac, public")
        conn.execute("DELETE FROM items WHERE id = %s", (res[1].id,))
    report = producer.reconcile(root, fix=fix, pgstac=pgstac_dsn)
    assert report.found.get("pgstac-missing") == 1
    if fix:
        assert report.fixed.get("pgstac-missing") == 1
        assert producer.reconcile(root, pgstac=pgstac_dsn).found.get("pgstac-missing") is None
    else:
        (problem,) = [p for p in report.problems if p.kind == "pgstac-missing"]
        assert problem.key.endswith(f"{res[1].id}.json") and res[1].id in problem.message
        # the database in words, as the other pgSTAC messages name it (was: "is not in
        # PgstacSink(127.0.0.1:5432/db)", the sink's repr)
        database = pgstac_dsn.rsplit("@", 1)[1]
        assert f"is not in the pgSTAC database {database}" in problem.message, problem.message
        assert "PgstacSink" not in problem.message


def test_each_item_is_formatted_once_per_comparison(pgstac_dsn, monkeypatch):
    """pgSTAC's formatting (geometry to WKB, dehydration) is the costly part of
    a comparison; it ran once per column, 7 times per item (a 10,000-item diff
    went from 1.0 s to 3.6 s)."""
    sink = PgstacSink(pgstac_dsn)
    n = 50
    sink.sync(collection(), [item(i) for i in range(n)])
    formatted: list[str] = []
    from pypgstac.load import Loader

    real = Loader.format_item

    def counting(self: Any, item: Any, *args: Any, **kwargs: Any) -> Any:
        formatted.append(item["id"])
        return real(self, item, *args, **kwargs)

    monkeypatch.setattr(Loader, "format_item", counting)
    assert sink.diff(collection(), items(n)).in_sync
    assert sorted(formatted) == sorted(item(i)["id"] for i in range(n))

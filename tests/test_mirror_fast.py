"""The mirror's cheap write path (issue 12): writers add NDJSON fragments
without importing Arrow, readers (read_mirror, diff, search, compaction)
merge them with the parquet base and with parquet fragments written by
earlier versions."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

import producer
from producer import mirror
from producer.changes import Change, ChangeKind
from producer.mirror import MirrorSink, diff, read_mirror, rebuild
from producer.query import search
from producer.store import CountingStore, open_store
from producer.store.base import Store
from tests.crashes import write_tile
from tests.trees import assert_stac_valid_tree

REPO = Path(__file__).resolve().parents[1]
BASE = "c/items.parquet"


@pytest.fixture
def tiles(tmp_path: Path) -> list[Path]:
    folder = tmp_path / "tiles"
    return [
        write_tile(folder, "a_20240110.tif", 6.0, 46.0),
        write_tile(folder, "b_20240315.tif", 7.0, 46.5),
        write_tile(folder, "c_20240520.tif", 8.0, 47.0),
    ]


def _items(store: Store) -> dict[str, tuple[str, dict[str, Any]]]:
    return {
        doc["id"]: (key, doc)
        for key, doc in mirror.walk_collection(store, "c")
        if doc.get("type") == "Feature"
    }


def _change(kind: ChangeKind, key: str, item: dict[str, Any], *, updated: str | None = None) -> Change:
    item = json.loads(json.dumps(item))
    if updated is not None:
        item["properties"]["updated"] = updated
    return Change(kind, "c", item["id"], key, item)


def _search_ids(catalog: Path | Store) -> list[str]:
    return sorted(
        f["id"] for f in search(catalog if isinstance(catalog, Store) else str(catalog))["features"]
    )


_PROBE = """
import json, sys
import producer
producer.register([sys.argv[2]], catalog=sys.argv[1], collection="c")
first = sorted(m for m in ("pyarrow", "pandas", "stac_geoparquet", "shapely") if m in sys.modules)
producer.register([sys.argv[3]], catalog=sys.argv[1], collection="c")
second = sorted(m for m in ("pyarrow", "pandas", "stac_geoparquet", "shapely") if m in sys.modules)
print(json.dumps([first, second]))
"""


def test_register_of_a_first_and_a_second_item_imports_no_arrow(tiles: list[Path], tmp_path: Path) -> None:
    """A register (a fresh process, a fresh local catalog) writes the mirror
    without pyarrow, pandas, stac-geoparquet or shapely, for the first item
    of a collection (base file created) and for the next."""
    catalog = tmp_path / "cat"
    done = subprocess.run(
        [sys.executable, "-c", _PROBE, str(catalog), str(tiles[0]), str(tiles[1])],
        capture_output=True,
        text=True,
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    first, second = json.loads(done.stdout.strip().splitlines()[-1])
    assert first == [] and second == [], (first, second)
    # ... and what it wrote is a mirror: the (empty) base and two NDJSON fragments
    store = open_store(str(catalog))
    assert store.exists(BASE) and pq.read_table(catalog / BASE).num_rows == 0
    fragments = mirror.list_fragments(store, BASE)
    assert len(fragments) == 2 and all(k.endswith(".ndjson") for k in fragments)
    assert _search_ids(catalog) == ["a_20240110", "b_20240315"]
    assert_stac_valid_tree(catalog)


def test_ndjson_fragments_are_read_by_search_read_mirror_and_diff(tiles: list[Path], tmp_path: Path) -> None:
    catalog = tmp_path / "cat"
    producer.register(tiles, catalog=str(catalog), collection="c")
    store = open_store(str(catalog))
    (fragment,) = mirror.list_fragments(store, BASE)
    lines = (catalog / fragment).read_bytes().splitlines()
    header = json.loads(lines[0])
    assert [i for i, _ in header["rows"]] == [json.loads(line)["id"] for line in lines[1:]]
    rows, _ = read_mirror(store, BASE)
    assert sorted(rows) == sorted(_items(store))
    assert diff(store, "c").clean
    found = search(str(catalog), bbox=[7.0, 46.3, 7.1, 46.5])["features"]
    assert [f["id"] for f in found] == ["b_20240315"]
    assert found[0]["assets"]["data"]["href"] == str(tiles[1])  # absolute, as committed
    assert search(str(catalog), datetime="2024-05-01/2024-05-31")["numberMatched"] == 1
    assert_stac_valid_tree(catalog)


def test_old_parquet_fragment_still_reads_and_folds_beside_ndjson_ones(
    tiles: list[Path], tmp_path: Path
) -> None:
    """A catalog written by the previous version holds parquet fragments: they
    resolve by stamp with the base and the NDJSON fragments, and fold."""
    catalog = tmp_path / "cat"
    producer.register(tiles, catalog=str(catalog), collection="c")
    store = open_store(str(catalog))
    rebuild(store, "c", only_stale=False)  # base holds the three, no fragment
    items = _items(store)
    key_a, item_a = items["a_20240110"]
    key_b, item_b = items["b_20240315"]
    old = _change(ChangeKind.UPDATED, key_a, item_a, updated="2099-01-01T00:00:00Z")
    old.item["properties"]["title"] = "written the old way"
    frag_key = f"{mirror.fragments_prefix(BASE)}/20990101T000000000000Z-000000000000.parquet"
    store.put(
        frag_key, mirror.encode_parquet_fragment({old.item_id: old.item}, {}, frag_key), create_only=True
    )
    gone = _change(ChangeKind.REMOVED, key_b, item_b, updated="2099-01-02T00:00:00Z")
    MirrorSink(store, compact_after=-1).apply({}, [gone])
    kinds = sorted(k.rsplit(".", 1)[-1] for k in mirror.list_fragments(store, BASE))
    assert kinds == ["ndjson", "parquet"]

    rows, _ = read_mirror(store, BASE)
    assert sorted(rows) == ["a_20240110", "c_20240520"]
    assert rows["a_20240110"]["properties"]["title"] == "written the old way"
    assert mirror.visible_stamps(store, BASE) == {i: mirror.stamp_of(it) for i, it in rows.items()}
    found = {f["id"]: f for f in search(str(catalog))["features"]}
    assert sorted(found) == ["a_20240110", "c_20240520"]
    assert found["a_20240110"]["properties"]["title"] == "written the old way"
    assert mirror.compact(store, BASE)
    assert mirror.list_fragments(store, BASE) == []
    assert read_mirror(store, BASE)[0] == rows


def test_compaction_folds_ndjson_fragments_into_the_parquet_base(tiles: list[Path], tmp_path: Path) -> None:
    catalog = tmp_path / "cat"
    producer.register(tiles, catalog=str(catalog), collection="c")
    store = open_store(str(catalog))
    rebuild(store, "c", only_stale=False)
    sink = MirrorSink(store, compact_after=2, check_every=1)
    for n, (item_id, (key, item)) in enumerate(sorted(_items(store).items()), start=1):
        change = _change(ChangeKind.UPDATED, key, item, updated=f"2099-01-0{n}T00:00:00Z")
        change.item["properties"]["title"] = f"edit {n}"
        sink.apply({}, [change])
        assert len(mirror.list_fragments(store, BASE)) == (0 if n == 3 else n), item_id
    base = pq.read_table(catalog / BASE)
    assert sorted(base.column("id").to_pylist()) == sorted(_items(store))
    rows, _ = read_mirror(store, BASE)
    assert sorted(it["properties"]["title"] for it in rows.values()) == ["edit 1", "edit 2", "edit 3"]


def test_removal_tombstone_in_an_ndjson_fragment_hides_the_item(tiles: list[Path], tmp_path: Path) -> None:
    catalog = tmp_path / "cat"
    producer.register(tiles, catalog=str(catalog), collection="c")
    store = open_store(str(catalog))
    rebuild(store, "c", only_stale=False)  # the item is in the parquet base
    key, item = _items(store)["b_20240315"]
    gone = _change(ChangeKind.REMOVED, key, item, updated="2099-01-01T00:00:00Z")
    MirrorSink(store, compact_after=-1).apply({}, [gone])
    (fragment,) = mirror.list_fragments(store, BASE)
    assert fragment.endswith(".ndjson")
    assert json.loads(store.get(fragment)[0]) == {
        "stac_producer:fragment": 1,
        "rows": [],
        "removed": {"b_20240315": mirror.stamp_of(gone.item)},
    }
    assert sorted(read_mirror(store, BASE)[0]) == ["a_20240110", "c_20240520"]
    assert _search_ids(catalog) == ["a_20240110", "c_20240520"]
    assert "b_20240315" not in mirror.visible_stamps(store, BASE)
    assert mirror.compact(store, BASE)
    assert sorted(pq.read_table(catalog / BASE).column("id").to_pylist()) == ["a_20240110", "c_20240520"]


def test_a_write_costs_one_put_and_one_head_of_the_base_per_partition_and_sink(
    tiles: list[Path], tmp_path: Path
) -> None:
    """Requests of a mirror write: one PUT each (no LIST when the 1-in-k check
    is not drawn); a sink checks a partition's base once (HEAD), for updates
    too (a rerun after a crash between the commit and the mirror write may
    find its items updated: see test_review_issue12), then never again."""
    catalog = tmp_path / "cat"
    producer.register(tiles, catalog=str(catalog), collection="c")
    counting = CountingStore(open_store(str(catalog)))
    items = sorted(_items(counting.inner).items())
    sink = MirrorSink(counting, check_every=10**9)  # the draw never says "look"
    for n, (_, (key, item)) in enumerate(items, start=1):
        sink.apply({}, [_change(ChangeKind.UPDATED, key, item, updated=f"2099-01-0{n}T00:00:00Z")])
    assert counting.totals() == {"get": 0, "put": 3, "delete": 0, "list": 0, "exists": 1}
    counting.reset()
    for n, (_, (key, item)) in enumerate(items, start=1):
        sink.apply({}, [_change(ChangeKind.CREATED, key, item, updated=f"2099-02-0{n}T00:00:00Z")])
    assert sum(counting.exists_calls.values()) == 0 and sum(counting.puts.values()) == 3
    fresh = MirrorSink(counting, check_every=10**9)  # another sink (another register) checks once
    counting.reset()
    _, (key, item) = items[0]
    fresh.apply({}, [_change(ChangeKind.CREATED, key, item, updated="2099-03-01T00:00:00Z")])
    assert sum(counting.exists_calls.values()) == 1


def test_ndjson_fragments_on_s3_are_searched_before_any_compaction(tiles: list[Path], s3_server: Any) -> None:
    url = f"s3://{s3_server.new_bucket()}/stac"
    options = s3_server.storage_options
    producer.register([str(p) for p in tiles], catalog=url, collection="c", storage_options=options)
    store = open_store(url, options)
    fragments = mirror.list_fragments(store, BASE)
    assert len(fragments) == 1 and fragments[0].endswith(".ndjson")
    assert store.exists(BASE)  # the collection's mirror asset resolves
    found = search(url, bbox=[7.0, 46.3, 7.1, 46.5], storage_options=options)["features"]
    assert [f["id"] for f in found] == ["b_20240315"]
    assert found[0]["links"][-1]["href"] == f"{url}/c/b_20240315/b_20240315.json"
    assert diff(store, "c").clean


def test_fragment_header_is_jsons_text():
    # the header line (ids, stamps, tombstones) is orjson's text only where
    # it is json's: ids with non-ASCII, quotes, control characters, DEL
    ids = ["a", "é-1", 'q"uote', "back\\slash", "tab\tx", "del\x7f", "emoji\U0001f600", "\u2028"]
    item = {"type": "Feature", "id": "x", "properties": {"updated": "2024-01-01T00:00:00Z"}}
    for n in range(len(ids)):
        upserts = {i: {**item, "id": i} for i in ids[: n + 1]}
        removed = {f"gone {i}": -1 for i in ids[n:]}
        header = mirror.encode_fragment(upserts, removed, "x").decode().split("\n")[0]
        expected = {
            "stac_producer:fragment": 1,
            "rows": [[i, mirror.stamp_of(it)] for i, it in upserts.items()],
            "removed": removed,
        }
        assert header == json.dumps(expected, separators=(",", ":"))

"""Bounded partition catalogs (issue 12, point 7): a partition catalog that
links ``max_links`` items is marked split and new items of its period go to
a finer period below it; items already linked stay where they are. Crash
safety, the race for the last slot, reconcile, and the warning of crowded
flat collections.
"""

from __future__ import annotations

import json
import logging
import threading
from pathlib import Path

import pytest
from click.testing import CliRunner

import producer
from producer import mirror, placement
from producer.audit import audit
from producer.catalog.layout import SPLIT_FIELD, item_link_count
from producer.cli import main as cli_main
from producer.store.base import Store
from producer.store.local import LocalStore
from producer.validate import default_validator
from tests.crashes import copy_state, crash_runs, write_tile
from tests.pausing import PauseAfterGet
from tests.trees import assert_stac_valid_tree, but_emptied

MONTH = "c/2024/03/catalog.json"


def tiles(folder: Path, days: list[int], stem: str = "t") -> list[Path]:
    """One tiny GeoTIFF per entry of ``days``, dated 2024-03-<day>."""
    return [
        write_tile(folder, f"{stem}{i}_202403{d:02d}.tif", 10 + i * 0.1, 50.0) for i, d in enumerate(days)
    ]


def register(store: Store | str, path: Path, **kw) -> producer.RegisterResult:
    (res,) = producer.register([path], catalog=store, collection="c", **kw)
    assert res.ok, res.error
    return res


def linked(store: Store) -> dict[str, str]:
    """key -> id of every linked item; asserts the catalog has no problem at all."""
    report = audit(store, default_validator())
    assert but_emptied(report.problems) == [], [str(p) for p in report.problems]
    assert not report.orphans
    return {key: info.id for key, info in report.items.items()}


def doc(store: Store, key: str) -> dict:
    return json.loads(store.get(key)[0])


def fill(store: Store, paths: list[Path], max_links: int = 2) -> list[str]:
    return [register(store, p, partition="year/month", max_links=max_links).href or "" for p in paths]


def test_full_month_partition_sends_new_items_to_day_partitions(tmp_path):
    """Before: a month catalog linked every item of its month (~8,000 at 1M items)."""
    store = LocalStore(str(tmp_path / "cat"))
    fill(store, tiles(tmp_path / "t", [1, 2, 3, 3, 1]))
    month = doc(store, MONTH)
    assert month[SPLIT_FIELD] == "day"
    assert item_link_count(month) == 2
    assert sorted(linked(store)) == [
        "c/2024/03/01/t4_20240301/t4_20240301.json",
        "c/2024/03/03/t2_20240303/t2_20240303.json",
        "c/2024/03/03/t3_20240303/t3_20240303.json",
        "c/2024/03/t0_20240301/t0_20240301.json",
        "c/2024/03/t1_20240302/t1_20240302.json",
    ]
    # the limit is recorded: a writer that does not pass it follows the collection
    assert doc(store, "c/collection.json")["stac_producer:layout"] == {
        "partition": "year/month",
        "max_links": 2,
    }
    assert doc(store, "c/2024/03/03/catalog.json")[SPLIT_FIELD] == "hour"
    # the stac-geoparquet mirror: one file per month, split or not (the
    # collection's assets do not grow with the splits), and in step
    mirrors = [k for k in doc(store, "c/collection.json")["assets"] if k.startswith("mirror")]
    assert mirrors == ["mirror-2024-03"]
    assert mirror.diff(store, "c").clean
    assert_stac_valid_tree(store.root)


def test_upsert_of_an_item_linked_before_its_partition_was_split_stays_where_it_is(tmp_path):
    """Before the id index was consulted, an upsert would have placed the
    item below the full partition and moved it there."""
    store = LocalStore(str(tmp_path / "cat"))
    paths = tiles(tmp_path / "t", [1, 2, 3])
    fill(store, paths)
    first = "c/2024/03/t0_20240301/t0_20240301.json"
    res = register(store, paths[0])
    assert (res.action, res.href) == ("unchanged", f"{store.url}/{first}")
    # same product, new datetime in the same month: rewritten in place
    res = register(store, paths[0], datetime="2024-03-20T00:00:00Z")
    assert (res.action, res.href) == ("updated", f"{store.url}/{first}")
    report = audit(store, default_validator())
    assert not report.errors, [str(p) for p in report.errors]
    assert sorted(report.items) == [
        "c/2024/03/03/t2_20240303/t2_20240303.json",
        first,
        "c/2024/03/t1_20240302/t1_20240302.json",
    ]
    assert json.loads(store.get("c/.ids/t0_20240301")[0])["item"] == first
    assert_stac_valid_tree(store.root)


def test_remove_and_move_find_items_below_a_split_partition(tmp_path):
    store = LocalStore(str(tmp_path / "cat"))
    paths = tiles(tmp_path / "t", [1, 2, 3, 4])
    fill(store, paths)
    assert producer.remove("t2_20240303", catalog=store, collection="c").action == "removed"
    # a datetime in another month moves an item out of a day partition
    res = register(store, paths[3], datetime="2024-05-01T00:00:00Z")
    assert res.action == "updated"
    assert sorted(linked(store)) == [
        "c/2024/03/t0_20240301/t0_20240301.json",
        "c/2024/03/t1_20240302/t1_20240302.json",
        "c/2024/05/t3_20240304/t3_20240304.json",
    ]
    assert_stac_valid_tree(store.root)


def test_items_sharing_one_datetime_split_into_hash_shards_below_the_hour(tmp_path):
    """A period cannot be split by time when every item has the same time."""
    store = LocalStore(str(tmp_path / "cat"))
    keys = fill(store, tiles(tmp_path / "t", [5] * 6), max_links=1)
    assert len(set(keys)) == 6
    items = linked(store)
    assert len(items) == 6
    assert any("/2024/03/05/00/x" in key for key in items), sorted(items)
    for path in store.root.rglob("catalog.json"):
        assert item_link_count(json.loads(path.read_text())) <= 1, path
    assert_stac_valid_tree(store.root)


def test_registration_that_fills_the_last_slot_killed_after_any_write_is_completed(tmp_path):
    """Crash after each write of the registration that fills the month (and
    marks it) and of the next one (which creates the day partition): a re-run,
    or reconcile --fix, ends with every item linked once, in bounded catalogs."""
    template = LocalStore(str(tmp_path / "template"))
    paths = tiles(tmp_path / "t", [1, 2, 2])
    fill(template, paths[:1])
    points = 0

    def both(store: Store) -> None:
        fill(store, paths[1:])

    for n, real, writes in crash_runs(lambda: copy_state(template), both):
        points += 1
        snapshot = copy_state(real)
        both(real)
        assert len(linked(real)) == 3, (n, writes)
        assert item_link_count(doc(real, MONTH)) == 2, (n, writes)
        producer.reconcile(snapshot, fix=True)
        both(snapshot)
        assert len(linked(snapshot)) == 3, (n, writes)
    assert points >= 6
    assert_stac_valid_tree(snapshot.root)  # type: ignore[attr-defined]


def test_two_writers_filling_the_last_slot_both_link_their_item_once(tmp_path):
    """Writer A reads the month (one slot left) and is held; writer B fills
    the slot (and marks the month); A then links its item where it placed it:
    nothing lost, nothing doubled, the bound exceeded by A's batch only; the
    next writer goes below the month."""
    store = LocalStore(str(tmp_path / "cat"))
    a, b, c, d = tiles(tmp_path / "t", [1, 2, 3, 4])
    fill(store, [a])
    paused = PauseAfterGet(store, MONTH)
    out: dict[str, object] = {}
    writer = threading.Thread(target=lambda: out.setdefault("a", register(paused, b)))
    writer.start()
    assert paused.reached.wait(30)
    register(store, c)
    assert doc(store, MONTH)[SPLIT_FIELD] == "day"
    paused.resume.set()
    writer.join(30)
    assert "a" in out
    assert item_link_count(doc(store, MONTH)) == 3
    register(store, d)
    assert sorted(linked(store)) == [
        "c/2024/03/04/t3_20240304/t3_20240304.json",
        "c/2024/03/t0_20240301/t0_20240301.json",
        "c/2024/03/t1_20240302/t1_20240302.json",
        "c/2024/03/t2_20240303/t2_20240303.json",
    ]
    assert_stac_valid_tree(store.root)


def test_reconcile_links_an_orphan_item_below_a_split_partition_into_its_own_partition(tmp_path):
    """A writer killed between the item and its link leaves it an orphan in a
    day partition: reconcile links it there, not into the full month."""
    store = LocalStore(str(tmp_path / "cat"))
    fill(store, tiles(tmp_path / "t", [1, 2, 3]))
    day = "c/2024/03/03/catalog.json"
    unlinked = doc(store, day)
    unlinked["links"] = [link for link in unlinked["links"] if link["rel"] != "item"]
    store.put(day, json.dumps(unlinked).encode())
    report = producer.reconcile(store, fix=True)
    assert report.fixed.get("orphan") == 1
    assert "c/2024/03/03/t2_20240303/t2_20240303.json" in linked(store)
    assert item_link_count(doc(store, day)) == 1
    assert item_link_count(doc(store, MONTH)) == 2
    assert_stac_valid_tree(store.root)


@pytest.fixture
def crowded(monkeypatch):
    """A flat collection counts as crowded from 3 links (10,000 in production)."""
    assert placement.CROWDED_LINKS == 10_000
    monkeypatch.setattr(placement, "CROWDED_LINKS", 2)


def test_flat_collection_past_the_link_limit_warns_once_per_run_how_to_partition(tmp_path, caplog, crowded):
    store = LocalStore(str(tmp_path / "cat"))
    paths = tiles(tmp_path / "t", [1, 2, 3, 4, 5])
    producer.register(paths[:3], catalog=store, collection="c")
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="producer"):
        results = producer.register(paths[3:], catalog=store, collection="c", batch_size=1)
    assert all(r.ok for r in results)
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1, [r.getMessage() for r in warnings]
    assert "links 3 items" in warnings[0].getMessage()
    assert "partition='year/month'" in warnings[0].getMessage()
    assert_stac_valid_tree(store.root)


def test_cli_phrases_the_crowded_collection_warning_as_a_flag(tmp_path, crowded):
    store = LocalStore(str(tmp_path / "cat"))
    paths = tiles(tmp_path / "t", [1, 2, 3, 4])
    producer.register(paths[:3], catalog=store, collection="c")
    res = CliRunner().invoke(
        cli_main, ["register", str(paths[3]), "--catalog", str(tmp_path / "cat"), "--collection", "c"]
    )
    assert res.exit_code == 0, res.output
    err = res.stderr
    assert "--partition year/month" in err, err
    assert "partition='year/month'" not in err


def test_an_item_moved_out_of_a_split_partition_and_back_lands_where_it_was(tmp_path):
    """The split mark stays on a partition emptied by a move. Before: the
    item moved back went one level below it (``.../03/01/``), and one level
    deeper on every further round trip."""
    store = LocalStore(str(tmp_path / "cat"))
    paths = tiles(tmp_path / "t", [1, 1, 1], stem="s")
    keys = fill(store, paths, max_links=1)
    assert keys[-1].endswith("/c/2024/03/01/00/s2_20240301/s2_20240301.json")  # split to the hour
    assert doc(store, "c/2024/03/01/00/catalog.json")[SPLIT_FIELD] == "shard"
    for _round in range(3):
        res = register(store, paths[-1], datetime="2025-01-01T00:00:00Z")
        assert res.href == f"{store.url}/c/2025/01/s2_20240301/s2_20240301.json"
        res = register(store, paths[-1])
        assert (res.action, res.href) == ("updated", keys[-1])
    assert sorted(linked(store)) == sorted(k[len(store.url) + 1 :] for k in keys)
    assert not list((store.root / "c/2024/03/01/00").glob("x*"))  # no shard made for it
    assert_stac_valid_tree(store.root)

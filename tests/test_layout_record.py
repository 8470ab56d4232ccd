"""The collection records its layout (issue 9, point 2): register follows it,
remove finds an item through it in O(1) without listing, an explicit
partition that contradicts it is refused before any write, and an old
collection without the record still works and gets it from reconcile --fix.
"""

from __future__ import annotations

import hashlib
import json
import threading
from pathlib import Path

import pytest

import producer
from producer.catalog.layout import LAYOUT_FIELD, intent_key
from producer.errors import InputError
from producer.store import CountingStore
from producer.store.local import LocalStore
from tests.crashes import write_tile
from tests.trees import but_emptied

#: (name, lon, lat) of 0.2 degree tiles in three months of 2024, overlapping
#: (one cluster); the middle one lies strictly inside the extent of the
#: others, so removing it does not shrink the extent (no walk)
TILES = [
    ("a_20240110", 10.0, 50.0),
    ("b_20240215", 10.1, 50.05),
    ("c_20240320", 10.2, 50.1),
]


@pytest.fixture
def tiles(tmp_path: Path) -> list[Path]:
    return [write_tile(tmp_path / "tiles", f"{name}.tif", lon, lat) for name, lon, lat in TILES]


def _register(store: LocalStore, paths: list[Path], partition: str | None = None) -> list[str]:
    results = producer.register(paths, catalog=store, collection="c", partition=partition)
    assert all(r.ok for r in results), [r.error for r in results]
    return [str(r.href) for r in results]


def _collection(root: Path) -> dict:
    return json.loads((root / "c" / "collection.json").read_text())


def _tree(root: Path) -> dict[str, str]:
    """Relative path -> sha256 of every file under ``root``."""
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def _forget_layout(root: Path) -> None:
    """Make the collection look written before layouts were recorded."""
    path = root / "c" / "collection.json"
    doc = json.loads(path.read_text())
    del doc[LAYOUT_FIELD]
    path.write_text(json.dumps(doc, indent=2))


def test_a_new_collection_records_its_layout(tmp_path: Path, tiles: list[Path]) -> None:
    flat, parted = tmp_path / "flat", tmp_path / "parted"
    _register(LocalStore(str(flat)), tiles[:1])
    _register(LocalStore(str(parted)), tiles[:1], partition="year/month")
    assert _collection(flat)[LAYOUT_FIELD] is None
    assert _collection(parted)[LAYOUT_FIELD] == {"partition": "year/month"}
    assert producer.validate_catalog(str(flat)) == []
    assert producer.validate_catalog(str(parted)) == []


def _catalog_lists(counting: CountingStore) -> list[str]:
    """The prefixes ``counting`` listed, but the mirror's: the mirror sink lists
    the fragment folder of the one partition it wrote (to decide on compaction)."""
    return sorted(p for p in counting.lists if p.rstrip("/").rsplit("/", 1)[-1] != "items-fragments")


def test_remove_in_a_year_month_collection_lists_nothing_and_reads_a_few_documents(
    tmp_path: Path, tiles: list[Path]
) -> None:
    store = LocalStore(str(tmp_path / "cat"))
    _register(store, tiles, partition="year/month")
    counting = CountingStore(store)
    result = producer.remove("b_20240215", catalog=counting, collection="c")
    assert result.action == "removed" and not result.extent_recomputed
    assert _catalog_lists(counting) == []
    # the collection (layout), the id index, the month catalog (checked), then
    # the removal's own reads of the item and the month catalog, and the
    # committed collection handed to the sinks (the mirror is always one):
    # nothing else
    assert set(counting.gets) <= {
        "c/collection.json",
        "c/.ids/b_20240215",
        "c/2024/02/catalog.json",
        "c/2024/02/b_20240215/b_20240215.json",
    }
    assert sum(counting.gets.values()) <= 7
    # an object-removed event for a product never registered (the common
    # case of a Lambda delete): one GET of the collection, one of the index
    counting.reset()
    assert producer.remove("never_registered", catalog=counting, collection="c").action == "absent"
    assert not counting.lists and set(counting.gets) == {"c/collection.json", "c/.ids/never_registered"}


def test_remove_in_a_flat_collection_lists_no_items(tmp_path: Path, tiles: list[Path]) -> None:
    """The item is found by the recorded layout, never by listing the
    collection. The one listing left is the group commit's intents folder
    (pending changes, not items: a remove withdraws the intents naming its
    item, see docs/ARCHITECTURE.md), and only when an item is removed."""
    store = LocalStore(str(tmp_path / "cat"))
    _register(store, tiles)
    counting = CountingStore(store)
    assert producer.remove("b_20240215", catalog=counting, collection="c").action == "removed"
    assert _catalog_lists(counting) == [intent_key("c") + "/"]  # the folder form: one LIST on S3
    assert producer.remove("nothing_here", catalog=counting, collection="c").action == "absent"
    assert _catalog_lists(counting) == [intent_key("c") + "/"]  # an absent item lists nothing
    assert not counting.gets.get("c/.ids/b_20240215")


def test_register_without_partition_follows_the_recorded_layout(tmp_path: Path, tiles: list[Path]) -> None:
    store = LocalStore(str(tmp_path / "cat"))
    _register(store, tiles[:1], partition="year/month")
    (href,) = _register(store, tiles[1:2])  # no partition given
    assert href.endswith("/c/2024/02/b_20240215/b_20240215.json")
    assert producer.validate_catalog(store) == []


@pytest.mark.parametrize(("recorded", "asked"), [("year/month", "year"), (None, "year/month")])
def test_register_with_a_partition_the_collection_does_not_record_is_refused_and_writes_nothing(
    tmp_path: Path, tiles: list[Path], recorded: str | None, asked: str
) -> None:
    """Before: the items went into a second layout beside the first, so one
    collection held both and remove could no longer find them by its record."""
    root = tmp_path / "cat"
    store = LocalStore(str(root))
    _register(store, tiles[:1], partition=recorded)
    before = _tree(root)
    with pytest.raises(InputError) as caught:
        producer.register(tiles[1:], catalog=store, collection="c", partition=asked)
    message = str(caught.value)
    assert "'c'" in message and asked in message
    assert ("partitioned by year/month" if recorded else "flat") in message
    assert "Fix it with partition=" in message  # the way out, as Python spells it
    assert _tree(root) == before


@pytest.mark.parametrize(
    ("written", "asked"),
    [(None, "year/month"), (None, "year"), ("year/month", "year"), ("year", "year/month")],
)
def test_an_old_collection_is_refused_a_partition_its_links_contradict_like_a_recorded_one(
    tmp_path: Path, tiles: list[Path], written: str | None, asked: str
) -> None:
    """A collection written before layouts were recorded took any partition
    as told: the same product got a second item (one id twice, in two
    layouts), reported created. Its links say its layout: the same refusal
    as for a recorded one, nothing written."""
    root = tmp_path / "cat"
    store = LocalStore(str(root))
    _register(store, tiles[:1], partition=written)
    _forget_layout(root)
    before = _tree(root)
    with pytest.raises(InputError) as caught:
        producer.register(tiles, catalog=store, collection="c", partition=asked)
    message = str(caught.value)
    assert "'c'" in message and f"not partitioned by {asked}" in message
    assert (f"is partitioned by {written}" if written else "is flat") in message
    assert "Fix it with partition=" in message  # the way out, as Python spells it
    assert _tree(root) == before


@pytest.mark.parametrize("written", ["year", "year/month"])
def test_an_old_partitioned_collection_is_followed_without_a_partition(
    tmp_path: Path, tiles: list[Path], written: str
) -> None:
    """Without a partition, an old partitioned collection got flat items
    beside its partitions; it is followed as its links say."""
    root = tmp_path / "cat"
    store = LocalStore(str(root))
    _register(store, tiles[:1], partition=written)
    _forget_layout(root)
    (href,) = _register(store, tiles[1:2])  # no partition given
    where = "2024/02" if written == "year/month" else "2024"
    assert href.endswith(f"/c/{where}/b_20240215/b_20240215.json")
    assert producer.validate_catalog(store) == []
    assert producer.reconcile(store).problems == []


def test_an_old_collection_without_the_record_still_works_and_reconcile_fix_records_it(
    tmp_path: Path, tiles: list[Path]
) -> None:
    root = tmp_path / "cat"
    store = LocalStore(str(root))
    _register(store, tiles, partition="year/month")
    _forget_layout(root)
    # still found, by the fallback (flat key, id index, then a listing)
    assert producer.remove("a_20240110", catalog=store, collection="c").action == "removed"
    # an old collection is valid as it is (January, emptied, is left linked)
    assert but_emptied(producer.validate_catalog(store)) == []

    report = producer.reconcile(store, fix=True)
    assert report.fixed.get("unrecorded-layout") == 1 and but_emptied(report.remaining) == []
    assert _collection(root)[LAYOUT_FIELD] == {"partition": "year/month"}
    counting = CountingStore(store)
    assert producer.remove("b_20240215", catalog=counting, collection="c").action == "removed"
    assert _catalog_lists(counting) == []


def test_reconcile_fix_records_the_flat_layout_of_an_old_collection(
    tmp_path: Path, tiles: list[Path]
) -> None:
    root = tmp_path / "cat"
    store = LocalStore(str(root))
    _register(store, tiles[:2])
    _forget_layout(root)
    (href,) = _register(store, tiles[2:])  # as before: flat
    assert href.endswith("/c/c_20240320/c_20240320.json")
    assert LAYOUT_FIELD not in _collection(root)  # register does not add it
    producer.reconcile(store, fix=True)
    assert _collection(root)[LAYOUT_FIELD] is None
    # and a second run has nothing left to record
    assert "unrecorded-layout" not in producer.reconcile(store, fix=True).fixed


def test_a_layout_record_this_tool_did_not_write_is_reported_and_blocks_writes(
    tmp_path: Path, tiles: list[Path]
) -> None:
    root = tmp_path / "cat"
    store = LocalStore(str(root))
    _register(store, tiles[:1])
    path = root / "c" / "collection.json"
    doc = json.loads(path.read_text())
    doc[LAYOUT_FIELD] = {"partition": "decade"}
    path.write_text(json.dumps(doc, indent=2))
    before = _tree(root)
    problems = producer.validate_catalog(store)
    assert [p.kind for p in problems] == ["malformed"]
    assert LAYOUT_FIELD in problems[0].message
    (result,) = producer.register(tiles[1:2], catalog=store, collection="c")
    assert not result.ok and LAYOUT_FIELD in str(result.error)
    assert _tree(root) == before


def test_reconcile_registering_with_a_contradicting_partition_is_refused_before_any_repair(
    tmp_path: Path, tiles: list[Path]
) -> None:
    """The check comes before the first repair write, not halfway through."""
    root = tmp_path / "cat"
    store = LocalStore(str(root))
    _register(store, tiles[:1])  # flat
    # something to repair: the collection no longer links its item
    path = root / "c" / "collection.json"
    doc = json.loads(path.read_text())
    doc["links"] = [link for link in doc["links"] if link["rel"] != "item"]
    path.write_text(json.dumps(doc, indent=2))
    before = _tree(root)
    with pytest.raises(InputError, match="Fix it with partition=None"):
        producer.reconcile(
            store,
            data=str(tiles[0].parent),
            fix=True,
            collection="c",
            register_options={"partition": "year/month"},
        )
    assert _tree(root) == before


class _PauseOnCollectionRead:
    """The catalog store of a register that is held after its ``nth`` read
    of the collection document (found or not), until ``resume`` is set."""

    def __init__(self, inner: LocalStore, nth: int) -> None:
        self.inner, self.nth, self.seen = inner, nth, 0
        self.url, self.concurrent_safe = inner.url, inner.concurrent_safe
        self.reached, self.resume = threading.Event(), threading.Event()

    def __getattr__(self, name: str) -> object:
        return getattr(self.inner, name)

    def get(self, key: str) -> tuple[bytes, str]:
        try:
            return self.inner.get(key)
        finally:
            if key == "c/collection.json":
                self.seen += 1
                if self.seen == self.nth:
                    self.reached.set()
                    assert self.resume.wait(30), "the test never resumed the paused register"


def test_a_register_racing_the_creation_of_the_collection_in_another_layout_links_nothing(
    tmp_path: Path, tiles: list[Path]
) -> None:
    """Register A (no partition: flat for a new collection) reads the absent
    collection twice (layout, then the batch's preflight) and is held; register
    B creates the collection partitioned by year/month; A goes on. A must not
    link its flat item into the year/month collection (remove could never find
    it there): its product fails with the reason, and the catalog stays valid
    with only B's items linked."""
    store = LocalStore(str(tmp_path / "cat"))
    paused = _PauseOnCollectionRead(store, nth=2)
    out: dict[str, list] = {}
    racer = threading.Thread(
        target=lambda: out.setdefault("a", producer.register([tiles[0]], catalog=paused, collection="c"))
    )
    racer.start()
    assert paused.reached.wait(30)
    _register(store, tiles[1:], partition="year/month")
    paused.resume.set()
    racer.join(30)
    (a,) = out["a"]
    assert not a.ok and "partitioned by year/month" in str(a.error), a.error
    coll = _collection(tmp_path / "cat")
    assert coll[LAYOUT_FIELD] == {"partition": "year/month"}
    assert not any(link["href"].startswith("./a_") for link in coll["links"])
    assert producer.register([tiles[0]], catalog=store, collection="c")[0].ok  # a rerun follows the layout
    assert producer.remove("a_20240110", catalog=store, collection="c").action == "removed"


def test_reconcile_fix_records_the_year_layout_of_an_old_collection_whose_year_is_split(
    tmp_path: Path, tiles: list[Path]
) -> None:
    """Items in ``<YYYY>/`` and, below the split year, in ``<YYYY>/<MM>/``
    follow one layout: ``year``. Before: their keys' depths read as two
    layouts, and the collection was left unrecorded."""
    root = tmp_path / "cat"
    store = LocalStore(str(root))
    producer.register(tiles[:1], catalog=store, collection="c", partition="year", max_links=1)
    (href,) = _register(store, tiles[1:2])
    assert href.endswith("/c/2024/02/b_20240215/b_20240215.json")  # below the split year
    _forget_layout(root)
    report = producer.reconcile(store, fix=True)
    assert report.fixed.get("unrecorded-layout") == 1 and report.remaining == []
    assert _collection(root)[LAYOUT_FIELD] == {"partition": "year"}


@pytest.mark.parametrize(
    ("recorded", "python", "flag"),
    [
        (None, "partition=None", "--partition left out"),
        ("year/month", "partition='year/month'", "--partition year/month"),
    ],
)
def test_the_way_out_of_a_contradicted_partition_is_spelled_for_each_caller(
    tmp_path: Path, tiles: list[Path], recorded: str | None, python: str, flag: str
) -> None:
    """ "register without a partition" reached CLI users as it was, naming no
    flag: the way out is a hint now, ``partition=...`` for Python and Prefect,
    the flag for the CLI, the variable for the event handler."""
    from click.testing import CliRunner

    from producer.cli import main
    from producer.options import env_spelling

    root = tmp_path / "cat"
    store = LocalStore(str(root))
    _register(store, tiles[:1], partition=recorded)
    with pytest.raises(InputError) as caught:
        producer.register(tiles[1:], catalog=store, collection="c", partition="year")
    message = str(caught.value)
    assert f"Fix it with {python} (follow the collection's layout)" in message, message
    assert "without a partition" not in message
    assert caught.value.phrased(env_spelling).count("STAC_PARTITION") == 1

    before = _tree(root)
    out = CliRunner().invoke(
        main, ["register", str(tiles[1]), "-c", str(root), "--collection", "c", "--partition", "year"]
    )
    assert out.exit_code == 2, out.output
    said = " ".join(out.output.split())
    assert f"Fix it with {flag} (follow the collection's layout)" in said, said
    assert "partition=" not in said and "without a partition" not in said
    assert _tree(root) == before

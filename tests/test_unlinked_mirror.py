"""A partition holding linked items whose mirror file the collection does not
link: ``search`` reads only the linked files, so it missed those items.

``register`` of a new month under an existing year writes the item, the
month and year catalogs, the month's empty base, then the collection's
compare-and-swap that adds the month's mirror asset. Killed between the year
catalog and that compare-and-swap (or ``reconcile --fix`` killed at the same
point while linking the orphan month), the item was linked but no asset
linked the month's file. Before: ``validate`` found nothing,
``mirror.diff`` compared only the linked files and called the mirror clean,
``reconcile --fix`` changed nothing (twice), and ``search`` never returned the
item. Now ``validate`` reports ``unlinked-mirror``, ``mirror.diff`` reports
the file (``unlinked_files``), and ``reconcile --fix`` links it (the base
first, then the asset by compare-and-swap) and rebuilds it.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner

import producer
from producer import mirror
from producer.audit import REPAIR, audit
from producer.catalog.mirrorlinks import linked_mirror_keys
from producer.cli import main
from producer.store import open_store
from producer.store.base import Store
from producer.store.local import LocalStore
from producer.validate import default_validator
from tests.crashes import CrashingStore, SimulatedKill, copy_state, crash_runs, write_tile

A_ID, B_ID = "a_20240310", "b_20240115"
MONTH_BASE = "c/2024/03/items.parquet"


@pytest.fixture(scope="module")
def products(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("unlinked-mirror-products")
    return {
        A_ID: write_tile(folder, f"{A_ID}.tif", 12.0, 52.0),
        B_ID: write_tile(folder, f"{B_ID}.tif", 10.0, 50.0),
    }


def _register(store: Store, path: Path) -> None:
    (result,) = producer.register([path], catalog=store, collection="c", partition="year/month")
    assert result.ok, result.error


def _reconcile_fix(store: Store) -> None:
    producer.reconcile(store, fix=True)


def _linked(store: Store) -> list[str]:
    return sorted(i.id for i in audit(store, default_validator()).items.values())


def _searched(store: Store) -> list[str]:
    return sorted(f["id"] for f in producer.search(store, collections="c")["features"])


def _assert_repaired(store: Store, where: str) -> None:
    """After one reconcile --fix: valid, mirror clean, and search finds every linked item."""
    _reconcile_fix(store)
    assert audit(store, default_validator()).problems == [], where
    assert mirror.diff(store, "c").clean, where
    linked = _linked(store)
    assert _searched(store) == linked, where
    coll = json.loads(store.get("c/collection.json")[0])
    for key in linked_mirror_keys("c/collection.json", coll):
        assert store.exists(key), f"{where}: dangling mirror asset {key}"


def _killed_after(store: Store, verb: Callable[[Store], object], written: str) -> Store:
    """``store`` after ``verb`` was killed right after it wrote ``written``."""
    probe = CrashingStore(copy_state(store))
    verb(probe)
    n = probe.writes.index(written) + 1
    with pytest.raises(SimulatedKill):
        verb(CrashingStore(store, crash_after=n))
    return store


def _template(make_empty: Callable[[], Store], products: dict[str, Path]) -> Store:
    template = make_empty()
    _register(template, products[B_ID])  # 2024/01: the year exists, its month linked
    return template


def _register_crashes_then_reconcile(make_empty: Callable[[], Store], products: dict[str, Path]) -> int:
    template = _template(make_empty, products)
    points = 0
    for n, real, writes in crash_runs(lambda: copy_state(template), lambda s: _register(s, products[A_ID])):
        points += 1
        _assert_repaired(real, f"register killed after write {n} {writes}")
    return points


def test_a_register_killed_after_any_write_then_reconcile_fix_leaves_every_item_searchable_local(
    tmp_path: Path, products: dict[str, Path]
) -> None:
    def make_empty() -> Store:
        return LocalStore(str(tmp_path / f"cat-{uuid.uuid4().hex[:8]}"))

    assert _register_crashes_then_reconcile(make_empty, products) >= 5


def test_a_register_killed_after_any_write_then_reconcile_fix_leaves_every_item_searchable_s3(
    s3_server, products: dict[str, Path]
) -> None:
    def make_empty() -> Store:
        return open_store(s3_server.url(f"unlinked-{uuid.uuid4().hex[:8]}"), s3_server.storage_options)

    assert _register_crashes_then_reconcile(make_empty, products) >= 5


def test_a_reconcile_fix_killed_after_any_write_then_another_leaves_every_item_searchable(
    tmp_path: Path, products: dict[str, Path]
) -> None:
    """The register killed after its year write leaves the new month's
    catalog linked; a register killed after the month catalog leaves it an
    orphan, which reconcile --fix links (year catalog, then collection):
    killed there, it leaves the same unlinked base."""
    template = _template(lambda: LocalStore(str(tmp_path / "template")), products)
    for after in ("c/2024/catalog.json", "c/2024/03/catalog.json"):
        state = _killed_after(copy_state(template), lambda s: _register(s, products[A_ID]), after)
        points = 0
        for n, real, writes in crash_runs(lambda state=state: copy_state(state), _reconcile_fix):
            points += 1
            _assert_repaired(real, f"register killed after {after}, reconcile after write {n} {writes}")
        assert points >= 2


@pytest.fixture
def unlinked(tmp_path: Path, products: dict[str, Path]) -> Store:
    """A catalog whose new month 2024/03 holds A_ID, with no mirror asset (nor base)."""
    template = _template(lambda: LocalStore(str(tmp_path / "cat")), products)
    store = _killed_after(template, lambda s: _register(s, products[A_ID]), "c/2024/catalog.json")
    assert _linked(store) == [A_ID, B_ID]
    assert _searched(store) == [B_ID]  # the defect's symptom
    return store


def test_validate_and_reconcile_without_fix_report_the_unlinked_file_and_write_nothing(
    unlinked: Store,
) -> None:
    assert isinstance(unlinked, LocalStore)
    before = {p: p.read_bytes() for p in unlinked.root.rglob("*") if p.is_file()}
    problems = producer.validate_catalog(unlinked)
    (found,) = [p for p in problems if p.kind == "unlinked-mirror"]
    assert found.key == "c/collection.json"
    assert not found.is_error  # the catalog is right: only search lags
    assert MONTH_BASE in found.message and REPAIR in found.message

    report = producer.reconcile(unlinked)
    assert report.found.get("unlinked-mirror") == 1
    stale = [p for p in report.remaining if p.kind == "mirror-stale"]
    assert stale and "partition files unlinked: " + MONTH_BASE in stale[0].message
    assert {p: p.read_bytes() for p in unlinked.root.rglob("*") if p.is_file()} == before

    out = CliRunner().invoke(main, ["validate", str(unlinked.root)])
    assert (
        "warning c/collection.json: [unlinked-mirror]" in out.output
        and "stac-producer reconcile --fix links them" in out.output
    )
    assert "reconcile(fix=True)" not in out.output


def test_mirror_diff_reports_the_unlinked_file_and_rebuild_links_it(unlinked: Store) -> None:
    found = mirror.diff(unlinked, "c")
    assert not found.clean
    assert found.unlinked_files == [MONTH_BASE]
    mirror.rebuild(unlinked, "c")
    assert mirror.diff(unlinked, "c").clean
    assert _searched(unlinked) == [A_ID, B_ID]


def test_reconcile_fix_links_the_file_once(unlinked: Store) -> None:
    report = producer.reconcile(unlinked, fix=True)
    assert report.fixed.get("unlinked-mirror") == 1
    assert report.remaining == []
    assert _searched(unlinked) == [A_ID, B_ID]
    again = producer.reconcile(unlinked, fix=True)
    assert again.found == {} and again.fixed == {}

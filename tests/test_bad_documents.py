"""Issue 8 point 7: existing documents that parse but are wrong are checked
before anything is written.

For each kind of damage, every verb (register, remove, reconcile --fix,
validate) gives a clear error naming the document and a fix, changes 0 bytes
(the catalog tree is hashed before and after), and the suggested fix, once
applied by hand, really makes the catalog usable and valid again.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

import producer
from producer.catalog import documents as docs
from producer.errors import CatalogError
from tests import rasters

REPO = Path(__file__).resolve().parents[1]


def _tile(folder: Path, name: str, lon: float) -> str:
    return str(rasters.write_tile(folder, f"{name}_20240101.tif", lon, 10.0, size=8, pixel=0.05))


def tree_hash(root: Path) -> dict[str, str]:
    """sha256 of every file and the list of directories under ``root``."""
    out = {}
    for path in sorted(root.rglob("*")):
        rel = str(path.relative_to(root))
        out[rel] = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else "dir"
    return out


def _edit(root: Path, key: str, change: Callable[[dict], None]) -> None:
    path = root / key
    doc = json.loads(path.read_text())
    change(doc)
    path.write_text(json.dumps(doc, indent=2))


def _make_directory(root: Path) -> None:
    (root / "c/collection.json").unlink()
    (root / "c/collection.json").mkdir()


def _unmake_directory(root: Path) -> None:
    (root / "c/collection.json").rmdir()  # the message: move it away, or delete it if empty


PLACEHOLDER = docs.empty_extent()

#: kind → (damage, the fix the error message suggests, the document named)
CASES: dict[str, tuple[Callable[[Path], None], Callable[[Path], None], str]] = {
    "collection-without-stac_version": (
        lambda r: _edit(r, "c/collection.json", lambda d: d.pop("stac_version")),
        lambda r: _edit(r, "c/collection.json", lambda d: d.update(stac_version="1.1.0")),
        "c/collection.json",
    ),
    "collection-without-extent": (
        lambda r: _edit(r, "c/collection.json", lambda d: d.pop("extent")),
        lambda r: _edit(r, "c/collection.json", lambda d: d.update(extent=PLACEHOLDER)),
        "c/collection.json",
    ),
    "extent-with-empty-spatial": (
        lambda r: _edit(r, "c/collection.json", lambda d: d["extent"].update(spatial={})),
        lambda r: _edit(r, "c/collection.json", lambda d: d.update(extent=PLACEHOLDER)),
        "c/collection.json",
    ),
    "extent-bbox-holding-strings": (
        lambda r: _edit(
            r, "c/collection.json", lambda d: d["extent"]["spatial"].update(bbox=[["0", "9.6", "0.4", "10"]])
        ),
        lambda r: _edit(r, "c/collection.json", lambda d: d.update(extent=PLACEHOLDER)),
        "c/collection.json",
    ),
    "collection-whose-id-is-another-collection": (
        lambda r: _edit(r, "c/collection.json", lambda d: d.update(id="other")),
        lambda r: _edit(r, "c/collection.json", lambda d: d.update(id="c")),
        "c/collection.json",
    ),
    "collection-json-is-a-directory": (_make_directory, _unmake_directory, "c/collection.json"),
    "root-without-stac_version": (
        lambda r: _edit(r, "catalog.json", lambda d: d.pop("stac_version")),
        lambda r: _edit(r, "catalog.json", lambda d: d.update(stac_version="1.1.0")),
        "catalog.json",
    ),
}


@pytest.fixture(scope="module")
def products(tmp_path_factory) -> dict[str, str]:
    folder = tmp_path_factory.mktemp("bad-docs-data")
    return {name: _tile(folder, name, lon) for name, lon in (("a", 0.0), ("b", 1.0), ("n", 0.2))}


@pytest.fixture
def damaged(request, products, tmp_path) -> tuple[Path, str, Callable[[Path], None]]:
    """A catalog with items a and b in collection c, then damaged one way."""
    damage, repair, key = CASES[request.param]
    root = tmp_path / "catalog"
    assert all(
        r.ok for r in producer.register([products["a"], products["b"]], catalog=str(root), collection="c")
    )
    damage(root)
    return root, key, repair


@pytest.mark.parametrize("damaged", list(CASES), indirect=True)
def test_bad_existing_document_stops_every_verb_before_any_write(damaged, products):
    root, key, repair = damaged
    before = tree_hash(root)
    named = f"{root}/{key}"
    # a root is only written (so only checked) when a new collection is linked into it
    collection = "d" if key == "catalog.json" else "c"

    started = time.monotonic()
    (res,) = producer.register([products["n"]], catalog=str(root), collection=collection)
    assert time.monotonic() - started < 10  # no minute of compare-and-swap retries
    assert (res.action, res.error_type) == ("error", "input")
    assert named in res.error
    assert "nothing was written" in res.error or "move that directory away" in res.error
    assert tree_hash(root) == before

    if key != "catalog.json":  # remove rewrites the collection, never the root
        with pytest.raises(CatalogError) as info:
            producer.remove("a_20240101", catalog=str(root), collection="c")
        assert named in str(info.value)
        assert tree_hash(root) == before

    with pytest.raises(CatalogError) as info:
        producer.reconcile(str(root), fix=True)
    assert key in str(info.value) and "nothing was repaired" in str(info.value)
    assert tree_hash(root) == before

    problems = producer.validate_catalog(str(root))
    assert any(p.is_error and p.key == key and p.kind == "malformed" for p in problems), problems
    assert tree_hash(root) == before

    # the fix the message suggests works: apply it, and every verb does its job
    repair(root)
    (res,) = producer.register([products["n"]], catalog=str(root), collection=collection)
    assert res.ok, res.error
    producer.reconcile(str(root), fix=True)
    assert [str(p) for p in producer.validate_catalog(str(root))] == []
    assert producer.remove("a_20240101", catalog=str(root), collection="c").action == "removed"
    assert [str(p) for p in producer.validate_catalog(str(root))] == []


def test_item_bbox_holding_strings_is_reported_not_a_crash(products, tmp_path):
    """validate and reconcile used to die with a TypeError comparing str and float."""
    root = tmp_path / "catalog"
    producer.register([products["a"], products["b"]], catalog=str(root), collection="c")
    _edit(root, "c/a_20240101/a_20240101.json", lambda d: d.update(bbox=["0", "9.6", "0.4", "10"]))
    before = tree_hash(root)
    problems = producer.validate_catalog(str(root))
    assert any(p.kind == "schema" and p.key == "c/a_20240101/a_20240101.json" for p in problems)
    report = producer.reconcile(str(root))
    assert any(p.kind == "schema" for p in report.remaining)
    assert tree_hash(root) == before


def test_cli_register_into_a_directory_collection_exits_1_without_traceback(products, tmp_path):
    root = tmp_path / "catalog"
    producer.register([products["a"]], catalog=str(root), collection="c")
    _make_directory(root)
    before = tree_hash(root)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "producer.cli",
            "register",
            products["n"],
            "--catalog",
            str(root),
            "--collection",
            "c",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert proc.returncode == 1, proc.stdout + proc.stderr
    out = proc.stdout + proc.stderr
    assert "Traceback" not in out and "is a directory" in out and "c/collection.json" in out
    assert tree_hash(root) == before

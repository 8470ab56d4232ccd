"""Issue 8 point 8: OS errors in the middle of a batch (disk full, permission
denied) give per-product results, no traceback and no half-written item
folders.

Faults are injected at the operating-system call the local store really
makes (``os.fsync`` failing with ENOSPC, as a full disk does with delayed
allocation; ``os.open`` failing with EACCES), only for one product's item
folder, so the store's own code path runs. Running as root, ``chmod`` would
not stop a write, hence the injection. A wrapper around a real store raising
raw ``OSError`` covers backends whose errors are not translated.
"""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path

import pytest

import producer
from producer.store import open_store
from tests import rasters


def _tile(folder: Path, name: str, lon: float) -> str:
    return str(rasters.write_tile(folder, f"{name}_20240101.tif", lon, 10.0, size=8, pixel=0.05))


@pytest.fixture(scope="module")
def products(tmp_path_factory) -> list[str]:
    folder = tmp_path_factory.mktemp("os-errors-data")
    return [_tile(folder, name, lon) for name, lon in (("p1", 0.0), ("p2", 1.0), ("p3", 2.0))]


def _fd_path(fd: int) -> str:
    try:
        return os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        return ""


@pytest.mark.parametrize("fault", ["disk-full", "permission-denied"])
def test_os_error_mid_batch_fails_only_that_product_and_leaves_no_item_folder(
    fault, products, tmp_path, monkeypatch
):
    root = tmp_path / "catalog"
    producer.register([products[0]], catalog=str(root), collection="c")  # catalog exists
    victim = str(root / "c" / "p2_20240101")
    if fault == "disk-full":
        real_fsync = os.fsync

        def fsync(fd):
            if _fd_path(fd).startswith(victim + "/"):
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            return real_fsync(fd)

        monkeypatch.setattr(os, "fsync", fsync)
        expected = "No space left on device"
    else:
        real_open = os.open

        o_tmpfile = getattr(os, "O_TMPFILE", 0)

        def os_open(path, flags, *args, **kwargs):
            # a file created in the victim's folder: a temp file in it, or
            # an unnamed one (O_TMPFILE opens the folder itself)
            unnamed = o_tmpfile and flags & o_tmpfile == o_tmpfile and str(path) == victim
            if str(path).startswith(victim + "/") or unnamed:
                raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(path))
            return real_open(path, flags, *args, **kwargs)

        monkeypatch.setattr(os, "open", os_open)
        expected = "Permission denied"

    results = producer.register(products, catalog=str(root), collection="c")  # no exception
    monkeypatch.undo()

    assert [r.action for r in results] == ["unchanged", "error", "created"]
    bad = results[1]
    assert bad.error_type == "storage" and expected in bad.error and products[1] in bad.error
    assert "Traceback" not in bad.error
    assert not Path(victim).exists()  # no empty (or half-written) item folder
    assert not list(root.rglob(".stac-producer.tmp.*"))
    assert [str(p) for p in producer.validate_catalog(str(root))] == []
    coll = json.loads((root / "c/collection.json").read_text())
    assert sorted(link["href"] for link in coll["links"] if link["rel"] == "item") == [
        "./p1_20240101/p1_20240101.json",
        "./p3_20240101/p3_20240101.json",
    ]
    # once the fault is gone, registering again completes the batch
    again = producer.register(products, catalog=str(root), collection="c")
    assert [r.action for r in again] == ["unchanged", "created", "unchanged"]


class RawOSErrorOnPut:
    """A real store whose puts of keys containing ``needle`` raise a raw
    (untranslated) OSError, as a backend without error translation would."""

    def __init__(self, inner, needle: str, exc: OSError) -> None:
        self.inner, self.needle, self.exc = inner, needle, exc
        self.url, self.concurrent_safe = inner.url, inner.concurrent_safe

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def put(self, key, data, **kwargs):
        if self.needle in key:
            raise self.exc
        return self.inner.put(key, data, **kwargs)


def test_raw_permission_error_from_a_store_is_a_per_product_result(products, tmp_path):
    root = tmp_path / "catalog"
    store = RawOSErrorOnPut(open_store(str(root)), "p2_", PermissionError(errno.EACCES, "Permission denied"))
    results = producer.register(products, catalog=store, collection="c")
    assert [r.action for r in results] == ["created", "error", "created"]
    assert results[1].error_type == "storage" and "Permission denied" in results[1].error
    assert [str(p) for p in producer.validate_catalog(str(root))] == []


def test_disk_full_on_the_collection_write_reports_every_product_and_reconcile_links_them(products, tmp_path):
    root = tmp_path / "catalog"
    producer.register([products[0]], catalog=str(root), collection="c")
    store = RawOSErrorOnPut(
        open_store(str(root)), "collection.json", OSError(errno.ENOSPC, "No space left on device")
    )
    results = producer.register(products[1:], catalog=store, collection="c")
    assert [r.action for r in results] == ["error", "error"]
    for res in results:
        assert res.error_type == "storage" and "written but not linked" in res.error
        assert "No space left on device" in res.error
    # the catalog is valid but for the two orphans, which one reconcile --fix links
    problems = producer.validate_catalog(str(root))
    assert sorted(p.kind for p in problems) == ["orphan", "orphan"]
    report = producer.reconcile(str(root), fix=True)
    assert report.remaining == []


def test_raw_os_error_on_the_first_write_of_a_new_catalog_is_a_result_for_every_product(products, tmp_path):
    """The root is written first into a new catalog: a raw OSError there (read-
    only mount, disk full) fails every product of the batch with a storage
    result, no traceback, and nothing is left in storage."""
    root = tmp_path / "catalog"
    store = RawOSErrorOnPut(
        open_store(str(root)), "catalog.json", OSError(errno.EROFS, "Read-only file system")
    )
    results = producer.register(products, catalog=store, collection="c")
    assert [r.action for r in results] == ["error", "error", "error"]
    for res in results:
        assert res.error_type == "storage" and "Read-only file system" in res.error
    assert not root.exists() or not any(
        p.is_file() for p in root.rglob("*") if p.name != ".stac-producer.lock"
    )


@pytest.mark.parametrize("under", ["afile/cat", "afile/x/cat", "afile"])
def test_a_catalog_path_under_a_file_is_an_input_error_not_a_storage_error(products, tmp_path, under):
    """A typo that puts the catalog under (or at) a regular file can never be
    written: it was a per-product storage error ("Not a directory", "the run
    can be retried"), retried by the Prefect task for ~44 s and exit 1 in
    the CLI. Now an InputError naming the path, before anything is read or
    written, exit 2 in the CLI; the file is left alone."""
    from click.testing import CliRunner

    from producer.cli import main
    from producer.errors import InputError

    afile = tmp_path / "afile"
    afile.write_text("x")
    catalog = str(tmp_path / under)
    with pytest.raises(
        InputError, match=r"(is a file|the catalog path is a file), not a directory.*another catalog path"
    ) as info:
        producer.register(products[:1], catalog=catalog, collection="c")
    assert catalog in str(info.value)
    res = CliRunner().invoke(main, ["register", products[0], "--catalog", catalog, "--collection", "c"])
    assert res.exit_code == 2, res.output
    assert "another catalog path" in res.output and "Traceback" not in res.output
    assert afile.read_text() == "x" and sorted(p.name for p in tmp_path.iterdir()) == ["afile"]


@pytest.mark.parametrize("verb", [["search"], ["validate"], ["reconcile"]])
def test_a_catalog_path_that_is_a_file_is_phrased_for_readers_too(tmp_path, verb):
    """``search a_product.tif`` (a product given for the catalog). Was: "the
    catalog cannot be written there; choose ... a directory, or one that does
    not exist yet": advice for a writer, which sends a reader to "no catalog"."""
    from click.testing import CliRunner

    from producer.cli import main

    afile = tmp_path / "scene.tif"
    afile.write_text("x")
    res = CliRunner().invoke(main, [*verb, str(afile)])
    assert res.exit_code == 2, res.output
    assert "the catalog path is a file, not a directory" in res.output
    assert "cannot be written" not in res.output and "the catalog's folder" in res.output
    assert afile.read_text() == "x" and sorted(p.name for p in tmp_path.iterdir()) == ["scene.tif"]


def test_a_failed_collection_write_does_not_call_an_already_linked_item_unlinked(products, tmp_path):
    """A batch of an item registered before (unchanged, linked) and a new
    one, whose collection write fails: before, both products said "item
    written but not linked", though the first was neither written nor
    unlinked (validate found one orphan, the new item). The linked one now
    says it is linked and that the catalogs above it were not updated; the
    new one's error is as before."""
    root = tmp_path / "catalog"
    (first,) = producer.register([products[0]], catalog=str(root), collection="c")
    assert first.ok, first.error
    store = RawOSErrorOnPut(
        open_store(str(root)), "collection.json", OSError(errno.ENOSPC, "No space left on device")
    )
    old, new = producer.register(products[:2], catalog=store, collection="c")
    assert [old.action, new.action] == ["error", "error"]
    assert old.error_type == new.error_type == "storage"
    assert "written but not linked" in (new.error or ""), new.error
    assert "not linked" not in (old.error or "") and "unchanged and linked" in (old.error or ""), old.error
    assert "No space left on device" in (old.error or "") and "rerun the registration" in (old.error or "")
    orphans = [p.key for p in producer.validate_catalog(str(root)) if p.kind == "orphan"]
    assert orphans == [f"c/{Path(products[1]).stem}/{Path(products[1]).stem}.json"]

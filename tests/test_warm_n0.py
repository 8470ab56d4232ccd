"""A warm upsert at N = 0 (issue 12, point 5, second pass): less work per write.

* A create-only write into a local catalog names an unnamed file
  (``O_TMPFILE`` + ``linkat``) instead of creating a temp file and renaming
  it: a writer killed before the name leaves nothing behind, the condition
  is the link itself, and a folder pruned meanwhile is made again.
"""

from __future__ import annotations

import errno
import os
import subprocess
import sys
from pathlib import Path

import pytest

import producer.store.local as local
from producer.errors import PreconditionFailed
from producer.store.local import LocalStore

unnamed = pytest.mark.skipif(
    not getattr(os, "O_TMPFILE", 0) or not Path("/proc/self/fd").is_dir(),
    reason="unnamed files (O_TMPFILE) and /proc/self/fd are Linux only",
)

_KILLED_BEFORE_THE_NAME = """
import os, sys
import producer.store.local as local
local.os.link = lambda *args, **kw: os._exit(137)  # die after the bytes, before the name
local.LocalStore(sys.argv[1]).put("c/x/x.json", b"{}", create_only=True)
"""


@unnamed
def test_create_only_writer_killed_before_the_name_leaves_no_file(tmp_path: Path) -> None:
    """Before, the bytes went to a named temp file first: a writer killed
    before its rename left that file in the folder until a sweep."""
    root = tmp_path / "cat"
    LocalStore(str(root)).put("c/collection.json", b"{}")
    proc = subprocess.run(
        [sys.executable, "-c", _KILLED_BEFORE_THE_NAME, str(root)],
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])},
        capture_output=True,
        timeout=60,
    )
    assert proc.returncode == 137, proc.stderr
    assert list((root / "c" / "x").iterdir()) == []


@unnamed
def test_create_only_refuses_any_existing_name_and_leaves_it(tmp_path: Path) -> None:
    root = tmp_path / "cat"
    store = LocalStore(str(root))
    store.put("c/a.json", b"old", create_only=True)
    (root / "c" / "folder.json").mkdir()
    os.symlink("missing.json", root / "c" / "dangling.json")  # inside the root, to nothing
    for key in ("c/a.json", "c/folder.json", "c/dangling.json"):
        with pytest.raises(PreconditionFailed, match="already exists"):
            store.put(key, b"new", create_only=True)
    assert (root / "c" / "a.json").read_bytes() == b"old"
    assert not (root / "c" / "missing.json").exists()  # nothing written through the link
    assert sorted(p.name for p in (root / "c").iterdir()) == ["a.json", "dangling.json", "folder.json"]


@unnamed
def test_folder_pruned_between_the_bytes_and_the_name_is_made_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The unnamed file is no entry of its folder, so a concurrent delete
    may prune the (empty) folder before the link: the write makes it again
    under the lock and the document is there, as written."""
    root = tmp_path / "cat"
    store = LocalStore(str(root))
    store.put("c/collection.json", b"{}")
    real_open = os.open

    def open_then_prune(path: object, flags: int, *args: object, **kw: object) -> int:
        fd = real_open(path, flags, *args, **kw)  # type: ignore[arg-type]
        if flags & local._O_TMPFILE == local._O_TMPFILE:
            os.rmdir(path)  # type: ignore[arg-type]
        return fd

    monkeypatch.setattr(local.os, "open", open_then_prune)
    version = store.put("c/x/x.json", b'{"a": 1}', create_only=True)
    monkeypatch.undo()
    assert store.get("c/x/x.json") == (b'{"a": 1}', version)


def test_file_system_without_unnamed_files_writes_through_a_temp_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "cat"
    store = LocalStore(str(root))
    real_open = os.open

    def no_tmpfile(path: object, flags: int, *args: object, **kw: object) -> int:
        if local._O_TMPFILE and flags & local._O_TMPFILE == local._O_TMPFILE:
            raise OSError(errno.EOPNOTSUPP, os.strerror(errno.EOPNOTSUPP))
        return real_open(path, flags, *args, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(local.os, "open", no_tmpfile)
    version = store.put("c/x/x.json", b"{}", create_only=True)
    assert store.get("c/x/x.json") == (b"{}", version)
    assert store.put("c/y/y.json", b"{}", create_only=True) == version
    with pytest.raises(PreconditionFailed):
        store.put("c/x/x.json", b"{ }", create_only=True)
    assert sorted(p.name for p in (root / "c").iterdir()) == ["x", "y"]
    if local._O_TMPFILE:
        assert store._unnamed is False  # asked once, then remembered


def test_settling_an_item_as_written_parses_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """After the link, each item is read back to see that no concurrent
    remove marked or deleted it; bytes with the very version the register
    wrote are unmarked by construction, so they are no longer parsed (a
    densified footprint makes an item the largest document of a register)."""
    import producer
    from producer.catalog import documents
    from tests import rasters

    real_loads = documents.loads
    parsed: list[str] = []

    def counting_loads(data: bytes, key: str, **kw: object) -> dict:
        parsed.append(key)
        return real_loads(data, key, **kw)  # type: ignore[arg-type]

    catalog = str(tmp_path / "cat")
    producer.register([rasters.write_wgs84(tmp_path / "first")], catalog=catalog, collection="c")
    monkeypatch.setattr(documents, "loads", counting_loads)
    (result,) = producer.register([rasters.write_utm(tmp_path / "data")], catalog=catalog, collection="c")
    assert result.ok, result.error
    assert result.href is not None
    assert [key for key in parsed if key.endswith(result.href.rsplit("/", 1)[1])] == []
    assert any(key.endswith("collection.json") for key in parsed)  # the parents still are


def test_relative_href_of_keys_is_posix_relpath_without_the_working_directory() -> None:
    """Links are made from keys by splitting them (posixpath.relpath asked
    os.getcwd() twice per link); odd keys still go through relpath."""
    import itertools
    import posixpath

    from producer.catalog.layout import relative_href

    def expected(from_key: str, to_key: str) -> str:
        rel = posixpath.relpath(to_key, posixpath.dirname(from_key) or ".")
        return rel if rel.startswith("../") else f"./{rel}"

    parts = ["a", "b", "ab", "collection.json"]
    keys = ["/".join(p) for n in range(1, 4) for p in itertools.product(parts, repeat=n)]
    keys += ["a/./b.json", "../x.json", "a//b.json", "/abs/x.json"]
    for from_key, to_key in itertools.product(keys, repeat=2):
        assert relative_href(from_key, to_key) == expected(from_key, to_key), (from_key, to_key)


def test_register_into_a_collection_parses_its_document_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The collection is read once to choose the layout and handed to the
    batch's preflight; it was parsed there a second time (a flat collection
    of 10,000 items holds 10,000 links)."""
    import producer
    from producer.catalog import documents
    from tests import rasters

    catalog = str(tmp_path / "cat")
    producer.register([rasters.write_wgs84(tmp_path / "first")], catalog=catalog, collection="c")
    real_loads = documents.loads
    parsed: list[str] = []

    def counting_loads(data: bytes, key: str, **kw: object) -> dict:
        parsed.append(key)
        return real_loads(data, key, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(documents, "loads", counting_loads)
    (result,) = producer.register([rasters.write_utm(tmp_path / "data")], catalog=catalog, collection="c")
    assert result.ok, result.error
    assert [key for key in parsed if key.endswith("/c/collection.json")] == [f"{catalog}/c/collection.json"]

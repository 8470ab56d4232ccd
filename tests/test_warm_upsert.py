"""A warm upsert into a small local catalog (issue 12, point 5): durability
per batch by folder, a durability fix, and the ``durability`` option.

* A new folder's entry lives in its parent: the parent of every folder a
  write creates is fsynced (it was not: a power loss could lose the folder).
* In a batch each folder the writes changed is fsynced once when the batch
  ends; past ``SYNCFS_PAST`` folders one ``syncfs`` replaces them.
* A failed directory fsync fails the write (or the batch): never swallowed.
* ``durability="os"`` fsyncs nothing and writes the same catalog.
* The local preflight starts no thread; the mirror's writes share one batch.

fsync calls are recorded on the real ``os.fsync`` (the path of each fd,
through /proc), so these tests assert on what the store really asks of the
kernel.
"""

from __future__ import annotations

import errno
import json
import os
import threading
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

import producer
import producer.store.local as local
from producer.cli import main
from producer.errors import InputError, StoreError
from producer.options import RegisterOptions
from producer.store.local import LocalStore
from producer.validate import default_validator
from tests import rasters
from tests.crashes import write_tile
from tests.test_crash import A_ID, B_ID, _run_matrix
from tests.trees import assert_stac_valid_tree

pytestmark = pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="reads fd paths from /proc")


class Syncs:
    """The fsync calls (path of each fd) and syncfs calls made meanwhile."""

    def __init__(self) -> None:
        self.files: list[str] = []
        self.dirs: list[str] = []
        self.syncfs: list[str] = []
        self.fail_dirs: int | None = None  # errno raised for directory fsyncs

    def dir_counts(self) -> Counter[str]:
        return Counter(self.dirs)


@pytest.fixture
def syncs(monkeypatch: pytest.MonkeyPatch) -> Iterator[Syncs]:
    record = Syncs()
    real_fsync = os.fsync
    real_syncfs = local.syncfs

    def fsync(fd: int) -> None:
        path = os.readlink(f"/proc/self/fd/{fd}")
        if os.path.isdir(path):
            record.dirs.append(path)
            if record.fail_dirs is not None:
                raise OSError(record.fail_dirs, os.strerror(record.fail_dirs))
        else:
            record.files.append(path)
        real_fsync(fd)

    def syncfs(directory: Path) -> None:
        record.syncfs.append(str(directory))
        real_syncfs(directory)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(local, "syncfs", syncfs)
    yield record


def _real(path: Path) -> str:
    return os.path.realpath(path)


def test_parent_of_a_new_item_folder_is_fsynced_outside_a_batch(tmp_path: Path, syncs: Syncs) -> None:
    store = LocalStore(str(tmp_path / "cat"))
    store.put("c/collection.json", b"{}")
    syncs.dirs.clear()
    store.put("c/item1/deeper/item1.json", b"{}", create_only=True)
    counts = syncs.dir_counts()
    root = tmp_path / "cat"
    # the new name, and the new entries of both created folders
    for folder in ("c/item1/deeper", "c/item1", "c"):
        assert counts[_real(root / folder)] == 1, (folder, syncs.dirs)


def test_batch_fsyncs_each_changed_folder_once_when_it_ends(tmp_path: Path, syncs: Syncs) -> None:
    root = tmp_path / "cat"
    store = LocalStore(str(root))
    store.put("c/collection.json", b"{}")
    syncs.dirs.clear()
    syncs.files.clear()
    with store.batch():
        for name in ("a", "b", "d"):
            store.put(f"c/{name}/{name}.json", b"{}", create_only=True)
            assert syncs.dirs == []  # nothing per write: at the end
        store.put("c/a/a.json", b'{"v": 2}')  # the same folder again
    assert syncs.dir_counts() == Counter(
        {_real(root / "c" / n): 1 for n in ("a", "b", "d")} | {_real(root / "c"): 1}
    )
    assert syncs.syncfs == []
    assert len(syncs.files) == 4  # each temp file before its rename


def test_batch_whose_delete_pruned_a_written_folder_ends_without_error(tmp_path: Path, syncs: Syncs) -> None:
    """The sinks' outbox writes an event and delivers (deletes) it in one
    batch, and the delete prunes the folder: the batch's end fsynced a folder
    that no longer exists and failed every product (ENOENT) although the
    catalog was committed."""
    root = tmp_path / "cat"
    store = LocalStore(str(root))
    store.put("c/collection.json", b"{}")
    syncs.dirs.clear()
    with store.batch():
        store.put("c/.outbox/events/e1.json", b"{}", create_only=True)
        store.put("c/kept/kept.json", b"{}", create_only=True)
        store.delete("c/.outbox/events/e1.json")
    assert not (root / "c" / ".outbox").exists()
    counts = syncs.dir_counts()
    assert counts[_real(root / "c" / "kept")] == 1 and counts[_real(root / "c")] == 1


def _trusted(monkeypatch: pytest.MonkeyPatch, fs_type: str = "ext4") -> None:
    """The tests' folder counts as on a file system of type ``fs_type``, on
    a kernel whose syncfs reports write-back errors (wherever they run)."""
    monkeypatch.setattr(local, "_kernel_at_least", lambda major, minor: True)
    monkeypatch.setattr(local, "_fs_type", lambda device: fs_type)


@pytest.mark.skipif(local._SYNCFS is None, reason="syncfs is Linux only")
def test_batch_past_the_threshold_ends_with_one_syncfs(
    tmp_path: Path, syncs: Syncs, monkeypatch: pytest.MonkeyPatch
) -> None:
    _trusted(monkeypatch)
    root = tmp_path / "cat"
    store = LocalStore(str(root))
    store.put("c/collection.json", b"{}")
    syncs.dirs.clear()
    # SYNCFS_PAST folders (the new item folders, "c" is their parent) and one more
    with store.batch():
        for k in range(local.SYNCFS_PAST - 1):
            store.put(f"c/i{k}/i{k}.json", b"{}")
    assert len(syncs.dirs) == local.SYNCFS_PAST and syncs.syncfs == []
    syncs.dirs.clear()
    with store.batch():
        for k in range(local.SYNCFS_PAST):
            store.put(f"c/j{k}/j{k}.json", b"{}")
    assert syncs.dirs == [] and syncs.syncfs == [str(root)]


@pytest.mark.parametrize("where", ["fuse.sshfs", "linux 5.4", "linux 5.15"])
def test_batch_past_the_threshold_fsyncs_each_folder_where_syncfs_is_not_trusted(
    where: str, tmp_path: Path, syncs: Syncs, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A FUSE daemon never sees syncfs; before Linux 5.8 syncfs reports no
    write-back error, before 5.17 not the file system's own (a failed
    journal commit): the batch's folders were left to a syncfs that could
    lose their entries unseen."""
    if where.startswith("linux"):
        _trusted(monkeypatch)
        running = tuple(int(n) for n in where.split()[1].split("."))
        monkeypatch.setattr(local, "_kernel_at_least", lambda major, minor: running >= (major, minor))
    else:
        _trusted(monkeypatch, where)
    root = tmp_path / "cat"
    store = LocalStore(str(root))
    store.put("c/collection.json", b"{}")
    syncs.dirs.clear()
    with store.batch():
        for k in range(local.SYNCFS_PAST):
            store.put(f"c/j{k}/j{k}.json", b"{}")
    assert syncs.syncfs == []
    assert syncs.dir_counts() == Counter(
        {_real(root / "c" / f"j{k}"): 1 for k in range(local.SYNCFS_PAST)} | {_real(root / "c"): 1}
    )


def _mounted(monkeypatch: pytest.MonkeyPatch, mounted: Path) -> None:
    """``mounted`` and every folder below it report another device (st_dev)
    than the rest: a file system mounted there."""
    real_stat = os.stat

    def stat(path, *args, **kwargs):
        st = real_stat(path, *args, **kwargs)
        if Path(path) == mounted or mounted in Path(path).parents:
            fields = list(st)
            fields[2] = st.st_dev + 1  # st_dev
            return os.stat_result(fields)
        return st

    monkeypatch.setattr(os, "stat", stat)


@pytest.mark.skipif(local._SYNCFS is None, reason="syncfs is Linux only")
def test_batch_past_the_threshold_fsyncs_the_folders_of_a_mount_below_the_root(
    tmp_path: Path, syncs: Syncs, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A collection folder mounted below the catalog root: the root's
    syncfs does not flush that file system, so its folders are fsynced."""
    _trusted(monkeypatch)
    root = tmp_path / "cat"
    store = LocalStore(str(root))
    store.put("m/collection.json", b"{}")
    store.put("c/collection.json", b"{}")
    mounted = root / "m"
    _mounted(monkeypatch, mounted)
    syncs.dirs.clear()
    with store.batch():
        for k in range(local.SYNCFS_PAST):
            store.put(f"c/j{k}/j{k}.json", b"{}")
        for k in range(2):
            store.put(f"m/i{k}/i{k}.json", b"{}")
    assert syncs.syncfs == [str(root)]
    assert syncs.dir_counts() == Counter(
        {_real(mounted / f"i{k}"): 1 for k in range(2)} | {_real(mounted): 1}
    )


@pytest.mark.skipif(local._SYNCFS is None, reason="syncfs is Linux only")
def test_a_batch_whose_folders_are_mostly_on_a_mount_below_the_root_runs_no_syncfs(
    tmp_path: Path, syncs: Syncs, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Only the root's own folders count towards its syncfs: the folders of
    a mount below it are fsynced anyway, so a syncfs for two of the root's
    would flush every other process's writes for nothing."""
    _trusted(monkeypatch)
    root = tmp_path / "cat"
    store = LocalStore(str(root))
    store.put("m/collection.json", b"{}")
    store.put("c/collection.json", b"{}")
    _mounted(monkeypatch, root / "m")
    syncs.dirs.clear()
    with store.batch():
        store.put("c/j0/j0.json", b"{}")
        for k in range(local.SYNCFS_PAST + 2):
            store.put(f"m/i{k}/i{k}.json", b"{}")
    assert syncs.syncfs == []
    expected = {_real(root / "m" / f"i{k}"): 1 for k in range(local.SYNCFS_PAST + 2)}
    assert syncs.dir_counts() == Counter(
        expected | {_real(root / "m"): 1, _real(root / "c" / "j0"): 1, _real(root / "c"): 1}
    )


def test_failed_directory_fsync_fails_the_write_and_the_batch(tmp_path: Path, syncs: Syncs) -> None:
    store = LocalStore(str(tmp_path / "cat"))
    store.put("c/collection.json", b"{}")
    syncs.fail_dirs = errno.EIO
    with pytest.raises(StoreError, match=r"cannot make the folder .*c.* durable .*run the command again"):
        store.put("c/collection.json", b'{"v": 2}')
    with pytest.raises(StoreError, match="durable"), store.batch():
        store.put("c/x/x.json", b"{}")


def test_register_whose_folder_fsync_fails_links_nothing(tmp_path: Path, syncs: Syncs) -> None:
    data = rasters.write_utm(tmp_path / "data")
    catalog = tmp_path / "cat"
    assert producer.register(
        [str(rasters.write_cog(tmp_path / "data"))], catalog=str(catalog), collection="c"
    )[0].ok
    before = (catalog / "c" / "collection.json").read_bytes()
    syncs.fail_dirs = errno.EIO
    (res,) = producer.register([str(data)], catalog=str(catalog), collection="c")
    assert not res.ok and res.error_type == "storage", res
    assert "durable" in res.error and "register it again" in res.error
    assert (catalog / "c" / "collection.json").read_bytes() == before  # not linked
    syncs.fail_dirs = None
    (res,) = producer.register([str(data)], catalog=str(catalog), collection="c")
    assert res.ok, res
    assert_stac_valid_tree(catalog)


def _documents(root: Path) -> dict[str, dict]:
    out = {}
    for path in sorted(root.rglob("*.json")):
        doc = json.loads(path.read_bytes())
        doc.get("properties", {}).pop("created", None)
        doc.get("properties", {}).pop("updated", None)
        out[path.relative_to(root).as_posix()] = doc
    return out


def test_durability_os_fsyncs_nothing_and_writes_the_same_catalog(tmp_path: Path, syncs: Syncs) -> None:
    sources = [str(rasters.write_utm(tmp_path / "data")), str(rasters.write_cog(tmp_path / "data"))]
    results = producer.register(sources, catalog=str(tmp_path / "os"), collection="c", durability="os")
    assert all(r.ok for r in results), results
    assert (syncs.files, syncs.dirs, syncs.syncfs) == ([], [], [])
    results = producer.register(sources, catalog=str(tmp_path / "fsync"), collection="c")
    assert all(r.ok for r in results), results
    assert syncs.files and syncs.dirs
    assert _documents(tmp_path / "os") == _documents(tmp_path / "fsync")
    assert_stac_valid_tree(tmp_path / "os")


def test_durability_from_environment_cli_flag_and_a_bad_value(tmp_path: Path, syncs: Syncs) -> None:
    assert RegisterOptions().durability == "fsync"
    assert RegisterOptions.from_env({"STAC_DURABILITY": "os"}).durability == "os"
    with pytest.raises(InputError, match=r"unknown durability 'never'.*'fsync'.*'os'"):
        RegisterOptions(durability="never")
    with pytest.raises(InputError, match="durability 'sometimes'"):
        LocalStore(str(tmp_path / "x"), durability="sometimes")
    assert not (tmp_path / "x").exists()
    data = rasters.write_utm(tmp_path / "data")
    res = CliRunner().invoke(
        main, ["register", str(data), "-c", str(tmp_path / "cat"), "--collection", "c", "--durability", "os"]
    )
    assert res.exit_code == 0, res.output
    assert (syncs.files, syncs.dirs, syncs.syncfs) == ([], [], [])
    assert_stac_valid_tree(tmp_path / "cat")


def _recording_threads(monkeypatch: pytest.MonkeyPatch) -> list[Callable[..., object] | None]:
    started: list[Callable[..., object] | None] = []
    real_start = threading.Thread.start

    def start(self: threading.Thread) -> None:
        started.append(getattr(self, "_target", None))
        real_start(self)

    monkeypatch.setattr(threading.Thread, "start", start)
    return started


def test_warm_local_upsert_starts_no_thread_and_fsyncs_each_folder_once_per_phase(
    tmp_path: Path, syncs: Syncs, monkeypatch: pytest.MonkeyPatch
) -> None:
    catalog = tmp_path / "cat"
    first = rasters.write_cog(tmp_path / "data")
    assert producer.register([str(first)], catalog=str(catalog), collection="c")[0].ok
    for path in catalog.joinpath("c").iterdir():  # the collection without its mirror: N = 0-like
        if path.name.startswith("items"):
            if path.is_dir():
                for f in path.iterdir():
                    f.unlink()
                path.rmdir()
            else:
                path.unlink()
    started = _recording_threads(monkeypatch)
    syncs.dirs.clear()
    (res,) = producer.register(
        [str(rasters.write_utm(tmp_path / "data"))], catalog=str(catalog), collection="c"
    )
    assert res.ok, res
    assert started == []  # a local preflight reads in this thread
    c, frag = _real(catalog / "c"), _real(catalog / "c" / "items-fragments")
    # item phase: its folder and (new folder) the collection's; the collection's
    # compare-and-swap: the collection's folder; the mirror (base file, new
    # fragments folder, fragment): each folder once, in one batch
    assert syncs.dirs == [_real(catalog / "c" / "utm_20240513"), c, c, frag, c], syncs.dirs
    assert_stac_valid_tree(catalog)


@pytest.mark.parametrize("scenario", ["first-registration", "registration-into-existing", "remove"])
def test_crash_after_any_write_with_durability_os_is_repaired_by_rerun_and_by_reconcile(
    tmp_path: Path, syncs: Syncs, scenario: str
) -> None:
    """A killed process loses nothing the kernel holds: with durability
    ``os`` the crash matrix of tests/test_crash.py holds as with fsync."""
    data = tmp_path / "data"
    products = {
        A_ID: write_tile(data, f"{A_ID}.tif", 12.0, 52.0),
        B_ID: write_tile(data, f"{B_ID}.tif", 10.0, 50.0),
    }

    def make_empty() -> LocalStore:
        return LocalStore(str(tmp_path / f"cat-{uuid.uuid4().hex[:8]}"), durability="os")

    assert _run_matrix(make_empty, products, scenario, None) >= 2
    assert (syncs.files, syncs.dirs, syncs.syncfs) == ([], [], [])


@pytest.mark.parametrize(
    "summary",
    [["EPSG:32632"], [{"name": "ndvi"}], {"minimum": 0, "maximum": 3}, {"type": "string"}, [], "x", {}, 3],
    ids=["list", "list-of-objects", "range", "json-schema", "empty-list", "string", "empty-object", "number"],
)
def test_compiled_collection_check_with_reordered_alternatives_agrees_with_jsonschema(
    tmp_path: Path, summary: object
) -> None:
    """The compiled check tries a summary's ``anyOf`` alternatives cheapest
    first; its verdict stays jsonschema's for every kind of summary."""
    catalog = tmp_path / "cat"
    assert producer.register(
        [str(rasters.write_utm(tmp_path / "data"))], catalog=str(catalog), collection="c"
    )[0].ok
    doc = json.loads((catalog / "c" / "collection.json").read_bytes())
    doc["summaries"]["probe"] = summary
    validator = default_validator()
    url = "https://schemas.stacspec.org/v1.1.0/collection-spec/json-schema/collection.json"
    fast = validator.accelerated(url)
    assert fast is not None
    try:
        fast(doc)
        compiled_ok = True
    except Exception:
        compiled_ok = False
    assert compiled_ok == (validator._schema_errors_reference(url, doc) == [])


def test_a_delete_is_durable_when_it_returns_outside_a_batch(tmp_path: Path, syncs: Syncs) -> None:
    root = tmp_path / "cat"
    store = LocalStore(str(root))
    store.put("c/collection.json", b"{}")
    store.put("c/a/a.json", b"{}", create_only=True)
    store.put("c/a/a.png", b"png", create_only=True)
    syncs.dirs.clear()
    store.delete("c/a/a.png")  # the folder keeps a.json: its entry list changed
    assert syncs.dir_counts() == Counter({_real(root / "c" / "a"): 1})
    syncs.dirs.clear()
    store.delete("c/a/a.json")  # the folder is pruned: the collection's folder lost its entry
    assert syncs.dir_counts() == Counter({_real(root / "c"): 1})


def test_deletes_in_a_batch_sync_their_folders_when_it_ends_and_never_with_durability_os(
    tmp_path: Path, syncs: Syncs
) -> None:
    root = tmp_path / "cat"
    store = LocalStore(str(root))
    for name in ("a", "b"):
        store.put(f"c/{name}/{name}.json", b"{}", create_only=True)
        store.put(f"c/{name}/{name}.png", b"png", create_only=True)
    syncs.dirs.clear()
    with store.batch():
        store.delete("c/a/a.png")
        store.delete("c/b/b.png")
        assert syncs.dirs == []
    assert syncs.dir_counts() == Counter({_real(root / "c" / n): 1 for n in ("a", "b")})
    relaxed = LocalStore(str(root), durability="os")
    syncs.dirs.clear()
    relaxed.delete("c/a/a.json")
    assert syncs.dirs == []

"""Issue 12 point 4: a local register batch makes its new items durable with
one ``syncfs`` before any of them is named (``producer.store.local.Staging``),
not with an fsync per item, and keeps every guarantee of the per-item path:
no name ever points at bytes a power loss can lose, a write-back error fails
only the products it hit, an item another writer creates meanwhile is
written the usual way (identity check, compare-and-swap), and a process
killed at any point of it leaves nothing that a re-run does not complete.

Both write paths of a batch run each scenario: the batch path (one worker)
and the pipelined one (two extraction threads). File-system faults are
injected at the calls the store really makes (``os.fsync``, libc
``syncfs``), only for the paths under test.
"""

from __future__ import annotations

import errno
import json
import os
import time
from pathlib import Path

import pytest

import producer
from producer import commit as commit_mod
from producer.store import local as local_mod
from tests import rasters
from tests.crashes import SimulatedKill

COUNT = 20  # more than SYNCFS_PAST: one syncfs, not an fsync per item
EARLY = local_mod._EARLY  # the first new items of a flush window are fsynced as written
LATE = COUNT - 1 - EARLY  # the new items flushed by the syncfs
PATHS = ["batch", "pipelined"]


def _workers(path: str) -> int:
    return 1 if path == "batch" else 2


@pytest.fixture(autouse=True)
def _trusted_file_system(monkeypatch):
    """Staging runs where syncfs is trusted (Linux 5.8+, a local block file
    system): the tests' temp folder counts as such wherever they run (a
    container's overlay, an older kernel); tests of the other case say so."""
    monkeypatch.setattr(local_mod, "_kernel_at_least", lambda major, minor: True)
    monkeypatch.setattr(local_mod, "_fs_type", lambda device: "ext4")


@pytest.fixture(scope="module")
def products(tmp_path_factory) -> list[str]:
    folder = tmp_path_factory.mktemp("staged-data")
    return [
        str(rasters.write_tile(folder, f"s{i:02d}_20240101.tif", 0.2 * i, 10.0, size=8, pixel=0.05))
        for i in range(COUNT)
    ]


def _ids(products: list[str]) -> list[str]:
    return [Path(p).stem for p in products]


def _linked(root: Path, collection: str = "c") -> list[str]:
    coll = json.loads((root / collection / "collection.json").read_text())
    return sorted(link["href"] for link in coll["links"] if link["rel"] == "item")


def _expected_links(ids: list[str]) -> list[str]:
    return sorted(f"./{i}/{i}.json" for i in ids)


def _temps(root: Path) -> list[Path]:
    return list(root.rglob(".stac-producer.tmp.*"))


def _fd_path(fd: int) -> str:
    try:
        return os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        return ""


class _Recorder:
    """Records, in order, the syncfs calls and the fsyncs and renames of
    files under ``root``."""

    def __init__(self, root: Path, monkeypatch, failed_syncfs: int = 0) -> None:
        self.root = str(root)
        self.events: list[tuple[str, str]] = []
        real_fsync, real_replace, real_syncfs = os.fsync, os.replace, local_mod._SYNCFS
        real_link = os.link
        assert real_syncfs is not None, "this test needs Linux syncfs"

        def fsync(fd):
            path = _fd_path(fd)
            if path.startswith(self.root):
                self.events.append(("fsync", path))
            return real_fsync(fd)

        def replace(src, dst, *args, **kwargs):
            if str(dst).startswith(self.root):
                self.events.append(("rename", str(dst)))
            return real_replace(src, dst, *args, **kwargs)

        def link(src, dst, *args, **kwargs):
            # a create-only naming: a hard link of the temp file (which
            # fails on an existing name), or of an unnamed (O_TMPFILE) file
            # through /proc/self/fd/N, whose fsync was recorded under the
            # folder's "#inode (deleted)": it is the named file's
            real_link(src, dst, *args, **kwargs)
            if str(dst).startswith(self.root):
                if str(src).startswith("/proc/self/fd/"):
                    unnamed = _fd_path(int(str(src).rsplit("/", 1)[1]))
                    self.events[:] = [(k, str(dst) if p == unnamed else p) for k, p in self.events]
                self.events.append(("rename", str(dst)))

        def syncfs(fd):
            # the first ``failed_syncfs`` calls report a write-back error
            # (after flushing: what a real syncfs does when one occurred)
            self.events.append(("syncfs", _fd_path(fd)))
            done = real_syncfs(fd)
            failing = sum(kind == "syncfs" for kind, _ in self.events) <= failed_syncfs
            return -1 if failing else done

        monkeypatch.setattr(os, "fsync", fsync)
        monkeypatch.setattr(os, "replace", replace)
        monkeypatch.setattr(os, "link", link)
        monkeypatch.setattr(local_mod, "_SYNCFS", syncfs)

    def item_events(self, ids: list[str]) -> list[tuple[str, str]]:
        names = {f"/{i}/{i}.json" for i in ids}
        return [(kind, path) for kind, path in self.events if any(path.endswith(n) for n in names)]


@pytest.mark.parametrize("path", PATHS)
def test_new_items_are_flushed_by_one_syncfs_before_any_is_named(path, products, tmp_path, monkeypatch):
    root = tmp_path / "catalog"
    producer.register([products[0]], catalog=str(root), collection="c")  # root and collection exist
    rec = _Recorder(root, monkeypatch)

    results = producer.register(products, catalog=str(root), collection="c", workers=_workers(path))
    monkeypatch.undo()

    assert [r.action for r in results] == ["unchanged"] + ["created"] * (COUNT - 1)
    new = _ids(products)[1:]
    # the first few new items' temp files were fsynced as written, the
    # others not: the flush was one syncfs
    folders = tuple(f"/c/{i}/.stac-producer.tmp." for i in new)
    assert len([e for e in rec.events if e[0] == "fsync" and any(f in e[1] for f in folders)]) == EARLY
    renames = [i for i, (kind, p) in enumerate(rec.events) if kind == "rename" and p.endswith(".json")]
    item_renames = [i for i, e in enumerate(rec.events) if e in rec.item_events(new) and e[0] == "rename"]
    assert len(item_renames) == COUNT - 1
    flushes = [i for i, (kind, _) in enumerate(rec.events) if kind == "syncfs"]
    assert flushes and flushes[0] < min(item_renames), rec.events[:5]
    # and the batch's folders were made durable before the collection linked the items
    coll_rename = max(i for i in renames if rec.events[i][1].endswith("/c/collection.json"))
    assert any(min(item_renames) < f < coll_rename for f in flushes[1:])
    assert _linked(root) == _expected_links(_ids(products))
    assert not _temps(root)
    assert [str(p) for p in producer.validate_catalog(str(root))] == []


@pytest.mark.parametrize("path", PATHS)
def test_a_write_back_error_syncfs_reports_names_none_of_the_batch_and_says_whose_file_has_it(
    path, products, tmp_path, monkeypatch
):
    """A full disk at write-back: the staged files are closed, so a file
    whose own error the kernel dropped with its inode would fsync clean;
    none of the batch's new items staged unsynced is named, and the one
    whose file reports the error says so (the first few, fsynced as
    written, are written)."""
    root = tmp_path / "catalog"
    producer.register([products[0]], catalog=str(root), collection="c")
    victim = str(root / "c" / _ids(products)[-2])
    _Recorder(root, monkeypatch, failed_syncfs=1)  # the batch's flush: an error on this file system
    real_fsync = os.fsync

    def fsync(fd):  # ... and the victim's file is one that has it
        if _fd_path(fd).startswith(victim + "/"):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    results = producer.register(products, catalog=str(root), collection="c", workers=_workers(path))
    monkeypatch.undo()

    bad = results[-2]
    assert bad.action == "error" and bad.error_type == "storage" and "No space left on device" in bad.error
    assert products[-2] in bad.error and "Traceback" not in bad.error
    # the first few new items were fsynced as written (the victim too, if
    # it was among them: then its own fsync failed), the others fail
    created = [Path(r.source).stem for r in results[1:] if r.action == "created"]
    assert len(created) in (EARLY - 1, EARLY)
    for r in results[1:-2] + results[-1:]:
        if r.action != "created":
            assert r.error_type == "storage" and "write-back error" in r.error and "register again" in r.error
    new_folders = {p.name for p in (root / "c").glob("s*")} - set(_ids(products)[:1])
    assert new_folders == set(created)  # no item folder left of the others
    assert not _temps(root)
    assert _linked(root) == _expected_links(_ids(products)[:1] + created)
    assert [str(p) for p in producer.validate_catalog(str(root))] == []
    again = producer.register(products, catalog=str(root), collection="c", workers=_workers(path))
    assert [r.action for r in again] == [
        "unchanged" if i == 0 or Path(p).stem in created else "created" for i, p in enumerate(products)
    ]
    assert _linked(root) == _expected_links(_ids(products))


def test_a_syncfs_error_no_staged_file_owns_fails_the_staged_products_and_names_none(
    products, tmp_path, monkeypatch
):
    """Another process's file, or a file whose error the kernel dropped with
    its evicted inode: the bytes of this batch staged unsynced may be lost,
    so none of them is named (the first few, fsynced as written, are)."""
    root = tmp_path / "catalog"
    producer.register([products[0]], catalog=str(root), collection="c")
    rec = _Recorder(root, monkeypatch, failed_syncfs=1)  # yet every file of this batch fsyncs fine

    results = producer.register(products, catalog=str(root), collection="c", workers=1)
    monkeypatch.undo()

    created = [Path(r.source).stem for r in results[1:] if r.action == "created"]
    failed = [r for r in results[1:] if r.action != "created"]
    assert len(created) == EARLY and len(failed) == LATE
    for r in failed:
        assert r.error_type == "storage" and "write-back error" in r.error and "register again" in r.error
    # the error was looked for: each file staged unsynced fsynced once, and none of them named
    late = [Path(r.source).stem for r in failed]
    assert not [e for e in rec.item_events(late) if e[0] == "rename"]
    folders = tuple(f"/c/{i}/.stac-producer.tmp." for i in late)
    assert len([e for e in rec.events if e[0] == "fsync" and any(f in e[1] for f in folders)]) == LATE
    _assert_each_fsynced_then_named(rec, created)
    assert not _temps(root)
    assert {p.name for p in (root / "c").glob("s*")} == {*_ids(products)[:1], *created}  # no empty folder
    assert _linked(root) == _expected_links(_ids(products)[:1] + created)
    assert [str(p) for p in producer.validate_catalog(str(root))] == []
    again = producer.register(products, catalog=str(root), collection="c", workers=1)
    assert [r.action == "created" for r in again] == [Path(p).stem in late for p in products]


@pytest.mark.parametrize("path", PATHS)
def test_a_lock_that_cannot_be_taken_at_the_names_fails_the_staged_products_as_not_registered(
    path, products, tmp_path, monkeypatch
):
    """The flush succeeded but the renames' lock cannot be taken (here its
    lock file turned into a symbolic link meanwhile): no staged item was
    named, so no product may say its item was written."""
    root = tmp_path / "catalog"
    producer.register([products[0]], catalog=str(root), collection="c")
    lock = root / local_mod.LOCK_NAME
    real = local_mod.Staging._make_durable

    def make_durable(self, items, fd):  # after the flush, before the names
        failed = real(self, items, fd)
        if items and not lock.is_symlink():
            lock.unlink()
            lock.symlink_to(tmp_path / "elsewhere")
        return failed

    monkeypatch.setattr(local_mod.Staging, "_make_durable", make_durable)
    results = producer.register(products, catalog=str(root), collection="c", workers=_workers(path))
    monkeypatch.undo()

    assert [r.action for r in results] == ["unchanged"] + ["error"] * (COUNT - 1)
    for r in results[1:]:
        assert r.error_type == "storage", r
        assert "not registered" in r.error and "symbolic link" in r.error, r.error
        assert "written" not in r.error and r.href is None, r.error
    assert sorted(p.name for p in (root / "c").glob("s*")) == _ids(products)[:1]  # nothing named, no folder
    assert not _temps(root)
    lock.unlink()
    assert _linked(root) == _expected_links(_ids(products)[:1])
    assert [str(p) for p in producer.validate_catalog(str(root))] == []
    again = producer.register(products, catalog=str(root), collection="c", workers=_workers(path))
    assert [r.action for r in again] == ["unchanged"] + ["created"] * (COUNT - 1)
    assert _linked(root) == _expected_links(_ids(products))


def _assert_each_fsynced_then_named(rec: _Recorder, ids: list[str]) -> None:
    for item_id in ids:
        events = [e for e in rec.events if f"/c/{item_id}/" in e[1]]
        assert [kind for kind, _ in events][:2] == ["fsync", "rename"], events  # its own fsync, then its name


@pytest.mark.parametrize("where", ["linux-5.4", "linux-5.15", "fuse.sshfs", "nfs4"])
def test_where_syncfs_is_not_trusted_each_item_is_fsynced(where, products, tmp_path, monkeypatch):
    """Linux before 5.8: syncfs fails only for a bad descriptor, so a full
    disk at write-back would go unseen; before 5.17 it drops the file
    system's own sync error (a failed journal commit). FUSE: syncfs does
    not reach the daemon. Network and layered file systems: not known to
    report write-back errors through it. Items keep their own fsync there."""
    root = tmp_path / "catalog"
    producer.register([products[0]], catalog=str(root), collection="c")
    if where.startswith("linux-"):
        running = tuple(int(n) for n in where.removeprefix("linux-").split("."))
        monkeypatch.setattr(local_mod, "_kernel_at_least", lambda major, minor: running >= (major, minor))
    else:
        monkeypatch.setattr(local_mod, "_fs_type", lambda device: where)
    rec = _Recorder(root, monkeypatch)

    results = producer.register(products, catalog=str(root), collection="c", workers=1)
    monkeypatch.undo()

    assert [r.action for r in results] == ["unchanged"] + ["created"] * (COUNT - 1)
    _assert_each_fsynced_then_named(rec, _ids(products)[1:])
    assert _linked(root) == _expected_links(_ids(products))


def test_an_item_folder_on_another_file_system_is_fsynced_as_it_is_written(products, tmp_path, monkeypatch):
    """A collection folder mounted below the catalog root: syncfs of the
    root's file system would not flush it."""
    root = tmp_path / "catalog"
    producer.register([products[0]], catalog=str(root), collection="c")
    mounted = str(root / "c")
    real_stat = os.stat

    def stat(path, *args, **kwargs):  # the collection folder reports another device
        st = real_stat(path, *args, **kwargs)
        if str(path) == mounted:
            fields = list(st)
            fields[2] = st.st_dev + 1  # st_dev
            return os.stat_result(fields)
        return st

    rec = _Recorder(root, monkeypatch)
    monkeypatch.setattr(os, "stat", stat)
    results = producer.register(products, catalog=str(root), collection="c", workers=1)
    monkeypatch.undo()

    assert [r.action for r in results] == ["unchanged"] + ["created"] * (COUNT - 1)
    _assert_each_fsynced_then_named(rec, _ids(products)[1:])
    # each was fsynced as written: nothing left for a flush before the names
    first_name = rec.events.index(next(e for e in rec.item_events(_ids(products)[1:]) if e[0] == "rename"))
    assert "syncfs" not in [kind for kind, _ in rec.events[:first_name]]
    assert _linked(root) == _expected_links(_ids(products))


def test_a_root_mounted_from_an_untrusted_file_system_by_the_first_item_has_each_item_fsynced(
    products, tmp_path, monkeypatch
):
    """The store looked at the root's file system before the batch (or at
    its nearest folder, before the root existed); the flush looks again at
    the root itself, and a FUSE mount found there fsyncs every item."""
    root = tmp_path / "catalog"
    producer.register([products[0]], catalog=str(root), collection="c")
    looks: list[int] = []

    def fs_type(device: int) -> str:
        looks.append(device)
        return "ext4" if len(looks) == 1 else "fuse.sshfs"

    monkeypatch.setattr(local_mod, "_fs_type", fs_type)
    rec = _Recorder(root, monkeypatch)
    results = producer.register(products, catalog=str(root), collection="c", workers=1)
    monkeypatch.undo()

    # before the batch, at the flush's descriptor, and at the batch's end (its folders)
    assert len(looks) == 3
    assert [r.action for r in results] == ["unchanged"] + ["created"] * (COUNT - 1)
    _assert_each_fsynced_then_named(rec, _ids(products)[1:])
    assert _linked(root) == _expected_links(_ids(products))


def test_the_file_system_type_is_read_from_the_mount_of_the_device():
    device = os.makedev(8, 3)
    mountinfo = "\n".join(
        [
            "22 1 0:21 / /proc rw,nosuid - proc proc rw",
            "29 1 8:3 / / rw,relatime shared:1 - ext4 /dev/sda3 rw",
            "31 29 8:30 / /data\\040disk rw shared:5 master:2 - xfs /dev/sdb rw",
            "40 29 0:45 / /mnt/fuse rw - fuse.sshfs host:/x rw",
        ]
    )
    assert local_mod._mount_type(mountinfo, device) == "ext4"
    assert local_mod._mount_type(mountinfo, os.makedev(8, 30)) == "xfs"  # optional fields before " - "
    assert local_mod._mount_type(mountinfo, os.makedev(0, 45)) == "fuse.sshfs"
    assert local_mod._mount_type(mountinfo, os.makedev(9, 9)) is None


@pytest.mark.parametrize("path", PATHS)
def test_a_batch_with_few_new_items_fsyncs_each_and_flushes_nothing_else(
    path, products, tmp_path, monkeypatch
):
    """A re-run that finds most products registered: its few new items are
    fsynced as written, and no syncfs flushes the whole file system (every
    other process's writes too) for them."""
    new = EARLY  # their folders and the collection's are few enough for the batch's end to fsync each
    root = tmp_path / "catalog"
    producer.register(products[: COUNT - new], catalog=str(root), collection="c")
    rec = _Recorder(root, monkeypatch)
    results = producer.register(products, catalog=str(root), collection="c", workers=_workers(path))
    monkeypatch.undo()

    assert [r.action for r in results] == ["unchanged"] * (COUNT - new) + ["created"] * new
    _assert_each_fsynced_then_named(rec, _ids(products)[COUNT - new :])
    assert "syncfs" not in [kind for kind, _ in rec.events]
    assert _linked(root) == _expected_links(_ids(products))


def test_a_batch_of_eight_products_or_fewer_fsyncs_each_new_item(products, tmp_path, monkeypatch):
    """An fsync each costs less than flushing the whole file system (other
    processes' writes included) for a few items."""
    root = tmp_path / "catalog"
    producer.register([products[0]], catalog=str(root), collection="c")
    rec = _Recorder(root, monkeypatch)

    results = producer.register(products[:8], catalog=str(root), collection="c", workers=1)
    monkeypatch.undo()

    assert [r.action for r in results] == ["unchanged"] + ["created"] * 7
    _assert_each_fsynced_then_named(rec, _ids(products)[1:8])
    first_name = rec.events.index(next(e for e in rec.item_events(_ids(products)[1:8]) if e[0] == "rename"))
    assert "syncfs" not in [kind for kind, _ in rec.events[:first_name]]


@pytest.mark.parametrize("path", PATHS)
def test_an_item_whose_staged_file_a_sweep_took_is_written_the_usual_way(
    path, products, tmp_path, monkeypatch
):
    root = tmp_path / "catalog"
    producer.register([products[0]], catalog=str(root), collection="c")
    real_publish = commit_mod.Committer.publish_staged
    swept: list[Path] = []

    def publish_after_a_sweep(self, staging):
        swept.extend(t for t in _temps(root) if f"/{_ids(products)[4]}/" in str(t))
        for temp in swept:
            temp.unlink()
        return real_publish(self, staging)

    monkeypatch.setattr(commit_mod.Committer, "publish_staged", publish_after_a_sweep)
    results = producer.register(products, catalog=str(root), collection="c", workers=_workers(path))
    monkeypatch.undo()

    assert len(swept) == 1
    assert [r.action for r in results] == ["unchanged"] + ["created"] * (COUNT - 1)
    assert _linked(root) == _expected_links(_ids(products))
    assert [str(p) for p in producer.validate_catalog(str(root))] == []


def test_a_long_pipelined_batch_names_what_it_staged_before_sweeps_could_take_it(
    products, tmp_path, monkeypatch
):
    """A temp file older than temp_max_age is a dead writer's to the sweeps
    (reconcile --fix): a batch whose extraction takes longer publishes what
    it staged every eighth of that age."""
    root = tmp_path / "catalog"
    producer.register([products[0]], catalog=str(root), collection="c")
    monkeypatch.setattr(local_mod.LocalStore, "temp_max_age", 0.4)  # published every 0.05 s
    monkeypatch.setattr(local_mod, "_EARLY", 0)  # every window's items staged unsynced: each window flushes
    real_create = producer.extract.create_item

    def slow_create(*args, **kwargs):
        time.sleep(0.03)
        return real_create(*args, **kwargs)

    monkeypatch.setattr(producer.extract, "create_item", slow_create)
    published: list[float] = []
    real_publish = local_mod.Staging.publish

    def publish(self):
        outcomes = real_publish(self)
        if outcomes:
            published.append(time.monotonic())
        return outcomes

    monkeypatch.setattr(local_mod.Staging, "publish", publish)
    rec = _Recorder(root, monkeypatch)
    results = producer.register(products, catalog=str(root), collection="c", workers=2)
    monkeypatch.undo()

    assert [r.action for r in results] == ["unchanged"] + ["created"] * (COUNT - 1)
    assert len(published) >= 2  # more than the one at the end
    renames = [
        i for i, e in enumerate(rec.events) if e in rec.item_events(_ids(products)[1:]) and e[0] == "rename"
    ]
    flushes = [i for i, (kind, _) in enumerate(rec.events) if kind == "syncfs" and i < max(renames)]
    assert len(flushes) >= 2, rec.events  # each window flushed before its names
    assert min(renames) < max(flushes)  # items named before the batch's last product was written
    assert _linked(root) == _expected_links(_ids(products))
    assert not _temps(root)


@pytest.mark.parametrize("path", PATHS)
def test_an_item_another_writer_creates_before_the_batch_names_it_is_written_the_usual_way(
    path, products, tmp_path, monkeypatch
):
    """The race is forced: the other writer registers product 5 while this
    batch has it staged and not yet named (paused at the publish)."""
    root = tmp_path / "catalog"
    producer.register([products[0]], catalog=str(root), collection="c")
    real_publish = commit_mod.Committer.publish_staged
    raced: list = []

    def publish_after_another_writer(self, staging):
        if not raced:  # this batch's publish, not the other writer's own
            raced.append(None)
            raced[0] = producer.register([products[5]], catalog=str(root), collection="c", workers=1)
        return real_publish(self, staging)

    monkeypatch.setattr(commit_mod.Committer, "publish_staged", publish_after_another_writer)
    results = producer.register(products, catalog=str(root), collection="c", workers=_workers(path))
    monkeypatch.undo()

    assert [r.action for r in raced[0]] == ["created"]
    actions = [r.action for r in results]
    # the other writer's document, same product: kept as it is (not rewritten:
    # the item's folder holds only its document). Its link came after this
    # batch's look at the collection, which (in the group commit) says which
    # items this writer must announce; the other writer, in this process,
    # made the item and linked it, so this one does not count it as its own
    # creation (was: both said created in the batch path); the pipelined path
    # reads the collection again after its items are durable and sees it linked
    assert actions[5] == "unchanged"
    assert actions[:5] + actions[6:] == ["unchanged"] + ["created"] * (COUNT - 2)
    assert _linked(root) == _expected_links(_ids(products))
    assert not _temps(root)
    assert [str(p) for p in producer.validate_catalog(str(root))] == []


def test_another_product_created_under_a_staged_id_meanwhile_is_not_overwritten(
    products, tmp_path, monkeypatch
):
    root = tmp_path / "catalog"
    producer.register([products[0]], catalog=str(root), collection="c")
    other = rasters.write_tile(tmp_path / "elsewhere", Path(products[5]).name, 50.0, 50.0, size=8, pixel=0.05)
    real_publish = commit_mod.Committer.publish_staged
    raced: list = []

    def publish_after_another_writer(self, staging):
        if not raced:  # this batch's publish, not the other writer's own
            raced.append(None)
            raced[0] = producer.register([str(other)], catalog=str(root), collection="c", workers=1)
        return real_publish(self, staging)

    monkeypatch.setattr(commit_mod.Committer, "publish_staged", publish_after_another_writer)
    results = producer.register(products, catalog=str(root), collection="c", workers=1)
    monkeypatch.undo()

    assert [r.action for r in raced[0]] == ["created"]
    assert results[5].action == "error" and results[5].error_type == "input"
    assert str(other) in results[5].error  # names the product that holds the id
    item = json.loads((root / "c" / _ids(products)[5] / f"{_ids(products)[5]}.json").read_text())
    assert item["assets"]["data"]["href"].endswith(str(other))  # the other writer's item stands
    assert not _temps(root)
    assert [str(p) for p in producer.validate_catalog(str(root))] == []


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("where", ["before-publish", "after-3-names"])
def test_a_process_killed_in_the_staged_writes_leaves_what_a_rerun_completes(
    path, where, products, tmp_path, monkeypatch
):
    root = tmp_path / "catalog"
    producer.register([products[0]], catalog=str(root), collection="c")
    # a kill runs no cleanup: the temp files of what was staged stay
    monkeypatch.setattr(local_mod.Staging, "discard", lambda self: None)
    monkeypatch.setattr(local_mod.Staging, "_drop", lambda self, staged, prune=True: None)
    if where == "before-publish":

        def killed(self, staging):
            raise SimulatedKill("killed with the batch staged")

        monkeypatch.setattr(commit_mod.Committer, "publish_staged", killed)
    else:
        real_replace = os.replace
        named = []

        real_link = os.link

        def replace(src, dst, *args, **kwargs):
            real_replace(src, dst, *args, **kwargs)
            if ".stac-producer.tmp." in str(src) and str(dst).endswith(".json") and "/c/s" in str(dst):
                named.append(dst)
                if len(named) == 3:
                    raise SimulatedKill("killed after 3 items were named")

        def link(src, dst, *args, **kwargs):  # a staged item is named by a hard link (create-only)
            real_link(src, dst, *args, **kwargs)
            if ".stac-producer.tmp." in str(src) and str(dst).endswith(".json") and "/c/s" in str(dst):
                named.append(dst)
                if len(named) == 3:
                    raise SimulatedKill("killed after 3 items were named")

        monkeypatch.setattr(os, "replace", replace)
        monkeypatch.setattr(os, "link", link)
    with pytest.raises(SimulatedKill):
        producer.register(products, catalog=str(root), collection="c", workers=_workers(path))
    monkeypatch.undo()

    # nothing new is linked; every item name there is points at a whole
    # document (unlinked: what a kill in a batch's item writes always left)
    assert _linked(root) == _expected_links(_ids(products)[:1])
    named_items = sorted(p for p in (root / "c").glob("s*/s*.json"))
    assert len(named_items) == (1 if where == "before-publish" else 4)
    for item in named_items:
        assert json.loads(item.read_text())["type"] == "Feature"
    problems = [str(p) for p in producer.validate_catalog(str(root)) if p.is_error]
    orphans = [
        f"c/{p.parent.name}/{p.name}: [orphan] no document links it (reconcile(fix=True) links it)"
        for p in named_items[1:]
    ]
    assert sorted(problems) == sorted(orphans)
    # hidden, for the sweeps of dead writers' files; "after-3-names" is killed
    # right after the third item's link, before its temp name is removed:
    # that temp name is left too, a second name of the whole named document
    left = 1 if where == "after-3-names" else 0
    assert len(_temps(root)) == COUNT - len(named_items) + left
    if left:
        inodes = {p.stat().st_ino for p in named_items}
        assert sum(t.stat().st_ino in inodes for t in _temps(root)) == 1
    again = producer.register(products, catalog=str(root), collection="c", workers=_workers(path))
    assert all(r.ok for r in again)
    assert _linked(root) == _expected_links(_ids(products))
    assert [str(p) for p in producer.validate_catalog(str(root))] == []


def test_durability_os_stages_without_any_flush(products, tmp_path, monkeypatch):
    root = tmp_path / "catalog"
    producer.register([products[0]], catalog=str(root), collection="c")
    rec = _Recorder(root, monkeypatch)
    published: list[int] = []
    real_publish = local_mod.Staging.publish

    def publish(self):
        outcomes = real_publish(self)
        published.append(len(outcomes))
        return outcomes

    monkeypatch.setattr(local_mod.Staging, "publish", publish)
    results = producer.register(products, catalog=str(root), collection="c", durability="os")
    monkeypatch.undo()

    assert [r.action for r in results] == ["unchanged"] + ["created"] * (COUNT - 1)
    assert sum(published) == COUNT - 1  # staged, and named without any flush
    assert not [e for e in rec.events if e[0] in ("fsync", "syncfs")]
    assert _linked(root) == _expected_links(_ids(products))

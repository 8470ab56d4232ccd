"""Readers of a partition (search, read_mirror/diff, compaction) racing a
compaction, and search over a base ruled out by its statistics next to a
leftover fragment.

A compaction writes the merged base, then deletes the fragments it folded.
A reader that read the base before that write and listed the fragments
after the deletes saw the folded rows in neither: items went missing from a
search with no error (1 write in ~33 compacts). The compaction is run here
at each point of the reader's reads of the partition, through a real local
store whose reads of the mirror run it once.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

import producer
from producer import mirror
from producer.errors import ConflictError
from producer.mirror import compact, list_fragments, read_mirror, rebuild
from producer.query import search
from producer.store import open_store
from tests import rasters

KEY = "c/items.parquet"
FRAGMENTS = "c/items-fragments"


class CompactsDuringRead:
    """A real store whose ``nth`` read of partition ``c`` (its fragments'
    LIST, a GET or local open of its base or of a fragment) is followed by
    a compaction of that partition (``every``: after each such read that is
    a LIST, with a new fragment written first, so compactions never stop).
    ``local_reads=False`` hides ``open_read``: every file is read with
    ``get``, as on S3. Everything else is the wrapped store's."""

    def __init__(self, inner: Any, nth: int = 0, *, every: bool = False, local_reads: bool = True) -> None:
        self.inner, self.nth, self.every, self.local_reads = inner, nth, every, local_reads
        self.url, self.concurrent_safe = inner.url, inner.concurrent_safe
        self.reads: list[str] = []
        self.compactions = 0
        if local_reads:
            self.open_read = self._open_read

    def __getattr__(self, name: str) -> Any:
        if name == "open_read" and not self.local_reads:
            raise AttributeError(name)
        return getattr(self.inner, name)

    def _read(self, what: str) -> None:
        if not (what.startswith((FRAGMENTS, KEY)) or what == f"list:{FRAGMENTS}"):
            return
        self.reads.append(what)
        if self.every and what.startswith("list:"):
            frag = sorted(list_fragments(self.inner, KEY))
            if frag:  # the same rows again under a new name: something to fold each time
                data, _ = self.inner.get(frag[-1])
                compact(self.inner, KEY)
                self.inner.put(f"{FRAGMENTS}/99999999T000000{self.compactions:06d}Z-x.ndjson", data)
                self.compactions += 1
        elif len(self.reads) == self.nth:
            compact(self.inner, KEY)
            self.compactions += 1

    def list(self, prefix: str = "") -> Any:
        out = list(self.inner.list(prefix))
        self._read(f"list:{prefix}")
        return iter(out)

    def get(self, key: str) -> tuple[bytes, str]:
        out = self.inner.get(key)
        self._read(key)
        return out

    def _open_read(self, key: str) -> Any:
        handle = self.inner.open_read(key)
        self._read(key)
        return handle


@pytest.fixture()
def base_and_fragment(tmp_path: Path) -> Path:
    """A flat collection ``c``: a base holding two items, a fragment a third."""
    data = tmp_path / "data"
    old = [str(rasters.write_tile(data, f"old{i}_2024010{i + 1}.tif", 5.0 + i, 45.0)) for i in range(2)]
    cat = tmp_path / "cat"
    producer.register(old, catalog=str(cat), collection="c")
    rebuild(open_store(str(cat)), "c")
    new = str(rasters.write_tile(data, "new_20240105.tif", 7.0, 45.0))
    producer.register([new], catalog=str(cat), collection="c")
    assert len(list_fragments(open_store(str(cat)), KEY)) == 1
    return cat


ALL = ["new_20240105", "old0_20240101", "old1_20240102"]


@pytest.mark.parametrize("local_reads", [True, False], ids=["open_read", "get"])
@pytest.mark.parametrize("nth", [1, 2, 3], ids=["after-1st-read", "after-2nd-read", "after-3rd-read"])
def test_search_racing_a_compaction_finds_every_item(
    base_and_fragment: Path, tmp_path: Path, nth: int, local_reads: bool
) -> None:
    """Before: a compaction between the base read and the LIST (or between
    the LIST and the fragment's GET) lost the fragment's item: 2 of 3."""
    copy = tmp_path / f"cat-{nth}-{local_reads}"
    shutil.copytree(base_and_fragment, copy)
    store = CompactsDuringRead(open_store(str(copy)), nth, local_reads=local_reads)
    found = search(store)
    assert store.compactions == 1
    assert sorted(f["id"] for f in found["features"]) == ALL, store.reads
    assert found["numberMatched"] == 3


@pytest.mark.parametrize("nth", [1, 2, 3], ids=["after-1st-read", "after-2nd-read", "after-3rd-read"])
def test_read_mirror_racing_a_compaction_reads_every_item(
    base_and_fragment: Path, tmp_path: Path, nth: int
) -> None:
    """read_partition (read_mirror, diff, compact) had the same window."""
    copy = tmp_path / f"cat-{nth}"
    shutil.copytree(base_and_fragment, copy)
    store = CompactsDuringRead(open_store(str(copy)), nth)
    items, _ = read_mirror(store, KEY)
    assert store.compactions == 1
    assert sorted(items) == ALL, store.reads
    assert mirror.diff(store, "c").clean


def test_readers_give_up_with_a_named_error_when_compactions_never_stop(
    base_and_fragment: Path, tmp_path: Path
) -> None:
    """A partition compacted under the reader at every attempt: a bounded
    number of reads, then an error naming the file and what to do."""
    for read in (lambda s: search(s), lambda s: read_mirror(s, KEY)):
        copy = tmp_path / f"cat-{len(list(tmp_path.iterdir()))}"
        shutil.copytree(base_and_fragment, copy)
        store = CompactsDuringRead(open_store(str(copy)), every=True)
        with pytest.raises(ConflictError, match=r"c/items.parquet was compacted 5 times while it was read"):
            read(store)
        assert store.compactions == mirror.READ_ATTEMPTS


def test_a_quiet_partition_is_read_with_one_list_and_one_read_per_file(base_and_fragment: Path) -> None:
    """No compaction: the same requests as before the retry (one LIST, the
    base, each fragment), only the LIST comes first."""
    store = CompactsDuringRead(open_store(str(base_and_fragment)))
    search(store)
    assert store.reads == [f"list:{FRAGMENTS}", KEY, list_fragments(store.inner, KEY)[0]]


def test_a_leftover_fragment_older_than_the_base_is_hidden_where_the_base_is_ruled_out(
    tmp_path: Path,
) -> None:
    """A fragment holding an older version of an item the base holds newer
    (the reprocessed product's mirror write failed, then a rebuild was
    killed before deleting the fragments it folded): a search whose box the
    base's statistics rule out returned the old version from the fragment,
    while diff said clean. Now the base's stamps hide it."""
    data, cat = tmp_path / "data", tmp_path / "cat"
    tif = str(rasters.write_tile(data, "x_20240105.tif", 5.0, 45.0))  # at A
    producer.register([tif], catalog=str(cat), collection="c")
    store = open_store(str(cat))
    (old,) = list_fragments(store, KEY)
    old_bytes = store.get(old)[0]
    rasters.write_tile(data, "x_20240105.tif", 100.0, 10.0)  # reprocessed: now at B
    producer.register([tif], catalog=str(cat), collection="c")
    rebuild(store, "c")  # the base holds x at B; the fragments are folded
    store.put(old, old_bytes)  # the fragment of x at A left over (as after the two failures)
    assert mirror.diff(store, "c").clean  # readers of the whole partition resolve it right
    assert search(str(cat), bbox="4,44,6,46")["features"] == []  # at A, where x no longer is
    assert search(str(cat), bbox="4,44,6,46", datetime="2024-01-05")["features"] == []
    (found,) = search(str(cat), bbox="99,9,101,11")["features"]
    assert found["bbox"][0] == pytest.approx(100.0)

"""Many writers, conflicts and crashes, on the local filesystem and on S3.

Writers are real processes (spawn); the S3 endpoint is the moto server on
127.0.0.1. Faults are injected by wrapping a real store, never by replacing it.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import os
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin

import producer
from producer.catalog.documents import exact_extent
from producer.commit import Committer
from producer.errors import ConflictError, PreconditionFailed
from producer.options import flag_spelling
from producer.store import open_store
from producer.validate import default_validator
from tests.trees import assert_stac_valid_tree

WRITERS = 8
#: Enough commits per writer for all of them to overlap once they start
#: together (the test asserts that their writes did conflict); 50 took minutes
#: on S3 without finding more (collection documents grow with every item).
PER_WRITER = 15


def write_tile(path: Path, lon: float, lat: float) -> Path:
    with rasterio.open(
        path,
        "w",
        driver="GTiff",
        width=8,
        height=8,
        count=1,
        dtype="uint8",
        crs="EPSG:4326",
        transform=from_origin(lon, lat, 0.05, 0.05),
    ) as dst:
        dst.write(np.full((1, 8, 8), 7, dtype="uint8"))
    return path


@pytest.fixture(scope="module")
def tiles(tmp_path_factory) -> list[list[str]]:
    """WRITERS x PER_WRITER distinct tiles: own place and date each."""
    folder = tmp_path_factory.mktemp("tiles")
    out = []
    for w in range(WRITERS):
        share = []
        for i in range(PER_WRITER):
            day = date(2024, 1, 1) + timedelta(days=w * PER_WRITER + i)
            path = folder / f"w{w}_{i:02d}_{day:%Y%m%d}.tif"
            share.append(str(write_tile(path, -20.0 + i * 0.8, 60.0 - w * 5.0)))
        out.append(share)
    return out


# --- helpers run in child processes (module level so spawn can import them) ----------


class ConflictCounting:
    """A real store that counts the conditional writes it saw lose a race."""

    def __init__(self, inner):
        self.inner, self.url, self.concurrent_safe = inner, inner.url, inner.concurrent_safe
        self.conflicts = 0

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def put(self, key, data, **kwargs):
        try:
            return self.inner.put(key, data, **kwargs)
        except PreconditionFailed:
            self.conflicts += 1
            raise


_start: Any = None


def _init_writer(start: Any) -> None:
    global _start
    _start = start


def _writer(
    catalog: str, options: dict | None, files: list[str]
) -> tuple[list[tuple[str, str, str | None]], int]:
    """Register ``files`` one commit each (the most contention), starting
    together with the other writers; return the outcomes and the conflicts seen."""
    store = ConflictCounting(open_store(catalog, options))
    _start.wait(120)
    out = []
    for path in files:
        (res,) = producer.register([path], catalog=store, collection="c")
        out.append((res.id, res.action, res.error))
    return out, store.conflicts


class CrashBeforeParent:
    """A real store that kills the process when the parent update is attempted."""

    def __init__(self, inner):
        self.inner = inner
        self.url = inner.url
        self.concurrent_safe = inner.concurrent_safe

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def put(self, key, data, **kwargs):
        if key.endswith("collection.json"):
            os._exit(3)
        return self.inner.put(key, data, **kwargs)


def _crashing_writer(catalog: str, options: dict | None, path: str) -> None:
    store = CrashBeforeParent(open_store(catalog, options))
    producer.register([path], catalog=store, collection="c")


# --- fixtures -----------------------------------------------------------------------


@pytest.fixture(params=["local", "s3"])
def backend(request, tmp_path):
    """(catalog url, storage options, reader) for a fresh catalog on each backend."""
    if request.param == "local":
        root = tmp_path / "catalog"
        return str(root), None, lambda key: json.loads((root / key).read_text())
    server = request.getfixturevalue("s3_server")
    bucket = server.new_bucket()
    client = server.client()

    def read(key):
        return json.loads(client.get_object(Bucket=bucket, Key=f"stac/{key}")["Body"].read())

    return f"s3://{bucket}/stac", server.storage_options, read


# --- tests --------------------------------------------------------------------------


@pytest.mark.slow
def test_many_writers_lose_nothing(backend, tiles):
    catalog, options, read = backend
    ctx = mp.get_context("spawn")
    # one task per worker: each waits at the barrier until all eight are in
    with ctx.Pool(WRITERS, initializer=_init_writer, initargs=(ctx.Barrier(WRITERS),)) as pool:
        done = pool.starmap(_writer, [(catalog, options, share) for share in tiles], chunksize=1)
    outcomes = [share for share, _ in done]
    assert sum(conflicts for _, conflicts in done) > 0  # the writers did race for the same documents
    flat = [o for share in outcomes for o in share]
    assert [o for o in flat if o[1] != "created"] == []
    ids = sorted(o[0] for o in flat)
    assert len(ids) == WRITERS * PER_WRITER

    coll = read("c/collection.json")
    hrefs = [link["href"] for link in coll["links"] if link["rel"] == "item"]
    assert len(hrefs) == len(set(hrefs)) == len(ids)  # each linked exactly once
    assert sorted(h.split("/")[1] for h in hrefs) == ids
    items = [read(f"c/{i}/{i}.json") for i in ids]
    assert coll["extent"] == exact_extent(items)  # no lost extent update
    root = read("catalog.json")
    assert [l["href"] for l in root["links"] if l["rel"] == "child"] == ["./c/collection.json"]
    assert producer.validate_catalog(catalog, storage_options=options) == []
    if options is None:
        assert_stac_valid_tree(Path(catalog))


def test_crash_between_item_and_parent_leaves_a_harmless_orphan(backend, tiles):
    catalog, options, read = backend
    first, second = tiles[0][0], tiles[0][1]
    producer.register([first], catalog=catalog, collection="c", storage_options=options)
    ctx = mp.get_context("spawn")
    proc = ctx.Process(target=_crashing_writer, args=(catalog, options, second))
    proc.start()
    proc.join(120)
    assert proc.exitcode == 3  # died at the parent update, after writing the item

    orphan_id = Path(second).stem
    assert read(f"c/{orphan_id}/{orphan_id}.json")["id"] == orphan_id
    problems = producer.validate_catalog(catalog, storage_options=options)
    # readers see a consistent catalog: every document valid, no dangling link
    assert [(p.kind, p.key) for p in problems] == [("orphan", f"c/{orphan_id}/{orphan_id}.json")]

    report = producer.reconcile(catalog, storage_options=options, fix=True)
    assert report.fixed.get("orphan") == 1 and report.remaining == []
    coll = read("c/collection.json")
    assert f"./{orphan_id}/{orphan_id}.json" in [l["href"] for l in coll["links"]]
    items = [read(f"c/{i}/{i}.json") for i in (Path(first).stem, orphan_id)]
    assert coll["extent"] == exact_extent(items)


class Interfering:
    """A real store where another writer changes ``target`` just before our
    conditional write to it, ``times`` times (or forever)."""

    def __init__(self, inner, target: str, times: int | None):
        self.inner, self.target, self.times = inner, target, times
        self.url, self.concurrent_safe = inner.url, inner.concurrent_safe
        self.interfered = 0

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def put(self, key, data, **kwargs):
        if (
            key == self.target
            and kwargs.get("if_version")
            and (self.times is None or self.interfered < self.times)
        ):
            self.interfered += 1
            doc = json.loads(self.inner.get(key)[0])
            doc["links"].append(
                {
                    "rel": "item",
                    "href": f"./other{self.interfered}/other{self.interfered}.json",
                    "type": "application/geo+json",
                }
            )
            self.inner.put(key, json.dumps(doc).encode())  # the other writer wins the race
        return self.inner.put(key, data, **kwargs)


def test_conflicts_are_retried_and_both_changes_survive(backend, tiles):
    catalog, options, read = backend
    producer.register([tiles[1][0]], catalog=catalog, collection="c", storage_options=options)
    store = Interfering(open_store(catalog, options), "c/collection.json", times=3)
    committer = Committer(store, default_validator().check, backoff=0.001)
    second = tiles[1][1]
    from producer.api import register

    (res,) = register([second], catalog=store, collection="c")
    assert res.action == "created", res.error
    assert store.interfered == 3
    hrefs = [l["href"] for l in read("c/collection.json")["links"] if l["rel"] == "item"]
    stem = Path(second).stem
    assert f"./{stem}/{stem}.json" in hrefs  # our link
    assert {"./other1/other1.json", "./other2/other2.json", "./other3/other3.json"} <= set(hrefs)
    del committer


def test_exhausted_retries_give_a_clear_error(backend, tiles):
    catalog, options, read = backend
    producer.register([tiles[2][0]], catalog=catalog, collection="c", storage_options=options)
    store = Interfering(open_store(catalog, options), "c/collection.json", times=None)
    committer = Committer(store, default_validator().check, max_retries=3, backoff=0.001)

    def add_link(doc):
        doc["links"].append({"rel": "item", "href": "./x/x.json", "type": "application/geo+json"})
        return doc

    with pytest.raises(ConflictError, match=r"c/collection.json: gave up after 4 attempts"):
        committer.cas("c/collection.json", add_link, expect=("Collection",))
    assert committer.conflicts == 4

    (res,) = producer.register([tiles[2][1]], catalog=store, collection="c", max_retries=2)
    assert res.action == "error"
    assert "gave up after 3 attempts" in res.error and "reconcile" in res.error
    # the fix names the option as each caller spells it, never a bare keyword in the CLI
    assert res.hint is not None and res.hint.option == "max_retries"
    assert "Fix it with max_retries=6 " in res.error
    cli = res.error_for(flag_spelling) or ""
    assert "Fix it with --max-retries 6 " in cli and "max_retries" not in cli


def test_non_stac_existing_root_is_not_overwritten(backend, tiles, tmp_path):
    catalog, options, read = backend
    store = open_store(catalog, options)
    store.put("catalog.json", b'{"hello": "not stac"}')
    (res,) = producer.register([tiles[3][0]], catalog=catalog, collection="c", storage_options=options)
    assert res.action == "error" and "catalog.json" in res.error
    assert read("catalog.json") == {"hello": "not stac"}
    assert sorted(store.list("")) == ["catalog.json"]


@pytest.mark.parametrize("partition", [None, "year/month"])
def test_threads_registering_the_same_product_at_once_report_one_created(backend, tmp_path, partition):
    """Four threads of one process register the same new product at once.
    One item is made; each thread that found it written by another (and
    unlinked yet, since that one was still linking it) counted the link as
    its own creation: four ``created`` (two with partitions), so a pipeline
    summing the counts saw four new items. The thread whose create-only
    write made the item reports ``created``; the others what their write
    found (``unchanged``). Three rounds, so the threads overlap."""
    import threading

    from tests.crashes import write_tile as tile_at

    url, options, read = backend
    tile = str(tile_at(tmp_path / "data", "a_20240110.tif", 6.0, 46.0))

    def register(start: threading.Barrier, catalog: str, results: list) -> None:
        start.wait()
        results.extend(
            producer.register(
                [tile], catalog=catalog, collection="c", partition=partition, storage_options=options
            )
        )

    for round_ in range(3):
        catalog, start, results = f"{url}/round{round_}", threading.Barrier(4), []
        threads = [threading.Thread(target=register, args=(start, catalog, results)) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(120)
        assert all(r.ok for r in results), [r.error for r in results]
        actions = sorted(str(r.action) for r in results)
        assert actions == ["created", "unchanged", "unchanged", "unchanged"], (round_, actions)
        assert producer.validate_catalog(catalog, storage_options=options) == []
        key = "c/2024/01/a_20240110/a_20240110.json" if partition else "c/a_20240110/a_20240110.json"
        assert read(f"round{round_}/{key}")["id"] == "a_20240110"


def test_a_linked_creation_leaves_no_collected_object_behind(tmp_path, monkeypatch):
    """A new item's creation stays listed for RECENT_CREATION seconds after
    it is linked, so a thread that lost to it does not count it as its own.
    It was listed as a ``_Creation`` in a list per item: objects alive for
    10 s, which the garbage collector promoted to its oldest generation, so
    a steady stream of upserts made it sweep the whole process (one full
    collection per ~300 upserts, a third of the collector's time). The
    listing is now plain keys and times: no ``_Creation`` outlives its
    register, the listing still answers within the window, and is pruned
    after it."""
    import gc

    from producer import commit
    from tests.crashes import write_tile as tile_at

    def alive() -> int:
        gc.collect()
        return sum(1 for o in gc.get_objects() if type(o) is commit._Creation)

    before = alive()
    data, catalog = tmp_path / "data", str(tmp_path / "cat")
    tiles = [str(tile_at(data, f"t{n}_20240110.tif", 6.0 + n, 46.0)) for n in range(12)]
    for tile in tiles:
        (result,) = producer.register([tile], catalog=catalog, collection="c")
        assert result.action == "created", result.error
    assert alive() - before <= 1  # the one shared "linked" stand-in at most
    listed = [k for (url, k) in commit._LINKED if url.endswith("/cat")]
    assert len(listed) == 12  # each still seen as linked by this process, for RECENT_CREATION s
    monkeypatch.setattr(commit, "RECENT_CREATION", 0.0)
    (result,) = producer.register([tiles[0]], catalog=str(tmp_path / "other"), collection="c")
    assert result.action == "created"
    assert not [k for (url, k) in commit._LINKED if url.endswith("/cat")]  # pruned after the window


def test_threads_registering_the_same_multi_asset_item_at_once_report_it_created_once(tmp_path):
    """The same with a multi-asset item (``group``: two bands, one item):
    every thread reported both bands ``created`` (eight for one item). The
    thread whose merge made the item reports its bands ``created``, the
    others ``unchanged``."""
    import threading

    from tests.crashes import write_tile as tile_at

    data = tmp_path / "data"
    for band in ("B01", "B02"):
        tile_at(data / "scene_a", f"{band}.tif", 6.0, 46.0)
    group = r"(?P<id>scene_[a-z0-9]+)/(?P<asset>[^/]+)\.tif$"

    def register(start: threading.Barrier, catalog: str, results: list) -> None:
        start.wait()
        results.extend(
            producer.register(
                [str(data)], catalog=catalog, collection="g", group=group, datetime="2024-01-01T00:00:00Z"
            )
        )

    for round_ in range(3):
        catalog, start, results = str(tmp_path / f"cat{round_}"), threading.Barrier(4), []
        threads = [threading.Thread(target=register, args=(start, catalog, results)) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(120)
        assert all(r.ok for r in results), [r.error for r in results]
        actions = sorted(str(r.action) for r in results)
        assert actions == ["created"] * 2 + ["unchanged"] * 6, (round_, actions)
        assert producer.validate_catalog(catalog) == []

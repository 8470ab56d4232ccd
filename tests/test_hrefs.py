"""Asset hrefs relative to the item when the product lies under the catalog root.

A catalog whose data sit inside its own folder (or bucket prefix) is served
over HTTP or copied elsewhere as one tree: its asset hrefs must survive
that, so they are written relative to the item document. Every reader
(identity checks, removal by path, reconcile, --check-assets, group merges,
the sinks and search) resolves them against the item's location. Real
rasters, a real HTTP server on 127.0.0.1, real PostgreSQL (tests/pgserver.py).
"""

from __future__ import annotations

import functools
import http.server
import json
import threading
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import psycopg
import pytest

import producer
from producer import hrefs
from producer.changes import Change
from producer.hrefs import absolute_href, relative_to_item
from producer.sinks.notify import CallbackSink
from tests.rasters import write_tile
from tests.s3server import S3Server
from tests.trees import assert_stac_valid_tree, tree_hash


def _item(catalog: Path, item_id: str, collection: str = "c") -> dict[str, Any]:
    return json.loads((catalog / collection / item_id / f"{item_id}.json").read_text())


@pytest.fixture
def site(tmp_path: Path) -> Path:
    """A folder holding the catalog AND its data (``data/``): the layout served as one site."""
    root = tmp_path / "site"
    write_tile(root / "data", "a_20240110.tif", 6.0, 46.0)
    write_tile(root / "data", "b_20240215.tif", 7.0, 46.5)
    return root


def test_product_under_the_catalog_root_gets_an_href_relative_to_the_item(site: Path) -> None:
    results = producer.register(
        [site / "data" / "a_20240110.tif"], catalog=str(site), collection="c", thumbnail=True
    )
    assert [r.action for r in results] == ["created"]
    item = _item(site, "a_20240110")
    assert item["assets"]["data"]["href"] == "../../data/a_20240110.tif"
    assert item["assets"]["thumbnail"]["href"].startswith("./")  # the thumbnail stays relative
    assert_stac_valid_tree(site)


def test_product_outside_the_catalog_root_keeps_its_absolute_href(tmp_path: Path, site: Path) -> None:
    outside = write_tile(tmp_path / "elsewhere", "o_20240301.tif", 6.0, 46.0)
    catalog = tmp_path / "catalog"
    producer.register([outside], catalog=str(catalog), collection="c")
    assert _item(catalog, "o_20240301")["assets"]["data"]["href"] == str(outside)
    # a sibling folder whose name starts like the root's is not under it
    assert relative_to_item("/x/site/c/i/i.json", "/x/site", "/x/site2/a.tif") == "/x/site2/a.tif"
    assert_stac_valid_tree(catalog)


def test_absolute_hrefs_option_keeps_products_under_the_root_absolute(site: Path) -> None:
    path = site / "data" / "a_20240110.tif"
    producer.register([path], catalog=str(site), collection="c", absolute_hrefs=True, thumbnail=True)
    item = _item(site, "a_20240110")
    assert item["assets"]["data"]["href"] == str(path)
    assert item["assets"]["thumbnail"]["href"].startswith("./")  # in the catalog: relative either way
    assert_stac_valid_tree(site)


def test_rerun_over_relative_hrefs_writes_nothing(site: Path) -> None:
    products = sorted((site / "data").glob("*.tif"))
    producer.register(products, catalog=str(site), collection="c", thumbnail=True)
    before = tree_hash(site)
    again = producer.register(products, catalog=str(site), collection="c", thumbnail=True)
    assert [r.action for r in again] == ["unchanged", "unchanged"]
    assert tree_hash(site) == before


def test_dry_run_over_relative_items_says_unchanged(site: Path) -> None:
    products = sorted((site / "data").glob("*.tif"))
    producer.register(products, catalog=str(site), collection="c", thumbnail=True)
    again = producer.register(products, catalog=str(site), collection="c", thumbnail=True, dry_run=True)
    assert [r.action for r in again] == ["unchanged", "unchanged"]


def test_same_product_in_an_old_absolute_item_is_not_an_identity_conflict(site: Path) -> None:
    """An item written before (absolute href) and a new registration
    (relative href) name the same product: no conflict, and the update
    writes the relative form."""
    path = site / "data" / "a_20240110.tif"
    producer.register([path], catalog=str(site), collection="c", absolute_hrefs=True)
    again = producer.register([path], catalog=str(site), collection="c", datetime="2024-01-11T00:00:00Z")
    assert [r.action for r in again] == ["updated"], again[0].error
    assert _item(site, "a_20240110")["assets"]["data"]["href"] == "../../data/a_20240110.tif"
    other = write_tile(site / "other", "a_20240110.tif", 6.0, 46.0)
    clash = producer.register([other], catalog=str(site), collection="c")
    assert not clash[0].ok and "is taken" in str(clash[0].error)


def test_item_moved_to_another_partition_keeps_its_identity_and_a_working_href(site: Path) -> None:
    """The old and the new item lie at different depths, so their relative
    hrefs differ: the identity check compares them resolved."""
    path = site / "data" / "a_20240110.tif"
    producer.register([path], catalog=str(site), collection="c", partition="year/month")
    moved = producer.register([path], catalog=str(site), collection="c", datetime="2023-05-01T00:00:00Z")
    assert [r.action for r in moved] == ["updated"], moved[0].error
    assert not (site / "c" / "2024" / "01" / "a_20240110").exists()
    item = json.loads((site / "c" / "2023" / "05" / "a_20240110" / "a_20240110.json").read_text())
    assert item["assets"]["data"]["href"] == "../../../../data/a_20240110.tif"
    assert_stac_valid_tree(site)


def test_remove_by_product_path_finds_the_item_with_a_relative_href(site: Path) -> None:
    path = site / "data" / "a_20240110.tif"
    producer.register([path], catalog=str(site), collection="c")
    kept = producer.remove("a_20240110", catalog=str(site), collection="c", product=str(site / "x.tif"))
    assert kept.action == "kept"
    gone = producer.remove("a_20240110", catalog=str(site), collection="c", product=str(path))
    assert gone.action == "removed"
    assert not (site / "c" / "a_20240110").exists()
    assert_stac_valid_tree(site)


def test_reconcile_resolves_relative_hrefs_no_false_missing_products_or_assets(site: Path) -> None:
    producer.register(
        sorted((site / "data").glob("*.tif")), catalog=str(site), collection="c", thumbnail=True
    )
    report = producer.reconcile(str(site), data=str(site / "data"), collection="c", check_assets=True)
    kinds = [p.kind for p in report.problems]
    assert "missing-asset" not in kinds and "missing-product" not in kinds, report.problems
    # the thumbnail and the data are both checked now: delete one of each
    (site / "data" / "b_20240215.tif").unlink()
    next((site / "c" / "a_20240110").glob("*.png")).unlink()
    report = producer.reconcile(str(site), check_assets=True)
    missing = sorted(p.message for p in report.problems if p.kind == "missing-asset")
    assert len(missing) == 2, report.problems
    assert "'thumbnail'" in missing[0] + missing[1] and str(site / "data" / "b_20240215.tif") in " ".join(
        missing
    )
    validation = producer.validate_catalog(str(site), check_assets=True)
    assert sum(p.kind == "missing-asset" for p in validation) == 2


def test_group_merge_across_runs_keeps_every_relative_asset(site: Path) -> None:
    scene = site / "scenes" / "S1_20240110"
    for band in ("B02", "B03"):
        write_tile(scene, f"{band}.tif", 6.0, 46.0)
    group = r"(?P<id>S1_\d{8})/(?P<asset>[^/]+)\.tif$"
    first = producer.register([scene / "B02.tif"], catalog=str(site), collection="c", group=group)
    second = producer.register([scene / "B03.tif"], catalog=str(site), collection="c", group=group)
    assert [r.action for r in first + second] == ["created", "updated"], second[0].error
    item = _item(site, "S1_20240110")
    assert {k: a["href"] for k, a in item["assets"].items()} == {
        "B02": "../../scenes/S1_20240110/B02.tif",
        "B03": "../../scenes/S1_20240110/B03.tif",
    }
    again = producer.register([scene / "B02.tif"], catalog=str(site), collection="c", group=group)
    assert [r.action for r in again] == ["unchanged"]
    removed = producer.remove(
        "S1_20240110", catalog=str(site), collection="c", product=str(scene / "B02.tif")
    )
    assert removed.action == "updated" and set(_item(site, "S1_20240110")["assets"]) == {"B03"}
    assert_stac_valid_tree(site)


def test_search_output_and_pgstac_rows_carry_absolute_hrefs(site: Path, pgstac_dsn: str) -> None:
    path = site / "data" / "a_20240110.tif"
    producer.register([path], catalog=str(site), collection="c", pgstac=pgstac_dsn, thumbnail=True)
    assert _item(site, "a_20240110")["assets"]["data"]["href"].startswith("../")
    found = producer.search(str(site), ids="a_20240110")["features"]
    assert [f["assets"]["data"]["href"] for f in found] == [str(path)]
    thumb = found[0]["assets"]["thumbnail"]["href"]
    assert thumb.startswith(str(site / "c" / "a_20240110") + "/") and Path(thumb).is_file()

    def row_href() -> str:
        with psycopg.connect(pgstac_dsn) as conn:
            row = conn.execute("SELECT content FROM pgstac.items WHERE id = 'a_20240110'").fetchone()
        assert row is not None
        return str(row[0]["assets"]["data"]["href"])

    assert row_href() == str(path)
    with psycopg.connect(pgstac_dsn, autocommit=True) as conn:
        conn.execute("SET search_path TO pgstac, public")
        conn.execute("DELETE FROM items WHERE id = 'a_20240110'")
    producer.reconcile(str(site), fix=True, pgstac=pgstac_dsn)  # rebuilt from the catalog
    assert row_href() == str(path)


def test_change_events_carry_absolute_hrefs_on_register_update_and_remove(site: Path) -> None:
    path = site / "data" / "a_20240110.tif"
    seen: list[Change] = []
    sink = CallbackSink(seen.append, outbox_id="seen")  # a bound method needs a named outbox
    producer.register([path], catalog=str(site), collection="c", on_change=sink, thumbnail=True)
    producer.register(
        [path], catalog=str(site), collection="c", on_change=sink, datetime="2024-01-11T00:00:00Z"
    )
    producer.remove("a_20240110", catalog=str(site), collection="c", on_change=sink)
    assert [c.kind.value for c in seen] == ["created", "updated", "removed"]
    for change in seen:
        assert change.item["assets"]["data"]["href"] == str(path), change


def test_relative_hrefs_on_s3_under_the_catalog_prefix_only(s3_server: S3Server, tmp_path: Path) -> None:
    """Same bucket and prefix: relative; another prefix of the bucket: absolute."""
    bucket = s3_server.new_bucket()
    client = s3_server.client()
    client.upload_file(
        str(write_tile(tmp_path, "a_20240110.tif", 6.0, 46.0)), bucket, "stac/data/a_20240110.tif"
    )
    client.upload_file(str(write_tile(tmp_path, "b_20240215.tif", 7.0, 46.5)), bucket, "raw/b_20240215.tif")
    opts = {"client_kwargs": {"endpoint_url": s3_server.endpoint_url}}
    catalog = f"s3://{bucket}/stac"
    products = [f"s3://{bucket}/stac/data/a_20240110.tif", f"s3://{bucket}/raw/b_20240215.tif"]
    results = producer.register(
        products, catalog=catalog, collection="c", storage_options=opts, data_storage_options=opts
    )
    assert all(r.ok for r in results), [r.error for r in results]

    def stored(item_id: str) -> dict[str, Any]:
        body = client.get_object(Bucket=bucket, Key=f"stac/c/{item_id}/{item_id}.json")["Body"].read()
        return dict(json.loads(body))

    assert stored("a_20240110")["assets"]["data"]["href"] == "../../data/a_20240110.tif"
    assert stored("b_20240215")["assets"]["data"]["href"] == products[1]
    report = producer.reconcile(
        catalog, storage_options=opts, data=f"s3://{bucket}/stac/data/", collection="c", check_assets=True
    )
    kinds = [p.kind for p in report.problems]
    assert "missing-product" not in kinds and "missing-asset" not in kinds, report.problems
    gone = producer.remove(
        "a_20240110", catalog=catalog, collection="c", storage_options=opts, product=products[0]
    )
    assert gone.action == "removed"


@pytest.fixture
def served(site: Path) -> Iterator[str]:
    """``site`` served by http.server on 127.0.0.1 (a thread); yields its base URL."""
    quiet: Any = type("Quiet", (http.server.SimpleHTTPRequestHandler,), {"log_message": lambda *a: None})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(quiet, directory=str(site)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_catalog_served_over_http_finds_its_assets(site: Path, served: str) -> None:
    path = site / "data" / "a_20240110.tif"
    producer.register([path], catalog=str(site), collection="c", thumbnail=True)
    item_url = urljoin(served, "c/a_20240110/a_20240110.json")
    with urllib.request.urlopen(item_url, timeout=5) as response:
        item = json.loads(response.read())
    for key, expected in (("data", path.read_bytes()), ("thumbnail", None)):
        asset_url = urljoin(item_url, item["assets"][key]["href"])
        assert asset_url.startswith(served)
        with urllib.request.urlopen(asset_url, timeout=5) as response:
            body = response.read()
        assert response.status == 200 and (expected is None or body == expected)
        assert body[:4] in (b"II*\x00", b"\x89PNG")


def test_absolute_href_resolves_against_local_and_remote_items() -> None:
    assert absolute_href("/cat/c/x/x.json", "../../data/a%20b.tif") == "/cat/data/a b.tif"
    assert absolute_href("file:///cat/c/x/x.json", "./x.png") == "/cat/c/x/x.png"
    assert absolute_href("s3://b/cat/c/x/x.json", "../../d/a.tif") == "s3://b/cat/d/a.tif"
    assert absolute_href("/cat/c/x/x.json", "s3://b/a.tif") == "s3://b/a.tif"
    assert relative_to_item("/cat/c/x/x.json", "/cat", "/cat/data/a b#1.tif") == "../../data/a%20b%231.tif"
    assert absolute_href("/cat/c/x/x.json", "../../data/a%20b%231.tif") == "/cat/data/a b#1.tif"
    assert (
        relative_to_item("s3://b/cat/c/x/x.json", "s3://b/cat", "s3://other/cat/a.tif")
        == "s3://other/cat/a.tif"
    )


def test_relative_to_item_of_plain_paths_is_the_general_ways():
    # plain absolute paths take a shorter way (one normalisation each, the
    # item's only when the href lies under the root): over generated paths
    # with "..", ".", "//", trailing slashes, a root prefix of a sibling
    # name, and mixed with URLs, it must give exactly the general answer
    import itertools
    import random

    rng = random.Random(5)
    pieces = ["cat", "cat2", "c", "x", "..", ".", "", "data", "a b", "a%20b", "#h", "é", "s3:", "file:"]

    def path(prefix: str = "/") -> str:
        return prefix + "/".join(rng.choice(pieces) for _ in range(rng.randrange(0, 6)))

    roots = ["/cat", "/cat/", "//cat", "/", "/cat/./x/..", "file:///cat", "file:/cat", "s3://b/cat", "cat"]
    seen = set()
    for _ in range(6000):
        root = rng.choice(roots) if rng.random() < 0.5 else path()
        item = rng.choice(
            [root.rstrip("/") + "/c/x/x.json", path(), "s3://b/cat/c/x/x.json", "file:///cat/c/x.json"]
        )
        href = rng.choice(
            [
                path(),
                root.rstrip("/") + path(),
                "/cat/data/a.tif",
                "file:///cat/data/a.tif",
                "s3://b/cat/a.tif",
                "https://h/cat/a.tif?x",
                "rel/a.tif",
                "",
            ]
        )
        got = relative_to_item(item, root, href)
        assert got == hrefs._relative_to_item(item, root, href), (item, root, href)
        seen.add(got != href)
    assert seen == {True, False}
    for item, root, href in itertools.product(
        ["/cat/c/x/x.json"], ["/cat", "/cat/"], ["/cat2/a", "/cat/../cat/a", "/cat//a"]
    ):
        assert relative_to_item(item, root, href) == hrefs._relative_to_item(item, root, href)
    assert relative_to_item("/cat/c/x/x.json", "/cat", "/cat/../cat/d/a.tif") == "../../d/a.tif"
    assert relative_to_item("/cat/c/x/x.json", "/cat", "/cat2/a.tif") == "/cat2/a.tif"
    assert relative_to_item("/cat/c/x/x.json", "/cat/./", "/cat/c/x/a b#.tif") == "./a%20b%23.tif"

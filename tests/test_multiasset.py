"""Multi-asset items (issue 10, point 1): a scene written as several files
becomes one item, files of it registered apart (or at the same time) merge
into it, and removing a file removes its asset only.

Real files: a scene folder ``LE07_20240513/`` with six band GeoTIFFs (three
on a 10 m grid, three on a 20 m grid of the same tile), a QA GeoTIFF (20 m)
and a PNG thumbnail, written by rasterio here. Races are forced with
:mod:`tests.pausing`; odc-stac loads the item from local files.
"""

from __future__ import annotations

import json
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin

import producer
from producer.events import HandlerConfig, handle
from producer.store import open_store
from tests.pausing import PauseAfterGet
from tests.s3server import S3Server
from tests.trees import assert_stac_valid_tree

SCENE = "LE07_20240513"
GROUP = r"(?P<id>LE07_\d{8})/(?P<asset>[^/]+)\.(tif|png)$"
ITEM_KEY = f"scene/{SCENE}/{SCENE}.json"
ORIGIN = (500_000.0, 4_000_160.0)  # EPSG:32633
BANDS_10M = ("B02", "B03", "B04")
BANDS_20M = ("B05", "B06", "B07")
DATA_KEYS = (*BANDS_10M, *BANDS_20M, "qa")
PNG_1X1 = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360000002000001e221bc330000000049454e44ae426082"
)


def _band(path: Path, res: float, seed: int, dtype: str = "uint16") -> Path:
    size = int(160 / res)
    data = (np.arange(size * size).reshape(size, size) * 7 + seed).astype(dtype)
    with rasterio.open(
        path,
        "w",
        driver="GTiff",
        width=size,
        height=size,
        count=1,
        dtype=dtype,
        crs="EPSG:32633",
        transform=from_origin(*ORIGIN, res, res),
    ) as dst:
        dst.write(data, 1)
    return path


@pytest.fixture
def scene(tmp_path: Path) -> Path:
    """``LE07_20240513/``: 6 bands (10 m and 20 m), ``qa.tif``, ``thumbnail.png``."""
    folder = tmp_path / "data" / SCENE
    folder.mkdir(parents=True)
    for i, name in enumerate(BANDS_10M):
        _band(folder / f"{name}.tif", 10.0, i)
    for i, name in enumerate(BANDS_20M):
        _band(folder / f"{name}.tif", 20.0, 10 + i)
    _band(folder / "qa.tif", 20.0, 99, dtype="uint8")
    (folder / "thumbnail.png").write_bytes(PNG_1X1)
    return folder


def _item(catalog: Path) -> dict[str, Any]:
    return json.loads((catalog / ITEM_KEY).read_text())


def _register(paths: Any, catalog: Path | Any, **kw: Any) -> list[producer.RegisterResult]:
    where = catalog if not isinstance(catalog, Path) else str(catalog)
    return producer.register(paths, catalog=where, collection="scene", **{"group": GROUP, **kw})


def _check_full_item(item: dict[str, Any], scene: Path) -> None:
    assert sorted(item["assets"]) == sorted([*DATA_KEYS, "thumbnail"])
    for key in DATA_KEYS:
        asset = item["assets"][key]
        assert asset["roles"] == ["data"] and asset["type"].startswith("image/tiff")
        assert asset["href"] == str(scene / f"{key}.tif") and asset["title"] == f"{key}.tif"
        assert [band["name"] for band in asset["bands"]] == [key]  # odc-stac band name
        res = 10.0 if key in BANDS_10M else 20.0
        assert asset["proj:code"] == "EPSG:32633"
        assert asset["proj:transform"] == [res, 0.0, ORIGIN[0], 0.0, -res, ORIGIN[1]]
        assert asset["proj:shape"] == [int(160 / res)] * 2
    thumb = item["assets"]["thumbnail"]
    assert thumb["type"] == "image/png" and thumb["roles"] == ["thumbnail"] and "proj:code" not in thumb
    props = item["properties"]
    assert not any(k.startswith("proj:") for k in props)  # the grids differ: asset level
    assert props["datetime"] == "2024-05-13T00:00:00Z" and props["producer:group"] == GROUP
    west, south, east, north = item["bbox"]
    assert 14.99 < west < east < 15.01 and 36.1 < south < north < 36.2


def test_scene_folder_becomes_one_item_with_roles_types_and_asset_proj(
    scene: Path, catalog_dir: Path
) -> None:
    results = _register(scene, catalog_dir)
    assert [r.action for r in results] == ["created"] * 8 and {r.id for r in results} == {SCENE}
    item = _item(catalog_dir)
    _check_full_item(item, scene)
    collection = json.loads((catalog_dir / "scene" / "collection.json").read_text())
    assert [link["href"] for link in collection["links"] if link["rel"] == "item"] == [
        f"./{SCENE}/{SCENE}.json"
    ]
    assert producer.validate_catalog(str(catalog_dir)) == []
    assert_stac_valid_tree(catalog_dir)
    assert [r.action for r in _register(scene, catalog_dir)] == ["unchanged"] * 8
    # a catalog written inside the data folder: its JSON documents are not products
    inside = scene.parent / "stac"
    assert len(_register(scene.parent, inside)) == 8
    assert len(_register(scene.parent, inside)) == 8


def test_grids_that_agree_put_proj_on_the_item(scene: Path, catalog_dir: Path) -> None:
    _register([scene / f"{key}.tif" for key in BANDS_10M], catalog_dir)
    item = _item(catalog_dir)
    assert item["properties"]["proj:code"] == "EPSG:32633"
    assert item["properties"]["proj:shape"] == [16, 16]
    assert not any(k.startswith("proj:") for a in item["assets"].values() for k in a)
    assert_stac_valid_tree(catalog_dir)


def test_files_of_a_group_registered_in_separate_runs_keep_every_asset(
    scene: Path, catalog_dir: Path
) -> None:
    for path in sorted(scene.iterdir()):
        (result,) = _register(path, catalog_dir)
        assert result.ok, result.error
    item = _item(catalog_dir)
    _check_full_item(item, scene)
    one_run = catalog_dir.parent / "one_run"
    _register(scene, one_run)
    alone = _item(one_run)
    for doc in (item, alone):  # same document whatever the order the files came in
        for name in ("created", "updated"):
            doc["properties"].pop(name)
    assert item == alone
    assert_stac_valid_tree(catalog_dir)


def test_concurrent_registrations_of_one_item_keep_every_asset(scene: Path, catalog_dir: Path) -> None:
    """Writer A reads the item (B02 only), then stops; writer B adds B03; A
    resumes: its write loses the compare-and-swap, it reads again and merges
    B04 into the document that holds B03, so neither asset is wiped."""
    _register(scene / "B02.tif", catalog_dir)
    slow = PauseAfterGet(open_store(str(catalog_dir)), ITEM_KEY)
    out: dict[str, Any] = {}
    thread = threading.Thread(target=lambda: out.setdefault("a", _register(scene / "B04.tif", slow)))
    thread.start()
    assert slow.reached.wait(30)
    (b,) = _register(scene / "B03.tif", catalog_dir)
    slow.resume.set()
    thread.join(30)
    (a,) = out["a"]
    assert a.action == b.action == "updated", (a.error, b.error)
    assert sorted(_item(catalog_dir)["assets"]) == ["B02", "B03", "B04"]

    # and plain threads, every file at once (mapped tasks): all eight assets stay
    threads = [
        threading.Thread(target=_register, args=(path, catalog_dir))
        for path in sorted(scene.iterdir())
        if path.suffix == ".tif"
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    _register(scene / "thumbnail.png", catalog_dir)
    _check_full_item(_item(catalog_dir), scene)
    assert producer.validate_catalog(str(catalog_dir)) == []
    assert_stac_valid_tree(catalog_dir)


def test_removing_one_asset_keeps_the_item_and_the_last_data_asset_removes_it(
    scene: Path, catalog_dir: Path
) -> None:
    _register(scene, catalog_dir)
    first = producer.remove(
        SCENE, catalog=str(catalog_dir), collection="scene", product=str(scene / "B02.tif")
    )
    assert first.action == "updated" and "B02" in (first.reason or "")
    item = _item(catalog_dir)
    assert "B02" not in item["assets"] and len(item["assets"]) == 7
    assert_stac_valid_tree(catalog_dir)
    for key in DATA_KEYS[1:-1]:
        producer.remove(
            SCENE, catalog=str(catalog_dir), collection="scene", product=str(scene / f"{key}.tif")
        )
    # the item keeps its thumbnail while a data asset is left; the grids now agree
    assert _item(catalog_dir)["properties"]["proj:shape"] == [8, 8]
    last = producer.remove(SCENE, catalog=str(catalog_dir), collection="scene", product=str(scene / "qa.tif"))
    assert last.action == "removed"
    assert not (catalog_dir / ITEM_KEY).exists()
    collection = json.loads((catalog_dir / "scene" / "collection.json").read_text())
    assert not [link for link in collection["links"] if link["rel"] == "item"]
    assert producer.validate_catalog(str(catalog_dir)) == []


def test_removal_of_the_last_data_asset_racing_a_new_asset_keeps_the_new_one(
    scene: Path, catalog_dir: Path
) -> None:
    """The remover of B02 (the only data asset) reads the item, then a register
    adds B03 before the removal marks it: the item stays, with B03 only."""
    _register([scene / "B02.tif", scene / "thumbnail.png"], catalog_dir)
    slow = PauseAfterGet(open_store(str(catalog_dir)), ITEM_KEY)
    out: dict[str, Any] = {}
    thread = threading.Thread(
        target=lambda: out.setdefault(
            "r", producer.remove(SCENE, catalog=slow, collection="scene", product=str(scene / "B02.tif"))
        )
    )
    thread.start()
    assert slow.reached.wait(30)
    _register(scene / "B03.tif", catalog_dir)
    slow.resume.set()
    thread.join(30)
    assert out["r"].action == "updated"
    assert sorted(_item(catalog_dir)["assets"]) == ["B03", "thumbnail"]
    assert producer.validate_catalog(str(catalog_dir)) == []


def test_product_the_group_does_not_match_is_an_error_naming_it(scene: Path, catalog_dir: Path) -> None:
    stray = scene.parent / "stray.tif"
    _band(stray, 10.0, 1)
    results = _register([scene / "B02.tif", stray], catalog_dir)
    assert results[0].ok
    assert results[1].action == "error" and str(stray) in (results[1].error or "")
    assert "group" in (results[1].error or "") and results[1].hint is not None
    with pytest.raises(producer.InputError, match="named group"):
        _register(scene, catalog_dir.parent / "other", group=r"(?P<id>\w+)/")


@pytest.mark.parametrize(
    "pattern", [r"(?P<id>LE07_\d{8}/(?P<asset>\w+)\.tif$", r"(?P<idx>LE07_\d{8})/(?P<asset>\w+)\.tif$"]
)
def test_a_refused_group_pattern_is_shown_as_it_was_typed(
    scene: Path, catalog_dir: Path, pattern: str
) -> None:
    """Its repr doubled each backslash: ``\\d`` copied back from the message
    matches a backslash and a d, never a digit."""
    with pytest.raises(producer.InputError) as err:
        _register(scene, catalog_dir, group=pattern)
    assert f"'{pattern}'" in str(err.value) and repr(pattern) not in str(err.value)
    stray = scene.parent / "stray.tif"
    _band(stray, 10.0, 1)
    rx = r"(?P<id>LE08_\d{8})/(?P<asset>\w+)\.tif$"
    [result] = _register([stray], catalog_dir, group=rx)
    assert f"'{rx}'" in (result.error or "") and repr(rx) not in (result.error or "")


def test_an_item_id_whose_date_is_no_date_fails_its_products_not_the_call(
    scene: Path, catalog_dir: Path
) -> None:
    """The datetime pattern read from the item id of a group raised out of
    register (the whole call) instead of failing that item's products."""
    bad = scene.parent / "LE07_20241399"
    bad.mkdir()
    _band(bad / "B02.tif", 10.0, 1)
    results = _register(
        [scene / "B02.tif", bad / "B02.tif"], catalog_dir, datetime_pattern=r"LE07_(?P<datetime>\d{8})"
    )
    assert results[0].ok, results[0].error
    assert results[1].action == "error" and results[1].error_type == "input"
    assert str(bad / "B02.tif") in (results[1].error or "") and "not a valid date" in (results[1].error or "")
    assert not (catalog_dir / "scene" / "LE07_20241399").exists()


def test_thumbnail_alone_needs_the_data_first(scene: Path, catalog_dir: Path) -> None:
    (result,) = _register(scene / "thumbnail.png", catalog_dir)
    assert result.action == "error" and "data file" in (result.error or "")
    assert not catalog_dir.exists() or not (catalog_dir / ITEM_KEY).exists()


def test_group_does_not_merge_into_a_single_product_item(scene: Path, catalog_dir: Path) -> None:
    producer.register(
        scene / "B02.tif",
        catalog=str(catalog_dir),
        collection="scene",
        id_template=SCENE,
        datetime="2024-05-13T00:00:00Z",
    )
    before = _item(catalog_dir)
    (result,) = _register(scene / "B03.tif", catalog_dir)
    assert result.action == "error" and "taken" in (result.error or "")
    assert _item(catalog_dir) == before
    # and a single product does not overwrite a group's item
    (result,) = _register(scene / "B03.tif", catalog_dir, replace=True)
    assert result.action == "updated"
    (single,) = producer.register(
        scene / "B04.tif",
        catalog=str(catalog_dir),
        collection="scene",
        id_template=SCENE,
        datetime="2024-05-13T00:00:00Z",
    )
    assert single.action == "error" and "multi-asset" in (single.error or "")


def test_register_item_from_an_explicit_mapping_and_asset_key(scene: Path, catalog_dir: Path) -> None:
    results = producer.register_item(
        assets={
            "red": str(scene / "B04.tif"),
            "nir": str(scene / "B07.tif"),
            "preview": str(scene / "thumbnail.png"),
        },
        item_id="S2_20240513",
        catalog=str(catalog_dir),
        collection="scene",
    )
    assert [r.action for r in results] == ["created"] * 3
    item = json.loads((catalog_dir / "scene/S2_20240513/S2_20240513.json").read_text())
    assert sorted(item["assets"]) == ["nir", "preview", "red"]
    assert item["assets"]["preview"]["roles"] == ["thumbnail"]
    assert item["properties"]["datetime"] == "2024-05-13T00:00:00Z"

    (keyed,) = producer.register(
        scene / "B02.tif",
        catalog=str(catalog_dir),
        collection="scene",
        asset_key="blue",
        datetime="2024-05-13T00:00:00Z",
    )
    assert keyed.ok, keyed.error
    single = json.loads((catalog_dir / "scene/B02/B02.json").read_text())
    assert list(single["assets"]) == ["blue"] and single["properties"]["proj:code"] == "EPSG:32633"
    assert_stac_valid_tree(catalog_dir)


def test_odc_stac_loads_the_item_by_asset_name_with_the_file_pixels(scene: Path, catalog_dir: Path) -> None:
    import odc.stac
    import pystac

    _register(scene, catalog_dir)
    item = pystac.Item.from_dict(_item(catalog_dir))
    # in a thread of its own: odc-stac leaves a rasterio environment active in
    # the thread that loads (per thread, on purpose), which later tests of this
    # worker's main thread would read as the caller's environment
    with ThreadPoolExecutor(max_workers=1) as pool:
        data = pool.submit(odc.stac.load, [item], bands=["B02", "B05"], resolution=10, chunks=None).result()
    with rasterio.open(scene / "B02.tif") as src:
        expected = src.read(1)
    assert (data["B02"].isel(time=0).values == expected).all()
    with rasterio.open(scene / "B05.tif") as src:
        coarse = src.read(1)
    assert (data["B05"].isel(time=0).values == np.repeat(np.repeat(coarse, 2, 0), 2, 1)).all()


def test_s3_events_with_stac_group_merge_and_remove_one_asset(s3_server: S3Server, scene: Path) -> None:
    """The handler configured by environment (STAC_GROUP, STAC_SUFFIXES):
    created events of a scene's files make one item; the removed event of
    one file removes its asset only."""
    s3 = s3_server._replace(bucket=s3_server.new_bucket())
    client = s3.client()
    names = ("B02.tif", "B05.tif", "thumbnail.png")
    for name in names:
        client.put_object(Bucket=s3.bucket, Key=f"data/{SCENE}/{name}", Body=(scene / name).read_bytes())

    def event(kind: str, *names: str) -> dict[str, Any]:
        return {
            "Records": [
                {
                    "eventSource": "aws:s3",
                    "eventName": kind,
                    "s3": {"bucket": {"name": s3.bucket}, "object": {"key": f"data/{SCENE}/{name}"}},
                }
                for name in names
            ]
        }

    config = HandlerConfig.from_env(
        {
            "STAC_CATALOG": s3.url("stac"),
            "STAC_COLLECTION": "scene",
            "STAC_GROUP": GROUP,
            "STAC_SUFFIXES": ".tif,.png",
            "STAC_STORAGE_OPTIONS": json.dumps(s3.storage_options),
        }
    )
    created = handle(event("ObjectCreated:Put", *names), config)
    assert created["failed"] == [], created
    assert {r["id"] for r in created["registered"]} == {SCENE}
    client.delete_object(Bucket=s3.bucket, Key=f"data/{SCENE}/B02.tif")
    out = handle(event("ObjectRemoved:Delete", "B02.tif"), config)
    assert out["failed"] == [], out
    assert [(r["id"], r["action"]) for r in out["removed"]] == [(SCENE, "updated")]
    body = client.get_object(Bucket=s3.bucket, Key=f"stac/scene/{SCENE}/{SCENE}.json")["Body"].read()
    assert sorted(json.loads(body)["assets"]) == ["B05", "thumbnail"]


def test_cli_group_asset_key_and_remove_product(scene: Path, catalog_dir: Path) -> None:
    from click.testing import CliRunner

    from producer.cli import main

    runner = CliRunner()
    done = runner.invoke(
        main, ["register", str(scene), "-c", str(catalog_dir), "--collection", "scene", "--group", GROUP]
    )
    assert done.exit_code == 0, done.output
    assert len(_item(catalog_dir)["assets"]) == 8
    bad = runner.invoke(
        main,
        ["register", str(scene), "-c", str(catalog_dir), "--collection", "scene", "--group", "(?P<id>x)"],
    )
    assert bad.exit_code != 0 and "--group" in bad.output
    gone = runner.invoke(
        main,
        [
            "remove",
            SCENE,
            "-c",
            str(catalog_dir),
            "--collection",
            "scene",
            "--product",
            str(scene / "B03.tif"),
        ],
    )
    assert gone.exit_code == 0 and "B03 removed" in gone.output, gone.output
    assert "B03" not in _item(catalog_dir)["assets"]


def test_compose_covers_grids_of_different_extents_and_keeps_differing_datetimes() -> None:
    """Pure: two data assets on different tiles (one in another UTM zone) and
    dates; the item covers both, takes the first key's datetime, and the
    other asset keeps its own; dropping it recomputes a smaller footprint."""
    from producer.grouping import compose, drop_assets

    def asset(code: str, x0: float, when: str) -> dict[str, Any]:
        return {
            "href": f"/data/{code}_{x0}.tif",
            "roles": ["data"],
            "proj:code": code,
            "proj:shape": [100, 100],
            "proj:transform": [100.0, 0.0, x0, 0.0, -100.0, 5_000_000.0],
            "proj:bbox": [x0, 4_990_000.0, x0 + 10_000.0, 5_000_000.0],
            "datetime": when,
        }

    a = asset("EPSG:32633", 500_000.0, "2024-05-13T00:00:00Z")
    b = asset("EPSG:32634", 300_000.0, "2024-05-14T00:00:00Z")
    item = compose("x", {"a": a, "b": b}, collection="c", marker="assets")
    assert item["properties"]["datetime"] == "2024-05-13T00:00:00Z"
    assert "datetime" not in item["assets"]["a"] and item["assets"]["b"]["datetime"] == "2024-05-14T00:00:00Z"
    assert item["assets"]["b"]["proj:code"] == "EPSG:32634" and "proj:code" not in item["properties"]
    only_a = compose("x", {"a": a}, collection="c", marker="assets")
    west, south, east, north = item["bbox"]
    for part in (only_a, compose("x", {"b": b}, collection="c", marker="assets")):
        w, s, e, n = part["bbox"]
        assert west <= w and south <= s and e <= east and n <= north
    dropped = drop_assets(item, ["b"])
    assert dropped is not None and dropped["bbox"] == only_a["bbox"]
    assert dropped["properties"]["proj:code"] == "EPSG:32633"
    assert drop_assets(item, ["a", "b"]) is None

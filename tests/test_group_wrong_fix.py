"""Errors of multi-asset items (group patterns) name a fix that works, in
the caller's spelling: an unsafe id or asset key the pattern captures names
the pattern's group (not an id template, which a group ignores); a data
file whose asset key is ``thumbnail``, registered with thumbnails on, names
the thumbnail option (never ``replace``, which dropped the data file).
Real GeoTIFFs (:func:`tests.rasters.write_tile`)."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

import producer
from producer.cli import main
from producer.errors import InputError
from producer.events import HandlerConfig, handle
from producer.store import open_store
from tests.pausing import PauseAfterGet
from tests.rasters import write_tile
from tests.s3server import S3Server

SCENE = "S_20240513"
#: the id group reaches over the parent folder: ids 'data/S_20240513'
OVER_FOLDER = r"(?P<id>data/S_\d{8})/(?P<asset>[^/]+)\.tif$"
GROUP = r"(?P<id>S_\d{8})/(?P<asset>[^/]+)\.tif$"


def _cli(*args: str) -> str:
    out = CliRunner().invoke(main, ["register", *args], terminal_width=400)
    assert out.exit_code != 0, out.output
    return " ".join(out.output.split())


def test_unsafe_id_from_a_group_pattern_names_the_patterns_group_in_each_spelling(tmp_path: Path) -> None:
    """Was "Rename the file or choose another id template ... Fix it with
    id_template='{parent}_{stem}'", the same with that template given (which
    a group pattern ignores: now refused up front, naming the id group)."""
    band = write_tile(tmp_path / "data" / SCENE, "B02.tif", 10, 50)
    catalog = tmp_path / "cat"
    (result,) = producer.register([str(band)], catalog=str(catalog), collection="g", group=OVER_FOLDER)
    assert result.action == "error"
    error = result.error or ""
    assert "'data/S_20240513'" in error and "(?P<id>...)" in error, error
    assert "id_template" not in error and "id template" not in error, error
    assert "group='(?P<id>[^/]+)/(?P<asset>[^/]+)" in error, error
    with pytest.raises(InputError, match=r"\(\?P<id>\.\.\.\)") as refused:
        producer.register(
            [str(band)],
            catalog=str(catalog),
            collection="g",
            group=OVER_FOLDER,
            id_template="{parent}_{stem}",
        )
    assert "leave the id template out" in str(refused.value)
    message = _cli(str(band), "-c", str(catalog), "--collection", "g", "--group", OVER_FOLDER)
    assert "(?P<id>...)" in message and "--group '(?P<id>[^/]+)/(?P<asset>[^/]+)" in message, message
    assert "--id-template" not in message and "group=" not in message, message
    assert not catalog.exists()


def test_unsafe_asset_key_from_a_group_pattern_names_the_asset_group(tmp_path: Path) -> None:
    """The file name ``B 02.tif`` holds a space: no pattern takes it whole
    as an asset key, so the fix is renaming it (the "safe characters"
    pattern offered before does not match the file at all)."""
    band = write_tile(tmp_path / "data" / SCENE, "B 02.tif", 10, 50)
    catalog = tmp_path / "cat"
    (result,) = producer.register([str(band)], catalog=str(catalog), collection="g", group=GROUP)
    error = result.error or ""
    assert "unsafe asset key 'B 02'" in error and "(?P<asset>...)" in error, error
    assert "id_template" not in error and "rename the folder or file" in error and not result.hints, error
    message = _cli(str(band), "-c", str(catalog), "--collection", "g", "--group", GROUP)
    assert "(?P<asset>...)" in message and "rename the folder or file" in message, message
    assert "--id-template" not in message, message
    assert not catalog.exists()


def _scene(tmp_path: Path) -> tuple[Path, Path, Path]:
    folder = tmp_path / "data" / SCENE
    return (
        write_tile(folder, "thumbnail.tif", 10, 50),
        write_tile(folder, "B02.tif", 10, 50),
        tmp_path / "cat",
    )


def _assets(catalog: Path) -> dict[str, str]:
    item = json.loads((catalog / "g" / SCENE / f"{SCENE}.json").read_text())
    return {k: a["href"].rsplit("/", 1)[-1] for k, a in item["assets"].items()}


def _names_the_thumbnail_fix(error: str, spelled: str) -> None:
    assert "its asset 'thumbnail' is one of its files" in error and "(?P<asset>...)" in error, error
    assert f"Fix it with {spelled} " in error, error
    for wrong in ("drop thumbnail", "id_template", "--id-template", "replace", "group=", "--group"):
        assert wrong not in error, (wrong, error)


def test_group_file_keyed_thumbnail_in_one_call_names_the_thumbnail_option(tmp_path: Path) -> None:
    """Was "drop thumbnail ... Fix it with --group '(?P<id>[^/]+)/(?P<asset>[^/]+)\\.(tif|png)$'",
    a pattern that keys thumbnail.tif 'thumbnail' again."""
    thumb, band, catalog = _scene(tmp_path)
    results = producer.register(
        [str(thumb), str(band)], catalog=str(catalog), collection="g", group=GROUP, thumbnail=True
    )
    assert [r.action for r in results] == ["error", "error"]
    _names_the_thumbnail_fix(results[0].error or "", "thumbnail=False")
    message = _cli(
        str(thumb), str(band), "-c", str(catalog), "--collection", "g", "--group", GROUP, "--thumbnail"
    )
    _names_the_thumbnail_fix(message, "--thumbnail left out")
    assert not catalog.exists()


def test_later_band_with_thumbnails_never_replaces_a_stored_thumbnail_file(tmp_path: Path) -> None:
    """Was "item id ... is taken ... Fix it with id_template='{parent}_{stem}' ... or
    replace=True", and replace=True dropped thumbnail.tif for the rendered PNG."""
    thumb, band, catalog = _scene(tmp_path)
    (first,) = producer.register([str(thumb)], catalog=str(catalog), collection="g", group=GROUP)
    assert first.ok, first.error
    before = (catalog / "g" / SCENE / f"{SCENE}.json").read_bytes()
    for replace in (False, True):
        (later,) = producer.register(
            [str(band)], catalog=str(catalog), collection="g", group=GROUP, thumbnail=True, replace=replace
        )
        assert later.action == "error"
        _names_the_thumbnail_fix(later.error or "", "thumbnail=False")
    message = _cli(
        str(band), "-c", str(catalog), "--collection", "g", "--group", GROUP, "--thumbnail", "--replace"
    )
    _names_the_thumbnail_fix(message, "--thumbnail left out")
    assert (catalog / "g" / SCENE / f"{SCENE}.json").read_bytes() == before
    assert not list((catalog / "g" / SCENE).glob("*.png"))
    # following the advice registers the band beside the file
    (ok,) = producer.register([str(band)], catalog=str(catalog), collection="g", group=GROUP)
    assert ok.ok, ok.error
    assert _assets(catalog) == {"B02": "B02.tif", "thumbnail": "thumbnail.tif"}


def test_thumbnail_file_registered_while_a_band_renders_is_kept_even_with_replace(tmp_path: Path) -> None:
    """The band's run reads the item (no 'thumbnail' yet) and stops; the
    group's thumbnail.tif is registered; the band's merge then meets it:
    refused whatever replace says (was: replace=True dropped the data file),
    and the PNG it wrote is deleted again."""
    thumb, band, catalog = _scene(tmp_path)
    b03 = write_tile(band.parent, "B03.tif", 10, 50)
    (first,) = producer.register([str(b03)], catalog=str(catalog), collection="g", group=GROUP)
    assert first.ok, first.error
    slow = PauseAfterGet(open_store(str(catalog)), f"g/{SCENE}/{SCENE}.json")
    out: dict[str, Any] = {}

    def band_run() -> None:
        out["a"] = producer.register(
            [str(band)], catalog=slow, collection="g", group=GROUP, thumbnail=True, replace=True
        )

    thread = threading.Thread(target=band_run)
    thread.start()
    assert slow.reached.wait(30)
    (meanwhile,) = producer.register([str(thumb)], catalog=str(catalog), collection="g", group=GROUP)
    slow.resume.set()
    thread.join(60)
    assert meanwhile.ok, meanwhile.error
    (a,) = out["a"]
    assert a.action == "error"
    _names_the_thumbnail_fix(a.error or "", "thumbnail=False")
    assert _assets(catalog) == {"B03": "B03.tif", "thumbnail": "thumbnail.tif"}
    assert not list((catalog / "g" / SCENE).glob("*.png"))


def test_event_handler_names_its_variable(s3_server: S3Server, tmp_path: Path) -> None:
    """The Lambda's error names STAC_THUMBNAIL=false, not a Python keyword."""
    s3 = s3_server._replace(bucket=s3_server.new_bucket())
    client = s3.client()
    thumb, band, _ = _scene(tmp_path)
    for path in (thumb, band):
        client.put_object(Bucket=s3.bucket, Key=f"data/{SCENE}/{path.name}", Body=path.read_bytes())

    def event(name: str) -> dict[str, Any]:
        key = f"data/{SCENE}/{name}"
        return {
            "Records": [
                {
                    "eventSource": "aws:s3",
                    "eventName": "ObjectCreated:Put",
                    "s3": {"bucket": {"name": s3.bucket}, "object": {"key": key}},
                }
            ]
        }

    env = {
        "STAC_CATALOG": s3.url("stac"),
        "STAC_COLLECTION": "g",
        "STAC_GROUP": GROUP,
        "STAC_STORAGE_OPTIONS": json.dumps(s3.storage_options),
    }
    assert handle(event("thumbnail.tif"), HandlerConfig.from_env(env))["failed"] == []
    failed = handle(event("B02.tif"), HandlerConfig.from_env({**env, "STAC_THUMBNAIL": "true"}))["failed"]
    assert len(failed) == 1, failed
    _names_the_thumbnail_fix(failed[0]["error"], "STAC_THUMBNAIL=false")


def test_register_item_with_a_thumbnail_key_names_the_mapping_not_a_pattern(tmp_path: Path) -> None:
    thumb, band, catalog = _scene(tmp_path)
    results = producer.register_item(
        assets={"B02": str(band), "thumbnail": str(thumb)},
        item_id=SCENE,
        catalog=str(catalog),
        collection="g",
        thumbnail=True,
    )
    error = results[0].error or ""
    assert "another key in the assets mapping" in error and "Fix it with thumbnail=False " in error, error
    assert "(?P<asset>" not in error and "replace" not in error, error
    assert not catalog.exists()


def test_event_handler_names_stac_group_for_an_unsafe_id(s3_server: S3Server, tmp_path: Path) -> None:
    s3 = s3_server._replace(bucket=s3_server.new_bucket())
    band = write_tile(tmp_path / "data" / SCENE, "B02.tif", 10, 50)
    s3.client().put_object(Bucket=s3.bucket, Key=f"data/{SCENE}/B02.tif", Body=band.read_bytes())
    record = {"eventSource": "aws:s3", "eventName": "ObjectCreated:Put"}
    record["s3"] = {"bucket": {"name": s3.bucket}, "object": {"key": f"data/{SCENE}/B02.tif"}}
    env = {
        "STAC_CATALOG": s3.url("stac"),
        "STAC_COLLECTION": "g",
        "STAC_GROUP": OVER_FOLDER,
        "STAC_STORAGE_OPTIONS": json.dumps(s3.storage_options),
    }
    failed = handle({"Records": [record]}, HandlerConfig.from_env(env))["failed"]
    assert len(failed) == 1, failed
    error = failed[0]["error"]
    assert "(?P<id>...)" in error and "Fix it with STAC_GROUP='(?P<id>[^/]+)/" in error, error
    assert "STAC_ID_TEMPLATE" not in error and "group=" not in error, error


def test_folders_no_pattern_can_make_an_id_of_are_told_to_rename_never_given_a_pattern_that_cuts_them(
    tmp_path: Path,
) -> None:
    """Scenes in folders named ``north 1_20240101`` and ``south 1_20240101``
    (a space): the fix offered was the "safe characters" pattern, which
    matches inside the folder name, so both scenes became one item
    ``1_20240101`` (the second then refused, offering the first pattern
    back). That pattern is offered only where it captures whole names; here
    the fix is renaming, and the pattern itself never cuts a name."""
    from producer.grouping import GROUP_HINT, SAFE_GROUP_HINT

    bands = [
        write_tile(tmp_path / "data" / f"{side} 1_20240101", "B04.tif", 10, 50) for side in ("north", "south")
    ]
    catalog = tmp_path / "cat"
    results = producer.register(
        [str(b) for b in bands], catalog=str(catalog), collection="g", group=str(GROUP_HINT.example)
    )
    assert [r.action for r in results] == ["error", "error"], results
    for result in results:
        assert "rename" in (result.error or "") and not result.hints, result
    results = producer.register(
        [str(b) for b in bands], catalog=str(catalog), collection="g", group=str(SAFE_GROUP_HINT.example)
    )
    assert [r.action for r in results] == ["error", "error"], results
    assert not (catalog / "g" / "1_20240101").exists()
    # where the folder and file names are safe, the pattern takes them whole
    good = write_tile(tmp_path / "ok" / SCENE, "B02.tif", 10, 50)
    (result,) = producer.register(
        [str(good)], catalog=str(catalog), collection="g", group=str(SAFE_GROUP_HINT.example)
    )
    assert result.action == "created" and result.id == SCENE, result

"""A file already an asset of a multi-asset item, registered again under
another asset key (``register_item`` with ``{"blue": B02.tif}`` after
``{"B02": B02.tif}``, or a changed ``(?P<asset>...)`` group): the item listed
the one file twice, under both keys (odc-stac loads it as two bands),
``updated`` and valid, though one call giving a file two keys is refused.
Now refused naming both keys, nothing written; with ``replace`` the asset
moves to the new key."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import producer
from producer.errors import InputError
from tests.rasters import write_tile
from tests.trees import assert_stac_valid_tree, tree_hash

SCENE = "S_20240513"


def _assets(catalog: Path) -> dict[str, str]:
    item = json.loads((catalog / "g" / SCENE / f"{SCENE}.json").read_text())
    return {key: Path(asset["href"]).name for key, asset in item["assets"].items()}


def test_a_file_under_a_second_key_is_refused_and_moves_with_replace(tmp_path: Path) -> None:
    b02 = write_tile(tmp_path / "data" / SCENE, "B02.tif", 10, 50)
    b03 = write_tile(tmp_path / "data" / SCENE, "B03.tif", 10, 50)
    catalog = tmp_path / "cat"
    common = dict(item_id=SCENE, catalog=str(catalog), collection="g")
    producer.register_item(assets={"B02": str(b02), "B03": str(b03)}, **common)
    before = tree_hash(catalog)
    [result] = producer.register_item(assets={"blue": str(b02)}, **common)
    assert result.action == "error"
    assert "'B02'" in (result.error or "") and "'blue'" in (result.error or ""), result.error
    assert "replace=True" in (result.error or "")
    assert tree_hash(catalog) == before
    [moved] = producer.register_item(assets={"blue": str(b02)}, replace=True, **common)
    assert moved.action == "updated", moved.error
    assert _assets(catalog) == {"B03": "B03.tif", "blue": "B02.tif"}
    assert_stac_valid_tree(catalog)


def test_the_same_file_under_its_own_key_is_still_unchanged(tmp_path: Path) -> None:
    b02 = write_tile(tmp_path / "data" / SCENE, "B02.tif", 10, 50)
    catalog = tmp_path / "cat"
    common = dict(item_id=SCENE, catalog=str(catalog), collection="g")
    producer.register_item(assets={"B02": str(b02)}, **common)
    [again] = producer.register_item(assets={"B02": str(b02)}, **common)
    assert again.action == "unchanged"
    with pytest.raises(InputError):  # one call naming a file twice: refused as before
        producer.register_item(assets={"B02": str(b02), "blue": str(b02)}, **common)

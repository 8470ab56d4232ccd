"""A multi-asset item's thumbnail (producer/grouping.py Grouping._thumbnail)
does not depend on the order its files arrived in: real band GeoTIFFs of
different sizes (tests/test_multiasset.py's scene), registered one at a time
in both orders into real catalogs."""

from __future__ import annotations

import os
from pathlib import Path

import rasterio

from tests.test_multiasset import ITEM_KEY, _item, _register, scene  # noqa: F401 (fixture)
from tests.trees import assert_stac_valid_tree


def _png(catalog: Path) -> Path:
    item = _item(catalog)
    return (catalog / ITEM_KEY).parent / item["assets"]["thumbnail"]["href"]


def test_thumbnail_is_the_first_asset_of_the_item_whatever_the_arrival_order(
    scene: Path,  # noqa: F811
    tmp_path: Path,
) -> None:
    """The PNG was rendered from the first data asset of each batch: B05
    (20 m, 8 px) then B02 (10 m, 16 px) gave B02's preview, B02 then B05
    gave B05's. Now both orders render B02, the item's first data asset,
    and a rerun of both (unchanged) does not rewrite the PNG."""
    pngs = []
    for order in (("B05", "B02"), ("B02", "B05")):
        catalog = tmp_path / f"cat_{order[0]}_{order[1]}"
        for name in order:
            results = _register([scene / f"{name}.tif"], catalog, thumbnail=True)
            assert [r.error for r in results] == [None]
        png = _png(catalog)
        with rasterio.open(png) as src:
            assert src.width == 16  # B02's 16 x 16 pixels, not B05's 8 x 8
        before = os.stat(png).st_mtime_ns
        rerun = _register([scene / "B02.tif", scene / "B05.tif"], catalog, thumbnail=True)
        assert [r.action.value for r in rerun] == ["unchanged", "unchanged"]
        assert os.stat(png).st_mtime_ns == before
        assert_stac_valid_tree(catalog)
        pngs.append(png.read_bytes())
    assert pngs[0] == pngs[1]

"""A multi-asset item (``group=``) whose data files lie on both sides of the
antimeridian gets the footprint a single raster across it gets (split into a
MultiPolygon, bbox with west > east), not the whole latitude band. Rasters
are written by rasterio in ``tmp_path``."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine

import producer
from producer.extract import footprint as fp
from producer.extract.grids import union_footprint
from tests import rasters
from tests.trees import assert_stac_valid_tree

SCENE = "S_20240101"
GROUP = r"(?P<id>S_\d{8})/(?P<asset>[^/]+)\.tif$"


def _tile(path: Path, crs: str, transform: Affine, size: int = 10) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    return str(rasters._write(path, np.ones((1, size, size), "uint8"), crs=crs, transform=transform))


def _item(catalog: Path) -> dict:
    return json.loads((catalog / "c" / SCENE / f"{SCENE}.json").read_text())


def _two_sides(data: Path) -> list[str]:
    return [
        _tile(data / SCENE / "B1.tif", "EPSG:4326", Affine(1, 0, 170, 0, -1, 10)),
        _tile(data / SCENE / "B2.tif", "EPSG:4326", Affine(1, 0, -180, 0, -1, 10)),
    ]


@pytest.mark.parametrize("together", [True, False], ids=["one-batch", "one-file-after-the-other"])
def test_group_either_side_of_the_antimeridian_is_split_like_a_single_raster(
    tmp_path: Path, together: bool
) -> None:
    paths = _two_sides(tmp_path / "data")
    catalog = tmp_path / "catalog"
    batches = [paths] if together else [[p] for p in paths]
    for batch in batches:
        results = producer.register(batch, catalog=str(catalog), collection="c", group=GROUP)
        assert [r.error for r in results] == [None] * len(results)
    assert_stac_valid_tree(catalog)
    doc = _item(catalog)
    # was [-180, 0, 180, 10]: the whole band around the globe
    assert doc["bbox"] == [170.0, 0.0, -170.0, 10.0]
    # exactly what one raster over 170..190 gets
    geometry, bbox = fp.footprint(rasterio.crs.CRS.from_epsg(4326), Affine(1, 0, 170, 0, -1, 10), 20, 10)
    assert (doc["geometry"], doc["bbox"]) == (geometry, bbox)
    assert doc["geometry"]["type"] == "MultiPolygon"


def _grid(crs: str, transform: Affine, width: int, height: int) -> dict:
    return {
        "proj:code": crs,
        "proj:shape": [height, width],
        "proj:transform": list(transform)[:6],
        "proj:bbox": fp.native_bbox(transform, width, height),
    }


def test_reprojected_asset_across_the_antimeridian_joins_the_narrow_side() -> None:
    # the second grid, in UTM zone 1N, crosses 180 itself (its WGS84 bounds come back with west > east)
    first = _grid("EPSG:4326", Affine(1, 0, 170, 0, -1, 10), 10, 10)
    second = _grid("EPSG:32601", Affine(1000, 0, 100_000, 0, -1000, 1_000_000), 300, 500)
    geometry, bbox = union_footprint([first, second])
    assert geometry["type"] == "MultiPolygon"
    west, south, east, north = bbox
    assert west == 170.0 and -178.0 < east < -177.8 and west > east
    assert south == 0.0 and north == 10.0


def test_groups_away_from_the_antimeridian_keep_their_envelope() -> None:
    # 10..20 and 30..40: the narrow envelope is the plain one, 10..40 (not 30..380)
    geometry, bbox = union_footprint(
        [
            _grid("EPSG:4326", Affine(1, 0, 10, 0, -1, 10), 10, 10),
            _grid("EPSG:4326", Affine(1, 0, 30, 0, -1, 10), 10, 10),
        ]
    )
    assert geometry["type"] == "Polygon" and bbox == [10.0, 0.0, 40.0, 10.0]
    # two halves of the globe: the envelope is the whole band either way
    _, bbox = union_footprint(
        [
            _grid("EPSG:4326", Affine(1, 0, -180, 0, -1, 10), 180, 10),
            _grid("EPSG:4326", Affine(1, 0, 0, 0, -1, 10), 180, 10),
        ]
    )
    assert bbox == [-180.0, 0.0, 180.0, 10.0]

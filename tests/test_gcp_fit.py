"""GCPs whose longitudes span the whole turn (a polar cap or a global image
georeferenced by GCPs in EPSG:4326). Taking every GCP's longitude within
180 degrees of the first's, as for a swath across the antimeridian, put
-180 and 180 on the same meridian: the GCPs became collinear, the affine
fit failed, and rasterio's ``from_gcps`` handed back uninitialised memory
as the transform, printed in the error (or, by chance, a footprint)."""

from __future__ import annotations

from pathlib import Path

import pytest
from rasterio.control import GroundControlPoint
from rasterio.crs import CRS

from producer.errors import InputError
from producer.extract import create_item
from producer.extract.footprint import footprint_from_gcps
from tests import rasters

#: a 64x64 image from 80 N to the pole, all longitudes, row 0 at the pole
POLAR_CAP_GCPS = (
    (0.0, 0.0, -180.0, 90.0),
    (0.0, 64.0, 180.0, 90.0),
    (64.0, 0.0, -180.0, 80.0),
    (64.0, 64.0, 180.0, 80.0),
)


def test_gcps_around_the_whole_turn_give_the_polar_cap(tmp_path: Path) -> None:
    doc = create_item(rasters.write_gcps(tmp_path, POLAR_CAP_GCPS, "cap_20241001.tif")).to_dict()
    assert doc["bbox"] == pytest.approx([-180.0, 80.0, 180.0, 90.0], abs=1e-7)
    assert doc["geometry"]["type"] == "Polygon"


def test_gcps_across_the_antimeridian_still_cover_one_degree() -> None:
    gcps = [GroundControlPoint(row=r, col=c, x=x, y=y) for r, c, x, y in rasters.DATELINE_GCPS]
    _, bbox = footprint_from_gcps(gcps, CRS.from_epsg(4326), 64, 64)
    assert bbox == pytest.approx([179.5, 40.0, -179.5, 41.0], abs=1e-7)


def test_gcps_with_no_affine_fit_are_refused_without_a_garbage_transform() -> None:
    # collinear once unwrapped, and as given: nothing to fit
    gcps = [
        GroundControlPoint(row=r, col=c, x=x, y=y)
        for r, c, x, y in ((0.0, 0.0, -180.0, 90.0), (0.0, 64.0, 180.0, 90.0), (64.0, 32.0, 0.0, 90.0))
    ]
    with pytest.raises(InputError, match="collinear") as info:
        footprint_from_gcps(gcps, CRS.from_epsg(4326), 64, 64)
    assert "e-310" not in str(info.value) and "transform (" not in str(info.value)

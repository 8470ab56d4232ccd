"""Projected x/y coordinates in kilometres (Daymet's Lambert grid, sea-ice
polar stereographic grids): CF lets ``projection_x_coordinate`` be in any
length unit, and GDAL reads ``km`` as the CRS's metres. They were taken
as metres, a footprint a thousand times too small around the origin."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio
import xarray as xr

from producer.extract import create_item

_POLAR = {
    "grid_mapping_name": "polar_stereographic",
    "straight_vertical_longitude_from_pole": -45.0,
    "latitude_of_projection_origin": 90.0,
    "standard_parallel": 70.0,
    "false_easting": 0.0,
    "false_northing": 0.0,
    "semi_major_axis": 6378137.0,
    "inverse_flattening": 298.257223563,
}


def _polar_grid(path: Path, units: str, factor: float) -> Path:
    """A 100 x 100 grid of 10 km cells around the North Pole, its x/y
    written in ``units`` (``factor`` of them per metre)."""
    centres = np.arange(-495_000.0, 500_000.0, 10_000.0) * factor
    xr.Dataset(
        {
            "ice": (("y", "x"), np.zeros((100, 100), "f4"), {"grid_mapping": "crs"}),
            "crs": ((), np.int32(0), _POLAR),
        },
        coords={
            "x": ("x", centres, {"units": units, "standard_name": "projection_x_coordinate"}),
            "y": ("y", centres[::-1], {"units": units, "standard_name": "projection_y_coordinate"}),
        },
        attrs={"time_coverage_start": "2024-05-01"},
    ).to_netcdf(path)
    return path


@pytest.mark.parametrize("units", ["km", "kilometres", "kilometer"])
def test_projected_coordinates_in_kilometres_are_the_crs_metres(tmp_path: Path, units: str) -> None:
    metres = create_item(_polar_grid(tmp_path / "ice_m.nc", "m", 1.0)).to_dict()
    kilometres = create_item(_polar_grid(tmp_path / "ice_km.nc", units, 0.001)).to_dict()
    for key in ("bbox", "geometry"):
        assert kilometres[key] == metres[key]
    for key in ("proj:transform", "proj:bbox", "cube:dimensions"):
        assert kilometres["properties"][key] == metres["properties"][key]
    assert kilometres["bbox"][1] == pytest.approx(83.48, abs=0.01)  # the corners, ~707 km from the pole
    (band,) = kilometres["assets"]["data"]["bands"]
    assert band["raster:spatial_resolution"] == pytest.approx(10_000.0)
    if units != "km":
        return  # GDAL knows "km" only (for the others it warns that the grid is "likely wrong")
    # the grid a loader gets is the one GDAL reads from the file
    with rasterio.open(f"netcdf:{tmp_path / 'ice_km.nc'}:ice") as src:
        assert kilometres["properties"]["proj:transform"] == pytest.approx(list(src.transform)[:6])

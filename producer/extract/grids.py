"""The footprint covering several grids (``proj:*`` fields): the assets of a
multi-asset item (:mod:`producer.grouping`) and the grids of one datacube
(:mod:`producer.extract.datacube`) share it. Pure computation, no file read;
rasterio is imported on first use (``import producer`` stays cheap)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from producer.catalog.extent import union_bbox
from producer.errors import InputError


def union_footprint(grids: list[dict[str, Any]]) -> tuple[dict, list[float]]:
    """WGS84 ``(geometry, bbox)`` covering every grid (``proj:*`` fields).

    One grid, or grids in one CRS covering the same rectangle: that grid's
    footprint. Otherwise the envelope of all grids in the first grid's CRS
    (others' bounds reprojected, edges densified; in a geographic CRS the
    narrowest in longitude, which may cross the antimeridian:
    :func:`producer.extract.footprint.native_envelope`), whose footprint
    covers every grid and is split at the antimeridian as a single raster's
    is; its bbox also covers each grid's own footprint bbox exactly (what
    the grid's product has as a single item). Pure computation (no file is
    read)."""
    from affine import Affine  # noqa: PLC0415 (rasterio is loaded lazily)
    from rasterio.transform import from_bounds  # noqa: PLC0415
    from rasterio.warp import transform_bounds  # noqa: PLC0415

    from producer.extract import footprint as fp  # noqa: PLC0415

    crs0 = grid_crs(grids[0])
    boxes = []
    for grid in grids:
        box = _native_bbox(grid)
        crs = grid_crs(grid)
        boxes.append(box if crs == crs0 else list(transform_bounds(crs, crs0, *box, densify_pts=21)))
    first = grids[0]
    rows, cols = first["proj:shape"]
    if all(box == boxes[0] for box in boxes):
        return fp.footprint(crs0, Affine(*first["proj:transform"][:6]), int(cols), int(rows))
    west, south, east, north = fp.native_envelope(crs0, boxes)
    geometry, bbox = fp.footprint(crs0, from_bounds(west, south, east, north, 1, 1), 1, 1)
    # the envelope's edges are sampled at other points than each grid's own
    # and rounded: the bbox covers each grid's own bbox exactly, so an item
    # left with one of them (an asset removed) never reaches past it
    own = []
    for grid in grids:
        if "proj:transform" in grid and "proj:shape" in grid:
            grid_rows, grid_cols = grid["proj:shape"]
            transform = Affine(*grid["proj:transform"][:6])
            own.append(fp.footprint(grid_crs(grid), transform, int(grid_cols), int(grid_rows))[1])
        else:
            own.append(fp.footprint(grid_crs(grid), from_bounds(*_native_bbox(grid), 1, 1), 1, 1)[1])
    return geometry, union_bbox([bbox, *own])


def grid_crs(grid: Mapping[str, Any]) -> Any:
    from rasterio.crs import CRS  # noqa: PLC0415 (rasterio is loaded lazily)

    if grid.get("proj:code"):
        return CRS.from_user_input(grid["proj:code"])
    if grid.get("proj:wkt2"):
        return CRS.from_wkt(grid["proj:wkt2"])
    if grid.get("proj:projjson"):
        return CRS.from_dict(grid["proj:projjson"])
    raise InputError("an asset of a multi-asset item has no CRS (proj:code, proj:wkt2 or proj:projjson)")


def _native_bbox(grid: Mapping[str, Any]) -> list[float]:
    if "proj:bbox" in grid:
        return [float(v) for v in grid["proj:bbox"]]
    from affine import Affine  # noqa: PLC0415 (rasterio is loaded lazily)

    from producer.extract.footprint import native_bbox  # noqa: PLC0415

    rows, cols = grid["proj:shape"]
    return native_bbox(Affine(*grid["proj:transform"][:6]), int(cols), int(rows))

"""Tests for producer.extract.footprint: pixel grid -> WGS84 geometry + bbox."""

from __future__ import annotations

import math

import numpy as np
import pytest
from affine import Affine
from rasterio.control import GroundControlPoint
from rasterio.crs import CRS
from rasterio.warp import transform as warp_transform
from rasterio.warp import transform_bounds

from producer.errors import InputError, NoGeoreferenceError
from producer.extract.footprint import footprint, footprint_from_gcps, native_bbox

WGS84 = CRS.from_epsg(4326)


# --------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------


def exteriors(geometry: dict) -> list[list[list[float]]]:
    if geometry["type"] == "Polygon":
        return [geometry["coordinates"][0]]
    assert geometry["type"] == "MultiPolygon"
    return [polygon[0] for polygon in geometry["coordinates"]]


def signed_area(ring: list[list[float]]) -> float:
    """Shoelace area of a closed ring; > 0 for counter-clockwise."""
    return 0.5 * sum(x0 * y1 - x1 * y0 for (x0, y0), (x1, y1) in zip(ring, ring[1:]))


def inside(point: tuple[float, float], ring: list[list[float]]) -> bool:
    """Even-odd ray casting (points on the boundary are not tested here)."""
    px, py = point
    hit = False
    for (x0, y0), (x1, y1) in zip(ring, ring[1:]):
        if (y0 > py) != (y1 > py):
            x = x0 + (py - y0) * (x1 - x0) / (y1 - y0)
            if x > px:
                hit = not hit
    return hit


def covered(point: tuple[float, float], geometry: dict) -> bool:
    return any(inside(point, ring) for ring in exteriors(geometry))


def check_geojson(geometry: dict, bbox: list[float]) -> None:
    """Invariants every result must satisfy."""
    assert len(bbox) == 4
    west, south, east, north = bbox
    assert -180.0 <= west <= 180.0 and -180.0 <= east <= 180.0
    assert -90.0 <= south < north <= 90.0
    rings = exteriors(geometry)
    for ring in rings:
        assert len(ring) >= 4
        assert ring[0] == ring[-1], "ring not closed"
        for a, b in zip(ring, ring[1:]):
            assert a != b, f"duplicate consecutive point {a}"
        assert signed_area(ring) > 0, "exterior ring is not counter-clockwise"
        for lon, lat in ring:
            assert -180.0 <= lon <= 180.0 and -90.0 <= lat <= 90.0
            assert round(lon, 7) == lon and round(lat, 7) == lat
    lons = [p[0] for ring in rings for p in ring]
    lats = [p[1] for ring in rings for p in ring]
    assert min(lats) == south and max(lats) == north
    if geometry["type"] == "Polygon":
        assert (min(lons), max(lons)) == (west, east)
    else:
        assert west > east


def corners_wgs84(crs: CRS, transform: Affine, width: int, height: int) -> list[tuple[float, float]]:
    pixel = [(0, 0), (width, 0), (width, height), (0, height)]
    xs, ys = zip(*(transform @ p for p in pixel))
    lons, lats = warp_transform(crs, WGS84, list(xs), list(ys))
    return list(zip(lons, lats))


# --------------------------------------------------------------------------
# ordinary grids
# --------------------------------------------------------------------------


def test_utm_grid_matches_transform_bounds():
    crs = CRS.from_epsg(32633)
    transform = Affine(100.0, 0.0, 300000.0, 0.0, -100.0, 5400000.0)
    geometry, bbox = footprint(crs, transform, 4000, 4000)
    check_geojson(geometry, bbox)
    assert geometry["type"] == "Polygon"
    expected = transform_bounds(crs, WGS84, 300000, 5000000, 700000, 5400000, densify_pts=63)
    assert bbox == pytest.approx(list(expected), abs=1e-6)
    assert bbox == pytest.approx([12.2806415, 45.1251538, 17.7193585, 48.753013], abs=1e-7)


def test_bbox_uses_densified_points_not_only_corners():
    # the top edge of a UTM grid bulges north between the corners
    crs = CRS.from_epsg(32633)
    transform = Affine(100.0, 0.0, 300000.0, 0.0, -100.0, 5400000.0)
    corner_north = max(lat for _, lat in corners_wgs84(crs, transform, 4000, 4000))
    _, dense = footprint(crs, transform, 4000, 4000)
    _, sparse = footprint(crs, transform, 4000, 4000, densify=1)
    assert sparse[3] == pytest.approx(corner_north, abs=1e-7)
    assert dense[3] > corner_north + 0.03


def test_geographic_grid_exact():
    transform = Affine(0.1, 0.0, 10.0, 0.0, -0.1, 50.0)
    geometry, bbox = footprint(WGS84, transform, 100, 50)
    check_geojson(geometry, bbox)
    assert bbox == [10.0, 45.0, 20.0, 50.0]
    # straight densified edges collapse to the four corners, counter-clockwise
    assert geometry == {
        "type": "Polygon",
        "coordinates": [[[10.0, 50.0], [10.0, 45.0], [20.0, 45.0], [20.0, 50.0], [10.0, 50.0]]],
    }


def test_rotated_geotransform():
    transform = Affine.translation(10.0, 50.0) @ Affine.rotation(30.0) @ Affine.scale(0.1, -0.1)
    width, height = 100, 50
    geometry, bbox = footprint(WGS84, transform, width, height)
    check_geojson(geometry, bbox)
    corners = [transform @ p for p in [(0, 0), (width, 0), (width, height), (0, height)]]
    xs, ys = zip(*corners)
    assert bbox == pytest.approx([min(xs), min(ys), max(xs), max(ys)], abs=1e-7)
    ring = geometry["coordinates"][0]
    for x, y in corners:
        assert [round(x, 7), round(y, 7)] in ring
    # (width, 0) rises to lat 55 and (width, height) reaches lon 21.16
    assert bbox == [10.0, 45.669873, 21.160254, 55.0]
    assert not covered((10.0 + 9.9, 50.0 - 4.9), geometry)  # unrotated far corner
    assert covered(transform @ (50, 25), geometry)


def test_rotated_projected_grid_contains_its_corners():
    crs = CRS.from_epsg(32633)
    transform = Affine.translation(400000.0, 5200000.0) @ Affine.rotation(-20.0) @ Affine.scale(50.0, -50.0)
    geometry, bbox = footprint(crs, transform, 2000, 1000)
    check_geojson(geometry, bbox)
    ring = geometry["coordinates"][0]
    for lon, lat in corners_wgs84(crs, transform, 2000, 1000):
        assert [round(lon, 7), round(lat, 7)] in ring
        assert bbox[0] - 1e-7 <= lon <= bbox[2] + 1e-7
        assert bbox[1] - 1e-7 <= lat <= bbox[3] + 1e-7


def test_native_bbox_rotated():
    transform = Affine.translation(1000.0, 2000.0) @ Affine.rotation(90.0) @ Affine.scale(10.0, -10.0)
    # rotating by 90 degrees maps (col, row) -> (1000 + 10 row, 2000 + 10 col)
    assert native_bbox(transform, 30, 20) == pytest.approx([1000.0, 2000.0, 1200.0, 2300.0])
    assert native_bbox(Affine(10.0, 0.0, 0.0, 0.0, -10.0, 100.0), 5, 4) == [0.0, 60.0, 50.0, 100.0]
    sheared = Affine(10.0, 5.0, 0.0, 0.0, -10.0, 0.0)
    assert native_bbox(sheared, 2, 2) == [0.0, -20.0, 30.0, 0.0]


@pytest.mark.parametrize(
    "transform",
    [
        Affine(0.1, 0.0, 10.0, 0.0, -0.1, 50.0),  # north-up
        Affine(0.1, 0.0, 10.0, 0.0, 0.1, 45.0),  # south-up (positive row step)
        Affine(-0.1, 0.0, 20.0, 0.0, -0.1, 50.0),  # mirrored columns
        Affine(-0.1, 0.0, 20.0, 0.0, 0.1, 45.0),  # both flipped
    ],
)
def test_orientation_is_counter_clockwise_for_any_axis_flip(transform):
    geometry, bbox = footprint(WGS84, transform, 100, 50)
    check_geojson(geometry, bbox)
    assert bbox == [10.0, 45.0, 20.0, 50.0]
    assert signed_area(geometry["coordinates"][0]) == pytest.approx(50.0)


# --------------------------------------------------------------------------
# antimeridian
# --------------------------------------------------------------------------


def test_geographic_grid_crossing_antimeridian():
    geometry, bbox = footprint(WGS84, Affine(1.0, 0.0, 170.0, 0.0, -1.0, 10.0), 20, 20)
    check_geojson(geometry, bbox)
    assert bbox == [170.0, -10.0, -170.0, 10.0]
    assert geometry == {
        "type": "MultiPolygon",
        "coordinates": [
            [[[170.0, 10.0], [170.0, -10.0], [180.0, -10.0], [180.0, 10.0], [170.0, 10.0]]],
            [[[-180.0, 10.0], [-180.0, -10.0], [-170.0, -10.0], [-170.0, 10.0], [-180.0, 10.0]]],
        ],
    }
    assert covered((175.0, 0.0), geometry) and covered((-175.0, 0.0), geometry)
    assert not covered((0.0, 0.0), geometry) and not covered((-165.0, 0.0), geometry)


def test_geographic_grid_touching_or_beyond_antimeridian_is_not_split():
    geometry, bbox = footprint(WGS84, Affine(1.0, 0.0, 160.0, 0.0, -1.0, 10.0), 20, 20)
    assert (geometry["type"], bbox) == ("Polygon", [160.0, -10.0, 180.0, 10.0])
    # entirely east of 180: shifted back, one polygon
    geometry, bbox = footprint(WGS84, Affine(1.0, 0.0, 185.0, 0.0, -1.0, 10.0), 10, 20)
    check_geojson(geometry, bbox)
    assert (geometry["type"], bbox) == ("Polygon", [-175.0, -10.0, -165.0, 10.0])


@pytest.mark.parametrize(
    ("epsg", "x0", "expected"),
    [
        (32660, 650000.0, [178.9077548, 45.0668537, -178.4078359, 46.9365659]),
        (32601, 150000.0, [178.4078359, 45.0668537, -178.9077548, 46.9365659]),
    ],
)
def test_utm_grid_crossing_antimeridian(epsg, x0, expected):
    crs = CRS.from_epsg(epsg)
    transform = Affine(1000.0, 0.0, x0, 0.0, -1000.0, 5200000.0)
    geometry, bbox = footprint(crs, transform, 200, 200)
    check_geojson(geometry, bbox)
    assert geometry["type"] == "MultiPolygon"
    assert bbox == pytest.approx(expected, abs=1e-7)
    reference = transform_bounds(crs, WGS84, x0, 5000000, x0 + 200000, 5200000, densify_pts=31)
    assert bbox == pytest.approx(list(reference), abs=1e-6)
    western, eastern = exteriors(geometry)
    assert min(p[0] for p in western) == bbox[0] and max(p[0] for p in western) == 180.0
    assert min(p[0] for p in eastern) == -180.0 and max(p[0] for p in eastern) == bbox[2]
    # both parts are cut at the same latitudes
    cut_w = sorted({p[1] for p in western if p[0] == 180.0})
    cut_e = sorted({p[1] for p in eastern if p[0] == -180.0})
    assert cut_w == cut_e and len(cut_w) == 2
    assert covered((179.5, 46.0), geometry) and covered((-179.5, 46.0), geometry)
    assert not covered((0.0, 46.0), geometry)


# --------------------------------------------------------------------------
# poles
# --------------------------------------------------------------------------


def test_polar_stereographic_grid_containing_north_pole():
    crs = CRS.from_epsg(3413)
    transform = Affine(10000.0, 0.0, -1000000.0, 0.0, -10000.0, 1000000.0)
    geometry, bbox = footprint(crs, transform, 200, 200)
    check_geojson(geometry, bbox)
    assert geometry["type"] == "Polygon"
    south = min(lat for _, lat in corners_wgs84(crs, transform, 200, 200))
    assert bbox[0] == -180.0 and bbox[2] == 180.0 and bbox[3] == 90.0
    assert bbox[1] == pytest.approx(south, abs=1e-7)
    assert bbox[1] == pytest.approx(76.9988155, abs=1e-6)
    ring = geometry["coordinates"][0]
    assert [180.0, 90.0] in ring and [-180.0, 90.0] in ring
    # edge midpoints are at lat 80.79 (lon 45, 135, -135, -45), corners at 77.0
    for lon in (-170.0, -90.0, 0.0, 45.0, 135.0, 179.0):
        assert covered((lon, 89.5), geometry)
        assert covered((lon, 81.0), geometry)
        assert not covered((lon, 76.0), geometry)
    for lon in (-90.0, 0.0, 90.0, 179.9):
        assert covered((lon, 77.5), geometry)
    for lon in (-135.0, -45.0, 45.0, 135.0):
        assert not covered((lon, 80.5), geometry)


def test_polar_grid_with_off_centre_pole_and_rotation():
    crs = CRS.from_epsg(3413)
    transform = (
        Affine.translation(-900000.0, 1200000.0) @ Affine.rotation(25.0) @ Affine.scale(20000.0, -20000.0)
    )
    geometry, bbox = footprint(crs, transform, 100, 100)
    check_geojson(geometry, bbox)
    assert geometry["type"] == "Polygon"
    assert bbox[::2] == [-180.0, 180.0] and bbox[3] == 90.0
    corners_lat = [lat for _, lat in corners_wgs84(crs, transform, 100, 100)]
    assert bbox[1] <= min(corners_lat) + 1e-7
    assert (~transform @ (0.0, 0.0))[0] == pytest.approx(15.43, abs=0.01)  # pole is inside
    for lon in (-179.0, -60.0, 10.0, 120.0):
        assert covered((lon, 89.9), geometry)


def test_polar_grid_not_containing_pole():
    crs = CRS.from_epsg(3413)
    transform = Affine(10000.0, 0.0, 500000.0, 0.0, -10000.0, 1000000.0)
    geometry, bbox = footprint(crs, transform, 100, 100)
    check_geojson(geometry, bbox)
    assert geometry["type"] == "Polygon"
    assert bbox[3] < 89.0
    assert bbox[2] - bbox[0] < 180.0
    assert not covered((0.0, 89.9), geometry)


def test_south_polar_stereographic_grid_containing_south_pole():
    crs = CRS.from_epsg(3031)
    transform = Affine(10000.0, 0.0, -1000000.0, 0.0, -10000.0, 1000000.0)
    geometry, bbox = footprint(crs, transform, 200, 200)
    check_geojson(geometry, bbox)
    assert geometry["type"] == "Polygon"
    north = max(lat for _, lat in corners_wgs84(crs, transform, 200, 200))
    assert bbox[:3] == [-180.0, -90.0, 180.0]
    assert bbox[3] == pytest.approx(north, abs=1e-7)
    ring = geometry["coordinates"][0]
    assert [-180.0, -90.0] in ring and [180.0, -90.0] in ring
    for lon in (-135.0, -1.0, 60.0, 179.0):
        assert covered((lon, -89.5), geometry)
        assert not covered((lon, -70.0), geometry)


@pytest.mark.parametrize("epsg", [3413, 3031])
@pytest.mark.parametrize(
    "transform",
    [
        Affine(10000.0, 0.0, -1e6, 0.0, 10000.0, -1e6),  # rows run north: ring winds the other way
        Affine(-10000.0, 0.0, 1e6, 0.0, -10000.0, 1e6),  # mirrored columns
    ],
)
def test_pole_result_does_not_depend_on_grid_orientation(epsg, transform):
    crs = CRS.from_epsg(epsg)
    reference = footprint(crs, Affine(10000.0, 0.0, -1e6, 0.0, -10000.0, 1e6), 200, 200)
    geometry, bbox = footprint(crs, transform, 200, 200)
    check_geojson(geometry, bbox)
    assert bbox == reference[1]
    assert geometry == reference[0]


def test_polar_grid_crossing_antimeridian_without_pole():
    # centred on lon 180, lat 80 in EPSG:3413, 400 km wide: well away from the pole
    crs = CRS.from_epsg(3413)
    transform = Affine(1000.0, 0.0, -967861.6, 0.0, -1000.0, 967861.6)
    geometry, bbox = footprint(crs, transform, 400, 400)
    check_geojson(geometry, bbox)
    assert geometry["type"] == "MultiPolygon"
    assert bbox[0] > 160.0 and bbox[2] < -160.0 and bbox[3] < 85.0
    assert covered((179.9, 80.0), geometry) and covered((-179.9, 80.0), geometry)
    assert not covered((0.0, 80.0), geometry) and not covered((0.0, 89.9), geometry)


def test_one_huge_pixel_over_the_pole():
    crs = CRS.from_epsg(3413)
    geometry, bbox = footprint(crs, Affine(2e6, 0.0, -1e6, 0.0, -2e6, 1e6), 1, 1)
    check_geojson(geometry, bbox)
    assert bbox[::2] == [-180.0, 180.0] and bbox[3] == 90.0
    assert bbox[1] == pytest.approx(76.9988155, abs=1e-6)


# --------------------------------------------------------------------------
# whole-globe grids
# --------------------------------------------------------------------------


@pytest.mark.parametrize("x0", [0.0, -180.0])
def test_global_geographic_grid(x0):
    geometry, bbox = footprint(WGS84, Affine(1.0, 0.0, x0, 0.0, -1.0, 90.0), 360, 180)
    check_geojson(geometry, bbox)
    assert bbox == [-180.0, -90.0, 180.0, 90.0]
    assert geometry["type"] == "Polygon"
    assert signed_area(geometry["coordinates"][0]) == pytest.approx(360.0 * 180.0)


def test_global_band_keeps_its_latitudes():
    geometry, bbox = footprint(WGS84, Affine(0.5, 0.0, 0.0, 0.0, -0.5, 60.0), 720, 240)
    check_geojson(geometry, bbox)
    assert (geometry["type"], bbox) == ("Polygon", [-180.0, -60.0, 180.0, 60.0])


def test_global_web_mercator_grid():
    half = 20037508.342789244
    crs = CRS.from_epsg(3857)
    size = 2 * half / 256
    geometry, bbox = footprint(crs, Affine(size, 0.0, -half, 0.0, -size, half), 256, 256)
    check_geojson(geometry, bbox)
    assert geometry["type"] == "Polygon"
    assert bbox == pytest.approx([-180.0, -85.0511288, 180.0, 85.0511288], abs=1e-7)


# --------------------------------------------------------------------------
# pixel size extremes
# --------------------------------------------------------------------------


def test_tiny_pixels():
    geometry, bbox = footprint(WGS84, Affine(1e-6, 0.0, 12.5, 0.0, -1e-6, 45.5), 1, 1)
    check_geojson(geometry, bbox)
    assert bbox == [12.5, 45.499999, 12.500001, 45.5]
    assert len(geometry["coordinates"][0]) == 5


def test_tiny_projected_pixels():
    crs = CRS.from_epsg(32633)
    geometry, bbox = footprint(crs, Affine(0.5, 0.0, 500000.0, 0.0, -0.5, 5000000.0), 3, 2)
    check_geojson(geometry, bbox)
    assert 0 < bbox[2] - bbox[0] < 3e-5 and 0 < bbox[3] - bbox[1] < 2e-5
    assert bbox[0] == pytest.approx(15.0, abs=1e-7)


def test_huge_pixels():
    geometry, bbox = footprint(WGS84, Affine(10.0, 0.0, -30.0, 0.0, -10.0, 40.0), 1, 1)
    check_geojson(geometry, bbox)
    assert bbox == [-30.0, 30.0, -20.0, 40.0]
    # a 36 x 18 grid of 10-degree pixels is the whole globe
    _, bbox = footprint(WGS84, Affine(10.0, 0.0, -180.0, 0.0, -10.0, 90.0), 36, 18)
    assert bbox == [-180.0, -90.0, 180.0, 90.0]
    # a single 10-degree pixel straddling the antimeridian is split
    geometry, bbox = footprint(WGS84, Affine(10.0, 0.0, 175.0, 0.0, -10.0, 10.0), 1, 1)
    check_geojson(geometry, bbox)
    assert geometry["type"] == "MultiPolygon"
    assert bbox == [175.0, 0.0, -175.0, 10.0]


# --------------------------------------------------------------------------
# GCPs
# --------------------------------------------------------------------------


def test_footprint_from_gcps_uses_affine_fit():
    gcps = [
        GroundControlPoint(row=0, col=0, x=10.0, y=50.0),
        GroundControlPoint(row=0, col=100, x=20.0, y=50.0),
        GroundControlPoint(row=50, col=0, x=10.0, y=45.0),
        GroundControlPoint(row=50, col=100, x=20.0, y=45.0),
    ]
    geometry, bbox = footprint_from_gcps(gcps, WGS84, 100, 50)
    check_geojson(geometry, bbox)
    assert bbox == pytest.approx([10.0, 45.0, 20.0, 50.0], abs=1e-7)
    assert (geometry, bbox) == footprint(WGS84, Affine(0.1, 0.0, 10.0, 0.0, -0.1, 50.0), 100, 50)


def test_footprint_from_gcps_errors():
    good = [
        GroundControlPoint(row=0, col=0, x=10.0, y=50.0),
        GroundControlPoint(row=0, col=100, x=20.0, y=50.0),
        GroundControlPoint(row=50, col=0, x=10.0, y=45.0),
    ]
    with pytest.raises(NoGeoreferenceError):
        footprint_from_gcps([], WGS84, 100, 50)
    with pytest.raises(NoGeoreferenceError):
        footprint_from_gcps(good, None, 100, 50)
    with pytest.raises(InputError, match="at least 3"):
        footprint_from_gcps(good[:2], WGS84, 100, 50)
    collinear = [GroundControlPoint(row=i, col=i, x=10.0 + i, y=50.0 - i) for i in range(3)]
    with pytest.raises(InputError, match="collinear in pixel space"):
        footprint_from_gcps(collinear, WGS84, 100, 50)


# --------------------------------------------------------------------------
# errors
# --------------------------------------------------------------------------


@pytest.mark.parametrize("crs", [None, CRS()])
def test_missing_crs(crs):
    with pytest.raises(NoGeoreferenceError, match="CRS") as info:
        footprint(crs, Affine(1.0, 0.0, 0.0, 0.0, -1.0, 0.0), 10, 10)
    assert isinstance(info.value, ValueError)


@pytest.mark.parametrize(
    "transform",
    [
        Affine(0.0, 0.0, 10.0, 0.0, -1.0, 50.0),  # zero pixel width
        Affine(1.0, 0.0, 10.0, 0.0, 0.0, 50.0),  # zero pixel height
        Affine(1.0, 2.0, 10.0, 0.5, 1.0, 50.0),  # parallel pixel axes
        Affine(0.0, 0.0, 0.0, 0.0, 0.0, 0.0),
    ],
)
def test_degenerate_transform(transform):
    with pytest.raises(InputError, match="degenerate geotransform.*determinant"):
        footprint(WGS84, transform, 10, 10)


def test_bad_sizes_and_options():
    transform = Affine(1.0, 0.0, 0.0, 0.0, -1.0, 0.0)
    with pytest.raises(InputError, match="width"):
        footprint(WGS84, transform, 0, 10)
    with pytest.raises(InputError, match="height"):
        footprint(WGS84, transform, 10, -1)
    with pytest.raises(InputError, match="densify"):
        footprint(WGS84, transform, 10, 10, densify=0)
    with pytest.raises(InputError, match="NaN"):
        footprint(WGS84, Affine(math.nan, 0.0, 0.0, 0.0, -1.0, 0.0), 10, 10)


def test_unprojectable_grid():
    # an orthographic grid entirely off the visible hemisphere
    crs = CRS.from_proj4("+proj=ortho +lat_0=0 +lon_0=0 +datum=WGS84")
    with pytest.raises(InputError, match="cannot be reprojected"):
        footprint(crs, Affine(1000.0, 0.0, 7e6, 0.0, -1000.0, 1000.0), 10, 10)


# --- fast paths equal the generic forms (pure speedups: same output bit for bit) ---


def _rings() -> list[np.ndarray]:
    """Open lon rings: straight, jittered, crossing the antimeridian, winding
    around a pole, steps of exactly 180, negative zeros."""
    rng = np.random.default_rng(12)
    rings = [
        np.linspace(-10.0, 10.0, 129),
        np.concatenate([np.linspace(170.0, 179.0, 40), np.linspace(-179.0, -170.0, 40)]),
        np.linspace(-180.0, 540.0, 97) % 360.0 - 180.0,  # winds once round a pole
        np.array([0.0, 180.0, 0.0, -180.0, 0.0]),
        np.array([-0.0, 0.0, -0.0, 1e-300, -1e-300]),
        np.array([5.0]),
    ]
    rings += [rng.uniform(-180.0, 180.0, size) for size in (3, 17, 128)]
    rings += [np.cumsum(rng.normal(0.0, 60.0, 200)) for _ in range(5)]
    return rings


@pytest.mark.parametrize("k", range(len(_rings())))
def test_unwrap_fast_path_equals_numpy_unwrap(k):
    from producer.extract.footprint import _unwrap360

    values = _rings()[k]
    fast, generic = _unwrap360(values), np.unwrap(values, period=360.0)
    assert fast.dtype == generic.dtype
    assert fast.tobytes() == generic.tobytes()  # bit for bit, signs of zero included


def test_straight_points_equal_the_pointwise_test():
    from producer.extract.footprint import _straight_points

    rng = np.random.default_rng(3)
    edge = np.round(np.linspace(0.0, 1.0, 33), 7)
    square = np.concatenate(
        [
            np.column_stack([edge, np.zeros(33)]),
            np.column_stack([np.ones(33), edge]),
            np.column_stack([edge[::-1], np.ones(33)]),
            np.column_stack([np.zeros(33), edge[::-1]]),
        ]
    )
    rings = [
        square,
        np.round(rng.uniform(-1, 1, (64, 2)), 2),
        np.round(square + rng.normal(0, 1e-8, square.shape), 7),
    ]
    rings.append(np.array([[0.0, 0.0], [1.0, 0.0], [2.0, 0.0], [1.0, 0.0], [0.0, 0.0]]))  # doubling back
    for ring in rings:
        xs, ys = ring[:, 0].tolist(), ring[:, 1].tolist()
        assert _straight_points(xs, ys) == [_straight_at(xs, ys, i) for i in range(len(xs))]


def _straight_at(xs: list[float], ys: list[float], i: int) -> bool:
    """The pointwise test of :func:`producer.extract.footprint._not_straight`."""
    n = len(xs)
    p, q = (i - 1) % n, (i + 1) % n
    ux, uy = xs[i] - xs[p], ys[i] - ys[p]
    vx, vy = xs[q] - xs[i], ys[q] - ys[i]
    return ux * vy - uy * vx == 0.0 and ux * vx + uy * vy > 0.0


# --------------------------------------------------------------------------
# global grids whose corners lie off the Earth
# --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("crs", "half_width", "half_height"),
    [
        ("ESRI:54009", 18_041_000.0, 9_000_000.0),  # GHSL's global Mollweide grid
        ("ESRI:54009", 18_040_095.7, 9_020_047.8),
        ("EPSG:8857", 17_243_959.06, 8_392_927.6),  # Equal Earth
    ],
)
def test_global_grid_of_a_world_projection_is_the_whole_world(crs, half_width, half_height):
    """The outline of a world map in an elliptical projection lies outside the
    projection's domain (only the middle of each edge touches the Earth): it
    was refused as "cannot be reprojected to WGS84", so a global product could
    not be registered at all."""
    width, height = 360, 180
    transform = Affine(2 * half_width / width, 0.0, -half_width, 0.0, -2 * half_height / height, half_height)
    geometry, bbox = footprint(CRS.from_user_input(crs), transform, width, height)
    check_geojson(geometry, bbox)
    assert bbox[0] == -180.0 and bbox[2] == 180.0
    assert bbox[1] == pytest.approx(-90.0, abs=1.0) and bbox[3] == pytest.approx(90.0, abs=1.0)


def test_grid_wholly_off_the_earth_is_still_refused():
    # a Mollweide grid beyond the ellipse's corner holds no point of the Earth
    transform = Affine(1000.0, 0.0, 17_500_000.0, 0.0, -1000.0, 9_000_000.0)
    with pytest.raises(InputError, match="cannot be reprojected"):
        footprint(CRS.from_user_input("ESRI:54009"), transform, 100, 100)


@pytest.mark.parametrize(
    ("proj", "half", "lon_0"),
    [
        ("+proj=geos +lon_0=0 +h=35785831 +a=6378169 +b=6356583.8 +units=m +no_defs", 5_568_748.28, 0.0),
        ("+proj=geos +lon_0=-75 +h=35786023 +ellps=GRS80 +units=m +sweep=x +no_defs", 5_434_894.89, -75.0),
    ],
    ids=["seviri", "goes-east"],
)
def test_geostationary_full_disk_is_the_visible_disk(proj, half, lon_0):
    """A full-disk image (SEVIRI, GOES ABI) has its corners and most of its
    edges in space: it was refused ("cannot be reprojected to WGS84"). Its
    footprint is the Earth's disk as the satellite sees it: about 81.3
    degrees around the sub-satellite point."""
    transform = Affine(2 * half / 64, 0.0, -half, 0.0, -2 * half / 64, half)
    geometry, bbox = footprint(CRS.from_proj4(proj), transform, 64, 64)
    check_geojson(geometry, bbox)
    west, south, east, north = bbox
    assert west == pytest.approx(lon_0 - 81.3, abs=0.2) and east == pytest.approx(lon_0 + 81.3, abs=0.2)
    assert south == pytest.approx(-81.3, abs=0.3) and north == pytest.approx(81.3, abs=0.3)
    (ring,) = exteriors(geometry)
    assert inside((lon_0, 0.0), ring) and inside((lon_0 + 70.0, 0.0), ring)
    assert not inside((lon_0 + 70.0, 70.0), ring)  # a disk, not its bounding box


#: MODIS's sinusoidal grid (as its HDF-EOS and GeoTIFF products declare it)
#: and one tile's size: 36 x 18 tiles of 1,111,950.52 m
MODIS_SINUSOIDAL = "+proj=sinu +lon_0=0 +x_0=0 +y_0=0 +R=6371007.181 +units=m +no_defs"
MODIS_TILE = 1_111_950.5197665554


def modis_tile(h: int, v: int, pixels: int = 240) -> Affine:
    size = MODIS_TILE / pixels
    return Affine(size, 0.0, -20_015_109.354 + h * MODIS_TILE, 0.0, -size, 10_007_554.677 - v * MODIS_TILE)


@pytest.mark.parametrize(
    ("h", "v", "west", "south", "east", "north"),
    [
        # the western edge tile at 0-10 N: its pixels west of 180 W are off the Earth
        (0, 8, -180.0, 0.0, -170.0, 10.0),
        # Fiji's tile at 10-20 S: the Earth ends at 180 E inside it, at 19.2 S on its left edge
        (35, 10, 172.6225, -19.19, 180.0, -10.0),
    ],
)
def test_sinusoidal_tile_at_the_maps_edge_stops_at_the_antimeridian(h, v, west, south, east, north):
    """The pixels of a MODIS tile beyond the sinusoidal map's edge are off
    the Earth, but PROJ gives them longitudes wrapped to the other side: the
    tile was published as crossing the antimeridian, covering 177-180 E (h00v08)
    or 180-168 W (h35v10) where it holds no pixel, so searches there found it."""
    geometry, bbox = footprint(CRS.from_user_input(MODIS_SINUSOIDAL), modis_tile(h, v), 240, 240)
    check_geojson(geometry, bbox)
    assert geometry["type"] == "Polygon"
    assert bbox[0] < bbox[2]  # no crossing
    assert bbox[0] == pytest.approx(west, abs=0.01) and bbox[2] == pytest.approx(east, abs=0.1)
    assert bbox[1] == pytest.approx(south, abs=0.2) and bbox[3] == pytest.approx(north, abs=0.01)


def test_sinusoidal_tile_inside_the_map_is_its_reprojected_outline():
    """A tile wholly on the Earth (h18v04, central Europe) is not touched by the
    edge check: its bbox is the densified outline's, as for any projection."""
    transform = modis_tile(18, 4)
    crs = CRS.from_user_input(MODIS_SINUSOIDAL)
    _, bbox = footprint(crs, transform, 240, 240)
    xs = [transform.c + i * MODIS_TILE / 32 for i in range(33)]
    lon, lat = warp_transform(crs, "EPSG:4326", xs + xs, [transform.f] * 33 + [transform.f - MODIS_TILE] * 33)
    assert bbox[0] == pytest.approx(min(lon), abs=1e-6) and bbox[2] == pytest.approx(max(lon), abs=1e-6)
    assert bbox[1] == pytest.approx(min(lat), abs=1e-6) and bbox[3] == pytest.approx(max(lat), abs=1e-6)

"""Pixel grid -> STAC ``geometry`` and ``bbox`` in WGS84 (lon/lat order).

The outline of the pixel grid (its outer pixel *edges*, not pixel centres) is
densified in pixel space, pushed through the affine geotransform (so rotated
and sheared grids are right) and reprojected to EPSG:4326 with
:func:`rasterio.warp.transform`. The lon/lat ring is then made GeoJSON-proper:

* longitudes are unwrapped along the ring (a step of more than 180 degrees
  between consecutive points is an antimeridian crossing);
* a ring whose unwrapped longitudes wind once around the globe encloses a pole
  and becomes a polygon running along the raster edge and over the pole, with
  ``bbox = [-180, south, 180, 90]`` (or ``[-180, -90, 180, north]``);
* a ring spanning 360 degrees or more of longitude without enclosing a pole
  (a global grid) becomes the latitude band ``[-180, south, 180, north]``;
* a ring leaving [-180, 180] is split at the antimeridian into a MultiPolygon
  whose parts are shifted back into range, and ``bbox`` has ``west > east``
  (RFC 7946 section 5.2).

Exterior rings are counter-clockwise (RFC 7946 right-hand rule) and closed,
coordinates are rounded to :data:`DECIMALS` places (about 1 cm), consecutive
duplicates and exactly collinear intermediate points are dropped. Everything
here is pure computation: no file or network I/O, no work at import time.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Iterable, Sequence
from numbers import Integral
from typing import Any

import numpy as np
import rasterio.transform
import rasterio.warp
from affine import Affine
from rasterio.control import GroundControlPoint
from rasterio.crs import CRS

from producer.errors import InputError, NoGeoreferenceError

__all__ = [
    "DECIMALS",
    "NotReprojectableError",
    "footprint",
    "footprint_from_gcps",
    "footprint_from_lonlat",
    "native_bbox",
    "unwrapped_gcps",
    "native_envelope",
]

#: decimal places kept in output coordinates (1e-7 degree is about 1 cm)
DECIMALS = 7

# Target CRS, as a string so that no CRS object is built at import time.
_WGS84 = "EPSG:4326"

# A pixel grid whose axes are closer to parallel than this (|sin(angle)|)
# is treated as degenerate.
_MIN_AXIS_SINE = 1e-12

# If rounding to DECIMALS collapses a ring (sub-centimetre raster), more
# places are tried before giving up.
_FALLBACK_DECIMALS = (DECIMALS, 10, 13)

Ring = np.ndarray  # shape (n, 2): an *open* ring of (lon, lat) points

#: projections of the whole world whose width narrows away from the equator
#: (pseudo-cylindrical and the like: MODIS/VIIRS tiles are sinusoidal). A
#: point beyond a map's edge is off the Earth, yet PROJ's inverse gives it
#: a longitude past 180 wrapped to the other side, so a tile at the map's
#: edge seemed to cover longitudes across the antimeridian it holds no
#: pixel of. Cylindrical projections (x periodic: past 180 IS the other
#: side) and the ones whose points off the Earth PROJ refuses (Mollweide,
#: Robinson, Goode: those come back infinite) are not listed.
_BOUNDED_X = re.compile(
    r"Sinusoidal|Eckert|Winkel|Natural.Earth|Equal.Earth|Aitoff|Hammer|Kavrayskiy|Flat.Polar|Wagner"
    r"|Loximuthal|Putnins|Craster|Quartic.Authalic|Boggs"
    r"|\+proj=(?:sinu|eck\d|wintri|natearth2?|eqearth|aitoff|hammer|kav\d|mbt\w*|wag\d|loxim|putp\w*"
    r"|crast|qua_aut|boggs|times|patterson)\b",
    re.IGNORECASE,
)


class NotReprojectableError(InputError):
    """No point of the grid's outline has a place in WGS84: the grid lies
    outside its CRS's domain, or the CRS is not of the Earth."""


# --------------------------------------------------------------------------
# public API
# --------------------------------------------------------------------------


def native_bbox(transform: Affine, width: int, height: int) -> list[float]:
    """Return ``[minx, miny, maxx, maxy]`` of the pixel grid in its own CRS.

    The four outer corners of the grid (pixel edges ``(0, 0)``,
    ``(width, 0)``, ``(width, height)``, ``(0, height)``) are mapped through
    ``transform`` and their extremes taken, so the result is right for
    rotated and sheared geotransforms too. Intended for ``proj:bbox``; an
    affine map keeps straight lines straight, so the corners suffice.
    """
    _check_grid(transform, width, height)
    cols = np.array([0.0, width, width, 0.0])
    rows = np.array([0.0, 0.0, height, height])
    xs, ys = _apply(transform, cols, rows)
    return [float(xs.min()), float(ys.min()), float(xs.max()), float(ys.max())]


def native_envelope(crs: CRS, boxes: Sequence[Sequence[float]]) -> list[float]:
    """Return ``[minx, miny, maxx, maxy]`` in ``crs`` covering every box of
    ``boxes`` (each ``[minx, miny, maxx, maxy]`` in ``crs``).

    In a projected CRS: the plain envelope. In a geographic CRS longitudes
    wrap: a box with ``minx > maxx`` crosses the antimeridian (rasterio's
    ``transform_bounds`` returns such boxes), and the boxes are covered by
    the narrowest longitude range, whose east may run past 180 (170..190 for
    boxes at 170..180 and -180..-170); :func:`footprint` of a grid over that
    range splits it at the antimeridian as it does a single raster's. The
    plain envelope is kept unless a narrower range exists.
    """
    crs = _check_crs(crs)
    south, north = min(b[1] for b in boxes), max(b[3] for b in boxes)
    degrees = _degrees_per_unit(crs) if crs.is_geographic else None
    if degrees is None:
        return [min(b[0] for b in boxes), south, max(b[2] for b in boxes), north]
    period = 360.0 / degrees
    spans = [(float(w), float(e) if e >= w else float(e) + period) for w, _, e, _ in boxes]
    west, east = min(w for w, _ in spans), max(e for _, e in spans)
    for start, _ in spans:  # the narrowest range begins where one of the boxes begins
        far = max(start + (w - start) % period + (e - w) for w, e in spans)
        if far - start < (east - west) - 1e-9 * period:
            west, east = start, far
    return [west, south, east, north]


def footprint(
    crs: CRS,
    transform: Affine,
    width: int,
    height: int,
    *,
    densify: int = 32,
) -> tuple[dict, list[float]]:
    """Return ``(GeoJSON geometry dict, bbox [west, south, east, north])`` in WGS84.

    :param crs: CRS of the raster (a :class:`rasterio.crs.CRS`, or anything
        :meth:`CRS.from_user_input` accepts).
    :param transform: pixel -> CRS geotransform (pixel edges, GDAL convention).
    :param width: number of columns (> 0).
    :param height: number of rows (> 0).
    :param densify: number of segments each of the four grid edges is cut
        into before reprojection (>= 1). The bbox is computed from all of
        these points, not only the corners.

    The geometry is a ``Polygon``, or a ``MultiPolygon`` of two parts when
    the footprint crosses the antimeridian (then ``west > east`` in the
    bbox). Footprints enclosing a pole, and footprints spanning the whole
    globe in longitude, are single polygons with ``west = -180`` and
    ``east = 180``; see the module docstring.

    :raises NoGeoreferenceError: ``crs`` is ``None`` or empty.
    :raises InputError: degenerate transform, bad size, or a grid that does
        not reproject to WGS84.
    """
    crs = _check_crs(crs)
    _check_grid(transform, width, height)
    if isinstance(densify, bool) or not isinstance(densify, Integral) or densify < 1:
        raise InputError(f"densify must be an integer >= 1, got {densify!r}")

    try:
        lon, lat, winding, whole = _wgs84_ring(crs, transform, width, height, int(densify))
    except InputError:
        world = _world_band(crs, transform, width, height)
        if world is None:
            raise
        return world
    if not whole:  # part of the outline is off the Earth: a world map's, or a grid at its projection's edge
        world = _world_band(crs, transform, width, height)
        if world is not None:
            return world
    pole = 0
    if abs(winding) > 180.0:
        pole = _enclosed_pole(crs, transform, width, height, lat)

    for decimals in _FALLBACK_DECIMALS:
        result = _build(lon, lat, winding, pole, decimals)
        if result is not None:
            return result
    raise InputError(
        f"footprint of the {width}x{height} pixel grid collapses to a point "
        f"or a line in WGS84 (transform {tuple(transform)[:6]})"
    )


def footprint_from_gcps(
    gcps: Sequence[GroundControlPoint],
    gcp_crs: Any,
    width: int,
    height: int,
    *,
    densify: int = 32,
) -> tuple[dict, list[float]]:
    """Same as :func:`footprint`, for a raster georeferenced by GCPs.

    The GCPs are reduced to an *affine approximation* of the georeferencing
    with :func:`rasterio.transform.from_gcps` (a least-squares fit), and the
    footprint of that affine grid is returned. Rasters whose true
    GCP warp is strongly non-affine (e.g. swath data needing thin-plate
    splines or higher-order polynomials) get an approximate outline.

    :raises NoGeoreferenceError: no GCPs, or ``gcp_crs`` is ``None``/empty.
    :raises InputError: fewer than 3 GCPs, or GCPs that are collinear in
        pixel or in map space (no affine fit exists).
    """
    gcps = list(gcps or [])
    if not gcps:
        raise NoGeoreferenceError("raster has no ground control points (GCPs) to georeference it")
    crs = _check_crs(gcp_crs, what="the GCPs")
    if len(gcps) < 3:
        raise InputError(f"an affine fit needs at least 3 ground control points, got {len(gcps)}")
    pixel = np.array([(g.col, g.row) for g in gcps], dtype=float)
    world = np.array([(g.x, g.y) for g in gcps], dtype=float)
    if not (np.isfinite(pixel).all() and np.isfinite(world).all()):
        raise InputError("ground control points contain NaN or infinite coordinates")
    for name, pts in (("pixel", pixel), ("map", world)):
        if not _spans_plane(pts):
            raise InputError(
                f"the {len(gcps)} ground control points are collinear in {name} "
                "space; an affine georeference cannot be derived from them"
            )
    transform = _fitted(pixel, gcps, unwrapped_gcps(gcps, crs))
    return footprint(crs, transform, width, height, densify=densify)


def _fit_residual(pixel: np.ndarray, gcps: Sequence[GroundControlPoint]) -> float:
    """Root mean square distance, in map units, of ``gcps`` from the least-squares
    affine fit through them; infinite when they are collinear in map space."""
    world = np.array([(g.x, g.y) for g in gcps], dtype=float)
    if not _spans_plane(world):
        return float("inf")
    design = np.column_stack([pixel, np.ones(len(pixel))])
    fit, *_ = np.linalg.lstsq(design, world, rcond=None)
    return float(np.sqrt(np.mean((design @ fit - world) ** 2)))


def _fitted(
    pixel: np.ndarray, gcps: Sequence[GroundControlPoint], unwrapped: Sequence[GroundControlPoint]
) -> Affine:
    """The affine transform fitted to the GCPs as given or unwrapped
    (:func:`unwrapped_gcps`), whichever an affine grid fits better: across
    the antimeridian the unwrapped ones, around the whole turn (a polar cap
    from -180 to 180) the given ones, which unwrapping puts on one meridian.
    ``rasterio.transform.from_gcps`` returns uninitialised memory when its
    fit fails, so it is only asked for GCPs that span the plane."""
    given, turned = _fit_residual(pixel, gcps), _fit_residual(pixel, unwrapped)
    chosen = unwrapped if turned <= given else gcps
    if min(given, turned) == float("inf"):
        raise InputError(
            f"the {len(gcps)} ground control points are collinear in map space; an affine georeference "
            "cannot be derived from them"
        )
    return rasterio.transform.from_gcps(list(chosen))


def unwrapped_gcps(gcps: Sequence[GroundControlPoint], crs: CRS) -> list[GroundControlPoint]:
    """``gcps`` with longitudes (a geographic CRS's x) on one turn, the first GCP's.

    A swath crossing the antimeridian has GCPs at 179.5 and -179.5: fitted as
    they are, its affine georeference spans 359 degrees the wrong way round.
    Each GCP's longitude is taken within 180 degrees of the first's instead
    (a grid past 180 is what :func:`footprint` expects of such an image).
    Other CRSs: ``gcps`` unchanged.
    """
    degrees = _degrees_per_unit(crs) if crs.is_geographic else None
    if degrees is None or not gcps:
        return list(gcps)
    x0 = float(gcps[0].x)
    unwrapped = []
    for g in gcps:
        x = x0 + float(_wrap180(np.asarray((float(g.x) - x0) * degrees))) / degrees
        unwrapped.append(GroundControlPoint(row=g.row, col=g.col, x=x, y=g.y, z=g.z, id=g.id, info=g.info))
    return unwrapped


def footprint_from_lonlat(
    lon: Any, lat: Any, extremes: tuple[float, float] | None = None
) -> tuple[dict, list[float]]:
    """Same as :func:`footprint`, for a grid known only by the positions of
    its cells (2-D lat/lon arrays of a curvilinear grid, or a mesh of
    irregular axes): ``lon``/``lat`` are an open ring of points in degrees
    along the grid's border, in order around it.

    Non-finite points and latitudes beyond +-90 are skipped. Longitudes are
    unwrapped along the ring and the result built as for a pixel grid: a
    ring winding once around the globe encloses a pole (the one of the
    hemisphere the ring lies in on average: these grids have no CRS in which
    to place it) and becomes a polygon over it; a ring crossing the
    antimeridian is cut there. ``extremes``: the lowest and highest
    latitude of every cell (not only the border's), when known: such a ring
    encloses the pole nearer to them (a tripolar or displaced-pole ocean
    grid's border lies mostly in the south although it winds around the
    north).

    :raises InputError: fewer than 3 valid points, or an outline that
        collapses to a point or a line.
    """
    lon = np.asarray(lon, dtype=float).ravel()
    lat = np.asarray(lat, dtype=float).ravel()
    ok = np.isfinite(lon) & np.isfinite(lat) & (np.abs(lat) <= 90.0)
    if ok.sum() < 3:
        raise InputError(f"the outline holds {int(ok.sum())} valid lon/lat position(s), fewer than 3")
    lon, lat = _wrap180(lon[ok]), lat[ok]
    closed = _unwrap360(np.append(lon, lon[0]))
    winding = float(closed[-1] - closed[0])
    pole = 0
    if abs(winding) > 180.0:
        if extremes is not None and all(math.isfinite(v) for v in extremes):
            pole = 1 if extremes[1] >= -extremes[0] else -1
        else:
            pole = 1 if float(np.mean(lat)) >= 0.0 else -1
    for decimals in _FALLBACK_DECIMALS:
        result = _build(closed[:-1], lat, winding, pole, decimals)
        if result is not None:
            return result
    raise InputError("the outline of the lon/lat positions collapses to a point or a line")


# --------------------------------------------------------------------------
# validation
# --------------------------------------------------------------------------


def _check_crs(crs: Any, what: str = "the raster") -> CRS:
    """Return ``crs`` as a non-empty :class:`CRS` or raise."""
    if crs is None:
        raise NoGeoreferenceError(f"{what} has no CRS; cannot compute a footprint")
    if not isinstance(crs, CRS):
        try:
            crs = CRS.from_user_input(crs)
        except Exception as exc:  # rasterio raises CRSError; keep the cause
            raise InputError(f"unusable CRS {crs!r}: {exc}") from exc
    if not crs:
        raise NoGeoreferenceError(f"{what} has an empty CRS; cannot compute a footprint")
    return crs


def _check_grid(transform: Affine, width: int, height: int) -> None:
    """Raise :class:`InputError` for a bad grid size or a degenerate transform."""
    for name, value in (("width", width), ("height", height)):
        if isinstance(value, bool) or not isinstance(value, Integral) or value <= 0:
            raise InputError(f"raster {name} must be a positive integer, got {value!r}")
    if not isinstance(transform, Affine):
        raise InputError(f"geotransform must be an affine.Affine, got {type(transform).__name__}")
    a, b, c, d, e, f = (float(v) for v in _coefficients(transform))
    if not all(math.isfinite(v) for v in (a, b, c, d, e, f)):
        raise InputError(f"geotransform {(a, b, c, d, e, f)} contains NaN or infinite values")
    det = a * e - b * d
    scale = math.hypot(a, d) * math.hypot(b, e)
    if scale == 0.0 or abs(det) <= _MIN_AXIS_SINE * scale:
        raise InputError(
            f"degenerate geotransform {(a, b, c, d, e, f)}: determinant {det!r} is zero "
            "(a pixel size is 0 or the pixel axes are parallel), so the pixel grid "
            "has no area; fix the raster's georeferencing"
        )


def _spans_plane(points: np.ndarray) -> bool:
    """True when ``points`` (n, 2) are not all on one line."""
    centred = points - points.mean(axis=0)
    singular = np.linalg.svd(centred, compute_uv=False)
    return bool(singular[0] > 0 and singular[-1] > 1e-9 * singular[0])


# --------------------------------------------------------------------------
# outline -> unwrapped lon/lat ring
# --------------------------------------------------------------------------


def _coefficients(transform: Affine) -> tuple[float, float, float, float, float, float]:
    """``tuple(transform)[:6]``, read from the attributes: ``Affine``'s
    iteration goes through ``attrs.astuple`` (a footprint reads them 5 times)."""
    return transform.a, transform.b, transform.c, transform.d, transform.e, transform.f


def _apply(transform: Affine, cols: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Vectorised ``transform * (cols, rows)``."""
    a, b, c, d, e, f = _coefficients(transform)
    return a * cols + b * rows + c, d * cols + e * rows + f


def _outline(width: int, height: int, densify: int) -> tuple[np.ndarray, np.ndarray]:
    """Open ring of pixel-edge coordinates, ``densify`` segments per side."""
    t = np.arange(densify, dtype=float) / densify
    zeros, ones = np.zeros(densify), np.ones(densify)
    # top edge left->right, right edge down, bottom edge right->left, left edge up
    cols = np.concatenate([t, ones, 1.0 - t, zeros]) * width
    rows = np.concatenate([zeros, t, ones, 1.0 - t]) * height
    return cols, rows


def _reproject(crs: CRS, xs: np.ndarray, ys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Transform to WGS84; points PROJ cannot transform come back as NaN."""
    try:
        lon, lat = rasterio.warp.transform(crs, _WGS84, xs, ys)
    except Exception:  # PROJ failure (rasterio._err.CPLE_*, not public): go point by point
        lon, lat = [], []
        for x, y in zip(xs, ys):
            try:
                (lo,), (la,) = rasterio.warp.transform(crs, _WGS84, [x], [y])
            except Exception:
                lo = la = math.nan
            lon.append(lo)
            lat.append(la)
    return np.asarray(lon, dtype=float), np.asarray(lat, dtype=float)


def _bounded_x(crs: CRS) -> bool:
    """Whether ``crs`` is a projection of :data:`_BOUNDED_X` (decided on its WKT)."""
    try:
        return _bounded_wkt(crs.to_wkt())
    except Exception:  # a CRS without a WKT form: nothing to decide on
        return False


@functools.lru_cache(maxsize=64)
def _bounded_wkt(wkt: str) -> bool:
    return bool(not wkt.startswith(("GEOGCS", "GEOGCRS")) and _BOUNDED_X.search(wkt))


def _comes_back(crs: CRS, xs: np.ndarray, ys: np.ndarray, lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
    """Which points of a :func:`_bounded_x` grid are on the Earth: those whose
    WGS84 position projects back to where they were (within a millimetre per
    kilometre from the origin). One off the map's edge came back a whole
    turn of longitude away. A point on the edge itself may come back on the
    opposite edge: it is kept, its longitude moved to its own side (``lon``
    is changed in place: -180 for a point on the western edge)."""
    good = np.isfinite(lon) & np.isfinite(lat)
    if not good.any():
        return good
    back_x, back_y = (
        np.asarray(v, dtype=float)
        for v in rasterio.warp.transform(_WGS84, crs, lon[good].tolist(), lat[good].tolist())
    )
    tolerance = 1e-3 + 1e-6 * (np.abs(xs[good]) + np.abs(ys[good]))
    same = (np.abs(back_x - xs[good]) <= tolerance) & (np.abs(back_y - ys[good]) <= tolerance)
    on_edge = ~same & (np.abs(np.abs(lon[good]) - 180.0) <= 1e-6)
    where = np.flatnonzero(good)[on_edge]
    lon[where] = -lon[where]
    out = np.zeros(len(lon), dtype=bool)
    out[good] = same | on_edge
    return out


def _degrees_per_unit(crs: CRS) -> float | None:
    """Degrees per native unit of a geographic CRS, None if unknown."""
    try:
        _, radians_per_unit = crs.units_factor
    except Exception:  # unusual CRS without a readable unit
        return None
    if not radians_per_unit or not math.isfinite(radians_per_unit):
        return None
    return math.degrees(radians_per_unit)


def _wrap180(values: np.ndarray) -> np.ndarray:
    """Map angles in degrees into [-180, 180)."""
    return (values + 180.0) % 360.0 - 180.0


def _wgs84_ring(
    crs: CRS, transform: Affine, width: int, height: int, densify: int
) -> tuple[np.ndarray, np.ndarray, float, bool]:
    """Densified outline in WGS84 with longitudes unwrapped along the ring.

    Returns ``(lon, lat, winding, whole)``: an open ring, the net longitude
    change around it when closed (0, or +-360 when it encircles a pole), and
    whether every point of the outline reprojected (else those off the
    Earth, beyond the projection's domain, are left out of the ring).
    """
    cols, rows = _outline(width, height, densify)
    xs, ys = _apply(transform, cols, rows)
    lon, lat = _reproject(crs, xs, ys)
    ok = np.isfinite(lon) & np.isfinite(lat) & (np.abs(lat) <= 90.0 + 1e-9)
    if _bounded_x(crs):
        ok &= _comes_back(crs, xs, ys, lon, lat)  # and puts edge points on their own side
    whole = bool(ok.all())
    if not whole:
        clipped = _clip_to_earth(crs, transform, width, height, xs, ys, ok)
        if clipped is not None:
            lon, lat = clipped
            ok = np.ones(len(lon), dtype=bool)
    if ok.sum() < 3:
        raise NotReprojectableError(
            f"the {width}x{height} pixel grid (transform {tuple(transform)[:6]}) "
            f"cannot be reprojected from {crs.to_string() or 'its CRS'} to WGS84"
        )
    lon, lat, xs = lon[ok], np.clip(lat[ok], -90.0, 90.0), xs[ok]

    degrees = _degrees_per_unit(crs) if crs.is_geographic else None
    if degrees is not None:
        # Native x already is a longitude: keep each point on the same turn as
        # its native value (which may run past 180, e.g. a 0..360 grid).
        native = xs * degrees
        lon = native + _wrap180(lon - native)
        return lon, lat, 0.0, whole
    closed = _unwrap360(np.append(lon, lon[0]))
    return closed[:-1], lat, float(closed[-1] - closed[0]), whole


#: points per side of the lattice :func:`_world_band` samples a grid at
_WORLD_SAMPLES = 64
#: the widest gap in longitude between sampled points of a grid that still covers every longitude
_WORLD_GAP_DEGREES = 15.0


def _world_band(crs: CRS, transform: Affine, width: int, height: int) -> tuple[dict, list[float]] | None:
    """The footprint of a grid whose outline is off the Earth: a world map in
    an elliptical projection (Mollweide, whose corners and edges lie outside
    the ellipse of the Earth). When points sampled across the grid reach every
    longitude, the latitude band they span (to a pole inside the grid);
    ``None`` otherwise (the caller's error stands: no footprint is guessed)."""
    t = np.linspace(0.0, 1.0, _WORLD_SAMPLES + 1)
    cols, rows = np.meshgrid(t * width, t * height)
    xs, ys = _apply(transform, cols.ravel(), rows.ravel())
    try:  # at once: where PROJ refuses the lot (another body's CRS), point by point would take seconds
        lon, lat = (np.asarray(v, dtype=float) for v in rasterio.warp.transform(crs, _WGS84, xs, ys))
    except Exception:  # PROJ failure (rasterio._err.CPLE_*, not public)
        return None
    ok = np.isfinite(lon) & np.isfinite(lat) & (np.abs(lat) <= 90.0 + 1e-9)
    if _bounded_x(crs):
        ok &= _comes_back(crs, xs, ys, lon, lat)
    if ok.sum() < 3:
        return None
    lons = np.sort(_wrap180(lon[ok]))
    gaps = np.diff(np.append(lons, lons[0] + 360.0))
    if float(gaps.max()) > _WORLD_GAP_DEGREES:
        return None
    lat = np.clip(lat[ok], -90.0, 90.0)
    south = -90.0 if _pole_in_grid(crs, transform, width, height, -1) else float(lat.min())
    north = 90.0 if _pole_in_grid(crs, transform, width, height, 1) else float(lat.max())
    band = np.array([[-180.0, south], [180.0, south], [180.0, north], [-180.0, north]])
    coords = _finish_ring(band, DECIMALS)
    if coords is None:
        return None
    return _polygon(coords), _round_list([-180.0, south, 180.0, north], DECIMALS)


#: halvings of the way from the grid's centre to an outline point off the Earth
_LIMB_STEPS = 40


def _clip_to_earth(
    crs: CRS, transform: Affine, width: int, height: int, xs: np.ndarray, ys: np.ndarray, ok: np.ndarray
) -> tuple[np.ndarray, np.ndarray] | None:
    """The outline with each point off the Earth (``~ok``: a geostationary
    full disk's corners are in space) moved towards the grid's centre to the
    last point on the Earth: the limb, found by bisection. ``None`` when the
    centre itself is off the Earth. One PROJ transformer for all the
    points (no exception per point off the Earth: those are infinite)."""
    from pyproj import CRS as ProjCRS  # noqa: PLC0415 (rare path; rasterio's PROJ underneath)
    from pyproj import Transformer  # noqa: PLC0415

    try:
        to_wgs84 = Transformer.from_crs(ProjCRS.from_wkt(crs.to_wkt()), _WGS84, always_xy=True)
    except Exception:  # a CRS pyproj cannot take: the caller's result stands
        return None

    bounded = _bounded_x(crs)

    def on_earth(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        lon, lat = (np.asarray(v, dtype=float) for v in to_wgs84.transform(x, y, errcheck=False))
        good = np.isfinite(lon) & np.isfinite(lat) & (np.abs(lat) <= 90.0 + 1e-9)
        if bounded:
            good &= _comes_back(crs, np.asarray(x, dtype=float), np.asarray(y, dtype=float), lon, lat)
        return lon, lat, good

    cx, cy = _apply(transform, np.array([width / 2.0]), np.array([height / 2.0]))
    if not bool(on_earth(cx, cy)[2][0]):
        return None
    px, py = xs[~ok], ys[~ok]
    low, high = np.zeros(len(px)), np.ones(len(px))
    for _ in range(_LIMB_STEPS):
        mid = (low + high) / 2.0
        good = on_earth(cx + mid * (px - cx), cy + mid * (py - cy))[2]
        low, high = np.where(good, mid, low), np.where(good, high, mid)
    limb_lon, limb_lat, good = on_earth(cx + low * (px - cx), cy + low * (py - cy))
    if not bool(good.all()):
        return None
    lon, lat = on_earth(xs, ys)[:2]
    lon[~ok], lat[~ok] = limb_lon, limb_lat
    return lon, lat


def _unwrap360(values: np.ndarray) -> np.ndarray:
    """``np.unwrap(values, period=360.0)``; when no step reaches 180 degrees
    (a ring that crosses neither the antimeridian nor a pole: most of them)
    nothing is corrected, and the generic function's passes are skipped. Its
    result then is ``values`` with ``+ 0.0`` after the first (a correction
    of 0 added), which is what is returned."""
    steps = np.diff(values)
    if len(values) and bool(np.all(np.abs(steps) < 180.0)):
        out = values.astype(float)
        out[1:] += 0.0
        return out
    return np.unwrap(values, period=360.0)


def _enclosed_pole(crs: CRS, transform: Affine, width: int, height: int, lat: np.ndarray) -> int:
    """+1 / -1 for the pole a winding ring encloses.

    The pole whose position in the raster CRS falls inside the pixel grid is
    chosen; if neither (or both) test positive, the hemisphere the ring lies
    in decides.
    """
    inside = [_pole_in_grid(crs, transform, width, height, sign) for sign in (1, -1)]
    if inside[0] != inside[1]:
        return 1 if inside[0] else -1
    return 1 if float(np.mean(lat)) >= 0.0 else -1


def _pole_in_grid(crs: CRS, transform: Affine, width: int, height: int, sign: int) -> bool:
    """Whether the north (+1) or south (-1) pole lies inside the pixel grid."""
    try:
        (x,), (y,) = rasterio.warp.transform(_WGS84, crs, [0.0], [90.0 * sign])
    except Exception:  # pole outside the projection's domain
        return False
    if not (math.isfinite(x) and math.isfinite(y)):
        return False
    cols, rows = _apply(~transform, np.array([x]), np.array([y]))
    col, row = float(cols[0]), float(rows[0])
    tol = 1e-9 * max(width, height)
    return -tol <= col <= width + tol and -tol <= row <= height + tol


# --------------------------------------------------------------------------
# lon/lat ring -> GeoJSON
# --------------------------------------------------------------------------


def _build(
    lon: np.ndarray, lat: np.ndarray, winding: float, pole: int, decimals: int
) -> tuple[dict, list[float]] | None:
    """Geometry and bbox at ``decimals`` places; None if the ring collapses."""
    south, north = float(lat.min()), float(lat.max())
    if pole:
        ring = _pole_ring(lon, lat, winding, pole)
        coords = _finish_ring(ring, decimals)
        if coords is None:
            return None
        bbox = [-180.0, south, 180.0, 90.0] if pole > 0 else [-180.0, -90.0, 180.0, north]
        return _polygon(coords), _round_list(bbox, decimals)

    # shift the whole ring by a multiple of 360 so that west lies in [-180, 180)
    pts = np.column_stack([lon, lat])
    pts[:, 0] -= 360.0 * math.floor((pts[:, 0].min() + 180.0) / 360.0)
    pts = np.round(pts, decimals)
    if pts[:, 0].min() >= 180.0:  # rounding pushed west up to 180
        pts[:, 0] -= 360.0
    west, east = float(pts[:, 0].min()), float(pts[:, 0].max())

    if east - west >= 360.0:
        band = np.array([[-180.0, south], [180.0, south], [180.0, north], [-180.0, north]])
        coords = _finish_ring(band, decimals)
        if coords is None:
            return None
        return _polygon(coords), _round_list([-180.0, south, 180.0, north], decimals)

    if east <= 180.0:
        coords = _finish_ring(pts, decimals)
        if coords is None:
            return None
        return _polygon(coords), _round_list([west, south, east, north], decimals)

    # crosses the antimeridian: cut at lon = 180 and bring the eastern part back
    western = _finish_ring(_clip(pts, 180.0, keep_east=False), decimals)
    eastern_pts = _clip(pts, 180.0, keep_east=True)
    eastern_pts[:, 0] -= 360.0
    eastern = _finish_ring(eastern_pts, decimals)
    parts = [p for p in (western, eastern) if p is not None]
    if not parts:
        return None
    if len(parts) == 1:  # the other side was a sliver below the precision
        only = np.array(parts[0])
        box = [only[:, 0].min(), only[:, 1].min(), only[:, 0].max(), only[:, 1].max()]
        return _polygon(parts[0]), _round_list(box, decimals)
    geometry = {"type": "MultiPolygon", "coordinates": [[p] for p in parts]}
    return geometry, _round_list([west, south, east - 360.0, north], decimals)


def _pole_ring(lon: np.ndarray, lat: np.ndarray, winding: float, pole: int) -> Ring:
    """Polygon ring (open) from a ring encircling a pole, cut at +-180.

    The raster edge is walked eastwards from lon -180 to 180, then the ring
    is closed along the pole (lat +-90) so the polygon contains it.
    """
    if winding < 0:  # walk eastwards: reversing the ring flips the winding sign
        lon, lat = lon[::-1], lat[::-1]
    n = len(lon)
    # the edge over one full turn, start repeated one turn later
    c_lon = np.append(lon, lon[0] + 360.0)
    c_lat = np.append(lat, lat[0])
    # first cut line -180 + 360k strictly east of the start
    cut = -180.0 + 360.0 * (math.floor((lon[0] + 180.0) / 360.0) + 1)
    i = int(np.nonzero((c_lon[:-1] < cut) & (c_lon[1:] >= cut))[0][0])
    t = (cut - c_lon[i]) / (c_lon[i + 1] - c_lon[i])
    cut_lat = c_lat[i] + t * (c_lat[i + 1] - c_lat[i])
    edge_lon = np.concatenate([[cut], c_lon[i + 1 : n + 1], c_lon[1 : i + 1] + 360.0, [cut + 360.0]])
    edge_lat = np.concatenate([[cut_lat], c_lat[i + 1 : n + 1], c_lat[1 : i + 1], [cut_lat]])
    edge = np.column_stack([edge_lon - (cut + 180.0), edge_lat])
    cap = 90.0 * pole
    if pole > 0:  # edge eastwards, then back west along the north pole
        ring = np.vstack([edge, [[180.0, cap], [-180.0, cap]]])
    else:  # along the south pole eastwards, then back west along the edge
        ring = np.vstack([[[-180.0, cap], [180.0, cap]], edge[::-1]])
    # an edge that is not monotonic in longitude may poke past +-180
    return _clip(_clip(ring, -180.0, keep_east=True), 180.0, keep_east=False)


def _clip(points: Ring, bound: float, *, keep_east: bool) -> Ring:
    """Sutherland-Hodgman clip of an open ring against ``lon >= bound``
    (``keep_east``) or ``lon <= bound``. Cut points lie exactly on ``bound``."""

    def inside(x: float) -> bool:
        return x >= bound if keep_east else x <= bound

    out: list[tuple[float, float]] = []
    count = len(points)
    for k in range(count):
        x0, y0 = points[k - 1]
        x1, y1 = points[k]
        in0, in1 = inside(x0), inside(x1)
        if in1 != in0:
            t = (bound - x0) / (x1 - x0)
            out.append((bound, y0 + t * (y1 - y0)))
        if in1:
            out.append((x1, y1))
    return np.array(out, dtype=float).reshape(-1, 2)


def _finish_ring(points: Ring, decimals: int) -> list[list[float]] | None:
    """Round, drop duplicate and collinear points, orient CCW, close.

    Returns None when fewer than three distinct, non-collinear points remain.
    """
    if len(points) < 3:
        return None
    pts = np.round(np.asarray(points, dtype=float), decimals) + 0.0  # +0.0: no -0.0
    # consecutive duplicates, cyclically (this also drops a repeated closing point)
    keep = np.any(pts != _roll(pts, 1), axis=1)
    pts = pts[keep] if keep.any() else pts[:1]
    # intermediate points exactly on the straight line between their neighbours
    if len(pts) >= 3:
        pts = pts[_not_straight(pts[:, 0].tolist(), pts[:, 1].tolist())]
    if len(pts) < 3:
        return None
    x, y = pts[:, 0], pts[:, 1]
    area2 = float(np.sum(x * _roll(y, -1) - _roll(x, -1) * y))
    if area2 == 0.0:
        return None
    if area2 < 0.0:  # clockwise: reverse, keeping the same first point
        pts = np.vstack([pts[:1], pts[:0:-1]])
    ring: list[list[float]] = pts.tolist()  # Python floats, as float() of each
    ring.append(list(ring[0]))
    return ring


def _not_straight(xs: list[float], ys: list[float]) -> list[int]:
    """Indices of the points of a cyclic ring (3 or more) that stay when,
    pass after pass, every point exactly on the straight line between its
    neighbours (cross product 0, going on in the same direction) is dropped,
    but never two neighbours in one pass (the second's line changes): the
    first point of each run of such points goes.

    A run of k collinear points takes k passes, so passes over the whole
    ring cost O(n²) (a densified straight edge is such a run). Here the ring
    is a linked list and a pass re-examines only the neighbours of what the
    previous pass dropped: the only points whose test can change. Same
    float operations as the array form, so the same points stay.
    """
    n = len(xs)
    prv = [n - 1, *range(n - 1)]
    nxt = [*range(1, n), 0]

    def straight_at(i: int) -> bool:
        p, q = prv[i], nxt[i]
        ux, uy = xs[i] - xs[p], ys[i] - ys[p]
        vx, vy = xs[q] - xs[i], ys[q] - ys[i]
        return ux * vy - uy * vx == 0.0 and ux * vx + uy * vy > 0.0

    straight = _straight_points(xs, ys)
    alive = [True] * n
    count = n
    candidates: Iterable[int] = range(n)
    while count >= 3:
        drop = sorted({i for i in candidates if alive[i] and straight[i] and not straight[prv[i]]})
        if not drop:
            break
        for i in drop:  # no two are neighbours: a dropped point's successor has a straight predecessor
            alive[i] = False
            nxt[prv[i]], prv[nxt[i]] = nxt[i], prv[i]
        count -= len(drop)
        touched = {j for i in drop for j in (prv[i], nxt[i]) if alive[j]}
        for j in touched:
            straight[j] = straight_at(j)
        candidates = touched | {nxt[j] for j in touched}
    return [i for i in range(n) if alive[i]]


def _straight_points(xs: list[float], ys: list[float]) -> list[bool]:
    """The first pass of :func:`_not_straight` (each point against its ring
    neighbours) over arrays: the same float operations, one per element
    (IEEE double, no fused multiply-add), so the same verdicts."""
    x, y = np.array(xs, dtype=float), np.array(ys, dtype=float)
    ux, uy = x - _roll(x, 1), y - _roll(y, 1)
    vx, vy = _roll(x, -1) - x, _roll(y, -1) - y
    straight: list[bool] = ((ux * vy - uy * vx == 0.0) & (ux * vx + uy * vy > 0.0)).tolist()
    return straight


def _roll(values: np.ndarray, shift: int) -> np.ndarray:
    """``np.roll(values, shift, axis=0)`` for ``shift`` of 1 or -1, without its
    generic axis handling (a footprint rolls its ring some 15 times)."""
    if shift == 1:
        return np.concatenate((values[-1:], values[:-1]))
    return np.concatenate((values[1:], values[:1]))


def _polygon(ring: list[list[float]]) -> dict:
    return {"type": "Polygon", "coordinates": [ring]}


def _round_list(values: Sequence[float], decimals: int) -> list[float]:
    return [round(float(v), decimals) + 0.0 for v in values]

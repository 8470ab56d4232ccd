"""Spatial and temporal extents: unions that know about the antimeridian.

Pure functions on plain lists and strings. A bbox is ``[west, south, east,
north]`` in degrees; ``west > east`` means it crosses the antimeridian (STAC
and RFC 7946 §5.2). Longitude spans are arcs on a circle: the union of two
arcs is the shortest arc that covers both, so a collection of items at 179°E
and 179°W gets a 2° wide extent, not a 358° one.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime

from producer.timestamps import format_time, parse_time

WORLD = [-180.0, -90.0, 180.0, 90.0]
_EPS = 1e-9


def _arc(west: float, east: float) -> tuple[float, float]:
    """(start, width) of a longitude span, start in [-180, 180)."""
    width = east - west
    if width < 0:
        width += 360.0
    if width >= 360.0 - _EPS or (west <= -180.0 + _EPS and east >= 180.0 - _EPS):
        return -180.0, 360.0
    start = ((west + 180.0) % 360.0) - 180.0
    return start, width


def _arc_to_lon(start: float, width: float) -> tuple[float, float]:
    if width >= 360.0 - _EPS:
        return -180.0, 180.0
    east = start + width
    if east > 180.0:
        east -= 360.0
    return start, east


def _covers(outer: tuple[float, float], inner: tuple[float, float]) -> bool:
    ostart, owidth = outer
    istart, iwidth = inner
    if owidth >= 360.0 - _EPS:
        return True
    offset = (istart - ostart) % 360.0
    if offset > 360.0 - _EPS:  # same start up to rounding
        offset = 0.0
    return offset + iwidth <= owidth + _EPS


def union_lon(arcs: Iterable[tuple[float, float]]) -> tuple[float, float]:
    """Shortest (start, width) arc covering all (west, east) spans.

    The answer is the circle minus its largest uncovered gap. Spans that wrap
    past +180 are cut in two at the antimeridian first, so every interval
    lies in [-180, 180] and a plain sort-and-merge finds the gaps.
    """
    pieces: list[tuple[float, float]] = []
    for west, east in arcs:
        start, width = _arc(west, east)
        if width >= 360.0 - _EPS:
            return -180.0, 360.0
        end = start + width
        if end > 180.0:
            pieces.append((start, 180.0))
            pieces.append((-180.0, end - 360.0))
        else:
            pieces.append((start, end))
    if not pieces:
        raise ValueError("no longitude spans to union")
    pieces.sort()
    merged: list[list[float]] = []
    for start, end in pieces:
        if merged and start <= merged[-1][1] + _EPS:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    # gap after merged[i]; the last gap wraps through the antimeridian
    gaps = [merged[i + 1][0] - merged[i][1] for i in range(len(merged) - 1)]
    gaps.append(merged[0][0] + 360.0 - merged[-1][1])
    best = max(range(len(gaps)), key=lambda i: gaps[i])
    if gaps[best] <= _EPS:
        return -180.0, 360.0
    start = merged[(best + 1) % len(merged)][0]
    width = 360.0 - gaps[best]
    return ((start + 180.0) % 360.0) - 180.0, width


def union_bbox(bboxes: Iterable[Sequence[float]]) -> list[float]:
    """Smallest antimeridian-aware bbox covering every 2D bbox given."""
    boxes = [box2d(b) if len(b) != 4 else list(b) for b in bboxes]
    if not boxes:
        raise ValueError("no bboxes to union")
    start, width = union_lon((b[0], b[2]) for b in boxes)
    west, east = _arc_to_lon(start, width)
    south = min(b[1] for b in boxes)
    north = max(b[3] for b in boxes)
    return [_r(west), _r(south), _r(east), _r(north)]


#: most sub-boxes a collection extent keeps; beyond it the two clusters with
#: the narrowest gap between them are joined (bounded documents; the overall
#: box still covers every item)
MAX_CLUSTERS = 64


def box2d(bbox: Sequence[float]) -> list[float]:
    """A 2D ``[west, south, east, north]`` from a 2D or 3D bbox, rounded like
    every stored extent value (so merging stored and fresh values agrees)."""
    values = list(bbox)
    if len(values) == 6:
        values = values[:2] + values[3:5]
    if len(values) != 4:
        raise ValueError(f"a bbox needs 4 or 6 numbers, not {len(values)}")
    return [_r(v) for v in values]


def _pieces(box: Sequence[float]) -> list[list[float]]:
    """``[start, end, south, north]`` pieces inside [-180, 180]: a box that
    crosses the antimeridian is cut in two there (no arithmetic on in-range
    values, so the same input always gives bit-identical pieces)."""
    west, south, east, north = box
    if not (-180.0 <= west <= 180.0 and -180.0 <= east <= 180.0):
        start, width = _arc(west, east)  # out-of-range input: normalise
        west, east = _arc_to_lon(start, width)
        west, east = _r(west), _r(east)
    if west <= east:
        return [[west, east, south, north]]
    return [[west, 180.0, south, north], [-180.0, east, south, north]]


def clusters(bboxes: Iterable[Sequence[float]], limit: int = MAX_CLUSTERS) -> list[list[float]]:
    """The connected longitude clusters of 2D bboxes, each with its own
    latitude range, as bboxes sorted by west edge (a cluster that crosses the
    antimeridian has ``west > east``).

    Clustering is exact and associative: ``clusters(clusters(a) + b) ==
    clusters(a + b)`` for every split of a set of boxes (while there are at
    most ``limit`` clusters), which is what makes a collection extent the
    same whatever order its items arrive in.
    """
    pieces: list[list[float]] = []
    for box in bboxes:
        pieces.extend(_pieces(box))
    if not pieces:
        raise ValueError("no bboxes to cluster")
    pieces.sort()
    merged: list[list[float]] = []
    for start, end, south, north in pieces:
        if merged and start <= merged[-1][1] + _EPS:
            last = merged[-1]
            last[1] = max(last[1], end)
            last[2] = min(last[2], south)
            last[3] = max(last[3], north)
        else:
            merged.append([start, end, south, north])
    out = [[start, south, end, north] for start, end, south, north in merged]
    if len(out) > 1 and out[0][0] <= -180.0 + _EPS and out[-1][2] >= 180.0 - _EPS:
        first, last = out[0], out.pop()  # one cluster across the antimeridian
        out[0] = [last[0], min(first[1], last[1]), first[2], max(first[3], last[3])]
    if len(out) == 1 and out[0][0] <= -180.0 + _EPS and out[0][2] >= 180.0 - _EPS:
        out[0][0], out[0][2] = -180.0, 180.0
    out.sort()
    while len(out) > max(1, limit):
        # join across the narrowest gap (the widest one, which decides the
        # overall box, is kept)
        def gap(i: int) -> float:
            return (out[(i + 1) % len(out)][0] - out[i][2]) % 360.0

        i = min(range(len(out)), key=gap)
        j = (i + 1) % len(out)
        a, b = out[i], out[j]
        joined = [a[0], min(a[1], b[1]), b[2], max(a[3], b[3])]
        out[i] = joined
        out.pop(j)
        out.sort()
    return out


def extent_bboxes(bboxes: Iterable[Sequence[float]]) -> list[list[float]]:
    """The ``spatial.bbox`` list of a collection extent covering ``bboxes``.

    ``[overall]`` when the boxes form one cluster, else ``[overall,
    *clusters]``: STAC's first box is the overall extent and the following
    ones describe clusters of data. Keeping the clusters is what makes the
    extent exact under incremental merges: the shortest arc covering a set of
    spans depends on every gap between them, which one overall box forgets.
    """
    parts = clusters(box2d(b) for b in bboxes)
    overall = union_bbox(parts)
    return [overall] if len(parts) == 1 else [overall, *parts]


def stored_clusters(bbox_list: Sequence[Sequence[float]]) -> list[list[float]]:
    """The clusters a stored ``spatial.bbox`` list describes: its sub-boxes,
    or the one box when there are none (an extent written before sub-boxes
    were kept counts as one cluster)."""
    return [box2d(b) for b in (bbox_list[1:] if len(bbox_list) > 1 else bbox_list[:1])]


def bbox_contains(outer: Sequence[float], inner: Sequence[float]) -> bool:
    """True if ``outer`` covers ``inner`` (both 2D, antimeridian-aware)."""
    if inner[1] < outer[1] - _EPS or inner[3] > outer[3] + _EPS:
        return False
    return _covers(_arc(outer[0], outer[2]), _arc(inner[0], inner[2]))


def _r(value: float) -> float:
    return round(float(value), 9)


# --- time -----------------------------------------------------------------


def item_interval(item: dict) -> tuple[str, str]:
    """(start, end) of an item document's time, from datetime or start/end_datetime."""
    props = item.get("properties") or {}
    start = props.get("start_datetime") or props.get("datetime")
    end = props.get("end_datetime") or props.get("datetime")
    if not start or not end:
        raise ValueError(f"item {item.get('id')!r} has no datetime")
    return start, end


def union_interval(intervals: Iterable[tuple[str | None, str | None]]) -> list[str | None]:
    """[min start, max end] as RFC 3339 strings; ``None`` means open-ended."""
    starts: list[datetime] = []
    ends: list[datetime] = []
    open_start = open_end = False
    for start, end in intervals:
        if start is None:
            open_start = True
        else:
            starts.append(parse_time(start))
        if end is None:
            open_end = True
        else:
            ends.append(parse_time(end))
    return [
        None if open_start or not starts else format_time(min(starts)),
        None if open_end or not ends else format_time(max(ends)),
    ]


def interval_contains(outer: Sequence[str | None], inner: tuple[str, str]) -> bool:
    start, end = inner
    if outer[0] is not None and parse_time(start) < parse_time(outer[0]):
        return False
    if outer[1] is not None and parse_time(end) > parse_time(outer[1]):
        return False
    return True

"""Spatial and temporal extents: unions that know about the antimeridian.

Pure functions on plain lists and strings. A bbox is ``[west, south, east,
north]`` in degrees; ``west > east`` means it crosses the antimeridian (STAC
and RFC 7946 §5.2). Longitude spans are arcs on a circle: the union of two
arcs is the shortest arc that covers both, so a collection of items at 179°E
and 179°W gets a 2° wide extent, not a 358° one.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Iterable, Sequence

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
    boxes = [list(b) for b in bboxes]
    if not boxes:
        raise ValueError("no bboxes to union")
    start, width = union_lon((b[0], b[2]) for b in boxes)
    west, east = _arc_to_lon(start, width)
    south = min(b[1] for b in boxes)
    north = max(b[3] for b in boxes)
    return [_r(west), _r(south), _r(east), _r(north)]


def bbox_contains(outer: Sequence[float], inner: Sequence[float]) -> bool:
    """True if ``outer`` covers ``inner`` (both 2D, antimeridian-aware)."""
    if inner[1] < outer[1] - _EPS or inner[3] > outer[3] + _EPS:
        return False
    return _covers(_arc(outer[0], outer[2]), _arc(inner[0], inner[2]))


def _r(value: float) -> float:
    return round(float(value), 9)


# --- time -----------------------------------------------------------------

def parse_time(value: str) -> datetime:
    """RFC 3339 string → aware datetime (``Z`` accepted)."""
    dt = datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return dt


def format_time(value: datetime) -> str:
    """Aware datetime → RFC 3339 in UTC with ``Z``."""
    value = value.astimezone(timezone.utc)
    text = value.strftime("%Y-%m-%dT%H:%M:%S")
    if value.microsecond:
        text += f".{value.microsecond:06d}".rstrip("0")
    return text + "Z"


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

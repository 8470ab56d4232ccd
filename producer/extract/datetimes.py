"""Where an item's datetime comes from: an explicit option, the file name, or tags.

Rules (the same everywhere in this module):

- Naive times (no offset, no ``Z``) are taken as **UTC**; every value returned
  is time-zone aware and converted to UTC.
- A date without a time is midnight UTC when it is an instant or a range start,
  and the last second of that day (``23:59:59Z``) when it ends a range, so that
  ``20240101_20240131`` covers all of January.
- Nothing is ever invented: when no source yields a value,
  :class:`~producer.errors.NoDatetimeError` is raised (never ``datetime.now()``).

Nothing here opens files: the tag source gets the tags from the caller.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, timezone
from typing import Any

from producer.errors import Hint, InputError, NoDatetimeError, as_typed
from producer.timestamps import format_time

#: the type, for annotations inside DatetimeResult, whose field ``datetime`` shadows it
_DateTime = datetime
#: the options that give a product its datetime when the file does not
DATETIME_HINT = Hint("datetime", "2024-05-13T10:00:00Z", "one datetime, or start/end, for every product")
PATTERN_HINT = Hint(
    "datetime_pattern", r"(?P<year>\d{4})(?P<month>\d{2})(?P<day>\d{2})", "read the date from the file name"
)

#: the names accepted in ``ExtractOptions.datetime_sources``
SOURCES: tuple[str, ...] = ("explicit", "filename", "tags")

_END_OF_DAY = time(23, 59, 59)

# ISO 8601 / RFC 3339 flavours we accept from users and tags.
_TIME_OF_DAY = r"""(?:[T\s_]
           (?P<hour>\d{2}):?(?P<minute>\d{2})(?::?(?P<second>\d{2})(?P<frac>[.,]\d+)?)?
           \s*(?P<tz>Z|z|[+-]\d{2}(?::?\d{2})?)?
        )?$"""
_ISO_RE = re.compile(r"^(?P<year>\d{4})-?(?P<month>\d{2})-?(?P<day>\d{2})" + _TIME_OF_DAY, re.VERBOSE)
#: an ISO 8601 ordinal date (``2024-001``: year and day of the year), as ACDD
#: attributes and day-of-year products write them (extended form only: seven
#: digits in a row are no date the other forms would take for one)
_ORDINAL_RE = re.compile(r"^(?P<year>\d{4})-(?P<yday>\d{3})" + _TIME_OF_DAY, re.VERBOSE)
# TIFF 6.0 DateTime tag: "YYYY:MM:DD HH:MM:SS"
_TIFF_RE = re.compile(r"^(\d{4}):(\d{2}):(\d{2})[ T](\d{2}):(\d{2}):(\d{2})$")

_NOT_DIGIT_BEFORE = r"(?<!\d)"
_NOT_DIGIT_AFTER = r"(?!\d)"
#: built-in file-name patterns, tried in this order; the first that yields a valid
#: date decides. Digit look-arounds keep them from matching inside longer numbers.
_BUILTIN_PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = (
    (
        "YYYYMMDDTHHMMSS",
        re.compile(_NOT_DIGIT_BEFORE + r"(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z?" + _NOT_DIGIT_AFTER),
    ),
    (
        "YYYY-MM-DD",
        re.compile(
            _NOT_DIGIT_BEFORE + r"(\d{4})-(\d{2})-(\d{2})(?:T(\d{2}):(\d{2}):(\d{2})Z?)?" + _NOT_DIGIT_AFTER
        ),
    ),
    ("YYYYMMDD", re.compile(_NOT_DIGIT_BEFORE + r"(\d{4})(\d{2})(\d{2})" + _NOT_DIGIT_AFTER)),
)
#: two dates separated by at most this (e.g. "_", "-", "_to_") form a range
_RANGE_SEPARATOR = re.compile(r"^(?:[_\-. ]{1,3}|_to_|-to-)$", re.IGNORECASE)
#: a Landsat Collection 1/2 product id (``LC09_L2SP_190026_20240513_20240514_02_T1``)
#: or U.S. ARD tile id (``LC08_CU_029005_20190824_20210127_02``, ``..._C01_V01``): its
#: two adjacent dates are the acquisition and the processing date, not a range
_LANDSAT_ID = re.compile(
    r"(?<![A-Za-z0-9])L[COTEM]0\d_(?:L\d[A-Z]{2}_\d{6}_(\d{8})_(\d{8})_\d{2}_(?:T1|T2|RT)"
    r"|(?:CU|AK|HI)_\d{6}_(\d{8})_(\d{8})_(?:\d{2}|C\d{2}_V\d{2}))(?![A-Za-z0-9])",
    re.IGNORECASE,
)
#: plausible years for the compact built-in patterns (fewer false positives)
_MIN_YEAR, _MAX_YEAR = 1900, 2199


@dataclass(frozen=True)
class DatetimeResult:
    """An instant (``datetime``) or a range (``start``/``end``), plus its origin.

    Exactly one of the two forms is set; all values are UTC-aware.
    """

    datetime: _DateTime | None
    start: _DateTime | None
    end: _DateTime | None
    #: which source produced it: "explicit", "filename" or "tags"
    source: str
    #: human-readable detail (pattern or tag name), for logs and errors
    detail: str = ""

    def properties(self) -> dict[str, str | None]:
        """STAC item properties for this value (``datetime`` null for a range)."""
        if self.datetime is not None:
            return {"datetime": format_time(self.datetime)}
        assert self.start is not None and self.end is not None
        return {
            "datetime": None,
            "start_datetime": format_time(self.start),
            "end_datetime": format_time(self.end),
        }


class OutOfRange(ValueError):
    """A date-time whose conversion to UTC leaves the years 1-9999
    (``9999-12-31T23:00:00-02:00``): a :class:`ValueError` like any value
    :func:`parse_datetime` cannot take, that callers can tell apart."""


def _aware(value: datetime) -> datetime:
    """Naive → UTC; aware → converted to UTC. Raises :class:`OutOfRange`
    when the instant falls outside the years 1-9999 in UTC."""
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    try:
        return value.astimezone(UTC)
    except OverflowError:  # Python's datetime holds years 1-9999 only
        raise OutOfRange(
            f"{value.isoformat()} is outside the years 1-9999 in UTC, which a STAC datetime can hold"
        ) from None


def _tz(text: str | None) -> timezone | None:
    if not text:
        return None
    if text in ("Z", "z"):
        return UTC
    sign = -1 if text[0] == "-" else 1
    digits = text[1:].replace(":", "")
    hours, minutes = int(digits[:2]), int(digits[2:4] or 0)
    return timezone(sign * timedelta(hours=hours, minutes=minutes))


def parse_datetime(text: str, *, end: bool = False) -> datetime:
    """Parse an ISO 8601 / compact / TIFF date or date-time into an aware UTC datetime.

    Accepts ``2024-05-13``, ``20240513``, ``2024-05-13T10:00:00[.fff][Z|±hh:mm]``,
    ``20240513T100000Z``, ``2024:05:13 10:00:00`` and ordinal dates
    (``2024-134``, ``2024-134T10:00:00Z``: day 134 of 2024). A date without time is
    midnight, or ``23:59:59`` when ``end`` is true (end of a range).

    Raises :class:`ValueError` (not ours: callers add the context) when ``text``
    is not such a value or not a real calendar date, :class:`OutOfRange`
    (one) when it falls outside the years 1-9999 once converted to UTC.
    """
    text = text.strip()
    tiff = _TIFF_RE.match(text)
    if tiff:
        y, mo, d, h, mi, s = (int(g) for g in tiff.groups())
        return _aware(datetime(y, mo, d, h, mi, s))
    match = _ISO_RE.match(text)
    if match:
        day = date(int(match["year"]), int(match["month"]), int(match["day"]))
    else:
        match = _ORDINAL_RE.match(text)
        if not match:
            raise ValueError(f"not an ISO 8601 date or date-time: {text!r}")
        day = _ordinal_day(int(match["year"]), int(match["yday"]))
    if match["hour"] is None:
        return _aware(datetime.combine(day, _END_OF_DAY if end else time()))
    micro = 0
    if match["frac"]:
        micro = int(round(float("0." + match["frac"][1:]) * 1_000_000))
        micro = min(micro, 999_999)
    value = datetime(
        day.year,
        day.month,
        day.day,
        int(match["hour"]),
        int(match["minute"]),
        int(match["second"] or 0),
        micro,
        tzinfo=_tz(match["tz"]),
    )
    return _aware(value)


def _ordinal_day(year: int, yday: int) -> date:
    """The date of day ``yday`` (1-365, 366 in a leap year) of ``year``;
    ``ValueError`` past the year's last day."""
    first = date(year, 1, 1)
    days = (date(year + 1, 1, 1) - first).days if year < 9999 else 365
    if not 1 <= yday <= days:
        raise ValueError(f"day {yday} of {year}: the year has days 1-{days}")
    return first + timedelta(days=yday - 1)


def _instant_or_range(
    first: datetime, second: datetime | None, source: str, detail: str, where: str
) -> DatetimeResult:
    if second is None:
        return DatetimeResult(first, None, None, source, detail)
    if second < first:
        raise InputError(
            f"{where}: datetime range ends before it starts ({format_time(first)} > {format_time(second)})",
            hints=(DATETIME_HINT,) if source == "explicit" else (),
        )
    return DatetimeResult(None, first, second, source, detail)


# --------------------------------------------------------------------------- explicit


def from_explicit(value: str | None, *, where: str = "explicit datetime") -> DatetimeResult | None:
    """The ``datetime`` option: an ISO 8601 instant or ``start/end``; ``None`` when not given.

    An unparsable value, or one outside the years 1-9999 once converted to
    UTC, is an :class:`InputError` (an explicit wish must not be skipped
    silently).
    """
    if value is None or not value.strip():
        return None
    parts = value.split("/")
    try:
        if len(parts) == 1:
            return DatetimeResult(parse_datetime(parts[0]), None, None, "explicit", value)
        if len(parts) == 2 and all(p.strip() for p in parts):
            start = parse_datetime(parts[0])
            end = parse_datetime(parts[1], end=True)
            return _instant_or_range(start, end, "explicit", value, where)
    except InputError:
        raise  # a range that ends before it starts: parsed, and said so
    except OutOfRange as exc:
        raise InputError(
            f"{where}: datetime {value!r}: {exc}; give a time from 0001-01-01T00:00:00Z "
            "to 9999-12-31T23:59:59Z in UTC.",
            hints=(DATETIME_HINT,),
        ) from None
    except ValueError as exc:
        raise InputError(
            f"{where}: cannot parse datetime {value!r} ({exc}); "
            "use ISO 8601, e.g. 2024-05-13T10:00:00Z or 2024-05-01/2024-05-31.",
            hints=(DATETIME_HINT,),
        ) from exc
    raise InputError(
        f"{where}: cannot parse datetime {value!r}; use ISO 8601, "
        "e.g. 2024-05-13T10:00:00Z or an interval 2024-05-01/2024-05-31.",
        hints=(DATETIME_HINT,),
    )


# --------------------------------------------------------------------------- filename


#: the named groups a ``datetime_pattern`` is read by
PATTERN_GROUPS = ("start", "end", "datetime", "year", "month", "day", "doy", "hour", "minute", "second")


def compile_pattern(pattern: str) -> re.Pattern[str]:
    """The ``datetime_pattern`` option compiled; raises :class:`InputError` when it
    is not a valid regular expression, or names a group it would not be read by
    (checked when the options are created)."""
    try:
        compiled = re.compile(pattern)
    except re.error as exc:
        raise InputError(
            f"datetime pattern {as_typed(pattern)} is not a valid regular expression: {exc}.",
            hints=(PATTERN_HINT,),
        ) from exc
    if _literal_slash(pattern):
        raise InputError(
            f"datetime pattern {as_typed(pattern)} holds a '/': it is searched in the file name only "
            "(no folder), where it can never match. Match the date in the file name, or give "
            "the products' datetime explicitly.",
            hints=(PATTERN_HINT, DATETIME_HINT),
        )
    unknown = [name for name in compiled.groupindex if name not in PATTERN_GROUPS]
    if unknown:
        # ignored, such a group left every product on 1 January (or the 1st) of its year
        raise InputError(
            f"datetime pattern {as_typed(pattern)}: the named group(s) {', '.join(map(repr, unknown))} would be "
            f"ignored; the named groups read are {', '.join(f'(?P<{g}>…)' for g in PATTERN_GROUPS)} "
            "(doy: the day of the year, 1-366); rename them, or make them unnamed (…).",
            hints=(PATTERN_HINT,),
        )
    return compiled


def _literal_slash(pattern: str) -> bool:
    """Whether ``pattern`` matches a ``/`` outside a character class (``/``
    or ``\\/``): a file name never holds one (``[^/]`` is fine)."""
    i, in_class = 0, False
    while i < len(pattern):
        char = pattern[i]
        if char == "\\":
            if not in_class and pattern[i + 1 : i + 2] == "/":
                return True
            i += 2
            continue
        if in_class:
            in_class = char != "]"
        elif char == "[":
            in_class = True
            if pattern[i + 1 : i + 2] == "^":
                i += 1
            if pattern[i + 1 : i + 2] == "]":  # a leading ']' is a member
                i += 1
        elif char == "/":
            return True
        i += 1
    return False


def _from_user_pattern(name: str, pattern: str) -> DatetimeResult | None:
    match = compile_pattern(pattern).search(name)
    if match is None:
        return None
    groups = match.groupdict()
    where = f"{name}: datetime pattern {as_typed(pattern)}"
    try:
        if groups.get("start") is not None or groups.get("end") is not None:
            if groups.get("start") is None or groups.get("end") is None:
                raise ValueError("named groups 'start' and 'end' must both match")
            start = parse_datetime(groups["start"])
            end = parse_datetime(groups["end"], end=True)
            return _instant_or_range(start, end, "filename", pattern, where)
        if groups.get("year") is not None and groups.get("doy") is not None:
            if groups.get("month") is not None or groups.get("day") is not None:
                raise ValueError("give the day of the year (doy) or month and day, not both")
            doy = int(groups["doy"])
            start = datetime(_year(groups["year"]), 1, 1, tzinfo=UTC)
            if doy < 1 or doy > (start.replace(month=12, day=31) - start).days + 1:
                raise ValueError(f"day {doy} is not a day of the year {start.year}")
            value = start + timedelta(days=doy - 1)
            value = value.replace(
                hour=int(groups.get("hour") or 0),
                minute=int(groups.get("minute") or 0),
                second=int(groups.get("second") or 0),
            )
            return DatetimeResult(value, None, None, "filename", pattern)
        if groups.get("year") is not None:
            value = datetime(
                _year(groups["year"]),
                int(groups.get("month") or 1),
                int(groups.get("day") or 1),
                int(groups.get("hour") or 0),
                int(groups.get("minute") or 0),
                int(groups.get("second") or 0),
                tzinfo=UTC,
            )
            return DatetimeResult(value, None, None, "filename", pattern)
        if groups.get("datetime") is not None:
            return DatetimeResult(parse_datetime(groups["datetime"]), None, None, "filename", pattern)
        unnamed = [g for g in match.groups() if g is not None]
        text = unnamed[0] if len(unnamed) == 1 else match.group(0)
        return DatetimeResult(parse_datetime(text), None, None, "filename", pattern)
    except InputError:
        raise  # a range that ends before it starts: parsed, and said so
    except (ValueError, TypeError) as exc:
        raise InputError(
            f"{where} matched {match.group(0)!r} but it is not a valid date ({exc}); use named groups "
            "(?P<start>…)/(?P<end>…), (?P<year>…)(?P<month>…)(?P<day>…), or one group holding an ISO date",
            hints=(DATETIME_HINT,) if isinstance(exc, _TwoDigitYear) else (),
        ) from exc


class _TwoDigitYear(ValueError):
    """A pattern's year group matched no four digits: one way out is the datetime option."""


def _year(text: str) -> int:
    """The year a pattern's ``year`` group matched, which must be four
    digits: two (``24``) were read as the year 24 AD, silently; which
    century is meant is not ours to guess."""
    if len(text.strip()) != 4:
        raise _TwoDigitYear(
            f"the year group matched {text!r}, not the four digits of a year: capture the whole year, "
            r"e.g. (?P<year>\d{4}); for names with two-digit years, rename the files or give the "
            "datetime instead of a pattern"
        )
    return int(text)


def _valid(groups: tuple[str | None, ...]) -> datetime | None:
    # the date groups always match; the time groups only together (all or none)
    year, month, day = (int(g or 0) for g in groups[:3])
    if not _MIN_YEAR <= year <= _MAX_YEAR:
        return None
    try:
        if len(groups) > 3 and groups[3] is not None:
            hour, minute, second = (int(g or 0) for g in groups[3:6])
            return datetime(year, month, day, hour, minute, second, tzinfo=UTC)
        return datetime(year, month, day, tzinfo=UTC)
    except ValueError:  # month 13, 31 February, hour 25...
        return None


def _has_time(groups: tuple[str | None, ...]) -> bool:
    return len(groups) > 3 and groups[3] is not None


def _processing_date(name: str, first: re.Match[str], second: re.Match[str]) -> bool:
    """True when ``second`` is the processing date that follows the
    acquisition date ``first`` in a Landsat product id (:data:`_LANDSAT_ID`)."""
    return any(
        landsat.span(group) == first.span() and landsat.span(group + 1) == second.span()
        for landsat in _LANDSAT_ID.finditer(name)
        for group in (1, 3)  # the product id's dates, or the ARD tile id's
    )


def from_filename(name: str, pattern: str | None = None) -> DatetimeResult | None:
    """Date(s) in a file name: the user pattern first, then the built-in ones.

    Built-in patterns, in order: ``YYYYMMDDTHHMMSS[Z]``, ``YYYY-MM-DD[THH:MM:SS]``,
    ``YYYYMMDD``; digits must not touch other digits, impossible dates (month 13)
    and years outside 1900–2199 are skipped. Two valid matches of the same pattern
    separated only by a short separator (``_``, ``-``, ``.``, ``_to_``) form a
    range, except a Landsat product id's acquisition and processing dates
    (``LC09_L2SP_190026_20240513_20240514_02_T1``: 13 May); otherwise the
    first match is the instant (so a processing date later
    in a name such as ``S2A_..._20240513T101559_N0510_..._20240513T124256`` is
    ignored). Returns ``None`` when nothing matches.
    """
    if pattern:
        found = _from_user_pattern(name, pattern)
        if found is not None:
            return found
    for label, regex in _BUILTIN_PATTERNS:
        hits = [(m, v) for m in regex.finditer(name) if (v := _valid(m.groups())) is not None]
        if not hits:
            continue
        (first_match, first), rest = hits[0], hits[1:]
        if rest and not _processing_date(name, first_match, rest[0][0]):
            second_match, second = rest[0]
            gap = name[first_match.end() : second_match.start()]
            if _RANGE_SEPARATOR.match(gap) and second >= first:
                if not _has_time(second_match.groups()):
                    second = datetime.combine(second.date(), _END_OF_DAY, tzinfo=UTC)
                return DatetimeResult(None, first, second, "filename", label)
        return DatetimeResult(first, None, None, "filename", label)
    return None


# --------------------------------------------------------------------------- tags


def _netcdf_time(tags: Mapping[str, str], band_tags: Mapping[str, str]) -> datetime | None:
    raw = band_tags.get("NETCDF_DIM_time") or tags.get("NETCDF_DIM_time")
    units = tags.get("time#units")
    if raw is None or not units:
        return None
    match = re.match(r"^\s*(seconds|minutes|hours|days)\s+since\s+(.+?)\s*$", units, re.IGNORECASE)
    calendar = tags.get("time#calendar", "standard").lower()
    if not match or calendar not in ("standard", "gregorian", "proleptic_gregorian"):
        return None
    try:
        epoch = parse_datetime(match.group(2))
        return epoch + timedelta(**{match.group(1).lower(): float(raw)})
    except (ValueError, OverflowError):  # not a number (nan), or past the years 1-9999: unusable
        return None


def from_tags(
    tags: Mapping[str, str],
    imagery: Mapping[str, str] | None = None,
    band_tags: Mapping[str, str] | None = None,
) -> DatetimeResult | None:
    """Datetime from raster metadata; ``None`` when no usable tag is present.

    Tried in this order (acquisition before file-creation time):

    1. ``ACQUISITIONDATETIME`` in GDAL's ``IMAGERY`` domain (``imagery``);
    2. NetCDF ACDD globals ``NC_GLOBAL#time_coverage_start``/``_end`` (a range;
       without an end, start plus ``time_coverage_duration`` when that is an
       ISO 8601 duration; the ``GDAL_``-prefixed copies GDAL writes are
       accepted too);
    3. NetCDF time coordinate: ``NETCDF_DIM_time`` (band or dataset tag) with
       ``time#units`` = ``<unit> since <epoch>`` on a standard calendar;
    4. ``TIFFTAG_DATETIME`` (``YYYY:MM:DD HH:MM:SS``; note that TIFF defines it as
       the image *creation* time).

    Unparsable tag values are skipped, not fatal (tags are written by anyone).
    """
    imagery = imagery or {}
    band_tags = band_tags or {}

    def parse(value: str | None, *, end: bool = False) -> datetime | None:
        if not value:
            return None
        try:
            return parse_datetime(value, end=end)
        except ValueError:
            return None

    acquired = parse(imagery.get("ACQUISITIONDATETIME"))
    if acquired is not None:
        return DatetimeResult(acquired, None, None, "tags", "IMAGERY:ACQUISITIONDATETIME")

    for prefix in ("NC_GLOBAL#", "NC_GLOBAL#GDAL_"):
        start = parse(tags.get(prefix + "time_coverage_start"))
        end = parse(tags.get(prefix + "time_coverage_end"), end=True)
        if start is not None and end is not None and end >= start:
            return DatetimeResult(None, start, end, "tags", prefix + "time_coverage_start/end")
        if start is not None and end is None and not tags.get(prefix + "time_coverage_end"):
            after = after_duration(start, tags.get(prefix + ACDD_DURATION))
            if after is not None:
                return DatetimeResult(None, start, after, "tags", prefix + "time_coverage_start/duration")
        if start is not None and end is None:
            return DatetimeResult(start, None, None, "tags", prefix + "time_coverage_start")

    nc_time = _netcdf_time(tags, band_tags)
    if nc_time is not None:
        return DatetimeResult(nc_time, None, None, "tags", "NETCDF_DIM_time")

    tiff = parse(tags.get("TIFFTAG_DATETIME"))
    if tiff is not None:
        return DatetimeResult(tiff, None, None, "tags", "TIFFTAG_DATETIME")
    return None


# --------------------------------------------------------------------------- CF time

#: the ACDD global attributes that may give a datacube its time range
ACDD_START, ACDD_END = "time_coverage_start", "time_coverage_end"
ACDD_DURATION = "time_coverage_duration"

#: an ISO 8601 duration (``P1D``, ``PT6H``, ``P1M``, ``P1Y2M3DT4H5M6S``,
#: ``P2W``); a fraction only in the last part given, as ISO 8601 allows, and
#: never in years or months, which have no fixed length
_DURATION_RE = re.compile(
    r"^P(?!$)(?:(?P<years>\d+)Y)?(?:(?P<months>\d+)M)?(?:(?P<weeks>\d+(?:[.,]\d+)?)W)?"
    r"(?:(?P<days>\d+(?:[.,]\d+)?)D)?"
    r"(?:T(?=\d)(?:(?P<hours>\d+(?:[.,]\d+)?)H)?(?:(?P<minutes>\d+(?:[.,]\d+)?)M)?"
    r"(?:(?P<seconds>\d+(?:[.,]\d+)?)S)?)?$",
    re.IGNORECASE,
)


def after_duration(start: datetime, text: object) -> datetime | None:
    """``start`` plus the ISO 8601 duration ``text`` (years and months on the
    calendar: 31 January plus ``P1M`` is the last day of February);
    ``None`` when ``text`` is no positive duration of that form or the end
    leaves the years 1-9999."""
    match = _DURATION_RE.match(str(text).strip()) if text is not None else None
    if match is None:
        return None
    parts = {key: float(value.replace(",", ".")) for key, value in match.groupdict().items() if value}
    given = [
        key for key in ("years", "months", "weeks", "days", "hours", "minutes", "seconds") if key in parts
    ]
    if any(not parts[key].is_integer() for key in given[:-1]):
        return None  # a fraction before the last part
    try:
        months = start.month - 1 + int(parts.get("months", 0)) + 12 * int(parts.get("years", 0))
        year, month = start.year + months // 12, months % 12 + 1
        day = min(start.day, (date(year + month // 12, month % 12 + 1, 1) - timedelta(days=1)).day)
        end = start.replace(year=year, month=month, day=day) + timedelta(
            weeks=parts.get("weeks", 0),
            days=parts.get("days", 0),
            hours=parts.get("hours", 0),
            minutes=parts.get("minutes", 0),
            seconds=parts.get("seconds", 0),
        )
    except (ValueError, OverflowError):
        return None
    return end if end > start else None


#: calendars (as cftime names them) whose days are real days: a date in one is
#: an instant, the same in any of them (``gregorian`` is read as ``standard``)
_REAL_DAY_CALENDARS = frozenset({"standard", "julian"})


def _cf_instant(value: Any, where: str) -> datetime:
    """A cftime date (any CF calendar) → aware UTC :class:`datetime`
    (proleptic Gregorian, the calendar of STAC datetimes).

    Real-day calendars name an instant: a ``julian`` date, or a
    ``standard``/``gregorian`` one before 1582-10-15 (Julian there), is
    converted to that instant (cftime ``change_calendar``; Julian
    2024-01-01 is 2024-01-14). Model calendars (``360_day``, ``noleap``,
    ``all_leap``) name no instant: their year, month, day and time are
    kept, and a date Gregorian has not (30 February in ``360_day``) is
    clamped to the last day of that month, which is what such dates mean.
    """
    import calendar as _calendar  # noqa: PLC0415 (rarely needed, keeps the module light)

    calendar = getattr(value, "calendar", None)
    # a standard date from 1582-10-15 on is already proleptic Gregorian: only
    # Julian dates need the (slow, ~ms) conversion
    if calendar == "julian" or (
        calendar in _REAL_DAY_CALENDARS and (value.year, value.month, value.day) < (1582, 10, 15)
    ):
        value = value.change_calendar("proleptic_gregorian")
    year, month, day = (int(getattr(value, f)) for f in ("year", "month", "day"))
    if not 1 <= year <= 9999:
        raise InputError(
            f"{where}: time {value} is outside the years 1-9999 a STAC datetime can hold",
            hints=(DATETIME_HINT,),
        )
    day = min(day, _calendar.monthrange(year, month)[1])
    hour, minute, second = (int(getattr(value, f)) for f in ("hour", "minute", "second"))
    micro = int(getattr(value, "microsecond", 0))
    return datetime(year, month, day, hour, minute, second, micro, tzinfo=UTC)


#: ``nanoseconds since <epoch>``: xarray's encoding of datetime64[ns] times
#: with a part below the microsecond, in a unit cftime does not read
_NANOSECONDS = re.compile(r"^\s*(nanoseconds?|nsecs?|ns)\s+since\s+", re.IGNORECASE)


def in_microseconds(values: Any, units: str) -> tuple[Any, str]:
    """``(values, units)`` of a CF time axis with ``nanoseconds since ...``
    restated in microseconds (what a STAC datetime holds: the nanoseconds
    below it are dropped, integers exactly); other units unchanged."""
    match = _NANOSECONDS.match(units)
    if match is None:
        return values, units
    import numpy as np  # noqa: PLC0415 (only datacubes need it)

    array = np.asarray(values)
    micro = array // 1000 if array.dtype.kind in "iu" else array / 1000.0
    return micro, "microseconds since " + units[match.end() :]


#: the clock of a CF epoch and a time zone offset after it whose hour has one
#: digit or no minutes (UDUNITS and the CF conventions' own example:
#: ``seconds since 1992-10-8 15:15:42.5 -6:00``; ``... 0:0:0 +1``)
_SHORT_OFFSET = re.compile(r"(\d{1,2}:\d{1,2}(?::\d{1,2}(?:\.\d*)?)?)\s*([+-])(\d{1,2})(?::?(\d{2}))?\s*$")


def _full_offset(units: str) -> str:
    """``units`` with a time zone offset spelled as cftime reads it
    (``-06:00``): cftime ignores ``-6:00``, ``+1`` or ``+5:30`` silently,
    which moved every date by that offset."""
    return _SHORT_OFFSET.sub(
        lambda m: f"{m[1]} {m[2]}{int(m[3]):02d}:{int(m[4] or 0):02d}",
        units.rstrip(),
    )


#: CDO's absolute time axis (``cdo -a``, ``setreftime`` off): the value is the
#: date itself. CDI writes ``day as %Y%m%d.%f`` (the fraction: of the day),
#: ``month as %Y%m.%f`` and ``year as %Y.%f``; it reads the fraction of a
#: month or year as nothing (the month's, the year's first day), and so does this
_ABSOLUTE = re.compile(r"^\s*(day|month|year)s?\s+as\s+%Y(?:%m(?:%d)?)?\.%f\s*$", re.IGNORECASE)
_ABSOLUTE_DIGITS = {"day": 8, "month": 6, "year": 4}


def is_absolute_time(units: str) -> bool:
    """Whether ``units`` are those of CDO's absolute time axis (``day as %Y%m%d.%f``)."""
    return _absolute_form(units) is not None


def _absolute_form(units: str) -> str | None:
    """``day``, ``month`` or ``year``: the unit of CDO absolute ``units``, when
    its digits match it (``day as %Y%m%d.%f``, not ``day as %Y.%f``)."""
    match = _ABSOLUTE.match(units)
    if match is None:
        return None
    unit = match[1].lower()
    digits = 4 + 2 * units.count("%m") + 2 * units.count("%d")
    return unit if digits == _ABSOLUTE_DIGITS[unit] else None


def _absolute_datetimes(
    values: Any, units: str, unit: str, calendar: str | None, where: str
) -> list[datetime]:
    """The dates of a CDO absolute time axis (see :data:`_ABSOLUTE`) in
    ``calendar``, through :func:`_cf_instant` like any CF date; the day's
    fraction to the second, as CDI reads it."""
    import cftime  # noqa: PLC0415 (only datacubes need it)
    import numpy as np  # noqa: PLC0415

    name = (calendar or "standard").strip().lower()
    out: list[datetime] = []
    for value in np.asarray(values, dtype="float64").ravel().tolist():
        whole = math.floor(value) if math.isfinite(value) else 0
        text = f"{whole:0{_ABSOLUTE_DIGITS[unit]}d}"
        try:
            if not math.isfinite(value) or whole < 0 or len(text) > _ABSOLUTE_DIGITS[unit]:
                raise ValueError("not a date of this form")
            year = int(text[:4])
            month = int(text[4:6]) if unit != "year" else 1
            day = int(text[6:8]) if unit == "day" else 1
            date = cftime.datetime(year, month, day, calendar=name)
            if unit == "day":
                date = date + timedelta(seconds=round((value - whole) * 86400.0))
        except (ValueError, TypeError, OverflowError) as exc:
            raise InputError(
                f"{where}: time value {value:.6f} is no date in the units {units!r} (CDO's absolute time "
                f"axis: the value is the date, e.g. 20240513.5 for noon on 13 May 2024), calendar "
                f"{name!r}: {exc}; correct it in a new file (e.g. `cdo -r copy in.nc fixed.nc` writes a "
                "relative axis), or give it a datetime yourself",
                hints=(DATETIME_HINT,),
            ) from None
        out.append(_cf_instant(date, where))
    return out


def cf_datetimes(values: object, units: str, calendar: str | None, where: str) -> list[datetime]:
    """Numbers on a CF time axis (``<unit> since <epoch>`` in any spelling
    cftime reads: ``days since 1950-1-1``, ``Hour since ...``, an epoch with a
    ``UTC`` suffix or an offset) in any CF calendar → aware UTC datetimes
    (real-day calendars converted to the instant, model calendars' dates
    kept: see :func:`_cf_instant`); CDO's absolute axis (``day as
    %Y%m%d.%f``: the value is the date) too.

    Raises :class:`InputError` naming ``where`` when the units or calendar
    are not CF or a value is out of range. Imports cftime (lazily).
    """
    import cftime  # noqa: PLC0415 (only datacubes need it)

    absolute = _absolute_form(units)
    if absolute is not None:
        return _absolute_datetimes(values, units, absolute, calendar, where)
    values, units = in_microseconds(values, units)
    try:
        decoded = cftime.num2date(
            values,
            _full_offset(units.strip()),
            calendar=(calendar or "standard").strip().lower(),
            only_use_cftime_datetimes=True,
        )
    except (ValueError, TypeError, OverflowError) as exc:
        raise InputError(
            f"{where}: cannot read the time axis (units {units!r}, calendar {calendar or 'standard'!r}): {exc}; "
            "CF time units are '<days|hours|minutes|seconds> since <date>'",
            hints=(DATETIME_HINT,),
        ) from None
    return [_cf_instant(v, where) for v in list(getattr(decoded, "flat", decoded))]


def from_time_axis(
    first: datetime, last: datetime, *, steps: int, bounded: bool, name: str, where: str
) -> DatetimeResult:
    """The item datetime of a time axis spanning ``first``..``last``: one
    step without bounds is an instant; several steps, or cell bounds, a range."""
    if steps == 1 and not bounded:
        return DatetimeResult(first, None, None, "tags", f"time coordinate {name!r}")
    return _instant_or_range(first, last, "tags", f"time coordinate {name!r}", where)


def from_acdd(attrs: Mapping[str, object]) -> DatetimeResult | None:
    """ACDD ``time_coverage_start``/``_end`` global attributes → a range (start
    and ``time_coverage_duration`` when no end is given), or an instant when
    only the start is given (or a duration that is no ISO 8601 one); ``None`` when there is no start, or
    when the end is given but is not a date (``"present"``: an open-ended
    dataset has no end a STAC item can hold). GDAL's ``GDAL_``-prefixed
    copies of the attributes are read when the originals are absent."""
    prefix = "" if ACDD_START in attrs else "GDAL_"  # the copies GDAL writes are accepted too
    start_raw, end_raw = attrs.get(prefix + ACDD_START), attrs.get(prefix + ACDD_END)
    try:
        start = parse_datetime(str(start_raw)) if start_raw not in (None, "") else None
    except ValueError:
        return None
    if start is None:
        return None
    if end_raw in (None, ""):
        end = after_duration(start, attrs.get(prefix + ACDD_DURATION))
        if end is not None:  # ACDD: the data covers start .. start + duration
            return DatetimeResult(None, start, end, "tags", f"{ACDD_START}/duration")
        return DatetimeResult(start, None, None, "tags", ACDD_START)
    try:
        end = parse_datetime(str(end_raw), end=True)
    except ValueError:
        return None
    if end < start:
        return None
    return DatetimeResult(None, start, end, "tags", f"{ACDD_START}/end")


# --------------------------------------------------------------------------- resolve

TagReader = Callable[[], tuple[Mapping[str, str], Mapping[str, str], Mapping[str, str]]]


def resolve_datetime(
    name: str,
    *,
    explicit: str | None = None,
    sources: tuple[str, ...] = SOURCES,
    pattern: str | None = None,
    read_tags: TagReader | None = None,
    where: str | None = None,
    time_axis: Callable[[], DatetimeResult | None] | None = None,
    read_attrs: Callable[[], DatetimeResult | None] | None = None,
    fix: str | None = None,
    named: str | None = None,
) -> DatetimeResult:
    """Try ``sources`` in order and return the first value found.

    ``name`` is the file name matched by the filename source; ``read_tags`` is
    called (at most once, only when the "tags" source is reached) and returns
    ``(dataset tags, IMAGERY tags, first band tags)``. ``where`` names the product
    in messages (defaults to ``name``).

    Datacubes (NetCDF, Zarr) pass ``time_axis``, the file's own time
    coordinate: when "tags" is among ``sources`` it is tried right after
    "explicit" (before the file name: a name holds one date, the axis the
    whole window), and ``read_attrs`` (ACDD attributes) replaces
    ``read_tags`` at the place of "tags". ``fix`` replaces the GeoTIFF advice
    in the "no datetime" message. ``named``: the datetime another name gives
    the product (a multi-asset item's id), same syntax as ``explicit``,
    tried at the place of "filename", before the file name itself.

    Raises :class:`InputError` for an unknown source name or a malformed explicit
    value / user pattern, and :class:`NoDatetimeError` when no source yields one.
    """
    where = where or name
    unknown = [s for s in sources if s not in SOURCES]
    if unknown or not sources:
        raise InputError(
            f"unknown datetime source(s) {unknown or list(sources)!r}; choose from {', '.join(SOURCES)}"
        )
    order = list(sources)
    tiff_tag = ""  # a TIFFTAG_DATETIME read but no date, quoted in the error
    if time_axis is not None and "tags" in order:
        order.insert(1 if order[0] == "explicit" else 0, "axis")
    for source in order:
        found: DatetimeResult | None = None
        if source == "axis" and time_axis is not None:
            found = time_axis()
        elif source == "explicit":
            found = from_explicit(explicit, where=f"{where}: explicit datetime")
        elif source == "filename":
            if named is not None:
                found = from_explicit(named, where=f"{where}: datetime of its item id")
            if found is None:
                found = from_filename(name, pattern)
        elif source == "tags" and read_attrs is not None:
            found = read_attrs()
        elif source == "tags" and read_tags is not None:
            tags, imagery, band = read_tags()
            found = from_tags(tags, imagery, band)
            tiff_tag = str(tags.get("TIFFTAG_DATETIME") or "")
        if found is not None:
            return found
    advice = fix or (
        "Write a TIFFTAG_DATETIME tag into the file (e.g. gdal_edit.py -mo TIFFTAG_DATETIME='2024:05:13 10:00:00')."
    )
    if fix is None and tiff_tag:
        advice = (
            f"Its TIFFTAG_DATETIME {tiff_tag!r} is no date (TIFF writes 'YYYY:MM:DD HH:MM:SS', in UTC "
            "here): write a valid one into the file (e.g. gdal_edit.py -mo TIFFTAG_DATETIME='2024:05:13 10:00:00')."
        )
    raise NoDatetimeError(
        f"{where}: no datetime found (tried {', '.join(sources)}). {advice}",
        hints=(DATETIME_HINT, PATTERN_HINT),
    )

"""NaN and Infinity in a document: JSON (RFC 8259) has neither.

Python's ``json`` writes them as the bare tokens ``NaN``/``Infinity`` unless
told not to, and strict parsers (the mirror's, most other languages') refuse
such a file. :func:`non_finite` finds them: one pass of the C encoder when
there is none (the usual case; an item's geometry is looked at value by
value instead), a walk naming each place when there is.
Pure; imports only the standard library.
"""

from __future__ import annotations

import itertools
import json
import math
from typing import Any

#: ``json.dumps`` that raises ValueError at a NaN or infinity (a check only: the text is dropped)
_STRICT = json.JSONEncoder(allow_nan=False, check_circular=False).encode


def non_finite(doc: Any) -> list[str]:
    """One problem per NaN/±Infinity float in ``doc`` (nested dicts, lists,
    tuples), each starting with its JSON path (``bbox[1]: NaN is not JSON
    ...``); ``[]`` when there is none. Mutates nothing."""
    geometry = doc.get("geometry") if type(doc) is dict else None
    try:
        if type(geometry) is dict and _plain_and_finite(geometry, 0):
            # an item: its footprint's floats are looked at, not formatted
            # (hundreds in a densified one: most of the encoder's time)
            _STRICT({**doc, "geometry": None})
        else:
            _STRICT(doc)
    except ValueError:
        pass  # out of range float (or a circular value: the walk below finds no float then)
    except (TypeError, RecursionError):
        pass  # not JSON for another reason: schema checks and the writer report that
    else:
        return []
    problems: list[str] = []
    _walk(doc, "", problems, 0)
    return problems


#: scalars that cannot be a NaN or an infinity
_NOT_FLOATS = frozenset((str, int, bool, type(None)))
#: scalars :func:`math.isfinite` takes (an int too large for a float raises OverflowError)
_NUMBERS = frozenset((int, float, bool))
#: the containers :func:`_plain_and_finite` looks into
_CONTAINERS = frozenset((dict, list, tuple))
#: deeper than this, :func:`_plain_and_finite` leaves the verdict to the encoder
_PLAIN_DEPTH = 100


def _plain_and_finite(value: dict | list | tuple, depth: int) -> bool:
    """Whether ``value`` is made of dicts with string keys, lists, tuples,
    strings, ints, bools, None and finite floats only (exact types), at
    most :data:`_PLAIN_DEPTH` deep: then the strict encoder of
    :func:`non_finite` accepts it. False means "not shown": that encoder
    decides."""
    if depth > _PLAIN_DEPTH:
        return False
    if type(value) is dict:
        if not all(type(key) is str for key in value):
            return False
        values: Any = value.values()
    else:
        values = value
    kinds = set(map(type, values))
    if _NOT_FLOATS.issuperset(kinds):
        return True
    if _NUMBERS.issuperset(kinds):  # a bbox, a position
        return _finite_numbers(list(values))
    if kinds == _LIST_ONLY:
        flat = list(itertools.chain.from_iterable(values))
        if _NUMBERS.issuperset(map(type, flat)):  # a ring of positions
            return _finite_numbers(flat)
    for item in values:
        kind = type(item)
        if kind is float:
            if not math.isfinite(item):
                return False
        elif kind in _CONTAINERS:
            if not _plain_and_finite(item, depth + 1):
                return False
        elif kind not in _NOT_FLOATS:
            return False
    return True


_LIST_ONLY = {list}


def _finite_numbers(numbers: list) -> bool:
    """Whether every one of ``numbers`` (ints, floats, bools) is finite, in
    one C-speed pass: their sum is NaN or infinite when one of them is
    (a sum too large for a float is too, and says False: not shown)."""
    try:
        return math.isfinite(sum(numbers))
    except OverflowError:  # an int no float holds (the encoder writes it): not shown
        return False


def _walk(value: Any, path: str, out: list[str], depth: int) -> None:
    if depth > 200:  # deeper than any document: circular, reported elsewhere
        return
    if isinstance(value, float):
        if not math.isfinite(value):
            token = "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
            out.append(
                f"{path or '(root)'}: {token} is not JSON (RFC 8259 has no NaN or Infinity); "
                "the number was computed from values the product does not hold"
            )
    elif isinstance(value, dict):
        for key, item in value.items():
            _walk(item, f"{path}.{key}" if path else str(key), out, depth + 1)
    elif isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            _walk(item, f"{path}[{i}]", out, depth + 1)

"""The compact JSON text of a ring of positions, kept for its next encoder.

A registered item's footprint (densified: hundreds of positions) is
encoded twice in a row: pretty in the item document
(:func:`producer.catalog.documents.dumps`), compact in the mirror's line
(:func:`producer.changes.item_line`). Formatting its floats is most of
each encoding, so the text of the last few rings is kept, looked up by the
exact value (every number a float, compared bit for bit, and the length
of every position): the same ring gives the same text, whoever asks.
Pure; imports only the standard library.
"""

from __future__ import annotations

import itertools
import json
from array import array

#: ``json.dumps(value, separators=(",", ":"), allow_nan=False)`` (raises ValueError at a NaN or infinity)
_COMPACT = json.JSONEncoder(allow_nan=False, separators=(",", ":")).encode
_FLOAT = frozenset((float,))
#: rings whose text is kept: a few, so threads writing items at once still find theirs
KEPT = 16
_TEXT: dict[tuple[tuple[int, ...], bytes], str] = {}


def compact_rows(rows: list | tuple) -> str:
    """``rows`` (a list of lists: a ring of positions) as compact JSON, as
    :data:`_COMPACT` writes it; the text of a ring of floats encoded a
    moment ago is not formatted again. Raises ValueError at a NaN or an
    infinity (nothing is kept then), TypeError where ``json`` does."""
    flat = list(itertools.chain.from_iterable(rows))
    if not _FLOAT.issuperset(map(type, flat)):  # ints, bools, subclasses: their own text
        return _COMPACT(rows)
    key = (tuple(map(len, rows)), array("d", flat).tobytes())
    text = _TEXT.get(key)
    if text is None:
        text = _COMPACT(rows)
        if len(_TEXT) >= KEPT:
            _TEXT.clear()  # one call: safe beside other threads, unlike dropping the oldest
        _TEXT[key] = text
    return text

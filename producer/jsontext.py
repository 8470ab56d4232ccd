"""orjson's text of a document where it is, byte for byte, ``json``'s
(and orjson's parse of a stored document where it is ``json.loads``').

Catalog documents are written as ``json.dumps(doc, indent=2,
ensure_ascii=False)`` writes them (:func:`producer.catalog.documents.dumps`)
and the mirror's lines as ``json.dumps(item, separators=(",", ":"))``
(:func:`producer.changes.item_line`). orjson writes the same text ten times
faster, but for three differences, each detected here so that the caller
falls back to ``json``:

- a float below 1e-4 in magnitude: Python writes ``1e-05``, orjson
  ``0.00001`` (1e-9 to 1e-4) or ``1e-7`` (one exponent digit); every other
  finite float (shortest round trip, both) has the same text. Detected in
  the output: a number starting ``0.0000`` or a one-digit negative exponent
  (a string holding such text only costs the fallback);
- NaN and infinities: orjson writes ``null``; when the output holds a
  ``null``, :func:`producer.finite.non_finite` looks at the document,
  unless (indented text) every ``null`` is a top-level member whose value
  is None (:func:`_top_level_nones`: a flat collection's layout record);
- ``ensure_ascii`` (the compact line): orjson writes UTF-8, so characters
  from U+007F up are escaped afterwards as ``json`` escapes them (they occur
  only inside strings).

Anything but exact JSON types (a subclass of dict, str, int, float, a
datetime, a dataclass, an int beyond 64 bits, a non-string key) raises in
orjson and takes the ``json`` road, as before. Two non-JSON values orjson
does encode where ``json`` raises TypeError: an ``Enum`` member that is not a
str or int (its value) and a ``uuid.UUID`` (its text); no document holds
either. Pure; imports orjson and the standard library.
"""

from __future__ import annotations

import itertools
import json
import re
from typing import Any

import orjson

from producer.finite import non_finite

_PASS = orjson.OPT_PASSTHROUGH_SUBCLASS | orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS
_PRETTY = _PASS | orjson.OPT_INDENT_2 | orjson.OPT_APPEND_NEWLINE
#: numbers orjson writes otherwise than Python: 1e-9 <= |x| < 1e-4 (Python: 1e-05):
#: ``\de-\d(?!\d)`` and ``(?<!\d)0\.0000``, searched from their literal part
#: (the regex engine's literal search: 3 us on an item's 10 kB, where ``in``
#: takes 4-10 us and a pattern opening with ``\d`` or a lookbehind 50-125 us)
#: and the digit before each occurrence looked at
_ONE_DIGIT_EXPONENT = re.compile(rb"e-\d(?!\d)")
_TINY_DECIMAL = re.compile(rb"0\.0000")
_NULL = re.compile(rb"null")
_NON_ASCII = re.compile(r"[^\x00-\x7e]")


def _refuse(value: Any) -> Any:
    raise TypeError(f"not an exact JSON type: {type(value).__name__}")


def _as_json_writes(out: bytes, doc: Any, *, indented: bool = False) -> bool:
    # (occurrences cannot overlap but for a "0" ending one "0.0000" and
    # starting the next, which a digit precedes: finditer misses none that counts)
    for match in _TINY_DECIMAL.finditer(out):
        start = match.start()
        if not out[start - 1 : start].isdigit():  # (b"" at 0: no digit)
            return False
    for match in _ONE_DIGIT_EXPONENT.finditer(out):
        start = match.start()
        if out[start - 1 : start].isdigit():
            return False
    if _NULL.search(out) is None:
        return True
    return (indented and _top_level_nones(out, doc)) or _finite(doc)


def _top_level_nones(out: bytes, doc: Any) -> bool:
    """Whether every ``null`` in ``out`` (``doc``'s text indented by 2) is
    the value of a member of ``doc`` that is None: then ``doc`` holds no
    NaN or infinity, each of which orjson writes as a ``null``. A collection
    records its flat layout as ``null``, and the C encoder's pass over it
    (``non_finite``) cost 9-30 us per commit. A JSON string holds no raw
    newline, so a line ``  "key": null`` (2 spaces: deeper members are
    indented more) is a member of the top object. False (the full check
    then) for any other ``null``: nested, in a string, under a key with a
    quote or an escape."""
    if type(doc) is not dict:
        return False
    at = out.find(b"null")
    while at >= 0:
        line = out[out.rfind(b"\n", 0, at) + 1 : at]
        key = line[3:-3]
        if (
            len(line) < 6
            or not line.startswith(b'  "')
            or not line.endswith(b'": ')
            or b'"' in key
            or b"\\" in key
            or out[at + 4 : at + 6] not in (b",\n", b"\n}")
        ):
            return False
        try:
            if doc.get(key.decode()) is not None:
                return False
        except UnicodeDecodeError:
            return False
        at = out.find(b"null", at + 4)
    return True


#: values that are no float and hold none
_NO_FLOATS = frozenset((str, int, bool, type(None)))
_DICT = frozenset((dict,))


def _finite(doc: Any) -> bool:
    """No NaN or infinity in ``doc`` (:func:`producer.finite.non_finite`);
    the links of a parent, when each is a dict of plain scalars that are no
    floats (the C-speed pass a large parent's 100,000 links need), are
    left out of the encoder's pass."""
    links = doc.get("links") if type(doc) is dict else None
    if (
        type(links) is list
        and len(links) > 64
        and _DICT.issuperset(map(type, links))
        and _NO_FLOATS.issuperset(map(type, itertools.chain.from_iterable(map(dict.values, links))))
    ):
        doc = {**doc, "links": []}
    return not non_finite(doc)


def pretty(doc: Any) -> bytes | None:
    """``(json.dumps(doc, indent=2, ensure_ascii=False, allow_nan=False) +
    "\\n").encode()``, or None where orjson's text could differ (the
    caller encodes with ``json``, which also raises where it does)."""
    try:
        out = orjson.dumps(doc, default=_refuse, option=_PRETTY)
    except TypeError:  # orjson.JSONEncodeError is a TypeError
        return None
    return out if _as_json_writes(out, doc, indented=True) else None


def pretty_and_compact(doc: Any) -> tuple[bytes, str] | None:
    """``(pretty(doc), compact(doc))`` with the checks made once, or None
    where either could differ from ``json``'s (the caller encodes each its
    own way). Both texts hold the same numbers, strings and ``null``s (only
    whitespace differs), so what :func:`pretty`'s checks found of one holds
    for the other; the compact text is then one more orjson pass (an
    item's mirror line, made as its document is written: 5-8 us instead
    of the encoding and checks again in the sink, caches cold)."""
    out = pretty(doc)
    if out is None:
        return None
    return out, _ascii_text(orjson.dumps(doc, option=_PASS))


def compact(doc: Any) -> str | None:
    """``json.dumps(doc, separators=(",", ":"), allow_nan=False)``
    (``ensure_ascii``: non-ASCII as ``\\uXXXX``), or None where orjson's text
    could differ."""
    try:
        out = orjson.dumps(doc, default=_refuse, option=_PASS)
    except TypeError:
        return None
    if not _as_json_writes(out, doc):
        return None
    return _ascii_text(out)


def _ascii_text(out: bytes) -> str:
    """orjson's compact UTF-8 ``out`` as ``json``'s ``ensure_ascii`` text:
    characters from U+007F up escaped (they occur only inside strings)."""
    if out.isascii() and b"\x7f" not in out:
        return out.decode("ascii")
    return _NON_ASCII.sub(_escape, out.decode("utf-8"))


def _escape(match: re.Match[str]) -> str:
    """A character as ``json``'s ``ensure_ascii`` writes it (a surrogate pair above U+FFFF)."""
    code = ord(match.group())
    if code < 0x10000:
        return f"\\u{code:04x}"
    code -= 0x10000
    return f"\\u{0xD800 | (code >> 10):04x}\\u{0xDC00 | (code & 0x3FF):04x}"


#: a run of 19 digits: an integer orjson may not keep exact (beyond 64 bits it
#: gives a float; ``json`` an int), or a long number or string of digits;
#: found as 19 "0" in the text with every digit made "0" and the rest " "
#: (1.3 us on a collection's 1.5 kB, where the pattern ``\d{19}`` takes 13)
_DIGITS_AS_ZERO = bytes(b"0"[0] if chr(i).isdigit() and i < 128 else b" "[0] for i in range(256))
_LONG_DIGITS = b"0" * 19


def loads(data: bytes) -> Any:
    """``json.loads(data)``: by orjson (4x faster on a collection document)
    where its result is the same, else by ``json`` (which also raises what it
    raises). orjson parses a subset of what ``json`` accepts, with the same
    values (floats correctly rounded both ways, the last of duplicate keys),
    and refuses the rest: ``NaN``/``Infinity``, ``1e400``, lone surrogates,
    a byte order mark, UTF-16 and -32, more than 1,024 levels; those go to
    ``json``. An integer beyond 64 bits, which orjson turns into a float, is
    caught before it parses: any run of 19 digits sends the text to ``json``
    (one C-speed search). ``data`` other than bytes goes to ``json``."""
    if type(data) is bytes and _LONG_DIGITS not in data.translate(_DIGITS_AS_ZERO):
        try:
            return orjson.loads(data)
        except orjson.JSONDecodeError:
            pass
    return json.loads(data)

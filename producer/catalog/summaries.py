"""Informative collections: ``summaries`` and ``item_assets``, kept like the extent.

Every commit merges its items into the collection document inside the
collection's compare-and-swap (:func:`merge`, called next to the extent
merge): O(size of the batch + size of the summaries), no other item read,
and the collection is written only when something new appeared.
``reconcile --fix`` recomputes them exactly from a walk, and ``validate``
reports a collection whose summaries miss what its items give
(:class:`Tally`, problem ``stale-summary``, a warning).

What is summarised (the *managed* fields; other summaries a collection's
metadata gave are left alone):

- ``summaries``: ``proj:code`` (item and asset level), ``platform``,
  ``constellation``, ``instruments`` (distinct values, sorted), ``gsd``
  (a ``{minimum, maximum}`` range), ``data_type`` (of the bands) and
  ``bands`` (distinct ``{"name": ...}`` of the bands, sorted by name);
- ``item_assets``: per asset key the ``type``, ``roles`` and ``title`` the
  items agree on. A field the items disagree on (the title of the ``data``
  asset is the file name, so it differs per item) is dropped for good; an
  asset key left with fewer than two fields is not listed (STAC requires two).

Bounded: a list summary with more than :data:`MAX_VALUES` distinct values is
dropped (an incomplete list would mislead), and ``item_assets`` with more
than :data:`MAX_ASSET_KEYS` keys is dropped; both are remembered in
``stac_producer:summaries`` (``capped``, ``mixed``, and ``partial``: the
asset keys too thin to list) so later merges do not
bring them back. Every rule is a union that forgets nothing, so merging in
any order or batch split gives, value for value, what :func:`recompute`
gives for the same items.

Removal does not shrink them (like a register, a remove writes in O(1));
a summary value of removed items stays until ``reconcile --fix``
recomputes them. ``validate`` reports ``stale-summary`` only for summaries
that miss something of the items (a collection written before summaries
existed, or edited by hand): values of removed items are expected.

Pure dict work, nothing of I/O.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Iterable, Mapping
from typing import Any

__all__ = [
    "MAX_ASSET_KEYS",
    "MAX_VALUES",
    "STATE_FIELD",
    "Tally",
    "merge",
    "recompute",
    "stale",
    "stored_summaries",
]

#: distinct values kept per list summary; more drop the summary
MAX_VALUES = 32
#: asset keys kept in ``item_assets``; more drop ``item_assets``
MAX_ASSET_KEYS = 64
#: what the merges must remember: capped summaries, disagreeing asset fields
STATE_FIELD = "stac_producer:summaries"

#: list summaries taken from item properties (lists are flattened)
_PROPERTY_LISTS = ("proj:code", "platform", "constellation", "instruments")
#: range summaries taken from item properties
_PROPERTY_RANGES = ("gsd",)
#: summaries made from the bands of the assets
_BAND_LISTS = ("data_type", "bands")
_LISTS = (*_PROPERTY_LISTS, *_BAND_LISTS)
MANAGED = (*_LISTS, *_PROPERTY_RANGES)
_ASSET_FIELDS = ("type", "roles", "title")
_ITEM_ASSETS = "item_assets"


#: a string json writes as is between quotes (printable ASCII but ``"`` and ``\\``)
_PLAIN = re.compile(r"[ !#-\[\]-~]*")


def _canon(value: Any) -> str:
    """``json.dumps(value, sort_keys=True, separators=(",", ":"))``: the
    key that orders a summary's values. The values items bring (a
    ``proj:code``, a data type, ``{"name": band}``) are plain strings or
    dicts of them, spelled here without the encoder (a few per commit)."""
    kind = type(value)
    if kind is str and _PLAIN.fullmatch(value):
        return f'"{value}"'
    if kind is dict and all(
        type(k) is str and type(v) is str and _PLAIN.fullmatch(k) and _PLAIN.fullmatch(v)
        for k, v in value.items()
    ):
        return "{" + ",".join(f'"{k}":"{value[k]}"' for k in sorted(value)) + "}"
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value == value


class _State:
    """The managed part of a collection's summaries, as sets and ranges."""

    def __init__(self) -> None:
        self.lists: dict[str, dict[str, Any]] = {}  # field -> canonical text -> value
        self.ranges: dict[str, tuple[float, float]] = {}
        self.capped: set[str] = set()
        self.assets: dict[str, dict[str, Any]] = {}
        self.mixed: dict[str, set[str]] = {}
        self.assets_capped = False

    # -- reading --------------------------------------------------------------

    @classmethod
    def of(cls, doc: Mapping[str, Any]) -> _State:
        """The state a collection document holds (fields not in its form are ignored)."""
        state = cls()
        record = _dict(doc.get(STATE_FIELD))
        state.capped = {c for c in record.get("capped") or () if isinstance(c, str)}
        mixed = _dict(record.get("mixed"))
        state.mixed = {
            str(k): {f for f in v if isinstance(f, str)} for k, v in mixed.items() if isinstance(v, list)
        }
        state.assets_capped = _ITEM_ASSETS in state.capped
        state.capped.discard(_ITEM_ASSETS)
        summ = _dict(doc.get("summaries"))
        for name in _LISTS:
            values = summ.get(name)
            if isinstance(values, list) and name not in state.capped:
                state.lists[name] = {_canon(v): v for v in values}
        for name in _PROPERTY_RANGES:
            rng = summ.get(name)
            if isinstance(rng, dict) and _number(rng.get("minimum")) and _number(rng.get("maximum")):
                state.ranges[name] = (rng["minimum"], rng["maximum"])
        assets = _dict(doc.get(_ITEM_ASSETS))
        if not state.assets_capped:
            for key, definition in assets.items():
                if isinstance(definition, dict):
                    state.assets[str(key)] = {f: definition[f] for f in _ASSET_FIELDS if f in definition}
            partial = _dict(record.get("partial"))
            for key, fields in partial.items():
                if isinstance(fields, dict):
                    state.assets.setdefault(str(key), {f: fields[f] for f in _ASSET_FIELDS if f in fields})
        return state

    # -- merging --------------------------------------------------------------

    def _add_value(self, name: str, value: Any) -> None:
        if name in self.capped or value is None:
            return
        values = self.lists.setdefault(name, {})
        values.setdefault(_canon(value), value)
        if len(values) > MAX_VALUES:
            self.capped.add(name)
            del self.lists[name]

    def _add_range(self, name: str, value: Any) -> None:
        if not _number(value):
            return
        low, high = self.ranges.get(name, (value, value))
        self.ranges[name] = (min(low, value), max(high, value))

    def _add_asset(self, key: str, asset: Mapping[str, Any]) -> None:
        if self.assets_capped:
            return
        new = key not in self.assets
        current = self.assets.setdefault(key, {})
        mixed = self.mixed.setdefault(key, set())
        for name in _ASSET_FIELDS:
            if name in mixed:
                continue
            value = asset.get(name)
            if new and value is not None:
                current[name] = value
            elif current.get(name) != value:  # absent in one of them counts as a disagreement
                current.pop(name, None)
                mixed.add(name)
        if not mixed:
            del self.mixed[key]
        if len(self.assets) > MAX_ASSET_KEYS:
            self.assets_capped = True
            self.assets, self.mixed = {}, {}

    def add(self, item: Mapping[str, Any]) -> None:
        """Merge one item document."""
        props = _dict(item.get("properties"))
        for name in _PROPERTY_LISTS:
            value = props.get(name)
            for v in value if isinstance(value, list) else [value]:
                if isinstance(v, (str, int, float)) and not isinstance(v, bool):
                    self._add_value(name, v)
        for name in _PROPERTY_RANGES:
            self._add_range(name, props.get(name))
        assets = _dict(item.get("assets"))
        for key, asset in assets.items():
            if not isinstance(asset, dict):
                continue
            self._add_asset(str(key), asset)
            code = asset.get("proj:code")
            if isinstance(code, str):
                self._add_value("proj:code", code)
            for band in asset.get("bands") or ():
                if not isinstance(band, dict):
                    continue
                if isinstance(band.get("data_type"), str):
                    self._add_value("data_type", band["data_type"])
                if isinstance(band.get("name"), str):
                    self._add_value("bands", {"name": band["name"]})

    # -- writing ---------------------------------------------------------------

    def write(self, doc: dict[str, Any]) -> bool:
        """Put this state into the collection ``doc`` (mutated): managed
        summaries replaced, other summaries kept. True if ``doc`` changed.

        The three members are replaced by new objects, never changed in
        place (the values kept in them are shared, unchanged), so the ones
        held before serve for the comparison without a deep copy."""
        before = (doc.get("summaries"), doc.get(_ITEM_ASSETS), doc.get(STATE_FIELD))
        summ = {k: v for k, v in (doc.get("summaries") or {}).items() if k not in MANAGED}
        for name in _LISTS:
            if self.lists.get(name):
                summ[name] = [self.lists[name][k] for k in sorted(self.lists[name])]
        for name, (low, high) in self.ranges.items():
            summ[name] = {"minimum": low, "maximum": high}
        if summ:
            doc["summaries"] = summ
        else:
            doc.pop("summaries", None)
        listed = {
            key: {f: fields[f] for f in _ASSET_FIELDS if f in fields}
            for key, fields in sorted(self.assets.items())
            if len(fields) >= 2
        }
        if listed:
            doc[_ITEM_ASSETS] = listed
        else:
            doc.pop(_ITEM_ASSETS, None)
        record: dict[str, Any] = {}
        capped = sorted(self.capped | ({_ITEM_ASSETS} if self.assets_capped else set()))
        if capped:
            record["capped"] = capped
        partial = {key: fields for key, fields in sorted(self.assets.items()) if len(fields) < 2}
        if partial:
            record["partial"] = partial
        if self.mixed:
            record["mixed"] = {k: sorted(v) for k, v in sorted(self.mixed.items())}
        if record:
            doc[STATE_FIELD] = record
        else:
            doc.pop(STATE_FIELD, None)
        return (doc.get("summaries"), doc.get(_ITEM_ASSETS), doc.get(STATE_FIELD)) != before


_ABSENT: Any = object()


def _increasing(texts: list[Any]) -> bool:
    """True if ``texts`` are strings in strictly increasing order."""
    previous = None
    for text in texts:
        if type(text) is not str or (previous is not None and text <= previous):
            return False
        previous = text
    return True


def _stored_form(doc: Mapping[str, Any]) -> tuple[dict[str, set[str]], dict[str, Any], dict[str, Any]] | None:
    """``(canonical texts per list summary, ranges, item_assets)`` of ``doc``
    when its managed members are exactly what :meth:`_State.write` would
    write back from :meth:`_State.of` (a fixed point, key order included)
    in the plain case: nothing capped or partial, no list or ``item_assets``
    at its bound; None otherwise (:func:`merge` takes the full path)."""
    summ = doc.get("summaries", _ABSENT)
    assets = doc.get(_ITEM_ASSETS, _ABSENT)
    record = doc.get(STATE_FIELD, _ABSENT)
    if record is not _ABSENT:
        # only "mixed": non-empty, keys sorted, each a sorted list of distinct strings
        if type(record) is not dict or len(record) != 1 or "mixed" not in record:
            return None
        mixed = record["mixed"]
        if type(mixed) is not dict or not mixed or not _increasing(list(mixed)):
            return None
        for fields in mixed.values():
            if type(fields) is not list or not fields or not _increasing(fields):
                return None
    lists: dict[str, set[str]] = {}
    ranges: dict[str, Any] = {}
    if summ is not _ABSENT:
        if type(summ) is not dict or not summ:
            return None
        managed = []  # the managed names, in the order they come
        for name in summ:
            if name in MANAGED:
                managed.append(name)
            elif managed:  # write puts the others first
                return None
        if managed and managed != [name for name in MANAGED if name in summ]:
            return None
        for name in managed:
            value = summ[name]
            if name in _PROPERTY_RANGES:
                if type(value) is not dict or len(value) != 2 or list(value) != ["minimum", "maximum"]:
                    return None
                if not (_number(value["minimum"]) and _number(value["maximum"])):
                    return None
                ranges[name] = value
                continue
            if type(value) is not list or not value or len(value) > MAX_VALUES:
                return None
            texts = [_canon(v) for v in value]
            if not _increasing(texts):
                return None
            lists[name] = set(texts)
    listed: dict[str, Any] = {}
    if assets is not _ABSENT:
        if type(assets) is not dict or not assets or len(assets) > MAX_ASSET_KEYS:
            return None
        if not _increasing(list(assets)):
            return None
        for definition in assets.values():
            if type(definition) is not dict or len(definition) < 2:
                return None
            position = 0
            for field in definition:  # a subsequence of _ASSET_FIELDS, nothing else
                if field not in _ASSET_FIELDS[position:]:
                    return None
                position = _ASSET_FIELDS.index(field) + 1
        listed = assets
    return lists, ranges, listed


def _brings_nothing(doc: Mapping[str, Any], items: list[Mapping[str, Any]]) -> bool:
    """True when merging ``items`` into ``doc`` would leave it as it is:
    ``doc`` in its written form (:func:`_stored_form`) and every value,
    range and asset field of the items already in it. Reads only; the
    same checks (and the same errors) as :meth:`_State.add`, against the
    stored state, which none of them changes.

    The asset fields first: an item that differs from the ones before in
    a field (a title) is told from them at once, before any text is made."""
    listed = doc.get(_ITEM_ASSETS)
    listed = listed if type(listed) is dict else {}
    record = doc.get(STATE_FIELD)
    mixed = record.get("mixed") if type(record) is dict else None
    mixed = mixed if type(mixed) is dict else {}
    for item in items:
        for key, asset in _dict(item.get("assets")).items():
            if not isinstance(asset, dict):
                continue
            current = listed.get(str(key))
            if type(current) is not dict:
                return False  # a new asset key
            skip = mixed.get(str(key))
            skip = skip if type(skip) is list else ()
            for name in _ASSET_FIELDS:
                if name not in skip and current.get(name) != asset.get(name):
                    return False
    form = _stored_form(doc)
    if form is None:
        return False
    lists, ranges, _ = form
    for item in items:
        props = _dict(item.get("properties"))
        for name in _PROPERTY_LISTS:
            value = props.get(name)
            for v in value if isinstance(value, list) else [value]:
                kept = isinstance(v, (str, int, float)) and not isinstance(v, bool)
                if kept and _canon(v) not in lists.get(name, ()):
                    return False
        for name in _PROPERTY_RANGES:
            value = props.get(name)
            if _number(value):
                rng = ranges.get(name)
                if rng is None or not (rng["minimum"] <= value and value <= rng["maximum"]):
                    return False
        for asset in _dict(item.get("assets")).values():
            if not isinstance(asset, dict):
                continue
            code = asset.get("proj:code")
            if isinstance(code, str) and _canon(code) not in lists.get("proj:code", ()):
                return False
            for band in asset.get("bands") or ():
                if not isinstance(band, dict):
                    continue
                data_type, band_name = band.get("data_type"), band.get("name")
                if isinstance(data_type, str) and _canon(data_type) not in lists.get("data_type", ()):
                    return False
                if isinstance(band_name, str) and _canon({"name": band_name}) not in lists.get("bands", ()):
                    return False
    return True


def merge(doc: dict[str, Any], items: Iterable[Mapping[str, Any]]) -> bool:
    """Merge ``items`` into the collection ``doc``'s summaries and
    ``item_assets`` (mutated); True if the document changed.

    The usual commit brings nothing new (an item like the ones before):
    :func:`_brings_nothing` tells that from the stored texts without
    rebuilding the state, and ``doc`` is left untouched; anything else
    takes the full path (:func:`_merge_full`), with the same result."""
    items = items if isinstance(items, list) else list(items)
    if _brings_nothing(doc, items):
        return False
    return _merge_full(doc, items)


def _merge_full(doc: dict[str, Any], items: Iterable[Mapping[str, Any]]) -> bool:
    """:func:`merge` through the whole state (read, add, write back)."""
    state = _State.of(doc)
    for item in items:
        state.add(item)
    return state.write(doc)


def recompute(doc: dict[str, Any], items: Iterable[Mapping[str, Any]]) -> bool:
    """Set the collection ``doc``'s managed summaries and ``item_assets``
    to exactly what ``items`` give (mutated); True if the document changed."""
    state = _State()
    for item in items:
        state.add(item)
    return state.write(doc)


class Tally:
    """The exact summaries of items seen one by one (``validate``'s walk):
    memory bounded like the summaries themselves."""

    def __init__(self) -> None:
        self._state = _State()

    def add(self, item: Mapping[str, Any]) -> None:
        self._state.add(item)

    def replace_in(self, doc: dict[str, Any]) -> bool:
        """Set ``doc``'s managed summaries to exactly this tally's (mutated); True if changed."""
        return self._state.write(doc)

    def merge_into(self, doc: dict[str, Any]) -> bool:
        """Merge this tally into ``doc``'s summaries (mutated); True if changed."""
        state = _State.of(doc)
        for name, values in self._state.lists.items():
            for value in values.values():
                state._add_value(name, value)
        for name in self._state.capped:
            state.capped.add(name)
            state.lists.pop(name, None)
        for name, (low, high) in self._state.ranges.items():
            state._add_range(name, low)
            state._add_range(name, high)
        if self._state.assets_capped:
            state.assets_capped, state.assets, state.mixed = True, {}, {}
        for key, fields in self._state.assets.items():
            state._add_asset(key, fields)
            for name in self._state.mixed.get(key, ()):
                state.assets.get(key, {}).pop(name, None)
                if not state.assets_capped:
                    state.mixed.setdefault(key, set()).add(name)
        return state.write(doc)

    def uncovered(self, collection: Mapping[str, Any]) -> str | None:
        """What the collection's summaries miss of these items (None: they
        cover them, maybe with values of removed items too)."""
        stored = stored_summaries(collection)
        merged = copy.deepcopy(stored)
        if not self.merge_into(merged):
            return None
        return _difference(stored, merged)

    def stale(self, collection: Mapping[str, Any]) -> str | None:
        """Why the collection's summaries are not the exact ones, or None."""
        exact = copy.deepcopy(dict(collection))
        self._state.write(exact)
        return _difference(collection, exact)


def stored_summaries(collection: Mapping[str, Any]) -> dict[str, Any]:
    """The part of a collection document these rules manage (a copy): what
    :meth:`Tally.stale` compares."""
    return {
        k: copy.deepcopy(collection[k]) for k in ("summaries", _ITEM_ASSETS, STATE_FIELD) if k in collection
    }


def stale(collection: Mapping[str, Any], items: Iterable[Mapping[str, Any]]) -> str | None:
    """Why ``collection``'s summaries are not what ``items`` give, or None."""
    tally = Tally()
    for item in items:
        tally.add(item)
    return tally.stale(collection)


def _difference(stored: Mapping[str, Any], exact: Mapping[str, Any]) -> str | None:
    parts = []
    have, want = stored.get("summaries") or {}, exact.get("summaries") or {}
    for name in MANAGED:
        if have.get(name) != want.get(name):
            parts.append(f"summaries.{name}")
    if stored.get(_ITEM_ASSETS) != exact.get(_ITEM_ASSETS) or stored.get(STATE_FIELD) != exact.get(
        STATE_FIELD
    ):
        parts.append(_ITEM_ASSETS)
    if not parts:
        return None
    return f"{', '.join(parts)} not what its items give"

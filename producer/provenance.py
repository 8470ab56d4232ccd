"""The pipeline's own metadata on each item: what the file cannot say.

A pipeline knows more than the file it wrote: the inputs it read, the
software and version that made it, its licence and providers, extra
properties (a processing level, a cloud cover it computed). The options
(:class:`~producer.options.RegisterOptions` fields ``properties``,
``derived_from``, ``software``, ``lineage``, ``item_license``,
``item_providers``, ``via``) are checked here once, when the options are created, and applied to
each extracted item by :func:`apply` (called by ``ingest._prepare`` before
validation, so what the caller gave is validated with the item).

What an item gets:

- ``properties``: merged into the item's properties. Keys the producer owns
  (:data:`RESERVED`) are refused when the options are created; a key that
  extraction already set from the file (``proj:code``...) is refused for that
  product unless the value is the same (no metadata contradicting the file).
- ``derived_from``: one ``rel: derived_from`` link per input (a product URL or
  an item's href; local paths made absolute, credentials removed).
- ``via``: one ``rel: via`` link per URL: the run or job that wrote the
  product (the Prefect adapter adds its flow run, see :mod:`producer.prefect`).
- the processing extension v1.2.0, when ``software`` or ``lineage`` is given:
  ``processing:software`` (``{"stac-producer": <version>}`` plus the caller's
  ``software`` mapping), ``processing:lineage`` and ``processing:datetime``
  (the registration time).

``processing:datetime``, the Prefect flow run id and the ``via`` links say
which run wrote the item's content: like ``updated`` they do not count as a
change (:data:`VOLATILE`, :data:`VOLATILE_RELS`; ``commit.same_content``). An
item that differs from the stored one only in them is ``unchanged``: nothing
is written and the stored values (the run that wrote the content) stay.
- ``license`` and ``providers`` as item properties (common metadata).

Nothing here does I/O; :func:`apply` mutates only the document it is given.
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from producer.errors import Hint, InputError
from producer.extract.datetimes import DATETIME_HINT, PATTERN_HINT
from producer.redact import clean_href, redact
from producer.timestamps import format_time

__all__ = [
    "PROCESSING_EXT",
    "ITEM_FIELDS",
    "RESERVED",
    "VOLATILE",
    "VOLATILE_RELS",
    "FLOW_RUN_PROPERTY",
    "Provenance",
    "apply",
    "package_version",
    "parse_properties",
    "parse_providers",
    "check_link",
    "check_metadata",
    "check_json_data",
    "check_no_credentials",
    "without_credentials",
]

PROCESSING_EXT = "https://stac-extensions.github.io/processing/v1.2.0/schema.json"
#: the extension of the :data:`TIMESTAMP_FIELDS` (its v1.1.0 wants them in UTC)
TIMESTAMPS_EXT = "https://stac-extensions.github.io/timestamps/v1.1.0/schema.json"

#: item properties the producer sets itself: never taken from ``properties``
RESERVED: frozenset[str] = frozenset(
    {
        "datetime",
        "start_datetime",
        "end_datetime",
        "created",
        "updated",
        "processing:datetime",
        "processing:software",
    }
)

#: the top-level fields of an item document: a property of one of these
#: names is taken for the field by readers of the mirror (stac-geoparquet
#: flattens properties to the top level), which then never matches the items
ITEM_FIELDS: frozenset[str] = frozenset(
    {
        "type",
        "stac_version",
        "stac_extensions",
        "id",
        "geometry",
        "bbox",
        "properties",
        "links",
        "assets",
        "collection",
    }
)

#: the item property holding the id of the Prefect flow run that registered
#: it (set by :mod:`producer.prefect`)
FLOW_RUN_PROPERTY = "prefect:flow_run_id"

#: properties that change on every run without the item changing: compared
#: like ``created``/``updated`` (an item differing only in them is unchanged,
#: and keeps the stored values: those of the run that wrote its content)
VOLATILE: frozenset[str] = frozenset({"processing:datetime", FLOW_RUN_PROPERTY})
#: link relations compared the same way: the run or job that wrote the item
VOLATILE_RELS: frozenset[str] = frozenset({"via"})

_PROPERTY_HINT = Hint("properties", {"processing:level": "L2"}, "set extra item properties")

#: the STAC timestamps extension's fields: RFC 3339 date-times (the mirror
#: stores these names as timestamp columns, :data:`producer.mirror.TIMESTAMP_PROPERTIES`)
TIMESTAMP_FIELDS: tuple[str, ...] = ("published", "expires", "unpublished")
_RFC3339 = re.compile(r"\d{4}-\d\d-\d\d[Tt]\d\d:\d\d:\d\d(\.\d+)?([Zz]|[+-]\d\d:\d\d)")
_SOFTWARE_HINT = Hint("software", {"ndvi-pipeline": "1.4.2"}, "record the pipeline's software and version")
_PROVIDER_HINT = Hint(
    "item_providers",
    ["ESA:producer,licensor:https://www.esa.int"],
    "name a provider as NAME[:ROLES[:URL]] or a JSON object",
)
_PROVIDER_ROLES = ("licensor", "producer", "processor", "host")


def package_version() -> str:
    """This package's version (from its installed metadata, else ``producer.__version__``'s value)."""
    from importlib.metadata import PackageNotFoundError, version  # noqa: PLC0415 (stdlib, cheap)

    try:
        return version("stac-producer")
    except PackageNotFoundError:
        return "0.1.0"


def _json_value(text: str) -> Any:
    """``text`` as JSON when it is JSON (``3``, ``true``, ``[1, 2]``, ``{"a": 1}``), else the text."""
    try:
        return json.loads(text)
    except ValueError:
        return text
    except RecursionError:  # JSON nested deeper than Python's stack: refused, not read as text
        raise InputError(
            f"a property value nests lists or objects more than {MAX_NESTING} levels deep: "
            "flatten it, or give the structure as text"
        ) from None


#: lists and objects within each other a property value may nest (deeper
#: values exhaust the stack of JSON readers and writers: Python's own
#: validator, the mirror's), far beyond what metadata needs
MAX_NESTING = 64


def _nesting(value: Any) -> int:
    """How many lists and objects ``value`` nests within each other
    (iterative: no recursion however deep); stops counting past
    :data:`MAX_NESTING`."""
    deepest, stack = 0, [(value, 0)]
    while stack:
        current, depth = stack.pop()
        if isinstance(current, Mapping | list | tuple) and depth < MAX_NESTING + 1:
            deepest = max(deepest, depth + 1)
            stack.extend(
                (v, depth + 1) for v in (current.values() if isinstance(current, Mapping) else current)
            )
    return deepest


#: a URL inside free text (a lineage, a property value): scheme, ``://``, up to whitespace or a quote
_URL_IN_TEXT = re.compile(r"\b[A-Za-z][A-Za-z0-9+.-]*://[^\s'\"<>]+")
#: punctuation that ends a sentence or an aside after a URL in text, not part of it
_AFTER_URL = ".,;:!?)]}"


def _clean_url(match: re.Match[str]) -> str:
    url = match[0]
    stripped = url.rstrip(_AFTER_URL)
    return clean_href(stripped) + url[len(stripped) :]


def without_credentials(value: Any) -> Any:
    """``value`` (text, or JSON data holding text at any depth) with every
    URL in its texts published as a link's href is (:func:`clean_href`:
    userinfo and signing parameters removed): a lineage or property naming its input by a presigned URL
    or a ``user:password@`` DSN must not put the secret into every item.
    Other text is unchanged; a new value, ``value`` is not mutated."""
    if isinstance(value, str):
        if "://" not in value:
            return value
        return _URL_IN_TEXT.sub(_clean_url, value)
    if isinstance(value, Mapping):
        return {without_credentials(k): without_credentials(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [without_credentials(v) for v in value]
    return value


def _not_utf8(value: Any) -> str | None:
    """What in ``value`` (text, or JSON-like data holding text in keys or
    values at any depth) cannot be written as UTF-8, or None: a byte that was
    not UTF-8 (Python keeps it as a lone surrogate, as it does a Latin-1
    command-line argument or file name) or another lone surrogate."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as exc:
            code = ord(value[exc.start])
            near = value[max(0, exc.start - 12) : exc.start].encode("utf-8", "replace").decode()
            if 0xDC80 <= code <= 0xDCFF:
                return f"the byte 0x{code - 0xDC00:02x} after {near!r} is not UTF-8"
            return f"the lone surrogate U+{code:04X} after {near!r} is no character"
        return None
    if isinstance(value, Mapping):
        value = [part for pair in value.items() for part in pair]
    if isinstance(value, list | tuple):
        for part in value:
            found = _not_utf8(part)
            if found is not None:
                return found
    return None


def check_utf8(value: Any, what: str) -> None:
    """Refuse (:class:`InputError`) ``what`` (``"the lineage"``) when its
    text cannot be written as UTF-8 (:func:`_not_utf8`): every document is
    UTF-8 JSON, so it would fail at the first write, after the catalog was
    created, with an encoder's traceback."""
    found = _not_utf8(value)
    if found is not None:
        raise InputError(
            f"{what} cannot be written as UTF-8 JSON: {found} (text in Latin-1 or another "
            "encoding?); give it as UTF-8 text, e.g. convert it with `iconv -f latin1 -t utf-8`"
        )


#: names of a member that holds a credential (spelled as :func:`_spelled`
#: spells them), and endings of such names (``db_password``,
#: ``github_token``): its value would be published in every item
_CREDENTIAL_NAMES = frozenset(
    {
        "password",
        "passwd",
        "pwd",
        "passphrase",
        "sslpassword",
        "secret",
        "token",
        "jwt",
        "apikey",
        "credential",
        "credentials",
        "authorization",
    }
)
_CREDENTIAL_ENDINGS = (
    "_password",
    "_passwd",
    "_passphrase",
    "_secret",
    "_secret_key",
    "_secret_access_key",
    "_private_key",
    "_token",
    "_api_key",
    "_apikey",
    "_credential",
    "_credentials",
)


def _spelled(name: str) -> str:
    """``name`` without its prefix (``my:``), in lower case with ``_`` between
    words (``accessToken``, ``Access-Token`` and ``ACCESS_TOKEN`` alike)."""
    name = name.rpartition(":")[2]
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name).lower().replace("-", "_")


def _is_credential_name(name: str) -> bool:
    spelled = "_" + _spelled(name)
    return spelled[1:] in _CREDENTIAL_NAMES or spelled.endswith(_CREDENTIAL_ENDINGS)


def _holds_value(value: Any) -> bool:
    """Whether ``value`` could hold a secret: not None, a switch or empty."""
    return value is not None and not isinstance(value, bool) and value not in ("", [], {})


#: members whose keys are names a publisher chose, not fields: the STAC
#: Authentication extension's schemes (``{"token": {"type": "http", ...}}``)
_NAMED_MAPS = frozenset({"auth:schemes"})


def credential_path(value: Any, *, named: bool = False) -> list[str | int] | None:
    """The path (keys and list indices) to the first member of ``value``
    (JSON-like data) whose name says it holds a credential (``password``,
    ``api_key``, ``db_password``, ``accessToken``...) and that holds a value;
    None when there is none. The keys of a map of names (``auth:schemes``;
    ``named``: ``value`` is one) are not taken for fields, what they map to
    is checked. Iterative: no recursion however deep."""
    stack: list[tuple[Any, list[str | int], bool]] = [(value, [], named)]
    while stack:
        current, path, names = stack.pop()
        children: list[tuple[Any, list[str | int], bool]] = []
        if isinstance(current, Mapping):
            for key, member in current.items():
                if not names and isinstance(key, str) and _is_credential_name(key) and _holds_value(member):
                    return [*path, key]
                children.append((member, [*path, str(key)], not names and key in _NAMED_MAPS))
        elif isinstance(current, list | tuple):
            children = [(member, [*path, i], False) for i, member in enumerate(current)]
        stack.extend(reversed(children))
    return None


def _shown_path(path: Sequence[str | int]) -> str:
    """``["db", "db_password"]`` → ``db.db_password``, ``[1, "token"]`` → ``[1].token``."""
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else part)
    return text


#: why a member named like a credential is refused, and what to do instead
_CREDENTIAL_FIX = (
    "is published to everyone who reads the catalog (and its search mirror and pgSTAC copy it), so a "
    "secret there would be public: leave it out (give the pipeline its secrets through its environment), "
    "or give it another name if it holds no secret"
)


def check_no_credentials(value: Any, what: str, where: str) -> None:
    """Refuse (:class:`InputError`) ``value``, given as ``what`` (``"the
    metadata of a new collection"``) and published in ``where`` (``"the new
    collection"``), when a member of it is named like a credential and holds
    a value (:func:`credential_path`). The message names the member, never
    its value. Text that merely holds a URL is cleaned instead
    (:func:`without_credentials`): there the secret can be told apart."""
    path = credential_path(value)
    if path is not None:
        raise InputError(
            f"{what} holds {_shown_path(path)!r}, named like a credential: {where} {_CREDENTIAL_FIX}"
        )


def _check_properties_credentials(properties: Mapping[str, Any]) -> None:
    """:func:`check_no_credentials` for item properties, named by property."""
    for key, value in properties.items():
        if _is_credential_name(key) and _holds_value(value):
            raise InputError(f"property {key!r} is named like a credential: every item {_CREDENTIAL_FIX}")
        path = credential_path(value, named=key in _NAMED_MAPS)
        if path is not None:
            raise InputError(
                f"property {key!r} (at {_shown_path(path)}) holds a value named like a credential: "
                f"every item {_CREDENTIAL_FIX}"
            )


def _check_number_as_typed(key: str, text: str, value: Any) -> None:
    """Refuse a ``KEY=VALUE`` text whose VALUE reads as a JSON number that
    is not the text typed (``1.10`` is 1.1, ``1e3`` is 1000.0): a version
    would be published as another one, silently. Both ways out are offered:
    the text as typed, or the number as JSON writes it. Only for a key that
    names a version (``processing:version``, ``my:model_version``,
    ``modelVersion``: the word, not ``conversion_factor``): elsewhere
    ``12.50`` and ``1e3`` are the numbers 12.5 and 1000.0, as typed."""
    if not {"version", "versions"} & set(_spelled(key).split("_")):
        return
    if not isinstance(value, float) or not math.isfinite(value) or json.dumps(value) == text:
        return
    number = json.dumps(value)
    raise InputError(
        f"property {key!r} given as {text!r} reads as the number {number}, which is not what was typed "
        "(a JSON number keeps no trailing zero or exponent): give it as text to keep it as typed, or as "
        f"{number} for the number",
        hints=(
            Hint("properties", {key: text}, "keep it as the text typed"),
            Hint("properties", {key: value}, "the number"),
        ),
    )


class _TypedFloat(float):
    """A JSON number as read, with the text it was written as."""

    text: str


def _typed_float(text: str) -> float:
    number = _TypedFloat(text)
    number.text = text
    return number


def loads_properties(text: str) -> Any:
    """``text``, a JSON object of properties (``STAC_PROPERTIES='{...}'``), read
    as :func:`json.loads` reads it, except that a version given as a number
    JSON does not keep (``{"my:version": 1.10}``) is refused as in a
    ``KEY=VALUE`` text (:func:`_check_number_as_typed`)."""
    value = json.loads(text, parse_float=_typed_float)
    if isinstance(value, dict):
        for key, member in value.items():
            if isinstance(member, _TypedFloat):
                _check_number_as_typed(str(key), member.text, float(member))
    return json.loads(text)  # plain floats: nothing downstream sees the typed ones


def parse_properties(value: Mapping[str, Any] | Iterable[str] | None) -> dict[str, Any] | None:
    """``properties`` as given (a mapping, or ``KEY=VALUE`` texts from the
    CLI or the environment, VALUE read as JSON when it is JSON) → a new dict.

    Raises :class:`InputError` for a reserved key (:data:`RESERVED`), the
    name of a top-level item field (:data:`ITEM_FIELDS`), an
    empty key, a text without ``=``, or a value that is not JSON data.
    Nothing the caller passed is kept or mutated.
    """
    if value is None:
        return None
    out: dict[str, Any] = {}
    if isinstance(value, Mapping):
        out = {str(k): v for k, v in value.items()}
    elif isinstance(value, str):
        raise TypeError(f"properties must be a mapping or KEY=VALUE texts, not the text {value!r}")
    else:
        for pair in value:
            if not isinstance(pair, str) or "=" not in pair:
                raise InputError(f"property {pair!r}: expected KEY=VALUE", hints=(_PROPERTY_HINT,))
            key, text = pair.split("=", 1)
            out[key.strip()] = _json_value(text)
            _check_number_as_typed(key.strip(), text.strip(), out[key.strip()])
    for key in out:
        if _nesting(out[key]) > MAX_NESTING:
            raise InputError(
                f"property {key.encode('utf-8', 'replace').decode()!r} nests lists or objects more than "
                f"{MAX_NESTING} levels deep: flatten it, or give the structure as text"
            )
        check_utf8([key, out[key]], f"property {key.encode('utf-8', 'replace').decode()!r}")
        if not key:
            raise InputError("a property has an empty name", hints=(_PROPERTY_HINT,))
        if key in ITEM_FIELDS:
            raise InputError(
                f"property {key!r} is the name of a top-level field of the item, which the producer "
                "writes itself, not a property: leave it out or give it another name",
                hints=(Hint("properties", {f"my:{key}": "<value>"}, "a property of another name"),),
            )
        if key in RESERVED:
            fact, hints = _reserved_way(key, out[key])
            raise InputError(
                f"property {key!r} is set by the producer and cannot be given as a property: {fact}",
                hints=hints,
            )
    for key, value in out.items():
        try:
            json.dumps(value, allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise InputError(
                f"property {key!r} must be JSON data (text, numbers, lists, objects): {exc}; "
                f"{_json_way(_not_json(value))}"
            ) from None
    _check_properties_credentials(out)
    # a deep copy that shares nothing with the caller, and publishes no credential
    return without_credentials(json.loads(json.dumps(out)))


def check_json_data(meta: Mapping[str, Any] | None, what: str) -> None:
    """Refuse (:class:`InputError`) metadata ``meta`` (``what``: "the
    metadata of a new collection") holding a value that is no JSON data (a
    numpy scalar, a Decimal, a set): it would fail at the first write, in
    the middle of a commit, with the encoder's bare TypeError. Names the
    field and what to give. NaN and infinities are left to the schema check,
    which says why they are no JSON."""
    for key, value in (meta or {}).items():
        try:
            json.dumps(value)
        except TypeError as exc:
            raise InputError(
                f"{what}: {key!r} must be JSON data (text, numbers, lists, objects): {exc}; "
                f"{_json_way(_not_json(value))}"
            ) from None


def _not_json(value: Any) -> Any:
    """The first value inside ``value`` (itself, or a list item or object
    member at any depth) that is not JSON data."""
    if isinstance(value, Mapping):
        inner: Iterable[Any] = value.values()
    elif isinstance(value, list | tuple):
        inner = value
    else:
        return value
    for item in inner:
        try:
            json.dumps(item, allow_nan=False)
        except (TypeError, ValueError):
            return _not_json(item)
    return value  # keys that are not text


def _json_way(value: Any) -> str:
    """What to give instead of ``value``, which is not JSON data."""
    if isinstance(value, float) and not math.isfinite(value):
        return "give null for a missing value (or leave the property out), or a number"
    if type(value).__module__ == "numpy" and hasattr(value, "item"):
        try:
            plain = value.item()
            return f"give it as a plain Python value: {json.dumps(plain, allow_nan=False)} (value.item())"
        except (TypeError, ValueError):
            return "give it as a plain Python value (value.item() or value.tolist())"
    if isinstance(value, datetime):
        if value.tzinfo is None:
            return "give it as an RFC 3339 text with its offset, e.g. value.replace(tzinfo=UTC).isoformat() if it is UTC"
        return f"give it as RFC 3339 text: {format_time(value)!r}"
    return f"a {type(value).__name__} is none: give text, a number, a list or an object"


def _is_time(text: str) -> bool:
    """Whether ``text`` is a time the datetime option takes (an example
    built from a value that is not would fail in turn)."""
    from datetime import datetime  # noqa: PLC0415

    try:
        datetime.fromisoformat(text.replace("z", "Z").replace("Z", "+00:00"))
    except ValueError:
        return False
    return True


def _reserved_way(key: str, value: Any) -> tuple[str, tuple[Hint, ...]]:
    """Why the reserved ``key`` cannot be given, and the options that give
    what it holds (hints, so that each caller spells them: ``--datetime``,
    ``datetime=``, ``STAC_DATETIME``)."""
    if key in ("datetime", "start_datetime", "end_datetime"):
        time_hint = DATETIME_HINT
        if key == "datetime" and isinstance(value, str) and _is_time(value.strip()):
            time_hint = Hint(DATETIME_HINT.option, value.strip(), DATETIME_HINT.does)  # the caller's time
        return "it holds the product's time, which the datetime options give", (time_hint, PATTERN_HINT)
    if key == "processing:software":
        software = _SOFTWARE_HINT
        if isinstance(value, Mapping) and value and all(isinstance(v, str) for v in value.values()):
            software = Hint(_SOFTWARE_HINT.option, dict(value), _SOFTWARE_HINT.does)
        return "it names stac-producer's version and the pipeline's software", (software,)
    return "it records when the item was registered; leave it out", ()


def parse_providers(
    value: Iterable[str | Mapping[str, Any]] | None, *, check_roles: bool = True
) -> tuple[dict[str, Any], ...]:
    """``providers`` as given → provider objects.

    Each one is a mapping (``{"name": ..., "roles": [...], "url": ...}``), a
    JSON object text, or ``NAME[:ROLES[:URL]]`` (ROLES comma-separated among
    licensor, producer, processor, host). A ``url`` is published without
    userinfo or credential parameters (:func:`~producer.redact.clean_href`).
    Raises :class:`InputError` for a provider without a name, with roles
    that are no list of texts, or (with ``check_roles``) with an unknown role.
    """
    out: list[dict[str, Any]] = []
    if isinstance(value, (str, Mapping)):
        value = [value]
    for entry in value or ():
        provider: dict[str, Any]
        if isinstance(entry, Mapping):
            try:
                provider = json.loads(json.dumps(dict(entry)))
            except (TypeError, ValueError) as exc:  # a Path, a numpy scalar: no JSON
                name = entry.get("name")
                raise InputError(
                    f"provider {name if isinstance(name, str) else redact(repr(entry))!r} must be JSON data "
                    f"(text, numbers, lists, objects): {exc}; {_json_way(_not_json(entry))}",
                    hints=(_PROVIDER_HINT,),
                ) from None
        elif isinstance(entry, str) and entry.lstrip().startswith("{"):
            parsed = _json_value(entry)
            if not isinstance(parsed, dict):
                raise InputError(
                    f"provider {redact(repr(entry))} is not a JSON object", hints=(_PROVIDER_HINT,)
                )
            provider = parsed
        elif isinstance(entry, str):
            name, _, rest = entry.partition(":")
            roles, url = rest, ""
            if "://" in rest:  # NAME:URL or NAME:ROLES:URL
                head, sep, tail = rest.partition(":")
                roles, url = ("", rest) if tail.startswith("//") else (head, tail)
            provider = {"name": name.strip()}
            if roles:
                provider["roles"] = [r.strip() for r in roles.split(",") if r.strip()]
            if url:
                provider["url"] = url
        else:
            raise InputError(
                f"provider {redact(repr(entry))}: expected a text or a mapping", hints=(_PROVIDER_HINT,)
            )
        if not isinstance(provider.get("name"), str) or not provider["name"]:
            raise InputError(f"provider {redact(repr(entry))} has no name", hints=(_PROVIDER_HINT,))
        if isinstance(provider.get("url"), str):
            # published in every item: no userinfo, no credential parameters
            provider["url"] = clean_href(provider["url"].strip())
        provider = without_credentials(provider)  # a description naming a URL, too
        given = provider.get("roles")
        if given is not None and (not isinstance(given, list) or not all(isinstance(r, str) for r in given)):
            # a text would be read letter by letter, a number not at all
            parts = [r.strip() for r in given.split(",") if r.strip()] if isinstance(given, str) else []
            listed = [r.lower() if r.lower() in _PROVIDER_ROLES else r for r in parts]
            example = {**provider, "roles": listed or ["producer"]}
            # as text, which every caller's spelling takes (a dict would print as Python's repr)
            if set(example) <= {"name", "roles", "url"} and ":" not in example["name"]:
                text = f"{example['name']}:{','.join(example['roles'])}" + (
                    f":{example['url']}" if isinstance(example.get("url"), str) else ""
                )
            else:
                text = json.dumps(example)
            raise InputError(
                f"provider {provider['name']!r}: its roles {given!r} are no list of texts: give them as a "
                f"list, e.g. {example['roles']!r}",
                hints=(Hint("item_providers", [text], "the roles as a list"),),
            )
        unknown = [r for r in given or () if r not in _PROVIDER_ROLES]
        if unknown and check_roles:
            raise InputError(
                f"provider {provider['name']!r} has unknown role(s) {', '.join(map(repr, unknown))}: use "
                + ", ".join(_PROVIDER_ROLES),
                hints=(_PROVIDER_HINT,),
            )
        out.append(provider)
    return tuple(out)


#: the STAC ``license`` pattern (an SPDX id, or ``other``), ASCII as in JSON Schema
_LICENSE_CHARS = re.compile(r"[^\w\-.+]+", re.ASCII)
#: the operators of an SPDX license expression ("Apache-2.0 OR MIT")
_SPDX_EXPRESSION = re.compile(r"\s(OR|AND|WITH)\s|[()]")


def _is_date_time(value: Any) -> bool:
    """Whether ``value`` is an RFC 3339 date-time (a real date and time)."""
    if not isinstance(value, str) or not _RFC3339.fullmatch(value):
        return False
    text = value.upper().replace("Z", "+00:00")
    text = re.sub(r"(\.\d{6})\d+", r"\1", text).replace(":60", ":59")  # finer than microseconds, leap second
    try:
        datetime.fromisoformat(text)
    except ValueError:
        return False
    return True


def _in_utc(properties: dict[str, Any]) -> dict[str, Any]:
    """``properties`` with each :data:`TIMESTAMP_FIELDS` date-time written in
    UTC with ``Z`` (``2024-05-01T12:00:00+02:00`` -> ``2024-05-01T10:00:00Z``):
    the timestamps extension v1.1.0 accepts no other offset, and the instant
    is the same. Values that are no date-time are left to the checks."""
    for key in TIMESTAMP_FIELDS:
        value = properties.get(key)
        if not isinstance(value, str) or not _is_date_time(value):
            continue
        text = value.upper()
        leap = text[17:19] == "60"  # 23:59:60Z (datetime has no second 60): kept at 60
        when = datetime.fromisoformat(
            re.sub(r"(\.\d{6})\d+", r"\1", text.replace("Z", "+00:00")).replace(":60", ":59", 1)
        )
        try:
            utc = format_time(when)
        except OverflowError:  # 9999-12-31T23:30:00-05:00 is in year 10000 in UTC
            raise InputError(
                f"property {key!r} given as {value!r} lies outside years 1 to 9999 once in UTC, which the "
                "STAC timestamps extension writes it in: give it in UTC (ending in Z), within those years",
                hints=(Hint("properties", {key: "9999-12-31T23:59:59Z"}, f"give {key!r} in UTC"),),
            ) from None
        properties[key] = utc[:17] + "60" + utc[19:] if leap else utc
    return properties


def _check_timestamps(properties: Mapping[str, Any]) -> None:
    """Refuse a timestamps-extension field (:data:`TIMESTAMP_FIELDS`) that is
    not an RFC 3339 date-time: the extension requires one, and the mirror
    stores these names as timestamps."""
    for key in TIMESTAMP_FIELDS:
        value = properties.get(key)
        if value is None or _is_date_time(value):
            continue
        example = "2024-01-01T00:00:00Z"
        if isinstance(value, str) and _is_date_time(value.strip() + "T00:00:00Z"):
            example = value.strip() + "T00:00:00Z"  # the caller's date, at midnight UTC
        raise InputError(
            f"property {key!r} given as {value!r} is not an RFC 3339 date-time (the STAC timestamps "
            f"extension's {key!r} is one, with a time and a zone, e.g. {example!r})",
            hints=(Hint("properties", {key: example}, f"give {key!r} as a date-time, or leave it out"),),
        )


def check_metadata(
    properties: Mapping[str, Any] | None, license: str | None, providers: Sequence[Mapping[str, Any]]
) -> None:
    """Refuse, when the options are made, item metadata the STAC item schema
    refuses (``license: 'CC BY 4.0'``, ``gsd: -1``, ``platform: 5``, a
    provider ``url`` that is no text): an :class:`InputError` naming the
    option, instead of every product failing validation later. Checked on a
    stub item carrying only them (the core schema's common metadata;
    extension fields are checked with each item)."""
    if not (properties or license or providers):
        return
    _check_timestamps(properties or {})
    from producer.validate import default_validator  # noqa: PLC0415 (only with pipeline metadata)

    props: dict[str, Any] = {**(properties or {}), "datetime": "2000-01-01T00:00:00Z"}
    if license:
        props["license"] = license
    if providers:
        props["providers"] = [dict(p) for p in providers]
    stub: dict[str, Any] = {
        "type": "Feature",
        "stac_version": "1.1.0",
        "stac_extensions": [],
        "id": "options",
        "geometry": None,
        "properties": props,
        "links": [],
        "assets": {},
    }
    for problem in default_validator().errors(stub):
        why = problem.split(" (schema ", 1)[0]
        if license and problem.startswith("properties.license:"):
            if _SPDX_EXPRESSION.search(license):  # no id spells an expression: 'other' does
                raise InputError(
                    f"item licence {license!r} is an SPDX license expression, which the STAC schema "
                    f"does not take ({why}): give 'other' and link the licence texts",
                    hints=(Hint("item_license", "other", "licences an SPDX id cannot name"),),
                )
            # the licence made safe: a URL in it without its credentials first
            fixed = _LICENSE_CHARS.sub("-", without_credentials(license)).strip("-") or "other"
            raise InputError(
                f"item licence {license!r} is not a license the STAC schema takes ({why}): give an SPDX "
                "id (letters, digits, '-', '.', '+'), or 'other'",
                hints=(Hint("item_license", fixed, "an SPDX license id"),),
            )
        if providers and problem.startswith("properties.providers"):
            raise InputError(f"item providers are not valid STAC ({why})", hints=(_PROVIDER_HINT,))
        for key, value in (properties or {}).items():
            if any(problem.startswith(f"properties.{key}{end}") for end in (":", ".", "[")):
                raise InputError(
                    f"property {key!r} given as {value!r} is not valid STAC ({why})",
                    hints=(
                        Hint(
                            "properties",
                            {key: _example(problem, value)},
                            f"give {key!r} a value the schema takes, or leave it out",
                        ),
                    ),
                )


#: the options that add links, the link's relation and an example of each
_LINK_OPTIONS: dict[str, tuple[str, Hint]] = {
    "derived_from": (
        "an input the products were made from (rel=derived_from)",
        Hint("derived_from", ["s3://bucket/inputs/scene.tif"], "link the input the products were made from"),
    ),
    "via": (
        "the run that wrote the products (rel=via)",
        Hint("via", ["https://ci.example.org/runs/42"], "link the run that wrote the products"),
    ),
}


#: a URI: a scheme (two letters at least: ``C:`` is a drive) and ``:`` (``https://``, ``urn:``)
_URI = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]+:")


def check_link(href: Any, option: str) -> None:
    """Refuse a link href of the option ``option`` (``derived_from``,
    ``via``) that is empty or no text, or that is neither a URI nor an
    absolute path nor a path with a folder in it nor the path of an existing
    file (free text, which would become a path under the working folder,
    publishing that folder): an
    :class:`InputError` whose hint each caller spells (``--derived-from
    URL``, ``derived_from=[...]``)."""
    what, hint = _LINK_OPTIONS[option]
    if isinstance(href, str) and href.strip():
        text = href.strip()
        path = os.path.expanduser(text)  # ~/inputs/x.nc, as products and catalogs take it
        # a path with a folder in it (inputs/raw.nc) is one before its file
        # exists too (options made before a task downloads the input); text
        # with spaces is one only if it exists ('see https://ci/42' is no path)
        folder = ("/" in path or os.sep in path) and not re.search(r"\s", text)
        if _URI.match(text) or os.path.isabs(path) or os.path.lexists(path) or folder:
            return
        # a bare file name not written yet (in1.tif) is a path given with its folder
        later = (
            ""
            if re.search(r"\s", text)
            else (
                f"; a file not written yet is given with its folder ({'./' + text!r}), a bare name only once it exists"
            )
        )
        raise InputError(
            f"the link to {what} {redact(text)!r} is neither a URL nor the path of an existing file: "
            f"give a URL (https://..., s3://...) or a path to a file{later}",
            hints=(hint,),
        )
    shown = "empty" if isinstance(href, str) or href is None else f"a {type(href).__name__}, not a text"
    raise InputError(f"the link to {what} is {shown}: expected a URL or a path", hints=(hint,))


def _link_href(href: str, what: str) -> str:
    check_link(href, what)
    href = href.strip()
    # a path to a file: made absolute, also one whose name looks like a URI
    # without // (input-2024-01-01T10:00.nc, a time in its name)
    path = os.path.expanduser(href)
    if not _URI.match(href) or ("://" not in href and os.path.lexists(path)):
        href = os.path.abspath(path)
    return clean_href(href)


@dataclass(frozen=True)
class Provenance:
    """The pipeline metadata one registration applies to each of its items."""

    properties: Mapping[str, Any] = field(default_factory=dict)
    derived_from: tuple[str, ...] = ()
    via: tuple[str, ...] = ()
    software: Mapping[str, str] = field(default_factory=dict)
    lineage: str | None = None
    license: str | None = None
    providers: tuple[dict[str, Any], ...] = ()

    @property
    def empty(self) -> bool:
        """True when it adds nothing to an item."""
        return not (
            self.properties
            or self.derived_from
            or self.via
            or self.software
            or self.lineage
            or self.license
            or self.providers
        )

    @classmethod
    def of(
        cls,
        *,
        properties: Mapping[str, Any] | None = None,
        derived_from: Sequence[str] = (),
        via: Sequence[str] = (),
        software: Mapping[str, Any] | None = None,
        lineage: str | None = None,
        license: str | None = None,
        providers: Sequence[Mapping[str, Any]] = (),
    ) -> Provenance:
        """Checked values (links absolute and without credentials)."""
        soft = {str(k): without_credentials(str(v)) for k, v in (software or {}).items()}
        return cls(
            properties=_in_utc(without_credentials(dict(properties or {}))),
            derived_from=tuple(_link_href(h, "derived_from") for h in derived_from),
            via=tuple(_link_href(h, "via") for h in via),
            software=soft,
            lineage=without_credentials(lineage) if lineage else None,
            license=license or None,
            providers=tuple(dict(p) for p in providers),
        )


#: the extension whose bundled schema checks a property of each prefix
#: (``eo:cloud_cover``); the versions extraction declares
EXTENSION_OF_PREFIX: Mapping[str, str] = {
    "eo": "https://stac-extensions.github.io/eo/v2.0.0/schema.json",
    "proj": "https://stac-extensions.github.io/projection/v2.0.0/schema.json",
    "file": "https://stac-extensions.github.io/file/v2.1.0/schema.json",
    "raster": "https://stac-extensions.github.io/raster/v2.0.0/schema.json",
    "cube": "https://stac-extensions.github.io/datacube/v2.3.0/schema.json",
    "processing": PROCESSING_EXT,
}
#: the name stac-producer records its own version under in processing:software
OWN_SOFTWARE = "stac-producer"


def check_sources(
    properties: Mapping[str, Any] | None,
    software: Mapping[str, Any] | None,
    lineage: str | None,
    *,
    license: str | None = None,
    providers: Sequence[Mapping[str, Any]] = (),
) -> None:
    """Refuse provenance given twice or overwriting the producer's own:
    ``software`` naming stac-producer (its version is the installed one),
    and a ``processing:lineage``, ``license`` or ``providers`` property
    together with the option that sets it (``lineage``, ``license``,
    ``providers``: the option would silently replace the property). Raises
    :class:`InputError`."""
    for name, version in (software or {}).items():
        if not str(name).strip():
            raise InputError(
                f"a software has no name (its version is {redact(repr(version))}): name the software that made the "
                "products",
                hints=(_SOFTWARE_HINT,),
            )
        if version is None or (isinstance(version, str) and not version.strip()):
            raise InputError(
                f"software {name!r} has no version: give the version that made the products",
                hints=(Hint("software", {str(name): "1.4.2"}, "the software with its version"),),
            )
        if not isinstance(version, str | int) or isinstance(version, bool):
            raise InputError(
                f"software {name!r}: its version is the {type(version).__name__} {version!r}, not a text "
                "(a float cannot hold a version exactly: 1.10 reads as 1.1); give it as text",
                hints=(Hint("software", {str(name): "1.4.2"}, "the version as text"),),
            )
        if str(name).strip().lower() == OWN_SOFTWARE:
            raise InputError(
                f"software {name!r}: stac-producer records its own version in processing:software "
                "(the installed one); leave it out of the software",
                hints=(_SOFTWARE_HINT,),
            )
    if lineage and properties and "processing:lineage" in properties:
        given = properties["processing:lineage"]
        raise InputError(
            f"the lineage is given twice: as the property 'processing:lineage' ({given!r}) and as the "
            f"lineage option ({lineage!r}); give it once, as the lineage option",
            hints=(Hint("lineage", lineage, "the lineage, without the processing:lineage property"),),
        )
    for key, option, value, what in (
        ("license", "item_license", license, "item licence"),
        ("providers", "item_providers", [json.dumps(p) for p in providers], "item providers"),
    ):
        if value and properties and key in properties:
            raise InputError(
                f"the {what} {'are' if key == 'providers' else 'is'} given twice: as the property "
                f"{key!r} ({properties[key]!r}) and as the {what} option ({value!r}); give "
                f"{'them' if key == 'providers' else 'it'} once, as the {what} option",
                hints=(Hint(option, value, f"the {what}, without the {key!r} property"),),
            )


_WRONG_TYPE = re.compile(r" is not of type '(\w+)'")
#: an extension's schema refusing a field of its prefix it does not define (``eo:cloudcover``)
_UNDEFINED_FIELD = re.compile(
    r"^properties: '(?P<key>[^']+)' does not match any of the regexes: '\^\(\?!(?P<prefix>[\w-]+):\)' "
    r"\(schema (?P<url>[^)\s]+)\)"
)


def _example(problem: str, value: Any) -> Any:
    """A value to suggest for a property a schema refused: the caller's
    value as the type the schema wants, when the problem says which and the
    value converts (``5`` → ``"5"``); else a placeholder."""
    wanted = _WRONG_TYPE.search(problem)
    if (
        wanted
        and wanted.group(1) == "array"
        and isinstance(value, str | int | float)
        and not isinstance(value, bool)
    ):
        return [value]  # instruments='msi': a list of one
    if (
        wanted
        and wanted.group(1) == "string"
        and isinstance(value, list)
        and len(value) == 1
        and isinstance(value[0], str)
    ):
        return value[0]  # constellation=['s2']: the one text
    if wanted and not isinstance(value, (dict, list, bool)) and value is not None:
        try:
            if wanted.group(1) == "string":
                return json.dumps(value) if not isinstance(value, str) else value
            if wanted.group(1) == "number" and isinstance(value, str):
                return float(value)
            if wanted.group(1) == "integer" and isinstance(value, (str, float)):
                return int(value) if float(value).is_integer() else "<value>"
        except ValueError:
            pass
    return "<value>"


def property_problem(problems: Sequence[str], properties: Mapping[str, Any], where: str) -> InputError | None:
    """The validation problems (:meth:`~producer.validate.Validator.errors`
    messages) of an item that concern a property the caller gave, as an
    input error naming that property and the fix (the caller's value, not
    the code, is wrong); None when no problem does. ``where`` names the product."""
    keys = sorted(properties, key=len, reverse=True)  # "eo:bands" before "eo"
    for problem in problems:
        undefined = _UNDEFINED_FIELD.match(problem)
        if undefined and undefined["key"] in properties:
            return _undefined_field(
                undefined["key"], undefined["prefix"], undefined["url"], properties, where
            )
    for problem in problems:
        for key in keys:
            head = f"properties.{key}"
            if problem.startswith(head) and problem[len(head) : len(head) + 1] in (":", ".", "["):
                value = properties[key]
                return InputError(
                    f"{where}: the extra property {key!r} = {json.dumps(value)} is refused by the item's "
                    f"schema: {problem[len('properties.') :]}; give it a value the schema accepts",
                    hints=(
                        Hint("properties", {key: _example(problem, value)}, "a value the schema accepts"),
                    ),
                )
    return None


def _undefined_field(
    key: str, prefix: str, url: str, properties: Mapping[str, Any], where: str
) -> InputError:
    """The error of the extra property ``key``, which the ``prefix``
    extension's schema at ``url`` refuses because it defines no such field
    (a misspelling: ``eo:cloudcover``), with the closest defined ones."""
    import difflib  # noqa: PLC0415 (only on this error)

    from producer.validate import defined_fields  # noqa: PLC0415 (jsonschema, only on this error)

    fields = defined_fields(url, f"{prefix}:")
    names = {field.partition(":")[2]: field for field in fields}  # compared without the shared prefix
    close = [names[n] for n in difflib.get_close_matches(key.partition(":")[2], names, n=2, cutoff=0.6)]
    known = f"; it defines {', '.join(fields)}" if fields and len(fields) <= 12 else ""
    guess = f"; did you mean {' or '.join(map(repr, close))}?" if close else ""
    return InputError(
        f"{where}: the extra property {key!r} is not a field of the {prefix} extension, whose schema "
        f"({url}) refuses {prefix}: fields it does not define{known}{guess or '.'} Fix its name, or give it "
        "another prefix (a property of an extension whose schema is not bundled is published unchecked)",
        hints=(Hint("properties", {close[0]: properties[key]}, "the field of that name"),) if close else (),
    )


def apply(doc: dict[str, Any], provenance: Provenance | None, now: datetime, where: str) -> None:
    """Add ``provenance`` to the item document ``doc`` (mutated; nothing
    else is). ``now``: the registration time (``processing:datetime``).
    ``where`` names the product in errors.

    Raises :class:`InputError` when a property contradicts what extraction
    read from the product.
    """
    if provenance is None or provenance.empty:
        return
    props: dict[str, Any] = doc["properties"]
    for key, value in provenance.properties.items():
        if key in props and props[key] != value:
            raise InputError(  # no hint: the fix is to give less, not another option
                f"{where}: property {key!r} is read from the product ({props[key]!r}); the extra "
                f"properties give {value!r}, which contradicts it: leave {key!r} out of them"
            )
        props[key] = json.loads(json.dumps(value))
    if provenance.license:
        props["license"] = provenance.license
    if provenance.providers:
        props["providers"] = [dict(p) for p in provenance.providers]
    if provenance.software or provenance.lineage:
        props["processing:software"] = {OWN_SOFTWARE: package_version(), **provenance.software}
        props["processing:datetime"] = format_time(now)
        if provenance.lineage:
            props["processing:lineage"] = provenance.lineage
    links = doc.setdefault("links", [])
    present = {(link.get("rel"), link.get("href")) for link in links}
    for rel, hrefs in (("derived_from", provenance.derived_from), ("via", provenance.via)):
        for href in hrefs:
            if (rel, href) in present:
                continue
            link: dict[str, Any] = {"rel": rel, "href": href}
            if rel == "derived_from" and href.lower().endswith(".json"):
                link["type"] = "application/geo+json"
            links.append(link)
            present.add((rel, href))
    extensions = doc.setdefault("stac_extensions", [])
    if any(k.startswith("processing:") for k in props) and PROCESSING_EXT not in extensions:
        extensions.append(PROCESSING_EXT)
    declare_extensions(doc, provenance.properties)


def declare_extensions(doc: dict[str, Any], properties: Mapping[str, Any]) -> None:
    """Add to ``doc``'s ``stac_extensions`` the extension of each given
    property whose schema is bundled (:data:`EXTENSION_OF_PREFIX`), unless a
    version of it is declared already: the item's validation then checks the
    value (``eo:cloud_cover: 150`` is refused). A property of another prefix
    (``view:``, ``sat:``) is published as given, unchecked."""
    extensions = doc.setdefault("stac_extensions", [])
    for key in properties:
        if key in TIMESTAMP_FIELDS:
            url: str | None = TIMESTAMPS_EXT
        else:
            url = EXTENSION_OF_PREFIX.get(key.partition(":")[0]) if ":" in key else None
        if url is None:
            continue
        family = url.rsplit("/", 2)[0] + "/"  # https://stac-extensions.github.io/eo/
        if not any(isinstance(e, str) and e.startswith(family) for e in extensions):
            extensions.append(url)

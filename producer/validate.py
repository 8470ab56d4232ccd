"""Offline JSON-schema validation of the STAC documents stac-producer writes.

Every schema comes from an installed package, never from the network:

- STAC core 1.1.0 (item, catalog, collection and the item-spec fragments) and
  the GeoJSON ``Feature``/``Geometry`` schemas ship inside pystac
  (``pystac/validation/jsonschemas/``);
- the extension schemas (projection, raster, eo, file, datacube) and the
  PROJJSON schemas they reference are bundled in ``producer/schemas/``, laid out
  by canonical URL: ``producer/schemas/<host>/<path>`` is ``https://<host>/<path>``.
  Provenance and licences: ``producer/schemas/README.md``.

Two entry points:

- :class:`Validator` (or the shared :func:`default_validator`) validates a
  document against the core schema for its type and every extension it lists;
  :meth:`Validator.errors` returns messages, :meth:`Validator.check` raises
  :class:`producer.errors.ValidationError`.
- :func:`schema_map` gives canonical URL → local file, in the form
  stac-valid's ``StacValidate(schema_map=...)`` expects, so the reference
  validator can run offline too::

      from stac_validator.validate import StacValidate
      v = StacValidate("collection.json", schema_map=schema_map())
      v.run()  # True / False; details in v.message

  (stac-valid 4.6.1 looks every schema URL it meets, including ``$ref``
  targets, up in ``schema_map`` before fetching it; with this map it fetches
  nothing for documents that only use the bundled extensions.)

How a document is checked: from the 17th document of a process on
(:data:`RUST_AFTER`), jsonschema-rs first: one Draft 7 validator per schema
URL, built on first use from the bundled files (its retriever serves the
offline schemas and refuses every other ``$ref``, so nothing is fetched),
``format`` an annotation, plus one schema that refuses NaN and Infinity
anywhere (:data:`_FINITE_SCHEMA`). It is only trusted to *accept*
(:func:`_accepted_by_rust`: ~30 us for an item, ~6 us for a collection,
warm); a document it does not accept, the first 16 documents of a process,
and every document when jsonschema-rs is missing or cannot build a schema
(projection v1.1.0: its ``$ref`` to PROJJSON v0.5 is not bundled) take the
path below, which decides and words every message, so messages never
depend on jsonschema-rs. The first 16 documents skip it because its import
and builds (20-30 ms) would land in a one-shot command's cold start.

The path below: each schema is compiled once per process to
Python code by fastjsonschema, on its first use, and every document is
checked by that compiled code (~0.15 ms for an item), after the NaN check of
:mod:`producer.finite`. jsonschema, the
reference, runs only when the compiled check rejects a document, to decide
and to word the messages, and for a schema fastjsonschema cannot compile
(of the bundled ones only projection v1.1.0). The compiled code is also kept on disk (:func:`cache_dir`),
so a fresh process loads it instead of compiling (:func:`precompile` fills
the cache at image build time), with an index beside it (:func:`_index`)
that lists the schema URLs and ``format`` names: a warm process parses no
schema file at all, and checks that the index matches the installed schemas
by file sizes and times only. Nothing is read or compiled at import time.
"""

from __future__ import annotations

import copy
import functools
import hashlib
import importlib.util
import itertools
import json
import marshal
import os
import sys
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path
from types import CodeType
from typing import TYPE_CHECKING, Any
from urllib.parse import urljoin

import fastjsonschema

from producer.errors import ProducerError, ValidationError
from producer.finite import non_finite

if TYPE_CHECKING:
    # jsonschema and referencing (0.1-0.3 s of imports) are needed only to
    # word the problems of a rejected document or to check a schema
    # fastjsonschema cannot compile: imported there, not by every process
    # that validates (a warm process accepts through the compiled checks)
    from jsonschema.exceptions import ValidationError as SchemaError
    from jsonschema.protocols import Validator as SchemaValidator
    from referencing import Registry, Resource

__all__ = [
    "STAC_VERSION",
    "CORE_SCHEMAS",
    "Validator",
    "default_validator",
    "schema_map",
    "cache_dir",
    "precompile",
]

STAC_VERSION = "1.1.0"
"""The only STAC version stac-producer emits (and therefore validates)."""

_STAC_SCHEMAS = f"https://schemas.stacspec.org/v{STAC_VERSION}"

CORE_SCHEMAS: Mapping[str, str] = {
    "Feature": f"{_STAC_SCHEMAS}/item-spec/json-schema/item.json",
    "Collection": f"{_STAC_SCHEMAS}/collection-spec/json-schema/collection.json",
    "Catalog": f"{_STAC_SCHEMAS}/catalog-spec/json-schema/catalog.json",
}
"""Document ``type`` → URL of the STAC core schema that applies to it."""

_EXTENSIONS_HOST = "https://stac-extensions.github.io/"
_BUNDLE_PACKAGE = "producer"
_BUNDLE_DIR = "schemas"
_PYSTAC_PACKAGE = "pystac.validation.jsonschemas"
_PYSTAC_DIRS = (("stac-spec", f"v{STAC_VERSION}"), ("geojson",))

_MAX_MESSAGE = 300  # characters of one jsonschema message (they repr the instance)
_SHOWN_IN_CHECK = 3  # problems quoted in the message of check()'s exception

_OFFLINE_HINT = (
    "stac-producer validates offline only: add the schema file under "
    "producer/schemas/<host>/<path> (see producer/schemas/README.md) "
    "or drop the extension from the document"
)


# --------------------------------------------------------------------------
# Locating the schema files
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class _SchemaFile:
    """One schema file: its canonical URL, where it is, and its parsed JSON."""

    url: str
    file: Traversable
    contents: Mapping[str, Any]


def _walk(folder: Traversable, prefix: str = "") -> Iterator[tuple[str, Traversable]]:
    """Yield ``(relative/posix/path, file)`` for every file below ``folder``."""
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        rel = f"{prefix}{entry.name}"
        if entry.is_dir():
            yield from _walk(entry, rel + "/")
        elif entry.is_file():
            yield rel, entry


def _read_json(file: Traversable) -> Mapping[str, Any]:
    with file.open("r", encoding="utf-8") as f:
        contents = json.load(f)
    if not isinstance(contents, dict):
        raise ProducerError(f"schema file {file} does not hold a JSON object; reinstall stac-producer")
    return contents


def _strip_empty_fragment(url: str) -> str:
    """``https://x/schema.json#`` → ``https://x/schema.json`` (same resource)."""
    return url[:-1] if url.endswith("#") else url


@functools.lru_cache(maxsize=1)
def _pystac_schemas() -> Traversable:
    """pystac's schema folder (:data:`_PYSTAC_PACKAGE`), found without
    importing ``pystac.validation``, whose ``__init__`` imports jsonschema."""
    spec = importlib.util.find_spec("pystac")
    if spec is not None and spec.submodule_search_locations:
        folder = Path(list(spec.submodule_search_locations)[0], *_PYSTAC_PACKAGE.split(".")[1:])
        if folder.is_dir():
            return folder
    return resources.files(_PYSTAC_PACKAGE)


def _schema_files() -> tuple[_SchemaFile, ...]:
    """Every schema available offline, keyed by the URL documents use for it.

    Bundled files get their URL from their place in ``producer/schemas/``.
    pystac's files get ``urljoin($id, file name)``: the ``$id`` gives the
    folder (``.../item-spec/json-schema/`` for the fragments) and the file name
    the last segment, which also repairs pystac's ``common.json`` whose ``$id``
    reads ``.../json-schema/commonjson``. (The literal ``$id`` is registered
    as well when the registry is crawled.)
    """
    found: dict[str, _SchemaFile] = {}

    bundle = resources.files(_BUNDLE_PACKAGE).joinpath(_BUNDLE_DIR)
    for rel, file in _walk(bundle):
        if rel.endswith(".json"):
            url = f"https://{rel}"
            found[url] = _SchemaFile(url, file, _read_json(file))

    pystac_root = _pystac_schemas()
    for parts in _PYSTAC_DIRS:
        folder = pystac_root.joinpath(*parts)
        if not folder.is_dir():
            raise ProducerError(
                f"pystac has no {'/'.join(parts)} schemas in {pystac_root}; "
                f"install a pystac that ships STAC {STAC_VERSION} (pystac>=1.15,<2)"
            )
        for file in sorted(folder.iterdir(), key=lambda e: e.name):
            if not (file.is_file() and file.name.endswith(".json")):
                continue
            contents = _read_json(file)
            schema_id = contents.get("$id")
            if not isinstance(schema_id, str):
                raise ProducerError(f"pystac schema {file} has no $id; install a supported pystac")
            url = urljoin(schema_id, file.name)
            found.setdefault(url, _SchemaFile(url, file, contents))

    missing = [url for url in CORE_SCHEMAS.values() if url not in found]
    if missing:
        raise ProducerError(
            f"STAC core schemas {missing} not found in pystac; "
            f"install a pystac that ships STAC {STAC_VERSION} (pystac>=1.15,<2)"
        )
    return tuple(found.values())


def schema_map() -> dict[str, str]:
    """Canonical schema URL → absolute path of the local copy, for every schema.

    Covers the bundled extension and PROJJSON schemas, and the STAC core
    1.1.0 schemas (item/catalog/collection and the item-spec fragments they
    ``$ref``: ``common.json``, ``basics.json``, …) plus the GeoJSON
    ``Feature``/``Geometry`` schemas shipped inside pystac.

    The map is what stac-valid 4.6.1 expects: pass it as
    ``StacValidate(stac_file, schema_map=schema_map())`` and every schema URL
    stac-valid asks for (the core schema
    ``https://schemas.stacspec.org/v1.1.0/<type>-spec/json-schema/<type>.json``,
    each ``stac_extensions`` URL, and every ``$ref`` they follow) is read from
    disk. A new dict is returned on each call: stac-valid mutates the map it
    is given.

    Raises:
        ProducerError: the package is installed in a form without real files
            (e.g. zipped), so there are no paths to hand out.
    """
    out: dict[str, str] = {}
    for schema in _schema_files():
        if not isinstance(schema.file, Path):
            raise ProducerError(
                f"schema {schema.url} is not a file on disk ({schema.file!r}); "
                "install stac-producer and pystac unzipped to use schema_map()"
            )
        out[schema.url] = str(schema.file.resolve())
    return out


# --------------------------------------------------------------------------
# Validation
# --------------------------------------------------------------------------


def _refuse_retrieval(uri: str) -> Resource[Any]:
    """Registry fallback for unknown URIs: fail instead of downloading."""
    from referencing.exceptions import NoSuchResource  # noqa: PLC0415 (see the imports)

    raise NoSuchResource(uri)


class Validator:
    """Validates STAC 1.1.0 documents against offline schemas.

    Every document is checked by fastjsonschema's compiled code (compiled
    once per process and schema, on first use, shared by all instances:
    0.02-0.3 s per schema, projection with PROJJSON being the slow one).
    The compiled code is only trusted to *accept*: when it rejects a
    document, jsonschema (Draft 7, no format assertion, like pystac and
    stac-valid) decides and words every reported problem, so messages do
    not depend on the fast path. fastjsonschema runs with
    ``use_default=False`` (it would otherwise write schema defaults such as
    a link's ``"method": "GET"`` into the document) and with every
    ``format`` treated as an annotation, as jsonschema does. A schema it
    cannot compile is checked by jsonschema alone.

    From the :data:`RUST_AFTER`-th document of a process on, jsonschema-rs
    may accept a document before any of this runs (see the module's
    docstring); it never rejects one.

    The :class:`referencing.Registry` of all schemas and one jsonschema
    validator per schema URL are built on first need and cached on the
    instance (:meth:`compiled` returns the cached object). Instances are
    thread-safe; most code should share :func:`default_validator`.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._registry: Registry[Any] | None = None
        self._compiled: dict[str, SchemaValidator] = {}

    # -- schema access -----------------------------------------------------

    @property
    def registry(self) -> Registry[Any]:
        """All offline schemas, crawled (every ``$id`` registered); built once."""
        with self._lock:
            return self._registry_locked()

    def _registry_locked(self) -> Registry[Any]:
        if self._registry is None:
            from referencing import Registry, Resource  # noqa: PLC0415 (see the imports)
            from referencing.jsonschema import DRAFT7  # noqa: PLC0415

            pairs = [
                (schema.url, Resource.from_contents(schema.contents, default_specification=DRAFT7))
                for schema in _schema_files()
            ]
            # referencing's attrs classes are opaque to mypy; retrieve= is its documented argument
            registry: Registry[Any] = Registry(retrieve=_refuse_retrieval)  # type: ignore[call-arg]
            self._registry = registry.with_resources(pairs).crawl()
        return self._registry

    def bundled(self, url: str) -> bool:
        """Whether a schema URL (e.g. a ``stac_extensions`` entry) is available offline."""
        return _strip_empty_fragment(url) in _bundled_urls()

    def compiled(self, url: str) -> SchemaValidator:
        """The compiled validator for a schema URL, built once and cached.

        Raises:
            ValidationError: the URL is not among the offline schemas.
        """
        url = _strip_empty_fragment(url)
        with self._lock:
            validator = self._compiled.get(url)
            if validator is None:
                if url not in _bundled_urls():
                    raise ValidationError(f"schema {url} is not bundled; {_OFFLINE_HINT}", errors=[])
                registry = self._registry_locked()
                schema = registry[url].contents
                from jsonschema import Draft7Validator  # noqa: PLC0415 (see the imports)
                from jsonschema.validators import validator_for  # noqa: PLC0415

                cls = validator_for(schema, default=Draft7Validator)
                validator = cls(schema, registry=registry)
                self._compiled[url] = validator
            return validator

    def accelerated(self, url: str) -> Callable[[Any], Any] | None:
        """The compiled (fastjsonschema) check for a schema URL, or None when
        fastjsonschema cannot compile it (a ``$ref`` to a schema that is not
        bundled); jsonschema alone checks that schema then. Compiled once per
        process."""
        return _compile_fast(_strip_empty_fragment(url))

    # -- validation --------------------------------------------------------

    def errors(self, doc: Mapping[str, Any]) -> list[str]:
        """Every schema problem of ``doc``; an empty list means valid. Mutates nothing.

        ``doc`` is checked for ``stac_version == "1.1.0"``, against the core
        schema for its ``type`` ("Feature" → item, "Collection", "Catalog";
        anything else is an error) and against every URL in
        ``stac_extensions``. Extension URLs that are not bundled are reported
        (nothing is ever downloaded), and so is every NaN or Infinity (not
        JSON, see :mod:`producer.finite`). Each message starts with the JSON path
        of the problem (``properties.proj:code: ...``, ``links[3].href: ...``,
        ``(root): ...``) and ends with the schema that reported it.
        """
        if not isinstance(doc, Mapping):
            return [f"(root): a STAC document is a JSON object, not {type(doc).__name__}"]
        if next(_DOCUMENTS) >= RUST_AFTER and _accepted_by_rust(doc):
            return []

        # a JSON schema cannot see these (json.loads reads NaN as a number), and no document holds one
        problems: list[str] = non_finite(doc)
        version = doc.get("stac_version")
        if version != STAC_VERSION:
            problems.append(
                f"stac_version: {version!r} is not supported; stac-producer emits and "
                f"validates STAC {STAC_VERSION} only: set stac_version to {STAC_VERSION!r}"
            )
        doc_type = doc.get("type")
        core = CORE_SCHEMAS.get(doc_type) if isinstance(doc_type, str) else None
        if core is None:
            problems.append(
                f"type: {doc_type!r} is not a STAC document type; expected 'Feature' "
                "(item), 'Collection' or 'Catalog'"
            )
        if problems or core is None:  # the 1.1.0 schemas do not apply; their noise would hide the cause
            return problems

        urls: list[str] = [core]
        extensions = doc.get("stac_extensions", [])
        if isinstance(extensions, list):  # anything else is reported by the core schema
            for i, extension in enumerate(extensions):
                if not isinstance(extension, str):
                    continue  # reported by the core schema
                if self.bundled(extension):
                    urls.append(_strip_empty_fragment(extension))
                else:
                    problems.append(
                        f"stac_extensions[{i}]: extension schema {extension} is not bundled; " + _OFFLINE_HINT
                    )

        for url in dict.fromkeys(urls):  # a URL listed twice is checked once
            problems.extend(self._schema_errors(url, doc))
        return list(dict.fromkeys(problems))

    def check(self, doc: Mapping[str, Any], where: str) -> None:
        """Raise if ``doc`` is not valid; ``where`` names it (key, URL, file).

        Same checks as :meth:`errors`.

        Raises:
            ValidationError: with a message naming ``where`` and the first few
                problems; ``.errors`` holds all of them.
        """
        problems = self.errors(doc)
        if not problems:
            return
        shown = "; ".join(problems[:_SHOWN_IN_CHECK])
        more = len(problems) - _SHOWN_IN_CHECK
        tail = f"; and {more} more (see .errors)" if more > 0 else ""
        raise ValidationError(
            f"{where} is not valid STAC {STAC_VERSION} ({len(problems)} problem"
            f"{'s' if len(problems) != 1 else ''}); fix the document or the code "
            f"that built it: {shown}{tail}",
            errors=problems,
        )

    def _schema_errors(self, url: str, instance: Mapping[str, Any]) -> list[str]:
        fast = self.accelerated(url)
        if fast is not None:
            try:
                fast(_with_stub_geometry(instance) if url == _ITEM_SCHEMA else instance)
                return []
            except Exception:  # rejected (or the generated code tripped): jsonschema decides
                pass
        return self._schema_errors_reference(url, instance)

    def _schema_errors_reference(self, url: str, instance: Mapping[str, Any]) -> list[str]:
        """jsonschema's verdict on ``instance`` for one schema, as messages."""
        from referencing.exceptions import Unresolvable  # noqa: PLC0415 (see the imports)

        validator = self.compiled(url)
        messages: list[str] = []
        try:
            leaves = [leaf for error in validator.iter_errors(instance) for leaf in _relevant(error)]
        except Unresolvable as exc:
            ref = getattr(exc, "ref", None) or str(exc)
            messages.append(
                f"(root): cannot finish validating against {url}: it references {ref}, "
                f"which is not bundled; {_OFFLINE_HINT}"
            )
            return messages
        # A value of the wrong JSON type also trips the other keywords at its
        # path (a oneOf on minItems "passes twice" for a string): keep the cause.
        wrong_type = {
            tuple(leaf.absolute_path)
            for leaf in leaves
            if not isinstance(leaf, _Alternatives) and leaf.validator == "type"
        }
        for leaf in leaves:
            if (
                not isinstance(leaf, _Alternatives)
                and leaf.validator != "type"
                and tuple(leaf.absolute_path) in wrong_type
            ):
                continue
            messages.append(_describe(leaf, url))
        return messages


#: the URL :data:`_FINITE_SCHEMA` is served under (by :func:`_retrieve_bundled`
#: only: ``.invalid`` never resolves)
_FINITE = "https://stac-producer.invalid/finite.json"
#: every value at any depth is of a JSON type: jsonschema-rs sees a NaN or an
#: infinity as of none (tests/test_validate_rust.py checks it), so this rejects
#: what :func:`producer.finite.non_finite` reports, in the same pass as the schemas
_FINITE_SCHEMA: Mapping[str, Any] = {
    "$id": _FINITE,
    "type": ["object", "array", "string", "number", "boolean", "null"],
    "additionalProperties": {"$ref": "#"},
    "items": {"$ref": "#"},
}

#: documents a process checks through the compiled checks (loaded from the
#: on-disk cache in ~0.5 ms per schema) before it builds jsonschema-rs
#: validators: the import and the builds cost 20-30 ms once, which a
#: one-shot ``register`` (5 documents) would pay in its cold start for
#: ~0.1 ms per document saved; from the 17th on, ~0.13 ms is saved per item
RUST_AFTER = 16
_DOCUMENTS = itertools.count()

#: schema URLs a document is checked against → one jsonschema-rs validator
#: for all of them (None: it cannot be built)
_RS: dict[tuple[str, ...], Any] = {}
_RS_LOCK = threading.Lock()


def _accepted_by_rust(doc: Mapping[str, Any]) -> bool:
    """Whether jsonschema-rs accepts ``doc`` outright: STAC 1.1.0, a known
    ``type``, every extension bundled, no NaN or infinity, and valid against
    the core schema and every extension schema. False means "not decided
    here": :meth:`Validator.errors` then runs the checks it always ran
    (fastjsonschema, jsonschema for the verdict and the messages), so a
    rejected document gets the same messages. Also False for a schema
    jsonschema-rs cannot build (projection v1.1.0: its PROJJSON v0.5 is not
    bundled) and when jsonschema-rs is not installed."""
    if doc.get("stac_version") != STAC_VERSION:
        return False
    doc_type = doc.get("type")
    core = CORE_SCHEMAS.get(doc_type) if isinstance(doc_type, str) else None
    extensions = doc.get("stac_extensions", [])
    if core is None or type(extensions) is not list:
        return False
    urls = [core]
    for extension in extensions:
        if not isinstance(extension, str):
            return False
        url = _strip_empty_fragment(extension)
        if url not in _bundled_urls():
            return False
        urls.append(url)
    validator = _rust_validator(tuple(dict.fromkeys(urls)))
    if validator is None:
        return False
    try:
        return bool(validator.is_valid(doc))
    except Exception:  # not convertible to JSON (a non-str key, an object): the reference path decides
        return False


def _rust_validator(urls: tuple[str, ...]) -> Any:
    """One jsonschema-rs validator for the schemas at ``urls`` together and
    :data:`_FINITE_SCHEMA` (one pass over a document instead of one per
    schema: 15% less in a warm upsert), built once per process and list of
    URLs on first use; None when it cannot be built."""
    return _built_once(_RS, _RS_LOCK, urls, _build_rust)


def _build_rust(urls: tuple[str, ...]) -> Any:
    """A Draft 7 jsonschema-rs validator of ``allOf`` the schemas at
    ``urls`` and :data:`_FINITE_SCHEMA`, ``format`` an annotation (as
    jsonschema without a format checker), every ``$ref`` read from the
    bundled files by :func:`_retrieve_bundled` (nothing else: a ``$ref`` to
    a schema that is not bundled fails the build); None when it cannot be
    built."""
    try:
        import jsonschema_rs  # noqa: PLC0415 (20 ms of import: only where a document is checked)
    except ImportError:
        return None
    schema = {"allOf": [{"$ref": url} for url in (_FINITE, *urls)]}
    try:
        return jsonschema_rs.Draft7Validator(schema, retriever=_retrieve_bundled, validate_formats=False)
    except Exception:  # a $ref to a schema that is not bundled
        return None


def _retrieve_bundled(uri: str) -> Any:
    """jsonschema-rs ``retriever``: the bundled schema at ``uri`` (or
    :data:`_FINITE_SCHEMA`), never the network."""
    url = _strip_empty_fragment(uri)
    if url == _FINITE:
        return _FINITE_SCHEMA
    if url not in _bundled_urls():
        raise ValueError(f"schema {uri} is not bundled; {_OFFLINE_HINT}")
    return _schema_contents(url)


@functools.cache
def _schema_contents(url: str) -> Mapping[str, Any]:
    """The parsed schema of one offline URL: a file of ``producer/schemas/``
    read alone (no other schema file is parsed), else pystac's schemas."""
    if url.startswith("https://"):
        file = resources.files(_BUNDLE_PACKAGE).joinpath(_BUNDLE_DIR, *url[len("https://") :].split("/"))
        if file.is_file():
            return _read_json(file)
    found = _pystac_contents().get(url)
    return found if found is not None else _schemas()[url]


@functools.lru_cache(maxsize=1)
def _pystac_contents() -> dict[str, Mapping[str, Any]]:
    """pystac's schemas (13 small files) by URL, as :func:`_schema_files`
    names them, without parsing the bundled ones (PROJJSON: 5 ms)."""
    found: dict[str, Mapping[str, Any]] = {}
    root = _pystac_schemas()
    for parts in _PYSTAC_DIRS:
        folder = root.joinpath(*parts)
        if folder.is_dir():
            for file in sorted(folder.iterdir(), key=lambda e: e.name):
                if file.is_file() and file.name.endswith(".json"):
                    contents = _read_json(file)
                    schema_id = contents.get("$id")
                    if isinstance(schema_id, str):
                        found.setdefault(urljoin(schema_id, file.name), contents)
    return found


_ITEM_SCHEMA = CORE_SCHEMAS["Feature"]
#: a valid geometry of each type :func:`_with_stub_geometry` handles
_STUB_GEOMETRY: Mapping[str, Mapping[str, Any]] = {
    "Polygon": {"type": "Polygon", "coordinates": [[[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 0.0]]]},
    "MultiPolygon": {
        "type": "MultiPolygon",
        "coordinates": [[[[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 0.0]]]],
    },
}
_NUMBER_TYPES = frozenset((int, float))


def _numbers(values: Any, least: int) -> bool:
    """A list of at least ``least`` JSON numbers (exact int/float: no bool)."""
    return type(values) is list and len(values) >= least and _NUMBER_TYPES.issuperset(map(type, values))


_LIST_TYPE = frozenset((list,))


def _ring(ring: Any) -> bool:
    """A GeoJSON linear ring as the schema asks: 4 or more positions of 2 or
    more numbers (exact types, as :func:`_numbers`), checked in C-speed
    passes rather than a Python call per position."""
    return (
        type(ring) is list
        and len(ring) >= 4
        and _LIST_TYPE.issuperset(map(type, ring))
        and min(map(len, ring)) >= 2
        and _NUMBER_TYPES.issuperset(map(type, itertools.chain.from_iterable(ring)))
    )


def _plain_geometry(geometry: Mapping[str, Any]) -> bool:
    """Whether ``geometry`` is a Polygon or MultiPolygon the GeoJSON geometry
    schema accepts, by a check as strict or stricter (exact ``list``, ``int``
    and ``float`` types). False means "not decided here", not "invalid"."""
    coordinates = geometry.get("coordinates")
    if type(coordinates) is not list or ("bbox" in geometry and not _numbers(geometry["bbox"], 4)):
        return False
    if geometry.get("type") == "Polygon":
        return all(map(_ring, coordinates))
    return all(type(polygon) is list and all(map(_ring, polygon)) for polygon in coordinates)


def _with_stub_geometry(item: Mapping[str, Any]) -> Mapping[str, Any]:
    """``item`` for the compiled core-schema check, with a valid stand-in
    for a geometry :func:`_plain_geometry` accepts (else ``item`` itself).

    The item schema constrains the geometry in three places only: the
    GeoJSON Feature schema's ``oneOf`` of geometries, the ``$ref`` to the
    GeoJSON Geometry schema (the same branches), and "no geometry, then no
    bbox". The geometry branches are told apart by their ``type`` ``enum``,
    so a Polygon passes the ``oneOf`` exactly when it passes the Polygon
    branch, which :func:`_plain_geometry` checks in C-speed passes; the
    stand-in is of the same type, so the third rule sees what it would have.
    The schema then walks four positions instead of a densified footprint
    twice (0.4 ms per item). This is only ever an acceptance: a document
    either check refuses goes to jsonschema whole, for the messages."""
    geometry = item.get("geometry")
    if type(geometry) is not dict:
        return item
    stub = _STUB_GEOMETRY.get(geometry.get("type"))  # type: ignore[arg-type]
    if stub is None or not _plain_geometry(geometry):
        return item
    return {**item, "geometry": stub}


@functools.lru_cache(maxsize=1)
def _bundled_urls() -> frozenset[str]:
    """URLs of every schema available offline (from the cache index when it
    matches the installed schemas: no schema file is parsed then)."""
    index = _index()
    if index is not None:
        return frozenset(index["urls"])
    return frozenset(schema.url for schema in _schema_files())


#: schema URL → its compiled check (None: fastjsonschema cannot compile it)
_FAST: dict[str, Callable[[Any], Any] | None] = {}
_FAST_LOCK = threading.Lock()


def _compile_fast(url: str) -> Callable[[Any], Any] | None:
    """One schema compiled by fastjsonschema, resolving ``$ref`` offline
    only; None when it cannot be compiled. Once per process and URL: the
    lock keeps two threads from compiling the same schema twice."""
    return _built_once(_FAST, _FAST_LOCK, url, _compile_fast_uncached)


def _built_once(cache: dict[Any, Any], lock: threading.Lock, key: Any, build: Callable[[Any], Any]) -> Any:
    """``cache[key]``, built by ``build(key)`` on first need; the lock keeps
    two threads from building the same entry twice (a miss is looked up
    again under it), a hit takes no lock."""
    try:
        return cache[key]
    except KeyError:
        pass
    with lock:
        if key not in cache:
            cache[key] = build(key)
        return cache[key]


def _compile_fast_uncached(url: str) -> Callable[[Any], Any] | None:
    index = _index()
    if index is not None and url in index["checks"]:  # warm: no schema is read
        name = index["checks"][url]
        if name is None:
            return None  # fastjsonschema cannot compile it: known, not retried
        code = _load_cached(name)
        if code is not None:
            return _bind(code, _formats())
    if url not in _bundled_urls():
        return None
    formats = _formats()
    key = _cache_key(url)
    code = _load_cached(key)
    if code is None:
        try:
            source = fastjsonschema.compile_to_code(
                _cheap_alternatives_first(copy.deepcopy(_schemas()[url])),
                handlers={"http": _local_only, "https": _local_only},
                formats=formats,
                use_default=False,
            )
        except Exception:
            _record_check(url, None)
            return None
        code = _compile_check(source, f"<fastjsonschema {url}>")
        _store_cached(key, code)
    _record_check(url, key)
    return _bind(code, formats)


class _Rejected(fastjsonschema.JsonSchemaValueException):
    """What a compiled check raises where fastjsonschema's code builds a
    message (see :func:`_cheap_raises`): a subclass, so the generated
    ``oneOf``/``anyOf``/``if`` handlers catch it as before."""

    def __init__(self) -> None:
        Exception.__init__(self, "rejected by the compiled check (jsonschema writes the messages)")


_RAISE = "raise JsonSchemaValueException("


def _cheap_raises(source: str) -> str:
    """fastjsonschema's generated ``source`` with every ``raise
    JsonSchemaValueException(<message>, value=, name=, definition=, rule=)``
    (one line each) replaced by ``raise _Rejected``.

    Only the verdict of the compiled check is used (a rejected document goes
    to jsonschema for its messages, :meth:`Validator._schema_errors`), but the
    generated code pays for a message on every raise, and a valid document
    raises many: each ``oneOf``/``anyOf`` alternative it does not match (an
    item's geometry is tried as a Point, a LineString, ... before the
    Polygon), each formatted with ``str.format(**locals())`` and a literal of
    the failed alternative's whole schema (~45 per item: about half of the
    item's check). The branches taken and so the verdict are unchanged."""
    out = []
    for line in source.split("\n"):
        body = line.lstrip(" ")
        out.append(line[: len(line) - len(body)] + "raise _Rejected" if body.startswith(_RAISE) else line)
    return "\n".join(out)


def _compile_check(source: str, where: str) -> CodeType:
    """The code of a generated check, with cheap raises (:func:`_cheap_raises`);
    fastjsonschema's own when that does not compile (a raise over several
    lines, which no fastjsonschema version in use writes)."""
    try:
        return compile(_cheap_raises(source), where, "exec")
    except SyntaxError:
        return compile(source, where, "exec")


def _bind(code: CodeType, formats: dict[str, Callable[[Any], bool]]) -> Callable[[Any], Any]:
    """The check function of one compiled schema's code."""
    namespace: dict[str, Any] = {"_Rejected": _Rejected}
    exec(code, namespace)  # code generated from the bundled schemas, or read back from our cache
    main = next(name for name in code.co_names if name.startswith("validate_"))
    return functools.partial(namespace[main], custom_formats=formats)


def _alternative_cost(alternative: Any) -> int:
    """Order of an ``anyOf`` alternative in the compiled check: arrays first
    (collection summaries are lists), then other inline schemas, ``$ref`` last."""
    if not isinstance(alternative, Mapping):
        return 1
    if "$ref" in alternative:
        return 2
    return 0 if alternative.get("type") == "array" else 1


def _cheap_alternatives_first(schema: Any) -> Any:
    """``schema`` (a private copy, mutated) with every ``anyOf`` list ordered
    by :func:`_alternative_cost`. ``anyOf`` passes when any alternative does,
    whatever their order, so the verdict is the same; but fastjsonschema tries
    them in order and builds an exception (with the failed alternative's
    whole schema) for each that fails: a collection's summaries, lists tried
    against the JSON-schema and range alternatives first, cost 0.6 ms per
    collection write."""
    if isinstance(schema, dict):
        for key, value in schema.items():
            _cheap_alternatives_first(value)
            if key == "anyOf" and isinstance(value, list):
                value.sort(key=_alternative_cost)
    elif isinstance(schema, list):
        for value in schema:
            _cheap_alternatives_first(value)
    return schema


@functools.lru_cache(maxsize=1)
def _schemas() -> dict[str, Mapping[str, Any]]:
    return {schema.url: schema.contents for schema in _schema_files()}


def defined_fields(url: str, prefix: str) -> list[str]:
    """The field names starting with ``prefix`` (``"eo:"``) that the bundled
    schema at ``url`` defines (any ``properties`` it lists, at any depth),
    sorted; empty for a schema that is not bundled. To name the fields an
    extension has when it refuses one it has not."""
    found: set[str] = set()
    stack: list[Any] = [_schemas().get(_strip_empty_fragment(url))]
    while stack:
        node = stack.pop()
        if isinstance(node, Mapping):
            for key, value in node.items():
                if key == "properties" and isinstance(value, Mapping):
                    found.update(k for k in value if isinstance(k, str) and k.startswith(prefix))
                stack.append(value)
        elif isinstance(node, list):
            stack.extend(node)
    return sorted(found)


def _local_only(uri: str) -> Any:
    """fastjsonschema ``$ref`` handler: bundled schemas only, never the network."""
    from jsonschema.validators import SPECIFICATIONS  # noqa: PLC0415 (see the imports)
    from referencing.exceptions import NoSuchResource  # noqa: PLC0415

    key = _strip_empty_fragment(uri)
    schemas = _schemas()
    if key in schemas:
        return copy.deepcopy(schemas[key])
    try:  # JSON Schema meta-schemas (collection summaries $ref draft-07)
        return copy.deepcopy(SPECIFICATIONS.contents(key))
    except LookupError:
        raise NoSuchResource(uri) from None


@functools.lru_cache(maxsize=1)
def _formats() -> dict[str, Callable[[Any], bool]]:
    """Every ``format`` name in the schemas → accept-all (formats annotate);
    the names come from the cache index when it is current."""
    formats: dict[str, Callable[[Any], bool]] = dict.fromkeys(DRAFT7_META_FORMATS, _any_value)
    index = _index()
    if index is not None:
        return {**formats, **dict.fromkeys(index["formats"], _any_value)}
    for contents in _schemas().values():
        for name in _format_names(contents):
            formats[name] = _any_value
    return formats


#: the ``format`` names in the JSON Schema draft-07 meta-schema (collection
#: summaries ``$ref`` it), listed so that a warm process need not import
#: jsonschema to read them (tests/test_throughput.py checks the list)
DRAFT7_META_FORMATS = ("regex", "uri", "uri-reference")


# --------------------------------------------------------------------------
# On-disk cache of the compiled checks
# --------------------------------------------------------------------------

#: environment variable: folder of the compiled-check cache; empty disables it
CACHE_ENV = "STAC_PRODUCER_CACHE_DIR"
#: bump when the options of compile_to_code above (or the schema it is given),
#: what is done to its source (:func:`_cheap_raises`) or the index layout change
_CACHE_FORMAT = "3"
#: the index beside the compiled checks (see :func:`_index`), one per install
_INDEX_PREFIX = f"index-v{_CACHE_FORMAT}-"


def _index_name() -> str:
    """This install's index file: named after its stamp, so installs sharing
    a cache folder (two virtualenvs, two versions) keep one index each rather
    than overwriting each other's on every run."""
    return f"{_INDEX_PREFIX}{_sources_stamp()[:16]}.json"


def cache_dir() -> Path | None:
    """Where compiled checks are cached: ``$STAC_PRODUCER_CACHE_DIR``, else
    ``$XDG_CACHE_HOME/stac-producer/validators`` (``~/.cache/...``); None
    when ``STAC_PRODUCER_CACHE_DIR`` is set empty."""
    env = os.environ.get(CACHE_ENV)
    if env is not None:
        return Path(env) if env else None
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "stac-producer" / "validators"


@functools.lru_cache(maxsize=1)
def _schemas_digest() -> str:
    """Digest of every schema's content: a changed schema never meets a stale check."""
    return hashlib.sha256(json.dumps(_schemas(), sort_keys=True).encode("utf-8")).hexdigest()


def _cache_key(url: str) -> str:
    parts = (_CACHE_FORMAT, fastjsonschema.VERSION, sys.implementation.cache_tag, url, _schemas_digest())
    return hashlib.sha256("\n".join(map(str, parts)).encode("utf-8")).hexdigest()


def _schema_sources() -> list[tuple[str, Traversable]]:
    """``(name, file)`` of every schema file :func:`_schema_files` reads,
    found without reading one."""
    bundle = resources.files(_BUNDLE_PACKAGE).joinpath(_BUNDLE_DIR)
    out = [(f"producer/{rel}", file) for rel, file in _walk(bundle) if rel.endswith(".json")]
    root = _pystac_schemas()
    for parts in _PYSTAC_DIRS:
        folder = root.joinpath(*parts)
        if folder.is_dir():
            files = sorted(folder.iterdir(), key=lambda e: e.name)
            out += [(f"pystac/{'/'.join(parts)}/{f.name}", f) for f in files if f.name.endswith(".json")]
    return out


@functools.lru_cache(maxsize=1)
def _sources_stamp() -> str:
    """What a cache index must match: the cache format, fastjsonschema's
    version, stac-producer's version, the interpreter, and each schema
    file's name, absolute path, size and modification time (a file outside
    the file system: its bytes). Costs a directory walk and a ``stat`` per
    file, never a JSON parse."""
    # the package (imported before any of its modules), read without an import: no cycle
    version = getattr(sys.modules.get("producer"), "__version__", "")
    digest = hashlib.sha256()
    for part in (_CACHE_FORMAT, version, fastjsonschema.VERSION, sys.implementation.cache_tag):
        digest.update(f"{part}\n".encode())
    for name, file in _schema_sources():
        if isinstance(file, Path):
            # the absolute path too: two installs sharing a cache (same sizes and
            # times in reproducible builds) never take each other's checks
            st = file.stat()
            digest.update(f"{name}\0{os.path.abspath(file)}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
        else:
            digest.update(name.encode() + b"\0" + file.read_bytes() + b"\n")
    return digest.hexdigest()


#: cache folder → its index as read by this process (None: absent or stale)
_INDEXES: dict[Path, dict[str, Any] | None] = {}


def _index() -> dict[str, Any] | None:
    """The cache index, when there is a cache and its index matches the
    installed schemas (:func:`_sources_stamp`); read once per process.

    The index (``index-v3-<stamp>.json`` beside the compiled checks) holds what a
    process would otherwise parse every schema for: the URL of every offline
    schema, every ``format`` name, and schema URL → file of its compiled
    check (null: fastjsonschema cannot compile it). A missing, unreadable,
    other-format or stale index is ignored, and rewritten by the next
    compile."""
    folder = cache_dir()
    if folder is None:
        return None
    if folder not in _INDEXES:
        _INDEXES[folder] = _read_index(folder)
    return _INDEXES[folder]


def _read_index(folder: Path) -> dict[str, Any] | None:
    try:
        index = json.loads((folder / _index_name()).read_bytes())
        if (
            index["format"] == _CACHE_FORMAT
            and index["stamp"] == _sources_stamp()
            and all(isinstance(u, str) for u in index["urls"])
            and all(isinstance(f, str) for f in index["formats"])
            and all(isinstance(k, str) and (v is None or _is_key(v)) for k, v in index["checks"].items())
        ):
            return {"urls": index["urls"], "formats": index["formats"], "checks": dict(index["checks"])}
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        pass
    return None


def _is_key(name: object) -> bool:
    """Whether ``name`` is a file stem :func:`_cache_key` makes (no path parts)."""
    return isinstance(name, str) and len(name) == 64 and all(c in "0123456789abcdef" for c in name)


def _record_check(url: str, name: str | None) -> None:
    """Enter ``url`` → ``name`` (a compiled check's file stem, or None) into
    the index, merged with what another process may have written meanwhile
    (temp file + rename); skipped silently when the cache cannot be written."""
    folder = cache_dir()
    if folder is None:
        return
    current = _read_index(folder) or {
        "urls": sorted(_bundled_urls()),
        "formats": sorted(_formats()),
        "checks": {},
    }
    current["checks"][url] = name
    _INDEXES[folder] = current
    try:
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        tmp = folder / f".{_index_name()}.{os.getpid()}.{threading.get_ident()}.tmp"
        tmp.write_text(
            json.dumps({"format": _CACHE_FORMAT, "stamp": _sources_stamp(), **current}, sort_keys=True)
        )
        os.replace(tmp, folder / _index_name())
    except OSError:
        pass


def _load_cached(key: str) -> CodeType | None:
    """The cached code object for ``key``, or None (no cache, missing, unreadable)."""
    folder = cache_dir()
    if folder is None:
        return None
    try:
        code = marshal.loads((folder / f"{key}.marshal").read_bytes())
    except (OSError, ValueError, EOFError, TypeError):
        return None
    return code if isinstance(code, CodeType) else None


def _store_cached(key: str, code: CodeType) -> None:
    """Write ``code`` to the cache (temp file + rename); a cache that cannot
    be written (read-only home, as on AWS Lambda) is silently skipped."""
    folder = cache_dir()
    if folder is None:
        return
    try:
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        tmp = folder / f".{key}.{os.getpid()}.{threading.get_ident()}.tmp"
        tmp.write_bytes(marshal.dumps(code))
        os.replace(tmp, folder / f"{key}.marshal")
    except OSError:
        pass


def precompile() -> list[str]:
    """Compile the checks documents are validated against (the core schemas
    and the bundled ``stac_extensions`` schemas; the fragments they ``$ref``
    are compiled into them) now, and write the cache (see
    :func:`cache_dir`); returns the URLs that have a compiled check.

    For images and Lambda packages: run it at build time with
    ``STAC_PRODUCER_CACHE_DIR`` pointing into the image, and set the same
    variable at run time, so no process compiles a schema again.
    """
    extensions = sorted(url for url in _bundled_urls() if url.startswith(_EXTENSIONS_HOST))
    return [url for url in [*CORE_SCHEMAS.values(), *extensions] if _compile_fast(url) is not None]


def _any_value(value: Any) -> bool:
    """fastjsonschema format check that accepts everything (formats annotate)."""
    return True


def _format_names(node: Any) -> Iterator[str]:
    """Every ``"format": "<name>"`` value in a schema."""
    if isinstance(node, dict):
        name = node.get("format")
        if isinstance(name, str):
            yield name
        for value in node.values():
            yield from _format_names(value)
    elif isinstance(node, list):
        for value in node:
            yield from _format_names(value)


@functools.lru_cache(maxsize=1)
def default_validator() -> Validator:
    """The shared :class:`Validator` (created on first call, then reused)."""
    return Validator()


# --------------------------------------------------------------------------
# Turning jsonschema errors into messages
# --------------------------------------------------------------------------


def _format_path(path: Iterable[Any]) -> str:
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out or "(root)"


def _missing_property(error: SchemaError) -> str | None:
    """The property a ``required`` error is about (jsonschema says it only in text)."""
    if error.validator != "required" or not isinstance(error.validator_value, list):
        return None
    for name in error.validator_value:
        if error.message == f"{name!r} is a required property":
            return str(name)
    return None


def _describe(error: SchemaError | _Alternatives, url: str) -> str:
    if isinstance(error, _Alternatives):
        where = _format_path(error.error.absolute_path)
        forms = " | ".join(
            _short(f"{_format_path(_error_path(errs[0]))}: {errs[0].message}", 120) for errs in error.branches
        )
        message = (
            f"matches none of the {len(error.branches)} allowed forms ({error.error.validator}): {forms}"
        )
        return f"{where}: {message} (schema {url})"
    return f"{_format_path(_error_path(error))}: {_short(error.message)} (schema {url})"


def _error_path(error: SchemaError) -> list[Any]:
    """The instance path, plus the missing member for ``required`` errors."""
    path = list(error.absolute_path)
    missing = _missing_property(error)
    if missing is not None:
        path.append(missing)
    return path


def _short(text: str, limit: int = _MAX_MESSAGE) -> str:
    return text if len(text) <= limit else text[:limit] + "…"


def _selects_other_type(error: SchemaError, base: list[Any]) -> bool:
    """Whether ``error`` says "this branch is for another ``type``".

    STAC extension schemas and the GeoJSON schemas pick their ``oneOf`` branch
    by a ``const``/``enum`` on the ``type`` member of the object at ``base``;
    a JSON-type mismatch on the object itself ("null or object") rules a
    branch out the same way, and so does a member that must be ``null`` but
    is not (the item branch "geometry is null, so no bbox").
    """
    path = list(error.absolute_path)
    if error.validator in ("const", "enum") and path == [*base, "type"]:
        return True
    if error.validator != "type":
        return False
    return path == base or (
        error.validator_value == "null" and path[:-1] == base and len(path) == len(base) + 1
    )


def _relevant(error: SchemaError) -> list[SchemaError | _Alternatives]:
    """The errors worth reporting for one top-level jsonschema error.

    ``oneOf``/``anyOf`` failures only say "not valid under any of the given
    schemas" about a whole object. Branches meant for another ``type`` (the
    item branch of an extension schema vs. its collection branch; Point vs.
    Polygon) are dropped; if one branch remains, or one has strictly fewer
    errors than every other, its errors are what the user must fix, so
    descend. Otherwise report the alternatives side by side.
    """
    if error.validator not in ("oneOf", "anyOf") or not error.context:
        return [error]
    base = list(error.absolute_path)
    branches: dict[Any, list[SchemaError]] = {}
    for sub in error.context:
        branches.setdefault(sub.relative_schema_path[0], []).append(sub)
    candidates = [errs for errs in branches.values() if not any(_selects_other_type(e, base) for e in errs)]
    if not candidates:
        candidates = list(branches.values())
    if len(candidates) > 1:
        fewest = min(len(errs) for errs in candidates)
        if sum(len(errs) == fewest for errs in candidates) == 1:
            candidates = [next(errs for errs in candidates if len(errs) == fewest)]
    if len(candidates) == 1:
        return [leaf for sub in candidates[0] for leaf in _relevant(sub)]
    return [_Alternatives(error, candidates)]


@dataclass(frozen=True)
class _Alternatives:
    """A ``oneOf``/``anyOf`` failure with no obvious culprit branch."""

    error: SchemaError
    branches: list[list[SchemaError]]

"""Item ids: built from a template over the product's name, and checked to be
safe as a path segment (ids become directory and file names in the catalog).

Default ids are derived from names, and names in object stores often hold
characters an id may not (spaces, ``+``, ``#``, ``?``, accents). The template
fields ``{stem}``, ``{name}`` and ``{parent}`` are therefore normalised: every
run of characters outside ``[A-Za-z0-9._-]`` becomes one ``_``
(``"NDVI 2024+v2.tif"`` → ``NDVI_2024_v2``, ``"scene?v3.tif"`` → ``scene_v3``).
What the caller typed (the literal parts of a template, ``{collection}``, an
id passed to ``remove``) is checked strictly and never rewritten.

Object-store keys (``s3://``, ``gs://``, ...) are taken literally: a ``#`` or
``?`` in a key is part of the name, not a URL fragment or query. Only
``http(s)://`` and ``file://`` URLs are parsed as URLs (query and fragment
dropped, percent-escapes decoded).

Pure string work: nothing is read or written.
"""

from __future__ import annotations

import dataclasses
import os
import re
import string
from urllib.parse import unquote, urlsplit

from producer.errors import ID_TEMPLATE_HINT, Hint, InputError, ProducerError, UnsafeIdError
from producer.extract.options import ExtractOptions

#: template fields understood by :func:`make_item_id`
ID_FIELDS: tuple[str, ...] = ("stem", "name", "parent", "collection")
#: longest id accepted (file systems limit a name to 255 bytes; leave room for ".json")
MAX_ID_LENGTH = 200
#: extensions stripped (repeatedly, case-insensitively) to form ``{stem}``
STEM_SUFFIXES: tuple[str, ...] = (
    ".tif", ".tiff", ".gtif", ".geotiff", ".cog", ".nc", ".nc4", ".cdf", ".netcdf",
    ".h5", ".hdf", ".hdf5", ".he5", ".jp2", ".vrt", ".img", ".zarr",
    ".gz", ".bz2", ".zip", ".zst",
)  # fmt: skip
#: item ids that name a file the catalog keeps beside the item folders: the
#: stac-geoparquet mirror's base file (``producer.catalog.mirrorlinks.MIRROR_NAME``,
#: ``<collection or partition>/items.parquet``); an item folder of that name
#: would take its place on a local disk (search then fails, "is a directory")
RESERVED_ITEM_IDS = frozenset({"items.parquet"})
#: ids (by what they name) that are files beside the folder they would make, and why
_RESERVED = {
    "item id": (RESERVED_ITEM_IDS, "the stac-geoparquet mirror file kept beside the item folders"),
    "collection id": (frozenset({"catalog.json"}), "the root catalog document beside the collection folders"),
}
_SAFE_RE = re.compile(r"^[A-Za-z0-9._-]+$")
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")
_URL_RE = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
_UNSAFE_RUN_RE = re.compile(r"[^A-Za-z0-9._-]+")
#: URL schemes whose ``?``/``#`` start a query/fragment; other schemes name object-store keys
_PARSED_SCHEMES = ("http", "https", "file")
#: template fields derived from the product's location, normalised by :func:`normalise_name`
NAME_FIELDS: tuple[str, ...] = ("stem", "name", "parent")


def _location_path(text: str) -> str:
    """The path part of a local path or URL: object-store keys literally."""
    if not _URL_RE.match(text):
        return text
    scheme, _, rest = text.partition("://")
    if scheme.lower() in _PARSED_SCHEMES:
        return unquote(urlsplit(text).path)
    return "/" + rest.partition("/")[2]  # s3://bucket/key#1?.tif: the key, '#'/'?' included


def split_location(source: str | os.PathLike[str]) -> tuple[str, str]:
    """(parent directory name, file name) of a local path or URL.

    ``s3://b/data/scene?v3.tif`` → ``("data", "scene?v3.tif")`` (object keys
    are literal); ``https://h/d/x.tif?sig=1`` → ``("d", "x.tif")``.
    """
    text = os.fspath(source)
    path = _location_path(text)
    path = path.replace("\\", "/").rstrip("/")
    parts = path.split("/")
    name = parts[-1] if parts else ""
    parent = parts[-2] if len(parts) > 1 else ""
    if not _URL_RE.match(text) and not parent:
        parent = os.path.basename(os.path.dirname(os.path.abspath(text)))
    return parent, name


def stem_of(name: str) -> str:
    """File name without its known raster/compression extensions.

    ``scene.tif`` → ``scene``, ``scene.nc.gz`` → ``scene``, ``S2A.L2A.tif`` → ``S2A.L2A``
    (unknown extensions are kept).
    """
    stem = name
    while True:
        lowered = stem.lower()
        for suffix in STEM_SUFFIXES:
            if lowered.endswith(suffix) and len(stem) > len(suffix):
                stem = stem[: -len(suffix)]
                break
        else:
            return stem


def normalise_name(value: str) -> str:
    """A name made fit for an id: each run of characters outside
    ``[A-Za-z0-9._-]`` becomes one ``_`` (``"a b+c"`` → ``"a_b_c"``).

    Applied to the ``{stem}``, ``{name}`` and ``{parent}`` template fields
    only; everything else about the id (no leading dot or dash, no ``..``,
    at most 200 characters) is still checked by :func:`check_id`.
    """
    return _UNSAFE_RUN_RE.sub("_", value)


def check_id(
    value: str, what: str = "item id", *, source: str | None = None, hints: tuple[Hint, ...] | None = None
) -> str:
    """Return ``value`` unchanged if it is a safe id, else raise :class:`UnsafeIdError`.

    Safe means: 1–200 characters from ``[A-Za-z0-9._-]``, not starting with a dot
    or dash, not ``.``/``..`` and without ``..``, path separators or control
    characters. ``source`` (the product) is named in the message when given,
    with ``hints`` (default: the ``{parent}_{stem}`` template) as the fix.
    """
    reason = unsafe_reason(value)
    reserved, named = _RESERVED.get(what, (frozenset(), ""))
    if reason is None and value in reserved:
        reason = f"it is the name of {named}"
    if reason is None:
        return value
    origin = f" for {source}" if source else ""
    if source:  # an id made from a product's name: the template or the name must change
        if hints is None:
            hints = (ID_TEMPLATE_HINT,) if _template_hint_helps(value, source) else ()
        fix = "Rename the file or choose another id template (fields {stem}, {name}, {parent}, {collection})."
        if len(value) > MAX_ID_LENGTH and not hints:
            # no template offered gives a safe id: a longer one only grows, and
            # one without the file's name gives every product of a folder one id
            own = len(normalise_name(stem_of(split_location(source)[1])))
            fix = (
                f"Rename the file to a shorter name: its name alone ({{stem}}) makes an id of {own} "
                f"characters, and no id template that tells products apart makes a shorter one."
                if own > MAX_ID_LENGTH
                else "Rename the file to a shorter name, or choose an id template with fewer fields "
                "(fields {stem}, {name}, {parent}, {collection})."
            )
        raise UnsafeIdError(f"unsafe {what} {value!r}{origin}: {reason}. {fix}", hints=hints)
    # an id the caller typed
    fix = (
        f"Use 1-{MAX_ID_LENGTH} characters from A-Z a-z 0-9 . _ - (not starting with . or -), e.g. 'ndvi-v2'"
    )
    raise UnsafeIdError(f"unsafe {what} {value!r}{origin}: {reason}. {fix}")


def _template_hint_helps(value: str, source: str) -> bool:
    """Whether the id ``ID_TEMPLATE_HINT`` offers (``'{parent}_{stem}'``)
    gives ``source`` a safe id other than the refused ``value``: never for a
    name too long (it only grows) or one holding ``..``, nor when that
    template is the one that made ``value``."""
    parent, name = split_location(source)
    offered = f"{normalise_name(parent)}_{normalise_name(stem_of(name))}"
    return offered != value and unsafe_reason(offered) is None and offered not in RESERVED_ITEM_IDS


def unsafe_reason(value: str) -> str | None:
    """Why ``value`` is not a safe id (:func:`check_id`), or None when it is."""
    reason = None
    if value is None or value == "":
        reason = "it is empty"
    elif not isinstance(value, str):
        reason = f"it is not text ({type(value).__name__})"
    elif value in (".", ".."):
        reason = "it is a relative path component"
    elif "/" in value or "\\" in value:
        reason = "it contains a path separator"
    elif ".." in value:
        reason = "it contains '..'"
    elif _CONTROL_RE.search(value):
        reason = "it contains control characters"
    elif value[0] in ".-":
        reason = "it starts with a dot or a dash"
    elif not _SAFE_RE.match(value):
        bad = sorted({c for c in value if not re.match(r"[A-Za-z0-9._-]", c)})
        reason = f"it contains characters outside [A-Za-z0-9._-]: {''.join(bad)!r}"
    elif len(value) > MAX_ID_LENGTH:
        reason = f"it is longer than {MAX_ID_LENGTH} characters ({len(value)})"
    return reason


def parse_id_template(template: str) -> list[tuple[str, str | None, str | None, str | None]]:
    """``template`` parsed by :class:`string.Formatter`; raises :class:`InputError`
    when it is malformed or uses a field other than :data:`ID_FIELDS` (or one
    with a format spec or conversion). Called when the options are created, so
    a bad template is refused once, before any product is read."""
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise InputError(f"id template {template!r} is malformed: {exc}.", hints=(ID_TEMPLATE_HINT,)) from exc
    for _, field, spec, conversion in parsed:
        if field is None:
            continue
        if field not in ID_FIELDS or spec or conversion:
            raise InputError(
                f"id template {template!r}: unknown field {{{field}}}"
                f"{' with a format spec or conversion' if field in ID_FIELDS else ''}; "
                f"use only {', '.join('{' + f + '}' for f in ID_FIELDS)}",
                hints=(ID_TEMPLATE_HINT,),
            )
    return parsed


def _template_text(parsed: list[tuple[str, str | None, str | None, str | None]]) -> tuple[list[str], str]:
    """The characters of a parsed template's own text (around its fields)
    that no id may hold, sorted, and the template with them made safe."""
    literal = "".join(text for text, _, _, _ in parsed)
    bad = sorted({c for c in literal if not re.match(r"[A-Za-z0-9._-]", c)})
    fixed = "".join(normalise_name(text) + ("" if f is None else f"{{{f}}}") for text, f, _, _ in parsed)
    return bad, fixed


def check_template_text(template: str) -> None:
    """Refuse (:class:`InputError`) an id template whose own text holds a
    character no id may hold: every id it makes is unsafe, whatever the
    products, so it is refused once, when the options are made (a usage
    error), with the template made safe as the fix."""
    bad, fixed = _template_text(parse_id_template(template))
    if bad:
        if "://" in template:  # the fix is the template made safe: never a URL's credentials in it
            from producer.provenance import without_credentials  # noqa: PLC0415 (an error path only)

            fixed = _template_text(parse_id_template(without_credentials(template)))[1]
        raise InputError(
            f"id template {template!r}: its own text holds characters outside [A-Za-z0-9._-]: "
            f"{''.join(bad)!r}, so no id it makes is safe (only the fields {{stem}}, {{name}} and "
            "{parent} are made safe; the template's own text is used as typed).",
            hints=(Hint("id_template", fixed, "use only A-Z a-z 0-9 . _ - in its own text"),),
        )


def make_item_id(source: str | os.PathLike[str], options: ExtractOptions = ExtractOptions()) -> str:
    """Item id for ``source`` (path or URL) from ``options.id_template``.

    Fields: ``{stem}`` (file name minus known extensions), ``{name}`` (file
    name), ``{parent}`` (name of the directory holding it), ``{collection}``
    (``options.collection``). ``{stem}``, ``{name}`` and ``{parent}`` are
    normalised by :func:`normalise_name` (runs of characters outside
    ``[A-Za-z0-9._-]`` → ``_``); the template's literal text and
    ``{collection}`` are not. Raises :class:`InputError` for an unknown or
    unusable field and :class:`UnsafeIdError` when the result is not safe.
    """
    template = options.id_template
    collection = options.collection
    location = os.fspath(source)
    key = (location, template, collection)
    known = _MADE.get(key)
    if known is not None:
        return known
    item_id = _make_item_id(location, template, collection, options)
    if len(_MADE) >= _MADE_KEPT:
        _MADE.clear()  # one call: safe beside other threads
    _MADE[key] = item_id
    return item_id


#: ids made, by (location, template, collection), all an id depends on: a
#: register asks for each product's id before its extraction, which asks again
_MADE: dict[tuple[str, str, str | None], str] = {}
_MADE_KEPT = 1024


def _make_item_id(location: str, template: str, collection: str | None, options: ExtractOptions) -> str:
    """:func:`make_item_id` (``options`` only for an unsafe id's hints)."""
    parent, name = split_location(location)
    values = {
        "stem": normalise_name(stem_of(name)),
        "name": normalise_name(name),
        "parent": normalise_name(parent),
        "collection": collection,
    }
    parsed = parse_id_template(template)
    if not collection and any(field == "collection" for _, field, _, _ in parsed):
        raise InputError(f"id template {template!r} uses {{collection}} but no collection was given")
    item_id = template.format(**values)
    bad, fixed = _template_text(parsed)
    if bad and not _SAFE_RE.match(item_id):
        # the fields are normalised: the character is what the caller typed, whatever the file
        raise UnsafeIdError(
            f"unsafe item id {item_id!r} for {location}: the literal text of the id template "
            f"{template!r} holds characters outside [A-Za-z0-9._-]: {''.join(bad)!r} (only the "
            "fields {stem}, {name} and {parent} are made safe; the template's own text is used as typed).",
            hints=(Hint("id_template", fixed, "use only A-Z a-z 0-9 . _ - in its own text"),),
        )
    if unsafe_reason(item_id) is None and item_id not in RESERVED_ITEM_IDS:
        return item_id
    return check_id(item_id, "item id", source=location, hints=_safe_template_hints(location, options))


#: templates offered when the one in use makes an unsafe id from a product's
#: names (a folder '.hidden', a file '-x.tif'), in order: the first that gives
#: it a safe id and is not the template in use
_SAFE_TEMPLATES = (str(ID_TEMPLATE_HINT.example), "{stem}_{parent}", "{stem}")


def _safe_template_hints(location: str, options: ExtractOptions) -> tuple[Hint, ...]:
    """The id template to offer for ``location``, whose id under
    ``options.id_template`` is unsafe: one of :data:`_SAFE_TEMPLATES` that
    gives it a safe id, or none (then only renaming the file helps).
    Offering the template in use, or one that gives an unsafe id again,
    sent the caller round in a circle."""
    parent, name = split_location(location)
    values = {"stem": normalise_name(stem_of(name)), "parent": normalise_name(parent)}
    for template in _SAFE_TEMPLATES:
        if template == options.id_template:
            continue
        item_id = template.format(**values)
        if unsafe_reason(item_id) is None and item_id not in RESERVED_ITEM_IDS:
            return (Hint("id_template", template, f"a template that gives it the safe id {item_id!r}"),)
    return ()


def suggested_id(location: str, options: ExtractOptions = ExtractOptions()) -> str | None:
    """The id that the template :data:`~producer.errors.ID_TEMPLATE_HINT`
    offers (``'{parent}_{stem}'``) gives ``location``, or None when it gives
    no safe one."""
    try:
        return make_item_id(location, dataclasses.replace(options, id_template=str(ID_TEMPLATE_HINT.example)))
    except ProducerError:
        return None


def id_template_separates(first: str, second: str, options: ExtractOptions = ExtractOptions()) -> bool:
    """Whether the id template :data:`~producer.errors.ID_TEMPLATE_HINT`
    offers (``'{parent}_{stem}'``) would help two products that map to one
    id under ``options.id_template``: it is not the template in use, and it
    gives them two ids (two files named alike in two folders; not two names
    in one folder that differ only in characters an id cannot hold, as
    ``a b.tif`` and ``a+b.tif``). False when it gives either no safe id."""
    if options.id_template == ID_TEMPLATE_HINT.example:
        return False
    one, other = suggested_id(first, options), suggested_id(second, options)
    return one is not None and other is not None and one != other


def id_clash_fix(
    first: str, second: str, options: ExtractOptions = ExtractOptions()
) -> tuple[str, tuple[Hint, ...]]:
    """What to tell the caller whose products ``first`` and ``second`` map
    to one id: no sentence and the id template hint when that template
    would give them two ids (:func:`id_template_separates`), else a sentence
    saying to rename one of them (naming both) and no hint: offering a
    template that gives the same id again, or the one in use, sent the
    caller round in a circle."""
    if id_template_separates(first, second, options):
        return "", (ID_TEMPLATE_HINT,)
    return f" Rename {first} or {second} so that their names give different ids.", ()

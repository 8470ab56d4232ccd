"""Product paths and URLs → the list of products to register.

:func:`expand_paths` turns what a caller passed (files, folders, globs,
object-store prefixes and globs, http(s) URLs) into product locations.
Only storage metadata is read (stat, HEAD, LIST); nothing is written.

A ``.zarr`` folder or prefix is one product (a Zarr store): it is listed
as itself and never walked into, so its chunk objects are not products.

Names are taken literally first: an existing local file called
``br[1]_20240101.tif`` is that file, not a glob; an S3 key
``data/scene?v3.tif`` is that key (``?`` and ``#`` are characters of an
object key, not a query or a fragment). Only a name that does not exist as
such is expanded as a glob. http(s) URLs are never listed or globbed: their
``?`` starts a real query (e.g. a presigned URL), so they are kept as given.

A product reached twice (a folder and a file inside it, overlapping globs,
``x/./a.tif`` and ``x/a.tif``) is listed once, where it first appears
(:func:`distinct`): each entry point (the CLI, :func:`producer.api.register`,
the Prefect task, the event handler) registers it once and reports it once.
"""

from __future__ import annotations

import glob as globmod
import os
import re
import stat
from collections.abc import Iterable, Mapping

from producer.errors import (
    CREDENTIALS_HINT,
    InputError,
    ProducerError,
    StoreError,
    credentials_error,
    missing_credentials,
)
from producer.redact import redact
from producer.urls import (
    check_endpoint_environment,
    is_local,
    local_path,
    pathlib_merged_url,
    product_storage_options,
    protocol,
)

__all__ = [
    "NETCDF_SUFFIXES",
    "PRODUCT_SUFFIXES",
    "RASTER_SUFFIXES",
    "STORE_SUFFIXES",
    "WRF_NAME",
    "GLOB_CHARS",
    "distinct",
    "expand_paths",
    "is_remote",
    "is_wrf_output",
    "literal_paths",
    "ordinal",
    "path_strings",
    "no_products_found",
    "enclosing_store",
    "zarr_store_of",
]

#: GeoTIFF file endings (read with rasterio)
RASTER_SUFFIXES = (".tif", ".tiff")
#: NetCDF file endings: the ones the datacube reader is chosen by
#: (``producer.extract.source.NETCDF_SUFFIXES``, kept equal by a test; not
#: imported from there: that module loads rasterio, this one must stay light)
NETCDF_SUFFIXES = (".nc", ".nc4", ".cdf", ".netcdf")
#: file name suffixes picked up when a directory or prefix is expanded, and
#: the event handler's default filter (deploy/template.yaml's default
#: ``Suffixes``, deploy/README and ``handle-event --suffix``'s help say the same)
PRODUCT_SUFFIXES = RASTER_SUFFIXES + NETCDF_SUFFIXES
#: the files WRF writes, which carry no suffix (``wrfout_d01_2024-05-01_00:00:00``,
#: ``wrfrst_d01_...``, ``wrfinput_d01``, ``wrfbdy_d01``): NetCDF all the same,
#: so taken wherever NetCDF endings are (matched on the lower-cased file name)
WRF_NAME = re.compile(r"^wrf[a-z]*_d\d{2}(?:_[^/.]*)?$")
#: folders (prefixes) that are ONE product each: never walked into
STORE_SUFFIXES = (".zarr",)
#: characters that make a name that does not exist literally a glob pattern
GLOB_CHARS = "*?["
#: URL protocols whose locations are requested, never listed or globbed
_HTTP = ("http", "https")


def is_remote(path: str) -> bool:
    """True for URLs other than ``file://`` (see :mod:`producer.urls`)."""
    return not is_local(path)


def expand_paths(
    paths: str | os.PathLike | Iterable[str | os.PathLike],
    storage_options: dict | None = None,
    suffixes: tuple[str, ...] = PRODUCT_SUFFIXES,
) -> list[str]:
    """Directories (recursively) and globs → product paths, in sorted order.
    ``suffixes``: the file names a directory or prefix is expanded to.

    Plain file paths are kept even if they do not exist, so extraction can
    report them by name. A product reached twice is listed once, where it
    first appears (:func:`distinct`). Remote prefixes and globs are expanded through
    fsspec. Raises :class:`InputError` for an unusable URL (no bucket,
    credentials inside an ``s3://`` URL) and :class:`StoreError` (retryable)
    when listing fails (endpoint unreachable, access denied, throttled).
    """
    out: list[str] = []
    for path in path_strings(paths):
        if protocol(path) in _HTTP:
            out.append(path)
        elif is_remote(path):
            out.extend(_expand_remote(path, storage_options, suffixes))
        else:
            out.extend(_expand_local(local_path(path), suffixes))
    return distinct(out)


#: at most this many files under the given paths are looked at to say which endings they hold
_ENDINGS_LOOKED_AT = 10_000


def _endings_held(paths: Iterable[str], storage_options: dict | None) -> tuple[dict[str, int], bool]:
    """How many files of each ending (``""``: none) the folders or prefixes ``paths`` hold
    (up to :data:`_ENDINGS_LOOKED_AT` files looked at), and whether each is a
    folder or prefix that could be listed. Listing errors only leave endings out."""
    held: dict[str, int] = {}
    seen = 0
    all_folders = True
    for path in paths:
        if protocol(path) in _HTTP:
            all_folders = False
            continue
        try:
            if is_remote(path):
                import fsspec  # noqa: PLC0415 (only when nothing was found)

                fs, root = fsspec.core.url_to_fs(path, **product_storage_options(storage_options))
                walk = fs.walk(root) if fs.isdir(root) else None
            else:
                root = local_path(path)
                walk = os.walk(root) if os.path.isdir(root) else None
        except Exception:  # an unreachable store: the endings are only advice
            walk = None
        if walk is None:
            all_folders = False
            continue
        try:
            for _, _, files in walk:
                for name in files:
                    ext = os.path.splitext(name)[1].lower()
                    if not name.startswith("."):  # ("" for a file with no ending)
                        held[ext] = held.get(ext, 0) + 1
                seen += len(files)
                if seen >= _ENDINGS_LOOKED_AT:
                    break
        except Exception:
            pass
    return held, all_folders


def no_products_found(
    paths: Iterable[str],
    *,
    suffixes: tuple[str, ...] = PRODUCT_SUFFIXES,
    storage_options: dict | None = None,
) -> tuple[str, str]:
    """Why :func:`expand_paths` found nothing under ``paths``: the endings
    folders and prefixes are searched for (``suffixes``), the endings they
    hold instead (local folders and remote prefixes alike), and a glob that
    would match them. Returns ``(fact, glob_example)``: each caller adds its
    own way to pass such files (the CLI's arguments, the flow's ``prefix``).
    The paths are redacted."""
    paths = [str(p) for p in paths]
    shown = " ".join(redact(p) for p in paths)
    if paths and all(any(ch in p for ch in GLOB_CHARS) for p in paths):  # a glob takes any ending
        return (
            f"no products found: {shown} match{'es' if len(paths) == 1 else ''} no file; check the pattern",
            "",
        )
    inside = [(p, store) for p in paths if (store := enclosing_store(p)) is not None]
    if paths and len(inside) == len(paths):  # an array's folder, not a product: its store is
        stores = list(dict.fromkeys(redact(store) for _, store in inside))
        return (
            f"no products found in {shown}: it lies inside the Zarr store {' '.join(stores)}, which is "
            f"one product as a whole; register the store itself ({' '.join(stores)})",
            "",
        )
    text = (
        f"no products found in {shown}: folders and prefixes are searched for files ending in "
        f"{' '.join(suffixes)} (any letter case) and for Zarr stores ({' '.join(STORE_SUFFIXES)})"
    )
    held, all_folders = _endings_held(paths, storage_options)
    bare = held.pop("", 0)  # files with no ending
    common = sorted(held, key=lambda e: (-held[e], e))
    holder = "they hold" if len(paths) > 1 else "it holds"
    kinds = []
    if common:
        kinds.append("files ending in " + ", ".join(f"{e} ({held[e]})" for e in common[:5]))
    if bare:
        kinds.append(f"files with no ending ({bare})")
    if kinds:
        text += f"; {holder} " + ", ".join(kinds)
    elif all_folders and paths:
        text += f"; {holder} no file"
    folder = next((p.rstrip("/") for p in paths if not any(ch in p for ch in GLOB_CHARS)), "")
    return text, redact(f"{folder}/**/*{common[0] if common else '.EXT'}")


def literal_paths(paths: str | os.PathLike | Iterable[str | os.PathLike]) -> list[str]:
    """``paths`` as product locations, each taken literally: no folder walk,
    no glob, no request (a missing one is reported by name at extraction).
    A Zarr store's trailing ``/`` is dropped, as :func:`expand_paths` does;
    a product given twice is listed once (:func:`distinct`)."""
    return distinct([path.rstrip("/") if _is_store(path) else path for path in path_strings(paths)])


def distinct(paths: Iterable[str]) -> list[str]:
    """``paths`` with each product once, at its first position and in its
    first spelling. Two paths are one product when they name one location
    (:func:`producer.commit.normalise_href`, the comparison an item's
    identity check makes): ``x/./a.tif`` and ``x/a.tif``, a relative and an
    absolute path to one file, ``s3a://`` and ``s3://``, two signings of
    one presigned URL. Given twice, a product was extracted twice and its
    second copy failed as an id collision with itself (or, in another
    batch, came back ``unchanged``): a duplicate gets no result of its own."""
    from producer.commit import normalise_href  # noqa: PLC0415 (commit imports this module's users)

    given = list(paths)
    if len(given) < 2:  # one product (a register of one file): nothing to compare
        return given
    out: list[str] = []
    keys: set[str] = set()
    for path in given:
        key = normalise_href(_absolute(path))
        if key not in keys:
            keys.add(key)
            out.append(path)
    if len(out) < len(given):
        import logging  # noqa: PLC0415 (not on the path of --help)

        logging.getLogger(__name__).info(
            "%d product path(s) named a product given before: registered once", len(given) - len(out)
        )
    return out


def _absolute(path: str) -> str:
    """A local ``path`` made absolute (a relative and an absolute spelling
    of one file compare equal); any other location as it is."""
    if not is_local(path):
        return path
    try:
        return os.path.abspath(local_path(path))
    except (InputError, ValueError):  # a file:// URL naming another host: reported at extraction
        return path


def path_strings(paths: str | os.PathLike | Iterable[str | os.PathLike]) -> list[str]:
    """One path or many, each as a ``str`` (``bytes`` paths decoded).
    Raises :class:`TypeError` naming ``paths`` for a value that is no path
    (``None``, a number, a mapping), and :class:`InputError` for an empty
    path or a URL that went through ``pathlib`` (its ``//`` merged)."""
    if type(paths) is list and all(type(raw) is str and raw.strip() for raw in paths):
        return list(paths)  # plain strings (register's usual call): nothing to decode or refuse
    if isinstance(paths, (str, bytes, os.PathLike)):
        paths = [paths]
    elif paths is None or isinstance(paths, Mapping) or not isinstance(paths, Iterable):
        raise TypeError(
            f"paths must be a product path or URL (str or pathlib.Path) or an iterable of them, not "
            f"{_type_name(paths)}: e.g. paths=['s3://bucket/ndvi/scene.tif'] or paths='data/'"
        )
    given = list(paths)
    out = []
    for position, raw in enumerate(given, 1):
        if not isinstance(raw, (str, bytes, os.PathLike)):
            raise TypeError(
                f"paths must hold product paths or URLs (str or pathlib.Path), not {_type_name(raw)}, "
                f"the {ordinal(position)} of the {len(given)} given: leave it out"
            )
        path = os.fsdecode(os.fspath(raw))
        if not path.strip():  # would become an item id '' (or the working folder)
            raise InputError(
                f"empty product path ({ordinal(position)} of the {len(given)} given): name a file, "
                "a folder, a glob or a URL, or leave it out"
            )
        url = pathlib_merged_url(path) if not isinstance(raw, str) else None
        if url is not None:
            raise InputError(
                f"{redact(path)} ({ordinal(position)} of the {len(given)} given) is a URL that went through "
                f"pathlib, which merges the '//' after its scheme: pass the URL as a str, e.g. {redact(url)!r}"
            )
        out.append(path)
    return out


def _type_name(value: object) -> str:
    return "None" if value is None else type(value).__name__


def ordinal(n: int) -> str:
    """``1st``, ``2nd``, ``3rd``, ``4th``, ``11th``, ``21st``."""
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def _is_store(name: str) -> bool:
    return name.rstrip("/").lower().endswith(STORE_SUFFIXES)


def _store_root(path: str) -> str | None:
    """The ``.zarr`` store a path lies in (the path up to that folder), or ``None``."""
    lowered = path.lower()
    if not any(suffix in lowered for suffix in STORE_SUFFIXES):  # no part can end so: most paths
        return None
    parts = path.split("/")
    for i, part in enumerate(parts):
        if _is_store(part):
            return "/".join(parts[: i + 1])
    return None


#: the object whose creation means "this store is (re)written": its root metadata
ZARR_ROOT_METADATA = ("zarr.json", ".zmetadata")
#: the objects at a store's root that make it a Zarr store: ``zarr.json``
#: (v3), ``.zmetadata`` (consolidated v2), ``.zgroup`` (v2, consolidated or
#: not). The store is gone once none of them is left, whatever chunks remain.
ZARR_STORE_METADATA = ("zarr.json", ".zmetadata", ".zgroup")


def enclosing_store(path: str) -> str | None:
    """The ``.zarr`` store ``path`` lies inside (below its root: an array's
    folder, a chunk, its ``zarr.json``), or ``None`` (the store itself, or a
    path in no store). Globs are in no store: they are patterns. A local
    folder named ``.zarr`` with no Zarr metadata at its root is no store (a
    GeoTIFF in ``exports.zarr/`` is a product of its own); a remote one is
    taken by its name, as listings take it (no request)."""
    if any(ch in path for ch in GLOB_CHARS):
        return None
    found = zarr_store_of(path)
    if found is None:
        return None
    store = found[0]
    if is_local(store):
        root = local_path(store)
        if not _holds_zarr_metadata(root):
            return None
    return store


def zarr_store_of(key: str) -> tuple[str, bool] | None:
    """For an object key inside a ``.zarr`` store: ``(store key, whether the
    key is the store's root metadata object)`` (``zarr.json`` at the root for
    Zarr v3, ``.zmetadata`` for consolidated v2); ``None`` for any other key.
    Chunk and array metadata objects give ``False``: they are not products."""
    root = _store_root(key)
    if root is None or root == key.rstrip("/"):
        return None
    return root, key[len(root) + 1 :] in ZARR_ROOT_METADATA


def _holds_zarr_metadata(folder: str) -> bool:
    return any(os.path.exists(os.path.join(folder, name)) for name in (*ZARR_STORE_METADATA, ".zarray"))


def _expand_local(path: str, suffixes: tuple[str, ...] = PRODUCT_SUFFIXES) -> list[str]:
    try:  # one stat: os.path.isdir's, asked once (a named file, the common case, ends here)
        st = os.stat(path)
    except (OSError, ValueError):  # missing, a broken link, a NUL in the name: as isdir says
        st = None
    if st is not None and stat.S_ISDIR(st.st_mode):
        return (
            _store_or_folder(path.rstrip("/"), suffixes) if _is_store(path) else _walk_local(path, suffixes)
        )
    if st is not None or os.path.lexists(path) or not any(ch in path for ch in GLOB_CHARS):
        return [path]  # a file (or a broken name, reported at extraction), taken literally
    matches = sorted(globmod.glob(path, recursive=True))
    return [m for m in matches if os.path.isfile(m)]


def _store_or_folder(path: str, suffixes: tuple[str, ...]) -> list[str]:
    """A local folder named ``.zarr``: a Zarr store is one product; one
    merely named so (no Zarr metadata at its root, e.g. ``exports.zarr/``)
    is a folder when it holds products, else still the store (its metadata
    not written yet), whose extraction error says what it lacks."""
    if _holds_zarr_metadata(path):
        return [path]
    return _walk_local(path, suffixes) or [path]


def _walk_local(path: str, suffixes: tuple[str, ...]) -> list[str]:
    found: list[str] = []
    for dirpath, dirnames, filenames in os.walk(path):
        stores = sorted(d for d in dirnames if _is_store(d))
        dirnames[:] = sorted(d for d in dirnames if not _is_store(d))  # never walk into a store
        for store in stores:
            found.extend(_store_or_folder(os.path.join(dirpath, store), suffixes))
        for name in sorted(filenames):
            if _expands_to(name, suffixes):
                found.append(os.path.join(dirpath, name))
    return found


def refuse_product_credentials(url: str) -> None:
    """Raise :class:`InputError` for an object-store product URL with
    credentials in it (``s3://KEY:SECRET@bucket/x.tif``), as a register
    of it does; http(s) URLs and local paths pass (their credentials are
    removed from hrefs and masked in messages). Pure: no request."""
    if is_remote(url) and protocol(url) not in _HTTP and "://" in url:
        _split_url(url)


def _split_url(url: str) -> tuple[str, str]:
    """``(protocol, rest)``; raises :class:`InputError` for a URL without a
    bucket (``s3://``) or with credentials in it."""
    proto, rest = url.split("://", 1)
    bucket = rest.split("/", 1)[0]
    # '@' anywhere in the authority part, or ':' in a bucket name (which S3
    # forbids): credentials, e.g. a secret holding '/' splits the bucket early
    if "@" in bucket or ":" in bucket:
        raise InputError(
            f"{redact(url)}: credentials inside a {proto}:// URL are not supported (and would "
            "end up in logs); give the URL without them, and the credentials through the "
            "standard environment / credential files or as storage options.",
            hints=(CREDENTIALS_HINT,),
        )
    if not bucket:
        raise InputError(f"{url!r}: no bucket name; give it as {proto}://BUCKET/prefix/")
    return proto, rest


#: GDAL's own side-cars of a raster, never a product: ``B02.tif.aux.xml``
#: (statistics and metadata it caches, e.g. after ``gdalinfo -stats``),
#: ``B02.tif.ovr`` (external overviews) and ``B02.tif.msk`` (the mask), both TIFFs
GDAL_SIDECARS = (".aux.xml", ".ovr", ".msk")


def is_gdal_sidecar(name: str) -> bool:
    """Whether the file ``name`` is one of GDAL's :data:`GDAL_SIDECARS` (any letter case)."""
    return name.lower().endswith(GDAL_SIDECARS)


def is_wrf_output(name: str, suffixes: tuple[str, ...] = PRODUCT_SUFFIXES) -> bool:
    """Whether ``name`` (a path, key or URL) names a file WRF wrote
    (:data:`WRF_NAME`, no suffix) while ``suffixes`` take NetCDF files."""
    base = name.rstrip("/").rsplit("/", 1)[-1].rsplit(os.sep, 1)[-1].lower()
    return any(s.lower() in NETCDF_SUFFIXES for s in suffixes) and bool(WRF_NAME.match(base))


def _expands_to(name: str, suffixes: tuple[str, ...]) -> bool:
    """Whether a folder or prefix holding the file ``name`` expands to it:
    a product ending (or WRF's suffix-less output, when NetCDF is taken),
    and not GDAL's own side-car (a group takes ``.xml`` metadata files,
    which would otherwise take in GDAL's cache as an asset)."""
    return (name.lower().endswith(suffixes) or is_wrf_output(name, suffixes)) and not is_gdal_sidecar(name)


def _expand_remote(
    url: str, storage_options: dict | None, suffixes: tuple[str, ...] = PRODUCT_SUFFIXES
) -> list[str]:
    import fsspec  # noqa: PLC0415 (cold start: ~80 ms a local product never needs)

    proto, _ = _split_url(url)
    if proto in ("s3", "s3a"):
        check_endpoint_environment(storage_options, redact(url))
    try:
        fs, root = fsspec.core.url_to_fs(url, **product_storage_options(storage_options))
    except (ImportError, ValueError) as exc:
        raise InputError(
            f"{redact(url)}: no filesystem for this URL ({redact(str(exc))}); "
            "for s3:// install the [s3] extra"
        ) from None
    key = root.split("/", 1)[1] if "/" in root else ""
    try:
        if (key.lower().endswith(suffixes) or _is_store(key)) and not any(ch in key for ch in GLOB_CHARS):
            return [url.rstrip("/") if _is_store(key) else url]  # a product: no request needed to know it
        if any(ch in key for ch in GLOB_CHARS):
            if fs.isfile(root):  # a key whose name holds * ? [ : literally that object
                return [url]
            found = [p for p, info in fs.glob(root, detail=True).items() if info.get("type") != "directory"]
        elif fs.isdir(root):
            listed = fs.find(root)
            stores = {r for p in listed if (r := _store_root(p)) is not None}
            found = [p for p in listed if _expands_to(p, suffixes) and _store_root(p) is None]
            found.extend(stores)  # each Zarr store once, not its chunk objects
        elif url.endswith("/"):
            return []  # a prefix with nothing under it (a typo?): no object has such a key
        else:
            return [url]
    except ProducerError:
        raise
    except Exception as exc:
        raise _listing_failure(url, exc) from None
    return [f"{proto}://{p}" for p in sorted(found)]


def is_configuration_error(exc: BaseException) -> bool:
    """A bad option or URL, not a storage fault: retrying cannot help.
    (TypeError/ValueError from building the client, botocore's parameter
    validation.) Connection and HTTP errors are never this."""
    if isinstance(exc, OSError):
        return False
    names = {c.__name__ for c in type(exc).__mro__}
    return bool(names & {"ParamValidationError", "TypeError", "ValueError", "NoRegionError"})


def _listing_failure(url: str, exc: BaseException) -> ProducerError:
    detail = redact(f"{type(exc).__name__}: {exc}")
    cause = missing_credentials(exc)
    if cause is not None:  # the caller's configuration: a retry finds none either
        return credentials_error(redact(url), cause)
    if is_configuration_error(exc):
        return InputError(
            f"{redact(url)}: the storage options or the URL are not usable ({detail}); "
            "fix them (retrying will not help)"
        )
    if isinstance(exc, PermissionError):
        return StoreError(
            f"{redact(url)}: access denied while listing products ({detail}); "
            "grant s3:ListBucket on the prefix, or pass product URLs one by one"
        )
    return StoreError(
        f"{redact(url)}: cannot list products ({detail}); check the endpoint and the network, then retry"
    )

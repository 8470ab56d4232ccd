"""Pick the store for a catalog URL."""

from __future__ import annotations

import os
from typing import Any

from producer.errors import CREDENTIALS_HINT, Hint, InputError
from producer.redact import redact
from producer.store.base import Store
from producer.store.local import LocalStore
from producer.urls import (
    LOCAL_PROTOCOLS,
    check_endpoint,
    check_endpoint_environment,
    check_s3_options,
    is_local,
    local_path,
    pathlib_merged_url,
    protocol,
)

#: protocols whose first path part is a bucket or container name, which
#: never holds ':' (there a ':' is a secret holding '/', split early)
_BUCKET_PROTOCOLS = frozenset({"s3", "s3a", "gs", "gcs", "az", "abfs", "abfss", "adl"})


#: protocols whose URLs name a container before ``@``: Azure's
#: ``abfss://container@account.dfs.core.windows.net/path`` (adlfs)
_CONTAINER_AT_PROTOCOLS = frozenset({"az", "abfs", "abfss"})


def has_credentials(url: str) -> bool:
    """Whether ``url`` carries credentials in its authority: ``user:pw@``,
    or ``KEY:SECRET`` before a bucket (whose secret may hold ``/``, which
    then splits the bucket early: no bucket name holds ``:``). Azure's
    ``container@account`` (no ``:`` before the ``@``) names a container, no
    credentials. Pure."""
    if "://" not in url:
        return False
    authority = url.split("://", 1)[1].split("/", 1)[0]
    before, at, _ = authority.rpartition("@")
    if at and ":" not in before and protocol(url) in _CONTAINER_AT_PROTOCOLS:
        return False  # abfss://container@account.dfs.core.windows.net
    return "@" in authority or (":" in authority and protocol(url) in _BUCKET_PROTOCOLS)


def refuse_credentials(url: str) -> None:
    """Raise :class:`InputError` when the catalog URL ``url`` carries
    credentials (``s3://KEY:SECRET@bucket/stac``): they would reach the
    storage client, whose errors print them, and every message naming the
    catalog. The message shows the URL with them masked. Pure: no request."""
    if not has_credentials(url):
        return
    proto = url.split("://", 1)[0]
    shown = redact(url)
    shown_proto, shown_rest = shown.split("://", 1)
    if ":" in shown_rest.split("/", 1)[0].rsplit("@", 1)[-1]:  # KEY:SECRET with no '@' after it
        shown = f"{shown_proto}://***/" + shown_rest.split("/", 1)[1] if "/" in shown_rest else "***"
    if proto.lower() in ("http", "https"):
        # a web server takes them as a request header, which fsspec's http
        # file system sends from the storage options (key and secret are S3's)
        raise InputError(
            f"catalog {shown}: credentials inside a {proto}:// URL are not supported (they would end "
            "up in logs and error messages); give the catalog URL without them, and the credentials "
            "as a request header in the storage options.",
            hints=(HTTP_CREDENTIALS_HINT,),
        )
    raise InputError(
        f"catalog {shown}: credentials inside a {proto}:// URL are not supported (they would end "
        "up in logs and error messages); give the catalog URL without them, and the credentials "
        "through the standard environment or credential files (for S3: AWS_ACCESS_KEY_ID and "
        "AWS_SECRET_ACCESS_KEY, or AWS_PROFILE) or as storage options.",
        hints=(CREDENTIALS_HINT,),
    )


#: the way to send a web server the credentials refused in an http(s) URL
HTTP_CREDENTIALS_HINT = Hint(
    "storage_options",
    {"headers": {"Authorization": "Basic BASE64_OF_USER:PASSWORD"}},
    "the credentials as a request header",
)


def refuse_query(url: str) -> None:
    """Raise :class:`InputError` when the http(s) catalog URL ``url`` carries a
    query (``https://host/stac?token=...``): each document is read as
    ``<catalog>/<key>``, so the query would swallow every key
    (``stac?token=.../catalog.json``), and the catalog read as broken (a
    directory listing "is not JSON", a listing recursing without end). The
    message shows the query masked. Pure: no request."""
    if protocol(url) not in ("http", "https") or "?" not in url:
        return
    raise InputError(
        f"catalog {redact(url)}: a catalog URL cannot carry a query (?...): its documents are read "
        "as <catalog>/<key> (<catalog>/catalog.json, ...), which a query would swallow; give the "
        "catalog's folder URL without it (a token the server needs goes into the storage options, "
        "e.g. as a header)"
    )


def refuse_merged_url(url: str) -> None:
    """Raise :class:`InputError` for a catalog URL that lost a slash after
    its scheme (``s3:/bucket/stac``, as typed or as a ``pathlib.Path`` of
    the URL made it): read as a path, it named a local folder ``s3:`` in the
    working directory, where a register created the catalog. A local
    ``file:/path`` and a folder of that name that exists stay paths. Pure."""
    meant = pathlib_merged_url(url) if is_local(url) else None
    if meant is None or meant.split("://", 1)[0].lower() in LOCAL_PROTOCOLS:
        return
    scheme = meant.split("://", 1)[0]
    from fsspec.registry import known_implementations  # noqa: PLC0415 (only for such a path)

    if scheme.lower() not in known_implementations:
        return  # a folder named like "v2:", not a storage URL
    raise InputError(
        f"catalog {redact(url)!r} is no URL ('{scheme}:' and a single '/'), and no local folder either "
        f"(it would be one named '{scheme}:' in the working directory); write {redact(meant)!r}"
    )


#: the root document's name: a catalog given as its root document is its folder
ROOT_NAME = "catalog.json"


def catalog_folder(url: str) -> str:
    """``url`` without a trailing ``/catalog.json``: pystac and STAC tools
    name a catalog by its root document, the producer by its folder, and a
    path ending in the root document used to read as a catalog missing its
    root (or, for a new one, create a folder named ``catalog.json``). A
    local folder that really is named ``catalog.json`` stays as it is."""
    stripped = url.rstrip("/") if url.endswith("/") else url
    if stripped != ROOT_NAME and not stripped.endswith("/" + ROOT_NAME):
        return url
    if is_local(stripped) and os.path.isdir(local_path(stripped)):
        return url
    folder = stripped[: -len(ROOT_NAME)]
    if not folder:  # "catalog.json" in the working folder
        return "."
    if folder.endswith("://"):  # "file://catalog.json": not a path with a folder
        return url
    if folder == "/" or folder.endswith(":///"):  # the root folder keeps its slash
        return folder
    return folder[:-1]


def open_store(
    url: str, storage_options: dict[str, Any] | None = None, *, option: str = "storage_options"
) -> Store:
    """Return the store for ``url``; nothing is read or written, but a local
    path is checked not to be, or lie under, a regular file (an
    :class:`~producer.errors.InputError`: no write could succeed there).

    * plain paths and ``file://`` / ``local://`` URLs (any letter case; see
      :mod:`producer.urls`) -> :class:`~producer.store.local.LocalStore`
      (``storage_options`` must be empty);
    * ``s3://`` (and ``s3a://``) -> :class:`~producer.store.s3.S3Store`, or
      with ``STAC_S3_CLIENT=obstore`` in the environment
      :class:`~producer.store.s3_obstore.ObstoreS3Store`;
    * any other fsspec URL (``memory://``, ``gcs://``, ...) ->
      :class:`~producer.store.fsspec_store.FsspecStore` (single-writer mode).

    ``storage_options`` go to the fsspec/s3fs file system; the caller's dict
    is not modified. A path or URL ending in ``/catalog.json`` names its
    folder (:func:`catalog_folder`). A URL carrying credentials (``s3://KEY:SECRET@bucket``)
    raises :class:`~producer.errors.InputError` (:func:`refuse_credentials`).
    ``option``: where ``storage_options`` came from (``catalog_storage_options``
    when the catalog has options of its own), which a bad option's fix names.
    """
    if not isinstance(url, str) or not url.strip():
        raise InputError(f"catalog URL must be a non-empty string, got {url!r}")
    url = catalog_folder(url.strip())
    refuse_credentials(url)
    refuse_merged_url(url)
    if is_local(url):
        if storage_options:
            raise InputError(
                f"storage_options {sorted(storage_options)} were given for the local catalog {url!r}; "
                "local paths take none, drop them"
            )
        return LocalStore(url)
    check_endpoint(storage_options, f"catalog {redact(url)}", option)
    refuse_query(url)
    # imported here: both load fsspec (s3: s3fs too), which a local catalog never needs
    if protocol(url) in ("s3", "s3a"):
        check_endpoint_environment(storage_options, f"catalog {redact(url)}")
        check_s3_options(storage_options, f"catalog {redact(url)}", option, catalog=True)
        from producer.store.s3_obstore import ObstoreS3Store, wants_obstore  # noqa: PLC0415

        if wants_obstore():
            return ObstoreS3Store(url, storage_options)
        from producer.store.s3 import S3Store  # noqa: PLC0415

        return S3Store(url, storage_options)
    from producer.store.fsspec_store import FsspecStore  # noqa: PLC0415

    return FsspecStore(url, storage_options)

"""What kind of location a string is: the one place that decides.

Built on fsspec's public :func:`fsspec.core.split_protocol` (the same rule
fsspec's ``url_to_fs`` uses, so what is called remote here is what fsspec
opens): a location is *local* when it has no protocol (a plain path,
relative or absolute; ``C:/x`` counts as a path, since a one-letter protocol
is a Windows drive) or the protocol is ``file`` or ``local`` (fsspec's two
names for the local file system), in any letter case. Everything else
(``s3://``, ``memory://``, ``http(s)://``, chained ``simplecache::s3://``) is
*remote*: it goes through fsspec, and storage options apply to it.

``file://`` URLs follow RFC 8089: ``file:///a``, ``file://localhost/a`` and
``file:/a`` (one slash, no authority) are the path ``/a``, percent-escapes are
decoded; ``file://a/b`` names the
host ``a`` and is refused (fsspec would silently read it as the relative path
``a/b``). Nothing here touches storage.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import unquote, urlsplit

from producer.errors import Hint, InputError

__all__ = [
    "LOCAL_PROTOCOLS",
    "check_endpoint",
    "check_endpoint_environment",
    "check_s3_options",
    "is_file_url",
    "is_local",
    "is_remote",
    "local_path",
    "pathlib_merged_url",
    "product_storage_options",
    "protocol",
]

#: protocols naming the local file system (fsspec's LocalFileSystem answers to both)
LOCAL_PROTOCOLS = frozenset({"file", "local"})

#: ``pathlib.Path("s3://b/x.tif")`` is ``s3:/b/x.tif``: pathlib merges the
#: slashes after a URL's scheme (a ``str`` keeps them)
_MERGED_URL = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]+):/(?!/)")


#: RFC 8089's ``file:/a``: a local URL with no authority (one slash), the path ``/a``
_NO_AUTHORITY = re.compile(r"^(?:file|local):(?=/(?!/))", re.IGNORECASE)


def pathlib_merged_url(path: str) -> str | None:
    """The URL ``path`` was before ``pathlib`` merged the ``//`` after its
    scheme (``s3:/b/x.tif`` gives ``s3://b/x.tif``, ``file:/a`` gives
    ``file:///a``), or None for a path that
    is no such URL (no scheme, a one-letter drive, or a file that exists)."""
    merged = _MERGED_URL.match(path)
    if merged is None or os.path.lexists(path):
        return None
    scheme, rest = merged.group(1), path[merged.end() :]
    # file:///a went through pathlib as file:/a: its path is absolute
    return f"{scheme}:///{rest}" if scheme.lower() in LOCAL_PROTOCOLS else f"{scheme}://{rest}"


def protocol(location: str) -> str:
    """The lower-case protocol of ``location``; ``"file"`` for a plain path.

    ``"s3"`` for ``S3://b/k``, ``"simplecache::s3"`` for a chained URL.
    """
    if isinstance(location, str) and "://" not in location and not location.startswith("data:"):
        # what split_protocol answers for a string without "://" or "data:",
        # without importing fsspec (~80 ms of every local register's cold start)
        return "file"
    from fsspec.core import split_protocol  # noqa: PLC0415

    proto, _ = split_protocol(location)
    return str(proto).lower() if proto else "file"


def is_local(location: str) -> bool:
    """True for a plain path and for ``file://`` / ``local://`` URLs."""
    return protocol(location) in LOCAL_PROTOCOLS


def is_remote(location: str) -> bool:
    """True for every location that fsspec opens with another file system
    than the local one (``s3://``, ``memory://``, ``http(s)://``, ...)."""
    return not is_local(location)


def is_file_url(location: str) -> bool:
    """True for a ``file:`` / ``local:`` URL (``file:///a``, ``file:/a``),
    False for a plain path and for remote locations."""
    return is_local(location) and ("://" in location or _NO_AUTHORITY.match(location) is not None)


def local_path(location: str) -> str:
    """The file-system path of a local location (see :func:`is_local`).

    A plain path comes back unchanged (not made absolute); ``file:///a%20b``
    and ``file:/a%20b`` give ``/a b``. Raises :class:`~producer.errors.InputError` for a
    ``file://`` URL naming another host, and :class:`ValueError` (a
    programming error) for a remote location.
    """
    if not is_local(location):
        raise ValueError(f"{location!r} is not a local path or file:// URL")
    no_authority = _NO_AUTHORITY.match(location)
    if no_authority is not None:
        return unquote(location[no_authority.end() :])
    if "://" not in location:
        return location
    parts = urlsplit(location)
    if parts.netloc not in ("", "localhost"):
        # the host only: a USER:PASSWORD@ before it is never shown (the
        # location itself is masked with the message)
        userinfo, at, host = parts.netloc.rpartition("@")
        named = f"names the host {host!r}"
        if at:
            named = "carries credentials (user:password@)" + (
                f" and {named}" if host not in ("", "localhost") else ""
            )
        raise InputError(
            f"{location!r} {named}; file:// URLs are local only, without credentials: "
            f"write file:///path (three slashes) or a plain path"
        )
    return unquote(parts.path)


def product_storage_options(storage_options: Mapping[str, Any] | None, location: str = "") -> dict[str, Any]:
    """``storage_options`` (a copy) for a file system that reads or lists
    products: fsspec's listing cache off (``use_listings_cache=False``)
    unless the caller set it; for an http(s) ``location``, requests bounded
    in time as GDAL's are (:func:`producer.httplimits.with_http_timeout`);
    for an S3 one, each request bounded by a total deadline
    (:func:`producer.httplimits.with_s3_read_deadline`).

    fsspec keeps one file system per set of options for the life of the
    process, and s3fs answers ``info``/``exists``/``isfile`` from a cached
    listing of the parent folder when it has one. GDAL lists the folder of
    every product it opens (sidecar files), and expanding a prefix lists it
    too: with the cache on, a warm process (a Lambda container, a worker)
    then saw a product uploaded to that folder later as "not found", and an
    overwritten one with its old size and ETag, on every retry. Without it
    each stat is one HEAD and each listing is made when asked for.
    """
    out = dict(storage_options or {})
    out.setdefault("use_listings_cache", False)
    if location and protocol(location) in ("http", "https"):
        from producer.httplimits import with_http_timeout  # noqa: PLC0415

        out = with_http_timeout(out)
    elif location and protocol(location) in ("s3", "s3a"):
        from producer.httplimits import with_s3_read_deadline  # noqa: PLC0415

        out = with_s3_read_deadline(out)
    return out


#: what an S3 (botocore) endpoint URL looks like: a scheme and a host
_ENDPOINT = re.compile(r"https?://[^/\s]+", re.IGNORECASE)
#: an endpoint URL with ``user[:password]@`` (the password may hold '/'); group 1: its scheme
_USERINFO = re.compile(r"\s*(https?://)[^@\s]*@", re.IGNORECASE)


def _is_endpoint(value: str) -> bool:
    """Whether ``value`` is ``http(s)://host[:port]``: a scheme, a host, and a
    port of 1-65535 if any (botocore refuses another as "not a valid URI",
    obstore's Rust code panics on it)."""
    if not _ENDPOINT.match(value.strip()):
        return False
    try:
        parts = urlsplit(value.strip())
        port = parts.port
    except ValueError:  # a port out of range, or no number
        return False
    return bool(parts.hostname) and port != 0


#: the s3fs storage options that hold a credential, sent in request headers
_CREDENTIAL_OPTIONS = ("key", "secret", "token")
#: a character no header (nor a credential) holds: C0 controls and DEL
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


#: s3fs storage options that are keyword arguments of a client, its config or each request
_KWARGS_OPTIONS = ("client_kwargs", "config_kwargs", "s3_additional_kwargs")


#: seconds ``config_kwargs`` may give botocore (s3fs passes them to its client config)
_TIMEOUT_OPTIONS = ("connect_timeout", "read_timeout")
#: what s3fs's client config takes besides botocore's options (aiobotocore's ``AioConfig``)
_AIO_CONFIG_OPTIONS = frozenset({"connector_args", "http_session_cls", "warm_up_loader_caches"})
#: the ``client_kwargs`` botocore's ``create_client`` takes from s3fs (``service_name``
#: and ``config`` are s3fs's own)
_S3_CLIENT_OPTIONS = frozenset(
    {
        "region_name",
        "api_version",
        "use_ssl",
        "verify",
        "endpoint_url",
        "aws_access_key_id",
        "aws_secret_access_key",
        "aws_session_token",
        "aws_account_id",
    }
)


#: boto3's names of what s3fs reads under other names: the example and the name it reads
_BOTO3_SPELLINGS: dict[str, tuple[dict[str, Any], str]] = {
    "region_name": ({"client_kwargs": {"region_name": "eu-west-1"}}, "client_kwargs region_name"),
    "aws_access_key_id": ({"key": "KEY"}, "key"),
    "aws_secret_access_key": ({"secret": "SECRET"}, "secret"),
    "aws_session_token": ({"token": "TOKEN"}, "token"),
}
#: the top-level options an S3 file system takes: s3fs's own, fsspec's (the
#: instance and listings caches) and its session's; s3fs hands any other to
#: the session it builds (a TypeError beside a ``profile``), or drops it
_S3_OPTIONS = frozenset(
    {
        "anon", "endpoint_url", "key", "secret", "token", "use_ssl", "client_kwargs", "requester_pays",
        "default_block_size", "default_fill_cache", "default_cache_type", "version_aware", "config_kwargs",
        "s3_additional_kwargs", "session", "username", "password", "cache_regions", "asynchronous", "loop",
        "max_concurrency", "fixed_upload_size", "local_expiry_check", "batch_size", "skip_instance_cache",
        "use_listings_cache", "listings_expiry_time", "max_paths", "profile", "session_vars", "event_hooks",
        "include_builtin_handlers",
    }
)  # fmt: skip


def _refuse_unknown_key(
    storage_options: Mapping[str, Any], what: str, option: str, group: str, known: Iterable[str], takes: str
) -> None:
    """Refuse a key of the mapping ``group`` (``config_kwargs``) no ``known`` name
    matches: else every request fails with a raw ``TypeError``, never retried right."""
    given = storage_options.get(group)
    if not isinstance(given, Mapping):
        return
    names = sorted(set(known))
    for key in given:
        if key in names:
            continue
        import difflib  # noqa: PLC0415 (an error path only)

        close = difflib.get_close_matches(str(key), names, n=1)
        meant = close[0] if close else ("read_timeout" if group == "config_kwargs" else "region_name")
        # never the value given: a misspelt aws_secret_access_key holds a secret
        example: Any = 60 if meant in _TIMEOUT_OPTIONS else "VALUE"
        known = f"did you mean {meant!r}?" if close else f"{takes} takes {', '.join(names)}"
        raise InputError(
            f"{what}: the storage option {group} has no key {str(key)!r} ({known})",
            hints=(Hint(option, {group: {meant: example}}, f"a name {takes} takes"),),
        )


def check_s3_options(
    storage_options: Mapping[str, Any] | None,
    what: str,
    option: str = "storage_options",
    *,
    catalog: bool = False,
) -> None:
    """Refuse what s3fs's S3 client would fail every request with: a key of
    ``client_kwargs`` that botocore's ``create_client`` does not take (a
    misspelt ``endpoint_urll``) or a ``region_name`` that is no text; an
    :class:`InputError` naming ``what`` with a hint on ``option``, as
    :func:`check_endpoint`. For S3 locations only (an http file system takes
    other ``client_kwargs``). ``catalog``: the options are the catalog's, which
    may be shared with products read through another file system (http): the
    fix of an option s3fs does not take names the products' own options too.
    Pure: no request."""
    if not isinstance(storage_options, Mapping):
        return
    check_endpoint(storage_options, what, option)
    for key in storage_options:
        if key in _S3_OPTIONS:
            continue
        import difflib  # noqa: PLC0415 (an error path only)

        close = difflib.get_close_matches(str(key), sorted(_S3_OPTIONS), n=1)
        hints: tuple[Hint, ...] = (Hint(option, {close[0]: "VALUE"}, "a name s3fs takes"),) if close else ()
        theirs = ""
        if catalog:
            # an option meant for products on another file system (an http
            # server's block_size) reached the catalog's s3fs: it is theirs alone
            theirs = "; if it is for the products (read through another file system), give it as theirs alone"
            hints += (Hint("data_storage_options", {str(key): "VALUE"}, "the products' own option"),)
        raise InputError(
            f"{what}: s3fs takes no storage option {str(key)!r}"
            + (f" (did you mean {close[0]!r}?)" if close else f" (it takes {', '.join(sorted(_S3_OPTIONS))})")
            + theirs,
            hints=hints,
        )
    _refuse_unknown_key(
        storage_options, what, option, "client_kwargs", _S3_CLIENT_OPTIONS, "botocore's create_client"
    )
    client_kwargs = storage_options.get("client_kwargs")
    region = client_kwargs.get("region_name") if isinstance(client_kwargs, Mapping) else None
    if region is not None and not isinstance(region, str):
        raise InputError(
            f"{what}: the storage option client_kwargs region_name must be text (an AWS region), "
            f"not {type(region).__name__}",
            hints=(Hint(option, {"client_kwargs": {"region_name": "eu-west-1"}}, "the region as text"),),
        )


def _check_config_kwargs(storage_options: Mapping[str, Any], what: str, option: str) -> None:
    """Refuse a ``config_kwargs`` key botocore's client config does not take
    (``read_timout``), and a timeout that is no number of seconds above 0
    (botocore fails each request with it, as a retryable network error)."""
    config_kwargs = storage_options.get("config_kwargs")
    if not isinstance(config_kwargs, Mapping):
        return
    try:
        from botocore.config import Config  # noqa: PLC0415 (s3fs's; only when config_kwargs are given)
    except ImportError:  # without the [s3] extra nothing reads config_kwargs
        known: Iterable[str] = ()
    else:
        known = set(Config.OPTION_DEFAULTS) | _AIO_CONFIG_OPTIONS
        _refuse_unknown_key(storage_options, what, option, "config_kwargs", known, "botocore's Config")
    for name in _TIMEOUT_OPTIONS:
        value = config_kwargs.get(name)
        if value is None or (isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0):
            continue
        raise InputError(
            f"{what}: the storage option config_kwargs {name} must be a number of seconds above 0, "
            f"not {value!r}",
            hints=(Hint(option, {"config_kwargs": {name: 60}}, f"{name} in seconds"),),
        )


def check_endpoint(
    storage_options: Mapping[str, Any] | None, what: str, option: str = "storage_options"
) -> None:
    """Refuse an ``endpoint_url`` storage option (top level or in
    ``client_kwargs``) that is no ``http(s)://host[:port]`` URL
    (``127.0.0.1:9000``, a common typo), which botocore rejects with a raw
    ``ValueError`` on first use, and a ``client_kwargs`` (``config_kwargs``,
    ``s3_additional_kwargs``) that is no mapping, which crashes s3fs: an
    :class:`InputError` naming ``what`` (the catalog or the products) with a
    hint on ``option`` (the options it came from), so each caller spells the
    fix. A ``key``, ``secret`` or ``token`` that is a number (unquoted in
    JSON) or holds a control character (a line end read from a file) is refused
    the same way, and so is a
    ``config_kwargs`` key botocore's client config does not take or a
    timeout in it that is no number of seconds, and a ``region_name`` at
    the top level (boto3's spelling), which s3fs does not read there (it
    dropped it, or with a ``profile`` crashed building its session). Pure:
    no request."""
    if not isinstance(storage_options, Mapping):
        return
    boto3_named = [name for name in _BOTO3_SPELLINGS if name in storage_options]
    if boto3_named:
        fix: dict[str, Any] = {}
        for name in boto3_named:
            given = storage_options[name]
            if name == "region_name" and isinstance(given, str) and re.fullmatch(r"[a-z0-9-]{1,40}", given):
                fix.update({"client_kwargs": {"region_name": given}})
            else:
                fix.update(_BOTO3_SPELLINGS[name][0])
        raise InputError(
            f"{what}: the storage option(s) {', '.join(boto3_named)} (as boto3 spells them) are not "
            "read at the top level by s3fs, which takes them as "
            f"{', '.join(_BOTO3_SPELLINGS[name][1] for name in boto3_named)}; give them so (values not shown)",
            hints=(Hint(option, fix, "the options as s3fs reads them"),),
        )
    for name in _CREDENTIAL_OPTIONS:
        value = storage_options.get(name)
        if isinstance(value, (int, float)):  # not a mapping or object: gcsfs takes such a token
            # a JSON number (an unquoted numeric password): botocore failed every
            # request signing it with a raw TypeError ("expected str instance, int found")
            raise InputError(
                f"{what}: the storage option {name} must be text, not {type(value).__name__}; "
                "quote it as a string (its value is not shown)",
                hints=(Hint(option, {name: name.upper()}, "the credential as a string"),),
            )
        if isinstance(value, str) and _CONTROL.search(value):
            # s3fs: "Forbidden control character ... in headers" on every
            # request (a retryable network fault); obstore: a Rust panic
            raise InputError(
                f"{what}: the storage option {name} holds a control character (a line end, as "
                "$(cat FILE) keeps of a file with CRLF line ends); give it as one line without "
                "(its value is not shown)",
                hints=(Hint(option, {name: name.upper()}, "the credential without line ends"),),
            )
    for key in _KWARGS_OPTIONS:
        value = storage_options.get(key)
        if value is None or isinstance(value, Mapping):
            continue
        # client_kwargs: "http://minio:9000" means the endpoint: the fix puts it there
        url = isinstance(value, str) and _ENDPOINT.match(value.strip())
        kwargs = {"endpoint_url": value.strip()} if key == "client_kwargs" and url else {"name": "value"}
        raise InputError(
            f"{what}: the storage option {key} must be a mapping of keyword arguments, "
            f"not {type(value).__name__}",
            hints=(Hint(option, {key: kwargs}, f"{key} as a mapping"),),
        )
    _check_config_kwargs(storage_options, what, option)
    client_kwargs = storage_options.get("client_kwargs")
    values = [storage_options.get("endpoint_url")]
    if isinstance(client_kwargs, Mapping):
        values.append(client_kwargs.get("endpoint_url"))
    for value in values:
        userinfo = _USERINFO.match(value) if isinstance(value, str) else None
        if userinfo is not None:
            from producer.redact import redact  # noqa: PLC0415 (an error path only)

            bare = userinfo.group(1) + str(value)[userinfo.end() :]
            raise InputError(
                f"{what}: the S3 endpoint_url {redact(str(value))!r} carries credentials (user:password@), "
                "which would end up in logs and error messages; give the endpoint without them "
                f"({bare!r}) and the credentials apart from it",
                hints=(
                    Hint(option, {"key": "KEY", "secret": "SECRET"}, "the credentials apart from the URL"),
                ),
            )
        if value is None or (isinstance(value, str) and _is_endpoint(value)):
            continue
        from producer.redact import redact  # noqa: PLC0415 (an error path only)

        text = str(value).strip()
        example = text if "://" in text or not text else f"http://{text}"
        if not _is_endpoint(example):
            example = "http://127.0.0.1:9000"
        raise InputError(
            f"{what}: the S3 endpoint_url {redact(text)!r} is no endpoint URL; give it as "
            "http(s)://host[:port]",
            hints=(Hint(option, {"endpoint_url": redact(example)}, "the endpoint with its scheme"),),
        )


#: the environment variables botocore reads an S3 endpoint from, the first set winning
ENDPOINT_VARIABLES = ("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL")


def check_endpoint_environment(
    storage_options: Mapping[str, Any] | None,
    what: str,
    locations: Iterable[str] | None = None,
    environ: Mapping[str, str] | None = None,
) -> None:
    """Refuse an S3 endpoint from the environment (:data:`ENDPOINT_VARIABLES`)
    that carries ``user:password@``, or is no ``http(s)://host[:port]`` (a
    port out of range: botocore's "not a valid URI", obstore's panic), when the storage options name no
    ``endpoint_url`` of their own: as that option (:func:`check_endpoint`),
    s3fs fails every request with it (a retryable "Cannot combine
    AUTHORIZATION header"), obstore sends the credentials to the server.
    An :class:`InputError` naming ``what`` and the variable, the password
    masked, the endpoint without them and where the credentials go.
    ``locations``: refused only if one of them is on S3 (the variables mean
    nothing elsewhere); None when the caller's location is. Pure: no request."""
    env = os.environ if environ is None else environ
    name = next((n for n in ENDPOINT_VARIABLES if (env.get(n) or "").strip()), None)
    if name is None:
        return
    value = env[name].strip()  # the first variable set is the one botocore uses
    userinfo = _USERINFO.match(value)
    if userinfo is None and _is_endpoint(value):
        return
    options = storage_options if isinstance(storage_options, Mapping) else {}
    client_kwargs = options.get("client_kwargs")
    if options.get("endpoint_url") or (
        isinstance(client_kwargs, Mapping) and client_kwargs.get("endpoint_url")
    ):
        return  # the option wins over the environment
    if locations is not None and not any(protocol(str(x)) in ("s3", "s3a") for x in locations):
        return
    from producer.redact import redact  # noqa: PLC0415 (an error path only)

    if userinfo is None:
        raise InputError(
            f"{what}: the S3 endpoint in the environment variable {name} ({redact(value)!r}) is no "
            f"endpoint URL; set {name} as http(s)://host[:port] (a port of 1-65535), or unset it"
        )
    bare = userinfo.group(1) + value[userinfo.end() :]
    raise InputError(
        f"{what}: the S3 endpoint in the environment variable {name} ({redact(value)!r}) "
        "carries credentials (user:password@), which would be sent to the endpoint and end up "
        f"in logs and error messages; set {name}={bare} without them, and the credentials as "
        "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or AWS_PROFILE)"
    )

"""A store on S3 (or an S3-compatible server) with real conditional writes.

Versions are the object's ETag, exactly as S3 returns it (with its quotes).
``put(if_version=etag)`` is a PutObject with ``If-Match``; ``create_only`` is
``If-None-Match: *``. S3 evaluates the condition and stores the object
atomically (AWS since 2024; MinIO and moto too), so concurrent writers on any
number of hosts cannot lose an update: ``concurrent_safe = True``.

A ``get`` is one GetObject: body and ETag come from the same response, so the
version always describes exactly the bytes returned.

Every request goes through an :class:`s3fs.S3FileSystem` (credentials,
region and endpoint from ``storage_options`` or else the standard AWS
environment/config, including ``AWS_ENDPOINT_URL``). Building one, with its
aiobotocore session and client, costs ~0.2 s of CPU, so stores opened with the
same options in one process share one (:func:`_shared_filesystem`): a
register per event with ``storage_options`` pays it once, not per call.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Any

from fsspec.asyn import sync

from producer.awsclients import SharedClients, client_key
from producer.errors import (
    InputError,
    NotFound,
    PreconditionFailed,
    ProducerError,
    StoreError,
    credentials_error,
    missing_bucket,
    missing_credentials,
    timeout_hint,
)
from producer.store.base import describe_condition
from producer.store.keys import check_key, check_prefix, is_listable, under_prefix

log = logging.getLogger(__name__)

#: connections to S3 per store unless storage_options' config_kwargs say otherwise
MAX_POOL_CONNECTIONS = 32
_INSTALL_HINT = "install the S3 extra: pip install 'stac-producer[s3]'"


#: S3 file systems (with their clients) kept per process for reuse
SHARED_FILESYSTEMS = 8
_shared = SharedClients(SHARED_FILESYSTEMS)


def _shared_filesystem(url: str, options: dict[str, Any], build: Any) -> Any:
    """The file system ``build(**options)`` makes, shared with every store of
    this process opened with the same options and environment (see
    :func:`producer.awsclients.client_key`); ``skip_instance_cache=True`` in
    the caller's options (or options that are not plain data) gives a
    private one. Either way it is built on the process's aiobotocore session
    (:mod:`producer.awssession`, shared with the product reader) unless the
    options configure a session of their own."""
    from producer.awssession import with_shared_session  # noqa: PLC0415

    key = None if options.get("skip_instance_cache") else client_key(options)
    return _shared.get(
        key, lambda: build(**{**with_shared_session(url, options), "skip_instance_cache": True})
    )


def parse_s3_url(url: str) -> tuple[str, str, str]:
    """``(bucket, prefix, url)`` of ``s3://bucket/prefix`` (the URL as the
    store names it: no trailing ``/``); :class:`StoreError` if it is none."""
    scheme, sep, rest = url.partition("://")
    if not sep or scheme.lower() not in ("s3", "s3a"):
        raise StoreError(f"cannot open {url!r} as S3: expected s3://bucket/prefix")
    bucket, _, prefix = rest.partition("/")
    if not bucket:
        raise StoreError(f"cannot open {url!r} as S3: the URL names no bucket")
    prefix = prefix.strip("/")
    if prefix:
        check_prefix(prefix)  # same rules as keys: no '..', '//', ...
    return bucket, prefix, f"s3://{bucket}/{prefix}" if prefix else f"s3://{bucket}"


async def _read_body(body: Any) -> bytes:
    """All bytes of a streaming response body; the stream is closed."""
    async with body as stream:
        return bytes(await stream.read())


def _client_error(exc: BaseException) -> Any | None:
    """The botocore ``ClientError`` behind ``exc`` (s3fs wraps it as the
    ``__cause__`` of an ``OSError``), or None."""
    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        if isinstance(getattr(cur, "response", None), dict) and "Error" in cur.response:  # type: ignore[attr-defined]
            return cur
        cur = cur.__cause__ or cur.__context__
    return None


def _timed_out(exc: BaseException) -> str | None:
    """``"read"`` or ``"connect"`` when ``exc`` (or what caused it) is a
    request that got no answer in time, else None."""
    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        name = type(cur).__name__
        if (
            name in ("ConnectTimeoutError", "ConnectTimeout", "ServerTimeoutError")
            and "connect" in (name + str(cur)).lower()
        ):
            return "connect"
        if name in ("FSTimeoutError", "ReadTimeoutError", "AioReadTimeoutError", "SocketTimeoutError") or (
            isinstance(cur, TimeoutError)
        ):
            return "read"
        cur = cur.__cause__ or cur.__context__
    return None


def timeout_error(op: str, where: str, which: str, seconds: float) -> StoreError:
    """The :class:`StoreError` of a request to ``where`` that got no answer
    within the ``which`` (``read`` or ``connect``) timeout of ``seconds``:
    retryable, naming the storage option that waits longer."""
    said = "no answer from the server" if which == "read" else "could not connect to the server"
    return StoreError(
        f"S3 {op} on {where}: {said} within the {which} timeout ({seconds:g} s); retry later",
        hints=(timeout_hint(which, seconds),),
    )


def _is_storage_failure(exc: BaseException) -> bool:
    """True for failures of the storage/network (to translate), False for
    programming errors (to propagate unchanged)."""
    if isinstance(exc, (OSError, TimeoutError)) or _client_error(exc) is not None:
        return True
    try:
        # botocore comes with the optional [s3] extra (s3fs needs it)
        from botocore.exceptions import BotoCoreError  # noqa: PLC0415
    except ImportError:  # pragma: no cover - s3fs depends on botocore
        return False
    return isinstance(exc, BotoCoreError)


class S3Store:
    """Catalog documents as objects under ``s3://bucket/prefix``.

    ``S3Store("s3://bucket/stac", {"client_kwargs": {"endpoint_url": ...}})``.
    Writes whole objects with PutObject (conditional when asked); deletes with
    DeleteObject. Nothing is written at construction.
    """

    concurrent_safe: bool = True
    #: keys per ListObjectsV2 page (S3's maximum; tests lower it)
    list_page_size: int = 1000

    def __init__(self, url: str, storage_options: dict[str, Any] | None = None) -> None:
        bucket, prefix, _ = parse_s3_url(url)
        try:
            # optional [s3] extra; importing s3fs + botocore took 0.44 s here,
            # paid only by catalogs on S3, not by every `import producer.api`
            import s3fs  # noqa: PLC0415
        except ImportError as exc:
            raise StoreError(f"cannot open {url!r}: s3fs is not installed; {_INSTALL_HINT}") from exc
        options = dict(storage_options or {})
        # a batch writes its items from up to 16 threads (producer.parallel):
        # botocore's default pool of 10 connections would queue them
        config = options.get("config_kwargs") or {}
        if isinstance(config, dict):  # anything else is s3fs's to refuse
            options["config_kwargs"] = {"max_pool_connections": MAX_POOL_CONNECTIONS, **config}
        try:
            self.fs: Any = _shared_filesystem(url, options, s3fs.S3FileSystem)
        except Exception as exc:
            raise StoreError(f"cannot open {url!r}: bad storage_options for s3fs ({exc})") from exc
        # botocore retries a failed request (5 attempts by default, or the
        # configured retries); s3fs's own 5 tries around each multiplied
        # them: a stalled request held a verb 25 read timeouts
        self.fs.retries = 1
        self.bucket, self.prefix, self.url = parse_s3_url(url)

    def __repr__(self) -> str:
        return f"S3Store({self.url!r})"

    # -- helpers -----------------------------------------------------------

    def _key(self, key: str) -> str:
        check_key(key)
        return f"{self.prefix}/{key}" if self.prefix else key

    def _call(self, method: str, key: str, **params: Any) -> dict[str, Any]:
        """One S3 request (botocore ``method`` name), errors translated (see
        :meth:`_translate`).

        Through s3fs's public ``call_s3``: the file-system methods
        (``cat_file``, ``pipe_file``, ``info``) do not return the ETag of the
        bytes they moved, and conditional writes need ``If-Match``.
        """
        try:
            return dict(self.fs.call_s3(method, Bucket=self.bucket, **params))
        except Exception as exc:
            if not _is_storage_failure(exc):
                raise
            raise self._translate(exc, method, key) from exc

    def _translate(self, exc: BaseException, op: str, key: str) -> ProducerError:
        """Map an s3fs/botocore failure to the package's errors.

        s3fs raises ``OSError`` subclasses whose ``__cause__`` is the botocore
        ``ClientError``; we decide on its error code and HTTP status:
        412 ``PreconditionFailed`` and 409 ``ConditionalRequestConflict`` (a
        concurrent conditional write won) -> :class:`PreconditionFailed`;
        ``NoSuchKey`` / 404 -> :class:`NotFound`; no AWS credentials found
        (botocore's ``NoCredentialsError``, raised before any request) ->
        :class:`InputError` (the configuration, not retryable); anything else
        (``NoSuchBucket``, ``AccessDenied``, network) -> :class:`StoreError`
        naming the URL.
        """
        where = f"{self.url}/{key}" if key else self.url
        err = _client_error(exc)
        if err is None:
            if isinstance(exc, StoreError):
                return exc
            which = _timed_out(exc)
            if which is not None:
                default = getattr(self.fs, f"{which}_timeout", 60)
                seconds = (getattr(self.fs, "config_kwargs", None) or {}).get(f"{which}_timeout", default)
                return timeout_error(op, where, which, float(seconds))
            cause = missing_credentials(exc)
            if cause is not None:
                return credentials_error(f"S3 {op} on {where}", cause)
            return StoreError(f"S3 {op} failed for {where}: {exc}; check the endpoint and network")
        info = err.response.get("Error", {})
        code = str(info.get("Code", ""))
        status = err.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        message = info.get("Message") or str(err)
        if code == "PreconditionFailed" or status == 412:
            return PreconditionFailed(f"{key!r} in catalog {self.url} changed or exists ({message})")
        if code == "ConditionalRequestConflict" or status == 409:
            return PreconditionFailed(
                f"{key!r} in catalog {self.url}: concurrent conditional write ({message})"
            )
        if code == "NoSuchBucket":
            return missing_bucket(self.bucket, self.url)
        if code in ("NoSuchKey", "404", "NotFound"):
            return NotFound(f"{key!r} not found in catalog {self.url}")
        if code in ("AccessDenied", "403", "Forbidden", "InvalidAccessKeyId", "SignatureDoesNotMatch"):
            return StoreError(
                f"access denied: S3 {op} on {where} ({code}); check the credentials and bucket policy"
            )
        if code in ("NotImplemented", "501"):
            return StoreError(f"S3 {op} on {where}: the server does not support this request ({message})")
        later = "; retry later" if isinstance(status, int) and status >= 500 else ""
        return StoreError(f"S3 {op} failed for {where}: {code}: {message}{later}")

    def _get_object(self, key: str, s3key: str) -> tuple[bytes, str]:
        """Body and ETag of one GetObject. The body is an aiobotocore stream,
        read on the file system's event loop with fsspec's public ``sync``."""
        resp = self._call("get_object", key, Key=s3key)
        try:
            data = sync(self.fs.loop, _read_body, resp["Body"])
        except Exception as exc:
            if not _is_storage_failure(exc):
                raise
            raise self._translate(exc, "get_object", key) from exc
        return data, str(resp["ETag"])

    def _iter_s3_keys(self, s3prefix: str, max_keys: int | None = None) -> Iterator[str]:
        """Object keys starting with ``s3prefix``, one ListObjectsV2 page at a time."""
        params: dict[str, Any] = {"Prefix": s3prefix, "MaxKeys": max_keys or self.list_page_size}
        while True:
            resp = self._call("list_objects_v2", "", **params)
            for obj in resp.get("Contents", []):
                yield str(obj["Key"])
            token = resp.get("NextContinuationToken")
            if max_keys is not None or not resp.get("IsTruncated") or not token:
                return
            params["ContinuationToken"] = token

    # -- Store protocol ----------------------------------------------------

    def get(self, key: str) -> tuple[bytes, str]:
        """Return ``(bytes, ETag)`` from a single GetObject."""
        data, etag = self._get_object(key, self._key(key))
        log.debug("%r get %s: %d bytes, version %s", self, key, len(data), etag)
        return data, etag

    def put(
        self,
        key: str,
        data: bytes,
        *,
        if_version: str | None = None,
        create_only: bool = False,
    ) -> str:
        """PutObject ``data`` at ``key`` (``If-Match`` / ``If-None-Match: *``
        when asked); return the new ETag.

        Note: if a conditional PutObject succeeds on the server but the
        response is lost and the client retries, the retry reports
        :class:`PreconditionFailed` although our write landed; the commit layer
        re-reads and finds its change already applied.
        """
        if if_version is not None and create_only:
            raise InputError("put(): pass either if_version or create_only, not both")
        s3key = self._key(key)
        params: dict[str, Any] = {"Key": s3key, "Body": bytes(data)}
        if if_version is not None:
            params["IfMatch"] = if_version
        if create_only:
            params["IfNoneMatch"] = "*"
        try:
            resp = self._call("put_object", key, **params)
        except NotFound:
            # If-Match on a key deleted since it was read: S3 answers 404.
            raise PreconditionFailed(f"{key!r} in catalog {self.url} was deleted since it was read") from None
        etag = resp.get("ETag") or self._call("head_object", key, Key=s3key)["ETag"]
        condition = describe_condition(if_version, create_only)
        log.debug("%r put %s (%s): %d bytes, new version %s", self, key, condition, len(data), etag)
        return str(etag)

    def delete(self, key: str, *, if_version: str | None = None) -> None:
        """DeleteObject ``key``; with ``if_version`` an ``If-Match`` delete.

        S3 answers a delete of a missing key with success, so without
        ``if_version`` a HeadObject runs first to raise :class:`NotFound`.
        Conditional deletes need a server that supports ``If-Match`` on
        DeleteObject (AWS S3, moto); one that does not yields a
        :class:`StoreError` (``NotImplemented``).
        """
        s3key = self._key(key)
        if if_version is None:
            self._call("head_object", key, Key=s3key)
            self._call("delete_object", key, Key=s3key)
        else:
            self._call("delete_object", key, Key=s3key, IfMatch=if_version)
        log.debug("%r delete %s (%s)", self, key, describe_condition(if_version))

    def delete_many(self, keys: Sequence[str]) -> dict[str, str]:
        """Delete ``keys`` (unconditionally; a missing key is fine) with one
        DeleteObjects request per 1,000 keys. Returns ``{key: reason}`` for
        the keys S3 did not delete (empty when all went)."""
        failed: dict[str, str] = {}
        todo = list(dict.fromkeys(keys))
        for start in range(0, len(todo), 1000):
            chunk = todo[start : start + 1000]
            by_s3key = {self._key(k): k for k in chunk}
            resp = self._call(
                "delete_objects",
                "",
                Delete={"Objects": [{"Key": k} for k in by_s3key], "Quiet": True},
            )
            for err in resp.get("Errors", []) or []:
                key = by_s3key.get(str(err.get("Key")), str(err.get("Key")))
                failed[key] = f"{err.get('Code')}: {err.get('Message')}"
        log.debug("%r delete_many: %d key(s), %d failed", self, len(todo), len(failed))
        return failed

    def list(self, prefix: str = "") -> Iterator[str]:
        """Yield document keys under ``prefix`` (segment-wise, recursive), via
        paginated ListObjectsV2; keys that are not valid store keys (folder
        markers, reserved names) are skipped. A ``prefix`` ending in ``/``
        names a folder: only what lies below it is listed (one request per
        page, no check for a document at the prefix itself)."""
        folder_only = prefix.endswith("/")
        prefix = check_prefix(prefix)
        base = f"{self.prefix}/" if self.prefix else ""
        # ListObjectsV2 matches string prefixes: list prefix + "/" (so "ndvi"
        # does not match "ndvi2/...") and check the exact key separately (it
        # sorts first among keys starting with it, so one MaxKeys=1 page).
        found: Iterator[str]
        if prefix and folder_only:
            found = self._iter_s3_keys(f"{base}{prefix}/")
        elif prefix:
            exact = f"{base}{prefix}"
            found = itertools.chain(
                (k for k in self._iter_s3_keys(exact, max_keys=1) if k == exact),
                self._iter_s3_keys(exact + "/"),
            )
        else:
            found = self._iter_s3_keys(base)
        count = 0
        for s3key in found:
            if not s3key.startswith(base):
                continue
            key = s3key[len(base) :]
            if is_listable(key) and under_prefix(key, prefix):
                count += 1
                yield key
        log.debug("%r list %r: %d key(s)", self, prefix, count)

    def list_versions(self, prefix: str) -> Iterator[tuple[str, str]]:
        """Yield ``(key, ETag)`` of the documents below the folder
        ``prefix`` (which ends in ``/``), one ListObjectsV2 page at a time:
        the ETag a GET of the key would return now, with its quotes."""
        if not prefix.endswith("/"):
            raise InputError("list_versions(): pass a folder, ending in '/'")
        folder = check_prefix(prefix)
        base = f"{self.prefix}/" if self.prefix else ""
        params: dict[str, Any] = {"Prefix": f"{base}{folder}/", "MaxKeys": self.list_page_size}
        while True:
            resp = self._call("list_objects_v2", "", **params)
            for obj in resp.get("Contents", []):
                key = str(obj["Key"])[len(base) :]
                if is_listable(key):
                    yield key, str(obj["ETag"])
            token = resp.get("NextContinuationToken")
            if not resp.get("IsTruncated") or not token:
                return
            params["ContinuationToken"] = token

    def modified(self, key: str) -> datetime | None:
        """The ``LastModified`` of the object at ``key`` (one HeadObject);
        :class:`NotFound` if absent."""
        stamp = self._call("head_object", key, Key=self._key(key)).get("LastModified")
        return stamp if isinstance(stamp, datetime) else None

    def exists(self, key: str) -> bool:
        """True if ``key`` exists (HeadObject)."""
        try:
            self._call("head_object", key, Key=self._key(key))
        except NotFound:
            return False
        return True

"""The S3 store's requests through obstore (Rust's ``object_store``) instead
of s3fs + botocore: opt in with the environment variable
``STAC_S3_CLIENT=obstore`` (a setting of the process, like GDAL's: the
Lambda's, the Prefect worker's or the shell's; products are still read
through s3fs and GDAL).

Why a second client: on this project's commit path every register makes
8-15 small requests, and botocore spends ~3-4 ms of CPU on each (signing,
endpoint rules, response parsing), obstore ~0.2 ms (``bench/s3_client.py``).
Eight writers on one collection used 84 ms of CPU per item through botocore
and 30 ms through obstore (BENCHMARKS.md, "the S3 client"). A Lambda pays
that CPU per event; a batch on S3 shares two cores with its own extraction.

Same contract as :class:`producer.store.s3.S3Store` (which stays the
default): versions are ETags with their quotes (interchangeable with the
default client's), ``put(if_version=...)`` sends ``If-Match``,
``create_only`` ``If-None-Match: *``, and failures map to the same errors.
``object_store`` has no conditional DeleteObject, so ``delete(key,
if_version=...)`` goes through the default client (built on first use:
intents, a remove's item and the mirror's lease use it, a register's path
does not).

Storage options of the catalog: the s3fs spellings this project documents (``key``, ``secret``,
``token``, ``endpoint_url``, ``client_kwargs={"endpoint_url", "region_name"}``,
``anon``, ``profile``); anything else is refused with the way back to the
default client. Without them, credentials, region and endpoint come from the
standard ``AWS_*`` environment (the endpoint from ``AWS_ENDPOINT_URL_S3``, else
``AWS_ENDPOINT_URL``, as botocore), web identity
or container credentials and instance metadata, as object_store reads them;
``AWS_PROFILE`` or ``profile`` goes through boto3's credential chain.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from producer.awsclients import SharedClients, client_key
from producer.errors import (
    Hint,
    InputError,
    NotFound,
    PreconditionFailed,
    ProducerError,
    StoreError,
    credentials_error,
    missing_bucket,
    missing_credentials,
)
from producer.redact import redact
from producer.store.base import describe_condition
from producer.store.keys import check_prefix, is_listable, under_prefix
from producer.store.s3 import S3Store, log, parse_s3_url, timeout_error
from producer.urls import ENDPOINT_VARIABLES

#: the environment variable that picks the catalog's S3 client
CLIENT_ENV = "STAC_S3_CLIENT"
CLIENTS = ("s3fs", "obstore")
_INSTALL_HINT = "install it: pip install 'stac-producer[obstore]'"
#: the s3fs-style options this client understands
_KNOWN = frozenset(
    {"key", "secret", "token", "endpoint_url", "client_kwargs", "config_kwargs", "anon", "profile"}
)
_KNOWN_CLIENT_KWARGS = frozenset({"endpoint_url", "region_name"})
#: seconds of the timeouts ``config_kwargs`` may set (botocore's names): a
#: stall ends after ``read_timeout`` s without a byte (botocore's default)
TIMEOUTS = {"read_timeout": 60.0, "connect_timeout": 10.0}
#: what object_store's error says of a request that got no answer in time
_TIMEOUT_RE = re.compile(r"kind: Timeout|TimedOut")
#: retries of a failed request (5xx, throttling, connection errors): about
#: botocore's standard mode (3 retries), with a deadline instead of 3 minutes
RETRY: Any = {
    # throttling (503 SlowDown) needs seconds, not the ~0.7 s that 3 retries
    # from 100 ms gave: 0.5 + 1 + 2 + 4 + 8 + 8 s within the 30 s deadline
    "max_retries": 6,
    "retry_timeout": timedelta(seconds=30),
    "backoff": {
        "init_backoff": timedelta(milliseconds=500),
        "max_backoff": timedelta(seconds=8),
        "base": 2.0,
    },
}
_CODE_RE = re.compile(r"<Code>([A-Za-z0-9]+)</Code>")
_MESSAGE_RE = re.compile(r"<Message>([^<]*)</Message>")
#: a server failing or throttling (5xx) in object_store's error text
_SERVER_STATUS_RE = re.compile(r"status code: 5\d\d")
#: object_store refuses a whole listing page over one key that is not a clean path
_INVALID_PATH = "invalid path"
#: pids of the processes that built an obstore client: its Rust runtime does
#: not survive a fork, so a child of one of them uses the default client
_USED_IN: set[int] = set()
#: a request to the EC2 instance metadata service (the credential chain's last link)
_INSTANCE_METADATA_RE = re.compile(r"169\.254\.169\.254|\[?fd00:ec2::254")

_shared = SharedClients(8)
#: where else object_store finds credentials (besides key/secret and the instance metadata)
_CREDENTIAL_ENV = (
    "AWS_ACCESS_KEY_ID",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
)


def _translatable(exc: BaseException) -> bool:
    """An ``Exception``, or obstore's Rust panic (a ``BaseException`` that
    would pass every ``except Exception``); not KeyboardInterrupt & co."""
    return isinstance(exc, Exception) or type(exc).__name__ == "PanicException"


class InvalidListedKey(StoreError):
    """A listing page that object_store refused over a key that is no clean
    path (the default client lists it, skipping that key)."""


#: what S3 echoes of a request it refused (SignatureDoesNotMatch): the access
#: key id and the request it signed, whose canonical headers hold a session
#: token's ``x-amz-security-token``
_ECHOED_RE = re.compile(
    r"<(AWSAccessKeyId|StringToSign|StringToSignBytes|SignatureProvided|CanonicalRequest|CanonicalRequestBytes)>"
    r".*?</\1>",
    re.DOTALL,
)


def _scrubbed(text: str) -> str:
    """obstore's error ``text`` without what S3 echoes of the signed request
    (:data:`_ECHOED_RE`) and with URL credentials masked."""
    return redact(_ECHOED_RE.sub(lambda m: f"<{m[1]}>***</{m[1]}>", text))


class ObstoreFailure(Exception):
    """The cause an obstore failure is chained to, in place of obstore's own
    exception: its type's name and text, scrubbed (:func:`_scrubbed`). A
    traceback (a Prefect task's failure log, a Lambda's) prints the cause,
    and obstore's text holds the whole answer S3 gave, which for a refused
    signature echoes the request's session token."""

    def __init__(self, exc: BaseException) -> None:
        super().__init__(f"{type(exc).__module__}.{type(exc).__name__}: {_scrubbed(str(exc))}")


class NoCredentialsFound(Exception):
    """The obstore client's credential chain found nothing (the cause of the
    :class:`InputError` of :func:`producer.errors.credentials_error`)."""


def wants_obstore() -> bool:
    """True when :data:`CLIENT_ENV` picks this client (read at each
    :func:`producer.store.open_store`); :class:`InputError` for a value that
    names no client."""
    choice = os.environ.get(CLIENT_ENV, "").strip().lower()
    if choice in ("", "s3fs"):
        return False
    if choice == "obstore":
        return True
    raise InputError(
        f"{CLIENT_ENV}={os.environ[CLIENT_ENV]!r} names no S3 client; set it to one of "
        f"{', '.join(CLIENTS)} (s3fs, the default, when unset)"
    )


def _mapping(options: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    value = options.get(name) or {}
    if not isinstance(value, Mapping):
        raise InputError(f"storage option {name} must be a mapping, not {type(value).__name__}")
    return value


def timeouts(options: Mapping[str, Any]) -> dict[str, float]:
    """The read and connect timeouts (seconds) of the storage options'
    ``config_kwargs`` (botocore's names), else :data:`TIMEOUTS`."""
    given = _mapping(options, "config_kwargs")
    out = dict(TIMEOUTS)
    for name in TIMEOUTS:
        if given.get(name) is None:
            continue
        try:
            out[name] = float(given[name])
        except (TypeError, ValueError):
            out[name] = -1.0
        if not out[name] > 0:
            raise InputError(f"storage option config_kwargs {name} must be a number of seconds above 0")
    return out


def _theirs(options: Mapping[str, Any], client_kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """The options of ``options`` the obstore client does not take, as the
    example of the products' own options (the fix of their refusal):
    ``{"config_kwargs": {"retries": {...}}}`` keeps its nesting, so that it
    can be pasted back as it stands. botocore's config values, switches and
    numbers are shown; any other value is ``VALUE`` (a text may be a credential)."""

    def shown(value: Any) -> Any:
        return value if isinstance(value, bool | int | float) else "VALUE"

    out: dict[str, Any] = {k: shown(options[k]) for k in sorted(set(options) - _KNOWN)}
    theirs = {k: shown(client_kwargs[k]) for k in sorted(set(client_kwargs) - _KNOWN_CLIENT_KWARGS)}
    if theirs:
        out["client_kwargs"] = theirs
    config = _mapping(options, "config_kwargs")
    theirs = {k: config[k] for k in sorted(set(config) - set(TIMEOUTS))}
    if theirs:
        out["config_kwargs"] = theirs
    return out


def _config(options: Mapping[str, Any], url: str) -> tuple[Any, Any]:
    """obstore's S3 config and credential provider from s3fs-style options."""
    unknown = sorted(set(options) - _KNOWN)
    client_kwargs = _mapping(options, "client_kwargs")
    unknown += sorted(f"client_kwargs.{k}" for k in set(client_kwargs) - _KNOWN_CLIENT_KWARGS)
    unknown += sorted(f"config_kwargs.{k}" for k in set(_mapping(options, "config_kwargs")) - set(TIMEOUTS))
    if unknown:
        raise InputError(
            f"catalog {url}: storage option(s) {', '.join(unknown)} are not supported by the obstore S3 client "
            f"({CLIENT_ENV}=obstore; it understands {', '.join(sorted(_KNOWN))}, config_kwargs only "
            f"{' and '.join(TIMEOUTS)}); drop them, give them as the products' own storage options "
            "if they are for the products (read through s3fs with either client), or unset "
            f"{CLIENT_ENV} to use the default s3fs client, which takes every s3fs option.",
            hints=(
                Hint("data_storage_options", _theirs(options, client_kwargs), "the products' own options"),
            ),
        )
    config: Any = {}
    endpoint = options.get("endpoint_url") or client_kwargs.get("endpoint_url")
    if endpoint:
        given = [("endpoint_url", endpoint)]
    else:
        # the environment's, as botocore picks it (AWS_ENDPOINT_URL_S3 first),
        # named in the config: object_store reads either variable, in no set order
        given = [(name, os.environ[name]) for name in ENDPOINT_VARIABLES if os.environ.get(name, "").strip()]
        endpoint = given[0][1].strip() if given else None
    for name, value in given[:1]:
        if not re.match(r"https?://[^/\s]+", str(value).strip()):
            raise InputError(
                f"catalog {url}: {name} {redact(str(value))!r} is no endpoint URL; give it as "
                "http(s)://host[:port]"
            )
    if endpoint:
        config["endpoint"] = str(endpoint)
    if client_kwargs.get("region_name"):
        if not re.fullmatch(r"[a-z0-9-]+", str(client_kwargs["region_name"])):
            raise InputError(f"catalog {url}: region_name {client_kwargs['region_name']!r} is no AWS region")
        config["region"] = str(client_kwargs["region_name"])
    if options.get("key") is not None:
        config["access_key_id"] = str(options["key"])
    if options.get("secret") is not None:
        config["secret_access_key"] = str(options["secret"])
    if options.get("token") is not None:
        config["token"] = str(options["token"])
    if options.get("anon"):
        config["skip_signature"] = True
    provider = None
    _check_some_credentials(options, url)
    # as botocore: keys (options, then the environment) before a profile the
    # environment names; a profile in the options wins
    env_keys = "key" in options or bool(os.environ.get("AWS_ACCESS_KEY_ID"))
    profile = options.get("profile") or (None if env_keys else os.environ.get("AWS_PROFILE"))
    if profile and not options.get("anon"):
        # object_store reads no AWS config files: boto3's chain resolves the profile
        import boto3  # noqa: PLC0415
        from obstore.auth.boto3 import Boto3CredentialProvider  # noqa: PLC0415

        session = boto3.Session(profile_name=str(profile))
        provider = Boto3CredentialProvider(session)
        config.setdefault("region", session.region_name or "us-east-1")
    elif (
        os.environ.get("AWS_PROFILE")
        and "region" not in config
        and not (os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION"))
    ):
        # keys from the environment, the region from the profile's config (as botocore)
        import boto3  # noqa: PLC0415

        region = boto3.Session(profile_name=os.environ["AWS_PROFILE"]).region_name
        if region:
            config["region"] = region
    return config, provider


def _check_some_credentials(options: Mapping[str, Any], url: str) -> None:
    """Raise the no-credentials :class:`InputError` when nothing can give
    credentials: no key or profile in ``options`` or the environment, no web
    identity or container credentials, and the instance metadata switched
    off (``AWS_EC2_METADATA_DISABLED=true``, which botocore honours and
    object_store does not read: it would ask 169.254.169.254 anyway)."""
    if options.get("anon") or options.get("key") or options.get("profile") or os.environ.get("AWS_PROFILE"):
        return
    if any(os.environ.get(name) for name in _CREDENTIAL_ENV):
        return
    if os.environ.get("AWS_EC2_METADATA_DISABLED", "").strip().lower() != "true":
        return  # the instance metadata may answer (EC2, ECS on EC2)
    raise credentials_error(
        f"catalog {url}",
        NoCredentialsFound(
            "no key, profile, web identity or container credentials; instance metadata disabled"
        ),
    )


def _build(bucket: str, options: Mapping[str, Any], url: str) -> Any:
    try:
        from obstore.store import S3Store as ObS3  # noqa: PLC0415
    except ImportError as exc:
        raise StoreError(
            f"{CLIENT_ENV}=obstore is set but obstore is not installed; {_INSTALL_HINT}"
        ) from exc
    config, provider = _config(options, url)
    _USED_IN.add(os.getpid())
    endpoint = str(config.get("endpoint", ""))
    wait = timeouts(options)
    client_options: Any = {
        "connect_timeout": timedelta(seconds=wait["connect_timeout"]),
        # a stall ends after read_timeout s without a byte (as botocore's);
        # the whole request may take long (object_store's default is 30 s
        # in all, too short for a large collection's mirror base)
        "read_timeout": timedelta(seconds=wait["read_timeout"]),
        "timeout": timedelta(minutes=30),
        "allow_http": endpoint.startswith("http://"),
    }
    if provider is not None:
        return ObS3(
            bucket,
            config=config,
            client_options=client_options,
            retry_config=RETRY,
            credential_provider=provider,
        )
    return ObS3(bucket, config=config, client_options=client_options, retry_config=RETRY)


class ObstoreS3Store(S3Store):
    """:class:`producer.store.s3.S3Store` with its requests made by obstore.

    ``ObstoreS3Store("s3://bucket/stac", storage_options)``; the default
    client (s3fs) is built only for a conditional delete, a listing page
    object_store refuses, or a process forked after obstore was used.
    """

    def __init__(self, url: str, storage_options: dict[str, Any] | None = None) -> None:
        options = dict(storage_options or {})
        self.bucket, self.prefix, self.url = parse_s3_url(url)
        self._options = options
        self._fallback: S3Store | None = None
        self._pid = os.getpid()
        if _USED_IN and self._pid not in _USED_IN:
            return  # a fork of a process that used obstore: the default client (see _forked)
        key = client_key("obstore", self.bucket, options)
        try:
            self.ob: Any = _shared.get(key, lambda: _build(self.bucket, options, self.url))
        except ProducerError:
            raise
        except BaseException as exc:  # obstore's own refusal of a value (a Rust panic too)
            if not _translatable(exc):
                raise
            cause = missing_credentials(exc)  # a profile named that does not exist
            if cause is not None:
                raise credentials_error(f"catalog {self.url}", cause) from None
            raise StoreError(
                f"cannot open {self.url}: bad storage_options for obstore ({redact(str(exc))})"
            ) from exc

    def __repr__(self) -> str:
        return f"ObstoreS3Store({self.url!r})"

    @property
    def fs(self) -> Any:
        """The default client's file system (s3fs), for code that needs one."""
        return self._default().fs

    def _forked(self) -> bool:
        """True in a process forked from one that built an obstore client
        (the store made in the parent, or a new one in the child): obstore's
        runtime does not survive a fork (a request there never returns), so
        every request goes through the default client."""
        forked = os.getpid() != self._pid or os.getpid() not in _USED_IN
        if forked and self._fallback is None:
            log.warning(
                "%s: the obstore client cannot be used in a process forked after it was used; "
                "this process uses the default S3 client (start workers with spawn or forkserver)",
                self.url,
            )
        return forked

    def _default(self) -> S3Store:
        if self._fallback is None:
            self._fallback = S3Store(self.url, self._options)
        return self._fallback

    # -- errors ------------------------------------------------------------

    def _translate_ob(self, exc: BaseException, op: str, key: str) -> ProducerError:
        """The package's error for an obstore failure (same cases and words
        as :meth:`S3Store._translate`)."""
        from obstore import exceptions as oex  # noqa: PLC0415

        where = f"{self.url}/{key}" if key else self.url
        text = _scrubbed(str(exc))
        if _INSTANCE_METADATA_RE.search(text):
            # no key, profile, web identity or container credentials: the
            # chain ended at the instance metadata service, which did not answer
            return credentials_error(where, NoCredentialsFound(redact(text.split("\n", 1)[0])))
        found = _CODE_RE.search(text)
        code = found.group(1) if found else ""
        first = redact(text.split("\n", 1)[0])
        if not code and _TIMEOUT_RE.search(text):
            which = "connect" if "connect" in first.lower() else "read"
            return timeout_error(op, where, which, timeouts(self._options)[f"{which}_timeout"])
        if isinstance(exc, (oex.AlreadyExistsError, oex.PreconditionError)) or code in (
            "PreconditionFailed",
            "ConditionalRequestConflict",
        ):
            return PreconditionFailed(f"{key!r} in catalog {self.url} changed or exists")
        if code == "NoSuchBucket":
            return missing_bucket(self.bucket, self.url)
        if isinstance(exc, (FileNotFoundError, oex.NotFoundError)) or code in ("NoSuchKey", "NotFound"):
            return NotFound(f"{key!r} not found in catalog {self.url}")
        if isinstance(
            exc, (oex.PermissionDeniedError, oex.UnauthenticatedError, PermissionError)
        ) or code in (
            "AccessDenied",
            "InvalidAccessKeyId",
            "SignatureDoesNotMatch",
        ):
            return StoreError(
                f"access denied: S3 {op} on {where} ({code or 'denied'}); check the credentials and bucket policy"
            )
        if code == "NotImplemented":
            return StoreError(f"S3 {op} on {where}: the server does not support this request ({first})")
        if _INVALID_PATH in text:
            return InvalidListedKey(
                f"S3 {op} of {where}: an object with a key that is no clean path ({first})"
            )
        if code:
            said = _MESSAGE_RE.search(text)
            return StoreError(
                f"S3 {op} failed for {where}: {code}: {redact(said.group(1)) if said else first}"
                f"{'; retry later' if _SERVER_STATUS_RE.search(text) else ''}"
            )
        if type(exc).__name__ == "PanicException":
            return StoreError(
                f"S3 {op} failed for {where}: the obstore client failed ({first}); check the storage options"
            )
        if _SERVER_STATUS_RE.search(text):  # a 5xx with no body to read a code from (a HEAD)
            return StoreError(f"S3 {op} failed for {where}: {first}; retry later")
        return StoreError(f"S3 {op} failed for {where}: {first}; check the endpoint and network")

    def _run(self, op: str, key: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except (ProducerError, TypeError, ValueError, AttributeError):
            raise
        except BaseException as exc:  # a Rust panic is a BaseException: translated too
            if not _translatable(exc):
                raise
            raise self._translate_ob(exc, op, key) from ObstoreFailure(exc)

    # -- Store protocol ----------------------------------------------------

    def get(self, key: str) -> tuple[bytes, str]:
        """``(bytes, ETag)`` of one GET: body and ETag of the same response."""
        import obstore  # noqa: PLC0415

        if self._forked():
            return self._default().get(key)

        def read() -> tuple[bytes, str]:
            result = obstore.get(self.ob, self._key(key))
            return bytes(result.bytes()), str(result.meta["e_tag"])

        data, etag = self._run("get_object", key, read)
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
        """One PUT of ``data`` (``If-Match`` / ``If-None-Match: *`` when
        asked); the new ETag."""
        import obstore  # noqa: PLC0415

        if if_version is not None and create_only:
            raise InputError("put(): pass either if_version or create_only, not both")
        if self._forked():
            return self._default().put(key, data, if_version=if_version, create_only=create_only)
        mode: Any = (
            "create" if create_only else {"e_tag": if_version} if if_version is not None else "overwrite"
        )
        try:
            result = self._run(
                "put_object", key, obstore.put, self.ob, self._key(key), bytes(data), mode=mode
            )
        except NotFound:
            # If-Match on a key deleted since it was read: S3 answers 404
            raise PreconditionFailed(f"{key!r} in catalog {self.url} was deleted since it was read") from None
        etag = result.get("e_tag")
        if not etag:  # a server that sends no ETag: ask for it
            etag = self._run("head_object", key, obstore.head, self.ob, self._key(key))["e_tag"]
        log.debug(
            "%r put %s (%s): %d bytes, new version %s",
            self,
            key,
            describe_condition(if_version, create_only),
            len(data),
            etag,
        )
        return str(etag)

    def delete(self, key: str, *, if_version: str | None = None) -> None:
        """Delete ``key``: :class:`NotFound` if absent. With ``if_version``
        through the default client (object_store has no conditional delete)."""
        import obstore  # noqa: PLC0415

        if if_version is not None or self._forked():
            self._default().delete(key, if_version=if_version)
            return
        self._run("head_object", key, obstore.head, self.ob, self._key(key))
        self._run("delete_object", key, obstore.delete, self.ob, self._key(key))
        log.debug("%r delete %s", self, key)

    def delete_many(self, keys: Sequence[str]) -> dict[str, str]:
        """Delete ``keys`` (a missing key is fine): DeleteObjects requests of
        up to 1,000 keys. ``{key: reason}`` for those not deleted."""
        import obstore  # noqa: PLC0415

        if self._forked():
            return self._default().delete_many(keys)
        todo = list(dict.fromkeys(keys))
        failed: dict[str, str] = {}
        for start in range(0, len(todo), 1000):
            chunk = todo[start : start + 1000]
            try:
                self._run("delete_objects", "", obstore.delete, self.ob, [self._key(k) for k in chunk])
            except StoreError as exc:
                failed.update(dict.fromkeys(chunk, str(exc)))
        log.debug("%r delete_many: %d key(s), %d failed", self, len(todo), len(failed))
        return failed

    def _listing(self, s3folder: str) -> Iterator[tuple[str, str]]:
        """``(s3 key, ETag)`` of every object below the folder ``s3folder``
        (object_store lists whole path segments: ``a/b`` lists ``a/b/...``)."""
        import obstore  # noqa: PLC0415

        stream = self._run("list_objects_v2", "", obstore.list, self.ob, s3folder.rstrip("/") or None)
        pages = iter(stream)
        while True:
            try:
                batch = next(pages)
            except StopIteration:
                return
            except BaseException as exc:
                if not _translatable(exc):
                    raise
                raise self._translate_ob(exc, "list_objects_v2", "") from ObstoreFailure(exc)
            for meta in batch:
                yield str(meta["path"]), str(meta.get("e_tag") or "")

    def list(self, prefix: str = "") -> Iterator[str]:
        """Document keys under ``prefix`` (recursive); as :meth:`S3Store.list`.
        A listing page holding a key that is no clean path (``a//b``, put
        there by another tool), which object_store refuses whole, is listed
        by the default client, which skips such keys."""
        if self._forked():
            yield from self._default().list(prefix)
            return
        given: set[str] = set()
        try:
            for key in self._list(prefix):
                given.add(key)
                yield key
        except InvalidListedKey:
            yield from (k for k in self._default().list(prefix) if k not in given)

    def _list(self, prefix: str) -> Iterator[str]:
        import obstore  # noqa: PLC0415

        folder_only = prefix.endswith("/")
        prefix = check_prefix(prefix)
        base = f"{self.prefix}/" if self.prefix else ""
        found: Iterator[str] = (k for k, _ in self._listing(f"{base}{prefix}" if prefix else base))
        if prefix and not folder_only:
            exact = f"{base}{prefix}"

            def with_exact() -> Iterator[str]:
                try:
                    self._run("head_object", prefix, obstore.head, self.ob, exact)
                except NotFound:
                    pass
                else:
                    yield exact
                yield from (k for k, _ in self._listing(exact))

            found = with_exact()
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
        """``(key, ETag)`` of the documents below the folder ``prefix``."""
        if not prefix.endswith("/"):
            raise InputError("list_versions(): pass a folder, ending in '/'")
        if self._forked():
            yield from self._default().list_versions(prefix)
            return
        folder = check_prefix(prefix)
        base = f"{self.prefix}/" if self.prefix else ""
        given: set[str] = set()
        try:
            for s3key, etag in self._listing(f"{base}{folder}/"):
                key = s3key[len(base) :]
                if is_listable(key):
                    given.add(key)
                    yield key, etag
        except InvalidListedKey:
            yield from ((k, v) for k, v in self._default().list_versions(prefix) if k not in given)

    def modified(self, key: str) -> datetime | None:
        """The ``last_modified`` of the object at ``key`` (one HEAD); :class:`NotFound` if absent."""
        import obstore  # noqa: PLC0415

        if self._forked():
            return self._default().modified(key)
        stamp = self._run("head_object", key, obstore.head, self.ob, self._key(key)).get("last_modified")
        return stamp if isinstance(stamp, datetime) else None

    def exists(self, key: str) -> bool:
        """True if ``key`` exists (one HEAD)."""
        import obstore  # noqa: PLC0415

        if self._forked():
            return self._default().exists(key)

        try:
            self._run("head_object", key, obstore.head, self.ob, self._key(key))
        except NotFound:
            return False
        return True

"""Object-storage event payloads → records, and the one event handler.

Every trigger (the Lambda entry point, the CLI, the Prefect event flow) calls
:func:`handle` with the payload it received, a ``dict``, and gets a ``dict``
back. Nothing here imports a cloud SDK: payloads are plain JSON, and the work
is delegated to :mod:`producer.api` (imported at the top: every event
registers or removes through it; fsspec is imported with the first
existence check, and removal code with the first removal).

Shapes understood by :func:`parse_event`, nested in any of these ways:

* an S3 event notification (``{"Records": [{"eventSource": "aws:s3", ...}]}``),
  delivered straight to a function;
* an SQS batch (``{"Records": [{"eventSource": "aws:sqs", "body": ...}]}``)
  whose bodies hold an S3 notification, an SNS envelope (SNS → SQS without raw
  delivery) or an EventBridge event (EventBridge → SQS);
* SNS delivered straight to a function (``"EventSource": "aws:sns"``), whose
  ``Sns.Message`` holds an S3 notification;
* an EventBridge event (``"source": "aws.s3"``, ``"detail-type": "Object
  Created" | "Object Deleted"``).

Removals are ``ObjectRemoved:*`` records, ``LifecycleExpiration:Delete`` and
``LifecycleExpiration:DeleteMarkerCreated`` (an S3 Lifecycle rule deleted
the object) and EventBridge ``Object Deleted`` (whatever its ``reason``:
``DeleteObject`` or ``Lifecycle Expiration``).

Object keys arrive URL-encoded the HTML-form way (``"red flower.jpg"`` becomes
``"red+flower.jpg"``, a literal ``+`` becomes ``%2B``); they are decoded with
:func:`urllib.parse.unquote_plus`. The same decoding is applied to EventBridge
keys.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any, Literal, Protocol
from urllib.parse import unquote_plus

from producer import api
from producer.errors import Hint, InputError, ProducerError, Spelling, UnsafeIdError
from producer.extract.ids import check_id
from producer.grouping import Grouping
from producer.options import RegisterOptions, env_phrased, env_spelling, resolve_options
from producer.redact import redact
from producer.results import Action, ErrorKind, Result, error_type_of
from producer.sources import (
    PRODUCT_SUFFIXES,
    STORE_SUFFIXES,
    ZARR_STORE_METADATA,
    is_gdal_sidecar,
    is_wrf_output,
    zarr_store_of,
)
from producer.store.open import refuse_credentials, refuse_merged_url
from producer.urls import (
    check_endpoint_environment,
    check_s3_options,
    pathlib_merged_url,
    product_storage_options,
    protocol,
)


class _Fail(Protocol):
    def __call__(
        self, error: str, *, url: str | None = None, message_id: str | None = None, kind: str | None = None
    ) -> None: ...


__all__ = [
    "ObjectEvent",
    "HandlerConfig",
    "parse_event",
    "handle",
    "DEFAULT_SUFFIXES",
]

log = logging.getLogger(__name__)

EventKind = Literal["created", "removed"]

#: product file endings registered when no ``suffixes`` are configured
DEFAULT_SUFFIXES: tuple[str, ...] = PRODUCT_SUFFIXES  # the one list, shared with folder expansion

# Envelopes can nest (SQS → SNS → S3); real payloads are at most 3 deep.
_MAX_DEPTH = 6

_EVENTBRIDGE_KINDS: dict[str, EventKind] = {
    "Object Created": "created",
    "Object Deleted": "removed",
}


@dataclass(frozen=True)
class ObjectEvent:
    """One object created in or removed from a bucket.

    ``key`` is already URL-decoded (the real object key). ``message_id`` is the
    SQS ``messageId`` the record arrived in, or ``None`` when the payload did
    not come through SQS; it is what a partial batch failure reports.
    """

    kind: EventKind
    bucket: str
    key: str
    message_id: str | None = None
    size: int | None = None
    etag: str | None = None

    @property
    def url(self) -> str:
        """The object's URL, ``s3://bucket/key``."""
        return f"s3://{self.bucket}/{self.key}"


class _Malformed(Exception):
    """A record that cannot be understood; becomes an entry in the failures."""


# --------------------------------------------------------------------------
# parsing
# --------------------------------------------------------------------------


def parse_event(payload: Mapping[str, Any]) -> tuple[list[ObjectEvent], list[dict[str, Any]]]:
    """Turn any supported payload into object events and per-record failures.

    Returns ``(events, failures)``. ``events`` keeps payload order. Each
    failure is ``{"message_id": str | None, "error": str}`` and stands for one
    record (an SQS message, an SNS record, an S3 record) that could not be
    understood; the other records are still returned. Test events
    (``s3:TestEvent``) and event types other than object created/removed are
    ignored: they produce neither an event nor a failure. Nothing is mutated.
    """
    events: list[ObjectEvent] = []
    failures: list[dict[str, Any]] = []
    if not isinstance(payload, Mapping):
        failures.append(
            {
                "message_id": None,
                "error": f"event payload must be a JSON object, got {type(payload).__name__}",
            }
        )
        return events, failures
    _walk(payload, None, 0, events, failures)
    return events, failures


def _walk(
    doc: Any,
    message_id: str | None,
    depth: int,
    events: list[ObjectEvent],
    failures: list[dict[str, Any]],
) -> None:
    """Parse one document (a payload or an unwrapped message) into ``events``.

    Errors in a record are appended to ``failures`` under the record's SQS
    ``message_id`` (inherited from the enclosing SQS record, if any).
    """
    try:
        if depth > _MAX_DEPTH:
            raise _Malformed("envelopes nested too deep")
        if not isinstance(doc, Mapping):
            raise _Malformed(f"expected a JSON object, got {type(doc).__name__}")

        if "Records" in doc:
            records = doc["Records"]
            if not isinstance(records, list):
                raise _Malformed("'Records' is not a list")
            for record in records:
                _record(record, message_id, depth, events, failures)
            return
        if doc.get("Event") == "s3:TestEvent":  # sent once when notifications are configured
            return
        if "detail-type" in doc and "detail" in doc:
            event = _eventbridge(doc, message_id)
            if event is not None:
                events.append(event)
            return
        if doc.get("Type") == "Notification" and "Message" in doc:  # SNS envelope inside SQS
            _walk(_loads(doc["Message"], "SNS Message"), message_id, depth + 1, events, failures)
            return
        if (doc.get("type") == "Feature" and "stac_version" in doc) or (
            doc.get("stub") is True and "collection" in doc and "href" in doc
        ):  # an item (or its stub) as the change notifications carry it: the change topic loops back
            raise _Malformed(
                "a STAC item change notification (what stac-producer publishes to its change topic), not "
                "an S3 event: the change topic is subscribed to the event queue; unsubscribe the queue from it"
            )
        if doc.get("Type") in ("SubscriptionConfirmation", "UnsubscribeConfirmation"):
            # a topic of another account subscribed to the queue: fail it, so that it is seen
            # (dead-letter queue); its link holds the token, so it is not repeated here
            raise _Malformed(
                f"an SNS {doc['Type']} of the topic {str(doc.get('TopicArn'))!r}, not an event: confirm "
                "the queue's subscription (aws sns confirm-subscription --topic-arn ... --token ..., "
                "the token is in the message), then delete this message"
            )
        raise _Malformed(
            f"unrecognised payload (keys: {sorted(map(str, doc))[:8]}): expected an S3 event "
            "notification (Records), or one inside an SQS message, an SNS notification or an "
            "EventBridge event"
        )
    except _Malformed as exc:
        failures.append({"message_id": message_id, "error": str(exc)})


def _record(
    record: Any,
    message_id: str | None,
    depth: int,
    events: list[ObjectEvent],
    failures: list[dict[str, Any]],
) -> None:
    """Parse one element of a ``Records`` list (SQS, SNS or S3)."""
    try:
        if not isinstance(record, Mapping):
            raise _Malformed(f"record is not a JSON object but {type(record).__name__}")
        source = record.get("eventSource") or record.get("EventSource")
        if source == "aws:sqs" or ("messageId" in record and "body" in record):
            sqs_id = record.get("messageId")
            if not isinstance(sqs_id, str) or not sqs_id:
                raise _Malformed("SQS record without a messageId")
            message_id = sqs_id  # from here on failures are charged to this message
            if "body" not in record:
                raise _Malformed("SQS record without a body")
            _walk(_loads(record["body"], "SQS body"), message_id, depth + 1, events, failures)
        elif source == "aws:sns" or "Sns" in record:
            sns = record.get("Sns")
            if not isinstance(sns, Mapping) or "Message" not in sns:
                raise _Malformed("SNS record without Sns.Message")
            _walk(_loads(sns["Message"], "SNS Message"), message_id, depth + 1, events, failures)
        elif "s3" in record:  # aws:s3, and S3-compatible stores (minio:s3, ceph:s3)
            event = _s3_record(record, message_id)
            if event is not None:
                events.append(event)
        else:
            raise _Malformed(f"unrecognised record (eventSource={source!r})")
    except _Malformed as exc:
        failures.append({"message_id": message_id, "error": str(exc)})


def _s3_record(record: Mapping[str, Any], message_id: str | None) -> ObjectEvent | None:
    """One S3 notification record → an event, or ``None`` for other event types."""
    name = record.get("eventName")
    if not isinstance(name, str):
        raise _Malformed("S3 record without an eventName")
    name = name.removeprefix("s3:")  # S3-compatible stores spell it "s3:ObjectCreated:Put"
    if name.startswith("ObjectCreated:"):
        kind: EventKind = "created"
    elif name.startswith(("ObjectRemoved:", "LifecycleExpiration:")):
        # LifecycleExpiration:Delete / :DeleteMarkerCreated: an S3 Lifecycle rule deleted it
        kind = "removed"
    else:
        return None  # restore, replication, lifecycle transition, tagging, ACL ...
    s3 = record["s3"]
    if not isinstance(s3, Mapping):
        raise _Malformed("S3 record whose 's3' is not an object")
    bucket = _str_at(s3, ("bucket", "name"), "s3.bucket.name")
    raw_key = _str_at(s3, ("object", "key"), "s3.object.key")
    obj = s3.get("object")
    assert isinstance(obj, Mapping)  # _str_at found the key in it
    return ObjectEvent(
        kind=kind,
        bucket=bucket,
        key=_decode_key(raw_key),
        message_id=message_id,
        size=_opt_int(obj.get("size")),
        etag=_opt_str(obj.get("eTag")),
    )


def _eventbridge(doc: Mapping[str, Any], message_id: str | None) -> ObjectEvent | None:
    """One EventBridge event → an event, or ``None`` for other S3 event types."""
    if doc.get("source") != "aws.s3":
        raise _Malformed(f"EventBridge event from {doc.get('source')!r}, expected 'aws.s3'")
    kind = _EVENTBRIDGE_KINDS.get(str(doc.get("detail-type")))
    if kind is None:
        return None  # "Object Restore Completed", "Object Tags Added", ...
    detail = doc["detail"]
    if not isinstance(detail, Mapping):
        raise _Malformed("EventBridge 'detail' is not an object")
    bucket = _str_at(detail, ("bucket", "name"), "detail.bucket.name")
    raw_key = _str_at(detail, ("object", "key"), "detail.object.key")
    obj = detail.get("object")
    assert isinstance(obj, Mapping)  # _str_at found the key in it
    return ObjectEvent(
        kind=kind,
        bucket=bucket,
        key=_decode_key(raw_key),
        message_id=message_id,
        size=_opt_int(obj.get("size")),
        etag=_opt_str(obj.get("etag")),
    )


def _loads(text: Any, what: str) -> Any:
    """Decode an embedded JSON string (an SQS body, an SNS message)."""
    if isinstance(text, Mapping):  # already decoded by a caller or a test harness
        return text
    if not isinstance(text, (str, bytes, bytearray)):
        raise _Malformed(f"{what} is {type(text).__name__}, expected a JSON string")
    snippet = text[:60] if isinstance(text, str) else repr(bytes(text[:60]))
    try:
        return json.loads(text)
    except UnicodeDecodeError as exc:  # bytes that are not UTF-8 (a ValueError without .msg)
        raise _Malformed(f"{what} is not UTF-8 text (byte {exc.start}: {exc.reason}): {snippet}") from None
    except json.JSONDecodeError as exc:
        raise _Malformed(f"{what} is not JSON ({exc.msg} at char {exc.pos}): {snippet!r}") from None
    except ValueError as exc:  # any other decoding failure is still this record's alone
        raise _Malformed(f"{what} is not JSON ({exc}): {snippet!r}") from None
    except RecursionError:  # arrays/objects nested deeper than the decoder goes: this record's alone too
        raise _Malformed(f"{what} is not usable JSON (nested too deeply to decode): {snippet!r}") from None


def _str_at(doc: Mapping[str, Any], path: tuple[str, str], label: str) -> str:
    """``doc[path[0]][path[1]]`` as a non-empty string, or :class:`_Malformed`."""
    outer = doc.get(path[0])
    value = outer.get(path[1]) if isinstance(outer, Mapping) else None
    if not isinstance(value, str) or not value:
        raise _Malformed(f"missing {label}")
    return value


def _decode_key(raw: str) -> str:
    """Undo S3's form-style URL encoding of an object key.

    Object keys are UTF-8: a key whose escapes decode to other bytes, or
    that holds lone surrogates (``"\\udcff"`` in the JSON), makes its record
    malformed here, so it fails alone instead of failing later, inside a
    registration shared with the other records of the batch.
    """
    try:
        key = unquote_plus(raw, errors="strict")
        key.encode("utf-8")
    except UnicodeError:
        raise _Malformed(f"object key {raw!r} is not valid UTF-8") from None
    if not key:
        raise _Malformed("empty object key")
    return key


def _opt_int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _opt_str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


# --------------------------------------------------------------------------
# configuration
# --------------------------------------------------------------------------


#: the fixes of an empty catalog or collection, spelled by each caller
CATALOG_HINT = Hint("catalog", "s3://bucket/stac", "the catalog root the items are written to")
COLLECTION_HINT = Hint("collection", "ndvi", "the collection the objects are registered into")


@dataclass(frozen=True, init=False)
class HandlerConfig:
    """What :func:`handle` registers into, and which objects it accepts.

    ``prefixes``: an object is handled only if its key starts with one of them
    (none configured: every key). A prefix written as a URL (``s3://bucket/p/``)
    is matched against the object URL instead, which also pins the bucket.
    ``suffixes``: case-insensitive file endings; empty (or holding ``*``)
    accepts every key.
    ``options``: the :class:`~producer.options.RegisterOptions` of every
    registration, built like :func:`producer.register` builds its own:
    ``options`` with keyword ``overrides`` by field name on top, and
    ``storage_options`` as the shorthand for the data and the catalog storage
    options (the data's also serve to check whether an object still exists).
    """

    catalog: str
    collection: str
    prefixes: tuple[str, ...]
    suffixes: tuple[str, ...]
    options: RegisterOptions

    def __init__(
        self,
        catalog: str,
        collection: str,
        prefixes: str | Iterable[str] = (),
        suffixes: str | Iterable[str] = DEFAULT_SUFFIXES,
        options: RegisterOptions | None = None,
        storage_options: Mapping[str, Any] | None = None,
        **overrides: Any,
    ) -> None:
        # hints, not field names: the CLI says --collection, the Lambda STAC_COLLECTION
        if not catalog:
            raise InputError("the catalog URL is empty", hints=(CATALOG_HINT,))
        if not collection:
            raise InputError("the collection id is empty", hints=(COLLECTION_HINT,))
        try:  # at start-up: else every object of every event fails with it
            check_id(collection, what="collection id")
        except UnsafeIdError as exc:
            raise UnsafeIdError(exc.fact, hints=(COLLECTION_HINT,)) from None
        refuse_credentials(catalog)  # at start-up, not in each event's failure (nor its logs)
        try:
            refuse_merged_url(catalog)
        except InputError as exc:
            meant = pathlib_merged_url(catalog.strip())
            raise InputError(exc.fact, hints=(Hint("catalog", meant, "the URL meant"),)) from None
        _check_scheme(catalog)
        object.__setattr__(self, "catalog", catalog)
        object.__setattr__(self, "collection", collection)
        # accept lists (or a lone string) from callers; keep the frozen value a tuple
        object.__setattr__(self, "prefixes", _as_tuple(prefixes))
        _refuse_rooted_prefixes(self.prefixes)
        _refuse_prefixes_inside(self.prefixes, catalog)
        endings = tuple(s.lower() for s in _as_tuple(suffixes))
        # "*": every ending, as STAC_SUFFIXES=* (else no key ends with "*": all skipped)
        object.__setattr__(self, "suffixes", () if "*" in endings else endings)
        resolved = resolve_options(options, storage_options, **overrides)
        # at start-up too: else every creation fails with it, and a removal raises out of the batch
        Grouping.from_options(resolved.group, resolved.asset_key, resolved.id_template)
        if resolved.sns_topic:
            from producer.sinks.notify import check_topic  # noqa: PLC0415 (as api: only with a topic)

            check_topic(resolved.sns_topic)
        if resolved.pgstac:
            _check_pgstac(resolved.pgstac)
        object.__setattr__(self, "options", resolved)
        # at start-up, not in each event's failure: the products of S3 events are on S3
        check_endpoint_environment(self.options.data_storage_options, "the products of S3 events")
        # s3fs's client options: else every record fails with a raw TypeError (or retries a bad timeout)
        data, cat = self.options.data_storage_options, self.options.catalog_storage_options
        shared = data == cat
        check_s3_options(
            data, "the products of S3 events", "storage_options" if shared else "data_storage_options"
        )
        if protocol(catalog) in ("s3", "s3a"):
            check_s3_options(
                cat, f"catalog {redact(catalog)}", "storage_options" if shared else "catalog_storage_options"
            )

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> HandlerConfig:
        """Build a config from environment variables (``os.environ`` by default).

        Required: ``STAC_CATALOG``, ``STAC_COLLECTION``. Optional:
        ``STAC_PREFIXES`` and ``STAC_SUFFIXES`` (comma-separated; ``*`` as
        suffixes accepts every file ending), ``STAC_STORAGE_OPTIONS`` (a JSON
        object, for the data and the catalog), and one variable per
        :class:`~producer.options.RegisterOptions` field, named in its
        metadata (``STAC_ID_TEMPLATE``, ``STAC_DATETIME_PATTERN``,
        ``STAC_COLLECTION_META``, ``STAC_DATA_STORAGE_OPTIONS``, ...). S3
        endpoint and credentials are otherwise left to s3fs/botocore
        (``AWS_ENDPOINT_URL``, the Lambda role). Raises
        :class:`~producer.errors.InputError` naming a missing or bad variable.
        """
        env = os.environ if environ is None else environ

        def required(name: str) -> str:
            value = (env.get(name) or "").strip()
            if not value:
                raise InputError(f"environment variable {name} is not set; set it for the event handler")
            return value

        catalog = required("STAC_CATALOG")
        collection = required("STAC_COLLECTION")
        if (env.get("STAC_PGSTAC_DSN") or "").strip():
            try:
                import producer.sinks.pgstac  # noqa: F401, PLC0415 (the optional [pgstac] extra)
            except ImportError:  # else every record fails with it (the Lambda image has [s3] only)
                raise InputError(
                    "environment variable STAC_PGSTAC_DSN is set, but the pgSTAC sink is not installed: "
                    "pip install 'stac-producer[pgstac]' (in deploy/Dockerfile: .[s3,pgstac]), or unset it"
                ) from None
        suffixes_raw = (env.get("STAC_SUFFIXES") or "").strip()
        if suffixes_raw == "*":
            suffixes: tuple[str, ...] = ()
        elif suffixes_raw:
            suffixes = _split_csv(suffixes_raw)
        else:
            suffixes = DEFAULT_SUFFIXES
        try:
            return cls(
                catalog=catalog,
                collection=collection,
                prefixes=_split_csv(env.get("STAC_PREFIXES") or ""),
                suffixes=suffixes,
                options=RegisterOptions.from_env(env),
                storage_options=_json_object(env, "STAC_STORAGE_OPTIONS"),
            )
        except InputError as exc:  # its fix spelled as the variables to set (STAC_STORAGE_OPTIONS='{...}')
            raise env_phrased(exc) from None


#: why an object inside the catalog is skipped, and what to change
_INSIDE_CATALOG = (
    "objects there are never registered, so that the catalog's own writes cannot trigger "
    "registrations; keep the products outside the catalog root (a catalog folder beside them, "
    "e.g. s3://bucket/stac for s3://bucket/products/)"
)


#: endings of what a catalog writes itself (documents, thumbnails, its search
#: mirror): skipped inside it without a warning, even when configured as
#: product endings (a group's side-cars)
_CATALOG_WRITES = (".json", ".png", ".parquet", ".ndjson")


def _refuse_rooted_prefixes(prefixes: tuple[str, ...]) -> None:
    """Refuse a key prefix written as a path (``/products/``), at start-up: an
    S3 key never starts with ``/``, so it matched no object and every record
    was skipped. Refused rather than read without the slash: the handler
    then matches what was configured, and the setting is fixed where it is
    written (the same prefix may serve other tools)."""
    for prefix in prefixes:
        if prefix.startswith("/"):
            meant = prefix.lstrip("/")
            fix = f"write it {meant!r}" if meant else "leave it out to accept every key"
            raise InputError(
                f"the prefix {prefix!r} starts with '/', but object keys never do "
                f"(s3://bucket/products/x.tif has the key 'products/x.tif'), so it would match no "
                f"object and every record would be skipped: {fix}"
            )


def _refuse_prefixes_inside(prefixes: tuple[str, ...], catalog: str) -> None:
    """Refuse a URL prefix inside the catalog (at start-up): every object it
    accepts would be skipped as the catalog's own, each message acknowledged,
    nothing registered and nothing failed."""
    for prefix in prefixes:
        if not prefix.startswith("s3://"):
            continue  # a key prefix matches objects of every bucket: some may lie outside the catalog
        if _inside(prefix.rstrip("/"), catalog):
            beside = _catalog_beside(prefix)
            raise InputError(
                f"the prefix {prefix} lies inside the catalog {redact(catalog)}: objects there are never "
                "registered, so that the catalog's own writes cannot trigger registrations, and nothing "
                "under this prefix ever would be. The catalog must not contain the products: keep the "
                "products under a prefix outside the catalog root, or write the catalog "
                + ("to a folder beside them" if beside else "to another bucket"),
                hints=(Hint("catalog", beside or "s3://OTHER-BUCKET/stac", "a catalog beside the products"),),
            )


def _catalog_beside(prefix: str) -> str | None:
    """A catalog URL next to the products under ``prefix`` (``s3://b/p/`` →
    ``s3://b/stac``), neither holding them nor inside them; ``None`` for a
    prefix that names a whole bucket (no folder there is beside it)."""
    bucket, _, key = prefix[len("s3://") :].strip("/").partition("/")
    if not key:
        return None
    parent = f"s3://{bucket}/{key.rpartition('/')[0]}".rstrip("/")
    for name in ("stac", "stac-catalog", "catalog"):
        beside = f"{parent}/{name}"
        if not beside.startswith(f"s3://{bucket}/{key}"):  # its objects would match the prefix
            return beside
    return None


def _check_scheme(catalog: str) -> None:
    """Refuse a catalog URL whose scheme no installed file system serves
    (``s4://``), or that is read-only (http/https): at start-up, else every
    record fails with it."""
    scheme = catalog.split("://", 1)[0].lower() if "://" in catalog else ""
    if scheme in ("", "s3", "s3a", "file"):  # the common ones: no fsspec import at start-up
        return
    if scheme in ("http", "https"):  # read-only: every registration and removal would fail alike
        raise InputError(
            f"catalog {redact(catalog)} is read over http(s), which is read-only, and the event handler "
            "writes to it: give the catalog's storage URL (s3://...) instead",
            hints=(CATALOG_HINT,),
        )
    import fsspec  # noqa: PLC0415 (see the module doc)

    try:
        fsspec.get_filesystem_class(scheme)
    except ImportError as exc:  # a known scheme whose package is missing: install it
        raise InputError(f"cannot open catalog {catalog!r}: {exc}") from None
    except ValueError as exc:
        raise InputError(
            f"cannot open catalog {catalog!r}: {exc}; is the URL scheme right?", hints=(CATALOG_HINT,)
        ) from None


#: the fix of a DSN that is no connection string (no password: a flow may take it too)
PGSTAC_HINT = Hint("pgstac", "postgresql://HOST:5432/DBNAME", "the pgSTAC database that follows the catalog")


def _check_pgstac(dsn: str) -> None:
    """Refuse a pgSTAC DSN that is no connection string at start-up (else
    every record fails with it); never echoes it. Connects to nothing."""
    try:
        from producer.sinks.pgstac import PgstacSink  # noqa: PLC0415 (the optional [pgstac] extra)
    except ImportError:
        return  # without the extra: the first registration says what to install
    try:
        PgstacSink(dsn)  # parses the DSN (host:port/dbname), without connecting
    except InputError as exc:
        raise InputError(exc.fact, hints=(PGSTAC_HINT,)) from None


def _as_tuple(value: str | Iterable[str] | None) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,) if value else ()
    return tuple(v for v in value if v)


def _split_csv(text: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in text.split(",") if part.strip())


def _json_object(env: Mapping[str, str], name: str) -> dict[str, Any] | None:
    text = (env.get(name) or "").strip()
    if not text:
        return None
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise InputError(
            f"environment variable {name} is not valid JSON ({exc}); give a JSON object"
        ) from None
    if not isinstance(value, dict):
        raise InputError(f"environment variable {name} must be a JSON object, got {type(value).__name__}")
    return value


# --------------------------------------------------------------------------
# the handler
# --------------------------------------------------------------------------


def handle(
    payload: Mapping[str, Any], config: HandlerConfig, *, spell: Spelling = env_spelling
) -> dict[str, Any]:
    """Register created objects and remove deleted ones; report per record.

    ``payload`` is any shape :func:`parse_event` understands. Records pass
    through three filters, in order: inside the catalog itself (never
    registered, so the catalog's own writes cannot loop), key prefixes, file
    suffixes. Created objects go to :func:`producer.api.register` (consecutive
    creations in one call, so parents are updated once per batch), removed
    ones to :func:`producer.api.remove` under the id
    :func:`producer.api.item_id_for` gives them. Several records of one
    object are handled once, as the last of them says (see
    :func:`_last_per_object`); records of different objects keep their order.

    Notifications arrive at least once and in no guaranteed order, so each
    record is checked against the object as it is now, not as the event
    says: a creation whose object is already gone again (deleted since) and
    a removal whose object exists again (re-created since; its own creation
    event registers it) are skipped, with the reason, rather than failed or
    applied. Such records would otherwise fail on every redelivery, or
    remove the item of a product that exists. The object is checked once
    more after its item was written or removed, for a change while the
    record was handled (see :func:`_recheck_registered`, :func:`_remove_one`).

    Writes to the catalog (through the api); mutates nothing it was given.
    Returns::

        {"registered": [RegisterResult.to_dict(), ...],
         "removed": [RemoveResult.to_dict(), ...],  # "source": the deleted object
         "skipped": [{"url", "reason"}, ...],
         "failed": [{"url" and/or "message_id", "error", "error_type"}, ...],
         "batchItemFailures": [{"itemIdentifier": sqs_message_id}, ...]}

    plus ``"dry_run": True`` when the options ask for a dry run: nothing was
    written, and the registered entries say what a real run would have done.

    Errors phrase their hints with ``spell``: by default as the handler's
    environment variables (``STAC_ID_TEMPLATE='{parent}_{stem}'``); the CLI
    passes its flags.

    ``batchItemFailures`` (Lambda's ``ReportBatchItemFailures`` contract)
    lists, once each, the SQS messages holding a malformed record or a record
    whose registration/removal failed, so SQS redelivers only those. Each
    failure's ``error_type`` is ``storage`` (the store failed or its
    compare-and-swap gave up: handling the record again may succeed),
    ``input`` (the record or its object is bad) or ``internal``.
    """
    events, parse_failures = parse_event(payload)
    out: dict[str, Any] = {
        "registered": [],
        "removed": [],
        "skipped": [],
        "failed": [],
        "batchItemFailures": [],
    }
    if config.options.dry_run:
        out["dry_run"] = True
    failed_messages: list[str] = []

    def fail(
        error: str, *, url: str | None = None, message_id: str | None = None, kind: str | None = None
    ) -> None:
        entry: dict[str, Any] = {}
        if url is not None:
            entry["url"] = url
        entry["message_id"] = message_id
        entry["error"] = error
        entry["error_type"] = ErrorKind(kind) if kind is not None else ErrorKind.INTERNAL
        out["failed"].append(entry)
        if message_id is not None and message_id not in failed_messages:
            failed_messages.append(message_id)

    for failure in parse_failures:
        log.warning("malformed event record (message %s): %s", failure["message_id"], failure["error"])
        fail(failure["error"], message_id=failure["message_id"], kind=ErrorKind.INPUT)

    accepted: list[ObjectEvent] = []
    for event in events:
        event, reason = _zarr_event(event)  # a Zarr store: registered by its root metadata only
        reason = reason or _skip_reason(event, config)
        if reason is None:
            accepted.append(event)
        else:
            out["skipped"].append({"url": event.url, "reason": reason})

    winners, superseded = _last_per_object(accepted)
    for event in accepted:
        if winners[event.url] is not event and event.kind != winners[event.url].kind:
            out["skipped"].append(
                {
                    "url": event.url,
                    "reason": f"a later record in this batch {_KIND_WORDS[winners[event.url].kind]} the same "
                    "object; that one is handled",
                }
            )
    for kind, run in _runs([e for e in accepted if winners[e.url] is e]):
        if kind == "created":
            _register_run(run, config, out, fail, spell, superseded)
        else:
            for event in run:
                _remove_one(event, config, out, fail, spell, superseded.get(event.url, ()))

    out["batchItemFailures"] = [{"itemIdentifier": mid} for mid in failed_messages]
    return out


def _zarr_event(event: ObjectEvent) -> tuple[ObjectEvent, str | None]:
    """An object inside a ``.zarr`` store: its root metadata object stands
    for the whole store (the event is returned for the store's prefix);
    any other object of the store (chunks, array metadata) is skipped.

    A creation counts at ``zarr.json`` or ``.zmetadata`` (written last by a
    consolidated write); a removal at any of :data:`ZARR_STORE_METADATA`
    (``.zgroup`` too, so an unconsolidated v2 store's deletion is seen), and
    :func:`_remove_one` then asks whether any of them is left."""
    found = zarr_store_of(event.key)
    if found is None:
        return event, None
    store, is_root = found
    if is_root or (event.kind == "removed" and event.key[len(store) + 1 :] in ZARR_STORE_METADATA):
        return replace(event, key=store, size=None, etag=None), None
    if event.key[len(store) + 1 :] == ".zgroup":  # a v2 store's own metadata: say when it registers
        return event, (
            f"the group metadata of the Zarr v2 store s3://{event.bucket}/{store}: a v2 store is registered "
            "when its consolidated metadata (.zmetadata) is written, so one written without it is never "
            "registered by an event; write it consolidated (xarray to_zarr(consolidated=True), or "
            "zarr.consolidate_metadata) or register the store itself"
        )
    return event, f"part of the Zarr store s3://{event.bucket}/{store} (registered by its root metadata)"


def _skip_reason(event: ObjectEvent, config: HandlerConfig) -> str | None:
    """Why ``event`` is not handled under ``config``, or ``None`` to handle it."""
    if event.key.endswith("/"):  # the console's "Create folder": a zero-byte key, not a product
        return "folder marker (a key ending in '/'), not a product"
    if is_gdal_sidecar(event.key):  # as folder expansion: never an .xml metadata asset, nor a product
        return (
            "GDAL's own side-car of a raster (.aux.xml: its cached statistics; .ovr: its overviews; "
            ".msk: its mask), not a product"
        )
    if _inside(event.url, config.catalog):
        if not _has_product_ending(event.key, config.suffixes) or event.key.lower().endswith(_CATALOG_WRITES):
            return f"inside the catalog {config.catalog}"  # one of its own files
        # a product there: logged, as it will never be registered where it is
        log.warning("%s: inside the catalog %s: %s", event.url, redact(config.catalog), _INSIDE_CATALOG)
        return f"inside the catalog {config.catalog}: {_INSIDE_CATALOG}"
    if config.prefixes and not any(_under_prefix(event, p) for p in config.prefixes):
        return f"key does not start with any of the prefixes {list(config.prefixes)}"
    if config.suffixes and not _has_product_ending(event.key, config.suffixes):
        return f"file ending not one of {list(config.suffixes)}"
    return None


def _has_product_ending(key: str, suffixes: tuple[str, ...]) -> bool:
    """Whether ``key`` ends as a product the handler takes (every key when no
    ``suffixes`` are configured: then the catalog's own files too)."""
    endings = suffixes or DEFAULT_SUFFIXES
    return key.lower().endswith(endings + STORE_SUFFIXES) or is_wrf_output(key, endings)


def _under_prefix(event: ObjectEvent, prefix: str) -> bool:
    """Whether ``event``'s object lies under ``prefix``: a key prefix, or a
    URL (``s3://bucket/p``) matched against the object URL. A URL with no
    key part names the whole bucket: ``s3://data`` is ``s3://data/``, so it
    does not also accept the buckets ``data-archive`` or ``data2``."""
    if not prefix.startswith("s3://"):
        return event.key.startswith(prefix)
    if "/" not in prefix[len("s3://") :]:
        prefix += "/"
    return event.url.startswith(prefix)


def _catalog_root(catalog: str) -> str | None:
    """The catalog URL in the spelling object URLs use, or ``None`` for a
    local catalog. Empty path segments are dropped (``s3://b//stac/`` is
    ``s3://b/stac``, where the store writes), ``s3a`` is ``s3``, and a
    trailing ``/catalog.json`` names its folder."""
    root = catalog.strip()
    if "://" not in root:
        return None  # a local catalog cannot contain s3:// objects
    scheme, rest = root.split("://", 1)
    scheme = scheme.lower()
    if scheme == "s3a":  # both name the same bucket
        scheme = "s3"
    segments = [seg for seg in rest.split("/") if seg]
    if len(segments) > 1 and segments[-1] == "catalog.json":
        segments.pop()
    return f"{scheme}://{'/'.join(segments)}"


def _inside(url: str, catalog: str) -> bool:
    """True when ``url`` is the catalog root or below it (same scheme and bucket),
    however the catalog URL is spelled (see :func:`_catalog_root`)."""
    root = _catalog_root(catalog)
    if root is None:
        return False
    return url == root or url.startswith(root + "/")


#: how a skipped record names the kind of the later record handled instead
_KIND_WORDS: dict[EventKind, str] = {"created": "creates", "removed": "removes"}


def _last_per_object(
    events: list[ObjectEvent],
) -> tuple[dict[str, ObjectEvent], dict[str, tuple[ObjectEvent, ...]]]:
    """The last record of each object in ``events`` (by URL: the one handled,
    as notifications of one object are delivered at least once and the
    object is checked as it is now), and the earlier records of each object
    it stands for: their messages fail with it, and a removal among them
    removes the item when the last record, a creation, finds the object
    gone (records of one batch are not in time order)."""
    winners: dict[str, ObjectEvent] = {}
    earlier: dict[str, list[ObjectEvent]] = {}
    for event in events:
        previous = winners.get(event.url)
        if previous is not None:
            earlier.setdefault(event.url, []).append(previous)
        winners[event.url] = event
    return winners, {url: tuple(evs) for url, evs in earlier.items()}


def _runs(events: list[ObjectEvent]) -> list[tuple[EventKind, list[ObjectEvent]]]:
    """Split ``events`` into maximal consecutive runs of the same kind."""
    runs: list[tuple[EventKind, list[ObjectEvent]]] = []
    for event in events:
        if runs and runs[-1][0] == event.kind:
            runs[-1][1].append(event)
        else:
            runs.append((event.kind, [event]))
    return runs


def _register_run(
    run: list[ObjectEvent],
    config: HandlerConfig,
    out: dict[str, Any],
    fail: _Fail,
    spell: Spelling,
    superseded: Mapping[str, tuple[ObjectEvent, ...]] | None = None,
) -> None:
    """Register one run of created objects with a single api call, then
    check each registered object again (:func:`_recheck_registered`).
    ``superseded``: per object, the earlier records of the batch its
    creation stands for (see :func:`_last_per_object`)."""
    superseded = superseded or {}
    by_url: dict[str, list[ObjectEvent]] = {}
    for event in run:  # the same object twice (at-least-once delivery): register once
        by_url.setdefault(event.url, []).append(event)
    for url, evs in by_url.items():
        evs[:0] = superseded.get(url, ())
    urls = list(by_url)
    try:
        results: list[Result] = api.register(  # one object each: a key holding * ? [ is no pattern
            urls, catalog=config.catalog, collection=config.collection, options=config.options, expand=False
        )
    except Exception as exc:
        _log_failure(exc, "register failed for %d object(s)", len(urls))
        for url, evs in by_url.items():
            for mid in _message_ids(evs):
                fail(_describe(exc, spell), url=url, message_id=mid, kind=error_type_of(exc))
        return

    seen: set[str] = set()
    changed: list[str] = []  # overwritten while registered: registered again below
    for result in results:
        source = str(result.source)
        evs = by_url.get(source, [])
        seen.add(source)
        if result.ok:
            entry = result.to_dict(spell)
            out["registered"].append(entry)
            wrote = result.action in (Action.CREATED, Action.UPDATED) and not config.options.dry_run
            if wrote and _recheck_registered(source, entry, evs, config, out, fail, spell):
                changed.append(source)
        elif _object_exists(source, config.options.data_storage_options) is False:
            log.info("%s: gone since its creation event; nothing to register", source)
            out["skipped"].append(
                {
                    "url": source,
                    "reason": "the object no longer exists (deleted after "
                    "this creation event); nothing to register",
                }
            )
            removal = next((e for e in reversed(evs) if e.kind == "removed"), None)
            if removal is not None:  # its removal record, listed earlier in the batch, is done now
                _remove_one(removal, config, out, fail, spell, tuple(e for e in evs if e is not removal))
        else:
            error = result.error_for(spell) or "registration failed"
            log.warning("registering %s failed: %s", source, error)
            for mid in _message_ids(evs) or [None]:
                fail(error, url=source, message_id=mid, kind=result.error_type)
    for url, evs in by_url.items():
        if url not in seen:
            for mid in _message_ids(evs) or [None]:
                fail("producer.api.register returned no result for this object", url=url, message_id=mid)
    for url in changed:
        _register_again(url, by_url[url], config, fail, spell)


def _recheck_registered(
    url: str,
    entry: dict[str, Any],
    events: list[ObjectEvent],
    config: HandlerConfig,
    out: dict[str, Any],
    fail: _Fail,
    spell: Spelling,
) -> bool:
    """Check an object once more after its registration wrote its item
    (``unchanged`` writes nothing: a change meanwhile has its own event).

    Deleted while it was registered (its removal event may have been
    handled before the item existed, finding nothing to remove): its item
    is removed again. Overwritten while it was registered (its ETag is no
    longer the one the events announced, and the registration wrote):
    returns True, the caller registers it again, so that the item describes
    the object as it is, not the older version that may have been read (a
    late event of an overwritten object costs one registration more).
    A store that cannot tell leaves the result as it is.
    """
    if url.lower().endswith(STORE_SUFFIXES):  # a Zarr store: by its root metadata (no one ETag)
        exists, etag = _store_exists(url, config.options.data_storage_options), None
    else:
        exists, etag = _object_state(url, config.options.data_storage_options)
    if exists is False:
        log.info("%s: deleted while it was registered; removing its item again", url)
        error: str | None
        kind: str | None = None
        try:
            removed = _remove_item(url, config)
        except Exception as exc:
            _log_failure(exc, "removing the item of %s, deleted while it was registered, failed", url)
            error, kind = _removal_failed(url, exc, spell), error_type_of(exc)
        else:
            error = None if removed.ok else (removed.error_for(spell) or "removal failed")
            kind = removed.error_type
        if error is not None:
            for mid in _message_ids(events) or [None]:
                fail(error, url=url, message_id=mid, kind=kind)
            return False
        out["registered"] = [r for r in out["registered"] if r is not entry]  # its result, now undone
        out["removed"].append(_removal_entry(url, removed, spell))
        out["skipped"].append(
            {
                "url": url,
                "reason": "the object was deleted while this creation was registered; "
                "the item written for it was removed again",
            }
        )
        return False
    announced = {e.etag.strip('"') for e in events if e.etag}
    return bool(exists and etag and announced and etag not in announced)


def _register_again(
    url: str, events: list[ObjectEvent], config: HandlerConfig, fail: _Fail, spell: Spelling
) -> None:
    """Register ``url`` once more (its object changed while it was registered);
    its first result stays in the output, a failure now fails its messages."""
    log.info("%s: overwritten while it was registered; registering it again", url)
    kind: str | None
    try:
        (result,) = api.register(
            [url], catalog=config.catalog, collection=config.collection, options=config.options, expand=False
        )
    except Exception as exc:
        _log_failure(exc, "registering %s again failed", url)
        error, kind = _describe(exc, spell), error_type_of(exc)
    else:
        if result.ok or _object_exists(url, config.options.data_storage_options) is False:
            return  # up to date, or deleted since: its removal event removes the item
        error, kind = result.error_for(spell) or "registration failed", result.error_type
    for mid in _message_ids(events) or [None]:
        fail(error, url=url, message_id=mid, kind=kind)


def _remove_item(url: str, config: HandlerConfig) -> Result:
    """Remove the item that describes the object at ``url`` (an item of
    another product with the same id is kept)."""
    options = config.options
    item_id = api.item_id_for(
        url, id_template=options.id_template, collection=config.collection, group=options.group
    )
    return api.remove(
        item_id,
        catalog=config.catalog,
        collection=config.collection,
        storage_options=_copy(options.catalog_storage_options),
        product=url,  # only the item that describes this object goes
        href_rewrites=options.href_rewrites,
        max_retries=options.max_retries,
        pgstac=options.pgstac,
        sns_topic=options.sns_topic,
    )


def _remove_one(
    event: ObjectEvent,
    config: HandlerConfig,
    out: dict[str, Any],
    fail: _Fail,
    spell: Spelling,
    superseded: tuple[ObjectEvent, ...] = (),
) -> None:
    """Remove the item registered for one deleted object, unless it exists
    again; register it again when it was uploaded again while its item was
    being removed (that upload's own event may have been handled before).
    ``superseded``: the earlier records of the batch for the same object,
    whose messages fail with this one's."""
    options = config.options

    def fail_all(error: str, kind: str | None) -> None:
        for mid in _message_ids([*superseded, event]) or [None]:
            fail(error, url=event.url, message_id=mid, kind=kind)

    if options.group and Grouping(pattern=options.group).match(event.url) is None:
        # its creation was refused (or skipped): there is no item, and no id to ask for
        out["skipped"].append(
            {"url": event.url, "reason": "not matched by the group pattern; never registered"}
        )
        return
    try:  # its creation was refused alike: no item (else redelivered until the dead-letter queue)
        api.item_id_for(
            event.url, id_template=options.id_template, collection=config.collection, group=options.group
        )
    except UnsafeIdError as exc:
        out["skipped"].append({"url": event.url, "reason": f"{exc.fact}; never registered"})
        return
    is_store = event.key.lower().endswith(STORE_SUFFIXES)  # a Zarr store (see _zarr_event)
    if is_store:
        if _store_exists(event.url, options.data_storage_options):
            log.info("%s: root metadata still there; its removal event leaves the item", event.url)
            out["skipped"].append(
                {
                    "url": event.url,
                    "reason": "the Zarr store still has root metadata "
                    f"({' / '.join(ZARR_STORE_METADATA)}: deleted in part, or re-created "
                    "after this deletion event); its item stays",
                }
            )
            return
    elif _object_exists(event.url, options.data_storage_options):
        log.info("%s: exists again; its item stays, registered from the object as it is", event.url)
        out["skipped"].append(
            {
                "url": event.url,
                "reason": "the object exists again (re-created after this deletion event, "
                "or only a version of it was deleted); its item stays",
            }
        )
        # a deleted current version makes an older one current, with no creation event:
        # the item then describes the object as it is now (unchanged in the other cases)
        _register_run([replace(event, kind="created")], config, out, fail, spell)
        return
    if options.dry_run:  # a dry run writes nothing, removals included
        out["skipped"].append(
            {"url": event.url, "reason": "dry run: the item of this deleted object would be removed"}
        )
        return
    try:
        result = _remove_item(event.url, config)
    except Exception as exc:
        _log_failure(exc, "removing the item for %s failed", event.url)
        fail_all(_removal_failed(event.url, exc, spell), error_type_of(exc))
        return
    if not result.ok:  # e.g. removed from the catalog, a sink behind: removing again repairs it
        error = result.error_for(spell) or "removal failed"
        log.warning("removing the item for %s failed: %s", event.url, error)
        fail_all(error, result.error_type)
        return
    if result.action == Action.KEPT:  # the id is another product's: not ours to remove
        log.info("%s: item %s kept: %s", event.url, result.id, result.reason)
        out["skipped"].append({"url": event.url, "reason": f"item {result.id!r} kept: {result.reason}"})
        return
    out["removed"].append(_removal_entry(event.url, result, spell))
    if result.action != Action.REMOVED:
        return
    exists = _store_exists if is_store else _object_exists
    if exists(event.url, options.data_storage_options):
        log.info("%s: uploaded again while its item was removed; registering it again", event.url)
        _register_run([replace(event, kind="created")], config, out, fail, spell)


def _removal_entry(url: str, result: Result, spell: Spelling) -> dict[str, Any]:
    """The output entry of a removal: its result, naming under ``source`` the
    deleted object it was for, as a registration's entry names its product
    (the removal is asked for by item id, so its result does not)."""
    if result.source is None:
        result = replace(result, source=url)
    return result.to_dict(spell)


def _object_exists(url: str, storage_options: Mapping[str, Any] | None) -> bool | None:
    """Whether the object at ``url`` exists now: True, False, or None when
    storage cannot tell (no permission, network): callers then act as if
    the check had not been made. One fresh HEAD (listing caches bypassed)."""
    return _object_state(url, storage_options)[0]


def _object_state(url: str, storage_options: Mapping[str, Any] | None) -> tuple[bool | None, str | None]:
    """:func:`_object_exists` and the object's ETag (unquoted; None when gone,
    unknown or not given), from the same HEAD."""
    import fsspec  # noqa: PLC0415 (imported with the first existence check: see the module doc)

    try:
        from producer.awssession import with_shared_session  # noqa: PLC0415 (as fsspec)

        # the options product reads use (producer.extract.source): the file system (and S3
        # client) of the registration's read, not one more made for this HEAD (~90 ms of
        # CPU in a fresh process: a Lambda cold start)
        options = with_shared_session(url, product_storage_options(storage_options, url))
        fs, path = fsspec.core.url_to_fs(url, **options)
        fs.invalidate_cache(path)
        info = fs.info(path)
    except FileNotFoundError:
        return False, None
    except Exception as exc:
        log.warning("cannot tell whether %s exists: %s", url, exc)
        return None, None
    etag = info.get("ETag") or info.get("etag") if isinstance(info, Mapping) else None
    return True, (etag.strip('"') or None) if isinstance(etag, str) else None


def _store_exists(url: str, storage_options: Mapping[str, Any] | None) -> bool | None:
    """Whether the Zarr store at ``url`` exists: whether any of its root
    metadata objects does (True, False, or None when storage cannot tell).
    Not whether its prefix holds objects: a store deleted object by object
    (``aws s3 rm --recursive`` removes ``.zmetadata`` before the chunks)
    would otherwise exist until its last chunk is gone, and the removal
    event of its root metadata would come too early to remove its item."""
    unknown = False
    for name in ZARR_STORE_METADATA:
        found = _object_exists(f"{url}/{name}", storage_options)
        if found:
            return True
        unknown = unknown or found is None
    return None if unknown else False


def _message_ids(events: list[ObjectEvent]) -> list[str | None]:
    ids: list[str | None] = []
    for event in events:
        if event.message_id not in ids:
            ids.append(event.message_id)
    return ids


def _copy(value: dict[str, Any] | None) -> dict[str, Any] | None:
    """A shallow copy, so nothing downstream can mutate the shared config."""
    return dict(value) if value is not None else None


def _describe(exc: BaseException, spell: Spelling) -> str:
    text = exc.phrased(spell) if isinstance(exc, ProducerError) else str(exc)
    return f"{type(exc).__name__}: {text}"


def _removal_failed(url: str, exc: BaseException, spell: Spelling) -> str:
    """The failure of removing the item of the object ``url``, naming the
    object first as a registration's error does (the exception names only
    the catalog document it failed on; Lambda's error for a direct
    invocation shows this text alone)."""
    return f"{url}: removing its item failed ({_describe(exc, spell)})"


def _log_failure(exc: BaseException, message: str, *args: Any) -> None:
    """Log a failed api call of the handler: a :class:`ProducerError` (a
    storage fault, a bad option: foreseen, its text says what to do) as a
    WARNING line with that text; anything else with its traceback (a bug)."""
    if isinstance(exc, ProducerError):
        log.warning(message + ": %s", *args, exc)
    else:
        log.exception(message, *args)

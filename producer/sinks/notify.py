"""Change notifications: tell downstream systems what a commit changed.

Three :class:`~producer.changes.Sink` implementations, each told the
committed changes of one collection at a time (``unchanged`` items are never
passed to a sink; a kind a sink does not know is skipped, not guessed at):

- :class:`CallbackSink`: calls a plain Python function per change.
- :class:`PrefectEventSink`: one Prefect event per change
  (``stac.item.created|updated|removed``, resource ``stac.item.<collection>.<id>``,
  the collection as related resource), for Prefect automations. Prefect is
  imported only by :mod:`producer.prefect`, which builds this sink with
  Prefect's ``emit_event`` (:func:`producer.prefect.prefect_event_sink`).
- :class:`SnsSink`: one Amazon SNS message per change, as STAC's best
  practice for keeping catalogs in sync suggests: the item JSON as the body,
  message attributes to filter on (``event``, ``collection``, ``id``,
  ``datetime`` or ``start_datetime``/``end_datetime``, ``bbox`` and its four
  corners as numbers), published with ``PublishBatch`` (10 per call).
  An item whose message would exceed SNS's 256 KiB is announced by a stub
  instead (:func:`sns_stub`: the item's id, collection, event and href, so
  subscribers fetch the item), with the same attributes.

Delivery is at least once: each sink has an ``outbox_id``, so the verbs keep
the changes of a call that failed in the collection's outbox
(:mod:`producer.sinks.outbox`) and the next ``register``, ``remove`` or
``reconcile`` of that collection configured with the same sink sends them
(before its own). A sink's error says which changes it did not deliver
(``undelivered``: the SNS messages refused, the changes from the callback's
failing one on), so the outbox keeps only those; a change that can never be
sent (an SNS stub still over 256 KiB) is reported once, not kept. A
subscriber may see a change twice (a delivered change whose outbox entry
could not be updated; FIFO topics deduplicate retries within five
minutes). Not covered: a process killed between the commit and the outbox
write (one PUT).
"""

from __future__ import annotations

import hashlib
import inspect
import json
import logging
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from types import ModuleType
from typing import Any

from producer.awsclients import SharedClients, client_key
from producer.changes import Change, ChangeKind, Sink
from producer.errors import Hint, InputError, ProducerError, StoreError
from producer.redact import clean_href
from producer.sinks.outbox import safe_sink_id

__all__ = [
    "CallbackSink",
    "NotificationTooLarge",
    "PrefectEventSink",
    "SnsError",
    "SnsSink",
    "change_event",
    "check_topic",
    "item_href",
    "notification_sinks",
    "sns_message",
    "sns_stub",
    "stable_name",
]

log = logging.getLogger(__name__)

#: SNS: bytes of one message (body + attributes), and of one PublishBatch call
SNS_MAX_BYTES = 262_144
#: SNS: entries of one PublishBatch call
SNS_MAX_BATCH = 10

#: the fix of a value that is no topic ARN
TOPIC_HINT = Hint(
    "sns_topic",
    "arn:aws:sns:us-east-1:123456789012:stac-changes",
    "the topic committed changes are published to",
)

_TOPIC_ARN = re.compile(
    r"^arn:(?P<partition>[a-z-]+):sns:(?P<region>[a-z0-9-]+):(?P<account>\d{12}):(?P<name>[A-Za-z0-9_-]{1,256}(\.fifo)?)$"
)


def check_topic(topic_arn: str) -> re.Match[str]:
    """The parts of the SNS topic ARN ``topic_arn``; an :class:`InputError`
    with the fix when it is not one (callers that take the topic once, such
    as the event handler, check it at start-up)."""
    match = _TOPIC_ARN.match(topic_arn or "")
    if match is None:
        raise InputError(
            f"SNS topic {topic_arn!r} is not a topic ARN: give it as "
            "arn:aws:sns:<region>:<account id>:<topic name>",
            hints=(TOPIC_HINT,),
        )
    return match


def _kind(change: Change) -> ChangeKind | None:
    """The change's kind if a notification is sent for it (created, updated,
    removed), else None: a kind this module does not know is skipped."""
    try:
        return ChangeKind(change.kind)
    except ValueError:
        return None


def item_href(change: Change, catalog_url: str | None) -> str:
    """Where the item document is: ``catalog_url/key`` (without any
    credentials the URL carried), or the key (relative to the catalog root)
    when the catalog URL is not known."""
    if not catalog_url:
        return change.key
    return f"{clean_href(catalog_url).rstrip('/')}/{change.key}"


def _when(item: Mapping[str, Any]) -> dict[str, str]:
    """The item's ``datetime``, else its ``start_datetime``/``end_datetime``
    (whichever are set), as stored."""
    props = item.get("properties") or {}
    if props.get("datetime"):
        return {"datetime": str(props["datetime"])}
    return {k: str(props[k]) for k in ("start_datetime", "end_datetime") if props.get(k)}


def _corners(item: Mapping[str, Any]) -> list[float] | None:
    """``[west, south, east, north]`` of the item's bbox (2D or 3D), or None."""
    bbox = item.get("bbox")
    if not isinstance(bbox, (list, tuple)) or len(bbox) not in (4, 6):
        return None
    if len(bbox) == 6:
        bbox = [bbox[0], bbox[1], bbox[3], bbox[4]]
    return [float(v) for v in bbox]


# --------------------------------------------------------------------------
# a plain callback
# --------------------------------------------------------------------------


def stable_name(fn: Callable[..., Any]) -> str | None:
    """``module.qualname`` of ``fn`` when that names this very function, the
    same in every run: a module-level function (also a builtin), a class or
    static method. None for a lambda, a local function or closure
    (``<locals>`` in its name: every closure of one definition shares it),
    a method bound to an instance (every instance's method shares it), a
    callable object or a ``functools.partial``: those need an explicit
    outbox id."""
    module, qualname = getattr(fn, "__module__", None), getattr(fn, "__qualname__", None)
    if not isinstance(module, str) or not isinstance(qualname, str) or "<" in qualname:
        return None
    bound = getattr(fn, "__self__", None)
    if bound is not None and not isinstance(bound, (type, ModuleType)):
        return None
    return f"{module}.{qualname}"


class CallbackSink:
    """Calls ``fn(change)`` for every committed change, in commit order.

    ``fn`` gets the :class:`~producer.changes.Change` itself (``kind``,
    ``collection``, ``item_id``, ``key``, ``item``: do not mutate ``item``).
    Whatever ``fn`` raises propagates: the caller reports it and the outbox
    keeps the change ``fn`` raised for and the ones after it (the error's
    ``undelivered``), so ``fn`` may see a change twice (it should be
    idempotent) but never misses one.

    ``outbox_id``: the name of this callback's outbox, where the changes it
    missed wait for the next call configured with the same id. Default: the
    function's module and qualified name (:func:`stable_name`); a function
    without a stable name of its own (lambda, closure, bound method, ...)
    is refused without one (:class:`~producer.errors.InputError`, at
    construction: nothing written), since two such callbacks would share an
    outbox and one would be sent, then lose, the other's missed changes.
    A sink is itself callable, so ``on_change=CallbackSink(fn, outbox_id=...)``
    gives the verbs' ``on_change`` its id.
    """

    def __init__(self, fn: Callable[[Change], Any], *, outbox_id: str | None = None) -> None:
        if not callable(fn):
            raise InputError(f"on_change must be a function taking one Change, not {fn!r}")
        if inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(type(fn).__call__):
            raise InputError(
                f"on_change={getattr(fn, '__qualname__', fn)!r} is an async function: the verbs call "
                "on_change and never await what it returns, so every change would be lost; pass a "
                "plain function (one that hands the change to your event loop, e.g. with "
                "asyncio.run_coroutine_threadsafe, if it must be async)"
            )
        name = stable_name(fn)
        if not outbox_id and name is None:
            raise InputError(
                f"on_change={fn!r} has no stable name to keep the changes it misses under "
                "(a lambda, a local function or closure, a bound method or a callable object "
                "would share its outbox with others like it): pass a module-level function, "
                "or name its outbox: on_change=CallbackSink(fn, outbox_id='my-consumer')"
            )
        self.fn = fn
        #: the outbox of this callback (default: from its module and name,
        #: so the same function configured again finds the changes it missed)
        self.outbox_id = outbox_id or safe_sink_id(f"callback-{name}")

    def __call__(self, change: Change) -> Any:
        """Call ``fn(change)`` (so a sink can be passed as ``on_change``)."""
        return self.fn(change)

    def __repr__(self) -> str:
        return f"CallbackSink({getattr(self.fn, '__qualname__', self.fn)!r})"

    def apply(self, collection: dict[str, Any], changes: Sequence[Change]) -> None:
        """Call ``fn`` once per change of a known kind; writes nothing itself.
        What ``fn`` raises propagates, its ``undelivered`` set to the change
        it raised for and those after it."""
        for i, change in enumerate(changes):
            if _kind(change) is not None:
                try:
                    self.fn(change)
                except Exception as exc:
                    _mark_undelivered(exc, changes[i:])
                    raise


# --------------------------------------------------------------------------
# Prefect events
# --------------------------------------------------------------------------


def change_event(change: Change, catalog_url: str | None = None) -> dict[str, Any]:
    """The Prefect event for ``change``, as keyword arguments of Prefect's
    ``emit_event``: ``event`` (``stac.item.<kind>``), ``resource`` (id
    ``stac.item.<collection>.<item id>``, labelled with the collection and
    item ids), ``related`` (the collection, role ``collection``) and
    ``payload`` (``href``, ``collection``, ``id``, ``datetime`` or
    ``start_datetime``/``end_datetime``, ``bbox``). Pure; nothing is sent."""
    payload: dict[str, Any] = {
        "href": item_href(change, catalog_url),
        "collection": change.collection,
        "id": change.item_id,
        **_when(change.item),
    }
    if isinstance(change.item.get("bbox"), list):
        payload["bbox"] = list(change.item["bbox"])
    return {
        "event": f"stac.item.{ChangeKind(change.kind).value}",
        "resource": {
            "prefect.resource.id": f"stac.item.{change.collection}.{change.item_id}",
            "prefect.resource.name": change.item_id,
            "stac.collection": change.collection,
            "stac.item": change.item_id,
        },
        "related": [
            {
                "prefect.resource.id": f"stac.collection.{change.collection}",
                "prefect.resource.role": "collection",
                "prefect.resource.name": change.collection,
            }
        ],
        "payload": payload,
    }


class PrefectEventSink:
    """Emits one Prefect event per committed change (see :func:`change_event`).

    ``emit``: Prefect's ``prefect.events.emit_event`` (or a function with its
    keyword arguments); :func:`producer.prefect.prefect_event_sink` passes it,
    so that only :mod:`producer.prefect` imports Prefect. Inside a flow or
    task run Prefect relates each event to the run. ``catalog_url``: makes the
    payload's ``href`` absolute (else it is the key under the catalog root).
    Prefect sends events in the background; emitting never writes the catalog.
    """

    #: the outbox of Prefect events (one per catalog collection)
    outbox_id = "prefect-events"

    def __init__(self, emit: Callable[..., Any], *, catalog_url: str | None = None) -> None:
        self.emit = emit
        self.catalog_url = catalog_url

    def __repr__(self) -> str:
        return f"PrefectEventSink(catalog_url={self.catalog_url!r})"

    def apply(self, collection: dict[str, Any], changes: Sequence[Change]) -> None:
        """Emit one event per change of a known kind, in commit order (an
        error's ``undelivered``: the change it failed on and those after it)."""
        for i, change in enumerate(changes):
            if _kind(change) is not None:
                try:
                    self.emit(**change_event(change, self.catalog_url))
                except Exception as exc:
                    _mark_undelivered(exc, changes[i:])
                    raise


def _mark_undelivered(exc: BaseException, changes: Sequence[Change]) -> None:
    """Set ``exc.undelivered`` (see :mod:`producer.sinks`) unless the
    exception cannot take attributes: then the whole call counts as undelivered."""
    try:
        exc.undelivered = list(changes)  # type: ignore[attr-defined]
    except (AttributeError, TypeError):
        pass


# --------------------------------------------------------------------------
# Amazon SNS
# --------------------------------------------------------------------------


class SnsError(StoreError):
    """SNS could not be reached or refused messages (retryable, like a
    storage error). Names the topic and the items whose message failed;
    ``undelivered``: their changes (the others were published)."""

    def __init__(self, message: str, undelivered: Sequence[Change] = ()) -> None:
        super().__init__(message)
        self.undelivered = list(undelivered)


class NotificationTooLarge(ProducerError, ValueError):
    """An item's message exceeds SNS's 256 KiB even as a stub (its id, or
    its attributes, are that large): it can never be published, so it is not
    kept for a retry (``undelivered`` is empty: the other changes were
    published)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.undelivered: list[Change] = []


def _attr(value: str, type_: str = "String") -> dict[str, str]:
    return {"DataType": type_, "StringValue": value}


def _number(value: float) -> str:
    # SNS Number attributes: at most 5 decimals, within +-1e9
    return f"{value:.5f}".rstrip("0").rstrip(".")


def sns_message(change: Change, catalog_url: str | None = None) -> tuple[str, dict[str, dict[str, str]]]:
    """The SNS body and message attributes for ``change``.

    Body: the committed item JSON (for ``removed``, the last committed one);
    with ``catalog_url``, its ``self`` link is the item's absolute URL, so the
    relative links in it resolve. Attributes (at most 10, what an SQS
    subscription with raw message delivery accepts): ``event``
    (created/updated/removed), ``collection``, ``id``, ``datetime`` (or
    ``start_datetime``/``end_datetime``), ``bbox`` (a JSON array, as a
    String) and ``bbox.west``/``bbox.south``/``bbox.east``/``bbox.north``
    (Numbers, for numeric filter policies; west > east crosses 180°).
    Pure; ``change.item`` is not mutated.
    """
    item = change.item
    if catalog_url:
        links = [
            link
            for link in item.get("links", [])
            if not (isinstance(link, dict) and link.get("rel") == "self")
        ]
        links.insert(0, {"rel": "self", "href": item_href(change, catalog_url), "type": "application/json"})
        item = {**item, "links": links}
    attrs: dict[str, dict[str, str]] = {
        "event": _attr(ChangeKind(change.kind).value),
        "collection": _attr(change.collection),
        "id": _attr(change.item_id),
    }
    attrs.update({k: _attr(v) for k, v in _when(item).items()})
    corners = _corners(item)
    if corners is not None:
        attrs["bbox"] = _attr(json.dumps(item["bbox"]))
        for name, value in zip(("west", "south", "east", "north"), corners):
            attrs[f"bbox.{name}"] = _attr(_number(value), "Number")
    return json.dumps(item, ensure_ascii=False, separators=(",", ":")), attrs


def sns_stub(change: Change, catalog_url: str | None = None) -> str:
    """The SNS body that announces ``change`` when its item JSON is too large
    for a message (over 256 KiB with its attributes): a JSON object
    ``{"stub": true, "event", "collection", "id", "href"}`` (``href``: where
    the item document is, see :func:`item_href`; for ``removed``, where it
    was), so subscribers fetch the item. The attributes are the item's, as
    for a full message. Pure."""
    return json.dumps(
        {
            "stub": True,
            "event": ChangeKind(change.kind).value,
            "collection": change.collection,
            "id": change.item_id,
            "href": item_href(change, catalog_url),
        },
        ensure_ascii=False,
        separators=(",", ":"),
    )


def _size(body: str, attrs: Mapping[str, Mapping[str, str]]) -> int:
    """Bytes SNS counts for a message: the body, each attribute's name, type and value."""
    n = len(body.encode())
    for name, attr in attrs.items():
        n += len(name.encode()) + len(attr["DataType"].encode()) + len(attr["StringValue"].encode())
    return n


#: SNS clients kept per process for reuse (see :mod:`producer.awsclients`)
_SNS_CLIENTS = SharedClients(8)


class SnsSink:
    """Publishes one SNS message per committed change (see :func:`sns_message`).

    ``topic_arn``: ``arn:aws:sns:<region>:<account>:<name>`` (a ``.fifo``
    topic gets a message group per item, so one item's changes stay in
    order, and a deduplication id per change). ``session_kwargs``: for
    ``boto3.Session`` (``profile_name``, ``aws_access_key_id``, ...; default:
    the standard AWS environment and config); ``endpoint_url``: another SNS
    endpoint (``AWS_ENDPOINT_URL`` works too); ``client``: an SNS client to
    use instead. The region is the topic's. ``catalog_url``: makes each
    body's ``self`` link absolute. Credentials are never shown (``repr`` names
    the topic only). Needs boto3 (``pip install 'stac-producer[s3]'``).
    """

    def __init__(
        self,
        topic_arn: str,
        *,
        session_kwargs: Mapping[str, Any] | None = None,
        endpoint_url: str | None = None,
        client: Any | None = None,
        catalog_url: str | None = None,
    ) -> None:
        match = check_topic(topic_arn)
        self.topic_arn = topic_arn
        self.fifo = topic_arn.endswith(".fifo")
        #: the outbox of this topic: its name plus a hash of the whole ARN
        self.outbox_id = safe_sink_id(
            f"sns-{match['name'][:60]}-{hashlib.sha256(topic_arn.encode()).hexdigest()[:12]}"
        )
        self.catalog_url = catalog_url
        if client is None:
            try:
                import boto3  # noqa: PLC0415  (optional [s3] extra, loaded only by this sink)
            except ImportError as exc:
                raise InputError(
                    "publishing changes to SNS needs boto3: pip install 'stac-producer[s3]'"
                ) from exc
            kwargs = dict(session_kwargs or {})
            kwargs.setdefault("region_name", match["region"])
            region = match["region"]

            def build() -> Any:
                session = boto3.session.Session(**kwargs)
                return session.client("sns", region_name=region, endpoint_url=endpoint_url)

            try:
                # one client per process and options (boto3 clients are thread-safe):
                # a register per event with a topic built one each call
                client = _SNS_CLIENTS.get(client_key("sns", kwargs, region, endpoint_url), build)
            except Exception as exc:  # bad session kwargs: never echo their values
                raise InputError(
                    f"cannot create an SNS client for {topic_arn}: {type(exc).__name__} "
                    f"(check session_kwargs {sorted(kwargs)})"
                ) from None
        self._client = client

    def __repr__(self) -> str:
        return f"SnsSink({self.topic_arn!r})"

    def _entries(self, changes: Sequence[Change]) -> Iterator[tuple[Change, dict[str, Any], int]]:
        for change in changes:
            if _kind(change) is None:
                continue
            body, attrs = sns_message(change, self.catalog_url)
            if _size(body, attrs) > SNS_MAX_BYTES:
                log.warning(
                    "the item document of %s/%s exceeds SNS's %d bytes: %s gets a stub "
                    "message with its href instead",
                    change.collection,
                    change.item_id,
                    SNS_MAX_BYTES,
                    self.topic_arn,
                )
                body = sns_stub(change, self.catalog_url)
            entry: dict[str, Any] = {"Message": body, "MessageAttributes": attrs}
            if self.fifo:
                group = f"{change.collection}/{change.item_id}"
                if len(group) > 128:
                    group = hashlib.sha256(group.encode()).hexdigest()
                entry["MessageGroupId"] = group
                entry["MessageDeduplicationId"] = hashlib.sha256(
                    f"{ChangeKind(change.kind).value}\0{change.key}\0{body}".encode()
                ).hexdigest()
            yield change, entry, _size(body, attrs)

    def _batches(
        self, changes: Sequence[Change], too_large: list[tuple[Change, int]] | None = None
    ) -> Iterator[list[tuple[Change, dict[str, Any]]]]:
        """Groups of at most 10 messages and 256 KiB; a message over 256 KiB
        even as a stub is left out (appended to ``too_large`` with its size)."""
        batch: list[tuple[Change, dict[str, Any]]] = []
        size = 0
        for change, entry, n in self._entries(changes):
            if n > SNS_MAX_BYTES:
                if too_large is not None:
                    too_large.append((change, n))
                continue
            if batch and (len(batch) == SNS_MAX_BATCH or size + n > SNS_MAX_BYTES):
                yield batch
                batch, size = [], 0
            batch.append((change, entry))
            size += n
        if batch:
            yield batch

    def apply(self, collection: dict[str, Any], changes: Sequence[Change]) -> None:
        """Publish one message per change of a known kind, in commit order,
        with ``PublishBatch`` (a stub for an item too large, see
        :func:`sns_stub`). Raises :class:`SnsError` when SNS cannot be reached
        (the changes from that call on undelivered) or rejects messages
        (every batch is tried first; those undelivered), else
        :class:`NotificationTooLarge` for a message over 256 KiB even as a
        stub (never sent; the other changes were)."""
        failed: list[str] = []
        undelivered: list[Change] = []
        too_large: list[tuple[Change, int]] = []
        batches = list(self._batches(changes, too_large))
        dropped = ", ".join(f"{c.collection}/{c.item_id} ({n} bytes)" for c, n in too_large)
        never = (
            f"; the message of {dropped} exceeds SNS's {SNS_MAX_BYTES} bytes even as a stub and is not sent"
            if too_large
            else ""
        )
        for i, batch in enumerate(batches):
            entries = [{"Id": f"m{i}", **entry} for i, (_, entry) in enumerate(batch)]
            try:
                response = self._client.publish_batch(
                    TopicArn=self.topic_arn, PublishBatchRequestEntries=entries
                )
            except Exception as exc:
                if not _is_aws_failure(exc):
                    raise
                rest = [c for b in batches[i:] for c, _ in b]
                raise SnsError(
                    f"cannot publish {len(rest)} change(s) of collection "
                    f"{batch[0][0].collection!r} to {self.topic_arn}: {_describe(exc)}; "
                    f"check the topic and the permission sns:Publish, then retry{never}",
                    undelivered + rest,
                ) from exc
            for failure in response.get("Failed", []):
                change = batch[int(str(failure.get("Id", "m0"))[1:])][0]
                undelivered.append(change)
                failed.append(
                    f"{change.collection}/{change.item_id} ({failure.get('Code')}: {failure.get('Message', '')})"
                )
        if failed:
            raise SnsError(
                f"SNS {self.topic_arn} refused the message of {', '.join(failed)}; retry{never}",
                undelivered,
            )
        if too_large:
            raise NotificationTooLarge(
                f"cannot publish to {self.topic_arn}: the message of {dropped} exceeds SNS's "
                f"{SNS_MAX_BYTES} bytes even as a stub (its id or attributes are too large); "
                "it is not sent (the other changes were published)"
            )


def _is_aws_failure(exc: BaseException) -> bool:
    """True for a botocore client/connection error (translated), False for
    programming errors (propagated as they are)."""
    try:
        from botocore.exceptions import BotoCoreError, ClientError  # noqa: PLC0415
    except ImportError:  # pragma: no cover - a client without botocore
        return isinstance(exc, OSError)
    return isinstance(exc, (BotoCoreError, ClientError, OSError))


def _describe(exc: BaseException) -> str:
    """The error code and message of a botocore error (no request details)."""
    error = (
        getattr(exc, "response", {}).get("Error", {})
        if isinstance(getattr(exc, "response", None), dict)
        else {}
    )
    if error:
        return f"{error.get('Code', type(exc).__name__)}: {error.get('Message', '')}".rstrip(": ")
    return f"{type(exc).__name__}: {exc}"


def notification_sinks(
    *,
    sns_topic: str | None = None,
    on_change: Callable[[Change], Any] | None = None,
    catalog_url: str | None = None,
    sns_session_kwargs: Mapping[str, Any] | None = None,
) -> list[Sink]:
    """The notification sinks the options ask for: an :class:`SnsSink` for
    ``sns_topic`` (empty = none), a :class:`CallbackSink` for ``on_change``.
    ``on_change`` may be a :class:`CallbackSink` (to name its outbox).
    ``catalog_url`` makes published hrefs absolute. Prefect events come from
    :func:`producer.prefect.prefect_event_sink` (inside runs). Raises
    :class:`~producer.errors.InputError` for a topic that is not an ARN or a
    callback that is not callable or has no outbox id (see :class:`CallbackSink`); nothing is sent here."""
    sinks: list[Sink] = []
    if sns_topic:
        sinks.append(SnsSink(sns_topic, session_kwargs=sns_session_kwargs, catalog_url=catalog_url))
    if on_change is not None:
        sinks.append(on_change if isinstance(on_change, CallbackSink) else CallbackSink(on_change))
    return sinks

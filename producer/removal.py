"""Removing one item by id: find its document in O(1), then the crash-safe
removal protocol of :meth:`producer.commit.Committer.remove_item`.

The public verb :func:`producer.api.remove` and the event handler's
removals come here; nothing here prints.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence

from producer import thumbnail
from producer.catalog.documents import SHRINK_FIELD, SHRINK_TTL
from producer.catalog.extent import bbox_contains, box2d, format_time, interval_contains, item_interval
from producer.catalog.layout import (
    Layout,
    collection_key,
    collection_prefix,
    is_partitioned_item_key,
    item_key_in_listing,
    item_parent_key,
    recorded_layout,
)
from producer.changes import Change, ChangeKind, Sink
from producer.commit import Committer, IndexEntry, product_href, same_product
from producer.errors import ConflictError, ProducerError, StoreError
from producer.extract.assets import resolve_location, rewrite_href
from producer.extract.ids import check_id
from producer.grouping import assets_of_product, drop_assets, is_data, is_group_item
from producer.ingest import check_collection_id, open_catalog, parse_rewrites, validator
from producer.redact import redact
from producer.results import RemoveResult
from producer.sinks import Outbox, check_sinks, deliver, describe, remedy_text, removed, wants_unchanged
from producer.sources import refuse_product_credentials
from producer.store.base import Store
from producer.timestamps import parse_time

log = logging.getLogger(__name__)


def find_item_key(
    committer: Committer,
    collection: str,
    item_id: str,
    layout: Layout | None,
    entries: dict[str, IndexEntry] | None = None,
) -> str | None:
    """Key of the item ``item_id`` of ``collection``, or None if it has none.

    ``layout``: the layout the collection document records (None: not
    recorded, or no collection document). With a record, O(1) and no
    listing: the flat key (one existence check), or the id index of a
    partitioned collection (one GET, one existence check). Every item of a
    collection that records its layout is in its id index: a register
    writes a new id's entry before the item (so also an item a killed
    register left unlinked or half linked is found), and the
    ``reconcile --fix`` that recorded the layout indexed the items before
    it. An id with no entry is absent.

    Listing the collection is the fallback only for a collection written
    before layouts were recorded, and for an index entry naming a missing
    document (a move killed before its last write; ``reconcile --fix``
    rewrites the entry).
    """
    store = committer.store
    if layout is not None and layout.partition is None:
        key = layout.item_key(collection, item_id)
        return key if store.exists(key) else None
    if layout is None:
        key = Layout().item_key(collection, item_id)
        if store.exists(key):
            return key
    entry = committer.read_index_entry(collection, item_id)
    indexed = entry.key
    if entries is not None and indexed is not None:
        entries[indexed] = entry  # as read: the removal releases its claim from it
    if indexed is not None and store.exists(indexed):
        return indexed
    if layout is not None and indexed is None:
        return None
    return item_key_in_listing(store.list(collection_prefix(collection)), collection, item_id)


def _keep_other_product(
    product: str, href_rewrites: Iterable[str | tuple[str, str]]
) -> Callable[[dict], str | None]:
    """A ``keep_if`` refusing to remove an item that describes another product than ``product``."""
    wanted = rewrite_href(resolve_location(product), parse_rewrites(href_rewrites))

    def keep_other_product(item: dict) -> str | None:
        described = product_href(item)
        if described is not None and not same_product(described, wanted):
            return f"the item describes {redact(described)}, not {redact(wanted)}; it stays"
        return None

    return keep_other_product


def remove_item(
    item_id: str,
    *,
    catalog: str | Store,
    collection: str,
    storage_options: dict | None = None,
    max_retries: int = 25,
    product: str | None = None,
    href_rewrites: Iterable[str | tuple[str, str]] = (),
    sinks: Sequence[Sink] = (),
) -> RemoveResult:
    """:func:`producer.api.remove` (see there for the protocol).

    Reads: the collection document (its layout), the item's key (see
    :func:`find_item_key`), the item's parent; then the removal's own reads
    and writes. Raises :class:`~producer.errors.CatalogError`, nothing
    written, when the collection or the parent cannot be updated safely.

    ``sinks`` (:mod:`producer.sinks`): checked before the first write (one
    that cannot take changes raises its :class:`~producer.errors.StoreError`,
    nothing written); after the delete they are handed the ``REMOVED``
    change (and, for sinks that want them, a removal that found no item,
    so a rerun after a sink failure converges). A sink that fails after the
    delete makes the result an error (storage, retryable) saying the item
    is removed from the catalog and that sink is behind.
    """
    check_collection_id(collection)
    check_id(item_id, what="item id")
    if product is not None:
        refuse_product_credentials(product)  # as register does, before any read
    store = open_catalog(catalog, storage_options)
    committer = Committer(store, validator().check, max_retries=max_retries)
    coll_key = collection_key(collection)
    coll = committer.read(coll_key, ("Catalog", "Collection"))
    layout = recorded_layout(coll[0], committer.store_path(coll_key)) if coll[0] is not None else None
    check_sinks(sinks)
    entries: dict[str, IndexEntry] = {}
    key = find_item_key(committer, collection, item_id, layout, entries)
    if key is None:
        # no collection document: say so (a misspelt --collection), it has no items at all
        why = None if coll[0] is not None else f"no collection {collection!r} in catalog {store.url}"
        result = RemoveResult(id=item_id, href=None, action="absent", reason=why)
        if coll[0] is not None and any(wants_unchanged(sink) for sink in sinks):
            stub = removed(collection, item_id, Layout().item_key(collection, item_id), None)
            _publish(committer, coll_key, result, sinks, [], [stub])
        return result
    keep_if = _keep_other_product(product, href_rewrites) if product is not None else None
    for _round in range(_MOVED_ROUNDS):
        parent = item_parent_key(key, collection)
        documents = {coll_key: coll}
        if parent != coll_key:
            documents[parent] = committer.read(parent, ("Catalog", "Collection"))
        # the documents this removal rewrites are checked before any write
        committer.check_parents(documents, collection)
        if product is not None:
            wanted = rewrite_href(resolve_location(product), parse_rewrites(href_rewrites))
            done = _remove_group_asset(committer, collection, item_id, key, wanted, sinks)
            if done is not None:
                return done
        outcome = committer.remove_item(collection, key, keep_if=keep_if)
        if outcome.action != "absent" or key == Layout().item_key(collection, item_id):
            break
        # gone from the key found: a register may have moved it to another
        # period meanwhile (partitioned; its old copy removed, the id index
        # pointed at the new key last). Look again, and remove it there
        moved = find_item_key(committer, collection, item_id, layout, entries)
        if moved is None or moved == key:
            break
        key = moved
    if outcome.action == "removed":
        thumbnail.delete(store, key, outcome.item)  # after the item: a PNG left by a crash is harmless
        if is_partitioned_item_key(key):
            _release_claim(committer, collection, item_id, key, entries.get(key))
    result = RemoveResult(
        id=item_id,
        href=committer.store_path(key),
        action=outcome.action,
        extent_recomputed=outcome.extent_recomputed,
        reason=outcome.reason,
    )
    if sinks and outcome.action in ("removed", "absent"):
        change = removed(collection, item_id, key, outcome.item)
        if outcome.action == "removed":
            _publish(committer, coll_key, result, sinks, [change], [])
        else:
            _publish(committer, coll_key, result, sinks, [], [change])
    return result


def _release_claim(
    committer: Committer, collection: str, item_id: str, key: str, entry: IndexEntry | None
) -> None:
    """The id may be registered into another period at once (a corrected
    date): its entry no longer counts as a registration under way. The item
    is removed already, so a failure here only warns; the claim lapses by
    itself (:data:`producer.commit.CLAIM_TTL`). ``entry``: the id index
    entry as the look-up read it (None: read again)."""
    try:
        committer.release_claim(collection, item_id, key, entry)
    except (ProducerError, OSError) as exc:
        log.warning(
            "%s removed, but its id index entry still holds its registration's claim (%s): "
            "another product registered as %r into another period may be refused as under way for up to an hour",
            committer.store_path(key),
            exc,
            item_id,
        )


#: rounds of "look the id up, remove it there" when registers keep moving
#: the item to another period between the look-up and the removal
_MOVED_ROUNDS = 5

#: rounds of "drop the asset" / "remove the item" when registers keep adding
#: data assets to an item whose last data asset is being removed
_ASSET_ROUNDS = 10


def _remove_group_asset(
    committer: Committer, collection: str, item_id: str, key: str, wanted: str, sinks: Sequence[Sink]
) -> RemoveResult | None:
    """Remove the product ``wanted`` (an asset href) from the multi-asset
    item at ``key`` (:mod:`producer.grouping`); ``None`` when that item is
    not a multi-asset item (the caller removes it the usual way).

    Under compare-and-swap on the item: its assets naming ``wanted`` are
    dropped and geometry, bbox, datetime and projection fields recomputed
    from the others (action ``updated``; the collection extent grows by
    :meth:`Committer.extend_extent` BEFORE the item is rewritten when the
    recomputed box or time reaches past the old one, and is recomputed
    exactly after it, as for a removed item, when the old item touched one
    of its edges; killed in between, it stays a valid superset until
    ``reconcile --fix``). When they held
    the last data asset, the whole item goes by the removal protocol
    (:meth:`Committer.remove_item`: unlinked, extent recomputed), unless a
    register added a data asset meanwhile (judged inside the marking
    compare-and-swap): then the asset alone is dropped, from that newer
    document. An item with no asset of ``wanted``: action ``kept``, nothing
    written. Sinks get the ``updated`` or ``removed`` change."""
    coll_key = collection_key(collection)
    state: dict[str, str] = {}
    before: list[dict] = []  # the document the winning drop started from

    def drop(doc: dict | None) -> dict | None:
        state.clear()
        before[:] = [doc] if doc is not None else []
        if doc is None:
            state["kind"] = "gone"
            return None
        if not is_group_item(doc):
            state["kind"] = "single"
            return None
        keys = assets_of_product(doc, wanted)
        if not keys:
            state["kind"] = "none"
            return None
        new = drop_assets(doc, keys)
        state["keys"] = ", ".join(keys)
        if new is None:
            state["kind"] = "last"
            return None
        new["properties"]["updated"] = format_time(committer.clock())
        state["kind"] = "dropped"
        return new

    def keep_if(item: dict) -> str | None:
        ours = assets_of_product(item, wanted)
        others = [k for k, asset in (item.get("assets") or {}).items() if is_data(asset) and k not in ours]
        return f"data assets {', '.join(others)} were added meanwhile" if others else None

    for _ in range(_ASSET_ROUNDS):
        _grow_extent_first(committer, collection, key, wanted)
        outcome = committer.cas(key, drop, expect=("Feature",))
        kind = state["kind"]
        if kind == "gone":
            return RemoveResult(id=item_id, href=None, action="absent")
        if kind == "single":
            return None
        href = committer.store_path(key)
        if kind == "none" and _left_by_killed_drop(committer, coll_key, before[0]):
            # this asset's removal was killed between the item's write and the
            # collection's extent: finish its shrink, and say the asset is gone
            recomputed = committer.finish_left_shrink(coll_key)
            if recomputed:
                committer.committed.pop(collection, None)
            result = RemoveResult(
                id=item_id,
                href=href,
                action="updated",
                extent_recomputed=recomputed,
                reason=f"asset of {redact(wanted)} removed by an earlier run that was interrupted; "
                "the collection extent is recomputed now; the item stays",
            )
            if sinks:
                change = Change(ChangeKind.UPDATED, collection, item_id, key, before[0])
                _publish(committer, coll_key, result, sinks, [change], [])
            return result
        if kind == "none":
            # no shrink marker: either the asset's removal finished (or the item
            # never held it), or it was killed between the item's write and the
            # marker, which left no trace to finish from but a stale extent
            result = RemoveResult(
                id=item_id,
                href=href,
                action="kept",
                reason=f"the item has no asset {redact(wanted)} (removed by an earlier run, or never part "
                "of it); it stays. If that run was interrupted, the collection extent may still cover the "
                "removed asset: a reconcile with fix recomputes it (validate reports it as stale-extent)",
            )
            if any(wants_unchanged(sink) for sink in sinks):
                # maybe a rerun of a removal killed (or whose sink failed) after the
                # item's write: the sinks that keep a copy take the item they lack
                current = Change(ChangeKind.UPDATED, collection, item_id, key, before[0])
                _publish(committer, coll_key, result, sinks, [], [current])
            return result
        if kind == "dropped":
            assert outcome.doc is not None
            if _reaches_past(outcome.doc, before[0]):
                # the recomputed box or time is not inside the old one (the
                # remaining grid's own footprint, a later datetime): the
                # extent grows as for a register, so it still covers the item
                committer.extend_extent(collection, [outcome.doc])
                recomputed = False
            else:
                # the item shrank: as for a removed item, an extent it touched
                # on an edge is recomputed exactly (a walk of the collection);
                # killed before, the extent stays a valid superset (reconcile --fix)
                recomputed = committer._shrink_extent(coll_key, [before[0]])
            if recomputed:  # the sinks get the collection as shrunk
                committer.committed.pop(collection, None)
            result = RemoveResult(
                id=item_id,
                href=href,
                action="updated",
                extent_recomputed=recomputed,
                reason=f"asset {state['keys']} removed; the item stays",
            )
            if sinks:
                change = Change(ChangeKind.UPDATED, collection, item_id, key, outcome.doc)
                _publish(committer, coll_key, result, sinks, [change], [])
            return result

        removed_outcome = committer.remove_item(collection, key, keep_if=keep_if)
        if removed_outcome.action == "kept":
            continue  # a register added a data asset: drop ours from that document
        if removed_outcome.action == "removed":
            thumbnail.delete(
                committer.store, key, removed_outcome.item
            )  # as for any removed item (see remove_item)
        result = RemoveResult(
            id=item_id,
            href=href,
            action=removed_outcome.action,
            extent_recomputed=removed_outcome.extent_recomputed,
        )
        if sinks and removed_outcome.action == "removed":
            _publish(
                committer,
                coll_key,
                result,
                sinks,
                [removed(collection, item_id, key, removed_outcome.item)],
                [],
            )
        return result
    raise ConflictError(
        f"{committer.store_path(key)}: gave up removing {wanted} after {_ASSET_ROUNDS} rounds: other "
        "writers kept adding data assets to the item; retry later"
    )


def _left_by_killed_drop(committer: Committer, coll_key: str, item: dict) -> bool:
    """True if the collection holds a shrink marker put after ``item`` was
    last written: the trace of an asset removal killed between its item
    write (which stamped ``updated``) and its extent write. A marker older
    than the item is another writer's (a register rewrote the item after
    it), one more than :data:`SHRINK_TTL` younger too. One GET."""
    coll, _ = committer.read(coll_key, ("Collection",))
    marker = coll.get(SHRINK_FIELD) if coll is not None else None
    if not isinstance(marker, dict):
        return False
    try:
        started = parse_time(marker["started"])
        updated = parse_time(item["properties"]["updated"])
    except (KeyError, TypeError, ValueError):
        return False
    return 0 <= (started - updated).total_seconds() <= SHRINK_TTL


def _grow_extent_first(committer: Committer, collection: str, key: str, wanted: str) -> None:
    """Before the item's compare-and-swap: when dropping ``wanted`` from the
    item as stored now gives a box or time past the old one, grow the
    collection extent to it first. Killed between the two writes, the
    extent is only too wide (valid); in the other order the item stood
    outside it until ``reconcile --fix``. The step after the item's write
    stays, for an item changed meanwhile (a no-op when already covered)."""
    doc, _ = committer.read(key, expect=("Feature",))
    if doc is None or not is_group_item(doc):
        return
    keys = assets_of_product(doc, wanted)
    preview = drop_assets(doc, keys) if keys else None
    if preview is not None and _reaches_past(preview, doc):
        committer.extend_extent(collection, [preview])


def _reaches_past(new: dict, old: dict) -> bool:
    """True if item ``new``'s bbox or time interval is not inside ``old``'s."""
    try:
        return not (
            bbox_contains(box2d(old["bbox"]), box2d(new["bbox"]))
            and interval_contains(list(item_interval(old)), item_interval(new))
        )
    except (KeyError, TypeError, ValueError):
        return True  # cannot tell: let the collection's compare-and-swap judge


def _done(result: RemoveResult) -> tuple[str, str]:
    """What the catalog holds now, and what a sink behind it lacks, for a message about the sinks."""
    if result.action == "kept":
        return "kept in the catalog", "not updated in"
    return "removed from the catalog", "not from"


def _publish(
    committer: Committer,
    coll_key: str,
    result: RemoveResult,
    sinks: Sequence[Sink],
    changes: list[Change],
    unchanged: list[Change],
) -> None:
    """Hand a removal to the sinks with the collection as committed (one
    GET); a failure fails ``result`` (mutated) with a storage error."""
    try:
        coll_doc, _ = committer.read(coll_key, ("Collection",))
    except (ProducerError, OSError) as exc:
        result.fail(
            f"item {result.id!r} {_done(result)[0]}, but the sinks were not told: {exc}",
            exc if isinstance(exc, ProducerError) else StoreError(str(exc)),
        )
        return
    if coll_doc is None:
        return  # the collection went with it: nothing left to follow
    failures = deliver(sinks, coll_doc, changes, unchanged, Outbox(committer.store))
    if not failures:
        return
    behind = "; ".join(f"{f.sink} ({f.error})" for f in failures)
    error = failures[0].error
    # a sink that ignores removals which found nothing (the mirror) is not repaired by removing again
    behind_for_good = {describe(s) for s in sinks if not getattr(s, "rerun_removal_repairs", True)}
    rerun = (
        "reconcile with fix"
        if any(f.sink in behind_for_good for f in failures)
        else "remove it again, or reconcile"
    )
    remedy = remedy_text(failures, str(coll_doc.get("id", "")), rerun)
    result.fail(
        f"item {result.id!r} {_done(result)[0]}, but {_done(result)[1]} {behind}, which is now behind "
        f"the catalog: {remedy}",
        error if isinstance(error, ProducerError) else StoreError(str(error)),
    )

"""Removing one item by id: find its document in O(1), then the crash-safe
removal protocol of :meth:`producer.commit.Committer.remove_item`.

The public verb :func:`producer.api.remove` and the event handler's
removals come here; nothing here prints.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

from producer import thumbnail
from producer.catalog.layout import (
    Layout,
    collection_key,
    collection_prefix,
    item_key_in_listing,
    item_parent_key,
    recorded_layout,
)
from producer.changes import Change, Sink
from producer.commit import Committer, product_href, same_product
from producer.errors import ProducerError, StoreError
from producer.extract.assets import resolve_location, rewrite_href
from producer.extract.ids import check_id
from producer.ingest import check_collection_id, open_catalog, parse_rewrites, validator
from producer.results import RemoveResult
from producer.sinks import check_sinks, deliver, removed, wants_unchanged
from producer.store.base import Store


def find_item_key(committer: Committer, collection: str, item_id: str, layout: Layout | None) -> str | None:
    """Key of the item ``item_id`` of ``collection``, or None if it has none.

    ``layout``: the layout the collection document records (None: not
    recorded, or no collection document). With a record, O(1) and no
    listing: the flat key (one existence check), or the id index of a
    partitioned collection (one GET, one existence check). Every item of a
    collection that records its layout is in its id index (registered with
    the index, or indexed by the ``reconcile --fix`` that recorded the
    layout); an id with no entry is absent, except after a register killed
    between linking and indexing, which ``reconcile --fix`` completes.

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
    indexed, _ = committer.read_index(collection, item_id)
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
            return f"the item describes {described}, not {wanted}; it stays"
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
    store = open_catalog(catalog, storage_options)
    committer = Committer(store, validator().check, max_retries=max_retries)
    coll_key = collection_key(collection)
    coll = committer.read(coll_key, ("Catalog", "Collection"))
    layout = recorded_layout(coll[0], committer.store_path(coll_key)) if coll[0] is not None else None
    check_sinks(sinks)
    key = find_item_key(committer, collection, item_id, layout)
    if key is None:
        result = RemoveResult(id=item_id, href=None, action="absent")
        if coll[0] is not None and any(wants_unchanged(sink) for sink in sinks):
            stub = removed(collection, item_id, Layout().item_key(collection, item_id), None)
            _publish(committer, coll_key, result, sinks, [], [stub])
        return result
    keep_if = _keep_other_product(product, href_rewrites) if product is not None else None
    parent = item_parent_key(key, collection)
    documents = {coll_key: coll}
    if parent != coll_key:
        documents[parent] = committer.read(parent, ("Catalog", "Collection"))
    # the documents this removal rewrites are checked before any write
    committer.check_parents(documents, collection)
    outcome = committer.remove_item(collection, key, keep_if=keep_if)
    if outcome.action == "removed":
        thumbnail.delete(store, key)  # after the item: a PNG left by a crash is harmless
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
            f"item {result.id!r} removed from the catalog, but the sinks were not told: {exc}",
            exc if isinstance(exc, ProducerError) else StoreError(str(exc)),
        )
        return
    if coll_doc is None:
        return  # the collection went with it: nothing left to follow
    failures = deliver(sinks, coll_doc, changes, unchanged)
    if not failures:
        return
    behind = "; ".join(f"{f.sink} ({f.error})" for f in failures)
    error = failures[0].error
    result.fail(
        f"item {result.id!r} removed from the catalog, but not from {behind}, which is now behind "
        "the catalog: remove it again, or reconcile, to bring it in line",
        error if isinstance(error, ProducerError) else StoreError(str(error)),
    )

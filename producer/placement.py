"""Where a batch's items go when partitions are split, and the warning for
crowded flat collections.

Pure over what the batch already read: :meth:`~producer.commit.Committer.preflight`
reads each item's partition chain, including the finer partitions below a
catalog marked split (:data:`~producer.catalog.layout.SPLIT_FIELD`), and the
id index read of a partitioned registration says where an id already sits.
The register pipeline (:mod:`producer.ingest`) calls:

* :func:`place_items` after the preflight: a new item whose period's
  partition is full goes to the finer partition below it (its key and
  structural links change);
* :func:`keep_where_linked` after the id index is read: an item already
  linked in a partition that contains its new place stays where it is (an
  upsert rewrites it in place; it is not moved below its full partition);
* :func:`warn_if_crowded` after the preflight of a flat collection.
* :func:`warn_if_meta_kept` after the preflight of an existing collection.

Nothing here reads or writes storage.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from producer.catalog import documents as docs
from producer.catalog import summaries
from producer.catalog.layout import item_link_count, item_partition_keys, placed_within
from producer.commit import Committer, item_start
from producer.errors import Hint, phrase_hints
from producer.redact import redact

if TYPE_CHECKING:
    from producer.results import RegisterResult

log = logging.getLogger(__name__)

#: item links of a flat collection above which every run warns (once)
CROWDED_LINKS = 10_000
#: the way out of a crowded flat collection
PARTITION_HINT = Hint("partition", "year/month", "register into a new collection partitioned by period")

#: products of a batch ready to be written: (result, item key, item document)
Prepared = list[tuple["RegisterResult", str, dict]]
Documents = dict[str, tuple[dict | None, str | None]]


def place_items(
    committer: Committer, collection: str, prepared: Prepared, preread: Documents, coll_title: str
) -> Prepared:
    """``prepared`` with each item of a partitioned collection keyed below the
    partition it goes to when its period's catalog is split (the documents
    read by the preflight say so). Mutates the moved items' structural links
    and their results' ``href``; returns the new list (same order)."""
    layout = committer.layout
    if layout.partition is None:
        return prepared

    def lookup(key: str) -> dict | None:
        return preread.get(key, (None, None))[0]

    out: Prepared = []
    for result, key, doc in prepared:
        placed = layout.placed_partition_keys(collection, item_start(doc), doc["id"], lookup)
        new_key = layout.placed_item_key(collection, doc["id"], placed)
        if new_key != key:
            _rekey(committer, collection, result, doc, new_key, coll_title)
        out.append((result, new_key, doc))
    return out


def keep_where_linked(
    committer: Committer,
    collection: str,
    prepared: Prepared,
    index: dict[str, tuple[str | None, str | None]],
    coll_title: str,
) -> Prepared:
    """``prepared`` with each item that the id index (``index``: item key ->
    ``(key now, version)``) shows in a partition containing its placed one
    keyed back where it sits: items already linked stay where they are when
    their partition is split. Mutates ``index`` (re-keyed), those items'
    links and their results' ``href``; returns the new list."""
    out: Prepared = []
    for result, key, doc in prepared:
        old_key = index.get(key, (None, None))[0]
        if old_key is not None and old_key != key and placed_within(old_key, key):
            index[old_key] = index.pop(key)
            _rekey(committer, collection, result, doc, old_key, coll_title)
            key = old_key
        out.append((result, key, doc))
    return out


def _rekey(
    committer: Committer, collection: str, result: RegisterResult, doc: dict, key: str, coll_title: str
) -> None:
    """Point ``doc``'s structural links and ``result.href`` at ``key``."""
    parents = item_partition_keys(collection, key)
    parent = parents[-1] if parents else committer.layout.collection_key(collection)
    docs.set_item_links(doc, key, committer.layout, collection, parent, collection_title=coll_title)
    result.href = committer.store_path(key)


def crowded_message(collection: str, where: str, links: int) -> str:
    """The warning for a flat collection of ``links`` item links, with the
    way out phrased for Python (callers rephrase :data:`PARTITION_HINT`)."""
    return (
        f"collection {collection!r} at {where} is flat and links {links} items (more than "
        f"{CROWDED_LINKS}): every registration reads and rewrites that whole document, so each "
        "costs more as it grows." + phrase_hints([PARTITION_HINT])
    )


def warn_if_crowded(committer: Committer, collection: str, preread: Documents, notified: set[str]) -> None:
    """Log a WARNING (once per ``notified`` set, i.e. once per run) when the
    flat collection read by the preflight links more than :data:`CROWDED_LINKS`
    items. The record carries ``hints`` (:data:`PARTITION_HINT`) so a caller's
    log handler can phrase the fix its way (the CLI: a flag). Mutates ``notified``."""
    if committer.layout.partition is not None or collection in notified:
        return
    coll_key = committer.layout.collection_key(collection)
    doc = preread.get(coll_key, (None, None))[0]
    if doc is None:
        return
    links = item_link_count(doc)
    if links <= CROWDED_LINKS:
        return
    notified.add(collection)
    log.warning(
        "%s",
        crowded_message(collection, committer.store_path(coll_key), links),
        extra={"hints": (PARTITION_HINT,)},
    )


def warn_if_meta_kept(
    committer: Committer, collection: str, preread: Documents, meta: dict | None, notified: set[str]
) -> None:
    """Log a WARNING (once per ``notified`` set, i.e. once per run) when the
    collection (or root catalog) read by the preflight exists and the
    metadata given for a new one (``meta``, ``committer.root_meta``: title,
    license, ...) differs from its own: that metadata is written only when
    the document is created, and a caller passing a new title or licence to
    an existing one was told nothing of it. Mutates ``notified``."""
    layout = committer.layout
    for what, key, given, build in (
        (
            f"collection {collection!r}",
            layout.collection_key(collection),
            meta,
            lambda m: docs.new_collection(collection, m, layout),
        ),
        ("the root catalog", layout.root_key, committer.root_meta, docs.new_root),
    ):
        doc = preread.get(key, (None, None))[0]
        if not given or doc is None or f"meta:{key}" in notified:
            continue
        wanted = build(given)
        differ = [name for name in given if name in wanted and not _kept_as_given(name, doc, wanted[name])]
        if not differ:
            continue
        notified.add(f"meta:{key}")
        kept = "; ".join(f"{name} {_short(doc.get(name))}, not {_short(wanted[name])}" for name in differ[:4])
        log.warning(
            "%s",
            redact(
                f"{what} at {committer.store_path(key)} exists and keeps its own metadata ({kept}): the "
                "metadata given for it is written only when it is created. To change it, edit that document "
                "(validate checks it)"
            ),
        )


def _kept_as_given(name: str, doc: dict, given: object) -> bool:
    """Whether the existing ``doc`` holds the metadata field ``name`` as
    ``given`` for a new one. ``item_assets`` and the summaries the producer
    keeps from the items (:data:`~producer.catalog.summaries.MANAGED`) grow
    with every commit: a given one is held when the items' values include
    its own (a list's values, a range within the stored one), or when it was
    dropped as too long; the same metadata on a rerun is then no change."""
    stored = doc.get(name)
    if name == "item_assets":
        return True  # the items' asset fields, rewritten by every commit
    if name != "summaries" or not isinstance(given, dict) or not isinstance(stored, dict):
        return stored == given
    state = doc.get(summaries.STATE_FIELD)
    capped = (state.get("capped") if isinstance(state, dict) else None) or ()
    for key, value in given.items():
        have = stored.get(key)
        if have == value or (key in summaries.MANAGED and key in capped):
            continue
        if key not in summaries.MANAGED:
            return False
        if isinstance(value, list) and isinstance(have, list):
            if any(v not in have for v in value):
                return False
        elif isinstance(value, dict) and isinstance(have, dict):
            try:
                if not have["minimum"] <= value["minimum"] <= value["maximum"] <= have["maximum"]:
                    return False
            except (KeyError, TypeError):
                return False
        else:
            return False
    return True


def _short(value: object, most: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= most else f"{text[: most - 3]}..."

"""Multi-asset items: several products (files) → one item, merged under
compare-and-swap.

A pipeline often writes one scene as several files (``B02.tif`` … ``B08.tif``,
``qa.tif``, ``thumbnail.png``). Three ways to say which files make an item:

- a **group pattern** (``register(..., group=REGEX)``): a regex with the
  named groups ``id`` (the item id) and ``asset`` (the asset key), searched
  in each product's path or URL; a product it does not match is an error;
- an **explicit mapping** (:func:`producer.api.register_item`): ``{asset_key:
  url}`` for one item id;
- ``asset_key=KEY``: each product is its own item, its asset called ``KEY``
  instead of ``data``.

Per asset: media type, roles (``data`` for rasters; ``thumbnail``/``overview``
for PNG/JPEG, ``metadata`` for XML/JSON, ``documentation`` for PDF: see
:func:`producer.extract.assets.sidecar_kind`), title, ``bands`` (a
single-band asset's band is named after its key: the name odc-stac loads it
by). Projection fields sit on the item when every data asset has the same
grid, else on each data asset; each data asset's datetime is on the item
(that of the first data asset in key order) or, when it differs, on the asset.

**The stored item is enough to merge into.** Every data asset's grid and time
can be read back from the document (asset fields, else the item's), so
adding, replacing or removing one asset recomputes geometry, bbox, datetime
and where the projection fields go without opening the other files
(:func:`compose`). Merges are order independent: the same assets give the
same document whatever order (or concurrency) they arrived in.

**Geometry.** The union of the data assets' footprints, computed in the CRS of
the first data asset as the envelope of their grids (their native bounds,
reprojected to that CRS when another), whose footprint is then computed the
usual way (densified edges, antimeridian, poles). For the common case, bands
of one tile at 10/20/60 m, the grids cover the same rectangle and this is
exactly the tile's footprint; otherwise it is a covering polygon, never one
that leaves data out (an exact polygon union needs GEOS/shapely, which is not
a dependency, and a search must never miss an asset).

**Identity.** An item made this way carries the property ``producer:group``
(:data:`producer.commit.GROUP`: the pattern, or ``"assets"``). Products
merge only into such an item: per asset key, the same product (href) updates
its asset and a new key is added; another product under a taken key, or a
group product onto a single-product item (and a single product onto a
group's item), is an :class:`~producer.commit.IdentityConflict`, nothing
written, unless ``replace``.

**Pipeline metadata and links.** ``properties``, ``derived_from``, ``via``,
``processing:*``, license and providers are applied to each composed item
(:func:`producer.provenance.apply`), and ``thumbnail`` renders the PNG from
the item's first data asset in key order, stored and new ones together, when
it is in the batch (refused, even with ``replace``, when the group has its own ``thumbnail`` asset, in the batch or stored: :class:`ThumbnailAssetTaken`). A merge keeps the union of the non-structural links
(:func:`merge_links`): an asset registered without ``derived_from`` keeps the
earlier ones; a ``via`` link (the run) replaces the older ones.

**Order.** A sidecar (preview, metadata) registered before any data file of
its item fails with :class:`DataAssetsPending`, a retryable error (``error_type``
``storage``): Prefect retries it and SQS redelivers its event, by when the data
is in.

Limitation: groups register into flat collections only (a partitioned item's
key depends on its datetime, which a later asset may change).

Nothing here writes except through :class:`~producer.commit.Committer`.
"""

from __future__ import annotations

import copy
import dataclasses
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from producer import extract, provenance, thumbnail
from producer.catalog import documents as docs
from producer.catalog.layout import Layout, is_catalog_document_key, thumbnail_key
from producer.commit import GROUP, Committer, IdentityConflict, product_href, same_product
from producer.errors import (
    ConflictError,
    Hint,
    InputError,
    ProducerError,
    StoreError,
    UnsafeIdError,
    ValidationError,
    as_typed,
)
from producer.extract.assets import (
    check_utf8_location,
    file_info,
    resolve_location,
    rewrite_href,
    sidecar_kind,
)
from producer.extract.datetimes import from_filename
from producer.extract.grids import union_footprint
from producer.extract.ids import (
    MAX_ID_LENGTH,
    check_id,
    make_item_id,
    normalise_name,
    split_location,
    unsafe_reason,
)
from producer.extract.options import DEFAULT_ID_TEMPLATE, ExtractOptions
from producer.redact import clean_href
from producer.results import RegisterResult

__all__ = [
    "GROUP_HINT",
    "ThumbnailAssetTaken",
    "DataAssetsPending",
    "Grouping",
    "compile_group",
    "compose",
    "drop_assets",
    "expanded_assets",
    "is_data",
    "merge",
    "merge_links",
]

GROUP_HINT = Hint(
    "group",
    r"(?P<id>[^/]+)/(?P<asset>[^/]+)\.(tif|png)$",
    "one item per folder, one asset per file named after the file",
)
#: a group's own file under the asset key ``thumbnail``, with the thumbnail option on
THUMBNAIL_OFF_HINT = Hint("thumbnail", False, "render no preview: that file stays the item's thumbnail asset")
#: a group pattern whose id and asset capture only the characters of a safe id,
#: whole folder and file names only (never the end of ``north 1_20240101``)
SAFE_GROUP_HINT = Hint(
    "group",
    r"(?:^|/)(?P<id>[A-Za-z0-9_][A-Za-z0-9._-]*)/(?P<asset>[A-Za-z0-9_][A-Za-z0-9._-]*)\.(tif|png)$",
    "one item per folder, one asset per file named after the file, of safe characters only",
)
#: ``producer:group`` of an item registered from an explicit ``{key: url}`` mapping or ``asset_key``
EXPLICIT = "assets"
PROJ_FIELDS = ("proj:code", "proj:wkt2", "proj:projjson", "proj:shape", "proj:transform", "proj:bbox")
TIME_FIELDS = ("datetime", "start_datetime", "end_datetime")
_TIMESTAMPS = ("created", "updated")
#: item properties that :func:`compose` derives from the assets
#: (and the removal mark: a merge is a register, which wins over a removal in progress)
_DERIVED = (*PROJ_FIELDS, *TIME_FIELDS, *_TIMESTAMPS, GROUP, docs.REMOVING)
#: file suffixes a folder or prefix is expanded to when grouping (rasters + sidecars)
GROUP_SUFFIXES = (".tif", ".tiff", ".nc", ".nc4", ".png", ".jpg", ".jpeg", ".xml", ".json", ".pdf")


# --- which product goes where ---------------------------------------------------


def compile_group(pattern: str) -> re.Pattern[str]:
    """The compiled group pattern; :class:`InputError` (with a hint) when it
    is not a regex or lacks the named groups ``id`` and ``asset``."""
    try:
        rx = re.compile(pattern)
    except re.error as exc:
        raise InputError(
            f"group pattern {as_typed(pattern)} is not a regular expression ({exc})", hints=(GROUP_HINT,)
        ) from None
    missing = [name for name in ("id", "asset") if name not in rx.groupindex]
    if missing:
        raise InputError(
            f"group pattern {as_typed(pattern)} has no named group {' or '.join(map(repr, missing))}: "
            "name the item id (?P<id>...) and the asset key (?P<asset>...)",
            hints=(GROUP_HINT,),
        )
    return rx


@dataclass(frozen=True)
class Member:
    """One product of a group: where it is, its item and its asset key."""

    source: str
    item_id: str
    key: str


@dataclass
class Grouping:
    """How the products of one registration become items: by ``pattern``
    (a group regex), by an explicit ``members`` list, or one item per
    product with the asset ``asset_key``. Used by :mod:`producer.ingest`
    (its hooks: :meth:`chunks`, :meth:`prepare_chunk`, :meth:`write_items`,
    :meth:`share`); holds per-run state, so one instance per registration."""

    pattern: str | None = None
    asset_key: str | None = None
    members: dict[str, Member] | None = None
    _rx: re.Pattern[str] | None = field(default=None, init=False, repr=False)
    #: lead result (by id) → the other results of its item, filled by prepare_chunk
    _followers: dict[int, tuple[RegisterResult, list[RegisterResult]]] = field(
        default_factory=dict, init=False, repr=False
    )
    #: named sources that are files of the catalog itself → what they are
    _refused: dict[str, str] = field(default_factory=dict, init=False, repr=False)

    def __post_init__(self) -> None:
        if self.pattern is not None:
            self._rx = compile_group(self.pattern)
        if self.asset_key is not None:
            try:
                check_id(self.asset_key, what="asset key")
            except UnsafeIdError as exc:  # the fix in the caller's spelling (STAC_ASSET_KEY=, --asset-key)
                safe = normalise_name(self.asset_key).strip("._-")[:MAX_ID_LENGTH]
                example = safe if safe and unsafe_reason(safe) is None else "data"
                hint = Hint("asset_key", example, "an asset key of safe characters")
                raise UnsafeIdError(exc.fact, hints=(hint,)) from None

    @classmethod
    def from_options(
        cls, group: str | None, asset_key: str | None, id_template: str = DEFAULT_ID_TEMPLATE
    ) -> Grouping | None:
        """The grouping the ``group``/``asset_key`` options ask for (None: one
        item per product with its asset ``data``, the default path).
        ``id_template``: the one given, refused with a group pattern (which
        names the items itself: it would be ignored)."""
        if group and asset_key:
            raise InputError(
                "a group pattern and an asset key cannot be combined: with a group pattern each "
                "product's asset key is the pattern's (?P<asset>...) group; leave the asset key out"
            )  # no hint: the caller gave the group pattern already; the fix is to drop the other
        if group and id_template != DEFAULT_ID_TEMPLATE:
            raise InputError(
                f"a group pattern and an id template ({id_template!r}) cannot be combined: with a group "
                "pattern each item's id is the pattern's (?P<id>...) group, and the id template would be "
                "ignored; leave the id template out, or change that group of the pattern"
            )
        if group:
            return cls(pattern=group)
        if asset_key:
            return cls(asset_key=asset_key)
        return None

    @classmethod
    def explicit(
        cls, item_id: str, assets: Mapping[str, str], id_template: str = DEFAULT_ID_TEMPLATE
    ) -> Grouping:
        """One item ``item_id`` made of ``assets`` (``{asset_key: url}``);
        ``id_template``: the one given, refused (it would be ignored)."""
        check_id(item_id)
        if id_template != DEFAULT_ID_TEMPLATE:
            raise InputError(
                f"item {item_id!r}: register_item takes the item id from item_id=, and the id template "
                f"({id_template!r}) would be ignored: leave it out"
            )
        if not assets:
            raise InputError(f"item {item_id!r}: no assets given; pass assets={{'B04': 's3://.../B04.tif'}}")
        members: dict[str, Member] = {}
        for key, url in assets.items():
            check_id(key, what="asset key")
            if not isinstance(url, str) or not url:
                raise InputError(f"item {item_id!r}: asset {key!r} has no URL ({url!r})")
            if url in members:
                raise InputError(
                    f"item {item_id!r}: {url} is given for two assets ({members[url].key!r}, {key!r})"
                )
            members[url] = Member(url, item_id, key)
        return cls(members=members)

    @property
    def marker(self) -> str:
        """The ``producer:group`` value items of this grouping carry."""
        return self.pattern if self.pattern is not None else EXPLICIT

    def match(self, source: str) -> re.Match[str] | None:
        """The group pattern's match of ``source``, or ``None`` when it does not
        match or gives an empty id or asset (such a product is never registered)."""
        if self._rx is None:
            raise ValueError("match() needs a group pattern")
        found = self._rx.search(source)
        if found is None or not found["id"] or not found["asset"]:
            return None
        return found

    def assign(self, source: str, options: ExtractOptions) -> Member:
        """The item and asset key of ``source``; :class:`InputError` naming it
        when the group pattern does not match it, or it is a file of the
        catalog itself (:meth:`outside_catalog`)."""
        if source in self._refused:
            raise not_a_product(source, self._refused[source])
        if self.members is not None:
            return self.members[source]
        if self._rx is None:
            return Member(source, make_item_id(source, options), self.asset_key or "data")
        found = self.match(source)
        if found is None:
            raise InputError(
                f"{source}: not registered: the group pattern {as_typed(self._rx.pattern)} does not match it "
                "(or matches an empty id or asset); widen the pattern, or register this product "
                "apart without a group",
                hints=(GROUP_HINT,),
            )
        item_id = self._captured(found, "id", "item id", source)
        key = self._captured(found, "asset", "asset key", source)
        return Member(source, item_id, key)

    def _captured(self, found: re.Match[str], name: str, what: str, source: str) -> str:
        """The group pattern's capture ``name`` (``id`` or ``asset``) of
        ``source``; :class:`UnsafeIdError` when it is not a safe id, naming
        that group of the pattern as what to change (the id comes from the
        pattern, not from an id template)."""
        value = found[name]
        reason = unsafe_reason(value)
        if reason is None:
            return value
        assert self._rx is not None
        if "/" in value or "\\" in value:  # a group that reaches over a folder: one segment each
            hints: tuple[Hint, ...] = (GROUP_HINT,)
        elif reason.startswith("it contains characters") and re.search(str(SAFE_GROUP_HINT.example), source):
            # offered where it takes this product's folder and file names whole;
            # names with characters no id holds are the caller's to rename
            hints = (SAFE_GROUP_HINT,)
        else:
            hints = ()
        raise UnsafeIdError(
            f"{source}: not registered: the group pattern {as_typed(self._rx.pattern)} gives it the unsafe "
            f"{what} {value!r} (its (?P<{name}>...) group): {reason}. Change that group of the "
            "pattern so it captures one folder or file name of the characters A-Z a-z 0-9 . _ - "
            "(not starting with . or -), or rename the folder or file",
            hints=hints,
        )

    # -- ingest hooks ----------------------------------------------------------------

    def check_layout(self, layout: Layout, collection: str) -> None:
        """Refuse (:class:`InputError`, before anything is written) a
        partitioned collection: a later asset could change the item's
        datetime, hence its partition."""
        if layout.partition:
            raise InputError(
                f"collection {collection!r} is partitioned by {layout.partition}: multi-asset items "
                "register into flat collections only (a later asset could move the item to another "
                "period); register them into a collection without partition"
            )

    def outside_catalog(self, sources: list[str], catalog_url: str, named: Iterable[str] = ()) -> list[str]:
        """``sources`` without the catalog's own files (:func:`_catalog_file`):
        a group takes JSON files, and a catalog written inside the data
        folder must not be registered as metadata of its items. Data and
        sidecars kept under the catalog root (written with relative hrefs,
        :mod:`producer.hrefs`) stay. A catalog file the caller ``named``
        (not found by expanding a folder or glob) is never dropped silently:
        it stays, and fails with an error naming it (:meth:`assign`)."""
        given = {resolve_location(n) for n in named}
        kept: list[str] = []
        for source in sources:
            what = catalog_file_at(source, catalog_url)
            if what is None:
                kept.append(source)
            elif resolve_location(source) in given:
                self._refused[source] = what
                kept.append(source)
        return kept

    def sources(self) -> list[str] | None:
        """The products of an explicit mapping (None: expand the paths given)."""
        return list(self.members) if self.members is not None else None

    def chunks(self, sources: list[str], batch_size: int, options: ExtractOptions) -> list[list[str]]:
        """``sources`` in batches of at most ``batch_size`` items, every
        product of one item in the same batch (a product the pattern does not
        match goes with the first batch, where it fails)."""
        by_item: dict[str | None, list[str]] = {}
        for source in sources:
            try:
                item_id: str | None = self.assign(source, options).item_id
            except ProducerError:
                item_id = None
            by_item.setdefault(item_id, []).append(source)
        out: list[list[str]] = []
        for n, group in enumerate(by_item.values()):
            if n % max(1, batch_size) == 0:
                out.append([])
            out[-1].extend(group)
        return out

    def prepare_chunk(
        self,
        chunk: list[str],
        committer: Committer,
        collection: str,
        options: ExtractOptions,
        coll_title: str,
        progress: Any,
        done: int,
        total: int,
    ) -> tuple[list[RegisterResult], list[tuple[RegisterResult, str, dict]]]:
        """Extract every product of ``chunk`` and build one validated item per
        group (:func:`compose`): returns one result per product and, per item,
        ``(lead result, key, item)``; the other products' results follow the
        lead's (:meth:`share`). A product that fails fails alone; the item is
        made of the others. Nothing is written."""
        results: list[RegisterResult] = []
        groups: dict[str, list[tuple[Member, RegisterResult]]] = {}
        for source in chunk:
            result = RegisterResult(source=source)
            results.append(result)
            try:
                member = self.assign(source, options)
            except ProducerError as exc:
                result.fail(str(exc), exc)
                continue
            result.id = member.item_id
            groups.setdefault(member.item_id, []).append((member, result))
        prepared: list[tuple[RegisterResult, str, dict]] = []
        count = done
        for item_id, members in groups.items():
            parts: dict[str, dict] = {}
            ok: list[RegisterResult] = []
            try:
                when = _group_time(item_id, options) if self.pattern is not None or self.members else None
            except ProducerError as exc:  # the id's date is no date: each of its products fails, not the call
                for member, result in members:
                    result.fail(f"{member.source}: {exc}", exc)
                count += len(members)
                if progress:
                    progress(count, total)
                continue
            for member, result in members:
                count += 1
                try:
                    if member.key in parts:
                        raise InputError(
                            f"{member.source}: maps to asset {member.key!r} of item {item_id!r} like "
                            f"{parts[member.key]['href']}; give the files different asset keys",
                            hints=(GROUP_HINT,),
                        )
                    parts[member.key] = build_asset(member, options, when)
                    ok.append(result)
                except ProducerError as exc:
                    result.fail(str(exc), exc)
                except Exception as exc:  # one broken product must not sink the batch
                    result.fail(f"{member.source}: unexpected {type(exc).__name__}: {exc}", exc)
                if progress:
                    progress(count, total)
            if not ok:
                continue
            lead = ok[0]
            key = committer.layout.item_key(collection, item_id)
            try:
                if any(is_data(part) for part in parts.values()):
                    doc = compose(item_id, parts, collection=collection, marker=self.marker)
                else:  # previews/metadata only: can only merge into an item that has data
                    doc = _partial(item_id, parts, collection, self.marker)
                docs.set_item_links(
                    doc,
                    key,
                    committer.layout,
                    collection,
                    committer.layout.chain(collection)[0],
                    collection_title=coll_title,
                )
                provenance.apply(doc, options.provenance, committer.clock(), lead.source or item_id)
                png = self._thumbnail(doc, key, item_id, members, parts, options, committer)
                if doc["geometry"] is not None:  # a partial one is validated once merged, at commit
                    stamp = "1970-01-01T00:00:00Z"  # replaced at commit; validated as a date-time here
                    doc["properties"].update(created=stamp, updated=stamp)
                    try:
                        committer.validate(
                            doc, f"{committer.store_path(key)} (item {item_id} of {lead.source})"
                        )
                    except ValidationError as exc:  # the caller's property, not the code, may be at fault
                        given = options.provenance.properties if options.provenance else {}
                        raise (
                            provenance.property_problem(exc.errors, given, lead.source or item_id) or exc
                        ) from None
                    for name in _TIMESTAMPS:
                        doc["properties"].pop(name)
                thumbnail.attach(doc, png)
            except ProducerError as exc:
                for result in ok:
                    result.fail(f"{result.source}: {exc}", exc)
                continue
            for result in ok:
                result.href = committer.store_path(key)
            self._followers[id(lead)] = (lead, ok[1:])
            prepared.append((lead, key, doc))
        return results, prepared

    def _thumbnail(
        self,
        doc: dict,
        key: str,
        item_id: str,
        members: list[tuple[Member, RegisterResult]],
        parts: Mapping[str, dict],
        options: ExtractOptions,
        committer: Committer,
    ) -> bytes | None:
        """When ``options.thumbnail``: render the item's PNG from the first
        data asset (in key order) of the item as merged, the stored
        assets and this batch's together, and add the ``thumbnail`` asset to
        ``doc`` (mutated; :func:`producer.thumbnail.prepare`): the same
        assets give the same preview whatever order they arrived in. Returns
        the PNG or None: none wanted; that first asset is not in this batch
        (a sidecar, or a later band: the stored thumbnail stays); or it is,
        unchanged, and the stored item has its thumbnail (a rerun renders
        nothing). Raises :class:`ThumbnailAssetTaken` when the group has
        its own asset named ``thumbnail``, in this batch or stored (the
        rendered one would replace it).
        Reads the stored item (one GET); writes nothing.

        Registrations of one item running at the same time each read the
        item before the other's merge, and may each render from their own
        first asset: the PNG written last stays until the next registration
        of the item's first asset renders it again."""
        if not options.thumbnail:
            return None
        where = committer.store_path(key)
        if thumbnail.THUMBNAIL_ASSET in parts:
            href = str(parts[thumbnail.THUMBNAIL_ASSET]["href"])
            raise ThumbnailAssetTaken(item_id, where, href, by_pattern=self.pattern is not None)
        data = {k for k in parts if is_data(parts[k])}
        if not data:
            return None
        stored, _ = committer.read(key)
        kept = expanded_assets(stored) if is_group_item(stored) and stored is not None else {}
        first = min(data | {k for k, asset in kept.items() if is_data(asset)})
        if first not in data:
            return None
        if kept.get(first) == parts[first] and thumbnail.THUMBNAIL_ASSET in kept:
            return None
        own = kept.get(thumbnail.THUMBNAIL_ASSET)
        if own is not None and not thumbnail.is_rendered(key, stored, committer.store.url):
            raise ThumbnailAssetTaken(
                item_id, where, str(own.get("href")), by_pattern=self.pattern is not None
            )
        source = next(m.source for m, _ in members if m.key == first)
        return thumbnail.prepare(doc, key, source, options)

    def write_items(
        self, committer: Committer, prepared: list[tuple[RegisterResult, str, dict]], replace: bool
    ) -> list[tuple[str, dict, dict]]:
        """Merge each item into the stored one (:meth:`Committer.merge_item`);
        returns ``(key, merged, merged)`` per item written, so parents are
        linked and extended with the merged item (its bbox may be the union
        of assets registered earlier)."""
        written: list[tuple[str, dict, dict]] = []
        for result, key, doc in prepared:
            where = committer.store_path(key)
            try:
                with thumbnail.pending(committer.store, key, doc):  # PNG first; deleted again if refused
                    merger = _merger(where, replace, key, committer.store.url)
                    result.action, committed = committer.merge_item(key, doc, merger)
                result.item = committed
                written.append((key, committed, committed))
            except ProducerError as exc:
                result.fail(f"{result.source}: {exc}", exc)
            except OSError as exc:
                result.fail(
                    f"{result.source}: not registered: cannot write {where}: {exc}", StoreError(str(exc))
                )
                result.href = None
        return written

    def share(self) -> None:
        """Give every product the outcome of its item (its lead's action,
        error and document); call once a batch is done."""
        for lead, others in self._followers.values():
            for result in others:
                result.action, result.href, result.item = lead.action, lead.href, lead.item
                result.link_pending = lead.link_pending
                result.error_type, result.hints = lead.error_type, lead.hints
                if lead.error is not None and lead.source and result.source:
                    result.error = lead.error.replace(lead.source, result.source)
        self._followers.clear()


# --- one asset ------------------------------------------------------------------------


def _partial(item_id: str, parts: Mapping[str, dict], collection: str, marker: str) -> dict:
    """An item holding only assets that are not data (previews, metadata):
    no geometry or datetime of its own, it only merges into a stored item
    that has data (:func:`merge` refuses it on its own)."""
    return {
        "type": "Feature",
        "stac_version": "1.1.0",
        "stac_extensions": [],
        "id": item_id,
        "geometry": None,
        "properties": {"datetime": None, GROUP: marker},
        "links": [],
        "assets": {key: copy.deepcopy(parts[key]) for key in sorted(parts)},
        "collection": collection,
    }


def _merger(where: str, replace: bool, key: str, root_url: str) -> Callable[[dict | None, dict], dict]:
    """:func:`merge` for the item at ``where`` (``key`` in the catalog at
    ``root_url``), as :meth:`Committer.merge_item` calls it."""

    def merge_into(existing: dict | None, incoming: dict) -> dict:
        return merge(existing, incoming, where=where, replace=replace, item_key=key, root_url=root_url)

    return merge_into


def _group_time(item_id: str, options: ExtractOptions) -> str | None:
    """The datetime the item id names (the ``filename`` source applied to
    it), in the place of each file's name (an explicit datetime and a
    datacube's time axis come first, as for a single file); None when the
    user gave a datetime, does not use file names, or the id holds none."""
    if options.datetime or "filename" not in options.datetime_sources:
        return None
    found = from_filename(item_id, options.datetime_pattern)
    if found is None:
        return None
    if found.datetime is not None:
        return found.datetime.isoformat()
    assert found.start is not None and found.end is not None
    return f"{found.start.isoformat()}/{found.end.isoformat()}"


def is_data(asset: Mapping[str, Any]) -> bool:
    """True for an asset with the role ``data``."""
    return "data" in (asset.get("roles") or ())


def build_asset(member: Member, options: ExtractOptions, when: str | None = None) -> dict:
    """The asset of one product, with (data assets) its own grid (``proj:*``)
    and time fields, as :func:`compose` takes it. Reads the product's
    headers (a sidecar file: only its size). ``when``: the group's datetime,
    standing in for the file name's (:attr:`ExtractOptions.named_datetime`).
    Raises what extraction raises."""
    kind = sidecar_kind(member.source, member.key)
    location = resolve_location(member.source)
    check_utf8_location(location)  # a sidecar's href too: every document is UTF-8 JSON
    href = clean_href(rewrite_href(location, tuple(options.href_rewrites)))
    _, name = split_location(location)
    if kind is not None:
        media, roles = kind
        asset: dict[str, Any] = {"href": href, "type": media, "title": name, "roles": roles}
        asset.update(file_info(location, checksum=options.checksum, storage_options=options.storage_options))
        return asset
    if when is not None:  # in the place of the file name: a datacube's own time axis comes first
        options = dataclasses.replace(options, named_datetime=when)
    item = extract.create_item(member.source, options).to_dict(include_self_link=False, transform_hrefs=False)
    asset = dict(item["assets"]["data"])
    props = item["properties"]
    if "proj:transform" not in props:
        raise InputError(f"{member.source}: {_no_transform(props)}")
    asset.update({k: props[k] for k in PROJ_FIELDS if k in props})
    asset.update({k: props[k] for k in TIME_FIELDS if props.get(k) is not None})
    # a NetCDF/Zarr's variables and dimensions: on its asset, where the datacube
    # extension allows them (another asset's may differ), never on the item
    asset.update({k: v for k, v in props.items() if k.startswith("cube:")})
    bands = asset.get("bands") or []
    if len(bands) == 1:
        bands[0]["name"] = member.key  # the band name odc-stac loads a single-band asset by
    return asset


#: why a file of a multi-asset item needs a geotransform
_NEEDS_TRANSFORM = (
    "a file of a multi-asset item needs a geotransform, so the item's footprint can be recomputed "
    "when other assets come and go"
)


def _no_transform(props: Mapping[str, Any]) -> str:
    """Why a product without ``proj:transform`` cannot be a multi-asset
    item's file, and the fix, worded by what it is (a datacube on several
    grids, on an irregular or a curvilinear grid; a raster with GCPs)."""
    dims = props.get("cube:dimensions")
    if not isinstance(dims, dict):
        return (
            f"georeferenced by ground control points only: {_NEEDS_TRANSFORM}; warp it onto a grid "
            "first (gdalwarp), or register it on its own"
        )
    x_axes = [str(k) for k, v in dims.items() if isinstance(v, dict) and v.get("axis") == "x"]
    if len(x_axes) > 1:
        return (
            f"its variables lie on {len(x_axes)} horizontal grids (x axes {', '.join(x_axes)}), which no "
            f"single geotransform describes: {_NEEDS_TRANSFORM}; register it on its own (its footprint "
            "then covers every grid), or write each grid's variables to a new file of their own "
            "(e.g. with xarray: ds[['var']].to_netcdf('one_grid.nc')) and register those"
        )
    kind = (
        "irregular (1-D coordinates not evenly spaced, e.g. a Gaussian grid, or with missing values)"
        if "proj:code" in props or "proj:wkt2" in props
        else "curvilinear (2-D latitude/longitude arrays)"
    )
    return (
        f"its grid is {kind}, so it has no geotransform: {_NEEDS_TRANSFORM}; register it on its own "
        "(its footprint then comes from its coordinates), or regrid it onto a regular grid in a new "
        "file first (e.g. `cdo remapbil,<target grid> in.nc regular.nc`) and register that"
    )


# --- the item of a set of assets ----------------------------------------------------


def expanded_assets(doc: Mapping[str, Any]) -> dict[str, dict]:
    """The assets of a stored item, each data asset holding its grid and time
    fields (its own, else the item's): the form :func:`compose` takes.
    Returns copies; ``doc`` is not mutated."""
    props = doc.get("properties") or {}
    grid = {k: props[k] for k in PROJ_FIELDS if k in props}
    time = {k: props[k] for k in TIME_FIELDS if props.get(k) is not None}
    out: dict[str, dict] = {}
    for key, asset in (doc.get("assets") or {}).items():
        copied = copy.deepcopy(asset)
        if is_data(copied):
            if not any(k in copied for k in PROJ_FIELDS):
                copied.update(copy.deepcopy(grid))
            if not any(k in copied for k in TIME_FIELDS):
                copied.update(time)
        out[key] = copied
    return out


def _grid(asset: Mapping[str, Any]) -> dict[str, Any]:
    return {k: asset[k] for k in PROJ_FIELDS if k in asset}


def _time(asset: Mapping[str, Any]) -> dict[str, Any]:
    return {k: asset[k] for k in TIME_FIELDS if asset.get(k) is not None}


def compose(
    item_id: str,
    assets: Mapping[str, dict],
    *,
    collection: str | None,
    marker: str,
    properties: Mapping[str, Any] | None = None,
    links: Iterable[dict] = (),
) -> dict:
    """The item document of ``assets`` (``key → asset`` as
    :func:`build_asset` / :func:`expanded_assets` give them), without
    ``created``/``updated``: geometry and bbox (union of the data assets'
    grids, see the module docstring), datetime (the first data asset's, in
    key order), projection fields on the item when all data grids agree,
    else on each data asset; assets in key order. ``properties``: other
    properties to keep (e.g. from the stored item). Raises
    :class:`InputError` when no asset is a data asset. Pure."""
    data = [key for key in sorted(assets) if is_data(assets[key])]
    if not data:
        names = ", ".join(sorted(assets))
        raise InputError(
            f"item {item_id!r}: none of its assets ({names}) is a data file (a raster), so its footprint "
            "and datetime are unknown; register these files together with, or after, the group's "
            "data files"
        )
    grids = [_grid(assets[key]) for key in data]
    times = [_time(assets[key]) for key in data]
    one_grid = all(grid == grids[0] for grid in grids)
    geometry, bbox = union_footprint(grids)
    props: dict[str, Any] = {k: v for k, v in (properties or {}).items() if k not in _DERIVED}
    first_time = times[0]
    props["datetime"] = first_time.get("datetime")
    props.update({k: v for k, v in first_time.items() if k != "datetime"})
    if one_grid:
        props.update(copy.deepcopy(grids[0]))
    props[GROUP] = marker
    out_assets: dict[str, dict] = {}
    for key in sorted(assets):
        asset = {k: v for k, v in assets[key].items() if k not in PROJ_FIELDS and k not in TIME_FIELDS}
        if key in data:
            if not one_grid:
                asset.update(copy.deepcopy(_grid(assets[key])))
            if _time(assets[key]) != first_time:
                asset.update(_time(assets[key]))
        out_assets[key] = asset
    doc: dict[str, Any] = {
        "type": "Feature",
        "stac_version": "1.1.0",
        "stac_extensions": [],
        "id": item_id,
        "geometry": geometry,
        "bbox": bbox,
        "properties": props,
        "links": [dict(link) for link in links],
        "assets": out_assets,
    }
    if collection is not None:
        doc["collection"] = collection
    doc["stac_extensions"] = _extensions(doc)
    return doc


def _extensions(doc: dict) -> list[str]:
    # rasterio loads with producer.extract.raster: only when an item is composed
    from producer.extract.raster import used_extensions  # noqa: PLC0415 (rasterio: ~0.8 s)

    found = used_extensions(doc)
    if any(k.startswith("processing:") for k in doc.get("properties") or {}):
        found.append(provenance.PROCESSING_EXT)  # pipeline metadata (provenance.apply)
    return found


# --- merging and removing ----------------------------------------------------------


def _other_properties(doc: Mapping[str, Any] | None) -> dict[str, Any]:
    return {k: v for k, v in ((doc or {}).get("properties") or {}).items() if k not in _DERIVED}


def merge(
    existing: dict | None,
    incoming: dict,
    *,
    where: str,
    replace: bool = False,
    item_key: str | None = None,
    root_url: str | None = None,
) -> dict:
    """The item after ``incoming``'s assets are added to (or replace the same
    keys of) ``existing``, everything derived recomputed (:func:`compose`).
    Raises :class:`IdentityConflict` (see the module docstring) unless
    ``replace``; then a single-product item is replaced, and an asset key
    another product holds is taken over. A rendered thumbnail never takes
    the place of the group's own ``thumbnail`` file, even with ``replace``
    (:class:`ThumbnailAssetTaken`; ``item_key``, ``root_url``: where the
    item is, to tell a rendered one). Pure; mutates nothing."""
    item_id = str(incoming.get("id"))
    new = expanded_assets(incoming)
    if existing is None or (replace and GROUP not in (existing.get("properties") or {})):
        if incoming.get("geometry") is None:  # sidecars only: their item's data is still to come
            raise DataAssetsPending(item_id, where, sorted(new))
        return copy.deepcopy(incoming)
    if GROUP not in (existing.get("properties") or {}):
        raise IdentityConflict(
            item_id,
            where,
            product_href(existing) or "another product",
            f"the assets {', '.join(sorted(new))} of a multi-asset item",
        )
    old = expanded_assets(existing)
    own = old.get(thumbnail.THUMBNAIL_ASSET)
    if (
        own is not None
        and item_key is not None
        and thumbnail.THUMBNAIL_ASSET in new
        and thumbnail.is_rendered(item_key, incoming, root_url)
        and not thumbnail.is_rendered(item_key, existing, root_url)
    ):  # registered meanwhile (after _thumbnail read the item)
        by_pattern = (incoming.get("properties") or {}).get(GROUP, EXPLICIT) != EXPLICIT
        raise ThumbnailAssetTaken(item_id, where, str(own.get("href")), by_pattern=by_pattern)
    for key, asset in new.items():
        before = old.get(key)
        if (
            before is not None
            and not replace
            and not same_product(str(before.get("href")), str(asset["href"]))
        ):
            raise IdentityConflict(
                item_id, where, f"asset {key!r} = {before.get('href')}", str(asset["href"])
            )
    old = _without_renamed(old, new, item_id, where, replace)
    properties = {**_other_properties(existing), **_other_properties(incoming)}
    marker = (incoming.get("properties") or {}).get(GROUP, EXPLICIT)
    return compose(
        item_id,
        {**old, **new},
        collection=incoming.get("collection", existing.get("collection")),
        marker=marker,
        properties=properties,
        links=merge_links(existing.get("links") or (), incoming.get("links") or ()),
    )


def _without_renamed(
    old: dict[str, dict], new: Mapping[str, dict], item_id: str, where: str, replace: bool
) -> dict[str, dict]:
    """The stored assets ``old`` without those whose file an incoming asset
    of ``new`` brings under another key (the file moves to that key) when
    ``replace``; else :class:`InputError` naming both keys: the item would
    list one file twice (as one call giving a file two keys is refused)."""
    moved: list[str] = []
    for key, asset in new.items():
        for other, held in old.items():
            if other == key or other in new:
                continue
            if not same_product(str(held.get("href")), str(asset.get("href"))):
                continue
            if not replace:
                raise InputError(
                    f"item {item_id!r} ({where}): {asset.get('href')} is its asset {other!r} already; "
                    f"registered as {key!r} too, the item would list the file twice; nothing was written. "
                    f"Keep the key {other!r}, or move the file to {key!r}",
                    hints=(Hint("replace", True, f"move it from the asset key {other!r} to {key!r}"),),
                )
            moved.append(other)
    return {k: v for k, v in old.items() if k not in moved}


#: links :func:`docs.set_item_links` writes on every registration: the incoming ones win
_STRUCTURAL = frozenset({"self", "root", "parent", "collection"})


def merge_links(existing: Iterable[dict], incoming: Iterable[dict]) -> list[dict]:
    """The links of a merged item: all of ``incoming``'s, then ``existing``'s
    other (non-structural) links it lacks, so an asset registered without
    ``derived_from`` keeps the earlier ones. ``via`` (the run that
    registered): when ``incoming`` has one, it replaces the older ones, as
    ``processing:datetime`` does. Pure."""
    out = [dict(link) for link in incoming]
    present = {(link.get("rel"), link.get("href")) for link in out}
    rels = {link.get("rel") for link in out}
    for link in existing:
        rel = link.get("rel")
        if rel in _STRUCTURAL or (rel == "via" and "via" in rels):
            continue
        if (rel, link.get("href")) not in present:
            out.append(dict(link))
            present.add((rel, link.get("href")))
    return out


class ThumbnailAssetTaken(IdentityConflict):
    """The group has its own file under the asset key ``thumbnail`` (a
    ``thumbnail.tif``), and the thumbnail option would render a preview in
    its place. Nothing is written, whatever ``replace`` says: the fix is to
    render no preview, or to give that file another asset key. An
    :class:`IdentityConflict`, so a PNG written for it is deleted again
    (:func:`producer.thumbnail.pending`); its only hint turns thumbnails off."""

    def __init__(self, item_id: str, where: str, href: str, *, by_pattern: bool = True) -> None:
        self.item_id, self.where, self.existing, self.incoming = item_id, where, href, "a rendered thumbnail"
        rekey = (
            "rename that file, or change the group pattern so that its (?P<asset>...) group gives it "
            "another key"
            if by_pattern
            else "give that file another key in the assets mapping"
        )
        InputError.__init__(
            self,
            f"item {item_id!r} ({where}): its asset {thumbnail.THUMBNAIL_ASSET!r} is one of its files "
            f"({href}), and the thumbnail option would render a preview in its place; nothing was "
            f"written. {rekey[0].upper()}{rekey[1:]}",
            hints=(THUMBNAIL_OFF_HINT,),
        )


class DataAssetsPending(ConflictError):
    """Sidecar files (previews, metadata) arrived before any data file of
    their item. Retryable (``error_type`` ``storage``, as an exhausted
    compare-and-swap): Prefect retries the task and the event handler
    leaves the event to be redelivered, by when the data assets are in."""

    def __init__(self, item_id: str, where: str, keys: list[str]) -> None:
        super().__init__(
            f"item {item_id!r} ({where}) has no data file yet: its assets {', '.join(keys)} are "
            "previews or metadata, so its footprint and datetime are unknown; retry after the data "
            "assets are registered (or register them together)"
        )


def drop_assets(doc: dict, keys: Iterable[str]) -> dict | None:
    """``doc`` without the assets ``keys``, everything derived recomputed;
    ``None`` when no data asset would be left (the item itself must go).
    Keeps ``created``/``updated`` as they are. Pure."""
    gone = set(keys)
    left = {key: asset for key, asset in expanded_assets(doc).items() if key not in gone}
    if not any(is_data(asset) for asset in left.values()):
        return None
    props = doc.get("properties") or {}
    new = compose(
        str(doc["id"]),
        left,
        collection=doc.get("collection"),
        marker=props.get(GROUP, EXPLICIT),
        properties=_other_properties(doc),
        links=doc.get("links") or (),
    )
    for name in _TIMESTAMPS:
        if name in props:
            new["properties"][name] = props[name]
    return new


def catalog_file_at(source: str, catalog_url: str) -> str | None:
    """What ``source`` is, with the catalog's root, if it is a file the
    catalog at ``catalog_url`` writes itself (:func:`_catalog_file`), else None."""
    root = resolve_location(catalog_url).rstrip("/") + "/"
    what = _catalog_file(resolve_location(source), root)
    return None if what is None else f"{what} at {root}"


def not_a_product(source: str, what: str) -> InputError:
    """The error of ``source`` named as a product while it is ``what``
    (:func:`catalog_file_at`): a file the catalog writes itself."""
    return InputError(
        f"{source}: not registered: it is {what}, which the catalog writes "
        "itself, not a product; register the data file it describes, or keep products out "
        "of the catalog's own document paths"
    )


def _catalog_file(location: str, root: str) -> str | None:
    """What ``location`` is if it is a file the catalog at ``root`` writes
    itself (its root ``catalog.json``, a ``<c>/collection.json``, a partition
    catalog, an item document ``.../<id>/<id>.json``, a mirror, its
    bookkeeping, or an item's thumbnail ``c/x/x.png`` beside ``c/x/x.json``),
    else None: other files under the root (a sidecar ``meta.json`` of data
    kept there) are products."""
    if not location.startswith(root):
        return None
    key = location[len(root) :]
    parts = key.split("/")
    if key.endswith((".parquet", ".ndjson", ".lock")) or any(p.startswith(".") for p in parts):
        return "a file of the catalog's own bookkeeping"
    if is_catalog_document_key(key):
        return "the key of a catalog document (catalog.json, <collection>/collection.json, <id>/<id>.json)"
    if len(parts) >= 3 and thumbnail_key(f"{'/'.join(parts[:-1])}/{parts[-2]}.json") == key:
        return "an item thumbnail the catalog writes"
    return None


def assets_of_product(doc: Mapping[str, Any], product_href: str) -> list[str]:
    """Keys of ``doc``'s assets whose href names ``product_href``."""
    return [
        key
        for key, asset in (doc.get("assets") or {}).items()
        if isinstance(asset, dict)
        and isinstance(asset.get("href"), str)
        and same_product(asset["href"], product_href)
    ]


def is_group_item(doc: Mapping[str, Any] | None) -> bool:
    """True for an item made of several products (``producer:group``)."""
    return GROUP in ((doc or {}).get("properties") or {})

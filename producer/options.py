"""The options of :func:`producer.register`, declared once.

:class:`RegisterOptions` is the one declaration: each field carries its help
text, its CLI flag and its event-handler environment variable in
``field(metadata={"option": OptionSpec(...)})``. The CLI generates its
register flags from these fields, the event handler reads its environment
through them, the Prefect task and flows pass a ``RegisterOptions`` (or the
same names as keyword overrides) through, and :func:`producer.register`
takes one. Adding a field here adds it everywhere.

Storage options are separate for the data (the products read) and the
catalog (the documents written): they are often different buckets or
accounts. Both are secrets, and so is the pgSTAC DSN: left out of ``repr``
and never logged.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import json
import os
import re
import shlex
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import urlsplit, urlunsplit

from producer.catalog.layout import DEFAULT_MAX_LINKS, LAYOUT_FIELD, Layout
from producer.errors import Hint, InputError
from producer.extract.datetimes import compile_pattern, from_explicit
from producer.extract.ids import check_template_text
from producer.extract.options import DEFAULT_DATETIME_SOURCES
from producer.provenance import (
    Provenance,
    check_json_data,
    check_link,
    check_metadata,
    check_no_credentials,
    check_sources,
    check_utf8,
    loads_properties,
    parse_properties,
    parse_providers,
    without_credentials,
)
from producer.redact import redact
from producer.urls import check_endpoint, protocol

__all__ = [
    "DATETIME_SOURCES",
    "OptionSpec",
    "RegisterOptions",
    "check_max_retries",
    "check_switch",
    "env_phrased",
    "env_spelling",
    "flag_spelling",
    "option_spec",
    "parse_rewrites",
    "resolve_options",
]

#: the datetime sources extraction knows, in their default order
DATETIME_SOURCES: tuple[str, ...] = DEFAULT_DATETIME_SOURCES

#: how an option's value is written outside Python (CLI flag, environment
#: variable): one text, a switch, a whole number, one of ``choices``, a
#: repeatable text, a JSON object, repeatable ``KEY=VALUE`` pairs, a secret
#: text (never shown; its CLI flag also reads its environment variable, so
#: it need not be typed on a command line)
Kind = Literal["text", "switch", "number", "choice", "repeat", "json", "pairs", "secret"]


@dataclass(frozen=True)
class OptionSpec:
    """How one :class:`RegisterOptions` field is offered to users."""

    help: str
    flag: str
    env: str
    kind: Kind = "text"
    metavar: str | None = None
    choices: tuple[str, ...] = ()


def _spec(help: str, flag: str, env: str, kind: Kind = "text", **extra: Any) -> dict[str, OptionSpec]:
    return {"option": OptionSpec(help=help, flag=flag, env=env, kind=kind, **extra)}


def parse_rewrites(rewrites: Iterable[str | Sequence[str]] | None) -> tuple[tuple[str, str], ...]:
    """``["FROM=TO", ...]`` or pairs → pairs; raises :class:`InputError` on bad syntax."""
    if not rewrites:  # none (every call without rules): no hint to make
        return ()
    hint = Hint("href_rewrites", ["/data=s3://bucket/data"], "rewrite the asset hrefs under /data")
    out = []
    for rule in rewrites or ():
        if isinstance(rule, str):
            if "=" not in rule:
                raise InputError(f"href rewrite {rule!r}: expected FROM=TO", hints=(hint,))
            src, dst = rule.split("=", 1)
        else:
            src, dst = rule  # a pair (a list, once it went through JSON)
        if not src:
            raise InputError(f"href rewrite {rule!r}: the FROM prefix is empty", hints=(hint,))
        _check_rewrite_target(src, dst)
        _check_rewrite_ends(src, dst)
        out.append((src, dst))
    return tuple(out)


def _check_rewrite_ends(src: str, dst: str) -> None:
    """Refuse a rule whose FROM and TO do not both end in ``/`` or both not
    (``/data/=s3://b/x``): the rest of each path would be glued to TO's last
    name (``s3://b/xa.tif``) or follow a doubled slash (``s3://b/x//a.tif``),
    hrefs that lead nowhere. The fix ends both with ``/``."""
    if not dst or src.endswith("/") == dst.endswith("/"):
        return
    fixed = f"{src.rstrip('/')}/={dst.rstrip('/')}/"
    raise InputError(
        f"href rewrite {src}={redact(dst)}: one of FROM and TO ends with '/' and the other does not, so "
        "the rest of each path would be joined to TO without a '/' or after two: end both with '/', "
        "or neither",
        hints=(Hint("href_rewrites", [redact(fixed)], "rewrite whole folders"),),
    )


def _check_rewrite_target(src: str, dst: str) -> None:
    """Refuse an http(s) TO with a query string or fragment (a SAS token, a
    presigned URL's signature): the file name would be appended after it, and
    published hrefs never carry signatures (they are dropped, taking the file
    name with them). The message shows TO without its query: never the secret."""
    if protocol(dst) not in ("http", "https"):
        return  # an object key may hold '?' or '#' literally
    parts = urlsplit(dst)
    if not parts.query and not parts.fragment and not dst.endswith(("?", "#")):
        return
    bare = urlunsplit((parts.scheme, parts.netloc.rpartition("@")[2], parts.path, "", ""))
    raise InputError(
        f"href rewrite of {src!r} to {bare!r}: the target URL carries a query string or fragment "
        "(a signature?); the file name would go after it, and published asset hrefs never carry "
        "signatures: give the bare URL and let readers sign their own requests",
        hints=(Hint("href_rewrites", [f"{src}={bare}"], "rewrite the asset hrefs to the bare URL"),),
    )


@dataclass(frozen=True, kw_only=True)
class RegisterOptions:
    """Every option of :func:`producer.register`; immutable, validated on creation.

    Bad values a user can type (an unknown partition scheme or datetime
    source, a malformed href rewrite, a batch size of 0) raise
    :class:`~producer.errors.InputError` with hints each caller spells;
    values of the wrong type (a number for a switch), which only Python
    passes, raise :class:`TypeError`. Dicts are copied, lists
    become tuples; nothing the caller passed is kept or mutated.
    """

    collection_meta: dict[str, Any] | None = field(
        default=None,
        hash=False,
        metadata=_spec(
            "Metadata of a new collection as a JSON object (title, description, license, "
            "keywords, providers, ...; not id, type, stac_version, links or extent, which the "
            "producer writes).",
            "--collection-meta",
            "STAC_COLLECTION_META",
            "json",
            metavar="JSON",
        ),
    )
    root_meta: dict[str, Any] | None = field(
        default=None,
        hash=False,
        metadata=_spec(
            "Metadata of a new root catalog as a JSON object (id, title, description).",
            "--root-meta",
            "STAC_ROOT_META",
            "json",
            metavar="JSON",
        ),
    )
    partition: str | None = field(
        default=None,
        metadata=_spec(
            "Put items under <collection>/<YYYY>[/<MM>]/ sub-catalogs.",
            "--partition",
            "STAC_PARTITION",
            "choice",
            choices=("year", "year/month"),
        ),
    )
    max_links: int = field(
        default=DEFAULT_MAX_LINKS,
        metadata=_spec(
            "Item links a partition catalog of a new partitioned collection holds before new items "
            "of its period go to a finer period below it (recorded in the collection).",
            "--max-links",
            "STAC_MAX_LINKS",
            "number",
        ),
    )
    datetime: str | None = field(
        default=None,
        metadata=_spec(
            "Explicit datetime or range for every product.",
            "--datetime",
            "STAC_DATETIME",
            metavar="ISO|START/END",
        ),
    )
    datetime_pattern: str | None = field(
        default=None,
        metadata=_spec(
            "Regex on the file name (not its folders): named groups year/month/day[/hour/minute/second], "
            "year/doy (day of the year), start/end, datetime, or one group holding a date.",
            "--datetime-pattern",
            "STAC_DATETIME_PATTERN",
            metavar="REGEX",
        ),
    )
    datetime_sources: tuple[str, ...] = field(
        default=DATETIME_SOURCES,
        metadata=_spec(
            "Order of datetime sources to try (repeatable; default explicit, filename, tags).",
            "--datetime-source",
            "STAC_DATETIME_SOURCES",
            "repeat",
            choices=DATETIME_SOURCES,
        ),
    )
    id_template: str = field(
        default="{stem}",
        metadata=_spec(
            "Item id template: {stem}, {name}, {parent}, {collection}.",
            "--id-template",
            "STAC_ID_TEMPLATE",
        ),
    )
    group: str | None = field(
        default=None,
        metadata=_spec(
            "Make multi-asset items: a regex searched in each product's path or URL, whose named "
            "groups id and asset give the item id and the asset key, e.g. "
            "'(?P<id>[^/]+)/(?P<asset>[^/]+)\\.(tif|png)$'. Products of one id become one item; "
            "a later product of it merges into the item.",
            "--group",
            "STAC_GROUP",
            metavar="REGEX",
        ),
    )
    asset_key: str | None = field(
        default=None,
        metadata=_spec(
            "Key of the asset of single-product items (default data); such items take more "
            "assets by later registrations under other keys.",
            "--asset-key",
            "STAC_ASSET_KEY",
            metavar="KEY",
        ),
    )
    #: ``FROM=TO`` texts or ``(FROM, TO)`` pairs on input; always pairs once created
    href_rewrites: tuple[str | tuple[str, str], ...] = field(
        default=(),
        metadata=_spec(
            "Rewrite asset href prefixes, e.g. /data=s3://bucket/data (repeatable).",
            "--href-rewrite",
            "STAC_HREF_REWRITES",
            "repeat",
            metavar="FROM=TO",
        ),
    )
    absolute_hrefs: bool = field(
        default=False,
        metadata=_spec(
            "Write absolute asset hrefs even for products under the catalog root (default: "
            "relative to the item document there, so the catalog can be moved or served over HTTP).",
            "--absolute-hrefs",
            "STAC_ABSOLUTE_HREFS",
            "switch",
        ),
    )
    stats: bool = field(
        default=False,
        metadata=_spec(
            "Compute band statistics (from overviews when present).", "--stats", "STAC_STATS", "switch"
        ),
    )
    checksum: bool = field(
        default=False,
        metadata=_spec(
            "Add a sha2-256 file:checksum (reads whole files).", "--checksum", "STAC_CHECKSUM", "switch"
        ),
    )
    dry_run: bool = field(
        default=False,
        metadata=_spec("Extract and validate; write nothing.", "--dry-run", "STAC_DRY_RUN", "switch"),
    )
    batch_size: int = field(
        default=500,
        metadata=_spec(
            "Products committed per parent compare-and-swap.", "--batch-size", "STAC_BATCH_SIZE", "number"
        ),
    )
    workers: int = field(
        default=0,
        metadata=_spec(
            "Workers extracting a batch's products in parallel (0: automatic, one per core (within a "
            "container's CPU quota) for "
            "batches of 32 products or more, else 1).",
            "--workers",
            "STAC_WORKERS",
            "number",
        ),
    )
    durability: str = field(
        default="fsync",
        metadata=_spec(
            "Local catalogs: 'fsync' makes every write durable before it counts as done (survives a "
            "power loss); 'os' fsyncs nothing, faster: a killed process is as safe as with fsync, "
            "but a power loss may lose the last writes, which 'reconcile --fix' repairs.",
            "--durability",
            "STAC_DURABILITY",
            "choice",
            choices=("fsync", "os"),
        ),
    )
    max_retries: int = field(
        default=25,
        metadata=_spec(
            "Compare-and-swap attempts per parent document before giving up.",
            "--max-retries",
            "STAC_MAX_RETRIES",
            "number",
        ),
    )
    ack: str = field(
        default="linked",
        metadata=_spec(
            "When a register contended by other writers of the collection returns: 'linked' (default) "
            "once its items are linked; 'durable' once the change is stored and a live leader is bound "
            "to link it (faster with many writers; the result says the link is pending).",
            "--ack",
            "STAC_ACK",
            "choice",
            choices=("linked", "durable"),
        ),
    )
    replace: bool = field(
        default=False,
        metadata=_spec(
            "Overwrite an existing item that has the same id but describes another product "
            "(default: refuse; or tell them apart with another id template).",
            "--replace",
            "STAC_REPLACE",
            "switch",
        ),
    )
    data_storage_options: dict[str, Any] | None = field(
        default=None,
        repr=False,
        hash=False,
        metadata=_spec(
            "fsspec storage option for reading the products only, repeatable "
            "(endpoint_url=... sets the S3 endpoint; VALUE is read as JSON as with -o).",
            "--data-storage-option",
            "STAC_DATA_STORAGE_OPTIONS",
            "pairs",
            metavar="KEY=VALUE",
        ),
    )
    catalog_storage_options: dict[str, Any] | None = field(
        default=None,
        repr=False,
        hash=False,
        metadata=_spec(
            "fsspec storage option for the catalog only, repeatable "
            "(endpoint_url=... sets the S3 endpoint; VALUE is read as JSON as with -o).",
            "--catalog-storage-option",
            "STAC_CATALOG_STORAGE_OPTIONS",
            "pairs",
            metavar="KEY=VALUE",
        ),
    )
    #: a secret (it may hold a password): never in ``repr``, logs or messages
    pgstac: str | None = field(
        default=None,
        repr=False,
        metadata=_spec(
            "pgSTAC database to keep in step with the catalog, as a PostgreSQL DSN "
            "(postgresql://USER@HOST:PORT/DBNAME); checked before anything is written, "
            "then every committed item is upserted there. A password never on the command line "
            "(ps and the shell history show it): in PGPASSWORD or ~/.pgpass, or the whole DSN "
            "in STAC_PGSTAC_DSN.",
            "--pgstac",
            "STAC_PGSTAC_DSN",
            "secret",
            metavar="DSN",
        ),
    )

    sns_topic: str | None = field(
        default=None,
        metadata=_spec(
            "Amazon SNS topic to publish one message per created, updated or removed item to "
            "(arn:aws:sns:REGION:ACCOUNT:NAME; the item JSON as the body, attributes to filter on). "
            "Needs boto3 and the permission sns:Publish; AWS credentials come from the environment.",
            "--sns-topic",
            "STAC_SNS_TOPIC",
            metavar="ARN",
        ),
    )

    #: a mapping, or ``KEY=VALUE`` texts (VALUE read as JSON when it is JSON); a dict once created
    properties: dict[str, Any] | tuple[str, ...] | None = field(
        default=None,
        hash=False,
        metadata=_spec(
            "Extra item property, repeatable; VALUE is read as JSON when it is JSON "
            "(--property processing:level=L2 --property eo:cloud_cover=12.5); KEY is no "
            "top-level item field (id, geometry, bbox, links, assets, ...).",
            "--property",
            "STAC_PROPERTIES",
            "repeat",
            metavar="KEY=VALUE",
        ),
    )
    derived_from: tuple[str, ...] = field(
        default=(),
        metadata=_spec(
            "An input the products were made from (a product URL or an item's href): "
            "a rel=derived_from link on each item (repeatable).",
            "--derived-from",
            "STAC_DERIVED_FROM",
            "repeat",
            metavar="URL",
        ),
    )
    via: tuple[str, ...] = field(
        default=(),
        metadata=_spec(
            "The run or job that wrote the products (e.g. its web page): a rel=via link on each "
            "item (repeatable; the Prefect task adds its flow run itself).",
            "--via",
            "STAC_VIA",
            "repeat",
            metavar="URL",
        ),
    )
    software: dict[str, Any] | None = field(
        default=None,
        hash=False,
        metadata=_spec(
            "The pipeline's software and version, repeatable: processing:software of each item "
            "(with stac-producer's own version), and processing:datetime.",
            "--software",
            "STAC_SOFTWARE",
            "pairs",
            metavar="NAME=VERSION",
        ),
    )
    lineage: str | None = field(
        default=None,
        metadata=_spec(
            "How the products were made, in words: processing:lineage of each item.",
            "--lineage",
            "STAC_LINEAGE",
            metavar="TEXT",
        ),
    )
    item_license: str | None = field(
        default=None,
        metadata=_spec(
            "The products' licence (SPDX id, e.g. CC-BY-4.0, or 'other'): each item's license "
            "(--license sets a new collection's).",
            "--item-license",
            "STAC_ITEM_LICENSE",
            metavar="SPDX",
        ),
    )
    #: mappings or texts (``NAME[:ROLES[:URL]]`` or a JSON object); provider dicts once created
    item_providers: tuple[Any, ...] = field(
        default=(),
        hash=False,
        metadata=_spec(
            "A provider of the products as NAME[:ROLES[:URL]] or a JSON object: each item's "
            "providers (repeatable; ROLES among licensor,producer,processor,host; --provider "
            "sets a new collection's).",
            "--item-provider",
            "STAC_ITEM_PROVIDERS",
            "repeat",
            metavar="PROVIDER",
        ),
    )
    thumbnail: bool = field(
        default=False,
        metadata=_spec(
            "Render a PNG preview (at most 600 px, from overviews) into the catalog beside each "
            "item, as its 'thumbnail' asset.",
            "--thumbnail",
            "STAC_THUMBNAIL",
            "switch",
        ),
    )

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            kind = option_spec(f).kind
            value = getattr(self, f.name)
            if kind == "switch" and not isinstance(value, bool):
                raise TypeError(f"RegisterOptions.{f.name} must be True or False, not {value!r}")
            if kind == "number" and (not isinstance(value, int) or isinstance(value, bool)):
                raise TypeError(f"RegisterOptions.{f.name} must be an int, not {value!r}")
            if kind in ("json", "pairs") and value is not None:
                if not isinstance(value, Mapping):
                    raise TypeError(
                        f"RegisterOptions.{f.name} must be a dict or None, not {type(value).__name__}"
                    )
                object.__setattr__(self, f.name, dict(value))
            if kind in ("text", "choice", "secret") and value is not None and not isinstance(value, str):
                shown = type(value).__name__ if kind == "secret" else repr(value)
                raise TypeError(f"RegisterOptions.{f.name} must be a str, not {shown}")
        for name, least in (("batch_size", 1), ("max_links", 1), ("workers", 0), ("max_retries", 0)):
            _at_least(name, getattr(self, name), least)
        if self.durability not in ("fsync", "os"):
            raise InputError(
                f"unknown durability {self.durability!r}: use 'fsync' (default: survives a power loss) "
                "or 'os' (no fsync: faster, a power loss may lose the last writes)",
                hints=(Hint("durability", "os", "skip fsync on a local catalog"),),
            )
        if self.ack not in ("linked", "durable"):
            raise InputError(
                f"unknown ack {self.ack!r}: use 'linked' (default: a register returns once its items "
                "are linked) or 'durable' (it may return once the change is stored, the link pending)",
                hints=(Hint("ack", "durable", "return once the change is durable"),),
            )
        if self.id_template is None:
            raise TypeError("RegisterOptions.id_template must be a str, not None")
        # refused once here (a usage error), not once per product at extraction
        check_template_text(self.id_template)  # parses it too
        from_explicit(self.datetime)
        if self.datetime_pattern is not None:
            compile_pattern(self.datetime_pattern)
        Layout(self.partition, self.max_links)  # an unknown scheme is the user's InputError
        sources = self.datetime_sources
        if isinstance(sources, str):
            raise TypeError(f"RegisterOptions.datetime_sources must be a sequence of names, not {sources!r}")
        sources = tuple(sources or DATETIME_SOURCES)
        unknown = [s for s in sources if s not in DATETIME_SOURCES]
        if unknown:
            raise InputError(
                f"unknown datetime source(s) {', '.join(map(repr, unknown))}: use {', '.join(DATETIME_SOURCES)}",
                hints=(Hint("datetime_sources", list(DATETIME_SOURCES), "try every source in this order"),),
            )
        object.__setattr__(self, "datetime_sources", sources)
        _check_datetime_sources_use(self.datetime, self.datetime_pattern, sources)
        if isinstance(self.href_rewrites, str):
            raise TypeError(
                f"RegisterOptions.href_rewrites must be a sequence of rules, not {self.href_rewrites!r}"
            )
        object.__setattr__(self, "href_rewrites", parse_rewrites(self.href_rewrites))
        _check_meta("collection_meta", self.collection_meta)
        _check_meta("root_meta", self.root_meta)
        check_json_data(self.collection_meta, "the metadata of a new collection")
        check_json_data(self.root_meta, "the metadata of a new root catalog")
        _check_meta_valid("collection_meta", self.collection_meta)
        _check_meta_valid("root_meta", self.root_meta)
        check_no_credentials(self.collection_meta, "the metadata of a new collection", "the collection")
        check_no_credentials(self.root_meta, "the metadata of a new root catalog", "the root catalog")
        for name in ("collection_meta", "root_meta"):
            # published in the new collection (its title in every item's link)
            # or root: each URL in it as a link's href is, as the item texts are
            meta = getattr(self, name)
            if meta is not None:
                object.__setattr__(self, name, without_credentials(meta))
        # an endpoint without its scheme: refused here, not by botocore on first use
        # (the fix names the option they came from: storage_options, -o, when given once)
        check_endpoint(
            self.data_storage_options, "the products' storage options", self.data_storage_option_name
        )
        check_endpoint(
            self.catalog_storage_options, "the catalog's storage options", self.catalog_storage_option_name
        )
        for name in ("derived_from", "via"):
            value = getattr(self, name)
            if isinstance(value, str | os.PathLike):
                raise TypeError(f"RegisterOptions.{name} must be a sequence of URLs, not {value!r}")
            # a pathlib.Path links as its text does (as every other path argument takes one)
            object.__setattr__(
                self, name, tuple(os.fspath(v) if isinstance(v, os.PathLike) else v for v in value or ())
            )
        # the pipeline's metadata (producer.provenance): checked once, here
        for what, value in (
            ("the lineage", self.lineage),
            ("the software", self.software),
            ("the item providers", self.item_providers),
            ("the item licence", self.item_license),
            ("the links to the inputs (derived_from)", self.derived_from),
            ("the links to the run (via)", self.via),
        ):
            check_utf8(value, what)
        properties = parse_properties(self.properties)
        object.__setattr__(self, "properties", properties)
        object.__setattr__(self, "item_providers", parse_providers(self.item_providers))
        check_no_credentials(list(self.item_providers), "the item providers", "every item")
        check_metadata(properties, self.item_license, self.item_providers)
        check_sources(
            properties,
            self.software,
            self.lineage,
            license=self.item_license,
            providers=self.item_providers,
        )
        for name in ("derived_from", "via"):
            for href in getattr(self, name):
                check_link(href, name)

    @property
    def data_storage_option_name(self) -> str:
        """The option the products' storage options came from, as a fix names
        it: ``storage_options`` (``-o``) when the catalog shares them, else
        ``data_storage_options``."""
        shared = self.data_storage_options == self.catalog_storage_options
        return "storage_options" if shared else "data_storage_options"

    @property
    def catalog_storage_option_name(self) -> str:
        """The option the catalog's storage options came from, as a fix names
        it: ``storage_options`` (``-o``) when the products share them, else
        ``catalog_storage_options``."""
        shared = self.data_storage_options == self.catalog_storage_options
        return "storage_options" if shared else "catalog_storage_options"

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> RegisterOptions:
        """Options from the fields' environment variables (``STAC_ID_TEMPLATE``, ...);
        unset or empty variables keep the defaults. Raises :class:`InputError`
        naming a variable whose value cannot be read, or a value the options
        refuse, with its hints spelled as variables (``STAC_BATCH_SIZE=500``)."""
        values: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            spec = option_spec(f)
            text = (environ.get(spec.env) or "").strip()
            if text:
                values[f.name] = _from_text(spec, text)
        if values.get("group") and "id_template" in values:  # set, even to the default {stem}
            raise InputError(
                f"STAC_GROUP and STAC_ID_TEMPLATE ({values['id_template']!r}) cannot be combined: with a "
                "group pattern each item's id is the pattern's (?P<id>...) group, and the id template "
                "would be ignored; unset STAC_ID_TEMPLATE, or change that group of the pattern"
            )
        try:
            return cls(**values)
        except InputError as exc:
            raise env_phrased(exc) from None


def _check_datetime_sources_use(datetime: str | None, pattern: str | None, sources: tuple[str, ...]) -> None:
    """Refuse an explicit datetime or a file-name pattern that ``sources``
    would never reach (a pattern is read by the ``filename`` source only, and
    an explicit datetime tried before it always answers): silently ignored,
    every item would get the other date. :class:`InputError` naming the
    sources that use both, in an order that does."""
    listed = ", ".join(sources)
    if pattern is not None and "filename" not in sources:
        raise InputError(
            f"a file-name datetime pattern was given, but the datetime sources ({listed}) leave out "
            "'filename', which alone reads it: it would never be used; leave the pattern out, or add "
            "the file name to the sources",
            hints=(Hint("datetime_sources", ["filename", *sources], "read the file name with the pattern"),),
        )
    if datetime is not None and "explicit" not in sources:
        raise InputError(
            f"an explicit datetime was given, but the datetime sources ({listed}) leave out 'explicit': "
            "it would never be used; leave it out, or add 'explicit' to the sources",
            hints=(Hint("datetime_sources", [*sources, "explicit"], "fall back to the explicit datetime"),),
        )
    if datetime is not None and pattern is not None and sources.index("explicit") < sources.index("filename"):
        order = ["filename", "explicit", *(s for s in sources if s not in ("filename", "explicit"))]
        raise InputError(
            f"an explicit datetime and a file-name datetime pattern were both given, and the explicit "
            f"datetime comes first in the datetime sources ({listed}): the pattern would never be used; "
            "give only one of them, or try the file name first",
            hints=(
                Hint(
                    "datetime_sources",
                    order,
                    "read the file name with the pattern, the explicit datetime where it does not match",
                ),
            ),
        )


#: what the number options count, for their messages
_COUNTS = {
    "batch_size": "products committed per parent write (the batch size)",
    "max_links": "item links a partition catalog holds",
    "workers": "extraction workers",
    "max_retries": "write retries per parent document",
}


def _at_least(name: str, value: int, least: int) -> None:
    """Refuse a number option below ``least``, naming the option's default
    as the fix (so that each caller spells the option: ``--batch-size 500``,
    ``batch_size=500``, ``STAC_BATCH_SIZE=500``)."""
    if value >= least:
        return
    does = "the default" + (": automatic" if name == "workers" else "")
    raise InputError(
        f"the {_COUNTS[name]} must be at least {least}, not {value}",
        hints=(Hint(name, _DEFAULTS[name], does),),
    )


#: fields of a new collection (root catalog) the producer writes itself: a
#: metadata option giving them would make the document another collection's,
#: or no STAC, or break its links; each with why, for the message
_STRUCTURAL: dict[str, dict[str, str]] = {
    "collection_meta": {
        "id": "it is the collection's id, which the collection names",
        "type": "the producer writes 'Collection'",
        "stac_version": "the producer writes the version its documents follow",
        "links": "the producer links the collection into the catalog",
        "extent": "the producer computes it from the items",
        LAYOUT_FIELD: "the producer records the collection's layout",
    },
    "root_meta": {
        "type": "the producer writes 'Catalog'",
        "stac_version": "the producer writes the version its documents follow",
        "links": "the producer links the catalog's collections",
    },
}
#: the roles a STAC provider takes (the schema's enumeration)
_PROVIDER_ROLES = ("licensor", "producer", "processor", "host")

_META_HINTS = {
    "collection_meta": Hint("collection_meta", {"title": "NDVI"}, "give the new collection's metadata"),
    "root_meta": Hint("root_meta", {"title": "Products"}, "give the new root catalog's metadata"),
}


def _check_meta(name: str, meta: Mapping[str, Any] | None) -> None:
    """Refuse a field the producer writes itself in ``collection_meta`` or
    ``root_meta`` (:data:`_STRUCTURAL`), before anything is written."""
    for key, why in _STRUCTURAL[name].items():
        if meta is None or key not in meta:
            continue
        what = "a new collection" if name == "collection_meta" else "a new root catalog"
        hints = [_META_HINTS[name]]
        if name == "collection_meta" and key == "id" and isinstance(meta[key], str) and meta[key]:
            hints.append(Hint("collection", meta[key], f"register into the collection {meta[key]!r}"))
        raise InputError(
            f"the metadata of {what} cannot set {key!r} ({why}): leave it out", hints=tuple(hints)
        )


#: characters an SPDX id holds (the schema's pattern for ``license``)
_LICENSE_CHARS = re.compile(r"[^\w\-.+]+")


def _check_meta_valid(name: str, meta: Mapping[str, Any] | None) -> None:
    """Refuse ``collection_meta`` or ``root_meta`` that make a new collection
    (root catalog) the STAC schema refuses (``license: 'CC BY'``, a number
    as title): an :class:`InputError` naming the field, before anything is
    written, instead of every product failing as an invalid document."""
    if not meta:
        return
    from producer.catalog import documents as docs  # noqa: PLC0415 (only with metadata given)
    from producer.validate import default_validator  # noqa: PLC0415

    stub = docs.new_collection("options", dict(meta), Layout(None)) if name == "collection_meta" else None
    problems = default_validator().errors(stub if stub is not None else docs.new_root(dict(meta)))
    # an extension schema this install does not bundle is the environment's,
    # not a value's: left to the new collection's own check (an existing one
    # takes no metadata)
    problems = [p for p in problems if "is not bundled" not in p]
    if not problems:
        return
    what = "a new collection" if name == "collection_meta" else "a new root catalog"
    why = problems[0].split(" (schema ", 1)[0]
    hint = _META_HINTS[name]
    license = meta.get("license")
    providers = meta.get("providers")
    if why.startswith("providers[") and ".roles" in why and isinstance(providers, list):
        # --provider 'ESA:Producer': the roles the schema takes, in lower case
        def roles(given: Any) -> Any:
            given = [given] if isinstance(given, str) else given
            if not isinstance(given, list):
                return given
            return [str(r).lower() for r in given if str(r).lower() in _PROVIDER_ROLES]

        listed = [{**p, "roles": roles(p.get("roles"))} if isinstance(p, Mapping) else p for p in providers]
        # a provider's url as a link's href is published: no credentials in the fix either
        hint = Hint(
            name,
            {"providers": without_credentials(listed)},
            f"provider roles among {', '.join(_PROVIDER_ROLES)}",
        )
    if why.startswith("license:") and isinstance(license, str):
        fixed = _LICENSE_CHARS.sub("-", license).strip("-") or "other"
        hint = Hint(
            name, {"license": fixed}, "an SPDX license id (letters, digits, '-', '.', '+'), or 'other'"
        )
    raise InputError(f"the metadata of {what} is not valid STAC ({why})", hints=(hint,))


def check_max_retries(value: Any) -> int:
    """``max_retries`` of a verb that takes it apart from the options
    (``remove``, ``reconcile``), checked as :class:`RegisterOptions` checks
    its own: :class:`TypeError` for a value that is no int, and
    :class:`InputError` below 0 (naming the default as the fix)."""
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"max_retries must be an int, not {value!r}")
    _at_least("max_retries", value, 0)
    return value


def check_switch(name: str, value: Any, *, optional: bool = False) -> None:
    """A verb's own switch (``fix``, ``expand``, ...) checked as
    :class:`RegisterOptions` checks its own: :class:`TypeError` for a value
    that is not True or False (or None, when ``optional``): ``fix="no"`` is
    true, and would write."""
    if not isinstance(value, bool) and not (optional and value is None):
        allowed = "True, False or None" if optional else "True or False"
        raise TypeError(f"{name} must be {allowed}, not {value!r}")


def option_spec(f: dataclasses.Field[Any]) -> OptionSpec:
    """The :class:`OptionSpec` of a :class:`RegisterOptions` field."""
    spec = f.metadata["option"]
    assert isinstance(spec, OptionSpec)
    return spec


#: the default of each field that has a plain one
_DEFAULTS: dict[str, Any] = {
    f.name: f.default for f in dataclasses.fields(RegisterOptions) if f.default is not dataclasses.MISSING
}


def _specs() -> dict[str, OptionSpec]:
    return {f.name: option_spec(f) for f in dataclasses.fields(RegisterOptions)}


def _from_text(spec: OptionSpec, text: str) -> Any:
    """An environment variable's text → the field value (see :data:`Kind`)."""
    if spec.kind == "switch":
        lowered = text.lower()
        if lowered in ("1", "true", "yes", "on"):
            return True
        if lowered in ("0", "false", "no", "off"):
            return False
        raise InputError(f"environment variable {spec.env}={text!r} is not a switch: use true or false")
    if spec.kind == "number":
        try:
            return int(text)
        except ValueError:
            raise InputError(f"environment variable {spec.env}={text!r} is not a whole number") from None
    if spec.kind == "repeat" and text[:1] in "{[":
        # a JSON object or list (values that hold commas): STAC_PROPERTIES='{"a": [1, 2]}'
        try:
            return loads_properties(text) if spec.env == "STAC_PROPERTIES" else json.loads(text)
        except InputError as exc:  # a version JSON would not keep as typed
            raise env_phrased(exc) from None
        except ValueError as exc:
            raise InputError(f"environment variable {spec.env} is not valid JSON ({exc})") from None
    if spec.kind == "repeat":
        return tuple(part.strip() for part in text.split(",") if part.strip())
    if spec.kind in ("json", "pairs"):
        try:
            value = json.loads(text)
        except ValueError as exc:
            raise InputError(
                f"environment variable {spec.env} is not valid JSON ({exc}); give a JSON object"
                f"{_object_meant(spec, text)}"
            ) from None
        if not isinstance(value, dict):
            raise InputError(
                f"environment variable {spec.env} must be a JSON object, got {type(value).__name__}"
            )
        return value
    return text


def _object_meant(spec: OptionSpec, text: str) -> str:
    """The JSON object an environment variable given as the flag's
    ``KEY=VALUE`` pairs (``ndvi=1.4.2,gdal=3.8``) means, as ``, e.g.
    NAME='{...}'``; empty for other text. The values of storage options
    are left out (``"..."``): they may be credentials."""
    parts = [part.strip() for part in text.split(",")]
    if spec.kind != "pairs" or not parts or not all("=" in p and p.split("=", 1)[0].strip() for p in parts):
        return ""
    secret = spec.env.endswith("STORAGE_OPTIONS")
    meant = {k.strip(): "..." if secret else v.strip() for k, v in (p.split("=", 1) for p in parts)}
    return f", e.g. {spec.env}={shlex.quote(json.dumps(meant))}"


def resolve_options(
    options: RegisterOptions | None = None,
    storage_options: Mapping[str, Any] | None = None,
    *,
    keywords: Sequence[str] = (),
    **overrides: Any,
) -> RegisterOptions:
    """``options`` (default: all defaults) with ``overrides`` applied by field
    name, and ``storage_options`` as the shorthand for the data and the
    catalog storage options that are not set otherwise.

    Raises :class:`TypeError` naming the valid names for an unknown override
    (and the one meant, among them and the caller's own ``keywords``:
    ``progres`` is ``progress``, not ``properties``), and whatever
    :class:`RegisterOptions` raises for a bad value.
    """
    if options is not None and not isinstance(options, RegisterOptions):
        raise TypeError(f"options must be a RegisterOptions, not {type(options).__name__}")
    unknown = sorted(set(overrides).difference(_field_names()))
    if unknown:
        names = list(_field_names())
        meant = [m for u in unknown for m in difflib.get_close_matches(u, [*names, *keywords], n=1)]
        guess = f" (did you mean {', '.join(map(repr, meant))}?)" if meant else ""
        raise TypeError(f"unknown registration option(s) {unknown}{guess}; the options are {names}")
    if storage_options is not None:
        for name in ("data_storage_options", "catalog_storage_options"):
            if overrides.get(name) is None and (options is None or getattr(options, name) is None):
                overrides[name] = storage_options
    if options is None:  # one construction (and one check of every field), not two
        key = _resolution_key(overrides)
        if key is None:
            return RegisterOptions(**overrides)
        resolved = _RESOLVED.get(key)
        if resolved is None:
            resolved = RegisterOptions(**overrides)
            if _immutable(resolved):
                if len(_RESOLVED) >= _RESOLVED_KEPT:
                    _RESOLVED.clear()  # one call: safe beside other threads
                _RESOLVED[key] = resolved
        return resolved
    return dataclasses.replace(options, **overrides) if overrides else options


#: options made from plain values and checked (RegisterOptions is frozen),
#: by those values: a process registering one product per call
#: (``register([one], durability="os")``) does not check every field again
_RESOLVED: dict[tuple[tuple[str, type, Any], ...], RegisterOptions] = {}
_RESOLVED_KEPT = 64
_PLAIN = frozenset((str, int, float, bool, type(None)))


def _resolution_key(overrides: Mapping[str, Any]) -> tuple[tuple[str, type, Any], ...] | None:
    """The :data:`_RESOLVED` key of ``overrides``: each name with its
    value's type (``True`` is not ``1``: one is refused) and value; None
    when a value is not a plain scalar (a dict may change after) or names
    a secret (none is kept beyond its call)."""
    if not _PLAIN.issuperset(map(type, overrides.values())):
        return None
    specs = _specs_by_name()
    if any(specs[name].kind == "secret" for name in overrides):
        return None
    return tuple(sorted((name, type(value), value) for name, value in overrides.items()))


def _immutable(options: RegisterOptions) -> bool:
    """Whether every field of ``options`` is a plain scalar, or a tuple of
    them: the object can be handed to every later caller."""

    def plain(value: Any) -> bool:
        return type(value) in _PLAIN or (type(value) is tuple and all(map(plain, value)))

    return all(plain(getattr(options, f.name)) for f in dataclasses.fields(options))


_SPECS: dict[str, OptionSpec] = {}


@functools.cache
def _field_names() -> tuple[str, ...]:
    """The names of :class:`RegisterOptions`' fields, in order (found once:
    every ``register`` call checks its overrides against them)."""
    return tuple(f.name for f in dataclasses.fields(RegisterOptions))


def _specs_by_name() -> dict[str, OptionSpec]:
    if not _SPECS:
        _SPECS.update(_specs())
    return _SPECS


def changed_fields(options: RegisterOptions) -> dict[str, Any]:
    """The fields of ``options`` that differ from the defaults, by name."""
    default = RegisterOptions()
    return {
        f.name: getattr(options, f.name)
        for f in dataclasses.fields(RegisterOptions)
        if getattr(options, f.name) != getattr(default, f.name)
    }


def _quoted(example: Any) -> str:
    if isinstance(example, (list, tuple)):
        return " ".join(shlex.quote(str(v)) for v in example)
    return shlex.quote(str(example))


def _pair_value(value: Any) -> str:
    """A ``KEY=VALUE`` pair's VALUE as the CLI reads it back: a text that
    is not JSON as it is, anything else (and a text that would read as JSON:
    ``"12"``) as JSON."""
    if isinstance(value, str):
        try:
            json.loads(value)
        except ValueError:
            return value
    return json.dumps(value)


def flag_spelling(hint: Hint) -> str:
    """A hint as the CLI writes it: ``--id-template '{parent}_{stem}'``,
    ``--replace``; a switch to turn off, or an option to leave out
    (``partition=None``), as ``--thumbnail left out``; a
    mapping as the flag takes it: repeated ``KEY=VALUE``
    pairs (``--property processing:level=L2``) or one JSON object
    (``--collection-meta '{"title": "NDVI"}'``); ``storage_options``, the
    shorthand for the data and the catalog, as ``-o KEY=VALUE`` pairs (every
    command that reads storage takes ``-o``); a hint naming a verb as that
    command: ``stac-producer reconcile CATALOG --fix``."""
    if hint.verb:
        flag = flag_spelling(Hint(hint.option, hint.example, hint.does))
        return f"stac-producer {hint.verb} CATALOG {flag}"
    if hint.option == "storage_options" and isinstance(hint.example, Mapping):
        # -o reads a value as JSON when it is JSON (config_kwargs={"read_timeout": 120})
        return " ".join(f"-o {shlex.quote(f'{k}={_pair_value(v)}')}" for k, v in hint.example.items())
    spec = _specs().get(hint.option)
    flag = spec.flag if spec is not None else "--" + hint.option.replace("_", "-")
    if hint.example is False or hint.example is None:  # a switch to leave off, an option to leave out
        return f"{flag} left out"
    if isinstance(hint.example, bool) or (spec is not None and spec.kind == "switch"):
        return flag
    if isinstance(hint.example, Mapping):
        if spec is not None and spec.kind in ("pairs", "repeat"):
            # "pairs" take VALUE as text, except storage options; "repeat" (--property) and
            # storage options read it as JSON when it is JSON (client_kwargs={"region_name": ...})
            as_json = spec.kind == "repeat" or hint.option.endswith("storage_options")
            value = _pair_value if as_json else str
            return " ".join(f"{flag} {shlex.quote(f'{k}={value(v)}')}" for k, v in hint.example.items())
        return f"{flag} {shlex.quote(json.dumps(hint.example))}"
    if isinstance(hint.example, (list, tuple)):
        return " ".join(f"{flag} {shlex.quote(str(v))}" for v in hint.example)
    return f"{flag} {_quoted(hint.example)}"


def env_spelling(hint: Hint) -> str:
    """A hint as the event handler's configuration writes it:
    ``STAC_ID_TEMPLATE='{parent}_{stem}'``, ``STAC_REPLACE=true``; a mapping
    as a JSON object, a list whose values hold commas as a JSON list; a
    hint naming a verb as the command to run (:func:`flag_spelling`): no
    variable of the handler runs another verb."""
    if hint.verb:
        return flag_spelling(hint)
    spec = _specs().get(hint.option)
    name = spec.env if spec is not None else "STAC_" + hint.option.upper()
    if hint.example is None:  # an option to leave out (partition=None)
        return f"{name} unset"
    if isinstance(hint.example, bool):
        return f"{name}={str(hint.example).lower()}"
    if isinstance(hint.example, Mapping):
        return f"{name}={shlex.quote(json.dumps(hint.example))}"
    if isinstance(hint.example, (list, tuple)):
        values = [str(v) for v in hint.example]
        if any("," in v for v in values):  # a comma separates the values: JSON keeps them whole
            return f"{name}={shlex.quote(json.dumps(values))}"
        return f"{name}={shlex.quote(','.join(values))}"
    return f"{name}={_quoted(hint.example)}"


def env_phrased(exc: InputError) -> InputError:
    """``exc`` with its hints spelled as the event handler's variables
    (:func:`env_spelling`): a new :class:`InputError` with the same fact and
    hints, or ``exc`` itself when it has no hints."""
    if not exc.hints:
        return exc
    phrased = InputError(exc.phrased(env_spelling))
    phrased.fact, phrased.hints = exc.fact, exc.hints
    return phrased


def pipeline_metadata(options: RegisterOptions) -> Provenance | None:
    """The :class:`~producer.provenance.Provenance` ``options`` give each item (None: none)."""
    properties = options.properties if isinstance(options.properties, dict) else None
    if not (
        properties
        or options.derived_from
        or options.via
        or options.software
        or options.lineage
        or options.item_license
        or options.item_providers
    ):
        return None  # nothing given (most calls): what Provenance.of would make is empty
    meta = Provenance.of(
        properties=properties,
        derived_from=options.derived_from,
        via=options.via,
        software=options.software,
        lineage=options.lineage,
        license=options.item_license,
        providers=options.item_providers,
    )
    return None if meta.empty else meta


#: the register options ``reconcile`` uses without ``data`` (for its repairs,
#: its asset checks and its sinks); the others only shape what ``data``
#: registers, and are refused without it (never silently ignored)
RECONCILE_WITHOUT_DATA = frozenset(
    {
        "dry_run",
        "max_retries",
        "absolute_hrefs",
        "catalog_storage_options",
        "data_storage_options",
        "pgstac",
        "sns_topic",
    }
)

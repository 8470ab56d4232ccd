"""A pgSTAC database that follows the static catalog.

:class:`PgstacSink` implements the :class:`~producer.changes.Sink` protocol
with pypgstac: ``apply`` upserts the collection (with its extent), then
upserts created/updated items (pgSTAC's upsert: a row whose values are all
unchanged is not rewritten) and deletes removed ones, all in ONE database
transaction, so a failure leaves the database as it was and the batch can
simply be applied again. ``diff`` and ``sync`` are for ``reconcile``: which
items are missing, extra or differing in the database compared with the
static catalog's, and bringing the database in line (the static catalog is
the source of truth; the database is never read back into it).

What goes into the database is the committed document minus its structural
links (``root``, ``parent``, ``collection``, ``self``, ``child``, ``item``:
relative paths inside the static catalog, meaningless behind an API, which
makes its own). Everything else is stored as is, asset hrefs included (an
item's are absolute already); the collection's relative asset hrefs (its
stac-geoparquet mirror files) are made absolute under the catalog URL when
the sink is given it (``catalog_url``, as the verbs do).

The DSN may carry a password: it is never put in an error message, a log
record or a ``repr`` (errors name ``host:port/dbname`` only). Every database
failure raises :class:`PgstacError`, a :class:`~producer.errors.StoreError`,
so callers report it per product and retry it like a storage error.

Needs the ``pgstac`` extra (``pip install 'stac-producer[pgstac]'``): pypgstac
with psycopg 3, and a database whose pgSTAC schema was installed by the same
minor version of pypgstac (``pypgstac migrate --dsn ...``). On Debian 12,
a database with the packages the test suite uses::

    apt-get install -y --no-install-recommends postgresql-15 postgresql-15-postgis-3
    pg_ctlcluster 15 main start
    runuser -u postgres -- createuser --superuser "$(id -un)"; createdb stac
    pypgstac migrate --dsn postgresql:///stac
"""

from __future__ import annotations

import os
import random
import re
import time
from collections.abc import Callable, Generator, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from producer.changes import Change, ChangeKind
from producer.errors import InputError, StoreError
from producer.hrefs import absolute_collection_assets, document_url
from producer.redact import redact
from producer.timestamps import parse_time

try:
    import psycopg
    from psycopg.conninfo import conninfo_to_dict
    from psycopg.types.json import Jsonb
    from pypgstac.db import PgstacDB
    from pypgstac.hydration import dehydrate, hydrate
    from pypgstac.load import Loader, Methods
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise ImportError(
        "the pgSTAC sink needs pypgstac and psycopg: pip install 'stac-producer[pgstac]'"
    ) from exc

if TYPE_CHECKING:
    from psycopg import Connection

__all__ = ["PgstacDiff", "PgstacError", "PgstacSink", "pgstac_document"]

#: links whose targets are paths inside the static catalog: an API makes its own
_STRUCTURAL_RELS = frozenset({"root", "parent", "collection", "self", "child", "item"})
#: the columns of pgSTAC's items table that hold an item's content (its key is
#: (collection, id)); pgSTAC's upsert compares the same ones
_ITEM_COLUMNS = ("id", "collection", "datetime", "end_datetime", "geometry", "content", "private")
#: items formatted and copied to the database (or upserted) per round of
#: ``diff``/``sync``: what they hold in memory at once
CHUNK = 500
#: a collection's committed items: an iterable, or a callable returning a
#: fresh one for each pass (``sync`` reads them more than once)
ItemSource = Iterable[dict[str, Any]] | Callable[[], Iterable[dict[str, Any]]]
#: SQLSTATEs after which the whole transaction is run again: deadlock_detected
#: and serialization_failure (the database rolled everything back)
_RETRY_SQLSTATES = frozenset({"40P01", "40001"})
#: attempts of one transaction (the first included) before the error is raised
ATTEMPTS = 5
#: the first retry's base delay in seconds (doubled per retry, full jitter)
RETRY_DELAY = 0.05
#: seconds one statement may run before the server cancels it (the sink's
#: default; a DSN whose ``options`` set ``statement_timeout`` keeps its own)
STATEMENT_TIMEOUT = 300
#: TCP keepalives and the unacknowledged-data limit of each connection
#: (libpq parameters; one the DSN sets keeps the DSN's value): a network cut
#: mid-statement fails the call within about a minute instead of waiting
#: for the operating system's TCP timeout (hours on Linux)
KEEPALIVES = {
    "keepalives": "1",
    "keepalives_idle": "30",
    "keepalives_interval": "10",
    "keepalives_count": "3",
    "tcp_user_timeout": "60000",
}
#: SQLSTATE query_canceled: the statement timeout (or a cancel) ended a statement
_CANCELED = "57014"


class PgstacError(StoreError):
    """The pgSTAC database could not be reached or refused a statement.

    A storage error (retryable): nothing was changed in the database by the
    call that raised it. The message names the database as ``host:port/dbname``,
    never the DSN (which may carry a password). ``sqlstate``: PostgreSQL's
    error code when the database raised it, else None.
    """

    def __init__(self, message: str, sqlstate: str | None = None) -> None:
        super().__init__(message)
        self.sqlstate = sqlstate


@dataclass(frozen=True)
class PgstacDiff:
    """How a collection in the database differs from the static catalog.

    Item ids, sorted: ``missing`` are in the catalog but not in the database,
    ``extra`` in the database but not in the catalog, ``differing`` in both
    with different content. ``collection_differs``: the collection row is
    absent or its document is not the catalog's.
    """

    collection: str
    missing: list[str] = field(default_factory=list)
    extra: list[str] = field(default_factory=list)
    differing: list[str] = field(default_factory=list)
    collection_differs: bool = False

    @property
    def in_sync(self) -> bool:
        return not (self.missing or self.extra or self.differing or self.collection_differs)


def pgstac_document(doc: dict[str, Any]) -> dict[str, Any]:
    """The item or collection document as pgSTAC stores it: a shallow copy of
    ``doc`` without its structural links (``doc`` is not mutated)."""
    out = dict(doc)
    out["links"] = [
        link
        for link in doc.get("links", [])
        if not (isinstance(link, dict) and link.get("rel") in _STRUCTURAL_RELS)
    ]
    return out


class _OneConnection(PgstacDB):
    """pypgstac's database wrapper on the one connection the sink opened
    (PgstacDB would otherwise build a connection pool per instance), whose
    queries leave transaction control to the sink (PgstacDB's roll back on
    error, which is forbidden inside the sink's transaction and would hide
    the real error)."""

    def connect(self) -> Connection:
        assert self.connection is not None
        return self.connection

    # (the base method is wrapped by tenacity: its type is not a plain method's)
    def query(  # type: ignore[override, unused-ignore]
        self, query: Any, args: Any = None, row_factory: Any = psycopg.rows.tuple_row
    ) -> Generator[Any, None, None]:
        """``PgstacDB.query`` without its rollback and retries."""
        with self.connect().cursor(row_factory=row_factory) as cur:
            cur.execute(query, args, prepare=False if args is None else None)
            rows = cur.fetchall() if cur.description is not None else []
        yield from rows


class PgstacSink:
    """Keeps a pgSTAC database in step with the static catalog.

    ``dsn``: a libpq connection string or URL (``postgresql://user:pw@host:5432/db``);
    it is kept private and never shown. ``connect_timeout``: seconds to wait
    for the server before :class:`PgstacError`. ``statement_timeout``: seconds
    one statement may run before the server cancels it (a
    :class:`PgstacError`), unless the DSN sets its own
    (``options=-c statement_timeout=...``); each connection also has TCP
    keepalives (:data:`KEEPALIVES`, unless the DSN sets them), so that a
    network cut fails a call instead of hanging it. ``catalog_url``: the static
    catalog's URL, against which the collection row's relative asset hrefs
    (its mirror files, ``./items.parquet``) are made absolute: behind an API
    a relative href resolves against the API's URL, where no such file is
    (None: stored as the collection has them). Each call opens one
    connection and closes it: the sink holds no connection between calls and
    can be shared by threads.
    """

    def __init__(
        self,
        dsn: str,
        *,
        connect_timeout: int = 10,
        statement_timeout: float = STATEMENT_TIMEOUT,
        catalog_url: str | None = None,
    ) -> None:
        self._dsn = dsn
        self._connect_timeout = connect_timeout
        self._statement_timeout = statement_timeout
        self.database = _describe(dsn)
        self._catalog_url = catalog_url

    def _published(self, collection: dict[str, Any]) -> dict[str, Any]:
        """``collection`` with its asset hrefs absolute under ``catalog_url``."""
        if self._catalog_url is None:
            return collection
        location = document_url(self._catalog_url, f"{_collection_id(collection)}/collection.json")
        return absolute_collection_assets(collection, location)

    #: the database can fall behind the catalog (an apply failed after a
    #: commit) and pgSTAC's upsert leaves identical rows alone: a rerun hands
    #: it the unchanged items too (see :mod:`producer.sinks`)
    wants_unchanged = True

    def __repr__(self) -> str:
        return f"PgstacSink({self.database})"

    def check(self) -> None:
        """Connect and check the pgSTAC schema's version (one query, no
        writes); raises :class:`PgstacError` when the database cannot take
        changes. Called before the static catalog is written."""
        with self._session("checking the pgSTAC schema") as conn:
            _loader(conn)

    # --- the Sink protocol -------------------------------------------------

    def apply(self, collection: dict[str, Any], changes: Sequence[Change]) -> None:
        """Apply one collection's committed ``changes`` to the database.

        Writes, in one transaction: the collection row (created, or replaced
        by ``collection``: its extent follows the catalog's), then the last
        committed state of each changed item: upserted (an item whose values
        are unchanged is not rewritten) or deleted. Raises
        :class:`PgstacError` on a database failure (nothing written) and
        :class:`~producer.errors.InputError` (nothing written either) for a
        change of another collection or an item pgSTAC cannot store.
        """
        cid = _collection_id(collection)
        collection = self._published(collection)
        final: dict[str, Change] = {}
        for change in changes:
            if change.collection != cid:
                raise InputError(
                    f"change of item {change.item_id!r} belongs to collection {change.collection!r}, "
                    f"not {cid!r}: apply each collection's changes with its own collection document"
                )
            final.pop(change.item_id, None)  # commit order: the last change of an item wins
            final[change.item_id] = change
        upserts = [pgstac_document(c.item) for c in final.values() if c.kind != ChangeKind.REMOVED]
        removed = [c.item_id for c in final.values() if c.kind == ChangeKind.REMOVED]
        for item in upserts:
            item["collection"] = cid
        for attempt in self._attempts():
            with attempt, self._session("applying changes to collection " + repr(cid)) as conn:
                loader = _loader(conn)
                with conn.transaction():
                    _lock_writers(conn)
                    _upsert_collection(loader, conn, collection)
                    # a change that reaches the database after a newer one of its item
                    # (another writer committed later and applied first) is left out
                    newer = _newer_in_database(conn, cid, {i: c.item for i, c in final.items()})
                    _delete_items(conn, cid, [i for i in removed if i not in newer])
                    _upsert_items(loader, conn, cid, [d for d in upserts if d["id"] not in newer])

    # --- reconcile ---------------------------------------------------------

    def diff(self, collection: dict[str, Any], items: ItemSource) -> PgstacDiff:
        """Compare the database with the static catalog's ``collection`` and
        its committed ``items`` (all of them). Reads only; see :class:`PgstacDiff`.

        ``items`` is streamed to the database :data:`CHUNK` at a time (a
        temporary table compared there), so a collection of any size is
        compared in bounded memory here; it may be a callable returning a
        fresh iterable (see :meth:`sync`)."""
        cid = _collection_id(collection)
        collection = self._published(collection)
        with self._session("comparing collection " + repr(cid)) as conn:
            loader = _loader(conn)
            with conn.transaction():
                one_pass = items() if callable(items) else items
                return _diff(loader, conn, collection, _docs(cid, one_pass))

    def sync(self, collection: dict[str, Any], items: ItemSource) -> PgstacDiff:
        """Bring the database in line with the static catalog, in one transaction:
        the collection row replaced when it differs, missing and differing
        items upserted, extra items deleted. Returns what differed before
        (``diff`` afterwards is in sync).

        ``items`` is read more than once (compared, then the missing and
        differing ones upserted), :data:`CHUNK` documents at a time: pass a
        callable returning a fresh iterable of the items (e.g. a walk of the
        catalog) to keep memory bounded; an iterator is held in a list."""
        cid = _collection_id(collection)
        collection = self._published(collection)
        passes = _passes(items)
        for attempt in self._attempts():
            with attempt, self._session("synchronising collection " + repr(cid)) as conn:
                before = self._sync(conn, collection, cid, passes)
        return before

    def _sync(
        self,
        conn: Connection,
        collection: dict[str, Any],
        cid: str,
        passes: Callable[[], Iterable[dict[str, Any]]],
    ) -> PgstacDiff:
        """One attempt of :meth:`sync`'s transaction."""
        loader = _loader(conn)
        with conn.transaction():
            _lock_writers(conn)
            before = _diff(loader, conn, collection, _docs(cid, passes()))
            if before.collection_differs:
                _upsert_collection(loader, conn, collection)
                # the items' stored form depends on the collection row
                # (pgSTAC strips what its item_assets repeat): compare again
                loader = _loader(conn, check=False)
                after = _diff(loader, conn, collection, _docs(cid, passes()))
            else:
                after = before
            _delete_items(conn, cid, after.extra)
            wanted = set(after.missing) | set(after.differing)
            if wanted:
                for chunk in _chunks(_wanted_once(_docs(cid, passes()), wanted)):
                    _upsert_items(loader, conn, cid, chunk)
        return before

    # --- connection and errors ---------------------------------------------

    @contextmanager
    def _session(self, doing: str) -> Iterator[Connection]:
        """A fresh autocommit connection with pgSTAC on the search path; every
        failure inside becomes a :class:`PgstacError` naming the database."""
        given = _dsn_parameters(self._dsn)
        kept: dict[str, Any] = {k: v for k, v in KEEPALIVES.items() if k not in given}
        try:
            conn = psycopg.connect(self._dsn, autocommit=True, connect_timeout=self._connect_timeout, **kept)
        except psycopg.Error as exc:
            raise PgstacError(
                f"cannot reach the pgSTAC database {self.database}: {self._scrub(exc)}; "
                "check that the server is up and the DSN's host, port, database and user"
            ) from None
        try:
            with conn:
                conn.execute("SET search_path TO pgstac, public")
                if "statement_timeout" not in given.get("options", ""):
                    # SET, not a startup option: a pooler such as pgbouncer refuses those
                    conn.execute(f"SET statement_timeout = {max(1, round(self._statement_timeout * 1000))}")
                yield conn
        except (psycopg.Error, _PypgstacError) as exc:
            sqlstate = getattr(exc, "sqlstate", None)
            why = ""
            if sqlstate == _CANCELED and "statement timeout" in str(exc):
                why = (
                    "; a statement ran longer than the statement timeout (the sink's: "
                    f"{self._statement_timeout:g} s): if the database is slow or busy rather than "
                    "unreachable, run again, or set a longer timeout in the DSN's options, "
                    "e.g. options='-c statement_timeout=600s'"
                )
            raise PgstacError(
                f"pgSTAC database {self.database}: {doing} failed: {self._scrub(exc)}{why}", sqlstate=sqlstate
            ) from None
        finally:
            Loader.collection_json.cache_clear()  # it keeps loaders (and connections) alive

    def _attempts(self) -> Iterator[_Attempt]:
        """Up to :data:`ATTEMPTS` runs of one transaction: ``for attempt in
        self._attempts(): with attempt, self._session(...) as conn: ...``.
        A run that fails with a deadlock or a serialization failure (the
        database rolled it all back) is run again after a jittered,
        doubling delay; any other error, or the last attempt's, is raised."""
        for n in range(ATTEMPTS):
            attempt = _Attempt(retry=n < ATTEMPTS - 1)
            yield attempt
            if attempt.done:
                return
            time.sleep(random.uniform(0, RETRY_DELAY * 2**n))

    def _scrub(self, exc: BaseException) -> str:
        """``exc``'s message without the DSN's password (or any URL credentials).

        libpq never echoes a password, so what is scrubbed is the forms a
        DSN may show up in: URL userinfo (:func:`~producer.redact.redact`)
        and ``password=...`` key/value pairs. The bare password is replaced
        elsewhere in the text only when it is at least
        :data:`_BARE_PASSWORD_MIN` characters long: a short one (``p``,
        ``1``, ``server``) is found inside ordinary words and numbers, where
        masking it garbles the message and, by where the ``***`` land,
        tells the password."""
        text = _KV_PASSWORD_RE.sub(r"\g<key>***", " ".join(str(exc).split()))
        password = _password(self._dsn)
        if password and len(password) >= _BARE_PASSWORD_MIN:
            text = text.replace(password, "***")
        return redact(text)


def _dsn_parameters(dsn: str) -> dict[str, str]:
    """The libpq parameters ``dsn`` sets (``PGOPTIONS`` as its ``options``
    when it sets none); empty when it cannot be parsed (connecting then
    reports it)."""
    try:
        given = {k: str(v) for k, v in conninfo_to_dict(dsn).items() if v is not None}
    except psycopg.Error:
        given = {}
    if "options" not in given and os.environ.get("PGOPTIONS"):
        given["options"] = os.environ["PGOPTIONS"]
    return given


#: the shortest password :meth:`PgstacSink._scrub` masks wherever it appears
_BARE_PASSWORD_MIN = 8
#: ``password=value`` of a key/value DSN (the value quoted or not)
_KV_PASSWORD_RE = re.compile(r"(?P<key>\bpassword\s*=\s*)(?:'(?:[^'\\]|\\.)*'|[^\s'\"]+)", re.IGNORECASE)


class _Attempt:
    """One run of a transaction (see :meth:`PgstacSink._attempts`): swallows
    a retryable :class:`PgstacError` when another run may follow."""

    def __init__(self, *, retry: bool) -> None:
        self.retry = retry
        self.done = False

    def __enter__(self) -> _Attempt:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: Any) -> bool:
        if exc is None:
            self.done = True
            return False
        return self.retry and isinstance(exc, PgstacError) and exc.sqlstate in _RETRY_SQLSTATES


def _lock_writers(conn: Connection) -> None:
    """Serialise this transaction with every other stac-producer writer of
    the database (a transaction-level advisory lock, released at commit or
    rollback; readers are not blocked). pgSTAC changes its layout inside the
    writer's transaction: a new collection's row creates its items'
    partition, and loading items widens a partition's constraints and then
    rebuilds the index and statistics queries of every partition
    (``check_partition`` -> ``maintain_partitions``). Two writers doing that
    at once deadlock, or one walks a partition the other created and has
    not committed ("relation _items_N does not exist"), even when they
    write different collections: so one lock for the whole database, not
    one per collection. Taken first, before any pgSTAC statement. What it
    costs: stac-producer's transactions on one database run one at a time."""
    conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", ("stac-producer:pgstac",))


#: pypgstac raises plain Exceptions for a schema version mismatch or a missing
#: collection; psycopg errors are caught separately
class _PypgstacError(Exception):
    pass


def _collection_id(collection: dict[str, Any]) -> str:
    cid = collection.get("id")
    if collection.get("type") != "Collection" or not isinstance(cid, str) or not cid:
        raise InputError(
            "the pgSTAC sink needs the committed collection document (type 'Collection' with an id), "
            f"got type={collection.get('type')!r} id={cid!r}"
        )
    return cid


def _docs(cid: str, items: Iterable[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """pgSTAC's documents of ``items``, one at a time; an item of another
    collection is an InputError naming it."""
    for item in items:
        doc = pgstac_document(item)
        if doc.get("collection", cid) != cid:
            raise InputError(
                f"item {doc.get('id')!r} belongs to collection {doc.get('collection')!r}, not {cid!r}"
            )
        doc["collection"] = cid
        yield doc


def _wanted_once(docs: Iterable[dict[str, Any]], wanted: set[str]) -> Iterator[dict[str, Any]]:
    """The documents whose id is in ``wanted``, each id once (an item linked
    from two documents is upserted once; ``wanted`` is emptied)."""
    for doc in docs:
        if doc["id"] in wanted:
            wanted.discard(doc["id"])
            yield doc


def _passes(items: ItemSource) -> Callable[[], Iterable[dict[str, Any]]]:
    """A callable giving a fresh iterable of ``items`` per pass: ``items``
    itself when it is one, a list held once when it is a one-shot iterator."""
    if callable(items):
        return items
    held = items if iter(items) is not items else list(items)
    return lambda: held


def _chunks(docs: Iterable[dict[str, Any]]) -> Iterator[list[dict[str, Any]]]:
    """``docs`` in lists of :data:`CHUNK` (read per call)."""
    chunk: list[dict[str, Any]] = []
    for doc in docs:
        chunk.append(doc)
        if len(chunk) >= CHUNK:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _describe(dsn: str) -> str:
    """``host:port/dbname`` of a DSN (libpq defaults where absent); never the password."""
    try:
        params = conninfo_to_dict(dsn)
    except psycopg.Error:
        raise InputError(
            # the form is spelled so that no URL in it has userinfo: the
            # CLI masks that as credentials (redact), hiding the template
            "the pgSTAC DSN is not a valid connection string: use "
            "postgresql://HOST[:PORT]/DBNAME with USER:PASSWORD@ before HOST (or the password "
            "in PGPASSWORD), or 'host=... dbname=... user=...'"
        ) from None
    host = str(params.get("host") or params.get("hostaddr") or "localhost")
    port = str(params.get("port") or 5432)
    dbname = str(params.get("dbname") or params.get("user") or "postgres")
    named = str(params.get("dbname") or "")
    if "@" in host or "@" in port or ("@" in named and named in dsn):
        # libpq ends a URL's user info at its first '@' and its host at the
        # first '/': a raw '@' or '/' in the password pushed the rest of it
        # into the host or the database name, which messages show (a
        # database named after a user, Azure's user@server, is no such tail)
        raise InputError(
            "the pgSTAC DSN does not parse: its user or password holds an '@' or a '/', which a "
            "postgresql:// URL reserves; percent-encode them ('@' as %40, '/' as %2F), or leave "
            "the password out of the DSN and give it in PGPASSWORD or ~/.pgpass"
        )
    return f"{host}:{port}/{dbname}"


def _password(dsn: str) -> str | None:
    try:
        value = conninfo_to_dict(dsn).get("password")
    except psycopg.Error:
        return None
    return str(value) if value else None


def _loader(conn: Connection, *, check: bool = True) -> Loader:
    """A pypgstac loader on ``conn``; ``check``: first verify that the schema is
    installed and of pypgstac's version (outside any transaction: pypgstac
    rolls back when the schema is missing)."""
    loader = Loader(_OneConnection(connection=conn))
    if not check:
        return loader
    try:
        loader.check_version()
    except psycopg.Error:
        raise
    except Exception as exc:  # pypgstac's own: the schema is missing or of another version
        raise _PypgstacError(
            f"{exc} Install or upgrade the schema with `pypgstac migrate` of the same version."
        ) from None
    return loader


def _upsert_collection(loader: Loader, conn: Connection, collection: dict[str, Any]) -> None:
    """Create or replace the collection row (content, hence extent and base
    item). pgSTAC stores each item without what the row's base item (its
    ``item_assets``) repeats and puts that back when it serves the item, so
    when the base item changes (a register drops an ``item_assets`` field the
    items disagree on, or adds an asset key) the items stored before are
    rewritten against the new one (:func:`_rebase_items`); else they would be
    served without the dropped field and with the added asset (no href)."""
    cid = str(collection["id"])
    old = _base_item(conn, cid)
    loader.load_collections(iter([pgstac_document(collection)]), Methods.upsert)
    if old is not None:
        new = _base_item(conn, cid)
        if new is not None and new != old:
            _rebase_items(conn, cid, old, new)


def _base_item(conn: Connection, cid: str) -> dict[str, Any] | None:
    """The collection row's base item (None: no row)."""
    row = conn.execute("SELECT base_item FROM collections WHERE id = %s", (cid,)).fetchone()
    return None if row is None else row[0]


def _rebase_items(conn: Connection, cid: str, old: dict[str, Any], new: dict[str, Any]) -> None:
    """Rewrite the stored items of ``cid`` from base item ``old`` to ``new``:
    each is hydrated with ``old`` (what pgSTAC served until now) and
    dehydrated with ``new`` as pypgstac's loader does (so ``diff`` compares
    them with freshly formatted items), :data:`CHUNK` rows at a time through
    a temporary table, then one UPDATE of the rows that change. Runs only
    when the base item changes, inside the caller's transaction."""
    conn.execute("CREATE TEMP TABLE producer_rebased (id text, content jsonb) ON COMMIT DROP")
    with conn.cursor(name="producer_rebase") as rows:
        rows.execute("SELECT id, content FROM items WHERE collection = %s", (cid,))
        while chunk := rows.fetchmany(CHUNK):
            rebased = []
            for item_id, content in chunk:
                content = dehydrate(new, hydrate(old, content))
                for name in ("id", "collection", "geometry"):  # columns of the row, as the loader does
                    content.pop(name, None)
                rebased.append((item_id, Jsonb(content)))
            with conn.cursor() as cur, cur.copy("COPY producer_rebased (id, content) FROM STDIN") as copy:
                for values in rebased:
                    copy.write_row(values)
    conn.execute(
        "UPDATE items i SET content = r.content FROM producer_rebased r "
        "WHERE i.collection = %s AND i.id = r.id AND i.content IS DISTINCT FROM r.content",
        (cid,),
    )
    conn.execute("DROP TABLE producer_rebased")


def _stamp(value: Any) -> datetime | None:
    """An item's ``updated`` (RFC 3339 text) as a datetime; None when absent or unreadable."""
    if not isinstance(value, str):
        return None
    try:
        return parse_time(value)
    except ValueError:
        return None


def _newer_in_database(conn: Connection, cid: str, items: dict[str, dict[str, Any]]) -> set[str]:
    """Ids of ``items`` (id -> the committed item a change carries: the new
    version, or the last one for a removal) whose database row is a LATER
    commit: its ``updated`` is later. The commit sets ``updated`` under
    compare-and-swap on the item document, so a later commit has a later
    stamp; a change applied after a later one of its item would undo it
    (an older removal deleting a re-created item, older content restored),
    as the mirror's stamps prevent there. Equal stamps: the same version
    (applied again, or the one a removal removes)."""
    if not items:
        return set()
    found = conn.execute(
        "SELECT id, content->'properties'->>'updated' FROM items WHERE collection = %s AND id = ANY(%s)",
        (cid, list(items)),
    ).fetchall()
    newer = set()
    for item_id, stored in found:
        theirs, ours = _stamp(stored), _stamp((items[item_id].get("properties") or {}).get("updated"))
        if theirs is not None and ours is not None and theirs > ours:
            newer.add(item_id)
    return newer


def _delete_items(conn: Connection, cid: str, ids: Sequence[str]) -> None:
    if ids:
        conn.execute("DELETE FROM items WHERE collection = %s AND id = ANY(%s)", (cid, list(ids)))


def _upsert_items(loader: Loader, conn: Connection, cid: str, items: list[dict[str, Any]]) -> None:
    """pgSTAC's upsert (``ON CONFLICT ... WHERE row IS DISTINCT FROM``): rows
    whose values are all equal are left untouched (not even a new version)."""
    if not items:
        return
    try:
        _, _, partition_trunc = loader.collection_json(cid)
    except psycopg.Error:
        raise
    except Exception as exc:
        raise _PypgstacError(str(exc)) from None
    if partition_trunc is not None:
        # time-partitioned collection: an item whose datetime moved to another
        # partition would be inserted there and its old row kept; delete those
        moved = _moved_items(loader, conn, cid, items)
        _delete_items(conn, cid, moved)
    try:
        loader.load_items(iter(items), insert_mode=Methods.upsert)
    except psycopg.Error:
        raise
    except Exception as exc:  # an item pgSTAC cannot index (no datetime, bad geometry)
        for item in items:  # find it, to name it (only on this failure path)
            _format(loader, item)
        raise _PypgstacError(str(exc)) from None


def _format(loader: Loader, item: dict[str, Any]) -> dict[str, Any]:
    """pgSTAC's row for ``item``; an item it cannot store is an InputError naming it."""
    try:
        return loader.format_item(dict(item))
    except psycopg.Error:
        raise
    except Exception as exc:
        raise InputError(
            f"item {item.get('id')!r} of collection {item.get('collection')!r} cannot be stored in pgSTAC "
            f"({exc}): it needs a datetime (or start_datetime and end_datetime) and a valid geometry"
        ) from None


def _row(formatted: dict[str, Any]) -> tuple[Any, ...]:
    """The temporary table's row of one formatted item (formatting, pgSTAC's
    geometry and dehydration, is the costly part: done once per item)."""
    return tuple(formatted.get(c) for c in _ITEM_COLUMNS)


def _moved_items(loader: Loader, conn: Connection, cid: str, items: list[dict[str, Any]]) -> list[str]:
    want = {str(item["id"]): _format(loader, item)["partition"] for item in items}
    rows = conn.execute(
        "SELECT id, tableoid::regclass::text FROM items WHERE collection = %s AND id = ANY(%s)",
        (cid, list(want)),
    ).fetchall()
    return [rid for rid, partition in rows if partition.split(".")[-1].strip('"') != want[rid]]


def _diff(
    loader: Loader, conn: Connection, collection: dict[str, Any], docs: Iterable[dict[str, Any]]
) -> PgstacDiff:
    """The difference, with ``docs`` copied into a temporary table
    :data:`CHUNK` rows at a time and compared by the database: memory here is
    one chunk plus the ids that differ. An item linked twice (the same id
    twice in ``docs``) counts once."""
    cid = str(collection["id"])
    row = conn.execute("SELECT content FROM collections WHERE id = %s", (cid,)).fetchone()
    if row is None:
        # nothing of this collection can be in the database (items need their collection)
        return PgstacDiff(cid, missing=sorted({str(d["id"]) for d in docs}), collection_differs=True)
    collection_differs = row[0] != pgstac_document(collection)
    conn.execute("CREATE TEMP TABLE producer_wanted ON COMMIT DROP AS SELECT * FROM items LIMIT 0")
    columns = ", ".join(_ITEM_COLUMNS)
    for chunk in _chunks(docs):
        # formatted before the COPY: formatting queries the connection the COPY holds
        rows = [_row(_format(loader, doc)) for doc in chunk]
        with conn.cursor() as cur, cur.copy(f"COPY producer_wanted ({columns}) FROM STDIN") as copy:
            for values in rows:
                copy.write_row(values)
    missing = conn.execute(
        "SELECT DISTINCT w.id FROM producer_wanted w WHERE NOT EXISTS "
        "(SELECT 1 FROM items i WHERE i.collection = %s AND i.id = w.id) ORDER BY w.id",
        (cid,),
    ).fetchall()
    extra = conn.execute(
        "SELECT i.id FROM items i WHERE i.collection = %s AND NOT EXISTS "
        "(SELECT 1 FROM producer_wanted w WHERE w.id = i.id) ORDER BY i.id",
        (cid,),
    ).fetchall()
    differing = conn.execute(
        "SELECT DISTINCT w.id FROM producer_wanted w JOIN items i ON i.collection = %s AND i.id = w.id "
        "WHERE (i.datetime, i.end_datetime, i.geometry, i.content, i.private) IS DISTINCT FROM "
        "(w.datetime, w.end_datetime, w.geometry, w.content, w.private) ORDER BY w.id",
        (cid,),
    ).fetchall()
    conn.execute("DROP TABLE producer_wanted")
    return PgstacDiff(
        cid,
        missing=[r[0] for r in missing],
        extra=[r[0] for r in extra],
        differing=[r[0] for r in differing],
        collection_differs=collection_differs,
    )

"""The pgSTAC sink against a real PostgreSQL + PostGIS + pgSTAC on 127.0.0.1
(tests/pgserver.py): changes applied, the collection row and its extent,
unchanged rows not rewritten, reconcile's diff/sync, secrets kept out of errors."""

from __future__ import annotations

import copy
import logging
from typing import Any

import psycopg
import pytest

from producer.changes import Change, ChangeKind
from producer.errors import InputError, StoreError
from producer.sinks.pgstac import PgstacError, PgstacSink, pgstac_document
from tests.pgserver import PgServer, stac_api_search  # fixtures pg_server, pgstac_dsn: loaded by conftest.py

COLLECTION = "alps"


def make_collection(bbox: list[float] | None = None, interval: list[Any] | None = None) -> dict[str, Any]:
    """A collection document as the producer commits it (relative structural links)."""
    return {
        "type": "Collection",
        "stac_version": "1.1.0",
        "stac_extensions": [],
        "id": COLLECTION,
        "title": "Alps",
        "description": "Products registered as 'alps'.",
        "license": "other",
        "extent": {
            "spatial": {"bbox": [bbox or [5.0, 45.0, 9.0, 48.0]]},
            "temporal": {"interval": [interval or ["2024-01-01T00:00:00Z", "2024-12-31T00:00:00Z"]]},
        },
        "links": [
            {"rel": "root", "href": "../catalog.json", "type": "application/json"},
            {"rel": "parent", "href": "../catalog.json", "type": "application/json"},
            {"rel": "self", "href": "./collection.json", "type": "application/json"},
            {"rel": "item", "href": "./a/a.json", "type": "application/geo+json"},
            {"rel": "license", "href": "https://example.com/license.html", "type": "text/html"},
        ],
    }


def make_item(item_id: str, bbox: list[float], when: str, **properties: Any) -> dict[str, Any]:
    """An item document as the producer commits it: footprint polygon, one
    absolute asset, relative root/parent/collection links."""
    w, s, e, n = bbox
    return {
        "type": "Feature",
        "stac_version": "1.1.0",
        "stac_extensions": [],
        "id": item_id,
        "geometry": {"type": "Polygon", "coordinates": [[[w, s], [e, s], [e, n], [w, n], [w, s]]]},
        "bbox": bbox,
        "properties": {"datetime": when, **properties},
        "links": [
            {"rel": "root", "href": "../../catalog.json", "type": "application/json"},
            {"rel": "parent", "href": "../collection.json", "type": "application/json"},
            {"rel": "collection", "href": "../collection.json", "type": "application/json"},
        ],
        "assets": {
            "data": {
                "href": f"https://data.example.com/products/{item_id}.tif",
                "type": "image/tiff; application=geotiff; profile=cloud-optimized",
                "roles": ["data"],
            }
        },
        "collection": COLLECTION,
    }


def change(kind: ChangeKind, item: dict[str, Any]) -> Change:
    return Change(kind, COLLECTION, item["id"], f"{COLLECTION}/{item['id']}/{item['id']}.json", item)


ITEMS = [
    make_item("a", [6.0, 46.0, 6.5, 46.5], "2024-02-01T10:00:00Z"),
    make_item("b", [7.0, 46.5, 7.5, 47.0], "2024-03-01T10:00:00Z"),
    make_item("c", [8.5, 47.5, 9.0, 48.0], "2024-06-01T10:00:00Z"),
]


def rows(dsn: str) -> dict[str, dict[str, Any]]:
    """id -> {xmin, item}: the hydrated item as pgSTAC serves it and the row version."""
    with psycopg.connect(dsn) as conn:
        conn.execute("SET search_path TO pgstac, public")
        got = conn.execute(
            "SELECT id, xmin::text::bigint, get_item(id, collection) FROM items WHERE collection = %s",
            (COLLECTION,),
        ).fetchall()
    return {rid: {"xmin": xmin, "item": item} for rid, xmin, item in got}


def collection_row(dsn: str) -> dict[str, Any] | None:
    with psycopg.connect(dsn) as conn:
        row = conn.execute("SELECT content FROM pgstac.collections WHERE id = %s", (COLLECTION,)).fetchone()
    return None if row is None else row[0]


def test_created_items_are_in_the_database_as_committed_without_structural_links(pgstac_dsn):
    sink = PgstacSink(pgstac_dsn)
    sink.apply(make_collection(), [change(ChangeKind.CREATED, i) for i in ITEMS])
    got = rows(pgstac_dsn)
    assert sorted(got) == ["a", "b", "c"]
    for item in ITEMS:
        stored = got[item["id"]]["item"]
        expected = pgstac_document(item)
        assert stored["links"] == []  # relative root/parent/collection links are the static tree's
        assert stored["geometry"] == expected["geometry"]
        assert stored["properties"] == expected["properties"]
        assert stored["assets"] == expected["assets"]
        assert stored["bbox"] == expected["bbox"]


def test_collection_row_is_created_with_its_extent_and_follows_the_catalog(pgstac_dsn):
    sink = PgstacSink(pgstac_dsn)
    sink.apply(make_collection(), [change(ChangeKind.CREATED, ITEMS[0])])
    row = collection_row(pgstac_dsn)
    assert row is not None
    assert row["extent"] == make_collection()["extent"]
    assert [link["rel"] for link in row["links"]] == ["license"]

    grown = make_collection([4.0, 44.0, 10.0, 49.0], ["2023-06-01T00:00:00Z", "2025-01-01T00:00:00Z"])
    sink.apply(grown, [change(ChangeKind.CREATED, ITEMS[1])])
    assert collection_row(pgstac_dsn)["extent"] == grown["extent"]  # type: ignore[index]


def test_unchanged_items_are_not_rewritten_only_the_updated_one(pgstac_dsn):
    sink = PgstacSink(pgstac_dsn)
    sink.apply(make_collection(), [change(ChangeKind.CREATED, i) for i in ITEMS])
    before = rows(pgstac_dsn)
    b2 = copy.deepcopy(ITEMS[1])
    b2["properties"]["platform"] = "sentinel-2b"
    # the same committed documents again (e.g. a retried batch), and one real update
    sink.apply(
        make_collection(),
        [
            change(ChangeKind.UPDATED, ITEMS[0]),
            change(ChangeKind.UPDATED, b2),
            change(ChangeKind.UPDATED, ITEMS[2]),
        ],
    )
    after = rows(pgstac_dsn)
    assert after["a"]["xmin"] == before["a"]["xmin"]
    assert after["c"]["xmin"] == before["c"]["xmin"]
    assert after["b"]["xmin"] != before["b"]["xmin"]
    assert after["b"]["item"]["properties"]["platform"] == "sentinel-2b"


def test_removed_items_are_deleted_and_the_last_change_of_an_item_wins(pgstac_dsn):
    sink = PgstacSink(pgstac_dsn)
    sink.apply(make_collection(), [change(ChangeKind.CREATED, i) for i in ITEMS])
    d = make_item("d", [6.0, 46.0, 6.1, 46.1], "2024-04-01T00:00:00Z")
    sink.apply(
        make_collection(),
        [
            change(ChangeKind.REMOVED, ITEMS[0]),
            change(ChangeKind.CREATED, d),
            change(ChangeKind.REMOVED, d),  # created then removed in one batch: gone
            change(ChangeKind.REMOVED, ITEMS[2]),
            change(ChangeKind.CREATED, ITEMS[2]),  # removed then created again: present
        ],
    )
    assert sorted(rows(pgstac_dsn)) == ["b", "c"]


def test_an_item_moved_to_another_time_partition_keeps_one_row(pgstac_dsn):
    sink = PgstacSink(pgstac_dsn)
    sink.apply(make_collection(), [])
    with psycopg.connect(pgstac_dsn) as conn:
        conn.execute("SET search_path TO pgstac, public")
        conn.execute("UPDATE pgstac.collections SET partition_trunc = 'month' WHERE id = %s", (COLLECTION,))
    sink.apply(make_collection(), [change(ChangeKind.CREATED, ITEMS[0])])
    moved = copy.deepcopy(ITEMS[0])
    moved["properties"]["datetime"] = "2024-09-15T00:00:00Z"
    sink.apply(make_collection(), [change(ChangeKind.UPDATED, moved)])
    got = rows(pgstac_dsn)
    assert list(got) == ["a"]
    assert got["a"]["item"]["properties"]["datetime"] == "2024-09-15T00:00:00Z"


def test_diff_finds_missing_extra_and_differing_items_and_sync_fixes_them(pgstac_dsn):
    sink = PgstacSink(pgstac_dsn)
    sink.apply(make_collection(), [change(ChangeKind.CREATED, i) for i in ITEMS])
    untouched = rows(pgstac_dsn)["c"]["xmin"]
    # the static catalog now: a was removed, b changed, c unchanged, d new
    b2 = copy.deepcopy(ITEMS[1])
    b2["geometry"]["coordinates"][0][0] = [7.01, 46.5]
    b2["geometry"]["coordinates"][0][-1] = [7.01, 46.5]
    d = make_item("d", [6.0, 46.0, 6.1, 46.1], "2024-04-01T00:00:00Z")
    catalog_items = [b2, ITEMS[2], d]

    diff = sink.diff(make_collection(), catalog_items)
    assert (diff.missing, diff.extra, diff.differing, diff.collection_differs) == (["d"], ["a"], ["b"], False)
    assert not diff.in_sync

    fixed = sink.sync(make_collection(), catalog_items)
    assert fixed == diff
    assert sink.diff(make_collection(), catalog_items).in_sync
    got = rows(pgstac_dsn)
    assert sorted(got) == ["b", "c", "d"]
    assert got["b"]["item"]["geometry"] == b2["geometry"]
    assert got["c"]["xmin"] == untouched  # sync rewrites only what differed


def test_sync_of_an_empty_database_creates_the_collection_and_every_item(pgstac_dsn):
    sink = PgstacSink(pgstac_dsn)
    diff = sink.diff(make_collection(), ITEMS)
    assert diff.collection_differs and diff.missing == ["a", "b", "c"]
    sink.sync(make_collection(), ITEMS)
    assert sink.diff(make_collection(), ITEMS).in_sync
    assert collection_row(pgstac_dsn) == pgstac_document(make_collection())


def test_unreachable_database_raises_a_retryable_error_without_the_password(caplog):
    with socket_closed_port() as port:
        dsn = f"postgresql://producer:s3cr3t-PW@127.0.0.1:{port}/stac"
        sink = PgstacSink(dsn, connect_timeout=2)
        caplog.set_level(logging.DEBUG)
        with pytest.raises(PgstacError) as info:
            sink.apply(make_collection(), [change(ChangeKind.CREATED, ITEMS[0])])
    err = info.value
    assert isinstance(err, StoreError) and isinstance(err, OSError)
    assert f"127.0.0.1:{port}/stac" in str(err)
    assert "s3cr3t-PW" not in str(err)
    assert err.__cause__ is None and err.__context__ is None or "s3cr3t-PW" not in repr(err.__context__)
    assert "s3cr3t-PW" not in repr(sink)
    assert "s3cr3t-PW" not in caplog.text


def test_key_value_dsn_password_stays_out_of_the_error():
    with socket_closed_port() as port:
        sink = PgstacSink(
            f"host=127.0.0.1 port={port} dbname=stac user=u password=kv-S3cret", connect_timeout=2
        )
        with pytest.raises(PgstacError) as info:
            sink.diff(make_collection(), ITEMS)
    assert "kv-S3cret" not in str(info.value)
    assert f"127.0.0.1:{port}/stac" in str(info.value)


def test_database_without_the_pgstac_schema_says_to_migrate(pg_server: PgServer):
    sink = PgstacSink(pg_server.dsn("postgres"))
    with pytest.raises(PgstacError, match="pypgstac migrate"):
        sink.apply(make_collection(), [change(ChangeKind.CREATED, ITEMS[0])])


def test_a_change_of_another_collection_is_refused_before_anything_is_written(pgstac_dsn):
    sink = PgstacSink(pgstac_dsn)
    stray = Change(
        ChangeKind.CREATED,
        "other",
        "x",
        "other/x/x.json",
        make_item("x", [0, 0, 1, 1], "2024-01-01T00:00:00Z"),
    )
    with pytest.raises(InputError, match="'other'"):
        sink.apply(make_collection(), [change(ChangeKind.CREATED, ITEMS[0]), stray])
    assert collection_row(pgstac_dsn) is None


def test_a_batch_with_an_item_pgstac_cannot_store_names_it_and_changes_nothing(pgstac_dsn):
    sink = PgstacSink(pgstac_dsn)
    sink.apply(make_collection(), [change(ChangeKind.CREATED, ITEMS[0])])
    no_datetime = make_item("z", [6.0, 46.0, 6.1, 46.1], "2024-01-01T00:00:00Z")
    no_datetime["properties"]["datetime"] = None  # pgSTAC cannot index it
    bigger = make_collection([0.0, 0.0, 20.0, 60.0])
    with pytest.raises(InputError, match="item 'z' of collection 'alps' cannot be stored in pgSTAC"):
        sink.apply(bigger, [change(ChangeKind.REMOVED, ITEMS[0]), change(ChangeKind.CREATED, no_datetime)])
    assert list(rows(pgstac_dsn)) == ["a"]
    assert collection_row(pgstac_dsn)["extent"] == make_collection()["extent"]  # type: ignore[index]


class socket_closed_port:
    """A 127.0.0.1 port with nothing listening (bound, never listened on)."""

    def __enter__(self) -> int:
        import socket

        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.bind(("127.0.0.1", 0))
        return int(self._sock.getsockname()[1])

    def __exit__(self, *exc: object) -> None:
        self._sock.close()


def test_stac_api_search_over_the_database_returns_exactly_the_items_in_the_window(pg_server: PgServer):
    """stac-fastapi-pgstac serves what the sink wrote: POST /search with a bbox
    and a datetime window (bounds inclusive; an item's start/end range counts)."""
    dsn = pg_server.new_database()
    inside = [6.0, 46.2, 6.5, 46.6]
    ranged = make_item("ranged", inside, "2024-01-01T00:00:00Z")
    ranged["properties"].update(
        datetime=None, start_datetime="2024-01-01T00:00:00Z", end_datetime="2024-02-15T00:00:00Z"
    )
    items = [
        make_item("in-window", inside, "2024-02-20T00:00:00Z"),
        make_item("on-the-end-bound", [7.8, 47.2, 8.3, 47.6], "2024-03-12T10:00:00Z"),
        make_item("one-second-late", inside, "2024-03-12T10:00:01Z"),
        make_item("one-second-early", inside, "2024-02-11T23:59:59Z"),
        make_item("east-of-the-bbox", [8.1, 46.0, 9.0, 47.0], "2024-03-01T00:00:00Z"),
        ranged,
    ]
    PgstacSink(dsn).apply(make_collection(), [change(ChangeKind.CREATED, i) for i in items])

    body = stac_api_search(
        pg_server,
        dsn,
        {"bbox": [5.5, 46, 8, 47.4], "datetime": "2024-02-12T00:00:00Z/2024-03-12T10:00:00Z", "limit": 100},
    )
    assert sorted(f["id"] for f in body["features"]) == ["in-window", "on-the-end-bound", "ranged"]
    assert all(f["collection"] == COLLECTION for f in body["features"])


def test_missing_postgresql_fails_the_fixture_with_the_packages_to_install(monkeypatch, tmp_path):
    import tests.pgserver as pgserver

    installed = pgserver.PG_BINDIR
    monkeypatch.setattr(pgserver, "PG_BINDIR", tmp_path / "no-postgresql")
    with pytest.raises(pytest.fail.Exception, match="postgresql-15 postgresql-15-postgis-3"):
        pgserver.postgres_server().__enter__()
    monkeypatch.setattr(pgserver, "PG_BINDIR", installed)
    monkeypatch.setattr(pgserver, "_POSTGIS_CONTROL", tmp_path / "postgis.control")
    with pytest.raises(pytest.fail.Exception, match="PostGIS .*postgresql-15-postgis-3"):
        pgserver.postgres_server().__enter__()


@pytest.mark.parametrize("password", ["p", "1", "server"])
def test_a_short_password_does_not_garble_the_drivers_message(password):
    """Before, every occurrence of the password was masked: 'p' made
    '***ort 1 failed ... acce***ting', telling the password by position."""
    with socket_closed_port() as port:
        sink = PgstacSink(f"postgresql://u:{password}@127.0.0.1:{port}/stac", connect_timeout=2)
        with pytest.raises(PgstacError) as info:
            sink.diff(make_collection(), ITEMS)
    text = str(info.value)
    assert "***" not in text, text
    assert f"port {port} failed" in text and "server" in text


def test_the_dsn_forms_and_a_long_password_are_scrubbed_from_any_message():
    password = "Long-S3cret-PW"
    sink = PgstacSink(f"postgresql://u:{password}@127.0.0.1:1/stac")
    exc = psycopg.OperationalError(
        f"bad dsn postgresql://u:{password}@h/db, host=h password='{password}' x, "
        f"and password=other-secret; echoed {password}"
    )
    text = sink._scrub(exc)
    assert password not in text and "other-secret" not in text
    assert "postgresql://***@h/db" in text and "password=*** x" in text


@pytest.mark.parametrize("password", ["Pa@ss-W0rd-tail", "Pa/ss-W0rd-tail", "Pa@ss@W0rd-tail"])
def test_a_password_with_an_unescaped_at_or_slash_is_refused_without_showing_it(password):
    """libpq ends a postgresql:// URL's user info at its first '@', and its
    host at the first '/': a password holding a raw '@' left its tail in the
    host, one holding '/' became host 'u', port 'Pa' and a database name
    holding the rest, and the sink's name (``host:port/dbname``, in every
    error and its repr) printed them: "cannot reach the pgSTAC database
    u:Pa/ss-W0rd-tail@127.0.0.1:1/stac". Now such a DSN is refused when the
    sink is made, before anything is written, saying to percent-encode."""
    dsn = f"postgresql://u:{password}@127.0.0.1:1/stac"
    with pytest.raises(InputError) as info:
        PgstacSink(dsn, connect_timeout=2)
    text = str(info.value)
    for piece in ("ss-W0rd-tail", "W0rd-tail", "Pa"):
        assert piece not in text, text
    assert "%40" in text and "%2F" in text and "PGPASSWORD" in text
    # percent-encoded, the same password is taken (and stays unshown)
    escaped = password.replace("@", "%40").replace("/", "%2F")
    sink = PgstacSink(f"postgresql://u:{escaped}@127.0.0.1:1/stac")
    assert sink.database == "127.0.0.1:1/stac"


@pytest.mark.parametrize(
    "dsn",
    [
        "host=db.example.com user=bob@myserver password=pw sslmode=require",
        "postgresql://bob%40myserver:pw@db.example.com",
    ],
)
def test_a_user_named_user_at_server_with_no_database_name_is_taken(dsn):
    """Azure's ``user@server`` user names, given without a database name:
    libpq then connects to the database named as the user, and the check
    for a password's raw '@' took that name for the tail of a password."""
    assert PgstacSink(dsn).database == "db.example.com:5432/bob@myserver"


def test_a_statement_held_past_the_statement_timeout_fails_instead_of_hanging(pgstac_dsn):
    """A statement on an open connection had no bound: only connecting had
    one, so a statement waiting on the database (or on a cut network) hung
    the call. Another connection holds the writers' lock the sink's
    transaction takes first: the sink's call fails after its statement
    timeout, naming it and how to set a longer one, and writes nothing."""
    import threading

    sink = PgstacSink(pgstac_dsn, statement_timeout=0.5)
    outcome: list[BaseException | None] = []

    def apply() -> None:
        try:
            sink.apply(make_collection(), [change(ChangeKind.CREATED, ITEMS[0])])
            outcome.append(None)
        except BaseException as exc:  # handed to the test thread
            outcome.append(exc)

    with psycopg.connect(pgstac_dsn) as holder:  # a transaction, left open until the block ends
        holder.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", ("stac-producer:pgstac",))
        worker = threading.Thread(target=apply, daemon=True)
        worker.start()
        worker.join(timeout=20)
        hung = worker.is_alive()
    worker.join(timeout=20)  # the lock is released: a hung call now ends too
    assert not hung, "the sink's statement waited past its statement timeout"
    (error,) = outcome
    assert isinstance(error, PgstacError), error
    assert error.sqlstate == "57014" and "statement timeout" in str(error), error
    assert "statement_timeout" in str(error) and "0.5 s" in str(error), error
    assert rows(pgstac_dsn) == {}


def test_the_sinks_connections_have_keepalives_and_a_dsn_keeps_its_own_timeout(pgstac_dsn):
    """Keepalives and the statement timeout are set on each connection; a
    DSN that sets its own statement timeout or keepalives keeps them."""
    sink = PgstacSink(pgstac_dsn, statement_timeout=7)
    with sink._session("reading its settings") as conn:
        assert conn.execute("SHOW statement_timeout").fetchone() == ("7s",)
        assert conn.info.get_parameters()["keepalives_idle"] == "30"
    own_settings = "options=-c%20statement_timeout%3D42s&keepalives_idle=5"
    own = PgstacSink(f"{pgstac_dsn}?{own_settings}", statement_timeout=7)
    with own._session("reading its settings") as conn:
        assert conn.execute("SHOW statement_timeout").fetchone() == ("42s",)
        assert conn.info.get_parameters()["keepalives_idle"] == "5"

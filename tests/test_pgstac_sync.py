"""register / remove / reconcile keep a real pgSTAC database in step with the
static catalog (issue 11, point 3): PostgreSQL + PostGIS + pgSTAC on
127.0.0.1 (tests/pgserver.py, fixture ``pgstac_dsn``), rasters written here,
S3 through moto for the event handler, a stac-fastapi-pgstac app in process."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from click.testing import CliRunner

import producer
from producer import api
from producer.cli import main
from producer.errors import StoreError
from producer.events import HandlerConfig, handle
from producer.options import RegisterOptions
from tests.crashes import write_tile
from tests.pgserver import PgServer, stac_api_search
from tests.s3server import S3Server
from tests.trees import tree_hash

PASSWORD = "s3cr3t-DSN-pw"


def rows(dsn: str, collection: str = "c") -> dict[str, dict[str, Any]]:
    """id -> content of the collection's items in the database."""
    with psycopg.connect(dsn) as conn:
        found = conn.execute(
            "SELECT id, content FROM pgstac.items WHERE collection = %s", (collection,)
        ).fetchall()
    return {rid: content for rid, content in found}


def execute(dsn: str, sql: str, *args: Any) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("SET search_path TO pgstac, public")
        conn.execute(sql, args or None)


@pytest.fixture
def tiles(tmp_path: Path) -> list[Path]:
    folder = tmp_path / "tiles"
    return [write_tile(folder, "a_20240110.tif", 6.0, 46.0), write_tile(folder, "b_20240215.tif", 7.0, 46.5)]


@pytest.fixture
def closed_dsn() -> Iterator[str]:
    """A DSN with a password, to a 127.0.0.1 port nothing listens on."""
    import socket

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    try:
        yield f"postgresql://producer:{PASSWORD}@127.0.0.1:{sock.getsockname()[1]}/stac?connect_timeout=2"
    finally:
        sock.close()


def test_register_update_and_remove_follow_into_the_database(tmp_path, tiles, pgstac_dsn):
    catalog = str(tmp_path / "cat")
    results = producer.register(tiles, catalog=catalog, collection="c", pgstac=pgstac_dsn)
    assert [r.action for r in results] == ["created", "created"], [r.error for r in results]
    stored = rows(pgstac_dsn)
    assert sorted(stored) == ["a_20240110", "b_20240215"]
    item = json.loads((tmp_path / "cat/c/a_20240110/a_20240110.json").read_text())
    assert stored["a_20240110"]["properties"]["created"] == item["properties"]["created"]
    with psycopg.connect(pgstac_dsn) as conn:
        row = conn.execute("SELECT content->'extent' FROM pgstac.collections WHERE id = 'c'").fetchone()
    assert row is not None
    (extent,) = row
    collection = json.loads((tmp_path / "cat/c/collection.json").read_text())
    assert extent == collection["extent"]

    (updated,) = producer.register(
        tiles[:1], catalog=catalog, collection="c", pgstac=pgstac_dsn, datetime="2024-01-20T00:00:00Z"
    )
    assert updated.action == "updated"
    assert rows(pgstac_dsn)["a_20240110"]["properties"]["datetime"] == "2024-01-20T00:00:00Z"

    removed = api.remove("a_20240110", catalog=catalog, collection="c", pgstac=pgstac_dsn)
    assert removed.action == "removed", removed.error
    assert sorted(rows(pgstac_dsn)) == ["b_20240215"]


def test_a_rerun_after_the_database_fell_behind_brings_it_back_although_the_catalog_is_unchanged(
    tmp_path, tiles, pgstac_dsn
):
    catalog = str(tmp_path / "cat")
    producer.register(tiles, catalog=catalog, collection="c")  # committed, database not told
    producer.register(tiles[:1], catalog=catalog, collection="c", pgstac=pgstac_dsn)
    assert sorted(rows(pgstac_dsn)) == ["a_20240110"]
    results = producer.register(tiles, catalog=catalog, collection="c", pgstac=pgstac_dsn)
    assert [r.action for r in results] == ["unchanged", "unchanged"]
    assert sorted(rows(pgstac_dsn)) == ["a_20240110", "b_20240215"]
    # a removal whose database delete was lost: the rerun finds no item, and still deletes the row
    api.remove("b_20240215", catalog=catalog, collection="c")
    again = api.remove("b_20240215", catalog=catalog, collection="c", pgstac=pgstac_dsn)
    assert again.action == "absent"
    assert sorted(rows(pgstac_dsn)) == ["a_20240110"]


def test_an_unreachable_database_leaves_the_catalog_untouched_and_never_shows_the_password(
    tmp_path, tiles, closed_dsn, caplog
):
    catalog = tmp_path / "cat"
    producer.register(tiles[:1], catalog=str(catalog), collection="c")
    before = tree_hash(catalog)
    caplog.set_level(logging.DEBUG)
    results = producer.register(tiles, catalog=str(catalog), collection="c", pgstac=closed_dsn)
    assert tree_hash(catalog) == before
    for result in results:
        assert result.error_type == "storage", result.error
        assert "cannot reach the pgSTAC database 127.0.0.1:" in str(result.error)
        assert "nothing was written" in str(result.error)
    with pytest.raises(StoreError):
        api.remove("a_20240110", catalog=str(catalog), collection="c", pgstac=closed_dsn)
    with pytest.raises(StoreError):
        api.reconcile(str(catalog), fix=True, pgstac=closed_dsn)
    assert tree_hash(catalog) == before
    assert "pgstac" not in repr(RegisterOptions(pgstac=closed_dsn))

    runner = CliRunner()
    outputs = [
        runner.invoke(
            main, ["register", str(tiles[1]), "-c", str(catalog), "--collection", "c", "--pgstac", closed_dsn]
        ),
        runner.invoke(
            main,
            ["register", str(tiles[1]), "-c", str(catalog), "--collection", "c", "--json"],
            env={"STAC_PGSTAC_DSN": closed_dsn},
        ),
        runner.invoke(
            main, ["remove", "a_20240110", "-c", str(catalog), "--collection", "c", "--pgstac", closed_dsn]
        ),
        runner.invoke(main, ["reconcile", str(catalog), "--pgstac", closed_dsn]),
    ]
    for out in outputs:
        assert out.exit_code == 1, out.output
        assert "127.0.0.1:" in out.output
    assert tree_hash(catalog) == before
    shown = "".join(o.output for o in outputs) + caplog.text + json.dumps([r.to_dict() for r in results])
    assert PASSWORD not in shown


def test_reconcile_finds_the_drift_of_the_database_and_fix_brings_it_in_line(tmp_path, tiles, pgstac_dsn):
    catalog = str(tmp_path / "cat")
    producer.register(tiles, catalog=catalog, collection="c", pgstac=pgstac_dsn)
    assert api.reconcile(catalog, pgstac=pgstac_dsn).remaining == []
    execute(pgstac_dsn, "DELETE FROM pgstac.items WHERE id = 'a_20240110'")
    execute(
        pgstac_dsn,
        "UPDATE pgstac.items SET content = jsonb_set(content, '{properties,title}', '\"edited\"') "
        "WHERE id = 'b_20240215'",
    )
    ghost = rows(pgstac_dsn)["b_20240215"] | {"id": "ghost"}
    execute(pgstac_dsn, "SELECT pgstac.create_item(%s::jsonb)", json.dumps(ghost | {"collection": "c"}))

    report = api.reconcile(catalog, pgstac=pgstac_dsn)
    found = sorted((p.kind, p.message.split("'")[1]) for p in report.remaining)
    assert found == [
        ("pgstac-differing", "b_20240215"),
        ("pgstac-extra", "ghost"),
        ("pgstac-missing", "a_20240110"),
    ]
    assert all(p.is_error for p in report.remaining)
    assert sorted(rows(pgstac_dsn)) == ["b_20240215", "ghost"]  # without fix nothing is written

    out = CliRunner().invoke(main, ["reconcile", catalog, "--fix", "--pgstac", pgstac_dsn])
    assert out.exit_code == 0, out.output
    assert "pgstac-missing" in out.output
    assert sorted(rows(pgstac_dsn)) == ["a_20240110", "b_20240215"]
    assert "title" not in rows(pgstac_dsn)["b_20240215"]["properties"]
    assert api.reconcile(catalog, pgstac=pgstac_dsn).remaining == []


def test_the_event_handler_reads_the_dsn_from_its_environment(s3_server: S3Server, tmp_path, pgstac_dsn):
    s3 = s3_server._replace(bucket=s3_server.new_bucket())
    key = "products/ndvi/S2_20240601_T31UFQ.tif"
    tile = write_tile(tmp_path / "src", "S2_20240601_T31UFQ.tif", 6.0, 46.0)
    s3.client().put_object(Bucket=s3.bucket, Key=key, Body=tile.read_bytes())
    config = HandlerConfig.from_env(
        {
            "STAC_CATALOG": s3.url("stac"),
            "STAC_COLLECTION": "ndvi",
            "STAC_STORAGE_OPTIONS": json.dumps(s3.storage_options),
            "STAC_PGSTAC_DSN": pgstac_dsn,
        }
    )
    events = Path(__file__).parent / "events"
    created = json.loads((events / "s3_put.json").read_text().replace("amzn-s3-demo-bucket", s3.bucket))
    out = handle(created, config)
    assert out["failed"] == [], out
    assert sorted(rows(pgstac_dsn, "ndvi")) == ["S2_20240601_T31UFQ"]
    s3.client().delete_object(Bucket=s3.bucket, Key=key)
    deleted = json.loads(
        (events / "eventbridge_deleted.json").read_text().replace("amzn-s3-demo-bucket", s3.bucket)
    )
    out = handle(deleted, config)
    assert out["failed"] == [] and out["removed"][0]["action"] == "removed", out
    assert rows(pgstac_dsn, "ndvi") == {}


@pytest.mark.slow
@pytest.mark.usefixtures("prefect_harness")
def test_the_prefect_task_passes_the_option_through(tmp_path, tiles, pgstac_dsn):
    from prefect import flow

    from producer.prefect import register_in_stac

    @flow(name="register-into-pgstac")
    def register_both() -> list[dict[str, Any]]:
        return register_in_stac(
            tiles, catalog=str(tmp_path / "cat"), collection="c", options=RegisterOptions(pgstac=pgstac_dsn)
        )

    state = register_both(return_state=True)
    assert state.is_completed(), state
    assert sorted(rows(pgstac_dsn)) == ["a_20240110", "b_20240215"]


def test_the_stac_api_over_the_database_and_search_over_the_mirror_return_the_same_ids(
    tmp_path, pg_server: PgServer
):
    """The issue's query through stac-fastapi-pgstac (POST /search) and through
    producer.query.search on the static catalog's stac-geoparquet mirror."""
    from producer.query import search

    dsn = pg_server.new_database()
    folder = tmp_path / "tiles"
    tiles = [
        write_tile(folder, "inside_20240220.tif", 6.0, 46.8),
        write_tile(folder, "lastday_20240312.tif", 7.5, 47.0),
        write_tile(folder, "late_20240313.tif", 6.0, 46.8),
        write_tile(folder, "early_20240211.tif", 6.0, 46.8),
        write_tile(folder, "east_20240301.tif", 8.5, 46.8),
        write_tile(folder, "north_20240301.tif", 6.0, 48.5),
    ]
    catalog = tmp_path / "cat"
    results = producer.register(tiles, catalog=str(catalog), collection="c", pgstac=dsn)
    assert all(r.ok for r in results), [r.error for r in results]
    bbox, window = [5.5, 46, 8, 47.4], "2024-02-12T00:00:00Z/2024-03-12T10:00:00Z"

    answer = stac_api_search(pg_server, dsn, {"bbox": bbox, "datetime": window, "limit": 100})
    from_api = sorted(f["id"] for f in answer["features"])
    found = search(str(catalog), bbox=",".join(str(v) for v in bbox), datetime=window)
    from_mirror = sorted(f["id"] for f in found["features"])
    assert from_api == from_mirror == ["inside_20240220", "lastday_20240312"]


@pytest.fixture
def held_apply(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """Holds the first ``PgstacSink.apply`` whose changes include a change of
    kind ``hold.kind`` (None: none is held), which comes after its catalog
    commit: ``hold.reached`` is set when it is held, set ``hold.resume`` to
    let it run, unchanged. Every other call goes straight through."""
    import threading
    from types import SimpleNamespace

    from producer.sinks.pgstac import PgstacSink

    real = PgstacSink.apply
    hold = SimpleNamespace(kind=None, reached=threading.Event(), resume=threading.Event())

    def apply(self: Any, collection: dict[str, Any], changes: Any) -> None:
        if not hold.reached.is_set() and any(c.kind == hold.kind for c in changes):
            hold.reached.set()
            assert hold.resume.wait(60), "the test never resumed the held database write"
        real(self, collection, changes)

    monkeypatch.setattr(PgstacSink, "apply", apply)
    yield hold
    hold.resume.set()


@pytest.mark.parametrize("kind", ["removed", "updated"])
def test_an_older_change_reaching_the_database_last_does_not_undo_a_newer_one(
    tmp_path, tiles, pgstac_dsn, held_apply, kind
):
    """Two writers of one item: the first commits to the catalog, the second
    commits and reaches the database, then the first reaches the database.
    Was: its older change won there (the item deleted although the catalog
    holds it again, or its older content restored) until a reconcile --fix.
    Now each item's database write keeps the newer ``updated``, as the
    mirror's stamps do."""
    import threading

    catalog = str(tmp_path / "cat")
    (first,) = producer.register(tiles[:1], catalog=catalog, collection="c", pgstac=pgstac_dsn)
    assert first.action == "created", first.error
    held_apply.kind = kind
    where = {"catalog": catalog, "collection": "c", "pgstac": pgstac_dsn}
    if kind == "removed":
        older = threading.Thread(target=api.remove, args=("a_20240110",), kwargs=where)
    else:
        older = threading.Thread(
            target=producer.register, args=(tiles[:1],), kwargs={**where, "datetime": "2024-01-20T00:00:00Z"}
        )
    older.start()
    assert held_apply.reached.wait(60)
    (newer,) = producer.register(tiles[:1], **where, datetime="2024-01-25T00:00:00Z")
    assert newer.action in ("created", "updated"), newer.error
    held_apply.resume.set()
    older.join(60)
    item = json.loads((tmp_path / "cat/c/a_20240110/a_20240110.json").read_text())
    assert item["properties"]["datetime"] == "2024-01-25T00:00:00Z"
    stored = rows(pgstac_dsn)
    assert "a_20240110" in stored, "the older removal deleted the item the catalog holds"
    assert stored["a_20240110"]["properties"]["datetime"] == "2024-01-25T00:00:00Z"
    assert stored["a_20240110"]["properties"]["updated"] == item["properties"]["updated"]
    found = producer.reconcile(catalog, pgstac=pgstac_dsn).found
    assert not {k for k in found if k in ("pgstac-missing", "pgstac-extra", "pgstac-differing")}, found


def test_the_stac_api_and_search_agree_on_a_box_or_geometry_in_a_rotated_scenes_empty_corner(
    tmp_path, pg_server: PgServer
):
    """Was: the mirror's search matched bboxes, so a box in the corner of a
    rotated scene's bbox returned the scene, which the STAC API over pgSTAC
    (footprints) does not."""
    from producer.query import search
    from tests import rasters

    dsn = pg_server.new_database()
    paths = [rasters.write_rotated(tmp_path / "data"), rasters.write_polar(tmp_path / "data")]
    catalog = tmp_path / "cat"
    results = producer.register(paths, catalog=str(catalog), collection="c", pgstac=dsn)
    assert all(r.ok for r in results), [r.error for r in results]
    corner = [15.0, 45.1485, 15.001, 45.149]  # in the rotated scene's bbox, outside its footprint
    polygon = {
        "type": "Polygon",
        "coordinates": [[[-60, 86], [-50, 86], [-50, 87], [-60, 86]]],
    }  # beside the pole
    inside = [15.005, 45.15, 15.006, 45.151]
    for query, expected in (
        ({"bbox": corner}, []),
        ({"intersects": polygon}, []),
        ({"bbox": inside}, ["rotated_20240401"]),
        ({"bbox": [-60, 86, -50, 90]}, ["polar_3413_20240201"]),
    ):
        answer = stac_api_search(pg_server, dsn, {**query, "limit": 100})
        from_api = sorted(f["id"] for f in answer["features"])
        from_mirror = sorted(f["id"] for f in search(str(catalog), **query)["features"])
        assert from_api == from_mirror == expected, query


def served(dsn: str, collection: str = "c") -> dict[str, dict[str, Any]]:
    """id -> the item as pgSTAC serves it (hydrated with the collection row's item_assets)."""
    with psycopg.connect(dsn) as conn:
        found = conn.execute(
            "SELECT id, pgstac.get_item(id, collection) FROM pgstac.items WHERE collection = %s",
            (collection,),
        ).fetchall()
    return {rid: item for rid, item in found}


def test_items_served_keep_their_assets_when_a_later_register_changes_the_collections_item_assets(
    tmp_path, pg_server: PgServer
):
    """pgSTAC stores an item without what its collection's item_assets repeat
    and adds that back when it serves it. A later register changes the
    collection's item_assets (a second product's data asset has another
    title: the title is dropped; a product under another asset key: a key is
    added). Was: the items already in the database were served without their
    asset's title and with an asset they do not have (no href), and
    reconcile called them pgstac-differing after nothing but registers."""
    dsn = pg_server.new_database()
    folder = tmp_path / "tiles"
    catalog = tmp_path / "cat"
    first = write_tile(folder, "a_20240110.tif", 6.0, 46.0)
    second = write_tile(folder, "b_20240215.tif", 7.0, 46.5)
    other = write_tile(folder, "v_20240301.tif", 8.0, 46.5)
    for path, key in ((first, None), (second, None), (other, "visual")):
        (result,) = producer.register([path], catalog=str(catalog), collection="c", pgstac=dsn, asset_key=key)
        assert result.action == "created", result.error
    collection = json.loads((catalog / "c/collection.json").read_text())
    assert "title" not in collection["item_assets"]["data"]
    assert "visual" in collection["item_assets"]

    got = served(dsn)
    api_items = {f["id"]: f for f in stac_api_search(pg_server, dsn, {"collections": ["c"]})["features"]}
    for item_id in ("a_20240110", "b_20240215", "v_20240301"):
        committed = producer.search(str(catalog), ids=[item_id])["features"][0]  # absolute hrefs
        assert got[item_id]["assets"] == committed["assets"], item_id
        assert api_items[item_id]["assets"] == committed["assets"], item_id
    found = producer.reconcile(str(catalog), pgstac=dsn).found
    assert not {k for k in found if k.startswith("pgstac-")}, found


def test_the_collection_row_links_the_mirror_by_an_href_a_client_of_the_api_can_open(
    tmp_path, tiles, pgstac_dsn
):
    """The collection document links its stac-geoparquet mirror relative to
    itself (``./items.parquet``): behind a STAC API that href resolves
    against the API's collection URL, where there is no such file. Was:
    stored as is; the row's asset hrefs are now absolute, like the items'."""
    catalog = tmp_path / "cat"
    results = producer.register(tiles, catalog=str(catalog), collection="c", pgstac=pgstac_dsn)
    assert all(r.ok for r in results), [r.error for r in results]
    with psycopg.connect(pgstac_dsn) as conn:
        row = conn.execute("SELECT content FROM pgstac.collections WHERE id = 'c'").fetchone()
    assert row is not None
    href = row[0]["assets"]["mirror"]["href"]
    assert href == str(catalog / "c/items.parquet")
    assert Path(href).is_file()
    assert producer.reconcile(str(catalog), pgstac=pgstac_dsn).remaining == []

"""``search`` over the stac-geoparquet mirror of real registered rasters,
checked against a brute-force filter over the JSON items: bbox (antimeridian
both ways), open-ended datetime ranges, item ranges, collections, ids;
local and S3 catalogs; the CLI."""

from __future__ import annotations

import json
import random
import shutil
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

import producer
from producer import mirror
from producer.changes import Change, ChangeKind
from producer.cli import main
from producer.errors import CatalogError, InputError
from producer.mirror import MirrorSink, canonical, rebuild
from producer.query import search
from producer.store import open_store
from tests import rasters

# (collection, file name, west, north): 16 x 16 pixels of 0.01° (0.16° wide)
TILES = [
    ("tiles", "alps_20240105.tif", 6.0, 47.0),
    ("tiles", "swiss_20240212.tif", 7.0, 46.9),
    ("tiles", "late_20240312.tif", 7.2, 46.8),
    ("tiles", "usa_20240310.tif", -75.0, 40.0),
    ("tiles", "fiji_20231120.tif", 179.9, -16.0),  # crosses 180°
    ("tiles", "west_20250101.tif", -179.99, 60.0),
    ("other", "lake_20240215.tif", 6.5, 46.5),
    ("other", "east_20240401.tif", 179.5, 60.0),
]


@pytest.fixture(scope="module")
def catalog(tmp_path_factory) -> Path:
    data = tmp_path_factory.mktemp("search-rasters")
    root = tmp_path_factory.mktemp("search") / "catalog"
    for collection, partition in (("tiles", "year/month"), ("other", None)):
        paths = [
            rasters.write_tile(data / collection, name, lon, lat)
            for coll, name, lon, lat in TILES
            if coll == collection
        ]
        if collection == "tiles":
            paths += [rasters.write_range(data / collection), rasters.write_dateline(data / collection)]
        results = producer.register(
            [str(p) for p in paths], catalog=str(root), collection=collection, partition=partition
        )
        assert all(r.error is None for r in results), [r.error for r in results]
    store = open_store(str(root))
    for collection in ("tiles", "other"):
        rebuild(store, collection)
    return root


def json_items(root: Path) -> list[dict[str, Any]]:
    out = []
    for path in root.rglob("*.json"):
        doc = json.loads(path.read_text())
        if doc.get("type") == "Feature":
            out.append(doc)
    return out


# --- the brute force: independent of producer.query ----------------------------------


def _spans(west: float, east: float) -> list[tuple[float, float]]:
    return [(west, east)] if west <= east else [(west, 180.0), (-180.0, east)]


def _meets_box(item: dict[str, Any], box: list[float]) -> bool:
    b = item["bbox"]
    w, s, e, n = (b[0], b[1], b[3], b[4]) if len(b) == 6 else b
    if s > box[3] or n < box[1]:
        return False
    return any(a1 <= b2 and b1 <= a2 for a1, a2 in _spans(w, e) for b1, b2 in _spans(box[0], box[2]))


def _when(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _bounds(query: str) -> tuple[datetime, datetime]:
    low, high = datetime(1, 1, 1, tzinfo=UTC), datetime(9999, 1, 1, tzinfo=UTC)
    first, _, second = query.partition("/") if "/" in query else (query, "", query)
    start = low if first in ("", "..") else _when(first if "T" in first else first + "T00:00:00Z")
    if second in ("", ".."):
        return start, high
    end = (
        _when(second) if "T" in second else _when(second + "T00:00:00Z") + timedelta(days=1, microseconds=-1)
    )
    return start, end


def _meets_time(item: dict[str, Any], query: str) -> bool:
    props = item["properties"]
    start = _when(props.get("start_datetime") or props["datetime"])
    end = _when(props.get("end_datetime") or props["datetime"])
    q_start, q_end = _bounds(query)
    return start <= q_end and end >= q_start


def brute_force(items: list[dict[str, Any]], bbox=None, datetime=None, collections=None, ids=None) -> set:
    return {
        (i["collection"], i["id"])
        for i in items
        if (bbox is None or _meets_box(i, [float(v) for v in bbox.split(",")]))
        and (datetime is None or _meets_time(i, datetime))
        and (collections is None or i["collection"] in collections.split(","))
        and (ids is None or i["id"] in ids.split(","))
    }


BOXES = [
    None,
    "5.5,46,8,47.4",
    "-180,-90,180,90",
    "170,-30,-170,0",  # crosses 180°: holds the Fiji tiles
    "179.95,-20,180,-10",  # east of 180° only: meets the items crossing it
    "-180,-20,-179.95,-10",
    "175,50,-175,70",  # crosses 180°: west_ (just east of -180) and east_ (at 179.5)
    "-179.999,59,-179.995,61",  # inside west_ only
    "100,0,120,10",  # nothing
]
WINDOWS = [
    None,
    "2024-02-12T00:00:00Z/2024-03-12T10:00:00Z",
    "../2024-01-01",
    "2024-01-01/..",
    "2024-01-15",  # only the January range item covers it
    "2024-01-20T00:00:00+02:00/2024-01-25T00:00:00Z",
    "2023-11-20T00:00:00Z",
]


@pytest.mark.parametrize("bbox", BOXES)
def test_search_equals_brute_force_over_the_json_items(catalog, bbox):
    items = json_items(catalog)
    by_id = {(i["collection"], i["id"]): i for i in items}
    queries = [(w, None) for w in WINDOWS] + [(WINDOWS[1], "tiles"), (None, "other")]
    for window, collections in queries:
        result = search(str(catalog), bbox=bbox, datetime=window, collections=collections)
        got = [(f["collection"], f["id"]) for f in result["features"]]
        expected = brute_force(items, bbox, window, collections)
        assert set(got) == expected, (bbox, window, collections)
        assert len(got) == len(expected) == result["numberMatched"] == result["numberReturned"]
    # the features are the JSON items (links resolved to absolute URLs)
    for feature in search(str(catalog), bbox=bbox)["features"]:
        item = by_id[(feature["collection"], feature["id"])]
        assert canonical(dict(feature, links=[])) == canonical(dict(item, links=[]))
        self_link = next(link for link in feature["links"] if link["rel"] == "self")
        assert json.loads(Path(self_link["href"]).read_text())["id"] == feature["id"]


def test_antimeridian_cases_by_name(catalog):
    def ids(**query: Any) -> set[str]:
        return {f["id"] for f in search(str(catalog), **query)["features"]}

    assert ids(bbox="170,-30,-170,0") == {"fiji_20231120", "dateline_20240601"}
    assert ids(bbox="-180,-20,-179.95,-10") == {"fiji_20231120", "dateline_20240601"}
    assert ids(bbox="175,50,-175,70") == {"west_20250101", "east_20240401"}
    assert ids(bbox="5.5,46,8,47.4", datetime="2024-02-12T00:00:00Z/2024-03-12T10:00:00Z") == {
        "swiss_20240212",
        "lake_20240215",
        "late_20240312",  # 2024-03-12T00:00:00Z: before the window's end at 10:00
    }


def test_open_ended_and_range_datetimes(catalog):
    def ids(window: str) -> set[str]:
        return {f["id"] for f in search(str(catalog), datetime=window)["features"]}

    assert ids("../2024-01-01") == {"fiji_20231120", "monthly_20240101_20240131"}
    assert ids("2025-01-01/..") == {"west_20250101"}
    assert ids("2024-01-15") == {"monthly_20240101_20240131"}  # only by its start/end range


def test_ids_limit_and_order(catalog):
    result = search(str(catalog), ids="alps_20240105,lake_20240215,nope", limit=1)
    assert result["type"] == "FeatureCollection"
    assert (result["numberMatched"], result["numberReturned"]) == (2, 1)
    assert result["features"][0]["id"] == "lake_20240215"  # newest first


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ({"bbox": "1,2,3"}, "four numbers"),
        ({"bbox": "0,10,5,-10"}, "south <= north"),
        ({"datetime": "2024-01-01T00:00:00"}, "no time zone"),
        ({"datetime": "yesterday"}, "not RFC 3339"),
        ({"datetime": "../.."}, "open at both ends"),
        ({"datetime": "2024-02-01/2024-01-01"}, "start is after the end"),
        ({"collections": "nope"}, "nope not in the catalog"),
    ],
)
def test_bad_queries_are_named(catalog, query, message):
    with pytest.raises(InputError, match=message):
        search(str(catalog), **query)


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ({"bbox": [1, 2, 3, "x"]}, r"bbox \[1, 2, 3, 'x'\]: expected four numbers"),
        ({"bbox": [True, 1, 2, 3]}, "expected four numbers"),
        ({"limit": "5"}, "limit '5' is not a whole number"),
        ({"limit": 2.5}, "limit 2.5 is not a whole number"),
        ({"ids": 5}, "ids 5: give a comma-separated text or a list of texts"),
        ({"collections": ["tiles", None]}, "collections .*: give a comma-separated text or a list of texts"),
        ({"datetime": 20240101}, "datetime 20240101: give RFC 3339 text"),
        ({"datetime": datetime(2024, 1, 1)}, "no time zone"),
        ({"datetime": ("2024-01-01", "2024-01-02", "2024-01-03")}, "give RFC 3339 text"),
    ],
)
def test_python_values_of_the_wrong_type_are_named(catalog, query, message):
    """Was: a bare ValueError, TypeError or AttributeError ('datetime' object
    has no attribute 'strip') from inside the parser."""
    with pytest.raises(InputError, match=message):
        search(str(catalog), **query)


def test_python_datetimes_dates_and_pairs_are_windows(catalog):
    """A Python caller may pass what pystac-client takes: a datetime, a date
    (the whole day) or a (start, end) pair, None for an open end."""

    def ids(window: Any) -> set[str]:
        return {f["id"] for f in search(str(catalog), datetime=window)["features"]}

    assert ids(date(2024, 1, 15)) == ids("2024-01-15") == {"monthly_20240101_20240131"}
    assert ids((None, date(2024, 1, 1))) == ids("../2024-01-01")
    assert (
        ids([datetime(2025, 1, 1, tzinfo=UTC), None]) == ids("2025-01-01T00:00:00Z/..") == {"west_20250101"}
    )
    start = datetime(2024, 2, 12, 2, tzinfo=timezone(timedelta(hours=2)))  # 00:00Z
    assert ids((start, "2024-03-12T10:00:00Z")) == ids("2024-02-12T00:00:00Z/2024-03-12T10:00:00Z")
    # numpy's numbers are numbers (a bbox from an array, a limit from a count)
    box = np.array([170, -30, -170, 0], dtype=np.float32)
    assert search(str(catalog), bbox=box, limit=np.int64(1))["numberMatched"] == 2


@pytest.mark.parametrize("value", ["2024-02-30", "2024-13-01", "2024-05-01/2024-02-30", "2024-00-10/.."])
def test_a_date_that_is_not_a_day_is_named(catalog, value):
    """A date-only value of the right shape that is no calendar day (Feb 30,
    month 13) is the caller's InputError naming it and the form, not a bare
    ValueError from the calendar; in the CLI a usage error (exit 2), no traceback."""
    bad = value.split("/")[-1] if "02-30" in value else value.split("/")[0]
    with pytest.raises(InputError, match=rf"datetime '{bad}' is not a calendar day.*e\.g\. 2024-01-01"):
        search(str(catalog), datetime=value)
    out = CliRunner().invoke(main, ["search", str(catalog), "--datetime", value])
    assert out.exit_code == 2, out.output
    assert f"--datetime '{bad}' is not a calendar day" in out.output
    assert out.exception is None or isinstance(out.exception, SystemExit)


def test_a_linked_collection_whose_document_is_gone_names_it_and_the_fix(tmp_path):
    """Was: "'c/collection.json' not found in catalog ..." (a bare NotFound),
    with no word of what is wrong or what repairs it."""
    path = rasters.write_tile(tmp_path / "data", "x_20240101.tif", 1.0, 1.0)
    cat = str(tmp_path / "cat")
    producer.register([str(path)], catalog=cat, collection="c")
    (tmp_path / "cat" / "c" / "collection.json").unlink()
    with pytest.raises(CatalogError, match=r"collection 'c' that the root of .* links is missing") as info:
        search(cat)
    assert "producer.reconcile(..., fix=True)" in str(info.value)
    out = CliRunner().invoke(main, ["search", cat])
    assert out.exit_code == 1, out.output
    assert "Fix it with stac-producer reconcile CATALOG --fix" in out.output
    assert CliRunner().invoke(main, ["reconcile", cat, "--fix"]).exit_code == 0
    assert [f["id"] for f in search(cat)["features"]] == ["x_20240101"]


def test_collection_without_mirror_says_how_to_build_it(tmp_path):
    path = rasters.write_tile(tmp_path / "data", "x_20240101.tif", 1.0, 1.0)
    producer.register([str(path)], catalog=str(tmp_path / "cat"), collection="c")
    # as a catalog written before every writer kept the mirror: no mirror files
    for fragments in (tmp_path / "cat").rglob("items-fragments"):
        shutil.rmtree(fragments)
    for base in (tmp_path / "cat").rglob("items.parquet"):
        base.unlink()
    cat = str(tmp_path / "cat")
    with pytest.raises(InputError, match=r"'c' .* mirror file that exists\. Fix it with ") as info:
        search(cat)
    assert "producer.reconcile(..., fix=True)" in str(info.value)  # the Python spelling
    out = CliRunner().invoke(main, ["search", cat])
    assert out.exit_code == 2, out.output
    # the CLI spelling, and the command it names is the one that builds it
    # (before: "build it with reconcile (Python: producer.mirror.rebuild(...))",
    # and a plain `reconcile` builds nothing)
    assert "Fix it with stac-producer reconcile CATALOG --fix" in out.output
    assert "producer." not in out.output
    assert CliRunner().invoke(main, ["reconcile", cat, "--fix"]).exit_code == 0
    assert [f["id"] for f in search(cat)["features"]] == ["x_20240101"]


def test_a_corrupt_base_mirror_file_is_named_with_its_fix(tmp_path):
    """A base mirror file that is not parquet (truncated by a failed copy):
    an error naming the file and the fix, in the caller's spelling, not
    pyarrow's traceback (before: ArrowInvalid "Parquet magic bytes not found
    in footer"); following the fix makes search work again."""
    path = rasters.write_tile(tmp_path / "data", "x_20240101.tif", 1.0, 1.0)
    cat = tmp_path / "cat"
    producer.register([str(path)], catalog=str(cat), collection="c")
    rebuild(open_store(str(cat)), "c")
    base = cat / "c" / "items.parquet"
    base.write_bytes(base.read_bytes()[:100])
    with pytest.raises(mirror.MirrorError, match="not readable parquet") as info:
        search(str(cat))
    assert f"{base}" in str(info.value) or f"{cat}/c/items.parquet" in str(info.value)
    assert "Fix it with producer.reconcile(..., fix=True)" in str(info.value)
    out = CliRunner().invoke(main, ["search", str(cat)])
    assert out.exit_code == 1, out.output
    assert isinstance(out.exception, SystemExit)  # a clear error, no traceback
    assert "c/items.parquet is not readable parquet" in out.output
    assert "Fix it with stac-producer reconcile CATALOG --fix" in out.output
    assert CliRunner().invoke(main, ["reconcile", str(cat), "--fix"]).exit_code == 0  # no hand deletion
    assert [f["id"] for f in search(str(cat))["features"]] == ["x_20240101"]


def test_a_base_mirror_file_whose_row_groups_do_not_read_is_named(tmp_path):
    """A base whose footer reads but whose column chunks do not (bytes
    overwritten in the middle): the same named error when its rows are read."""
    path = rasters.write_tile(tmp_path / "data", "x_20240101.tif", 1.0, 1.0)
    cat = tmp_path / "cat"
    producer.register([str(path)], catalog=str(cat), collection="c")
    rebuild(open_store(str(cat)), "c")
    base = cat / "c" / "items.parquet"
    data = bytearray(base.read_bytes())
    data[4:2000] = b"\xff" * (2000 - 4)  # past the magic, inside the column chunks
    base.write_bytes(bytes(data))
    with pytest.raises(mirror.MirrorError, match=r"c/items.parquet is not readable parquet"):
        search(str(cat))


def test_search_on_s3(catalog, s3_server, tmp_path):
    bucket = s3_server.new_bucket()
    url = f"s3://{bucket}/stac"
    paths = [
        rasters.write_tile(tmp_path, name, lon, lat) for coll, name, lon, lat in TILES if coll == "tiles"
    ]
    producer.register(
        [str(p) for p in paths],
        catalog=url,
        collection="tiles",
        partition="year/month",
        storage_options=s3_server.storage_options,
    )
    rebuild(open_store(url, s3_server.storage_options), "tiles")
    bbox, window = "170,-30,-170,0", "../2024-01-01"
    result = search(url, bbox=bbox, datetime=window, storage_options=s3_server.storage_options)
    assert [f["id"] for f in result["features"]] == ["fiji_20231120"]
    assert result["features"][0]["links"][-1]["href"].startswith(f"s3://{bucket}/stac/tiles/2023/11/")
    local = search(str(catalog), bbox=bbox, datetime=window, collections="tiles")
    assert [f["id"] for f in local["features"]] == ["fiji_20231120"]  # same answer as the local copy


def test_cli_search_prints_the_feature_collection(catalog):
    runner = CliRunner()
    out = runner.invoke(
        main,
        [
            "search",
            str(catalog),
            "--bbox",
            "5.5,46,8,47.4",
            "--datetime",
            "2024-02-12/2024-03-12",
            "--limit",
            "5",
        ],
    )
    assert out.exit_code == 0, out.output
    result = json.loads(out.output)
    assert {f["id"] for f in result["features"]} == {"swiss_20240212", "lake_20240215", "late_20240312"}
    assert result["numberReturned"] == 3
    bad = runner.invoke(main, ["search", str(catalog), "--bbox", "1,2"])
    assert bad.exit_code == 2
    assert "--bbox '1,2': expected four numbers" in bad.output


# --- base files plus pending fragments -------------------------------------------------------


def _shifted(item: dict[str, Any], dx: float, dy: float) -> dict[str, Any]:
    """A copy of ``item`` moved by (dx, dy) degrees (geometry and bbox)."""
    out = json.loads(json.dumps(item))
    out["geometry"]["coordinates"] = [
        [[x + dx, y + dy] for x, y in ring] for ring in out["geometry"]["coordinates"]
    ]
    w, s, e, n = out["bbox"]
    out["bbox"] = [w + dx, s + dy, e + dx, n + dy]
    return out


def _later(item: dict[str, Any], seconds: int = 60) -> dict[str, Any]:
    """``item`` as a later commit would leave it: ``updated`` moved on."""
    out = json.loads(json.dumps(item))
    when = _when(out["properties"]["updated"]) + timedelta(seconds=seconds)
    out["properties"]["updated"] = when.isoformat().replace("+00:00", "Z")
    return out


@pytest.fixture(scope="module")
def fragmented(catalog, tmp_path_factory) -> tuple[Path, list[dict[str, Any]]]:
    """A copy of ``catalog`` whose mirror has base files AND pending fragments
    (moves, edits, removals, a new item; one partition compacted in between),
    with the item list the fragments describe."""
    root = tmp_path_factory.mktemp("fragmented") / "catalog"
    shutil.copytree(catalog, root)
    store = open_store(str(root))
    keyed = {
        item["id"]: (str(path.relative_to(root)), item)
        for path in root.rglob("*.json")
        if (item := json.loads(path.read_text())).get("type") == "Feature"
    }

    def change(kind: ChangeKind, item: dict[str, Any], key: str | None = None) -> Change:
        return Change(kind, item["collection"], item["id"], key or keyed[item["id"]][0], item)

    lake = _shifted(_later(keyed["lake_20240215"][1]), 173.3, -62.6)  # to the Fiji area
    lake["properties"]["datetime"] = "2023-11-21T00:00:00Z"
    swiss = _shifted(_later(keyed["swiss_20240212"][1]), 0.5, 0.3)
    swiss["properties"]["title"] = "moved a little"
    late2 = _later(keyed["late_20240312"][1])
    late2["id"] = "late2_20240313"
    late2["properties"]["datetime"] = "2024-03-13T00:00:00Z"
    late2_key = keyed["late_20240312"][0].replace("late_20240312", "late2_20240313")
    sink = MirrorSink(store)
    sink.apply({}, [change(ChangeKind.UPDATED, lake), change(ChangeKind.REMOVED, keyed["east_20240401"][1])])
    sink.apply({}, [change(ChangeKind.UPDATED, swiss), change(ChangeKind.REMOVED, keyed["alps_20240105"][1])])
    sink.apply({}, [change(ChangeKind.CREATED, late2, late2_key)])
    assert mirror.compact(store, "tiles/2024/03/items.parquet")  # base now holds late2
    late2b = _shifted(_later(late2, 120), -1.0, 0.0)
    sink.apply({}, [change(ChangeKind.UPDATED, late2b, late2_key)])  # a fragment over the new base
    assert mirror.list_fragments(store, "other/items.parquet")
    assert mirror.list_fragments(store, "tiles/2024/02/items.parquet")

    items = {i: it for i, (k, it) in keyed.items() if i not in ("east_20240401", "alps_20240105")}
    items.update({"lake_20240215": lake, "swiss_20240212": swiss, "late2_20240313": late2b})
    return root, list(items.values())


@pytest.mark.parametrize("bbox", BOXES)
def test_search_over_base_and_fragments_equals_brute_force(fragmented, bbox):
    root, items = fragmented
    by_id = {i["id"]: i for i in items}
    for window in WINDOWS:
        result = search(str(root), bbox=bbox, datetime=window)
        got = [(f["collection"], f["id"]) for f in result["features"]]
        assert set(got) == brute_force(items, bbox, window), (bbox, window)
        assert len(got) == result["numberMatched"]
        for feature in result["features"]:
            assert canonical(dict(feature, links=[])) == canonical(dict(by_id[feature["id"]], links=[]))


# --- many row groups: pruning by row-group statistics, and partial reads --------------------


def _offset(item: dict[str, Any], dx: float, dy: float) -> dict[str, Any]:
    """A copy of ``item`` moved by (dx, dy) degrees: any geometry, and bbox."""

    def move(coords: Any) -> Any:
        if isinstance(coords[0], int | float):
            return [coords[0] + dx, coords[1] + dy]
        return [move(c) for c in coords]

    out = json.loads(json.dumps(item))
    out["geometry"]["coordinates"] = move(out["geometry"]["coordinates"])
    w, s, e, n = out["bbox"]
    out["bbox"] = [w + dx, s + dy, e + dx, n + dy]
    return out


@pytest.fixture(scope="module")
def crowded(catalog, tmp_path_factory) -> tuple[Path, list[dict[str, Any]]]:
    """A copy of ``catalog`` whose flat collection ``other`` holds 400 items
    over the whole globe (some crossing 180°) and two years, compacted into a
    base file of several row groups, with a fragment (moves, removals) over it;
    and the item list the mirror describes (search reads only the mirror)."""
    root = tmp_path_factory.mktemp("crowded") / "catalog"
    shutil.copytree(catalog, root)
    store = open_store(str(root))
    by_id = {i["id"]: i for i in json_items(root)}
    plain, crossing = by_id["lake_20240215"], by_id["fiji_20231120"]
    rng = random.Random(11)
    made = []
    for n in range(400):
        template = crossing if n % 10 == 0 else plain
        w, s, _, _ = template["bbox"]
        dx = 0.0 if template is crossing else rng.uniform(-179.5, 179.5) - w
        item = _offset(template, dx, rng.uniform(-85.0, 85.0) - s)
        item["id"] = f"crowd_{n:03d}"
        item["collection"] = "other"
        when = datetime(2023, 1, 1, tzinfo=UTC) + timedelta(hours=rng.randrange(2 * 365 * 24))
        item["properties"]["datetime"] = when.isoformat().replace("+00:00", "Z")
        made.append(item)
    keys = {i["id"]: f"other/{i['id']}/{i['id']}.json" for i in made}
    sink = MirrorSink(store, compact_after=-1)
    sink.apply({}, [Change(ChangeKind.CREATED, "other", i["id"], keys[i["id"]], i) for i in made])
    assert mirror.compact(store, "other/items.parquet")
    moved = [_offset(_later(i), 90.0 if i["bbox"][0] < 0 else -90.0, 0.0) for i in made[1:300:15]]
    gone = made[2:300:30]
    sink.apply(
        {},
        [Change(ChangeKind.UPDATED, "other", i["id"], keys[i["id"]], i) for i in moved]
        + [Change(ChangeKind.REMOVED, "other", i["id"], keys[i["id"]], i) for i in gone],
    )
    assert len(mirror.list_fragments(store, "other/items.parquet")) == 1
    items = {i["id"]: i for i in by_id.values() if i["collection"] == "other"}
    items.update({i["id"]: i for i in made})
    items.update({i["id"]: i for i in moved})
    for i in gone:
        del items[i["id"]]
    return root, list(items.values())


@pytest.mark.parametrize(
    "bbox", [*BOXES, "-30,-40,10,0", "60,20,61,21", "-10,-90,10,90", "0,80,180,90", "179,-90,-179,90"]
)
def test_search_pruning_row_groups_equals_brute_force(crowded, bbox):
    root, items = crowded
    base = pq.ParquetFile(root / "other" / "items.parquet")
    assert base.metadata.num_row_groups > 4  # the pruning is exercised
    by_id = {i["id"]: i for i in items}
    for window in [None, "2023-03-01/2023-09-30", "2024-06-01/..", "../2023-01-10"]:
        result = search(str(root), bbox=bbox, datetime=window, collections="other")
        got = [f["id"] for f in result["features"]]
        expected = {i for c, i in brute_force(items, bbox, window) if c == "other"}
        assert set(got) == expected, (bbox, window)
        assert len(got) == result["numberMatched"]
        for feature in result["features"]:
            assert canonical(dict(feature, links=[])) == canonical(dict(by_id[feature["id"]], links=[]))


def test_search_of_a_local_catalog_reads_mirror_files_in_part_without_hashing(crowded):
    """The local store hands search open files (footers and the column chunks
    of the row groups that may match are read); a GET, which reads a file
    whole and hashes every byte for its version, is never made for them."""
    root, items = crowded
    store = open_store(str(root))
    gets: list[str] = []
    original = store.get

    def get(key: str) -> tuple[bytes, str]:
        gets.append(key)
        return original(key)

    store.get = get  # type: ignore[method-assign]
    result = search(store, bbox="-30,-40,10,0", datetime="2023-03-01/2023-09-30")
    assert result["numberMatched"] == len(
        brute_force(items, "-30,-40,10,0", "2023-03-01/2023-09-30")
        | brute_force(json_items(root), "-30,-40,10,0", "2023-03-01/2023-09-30", "tiles")
    )
    assert gets and not [k for k in gets if k.endswith(".parquet")], gets


@pytest.mark.parametrize("value", ["0001-01-01T00:00:00+01:00", "9999-12-31T23:30:00-01:00"])
def test_a_time_that_leaves_the_years_datetimes_hold_in_utc_is_named(catalog, value):
    """Valid RFC 3339 whose UTC instant is before year 1 or after 9999: an
    OverflowError escaped (a traceback, exit 1)."""
    with pytest.raises(InputError, match="outside the years 1-9999"):
        search(str(catalog), datetime=value)
    out = CliRunner().invoke(main, ["search", str(catalog), "--datetime", value])
    assert out.exit_code == 2, out.output
    assert out.exception is None or isinstance(out.exception, SystemExit)


# --- footprints that do not fill their bbox ----------------------------------------------


def _meets_footprint(item: dict[str, Any], box: list[float]) -> bool:
    """The STAC API meaning of bbox (pgSTAC's too): the item's geometry meets the box."""
    from shapely.geometry import box as make_box
    from shapely.geometry import shape

    footprint = shape(item["geometry"])
    return any(footprint.intersects(make_box(w, box[1], e, box[3])) for w, e in _spans(box[0], box[2]))


@pytest.mark.parametrize("compacted", [False, True], ids=["fragments", "base"])
def test_a_box_in_the_empty_corner_of_a_footprints_bbox_does_not_match_it(tmp_path, compacted):
    """Was: search matched item bboxes only, so a box in the corner of a
    rotated scene's bbox (or near the pole beside a polar scene, or beside a
    scene crossing 180°) returned items whose footprint it misses, which
    pgSTAC and the STAC API spec do not."""
    paths = [rasters.write_rotated(tmp_path), rasters.write_polar(tmp_path), rasters.write_dateline(tmp_path)]
    paths.append(rasters.write_tile(tmp_path, "square_20240105.tif", 15.02, 45.155))
    root = tmp_path / "catalog"
    results = producer.register([str(p) for p in paths], catalog=str(root), collection="c")
    assert all(r.ok for r in results), [r.error for r in results]
    if compacted:
        rebuild(open_store(str(root)), "c")
    items = json_items(root)
    boxes = []
    for item in items:  # each corner of each bbox, as a point and as a tiny box
        w, s, e, n = item["bbox"]
        for x, y in ((w, s), (w, n), (e, s), (e, n)):
            boxes += [[x, y, x, y], [x - 1e-6 if x > -180 else x, y, x, y + 1e-6 if y < 90 else y]]
    boxes += [
        [15.0, 45.1485, 15.001, 45.149],
        [-60, 86, -50, 87],
        [179.7, -17.75, -179.8, -17.7],
        [-180, -90, 180, 90],
    ]
    for box in boxes:
        got = {f["id"] for f in search(str(root), bbox=box)["features"]}
        expected = {i["id"] for i in items if _meets_footprint(i, box)}
        assert got == expected, box
    corner = search(str(root), bbox=[15.0, 45.1485, 15.001, 45.149])  # rotated scene's empty corner
    assert corner["numberMatched"] == 0, [f["id"] for f in corner["features"]]


# --- intersects: a GeoJSON geometry ------------------------------------------------------

INTERSECTS = [
    {"type": "Point", "coordinates": [6.05, 46.9]},  # inside alps_
    {"type": "Point", "coordinates": [0, 0]},  # nothing
    {"type": "Polygon", "coordinates": [[[5.5, 46], [8, 46], [8, 47.4], [5.5, 46]]]},  # a triangle
    {
        "type": "MultiPolygon",  # either side of 180°, as RFC 7946 splits a polygon crossing it
        "coordinates": [
            [[[179, -20], [180, -20], [180, -10], [179, -10], [179, -20]]],
            [[[-180, -20], [-179.9, -20], [-179.9, -10], [-180, -10], [-180, -20]]],
        ],
    },
    {"type": "LineString", "coordinates": [[-80, 39], [-70, 41]]},  # across usa_
    {"type": "MultiPoint", "coordinates": [[-179.995, 59.99], [6.59, 46.45]]},  # west_ and lake_
]


def _meets_geometry(item: dict[str, Any], geometry: dict[str, Any]) -> bool:
    from shapely.geometry import shape

    return bool(shape(item["geometry"]).intersects(shape(geometry)))


@pytest.mark.parametrize("geometry", INTERSECTS, ids=[g["type"] + str(i) for i, g in enumerate(INTERSECTS)])
def test_intersects_equals_brute_force_over_the_footprints(catalog, fragmented, geometry):
    """Was: search took no geometry at all (a STAC API /search's
    ``intersects``): a TypeError from Python, no flag in the CLI."""
    for root, items in ((catalog, json_items(catalog)), fragmented):
        for window in (None, "2024-01-01/.."):
            found = search(str(root), intersects=geometry, datetime=window)
            got = {(f["collection"], f["id"]) for f in found["features"]}
            expected = {
                (i["collection"], i["id"])
                for i in items
                if _meets_geometry(i, geometry) and (window is None or _meets_time(i, window))
            }
            assert got == expected, (root, window)
            assert found["numberMatched"] == len(expected)
    # the same geometry as JSON text, and as a shapely geometry
    from shapely.geometry import shape

    assert search(str(catalog), intersects=json.dumps(INTERSECTS[0]))["numberMatched"] == 1
    assert search(str(catalog), intersects=shape(INTERSECTS[0]))["numberMatched"] == 1


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("POLYGON((0 0, 1 0, 1 1, 0 0))", "not GeoJSON"),
        ({"type": "Feature", "geometry": None, "properties": {}}, "a Feature with no geometry"),
        ({"type": "FeatureCollection", "features": []}, "features do not all have a geometry"),
        ({"type": "Polygon", "coordinates": [[0, 0], [1, 1]]}, "not a GeoJSON geometry"),
        ({"type": "Circle", "coordinates": [0, 0]}, "not a GeoJSON geometry"),
        ({"type": "Point", "coordinates": [200, 0]}, "longitudes must lie in"),
        ({"type": "Polygon", "coordinates": []}, "is empty"),
        ({"type": "Polygon", "coordinates": [[[0, 0], [1, 1], [1, 0], [0, 1], [0, 0]]]}, "not a valid"),
        (5, "not GeoJSON"),
    ],
)
def test_bad_intersects_is_named_with_the_fix(catalog, value, message):
    with pytest.raises(InputError, match=message):
        search(str(catalog), intersects=value)


def test_bbox_and_intersects_together_are_refused(catalog):
    with pytest.raises(InputError, match="bbox or intersects, not both"):
        search(str(catalog), bbox="0,0,1,1", intersects=INTERSECTS[0])


def test_cli_search_intersects(catalog):
    runner = CliRunner()
    out = runner.invoke(main, ["search", str(catalog), "--intersects", json.dumps(INTERSECTS[0])])
    assert out.exit_code == 0, out.output
    assert [f["id"] for f in json.loads(out.output)["features"]] == ["alps_20240105"]
    bad = runner.invoke(main, ["search", str(catalog), "--intersects", "POLYGON((0 0, 1 0, 1 1, 0 0))"])
    assert bad.exit_code == 2, bad.output
    assert "--intersects" in bad.output and "neither GeoJSON text nor a file" in bad.output
    both = runner.invoke(
        main, ["search", str(catalog), "--bbox", "0,0,1,1", "--intersects", json.dumps(INTERSECTS[0])]
    )
    assert both.exit_code == 2 and "--bbox or --intersects, not both" in both.output, both.output


@pytest.mark.parametrize("bbox", ["-30,-40,10,0", "60,20,61,21", "-10,-90,10,90", "0,80,180,90"])
def test_intersects_over_pruned_row_groups_equals_brute_force(crowded, bbox):
    """A geometry's bounds rule out row groups as a bbox does (the rows it
    returns are those of the bbox when it is that box)."""
    root, items = crowded
    w, s, e, n = (float(v) for v in bbox.split(","))
    polygon = {"type": "Polygon", "coordinates": [[[w, s], [e, s], [e, n], [w, n], [w, s]]]}
    for window in [None, "2023-03-01/2023-09-30"]:
        found = search(str(root), intersects=polygon, datetime=window, collections="other")
        expected = {i["id"] for i in items if i["collection"] == "other" and _meets_geometry(i, polygon)}
        expected &= {i for c, i in brute_force(items, None, window) if c == "other"}
        assert {f["id"] for f in found["features"]} == expected, (bbox, window)


@pytest.mark.parametrize("fragments", [False, True], ids=["compacted", "with-fragments"])
def test_a_linked_base_mirror_file_that_is_gone_is_named_not_skipped(tmp_path, fragments):
    """Was: a partition whose linked base file was gone (deleted by hand,
    lost in a copy) was read as empty: search answered without its items,
    exit 0. Every writer keeps a linked base (empty when no item is left),
    so an absent one is a damaged mirror."""
    data = tmp_path / "data"
    paths = [rasters.write_tile(data, name, 6.0, 46.0) for name in ("a_20240105.tif", "b_20240210.tif")]
    cat = str(tmp_path / "cat")
    assert all(r.ok for r in producer.register(paths, catalog=cat, collection="c", partition="year/month"))
    if not fragments:
        rebuild(open_store(cat), "c")
    (tmp_path / "cat/c/2024/01/items.parquet").unlink()
    with pytest.raises(InputError, match=r"c/2024/01/items\.parquet.* is missing.*Fix it with ") as info:
        search(cat)
    assert "producer.reconcile(..., fix=True)" in str(info.value)
    out = CliRunner().invoke(main, ["search", cat, "--datetime", "../2023-12-31"])  # 2024 not read
    assert out.exit_code == 0, out.output
    out = CliRunner().invoke(main, ["search", cat])
    assert out.exit_code == 2, out.output
    assert "Fix it with stac-producer reconcile CATALOG --fix" in out.output
    assert CliRunner().invoke(main, ["reconcile", cat, "--fix"]).exit_code == 0
    assert sorted(f["id"] for f in search(cat)["features"]) == ["a_20240105", "b_20240210"]


@pytest.mark.parametrize("damaged", ["fragment", "base"])
def test_reconcile_fix_rebuilds_a_mirror_file_that_does_not_read(tmp_path, damaged):
    """Was: a mirror fragment that did not read (overwritten, a failed copy)
    made search say "delete it and rebuild" with no way to rebuild named,
    `reconcile` call it unchecked and advise making the storage reachable,
    and `reconcile --fix` leave it ("1 problems left"), so search stayed
    broken until the file was deleted by hand. The mirror is derived from
    the items: reconcile --fix now rewrites the partition from them."""
    paths = [
        rasters.write_tile(tmp_path / "data", n, 6.0, 46.0) for n in ("a_20240105.tif", "b_20240110.tif")
    ]
    cat = tmp_path / "cat"
    assert all(r.ok for r in producer.register(paths[:1], catalog=str(cat), collection="c"))
    if damaged == "base":
        rebuild(open_store(str(cat)), "c")
        assert all(r.ok for r in producer.register(paths[1:], catalog=str(cat), collection="c"))
        (cat / "c/items.parquet").write_bytes(b"PAR1 not parquet")
    else:
        (fragment,) = (cat / "c/items-fragments").glob("*.ndjson")
        fragment.write_bytes(b"garbage\n")
    runner = CliRunner()
    out = runner.invoke(main, ["search", str(cat)])
    assert out.exit_code == 1, out.output
    assert "Fix it with stac-producer reconcile CATALOG --fix" in out.output
    checked = runner.invoke(main, ["reconcile", str(cat)])
    assert "mirror-stale" in checked.output and "storage reachable" not in checked.output, checked.output
    fixed = runner.invoke(main, ["reconcile", str(cat), "--fix"])
    assert fixed.exit_code == 0, fixed.output
    expected = ["a_20240105"] if damaged == "fragment" else ["a_20240105", "b_20240110"]
    assert sorted(f["id"] for f in search(str(cat))["features"]) == expected
    assert runner.invoke(main, ["reconcile", str(cat)]).exit_code == 0


def test_intersects_takes_a_feature_collection_from_a_geojson_file(catalog, tmp_path):
    """An area of interest comes as a file, usually a FeatureCollection (what
    geojson.io and QGIS export): ``--intersects aoi.geojson`` was "not
    GeoJSON" and a Feature or FeatureCollection was refused ("give its
    geometry"). A Feature stands for its geometry, a FeatureCollection for
    all of its geometries (an item meeting any one is found)."""
    aoi = {
        "type": "FeatureCollection",
        "features": [
            {"type": "Feature", "properties": {"name": "a"}, "geometry": INTERSECTS[0]},
            {"type": "Feature", "properties": {"name": "b"}, "geometry": INTERSECTS[4]},
        ],
    }
    items = json_items(catalog)
    expected = {
        i["id"] for i in items if _meets_geometry(i, INTERSECTS[0]) or _meets_geometry(i, INTERSECTS[4])
    }
    assert len(expected) >= 2  # one per feature at least: a union, not the first geometry
    path = tmp_path / "aoi.geojson"
    path.write_text(json.dumps(aoi))
    out = CliRunner().invoke(main, ["search", str(catalog), "--intersects", str(path)])
    assert out.exit_code == 0, out.output
    assert {f["id"] for f in json.loads(out.output)["features"]} == expected
    assert {f["id"] for f in search(str(catalog), intersects=aoi)["features"]} == expected
    feature = aoi["features"][0]
    assert {f["id"] for f in search(str(catalog), intersects=feature)["features"]} == {
        i["id"] for i in items if _meets_geometry(i, INTERSECTS[0])
    }
    missing = CliRunner().invoke(
        main, ["search", str(catalog), "--intersects", str(tmp_path / "nope.geojson")]
    )
    assert missing.exit_code == 2 and "nope.geojson" in missing.output
    assert "neither GeoJSON text nor a file" in missing.output, missing.output


def test_intersects_file_with_a_bom_or_another_crs_is_named(catalog, tmp_path):
    """A GeoJSON file saved by Windows tools begins with a UTF-8 byte order
    mark, and older QGIS/ogr2ogr exports name a projected ``crs`` (metres,
    e.g. EPSG:3857). The first was "not GeoJSON" and the second told to split
    a geometry at the antimeridian, both quoting the file's text instead of
    naming the file."""
    aoi = {
        "type": "FeatureCollection",
        "features": [{"type": "Feature", "properties": {}, "geometry": INTERSECTS[0]}],
    }
    bom = tmp_path / "aoi_windows.geojson"
    bom.write_bytes(b"\xef\xbb\xbf" + json.dumps(aoi).encode())
    out = CliRunner().invoke(main, ["search", str(catalog), "--intersects", str(bom)])
    assert out.exit_code == 0, out.output
    expected = {i["id"] for i in json_items(catalog) if _meets_geometry(i, INTERSECTS[0])}
    assert {f["id"] for f in json.loads(out.output)["features"]} == expected
    projected = {
        "type": "FeatureCollection",
        "crs": {"type": "name", "properties": {"name": "urn:ogc:def:crs:EPSG::3857"}},
        "features": [
            {
                "type": "Feature",
                "properties": {},
                "geometry": {"type": "Point", "coordinates": [779236.4, 5897000.0]},
            }
        ],
    }
    path = tmp_path / "aoi_3857.geojson"
    path.write_text(json.dumps(projected))
    bad = CliRunner().invoke(main, ["search", str(catalog), "--intersects", str(path)])
    assert bad.exit_code == 2, bad.output
    assert "aoi_3857.geojson" in bad.output and "EPSG::3857" in bad.output
    assert "antimeridian" not in bad.output and "FeatureCollection" not in bad.output
    # a crs naming lon/lat (what QGIS writes for WGS 84) is no problem
    projected["crs"]["properties"]["name"] = "urn:ogc:def:crs:OGC:1.3:CRS84"
    projected["features"][0]["geometry"] = INTERSECTS[0]
    path.write_text(json.dumps(projected))
    good = CliRunner().invoke(main, ["search", str(catalog), "--intersects", str(path)])
    assert good.exit_code == 0, good.output
    assert {f["id"] for f in json.loads(good.output)["features"]} == expected


def _box(west: float, south: float, east: float, north: float) -> list[list[list[float]]]:
    return [[[west, south], [east, south], [east, north], [west, north], [west, south]]]


def test_a_multipolygon_whose_parts_overlap_finds_what_its_parts_find(catalog):
    """Areas of interest merged by hand or buffered apart often overlap. Was:
    refused as "not a valid geometry (Self-intersection)", with the advice to
    give the parts as a Multi geometry, which they were; an item meets the
    geometry when it meets any of its parts, as for a FeatureCollection."""
    parts = [_box(5.9, 46.9, 6.1, 47.1), _box(6.05, 46.8, 7.05, 46.95)]
    multi = {"type": "MultiPolygon", "coordinates": parts}
    each: set[str] = set()
    for part in parts:
        each |= {
            f["id"]
            for f in search(str(catalog), intersects={"type": "Polygon", "coordinates": part})["features"]
        }
    assert each == {"alps_20240105", "swiss_20240212"}
    assert {f["id"] for f in search(str(catalog), intersects=multi)["features"]} == each
    inside = {
        "type": "FeatureCollection",
        "features": [{"type": "Feature", "properties": {}, "geometry": multi}],
    }
    assert {f["id"] for f in search(str(catalog), intersects=inside)["features"]} == each
    # a part that is itself invalid is still refused, naming the cause
    bowtie = [[[5, 46], [7, 47], [7, 46], [5, 47], [5, 46]]]
    with pytest.raises(InputError, match="not a valid geometry"):
        search(str(catalog), intersects={"type": "MultiPolygon", "coordinates": [bowtie, parts[0]]})


def test_an_invalid_part_of_a_multipolygon_is_named_without_advising_a_multi_geometry(catalog):
    """A MultiPolygon with a self-crossing polygon was refused with "give its
    parts as a Multi geometry", which it is: the error names the part to
    repair; a lone self-crossing polygon keeps that advice (split it)."""
    bowtie = [[[5, 46], [7, 47], [7, 46], [5, 47], [5, 46]]]
    multi = {"type": "MultiPolygon", "coordinates": [_box(5.9, 46.9, 6.1, 47.1), bowtie]}
    with pytest.raises(InputError, match="not a valid geometry") as refused:
        search(str(catalog), intersects=multi)
    assert "part 2 of 2" in str(refused.value) and "Multi geometry" not in str(refused.value)
    with pytest.raises(InputError, match="give its parts as a Multi geometry"):
        search(str(catalog), intersects={"type": "Polygon", "coordinates": bowtie})


def test_reconcile_fix_rebuilds_a_fragment_whose_lines_are_json_but_not_items(tmp_path):
    """A fragment overwritten with JSON lines that are not STAC items (its
    header kept, the item lines replaced) made `reconcile` and `reconcile
    --fix` end in a raw KeyError traceback from stac-geoparquet, so the
    mirror could only be repaired by deleting the file by hand. It is an
    unreadable fragment like one that is not NDJSON: rebuilt from the items."""
    path = rasters.write_tile(tmp_path / "data", "a_20240105.tif", 6.0, 46.0)
    cat = tmp_path / "cat"
    assert all(r.ok for r in producer.register([path], catalog=str(cat), collection="c"))
    (fragment,) = (cat / "c/items-fragments").glob("*.ndjson")
    header = fragment.read_bytes().split(b"\n")[0]
    fragment.write_bytes(header + b'\n{"type": "Feature", "id": "a_20240105"}\n')
    runner = CliRunner()
    checked = runner.invoke(main, ["reconcile", str(cat)])
    assert checked.exception is None or isinstance(checked.exception, SystemExit), checked.output
    assert "mirror-stale" in checked.output, checked.output
    fixed = runner.invoke(main, ["reconcile", str(cat), "--fix"])
    assert fixed.exit_code == 0, fixed.output
    assert [f["id"] for f in search(str(cat))["features"]] == ["a_20240105"]
    assert search(str(cat))["features"][0]["geometry"]["type"] == "Polygon"
    assert runner.invoke(main, ["reconcile", str(cat)]).exit_code == 0


@pytest.mark.parametrize(
    "value", ["20240101", "2024-W01", "2024-W01-1", "20240101/2024-01-31", "2024-01-01/2024W05"]
)
def test_a_day_in_another_iso_form_is_told_the_forms_taken_not_a_time_zone(catalog, value):
    """``20240101`` or ``2024-W01`` parse as ISO 8601 days without a time: the
    message said "no time zone", and adding Z to them does not help either."""
    with pytest.raises(InputError) as refused:
        search(str(catalog), datetime=value)
    message = str(refused.value)
    assert "time zone" not in message
    assert "2024-01-01" in message and "2024-01-01T00:00:00Z" in message and "START/END" in message
    out = CliRunner().invoke(main, ["search", str(catalog), "--datetime", value])
    assert out.exit_code == 2, out.output
    assert "--datetime" in out.output and "time zone" not in out.output

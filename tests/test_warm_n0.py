"""A warm upsert at N = 0 (issue 12, point 5, second pass): less work per upsert.

* The settle read of an item this register wrote is not parsed.
* Links between keys are computed without ``os.getcwd()``.
* The collection document is parsed once per batch.

Third pass:

* The compiled schema checks build no error message for a valid document.

Fifth pass:

* An item's geometry is checked for NaN without formatting its floats.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest


def test_settling_an_item_as_written_parses_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """After the link, each item is read back to see that no concurrent
    remove marked or deleted it; bytes with the very version the register
    wrote are unmarked by construction, so they are no longer parsed (a
    densified footprint makes an item the largest document of a register)."""
    import producer
    from producer.catalog import documents
    from tests import rasters

    real_loads = documents.loads
    parsed: list[str] = []

    def counting_loads(data: bytes, key: str, **kw: object) -> dict:
        parsed.append(key)
        return real_loads(data, key, **kw)  # type: ignore[arg-type]

    catalog = str(tmp_path / "cat")
    producer.register([rasters.write_wgs84(tmp_path / "first")], catalog=catalog, collection="c")
    monkeypatch.setattr(documents, "loads", counting_loads)
    (result,) = producer.register([rasters.write_utm(tmp_path / "data")], catalog=catalog, collection="c")
    assert result.ok, result.error
    assert result.href is not None
    assert [key for key in parsed if key.endswith(result.href.rsplit("/", 1)[1])] == []
    assert any(key.endswith("collection.json") for key in parsed)  # the parents still are


def test_relative_href_of_keys_is_posix_relpath_without_the_working_directory() -> None:
    """Links are made from keys by splitting them (posixpath.relpath asked
    os.getcwd() twice per link); odd keys still go through relpath."""
    import itertools
    import posixpath

    from producer.catalog.layout import relative_href

    def expected(from_key: str, to_key: str) -> str:
        rel = posixpath.relpath(to_key, posixpath.dirname(from_key) or ".")
        return rel if rel.startswith("../") else f"./{rel}"

    parts = ["a", "b", "ab", "collection.json"]
    keys = ["/".join(p) for n in range(1, 4) for p in itertools.product(parts, repeat=n)]
    keys += ["a/./b.json", "../x.json", "a//b.json", "/abs/x.json"]
    for from_key, to_key in itertools.product(keys, repeat=2):
        assert relative_href(from_key, to_key) == expected(from_key, to_key), (from_key, to_key)


def test_register_into_a_collection_parses_its_document_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The collection is read once to choose the layout and handed to the
    batch's preflight; it was parsed there a second time (a flat collection
    of 10,000 items holds 10,000 links)."""
    import producer
    from producer.catalog import documents
    from tests import rasters

    catalog = str(tmp_path / "cat")
    producer.register([rasters.write_wgs84(tmp_path / "first")], catalog=catalog, collection="c")
    real_loads = documents.loads
    parsed: list[str] = []

    def counting_loads(data: bytes, key: str, **kw: object) -> dict:
        parsed.append(key)
        return real_loads(data, key, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(documents, "loads", counting_loads)
    (result,) = producer.register([rasters.write_utm(tmp_path / "data")], catalog=catalog, collection="c")
    assert result.ok, result.error
    assert [key for key in parsed if key.endswith("/c/collection.json")] == [f"{catalog}/c/collection.json"]


def test_checking_valid_documents_builds_no_schema_error_message(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A valid item raised ~45 fastjsonschema errors inside the compiled
    ``oneOf``/``anyOf`` checks (its geometry tried as a Point, a LineString,
    ...), each with a formatted message and a copy of the failed schema:
    about half the item's check. Only the verdict is used, so the compiled
    code raises a bare exception instead; the verdicts stay jsonschema's
    (tests/test_validate.py) and so do the messages of an invalid document."""
    import json

    import fastjsonschema

    import producer
    from producer.validate import default_validator
    from tests import rasters

    catalog = tmp_path / "cat"
    (result,) = producer.register(
        [rasters.write_utm(tmp_path / "data")], catalog=str(catalog), collection="c"
    )
    assert result.ok, result.error
    assert result.href is not None
    item = json.loads(Path(result.href).read_bytes())
    collection = json.loads((catalog / "c" / "collection.json").read_bytes())
    messages: list[str] = []
    real_init = fastjsonschema.JsonSchemaValueException.__init__

    def counting_init(self: Exception, message: str, *args: object, **kw: object) -> None:
        messages.append(message)
        real_init(self, message, *args, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(fastjsonschema.JsonSchemaValueException, "__init__", counting_init)
    validator = default_validator()
    assert validator.errors(item) == []
    assert validator.errors(collection) == []
    assert messages == []
    item["geometry"]["type"] = "Point"  # rejected: jsonschema still says why
    assert any(problem.startswith("geometry") for problem in validator.errors(item))


def test_a_create_only_write_into_a_new_folder_looks_at_each_name_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The symlink walk of the key (one ``lstat`` per component, up to the
    first missing one) also says which folders the write must create; they
    were looked at again (``stat`` per folder), and the target twice more
    (``exists`` and ``is_symlink``) under the lock."""
    import os

    from producer.store.local import LocalStore

    store = LocalStore(str(tmp_path / "cat"), durability="os")
    store.plain_for = 0.0  # each folder looked at on each walk (not taken as plain from the puts above)
    store.put("c/collection.json", b"{}")
    store.put("c/collection.json", b"{}")  # the root's real path is known from here on
    looked: list[str] = []
    for name in ("stat", "lstat"):
        real = getattr(os, name)

        def counting(path: object, *args: object, _real: object = real, **kw: object) -> object:
            looked.append(os.fspath(path))  # type: ignore[arg-type]
            return _real(path, *args, **kw)  # type: ignore[operator]

        monkeypatch.setattr(os, name, counting)
    store.put("c/i/i.json", b'{"a": 1}', create_only=True)
    monkeypatch.undo()
    assert (tmp_path / "cat" / "c" / "i" / "i.json").read_bytes() == b'{"a": 1}'
    root = str(tmp_path / "cat")
    # the target itself is looked at by no stat at all: the link that names
    # a create-only write fails with EEXIST on an existing name (was: an
    # ``lexists`` under the lock)
    assert sorted(looked) == sorted({f"{root}/c", f"{root}/c/i"}), looked


RING_CASES = [
    [],
    [[0.0, 1.0]] * 4,
    [[0.0, 1.0]] * 3,
    [[0.0]] + [[0.0, 1.0]] * 4,
    [[0.0, True]] * 4,
    [(0.0, 1.0)] * 4,
    [[0, 1, 2]] * 5,
    [[]] * 4,
    [[0.0, "1"]] * 4,
    [[0.0, 1.0]] * 4 + [None],
    [[0.0, 1.0], [[0.0, 1.0]]] * 2,
    [[0.0, None]] * 4,
    [[1e300, -0.0]] * 4,
    ((0.0, 1.0),) * 4,
]


@pytest.mark.parametrize("ring", RING_CASES)
def test_ring_checks_in_c_speed_passes_agree_with_a_check_per_position(ring: object) -> None:
    """The geometry checks of the validator's stand-in (``_ring``) and of the
    pretty encoder (``_number_rows``) walk the positions with ``map`` over
    types instead of a Python step per position; same verdicts."""
    from producer.catalog.documents import _number_rows
    from producer.validate import _ring

    def is_numbers(values: object, least: int) -> bool:
        return (
            type(values) is list
            and len(values) >= least
            and all(type(v) is int or type(v) is float for v in values)
        )

    expected_ring = type(ring) is list and len(ring) >= 4 and all(is_numbers(p, 2) for p in ring)
    assert _ring(ring) == expected_ring
    expected_rows = all(
        type(row) in (list, tuple) and len(row) > 0 and all(type(v) in (int, float) for v in row)
        for row in ring  # type: ignore[attr-defined]
    )
    assert bool(_number_rows(ring)) == expected_rows  # type: ignore[arg-type]


# Fifth pass (nz34)


def _item_with(geometry: object) -> dict:
    return {
        "type": "Feature",
        "id": "i",
        "bbox": [0.0, 0.0, 1.0, 1.0],
        "geometry": geometry,
        "properties": {},
    }


def _polygon(*values: object) -> dict:
    ring: list = [[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 0.0]]
    for i, value in enumerate(values):
        ring.insert(1 + i, [0.5, value])
    return {"type": "Polygon", "coordinates": [ring]}


class _Float(float):
    pass


FINITE_CASES = [
    _polygon(),
    _polygon(math.nan),
    _polygon(math.inf, -math.inf),
    _polygon(_Float(math.nan)),
    _polygon(_Float(0.5)),
    _polygon(10**400),
    _polygon(1e308, 1e308),  # the sum overflows, every value is finite
    _polygon(True, None),
    _polygon("x"),
    {"type": "MultiPolygon", "coordinates": [[[[0.0, 0.0], [math.nan, 1.0]]], []]},
    {"type": "Point", "coordinates": (0.0, math.inf)},
    {"type": "GeometryCollection", "geometries": [_polygon(), _polygon(math.nan)]},
    {"type": "Polygon", "coordinates": [[[0.0, 0.0]]], "bbox": {1.5: 2.0}},
    {"type": "Polygon", "coordinates": [[[0.0, 0.0]]], "extra": object()},
    None,
    [],
]


@pytest.mark.parametrize("geometry", FINITE_CASES)
def test_an_items_geometry_is_checked_for_nan_without_writing_its_floats(geometry: object) -> None:
    """``non_finite`` encoded a whole item with the C encoder to learn that
    no float is NaN or infinite; formatting the hundreds of floats of a
    densified footprint was most of that (and the item is encoded again
    when written). An item's geometry is now looked at value by value;
    the answers are the encoder's and the walk's, as before."""
    from producer import finite

    doc = _item_with(geometry)
    assert finite.non_finite(doc) == _reference_non_finite(doc)


def test_a_plain_polygon_is_not_formatted_to_find_no_nan() -> None:
    """The densified footprint of a valid item goes to no encoder."""
    from producer import finite

    ring = [[float(i), float(i) / 3] for i in range(500)] + [[0.0, 0.0]]
    doc = _item_with({"type": "Polygon", "coordinates": [ring]})
    encoded: list[object] = []
    real = finite._STRICT

    def recording(value: object) -> str:
        encoded.append(value)
        return real(value)

    finite._STRICT = recording
    try:
        assert finite.non_finite(doc) == []
    finally:
        finite._STRICT = real
    assert encoded and all(value["geometry"] is None for value in encoded)  # type: ignore[index]


def _reference_non_finite(doc: object) -> list[str]:
    """``non_finite`` as it was: the encoder over the whole document, then the walk."""
    from producer import finite

    try:
        finite._STRICT(doc)
    except (ValueError, TypeError, RecursionError):
        pass
    else:
        return []
    problems: list[str] = []
    finite._walk(doc, "", problems, 0)
    return problems


LINE_CASES = [
    _polygon(),
    _polygon(0.25, 1, -0.0),
    _polygon(True),
    _polygon(_Float(0.5)),
    _polygon(10**30),
    {
        "type": "MultiPolygon",
        "coordinates": [[[[0.0, 0.0], [1.0, 0.5], [0.0, 0.0]]], [[[2.0, 2.0]], [[3.0, 3.0]]]],
    },
    {"type": "MultiPolygon", "coordinates": []},
    {"type": "Polygon", "coordinates": []},
    {"type": "Polygon", "coordinates": [[]]},
    {"type": "Polygon", "coordinates": [[[]]]},
    {"type": "Polygon", "coordinates": [[(0.0, 1.0)]]},
    {"type": "Polygon", "coordinates": ([[0.0, 1.0]],)},
    {
        "type": "Polygon",
        "coordinates": [[[0.0, 1.0]]],
        "bbox": [0.0, 1.0],
        "note": "\x00stac-producer coordinates\x00",
    },
    {"type": "Polygon", "coordinates": [[["é", None], [{"a": [1.5]}], [0.5, 1.0]]]},
    {"type": "Polygon", "coordinates": [[[0.5, 1.0], [1e300, -1e-300]], [[2.5, 0.5]]]},
    {"type": "Point", "coordinates": [0.5, 0.5]},
    {"type": "Polygon"},
    None,
]


@pytest.mark.parametrize("geometry", LINE_CASES)
def test_the_mirror_line_of_an_item_is_its_compact_json(geometry: object) -> None:
    """``item_line`` splices a polygon's ring text into the rest of the
    item; the line is still ``json.dumps`` of the item, byte for byte."""
    import json

    from producer.changes import item_line

    item = _item_with(geometry)
    item["properties"] = {"title": "Zürich \u2603", "n": 1}
    assert item_line(item) == json.dumps(item, separators=(",", ":"), allow_nan=False)


def test_an_items_ring_is_formatted_once_for_its_document_and_its_mirror_line(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The footprint's floats were formatted for the item document and
    again for the mirror's line a moment later: most of each encoding."""
    import json

    from producer import ringtext
    from producer.catalog import documents
    from producer.changes import item_line

    ring = [[float(i) / 7, float(i) / 3] for i in range(300)] + [[0.0, 0.0]]
    item = _item_with({"type": "Polygon", "coordinates": [ring]})
    # a float orjson writes otherwise (0.00001) sends both encodings down the
    # json road this test is about (tests/test_jsontext.py: the orjson road)
    item["properties"] = {"tiny": 1e-05}
    formatted: list[object] = []
    real = ringtext._COMPACT

    def counting(value: object) -> str:
        formatted.append(value)
        return real(value)

    monkeypatch.setattr(ringtext, "_COMPACT", counting)
    text = documents.dumps(item)
    line = item_line(item)
    assert formatted == [ring]
    assert json.loads(text) == item
    assert line == json.dumps(item, separators=(",", ":"), allow_nan=False)
    ring[5][0] = -0.0  # a changed ring is formatted again
    assert item_line(item) == json.dumps(item, separators=(",", ":"), allow_nan=False)
    assert len(formatted) == 2
    ring[5][0] = math.nan
    with pytest.raises(ValueError):
        item_line(item)


def test_a_put_writes_its_bytes_to_the_descriptor_short_writes_and_all(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A put's temp file went through ``os.fdopen`` (a buffered file object:
    an fstat, an ioctl and an lseek more per write, four writes per
    upsert); the bytes now go to the descriptor, a short write going on
    where it stopped, and a write that takes nothing failing the put with
    no temp file left."""
    import os

    from producer.errors import StoreError
    from producer.store.local import LocalStore

    def no_fdopen(*args: object, **kw: object) -> object:
        raise AssertionError("os.fdopen called")

    real_write = os.write
    monkeypatch.setattr(os, "fdopen", no_fdopen)
    monkeypatch.setattr(os, "write", lambda fd, data: real_write(fd, bytes(data[:3])))  # short writes
    store = LocalStore(str(tmp_path / "cat"), durability="fsync")
    data = bytes(range(256)) * 40
    store.put("c/collection.json", data)
    store.put("c/i/i.json", data, create_only=True)
    assert (tmp_path / "cat" / "c" / "collection.json").read_bytes() == data
    assert (tmp_path / "cat" / "c" / "i" / "i.json").read_bytes() == data
    monkeypatch.setattr(os, "write", lambda fd, data: 0)
    with pytest.raises(StoreError, match="c/j.json"):
        store.put("c/j.json", data)
    monkeypatch.undo()
    assert sorted(p.name for p in (tmp_path / "cat" / "c").iterdir()) == ["collection.json", "i"]


def test_the_same_plain_options_are_checked_once_per_process(monkeypatch: pytest.MonkeyPatch) -> None:
    """``register([one], durability="os")`` checked every field of a new
    RegisterOptions on each call (~30 us, more in a register's cold
    caches); options made from the same plain values are now kept (the
    class is frozen). Anything else is made and checked per call: a bool
    where a number is asked is still refused every time, a dict may
    change after the call, and a secret is not kept."""
    from producer import options as opts

    checked: list[int] = []
    real = opts.RegisterOptions.__post_init__

    def counting(self: opts.RegisterOptions) -> None:
        checked.append(1)
        real(self)

    monkeypatch.setattr(opts, "_RESOLVED", {}, raising=False)
    monkeypatch.setattr(opts.RegisterOptions, "__post_init__", counting)
    first = opts.resolve_options(None, None, durability="os", batch_size=7)
    again = opts.resolve_options(None, None, batch_size=7, durability="os")
    assert again is first and len(checked) == 1
    assert opts.resolve_options(None, None, durability="os").batch_size != 7
    for _ in range(2):
        with pytest.raises(TypeError, match="workers must be an int"):
            opts.resolve_options(None, None, workers=True)
    assert opts.resolve_options(None, None, workers=1).workers == 1
    checked.clear()
    meta = {"title": "T"}
    one = opts.resolve_options(None, None, collection_meta=meta)
    meta["title"] = "U"
    two = opts.resolve_options(None, None, collection_meta=meta)
    assert (one.collection_meta, two.collection_meta) == ({"title": "T"}, {"title": "U"})
    assert len(checked) == 2
    secrets = [f.name for f in dataclasses_fields(opts) if opts.option_spec(f).kind == "secret"]
    for name in secrets:
        checked.clear()
        opts.resolve_options(None, None, **{name: "s3cr3t"})
        opts.resolve_options(None, None, **{name: "s3cr3t"})
        assert len(checked) == 2, name
    assert all("s3cr3t" not in repr(key) for key in opts._RESOLVED)


def dataclasses_fields(opts: object) -> tuple:
    import dataclasses

    return dataclasses.fields(opts.RegisterOptions)  # type: ignore[attr-defined]


def test_listing_below_a_missing_folder_walks_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every upsert lists its collection's intents folder, which a lone
    writer never creates: the list asked ``is_file`` of it and started an
    ``os.walk`` that failed on it. The ``lstat`` walk of the prefix's
    components already says a folder is missing: nothing more is asked."""
    import os

    from producer.store.local import LocalStore

    store = LocalStore(str(tmp_path / "cat"), durability="os")
    store.put("c/collection.json", b"{}")
    store.put("c/i/i.json", b"{}")
    store.put("c/collection.json", b"{}")  # the root's real path is known from here on
    asked: list[str] = []
    for name in ("stat", "walk", "scandir"):
        real = getattr(os, name)

        def counting(*args: object, _real: object = real, _name: str = name, **kw: object) -> object:
            asked.append(_name)
            return _real(*args, **kw)  # type: ignore[operator]

        monkeypatch.setattr(os, name, counting)
    assert list(store.list("c/_intents/")) == []
    assert list(store.list("d/e/")) == []
    assert asked == []
    assert sorted(store.list("c/")) == ["c/collection.json", "c/i/i.json"]
    assert list(store.list("c/i/i.json")) == ["c/i/i.json"]


@pytest.mark.parametrize(
    "key",
    [
        "c/items.parquet",
        "c/2024/03/items.parquet",
        "c/./items.parquet",
        "c//items.parquet",
        "c/a/../items.parquet",
    ],
)
def test_mirror_assets_link_their_files_without_the_working_directory(
    key: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The collection's mirror asset hrefs came from ``posixpath.relpath``,
    which asks ``os.getcwd()`` twice (each commit makes them twice); the
    same hrefs now come from the keys' parts."""
    import os
    import posixpath

    from producer.catalog.mirrorlinks import mirror_assets

    expected = "./" + posixpath.relpath(key, "c")

    asked: list[str] = []
    real = os.getcwd

    def counting() -> str:
        asked.append("getcwd")
        return real()

    monkeypatch.setattr(os, "getcwd", counting)
    (asset,) = mirror_assets("c", [key]).values()
    monkeypatch.undo()
    assert asset["href"] == expected
    if all(part not in ("", ".", "..") for part in key.split("/")):
        assert asked == []


def test_a_products_id_is_made_once_per_register(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A register made each product's id before its extraction (so a
    failed one is named) and the extraction made it again (~20 us each);
    an id depends on the location, the template and the collection only,
    so the second is the first. A refused id is refused every time."""
    import sys

    import producer
    from producer.errors import UnsafeIdError
    from producer.extract import ids
    from producer.extract.options import ExtractOptions
    from tests import rasters

    made: list[str] = []
    real = ids.split_location

    def counting(location: str) -> tuple[str, str]:
        if "make_item_id" in sys._getframe(1).f_code.co_name:  # not the other readers of a name
            made.append(location)
        return real(location)

    source = rasters.write_utm(tmp_path / "data")
    monkeypatch.setattr(ids, "split_location", counting)  # the names an id is made of
    (result,) = producer.register([source], catalog=str(tmp_path / "cat"), collection="c")
    assert result.ok, result.error
    assert made == [str(source)]
    options = ExtractOptions(collection="c", id_template="x{stem}")
    assert ids.make_item_id(source, options) == ids.make_item_id(source, options) == "x" + result.item["id"]
    assert ids.make_item_id(
        source, ExtractOptions(collection="d", id_template="{collection}-{stem}")
    ).startswith("d-")
    for _ in range(2):
        with pytest.raises(UnsafeIdError):
            ids.make_item_id(source, ExtractOptions(collection="c", id_template="a b {stem}"))


def test_a_committer_seeds_no_generator_of_its_own_and_forks_back_off_apart(tmp_path: Path) -> None:
    """Each Committer seeded a random.Random from os.urandom (~11 us of
    every register) for its backoff jitter; committers now share one per
    process, seeded again in a forked child (two children forked from one
    process draw different jitter)."""
    import os
    import random

    from producer.commit import Committer
    from producer.store.local import LocalStore

    seeded: list[int] = []
    real = random.Random.seed

    def counting(self: random.Random, *args: object, **kw: object) -> None:
        seeded.append(1)
        real(self, *args, **kw)  # type: ignore[arg-type]

    random.Random.seed = counting  # type: ignore[method-assign]
    try:
        store = LocalStore(str(tmp_path / "cat"), durability="os")
        Committer(store, lambda doc, where: None)
        Committer(store, lambda doc, where: None)
    finally:
        random.Random.seed = real  # type: ignore[method-assign]
    assert seeded == []
    rng = Committer(store, lambda doc, where: None).rng
    draws = []
    for _ in range(2):
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: one draw, then out without running any cleanup
            os.close(read)
            os.write(write, repr(rng.random()).encode())
            os._exit(0)
        os.close(write)
        os.waitpid(pid, 0)
        with os.fdopen(read, "rb") as f:
            draws.append(f.read())
    assert draws[0] != draws[1]


def test_a_put_names_its_temp_file_without_making_paths(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each put made a Path for its temp file beside the document (pathlib's
    parsing is a few us per Path, four puts per upsert); the name is text
    now, in the same folder, and nothing of it is left after the write."""
    from producer.store.local import LocalStore

    store = LocalStore(str(tmp_path / "cat"), durability="os")
    store.put("c/collection.json", b"{}")
    joined: list[object] = []
    real = Path.__truediv__

    def counting(self: Path, other: object) -> Path:
        joined.append(other)
        return real(self, other)  # type: ignore[arg-type]

    monkeypatch.setattr(Path, "__truediv__", counting)
    store.put("c/collection.json", b'{"a": 1}')
    store.put("c/i/i.json", b"{}", create_only=True)
    monkeypatch.undo()
    assert joined == []
    assert sorted(p.name for p in (tmp_path / "cat" / "c").iterdir()) == ["collection.json", "i"]
    assert [p.name for p in (tmp_path / "cat" / "c" / "i").iterdir()] == ["i.json"]


def test_a_store_pickled_without_its_lock_path_still_locks(tmp_path: Path) -> None:
    """The lock file's path is joined once per store now; a store pickled
    by a version that joined it per write (a worker of a pool started
    before an upgrade) finds it again when unpickled."""
    import pickle

    from producer.store.local import LOCK_NAME, LocalStore

    store = LocalStore(str(tmp_path / "cat"), durability="os")
    state = store.__getstate__()
    state.pop("_lock_file")
    old = LocalStore.__new__(LocalStore)
    old.__setstate__(state)
    old.put("c/collection.json", b"{}")
    assert (tmp_path / "cat" / LOCK_NAME).exists()
    again = pickle.loads(pickle.dumps(store))
    again.put("c/collection.json", b"{}")


@pytest.mark.parametrize("size", [0, 1, 4096, 65535, 65536, 65537, 300_000])
def test_a_read_returns_every_byte_of_the_document(tmp_path: Path, size: int) -> None:
    """``LocalStore.get`` reads with one ``os.read`` of the size ``fstat``
    says, plus one byte: the whole file whatever its size."""
    from producer.store.local import LocalStore

    data = bytes(i % 251 for i in range(size))
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "doc.json").write_bytes(data)
    assert LocalStore(str(tmp_path)).get("c/doc.json")[0] == data


def test_a_read_of_a_file_whose_size_says_nothing_reads_to_its_end() -> None:
    """A file whose ``st_size`` is not its length (procfs says 0) is read
    on to its end, not cut at the size ``fstat`` gave."""
    from producer.store.local import _read_all

    status = Path("/proc/self/status")
    if not status.exists() or status.stat().st_size != 0:
        pytest.skip("needs a procfs file of size 0")
    data = _read_all(status)
    assert data.startswith(b"Name:") and data.endswith(b"\n") and len(data) > 100


def test_reading_a_directory_as_a_document_says_so(tmp_path: Path) -> None:
    from producer.errors import CatalogError
    from producer.store.local import LocalStore

    (tmp_path / "c" / "doc.json").mkdir(parents=True)
    with pytest.raises(CatalogError, match="is a directory, not a document"):
        LocalStore(str(tmp_path)).get("c/doc.json")

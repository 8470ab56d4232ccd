"""Local batches made cheaper (issue 12, points 4 and 5) without changing
what is written or read.

* ``documents.dumps`` indents through the C encoder: its bytes stay those of
  ``json.dumps(doc, indent=2, ensure_ascii=False)`` for every document a
  register writes and for unusual values.
* GDAL no longer lists a product's folder on open, yet side-car files (a
  world file) still georeference a product, and a caller's own GDAL setting
  for folder listing wins.
* A batch worker reads its chunk of local products in one GDAL environment
  (not one per product), with the options each would have had alone.
"""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import pytest
import rasterio
from rasterio.transform import from_origin

import producer
from producer.catalog.documents import dumps
from producer.errors import NoGeoreferenceError
from producer.extract import create_item
from tests import rasters
from tests.trees import assert_stac_valid_tree

WORLD_ORIGIN = (500000.0, 4000000.0)
WORLD_RES = 20.0


def _indent2(doc: object) -> bytes:
    return (json.dumps(doc, indent=2, ensure_ascii=False) + "\n").encode("utf-8")


def test_dumps_bytes_equal_json_dumps_indent_for_every_document_a_register_writes(tmp_path: Path) -> None:
    data = tmp_path / "data"
    sources = [rasters.write_utm(data), rasters.write_dateline(data), rasters.write_polar(data)]
    catalog = tmp_path / "catalog"
    results = producer.register([str(s) for s in sources], catalog=str(catalog), collection="c")
    assert all(r.ok for r in results), [r.error for r in results]
    files = sorted(catalog.rglob("*.json"))
    assert len(files) >= 5  # root, collection, three items
    for path in files:
        raw = path.read_bytes()
        doc = json.loads(raw)
        assert dumps(doc) == _indent2(doc) == raw, path
    assert_stac_valid_tree(catalog)


@pytest.mark.parametrize(
    "doc",
    [
        {},
        {"a": [], "b": {}, "c": [[], {}, [[]]]},
        {"text": 'é "quoted"\nline\t\u2028', "big": [1e308, -0.0, 5e-324]},  # NaN: test_json_finite.py
        {"rows": [[1, 2.5], [3, 4e-17]], "ragged": [[1], [2, 3, 4]], "empty_row": [[1], []]},
        {"mixed_rows": [[1, True], [None, 2]], "strings": [["a", "b"]], "tuple": (1, (2, 3))},
        {"deep": {"x": [{"y": [[[0.1, 0.2], [0.3, 0.4]]]}]}, "bool": False, "none": None},
        {
            "links": [
                {"rel": "item", "href": f"./i{i}/i{i}.json", "type": "application/json"} for i in range(70)
            ]
        },
    ],
)
def test_dumps_bytes_equal_json_dumps_indent_for_unusual_values(doc: dict) -> None:
    assert dumps(doc) == _indent2(doc)


def test_dumps_of_a_dict_subclass_or_an_int_key_falls_back_to_json_dumps() -> None:
    class Ordered(dict):
        pass

    doc = {"a": Ordered(b=1), "c": {1: "one"}}
    assert dumps(doc) == _indent2(doc)


def _world_file_product(folder: Path) -> Path:
    """``world_20240513.tif``: a CRS in the file, its geotransform only in a
    ``.tfw`` side-car."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "world_20240513.tif"
    data = rasters._ramp()
    with rasterio.open(
        path,
        "w",
        driver="GTiff",
        width=data.shape[2],
        height=data.shape[1],
        count=1,
        dtype="uint8",
        crs="EPSG:32633",
    ) as dst:
        dst.write(data)
    half = WORLD_RES / 2  # a world file names the centre of the first pixel
    x, y = WORLD_ORIGIN
    path.with_suffix(".tfw").write_text(f"{WORLD_RES}\n0\n0\n{-WORLD_RES}\n{x + half}\n{y - half}\n")
    for i in range(50):  # a folder worth listing
        (folder / f"other_{i}.txt").write_text("x")
    return path


@pytest.mark.filterwarnings("ignore::rasterio.errors.NotGeoreferencedWarning")
def test_world_file_side_car_still_georeferences_a_product_without_folder_listing(tmp_path: Path) -> None:
    product = _world_file_product(tmp_path / "data")
    doc = create_item(str(product)).to_dict(include_self_link=False)
    expected = from_origin(*WORLD_ORIGIN, WORLD_RES, WORLD_RES)
    assert doc["properties"]["proj:transform"][:6] == list(expected)[:6]
    catalog = tmp_path / "catalog"
    (result,) = producer.register([str(product)], catalog=str(catalog), collection="c")
    assert result.ok, result.error
    assert_stac_valid_tree(catalog)


@pytest.mark.filterwarnings("ignore::rasterio.errors.NotGeoreferencedWarning")
def test_callers_gdal_folder_listing_setting_is_kept(tmp_path: Path) -> None:
    product = _world_file_product(tmp_path / "data")
    # EMPTY_DIR: the caller tells GDAL to ignore side-cars; the world file is not read
    with rasterio.Env(GDAL_DISABLE_READDIR_ON_OPEN="EMPTY_DIR"), pytest.raises(NoGeoreferenceError):
        create_item(str(product))


def _registered_item(tmp_path: Path) -> dict:
    catalog = tmp_path / "catalog"
    (result,) = producer.register(
        [str(rasters.write_utm(tmp_path / "data"))], catalog=str(catalog), collection="c"
    )
    assert result.ok, result.error
    (path,) = [p for p in catalog.rglob("*.json") if json.loads(p.read_bytes())["type"] == "Feature"]
    return json.loads(path.read_bytes())


BROKEN_GEOMETRIES = {
    "short_position": lambda ring: [*ring[:2], [1.0], *ring[3:]],
    "three_position_ring": lambda ring: ring[:3],
    "string_number": lambda ring: [["8.1", 50.5], *ring[1:]],
    "bool_number": lambda ring: [[True, 50.5], *ring[1:]],
    "ring_not_a_list": lambda ring: "ring",
}


@pytest.mark.parametrize("case", sorted(BROKEN_GEOMETRIES))
def test_item_with_a_broken_footprint_is_still_refused_by_the_compiled_check(
    tmp_path: Path, case: str
) -> None:
    from producer.validate import default_validator

    validator = default_validator()
    item = _registered_item(tmp_path)
    assert validator.errors(item) == []
    ring = item["geometry"]["coordinates"][0]
    broken = {**item, "geometry": {"type": "Polygon", "coordinates": [BROKEN_GEOMETRIES[case](ring)]}}
    problems = validator.errors(broken)
    assert problems and all(p.startswith("geometry") for p in problems), problems
    multi = {
        **item,
        "geometry": {"type": "MultiPolygon", "coordinates": [[ring], [BROKEN_GEOMETRIES[case](ring)]]},
    }
    assert validator.errors(multi)
    fine = {
        **item,
        "geometry": {"type": "MultiPolygon", "coordinates": [[ring], [ring]], "bbox": item["bbox"]},
    }
    assert validator.errors(fine) == []
    bad_bbox = {**item, "geometry": {**item["geometry"], "bbox": [1.0, 2.0]}}
    assert validator.errors(bad_bbox)


def _gdal_options_seen_by_the_build(monkeypatch) -> list[dict]:
    """The GDAL options in force each time an item is built (the real build runs)."""
    from producer.extract import raster

    seen: list[dict] = []
    real = raster._build_item

    def build_item(*args, **kwargs):
        seen.append(rasterio.env.getenv())
        return real(*args, **kwargs)

    monkeypatch.setattr(raster, "_build_item", build_item)
    return seen


def test_a_local_product_is_read_with_rasterios_default_options_as_a_remote_one(
    tmp_path: Path, monkeypatch
) -> None:
    # the folder-listing environment replaced the one rasterio.open makes by
    # itself (Env.from_defaults): GTIFF_IMPLICIT_JPEG_OVR went back to GDAL's
    # default for local products only
    seen = _gdal_options_seen_by_the_build(monkeypatch)
    create_item(str(rasters.write_cog(tmp_path / "data")))
    (options,) = seen
    assert options["GDAL_DISABLE_READDIR_ON_OPEN"] == "TRUE"
    for name, value in rasterio.env.Env.default_options().items():
        assert options.get(name) == value, name


def test_the_callers_gdal_options_stand_when_a_local_product_is_read(tmp_path: Path, monkeypatch) -> None:
    seen = _gdal_options_seen_by_the_build(monkeypatch)
    with rasterio.Env(GTIFF_IMPLICIT_JPEG_OVR=True):
        create_item(str(rasters.write_cog(tmp_path / "data")))
    (options,) = seen
    assert options["GTIFF_IMPLICIT_JPEG_OVR"] is True
    assert options["GDAL_DISABLE_READDIR_ON_OPEN"] == "TRUE"


def _fresh_environments(monkeypatch) -> list[int]:
    """Counts (one entry each) the GDAL environments set up where none was
    (rasterio's outermost ``Env``), however many are nested inside."""
    made: list[int] = []
    real = rasterio.env.Env.__enter__

    def enter(self):
        if not rasterio.env.hasenv():
            made.append(1)
        return real(self)

    monkeypatch.setattr(rasterio.env.Env, "__enter__", enter)
    return made


def _chunk_job(tmp_path: Path):
    from datetime import UTC, datetime

    from producer.catalog.layout import Layout
    from producer.extract import ExtractOptions
    from producer.ingest import _Extraction, validator

    return _Extraction(
        "c",
        ExtractOptions(collection="c"),
        "c",
        Layout(),
        (tmp_path / "catalog").as_uri(),
        lambda: datetime(2024, 1, 1, tzinfo=UTC),
        validator().check,
    )


@pytest.mark.filterwarnings("ignore::rasterio.errors.NotGeoreferencedWarning")
def test_a_workers_chunk_of_local_products_is_read_in_one_gdal_environment(
    tmp_path: Path, monkeypatch
) -> None:
    from producer import parallel

    data = tmp_path / "data"
    sources = [
        str(rasters.write_cog(data)),
        str(_world_file_product(data)),  # its side-car is still found
        str(rasters.write_utm(data)),
        str(rasters.write_dateline(data)),
    ]
    job = _chunk_job(tmp_path)
    alone = [job(s) for s in sources]  # each product read as it is alone
    made = _fresh_environments(monkeypatch)
    seen = _gdal_options_seen_by_the_build(monkeypatch)
    monkeypatch.setattr(parallel, "_JOB", job)
    monkeypatch.setattr(parallel, "_SOURCES", sources)
    monkeypatch.setattr(parallel, "_STATE", [0] * len(sources))
    packed, _ = parallel._run_chunk(list(range(len(sources))))
    together = [pickle.loads(p) for p in packed]  # each result travels pickled on its own
    assert len(made) == 1  # was one per product
    assert len(seen) == len(sources)
    assert not rasterio.env.hasenv()  # and it is left after the chunk
    for options in seen:  # what each product's read saw alone (the test above)
        assert options["GDAL_DISABLE_READDIR_ON_OPEN"] == "TRUE"
        for name, value in rasterio.env.Env.default_options().items():
            assert options.get(name) == value, name
    assert [(r.ok, r.error, key, doc) for r, key, doc in together] == [
        (r.ok, r.error, key, doc) for r, key, doc in alone
    ]
    assert all(r.error is None and doc for r, _, doc in together)


def test_a_chunk_with_a_product_on_an_object_store_keeps_one_environment_per_product(tmp_path: Path) -> None:
    from producer.extract.raster import reading_environment

    local = str(rasters.write_cog(tmp_path / "data"))
    for sources in ([local, "s3://bucket/x_20240101.tif"], [local, "/vsicurl/http://127.0.0.1/x.tif"], []):
        with reading_environment(sources):
            assert not rasterio.env.hasenv(), sources
    with rasterio.Env(GTIFF_IMPLICIT_JPEG_OVR=True), reading_environment([local]):  # the caller's stands
        assert rasterio.env.getenv()["GTIFF_IMPLICIT_JPEG_OVR"] is True
        assert "GDAL_DISABLE_READDIR_ON_OPEN" not in rasterio.env.getenv()
    with reading_environment([local, local]):
        assert rasterio.env.getenv()["GDAL_DISABLE_READDIR_ON_OPEN"] == "TRUE"

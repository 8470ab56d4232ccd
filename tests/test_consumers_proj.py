"""Projection fields consumers accept: a GeoTIFF with TOWGS84 (PROJ reads its
CRS as a BoundCRS) must not stop stac-geoparquet from converting its item,
nor a collection that mixes it with other items."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import stac_geoparquet.arrow as sga
from rasterio.crs import CRS
from rasterio.transform import from_origin

import producer
from producer.extract.raster import crs_fields
from tests import rasters
from tests.trees import assert_stac_valid_tree

#: International 1924 ellipsoid with a 3-parameter shift to WGS84: no EPSG code
TOWGS84 = "+proj=utm +zone=33 +ellps=intl +towgs84=-87,-98,-121,0,0,0,0 +units=m +no_defs"

#: ED50 / UTM 32N (EPSG:23032) bound to WGS84 by an explicit shift
BOUND_EPSG = """BOUNDCRS[
 SOURCECRS[PROJCRS["ED50 / UTM zone 32N",
  BASEGEOGCRS["ED50",DATUM["European Datum 1950",ELLIPSOID["International 1924",6378388,297]],
   PRIMEM["Greenwich",0],ID["EPSG",4230]],
  CONVERSION["UTM zone 32N",METHOD["Transverse Mercator",ID["EPSG",9807]],
   PARAMETER["Latitude of natural origin",0],PARAMETER["Longitude of natural origin",9],
   PARAMETER["Scale factor at natural origin",0.9996],PARAMETER["False easting",500000],
   PARAMETER["False northing",0]],
  CS[Cartesian,2],AXIS["easting",east],AXIS["northing",north],LENGTHUNIT["metre",1],
  ID["EPSG",23032]]],
 TARGETCRS[GEOGCRS["WGS 84",DATUM["World Geodetic System 1984",ELLIPSOID["WGS 84",6378137,298.257223563]],
  PRIMEM["Greenwich",0],CS[ellipsoidal,2],AXIS["latitude",north],AXIS["longitude",east],
  ANGLEUNIT["degree",0.0174532925199433],ID["EPSG",4326]]],
 ABRIDGEDTRANSFORMATION["ED50 to WGS 84",METHOD["Geocentric translations",ID["EPSG",9603]],
  PARAMETER["X-axis translation",-87],PARAMETER["Y-axis translation",-98],
  PARAMETER["Z-axis translation",-121]]]"""


def write_towgs84(folder: Path) -> Path:
    """``towgs84_20240110.tif``: a UTM grid on a datum given by TOWGS84 only."""
    crs = CRS.from_wkt(CRS.from_proj4(TOWGS84).to_wkt())
    folder.mkdir(parents=True, exist_ok=True)
    return rasters._write(
        folder / "towgs84_20240110.tif",
        rasters._ramp(),
        crs=crs,
        transform=from_origin(500000.0, 5000000.0, 10.0, 10.0),
    )


def _converts(items: list[dict], where: Path) -> int:
    """Rows stac-geoparquet writes for ``items`` (raises if it cannot convert them)."""
    sga.to_parquet(sga.parse_stac_items_to_arrow(items), where)
    return pq.read_table(where).num_rows


def test_towgs84_geotiff_item_has_no_boundcrs_projjson_and_converts(tmp_path, catalog_dir):
    product = write_towgs84(tmp_path / "data")
    [result] = producer.register([product], catalog=str(catalog_dir), collection="tow")
    assert result.ok, result.error
    item = json.loads((catalog_dir / "tow/towgs84_20240110/towgs84_20240110.json").read_text())
    props = item["properties"]
    assert props["proj:code"] is None
    assert props["proj:projjson"]["type"] == "ProjectedCRS"  # the source CRS, what the grid is in
    assert props["proj:wkt2"].startswith("BOUNDCRS")  # the datum shift is kept in the WKT2
    assert CRS.from_user_input(json.dumps(props["proj:projjson"])).to_wkt()
    assert _converts([item], tmp_path / "one.parquet") == 1
    assert_stac_valid_tree(catalog_dir)


def test_collection_mixing_a_towgs84_item_with_others_converts(tmp_path, catalog_dir):
    data = tmp_path / "data"
    products = [
        write_towgs84(data),
        rasters.write_utm(data),  # proj:code
        rasters.write_custom_crs(data),  # a ProjectedCRS projjson
        rasters.write_wgs84(data),  # geographic proj:code
    ]
    results = producer.register(products, catalog=str(catalog_dir), collection="mixed")
    assert all(r.ok for r in results), [r.error for r in results]
    items = [json.loads(p.read_text()) for p in sorted((catalog_dir / "mixed").glob("*/*.json"))]
    assert len(items) == 4
    assert _converts(items, tmp_path / "all.parquet") == 4
    assert_stac_valid_tree(catalog_dir)


def test_bound_crs_whose_source_has_an_epsg_code_gives_that_code():
    # GDAL identifies the code through the bound: nothing else is needed
    assert crs_fields(CRS.from_wkt(BOUND_EPSG)) == {"proj:code": "EPSG:23032"}


def test_rustac_writes_and_reads_back_a_collection_mixing_a_towgs84_item(tmp_path, catalog_dir):
    # rustac rejects a BoundCRS proj:projjson (a unit given as a string) and
    # "nodata": "nan"; the items this producer writes must pass through it
    import rustac

    data = tmp_path / "data"
    products = [write_towgs84(data), rasters.write_utm(data), rasters.write_custom_crs(data)]
    results = producer.register(products, catalog=str(catalog_dir), collection="rs")
    assert all(r.ok for r in results), [r.error for r in results]
    items = [json.loads(p.read_text()) for p in sorted((catalog_dir / "rs").glob("*/*.json"))]
    rustac.write_sync(str(tmp_path / "rs.parquet"), items)
    back = rustac.read_sync(str(tmp_path / "rs.parquet"))["features"]
    assert sorted(f["id"] for f in back) == sorted(i["id"] for i in items)
    towgs = next(f for f in back if f["id"] == "towgs84_20240110")
    assert towgs["properties"]["proj:wkt2"].startswith("BOUNDCRS")

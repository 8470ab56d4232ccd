"""No NaN or Infinity in a stored document: JSON (RFC 8259) has neither, and
strict parsers (and the mirror) refuse them. The document writer refuses
them naming the document, and the validator reports them, so a product
whose item would hold one fails before anything is written."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin

import producer
from producer.catalog import documents as docs
from producer.errors import ValidationError
from producer.ingest import validator


def _item(value: float) -> dict:
    return {"type": "Feature", "id": "bad", "bbox": [0.0, value, 1.0, 1.0], "properties": {}}


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_dumps_refuses_nan_and_infinity_naming_the_document_and_the_place(value: float) -> None:
    with pytest.raises(ValidationError) as caught:
        docs.dumps(_item(value))
    assert "item 'bad'" in str(caught.value) and "bbox[1]" in str(caught.value)


def test_dumps_refuses_nan_on_its_slow_and_link_paths() -> None:
    class Odd(dict):  # not an exact dict: json.dumps itself writes it
        pass

    with pytest.raises(ValidationError, match=r"properties\.x"):
        docs.dumps({"type": "Feature", "id": "odd", "properties": Odd(x=math.nan)})
    links = [{"rel": "item", "href": f"./{i}.json", "x": 0.5} for i in range(100)]
    links[7]["x"] = math.inf
    with pytest.raises(ValidationError, match=r"collection 'c'.*links\[7\]\.x"):
        docs.dumps({"type": "Collection", "id": "c", "links": links})


def test_nodata_nan_is_still_the_string_nan() -> None:
    doc = {"type": "Feature", "id": "ok", "assets": {"data": {"bands": [{"nodata": "nan"}]}}}
    assert json.loads(docs.dumps(doc))["assets"]["data"]["bands"][0]["nodata"] == "nan"


def test_the_validator_reports_nan_where_it_is() -> None:
    problems = validator().errors(_item(math.nan))
    assert any(p.startswith("bbox[1]: NaN") for p in problems)


def test_a_product_whose_item_would_hold_nan_fails_alone_storage_untouched(tmp_path: Path) -> None:
    """A GeoTIFF whose scale is NaN (GDAL keeps it): its item would carry
    ``raster:scale: NaN``; that product fails, the other one is registered."""
    paths = []
    for name, scale in (("nanscale_20240101.tif", math.nan), ("fine_20240101.tif", 2.0)):
        path = tmp_path / name
        profile = {"driver": "GTiff", "width": 4, "height": 4, "count": 1, "dtype": "uint8"}
        with rasterio.open(path, "w", crs="EPSG:4326", transform=from_origin(10, 50, 1, 1), **profile) as dst:
            dst.write(np.ones((1, 4, 4), "uint8"))
            dst.scales = (scale,)
        paths.append(str(path))
    catalog = tmp_path / "catalog"
    bad, good = producer.register(paths, catalog=str(catalog), collection="c")
    assert good.error is None
    assert bad.error is not None and "NaN" in bad.error and "nanscale_20240101" in bad.error
    assert not list(catalog.rglob("nanscale*"))
    for path in catalog.rglob("*.json"):
        json.loads(path.read_text(), parse_constant=_refused)


def _refused(token: str) -> None:
    pytest.fail(f"a stored document holds {token}")

"""A GeoTIFF whose TIFFTAG_DATETIME is there but no date (zeros, blanks, or
a time zone TIFF does not define, as some writers leave it): the error told
the caller to write a TIFFTAG_DATETIME into a file that has one."""

from __future__ import annotations

from pathlib import Path

import pytest
import rasterio

import producer
from tests import rasters


@pytest.mark.parametrize("value", ["0000:00:00 00:00:00", "    :  :     :  :  ", "2024:05:13 10:00:00+02:00"])
def test_an_unreadable_datetime_tag_is_quoted(tmp_path: Path, value: str) -> None:
    path = rasters.write_tile(tmp_path / "data", "scene.tif", 10.0, 50.0)
    with rasterio.open(path, "r+") as dst:
        dst.update_tags(TIFFTAG_DATETIME=value)
    (result,) = producer.register([path], catalog=tmp_path / "stac", collection="c")
    assert result.action == "error"
    assert f"Its TIFFTAG_DATETIME {value.lstrip()!r} is no date" in result.error  # GDAL strips the lead
    assert "YYYY:MM:DD HH:MM:SS" in result.error
    assert any(hint.option == "datetime" for hint in result.hints)
    assert not (tmp_path / "stac").exists()


def test_without_the_tag_the_advice_is_to_write_one(tmp_path: Path) -> None:
    path = rasters.write_tile(tmp_path / "data", "scene.tif", 10.0, 50.0)
    (result,) = producer.register([path], catalog=tmp_path / "stac", collection="c")
    assert result.action == "error" and "Write a TIFFTAG_DATETIME tag into the file" in result.error

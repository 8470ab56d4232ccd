"""Landsat Collection 1 and 2 product ids name the acquisition date, then
the processing date, separated by ``_``
(``LC09_L2SP_190026_20240513_20240514_02_T1``): two adjacent dates, which
the file-name reader takes for a range. A scene acquired on 13 May was
published as 13 May 00:00 to 14 May 23:59:59 (two weeks for a Collection 1
reprocessing), so a search for 14 May found it."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

import producer
from producer.extract.datetimes import from_filename
from tests import rasters


@pytest.mark.parametrize(
    "name",
    [
        "LC09_L2SP_190026_20240513_20240514_02_T1_SR_B4.TIF",
        "LC08_L1TP_190026_20240513_20240527_02_T1_B4.TIF",
        "LE07_L1TP_190026_20240513_20240610_01_T2_B3.TIF",
        "lc08_l2sp_190026_20240513_20240521_02_rt_qa_pixel.tif",
        "LC09_L2SP_190026_20240513_20240514_02_T1_MTL.txt",
    ],
)
def test_a_landsat_product_id_is_dated_by_its_acquisition(name: str) -> None:
    found = from_filename(name)
    assert found is not None
    assert (found.datetime, found.start, found.end) == (datetime(2024, 5, 13, tzinfo=UTC), None, None)


def test_two_adjacent_dates_elsewhere_are_still_a_range() -> None:
    found = from_filename("chirps_20240101_20240131_monthly.tif")
    assert found is not None and found.start is not None and found.end is not None


def test_a_landsat_scene_registers_on_its_acquisition_day(tmp_path: Path) -> None:
    scene = "LC09_L2SP_190026_20240513_20240514_02_T1"
    path = rasters.write_tile(tmp_path / scene, f"{scene}_SR_B4.TIF", 10.0, 50.0)
    (result,) = producer.register([path], catalog=tmp_path / "stac", collection="landsat")
    assert result.action == "created", result.error
    properties = json.loads(Path(result.href).read_text())["properties"]
    assert properties["datetime"] == "2024-05-13T00:00:00Z"
    assert "start_datetime" not in properties


@pytest.mark.parametrize(
    ("name", "day"),
    [
        ("LC08_CU_029005_20190824_20210127_02_SR_B4.TIF", datetime(2019, 8, 24, tzinfo=UTC)),  # C2 U.S. ARD
        ("LE07_AK_004002_20190824_20210127_02_ST_B6.TIF", datetime(2019, 8, 24, tzinfo=UTC)),
        ("LC08_CU_003008_20130417_20190822_C01_V01_SRB4.tif", datetime(2013, 4, 17, tzinfo=UTC)),  # C1 ARD
    ],
)
def test_a_landsat_ard_tile_id_is_dated_by_its_acquisition(name: str, day: datetime) -> None:
    """U.S. Landsat ARD tiles name the acquisition date and then the
    production date side by side as well (``LC08_CU_029005_20190824_20210127_02``):
    they were dated as a range of a year and a half."""
    found = from_filename(name)
    assert found is not None
    assert (found.datetime, found.start, found.end) == (day, None, None)

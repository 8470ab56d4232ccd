"""An href rewrite whose FROM ends inside a file name (``/data/utm_`` for
``/data/utm_20240513.tif``) rewrote the href while rewrites matched text;
since they match whole folders it is not applied, and that was silent: the
product was published under its local path with no word. It now warns, once
per rule, naming the product and where FROM should end."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import pytest

import producer
from tests import rasters


def test_a_rewrite_ending_inside_a_name_warns_once_and_keeps_the_href(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    data = tmp_path / "data"
    data.mkdir()
    first, second = _copies(tmp_path, data, "utm_20240513.tif", "utm_20240514.tif")
    rule = (f"{data}/utm_", "https://host.example.com/utm_")
    with caplog.at_level(logging.WARNING):
        results = producer.register(
            [str(first), str(second)], catalog=str(tmp_path / "cat"), collection="c", href_rewrites=[rule]
        )
    assert [r.action for r in results] == ["created", "created"], results
    for result, path in zip(results, (first, second), strict=True):
        assert result.item["assets"]["data"]["href"] == str(path)
    warnings = [r.getMessage() for r in caplog.records if "ends inside a name" in r.getMessage()]
    assert len(warnings) == 1, warnings
    assert str(first) in warnings[0] and repr(f"{data}/") in warnings[0]


def test_a_rewrite_of_a_whole_folder_says_nothing(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (path,) = _copies(tmp_path, data, "utm_20240513.tif")
    with caplog.at_level(logging.WARNING):
        (result,) = producer.register(
            [str(path)],
            catalog=str(tmp_path / "cat"),
            collection="c",
            href_rewrites=[(str(data), "https://host.example.com/data")],
        )
    assert result.item["assets"]["data"]["href"] == "https://host.example.com/data/utm_20240513.tif"
    assert not [r for r in caplog.records if "ends inside a name" in r.getMessage()]


def _copies(tmp_path: Path, folder: Path, *names: str) -> list[Path]:
    one = rasters.write_cog(tmp_path / "src")
    return [Path(shutil.copyfile(one, folder / name)) for name in names]

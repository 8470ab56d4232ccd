"""Errors of multi-asset items (group patterns) name a fix that works, in
the caller's spelling: an unsafe id or asset key the pattern captures names
the pattern's group (not an id template, which a group ignores); a data
file whose asset key is ``thumbnail``, registered with thumbnails on, names
the thumbnail option (never ``replace``, which dropped the data file).
Real GeoTIFFs (:func:`tests.rasters.write_tile`)."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

import producer
from producer.cli import main
from tests.rasters import write_tile

SCENE = "S_20240513"
#: the id group reaches over the parent folder: ids 'data/S_20240513'
OVER_FOLDER = r"(?P<id>data/S_\d{8})/(?P<asset>[^/]+)\.tif$"
GROUP = r"(?P<id>S_\d{8})/(?P<asset>[^/]+)\.tif$"


def _cli(*args: str) -> str:
    out = CliRunner().invoke(main, ["register", *args], terminal_width=400)
    assert out.exit_code != 0, out.output
    return " ".join(out.output.split())


def test_unsafe_id_from_a_group_pattern_names_the_patterns_group_in_each_spelling(tmp_path: Path) -> None:
    """Was "Rename the file or choose another id template ... Fix it with
    id_template='{parent}_{stem}'", the same with that template given."""
    band = write_tile(tmp_path / "data" / SCENE, "B02.tif", 10, 50)
    catalog = tmp_path / "cat"
    for kw in ({}, {"id_template": "{parent}_{stem}"}):
        (result,) = producer.register(
            [str(band)], catalog=str(catalog), collection="g", group=OVER_FOLDER, **kw
        )
        assert result.action == "error"
        error = result.error or ""
        assert "'data/S_20240513'" in error and "(?P<id>...)" in error, error
        assert "id_template" not in error and "id template" not in error, error
        assert "group='(?P<id>[^/]+)/(?P<asset>[^/]+)" in error, error
    message = _cli(str(band), "-c", str(catalog), "--collection", "g", "--group", OVER_FOLDER)
    assert "(?P<id>...)" in message and "--group '(?P<id>[^/]+)/(?P<asset>[^/]+)" in message, message
    assert "--id-template" not in message and "group=" not in message, message
    assert not catalog.exists()


def test_unsafe_asset_key_from_a_group_pattern_names_the_asset_group(tmp_path: Path) -> None:
    band = write_tile(tmp_path / "data" / SCENE, "B 02.tif", 10, 50)
    catalog = tmp_path / "cat"
    (result,) = producer.register([str(band)], catalog=str(catalog), collection="g", group=GROUP)
    error = result.error or ""
    assert "unsafe asset key 'B 02'" in error and "(?P<asset>...)" in error, error
    assert "id_template" not in error and "group='(?P<id>[A-Za-z0-9_]" in error, error
    message = _cli(str(band), "-c", str(catalog), "--collection", "g", "--group", GROUP)
    assert "(?P<asset>...)" in message and "--group '(?P<id>[A-Za-z0-9_]" in message, message
    assert "--id-template" not in message, message
    assert not catalog.exists()

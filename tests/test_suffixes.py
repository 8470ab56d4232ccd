"""One list of product file endings: folder/prefix expansion and the event
handler's default filter used to differ (the handler skipped ``.nc4``)."""

from __future__ import annotations

from pathlib import Path

from producer.events import HandlerConfig, ObjectEvent, _skip_reason
from producer.sources import PRODUCT_SUFFIXES, expand_paths


def test_an_nc4_object_event_is_handled_like_an_nc4_file_in_a_folder(tmp_path: Path) -> None:
    (tmp_path / "scene.nc4").write_bytes(b"")
    assert expand_paths([str(tmp_path)]) == [str(tmp_path / "scene.nc4")]
    config = HandlerConfig(catalog="s3://cat/stac", collection="ndvi")
    event = ObjectEvent(kind="created", bucket="data", key="in/scene.nc4")
    assert _skip_reason(event, config) is None
    assert config.suffixes == PRODUCT_SUFFIXES


REPO = Path(__file__).resolve().parents[1]


def test_every_netcdf_ending_the_reader_reads_is_a_product_ending(tmp_path: Path) -> None:
    """``.cdf``/``.netcdf`` (which the datacube reader opens, README lists)
    were skipped by folder expansion and the event handler's default."""
    from producer.extract.source import NETCDF_SUFFIXES as READ_AS_NETCDF
    from producer.sources import NETCDF_SUFFIXES

    assert NETCDF_SUFFIXES == READ_AS_NETCDF
    assert set(READ_AS_NETCDF) <= set(PRODUCT_SUFFIXES)
    for name in ("sst.cdf", "sst.netcdf"):
        (tmp_path / name).write_bytes(b"")
    assert expand_paths([str(tmp_path)]) == [str(tmp_path / "sst.cdf"), str(tmp_path / "sst.netcdf")]
    config = HandlerConfig(catalog="s3://cat/stac", collection="c")
    for key in ("in/sst_20240601.cdf", "in/sst_20240601.netcdf", "in/sst_20240601.nc4"):
        assert _skip_reason(ObjectEvent(kind="created", bucket="data", key=key), config) is None


def test_deployed_default_suffixes_are_the_product_suffixes() -> None:
    """deploy/template.yaml's default ``Suffixes``, deploy/README and the
    CLI ``--suffix`` help all say the code's one list (the template's
    '.tif,.tiff,.nc' skipped .nc4, which the library default had taken)."""
    import re

    from click.testing import CliRunner

    from producer.cli import main

    expected = ",".join(PRODUCT_SUFFIXES)
    template = (REPO / "deploy/template.yaml").read_text()
    found = re.search(r"\n  Suffixes:\n    Type: String\n    Default: (\S+)\n", template)
    assert found is not None and found.group(1) == expected
    deployed = HandlerConfig.from_env(
        {"STAC_CATALOG": "s3://cat/stac", "STAC_COLLECTION": "c", "STAC_SUFFIXES": found.group(1)}
    )
    assert deployed.suffixes == PRODUCT_SUFFIXES

    readme = (REPO / "deploy/README.md").read_text()
    row = next(line for line in readme.splitlines() if line.startswith("| `STAC_SUFFIXES`"))
    assert f"(default `{expected}`;" in row

    help_text = CliRunner().invoke(main, ["handle-event", "--help"], terminal_width=400).output
    assert f"default {' '.join(PRODUCT_SUFFIXES)})" in " ".join(help_text.split())


def test_wrf_output_without_a_suffix_is_a_product_where_netcdf_is(tmp_path: Path) -> None:
    """WRF's own output names (``wrfout_d01_2024-05-01_00:00:00``, no
    ``.nc``) register when named, but a folder holding them expanded to
    nothing and the event handler skipped their objects ("file ending not
    one of"): both take them while NetCDF endings are taken, no other file."""
    for name in ("wrfout_d01_2024-05-01_00:00:00", "wrfinput_d02", "namelist.output", "wrf.exe"):
        (tmp_path / name).write_bytes(b"")
    assert expand_paths([str(tmp_path)]) == [
        str(tmp_path / "wrfinput_d02"),
        str(tmp_path / "wrfout_d01_2024-05-01_00:00:00"),
    ]
    assert expand_paths([str(tmp_path)], suffixes=(".tif",)) == []
    config = HandlerConfig(catalog="s3://cat/stac", collection="c")
    event = ObjectEvent(kind="created", bucket="data", key="runs/wrfout_d01_2024-05-01_00:00:00")
    assert _skip_reason(event, config) is None
    tif_only = HandlerConfig(catalog="s3://cat/stac", collection="c", suffixes=(".tif",))
    assert _skip_reason(event, tif_only) is not None
    assert _skip_reason(ObjectEvent(kind="created", bucket="data", key="runs/wrf.exe"), config) is not None

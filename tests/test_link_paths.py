"""``derived_from=[Path("inputs/raw.nc")]``: the README says the links take
paths to files, and every other path argument takes a ``pathlib.Path``, but
a Path was refused as "a PosixPath, not a text: expected a URL or a path",
and a lone Path raised a bare "'PosixPath' object is not iterable". A Path
now links its absolute path as its text does; a lone one names the option."""

from __future__ import annotations

from pathlib import Path

import pytest

from producer.errors import InputError
from producer.options import RegisterOptions, pipeline_metadata


def test_a_path_links_as_its_text_does(tmp_path: Path) -> None:
    raw = tmp_path / "inputs" / "raw.nc"
    by_path = RegisterOptions(derived_from=[raw], via=[tmp_path / "run.log"])
    by_text = RegisterOptions(derived_from=[str(raw)], via=[str(tmp_path / "run.log")])
    assert by_path.derived_from == by_text.derived_from == (str(raw),)
    meta = pipeline_metadata(by_path)
    assert meta is not None and meta.derived_from == (str(raw),) and meta.via == (str(tmp_path / "run.log"),)


@pytest.mark.parametrize("name", ["derived_from", "via"])
def test_a_lone_path_names_the_option(name: str, tmp_path: Path) -> None:
    with pytest.raises(TypeError, match=f"RegisterOptions.{name} must be a sequence"):
        RegisterOptions(**{name: tmp_path / "x.nc"})


def test_a_bare_name_not_written_yet_is_told_to_give_its_folder(tmp_path, monkeypatch) -> None:
    """``derived_from=["in1.tif"]`` for a file not written yet was refused
    with "give a path to a file", which it was: a bare name counts as a path
    only once it exists, and a name with its folder (``./in1.tif``) before.
    The message says so, and that spelling is taken."""
    monkeypatch.chdir(tmp_path)
    with pytest.raises(InputError, match=r"given with its folder \('\./in1\.tif'\)"):
        RegisterOptions(derived_from=["in1.tif"])
    assert RegisterOptions(derived_from=["./in1.tif"]).derived_from == ("./in1.tif",)

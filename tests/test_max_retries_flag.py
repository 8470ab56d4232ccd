"""``--max-retries`` reaches every write a verb makes. A write that gives up
hints "--max-retries N"; remove had no such flag, and reconcile passed it to
the registration of missing products only, so its repairs gave up after the
default 25 retries whatever was asked."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

import producer
from producer import commit
from producer.cli import main
from tests import rasters


@pytest.fixture
def catalog(tmp_path: Path) -> Path:
    sources = rasters.dated_cogs(tmp_path / "data", 2)
    producer.register([str(s) for s in sources], catalog=str(tmp_path / "cat"), collection="c")
    return tmp_path / "cat"


@pytest.fixture
def always_contended(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Every compare-and-swap gives up at once, saying how many retries its
    committer was given (the value under test is the committer's)."""
    seen: list[int] = []

    def give_up(self: commit.Committer, key: str, *args: object, **kwargs: object) -> None:
        seen.append(self.max_retries)
        raise self._give_up(key, f"{key}: gave up after {self.max_retries + 1} attempts")

    monkeypatch.setattr(commit.Committer, "cas", give_up)
    return seen


def test_remove_takes_max_retries(catalog: Path, always_contended: list[int]) -> None:
    item_id = json.loads(next((catalog / "c").glob("*/*.json")).read_text())["id"]
    out = CliRunner().invoke(
        main, ["remove", item_id, "-c", str(catalog), "--collection", "c", "--max-retries", "40"]
    )
    assert out.exit_code == 1, out.output
    assert always_contended and set(always_contended) == {40}
    assert "--max-retries 82" in out.output  # the hint names a flag remove has


def test_reconcile_repairs_take_max_retries(catalog: Path, always_contended: list[int]) -> None:
    collection = catalog / "c" / "collection.json"
    doc = json.loads(collection.read_text())
    doc["links"] = [link for link in doc["links"] if link["rel"] != "item"][:] + [
        link for link in doc["links"] if link["rel"] == "item"
    ][:1]
    collection.write_text(json.dumps(doc))  # one orphan: the fix links it
    out = CliRunner().invoke(main, ["reconcile", str(catalog), "--fix", "--max-retries", "60"])
    assert always_contended and set(always_contended) == {60}, out.output

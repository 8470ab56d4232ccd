"""A finding names its repair the way its caller spells it: the library (and
the Prefect reconcile flow) as the call ``reconcile(fix=True)``, the CLI as
the command ``stac-producer reconcile --fix``; never a CLI flag in the
library."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

import producer
from producer.cli import main
from tests import rasters


@pytest.fixture
def stale_catalog(tmp_path: Path) -> Path:
    """A catalog whose collection extent is larger than its one item (a
    stale-extent finding, repaired by a reconcile with fix)."""
    data = rasters.write_all(tmp_path / "data")
    root = tmp_path / "catalog"
    (res,) = producer.register([data["wgs84"]], catalog=str(root), collection="c")
    assert res.action == "created", res.error
    coll = root / "c" / "collection.json"
    doc = json.loads(coll.read_text())
    doc["extent"]["spatial"]["bbox"] = [[-180.0, -90.0, 180.0, 90.0]]
    coll.write_text(json.dumps(doc))
    return root


def test_library_findings_name_the_python_repair_not_a_cli_flag(stale_catalog):
    problems = producer.validate_catalog(str(stale_catalog))
    stale = [p for p in problems if p.kind == "stale-extent"]
    assert stale, problems
    assert "reconcile(fix=True)" in stale[0].message
    assert all("--fix" not in p.message for p in problems)


def test_cli_validate_names_the_repair_as_a_command(stale_catalog):
    out = CliRunner().invoke(main, ["validate", str(stale_catalog)])
    assert "stale-extent" in out.output, out.output
    assert "stac-producer reconcile --fix recomputes it" in out.output
    assert "fix=True" not in out.output

    as_json = CliRunner().invoke(main, ["validate", str(stale_catalog), "--json"])
    rows = [json.loads(line) for line in as_json.output.splitlines() if line.startswith("{")]
    assert any("stac-producer reconcile --fix" in r["message"] for r in rows), rows


def test_cli_reconcile_report_names_the_repair_as_a_command(stale_catalog):
    out = CliRunner().invoke(main, ["reconcile", str(stale_catalog)])
    assert "stac-producer reconcile --fix recomputes it" in out.output, out.output
    assert "fix=True" not in out.output


def test_cli_names_every_reconcile_repair_as_flags_the_library_as_the_call(tmp_path):
    """Was: "reconcile with fix rebuilds it", "reconcile with fix writes it"
    and "reconcile with dead='remove' drops the gone asset" on the command
    line, where the fix is ``--fix`` and ``--dead remove``."""
    data = tmp_path / "data" / "S_20240101"
    rasters.write_tile(data, "B02.tif", 10.0, 45.0)
    (data / "meta.xml").write_text("<meta/>\n")
    root = tmp_path / "catalog"
    group = r"(?P<id>S_\d{8})/(?P<asset>[^/]+)\.(tif|xml)$"
    results = producer.register(
        [str(p) for p in sorted(data.iterdir())], catalog=str(root), collection="c", group=group
    )
    assert all(r.ok for r in results), [r.error for r in results]
    for mirror_file in [*root.glob("c/items-fragments/*"), root / "c/items.parquet"]:
        mirror_file.unlink()
    (data / "meta.xml").unlink()

    library = producer.reconcile(str(root), check_assets=True, fix=True)
    messages = [p.message for p in library.remaining if p.kind in ("missing-asset", "mirror-stale")]
    assert any("reconcile(fix=True, dead='remove') drops" in m for m in messages), messages
    assert all("--" not in m for m in messages), messages

    for mirror_file in [*root.glob("c/items-fragments/*"), root / "c/items.parquet"]:
        mirror_file.unlink()
    out = CliRunner().invoke(main, ["reconcile", str(root)]).output
    assert "stac-producer reconcile --fix rebuilds it" in out, out
    out = CliRunner().invoke(main, ["validate", str(root), "--check-assets"]).output
    assert "stac-producer reconcile --fix writes it" in out, out
    out = CliRunner().invoke(main, ["reconcile", str(root), "--check-assets", "--fix"]).output
    assert "stac-producer reconcile --fix --dead remove drops the gone asset" in out, out
    assert "with fix" not in out and "dead='remove'" not in out


def test_validate_names_the_repair_of_orphans_dangling_and_duplicate_links(tmp_path):
    """Was: "[orphan] no document links it", "[dangling-link] ... points at a
    missing document", "[duplicate-link] ... more than once" and "[missing-root]
    no root catalog.json", with nothing saying that reconcile --fix repairs
    them, while stale-extent and the others said so."""
    data = rasters.write_all(tmp_path / "data")
    root = tmp_path / "catalog"
    results = producer.register([data["wgs84"], data["utm"]], catalog=str(root), collection="c")
    assert all(r.ok for r in results), [r.error for r in results]
    coll_path = root / "c" / "collection.json"
    coll = json.loads(coll_path.read_text())
    items = [link for link in coll["links"] if link["rel"] == "item"]
    coll["links"].remove(items[0])  # an orphan
    coll["links"].append(dict(items[1]))  # a duplicate link
    coll["links"].append({"rel": "item", "href": "./ghost/ghost.json", "type": "application/geo+json"})
    coll["extent"]["spatial"]["bbox"] = [[0.0, 0.0, 0.1, 0.1]]  # holds neither item
    coll_path.write_text(json.dumps(coll))
    out = CliRunner().invoke(main, ["validate", str(root)]).output
    lines = [line for line in out.splitlines() if line.startswith("ERROR")]
    kinds = ("[orphan]", "[duplicate-link]", "[dangling-link]", "[extent]")
    assert sorted(k for line in lines for k in kinds if k in line) == sorted(kinds), out
    assert all("stac-producer reconcile --fix " in line for line in lines), out
    (root / "catalog.json").unlink()
    out = CliRunner().invoke(main, ["validate", str(root)]).output
    line = next(line for line in out.splitlines() if "[missing-root]" in line)
    assert "stac-producer reconcile --fix creates it" in line, line
    library = producer.validate_catalog(str(root))
    assert all("--fix" not in p.message for p in library)

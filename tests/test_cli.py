"""The CLI as a user runs it: a real subprocess for the exit codes, click's
runner for the rest."""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from producer.cli import main
from tests import rasters
from tests.trees import tree_hash


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return rasters.write_all(tmp_path_factory.mktemp("cli-rasters"))


def run(*args: str) -> subprocess.CompletedProcess:
    exe = Path(sys.executable).with_name("stac-producer")
    return subprocess.run([str(exe), *args], capture_output=True, text=True, timeout=120)


def test_exit_codes_from_a_real_process(data, catalog_dir):
    ok = run("register", str(data["utm"]), "--catalog", str(catalog_dir), "--collection", "c")
    assert ok.returncode == 0, ok.stderr
    assert "created" in ok.stdout and "1 products: 1 created" in ok.stdout

    partial = run(
        "register", str(data["nocrs"]), str(data["wgs84"]), "--catalog", str(catalog_dir), "--collection", "c"
    )
    assert partial.returncode == 1
    assert "nocrs_20240513.tif" in partial.stdout and "created" in partial.stdout

    usage = run("register", str(data["utm"]), "--catalog", str(catalog_dir))  # no --collection
    assert usage.returncode == 2 and "--collection" in usage.stderr

    bad_id = run("register", str(data["utm"]), "-c", str(catalog_dir), "--collection", "../x")
    assert bad_id.returncode == 2 and "collection id" in bad_id.stderr

    valid = run("validate", str(catalog_dir))
    assert valid.returncode == 0 and "valid" in valid.stdout


def test_json_lines_one_object_per_product(data, catalog_dir):
    runner = CliRunner()
    res = runner.invoke(
        main,
        [
            "register",
            str(data["utm"]),
            str(data["nodate"]),
            "--json",
            "-c",
            str(catalog_dir),
            "--collection",
            "c",
        ],
    )
    assert res.exit_code == 1
    lines = [json.loads(line) for line in res.stdout.splitlines() if line.startswith("{")]
    assert [(l["id"], l["action"]) for l in lines] == [("utm_20240513", "created"), ("nodate", "error")]
    assert lines[0]["href"].endswith("c/utm_20240513/utm_20240513.json")
    assert "--datetime" in lines[1]["error"]


def test_directory_and_glob_expansion_with_progress(data, catalog_dir, tmp_path):
    folder = tmp_path / "products"
    (folder / "sub").mkdir(parents=True)
    for key, sub in (("utm", ""), ("cog", "sub"), ("wgs84", "sub")):
        src = Path(data[key])
        (folder / sub / src.name).write_bytes(src.read_bytes())
    (folder / "readme.txt").write_text("not a product")
    runner = CliRunner()
    res = runner.invoke(
        main, ["register", str(folder), "--progress", "--json", "-c", str(catalog_dir), "--collection", "c"]
    )
    assert res.exit_code == 0, res.output
    assert len([l for l in res.stdout.splitlines() if l.startswith("{")]) == 3
    assert "registering" in res.stderr  # the progress bar
    res = runner.invoke(
        main,
        ["register", str(folder / "sub" / "*.tif"), "--json", "-c", str(catalog_dir), "--collection", "c"],
    )
    actions = [json.loads(l)["action"] for l in res.stdout.splitlines() if l.startswith("{")]
    assert actions == ["unchanged", "unchanged"]


def test_options_reach_the_items(data, catalog_dir):
    runner = CliRunner()
    res = runner.invoke(
        main,
        [
            "register",
            str(data["nodate"]),
            "-c",
            str(catalog_dir),
            "--collection",
            "c",
            "--datetime",
            "2023-01-01T00:00:00Z/2023-01-31T00:00:00Z",
            "--id-template",
            "x-{stem}",
            "--href-rewrite",
            f"{Path(data['nodate']).parent}=s3://bucket/data",
            "--checksum",
            "--collection-title",
            "My C",
            "--license",
            "CC0-1.0",
            "--keyword",
            "k1",
            "--provider",
            "ACME:producer,host:https://acme.example.com",
        ],
    )
    assert res.exit_code == 0, res.output
    item = json.loads((catalog_dir / "c/x-nodate/x-nodate.json").read_text())
    assert item["properties"]["start_datetime"] == "2023-01-01T00:00:00Z"
    assert item["assets"]["data"]["href"] == "s3://bucket/data/nodate.tif"
    assert item["assets"]["data"]["file:checksum"].startswith("1220")
    coll = json.loads((catalog_dir / "c/collection.json").read_text())
    assert coll["title"] == "My C" and coll["license"] == "CC0-1.0" and coll["keywords"] == ["k1"]
    assert coll["providers"] == [
        {"name": "ACME", "roles": ["producer", "host"], "url": "https://acme.example.com"}
    ]


def test_dry_run_cli(data, catalog_dir):
    res = CliRunner().invoke(
        main, ["register", str(data["utm"]), "--dry-run", "-c", str(catalog_dir), "--collection", "c"]
    )
    assert res.exit_code == 0 and "dry run" in res.stdout
    assert tree_hash(catalog_dir) == {}


def test_validate_reports_each_problem_with_its_path(data, catalog_dir):
    runner = CliRunner()
    runner.invoke(
        main, ["register", str(data["utm"]), str(data["cog"]), "-c", str(catalog_dir), "--collection", "c"]
    )
    # an orphan item file, a dangling link, an item outside the extent, a schema error
    orphan = json.loads((catalog_dir / "c/utm_20240513/utm_20240513.json").read_text())
    orphan["id"] = "stray"
    (catalog_dir / "c/stray").mkdir()
    (catalog_dir / "c/stray/stray.json").write_text(json.dumps(orphan))
    coll = json.loads((catalog_dir / "c/collection.json").read_text())
    coll["links"].append({"rel": "item", "href": "./gone/gone.json", "type": "application/geo+json"})
    coll["extent"]["spatial"]["bbox"][0] = [0, 0, 1, 1]
    (catalog_dir / "c/collection.json").write_text(json.dumps(coll))
    cog = catalog_dir / "c/cog_20240105/cog_20240105.json"
    doc = json.loads(cog.read_text())
    doc["properties"]["proj:code"] = 32633
    cog.write_text(json.dumps(doc))

    res = runner.invoke(main, ["validate", str(catalog_dir)])
    assert res.exit_code == 1
    out = res.stdout
    assert "c/stray/stray.json: [orphan]" in out
    assert "c/collection.json: [dangling-link]" in out and "./gone/gone.json" in out
    assert "c/collection.json: [extent]" in out
    assert "c/cog_20240105/cog_20240105.json: [schema]" in out and "proj:code" in out


def test_remove_cli(data, catalog_dir):
    runner = CliRunner()
    runner.invoke(main, ["register", str(data["utm"]), "-c", str(catalog_dir), "--collection", "c"])
    res = runner.invoke(main, ["remove", "utm_20240513", "-c", str(catalog_dir), "--collection", "c"])
    assert res.exit_code == 0 and "removed utm_20240513" in res.stdout
    res = runner.invoke(main, ["remove", "utm_20240513", "-c", str(catalog_dir), "--collection", "c"])
    assert res.exit_code == 1


def test_demo_runs_and_is_idempotent(tmp_path):
    workdir = tmp_path / "demo"
    res = CliRunner().invoke(main, ["demo", "--dir", str(workdir), "--count", "6"])
    assert res.exit_code == 0, res.output
    assert "validation: valid" in res.stdout and "6/6 products registered" in res.stdout
    before = tree_hash(workdir / "catalog")
    res = CliRunner().invoke(main, ["demo", "--dir", str(workdir), "--count", "6"])
    assert res.exit_code == 0 and res.stdout.count("unchanged") == 6
    assert tree_hash(workdir / "catalog") == before


def test_demo_ends_with_a_search_and_the_command_that_runs_it(tmp_path):
    workdir = tmp_path / "demo"
    res = CliRunner().invoke(main, ["demo", "--dir", str(workdir), "--count", "6"])
    assert res.exit_code == 0, res.output
    assert "search: 2 item(s) in bbox 5,45,10,52 during 2024-05-01/2024-05-31" in res.stdout
    assert "(ndvi_alps_20240506, ndvi_rhine_20240501)" in res.stdout
    command = next(line for line in res.stdout.splitlines() if line.startswith("run it yourself: "))
    args = shlex.split(command.removeprefix("run it yourself: "))
    assert args[:2] == ["stac-producer", "search"]
    found = CliRunner().invoke(main, args[1:])  # the printed command, as the user would run it
    assert found.exit_code == 0, found.output
    assert sorted(f["id"] for f in json.loads(found.stdout)["features"]) == [
        "ndvi_alps_20240506",
        "ndvi_rhine_20240501",
    ]


def test_an_unparsable_pgstac_dsn_shows_the_dsn_form_unmasked_and_never_the_password(data, tmp_path):
    """The hint's template was taken for credentials by the CLI's masking
    (``postgresql://***@HOST...``); the DSN's own password never shows."""
    catalog = tmp_path / "cat"
    res = CliRunner().invoke(
        main,
        ["register", str(data["utm"]), "-c", str(catalog), "--collection", "c"]
        + ["--pgstac", "postgresql://stac:my s3cret@db.internal:5432/stac"],
    )
    assert res.exit_code != 0
    assert "the pgSTAC DSN is not a valid connection string" in res.output
    assert "postgresql://HOST[:PORT]/DBNAME" in res.output and "USER:PASSWORD@ before HOST" in res.output
    assert "***" not in res.output and "s3cret" not in res.output
    assert not catalog.exists()  # refused before any write


def test_remove_from_a_misspelt_collection_says_there_is_no_such_collection(data, catalog_dir):
    runner = CliRunner()
    res = runner.invoke(main, ["register", str(data["utm"]), "-c", str(catalog_dir), "--collection", "ndvi"])
    assert res.exit_code == 0, res.output
    res = runner.invoke(main, ["remove", "utm_20240513", "-c", str(catalog_dir), "--collection", "ndvii"])
    assert res.exit_code == 2, res.output  # a usage error, as search --collections ndvii says (was 1)
    assert f"no collection 'ndvii' in catalog {catalog_dir}" in res.output and "--collection" in res.output
    assert "no such item" not in res.output
    # an item missing from a collection that exists is still that
    res = runner.invoke(main, ["remove", "nothing_here", "-c", str(catalog_dir), "--collection", "ndvi"])
    assert res.exit_code == 1 and "nothing_here: no such item in collection ndvi" in res.output
    # remove never creates a collection, and its --help does not say it does
    help_text = " ".join(runner.invoke(main, ["remove", "--help"]).output.split())
    assert "created on first use" not in help_text and "an existing collection" in help_text


def test_remove_of_another_product_keeps_the_item_and_exits_1_as_the_readme_says(data, catalog_dir):
    """README: remove exits 1 when it removed nothing, also when the item
    there describes another product than ``--product`` (``action: kept``)."""
    runner = CliRunner()
    res = runner.invoke(main, ["register", str(data["utm"]), "-c", str(catalog_dir), "--collection", "ndvi"])
    assert res.exit_code == 0, res.output
    before = tree_hash(catalog_dir)
    args = ["remove", "utm_20240513", "-c", str(catalog_dir), "--collection", "ndvi"]
    res = runner.invoke(main, [*args, "--product", str(data["wgs84"]), "--json"])
    assert res.exit_code == 1, res.output
    assert json.loads(res.stdout)["action"] == "kept"
    assert tree_hash(catalog_dir) == before
    res = runner.invoke(main, [*args, "--product", str(data["utm"]), "--json"])
    assert res.exit_code == 0 and json.loads(res.stdout)["action"] == "removed"


def test_demo_with_dir_and_count_says_how_to_run_itself_again(tmp_path):
    from producer import demo

    workdir = tmp_path / "mydemo"
    res = CliRunner().invoke(main, ["demo", "--dir", str(workdir), "--count", "1"])
    assert res.exit_code == 0, res.output
    last = res.stdout.strip().splitlines()[-1]
    command = shlex.join(["stac-producer", "demo", "--dir", str(workdir), "--count", "1"])
    assert last.startswith(f"next: run `{command}` again"), last
    # the defaults run_demo leaves out are the CLI's
    params = {p.name: p.default for p in main.commands["demo"].params}
    assert (params["workdir"], params["count"]) == (demo.DEFAULT_DIR, demo.DEFAULT_COUNT)


def test_reconcile_collection_without_data_is_a_usage_error_not_a_whole_catalog_fix(data, catalog_dir):
    """``--collection`` names where products found under ``--data`` go. Was:
    without ``--data`` it was ignored, so ``reconcile CAT --fix --collection
    ndvi`` (read as "fix ndvi") repaired every collection, and one misspelt
    said "(nothing)", exit 0."""
    runner = CliRunner()
    for collection in ("ndvi", "other"):
        res = runner.invoke(
            main, ["register", str(data["utm"]), "-c", str(catalog_dir), "--collection", collection]
        )
        assert res.exit_code == 0, res.output
    other = catalog_dir / "other" / "collection.json"
    doc = json.loads(other.read_text())
    doc["extent"]["spatial"]["bbox"] = [[-10.0, -10.0, 50.0, 60.0]]  # stale: a fix would shrink it
    other.write_text(json.dumps(doc))
    before = tree_hash(catalog_dir)
    res = runner.invoke(main, ["reconcile", str(catalog_dir), "--fix", "--collection", "ndvi"])
    assert res.exit_code == 2, res.output
    assert "--collection" in res.output and "--data" in res.output
    assert tree_hash(catalog_dir) == before
    # with --data it is where the missing products go, as before
    res = runner.invoke(
        main, ["reconcile", str(catalog_dir), "--data", str(data["utm"]), "--collection", "ndvi"]
    )
    assert res.exit_code in (0, 1) and "Usage" not in res.output, res.output


def test_reconcile_register_flags_without_data_are_a_usage_error_not_ignored(data, catalog_dir):
    """The register flags of ``reconcile`` shape the products found under
    ``--data``. Was: without ``--data`` they were silently ignored, so
    ``reconcile CAT --fix --partition year/month`` (read as "repartition")
    said nothing of it and exited 0. Flags that also apply to the repairs
    (``--dry-run``, ``--max-retries``, ...) are still taken."""
    runner = CliRunner()
    res = runner.invoke(main, ["register", str(data["utm"]), "-c", str(catalog_dir), "--collection", "c"])
    assert res.exit_code == 0, res.output
    before = tree_hash(catalog_dir)
    for flags in (
        ["--partition", "year/month"],
        ["--thumbnail"],
        ["--group", "{date}"],
        ["--durability", "os"],
    ):
        res = runner.invoke(main, ["reconcile", str(catalog_dir), "--fix", *flags])
        assert res.exit_code == 2, (flags, res.output)
        assert f"{flags[0]} " in res.output and "--data" in res.output, res.output
        assert tree_hash(catalog_dir) == before
    res = runner.invoke(main, ["reconcile", str(catalog_dir), "--fix", "--dry-run", "--max-retries", "3"])
    assert res.exit_code == 0, res.output


@pytest.mark.parametrize("command", ["validate", "search", "reconcile"])
@pytest.mark.parametrize("flag", ["-c", "--catalog"])
def test_a_catalog_flag_where_the_catalog_is_an_argument_says_so(tmp_path, command, flag):
    """register and remove take ``-c/--catalog``; validate, search and
    reconcile take the catalog as their first argument. Was: "No such option
    '-c'." with no word of how to give it."""
    res = CliRunner().invoke(main, [command, flag, str(tmp_path / "stac")])
    assert res.exit_code == 2, res.output
    assert "first argument" in res.output and f"{command} {tmp_path / 'stac'}" in res.output, res.output
    assert not (tmp_path / "stac").exists()
    # other unknown options keep click's own message and suggestions
    res = CliRunner().invoke(main, [command, str(tmp_path / "stac"), "--colection", "x"])
    assert res.exit_code == 2 and "No such option '--colection'" in res.output


@pytest.mark.parametrize("verb", ["register", "remove", "reconcile", "handle-event"])
def test_pgstac_help_keeps_the_password_off_the_command_line(verb):
    """``--pgstac``'s help suggested ``postgresql://USER:PASSWORD@...`` as the
    flag's value, where ``ps`` and the shell history see it."""
    res = CliRunner().invoke(main, [verb, "--help"], terminal_width=1000)
    assert res.exit_code == 0, res.output
    line = next(x for x in res.output.splitlines() if x.strip().startswith("--pgstac DSN"))
    assert "PASSWORD@" not in line, line
    assert "STAC_PGSTAC_DSN" in line and "PGPASSWORD" in line and "~/.pgpass" in line, line

"""flows/ end to end on a real Prefect engine, local catalogs and the local S3,
plus deploy/prefect.yaml checked with Prefect's own loaders."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest
import rasterio
import yaml
from prefect import Flow

from producer import api
from producer.errors import InputError
from producer.prefect import CatalogProblemsRemain, RegistrationFailed
from tests.prefect_harness import (
    flow_run_id,
    read_artifacts,
    table_rows,
)
from tests.rasters import (
    write_cog,
    write_dateline,
    write_multiband,
    write_nocrs,
    write_polar,
    write_rotated,
    write_utm,
    write_wgs84,
)
from tests.s3server import S3Server
from tests.test_secret_leaks import served  # noqa: F401 (a fixture: a folder served over http)

ROOT = Path(__file__).resolve().parent.parent
PREFECT_YAML = ROOT / "deploy" / "prefect.yaml"
EVENTS = Path(__file__).parent / "events"


def _errors(catalog: str, storage_options: dict[str, Any] | None = None) -> list[str]:
    return [str(p) for p in api.validate_catalog(catalog, storage_options=storage_options)]


# ---------------------------------------------------------------------------
# ndvi
# ---------------------------------------------------------------------------


@pytest.mark.usefixtures("prefect_harness")
def test_ndvi_flow_writes_cogs_and_registers_them(tmp_path: Path) -> None:
    from flows.ndvi import NDVI_NODATA, ndvi_flow, write_red_nir_inputs

    inputs = write_red_nir_inputs(str(tmp_path / "in"), 2, size=32)
    catalog = str(tmp_path / "catalog")
    results = ndvi_flow(str(tmp_path / "in"), str(tmp_path / "out"), catalog, "ndvi")

    assert [r["action"] for r in results] == ["created", "created"]
    for src, result in zip(sorted(inputs), results, strict=True):
        out = tmp_path / "out" / (Path(src).stem + "_ndvi.tif")
        assert result["source"] == str(out)
        with rasterio.open(out) as ds:
            assert ds.tags(ns="IMAGE_STRUCTURE").get("LAYOUT") == "COG"
            assert ds.count == 1 and ds.dtypes[0] == "float32" and ds.nodata == NDVI_NODATA
            band = ds.read(1, masked=True)
            assert band.mask[0, 0]  # the inputs' nodata corner
            assert float(band.min()) >= -1.0 and float(band.max()) <= 1.0
        item = json.loads(Path(result["href"]).read_text())
        assert item["assets"]["data"]["type"].endswith("profile=cloud-optimized")
        assert item["properties"]["datetime"].startswith("2024-05-")
    assert _errors(catalog) == []


@pytest.mark.usefixtures("prefect_harness")
def test_ndvi_task_run_names_hold_no_presigned_signature(tmp_path: Path) -> None:
    """compute-ndvi's runs were named "ndvi-<input URL>": Prefect stored and
    showed a presigned input's signature in plain text."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    from flows.ndvi import ndvi_flow

    secret = "NdviS1gnature"
    url = f"https://127.0.0.1:1/in/rednir_20240501.tif?X-Amz-Signature={secret}"
    state = ndvi_flow([url], str(tmp_path / "out"), str(tmp_path / "catalog"), return_state=True)
    assert state.is_failed()
    with get_client(sync_client=True) as client:
        runs = client.read_task_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id(state)]))
        )
    names = [r.name for r in runs if r.name.startswith("ndvi-")]
    assert len(names) == 1 and "rednir_20240501.tif" in names[0], [r.name for r in runs]
    assert secret not in names[0]


@pytest.mark.usefixtures("prefect_harness")
def test_ndvi_output_of_a_url_with_a_token_is_named_without_it(
    tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """The NDVI of ``https://host/x.tif?token=<JWT>`` was written as
    ``x.tif?token=<JWT up to its last dot>_ndvi.tif`` (the stem of the URL
    was taken with its query; a ``/`` in the query named the file after the
    query's tail), and that name, token and all, became the item's id and
    its asset's href in the published catalog."""
    from flows.ndvi import ndvi_flow, write_red_nir_inputs

    base, site = request.getfixturevalue("served")
    (src,) = write_red_nir_inputs(str(site / "in"), 1, size=32)
    name = Path(src).name
    urls = [
        f"{base}in/{name}?token=eyJhbGc.eyJzdWI.NdviT0ken",
        f"{base}in/{name}?X-Amz-Credential=AKIA/20240501/us-east-1/s3/aws4_request&X-Amz-Signature=NdviT0ken",
    ]
    catalog = tmp_path / "catalog"
    for url in urls:
        results = ndvi_flow([url], str(tmp_path / "out"), str(catalog))
        assert [r["action"] for r in results] in (["created"], ["unchanged"]), results
    assert [p.name for p in (tmp_path / "out").iterdir()] == [f"{Path(name).stem}_ndvi.tif"]
    published = [p for p in catalog.rglob("*") if p.is_file()]
    assert published and not any("NdviT0ken" in str(p) or b"NdviT0ken" in p.read_bytes() for p in published)


@pytest.mark.usefixtures("prefect_harness")
def test_ndvi_flow_registers_the_good_outputs_and_fails_on_a_single_band_input(tmp_path: Path) -> None:
    from flows.ndvi import ndvi_flow, write_red_nir_inputs

    write_red_nir_inputs(str(tmp_path / "in"), 1, size=32)
    single = write_utm(tmp_path / "in")  # one band: no NDVI
    catalog = tmp_path / "catalog"
    state = ndvi_flow(str(tmp_path / "in"), str(tmp_path / "out"), str(catalog), return_state=True)
    assert state.is_failed()
    with pytest.raises(RegistrationFailed, match="NDVI needs 2 bands") as info:
        state.result()
    assert "1 of 2 product(s) failed" in str(info.value) and str(single) in str(info.value)
    item = "rednir_rhine_20240501_ndvi"
    assert (catalog / "ndvi" / item / f"{item}.json").is_file()  # the good one IS registered


@pytest.mark.usefixtures("prefect_harness")
def test_ndvi_flow_on_a_mistyped_input_folder_says_so_and_writes_nothing(tmp_path: Path) -> None:
    """The README's ``python -m flows.ndvi demo/rednir ...`` with a typo in the
    folder took the path for a raster: "1 of 1 product(s) failed ... (the
    others were registered): RasterioIOError", after creating the output
    folder. Like the backfill's prefix, a missing local input is bad input."""
    from flows.ndvi import ndvi_flow

    missing = tmp_path / "rednri"
    state = ndvi_flow(str(missing), str(tmp_path / "out"), str(tmp_path / "catalog"), return_state=True)
    assert state.is_failed()
    with pytest.raises(InputError, match="no such file or folder") as info:
        state.result()
    assert str(missing) in str(info.value)
    assert not (tmp_path / "catalog").exists() and not (tmp_path / "out").exists()


@pytest.mark.usefixtures("prefect_harness")
def test_flow_command_lines_end_bad_input_with_its_message_not_a_traceback(tmp_path: Path, capsys) -> None:
    """``python -m flows.ndvi`` (the README's example), ``python -m
    flows.reconcile`` and ``python -m flows.backfill`` ended a failed run with Python's traceback of the
    flow's exception; the message is what the shell needs, exit 2 for bad
    input as stac-producer's own commands."""
    from flows import backfill, ndvi, reconcile

    out = tmp_path / "out"
    assert (
        ndvi.main([str(tmp_path / "rednri"), "--output-dir", str(out), "--catalog", str(tmp_path / "c")]) == 2
    )
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "no such file or folder" in err and "Traceback" not in err
    assert reconcile.main([str(tmp_path / "stca")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "no catalog at" in err and "Traceback" not in err
    cat = tmp_path / "cat"
    assert backfill.main([str(tmp_path / "nope"), "--catalog", str(cat), "--collection", "ndvi"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "nope" in err and "Traceback" not in err
    assert not cat.exists()


@pytest.mark.usefixtures("prefect_harness")
@pytest.mark.parametrize("flag", ["--batch-size", "--concurrency"])
def test_backfill_command_line_refuses_a_count_below_one_naming_the_flag(
    tmp_path: Path, capsys, flag: str
) -> None:
    """``--batch-size 0`` ran the flow, whose parameter check failed with
    Prefect's traceback (exit 1) naming ``batch_size``, not the flag."""
    from flows import backfill

    write_utm(tmp_path / "data")
    cat = tmp_path / "cat"
    with pytest.raises(SystemExit) as info:
        backfill.main([str(tmp_path / "data"), "--catalog", str(cat), "--collection", "c", flag, "0"])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert f"{flag}: 0 is not a whole number of at least 1" in err and "Traceback" not in err
    assert not cat.exists()


# ---------------------------------------------------------------------------
# backfill
# ---------------------------------------------------------------------------


@pytest.mark.usefixtures("prefect_harness")
def test_backfill_registers_an_s3_prefix_in_concurrent_batches(tmp_path: Path, s3_server: S3Server) -> None:
    from prefect.task_runners import ThreadPoolTaskRunner

    from flows.backfill import backfill

    assert isinstance(backfill.task_runner, ThreadPoolTaskRunner) and backfill.task_runner._max_workers > 1
    run = f"backfill-{uuid.uuid4().hex[:8]}"
    client = s3_server.client()
    writers = (write_utm, write_wgs84, write_polar, write_cog, write_rotated, write_dateline)
    for i, writer in enumerate(writers):
        path = writer(tmp_path / "data")
        client.upload_file(str(path), s3_server.bucket, f"{run}/data/{i % 2}/{path.name}")
    catalog = s3_server.url(f"{run}/stac")
    options = s3_server.keyless_options

    summary = backfill(
        s3_server.url(f"{run}/data"), catalog, "backfilled", batch_size=2, storage_options=options
    )
    assert summary == {
        "products": 6,
        "batches": 3,
        "created": 6,
        "updated": 0,
        "unchanged": 0,
        "error": 0,
        "failed_batches": 0,
        "dry_run": False,
    }
    assert _errors(catalog, options) == []
    collection = json.loads(
        client.get_object(Bucket=s3_server.bucket, Key=f"{run}/stac/backfilled/collection.json")[
            "Body"
        ].read()
    )
    assert sum(1 for link in collection["links"] if link["rel"] == "item") == 6

    state = backfill(
        s3_server.url(f"{run}/data"),
        catalog,
        "backfilled",
        batch_size=2,
        storage_options=options,
        return_state=True,
    )
    assert state.result()["unchanged"] == 6  # a rerun changes nothing
    (artifact,) = read_artifacts(key="backfill-backfilled", flow_run=flow_run_id(state))
    assert {r["action"]: r["count"] for r in table_rows(artifact)}["unchanged"] == 6


@pytest.mark.usefixtures("prefect_harness")
def test_backfill_fails_after_registering_the_good_products(tmp_path: Path) -> None:
    from flows.backfill import backfill

    write_utm(tmp_path / "data")
    write_nocrs(tmp_path / "data")
    write_cog(tmp_path / "data")
    catalog = str(tmp_path / "catalog")
    state = backfill(str(tmp_path / "data"), catalog, "partial", batch_size=1, return_state=True)
    assert state.is_failed()
    with pytest.raises(RegistrationFailed, match=r"1 of 3 product\(s\) failed") as info:
        state.result()
    assert "nocrs_20240513.tif" in str(info.value)
    assert (tmp_path / "catalog" / "partial" / "utm_20240513" / "utm_20240513.json").is_file()
    assert (tmp_path / "catalog" / "partial" / "cog_20240105" / "cog_20240105.json").is_file()


@pytest.mark.usefixtures("prefect_harness")
def test_backfill_dry_run_says_so_in_its_summary_artifact_and_result(tmp_path: Path) -> None:
    """With ``options.dry_run`` the summary said "created 6", in the returned
    dict, the run's log and its summary artifact, with no word of a dry run:
    nothing had been written."""
    from flows.backfill import backfill

    write_utm(tmp_path / "data")
    write_cog(tmp_path / "data")
    catalog = str(tmp_path / "catalog")
    state = backfill(str(tmp_path / "data"), catalog, "c", options={"dry_run": True}, return_state=True)
    summary = state.result()
    assert summary["created"] == 2 and summary["dry_run"] is True, summary
    (artifact,) = [a for a in read_artifacts(flow_run=flow_run_id(state)) if a.key == "backfill-c"]
    assert "dry run: nothing written" in (artifact.description or ""), artifact.description
    assert not (tmp_path / "catalog").exists()
    assert backfill(str(tmp_path / "data"), catalog, "c")["dry_run"] is False


@pytest.mark.usefixtures("prefect_harness")
def test_backfill_refuses_an_unsafe_collection_id_before_any_batch(tmp_path: Path) -> None:
    """It listed and planned every product, ran a batch per group, then failed
    each product with the same collection-id error ("3 of 3 product(s) failed")."""
    from flows.backfill import backfill
    from producer.errors import InputError

    write_utm(tmp_path / "data")
    write_cog(tmp_path / "data")
    state = backfill(str(tmp_path / "data"), str(tmp_path / "catalog"), "ndvi/v2", return_state=True)
    assert state.is_failed()
    with pytest.raises(InputError, match=r"unsafe collection id 'ndvi/v2'.*e\.g\. 'ndvi-v2'"):
        state.result()
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterParentFlowRunId

    with get_client(sync_client=True) as client:
        subs = client.read_flow_runs(
            flow_run_filter=FlowRunFilter(
                parent_flow_run_id=FlowRunFilterParentFlowRunId(any_=[flow_run_id(state)])
            )
        )
    assert subs == []  # no batch ran
    assert not (tmp_path / "catalog").exists()


@pytest.mark.usefixtures("prefect_harness")
def test_backfill_of_a_folder_that_does_not_exist_fails_naming_it_before_any_batch(tmp_path: Path) -> None:
    """It ran a batch for the path as if it were a product: "1 of 1 product(s) failed"."""
    from flows.backfill import backfill
    from producer.errors import InputError

    typo = tmp_path / "dtaa"
    state = backfill(str(typo), str(tmp_path / "catalog"), "c", return_state=True)
    with pytest.raises(InputError, match=rf"{typo}: no such file or folder.*check the prefix"):
        state.result()
    assert "product(s) failed" not in (state.message or "")
    assert not (tmp_path / "catalog").exists()


@pytest.mark.usefixtures("prefect_harness")
def test_backfill_with_a_partition_the_collection_contradicts_fails_once_before_any_batch(
    tmp_path: Path,
) -> None:
    """It planned the batches in the layout asked for, ran every batch and
    failed every product with the same layout refusal ("3 of 3 product(s)
    failed", one line per product), where register refuses it once."""
    from flows.backfill import backfill

    catalog = str(tmp_path / "catalog")
    api.register([write_utm(tmp_path / "data")], catalog=catalog, collection="flat")
    write_cog(tmp_path / "data")
    write_wgs84(tmp_path / "data")
    before = {p: p.read_bytes() for p in (tmp_path / "catalog").rglob("*") if p.is_file()}
    state = backfill(
        str(tmp_path / "data"), catalog, "flat", options={"partition": "year/month"}, return_state=True
    )
    assert state.is_failed()
    with pytest.raises(
        InputError, match=r"collection 'flat' at .* is flat \(no partitions\), not partitioned"
    ):
        state.result()
    assert "product(s) failed" not in (state.message or "")
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterParentFlowRunId

    with get_client(sync_client=True) as client:
        subs = client.read_flow_runs(
            flow_run_filter=FlowRunFilter(
                parent_flow_run_id=FlowRunFilterParentFlowRunId(any_=[flow_run_id(state)])
            )
        )
    assert subs == []  # no batch ran
    assert {p: p.read_bytes() for p in (tmp_path / "catalog").rglob("*") if p.is_file()} == before


# ---------------------------------------------------------------------------
# reconcile
# ---------------------------------------------------------------------------


def _orphaned_catalog(tmp_path: Path) -> tuple[str, str]:
    """A local catalog of two items whose collection lost the link to one."""
    catalog = str(tmp_path / "catalog")
    api.register(
        [write_utm(tmp_path / "data"), write_cog(tmp_path / "data")], catalog=catalog, collection="rec"
    )
    coll_path = tmp_path / "catalog" / "rec" / "collection.json"
    coll = json.loads(coll_path.read_text())
    coll["links"] = [link for link in coll["links"] if "cog_20240105" not in link.get("href", "")]
    coll_path.write_text(json.dumps(coll))
    return catalog, "rec/cog_20240105/cog_20240105.json"


@pytest.mark.usefixtures("prefect_harness")
def test_reconcile_flow_finds_and_fixes_an_orphan(tmp_path: Path) -> None:
    from flows.reconcile import reconcile_catalog

    catalog, orphan = _orphaned_catalog(tmp_path)
    assert any("[orphan]" in e for e in _errors(catalog))

    audit = reconcile_catalog(catalog, return_state=True)  # no fix: fails, writes nothing
    assert audit.is_failed()
    with pytest.raises(CatalogProblemsRemain, match="run with fix=True"):
        audit.result()

    state = reconcile_catalog(catalog, fix=True, artifact_key="rec-test", return_state=True)
    out = state.result()
    assert out["found"]["orphan"] == 1 and out["fixed"]["orphan"] == 1
    assert not [p for p in out["remaining"] if p["severity"] == "error"]
    assert _errors(catalog) == []

    (summary,) = read_artifacts(key="rec-test", flow_run=flow_run_id(state))
    assert {"kind": "orphan", "found": 1, "fixed": 1, "failed": 0, "remaining": 0} in table_rows(summary)
    (problems,) = read_artifacts(key="rec-test-problems", flow_run=flow_run_id(state))
    (row,) = [r for r in table_rows(problems) if r["kind"] == "orphan"]
    assert row["key"] == orphan and row["status"] == "fixed"


@pytest.mark.usefixtures("prefect_harness")
def test_reconcile_flow_refuses_a_collection_without_data_before_it_repairs(tmp_path: Path) -> None:
    """collection=... without data limits nothing: the nightly run meant for
    one collection repaired every collection of the catalog (the CLI refuses
    --collection without --data for that reason)."""
    from flows.reconcile import reconcile_catalog
    from producer.errors import InputError

    catalog, _ = _orphaned_catalog(tmp_path)
    before = {p: p.read_bytes() for p in (tmp_path / "catalog").rglob("*.json")}
    state = reconcile_catalog(catalog, fix=True, collection="other", return_state=True)
    assert state.is_failed()
    with pytest.raises(
        InputError, match=r"without data it limits nothing.*set data.*or leave collection unset"
    ):
        state.result()
    assert {p: p.read_bytes() for p in (tmp_path / "catalog").rglob("*.json")} == before


@pytest.mark.usefixtures("prefect_harness")
@pytest.mark.parametrize("fix", [False, True])
def test_reconcile_flow_with_a_data_folder_that_does_not_exist_fails_naming_it(
    tmp_path: Path, fix: bool
) -> None:
    """A mistyped data path was a "missing product" (no item describes the
    folder itself), and with fix a product that failed to register."""
    from flows.reconcile import reconcile_catalog
    from producer.errors import InputError

    catalog, _ = _orphaned_catalog(tmp_path)
    before = {p: p.read_bytes() for p in (tmp_path / "catalog").rglob("*.json")}
    typo = tmp_path / "dtaa"
    state = reconcile_catalog(catalog, data=str(typo), fix=fix, collection="rec", return_state=True)
    assert state.is_failed()
    with pytest.raises(InputError, match=rf"{typo}: no such file or folder.*check the path"):
        state.result()
    assert "missing-product" not in (state.message or "") and "register" not in (state.message or "")
    assert {p: p.read_bytes() for p in (tmp_path / "catalog").rglob("*.json")} == before


@pytest.mark.usefixtures("prefect_harness")
def test_reconcile_flow_fails_when_a_missing_product_cannot_be_registered(tmp_path: Path) -> None:
    from flows.reconcile import reconcile_catalog
    from tests.rasters import write_corrupt

    data = tmp_path / "data"
    catalog = str(tmp_path / "catalog")
    api.register([write_utm(data)], catalog=catalog, collection="rec")
    write_cog(data)  # a product nobody registered: reconcile registers it
    bad = write_corrupt(data)  # one that cannot be registered: the run must fail
    state = reconcile_catalog(
        catalog, data=str(data), fix=True, collection="rec", artifact_key="rec-failed", return_state=True
    )
    assert state.is_failed()
    with pytest.raises(CatalogProblemsRemain, match=r"register-failed") as info:
        state.result()
    assert str(bad) in str(info.value) and "could not be registered" in str(info.value)
    assert [p["kind"] for p in info.value.problems] == ["register-failed"]
    assert (tmp_path / "catalog" / "rec" / "cog_20240105" / "cog_20240105.json").is_file()
    assert _errors(catalog) == []  # the catalog itself is valid; the run still failed
    (summary,) = read_artifacts(key="rec-failed", flow_run=flow_run_id(state))
    assert {"kind": "missing-product", "found": 2, "fixed": 1, "failed": 1, "remaining": 0} in table_rows(
        summary
    )


# ---------------------------------------------------------------------------
# events
# ---------------------------------------------------------------------------


def _s3_put_event(bucket: str, *keys: str) -> dict[str, Any]:
    """The recorded S3 notification (tests/events/s3_put.json), one record per key."""
    template = json.loads((EVENTS / "s3_put.json").read_text())["Records"][0]
    records = []
    for key in keys:
        record = json.loads(json.dumps(template))
        record["s3"]["bucket"]["name"] = bucket
        record["s3"]["bucket"]["arn"] = f"arn:aws:s3:::{bucket}"
        record["s3"]["object"]["key"] = key
        records.append(record)
    return {"Records": records}


@pytest.mark.usefixtures("prefect_harness")
def test_event_flow_registers_the_object(tmp_path: Path, s3_server: S3Server) -> None:
    from flows.events import handle_s3_event

    run = f"event-{uuid.uuid4().hex[:8]}"
    client = s3_server.client()
    path = write_utm(tmp_path / "data")
    key = f"{run}/products/{path.name}"
    client.upload_file(str(path), s3_server.bucket, key)

    out = handle_s3_event(
        _s3_put_event(s3_server.bucket, key),
        catalog=s3_server.url(f"{run}/stac"),
        collection="events",
        prefixes=[f"{run}/products/"],
        storage_options=s3_server.keyless_options,
    )
    assert [(r["id"], r["action"]) for r in out["registered"]] == [("utm_20240513", "created")]
    assert out["failed"] == [] and out["batchItemFailures"] == []
    item = json.loads(
        client.get_object(Bucket=s3_server.bucket, Key=f"{run}/stac/events/utm_20240513/utm_20240513.json")[
            "Body"
        ].read()
    )
    assert item["assets"]["data"]["href"] == f"s3://{s3_server.bucket}/{key}"


@pytest.mark.usefixtures("prefect_harness")
def test_event_flow_fails_when_a_record_fails_after_handling_the_rest(
    tmp_path: Path, s3_server: S3Server
) -> None:
    from flows.events import handle_s3_event

    run = f"event-{uuid.uuid4().hex[:8]}"
    client = s3_server.client()
    keys = []
    for writer in (write_nocrs, write_cog):
        path = writer(tmp_path / "data")
        keys.append(f"{run}/products/{path.name}")
        client.upload_file(str(path), s3_server.bucket, keys[-1])

    state = handle_s3_event(
        _s3_put_event(s3_server.bucket, *keys),
        catalog=s3_server.url(f"{run}/stac"),
        collection="events",
        storage_options=s3_server.keyless_options,
        return_state=True,
    )
    assert state.is_failed()
    with pytest.raises(RegistrationFailed, match="1 event record") as info:
        state.result()
    assert "nocrs_20240513.tif" in str(info.value)
    client.head_object(Bucket=s3_server.bucket, Key=f"{run}/stac/events/cog_20240105/cog_20240105.json")
    (artifact,) = read_artifacts(key="event-events", flow_run=flow_run_id(state))
    assert sorted(r["outcome"] for r in table_rows(artifact)) == ["created", "failed"]


@pytest.mark.usefixtures("prefect_harness")
def test_event_flow_names_what_an_unrecognised_payload_should_be(tmp_path: Path) -> None:
    """A payload of another shape failed as "message None: unrecognised payload
    (keys: ['foo'])", naming neither the payload nor what was expected."""
    from flows.events import handle_s3_event

    state = handle_s3_event({"foo": 1}, str(tmp_path / "catalog"), "c", return_state=True)
    with pytest.raises(RegistrationFailed) as info:
        state.result()
    message = str(info.value)
    assert "message None" not in message, message
    assert "the payload: unrecognised payload (keys: ['foo'])" in message
    assert "S3 event notification" in message and "EventBridge" in message
    assert not (tmp_path / "catalog").exists()


# ---------------------------------------------------------------------------
# deploy/prefect.yaml
# ---------------------------------------------------------------------------


def _deployments() -> dict[str, dict[str, Any]]:
    doc = yaml.safe_load(PREFECT_YAML.read_text())
    return {d["name"]: d for d in doc["deployments"]}


def _check_deployment(name: str, deployment: dict[str, Any]) -> None:
    """What the server checks when `prefect deploy` sends a deployment and a
    run is created from it: the entrypoint loads a flow, every parameter is
    one of the flow's and its value passes the flow's parameter schema
    (``enforce_parameter_schema``, required ones left to each run)."""
    from prefect.flows import load_flow_from_entrypoint
    from prefect.utilities.schema_tools import validate

    path, func = deployment["entrypoint"].split(":")
    assert (ROOT / path).is_file(), name
    loaded = load_flow_from_entrypoint(f"{ROOT / path}:{func}")
    assert isinstance(loaded, Flow), name
    schema = loaded.parameters.model_dump(mode="json")
    parameters = deployment.get("parameters", {})
    assert set(parameters) <= set(schema["properties"]), (name, sorted(schema["properties"]))
    validate(parameters, schema, raise_on_error=True, ignore_required=True)
    assert deployment["work_pool"]["name"]


def test_prefect_yaml_entrypoints_are_flows_taking_its_parameters() -> None:
    from prefect.utilities.schema_tools import ValidationError

    deployments = _deployments()
    assert set(deployments) == {"nightly-reconcile", "backfill", "s3-events"}
    for name, deployment in deployments.items():
        _check_deployment(name, deployment)
    # the check sees a value the flow would refuse, and a parameter it lacks
    nightly = deployments["nightly-reconcile"]
    with pytest.raises(ValidationError, match="delete"):
        _check_deployment("nightly", {**nightly, "parameters": {**nightly["parameters"], "dead": "delete"}})
    backfill = deployments["backfill"]
    with pytest.raises(ValidationError, match="four"):
        _check_deployment(
            "backfill", {**backfill, "parameters": {**backfill["parameters"], "concurrency": "four"}}
        )
    with pytest.raises(AssertionError, match="batch_size"):
        _check_deployment("backfill", {**backfill, "parameters": {"batchsize": 100}})


@pytest.mark.parametrize("parameter", ["concurrency", "batch_size"])
def test_backfill_schema_refuses_a_concurrency_or_batch_size_below_one(parameter: str) -> None:
    """Was: no minimum in the parameter schema, so the server took -1 (or 0)
    for a deployment or a run, which then failed at its start."""
    from prefect.utilities.schema_tools import ValidationError

    backfill = _deployments()["backfill"]
    for bad in (0, -1):
        with pytest.raises(ValidationError, match=str(bad)):
            _check_deployment(
                "backfill", {**backfill, "parameters": {**backfill["parameters"], parameter: bad}}
            )
    _check_deployment("backfill", {**backfill, "parameters": {**backfill["parameters"], parameter: 1}})


def test_prefect_yaml_is_what_prefect_deploy_accepts() -> None:
    """Validated with the models and helpers `prefect deploy` itself uses."""
    from prefect.cli.deploy._models import PrefectYamlModel
    from prefect.cli.deploy._schedules import _schedule_config_to_deployment_schedule
    from prefect.cli.deploy._triggers import _initialize_deployment_triggers
    from prefect.utilities.importtools import import_object

    raw = yaml.safe_load(PREFECT_YAML.read_text())
    model = PrefectYamlModel.model_validate(raw)
    for step in model.pull or []:
        (name,) = step
        assert callable(import_object(name)), name

    configs = {d.name: d.model_dump(exclude_unset=True, mode="json") for d in model.deployments}
    nightly = configs["nightly-reconcile"]
    (schedule,) = [_schedule_config_to_deployment_schedule(s) for s in nightly["schedules"]]
    assert schedule["schedule"].cron == "0 2 * * *" and schedule["schedule"].timezone == "UTC"
    assert nightly["parameters"]["fix"] is True
    assert "schedules" not in configs["backfill"] and "triggers" not in configs["backfill"]

    # one run per S3 event: bounded, and queued (not cancelled) above the bound (an event is never dropped)
    limit = configs["s3-events"]["concurrency_limit"]
    assert 1 <= limit["limit"] <= 10 and limit["collision_strategy"] == "ENQUEUE", limit
    (trigger,) = _initialize_deployment_triggers("s3-events", configs["s3-events"]["triggers"])
    trigger.set_deployment_id(uuid.uuid4())
    automation = trigger.as_automation()
    assert automation.trigger.expect == {"aws.s3.object.created", "aws.s3.object.deleted"}
    (action,) = automation.actions
    assert action.parameters == {"payload": "{{ event.payload }}"}


@pytest.mark.usefixtures("prefect_harness")
def test_reconcile_flow_refuses_a_bad_artifact_key_before_it_repairs(tmp_path: Path) -> None:
    """The key was checked by Prefect only at the summary artifact: the repair
    was written, then the run failed and its summary was lost."""
    from flows.reconcile import reconcile_catalog
    from producer.errors import InputError

    catalog, orphan = _orphaned_catalog(tmp_path)
    before = {p: p.read_bytes() for p in (tmp_path / "catalog").rglob("*.json")}
    state = reconcile_catalog(catalog, fix=True, artifact_key="Nightly_Reconcile", return_state=True)
    assert state.is_failed()
    with pytest.raises(
        InputError, match=r"artifact_key 'Nightly_Reconcile'.*lowercase letters, digits and dashes"
    ):
        state.result()
    assert {p: p.read_bytes() for p in (tmp_path / "catalog").rglob("*.json")} == before  # nothing repaired


@pytest.mark.usefixtures("prefect_harness")
def test_event_flow_failure_names_each_object_once_and_no_others_when_there_are_none(
    tmp_path: Path, s3_server: S3Server
) -> None:
    """The only record of a run failed: its message said "(the others were
    handled)" with no others, and named the object twice ("s3://b/k: s3://b/k:
    ..."), the error already starting with it."""
    from flows.events import handle_s3_event

    run = f"event-{uuid.uuid4().hex[:8]}"
    path = write_nocrs(tmp_path / "data")
    key = f"{run}/products/{path.name}"
    s3_server.client().upload_file(str(path), s3_server.bucket, key)
    state = handle_s3_event(
        _s3_put_event(s3_server.bucket, key),
        catalog=s3_server.url(f"{run}/stac"),
        collection="events",
        storage_options=s3_server.keyless_options,
        return_state=True,
    )
    with pytest.raises(RegistrationFailed, match="1 event record") as info:
        state.result()
    message = str(info.value)
    assert "the others" not in message, message
    assert message.count(f"s3://{s3_server.bucket}/{key}") == 1, message


@pytest.mark.usefixtures("prefect_harness")
def test_event_flow_table_names_the_object_of_each_removal(tmp_path: Path, s3_server: S3Server) -> None:
    """A removal's row in the event flow's table had an empty object column:
    which deleted object an "absent" or "removed" row was for went unsaid."""
    from flows.events import handle_s3_event

    run = f"event-{uuid.uuid4().hex[:8]}"
    key = f"{run}/products/gone_20240601.tif"  # deleted, never registered
    payload = _s3_put_event(s3_server.bucket, key)
    payload["Records"][0]["eventName"] = "ObjectRemoved:Delete"
    state = handle_s3_event(
        payload,
        catalog=s3_server.url(f"{run}/stac"),
        collection="events",
        storage_options=s3_server.keyless_options,
        return_state=True,
    )
    assert state.is_completed()
    (artifact,) = read_artifacts(key="event-events", flow_run=flow_run_id(state))
    assert [(r["object"], r["outcome"], r["id"]) for r in table_rows(artifact)] == [
        (f"s3://{s3_server.bucket}/{key}", "absent", "gone_20240601")
    ]


@pytest.mark.usefixtures("prefect_harness")
def test_event_flow_retries_a_storage_failure_but_not_bad_input(
    tmp_path: Path, s3_server: S3Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An event run is the only delivery of its event (no queue redelivers it,
    as SQS does for the Lambda): a record that failed on storage (the catalog
    bucket not there yet, throttling, compare-and-swap given up) failed the
    run at once, and its object stayed unregistered until someone noticed.
    The handling is retried on storage failures (registering is idempotent),
    never on bad input alone."""
    import flows.events as events_flow

    run = f"event-{uuid.uuid4().hex[:8]}"
    bucket = f"evretry-{uuid.uuid4().hex[:10]}"  # the catalog's bucket: made by the second attempt
    client = s3_server.client()
    good, bad = write_utm(tmp_path / "data"), write_nocrs(tmp_path / "bad")
    for path in (good, bad):
        client.upload_file(str(path), s3_server.bucket, f"{run}/products/{path.name}")
    attempts: list[int] = []

    def create_bucket_on_retry(task: Any, task_run: Any, state: Any) -> None:
        attempts.append(task_run.run_count)
        if task_run.run_count == 2:
            s3_server.new_bucket(bucket)

    monkeypatch.setattr(
        events_flow,
        "handle_event",
        events_flow.handle_event.with_options(on_running=[create_bucket_on_retry], retry_delay_seconds=0),
    )
    out = events_flow.handle_s3_event(
        _s3_put_event(s3_server.bucket, f"{run}/products/{good.name}"),
        catalog=f"s3://{bucket}/stac",
        collection="events",
        storage_options=s3_server.keyless_options,
    )
    assert [(r["id"], r["action"]) for r in out["registered"]] == [("utm_20240513", "created")]
    assert out["failed"] == [] and attempts == [1, 2]

    attempts.clear()
    state = events_flow.handle_s3_event(
        _s3_put_event(s3_server.bucket, f"{run}/products/{bad.name}"),
        catalog=f"s3://{bucket}/stac",
        collection="events",
        storage_options=s3_server.keyless_options,
        return_state=True,
    )
    with pytest.raises(RegistrationFailed, match="no CRS"):
        state.result()
    assert attempts == [1]  # bad input: no retry fixes it
    (artifact,) = read_artifacts(key="event-events", flow_run=flow_run_id(state))
    assert [r["outcome"] for r in table_rows(artifact)] == ["failed"]


@pytest.mark.usefixtures("prefect_harness")
def test_event_flow_retried_after_a_storage_failure_reports_what_the_first_attempt_created(
    tmp_path: Path, s3_server: S3Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Attempt 1 registers one object and fails on the other (its reads
    answered 503); attempt 2 finds the first item there (``unchanged``) and
    registers the second. The run created both: its result, its artifact and
    its log said the first was ``unchanged``."""
    import flows.events as events_flow
    from tests.faultproxy import FaultProxy

    run = f"evagain-{uuid.uuid4().hex[:8]}"
    client = s3_server.client()
    first = write_utm(tmp_path / "a")
    second = write_multiband(tmp_path / "b")
    for path in (first, second):
        client.upload_file(str(path), s3_server.bucket, f"{run}/products/{path.name}")
    with FaultProxy(s3_server.endpoint_url) as proxy:
        proxy.add("GET", rf"/{run}/products/{second.name}$", "503")
        attempts: list[int] = []

        def heal_on_retry(task: Any, task_run: Any, state: Any) -> None:
            attempts.append(task_run.run_count)
            if task_run.run_count == 2:
                proxy.clear()

        monkeypatch.setattr(
            events_flow,
            "handle_event",
            events_flow.handle_event.with_options(on_running=[heal_on_retry], retry_delay_seconds=0),
        )
        options = {**s3_server.keyless_options, "client_kwargs": {"endpoint_url": proxy.endpoint_url}}
        state = events_flow.handle_s3_event(
            _s3_put_event(s3_server.bucket, *(f"{run}/products/{p.name}" for p in (first, second))),
            catalog=str(tmp_path / "catalog"),
            collection="events",
            storage_options=options,
            return_state=True,
        )
    out = state.result()
    assert attempts == [1, 2]
    assert sorted((r["id"], r["action"]) for r in out["registered"]) == [
        ("multiband_20240801", "created"),
        ("utm_20240513", "created"),
    ]
    assert out["failed"] == []
    (artifact,) = read_artifacts(key="event-events", flow_run=flow_run_id(state))
    assert sorted((r["id"], r["outcome"]) for r in table_rows(artifact)) == [
        ("multiband_20240801", "created"),
        ("utm_20240513", "created"),
    ]

"""The backfill flow on a Dask cluster (issue 12, point 8): batches grouped by
parent document, run by prefect-dask's DaskTaskRunner on a local cluster
(127.0.0.1 only), concurrency a flow (and deployment) parameter.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from producer.audit import audit
from producer.errors import InputError
from producer.options import RegisterOptions
from producer.store.local import LocalStore
from producer.validate import default_validator
from tests.crashes import write_tile
from tests.trees import assert_stac_valid_tree

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def dask_cluster() -> Iterator[str]:
    """A two-worker Dask cluster in this process, on 127.0.0.1, no dashboard."""
    from distributed import LocalCluster

    with LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=False,
        protocol="tcp://",
        host="127.0.0.1",
        dashboard_address=None,
    ) as cluster:
        yield cluster.scheduler_address


def products(folder: Path) -> list[Path]:
    """Six tiny GeoTIFFs in three months, named so their months interleave."""
    dates = ["20240105", "20240310", "20240120", "20240502", "20240315", "20240509"]
    return [write_tile(folder, f"p{i}_{d}.tif", 10 + i * 0.2, 50.0) for i, d in enumerate(dates)]


def test_batches_are_grouped_by_the_parent_their_items_go_to(tmp_path: Path) -> None:
    """Before: batches were cut in listing order, so two batches of the same
    month ran at once and fought over the month catalog."""
    from flows.backfill import plan_batches

    paths = sorted(str(p) for p in products(tmp_path / "data"))
    options = RegisterOptions(partition="year/month")
    batches = plan_batches.fn(paths, str(tmp_path / "cat"), "c", options, 2)
    months = [{Path(p).stem.split("_")[1][:6] for p in batch} for batch in batches]
    assert months == [{"202401"}, {"202403"}, {"202405"}]
    # a group larger than a batch fills batches of its own; small groups are packed
    batches = plan_batches.fn(paths, str(tmp_path / "cat"), "c", options, 4)
    assert [len(b) for b in batches] == [4, 2]
    assert sum(batches, []) and sorted(sum(batches, [])) == paths


@pytest.mark.usefixtures("prefect_harness")
def test_backfill_runs_its_batches_on_a_dask_cluster(tmp_path: Path, dask_cluster: str) -> None:
    from prefect_dask import DaskTaskRunner

    from flows.backfill import backfill, task_runner_for

    assert isinstance(task_runner_for(2, dask_address=dask_cluster), DaskTaskRunner)
    products(tmp_path / "data")
    catalog = tmp_path / "cat"
    summary = backfill(
        str(tmp_path / "data"),
        str(catalog),
        "c",
        batch_size=2,
        options=RegisterOptions(partition="year/month"),
        dask_address=dask_cluster,
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
    report = audit(LocalStore(str(catalog)), default_validator())
    assert report.problems == [], [str(p) for p in report.problems]
    assert sorted(info.id for info in report.items.values()) == sorted(
        p.stem for p in products(tmp_path / "x")
    )
    months = {key.split("/")[2] for key in report.items}
    assert months == {"01", "03", "05"}
    assert_stac_valid_tree(catalog)


def test_dask_runner_needs_a_positive_concurrency() -> None:
    from flows.backfill import task_runner_for

    with pytest.raises(InputError, match="concurrency must be at least 1"):
        task_runner_for(0)


@pytest.mark.parametrize(
    "address", ["tcp://dask-scheduler:8786x", "dask-scheduler:8786", "tcp://dask-scheduler"]
)
def test_a_malformed_dask_address_is_refused_before_any_work(tmp_path: Path, address: str) -> None:
    """Before: accepted, the products were listed and the batches planned,
    then distributed failed with "invalid literal for int()" (or its scheme
    error), naming neither the parameter nor the form it takes."""
    from flows.backfill import backfill, task_runner_for

    with pytest.raises(InputError, match=r"dask_address .* tcp://HOST:PORT"):
        task_runner_for(4, dask_address=address)
    write_tile(tmp_path / "data", "p0_20240105.tif", 10, 50.0)
    with pytest.raises(InputError, match=r"dask_address"):
        backfill.fn(str(tmp_path / "data"), str(tmp_path / "catalog"), "c", dask_address=address)
    assert not (tmp_path / "catalog").exists()


def test_backfill_deployment_exposes_where_the_batches_run() -> None:
    """Before: the concurrency was hard-coded (4 threads)."""
    from flows.backfill import backfill

    raw = yaml.safe_load((ROOT / "deploy" / "prefect.yaml").read_text())
    (deployment,) = [d for d in raw["deployments"] if d["name"] == "backfill"]
    assert {"concurrency", "dask_address"} <= set(deployment["parameters"])
    assert {"concurrency", "dask", "dask_address"} <= set(backfill.parameters.properties)
    assert json.dumps(deployment["parameters"])  # plain values only

"""The Prefect task and decorator record the flow run that registered each
item (a property and a ``via`` link), and the decorator takes extra
properties as a function of the task's result. Real Prefect server."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from prefect import flow, task

from producer.errors import InputError
from producer.prefect import FLOW_RUN_PROPERTY, register_in_stac, registers_in_stac
from tests.prefect_harness import flow_run_id
from tests.rasters import write_utm
from tests.trees import assert_stac_valid_tree

pytestmark = pytest.mark.usefixtures("prefect_harness")


def _item(catalog: Path, collection: str, item_id: str = "utm_20240513") -> dict:
    return json.loads((catalog / collection / item_id / f"{item_id}.json").read_text())


def _via(item: dict) -> list[str]:
    return [link["href"] for link in item["links"] if link["rel"] == "via"]


def test_task_records_its_flow_run_on_the_item(tmp_path: Path) -> None:
    catalog = tmp_path / "catalog"
    product = write_utm(tmp_path / "data")

    @flow(name="register-with-run")
    def pipeline() -> Any:
        return register_in_stac([product], catalog=str(catalog), collection="runs", software={"ndvi": "1"})

    state = pipeline(return_state=True)
    run_id = str(flow_run_id(state))
    item = _item(catalog, "runs", "utm_20240513")
    assert item["properties"][FLOW_RUN_PROPERTY] == run_id
    assert item["properties"]["processing:software"]["ndvi"] == "1"
    [via] = _via(item)
    assert run_id in via and via.startswith("http://127.0.0.1")
    assert_stac_valid_tree(catalog)

    # a rerun in another flow run that changes nothing leaves the item as it
    # is: it keeps naming the run that wrote its content
    again = pipeline(return_state=True)
    assert again.result()[0]["action"] == "unchanged"
    assert _item(catalog, "runs")["properties"][FLOW_RUN_PROPERTY] == run_id


def test_decorator_adds_properties_from_the_result_and_the_flow_run(tmp_path: Path) -> None:
    catalog = tmp_path / "catalog"
    product = write_utm(tmp_path / "data")

    @task(name="make-with-properties")
    @registers_in_stac(
        catalog=str(catalog),
        collection="decorated",
        properties=lambda path: {"source_file": Path(path).name, "processing:level": "L3"},
    )
    def make(path: Path) -> Path:
        return path

    @flow(name="decorated-properties")
    def pipeline() -> Any:
        return make(product)

    state = pipeline(return_state=True)
    item = _item(catalog, "decorated")
    assert item["properties"]["source_file"] == "utm_20240513.tif"
    assert item["properties"]["processing:level"] == "L3"
    assert item["properties"][FLOW_RUN_PROPERTY] == str(flow_run_id(state))
    assert_stac_valid_tree(catalog)


def test_decorator_properties_function_returning_a_reserved_key_registers_nothing(tmp_path: Path) -> None:
    catalog = tmp_path / "catalog"
    product = write_utm(tmp_path / "data")

    @registers_in_stac(catalog=str(catalog), collection="bad", properties=lambda _: {"datetime": "2024"})
    def make(path: Path) -> Path:
        return path

    with pytest.raises(InputError, match="make: the properties function: property 'datetime'"):
        make(product)
    assert not catalog.exists()


def test_outside_a_run_nothing_about_prefect_is_added(tmp_path: Path) -> None:
    catalog = tmp_path / "catalog"
    product = write_utm(tmp_path / "data")

    @registers_in_stac(catalog=str(catalog), collection="plain", properties={"k": 1})
    def make(path: Path) -> Path:
        return path

    make(product)
    item = _item(catalog, "plain")
    assert item["properties"]["k"] == 1 and FLOW_RUN_PROPERTY not in item["properties"]
    assert _via(item) == []

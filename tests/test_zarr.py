"""Zarr stores (v2 and v3, local folders and a prefix on the local S3
endpoint) register as one product each, described like NetCDF (datacube
extension) and opened again by xarray from ``href`` + ``xarray:open_kwargs``."""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import pytest
import xarray as xr

import producer
from producer.errors import InputError
from producer.extract import ExtractOptions, create_item
from producer.extract.datacube import MEDIA_ZARR, XARRAY_EXT
from producer.sources import expand_paths
from tests import cubes
from tests.trees import assert_stac_valid_tree


def _check_store_item(doc: dict[str, Any], href: str, storage_options: dict[str, Any] | None = None) -> None:
    asset = doc["assets"]["data"]
    assert asset["href"] == href and asset["type"] == MEDIA_ZARR
    assert "bands" not in asset and "file:size" not in asset
    assert XARRAY_EXT in doc["stac_extensions"]
    variables = {k for k, v in doc["properties"]["cube:variables"].items() if v["type"] == "data"}
    assert variables == {"temperature", "humidity"}
    assert doc["properties"]["proj:code"] == "EPSG:32633"
    assert doc["properties"]["start_datetime"] == "2024-03-01T00:00:00Z"
    extra: dict[str, Any] = {"storage_options": storage_options} if storage_options else {}
    with warnings.catch_warnings():  # zarr's note on v3 consolidated metadata
        warnings.simplefilter("ignore", UserWarning)
        ds = xr.open_dataset(asset["href"], **asset["xarray:open_kwargs"], **extra)
    with ds:
        assert variables <= set(ds.data_vars)


@pytest.mark.parametrize(("zarr_format", "consolidated"), [(2, True), (3, True), (3, False)])
def test_local_zarr_store_registers_as_one_product(
    tmp_path: Path, zarr_format: int, consolidated: bool
) -> None:
    data = tmp_path / "data"
    store = cubes.write_zarr(data / "cube.zarr", zarr_format=zarr_format, consolidated=consolidated)
    # a folder holding the store expands to the store, not to its chunk files
    assert expand_paths(str(data)) == [store]
    assert expand_paths(store + "/") == [store]
    (res,) = producer.register([str(data)], catalog=str(tmp_path / "catalog"), collection="cubes")
    assert res.error is None and res.id == "cube"
    assert_stac_valid_tree(tmp_path / "catalog")
    doc = json.loads((tmp_path / "catalog/cubes/cube/cube.json").read_text())
    _check_store_item(doc, store)
    assert doc["assets"]["data"]["xarray:open_kwargs"] == {"engine": "zarr", "consolidated": consolidated}


def test_folder_without_zarr_metadata_is_refused_by_name(tmp_path: Path) -> None:
    (tmp_path / "empty.zarr").mkdir()
    with pytest.raises(InputError, match=r"empty\.zarr: not a Zarr store"):
        create_item(tmp_path / "empty.zarr")
    with pytest.raises(InputError, match="file:checksum"):
        create_item(tmp_path / "empty.zarr", ExtractOptions(checksum=True))


def _created(bucket: str, keys: list[str]) -> dict[str, Any]:
    return {
        "Records": [
            {
                "eventSource": "aws:s3",
                "eventName": "ObjectCreated:Put",
                "s3": {"bucket": {"name": bucket}, "object": {"key": key, "size": 1}},
            }
            for key in keys
        ]
    }


def test_zarr_stores_on_the_local_s3_endpoint_registered_by_events_once_chunks_skipped(
    s3_server: Any, tmp_path: Path
) -> None:
    from producer.events import HandlerConfig, handle

    bucket = s3_server.new_bucket()
    options = dict(s3_server.storage_options)
    cubes.write_zarr(f"s3://{bucket}/cubes/v3.zarr", zarr_format=3, storage_options=options)
    cubes.write_zarr(f"s3://{bucket}/cubes/v2.zarr", zarr_format=2, storage_options=options)
    # the prefix above the stores lists each store once, whatever its number of objects
    assert expand_paths(f"s3://{bucket}/cubes/", options) == [
        f"s3://{bucket}/cubes/{v}.zarr" for v in ("v2", "v3")
    ]
    keys = sorted(o["Key"] for o in s3_server.client().list_objects_v2(Bucket=bucket)["Contents"])
    catalog = tmp_path / "catalog"
    config = HandlerConfig(catalog=str(catalog), collection="cubes", storage_options=options)
    out = handle(_created(bucket, keys), config)
    assert out["failed"] == []
    assert sorted(r["id"] for r in out["registered"]) == ["v2", "v3"]
    assert len(out["skipped"]) == len(keys) - 2  # every chunk and array metadata object
    assert all(
        "part of the Zarr store" in s["reason"] or "group metadata of the Zarr v2 store" in s["reason"]
        for s in out["skipped"]
    )
    assert_stac_valid_tree(catalog)
    for version in ("v2", "v3"):
        doc = json.loads((catalog / f"cubes/{version}/{version}.json").read_text())
        _check_store_item(doc, f"s3://{bucket}/cubes/{version}.zarr", options)


def test_unconsolidated_zarr_v2_store_events_say_it_is_not_registered_and_how(
    s3_server: Any, tmp_path: Path
) -> None:
    """A Zarr v2 store written without consolidated metadata: every event
    was skipped as "registered by its root metadata", which never comes (no
    ``.zmetadata``), so the store silently stayed out of the catalog. Its
    ``.zgroup`` event now says so and how to get it registered; consolidating
    it (the fix given) registers it."""
    import zarr

    from producer.events import HandlerConfig, handle

    bucket = s3_server.new_bucket()
    options = dict(s3_server.storage_options)
    url = cubes.write_zarr(
        f"s3://{bucket}/cubes/raw.zarr", zarr_format=2, consolidated=False, storage_options=options
    )
    keys = sorted(o["Key"] for o in s3_server.client().list_objects_v2(Bucket=bucket)["Contents"])
    config = HandlerConfig(catalog=str(tmp_path / "catalog"), collection="cubes", storage_options=options)
    out = handle(_created(bucket, keys), config)
    assert out["registered"] == [] and out["failed"] == []
    (group,) = [s["reason"] for s in out["skipped"] if s["url"].endswith("/.zgroup")]
    assert "never registered by an event" in group and "consolidate" in group
    zarr.consolidate_metadata(
        zarr.storage.FsspecStore.from_url(url, storage_options=options, read_only=False)
    )
    out = handle(_created(bucket, ["cubes/raw.zarr/.zmetadata"]), config)
    assert [r["id"] for r in out["registered"]] == ["raw"]


@pytest.mark.filterwarnings("ignore::UserWarning")
@pytest.mark.parametrize("zarr_format", [2, 3])
def test_a_plain_zarr_store_without_dimension_names_is_told_so(tmp_path: Path, zarr_format: int) -> None:
    """A store written by zarr-python alone (no ``_ARRAY_DIMENSIONS`` /
    ``dimension_names``): refused as "not a readable Zarr store (corrupt,
    truncated, or another format)", while the store is sound. The message
    now says what is missing and how to write it."""
    import numpy as np
    import zarr

    store = tmp_path / "plain.zarr"
    group = zarr.open_group(str(store), mode="w", zarr_format=zarr_format)
    group.create_array("v", shape=(4, 4), dtype="f4")[:] = np.ones((4, 4), "f4")
    with pytest.raises(InputError) as caught:
        create_item(store)
    message = str(caught.value)
    assert "its arrays have no dimension names" in message and "dimension_names=" in message
    assert "corrupt" not in message

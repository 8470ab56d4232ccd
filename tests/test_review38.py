"""Attacks on this session's two changes, kept as tests (review rv38).

- nc38: a remote NetCDF-4 above ``RANGED_ABOVE`` read by ranges
  (:class:`producer.extract.datacube._RangedFile`);
- ev38: one product into a remote catalog extracted beside the catalog's
  reads (``ingest._layout_beside_extraction``), the product's HEAD handed to
  the file s3fs opens (``GuardedOpener.details``).

Real files, real S3 (moto); faults are injected at s3fs's request level
(the object rewritten, a read failing), never in the code under test."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin

from producer.errors import ProducerError, StoreError
from producer.extract import ExtractOptions, create_item


def _noise_tif(path: Path, seed: int, size: int = 1200) -> Path:
    """An uncompressed, untiled GeoTIFF of noise (``size`` squared bytes):
    more than one s3fs block of the statistics' reads."""
    data = np.random.default_rng(seed).integers(0, 256, (1, size, size), dtype="uint8")
    with rasterio.open(
        path,
        "w",
        driver="GTiff",
        width=size,
        height=size,
        count=1,
        dtype="uint8",
        crs="EPSG:4326",
        transform=from_origin(10.0, 50.0, 0.001, 0.001),
    ) as dst:
        dst.write(data)
    return path


# --- ev38: the HEAD handed to s3fs's file ------------------------------------------------


def test_an_s3_raster_overwritten_between_its_reads_gives_no_item_of_two_versions(
    s3_server: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The product's HEAD is handed to the file s3fs opens (no second HEAD):
    s3fs then sends its range reads without ``If-Match`` (it adds the ETag
    only to a file it HEADs itself), so a product rewritten after its first
    block gave statistics of blocks of two files. Each range read is tied to
    the ETag of the HEAD: the rewrite is a storage failure (retried)."""
    import s3fs

    old = _noise_tif(tmp_path / "old.tif", 1).read_bytes()
    (tmp_path / "new").mkdir()
    new = _noise_tif(tmp_path / "new" / "noise_20240501.tif", 2).read_bytes()
    assert len(old) == len(new) > 1024 * 1024
    bucket = s3_server.new_bucket()
    key = "data/noise_20240501.tif"
    client = s3_server.client()
    client.put_object(Bucket=bucket, Key=key, Body=old)
    url = f"s3://{bucket}/{key}"
    original = s3fs.S3FileSystem._call_s3
    gets: list[str] = []

    async def rewritten_after_the_first_read(self: Any, method: Any, *args: Any, **kwargs: Any) -> Any:
        ranged = method == "get_object" and kwargs.get("Key") == key and "Range" in kwargs
        if ranged:
            gets.append(kwargs["Range"])
        out = await original(self, method, *args, **kwargs)
        if ranged and len(gets) == 1:  # the writer replaces the product after its first block
            client.put_object(Bucket=bucket, Key=key, Body=new)
        return out

    monkeypatch.setattr(s3fs.S3FileSystem, "_call_s3", rewritten_after_the_first_read)
    s3fs.S3FileSystem.clear_instance_cache()
    options = ExtractOptions(storage_options=s3_server.storage_options, stats=True)
    with pytest.raises(ProducerError) as caught:
        create_item(url, options)
    assert isinstance(caught.value, StoreError), caught.value
    assert len(gets) >= 2, gets
    assert "noise_20240501.tif" in str(caught.value), caught.value
    # unchanged since, the same reads give the item of the new version
    monkeypatch.setattr(s3fs.S3FileSystem, "_call_s3", original)
    s3fs.S3FileSystem.clear_instance_cache()
    item = create_item(url, options).to_dict()
    local = create_item(str(tmp_path / "new" / "noise_20240501.tif"), ExtractOptions(stats=True)).to_dict()
    stats = item["assets"]["data"]["bands"][0]["statistics"]
    assert stats == local["assets"]["data"]["bands"][0]["statistics"]

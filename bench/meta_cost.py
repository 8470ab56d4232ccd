"""What issue 10's "meta" features cost per item, side by side in one run.

    python bench/meta_cost.py            # 15 repeats
    python bench/meta_cost.py --repeats 5

* summaries merge: :func:`producer.catalog.summaries.merge` of one new item
  into a collection document whose summaries already hold the values of
  0, 1,000 and 100,000 earlier items (the merge reads only the document and
  the batch, so its cost must not grow with them);
* register one small COG (local catalog) plain, with pipeline metadata
  (properties, derived_from, software, lineage), and with ``thumbnail=True``;
* thumbnail render alone of a 2400 x 2400 COG with overviews.

Medians in milliseconds; the load average is printed with the table.
Writes only under a temporary directory.
"""

from __future__ import annotations

import argparse
import itertools
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import rasterio  # noqa: E402
from rasterio.enums import Resampling  # noqa: E402
from rasterio.transform import from_origin  # noqa: E402

import producer  # noqa: E402
from producer import thumbnail  # noqa: E402
from producer.catalog import summaries  # noqa: E402
from tests import rasters  # noqa: E402


def _item(i: int) -> dict:
    return {
        "id": f"i{i}",
        "properties": {"proj:code": f"EPSG:{32601 + i % 20}", "platform": f"sat-{i % 3}", "gsd": 10 + i % 7},
        "assets": {
            "data": {
                "href": f"/d/i{i}.tif",
                "type": "image/tiff",
                "roles": ["data"],
                "title": f"i{i}.tif",
                "bands": [{"name": f"b{i % 4}", "data_type": "uint16"}],
            }
        },
    }


def _median_ms(fn: Callable[[], object], repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def _big_cog(folder: Path) -> Path:
    path = folder / "big_20240601.tif"
    profile = dict(
        driver="GTiff", width=2400, height=2400, count=1, dtype="uint8", crs="EPSG:32633",
        transform=from_origin(500000.0, 5000000.0, 10.0, 10.0), tiled=True, blockxsize=256, blockysize=256,
    )  # fmt: skip
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(np.random.default_rng(1).integers(0, 255, (1, 2400, 2400), dtype="uint8"))
        dst.build_overviews([2, 4, 8], Resampling.average)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=15)
    args = parser.parse_args()
    rows: list[tuple[str, float]] = []

    for before in (0, 1_000, 100_000):
        doc: dict = {"type": "Collection"}
        summaries.merge(doc, (_item(i) for i in range(before)))

        new = _item(before + 1)

        def merge_one(doc: dict = doc, new: dict = new) -> None:
            summaries.merge(dict(doc), [new])

        rows.append(
            (f"summaries merge, 1 item into a collection of {before:,}", _median_ms(merge_one, args.repeats))
        )

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        product = rasters.write_cog(folder / "data")
        pipeline = dict(
            properties={"processing:level": "L2"},
            derived_from=["s3://in/x.tif"],
            software={"p": "1"},
            lineage="x",
        )
        for label, extra in (
            ("plain", {}),
            ("with pipeline metadata", pipeline),
            ("with thumbnail", {"thumbnail": True}),
        ):
            counter = itertools.count()

            def once(extra: dict = extra, counter: Iterator[int] = counter) -> None:
                catalog = folder / f"cat{next(counter)}"
                [result] = producer.register([product], catalog=str(catalog), collection="c", **extra)
                assert result.ok, result.error

            rows.append((f"register 1 COG (64 px, new catalog), {label}", _median_ms(once, args.repeats)))
        big = _big_cog(folder / "data")

        def render() -> None:
            with rasterio.open(big) as src:
                assert thumbnail.render(src, str(big)) is not None

        rows.append(("thumbnail render, 2400 x 2400 COG with overviews", _median_ms(render, args.repeats)))

    print(f"load average {os.getloadavg()[0]:.2f} (2 cores), {args.repeats} repeats, medians\n")
    print("| case | ms |\n| --- | ---: |")
    for label, ms in rows:
        print(f"| {label} | {ms:.2f} |")


if __name__ == "__main__":
    main()

"""What relative asset hrefs cost, side by side in one run.

    python bench/hrefs_cost.py              # 7 repeats
    python bench/hrefs_cost.py --repeats 3

* register 20 tiny tiles into a fresh local catalog, the data under the
  catalog root: relative hrefs (default) and ``absolute_hrefs=True``; then
  the same 20 again (all unchanged: every item is read back and resolved);
* :func:`producer.hrefs.relative_assets` then :func:`absolute_assets` of
  one 10-asset item (what each item write and read adds).

Medians in milliseconds; the load average is printed with the table.
Writes only under a temporary directory.
"""

from __future__ import annotations

import argparse
import itertools
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import producer  # noqa: E402
from producer.hrefs import absolute_assets, relative_assets  # noqa: E402
from tests.rasters import write_tile  # noqa: E402

N = 20


def _median_ms(fn: Callable[[], object], repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    rows: list[tuple[str, float, float]] = []
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        tiles = [write_tile(data, f"t{i:02d}_20240110.tif", 6.0 + i * 0.2, 46.0) for i in range(N)]
        counter = itertools.count()
        medians: dict[tuple[str, bool], float] = {}
        for absolute in (False, True):

            def fresh(absolute: bool = absolute, counter: Iterator[int] = counter) -> Path:
                site = Path(tmp) / f"site{next(counter)}"
                shutil.copytree(data, site / "data")
                return site

            def first(absolute: bool = absolute) -> None:
                site = fresh()
                products = sorted((site / "data").glob("*.tif"))
                results = producer.register(
                    products, catalog=str(site), collection="c", absolute_hrefs=absolute
                )
                assert all(r.ok for r in results)

            site = fresh()
            products = sorted((site / "data").glob("*.tif"))
            producer.register(products, catalog=str(site), collection="c", absolute_hrefs=absolute)

            def rerun(site: Path = site, products: list[Path] = products, absolute: bool = absolute) -> None:
                results = producer.register(
                    products, catalog=str(site), collection="c", absolute_hrefs=absolute
                )
                assert all(r.action == "unchanged" for r in results)

            medians[("first", absolute)] = _median_ms(first, args.repeats)
            medians[("rerun", absolute)] = _median_ms(rerun, args.repeats)
        for what, label in (
            ("first", f"register {N} tiles (new)"),
            ("rerun", f"register {N} tiles again (unchanged)"),
        ):
            rows.append((label, medians[(what, False)], medians[(what, True)]))
        assert len(tiles) == N

    item = {
        "type": "Feature",
        "assets": {f"B{i:02d}": {"href": f"/site/data/s/B{i:02d}.tif", "roles": ["data"]} for i in range(10)},
    }
    loc = "/site/c/s/s.json"

    def round_trip() -> None:
        for _ in range(1000):
            absolute_assets(relative_assets(item, loc, "/site"), loc)

    per_item = _median_ms(round_trip, args.repeats) / 1000
    print(f"load average {os.getloadavg()[0]:.2f} (2 cores, other engineers' tests running)")
    print("| case | relative (default), ms | absolute_hrefs, ms | ratio |\n| --- | ---: | ---: | ---: |")
    for label, rel, absolute_ms in rows:
        print(f"| {label} | {rel:.0f} | {absolute_ms:.0f} | {rel / absolute_ms:.2f} |")
    print(f"| relative_assets + absolute_assets, one 10-asset item | {per_item:.3f} | n/a | |")


if __name__ == "__main__":
    main()

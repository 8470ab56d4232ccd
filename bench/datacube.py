"""What describing a datacube costs: a NetCDF with 20 variables, a Zarr
store, against a single COG.

    .venv/bin/python bench/datacube.py            # prints the table
    .venv/bin/python bench/datacube.py --write    # and writes the BENCHMARKS.md section

Two measurements per product, each the median of ``--repeats`` runs in this
one process after a warm-up of every kind (imports, schema loading and
GDAL/netCDF4 caches excluded from the timings):

- ``extract``: :func:`producer.extract.create_item` (open, read headers and
  coordinates, build the item; nothing written);
- ``register``: :func:`producer.register` of the one product into a fresh
  local catalog (extract + validate + item write + collection/catalog CAS).

Products (written once under ``.bench/work/datacube``): a 64x64 float32 COG
(the baseline), a NetCDF-4 file with 20 float32 variables on (time 4, lat
64, lon 64), the two-variable cube of the tests (time 3, level 2, 6x8 UTM)
as NetCDF-4 and as a Zarr v3 store.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import common as c


def _products(root: Path) -> dict[str, str]:
    from producer.demo import write_sample_cog
    from tests import cubes

    root.mkdir(parents=True, exist_ok=True)
    cog = root / "single_20240101.tif"
    write_sample_cog(str(cog), 32632, 400000.0, 5600000.0, 30.0, seed=1, size=64)
    return {
        "COG 64x64, 1 band (baseline)": str(cog),
        "NetCDF-4, 20 variables x time 4 x 64x64": str(cubes.write_many_variables(root, 20)),
        "NetCDF-4, 2 variables x time 3 x level 2": str(cubes.write_two_variables(root)),
        "Zarr v3 store, same 2 variables": cubes.write_zarr(root / "two_variables.zarr", zarr_format=3),
    }


def _median_time(func: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        func()
        times.append(time.perf_counter() - t0)
    return c.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--write", action="store_true", help="write the BENCHMARKS.md section")
    args = parser.parse_args()

    import producer
    from producer.extract import create_item

    work = c.fresh_work_dir("datacube")
    products = _products(work / "products")
    load_before = os.getloadavg()
    counter = iter(range(10**9))

    def register(path: str) -> None:
        catalog = work / f"catalog-{next(counter)}"
        (result,) = producer.register([path], catalog=str(catalog), collection="bench")
        if result.error:
            raise RuntimeError(result.error)
        shutil.rmtree(catalog)

    for path in products.values():  # warm-up: imports, schemas, library caches
        create_item(path)
        register(path)
    rows = []
    baseline: tuple[float, float] | None = None
    for label, path in products.items():
        extract = _median_time(lambda p=path: create_item(p), args.repeats)  # type: ignore[misc]
        full = _median_time(lambda p=path: register(p), args.repeats)  # type: ignore[misc]
        baseline = baseline or (extract, full)
        rows.append(
            [
                label,
                c.fmt_s(extract),
                f"{extract / baseline[0]:.1f}x",
                c.fmt_s(full),
                f"{full / baseline[1]:.1f}x",
            ]
        )
    load_after = os.getloadavg()
    note = (
        f"_{c.machine_note()}; {args.repeats} repeats, medians; load average "
        f"{load_before[0]:.1f} before, {load_after[0]:.1f} after (other engineers' tests share the machine)._"
    )
    body = note + "\n\n" + c.table(["product", "extract", "vs COG", "register (local)", "vs COG"], rows)
    print(body)
    if args.write:
        c.write_section("datacube", body)


if __name__ == "__main__":
    main()

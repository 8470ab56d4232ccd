"""The README's demo: sample COGs → local catalog → validation → summary → one search.

Writes ``<dir>/data/*.tif`` (small synthetic NDVI-like COGs over a few
places, dates in the file names) and ``<dir>/catalog/``.
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Callable, Sequence
from datetime import date, timedelta

import numpy as np
import rasterio.shutil
from rasterio.io import MemoryFile
from rasterio.transform import from_origin

from producer import api

#: (name, EPSG code, upper-left x, upper-left y, pixel size) of the sample scenes
SCENES: Sequence[tuple[str, int, float, float, float]] = (
    ("rhine", 32632, 400000.0, 5600000.0, 30.0),
    ("alps", 32632, 360000.0, 5200000.0, 30.0),
    ("nile", 32636, 300000.0, 3400000.0, 60.0),
    ("fiji", 4326, 179.5, -17.0, 0.01),  # crosses the antimeridian
    ("greenland", 3413, -100000.0, -1000000.0, 1000.0),
    ("andes", 32719, 350000.0, 8200000.0, 30.0),
)
#: the demo's closing search: Central Europe in May 2024 (the Rhine and Alps scenes of the first six)
#: ``stac-producer demo``'s defaults of --dir and --count (the CLI's too: a test checks)
DEFAULT_DIR = "demo"
DEFAULT_COUNT = 6
SEARCH_BBOX = "5,45,10,52"
SEARCH_DATETIME = "2024-05-01/2024-05-31"


def write_sample_cog(
    path: str, epsg: int, ulx: float, uly: float, res: float, seed: int, size: int = 256
) -> None:
    """Write one tiled, overviewed COG with an NDVI-like float band."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size]
    field = np.sin(xx / 17.0 + seed) * np.cos(yy / 23.0) * 0.6 + rng.normal(0, 0.05, (size, size))
    data = np.clip(field, -1, 1).astype("float32")
    data[:8, :8] = -9999.0
    profile = {
        "driver": "GTiff",
        "width": size,
        "height": size,
        "count": 1,
        "dtype": "float32",
        "crs": f"EPSG:{epsg}",
        "transform": from_origin(ulx, uly, res, res),
        "nodata": -9999.0,
    }
    with MemoryFile() as mem:
        with mem.open(**profile) as tmp:
            tmp.write(data, 1)
            tmp.set_band_description(1, "ndvi")
            tmp.update_tags(1, units="1")
        with mem.open() as src:
            rasterio.shutil.copy(
                src, path, driver="COG", compress="deflate", blocksize=128, overview_resampling="average"
            )


def make_samples(data_dir: str, count: int) -> list[str]:
    """Write ``count`` sample COGs (cycling the scenes, one date each)."""
    os.makedirs(data_dir, exist_ok=True)
    paths = []
    start = date(2024, 5, 1)
    for i in range(count):
        name, epsg, ulx, uly, res = SCENES[i % len(SCENES)]
        day = start + timedelta(days=5 * i)
        path = os.path.join(data_dir, f"ndvi_{name}_{day:%Y%m%d}.tif")
        if not os.path.exists(path):
            shift = (i // len(SCENES)) * res * 256
            write_sample_cog(path, epsg, ulx + shift, uly, res, seed=i)
        paths.append(path)
    return paths


def run_demo(
    workdir: str,
    *,
    count: int,
    echo: Callable[[str], None],
    table: Callable[[Sequence[Sequence[object]], Sequence[str]], str],
) -> int:
    """Run the whole demo; returns the exit code (0 when everything is valid)."""
    data_dir = os.path.join(workdir, "data")
    catalog = os.path.abspath(os.path.join(workdir, "catalog"))
    echo(f"writing {count} sample COGs to {data_dir}/ ...")
    paths = make_samples(data_dir, count)
    results = api.register(
        paths,
        catalog=catalog,
        collection="demo-ndvi",
        collection_meta={
            "title": "Demo NDVI",
            "description": "Synthetic NDVI COGs written by `stac-producer demo`.",
            "license": "CC0-1.0",
            "keywords": ["ndvi", "demo"],
        },
        root_meta={"id": "demo", "title": "stac-producer demo catalog"},
    )
    rows = []
    for r in results:
        item = r.item or {}
        bbox = item.get("bbox")
        rows.append(
            (
                r.id,
                r.action,
                item.get("properties", {}).get("proj:code", "-"),
                item.get("properties", {}).get("datetime", "-"),
                "-" if not bbox else "[" + ", ".join(f"{v:.2f}" for v in bbox) + "]",
                r.error or "",
            )
        )
    echo(table(rows, ["item", "action", "crs", "datetime", "bbox (W, S, E, N)", "error"]))
    problems = api.validate_catalog(catalog)
    errors = [p for p in problems if p.is_error]
    for p in problems:
        echo(f"{'ERROR' if p.is_error else 'warning'} {p}")
    ok = all(r.ok for r in results) and not errors
    echo(f"\ncatalog: {os.path.join(catalog, 'catalog.json')}")
    echo(
        f"validation: {'valid' if not errors else f'{len(errors)} errors'}; "
        f"{sum(r.ok for r in results)}/{len(results)} products registered"
    )
    if ok:
        _search(catalog, os.path.join(workdir, "catalog"), echo)
    if ok and any(r.action == "created" for r in results):
        again = ["stac-producer", "demo"]
        if workdir != DEFAULT_DIR:
            again += ["--dir", workdir]
        if count != DEFAULT_COUNT:
            again += ["--count", str(count)]
        echo(f"next: run `{shlex.join(again)}` again — every product is 'unchanged' and no byte moves.")
    return 0 if ok else 1


def _search(catalog: str, shown: str, echo: Callable[[str], None]) -> None:
    """Search the demo catalog (its mirror, kept current by the register) and
    print how many items matched and the command that runs the same search.
    ``shown``: the catalog path as the user gave it. Reads only."""
    found = api.search(catalog, bbox=SEARCH_BBOX, datetime=SEARCH_DATETIME)
    ids = ", ".join(f["id"] for f in found["features"])
    echo(
        f"search: {found['numberMatched']} item(s) in bbox {SEARCH_BBOX} during {SEARCH_DATETIME}"
        + (f" ({ids})" if ids else "")
    )
    command = ["stac-producer", "search", shown, "--bbox", SEARCH_BBOX, "--datetime", SEARCH_DATETIME]
    echo(f"run it yourself: {shlex.join(command)}")

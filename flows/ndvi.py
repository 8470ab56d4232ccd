"""Example processing flow: red/NIR rasters → NDVI COGs → STAC.

Each input is a raster with at least two bands, band 1 red and band 2
near-infrared. The flow computes ``NDVI = (NIR - red) / (NIR + red)`` per
input (one task each, mapped), writes it as a float32 Cloud-Optimized GeoTIFF
(GDAL's ``COG`` driver) named ``<input stem>_ndvi.tif`` next to the others in
the output directory, and registers all outputs with
:func:`producer.prefect.register_in_stac`. Dates come from the file names, so
keep them in the input names (``scene_20240501.tif``).

Run it on generated inputs (the demo COGs of ``stac-producer demo`` are
single-band, so ``--make-inputs`` writes small 2-band scenes instead)::

    python -m flows.ndvi demo/rednir --make-inputs 3 \\
        --output-dir demo/ndvi --catalog demo/catalog --collection ndvi
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from datetime import date, timedelta
from typing import Any
from urllib.parse import urlsplit

import numpy as np
import rasterio
from prefect import allow_failure, flow, task, unmapped
from rasterio.transform import from_origin

from producer.api import expand_paths
from producer.demo import SCENES
from producer.errors import InputError, ProducerError
from producer.prefect import register_in_stac
from producer.redact import redact
from producer.sources import GLOB_CHARS
from producer.urls import is_local, local_path, protocol

#: nodata value of the NDVI outputs (outside [-1, 1], so never a real NDVI)
NDVI_NODATA = -9999.0


def write_red_nir_inputs(dirpath: str, count: int, size: int = 64) -> list[str]:
    """Write ``count`` synthetic 2-band (red, NIR) uint16 GeoTIFFs into ``dirpath``.

    Grids are the demo scenes of :mod:`producer.demo` (UTM, polar, across the
    antimeridian), one date each in the file name (``rednir_<place>_<YYYYMMDD>.tif``).
    Existing files are kept. Returns the paths.
    """
    os.makedirs(dirpath, exist_ok=True)
    paths = []
    for i in range(count):
        name, epsg, ulx, uly, res = SCENES[i % len(SCENES)]
        day = date(2024, 5, 1) + timedelta(days=5 * i)
        path = os.path.join(dirpath, f"rednir_{name}_{day:%Y%m%d}.tif")
        paths.append(path)
        if os.path.exists(path):
            continue
        rng = np.random.default_rng(i)
        yy, xx = np.mgrid[0:size, 0:size]
        vegetation = (np.sin(xx / 9.0 + i) * np.cos(yy / 13.0) + 1.0) / 2.0  # 0..1
        red = (800 + 1200 * (1 - vegetation) + rng.normal(0, 30, (size, size))).astype("uint16")
        nir = (1500 + 3500 * vegetation + rng.normal(0, 30, (size, size))).astype("uint16")
        red[:4, :4] = 0  # nodata corner
        nir[:4, :4] = 0
        profile = {
            "driver": "GTiff",
            "width": size,
            "height": size,
            "count": 2,
            "dtype": "uint16",
            "crs": f"EPSG:{epsg}",
            "transform": from_origin(ulx, uly, res * 4, res * 4),
            "nodata": 0,
        }
        with rasterio.open(path, "w", **profile) as dst:
            dst.write(np.stack([red, nir]))
            dst.set_band_description(1, "red")
            dst.set_band_description(2, "nir")
    return paths


def _stem(path: str) -> str:
    """The file name of ``path`` without its ending; of an http(s) URL, of
    its path alone: its query (a presigned signature, a token) would name
    the output file, and so the item and its href."""
    if protocol(path) in ("http", "https"):
        path = urlsplit(path).path
    base = os.path.basename(path.rstrip("/"))
    return base.rsplit(".", 1)[0] if "." in base else base


def _run_name(parameters: dict[str, Any]) -> str:
    """``ndvi-<input>``, the input redacted: Prefect stores and shows task run
    names, and a presigned input URL's signature must not be among them."""
    return f"ndvi-{redact(str(parameters.get('src')))}"


@task(name="compute-ndvi", task_run_name=_run_name)  # type: ignore[arg-type]  # Prefect passes `parameters`
def compute_ndvi(src: str, output_dir: str) -> str:
    """Read band 1 (red) and band 2 (NIR) of ``src``; write the NDVI COG.

    Writes ``<output_dir>/<stem>_ndvi.tif`` (float32, nodata
    :data:`NDVI_NODATA` where an input pixel is nodata or NIR + red is 0;
    deflate, 256-pixel blocks, overviews). Returns its path. Raises
    :class:`~producer.errors.InputError` when ``src`` has fewer than 2 bands.
    """
    with rasterio.open(src) as ds:
        if ds.count < 2:
            raise InputError(f"{src}: NDVI needs 2 bands (red, NIR), the file has {ds.count}")
        red = ds.read(1, masked=True).astype("float32")
        nir = ds.read(2, masked=True).astype("float32")
        profile = {
            "driver": "COG",
            "width": ds.width,
            "height": ds.height,
            "count": 1,
            "dtype": "float32",
            "crs": ds.crs,
            "transform": ds.transform,
            "nodata": NDVI_NODATA,
            "compress": "deflate",
            "blocksize": 256,
        }
        tags = {k: v for k, v in ds.tags().items() if k == "TIFFTAG_DATETIME"}
    total = nir + red
    invalid = np.ma.getmaskarray(total) | (total.filled(0) == 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        ndvi = (nir - red).filled(0) / np.where(invalid, 1.0, total.filled(1))
    ndvi = np.where(invalid, NDVI_NODATA, np.clip(ndvi, -1.0, 1.0)).astype("float32")

    os.makedirs(output_dir, exist_ok=True)
    out = os.path.join(output_dir, f"{_stem(src)}_ndvi.tif")
    with rasterio.open(out, "w", **profile) as dst:
        dst.write(ndvi, 1)
        dst.set_band_description(1, "ndvi")
        if tags:
            dst.update_tags(**tags)
    return out


@flow(name="ndvi-to-stac")
def ndvi_flow(
    inputs: list[str] | str,
    output_dir: str,
    catalog: str,
    collection: str = "ndvi",
    collection_meta: dict[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """NDVI of every input raster, written as COGs and registered in STAC.

    ``inputs``: files, directories (recursive) or globs of red/NIR rasters.
    Writes the COGs into ``output_dir`` and one item per COG into
    ``collection`` of ``catalog``. Returns the registration result dicts;
    the run fails (after registering the others) if an NDVI could not be
    computed or registered.
    """
    for given in [inputs] if isinstance(inputs, str) else inputs:
        # a mistyped local folder: else it is taken for a raster, and fails as one
        if (
            is_local(given)
            and not any(c in given for c in GLOB_CHARS)
            and not os.path.exists(local_path(given))
        ):
            raise InputError(f"{given}: no such file or folder: check the inputs; nothing was written")
    sources = expand_paths(inputs)
    if not sources:
        raise InputError(f"no input rasters found in {inputs!r}")
    outputs = compute_ndvi.map(sources, output_dir=unmapped(output_dir))
    meta = collection_meta or {
        "title": "NDVI",
        "description": "Normalized difference vegetation index, (NIR - red) / (NIR + red), "
        "computed by the ndvi-to-stac flow.",
        "license": "CC-BY-4.0",
        "keywords": ["ndvi"],
    }
    # allow_failure: the NDVIs that were written are registered even if others
    # failed; each failure is then listed and fails the run.
    return register_in_stac(
        allow_failure(outputs), catalog=catalog, collection=collection, collection_meta=meta
    )


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m flows.ndvi``: run :func:`ndvi_flow` from the command line."""
    parser = argparse.ArgumentParser(prog="python -m flows.ndvi", description=__doc__.split("\n\n")[0])
    parser.add_argument("input_dir", help="directory (or glob) of 2-band red/NIR rasters")
    parser.add_argument("--output-dir", required=True, help="where the NDVI COGs are written")
    parser.add_argument("--catalog", required=True, help="catalog root (path or s3://bucket/prefix)")
    parser.add_argument("--collection", default="ndvi", help="collection id (default: ndvi)")
    parser.add_argument(
        "--make-inputs",
        type=int,
        metavar="N",
        default=0,
        help="first write N synthetic red/NIR scenes into INPUT_DIR",
    )
    args = parser.parse_args(argv)
    if args.make_inputs:
        write_red_nir_inputs(args.input_dir, args.make_inputs)
    try:
        results = ndvi_flow(args.input_dir, os.path.abspath(args.output_dir), args.catalog, args.collection)
    except ProducerError as exc:  # the run's logs hold the traceback; the shell gets the message
        print(f"error: {exc}", file=sys.stderr)
        return 2 if isinstance(exc, InputError) else 1
    for r in results:
        print(json.dumps(r))
    return 0


if __name__ == "__main__":
    sys.exit(main())

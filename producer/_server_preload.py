"""Imported by the fork server of :mod:`producer.served` before it forks any
worker: the extraction code (rasterio, imported lazily elsewhere for a fast
cold start, made each worker's first product cost ~0.3 s of CPU; 36 ms with
it here), with one BLAS thread, so that the server stays single-threaded
(numpy's OpenBLAS otherwise starts a thread per core at import: forking a
process that runs threads is what the fork server is there to avoid)."""

import os

# the server's own environment; its workers keep this one BLAS thread too
# (they take the caller's environment only after numpy is loaded)
os.environ["OPENBLAS_NUM_THREADS"] = "1"

import producer.extract.raster
import producer.ingest  # noqa: F401

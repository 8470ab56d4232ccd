# syntax=docker/dockerfile:1
# The image of the Prefect flow runs on an ECS or Kubernetes work pool (not the
# Lambda image: that is deploy/Dockerfile, which has neither Prefect nor flows/).
#
# Build from the repository root (the build context must hold pyproject.toml)
# and push it where the work pool pulls from:
#   docker build -f deploy/worker.Dockerfile -t <registry>/stac-producer-flows:<tag> .
#   docker push <registry>/stac-producer-flows:<tag>
# then give the work pool (or the deployments' job_variables) image:
# <registry>/stac-producer-flows:<tag>. The worker starts each flow run in a
# container of it with its own command; prefect.yaml's pull step cd's into
# /opt/stac-producer, where the entrypoints flows/... are.
#
# Debian (glibc 2.36): the pinned rasterio/numpy manylinux_2_28 wheels install
# as they are.
ARG PYTHON_VERSION=3.11
FROM python:${PYTHON_VERSION}-slim

WORKDIR /opt/stac-producer
COPY pyproject.toml README.md constraints.txt ./
COPY producer ./producer
COPY flows ./flows

# Wheels only for dependencies; the package is pure Python, built from the
# copied source. Extras: s3 (the catalog and data on S3), prefect (the flows),
# dask (the backfill's dask/dask_address on a Dask cluster); versions pinned
# by constraints.txt (Prefect 3.9.1, fastapi < 0.151: see docs/PREFECT.md).
RUN pip install --no-cache-dir --prefer-binary --constraint constraints.txt ".[s3,prefect,dask]" \
    && python -c "import prefect, prefect_dask, producer.prefect"

# the flows import their siblings and the package from the working directory
ENV PYTHONPATH=/opt/stac-producer \
    PYTHONUNBUFFERED=1

# not root: the flow runs only read /opt/stac-producer; Prefect keeps its
# settings and caches under the user's home
RUN useradd --create-home --uid 10001 prefect
USER prefect

"""Example and operational Prefect flows built on :mod:`producer.prefect`.

* :mod:`flows.ndvi` — an example processing flow: 2-band (red, NIR) rasters →
  NDVI COGs → registered in STAC.
* :mod:`flows.backfill` — crawl a prefix and register everything, in
  concurrent batches.
* :mod:`flows.reconcile` — audit a catalog and repair it (nightly).
* :mod:`flows.events` — register/remove the objects named in an S3 event.

Each module is self-contained (it imports only ``producer`` and Prefect), so a
deployment can load it by path (``flows/<file>.py:<flow>``, see
``deploy/prefect.yaml``).
"""

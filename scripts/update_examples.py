"""Regenerate examples/: the items stac-producer emits for each edge-case fixture.

A change in what extraction emits shows up as a diff of examples/ in review;
tests/test_examples.py fails until this script is rerun::

    .venv/bin/python scripts/update_examples.py
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

# after the path is set: the script runs from a checkout, not an install
from producer.extract import ExtractOptions, create_item  # noqa: E402
from tests import rasters  # noqa: E402

#: fixtures worth showing, one per edge case (keys of tests.rasters.write_all)
EXAMPLES = (
    "utm",
    "polar",
    "rotated",
    "dateline",
    "custom_crs",
    "multiband",
    "nodata",
    "cog",
    "gcps",
    "range",
    "netcdf",
)
#: stands in for the temporary folder the fixtures are written to
DATA_URL = "https://data.example.com/products"


#: fixtures are written here, always: GDAL's netCDF driver records the file's
#: path inside the file, so its size (file:size) depends on the folder name
DATA_DIR = Path(tempfile.gettempdir()) / "stac-producer-examples"


def build() -> dict[str, str]:
    """Return {file name: JSON text} of every example item."""
    folder = DATA_DIR
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    paths = rasters.write_all(folder)
    options = ExtractOptions(collection=None, href_rewrites=((str(folder), DATA_URL),))
    out = {}
    for key in EXAMPLES:
        item = create_item(paths[key], options)
        doc = item.to_dict(include_self_link=False, transform_hrefs=False)
        out[f"{key}.json"] = json.dumps(doc, indent=2, ensure_ascii=False) + "\n"
    return out


def main() -> None:
    target = ROOT / "examples"
    target.mkdir(exist_ok=True)
    docs = build()
    for old in target.glob("*.json"):
        if old.name not in docs:
            old.unlink()
    for name, text in docs.items():
        (target / name).write_text(text)
    print(f"wrote {len(docs)} examples to {target}")


if __name__ == "__main__":
    main()

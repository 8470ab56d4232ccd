"""``collection_meta``/``root_meta`` holding a value that is no JSON data
(a numpy scalar computed by the pipeline, a Decimal, a set) passed the
option checks, then raised a bare ``TypeError: Object of type float32 is not
JSON serializable`` in the middle of the commit: the item was written, the
root created, the collection not, and ``validate`` found an orphan. Now an
:class:`InputError` naming the field and what to give, before anything is
written."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import numpy as np
import pytest

import producer
from producer.errors import InputError
from tests import rasters


@pytest.mark.parametrize(
    ("option", "meta", "named", "way"),
    [
        ("collection_meta", {"title": "T", "gsd_mean": np.float32(10.5)}, "gsd_mean", "10.5 (value.item())"),
        ("collection_meta", {"extra": {"scale": Decimal("0.5")}}, "extra", "Decimal"),
        ("root_meta", {"title": "T", "tags": {"a", "b"}}, "tags", "set"),
    ],
)
def test_meta_that_is_no_json_is_refused_before_anything_is_written(
    tmp_path: Path, option: str, meta: dict, named: str, way: str
) -> None:
    utm = rasters.write_utm(tmp_path / "r")
    catalog = tmp_path / "stac"
    with pytest.raises(InputError) as refused:
        producer.register([utm], catalog=str(catalog), collection="c", **{option: meta})
    text = str(refused.value)
    assert repr(named) in text and way in text, text
    assert not catalog.exists()


def test_an_item_provider_that_is_no_json_names_the_provider() -> None:
    """Was a bare ``TypeError: Object of type PosixPath is not JSON serializable``."""
    with pytest.raises(InputError) as refused:
        producer.RegisterOptions(item_providers=[{"name": "ESA", "url": Path("/docs/esa")}])
    assert "'ESA'" in str(refused.value) and "PosixPath" in str(refused.value)

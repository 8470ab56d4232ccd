"""``STAC_SOFTWARE=ndvi-pipeline=1.4.2``, as the CLI's ``--software
NAME=VERSION`` reads: refused with "is not valid JSON (Expecting value:
line 1 column 1 (char 0)); give a JSON object", no example of the object
meant. The message now gives it, built from the pairs (the values of a
storage options variable left out: they may be credentials)."""

from __future__ import annotations

import pytest

from producer.errors import InputError
from producer.events import HandlerConfig

BASE = {"STAC_CATALOG": "/tmp/nowhere-cat", "STAC_COLLECTION": "c"}


def test_software_as_name_equals_version_gets_the_json_object_meant() -> None:
    with pytest.raises(InputError) as refused:
        HandlerConfig.from_env({**BASE, "STAC_SOFTWARE": "ndvi-pipeline=1.4.2,gdal=3.8.4"})
    assert """STAC_SOFTWARE='{"ndvi-pipeline": "1.4.2", "gdal": "3.8.4"}'""" in str(refused.value)


def test_storage_options_as_pairs_never_echo_the_values() -> None:
    with pytest.raises(InputError) as refused:
        HandlerConfig.from_env({**BASE, "STAC_DATA_STORAGE_OPTIONS": "key=AKIAXX,secret=S3KR1T"})
    text = str(refused.value)
    assert "STAC_DATA_STORAGE_OPTIONS" in text and '"key": "..."' in text and '"secret": "..."' in text
    assert "S3KR1T" not in text and "AKIAXX" not in text


def test_json_that_is_no_object_still_says_so() -> None:
    with pytest.raises(InputError, match="must be a JSON object"):
        HandlerConfig.from_env({**BASE, "STAC_SOFTWARE": "[1]"})

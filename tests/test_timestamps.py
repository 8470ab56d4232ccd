"""One instant, one spelling: items, bookkeeping fields and collection extents
are all formatted by producer.timestamps.format_time."""

from __future__ import annotations

import json
import random
import re
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import producer
from producer.timestamps import format_time, parse_time
from tests.rasters import write_cog

RFC3339_UTC = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{6})?Z$")


def test_format_time_spells_fractions_with_six_digits_and_utc_as_z() -> None:
    assert format_time(datetime(2024, 5, 13, 10, 0, 0, 500000, tzinfo=UTC)) == "2024-05-13T10:00:00.500000Z"
    assert (
        format_time(datetime(2024, 5, 13, 12, tzinfo=timezone(timedelta(hours=2)))) == "2024-05-13T10:00:00Z"
    )
    assert parse_time("2024-05-13T10:00:00.5Z") == datetime(2024, 5, 13, 10, 0, 0, 500000, tzinfo=UTC)


def test_item_times_and_collection_interval_spell_one_instant_the_same_way(tmp_path: Path) -> None:
    product = write_cog(tmp_path / "data")
    catalog = tmp_path / "cat"
    (result,) = producer.register(
        [str(product)], catalog=str(catalog), collection="ndvi", datetime="2024-05-13T10:00:00.5Z"
    )
    assert result.ok, result
    item_path = next((catalog / "ndvi").glob("*/*.json"))
    props = json.loads(item_path.read_text())["properties"]
    interval = json.loads((catalog / "ndvi" / "collection.json").read_text())["extent"]["temporal"][
        "interval"
    ]
    assert props["datetime"] == "2024-05-13T10:00:00.500000Z"
    assert interval[0] == [props["datetime"], props["datetime"]]  # was "...00.5Z" here
    for name in ("created", "updated"):
        assert RFC3339_UTC.match(props[name]), props[name]
        assert format_time(parse_time(props[name])) == props[name]


def test_format_time_is_pystacs_spelling() -> None:
    # the inlined steps of pystac.utils.datetime_to_str, value for value
    from pystac.utils import datetime_to_str

    rng = random.Random(7)
    for _ in range(3000):
        when = datetime(2000, 1, 1, tzinfo=UTC) + timedelta(seconds=rng.uniform(-2e9, 2e9))
        if rng.random() < 0.5:
            when = when.replace(microsecond=0)
        zone = timezone(timedelta(minutes=rng.randrange(-720, 841, 15)))
        for value in (when, when.astimezone(zone), when.astimezone(zone).replace(tzinfo=None)):
            assert format_time(value) == datetime_to_str(value.astimezone(UTC))

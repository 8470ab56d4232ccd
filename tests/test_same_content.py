"""An item whose property changes from a number to a boolean (1 → true,
0 → false) is updated, not reported unchanged with the old value kept."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import producer
from producer.commit import same_content
from tests import rasters


def doc(**props) -> dict:
    return {
        "type": "Feature",
        "id": "a",
        "properties": {"datetime": "2024-01-01T00:00:00Z", **props},
        "links": [],
    }


@pytest.mark.parametrize(
    ("old", "new"),
    [(1, True), (0, False), (1.0, True), ([1, 0], [True, False]), ({"a": 1}, {"a": True})],
)
def test_a_boolean_is_not_a_number(old, new):
    assert not same_content(doc(flag=old), doc(flag=new))
    assert not same_content(doc(flag=new), doc(flag=old))


def test_equal_documents_are_the_same():
    assert same_content(doc(flag=True, n=[1, 2.5], s="x"), doc(flag=True, n=[1, 2.5], s="x"))
    assert same_content(doc(n=1), doc(n=1.0))  # one JSON number
    assert not same_content(doc(n=1), doc(n=2))


def test_register_updates_a_number_changed_to_a_boolean(tmp_path: Path):
    product = rasters.write_utm(tmp_path / "data")
    catalog = tmp_path / "cat"
    seen = []
    for value in (1, True, 0, False):
        (result,) = producer.register(
            [product], catalog=str(catalog), collection="c", properties={"my:flag": value}
        )
        (item,) = [p for p in catalog.rglob("*.json") if p.parent.parent.name == "c"]
        stored = json.loads(item.read_text())["properties"]["my:flag"]
        seen.append((result.action, json.dumps(stored)))
    assert seen == [("created", "1"), ("updated", "true"), ("updated", "0"), ("updated", "false")]

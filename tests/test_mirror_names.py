"""Fragment names (producer.mirror._fragment_name): sorted by write time,
unique within a process, and not shared with a forked child (mr37: the
48-bit tail is drawn once per process and counted, not drawn per name)."""

from __future__ import annotations

import json
import os
import re
from datetime import UTC, datetime

import pytest

from producer import mirror

NAME = re.compile(r"^(\d{8}T\d{12})Z-([0-9a-f]{12})\.ndjson$")


def test_names_carry_the_utc_time_to_the_microsecond_and_sort_by_it() -> None:
    before = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%f")
    names = [mirror._fragment_name() for _ in range(2000)]
    after = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%f")
    assert all(NAME.match(n) for n in names), names[:3]
    assert len(set(names)) == len(names)
    assert names == sorted(names)
    assert before <= names[0][:21] and names[-1][:21] <= after


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_child_does_not_continue_its_parents_names() -> None:
    mirror._fragment_name()  # the parent's tail is drawn
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: its next tail, to the parent
        try:
            os.write(write, NAME.match(mirror._fragment_name()).group(2).encode())  # type: ignore[union-attr]
        finally:
            os._exit(0)
    os.close(write)
    child = os.read(read, 64).decode()
    os.close(read)
    os.waitpid(pid, 0)
    parent = NAME.match(mirror._fragment_name()).group(2)  # type: ignore[union-attr]
    assert len(child) == 12
    # counting on from the same draw, the two would be equal (1 in 2**48 by chance)
    assert child != parent


@pytest.mark.parametrize(
    "item_id", ["x_20240101", 'é\u2028"q\\/', "a\x7f\x00\t", "\U0001f600", " ", "with space"]
)
@pytest.mark.parametrize("updated", [None, "1969-12-31T23:59:59.5Z", "2024-05-10T12:00:00.000123Z"])
def test_a_fragments_header_is_jsons_text_whatever_the_id(item_id: str, updated: str | None) -> None:
    """The upsert's header is written without json (mr37): the same bytes
    json.dumps writes, so readers (and fragments of earlier versions) agree."""
    item = {"type": "Feature", "id": item_id, "properties": {} if updated is None else {"updated": updated}}
    data = mirror.encode_fragment({item_id: item}, {}, "here")
    header = {"stac_producer:fragment": 1, "rows": [[item_id, mirror.stamp_of(item)]], "removed": {}}
    assert data.split(b"\n")[0] == json.dumps(header, separators=(",", ":")).encode()
    other = {**item, "id": "b"}
    two = mirror.encode_fragment({item_id: item, "b": other}, {}, "here")
    header["rows"].append(["b", mirror.stamp_of(item)])
    assert two.split(b"\n")[0] == json.dumps(header, separators=(",", ":")).encode()
    info, items = mirror.ndjson_fragment("k", two, "here")
    assert info.rows == [(item_id, mirror.stamp_of(item)), ("b", mirror.stamp_of(item))] and len(items) == 2

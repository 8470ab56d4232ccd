"""One list of product file endings: folder/prefix expansion and the event
handler's default filter used to differ (the handler skipped ``.nc4``)."""

from __future__ import annotations

from pathlib import Path

from producer.events import HandlerConfig, ObjectEvent, _skip_reason
from producer.sources import PRODUCT_SUFFIXES, expand_paths


def test_an_nc4_object_event_is_handled_like_an_nc4_file_in_a_folder(tmp_path: Path) -> None:
    (tmp_path / "scene.nc4").write_bytes(b"")
    assert expand_paths([str(tmp_path)]) == [str(tmp_path / "scene.nc4")]
    config = HandlerConfig(catalog="s3://cat/stac", collection="ndvi")
    event = ObjectEvent(kind="created", bucket="data", key="in/scene.nc4")
    assert _skip_reason(event, config) is None
    assert config.suffixes == PRODUCT_SUFFIXES

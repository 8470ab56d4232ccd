"""``--href-rewrite FROM=TO`` matched FROM as a bare text prefix, so it also
rewrote products in a sibling folder or bucket whose name merely starts with
FROM's last part: with ``s3://bucket=https://bucket.example.com`` a product
of ``s3://bucket-logs`` was published as ``https://bucket.example.com-logs/...``
(another host), with ``/data/ndvi=s3://b/ndvi-cog`` one of
``/data/ndvi_archive`` as ``s3://b/ndvi-cog_archive/...``: hrefs that lead
nowhere, silently. FROM now matches whole path segments only."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import producer
from producer.errors import InputError
from producer.extract.assets import rewrite_href
from producer.options import RegisterOptions
from tests.rasters import write_tile


@pytest.mark.parametrize(
    ("location", "rule", "published"),
    [
        ("s3://bucket-logs/x.tif", ("s3://bucket", "https://bucket.example.com"), "s3://bucket-logs/x.tif"),
        (
            "s3://bucket/x.tif",
            ("s3://bucket", "https://bucket.example.com"),
            "https://bucket.example.com/x.tif",
        ),
        ("/data/ndvi_archive/x.tif", ("/data/ndvi", "s3://b/ndvi-cog"), "/data/ndvi_archive/x.tif"),
        ("/data/ndvi/x.tif", ("/data/ndvi", "s3://b/ndvi-cog"), "s3://b/ndvi-cog/x.tif"),
        ("/data/ndvi/x.tif", ("/data/ndvi/", "s3://b/ndvi-cog/"), "s3://b/ndvi-cog/x.tif"),
        ("/data/ndvi/x.tif", ("/data/ndvi/x.tif", "s3://b/one.tif"), "s3://b/one.tif"),  # the file itself
        ("s3://b/ndvi/x.tif", ("s3://", "gs://"), "gs://b/ndvi/x.tif"),  # a scheme: its own boundary
    ],
)
def test_a_rewrite_matches_whole_path_segments(location: str, rule: tuple[str, str], published: str) -> None:
    assert rewrite_href(location, (rule,)) == published


def test_register_leaves_a_sibling_folder_alone(tmp_path: Path) -> None:
    kept = write_tile(tmp_path / "ndvi_archive", "a_20240101.tif", 10, 50)
    moved = write_tile(tmp_path / "ndvi", "b_20240102.tif", 11, 50)
    catalog = tmp_path / "cat"
    results = producer.register(
        [kept, moved],
        catalog=str(catalog),
        collection="c",
        href_rewrites=[f"{tmp_path}/ndvi=https://host/ndvi-cog"],
    )
    assert [r.action for r in results] == ["created", "created"], [r.error for r in results]
    hrefs = {r.id: json.loads(Path(r.href).read_text())["assets"]["data"]["href"] for r in results if r.href}
    assert hrefs == {"a_20240101": str(kept), "b_20240102": "https://host/ndvi-cog/b_20240102.tif"}


@pytest.mark.parametrize(
    ("rule", "fixed"),
    [
        ("/data/=s3://b/x", "/data/=s3://b/x/"),  # was s3://b/xa.tif
        ("/data=s3://b/x/", "/data/=s3://b/x/"),  # was s3://b/x//a.tif
        ("/=s3://b", "/=s3://b/"),
    ],
)
def test_a_trailing_slash_on_one_side_only_is_refused_with_both(rule: str, fixed: str) -> None:
    """The file name was glued to TO's last name (``s3://b/xa.tif``) or
    doubled the slash (``s3://b/x//a.tif``): hrefs that lead nowhere."""
    with pytest.raises(InputError) as refused:
        RegisterOptions(href_rewrites=[rule])
    assert f"href_rewrites=['{fixed}']" in str(refused.value), refused.value
    assert rewrite_href("/data/a.tif", RegisterOptions(href_rewrites=[fixed]).href_rewrites).endswith(
        "/a.tif"
    )


@pytest.mark.parametrize("rule", ["/data=s3://b/x", "/data/=s3://b/x/", "s3://=gs://"])
def test_rules_with_matching_ends_are_taken(rule: str) -> None:
    assert RegisterOptions(href_rewrites=[rule]).href_rewrites == (tuple(rule.split("=", 1)),)

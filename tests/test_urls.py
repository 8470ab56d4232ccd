"""One rule for "is this location local or remote", used by every module.

Before producer/urls.py, four hand-written checks disagreed: ``api._is_url``
and ``sources.is_remote`` knew only lower-case ``file://``, the store opener
also took ``local://`` and ``FILE://``, ``file://host/x`` was a relative path
for one and an error for another.
"""

from __future__ import annotations

from pathlib import Path

import pytest

import producer
import producer.ingest
from producer import urls
from producer.errors import InputError, StoreError
from producer.extract.assets import is_url, resolve_location
from producer.sources import expand_paths, is_remote
from producer.store import LocalStore, open_store
from tests.rasters import write_cog

# location → (protocol, local?)
TABLE = [
    ("/a/b", "file", True),
    ("a/b", "file", True),
    ("C:/x", "file", True),  # a Windows drive, not a protocol
    ("file:///a", "file", True),
    ("FILE:///a", "file", True),
    ("file://localhost/a", "file", True),
    ("local:///a", "local", True),
    ("s3://b/k", "s3", False),
    ("S3://b/k", "s3", False),
    ("s3a://b/k", "s3a", False),
    ("memory://x", "memory", False),
    ("http://h/x.tif", "http", False),
    ("https://h/x.tif?sig=1", "https", False),
    ("simplecache::s3://b/k", "simplecache::s3", False),
]


@pytest.mark.parametrize(("location", "proto", "local"), TABLE)
def test_every_check_classifies_a_location_the_same_way(location: str, proto: str, local: bool) -> None:
    assert urls.protocol(location) == proto
    assert urls.is_local(location) is local
    assert urls.is_remote(location) is not local
    # the modules that used to decide on their own now agree
    assert is_remote(location) is not local
    assert is_url(location) is not local
    assert producer.ingest.is_remote(location) is not local  # what open_catalog asks


@pytest.mark.parametrize(
    ("location", "path"),
    [
        ("/a/b", "/a/b"),
        ("a/b", "a/b"),
        ("file:///a/x%20y.tif", "/a/x y.tif"),
        ("FILE:///a", "/a"),
        ("file://localhost/a", "/a"),
        ("local:///a", "/a"),
        ("file:/a/x%20y.tif", "/a/x y.tif"),  # RFC 8089: no authority, one slash
        ("FILE:/a", "/a"),
        ("local:/a", "/a"),
    ],
)
def test_local_path_of_local_locations(location: str, path: str) -> None:
    assert urls.local_path(location) == path


def test_a_file_url_with_one_slash_is_its_absolute_path_for_catalog_and_products(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``file:/abs`` (RFC 8089, no authority) was taken as the relative path
    ``./file:/abs``: the catalog was written under the working folder."""
    product = write_cog(tmp_path / "data")
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    catalog = tmp_path / "cat"
    (result,) = producer.register([f"file:{product}"], catalog=f"file:{catalog}", collection="c")
    assert result.ok, result
    assert (catalog / "c" / "collection.json").is_file()
    assert list(work.iterdir()) == []
    assert open_store(f"file:{catalog}").url == f"file://{catalog}"
    assert resolve_location(f"file:{product}") == str(product)


def test_file_url_naming_another_host_is_refused_everywhere(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="names the host 'a'; file:// URLs are local only"):
        urls.local_path("file://a/b")
    # sources read it as the relative path "a/b" before; the store refused it
    with pytest.raises(InputError, match="names the host 'a'"):
        expand_paths(["file://a/b.tif"])
    with pytest.raises(StoreError, match="another host"):
        LocalStore("file://a/b")


def test_file_url_with_credentials_never_shows_them(tmp_path: Path) -> None:
    """``file://USER:SECRET@host/x`` was refused as "names the host
    'USER:SECRET@host'": the URL was masked, the host it quoted was not."""
    for location in ("file://u:SEKRETXYZ@h/data/x.tif", "file://u:SEKRETXYZ@localhost/data/x.tif"):
        with pytest.raises(InputError) as caught:
            urls.local_path(location)
        assert "SEKRETXYZ" not in str(caught.value) and "file:// URLs are local only" in str(caught.value)
        with pytest.raises(InputError) as caught:
            expand_paths([location])
        assert "SEKRETXYZ" not in str(caught.value)
    with pytest.raises(InputError, match="carries credentials") as caught:
        producer.register(["file://u:SEKRETXYZ@h/data/x.tif"], catalog=str(tmp_path / "cat"), collection="c")
    assert "SEKRETXYZ" not in str(caught.value) and "names the host 'h'" in str(caught.value)
    assert not (tmp_path / "cat").exists()


def test_local_path_of_a_remote_location_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="not a local path"):
        urls.local_path("s3://b/k")


def test_upper_case_and_local_scheme_products_are_expanded_as_local_files(tmp_path: Path) -> None:
    product = write_cog(tmp_path / "data")
    for scheme in ("FILE://", "local://"):
        assert expand_paths([f"{scheme}{tmp_path / 'data'}"]) == [str(product)]


def test_resolve_location_reads_upper_case_and_local_file_urls() -> None:
    assert resolve_location("FILE:///data/x%20y.tif") == "/data/x y.tif"
    assert resolve_location("local:///data/x.tif") == "/data/x.tif"


def test_local_scheme_catalog_takes_no_storage_options_from_register(tmp_path: Path) -> None:
    """Storage options describe remote data; a local catalog beside it gets
    none. ``local://`` catalogs used to receive them and fail."""
    product = write_cog(tmp_path / "data")
    catalog = tmp_path / "cat"
    (result,) = producer.register(
        [str(product)], catalog=f"local://{catalog}", collection="ndvi", storage_options={"anon": True}
    )
    assert result.ok, result
    assert (catalog / "ndvi" / "collection.json").is_file()
    assert open_store(f"FILE://{catalog}").url == f"file://{catalog}"

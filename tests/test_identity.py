"""One product never takes another's item (issue 8, point 4).

An item records the product it describes in its ``data`` asset href. Two
products whose names give the same id (the same file name in two folders)
must not overwrite each other, must not make ``reconcile --fix`` flip the
item between them, and removing one must not delete the other's item.
Real rasters, a real local catalog, real threads paused at the critical
point for the race.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest
from click.testing import CliRunner

import producer
from producer.api import remove
from producer.cli import main
from producer.errors import PreconditionFailed
from producer.store import open_store
from tests import rasters
from tests.pausing import PauseAfterGet
from tests.trees import tree_hash

ITEM = "utm_20240513"
ITEM_KEY = f"ndvi/{ITEM}/{ITEM}.json"


@pytest.fixture(scope="module")
def two_folders(tmp_path_factory) -> tuple[Path, Path, Path]:
    """``data/ndvi/2024/utm_20240513.tif`` and ``data/ndvi/2025/utm_20240513.tif``:
    two products, one file name."""
    data = tmp_path_factory.mktemp("data")
    first = rasters.write_utm(data / "ndvi" / "2024")
    second = rasters.write_utm(data / "ndvi" / "2025")
    return data, first, second


def data_href(root: Path, key: str = ITEM_KEY) -> str:
    return json.loads((root / key).read_text())["assets"]["data"]["href"]


def test_same_name_in_two_folders_is_refused_naming_both(two_folders, catalog_dir):
    _, first, second = two_folders
    (created,) = producer.register([first], catalog=str(catalog_dir), collection="ndvi")
    assert created.action == "created"
    before = tree_hash(catalog_dir)

    (refused,) = producer.register([second], catalog=str(catalog_dir), collection="ndvi")
    assert refused.action == "error" and refused.error_type == "input"
    assert str(first) in refused.error and str(second) in refused.error
    assert "id_template='{parent}_{stem}'" in refused.error and "replace=True" in refused.error
    assert "--" not in refused.error  # a Python caller is not told about CLI flags
    assert tree_hash(catalog_dir) == before  # the first item is intact, nothing written
    assert data_href(catalog_dir) == str(first)

    (dry,) = producer.register([second], catalog=str(catalog_dir), collection="ndvi", dry_run=True)
    assert dry.action == "error" and str(first) in dry.error and str(second) in dry.error

    (again,) = producer.register([first], catalog=str(catalog_dir), collection="ndvi")
    assert again.action == "unchanged"  # the product that owns the id still updates as before
    (as_url,) = producer.register([f"file://{first}"], catalog=str(catalog_dir), collection="ndvi")
    assert as_url.action == "unchanged"  # another spelling of the same product is the same product


def test_same_name_in_two_folders_replace_true_replaces(two_folders, catalog_dir):
    _, first, second = two_folders
    producer.register([first], catalog=str(catalog_dir), collection="ndvi")
    created = json.loads((catalog_dir / ITEM_KEY).read_text())["properties"]["created"]
    (replaced,) = producer.register([second], catalog=str(catalog_dir), collection="ndvi", replace=True)
    assert replaced.action == "updated"
    assert data_href(catalog_dir) == str(second)
    assert json.loads((catalog_dir / ITEM_KEY).read_text())["properties"]["created"] == created
    assert producer.validate_catalog(str(catalog_dir)) == []


def test_same_name_in_two_folders_with_an_id_template_both_exist(two_folders, catalog_dir):
    _, first, second = two_folders
    results = producer.register(
        [first, second], catalog=str(catalog_dir), collection="ndvi", id_template="{parent}_{stem}"
    )
    assert [(r.id, r.action) for r in results] == [(f"2024_{ITEM}", "created"), (f"2025_{ITEM}", "created")]
    assert data_href(catalog_dir, f"ndvi/2024_{ITEM}/2024_{ITEM}.json") == str(first)
    assert data_href(catalog_dir, f"ndvi/2025_{ITEM}/2025_{ITEM}.json") == str(second)
    assert producer.validate_catalog(str(catalog_dir)) == []


def test_same_name_in_one_batch_is_still_refused(two_folders, catalog_dir):
    _, first, second = two_folders
    results = producer.register([first, second], catalog=str(catalog_dir), collection="ndvi")
    assert [r.action for r in results] == ["created", "error"]
    assert str(first) in results[1].error and "same item id" in results[1].error


def test_cli_collision_names_the_flags_and_replace_flag_replaces(two_folders, catalog_dir):
    _, first, second = two_folders
    runner = CliRunner()
    args = ["--catalog", str(catalog_dir), "--collection", "ndvi"]
    assert runner.invoke(main, ["register", str(first), *args]).exit_code == 0
    before = tree_hash(catalog_dir)
    refused = runner.invoke(main, ["register", str(second), *args])
    assert refused.exit_code == 1, refused.output
    assert str(first) in refused.output and str(second) in refused.output
    assert "--id-template '{parent}_{stem}'" in refused.output and "--replace" in refused.output
    assert "id_template=" not in refused.output and "replace=True" not in refused.output
    assert tree_hash(catalog_dir) == before

    replaced = runner.invoke(main, ["register", str(second), "--replace", *args])
    assert replaced.exit_code == 0, replaced.output
    assert "updated" in replaced.output and data_href(catalog_dir) == str(second)


def test_reconcile_fix_does_not_flip_between_two_products_with_one_id(two_folders, catalog_dir):
    """Nightly ``reconcile --fix --data`` used to register the other product
    over the item every night, flipping it. Now the collision is a failed
    registration, reported, and the catalog does not change, night after night."""
    data, first, second = two_folders
    producer.register([first], catalog=str(catalog_dir), collection="ndvi")
    before = tree_hash(catalog_dir)
    for _night in range(2):
        report = producer.reconcile(str(catalog_dir), data=str(data / "ndvi"), fix=True, collection="ndvi")
        (failed,) = report.registered
        assert not failed.ok and failed.source == str(second)
        assert str(first) in failed.error and str(second) in failed.error
        assert tree_hash(catalog_dir) == before
        assert data_href(catalog_dir) == str(first)

    # the CLI says what to do, with its own flags
    out = CliRunner().invoke(
        main, ["reconcile", str(catalog_dir), "--data", str(data / "ndvi"), "--fix", "--collection", "ndvi"]
    )
    assert f"ERROR {second}" in out.output and "--id-template '{parent}_{stem}'" in out.output
    assert tree_hash(catalog_dir) == before


def test_remove_with_product_keeps_the_item_of_another_product(two_folders, catalog_dir):
    _, first, second = two_folders
    producer.register([first], catalog=str(catalog_dir), collection="ndvi")
    before = tree_hash(catalog_dir)

    kept = remove(ITEM, catalog=str(catalog_dir), collection="ndvi", product=str(second))
    assert kept.action == "kept" and str(first) in kept.reason and str(second) in kept.reason
    assert kept.to_dict()["reason"] == kept.reason
    assert tree_hash(catalog_dir) == before

    # href rewrites are applied to the product as register applies them
    rewritten = producer.register(
        [second],
        catalog=str(catalog_dir),
        collection="other",
        href_rewrites=[f"{second.parent}=s3://bucket/ndvi/2025"],
    )
    assert rewritten[0].ok
    kept = remove(
        ITEM,
        catalog=str(catalog_dir),
        collection="other",
        product=str(first),
        href_rewrites=[f"{second.parent}=s3://bucket/ndvi/2025"],
    )
    assert kept.action == "kept"
    gone = remove(
        ITEM,
        catalog=str(catalog_dir),
        collection="other",
        product=str(second),
        href_rewrites=[f"{second.parent}=s3://bucket/ndvi/2025"],
    )
    assert gone.action == "removed" and "reason" not in gone.to_dict()

    removed = remove(ITEM, catalog=str(catalog_dir), collection="ndvi", product=str(first))
    assert removed.action == "removed" and not (catalog_dir / ITEM_KEY).exists()


class PauseBeforeItemWrite:
    """A real store that pauses the first write of ``key`` until released:
    the writer has read the item (absent) and decided what to write."""

    def __init__(self, inner, key: str) -> None:
        self.inner, self.key = inner, key
        self.url, self.concurrent_safe = inner.url, inner.concurrent_safe
        self.reached, self.release = threading.Event(), threading.Event()
        self.lost: list[str] = []

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def put(self, key, data, **kwargs):
        if key == self.key and not self.reached.is_set():
            self.reached.set()
            assert self.release.wait(30)
        try:
            return self.inner.put(key, data, **kwargs)
        except PreconditionFailed:
            self.lost.append(key)
            raise


def test_two_products_racing_for_one_id_the_loser_is_refused(two_folders, catalog_dir):
    """The identity check runs inside the item's compare-and-swap: a writer
    that read 'no item' and then lost the race to another product sees that
    product on its retry and refuses, instead of overwriting it."""
    _, first, second = two_folders
    slow = PauseBeforeItemWrite(open_store(str(catalog_dir)), ITEM_KEY)
    out: dict[str, list] = {}
    thread = threading.Thread(
        target=lambda: out.setdefault("slow", producer.register([second], catalog=slow, collection="ndvi"))
    )
    thread.start()
    assert slow.reached.wait(30)  # the slow writer is about to create the item for `second`
    (fast,) = producer.register([first], catalog=str(catalog_dir), collection="ndvi")
    assert fast.action == "created"
    slow.release.set()
    thread.join(30)
    (loser,) = out["slow"]
    assert slow.lost == [ITEM_KEY]  # its create-only write lost, and the retry saw `first`
    assert loser.action == "error" and str(first) in loser.error and str(second) in loser.error
    assert data_href(catalog_dir) == str(first)
    assert producer.validate_catalog(str(catalog_dir)) == []


def test_remove_of_one_product_racing_a_replace_by_another_keeps_the_new_item(two_folders, catalog_dir):
    """A removal event for `first` reads the item (it describes `first`),
    then `second` replaces it (replace=True) before the mark is written. The
    check runs inside the marking compare-and-swap, so the remover judges the
    new document and keeps it, instead of deleting `second`'s item."""
    _, first, second = two_folders
    producer.register([first], catalog=str(catalog_dir), collection="ndvi")
    slow = PauseAfterGet(open_store(str(catalog_dir)), ITEM_KEY)
    out: dict[str, object] = {}
    thread = threading.Thread(
        target=lambda: out.setdefault(
            "removed", remove(ITEM, catalog=slow, collection="ndvi", product=str(first))
        )
    )
    thread.start()
    assert slow.reached.wait(30)
    (replaced,) = producer.register([second], catalog=str(catalog_dir), collection="ndvi", replace=True)
    assert replaced.action == "updated"
    slow.resume.set()
    thread.join(30)
    result = out["removed"]
    assert result.action == "kept" and str(second) in result.reason
    assert data_href(catalog_dir) == str(second)
    assert producer.validate_catalog(str(catalog_dir)) == []


@pytest.mark.parametrize(
    ("a", "b", "same"),
    [
        ("s3a://bucket/k/x.tif", "s3://bucket/k/x.tif", True),
        ("S3://bucket/k/x.tif", "s3://bucket/k/x.tif", True),
        ("s3://bucket/k//x.tif", "s3://bucket/k/x.tif", False),  # two different S3 keys
        ("s3://bucket/k/x#1.tif", "s3://bucket/k/x.tif", False),
        ("file:///data/a/../x%20y.tif", "/data/x y.tif", True),
        ("/data/./x.tif", "/data/x.tif", True),
        ("https://user:pw@host/x.tif?X-Amz-Signature=aa&X-Amz-Expires=60", "https://host/x.tif", True),
        ("https://host/x.tif?AWSAccessKeyId=K&Signature=s&Expires=1&v=2", "https://host/x.tif?v=2", True),
        ("https://host/x.tif?v=1", "https://host/x.tif?v=2", False),
        ("https://host/2024/x.tif", "https://host/2025/x.tif", False),
    ],
)
def test_two_spellings_of_one_product_are_the_same_product(a: str, b: str, same: bool) -> None:
    """Identity compares normalised hrefs: a re-signed URL or another spelling
    of the same object is not a different product; a different key is."""
    from producer.commit import same_product

    assert same_product(a, b) is same


def test_an_explicit_id_to_remove_is_still_strictly_checked(catalog_dir):
    from producer.errors import UnsafeIdError

    with pytest.raises(UnsafeIdError, match="outside"):
        remove("my scene", catalog=str(catalog_dir), collection="ndvi")
    assert not catalog_dir.exists()


# --- the fix a collision offers must be one that helps ---------------------------------


@pytest.fixture()
def look_alikes(tmp_path) -> tuple[Path, Path]:
    """``a b_20240101.tif`` and ``a+b_20240101.tif`` in ONE folder: one id
    whatever the folder, since both names normalise to ``a_b_20240101``."""
    first = rasters.write_tile(tmp_path / "data", "a b_20240101.tif", 10, 50)
    second = rasters.write_tile(tmp_path / "data", "a+b_20240101.tif", 20, 50)
    return first, second


@pytest.mark.parametrize("template", [{}, {"id_template": "{parent}_{stem}"}])
def test_names_that_one_folder_cannot_tell_apart_are_told_to_rename_not_to_use_a_template(
    look_alikes, tmp_path, template
):
    """Was "Fix it with id_template='{parent}_{stem}'", which gives the two
    one id again, and the same advice once that template was in use."""
    first, second = look_alikes
    results = producer.register([first, second], catalog=str(tmp_path / "cat"), collection="c", **template)
    assert [r.action for r in results] == ["created", "error"]
    clash = results[1]
    assert clash.error_type == "input" and clash.hint is None, clash.error
    assert "id_template" not in clash.error and f"Rename {first} or {second}" in clash.error, clash.error

    flags = ["--id-template", template["id_template"]] if template else []
    out = CliRunner().invoke(
        main, ["register", str(first), str(second), "-c", str(tmp_path / "cli"), "--collection", "c", *flags],
        terminal_width=400,
    )  # fmt: skip
    assert out.exit_code == 1, out.output
    assert "Rename" in out.output and "Fix it with --id-template" not in out.output, out.output


def test_an_id_taken_by_a_look_alike_in_the_catalog_offers_replace_and_rename_only(look_alikes, tmp_path):
    first, second = look_alikes
    catalog = str(tmp_path / "cat")
    for template in ("{stem}", "{parent}_{stem}"):
        (created,) = producer.register(
            [first], catalog=catalog, collection=template[1:3], id_template=template
        )
        assert created.action == "created", created.error
        (refused,) = producer.register(
            [second], catalog=catalog, collection=template[1:3], id_template=template
        )
        assert refused.action == "error" and refused.error_type == "input"
        assert [h.option for h in refused.hints] == ["replace"], refused.error
        assert "id_template" not in refused.error and f"rename {second}" in refused.error, refused.error


@pytest.mark.parametrize("incoming", ["/data/b/ndvi_20240110.tif", "/data/ndvi_20240110.TIF"])
def test_identity_conflict_survives_pickle(incoming: str) -> None:
    """A process pool or Dask carries a worker's exception back pickled.
    Was: unpickling called ``IdentityConflict(message)`` and failed with a
    TypeError (its ``__init__`` takes four arguments), hiding the conflict."""
    import pickle

    from producer.commit import IdentityConflict

    exc = IdentityConflict("ndvi_20240110", "ndvi/ndvi_20240110", "/data/a/ndvi_20240110.tif", incoming)
    back = pickle.loads(pickle.dumps(exc))
    assert type(back) is IdentityConflict and str(back) == str(exc)
    fields = ("item_id", "where", "existing", "incoming", "hints", "fact")
    assert [getattr(back, f) for f in fields] == [getattr(exc, f) for f in fields]


def test_a_product_registered_again_without_its_href_rewrite_is_told_the_rewrite_not_to_replace(tmp_path):
    """A product registered with --href-rewrite and then again without it
    (a rerun, or the nightly reconcile --data with its rewrite left out) was
    refused as another product with the advice to rename it or --replace,
    which would overwrite the published https href with the local path:
    the way out is the rewrite the item was registered with."""
    data = tmp_path / "site" / "data"
    tif = rasters.write_utm(data)
    catalog = tmp_path / "site"
    rule = f"{data}=https://host/data"
    runner = CliRunner()
    out = runner.invoke(
        main, ["register", str(tif), "-c", str(catalog), "--collection", "c", "--href-rewrite", rule]
    )
    assert out.exit_code == 0, out.output
    item_path = next((catalog / "c").glob("*/*.json"))
    before = item_path.read_bytes()

    way = f"--href-rewrite {tmp_path / 'site'}=https://host"
    out = runner.invoke(main, ["register", str(tif), "-c", str(catalog), "--collection", "c"])
    assert out.exit_code == 1
    message = " ".join(out.output.split())
    assert way in message and "To keep both, rename" not in message, message
    assert message.index(way) < message.index("--replace")
    out = runner.invoke(main, ["reconcile", str(catalog), "--data", str(data), "--fix", "--collection", "c"])
    assert out.exit_code == 1
    assert way in " ".join(out.output.split()), out.output
    assert item_path.read_bytes() == before
    # the rewrite it offers registers the product as the same one
    (result,) = producer.register(
        [tif], catalog=str(catalog), collection="c", href_rewrites=[f"{tmp_path / 'site'}=https://host"]
    )
    assert result.action == "unchanged", result
    # two folders of one store are two products, as before: no rewrite offered
    other = rasters.write_utm(tmp_path / "other")
    (result,) = producer.register([other], catalog=str(tmp_path / "plain"), collection="c")
    (result,) = producer.register([tif], catalog=str(tmp_path / "plain"), collection="c")
    assert result.action == "error" and "href_rewrites" not in (result.error or ""), result


def test_the_rewrite_is_offered_when_the_published_path_repeats_the_local_one(tmp_path):
    """Files under ``/srv/data/...`` served as ``https://host/srv/data/...``
    (a web server whose root is ``/``): every folder of the local path is
    in the URL too, and no rewrite was offered (the old advice, rename or
    --replace, came back). The rewrite keeps the first folder:
    ``/srv=https://host/srv``, which registers the product as the same one."""
    from producer.commit import rewrite_between

    assert rewrite_between("/srv/data/ndvi/x.tif", "https://host/srv/data/ndvi/x.tif") == (
        "/srv=https://host/srv"
    )
    assert rewrite_between("/x.tif", "https://host/x.tif") is None  # no folder left to map
    data = tmp_path / "data"
    tif = rasters.write_utm(data)
    published = f"https://host{tif}"  # the same path below the server's root
    rule = f"{tmp_path}=https://host{tmp_path}"
    catalog = tmp_path / "site"
    (first,) = producer.register([tif], catalog=str(catalog), collection="c", href_rewrites=[rule])
    assert first.action == "created", first.error
    assert first.item["assets"]["data"]["href"] == published
    (again,) = producer.register([tif], catalog=str(catalog), collection="c")
    assert again.action == "error"
    top = str(tif).split("/")[1]
    offered = f"/{top}=https://host/{top}"
    assert offered in (again.error or ""), again.error
    (result,) = producer.register([tif], catalog=str(catalog), collection="c", href_rewrites=[offered])
    assert result.action == "unchanged", result

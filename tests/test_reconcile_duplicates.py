"""A product registered under two ids in one collection (e.g. a second run
with another id template): two items, both valid STAC, and ``search``
returns the product twice. ``reconcile --data`` maps the products to the
items anyway: it now names each such pair, as a warning with the fix.
"""

from __future__ import annotations

import json

from click.testing import CliRunner

import producer
from producer.cli import main
from producer.store.local import LocalStore
from tests.crashes import write_tile

IDS = ("p0_20240310", "p1_20240311")


def _registered_twice(tmp_path):
    data = tmp_path / "data"
    for n, stem in enumerate(IDS):
        write_tile(data, f"{stem}.tif", 10.0 + n, 50.0)
    catalog = str(tmp_path / "cat")
    producer.register([str(data)], catalog=catalog, collection="t")
    producer.register([str(data)], catalog=catalog, collection="t", id_template="{collection}_{stem}")
    return data, catalog


def test_reconcile_data_names_both_items_of_a_product_registered_under_two_ids(tmp_path):
    """Before: ``reconcile --data`` found nothing (0 missing), exit 0 and no
    word, while ``search`` returned 4 items for 2 products."""
    data, catalog = _registered_twice(tmp_path)
    report = producer.reconcile(catalog, data=str(data))
    dups = sorted((p for p in report.problems if p.kind == "duplicate-product"), key=lambda p: p.key)
    assert [(p.key, p.target) for p in dups] == [(f"t/t_{i}/t_{i}.json", f"t/{i}/{i}.json") for i in IDS], [
        str(p) for p in report.problems
    ]
    assert all(not p.is_error for p in dups)
    message = dups[0].message
    assert f"'t_{IDS[0]}'" in message and f"'{IDS[0]}'" in message and f"{IDS[0]}.tif" in message
    assert "remove" in message
    assert report.found["duplicate-product"] == 2

    # kept in what a fix leaves (it cannot choose), and the run still passes
    fixed = producer.reconcile(catalog, data=str(data), fix=True, collection="t")
    assert sorted(p.key for p in fixed.remaining if p.kind == "duplicate-product") == [p.key for p in dups]
    assert not [p for p in fixed.remaining if p.is_error]

    # the CLI shows them as warnings, exit 0, and never advises --fix for them
    out = CliRunner().invoke(main, ["reconcile", catalog, "--data", str(data)])
    assert out.exit_code == 0, out.output
    assert out.output.count("warning ") == 2 and "[duplicate-product]" in out.output
    assert "rerun with --fix" not in out.output
    as_json = json.loads(
        CliRunner().invoke(main, ["reconcile", catalog, "--data", str(data), "--json"]).output
    )
    assert [p["severity"] for p in as_json["remaining"]] == ["warning", "warning"]

    # removing one item of a pair clears its warning
    assert producer.remove(f"t_{IDS[0]}", catalog=catalog, collection="t").action == "removed"
    left = producer.reconcile(catalog, data=str(data)).problems
    assert [p.key for p in left if p.kind == "duplicate-product"] == [f"t/t_{IDS[1]}/t_{IDS[1]}.json"]


def test_one_product_in_two_collections_or_linked_once_is_no_duplicate(tmp_path):
    """The same product in two collections is a choice, not a slip; a
    product with one item is no duplicate, whatever its id."""
    data = tmp_path / "data"
    write_tile(data, f"{IDS[0]}.tif", 10.0, 50.0)
    store = LocalStore(str(tmp_path / "cat"))
    producer.register([str(data)], catalog=store, collection="a")
    producer.register([str(data)], catalog=store, collection="b", id_template="{collection}_{stem}")
    report = producer.reconcile(store, data=str(data))
    assert [str(p) for p in report.problems if p.kind != "missing-product"] == []


def test_products_on_s3_registered_twice_into_an_s3_catalog_are_named(s3_server, tmp_path):
    """The same with products and catalog in a bucket (asset hrefs are
    ``s3://`` URLs, listed from a prefix)."""
    bucket = s3_server.new_bucket()
    for n, stem in enumerate(IDS):
        path = write_tile(tmp_path / "data", f"{stem}.tif", 10.0 + n, 50.0)
        s3_server.client().put_object(Bucket=bucket, Key=f"data/{path.name}", Body=path.read_bytes())
    data, catalog = f"s3://{bucket}/data/", f"s3://{bucket}/stac"
    options = s3_server.storage_options
    producer.register([data], catalog=catalog, collection="t", storage_options=options)
    producer.register(
        [data], catalog=catalog, collection="t", storage_options=options, id_template="{collection}_{stem}"
    )
    report = producer.reconcile(catalog, data=data, storage_options=options)
    assert sorted(p.key for p in report.problems if p.kind == "duplicate-product") == [
        f"t/t_{i}/t_{i}.json" for i in IDS
    ], [str(p) for p in report.problems]
    assert not [p for p in report.problems if p.is_error]


def test_a_file_shared_as_an_asset_of_several_multi_asset_items_is_no_duplicate(tmp_path):
    """Multi-asset items may share a file (a land mask beside each day's
    NDVI, mapped in by ``register_item``): before, ``reconcile --data``
    called every such pair a product registered under two ids and advised
    removing one, which loses that day's data. Items made of the same
    products are still named."""
    data = tmp_path / "data"
    mask = write_tile(data, "landmask.tif", 10.0, 50.0)
    days = {f"d_2024030{n}": write_tile(data / f"d{n}", f"ndvi_2024030{n}.tif", 10.0, 50.0) for n in (1, 2)}
    catalog = str(tmp_path / "cat")
    for item_id, ndvi in days.items():
        results = producer.register_item(
            assets={"ndvi": str(ndvi), "mask": str(mask)}, item_id=item_id, catalog=catalog, collection="c"
        )
        assert all(r.error is None for r in results)
    report = producer.reconcile(catalog, data=str(data))
    assert [str(p) for p in report.problems] == []
    assert report.found.get("duplicate-product", 0) == 0

    # the same two products under a second id: that is a duplicate
    first = days["d_20240301"]
    producer.register_item(
        assets={"ndvi": str(first), "mask": str(mask)},
        item_id="again_20240301",
        catalog=catalog,
        collection="c",
    )
    dups = [p for p in producer.reconcile(catalog, data=str(data)).problems if p.kind == "duplicate-product"]
    assert [{p.key, p.target} for p in dups] == [
        {"c/d_20240301/d_20240301.json", "c/again_20240301/again_20240301.json"}
    ], [str(p) for p in dups]


def test_an_item_twice_under_one_id_is_a_duplicate_id_alone(tmp_path):
    """A move to another period killed between linking the new item and
    removing the old leaves one id in two partitions: a ``duplicate-id``,
    which ``--fix`` resolves. ``--data`` also called it a duplicate-product
    ("remove one ... reconcile cannot choose"), and kept that warning in what
    the fix left, for a pair the fix had just made one item."""
    data = tmp_path / "data"
    first = write_tile(data, "x_20240310.tif", 10.0, 50.0)
    write_tile(data, "y_20240402.tif", 10.0, 50.0)
    store = LocalStore(str(tmp_path / "cat"))
    assert all(
        r.ok for r in producer.register([str(data)], catalog=store, collection="c", partition="year/month")
    )
    moved = json.loads(store.get("c/2024/03/x_20240310/x_20240310.json")[0])
    moved["properties"]["datetime"] = "2024-04-02T00:00:00Z"
    store.put("c/2024/04/x_20240310/x_20240310.json", json.dumps(moved).encode())
    april = json.loads(store.get("c/2024/04/catalog.json")[0])
    april["links"].append(
        {"rel": "item", "href": "./x_20240310/x_20240310.json", "type": "application/geo+json"}
    )
    store.put("c/2024/04/catalog.json", json.dumps(april).encode())

    found = producer.reconcile(store, data=str(data)).problems
    assert [p.kind for p in found if p.kind.startswith("duplicate")] == ["duplicate-id"], [
        str(p) for p in found
    ]
    fixed = producer.reconcile(store, data=str(data), fix=True, collection="c")
    assert fixed.fixed.get("duplicate-id") == 1
    # (March, left empty by the fix, is an empty-partition warning)
    assert [p.kind for p in fixed.remaining] == ["empty-partition"], [str(p) for p in fixed.remaining]
    assert first.exists()

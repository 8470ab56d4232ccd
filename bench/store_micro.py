"""Per-call CPU of LocalStore.put / get / _read / exists / list / the lock on
one folder (and a create-only put that makes its own folder, as a new item) (tmpfs by default), durability "os" (as n0_cpu's warm upsert).

    PYTHONPATH=$PWD python bench/store_micro.py --work-dir /dev/shm/lp35-micro --calls 5000
"""

from __future__ import annotations

import argparse
import shutil
import time
from pathlib import Path

from producer.store.local import LocalStore


def _cpu() -> float:
    return time.thread_time()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--work-dir", default="/dev/shm/store-micro")
    ap.add_argument("--calls", type=int, default=5000)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    work = Path(args.work_dir)
    shutil.rmtree(work, ignore_errors=True)
    store = LocalStore(str(work), durability="os")
    doc = b'{"type": "Feature", "id": "x"}' * 60
    key = "coll/items/a/a.json"
    parent = "coll/collection.json"
    store.put(key, doc)
    version = store.put(parent, doc)
    n = args.calls
    results: dict[str, list[float]] = {}

    def run(name: str, fn) -> None:  # type: ignore[no-untyped-def]
        t0 = _cpu()
        for i in range(n):
            fn(i)
        results.setdefault(name, []).append((_cpu() - t0) / n * 1e6)

    for _ in range(args.rounds):
        run("put (item folder, plain)", lambda i: store.put(key, doc))

        def cas(i: int) -> None:
            nonlocal version
            version = store.put(parent, doc + b" " * (i % 2), if_version=version)

        run("put if_version (collection)", cas)

        def create(i: int) -> None:
            store.put(f"coll/items/n{i}.json", doc, create_only=True)

        run("put create_only (new file, existing folder)", create)

        def create_folder(i: int) -> None:  # a new item: its own folder made by the write
            store.put(f"coll/new/n{i}/n{i}.json", doc, create_only=True)

        run("put create_only (new file, new folder)", create_folder)
        shutil.rmtree(work / "coll" / "new", ignore_errors=True)
        shutil.rmtree(work / "coll" / "items", ignore_errors=True)
        store.put(key, doc)
        run("get", lambda i: store.get(key))
        run("_read (+_path)", lambda i: store._read(key, store._path(key)))
        run("exists", lambda i: store.exists(key))

        def lock(i: int) -> None:
            with store._locked():
                pass

        run("_locked (empty)", lock)
        run("list (1 file)", lambda i: list(store.list("coll/items/a")))
        run("list (missing folder)", lambda i: list(store.list("coll/intents/x")))
    for name, vals in results.items():
        print(f"{name:48s} " + " ".join(f"{v:7.1f}" for v in vals) + " us")


if __name__ == "__main__":
    main()

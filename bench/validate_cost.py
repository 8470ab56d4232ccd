"""Warm per-document validation time of a real item and collection, with
jsonschema-rs (the default from the ``RUST_AFTER``-th document of a process)
and without (fastjsonschema's compiled checks, as before vr35), alternating
in one process; medians in microseconds.

    PYTHONPATH=. python bench/validate_cost.py [--calls 3000] [--rounds 5]

The documents are what the tool writes: one bench COG registered into a
fresh copy of the N = 0 seed (bench/common.py) under ``--work-dir``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import common as c


def _documents(work: Path) -> dict[str, dict[str, Any]]:
    import producer

    c.WORK_DIR = work
    work.mkdir(parents=True, exist_ok=True)
    seed = c.seed_local(None, 0, log=lambda _: None)
    c.ensure_cogs(1, log=lambda _: None)
    root = work / "validate-cost"
    if root.exists():
        shutil.rmtree(root)
    shutil.copytree(seed, root)
    (result,) = producer.register([str(c.cog_path(0))], catalog=str(root), collection=c.COLLECTION)
    if not result.ok:
        raise RuntimeError(result.error)
    item = json.loads(next(root.rglob(f"{result.item['id']}.json")).read_text())
    collection = json.loads((root / c.COLLECTION / "collection.json").read_text())
    shutil.rmtree(root)
    return {"item": item, "collection": collection}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--work-dir", type=Path, default=Path("/dev/shm/validate-cost"))
    args = parser.parse_args(argv)
    from producer import validate

    docs = _documents(args.work_dir)
    validator = validate.default_validator()
    sides = {"fastjsonschema (before)": 10**18, "jsonschema-rs (after)": 0}
    times: dict[tuple[str, str], list[float]] = {}
    for _ in range(args.rounds):
        for side, after in sides.items():
            validate.RUST_AFTER = after
            for name, doc in docs.items():
                if validator.errors(doc):
                    raise RuntimeError(f"{name} not valid")
                for _ in range(200):
                    validator.errors(doc)
                samples = times.setdefault((side, name), [])
                for _ in range(args.calls):
                    t0 = time.perf_counter()
                    validator.errors(doc)
                    samples.append(time.perf_counter() - t0)
    rows = [
        [side, *(f"{statistics.median(times[side, name]) * 1e6:.1f} us" for name in docs)] for side in sides
    ]
    print(c.table(["validation, warm (median)", *docs], rows))
    print(f"load average: {Path('/proc/loadavg').read_text().strip()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

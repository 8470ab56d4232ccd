"""Thread CPU per call of LocalStore's methods inside warm upserts at N = 0
(tmpfs, bare seed, durability "os"), as bench/n0_cpu.py runs them.

    PYTHONPATH=$PWD python bench/store_in_upsert.py --repeats 200 --work-dir /dev/shm/lp35-siu
"""

from __future__ import annotations

import argparse
import functools
import os
import shutil
import sys
import time
from collections import defaultdict
from pathlib import Path

sys.path.append(str(Path(__file__).resolve().parents[1]))  # PYTHONPATH first: a base tree too

from bench import common as c
from bench.upsert import OURS_COGS, POOL


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=200)
    ap.add_argument("--work-dir", type=Path, default=Path("/dev/shm/store-in-upsert"))
    args = ap.parse_args()
    import producer
    from producer.store import local

    args.work_dir.mkdir(parents=True, exist_ok=True)
    c.WORK_DIR = args.work_dir.resolve()
    seed = c.seed_local(None, 0, log=lambda _: None)
    c.ensure_cogs(POOL, log=lambda _: None)
    cogs = [str(c.cog_path(x)) for x in OURS_COGS]
    spent: dict[str, float] = defaultdict(float)
    calls: dict[str, int] = defaultdict(int)
    depth = [0]

    def wrap(name: str, fn):  # type: ignore[no-untyped-def]
        @functools.wraps(fn)
        def inner(*a, **k):  # type: ignore[no-untyped-def]
            if depth[0]:
                return fn(*a, **k)
            depth[0] += 1
            t0 = time.thread_time()
            try:
                out = fn(*a, **k)
                if name == "list":
                    out = iter(list(out))
                return out
            finally:
                spent[name] += time.thread_time() - t0
                calls[name] += 1
                depth[0] -= 1

        return inner

    for name in ("put", "get", "_read", "list", "exists", "delete", "__init__"):
        setattr(local.LocalStore, name, wrap(name, getattr(local.LocalStore, name)))
    roots = [args.work_dir / f"siu-{os.getpid()}-{i}" for i in range(args.repeats + 1)]
    for r in roots:
        shutil.rmtree(r, ignore_errors=True)
        shutil.copytree(seed, r)
    producer.register([cogs[0]], catalog=str(roots[0]), collection=c.COLLECTION, durability="os")
    spent.clear()
    calls.clear()
    t0 = time.thread_time()
    for i, r in enumerate(roots[1:]):
        producer.register([cogs[i % len(cogs)]], catalog=str(r), collection=c.COLLECTION, durability="os")
    total = time.thread_time() - t0
    n = args.repeats
    print(f"load {Path('/proc/loadavg').read_text().split()[:3]}; upsert {total / n * 1e6:.0f} us CPU")
    for name in sorted(spent, key=lambda k: -spent[k]):
        print(
            f"{name:10s} {calls[name] / n:5.1f} calls/upsert {spent[name] / calls[name] * 1e6:7.1f} us/call "
            f"{spent[name] / n * 1e6:7.1f} us/upsert"
        )
    for r in roots:
        shutil.rmtree(r, ignore_errors=True)


if __name__ == "__main__":
    main()

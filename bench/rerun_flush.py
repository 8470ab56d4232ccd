"""A local re-run that finds a few new products while another process has
unsynced writes on the same file system: what the batch's durability costs.

    .venv/bin/python bench/rerun_flush.py [--products 100] [--new 4] [--dirty-mb 512] [--repeats 3]

Each repeat registers ``products - new`` COGs into a fresh catalog, syncs,
writes ``dirty-mb`` MB to a scratch file without syncing it (another
process's writes), then times ``register`` of all ``products`` (the re-run:
``new`` of them are created). A batch that flushes the whole file system
(``syncfs``) pays for writing the other process's data; one that fsyncs
its own few files does not. Prints one table row; run it in alternating
processes from two trees to compare them (the same location: the file
system matters).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import common as c


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--products", type=int, default=100)
    parser.add_argument("--new", type=int, default=4)
    parser.add_argument("--dirty-mb", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    if not 0 < args.new <= args.products:
        parser.error("--new must be between 1 and --products")
    import producer

    cogs = [str(p) for p in c.ensure_cogs(args.products, lambda _: None)[: args.products]]
    root = c.WORK_DIR / f"rerun-{os.getpid()}"
    blob = c.WORK_DIR / f"dirty-{os.getpid()}.bin"
    chunk = os.urandom(1 << 20)
    load_before = Path("/proc/loadavg").read_text().split()[0]
    times = []
    for _ in range(args.repeats):
        if root.exists():
            shutil.rmtree(root)
        first = producer.register(cogs[: -args.new], catalog=str(root), collection=c.COLLECTION)
        if not all(r.ok for r in first):
            raise RuntimeError(f"first run: {[r.error for r in first if not r.ok][:2]}")
        os.sync()
        with open(blob, "wb") as f:  # another process's writes, not synced
            for _ in range(args.dirty_mb):
                f.write(chunk)
        t0 = time.perf_counter()
        results = producer.register(cogs, catalog=str(root), collection=c.COLLECTION)
        times.append(time.perf_counter() - t0)
        created = [r.action for r in results].count("created")
        if created != args.new or not all(r.ok for r in results):
            raise RuntimeError(f"re-run created {created} of {args.new} new products")
        blob.unlink()
        os.sync()
    shutil.rmtree(root)
    load_after = Path("/proc/loadavg").read_text().split()[0]
    print(
        c.table(
            [
                "products (new)",
                "dirty MB elsewhere",
                "re-run wall (median)",
                "runs (ms)",
                "load before / after",
            ],
            [
                [
                    f"{args.products} ({args.new})",
                    args.dirty_mb,
                    f"{c.median(times) * 1e3:.0f} ms",
                    " ".join(f"{t * 1e3:.0f}" for t in times),
                    f"{load_before} / {load_after}",
                ]
            ],
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

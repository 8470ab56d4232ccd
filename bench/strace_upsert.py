"""One warm upsert at N = 0 between two marker ``stat`` calls, for counting
its system calls (``durability="os"``, bare seed, like ``n0_cpu.py``)::

    PYTHONPATH=$PWD strace -f -o /tmp/up.strace python bench/strace_upsert.py /dev/shm/strace-up
    awk '/MARK_START_STRACE_UPSERT/{on=1;next} /MARK_END_STRACE_UPSERT/{on=0} on' /tmp/up.strace \\
        | grep -oE '^([0-9]+ +)?[a-z_0-9]+\\(' | sed -E 's/^[0-9]+ +//; s/\\($//' | sort | uniq -c | sort -rn

Three registrations warm the process up (imports, schemas, GDAL, the
store's per-process temp name tag) into their own copies of the seed; the
fourth, into a fresh copy, is the one between the markers.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import common as c
from bench.upsert import OURS_COGS, POOL


def main() -> None:
    import producer

    work = Path(sys.argv[1] if len(sys.argv) > 1 else "/dev/shm/strace-upsert")
    work.mkdir(parents=True, exist_ok=True)
    c.WORK_DIR = work.resolve()
    seed = c.seed_local(None, 0, log=lambda _: None)
    c.ensure_cogs(POOL, log=lambda _: None)
    cogs = [str(c.cog_path(cog)) for cog in OURS_COGS]

    def fresh(name: str) -> Path:
        target = c.WORK_DIR / f"strace-{name}"
        shutil.rmtree(target, ignore_errors=True)
        shutil.copytree(seed, target)
        return target

    for i in range(3):
        producer.register([cogs[i]], catalog=str(fresh(f"warm{i}")), collection=c.COLLECTION, durability="os")
    root = fresh("measured")
    with contextlib.suppress(OSError):
        os.stat("/MARK_START_STRACE_UPSERT")
    (result,) = producer.register([cogs[3]], catalog=str(root), collection=c.COLLECTION, durability="os")
    with contextlib.suppress(OSError):
        os.stat("/MARK_END_STRACE_UPSERT")
    if result.action != "created":
        raise SystemExit(f"upsert gave {result.action}: {result.error}")


if __name__ == "__main__":
    main()

"""Warm upsert at N = 0: ours (``durability="os"``) against the pystac
tutorial way, interleaved in one process, wall and CPU medians.

    .venv/bin/python bench/n0_cpu.py [--repeats 60]

Each side registers one COG into its own fresh copy of an N = 0 seed
(copies made and synced before timing; the order rotates per repeat). Two
seeds, both by default, interleaved in the one run (one row each): ``bare``,
a hand-written collection, into which our first register also sets up the
mirror (its base file and asset, the fragments folder, the recorded layout),
and ``emptied``, a collection our tool managed and emptied again (what a
collection holds at N = 0 once the tool has written to it).
CPU time (``time.process_time``: user + system of this process) is less
disturbed by other processes than wall time on a loaded machine; its user
and system parts (``getrusage``, means: the split is sampled per tick) show
where a difference lies (system: file creations, folders, renames). Prints
one table row per seed; run it in alternating processes to compare two
trees (in the same location: the file system path changed the timings here).
Last, it counts the files and folders one upsert creates on each side (new
inodes: a new name, or a name a new file was renamed over), which is what
the kernel time difference is made of on a disk file system.

Creating a file is what ours does more of (temp files, the mirror's
fragment), and on this machine's ext4 its cost depends on the folder: the
same disk gave 30 us per creation under /tmp and 180-530 us under
``.bench/work``. The script measures it where the catalogs are
(``--work-dir``, default ``.bench/work``) and prints it beside the row.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import common as c
from bench.upsert import OURS_COGS, POOL, TUTORIAL_COGS, _tutorial


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=60)
    parser.add_argument(
        "--seed",
        choices=("bare", "emptied", "both"),
        default="both",
        help="bare: the hand-written root + collection of bench/common.py (our first register into it also "
        "sets up the mirror: base file, asset, fragments folder); emptied: what our tool leaves in a "
        "collection whose items were all removed (mirror asset and empty base; the fragments folder stays, "
        "holding a released compaction lease: it went with its last fragment before mr37), made by "
        "registering, removing and compacting one item; both (default): "
        "the two, interleaved in one run, one row each",
    )
    parser.add_argument(
        "--work-dir",
        type=Path,
        default=None,
        help="where the catalog copies are made (default: .bench/work); the file creation cost "
        "there is measured and printed",
    )
    args = parser.parse_args(argv)
    import producer

    if args.work_dir is not None:
        args.work_dir.mkdir(parents=True, exist_ok=True)
        c.WORK_DIR = args.work_dir.resolve()

    bare = c.seed_local(None, 0, log=lambda _: None)
    c.ensure_cogs(POOL, log=lambda _: None)
    ours_cogs, tutorial_cogs = list(OURS_COGS), list(TUTORIAL_COGS)
    kinds = ("bare", "emptied") if args.seed == "both" else (args.seed,)
    seeds = {
        kind: bare if kind == "bare" else _emptied(bare, str(c.cog_path(ours_cogs[0]))) for kind in kinds
    }

    def fresh(seed: Path, name: str) -> Path:
        target = c.WORK_DIR / f"n0cpu-{os.getpid()}-{name}"
        if target.exists():
            shutil.rmtree(target)
        shutil.copytree(seed, target)
        return target

    def ours(i: int, root: Path) -> None:
        cog = str(c.cog_path(ours_cogs[i % len(ours_cogs)]))
        (result,) = producer.register([cog], catalog=str(root), collection=c.COLLECTION, durability="os")
        if result.action != "created":
            raise RuntimeError(f"upsert of {cog} gave {result.action}: {result.error}")

    def tutorial(i: int, root: Path) -> None:
        _tutorial(str(root), str(c.cog_path(tutorial_cogs[i % len(tutorial_cogs)])))

    # one side per (seed, way), all interleaved: a change of machine load hits them alike
    sides = {(kind, way): fn for kind in kinds for way, fn in (("ours", ours), ("tutorial", tutorial))}
    for (kind, _way), side in sides.items():  # warm-up: imports, schemas, GDAL
        warm = fresh(seeds[kind], "warm")
        side(0, warm)
        shutil.rmtree(warm)
    roots = [{s: fresh(seeds[s[0]], f"{s[0]}-{s[1]}{i}") for s in sides} for i in range(args.repeats)]
    os.sync()
    load_before = Path("/proc/loadavg").read_text().strip()
    wall: dict[tuple[str, str], list[float]] = {s: [] for s in sides}
    cpu: dict[tuple[str, str], list[float]] = {s: [] for s in sides}
    user = dict.fromkeys(sides, 0.0)
    system = dict.fromkeys(sides, 0.0)
    names = list(sides)
    for i in range(args.repeats):
        shift = i % len(names)  # the order rotates per repeat
        for name in names[shift:] + names[:shift]:
            r0 = resource.getrusage(resource.RUSAGE_SELF)
            t0, p0 = time.perf_counter(), time.process_time()
            sides[name](i, roots[i][name])
            cpu[name].append(time.process_time() - p0)
            wall[name].append(time.perf_counter() - t0)
            r1 = resource.getrusage(resource.RUSAGE_SELF)
            user[name] += r1.ru_utime - r0.ru_utime
            system[name] += r1.ru_stime - r0.ru_stime
    load_after = Path("/proc/loadavg").read_text().strip()
    created = []  # counted once per side, after the timed runs
    for kind in kinds:
        counts = []
        for way in ("ours", "tutorial"):
            root = fresh(seeds[kind], f"count-{kind}-{way}")
            before = _inodes(root)
            sides[(kind, way)](1, root)
            files, folders = _new_inodes(before, _inodes(root))
            counts.append(f"{way} {files} files + {folders} folders")
            shutil.rmtree(root)
        created.append(f"new inodes per upsert at the {kind} seed: {'; '.join(counts)}")
    for kind, seed in seeds.items():
        if kind == "emptied":
            shutil.rmtree(seed)
    for pair in roots:
        for root in pair.values():
            shutil.rmtree(root)
    w = {s: statistics.median(v) for s, v in wall.items()}
    p = {s: statistics.median(v) for s, v in cpu.items()}
    n = args.repeats
    rows = []
    for kind in kinds:
        o, t = (kind, "ours"), (kind, "tutorial")
        rows.append(
            [
                kind,
                f"{w[o] * 1e3:.2f} / {p[o] * 1e3:.2f} ms",
                f"{w[t] * 1e3:.2f} / {p[t] * 1e3:.2f} ms",
                f"{w[t] / w[o]:.2f}×",
                f"{p[t] / p[o]:.2f}×",
                f"{user[o] / n * 1e3:.1f} / {system[o] / n * 1e3:.1f} ms",
                f"{user[t] / n * 1e3:.1f} / {system[t] / n * 1e3:.1f} ms",
                n,
            ]
        )
    print(
        c.table(
            [
                "seed",
                "ours os: wall / CPU",
                "tutorial: wall / CPU",
                "tutorial / ours (wall)",
                "tutorial / ours (CPU)",
                "ours: user / sys (mean)",
                "tutorial: user / sys (mean)",
                "repeats",
            ],
            rows,
        )
    )
    print(f"load average before: {load_before}; after: {load_after}")
    print(f"creating a file in {c.WORK_DIR}: {_creation_us(c.WORK_DIR):.0f} us (median of 200)")
    print("\n".join(created))
    return 0


def _inodes(root: Path) -> dict[str, tuple[int, bool]]:
    """Every path below ``root`` (relative) with its inode number and
    whether it is a folder."""
    out = {}
    for folder, dirs, files in os.walk(root):
        for name in dirs + files:
            path = os.path.join(folder, name)
            st = os.lstat(path)
            out[os.path.relpath(path, root)] = (st.st_ino, name in dirs)
    return out


def _new_inodes(before: dict[str, tuple[int, bool]], after: dict[str, tuple[int, bool]]) -> tuple[int, int]:
    """Files and folders an upsert created (a new inode: a new name, or a
    name renamed over by a new file), from :func:`_inodes` before and after.
    What a file system does per creation (allocate an inode, journal it) is
    what a write in place (``O_TRUNC``, as pystac writes) does not pay."""
    files = folders = 0
    for path, (inode, is_folder) in after.items():
        if before.get(path, (None,))[0] != inode:
            folders += is_folder
            files += not is_folder
    return files, folders


def _creation_us(folder: Path, n: int = 200) -> float:
    """Median microseconds to create (O_CREAT | O_EXCL) an empty file in a
    new subfolder of ``folder``: the file system cost ours pays more often."""
    probe = folder / f"creation-{os.getpid()}"
    probe.mkdir()
    times = []
    try:
        for i in range(n):
            t0 = time.perf_counter()
            fd = os.open(probe / f"f{i}", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            times.append(time.perf_counter() - t0)
            os.close(fd)
    finally:
        shutil.rmtree(probe)
    return statistics.median(times) * 1e6


_EMPTY_IT = """
import sys
import producer
from producer import mirror
from producer.store import open_store

root, cog, collection = sys.argv[1:]
(result,) = producer.register([cog], catalog=root, collection=collection)
assert result.ok, result.error
assert producer.remove(result.item["id"], catalog=root, collection=collection).action == "removed"
mirror.compact(open_store(root), f"{collection}/items.parquet")
"""


def _emptied(bare: Path, cog: str) -> Path:
    """A copy of the bare N = 0 seed into which our tool registered one item
    and removed it again, its mirror compacted: what a collection emptied by
    the tool holds. Made in a child process (compaction imports pyarrow,
    which the timed process should not hold)."""
    import subprocess

    target = c.WORK_DIR / f"n0cpu-{os.getpid()}-emptied-seed"
    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(bare, target)
    tree = str(Path(__file__).resolve().parents[1])  # this tree's producer, like the timed process
    env = {**os.environ, "PYTHONPATH": tree}
    subprocess.run([sys.executable, "-c", _EMPTY_IT, str(target), cog, c.COLLECTION], check=True, env=env)
    return target


if __name__ == "__main__":
    raise SystemExit(main())

"""Reconcile in bounded memory (issue 12, point 7): peak RSS and wall time of
``producer.reconcile`` of a ``year/month`` collection of N items.

    python bench/reconcile_memory.py --quick              # N = 300, 1.2k; prints only (CI smoke)
    python bench/reconcile_memory.py                      # N = 5k, 20k, 80k; writes BENCHMARKS.md
    python bench/reconcile_memory.py --before 8aa9954     # also the code of that commit, side by side

Each catalog is written directly (:func:`bench.common.seed_documents`: the
documents the project's own layout and link helpers give, the exact extent;
no mirror files, no id index), then ``reconcile`` runs in a fresh child
process, first checking only (it finds the mirror and the index missing), then
fixing (it writes the id index of every item and the mirror). The child's
peak RSS is its own ``ru_maxrss`` (``os.wait4``), imports included: a
bounded reconcile keeps it flat as N grows. ``--before REF`` runs the same
on the ``producer`` package of commit REF (``git archive``), for the ratio.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import common as c

SECTION = "reconcile-memory"
_CHILD = (
    "import json, sys, time\n"
    "import producer\n"
    "t0 = time.perf_counter()\n"
    "report = producer.reconcile(sys.argv[1], fix=sys.argv[2] == 'fix')\n"
    "print(json.dumps({'seconds': time.perf_counter() - t0, 'found': report.found,"
    " 'left': len([p for p in report.remaining if p.is_error])}))\n"
)


def log(msg: str) -> None:
    print(msg, flush=True)


def _load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.1f} / {five:.1f} / {fifteen:.1f}"


def build(root: Path, n: int, per_month: int | None = None) -> float:
    """Write an N-item ``year/month`` catalog under ``root``; seconds taken.
    ``per_month``: items per month (months follow each other from the seed's
    start), so every partition has the same size whatever N; None: the
    seed's fixed ten years (partitions grow with N)."""
    if root.exists():
        shutil.rmtree(root)
    if per_month is not None:
        step = timedelta(days=28) / per_month  # every month gets ``per_month`` items
        c._seed_time = lambda i, _n: c.SEED_START + step * i  # type: ignore[assignment]
    t0 = time.perf_counter()
    for key, data in c.seed_documents("year/month", n):
        path = root / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return time.perf_counter() - t0


def run_child(code_dir: Path, catalog: Path, mode: str) -> dict[str, Any]:
    """``reconcile`` of ``catalog`` in a fresh process running the
    ``producer`` package under ``code_dir``; its result, wall time and peak RSS."""
    env = {**os.environ, "PYTHONPATH": str(code_dir)}
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-c", _CHILD, str(catalog), mode],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        cwd=str(code_dir),
    )
    assert proc.stdout is not None and proc.stderr is not None
    out, err = proc.stdout.read(), proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"reconcile failed ({proc.returncode}): {err.decode()[-2000:]}")
    result = json.loads(out.decode().strip().splitlines()[-1])
    result["wall"] = wall
    result["peak_mb"] = usage.ru_maxrss / 1024  # kilobytes on Linux
    return result


def before_tree(ref: str) -> Path:
    """The ``producer`` package of commit ``ref``, extracted under .bench."""
    dest = c.WORK_DIR / f"reconmem-before-{ref}"
    if not (dest / "producer").exists():
        dest.mkdir(parents=True, exist_ok=True)
        archive = subprocess.run(
            ["git", "archive", ref, "producer"], cwd=c.REPO, check=True, capture_output=True
        )
        subprocess.run(["tar", "-x", "-C", str(dest)], input=archive.stdout, check=True)
    return dest


def run(ns: list[int], before: str | None, per_month: int | None = None) -> str:
    codes: list[tuple[str, Path]] = [("this branch", c.REPO)]
    if before:
        codes.insert(0, (f"before ({before})", before_tree(before)))
    load_start = _load()
    results: dict[tuple[str, int, str], dict[str, Any]] = {}
    for name, code_dir in codes:
        for n in ns:
            catalog = c.WORK_DIR / f"reconmem-{n}"
            seconds = build(catalog, n, per_month)
            log(f"{name}: built {n:,} items in {seconds:.1f} s (load {_load()})")
            for mode in ("check", "fix"):
                r = run_child(code_dir, catalog, mode)
                results[(name, n, mode)] = r
                log(
                    f"  {mode}: {r['seconds']:.1f} s, peak RSS {r['peak_mb']:.0f} MB, "
                    f"found {r['found']}, errors left {r['left']} (load {_load()})"
                )
            shutil.rmtree(catalog)
    rows = []
    for name, _ in codes:
        for mode in ("check", "fix"):
            first = results[(name, ns[0], mode)]
            for n in ns:
                r = results[(name, n, mode)]
                per_item = r["seconds"] / n * 1000
                rows.append(
                    [
                        name,
                        "fix" if mode == "fix" else "check only",
                        f"{n:,}",
                        c.fmt_s(r["seconds"]),
                        f"{per_item:.2f} ms",
                        f"{per_item / (first['seconds'] / ns[0] * 1000):.2f}",
                        f"{r['peak_mb']:.0f} MB",
                        f"{r['peak_mb'] / first['peak_mb']:.2f}",
                    ]
                )
    head = (
        f"`bench/reconcile_memory.py` ({c.machine_note()}; load average 1/5/15 min {load_start} "
        f"at the start, {_load()} at the end).\n\n"
        "`producer.reconcile` of a `year/month` collection (max 2,000 links per partition; "
        + (f"{per_month} items per month" if per_month else "N items over ten years")
        + ") in a "
        "fresh process; the catalog written directly (no mirror, no id index: the check finds "
        "them missing, the fix writes the index entry of every item and the mirror). Peak RSS is "
        "the child's `ru_maxrss`, imports included; ratios to the smallest N of the same row group.\n\n"
    )
    return head + c.table(
        [
            "code",
            "reconcile",
            "items",
            "time",
            "per item",
            "per item / smallest N",
            "peak RSS",
            "RSS / smallest N",
        ],
        rows,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="N = 300, 1.2k; print only (CI smoke)")
    parser.add_argument("--n", type=int, nargs="+", help="the collection sizes (default 5k, 20k, 80k)")
    parser.add_argument("--before", help="also run the producer package of this git commit")
    parser.add_argument(
        "--per-month", type=int, help="items per month partition (default: N spread over ten years)"
    )
    args = parser.parse_args(argv)
    ns = args.n or ([300, 1200] if args.quick else [5000, 20000, 80000])
    body = run(sorted(ns), args.before, args.per_month)
    print(body)
    if not args.quick:
        c.write_section(SECTION, "## Reconcile memory (point 7)\n\n" + body)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

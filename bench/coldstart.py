"""Cold start: fresh Python processes running one CLI call or the Lambda
handler's first invocation; medians of wall and CPU time.

    python bench/coldstart.py --quick      # 3 processes per command, prints only
    python bench/coldstart.py              # 9 per command, writes BENCHMARKS.md
    python bench/coldstart.py --quick --against main   # this tree and main, interleaved

``--against REV`` exports the tree of git revision REV (``git archive``, into
``.bench/``) and runs every command from it too, alternating with this tree
in the same rounds, so the ratios come from one run under the same load.

Commands: ``stac-producer --help``; ``stac-producer register one.tif``
into a fresh local catalog (every process its own); the Lambda entry point
(``deploy/lambda_handler.py``) imported and handed one S3 ObjectCreated
event (a COG on the moto server, run in its own process; catalog on S3).
CPU time (user + system of the child) is printed beside wall time because
other engineers' tests share this machine's 2 cores: wall time follows the
load, CPU time much less. The biggest imports of ``--help``, ``register``
and the Lambda event (``python -X importtime``, cumulative, top level)
follow the table, then where the import time of one ``register`` goes, by
owner (self times summed: interpreter start-up, stdlib, click, pystac,
rasterio + numpy, the mirror's pyarrow/pandas/stac-geoparquet, the
producer's own modules). Writes only under ``.bench/`` and into the moto
server.

Bytecode: every process runs with ``PYTHONPYCACHEPREFIX=.bench/pycache`` and
without ``PYTHONDONTWRITEBYTECODE``, so that the warm-up process writes the
``.pyc`` files an installed package has (pip compiles them at install) and
the timed ones read them; the row "register, no .pyc" shows what a start
costs when they cannot be written (a read-only Lambda package shipped
without them compiles every module of the producer on every cold start).
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import common as c

LAMBDA = (
    "import sys; sys.path.insert(0, 'deploy'); import lambda_handler; "
    "r = lambda_handler.handler({'Records': [{'eventSource': 'aws:s3', 'eventName': 'ObjectCreated:Put', "
    "'s3': {'bucket': {'name': sys.argv[1]}, 'object': {'key': sys.argv[2]}}}]}); "
    "assert r['registered'] and not r['failed'], r"
)
HELP = "stac-producer --help"
REGISTER = "stac-producer register one.tif (local catalog)"
HANDLER = "Lambda handler: import + one S3 event (moto; catalog on S3)"
REGISTER_NO_PYC = "stac-producer register one.tif, no .pyc (compiled at every start)"
TARGETS = {HELP: 0.100, REGISTER: 0.300}
PYCACHE = c.BENCH_DIR / "pycache"

#: owners of the import time of one register (top-level package -> owner);
#: the rest is the standard library or "other third-party"
OWNERS = {
    "producer": "producer (own modules)",
    "click": "click",
    "pystac": "pystac",
    "rasterio": "rasterio + numpy (+ affine, attrs)",
    "numpy": "rasterio + numpy (+ affine, attrs)",
    "affine": "rasterio + numpy (+ affine, attrs)",
    "attr": "rasterio + numpy (+ affine, attrs)",
    "attrs": "rasterio + numpy (+ affine, attrs)",
    **dict.fromkeys(
        [
            "pyarrow",
            "pandas",
            "stac_geoparquet",
            "geopandas",
            "pyproj",
            "shapely",
            "psutil",
            "dateutil",
            "pytz",
            "six",
            "cloudpickle",
            "packaging",
            "tzdata",
        ],
        "mirror: pyarrow/pandas/stac-geoparquet (+ pyproj, shapely)",
    ),
    "fsspec": "fsspec",
    "urllib3": "urllib3",
}


def _env(extra: dict[str, str] | None = None, pyc: bool = True, tree: Path = c.REPO) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("AWS_", "STAC_", "OPENBLAS_"))
        and k not in ("PYTHONDONTWRITEBYTECODE", "PYTHONPYCACHEPREFIX")
    }
    env["PYTHONPATH"] = str(tree)
    # each tree its own compiled-check cache, warmed by the warm-up round
    env["STAC_PRODUCER_CACHE_DIR"] = str(c.BENCH_DIR / f"validators-{tree.name}")
    if pyc:
        env["PYTHONPYCACHEPREFIX"] = str(PYCACHE)
    else:
        env["PYTHONDONTWRITEBYTECODE"] = "1"
    env.update(extra or {})
    return env


def run(
    args: list[str], extra: dict[str, str] | None = None, pyc: bool = True, tree: Path = c.REPO
) -> tuple[float, float]:
    """(wall seconds, child CPU seconds) of one fresh process running ``tree``'s code."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run(args, cwd=tree, env=_env(extra, pyc, tree), capture_output=True, text=True)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise RuntimeError(f"{args} exited {proc.returncode}: {proc.stderr[-2000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def import_times(args: list[str], extra: dict[str, str] | None = None) -> list[tuple[str, int, float, float]]:
    """``-X importtime`` of one run of ``args``: (module, depth, self ms, cumulative ms)."""
    proc = subprocess.run(
        [args[0], "-X", "importtime", *args[1:]], cwd=c.REPO, env=_env(extra), capture_output=True, text=True
    )
    rows = []
    for line in proc.stderr.splitlines():
        m = re.match(r"import time:\s+(\d+) \|\s+(\d+) \|( *)(\S+)", line)
        if m:
            rows.append((m.group(4), len(m.group(3)) // 2, int(m.group(1)) / 1000, int(m.group(2)) / 1000))
    return rows


def top_imports(rows: list[tuple[str, int, float, float]], n: int = 8) -> str:
    """The ``n`` largest imports by cumulative time, top level only, as text."""
    top = sorted((r for r in rows if r[1] == 0), key=lambda r: -r[3])[:n]
    return ", ".join(f"{name} {cum:.0f} ms" for name, _, _, cum in top)


def by_owner(rows: list[tuple[str, int, float, float]]) -> list[list[str]]:
    """Self import time summed by owner (see :data:`OWNERS`), largest first."""
    totals: dict[str, float] = {}
    for name, _, self_ms, _ in rows:
        top = name.split(".")[0]
        if top in OWNERS:
            owner = OWNERS[top]
        elif top in sys.stdlib_module_names or top.startswith("_") or top in ("encodings", "site"):
            owner = "standard library (site, encodings, json, logging, dataclasses, ...)"
        else:
            owner = "other third-party"
        totals[owner] = totals.get(owner, 0.0) + self_ms
    out = [[owner, f"{ms:.0f} ms"] for owner, ms in sorted(totals.items(), key=lambda kv: -kv[1])]
    return out + [["all imports", f"{sum(totals.values()):.0f} ms"]]


def export_tree(rev: str) -> Path:
    """The files of git revision ``rev`` under ``.bench/`` (``git archive``:
    no worktree is registered), exported afresh each run."""
    sha = subprocess.run(
        ["git", "rev-parse", "--short", rev], cwd=c.REPO, capture_output=True, text=True, check=True
    ).stdout.strip()
    dest = c.BENCH_DIR / f"tree-{sha}"
    shutil.rmtree(dest, ignore_errors=True)
    dest.mkdir(parents=True)
    archive = subprocess.run(["git", "archive", sha], cwd=c.REPO, capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(dest)], input=archive, check=True)
    return dest


def _ms(seconds: float) -> str:
    return f"{1000 * seconds:.0f} ms"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="3 processes per command, print only")
    parser.add_argument("-n", type=int, help="processes per command")
    parser.add_argument("--against", metavar="REV", help="also run git revision REV, interleaved (ratios)")
    args = parser.parse_args(argv)
    n = args.n or (3 if args.quick else 9)
    trees = {"this tree": c.REPO}
    if args.against:
        trees[args.against] = export_tree(args.against)
    cog = c.ensure_cogs(1, print)[0]
    one = c.fresh_work_dir("coldstart") / "one_20240513.tif"
    shutil.copyfile(cog, one)
    counter = iter(range(10**6))

    def register() -> list[str]:
        where = one.parent / f"cat-{next(counter)}"
        return [c.PY, "-m", "producer.cli", "register", str(one), "-c", str(where), "--collection", "c"]

    with c.S3Process() as s3:
        key = "data/one_20240513.tif"
        s3.client().put_object(Bucket=s3.bucket, Key=key, Body=one.read_bytes())
        aws = {
            "AWS_ENDPOINT_URL": s3.endpoint_url,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
            "STAC_COLLECTION": "c",
        }

        def lambda_env() -> dict[str, str]:
            return {**aws, "STAC_CATALOG": s3.url(f"lambda-{next(counter)}")}

        commands: dict[str, tuple[Callable[[], list[str]], Callable[[], dict[str, str]]]] = {
            HELP: (lambda: [c.PY, "-m", "producer.cli", "--help"], dict),
            REGISTER: (register, dict),
            REGISTER_NO_PYC: (register, dict),
            HANDLER: (lambda: [c.PY, "-c", LAMBDA, s3.bucket, key], lambda_env),
        }
        load_before = os.getloadavg()[0]
        for tree in trees.values():  # warm the OS page cache (not a cold *disk*), the .pyc and the checks
            for make, env in commands.values():
                run(make(), env(), tree=tree)
        samples: dict[tuple[str, str], list[tuple[float, float]]] = {
            (name, label): [] for name in commands for label in trees
        }
        for _ in range(n):  # interleaved: load changes hit every command and tree alike
            for name, (make, env) in commands.items():
                for label, tree in trees.items():
                    samples[name, label].append(run(make(), env(), pyc=name != REGISTER_NO_PYC, tree=tree))
        load_after = os.getloadavg()[0]
        help_imports = import_times([c.PY, "-m", "producer.cli", "--help"])
        lambda_imports = import_times([c.PY, "-c", LAMBDA, s3.bucket, key], lambda_env())
    baseline = [run([c.PY, "-c", "pass"]) for _ in range(n)]

    def medians(name: str, label: str) -> tuple[float, float]:
        got = samples[name, label]
        return c.median([x[0] for x in got]), c.median([x[1] for x in got])

    rows = []
    for name in commands:
        wall, cpu = medians(name, "this tree")
        target = TARGETS.get(name)
        row = [name, _ms(wall), _ms(cpu)]
        if args.against:
            other_wall, other_cpu = medians(name, args.against)
            row += [_ms(other_wall), _ms(other_cpu), f"{wall / other_wall:.2f}x", f"{cpu / other_cpu:.2f}x"]
        row += [
            f"≤ {1000 * target:.0f} ms" if target else "",
            ("met" if wall <= target else "not met") if target else "",
        ]
        rows.append(row)
    base_wall = c.median([b[0] for b in baseline])
    base_cpu = c.median([b[1] for b in baseline])
    pad = ["", "", "", ""] if args.against else []
    rows.append(["python -c pass (the interpreter alone)", _ms(base_wall), _ms(base_cpu), *pad, "", ""])
    headers = ["fresh process", "wall (median)", "CPU (median)"]
    if args.against:
        headers += [
            f"{args.against} wall",
            f"{args.against} CPU",
            f"wall vs {args.against}",
            f"CPU vs {args.against}",
        ]
    table = c.table([*headers, "target", "wall vs target"], rows)
    register_imports = import_times(register())
    imp = (
        "Largest imports (`-X importtime`, cumulative, top level, one run each; importtime's own "
        f"overhead included):\n\n- `--help`: {top_imports(help_imports)}\n"
        f"- `register`: {top_imports(register_imports)}\n"
        f"- Lambda event: {top_imports(lambda_imports)}\n\n"
        "Where the import time of one `register` goes (self times summed by owner):\n\n"
        + c.table(["owner", "self time"], by_owner(register_imports))
    )
    versus = f", alternating with {args.against} in the same rounds" if args.against else ""
    note = (
        f"{c.machine_note()}; {n} processes per command{versus}, medians; load average (1 min) "
        f"{load_before:.1f} before, {load_after:.1f} after (other engineers' tests share the 2 cores)"
    )
    body = f"{note}\n\n{table}\n\n{imp}"
    print(body)
    if not args.quick:
        c.write_section("coldstart", body)
    shutil.rmtree(one.parent, ignore_errors=True)
    for tree in trees.values():
        if tree != c.REPO:
            shutil.rmtree(tree, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

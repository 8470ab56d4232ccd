"""What describing a large NetCDF-4 on S3 costs, fetched whole against read
by ranges (``producer.extract.datacube.RANGED_ABOVE``).

    PYTHONPATH=$PWD python bench/netcdf_ranged.py [--mb 200] [--pairs 3] [--delay-ms 30] [--stats]

A NetCDF-4 of one float32 variable of noise (``--mb`` MB, chunks of 500 x
1000, incompressible) on small 1-D lat/lon, written once under
``.bench/work/netcdf_ranged``, uploaded to a local moto S3 behind a latency
proxy (``--delay-ms`` per request, as real S3 answers) and the tests' fault
proxy (which counts the bytes of GET answers). Each run describes it
(:func:`producer.extract.create_item`) in a fresh process, after a warm-up
on a small file through the same path (imports excluded), and reports the
wall time and CPU of that call, the GET requests and bytes it made, and the
process's peak RSS growth over the call (``VmHWM`` after - before, on
top of ~``base`` MB after the warm-up).
``whole`` sets the threshold above the file (the way before); ``ranged``
leaves it as shipped. Runs alternate, ``--pairs`` of each.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

_CHILD = """
import json, os, sys, time
import producer.extract.datacube as datacube
from producer.extract import ExtractOptions, create_item

small, url, options, threshold, stats = json.loads(sys.argv[1])
saved = datacube.RANGED_ABOVE
datacube.RANGED_ABOVE = 0 if threshold is None else threshold
create_item(small, ExtractOptions(storage_options=options))  # warm-up: imports, the S3 client
datacube.RANGED_ABOVE = saved if threshold is None else threshold
def hwm():  # peak RSS of this process, kB (ru_maxrss keeps the parent's across fork and exec)
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))


before = hwm()
wall, cpu = time.perf_counter(), time.process_time()
create_item(url, ExtractOptions(storage_options=options, stats=stats))
wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
after = hwm()
print(json.dumps({"wall": wall, "cpu": cpu, "rss_mb": (after - before) / 1024, "base_mb": before / 1024}))
"""


def _write(path: Path, megabytes: int) -> Path:
    from tests import cubes

    if path.exists():
        return path
    cols = 10000
    rows = max(500, megabytes * 1_000_000 // (4 * cols) // 500 * 500)
    path.parent.mkdir(parents=True, exist_ok=True)
    return cubes.write_noise_t2m(path, rows, cols)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mb", type=int, default=200)
    parser.add_argument("--pairs", type=int, default=3)
    parser.add_argument("--delay-ms", type=float, default=30.0)
    parser.add_argument("--stats", action="store_true", help="with statistics: every value is read")
    args = parser.parse_args()

    from bench.latproxy import LatencyProxy
    from tests import cubes
    from tests.faultproxy import FaultProxy
    from tests.s3server import moto_s3

    work = ROOT / ".bench" / "work" / "netcdf_ranged"
    big = _write(work / f"t2m_{args.mb}mb.nc", args.mb)
    small = cubes.write_two_variables(work / "small")
    size = big.stat().st_size
    print(
        f"file {size / 1e6:.1f} MB, delay {args.delay_ms:g} ms per request, stats {args.stats}, "
        f"load {os.getloadavg()}"
    )
    with moto_s3() as s3:
        bucket = s3.new_bucket()
        client = s3.client()
        client.put_object(Bucket=bucket, Key=big.name, Body=big.read_bytes())
        client.put_object(Bucket=bucket, Key=small.name, Body=small.read_bytes())
        with (
            LatencyProxy(s3.endpoint_url, delay=args.delay_ms / 1000) as slow,
            FaultProxy(slow.endpoint_url) as counter,
        ):
            options = {
                **s3.storage_options,
                "client_kwargs": {
                    **s3.storage_options["client_kwargs"],
                    "endpoint_url": counter.endpoint_url,
                },
            }
            rows = []
            for pair in range(args.pairs):
                for mode in ("whole", "ranged"):
                    threshold = 1 << 40 if mode == "whole" else None
                    counter.get_bytes.clear()
                    counter.get_ranges.clear()
                    done = subprocess.run(
                        [
                            sys.executable,
                            "-c",
                            _CHILD,
                            json.dumps(
                                [
                                    f"s3://{bucket}/{small.name}",
                                    f"s3://{bucket}/{big.name}",
                                    options,
                                    threshold,
                                    args.stats,
                                ]
                            ),
                        ],
                        capture_output=True,
                        text=True,
                        cwd=ROOT,
                        env={**os.environ, "PYTHONPATH": str(ROOT)},
                        check=True,
                    )
                    out = json.loads(done.stdout.strip().splitlines()[-1])
                    key = f"/{bucket}/{big.name}"
                    gets = sum(1 for p, _ in counter.get_ranges if p == key)
                    fetched = counter.get_bytes.get(key, 0)
                    rows.append(
                        (
                            pair + 1,
                            mode,
                            out["wall"],
                            out["cpu"],
                            gets,
                            fetched,
                            out["rss_mb"],
                            out["base_mb"],
                        )
                    )
                    print(
                        f"pair {pair + 1} {mode:6s} wall {out['wall']:.2f} s, cpu {out['cpu']:.2f} s, "
                        f"{gets} GETs, {fetched / 1e6:.1f} MB, peak RSS +{out['rss_mb']:.0f} MB over {out['base_mb']:.0f}",
                        flush=True,
                    )
    print("\n| pair | path | wall s | CPU s | GETs | MB fetched | peak RSS growth MB (over) |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: |")
    for pair, mode, wall, cpu, gets, fetched, rss, base in rows:
        print(
            f"| {pair} | {mode} | {wall:.2f} | {cpu:.2f} | {gets} | {fetched / 1e6:.1f} | {rss:.0f} ({base:.0f}) |"
        )


if __name__ == "__main__":
    main()

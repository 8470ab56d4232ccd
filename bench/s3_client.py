"""CPU per S3 request of the catalog store's two clients: s3fs + botocore
(the default) and obstore (``STAC_S3_CLIENT=obstore``).

    .venv/bin/python bench/s3_client.py [--requests 300] [--rounds 5]
    .venv/bin/python bench/s3_client.py --quick     # smoke (CI): 20 requests, 1 round

The moto server runs in a process of its own (``bench.common.S3Process``),
so ``time.process_time`` of this process is the client's CPU only (the
server's is printed apart). Each round times every request kind on both
clients in turn (the order alternates per round), against the same
objects: a create-only PUT of a 2 KB document, a GET, a HEAD (``exists``),
a conditional PUT (``If-Match``) and a LIST of a 20-object folder. Medians
over the rounds; the ratio is of the same round's numbers. Prints a table
(BENCHMARKS.md, "the S3 client").
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import common as c

DOC = b'{"type": "Feature", "properties": {}}' + b" " * 2000


def _kinds(store: Any, tag: str, n: int) -> dict[str, Any]:
    """Per request kind, a function of the request's index."""
    versions: dict[str, str] = {}
    store.put(f"{tag}/cas.json", DOC)
    versions["cas"] = store.get(f"{tag}/cas.json")[1]
    for i in range(20):
        store.put(f"{tag}/folder/{i}.json", DOC)

    def cas(i: int) -> None:
        versions["cas"] = store.put(f"{tag}/cas.json", DOC, if_version=versions["cas"])

    return {
        "PUT create-only": lambda i: store.put(f"{tag}/new/{uuid.uuid4().hex}.json", DOC, create_only=True),
        "GET": lambda i: store.get(f"{tag}/cas.json"),
        "HEAD": lambda i: store.exists(f"{tag}/cas.json"),
        "PUT If-Match": cas,
        "LIST (20 keys)": lambda i: list(store.list(f"{tag}/folder/")),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=300, help="requests per kind per round")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--quick", action="store_true", help="20 requests per kind, one round (smoke)")
    args = ap.parse_args(argv)
    if args.quick:
        args.requests, args.rounds = 20, 1
    from producer.store.s3 import S3Store
    from producer.store.s3_obstore import ObstoreS3Store

    print(f"run on {c.machine_note()}", flush=True)
    s3 = c.S3Process()
    try:
        url = s3.url(f"client-{uuid.uuid4().hex[:8]}")
        clients = {
            "s3fs": S3Store(url, s3.storage_options),
            "obstore": ObstoreS3Store(url, s3.storage_options),
        }
        kinds = {name: _kinds(store, name, args.requests) for name, store in clients.items()}
        for name in clients:  # warm-up: connections, lazy imports
            for fn in kinds[name].values():
                fn(0)
        cpu: dict[tuple[str, str], list[float]] = {}
        server: dict[str, list[float]] = {name: [] for name in clients}
        load_before = Path("/proc/loadavg").read_text().split()[:3]
        for r in range(args.rounds):
            for name in clients if r % 2 == 0 else list(clients)[::-1]:
                s0 = s3.cpu_seconds()
                for kind, fn in kinds[name].items():
                    p0 = time.process_time()
                    for i in range(args.requests):
                        fn(i)
                    cpu.setdefault((name, kind), []).append((time.process_time() - p0) / args.requests)
                server[name].append((s3.cpu_seconds() - s0) / (args.requests * len(kinds[name])))
        load_after = Path("/proc/loadavg").read_text().split()[:3]
    finally:
        s3.close()
    rows = []
    for kind in kinds["s3fs"]:
        a = [x * 1e3 for x in cpu[("s3fs", kind)]]
        b = [x * 1e3 for x in cpu[("obstore", kind)]]
        ratios = [x / y for x, y in zip(a, b, strict=True)]
        rows.append(
            [
                kind,
                f"{statistics.median(a):.2f} ms",
                f"{statistics.median(b):.2f} ms",
                f"{statistics.median(ratios):.1f}×",
            ]
        )
    rows.append(
        [
            "moto server, per request (all kinds)",
            f"{statistics.median(server['s3fs']) * 1e3:.2f} ms",
            f"{statistics.median(server['obstore']) * 1e3:.2f} ms",
            "",
        ]
    )
    print(c.table(["request", "s3fs + botocore: client CPU", "obstore: client CPU", "s3fs / obstore"], rows))
    print(
        f"{args.rounds} rounds x {args.requests} requests per kind and client; load average "
        f"{' '.join(load_before)} -> {' '.join(load_after)}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

#!/usr/bin/env bash
# Every throughput benchmark's quick mode (issue 12), one after the other; run
# by .ci/run after the tests. It proves the benchmarks still run against the
# current code (each checks the catalogs it writes: valid, every item linked
# once) and prints their tables. Quick-mode numbers are smoke, not
# measurements: BENCHMARKS.md holds the full runs. Usage:
#   bash bench/quick.sh [python]
set -euo pipefail
cd "$(dirname "$0")/.."
py="${1:-.venv/bin/python}"
for bench in upsert batch coldstart concurrency s3cost s3_client mirror_write reconcile_memory million; do
    echo "== bench/$bench.py --quick"
    start=$(date +%s)
    "$py" "bench/$bench.py" --quick
    echo "== bench/$bench.py --quick: $(($(date +%s) - start)) s"
done

#!/usr/bin/env bash
# Every benchmark's quick mode, one after the other (not yet wired into
# .ci/run): proves the benchmarks still run against the current code and prints
# their tables. Quick-mode numbers are smoke, not measurements: BENCHMARKS.md
# holds the full runs. Usage: bash bench/quick.sh [python]
set -euo pipefail
cd "$(dirname "$0")/.."
py="${1:-.venv/bin/python}"
for bench in upsert batch coldstart concurrency; do
    echo "== bench/$bench.py --quick"
    "$py" "bench/$bench.py" --quick
done

#!/usr/bin/env bash
# Delivery procedures on real files (docs/benchmarks.md, "Procedures"): for BASE → TARGET,
# the full size, `zstd -19` of the target, and each step alone with its time, output size
# and peak RSS (one process per step, so the peak is that step's), then 1000 per-device
# encryptions of one delta.
#   bash bench/procedures.sh BASE TARGET [DEVICES]
set -euo pipefail
cd "$(dirname "$0")/.."
BASE=$1 TARGET=$2 DEVICES=${3:-1000}
cargo build --locked --quiet --example procedure_bench
BENCH=target/debug/examples/procedure_bench
KEY=00000000-0000-0000-0000-000000000001
echo "full: $(stat -c %s "$TARGET") bytes"
start=$(date +%s.%N)
size=$(zstd -19 -T1 -c "$TARGET" | wc -c)
echo "zstd -19 -T1: $size bytes in $(echo "$(date +%s.%N) - $start" | bc) s"
for steps in \
    '[{"type":"delta"}]' \
    '[{"type":"delta","level":9}]' \
    '[{"type":"compress","level":19,"long":true}]' \
    '[{"type":"compress","level":3}]' \
    '[{"type":"compress","algorithm":"gzip"}]' \
    '[{"type":"encrypt"}]' \
    "[{\"type\":\"sign\",\"key\":\"$KEY\"}]"; do
    echo "== $steps"
    "$BENCH" "$steps" "$BASE" "$TARGET"
done
echo "== delta, then $DEVICES per-device encryptions of it"
"$BENCH" '[{"type":"delta","level":9},{"type":"encrypt"}]' "$BASE" "$TARGET" --devices "$DEVICES"

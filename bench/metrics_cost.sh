#!/usr/bin/env bash
# What request ids and metrics cost the hawkBit DDI poll: the poll of bench/ddi.sh (a valid
# TargetToken, a random device, no open action) against two release builds, BASE (before;
# default: the merge-base with main) and HEAD, alternating in the same run.
#
#   bash bench/metrics_cost.sh
#   BASE=f3b68d7 ROUNDS=3 DURATION=10 DEVICES=2000 bash bench/metrics_cost.sh
#   BASE=570265a BEFORE_BIN=/tmp/dh-before AFTER_BIN=target/release/devicehub bash bench/metrics_cost.sh
#
# Needs wrk. Prints a Markdown table (copy it into docs/benchmarks.md).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BASE=${BASE:-$(git -C "$ROOT" merge-base HEAD main)}
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-10}
CONNS=${CONNS:-64}
DEVICES=${DEVICES:-2000}
PORT=${PORT:-18484}
TOKEN=dh_bench_token_0123456789abcdefghijklmnopq
WORK=$(mktemp -d /tmp/devicehub-metrics-bench.XXXXXX)
SETUP="$ROOT/bench/ddi_setup.py"

cleanup() {
    [ -n "${DH_PID:-}" ] && kill "$DH_PID" 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT
command -v wrk >/dev/null || { echo "bench: wrk is missing (apt-get install wrk)" >&2; exit 1; }

if [ -n "${BEFORE_BIN:-}" ] && [ -n "${AFTER_BIN:-}" ]; then
    # binaries built elsewhere (e.g. a worktree of BASE sharing target/)
    cp "$BEFORE_BIN" "$WORK/before"
    cp "$AFTER_BIN" "$WORK/after"
else
    echo "== building HEAD and $BASE (release)" >&2
    (cd "$ROOT" && cargo build --release --locked --quiet --bin devicehub)
    cp "$ROOT/target/release/devicehub" "$WORK/after"
    mkdir -p "$WORK/base-src"
    git -C "$ROOT" archive "$BASE" | tar -x -C "$WORK/base-src"
    (cd "$WORK/base-src" && CARGO_TARGET_DIR="$ROOT/target" cargo build --release --locked --quiet --bin devicehub)
    cp "$ROOT/target/release/devicehub" "$WORK/before"
fi

wait_http() {
    for _ in $(seq 1 300); do curl -s -o /dev/null "$1" && return; sleep 0.1; done
    echo "bench: $1 did not answer" >&2; exit 1
}

start() { # binary name
    DEVICEHUB_DATA_DIR="$WORK/data-$1" DEVICEHUB_LISTEN="127.0.0.1:$PORT" DEVICEHUB_ADMIN_TOKEN="$TOKEN" \
        RUST_LOG=warn "$WORK/$1" serve >> "$WORK/$1.log" 2>&1 &
    DH_PID=$!
    wait_http "http://127.0.0.1:$PORT/healthz"
}
stop() { kill "$DH_PID"; wait "$DH_PID" 2>/dev/null || true; DH_PID=; }

# "req/s|p50|p99" after a 2 s warm-up
measure() {
    local out
    timeout 60 wrk -t2 -c"$CONNS" -d2s -s "$ROOT/bench/ddi_poll.lua" "http://127.0.0.1:$PORT/" > /dev/null
    out=$(timeout $((DURATION + 60)) wrk -t2 -c"$CONNS" -d"${DURATION}s" --latency -s "$ROOT/bench/ddi_poll.lua" \
        "http://127.0.0.1:$PORT/")
    grep -qE 'Non-2xx|Socket errors' <<<"$out" && { echo "bench: errors: $out" >&2; exit 1; }
    echo "$(awk '/^Requests\/sec/ {print $2}' <<<"$out")|$(awk '$1 == "50%" {print $2}' <<<"$out")|$(awk '$1 == "99%" {print $2}' <<<"$out")"
}

LOAD=$(cut -d" " -f1-3 /proc/loadavg)
export TENANT=P1
for b in before after; do
    echo "== $b: $DEVICES devices" >&2
    start "$b"
    python3 "$SETUP" devicehub register --url "http://127.0.0.1:$PORT" --token "$TOKEN" --devices "$DEVICES" \
        --out "$WORK/devices-$b.txt" > /dev/null
    stop
done

ROWS=""
for round in $(seq 1 "$ROUNDS"); do
    for b in before after; do
        echo "== round $round: $b" >&2
        start "$b"
        export DEVICES_FILE="$WORK/devices-$b.txt"
        r=$(measure)
        stop
        ROWS+="| $round | $b | ${r//|/ | } |"$'\n'
    done
done

cat <<EOF
### $(date -u +%Y-%m-%d) — request ids and metrics on the DDI poll: $(git -C "$ROOT" rev-parse --short "$BASE") (before) vs $(git -C "$ROOT" rev-parse --short HEAD) (after)

$(nproc) cores, load average before the run: $LOAD; SQLite; $DEVICES devices; wrk -t2 -c$CONNS -d${DURATION}s, alternating.

| round | build | req/s | p50 | p99 |
|---|---|---|---|---|
$ROWS
EOF

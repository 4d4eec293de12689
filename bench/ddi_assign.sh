#!/usr/bin/env bash
# The hawkBit DDI poll while a large assignment is made (issue 14): wrk polls random devices
# of 10^4 for WINDOW seconds; one second in, one assignment of ASSIGN devices is posted.
# Measured for each mode, on a fresh database each (the sizes assign disjoint devices):
#   one transaction  DEVICEHUB_ASSIGN_SYNC_MAX=5000: the whole assignment inside the request,
#                    in one transaction (what every assignment did before the assignment job)
#   job              the default: 202 at once, a job assigns 25 devices per transaction
#
#   bash bench/ddi_assign.sh                                  # SQLite, 1000 and 5000 devices
#   DATABASE_URL=postgres://postgres@127.0.0.1:5432/test bash bench/ddi_assign.sh
#   SIZES="1000" MODES="job" WINDOW=15 bash bench/ddi_assign.sh
#
# With DATABASE_URL set to PostgreSQL, each run gets a fresh database next to the named one
# (created and dropped with psql). Needs wrk, python3. Prints a Markdown table.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
CONNS=${CONNS:-64}
DEVICES=${DEVICES:-10000}
SIZES=${SIZES:-1000 5000}
MODES=${MODES:-one-transaction job}
WINDOW=${WINDOW:-20}
PORT=${PORT:-18484}
TOKEN=dh_bench_token_0123456789abcdefghijklmnopq
WORK=$(mktemp -d /tmp/devicehub-assign-bench.XXXXXX)
BIN=${BIN:-"$ROOT/target/release/devicehub"}
SETUP="$ROOT/bench/ddi_setup.py"
PG_BASE=${DATABASE_URL:-}
PG_DB=

cleanup() {
    [ -n "${DH_PID:-}" ] && kill "$DH_PID" 2>/dev/null || true
    drop_pg
    rm -rf "$WORK"
}
drop_pg() {
    if [ -n "$PG_DB" ]; then
        psql -q "$PG_BASE" -c "DROP DATABASE IF EXISTS $PG_DB" >/dev/null 2>&1 || true
        PG_DB=
    fi
}
trap cleanup EXIT

command -v wrk >/dev/null || { echo "bench: wrk is missing (apt-get install wrk)" >&2; exit 1; }
if [ -z "${NO_BUILD:-}" ]; then
    echo "== building (release)" >&2
    (cd "$ROOT" && cargo build --release --locked --quiet)
fi

wait_http() {
    for _ in $(seq 1 300); do curl -s -o /dev/null "$1" && return; sleep 0.1; done
    echo "bench: $1 did not answer" >&2; exit 1
}

# A fresh server (fresh SQLite file or PostgreSQL database) with DEVICES devices.
fresh_server() {
    local sync_max=$1 db_url
    [ -n "${DH_PID:-}" ] && { kill "$DH_PID"; wait "$DH_PID" 2>/dev/null || true; DH_PID=; }
    drop_pg
    rm -rf "$WORK/dh"
    if [ -n "$PG_BASE" ]; then
        PG_DB="dh_assign_bench_$$"
        psql -q "$PG_BASE" -c "CREATE DATABASE $PG_DB" >/dev/null
        db_url="${PG_BASE%/*}/$PG_DB"
    else
        db_url="sqlite://$WORK/dh/devicehub.sqlite3"
    fi
    DATABASE_URL="$db_url" DEVICEHUB_DATA_DIR="$WORK/dh" DEVICEHUB_LISTEN="127.0.0.1:$PORT" \
        DEVICEHUB_ADMIN_TOKEN="$TOKEN" DEVICEHUB_QUEUE_LIMIT=$((DEVICES + 100)) \
        DEVICEHUB_ASSIGN_SYNC_MAX="$sync_max" RUST_LOG=warn \
        "$BIN" serve >> "$WORK/devicehub.log" 2>&1 &
    DH_PID=$!
    wait_http "http://127.0.0.1:$PORT/healthz"
    python3 "$SETUP" devicehub register --url "http://127.0.0.1:$PORT" --token "$TOKEN" --devices "$DEVICES" \
        --out "$WORK/devices.txt" > /dev/null
}

# "req/s|p50|p99|max|errors"
summary() {
    local out=$1
    echo "$(awk '/^Requests\/sec/ {print $2}' <<<"$out")|$(awk '$1 == "50%" {print $2}' <<<"$out")|$(awk '$1 == "99%" {print $2}' <<<"$out")|$(awk '/^    Latency/ {print $4}' <<<"$out")|$(grep -E 'Non-2xx|Socket errors' <<<"$out" | tr '\n' ' ' || true)"
}

export DEVICES_FILE="$WORK/devices.txt" TENANT=P1
ROWS=""
for mode in $MODES; do
    case $mode in
        one-transaction) sync_max=5000 ;;
        job) sync_max=100 ;;
        *) echo "bench: unknown mode $mode" >&2; exit 1 ;;
    esac
    echo "== $mode: a fresh server with $DEVICES devices" >&2
    fresh_server "$sync_max"
    skip=0
    for size in $SIZES; do
        echo "== $mode: $size-device assignment (devices $skip to $((skip + size - 1)))" >&2
        QUIET=$(timeout 60 wrk -t2 -c"$CONNS" -d5s --timeout 30s --latency -s "$ROOT/bench/ddi_poll.lua" "http://127.0.0.1:$PORT/")
        timeout $((WINDOW + 60)) wrk -t2 -c"$CONNS" -d"${WINDOW}s" --timeout 30s --latency -s "$ROOT/bench/ddi_poll.lua" \
            "http://127.0.0.1:$PORT/" > "$WORK/wrk.out" &
        WRK=$!
        sleep 1
        TIMES=$(python3 "$SETUP" devicehub assign-timed --url "http://127.0.0.1:$PORT" --token "$TOKEN" \
            --out "$WORK/devices.txt" --count "$size" --skip "$skip")
        skip=$((skip + size))
        wait "$WRK"
        BUSY=$(summary "$(cat "$WORK/wrk.out")")
        Q=$(summary "$QUIET")
        answer=$(python3 -c "import json,sys; print(json.loads(sys.argv[1])['answer_s'])" "$TIMES")
        done_s=$(python3 -c "import json,sys; print(json.loads(sys.argv[1])['done_s'])" "$TIMES")
        col() { cut -d'|' -f"$2" <<<"$1"; }
        ROWS+="| $mode | $size | $(col "$Q" 3) | $(col "$BUSY" 1) | $(col "$BUSY" 2) | $(col "$BUSY" 3) | $(col "$BUSY" 4) | ${answer} s | ${done_s} s | $(col "$BUSY" 5)$(col "$Q" 5) |"$'\n'
    done
done

backend=SQLite; [ -n "$PG_BASE" ] && backend=PostgreSQL
cat <<EOF
### $(date -u +%Y-%m-%d) — $(nproc) cores; devicehub $(git -C "$ROOT" rev-parse --short HEAD) ($backend); $DEVICES devices; wrk -t2 -c$CONNS, ${WINDOW} s window, the assignment posted 1 s in; load before the run: $(cut -d' ' -f1-3 /proc/loadavg)

| assignment | devices | poll p99, quiet (5 s before) | polls/s during | p50 during | p99 during | max during | API answered | assignment done | errors |
|---|---|---|---|---|---|---|---|---|---|
$ROWS
EOF

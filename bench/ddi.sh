#!/usr/bin/env bash
# Benchmarks the hawkBit DDI poll (GET base with a valid TargetToken) of devicehub and of
# goosebit (a Python DDI server from PyPI) on the same machine in the same run.
#
#   bash bench/ddi.sh                  # 10^4 devices, 10 s per measurement
#   DEVICES=1000 DURATION=5 bash bench/ddi.sh
#
# Needs: wrk (Debian: apt-get install wrk), python3 with venv. goosebit is installed into
# a virtualenv under $GOOSEBIT_VENV (default /tmp/goosebit-venv) from PyPI.
# Each server: 10^4 devices with their own target tokens; the poll measured for devices
# with no open action, then again after every device got one (the poll then links to
# deploymentBase). Prints a Markdown report (copy it into docs/benchmarks.md).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
DURATION=${DURATION:-10}
CONNS=${CONNS:-64}
DEVICES=${DEVICES:-10000}
PORT=${PORT:-18482}
GB_PORT=${GB_PORT:-18483}
GOOSEBIT_VENV=${GOOSEBIT_VENV:-/tmp/goosebit-venv}
GOOSEBIT_VERSION=${GOOSEBIT_VERSION:-0.2.12}
TOKEN=dh_bench_token_0123456789abcdefghijklmnopq
WORK=$(mktemp -d /tmp/devicehub-ddi-bench.XXXXXX)
BIN="$ROOT/target/release/devicehub"
SETUP="$ROOT/bench/ddi_setup.py"

cleanup() {
    [ -n "${DH_PID:-}" ] && kill "$DH_PID" 2>/dev/null || true
    [ -n "${GB_PID:-}" ] && kill "$GB_PID" 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

command -v wrk >/dev/null || { echo "bench: wrk is missing (apt-get install wrk)" >&2; exit 1; }

echo "== building (release)" >&2
(cd "$ROOT" && cargo build --release --locked --quiet)
if [ ! -x "$GOOSEBIT_VENV/bin/python" ] || ! "$GOOSEBIT_VENV/bin/pip" show goosebit >/dev/null 2>&1; then
    echo "== installing goosebit $GOOSEBIT_VERSION into $GOOSEBIT_VENV" >&2
    python3 -m venv "$GOOSEBIT_VENV"
    "$GOOSEBIT_VENV/bin/pip" install --quiet "goosebit==$GOOSEBIT_VERSION"
fi

wait_http() {
    for _ in $(seq 1 300); do curl -s -o /dev/null "$1" && return; sleep 0.1; done
    echo "bench: $1 did not answer" >&2; exit 1
}

# wrk's summary as "req/s|p50|p99|errors", after a 2 s warm-up
run_wrk() {
    local out
    timeout 60 wrk -t2 -c"$CONNS" -d2s --timeout 30s "$@" > /dev/null
    out=$(timeout $((DURATION + 60)) wrk -t2 -c"$CONNS" -d"${DURATION}s" --timeout 30s --latency "$@")
    echo "$out" >> "$WORK/wrk.log"
    local rps p50 p99 errs
    rps=$(awk '/^Requests\/sec/ {print $2}' <<<"$out")
    p50=$(awk '$1 == "50%" {print $2}' <<<"$out")
    p99=$(awk '$1 == "99%" {print $2}' <<<"$out")
    errs=$(grep -E 'Non-2xx|Socket errors' <<<"$out" | tr '\n' ' ' || true)
    echo "$rps|$p50|$p99|${errs:-none}"
}

# ---- devicehub ------------------------------------------------------------------------------
start_devicehub() {
    DEVICEHUB_DATA_DIR="$WORK/dh" DEVICEHUB_LISTEN="127.0.0.1:$PORT" DEVICEHUB_ADMIN_TOKEN="$TOKEN" \
        DEVICEHUB_QUEUE_LIMIT=$((DEVICES + 100)) DEVICEHUB_POLL_INTERVAL_MS=200 RUST_LOG=warn \
        "$BIN" serve >> "$WORK/devicehub.log" 2>&1 &
    DH_PID=$!
    wait_http "http://127.0.0.1:$PORT/healthz"
}

echo "== devicehub: $DEVICES devices" >&2
start_devicehub
python3 "$SETUP" devicehub register --url "http://127.0.0.1:$PORT" --token "$TOKEN" --devices "$DEVICES" \
    --out "$WORK/devices.txt" > /dev/null
export DEVICES_FILE="$WORK/devices.txt" TENANT=P1
echo "== devicehub: poll, no action" >&2
DH_IDLE=$(run_wrk -s "$ROOT/bench/ddi_poll.lua" "http://127.0.0.1:$PORT/")
echo "== devicehub: assigning to every device and preparing the deliverables" >&2
T0=$(date +%s)
python3 "$SETUP" devicehub assign --url "http://127.0.0.1:$PORT" --token "$TOKEN" --out "$WORK/devices.txt"
DH_ASSIGN_SECS=$(( $(date +%s) - T0 ))
echo "== devicehub: poll, one open action" >&2
DH_ACTION=$(run_wrk -s "$ROOT/bench/ddi_poll.lua" "http://127.0.0.1:$PORT/")
DH_RSS=$(awk '/VmHWM/ {print int($2 / 1024)}' "/proc/$DH_PID/status")
kill "$DH_PID"; wait "$DH_PID" 2>/dev/null || true; DH_PID=

# ---- goosebit -------------------------------------------------------------------------------
mkdir -p "$WORK/gb"
GB_DB="$WORK/gb/db.sqlite3"
start_goosebit() {
    (cd "$WORK/gb" && GOOSEBIT_DB_URI="sqlite:///$GB_DB" GOOSEBIT_PORT="$GB_PORT" GOOSEBIT_POLL_TIME=00:05:00 \
        GOOSEBIT_MAX_CONCURRENT_UPDATES=1000000 GOOSEBIT_DEVICE_AUTH__ENABLE=true GOOSEBIT_DEVICE_AUTH__MODE="$1" \
        exec "$GOOSEBIT_VENV/bin/python" -m goosebit >> "$WORK/goosebit.log" 2>&1) &
    GB_PID=$!
    wait_http "http://127.0.0.1:$GB_PORT/"
}
stop_goosebit() { kill "$GB_PID"; wait "$GB_PID" 2>/dev/null || true; GB_PID=; }

echo "== goosebit: $DEVICES devices (setup mode stores each device's token)" >&2
# goosebit expects its schema from aerich migrations; the ORM's own schema is the same.
(cd "$WORK/gb" && GOOSEBIT_DB_URI="sqlite:///$GB_DB" "$GOOSEBIT_VENV/bin/python" -c '
import asyncio
from tortoise import Tortoise
from goosebit.db.config import TORTOISE_CONF
async def main():
    await Tortoise.init(config=TORTOISE_CONF)
    await Tortoise.generate_schemas()
    await Tortoise.close_connections()
asyncio.run(main())' >> "$WORK/goosebit.log" 2>&1)
start_goosebit setup
python3 "$SETUP" goosebit register --url "http://127.0.0.1:$GB_PORT" --devices "$WORK/devices.txt"
stop_goosebit
python3 "$SETUP" goosebit registered --db "$GB_DB"
start_goosebit strict
export TENANT=DEFAULT
echo "== goosebit: poll, no action" >&2
GB_IDLE=$(run_wrk -s "$ROOT/bench/ddi_poll.lua" "http://127.0.0.1:$GB_PORT/")
stop_goosebit
head -c 4096 /dev/urandom > "$WORK/gb/firmware.swu"
python3 "$SETUP" goosebit assign --db "$GB_DB" --image "$WORK/gb/firmware.swu"
start_goosebit strict
echo "== goosebit: poll, one open action" >&2
GB_ACTION=$(run_wrk -s "$ROOT/bench/ddi_poll.lua" "http://127.0.0.1:$GB_PORT/")
# check that goosebit really offered the deployment
OFFER=$(curl -s -H "Authorization: TargetToken $(head -1 "$WORK/devices.txt" | cut -d' ' -f2)" \
    "http://127.0.0.1:$GB_PORT/DEFAULT/controller/v1/$(head -1 "$WORK/devices.txt" | cut -d' ' -f1)")
grep -q deploymentBase <<<"$OFFER" || { echo "bench: goosebit offers no deployment: $OFFER" >&2; exit 1; }
GB_RSS=$(awk '/VmHWM/ {print int($2 / 1024)}' "/proc/$GB_PID/status" 2>/dev/null || echo "?")
stop_goosebit

col() { cut -d'|' -f"$2" <<<"$1"; }
cat <<EOF
### $(date -u +%Y-%m-%d) — $(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GiB; devicehub $(git -C "$ROOT" rev-parse --short HEAD) (SQLite), goosebit $GOOSEBIT_VERSION (SQLite); wrk -t2 -c$CONNS -d${DURATION}s; $DEVICES devices

| DDI poll (valid TargetToken, random device) | devicehub req/s | p50 | p99 | goosebit req/s | p50 | p99 |
|---|---|---|---|---|---|---|
| no open action | $(col "$DH_IDLE" 1) | $(col "$DH_IDLE" 2) | $(col "$DH_IDLE" 3) | $(col "$GB_IDLE" 1) | $(col "$GB_IDLE" 2) | $(col "$GB_IDLE" 3) |
| one open action (deploymentBase link) | $(col "$DH_ACTION" 1) | $(col "$DH_ACTION" 2) | $(col "$DH_ACTION" 3) | $(col "$GB_ACTION" 1) | $(col "$GB_ACTION" 2) | $(col "$GB_ACTION" 3) |

Errors reported by wrk: devicehub $(col "$DH_IDLE" 4) / $(col "$DH_ACTION" 4); goosebit $(col "$GB_IDLE" 4) / $(col "$GB_ACTION" 4).
Peak RSS: devicehub ${DH_RSS} MiB, goosebit ${GB_RSS} MiB. devicehub assigned $DEVICES devices and prepared
every deliverable in ${DH_ASSIGN_SECS} s.
EOF

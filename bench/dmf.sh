#!/usr/bin/env bash
# Benchmarks the hawkBit DMF door end to end against the local RabbitMQ:
#   - the time from one assignment to 10^4 things (two admin calls of 5000, the most one call
#     takes) until the last DOWNLOAD_AND_INSTALL reached the gateway (pipelines included);
#   - action-status messages applied per second: RUNNING then FINISHED for every action
#     (2·10^4 messages), from the first publish until the last one is applied.
#
#   bash bench/dmf.sh                       # 10^4 things, SQLite
#   THINGS=1000 bash bench/dmf.sh
#   DATABASE_URL=postgres://postgres@127.0.0.1:5432/test bash bench/dmf.sh   # PostgreSQL (uses a fresh schema)
#
# Needs: rabbitmqctl (the broker at 127.0.0.1:5672, guest/guest), python3 with venv (pika from
# PyPI goes into $PIKA_VENV, default /tmp/pika-venv). Prints a Markdown table row.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
THINGS=${THINGS:-10000}
PORT=${PORT:-18484}
PIKA_VENV=${PIKA_VENV:-/tmp/pika-venv}
TOKEN=dh_bench_token_0123456789abcdefghijklmnopq
WORK=$(mktemp -d /tmp/devicehub-dmf-bench.XXXXXX)
VHOST="dh-bench-$$"
BIN="$ROOT/target/release/devicehub"

cleanup() {
    [ -n "${DH_PID:-}" ] && kill "$DH_PID" 2>/dev/null || true
    rabbitmqctl -q delete_vhost "$VHOST" >/dev/null 2>&1 || true
    [ -n "${PG_SCHEMA:-}" ] && psql -q "$DATABASE_URL" -c "DROP SCHEMA $PG_SCHEMA CASCADE" >/dev/null 2>&1 || true
    rm -rf "$WORK"
}
trap cleanup EXIT

echo "== building (release)" >&2
(cd "$ROOT" && cargo build --release --locked --quiet)
if [ ! -x "$PIKA_VENV/bin/python" ] || ! "$PIKA_VENV/bin/python" -c 'import pika' 2>/dev/null; then
    python3 -m venv "$PIKA_VENV" && "$PIKA_VENV/bin/pip" install --quiet pika
fi
rabbitmqctl -q add_vhost "$VHOST"
rabbitmqctl -q set_permissions -p "$VHOST" guest ".*" ".*" ".*"
DB_URL=""
BACKEND=SQLite
if [[ "${DATABASE_URL:-}" == postgres* ]]; then
    PG_SCHEMA="bench_$$"
    psql -q "$DATABASE_URL" -c "CREATE SCHEMA $PG_SCHEMA"
    DB_URL="$DATABASE_URL?options=-csearch_path%3D$PG_SCHEMA"
    BACKEND=PostgreSQL
fi

DATABASE_URL="$DB_URL" DEVICEHUB_DATA_DIR="$WORK/dh" DEVICEHUB_LISTEN="127.0.0.1:$PORT" \
    DEVICEHUB_ADMIN_TOKEN="$TOKEN" DEVICEHUB_QUEUE_LIMIT=$((THINGS + 100)) DEVICEHUB_POLL_INTERVAL_MS=200 \
    AMQP_URL="amqp://guest:guest@127.0.0.1:5672/$VHOST" RUST_LOG=warn \
    "$BIN" serve >> "$WORK/devicehub.log" 2>&1 &
DH_PID=$!
for _ in $(seq 1 300); do curl -s "http://127.0.0.1:$PORT/readyz" | grep -q '"amqp":"ok"' && break; sleep 0.1; done

echo "== $THINGS things on $BACKEND" >&2
RESULT=$("$PIKA_VENV/bin/python" "$ROOT/bench/dmf_gateway.py" --url "http://127.0.0.1:$PORT" --token "$TOKEN" \
    --amqp "amqp://guest:guest@127.0.0.1:5672/$VHOST" --things "$THINGS")
RSS=$(awk '/VmHWM/ {print int($2 / 1024)}' "/proc/$DH_PID/status")
echo "$RESULT" >&2
field() { python3 -c "import json,sys; print(json.loads(sys.argv[1])[sys.argv[2]])" "$RESULT" "$1"; }
echo "| $(date -u +%Y-%m-%d) | $(git -C "$ROOT" rev-parse --short HEAD) | $BACKEND | $THINGS | $(field register_s) s | $(field assignment_to_last_download_and_install_s) s | $(field statuses) in $(field applied_s) s | **$(field statuses_per_s)/s** | ${RSS} MiB |"

#!/usr/bin/env bash
# Benchmarks devicehub on this machine against nginx serving the same file in the same run.
#
#   bash bench/run.sh                 # release build, SQLite, 64 MiB image, 10^5 sessions
#   DURATION=5 bash bench/run.sh      # shorter runs
#
# Needs: wrk and nginx (Debian: apt-get install wrk nginx-light), python3.
# Measures: the session status poll (req/s, p50/p99) with 10^5 sessions in the database;
# full and random 1 MiB-range downloads of a 64 MiB image at concurrency 64, devicehub
# and nginx side by side; devicehub's peak RSS while downloading 64 MiB and 256 MiB images.
# Prints a Markdown report (copy it into docs/benchmarks.md).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
DURATION=${DURATION:-10}
CONNS=${CONNS:-64}
SESSIONS=${SESSIONS:-100000}
PORT=${PORT:-18480}
NGINX_PORT=${NGINX_PORT:-18481}
TOKEN=dh_bench_token_0123456789abcdefghijklmnopq
WORK=$(mktemp -d /tmp/devicehub-bench.XXXXXX)
chmod 755 "$WORK"
BIN="$ROOT/target/release/devicehub"

source "$ROOT/bench/lib.sh"
trap bench_cleanup EXIT
bench_prepare

# (Re)starts devicehub on the same data; a fresh process per measurement keeps memory
# left over from the set-up (image uploads) out of the RSS figures.
start_devicehub() {
    [ -n "${DH_PID:-}" ] && { kill "$DH_PID"; wait "$DH_PID" 2>/dev/null || true; }
    DEVICEHUB_DATA_DIR="$WORK/data" DEVICEHUB_LISTEN="127.0.0.1:$PORT" DEVICEHUB_ADMIN_TOKEN="$TOKEN" \
        DEVICEHUB_LINK_TTL_SECS=86400 RUST_LOG=warn "$BIN" serve >> "$WORK/devicehub.log" 2>&1 &
    DH_PID=$!
    for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$PORT/healthz" >/dev/null && return; sleep 0.1; done
    echo "bench: devicehub did not start" >&2; exit 1
}

echo "== starting devicehub" >&2
start_devicehub

echo "== preparing a 64 MiB release and $SESSIONS sessions" >&2
SETUP=$(python3 "$ROOT/bench/setup.py" --url "http://127.0.0.1:$PORT" --token "$TOKEN" \
    --data-dir "$WORK/data" --image-mib 64 --sessions "$SESSIONS")
field() { python3 -c "import json,sys; print(json.loads(sys.argv[1])[sys.argv[2]])" "$SETUP" "$1"; }
LINK=$(field download_link); IMAGE=$(field image_path); IDS=$(field ids_file); SIZE=$(field size)
LINK_PATH=${LINK#http://127.0.0.1:$PORT}
echo "== preparing a 256 MiB release, for memory against image size" >&2
SETUP2=$(python3 "$ROOT/bench/setup.py" --url "http://127.0.0.1:$PORT" --token "$TOKEN" \
    --data-dir "$WORK/data" --image-mib 256 --sessions 0 --version 2.0.0)
LINK2=$(python3 -c "import json,sys; print(json.loads(sys.argv[1])['download_link'])" "$SETUP2")


echo "== starting nginx on the same file" >&2
mkdir -p "$WORK/www"
ln "$IMAGE" "$WORK/www/fw.bin"
cat > "$WORK/nginx.conf" <<NGINX
worker_processes auto;
pid $WORK/nginx.pid;
error_log $WORK/nginx-error.log;
user root;
events { worker_connections 4096; }
http {
    access_log off;
    sendfile on; tcp_nopush on; tcp_nodelay on;
    keepalive_requests 1000000;
    default_type application/octet-stream;
    server { listen 127.0.0.1:$NGINX_PORT; root $WORK/www; location / { } }
}
NGINX
nginx -c "$WORK/nginx.conf" -p "$WORK"
sleep 0.5

# peak VmRSS (MiB) of devicehub while a command runs
with_rss() {
    local peak=0 r
    "$@" > "$WORK/cmd.out" &
    local cmd=$!
    while kill -0 "$cmd" 2>/dev/null; do
        r=$(awk '/VmRSS/ {print $2}' "/proc/$DH_PID/status")
        [ "$r" -gt "$peak" ] && peak=$r
        sleep 0.1
    done
    wait "$cmd"
    echo "$(cat "$WORK/cmd.out")|$((peak / 1024))"
}

echo "== poll" >&2
start_devicehub
export IDS_FILE="$IDS" TOKEN
POLL=$(run_wrk -s "$ROOT/bench/poll.lua" "http://127.0.0.1:$PORT/")
echo "== full downloads" >&2
start_devicehub
DH_FULL=$(with_rss run_wrk "$LINK")
NG_FULL=$(run_wrk "http://127.0.0.1:$NGINX_PORT/fw.bin")
echo "== 1 MiB ranges" >&2
export SIZE
start_devicehub
DH_RANGE=$(TARGET_PATH="$LINK_PATH" with_rss run_wrk -s "$ROOT/bench/range.lua" "http://127.0.0.1:$PORT/")
NG_RANGE=$(TARGET_PATH=/fw.bin run_wrk -s "$ROOT/bench/range.lua" "http://127.0.0.1:$NGINX_PORT/")

echo "== full 256 MiB downloads" >&2
start_devicehub
DH_BIG=$(with_rss run_wrk "$LINK2")

cat <<REPORT
### $(date -u +%Y-%m-%d) — $(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GiB, $(uname -r); devicehub $(git -C "$ROOT" rev-parse --short HEAD), SQLite, wrk -t2 -c$CONNS -d${DURATION}s

| measurement | req/s | throughput | p50 | p99 | devicehub peak RSS |
|---|---|---|---|---|---|
| status poll, $SESSIONS sessions in the DB (random ids) | $(col "$POLL" 1) | | $(col "$POLL" 3) | $(col "$POLL" 4) | |
| full 64 MiB download — devicehub | $(col "$DH_FULL" 1) | $(col "$DH_FULL" 2)/s | $(col "$DH_FULL" 3) | $(col "$DH_FULL" 4) | $(col "$DH_FULL" 6) MiB |
| full 64 MiB download — nginx | $(col "$NG_FULL" 1) | $(col "$NG_FULL" 2)/s | $(col "$NG_FULL" 3) | $(col "$NG_FULL" 4) | |
| random 1 MiB ranges — devicehub | $(col "$DH_RANGE" 1) | $(col "$DH_RANGE" 2)/s | $(col "$DH_RANGE" 3) | $(col "$DH_RANGE" 4) | $(col "$DH_RANGE" 6) MiB |
| random 1 MiB ranges — nginx | $(col "$NG_RANGE" 1) | $(col "$NG_RANGE" 2)/s | $(col "$NG_RANGE" 3) | $(col "$NG_RANGE" 4) | |
| full 256 MiB download — devicehub | $(col "$DH_BIG" 1) | $(col "$DH_BIG" 2)/s | $(col "$DH_BIG" 3) | $(col "$DH_BIG" 4) | $(col "$DH_BIG" 6) MiB |

devicehub / nginx throughput: full downloads $(ratio "$(col "$DH_FULL" 2)" "$(col "$NG_FULL" 2)")×, 1 MiB ranges $(ratio "$(col "$DH_RANGE" 2)" "$(col "$NG_RANGE" 2)")×.
Errors reported by wrk (empty is none): poll [$(col "$POLL" 5)] full [$(col "$DH_FULL" 5)] ranges [$(col "$DH_RANGE" 5)] 256 MiB [$(col "$DH_BIG" 5)]
REPORT

#!/usr/bin/env bash
# Downloads beside nginx, in one run (issue 14): whole 64 MiB images and random 1 MiB ranges
# at concurrency 64, then memory (peak RSS and anonymous memory) and throughput with 64 and
# 1 000 concurrent whole downloads. Optionally an older build too, in the same run:
#
#   bash bench/downloads.sh
#   BEFORE=/tmp/devicehub-main bash bench/downloads.sh     # also measure another binary
#   ROUNDS=3 DURATION=10 MEM_CONNS="64 1000" bash bench/downloads.sh
#
# Servers are measured in turn, ROUNDS times (A, B, nginx, A, B, nginx, …), so a slow spell
# of the machine does not fall on one of them only. Needs wrk, nginx (apt-get install wrk
# nginx-light), python3. Prints a Markdown report.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
DURATION=${DURATION:-10}
ROUNDS=${ROUNDS:-2}
MEM_CONNS=${MEM_CONNS:-64 1000}
PORT=${PORT:-18490}
NGINX_PORT=${NGINX_PORT:-18491}
TOKEN=dh_bench_token_0123456789abcdefghijklmnopq
WORK=$(mktemp -d /tmp/devicehub-dl-bench.XXXXXX)
chmod 755 "$WORK"
BIN=${BIN:-"$ROOT/target/release/devicehub"}
BEFORE=${BEFORE:-}
ulimit -n "$(ulimit -Hn)"  # 1 000 connections need more than the usual 1 024

source "$ROOT/bench/lib.sh"
trap bench_cleanup EXIT
bench_prepare

# Starts binary $1 on the same data, a fresh process each time.
start_devicehub() {
    stop_devicehub
    DEVICEHUB_DATA_DIR="$WORK/data" DEVICEHUB_LISTEN="127.0.0.1:$PORT" DEVICEHUB_ADMIN_TOKEN="$TOKEN" \
        DEVICEHUB_LINK_TTL_SECS=86400 RUST_LOG=warn "$1" serve >> "$WORK/devicehub.log" 2>&1 &
    DH_PID=$!
    for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$PORT/healthz" >/dev/null && return; sleep 0.1; done
    echo "bench: devicehub did not start" >&2; exit 1
}
stop_devicehub() {
    if [ -n "${DH_PID:-}" ]; then kill "$DH_PID"; wait "$DH_PID" 2>/dev/null || true; DH_PID=; fi
}

echo "== preparing a 64 MiB release" >&2
start_devicehub "$BIN"
SETUP=$(python3 "$ROOT/bench/setup.py" --url "http://127.0.0.1:$PORT" --token "$TOKEN" \
    --data-dir "$WORK/data" --image-mib 64 --sessions 0)
field() { python3 -c "import json,sys; print(json.loads(sys.argv[1])[sys.argv[2]])" "$SETUP" "$1"; }
LINK=$(field download_link); IMAGE=$(field image_path)
LINK_PATH=${LINK#http://127.0.0.1:$PORT}
export SIZE=$((64 * 1024 * 1024))

mkdir -p "$WORK/www"
ln "$IMAGE" "$WORK/www/fw.bin"
cat > "$WORK/nginx.conf" <<NGINX
worker_processes auto;
pid $WORK/nginx.pid;
error_log $WORK/nginx-error.log;
user root;
events { worker_connections 8192; }
worker_rlimit_nofile 16384;
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

# wrk's summary "req/s|transfer/s|p50|p99|errors" at concurrency $1, after a 2 s warm-up.
run_wrk() {
    local conns=$1 out; shift
    timeout 60 wrk -t2 -c"$conns" -d2s --timeout 120s "$@" > /dev/null 2>&1 || true
    out=$(timeout $((DURATION + 150)) wrk -t2 -c"$conns" -d"${DURATION}s" --timeout 120s --latency "$@")
    echo "$out" >> "$WORK/wrk.log"
    echo "$(awk '/^Requests\/sec/ {print $2}' <<<"$out")|$(awk '/^Transfer\/sec/ {print $2}' <<<"$out")|$(awk '$1 == "50%" {print $2}' <<<"$out")|$(awk '$1 == "99%" {print $2}' <<<"$out")|$(grep -E 'Non-2xx|Socket errors' <<<"$out" | tr '\n' ' ' || true)"
}

# Runs a command while sampling devicehub's memory; appends "|peak RSS MiB|peak anonymous MiB".
with_memory() {
    local rss=0 anon=0 r a
    "$@" > "$WORK/cmd.out" &
    local cmd=$!
    while kill -0 "$cmd" 2>/dev/null; do
        r=$(awk '/^Rss:/ {print $2}' "/proc/$DH_PID/smaps_rollup" 2>/dev/null || echo 0)
        a=$(awk '/^Anonymous:/ {print $2}' "/proc/$DH_PID/smaps_rollup" 2>/dev/null || echo 0)
        [ "${r:-0}" -gt "$rss" ] && rss=$r
        [ "${a:-0}" -gt "$anon" ] && anon=$a
        sleep 0.2
    done
    wait "$cmd"
    echo "$(cat "$WORK/cmd.out")|$((rss / 1024))|$((anon / 1024))"
}

SERVERS="after"; [ -n "$BEFORE" ] && SERVERS="before after"
binary() { if [ "$1" = before ]; then echo "$BEFORE"; else echo "$BIN"; fi; }

declare -A FULL RANGE
for round in $(seq 1 "$ROUNDS"); do
    for server in $SERVERS nginx; do
        echo "== round $round: $server (load $(cut -d' ' -f1 /proc/loadavg))" >&2
        if [ "$server" = nginx ]; then
            f=$(run_wrk 64 "http://127.0.0.1:$NGINX_PORT/fw.bin")
            r=$(TARGET_PATH=/fw.bin run_wrk 64 -s "$ROOT/bench/range.lua" "http://127.0.0.1:$NGINX_PORT/")
        else
            start_devicehub "$(binary "$server")"
            f=$(run_wrk 64 "$LINK")
            r=$(TARGET_PATH="$LINK_PATH" run_wrk 64 -s "$ROOT/bench/range.lua" "http://127.0.0.1:$PORT/")
        fi
        FULL[$server,$round]=$f; RANGE[$server,$round]=$r
    done
done

declare -A MEM
for conns in $MEM_CONNS; do
    for server in $SERVERS nginx; do
        echo "== $conns concurrent whole downloads: $server" >&2
        if [ "$server" = nginx ]; then
            MEM[$server,$conns]="$(run_wrk "$conns" "http://127.0.0.1:$NGINX_PORT/fw.bin")||"
        else
            start_devicehub "$(binary "$server")"
            MEM[$server,$conns]=$(with_memory run_wrk "$conns" "$LINK")
        fi
    done
done
stop_devicehub

col() { cut -d'|' -f"$2" <<<"$1"; }
gib() { python3 - "$1" <<'PY'
import re, sys
m = re.match(r"([\d.]+)([KMG]?)B", sys.argv[1])
print(f"{float(m[1]) * {'': 1 / 2**30, 'K': 1 / 2**20, 'M': 1 / 1024, 'G': 1}[m[2]]:.2f}" if m else "nan")
PY
}
ratio() { python3 -c "import sys; a, b = map(float, sys.argv[1:]); print(f'{a / b:.2f}' if b else 'nan')" "$1" "$2"; }

echo "### $(date -u +%Y-%m-%d) — $(nproc) cores, $(uname -r); devicehub $(git -C "$ROOT" rev-parse --short HEAD)${BEFORE:+ and before: $BEFORE}; SQLite; wrk -t2 -d${DURATION}s; load at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
echo
echo "Concurrency 64, 64 MiB image. GiB/s (wrk's transfer rate), p99 latency; ratio to nginx in the same round."
echo
echo "| round | server | whole downloads | p99 | × nginx | random 1 MiB ranges | req/s | p99 | × nginx |"
echo "|---|---|---|---|---|---|---|---|---|"
for round in $(seq 1 "$ROUNDS"); do
    nf=$(gib "$(col "${FULL[nginx,$round]}" 2)"); nr=$(gib "$(col "${RANGE[nginx,$round]}" 2)")
    for server in $SERVERS nginx; do
        f=${FULL[$server,$round]}; r=${RANGE[$server,$round]}
        ff=$(gib "$(col "$f" 2)"); rr=$(gib "$(col "$r" 2)")
        echo "| $round | $server | $ff GiB/s | $(col "$f" 4) | $(ratio "$ff" "$nf")× | $rr GiB/s | $(col "$r" 1) | $(col "$r" 4) | $(ratio "$rr" "$nr")× |"
    done
done
echo
echo "Whole 64 MiB downloads at high concurrency: devicehub's peak RSS (mapped file pages included) and peak anonymous memory (heap, buffers), sampled every 200 ms from /proc/PID/smaps_rollup."
echo
echo "| connections | server | throughput | req/s | p99 | peak RSS | peak anonymous | errors |"
echo "|---|---|---|---|---|---|---|---|"
for conns in $MEM_CONNS; do
    for server in $SERVERS nginx; do
        m=${MEM[$server,$conns]}
        echo "| $conns | $server | $(gib "$(col "$m" 2)") GiB/s | $(col "$m" 1) | $(col "$m" 4) | $(col "$m" 6) MiB | $(col "$m" 7) MiB | $(col "$m" 5) |"
    done
done

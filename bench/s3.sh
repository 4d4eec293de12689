#!/usr/bin/env bash
# Benchmarks downloads from an S3-backed devicehub against the S3 server's own, in one run.
#
#   bash bench/s3.sh                  # release build, SQLite, s3s-fs, 64 MiB image
#   DURATION=5 bash bench/s3.sh
#
# Needs: wrk, python3, s3s-fs (cargo install s3s-fs --version 0.14.1 --features binary --locked).
# Measures, at concurrency 64: full downloads and random 1 MiB ranges
#   - through devicehub streaming from S3 (DEVICEHUB_DOWNLOAD_REDIRECT=off, the default),
#   - straight from s3s-fs with a presigned URL (the store's own speed; what a client that
#     follows devicehub's redirect gets),
#   - devicehub's redirects themselves (DEVICEHUB_DOWNLOAD_REDIRECT=presigned): 307 answers/s,
#     checks included (wrk does not follow them).
# Prints a Markdown report (copy it into docs/benchmarks.md).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
DURATION=${DURATION:-10}
CONNS=${CONNS:-64}
PORT=${PORT:-18490}
S3_PORT=${S3_PORT:-18491}
TOKEN=dh_bench_token_0123456789abcdefghijklmnopq
WORK=$(mktemp -d /tmp/devicehub-s3bench.XXXXXX)
BIN="$ROOT/target/release/devicehub"
S3S=$(command -v s3s-fs || echo "$HOME/.cargo/bin/s3s-fs")

cleanup() {
    [ -n "${DH_PID:-}" ] && kill "$DH_PID" 2>/dev/null || true
    [ -n "${S3_PID:-}" ] && kill "$S3_PID" 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

for tool in wrk python3 "$S3S"; do
    command -v "$tool" >/dev/null || { echo "bench: $tool is missing" >&2; exit 1; }
done

echo "== building (release)" >&2
(cd "$ROOT" && cargo build --release --locked --quiet)

mkdir -p "$WORK/s3/devicehub" "$WORK/data"
"$S3S" --host 127.0.0.1 --port "$S3_PORT" --access-key benchkey --secret-key benchsecret "$WORK/s3" \
    > "$WORK/s3s-fs.log" 2>&1 &
S3_PID=$!

# (Re)starts devicehub on the same database and bucket with the given redirect setting.
start_devicehub() {
    [ -n "${DH_PID:-}" ] && { kill "$DH_PID"; wait "$DH_PID" 2>/dev/null || true; }
    AWS_ENDPOINT="http://127.0.0.1:$S3_PORT" AWS_ALLOW_HTTP=true AWS_REGION=us-east-1 \
        AWS_ACCESS_KEY_ID=benchkey AWS_SECRET_ACCESS_KEY=benchsecret \
        DEVICEHUB_OBJECT_STORE=s3://devicehub/bench DEVICEHUB_DOWNLOAD_REDIRECT="$1" \
        DEVICEHUB_DOWNLOAD_REDIRECT_TTL_SECS=3600 \
        DEVICEHUB_DATA_DIR="$WORK/data" DEVICEHUB_LISTEN="127.0.0.1:$PORT" DEVICEHUB_ADMIN_TOKEN="$TOKEN" \
        DEVICEHUB_LINK_TTL_SECS=86400 RUST_LOG=warn "$BIN" serve >> "$WORK/devicehub.log" 2>&1 &
    DH_PID=$!
    for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$PORT/healthz" >/dev/null && return; sleep 0.1; done
    echo "bench: devicehub did not start" >&2; cat "$WORK/devicehub.log" >&2; exit 1
}

echo "== preparing a 64 MiB release in the bucket" >&2
start_devicehub off
SETUP=$(python3 "$ROOT/bench/setup.py" --url "http://127.0.0.1:$PORT" --token "$TOKEN" \
    --data-dir "$WORK/data" --image-mib 64 --sessions 0)
field() { python3 -c "import json,sys; print(json.loads(sys.argv[1])[sys.argv[2]])" "$SETUP" "$1"; }
LINK=$(field download_link); SIZE=$(field size)
LINK_PATH=${LINK#http://127.0.0.1:$PORT}
export SIZE

source "$ROOT/bench/lib.sh"

echo "== devicehub streaming from S3" >&2
DH_FULL=$(run_wrk "$LINK")
DH_RANGE=$(TARGET_PATH="$LINK_PATH" run_wrk -s "$ROOT/bench/range.lua" "http://127.0.0.1:$PORT/")

echo "== devicehub answering with presigned redirects" >&2
start_devicehub presigned
PRESIGNED=$(curl -s -o /dev/null -w '%{redirect_url}' "$LINK")
case "$PRESIGNED" in http://127.0.0.1:$S3_PORT/*) ;; *) echo "bench: no redirect ($PRESIGNED)" >&2; exit 1 ;; esac
REDIRECTS=$(run_wrk "$LINK")

echo "== s3s-fs on its own (the presigned URL)" >&2
S3_FULL=$(run_wrk "$PRESIGNED")
S3_PATH=${PRESIGNED#http://127.0.0.1:$S3_PORT}
S3_RANGE=$(TARGET_PATH="$S3_PATH" run_wrk -s "$ROOT/bench/range.lua" "http://127.0.0.1:$S3_PORT/")

cat <<REPORT
### $(date -u +%Y-%m-%d) — $(nproc) cores, $(uname -r); devicehub $(git -C "$ROOT" rev-parse --short HEAD), SQLite, s3s-fs 0.14.1 on loopback, wrk -t2 -c$CONNS -d${DURATION}s

| measurement | req/s | throughput | p50 | p99 |
|---|---|---|---|---|
| full 64 MiB download — devicehub streaming from S3 | $(col "$DH_FULL" 1) | $(col "$DH_FULL" 2)/s | $(col "$DH_FULL" 3) | $(col "$DH_FULL" 4) |
| full 64 MiB download — s3s-fs, presigned URL | $(col "$S3_FULL" 1) | $(col "$S3_FULL" 2)/s | $(col "$S3_FULL" 3) | $(col "$S3_FULL" 4) |
| random 1 MiB ranges — devicehub streaming from S3 | $(col "$DH_RANGE" 1) | $(col "$DH_RANGE" 2)/s | $(col "$DH_RANGE" 3) | $(col "$DH_RANGE" 4) |
| random 1 MiB ranges — s3s-fs, presigned URL | $(col "$S3_RANGE" 1) | $(col "$S3_RANGE" 2)/s | $(col "$S3_RANGE" 3) | $(col "$S3_RANGE" 4) |
| \`307\` to a presigned URL — devicehub (checks + signing) | $(col "$REDIRECTS" 1) | | $(col "$REDIRECTS" 3) | $(col "$REDIRECTS" 4) |

devicehub streaming / s3s-fs throughput: full downloads $(ratio "$(col "$DH_FULL" 2)" "$(col "$S3_FULL" 2)")×, 1 MiB ranges $(ratio "$(col "$DH_RANGE" 2)" "$(col "$S3_RANGE" 2)")×.
Errors reported by wrk (empty is none; wrk counts a 307 as a success): full [$(col "$DH_FULL" 5)] ranges [$(col "$DH_RANGE" 5)] redirects [$(col "$REDIRECTS" 5)] s3s-fs [$(col "$S3_FULL" 5) $(col "$S3_RANGE" 5)]
REPORT

# Shared by the benchmark scripts (sourced): wrk runs and their figures. Needs CONNS,
# DURATION and WORK set by the caller.

# wrk's summary as "req/s|transfer/s|p50|p99", after a 2 s warm-up (caches, connections)
run_wrk() {
    local out
    timeout 60 wrk -t2 -c"$CONNS" -d2s --timeout 60s "$@" > /dev/null
    out=$(timeout $((DURATION + 90)) wrk -t2 -c"$CONNS" -d"${DURATION}s" --timeout 60s --latency "$@")
    echo "$out" >> "$WORK/wrk.log"
    local rps tps p50 p99
    rps=$(awk '/^Requests\/sec/ {print $2}' <<<"$out")
    tps=$(awk '/^Transfer\/sec/ {print $2}' <<<"$out")
    p50=$(awk '$1 == "50%" {print $2}' <<<"$out")
    p99=$(awk '$1 == "99%" {print $2}' <<<"$out")
    local errs; errs=$(grep -E 'Non-2xx|Socket errors' <<<"$out" | tr '\n' ' ' || true)
    echo "$rps|$tps|$p50|$p99|$errs"
}

col() { cut -d'|' -f"$2" <<<"$1"; }
ratio() { python3 - "$1" "$2" <<'PY'
import re, sys
def mib(s):
    m = re.match(r"([\d.]+)([KMG]?)B", s)
    return float(m[1]) * {"": 1 / 1048576, "K": 1 / 1024, "M": 1, "G": 1024}[m[2]] if m else float("nan")
print(f"{mib(sys.argv[1]) / mib(sys.argv[2]):.2f}")
PY
}


# Stops what a benchmark started (devicehub, nginx) and removes $WORK; use with `trap`.
bench_cleanup() {
    [ -n "${DH_PID:-}" ] && kill "$DH_PID" 2>/dev/null || true
    [ -f "$WORK/nginx.pid" ] && kill "$(cat "$WORK/nginx.pid")" 2>/dev/null || true
    rm -rf "$WORK"
}

# Fails early when a download benchmark's tools are missing, then builds the release binary
# (unless NO_BUILD is set).
bench_prepare() {
    for tool in wrk nginx python3; do
        command -v "$tool" >/dev/null || { echo "bench: $tool is missing (apt-get install wrk nginx-light)" >&2; exit 1; }
    done
    if [ -z "${NO_BUILD:-}" ]; then
        echo "== building (release)" >&2
        (cd "$ROOT" && cargo build --release --locked --quiet)
    fi
}

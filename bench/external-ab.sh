#!/usr/bin/env bash
# The [external] handshake row measured as an A/B (issue 11's ≥ 0.8× target): one release
# im-server per run on a fresh im.db, `loadgen handshake` N at concurrency C with 100 tokens
# round-robin, own tables and [external] tables alternating ROUNDS times, so both sides meet the
# same windows of this shared machine (single runs swing 2×). One JSON line per run on stdout,
# with "mode": "own" | "external"; a ratio line at the end.
#
#   bench/external-ab.sh [ROUNDS] [N] [C]        (defaults: 3 15000 100)
#
# Needs the release binaries and bench/node-baseline/node_modules (npm ci there) for the
# backend's tables (bench/external-backend.mjs).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=scripts/lib.sh
source "$ROOT/scripts/lib.sh"
ROUNDS=${1:-3} N=${2:-15000} C=${3:-100}
IM_BIN=$ROOT/target/release/im-server LG_BIN=$ROOT/target/release/loadgen
for b in "$IM_BIN" "$LG_BIN"; do
    [[ -x $b ]] || { echo "missing $b: cargo build --release -p im-server -p loadgen" >&2; exit 2; }
done
WORK=$(mktemp -d /tmp/im-external-ab.XXXXXX)
trap 'lib_stop_tracked; rm -rf "$WORK"' EXIT
JWT=external-ab-jwt-secret-0123456789abcdef-0123
node "$ROOT/bench/external-backend.mjs" "$ROOT/bench/node-baseline/node_modules" \
    "$WORK/backend.db" "$WORK/external.tokens" 100 "$JWT"

run() {
    local mode=$1 port
    port=$(lib_free_port)
    rm -f "$WORK"/im.db*
    local envs=(PATH="$PATH" HOME="$HOME" HOST=127.0.0.1 PORT="$port" JWT_SECRET="$JWT" RUST_LOG=warn
        DATABASE_URL="sqlite://$WORK/im.db?mode=rwc")
    local tokens=(--users 100)
    if [[ $mode == external ]]; then
        envs+=(IM_EXTERNAL__URL="sqlite://$WORK/backend.db?mode=ro" IM_EXTERNAL__TOKENS__REVOKED=is_revoked
            IM_EXTERNAL__TOKENS__EXPIRES_AT=expires_at IM_EXTERNAL__USERS__USER_TYPE=user_type
            IM_EXTERNAL__USERS__ACTIVE=is_active)
        tokens=(--tokens-file "$WORK/external.tokens")
    else
        (cd "$WORK" && env -i "${envs[@]}" "$IM_BIN" user seed --count 100 >/dev/null)
    fi
    (cd "$WORK" && exec env -i "${envs[@]}" "$IM_BIN" serve) >"$WORK/server.out" 2>"$WORK/server.err" &
    local pid=$!
    lib_track "$pid"
    lib_wait_line "$WORK/server.out" 'listening on' "$pid" 60 || { cat "$WORK/server.err" >&2; exit 2; }
    "$LG_BIN" --url "http://127.0.0.1:$port" --server-pid "$pid" "${tokens[@]}" \
        handshake --n "$N" --concurrency "$C" 2>/dev/null |
        python3 -c "import json,sys; d=json.load(sys.stdin); d['mode']='$mode'; print(json.dumps(d))" |
        tee -a "$WORK/results.jsonl"
    lib_stop_pid "$pid" 20
}

for _ in $(seq "$ROUNDS"); do
    run external
    run own
done
python3 - "$WORK/results.jsonl" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
rate = lambda m: [r["handshakes_per_sec"] for r in rows if r["mode"] == m]
e, o = rate("external"), rate("own")
pairs = ", ".join(f"{a / b:.2f}x" for a, b in zip(e, o))
print(json.dumps({"ratio_per_round": pairs, "median_external": statistics.median(e),
                  "median_own": statistics.median(o),
                  "ratio_of_medians": round(statistics.median(e) / statistics.median(o), 3)}))
PY

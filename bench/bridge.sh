#!/usr/bin/env bash
# The bridge's cost (contract §10): a trivial local backend that verifies every signature and
# answers {"ack":{"ok":true}} (`loadgen backend`, Rust; BACKEND=node for
# tests/js/bridge-backend.mjs --trivial), an im-server with [bridge] pointed at it, and
# `loadgen bridge` per rate: direct backend calls, then a built-in event answered in-process
# over the same sockets (the baseline), then the bridged event with acks. Prints one JSON line
# per rate; the server's log goes to $WORK/server.log.
#
#   bench/bridge.sh [--release] [SOCKETS] [RATES] [SECS]     (defaults: 200 5000 60)
#
# RATES is one rate or a comma list (a ladder: 2500,5000,7500,10000), run in order against
# the same server. Needs the built binaries (and node for BACKEND=node).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=scripts/lib.sh
source "$ROOT/scripts/lib.sh"
PROFILE=debug
if [[ ${1:-} == --release ]]; then PROFILE=release; shift; fi
SOCKETS=${1:-200}
RATE=${2:-5000}
SECS=${3:-60}
IM_BIN=$ROOT/target/$PROFILE/im-server
LG_BIN=$ROOT/target/$PROFILE/loadgen
for b in "$IM_BIN" "$LG_BIN"; do
    [[ -x $b ]] || { echo "missing $b: cargo build $([[ $PROFILE == release ]] && echo --release) -p im-server --bin im-server; cargo build $([[ $PROFILE == release ]] && echo --release) -p loadgen" >&2; exit 2; }
done
WORK=$(mktemp -d /tmp/im-bench-bridge.XXXXXX)
SECRET=bench-bridge-secret-0123456789abcdef
JWT=bench-jwt-secret-0123456789abcdefghij
BPORT=$(lib_free_port)
IPORT=$(lib_free_port)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT

if [[ ${BACKEND:-rust} == node ]]; then
    node "$ROOT/tests/js/bridge-backend.mjs" --trivial --port "$BPORT" --secret "$SECRET" >"$WORK/backend.log" 2>&1 &
else
    "$LG_BIN" --url http://127.0.0.1:1 backend --port "$BPORT" --secret "$SECRET" >"$WORK/backend.log" 2>&1 &
fi
pids+=($!)
export DATABASE_URL="sqlite://$WORK/im.db?mode=rwc" JWT_SECRET=$JWT RUST_LOG=warn
(cd "$WORK" && "$IM_BIN" user seed --count "$SOCKETS" >/dev/null)
(cd "$WORK" && HOST=127.0.0.1 PORT=$IPORT IM_BRIDGE__URL="http://127.0.0.1:$BPORT/im/bridge" \
    IM_BRIDGE__SECRET=$SECRET IM_BRIDGE__EVENTS='bench:*' exec "$IM_BIN" serve) >"$WORK/server.log" 2>&1 &
SERVER_PID=$!
pids+=("$SERVER_PID")
for _ in $(seq 100); do
    grep -q "listening on" "$WORK/server.log" 2>/dev/null && break
    sleep 0.1
done
grep -q "listening on" "$WORK/server.log" || { cat "$WORK/server.log" >&2; exit 2; }
lib_wait_port "$BPORT" 5 || { cat "$WORK/backend.log" >&2; exit 2; }
IFS=, read -ra rates <<<"$RATE"
for rate in "${rates[@]}"; do
    "$LG_BIN" --url "http://127.0.0.1:$IPORT" --server-pid "$SERVER_PID" --users "$SOCKETS" \
        bridge --sockets "$SOCKETS" --rate "$rate" --secs "$SECS" --direct-secs 10 --baseline-secs 10 \
        --backend-url "http://127.0.0.1:$BPORT/im/bridge" --backend-secret "$SECRET" 2>>"$WORK/loadgen.log"
done
echo "work dir: $WORK" >&2

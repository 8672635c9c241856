#!/usr/bin/env bash
# The bridge's cost (contract §10): a trivial local backend (tests/js/bridge-backend.mjs
# --trivial: verifies the signature, answers {"ack":{"ok":true}}), an im-server with
# [bridge] pointed at it, and `loadgen bridge` (direct backend calls first, then the bridged
# event with acks). Prints loadgen's JSON line; the server's log goes to $WORK/server.log.
#
#   bench/bridge.sh [--release] [SOCKETS] [RATE] [SECS]      (defaults: 200 5000 60)
#
# Needs node (tests/js has no dependency for the backend) and the built binaries.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
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
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
BPORT=$(free_port)
IPORT=$(free_port)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT

node "$ROOT/tests/js/bridge-backend.mjs" --trivial --port "$BPORT" --secret "$SECRET" >"$WORK/backend.log" 2>&1 &
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
"$LG_BIN" --url "http://127.0.0.1:$IPORT" --server-pid "$SERVER_PID" --users "$SOCKETS" \
    bridge --sockets "$SOCKETS" --rate "$RATE" --secs "$SECS" --direct-secs 10 \
    --backend-url "http://127.0.0.1:$BPORT/im/bridge" 2>"$WORK/loadgen.log"
echo "work dir: $WORK" >&2

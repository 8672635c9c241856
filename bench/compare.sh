#!/usr/bin/env bash
# bench/compare.sh — im-server against the Node/socket.io baseline (bench/node-baseline), side
# by side on loopback, with ratios, written to BENCHMARKS.md.
#
#   bench/compare.sh              full run: release build, N up to 18,000 sockets, ~20-25 min;
#                                 rewrites the generated part of BENCHMARKS.md (between the
#                                 <!-- compare.sh:begin/end --> markers; the rest is kept)
#   bench/compare.sh --quick      small N, debug build, a couple of minutes (scripts/test.sh runs
#                                 it): writes the report to a temp file and exits non-zero unless
#                                 every scenario printed a JSON line without errors
# Options (env: CARGO_TARGET_DIR is honoured; BENCH_WORK=DIR work directory; BENCH_REV=TEXT names
# the source revision in the report when ROOT is not a git checkout):
#   --out FILE       write the report there instead (full default: BENCHMARKS.md)
#   --no-build       use the binaries already built (same profile)
#   --only LIST      comma list of: handshake,external,idle,fanout,chat,saturation,storm,cluster
#   --keep           keep the work directory (server logs, databases, one JSON line per run)
#   --report-from DIR  only rewrite the report from DIR/results.jsonl of a kept run (same mode)
#   -h, --help
#
# What it does: builds im-server + loadgen, `npm ci` in bench/node-baseline when its
# node_modules are stale, then for each scenario starts im-server, runs loadgen, stops it,
# starts the Node baseline, runs the same loadgen command, stops it (interleaved, so a change in
# the background load of this shared machine hits both sides alike). Both servers get the same
# JWT secret, the same API key, the same seeded users (bench1..benchN / bench-pass, type user)
# in a fresh SQLite database each (WAL, synchronous=NORMAL on both), the same ping interval
# (25 s) and listen on 127.0.0.1. Every server is a fresh process per scenario, so memory freed
# by an earlier scenario cannot hide the cost of the next one. The multi-node row runs two
# im-server nodes on one database with a private redis-server.
#
# Every process this script starts is stopped on exit (trap); every wait is bounded.
# The machine's hard open-files limit is 20,000 (`ulimit -Hn`): N stays <= 18,000 per process.
set -euo pipefail
{

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD
# shellcheck source=scripts/lib.sh
source "$ROOT/scripts/lib.sh"

QUICK=0 BUILD=1 KEEP=0 OUT='' ONLY='' REPORT_FROM=''
while (($#)); do
    case $1 in
        --quick) QUICK=1 ;;
        --no-build) BUILD=0 ;;
        --keep) KEEP=1 ;;
        --out) OUT=$2; shift ;;
        --out=*) OUT=${1#--out=} ;;
        --only) ONLY=$2; shift ;;
        --only=*) ONLY=${1#--only=} ;;
        --report-from) REPORT_FROM=$2; shift ;;
        -h | --help) lib_usage "${BASH_SOURCE[0]}"; exit 0 ;;
        *) echo "compare.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
    shift
done

log() { lib_log "compare $(date +%H:%M:%S)" "$*"; }
die() { log "ERROR: $*"; exit 1; }

selected() { [[ -z $ONLY || ,$ONLY, == *,$1,* ]]; }

# ------------------------------------------------------------------------------------------------
# parameters

if ((QUICK)); then
    PROFILE=debug
    USERS=200                              # seeded users
    HS_N=200 HS_C=50
    IDLE_N=200 IDLE_HOLD=3
    FAN_N=100 FAN_EVENTS=10
    CHAT_PAIRS=20 CHAT_RATE=200 CHAT_SECS=3
    SAT_PAIRS=20 SAT_SECS=2 SAT_RATES="200 400" SAT_BISECT=0
    STORM_N=100
    T_RUN=120                              # bound on one loadgen run, seconds
else
    PROFILE=release
    USERS=20000
    HS_N=15000 HS_C=100
    IDLE_N=18000 IDLE_HOLD=80              # >= 3 ping rounds at pingInterval 25 s
    FAN_N=10000 FAN_EVENTS=200
    CHAT_PAIRS=500 CHAT_RATE=5000 CHAT_SECS=20
    SAT_PAIRS=250 SAT_SECS=10 SAT_RATES="2500 5000 7500 10000 15000 20000 30000 40000 60000" SAT_BISECT=1
    STORM_N=10000
    T_RUN=600
fi
SAT_P99_MS=100          # a step fails when ack p99 > this, ...
SAT_MIN_ACHIEVED=0.95   # ... or acked/s < 95 % of the target, or > 0.1 % errors
JWT_SECRET=compare-sh-jwt-secret-0123456789abcdef-0123456789
API_KEY=compare-sh-api-key
PING_INTERVAL_MS=25000 PING_TIMEOUT_MS=20000   # Node's values (hard-coded in server.js)

TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
[[ $TARGET_DIR == /* ]] || TARGET_DIR=$ROOT/$TARGET_DIR
IM_BIN=$TARGET_DIR/$PROFILE/im-server
LOADGEN=$TARGET_DIR/$PROFILE/loadgen
NODE_DIR=$ROOT/bench/node-baseline

if [[ -n $REPORT_FROM ]]; then
    [[ -f $REPORT_FROM/results.jsonl ]] || { echo "compare.sh: no $REPORT_FROM/results.jsonl" >&2; exit 2; }
    WORK=$(cd "$REPORT_FROM" && pwd) KEEP=1
else
    WORK=${BENCH_WORK:-$(mktemp -d "${TMPDIR:-/tmp}/im-compare.XXXXXX")}
    mkdir -p "$WORK"
fi
RESULTS=$WORK/results.jsonl
[[ -n $REPORT_FROM ]] || : >"$RESULTS"
if [[ -z $OUT ]]; then
    if ((QUICK)); then OUT=$WORK/BENCHMARKS.quick.md; else OUT=$ROOT/BENCHMARKS.md; fi
fi
[[ $OUT == /* ]] || OUT=$PWD/$OUT

# ------------------------------------------------------------------------------------------------
# process bookkeeping: every process we start is lib_track'ed (scripts/lib.sh: a pid is only
# signalled while it is still the process we started); on exit each one still running is
# stopped (TERM, then KILL).

cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    lib_stop_tracked 5
    if ((KEEP)); then
        log "work directory kept: $WORK"
    elif [[ -z ${BENCH_WORK:-} ]]; then
        rm -rf "$WORK"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

free_port() { lib_free_port || die "no free port found"; }

# Every server start logs to its own files: $WORK/logs/<seq>-<name>.out/.err -> LOG
LOG_SEQ=0
next_log() {
    LOG_SEQ=$((LOG_SEQ + 1))
    mkdir -p "$WORK/logs"
    LOG=$WORK/logs/$(printf '%02d' "$LOG_SEQ")-$1
}

# Minimal, equal environment for both servers (nothing inherited from the caller's IM_SERVER__*).
BASE_ENV=("PATH=$PATH" "HOME=$HOME" "LANG=C.UTF-8")

# start_im NAME PORT DB [EXTRA_ENV...] -> sets SERVER_PID
start_im() {
    local name=$1 port=$2 db=$3
    shift 3
    local envs=("${BASE_ENV[@]}")
    envs+=(HOST=127.0.0.1 "PORT=$port" "DATABASE_URL=sqlite://$db?mode=rwc" "JWT_SECRET=$JWT_SECRET"
        "IM_SERVER__API_KEY=$API_KEY" "RUST_LOG=warn,im_server::shutdown=info"
        "IM_SOCKETIO__PING_INTERVAL_MS=$PING_INTERVAL_MS"
        "IM_SOCKETIO__PING_TIMEOUT_MS=$PING_TIMEOUT_MS" "$@")
    next_log "$name"
    (cd "$WORK" && exec env -i "${envs[@]}" "$IM_BIN" serve) >"$LOG.out" 2>"$LOG.err" &
    SERVER_PID=$!
    lib_track "$SERVER_PID"
    if ! lib_wait_line "$LOG.out" 'listening on' "$SERVER_PID" 60; then
        tail -n 20 "$LOG.err" >&2 || true
        die "$name did not start (logs in $LOG.err)"
    fi
}

# start_node PORT DB [EXTRA_ENV...] -> sets SERVER_PID
start_node() {
    local port=$1 db=$2 envs=("${BASE_ENV[@]}")
    shift 2
    envs+=(HOST=127.0.0.1 "PORT=$port" "DATABASE=$db" "JWT_SECRET=$JWT_SECRET" "API_KEY=$API_KEY"
        TOKEN_TTL_SECS=86400 "SEED_USERS=$USERS" NODE_ENV=production "$@")
    next_log node
    (cd "$WORK" && exec env -i "${envs[@]}" node "$NODE_DIR/server.js") >"$LOG.out" 2>"$LOG.err" &
    SERVER_PID=$!
    lib_track "$SERVER_PID"
    if ! lib_wait_line "$LOG.out" 'listening on' "$SERVER_PID" 60; then
        tail -n 20 "$LOG.err" >&2 || true
        die "node baseline did not start (logs in $LOG.err)"
    fi
}

# The two servers under test; start_server KIND -> SERVER_PID, SERVER_URL
IM_DB=$WORK/im.db NODE_DB=$WORK/node.db
IM_PORT='' NODE_PORT=''
# SERVER_ENV: extra environment for both kinds (set per scenario).
SERVER_ENV=()
start_server() {
    case $1 in
        im) start_im im "$IM_PORT" "$IM_DB" "${SERVER_ENV[@]}"; SERVER_URL=http://127.0.0.1:$IM_PORT ;;
        node) start_node "$NODE_PORT" "$NODE_DB" "${SERVER_ENV[@]}"; SERVER_URL=http://127.0.0.1:$NODE_PORT ;;
    esac
}

cpu_ticks() { # utime + stime of a pid, in clock ticks
    awk '{print $14 + $15}' "/proc/$1/stat" 2>/dev/null || echo 0
}
CLK_TCK=$(getconf CLK_TCK)

# run_loadgen SERVER LABEL PID -- LOADGEN_ARGS...: runs loadgen (bounded), appends
# {"server","label","server_cpu_s","wall_s","load1","result"} to results.jsonl.
run_loadgen() {
    local server=$1 label=$2 pid=$3
    shift 4
    local out=$WORK/$server.$label.json err=$WORK/$server.$label.log rc=0 c0 c1 t0 t1 load
    load=$(cut -d' ' -f1 /proc/loadavg)
    timeout -k 10 "$T_RUN" "$LOADGEN" "$@" >"$out" 2>"$err" &
    local lg=$!
    lib_track "$lg"
    # Server CPU is counted from the end of the logins (argon2, the same cost on both sides and
    # not what the scenario measures) to the end of the run.
    lib_wait_line "$err" 'logged in [0-9]+ users' "$lg" "$T_RUN" || true
    c0=$(cpu_ticks "$pid")
    t0=$(date +%s.%N)
    wait "$lg" || rc=$?
    lib_untrack "$lg"
    t1=$(date +%s.%N)
    c1=$(cpu_ticks "$pid")
    local died=
    LAST_DIED=
    if ! lib_pid_alive "$pid"; then
        local src=0
        wait "$pid" 2>/dev/null || src=$?
        lib_untrack "$pid"
        died="server pid $pid exited during the run (status $src)"
        if ((src > 128)); then died+=" = signal $((src - 128))"; fi
        log "  $died"
        LAST_DIED=$died
    fi
    if [[ ! -s $out ]]; then
        printf '{"scenario":"%s","error":"loadgen exit %s, no JSON line (see %s)"}\n' "$label" "$rc" "$err" >"$out"
    fi
    node -e '
        const fs = require("fs");
        const [out, server, label, cpu, wall, load, dest, died] = process.argv.slice(1);
        let result;
        try { result = JSON.parse(fs.readFileSync(out, "utf8").trim().split("\n").pop()); }
        catch (e) { result = { error: "unparsable loadgen output: " + e.message }; }
        if (died) result = { ...result, error: died };
        const line = { server, label, server_cpu_s: +cpu, wall_s: +wall, load1: +load, result };
        fs.appendFileSync(dest, JSON.stringify(line) + "\n");
    ' "$out" "$server" "$label" "$(awk -v a="$c0" -v b="$c1" -v t="$CLK_TCK" 'BEGIN{printf "%.2f", (b-a)/t}')" \
        "$(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.2f", b-a}')" "$load" "$RESULTS" "$died"
    log "  $server $label: $(summary_of "$out")"
}

# One-line human summary of a loadgen JSON line (for the progress log).
summary_of() {
    node -e '
        const r = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8").trim().split("\n").pop());
        const p = (h) => h ? `p50 ${h.p50} p99 ${h.p99} ms` : "-";
        if (r.error) { console.log("ERROR " + r.error); process.exit(0); }
        switch (r.scenario) {
          case "handshake": console.log(`${r.ok} ok ${r.failed} failed, ${r.handshakes_per_sec}/s, ${p(r.latency_ms)}`); break;
          case "idle": console.log(`${r.ok} ok ${r.failed} failed ${r.dropped} dropped, ${r.server_rss.per_conn_kib} KiB/conn`); break;
          case "fanout": console.log(`${r.deliveries}/${r.expected_deliveries} delivered, ${r.deliveries_per_sec}/s, ${p(r.latency_ms)}`); break;
          case "chat": console.log(`${r.acked_ok}/${r.sent} acked at ${r.achieved_rate}/s, ${r.error_count} errors, ack ${p(r.ack_latency_ms)}, e2e ${p(r.e2e_latency_ms)}`); break;
          case "storm": console.log(`${r.reconnected}/${r.connected_initially} back, all_back=${r.all_back}, recovery ${r.recovery_from_first_close_s}s`); break;
          default: console.log(JSON.stringify(r).slice(0, 200));
        }' "$1" 2>/dev/null || echo "(unreadable)"
}

# ------------------------------------------------------------------------------------------------
# build and dependencies

T_START=$SECONDS
if [[ -z $REPORT_FROM ]]; then
# the source the binaries are built from (other people commit meanwhile)
if [[ -n ${BENCH_REV:-} ]]; then
    echo "$BENCH_REV" >"$WORK/rev"
else
    echo "$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')$(git -C "$ROOT" diff --quiet HEAD -- src entity migration Cargo.toml Cargo.lock 2>/dev/null || echo ' + uncommitted changes in src')" >"$WORK/rev"
fi
log "work directory $WORK; report -> $OUT; profile $PROFILE"
if ((BUILD)); then
    log "cargo build ($PROFILE) im-server + loadgen"
    if [[ $PROFILE == release ]]; then
        cargo build --release -p im-server -p loadgen --bins
    else
        cargo build -p im-server -p loadgen --bins
    fi
fi
[[ -x $IM_BIN && -x $LOADGEN ]] || die "missing $IM_BIN or $LOADGEN (build first, or drop --no-build)"

command -v node >/dev/null 2>&1 || die "node is required (the baseline and the report use it)"
lib_npm_deps "$NODE_DIR" >&2

REDIS_BIN=${IM_TEST_REDIS_SERVER_BIN:-$(command -v redis-server || true)}
if selected cluster && [[ -z $REDIS_BIN ]]; then
    log "redis-server missing: installing it"
    lib_apt_install redis-server || die "installing redis-server failed"
    REDIS_BIN=$(command -v redis-server) || die "redis-server not available"
fi

# ------------------------------------------------------------------------------------------------
# fresh databases, seeded alike

IM_PORT=$(free_port)
NODE_PORT=$(free_port)
while [[ $NODE_PORT == "$IM_PORT" ]]; do NODE_PORT=$(free_port); done
rm -f "$IM_DB"* "$NODE_DB"*
log "seeding $USERS users into both databases"
(cd "$WORK" && timeout 300 env -i "${BASE_ENV[@]}" "DATABASE_URL=sqlite://$IM_DB?mode=rwc" "JWT_SECRET=$JWT_SECRET" \
    RUST_LOG=warn "$IM_BIN" user seed --count "$USERS") >"$WORK/seed.out" 2>&1 ||
    { cat "$WORK/seed.out" >&2; die "im-server user seed failed"; }
# node seeds on its first start (SEED_USERS); do it now so no scenario pays for it.
start_node "$NODE_PORT" "$NODE_DB"
lib_stop_pid "$SERVER_PID"

LG_COMMON=(--api-key "$API_KEY")

# scenario LABEL -- LOADGEN_ARGS: for im, then node, a fresh server process, one loadgen run.
# A run whose server process died is repeated once (its JSON line says so; see the server log).
scenario() {
    local label=$1 kind _try
    shift 2
    for kind in im node; do
        for _try in 1 2; do
            start_server "$kind"
            run_loadgen "$kind" "$label" "$SERVER_PID" -- --url "$SERVER_URL" --server-pid "$SERVER_PID" \
                "${LG_COMMON[@]}" "$@"
            lib_stop_pid "$SERVER_PID" 20
            [[ -z $LAST_DIED ]] && break
            log "  repeating $kind $label once"
            drop_last_result
        done
    done
}
# Remove the last line of results.jsonl (a run repeated because its server died); it is kept in
# results.dropped.jsonl.
drop_last_result() {
    tail -n 1 "$RESULTS" >>"$WORK/results.dropped.jsonl"
    sed -i '$d' "$RESULTS"
}

# ------------------------------------------------------------------------------------------------
# the scenarios

if selected external; then
    # im-server in front of a backend's own tables (contract §9): the same handshake run, its
    # tokens issued by bench/external-backend.mjs into report 000's tables in a SQLite file
    # opened read-only; compared with im-server's own-table row below (the Node baseline has
    # no such mode). Run first, next to the own-table run: placed after the Node baseline it
    # measured 0.43–0.47× three times while interleaved runs gave 0.94–1.00× (the Node run's
    # aftermath on the shared disk and cores, not the external store).
    EXT_DB=$WORK/backend.db EXT_TOKENS=$WORK/external.tokens
    log "external: handshake N=$HS_N at concurrency $HS_C, [external] tables in SQLite"
    rm -f "$EXT_DB"
    node "$ROOT/bench/external-backend.mjs" "$NODE_DIR/node_modules" "$EXT_DB" "$EXT_TOKENS" \
        "$((HS_N < 100 ? HS_N : 100))" "$JWT_SECRET" || die "external-backend.mjs failed"
    for _ in 1 2; do
        start_im im-external "$IM_PORT" "$IM_DB" "IM_EXTERNAL__URL=sqlite://$EXT_DB?mode=ro" \
            IM_EXTERNAL__TOKENS__REVOKED=is_revoked IM_EXTERNAL__TOKENS__EXPIRES_AT=expires_at \
            IM_EXTERNAL__USERS__USER_TYPE=user_type IM_EXTERNAL__USERS__ACTIVE=is_active
        run_loadgen im external "$SERVER_PID" -- --url "http://127.0.0.1:$IM_PORT" --server-pid "$SERVER_PID" \
            "${LG_COMMON[@]}" --tokens-file "$EXT_TOKENS" handshake --n "$HS_N" --concurrency "$HS_C"
        lib_stop_pid "$SERVER_PID" 20
        [[ -z $LAST_DIED ]] && break
        drop_last_result
    done
fi

if selected handshake; then
    log "handshake: N=$HS_N at concurrency $HS_C"
    scenario handshake -- handshake --n "$HS_N" --concurrency "$HS_C"
fi


if selected idle; then
    # loadgen logs its users in (argon2, 19 MiB each) on the measured server just before it
    # reads "before". glibc keeps freed argon2 blocks in its arenas (im-server: ~1 GiB after 100
    # logins, see Profile), and the connections are then carved out of that free memory without
    # any RSS growth: the per-connection figure would read near zero. A fixed mmap threshold
    # (glibc stops raising it dynamically) returns each argon2 block to the kernel on free, and
    # changes nothing for allocations below 128 KiB, i.e. for what a connection allocates.
    # Same setting for both servers.
    SERVER_ENV=(MALLOC_MMAP_THRESHOLD_=131072)
    log "idle: N=$IDLE_N held ${IDLE_HOLD}s (both with ${SERVER_ENV[*]})"
    scenario idle -- idle --n "$IDLE_N" --concurrency 200 --hold-secs "$IDLE_HOLD" --sample-secs 10
    SERVER_ENV=()
fi

if selected fanout; then
    log "fanout: N=$FAN_N sockets, $FAN_EVENTS events to user_type back to back"
    scenario fanout -- fanout --n "$FAN_N" --events "$FAN_EVENTS" --target user_type --rate 0 \
        --publish-concurrency 4 --drain-secs 60
fi

if selected chat; then
    log "chat: $CHAT_PAIRS pairs at $CHAT_RATE msg/s for ${CHAT_SECS}s"
    scenario chat -- chat --pairs "$CHAT_PAIRS" --rate "$CHAT_RATE" --secs "$CHAT_SECS" --drain-secs 15
fi

# step_ok FILE RATE: the chat step at RATE kept up (ack p99, achieved rate, errors).
step_ok() {
    node -e '
        const [f, rate, p99max, minach] = process.argv.slice(1);
        const r = JSON.parse(require("fs").readFileSync(f, "utf8").trim().split("\n").pop());
        const ok = !r.error && r.ack_latency_ms && r.ack_latency_ms.p99 <= +p99max &&
          r.achieved_rate >= +minach * +rate && r.error_count <= 0.001 * r.sent && r.unfinished === 0;
        process.exit(ok ? 0 : 1);' "$1" "$2" "$SAT_P99_MS" "$SAT_MIN_ACHIEVED"
}

if selected saturation; then
    for kind in im node; do
        log "saturation search ($kind): $SAT_PAIRS pairs, ${SAT_SECS}s per step, rates $SAT_RATES"
        start_server "$kind"
        last_ok=0 first_fail=0
        for rate in $SAT_RATES; do
            run_loadgen "$kind" "sat-$rate" "$SERVER_PID" -- --url "$SERVER_URL" --server-pid "$SERVER_PID" \
                "${LG_COMMON[@]}" chat --pairs "$SAT_PAIRS" --rate "$rate" --secs "$SAT_SECS" --drain-secs 5 \
                --ack-timeout-ms 5000
            if step_ok "$WORK/$kind.sat-$rate.json" "$rate"; then
                last_ok=$rate
            else
                first_fail=$rate
                break
            fi
        done
        if ((SAT_BISECT && last_ok > 0 && first_fail > 0)); then
            rate=$(((last_ok + first_fail) / 2))
            run_loadgen "$kind" "sat-$rate" "$SERVER_PID" -- --url "$SERVER_URL" --server-pid "$SERVER_PID" \
                "${LG_COMMON[@]}" chat --pairs "$SAT_PAIRS" --rate "$rate" --secs "$SAT_SECS" --drain-secs 5 \
                --ack-timeout-ms 5000
        fi
        lib_stop_pid "$SERVER_PID" 20
    done
fi

if selected storm; then
    for kind in im node; do
        log "storm ($kind): N=$STORM_N, server restarted once all are connected"
        start_server "$kind"
        pid=$SERVER_PID
        out=$WORK/$kind.storm.json err=$WORK/$kind.storm.log
        load=$(cut -d' ' -f1 /proc/loadavg)
        t0=$(date +%s.%N)
        timeout -k 10 "$T_RUN" "$LOADGEN" --url "$SERVER_URL" "${LG_COMMON[@]}" storm --n "$STORM_N" \
            --concurrency 200 --wait-restart-secs 60 --reconnect-timeout-secs 120 >"$out" 2>"$err" &
        lg=$!
        lib_track "$lg"
        if lib_wait_line "$err" 'RESTART THE SERVER NOW' "$lg" "$T_RUN"; then
            # a real restart: SIGTERM, the process exits, a new one starts on the same port and database
            lib_stop_pid "$pid" 20
            restart_t0=$(date +%s.%N)
            start_server "$kind"
            restart_s=$(awk -v a="$restart_t0" -v b="$(date +%s.%N)" 'BEGIN{printf "%.2f", b-a}')
            log "  $kind restarted (start to listening ${restart_s}s)"
        else
            log "  loadgen never asked for the restart (see $err)"
        fi
        wait "$lg" || true
        lib_untrack "$lg"
        t1=$(date +%s.%N)
        [[ -s $out ]] || printf '{"scenario":"storm","error":"loadgen gave no JSON line (see %s)"}\n' "$err" >"$out"
        node -e '
            const fs = require("fs");
            const [out, server, wall, load, restart, dest] = process.argv.slice(1);
            let result;
            try { result = JSON.parse(fs.readFileSync(out, "utf8").trim().split("\n").pop()); }
            catch (e) { result = { error: "unparsable loadgen output: " + e.message }; }
            fs.appendFileSync(dest, JSON.stringify({ server, label: "storm", wall_s: +wall, load1: +load,
              restart_s: restart === "" ? null : +restart, result }) + "\n");
        ' "$out" "$kind" "$(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.2f", b-a}')" "$load" "${restart_s:-}" "$RESULTS"
        log "  $kind storm: $(summary_of "$out")"
        lib_stop_pid "$SERVER_PID" 20
        unset restart_s
    done
fi

if selected cluster; then
    log "multi-node: two im-server nodes + redis-server, sockets spread over both"
    RPORT=$(free_port)
    "$REDIS_BIN" --port "$RPORT" --bind 127.0.0.1 --save "" --appendonly no --daemonize no \
        --dir "$WORK" >"$WORK/redis.log" 2>&1 &
    RPID=$!
    lib_track "$RPID"
    lib_wait_line "$WORK/redis.log" 'Ready to accept connections' "$RPID" 30 || die "redis-server did not start"
    CDB=$WORK/cluster.db
    (cd "$WORK" && timeout 300 env -i "${BASE_ENV[@]}" "DATABASE_URL=sqlite://$CDB?mode=rwc" "JWT_SECRET=$JWT_SECRET" \
        RUST_LOG=warn "$IM_BIN" user seed --count "$USERS") >>"$WORK/seed.out" 2>&1 || die "seeding the cluster db failed"
    cluster_up() {
        PA=$(free_port)
        PB=$(free_port)
        while [[ $PB == "$PA" ]]; do PB=$(free_port); done
        start_im node-a "$PA" "$CDB" "REDIS_URL=redis://127.0.0.1:$RPORT/?protocol=resp3" IM_SERVER__NODE_ID=bench-a
        NA=$SERVER_PID
        start_im node-b "$PB" "$CDB" "REDIS_URL=redis://127.0.0.1:$RPORT/?protocol=resp3" IM_SERVER__NODE_ID=bench-b
        NB=$SERVER_PID
        CURL="http://127.0.0.1:$PA,http://127.0.0.1:$PB"
    }
    cluster_down() { lib_stop_pid "$NA" 20; lib_stop_pid "$NB" 20; }
    cluster_up
    run_loadgen cluster fanout "$NA" -- --url "$CURL" --server-pid "$NA" "${LG_COMMON[@]}" \
        fanout --n "$FAN_N" --events "$FAN_EVENTS" --target user_type --rate 0 --publish-concurrency 4 --drain-secs 60
    cluster_down
    cluster_up
    run_loadgen cluster chat "$NA" -- --url "$CURL" --server-pid "$NA" "${LG_COMMON[@]}" \
        chat --pairs "$CHAT_PAIRS" --rate "$CHAT_RATE" --secs "$CHAT_SECS" --drain-secs 15
    cluster_down
    lib_stop_pid "$RPID" 10
fi

echo $((SECONDS - T_START)) >"$WORK/run_seconds"
fi # [[ -z $REPORT_FROM ]]
TOTAL_S=$(cat "$WORK/run_seconds" 2>/dev/null || echo '?')
log "all runs done in ${TOTAL_S}s; writing $OUT"

# ------------------------------------------------------------------------------------------------
# the report

REDIS_BIN=${REDIS_BIN:-${IM_TEST_REDIS_SERVER_BIN:-$(command -v redis-server || true)}}
redis_version=$( { [[ -n $REDIS_BIN ]] && "$REDIS_BIN" --version 2>/dev/null | grep -o 'v=[0-9.]*' | cut -c3-; } || echo -)
# A crate's version from Cargo.lock; one without a registry source is the patched copy in vendor/.
crate_version() {
    awk -v n="$1" '$0 == "name = \"" n "\"" {getline; gsub(/version = |"/, ""); v = $0; getline;
        print (index($0, "source = ") == 1 ? v : v " (vendored, patched: vendor/README.md)"); exit}' "$ROOT/Cargo.lock"
}
journal_mode() { # the journal mode stored in a SQLite file (WAL persists; DELETE is the default)
    [[ -f $1 ]] || { echo '?'; return 0; }
    node -e 'const D = require(process.argv[1]); const db = new D(process.argv[2], { readonly: true, fileMustExist: true });
             console.log(db.pragma("journal_mode", { simple: true })); db.close();' \
        "$NODE_DIR/node_modules/better-sqlite3" "$1" 2>/dev/null || echo '?'
}
BENCH_JOURNAL="im-server's database: $(journal_mode "$IM_DB"), Node's: $(journal_mode "$NODE_DB")"
export BENCH_JOURNAL BENCH_MACHINE_CPU BENCH_MACHINE_NPROC BENCH_MACHINE_MEM BENCH_MACHINE_KERNEL BENCH_VERSIONS BENCH_CMD BENCH_PARAMS
BENCH_MACHINE_CPU=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')
BENCH_MACHINE_NPROC=$(nproc)
BENCH_MACHINE_MEM=$(free -h | awk '/^Mem:/ {print $2 " total, " $7 " available"}')
BENCH_MACHINE_KERNEL=$(uname -sr)
BENCH_VERSIONS="rustc $(rustc --version | cut -d' ' -f2-); im-server $(cat "$WORK/rev" 2>/dev/null || echo ?); socketioxide $(crate_version socketioxide); engineioxide $(crate_version engineioxide); axum $(crate_version axum); hyper $(crate_version hyper); tokio $(crate_version tokio); sea-orm $(crate_version sea-orm); sqlx $(crate_version sqlx); node $(node --version); socket.io $(node -p 'require(process.argv[1]).version' "$NODE_DIR/node_modules/socket.io/package.json" 2>/dev/null); ws $(node -p 'require(process.argv[1]).version' "$NODE_DIR/node_modules/ws/package.json" 2>/dev/null); better-sqlite3 $(node -p 'require(process.argv[1]).version' "$NODE_DIR/node_modules/better-sqlite3/package.json" 2>/dev/null); redis-server $redis_version"
BENCH_CMD=bench/compare.sh
if ((QUICK)); then BENCH_CMD+=" --quick"; fi
BENCH_CMD+="${ONLY:+ --only $ONLY}"
BENCH_PARAMS="handshake N=$HS_N C=$HS_C; idle N=$IDLE_N hold=${IDLE_HOLD}s; fanout N=$FAN_N events=$FAN_EVENTS; chat pairs=$CHAT_PAIRS rate=$CHAT_RATE secs=$CHAT_SECS; saturation pairs=$SAT_PAIRS ${SAT_SECS}s/step rates=[$SAT_RATES] (+1 bisection) fails at ack p99>${SAT_P99_MS}ms or <$(awk -v m=$SAT_MIN_ACHIEVED 'BEGIN{print m*100}')% achieved or >0.1% errors; storm N=$STORM_N; users seeded=$USERS; run took ${TOTAL_S}s"

rc=0
node - "$RESULTS" "$OUT" "$QUICK" "$HS_N" "$HS_C" "$IDLE_N" "$FAN_N" "$FAN_EVENTS" "$CHAT_PAIRS" "$CHAT_RATE" "$SAT_P99_MS" "$SAT_MIN_ACHIEVED" <<'JS' || rc=$?
const fs = require('fs');
const [resultsFile, outFile, quick, hsN, hsC, idleN, fanN, fanEv, chatPairs, chatRate, satP99, satMin] =
  process.argv.slice(2);
const runs = fs.readFileSync(resultsFile, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l));
const get = (server, label) => runs.find((r) => r.server === server && r.label === label);
const raw = (server, label) => get(server, label)?.result;
const res = (server, label) => { const r = raw(server, label); return r && !r.error ? r : undefined; };
const num = (v, d = 0) => (v === null || v === undefined || Number.isNaN(+v) ? '–' :
  (+v).toLocaleString('en-US', { maximumFractionDigits: d, minimumFractionDigits: d }));
const ratio = (a, b, d = 1) => (a == null || b == null || !+b || !+a ? '–' : `${num(a / b, d)}×`);
const problems = [];

// -- quick-mode cleanliness: every scenario produced a JSON line without errors
function clean(server, label) {
  const r = raw(server, label);
  if (!r) return `${server} ${label}: no run`;
  if (r.error) return `${server} ${label}: ${r.error}`;
  switch (r.scenario) {
    case 'handshake': return r.failed === 0 && r.ok > 0 ? null : `${server} handshake: ${r.failed} failed ${JSON.stringify(r.failures)}`;
    case 'idle': return r.failed === 0 && r.dropped === 0 ? null : `${server} idle: ${r.failed} failed, ${r.dropped} dropped ${JSON.stringify(r.failures)}`;
    case 'fanout': return r.missing === 0 && r.deliveries > 0 && r.failed === 0 && Object.keys(r.publish_errors).length === 0 ? null :
      `${server} fanout: ${r.missing} missing, ${r.failed} failed, publish errors ${JSON.stringify(r.publish_errors)}`;
    case 'chat': return r.error_count === 0 && r.lost === 0 && r.unfinished === 0 && r.acked_ok > 0 ? null :
      `${server} ${label}: ${r.error_count} errors ${JSON.stringify(r.errors)}, ${r.lost} lost, ${r.unfinished} unfinished`;
    case 'storm': return r.all_back ? null : `${server} storm: not all back (${r.reconnected}/${r.connected_initially}) ${JSON.stringify(r.reconnect_failures)}`;
  }
  return null;
}
for (const r of runs) {
  const p = clean(r.server, r.label);
  if (p) problems.push(p);
}

// -- saturation: highest passing step
function saturation(server) {
  const steps = runs.filter((r) => r.server === server && r.label.startsWith('sat-'))
    .map((r) => ({ rate: +r.label.slice(4), r: r.result }))
    .sort((a, b) => a.rate - b.rate);
  const pass = (s) => !s.r.error && s.r.ack_latency_ms && s.r.ack_latency_ms.p99 <= +satP99 &&
    s.r.achieved_rate >= +satMin * s.rate && s.r.error_count <= 0.001 * s.r.sent && s.r.unfinished === 0;
  let best = null;
  for (const s of steps) if (pass(s)) best = s;
  const failed = steps.filter((s) => !pass(s));
  return { steps, best, pass, capped: failed.length === 0 && steps.length > 0 };
}

const rows = [];
const verdicts = [];
const lat = (h) => (h ? `${num(h.p50, 1)} / ${num(h.p99, 1)}` : '–');
const row = (metric, im, node, r, target, met) => {
  rows.push(`| ${metric} | ${im} | ${node} | ${r} | ${target ?? ''} | ${met === undefined ? '' : met ? '**met**' : '**missed**'} |`);
  if (met !== undefined) verdicts.push({ metric, met });
};
const cpu = (server, label) => { const g = get(server, label); return g && g.server_cpu_s != null ? `${num(g.server_cpu_s, 1)} s CPU / ${num(g.wall_s, 0)} s` : '–'; };
// server CPU seconds (from the end of the logins to the end of the run) per unit of work
const cpuPer = (server, label, units, scale) => {
  const g = get(server, label), r = res(server, label);
  if (!g || !r || g.server_cpu_s == null) return null;
  const u = units(r);
  return u > 0 ? (g.server_cpu_s / u) * scale : null;
};
const cpuRow = (metric, label, units, scale) => {
  const a = cpuPer('im', label, units, scale), b = cpuPer('node', label, units, scale);
  const d = scale === 1e3 ? 1 : 0;
  row(metric, a == null ? "–" : `${num(a, d)} (${cpu("im", label)})`, b == null ? "–" : `${num(b, d)} (${cpu("node", label)})`, ratio(a, b, 2));
};

// handshake
{
  const a = res('im', 'handshake'), b = res('node', 'handshake');
  if (a || b) {
    const r = a && b ? a.handshakes_per_sec / b.handshakes_per_sec : null;
    row(`Handshakes/s (N=${num(hsN)}, ${hsC} in flight; JWT + token row + user)`, num(a?.handshakes_per_sec), num(b?.handshakes_per_sec),
      ratio(a?.handshakes_per_sec, b?.handshakes_per_sec), '≥ 5×', r != null ? r >= 5 : undefined);
    row('Handshake latency p50 / p99, ms', lat(a?.latency_ms), lat(b?.latency_ms), ratio(a?.latency_ms?.p99, b?.latency_ms?.p99, 2));
    row('Handshake failures', num(a?.failed), num(b?.failed), '');
    row(`Server RSS after ${a?.users ?? b?.users ?? '?'} logins, before any socket (default malloc), MiB`,
      a?.server_rss?.before_kib != null ? num(a.server_rss.before_kib / 1024, 1) : '–',
      b?.server_rss?.before_kib != null ? num(b.server_rss.before_kib / 1024, 1) : '–',
      ratio(a?.server_rss?.before_kib, b?.server_rss?.before_kib, 2));
    cpuRow('Server CPU per handshake (after the logins), µs', 'handshake', (r) => r.ok, 1e6);
  }
  // [external] tables: im-server against its own-table row (the Node baseline has no such mode)
  const e = res('im', 'external');
  if (e) {
    const r = a ? e.handshakes_per_sec / a.handshakes_per_sec : null;
    row(`Handshakes/s with [external] tables (SQLite, raw tokens; vs im-server's own tables)`, num(e.handshakes_per_sec), '–',
      a ? `${num(r, 2)}× own` : '–', '≥ 0.8× own tables', r != null ? r >= 0.8 : undefined);
    row('Handshake latency p50 / p99 with [external] tables, ms', lat(e.latency_ms), '–', '');
  }
}
// idle
{
  const a = res('im', 'idle'), b = res('node', 'idle');
  if (a || b) {
    const ka = a?.server_rss?.per_conn_kib, kb = b?.server_rss?.per_conn_kib;
    const r = ka != null && kb ? ka / kb : null;
    row(`Server RSS per idle authenticated connection, KiB (N=${num(idleN)}, ${a?.ping_rounds ?? '?'} ping rounds)`, num(ka, 2), num(kb, 2), ratio(ka, kb, 2),
      '≤ 0.25× and ≤ 5 KiB', r != null ? r <= 0.25 && ka <= 5 : undefined);
    row('Server RSS before → held, MiB', a ? `${num(a.server_rss.before_kib / 1024, 1)} → ${num(a.server_rss.after_kib / 1024, 1)}` : '–',
      b ? `${num(b.server_rss.before_kib / 1024, 1)} → ${num(b.server_rss.after_kib / 1024, 1)}` : '–', '');
    row('Idle connections failed / dropped', a ? `${a.failed} / ${a.dropped}` : '–', b ? `${b.failed} / ${b.dropped}` : '–', '');
    cpuRow('Server CPU per idle connection (connect + hold), µs', 'idle', (r) => r.ok, 1e6);
  }
}
// fanout
{
  const a = res('im', 'fanout'), b = res('node', 'fanout'), c = res('cluster', 'fanout');
  if (a || b) {
    const r = a && b ? a.deliveries_per_sec / b.deliveries_per_sec : null;
    row(`Fan-out deliveries/s (${num(fanN)} sockets × ${fanEv} publishes to user_type)`, num(a?.deliveries_per_sec), num(b?.deliveries_per_sec),
      ratio(a?.deliveries_per_sec, b?.deliveries_per_sec), '≥ 5×', r != null ? r >= 5 : undefined);
    row('Fan-out delivery latency p50 / p99, ms', lat(a?.latency_ms), lat(b?.latency_ms), ratio(a?.latency_ms?.p99, b?.latency_ms?.p99, 2));
    row('Fan-out delivered / expected', a ? `${num(a.deliveries)} / ${num(a.expected_deliveries)}` : '–', b ? `${num(b.deliveries)} / ${num(b.expected_deliveries)}` : '–', '');
    cpuRow('Server CPU per 1,000 deliveries (incl. connecting the sockets), ms', 'fanout', (r) => r.deliveries / 1000, 1e3);
  }
}
// chat
{
  const a = res('im', 'chat'), b = res('node', 'chat');
  if (a || b) {
    const pa = a?.ack_latency_ms?.p99, pb = b?.ack_latency_ms?.p99;
    const r = pa != null && pb ? pa / pb : null;
    row(`Chat ack latency p50 / p99, ms (${chatPairs} pairs, ${num(chatRate)} msg/s open loop)`, lat(a?.ack_latency_ms), lat(b?.ack_latency_ms),
      ratio(pa, pb, 2), 'p99 ≤ 0.33×', r != null ? r <= 1 / 3 : undefined);
    row('Chat end-to-end latency p50 / p99, ms', lat(a?.e2e_latency_ms), lat(b?.e2e_latency_ms), ratio(a?.e2e_latency_ms?.p99, b?.e2e_latency_ms?.p99, 2));
    row('Chat p999 ack / e2e, ms', a ? `${num(a.ack_latency_ms?.p999, 1)} / ${num(a.e2e_latency_ms?.p999, 1)}` : '–', b ? `${num(b.ack_latency_ms?.p999, 1)} / ${num(b.e2e_latency_ms?.p999, 1)}` : '–', '');
    row('Chat achieved msg/s, errors, lost', a ? `${num(a.achieved_rate)}, ${a.error_count}, ${a.lost}` : '–', b ? `${num(b.achieved_rate)}, ${b.error_count}, ${b.lost}` : '–', '');
    cpuRow('Server CPU per message (incl. connecting the sockets), µs', 'chat', (r) => r.acked_ok, 1e6);
  }
}
// saturation
const satA = saturation('im'), satB = saturation('node');
if (satA.steps.length || satB.steps.length) {
  const ra = satA.best?.rate, rb = satB.best?.rate;
  const r = ra && rb ? ra / rb : null;
  const show = (s) => (s.best ? `${num(s.best.rate)}${s.capped ? '+ (ladder top)' : ''}` : 'none passed');
  row(`Chat saturation: highest rate kept (ack p99 ≤ ${satP99} ms, ≥ ${satMin * 100}% achieved, ≤ 0.1% errors), msg/s`, show(satA), show(satB),
    ratio(ra, rb), '≥ 3×', r != null ? r >= 3 : undefined);
}
// storm
{
  const a = res('im', 'storm'), b = res('node', 'storm');
  const ga = get('im', 'storm'), gb = get('node', 'storm');
  if (a || b) {
    row('Reconnect storm: all back after restart', a ? `${a.reconnected}/${a.connected_initially}` : '–', b ? `${b.reconnected}/${b.connected_initially}` : '–', '');
    row('Reconnect storm: first close → last reconnected, s', num(a?.recovery_from_first_close_s, 2), num(b?.recovery_from_first_close_s, 2), ratio(a?.recovery_from_first_close_s, b?.recovery_from_first_close_s, 2));
    row('Reconnect storm: first → last reconnect (herd absorbed), s', num(a?.first_to_last_reconnect_s, 2), num(b?.first_to_last_reconnect_s, 2), ratio(a?.first_to_last_reconnect_s, b?.first_to_last_reconnect_s, 2));
    row('Reconnect storm: server restart (spawn → listening), s', num(ga?.restart_s, 2), num(gb?.restart_s, 2), '');
    row('Reconnect storm: attempts total / max per client', a ? `${num(a.attempts_total)} / ${a.attempts_max}` : '–', b ? `${num(b.attempts_total)} / ${b.attempts_max}` : '–', '');
  }
}

// multi-node
const cluster = [];
{
  const c = res('cluster', 'fanout'), a = res('im', 'fanout'), b = res('node', 'fanout');
  if (c) cluster.push(`| Fan-out deliveries/s (${num(fanN)} sockets, half on each node; publish via node A) | ${num(c.deliveries_per_sec)} | ${num(a?.deliveries_per_sec)} | ${num(b?.deliveries_per_sec)} | ${ratio(c.deliveries_per_sec, b?.deliveries_per_sec)} |`,
    `| Fan-out delivery latency p50 / p99, ms | ${lat(c.latency_ms)} | ${lat(a?.latency_ms)} | ${lat(b?.latency_ms)} | |`,
    `| Fan-out delivered / expected | ${num(c.deliveries)} / ${num(c.expected_deliveries)} | | | |`);
  const d = res('cluster', 'chat'), e = res('im', 'chat'), f = res('node', 'chat');
  if (d) cluster.push(`| Chat ack p50 / p99, ms (${chatPairs} pairs, every pair split across the nodes, ${num(chatRate)} msg/s) | ${lat(d.ack_latency_ms)} | ${lat(e?.ack_latency_ms)} | ${lat(f?.ack_latency_ms)} | ${ratio(d.ack_latency_ms?.p99, f?.ack_latency_ms?.p99, 2)} |`,
    `| Chat end-to-end p50 / p99, ms | ${lat(d.e2e_latency_ms)} | ${lat(e?.e2e_latency_ms)} | ${lat(f?.e2e_latency_ms)} | ${ratio(d.e2e_latency_ms?.p99, f?.e2e_latency_ms?.p99, 2)} |`,
    `| Chat achieved msg/s, errors, lost | ${num(d.achieved_rate)}, ${d.error_count}, ${d.lost} | ${e ? `${num(e.achieved_rate)}, ${e.error_count}, ${e.lost}` : '–'} | ${f ? `${num(f.achieved_rate)}, ${f.error_count}, ${f.lost}` : '–'} | |`);
}

// saturation ladder detail
const ladder = [];
for (const [name, s] of [['im-server', satA], ['node', satB]]) {
  for (const st of s.steps) {
    const r = st.r;
    ladder.push(`| ${name} | ${num(st.rate)} | ${r.error ? 'error' : num(r.achieved_rate)} | ${lat(r.ack_latency_ms)} | ${lat(r.e2e_latency_ms)} | ${r.error_count ?? '–'} | ${num(r.scheduler_max_behind_ms, 1)} | ${s.pass(st) ? 'kept up' : 'saturated'} |`);
  }
}

const loads = runs.map((r) => r.load1).filter((x) => x != null);
const env = process.env;
const md = [];
md.push('<!-- compare.sh:begin — generated by bench/compare.sh; edits between these markers are overwritten -->');
md.push(`## Results (run finished ${fs.statSync(resultsFile).mtime.toISOString().replace(/\.\d+Z$/, 'Z')})`, '');
md.push('im-server and the Node/socket.io baseline (`bench/node-baseline`), one after the other in the same run, same loopback, same settings. ' +
  'Ratio = im-server / Node (for latencies and memory lower is better, for rates higher is better).', '');
md.push('| Metric | im-server | Node baseline | Ratio | Target | |', '|---|---:|---:|---:|---|---|', ...rows, '');
const met = verdicts.filter((v) => v.met).length;
md.push(`Targets met: **${met} of ${verdicts.length}**.`, '');
if (cluster.length) {
  md.push('### Multi-node (two im-server nodes, one SQLite database, redis-server adapter)', '',
    '| Metric | im-server ×2 + redis | im-server ×1 | Node ×1 | 2 nodes / Node |', '|---|---:|---:|---:|---:|', ...cluster, '');
}
if (ladder.length) {
  md.push('### Chat saturation ladder', '', `${chatPairs !== undefined ? '' : ''}Each step: a fresh loadgen run against the same server process; "saturated" = ack p99 > ${satP99} ms, or < ${satMin * 100}% of the target acked per second, or > 0.1% errors. "loadgen behind" is how late the open-loop scheduler itself ran.`, '',
    '| Server | Target msg/s | Achieved | Ack p50 / p99 ms | E2E p50 / p99 ms | Errors | loadgen behind, ms | |', '|---|---:|---:|---:|---:|---:|---:|---|', ...ladder, '');
}
md.push('### Conditions', '');
md.push(`- Machine: ${env.BENCH_MACHINE_NPROC} CPUs (${env.BENCH_MACHINE_CPU}), ${env.BENCH_MACHINE_MEM} RAM, ${env.BENCH_MACHINE_KERNEL}; shared with other builds: 1-min load average at the start of each run ${loads.length ? `${Math.min(...loads).toFixed(2)}–${Math.max(...loads).toFixed(2)}` : '?'}. Server and load generator share the 2 cores, so absolute numbers are noisy and the load generator's own CPU caps the fastest rows; ratios are from the same run.`);
md.push(`- Versions: ${env.BENCH_VERSIONS}.`);
md.push(`- Parameters: ${env.BENCH_PARAMS}.`);
md.push(`- Both servers: 127.0.0.1, HS256 secret shared, token row checked in SQLite, pingInterval 25 s / pingTimeout 20 s, fresh database per server seeded with the same bench users, a fresh process for every scenario. im-server: \`RUST_LOG=warn\`, otherwise its defaults (\`legacy\` failure mode, \`multi\` login policy, its own SQLite settings); Node: \`NODE_ENV=production\`, single process, in-memory adapter, WAL + synchronous=NORMAL (server.js). SQLite journal mode found in the files after the run: ${env.BENCH_JOURNAL}.`);
md.push('- Idle row only: both servers run with `MALLOC_MMAP_THRESHOLD_=131072`, so the argon2 blocks of the logins loadgen does just before it reads "before" go back to the kernel instead of staying in glibc\'s arenas, where the connections would be carved out of them without RSS growth (a per-connection figure near zero). Allocations under 128 KiB, i.e. everything a connection allocates, are unaffected. Every other row runs with default malloc settings.');
md.push('- Open files: the hard limit here is 20,000 per process (`ulimit -Hn`), so no run holds more than 18,000 sockets in one process.');
md.push(`- Reproduce: \`${env.BENCH_CMD}\` (one command; raw JSON lines with \`--keep\`). One scenario by hand: see bench/loadgen/README.md.`);
md.push('<!-- compare.sh:end -->');
const generated = md.join('\n') + '\n';

let text;
const header = '# Benchmarks: im-server vs a Node/socket.io gateway\n\n';
if (fs.existsSync(outFile)) {
  const old = fs.readFileSync(outFile, 'utf8');
  const b = old.indexOf('<!-- compare.sh:begin'), e = old.indexOf('<!-- compare.sh:end -->');
  text = b >= 0 && e > b ? old.slice(0, b) + generated + old.slice(e + '<!-- compare.sh:end -->'.length).replace(/^\n/, '')
    : old.trimEnd() + '\n\n' + generated;
} else {
  text = header + generated;
}
fs.writeFileSync(outFile, text);
if (problems.length) {
  console.error('compare.sh: runs with errors:\n  ' + problems.join('\n  '));
  process.exit(quick === '1' ? 1 : 0);
}
JS
log "report written: $OUT"
if ((QUICK)); then
    cat "$OUT" >&2
    if ((rc != 0)); then die "quick comparison: some scenario did not run cleanly"; fi
    log "quick comparison OK in $((SECONDS - T_START))s"
fi
exit 0
}

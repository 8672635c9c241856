#!/usr/bin/env bash
# deploy/test.sh — checks the deployment files of im-server, and runs the PM2 + nginx recipe for real.
#
#   bash deploy/test.sh          (scripts/test.sh runs it as the `deploy` stage)
#
# 1. Static, no Docker engine needed:
#    - Dockerfile: toolchain/base images, `cargo build --release --locked --bin im-server` producing
#      the path the runtime stage COPYs (cargo metadata: bin name, target dir convention), non-root
#      USER with the uid created, WORKDIR/VOLUME/ENV/EXPOSE/HEALTHCHECK/STOPSIGNAL, exec-form
#      ENTRYPOINT; the build context after .dockerignore (emulated) holds every file the build reads
#      (workspace manifests with Cargo.lock consistent, include_bytes! targets) and no *.db / *.env;
#    - docker-compose.yml: structure (two nodes of one image, one env file, distinct node ids,
#      Redis RESP3, PostgreSQL, nginx with the repo's conf, healthchecks, depends_on conditions);
#      `docker compose config` only when docker compose exists (it does not here: skipped, said so);
#    - deploy/nginx/im-server.conf: `nginx -t` on a wrapper that includes it unchanged, plus the
#      directives a Socket.IO proxy needs;
#    - deploy/pm2/ecosystem.config.js: loaded with the example env file (two fork-mode apps, one
#      settings file, kill_timeout > shutdown_timeout_secs, log files, merge_logs).
# 2. The recipe: Redis + PostgreSQL (scripts/services.sh), `im-server migrate up` + `user add`, two
#    nodes under PM2 with the repo's ecosystem file (dedicated PM2_HOME; ports/paths through the env
#    vars the file reads), nginx with the repo's conf (only its marked lines rewritten for loopback
#    ports) in front, then deploy/check/check.test.mjs: socket.io-client through nginx over websocket
#    and polling, users on different nodes, logout kick across nodes, `pm2 reload` with clients
#    reconnecting by themselves and stored messages still there.
#
# Knobs: IM_SERVER_BIN (default target/debug/im-server), IM_DEPLOY_KEEP=1 keeps the temp dir,
#        IM_DEPLOY_STATIC_ONLY=1 runs part 1 only (a few seconds, no services).
set -euo pipefail
{

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD
# shellcheck source=scripts/services.sh
source "$ROOT/scripts/services.sh"
export PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1
BIN=${IM_SERVER_BIN:-$ROOT/target/debug/im-server}
T0=$SECONDS

PASSED=0
FAILED=0
SKIPPED=0
FAILS=()
section() { printf '\n---- %s ----\n' "$*"; }
pass() { PASSED=$((PASSED + 1)); printf '  ok    %s\n' "$*"; }
fail() { FAILED=$((FAILED + 1)); FAILS+=("$*"); printf '  FAIL  %s\n' "$*"; }
skip() { SKIPPED=$((SKIPPED + 1)); printf '  skip  %s\n' "$*"; }
# check DESCRIPTION COMMAND...   (the command's output is shown only when it fails)
check() {
    local desc=$1 out
    shift
    if out=$("$@" 2>&1); then pass "$desc"; else fail "$desc"; printf '%s\n' "$out" | sed 's/^/        /' | tail -n 40; fi
}

TMP=$(mktemp -d /tmp/im-deploy.XXXXXX)
chmod 755 "$TMP"

# The recipe runs in a subshell (so errexit applies inside it): what must be undone is recorded in
# files under $TMP, and undone here whatever happened.
cleanup() {
    local rc=$? NGINX_PID PG_DB PG_ADMIN_URL
    set +e
    if [[ -d $TMP/pm2 ]]; then
        PM2_HOME=$TMP/pm2 timeout 60 pm2 kill >/dev/null 2>&1
    fi
    NGINX_PID=$(cat "$TMP/nginx.bgpid" 2>/dev/null)
    PG_DB=$(cat "$TMP/pg_db" 2>/dev/null)
    PG_ADMIN_URL=$(cat "$TMP/pg_admin_url" 2>/dev/null)
    # nginx's graceful stop is QUIT; lib_stop_pid sends SIGKILL after 5 s
    if [[ -n $NGINX_PID ]]; then lib_stop_pid "$NGINX_PID" 5 QUIT; fi
    if [[ -n $PG_DB ]]; then
        PGCONNECT_TIMEOUT=5 timeout 30 "${PSQL:-psql}" -X -q "$PG_ADMIN_URL" -c "DROP DATABASE IF EXISTS $PG_DB WITH (FORCE)" >/dev/null 2>&1
    fi
    if [[ ${IM_DEPLOY_KEEP:-0} == 1 ]]; then echo "(IM_DEPLOY_KEEP=1: kept $TMP)"; else rm -rf "$TMP"; fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# =================================================================================================
# 1a. Dockerfile
section "Dockerfile (static)"

DF=$ROOT/Dockerfile
# Instructions with continuation lines joined, comments dropped: one per line.
df_lines() { sed -e '/^[[:space:]]*#/d' "$DF" | sed -e ':a' -e '/\\$/N; s/\\\n/ /; ta'; }
# Lines of the stage that starts at the FROM matching $1 (up to the next FROM).
df_stage() { df_lines | awk -v pat="$1" 'toupper($1)=="FROM" {on = ($0 ~ pat)} on'; }
BUILDER=$(df_stage 'AS[[:space:]]+builder')
RUNTIME=$(df_lines | awk 'toupper($1)=="FROM" {buf=""} {buf = buf $0 "\n"} END {printf "%s", buf}')

check "builder stage is rust:1.95-slim-bookworm AS builder" grep -Eq '^FROM rust:1\.95-slim-bookworm AS builder$' <<<"$BUILDER"
check "runtime stage is debian:bookworm-slim" grep -Eq '^FROM debian:bookworm-slim$' <<<"$RUNTIME"
check "builder runs: cargo build --release --locked --bin im-server" grep -Eq 'cargo build --release --locked --bin im-server( |$)' <<<"$BUILDER"

B_WORKDIR=$(awk 'toupper($1)=="WORKDIR" {w=$2} END {print w}' <<<"$BUILDER")
COPY_LINE=$(grep -E '^COPY --from=builder ' <<<"$RUNTIME" || true)
COPY_SRC=$(awk '{print $3}' <<<"$COPY_LINE")
COPY_DST=$(awk '{print $4}' <<<"$COPY_LINE")
# cargo's convention, asked from cargo itself: <workspace>/target/release/<bin name>, with no
# CARGO_TARGET_DIR / build.target-dir to move it (the image sets none; this shell must not either).
(cd "$ROOT" && env -u CARGO_TARGET_DIR -u CARGO_BUILD_TARGET_DIR cargo metadata --no-deps --format-version 1 >"$TMP/metadata.json" 2>"$TMP/metadata.err") || cat "$TMP/metadata.err"
cargo_bin_ok() {
    python3 - "$ROOT" "$B_WORKDIR" "$COPY_SRC" "$TMP/metadata.json" <<'EOF'
import json, sys, os
root, workdir, src, meta = sys.argv[1:5]
d = json.load(open(meta))
bins = [t["name"] for p in d["packages"] if p["name"] == "im-server" for t in p["targets"] if "bin" in t["kind"]]
assert bins == ["im-server"], f"package im-server has bin targets {bins}, expected ['im-server']"
rel = os.path.relpath(d["target_directory"], d["workspace_root"])
assert rel == "target", f"cargo's target dir is {d['target_directory']} (relative: {rel}), not <workspace>/target"
assert os.path.realpath(d["workspace_root"]) == os.path.realpath(root), d["workspace_root"]
want = os.path.join(workdir, rel, "release", bins[0])
assert src == want, f"COPY --from=builder takes {src!r}, cargo builds {want!r}"
print(f"{want} <- workspace {workdir}, bin {bins[0]}")
EOF
}
check "COPY --from=builder $COPY_SRC = builder WORKDIR + cargo's target/release/<bin> (cargo metadata: bin im-server)" cargo_bin_ok
check "Dockerfile sets no CARGO_TARGET_DIR (would move the binary)" bash -c '! grep -q CARGO_TARGET_DIR "$1"' _ "$DF"
check "ENTRYPOINT is exec form [\"$COPY_DST\"] and CMD [\"serve\"]" \
    bash -c 'grep -Fxq "ENTRYPOINT [\"$2\"]" <<<"$1" && grep -Fxq "CMD [\"serve\"]" <<<"$1"' _ "$RUNTIME" "$COPY_DST"
R_USER=$(awk 'toupper($1)=="USER" {u=$2} END {print u}' <<<"$RUNTIME")
check "runtime USER is non-root ($R_USER) and uid 10001 is created" \
    bash -c 'u=${1%%:*}; [[ -n $u && $u != root && $u != 0 ]] && { [[ $u == 10001 ]] || [[ $u == im ]]; } && grep -Eq "useradd .*--uid 10001" <<<"$2"' _ "$R_USER" "$RUNTIME"
check "WORKDIR /data and VOLUME /data; /data owned by the runtime user" \
    bash -c 'grep -Fxq "WORKDIR /data" <<<"$1" && grep -Eq "^VOLUME (/data|\[\"/data\"\])$" <<<"$1" && grep -Eq "chown [^ ]*im[^ ]* /data|chown 10001" <<<"$1"' _ "$RUNTIME"
check "ENV HOST=0.0.0.0 PORT=3000 DATABASE_URL=sqlite:///data/im.db?mode=rwc" \
    bash -c 'e=$(grep "^ENV " <<<"$1"); for kv in HOST=0.0.0.0 PORT=3000 "DATABASE_URL=sqlite:///data/im.db?mode=rwc"; do grep -Fq -- "$kv" <<<"$e" || { echo "missing $kv in: $e"; exit 1; }; done' _ "$RUNTIME"
check "EXPOSE 3000" grep -Fxq "EXPOSE 3000" <<<"$RUNTIME"
check "HEALTHCHECK probes /health, with curl installed in the runtime stage" \
    bash -c 'h=$(grep "^HEALTHCHECK " <<<"$1"); grep -Eq "CMD .*curl .*127\.0\.0\.1:[^ ]*/health" <<<"$h" && grep -Eq "apt-get install .*curl" <<<"$1"' _ "$RUNTIME"
check "STOPSIGNAL SIGTERM" grep -Fxq "STOPSIGNAL SIGTERM" <<<"$RUNTIME"

# The build context: emulate .dockerignore (Docker's rules: patterns relative to the context root,
# `**` any depth, a matching directory excludes everything under it, later `!` lines re-include).
CTX=$TMP/context
make_context() {
    python3 -c '
import os, re, shutil, sys
root, ctx = sys.argv[1], sys.argv[2]
rules = []
for line in open(os.path.join(root, ".dockerignore")):
    line = line.strip()
    if not line or line.startswith("#"):
        continue
    neg = line.startswith("!")
    pat = line[1:] if neg else line
    pat = os.path.normpath(pat.strip("/"))
    rx = ""
    i = 0
    while i < len(pat):
        if pat.startswith("**/", i):
            rx += "(?:.*/)?"; i += 3
        elif pat.startswith("**", i):
            rx += ".*"; i += 2
        elif pat[i] == "*":
            rx += "[^/]*"; i += 1
        elif pat[i] == "?":
            rx += "[^/]"; i += 1
        else:
            rx += re.escape(pat[i]); i += 1
    rules.append((neg, re.compile(rx + "$")))
def excluded(path):
    parts = path.split("/")
    out = False
    for neg, rx in rules:
        if any(rx.match("/".join(parts[:n])) for n in range(1, len(parts) + 1)):
            out = not neg
    return out
# Docker sends the whole directory (git-ignored files included) minus .dockerignore: walk it, pruning
# excluded directories when no "!" rule could bring something under them back.
prune = not any(neg for neg, _ in rules)
n = 0
for d, dirs, files in os.walk(root):
    reld = os.path.relpath(d, root)
    reld = "" if reld == "." else reld + "/"
    if prune:
        dirs[:] = [x for x in dirs if not excluded(reld + x)]
    for f in files:
        rel = reld + f
        if excluded(rel) or not os.path.isfile(os.path.join(root, rel)):
            continue
        dst = os.path.join(ctx, rel)
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        shutil.copy2(os.path.join(root, rel), dst)
        n += 1
print(f"{n} files in the build context")
' "$ROOT" "$CTX"
}
context_builds() {
    # every workspace manifest present and Cargo.lock consistent with them (--locked, as the image
    # builds); not --offline: a fresh machine may not have every manifest cached yet
    local host
    host=$(rustc -vV | sed -n 's/^host: //p')
    (cd "$CTX" && cargo metadata --locked --format-version 1 --filter-platform "$host" >/dev/null) || return 1
    # every file the crate compiles in (include_bytes!/include_str!) is in the context
    local f inc absent=0
    while IFS=: read -r f inc; do
        inc=$(sed -E 's/.*include_(bytes|str)!\("([^"]+)"\).*/\2/' <<<"$inc")
        if [[ ! -f $CTX/$(dirname "$f")/$inc ]]; then echo "missing in context: $(dirname "$f")/$inc (from $f)"; absent=1; fi
    done < <(cd "$CTX" && grep -rEo 'include_(bytes|str)!\("[^"]+"\)' --include='*.rs' . | sed 's|^\./||')
    ((absent == 0)) || return 1
    [[ -f $CTX/Cargo.lock && -f $CTX/src/main.rs ]]
}
context_clean() {
    local bad
    bad=$(cd "$CTX" && find . \( -name '*.db' -o -name '*.env' -o -name '.env' -o -name node_modules -o -name target \) -print | head)
    [[ -z $bad ]] || { echo "should not be in the image context: $bad"; return 1; }
}
check ".dockerignore: build context emulated" make_context
check "build context has the whole workspace: cargo metadata --locked, include_bytes! files present" context_builds
check "build context has no *.db, *.env, node_modules, target" context_clean

# =================================================================================================
# 1b. docker-compose.yml
section "docker-compose.yml (static)"

if ! python3 -c 'import yaml' 2>/dev/null; then services_install_extra python3-yaml >/dev/null 2>&1 || true; fi
compose_ok() {
    python3 - "$ROOT" <<'EOF'
import os, sys, yaml
root = sys.argv[1]
c = yaml.safe_load(open(os.path.join(root, "docker-compose.yml")))
s = c["services"]
nodes = [n for n, v in s.items() if v.get("build") or v.get("image") == "im-server:latest"]
assert len(nodes) == 2, f"two im-server nodes expected, got {nodes}"
a, b = (s[n] for n in nodes)
assert a.get("image") == b.get("image") and a.get("build") == b.get("build"), "both nodes use the same image"
def env_files(v):
    return [e if isinstance(e, str) else e["path"] for e in v.get("env_file", [])]
assert env_files(a) == env_files(b) and len(env_files(a)) == 1, f"one shared env file: {env_files(a)} / {env_files(b)}"
envf = env_files(a)[0]
example = os.path.join(root, envf + ".example")
assert os.path.isfile(example), f"{envf}.example is committed"
kv = dict(l.split("=", 1) for l in open(example).read().splitlines() if l and not l.startswith("#") and "=" in l)
for k in ("JWT_SECRET", "DATABASE_URL", "REDIS_URL"):
    assert k in kv, f"{k} in {example}"
    for n in nodes:
        assert k not in (s[n].get("environment") or {}), f"{k} set per node in {n}: would drift"
assert kv["REDIS_URL"].endswith("?protocol=resp3"), kv["REDIS_URL"]
assert kv["DATABASE_URL"].startswith(("postgres://", "mysql://")), kv["DATABASE_URL"]
ids = [ (s[n].get("environment") or {}).get("IM_SERVER__NODE_ID") for n in nodes ]
assert all(ids) and len(set(ids)) == 2, f"distinct IM_SERVER__NODE_ID: {ids}"
ports = [ str((s[n].get("environment") or {}).get("PORT")) for n in nodes ]
conf = open(os.path.join(root, "deploy/nginx/im-server.conf")).read()
for p in ports:
    assert f"127.0.0.1:{p} " in conf, f"node port {p} is an upstream in deploy/nginx/im-server.conf"
for n in nodes:
    assert s[n].get("network_mode") == "service:nginx", f"{n} shares nginx's network namespace"
    dep = s[n]["depends_on"]
    for svc in ("redis", "postgres"):
        assert dep[svc]["condition"] == "service_healthy", f"{n} waits for {svc} healthy"
redis = next(v for k, v in s.items() if str(v.get("image", "")).startswith("redis:7"))
pg = next(v for k, v in s.items() if str(v.get("image", "")).startswith(("postgres:15", "mariadb")))
ngx = next(v for k, v in s.items() if str(v.get("image", "")).startswith("nginx"))
for name, v in (("redis", redis), ("postgres", pg), ("nginx", ngx)):
    assert "healthcheck" in v, f"{name} has a healthcheck"
assert any("deploy/nginx/im-server.conf" in str(m) for m in ngx.get("volumes", [])), "nginx mounts deploy/nginx/im-server.conf"
print(f"nodes {nodes} ids {ids} ports {ports}, env file {envf}")
EOF
}
check "compose: 2 nodes, 1 image, 1 env file (JWT secret, DB, RESP3 Redis), distinct node ids, redis:7, postgres:15, nginx + repo conf, healthchecks, depends_on healthy" compose_ok
if docker compose version >/dev/null 2>&1; then
    compose_config() {
        local d=$TMP/compose
        mkdir -p "$d"
        cp -r "$ROOT/docker-compose.yml" "$ROOT/deploy" "$d/"
        for f in "$d"/deploy/docker/*.env.example; do cp "$f" "${f%.example}"; done
        (cd "$d" && docker compose config -q)
    }
    check "docker compose config" compose_config
else
    skip "docker compose config: docker compose is not available on this machine (no Docker engine); structure checked above"
fi

# =================================================================================================
# 1c. nginx conf
section "deploy/nginx/im-server.conf (static)"

services_install_extra nginx
NGINX_BIN=$(command -v nginx || echo /usr/sbin/nginx)
CONF=$ROOT/deploy/nginx/im-server.conf
NG=$TMP/nginx
mkdir -p "$NG"
# wrapper: everything nginx writes goes to $NG; the repo's file is included as it is
nginx_wrapper() { # CONF_TO_INCLUDE
    cat <<EOF
$([[ $(id -u) == 0 ]] && echo "user root root;")
worker_processes 1;
pid $NG/nginx.pid;
error_log $NG/error.log info;
daemon off;
events { worker_connections 1024; }
http {
    access_log $NG/access.log;
    client_body_temp_path $NG/client_body;
    proxy_temp_path $NG/proxy;
    fastcgi_temp_path $NG/fastcgi;
    uwsgi_temp_path $NG/uwsgi;
    scgi_temp_path $NG/scgi;
    include $1;
}
EOF
}
nginx_wrapper "$CONF" >"$NG/verbatim.conf"
check "nginx -t on a wrapper including the repo's im-server.conf unchanged" "$NGINX_BIN" -t -p "$NG" -e "$NG/error.log" -c "$NG/verbatim.conf"
ngx_has() { grep -Eq "$1" "$CONF"; }
check "map \$http_upgrade \$connection_upgrade" ngx_has 'map \$http_upgrade \$connection_upgrade'
check "upstream with sticky sessions (ip_hash or hash … consistent)" ngx_has '^[[:space:]]*(ip_hash;|hash [^;]+ consistent;)'
check "two upstream servers, marked @node-a/@node-b" bash -c '[[ $(grep -c "^[[:space:]]*server .*# @node-[ab]$" "$1") == 2 ]]' _ "$CONF"
check "proxy_http_version 1.1" ngx_has 'proxy_http_version 1\.1;'
check "Upgrade and Connection headers forwarded" bash -c 'grep -Eq "proxy_set_header Upgrade +\\\$http_upgrade;" "$1" && grep -Eq "proxy_set_header Connection +\\\$connection_upgrade;" "$1"' _ "$CONF"
check "Host, X-Forwarded-For, X-Forwarded-Proto, X-Real-IP forwarded" bash -c 'for h in "Host +\\\$host" "X-Forwarded-For +\\\$proxy_add_x_forwarded_for" "X-Forwarded-Proto +\\\$scheme" "X-Real-IP +\\\$remote_addr"; do grep -Eq "proxy_set_header $h;" "$1" || { echo "missing $h"; exit 1; }; done' _ "$CONF"
socketio_block() { awk '/location \/socket\.io\/ \{/,/^    \}/' "$CONF"; }
check "/socket.io/: proxy_buffering off, read/send timeouts > 45 s (ping interval + timeout)" bash -c '
    b=$(awk "/location \\/socket\\.io\\/ \\{/,/^    \\}/" "$1")
    grep -q "proxy_buffering off;" <<<"$b" || { echo "no proxy_buffering off"; exit 1; }
    for d in proxy_read_timeout proxy_send_timeout; do
        v=$(grep -Eo "$d [0-9]+s;" <<<"$b" | grep -Eo "[0-9]+") || { echo "no $d"; exit 1; }
        ((v > 45)) || { echo "$d ${v}s <= 45s"; exit 1; }
    done' _ "$CONF"

# =================================================================================================
# 1d. PM2 ecosystem
section "deploy/pm2/ecosystem.config.js (static)"

ECO=$ROOT/deploy/pm2/ecosystem.config.js
eco_ok() { # ENV_FILE
    IM_ENV_FILE=$1 IM_WORKDIR=$TMP/eco-work IM_LOG_DIR=$TMP/eco-logs IM_PORTS='' node -e '
const assert = require("assert");
const fs = require("fs");
const eco = require(process.argv[1]);
const apps = eco.apps;
assert.equal(apps.length, 2, "two apps");
assert.deepEqual(apps.map((a) => a.env.PORT), ["3001", "3002"]);
const shared = fs.readFileSync(process.env.IM_ENV_FILE, "utf8");
const secs = Number((/^IM_SERVER__SHUTDOWN_TIMEOUT_SECS=(\d+)/m.exec(shared) || [0, 10])[1]);
for (const a of apps) {
  assert.equal(a.exec_mode, "fork", `${a.name}: fork mode`);
  assert.equal(a.interpreter, "none", `${a.name}: a binary`);
  assert.deepEqual(a.args, ["serve"]);
  assert.ok(a.kill_timeout > secs * 1000, `${a.name}: kill_timeout ${a.kill_timeout} > shutdown ${secs}s`);
  assert.equal(a.merge_logs, true);
  assert.ok(a.out_file && a.error_file, "log files");
  assert.ok(a.filter_env && a.filter_env.includes("IM_"), "inherited config filtered");
}
for (const k of ["JWT_SECRET", "DATABASE_URL", "REDIS_URL", "NODE_ENV"]) {
  assert.ok(apps[0].env[k], `${k} comes from the env file`);
  assert.equal(apps[0].env[k], apps[1].env[k], `${k} identical on both apps`);
}
assert.notEqual(apps[0].env.IM_SERVER__NODE_ID, apps[1].env.IM_SERVER__NODE_ID, "distinct node ids");
console.log(apps.map((a) => `${a.name} ${a.env.IM_SERVER__NODE_ID} kill_timeout=${a.kill_timeout}`).join("; "));
' "$ECO"
}
check "ecosystem with the example env file: 2 fork-mode apps on 3001/3002, shared settings, kill_timeout > shutdown, logs, merge_logs" eco_ok "$ROOT/deploy/pm2/im-server.env.example"
check "pm2 env example: REDIS_URL uses RESP3, production profile, placeholder secret too short to start" bash -c '
    f=$1; grep -Eq "^REDIS_URL=redis://.*\?protocol=resp3$" "$f" && grep -Fxq NODE_ENV=production "$f" &&
    s=$(sed -n "s/^JWT_SECRET=//p" "$f") && ((${#s} < 32))' _ "$ROOT/deploy/pm2/im-server.env.example"

# =================================================================================================
# 2. The recipe, for real
section "recipe: Redis + PostgreSQL, 2 × im-server under PM2, nginx in front"

recipe() {
    services_install_extra nginx pm2
    if [[ ! -x $BIN ]]; then (cd "$ROOT" && cargo build --bin im-server); fi
    if [[ -z ${IM_TEST_REDIS_URL:-} || -z ${IM_TEST_POSTGRES_URL:-} ]]; then
        IM_TEST_SERVICES=redis,postgres services_up
    fi
    echo "  redis $IM_TEST_REDIS_URL, postgres $IM_TEST_POSTGRES_URL, binary $BIN"
    PSQL=$(command -v psql || { _svc_pg_bins && echo "$PG_PSQL_BIN"; })

    # ports: the ones the repo's files name, unless taken on this machine
    port_free() { ! lib_port_open "$1"; }
    local p1=3001 p2=3002 np=18080
    if ! port_free "$p1" || ! port_free "$p2"; then
        for p1 in $(seq 23001 2 23099); do p2=$((p1 + 1)); port_free "$p1" && port_free "$p2" && break; done
    fi
    while ! port_free "$np"; do np=$((np + 1)); done
    echo "  nodes on 127.0.0.1:$p1 and :$p2, nginx on 127.0.0.1:$np"

    # a fresh database for this run
    local PG_ADMIN_URL=$IM_TEST_POSTGRES_URL/postgres PG_DB=im_deploy_$$
    echo "$PG_ADMIN_URL" >"$TMP/pg_admin_url"
    echo "$PG_DB" >"$TMP/pg_db"
    PGCONNECT_TIMEOUT=5 "$PSQL" -X -q -v ON_ERROR_STOP=1 "$PG_ADMIN_URL" -c "CREATE DATABASE $PG_DB"

    # the ONE settings file, made from the committed example (only the site-specific values change)
    local envf=$TMP/im-server.env secret
    secret=$(head -c 48 /dev/urandom | base64 | tr -d '\n/+=')
    sed -e "s|^JWT_SECRET=.*|JWT_SECRET=$secret|" \
        -e "s|^DATABASE_URL=.*|DATABASE_URL=$IM_TEST_POSTGRES_URL/$PG_DB|" \
        -e "s|^REDIS_URL=.*|REDIS_URL=$IM_TEST_REDIS_URL|" \
        -e "s|^FRONTEND_URL=.*|FRONTEND_URL=http://127.0.0.1:$np|" \
        "$ROOT/deploy/pm2/im-server.env.example" >"$envf"
    chmod 600 "$envf"
    mkdir -p "$TMP/work"

    # schema once, then two users — as README "Deploy" tells an operator (production: no demo users)
    local db_url
    db_url=$(sed -n 's/^DATABASE_URL=//p' "$envf")
    (
        cd "$TMP/work"
        env -i PATH="$PATH" DATABASE_URL="$db_url" "$BIN" migrate up
        env -i PATH="$PATH" DATABASE_URL="$db_url" "$BIN" user add --username alice --password alice-password-1 --display-name Alice
        env -i PATH="$PATH" DATABASE_URL="$db_url" "$BIN" user add --username bob --password bob-password-1 --type kefu --display-name Bob
    ) >"$TMP/setup.log" 2>&1 || { cat "$TMP/setup.log"; return 1; }

    # PM2 with a private home; the ecosystem file reads these
    export PM2_HOME=$TMP/pm2
    export IM_SERVER_BIN=$BIN IM_ENV_FILE=$envf IM_PORTS=$p1,$p2 IM_WORKDIR=$TMP/work IM_LOG_DIR=$TMP/logs
    pm2 start "$ECO" >"$TMP/pm2-start.log" 2>&1 || { cat "$TMP/pm2-start.log"; return 1; }
    local host node_a node_b
    host=$(node -p 'require("os").hostname().split(".")[0]')   # as the ecosystem file names them
    node_a=$host-$p1
    node_b=$host-$p2

    wait_health() { # PORT NODE_ID
        local i body
        for i in $(seq 100); do
            body=$(curl -fsS --max-time 2 "http://127.0.0.1:$1/health" 2>/dev/null) && grep -q "\"node_id\":\"$2\"" <<<"$body" && return 0
            sleep 0.2
        done
        echo "node $2 on :$1 not healthy after 20 s; last answer: ${body:-none}"
        tail -n 30 "$TMP/logs/im-server-$1.err.log" 2>/dev/null
        return 1
    }
    wait_health "$p1" "$node_a"
    wait_health "$p2" "$node_b"
    echo "  PM2 started $node_a and $node_b"

    # nginx: the repo's conf with only its marked lines pointed at this run's ports
    local gen=$NG/im-server.conf
    sed -E -e "s|^([[:space:]]*)listen [^;]*;([[:space:]]*# @listen)$|\1listen 127.0.0.1:$np;\2|" \
        -e "s|^([[:space:]]*)server [^ ]+ (.*# @node-a)$|\1server 127.0.0.1:$p1 \2|" \
        -e "s|^([[:space:]]*)server [^ ]+ (.*# @node-b)$|\1server 127.0.0.1:$p2 \2|" "$CONF" >"$gen"
    if ! diff <(grep -v '# @\(listen\|node-a\|node-b\)$' "$CONF") <(grep -v '# @\(listen\|node-a\|node-b\)$' "$gen") >/dev/null \
        || [[ $(diff "$CONF" "$gen" | grep -c '^>') -gt 3 ]]; then
        echo "the generated nginx conf differs from the repo's beyond the 3 marked lines:"
        diff "$CONF" "$gen"
        return 1
    fi
    nginx_wrapper "$gen" >"$NG/run.conf"
    "$NGINX_BIN" -t -q -p "$NG" -e "$NG/error.log" -c "$NG/run.conf"
    "$NGINX_BIN" -p "$NG" -e "$NG/error.log" -c "$NG/run.conf" &
    local NGINX_PID=$!
    echo "$NGINX_PID" >"$TMP/nginx.bgpid"
    local i
    for i in $(seq 50); do curl -fsS --max-time 2 "http://127.0.0.1:$np/health" >/dev/null 2>&1 && break; sleep 0.2; done
    curl -fsS --max-time 2 "http://127.0.0.1:$np/health" >/dev/null || { echo "nginx not answering"; cat "$NG/error.log"; return 1; }
    echo "  nginx (pid $NGINX_PID) in front on 127.0.0.1:$np"

    # PM2 really runs what the file says, and nothing from this shell leaked into the apps' env
    IM_P1=$p1 node -e '
const list = JSON.parse(require("child_process").execFileSync("pm2", ["jlist"], { encoding: "utf8" }));
const apps = list.filter((p) => p.name.startsWith("im-server-"));
if (apps.length !== 2) throw new Error(`pm2 runs ${apps.length} im-server apps`);
for (const p of apps) {
  const e = p.pm2_env;
  if (e.exec_mode !== "fork_mode") throw new Error(`${p.name}: ${e.exec_mode}`);
  if (e.status !== "online") throw new Error(`${p.name}: ${e.status}`);
  const leaked = Object.keys(e.env || e).filter((k) => /^IM_TEST_|^IM_ENV_FILE$|^IM_PORTS$/.test(k));
  if (leaked.length) throw new Error(`${p.name}: inherited ${leaked}`);
}
console.log("  pm2: " + apps.map((p) => `${p.name} pid ${p.pid} ${p.pm2_env.status}`).join(", "));
'

    # the client check, through nginx
    local deps=$ROOT/deploy/check
    lib_npm_deps "$deps"
    local before_pids
    before_pids=$(pm2 jlist | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>console.log(JSON.parse(s).map(p=>p.pid).sort().join(",")))')
    (
        cd "$deps"
        IM_NGINX_URL=http://127.0.0.1:$np IM_NODE_IDS=$node_a,$node_b \
        IM_USER_A=alice:alice-password-1 IM_USER_B=bob:bob-password-1 \
        IM_RELOAD_CMD="pm2 reload '$ECO' --update-env" \
        IM_NGINX_READ_TIMEOUT=$(awk '/location \/socket\.io\/ \{/,/^    \}/' "$CONF" | grep -Eo 'proxy_read_timeout [0-9]+[smh]?' | awk '{print $2}') \
            timeout -k 10 400 node --test --test-reporter=spec check.test.mjs
    ) || CHECK_FAILED=1

    # after the reload: new processes, each stopped gracefully (exit code 0, not SIGKILL)
    local after_pids
    after_pids=$(pm2 jlist | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>console.log(JSON.parse(s).map(p=>p.pid).sort().join(",")))')
    if [[ $after_pids == "$before_pids" ]]; then echo "pm2 reload did not restart the processes ($after_pids)"; return 1; fi
    local name
    for name in "im-server-$p1" "im-server-$p2"; do
        grep -Eq "App \[$name:[0-9]+\] exited with code \[0\]" "$PM2_HOME/pm2.log" \
            || { echo "$name did not exit with code 0 on reload:"; grep -F "$name" "$PM2_HOME/pm2.log" | tail -n 5; return 1; }
        [[ -s $TMP/logs/$name.err.log ]] || { echo "no log file $TMP/logs/$name.err.log"; return 1; }
    done
    grep -q "shutting down" "$TMP/logs/im-server-$p1.err.log" || { echo "no graceful shutdown line in the node log"; return 1; }
    echo "  reload: pids $before_pids -> $after_pids, both exited 0 (graceful), logs in $TMP/logs"
    [[ ${CHECK_FAILED:-0} == 0 ]]
}

CHECK_FAILED=0
if [[ ${IM_DEPLOY_STATIC_ONLY:-0} == 1 ]]; then
    RECIPE_RC=skip
    skip "recipe: IM_DEPLOY_STATIC_ONLY=1"
else
    set +e
    (
        set -e
        recipe
    )
    RECIPE_RC=$?
    set -e
fi
if [[ $RECIPE_RC == skip ]]; then
    :
elif ((RECIPE_RC == 0)); then
    pass "recipe: PM2 + nginx + Redis + PostgreSQL, websocket + polling through nginx, cross-node delivery and kick, pm2 reload"
else
    fail "recipe (see the output above)"
    for f in "$TMP"/logs/*.err.log; do
        [[ -f $f ]] || continue
        printf '    ---- tail of %s ----\n' "$f"
        tail -n 25 "$f" | sed 's/^/    /'
    done
    [[ -f $NG/error.log ]] && { echo "    ---- nginx error log (tail) ----"; tail -n 15 "$NG/error.log" | sed 's/^/    /'; }
    [[ -f $TMP/pm2/pm2.log ]] && { echo "    ---- pm2.log (tail) ----"; tail -n 15 "$TMP/pm2/pm2.log" | sed 's/^/    /'; }
fi

# =================================================================================================
section "deploy/test.sh summary ($((SECONDS - T0)) s)"
for f in "${FAILS[@]}"; do printf '  FAILED: %s\n' "$f"; done
printf 'deploy: %d passed, %d failed, %d skipped\n' "$PASSED" "$FAILED" "$SKIPPED"
((FAILED == 0))
}

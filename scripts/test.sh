#!/usr/bin/env bash
# scripts/test.sh — THE one command that runs every test of im-server, on a fresh Debian machine too.
#
#   scripts/test.sh                      everything
#   scripts/test.sh -- <filter...>       pass a test-name filter to cargo nextest / cargo test
#   IM_TEST_STAGES=cargo,js scripts/test.sh
#                                        only some stages (lint, cargo, doctests, js, browser,
#                                        deploy, bench)
#   IM_TEST_KEEP_SERVICES=1 scripts/test.sh
#                                        leave Redis/MariaDB/PostgreSQL running afterwards, also
#                                        the ones this run started
#
# Stages:
#   lint       shellcheck on every tracked *.sh (installs Debian's shellcheck; .shellcheckrc)
#   services   Redis 127.0.0.1:16379, MariaDB :13306, PostgreSQL :15432 (scripts/services.sh;
#              installs missing Debian packages); the ones this run started are stopped on exit,
#              ones found running are reused (Redis flushed) and left running
#   build      vendor/check.sh (vendor/engineioxide = crates.io release + its patch), then
#              cargo build --workspace --bins                               (fails fast)
#   doctests   cargo test --workspace --doc --exclude engineioxide  (nextest does not run doctests;
#              the vendored crate's examples need upstream's dev-dependencies)
#   cargo      cargo nextest run --workspace --no-fail-fast (cargo test if no nextest)
#   js         tests/js: npm ci when needed, node --test on *.test.mjs, IM_SERVER_BIN exported
#   browser    tests/browser: npm ci when needed, node --test, headless Debian chromium
#   deploy     deploy/test.sh (needs nginx, pm2)
#   bench      bench/compare.sh --quick
# Test stages all run even if one fails; a summary at the end; non-zero exit if any failed.
set -euo pipefail
# The whole script is one { ... } block so bash parses it completely before running any of it:
# editing or checking out this file while a run is in progress cannot derail that run.
{

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD
# shellcheck source=scripts/lib.sh
source "$ROOT/scripts/lib.sh"

# ------------------------------------------------------------------------------------------------
# arguments

TEST_ARGS=()
while (($#)); do
    case $1 in
        -h | --help)
            lib_usage "${BASH_SOURCE[0]}"
            exit 0
            ;;
        --)
            shift
            TEST_ARGS+=("$@")
            break
            ;;
        *)
            TEST_ARGS+=("$1")
            shift
            ;;
    esac
done

# ------------------------------------------------------------------------------------------------
# environment

export DEBIAN_FRONTEND=noninteractive
if [[ ${CI:-} == true || ${CI:-} == 1 ]]; then
    export CARGO_TERM_COLOR=never
    export NO_COLOR=1
fi
export RUST_BACKTRACE=${RUST_BACKTRACE:-1}
# npm packages must never download browsers of their own (no such network here): use Debian's.
export PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 PUPPETEER_SKIP_DOWNLOAD=1
export IM_SERVER_BIN=$ROOT/target/debug/im-server

# Per-stage time limits (seconds) so a hung stage still ends in a summary within CI's 90 minutes.
T_CARGO=${IM_TEST_TIMEOUT_CARGO:-3000}
T_JS=${IM_TEST_TIMEOUT_JS:-1200}
T_EXTRA=${IM_TEST_TIMEOUT_EXTRA:-900}

# ------------------------------------------------------------------------------------------------
# stage bookkeeping

STAGE_NAMES=()
STAGE_RESULTS=()
STAGE_SECS=()
STAGE_NOTES=()
FAILED=()

header() { printf '\n==== [%s] %s ====\n' "$(date +%H:%M:%S)" "$*"; }

record() { # name result secs note
    STAGE_NAMES+=("$1")
    STAGE_RESULTS+=("$2")
    STAGE_SECS+=("$3")
    STAGE_NOTES+=("${4:-}")
    if [[ $2 == FAIL ]]; then FAILED+=("$1"); fi
}

stage_selected() {
    local sel=${IM_TEST_STAGES:-all} s
    [[ $sel == all ]] && return 0
    for s in ${sel//,/ }; do [[ $s == "$1" ]] && return 0; done
    return 1
}

# run_stage NAME DESCRIPTION FUNCTION [ARGS...]
# The function runs in a subshell with errexit on (so a failing command inside fails the stage),
# and its failure is recorded rather than ending this script.
run_stage() {
    local name=$1 desc=$2 t0=$SECONDS rc
    shift 2
    header "$name: $desc"
    # In the background + `wait`, so that INT/TERM interrupt the wait at once and on_exit can
    # stop the stage's process tree (a foreground child would delay the traps until it ends).
    (
        set -euo pipefail
        "$@"
    ) &
    STAGE_PID=$!
    set +e
    wait "$STAGE_PID"
    rc=$?
    set -e
    STAGE_PID=
    if ((rc == 0)); then
        record "$name" PASS $((SECONDS - t0))
    elif ((rc == 124 || rc == 137)); then
        record "$name" FAIL $((SECONDS - t0)) "timed out (exit $rc)"
    else
        record "$name" FAIL $((SECONDS - t0)) "exit $rc"
    fi
    return 0
}

skip_stage() { # name reason
    header "$1: skipped ($2)"
    record "$1" SKIP 0 "$2"
}

summary() {
    local i
    header "summary"
    for i in "${!STAGE_NAMES[@]}"; do
        printf '  %-10s %-4s %6ss  %s\n' "${STAGE_NAMES[$i]}" "${STAGE_RESULTS[$i]}" \
            "${STAGE_SECS[$i]}" "${STAGE_NOTES[$i]}"
    done
    if ((${#FAILED[@]})); then
        printf 'RESULT: FAILED stages: %s\n' "${FAILED[*]}"
    else
        printf 'RESULT: OK, no stage failed\n'
    fi
}

finish() {
    summary
    if ((${#FAILED[@]})); then exit 1; fi
    exit 0
}

# ------------------------------------------------------------------------------------------------
# a. services

# shellcheck source=scripts/services.sh
source "$ROOT/scripts/services.sh"

STAGE_PID=

on_exit() {
    local rc=$?
    if [[ -n $STAGE_PID ]] && kill -0 "$STAGE_PID" 2>/dev/null; then
        echo "[test.sh] interrupted: stopping the running stage (pid $STAGE_PID)"
        lib_kill_tree "$STAGE_PID"
        wait "$STAGE_PID" 2>/dev/null || true
    fi
    if [[ ${IM_TEST_KEEP_SERVICES:-0} == 1 ]]; then
        echo "[test.sh] IM_TEST_KEEP_SERVICES=1: leaving services running (bash scripts/services.sh down)"
    else
        services_down_started || true
    fi
    return "$rc"
}
trap on_exit EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ------------------------------------------------------------------------------------------------
# a0. lint: first, it takes seconds and needs nothing else

# Every tracked shell script (git ls-files; all *.sh outside node_modules/target when this is not
# a git checkout), with the repo's .shellcheckrc; any finding fails the stage.
stage_lint() {
    services_install_extra shellcheck
    local files=()
    if git -C "$ROOT" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
        mapfile -t files < <(git -C "$ROOT" ls-files -- '*.sh')
    else
        mapfile -t files < <(find . \( -name node_modules -o -name target \) -prune -o -name '*.sh' -print | sed 's|^\./||' | sort)
    fi
    printf '%s; %d file(s): %s\n' "$(shellcheck --version | sed -n 's/^version: /shellcheck /p')" "${#files[@]}" "${files[*]}"
    shellcheck --external-sources "${files[@]}"
}
if stage_selected lint; then
    run_stage lint "shellcheck on the tracked *.sh" stage_lint
fi

NEED_SERVICES=0
for s in cargo doctests js browser deploy bench; do
    if stage_selected "$s"; then NEED_SERVICES=1; fi
done

if ((NEED_SERVICES)); then
    header "services: redis :16379, mariadb :13306, postgres :15432"
    t0=$SECONDS
    if services_up; then
        record services PASS $((SECONDS - t0)) "IM_TEST_SERVICES=$IM_TEST_SERVICES"
        env | grep '^IM_TEST_' | sort | sed 's/^/  /' || true
    else
        record services FAIL $((SECONDS - t0)) "see messages above"
        finish
    fi
fi

# ------------------------------------------------------------------------------------------------
# b. Rust: build, then tests

header "toolchain"
printf '  %s\n' "$(cargo --version)" "$(rustc --version)"
if command -v cargo-nextest >/dev/null 2>&1; then
    printf '  %s\n' "$(cargo nextest --version 2>/dev/null | head -n 1)"
fi

stage_build() {
    bash vendor/check.sh
    cargo build --workspace --bins
}

stage_cargo_tests() {
    if command -v cargo-nextest >/dev/null 2>&1; then
        local profile=()
        if [[ ${CI:-} == true && -f .config/nextest.toml ]] && grep -q '^\[profile\.ci\]' .config/nextest.toml; then
            profile=(--profile ci)
        fi
        timeout -k 30 "$T_CARGO" \
            cargo nextest run --workspace --no-fail-fast --no-tests=warn "${profile[@]}" "${TEST_ARGS[@]}"
    else
        echo "(cargo-nextest not installed: using cargo test)"
        timeout -k 30 "$T_CARGO" cargo test --workspace --no-fail-fast "${TEST_ARGS[@]}"
    fi
}

stage_doctests() {
    # --doc runs a lib's doctests even with `doctest = false`: the vendored engineioxide's
    # examples need upstream's dev-dependencies (axum), so they are left out here.
    timeout -k 30 "$T_CARGO" cargo test --workspace --doc --exclude engineioxide --no-fail-fast
}

if stage_selected cargo || stage_selected doctests || stage_selected js; then
    run_stage build "vendor/check.sh; cargo build --workspace --bins" stage_build
    if [[ ${STAGE_RESULTS[-1]} == FAIL ]]; then
        echo "build failed: not running the tests"
        finish
    fi
fi

# nextest skips doctests; `cargo test` (no nextest) runs them itself; a name filter targets unit tests.
# Run before the main test run so that the log closes on the real test runners' summaries.
if stage_selected doctests; then
    if ! command -v cargo-nextest >/dev/null 2>&1; then
        skip_stage doctests "cargo test below runs them"
    elif ((${#TEST_ARGS[@]})); then
        skip_stage doctests "test filter given"
    elif ! cargo metadata --no-deps --format-version 1 2>/dev/null | grep -q '"kind":\["lib"\]'; then
        skip_stage doctests "no library target in the workspace"
    else
        run_stage doctests "cargo test --workspace --doc --exclude engineioxide" stage_doctests
    fi
fi

if stage_selected cargo; then
    if command -v cargo-nextest >/dev/null 2>&1; then
        run_stage cargo "cargo nextest run --workspace --no-fail-fast${TEST_ARGS[*]:+ ${TEST_ARGS[*]}}" stage_cargo_tests
    else
        run_stage cargo "cargo test --workspace --no-fail-fast${TEST_ARGS[*]:+ ${TEST_ARGS[*]}}" stage_cargo_tests
    fi
fi

# ------------------------------------------------------------------------------------------------
# c. JS tests (socket.io-client against the real binary)

# node + npm (Debian's, when missing), then npm ci in $1 when its node_modules is stale.
npm_deps() {
    services_install_extra node npm
    lib_npm_deps "$1"
}

# node --test over the *.test.mjs files under $1 (node_modules excluded).
node_tests() {
    local dir=$1 files=()
    mapfile -t files < <(cd "$dir" && find . -path ./node_modules -prune -o -name '*.test.mjs' -print | sort)
    if ((${#files[@]} == 0)); then
        echo "no *.test.mjs files in $dir"
        return 1
    fi
    printf 'node %s; %d test file(s)\n' "$(node --version)" "${#files[@]}"
    (cd "$dir" && timeout -k 30 "$T_JS" node --test --test-reporter=spec "${files[@]}")
}

stage_js() {
    [[ -x $IM_SERVER_BIN ]] || { echo "IM_SERVER_BIN=$IM_SERVER_BIN is missing (build stage?)"; return 1; }
    npm_deps "$ROOT/tests/js"
    node_tests "$ROOT/tests/js"
}

if stage_selected js; then
    run_stage js "node --test tests/js (IM_SERVER_BIN=$IM_SERVER_BIN)" stage_js
fi

# ------------------------------------------------------------------------------------------------
# d. browser, deploy and bench

# d1. Browser tests in tests/browser, against Debian's chromium (headless; see CHROMIUM_BIN).
stage_browser() {
    services_install_extra chromium
    export CHROMIUM_BIN=${CHROMIUM_BIN:-$(command -v chromium)}
    export CHROME_PATH=$CHROMIUM_BIN PUPPETEER_EXECUTABLE_PATH=$CHROMIUM_BIN
    [[ -x $IM_SERVER_BIN ]] || cargo build --bin im-server
    npm_deps "$ROOT/tests/browser"
    T_JS=$T_EXTRA node_tests "$ROOT/tests/browser"
}
if stage_selected browser; then
    run_stage browser "browser tests (tests/browser, chromium)" stage_browser
fi

# d2. Deploy recipe test (nginx in front, pm2 supervising): deploy/test.sh.
stage_deploy() {
    services_install_extra nginx pm2
    [[ -x $IM_SERVER_BIN ]] || cargo build --bin im-server
    timeout -k 30 "$T_EXTRA" bash deploy/test.sh
}
if stage_selected deploy; then
    run_stage deploy "deploy recipe test (deploy/test.sh: nginx, pm2)" stage_deploy
fi

# d3. Quick benchmark comparison: bench/compare.sh --quick.
stage_bench() {
    timeout -k 30 "$T_EXTRA" bash bench/compare.sh --quick
}
if stage_selected bench; then
    run_stage bench "bench/compare.sh --quick" stage_bench
fi

# ------------------------------------------------------------------------------------------------
# e. summary

finish
}

# shellcheck shell=bash
# scripts/lib.sh — the shell helpers scripts/test.sh, scripts/services.sh, deploy/test.sh and
# bench/compare.sh share, so each exists once: logging, process bookkeeping (one pid-tracking
# implementation), ports and log lines to wait for, Debian packages, npm dependencies.
#
#   source "$ROOT/scripts/lib.sh"        (sourcing twice is harmless)
#
# Everything is a function prefixed `lib_`; the only globals are LIB_* (and PATH, extended with
# sbin and ~/.cargo/bin when they are missing). Nothing here runs on its own or sets shell options.

[[ -n ${_LIB_SH_LOADED:-} ]] && return 0
_LIB_SH_LOADED=1

# Daemons and admin tools (mariadbd, runuser, useradd, nginx) live in sbin, which a non-login
# PATH may lack; cargo may be installed by rustup without being on PATH.
case ":$PATH:" in
    *:/usr/sbin:*) ;;
    *) PATH=$PATH:/usr/local/sbin:/usr/sbin:/sbin ;;
esac
if ! command -v cargo >/dev/null 2>&1 && [[ -x $HOME/.cargo/bin/cargo ]]; then
    PATH=$HOME/.cargo/bin:$PATH
fi
export PATH

# ------------------------------------------------------------------------------------------------
# logging (to stderr: stdout of the callers is often data, e.g. `services.sh env`)

# lib_log TAG MESSAGE...   -> "[TAG] MESSAGE"
lib_log() {
    local tag=$1
    shift
    printf '[%s] %s\n' "$tag" "$*" >&2
}

# lib_err TAG MESSAGE...   -> "[TAG] ERROR: MESSAGE", returns 1 (callers `|| return 1` or exit)
lib_err() {
    local tag=$1
    shift
    printf '[%s] ERROR: %s\n' "$tag" "$*" >&2
    return 1
}

# lib_tail TAG FILE: the last 30 lines of a log file, framed (for failure messages).
lib_tail() {
    local tag=$1 f=$2
    if [[ -f $f ]]; then
        printf '[%s] ---- last lines of %s ----\n' "$tag" "$f" >&2
        tail -n 30 "$f" >&2 || true
        printf '[%s] ---- end of %s ----\n' "$tag" "$f" >&2
    else
        printf '[%s] (no log file %s)\n' "$tag" "$f" >&2
    fi
}

# lib_usage FILE: print a script's header comment (from line 2 to `set -euo`) as its --help.
lib_usage() {
    sed -n '2,/^set -euo/p' "$1" | sed -e '$d' -e 's/^# \{0,1\}//'
}

# ------------------------------------------------------------------------------------------------
# processes
#
# PIDs wrap fast on this kind of machine (pid_max 32768, busy builds): a pid handed to
# lib_track is signalled only while /proc still shows the start time recorded when it was
# tracked, so a pid reused by somebody else's process is never touched. Untracked pids (daemons
# found through pid files) are checked by the callers (see services.sh, _svc_pid_from).

declare -gA LIB_TRACKED=()

# lib_starttime PID: field 22 of /proc/PID/stat (counted after the parenthesised command name).
lib_starttime() {
    local s
    s=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
    s=${s##*) }
    awk '{print $20}' <<<"$s"
}

lib_track() { LIB_TRACKED[$1]=$(lib_starttime "$1" || echo gone); }
lib_untrack() { unset "LIB_TRACKED[$1]"; }

# lib_pid_alive PID: exists, is not a zombie (daemons get reparented to PID 1, which may reap
# late) and, if tracked, is still the process that was tracked.
lib_pid_alive() {
    local pid=${1:-} stat
    [[ -n $pid && $pid =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null || return 1
    stat=$(cat "/proc/$pid/stat" 2>/dev/null) || return 0
    stat=${stat##*) }
    [[ ${stat%% *} != Z ]] || return 1
    if [[ -n ${LIB_TRACKED[$pid]:-} ]]; then
        [[ $(lib_starttime "$pid") == "${LIB_TRACKED[$pid]}" ]] || return 1
    fi
}

# lib_child_pids PID: direct children of a pid, from /proc (no procps needed).
lib_child_pids() {
    local f line rest
    for f in /proc/[0-9]*/stat; do
        read -r line <"$f" 2>/dev/null || continue
        rest=${line##*) } # "S PPID ..."
        rest=${rest#* }
        if [[ ${rest%% *} == "$1" ]]; then
            f=${f#/proc/}
            printf '%s\n' "${f%/stat}"
        fi
    done
}

# lib_kill_tree PID: SIGTERM to a process and all its descendants, each stopped first so that
# none can spawn a new child (or be reaped and its pid reused) while the tree is walked.
lib_kill_tree() {
    local c
    kill -STOP "$1" 2>/dev/null || true
    for c in $(lib_child_pids "$1"); do lib_kill_tree "$c"; done
    kill -TERM "$1" 2>/dev/null || true
    kill -CONT "$1" 2>/dev/null || true
}

# lib_wait_gone PID SECS [NAME]: wait (bounded) for a pid to exit; SIGKILL it at the end.
# Fails if it is still there after the SIGKILL.
lib_wait_gone() {
    local pid=$1 secs=$2 name=${3:-pid $1} i
    for ((i = 0; i < secs * 10; i++)); do
        lib_pid_alive "$pid" || return 0
        sleep 0.1
    done
    lib_log lib "$name (pid $pid) did not stop in ${secs}s: SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
    sleep 0.5
    ! lib_pid_alive "$pid"
}

# lib_stop_pid PID [SECS [SIGNAL]]: SIGNAL (TERM), wait up to SECS (10), then SIGKILL; reap it if
# it is our child; forget it.
lib_stop_pid() {
    local pid=$1 secs=${2:-10} sig=${3:-TERM}
    if lib_pid_alive "$pid"; then
        kill -"$sig" "$pid" 2>/dev/null || true
        lib_wait_gone "$pid" "$secs" || true
    fi
    wait "$pid" 2>/dev/null || true
    lib_untrack "$pid"
}

# lib_stop_tracked [SECS]: stop every tracked process still running (for exit traps).
lib_stop_tracked() {
    local p
    for p in "${!LIB_TRACKED[@]}"; do lib_stop_pid "$p" "${1:-5}"; done
}

# ------------------------------------------------------------------------------------------------
# ports and log lines

# lib_port_open PORT: something accepts TCP connections on 127.0.0.1:PORT.
lib_port_open() {
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# lib_free_port: a free TCP port on 127.0.0.1 below the ephemeral range (so a client socket
# cannot take a server's port while it restarts); fails after 200 tries.
lib_free_port() {
    local p i
    for ((i = 0; i < 200; i++)); do
        p=$((20000 + RANDOM % 12000))
        if ! lib_port_open "$p" &&
            ! ss -Htan "sport = :$p" 2>/dev/null | grep -q .; then
            echo "$p"
            return 0
        fi
    done
    lib_err lib "no free port found"
    return 1
}

# lib_wait_port PORT SECS [PID]: wait until 127.0.0.1:PORT accepts connections (PID, if given,
# must stay alive meanwhile).
lib_wait_port() {
    local port=$1 secs=$2 pid=${3:-} i
    for ((i = 0; i < secs * 10; i++)); do
        lib_port_open "$port" && return 0
        if [[ -n $pid ]] && ! lib_pid_alive "$pid"; then return 1; fi
        sleep 0.1
    done
    return 1
}

# lib_wait_line FILE REGEX PID SECS: wait until FILE has a line matching REGEX (PID must stay
# alive meanwhile).
lib_wait_line() {
    local file=$1 re=$2 pid=$3 secs=$4 i
    for ((i = 0; i < secs * 10; i++)); do
        grep -Eq "$re" "$file" 2>/dev/null && return 0
        lib_pid_alive "$pid" || return 1
        sleep 0.1
    done
    return 1
}

# ------------------------------------------------------------------------------------------------
# binaries and Debian packages

# lib_find_bin NAME... [-- DIR...]: the first executable found, on PATH, then in the DIRs.
lib_find_bin() {
    local names=() dirs=() seen_sep=0 a n d
    for a in "$@"; do
        if [[ $a == -- ]]; then
            seen_sep=1
            continue
        fi
        if ((seen_sep)); then dirs+=("$a"); else names+=("$a"); fi
    done
    for n in "${names[@]}"; do
        if command -v "$n" >/dev/null 2>&1; then
            command -v "$n"
            return 0
        fi
    done
    for d in "${dirs[@]}"; do
        for n in "${names[@]}"; do
            if [[ -x $d/$n ]]; then
                printf '%s\n' "$d/$n"
                return 0
            fi
        done
    done
    return 1
}

lib_pkg_installed() {
    dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q '^install ok installed$'
}

# lib_apt_install PKG...: apt-get install the Debian packages that are not installed yet.
# `apt-get update` runs at most once an hour (a marker file in LIB_STATE_DIR also covers
# subshells and later invocations), and only if something must be installed. Package maintainer
# scripts must not start the Debian-packaged daemons (there is no systemd, and the sysvinit
# fallback would start them on the default ports): a policy-rc.d that denies every start is put
# in place for the duration of the install if there is none. apt/dpkg chatter goes to
# LIB_STATE_DIR/apt.log; its tail is shown on failure.
LIB_STATE_DIR=${IM_TEST_STATE_DIR:-/tmp/im-test-services}
LIB_APT_UPDATED=${LIB_APT_UPDATED:-0}
lib_apt_install() {
    local missing=() p
    for p in "$@"; do lib_pkg_installed "$p" || missing+=("$p"); done
    ((${#missing[@]})) || return 0
    if [[ $(id -u) -ne 0 ]]; then
        lib_err apt "need Debian packages ${missing[*]} but not root: install them (apt-get install ${missing[*]})"
        return 1
    fi
    local t0=$SECONDS policy=/usr/sbin/policy-rc.d made_policy=0 rc=0
    if [[ ! -e $policy ]]; then
        printf '#!/bin/sh\n# temporary, from im-server scripts/lib.sh: do not start services\nexit 101\n' >"$policy"
        chmod +x "$policy"
        made_policy=1
    fi
    mkdir -p "$LIB_STATE_DIR"
    local log=$LIB_STATE_DIR/apt.log marker=$LIB_STATE_DIR/apt-updated
    if [[ -n $(find "$marker" -mmin -60 2>/dev/null) ]]; then LIB_APT_UPDATED=1; fi
    if [[ $LIB_APT_UPDATED != 1 ]]; then
        lib_log apt "apt-get update (needed for: ${missing[*]})"
        if DEBIAN_FRONTEND=noninteractive apt-get update -q -o DPkg::Lock::Timeout=300 </dev/null >>"$log" 2>&1; then
            touch "$marker"
        else
            rc=1
        fi
        LIB_APT_UPDATED=1
    fi
    if ((rc == 0)); then
        lib_log apt "apt-get install ${missing[*]}"
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends -o DPkg::Lock::Timeout=300 \
            -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold \
            "${missing[@]}" </dev/null >>"$log" 2>&1 || rc=1
    fi
    if ((made_policy)); then rm -f "$policy"; fi
    if ((rc != 0)); then
        lib_err apt "apt-get update/install ${missing[*]} failed" || true
        lib_tail apt "$log"
        return 1
    fi
    lib_log apt "installed ${missing[*]} in $((SECONDS - t0))s"
}

# ------------------------------------------------------------------------------------------------
# npm

# lib_npm_deps DIR: `npm ci` (npm install without a lock file) in DIR when its node_modules is
# missing or older than package.json / package-lock.json.
lib_npm_deps() {
    local dir=$1 stamp=$1/node_modules/.package-lock.json
    if [[ ! -f $stamp || $dir/package.json -nt $stamp || ($dir/package-lock.json -nt $stamp) ]]; then
        if [[ -f $dir/package-lock.json ]]; then
            (cd "$dir" && timeout 600 npm ci --no-audit --no-fund)
        else
            (cd "$dir" && timeout 600 npm install --no-audit --no-fund)
        fi
    else
        echo "($dir/node_modules up to date)"
    fi
}

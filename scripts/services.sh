#!/usr/bin/env bash
# Throwaway backing services for the im-server test suite: Redis, MariaDB, PostgreSQL.
#
# Sourceable:   source scripts/services.sh; services_up; ...; services_down
# Runnable:     bash scripts/services.sh up|down|env|status
#               (`eval "$(bash scripts/services.sh env)"` gives the variables without starting anything)
#
# Everything listens on 127.0.0.1 only, on non-default ports, with data under
# ${IM_TEST_STATE_DIR:-/tmp/im-test-services}; nothing is started through systemd or init scripts.
#
#   redis       127.0.0.1:16379   no persistence
#   mysql       127.0.0.1:13306   MariaDB, user im/im with ALL ON *.* WITH GRANT OPTION
#   postgres    127.0.0.1:15432   role im/im SUPERUSER, database im
#
# Exported by services_up (and printed by `env`):
#   IM_TEST_REDIS_URL, IM_TEST_MYSQL_URL, IM_TEST_POSTGRES_URL, IM_TEST_REDIS_SERVER_BIN,
#   IM_TEST_MARIADBD_BIN, IM_TEST_MARIADB_INSTALL_DB_BIN (tests that run a server of their own),
#   IM_TEST_SERVICES (comma list of the services that are up; a Rust test needing a listed
#   service must FAIL when it is unreachable instead of skipping).
#
# Knobs:
#   IM_TEST_SERVICES=redis,mysql,postgres   which ones to start (default all three; "none" = none)
#   IM_TEST_SERVICES_FRESH=1                 restart from empty data dirs even if healthy ones run
#   IM_TEST_STATE_DIR=/path                  where data, sockets, pid files and logs live
#
# Missing packages are installed with apt-get (one `apt-get update` at most, only if something
# is missing). services_install_extra nginx chromium pm2 installs the extras later stages need.
# services_down_started stops only what this shell's services_up started (test.sh's exit trap):
# services found already running are shared with whoever started them and are left alone.

# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# ---------------------------------------------------------------------------------------------
# settings

IM_TEST_STATE_DIR=${IM_TEST_STATE_DIR:-/tmp/im-test-services}
_SVC_REDIS_PORT=16379
_SVC_MYSQL_PORT=13306
_SVC_PG_PORT=15432
_SVC_WAIT_SECS=${IM_TEST_SERVICES_WAIT_SECS:-30}
_SVC_ALL="redis,mysql,postgres"
_SVC_STARTED=()   # the services this shell started (not the reused ones)

# Which services are wanted, as a space-separated list.
_svc_wanted() {
    local list=${IM_TEST_SERVICES:-$_SVC_ALL}
    [[ $list == none ]] && return 0
    printf '%s\n' "${list//,/ }"
}
_svc_is_wanted() {
    local s
    for s in $(_svc_wanted); do [[ $s == "$1" ]] && return 0; done
    return 1
}

# The pid recorded in a pid file, printed only if that process is alive AND is the expected
# program (a stale pid file from an earlier boot may name an unrelated process now).
_svc_pid_from() {
    local file=$1 pattern=$2 pid
    pid=$(head -n 1 "$file" 2>/dev/null || true)
    lib_pid_alive "$pid" || return 0
    tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -Eq "$pattern" || return 0
    printf '%s\n' "$pid"
}
_svc_redis_pid() { _svc_pid_from "$(_svc_redis_dir)/redis.pid" 'redis-server'; }
_svc_mysql_pid() { _svc_pid_from "$(_svc_mysql_dir)/mysqld.pid" 'mariadbd|mysqld'; }

# Run a command as the given OS user (directly if we are not root).
_svc_as_user() {
    local user=$1
    shift
    if [[ $(id -u) -eq 0 && $user != root ]]; then
        runuser -u "$user" -- "$@"
    else
        "$@"
    fi
}

# ---------------------------------------------------------------------------------------------
# binaries (after installing what is missing)

_SVC_SBIN_DIRS=(/usr/sbin /usr/bin /usr/local/sbin /usr/local/bin /sbin)

_svc_redis_bins() {
    REDIS_SERVER_BIN=$(lib_find_bin redis-server -- "${_SVC_SBIN_DIRS[@]}") || return 1
    REDIS_CLI_BIN=$(lib_find_bin redis-cli -- "${_SVC_SBIN_DIRS[@]}") || return 1
}

_svc_mysql_bins() {
    MYSQLD_BIN=$(lib_find_bin mariadbd mysqld -- "${_SVC_SBIN_DIRS[@]}") || return 1
    MYSQL_INSTALL_DB_BIN=$(lib_find_bin mariadb-install-db mysql_install_db -- "${_SVC_SBIN_DIRS[@]}") || return 1
    MYSQL_CLI_BIN=$(lib_find_bin mariadb mysql -- "${_SVC_SBIN_DIRS[@]}") || return 1
    MYSQLADMIN_BIN=$(lib_find_bin mariadb-admin mysqladmin -- "${_SVC_SBIN_DIRS[@]}") || return 1
}

# initdb on PATH, else the newest /usr/lib/postgresql/*/bin; pg_ctl, postgres and psql are taken
# from the directory the (symlink-resolved) initdb lives in when present there.
_svc_pg_bins() {
    local initdb="" d
    if command -v initdb >/dev/null 2>&1; then
        initdb=$(command -v initdb)
    else
        for d in $(printf '%s\n' /usr/lib/postgresql/*/bin | sort -V -r); do
            if [[ -x $d/initdb ]]; then initdb=$d/initdb; break; fi
        done
    fi
    [[ -n $initdb ]] || return 1
    PG_BIN_DIR=$(dirname "$(readlink -f "$initdb")")
    PG_INITDB_BIN=$initdb
    PG_CTL_BIN=$(lib_find_bin pg_ctl -- "$PG_BIN_DIR") || return 1
    [[ -x $PG_BIN_DIR/pg_ctl ]] && PG_CTL_BIN=$PG_BIN_DIR/pg_ctl
    PG_PSQL_BIN=$(lib_find_bin psql -- "$PG_BIN_DIR") || return 1
    [[ -x $PG_BIN_DIR/psql ]] && PG_PSQL_BIN=$PG_BIN_DIR/psql
    return 0
}

_svc_install_redis() {
    _svc_redis_bins 2>/dev/null && return 0
    lib_apt_install redis-server redis-tools || return 1
    _svc_redis_bins || lib_err services "redis-server/redis-cli not found after installing redis-server"
}

_svc_install_mysql() {
    _svc_mysql_bins 2>/dev/null && return 0
    lib_apt_install mariadb-server mariadb-client || return 1
    _svc_mysql_bins || lib_err services "mariadbd/mariadb-install-db/mariadb not found after installing mariadb-server"
}

_svc_install_postgres() {
    _svc_pg_bins 2>/dev/null && return 0
    lib_apt_install postgresql || return 1
    _svc_pg_bins || lib_err services "initdb/pg_ctl/psql not found after installing postgresql"
}

# services_install_extra nginx chromium pm2 ...   (for later test stages; no-op when present)
services_install_extra() {
    local want pkgs=() need_pm2=0
    for want in "$@"; do
        case $want in
            nginx)
                lib_find_bin nginx -- "${_SVC_SBIN_DIRS[@]}" >/dev/null 2>&1 || pkgs+=(nginx) ;;
            chromium)
                # chromium-driver for WebDriver-based tools; fonts so screenshots have glyphs.
                command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1 \
                    || pkgs+=(chromium chromium-driver fonts-liberation) ;;
            pm2)
                command -v pm2 >/dev/null 2>&1 || need_pm2=1 ;;
            node | nodejs)
                command -v node >/dev/null 2>&1 || pkgs+=(nodejs) ;;
            npm)
                command -v npm >/dev/null 2>&1 || pkgs+=(npm) ;;
            *)
                # any other Debian package name
                pkgs+=("$want") ;;
        esac
    done
    if ((need_pm2)); then
        command -v npm >/dev/null 2>&1 || pkgs+=(npm)
        command -v node >/dev/null 2>&1 || pkgs+=(nodejs)
    fi
    if ((${#pkgs[@]})); then lib_apt_install "${pkgs[@]}" || return 1; fi
    if ((need_pm2)); then
        lib_log services "npm install -g pm2"
        npm install -g --no-audit --no-fund pm2 </dev/null >&2 || { lib_err services "npm install -g pm2 failed"; return 1; }
    fi
    return 0
}

# ---------------------------------------------------------------------------------------------
# Redis

_svc_redis_dir() { printf '%s/redis' "$IM_TEST_STATE_DIR"; }

_svc_redis_ping() {
    [[ $("$REDIS_CLI_BIN" -h 127.0.0.1 -p "$_SVC_REDIS_PORT" ping 2>/dev/null) == PONG ]]
}

_svc_redis_down() {
    local dir pid
    dir=$(_svc_redis_dir)
    pid=$(_svc_redis_pid)
    if lib_pid_alive "$pid"; then
        lib_log services "stopping redis (pid $pid)"
        "$REDIS_CLI_BIN" -h 127.0.0.1 -p "$_SVC_REDIS_PORT" shutdown nosave >/dev/null 2>&1 \
            || kill -TERM "$pid" 2>/dev/null || true
        lib_wait_gone "$pid" "$_SVC_WAIT_SECS" redis || return 1
    fi
    rm -f "$dir/redis.pid"
}

_svc_redis_up() {
    _svc_install_redis || return 1
    local dir pid i
    dir=$(_svc_redis_dir)
    pid=$(_svc_redis_pid)
    if lib_pid_alive "$pid" && [[ ${IM_TEST_SERVICES_FRESH:-0} != 1 ]] && _svc_redis_ping; then
        lib_log services "redis already running (pid $pid), reusing; flushing all data"
        "$REDIS_CLI_BIN" -h 127.0.0.1 -p "$_SVC_REDIS_PORT" flushall >/dev/null
        return 0
    fi
    _svc_redis_down || return 1
    if lib_port_open "$_SVC_REDIS_PORT"; then
        lib_err services "redis: port 127.0.0.1:$_SVC_REDIS_PORT is taken by a process this script did not start"
        return 1
    fi
    mkdir -p "$dir"
    : >"$dir/redis.log"
    # daemonize: redis writes its own pidfile; no RDB/AOF persistence; stdio detached.
    # (redis.log is a path argument and the target of stdout, never read: not a read/write race.)
    # shellcheck disable=SC2094
    setsid "$REDIS_SERVER_BIN" \
        --bind 127.0.0.1 --port "$_SVC_REDIS_PORT" --protected-mode yes \
        --daemonize yes --pidfile "$dir/redis.pid" --logfile "$dir/redis.log" --dir "$dir" \
        --save '' --appendonly no --maxclients 4000 \
        </dev/null >>"$dir/redis.log" 2>&1 || {
        lib_err services "redis: redis-server failed to start"
        lib_tail services "$dir/redis.log"
        return 1
    }
    for ((i = 0; i < _SVC_WAIT_SECS * 10; i++)); do
        _svc_redis_ping && break
        sleep 0.1
    done
    if ! _svc_redis_ping; then
        lib_err services "redis: no PONG on 127.0.0.1:$_SVC_REDIS_PORT after ${_SVC_WAIT_SECS}s"
        lib_tail services "$dir/redis.log"
        return 1
    fi
    lib_log services "redis up on 127.0.0.1:$_SVC_REDIS_PORT (pid $(cat "$dir/redis.pid" 2>/dev/null))"
    _SVC_STARTED+=(redis)
}

# ---------------------------------------------------------------------------------------------
# MariaDB

_svc_mysql_dir() { printf '%s/mysql' "$IM_TEST_STATE_DIR"; }

# SQL as root over the unix socket (root@localhost authenticates with unix_socket as OS root).
# mariadb-install-db --auth-root-authentication-method=socket creates root@localhost and
# <--user>@localhost, both IDENTIFIED VIA unix_socket: connect as the OS user we are.
# shellcheck disable=SC2120  # extra mariadb arguments are for use by hand; the script pipes SQL in
_svc_mysql_root() {
    "$MYSQL_CLI_BIN" --no-defaults --protocol=socket --socket="$(_svc_mysql_dir)/mysqld.sock" -u"$(id -un)" "$@"
}

_svc_mysql_ping() {
    "$MYSQLADMIN_BIN" --no-defaults --protocol=tcp -h127.0.0.1 -P"$_SVC_MYSQL_PORT" \
        -uim -pim --connect-timeout=2 ping >/dev/null 2>&1
}

_svc_mysql_socket_ping() {
    "$MYSQLADMIN_BIN" --no-defaults --protocol=socket --socket="$(_svc_mysql_dir)/mysqld.sock" \
        -u"$(id -un)" --connect-timeout=2 ping >/dev/null 2>&1
}

_svc_mysql_down() {
    local dir pid
    dir=$(_svc_mysql_dir)
    pid=$(_svc_mysql_pid)
    if lib_pid_alive "$pid"; then
        lib_log services "stopping mariadb (pid $pid)"
        kill -TERM "$pid" 2>/dev/null || true
        lib_wait_gone "$pid" "$_SVC_WAIT_SECS" mariadb || return 1
    fi
    rm -rf "$dir/data" "$dir/mysqld.pid" "$dir/mysqld.sock" "$dir/tmp"
}

_svc_mysql_up() {
    _svc_install_mysql || return 1
    local dir pid i
    dir=$(_svc_mysql_dir)
    pid=$(_svc_mysql_pid)
    if lib_pid_alive "$pid" && [[ ${IM_TEST_SERVICES_FRESH:-0} != 1 ]] && _svc_mysql_ping; then
        lib_log services "mariadb already running (pid $pid), reusing"
        return 0
    fi
    _svc_mysql_down || return 1
    if lib_port_open "$_SVC_MYSQL_PORT"; then
        lib_err services "mariadb: port 127.0.0.1:$_SVC_MYSQL_PORT is taken by a process this script did not start"
        return 1
    fi
    mkdir -p "$dir/data" "$dir/tmp"
    : >"$dir/mysqld.log"
    # --no-defaults everywhere: /etc/mysql/my.cnf (socket in /run/mysqld, port 3306) must not leak in.
    if ! "$MYSQL_INSTALL_DB_BIN" --no-defaults --datadir="$dir/data" --user="$(id -un)" \
        --skip-test-db --auth-root-authentication-method=socket \
        </dev/null >>"$dir/mysqld.log" 2>&1; then
        lib_err services "mariadb: mariadb-install-db failed"
        lib_tail services "$dir/mysqld.log"
        return 1
    fi
    # Throwaway instance: durability off for speed; many connections (every test opens a pool).
    setsid "$MYSQLD_BIN" --no-defaults \
        --user="$(id -un)" \
        --datadir="$dir/data" --tmpdir="$dir/tmp" \
        --socket="$dir/mysqld.sock" --pid-file="$dir/mysqld.pid" --log-error="$dir/mysqld.log" \
        --bind-address=127.0.0.1 --port="$_SVC_MYSQL_PORT" \
        --skip-name-resolve --max-connections=1000 \
        --character-set-server=utf8mb4 --collation-server=utf8mb4_unicode_ci \
        --innodb-flush-log-at-trx-commit=0 --innodb-doublewrite=0 --sync-binlog=0 \
        --innodb-buffer-pool-size=128M --innodb-log-file-size=64M \
        </dev/null >>"$dir/mysqld.log" 2>&1 &
    pid=$!
    for ((i = 0; i < _SVC_WAIT_SECS * 10; i++)); do
        _svc_mysql_socket_ping && break
        if ! lib_pid_alive "$pid"; then break; fi
        sleep 0.1
    done
    if ! _svc_mysql_socket_ping; then
        lib_err services "mariadb: not accepting connections on $dir/mysqld.sock after ${_SVC_WAIT_SECS}s (or it exited)"
        lib_tail services "$dir/mysqld.log"
        return 1
    fi
    # mariadbd writes the pid file itself; make sure it is there for services_down.
    [[ -s $dir/mysqld.pid ]] || printf '%s\n' "$pid" >"$dir/mysqld.pid"
    if ! _svc_mysql_root >>"$dir/mysqld.log" 2>&1 <<'SQL'; then
DELETE FROM mysql.global_priv WHERE User = '';
CREATE USER IF NOT EXISTS 'im'@'%' IDENTIFIED BY 'im';
CREATE USER IF NOT EXISTS 'im'@'localhost' IDENTIFIED BY 'im';
CREATE USER IF NOT EXISTS 'im'@'127.0.0.1' IDENTIFIED BY 'im';
GRANT ALL PRIVILEGES ON *.* TO 'im'@'%' WITH GRANT OPTION;
GRANT ALL PRIVILEGES ON *.* TO 'im'@'localhost' WITH GRANT OPTION;
GRANT ALL PRIVILEGES ON *.* TO 'im'@'127.0.0.1' WITH GRANT OPTION;
FLUSH PRIVILEGES;
SQL
        lib_err services "mariadb: creating user im failed"
        lib_tail services "$dir/mysqld.log"
        return 1
    fi
    if ! _svc_mysql_ping; then
        lib_err services "mariadb: user im cannot log in over TCP 127.0.0.1:$_SVC_MYSQL_PORT"
        lib_tail services "$dir/mysqld.log"
        return 1
    fi
    lib_log services "mariadb up on 127.0.0.1:$_SVC_MYSQL_PORT (pid $(cat "$dir/mysqld.pid"))"
    _SVC_STARTED+=(mysql)
}

# ---------------------------------------------------------------------------------------------
# PostgreSQL

_svc_pg_dir() { printf '%s/postgres' "$IM_TEST_STATE_DIR"; }

# The OS user that owns and runs the cluster: initdb/postgres refuse to run as root.
_svc_pg_user() {
    if [[ $(id -u) -eq 0 ]]; then printf 'postgres'; else id -un; fi
}

_svc_pg_ensure_user() {
    [[ $(id -u) -eq 0 ]] || return 0
    getent passwd postgres >/dev/null && return 0
    lib_log services "creating OS user postgres"
    useradd --system --user-group --home-dir /var/lib/postgresql --no-create-home \
        --shell /bin/sh postgres
}

# psql as the cluster superuser over the unix socket.
# shellcheck disable=SC2120  # extra psql arguments are for use by hand; the script pipes SQL in
_svc_pg_psql() {
    local dir
    dir=$(_svc_pg_dir)
    _svc_as_user "$(_svc_pg_user)" "$PG_PSQL_BIN" -X -q -v ON_ERROR_STOP=1 \
        -h "$dir/run" -p "$_SVC_PG_PORT" -U postgres -d postgres "$@"
}

_svc_pg_ready() {
    PGCONNECT_TIMEOUT=2 PGPASSWORD=im "$PG_PSQL_BIN" -X -q -At \
        "postgresql://im@127.0.0.1:$_SVC_PG_PORT/im" -c 'select 1' >/dev/null 2>&1
}

_svc_pg_pid() {
    _svc_pid_from "$(_svc_pg_dir)/data/postmaster.pid" 'postgres' 
}

_svc_pg_down() {
    local dir pid
    dir=$(_svc_pg_dir)
    pid=$(_svc_pg_pid)
    if lib_pid_alive "$pid"; then
        lib_log services "stopping postgres (pid $pid)"
        _svc_as_user "$(_svc_pg_user)" "$PG_CTL_BIN" -D "$dir/data" -m fast -w -t "$_SVC_WAIT_SECS" stop \
            >>"$dir/postgres.log" 2>&1 || kill -TERM "$pid" 2>/dev/null || true
        lib_wait_gone "$pid" "$_SVC_WAIT_SECS" postgres || return 1
    fi
    rm -rf "$dir/data" "$dir/run"
}

_svc_pg_up() {
    _svc_install_postgres || return 1
    _svc_pg_ensure_user || { lib_err services "postgres: could not create OS user postgres"; return 1; }
    local dir pid user
    dir=$(_svc_pg_dir)
    user=$(_svc_pg_user)
    pid=$(_svc_pg_pid)
    if lib_pid_alive "$pid" && [[ ${IM_TEST_SERVICES_FRESH:-0} != 1 ]] && _svc_pg_ready; then
        lib_log services "postgres already running (pid $pid), reusing"
        return 0
    fi
    _svc_pg_down || return 1
    if lib_port_open "$_SVC_PG_PORT"; then
        lib_err services "postgres: port 127.0.0.1:$_SVC_PG_PORT is taken by a process this script did not start"
        return 1
    fi
    mkdir -p "$dir/data" "$dir/run"
    : >"$dir/postgres.log"
    # The data dir must belong to (and the path be traversable by) the postgres OS user.
    chown -R "$user" "$dir"
    chmod 700 "$dir/data"
    if ! _svc_as_user "$user" test -w "$dir/data"; then
        lib_err services "postgres: OS user $user cannot write $dir/data (is IM_TEST_STATE_DIR=$IM_TEST_STATE_DIR under a private directory?)"
        return 1
    fi
    if ! _svc_as_user "$user" "$PG_INITDB_BIN" -D "$dir/data" -U postgres \
        --auth-local=trust --auth-host=scram-sha-256 --encoding=UTF8 --locale=C --no-sync \
        </dev/null >>"$dir/postgres.log" 2>&1; then
        lib_err services "postgres: initdb failed"
        lib_tail services "$dir/postgres.log"
        return 1
    fi
    # Throwaway cluster: no fsync; plenty of connections (every test opens a pool).
    # pg_ctl detaches the postmaster (setsid) and -w waits until it accepts connections.
    if ! _svc_as_user "$user" "$PG_CTL_BIN" -D "$dir/data" -l "$dir/postgres.log" -w -t "$_SVC_WAIT_SECS" \
        -o "-p $_SVC_PG_PORT -k $dir/run -c listen_addresses=127.0.0.1 -c max_connections=400 -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c shared_buffers=128MB" \
        start </dev/null >/dev/null 2>&1; then
        lib_err services "postgres: not accepting connections on 127.0.0.1:$_SVC_PG_PORT after ${_SVC_WAIT_SECS}s"
        lib_tail services "$dir/postgres.log"
        return 1
    fi
    if ! _svc_pg_psql >>"$dir/postgres.log" 2>&1 <<'SQL'; then
DO $$ BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'im') THEN
    CREATE ROLE im LOGIN SUPERUSER PASSWORD 'im';
  END IF;
END $$;
SELECT 'CREATE DATABASE im OWNER im' WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = 'im')
\gexec
SQL
        lib_err services "postgres: creating role/database im failed"
        lib_tail services "$dir/postgres.log"
        return 1
    fi
    if ! _svc_pg_ready; then
        lib_err services "postgres: role im cannot log in over TCP 127.0.0.1:$_SVC_PG_PORT"
        lib_tail services "$dir/postgres.log"
        return 1
    fi
    lib_log services "postgres up on 127.0.0.1:$_SVC_PG_PORT (pid $(_svc_pg_pid))"
    _SVC_STARTED+=(postgres)
}

# ---------------------------------------------------------------------------------------------
# public API

# Export the connection variables for the wanted services (does not start anything).
services_env() {
    local up=() s
    unset IM_TEST_REDIS_URL IM_TEST_MYSQL_URL IM_TEST_POSTGRES_URL IM_TEST_MARIADBD_BIN IM_TEST_MARIADB_INSTALL_DB_BIN
    for s in $(_svc_wanted); do
        case $s in
            redis)
                export IM_TEST_REDIS_URL="redis://127.0.0.1:$_SVC_REDIS_PORT/?protocol=resp3"
                if _svc_redis_bins 2>/dev/null; then export IM_TEST_REDIS_SERVER_BIN=$REDIS_SERVER_BIN; fi
                ;;
            mysql)
                export IM_TEST_MYSQL_URL="mysql://im:im@127.0.0.1:$_SVC_MYSQL_PORT"
                # the fault soak (tests/api/soak.rs) runs a MariaDB of its own that it kills
                if _svc_mysql_bins 2>/dev/null; then
                    export IM_TEST_MARIADBD_BIN=$MYSQLD_BIN IM_TEST_MARIADB_INSTALL_DB_BIN=$MYSQL_INSTALL_DB_BIN
                fi
                ;;
            postgres) export IM_TEST_POSTGRES_URL="postgres://im:im@127.0.0.1:$_SVC_PG_PORT" ;;
            *) lib_err services "unknown service '$s' in IM_TEST_SERVICES (known: $_SVC_ALL)"; return 1 ;;
        esac
        up+=("$s")
    done
    local IFS=,
    export IM_TEST_SERVICES="${up[*]}"
    [[ -n $IM_TEST_SERVICES ]] || export IM_TEST_SERVICES=none
    return 0
}

# Start (or reuse) every wanted service, then export the variables.
services_up() {
    local t0=$SECONDS s
    mkdir -p "$IM_TEST_STATE_DIR"
    chmod 755 "$IM_TEST_STATE_DIR"
    for s in $(_svc_wanted); do
        case $s in
            redis) _svc_redis_up || return 1 ;;
            mysql) _svc_mysql_up || return 1 ;;
            postgres) _svc_pg_up || return 1 ;;
            *) lib_err services "unknown service '$s' in IM_TEST_SERVICES (known: $_SVC_ALL)"; return 1 ;;
        esac
    done
    services_env || return 1
    lib_log services "services up in $((SECONDS - t0))s: IM_TEST_SERVICES=$IM_TEST_SERVICES (state in $IM_TEST_STATE_DIR)"
}

# Stop everything this script may have started (all three, whatever IM_TEST_SERVICES says).
services_down() {
    local rc=0
    if _svc_redis_bins 2>/dev/null; then _svc_redis_down || rc=1; else
        local p; p=$(_svc_redis_pid)
        lib_pid_alive "$p" && { kill -TERM "$p"; lib_wait_gone "$p" "$_SVC_WAIT_SECS" redis || rc=1; }
    fi
    _svc_mysql_down || rc=1
    if _svc_pg_bins 2>/dev/null; then _svc_pg_down || rc=1; fi
    ((rc == 0)) && lib_log services "services down"
    return "$rc"
}

# Stop only the services this shell's services_up started; the ones it found running (started
# by another run or by hand, possibly shared with other users of this machine) stay up.
services_down_started() {
    local rc=0 s
    if ((${#_SVC_STARTED[@]} == 0)); then
        lib_log services "leaving the services running: this run started none of them"
        return 0
    fi
    for s in "${_SVC_STARTED[@]}"; do
        case $s in
            redis) _svc_redis_down || rc=1 ;;
            mysql) _svc_mysql_down || rc=1 ;;
            postgres) _svc_pg_down || rc=1 ;;
        esac
    done
    ((rc == 0)) && lib_log services "stopped ${_SVC_STARTED[*]} (started by this run)"
    _SVC_STARTED=()
    return "$rc"
}

_svc_print_env() {
    local v
    for v in IM_TEST_REDIS_URL IM_TEST_MYSQL_URL IM_TEST_POSTGRES_URL IM_TEST_REDIS_SERVER_BIN \
        IM_TEST_MARIADBD_BIN IM_TEST_MARIADB_INSTALL_DB_BIN IM_TEST_SERVICES; do
        if [[ -n ${!v:-} ]]; then printf "export %s='%s'\n" "$v" "${!v}"; fi
    done
}

services_status() {
    local p
    p=$(_svc_redis_pid)
    if lib_pid_alive "$p"; then echo "redis: running (pid $p)"; else echo "redis: stopped"; fi
    p=$(_svc_mysql_pid)
    if lib_pid_alive "$p"; then echo "mysql: running (pid $p)"; else echo "mysql: stopped"; fi
    p=$(_svc_pg_pid)
    if lib_pid_alive "$p"; then echo "postgres: running (pid $p)"; else echo "postgres: stopped"; fi
}

# ---------------------------------------------------------------------------------------------
# command line

if [[ ${BASH_SOURCE[0]} == "$0" ]]; then
    set -euo pipefail
    case ${1:-} in
        up)
            # prints the variables too, so `eval "$(bash scripts/services.sh up)"` works
            services_up
            _svc_print_env
            ;;
        down) services_down ;;
        env)
            services_env
            _svc_print_env
            ;;
        status) services_status ;;
        install-extra) shift; services_install_extra "$@" ;;
        *)
            echo "usage: bash scripts/services.sh up|down|env|status|install-extra PKG..." >&2
            exit 2
            ;;
    esac
fi

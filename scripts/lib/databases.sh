# Sourced by scripts/test.sh. Makes PostgreSQL and MariaDB available: uses the
# servers named by KUBE_ONCE_TEST_POSTGRES_URL / KUBE_ONCE_TEST_MYSQL_URL when
# set, otherwise starts throwaway instances (installing the Debian packages if
# missing) in a temp directory on free ports, and exports those variables.
#
# Also exports, for tests that start a server of their own ("database not up
# yet"): KUBE_ONCE_TEST_DATABASES_SH (this file, to be sourced by them).
#
# The start/stop functions below work on their own too:
#   source scripts/lib/databases.sh
#   start_postgres DIR PORT   # prints nothing, server on 127.0.0.1:PORT, db `test`
#   start_postgres DIR PORT CERT KEY   # the same, accepting only TLS over TCP
#   start_postgres_with_password DIR PORT USER PASSWORD   # TCP needs USER's password (SCRAM)
#   start_mariadb DIR PORT
#   start_mariadb DIR PORT CERT KEY    # the same, with TLS offered (ssl-mode tests)
#   stop_postgres DIR; stop_mariadb DIR

_KUBE_ONCE_DB_DIR=""
KUBE_ONCE_TEST_DATABASES_SH="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/$(basename "${BASH_SOURCE[0]}")"
export KUBE_ONCE_TEST_DATABASES_SH

_db_log() { echo "databases: $*" >&2; }

# A TCP port nobody listens on (random, checked by connecting to it).
free_port() {
    local port
    for _ in $(seq 1 100); do
        port=$((20000 + RANDOM % 40000))
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            echo "$port"
            return 0
        fi
    done
    _db_log "no free TCP port found"
    return 1
}

_apt_install() {
    _db_log "installing Debian packages: $*"
    local sudo=()
    [ "$(id -u)" = 0 ] || sudo=(sudo)
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

postgres_bindir() {
    local dir
    dir="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)"
    if [ -z "$dir" ] || [ ! -x "$dir/initdb" ]; then
        _apt_install postgresql >&2 || return 1
        dir="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)"
    fi
    [ -x "$dir/initdb" ] || { _db_log "initdb not found after installing postgresql"; return 1; }
    echo "$dir"
}

_ensure_mariadb_installed() {
    if ! command -v mariadbd >/dev/null 2>&1 && [ ! -x /usr/sbin/mariadbd ]; then
        _apt_install mariadb-server mariadb-client || return 1
    fi
}

# Runs a command as the `postgres` user when we are root (PostgreSQL refuses
# to run as root), as ourselves otherwise.
_as_postgres() {
    if [ "$(id -u)" = 0 ]; then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

# start_postgres DIR PORT [CERT KEY]: initdb + pg_ctl start in DIR, trust
# auth, database `test`. With a PEM certificate and key, the server has
# ssl=on and rejects TCP connections without TLS (sslmode tests); the Unix
# socket stays open without TLS.
start_postgres() {
    local dir="$1" port="$2" cert="${3:-}" key="${4:-}" bindir options
    bindir="$(postgres_bindir)" || return 1
    mkdir -p "$dir"
    if [ "$(id -u)" = 0 ]; then
        chmod 755 "$(dirname "$dir")"
        chown postgres: "$dir"
    fi
    _as_postgres "$bindir/initdb" -D "$dir/data" -U postgres --auth=trust -E UTF8 --no-sync >"$dir/initdb.log" 2>&1 ||
        { _db_log "initdb failed, see $dir/initdb.log"; cat "$dir/initdb.log" >&2; return 1; }
    options="-p $port -k $dir -c listen_addresses=127.0.0.1 -c max_connections=400 -c fsync=off -c synchronous_commit=off"
    if [ -n "$cert" ]; then
        _postgres_tls_only "$dir/data" "$cert" "$key" || return 1
        options="$options -c ssl=on -c ssl_cert_file=server.crt -c ssl_key_file=server.key"
    fi
    _as_postgres "$bindir/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 -o "$options" start >/dev/null ||
        { _db_log "PostgreSQL did not start, see $dir/server.log"; cat "$dir/server.log" >&2; return 1; }
    _as_postgres "$bindir/createdb" -h 127.0.0.1 -p "$port" -U postgres test
}

# start_postgres_with_password DIR PORT USER PASSWORD: start_postgres, then
# TCP connections must authenticate with SCRAM: USER logs in with PASSWORD
# and owns database `test` (the Unix socket stays trust, for the tests' own
# access). The trusting servers never check a password, so a test of how
# passwords travel in URLs needs this one.
start_postgres_with_password() {
    local dir="$1" port="$2" user="$3" password="$4" bindir
    start_postgres "$dir" "$port" || return 1
    bindir="$(postgres_bindir)" || return 1
    # The password as a psql variable (:'password' quotes it), never spliced into SQL.
    printf '%s\n' "CREATE ROLE \"$user\" LOGIN PASSWORD :'password';" "ALTER DATABASE test OWNER TO \"$user\";" |
        _as_postgres "$bindir/psql" -X -q -h "$dir" -p "$port" -U postgres -d test -v ON_ERROR_STOP=1 \
            -v password="$password" >/dev/null ||
        { _db_log "cannot create role $user"; return 1; }
    printf '%s\n' "local all all trust" "host all all 127.0.0.1/32 scram-sha-256" >"$dir/data/pg_hba.conf"
    _as_postgres "$bindir/pg_ctl" -D "$dir/data" reload >/dev/null || return 1
    # A reload is applied asynchronously: wait until a connection without a password is refused.
    local _
    for _ in $(seq 100); do
        PGCONNECT_TIMEOUT=5 "$bindir/psql" -X -w "host=127.0.0.1 port=$port user=$user dbname=test" -c 'SELECT 1' \
            >/dev/null 2>&1 || return 0
        sleep 0.1
    done
    _db_log "PostgreSQL on $port still accepts $user without a password after its reload"
    return 1
}

# Copies the certificate and key into DATA (PostgreSQL refuses a key that is
# not 0600 and owned by the server's user) and allows TCP only with TLS.
_postgres_tls_only() {
    local data="$1" cert="$2" key="$3" owner=()
    [ "$(id -u)" = 0 ] && owner=(-o postgres -g postgres)
    install "${owner[@]}" -m 0644 "$cert" "$data/server.crt" &&
        install "${owner[@]}" -m 0600 "$key" "$data/server.key" ||
        { _db_log "cannot copy $cert and $key into $data"; return 1; }
    cat >"$data/pg_hba.conf" <<'HBA'
local     all all              trust
hostssl   all all 127.0.0.1/32 trust
hostnossl all all 0.0.0.0/0    reject
HBA
}

stop_postgres() {
    local dir="$1" bindir
    [ -f "$dir/data/postmaster.pid" ] || return 0
    bindir="$(postgres_bindir)" || return 1
    _as_postgres "$bindir/pg_ctl" -D "$dir/data" -m immediate -w stop >/dev/null 2>&1 || true
}

# start_mariadb DIR PORT [CERT KEY]: mariadb-install-db + mariadbd in DIR,
# root without password on 127.0.0.1:PORT, database `test`. Waits until it
# answers. With a PEM certificate and key, the server offers TLS.
start_mariadb() {
    local dir="$1" port="$2" cert="${3:-}" key="${4:-}" deadline tls=()
    [ -n "$cert" ] && tls=(--ssl-cert="$cert" --ssl-key="$key")
    _ensure_mariadb_installed || return 1
    mkdir -p "$dir"
    mariadb-install-db --no-defaults --user=root --datadir="$dir/data" --auth-root-authentication-method=normal \
        --skip-test-db >"$dir/install.log" 2>&1 ||
        { _db_log "mariadb-install-db failed, see $dir/install.log"; cat "$dir/install.log" >&2; return 1; }
    # setsid: the server must not get the terminal's SIGINT meant for the tests.
    setsid mariadbd --no-defaults --user=root --datadir="$dir/data" --socket="$dir/mysqld.sock" \
        --pid-file="$dir/mariadbd.pid" --port="$port" --bind-address=127.0.0.1 --skip-networking=0 \
        --log-error="$dir/error.log" --max-connections=400 --innodb-use-native-aio=0 \
        --innodb-buffer-pool-size=64M --innodb-flush-log-at-trx-commit=0 --skip-log-bin "${tls[@]}" </dev/null >/dev/null 2>&1 &
    local pid=$!
    deadline=$((SECONDS + 60))
    # Through our own socket, so another server that took the port cannot answer for ours;
    # a server that could not bind the port exits, which ends the wait at once.
    until mariadb --no-defaults --socket="$dir/mysqld.sock" -u root -e 'CREATE DATABASE IF NOT EXISTS test' 2>/dev/null; do
        if ! kill -0 "$pid" 2>/dev/null; then
            _db_log "MariaDB exited before answering (port $port taken?), see $dir/error.log"
            return 1
        fi
        if [ "$SECONDS" -ge "$deadline" ]; then
            _db_log "MariaDB did not answer on port $port within 60s, see $dir/error.log"
            cat "$dir/error.log" >&2 2>/dev/null
            return 1
        fi
        sleep 0.2
    done
}

stop_mariadb() {
    local dir="$1" pid deadline
    [ -f "$dir/mariadbd.pid" ] || return 0
    pid="$(cat "$dir/mariadbd.pid")"
    kill "$pid" 2>/dev/null || return 0
    deadline=$((SECONDS + 30))
    while kill -0 "$pid" 2>/dev/null && [ "$SECONDS" -lt "$deadline" ]; do sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
}

# _start_on_a_free_port postgres|mariadb DIR: sets _KUBE_ONCE_PORT. A port is
# picked before the server binds it, so another process may take it in
# between (parallel test runs do): try again on another port.
_start_on_a_free_port() {
    local kind="$1" dir="$2" attempt
    for attempt in 1 2 3; do
        _KUBE_ONCE_PORT="$(free_port)" || return 1
        if "start_$kind" "$dir" "$_KUBE_ONCE_PORT"; then
            return 0
        fi
        _db_log "$kind did not start on port $_KUBE_ONCE_PORT (attempt $attempt of 3)"
        "stop_$kind" "$dir"
        rm -rf "$dir"
    done
    return 1
}

ensure_databases() {
    # Tests that start servers of their own need the binaries in any case.
    postgres_bindir >/dev/null || return 1
    _ensure_mariadb_installed || return 1
    if [ -z "${KUBE_ONCE_TEST_POSTGRES_URL:-}" ] || [ -z "${KUBE_ONCE_TEST_MYSQL_URL:-}" ]; then
        _KUBE_ONCE_DB_DIR="$(mktemp -d /tmp/kube-once-db.XXXXXX)"
    fi
    if [ -z "${KUBE_ONCE_TEST_POSTGRES_URL:-}" ]; then
        _start_on_a_free_port postgres "$_KUBE_ONCE_DB_DIR/postgres" || return 1
        export KUBE_ONCE_TEST_POSTGRES_URL="postgres://postgres@127.0.0.1:$_KUBE_ONCE_PORT/test"
        _db_log "started PostgreSQL: $KUBE_ONCE_TEST_POSTGRES_URL"
    else
        _db_log "using PostgreSQL from KUBE_ONCE_TEST_POSTGRES_URL"
    fi
    if [ -z "${KUBE_ONCE_TEST_MYSQL_URL:-}" ]; then
        _start_on_a_free_port mariadb "$_KUBE_ONCE_DB_DIR/mariadb" || return 1
        export KUBE_ONCE_TEST_MYSQL_URL="mysql://root@127.0.0.1:$_KUBE_ONCE_PORT/test"
        _db_log "started MariaDB: $KUBE_ONCE_TEST_MYSQL_URL"
    else
        _db_log "using MySQL/MariaDB from KUBE_ONCE_TEST_MYSQL_URL"
    fi
}

# Stops and removes only what ensure_databases started.
stop_databases() {
    [ -n "$_KUBE_ONCE_DB_DIR" ] || return 0
    stop_postgres "$_KUBE_ONCE_DB_DIR/postgres"
    stop_mariadb "$_KUBE_ONCE_DB_DIR/mariadb"
    rm -rf "$_KUBE_ONCE_DB_DIR"
    _KUBE_ONCE_DB_DIR=""
}

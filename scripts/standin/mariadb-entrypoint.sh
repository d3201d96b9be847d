#!/bin/bash
# Stand-in for the official mariadb image's docker-entrypoint.sh, built on Debian's
# mariadb-server. It keeps the environment interface compose files and deployctl
# accessories are written against:
#   MARIADB_ROOT_PASSWORD[_FILE] | MARIADB_ALLOW_EMPTY_ROOT_PASSWORD | MARIADB_RANDOM_ROOT_PASSWORD
#   MARIADB_ROOT_HOST (default %), MARIADB_DATABASE, MARIADB_USER, MARIADB_PASSWORD[_FILE]
#   (each also as MYSQL_*), and /docker-entrypoint-initdb.d/*.{sh,sql,sql.gz}.
# The data directory is initialised only when it is empty, so a volume at /var/lib/mysql
# keeps its data across container restarts. Run as root (the default): mariadbd drops to
# the mysql user itself via --user=mysql.
set -euo pipefail

DATADIR=/var/lib/mysql
SOCKET=/run/mysqld/mysqld.sock

log() { printf '%s [Entrypoint]: %s\n' "$(date '+%F %T')" "$*"; }
die() { log "ERROR: $*" >&2; exit 1; }

# Reads NAME from MARIADB_NAME, MARIADB_NAME_FILE, MYSQL_NAME or MYSQL_NAME_FILE (in that
# order, a variable and its _FILE twin are exclusive) and exports MARIADB_NAME.
env_or_file() {
    local name="$1" prefix var file_var value=""
    for prefix in MARIADB MYSQL; do
        var="${prefix}_${name}"
        file_var="${var}_FILE"
        if [ -n "${!var:-}" ] && [ -n "${!file_var:-}" ]; then
            die "both $var and $file_var are set (but are exclusive)"
        fi
        if [ -n "${!var:-}" ]; then
            value="${!var}"
            break
        fi
        if [ -n "${!file_var:-}" ]; then
            value="$(<"${!file_var}")"
            break
        fi
    done
    export "MARIADB_${name}=${value}"
}

# SQL string literal / identifier quoting for values that come from the environment.
sql_string() {
    local s="${1//\\/\\\\}"
    printf "'%s'" "${s//\'/\\\'}"
}
# shellcheck disable=SC2016 # backticks are SQL identifier quotes
sql_ident() { printf '`%s`' "${1//\`/\`\`}"; }

sql() { mariadb --protocol=socket --socket="$SOCKET" -uroot "$@"; }

start_temp_server() {
    # No networking while initialising: nothing can connect before the users exist.
    "$@" --user=mysql --skip-networking --socket="$SOCKET" --skip-log-bin &
    TEMP_SERVER_PID=$!
    local _
    for _ in $(seq 1 60); do
        if mariadb-admin --protocol=socket --socket="$SOCKET" -uroot ping >/dev/null 2>&1; then
            return 0
        fi
        kill -0 "$TEMP_SERVER_PID" 2>/dev/null || die "temporary server exited during initialisation"
        sleep 1
    done
    die "temporary server did not answer within 60 s"
}

stop_temp_server() {
    mariadb-admin --protocol=socket --socket="$SOCKET" -uroot shutdown
    wait "$TEMP_SERVER_PID" || true
}

initialise() {
    env_or_file ROOT_PASSWORD
    env_or_file PASSWORD
    env_or_file USER
    env_or_file DATABASE
    env_or_file ROOT_HOST
    env_or_file ALLOW_EMPTY_ROOT_PASSWORD
    env_or_file RANDOM_ROOT_PASSWORD
    : "${MARIADB_ROOT_HOST:=%}"

    if [ -z "$MARIADB_ROOT_PASSWORD" ] && [ -z "$MARIADB_ALLOW_EMPTY_ROOT_PASSWORD" ] \
        && [ -z "$MARIADB_RANDOM_ROOT_PASSWORD" ]; then
        die "Database is uninitialized and password option is not specified
	You need to specify one of MARIADB_ROOT_PASSWORD, MARIADB_ROOT_PASSWORD_HASH, MARIADB_ALLOW_EMPTY_ROOT_PASSWORD and MARIADB_RANDOM_ROOT_PASSWORD"
    fi
    if [ -n "$MARIADB_RANDOM_ROOT_PASSWORD" ] && [ -z "$MARIADB_ROOT_PASSWORD" ]; then
        # Finite input on purpose: `tr </dev/urandom | head` dies of SIGPIPE under pipefail.
        local random
        random="$(head -c 48 /dev/urandom | base64 -w0)"
        random="${random//[^A-Za-z0-9]/}"
        MARIADB_ROOT_PASSWORD="${random:0:32}"
        log "GENERATED ROOT PASSWORD: $MARIADB_ROOT_PASSWORD"
    fi

    log "Initializing database files"
    mariadb-install-db --user=mysql --datadir="$DATADIR" --skip-test-db \
        --auth-root-authentication-method=socket >/dev/null
    log "Database files initialized"

    start_temp_server "$@"
    log "Temporary server started"

    local root_pw
    root_pw="$(sql_string "$MARIADB_ROOT_PASSWORD")"
    {
        echo "SET @@SESSION.SQL_LOG_BIN=0;"
        echo "DROP USER IF EXISTS ''@'localhost', ''@'$(hostname)';"
        echo "DROP DATABASE IF EXISTS test;"
        # root keeps socket auth inside the container (docker exec, healthcheck) and gets
        # the password for TCP, like the official image.
        echo "ALTER USER 'root'@'localhost' IDENTIFIED VIA unix_socket OR mysql_native_password USING PASSWORD(${root_pw});"
        if [ "$MARIADB_ROOT_HOST" != localhost ]; then
            echo "CREATE USER IF NOT EXISTS 'root'@$(sql_string "$MARIADB_ROOT_HOST") IDENTIFIED BY ${root_pw};"
            echo "GRANT ALL ON *.* TO 'root'@$(sql_string "$MARIADB_ROOT_HOST") WITH GRANT OPTION;"
        fi
        if [ -n "$MARIADB_DATABASE" ]; then
            echo "CREATE DATABASE IF NOT EXISTS $(sql_ident "$MARIADB_DATABASE");"
        fi
        if [ -n "$MARIADB_USER" ]; then
            [ -n "$MARIADB_PASSWORD" ] || log "Warning: MARIADB_USER without MARIADB_PASSWORD has an empty password"
            echo "CREATE USER IF NOT EXISTS $(sql_string "$MARIADB_USER")@'%' IDENTIFIED BY $(sql_string "$MARIADB_PASSWORD");"
            if [ -n "$MARIADB_DATABASE" ]; then
                echo "GRANT ALL ON $(sql_ident "$MARIADB_DATABASE").* TO $(sql_string "$MARIADB_USER")@'%';"
            fi
        fi
        echo "FLUSH PRIVILEGES;"
    } | sql

    local f
    for f in /docker-entrypoint-initdb.d/*; do
        [ -e "$f" ] || continue
        case "$f" in
            *.sh)
                if [ -x "$f" ]; then
                    log "running $f"
                    "$f"
                else
                    log "sourcing $f"
                    # shellcheck disable=SC1090
                    . "$f"
                fi
                ;;
            *.sql) log "running $f"; sql ${MARIADB_DATABASE:+"$MARIADB_DATABASE"} <"$f" ;;
            *.sql.gz) log "running $f"; gzip -dc "$f" | sql ${MARIADB_DATABASE:+"$MARIADB_DATABASE"} ;;
            *) log "ignoring $f" ;;
        esac
    done

    stop_temp_server
    log "MariaDB init process done. Ready for start up."
}

# `docker run IMAGE --some-option` means options for the server, as in the official image.
if [ "${1:0:1}" = - ]; then
    set -- mariadbd "$@"
fi

# Like the official image: `mariadbd --version` / `--help` just run, nothing is initialised.
wants_help() {
    local arg
    for arg in "$@"; do
        case "$arg" in -'?' | --help | --print-defaults | -V | --version) return 0 ;; esac
    done
    return 1
}

if { [ "$1" = mariadbd ] || [ "$1" = mysqld ]; } && ! wants_help "$@"; then
    mkdir -p /run/mysqld "$DATADIR"
    chown mysql:mysql /run/mysqld
    # A fresh named volume or bind mount may not belong to mysql yet.
    find "$DATADIR" \! -user mysql -exec chown mysql:mysql '{}' +
    if [ ! -d "$DATADIR/mysql" ]; then
        initialise "$@"
    fi
    exec "$@" --user=mysql
fi

exec "$@"

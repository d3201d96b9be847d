#!/bin/bash
# Stand-in for the official postgres image's docker-entrypoint.sh, built on Debian's
# postgresql-15. It keeps the environment interface compose files and deployctl
# accessories are written against:
#   POSTGRES_PASSWORD[_FILE] (required unless POSTGRES_HOST_AUTH_METHOD=trust),
#   POSTGRES_USER[_FILE] (default postgres), POSTGRES_DB[_FILE] (default the user),
#   POSTGRES_INITDB_ARGS, POSTGRES_HOST_AUTH_METHOD (default scram-sha-256), PGDATA
#   (default /var/lib/postgresql/data), and /docker-entrypoint-initdb.d/*.{sh,sql,sql.gz}.
# As in the official image, connections over the container's own socket are trusted
# (docker exec psql needs no password) and TCP ones need the password.
# The data directory is initialised only when it is empty, so a volume at PGDATA keeps its
# data across container restarts. Started as root, it fixes PGDATA's owner and re-runs
# itself as the postgres user (setpriv, from util-linux: no gosu in Debian's archive).
set -euo pipefail

export PGDATA="${PGDATA:-/var/lib/postgresql/data}"

log() { printf '%s [Entrypoint]: %s\n' "$(date '+%F %T')" "$*"; }
die() { log "ERROR: $*" >&2; exit 1; }

# Exports NAME from NAME or NAME_FILE (exclusive), else DEFAULT.
file_env() {
    local var="$1" file_var="$1_FILE" value="${2:-}"
    if [ -n "${!var:-}" ] && [ -n "${!file_var:-}" ]; then
        die "both $var and $file_var are set (but are exclusive)"
    fi
    if [ -n "${!var:-}" ]; then
        value="${!var}"
    elif [ -n "${!file_var:-}" ]; then
        value="$(<"${!file_var}")"
    fi
    export "$var=$value"
    unset "$file_var"
}

sql() { psql -v ON_ERROR_STOP=1 --no-psqlrc --username "$POSTGRES_USER" --no-password "$@"; }

initialise() {
    file_env POSTGRES_PASSWORD
    file_env POSTGRES_USER postgres
    file_env POSTGRES_DB "$POSTGRES_USER"
    file_env POSTGRES_INITDB_ARGS
    local auth="${POSTGRES_HOST_AUTH_METHOD:-scram-sha-256}"
    if [ -z "$POSTGRES_PASSWORD" ] && [ "$auth" != trust ]; then
        die "Database is uninitialized and superuser password is not specified.
	You must specify POSTGRES_PASSWORD to a non-empty value for the superuser
	(or POSTGRES_HOST_AUTH_METHOD=trust to allow all connections without a password)"
    fi

    log "Initializing database files"
    # The password goes in through a file descriptor: never on an argv.
    # shellcheck disable=SC2086 # POSTGRES_INITDB_ARGS is split into words, as upstream
    initdb --username="$POSTGRES_USER" --pwfile=<(printf '%s\n' "$POSTGRES_PASSWORD") \
        --auth-local=trust --auth-host="$auth" $POSTGRES_INITDB_ARGS >/dev/null
    printf '\nhost all all all %s\n' "$auth" >>"$PGDATA/pg_hba.conf"
    printf "\nlisten_addresses = '*'\n" >>"$PGDATA/postgresql.conf"

    # No TCP while initialising: nothing can connect (or pass a health check over TCP)
    # before the database exists.
    pg_ctl -D "$PGDATA" -o "-c listen_addresses=''" -w start >/dev/null
    log "Temporary server started"
    if [ "$POSTGRES_DB" != postgres ]; then
        sql --dbname postgres --set db="$POSTGRES_DB" <<<'CREATE DATABASE :"db";'
    fi
    local f
    for f in /docker-entrypoint-initdb.d/*; do
        [ -e "$f" ] || continue
        case "$f" in
            *.sh)
                if [ -x "$f" ]; then log "running $f"; "$f"; else log "sourcing $f"; . "$f"; fi ;;
            *.sql) log "running $f"; sql --dbname "$POSTGRES_DB" -f "$f" ;;
            *.sql.gz) log "running $f"; gzip -dc "$f" | sql --dbname "$POSTGRES_DB" ;;
            *) log "ignoring $f" ;;
        esac
    done
    pg_ctl -D "$PGDATA" -m fast -w stop >/dev/null
    log "PostgreSQL init process complete; ready for start up."
}

# `docker run IMAGE -c x=y` means options for the server, as in the official image.
if [ "${1:0:1}" = - ]; then
    set -- postgres "$@"
fi

if [ "$1" = postgres ]; then
    if [ "$(id -u)" = 0 ]; then
        mkdir -p "$PGDATA" /var/run/postgresql
        # A fresh named volume or bind mount may not belong to postgres yet.
        find "$PGDATA" /var/run/postgresql \! -user postgres -exec chown postgres:postgres '{}' +
        chmod 700 "$PGDATA"
        chmod 2777 /var/run/postgresql
        exec setpriv --reuid=postgres --regid=postgres --init-groups "${BASH_SOURCE[0]}" "$@"
    fi
    if [ ! -s "$PGDATA/PG_VERSION" ]; then
        initialise
    fi
    exec "$@"
fi

exec "$@"

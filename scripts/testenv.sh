#!/usr/bin/env bash
# The machine-wide services deployctl's tests need (docs/TEAM-CONTRACT.md), on a Debian 12
# machine without systemd where only the package mirrors and PyPI are reachable.
#
#   scripts/testenv.sh up       install what is missing, start what is down, build the
#                               stand-in images that are missing; safe to repeat, and
#                               quick when everything is already there
#   scripts/testenv.sh status   what is installed and running (exit 1 if anything is not)
#
# Registries and sshd are not started here: tests/conftest.py starts private ones per
# pytest session. Logs go to $TESTENV_LOG_DIR (default /var/log/deployctl-testenv).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
export TESTENV_LOG_DIR="${TESTENV_LOG_DIR:-/var/log/deployctl-testenv}"
LOCK_FILE="${TESTENV_LOCK_FILE:-/tmp/deployctl-testenv.lock}"

PACKAGES=(
    docker.io docker-registry docker-compose mmdebstrap
    openssh-server mariadb-server nginx-light apache2-utils iproute2
    chromium chromium-driver wrk
    pebble # a real ACME CA (and pebble-challtestsrv) for the HTTPS tests: tests/support/pebble.py
    python3-venv # scripts/test makes .venv with it
)

# The test-only database account of the contract (never used outside tests).
DB_USER=deployctl
DB_PASSWORD=deployctl-test

DOCKERD_WAIT=60
MARIADB_WAIT=60

say() { printf 'testenv: %s\n' "$*"; }
die() { printf 'testenv: ERROR: %s\n' "$*" >&2; exit 1; }

missing_packages() {
    local pkg
    for pkg in "${PACKAGES[@]}"; do
        if [ "$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null)" != "install ok installed" ]; then
            printf '%s\n' "$pkg"
        fi
    done
}

ensure_packages() {
    local missing
    mapfile -t missing < <(missing_packages)
    if [ ${#missing[@]} -eq 0 ]; then
        say "packages  present (${#PACKAGES[@]})"
        return
    fi
    say "packages  installing: ${missing[*]} (log $TESTENV_LOG_DIR/apt.log)"
    local started=$SECONDS
    # Another apt run (e.g. unattended or a colleague's) holds the dpkg lock: wait for it.
    if ! {
        apt-get -o DPkg::Lock::Timeout=600 update &&
            DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y "${missing[@]}"
    } >>"$TESTENV_LOG_DIR/apt.log" 2>&1; then
        tail -n 20 "$TESTENV_LOG_DIR/apt.log" >&2
        die "apt-get failed; see $TESTENV_LOG_DIR/apt.log"
    fi
    say "packages  installed in $((SECONDS - started))s"
}

docker_answers() { timeout 10 docker info >/dev/null 2>&1; }

ensure_dockerd() {
    if docker_answers; then
        say "dockerd   running"
        return
    fi
    # No systemd: dockerd runs detached from this shell (its own session) so it outlives
    # the CI step that started it. A dockerd that is already starting is waited for. Only
    # our own PID namespace counts: the fleet tests' hosts run dockerds of their own, which
    # the machine sees as processes too, and must not pass for this engine.
    if ! pgrep -x dockerd --ns $$ --nslist pid >/dev/null; then
        say "dockerd   starting (log $TESTENV_LOG_DIR/dockerd.log)"
        setsid dockerd >>"$TESTENV_LOG_DIR/dockerd.log" 2>&1 </dev/null 9>&- &
    fi
    local i
    for ((i = 0; i < DOCKERD_WAIT; i++)); do
        docker_answers && { say "dockerd   up after ${i}s"; return; }
        sleep 1
    done
    tail -n 20 "$TESTENV_LOG_DIR/dockerd.log" >&2 || true
    die "dockerd did not answer \`docker info\` within ${DOCKERD_WAIT}s; see $TESTENV_LOG_DIR/dockerd.log"
}

# root reaches MariaDB over the socket with unix_socket auth, no password needed.
mariadb_root() { mariadb --protocol=socket -uroot --connect-timeout=5 "$@"; }
mariadb_answers() { mariadb_root -N -B -e 'SELECT 1' >/dev/null 2>&1; }

start_mariadb() {
    mkdir -p /run/mysqld
    chown mysql:mysql /run/mysqld
    if [ ! -d /var/lib/mysql/mysql ]; then
        say "mariadb   initialising /var/lib/mysql"
        mariadb-install-db --user=mysql --datadir=/var/lib/mysql >>"$TESTENV_LOG_DIR/mariadb.log" 2>&1
    fi
    say "mariadb   starting (log $TESTENV_LOG_DIR/mariadb.log)"
    # All addresses, so containers reach it at the docker bridge gateway (172.17.0.1).
    setsid mariadbd --user=mysql --bind-address=0.0.0.0 >>"$TESTENV_LOG_DIR/mariadb.log" 2>&1 </dev/null 9>&- &
    local i
    for ((i = 0; i < MARIADB_WAIT; i++)); do
        mariadb_answers && { say "mariadb   up after ${i}s"; return; }
        sleep 1
    done
    tail -n 20 "$TESTENV_LOG_DIR/mariadb.log" >&2 || true
    die "MariaDB did not answer within ${MARIADB_WAIT}s; see $TESTENV_LOG_DIR/mariadb.log"
}

# The mariadbd processes that are this machine's own: in this PID namespace (a container
# on the machine, e.g. a test's database accessory or a stand-in host, runs a mariadbd the
# machine sees too, and killing it only makes its engine restart it) and not zombies (a
# mariadbd that died under a parent that never reaps it stays listed, and no signal ends
# it). CI's 2026-12-02 runs stopped here twice on such a process.
own_mariadbd_pids() {
    local pid
    for pid in $(pgrep -x mariadbd --ns $$ --nslist pid || true); do
        case "$(ps -o stat= -p "$pid" 2>/dev/null)" in
            "" | Z*) ;;
            *) printf '%s\n' "$pid" ;;
        esac
    done
}

# A mariadbd of ours that runs but does not answer: one still starting or recovering, or one
# hung or started with another socket. Give it the start-up wait first; then, since this
# machine's database exists only for the tests, stop it (its data directory stays) so
# start_mariadb can start ours.
settle_unanswering_mariadb() {
    local why deadline pids
    why="$(mariadb_root -N -B -e 'SELECT 1' 2>&1 >/dev/null | tail -n 1 || true)"
    say "mariadb   a mariadbd runs here (pids $(own_mariadbd_pids | tr '\n' ' ')) but does not answer as root over the socket (${why:-no error text}); waiting up to ${MARIADB_WAIT}s"
    # Deadlines, not counts: each try against a hung server takes the client's 5 s timeout.
    deadline=$((SECONDS + MARIADB_WAIT))
    while ((SECONDS < deadline)); do
        [ -n "$(own_mariadbd_pids)" ] || return 0
        mariadb_answers && { say "mariadb   answered"; return 0; }
        sleep 1
    done
    pids="$(own_mariadbd_pids | tr '\n' ' ')"
    say "mariadb   still silent; stopping it (pids $pids) to start one that answers"
    # shellcheck disable=SC2086 # one word per pid
    [ -z "${pids// /}" ] || kill -TERM $pids 2>/dev/null || true
    mariadbd_gone_within 30 && return 0
    pids="$(own_mariadbd_pids | tr '\n' ' ')"
    say "mariadb   did not stop within 30s of SIGTERM; killing it (pids $pids)"
    # shellcheck disable=SC2086
    [ -z "${pids// /}" ] || kill -KILL $pids 2>/dev/null || true
    mariadbd_gone_within 10 || die "a mariadbd process survives SIGKILL (pids $(own_mariadbd_pids | tr '\n' ' ')); see $TESTENV_LOG_DIR/mariadb.log"
}

mariadbd_gone_within() {
    local deadline=$((SECONDS + $1))
    while ((SECONDS < deadline)); do
        [ -n "$(own_mariadbd_pids)" ] || return 0
        sleep 1
    done
    return 1
}

ensure_mariadb() {
    if ! mariadb_answers && [ -n "$(own_mariadbd_pids)" ]; then
        settle_unanswering_mariadb
    fi
    if mariadb_answers; then
        local bind
        bind="$(mariadb_root -N -B -e 'SELECT CONCAT(@@bind_address, IF(@@skip_networking, " no-network", ""))')"
        case "$bind" in
            0.0.0.0 | "*" | ::) say "mariadb   running" ;;
            *)
                # Started by someone else on loopback only: containers could not reach it.
                say "mariadb   running on '$bind' only; restarting it on 0.0.0.0"
                mariadb-admin --protocol=socket -uroot shutdown
                start_mariadb
                ;;
        esac
    else
        start_mariadb
    fi
    # Idempotent: the ALTER resets the password should someone have changed it. WITH GRANT
    # OPTION and *.* so tests can create and drop throwaway databases and users.
    mariadb_root <<SQL
CREATE USER IF NOT EXISTS '$DB_USER'@'%' IDENTIFIED BY '$DB_PASSWORD';
ALTER USER '$DB_USER'@'%' IDENTIFIED BY '$DB_PASSWORD';
GRANT ALL PRIVILEGES ON *.* TO '$DB_USER'@'%' WITH GRANT OPTION;
SQL
}

cmd_up() {
    [ "$(id -u)" = 0 ] || die "run as root (it installs packages and starts daemons)"
    mkdir -p "$TESTENV_LOG_DIR"
    # Several sessions in one tree run scripts/test at once: one `up` at a time. The wait
    # covers a cold image build by another session.
    # (Daemons started below get fd 9 closed, or they would hold the lock forever.)
    exec 9>"$LOCK_FILE"
    if ! flock -n 9; then
        say "waiting for another 'testenv.sh up' to finish (lock $LOCK_FILE)"
        flock -w 1200 9 || die "another 'testenv.sh up' held $LOCK_FILE for 20 minutes"
    fi
    local started=$SECONDS
    ensure_packages
    ensure_dockerd
    ensure_mariadb
    "$HERE/standin-images.sh" build
    say "up in $((SECONDS - started))s"
    cmd_status
}

cmd_status() {
    local rc=0 missing
    mapfile -t missing < <(missing_packages)
    if [ ${#missing[@]} -eq 0 ]; then
        say "status: packages  ok (${#PACKAGES[@]})"
    else
        say "status: packages  MISSING: ${missing[*]}"
        rc=1
    fi

    if docker_answers; then
        say "status: dockerd   up ($(docker version --format 'server {{.Server.Version}}, API {{.Server.APIVersion}}' 2>/dev/null), unix:///var/run/docker.sock)"
    else
        say "status: dockerd   DOWN"
        rc=1
    fi

    if mariadb_answers; then
        local info user
        info="$(mariadb_root -N -B -e 'SELECT CONCAT(VERSION(), ", listening on ", @@bind_address, ":", @@port)')"
        user="$(mariadb_root -N -B -e "SELECT COUNT(*) FROM mysql.user WHERE user='$DB_USER' AND host='%'")"
        if [ "$user" = 1 ]; then
            say "status: mariadb   up ($info, user $DB_USER)"
        else
            say "status: mariadb   up ($info) but user $DB_USER@'%' is MISSING"
            rc=1
        fi
    else
        say "status: mariadb   DOWN"
        rc=1
    fi

    if docker_answers; then
        say "status: stand-in images"
        "$HERE/standin-images.sh" status || rc=1
    else
        say "status: stand-in images unknown (dockerd down)"
    fi
    say "status: registry, sshd: started per pytest session by tests/conftest.py"
    [ "$rc" = 0 ] || say "status: not ready; run: scripts/testenv.sh up"
    return "$rc"
}

case "${1:-}" in
    up) cmd_up ;;
    status) cmd_status ;;
    *) echo "usage: $0 up|status" >&2; exit 2 ;;
esac

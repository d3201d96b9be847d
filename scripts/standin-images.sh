#!/usr/bin/env bash
# Builds the stand-in base images named in docs/TEAM-CONTRACT.md from Debian packages.
# Nothing can be pulled from a public registry on our machines, so each image is a
# Debian bookworm tree made by mmdebstrap and loaded with `docker import`.
#
#   scripts/standin-images.sh build [--force] [KEY...]   build missing or outdated images
#   scripts/standin-images.sh status                     one line per image
#
# KEY is python, nginx, mariadb, postgres or host (default: all). An image is outdated when the
# recipe that made it (its build function plus scripts/standin/KEY-*) has changed since:
# the recipe's hash is kept in the image label org.deployctl.standin.recipe.
# Each build's output goes to $TESTENV_LOG_DIR/standin-KEY.log.
# shellcheck disable=SC2016 # the hooks' "$1" is expanded by mmdebstrap's shell, on purpose
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
STANDIN_DIR="$HERE/standin"
LOG_DIR="${TESTENV_LOG_DIR:-/var/log/deployctl-testenv}"
SUITE=bookworm
RECIPE_LABEL=org.deployctl.standin.recipe
# The engine is Debian's 20.10 without buildx; the classic builder is the one that works.
export DOCKER_BUILDKIT=0

KEYS=(python nginx mariadb postgres host)
declare -A IMAGE=(
    [python]=deployctl-standin/python:3.11-bookworm
    [nginx]=deployctl-standin/nginx:bookworm
    [mariadb]=deployctl-standin/mariadb:bookworm
    [postgres]=deployctl-standin/postgres:15-bookworm
    [host]=deployctl-standin/host:bookworm
)

# The same Debian mirrors the machine itself uses (they are known to be reachable),
# including bookworm-updates and bookworm-security.
debian_sources() {
    if [ -n "${STANDIN_MIRROR:-}" ]; then
        printf '%s\n' "$STANDIN_MIRROR"
    elif [ -f /etc/apt/sources.list.d/debian.sources ]; then
        printf '%s\n' /etc/apt/sources.list.d/debian.sources
    else
        printf '%s\n' "deb http://deb.debian.org/debian $SUITE main" \
            "deb http://deb.debian.org/debian $SUITE-updates main" \
            "deb http://deb.debian.org/debian-security $SUITE-security main"
    fi
}

# mmdebstrap_import KEY PACKAGES [MMDEBSTRAP_ARGS...] -- [IMPORT_CHANGES...]
# Streams the tree straight into `docker import`; no tarball on disk.
mmdebstrap_import() {
    local key="$1" packages="$2"
    shift 2
    local args=() changes=() mirrors=()
    while [ $# -gt 0 ] && [ "$1" != -- ]; do args+=("$1"); shift; done
    [ $# -gt 0 ] && shift
    local change
    for change in "$@"; do changes+=(-c "$change"); done
    mapfile -t mirrors < <(debian_sources)
    # Leave docs, man pages and translations out (as Debian's -slim images do); the
    # dpkg filter stays in the image so later apt-get installs are slim too.
    # force-unsafe-io spares dpkg's fsyncs (as Docker's own debian images do). Not
    # mmdebstrap's eatmydata hook: that needs dpkg-architecture from dpkg-dev, which a
    # cold run in a fresh Debian container did not have.
    mmdebstrap --variant=minbase --include="$packages" \
        --dpkgopt=force-unsafe-io \
        --dpkgopt='path-exclude=/usr/share/man/*' \
        --dpkgopt='path-exclude=/usr/share/info/*' \
        --dpkgopt='path-exclude=/usr/share/doc/*' \
        --dpkgopt='path-include=/usr/share/doc/*/copyright' \
        --dpkgopt='path-exclude=/usr/share/locale/*' \
        "${args[@]}" "$SUITE" - "${mirrors[@]}" \
        | docker import "${changes[@]}" - "$(partial_name "$key")"
}

# Builds write here first: an interrupted or failed mmdebstrap still lets `docker import`
# make an image, and that must never carry the contract's name.
partial_name() { echo "${IMAGE[$1]}-partial"; }

publish() {
    docker tag "$(partial_name "$1")" "${IMAGE[$1]}"
    docker rmi "$(partial_name "$1")" >/dev/null
}

# Official python:*-slim behaviour: pip installs into the system python, unbuffered output.
# The machine's CA bundle goes in because HTTPS to PyPI only verifies with it (see
# /work/shared/testenv.md); PIP_CERT points pip at it explicitly.
build_python() {
    mmdebstrap_import python python3,python3-pip,python3-venv,python-is-python3,ca-certificates,passwd \
        --customize-hook='rm -f "$1"/usr/lib/python3.*/EXTERNALLY-MANAGED' \
        --customize-hook='cp /etc/ssl/certs/ca-certificates.crt "$1"/etc/ssl/certs/ca-certificates.crt' \
        --customize-hook='chroot "$1" useradd --help >/dev/null' \
        -- \
        'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
        'ENV LANG=C.UTF-8' \
        'ENV PYTHONUNBUFFERED=1' \
        'ENV PIP_CERT=/etc/ssl/certs/ca-certificates.crt' \
        'ENV PIP_DISABLE_PIP_VERSION_CHECK=1' \
        'CMD ["python3"]' \
        "LABEL $RECIPE_LABEL=$(recipe_hash python)"
    publish python
}

# Official nginx image contract: user nginx, nginx.conf including conf.d/*.conf, logs to
# the container's stdout/stderr, templates rendered by the entrypoint, SIGQUIT to stop
# gracefully. `docker import -c` refuses STOPSIGNAL, so a one-line classic build adds it.
# The official images build the stream module (with ssl_preread) in; Debian's is the
# libnginx-mod-stream module, which deployctl's shared proxy loads through
# /etc/nginx/modules-enabled to pass HTTPS through by SNI (docs/proxy.md).
build_nginx() {
    mmdebstrap_import nginx nginx-light,libnginx-mod-stream,gettext-base,ca-certificates \
        --customize-hook='chroot "$1" useradd --system --user-group --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin nginx' \
        --customize-hook='rm -f "$1"/etc/nginx/sites-enabled/default' \
        --customize-hook="cp '$STANDIN_DIR/nginx.conf' \"\$1\"/etc/nginx/nginx.conf" \
        --customize-hook="mkdir -p \"\$1\"/etc/nginx/conf.d \"\$1\"/docker-entrypoint.d && cp '$STANDIN_DIR/nginx-default.conf' \"\$1\"/etc/nginx/conf.d/default.conf" \
        --customize-hook="cp '$STANDIN_DIR/nginx-entrypoint.sh' \"\$1\"/docker-entrypoint.sh" \
        --customize-hook='chroot "$1" chown -R nginx:nginx /var/lib/nginx' \
        --customize-hook='chroot "$1" nginx -t' \
        --customize-hook='ln -sf /dev/stdout "$1"/var/log/nginx/access.log && ln -sf /dev/stderr "$1"/var/log/nginx/error.log' \
        -- \
        'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
        'ENTRYPOINT ["/docker-entrypoint.sh"]' \
        'CMD ["nginx", "-g", "daemon off;"]' \
        'EXPOSE 80'
    printf 'FROM %s\nSTOPSIGNAL SIGQUIT\nLABEL %s=%s\n' \
        "$(partial_name nginx)" "$RECIPE_LABEL" "$(recipe_hash nginx)" \
        | docker build -q -t "${IMAGE[nginx]}" -
    docker rmi "$(partial_name nginx)" >/dev/null
}

# Debian's mariadb-server with an entrypoint that speaks the official image's env
# interface. The package's postinst initialises /var/lib/mysql; that is emptied so the
# entrypoint initialises it (with the requested users) on first start in each volume.
build_mariadb() {
    mmdebstrap_import mariadb mariadb-server,mariadb-client \
        --customize-hook='rm -rf "$1"/var/lib/mysql && mkdir -p "$1"/var/lib/mysql "$1"/run/mysqld && chroot "$1" chown mysql:mysql /var/lib/mysql /run/mysqld' \
        --customize-hook='printf "[mysqld]\nbind-address = 0.0.0.0\nskip-name-resolve\nhost-cache-size = 0\n" >"$1"/etc/mysql/mariadb.conf.d/99-docker.cnf' \
        --customize-hook="mkdir -p \"\$1\"/docker-entrypoint-initdb.d && cp '$STANDIN_DIR/mariadb-entrypoint.sh' \"\$1\"/usr/local/bin/docker-entrypoint.sh && cp '$STANDIN_DIR/mariadb-healthcheck.sh' \"\$1\"/usr/local/bin/healthcheck.sh" \
        -- \
        'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
        'ENV LANG=C.UTF-8' \
        'VOLUME /var/lib/mysql' \
        'EXPOSE 3306' \
        'ENTRYPOINT ["docker-entrypoint.sh"]' \
        'CMD ["mariadbd"]' \
        "LABEL $RECIPE_LABEL=$(recipe_hash mariadb)"
    publish mariadb
}

# Debian's postgresql-15 with an entrypoint that speaks the official image's env interface
# (scripts/standin/postgres-entrypoint.sh). The cluster Debian's postinst makes under
# /var/lib/postgresql/15 and /etc/postgresql/15 goes: the entrypoint initialises PGDATA (a
# volume) itself. The version's bin directory comes first on PATH, as in the official image.
build_postgres() {
    mmdebstrap_import postgres postgresql-15 \
        --customize-hook='rm -rf "$1"/var/lib/postgresql/15 "$1"/etc/postgresql/15 && mkdir -p "$1"/var/lib/postgresql/data "$1"/var/run/postgresql "$1"/docker-entrypoint-initdb.d && chroot "$1" chown postgres:postgres /var/lib/postgresql/data /var/run/postgresql' \
        --customize-hook="cp '$STANDIN_DIR/postgres-entrypoint.sh' \"\$1\"/usr/local/bin/docker-entrypoint.sh" \
        -- \
        'ENV PATH=/usr/lib/postgresql/15/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
        'ENV LANG=C.UTF-8' \
        'ENV PGDATA=/var/lib/postgresql/data' \
        'VOLUME /var/lib/postgresql/data' \
        'EXPOSE 5432' \
        'ENTRYPOINT ["docker-entrypoint.sh"]' \
        'CMD ["postgres"]' \
        "LABEL $RECIPE_LABEL=$(recipe_hash postgres)"
    publish postgres
}

# An EC2-like host: its own dockerd and sshd (see scripts/standin/host-entrypoint.sh for
# how to run it). Host keys are removed here so each container generates its own.
# /var/lib/docker is a volume so the inner engine can use overlay2.
build_host() {
    mmdebstrap_import host docker.io,openssh-server,iproute2,ca-certificates \
        --customize-hook='rm -f "$1"/etc/ssh/ssh_host_*' \
        --customize-hook='printf "PermitRootLogin prohibit-password\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n" >"$1"/etc/ssh/sshd_config.d/deployctl-standin.conf' \
        --customize-hook="cp '$STANDIN_DIR/host-entrypoint.sh' \"\$1\"/usr/local/bin/host-entrypoint.sh" \
        -- \
        'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
        'ENV LANG=C.UTF-8' \
        'VOLUME /var/lib/docker' \
        'EXPOSE 22' \
        'ENTRYPOINT ["/usr/local/bin/host-entrypoint.sh"]' \
        "LABEL $RECIPE_LABEL=$(recipe_hash host)"
    publish host
}

# What a key's image is made from: its build function, the shared build step and its files.
recipe_hash() {
    local key="$1"
    {
        declare -f "build_$key" mmdebstrap_import
        echo "$SUITE"
        find "$STANDIN_DIR" -maxdepth 1 -type f \( -name "$key-*" -o -name "$key.*" \) -print0 \
            | sort -z | xargs -0 --no-run-if-empty cat
    } | sha256sum | cut -c1-16
}

# Prints missing, outdated or ok.
image_state() {
    local key="$1" label
    if ! label="$(docker image inspect --format "{{index .Config.Labels \"$RECIPE_LABEL\"}}" \
        "${IMAGE[$key]}" 2>/dev/null)"; then
        echo missing
    elif [ "$label" != "$(recipe_hash "$key")" ]; then
        echo outdated
    else
        echo ok
    fi
}

cmd_status() {
    local key state rc=0
    for key in "${KEYS[@]}"; do
        state="$(image_state "$key")"
        if [ "$state" = ok ]; then
            printf '  %-8s %-42s %s\n' "$key" "${IMAGE[$key]}" \
                "$(docker image inspect --format '{{.Size}}' "${IMAGE[$key]}" | awk '{printf "ok, %d MB", $1/1e6}')"
        else
            printf '  %-8s %-42s %s\n' "$key" "${IMAGE[$key]}" "$state"
            rc=1
        fi
    done
    return "$rc"
}

cmd_build() {
    local force=0 keys=() key
    for arg in "$@"; do
        case "$arg" in
            --force) force=1 ;;
            python | nginx | mariadb | postgres | host) keys+=("$arg") ;;
            *) echo "standin-images: unknown argument: $arg" >&2; exit 2 ;;
        esac
    done
    [ ${#keys[@]} -gt 0 ] || keys=("${KEYS[@]}")
    command -v mmdebstrap >/dev/null || { echo "standin-images: mmdebstrap missing (scripts/testenv.sh up installs it)" >&2; exit 1; }
    mkdir -p "$LOG_DIR"

    # Builds run in parallel: they mostly wait on the mirror and on dpkg, not on CPU.
    local -A pids=() started=()
    for key in "${keys[@]}"; do
        local state
        state="$(image_state "$key")"
        if [ "$state" = ok ] && [ "$force" = 0 ]; then
            printf 'standin %-8s present   %s\n' "$key" "${IMAGE[$key]}"
            continue
        fi
        printf 'standin %-8s %-9s building %s (log %s)\n' "$key" "$state" "${IMAGE[$key]}" "$LOG_DIR/standin-$key.log"
        started[$key]=$SECONDS
        ( "build_$key" ) >"$LOG_DIR/standin-$key.log" 2>&1 &
        pids[$key]=$!
    done

    local failed=0
    for key in "${!pids[@]}"; do
        if wait "${pids[$key]}"; then
            printf 'standin %-8s built in %ds\n' "$key" "$((SECONDS - started[$key]))"
        else
            printf 'standin %-8s FAILED after %ds; last lines of %s:\n' "$key" "$((SECONDS - started[$key]))" "$LOG_DIR/standin-$key.log" >&2
            tail -n 20 "$LOG_DIR/standin-$key.log" >&2
            failed=1
        fi
    done
    return "$failed"
}

case "${1:-build}" in
    build) shift || true; cmd_build "$@" ;;
    status) cmd_status ;;
    *) echo "usage: $0 build [--force] [python|nginx|mariadb|postgres|host]... | status" >&2; exit 2 ;;
esac

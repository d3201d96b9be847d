#!/bin/bash
# Stand-in for the official mariadb image's healthcheck.sh, so compose files that use
# `healthcheck: test: ["CMD", "healthcheck.sh", "--connect", "--innodb_initialized"]` work.
# Every accepted check reduces to "the real server is up with networking on": the
# temporary server used while the entrypoint initialises has networking off, so this only
# passes once clients can connect. It asks over the socket as root (unix_socket auth, as
# `docker exec` runs as root), which needs no password and leaves no access-denied noise.
# Unknown options are ignored on purpose.
set -euo pipefail
skip_networking="$(mariadb --protocol=socket --socket=/run/mysqld/mysqld.sock -uroot \
    --connect-timeout=2 -N -B -e 'SELECT @@skip_networking' 2>/dev/null)" || exit 1
[ "$skip_networking" = 0 ]

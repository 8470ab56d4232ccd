#!/usr/bin/env bash
# The one system dependency: PostgreSQL 15 + PostGIS 3 from the Debian packages,
# which the pgSTAC tests start themselves in a temporary directory
# (tests/pgserver.py). Installs them when missing; a machine that has them is
# left alone. Run as root, or with sudo available.
set -euo pipefail
if [ -x /usr/lib/postgresql/15/bin/initdb ] && [ -f /usr/share/postgresql/15/extension/postgis.control ]; then
    exit 0
fi
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
    postgresql-15 postgresql-15-postgis-3 >/dev/null

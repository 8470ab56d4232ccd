#!/usr/bin/env bash
# The system dependencies, from the Debian 12 packages: PostgreSQL 15 + PostGIS 3,
# which the pgSTAC tests start themselves in a temporary directory
# (tests/pgserver.py), and python3-venv when `python3 -m venv` cannot make a
# virtualenv with pip (Debian's python3 comes without ensurepip). Installs what
# is missing; a machine that has it all is left alone. Run as root, or with
# sudo available.
set -euo pipefail
PACKAGES=()
if ! [ -x /usr/lib/postgresql/15/bin/initdb ] || ! [ -f /usr/share/postgresql/15/extension/postgis.control ]; then
    PACKAGES+=(postgresql-15 postgresql-15-postgis-3)
fi
if ! python3 -c "import ensurepip" 2>/dev/null; then
    PACKAGES+=(python3-venv)
fi
if [ "${#PACKAGES[@]}" -eq 0 ]; then
    exit 0
fi
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
    "${PACKAGES[@]}" >/dev/null

#!/bin/sh
# Installs this oi_local offline bundle. It uses no network: pip installs from wheels/ with --no-index.
#   oi_local-bundle/install.sh [--prefix DIR] [--no-self-check] [--check] [--help]
#   PYTHON=/path/to/python3.11 oi_local-bundle/install.sh      to use a python3 other than the one on PATH
set -eu
here=$(CDPATH='' cd -- "$(dirname -- "$0")" && pwd)
python=${PYTHON:-python3}
if ! command -v "$python" >/dev/null 2>&1; then
  echo "Error: $python was not found, and the installer needs it. Install Python 3 (the version this bundle" \
       "was made for is under \"target\" in $here/manifest.json) or name one: PYTHON=/path/to/python3 $0" >&2
  exit 1
fi
# -I -S: nothing from this user's environment or site-packages; -B: no bytecode written into the bundle
exec "$python" -I -S -B "$here/installer/install.py" "$@"

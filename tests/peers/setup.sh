#!/usr/bin/env bash
# Installs libtorrent (PyPI `libtorrent` 2.1.1: the Python bindings of libtorrent-rasterbar)
# into a virtual environment for tests/peers/lt_node.py, once, and prints the path of its
# python on stdout (everything else goes to stderr).
#
# Usage:  BTDHT_PEERS_PY=$(tests/peers/setup.sh)
#
# Env:    BTDHT_PEERS_VENV  where the venv lives
#                           (default ${XDG_CACHE_HOME:-~/.cache}/btdht/venv-libtorrent-2.1.1;
#                           the interop tests look there too)
#         BTDHT_PEERS_PY    read by the interop tests: the python to run lt_node.py with
#                           (default: the venv's)
# Needs python3 with the venv module (Debian: python3-venv) and access to PyPI.
set -euo pipefail
cache=${XDG_CACHE_HOME:-$HOME/.cache}
venv=${BTDHT_PEERS_VENV:-$cache/btdht/venv-libtorrent-2.1.1}
ready() { "$venv/bin/python" -c 'import libtorrent' 2>/dev/null; }
if ! ready; then
    mkdir -p "$(dirname "$venv")"
    # One installer at a time: test runs and CI may call this concurrently.
    exec 9>"$venv.lock"
    flock 9
    if ! ready; then
        rm -rf "$venv"
        python3 -m venv "$venv" >&2
        "$venv/bin/pip" install --quiet --disable-pip-version-check 'libtorrent==2.1.1' >&2
        ready || { echo "setup.sh: libtorrent does not import in $venv" >&2; exit 1; }
    fi
fi
echo "$venv/bin/python"

#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-3.0-or-later
# Create .venv (Python 3.11) and install AnchorStage into it with the given extras.
# Usage: scripts/bootstrap.sh [EXTRAS]     e.g. scripts/bootstrap.sh test
set -euo pipefail
cd "$(dirname "$0")/.."
extras="${1:-}"
py="${PYTHON:-}"
if [ -z "$py" ]; then
  for cand in python3.11 python3; do
    if command -v "$cand" >/dev/null && "$cand" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))'; then
      py="$cand"; break
    fi
  done
fi
[ -n "$py" ] || { echo "bootstrap: Python 3.11 is required (bpy 5.0.1 is built for it); set PYTHON=/path/to/python3.11" >&2; exit 1; }
if [ ! -x .venv/bin/python ]; then
  "$py" -m venv .venv
fi
spec="."
[ -n "$extras" ] && spec=".[$extras]"
# torch is pinned (torch==2.13.0, CPU build) in pyproject.toml; an unpinned torch would pull CUDA wheels.
log="$(mktemp)"
if ! .venv/bin/python -m pip install --quiet --disable-pip-version-check -e "$spec" >"$log" 2>&1; then
  grep -v "^WARNING: Location" "$log" >&2; rm -f "$log"
  echo "bootstrap: pip install -e '$spec' failed" >&2; exit 1
fi
rm -f "$log"

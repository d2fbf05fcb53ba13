#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-3.0-or-later
# Set up .venv with the test extras (bpy 5.0.1, transformers, diffusers, openjd) and run the whole suite.
# Without arguments (what CI runs) it also runs the Blender tests on Blender 4.2, 4.5 and 5.3
# (scripts/blender_matrix.py; their environments install in the background while .venv is set up).
# ANCHORSTAGE_BLENDER_MATRIX=0 leaves the matrix out; with pytest arguments only pytest runs.
set -euo pipefail
cd "$(dirname "$0")/.."
matrix=0
if [ $# -eq 0 ] && [ "${ANCHORSTAGE_BLENDER_MATRIX:-1}" != 0 ]; then
  matrix=1
  runner="$(command -v python3.11 || command -v python3)"
  mkdir -p .blender-matrix
  "$runner" scripts/blender_matrix.py install >.blender-matrix/install.out 2>&1 &
  install_pid=$!
fi
bash scripts/bootstrap.sh test
status=0
if [ "$matrix" = 1 ]; then
  if wait "$install_pid"; then
    cat .blender-matrix/install.out
    .venv/bin/python scripts/blender_matrix.py test || status=$?
  else
    cat .blender-matrix/install.out >&2
    echo "test.sh: the Blender matrix environments did not install" >&2
    status=1
  fi
fi
.venv/bin/python -m pytest -q "$@" || status=$?
exit "$status"

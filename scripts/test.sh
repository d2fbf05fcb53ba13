#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-3.0-or-later
# Set up .venv with the test extras (bpy 5.0.1, transformers, diffusers) and run the whole suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh test
exec .venv/bin/python -m pytest -q "$@"

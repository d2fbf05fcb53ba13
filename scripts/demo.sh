#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-3.0-or-later
# Set up .venv and run the main job on the bundled sample: reconstruct, render a metric
# camera move to multilayer EXRs, write a contact sheet and an MP4 of the move. Output: out/demo/
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
# --force: out/demo is this script's own folder; a re-run replaces the previous demo there.
exec .venv/bin/anchorstage demo --out out/demo --force "$@"

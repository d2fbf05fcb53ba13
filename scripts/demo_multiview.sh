#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-3.0-or-later
# The offline multi-view demo on the bundled product capture (sample/product, 8 Cycles views 45° apart):
# fuse the views into one scene, then the leave-one-out fidelity report (per-angle table, JSON, contact
# sheet, plot) beside the single-image baseline. Output: out/demo_multiview/{scene,fidelity}/
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
out=out/demo_multiview
# --force: out/demo_multiview is this script's own folder; a re-run replaces the previous demo there.
.venv/bin/anchorstage fuse sample/product --out "$out/scene" --force "$@"
.venv/bin/anchorstage fidelity --leave-one-out sample/product --out "$out/fidelity" --force "$@"
echo "demo written to $out: scene/ (fused stage), fidelity/ (fidelity.md, fidelity.json, contact_sheet.png, per_angle.png)"

#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-3.0-or-later
# The offline multi-view demo on the bundled product capture (sample/product, 8 Cycles views 45° apart):
# fuse the views into one scene, render a 24-frame turntable clip of it (MP4 + GIF), then the leave-one-out fidelity report (per-angle table, JSON, contact
# sheet, plot) beside the single-image baseline. Output: out/demo_multiview/{scene/,turntable.mp4,turntable.gif,fidelity/}
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
out=out/demo_multiview
# --force: out/demo_multiview is this script's own folder; a re-run replaces the previous demo there.
.venv/bin/anchorstage fuse sample/product --out "$out/scene" --force "$@"
.venv/bin/anchorstage video "$out/scene" --path turntable --frames 24 --fps 24 --background 1,1,1 \
  --out "$out/turntable.mp4" --gif "$out/turntable.gif"
.venv/bin/anchorstage fidelity --leave-one-out sample/product --out "$out/fidelity" --force "$@"
echo "demo written to $out: scene/ (fused stage), turntable.mp4 + .gif, fidelity/ (fidelity.md, fidelity.json, contact_sheet.png, per_angle.png)"

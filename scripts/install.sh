#!/usr/bin/env bash
# Create .venv and install every distribution of the repository from its own files (editable),
# with the pinned known-good set in constraints.txt.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv
# torch first and pinned: an unpinned torch resolves to a multi-GB CUDA build.
.venv/bin/pip install -q --disable-pip-version-check -c constraints.txt torch==2.13.0
pkgs=()
for dir in core plugins/*/ editmethods-*/; do
    dir=${dir%/}
    [ -f "$dir/pyproject.toml" ] || continue
    case "$dir" in plugins/_template) continue ;; esac  # copied by third parties, not installed
    pkgs+=(-e "$dir")
done
.venv/bin/pip install -q --disable-pip-version-check -c constraints.txt -r requirements-dev.txt "${pkgs[@]}"
.venv/bin/pip check
touch .venv/.installed

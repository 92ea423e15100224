"""A fork with its own domain, LAN and node addresses passes its own stack-file checks.

The newcomer's path, run on a copy of the project: `python -m homelab init` rewrites
Pulumi.homelab.yaml for another network, `python -m homelab render --update-golden` regenerates the
golden render, and the tests over the committed stack files (marker `stack_files`: the golden
render, the render contracts, the generated diagrams, the lab template's invariants) pass on it.
Every other test asserts against the fixture stacks (tests/fixtures/stacks), which a fork keeps.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.harness import PROJECT_ROOT, REFERENCE_DIR

# Not project files: environments, caches and earlier renders.
IGNORED = shutil.ignore_patterns(
    ".git",
    ".venv",
    ".venv-checkov",
    ".tools",
    ".reference",
    "rendered",
    "__pycache__",
    ".mypy_cache",
    ".ruff_cache",
    ".pytest_cache",
    ".hypothesis",
    "venv",
)

FORK_FLAGS = [
    "--domain",
    "fork.example.org",
    "--email",
    "me@fork.example.org",
    "--lan-cidr",
    "10.77.0.0/24",
    "--gateway",
    "10.77.0.254",
    "--node",
    "alpha=10.77.0.31,disk=/dev/vda",
    "--vip",
    "10.77.0.30",
    "--pool",
    "10.77.0.150-10.77.0.160",
    "--traefik-ip",
    "10.77.0.150",
    "--stun-ip",
    "10.77.0.151",
]


def _run(fork: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HOMELAB_REFERENCE_DIR": str(REFERENCE_DIR), "PYTHONHASHSEED": "0"}
    return subprocess.run(
        [sys.executable, *argv], cwd=fork, env=env, capture_output=True, text=True, check=False
    )


def test_a_re_addressed_fork_passes_the_stack_file_checks(tmp_path: Path) -> None:
    # The stack-file checks include schema contracts; without the reference data they would skip,
    # and a fork run that skipped them proves nothing.
    if not REFERENCE_DIR.is_dir():
        pytest.skip(
            f"upstream reference data not found at {REFERENCE_DIR} (set HOMELAB_REFERENCE_DIR)"
        )
    fork = tmp_path / "fork"
    shutil.copytree(PROJECT_ROOT, fork, ignore=IGNORED)
    init = _run(
        fork, "-m", "homelab", "init", "--stack", "homelab", "--force", "--non-interactive",
        *FORK_FLAGS,
    )  # fmt: skip
    assert init.returncode == 0, init.stderr
    golden = _run(fork, "-m", "homelab", "render", "--update-golden")
    assert golden.returncode == 0, golden.stderr
    summary = (fork / "tests" / "golden" / "homelab" / "SUMMARY.md").read_text()
    # The golden render follows the fork's stack file, not the author's.
    assert "https://headscale.fork.example.org" in summary
    assert "| 443 | 10.77.0.150 |" in summary
    checks = _run(fork, "-m", "pytest", "-m", "stack_files", "-q", "-p", "no:cacheprovider")
    assert checks.returncode == 0, checks.stdout[-4000:] + checks.stderr[-2000:]
    assert " passed" in checks.stdout
    assert " skipped" not in checks.stdout, checks.stdout[-2000:]

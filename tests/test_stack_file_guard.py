"""The guard that keeps tests off the committed stack files (tests/harness.py `StackFileGuard`).

A fork rewrites Pulumi.homelab.yaml and Pulumi.lab.yaml; a test that reads them passes here and
fails there. The guard refuses such a read in any test not marked `stack_files`, and fails the
test even when it swallowed the error.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from homelab import engine
from tests.harness import (
    FIXTURE_STACKS,
    FORK_RUN_VARIABLE,
    PROJECT_ROOT,
    STACK_FILE_GUARD,
    CommittedStackFileReadError,
    StackFileGuard,
    committed_render,
    fixture_stack_config,
)


def test_an_unmarked_test_cannot_read_a_committed_stack_file(tmp_path: Path) -> None:
    assert STACK_FILE_GUARD.armed
    try:
        with pytest.raises(CommittedStackFileReadError, match="not marked `stack_files`"):
            engine.stack_config("homelab")
        with pytest.raises(CommittedStackFileReadError):
            (PROJECT_ROOT / "Pulumi.lab.yaml").read_text()
        with pytest.raises(CommittedStackFileReadError):
            shutil.copyfile(PROJECT_ROOT / "Pulumi.homelab.yaml", tmp_path / "copy.yaml")
        with pytest.raises(CommittedStackFileReadError):
            committed_render("homelab")  # cached after a marked test: checked all the same
        assert len(STACK_FILE_GUARD.reads) == 4
    finally:
        STACK_FILE_GUARD.take()  # this test's reads were on purpose


def test_other_yaml_files_are_read_freely(tmp_path: Path) -> None:
    (tmp_path / "Pulumi.homelab.yaml").write_text("config: {}\n")
    assert engine.read_stack_file(tmp_path / "Pulumi.homelab.yaml") == ({}, [])
    assert fixture_stack_config("homelab")[0]["homelab:domain"]
    assert (PROJECT_ROOT / "Pulumi.yaml").read_text()  # the project file: the same in every fork
    assert STACK_FILE_GUARD.reads == []


@pytest.mark.stack_files
def test_a_marked_test_reads_them() -> None:
    assert not STACK_FILE_GUARD.armed
    assert engine.stack_config("homelab")[0]["homelab:domain"]


def test_a_homelab_command_started_in_the_project_counts_as_a_read() -> None:
    guard = StackFileGuard(PROJECT_ROOT)
    python = sys.executable
    assert guard.runs_homelab_here([python, "-m", "homelab", "render"], PROJECT_ROOT)
    assert guard.runs_homelab_here([python, "-m", "homelab", "status"], None)  # cwd: the project
    assert not guard.runs_homelab_here([python, "-m", "homelab", "render"], FIXTURE_STACKS)
    assert not guard.runs_homelab_here([python, "-m", "homelab", "fetch-reference"], PROJECT_ROOT)
    assert not guard.runs_homelab_here([python, "-m", "pytest"], PROJECT_ROOT)
    wrapper = str(PROJECT_ROOT / "scripts" / "homelab")
    assert guard.runs_homelab_here([wrapper, "render"], FIXTURE_STACKS)  # wherever it starts
    assert not guard.runs_homelab_here([wrapper, "render-diff", "a", "b"], None)
    try:
        with pytest.raises(CommittedStackFileReadError):
            subprocess.run([python, "-m", "homelab", "render", "--help"], check=False)
    finally:
        STACK_FILE_GUARD.take()


GUARDED_TESTS = """
import pytest

from homelab import engine


def test_swallows_the_error():
    try:
        engine.stack_config("homelab")
    except Exception:
        pass


@pytest.mark.stack_files
def test_marked():
    assert engine.stack_config("homelab")[0]


@pytest.mark.fork
def test_the_fork_run():
    pass
"""


def _session(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """A pytest session with the project's hooks (tests/conftest.py) over GUARDED_TESTS."""
    (tmp_path / "test_guarded.py").write_text(textwrap.dedent(GUARDED_TESTS))
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "tests.conftest", "-p", "no:cacheprovider",
         "-p", "no:xdist", "-q", "-W", "ignore::pytest.PytestUnknownMarkWarning", "test_guarded.py"],
        cwd=tmp_path,
        # Not this run's own HOMELAB_FORK_RUN (inside the fork run): each case sets what it tests.
        env={
            **{k: v for k, v in os.environ.items() if k != FORK_RUN_VARIABLE},
            "PYTHONPATH": str(PROJECT_ROOT),
            **env,
        },
        capture_output=True,
        text=True,
        check=False,
    )  # fmt: skip


def test_a_read_fails_the_test_even_when_the_test_swallows_the_error(tmp_path: Path) -> None:
    result = _session(tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "1 failed, 2 passed" in result.stdout
    assert "test_swallows_the_error read a committed stack file" in result.stdout
    assert f"opened {PROJECT_ROOT / 'Pulumi.homelab.yaml'}" in result.stdout


def test_inside_the_fork_run_the_fork_tests_are_deselected(tmp_path: Path) -> None:
    result = _session(tmp_path, **{FORK_RUN_VARIABLE: "1"})
    assert "1 failed, 1 passed, 1 deselected" in result.stdout, result.stdout

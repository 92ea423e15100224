"""Suite-wide hooks: no test reads a committed stack file unless it is marked `stack_files`.

A fork rewrites Pulumi.homelab.yaml and Pulumi.lab.yaml for its own domain and LAN, so a test whose
outcome depends on them passes here and fails there (tests/harness.py `StackFileGuard`). Inside the
fork run of tests/test_fork.py (HOMELAB_FORK_RUN set), the tests marked `fork` are deselected, so
that run never starts another.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Generator

import pytest

from tests.harness import FORK_MARKER, FORK_RUN_VARIABLE, STACK_FILE_GUARD, STACK_FILES_MARKER


def pytest_configure(config: pytest.Config) -> None:
    sys.addaudithook(STACK_FILE_GUARD.audit)
    # Armed from here on (collection included) except while a marked test runs.
    STACK_FILE_GUARD.armed = True


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if os.environ.get(FORK_RUN_VARIABLE):
        deselected = [item for item in items if item.get_closest_marker(FORK_MARKER)]
        if deselected:
            config.hook.pytest_deselected(items=deselected)
            items[:] = [item for item in items if not item.get_closest_marker(FORK_MARKER)]
        return
    # The fork run is the longest test by far: first, so a parallel run starts it at once.
    items.sort(key=lambda item: item.get_closest_marker(FORK_MARKER) is None)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Generator[None]:
    STACK_FILE_GUARD.armed = item.get_closest_marker(STACK_FILES_MARKER) is None
    STACK_FILE_GUARD.take()
    try:
        return (yield)
    finally:
        STACK_FILE_GUARD.armed = True


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    reads = STACK_FILE_GUARD.take()
    if reads:
        # Failed even when the test caught the error: reading the file was the mistake.
        report.outcome = "failed"
        report.longrepr = (
            f"{item.nodeid} read a committed stack file without the `{STACK_FILES_MARKER}` "
            "marker:\n  " + "\n  ".join(reads) + "\nUse a fixture stack (tests/harness.py "
            "render_stack, stack_raw_config, fixture_stack_config), or mark a test over the "
            f"committed files' invariants `@pytest.mark.{STACK_FILES_MARKER}`."
        )
    return report

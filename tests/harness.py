"""Small helpers the tests share: render a stack, find records, turn them into manifests.

Tests assert values against their own fixture stacks (`tests/fixtures/stacks/Pulumi.<stack>.yaml`),
never against the project's committed stack files, which a fork rewrites for its own domain and LAN
(`python -m homelab init`). Tests over the committed files (`committed_render`, marked
`stack_files`) check invariants only. `StackFileGuard` (installed by tests/conftest.py) fails any
other test that reads one, and tests/test_fork.py runs the whole suite on a re-addressed copy.

Upstream reference data (schemas, CRDs, example configs) is read from HOMELAB_REFERENCE_DIR, else
`../shared/reference` beside the project, else `.reference/` (what `python -m homelab
fetch-reference` downloads, for a fork). Locally a test that needs it skips with the reason when it
is absent; in CI (`CI` set, as GitHub Actions does) it fails, since a green run that skipped the
contracts proves nothing. Nothing from there is copied into the project.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import json
import os
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Final
from unittest import mock

import kubernetes_validate
import pytest
import yaml

import config.loader
from config import pins
from config.lab_guard import check_lab_isolation
from homelab import engine
from homelab.engine import Render, ResourceRecord

PROJECT_ROOT = engine.PROJECT_ROOT

# --- the committed stack files ---------------------------------------------------------------

STACK_FILES_MARKER: Final = "stack_files"
# tests/test_fork.py runs the whole suite in a re-addressed copy, with this variable set; there
# the tests marked `fork` (that run itself) are deselected (tests/conftest.py).
FORK_MARKER: Final = "fork"
FORK_RUN_VARIABLE: Final = "HOMELAB_FORK_RUN"
# `python -m homelab` subcommands that read no stack file.
_COMMANDS_WITHOUT_STACK_FILE: Final = frozenset({"fetch-reference", "render-diff"})


class CommittedStackFileReadError(Exception):
    """A test not marked `stack_files` read a committed stack file. Not an OSError, so code that
    tolerates a missing or unreadable file does not take it for one."""


class StackFileGuard:
    """Refuses and records reads of the project's own Pulumi.<stack>.yaml while `armed`.

    tests/conftest.py installs `audit` as an audit hook (sys.addaudithook, PEP 578) and arms it for
    every test not marked `stack_files`. The hook sees every `open` of the process, whoever opens
    the file (engine.read_stack_file, Path.read_text, shutil.copy...), and every subprocess that
    runs the project's CLI (`python -m homelab` in the project, or its ./scripts/homelab), which
    reads the project's stack files. A read raises `CommittedStackFileReadError` and is recorded,
    so a test that catches the error fails all the same (conftest turns a recorded read into a
    failed report). Caches of committed data call `check` themselves (`committed_render`).
    """

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()
        self.armed = False
        self.reads: list[str] = []

    def is_committed_stack_file(self, target: object) -> bool:
        # Not an already-open file descriptor (an int) nor anything else that is not a path.
        if not isinstance(target, str | bytes | os.PathLike):
            return False
        name = os.fsdecode(target)
        # Cheap tests first: this runs on every open of the process.
        if not name.endswith(".yaml"):
            return False
        path = Path(name)
        if not path.name.startswith("Pulumi.") or path.name == "Pulumi.yaml":
            return False  # Pulumi.yaml is the project file, the same in every fork
        return path.resolve().parent == self.root

    def runs_homelab_here(self, argv: object, cwd: object) -> bool:
        if isinstance(argv, str | bytes) or not isinstance(argv, Sequence):
            return False
        words = [os.fsdecode(w) for w in argv if isinstance(w, str | bytes | os.PathLike)]
        if words and Path(words[0]).name == "homelab" and Path(words[0]).parent.name == "scripts":
            # ./scripts/homelab, the wrapper: its project is the one it lives in.
            command = words[1] if len(words) > 1 else ""
            project = Path(words[0]).resolve().parent.parent
            return command not in _COMMANDS_WITHOUT_STACK_FILE and project == self.root
        for index, word in enumerate(words[:-1]):
            if word == "-m" and words[index + 1] == "homelab":
                command = words[index + 2] if index + 2 < len(words) else ""
                started_in = os.fsdecode(cwd) if isinstance(cwd, str | bytes | os.PathLike) else "."
                directory = Path(started_in)
                return (
                    command not in _COMMANDS_WITHOUT_STACK_FILE and directory.resolve() == self.root
                )
        return False

    def audit(self, event: str, args: tuple[Any, ...]) -> None:
        if not self.armed:
            return
        if event == "open" and args and self.is_committed_stack_file(args[0]):
            self.refuse(f"opened {args[0]}")
        elif event == "subprocess.Popen" and len(args) >= 3 and self.runs_homelab_here(*args[1:3]):
            self.refuse(f"ran {' '.join(map(str, args[1]))} in the project")

    def check(self, what: str) -> None:
        """For helpers that cache committed data: refuses like a read while armed."""
        if self.armed:
            self.refuse(what)

    def refuse(self, what: str) -> None:
        self.reads.append(what)
        raise CommittedStackFileReadError(
            f"{what}: this test is not marked `{STACK_FILES_MARKER}`, and a fork rewrites the "
            "committed stack files; assert against a fixture stack (tests/fixtures/stacks) instead"
        )

    def take(self) -> list[str]:
        """The reads recorded since the last call."""
        reads, self.reads = self.reads, []
        return reads


STACK_FILE_GUARD: Final = StackFileGuard(PROJECT_ROOT)


def reference_dir(env: Mapping[str, str], root: Path = PROJECT_ROOT) -> Path:
    """Where the upstream reference data is: the variable, the shared folder, or the cache."""
    if env.get("HOMELAB_REFERENCE_DIR"):
        return Path(env["HOMELAB_REFERENCE_DIR"])
    shared = root.parent / "shared" / "reference"
    return shared if shared.is_dir() else root / ".reference"


REFERENCE_DIR = reference_dir(os.environ)
# kubernetes-validate's strict schema set for the Kubernetes minor Talos runs (config/pins.py).
KUBERNETES_SCHEMA_VERSION = ".".join(pins.KUBERNETES_VERSION.split(".")[:2]) + ".0"


def in_ci(env: Mapping[str, str]) -> bool:
    """Whether this is a CI run: GitHub Actions (and most CI services) set CI=true."""
    return env.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def missing_reference(path: Path, env: Mapping[str, str]) -> str:
    """What to say when reference data is missing (and the test is skipped, or failed in CI)."""
    return (
        f"upstream reference data not found at {path}: run `./scripts/homelab fetch-reference` "
        "(or set HOMELAB_REFERENCE_DIR)"
        + ("; in CI the contract tests must not skip, so this fails" if in_ci(env) else "")
    )


def reference(relative: str) -> Path:
    """A path under the upstream reference folder. When it is missing the calling test skips
    locally and fails in CI."""
    path = REFERENCE_DIR / relative
    if not path.exists():
        message = missing_reference(path, os.environ)
        if in_ci(os.environ):
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    return path


@functools.cache
def reference_json(relative: str) -> Any:
    return json.loads(reference(relative).read_text())


FIXTURE_STACKS = PROJECT_ROOT / "tests" / "fixtures" / "stacks"


def fixture_stack_file(stack: str = "homelab") -> Path:
    """The fixture stack file the tests assert values against."""
    return FIXTURE_STACKS / f"Pulumi.{stack}.yaml"


@contextlib.contextmanager
def fixture_lab_guard() -> Iterator[None]:
    """Labs rendered meanwhile are checked against the fixture homelab, not the project's."""

    def against_fixture(lab: Any, *, stack: str, homelab_file: Path | None = None) -> Any:
        del homelab_file
        return check_lab_isolation(lab, stack=stack, homelab_file=fixture_stack_file("homelab"))

    with mock.patch.object(config.loader, "check_lab_isolation", against_fixture):
        yield


def stack_raw_config(stack: str = "homelab") -> dict[str, Any]:
    """The fixture stack's `homelab:*` config keyed without namespace, plus the sentinel token."""
    return _raw_config(fixture_stack_file(stack))


def committed_raw_config(stack: str) -> dict[str, Any]:
    """The project's own Pulumi.<stack>.yaml like `stack_raw_config`: for invariants only."""
    return _raw_config(engine.stack_file(stack))


def _raw_config(path: Path) -> dict[str, Any]:
    config, _ = engine.read_stack_file(path)
    raw = {key.partition(":")[2]: value for key, value in config.items()}
    raw.setdefault("dnsApiToken", engine.SENTINEL_SECRETS["dnsApiToken"])
    return raw


def render_stack(
    stack: str = "homelab",
    *,
    overrides: Mapping[str, Any] | None = None,
    secrets: Mapping[str, str] | None = None,
    as_stack: str | None = None,
) -> Render:
    """Render a fixture stack with some top-level keys replaced (keys without the namespace).

    `as_stack` runs it as another stack: the `homelab` stack refuses `environment: lab`
    (config/lab_guard.py `stack_identity_problems`), so a lab variant of its file runs as one
    without a stack file of the project."""
    full_overrides = {f"{engine.PROJECT}:{k}": v for k, v in (overrides or {}).items()}
    full_secrets = {f"{engine.PROJECT}:{k}": v for k, v in (secrets or {}).items()}
    config, secret_keys = fixture_stack_config(
        stack, overrides=full_overrides, secrets=full_secrets
    )
    with fixture_lab_guard():
        return engine.render(as_stack or stack, config=config, secret_keys=secret_keys)


def fixture_stack_config(
    stack: str = "homelab",
    *,
    overrides: Mapping[str, Any] | None = None,
    secrets: Mapping[str, str] | None = None,
) -> tuple[dict[str, Any], list[str]]:
    """`engine.stack_config` of the fixture stack (namespace:key config and its secret keys)."""
    return engine.stack_config(
        stack, overrides=overrides, secrets=secrets, path=fixture_stack_file(stack)
    )


def committed_render(stack: str) -> Render:
    """The project's own Pulumi.<stack>.yaml, rendered once: for invariants only, never values
    (tests marked `stack_files`)."""
    STACK_FILE_GUARD.check(f"committed_render({stack!r})")
    return _committed_render(stack)


@functools.cache
def _committed_render(stack: str) -> Render:
    return engine.render(stack)


def render_config(raw: Mapping[str, Any], stack: str = "test") -> Render:
    """Render from a complete raw config (keys without namespace); the token is a secret."""
    config = {f"{engine.PROJECT}:{k}": v for k, v in raw.items()}
    secret_keys = [
        f"{engine.PROJECT}:{k}" for k in ("dnsApiToken", "headplaneCookieSecret") if k in raw
    ]
    return engine.render(stack, config=config, secret_keys=secret_keys)


@functools.cache
def homelab_render() -> Render:
    """The fixture homelab stack, rendered once per test session (records are immutable)."""
    return render_stack("homelab")


def with_changes(raw: Mapping[str, Any], changes: Mapping[str, Any]) -> dict[str, Any]:
    """A deep copy of `raw` with dotted-path changes, e.g. {'network.traefikIp': '10.0.0.1'}."""
    result: dict[str, Any] = copy.deepcopy(dict(raw))
    for path, value in changes.items():
        target: Any = result
        parts = path.split(".")
        for part in parts[:-1]:
            target = target[int(part)] if isinstance(target, list) else target[part]
        last = parts[-1]
        if isinstance(target, list):
            target[int(last)] = value
        else:
            target[last] = value
    return result


# --- Kubernetes records ----------------------------------------------------------------------


def is_kubernetes_object(record: ResourceRecord) -> bool:
    """A plain Kubernetes object (not a provider, Helm release or chart)."""
    return (
        record.custom
        and record.type.startswith("kubernetes:")
        and not record.type.startswith("kubernetes:helm.sh/")
        and record.type != "pulumi:providers:kubernetes"
    )


def kubernetes_records(render: Render) -> list[ResourceRecord]:
    return [r for r in render.resources if is_kubernetes_object(r)]


def manifest(record: ResourceRecord) -> dict[str, Any]:
    """The Kubernetes manifest a record would apply: inputs minus Pulumi-only keys."""
    body = {k: copy.deepcopy(v) for k, v in record.inputs.items() if not k.startswith("__")}
    group_version, _, kind = record.type.removeprefix("kubernetes:").rpartition(":")
    group, _, version = group_version.partition("/")
    if "apiVersion" not in body:
        body["apiVersion"] = version if group == "core" else f"{group}/{version}"
    body.setdefault("kind", kind)
    body.setdefault("metadata", {}).setdefault("name", record.name)
    return body


def validate_kubernetes(document: Mapping[str, Any]) -> None:
    """Raise if `document` is not valid against the strict schemas of the pinned Kubernetes."""
    kubernetes_validate.validate(dict(document), KUBERNETES_SCHEMA_VERSION, strict=True)


def helm_values(record: ResourceRecord) -> dict[str, Any]:
    values = record.inputs.get("values") or {}
    assert isinstance(values, dict)
    return values


def yaml_documents(text: str) -> list[Any]:
    return [d for d in yaml.safe_load_all(text) if d is not None]

"""Renovate proposes a bump for every pin: each constant of config/pins.py is found by a manager."""

from __future__ import annotations

import ast
import importlib.util
import json
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from config import pins
from homelab import engine

ROOT = engine.PROJECT_ROOT
RENOVATE = ROOT / "renovate.json"
PINS = ROOT / "config" / "pins.py"
DATASOURCES = {"docker", "helm", "github-releases", "github-tags", "pypi"}


def config() -> dict[str, Any]:
    document = json.loads(RENOVATE.read_text())
    assert isinstance(document, dict)
    return document


def python_regex(pattern: str) -> re.Pattern[str]:
    """Renovate's ECMAScript named groups `(?<name>` in Python's spelling `(?P<name>`."""
    return re.compile(re.sub(r"\(\?<(?=[A-Za-z])", "(?P<", pattern))


def file_pattern(pattern: str) -> re.Pattern[str]:
    """`managerFilePatterns` entries are regexes between slashes (or globs, unused here)."""
    assert pattern.startswith("/"), pattern
    assert pattern.endswith("/"), pattern
    return re.compile(pattern[1:-1])


@dataclass(frozen=True)
class Dependency:
    start: int
    end: int
    datasource: str
    dep_name: str
    current_value: str
    registry_url: str | None


def dependencies(relative: str) -> Iterator[Dependency]:
    """What Renovate's custom managers extract from a file, emulated with Python's `re`."""
    text = (ROOT / relative).read_text()
    for manager in config()["customManagers"]:
        if not any(file_pattern(p).search(relative) for p in manager["managerFilePatterns"]):
            continue
        for pattern in manager["matchStrings"]:
            for match in python_regex(pattern).finditer(text):
                groups = match.groupdict()
                yield Dependency(
                    start=match.start(),
                    end=match.end(),
                    datasource=groups.get("datasource") or manager.get("datasourceTemplate", ""),
                    dep_name=groups.get("depName") or manager.get("depNameTemplate", ""),
                    current_value=groups["currentValue"],
                    registry_url=groups.get("registryUrl"),
                )


def pin_constants() -> dict[str, tuple[int, int, str]]:
    """Every `NAME: Final = "value"` of config/pins.py with its character span and value."""
    text = PINS.read_text()
    offsets = [0]
    for line in text.splitlines(keepends=True):
        offsets.append(offsets[-1] + len(line))
    constants: dict[str, tuple[int, int, str]] = {}
    for node in ast.parse(text).body:
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            assert isinstance(node.value, ast.Constant)
            start = offsets[node.lineno - 1] + node.col_offset
            end = offsets[(node.end_lineno or node.lineno) - 1] + (node.end_col_offset or 0)
            constants[node.target.id] = (start, end, str(node.value.value))
    return constants


# --- structure -------------------------------------------------------------------------------


def test_renovate_config_is_structurally_valid() -> None:
    document = config()
    assert document["$schema"] == "https://docs.renovatebot.com/renovate-schema.json"
    assert all(isinstance(preset, str) for preset in document["extends"])
    assert "helpers:pinGitHubActionDigests" in document["extends"]
    assert document["lockFileMaintenance"]["enabled"] is True
    for manager in document["customManagers"]:
        assert manager["customType"] == "regex"
        assert manager["description"]
        assert manager["managerFilePatterns"]
        for pattern in manager["matchStrings"]:
            groups = set(python_regex(pattern).groupindex)
            assert "currentValue" in groups, pattern
            assert "depName" in groups or "depNameTemplate" in manager, pattern
            assert "datasource" in groups or "datasourceTemplate" in manager, pattern
    for rule in document["packageRules"]:
        assert rule["description"]
        assert {k for k in rule if k.startswith("match")}, rule


def test_every_constant_of_pins_py_is_covered_by_a_manager() -> None:
    found = list(dependencies("config/pins.py"))
    constants = pin_constants()
    assert constants, "config/pins.py defines no pins?"
    uncovered = [
        name
        for name, (start, end, _) in constants.items()
        if not any(d.start <= start and end <= d.end for d in found)
    ]
    assert uncovered == [], f"no Renovate manager matches {uncovered}"


def test_every_extracted_pin_is_complete_and_equals_the_constant() -> None:
    values = {value for _, _, value in pin_constants().values()}
    found = list(dependencies("config/pins.py"))
    for dependency in found:
        assert dependency.datasource in DATASOURCES, dependency
        assert dependency.dep_name, dependency
        # What Renovate reads as the current version is exactly what the program uses.
        assert dependency.current_value in values or any(
            value.endswith(":" + dependency.current_value) for value in values
        ), dependency
        if dependency.datasource == "helm":
            assert dependency.registry_url in values, dependency


def test_the_talos_version_is_looked_up_as_a_tag_of_the_installer_image() -> None:
    talos = [d for d in dependencies("config/pins.py") if d.current_value == pins.TALOS_VERSION]
    assert [(d.datasource, d.dep_name) for d in talos] == [("docker", pins.TALOS_INSTALLER_IMAGE)]


def test_images_split_into_name_and_tag() -> None:
    images = {
        d.dep_name: d.current_value
        for d in dependencies("config/pins.py")
        if d.datasource == "docker" and d.dep_name != pins.TALOS_INSTALLER_IMAGE
    }
    headscale_name, _, headscale_tag = pins.HEADSCALE_IMAGE.rpartition(":")
    assert images[headscale_name] == headscale_tag


def test_a_new_unannotated_pin_would_be_reported(tmp_path: Path) -> None:
    # Guards the coverage test: a constant without its renovate comment matches no manager.
    text = PINS.read_text() + '\nNEW_CHART_VERSION: Final = "1.0.0"\n'
    covered = [
        m
        for manager in config()["customManagers"]
        if any(file_pattern(p).search("config/pins.py") for p in manager["managerFilePatterns"])
        for pattern in manager["matchStrings"]
        for m in python_regex(pattern).finditer(text)
        if "NEW_CHART_VERSION" in m.group(0)
    ]
    assert covered == []


@pytest.mark.parametrize(
    "relative",
    [
        ".github/workflows/preview.yml",
        ".github/workflows/deploy.yml",
        ".github/workflows/drift.yml",
    ],
)
def test_the_pulumi_cli_version_in_workflows_is_tracked(relative: str) -> None:
    versions = re.findall(r'pulumi-version: "([^"]+)"', (ROOT / relative).read_text())
    assert versions, relative
    tracked = {(d.dep_name, d.current_value) for d in dependencies(relative)}
    for version in versions:
        assert ("pulumi/pulumi", version) in tracked


@pytest.mark.parametrize("relative", ["scripts/_lib.sh"])
def test_the_uv_version_the_scripts_install_is_tracked(relative: str) -> None:
    versions = re.findall(r'"uv==([^"]+)"', (ROOT / relative).read_text())
    assert versions, relative
    tracked = {(d.datasource, d.dep_name, d.current_value) for d in dependencies(relative)}
    for version in versions:
        assert ("pypi", "uv", version) in tracked


def test_talos_and_kubernetes_and_headscale_and_headplane_are_grouped() -> None:
    rules = config()["packageRules"]
    groups = {rule.get("groupName"): set(rule.get("matchDepNames", [])) for rule in rules}
    talos_image = pins.TALOS_INSTALLER_IMAGE
    assert {talos_image, "ghcr.io/siderolabs/kubelet"} <= groups["Talos and Kubernetes"]
    headscale = pins.HEADSCALE_IMAGE.rpartition(":")[0]
    headplane = pins.HEADPLANE_IMAGE.rpartition(":")[0]
    assert {headscale, headplane} <= groups["Headscale and Headplane"]


# --- the checkov tool lock, and the config against Renovate's own schema ---------------------

_CHECK_JSONSCHEMA = importlib.util.find_spec("check_jsonschema")
assert _CHECK_JSONSCHEMA is not None
assert _CHECK_JSONSCHEMA.origin is not None
RENOVATE_SCHEMA = (
    Path(_CHECK_JSONSCHEMA.origin).parent / "builtin_schemas" / "vendor" / "renovate.json"
)


def test_the_checkov_lock_is_one_weekly_pull_request_re_resolved_by_pip_compile() -> None:
    document = config()
    lock = "tools/checkov/requirements.txt"
    header = (ROOT / lock).read_text().splitlines()[:2]
    # The pip-compile manager reads the command from this header (it supports uv's).
    assert header[0] == "# This file was autogenerated by uv via the following command:"
    assert "uv pip compile" in header[1]
    assert any(file_pattern(p).search(lock) for p in document["pip-compile"]["managerFilePatterns"])
    rules = document["packageRules"]
    (group,) = [r for r in rules if r.get("groupName") == "checkov tool lock"]
    assert group["matchManagers"] == ["pip-compile"]
    assert lock in group["matchFileNames"]
    assert group["schedule"] == document["lockFileMaintenance"]["schedule"]
    (generic,) = [r for r in rules if r.get("matchManagers") == ["pip_requirements"]]
    assert generic["matchFileNames"] == [lock]
    assert generic["enabled"] is False


def _known_keys(schema: dict[str, Any], node: dict[str, Any]) -> set[str]:
    """Property names a schema node allows, through `$ref`s into `definitions` and `allOf`."""
    if "$ref" in node and node["$ref"].startswith("#/definitions/"):
        node = schema["definitions"][node["$ref"].removeprefix("#/definitions/")]
    keys = set(node.get("properties", {}))
    for part in node.get("allOf", []):
        keys |= _known_keys(schema, part)
    return keys


def test_every_key_is_one_the_renovate_version_of_the_schema_knows() -> None:
    """The vendored schema (check-jsonschema's `vendor.renovate`, generated by Renovate itself;
    its `x-renovate-version` says which) accepts unknown keys, so a misspelt option would pass a
    plain schema check and be ignored by Renovate: every key is checked against it here."""
    schema = json.loads(RENOVATE_SCHEMA.read_text())
    assert int(schema["x-renovate-version"].split(".")[0]) >= 41  # managerFilePatterns: 41+
    document = config()
    top = set(schema["properties"])
    assert set(document) - top == {"$schema"}  # the editor hint, which Renovate ignores
    rule_keys = _known_keys(schema, schema["definitions"]["packageRules"]["items"])
    for rule in document["packageRules"]:
        assert set(rule) - rule_keys == set(), rule["description"]
    manager_keys = _known_keys(schema, schema["definitions"]["customManagers"]["items"])
    for manager in document["customManagers"]:
        assert set(manager) - manager_keys == set(), manager["description"]
    assert set(document["pip-compile"]) <= _known_keys(schema, schema["properties"]["pip-compile"])


def test_the_config_validates_against_renovates_schema() -> None:
    result = subprocess.run(
        [
            str(Path(sys.executable).parent / "check-jsonschema"),
            "--builtin-schema",
            "vendor.renovate",
            str(RENOVATE),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_key_check_catches_a_misspelt_option() -> None:
    # Guards the test above: a typo in a package rule is reported.
    schema = json.loads(RENOVATE_SCHEMA.read_text())
    rule_keys = _known_keys(schema, schema["definitions"]["packageRules"]["items"])
    assert "groupName" in rule_keys
    assert "groupNam" not in rule_keys

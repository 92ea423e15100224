"""The stack file's JSON Schema: current, and in agreement with the config model."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from homelab import engine, schema
from tests.config.corpus import valid_fixture_paths
from tests.harness import FIXTURE_STACKS

COMMITTED_STACKS = sorted(engine.PROJECT_ROOT.glob("Pulumi.*.yaml"))


def validator() -> jsonschema.Draft202012Validator:
    document = schema.stack_schema()
    jsonschema.Draft202012Validator.check_schema(document)
    return jsonschema.Draft202012Validator(
        document, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
    )


def errors(document: Any) -> list[str]:
    return [e.message for e in validator().iter_errors(document)]


def test_the_committed_schema_is_current() -> None:
    committed = schema.SCHEMA_FILE.read_text() if schema.SCHEMA_FILE.exists() else ""
    assert committed == schema.schema_text(), (
        f"{schema.SCHEMA_FILE} is out of date; regenerate it with `{schema.WRITE_COMMAND}`"
    )


@pytest.mark.stack_files
@pytest.mark.parametrize("path", COMMITTED_STACKS, ids=lambda p: p.name)
def test_the_projects_stack_files_match_the_schema_and_point_at_it(path: Path) -> None:
    assert errors(yaml.safe_load(path.read_text())) == []
    first = path.read_text().splitlines()[0]
    assert first == "# yaml-language-server: $schema=schema/stack.schema.json"


@pytest.mark.parametrize(
    "path",
    [*valid_fixture_paths(), *sorted(FIXTURE_STACKS.glob("*.yaml"))],
    ids=lambda p: p.name,
)
def test_every_valid_fixture_matches_the_schema(path: Path) -> None:
    assert errors(yaml.safe_load(path.read_text())) == []


def _homelab() -> dict[str, Any]:
    document = yaml.safe_load((FIXTURE_STACKS / "Pulumi.homelab.yaml").read_text())
    assert isinstance(document, dict)
    return document


def test_an_unknown_homelab_key_is_flagged_but_other_namespaces_are_not() -> None:
    document = _homelab()
    document["config"]["homelab:clustr"] = {}
    document["config"]["kubernetes:enableServerSideApply"] = "true"
    assert errors(document) == [
        "'homelab:clustr' does not match any of the regexes: '^(?!homelab:)[^:]+:.+$'"
    ]


def test_a_nested_typo_and_a_bad_address_are_flagged() -> None:
    document = _homelab()
    document["config"]["homelab:network"]["traefikIP"] = "192.168.0.220"
    document["config"]["homelab:cluster"]["nodes"][0]["ip"] = "192.168.0.300"
    found = errors(document)
    assert any("'traefikIP' was unexpected" in e for e in found), found
    assert any("'192.168.0.300' is not a 'ipv4'" in e for e in found), found


def test_a_secret_must_be_an_encrypted_value() -> None:
    document = _homelab()
    document["config"]["homelab:dnsApiToken"] = "plaintext-token"
    assert errors(document) == ["'plaintext-token' is not of type 'object'"]
    document["config"]["homelab:dnsApiToken"] = {"secure": "v1:abc"}
    assert errors(document) == []

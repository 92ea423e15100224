"""The loader: one line per problem, secrets never echoed, and the stack's config read as the CLI
passes it (strings, objects as JSON, secrets flagged)."""

from __future__ import annotations

from typing import Any

import pulumi
import pytest

from config.loader import ConfigError, read_raw_config, validate_config
from config.rules import Problem
from homelab import engine
from tests.config.corpus import mutate, render_raw
from tests.harness import fixture_stack_config, stack_raw_config


def _problems(raw: dict[str, Any], plaintext: frozenset[str] = frozenset()) -> list[Problem]:
    with pytest.raises(ConfigError) as failure:
        validate_config(raw, plaintext_keys=plaintext)
    return failure.value.problems


def test_a_missing_required_secret_is_one_line_with_the_command_that_sets_it() -> None:
    # Pydantic also reports the field as missing; that second line would say less.
    problems = _problems(mutate(stack_raw_config(), {}, ("dnsApiToken",)))
    assert [p.key for p in problems] == ["homelab:dnsApiToken"]
    assert "`./scripts/pulumi config set --secret homelab:dnsApiToken" in problems[0].expected


def test_field_errors_and_top_level_problems_are_reported_together() -> None:
    raw = mutate(stack_raw_config(), {"clustr": {}, "tls.acmeEmail": "nope"}, ("dnsApiToken",))
    keys = [p.key for p in _problems(raw, frozenset())]
    assert keys == ["homelab:clustr", "homelab:dnsApiToken", "homelab:tls.acmeEmail"]


def test_the_error_message_has_a_counted_heading_and_one_indented_line_per_problem() -> None:
    raw = mutate(
        stack_raw_config(), {"network.traefikIp": "192.168.0.9", "cluster.vip": "10.0.0.1"}
    )
    with pytest.raises(ConfigError) as failure:
        validate_config(raw)
    lines = str(failure.value).splitlines()
    assert lines[0] == "The stack config has 2 problems:"
    assert len(lines) == 3
    assert all(line.startswith("  homelab:") for line in lines[1:])


def test_the_same_problem_found_twice_is_reported_once() -> None:
    problem = Problem("homelab:x", "'1'", "must be 2")
    assert ConfigError([problem, problem]).problems == [problem]
    assert str(ConfigError([problem])).startswith("The stack config has 1 problem:")


def test_a_secret_in_plaintext_is_refused_without_showing_it() -> None:
    raw = stack_raw_config()
    problems = _problems(raw, frozenset({"dnsApiToken"}))
    assert [p.value for p in problems] == ["(stored in plaintext)"]
    assert raw["dnsApiToken"] not in ConfigError(problems).render()


def test_a_wrong_type_for_a_secret_does_not_show_the_value() -> None:
    problems = _problems(mutate(stack_raw_config(), {"headplaneCookieSecret": 12345678}))
    assert [(p.key, p.value) for p in problems] == [("homelab:headplaneCookieSecret", "(secret)")]


def test_long_values_are_shortened_in_the_line() -> None:
    raw = mutate(stack_raw_config(), {"cluster.name": "x" * 200})
    (problem,) = _problems(raw)
    assert len(problem.value) <= 80
    assert problem.value.endswith("...")


def test_did_you_mean_works_inside_the_acl_policy() -> None:
    raw = mutate(stack_raw_config(), {"remoteAccess.policy": {"tagowners": {}}})
    (problem,) = _problems(raw)
    assert problem.key == "homelab:remoteAccess.policy.tagowners"
    assert "did you mean 'tagOwners'?" in problem.expected


# --- the running stack's config, as the CLI passes it ----------------------------------------


def test_read_raw_config_parses_objects_keeps_scalars_and_finds_plaintext_keys() -> None:
    raw = stack_raw_config()
    raw["domain"] = "123"  # a scalar key stays a string even when it looks like JSON
    config, secret_keys = fixture_stack_config("homelab")
    config.update({f"homelab:{k}": v for k, v in raw.items()})
    config["other:key"] = "ignored"  # another namespace is not ours
    pulumi.runtime.set_all_config(
        {k: v if isinstance(v, str) else engine.canonical_json(v) for k, v in config.items()},
        secret_keys,
    )
    try:
        parsed, plaintext = read_raw_config()
    finally:
        pulumi.runtime.set_all_config({}, [])
    assert parsed["cluster"] == raw["cluster"]
    assert parsed["domain"] == "123"
    assert "key" not in parsed
    assert "dnsApiToken" not in plaintext
    assert "cluster" in plaintext


def test_a_bad_config_stops_the_program_with_a_run_error_and_no_traceback() -> None:
    raw = mutate(stack_raw_config(), {"network.traefikIp": "192.168.0.250"})
    with pytest.raises(engine.RenderError) as failure:
        render_raw(raw)
    assert isinstance(failure.value.cause, pulumi.RunError)
    assert "Traceback" not in str(failure.value.cause)
    assert failure.value.cause.__suppress_context__
    assert failure.value.partial.resources == []

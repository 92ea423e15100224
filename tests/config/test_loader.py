"""The loader: one line per problem, secrets never echoed, and the stack's config read as the CLI
passes it (strings, objects as JSON, secrets flagged)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pulumi
import pytest
from pydantic import BaseModel

from config.loader import ConfigError, partial_config, read_raw_config, validate_config
from config.model import HomelabConfig
from config.rules import InputUnavailableError, Problem, Unavailable, check_rules
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
        parsed, plaintext, foreign = read_raw_config()
    finally:
        pulumi.runtime.set_all_config({}, [])
    assert parsed["cluster"] == raw["cluster"]
    assert parsed["domain"] == "123"
    assert "key" not in parsed
    assert foreign == {"other:key"}
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


# --- every problem in one run ----------------------------------------------------------------


def test_rules_run_over_the_sections_that_validated_beside_the_field_problems() -> None:
    raw = mutate(
        stack_raw_config(),
        {"cluster.nodes.0.ip": "talos-cp-1", "network.traefikIp": "192.168.0.250"},
    )
    problems = _problems(raw)
    assert [p.key for p in problems] == [
        "homelab:cluster.nodes[0].ip",
        "homelab:network.traefikIp",
    ]
    assert "inside a MetalLB pool" in problems[1].expected


def test_a_rule_that_reads_a_broken_value_is_skipped_and_the_section_s_others_still_run() -> None:
    # `derp` is broken; the STUN rule reads it and is skipped, not guessed at. The magic-DNS rule
    # reads other fields of the same section, so its line still comes in the same run.
    raw = mutate(
        stack_raw_config(),
        {
            "remoteAccess.derp": [3478],
            "remoteAccess.magicDnsBaseDomain": "sarma.love",
            "network.traefikIp": "192.168.0.250",
        },
    )
    assert [p.key for p in _problems(raw)] == [
        "homelab:network.traefikIp",
        "homelab:remoteAccess.derp",
        "homelab:remoteAccess.magicDnsBaseDomain",
    ]


def test_one_policy_with_three_mistakes_reports_all_three_in_one_run() -> None:
    # A field error in one rule of the policy (an unknown action) must not hide the policy's
    # cross-field checks over its other parts: a group no one defined, a tag no one owns.
    raw = mutate(
        stack_raw_config(),
        {
            "remoteAccess.policy": {
                "acls": [
                    {"action": "allow", "src": ["alice@"], "dst": ["192.168.0.11:443"]},
                    {"action": "accept", "src": ["group:family"], "dst": ["192.168.0.12:80"]},
                    {"action": "accept", "src": ["tag:ghost"], "dst": ["192.168.0.13:22"]},
                ]
            }
        },
    )
    assert [p.key for p in _problems(raw)] == [
        "homelab:remoteAccess.policy.acls[0].action",
        "homelab:remoteAccess.policy.acls[1].src[0]",
        "homelab:remoteAccess.policy.acls[2].src[0]",
    ]


def test_a_node_with_a_bad_address_hides_none_of_the_cluster_s_other_rules() -> None:
    raw = mutate(
        stack_raw_config(),
        {"cluster.nodes.0.ip": "192.168.0.300", "cluster.nodes.2.hostname": "talos-cp-2"},
    )
    assert sorted(p.key for p in _problems(raw)) == [
        "homelab:cluster.nodes[0].ip",
        "homelab:cluster.nodes[1].hostname",
        "homelab:cluster.nodes[2].hostname",
    ]


def test_a_stand_in_section_refuses_every_use_so_rules_cannot_misread_it() -> None:
    stand_in = Unavailable("network")
    for use in (
        lambda: stand_in.gateway,
        lambda: str(stand_in),
        lambda: f"{stand_in}",
        lambda: f"{stand_in!r}",
        lambda: stand_in == 1,
        lambda: hash(stand_in),
        lambda: bool(stand_in),
        lambda: list(stand_in),
        lambda: 1 in stand_in,
    ):
        with pytest.raises(InputUnavailableError):
            use()


def test_a_partial_config_stands_in_for_exactly_the_values_that_failed() -> None:
    raw = mutate(stack_raw_config(), {"network.traefikIp": "nope"})
    partial = partial_config(raw)
    assert partial.cluster.name == "homelab"
    assert isinstance(partial.network.traefik_ip, Unavailable)
    assert str(partial.network.gateway) == "192.168.0.1"
    # Only the rules that read Traefik's IP are skipped; nothing else is wrong.
    assert [p.key for p in check_rules(partial)] == []
    # A top-level field named as unavailable (an unset secret) stands in whole.
    assert isinstance(partial_config(raw, frozenset({"network"})).network, Unavailable)


# --- type errors and 'did you mean' in the user's words --------------------------------------


def _nested_models(model: type[BaseModel]) -> Iterator[type[BaseModel]]:
    for field in model.model_fields.values():
        for found in _models_in(field.annotation):
            yield found
            yield from _nested_models(found)


def _models_in(annotation: Any) -> Iterator[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        yield annotation
    for arg in getattr(annotation, "__args__", ()):
        yield from _models_in(arg)


MODELS: list[type[BaseModel]] = [HomelabConfig, *_nested_models(HomelabConfig)]
MODEL_CLASS_NAMES = sorted({model.__name__ for model in MODELS})


@pytest.mark.parametrize(
    ("path", "value", "shape"),
    [
        ("remoteAccess.derp", [1], "an object with keys enabled, stunPort, stunIp"),
        ("cluster.nodes", {"hostname": "a"}, "a list of node objects (each with keys hostname, ip"),
        ("network.addressPools", "lan", "a list of address pool objects"),
        ("remoteAccess.nameservers", "1.1.1.1", "a list of IPv4 addresses"),
        ("lifecycle", "homelab", "an object with keys environment, protect"),
        ("remoteAccess.derp.stunPort", "udp", "a whole number"),
        ("cluster.waitForHealth", "sometimes", "true or false"),
    ],
)
def test_a_type_error_says_the_expected_shape_and_names_no_python_class(
    path: str, value: Any, shape: str
) -> None:
    (problem,) = _problems(mutate(stack_raw_config(), {path: value}))
    assert f"must be {shape}" in problem.expected
    for name in MODEL_CLASS_NAMES:
        assert not re.search(rf"\b{name}\b", problem.line()), (name, problem.line())
    assert "instance of" not in problem.line()
    assert "dictionary" not in problem.line()


def test_did_you_mean_never_offers_a_key_that_is_already_set() -> None:
    raw = mutate(stack_raw_config(), {"network.traefikIP": "192.168.0.221"})
    (problem,) = _problems(raw)
    assert "did you mean" not in problem.expected
    # Once the real key is gone, the misspelling is the one line (not also '(not set)').
    (problem,) = _problems(mutate(raw, {}, ("network.traefikIp",)))
    assert problem.key == "homelab:network.traefikIP"
    assert "did you mean 'traefikIp'?" in problem.expected


def test_did_you_mean_never_offers_a_key_of_another_kind() -> None:
    # 'headplanes' is close to 'headplane', an object; a string cannot have meant it.
    (problem,) = _problems(mutate(stack_raw_config(), {"remoteAccess.headplanes": "ui"}))
    assert "did you mean" not in problem.expected
    # An object under the same name is offered it.
    assert "headplane" not in stack_raw_config()["remoteAccess"]
    (problem,) = _problems(mutate(stack_raw_config(), {"remoteAccess.headplanes": {"host": "ui"}}))
    assert "did you mean 'headplane'?" in problem.expected


def test_a_top_level_typo_is_offered_the_unset_key_of_its_kind() -> None:
    raw = mutate(stack_raw_config(), {"storge": {"storageClass": "fast"}})
    (problem,) = _problems(raw)
    assert "did you mean 'storage'?" in problem.expected

"""The invalid-config corpus: each mutation gives exactly its problem lines, never a traceback.

Fixtures live in tests/fixtures/configs/ (format in tests/config/corpus.py). Every invalid fixture is
checked twice: through `validate_config` (the lines themselves) and through the recording engine
(what `pulumi up` would print, and that nothing was registered before the error).
"""

from __future__ import annotations

import re
from pathlib import Path

import pulumi
import pytest
from pydantic import ValidationError

from config.credentials import HIDDEN_PREFIX, is_hidden
from config.loader import ConfigError, partial_config, top_level_keys, validate_config
from config.model import HomelabConfig
from config.rules import RULES
from homelab import engine
from tests.config.corpus import (
    PLACEHOLDER_VALUES,
    VALID_DIR,
    InvalidCase,
    invalid_cases,
    is_secret_key,
    key_of,
    match_expectations,
    problem_lines,
    render_raw,
    shown_forms,
    valid_fixture_paths,
    valid_raw_config,
)
from tests.harness import PROJECT_ROOT, stack_raw_config

CASES = invalid_cases()
RULE_NAMES = {rule.__name__: rule for rule in RULES}


def _config_error(case: InvalidCase) -> ConfigError:
    with pytest.raises(ConfigError) as failure:
        validate_config(
            case.raw(), plaintext_keys=case.plaintext, stack=case.stack, foreign_keys=case.other
        )
    return failure.value


def test_the_corpus_is_large_enough_and_every_fixture_names_its_expectations() -> None:
    assert len(CASES) >= 130
    assert all(case.expect and case.description for case in CASES)


def test_every_rule_is_exercised_by_some_fixture() -> None:
    covered = {rule for case in CASES for rule in case.rules}
    assert covered <= set(RULE_NAMES), f"unknown rule names: {covered - set(RULE_NAMES)}"
    assert set(RULE_NAMES) - covered == set(), "rules without an invalid fixture"


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_invalid_fixture_gives_exactly_its_problem_lines(case: InvalidCase) -> None:
    error = _config_error(case)
    pairs = match_expectations(error.problems, case.expect)
    message = error.render()
    for expectation, problem in pairs.items():
        if is_secret_key(problem.key):
            # A secret's value never appears, whatever is wrong with it.
            secret = case.raw().get(problem.key.partition(":")[2])
            if isinstance(secret, str) and secret:
                assert secret not in message
            continue
        if is_hidden(problem.value) or HIDDEN_PREFIX in problem.expected:
            # A credential pasted into a plain key is reported as found, never shown.
            for value in case.set.values():
                if isinstance(value, str):
                    assert value not in message
            continue
        if problem.value in PLACEHOLDER_VALUES:
            continue
        # The bad value is shown: as the fixture says, or as the mutation set it.
        set_value = next((v for p, v in case.set.items() if key_of(p) == problem.key), None)
        assert expectation.value is not None or set_value is not None, (
            f"{case.name}: say which value {problem.key} shows (expect[].value)"
        )
        if expectation.value is None and not isinstance(set_value, (dict, list)):
            assert any(form in problem.value for form in shown_forms(set_value)), problem.line()


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_invalid_fixture_fails_the_render_with_a_run_error_and_no_resources(
    case: InvalidCase,
) -> None:
    with pytest.raises(engine.RenderError) as failure:
        render_raw(
            case.raw(), plaintext=case.plaintext, stack=case.stack or "test", other=case.other
        )
    cause = failure.value.cause
    assert isinstance(cause, pulumi.RunError)
    assert "Traceback" not in str(cause)
    assert failure.value.partial.resources == []
    # The CLI path (config as strings, secrets flagged by the engine) reports the same lines.
    assert problem_lines(str(cause)) == [p.line() for p in _config_error(case).problems]


@pytest.mark.parametrize("case", [c for c in CASES if c.rules], ids=lambda c: c.name)
def test_rule_fixture_is_reported_by_the_rules_it_names(case: InvalidCase) -> None:
    # Its lines come from the rule functions it names, run over the sections that validated.
    known = top_level_keys()
    raw = {k: v for k, v in case.raw().items() if k in known}
    try:
        model = HomelabConfig.model_validate(raw)
    except ValidationError:
        model = partial_config(raw)
    error_lines = {p.line() for p in _config_error(case).problems}
    for name in case.rules:
        found = list(RULE_NAMES[name](model))
        assert found, f"{name} finds nothing wrong with {case.name}"
        # As any line is shown: a credential-looking value hidden (config/loader.py).
        lines = {p.line() for p in ConfigError(found).problems}
        assert lines <= error_lines


# The lists a mistyped item can land in, and the rules that need every item of a list to say
# anything (an address inside *some* pool, the count of control planes, the apps' host aliases),
# which may rightly fall silent while one item failed.
LISTS = (
    "cluster.nodes",
    "network.addressPools",
    "network.nameservers",
    "remoteAccess.nameservers",
    "remoteAccess.router.routes",
    "remoteAccess.policy.acls",
    "apps",
)
NEEDS_EVERY_ITEM: dict[str, frozenset[str]] = {
    "traefik_ip_in_pool": frozenset({"network.addressPools"}),
    "stun_ip_in_pool": frozenset({"network.addressPools"}),
    "odd_control_planes": frozenset({"cluster.nodes"}),
    "workloads_have_somewhere_to_run": frozenset({"cluster.nodes"}),
    "control_plane_scheduling_is_explicit": frozenset({"cluster.nodes"}),
    "exposed_host_names_fit": frozenset({"apps"}),
    # An undefined host alias is undefined only when every app (each a host alias) is known;
    # the policy's checks wait for a policy and apps that all validated.
    "policy_references_exist": frozenset({"apps"}),
    "policy_tests_hold": frozenset(LISTS),
    "policy_builtin_access": frozenset(LISTS),
}


def _rule_lines(case: InvalidCase, name: str) -> set[str]:
    known = top_level_keys()
    raw = {k: v for k, v in case.raw().items() if k in known}
    try:
        model = HomelabConfig.model_validate(raw)
    except ValidationError:
        model = partial_config(raw)
    return {p.line() for p in ConfigError(list(RULE_NAMES[name](model))).problems}


@pytest.mark.parametrize("case", [c for c in CASES if c.rules], ids=lambda c: c.name)
def test_a_failed_item_in_any_list_hides_no_rule_line_of_the_other_items(
    case: InvalidCase,
) -> None:
    # Rules run per item over the items that validated: one more item the model refuses, at the
    # end of any list, leaves every line the fixture's rules gave (and adds its own).
    for path in LISTS:
        raw = case.raw()
        target: object = raw
        for part in path.split("."):
            target = target.get(part) if isinstance(target, dict) else None
        if not isinstance(target, list):
            continue
        target.append("%not an item%")
        try:
            validate_config(raw, plaintext_keys=case.plaintext, stack=case.stack)
        except ConfigError as error:
            after = {p.line() for p in error.problems}
        else:
            raise AssertionError(f"{case.name}: a broken item in {path} was accepted")
        for name in case.rules:
            if path in NEEDS_EVERY_ITEM.get(name, frozenset()):
                continue
            missing = _rule_lines(case, name) - after
            assert not missing, f"{case.name}: a broken item in {path} hides {sorted(missing)}"


# --- valid examples --------------------------------------------------------------------------

VALID = valid_fixture_paths()


def test_there_are_valid_examples_for_each_documented_shape() -> None:
    assert {p.stem for p in VALID} >= {
        "single-node",
        "ha-vip-workers",
        "lab-staging",
        "external-service-app",
        "derp-separate-stun-ip",
    }


@pytest.mark.parametrize("path", VALID, ids=lambda p: p.stem)
def test_valid_fixture_validates_and_renders(path: Path) -> None:
    raw = valid_raw_config(path)
    validate_config(raw)
    render = render_raw(raw)
    assert render.resources
    assert {"homelab:talos:Cluster", "homelab:remote-access:Headscale"} <= {
        r.type for r in render.resources
    }


def _example(name: str) -> HomelabConfig:
    return validate_config(valid_raw_config(VALID_DIR / f"{name}.yaml"))


def test_each_example_shows_what_its_name_says() -> None:
    # Guards the examples against edits that keep them valid but drop their point.
    single = _example("single-node")
    assert len(single.cluster.nodes) == 1
    assert single.cluster.schedule_on_control_planes
    assert single.cluster.endpoint == f"https://{single.cluster.nodes[0].ip}:6443"

    ha = _example("ha-vip-workers")
    assert (len(ha.cluster.control_planes), len(ha.cluster.workers)) == (3, 2)
    assert ha.cluster.endpoint == f"https://{ha.cluster.vip}:6443"

    lab = _example("lab-staging")
    assert lab.acme_environment == "staging"
    assert lab.lifecycle.reset_on_destroy
    assert not lab.lifecycle.protect_stateful

    external = _example("external-service-app")
    assert any(a.service is not None and a.workload is None for a in external.apps)

    derp = _example("derp-separate-stun-ip")
    assert derp.stun_ip != derp.network.traefik_ip

    policy = _example("policy-as-code")
    assert policy.remote_access.policy.acls

    stun = _example("stun-udp-443-on-traefiks-ip")
    assert stun.stun_ip == stun.network.traefik_ip
    assert stun.remote_access.derp.stun_port == 443


def test_the_committed_homelab_stack_is_valid() -> None:
    validate_config(stack_raw_config())


# A suggestion in a problem line: "did you mean 'x'?", "such as 'x'", "e.g. 'x'", "use 'x'".
_SUGGESTION = re.compile(r"(?:did you mean|such as|e\.g\.|use) '([^']+)'")


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_no_hint_suggests_the_value_it_rejects(case: InvalidCase) -> None:
    for problem in _config_error(case).problems:
        rejected = problem.value.strip("'\"")
        assert rejected not in _SUGGESTION.findall(problem.expected), problem.line()


def test_every_class_of_issue_12_has_fixtures() -> None:
    # Each class of mistake the config must refuse, and the fixtures that show it.
    names = {case.name for case in CASES}
    classes = {
        "built-in names and hosts": "rule-app-named-headscale",
        "namespaces the stack does not own": "format-app-namespace-kube-system",
        "stack identity vs environment": "identity-homelab-stack-as-lab",
        "Talos/Kubernetes support": "rule-kubernetes-too-new-for-talos",
        "Talos features of the patches": "rule-talos-too-old-for-the-patches",
        "IP as a domain": "format-domain-is-an-ip",
        "blank secret": "secret-dns-token-blank",
        "partition as install disk": "format-install-disk-nvme-partition",
        "field and rule problems together": "multi-field-and-rule",
        "type errors in the user's words": "type-number-for-node-list",
        "did you mean only unset keys of the same kind": "unknown-key-beside-the-one-it-resembles",
        "hint is not the rejected value": "rule-magic-dns-hint-is-not-the-rejected-value",
        "LAN too small": "rule-lan-too-small",
    }
    assert set(classes.values()) <= names, set(classes.values()) - names


def test_every_class_of_issue_25_has_fixtures() -> None:
    # The mistakes that used to render silently, each refused by its general rule.
    names = {case.name for case in CASES}
    classes = {
        "LAN in Talos' pod network": "rule-lan-overlaps-talos-pod-network",
        "LAN in Talos' service network": "rule-lan-overlaps-talos-service-network",
        "LAN in the tailnet": "rule-lan-overlaps-the-tailnet",
        "node resolver handed out by the stack": "rule-node-nameserver-in-the-metallb-pool",
        "node resolver is the VIP": "rule-node-nameserver-is-the-vip",
        "node resolver in the service network": "rule-node-nameserver-is-cluster-dns",
        "VPN resolver is MagicDNS itself": "format-vpn-nameserver-is-magic-dns",
        "VPN resolver unreachable": "rule-vpn-nameserver-in-the-service-network",
        "ACME e-mail at an example domain": "format-acme-email-example-domain",
        "ACME e-mail with mailto:": "format-acme-email-mailto",
        "ACME e-mail with an empty label": "format-acme-email-empty-label",
        "ACME e-mail at a non-public TLD": "format-acme-email-non-public-tld",
        "domain only a LAN knows": "format-domain-dot-local",
        "domain under home.arpa": "format-domain-home-arpa",
        "domain under a non-public TLD": "format-domain-non-public-tld",
        "domain that is a public suffix": "format-domain-is-a-public-suffix",
        "Helm release name over 53": "rule-helm-release-name-too-long",
        "host name over 253": "rule-host-name-over-253-characters",
        "cron hour 24": "format-cron-hour-24",
        "cron day of week 7": "format-cron-day-of-week-7",
        "cron time zone": "format-cron-time-zone",
        "S3 endpoint port": "format-s3-endpoint-impossible-port",
        "S3 bucket like an IP": "format-s3-bucket-like-an-ip",
        "S3 bucket with two dots": "format-s3-bucket-adjacent-dots",
        "NFS server not an address": "format-nfs-server-not-an-address",
        "NFS server not a host name": "format-nfs-server-bad-host-name",
        "newline inside a secret": "secret-s3-key-with-a-newline-inside",
        "space inside a token": "secret-dns-token-with-a-space-inside",
        "app in the backups namespace": "format-app-namespace-backups",
        "near-miss config namespace": "namespace-near-miss-of-homelab",
        "project-name config namespace": "namespace-project-name-variant",
        "no advice to delete a secret": "namespace-backups-elsewhere-keeps-its-secret",
        "a section's field error hides none of its rules": "multi-policy-three-mistakes",
        "a node's field error hides none of the cluster's rules": "multi-node-field-and-cluster-rule",
        "credential in a plain key": "credential-in-a-plain-key",
        "credentials in a URL": "credential-in-the-s3-endpoint",
    }
    assert set(classes.values()) <= names, set(classes.values()) - names


def test_no_problem_line_shows_a_raw_regular_expression() -> None:
    for case in CASES:
        for problem in _config_error(case).problems:
            assert "should match pattern" not in problem.expected, problem.line()
            assert "^" not in problem.expected, problem.line()


def test_the_readme_shows_the_real_output_of_its_example_fixture() -> None:
    (case,) = [c for c in CASES if c.name == "multi-readme-example"]
    rendered = _config_error(case).render()
    readme = (PROJECT_ROOT / "README.md").read_text()
    assert f"```text\n{rendered}\n```" in readme

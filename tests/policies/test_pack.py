"""The CrossGuard pack: wiring, scope, and the whole homelab render passing it."""

from __future__ import annotations

import re
import runpy
import tomllib
from typing import Any

import pulumi_policy
import pytest
import yaml
from pulumi_policy.proxy import UNKNOWN_STRING_VALUE, UnknownValueError

from homelab import engine
from homelab.engine import ResourceRecord
from policies import pack, rules
from tests.harness import PROJECT_ROOT, homelab_render
from tests.policies.adapter import violations
from tests.synthetic import container, deployment, record

POLICY_DIR = PROJECT_ROOT / "policies"
REFERENCE_PROGRAM = PROJECT_ROOT / "tools" / "checkov" / "reference_workload.py"
POLICY = {p.name: p for p in pack.POLICIES}

provider = record("pulumi:providers:kubernetes", "cluster-kubernetes")


def k8s_record(type_token: str, inputs: dict[str, Any], **options: Any) -> ResourceRecord:
    options.setdefault("provider", provider)
    return record(type_token, "object", inputs=inputs, **options)


def test_every_policy_is_mandatory_and_uniquely_named() -> None:
    assert len(POLICY) == len(pack.POLICIES) == 7
    assert all(
        p.enforcement_level == pulumi_policy.EnforcementLevel.MANDATORY for p in pack.POLICIES
    )


def test_the_program_hands_every_policy_to_one_mandatory_pack(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    built: list[tuple[str, list[Any], Any]] = []

    def fake_pack(name: str, policies: list[Any], enforcement_level: Any = None) -> None:
        built.append((name, policies, enforcement_level))

    # The real PolicyPack starts the analyzer's gRPC server and never returns.
    monkeypatch.setattr(pulumi_policy, "PolicyPack", fake_pack)
    runpy.run_path(str(POLICY_DIR), run_name="__main__")
    ((name, policies, level),) = built
    assert re.fullmatch(r"[a-zA-Z0-9-_.]{1,100}", name)  # the SDK's pack-name rule
    assert [p.name for p in policies] == [p.name for p in pack.POLICIES]
    assert level == pulumi_policy.EnforcementLevel.MANDATORY


def test_pack_project_file_runs_python_with_pinned_requirements() -> None:
    project = yaml.safe_load((POLICY_DIR / "PulumiPolicy.yaml").read_text())
    assert project["runtime"]["name"] == "python"
    requirements = {
        line.split("==")[0]: line.split("==")[1]
        for line in (POLICY_DIR / "requirements.txt").read_text().splitlines()
        if line and not line.startswith("#")
    }
    pyproject = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())
    pins = dict(
        d.split("==")
        for d in [*pyproject["project"]["dependencies"], *pyproject["dependency-groups"]["dev"]]
        if "==" in d
    )
    assert requirements == {name: pins[name] for name in requirements}
    assert {"pulumi", "pulumi-policy", "pyyaml"} <= set(requirements)


BAD_WORKLOAD = deployment(
    containers=[
        container(
            image="nginx:latest",
            resources={},
            env=[{"name": "API_TOKEN", "value": "abc"}],
        )
    ]
)


@pytest.mark.parametrize(
    ("policy", "expected"),
    [
        ("images-pinned", "moving tag"),
        ("resource-limits", "no resources.limits.cpu / memory"),
        ("no-plaintext-secrets", "API_TOKEN holds a literal secret"),
    ],
)
def test_policies_report_a_bad_workload(policy: str, expected: str) -> None:
    bad = k8s_record("kubernetes:apps/v1:Deployment", BAD_WORKLOAD)
    good = k8s_record("kubernetes:apps/v1:Deployment", deployment())
    (message,) = violations(POLICY[policy], bad)
    assert expected in message
    assert violations(POLICY[policy], good) == []


def test_load_balancer_and_route_policies_report_through_the_sdk() -> None:
    service = k8s_record(
        "kubernetes:core/v1:Service", {"metadata": {"name": "s"}, "spec": {"type": "LoadBalancer"}}
    )
    route = k8s_record(
        "kubernetes:traefik.io/v1alpha1:IngressRoute",
        {"metadata": {"name": "r"}, "spec": {"routes": [{"match": "Host(`a.b`)"}]}},
    )
    assert len(violations(POLICY["load-balancer-explicit-ip"], service)) == 1
    assert len(violations(POLICY["private-routes-carry-allowlist"], route)) == 1


def test_chart_internals_are_out_of_scope_for_project_only_policies() -> None:
    chart = record("kubernetes:helm.sh/v4:Chart", "grafana", custom=False)
    child = k8s_record("kubernetes:apps/v1:Deployment", BAD_WORKLOAD, parent=chart)
    assert violations(POLICY["resource-limits"], child) == []
    assert violations(POLICY["no-plaintext-secrets"], child) == []
    # ... but a floating image is wrong wherever it comes from.
    assert len(violations(POLICY["images-pinned"], child)) == 1


def test_default_provider_is_reported() -> None:
    default = record("pulumi:providers:kubernetes", "default_4_34_2")
    on_default = k8s_record("kubernetes:core/v1:ConfigMap", {}, provider=default)
    on_own = k8s_record("kubernetes:core/v1:ConfigMap", {})
    (message,) = violations(POLICY["kubernetes-explicit-provider"], on_default)
    assert "default Kubernetes provider" in message
    assert violations(POLICY["kubernetes-explicit-provider"], on_own) == []


def test_a_value_unknown_during_preview_is_not_a_violation() -> None:
    # The SDK turns UnknownValueError into an advisory "can't run during preview" note and runs
    # the policy again at `up`, when the value is known.
    service = k8s_record(
        "kubernetes:core/v1:Service",
        {
            "metadata": {
                "name": "s",
                "annotations": {rules.METALLB_IPS_ANNOTATION: UNKNOWN_STRING_VALUE},
            },
            "spec": {"type": "LoadBalancer"},
        },
    )
    with pytest.raises(UnknownValueError):
        violations(POLICY["load-balancer-explicit-ip"], service)


def _all_violations(records: list[ResourceRecord]) -> list[str]:
    return [
        f"{r.type} {r.name}: {message}"
        for r in records
        for policy in pack.POLICIES
        for message in violations(policy, r)
    ]


def test_the_homelab_render_passes_every_policy() -> None:
    assert _all_violations(homelab_render().resources) == []


def test_the_hardened_reference_workload_passes_every_policy() -> None:
    render = engine.render("reference", config={}, secret_keys=[], program=REFERENCE_PROGRAM)
    assert {r.type for r in render.resources} >= {
        "kubernetes:apps/v1:Deployment",
        "kubernetes:core/v1:Service",
    }
    assert _all_violations(render.resources) == []

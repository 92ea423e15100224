"""Every pod of every chart (and of the provisioner) asks for modest CPU and memory.

Without requests the scheduler packs pods blindly and the kubelet evicts them first under memory
pressure, on nodes that also run etcd. The paths are the `resources` keys each chart documents in
its values.yaml (the reference copies under upstream/<chart>/chart; Grafana's in test_apps.py).
"""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from tests.contracts import chart_defaults
from tests.harness import helm_values, homelab_render

RELEASE = "kubernetes:helm.sh/v3:Release"
# chart -> the values paths of its pods' resources
RESOURCE_PATHS: dict[str, tuple[str, ...]] = {
    "cert-manager": (
        "resources",
        "webhook.resources",
        "cainjector.resources",
        "startupapicheck.resources",
    ),
    "grafana": ("resources", "initChownData.resources"),
    "metallb": ("controller.resources", "speaker.resources"),
    "reflector": ("resources",),
    "traefik": ("resources",),
}
MODEST = {"cpu": 0.25, "memory": 256 * 2**20}


def at(values: dict[str, Any], path: str) -> Any:
    for part in path.split("."):
        values = values[part]
    return values


def quantity(value: str) -> float:
    units = {"m": 1e-3, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30}
    for suffix, factor in units.items():
        if value.endswith(suffix):
            return float(value.removesuffix(suffix)) * factor
    return float(value)


def modest_requests(resources: dict[str, Any]) -> None:
    requests = resources["requests"]
    assert set(requests) == {"cpu", "memory"}
    for name, ceiling in MODEST.items():
        assert 0 < quantity(requests[name]) <= ceiling, (name, requests[name])


def test_every_chart_of_the_stack_is_covered() -> None:
    charts = {r.input("chart") for r in homelab_render().by_type(RELEASE)}
    assert charts == set(RESOURCE_PATHS)


@pytest.mark.parametrize("chart", sorted(RESOURCE_PATHS))
def test_every_pod_of_the_chart_requests_modest_resources(chart: str) -> None:
    (release,) = [r for r in homelab_render().by_type(RELEASE) if r.input("chart") == chart]
    values = helm_values(release)
    for path in RESOURCE_PATHS[chart]:
        modest_requests(at(values, path))
        if chart != "grafana":  # not among the reference charts: see test_apps.py
            assert at(chart_defaults(chart), path) == {}, f"{chart}: {path} is not a chart value"


def test_the_provisioner_and_its_helper_pods_request_modest_resources() -> None:
    render = homelab_render()
    deployment = render.one("kubernetes:apps/v1:Deployment", "storage-provisioner")
    (container,) = deployment.input("spec.template.spec.containers")
    modest_requests(container["resources"])
    config = render.one("kubernetes:core/v1:ConfigMap", "storage-config")
    helper = yaml.safe_load(config.input("data")["helperPod.yaml"])
    for container in helper["spec"]["containers"]:
        modest_requests(container["resources"])

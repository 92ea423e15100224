"""MetalLB: L2-only chart in a privileged namespace, pools and advertisement after the chart."""

from __future__ import annotations

import ipaddress
import json
from typing import Any

import pytest

from components.platform.metallb import load_balancer_annotations
from components.shared import kubectl
from config import pins
from config.loader import validate_config
from config.model import HomelabConfig
from homelab.engine import Render
from programs.build import parameters
from tests.contracts import (
    chart_defaults,
    component_records,
    depends_on,
    validate_helm_values,
    validate_objects,
)
from tests.harness import helm_values, homelab_render, render_stack, stack_raw_config, with_changes

METALLB = "homelab:platform:MetalLB"
RELEASE = "kubernetes:helm.sh/v3:Release"
NAMESPACE = "kubernetes:core/v1:Namespace"
POOL = "kubernetes:metallb.io/v1beta1:IPAddressPool"
L2 = "kubernetes:metallb.io/v1beta1:L2Advertisement"
COMMAND = "command:local:Command"
EXTRA_POOL = {"name": "extra", "addresses": ["192.168.0.240/29"]}


def homelab_config() -> HomelabConfig:
    return validate_config(stack_raw_config())


def two_pool_render() -> Render:
    raw = stack_raw_config()
    pools = [*raw["network"]["addressPools"], EXTRA_POOL]
    return render_stack(
        "homelab", overrides={"network": with_changes(raw["network"], {"addressPools": pools})}
    )


def metallb_values(render: Render) -> dict[str, Any]:
    return helm_values(render.one(RELEASE, "metallb"))


def test_every_metallb_object_meets_its_schema() -> None:
    # The namespace, one pool per configured pool, and the advertisement.
    expected = 2 + len(homelab_config().network.address_pools)
    assert validate_objects(component_records(homelab_render(), METALLB)) == expected


def test_namespace_admits_privileged_pods_in_every_psa_mode() -> None:
    # Talos enforces baseline; the speaker needs host networking (components.md 1.4 #3).
    (namespace,) = [r for r in component_records(homelab_render(), METALLB) if r.type == NAMESPACE]
    labels = namespace.input("metadata.labels")
    for mode in ("enforce", "audit", "warn"):
        assert labels[f"pod-security.kubernetes.io/{mode}"] == "privileged"
    release = homelab_render().one(RELEASE, "metallb")
    assert release.input("namespace") == namespace.input("metadata.name")
    assert depends_on(release, namespace)


def test_chart_is_the_pinned_l2_only_install_with_its_crds() -> None:
    release = homelab_render().one(RELEASE, "metallb")
    assert release.input("version") == pins.METALLB_CHART_VERSION
    assert release.input("repositoryOpts.repo") == pins.METALLB_CHART_REPO
    values = metallb_values(homelab_render())
    assert values["frrk8s"]["enabled"] is False
    assert values["speaker"]["frr"]["enabled"] is False
    assert values["crds"]["enabled"] is True
    validate_helm_values("metallb", values)


def test_control_plane_only_cluster_announces_from_control_planes() -> None:
    # The homelab has control planes only: Talos' exclusion label must be ignored there.
    assert not homelab_config().cluster.workers
    assert metallb_values(homelab_render())["speaker"]["ignoreExcludeLB"] is True
    raw = stack_raw_config()
    worker = {"hostname": "talos-w-1", "ip": "192.168.0.21", "role": "worker"}
    with_worker = render_stack(
        "homelab",
        overrides={
            "cluster": with_changes(
                raw["cluster"],
                {
                    "nodes": [*raw["cluster"]["nodes"], worker],
                    "allowSchedulingOnControlPlanes": False,
                },
            )
        },
    )
    assert metallb_values(with_worker)["speaker"]["ignoreExcludeLB"] is False


def test_one_ip_address_pool_per_configured_pool() -> None:
    render = two_pool_render()
    configured = {p["name"]: p["addresses"] for p in stack_raw_config()["network"]["addressPools"]}
    configured[EXTRA_POOL["name"]] = EXTRA_POOL["addresses"]
    pools = {r.input("metadata.name"): r.input("spec.addresses") for r in render.by_type(POOL)}
    assert pools == configured
    assert validate_objects(render.by_type(POOL)) == len(configured)


def test_l2_advertisement_announces_every_pool_without_waiting_for_them() -> None:
    """metallb/metallb@v0.16.1:internal/config/config.go setL2AdvertisementsToPools: an advertised
    pool name that does not exist (yet) is skipped, and the controller reconciles again when the
    pool appears; the L2 webhook validates against the pools that exist. So the advertisement
    can be created alongside the pools, not after them."""
    render = two_pool_render()
    (advertisement,) = render.by_type(L2)
    pool_names = {r.input("metadata.name") for r in render.by_type(POOL)}
    assert set(advertisement.input("spec.ipAddressPools")) == pool_names
    assert not any(depends_on(advertisement, pool) for pool in render.by_type(POOL))


# The chart's webhooks at v0.16.1 (metallb/metallb@v0.16.1:charts/metallb/templates/webhooks.yaml,
# also the kubebuilder markers in internal/k8s/webhooks/webhookv1beta1/*_webhook.go): every one
# is served by the same Service, fails closed with the chart default `crds.validationFailurePolicy`,
# and declares `sideEffects: None`, which is what lets a server-side dry run reach it.
WEBHOOK_SERVICE = "metallb-webhook-service"
WEBHOOKS = {
    "ipaddresspools": ("/validate-metallb-io-v1beta1-ipaddresspool", {"CREATE", "UPDATE"}),
    "l2advertisements": ("/validate-metallb-io-v1beta1-l2advertisement", {"CREATE", "UPDATE"}),
}


def gate_manifest(render: Render) -> dict[str, Any]:
    params = parameters(render.one(COMMAND, "metallb-webhook-ready").input("create"))
    manifest = json.loads(params["manifest"])
    assert isinstance(manifest, dict)
    return manifest


def test_the_webhook_fails_closed_so_a_gate_is_needed() -> None:
    """metallb/metallb@v0.16.1:charts/metallb/values.yaml `crds.validationFailurePolicy: Fail`
    (templated into every webhook's failurePolicy), and internal/k8s/k8s.go: `/readyz` is
    `healthz.Ping` while the webhook starts only once cert rotation closes `startListeners`. The
    Release's readiness therefore says nothing about the webhook."""
    defaults = chart_defaults("metallb")
    assert defaults["crds"]["validationFailurePolicy"] == "Fail"
    assert "validationFailurePolicy" not in metallb_values(homelab_render()).get("crds", {})


def test_pools_and_advertisement_wait_for_the_webhook_gate_after_the_release() -> None:
    render = homelab_render()
    release = render.one(RELEASE, "metallb")
    gate = render.one(COMMAND, "metallb-webhook-ready")
    assert depends_on(gate, release)
    custom = render.by_type(POOL) + render.by_type(L2)
    assert custom
    assert all(depends_on(record, gate) for record in custom)
    # A chart bump replaces the controller: the gate runs again before pools change with it.
    assert gate.input("triggers") == [pins.METALLB_CHART_VERSION]


def test_the_gate_dry_runs_exactly_the_first_pool_through_its_webhook() -> None:
    """The object the gate submits must be one the IPAddressPool webhook validates and admits:
    group metallb.io/v1beta1, resource ipaddresspools, in MetalLB's namespace (the webhook refuses
    any other, webhookv1beta1/ipaddresspool_webhook.go validateIPAddressPoolCreate), and equal to
    the pool about to be created, so a dry run cannot be refused for overlapping a probe pool."""
    render = homelab_render()
    manifest = gate_manifest(render)
    assert manifest["apiVersion"] == "metallb.io/v1beta1"
    assert manifest["kind"] == "IPAddressPool"
    assert "ipaddresspools" in WEBHOOKS
    (namespace,) = [r for r in component_records(render, METALLB) if r.type == NAMESPACE]
    assert manifest["metadata"]["namespace"] == namespace.input("metadata.name")
    pools = {r.input("metadata.name"): r for r in render.by_type(POOL)}
    pool = pools[min(pools)]
    assert manifest["metadata"]["name"] == pool.input("metadata.name")
    assert manifest["spec"] == pool.input("spec")
    validate_objects([pool])
    # One server behind one Service serves every MetalLB webhook: one that answers, all do.
    gate_params = parameters(render.one(COMMAND, "metallb-webhook-ready").input("create"))
    assert gate_params["webhook"] == f"{WEBHOOK_SERVICE}.{namespace.input('metadata.name')}"
    # The kubeconfig reaches the script as a secret environment variable, never in the script.
    gate = render.one(COMMAND, "metallb-webhook-ready")
    assert gate.is_secret(f"environment.{kubectl.KUBECONFIG_ENV}")
    assert "kubeconfig" not in json.dumps(manifest)


def test_speaker_and_controller_request_resources_and_the_speaker_is_critical() -> None:
    values = metallb_values(homelab_render())
    for workload in ("controller", "speaker"):
        assert set(values[workload]["resources"]["requests"]) == {"cpu", "memory"}
    assert values["speaker"]["priorityClassName"] == "system-cluster-critical"
    validate_helm_values("metallb", values)


def test_custom_resources_live_in_metallbs_namespace() -> None:
    render = homelab_render()
    (namespace,) = [r for r in component_records(render, METALLB) if r.type == NAMESPACE]
    for record in render.by_type(POOL) + render.by_type(L2):
        assert record.input("metadata.namespace") == namespace.input("metadata.name")


def test_annotations_request_the_ip_from_its_pool() -> None:
    network = homelab_config().network
    ip = network.traefik_ip
    annotations = load_balancer_annotations(network, ip)
    assert annotations["metallb.io/loadBalancerIPs"] == str(ip)
    pool = network.pool_for(ip)
    assert pool is not None
    assert annotations["metallb.io/address-pool"] == pool.name
    assert "metallb.io/allow-shared-ip" not in annotations
    shared = load_balancer_annotations(network, ip, "edge")
    assert shared["metallb.io/allow-shared-ip"] == "edge"


def test_an_ip_outside_every_pool_is_refused() -> None:
    network = homelab_config().network
    outside = ipaddress.IPv4Address("192.168.0.5")
    assert network.pool_for(outside) is None
    with pytest.raises(ValueError, match="not inside any MetalLB pool"):
        load_balancer_annotations(network, outside)


def test_a_service_requesting_an_ip_waits_for_its_pool_and_the_advertisement() -> None:
    render = homelab_render()
    traefik = render.one(RELEASE, "traefik")
    assert depends_on(traefik, render.one(POOL))
    assert depends_on(traefik, render.one(L2))

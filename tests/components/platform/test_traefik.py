"""Traefik: its LB IP from MetalLB, the wildcard as default certificate, the private allowlist."""

from __future__ import annotations

import ipaddress
import json
from typing import Any

import yaml

from components.shared.common import TAILNET_IPV4, TAILNET_IPV6
from config import pins
from config.loader import validate_config
from config.model import HomelabConfig
from homelab.engine import Render, ResourceRecord
from programs.build import parameters
from tests.contracts import (
    chart_defaults,
    component_records,
    depends_on,
    helm_coalesce,
    validate_helm_values,
    validate_objects,
)
from tests.harness import (
    helm_values,
    homelab_render,
    reference,
    render_stack,
    stack_raw_config,
    with_changes,
)

TRAEFIK = "homelab:platform:Traefik"
RELEASE = "kubernetes:helm.sh/v3:Release"
MIDDLEWARE = "kubernetes:traefik.io/v1alpha1:Middleware"
CERTIFICATE = "kubernetes:cert-manager.io/v1:Certificate"
INGRESS_ROUTE = "kubernetes:traefik.io/v1alpha1:IngressRoute"
COMMAND = "command:local:Command"
# Talos' default pod CIDR (siderolabs/talos constants.go, components.md 1.3).
TALOS_POD_CIDR = ipaddress.ip_network("10.244.0.0/16")


def homelab_config() -> HomelabConfig:
    return validate_config(stack_raw_config())


def traefik_values(render: Render) -> dict[str, Any]:
    return helm_values(render.one(RELEASE, "traefik"))


def middleware(render: Render) -> ResourceRecord:
    (record,) = [r for r in component_records(render, TRAEFIK) if r.type == MIDDLEWARE]
    return record


def render_with_derp(changes: dict[str, Any]) -> Render:
    raw = stack_raw_config()
    remote = with_changes(raw["remoteAccess"], {f"derp.{k}": v for k, v in changes.items()})
    return render_stack("homelab", overrides={"remoteAccess": remote})


def test_every_traefik_object_meets_its_schema() -> None:
    # Its namespace and the allowlist middleware.
    assert validate_objects(component_records(homelab_render(), TRAEFIK)) == 2


def test_chart_values_pass_the_charts_strict_schema() -> None:
    release = homelab_render().one(RELEASE, "traefik")
    assert release.input("version") == pins.TRAEFIK_CHART_VERSION
    validate_helm_values("traefik", traefik_values(homelab_render()))


def test_service_requests_the_configured_ip_inside_a_pool() -> None:
    config = homelab_config()
    annotations = traefik_values(homelab_render())["service"]["annotations"]
    requested = ipaddress.IPv4Address(annotations["metallb.io/loadBalancerIPs"])
    assert requested == config.network.traefik_ip
    pool = config.network.pool_for(requested)
    assert pool is not None
    assert annotations["metallb.io/address-pool"] == pool.name
    assert homelab_render().outputs["traefikIp"] == str(requested)


def test_sharing_the_ip_with_stun_forces_cluster_policy_with_a_common_key() -> None:
    # MetalLB shares an IP only between Services with the same key that both use Cluster
    # (Traefik and the STUN server are different pods; components.md 5).
    shared = render_with_derp({"stunIp": None})
    service = traefik_values(shared)["service"]
    assert service["spec"]["externalTrafficPolicy"] == "Cluster"
    assert service["annotations"]["metallb.io/allow-shared-ip"]


def test_own_ip_keeps_client_addresses_with_local_policy() -> None:
    separate = homelab_render()
    assert homelab_config().stun_ip != homelab_config().network.traefik_ip
    assert traefik_values(separate)["service"]["spec"]["externalTrafficPolicy"] == "Local"
    without_derp = render_with_derp({"enabled": False})
    assert traefik_values(without_derp)["service"]["spec"]["externalTrafficPolicy"] == "Local"


def test_plain_http_is_redirected_to_https_permanently() -> None:
    ports = traefik_values(homelab_render())["ports"]
    redirect = ports["web"]["http"]["redirections"]["entryPoint"]
    assert redirect["to"] == "websecure"
    assert redirect["scheme"] == "https"
    assert redirect["permanent"] is True


def test_default_certificate_is_the_wildcard_reflected_into_traefiks_namespace() -> None:
    render = homelab_render()
    release = render.one(RELEASE, "traefik")
    certificate = render.one(CERTIFICATE)
    store = traefik_values(render)["tlsStore"]["default"]["defaultCertificate"]
    assert store["secretName"] == certificate.input("spec.secretName")
    reflected = certificate.input("spec.secretTemplate.annotations")[
        "reflector.v1.k8s.emberstack.com/reflection-auto-namespaces"
    ].split(",")
    assert release.input("namespace") in reflected
    # Traefik serves its own default until the Secret appears, so the front door does not wait
    # for ACME; the routes that name the Secret do.
    assert not depends_on(release, certificate)
    assert all(depends_on(route, certificate) for route in render.by_type(INGRESS_ROUTE))


def test_ingress_and_crd_providers_are_on() -> None:
    providers = traefik_values(homelab_render())["providers"]
    assert providers["kubernetesCRD"]["enabled"] is True
    assert providers["kubernetesIngress"]["enabled"] is True


def test_dashboard_is_neither_enabled_nor_exposed() -> None:
    merged = helm_coalesce(chart_defaults("traefik"), traefik_values(homelab_render()))
    assert merged["api"]["dashboard"] is False
    assert merged["ingressRoute"]["dashboard"]["enabled"] is False
    assert merged["ports"]["traefik"]["expose"]["default"] is False


def test_allowlist_admits_lan_tailnet_and_pods_but_not_the_internet() -> None:
    config = homelab_config()
    ranges = [
        ipaddress.ip_network(r)
        for r in middleware(homelab_render()).input("spec.ipAllowList.sourceRange")
    ]
    admitted = set(ranges)
    assert config.network.lan_cidr in admitted
    assert ipaddress.ip_network(TAILNET_IPV4) in admitted
    assert ipaddress.ip_network(TAILNET_IPV6) in admitted
    # VPN traffic arrives from the subnet router pod (its netstack opens the connections).
    assert TALOS_POD_CIDR in admitted
    for internet in ("8.8.8.8", "1.1.1.1", "2001:4860:4860::8888"):
        address = ipaddress.ip_address(internet)
        assert not any(address in r for r in ranges if r.version == address.version)


def test_allowlist_never_trusts_forwarded_headers() -> None:
    # Without an ipStrategy Traefik uses the connection's address; X-Forwarded-For is spoofable.
    assert "ipStrategy" not in middleware(homelab_render()).input("spec.ipAllowList")


def test_allowlist_waits_for_its_crd_not_for_traefik() -> None:
    render = homelab_render()
    assert depends_on(middleware(render), render.one(COMMAND, "traefik-crds"))
    assert not depends_on(middleware(render), render.one(RELEASE, "traefik"))


def crds_command(render: Render) -> ResourceRecord:
    return render.one(COMMAND, "traefik-crds")


def crds_params(render: Render) -> dict[str, Any]:
    return parameters(crds_command(render).input("create"))


def reference_crds() -> dict[str, dict[str, Any]]:
    """The chart's traefik.io CRDs (traefik/traefik-helm-chart@v41.3.0:traefik/crds/), by file."""
    folder = reference("upstream/traefik/crds")
    return {
        path.name: yaml.safe_load(path.read_text())
        for path in sorted(folder.glob("traefik.io_*.yaml"))
    }


def test_crds_come_from_the_pinned_charts_own_crds_folder() -> None:
    """traefik/traefik-helm-chart@v41.3.0:README.md: the traefik-crds chart is deprecated since
    38.0.2 (and removed, commit fd6fca32), CRDs are upgraded with `helm show crds | kubectl apply
    --server-side --force-conflicts`, i.e. the chart's crds/ folder at its version. So: every
    traefik.io CRD file of that folder, at the tag of the pinned chart, and each awaited under
    the name the file declares."""
    params = crds_params(homelab_render())
    upstream = reference_crds()
    assert upstream
    base = f"https://raw.githubusercontent.com/traefik/traefik-helm-chart/v{pins.TRAEFIK_CHART_VERSION}/traefik/crds/"
    assert params["urls"] == [base + name for name in upstream]
    assert params["names"] == [crd["metadata"]["name"] for crd in upstream.values()]


def test_every_traefik_kind_this_stack_creates_has_its_crd_applied_first() -> None:
    render = homelab_render()
    kinds = {crd["spec"]["names"]["kind"] for crd in reference_crds().values()}
    params = crds_params(render)
    applied = {
        crd["spec"]["names"]["kind"]
        for crd in reference_crds().values()
        if crd["metadata"]["name"] in params["names"]
    }
    command = crds_command(render)
    for record in render.resources:
        if record.type.startswith("kubernetes:traefik.io/"):
            kind = record.type.rpartition(":")[2]
            assert kind in applied, kind
            assert depends_on(record, command), record.name
    # The chart itself templates the default TLSStore: its Release needs the CRDs too.
    assert "TLSStore" in kinds
    assert traefik_values(render)["tlsStore"]["default"]
    assert depends_on(render.one(RELEASE, "traefik"), command)


def test_the_release_skips_the_crds_applied_separately() -> None:
    """pulumi/pulumi-kubernetes@v4.32.0:provider/pkg/provider/helm_release.go: `skipCrds` sets
    Helm's `SkipCRDs` on install/upgrade (and `IncludeCRDs = !SkipCrds` when rendering), so the
    chart's crds/ folder is left to the CRD apply; the other charts template their CRDs."""
    render = homelab_render()
    assert render.one(RELEASE, "traefik").input("skipCrds") is True
    for release in render.by_type(RELEASE):
        if release.name != "traefik":
            assert "skipCrds" not in release.inputs, release.name


def test_traefik_runs_two_spread_replicas_with_a_budget_on_two_schedulable_nodes() -> None:
    values = traefik_values(homelab_render())
    assert homelab_config().cluster.schedule_on_control_planes
    assert len(homelab_config().cluster.control_planes) >= 2
    assert values["deployment"]["replicas"] == 2
    assert values["podDisruptionBudget"] == {"enabled": True, "maxUnavailable": 1}
    (spread,) = values["topologySpreadConstraints"]
    assert spread["topologyKey"] == "kubernetes.io/hostname"
    # The chart labels its pods app.kubernetes.io/name={{ template "traefik.name" . }} and runs
    # this list through `tpl` (traefik/traefik-helm-chart@v41.3.0:traefik/templates/_podtemplate.tpl).
    assert spread["labelSelector"]["matchLabels"] == {
        "app.kubernetes.io/name": '{{ template "traefik.name" . }}'
    }
    validate_helm_values("traefik", values)


def test_a_single_node_runs_one_replica_without_a_budget() -> None:
    raw = stack_raw_config()
    single = render_stack(
        "homelab",
        overrides={"cluster": with_changes(raw["cluster"], {"nodes": raw["cluster"]["nodes"][:1]})},
    )
    values = traefik_values(single)
    assert values["deployment"]["replicas"] == 1
    assert "podDisruptionBudget" not in values
    assert "topologySpreadConstraints" not in values
    validate_helm_values("traefik", values)


def test_traefik_requests_resources_and_is_critical() -> None:
    values = traefik_values(homelab_render())
    assert set(values["resources"]["requests"]) == {"cpu", "memory"}
    assert values["priorityClassName"] == "system-cluster-critical"


def test_internet_forward_target_is_the_public_entrypoint() -> None:
    render = homelab_render()
    public = traefik_values(render)["ports"]["public"]
    assert public["expose"]["default"] is True
    assert public["http"]["tls"]["enabled"] is True
    ip = str(homelab_config().network.traefik_ip)
    (https,) = [f for f in render.outputs["routerPortForwards"] if f["protocol"] == "tcp"]
    assert (https["externalPort"], https["internalIp"], https["internalPort"]) == (
        443,
        ip,
        public["exposedPort"],
    )
    # It must not collide with the ports LAN clients use.
    defaults = chart_defaults("traefik")["ports"]
    assert public["exposedPort"] not in {defaults[n]["exposedPort"] for n in ("web", "websecure")}
    assert public["port"] not in {port["port"] for port in defaults.values()}


def test_the_critical_priority_class_is_admitted_outside_kube_system() -> None:
    """Traefik and MetalLB's speaker use the built-in `system-cluster-critical`. Kubernetes admits
    it in any namespace since 1.17 (kubernetes/kubernetes PR #76310, "Relax namespace restriction
    for critical pods") unless the API server's ResourceQuota admission plugin is configured with
    `limitedResources` for that PriorityClass scope. Talos generates an admission config holding
    only PodSecurity (siderolabs/talos@v1.13.9:pkg/machinery/config/generate/init.go), so nothing
    may add a ResourceQuota plugin config through the machine-config patches either."""
    render = homelab_render()
    assert traefik_values(render)["priorityClassName"] == "system-cluster-critical"
    assert helm_values(render.one(RELEASE, "metallb"))["speaker"]["priorityClassName"] == (
        "system-cluster-critical"
    )
    talos_inputs = [
        *(r.inputs for r in render.resources if r.type.startswith("talos:machine/")),
        *(i.args for i in render.invokes if i.token.startswith("talos:machine/")),
    ]
    assert talos_inputs
    for inputs in talos_inputs:
        text = json.dumps(inputs, default=str)
        assert "ResourceQuota" not in text
        assert "limitedResources" not in text

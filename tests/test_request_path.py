"""The request path the project exists for, walked hop by hop over the records of both fixture stacks.

A device joins Headscale over the internet; the policy admits its user to Grafana; MagicDNS names
Grafana at Traefik's LoadBalancer IP; MetalLB hands Traefik that IP; the subnet router carries the
connection there on an approved route; the private allowlist admits the address the router's
connection comes from; Traefik answers with the awaited wildcard certificate and hands the request
to the Service whose selector finds Grafana's pods.

Each hop test reads its values from the records (rendered config files, manifests, outputs) and
checks them with the rule of the program that reads them, ported from its source at the pinned tag
(named in each docstring). What a hop should connect to comes from the fixture stack's config, never
from what the code produced. `test_the_request_reaches_the_app_end_to_end` follows the whole chain
in one pass and names the first broken hop; its guard proves that it does.

Hops already covered in depth elsewhere are referenced, not repeated: the containerboot `tailscale
up` mirror and the --advertise-tags refusal (tests/components/remote_access/test_subnet_router.py),
Headscale's public paths on the homelab (test_headscale.py), the waitFor grammar
(tests/components/platform/test_cert_manager.py) and the access evaluator against Headscale's own
policy tests (tests/config/test_access.py).
"""

from __future__ import annotations

import dataclasses
import functools
import ipaddress
import json
import posixpath
import re
import shlex
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import pytest

from config import pins
from config.access import UNNAMED_USER, Destination, Principal, Tailnet
from config.loader import validate_config
from config.model import HomelabConfig
from config.policy import split_destination
from homelab.engine import Render, ResourceRecord
from programs.build import parameters
from tests.components.platform.test_cert_manager import parse_wait_for
from tests.components.remote_access.remote_access import (
    CONFIG_MAP,
    DEPLOYMENT,
    HEADSCALE,
    INGRESS_ROUTE,
    ROUTER,
    SERVICE,
    child,
    container,
    containerboot_up_args,
    env_of,
    headscale_accepts_pre_auth_key_registration,
    headscale_settings,
    pod_spec,
    requested_tags,
)
from tests.components.remote_access.test_headscale import (
    CLIENT_REQUESTS,
    PRIVATE_REQUESTS,
)
from tests.components.remote_access.test_headscale import _matches as traefik_rule_matches
from tests.components.shared.hardening import admits, policies_selecting
from tests.contracts import chart_defaults, helm_coalesce, merged_machine_config, v1alpha1_part
from tests.harness import helm_values, homelab_render, render_stack, stack_raw_config

STACKS = ("homelab", "lab")
RELEASE = "kubernetes:helm.sh/v3:Release"
POOL = "kubernetes:metallb.io/v1beta1:IPAddressPool"
MIDDLEWARE = "kubernetes:traefik.io/v1alpha1:Middleware"
CERTIFICATE = "kubernetes:cert-manager.io/v1:Certificate"
TALOS_APPLY = "talos:machine/configurationApply:ConfigurationApply"
HTTPS_PORT = 443
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

# tailscale/tailscale@v1.102.3:control/controlhttp/constants.go `serverUpgradePath`: the path
# every client POSTs/GETs for the Noise upgrade (client.go dials https://<host>:443/ts2021).
TS2021_PATH = "/ts2021"
# tailscale/tailscale@v1.102.3:control/controlclient/direct.go: `<server>/key?v=<capver>` fetches
# the control server's Noise key before the upgrade.
KEY_PATH = "/key"
# siderolabs/talos@v1.13.9:pkg/machinery/constants/constants.go `DefaultIPv4PodNet`, which
# pkg/machinery/config/generate/generate.go `NewInput` uses for an IPv4 cluster endpoint.
TALOS_DEFAULT_IPV4_POD_NET = ipaddress.ip_network("10.244.0.0/16")
TALOS_DEFAULT_IPV6_POD_NET = ipaddress.ip_network("fc00:db8:10::/56")  # DefaultIPv6PodNet
# grafana-community/helm-charts@grafana-12.11.1:charts/grafana/Chart.yaml `name`, and the
# values.yaml defaults the Service and pod templates read.
GRAFANA_CHART_NAME = "grafana"
# The chart version `grafana_chart_service` is ported from: a bump must re-read the templates.
GRAFANA_CHART_PORTED_FROM = "12.11.1"
GRAFANA_CHART_DEFAULTS: dict[str, Any] = {
    "nameOverride": "",
    "fullnameOverride": "",
    "namespaceOverride": "",
    "podPortName": "grafana",
    "podLabels": {},
    "service": {"enabled": True, "type": "ClusterIP", "port": 80, "targetPort": 3000},
}
REFLECTOR = "reflector.v1.k8s.emberstack.com/"


# --- the stacks -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Stack:
    name: str
    raw: dict[str, Any]
    config: HomelabConfig
    render: Render

    @property
    def app(self) -> dict[str, Any]:
        """The fixture's Grafana app: the one the walk follows."""
        (app,) = [a for a in self.raw["apps"] if a.get("workload") == "grafana"]
        assert isinstance(app, dict)
        return app

    @property
    def app_fqdn(self) -> str:
        return f"{self.app.get('host') or self.app['name']}.{self.raw['domain']}"

    @property
    def headscale_fqdn(self) -> str:
        return f"{self.raw['remoteAccess']['headscaleHost']}.{self.raw['domain']}"


@functools.cache
def _render(name: str) -> Render:
    return homelab_render() if name == "homelab" else render_stack(name)


def stack(name: str, render: Render | None = None) -> Stack:
    raw = stack_raw_config(name)
    return Stack(name, raw, validate_config(raw), render or _render(name))


class BrokenHopError(AssertionError):
    """One hop of the request path does not hold; the message names the hop."""

    def __init__(self, hop: str, problem: str) -> None:
        super().__init__(f"hop '{hop}' is broken: {problem}")
        self.hop = hop


def hop(name: str, holds: bool, problem: str) -> None:
    if not holds:
        raise BrokenHopError(name, problem)


# --- records ----------------------------------------------------------------------------------


def named(render: Render, type_token: str, namespace: str, name: str) -> ResourceRecord | None:
    """The object Kubernetes would find under `namespace/name`, if the stack creates it."""
    found = [
        r
        for r in render.by_type(type_token)
        if r.input("metadata.name") == name and r.input("metadata.namespace") == namespace
    ]
    return found[0] if len(found) == 1 else None


def traefik_release(render: Render) -> ResourceRecord:
    return render.one(RELEASE, "traefik")


def traefik_ports(render: Render) -> dict[str, Any]:
    """The chart's ports with ours coalesced over them, as Helm renders them."""
    merged = helm_coalesce(chart_defaults("traefik"), helm_values(traefik_release(render)))
    ports = merged["ports"]
    assert isinstance(ports, dict)
    return ports


def entrypoint_on_service_port(render: Render, port: int) -> str | None:
    """The entrypoint Traefik's LoadBalancer Service serves on `port`: the chart exposes each
    port with `expose.default` on its `exposedPort` (traefik/traefik-helm-chart@v41.3.0:
    traefik/templates/_service.tpl)."""
    for name, cfg in traefik_ports(render).items():
        if cfg and (cfg.get("expose") or {}).get("default") and cfg.get("exposedPort") == port:
            return name
    return None


def routes_for(render: Render, entrypoint: str, host: str, path: str) -> list[dict[str, Any]]:
    """Rules of IngressRoutes on `entrypoint` that match a request for `host` + `path`."""
    return [
        {**rule, "_record": route}
        for route in render.by_type(INGRESS_ROUTE)
        if entrypoint in route.input("spec.entryPoints")
        for rule in route.input("spec.routes")
        if traefik_rule_matches(rule["match"], host, path)
    ]


def policy_document(render: Render) -> dict[str, Any]:
    """The policy file Headscale loads: the ConfigMap key named by `policy.path`."""
    settings = headscale_settings(render)
    data = child(render, HEADSCALE, CONFIG_MAP, "headscale-config").input("data")
    document = json.loads(data[posixpath.basename(settings["policy"]["path"])])
    assert isinstance(document, dict)
    return document


def router_env(render: Render) -> dict[str, Any]:
    deployment = child(render, ROUTER, DEPLOYMENT, "subnet-router-deployment")
    return env_of(container(pod_spec(deployment), "tailscale"))


def router_key_tags(render: Render) -> list[str]:
    """The tags the router's pre-auth key is minted with (its program's parameters)."""
    script = child(render, HEADSCALE, "command:local:Command", "headscale-router-key").input(
        "create"
    )
    tags = parameters(script)["tags"]
    assert isinstance(tags, list)
    return [str(t) for t in tags]


def advertised_routes(env: Mapping[str, Any]) -> list[Network]:
    """tailscale/tailscale@v1.102.3:net/netutil/routes.go `CalcAdvertiseRoutes`: TS_ROUTES
    (containerboot passes it as --advertise-routes) split on ",", each a masked prefix."""
    return [ipaddress.ip_network(r, strict=True) for r in str(env.get("TS_ROUTES", "")).split(",")]


def transitive_dependencies(render: Render, record: ResourceRecord) -> set[str]:
    """Every URN `record` waits for: its explicit and data dependencies, theirs, and so on; a
    dependency on a component waits for all of the component's children (Pulumi's dependsOn on
    a ComponentResource expands to its descendants)."""
    seen: set[str] = set()
    queue = [record]
    while queue:
        current = queue.pop()
        direct = set(current.dependencies)
        for urns in current.property_dependencies.values():
            direct |= set(urns)
        for urn in direct - seen:
            seen.add(urn)
            try:
                found = render.by_urn(urn)
            except LookupError:
                continue
            queue.append(found)
            if not found.custom:
                descendants = [r for r in render.resources if found in render.ancestors(r)]
                queue.extend(d for d in descendants if d.urn not in seen)
                seen |= {d.urn for d in descendants}
    return seen


def listen_port(settings: Mapping[str, Any]) -> int:
    return int(str(settings["listen_addr"]).rpartition(":")[2])


def backend_problems(
    render: Render, rule: Mapping[str, Any], *, expected_port: int | None = None
) -> list[str]:
    """Why a route's backend Service (a record of the stack) does not reach a pod's port."""
    record: ResourceRecord = rule["_record"]
    namespace = record.input("metadata.namespace")
    (backend,) = rule["services"]
    service = named(render, SERVICE, backend.get("namespace", namespace), backend["name"])
    if service is None:
        return [f"no Service {namespace}/{backend['name']}"]
    ports = [p for p in service.input("spec.ports") if p["port"] == backend["port"]]
    if not ports:
        return [f"Service {backend['name']} has no port {backend['port']}"]
    selector = service.input("spec.selector") or {}
    for deployment in render.by_type(DEPLOYMENT):
        if deployment.input("metadata.namespace") != service.input("metadata.namespace"):
            continue
        labels = deployment.input("spec.template.metadata.labels")
        if not selector or any(labels.get(k) != v for k, v in selector.items()):
            continue
        named_ports = {
            p["name"]: p["containerPort"]
            for c in pod_spec(deployment)["containers"]
            for p in c.get("ports", [])
            if "name" in p
        }
        target = ports[0].get("targetPort", ports[0]["port"])
        port = named_ports.get(target) if isinstance(target, str) else target
        if port is None:
            return [f"no container port named {target!r} in {deployment.name}"]
        if expected_port is not None and port != expected_port:
            return [f"{deployment.name} serves {port}, the program listens on {expected_port}"]
        return []
    return [f"Service {backend['name']}'s selector {selector} selects no pods"]


# --- upstream rules, ported -------------------------------------------------------------------


def go_flag(args: list[str], name: str) -> str | None:
    """A flag's value as Go's flag package reads it: -x/--x, `=v` or the next argument; a bare
    boolean flag is "true"."""
    value: str | None = None
    for index, arg in enumerate(args):
        if not arg.startswith("-"):
            continue
        flag, has_value, inline = arg.lstrip("-").partition("=")
        if flag != name:
            continue
        if has_value:
            value = inline
        elif index + 1 < len(args) and not args[index + 1].startswith("-"):
            value = args[index + 1]
        else:
            value = "true"
    return value


def magic_dns_answers(settings: Mapping[str, Any], fqdn: str) -> list[ipaddress.IPv4Address]:
    """What a client's MagicDNS answers for `fqdn` from `dns.extra_records`.

    juanfont/headscale@v0.28.0:hscontrol/types/config.go `dns()`: `viper.UnmarshalKey(
    "dns.extra_records", &[]tailcfg.DNSRecord)` (mapstructure, field names case-insensitive:
    name/type/value), handed to clients unchanged as DNSConfig.ExtraRecords (`dnsToTailcfgDNS`).
    tailscale/tailscale@v1.102.3:ipn/ipnlocal/node_backend.go `dnsConfigForNetmap`: a record of
    type "", "A" or "AAAA" whose value parses as an address becomes a host entry of its name
    (dnsname.ToFQDN: trailing dot optional); other types and bad values are skipped."""
    wanted = fqdn.rstrip(".").lower()
    answers: list[ipaddress.IPv4Address] = []
    for record in (settings.get("dns") or {}).get("extra_records") or []:
        fields = {str(k).lower(): v for k, v in record.items()}
        if str(fields.get("type", "")) not in ("", "A", "AAAA"):
            continue
        try:
            address = ipaddress.ip_address(str(fields.get("value", "")))
        except ValueError:
            continue
        if str(fields.get("name", "")).rstrip(".").lower() == wanted and address.version == 4:
            answers.append(address)
    return answers


def quad100_is_asked(settings: Mapping[str, Any], fqdn: str) -> bool:
    """Whether the client's OS sends a query for `fqdn` to Tailscale's resolver at all.

    tailscale/tailscale@v1.102.3:net/dns/manager.go `compileConfig`: with default resolvers (what
    Headscale's `override_local_dns` sends as DNSConfig.Resolvers, hscontrol/types/config.go
    `dnsToTailcfgDNS`) and a host entry outside every split-DNS route, every query goes through
    100.100.100.100, which answers host entries first; without them only the MagicDNS routes (the
    base domain, when magic_dns) reach it."""
    dns = settings.get("dns") or {}
    default_resolvers = bool(dns.get("override_local_dns")) and bool(
        (dns.get("nameservers") or {}).get("global")
    )
    base = str(dns.get("base_domain", "")).lower()
    under_magic_route = bool(dns.get("magic_dns")) and (
        fqdn.lower() == base or fqdn.lower().endswith("." + base)
    )
    return default_resolvers or under_magic_route


def metallb_requested_ips(annotations: Mapping[str, str]) -> list[ipaddress.IPv4Address]:
    """metallb/metallb@v0.16.1:controller/service.go `getDesiredLbIPs`: the
    `metallb.io/loadBalancerIPs` annotation split on ",", each TrimSpace'd and net.ParseIP'd
    (any failure: the Service gets no IP)."""
    text = annotations.get("metallb.io/loadBalancerIPs", "")
    if not text:
        return []
    return [ipaddress.IPv4Address(part.strip()) for part in text.split(",")]


def metallb_pool_networks(pool: ResourceRecord) -> list[Network]:
    """metallb/metallb@v0.16.1:internal/config/config.go `ParseCIDR`: each `spec.addresses`
    entry is a CIDR, or `start-end` (split once on "-", trimmed) summarised into CIDRs."""
    networks: list[Network] = []
    for entry in pool.input("spec.addresses"):
        if "-" not in entry:
            if "/" not in entry:
                raise ValueError(f"invalid CIDR {entry!r}")  # net.ParseCIDR needs a prefix length
            networks.append(ipaddress.ip_network(entry, strict=False))
            continue
        start_text, end_text = entry.split("-", 1)
        start = ipaddress.ip_address(start_text.strip())
        end = ipaddress.ip_address(end_text.strip())
        networks.extend(ipaddress.summarize_address_range(start, end))
    return networks


def pool_holding(render: Render, ip: ipaddress.IPv4Address) -> ResourceRecord | None:
    """The IPAddressPool MetalLB assigns `ip` from (controller Assign: the pool containing it);
    the controller reads pools in its own namespace only (the release's)."""
    namespace = render.one(RELEASE, "metallb").input("namespace")
    for pool in render.by_type(POOL):
        if pool.input("metadata.namespace") != namespace:
            continue
        if any(ip in network for network in metallb_pool_networks(pool)):
            return pool
    return None


def allowlist_admits(middleware: ResourceRecord, source: Network) -> bool:
    """traefik/traefik@v3.7.9:pkg/middlewares/ipallowlist/ip_allowlist.go with pkg/ip/checker.go
    `NewChecker`: each sourceRange entry an IP or a CIDR; with no `ipStrategy`
    (pkg/config/dynamic/middlewares.go `IPStrategy.Get` -> RemoteAddrStrategy) the connection's
    own address is checked. Every address of `source` must be admitted."""
    spec = middleware.input("spec.ipAllowList")
    if spec.get("ipStrategy"):
        return False  # a forwarded-header strategy does not look at the router's address
    ranges = [ipaddress.ip_network(entry, strict=False) for entry in spec["sourceRange"]]
    return any(
        source.version == r.version and source.subnet_of(r)  # type: ignore[arg-type]
        for r in ranges
    )


def cluster_pod_networks(render: Render) -> list[Network]:
    """The cluster's pod subnets: `cluster.network.podSubnets` of the nodes' final machine config
    when set, else Talos' default for the endpoint's family (siderolabs/talos@v1.13.9:
    pkg/machinery/config/generate/generate.go `NewInput`)."""
    apply = render.by_type(TALOS_APPLY)[0]
    cluster = v1alpha1_part(merged_machine_config(apply)).get("cluster") or {}
    configured = (cluster.get("network") or {}).get("podSubnets")
    if configured:
        return [ipaddress.ip_network(s, strict=False) for s in configured]
    endpoint = urlsplit(str((cluster.get("controlPlane") or {}).get("endpoint", ""))).hostname
    try:
        ipv6 = endpoint is not None and ipaddress.ip_address(endpoint).version == 6
    except ValueError:
        ipv6 = False
    return [TALOS_DEFAULT_IPV6_POD_NET if ipv6 else TALOS_DEFAULT_IPV4_POD_NET]


def router_connection_sources(render: Render, config: HomelabConfig) -> list[Network]:
    """Where the connection the router opens to Traefik's IP comes from, as Traefik sees it.

    tailscale/tailscale@v1.102.3:wgengine/netstack/netstack.go `forwardTCP`: in userspace mode
    (TS_USERSPACE) the router terminates the client's TCP in its netstack and dials the
    destination with a plain net.Dialer, so the connection leaves from the router pod's own IP
    (the tailnet address never appears).

    siderolabs/talos@v1.13.9:internal/app/machined/pkg/controllers/k8s/control_plane.go
    `getProxyArgs`: kube-proxy runs in nftables mode (Kubernetes >= 1.31, no mode configured)
    with `--cluster-cidr` = the pod subnets, so its local-traffic detector is implemented.
    kubernetes/kubernetes pkg/proxy/nftables/proxier.go `syncProxyRules` (read in the public
    code index, not at the Talos-pinned tag: the repository is too large for the mirror; the
    iptables proxier has the same rules): for a LoadBalancer IP with `externalTrafficPolicy:
    Local`, pod traffic is "short-circuit"ed to the cluster chain unmasqueraded, so the pod IP is
    kept; with `Cluster` the external chain jumps to the masquerade mark for all traffic, so it
    arrives from an address of the router's node (its LAN IP, or its CNI address in the pod net).
    """
    apply = render.by_type(TALOS_APPLY)[0]
    proxy = (v1alpha1_part(merged_machine_config(apply)).get("cluster") or {}).get("proxy") or {}
    assert not proxy.get("disabled"), "without kube-proxy these rules are another CNI's"
    assert proxy.get("mode") in (None, "", "nftables", "iptables"), proxy.get("mode")
    pods = cluster_pod_networks(render)
    service = helm_values(traefik_release(render))["service"]
    policy = (service.get("spec") or {}).get("externalTrafficPolicy", "Cluster")
    if policy == "Local":
        return pods
    nodes: list[Network] = [ipaddress.ip_network(f"{n.ip}/32") for n in config.cluster.nodes]
    return [*pods, *nodes]


def reflector_mirrors_into(annotations: Mapping[str, str], namespace: str) -> bool:
    """emberstack/kubernetes-reflector@v10.0.63:src/ES.Kubernetes.Reflector/Mirroring/Core/
    MirroringPropertiesExtensions.cs `CanBeAutoReflectedToNamespace`: `reflection-allowed` and
    `reflection-auto-enabled` parse as true, and the namespace matches both the allowed and the
    auto lists (`PatternListMatch`: split on ",", trimmed, each a regex whose first match must
    span the whole name; an empty list allows every namespace)."""

    def flag(key: str) -> bool:
        return annotations.get(REFLECTOR + key, "").strip().lower() == "true"

    def listed(key: str) -> bool:
        patterns = annotations.get(REFLECTOR + key, "")
        if not patterns:
            return True
        for pattern in (p.strip() for p in patterns.split(",") if p.strip()):
            match = re.search(pattern, namespace)
            if match is not None and len(match.group(0)) == len(namespace):
                return True
        return False

    return (
        flag("reflection-allowed")
        and flag("reflection-auto-enabled")
        and listed("reflection-allowed-namespaces")
        and listed("reflection-auto-namespaces")
    )


def certificate_covers(dns_names: Iterable[str], host: str) -> bool:
    """RFC 6125 section 6.4.3 as Go's crypto/x509 `matchHostnames` applies it (what Tailscale's
    tlsdial and browsers verify): an exact name, or `*.` + the rest with `*` standing for exactly
    one whole left-most label."""
    host = host.lower().rstrip(".")
    for name in (n.lower().rstrip(".") for n in dns_names):
        if name == host:
            return True
        if name.startswith("*.") and "." in host:
            label, _, rest = host.partition(".")
            if label and rest == name[2:]:
                return True
    return False


@dataclass(frozen=True)
class ChartService:
    """What the Grafana chart templates for its Service and pods, from a Release's values."""

    enabled: bool
    name: str
    namespace: str
    port: int
    target_port: str
    selector: dict[str, str]
    pod_labels: dict[str, str]
    container_ports: dict[str, int]


def grafana_chart_service(release: ResourceRecord) -> ChartService:
    """grafana-community/helm-charts@grafana-12.11.1:charts/grafana/templates/service.yaml
    (name `grafana.fullname`, port `.Values.service.port`, targetPort `.Values.podPortName`,
    selector `grafana.selectorLabels`), _helpers.tpl (fullname: fullnameOverride, else the
    release name if it contains the chart name, else `<release>-<name>`, trunc 63; selectorLabels:
    app.kubernetes.io/name = nameOverride or the chart name, app.kubernetes.io/instance = the
    release name), deployment.yaml (pod labels: `grafana.labels`, which include the selector
    labels, then `.Values.podLabels` on top) and _pod.tpl (container port named podPortName at
    `.Values.service.targetPort`)."""
    values = helm_coalesce(GRAFANA_CHART_DEFAULTS, helm_values(release))
    release_name = str(release.input("name"))
    name = values["nameOverride"] or GRAFANA_CHART_NAME
    if values["fullnameOverride"]:
        fullname = str(values["fullnameOverride"])
    elif name in release_name:
        fullname = release_name
    else:
        fullname = f"{release_name}-{name}"
    fullname = fullname[:63].rstrip("-")
    selector = {
        "app.kubernetes.io/name": name[:63].rstrip("-"),
        "app.kubernetes.io/instance": release_name,
    }
    service = values["service"]
    return ChartService(
        enabled=bool(service["enabled"]),
        name=fullname,
        namespace=str(values["namespaceOverride"] or release.input("namespace")),
        port=int(service["port"]),
        target_port=str(values["podPortName"]),
        selector=selector,
        pod_labels={**selector, **(values.get("podLabels") or {})},
        container_ports={str(values["podPortName"]): int(service["targetPort"])},
    )


# --- hop 1: a device joins ----------------------------------------------------------------------


@pytest.mark.parametrize("name", STACKS)
def test_hop_1_a_device_joins_over_the_public_entrypoint(name: str) -> None:
    """`tailscale up --login-server URL` (tailscale/tailscale@v1.102.3:cmd/tailscale/cli/up.go)
    dials `https://<URL host>:443/ts2021` (control/controlhttp/client.go with constants.go
    `serverUpgradePath`) after GET `<URL>/key` (control/controlclient/direct.go). Linux clients
    default `--accept-routes` to false (ipn/prefs.go `DefaultRouteAll`), so the join command must
    set it or the LAN route is ignored. The public name reaches the router's forward of WAN 443,
    which lands on Traefik's `public` entrypoint; there, juanfont/headscale@v0.28.0:
    hscontrol/app.go `createRouter` must be served for the client paths only."""
    s = stack(name)
    settings = headscale_settings(s.render)
    args = shlex.split(s.render.outputs["tailscaleJoinCommand"])
    assert args[:2] == ["tailscale", "up"]
    login = go_flag(args[2:], "login-server")
    assert login == settings["server_url"], "the device logs in where Headscale says it lives"
    assert urlsplit(login).hostname == s.headscale_fqdn
    assert go_flag(args[2:], "accept-routes") == "true"
    assert go_flag(args[2:], "accept-dns") in (None, "true"), "MagicDNS needs --accept-dns"
    assert s.render.outputs["publicDnsRecord"]["name"] == s.headscale_fqdn
    (forward,) = [
        f
        for f in s.render.outputs["routerPortForwards"]
        if f["protocol"] == "tcp" and f["externalPort"] == HTTPS_PORT
    ]
    annotations = helm_values(traefik_release(s.render))["service"]["annotations"]
    assert ipaddress.IPv4Address(forward["internalIp"]) in metallb_requested_ips(annotations)
    entrypoint = entrypoint_on_service_port(s.render, forward["internalPort"])
    assert entrypoint == "public"
    for path in (TS2021_PATH, KEY_PATH, *CLIENT_REQUESTS):
        assert routes_for(s.render, entrypoint, s.headscale_fqdn, path), path
    for path in PRIVATE_REQUESTS:
        assert not routes_for(s.render, entrypoint, s.headscale_fqdn, path), path
    # The /ts2021 route ends at Headscale's listener.
    (rule,) = routes_for(s.render, entrypoint, s.headscale_fqdn, TS2021_PATH)
    problems = backend_problems(s.render, rule, expected_port=listen_port(settings))
    assert problems == []


# --- hop 2: the policy admits the user -----------------------------------------------------------


def tailnet_of(render: Render) -> Tailnet:
    """The policy Headscale loads, plus the routes the router advertises under its key's tag."""
    (tag,) = router_key_tags(render)
    routes = [
        r for r in advertised_routes(router_env(render)) if isinstance(r, ipaddress.IPv4Network)
    ]
    return Tailnet(policy_document(render), {tag: tuple(routes)})


def app_destination(s: Stack, port: int = HTTPS_PORT) -> Destination:
    (address,) = magic_dns_answers(headscale_settings(s.render), s.app_fqdn)
    return Destination(f"{s.app_fqdn}:{port}", ipaddress.IPv4Network(address), (port, port))


def users_meant_to_reach(s: Stack, target: str) -> tuple[set[str], set[str]]:
    """Who the fixture's policy tests say reaches `target` ('grafana:443') and who must not,
    plus the admin, who reaches every private app (README, "Who reaches what")."""
    accept = {f"{s.config.remote_access.admin_user}@"}
    deny: set[str] = set()
    for test in s.raw["remoteAccess"]["policy"].get("tests", []):
        if target in test.get("accept", []):
            accept.add(test["src"])
        if target in test.get("deny", []):
            deny.add(test["src"])
    return accept, deny


@pytest.mark.parametrize("name", STACKS)
def test_hop_2_the_policy_admits_the_user_to_the_app_and_no_one_unnamed(name: str) -> None:
    """config/access.py evaluates the rendered policy with Headscale 0.28's semantics
    (juanfont/headscale@v0.28.0:hscontrol/policy/v2 filter.go, policyutil/reduce.go,
    policy.go NodeCanApproveRoute; replayed against Headscale's own tests in
    tests/config/test_access.py). Evaluated here on the file Headscale actually loads, at the
    address MagicDNS gives the app, through the routes the router advertises."""
    s = stack(name)
    tailnet = tailnet_of(s.render)
    destination = app_destination(s)
    accept, deny = users_meant_to_reach(s, f"{s.app['name']}:{HTTPS_PORT}")
    assert len(accept) >= 2, "the fixture names a user besides the admin"
    for user in sorted(accept):
        verdict = tailnet.reach(Principal(user), destination)
        assert verdict.status == "allow", (user, verdict)
    for user in sorted(deny):
        assert tailnet.reach(Principal(user), destination).status == "deny", user
    assert tailnet.reach(UNNAMED_USER, destination).status == "deny"
    # The host alias an ACL names ('grafana') is the address the name resolves to.
    alias_target, _ = split_destination(f"{s.app['name']}:{HTTPS_PORT}")
    assert tailnet.hosts[alias_target] == destination.network


# --- hop 3: MagicDNS -----------------------------------------------------------------------------


@pytest.mark.parametrize("name", STACKS)
def test_hop_3_magic_dns_answers_the_app_name_with_traefiks_ip(name: str) -> None:
    """juanfont/headscale@v0.28.0:hscontrol/types/config.go (`dns.extra_records` as a list of
    {name, type, value}); tailscale/tailscale@v1.102.3:ipn/ipnlocal/node_backend.go (records to
    host entries) and net/dns/manager.go `compileConfig` (whether the OS asks quad-100 at all);
    see `magic_dns_answers` and `quad100_is_asked`."""
    s = stack(name)
    settings = headscale_settings(s.render)
    answers = magic_dns_answers(settings, s.app_fqdn)
    assert len(answers) == 1, answers
    assert quad100_is_asked(settings, s.app_fqdn)
    annotations = helm_values(traefik_release(s.render))["service"]["annotations"]
    assert answers == metallb_requested_ips(annotations)
    # Headscale's own name stays on public DNS: the tunnel must not depend on itself.
    assert magic_dns_answers(settings, s.headscale_fqdn) == []


def test_the_magic_dns_port_skips_what_tailscale_skips() -> None:
    """Guards `magic_dns_answers`: a CNAME-typed or unparsable record is ignored, a trailing dot
    and upper-case keys are read (mapstructure's case-insensitive match)."""
    settings = {
        "dns": {
            "extra_records": [
                {"name": "a.example.", "type": "A", "value": "10.0.0.1"},
                {"Name": "b.example", "Type": "", "Value": "10.0.0.2"},
                {"name": "c.example", "type": "CNAME", "value": "10.0.0.3"},
                {"name": "d.example", "type": "A", "value": "not-an-ip"},
            ]
        }
    }
    assert magic_dns_answers(settings, "a.example") == [ipaddress.IPv4Address("10.0.0.1")]
    assert magic_dns_answers(settings, "b.example") == [ipaddress.IPv4Address("10.0.0.2")]
    assert magic_dns_answers(settings, "c.example") == []
    assert magic_dns_answers(settings, "d.example") == []
    outside = {"dns": {"magic_dns": True, "base_domain": "ts.example", "override_local_dns": False}}
    assert not quad100_is_asked(outside, "grafana.example")
    assert quad100_is_asked(outside, "x.ts.example")


# --- hop 4: MetalLB ------------------------------------------------------------------------------


@pytest.mark.parametrize("name", STACKS)
def test_hop_4_traefik_requests_that_ip_and_a_pool_holds_it(name: str) -> None:
    """metallb/metallb@v0.16.1:controller/service.go `getDesiredLbIPs` (the annotation, and
    never together with spec.loadBalancerIP) and `allocateIPs` (the IP must be assignable from a
    pool, and from the pool named by `metallb.io/address-pool` when set);
    internal/config/config.go `ParseCIDR` for the pool's ranges. The pool's advertisement is
    tests/components/platform/test_metallb.py's."""
    s = stack(name)
    service = helm_values(traefik_release(s.render))["service"]
    annotations = service["annotations"]
    assert "loadBalancerIP" not in (service.get("spec") or {})
    (requested,) = metallb_requested_ips(annotations)
    assert requested == ipaddress.IPv4Address(s.raw["network"]["traefikIp"])
    pool = pool_holding(s.render, requested)
    assert pool is not None, f"no IPAddressPool holds {requested}"
    wanted_pool = annotations.get("metallb.io/address-pool")
    assert wanted_pool in (None, pool.input("metadata.name"))
    configured = {p["name"] for p in s.raw["network"]["addressPools"]}
    assert pool.input("metadata.name") in configured


def test_the_pool_port_reads_ranges_and_cidrs_as_metallb_does() -> None:
    """Guards `metallb_pool_networks`: a range is summarised, its ends included."""
    pool = dataclasses.replace(
        homelab_render().one(POOL),
        inputs={"spec": {"addresses": ["10.0.0.10 - 10.0.0.12", "10.1.0.0/30"]}},
    )
    networks = metallb_pool_networks(pool)
    inside = [ipaddress.ip_address(a) for a in ("10.0.0.10", "10.0.0.12", "10.1.0.3")]
    outside = [ipaddress.ip_address(a) for a in ("10.0.0.9", "10.0.0.13", "10.1.0.4")]
    assert all(any(a in n for n in networks) for a in inside)
    assert not any(any(a in n for n in networks) for a in outside)


# --- hop 5: the subnet router --------------------------------------------------------------------


@pytest.mark.parametrize("name", STACKS)
def test_hop_5_the_router_advertises_an_approved_route_to_traefiks_ip(name: str) -> None:
    """TS_ROUTES as tailscale parses it (`advertised_routes`); the route is auto-approved when an
    autoApprovers prefix holding it names the router's tag (juanfont/headscale@v0.28.0:
    hscontrol/policy/v2/policy.go `NodeCanApproveRoute`, ported in config/access.py
    `approved_routes`). The tag is the pre-auth key's and the registration requests none
    (the rule itself is tests/components/remote_access/test_subnet_router.py's)."""
    s = stack(name)
    env = router_env(s.render)
    traefik_ip = ipaddress.IPv4Address(s.raw["network"]["traefikIp"])
    carrying = [r for r in advertised_routes(env) if traefik_ip in r]
    assert carrying, f"TS_ROUTES {env.get('TS_ROUTES')} does not cover {traefik_ip}"
    approved = tailnet_of(s.render).approved_routes()
    assert any(r in approved for r in carrying), (carrying, approved)
    up = containerboot_up_args(env)
    assert requested_tags(up) == []
    assert headscale_accepts_pre_auth_key_registration(requested_tags(up))
    assert (
        go_flag(str(env.get("TS_EXTRA_ARGS", "")).split(), "login-server")
        == (headscale_settings(s.render)["server_url"])
    )


# --- hop 6: the allowlist admits the router's source ----------------------------------------------


def private_rule(s: Stack) -> dict[str, Any]:
    """The rule serving the app on the entrypoint a tailnet client's port 443 reaches."""
    entrypoint = entrypoint_on_service_port(s.render, HTTPS_PORT)
    assert entrypoint is not None
    (rule,) = routes_for(s.render, entrypoint, s.app_fqdn, "/")
    return rule


def middlewares_of(render: Render, rule: Mapping[str, Any]) -> list[ResourceRecord | None]:
    namespace = rule["_record"].input("metadata.namespace")
    return [
        named(render, MIDDLEWARE, m.get("namespace", namespace), m["name"])
        for m in rule.get("middlewares", [])
    ]


@pytest.mark.parametrize(
    ("name", "stun_ip"),
    [("homelab", "fixture"), ("lab", "fixture"), ("homelab", None)],
    ids=["homelab", "lab", "homelab-stun-on-traefiks-ip"],
)
def test_hop_6_the_allowlist_admits_where_the_routers_connection_comes_from(
    name: str, stun_ip: str | None
) -> None:
    """See `router_connection_sources` (tailscale@v1.102.3 wgengine/netstack/netstack.go
    forwardTCP; kube-proxy's external-traffic chains) and `allowlist_admits`
    (traefik@v3.7.9 ipallowlist). Run for `Local` (STUN on its own IP, the fixtures) and for
    `Cluster` (STUN sharing Traefik's IP), which masquerades to the node."""
    if stun_ip is None:
        raw = stack_raw_config(name)
        remote = {**raw["remoteAccess"], "derp": {**raw["remoteAccess"]["derp"], "stunIp": None}}
        s = stack(name, render_stack(name, overrides={"remoteAccess": remote}))
    else:
        s = stack(name)
    env = router_env(s.render)
    assert env.get("TS_USERSPACE") == "true", "the netstack path is what this hop assumes"
    middlewares = middlewares_of(s.render, private_rule(s))
    assert middlewares
    assert all(m is not None for m in middlewares)
    allowlists = [m for m in middlewares if m is not None and "ipAllowList" in m.input("spec")]
    assert allowlists, "a private app is behind an allowlist"
    sources = router_connection_sources(s.render, s.config)
    assert all(pod_net in sources for pod_net in cluster_pod_networks(s.render))
    for allowlist in allowlists:
        for source in sources:
            assert allowlist_admits(allowlist, source), (allowlist.name, source)


# --- hop 7: TLS ------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", STACKS)
def test_hop_7_tls_comes_from_the_awaited_wildcard_in_the_routes_namespace(name: str) -> None:
    """Traefik serves an IngressRoute's `tls.secretName` from the route's namespace; the
    Certificate's dnsNames must cover the host (`certificate_covers`); pulumi-kubernetes waits
    for `condition=Ready` (parse_wait_for, pulumi/pulumi-kubernetes@v4.32.0:
    provider/pkg/metadata/overrides.go); Reflector mirrors the Secret into the route's namespace
    (`reflector_mirrors_into`); the app's route and the router (which logs in over TLS,
    tailscale@v1.102.3:net/tlsdial/tlsdial.go) wait for the Certificate."""
    s = stack(name)
    (certificate,) = s.render.by_type(CERTIFICATE)
    rule = private_rule(s)
    route: ResourceRecord = rule["_record"]
    assert route.input("spec.tls.secretName") == certificate.input("spec.secretName")
    dns_names = certificate.input("spec.dnsNames")
    assert f"*.{s.raw['domain']}" in dns_names
    assert certificate_covers(dns_names, s.app_fqdn)
    assert certificate_covers(dns_names, s.headscale_fqdn)
    (condition,) = parse_wait_for(certificate.input("metadata.annotations")["pulumi.com/waitFor"])
    assert (condition.kind, condition.condition_type.lower(), condition.status) == (
        "condition",
        "ready",
        "True",
    )
    annotations = certificate.input("spec.secretTemplate.annotations")
    assert reflector_mirrors_into(annotations, route.input("metadata.namespace"))
    assert route.input("metadata.namespace") == s.app["namespace"]
    # Headscale's public route serves the same Secret to joining devices.
    (control,) = routes_for(s.render, "public", s.headscale_fqdn, TS2021_PATH)
    control_route: ResourceRecord = control["_record"]
    assert control_route.input("spec.tls.secretName") == certificate.input("spec.secretName")
    assert reflector_mirrors_into(annotations, control_route.input("metadata.namespace"))
    router = child(s.render, ROUTER, DEPLOYMENT, "subnet-router-deployment")
    for waiting in (route, control_route, router):
        assert certificate.urn in transitive_dependencies(s.render, waiting), waiting.name


def test_the_grafana_chart_port_is_of_the_pinned_chart() -> None:
    """`grafana_chart_service` mirrors the templates of one chart version; a bump fails here
    until they are re-read at the new tag."""
    assert pins.GRAFANA_CHART_VERSION == GRAFANA_CHART_PORTED_FROM
    for name in STACKS:
        release = _render(name).one(RELEASE, "apps-grafana")
        assert release.input("version") == GRAFANA_CHART_PORTED_FROM


def test_the_tls_ports_refuse_what_their_upstreams_refuse() -> None:
    """Guards `certificate_covers` (one label only) and `reflector_mirrors_into` (whole-name
    regex match, both flags needed)."""
    assert certificate_covers(["*.example.com"], "grafana.example.com")
    assert not certificate_covers(["*.example.com"], "a.grafana.example.com")
    assert not certificate_covers(["*.example.com"], "example.com")
    on = {REFLECTOR + "reflection-allowed": "true", REFLECTOR + "reflection-auto-enabled": "true"}
    assert reflector_mirrors_into(on, "anything")
    lists = {
        REFLECTOR + "reflection-allowed-namespaces": "monitoring, media-[0-9]+",
        REFLECTOR + "reflection-auto-namespaces": "monitoring,media-[0-9]+",
    }
    assert reflector_mirrors_into({**on, **lists}, "media-42")
    assert not reflector_mirrors_into({**on, **lists}, "monitoring-old")
    assert not reflector_mirrors_into(
        {**lists, REFLECTOR + "reflection-allowed": "true"}, "monitoring"
    )


# --- the whole path ------------------------------------------------------------------------------


def walk(s: Stack) -> str:
    """Follow one request from the app's name to its pods; raises BrokenHopError naming the hop.
    Returns the path taken, for the reader of a passing run."""
    settings = headscale_settings(s.render)
    # host -> IP
    answers = magic_dns_answers(settings, s.app_fqdn)
    hop("MagicDNS", len(answers) == 1, f"{s.app_fqdn} resolves to {answers} over MagicDNS")
    hop("MagicDNS", quad100_is_asked(settings, s.app_fqdn), "the OS never asks 100.100.100.100")
    (ip,) = answers
    # IP -> Traefik's Service -> pool
    service = helm_values(traefik_release(s.render))["service"]
    requested = metallb_requested_ips(service["annotations"])
    hop("Traefik's LoadBalancer IP", ip in requested, f"Traefik requests {requested}, not {ip}")
    pool = pool_holding(s.render, ip)
    hop("MetalLB pool", pool is not None, f"no IPAddressPool holds {ip}")
    assert pool is not None
    wanted_pool = service["annotations"].get("metallb.io/address-pool")
    hop(
        "MetalLB pool",
        wanted_pool in (None, pool.input("metadata.name")),
        f"{ip} is in pool {pool.input('metadata.name')}, the Service asks for {wanted_pool}",
    )
    # the tunnel: the router's approved route, the user admitted
    tailnet = tailnet_of(s.render)
    approved = tailnet.approved_routes()
    hop(
        "subnet route",
        any(ip in r for r in approved),
        f"no approved route carries {ip} (approved: {approved})",
    )
    for user in sorted(users_meant_to_reach(s, f"{s.app['name']}:{HTTPS_PORT}")[0]):
        verdict = tailnet.reach(Principal(user), app_destination(s))
        hop("ACL policy", verdict.status == "allow", f"{user} is not admitted: {verdict}")
    # route on the entrypoint port 443 reaches
    entrypoint = entrypoint_on_service_port(s.render, HTTPS_PORT)
    hop("Traefik entrypoint", entrypoint is not None, "Traefik's Service has no port 443")
    assert entrypoint is not None
    rules = routes_for(s.render, entrypoint, s.app_fqdn, "/")
    hop("IngressRoute", len(rules) == 1, f"{len(rules)} routes on {entrypoint} match {s.app_fqdn}")
    (rule,) = rules
    route: ResourceRecord = rule["_record"]
    (certificate,) = s.render.by_type(CERTIFICATE)
    hop(
        "TLS",
        route.input("spec.tls.secretName") == certificate.input("spec.secretName")
        and certificate_covers(certificate.input("spec.dnsNames"), s.app_fqdn)
        and reflector_mirrors_into(
            certificate.input("spec.secretTemplate.annotations"), route.input("metadata.namespace")
        )
        and certificate.urn in transitive_dependencies(s.render, route),
        f"route {route.name} does not serve the awaited wildcard in its namespace",
    )
    # middleware
    middlewares = middlewares_of(s.render, rule)
    hop("middleware", all(m is not None for m in middlewares), "a named Middleware is missing")
    crd_provider = helm_coalesce(chart_defaults("traefik"), helm_values(traefik_release(s.render)))[
        "providers"
    ]["kubernetesCRD"]
    route_namespace = route.input("metadata.namespace")
    sources = router_connection_sources(s.render, s.config)
    for middleware in middlewares:
        assert middleware is not None
        # traefik/traefik@v3.7.9:pkg/provider/kubernetes/crd/kubernetes.go `resolveReference`:
        # a reference into another namespace needs allowCrossNamespace, else the route is
        # dropped (kubernetes_http.go: "Failed to create middleware keys", continue).
        hop(
            "middleware",
            middleware.input("metadata.namespace") == route_namespace
            or bool(crd_provider.get("allowCrossNamespace")),
            f"{middleware.name} is in another namespace and allowCrossNamespace is off",
        )
        if "ipAllowList" in middleware.input("spec"):
            refused = [str(src) for src in sources if not allowlist_admits(middleware, src)]
            hop("middleware", not refused, f"{middleware.name} refuses the router's {refused}")
    hop(
        "middleware",
        any(m is not None and "ipAllowList" in m.input("spec") for m in middlewares),
        "the private app has no allowlist",
    )
    # backend Service -> the app's pods
    (backend,) = rule["services"]
    release = next(
        (
            r
            for r in s.render.by_type(RELEASE)
            if r.input("namespace") == route.input("metadata.namespace")
            and r.input("chart") == GRAFANA_CHART_NAME
        ),
        None,
    )
    hop("backend Service", release is not None, "no Grafana release in the route's namespace")
    assert release is not None
    chart = grafana_chart_service(release)
    hop(
        "backend Service",
        chart.enabled
        and (backend["name"], backend.get("namespace", chart.namespace), backend["port"])
        == (chart.name, chart.namespace, chart.port),
        f"the route sends to {backend}, the chart serves {chart.namespace}/{chart.name}:{chart.port}",
    )
    hop(
        "app pods",
        all(chart.pod_labels.get(k) == v for k, v in chart.selector.items()),
        f"selector {chart.selector} does not match pod labels {chart.pod_labels}",
    )
    hop(
        "app pods",
        chart.target_port in chart.container_ports,
        f"no container port named {chart.target_port}",
    )
    traefik_namespace = traefik_release(s.render).input("namespace")
    for policy in policies_selecting(s.render, chart.namespace, chart.pod_labels):
        hop(
            "app pods",
            admits(
                policy,
                protocol="TCP",
                port=chart.container_ports[chart.target_port],
                source_namespace=traefik_namespace,
            ),
            f"NetworkPolicy {policy.name} keeps Traefik out",
        )
    return (
        f"{s.app_fqdn} -> {ip} (pool {pool.input('metadata.name')}) -> {entrypoint} route "
        f"{route.name} -> {chart.namespace}/{chart.name}:{chart.port} -> pods {chart.selector}"
    )


@pytest.mark.parametrize("name", STACKS)
def test_the_request_reaches_the_app_end_to_end(name: str) -> None:
    s = stack(name)
    try:
        path = walk(s)
    except BrokenHopError as broken:
        pytest.fail(str(broken))
    assert path.startswith(s.app_fqdn)


def _replace_inputs(
    render: Render,
    match: Callable[[ResourceRecord], bool],
    change: Callable[[dict[str, Any]], None],
) -> Render:
    """A copy of `render` with the inputs of the records `match` selects changed in place."""
    resources = []
    for record in render.resources:
        if match(record):
            inputs = json.loads(json.dumps(dict(record.inputs)))
            change(inputs)
            record = dataclasses.replace(record, inputs=inputs)
        resources.append(record)
    return dataclasses.replace(render, resources=resources)


def _set(path: str | tuple[str, ...], value: Any) -> Callable[[dict[str, Any]], None]:
    """Set the input at a dotted path (or at these keys, for a key holding a dot)."""
    parts = path.split(".") if isinstance(path, str) else list(path)

    def change(inputs: dict[str, Any]) -> None:
        target: Any = inputs
        for part in parts[:-1]:
            target = target[int(part)] if isinstance(target, list) else target.setdefault(part, {})
        target[parts[-1]] = value

    return change


def _is(type_token: str, name: str) -> Callable[[ResourceRecord], bool]:
    return lambda r: r.type == type_token and r.name == name


BREAKAGES: dict[str, tuple[Callable[[ResourceRecord], bool], Callable[[dict[str, Any]], None]]] = {
    "MagicDNS": (
        _is(CONFIG_MAP, "headscale-config"),
        lambda i: i["data"].update(
            {
                "config.yaml": i["data"]["config.yaml"].replace(
                    "extra_records:", "extra_records_off:"
                )
            }
        ),
    ),
    "MetalLB pool": (lambda r: r.type == POOL, _set("spec.addresses", ["10.9.9.0/30"])),
    "subnet route": (
        _is(CONFIG_MAP, "headscale-config"),
        lambda i: i["data"].update(
            {
                "policy.json": json.dumps(
                    {**json.loads(i["data"]["policy.json"]), "autoApprovers": {}}
                )
            }
        ),
    ),
    "middleware": (
        _is(MIDDLEWARE, "traefik-private-only"),
        _set("spec.ipAllowList.sourceRange", ["192.168.0.0/24"]),
    ),
    "middleware (cross-namespace refused)": (
        _is(RELEASE, "traefik"),
        _set("values.providers.kubernetesCRD.allowCrossNamespace", False),
    ),
    "ACL policy": (
        _is(CONFIG_MAP, "headscale-config"),
        lambda i: i["data"].update(
            {
                "policy.json": json.dumps(
                    {**json.loads(i["data"]["policy.json"]), "acls": [], "hosts": {}}
                )
            }
        ),
    ),
    "Traefik's LoadBalancer IP": (
        _is(RELEASE, "traefik"),
        _set(("values", "service", "annotations", "metallb.io/loadBalancerIPs"), "192.168.0.230"),
    ),
    "IngressRoute": (
        _is(INGRESS_ROUTE, "apps-grafana-route"),
        _set("spec.routes.0.match", "Host(`elsewhere.example`)"),
    ),
    "TLS": (lambda r: r.type == CERTIFICATE, _set("spec.dnsNames", ["only.example"])),
    "app pods": (
        _is(RELEASE, "apps-grafana"),
        _set("values.podLabels", {"app.kubernetes.io/name": "other"}),
    ),
    "backend Service": (_is(RELEASE, "apps-grafana"), _set("values.service.port", 8080)),
}


@pytest.mark.parametrize("broken", sorted(BREAKAGES))
def test_the_walk_names_the_hop_that_breaks(broken: str) -> None:
    """Guards the end-to-end walk: each breakage of one record fails it at that hop."""
    match, change = BREAKAGES[broken]
    expected_hop = broken.partition(" (")[0]
    s = stack("homelab")
    damaged = stack("homelab", _replace_inputs(s.render, match, change))
    with pytest.raises(BrokenHopError) as raised:
        walk(damaged)
    assert raised.value.hop == expected_hop, str(raised.value)

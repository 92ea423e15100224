"""Traefik on its fixed LAN IP: the one HTTPS front door of the homelab.

How private hosts are kept off the internet (two fences), and which client address Traefik sees:

1. Entrypoints. Internet traffic reaches Traefik only through the router's port-forward, and that
   forward targets the `public` entrypoint (LoadBalancer port 8443; the stack exports it as
   `routerPortForwardHttps`). Only public hosts (Headscale) have routes there; private hosts are
   routed on `websecure` (443) only, which LAN and VPN clients use. This fence needs no client IP.
2. The ipAllowList middleware on every private route admits the LAN, the tailnet ranges and the pod
   CIDR. VPN clients never arrive from a tailnet address: the subnet router's userspace netstack
   (and kernel mode, which SNATs subnet routes by default) opens each connection from the router
   pod's own IP, so the pod CIDR must be admitted; the tailnet ranges cover a router without SNAT.

   `externalTrafficPolicy: Local` keeps outside clients' addresses (LAN clients show their LAN IP,
   internet clients their public one), so the allowlist is a real second fence. But MetalLB shares
   one IP between two Services only if both use `Cluster` or select the same pods (components.md 5),
   and Traefik and the STUN server are different pods. So while STUN shares Traefik's IP (the
   default: `remoteAccess.derp.stunIp` unset) the policy has to be `Cluster`; kube-proxy then
   masquerades every outside client to a node address inside the pod CIDR and the allowlist can no
   longer tell LAN from internet: fence 1 alone keeps private hosts private. `Cluster` also hides
   the client address from the STUN server (its mapped-address answer becomes a node address), so
   setting a separate `stunIp` is better on both counts; the policy follows it automatically.

CRDs: Helm installs a chart's `crds/` folder on first install only and never upgrades it, so a
chart bump would leave old CRDs behind. The separate `traefik-crds` chart is deprecated since
chart 38.0.2 and removed before 41.x (traefik/traefik-helm-chart@v41.3.0:README.md; its last
release, crds_v1.18.0, lacks fields 41.3.0's CRDs have), so the CRDs are applied server-side from
the chart's own `crds/` folder at the pinned chart tag, as upstream's README upgrades them, and
the Release skips them (`skipCrds`). A chart bump therefore brings its CRDs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Final, Literal

import pulumi
import pulumi_kubernetes as k8s

from components.platform.cert_manager import WildcardCertificate
from components.platform.metallb import LoadBalancerRequest
from components.shared.common import TAILNET_IPV4, TAILNET_IPV6, TRAEFIK_NAMESPACE, ClusterAccess
from components.shared.kube import CRITICAL_PRIORITY_CLASS, HelmChart, helm_release, namespace
from components.shared.kubectl import apply_crds
from config import networks, pins
from config.views import FrontDoor

CHART: Final = HelmChart(pins.TRAEFIK_CHART_REPO, "traefik", pins.TRAEFIK_CHART_VERSION)
# Talos' pod network (config/networks.py): where the subnet router's connections come from.
TALOS_POD_CIDR: Final = str(networks.TALOS_POD_SUBNET)

WEB_ENTRYPOINT: Final = "web"
WEBSECURE_ENTRYPOINT: Final = "websecure"
PUBLIC_ENTRYPOINT: Final = "public"
# The `public` entrypoint: the container port is free in the chart (8000/8443/8080/9100 are
# taken), the LoadBalancer port is what the router's internet port-forward (WAN 443) targets.
PUBLIC_CONTAINER_PORT: Final = 9443
PUBLIC_EXPOSED_PORT: Final = 8443
PRIVATE_MIDDLEWARE: Final = "private-only"
# The chart's CRD files at the pinned chart's tag. Only the traefik.io group: the hub.traefik.io
# ones serve Traefik Hub, which is off (`hub.enabled` unset).
CRDS_BASE_URL: Final = (
    "https://raw.githubusercontent.com/traefik/traefik-helm-chart/"
    f"v{pins.TRAEFIK_CHART_VERSION}/traefik/crds/"
)
CRD_FILES: Final = (
    "traefik.io_ingressroutes.yaml",
    "traefik.io_ingressroutetcps.yaml",
    "traefik.io_ingressrouteudps.yaml",
    "traefik.io_middlewares.yaml",
    "traefik.io_middlewaretcps.yaml",
    "traefik.io_serverstransports.yaml",
    "traefik.io_serverstransporttcps.yaml",
    "traefik.io_tlsoptions.yaml",
    "traefik.io_tlsstores.yaml",
    "traefik.io_traefikservices.yaml",
)
# Two replicas once pods can go to two nodes: one survives a node drain or reboot.
HA_REPLICAS: Final = 2
APP_NAME_LABEL: Final = "app.kubernetes.io/name"


def crd_name(file_name: str) -> str:
    """`traefik.io_ingressroutes.yaml` -> `ingressroutes.traefik.io` (controller-gen's naming)."""
    group, _, plural = file_name.removesuffix(".yaml").partition("_")
    return f"{plural}.{group}"


@dataclass(frozen=True)
class TraefikArgs:
    access: ClusterAccess
    front_door: FrontDoor
    load_balancer: LoadBalancerRequest
    wildcard: WildcardCertificate
    # The PriorityClass of Traefik's pods.
    priority_class: str = CRITICAL_PRIORITY_CLASS


@dataclass(frozen=True)
class MiddlewareRef:
    name: str
    namespace: str


@dataclass(frozen=True)
class TraefikRouting:
    """What a component needs to publish a host through Traefik."""

    namespace: str
    load_balancer_ip: str
    websecure_entrypoint: str
    private_middleware: MiddlewareRef
    wildcard: WildcardCertificate
    ready: list[pulumi.Resource]
    # What a Traefik custom resource (IngressRoute, Middleware) needs: its CRD.
    crds: list[pulumi.Resource] = field(default_factory=list)
    # The entrypoint the router's internet port-forward reaches; only public hosts route on it.
    public_entrypoint: str = PUBLIC_ENTRYPOINT
    # Its LoadBalancer port: the internal target of the router's WAN 443 forward.
    public_port: int = PUBLIC_EXPOSED_PORT
    # The address ranges the private middleware admits.
    private_source_ranges: tuple[str, ...] = field(default_factory=tuple)
    # Traefik's Service policy; a Service sharing its IP (STUN) must use the same (MetalLB).
    external_traffic_policy: Literal["Cluster", "Local"] = "Local"


def external_traffic_policy(front_door: FrontDoor) -> Literal["Cluster", "Local"]:
    """`Local` keeps client IPs; sharing an IP with another Service's pods needs `Cluster`."""
    return "Cluster" if front_door.shares_ip_with_stun else "Local"


def private_source_ranges(front_door: FrontDoor) -> tuple[str, ...]:
    """Who may reach private hosts: the LAN, the tailnet, and pods (the subnet router)."""
    return tuple(sorted({str(front_door.lan_cidr), TAILNET_IPV4, TAILNET_IPV6, TALOS_POD_CIDR}))


def availability_values(front_door: FrontDoor) -> dict[str, Any]:
    """One replica on a one-node cluster; otherwise two, spread over nodes, with a budget that
    lets a drain evict one at a time (the chart's `podDisruptionBudget`)."""
    if front_door.schedulable_nodes < HA_REPLICAS:
        return {"deployment": {"replicas": 1}}
    return {
        "deployment": {"replicas": HA_REPLICAS},
        "podDisruptionBudget": {"enabled": True, "maxUnavailable": 1},
        # ScheduleAnyway, not DoNotSchedule: a cordoned node still counts in the skew, so a hard
        # constraint would leave the evicted replica Pending during a two-node drain.
        "topologySpreadConstraints": [
            {
                "labelSelector": {
                    "matchLabels": {APP_NAME_LABEL: '{{ template "traefik.name" . }}'}
                },
                "maxSkew": 1,
                "topologyKey": "kubernetes.io/hostname",
                "whenUnsatisfiable": "ScheduleAnyway",
            }
        ],
    }


def chart_values(
    front_door: FrontDoor,
    load_balancer: LoadBalancerRequest,
    wildcard: WildcardCertificate,
    priority_class: str = CRITICAL_PRIORITY_CLASS,
) -> dict[str, Any]:
    """Helm values (the chart's schema rejects unknown top-level keys, components.md 6 #1)."""
    tls = {"tls": {"enabled": True}}
    return {
        **availability_values(front_door),
        # No dashboard at all: nothing to expose by mistake.
        "api": {"dashboard": False},
        "ingressRoute": {"dashboard": {"enabled": False}},
        "ingressClass": {"enabled": True, "isDefaultClass": True, "name": "traefik"},
        "providers": {
            "kubernetesCRD": {
                "enabled": True,
                # Routes in app namespaces use the one allowlist Middleware in Traefik's namespace.
                "allowCrossNamespace": True,
                # Only Traefik's namespace may define the default TLSStore (Traefik >= 3.7.11).
                "defaultTLSResourcesNamespace": TRAEFIK_NAMESPACE,
            },
            "kubernetesIngress": {"enabled": True, "publishedService": {"enabled": True}},
        },
        # Traefik is the front door: above ordinary pods when a node runs short of memory.
        "priorityClassName": priority_class,
        "resources": {"requests": {"cpu": "50m", "memory": "64Mi"}},
        "ports": {
            WEB_ENTRYPOINT: {
                "http": {
                    "redirections": {
                        "entryPoint": {
                            "to": WEBSECURE_ENTRYPOINT,
                            "scheme": "https",
                            "permanent": True,
                        }
                    }
                }
            },
            # The only default entrypoint: with none marked, Traefik makes every entrypoint a
            # default, `public` included, so a route naming no entrypoint would be on the
            # internet (cmd/traefik/traefik.go getDefaultsEntrypoints, v3.7).
            WEBSECURE_ENTRYPOINT: {"http": tls, "asDefault": True},
            PUBLIC_ENTRYPOINT: {
                "port": PUBLIC_CONTAINER_PORT,
                "exposedPort": PUBLIC_EXPOSED_PORT,
                "expose": {"default": True},
                "protocol": "TCP",
                "http": tls,
            },
        },
        "service": {
            "annotations": dict(load_balancer.annotations),
            "spec": {"externalTrafficPolicy": external_traffic_policy(front_door)},
        },
        # The wildcard certificate for every host without its own (the Secret is reflected into
        # this namespace, components.md 6 "Default certificate").
        "tlsStore": {"default": {"defaultCertificate": {"secretName": wildcard.secret_name}}},
    }


class Traefik(pulumi.ComponentResource):
    release: k8s.helm.v3.Release
    # The allowlist every private route names.
    private_middleware: k8s.apiextensions.CustomResource
    routing: TraefikRouting
    load_balancer_ip: pulumi.Output[str]
    public_endpoint: pulumi.Output[str]

    def __init__(
        self, name: str, args: TraefikArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("homelab:platform:Traefik", name, None, opts)
        front_door = args.front_door
        if TRAEFIK_NAMESPACE not in args.wildcard.namespaces:
            raise ValueError(
                f"the wildcard Secret is not reflected into {TRAEFIK_NAMESPACE!r}; "
                "Traefik's default certificate needs it there"
            )
        if front_door.shares_ip_with_stun:
            pulumi.log.warn(
                "STUN shares Traefik's IP, so Traefik uses externalTrafficPolicy Cluster and cannot "
                "see client IPs: only the 'public' entrypoint keeps private hosts off the internet. "
                "Set homelab:remoteAccess.derp.stunIp to a free pool address to fix both.",
                resource=self,
            )
        ns = namespace(f"{name}-namespace", TRAEFIK_NAMESPACE, access=args.access, parent=self)
        # Cluster-scoped: needs nothing but the cluster.
        crds = apply_crds(
            f"{name}-crds",
            [CRDS_BASE_URL + file for file in CRD_FILES],
            [crd_name(file) for file in CRD_FILES],
            kubeconfig=args.access.kubeconfig,
            parent=self,
        )
        self.release = helm_release(
            name,
            access=args.access,
            parent=self,
            chart=CHART,
            namespace=TRAEFIK_NAMESPACE,
            values=chart_values(front_door, args.load_balancer, args.wildcard, args.priority_class),
            # Not on the certificate: Traefik watches Secrets and switches from its self-signed
            # default to the wildcard once issued and reflected, so the front door need not wait
            # for (or fail with) ACME. Its LoadBalancer IP does need MetalLB's pool, and its
            # TLSStore the CRDs.
            depends_on=[ns, crds, *args.load_balancer.depends_on],
            skip_crds=True,
        )
        sources = private_source_ranges(front_door)
        self.private_middleware = k8s.apiextensions.CustomResource(
            f"{name}-{PRIVATE_MIDDLEWARE}",
            api_version="traefik.io/v1alpha1",
            kind="Middleware",
            metadata=k8s.meta.v1.ObjectMetaArgs(
                name=PRIVATE_MIDDLEWARE, namespace=TRAEFIK_NAMESPACE
            ),
            # Default ipStrategy = the connection's remote address: X-Forwarded-For is never trusted.
            spec={"ipAllowList": {"sourceRange": list(sources)}},
            # Only its CRD: the API accepts the object before Traefik runs, and Traefik reads it
            # when it starts.
            opts=args.access.opts(self, depends_on=[crds]),
        )
        self.routing = TraefikRouting(
            namespace=TRAEFIK_NAMESPACE,
            load_balancer_ip=args.load_balancer.ip,
            websecure_entrypoint=WEBSECURE_ENTRYPOINT,
            private_middleware=MiddlewareRef(PRIVATE_MIDDLEWARE, TRAEFIK_NAMESPACE),
            wildcard=args.wildcard,
            # Routes and Middlewares need their CRDs, nothing more: not the Release (Traefik
            # loads them whenever it starts) nor the allowlist Middleware (a route naming a
            # missing middleware is refused by Traefik, "middleware ... does not exist",
            # traefik/traefik@v3.7.9:pkg/server/middleware/middlewares.go, so it fails closed
            # for the second it takes to create).
            ready=[crds],
            crds=[crds],
            public_entrypoint=PUBLIC_ENTRYPOINT,
            public_port=PUBLIC_EXPOSED_PORT,
            private_source_ranges=sources,
            external_traffic_policy=external_traffic_policy(front_door),
        )
        self.load_balancer_ip = pulumi.Output.from_input(args.load_balancer.ip)
        self.public_endpoint = pulumi.Output.from_input(
            f"{args.load_balancer.ip}:{PUBLIC_EXPOSED_PORT}"
        )
        self.register_outputs(
            {"loadBalancerIp": self.load_balancer_ip, "publicEndpoint": self.public_endpoint}
        )

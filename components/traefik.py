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
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Final, Literal

import pulumi
import pulumi_kubernetes as k8s

from components.cert_manager import WildcardCertificate
from components.common import TAILNET_IPV4, TAILNET_IPV6, TRAEFIK_NAMESPACE, ClusterAccess
from components.kube import HelmChart, helm_release, namespace
from components.metallb import LoadBalancerRequest
from config import pins
from config.model import HomelabConfig

CHART: Final = HelmChart(pins.TRAEFIK_CHART_REPO, "traefik", pins.TRAEFIK_CHART_VERSION)
# Talos' default pod CIDR (components.md 1.3): where the subnet router's connections come from.
TALOS_POD_CIDR: Final = "10.244.0.0/16"

WEB_ENTRYPOINT: Final = "web"
WEBSECURE_ENTRYPOINT: Final = "websecure"
PUBLIC_ENTRYPOINT: Final = "public"
# The `public` entrypoint: the container port is free in the chart (8000/8443/8080/9100 are
# taken), the LoadBalancer port is what the router's internet port-forward (WAN 443) targets.
PUBLIC_CONTAINER_PORT: Final = 9443
PUBLIC_EXPOSED_PORT: Final = 8443
PRIVATE_MIDDLEWARE: Final = "private-only"


@dataclass(frozen=True)
class TraefikArgs:
    access: ClusterAccess
    config: HomelabConfig
    load_balancer: LoadBalancerRequest
    wildcard: WildcardCertificate


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
    # The entrypoint the router's internet port-forward reaches; only public hosts route on it.
    public_entrypoint: str = PUBLIC_ENTRYPOINT
    # Its LoadBalancer port: the internal target of the router's WAN 443 forward.
    public_port: int = PUBLIC_EXPOSED_PORT
    # The address ranges the private middleware admits.
    private_source_ranges: tuple[str, ...] = field(default_factory=tuple)


def traefik_ip_is_shared(config: HomelabConfig) -> bool:
    """Whether the STUN Service shares Traefik's LoadBalancer IP (forcing `Cluster` policy)."""
    return config.remote_access.derp.enabled and config.stun_ip == config.network.traefik_ip


def external_traffic_policy(config: HomelabConfig) -> Literal["Cluster", "Local"]:
    """`Local` keeps client IPs; sharing an IP with another Service's pods needs `Cluster`."""
    return "Cluster" if traefik_ip_is_shared(config) else "Local"


def private_source_ranges(config: HomelabConfig) -> tuple[str, ...]:
    """Who may reach private hosts: the LAN, the tailnet, and pods (the subnet router)."""
    return tuple(sorted({str(config.network.lan_cidr), TAILNET_IPV4, TAILNET_IPV6, TALOS_POD_CIDR}))


def chart_values(
    config: HomelabConfig, load_balancer: LoadBalancerRequest, wildcard: WildcardCertificate
) -> dict[str, Any]:
    """Helm values (the chart's schema rejects unknown top-level keys, components.md 6 #1)."""
    tls = {"tls": {"enabled": True}}
    return {
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
            "spec": {"externalTrafficPolicy": external_traffic_policy(config)},
        },
        # The wildcard certificate for every host without its own (the Secret is reflected into
        # this namespace, components.md 6 "Default certificate").
        "tlsStore": {"default": {"defaultCertificate": {"secretName": wildcard.secret_name}}},
    }


class Traefik(pulumi.ComponentResource):
    routing: TraefikRouting
    load_balancer_ip: pulumi.Output[str]
    public_endpoint: pulumi.Output[str]

    def __init__(
        self, name: str, args: TraefikArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("homelab:platform:Traefik", name, None, opts)
        config = args.config
        if TRAEFIK_NAMESPACE not in args.wildcard.namespaces:
            raise ValueError(
                f"the wildcard Secret is not reflected into {TRAEFIK_NAMESPACE!r}; "
                "Traefik's default certificate needs it there"
            )
        if traefik_ip_is_shared(config):
            pulumi.log.warn(
                "STUN shares Traefik's IP, so Traefik uses externalTrafficPolicy Cluster and cannot "
                "see client IPs: only the 'public' entrypoint keeps private hosts off the internet. "
                "Set homelab:remoteAccess.derp.stunIp to a free pool address to fix both.",
                resource=self,
            )
        ns = namespace(f"{name}-namespace", TRAEFIK_NAMESPACE, access=args.access, parent=self)
        release = helm_release(
            name,
            access=args.access,
            parent=self,
            chart=CHART,
            namespace=TRAEFIK_NAMESPACE,
            values=chart_values(config, args.load_balancer, args.wildcard),
            # Not on the certificate: Traefik watches Secrets and switches from its self-signed
            # default to the wildcard once issued and reflected, so the front door need not wait
            # for (or fail with) ACME. Its LoadBalancer IP does need MetalLB's pool.
            depends_on=[ns, *args.load_balancer.depends_on],
        )
        sources = private_source_ranges(config)
        middleware = k8s.apiextensions.CustomResource(
            f"{name}-{PRIVATE_MIDDLEWARE}",
            api_version="traefik.io/v1alpha1",
            kind="Middleware",
            metadata=k8s.meta.v1.ObjectMetaArgs(
                name=PRIVATE_MIDDLEWARE, namespace=TRAEFIK_NAMESPACE
            ),
            # Default ipStrategy = the connection's remote address: X-Forwarded-For is never trusted.
            spec={"ipAllowList": {"sourceRange": list(sources)}},
            opts=args.access.opts(self, depends_on=[release]),
        )
        self.routing = TraefikRouting(
            namespace=TRAEFIK_NAMESPACE,
            load_balancer_ip=args.load_balancer.ip,
            websecure_entrypoint=WEBSECURE_ENTRYPOINT,
            private_middleware=MiddlewareRef(PRIVATE_MIDDLEWARE, TRAEFIK_NAMESPACE),
            wildcard=args.wildcard,
            ready=[release, middleware],
            public_entrypoint=PUBLIC_ENTRYPOINT,
            public_port=PUBLIC_EXPOSED_PORT,
            private_source_ranges=sources,
        )
        self.load_balancer_ip = pulumi.Output.from_input(args.load_balancer.ip)
        self.public_endpoint = pulumi.Output.from_input(
            f"{args.load_balancer.ip}:{PUBLIC_EXPOSED_PORT}"
        )
        self.register_outputs(
            {"loadBalancerIp": self.load_balancer_ip, "publicEndpoint": self.public_endpoint}
        )

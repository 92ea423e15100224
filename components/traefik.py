"""Traefik on its fixed LAN IP. (Thin until the platform issue.)"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi

from components.cert_manager import WildcardCertificate
from components.common import TRAEFIK_NAMESPACE, ClusterAccess
from components.metallb import LoadBalancerRequest
from config.model import HomelabConfig


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


class Traefik(pulumi.ComponentResource):
    routing: TraefikRouting
    load_balancer_ip: pulumi.Output[str]

    def __init__(
        self, name: str, args: TraefikArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("homelab:platform:Traefik", name, None, opts)
        self.routing = TraefikRouting(
            namespace=TRAEFIK_NAMESPACE,
            load_balancer_ip=args.load_balancer.ip,
            websecure_entrypoint="websecure",
            private_middleware=MiddlewareRef("private-only", TRAEFIK_NAMESPACE),
            wildcard=args.wildcard,
            ready=[],
        )
        self.load_balancer_ip = pulumi.Output.from_input(args.load_balancer.ip)
        self.register_outputs({"loadBalancerIp": self.load_balancer_ip})

"""Headscale + Headplane, MagicDNS, DERP/STUN and the ACL policy. (Thin until remote access.)"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi

from components.common import ClusterAccess
from components.metallb import LoadBalancerRequest
from components.traefik import TraefikRouting
from config.model import HomelabConfig


@dataclass(frozen=True)
class HeadscaleArgs:
    access: ClusterAccess
    config: HomelabConfig
    storage_class: pulumi.Output[str]
    traefik: TraefikRouting
    stun_load_balancer: LoadBalancerRequest


class Headscale(pulumi.ComponentResource):
    server_url: pulumi.Output[str]
    router_auth_key: pulumi.Output[str]

    def __init__(
        self, name: str, args: HeadscaleArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("homelab:remote-access:Headscale", name, None, opts)
        self.server_url = pulumi.Output.from_input(f"https://{args.config.headscale_fqdn}")
        self.router_auth_key = pulumi.Output.secret("")
        self.register_outputs({"serverUrl": self.server_url})

"""MetalLB in L2 mode: real LAN IPs for LoadBalancer Services. (Thin until the platform issue.)"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

import pulumi

from components.common import ClusterAccess
from config.model import Network


@dataclass(frozen=True)
class MetalLBArgs:
    access: ClusterAccess
    network: Network


@dataclass(frozen=True)
class LoadBalancerRequest:
    """What a Service needs to get `ip` from MetalLB: its annotations, and what to wait for."""

    ip: str
    annotations: dict[str, str]
    depends_on: list[pulumi.Resource] = field(default_factory=list)


class MetalLB(pulumi.ComponentResource):
    def __init__(
        self, name: str, args: MetalLBArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("homelab:platform:MetalLB", name, None, opts)
        self._network = args.network
        self.register_outputs({})

    def request_ip(
        self, ip: ipaddress.IPv4Address, *, sharing_key: str | None = None
    ) -> LoadBalancerRequest:
        pool = self._network.pool_for(ip)
        if pool is None:
            raise ValueError(f"{ip} is not inside any MetalLB pool")
        annotations = {"metallb.io/loadBalancerIPs": str(ip), "metallb.io/address-pool": pool.name}
        if sharing_key is not None:
            annotations["metallb.io/allow-shared-ip"] = sharing_key
        return LoadBalancerRequest(ip=str(ip), annotations=annotations)

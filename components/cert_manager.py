"""cert-manager and the DNS-01 wildcard certificate. (Thin until the platform issue.)"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi

from components.common import TRAEFIK_NAMESPACE, ClusterAccess
from config.model import HomelabConfig


@dataclass(frozen=True)
class CertManagerArgs:
    access: ClusterAccess
    config: HomelabConfig
    dns_api_token: pulumi.Output[str]
    reflector: pulumi.Resource


@dataclass(frozen=True)
class WildcardCertificate:
    """The wildcard Secret's name, and every namespace it is mirrored into."""

    secret_name: str
    namespaces: tuple[str, ...]
    ready: list[pulumi.Resource]


class CertManager(pulumi.ComponentResource):
    wildcard: WildcardCertificate

    def __init__(
        self, name: str, args: CertManagerArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("homelab:platform:CertManager", name, None, opts)
        namespaces = sorted(
            {TRAEFIK_NAMESPACE, *(h.namespace for h in args.config.exposed_hosts())}
        )
        self.wildcard = WildcardCertificate(
            secret_name="wildcard-tls", namespaces=tuple(namespaces), ready=[]
        )
        self.register_outputs({})

"""The exposed apps (Grafana as the worked example). (Thin until the platform issue.)"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi

from components.common import ClusterAccess
from components.traefik import TraefikRouting
from config.model import HomelabConfig


@dataclass(frozen=True)
class AppsArgs:
    access: ClusterAccess
    config: HomelabConfig
    traefik: TraefikRouting
    storage_class: pulumi.Output[str]


class Apps(pulumi.ComponentResource):
    urls: dict[str, str]

    def __init__(
        self, name: str, args: AppsArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("homelab:apps:Apps", name, None, opts)
        self.urls = {a.name: f"https://{args.config.fqdn(a.host_label)}" for a in args.config.apps}
        self.register_outputs({"urls": self.urls})

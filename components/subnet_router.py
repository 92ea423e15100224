"""The Tailscale subnet router pod. (Thin until the remote access issue.)"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi

from components.common import ClusterAccess


@dataclass(frozen=True)
class SubnetRouterArgs:
    access: ClusterAccess
    login_server: pulumi.Output[str]
    auth_key: pulumi.Output[str]
    routes: list[str]
    hostname: str


class SubnetRouter(pulumi.ComponentResource):
    def __init__(
        self, name: str, args: SubnetRouterArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("homelab:remote-access:SubnetRouter", name, None, opts)
        self.register_outputs({})

"""Reflector: mirrors the wildcard certificate Secret. (Thin until the platform issue.)"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi

from components.common import ClusterAccess


@dataclass(frozen=True)
class ReflectorArgs:
    access: ClusterAccess


class Reflector(pulumi.ComponentResource):
    ready: pulumi.Resource

    def __init__(
        self, name: str, args: ReflectorArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("homelab:platform:Reflector", name, None, opts)
        self.ready = self
        self.register_outputs({})

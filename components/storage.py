"""Persistent volumes on Talos (which ships no StorageClass). (Thin until the platform issue.)"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi

from components.common import ClusterAccess
from config.model import Storage as StorageConfig


@dataclass(frozen=True)
class StorageArgs:
    access: ClusterAccess
    storage: StorageConfig


class Storage(pulumi.ComponentResource):
    storage_class_name: pulumi.Output[str]

    def __init__(
        self, name: str, args: StorageArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("homelab:platform:Storage", name, None, opts)
        self.storage_class_name = pulumi.Output.from_input(
            args.storage.storage_class or "local-path"
        )
        self.register_outputs({"storageClassName": self.storage_class_name})

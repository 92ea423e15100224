"""The Talos cluster: booted nodes in, a Kubernetes provider out. (Thin until the Talos issue.)"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s

from components.common import ClusterAccess
from config.model import Cluster, Lifecycle, Network


@dataclass(frozen=True)
class TalosClusterArgs:
    cluster: Cluster
    network: Network
    lifecycle: Lifecycle


class TalosCluster(pulumi.ComponentResource):
    access: ClusterAccess
    kubeconfig: pulumi.Output[str]
    talosconfig: pulumi.Output[str]
    endpoint: pulumi.Output[str]

    def __init__(
        self, name: str, args: TalosClusterArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("homelab:talos:Cluster", name, None, opts)
        self.kubeconfig = pulumi.Output.secret("")
        self.talosconfig = pulumi.Output.secret("")
        self.endpoint = pulumi.Output.from_input(args.cluster.endpoint)
        provider = k8s.Provider(
            f"{name}-kubernetes",
            kubeconfig=self.kubeconfig,
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.access = ClusterAccess(provider=provider, kubeconfig=self.kubeconfig, cluster=self)
        self.register_outputs({"endpoint": self.endpoint})

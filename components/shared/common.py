"""Types every Kubernetes-level component shares."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

import pulumi
import pulumi_kubernetes as k8s

from components.shared import namespaces
from config import policy

# Namespaces of the platform, defined in components/shared/namespaces.py (so config/ can refuse apps in
# them without importing Pulumi). Apps bring their own (config `apps[].namespace`).
METALLB_NAMESPACE: Final = namespaces.METALLB_NAMESPACE
TRAEFIK_NAMESPACE: Final = namespaces.TRAEFIK_NAMESPACE
CERT_MANAGER_NAMESPACE: Final = namespaces.CERT_MANAGER_NAMESPACE
REFLECTOR_NAMESPACE: Final = namespaces.REFLECTOR_NAMESPACE
STORAGE_NAMESPACE: Final = namespaces.STORAGE_NAMESPACE
HEADSCALE_NAMESPACE: Final = namespaces.HEADSCALE_NAMESPACE
TAILSCALE_NAMESPACE: Final = namespaces.TAILSCALE_NAMESPACE

# Tailscale's address ranges (CGNAT v4 and the ULA v6), used by Headscale's default prefixes.
TAILNET_IPV4: Final = str(policy.TAILNET_IPV4)
TAILNET_IPV6: Final = str(policy.TAILNET_IPV6)


@dataclass(frozen=True)
class ClusterAccess:
    """How a component reaches the cluster: the only Kubernetes provider of the stack.

    `cluster` is the resource whose deletion takes every Kubernetes object with it; children
    are `deleted_with` it so destroying a whole lab does not hang on an unreachable API
    (pulumi-kubernetes #491; peers.md "What users trip over" 9).
    """

    provider: k8s.Provider
    kubeconfig: pulumi.Output[str]
    cluster: pulumi.Resource

    def opts(
        self,
        parent: pulumi.Resource,
        *,
        depends_on: Sequence[pulumi.Resource] = (),
        protect: bool = False,
    ) -> pulumi.ResourceOptions:
        """Options for a Kubernetes child of `parent`."""
        return pulumi.ResourceOptions(
            parent=parent,
            provider=self.provider,
            depends_on=list(depends_on),
            deleted_with=self.cluster,
            protect=protect,
        )

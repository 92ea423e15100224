"""Types every Kubernetes-level component shares."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

import pulumi
import pulumi_kubernetes as k8s

from config import policy

# Namespaces of the platform, defined with every namespace the stack owns in config/namespaces.py
# (the config refuses apps in them). Apps bring their own (config `apps[].namespace`).
from config.namespaces import CERT_MANAGER_NAMESPACE as CERT_MANAGER_NAMESPACE
from config.namespaces import HEADSCALE_NAMESPACE as HEADSCALE_NAMESPACE
from config.namespaces import METALLB_NAMESPACE as METALLB_NAMESPACE
from config.namespaces import REFLECTOR_NAMESPACE as REFLECTOR_NAMESPACE
from config.namespaces import STORAGE_NAMESPACE as STORAGE_NAMESPACE
from config.namespaces import TAILSCALE_NAMESPACE as TAILSCALE_NAMESPACE
from config.namespaces import TRAEFIK_NAMESPACE as TRAEFIK_NAMESPACE

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

"""Where a component's namespaced objects go, for the builder functions that make them.

A component split into builder functions passes them its Placement: every object keeps the
component as its parent, so splitting a class changes no resource name or URN.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from components.shared.common import ClusterAccess


@dataclass(frozen=True)
class Placement:
    """The owning component (the parent), the cluster, the namespace and the objects' labels."""

    owner: pulumi.Resource
    access: ClusterAccess
    namespace: pulumi.Input[str]
    labels: Mapping[str, str]

    def meta(self, object_name: str, **extra: Any) -> k8s.meta.v1.ObjectMetaArgs:
        return k8s.meta.v1.ObjectMetaArgs(
            name=object_name, namespace=self.namespace, labels=dict(self.labels), **extra
        )

    def opts(
        self, *, depends_on: Sequence[pulumi.Resource] = (), protect: bool = False
    ) -> pulumi.ResourceOptions:
        return self.access.opts(self.owner, depends_on=depends_on, protect=protect)

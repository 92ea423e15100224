"""Small builders the platform components share: a namespace and a pinned Helm release.

Charts go through `helm.v3.Release` (real Helm): it runs chart hooks and waits for the release's
workloads to be ready before dependants are created (components.md 7 #5, 9 #5), which is what
lets the custom resources of MetalLB and cert-manager wait for their webhooks.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal

import pulumi
import pulumi_kubernetes as k8s

from components.common import ClusterAccess

# Talos enforces PSA `baseline` by default (components.md 1.4 #3); hostNetwork/hostPath workloads
# (MetalLB's speaker, local-path volumes) need their namespace labelled `privileged`.
PodSecurityLevel = Literal["privileged", "baseline", "restricted"]


def pod_security_labels(level: PodSecurityLevel) -> dict[str, str]:
    """Pod Security Admission labels enforcing (and auditing, warning at) one level."""
    return {f"pod-security.kubernetes.io/{mode}": level for mode in ("audit", "enforce", "warn")}


PRIVILEGED_LABELS: Final = pod_security_labels("privileged")


@dataclass(frozen=True)
class HelmChart:
    """Where a chart comes from and which version is installed (versions: config/pins.py)."""

    repo: str
    name: str
    version: str


def namespace(
    resource_name: str,
    name: str,
    *,
    access: ClusterAccess,
    parent: pulumi.Resource,
    privileged: bool = False,
    pod_security: PodSecurityLevel | None = None,
    labels: Mapping[str, str] | None = None,
    protect: bool = False,
) -> k8s.core.v1.Namespace:
    """A namespace; `privileged` relaxes Pod Security Admission for host-level workloads,
    `pod_security` sets another level (e.g. `restricted` for hardened workloads). `protect` for a
    namespace holding state: deleting a namespace deletes its claims with it."""
    level: PodSecurityLevel | None = "privileged" if privileged else pod_security
    all_labels = {**(pod_security_labels(level) if level else {}), **(labels or {})}
    return k8s.core.v1.Namespace(
        resource_name,
        metadata=k8s.meta.v1.ObjectMetaArgs(name=name, labels=all_labels or None),
        opts=access.opts(parent, protect=protect),
    )


def helm_release(
    resource_name: str,
    *,
    access: ClusterAccess,
    parent: pulumi.Resource,
    chart: HelmChart,
    namespace: str,
    values: Mapping[str, Any],
    depends_on: Sequence[pulumi.Resource] = (),
) -> k8s.helm.v3.Release:
    """A Helm release with a fixed release name (no Pulumi auto-suffix) in an existing namespace.

    `depends_on` must include the Namespace when this stack creates it.
    """
    return k8s.helm.v3.Release(
        resource_name,
        name=resource_name,
        chart=chart.name,
        version=chart.version,
        repository_opts=k8s.helm.v3.RepositoryOptsArgs(repo=chart.repo),
        namespace=namespace,
        create_namespace=False,
        values=dict(values),
        opts=access.opts(parent, depends_on=depends_on),
    )


def secret_output(value: pulumi.Output[str]) -> pulumi.Output[str]:
    """`value` marked secret (`Output.secret` itself is typed for plain values only)."""
    return value.apply(pulumi.Output.secret)

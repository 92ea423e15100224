"""Small builders the platform components share: a namespace and a pinned Helm release.

Charts go through `helm.v3.Release` (real Helm): it runs chart hooks and waits for the release's
workloads to be ready before dependants are created (components.md 7 #5, 9 #5). A ready workload
is not a serving webhook: cert-manager's chart adds a post-install hook that dry-runs a Certificate
through its webhooks (startupapicheck, cert-manager/cert-manager@v1.21.1:
cmd/startupapicheck/pkg/check/api/api.go), so its Release does wait for them; MetalLB's has no such
hook and its controller is Ready before its webhook serves, hence components/shared/kubectl.py
`webhook_gate`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal

import pulumi
import pulumi_kubernetes as k8s

from components.shared.common import ClusterAccess

# Talos enforces PSA `baseline` by default (components.md 1.4 #3); hostNetwork/hostPath workloads
# (MetalLB's speaker, local-path volumes) need their namespace labelled `privileged`.
PodSecurityLevel = Literal["privileged", "baseline", "restricted"]


def pod_security_labels(level: PodSecurityLevel) -> dict[str, str]:
    """Pod Security Admission labels enforcing (and auditing, warning at) one level."""
    return {f"pod-security.kubernetes.io/{mode}": level for mode in ("audit", "enforce", "warn")}


PRIVILEGED_LABELS: Final = pod_security_labels("privileged")

# For the pods the request path cannot lose (MetalLB's speaker, Traefik): the built-in class the
# Priority admission plugin resolves without an object. Since Kubernetes 1.17 it is admitted in any
# namespace unless the API server's ResourceQuota admission config limits it (kubernetes PR
# #76310), which Talos does not set; evicted last under node pressure, and may preempt app pods.
CRITICAL_PRIORITY_CLASS: Final = "system-cluster-critical"


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
    namespace holding state: deleting a namespace deletes every claim in it."""
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
    skip_crds: bool = False,
) -> k8s.helm.v3.Release:
    """A Helm release with a fixed release name (no Pulumi auto-suffix) in an existing namespace.

    `depends_on` must include the Namespace when this stack creates it. `skip_crds` leaves the
    chart's `crds/` folder out (Helm's `--skip-crds`) for CRDs installed another way.
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
        skip_crds=skip_crds or None,
        opts=access.opts(parent, depends_on=depends_on),
    )


def secret_output(value: pulumi.Output[str]) -> pulumi.Output[str]:
    """`value` marked secret (`Output.secret` itself is typed for plain values only)."""
    return value.apply(pulumi.Output.secret)

"""Helpers for the hardening tests: the security context every container of ours must have, and
which NetworkPolicies select a pod and admit what.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from homelab.engine import Render, ResourceRecord

NETWORK_POLICY = "kubernetes:networking.k8s.io/v1:NetworkPolicy"
# A UID below this may be a host user's (checkov CKV_K8S_40 passes at >= 10000).
HIGH_UID = 10000
# Set on every namespace by the API server (Kubernetes >= 1.21).
NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name"


def all_containers(spec: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    yield from spec.get("initContainers") or []
    yield from spec["containers"]


def hardening_problems(spec: Mapping[str, Any]) -> list[str]:
    """Where a pod spec's containers fall short of the hardened context (components/shared/security.py):
    a high non-root UID, no privilege escalation, no capabilities, a read-only root filesystem
    and the runtime's default seccomp profile. Container settings override the pod's."""
    pod = spec.get("securityContext") or {}
    problems: list[str] = []
    for c in all_containers(spec):
        own = c.get("securityContext") or {}

        def effective(key: str, own: Mapping[str, Any] = own) -> Any:
            return own.get(key, pod.get(key))

        name = c["name"]
        if effective("runAsNonRoot") is not True:
            problems.append(f"{name}: runAsNonRoot is not true")
        uid = effective("runAsUser")
        if not isinstance(uid, int) or uid < HIGH_UID:
            problems.append(f"{name}: runAsUser {uid!r} is not a UID >= {HIGH_UID}")
        if own.get("allowPrivilegeEscalation") is not False:
            problems.append(f"{name}: allowPrivilegeEscalation is not false")
        if own.get("privileged"):
            problems.append(f"{name}: privileged")
        capabilities = own.get("capabilities") or {}
        if "ALL" not in (capabilities.get("drop") or []):
            problems.append(f"{name}: capabilities do not drop ALL")
        if capabilities.get("add"):
            problems.append(f"{name}: adds capabilities {capabilities['add']}")
        if own.get("readOnlyRootFilesystem") is not True:
            problems.append(f"{name}: root filesystem is writable")
        if (effective("seccompProfile") or {}).get("type") != "RuntimeDefault":
            problems.append(f"{name}: seccompProfile is not RuntimeDefault")
    return problems


def policies_selecting(
    render: Render, namespace: str, pod_labels: Mapping[str, str]
) -> list[ResourceRecord]:
    """NetworkPolicies in `namespace` whose podSelector matches pods labelled `pod_labels`."""
    found = []
    for policy in render.by_type(NETWORK_POLICY):
        if policy.input("metadata.namespace") != namespace:
            continue
        selector = policy.input("spec.podSelector") or {}
        assert not selector.get("matchExpressions"), "these tests read matchLabels only"
        wanted = selector.get("matchLabels") or {}
        if all(pod_labels.get(k) == v for k, v in wanted.items()):
            found.append(policy)
    return found


def _peer_admits(
    peer: Mapping[str, Any],
    policy_namespace: str,
    source_namespace: str | None,
    source_labels: Mapping[str, str],
) -> bool:
    if set(peer) == {"podSelector"}:
        # Pods of the policy's own namespace whose labels match (kubernetes.io/docs
        # network-policies: a podSelector alone selects in the NetworkPolicy's namespace).
        wanted = (peer["podSelector"] or {}).get("matchLabels") or {}
        return source_namespace == policy_namespace and all(
            source_labels.get(k) == v for k, v in wanted.items()
        )
    if set(peer) != {"namespaceSelector"}:
        return False  # IP blocks and combined selectors are not used by this project's policies
    labels = (peer["namespaceSelector"] or {}).get("matchLabels") or {}
    return source_namespace is not None and labels == {NAMESPACE_NAME_LABEL: source_namespace}


def admits(
    policy: ResourceRecord,
    *,
    protocol: str,
    port: int,
    source_namespace: str | None = None,
    source_labels: Mapping[str, str] | None = None,
) -> bool:
    """Whether an ingress rule of `policy` lets a connection in on `protocol`/`port` from a pod of
    `source_namespace` labelled `source_labels` (None: from outside the cluster, e.g. through a
    LoadBalancer)."""
    namespace = policy.input("metadata.namespace")
    for rule in policy.input("spec.ingress") or []:
        peers = rule.get("from")
        ports = rule.get("ports")
        if peers and not any(
            _peer_admits(p, namespace, source_namespace, source_labels or {}) for p in peers
        ):
            continue
        if ports and not any(
            p.get("protocol", "TCP") == protocol and p.get("port") == port for p in ports
        ):
            continue
        return True
    return False


def checkov_skipped(record: ResourceRecord) -> dict[str, str]:
    """Check id -> reason of the checkov skip annotations on an object."""
    annotations = record.input("metadata.annotations") or {}
    skipped = {}
    for key, value in annotations.items():
        if key.startswith("checkov.io/skip"):
            check_id, _, reason = str(value).partition("=")
            skipped[check_id] = reason
    return skipped

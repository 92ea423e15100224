"""Security conventions every Kubernetes component shares.

- `checkov_skips`: the only way to accept a checkov finding. `./scripts/checkov` fails on any failed
  check of a manifest this project writes; a deliberate exception is written on the object itself,
  with its reason, so it shows up in review next to the code that needs it.
- `visibility_annotations`: how an IngressRoute says it is public. The CrossGuard policy
  `private-routes-carry-allowlist` (policies/rules.py) treats every route without the public marker
  as private, and a private route must go through Traefik's LAN/tailnet allowlist middleware.
- `hardened_pod_security_context` / `hardened_container_security_context`: the settings that pass
  checkov's Kubernetes checks and the `restricted` Pod Security Standard, for images that run as
  an unprivileged user.
- `IMAGE_PULL_POLICY` and `PINNED_IMAGE_SKIPS`: how this project's own workloads pull images,
  and why it accepts checkov's digest (CKV_K8S_43) and pull-policy (CKV_K8S_15) checks.
- `ingress_network_policy`: the NetworkPolicy each workload gets, admitting only the listed
  ingress. Talos' default CNI (flannel) accepts NetworkPolicies but enforces them only when the
  machine config sets `cluster.network.cni.flannel.kubeNetworkPoliciesEnabled: true` (Talos >=
  1.13, docs.siderolabs.com kubernetes-guides/cni/flannel), which the control-plane patches do
  (components/cluster/talos_patches.py); they are written to be correct under any enforcing CNI, so moving
  to Cilium/Calico needs no change here.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Final, Literal

import pulumi
import pulumi_kubernetes as k8s

from policies import rules as policy_rules

# checkov reads every annotation whose key contains this prefix as `<check id>=<reason>`
# (checkov 3.3.30 checkov/kubernetes/kubernetes_utils.py `get_skipped_checks`).
CHECKOV_SKIP_PREFIX: Final = "checkov.io/skip"
_CHECK_ID = re.compile(r"^CKV2?_K8S_[0-9]+$")

# The public marker on an IngressRoute (or Ingress); any other value, or none, means private.
# One constant with the policy pack, which checks it (policies/rules.py).
VISIBILITY_ANNOTATION: Final = policy_rules.VISIBILITY_ANNOTATION

# A UID/GID above 10000 so it cannot collide with a host user (checkov CKV_K8S_40); 65532 is the
# `nonroot` user of the distroless base images.
NONROOT_ID: Final = 65532

# Pinned tags are pulled once per node and then started from the node's cache, so a restart of
# Headscale or the subnet router (the only remote-access path) never depends on the registry being
# reachable. A re-pushed tag is not picked up: the tag in config/pins.py is what runs, and only a
# digest would protect against a malicious re-push either way.
IMAGE_PULL_POLICY: Final = "IfNotPresent"

# The reason for accepting CKV_K8S_15 (pull policy Always) on this project's workloads.
PULLED_IF_NOT_PRESENT: Final = (
    "images are pinned by exact tag, so IfNotPresent runs the pinned image and keeps restarts "
    "of the remote-access path independent of the registry"
)

# The reason for accepting CKV_K8S_43 (image by digest) on this project's workloads.
IMAGES_PINNED_BY_TAG: Final = (
    "images are pinned by exact tag in config/pins.py and bumped by Renovate; digests are not "
    "pinned because they cannot be resolved offline where the stack is rendered and tested"
)

# Every workload of ours pulls pinned tags with IMAGE_PULL_POLICY: the checks that accepts.
PINNED_IMAGE_SKIPS: Final = {
    "CKV_K8S_15": PULLED_IF_NOT_PRESENT,
    "CKV_K8S_43": IMAGES_PINNED_BY_TAG,
}

# Set by the API server on every namespace (Kubernetes >= 1.21), so a policy can name one.
NAMESPACE_NAME_LABEL: Final = "kubernetes.io/metadata.name"


def checkov_skips(reasons: Mapping[str, str]) -> dict[str, str]:
    """Annotations that make checkov accept the listed checks on this object, each with its reason.

    `reasons` maps a check id to why the finding is accepted, e.g.
    `{"CKV_K8S_43": "images are pinned by tag in config/pins.py; Renovate bumps them"}`.
    Merge the result into `metadata.annotations` of the object checkov reports (a Deployment, not its
    pod template). Raises ValueError for a malformed id or an empty reason: checkov would otherwise
    ignore the skip or record "No comment provided".
    """
    annotations: dict[str, str] = {}
    for index, check_id in enumerate(sorted(reasons), start=1):
        reason = reasons[check_id].strip()
        if not _CHECK_ID.fullmatch(check_id):
            raise ValueError(f"{check_id!r} is not a checkov Kubernetes check id like 'CKV_K8S_43'")
        if not reason:
            raise ValueError(f"{check_id}: a skip needs a reason")
        # checkov splits the value on every '=' and expects exactly two parts.
        if "=" in reason or "\n" in reason:
            raise ValueError(f"{check_id}: the reason must be one line without '='")
        annotations[f"{CHECKOV_SKIP_PREFIX}{index}"] = f"{check_id}={reason}"
    return annotations


def visibility_annotations(visibility: Literal["private", "public"]) -> dict[str, str]:
    """The annotation that marks a route public (or, explicitly, private)."""
    return {VISIBILITY_ANNOTATION: visibility}


def hardened_pod_security_context(
    *, user: int = NONROOT_ID, fs_group: int | None = NONROOT_ID
) -> k8s.core.v1.PodSecurityContextArgs:
    """Pod-level settings: a non-root user and the runtime's default seccomp profile."""
    return k8s.core.v1.PodSecurityContextArgs(
        run_as_non_root=True,
        run_as_user=user,
        run_as_group=user,
        fs_group=fs_group,
        seccomp_profile=k8s.core.v1.SeccompProfileArgs(type="RuntimeDefault"),
    )


def hardened_container_security_context(
    *, user: int = NONROOT_ID, read_only_root_filesystem: bool = True
) -> k8s.core.v1.SecurityContextArgs:
    """Container-level settings: no privilege escalation, no capabilities, read-only root.

    Set `read_only_root_filesystem=False` only with a `checkov_skips({"CKV_K8S_22": ...})` saying
    what the image writes outside its volumes.
    """
    return k8s.core.v1.SecurityContextArgs(
        allow_privilege_escalation=False,
        capabilities=k8s.core.v1.CapabilitiesArgs(drop=["ALL"]),
        privileged=False,
        read_only_root_filesystem=read_only_root_filesystem,
        run_as_non_root=True,
        run_as_user=user,
        run_as_group=user,
        seccomp_profile=k8s.core.v1.SeccompProfileArgs(type="RuntimeDefault"),
    )


def from_namespace(namespace: str) -> k8s.networking.v1.NetworkPolicyPeerArgs:
    """A NetworkPolicy peer: every pod of one namespace."""
    return k8s.networking.v1.NetworkPolicyPeerArgs(
        namespace_selector=k8s.meta.v1.LabelSelectorArgs(
            match_labels={NAMESPACE_NAME_LABEL: namespace}
        )
    )


def policy_ports(
    protocol: Literal["TCP", "UDP"], *ports: int
) -> list[k8s.networking.v1.NetworkPolicyPortArgs]:
    return [k8s.networking.v1.NetworkPolicyPortArgs(protocol=protocol, port=p) for p in ports]


def ingress_network_policy(
    resource_name: str,
    *,
    metadata: k8s.meta.v1.ObjectMetaArgs,
    pod_labels: Mapping[str, str],
    ingress: Sequence[k8s.networking.v1.NetworkPolicyIngressRuleArgs] = (),
    opts: pulumi.ResourceOptions,
) -> k8s.networking.v1.NetworkPolicy:
    """A NetworkPolicy that admits only `ingress` to the pods labelled `pod_labels` (no rule: none).

    Ingress only: these workloads call the API server, registries and, for Tailscale, peers and
    DERP relays anywhere on the internet, so an egress allowlist would mostly be `0.0.0.0/0`.
    Traffic from the pod's own node (kubelet probes) and replies to the pod's own connections are
    always allowed (kubernetes.io/docs/concepts/services-networking/network-policies). `pod_labels`
    must match the pod template's labels: checkov (CKV2_K8S_6) links a policy to pods by its
    `matchLabels` and skips an empty selector (checkov 3.3.30 NetworkPolicyEdgeBuilder).
    """
    if not pod_labels:
        raise ValueError(f"{resource_name}: a NetworkPolicy here must select pods by label")
    return k8s.networking.v1.NetworkPolicy(
        resource_name,
        metadata=metadata,
        spec=k8s.networking.v1.NetworkPolicySpecArgs(
            pod_selector=k8s.meta.v1.LabelSelectorArgs(match_labels=dict(pod_labels)),
            policy_types=["Ingress"],
            ingress=list(ingress),
        ),
        opts=opts,
    )

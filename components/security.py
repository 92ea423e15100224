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
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Final, Literal

import pulumi_kubernetes as k8s

# checkov reads every annotation whose key contains this prefix as `<check id>=<reason>`
# (checkov 3.3.30 checkov/kubernetes/kubernetes_utils.py `get_skipped_checks`).
CHECKOV_SKIP_PREFIX: Final = "checkov.io/skip"
_CHECK_ID = re.compile(r"^CKV2?_K8S_[0-9]+$")

# The public marker on an IngressRoute (or Ingress); any other value, or none, means private.
VISIBILITY_ANNOTATION: Final = "homelab.sarma.love/visibility"

# A UID/GID above 10000 so it cannot collide with a host user (checkov CKV_K8S_40); 65532 is the
# `nonroot` user of the distroless base images.
NONROOT_ID: Final = 65532


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

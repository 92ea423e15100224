"""The security helpers produce what checkov and the Pod Security Standards expect."""

from __future__ import annotations

import pulumi_kubernetes as k8s
import pytest

from components import security
from tools.checkov.render_manifests import skip_annotation_problems


def test_checkov_skips_are_numbered_annotations_with_their_reasons() -> None:
    annotations = security.checkov_skips(
        {
            "CKV_K8S_43": "images are pinned by tag in config/pins.py; Renovate bumps them",
            "CKV2_K8S_6": "the pod is reached only through Traefik",
        }
    )
    assert sorted(annotations.values()) == [
        "CKV2_K8S_6=the pod is reached only through Traefik",
        "CKV_K8S_43=images are pinned by tag in config/pins.py; Renovate bumps them",
    ]
    assert len(set(annotations)) == 2
    assert all(k.startswith("checkov.io/skip") for k in annotations)
    document = {"kind": "Deployment", "metadata": {"name": "x", "annotations": annotations}}
    assert skip_annotation_problems(document) == []


def test_checkov_skips_are_deterministic() -> None:
    reasons = {"CKV_K8S_43": "a", "CKV_K8S_22": "b"}
    assert security.checkov_skips(reasons) == security.checkov_skips(
        dict(reversed(reasons.items()))
    )


@pytest.mark.parametrize(
    ("reasons", "expected"),
    [
        ({"CKV_K8S_43": ""}, "needs a reason"),
        ({"CKV_K8S_43": "   "}, "needs a reason"),
        ({"CKV_K8S_43": "a=b"}, "without '='"),
        ({"CKV_K8S_43": "two\nlines"}, "one line"),
        ({"CKV_AWS_1": "wrong framework"}, "not a checkov Kubernetes check id"),
        ({"k8s_43": "typo"}, "not a checkov Kubernetes check id"),
    ],
)
def test_checkov_skips_refuse_what_checkov_would_misread(
    reasons: dict[str, str], expected: str
) -> None:
    with pytest.raises(ValueError, match=expected):
        security.checkov_skips(reasons)


def test_visibility_annotation_names_the_visibility() -> None:
    assert security.visibility_annotations("private") == {security.VISIBILITY_ANNOTATION: "private"}


def test_hardened_contexts_are_non_root_without_privileges() -> None:
    pod = security.hardened_pod_security_context()
    container = security.hardened_container_security_context()
    # checkov CKV_K8S_40 wants a UID above 10000; the Pod Security Standard `restricted` wants
    # runAsNonRoot, no escalation, all capabilities dropped and a RuntimeDefault seccomp profile.
    assert pod.run_as_non_root is True
    assert container.run_as_non_root is True
    assert isinstance(pod.run_as_user, int)
    assert pod.run_as_user > 10000
    assert container.run_as_user == pod.run_as_user
    assert container.allow_privilege_escalation is False
    assert container.capabilities == k8s.core.v1.CapabilitiesArgs(drop=["ALL"])
    assert container.seccomp_profile == k8s.core.v1.SeccompProfileArgs(type="RuntimeDefault")
    assert pod.seccomp_profile == container.seccomp_profile
    assert container.read_only_root_filesystem is True
    writable = security.hardened_container_security_context(read_only_root_filesystem=False)
    assert writable.read_only_root_filesystem is False

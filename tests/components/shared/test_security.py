"""The security helpers produce what checkov and the Pod Security Standards expect."""

from __future__ import annotations

import functools
from typing import Any

import pulumi
import pulumi_kubernetes as k8s
import pytest

from components.shared import security
from homelab.engine import Render, ResourceRecord
from tests.components.shared.hardening import (
    all_containers,
    checkov_skipped,
    hardening_problems,
    policies_selecting,
)
from tests.harness import kubernetes_records, render_stack
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


# --- every workload this project writes --------------------------------------------------------

WORKLOAD_KINDS = ("Deployment", "StatefulSet", "DaemonSet", "Pod")


@functools.cache
def rendered(stack: str) -> Render:
    return render_stack(stack)


def workloads(stack: str) -> list[ResourceRecord]:
    return [
        r
        for r in kubernetes_records(rendered(stack))
        if r.type.rpartition(":")[2] in WORKLOAD_KINDS
    ]


def pod_template(record: ResourceRecord) -> tuple[dict[str, Any], dict[str, Any]]:
    """(pod labels, pod spec) of a workload record."""
    if record.type.endswith(":Pod"):
        return record.input("metadata.labels") or {}, record.input("spec")
    return record.input("spec.template.metadata.labels") or {}, record.input("spec.template.spec")


@pytest.mark.parametrize("stack", ["homelab", "lab"])
def test_every_workload_of_ours_runs_hardened_and_starts_pinned_tags_from_the_cache(
    stack: str,
) -> None:
    found = workloads(stack)
    # local-path-provisioner, Headscale (+ Headplane) and the subnet router at least.
    assert len(found) >= 3
    for record in found:
        _, spec = pod_template(record)
        assert hardening_problems(spec) == [], record.name
        for container in all_containers(spec):
            # A pinned tag starts from the node's cache: restarts need no registry.
            assert ":" in container["image"].rpartition("/")[2], record.name
            assert not container["image"].endswith(":latest"), record.name
            assert container["imagePullPolicy"] == "IfNotPresent", record.name


@pytest.mark.parametrize("stack", ["homelab", "lab"])
def test_every_workload_of_ours_is_selected_by_a_network_policy(stack: str) -> None:
    for record in workloads(stack):
        labels, _ = pod_template(record)
        namespace = record.input("metadata.namespace")
        assert policies_selecting(rendered(stack), namespace, labels), record.name


@pytest.mark.parametrize("stack", ["homelab", "lab"])
def test_a_mounted_token_or_an_image_without_digest_is_a_written_exception(stack: str) -> None:
    for record in workloads(stack):
        _, spec = pod_template(record)
        skipped = checkov_skipped(record)
        if spec.get("automountServiceAccountToken") is not False:
            assert skipped.get("CKV_K8S_38", "").strip(), record.name
        if any("@sha256:" not in c["image"] for c in all_containers(spec)):
            assert skipped.get("CKV_K8S_43") == security.IMAGES_PINNED_BY_TAG, record.name
        if any(c["imagePullPolicy"] != "Always" for c in all_containers(spec)):
            assert skipped.get("CKV_K8S_15") == security.PULLED_IF_NOT_PRESENT, record.name
        # The reverse: no skip for what the manifest already does.
        if spec.get("automountServiceAccountToken") is False:
            assert "CKV_K8S_38" not in skipped, record.name


def test_an_ingress_policy_admits_only_its_rules_and_needs_a_pod_selector() -> None:
    # checkov links a policy to pods only through matchLabels (CKV2_K8S_6), and an empty
    # selector would isolate every pod of the namespace: refused before anything is created.
    with pytest.raises(ValueError, match="select pods by label"):
        security.ingress_network_policy(
            "unselective",
            metadata=k8s.meta.v1.ObjectMetaArgs(name="x"),
            pod_labels={},
            opts=pulumi.ResourceOptions(),
        )

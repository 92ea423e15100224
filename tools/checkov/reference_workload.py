"""A Pulumi program with one hardened web workload, built only from components/shared/security.py helpers.

Never deployed. `./scripts/checkov` renders it with the recording engine and requires zero failed
checkov checks, and tests/policies requires zero policy violations: proof that the helpers are
enough for a workload to pass both, and a worked example for components to copy.
"""

from __future__ import annotations

import pulumi
import pulumi_kubernetes as k8s

from components.shared.security import (
    checkov_skips,
    hardened_container_security_context,
    hardened_pod_security_context,
)

NAMESPACE = "reference"
LABELS = {"app.kubernetes.io/name": "reference"}
IMAGE = "ghcr.io/example/reference:1.2.3"

provider = k8s.Provider("reference", kubeconfig=pulumi.Output.secret(""))
opts = pulumi.ResourceOptions(provider=provider)

namespace = k8s.core.v1.Namespace(
    "reference",
    metadata=k8s.meta.v1.ObjectMetaArgs(
        name=NAMESPACE, labels={"pod-security.kubernetes.io/enforce": "restricted"}
    ),
    opts=opts,
)
probe = k8s.core.v1.ProbeArgs(http_get=k8s.core.v1.HTTPGetActionArgs(path="/health", port="http"))
deployment = k8s.apps.v1.Deployment(
    "reference",
    metadata=k8s.meta.v1.ObjectMetaArgs(
        name="reference",
        namespace=NAMESPACE,
        labels=LABELS,
        annotations=checkov_skips(
            {"CKV_K8S_43": "images are pinned by tag in config/pins.py; Renovate bumps them"}
        ),
    ),
    spec=k8s.apps.v1.DeploymentSpecArgs(
        selector=k8s.meta.v1.LabelSelectorArgs(match_labels=LABELS),
        template=k8s.core.v1.PodTemplateSpecArgs(
            metadata=k8s.meta.v1.ObjectMetaArgs(labels=LABELS),
            spec=k8s.core.v1.PodSpecArgs(
                automount_service_account_token=False,
                security_context=hardened_pod_security_context(),
                containers=[
                    k8s.core.v1.ContainerArgs(
                        name="web",
                        image=IMAGE,
                        image_pull_policy="Always",
                        ports=[k8s.core.v1.ContainerPortArgs(name="http", container_port=8080)],
                        liveness_probe=probe,
                        readiness_probe=probe,
                        resources=k8s.core.v1.ResourceRequirementsArgs(
                            requests={"cpu": "10m", "memory": "32Mi"},
                            limits={"cpu": "200m", "memory": "64Mi"},
                        ),
                        security_context=hardened_container_security_context(),
                    )
                ],
            ),
        ),
    ),
    opts=pulumi.ResourceOptions(provider=provider, depends_on=[namespace]),
)
service = k8s.core.v1.Service(
    "reference",
    metadata=k8s.meta.v1.ObjectMetaArgs(name="reference", namespace=NAMESPACE, labels=LABELS),
    spec=k8s.core.v1.ServiceSpecArgs(
        selector=LABELS, ports=[k8s.core.v1.ServicePortArgs(port=80, target_port="http")]
    ),
    opts=pulumi.ResourceOptions(provider=provider, depends_on=[namespace]),
)
# Only Traefik may reach the pods (checkov CKV2_K8S_6 wants a NetworkPolicy per pod).
network_policy = k8s.networking.v1.NetworkPolicy(
    "reference",
    metadata=k8s.meta.v1.ObjectMetaArgs(name="reference", namespace=NAMESPACE),
    spec=k8s.networking.v1.NetworkPolicySpecArgs(
        pod_selector=k8s.meta.v1.LabelSelectorArgs(match_labels=LABELS),
        policy_types=["Ingress"],
        ingress=[
            k8s.networking.v1.NetworkPolicyIngressRuleArgs(
                from_=[
                    k8s.networking.v1.NetworkPolicyPeerArgs(
                        namespace_selector=k8s.meta.v1.LabelSelectorArgs(
                            match_labels={"kubernetes.io/metadata.name": "traefik"}
                        )
                    )
                ]
            )
        ],
    ),
    opts=pulumi.ResourceOptions(provider=provider, depends_on=[namespace]),
)

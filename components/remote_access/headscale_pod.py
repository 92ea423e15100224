"""Headscale's pod: its claim, its ConfigMap, the single-replica Deployment and who may reach it.

Builder functions, not a child component: every object keeps the Headscale component as its
parent (components/shared/placement.py), so names and URNs are those of the single-class version
(no aliases needed).
`pod_spec` is the whole pod in one place, so a sidecar is one entry in its `containers`.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Final, cast

import pulumi
import pulumi_kubernetes as k8s

from components.remote_access import litestream
from components.remote_access.headscale_config import (
    CONFIG_DIR,
    CONFIG_FILE,
    DATA_DIR,
    HTTP_PORT,
    SOCKET_DIR,
)
from components.shared.placement import Placement
from components.shared.security import (
    IMAGE_PULL_POLICY,
    NONROOT_ID,
    PINNED_IMAGE_SKIPS,
    checkov_skips,
    from_namespace,
    hardened_container_security_context,
    ingress_network_policy,
    policy_ports,
)
from config import pins
from config.model import Derp

RUN_AS: Final = NONROOT_ID
LABELS: Final = {"app.kubernetes.io/name": "headscale", "app.kubernetes.io/part-of": "homelab"}
CONFIG_MAP: Final = "headscale-config"
DATA_CLAIM: Final = "headscale-data"
DEPLOYMENT: Final = "headscale"


def as_input(value: dict[str, Any]) -> Any:
    """A raw camelCase Kubernetes fragment, passed through as written.

    The typed SDK inputs would be equivalent; plain manifests read like the upstream docs, and
    the tests validate every rendered object against the strict Kubernetes schemas.
    """
    return cast(Any, value)


def workload(
    name: str,
    at: Placement,
    *,
    files: dict[str, str],
    derp: Derp,
    storage_class: pulumi.Input[str],
    protect: bool,
    backup: litestream.BackupTarget | None = None,
) -> k8s.apps.v1.Deployment:
    """The claim, the ConfigMap and the single-replica Deployment (with Litestream beside
    Headscale when there is a backup target)."""
    # skipAwait: with a WaitForFirstConsumer class (local-path) the claim binds only once the
    # pod is scheduled; the Deployment's own readiness is the wait that matters.
    data_claim = k8s.core.v1.PersistentVolumeClaim(
        f"{name}-data",
        metadata=at.meta(DATA_CLAIM, annotations={"pulumi.com/skipAwait": "true"}),
        spec=k8s.core.v1.PersistentVolumeClaimSpecArgs(
            access_modes=["ReadWriteOnce"],
            storage_class_name=storage_class,
            resources=k8s.core.v1.VolumeResourceRequirementsArgs(requests={"storage": "1Gi"}),
        ),
        opts=at.opts(protect=protect),
    )
    config_map = k8s.core.v1.ConfigMap(
        f"{name}-config", metadata=at.meta(CONFIG_MAP), data=files, opts=at.opts()
    )
    checksum = hashlib.sha256(json.dumps(files, sort_keys=True).encode()).hexdigest()
    replication = litestream.headscale_replication(
        f"{name}-litestream",
        backup,
        access=at.access,
        namespace=at.namespace,
        parent=at.owner,
        data_volume="data",
        data_dir=DATA_DIR,
        files=litestream.headscale_files(files[CONFIG_FILE]),
    )
    return k8s.apps.v1.Deployment(
        f"{name}-deployment",
        metadata=at.meta(DEPLOYMENT, annotations=checkov_skips(PINNED_IMAGE_SKIPS)),
        spec=as_input(
            {
                "replicas": 1,
                # SQLite on a ReadWriteOnce volume: never two pods at once (components.md 2.6 #6).
                "strategy": {"type": "Recreate"},
                "revisionHistoryLimit": 3,
                "selector": {"matchLabels": dict(LABELS)},
                "template": {
                    "metadata": {
                        "labels": dict(LABELS),
                        "annotations": {"checksum/config": checksum, **replication.annotations},
                    },
                    "spec": pod_spec(derp, replication),
                },
            }
        ),
        opts=at.opts(depends_on=[data_claim, config_map, *replication.depends_on]),
    )


def pod_spec(
    derp: Derp, replication: litestream.Replication = litestream.NO_REPLICATION
) -> dict[str, Any]:
    """Headscale's pod: the server, its config read-only, its state on the claim; with a backup
    target, Litestream's restore step before it and its sidecar beside it."""
    return {
        # Headscale never calls the Kubernetes API.
        "automountServiceAccountToken": False,
        # Service links would inject HEADSCALE_* variables, which Headscale
        # reads as config overrides (viper's automatic env).
        "enableServiceLinks": False,
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": RUN_AS,
            "runAsGroup": RUN_AS,
            "fsGroup": RUN_AS,
            "fsGroupChangePolicy": "OnRootMismatch",
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        **replication.pod_fields,
        "containers": [headscale_container(derp), *replication.containers],
        "volumes": [
            {"name": "config", "configMap": {"name": CONFIG_MAP}},
            {"name": "data", "persistentVolumeClaim": {"claimName": DATA_CLAIM}},
            # The CLI's unix socket; EnsureDir needs a writable directory.
            {"name": "socket", "emptyDir": {}},
            {"name": "tmp", "emptyDir": {}},
            *replication.volumes,
        ],
    }


def headscale_container(derp: Derp) -> dict[str, Any]:
    ports: list[dict[str, Any]] = [
        {"name": "http", "containerPort": HTTP_PORT, "protocol": "TCP"},
    ]
    if derp.enabled:
        ports.append({"name": "stun", "containerPort": derp.stun_port, "protocol": "UDP"})
    health = {"httpGet": {"path": "/health", "port": "http"}}
    return {
        "name": "headscale",
        "image": pins.HEADSCALE_IMAGE,
        # The image's entrypoint is the headscale binary (components.md 2.5).
        "args": ["serve"],
        "imagePullPolicy": IMAGE_PULL_POLICY,
        "ports": ports,
        "startupProbe": {**health, "periodSeconds": 5, "failureThreshold": 60},
        "readinessProbe": {**health, "periodSeconds": 10, "timeoutSeconds": 3},
        "livenessProbe": {**health, "periodSeconds": 30, "timeoutSeconds": 5},
        "resources": {
            "requests": {"cpu": "50m", "memory": "64Mi"},
            "limits": {"cpu": "1", "memory": "256Mi"},
        },
        "securityContext": hardened_container_security_context(user=RUN_AS),
        "volumeMounts": [
            {"name": "config", "mountPath": CONFIG_DIR, "readOnly": True},
            {"name": "data", "mountPath": DATA_DIR},
            {"name": "socket", "mountPath": SOCKET_DIR},
            {"name": "tmp", "mountPath": "/tmp"},
        ],
    }


def network_policy(
    name: str,
    at: Placement,
    *,
    derp: Derp,
    traefik_namespace: str,
    headplane_labels: dict[str, str] | None,
) -> k8s.networking.v1.NetworkPolicy:
    """Who may connect to the pod: Traefik and Headplane on HTTP, anyone on STUN.

    Nothing else connects over the network: keys are minted with `kubectl exec` through the
    API server, and the kubelet probes from the pod's node. The metrics listener is on the
    pod's loopback (headscale_config.py), so no rule could reach it anyway.
    """
    sources = [from_namespace(traefik_namespace)]
    if headplane_labels is not None:
        # Headplane's own pods in this namespace, for the REST API on the HTTP port.
        sources.append(
            k8s.networking.v1.NetworkPolicyPeerArgs(
                pod_selector=k8s.meta.v1.LabelSelectorArgs(match_labels=headplane_labels)
            )
        )
    rules = [
        k8s.networking.v1.NetworkPolicyIngressRuleArgs(
            from_=sources, ports=policy_ports("TCP", HTTP_PORT)
        )
    ]
    if derp.enabled:
        # Internet clients through the STUN LoadBalancer: with `Local` their own address
        # arrives, with `Cluster` another node's, so no source can be named.
        rules.append(
            k8s.networking.v1.NetworkPolicyIngressRuleArgs(
                ports=policy_ports("UDP", derp.stun_port)
            )
        )
    return ingress_network_policy(
        f"{name}-network-policy",
        metadata=at.meta("headscale"),
        pod_labels=LABELS,
        ingress=rules,
        opts=at.opts(),
    )

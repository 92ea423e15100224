"""Persistent volumes on Talos, which ships no StorageClass (components.md 1.4 #4).

Unless the config names an existing StorageClass, this deploys rancher's local-path-provisioner as
plain objects (the shape of its deploy/local-path-storage.yaml at the pinned tag), changed for
Talos: volumes live under `storage.localPathRoot` below /var (the upstream /opt path is read-only on
Talos) and the namespace is `privileged`, because the helper pod that creates and removes volume
directories mounts a hostPath (components.md 9 #1).

Two classes use it: `local-path` (the default, volumes deleted with their claims) for scratch
space and `local-path-retain` for state, whose volumes outlive their claims.

The provisioner itself needs none of that: it only talks to the API (watching claims, creating
PersistentVolumes and helper pods) and serves its health port, from a static binary on a
`scratch` image that writes no file (package/Dockerfile, main.go @ v0.0.37). So it runs with the
hardened security context (non-root UID 65532, no capabilities, read-only root) and no pod may
connect to it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Final

import pulumi
import pulumi_kubernetes as k8s
import yaml

from components.shared.common import STORAGE_NAMESPACE, ClusterAccess
from components.shared.kube import namespace
from components.shared.security import (
    IMAGE_PULL_POLICY,
    PINNED_IMAGE_SKIPS,
    checkov_skips,
    hardened_container_security_context,
    hardened_pod_security_context,
    ingress_network_policy,
)
from config import pins
from config.model import Storage as StorageConfig

STORAGE_CLASS: Final = "local-path"
# State (Headscale's database, Grafana's data) lives on a class whose volumes outlive their claims.
STATE_STORAGE_CLASS: Final = "local-path-retain"
PROVISIONER: Final = "rancher.io/local-path"
NAME: Final = "local-path-provisioner"
CONFIG_MAP: Final = "local-path-config"
LABELS: Final = {"app": NAME}
# Where the ConfigMap is mounted in the provisioner: `--config` names the JSON file there, and
# CONFIG_MOUNT_PATH the folder it rereads helperPod.yaml from (provisioner.go refreshHelperPod).
CONFIG_MOUNT_PATH: Final = "/etc/config/"
HEALTH_PORT: Final = 8080
PROVISIONER_CHECKOV_SKIPS: Final = {
    **PINNED_IMAGE_SKIPS,
    "CKV_K8S_38": "the provisioner needs its service account token: it watches claims and "
    "creates PersistentVolumes and helper pods through the Kubernetes API",
}

# The provisioner runs these in the helper pod with VOL_DIR set (upstream defaults).
SETUP_SCRIPT: Final = '#!/bin/sh\nset -eu\nmkdir -m 0777 -p "$VOL_DIR"\n'
TEARDOWN_SCRIPT: Final = '#!/bin/sh\nset -eu\nrm -rf "$VOL_DIR"\n'


@dataclass(frozen=True)
class StorageArgs:
    access: ClusterAccess
    storage: StorageConfig


def kubelet_host_paths(storage: StorageConfig) -> tuple[str, ...]:
    """Host directories the kubelet must see for the volumes this component provisions."""
    return () if storage.storage_class is not None else (storage.local_path_root,)


def provisioner_config(root: str) -> str:
    """config.json: every node keeps its volumes under `root`."""
    document = {"nodePathMap": [{"node": "DEFAULT_PATH_FOR_NON_LISTED_NODES", "paths": [root]}]}
    return json.dumps(document, indent=2, sort_keys=True)


def helper_pod_manifest() -> str:
    document = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "helper-pod"},
        "spec": {
            "priorityClassName": "system-node-critical",
            "tolerations": [
                {
                    "key": "node.kubernetes.io/disk-pressure",
                    "operator": "Exists",
                    "effect": "NoSchedule",
                }
            ],
            "containers": [
                {
                    "name": "helper-pod",
                    "image": pins.LOCAL_PATH_HELPER_IMAGE,
                    "imagePullPolicy": IMAGE_PULL_POLICY,
                    # It only runs mkdir/rm on the host path, as root: the directories it removes
                    # belong to whichever UID the claiming pod ran as.
                    "resources": {
                        "requests": {"cpu": "10m", "memory": "16Mi"},
                        "limits": {"cpu": "100m", "memory": "64Mi"},
                    },
                }
            ],
        },
    }
    return yaml.safe_dump(document, sort_keys=True)


class Storage(pulumi.ComponentResource):
    """Two classes: `storage_class_name` (the default, volumes deleted with their claims: scratch
    space) and `state_storage_class_name` (volumes retained: state). Each resolves once its class
    exists, so claimants wait for it. With `storage.storageClass` set both are that class."""

    storage_class_name: pulumi.Output[str]
    state_storage_class_name: pulumi.Output[str]

    def __init__(
        self, name: str, args: StorageArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("homelab:platform:Storage", name, None, opts)
        if args.storage.storage_class is not None:
            # An existing class (e.g. a CSI driver): nothing to deploy.
            self.storage_class_name = pulumi.Output.from_input(args.storage.storage_class)
            self.state_storage_class_name = self.storage_class_name
        else:
            self.storage_class_name, self.state_storage_class_name = local_path(
                name, self, args.access, root=args.storage.local_path_root
            )
        self.register_outputs(
            {
                "stateStorageClassName": self.state_storage_class_name,
                "storageClassName": self.storage_class_name,
            }
        )


def _meta(
    object_name: str, annotations: dict[str, str] | None = None
) -> k8s.meta.v1.ObjectMetaArgs:
    return k8s.meta.v1.ObjectMetaArgs(
        name=object_name, namespace=STORAGE_NAMESPACE, annotations=annotations
    )


def local_path(
    name: str, owner: pulumi.Resource, access: ClusterAccess, *, root: str
) -> tuple[pulumi.Output[str], pulumi.Output[str]]:
    """local-path-provisioner and its two classes; every object a child of `owner`."""
    ns = namespace(
        f"{name}-namespace", STORAGE_NAMESPACE, access=access, parent=owner, privileged=True
    )
    in_namespace = access.opts(owner, depends_on=[ns])
    account = k8s.core.v1.ServiceAccount(
        f"{name}-service-account", metadata=_meta(NAME), opts=in_namespace
    )
    bindings = _rbac(name, owner, access, account=account, in_namespace=in_namespace)
    _provisioner(
        name, owner, access, root=root, in_namespace=in_namespace, depends_on=[*bindings, account]
    )
    # No wait for the provisioner's rollout: with WaitForFirstConsumer a claim binds once the
    # provisioner runs, whenever that is, so claimants (Headscale, Grafana) need the class to
    # exist, not the provisioner to be ready; waiting would serialise them behind its rollout
    # for nothing (bench/render_bench.py shows the chain).
    scratch = _storage_class(
        f"{name}-class",
        STORAGE_CLASS,
        reclaim_policy="Delete",
        # The only default class on a fresh Talos cluster: claims without a class land here.
        default=True,
        opts=access.opts(owner),
    )
    # Retain: deleting the claim (or its namespace) leaves the PersistentVolume `Released`
    # and its directory on the node; the provisioner runs no teardown helper for it
    # (provisioner.go deleteFor @ v0.0.37). Recovering is rebinding that PV by hand.
    state = _storage_class(
        f"{name}-state-class",
        STATE_STORAGE_CLASS,
        reclaim_policy="Retain",
        default=False,
        opts=access.opts(owner),
    )
    return (
        scratch.metadata.apply(lambda m: m.name or STORAGE_CLASS),
        state.metadata.apply(lambda m: m.name or STATE_STORAGE_CLASS),
    )


def _rbac(
    name: str,
    owner: pulumi.Resource,
    access: ClusterAccess,
    *,
    account: k8s.core.v1.ServiceAccount,
    in_namespace: pulumi.ResourceOptions,
) -> list[pulumi.Resource]:
    """What the provisioner's account may do: helper pods here, volumes and claims anywhere."""
    subject = k8s.rbac.v1.SubjectArgs(kind="ServiceAccount", name=NAME, namespace=STORAGE_NAMESPACE)
    # Helper pods are created in the provisioner's namespace.
    role = k8s.rbac.v1.Role(
        f"{name}-role",
        metadata=_meta(NAME),
        rules=[
            k8s.rbac.v1.PolicyRuleArgs(
                api_groups=[""],
                resources=["pods"],
                verbs=["create", "delete", "get", "list", "patch", "update", "watch"],
            )
        ],
        opts=in_namespace,
    )
    role_binding = k8s.rbac.v1.RoleBinding(
        f"{name}-role-binding",
        metadata=_meta(NAME),
        role_ref=k8s.rbac.v1.RoleRefArgs(
            api_group="rbac.authorization.k8s.io", kind="Role", name=NAME
        ),
        subjects=[subject],
        opts=access.opts(owner, depends_on=[role, account]),
    )
    cluster_role = k8s.rbac.v1.ClusterRole(
        f"{name}-cluster-role",
        metadata=k8s.meta.v1.ObjectMetaArgs(name=NAME),
        rules=[
            k8s.rbac.v1.PolicyRuleArgs(
                api_groups=[""],
                resources=["configmaps", "nodes", "persistentvolumeclaims", "pods", "pods/log"],
                verbs=["get", "list", "watch"],
            ),
            k8s.rbac.v1.PolicyRuleArgs(
                api_groups=[""],
                resources=["persistentvolumes"],
                verbs=["create", "delete", "get", "list", "patch", "update", "watch"],
            ),
            k8s.rbac.v1.PolicyRuleArgs(
                api_groups=[""], resources=["events"], verbs=["create", "patch"]
            ),
            k8s.rbac.v1.PolicyRuleArgs(
                api_groups=["storage.k8s.io"],
                resources=["storageclasses"],
                verbs=["get", "list", "watch"],
            ),
        ],
        opts=access.opts(owner),
    )
    cluster_role_binding = k8s.rbac.v1.ClusterRoleBinding(
        f"{name}-cluster-role-binding",
        metadata=k8s.meta.v1.ObjectMetaArgs(name=NAME),
        role_ref=k8s.rbac.v1.RoleRefArgs(
            api_group="rbac.authorization.k8s.io", kind="ClusterRole", name=NAME
        ),
        subjects=[subject],
        opts=access.opts(owner, depends_on=[cluster_role, account]),
    )
    return [role_binding, cluster_role_binding]


def _provisioner(
    name: str,
    owner: pulumi.Resource,
    access: ClusterAccess,
    *,
    root: str,
    in_namespace: pulumi.ResourceOptions,
    depends_on: list[pulumi.Resource],
) -> None:
    """Its ConfigMap, the Deployment (after its RBAC) and a policy that admits nobody."""
    config_map = k8s.core.v1.ConfigMap(
        f"{name}-config",
        metadata=_meta(CONFIG_MAP),
        data={
            "config.json": provisioner_config(root),
            "helperPod.yaml": helper_pod_manifest(),
            "setup": SETUP_SCRIPT,
            "teardown": TEARDOWN_SCRIPT,
        },
        opts=in_namespace,
    )
    k8s.apps.v1.Deployment(
        f"{name}-provisioner",
        metadata=_meta(NAME, annotations=checkov_skips(PROVISIONER_CHECKOV_SKIPS)),
        spec=k8s.apps.v1.DeploymentSpecArgs(
            replicas=1,
            selector=k8s.meta.v1.LabelSelectorArgs(match_labels=LABELS),
            template=k8s.core.v1.PodTemplateSpecArgs(
                metadata=k8s.meta.v1.ObjectMetaArgs(labels=LABELS),
                spec=k8s.core.v1.PodSpecArgs(
                    service_account_name=NAME,
                    security_context=hardened_pod_security_context(),
                    containers=[_provisioner_container()],
                    volumes=[
                        k8s.core.v1.VolumeArgs(
                            name="config-volume",
                            config_map=k8s.core.v1.ConfigMapVolumeSourceArgs(name=CONFIG_MAP),
                        )
                    ],
                ),
            ),
        ),
        opts=access.opts(owner, depends_on=[config_map, *depends_on]),
    )
    # Nothing connects to the provisioner (the kubelet's probes come from its node, which a
    # policy never blocks); helper pods are its API calls, not connections to it.
    ingress_network_policy(
        f"{name}-network-policy",
        metadata=_meta(NAME),
        pod_labels=LABELS,
        opts=in_namespace,
    )


def _storage_class(
    resource_name: str,
    class_name: str,
    *,
    reclaim_policy: str,
    default: bool,
    opts: pulumi.ResourceOptions,
) -> k8s.storage.v1.StorageClass:
    return k8s.storage.v1.StorageClass(
        resource_name,
        metadata=k8s.meta.v1.ObjectMetaArgs(
            name=class_name,
            annotations={"storageclass.kubernetes.io/is-default-class": "true"}
            if default
            else None,
        ),
        provisioner=PROVISIONER,
        # A volume is a directory on one node: bind only once the pod's node is known.
        volume_binding_mode="WaitForFirstConsumer",
        reclaim_policy=reclaim_policy,
        opts=opts,
    )


def _provisioner_container() -> k8s.core.v1.ContainerArgs:
    probe_port = "health"
    return k8s.core.v1.ContainerArgs(
        name=NAME,
        image=pins.LOCAL_PATH_PROVISIONER_IMAGE,
        image_pull_policy=IMAGE_PULL_POLICY,
        # A `--config` ending in .json is read as a file; anything else is parsed as the JSON
        # itself (provisioner.go loadConfigFile @ v0.0.37).
        command=["local-path-provisioner", "start", "--config", f"{CONFIG_MOUNT_PATH}config.json"],
        ports=[
            k8s.core.v1.ContainerPortArgs(
                name=probe_port, container_port=HEALTH_PORT, protocol="TCP"
            )
        ],
        env=[
            k8s.core.v1.EnvVarArgs(
                name="POD_NAMESPACE",
                value_from=k8s.core.v1.EnvVarSourceArgs(
                    field_ref=k8s.core.v1.ObjectFieldSelectorArgs(field_path="metadata.namespace")
                ),
            ),
            k8s.core.v1.EnvVarArgs(name="CONFIG_MOUNT_PATH", value=CONFIG_MOUNT_PATH),
            k8s.core.v1.EnvVarArgs(name="HEALTH_PORT", value=str(HEALTH_PORT)),
            # The account helper pods run as; without it the provisioner names its own default
            # `local-path-provisioner-service-account`, which does not exist here, the API server
            # rejects every helper pod and no claim ever binds (main.go @ v0.0.37).
            k8s.core.v1.EnvVarArgs(name="SERVICE_ACCOUNT_NAME", value=NAME),
            # No HELPER_IMAGE: `--helper-image` must only be non-empty (its default is); the
            # helper pods run the image of helperPod.yaml (provisioner.go createHelperPod copies
            # the template and never sets an image).
        ],
        startup_probe=k8s.core.v1.ProbeArgs(
            http_get=k8s.core.v1.HTTPGetActionArgs(path="/health", port=probe_port),
            initial_delay_seconds=5,
            period_seconds=5,
            failure_threshold=12,
        ),
        liveness_probe=k8s.core.v1.ProbeArgs(
            http_get=k8s.core.v1.HTTPGetActionArgs(path="/health", port=probe_port),
            initial_delay_seconds=10,
            period_seconds=10,
        ),
        readiness_probe=k8s.core.v1.ProbeArgs(
            http_get=k8s.core.v1.HTTPGetActionArgs(path="/ready", port=probe_port),
            initial_delay_seconds=5,
            period_seconds=5,
        ),
        volume_mounts=[
            k8s.core.v1.VolumeMountArgs(name="config-volume", mount_path=CONFIG_MOUNT_PATH)
        ],
        # A small controller: it only watches claims and starts helper pods.
        resources=k8s.core.v1.ResourceRequirementsArgs(
            requests={"cpu": "10m", "memory": "32Mi"},
            limits={"cpu": "200m", "memory": "128Mi"},
        ),
        security_context=hardened_container_security_context(),
    )

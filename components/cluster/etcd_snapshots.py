"""Scheduled etcd snapshots through the Talos API, from inside the cluster, to the backup target.

Talos lets pods call its API when the machine config enables `kubernetesTalosAPIAccess` with the
roles and namespaces allowed (components/cluster/talos_patches.py `talos_api_access_document`, on
control planes). A `talos.dev/v1alpha1` `ServiceAccount` in an allowed namespace then makes Talos
write a Secret of the same name holding a talosconfig (key `config`) for the roles it asks for
(siderolabs/talos@v1.13.9:internal/app/machined/pkg/controllers/kubeaccess/serviceaccount/
crd_controller.go `newSecret`); its endpoint is the `talos.default` Service, whose endpoints are
the control planes' apid (kubeaccess/endpoint.go). Mounted at /var/run/secrets/talos.dev, the path
talosctl looks at last (pkg/machinery/client/config/path.go `GetDefaultPaths`); TALOSCONFIG names
it first so no home directory is needed.

The CronJob `etcd-snapshot` (namespace `backups`, components/shared/backup_names.py) runs
`talosctl etcd snapshot` into an emptyDir (an init container: the talosctl image is `FROM scratch`,
no shell), then rclone copies the file to the target as `etcd-<UTC time>.db` and deletes all but
the newest `backups.etcd.keep`. The talosconfig asks for `os:etcd:backup` only: it can take
snapshots and nothing else (pkg/machinery/role/role.go).

The `ServiceAccount` CRD is not ours: Talos applies it as its manifest
`13-talos-service-account-crd` when the machine config enables the feature (talos@v1.13.9:
internal/app/machined/pkg/controllers/k8s/manifest.go, `TalosAPIServiceEnabled`), asynchronously
after the config apply. A gate (components/shared/kubectl.py `crd_established_gate`) waits for it to
be Established before the custom resource is created, so switching backups on for a running cluster,
or a first `up`, does not fail with "no matches for kind".
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final, cast

import pulumi
import pulumi_kubernetes as k8s

from components.shared.backup_names import BACKUP_NAMESPACE, ETCD_SNAPSHOT_CRONJOB
from components.shared.backup_storage import ETCD_FOLDER, NFS_MOUNT, nfs_claim
from components.shared.common import ClusterAccess
from components.shared.kube import namespace as kube_namespace
from components.shared.kube import secret_output
from components.shared.kubectl import CRD_GATE_SUFFIX, crd_established_gate
from components.shared.security import (
    IMAGE_PULL_POLICY,
    NONROOT_ID,
    PINNED_IMAGE_SKIPS,
    checkov_skips,
    hardened_container_security_context,
    hardened_pod_security_context,
    ingress_network_policy,
)
from config import pins
from config.model import Backups, NfsTarget, S3Target

# The Talos role that may take etcd snapshots (siderolabs/talos@v1.13.9:pkg/machinery/role/role.go
# `EtcdBackup`), the only one the machine config allows pods to ask for.
ETCD_BACKUP_ROLE: Final = "os:etcd:backup"
# The Talos ServiceAccount CRD (talos@v1.13.9:pkg/machinery/constants/constants.go
# ServiceAccountResourceGroup/Version/Kind).
TALOS_SERVICE_ACCOUNT_API_VERSION: Final = "talos.dev/v1alpha1"
TALOS_SERVICE_ACCOUNT_KIND: Final = "ServiceAccount"
# Its name, `<plural>.<group>` (ServiceAccountResourcePlural, ServiceAccountResourceGroup;
# internal/app/machined/pkg/controllers/k8s/internal/k8stemplates/crds.go).
TALOS_SERVICE_ACCOUNT_CRD: Final = "serviceaccounts.talos.dev"
# The Talos manifest that carries it (controllers/k8s/manifest.go) and the machine config feature
# that makes Talos render it (controllers/k8s/control_plane.go `TalosAPIServiceEnabled`).
TALOS_SERVICE_ACCOUNT_MANIFEST: Final = "13-talos-service-account-crd"
TALOS_API_ACCESS_FEATURE: Final = "machine.features.kubernetesTalosAPIAccess"
TALOS_SERVICE_ACCOUNT_CRD_HINT: Final = (
    f"Talos applies it itself once the control planes' machine config enables "
    f"{TALOS_API_ACCESS_FEATURE} (the manifest {TALOS_SERVICE_ACCOUNT_MANIFEST}). Check that "
    f"feature in `talosctl -n <control plane> get machineconfig -o yaml`, that "
    f"`talosctl -n <control plane> get manifests` lists {TALOS_SERVICE_ACCOUNT_MANIFEST}, "
    f"`talosctl -n <control plane> logs controller-runtime` for errors applying it, and "
    f"`kubectl get crd {TALOS_SERVICE_ACCOUNT_CRD} -o yaml` for its conditions."
)
# constants.ServiceAccountMountPath and the file name in the Secret (constants.TalosconfigFilename).
TALOS_SECRETS_MOUNT: Final = "/var/run/secrets/talos.dev"
TALOSCONFIG_KEY: Final = "config"
SNAPSHOT_DIR: Final = "/snapshot"
SNAPSHOT_FILE: Final = f"{SNAPSHOT_DIR}/etcd.db"
# The rclone remote `backup`, a section of rclone.conf in a Secret mounted as a file (not
# variables: checkov CKV_K8S_35). rclone takes the file's path from RCLONE_CONFIG, the
# variable of its --config flag (rclone/rclone@v1.75.0:fs/config/flags/flags.go `installFlag`,
# fs/config.go `OptionToEnv`).
REMOTE: Final = "backup"
TARGET_SECRET: Final = "etcd-snapshot-target"
RCLONE_CONFIG_KEY: Final = "rclone.conf"
RCLONE_CONFIG_DIR: Final = "/etc/rclone"
NFS_CLAIM: Final = "etcd-snapshot-target"
LABELS: Final = {
    "app.kubernetes.io/name": ETCD_SNAPSHOT_CRONJOB,
    "app.kubernetes.io/part-of": "homelab",
}

# Copy, then prune to the newest $KEEP. The names sort by time (UTC, fixed width), so `sort -r`
# lists the newest first; `--files-only` and the include keep anything else in the folder safe.
UPLOAD_SCRIPT: Final = """set -eu
name="etcd-$(date -u +%Y%m%dT%H%M%SZ).db"
rclone copyto "$SNAPSHOT" "$DEST/$name"
echo "uploaded $DEST/$name"
rclone lsf --files-only --include 'etcd-*.db' "$DEST" | sort -r | tail -n +"$((KEEP + 1))" |
  while read -r old; do
    rclone deletefile "$DEST/$old"
    echo "deleted $DEST/$old"
  done
"""


def destination(backups: Backups) -> str:
    """Where rclone writes: `backup:<bucket>/<prefix>/etcd`, or the NFS mount's etcd folder."""
    target = backups.target
    if isinstance(target, S3Target):
        return f"{REMOTE}:{target.bucket}/{target.prefix}/{ETCD_FOLDER}"
    return f"{NFS_MOUNT}/{ETCD_FOLDER}"


def s3_remote_settings(target: S3Target) -> dict[str, str]:
    """The options of the S3 remote but its secret key (backend/s3/s3.go @ v1.75.0 names)."""
    return {
        "type": "s3",
        # `Other`: any S3-compatible service; provider-specific quirks stay off.
        "provider": "Other",
        "endpoint": target.endpoint.rstrip("/"),
        "region": target.region,
        "force_path_style": "true",
        # The bucket exists already; a key limited to it may not create or list buckets.
        "no_check_bucket": "true",
        "access_key_id": target.access_key_id,
    }


def rclone_config(target: S3Target, secret_access_key: str) -> str:
    """rclone.conf with the one remote: an INI section named after it, `key = value` lines."""
    options = {**s3_remote_settings(target), "secret_access_key": secret_access_key}
    lines = [f"[{REMOTE}]", *(f"{key} = {value}" for key, value in options.items())]
    return "\n".join(lines) + "\n"


def talosctl_image(talos_version: str) -> str:
    return f"{pins.TALOSCTL_IMAGE}:{talos_version}"


# The target of the snapshot: the apid the connection reached, through its own loopback.
SNAPSHOT_NODE: Final = "127.0.0.1"


def snapshot_args() -> list[str]:
    """`talosctl --nodes 127.0.0.1 etcd snapshot <path>`, which writes `<path>.part` and renames
    it when complete (siderolabs/talos@v1.13.9: cmd/talosctl/cmd/talos/etcd.go
    `etcdSnapshotCmd`).

    `--nodes` is required: the command runs `WithClient`, which stops with "nodes are not set for
    the command" without it (cmd/talosctl/pkg/talos/global/client.go `getNodes`), and the
    talosconfig Talos writes for the ServiceAccount names only the endpoint `talos.default`
    (internal/app/machined/pkg/controllers/kubeaccess/serviceaccount/crd_controller.go). One node
    only (helpers.FailIfMultiNodes). 127.0.0.1 is the control plane whose apid took the
    connection: an installed apid forwards the request to the `--nodes` target (director.go
    `Director`: it looks for local targets only when forwarding is disabled), dials
    127.0.0.1:50000, which is itself (it listens on all addresses: controllers/runtime/
    api_service_config.go `ListenAddress` ":50000"; its certificate names 127.0.0.1:
    controllers/secrets/api_cert_sans.go), and that one serves it from its own etcd member. So
    the snapshot comes from a control plane that is up: `talos.default`'s endpoints are the
    control planes whose kube-apiserver is up (controllers/kubeaccess/endpoint.go, from
    k8s.ControlPlaneAPIServerEndpointsID), a connection to a dead one fails, and the Job runs
    again (`backoffLimit`)."""
    return ["--nodes", SNAPSHOT_NODE, "etcd", "snapshot", SNAPSHOT_FILE]


def snapshot_pod_spec(
    talos_version: str,
    env: list[dict[str, Any]],
    volumes: list[dict[str, Any]],
    upload_mounts: list[dict[str, Any]],
) -> dict[str, Any]:
    """talosctl takes the snapshot in an init container; the upload container ships it."""
    return {
        # The Talos credentials come from the mounted Secret; no Kubernetes API access.
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "restartPolicy": "Never",
        "securityContext": hardened_pod_security_context(),
        "initContainers": [
            {
                "name": "snapshot",
                "image": talosctl_image(talos_version),
                "args": snapshot_args(),
                "imagePullPolicy": IMAGE_PULL_POLICY,
                "env": [
                    {"name": "TALOSCONFIG", "value": f"{TALOS_SECRETS_MOUNT}/{TALOSCONFIG_KEY}"}
                ],
                "resources": _resources(),
                "securityContext": hardened_container_security_context(),
                "volumeMounts": [
                    {
                        "name": "talos-secrets",
                        "mountPath": TALOS_SECRETS_MOUNT,
                        "readOnly": True,
                    },
                    {"name": "snapshot", "mountPath": SNAPSHOT_DIR},
                ],
            }
        ],
        "containers": [
            {
                "name": "upload",
                "image": pins.RCLONE_IMAGE,
                "command": ["/bin/sh", "-c", UPLOAD_SCRIPT],
                "imagePullPolicy": IMAGE_PULL_POLICY,
                "env": env,
                "resources": _resources(),
                "securityContext": hardened_container_security_context(user=NONROOT_ID),
                "volumeMounts": upload_mounts,
            }
        ],
        "volumes": volumes,
    }


def cron_job_spec(schedule: str, pod_spec: dict[str, Any]) -> dict[str, Any]:
    """The schedule around the job: one run at a time, bounded, its history kept short."""
    return {
        "schedule": schedule,
        "timeZone": "Etc/UTC",
        # One at a time; a missed run is not made up later in a burst.
        "concurrencyPolicy": "Forbid",
        "startingDeadlineSeconds": 3600,
        "successfulJobsHistoryLimit": 3,
        "failedJobsHistoryLimit": 3,
        "jobTemplate": {
            "spec": {
                "backoffLimit": 2,
                "activeDeadlineSeconds": 1800,
                "ttlSecondsAfterFinished": 7 * 24 * 3600,
                "template": {"metadata": {"labels": dict(LABELS)}, "spec": pod_spec},
            }
        },
    }


@dataclass(frozen=True)
class EtcdSnapshotsArgs:
    access: ClusterAccess
    backups: Backups
    # The S3 secret access key (a Pulumi secret); None for an NFS target.
    secret_access_key: pulumi.Output[str] | None
    # The cluster's Talos version: talosctl of the same version takes the snapshot.
    talos_version: str


class EtcdSnapshots(pulumi.ComponentResource):
    """The `backups` namespace, the Talos ServiceAccount, and the snapshot CronJob."""

    def __init__(
        self, name: str, args: EtcdSnapshotsArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("homelab:talos:EtcdSnapshots", name, None, opts)
        access, backups = args.access, args.backups
        namespace = kube_namespace(
            f"{name}-namespace",
            BACKUP_NAMESPACE,
            access=access,
            parent=self,
            pod_security="restricted",
            labels={"app.kubernetes.io/part-of": "homelab"},
        )
        self._namespace = namespace.metadata.name
        # After the provider, which waits for the health wait and so for every config apply
        # (components/cluster/talos.py); without the health wait, still for the first control
        # plane's apply (through its Kubeconfig and Bootstrap), and one control plane with the
        # feature is enough to apply the cluster-scoped CRD. The feature applies without a
        # reboot (talos@v1.13.9:internal/app/machined/pkg/runtime/v1alpha1/v1alpha1_runtime.go
        # `CanApplyImmediate`), so no staged apply is left waiting for a reboot.
        self.crd_established = crd_established_gate(
            f"{name}-talos-service-account{CRD_GATE_SUFFIX}",
            TALOS_SERVICE_ACCOUNT_CRD,
            hint=TALOS_SERVICE_ACCOUNT_CRD_HINT,
            kubeconfig=access.kubeconfig,
            parent=self,
            depends_on=[access.provider],
        )
        talos_account = k8s.apiextensions.CustomResource(
            f"{name}-talos-service-account",
            api_version=TALOS_SERVICE_ACCOUNT_API_VERSION,
            kind=TALOS_SERVICE_ACCOUNT_KIND,
            metadata=self._meta(ETCD_SNAPSHOT_CRONJOB),
            spec={"roles": [ETCD_BACKUP_ROLE]},
            opts=access.opts(self, depends_on=[namespace, self.crd_established]),
        )
        depends_on: list[pulumi.Resource] = [namespace, talos_account]
        target = backups.target
        env: list[dict[str, Any]] = [
            {"name": "SNAPSHOT", "value": SNAPSHOT_FILE},
            {"name": "DEST", "value": destination(backups)},
            {"name": "KEEP", "value": str(backups.etcd.keep)},
            # rclone's cache; the root filesystem is read-only.
            {"name": "HOME", "value": "/tmp"},
            {"name": "XDG_CONFIG_HOME", "value": "/tmp"},
        ]
        volumes: list[dict[str, Any]] = [
            {
                "name": "talos-secrets",
                "secret": {"secretName": ETCD_SNAPSHOT_CRONJOB, "defaultMode": 0o440},
            },
            {"name": "snapshot", "emptyDir": {}},
            {"name": "tmp", "emptyDir": {}},
        ]
        upload_mounts: list[dict[str, Any]] = [
            {"name": "snapshot", "mountPath": SNAPSHOT_DIR, "readOnly": True},
            {"name": "tmp", "mountPath": "/tmp"},
        ]
        if isinstance(target, S3Target):
            if args.secret_access_key is None:
                raise ValueError("an S3 backup target needs its secret access key")
            depends_on.append(self._target_secret(name, args, target, args.secret_access_key))
            env.append(
                {"name": "RCLONE_CONFIG", "value": f"{RCLONE_CONFIG_DIR}/{RCLONE_CONFIG_KEY}"}
            )
            volumes.append(
                {
                    "name": "rclone-config",
                    "secret": {"secretName": TARGET_SECRET, "defaultMode": 0o440},
                }
            )
            upload_mounts.append(
                {"name": "rclone-config", "mountPath": RCLONE_CONFIG_DIR, "readOnly": True}
            )
        else:
            depends_on.append(self._nfs(name, args, target))
            volumes.append({"name": "target", "persistentVolumeClaim": {"claimName": NFS_CLAIM}})
            upload_mounts.append({"name": "target", "mountPath": NFS_MOUNT})

        pod_spec = snapshot_pod_spec(args.talos_version, env, volumes, upload_mounts)
        self.cron_job = k8s.batch.v1.CronJob(
            f"{name}-cron-job",
            metadata=self._meta(
                ETCD_SNAPSHOT_CRONJOB, annotations=checkov_skips(PINNED_IMAGE_SKIPS)
            ),
            spec=cast(Any, cron_job_spec(backups.etcd.schedule, pod_spec)),
            opts=access.opts(self, depends_on=depends_on),
        )
        # Nothing connects to the job's pods.
        ingress_network_policy(
            f"{name}-network-policy",
            metadata=self._meta(ETCD_SNAPSHOT_CRONJOB),
            pod_labels=LABELS,
            opts=access.opts(self, depends_on=[namespace]),
        )
        self.register_outputs({})

    def _meta(self, object_name: str, **extra: Any) -> k8s.meta.v1.ObjectMetaArgs:
        return k8s.meta.v1.ObjectMetaArgs(
            name=object_name, namespace=self._namespace, labels=dict(LABELS), **extra
        )

    def _target_secret(
        self, name: str, args: EtcdSnapshotsArgs, target: S3Target, key: pulumi.Output[str]
    ) -> k8s.core.v1.Secret:
        return k8s.core.v1.Secret(
            f"{name}-target-secret",
            metadata=self._meta(TARGET_SECRET),
            type="Opaque",
            string_data={
                RCLONE_CONFIG_KEY: secret_output(key.apply(lambda k: rclone_config(target, k)))
            },
            opts=args.access.opts(self),
        )

    def _nfs(
        self, name: str, args: EtcdSnapshotsArgs, target: NfsTarget
    ) -> k8s.core.v1.PersistentVolumeClaim:
        return nfs_claim(
            f"{name}-nfs",
            target,
            namespace=self._namespace,
            claim_name=NFS_CLAIM,
            volume_name=f"{BACKUP_NAMESPACE}-{NFS_CLAIM}-nfs",
            access=args.access,
            parent=self,
        )


def _resources() -> dict[str, Any]:
    return {
        "requests": {"cpu": "10m", "memory": "64Mi"},
        "limits": {"cpu": "1", "memory": "512Mi"},
    }

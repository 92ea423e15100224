"""What the backup pieces share: an NFS export as a claim, and where on the target each kind goes.

An inline `nfs:` pod volume is not among the volume types the `restricted` Pod Security profile
admits (kubernetes.io/docs/concepts/security/pod-security-standards, "Volume Types"), and both
the Headscale and the backups namespace are `restricted`: so an NFS target is a pre-bound
PersistentVolume (cluster-scoped, `Retain`) and a claim on it in the consuming namespace.
"""

from __future__ import annotations

from typing import Final

import pulumi
import pulumi_kubernetes as k8s

from components.shared.common import ClusterAccess
from config.model import NfsTarget

# Below the target's prefix (S3) or export (NFS): one folder per kind of backup, so a person
# browsing the bucket sees what is what, and the etcd retention never touches Headscale's replica.
HEADSCALE_FOLDER: Final = "headscale"
ETCD_FOLDER: Final = "etcd"
# Where a pod mounts an NFS target.
NFS_MOUNT: Final = "/backup"


def nfs_claim(
    resource_name: str,
    target: NfsTarget,
    *,
    namespace: pulumi.Input[str],
    claim_name: str,
    volume_name: str,
    access: ClusterAccess,
    parent: pulumi.Resource,
) -> k8s.core.v1.PersistentVolumeClaim:
    """A claim bound to its own PersistentVolume on the export (a PV binds to one claim only).

    `volume_name` is cluster-wide, so it names the consumer (e.g. 'headscale-backup-nfs').

    `storageClassName: ""` keeps the default class from provisioning a local volume instead, and
    `claimRef` on the volume reserves it for this claim alone. `Retain`: deleting the claim never
    deletes anything on the export.
    """
    volume = k8s.core.v1.PersistentVolume(
        f"{resource_name}-volume",
        metadata=k8s.meta.v1.ObjectMetaArgs(
            name=volume_name,
            labels={"app.kubernetes.io/part-of": "homelab"},
        ),
        spec=k8s.core.v1.PersistentVolumeSpecArgs(
            capacity={"storage": "1Gi"},
            access_modes=["ReadWriteMany"],
            persistent_volume_reclaim_policy="Retain",
            storage_class_name="",
            nfs=k8s.core.v1.NFSVolumeSourceArgs(server=target.server, path=target.path),
            claim_ref=k8s.core.v1.ObjectReferenceArgs(namespace=namespace, name=claim_name),
        ),
        opts=access.opts(parent),
    )
    return k8s.core.v1.PersistentVolumeClaim(
        resource_name,
        metadata=k8s.meta.v1.ObjectMetaArgs(
            name=claim_name, namespace=namespace, labels={"app.kubernetes.io/part-of": "homelab"}
        ),
        spec=k8s.core.v1.PersistentVolumeClaimSpecArgs(
            access_modes=["ReadWriteMany"],
            storage_class_name="",
            volume_name=volume.metadata.name,
            resources=k8s.core.v1.VolumeResourceRequirementsArgs(requests={"storage": "1Gi"}),
        ),
        opts=access.opts(parent, depends_on=[volume]),
    )

"""Litestream beside Headscale: its SQLite database replicated off the node, restored when absent.

With `backups` configured, Headscale's pod gets
- an init container `litestream-restore` that runs `litestream restore -if-db-not-exists
  -if-replica-exists` before Headscale starts: on a fresh volume (a lost disk, a rebuilt cluster)
  the latest replica comes back, so every device and its node key, the users and the pre-auth keys
  survive; with an existing database, or no replica yet (the very first start), it does nothing;
- a sidecar container `litestream` that runs `litestream replicate`, streaming every change to the
  target (an S3 bucket, or an NFS export mounted through a claim, components/shared/backup_storage.py).

Headscale's database is SQLite in WAL mode (`write_ahead_log: true` in headscale_config.py sets
`journal_mode=WAL`, juanfont/headscale@v0.28.0:hscontrol/db/db.go), which Litestream requires. Its
`wal_autocheckpoint` stays at the default 1000 pages (hscontrol/types/config.go): those automatic
checkpoints are PASSIVE (sqlite.org/c3ref/wal_autocheckpoint.html), and Litestream holds a
long-running read transaction (benbjohnson/litestream@v0.5.16:db.go `rtx`) that a PASSIVE
checkpoint cannot pass, so no frame is checkpointed away before Litestream has copied it.
Litestream's advice to disable autocheckpoints is for high write loads (litestream #547); a
control server writes a few rows a minute.

Headscale also keeps two keys as plain files beside the database: the Noise private key (the
server's identity to every client; losing it makes every device log in again, components.md 2.6
#6) and the embedded DERP server's key. Litestream replicates SQLite only, so the sidecar copies
those files into a second small SQLite database (`litestream-keys.sqlite`) that Litestream
replicates too, and the restore step writes them back when they are missing. The sqlite3 CLI of
Litestream's Debian image does the copying (`apt-get install ... sqlite3`, Dockerfile @ v0.5.16;
its `readfile()`/`writefile()` are the CLI's fileio functions).

Headplane is not replicated: its `hp_persist.db` (tale/headplane@v0.6.3:app/server/db/schema.ts)
holds a cache of agent host info, OIDC users' capabilities (this stack configures no OIDC) and
ephemeral nodes it registered itself: nothing a rebuild needs that Headscale's own database does
not already hold.

Everything Litestream reads (its config, with the S3 credentials, and the key copier) is one Secret
mounted as files, the credentials a Pulumi secret end to end.
"""

from __future__ import annotations

import hashlib
import posixpath
import shlex
from dataclasses import dataclass, field
from typing import Any, Final

import pulumi
import pulumi_kubernetes as k8s
import yaml

from components.shared.backup_names import LITESTREAM_CONTAINER
from components.shared.backup_storage import HEADSCALE_FOLDER, NFS_MOUNT, nfs_claim
from components.shared.common import ClusterAccess
from components.shared.kube import secret_output
from components.shared.security import IMAGE_PULL_POLICY, hardened_container_security_context
from config import pins
from config.model import Backups, NfsTarget, S3Target

RESTORE_CONTAINER: Final = f"{LITESTREAM_CONTAINER}-restore"
SECRET: Final = "headscale-litestream"
CONFIG_KEY: Final = "litestream.yml"
KEYS_SCRIPT_KEY: Final = "keys.sh"
KEYS_DB_NAME: Final = "litestream-keys.sqlite"
CONFIG_DIR: Final = "/etc/litestream"
CONFIG_PATH: Final = f"{CONFIG_DIR}/{CONFIG_KEY}"
# Litestream's metrics listener (config `addr`), which the sidecar's probes ask. Not Headscale's
# 9090 (its metrics_listen_addr, headscale_config.py): the pod's containers share one network
# namespace, and ":port" binds every address, loopback included (replicate.go @ v0.5.16).
METRICS_PORT: Final = 9091
NFS_CLAIM: Final = "headscale-backup"
CONFIG_VOLUME: Final = "litestream-config"
TARGET_VOLUME: Final = "litestream-target"
TMP_VOLUME: Final = "litestream-tmp"


@dataclass(frozen=True)
class BackupTarget:
    """What Headscale's pod needs of the config: the `backups` section and, for an S3 target,
    the secret access key as a Pulumi secret."""

    backups: Backups
    secret_access_key: pulumi.Output[str] | None


@dataclass(frozen=True)
class Replication:
    """What Headscale's pod gains from Litestream; empty without a backup target."""

    init_containers: list[dict[str, Any]] = field(default_factory=list)
    containers: list[dict[str, Any]] = field(default_factory=list)
    volumes: list[dict[str, Any]] = field(default_factory=list)
    # A checksum of the config on the pod template: a changed target restarts the pod.
    annotations: dict[str, str] = field(default_factory=dict)
    depends_on: list[pulumi.Resource] = field(default_factory=list)

    @property
    def pod_fields(self) -> dict[str, Any]:
        """`initContainers` only when there are any, so a stack without backups renders as before."""
        return {"initContainers": self.init_containers} if self.init_containers else {}


# Nothing to add: the pod of a stack without a backup target.
NO_REPLICATION: Final = Replication()


@dataclass(frozen=True)
class HeadscaleFiles:
    """What Litestream keeps for Headscale, read from Headscale's rendered config."""

    database: str
    keys: tuple[str, ...]

    @property
    def keys_database(self) -> str:
        return f"{posixpath.dirname(self.database)}/{KEYS_DB_NAME}"


def headscale_files(headscale_config_text: str) -> HeadscaleFiles:
    """The SQLite file Headscale opens and its key files (one source of truth: its config)."""
    settings = yaml.safe_load(headscale_config_text)
    database = settings["database"]
    if database["type"] != "sqlite":
        raise ValueError("Litestream replicates SQLite only; Headscale is configured otherwise")
    keys = [settings["noise"]["private_key_path"], settings["derp"]["server"]["private_key_path"]]
    return HeadscaleFiles(database=database["sqlite"]["path"], keys=tuple(sorted(keys)))


# Runs under `litestream replicate -exec`: Litestream stops when it exits, so it never does.
# Each pass copies a key file in only when its content changed (no needless WAL frames).
KEYS_SCRIPT: Final = """set -eu
sqlite3 "$KEYS_DB" "PRAGMA journal_mode=WAL;
  CREATE TABLE IF NOT EXISTS files (name TEXT PRIMARY KEY, content BLOB NOT NULL);" >/dev/null
while true; do
  for file in $KEY_FILES; do
    [ -f "$file" ] || continue
    sqlite3 "$KEYS_DB" "INSERT INTO files (name, content) VALUES ('$file', readfile('$file'))
      ON CONFLICT (name) DO UPDATE SET content = excluded.content
      WHERE files.content IS NOT excluded.content;"
  done
  [ "${1:-}" = once ] && exit 0
  sleep 60
done
"""

# After both restores: a key file that is missing comes back from the keys database; one that is
# there (a restart) is kept. 384 = 0o600, the mode writefile() gives the file.
RESTORE_KEYS_SCRIPT: Final = """[ -f "$KEYS_DB" ] || exit 0
for file in $KEY_FILES; do
  [ -f "$file" ] && continue
  sqlite3 "$KEYS_DB" "SELECT writefile('$file', content, 384) FROM files WHERE name = '$file';" >/dev/null
  if [ -f "$file" ]; then echo "restored $file"; else echo "no copy of $file yet"; fi
done
"""


def replica_config(backups: Backups, folder: str) -> dict[str, Any]:
    """The `replica:` block of the database: Litestream v0.5 takes one replica per database
    (`replica`; `replicas` is deprecated: cmd/litestream/main.go DBConfig @ v0.5.16)."""
    target = backups.target
    if isinstance(target, S3Target):
        return {
            "type": "s3",
            "endpoint": target.endpoint.rstrip("/"),
            "bucket": target.bucket,
            "region": target.region,
            "path": f"{target.prefix}/{folder}",
            # Path style for MinIO, NAS and B2 endpoints (virtual-host buckets need DNS names per
            # bucket); Litestream defaults to it whenever an endpoint is set (main.go
            # NewS3ReplicaClientFromConfig), stated here so the rendered config says so.
            "force-path-style": True,
        }
    return {"type": "file", "path": f"{NFS_MOUNT}/{folder}"}


def litestream_config(
    backups: Backups, files: HeadscaleFiles, secret_access_key: str | None = None
) -> dict[str, Any]:
    """The whole config file: Headscale's database and the keys database, each with its replica
    (its own folder on the target), the metrics listener, logs as text on stdout.

    With `secret_access_key` the S3 credentials are in the file itself (the file is a Secret
    mounted into the pod, not variables in its environment); without it, the same file minus
    them, for the checksum that rolls the pod on a change of target."""
    config: dict[str, Any] = {
        "addr": f":{METRICS_PORT}",
        "dbs": [
            {"path": files.database, "replica": replica_config(backups, HEADSCALE_FOLDER)},
            {
                "path": files.keys_database,
                "replica": replica_config(backups, f"{HEADSCALE_FOLDER}-keys"),
            },
        ],
        "logging": {"level": "info", "type": "text"},
    }
    target = backups.target
    if secret_access_key is not None and isinstance(target, S3Target):
        # Used as given when both are set (cmd/litestream/main.go NewS3ReplicaClientFromConfig,
        # s3/replica_client.go: static credentials when access and secret key are non-empty).
        for db in config["dbs"]:
            db["replica"]["access-key-id"] = target.access_key_id
            db["replica"]["secret-access-key"] = secret_access_key
    return config


def restore_args(db_path: str) -> list[str]:
    """`restore` with flags before the path: Go's flag package stops at the first non-flag
    argument (cmd/litestream/restore.go `fs.Parse`), so a flag after it would be the path."""
    return [
        "restore",
        "-config",
        CONFIG_PATH,
        # Keep a database that is there (a restart, not a loss) ...
        "-if-db-not-exists",
        # ... and start empty when nothing was ever replicated (the first `up`).
        "-if-replica-exists",
        db_path,
    ]


def restore_script(files: HeadscaleFiles) -> str:
    """Both restores, then the key files; `set -e`: a failed restore keeps Headscale from starting
    on an empty database while a backup exists."""
    lines = ["set -eu"]
    for path in (files.database, files.keys_database):
        lines.append(shlex.join(["litestream", *restore_args(path)]))
    return "\n".join(lines) + "\n" + RESTORE_KEYS_SCRIPT


def replicate_args() -> list[str]:
    # -exec: Litestream runs the key copier as its subprocess (cmd/litestream/replicate.go @ v0.5.16).
    return ["replicate", "-config", CONFIG_PATH, "-exec", f"/bin/sh {CONFIG_DIR}/{KEYS_SCRIPT_KEY}"]


def dump_config(document: dict[str, Any]) -> str:
    return yaml.safe_dump(document, sort_keys=True)


def _config_file(target: BackupTarget, files: HeadscaleFiles) -> Any:
    """The config file's text; a Pulumi secret when it carries the S3 secret key."""
    backups = target.backups
    if not isinstance(backups.target, S3Target):
        return dump_config(litestream_config(backups, files))
    if target.secret_access_key is None:  # config/rules.py backup_credentials_match_target
        raise ValueError("an S3 backup target needs homelab:backupSecretAccessKey")
    return secret_output(
        target.secret_access_key.apply(
            lambda secret: dump_config(litestream_config(backups, files, secret))
        )
    )


def _container(
    name: str,
    run: dict[str, Any],
    target: S3Target | NfsTarget,
    files: HeadscaleFiles,
    *,
    data_volume: str,
    data_dir: str,
) -> dict[str, Any]:
    mounts = [
        {"name": CONFIG_VOLUME, "mountPath": CONFIG_DIR, "readOnly": True},
        # The database, its -wal/-shm and Litestream's own `.db.sqlite-litestream` meta directory
        # beside it (its default meta path) all live on Headscale's data volume.
        {"name": data_volume, "mountPath": data_dir},
        {"name": TMP_VOLUME, "mountPath": "/tmp"},
    ]
    env: list[dict[str, Any]] = [
        {"name": "KEYS_DB", "value": files.keys_database},
        {"name": "KEY_FILES", "value": " ".join(files.keys)},
    ]
    if isinstance(target, NfsTarget):
        mounts.append({"name": TARGET_VOLUME, "mountPath": NFS_MOUNT})
    container: dict[str, Any] = {
        "name": name,
        "image": pins.LITESTREAM_IMAGE,
        # The image's entrypoint is the litestream binary (Dockerfile @ v0.5.16).
        **run,
        "imagePullPolicy": IMAGE_PULL_POLICY,
        "resources": {
            "requests": {"cpu": "10m", "memory": "32Mi"},
            "limits": {"cpu": "500m", "memory": "256Mi"},
        },
        "securityContext": hardened_container_security_context(),
        "volumeMounts": mounts,
    }
    container["env"] = env
    return container


def headscale_replication(
    resource_name: str,
    backup: BackupTarget | None,
    *,
    access: ClusterAccess,
    namespace: pulumi.Input[str],
    parent: pulumi.Resource,
    data_volume: str,
    data_dir: str,
    files: HeadscaleFiles,
) -> Replication:
    """The Secret (and NFS claim) Litestream needs, and what to add to Headscale's pod spec."""
    if backup is None:
        return NO_REPLICATION
    backups = backup.backups
    target = backups.target
    secret = k8s.core.v1.Secret(
        f"{resource_name}-secret",
        metadata=k8s.meta.v1.ObjectMetaArgs(
            name=SECRET,
            namespace=namespace,
            labels={"app.kubernetes.io/name": "litestream", "app.kubernetes.io/part-of": "homelab"},
        ),
        type="Opaque",
        string_data={
            CONFIG_KEY: _config_file(backup, files),
            KEYS_SCRIPT_KEY: KEYS_SCRIPT,
        },
        opts=access.opts(parent),
    )
    depends_on: list[pulumi.Resource] = [secret]
    volumes: list[dict[str, Any]] = [
        {
            "name": CONFIG_VOLUME,
            # The config (with the S3 credentials) and the key copier, as files.
            "secret": {
                "secretName": SECRET,
                "items": [{"key": k, "path": k} for k in (CONFIG_KEY, KEYS_SCRIPT_KEY)],
            },
        },
        {"name": TMP_VOLUME, "emptyDir": {}},
    ]
    if isinstance(target, NfsTarget):
        depends_on.append(
            nfs_claim(
                f"{resource_name}-nfs",
                target,
                namespace=namespace,
                claim_name=NFS_CLAIM,
                volume_name=f"{NFS_CLAIM}-nfs",
                access=access,
                parent=parent,
            )
        )
        volumes.append({"name": TARGET_VOLUME, "persistentVolumeClaim": {"claimName": NFS_CLAIM}})
    mounts = {"data_volume": data_volume, "data_dir": data_dir}
    restore = {"command": ["/bin/sh", "-c", restore_script(files)]}
    metrics = {"httpGet": {"path": "/metrics", "port": "metrics"}}
    replicate = {
        "args": replicate_args(),
        "ports": [{"name": "metrics", "containerPort": METRICS_PORT, "protocol": "TCP"}],
        "readinessProbe": {**metrics, "periodSeconds": 30, "timeoutSeconds": 3},
        "livenessProbe": {**metrics, "periodSeconds": 60, "timeoutSeconds": 5},
    }
    # Without the secret key: a hash of it on the pod template would be a way to test guesses.
    public_config = dump_config(litestream_config(backups, files))
    checksum = hashlib.sha256((public_config + KEYS_SCRIPT).encode()).hexdigest()
    return Replication(
        init_containers=[_container(RESTORE_CONTAINER, restore, target, files, **mounts)],
        containers=[_container(LITESTREAM_CONTAINER, replicate, target, files, **mounts)],
        volumes=volumes,
        annotations={"checksum/litestream": checksum},
        depends_on=depends_on,
    )

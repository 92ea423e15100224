"""Etcd snapshots through the Talos API: the machine-config feature, the Talos ServiceAccount, the
CronJob and its upload script, checked against Talos's and rclone's rules at the pinned tags."""

from __future__ import annotations

import configparser
import functools
import os
import shutil
import stat
import subprocess
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from components.cluster import etcd_snapshots
from components.cluster.talos_patches import talos_api_access_document
from components.shared.backup_names import BACKUP_NAMESPACE, ETCD_SNAPSHOT_CRONJOB
from config import pins
from homelab.engine import Render, ResourceRecord
from tests.components.shared.hardening import hardening_problems
from tests.contracts import PORTED_CRD_SCHEMAS, strict_schema, validate_object
from tests.harness import homelab_render, reference_json, render_stack, stack_raw_config
from tests.policies.test_pack import _all_violations
from tests.security.leaks import find_leaks
from tests.world.world import World

SECRET_KEY = "SENTINEL-etcd-backup-secret-key"
S3: dict[str, dict[str, Any]] = {
    "s3": {
        "endpoint": "https://s3.us-west-004.backblazeb2.com",
        "bucket": "homelab-backups",
        "region": "us-west-004",
        "prefix": "homelab",
        "accessKeyId": "004abc",
    },
    "etcd": {"schedule": "30 2 * * *", "keep": 3},
}
NFS: dict[str, dict[str, Any]] = {"nfs": {"server": "192.168.0.5", "path": "/volume1/backups"}}
COMPONENT = "homelab:talos:EtcdSnapshots"
TALOS_SERVICE_ACCOUNT = "kubernetes:talos.dev/v1alpha1:ServiceAccount"
CRON_JOB = "kubernetes:batch/v1:CronJob"

# Talos API roles (siderolabs/talos@v1.13.9:pkg/machinery/role/role.go `All`).
TALOS_ROLES = frozenset(
    {
        "os:admin",
        "os:operator",
        "os:reader",
        "os:etcd:backup",
        "os:imageverifier",
        "os:metawriter",
        "os:impersonator",
    }
)
# Options of rclone's S3 backend that the job sets (rclone/rclone@v1.75.0:backend/s3/s3.go
# `Options`, plus `type` which every remote has).
RCLONE_S3_OPTIONS = frozenset(
    {
        "type",
        "provider",
        "env_auth",
        "access_key_id",
        "secret_access_key",
        "region",
        "endpoint",
        "force_path_style",
        "no_check_bucket",
    }
)


@functools.cache
def s3_render() -> Render:
    return render_stack(overrides={"backups": S3}, secrets={"backupSecretAccessKey": SECRET_KEY})


@functools.cache
def nfs_render() -> Render:
    return render_stack(overrides={"backups": NFS})


def records(render: Render, type_token: str) -> list[ResourceRecord]:
    return [
        r
        for r in render.resources
        if r.type == type_token and any(a.type == COMPONENT for a in render.ancestors(r))
    ]


def cron_job(render: Render) -> ResourceRecord:
    (found,) = records(render, CRON_JOB)
    return found


def job_pod(render: Render) -> dict[str, Any]:
    spec = cron_job(render).input("spec.jobTemplate.spec.template.spec")
    assert isinstance(spec, dict)
    return spec


def env(container: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container.get("env", [])}


# --- only with a target -----------------------------------------------------------------------


def test_without_a_target_there_is_no_job_and_no_talos_api_access() -> None:
    render = homelab_render()
    assert not [r for r in render.resources if r.type == COMPONENT]
    for record in render.resources:
        if record.type == "talos:machine/configurationApply:ConfigurationApply":
            assert all("kubernetesTalosAPIAccess" not in p for p in record.input("configPatches"))


def test_the_names_status_looks_up_are_the_names_created() -> None:
    job = cron_job(s3_render())
    assert job.input("metadata.name") == ETCD_SNAPSHOT_CRONJOB
    (namespace,) = records(s3_render(), "kubernetes:core/v1:Namespace")
    assert namespace.input("metadata.name") == BACKUP_NAMESPACE


# --- the Talos side ---------------------------------------------------------------------------


def control_plane_patches(render: Render) -> dict[str, list[dict[str, Any]]]:
    found: dict[str, list[dict[str, Any]]] = {}
    for record in render.resources:
        if record.type == "talos:machine/configurationApply:ConfigurationApply":
            found[record.name] = [yaml.safe_load(p) for p in record.input("configPatches")]
    return found


def test_control_planes_allow_exactly_the_backup_role_from_exactly_the_backup_namespace() -> None:
    """Talos grants a ServiceAccount only roles in `allowedRoles` and only in
    `allowedKubernetesNamespaces` (siderolabs/talos@v1.13.9:internal/app/machined/pkg/controllers/
    kubeaccess/serviceaccount/crd_controller.go: "Namespace is not allowed", "Roles not allowed")."""
    patches = control_plane_patches(s3_render())
    assert patches
    access_seen = 0
    for documents in patches.values():
        for document in documents:
            features = document.get("machine", {}).get("features", {})
            if "kubernetesTalosAPIAccess" in features:
                access = features["kubernetesTalosAPIAccess"]
                assert access["enabled"] is True
                assert access["allowedRoles"] == [etcd_snapshots.ETCD_BACKUP_ROLE]
                assert access["allowedKubernetesNamespaces"] == [BACKUP_NAMESPACE]
                access_seen += 1
    # The fixture homelab's nodes are all control planes.
    assert access_seen == len(patches)


def test_the_feature_patch_validates_against_the_talos_config_schema() -> None:
    schema = reference_json("upstream/talos/config.schema.json")
    document = talos_api_access_document(BACKUP_NAMESPACE, etcd_snapshots.ETCD_BACKUP_ROLE)
    features_schema = schema["$defs"]["v1alpha1.KubernetesTalosAPIAccessConfig"]
    jsonschema.Draft202012Validator({**features_schema, "$defs": schema["$defs"]}).validate(
        document["machine"]["features"]["kubernetesTalosAPIAccess"]
    )
    assert "kubernetesTalosAPIAccess" in (schema["$defs"]["v1alpha1.FeaturesConfig"]["properties"])


def test_the_role_is_a_talos_role() -> None:
    assert etcd_snapshots.ETCD_BACKUP_ROLE in TALOS_ROLES


def test_the_talos_service_account_matches_the_crd_and_asks_for_the_backup_role_only() -> None:
    (account,) = records(s3_render(), TALOS_SERVICE_ACCOUNT)
    document = {
        "apiVersion": account.input("apiVersion"),
        "kind": account.input("kind"),
        "metadata": account.input("metadata"),
        "spec": account.input("spec"),
    }
    assert document["apiVersion"] == "talos.dev/v1alpha1"
    assert document["kind"] == "ServiceAccount"
    jsonschema.Draft202012Validator(
        strict_schema(PORTED_CRD_SCHEMAS[("talos.dev/v1alpha1", "ServiceAccount")])
    ).validate(document)
    assert document["spec"]["roles"] == [etcd_snapshots.ETCD_BACKUP_ROLE]
    assert document["metadata"]["namespace"] == BACKUP_NAMESPACE


def test_the_pod_mounts_the_secret_talos_writes_where_talosctl_reads_it() -> None:
    """Talos names the Secret after the ServiceAccount and stores the talosconfig under `config`
    (crd_controller.go `newSecret`, constants.TalosconfigFilename @ v1.13.9); talosctl reads
    $TALOSCONFIG first, then /var/run/secrets/talos.dev/config (pkg/machinery/client/config/path.go
    `GetDefaultPaths`, constants.ServiceAccountMountPath)."""
    render = s3_render()
    (account,) = records(render, TALOS_SERVICE_ACCOUNT)
    spec = job_pod(render)
    (snapshot,) = spec["initContainers"]
    mount = next(
        m for m in snapshot["volumeMounts"] if m["mountPath"] == "/var/run/secrets/talos.dev"
    )
    volume = next(v for v in spec["volumes"] if v["name"] == mount["name"])
    assert volume["secret"]["secretName"] == account.input("metadata.name")
    assert env(snapshot)["TALOSCONFIG"] == "/var/run/secrets/talos.dev/config"


def test_talosctl_snapshots_the_control_plane_that_took_the_connection(tmp_path: Path) -> None:
    """The init container's command line, run as its pod runs it against the shared world:
    TALOSCONFIG is what Talos writes for the ServiceAccount (endpoint `talos.default`, no
    nodes), so `--nodes` is required (cmd/talosctl/pkg/talos/global/client.go `getNodes`: "nodes
    are not set for the command"); one node only (helpers.FailIfMultiNodes); the snapshot is
    written as <path>.part and renamed (cmd/talosctl/cmd/talos/etcd.go @ v1.13.9), the path
    the upload reads."""
    spec = job_pod(s3_render())
    (snapshot,) = spec["initContainers"]
    assert snapshot["image"] == f"{pins.TALOSCTL_IMAGE}:{pins.TALOS_VERSION}"
    (upload,) = spec["containers"]
    world = World.create(tmp_path / "world")
    world.install_cluster(
        control_planes={"10.0.0.11": "cp-1", "10.0.0.12": "cp-2", "10.0.0.13": "cp-3"}
    )
    world.node_dies("10.0.0.11")
    config = world.tmp / "config"
    config.write_text(world.service_account_talosconfig([etcd_snapshots.ETCD_BACKUP_ROLE]))
    target = str(world.tmp / "etcd.db")
    args = [target if a == env(upload)["SNAPSHOT"] else a for a in snapshot["args"]]
    assert target in args
    result = world.cli("talosctl", *args, env={"TALOSCONFIG": str(config)})
    assert result.returncode == 0, result.stderr
    (taken,) = world.state["talos"]["snapshots"]
    assert taken["node"] in ("10.0.0.12", "10.0.0.13")
    without_nodes = [a for a in args if a not in ("--nodes", etcd_snapshots.SNAPSHOT_NODE)]
    result = world.cli("talosctl", *without_nodes, env={"TALOSCONFIG": str(config)})
    assert "nodes are not set for the command" in result.stderr


def test_talosctl_follows_the_clusters_configured_talos_version() -> None:
    """The snapshot client is the cluster's own Talos version (the image is tagged with it, as
    the installer is), not a pin that could drift from what the nodes run."""
    older = "v1.13.1"
    assert older != pins.TALOS_VERSION
    render = render_stack(
        overrides={
            "backups": NFS,
            "cluster": {**stack_raw_config()["cluster"], "talosVersion": older},
        }
    )
    (snapshot,) = job_pod(render)["initContainers"]
    assert snapshot["image"] == f"{pins.TALOSCTL_IMAGE}:{older}"


# --- the CronJob ------------------------------------------------------------------------------


def test_the_schedule_and_retention_come_from_the_config() -> None:
    job = cron_job(s3_render())
    assert job.input("spec.schedule") == S3["etcd"]["schedule"]
    (upload,) = job_pod(s3_render())["containers"]
    assert env(upload)["KEEP"] == str(S3["etcd"]["keep"])
    assert job.input("spec.concurrencyPolicy") == "Forbid"


def test_rclone_reads_the_remote_from_the_mounted_config_file() -> None:
    """rclone takes its config file's path from RCLONE_CONFIG, the variable of `--config`
    ("RCLONE_" + upper(flag): rclone/rclone@v1.75.0:fs/config/flags/flags.go `installFlag`,
    fs/config.go `OptionToEnv`); the remote is the INI section named before the `:` of DEST, and
    its options are the S3 backend's (backend/s3/s3.go)."""
    render = s3_render()
    spec = job_pod(render)
    (upload,) = spec["containers"]
    variables = env(upload)
    config_path = variables["RCLONE_CONFIG"]
    mount = next(m for m in upload["volumeMounts"] if config_path.startswith(m["mountPath"] + "/"))
    volume = next(v for v in spec["volumes"] if v["name"] == mount["name"])
    (secret,) = records(render, "kubernetes:core/v1:Secret")
    assert volume["secret"]["secretName"] == secret.input("metadata.name")
    text = secret.input("stringData")[config_path.removeprefix(mount["mountPath"] + "/")]
    assert secret.is_secret("stringData")
    parser = configparser.ConfigParser()
    parser.read_string(text)
    remote = variables["DEST"].partition(":")[0]
    assert parser.sections() == [remote]
    options = dict(parser[remote])
    assert set(options) <= RCLONE_S3_OPTIONS
    assert options["type"] == "s3"
    assert options["secret_access_key"] == SECRET_KEY
    assert options["access_key_id"] == S3["s3"]["accessKeyId"]
    assert variables["DEST"] == f"{remote}:{S3['s3']['bucket']}/{S3['s3']['prefix']}/etcd"
    # No secret in the environment (checkov CKV_K8S_35).
    assert not [v for v in variables.values() if isinstance(v, dict)]
    assert find_leaks(render, {"backupSecretAccessKey": SECRET_KEY}) == []


def test_an_nfs_target_is_a_claim_on_the_export_and_no_credentials() -> None:
    render = nfs_render()
    spec = job_pod(render)
    (upload,) = spec["containers"]
    variables = env(upload)
    assert "RCLONE_CONFIG" not in variables
    mount = next(m for m in upload["volumeMounts"] if variables["DEST"].startswith(m["mountPath"]))
    volume = next(v for v in spec["volumes"] if v["name"] == mount["name"])
    (claim,) = records(render, "kubernetes:core/v1:PersistentVolumeClaim")
    assert volume["persistentVolumeClaim"]["claimName"] == claim.input("metadata.name")
    (pv,) = records(render, "kubernetes:core/v1:PersistentVolume")
    assert pv.input("spec.nfs.server") == NFS["nfs"]["server"]
    assert records(render, "kubernetes:core/v1:Secret") == []


def test_the_job_is_hardened_and_every_object_validates() -> None:
    for render in (s3_render(), nfs_render()):
        spec = job_pod(render)
        assert hardening_problems(spec) == []
        assert spec["automountServiceAccountToken"] is False
        for record in render.resources:
            if record.type == TALOS_SERVICE_ACCOUNT:
                continue  # checked against Talos's CRD above
            if record.type.startswith("command:"):
                continue  # the CRD gate, checked by tests/homelab/test_render_backups.py
            if any(a.type == COMPONENT for a in render.ancestors(record)) and record.custom:
                validate_object(record)


# --- the upload script, with a fake rclone at the process boundary ---------------------------

FAKE_RCLONE = """#!/bin/sh
# rclone's three subcommands the script uses, on a local folder standing in for the remote:
# `backup:<path>` is $FAKE_REMOTE/<path>. lsf lists file names only (--files-only) matching the
# single --include glob, like rclone's filter.
set -eu
echo "rclone $*" >> "$FAKE_LOG"
local_path() { case "$1" in backup:*) echo "$FAKE_REMOTE/${1#backup:}";; *) echo "$1";; esac; }
command="$1"; shift
case "$command" in
  copyto) dest=$(local_path "$2"); mkdir -p "$(dirname "$dest")"; cp "$1" "$dest";;
  lsf)
    glob='*'
    while [ "$#" -gt 1 ]; do
      case "$1" in --include) glob="$2"; shift 2;; --files-only) shift;; *) shift;; esac
    done
    dir=$(local_path "$1")
    [ -d "$dir" ] || exit 0
    for f in "$dir"/*; do
      [ -f "$f" ] || continue
      name=$(basename "$f")
      case "$name" in $glob) echo "$name";; esac
    done;;
  deletefile) rm "$(local_path "$1")";;
  *) echo "unexpected rclone $command" >&2; exit 2;;
esac
"""


@pytest.fixture
def fake_rclone(tmp_path: Path) -> dict[str, str]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    rclone = bin_dir / "rclone"
    rclone.write_text(FAKE_RCLONE)
    rclone.chmod(rclone.stat().st_mode | stat.S_IEXEC)
    remote = tmp_path / "remote"
    remote.mkdir()
    snapshot = tmp_path / "etcd.db"
    snapshot.write_bytes(b"snapshot bytes")
    return {
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        "FAKE_REMOTE": str(remote),
        "FAKE_LOG": str(tmp_path / "rclone.log"),
        "SNAPSHOT": str(snapshot),
    }


def run_upload(
    environment: dict[str, str], dest: str, keep: int
) -> subprocess.CompletedProcess[str]:
    sh = shutil.which("sh")
    assert sh is not None
    return subprocess.run(
        [sh, "-c", etcd_snapshots.UPLOAD_SCRIPT],
        env={**environment, "DEST": dest, "KEEP": str(keep)},
        capture_output=True,
        text=True,
        check=False,
    )


def test_the_upload_keeps_the_newest_snapshots_and_nothing_else_is_touched(
    fake_rclone: dict[str, str],
) -> None:
    folder = Path(fake_rclone["FAKE_REMOTE"]) / "homelab-backups" / "homelab" / "etcd"
    folder.mkdir(parents=True)
    old = [f"etcd-2026010{day}T030000Z.db" for day in range(1, 6)]
    for name in old:
        (folder / name).write_text("old")
    (folder / "README.txt").write_text("not a snapshot")
    result = run_upload(fake_rclone, "backup:homelab-backups/homelab/etcd", keep=3)
    assert result.returncode == 0, result.stderr
    left = sorted(p.name for p in folder.iterdir())
    snapshots = [n for n in left if n.startswith("etcd-")]
    assert len(snapshots) == 3
    # The new one (today's date sorts after January's) and the two newest old ones.
    assert snapshots[:2] == old[-2:]
    new = snapshots[2]
    assert (folder / new).read_bytes() == b"snapshot bytes"
    assert "README.txt" in left


def test_a_first_upload_into_an_empty_target_succeeds(fake_rclone: dict[str, str]) -> None:
    result = run_upload(fake_rclone, "backup:bucket/prefix/etcd", keep=1)
    assert result.returncode == 0, result.stderr
    folder = Path(fake_rclone["FAKE_REMOTE"]) / "bucket" / "prefix" / "etcd"
    assert len(list(folder.iterdir())) == 1


def test_a_failed_copy_fails_the_job_and_deletes_nothing(fake_rclone: dict[str, str]) -> None:
    folder = Path(fake_rclone["FAKE_REMOTE"]) / "b" / "etcd"
    folder.mkdir(parents=True)
    (folder / "etcd-20260101T030000Z.db").write_text("old")
    broken = {**fake_rclone, "SNAPSHOT": "/nonexistent/etcd.db"}
    result = run_upload(broken, "backup:b/etcd", keep=1)
    assert result.returncode != 0
    assert [p.name for p in folder.iterdir()] == ["etcd-20260101T030000Z.db"]


def test_a_stack_with_backups_passes_the_policy_pack() -> None:
    for render in (s3_render(), nfs_render()):
        assert _all_violations(render.resources) == []

"""Litestream beside Headscale: the restore-if-absent init step, the sidecar, and their config,
checked against Litestream's and Headscale's own rules at the pinned tags."""

from __future__ import annotations

import functools
import hashlib
import os
import shlex
import shutil
import stat
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from components.remote_access import litestream
from components.shared.backup_names import LITESTREAM_CONTAINER
from config import pins
from homelab import status
from homelab.engine import Render
from tests.components.remote_access.remote_access import (
    DEPLOYMENT,
    HEADSCALE,
    SECRET,
    child,
    children_of_type,
    env_of,
    headscale_settings,
    pod_spec,
    restricted_violations,
    under,
)
from tests.components.shared.hardening import hardening_problems
from tests.contracts import validate_object
from tests.harness import homelab_render, render_stack
from tests.security.leaks import find_leaks

SECRET_KEY = "SENTINEL-backup-secret-access-key"
S3 = {
    "s3": {
        "endpoint": "https://minio.lan:9000",
        "bucket": "homelab-backups",
        "prefix": "lab/one",
        "accessKeyId": "homelab-writer",
    }
}
NFS = {"nfs": {"server": "nas.lan", "path": "/volume1/backups"}}

# The flags `litestream restore` defines (benbjohnson/litestream@v0.5.16:
# cmd/litestream/restore.go `RestoreCommand.Run` and main.go `registerConfigFlag`).
RESTORE_FLAGS = frozenset(
    {
        "-config",
        "-no-expand-env",
        "-o",
        "-txid",
        "-parallelism",
        "-if-db-not-exists",
        "-if-replica-exists",
        "-timestamp",
        "-dry-run",
        "-force",
        "-json",
        "-f",
        "-follow-interval",
        "-integrity-check",
    }
)
# Boolean flags take no value (flag.Bool); the others consume the next argument.
RESTORE_BOOL_FLAGS = frozenset(
    {
        "-no-expand-env",
        "-if-db-not-exists",
        "-if-replica-exists",
        "-dry-run",
        "-force",
        "-json",
        "-f",
    }
)
# yaml keys of the config structs at v0.5.16 (cmd/litestream/main.go `Config`, `DBConfig`,
# `ReplicaConfig` with its inline `ReplicaSettings`, and `internal.LoggingConfig`).
CONFIG_KEYS = frozenset({"dbs", "logging", "addr", "exec", "snapshot", "levels", "retention"})
DB_KEYS = frozenset(
    {"path", "dir", "pattern", "meta-path", "replica", "replicas", "monitor-interval"}
)
REPLICA_KEYS = frozenset(
    {
        "type",
        "path",
        "url",
        "access-key-id",
        "secret-access-key",
        "region",
        "bucket",
        "endpoint",
        "force-path-style",
        "skip-verify",
        "sync-interval",
    }
)
LOGGING_KEYS = frozenset({"level", "type", "stderr", "source"})


@functools.cache
def s3_render() -> Render:
    return render_stack(overrides={"backups": S3}, secrets={"backupSecretAccessKey": SECRET_KEY})


@functools.cache
def nfs_render() -> Render:
    return render_stack(overrides={"backups": NFS})


def headscale_pod(render: Render) -> dict[str, Any]:
    return pod_spec(child(render, HEADSCALE, DEPLOYMENT, "headscale-deployment"))


def init_container(spec: dict[str, Any], name: str) -> dict[str, Any]:
    (found,) = [c for c in spec.get("initContainers", []) if c["name"] == name]
    return dict(found)


def sidecar(spec: dict[str, Any]) -> dict[str, Any]:
    (found,) = [c for c in spec["containers"] if c["name"] == LITESTREAM_CONTAINER]
    return dict(found)


def litestream_settings(render: Render) -> dict[str, Any]:
    secret = child(render, HEADSCALE, SECRET, "headscale-litestream-secret")
    document = yaml.safe_load(secret.input("stringData")[litestream.CONFIG_KEY])
    assert isinstance(document, dict)
    return document


def parse_go_flags(args: list[str], flags: frozenset[str], bools: frozenset[str]) -> list[str]:
    """The positional arguments Go's `flag` package leaves: it stops at the first argument that
    is not a flag (golang.org/pkg/flag: "Flag parsing stops just before the first non-flag
    argument"), and refuses flags it does not define."""
    rest = list(args)
    while rest and rest[0].startswith("-"):
        flag = rest.pop(0).split("=", 1)[0]
        assert flag in flags, f"litestream restore has no flag {flag}"
        if flag not in bools and "=" not in flag:
            rest.pop(0)
    return rest


# --- the restore init step --------------------------------------------------------------------


def test_without_a_target_the_pod_is_unchanged() -> None:
    spec = headscale_pod(homelab_render())
    assert "initContainers" not in spec
    assert [c["name"] for c in spec["containers"]] == ["headscale"]
    names = {r.name for r in children_of_type(homelab_render(), HEADSCALE, SECRET)}
    assert "headscale-litestream-secret" not in names


def restore_commands(spec: dict[str, Any]) -> list[list[str]]:
    """The `litestream ...` command lines of the restore step's script."""
    restore = init_container(spec, litestream.RESTORE_CONTAINER)
    assert restore["command"][:2] == ["/bin/sh", "-c"]
    script = restore["command"][2]
    assert script.startswith("set -eu\n"), "a failed restore must stop the pod"
    return [shlex.split(line) for line in script.splitlines() if line.startswith("litestream ")]


def test_restore_runs_before_headscale_with_both_guards_and_the_database_as_the_one_argument() -> (
    None
):
    """The path must be the only positional argument, after every flag (cmd/litestream/restore.go
    @ v0.5.16: `fs.NArg() > 1` is "too many arguments"; the DB is looked up in the config by it).
    -if-db-not-exists keeps an existing database (`errSkipDBExists`), -if-replica-exists turns
    "no backup yet" into success (`ErrTxNotAvailable` -> return nil) so the first `up` starts."""
    spec = headscale_pod(s3_render())
    restore = init_container(spec, litestream.RESTORE_CONTAINER)
    assert restore["image"] == pins.LITESTREAM_IMAGE
    database = headscale_settings(s3_render())["database"]
    assert database["type"] == "sqlite"
    restored = []
    for command in restore_commands(spec):
        assert command[:2] == ["litestream", "restore"]
        args = command[2:]
        (path,) = parse_go_flags(args, RESTORE_FLAGS, RESTORE_BOOL_FLAGS)
        assert {"-if-db-not-exists", "-if-replica-exists"} <= set(args)
        assert args[args.index("-config") + 1] == litestream.CONFIG_PATH
        restored.append(path)
    configured = [db["path"] for db in litestream_settings(s3_render())["dbs"]]
    assert restored == configured
    assert database["sqlite"]["path"] in restored


def test_the_restore_and_the_sidecar_see_headscales_database_where_headscale_writes_it() -> None:
    spec = headscale_pod(s3_render())
    database = headscale_settings(s3_render())["database"]["sqlite"]["path"]
    headscale = next(c for c in spec["containers"] if c["name"] == "headscale")
    data_mount = next(m for m in headscale["volumeMounts"] if database.startswith(m["mountPath"]))
    for name, c in [
        (litestream.RESTORE_CONTAINER, init_container(spec, litestream.RESTORE_CONTAINER)),
        (LITESTREAM_CONTAINER, sidecar(spec)),
    ]:
        mounts = {m["mountPath"]: m for m in c["volumeMounts"]}
        assert mounts[data_mount["mountPath"]]["name"] == data_mount["name"], name
        assert not mounts[data_mount["mountPath"]].get("readOnly"), f"{name} writes the database"
        config_mount = mounts[litestream.CONFIG_DIR]
        volume = next(v for v in spec["volumes"] if v["name"] == config_mount["name"])
        assert volume["secret"]["secretName"] == litestream.SECRET


def test_headscale_keeps_sqlite_in_wal_mode_which_litestream_requires() -> None:
    """Litestream replicates WAL frames; Headscale sets journal_mode=WAL only with
    `write_ahead_log: true` (juanfont/headscale@v0.28.0:hscontrol/db/db.go, sqliteConfig), and
    checkpoints passively at its default 1000 pages (hscontrol/types/config.go), which cannot pass
    Litestream's read transaction (benbjohnson/litestream@v0.5.16:db.go `rtx`)."""
    sqlite = headscale_settings(s3_render())["database"]["sqlite"]
    assert sqlite["write_ahead_log"] is True
    # Left at Headscale's default: automatic checkpoints stay PASSIVE (sqlite.org wal_autocheckpoint).
    assert "wal_autocheckpoint" not in sqlite


# --- the sidecar and its config ---------------------------------------------------------------


def test_the_sidecar_replicates_with_the_same_config_the_restore_reads() -> None:
    spec = headscale_pod(s3_render())
    args = sidecar(spec)["args"]
    assert args[0] == "replicate"
    assert args[args.index("-config") + 1] == litestream.CONFIG_PATH


def test_the_config_uses_only_keys_litestream_reads_and_one_replica() -> None:
    """Litestream v0.5 takes `replica:` (one per database); `replicas:` is deprecated
    (benbjohnson/litestream@v0.5.16:cmd/litestream/main.go `DBConfig`). Unknown keys would be
    ignored silently by yaml.Unmarshal, so they are checked against the struct tags here."""
    for render in (s3_render(), nfs_render()):
        settings = litestream_settings(render)
        assert set(settings) <= CONFIG_KEYS
        assert set(settings["logging"]) <= LOGGING_KEYS
        for db in settings["dbs"]:
            assert set(db) <= DB_KEYS
            assert "replicas" not in db
            assert set(db["replica"]) <= REPLICA_KEYS
        paths = [db["path"] for db in settings["dbs"]]
        assert headscale_settings(render)["database"]["sqlite"]["path"] in paths
        replicas = [db["replica"]["path"] for db in settings["dbs"]]
        assert len(set(replicas)) == len(replicas), "each database needs its own replica folder"


def test_an_s3_target_names_the_bucket_and_a_headscale_folder_below_the_prefix() -> None:
    replica = litestream_settings(s3_render())["dbs"][0]["replica"]
    assert replica["type"] == "s3"
    assert replica["bucket"] == S3["s3"]["bucket"]
    assert replica["endpoint"] == S3["s3"]["endpoint"]
    assert replica["path"].startswith(S3["s3"]["prefix"] + "/")


def test_s3_credentials_are_in_the_secret_config_file_not_the_environment() -> None:
    """Litestream uses the replica's own `access-key-id`/`secret-access-key` as static
    credentials when both are set (benbjohnson/litestream@v0.5.16:cmd/litestream/main.go
    NewS3ReplicaClientFromConfig, s3/replica_client.go); a file keeps the secret out of the
    processes' environment (checkov CKV_K8S_35)."""
    render = s3_render()
    for db in litestream_settings(render)["dbs"]:
        assert db["replica"]["access-key-id"] == S3["s3"]["accessKeyId"]
        assert db["replica"]["secret-access-key"] == SECRET_KEY
    secret = child(render, HEADSCALE, SECRET, "headscale-litestream-secret")
    assert secret.is_secret("stringData")
    spec = headscale_pod(render)
    for c in [init_container(spec, litestream.RESTORE_CONTAINER), sidecar(spec)]:
        assert not [v for v in env_of(c).values() if isinstance(v, dict)], c["name"]
    annotations = child(render, HEADSCALE, DEPLOYMENT, "headscale-deployment").input(
        "spec.template.metadata.annotations"
    )
    assert find_leaks(render, {"backupSecretAccessKey": SECRET_KEY}) == []
    assert annotations["checksum/litestream"] == litestream_checksum_without(render)


def litestream_checksum_without(render: Render) -> str:
    """The checksum of the config with the credentials left out (never a hash of the secret)."""
    settings = litestream_settings(render)
    for db in settings["dbs"]:
        db["replica"].pop("access-key-id", None)
        db["replica"].pop("secret-access-key", None)
    text = yaml.safe_dump(settings, sort_keys=True) + litestream.KEYS_SCRIPT
    return hashlib.sha256(text.encode()).hexdigest()


def test_the_sidecars_probes_ask_litestreams_metrics_listener_on_a_port_headscale_leaves_free() -> (
    None
):
    """`addr` starts Litestream's /metrics listener (cmd/litestream/replicate.go @ v0.5.16); the
    pod's containers share one network namespace, so it must not be a port Headscale listens on."""
    render = s3_render()
    addr = litestream_settings(render)["addr"]
    port = int(addr.rpartition(":")[2])
    settings = headscale_settings(render)
    taken = {
        int(str(settings[key]).rpartition(":")[2])
        for key in ("listen_addr", "metrics_listen_addr", "grpc_listen_addr")
    }
    assert port not in taken
    container = sidecar(headscale_pod(render))
    (declared,) = container["ports"]
    assert declared["containerPort"] == port
    for probe in ("readinessProbe", "livenessProbe"):
        assert container[probe]["httpGet"] == {"path": "/metrics", "port": declared["name"]}


def test_an_nfs_target_is_a_claim_not_an_inline_volume_so_the_pod_stays_restricted() -> None:
    render = nfs_render()
    spec = headscale_pod(render)
    replica = litestream_settings(render)["dbs"][0]["replica"]
    assert replica["type"] == "file"
    replicating = sidecar(spec)
    mount = next(
        m for m in replicating["volumeMounts"] if replica["path"].startswith(m["mountPath"])
    )
    volume = next(v for v in spec["volumes"] if v["name"] == mount["name"])
    claim = child(
        render, HEADSCALE, "kubernetes:core/v1:PersistentVolumeClaim", "headscale-litestream-nfs"
    )
    assert volume["persistentVolumeClaim"]["claimName"] == claim.input("metadata.name")
    pv = child(
        render, HEADSCALE, "kubernetes:core/v1:PersistentVolume", "headscale-litestream-nfs-volume"
    )
    assert pv.input("spec.nfs") == {"server": "nas.lan", "path": "/volume1/backups"}
    assert pv.input("spec.claimRef.name") == claim.input("metadata.name")
    assert pv.input("spec.persistentVolumeReclaimPolicy") == "Retain"
    # An empty class: the default (local-path) class must not provision it instead.
    assert claim.input("spec.storageClassName") == "" == pv.input("spec.storageClassName")
    assert not [name for name in env_of(replicating) if name.startswith("LITESTREAM_")]


def test_every_container_of_the_pod_is_restricted_and_hardened() -> None:
    for render in (s3_render(), nfs_render()):
        spec = headscale_pod(render)
        every = {**spec, "containers": spec["containers"] + spec.get("initContainers", [])}
        assert restricted_violations(every) == []
        assert hardening_problems(spec) == []


def test_the_new_objects_validate_against_the_strict_kubernetes_schemas() -> None:
    for render in (s3_render(), nfs_render()):
        for record in render.resources:
            if "litestream" in record.name or record.name == "headscale-deployment":
                validate_object(record)


def test_a_changed_target_rolls_the_pod() -> None:
    def checksum(render: Render) -> str:
        record = child(render, HEADSCALE, DEPLOYMENT, "headscale-deployment")
        value = record.input("spec.template.metadata.annotations")["checksum/litestream"]
        assert isinstance(value, str)
        return value

    assert checksum(s3_render()) != checksum(nfs_render())


def test_what_a_rebuild_keeps_protected_and_what_it_recreates() -> None:
    """On the homelab the data claim (and its namespace) stay protected; everything Litestream
    adds is recreated freely on a rebuild, because the state it carries lives on the target."""
    render = s3_render()
    claim = child(render, HEADSCALE, "kubernetes:core/v1:PersistentVolumeClaim", "headscale-data")
    assert claim.protect
    for record in render.resources:
        if "litestream" in record.name:
            assert not record.protect, record.name


# --- Headscale's key files, with a fake litestream and the real sqlite3 -----------------------

FAKE_LITESTREAM = """#!/bin/sh
# `litestream restore [flags] PATH` against a folder of replicas ($FAKE_REPLICAS/<file name>),
# with the two guards' upstream meaning (cmd/litestream/restore.go @ v0.5.16).
set -eu
[ "$1" = restore ] || { echo "unexpected litestream $1" >&2; exit 2; }
shift
if_db_not_exists=no; if_replica_exists=no
while [ "$#" -gt 1 ]; do
  case "$1" in
    -config) shift 2;;
    -if-db-not-exists) if_db_not_exists=yes; shift;;
    -if-replica-exists) if_replica_exists=yes; shift;;
    *) echo "unexpected flag $1" >&2; exit 2;;
  esac
done
path="$1"
if [ -e "$path" ] && [ "$if_db_not_exists" = yes ]; then exit 0; fi
replica="$FAKE_REPLICAS/$(basename "$path")"
if [ ! -e "$replica" ]; then
  [ "$if_replica_exists" = yes ] && exit 0
  echo "no matching backup files available" >&2; exit 1
fi
cp "$replica" "$path"
"""


@pytest.fixture
def pod_disk(tmp_path: Path) -> dict[str, Any]:
    if shutil.which("sqlite3") is None:
        pytest.skip("the sqlite3 CLI (as in Litestream's Debian image) is not installed")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "litestream"
    fake.write_text(FAKE_LITESTREAM)
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    replicas = tmp_path / "replicas"
    replicas.mkdir()
    data = tmp_path / "data"
    data.mkdir()
    files = litestream.HeadscaleFiles(
        database=str(data / "db.sqlite"),
        keys=(str(data / "derp_server_private.key"), str(data / "noise_private.key")),
    )
    env = {
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        "FAKE_REPLICAS": str(replicas),
        "KEYS_DB": files.keys_database,
        "KEY_FILES": " ".join(files.keys),
    }
    return {"files": files, "env": env, "data": data, "replicas": replicas}


def sh(script: str, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    shell = shutil.which("sh")
    assert shell is not None
    return subprocess.run(
        [shell, "-c", script, "sh", *args], env=env, capture_output=True, text=True, check=False
    )


def test_a_lost_disk_gets_headscales_database_and_its_keys_back(pod_disk: dict[str, Any]) -> None:
    files: litestream.HeadscaleFiles = pod_disk["files"]
    data: Path = pod_disk["data"]
    env: dict[str, str] = pod_disk["env"]
    # The pod before the loss: Headscale wrote its keys and database; the sidecar copied the keys.
    (data / "noise_private.key").write_text("privkey:noise-before-the-loss\n")
    (data / "derp_server_private.key").write_text("privkey:derp-before-the-loss\n")
    (data / "db.sqlite").write_text("headscale database")
    copied = sh(litestream.KEYS_SCRIPT, env, "once")
    assert copied.returncode == 0, copied.stderr
    for name in ("db.sqlite", litestream.KEYS_DB_NAME):
        shutil.copy(data / name, pod_disk["replicas"] / name)
    # The disk is lost: the next pod starts on an empty volume.
    for path in data.iterdir():
        path.unlink()
    restored = sh(litestream.restore_script(files), env)
    assert restored.returncode == 0, restored.stderr
    assert (data / "db.sqlite").read_text() == "headscale database"
    assert (data / "noise_private.key").read_text() == "privkey:noise-before-the-loss\n"
    assert (data / "derp_server_private.key").read_text() == "privkey:derp-before-the-loss\n"
    assert stat.S_IMODE((data / "noise_private.key").stat().st_mode) == 0o600


def test_a_key_the_sidecar_never_copied_does_not_stop_the_pod(pod_disk: dict[str, Any]) -> None:
    files: litestream.HeadscaleFiles = pod_disk["files"]
    data: Path = pod_disk["data"]
    env: dict[str, str] = pod_disk["env"]
    # Only one key was ever copied (the last one the loop visits is the missing one).
    (data / "derp_server_private.key").write_text("privkey:derp\n")
    assert sh(litestream.KEYS_SCRIPT, env, "once").returncode == 0
    shutil.copy(data / litestream.KEYS_DB_NAME, pod_disk["replicas"] / litestream.KEYS_DB_NAME)
    for path in data.iterdir():
        path.unlink()
    restored = sh(litestream.restore_script(files), env)
    assert restored.returncode == 0, restored.stderr
    assert (data / "derp_server_private.key").read_text() == "privkey:derp\n"
    assert not (data / "noise_private.key").exists()


def test_a_restart_keeps_what_is_on_the_disk(pod_disk: dict[str, Any]) -> None:
    files: litestream.HeadscaleFiles = pod_disk["files"]
    data: Path = pod_disk["data"]
    env: dict[str, str] = pod_disk["env"]
    (data / "noise_private.key").write_text("privkey:old\n")
    assert sh(litestream.KEYS_SCRIPT, env, "once").returncode == 0
    shutil.copy(data / litestream.KEYS_DB_NAME, pod_disk["replicas"] / litestream.KEYS_DB_NAME)
    (pod_disk["replicas"] / "db.sqlite").write_text("older replica")
    (data / "db.sqlite").write_text("current database")
    (data / "noise_private.key").write_text("privkey:current\n")
    restored = sh(litestream.restore_script(files), env)
    assert restored.returncode == 0, restored.stderr
    assert (data / "db.sqlite").read_text() == "current database"
    assert (data / "noise_private.key").read_text() == "privkey:current\n"


def test_the_first_start_with_no_backup_yet_starts_empty(pod_disk: dict[str, Any]) -> None:
    restored = sh(litestream.restore_script(pod_disk["files"]), pod_disk["env"])
    assert restored.returncode == 0, restored.stderr
    assert list(pod_disk["data"].iterdir()) == []


def test_a_changed_key_is_copied_again(
    pod_disk: dict[str, Any],
) -> None:
    data: Path = pod_disk["data"]
    env: dict[str, str] = pod_disk["env"]
    key = data / "noise_private.key"
    key.write_text("privkey:one\n")
    assert sh(litestream.KEYS_SCRIPT, env, "once").returncode == 0

    def stored() -> str:
        result = subprocess.run(
            ["sqlite3", env["KEYS_DB"], f"SELECT hex(content) FROM files WHERE name = '{key}';"],
            capture_output=True,
            check=True,
        )
        return bytes.fromhex(result.stdout.decode().strip()).decode()

    assert stored() == "privkey:one\n"
    key.write_text("privkey:two\n")
    assert sh(litestream.KEYS_SCRIPT, env, "once").returncode == 0
    assert stored() == "privkey:two\n"


def test_the_sidecar_runs_the_key_copier_under_litestream_from_the_mounted_secret() -> None:
    spec = headscale_pod(s3_render())
    args = sidecar(spec)["args"]
    command = shlex.split(args[args.index("-exec") + 1])
    assert command[0] == "/bin/sh"
    mounted = command[1]
    assert mounted.startswith(litestream.CONFIG_DIR + "/")
    volume = next(v for v in spec["volumes"] if v["name"] == litestream.CONFIG_VOLUME)
    items = {i["path"] for i in volume["secret"]["items"]}
    assert mounted.removeprefix(litestream.CONFIG_DIR + "/") in items
    secret = child(s3_render(), HEADSCALE, SECRET, "headscale-litestream-secret")
    assert secret.input("stringData")[litestream.KEYS_SCRIPT_KEY] == litestream.KEYS_SCRIPT
    settings = headscale_settings(s3_render())
    expected = {
        settings["noise"]["private_key_path"],
        settings["derp"]["server"]["private_key_path"],
    }
    assert set(env_of(sidecar(spec))["KEY_FILES"].split()) == expected


def test_status_asks_litestream_with_the_sidecars_own_config_file() -> None:
    """`python -m homelab status` runs `litestream ltx -config <path>` in the sidecar; the path
    must be the one the pod mounts (homelab/status.py LITESTREAM_CONFIG_PATH)."""
    spec = headscale_pod(s3_render())
    args = sidecar(spec)["args"]
    assert args[args.index("-config") + 1] == status.LITESTREAM_CONFIG_PATH
    assert status.LITESTREAM_CONFIG_PATH == litestream.CONFIG_PATH


def test_on_a_rebuild_the_pod_is_created_after_what_its_restore_step_reads() -> None:
    """From an empty state (a rebuilt cluster) the Deployment must not start before its Secret
    (config and key copier) and, for NFS, the claim on the export exist."""
    for render in (s3_render(), nfs_render()):
        deployment = child(render, HEADSCALE, DEPLOYMENT, "headscale-deployment")
        needed = [r for r in under(render, HEADSCALE) if "litestream" in r.name and r.custom]
        assert needed
        for record in needed:
            if record.type == "kubernetes:core/v1:PersistentVolume":
                continue  # reached through its claim
            assert record.urn in deployment.dependencies, record.name


def test_the_image_has_the_shell_and_sqlite3_the_scripts_run() -> None:
    """The default image is Debian with `sqlite3` installed; the `-scratch` variant has neither a
    shell nor sqlite3 (benbjohnson/litestream@v0.5.16:Dockerfile targets `default`, `hardened`;
    .github/workflows/release.docker.yml tags the latter `-scratch`)."""
    assert not pins.LITESTREAM_IMAGE.endswith("-scratch")
    spec = headscale_pod(s3_render())
    assert init_container(spec, litestream.RESTORE_CONTAINER)["command"][0] == "/bin/sh"

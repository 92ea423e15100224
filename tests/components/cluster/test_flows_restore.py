"""docs/operations.md "Backups and restore": the etcd snapshot the CronJob takes, and a restore
from it, with the cluster's state in Pulumi kept and with it lost (no `--target`: a targeted
create that depends on untargeted creates is refused by Pulumi), as a person runs them against the
shared world."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

from components.cluster import etcd_snapshots
from homelab.engine import Render
from tests import harness
from tests.components.cluster.scenarios import CP1, CP2, CP3, Homelab, deployed_copy
from tests.world import etcd, flow, talos_model
from tests.world.world import Result

CRON_JOB = "kubernetes:batch/v1:CronJob"
NFS = {"nfs": {"server": "192.168.0.5", "path": "/export/homelab"}}
MARKER = {
    "apiVersion": "v1",
    "kind": "ConfigMap",
    "metadata": {"name": "before-the-snapshot", "namespace": "default"},
}
CONTROL_PLANES = (CP1, CP2, CP3)


@functools.cache
def backups_render() -> Render:
    return harness.render_stack(overrides={"backups": NFS})


def snapshot_job(homelab: Homelab, into: Path) -> Result:
    """The CronJob's `snapshot` init container as its pod runs it: talosctl with the arguments
    the render gives it and TALOSCONFIG at the Secret Talos writes for the Talos ServiceAccount
    (endpoint `talos.default`, no nodes, role os:etcd:backup)."""
    spec = backups_render().one(CRON_JOB).input("spec.jobTemplate.spec.template.spec")
    assert isinstance(spec, dict)
    (init,) = spec["initContainers"]
    config = into / "talos-sa-config"
    config.write_text(homelab.world.service_account_talosconfig([etcd_snapshots.ETCD_BACKUP_ROLE]))
    args = [str(into / "etcd.db") if a == etcd_snapshots.SNAPSHOT_FILE else a for a in init["args"]]
    return homelab.world.cli("talosctl", *args, env={"TALOSCONFIG": str(config)})


def lose_etcd_and_recover(homelab: Homelab, snapshot: Path) -> None:
    """The documented recovery: wipe EPHEMERAL (etcd's data) on every control plane, then
    bootstrap the first from the snapshot (siderolabs/talos@v1.13.9:
    cmd/talosctl/cmd/talos/bootstrap.go `--recover-from`); the others join it."""
    for node in CONTROL_PLANES:
        wiped = homelab.talosctl(
            "-e",
            node,
            "-n",
            node,
            "reset",
            "--graceful=false",
            "--reboot",
            "--system-labels-to-wipe=EPHEMERAL",
        )
        assert wiped.returncode == 0, wiped.stderr
    homelab.world.advance(talos_model.REBOOT_SECONDS)
    assert etcd.members(homelab.world.state) == []
    recovered = homelab.talosctl("-e", CP1, "-n", CP1, "bootstrap", f"--recover-from={snapshot}")
    assert recovered.returncode == 0, recovered.stderr
    homelab.world.advance(180)


def test_the_snapshot_job_takes_a_snapshot_from_a_control_plane_that_is_up(
    deployments: Path, tmp_path: Path
) -> None:
    """With the first control plane dead, `talos.default` leads to another, whose apid serves
    `--nodes 127.0.0.1` itself (components/cluster/etcd_snapshots.py `snapshot_args`)."""
    homelab = deployed_copy("ha", deployments, tmp_path)
    homelab.world.node_dies(CP1)
    homelab.world.advance(60)
    taken = snapshot_job(homelab, homelab.world.tmp)
    assert taken.returncode == 0, taken.stderr
    assert taken.stdout.startswith(f'etcd snapshot saved to "{homelab.world.tmp / "etcd.db"}"')
    (snapshot,) = homelab.world.state["talos"]["snapshots"]
    assert snapshot["node"] in (CP2, CP3)


def test_etcd_restored_from_a_snapshot_and_up_goes_on_without_a_second_bootstrap(
    deployments: Path, tmp_path: Path
) -> None:
    homelab = deployed_copy("ha", deployments, tmp_path)
    homelab.world.put_object(MARKER)
    assert snapshot_job(homelab, homelab.world.tmp).returncode == 0
    lose_etcd_and_recover(homelab, homelab.world.tmp / "etcd.db")
    assert "ConfigMap/default/before-the-snapshot" in homelab.world.state["kube"]["objects"]
    after = homelab.up()
    assert after.ok, after.failure
    assert [n for n in after.ran("create", "replace", "delete") if n.startswith("cluster")] == []
    health = homelab.talosctl("-e", CP1, "-n", CP1, "health", "--wait-timeout", "5m")
    assert health.returncode == 0, health.stderr


def imported(stack: flow.Stack) -> flow.Stack:
    """A new stack after `pulumi import` of the secrets bundle under its component."""
    kept = {
        urn: entry
        for urn, entry in stack.resources.items()
        if entry.name in ("cluster", "cluster-secrets") or entry.type == "pulumi:pulumi:Stack"
    }
    assert len(kept) >= 2, sorted(e.name for e in stack.resources.values())
    return flow.Stack(resources=kept)


def test_the_pulumi_state_lost_the_cluster_rebuilt_from_its_secrets_and_its_snapshot(
    deployments: Path, tmp_path: Path
) -> None:
    """(c): the stack again with the imported secrets bundle, the nodes reset to maintenance
    mode (STATE and EPHEMERAL wiped), `up` without `--target` builds the cluster, then etcd comes
    back from the snapshot, `refresh` and `up`."""
    homelab = deployed_copy("ha", deployments, tmp_path)
    homelab.world.put_object(MARKER)
    assert snapshot_job(homelab, homelab.world.tmp).returncode == 0
    homelab.stack = imported(homelab.stack)
    for node in CONTROL_PLANES:
        reset = homelab.talosctl(
            "-e",
            node,
            "-n",
            node,
            "reset",
            "--graceful=false",
            "--reboot",
            "--system-labels-to-wipe=STATE",
            "--system-labels-to-wipe=EPHEMERAL",
        )
        assert reset.returncode == 0, reset.stderr
    homelab.world.advance(talos_model.REBOOT_SECONDS)
    assert {m["state"] for m in homelab.world.state["talos"]["nodes"].values()} == {"maintenance"}
    rebuilt = homelab.up()
    if not rebuilt.ok:  # a first `up` may need a second (tests/world/test_flow.py)
        rebuilt = homelab.up()
    assert rebuilt.ok, rebuilt.failure
    lose_etcd_and_recover(homelab, homelab.world.tmp / "etcd.db")
    assert "ConfigMap/default/before-the-snapshot" in homelab.world.state["kube"]["objects"]
    homelab.stack = flow.refresh(homelab.world, homelab.stack)
    after = homelab.up()
    assert after.ok, after.failure
    objects: dict[str, Any] = homelab.world.state["kube"]["objects"]
    assert "Namespace//headscale" in objects

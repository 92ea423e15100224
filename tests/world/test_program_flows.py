"""Flows of one program: the real program of a Command (taken from a render by resource name),
run in the state a person meets. Those the faithful world shows failing today are marked
xfail(strict) with the issue that fixes them: when a fix lands, the test passes and the mark
must go."""

from __future__ import annotations

import functools
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from components.cluster import etcd_snapshots
from homelab.engine import Render
from tests import harness
from tests.world.test_flow import serve_traefik_crds
from tests.world.world import World

COMMAND = "command:local:Command"
CP1, CP2, CP3 = "192.168.0.11", "192.168.0.12", "192.168.0.13"
VIP = "192.168.0.10"
WORKER = {"hostname": "talos-w-1", "ip": "192.168.0.21", "role": "worker"}
ALL = {CP1: "talos-cp-1", CP2: "talos-cp-2", CP3: "talos-cp-3"}


def command(render: Render, name: str) -> tuple[str, str | None, dict[str, str]]:
    """(create, update, environment) of the Command `name`."""
    record = render.one(COMMAND, name)
    environment = {str(k): str(v) for k, v in (record.inputs.get("environment") or {}).items()}
    return record.inputs["create"], record.inputs.get("update"), environment


def trusted_world(tmp_path: Path, environment: Mapping[str, str]) -> World:
    """A world whose cluster takes the credentials the render hands its Commands."""
    world = World.create(tmp_path / "world")
    if "HOMELAB_TALOSCONFIG" in environment:
        world.trust_talosconfig(environment["HOMELAB_TALOSCONFIG"])
    if "HOMELAB_KUBECONFIG" in environment:
        world.trust_kubeconfig(environment["HOMELAB_KUBECONFIG"])
    return world


@functools.cache
def with_worker() -> Render:
    raw = harness.stack_raw_config()
    return harness.render_config(
        harness.with_changes(
            raw,
            {
                "cluster.nodes": [*raw["cluster"]["nodes"], WORKER],
                "cluster.allowSchedulingOnControlPlanes": True,
            },
        )
    )


def test_a_talos_patch_bump_upgrades_a_healthy_node(tmp_path: Path) -> None:
    """The common roll works: cp-1's step of a v1.13.10 render on a healthy cluster at v1.13.9
    checks health, upgrades, and cp-1 comes back on the new version."""
    raw = harness.stack_raw_config()
    bumped = harness.render_config(harness.with_changes(raw, {"cluster.talosVersion": "v1.13.10"}))
    program, _, environment = command(bumped, "cluster-talos-upgrade-talos-cp-1")
    world = trusted_world(tmp_path, environment)
    world.install_cluster(control_planes=ALL, vip=VIP)
    result = world.run(program, environment)
    assert result.returncode == 0, result.stderr
    assert world.machine(CP1)["version"] == "v1.13.10"
    assert world.machine(CP2)["version"] == "v1.13.9"
    upgrades = [c for c in world.calls("talosctl") if "upgrade" in c["argv"]]
    assert len(upgrades) == 1


def test_removing_a_healthy_worker_drains_stops_and_deletes_it(tmp_path: Path) -> None:
    before, after = with_worker(), harness.homelab_render()
    world = trusted_world(tmp_path, command(after, "cluster-node-set")[2])
    world.install_cluster(control_planes=ALL, workers={WORKER["ip"]: WORKER["hostname"]}, vip=VIP)
    world.deploy("apps", "grafana", on_node=WORKER["hostname"])
    result = node_set_update(world, before, after)
    assert result.returncode == 0, result.stderr
    assert WORKER["hostname"] not in world.state["kube"]["nodes"]
    assert world.machine(WORKER["ip"])["state"] == "off"


def test_growing_to_three_control_planes_passes_the_first_ones_roll_step(tmp_path: Path) -> None:
    """The config now lists three control planes; the two new machines are still in
    maintenance mode when cp-1's roll step runs again (its program changed). Its endpoints are
    the other control planes, whose self-signed certificates the talosconfig does not trust
    (TLS is per endpoint), and cp-1 refuses the insecure fallback."""
    program, _, environment = command(harness.homelab_render(), "cluster-talos-upgrade-talos-cp-1")
    world = trusted_world(tmp_path, environment)
    world.install_cluster(control_planes={CP1: "talos-cp-1"}, vip=VIP)
    world.add_machine(CP2)
    world.add_machine(CP3)
    result = world.run(program, environment)
    assert result.returncode == 0, result.stderr


def test_the_snapshot_job_reaches_a_control_plane(tmp_path: Path) -> None:
    """The CronJob's init container runs `talosctl <snapshot_args>` with the talosconfig Talos
    wrote for its ServiceAccount: endpoint `talos.default`, no nodes."""
    world = World.create(tmp_path / "world")
    world.install_cluster(control_planes=ALL, vip=VIP)
    config = world.tmp / "config"
    config.write_text(world.service_account_talosconfig([etcd_snapshots.ETCD_BACKUP_ROLE]))
    target = str(world.tmp / "etcd.db")
    argv = [
        target if a == etcd_snapshots.SNAPSHOT_FILE else a for a in etcd_snapshots.snapshot_args()
    ]
    result = world.cli("talosctl", *argv, env={"TALOSCONFIG": str(config)})
    assert result.returncode == 0, result.stderr


def node_set_update(world: World, before: Render, after: Render) -> Any:
    """The node set's `update` after `before` recorded its nodes (its `create`)."""
    create, _, environment = command(before, "cluster-node-set")
    recorded = world.run(create, environment)
    assert recorded.returncode == 0, recorded.stderr
    _, update, environment = command(after, "cluster-node-set")
    assert update is not None
    return world.run(update, {**environment, "PULUMI_COMMAND_STDOUT": recorded.stdout.strip()})


def test_removing_a_dead_worker_goes_through(tmp_path: Path) -> None:
    """The worker died hours ago; its pods are Terminating on a kubelet that will never answer.
    The person removes it from the config and runs `up`."""
    before, after = with_worker(), harness.homelab_render()
    world = trusted_world(tmp_path, command(after, "cluster-node-set")[2])
    world.install_cluster(control_planes=ALL, workers={WORKER["ip"]: WORKER["hostname"]}, vip=VIP)
    world.deploy("apps", "grafana", on_node=WORKER["hostname"])
    world.node_dies(WORKER["ip"])
    world.advance(3600)
    result = node_set_update(world, before, after)
    assert result.returncode == 0, result.stderr


def test_a_rename_waits_for_the_new_node(tmp_path: Path) -> None:
    """The apply renamed cp-1 a moment ago; its kubelet registers the new Node some seconds
    later (tests/world/talos_model.py KUBELET_REGISTER_SECONDS)."""
    raw = harness.stack_raw_config()
    renamed = harness.render_config(
        harness.with_changes(raw, {"cluster.nodes.0.hostname": "talos-cp-9"})
    )
    world = trusted_world(tmp_path, command(renamed, "cluster-node-set")[2])
    world.install_cluster(control_planes=ALL, vip=VIP)
    with world.edit() as state:
        machine = state["talos"]["nodes"][CP1]
        machine["hostname"] = "talos-cp-9"
        machine["kubelet_from"] = state["clock"] + 20
    result = node_set_update(world, harness.homelab_render(), renamed)
    assert result.returncode == 0, result.stderr


@pytest.mark.xfail(
    strict=True, reason="issue 23 blocker 3: the first `up` can fail before the API server serves"
)
def test_the_traefik_crds_wait_for_the_api_server(tmp_path: Path) -> None:
    """Bootstrap just happened: the Kubeconfig resource exists at once, kube-apiserver serves
    a minute or two later (tests/world/kube/cluster.py APISERVER_START_SECONDS). The CRD
    Command depends only on the Kubeconfig."""
    program, _, environment = command(harness.homelab_render(), "traefik-crds")
    world = trusted_world(tmp_path, environment)
    serve_traefik_crds(world)
    world.install_cluster(control_planes=ALL, vip=VIP)
    with world.edit() as state:
        state["talos"]["cluster"]["api_from"] = state["clock"] + 90
    result = world.run(program, environment)
    assert result.returncode == 0, result.stderr

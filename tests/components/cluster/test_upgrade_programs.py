"""The roll's programs as they run, against the shared world (tests/world): one node's Talos step,
the Kubernetes step and a reboot step, taken from a render and run in the state a person meets.
The sequences of `up`s are in test_flows_versions.py."""

from __future__ import annotations

import functools
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from components.cluster import upgrade
from homelab.engine import Render
from tests import harness
from tests.world import talos_model
from tests.world.world import Result, World

COMMAND = "command:local:Command"
CP1, CP2, CP3, W1 = "192.168.0.11", "192.168.0.12", "192.168.0.13", "192.168.0.21"
CONTROL_PLANES = {CP1: "talos-cp-1", CP2: "talos-cp-2", CP3: "talos-cp-3"}
WORKERS = {W1: "talos-w-1"}
VIP = "192.168.0.10"
BUMP = "v1.13.10"
WORKER = {"hostname": "talos-w-1", "ip": W1, "role": "worker"}


@functools.cache
def render(talos: str = BUMP, kubernetes: str = "1.36.3") -> Render:
    raw = harness.stack_raw_config()
    return harness.render_config(
        harness.with_changes(
            raw,
            {
                "cluster.nodes": [*raw["cluster"]["nodes"], WORKER],
                "cluster.allowSchedulingOnControlPlanes": True,
                "cluster.talosVersion": talos,
                "cluster.kubernetesVersion": kubernetes,
            },
        )
    )


def step(name: str, talos: str = BUMP, kubernetes: str = "1.36.3") -> tuple[str, dict[str, str]]:
    """(create, environment) of a step as rendered (its waits are on the world's virtual
    clock: tests/world/clock.py)."""
    record = render(talos, kubernetes).one(COMMAND, name)
    environment = {str(k): str(v) for k, v in record.inputs["environment"].items()}
    return record.inputs["create"], environment


def cluster(tmp_path: Path, environment: Mapping[str, str], **kwargs: Any) -> World:
    """Three control planes and a worker at v1.13.9, trusting the render's talosconfig."""
    world = World.create(tmp_path / "world", **kwargs)
    world.trust_talosconfig(environment[upgrade.TALOSCONFIG_ENV])
    world.install_cluster(control_planes=CONTROL_PLANES, workers=WORKERS, vip=VIP)
    return world


def verbs(world: World, since: int = 0) -> list[tuple[str, str]]:
    """(talosctl verb, --nodes) of each call, the client version check left out."""
    found = []
    for call in world.calls("talosctl")[since:]:
        argv = call["argv"]
        if "--nodes" not in argv:
            continue
        at = argv.index("--nodes")
        found.append((argv[at + 2] if at + 2 < len(argv) else "", argv[at + 1]))
    return found


def roll(world: World, hostname: str) -> Result:
    program, environment = step(f"cluster-talos-upgrade-{hostname}")
    return world.run(program, environment)


def test_a_roll_upgrades_each_node_between_two_health_checks(tmp_path: Path) -> None:
    environment = step("cluster-talos-upgrade-talos-cp-1")[1]
    world = cluster(tmp_path, environment)
    for hostname in (*CONTROL_PLANES.values(), *WORKERS.values()):
        since = len(world.calls("talosctl"))
        result = roll(world, hostname)
        assert result.returncode == 0, result.stderr
        acted = [v for v in verbs(world, since) if v[0] in ("health", "upgrade")]
        address = next(a for a, h in {**CONTROL_PLANES, **WORKERS}.items() if h == hostname)
        assert acted == [("health", CP1), ("upgrade", address), ("health", CP1)]
        assert world.machine(address)["version"] == BUMP
    # A re-run finds every node there and touches nothing.
    since = len(world.calls("talosctl"))
    result = roll(world, "talos-cp-2")
    assert result.returncode == 0, result.stderr
    assert "already runs v1.13.10" in result.stderr
    assert [v for v in verbs(world, since) if v[0] in ("health", "upgrade")] == []


def test_an_unhealthy_cluster_is_not_touched_and_the_node_is_named(tmp_path: Path) -> None:
    environment = step("cluster-talos-upgrade-talos-cp-1")[1]
    world = cluster(tmp_path, environment)
    world.node_dies(W1)
    result = roll(world, "talos-cp-1")
    assert result.returncode == 1
    assert "the cluster is not healthy, so talos-cp-1 (192.168.0.11) was not upgraded" in (
        result.stderr
    )
    assert [v for v in verbs(world) if v[0] == "upgrade"] == []
    assert world.machine(CP1)["version"] == "v1.13.9"


def test_an_unreachable_node_stops_the_roll_and_a_rerun_resumes_it(tmp_path: Path) -> None:
    environment = step("cluster-talos-upgrade-talos-cp-1")[1]
    world = cluster(tmp_path, environment)
    assert roll(world, "talos-cp-1").returncode == 0
    world.node_dies(CP2)
    stopped = roll(world, "talos-cp-2")
    assert stopped.returncode == 1
    assert "cannot read what talos-cp-2 (192.168.0.12) runs" in stopped.stderr
    world.node_returns(CP2)
    world.advance(talos_model.REBOOT_SECONDS + 60)
    for hostname in ("talos-cp-1", "talos-cp-2"):
        result = roll(world, hostname)
        assert result.returncode == 0, result.stderr
    assert [v for v in verbs(world) if v[0] == "upgrade"] == [("upgrade", CP1), ("upgrade", CP2)]


def test_a_node_in_maintenance_mode_is_left_to_its_config(tmp_path: Path) -> None:
    """On a fresh cluster (or a node being added) the step meets the maintenance API: the
    node's config installs the target (components/cluster/upgrade.py)."""
    environment = step("cluster-talos-upgrade-talos-cp-1")[1]
    world = World.create(tmp_path / "world", machines=list(CONTROL_PLANES))
    world.trust_talosconfig(environment[upgrade.TALOSCONFIG_ENV])
    result = roll(world, "talos-cp-1")
    assert result.returncode == 0, result.stderr
    assert "maintenance mode (not installed yet)" in result.stderr
    assert [v for v in verbs(world) if v[0] == "upgrade"] == []


def test_talosctl_of_another_minor_is_refused_before_any_node_is_touched(tmp_path: Path) -> None:
    environment = step("cluster-talos-upgrade-talos-cp-1")[1]
    world = cluster(tmp_path, environment, talosctl_version="v1.12.5")
    result = roll(world, "talos-cp-1")
    assert result.returncode == 1
    assert "talosctl is v1.12.5, the roll goes to Talos v1.13.10: install talosctl v1.13.x" in (
        result.stderr
    )
    assert verbs(world) == []


# --- the Kubernetes step -------------------------------------------------------------------------


def kubernetes_step(world: World, kubernetes: str) -> Result:
    program, environment = step(
        "cluster-kubernetes-upgrade", talos="v1.13.9", kubernetes=kubernetes
    )
    return world.run(program, environment)


def test_kubernetes_is_upgraded_once_through_one_control_plane(tmp_path: Path) -> None:
    environment = step("cluster-kubernetes-upgrade", talos="v1.13.9", kubernetes="1.36.4")[1]
    world = cluster(tmp_path, environment)
    result = kubernetes_step(world, "1.36.4")
    assert result.returncode == 0, result.stderr
    assert [v for v in verbs(world) if v[0] == "upgrade-k8s"] == [("upgrade-k8s", CP1)]
    assert {n["kubelet_version"] for n in world.state["kube"]["nodes"].values()} == {"1.36.4"}
    again = kubernetes_step(world, "1.36.4")
    assert again.returncode == 0, again.stderr
    assert "every component already runs Kubernetes 1.36.4" in again.stderr
    assert len([v for v in verbs(world) if v[0] == "upgrade-k8s"]) == 1


def test_one_kubelet_behind_is_enough_to_upgrade(tmp_path: Path) -> None:
    environment = step("cluster-kubernetes-upgrade", talos="v1.13.9")[1]
    world = cluster(tmp_path, environment)
    with world.edit() as state:
        state["kube"]["nodes"]["talos-w-1"]["kubelet_version"] = "1.36.2"
    result = kubernetes_step(world, "1.36.3")
    assert result.returncode == 0, result.stderr
    assert "kubelet talos-w-1" in result.stderr
    assert [v for v in verbs(world) if v[0] == "upgrade-k8s"] == [("upgrade-k8s", CP1)]


def test_a_failed_kubernetes_upgrade_says_what_to_do(tmp_path: Path) -> None:
    """upgrade-k8s patches every node's config through the Talos API
    (siderolabs/talos@v1.13.9: pkg/cluster/kubernetes/talos_managed.go `Upgrade`), so a dead
    node stops it."""
    environment = step("cluster-kubernetes-upgrade", talos="v1.13.9", kubernetes="1.36.4")[1]
    world = cluster(tmp_path, environment)
    world.node_dies(W1)
    result = kubernetes_step(world, "1.36.4")
    assert result.returncode == 1
    assert "talosctl upgrade-k8s --to 1.36.4 failed" in result.stderr
    assert "run `pulumi up` again" in result.stderr


# --- the reboot step -----------------------------------------------------------------------------


def reboot(world: World, hostname: str, mode: str) -> Result:
    program, environment = step(f"cluster-reboot-{hostname}")
    return world.run(program, {**environment, upgrade.APPLY_MODE_ENV: mode})


def stage(world: World, address: str) -> None:
    """An apply the provider resolved to `staged` (a change that needs a reboot)."""
    with world.edit() as state:
        machine = talos_model.nodes(state)[address]
        changed = dict(machine["config"], digest="changed, needs a reboot")
        talos_model.apply(state, machine, changed, "staged")


def test_a_staged_config_reboots_its_node_between_two_health_checks(tmp_path: Path) -> None:
    environment = step("cluster-reboot-talos-cp-2")[1]
    world = cluster(tmp_path, environment)
    stage(world, CP2)
    boot = world.machine(CP2)["boot_id"]
    result = reboot(world, "talos-cp-2", upgrade.STAGED)
    assert result.returncode == 0, result.stderr
    acted = [v for v in verbs(world) if v[0] in ("health", "reboot")]
    assert acted == [("health", CP1), ("reboot", CP2), ("health", CP1)]
    assert world.machine(CP2)["boot_id"] == boot + 1
    assert world.machine(CP2)["config"]["digest"] == "changed, needs a reboot"
    assert not list(world.tmp.glob("homelab-talosconfig-*"))


def test_a_node_rebooted_since_its_staged_apply_is_not_rebooted_again(tmp_path: Path) -> None:
    """The apply's resolved mode stays `staged` while its config is unchanged
    (terraform-provider-talos@v0.11.0 `handleRebootPrevention`), but the node shows no saved
    config apart from the active one once it rebooted (pkg/machinery/resources/config
    `PersistentID`; controllers/config/acquire.go): nothing waits."""
    environment = step("cluster-reboot-talos-cp-2")[1]
    world = cluster(tmp_path, environment)
    stage(world, CP2)
    assert reboot(world, "talos-cp-2", upgrade.STAGED).returncode == 0
    boot = world.machine(CP2)["boot_id"]
    again = reboot(world, "talos-cp-2", upgrade.STAGED)
    assert again.returncode == 0, again.stderr
    assert "already runs its latest config; no reboot" in again.stderr
    assert world.machine(CP2)["boot_id"] == boot
    assert [v for v in verbs(world) if v[0] == "reboot"] == [("reboot", CP2)]


def test_a_config_applied_live_asks_nothing_of_the_node(tmp_path: Path) -> None:
    environment = step("cluster-reboot-talos-cp-1")[1]
    world = cluster(tmp_path, environment)
    result = reboot(world, "talos-cp-1", "auto")
    assert result.returncode == 0, result.stderr
    assert "no reboot needed" in result.stdout
    assert world.calls("talosctl") == []


def test_an_unhealthy_cluster_reboots_nothing_and_names_the_node(tmp_path: Path) -> None:
    environment = step("cluster-reboot-talos-cp-1")[1]
    world = cluster(tmp_path, environment)
    stage(world, CP1)
    world.node_dies(W1)
    result = reboot(world, "talos-cp-1", upgrade.STAGED)
    assert result.returncode == 1
    assert "talos-cp-1 (192.168.0.11) was not rebooted" in result.stderr
    assert [v for v in verbs(world) if v[0] == "reboot"] == []

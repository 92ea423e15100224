"""docs/operations.md "Nodes": growing the control plane, a dead control plane replaced, a dead
worker removed, shrinking past a dead member, `resetRemovedNodes`; each as the `up`s a person runs
against the shared world, with the real programs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests import harness
from tests.components.cluster.scenarios import (
    CP1,
    CP2,
    CP3,
    STACK,
    W1,
    Homelab,
    changed,
    deployed_copy,
    ha_raw,
)
from tests.world import etcd, talos_model

COMMAND = "command:local:Command"


def members(homelab_state: dict[str, object]) -> list[str]:
    return sorted(str(m["name"]) for m in etcd.members(homelab_state))


def test_growing_from_one_to_three_control_planes(deployments: Path, tmp_path: Path) -> None:
    """Two machines booted from the ISO are added to `cluster.nodes` in one `up`: the roll step
    of the first control plane does not run again (only its endpoints changed: an update, which
    does nothing), the new nodes' steps find them in maintenance mode, their configs install
    them, they join etcd, and the health wait runs for the three."""
    homelab = deployed_copy("single", deployments, tmp_path)
    homelab.world.add_machine(CP2)
    homelab.world.add_machine(CP3)
    grown = homelab.up(ha_raw())
    assert grown.ok, grown.failure
    assert grown.step("cluster-talos-upgrade-talos-cp-1").op == "update"
    assert "nothing to do" in grown.step("cluster-talos-upgrade-talos-cp-1").stderr
    assert "maintenance mode" in grown.step("cluster-talos-upgrade-talos-cp-2").stderr
    assert grown.step("cluster-health").op == "replace"
    state = homelab.world.state
    assert members(state) == ["talos-cp-1", "talos-cp-2", "talos-cp-3"]
    assert sorted(state["kube"]["nodes"]) == ["talos-cp-1", "talos-cp-2", "talos-cp-3"]
    assert homelab.calls("talosctl", "upgrade") == []
    again = homelab.up()
    assert again.ok, again.failure
    assert again.ran("create", "update", "replace", "delete") == []


def test_a_dead_control_plane_is_replaced_by_new_hardware_at_its_address(
    deployments: Path, tmp_path: Path
) -> None:
    """3 -> replace one -> 3 (docs/operations.md, Replace a dead node): the new machine boots
    from the ISO at the old address and `up --replace` of its ConfigurationApply installs it;
    Talos removes the dead member of its hostname before it joins
    (siderolabs/talos@v1.13.9: internal/app/machined/pkg/system/services/etcd.go `addMember`).
    Nothing else runs again."""
    homelab = deployed_copy("ha", deployments, tmp_path)
    homelab.world.node_dies(CP2)
    homelab.world.advance(3600)
    homelab.world.replace_hardware(CP2)
    unchanged = homelab.up()
    assert unchanged.ok, unchanged.failure
    assert homelab.world.machine(CP2)["state"] == "maintenance"  # nothing applies it by itself
    replaced = homelab.up(replace=["cluster-192.168.0.12"])
    assert replaced.ok, replaced.failure
    assert replaced.ran("create", "update", "replace", "delete") == [
        "cluster-192.168.0.12",
        "cluster-192.168.0.12",
    ]
    homelab.world.advance(talos_model.REBOOT_SECONDS + 60)
    state = homelab.world.state
    assert state["talos"]["nodes"][CP2]["state"] == "installed"
    assert members(state) == ["talos-cp-1", "talos-cp-2", "talos-cp-3"]
    assert etcd.alive(state, next(m for m in etcd.members(state) if m["address"] == CP2))
    health = homelab.talosctl("--endpoints", CP1, "--nodes", CP1, "health", "--wait-timeout", "5m")
    assert health.returncode == 0, health.stderr


def test_a_dead_worker_is_removed_without_waiting_for_its_pods(
    deployments: Path, tmp_path: Path
) -> None:
    """kubectl drain skips pods terminating past their grace period plus
    `--skip-wait-for-delete-timeout` (kubernetes/kubectl@kubernetes-1.36.3: pkg/drain/drain.go
    `waitForDelete`); without it the drain of a dead node waits for its timeout."""
    homelab = deployed_copy("ha-worker", deployments, tmp_path)
    homelab.world.deploy("apps", "stateless", on_node="talos-w-1")
    homelab.world.node_dies(W1)
    homelab.world.advance(3600)
    without = changed(homelab.raw, {"cluster.nodes": homelab.raw["cluster"]["nodes"][:3]})
    removed = homelab.up(without)
    assert removed.ok, removed.failure
    assert "talos-w-1" not in homelab.world.state["kube"]["nodes"]
    assert members(homelab.world.state) == ["talos-cp-1", "talos-cp-2", "talos-cp-3"]
    (drain,) = homelab.calls("kubectl", "drain")
    assert "--skip-wait-for-delete-timeout=60" in drain
    again = homelab.up()
    assert again.ok, again.failure
    assert again.ran("create", "update", "replace", "delete") == []


def test_shrinking_to_one_control_plane_past_a_dead_member(
    deployments: Path, tmp_path: Path
) -> None:
    """3 -> 1 with cp-3 dead: its member goes first, by id from the control plane that stays
    (etcd refuses to remove a running member while a dead one still counts among the voters:
    etcd-io/etcd@v3.6.12 server/etcdserver/server.go `mayRemoveMember`), then cp-2 leaves."""
    homelab = deployed_copy("ha", deployments, tmp_path)
    homelab.world.node_dies(CP3)
    homelab.world.advance(600)
    one = changed(homelab.raw, {"cluster.nodes": homelab.raw["cluster"]["nodes"][:1]})
    shrunk = homelab.up(one)
    assert shrunk.ok, shrunk.failure
    state = homelab.world.state
    assert members(state) == ["talos-cp-1"]
    assert sorted(state["kube"]["nodes"]) == ["talos-cp-1"]
    done = [
        c["argv"]
        for c in homelab.world.calls("talosctl")
        if c["returncode"] == 0 and {"remove-member", "leave"} & set(c["argv"])
    ]
    assert [("remove-member" in a, a[a.index("--nodes") + 1]) for a in done] == [
        (True, CP1),  # cp-3's member, by id, through the control plane that stays
        (False, CP2),  # then cp-2 leaves by itself
    ]
    assert state["talos"]["nodes"][CP2]["state"] == "off"


def test_two_dead_control_planes_are_refused_with_the_way_out(
    deployments: Path, tmp_path: Path
) -> None:
    """With two of three members down etcd has no quorum and refuses every membership change;
    the node set says so, and how to get out, before it touches anything. (An `up` stops earlier
    still: without quorum the API server does not answer the Headscale key checks every `up`
    runs, so the node set's update is run here as that `up` would run it.)"""
    homelab = deployed_copy("ha", deployments, tmp_path)
    homelab.world.node_dies(CP2)
    homelab.world.node_dies(CP3)
    homelab.world.advance(600)
    one = changed(homelab.raw, {"cluster.nodes": homelab.raw["cluster"]["nodes"][:1]})
    result = node_set_update(homelab, one)
    assert result.returncode == 1
    assert "homelab:cluster.nodes: etcd has lost quorum: 1 of its 3 members run" in result.stderr
    assert "restore etcd from a snapshot" in result.stderr
    assert homelab.calls("kubectl", "drain") == []


def node_set_update(homelab: Homelab, raw: dict[str, Any]) -> Any:
    """The node set's `update` of a render of `raw`, run as its update would run after the
    record the stack holds, with the credentials the stack holds."""
    record = next(e for e in homelab.stack.resources.values() if e.name == "cluster-node-set")
    update = harness.render_config(raw, STACK).one(COMMAND, "cluster-node-set").inputs["update"]
    environment = {str(k): str(v) for k, v in record.inputs["environment"].items()}
    environment["PULUMI_COMMAND_STDOUT"] = record.outputs["stdout"]
    return homelab.world.run(update, environment)


def test_reset_removed_nodes_wipes_state_and_ephemeral_back_to_maintenance(
    deployments: Path, tmp_path: Path
) -> None:
    """`lifecycle.resetRemovedNodes: true`: the removed worker is reset with
    `--system-labels-to-wipe` STATE and EPHEMERAL (siderolabs/talos@v1.13.9: cmd/talosctl/cmd/
    talos/reset.go; without them the whole system disk is wiped, boot partitions included), so
    it boots into maintenance mode from its installed image."""
    homelab = deployed_copy("ha-worker", deployments, tmp_path)
    lifecycle = {**homelab.raw["lifecycle"], "resetRemovedNodes": True}
    without = changed(
        homelab.raw,
        {"cluster.nodes": homelab.raw["cluster"]["nodes"][:3], "lifecycle": lifecycle},
    )
    removed = homelab.up(without)
    assert removed.ok, removed.failure
    (reset,) = homelab.calls("talosctl", "reset")
    assert "--system-labels-to-wipe=STATE" in reset
    assert "--system-labels-to-wipe=EPHEMERAL" in reset
    homelab.world.advance(talos_model.REBOOT_SECONDS)
    assert homelab.world.machine(W1)["state"] == "maintenance"

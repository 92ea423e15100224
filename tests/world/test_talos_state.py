"""What a Talos machine keeps and how it shows it: its configs (active and saved), its address,
its etcd data, and a recovery from a snapshot, each rule against the upstream code it models
(siderolabs/talos@v1.13.9 unless said otherwise)."""

from __future__ import annotations

import json
from typing import Any

from tests.world import etcd, talos_model
from tests.world.conftest import CONTROL_PLANES, write
from tests.world.world import World

CP1, CP2, CP3 = list(CONTROL_PLANES)


def talosctl(world: World, *argv: str, endpoint: str = CP1) -> tuple[int, str, str]:
    config = write(world, "talosconfig", world.talosconfig([endpoint]))
    result = world.cli("talosctl", "--talosconfig", config, "--endpoints", endpoint, *argv)
    return result.returncode, result.stdout, result.stderr


def machine_configs(world: World, node: str) -> dict[str, Any]:
    code, out, err = talosctl(world, "--nodes", node, "get", "machineconfig", "-o", "json")
    assert code == 0, err
    decoder = json.JSONDecoder()
    found: dict[str, Any] = {}
    index = 0
    while index < len(out.strip()):
        value, index = decoder.raw_decode(out.strip(), index)
        found[value["metadata"]["id"]] = value["spec"]
        while index < len(out.strip()) and out.strip()[index].isspace():
            index += 1
    return found


def test_a_staged_config_shows_as_a_saved_config_apart_from_the_active_one(world: World) -> None:
    """pkg/machinery/resources/config/machine_config.go: `v1alpha1` is the active config,
    `persistent` the saved one, "ahead of the current ID if the config was submitted in e.g.
    staged mode" (v1alpha1_server.go `ApplyConfiguration`: STAGED only SetPersistedConfig). At
    boot the config from STATE sets the active one only (controllers/config/acquire.go)."""
    assert set(machine_configs(world, CP2)) == {"v1alpha1"}
    with world.edit() as state:
        machine = talos_model.nodes(state)[CP2]
        changed = dict(machine["config"], digest="another config")
        assert talos_model.apply(state, machine, changed, "staged") == "staged"
    configs = machine_configs(world, CP2)
    assert configs["persistent"] != configs["v1alpha1"]
    with world.edit() as state:
        talos_model.reboot(state, talos_model.nodes(state)[CP2])
    world.advance(talos_model.REBOOT_SECONDS)
    assert set(machine_configs(world, CP2)) == {"v1alpha1"}
    with world.edit() as state:
        machine = talos_model.nodes(state)[CP2]
        talos_model.apply(state, machine, dict(machine["config"]), "auto")
    configs = machine_configs(world, CP2)
    assert configs["persistent"] == configs["v1alpha1"]


def test_an_installed_apid_forwards_to_127_0_0_1_which_is_itself(world: World) -> None:
    """director.go `Director`: an installed apid forwards every `--nodes` target through its
    remote backend (IsLocalTarget only when forwarding is disabled); it listens on ":50000"
    (controllers/runtime/api_service_config.go) and its certificate names 127.0.0.1
    (controllers/secrets/api_cert_sans.go), so 127.0.0.1 is the endpoint's own machine."""
    code, out, err = talosctl(world, "--nodes", "127.0.0.1", "version", endpoint=CP2)
    assert code == 0, err
    assert "\tNODE:        127.0.0.1\n" in out
    world.node_dies(CP2)
    code, _, err = talosctl(world, "--nodes", "127.0.0.1", "version", endpoint=CP2)
    assert code == 1
    assert "no route to host" in err


def test_a_new_address_applies_live_and_the_member_and_node_follow(world: World) -> None:
    """v1alpha1_runtime.go `CanApplyImmediate` compares the v1alpha1 document only: a new
    LinkConfig address applies without a reboot; the etcd member advertises the new peer URL
    (controllers/etcd/advertised_peer.go), the kubelet the new InternalIP."""
    with world.edit() as state:
        machine = talos_model.nodes(state)[CP3]
        moved = dict(machine["config"], address="10.0.0.33")
        assert talos_model.apply(state, machine, moved, "auto") == "no_reboot"
    state = world.state
    assert CP3 not in state["talos"]["nodes"]
    assert state["talos"]["nodes"]["10.0.0.33"]["hostname"] == "cp-3"
    assert "10.0.0.33" in {m["address"] for m in etcd.members(state)}
    assert state["kube"]["nodes"]["cp-3"]["address"] == "10.0.0.33"
    code, _, _ = talosctl(world, "--nodes", "10.0.0.33", "version")
    assert code == 0


def test_a_machine_of_the_same_name_replaces_the_stale_member(world: World) -> None:
    """internal/app/machined/pkg/system/services/etcd.go `addMember`: a control plane joining
    with an empty data directory first removes a member of its own hostname (etcd's check
    applies: a member that is down may go), then adds itself."""
    old = next(m["id"] for m in etcd.members(world.state) if m["address"] == CP2)
    world.node_dies(CP2)
    world.replace_hardware(CP2)
    with world.edit() as state:
        machine = talos_model.nodes(state)[CP2]
        config = dict(talos_model.nodes(state)[CP1]["config"], hostname="cp-2")
        talos_model.install(state, machine, config)
    world.advance(talos_model.REBOOT_SECONDS)
    members = etcd.members(world.state)
    assert old not in {m["id"] for m in members}
    assert sorted(m["name"] for m in members) == ["cp-1", "cp-2", "cp-3"]
    assert etcd.has_quorum(world.state)


def test_a_wiped_ephemeral_loses_the_member_and_a_recovery_brings_the_snapshot_back(
    world: World,
) -> None:
    """etcd's data lives on EPHEMERAL; wiped on every control plane, no member is left and the
    API has nothing (every object lives in etcd). `talosctl bootstrap --recover-from` uploads a
    snapshot and bootstraps etcd from it (cmd/talosctl/cmd/talos/bootstrap.go, v1alpha1_server.go
    `Bootstrap`: refused while the data directory is not empty); the others join it."""
    world.put_object(
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "kept", "namespace": "a"}}
    )
    snapshot = str(world.tmp / "etcd.db")
    code, _, err = talosctl(world, "--nodes", CP1, "etcd", "snapshot", snapshot)
    assert code == 0, err
    world.put_object(
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "later", "namespace": "a"}}
    )
    code, _, err = talosctl(world, "--nodes", CP1, "bootstrap", "--recover-from", snapshot)
    assert (code, err) == (
        1,
        "error executing bootstrap: rpc error: code = AlreadyExists desc = etcd data directory "
        "is not empty\n",
    )
    for node in CONTROL_PLANES:
        code, _, err = talosctl(
            world,
            "--nodes",
            node,
            "reset",
            "--graceful=false",
            "--reboot",
            "--system-labels-to-wipe",
            "EPHEMERAL",
            endpoint=node,
        )
        assert code == 0, err
    world.advance(talos_model.REBOOT_SECONDS)
    assert etcd.members(world.state) == []
    assert world.state["kube"]["objects"] == {}
    code, _, err = talosctl(world, "--nodes", CP1, "bootstrap", "--recover-from", snapshot)
    assert code == 0, err
    world.advance(120)
    objects = world.state["kube"]["objects"]
    assert "ConfigMap/a/kept" in objects
    assert "ConfigMap/a/later" not in objects
    assert sorted(m["name"] for m in etcd.members(world.state)) == ["cp-1", "cp-2", "cp-3"]

"""Nodes that come and go: the node-set program against the shared world (tests/world), and the
graph.

The program is run as the Command runs it (python3 -c, the previous node set in
PULUMI_COMMAND_STDOUT, the credentials in its environment) against a world of Talos machines,
etcd and Kubernetes whose rules follow upstream. The graph tests render the fixture stacks before
and after a change and compare what Pulumi would compare: URNs and inputs. The flows of a person's
`up`s are in test_flows_nodes.py.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from components.cluster import node_lifecycle
from components.cluster.node_lifecycle import NodeEntry, node_set_script, record_json
from config.model import Lifecycle
from homelab.engine import Render, ResourceRecord
from programs.build import PROGRAM_ENV, parameters
from tests.harness import render_stack, stack_raw_config, with_changes
from tests.world import etcd, talos_model
from tests.world.world import Result, World

APPLY = "talos:machine/configurationApply:ConfigurationApply"
COMMAND = "command:local:Command"
VIP = "192.168.0.10"


def cp(n: int) -> NodeEntry:
    return NodeEntry(f"192.168.0.1{n}", f"cp-{n}", "controlplane", f"192.168.0.1{n}")


def worker(n: int) -> NodeEntry:
    return NodeEntry(f"192.168.0.2{n}", f"w-{n}", "worker", f"192.168.0.2{n}")


def cluster_of(tmp_path: Path, entries: Sequence[NodeEntry]) -> World:
    """The machines of `entries` installed, etcd of its control planes, Kubernetes up."""
    world = World.create(tmp_path / "world")
    world.install_cluster(
        control_planes={e.ip: e.hostname for e in entries if e.role == "controlplane"},
        workers={e.ip: e.hostname for e in entries if e.role != "controlplane"},
        vip=VIP,
    )
    return world


def run(
    world: World,
    previous: Sequence[NodeEntry] | None,
    current: Sequence[NodeEntry],
    *,
    mode: str = "reconcile",
    action: node_lifecycle.RemovedNodeAction = "shutdown",
) -> Result:
    """The node set's program as its `update` (or `create`) runs, with credentials the cluster
    takes: a kubeconfig for the VIP and a talosconfig of the control planes' addresses."""
    program = node_set_script(current, mode=mode, removed_node_action=action)  # type: ignore[arg-type]
    control_planes = [e.address for e in current if e.role == "controlplane"]
    environment = {
        PROGRAM_ENV: "node_set",
        node_lifecycle.KUBECONFIG_ENV: world.kubeconfig(f"https://{VIP}:6443"),
        node_lifecycle.TALOSCONFIG_ENV: world.talosconfig(control_planes),
    }
    if previous is not None:
        environment["PULUMI_COMMAND_STDOUT"] = record_json(previous)
    return world.run(program, environment)


def verbs(world: World, since: int = 0) -> list[str]:
    """Each CLI call, short: `kubectl drain w-1`, `talosctl shutdown @192.168.0.21`."""
    found = []
    for call in world.calls()[since:]:
        argv = call["argv"]
        if argv[0] == "kubectl":
            words = [a for a in argv[3:] if not a.startswith("-")]
            found.append(" ".join(["kubectl", *words[:2]]))
        else:
            at = argv.index("--nodes")
            found.append(
                f"talosctl {' '.join(argv[at + 2 : at + 4]).split(' -')[0]} @{argv[at + 1]}"
            )
    return found


def members(world: World) -> list[str]:
    return sorted(m["name"] for m in etcd.members(world.state))


HOMELAB = [cp(1), cp(2), cp(3), worker(1)]
FIVE = [cp(1), cp(2), cp(3), cp(4), cp(5)]


# --- the program ---------------------------------------------------------------------------------


def test_create_records_the_set_and_touches_nothing(tmp_path: Path) -> None:
    world = cluster_of(tmp_path, HOMELAB)
    result = run(world, None, HOMELAB, mode="record")
    assert result.returncode == 0, result.stderr
    assert world.calls() == []
    assert json.loads(result.stdout) == [e.as_data() for e in sorted(HOMELAB)]


def test_an_unchanged_or_grown_set_calls_no_cli(tmp_path: Path) -> None:
    """Adding a node only records it; the health wait then checks the grown set."""
    world = cluster_of(tmp_path, HOMELAB)
    result = run(world, HOMELAB[:3], HOMELAB)
    assert result.returncode == 0, result.stderr
    assert world.calls() == []
    assert json.loads(result.stdout) == [e.as_data() for e in sorted(HOMELAB)]


def test_a_removed_worker_is_drained_stopped_and_deleted_in_that_order(tmp_path: Path) -> None:
    """kubernetes/kubectl@kubernetes-1.36.3: pkg/cmd/drain/drain.go: `--ignore-daemonsets`
    (DaemonSet pods would block the drain otherwise), `--delete-emptydir-data`,
    `--skip-wait-for-delete-timeout` and `--timeout` are drain's own flags.
    siderolabs/talos@v1.13.9: cmd/talosctl/cmd/talos/shutdown.go: `--force` skips Talos' own
    cordon/drain (done already); track.go's `--wait=false` returns once it is asked."""
    world = cluster_of(tmp_path, HOMELAB)
    world.deploy("apps", "web", on_node="w-1", emptydir=True)
    result = run(world, HOMELAB, HOMELAB[:3])
    assert result.returncode == 0, result.stderr
    assert verbs(world) == [
        "kubectl get node",
        "kubectl drain w-1",
        "talosctl shutdown @192.168.0.21",
        "kubectl delete node",
    ]
    drain = world.calls("kubectl")[1]["argv"]
    assert {"--ignore-daemonsets", "--delete-emptydir-data"} <= set(drain)
    shutdown = world.calls("talosctl")[0]["argv"]
    assert shutdown[-3:] == ["shutdown", "--force", "--wait=false"]
    assert sorted(world.state["kube"]["nodes"]) == ["cp-1", "cp-2", "cp-3"]
    assert world.machine("192.168.0.21")["state"] == "off"


def test_credentials_reach_the_clis_as_private_files_only(tmp_path: Path) -> None:
    world = cluster_of(tmp_path, HOMELAB)
    result = run(world, HOMELAB, HOMELAB[:3])
    assert result.returncode == 0, result.stderr
    for call in world.calls():
        assert [n for n in call["env"] if n.startswith("HOMELAB_")] == []
        assert call["config_mode"] == 0o600
        assert Path(call["config_path"]).name.startswith("homelab-")
    assert not list(world.tmp.glob("homelab-*"))


def test_removed_control_planes_leave_etcd_on_themselves_before_their_node_goes(
    tmp_path: Path,
) -> None:
    """siderolabs/talos@v1.13.9: cmd/talosctl/cmd/talos/etcd.go: `etcd leave` takes no arguments
    and refuses more than one node (`FailIfMultiNodes`); machined's EtcdLeaveCluster removes the
    member of the node it runs on (internal/pkg/etcd/etcd.go `LeaveCluster`), so it is sent to
    the departing node itself."""
    world = cluster_of(tmp_path, FIVE)
    result = run(world, FIVE, FIVE[:3])
    assert result.returncode == 0, result.stderr
    acted = [v for v in verbs(world) if "get node" not in v and "members" not in v]
    assert acted == [
        "kubectl drain cp-4",
        "talosctl etcd leave @192.168.0.14",
        "talosctl shutdown @192.168.0.14",
        "kubectl delete node",
        "kubectl drain cp-5",
        "talosctl etcd leave @192.168.0.15",
        "talosctl shutdown @192.168.0.15",
        "kubectl delete node",
    ]
    for call in world.calls("talosctl"):
        argv = call["argv"]
        assert argv[argv.index("--nodes") + 1] == argv[argv.index("--endpoints") + 1]
    assert members(world) == ["cp-1", "cp-2", "cp-3"]


def test_workers_go_before_control_planes(tmp_path: Path) -> None:
    everything = [*HOMELAB, worker(2)]
    world = cluster_of(tmp_path, everything)
    result = run(world, everything, [cp(1)])
    assert result.returncode == 0, result.stderr
    assert [v.split()[-1] for v in verbs(world) if v.startswith("kubectl drain")] == [
        "w-1",
        "w-2",
        "cp-2",
        "cp-3",
    ]


def test_a_removal_that_would_lose_quorum_is_refused_before_anything_changes(
    tmp_path: Path,
) -> None:
    """etcd removes a member only while the members that run stay a majority of those left
    (etcd-io/etcd@v3.6.12: server/etcdserver/server.go `mayRemoveMember`); a member that is down
    keeps its name, so it counts as started there but cannot vote. With cp-2 and cp-3 down,
    cp-4 leaving leaves four members of which two run: no majority."""
    world = cluster_of(tmp_path, FIVE)
    world.node_dies("192.168.0.12")
    world.node_dies("192.168.0.13")
    since = len(world.calls())
    result = run(world, FIVE, [cp(1), cp(2), cp(3)])
    assert result.returncode == 1
    (line,) = result.stderr.strip().splitlines()
    assert node_lifecycle.NODES_KEY in line
    assert "removing control plane cp-4 (192.168.0.14) would lose etcd quorum" in line
    assert "down: cp-2 (192.168.0.12), cp-3 (192.168.0.13)" in line
    # Only etcd was read: nothing drained, left or deleted.
    assert {v.split()[1] for v in verbs(world, since)} == {"etcd"}
    assert len(members(world)) == 5
    assert len(world.state["kube"]["nodes"]) == 5


def test_a_member_that_has_not_started_is_read_and_left_alone(tmp_path: Path) -> None:
    """A learner that has not started has an empty HOSTNAME in the members table
    (cmd/talosctl/cmd/talos/etcd.go); removing a running member beside it still goes."""
    three = [cp(1), cp(2), cp(3)]
    world = cluster_of(tmp_path, three)
    with world.edit() as state:
        etcd.members(state).append(
            {
                "id": "00000000000000ff",
                "name": "",
                "address": "192.168.0.19",
                "hardware": 1,
                "learner": True,
            }
        )
    result = run(world, three, [cp(1), cp(3)])
    assert result.returncode == 0, result.stderr
    assert members(world) == ["", "cp-1", "cp-3"]


def test_a_dead_control_plane_is_removed_by_member_id_from_one_that_stays(
    tmp_path: Path,
) -> None:
    """siderolabs/talos@v1.13.9: cmd/talosctl/cmd/talos/etcd.go `remove-member <member ID>`:
    for a member "if there is no access to the node"; the ID is the hex form the members
    table prints (pkg/machinery/resources/etcd/etcd.go `FormatMemberID`)."""
    world = cluster_of(tmp_path, FIVE)
    world.node_dies("192.168.0.14")
    result = run(world, FIVE, [cp(1), cp(2), cp(3), cp(5)])
    assert result.returncode == 0, result.stderr
    (removal,) = [c for c in world.calls("talosctl") if "remove-member" in c["argv"]]
    argv = removal["argv"]
    assert len(argv[-1]) == 16
    assert argv[argv.index("--nodes") + 1] == "192.168.0.11"
    assert members(world) == ["cp-1", "cp-2", "cp-3", "cp-5"]
    assert "wipe it then" in result.stderr  # its shutdown could not reach it either


def test_a_failed_drain_stops_before_etcd_and_the_next_run_resumes(tmp_path: Path) -> None:
    """A PodDisruptionBudget that allows no disruption makes the eviction API refuse (429) until
    the drain's timeout (kubernetes/kubernetes@v1.36.3: pkg/registry/core/pod/storage/
    eviction.go)."""
    three = [cp(1), cp(2), cp(3)]
    world = cluster_of(tmp_path, three)
    world.deploy("apps", "db", on_node="cp-2", labels={"app": "db"})
    budget = {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": {"name": "db", "namespace": "apps"},
        "spec": {"minAvailable": 1, "selector": {"matchLabels": {"app": "db"}}},
    }
    world.put_object(budget)
    result = run(world, three, [cp(1), cp(3)])
    assert result.returncode == 1
    # Its stdout is the previous record, whatever the provider keeps of a failed update.
    assert result.stdout == record_json(three)
    assert "could not drain cp-2" in result.stderr
    assert "disruption budget" in result.stderr
    assert not any("leave" in c["argv"] for c in world.calls("talosctl"))
    assert members(world) == ["cp-1", "cp-2", "cp-3"]
    with world.edit() as state:
        del state["kube"]["objects"]["PodDisruptionBudget/apps/db"]
    result = run(world, three, [cp(1), cp(3)])
    assert result.returncode == 0, result.stderr
    assert members(world) == ["cp-1", "cp-3"]
    assert sorted(world.state["kube"]["nodes"]) == ["cp-1", "cp-3"]
    since = len(world.calls())
    result = run(world, [cp(1), cp(3)], [cp(1), cp(3)])
    assert result.returncode == 0
    assert world.calls()[since:] == []


def test_reset_wipes_state_and_ephemeral_and_a_lab_leaves_it_to_the_apply(tmp_path: Path) -> None:
    """siderolabs/talos@v1.13.9: cmd/talosctl/cmd/talos/reset.go: `--graceful` (default true)
    would cordon, drain and leave etcd again, done already; `--system-labels-to-wipe` STATE and
    EPHEMERAL, or the whole system disk would be wiped (v1alpha1_server.go `Reset`); `--reboot`
    boots it into maintenance mode from its installed image. In a lab the node's
    ConfigurationApply resets it when it is deleted (`on_destroy`)."""
    world = cluster_of(tmp_path, HOMELAB)
    result = run(world, HOMELAB, HOMELAB[:3], action="reset")
    assert result.returncode == 0, result.stderr
    (reset,) = [c["argv"] for c in world.calls("talosctl") if "reset" in c["argv"]]
    assert reset[reset.index("reset") :] == [
        "reset",
        "--graceful=false",
        "--reboot",
        "--system-labels-to-wipe=STATE",
        "--system-labels-to-wipe=EPHEMERAL",
        "--wait=false",
    ]
    world.advance(talos_model.REBOOT_SECONDS)
    assert world.machine("192.168.0.21")["state"] == "maintenance"
    lab = cluster_of(tmp_path / "lab", HOMELAB)
    result = run(lab, HOMELAB, HOMELAB[:3], action="reset-by-apply")
    assert result.returncode == 0, result.stderr
    assert [c for c in lab.calls("talosctl") if {"reset", "shutdown"} & set(c["argv"])] == []
    assert lab.machine("192.168.0.21")["state"] == "installed"


def rename(world: World, address: str, hostname: str, *, registers_in: float = 20.0) -> None:
    """The apply renamed the machine (its HostnameConfig applies live); its kubelet registers
    the new Node `registers_in` seconds later."""
    with world.edit() as state:
        machine = talos_model.nodes(state)[address]
        talos_model.apply(state, machine, dict(machine["config"], hostname=hostname), "auto")
        machine["kubelet_from"] = state["clock"] + registers_in


def test_a_renamed_node_loses_its_old_node_once_the_new_one_is_ready(tmp_path: Path) -> None:
    """Talos registers the kubelet under the node's hostname (siderolabs/talos@v1.13.9:
    internal/app/machined/pkg/controllers/k8s/nodename.go), so a rename leaves the old Node
    behind, which `talosctl health` would report as unexpected (pkg/cluster/cluster.go
    `NodesMatch`). The new one appears some seconds after the apply: `kubectl wait
    --for=create` first (kubernetes/kubectl@kubernetes-1.36.3: pkg/cmd/wait/wait.go)."""
    world = cluster_of(tmp_path, HOMELAB)
    renamed = NodeEntry("192.168.0.21", "worker-1", "worker", "192.168.0.21")
    rename(world, "192.168.0.21", "worker-1")
    result = run(world, HOMELAB, [*HOMELAB[:3], renamed])
    assert result.returncode == 0, result.stderr
    assert verbs(world) == ["kubectl wait node/worker-1", "kubectl delete node"]
    assert sorted(world.state["kube"]["nodes"]) == ["cp-1", "cp-2", "cp-3", "worker-1"]


def test_a_rename_whose_new_node_never_registers_keeps_the_old_one(tmp_path: Path) -> None:
    world = cluster_of(tmp_path, HOMELAB)
    renamed = NodeEntry("192.168.0.21", "worker-1", "worker", "192.168.0.21")
    rename(world, "192.168.0.21", "worker-1", registers_in=86400.0)
    result = run(world, HOMELAB, [*HOMELAB[:3], renamed])
    assert result.returncode == 1
    assert "Node worker-1 is not Ready, so w-1 is kept" in result.stderr
    assert "w-1" in world.state["kube"]["nodes"]


def test_a_node_moving_to_a_new_address_is_neither_removed_nor_renamed(tmp_path: Path) -> None:
    world = cluster_of(tmp_path, HOMELAB)
    moving = NodeEntry("192.168.0.31", "w-1", "worker", "192.168.0.21")  # currentAddress
    result = run(world, HOMELAB, [*HOMELAB[:3], moving])
    assert result.returncode == 0, result.stderr
    moved = NodeEntry("192.168.0.31", "w-1", "worker", "192.168.0.31")  # the next `up`
    result = run(world, [*HOMELAB[:3], moving], [*HOMELAB[:3], moved])
    assert result.returncode == 0
    assert world.calls() == []


def test_the_removed_node_action_follows_the_lifecycle() -> None:
    assert node_lifecycle.removed_node_action(Lifecycle(environment="homelab")) == "shutdown"
    assert (
        node_lifecycle.removed_node_action(
            Lifecycle(environment="homelab", reset_removed_nodes=True)
        )
        == "reset"
    )
    assert node_lifecycle.removed_node_action(Lifecycle(environment="lab")) == "reset-by-apply"


# --- the graph ----------------------------------------------------------------------------------


def _render(changes: dict[str, Any] | None = None, stack: str = "homelab") -> Render:
    changed = with_changes(stack_raw_config(stack), changes or {})
    tops = {path.split(".")[0] for path in changes or {}}
    return render_stack(stack, overrides={top: changed[top] for top in tops})


def applies_by_hostname(render: Render) -> dict[str, ResourceRecord]:
    found = {}
    for apply in render.by_type(APPLY):
        for patch in apply.input("configPatches"):
            if "kind: HostnameConfig" in patch:
                hostname = next(
                    line.split(":", 1)[1].strip()
                    for line in patch.splitlines()
                    if line.startswith("hostname:")
                )
                found[hostname] = apply
    return found


def node_set_record(render: Render) -> ResourceRecord:
    (found,) = [r for r in render.by_type(COMMAND) if r.name == "cluster-node-set"]
    return found


@pytest.mark.parametrize("stack", ["homelab", "lab"])
def test_a_rename_updates_the_same_resources_instead_of_replacing_them(stack: str) -> None:
    """Pulumi matches resources by URN: the same URN with other inputs is an update; a new URN is
    a create plus a delete of the old one, which in a lab resets the machine (on_destroy)."""
    before = _render(stack=stack)
    first = stack_raw_config(stack)["cluster"]["nodes"][0]["hostname"]
    after = _render({"cluster.nodes.0.hostname": "renamed-1"}, stack=stack)
    old = applies_by_hostname(before)[first]
    new = applies_by_hostname(after)["renamed-1"]
    assert new.urn == old.urn
    assert new.inputs != old.inputs
    assert {r.urn for r in before.by_type(APPLY)} == {r.urn for r in after.by_type(APPLY)}
    assert node_set_record(after).urn == node_set_record(before).urn


def test_each_apply_adopts_its_name_from_before_nodes_were_keyed_by_ip() -> None:
    """An existing stack's applies are named `cluster-<hostname>`; the alias makes the engine
    adopt that state for the IP-keyed name instead of creating anew (pulumi 3.272
    sdk/python pulumi/resource.py `ResourceOptions.aliases`)."""
    render = _render()
    for hostname, apply in applies_by_hostname(render).items():
        legacy = apply.urn.rpartition("::")[0] + f"::cluster-{hostname}"
        assert legacy in apply.aliases


def test_a_node_that_moves_is_reached_at_its_current_address_and_configured_for_the_new() -> None:
    """The provider applies to `node` through `endpoint`, retrying until its timeout (10 minutes)
    while nothing answers (terraform-provider-talos@v0.11.0:
    pkg/talos/talos_machine_configuration_apply_resource.go `Update`: talosClientOp(state.Endpoint,
    state.Node) inside retry.RetryContext(updateTimeout)), so both must be where the node is now."""
    before = _render()
    moved = _render(
        {"cluster.nodes.2.ip": "192.168.0.23", "cluster.nodes.2.currentAddress": "192.168.0.13"}
    )
    apply = applies_by_hostname(moved)["talos-cp-3"]
    assert apply.input("node") == apply.input("endpoint") == "192.168.0.13"
    links = [p for p in apply.input("configPatches") if "kind: LinkConfig" in p]
    assert "192.168.0.23/24" in links[0]
    old = applies_by_hostname(before)["talos-cp-3"]
    # A new name, adopted from the old one: an update in place, no create/delete.
    assert apply.urn != old.urn
    assert old.urn in apply.aliases
    # talosctl (health, node set) reaches control planes where they answer.
    talosconfig = moved.outputs["talosconfig"]
    assert "192.168.0.13" in talosconfig
    assert "192.168.0.23" not in talosconfig
    # The next `up`, without currentAddress, keeps the new name and reaches the new address.
    settled = _render({"cluster.nodes.2.ip": "192.168.0.23"})
    again = applies_by_hostname(settled)["talos-cp-3"]
    assert again.urn == apply.urn
    assert again.input("node") == "192.168.0.23"


def test_adding_a_node_records_it_and_reruns_the_health_wait_after_the_node_set() -> None:
    before = _render()
    w = {"hostname": "talos-w-1", "ip": "192.168.0.21", "role": "worker"}
    nodes = [*stack_raw_config()["cluster"]["nodes"], w]
    after = _render({"cluster.nodes": nodes, "cluster.allowSchedulingOnControlPlanes": True})
    health = after.one(COMMAND, "cluster-health")
    assert health.input("triggers") != before.one(COMMAND, "cluster-health").input("triggers")
    node_set = node_set_record(after)
    assert node_set.urn in health.dependencies
    assert "talos-w-1" in {n["hostname"] for n in parameters(node_set.input("update"))["nodes"]}
    # Existing nodes' applies are untouched by the addition.
    for hostname, apply in applies_by_hostname(before).items():
        assert applies_by_hostname(after)[hostname].inputs == apply.inputs


def test_the_node_set_runs_after_the_applies_and_holds_both_credentials_as_secrets() -> None:
    render = _render()
    node_set = node_set_record(render)
    assert {a.urn for a in render.by_type(APPLY)} <= set(node_set.dependencies)
    assert render.one("talos:cluster/kubeconfig:Kubeconfig").urn in node_set.dependencies
    for env in (node_lifecycle.KUBECONFIG_ENV, node_lifecycle.TALOSCONFIG_ENV):
        assert node_set.is_secret(f"environment.{env}")
    assert parameters(node_set.input("create"))["mode"] == "record"
    assert parameters(node_set.input("update"))["mode"] == "reconcile"


@pytest.mark.parametrize(
    ("stack", "changes", "action"),
    [
        ("homelab", {}, "shutdown"),
        ("homelab", {"lifecycle.resetRemovedNodes": True}, "reset"),
        ("lab", {}, "reset-by-apply"),
    ],
)
def test_the_rendered_script_does_what_the_lifecycle_says(
    stack: str, changes: dict[str, Any], action: str
) -> None:
    script = node_set_record(_render(changes, stack=stack)).input("update")
    assert parameters(script)["removed_node_action"] == action


@pytest.mark.parametrize("stack", ["homelab", "lab"])
def test_a_shut_down_node_is_never_contacted_again_and_a_lab_node_is_reset_once(
    stack: str,
) -> None:
    """The provider's Delete of a ConfigurationApply contacts the node only for
    `on_destroy.reset` (terraform-provider-talos@v0.11.0:
    pkg/talos/talos_machine_configuration_apply_resource.go `Delete`), so a node the node set has
    shut down must have no reset on destroy, and a node whose apply resets it must still run."""
    render = _render(stack=stack)
    action = parameters(node_set_record(render).input("update"))["removed_node_action"]
    for apply in render.by_type(APPLY):
        resets = bool((apply.inputs.get("onDestroy") or {}).get("reset"))
        assert (action == "reset-by-apply") is resets
    assert any(
        bool((a.inputs.get("onDestroy") or {}).get("reset")) for a in render.by_type(APPLY)
    ) is (stack == "lab")

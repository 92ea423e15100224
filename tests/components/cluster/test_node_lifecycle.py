"""Nodes that come and go: the node-set script against fake `kubectl`/`talosctl`, and the graph.

The script is run as the Command would run it (python3 -c, the previous node set in
PULUMI_COMMAND_STDOUT) with fake CLIs first on PATH that keep a small cluster state (Nodes, etcd
members) and log every call. The graph tests render the fixture stacks before and after a change
and compare what Pulumi would compare: URNs and inputs.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from components.cluster import node_lifecycle
from components.cluster.node_lifecycle import NodeEntry, node_set_script
from config.model import Lifecycle
from homelab.engine import Render, ResourceRecord
from programs.build import parameters
from tests.harness import render_stack, stack_raw_config, with_changes

APPLY = "talos:machine/configurationApply:ConfigurationApply"
COMMAND = "command:local:Command"
KUBECONFIG_TEXT = "apiVersion: v1\nusers: [{user: {token: SENTINEL-kube-token}}]\n"
TALOSCONFIG_TEXT = "context: homelab\ncontexts: {homelab: {key: SENTINEL-talos-key}}\n"


def cp(n: int) -> NodeEntry:
    return NodeEntry(f"192.168.0.1{n}", f"cp-{n}", "controlplane", f"192.168.0.1{n}")


def worker(n: int) -> NodeEntry:
    return NodeEntry(f"192.168.0.2{n}", f"w-{n}", "worker", f"192.168.0.2{n}")


def member(entry: NodeEntry, number: int, *, started: bool = True) -> dict[str, Any]:
    return {
        "id": f"{number:016x}",
        "name": entry.hostname if started else "",
        "peer": entry.address,
        "learner": False,
    }


# --- fake CLIs ---------------------------------------------------------------------------------

# One program for both CLIs (told apart by its name), over a JSON state file:
# {"nodes": [Node names], "members": [{id, name, peer, learner}], "unreachable": [addresses],
#  "drain_fails": [names]}. `talosctl etcd members` prints the table of
# siderolabs/talos@v1.13.9:cmd/talosctl/cmd/talos/etcd.go `etcdMemberListCmd` (tabwriter,
# padding 3, a NODE column first when the reply names its node).
FAKE_CLI = r"""
import json, os, stat, sys
name = os.path.basename(sys.argv[0])
args = sys.argv[1:]
state_path = os.environ["FAKE_STATE"]
state = json.load(open(state_path))
entry = {"cli": name, "argv": args,
         "inherited": sorted(k for k in os.environ
                             if k.startswith(("HOMELAB_", "PULUMI_", "KUBECONFIG", "TALOSCONFIG")))}
flag = "--kubeconfig" if name == "kubectl" else "--talosconfig"
if flag in args:
    path = args[args.index(flag) + 1]
    entry["mode"] = stat.S_IMODE(os.stat(path).st_mode)
    entry["file"] = open(path).read()
with open(os.environ["FAKE_LOG"], "a") as log:
    log.write(json.dumps(entry) + "\n")

def save():
    json.dump(state, open(state_path, "w"))

def table(rows):
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("".join(c.ljust(w + 3) for c, w in zip(r, widths)).rstrip() for r in rows)

if name == "kubectl":
    rest = args[2:]
    if rest[:2] == ["get", "node"]:
        if rest[2] in state["nodes"]:
            print("node/" + rest[2]); sys.exit(0)
        sys.stderr.write('Error from server (NotFound): nodes "' + rest[2] + '" not found\n'); sys.exit(1)
    if rest[0] == "drain":
        if rest[1] in state.get("drain_fails", []):
            sys.stderr.write("error: cannot evict pod as it would violate the pod's disruption budget\n")
            sys.exit(1)
        state.setdefault("drained", []).append(rest[1]); save(); sys.exit(0)
    if rest[:2] == ["delete", "node"]:
        state["nodes"] = [n for n in state["nodes"] if n != rest[2]]; save(); sys.exit(0)
    if rest[0] == "wait":
        node = rest[2].split("/", 1)[1]
        sys.exit(0 if node in state["nodes"] else 1)
    sys.exit(2)

address = args[args.index("--nodes") + 1]
rest = args[6:]
if address in state.get("unreachable", []):
    sys.stderr.write("rpc error: code = Unavailable desc = connection refused\n"); sys.exit(1)
if rest == ["etcd", "members"]:
    rows = [["NODE", "ID", "HOSTNAME", "PEER URLS", "CLIENT URLS", "LEARNER"]]
    for m in state["members"]:
        rows.append([address, m["id"], m["name"], "https://" + m["peer"] + ":2380",
                     "https://" + m["peer"] + ":2379", "true" if m["learner"] else "false"])
    print(table(rows)); sys.exit(0)
if rest == ["etcd", "leave"]:
    state["members"] = [m for m in state["members"] if m["peer"] != address]; save(); sys.exit(0)
if rest[:2] == ["etcd", "remove-member"]:
    state["members"] = [m for m in state["members"] if m["id"] != rest[2]]; save(); sys.exit(0)
if rest[0] in ("shutdown", "reset"):
    state.setdefault("stopped", []).append([rest[0], address]); save(); sys.exit(0)
sys.exit(2)
"""


def run_script(
    tmp_path: Path,
    previous: list[NodeEntry] | None,
    current: list[NodeEntry],
    *,
    mode: str = "reconcile",
    action: node_lifecycle.RemovedNodeAction = "shutdown",
    **state: Any,
) -> tuple[subprocess.CompletedProcess[str], list[dict[str, Any]], dict[str, Any]]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    for cli in ("kubectl", "talosctl"):
        path = bin_dir / cli
        path.write_text(f"#!{sys.executable}\n{FAKE_CLI}")
        path.chmod(0o755)
    state_path = tmp_path / "state.json"
    if not state_path.exists():
        state_path.write_text(json.dumps({"nodes": [], "members": [], **state}))
    log = tmp_path / "calls.jsonl"
    env = {
        "PATH": str(bin_dir),
        "FAKE_STATE": str(state_path),
        "FAKE_LOG": str(log),
        "TMPDIR": str(tmp_path),
        "KUBECONFIG": "/somewhere/else",
        node_lifecycle.KUBECONFIG_ENV: KUBECONFIG_TEXT,
        node_lifecycle.TALOSCONFIG_ENV: TALOSCONFIG_TEXT,
    }
    if previous is not None:
        env["PULUMI_COMMAND_STDOUT"] = node_lifecycle.record_json(previous)
    script = node_set_script(current, mode=mode, removed_node_action=action)  # type: ignore[arg-type]
    result = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=60
    )
    calls = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
    return result, calls, json.loads(state_path.read_text())


def verbs(calls: list[dict[str, Any]]) -> list[str]:
    """Each call as `<cli> <subcommand...> <target>`, without the credential flags."""
    shown = []
    for call in calls:
        argv = call["argv"]
        if call["cli"] == "kubectl":
            shown.append(" ".join(["kubectl", *argv[2:4]]))
        else:
            target = argv[argv.index("--nodes") + 1]
            words = argv[6:8] if argv[6] == "etcd" else argv[6:7]
            shown.append(" ".join(["talosctl", *words, "@" + target]))
    return shown


HOMELAB = [cp(1), cp(2), cp(3), worker(1)]


# --- the script ---------------------------------------------------------------------------------


def test_create_records_the_set_and_touches_nothing(tmp_path: Path) -> None:
    result, calls, _ = run_script(tmp_path, None, HOMELAB, mode="record")
    assert result.returncode == 0, result.stderr
    assert calls == []
    assert json.loads(result.stdout) == [e.as_data() for e in sorted(HOMELAB)]


def test_an_unchanged_or_grown_set_calls_no_cli(tmp_path: Path) -> None:
    """Adding a node only records it; the health wait then checks the grown set."""
    result, calls, _ = run_script(tmp_path, HOMELAB[:3], HOMELAB)
    assert result.returncode == 0, result.stderr
    assert calls == []
    assert json.loads(result.stdout) == [e.as_data() for e in sorted(HOMELAB)]


def test_a_removed_worker_is_drained_stopped_and_deleted_in_that_order(tmp_path: Path) -> None:
    """kubernetes/kubectl@v0.36.3:pkg/cmd/drain/drain.go: `--ignore-daemonsets` (DaemonSet pods
    would block the drain otherwise) and `--delete-emptydir-data` are drain's own flags, and
    `--timeout` a duration. siderolabs/talos@v1.13.9:cmd/talosctl/cmd/talos/shutdown.go: `--force`
    skips Talos' own cordon/drain (done already), and track.go's `--wait` (default true) would
    follow the node's events until it is gone; `--wait=false` returns once it is asked."""
    result, calls, state = run_script(
        tmp_path, HOMELAB, HOMELAB[:3], nodes=["cp-1", "cp-2", "cp-3", "w-1"]
    )
    assert result.returncode == 0, result.stderr
    assert verbs(calls) == [
        "kubectl get node",
        "kubectl drain w-1",
        "talosctl shutdown @192.168.0.21",
        "kubectl delete node",
    ]
    drain = calls[1]["argv"][2:]
    assert {"--ignore-daemonsets", "--delete-emptydir-data"} <= set(drain)
    assert any(a.startswith("--timeout=") and a.endswith("s") for a in drain)
    assert calls[2]["argv"][6:] == ["shutdown", "--force", "--wait=false"]
    assert state["nodes"] == ["cp-1", "cp-2", "cp-3"]
    assert state["stopped"] == [["shutdown", "192.168.0.21"]]


def test_credentials_live_in_private_temp_files_only(tmp_path: Path) -> None:
    result, calls, _ = run_script(tmp_path, HOMELAB, HOMELAB[:3], nodes=["w-1"])
    assert result.returncode == 0, result.stderr
    for call in calls:
        assert call["inherited"] == []
        assert call["mode"] == 0o600
        expected = KUBECONFIG_TEXT if call["cli"] == "kubectl" else TALOSCONFIG_TEXT
        assert call["file"] == expected
    assert not list(tmp_path.glob("homelab-*"))
    assert "SENTINEL" not in result.stdout + result.stderr


def test_a_removed_control_plane_leaves_etcd_on_itself_before_its_node_goes(
    tmp_path: Path,
) -> None:
    """siderolabs/talos@v1.13.9:cmd/talosctl/cmd/talos/etcd.go: `etcd leave` takes no
    arguments and refuses more than one node (`FailIfMultiNodes`); machined's
    EtcdLeaveCluster removes the member of the node it runs on (internal/pkg/etcd/etcd.go
    `LeaveCluster`: GetLocalMemberID), so it is sent to the departing node itself."""
    five = [cp(1), cp(2), cp(3), cp(4), cp(5)]
    members = [member(e, i + 1) for i, e in enumerate(five)]
    result, calls, state = run_script(
        tmp_path,
        five,
        five[:3],
        nodes=[e.hostname for e in five],
        members=members,
    )
    assert result.returncode == 0, result.stderr
    assert verbs(calls) == [
        # The quorum check reads the members from a control plane that stays.
        "talosctl etcd members @192.168.0.11",
        "kubectl get node",
        "kubectl drain cp-4",
        "talosctl etcd leave @192.168.0.14",
        "talosctl shutdown @192.168.0.14",
        "kubectl delete node",
        "kubectl get node",
        "kubectl drain cp-5",
        "talosctl etcd leave @192.168.0.15",
        "talosctl shutdown @192.168.0.15",
        "kubectl delete node",
    ]
    for call in calls:
        if call["cli"] == "talosctl":
            argv = call["argv"]
            assert argv[argv.index("--nodes") + 1] == argv[argv.index("--endpoints") + 1]
    assert [m["name"] for m in state["members"]] == ["cp-1", "cp-2", "cp-3"]


def test_workers_go_before_control_planes(tmp_path: Path) -> None:
    members = [member(e, i + 1) for i, e in enumerate(HOMELAB[:3])]
    result, calls, _ = run_script(
        tmp_path, [*HOMELAB, worker(2)], [cp(1)], members=members, nodes=[]
    )
    assert result.returncode == 0, result.stderr
    drained_order = [c["argv"][4] for c in calls if c["argv"][2:4] == ["get", "node"]]
    assert drained_order == ["w-1", "w-2", "cp-2", "cp-3"]


def test_a_removal_that_would_lose_quorum_is_refused_before_anything_changes(
    tmp_path: Path,
) -> None:
    """etcd needs a majority of its voting members started; a member that has not started
    has no name (siderolabs/talos@v1.13.9: internal/pkg/etcd/etcd.go `ValidateForUpgrade`,
    "If the member is not started, the name will be an empty string"). With cp-2 and cp-3
    down, cp-4 leaving leaves 4 members of which 2 run: no majority."""
    five = [cp(1), cp(2), cp(3), cp(4), cp(5)]
    members = [
        member(e, i + 1, started=e.hostname not in ("cp-2", "cp-3")) for i, e in enumerate(five)
    ]
    result, calls, state = run_script(
        tmp_path, five, five[:3], nodes=[e.hostname for e in five], members=members
    )
    assert result.returncode == 1
    (line,) = result.stderr.strip().splitlines()
    assert node_lifecycle.NODES_KEY in line
    assert "would lose etcd quorum" in line
    assert "cp-4" in line
    # Only the members were read: nothing drained, left or deleted.
    assert verbs(calls) == ["talosctl etcd members @192.168.0.11"]
    assert len(state["members"]) == 5
    assert len(state["nodes"]) == 5


def test_the_members_table_with_a_member_that_has_not_started_parses(tmp_path: Path) -> None:
    """A learner that has not started yet has an empty HOSTNAME cell in the table (etcd.go
    prints `member.Hostname`); removing a healthy member beside it is still allowed."""
    three = [cp(1), cp(2), cp(3)]
    members = [member(e, i + 1) for i, e in enumerate(three)]
    members.append({"id": "00000000000000ff", "name": "", "peer": "192.168.0.19", "learner": True})
    result, _, state = run_script(
        tmp_path, three, [cp(1), cp(3)], nodes=["cp-1", "cp-2", "cp-3"], members=members
    )
    assert result.returncode == 0, result.stderr
    assert {m["name"] for m in state["members"]} == {"cp-1", "cp-3", ""}


def test_an_unreachable_control_plane_is_removed_by_member_id_from_one_that_stays(
    tmp_path: Path,
) -> None:
    """siderolabs/talos@v1.13.9:cmd/talosctl/cmd/talos/etcd.go `remove-member <member ID>`:
    for a member "if there is no access to the node"; the ID is the hex form the members
    table prints (pkg/machinery/resources/etcd/etcd.go `FormatMemberID`/`ParseMemberID`)."""
    five = [cp(1), cp(2), cp(3), cp(4), cp(5)]
    members = [member(e, i + 1) for i, e in enumerate(five)]
    result, calls, state = run_script(
        tmp_path,
        five,
        [cp(1), cp(2), cp(3), cp(5)],
        nodes=[e.hostname for e in five],
        members=members,
        unreachable=["192.168.0.14"],
    )
    assert result.returncode == 0, result.stderr
    removal = [c for c in calls if "remove-member" in c["argv"]]
    (call,) = removal
    member_id = call["argv"][-1]
    assert int(member_id, 16) == 4
    assert len(member_id) == 16
    assert call["argv"][call["argv"].index("--nodes") + 1] == "192.168.0.11"
    assert "cp-4" not in {m["name"] for m in state["members"]}
    assert "power it off by hand" in result.stderr  # its shutdown could not reach it either


def test_a_failed_drain_stops_before_etcd_and_the_next_run_resumes(tmp_path: Path) -> None:
    three = [cp(1), cp(2), cp(3)]
    members = [member(e, i + 1) for i, e in enumerate(three)]
    result, calls, state = run_script(
        tmp_path,
        three,
        [cp(1), cp(3)],
        nodes=["cp-1", "cp-2", "cp-3"],
        members=members,
        drain_fails=["cp-2"],
    )
    assert result.returncode == 1
    # Its stdout is the previous record, whatever the provider keeps of a failed update.
    assert result.stdout == node_lifecycle.record_json(three)
    assert "could not drain cp-2" in result.stderr
    assert "pulumi up" in result.stderr
    assert not any("leave" in c["argv"] for c in calls)
    assert len(state["members"]) == 3
    assert "cp-2" in state["nodes"]
    # A failed update keeps the previous record in the state, so the next `up` sees the same
    # departure; with the blocker gone it completes.
    state["drain_fails"] = []
    (tmp_path / "state.json").write_text(json.dumps(state))
    result, _, state = run_script(tmp_path, three, [cp(1), cp(3)])
    assert result.returncode == 0, result.stderr
    assert [m["name"] for m in state["members"]] == ["cp-1", "cp-3"]
    assert state["nodes"] == ["cp-1", "cp-3"]
    # And a run after that, with the new record, does nothing at all.
    log = tmp_path / "calls.jsonl"
    log.unlink()
    result, calls, _ = run_script(tmp_path, [cp(1), cp(3)], [cp(1), cp(3)])
    assert result.returncode == 0
    assert calls == []


@pytest.mark.parametrize(
    ("action", "expected"),
    [
        ("reset", [["reset", "192.168.0.21"]]),
        ("reset-by-apply", None),
    ],
)
def test_what_happens_to_the_machine(
    tmp_path: Path, action: node_lifecycle.RemovedNodeAction, expected: Any
) -> None:
    """siderolabs/talos@v1.13.9:cmd/talosctl/cmd/talos/reset.go: `--graceful` (default true)
    would cordon, drain and leave etcd again, done already; `--reboot` boots the wiped node back
    into maintenance mode instead of powering it off. In a lab the node's ConfigurationApply
    resets it when it is deleted (`on_destroy`), so the script leaves the machine alone."""
    result, calls, state = run_script(tmp_path, HOMELAB, HOMELAB[:3], action=action, nodes=["w-1"])
    assert result.returncode == 0, result.stderr
    assert state.get("stopped") == expected
    if action == "reset":
        (reset,) = [c for c in calls if "reset" in c["argv"]]
        assert reset["argv"][6:] == ["reset", "--graceful=false", "--reboot", "--wait=false"]


def test_a_renamed_node_loses_its_old_node_once_the_new_one_is_ready(tmp_path: Path) -> None:
    """Talos registers the kubelet under the node's hostname (siderolabs/talos@v1.13.9:
    internal/app/machined/pkg/controllers/k8s/nodename.go), so a rename leaves the old Node
    behind, which `talosctl health` would report as unexpected (pkg/cluster/cluster.go
    `NodesMatch`)."""
    renamed = NodeEntry("192.168.0.21", "worker-1", "worker", "192.168.0.21")
    result, calls, state = run_script(
        tmp_path, HOMELAB, [*HOMELAB[:3], renamed], nodes=["cp-1", "w-1", "worker-1"]
    )
    assert result.returncode == 0, result.stderr
    assert verbs(calls) == ["kubectl wait --for=condition=Ready", "kubectl delete node"]
    assert calls[0]["argv"][4] == "node/worker-1"
    assert state["nodes"] == ["cp-1", "worker-1"]


def test_a_rename_whose_new_node_never_registers_keeps_the_old_one(tmp_path: Path) -> None:
    renamed = NodeEntry("192.168.0.21", "worker-1", "worker", "192.168.0.21")
    result, _, state = run_script(tmp_path, HOMELAB, [*HOMELAB[:3], renamed], nodes=["w-1"])
    assert result.returncode == 1
    assert "worker-1 is not Ready" in result.stderr
    assert state["nodes"] == ["w-1"]


def test_a_node_moving_to_a_new_address_is_neither_removed_nor_renamed(tmp_path: Path) -> None:
    moving = NodeEntry("192.168.0.31", "w-1", "worker", "192.168.0.21")  # currentAddress
    result, calls, _ = run_script(tmp_path, HOMELAB, [*HOMELAB[:3], moving])
    assert result.returncode == 0, result.stderr
    assert calls == []
    moved = NodeEntry("192.168.0.31", "w-1", "worker", "192.168.0.31")  # the next `up`
    result, calls, _ = run_script(tmp_path, [*HOMELAB[:3], moving], [*HOMELAB[:3], moved])
    assert result.returncode == 0
    assert calls == []


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

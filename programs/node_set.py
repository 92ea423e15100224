"""The node set: `record` prints the configured nodes; `reconcile` compares them with the set the
last run recorded (`PULUMI_COMMAND_STDOUT`) and tells Kubernetes and etcd about the nodes that
left (drained, out of etcd with its quorum checked first, shut down or reset, their Node deleted)
or were renamed (the old Node deleted once the new one is Ready), then prints the new set. A
failed run prints the previous record again, so the next `up` does the same again; every step is
idempotent."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Sequence
from typing import Any, Literal, TypedDict

from programs.runtime import ProgramFailedError, credential_file, fail, run_cli, say

Node = dict[str, str]
Member = dict[str, Any]


class Params(TypedDict):
    drain_skip_wait_seconds: int
    drain_timeout: str
    kubeconfig_env: str
    mode: Literal["record", "reconcile"]
    # Each configured node: ip, hostname, role and the address its Talos API answers on.
    nodes: list[Node]
    nodes_key: str
    program: str
    removed_node_action: Literal["shutdown", "reset", "reset-by-apply"]
    rename_ready_timeout: str
    # `talosctl reset --system-labels-to-wipe` of a removed node (cmd/talosctl/cmd/talos/reset.go:
    # without it the whole system disk is wiped, boot partitions included).
    reset_labels: list[str]
    talosconfig_env: str
    timeout: int


class Cluster:
    """kubectl and talosctl with the cluster's credentials (temp files), each call bounded."""

    def __init__(self, params: Params, kubeconfig: str, talosconfig: str) -> None:
        self.params = params
        self.kubeconfig = kubeconfig
        self.talosconfig = talosconfig

    def run(self, argv: list[str]) -> subprocess.CompletedProcess[str]:
        done = run_cli(argv, timeout=self.params["timeout"])
        if done is None:
            return subprocess.CompletedProcess(argv, 124, "", f"{argv[0]} timed out")
        return done

    def kubectl(self, *args: str) -> subprocess.CompletedProcess[str]:
        return self.run(["kubectl", "--kubeconfig", self.kubeconfig, *args])

    def talosctl(self, address: str, *args: str) -> subprocess.CompletedProcess[str]:
        return self.run(
            [
                "talosctl",
                "--talosconfig",
                self.talosconfig,
                "--endpoints",
                address,
                "--nodes",
                address,
                *args,
            ]
        )


# --- etcd ---------------------------------------------------------------------------------------

PEER_HOST = re.compile(r"^[a-z]+://\[?([^\]/]+?)\]?:\d+$")


def parse_members(text: str) -> list[Member]:
    """`talosctl etcd members` is a table (siderolabs/talos@v1.13.9:
    cmd/talosctl/cmd/talos/etcd.go `etcdMemberListCmd`): [NODE] ID HOSTNAME PEER-URLS CLIENT-URLS
    LEARNER; HOSTNAME is empty for a member that has not started, and cells are separated by runs
    of spaces."""
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines:
        return []
    with_node = lines[0].split()[0] == "NODE"
    members: list[Member] = []
    for line in lines[1:]:
        cells = line.split()
        if with_node:
            cells = cells[1:]
        if len(cells) == 5:
            member_id, name, peers, _, learner = cells
        elif len(cells) == 4:
            member_id, peers, _, learner = cells
            name = ""
        else:
            fail(f"cannot read this line of `talosctl etcd members`: {line.strip()}")
        hosts: list[str] = []
        for url in peers.split(","):
            found = PEER_HOST.match(url)
            if found:
                hosts.append(found.group(1))
        members.append(
            {"id": member_id, "name": name, "hosts": hosts, "learner": learner == "true"}
        )
    return members


def etcd_members(params: Params, cluster: Cluster, staying: Sequence[str]) -> list[Member]:
    last = ""
    for address in staying:
        listed = cluster.talosctl(address, "etcd", "members")
        if listed.returncode == 0:
            return parse_members(listed.stdout)
        last = listed.stderr.strip()
    fail(
        f"{params['nodes_key']}: cannot list etcd members from any staying control plane "
        f"({', '.join(staying)}): {last}"
    )


def member_of(members: Sequence[Member], address: str) -> Member | None:
    for member in members:
        if address in member["hosts"]:
            return member
    return None


def etcd_runs(cluster: Cluster, address: str) -> bool:
    """Whether the member on `address` runs: `talosctl etcd members` asks the etcd of the node it
    is sent to (cmd/talosctl/cmd/talos/etcd.go `etcdMemberListCmd`, QueryLocal), so it answers only
    there. A member that is down still has its name, so etcd counts it as started
    (etcd-io/etcd@v3.6.12: server/etcdserver/api/membership/member.go `IsStarted`) while it cannot
    vote."""
    return cluster.talosctl(address, "etcd", "members").returncode == 0


def name_of(member: Member) -> str:
    return f"{member['name'] or member['id']} ({', '.join(member['hosts'])})"


def check_quorum(
    params: Params, members: Sequence[Member], leaving: Sequence[Node], live: set[str]
) -> None:
    """The cluster must have quorum now (else etcd refuses every change), and after each of the
    departing members leaves in turn the members that run must still be a majority of those
    left (etcd-io/etcd@v3.6.12: server/etcdserver/server.go `mayRemoveMember`). `live` holds the
    ids of the members that run."""
    voting = [m for m in members if not m["learner"]]
    running = [m for m in voting if m["id"] in live]
    if len(running) < len(voting) // 2 + 1:
        down = [name_of(m) for m in voting if m["id"] not in live]
        fail(
            f"{params['nodes_key']}: etcd has lost quorum: {len(running)} of its {len(voting)} "
            f"members run (down: {', '.join(down)}), so no member can be removed. Bring enough "
            "of them back, or restore etcd from a snapshot (docs/operations.md, Backups and "
            "restore); then run `pulumi up` again"
        )
    for node in leaving:
        member = member_of(voting, node["address"])
        if member is None:
            continue
        voting = [m for m in voting if m is not member]
        running = [m for m in voting if m["id"] in live]
        needed = len(voting) // 2 + 1
        if not voting or len(running) < needed:
            down = [name_of(m) for m in voting if m["id"] not in live]
            fail(
                f"{params['nodes_key']}: removing control plane {node['hostname']} "
                f"({node['address']}) would lose etcd quorum: {len(running)} of the "
                f"{len(voting)} members left run, {needed} are needed"
                + (f" (down: {', '.join(down)})" if down else "")
                + "; bring those members back first, or keep this control plane"
            )


def departure_order(
    departed: Sequence[Node], members: Sequence[Member], live: set[str]
) -> list[Node]:
    """Workers first, then control planes whose member is down, then the others: etcd refuses
    to remove a running member while a down one still counts among the voters it needs
    (`mayRemoveMember`: the members connected to the one handling the removal, minus one, must
    be a quorum of all voting members)."""

    def key(node: Node) -> tuple[int, str]:
        if node["role"] != "controlplane":
            return 0, node["ip"]
        member = member_of(members, node["address"])
        return (2 if member is not None and member["id"] in live else 1), node["ip"]

    return sorted(departed, key=key)


# --- one node -----------------------------------------------------------------------------------


def node_exists(cluster: Cluster, name: str) -> bool:
    got = cluster.kubectl("get", "node", name, "--output", "name")
    if got.returncode == 0:
        return True
    if "NotFound" in got.stderr or "not found" in got.stderr:
        return False
    fail(f"cannot read Node {name}: {got.stderr.strip()}")


def drain(params: Params, cluster: Cluster, node: Node) -> None:
    """`kubectl drain`, which waits for every evicted pod to be gone. On a node whose kubelet is
    dead no pod ever goes (nothing confirms it stopped), so it skips a pod terminating for longer
    than its grace period plus `--skip-wait-for-delete-timeout` (kubernetes/kubectl@
    kubernetes-1.36.3: pkg/drain/drain.go `waitForDelete`, filters.go `shouldSkipPod`); on a
    live node pods are gone before that."""
    if not node_exists(cluster, node["hostname"]):
        say(f"Node {node['hostname']} is not in Kubernetes, nothing to drain")
        return
    drained = cluster.kubectl(
        "drain",
        node["hostname"],
        "--ignore-daemonsets",
        "--delete-emptydir-data",
        f"--skip-wait-for-delete-timeout={params['drain_skip_wait_seconds']}",
        f"--timeout={params['drain_timeout']}",
    )
    if drained.returncode != 0:
        fail(
            f"could not drain {node['hostname']}: {drained.stderr.strip()}; fix what kubectl "
            "names and run `pulumi up` again (the removal resumes)"
        )


def leave_etcd(params: Params, cluster: Cluster, node: Node, staying: Sequence[str]) -> None:
    left = cluster.talosctl(node["address"], "etcd", "leave")
    if left.returncode == 0:
        say(f"{node['hostname']} left etcd")
        return
    say(
        f"{node['hostname']} did not leave etcd itself ({left.stderr.strip()}); removing its "
        "member from a staying control plane"
    )
    member = member_of(etcd_members(params, cluster, staying), node["address"])
    if member is None:
        say(f"{node['hostname']} is no etcd member any more")
        return
    last = ""
    for address in staying:
        removed = cluster.talosctl(address, "etcd", "remove-member", member["id"])
        if removed.returncode == 0 or "not found" in removed.stderr.lower():
            say(f"removed etcd member {member['id']} of {node['hostname']}")
            return
        last = removed.stderr.strip()
    fail(f"could not remove etcd member {member['id']} of {node['hostname']}: {last}")


def stop_machine(params: Params, cluster: Cluster, node: Node) -> None:
    action = params["removed_node_action"]
    if action == "reset-by-apply":
        return
    if action == "reset":
        wipe = [f"--system-labels-to-wipe={label}" for label in params["reset_labels"]]
        argv = ["reset", "--graceful=false", "--reboot", *wipe, "--wait=false"]
    else:
        argv = ["shutdown", "--force", "--wait=false"]
    done = cluster.talosctl(node["address"], *argv)
    if done.returncode != 0:
        # Already off, or gone: it has left the cluster either way.
        say(
            f"could not {argv[0]} {node['hostname']} ({done.stderr.strip()}); it has left "
            "Kubernetes and etcd. If it powers on again it boots its old config and its kubelet "
            f"registers again: wipe it then (`talosctl -n {node['address']} reset "
            "--graceful=false --system-labels-to-wipe=STATE --system-labels-to-wipe=EPHEMERAL`) "
            "or boot it from the ISO"
        )
    else:
        say(f"{argv[0]} sent to {node['hostname']}")


def remove(params: Params, cluster: Cluster, node: Node, staying: Sequence[str]) -> None:
    say(f"removing {node['role']} {node['hostname']} ({node['address']})")
    drain(params, cluster, node)
    if node["role"] == "controlplane":
        leave_etcd(params, cluster, node, staying)
    stop_machine(params, cluster, node)
    deleted = cluster.kubectl("delete", "node", node["hostname"], "--ignore-not-found")
    if deleted.returncode != 0:
        fail(f"could not delete Node {node['hostname']}: {deleted.stderr.strip()}")


def rename(params: Params, cluster: Cluster, old: str, new: str) -> None:
    say(f"renaming Node {old} to {new}")
    # The renamed kubelet registers a new Node some seconds after the apply; `--for=create` waits
    # for it first, then its Ready condition, within one timeout (kubernetes/kubectl@
    # kubernetes-1.36.3: pkg/cmd/wait/wait.go `RunWaitContext`; without `create` a Node that
    # does not exist yet fails the wait at once).
    ready = cluster.kubectl(
        "wait",
        "--for=create",
        "--for=condition=Ready",
        f"node/{new}",
        f"--timeout={params['rename_ready_timeout']}",
    )
    if ready.returncode != 0:
        fail(f"Node {new} is not Ready, so {old} is kept: {ready.stderr.strip()}")
    deleted = cluster.kubectl("delete", "node", old, "--ignore-not-found")
    if deleted.returncode != 0:
        fail(f"could not delete the old Node {old}: {deleted.stderr.strip()}")


# --- the set ------------------------------------------------------------------------------------


def plan(
    previous: Sequence[Node], current: Sequence[Node]
) -> tuple[list[Node], list[tuple[str, str]]]:
    """The nodes that left (workers first, then control planes) and the (old, new) hostnames of
    the renamed ones: a node is the same while its ip or address stays."""
    known = {n["ip"] for n in current} | {n["address"] for n in current}
    departed = [n for n in previous if n["ip"] not in known]
    departed.sort(key=lambda n: (n["role"] == "controlplane", n["ip"]))
    renamed: list[tuple[str, str]] = []
    for old in previous:
        for new in current:
            same = old["ip"] in (new["ip"], new["address"])
            if same and old["hostname"] != new["hostname"]:
                renamed.append((old["hostname"], new["hostname"]))
    return departed, renamed


def reconcile(params: Params, previous: Sequence[Node]) -> None:
    current = params["nodes"]
    departed, renamed = plan(previous, current)
    if not departed and not renamed:
        return
    with (
        credential_file(params["kubeconfig_env"], "kubeconfig") as kube,
        credential_file(params["talosconfig_env"], "talosconfig") as talos,
    ):
        cluster = Cluster(params, kube, talos)
        gone = {n["address"] for n in departed}
        staying = [
            n["address"]
            for n in current
            if n["role"] == "controlplane" and n["address"] not in gone
        ]
        leaving = [n for n in departed if n["role"] == "controlplane"]
        if leaving:
            members = etcd_members(params, cluster, staying)
            live = {
                m["id"] for m in members if any(etcd_runs(cluster, host) for host in m["hosts"])
            }
            departed = departure_order(departed, members, live)
            check_quorum(
                params, members, [n for n in departed if n["role"] == "controlplane"], live
            )
        for node in departed:
            remove(params, cluster, node, staying)
        for old, new in renamed:
            rename(params, cluster, old, new)


def main(params: Params) -> str:
    current = json.dumps(params["nodes"], sort_keys=True)
    if params["mode"] == "record":
        return current
    recorded = os.environ.get("PULUMI_COMMAND_STDOUT") or ""
    try:
        previous = json.loads(recorded or "null")
    except ValueError:
        previous = None
    if not isinstance(previous, list):
        say("no previous node set recorded; recording this one")
        return current
    try:
        reconcile(params, previous)
    except ProgramFailedError:
        # Whatever the provider keeps of a failed run's stdout, the next `up` still sees the
        # departures it has to finish.
        sys.stdout.write(recorded)
        raise
    return current

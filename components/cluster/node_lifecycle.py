"""Nodes that come and go: removal, rename and re-address as one reconciling Command.

A node's Talos resources are keyed by its IP (components/cluster/talos.py `node_resource_name`),
so a rename is an update of the same resources, not a replacement that would reset a lab node.
What Kubernetes and etcd must be told when the node set changes is done by one
`pulumi_command.local.Command`, the *node set*:

- `create` records the configured nodes (its stdout: a sorted JSON list of ip, hostname, role
  and the address Talos answers on). It touches nothing.
- `update` runs whenever that list (or a credential) changes, with the previous list in
  `PULUMI_COMMAND_STDOUT` (pulumi_command 1.2.1 local/command.py, `update`: "The environment
  variables PULUMI_COMMAND_STDOUT and PULUMI_COMMAND_STDERR are set to the stdout and stderr
  properties of the Command resource from previous create or update steps"). So it knows which
  nodes left the config and which were renamed, from the stack's own state, which config
  validation never sees. It then, before anything is deleted:
  1. for departing control planes, reads `talosctl etcd members` from a control plane that stays
     and refuses, with one line naming `homelab:cluster.nodes`, a removal that would leave etcd
     without quorum (below);
  2. for each departing node, workers first, then control planes one at a time:
     `kubectl drain --ignore-daemonsets --delete-emptydir-data`; for a control plane
     `talosctl etcd leave` on the node itself, or `talosctl etcd remove-member <id>` from a staying
     control plane when the node does not answer; then, on the homelab, `talosctl shutdown`
     (disk intact) or, when `lifecycle.resetRemovedNodes` asks for it, `talosctl reset`; in a lab
     the node's ConfigurationApply resets it when it is deleted; last `kubectl delete node`;
  3. for a renamed node, waits for the Node of the new name to be Ready and deletes the old one.
  It prints the new list. A failed run prints the previous list again (and Pulumi keeps the old
  state of a failed update), so the next `up` does the same again; every step is idempotent.

Why not a `delete` script on a per-node Command, which would run when that node's resources are
deleted: Pulumi deletes removed resources after every create and update of the run, so the
health wait (components/cluster/talos_health.py), replaced because the node set changed, would
first check the new node list while the departing Node still exists, and `talosctl health`
fails on it (siderolabs/talos@v1.13.9: pkg/cluster/check/kubernetes.go via pkg/cluster/cluster.go
`NodesMatch`, "unexpected nodes"), so no removal could ever go through. Removed resources are
also deleted in parallel, while etcd members must leave one at a time. Here the removal runs
before the health wait (which `depends_on` this Command) and in order.

Quorum. `talosctl etcd leave` calls machined's EtcdLeaveCluster on the node, which removes its
own member (retrying for five minutes while etcd answers "unhealthy"), stops etcd and deletes its
data (siderolabs/talos@v1.13.9: internal/pkg/etcd/etcd.go `LeaveCluster`); it checks no quorum
itself. `remove-member` is upstream's fallback for a member "in broken state" whose node cannot
be reached (cmd/talosctl/cmd/talos/etcd.go). So the guard checks first, the way the upgrade check
counts health (internal/pkg/etcd/etcd.go `ValidateForUpgrade`: a member without a name "is not
started"): removing the departing members one by one, after each removal the started voting
members that remain must still be a majority of the members that remain.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final, Literal

import pulumi
import pulumi_command as command

from components.cluster.talos_health import TALOSCONFIG_ENV as TALOSCONFIG_ENV
from components.shared.kubectl import INTERPRETER as INTERPRETER
from components.shared.kubectl import KUBECONFIG_ENV as KUBECONFIG_ENV
from config.model import Cluster, Lifecycle

# Marks the program, so the offline render's fakes can tell it from the other Commands.
PROGRAM: Final = "homelab-node-set"
NODES_KEY: Final = "homelab:cluster.nodes"
DRAIN_TIMEOUT: Final = "600s"
RENAME_READY_TIMEOUT: Final = "600s"
COMMAND_TIMEOUT_SECONDS: Final = 900

RemovedNodeAction = Literal["shutdown", "reset", "reset-by-apply"]


@dataclass(frozen=True, order=True)
class NodeEntry:
    """One configured node as the node set records it."""

    ip: str
    hostname: str
    role: str
    # Where its Talos API answers during this `up` (`currentAddress` while it moves, else `ip`).
    address: str

    def as_data(self) -> dict[str, str]:
        return {
            "address": self.address,
            "hostname": self.hostname,
            "ip": self.ip,
            "role": self.role,
        }


def node_entries(cluster: Cluster) -> tuple[NodeEntry, ...]:
    return tuple(
        sorted(NodeEntry(str(n.ip), n.hostname, n.role, n.talos_address) for n in cluster.nodes)
    )


def removed_node_action(lifecycle: Lifecycle) -> RemovedNodeAction:
    """What happens to a machine once it has left Kubernetes and etcd."""
    if lifecycle.reset_on_destroy:
        # Its ConfigurationApply's on_destroy resets it right after (components/cluster/talos.py).
        return "reset-by-apply"
    return "reset" if lifecycle.reset_removed else "shutdown"


def record_json(entries: Sequence[NodeEntry]) -> str:
    """What the Command prints: the recorded node set, sorted, one line."""
    return json.dumps([e.as_data() for e in sorted(entries)], sort_keys=True)


_SCRIPT_BODY: Final = r"""
import json
import os
import re
import subprocess
import sys
import tempfile
import time


def say(message):
    sys.stderr.write(PARAMS["program"] + ": " + message + "\n")


# The record of the last successful run. A failed run prints it again, so whatever the provider
# keeps of this run's stdout, the next `up` still sees the departures it has to finish.
PREVIOUS_RECORD = []


def fail(message):
    say(message)
    if PREVIOUS_RECORD:
        sys.stdout.write(PREVIOUS_RECORD[0])
    sys.exit(1)


def child_env():
    hidden = (PARAMS["kubeconfig_env"], PARAMS["talosconfig_env"], "KUBECONFIG", "TALOSCONFIG",
              "PULUMI_COMMAND_STDOUT", "PULUMI_COMMAND_STDERR")
    return {k: v for k, v in os.environ.items() if k not in hidden}


def run(argv, timeout):
    try:
        return subprocess.run(argv, env=child_env(), capture_output=True, text=True,
                              timeout=timeout, stdin=subprocess.DEVNULL)
    except FileNotFoundError:
        fail(argv[0] + " is not on PATH (a prerequisite of `pulumi up`)")
    except subprocess.TimeoutExpired:
        return subprocess.CompletedProcess(argv, 124, "", argv[0] + " timed out")


class Cluster:
    def __init__(self, kubeconfig, talosconfig):
        self.kubeconfig = kubeconfig
        self.talosconfig = talosconfig

    def kubectl(self, *args):
        return run(["kubectl", "--kubeconfig", self.kubeconfig, *args], PARAMS["timeout"])

    def talosctl(self, address, *args):
        return run(["talosctl", "--talosconfig", self.talosconfig, "--endpoints", address,
                    "--nodes", address, *args], PARAMS["timeout"])


def node_exists(cluster, name):
    got = cluster.kubectl("get", "node", name, "--output", "name")
    if got.returncode == 0:
        return True
    if "NotFound" in got.stderr or "not found" in got.stderr:
        return False
    fail("cannot read Node " + name + ": " + got.stderr.strip())


PEER_HOST = re.compile(r"^[a-z]+://\[?([^\]/]+?)\]?:\d+$")


def parse_members(text):
    # `talosctl etcd members` is a table (cmd/talosctl/cmd/talos/etcd.go `etcdMemberListCmd`):
    # [NODE] ID HOSTNAME PEER-URLS CLIENT-URLS LEARNER; HOSTNAME is empty for a member that has
    # not started, and cells are separated by runs of spaces.
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines:
        return []
    with_node = lines[0].split()[0] == "NODE"
    members = []
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
            fail("cannot read this line of `talosctl etcd members`: " + line.strip())
        hosts = []
        for url in peers.split(","):
            found = PEER_HOST.match(url)
            if found:
                hosts.append(found.group(1))
        members.append({"id": member_id, "name": name, "hosts": hosts,
                        "learner": learner == "true"})
    return members


def etcd_members(cluster, staying):
    last = ""
    for address in staying:
        listed = cluster.talosctl(address, "etcd", "members")
        if listed.returncode == 0:
            return parse_members(listed.stdout)
        last = listed.stderr.strip()
    fail(PARAMS["nodes_key"] + ": cannot list etcd members from any staying control plane (" +
         ", ".join(staying) + "): " + last)


def member_of(members, address):
    for member in members:
        if address in member["hosts"]:
            return member
    return None


def check_quorum(members, leaving):
    # Remove the departing members one at a time; after each removal the started voting members
    # left must be a majority of the voting members left.
    voting = [m for m in members if not m["learner"]]
    for node in leaving:
        member = member_of(voting, node["address"])
        if member is None:
            continue
        voting = [m for m in voting if m is not member]
        started = [m for m in voting if m["name"]]
        needed = len(voting) // 2 + 1
        if not voting or len(started) < needed:
            down = [m["id"] for m in voting if not m["name"]]
            fail(PARAMS["nodes_key"] + ": removing control plane " + node["hostname"] + " (" +
                 node["address"] + ") would lose etcd quorum: " + str(len(started)) + " of the " +
                 str(len(voting)) + " members left are started, " + str(needed) + " are needed" +
                 (" (not started: " + ", ".join(down) + ")" if down else "") +
                 "; bring those members back first, or keep this control plane")


def drain(cluster, node):
    if not node_exists(cluster, node["hostname"]):
        say("Node " + node["hostname"] + " is not in Kubernetes, nothing to drain")
        return False
    drained = cluster.kubectl("drain", node["hostname"], "--ignore-daemonsets",
                              "--delete-emptydir-data", "--timeout=" + PARAMS["drain_timeout"])
    if drained.returncode != 0:
        fail("could not drain " + node["hostname"] + ": " + drained.stderr.strip() +
             "; fix what blocks the eviction (a PodDisruptionBudget, a pod without a controller)"
             " and run `pulumi up` again")
    return True


def leave_etcd(cluster, node, staying):
    left = cluster.talosctl(node["address"], "etcd", "leave")
    if left.returncode == 0:
        say(node["hostname"] + " left etcd")
        return
    say(node["hostname"] + " did not leave etcd itself (" + left.stderr.strip() +
        "); removing its member from a staying control plane")
    member = member_of(etcd_members(cluster, staying), node["address"])
    if member is None:
        say(node["hostname"] + " is no etcd member any more")
        return
    last = ""
    for address in staying:
        removed = cluster.talosctl(address, "etcd", "remove-member", member["id"])
        if removed.returncode == 0 or "not found" in removed.stderr.lower():
            say("removed etcd member " + member["id"] + " of " + node["hostname"])
            return
        last = removed.stderr.strip()
    fail("could not remove etcd member " + member["id"] + " of " + node["hostname"] + ": " + last)


def stop_machine(cluster, node):
    action = PARAMS["removed_node_action"]
    if action == "reset-by-apply":
        return
    if action == "reset":
        argv = ["reset", "--graceful=false", "--reboot", "--wait=false"]
    else:
        argv = ["shutdown", "--force", "--wait=false"]
    done = cluster.talosctl(node["address"], *argv)
    if done.returncode != 0:
        # Already off, or gone: it has left the cluster either way.
        say("could not " + argv[0] + " " + node["hostname"] + " (" + done.stderr.strip() +
            "); it has left Kubernetes and etcd, power it off by hand")
    else:
        say(argv[0] + " sent to " + node["hostname"])


def remove(cluster, node, staying):
    say("removing " + node["role"] + " " + node["hostname"] + " (" + node["address"] + ")")
    drain(cluster, node)
    if node["role"] == "controlplane":
        leave_etcd(cluster, node, staying)
    stop_machine(cluster, node)
    deleted = cluster.kubectl("delete", "node", node["hostname"], "--ignore-not-found")
    if deleted.returncode != 0:
        fail("could not delete Node " + node["hostname"] + ": " + deleted.stderr.strip())


def rename(cluster, old, new):
    say("renaming Node " + old + " to " + new)
    ready = cluster.kubectl("wait", "--for=condition=Ready", "node/" + new,
                            "--timeout=" + PARAMS["rename_ready_timeout"])
    if ready.returncode != 0:
        fail("Node " + new + " is not Ready, so " + old + " is kept: " + ready.stderr.strip())
    deleted = cluster.kubectl("delete", "node", old, "--ignore-not-found")
    if deleted.returncode != 0:
        fail("could not delete the old Node " + old + ": " + deleted.stderr.strip())


def plan(previous, current):
    known = {n["ip"] for n in current} | {n["address"] for n in current}
    departed = [n for n in previous if n["ip"] not in known]
    # Workers first; control planes one at a time after them.
    departed.sort(key=lambda n: (n["role"] == "controlplane", n["ip"]))
    renamed = []
    for old in previous:
        for new in current:
            same = old["ip"] in (new["ip"], new["address"])
            if same and old["hostname"] != new["hostname"]:
                renamed.append((old["hostname"], new["hostname"]))
    return departed, renamed


def with_files(work):
    values = {}
    for key in ("kubeconfig_env", "talosconfig_env"):
        values[key] = os.environ.get(PARAMS[key], "")
        if not values[key].strip():
            fail(PARAMS[key] + " is empty")
    os.umask(0o077)
    paths = []
    try:
        for key in ("kubeconfig_env", "talosconfig_env"):
            handle, path = tempfile.mkstemp(prefix="homelab-" + key.split("_")[0] + "-")
            paths.append(path)
            with os.fdopen(handle, "w") as file:
                file.write(values[key])
        work(Cluster(paths[0], paths[1]))
    finally:
        for path in paths:
            os.unlink(path)


def main():
    current = PARAMS["nodes"]
    if PARAMS["mode"] == "record":
        sys.stdout.write(json.dumps(current, sort_keys=True))
        return
    recorded = os.environ.get("PULUMI_COMMAND_STDOUT") or ""
    try:
        previous = json.loads(recorded or "null")
    except ValueError:
        previous = None
    if isinstance(previous, list):
        PREVIOUS_RECORD.append(recorded)
    if not isinstance(previous, list):
        say("no previous node set recorded; recording this one")
        sys.stdout.write(json.dumps(current, sort_keys=True))
        return
    departed, renamed = plan(previous, current)
    if departed or renamed:
        def work(cluster):
            gone = {n["address"] for n in departed}
            staying = [n["address"] for n in current
                       if n["role"] == "controlplane" and n["address"] not in gone]
            leaving = [n for n in departed if n["role"] == "controlplane"]
            if leaving:
                check_quorum(etcd_members(cluster, staying), leaving)
            for node in departed:
                remove(cluster, node, staying)
            for old, new in renamed:
                rename(cluster, old, new)
        with_files(work)
    sys.stdout.write(json.dumps(current, sort_keys=True))


main()
"""


def node_set_script(
    entries: Sequence[NodeEntry],
    *,
    mode: Literal["record", "reconcile"],
    removed_node_action: RemovedNodeAction,
    timeout_seconds: int = COMMAND_TIMEOUT_SECONDS,
) -> str:
    """The program the Command runs: a sorted parameter literal, then a fixed body."""
    params: dict[str, object] = {
        "drain_timeout": DRAIN_TIMEOUT,
        "kubeconfig_env": KUBECONFIG_ENV,
        "mode": mode,
        "nodes": [e.as_data() for e in sorted(entries)],
        "nodes_key": NODES_KEY,
        "program": PROGRAM,
        "removed_node_action": removed_node_action,
        "rename_ready_timeout": RENAME_READY_TIMEOUT,
        "talosconfig_env": TALOSCONFIG_ENV,
        "timeout": timeout_seconds,
    }
    return f"PARAMS = {dict(sorted(params.items()))!r}\n{_SCRIPT_BODY}"


def node_set(
    name: str,
    cluster: Cluster,
    lifecycle: Lifecycle,
    *,
    kubeconfig: pulumi.Output[str],
    talosconfig: pulumi.Output[str],
    bootstrap: pulumi.Resource,
    parent: pulumi.Resource,
    depends_on: Sequence[pulumi.Resource],
) -> command.local.Command:
    """The Command that tells Kubernetes and etcd about nodes that left or were renamed."""
    entries = node_entries(cluster)
    action = removed_node_action(lifecycle)
    secret_kubeconfig: pulumi.Output[str] = pulumi.Output.secret(kubeconfig)
    secret_talosconfig: pulumi.Output[str] = pulumi.Output.secret(talosconfig)
    return command.local.Command(
        name,
        create=node_set_script(entries, mode="record", removed_node_action=action),
        update=node_set_script(entries, mode="reconcile", removed_node_action=action),
        interpreter=list(INTERPRETER),
        environment={KUBECONFIG_ENV: secret_kubeconfig, TALOSCONFIG_ENV: secret_talosconfig},
        # Progress goes to stderr; stdout is only the recorded node set.
        logging=command.local.Logging.STDERR,
        opts=pulumi.ResourceOptions(
            parent=parent,
            depends_on=[bootstrap, *depends_on],
            # A rebuilt cluster starts a new record: nothing of the old cluster's set is left to
            # remove, and its create touches nothing.
            replace_with=[bootstrap],
        ),
    )

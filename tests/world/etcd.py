"""etcd as Talos runs it on the control planes: members, quorum and etcd's own removal check.

A member belongs to one machine (address and hardware) and to the data directory it was started
with (`etcd_data`): replaced hardware at the same address, or the same machine with its EPHEMERAL
partition wiped, does not run the old member. A member's `name` is empty until it has started once, and stays set after
(etcd-io/etcd@v3.6.12:server/etcdserver/api/membership/member.go `IsStarted`: `len(m.Name) != 0`),
so a dead member still counts as started. Talos v1.13.9 ships etcd v3.6.12
(siderolabs/talos@v1.13.9:pkg/machinery/constants/constants.go `DefaultEtcdVersion`).
"""

from __future__ import annotations

from typing import Any

from tests.world import talos_model

State = dict[str, Any]
Member = dict[str, Any]


def etcd(state: State) -> dict[str, Any]:
    section: dict[str, Any] = talos_model.talos(state)["etcd"]
    return section


def members(state: State) -> list[Member]:
    found: list[Member] = etcd(state)["members"]
    return found


def format_id(number: int) -> str:
    """etcd member IDs as talosctl prints them (pkg/machinery/resources/etcd `FormatMemberID`:
    %016x)."""
    return f"{number:016x}"


def alive(state: State, member: Member) -> bool:
    """The member's etcd runs: its machine is installed, up, and the same hardware."""
    machine = talos_model.node_at(state, member["address"])
    return (
        holds_data(machine, member)
        and machine is not None
        and machine["state"] == "installed"
        and machine.get("role") == "controlplane"
        and not machine.get("etcd_stopped")
    )


def holds_data(machine: talos_model.Node | None, member: Member) -> bool:
    """The machine (powered or not) still has the member's data directory."""
    return (
        machine is not None
        and machine["state"] != "wiped"
        and machine["hardware"] == member["hardware"]
        and int(machine.get("etcd_data", 0)) == int(member.get("data", 0))
    )


def voting(state: State) -> list[Member]:
    return [m for m in members(state) if not m["learner"]]


def has_quorum(state: State) -> bool:
    """Raft needs a majority of the voting members alive to commit anything."""
    votes = voting(state)
    return bool(votes) and sum(alive(state, m) for m in votes) > len(votes) // 2


def member_of(state: State, machine: talos_model.Node) -> Member | None:
    for member in members(state):
        if member["address"] == machine["address"] and holds_data(machine, member):
            return member
    return None


def lost(state: State) -> bool:
    """No machine holds the data of any member any more: the cluster (and every Kubernetes
    object, which lives in it) is gone; a control plane waits for a bootstrap."""
    return bool(members(state)) and not any(
        holds_data(talos_model.node_at(state, m["address"]), m) for m in members(state)
    )


def forget_lost(state: State) -> None:
    if lost(state):
        etcd(state)["members"] = []


def bootstrap(state: State, machine: talos_model.Node) -> str | None:
    """Bootstrap: the first member, on this control plane (siderolabs/talos@v1.13.9:
    internal/app/machined/internal/server/v1alpha1/v1alpha1_server.go `Bootstrap`: control
    planes only, refused with AlreadyExists when this machine's etcd data directory is not
    empty). Bootstrapping a second cluster beside live members is not modelled."""
    if machine.get("role") != "controlplane":
        return (
            "rpc error: code = Unimplemented desc = bootstrap is only available on control "
            "plane nodes"
        )
    if member_of(state, machine) is not None:
        return "rpc error: code = AlreadyExists desc = etcd data directory is not empty"
    forget_lost(state)
    if members(state):
        raise NotImplementedError("a second etcd bootstrap beside existing members")
    _add(state, machine, started=True)
    # A new cluster: the Kubernetes API starts with what this etcd holds (tests/world/kube/
    # cluster.py `settle`).
    etcd(state)["cluster_id"] = int(etcd(state).get("cluster_id", 0)) + 1
    return None


def _add(state: State, machine: talos_model.Node, *, started: bool) -> Member:
    number = int(etcd(state)["next_id"])
    etcd(state)["next_id"] = number + 1
    member: Member = {
        "id": format_id(0x1000_0000_0000 + number * 0x1_0001),
        "name": machine["hostname"] if started else "",
        "address": machine["address"],
        "hardware": machine["hardware"],
        "data": int(machine.get("etcd_data", 0)),
        "learner": False,
    }
    members(state).append(member)
    return member


def settle(state: State) -> None:
    """A configured control plane that is up and not a member joins a bootstrapped cluster
    (Talos adds it as a learner and promotes it: internal/pkg/etcd; the promotion is not
    modelled). Before it adds itself it removes a member of its own hostname, the one a
    machine of the same name left behind (internal/app/machined/pkg/system/services/etcd.go
    `addMember`: "if there's already a member with same hostname, it should be removed"), with
    etcd's own check. Joining needs quorum, like every membership change."""
    forget_lost(state)
    if not members(state) or not has_quorum(state):
        return
    for machine in talos_model.nodes(state).values():
        if machine["state"] != "installed" or machine.get("role") != "controlplane":
            continue
        if machine.get("etcd_stopped"):
            continue
        if member_of(state, machine) is None:
            stale = next((m for m in members(state) if m["name"] == machine["hostname"]), None)
            if stale is not None and remove(state, stale["id"], None) is not None:
                continue
            _add(state, machine, started=True)


def may_remove_member(state: State, member_id: str, local: Member | None) -> str | None:
    """etcd's check before removing a voting member, with the server `local` handling it
    (etcd-io/etcd@v3.6.12:server/etcdserver/server.go `mayRemoveMember`):

    1. the started members that would remain must be a quorum of the voting members that would
       remain (membership/cluster.go `IsReadyToRemoveVotingMember`; a dead member with a name
       counts as started), else "re-configuration failed due to not enough started members";
    2. a member the local server has no active connection to (a down member) may go;
    3. otherwise the members connected to the local server, itself included, minus one must
       still be a quorum of all voting members (`numConnectedSince`), else "unhealthy cluster".
    """
    target = next((m for m in members(state) if m["id"] == member_id), None)
    if target is None or target["learner"]:
        return None
    others = [m for m in voting(state) if m["id"] != member_id]
    started = [m for m in others if m["name"]]
    if len(started) < len(others) // 2 + 1:
        return "etcdserver: re-configuration failed due to not enough started members"
    is_local = local is not None and local["id"] == member_id
    if not is_local and not alive(state, target):
        return None
    everyone = voting(state)
    active = sum(
        1 for m in everyone if (local is not None and m["id"] == local["id"]) or alive(state, m)
    )
    if active - 1 < 1 + (len(everyone) - 1) // 2:
        return "etcdserver: unhealthy cluster"
    return None


def remove(state: State, member_id: str, local: Member | None) -> str | None:
    """MemberRemove through the server `local`: the error text, or None when removed."""
    if not has_quorum(state):
        return "etcdserver: request timed out"
    if not any(m["id"] == member_id for m in members(state)):
        return "etcdserver: member not found"
    problem = may_remove_member(state, member_id, local)
    if problem:
        return problem
    etcd(state)["members"] = [m for m in members(state) if m["id"] != member_id]
    return None

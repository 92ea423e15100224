"""The node set's decisions: what left, what was renamed, the etcd members and their quorum."""

from __future__ import annotations

from typing import cast

import pytest

from components.cluster import node_lifecycle
from components.cluster.node_lifecycle import NodeEntry
from programs import node_set
from programs.build import parameters
from programs.runtime import ProgramFailedError


def entry(ip: str, hostname: str, role: str = "controlplane", address: str = "") -> dict[str, str]:
    return NodeEntry(ip, hostname, role, address or ip).as_data()


def params_of(*nodes: dict[str, str]) -> node_set.Params:
    entries = [NodeEntry(n["ip"], n["hostname"], n["role"], n["address"]) for n in nodes]
    text = node_lifecycle.node_set_script(entries, mode="reconcile", removed_node_action="shutdown")
    return cast(node_set.Params, parameters(text))


def table(*rows: list[str]) -> str:
    """`talosctl etcd members` (siderolabs/talos@v1.13.9: cmd/talosctl/cmd/talos/etcd.go
    `etcdMemberListCmd`): a tabwriter table with padding 3, NODE first when the reply names it."""
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "".join(c.ljust(w + 3) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows
    )


HEADER = ["NODE", "ID", "HOSTNAME", "PEER URLS", "CLIENT URLS", "LEARNER"]


def member_row(
    node: str, member_id: str, name: str, host: str, learner: str = "false"
) -> list[str]:
    return [node, member_id, name, f"https://{host}:2380", f"https://{host}:2379", learner]


def test_members_with_and_without_a_node_column_and_one_not_started() -> None:
    listed = table(
        HEADER,
        member_row("192.168.0.11", "aa01", "cp-1", "192.168.0.11"),
        member_row("192.168.0.11", "aa02", "", "192.168.0.12"),
        member_row("192.168.0.11", "aa03", "cp-3", "[fd00::13]", "true"),
    )
    members = node_set.parse_members(listed)
    assert members == [
        {"id": "aa01", "name": "cp-1", "hosts": ["192.168.0.11"], "learner": False},
        {"id": "aa02", "name": "", "hosts": ["192.168.0.12"], "learner": False},
        {"id": "aa03", "name": "cp-3", "hosts": ["fd00::13"], "learner": True},
    ]
    without_node = table(*(row[1:] for row in [HEADER, member_row("", "aa01", "cp-1", "h1")]))
    assert node_set.parse_members(without_node)[0]["hosts"] == ["h1"]
    assert node_set.parse_members("") == []


def test_a_members_line_that_is_not_a_member_is_refused() -> None:
    with pytest.raises(ProgramFailedError, match="cannot read this line"):
        node_set.parse_members("ID HOSTNAME\nx y z w v u t\n")


def test_quorum_counts_the_members_that_run_not_the_ones_with_a_name() -> None:
    """A member that is down keeps its name, so etcd counts it as started
    (etcd-io/etcd@v3.6.12: server/etcdserver/api/membership/member.go `IsStarted`), but it
    cannot vote: the guard counts the members that run (`live`)."""
    params = params_of(entry("192.168.0.11", "cp-1"))
    members = [
        {"id": f"aa0{n}", "name": f"cp-{n}", "hosts": [f"192.168.0.1{n}"], "learner": False}
        for n in (1, 2, 3)
    ]
    leaving = [entry("192.168.0.13", "cp-3")]
    everyone = {"aa01", "aa02", "aa03"}
    node_set.check_quorum(params, members, leaving, everyone)  # 2 of 2 left run
    with pytest.raises(ProgramFailedError) as refused:
        node_set.check_quorum(params, members, leaving, {"aa01", "aa03"})
    assert str(refused.value).startswith(f"{node_lifecycle.NODES_KEY}: removing control plane cp-3")
    assert "1 of the 2 members left run, 2 are needed (down: cp-2 (192.168.0.12))" in str(
        refused.value
    )
    # The dead one leaving is fine: the two that stay run.
    node_set.check_quorum(params, members, [entry("192.168.0.12", "cp-2")], {"aa01", "aa03"})
    learner = {"id": "bb01", "name": "", "hosts": ["192.168.0.14"], "learner": True}
    node_set.check_quorum(params, [*members, learner], leaving, everyone)  # a learner: no vote


def test_no_quorum_now_refuses_any_removal_with_the_way_out() -> None:
    params = params_of(entry("192.168.0.11", "cp-1"))
    members = [
        {"id": f"aa0{n}", "name": f"cp-{n}", "hosts": [f"192.168.0.1{n}"], "learner": False}
        for n in (1, 2, 3)
    ]
    with pytest.raises(ProgramFailedError) as refused:
        node_set.check_quorum(params, members, [entry("192.168.0.12", "cp-2")], {"aa01"})
    assert "etcd has lost quorum: 1 of its 3 members run" in str(refused.value)
    assert "restore etcd from a snapshot" in str(refused.value)


def test_dead_control_planes_leave_before_running_ones() -> None:
    """etcd refuses to remove a running member while a dead one still counts among the voters
    (server.go `mayRemoveMember`), so the dead one goes first, whatever the addresses' order."""
    members = [
        {"id": f"aa0{n}", "name": f"cp-{n}", "hosts": [f"192.168.0.1{n}"], "learner": False}
        for n in (1, 2, 3)
    ]
    departed = [
        entry("192.168.0.12", "cp-2"),
        entry("192.168.0.13", "cp-3"),
        entry("192.168.0.21", "w-1", "worker"),
    ]
    ordered = node_set.departure_order(departed, members, {"aa01", "aa02"})
    assert [n["hostname"] for n in ordered] == ["w-1", "cp-3", "cp-2"]


def test_what_left_workers_first_and_what_was_renamed() -> None:
    previous = [
        entry("192.168.0.11", "cp-1"),
        entry("192.168.0.12", "cp-2"),
        entry("192.168.0.21", "w-1", "worker"),
        entry("192.168.0.22", "w-2", "worker"),
    ]
    current = [entry("192.168.0.11", "cp-1"), entry("192.168.0.22", "worker-2", "worker")]
    departed, renamed = node_set.plan(previous, current)
    assert [n["hostname"] for n in departed] == ["w-1", "cp-2"]
    assert renamed == [("w-2", "worker-2")]


def test_a_node_moving_to_a_new_address_has_not_left() -> None:
    previous = [entry("192.168.0.11", "cp-1")]
    moving = [entry("192.168.0.41", "cp-1", address="192.168.0.11")]
    assert node_set.plan(previous, moving) == ([], [])

"""etcd membership through talosctl: the members table, `etcd leave`, `etcd remove-member`, and
etcd's own check before a member goes (etcd-io/etcd@v3.6.12, the version Talos v1.13.9 ships)."""

from __future__ import annotations

from tests.world import etcd
from tests.world.conftest import CONTROL_PLANES, write
from tests.world.world import World

CP1, CP2, CP3 = list(CONTROL_PLANES)


def talosctl(world: World, node: str, *argv: str, endpoint: str = CP1) -> tuple[int, str, str]:
    config = write(world, "talosconfig", world.talosconfig([endpoint]))
    result = world.cli(
        "talosctl", "--talosconfig", config, "--endpoints", endpoint, "--nodes", node, *argv
    )
    return result.returncode, result.stdout, result.stderr


def member_id(world: World, address: str) -> str:
    found: str = next(m["id"] for m in etcd.members(world.state) if m["address"] == address)
    return found


def test_the_members_table_has_an_empty_hostname_for_a_member_that_never_started(
    world: World,
) -> None:
    """cmd/talosctl/cmd/talos/etcd.go `etcdMemberListCmd`: a tabwriter table (padding 3), NODE
    first when the reply names its node; etcd's member `Name` (HOSTNAME) is empty until the
    member starts (server/etcdserver/api/membership/member.go `IsStarted`)."""
    with world.edit() as state:
        etcd.members(state).append(
            {
                "id": "00000000000000ff",
                "name": "",
                "address": "10.0.0.14",
                "hardware": 1,
                "learner": False,
            }
        )
    code, out, _ = talosctl(world, CP1, "etcd", "members")
    assert code == 0
    header, *rows = out.splitlines()
    assert header.split() == ["NODE", "ID", "HOSTNAME", "PEER", "URLS", "CLIENT", "URLS", "LEARNER"]
    cells = {row.split()[1]: row.split() for row in rows}
    assert cells["00000000000000ff"] == [
        CP1,
        "00000000000000ff",
        "https://10.0.0.14:2380",
        "https://10.0.0.14:2379",
        "false",
    ]
    assert cells[member_id(world, CP2)][2] == "cp-2"


def test_a_dead_member_still_counts_as_started(world: World) -> None:
    """membership/cluster.go `IsReadyToRemoveVotingMember` counts members with a name: a dead
    member keeps its name, so removing a healthy one is not refused by this check..."""
    world.node_dies(CP3)
    with world.edit() as state:
        assert etcd.may_remove_member(
            state, member_id(world, CP2), etcd.member_of(state, state["talos"]["nodes"][CP1])
        ) == ("etcdserver: unhealthy cluster")


def test_removing_a_healthy_member_while_another_is_down_is_refused(world: World) -> None:
    """... but server/etcdserver/server.go `mayRemoveMember` then counts the members the
    server is connected to: with one of three down, removing a healthy one would leave one of
    two, so etcd answers "unhealthy cluster"; `etcd leave` retries that for five minutes
    (internal/pkg/etcd/etcd.go `LeaveCluster`, retry.Constant(5*time.Minute)) and fails."""
    world.node_dies(CP3)
    start = world.now
    code, _, err = talosctl(world, CP2, "etcd", "leave")
    assert code == 1
    assert world.now - start == 300
    assert "failed to leave cluster: 2 error(s) occurred:" in err
    assert "etcdserver: unhealthy cluster" in err
    assert CP2 in {m["address"] for m in etcd.members(world.state)}


def test_a_down_member_may_go(world: World) -> None:
    """`mayRemoveMember`: "downed member is safe to remove since it's not part of the active
    quorum" (no active connection to it); `etcd remove-member <id>` does it from a member
    that stays (cmd/talosctl/cmd/talos/etcd.go `etcdMemberRemoveCmd`, hex IDs)."""
    world.node_dies(CP3)
    code, _, err = talosctl(world, CP1, "etcd", "remove-member", member_id(world, CP3))
    assert code == 0, err
    assert CP3 not in {m["address"] for m in etcd.members(world.state)}
    code, _, err = talosctl(world, CP1, "etcd", "remove-member", "00000000000000aa")
    assert code == 1
    assert "rpc error: code = NotFound desc = etcdserver: member not found" in err


def test_too_few_started_members_refuse_any_removal(world: World) -> None:
    """`IsReadyToRemoveVotingMember`: of the members that would remain, a quorum must have
    started; a member that never started does not count."""
    with world.edit() as state:
        for member in etcd.members(state):
            if member["address"] == CP3:
                member["name"] = ""
    code, _, err = talosctl(world, CP1, "etcd", "remove-member", member_id(world, CP2))
    assert code == 1
    assert "re-configuration failed due to not enough started members" in err


def test_a_healthy_member_leaves_and_its_etcd_stops(world: World) -> None:
    code, _, err = talosctl(world, CP3, "etcd", "leave")
    assert code == 0, err
    assert CP3 not in {m["address"] for m in etcd.members(world.state)}
    assert etcd.has_quorum(world.state)
    assert world.machine(CP3)["etcd_stopped"] is True


def test_etcd_leave_is_for_control_planes(world: World) -> None:
    """internal/app/internal/machinehelper/machinehelper.go `CheckControlplane`."""
    code, _, err = talosctl(world, "10.0.0.21", "etcd", "leave")
    assert code == 1
    assert "etcd leave is only available on control plane nodes" in err


def test_replaced_hardware_does_not_run_the_old_member(world: World) -> None:
    """A member is its machine's data: new hardware at the same address starts in maintenance
    mode with none, and the old member stays in the list until removed."""
    world.replace_hardware(CP3)
    with world.edit() as state:
        old = next(m for m in etcd.members(state) if m["address"] == CP3)
        assert not etcd.alive(state, old)
        assert etcd.has_quorum(state)

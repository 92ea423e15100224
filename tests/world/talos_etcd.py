"""talosctl's etcd commands (siderolabs/talos@v1.13.9: cmd/talosctl/cmd/talos/etcd.go, and
machined's handlers in internal/app/machined/internal/server/v1alpha1/v1alpha1_server.go)."""

from __future__ import annotations

from pathlib import Path
from typing import Final

from tests.world import clock, etcd, talos_model
from tests.world.kube import cluster
from tests.world.talos_client import Call, each_node, multierror, one_node, secure, single
from tests.world.talos_model import TalosError

# internal/pkg/etcd/etcd.go `LeaveCluster`: retry.Constant(5*time.Minute) on "unhealthy".
LEAVE_RETRY_SECONDS: Final = 300.0


def _control_plane(machine: talos_model.Node, api: str) -> None:
    if machine.get("role") != "controlplane":
        raise TalosError(
            f"rpc error: code = Unimplemented desc = {api} is only available on control plane nodes"
        )


def _table(rows: list[list[str]]) -> str:
    """text/tabwriter with padding 3: every cell but the last padded to its column."""
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    return "".join(
        "".join(c.ljust(w + 3) for c, w in zip(r, widths, strict=False)) + r[-1] + "\n"
        for r in rows
    )


def etcd_members(call: Call) -> None:
    """cmd/etcd.go `etcdMemberListCmd` (QueryLocal): the target's own etcd lists the members;
    a member that never started has an empty HOSTNAME."""
    via, nodes = secure(call, "error getting members")
    answers, errors = each_node(call, via, nodes, "/machine.MachineService/EtcdMemberList")
    listed: list[tuple[str, list[etcd.Member]]] = []
    for node, machine in answers:
        member = etcd.member_of(call.state, machine)
        if (
            machine.get("role") != "controlplane"
            or member is None
            or not etcd.alive(call.state, member)
        ):
            errors.append(
                (
                    node,
                    "rpc error: code = Unknown desc = failed to create etcd client: etcd is not running",
                )
            )
            continue
        listed.append((node, etcd.members(call.state)))
    if errors and not listed:
        raise TalosError(f"error getting members: {multierror(errors)}")
    if errors:
        call.err.append(f"WARNING: {multierror(errors)}")
    rows = [["NODE", "ID", "HOSTNAME", "PEER URLS", "CLIENT URLS", "LEARNER"]]
    for node, members in listed:
        for m in members:
            rows.append(
                [
                    node,
                    m["id"],
                    m["name"],
                    f"https://{m['address']}:2380",
                    f"https://{m['address']}:2379",
                    str(m["learner"]).lower(),
                ]
            )
    if len(rows) > 1:
        call.out.append(_table(rows))


def etcd_leave(call: Call) -> None:
    """machined `EtcdLeaveCluster` → internal/pkg/etcd/etcd.go `LeaveCluster`: remove its own
    member (etcd's check decides), retrying "unhealthy" for five minutes, then stop etcd and
    delete its data."""
    via, node = single(call, "etcd leave")
    machine = one_node(call, via, node, "/machine.MachineService/EtcdLeaveCluster")
    _control_plane(machine, "etcd leave")
    member = etcd.member_of(call.state, machine)
    if member is None or not etcd.alive(call.state, member):
        raise TalosError(
            multierror(
                [
                    (
                        node,
                        "rpc error: code = Unknown desc = failed to create etcd client: etcd is not running",
                    )
                ]
            )
        )
    decimal = int(member["id"], 16)
    problem = etcd.remove(call.state, member["id"], member)
    if problem == "etcdserver: unhealthy cluster":
        clock.advance(call.state, LEAVE_RETRY_SECONDS)
        cluster.settle(call.state)
        problem = etcd.remove(call.state, member["id"], member)
        if problem:
            problem = (
                f"2 error(s) occurred:\n\tfailed to remove member {decimal}: {problem}\n\ttimeout"
            )
    elif problem:
        problem = f"failed to remove member {decimal}: {problem}"
    if problem:
        raise TalosError(
            multierror(
                [(node, f"rpc error: code = Unknown desc = failed to leave cluster: {problem}")]
            )
        )
    machine["etcd_stopped"] = True


def etcd_remove_member(call: Call) -> None:
    """cmd/etcd.go `etcdMemberRemoveCmd` → machined `EtcdRemoveMemberByID` on the target, which
    asks etcd through a client of the control planes (etcd's own check applies)."""
    via, node = single(call, "etcd remove-member")
    if len(call.args) != 1:
        raise TalosError(f"accepts 1 arg(s), received {len(call.args)}")
    try:
        wanted = f"{int(call.args[0], 16):016x}"
    except ValueError:
        raise TalosError(
            f'error parsing member ID: strconv.ParseUint: parsing "{call.args[0]}": invalid syntax'
        ) from None
    machine = one_node(call, via, node, "/machine.MachineService/EtcdRemoveMemberByID")
    _control_plane(machine, "etcd remove member")
    local = etcd.member_of(call.state, machine)
    if local is None or not etcd.alive(call.state, local):
        local = next((m for m in etcd.members(call.state) if etcd.alive(call.state, m)), None)
    problem = etcd.remove(call.state, wanted, local)
    if problem == "etcdserver: member not found":
        raise TalosError(multierror([(node, f"rpc error: code = NotFound desc = {problem}")]))
    if problem:
        raise TalosError(
            multierror(
                [
                    (
                        node,
                        f"rpc error: code = Unknown desc = failed to remove member: failed to remove member {int(wanted, 16)}: {problem}",
                    )
                ]
            )
        )


def etcd_snapshot(call: Call) -> None:
    """cmd/etcd.go `etcdSnapshotCmd`: WithClient (nodes required), one node; writes `<path>.part`
    and renames it; the size check wants size % 512 == 32 (the trailing SHA-256). The file
    names what the world keeps of it: the API's state at this moment (`snapshot_content`)."""
    if len(call.args) != 1:
        raise TalosError(f"accepts 1 arg(s), received {len(call.args)}")
    via, node = single(call, "etcd snapshot", "error reading file")
    machine = one_node(call, via, node, "/machine.MachineService/EtcdSnapshot")
    _control_plane(machine, "etcd snapshot")
    member = etcd.member_of(call.state, machine)
    if member is None or not etcd.alive(call.state, member):
        raise TalosError("error reading file: rpc error: code = Unknown desc = etcd is not running")
    snapshots = talos_model.talos(call.state).setdefault("snapshots", [])
    number = len(snapshots) + 1
    header = f"{SNAPSHOT_MAGIC}{number}\n".encode()
    size = 512 * 4 + 32
    path = Path(call.args[0])
    part = path.with_name(path.name + ".part")
    try:
        part.write_bytes(header + b"\0" * (size - len(header)))
    except OSError as error:
        raise TalosError(
            f"error creating temporary file: open {part}: {(error.strerror or '').lower()}"
        ) from None
    part.chmod(0o600)
    part.replace(path)
    call.out.append(f'etcd snapshot saved to "{path}" ({size} bytes)\n')
    call.out.append(
        f"snapshot info: hash 0000beef, revision {int(clock.now(call.state))}, total keys 42, total size {size}\n"
    )
    snapshots.append(
        {
            "node": machine["address"],
            "time": clock.now(call.state),
            "held": cluster.etcd_held(call.state),
        }
    )


SNAPSHOT_MAGIC: Final = "world etcd snapshot #"


def snapshot_content(state: dict[str, object], path: Path) -> dict[str, object]:
    """What a snapshot file holds, as `talosctl bootstrap --recover-from` reads it: it must be
    a snapshot (`etcdutl` snapshot status, cmd/bootstrap.go), else the command fails."""
    try:
        first = path.read_bytes().split(b"\n", 1)[0].decode()
    except OSError as error:
        raise TalosError(
            f"error recovering etcd: open {path}: {(error.strerror or '').lower()}"
        ) from None
    snapshots = talos_model.talos(state).get("snapshots", [])
    number = first.removeprefix(SNAPSHOT_MAGIC)
    if not first.startswith(SNAPSHOT_MAGIC) or not number.isdigit() or int(number) > len(snapshots):
        raise TalosError("error recovering etcd: snapshot file has unexpected size")
    held: dict[str, object] = snapshots[int(number) - 1]["held"]
    return held

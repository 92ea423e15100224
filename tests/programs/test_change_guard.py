"""The change guard's decisions: which nodes an `up` adds, removes or renames, what versions it
moves, and which local-path volumes a Node holds."""

from __future__ import annotations

from programs import change_guard


def node(ip: str, hostname: str, address: str = "") -> dict[str, str]:
    return {"ip": ip, "hostname": hostname, "role": "worker", "address": address or ip}


def test_a_node_is_the_same_while_its_address_or_the_one_it_moves_from_is() -> None:
    previous = [node("192.168.0.21", "w-1"), node("192.168.0.22", "w-2")]
    current = [
        node("192.168.0.31", "w-1", address="192.168.0.21"),  # moving
        node("192.168.0.22", "worker-2"),  # renamed
        node("192.168.0.23", "w-3"),  # added
    ]
    added, removed, renamed = change_guard.node_changes(previous, current)
    assert [n["hostname"] for n in added] == ["w-3"]
    assert removed == []
    assert renamed == [("w-2", "worker-2")]
    added, removed, _ = change_guard.node_changes(previous, current[:1])
    assert [n["hostname"] for n in removed] == ["w-2"]


def test_what_moves_between_two_records() -> None:
    before = {"talos_version": "v1.13.9", "installer": "a:v1.13.9", "kubernetes_version": "1.36.3"}
    after = {**before, "talos_version": "v1.13.10", "installer": "a:v1.13.10"}
    assert change_guard.moves(before, after) == [
        "Talos v1.13.9 -> v1.13.10",
        "the installer (schematic) a:v1.13.9 -> a:v1.13.10",
    ]
    assert change_guard.moves(before, dict(before)) == []


def test_the_volumes_pinned_to_a_node_by_its_hostname_label() -> None:
    """rancher/local-path-provisioner@v0.0.37: provisioner.go `provisionFor` pins the PV with a
    required node affinity on `kubernetes.io/hostname`."""

    def pv(name: str, hostname: str, claim: str) -> dict[str, object]:
        term = {"key": "kubernetes.io/hostname", "operator": "In", "values": [hostname]}
        return {
            "metadata": {"name": name},
            "spec": {
                "claimRef": {"namespace": "apps", "name": claim},
                "nodeAffinity": {"required": {"nodeSelectorTerms": [{"matchExpressions": [term]}]}},
            },
        }

    listed = {"items": [pv("pvc-1", "cp-1", "data"), pv("pvc-2", "cp-2", "other"), {"spec": {}}]}
    assert change_guard.pinned_volumes(listed, "cp-1") == ["pvc-1 (apps/data)"]
    assert change_guard.pinned_volumes(listed, "cp-3") == []

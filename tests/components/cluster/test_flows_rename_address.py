"""docs/operations.md "Rename a node" and "Move a node to a new address", as the `up`s a person
runs against the shared world."""

from __future__ import annotations

from pathlib import Path

from tests.components.cluster.scenarios import CP1, changed, deployed_copy
from tests.world.kube.cluster import pinned_node

NEW_ADDRESS = "192.168.0.31"


def volume_nodes(state: dict[str, object]) -> set[str]:
    """The Nodes local-path volumes are pinned to (rancher/local-path-provisioner@v0.0.37:
    provisioner.go `provisionFor`, `kubernetes.io/hostname`)."""
    objects = state["kube"]["objects"]  # type: ignore[index]
    return {
        str(pinned_node(pv))
        for key, pv in objects.items()
        if key.startswith("PersistentVolume//") and pinned_node(pv)
    }


def test_renaming_a_node_that_holds_volumes_is_refused_before_anything_changes(
    deployments: Path, tmp_path: Path
) -> None:
    homelab = deployed_copy("ha", deployments, tmp_path)
    holders = volume_nodes(homelab.world.state)
    assert holders, "the stack's claims are on some node"
    holder = sorted(holders)[0]
    index = [n["hostname"] for n in homelab.raw["cluster"]["nodes"]].index(holder)
    renamed = changed(homelab.raw, {f"cluster.nodes.{index}.hostname": "talos-cp-9"})
    refused = homelab.up(renamed)
    assert refused.failure is not None
    assert refused.failure.name == "cluster-changes"
    assert (
        f"homelab:cluster.nodes: renaming {holder} to talos-cp-9 would strand the local-path "
        f"volumes pinned to kubernetes.io/hostname={holder}: pvc-"
    ) in refused.failure.error
    assert "docs/operations.md, Rename a node" in refused.failure.error
    state = homelab.world.state
    assert holder in state["kube"]["nodes"]
    assert "talos-cp-9" not in {m["hostname"] for m in state["talos"]["nodes"].values()}


def test_renaming_a_node_without_volumes_replaces_its_node(
    deployments: Path, tmp_path: Path
) -> None:
    """The apply renames the machine; its kubelet registers the new Node some seconds later, so
    the node set waits `--for=create` then Ready (kubernetes/kubectl@kubernetes-1.36.3:
    pkg/cmd/wait/wait.go) before it deletes the old Node."""
    homelab = deployed_copy("ha", deployments, tmp_path)
    names = [n["hostname"] for n in homelab.raw["cluster"]["nodes"]]
    free = next(n for n in reversed(names) if n not in volume_nodes(homelab.world.state))
    index = names.index(free)
    renamed = homelab.up(changed(homelab.raw, {f"cluster.nodes.{index}.hostname": "talos-cp-9"}))
    assert renamed.ok, renamed.failure
    nodes = homelab.world.state["kube"]["nodes"]
    assert "talos-cp-9" in nodes
    assert nodes["talos-cp-9"]["ready"]
    assert free not in nodes
    (wait,) = homelab.calls("kubectl", "wait", "node/talos-cp-9")
    assert wait[wait.index("wait") + 1 :][:2] == ["--for=create", "--for=condition=Ready"]
    again = homelab.up()
    assert again.ok, again.failure
    assert again.ran("create", "update", "replace", "delete") == []


def test_re_addressing_the_only_control_plane_without_a_vip_takes_two_ups(
    deployments: Path, tmp_path: Path
) -> None:
    """Without a VIP the API endpoint is the first control plane's address, so it moves with
    the node: the first `up` reaches the node at `currentAddress`, applies the new address (a
    LinkConfig applies live) and fetches the kubeconfig from the new one; the second `up`
    reaches it there."""
    homelab = deployed_copy("single-no-vip", deployments, tmp_path)
    node = dict(homelab.raw["cluster"]["nodes"][0])
    moving = changed(
        homelab.raw,
        {"cluster.nodes": [{**node, "ip": NEW_ADDRESS, "currentAddress": CP1}]},
    )
    first = homelab.up(moving)
    assert first.ok, first.failure
    assert NEW_ADDRESS in homelab.world.state["talos"]["nodes"]
    assert f"https://{NEW_ADDRESS}:6443" in homelab.output("kubeconfig")
    assert homelab.kubectl("get", "nodes").returncode == 0
    moved = changed(homelab.raw, {"cluster.nodes": [{**node, "ip": NEW_ADDRESS}]})
    second = homelab.up(moved)
    assert second.ok, second.failure
    assert second.step("cluster-health").op == "replace"
    again = homelab.up()
    assert again.ok, again.failure
    assert again.ran("create", "update", "replace", "delete") == []

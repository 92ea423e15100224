"""docs/operations.md: the first `up` of a cluster and an `up` without a change, on one control
plane and on three (the three-node first `up` is also tests/world/test_flow.py's)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.components.cluster.scenarios import CP1, CP2, CP3, deployed_copy
from tests.world import etcd

NAMES = {CP1: "talos-cp-1", CP2: "talos-cp-2", CP3: "talos-cp-3"}


@pytest.mark.parametrize(("deployment", "machines"), [("single", [CP1]), ("ha", [CP1, CP2, CP3])])
def test_the_first_up_builds_the_cluster_and_a_second_up_runs_nothing(
    deployment: str, machines: list[str], deployments: Path, tmp_path: Path
) -> None:
    homelab = deployed_copy(deployment, deployments, tmp_path)
    state = homelab.world.state
    assert sorted(state["talos"]["nodes"]) == machines
    assert {m["state"] for m in state["talos"]["nodes"].values()} == {"installed"}
    assert sorted(m["address"] for m in etcd.members(state)) == machines
    assert sorted(state["kube"]["nodes"]) == [NAMES[m] for m in machines]
    assert all(node["ready"] for node in state["kube"]["nodes"].values())
    # The roll met the nodes in maintenance mode: their configs installed the target.
    assert homelab.calls("talosctl", "upgrade") == []
    assert homelab.calls("talosctl", "reboot") == []
    # The health wait ran once, for exactly the configured nodes.
    (health,) = homelab.calls("talosctl", "health")
    assert health[health.index("--control-plane-nodes") + 1] == ",".join(machines)
    before = len(homelab.world.calls())
    again = homelab.up()
    assert again.ok, again.failure
    assert again.ran("create", "update", "replace", "delete") == []
    cluster_calls = [c for c in homelab.world.calls()[before:] if c["cli"] == "talosctl"]
    assert cluster_calls == []

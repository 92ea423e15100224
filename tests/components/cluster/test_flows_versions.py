"""docs/operations.md "Upgrades" and "Boot media": a Talos bump rolls the nodes, a new extension
re-images them, a bump together with a node change is refused, and a year without `up` (expired
credentials, renewed quietly by the next `up`), each as the `up`s a person runs."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from pathlib import Path

from components.cluster import image_factory
from config.model import ImageFactory
from homelab import status
from tests.components.cluster.scenarios import (
    CP1,
    CP2,
    CP3,
    W1,
    WORKER,
    changed,
    deployed_copy,
)
from tests.world import clock, talos_model

EXTENSION = "siderolabs/iscsi-tools"


def test_a_talos_bump_rolls_the_nodes_one_at_a_time(deployments: Path, tmp_path: Path) -> None:
    homelab = deployed_copy("ha", deployments, tmp_path)
    bumped = homelab.up(changed(homelab.raw, {"cluster.talosVersion": "v1.13.10"}))
    assert bumped.ok, bumped.failure
    upgrades = homelab.calls("talosctl", "upgrade")
    assert [a[a.index("--nodes") + 1] for a in upgrades] == [CP1, CP2, CP3]
    assert {m["version"] for m in homelab.world.state["talos"]["nodes"].values()} == {"v1.13.10"}
    # Each node was upgraded through the other control planes, not through itself.
    assert all(a[a.index("--nodes") + 1] not in a[a.index("--endpoints") + 1] for a in upgrades)
    again = homelab.up()
    assert again.ok, again.failure
    assert again.ran("create", "update", "replace", "delete") == []


def test_a_new_extension_re_images_every_node(deployments: Path, tmp_path: Path) -> None:
    """The roll decides "up to date" from the schematic the node runs (its `schematic`
    extension: siderolabs/image-factory@v1.5.0 internal/artifacts/schematic.go), not the version
    tag, so a new schematic at the same version re-images each node with the new installer."""
    homelab = deployed_copy("ha", deployments, tmp_path)
    with_extension = changed(
        homelab.raw, {"cluster.imageFactory": {"systemExtensions": [EXTENSION]}}
    )
    result = homelab.up(with_extension)
    assert result.ok, result.failure
    schematic = image_factory.schematic_id(
        image_factory.schematic_yaml(ImageFactory(system_extensions=[EXTENSION]))
    )
    installer = f"factory.talos.dev/metal-installer/{schematic}:v1.13.9"
    assert homelab.output("talosInstallerImage") == installer
    upgrades = homelab.calls("talosctl", "upgrade")
    assert [a[a.index("--nodes") + 1] for a in upgrades] == [CP1, CP2, CP3]
    assert all(a[a.index("--image") + 1] == installer for a in upgrades)
    state = homelab.world.state
    for address in (CP1, CP2, CP3):
        names = {e["name"] for e in talos_model.extensions(state, state["talos"]["nodes"][address])}
        assert names == {"iscsi-tools", "schematic"}
    again = homelab.up()
    assert again.ok, again.failure
    assert again.ran("create", "update", "replace", "delete") == []


def test_a_version_bump_with_a_node_added_is_refused_then_done_in_two_ups(
    deployments: Path, tmp_path: Path
) -> None:
    """The change guard refuses both in one `up` before anything changes; one after the other
    they go through."""
    homelab = deployed_copy("ha", deployments, tmp_path)
    homelab.world.add_machine(W1)
    both = changed(
        homelab.raw,
        {
            "cluster.talosVersion": "v1.13.10",
            "cluster.nodes": [*homelab.raw["cluster"]["nodes"], WORKER],
            "cluster.allowSchedulingOnControlPlanes": True,
        },
    )
    refused = homelab.up(both)
    assert refused.failure is not None
    assert refused.failure.name == "cluster-changes"
    (line,) = refused.failure.error.strip().splitlines()[-1:]
    assert line.startswith(
        "homelab-cluster-changes: homelab:cluster: this `up` moves Talos v1.13.9 -> v1.13.10"
    )
    assert "adds talos-w-1" in line
    assert homelab.calls("talosctl", "upgrade") == []
    assert homelab.world.machine(W1)["state"] == "maintenance"
    refused_again = homelab.up(both)
    assert refused_again.failure is not None
    assert refused_again.failure.name == "cluster-changes"
    bumped = homelab.up(changed(homelab.raw, {"cluster.talosVersion": "v1.13.10"}))
    assert bumped.ok, bumped.failure
    added = homelab.up(both)
    assert added.ok, added.failure
    assert homelab.world.machine(W1)["version"] == "v1.13.10"
    assert "talos-w-1" in homelab.world.state["kube"]["nodes"]


def test_a_year_without_up_status_names_the_expired_kubeconfig_and_up_renews_quietly(
    deployments: Path, tmp_path: Path
) -> None:
    """A year on, the admin kubeconfig and the Talos client certificate have expired (Talos
    issues both for a year). `homelab status` says so instead of blaming the nodes. The next
    `up` renews both (the providers regenerate them at plan time in their last month:
    terraform-provider-talos@v0.11.0 talos_machine_secrets_resource.go and
    talos_cluster_kubeconfig_resource.go `ModifyPlan`), which changes every Command's
    environment: an update, which runs no health wait, no roll and reboots nothing."""
    homelab = deployed_copy("ha", deployments, tmp_path)
    # cp-2's last apply resolved to `staged`, and it has rebooted into it since.
    stack_copy = copy.deepcopy(homelab.stack)
    for entry in stack_copy.resources.values():
        if entry.name == "cluster-192.168.0.12":
            entry.outputs["resolvedApplyMode"] = "staged"
    homelab.stack = stack_copy
    homelab.world.a_year_passes()
    kubectl = status.Kubectl(homelab.kubeconfig(), homelab.world.env(), homelab.world.tmp)
    now = datetime.fromtimestamp(clock.now(homelab.world.state), UTC)
    checks = status.cluster_checks(kubectl, homelab.outputs, config=None, now=now, stack="homelab")
    nodes = next(c for c in checks if c.area == "nodes")
    assert nodes.level == status.Level.FAIL
    assert "refused the admin kubeconfig" in nodes.detail
    assert nodes.next_step.startswith("./scripts/up homelab")
    boot_ids = {a: m["boot_id"] for a, m in homelab.world.state["talos"]["nodes"].items()}
    before = len(homelab.world.calls("talosctl"))
    renewed = homelab.up()
    assert renewed.ok, renewed.failure
    updated = renewed.ran("update")
    assert "cluster-secrets" in updated
    assert "cluster-kubeconfig" in updated
    # (Headscale's own keys are due too: remote access mints them, not the cluster.)
    assert [n for n in renewed.ran("create", "replace", "delete") if n.startswith("cluster")] == []
    assert "cluster-reboot-talos-cp-2" in updated  # its environment changed: its update ran
    verbs = {
        c["argv"][c["argv"].index("--nodes") + 2]
        for c in homelab.world.calls("talosctl")[before:]
        if "--nodes" in c["argv"]
    }
    assert verbs.isdisjoint({"health", "upgrade", "reboot", "upgrade-k8s"})
    after = {a: m["boot_id"] for a, m in homelab.world.state["talos"]["nodes"].items()}
    assert after == boot_ids
    result = homelab.kubectl("get", "nodes")
    assert result.returncode == 0, result.stderr

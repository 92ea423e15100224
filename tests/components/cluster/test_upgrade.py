"""Upgrades: the chain a pin bump yields (through the recording engine) and the command lines
against talosctl's own flags. What the programs do is tested against the shared world
(test_upgrade_programs.py, and the flows in test_flows_versions.py)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import pytest

from components.cluster import upgrade
from config import pins
from homelab import render as offline_render
from homelab.engine import Render, RenderError, ResourceRecord
from programs import talosctl
from programs.build import parameters
from tests.components.cluster.test_talos_health import HEALTH_FLAGS, parse_talosctl_command
from tests.harness import render_config, stack_raw_config, with_changes

COMMAND = "command:local:Command"
APPLY = "talos:machine/configurationApply:ConfigurationApply"
SECRETS = "talos:machine/secrets:Secrets"
TALOS_BUMP = "v1.13.10"
KUBERNETES_BUMP = "1.36.4"
WORKER = {"hostname": "talos-w-1", "ip": "192.168.0.21", "role": "worker"}


def with_worker(raw: Mapping[str, Any]) -> dict[str, Any]:
    return with_changes(
        raw,
        {
            "cluster.nodes": [*raw["cluster"]["nodes"], WORKER],
            "cluster.allowSchedulingOnControlPlanes": True,
        },
    )


def steps_in_dependency_order(render: Render) -> list[ResourceRecord]:
    """The upgrade Commands, ordered by walking `depends_on` from the one that has no step before
    it: the order Pulumi runs them in."""
    steps = {
        r.urn: r
        for r in render.by_type(COMMAND)
        if upgrade.TALOS_STEP_INFIX in r.name or r.name.endswith(upgrade.KUBERNETES_STEP_SUFFIX)
    }
    follows = {urn: [d for d in r.dependencies if d in steps] for urn, r in steps.items()}
    (first,) = [urn for urn, before in follows.items() if not before]
    chain = [first]
    while len(chain) < len(steps):
        (after,) = [urn for urn, before in follows.items() if before == [chain[-1]]]
        chain.append(after)
    return [steps[urn] for urn in chain]


# --- the chain, through the recording engine --------------------------------------------------


def test_control_planes_go_first_one_by_one_then_workers_then_kubernetes() -> None:
    """Every step waits for the one before it (`depends_on`, which Pulumi honours for creates and
    replacements alike), so a bump replaces the steps and they run in this order."""
    render = render_config(with_worker(stack_raw_config()))
    chain = steps_in_dependency_order(render)
    names = [r.name for r in chain]
    assert names == [
        "cluster-talos-upgrade-talos-cp-1",
        "cluster-talos-upgrade-talos-cp-2",
        "cluster-talos-upgrade-talos-cp-3",
        "cluster-talos-upgrade-talos-w-1",
        "cluster-kubernetes-upgrade",
    ]
    # Every node's config apply waits for the whole chain: a Kubernetes bump reaches the nodes
    # through upgrade-k8s, node by node, before the regenerated configs are applied.
    last = chain[-1].urn
    for apply in render.by_type(APPLY):
        assert last in apply.dependencies
    # The talosconfig is a secret input; the Commands never see it as plaintext.
    for step in chain:
        assert step.is_secret(f"environment.{upgrade.TALOSCONFIG_ENV}")
        assert "triggers[*]" in step.replace_on_changes
        # Only a trigger runs the step; an update (a renewed talosconfig, new endpoints, a new
        # program text) runs programs/unchanged.py, which does nothing.
        assert step.input("update") == upgrade.unchanged_script(step.name)


def test_a_talos_bump_replaces_every_node_step_shows_the_target_and_leaves_the_contract() -> None:
    """pulumi-command replaces a Command when a trigger changes and runs `create` again, and does
    nothing with unchanged inputs (pulumi_command@1.2.1 local/command.py, `triggers`, `create`):
    the preview shows each node's trigger going from the old target to the new one."""
    raw = with_worker(stack_raw_config())
    base = {r.name: r for r in steps_in_dependency_order(render_config(raw))}
    bumped_render = render_config(with_changes(raw, {"cluster.talosVersion": TALOS_BUMP}))
    bumped = {r.name: r for r in steps_in_dependency_order(bumped_render)}
    assert base.keys() == bumped.keys()
    for name, record in bumped.items():
        if name.endswith(upgrade.KUBERNETES_STEP_SUFFIX):
            # Kubernetes did not move: its step does not run again.
            assert record.input("triggers") == base[name].input("triggers")
            continue
        old, new = base[name].input("triggers"), record.input("triggers")
        assert old != new
        assert pins.TALOS_VERSION in old[0]
        assert TALOS_BUMP in new[0]
        assert new[1] == f"{pins.TALOS_INSTALLER_IMAGE}:{TALOS_BUMP}"
        assert parameters(record.input("create"))["talos_version"] == TALOS_BUMP
    # The contract stays where the cluster was created.
    assert bumped_render.one(SECRETS).input("talosVersion") == pins.TALOS_VERSION


def test_a_kubernetes_bump_replaces_only_the_kubernetes_step() -> None:
    raw = stack_raw_config()
    base = {r.name: r for r in steps_in_dependency_order(render_config(raw))}
    bumped = {
        r.name: r
        for r in steps_in_dependency_order(
            render_config(with_changes(raw, {"cluster.kubernetesVersion": KUBERNETES_BUMP}))
        )
    }
    changed = [n for n in bumped if bumped[n].input("triggers") != base[n].input("triggers")]
    assert changed == ["cluster-kubernetes-upgrade"]
    assert KUBERNETES_BUMP in bumped["cluster-kubernetes-upgrade"].input("triggers")[0]


def test_adding_a_worker_adds_a_step_and_replaces_none() -> None:
    raw = stack_raw_config()
    base = {r.name: r.input("triggers") for r in steps_in_dependency_order(render_config(raw))}
    grown = {
        r.name: r.input("triggers")
        for r in steps_in_dependency_order(render_config(with_worker(raw)))
    }
    assert set(grown) - set(base) == {"cluster-talos-upgrade-talos-w-1"}
    assert {n: grown[n] for n in base} == base


def test_the_render_prints_the_plan_in_order() -> None:
    raw = with_changes(
        with_worker(stack_raw_config()),
        {"cluster.talosVersion": TALOS_BUMP, "cluster.kubernetesVersion": KUBERNETES_BUMP},
    )
    render = render_config(raw)
    summary = offline_render.summary_markdown(render)
    plan = summary.split("## Upgrade plan", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in plan.splitlines() if re.match(r"^\| \d", line)]
    expected = [r.input("triggers")[0] for r in steps_in_dependency_order(render)]
    assert [row.split(" | ")[1] for row in rows] == expected
    assert all(TALOS_BUMP in row for row in rows[:-1])
    assert KUBERNETES_BUMP in rows[-1]


# --- the contract, validated with the installed version ----------------------------------------


def test_the_contract_defaults_to_what_every_stack_was_created_with() -> None:
    render = render_config(stack_raw_config())
    assert render.one(SECRETS).input("talosVersion") == "v1.13.9"


@pytest.mark.parametrize(
    ("contract", "installed", "complaint"),
    [
        ("v1.14.0", "v1.13.9", "newer than the installed Talos"),
        ("v2.13.0", "v1.13.9", "newer than the installed Talos"),
        ("v1.11.5", "v1.13.9", "v1.12 to v1.13"),
    ],
)
def test_a_contract_outside_what_the_installed_talos_and_the_patches_support_is_refused(
    contract: str, installed: str, complaint: str
) -> None:
    """A contract is a Talos minor (siderolabs/talos@v1.13.9:pkg/machinery/config/contract.go
    `ParseContractFromVersion` reads vX.Y only); configs of a contract above v1.11 carry the
    multi-document network config the patches merge into (`MultidocNetworkConfigSupported`)."""
    raw = with_changes(
        stack_raw_config(),
        {"cluster.talosConfigContract": contract, "cluster.talosVersion": installed},
    )
    with pytest.raises(RenderError) as raised:
        render_config(raw)
    (line,) = [x for x in str(raised.value).splitlines() if "talosConfigContract" in x]
    assert contract in line
    assert complaint in line


def test_an_older_contract_of_the_same_major_is_kept() -> None:
    raw = with_changes(stack_raw_config(), {"cluster.talosConfigContract": "v1.12.4"})
    assert render_config(raw).one(SECRETS).input("talosVersion") == "v1.12.4"


# --- command lines against talosctl's flags ----------------------------------------------------

# siderolabs/talos@v1.13.9: cmd/talosctl/cmd/talos/upgrade.go `init` and track.go
# `addTrackActionFlags`; the deprecated ones are marked so (legacy path only).
UPGRADE_FLAGS = {
    "--image": "string",
    "--namespace": "string",
    "--reboot-mode": "string",
    "--progress": "string",
    "--no-reboot": "bool",
    "--drain": "bool",
    "--drain-timeout": "duration",
    "--wait": "bool",
    "--debug": "bool",
    "--timeout": "duration",
    "--legacy": "bool",
    "--force": "bool",
    "--insecure": "bool",
    "--preserve": "bool",
    "--stage": "bool",
}
DEPRECATED_UPGRADE_FLAGS = {"--force", "--insecure", "--preserve", "--stage"}
# cmd/talosctl/cmd/talos/upgrade-k8s.go `init` (the ones that take a value or are booleans).
UPGRADE_K8S_FLAGS = {
    "--from": "string",
    "--to": "string",
    "--endpoint": "string",
    "--with-examples": "bool",
    "--with-docs": "bool",
    "--pre-pull-images": "bool",
    "--upgrade-kubelet": "bool",
    "--dry-run": "bool",
    "--manifests-force": "bool",
    "--manifests-no-prune": "bool",
    "--manifests-reconcile-timeout": "duration",
}
VERSION_FLAGS = {"--short": "bool", "--client": "bool", "--insecure": "bool", "--json": "bool"}
KUBECONFIG_FLAGS = {"--force": "bool", "--merge": "bool", "--force-context-name": "string"}
# cmd/talosctl/cmd/talos/reboot.go `init` and track.go `addTrackActionFlags`.
REBOOT_FLAGS = {
    "--progress": "string",
    "--mode": "string",
    "--drain": "bool",
    "--drain-timeout": "duration",
    "--wait": "bool",
    "--debug": "bool",
    "--timeout": "duration",
}
# cmd/talosctl/cmd/talos/get.go `init`.
GET_FLAGS = {"--namespace": "string", "--output": "string", "--watch": "bool", "--insecure": "bool"}
SUBCOMMANDS = {
    "get": (GET_FLAGS, 1),
    "upgrade": (UPGRADE_FLAGS, 0),
    "upgrade-k8s": (UPGRADE_K8S_FLAGS, 0),
    "version": (VERSION_FLAGS, 0),
    "kubeconfig": (KUBECONFIG_FLAGS, 1),
    "health": (HEALTH_FLAGS, 0),
    "reboot": (REBOOT_FLAGS, 0),
}


def parse_talosctl(argv: list[str]) -> tuple[str, dict[str, Any], list[str]]:
    """Parse argv the way cobra/pflag would; raise on an unknown flag or a surplus argument."""
    return parse_talosctl_command(argv, SUBCOMMANDS)


PLAN = upgrade.UpgradePlan(
    talos_version=TALOS_BUMP,
    kubernetes_version=KUBERNETES_BUMP,
    steps=(
        upgrade.RollStep("talos-cp-1", "192.168.0.11", "controlplane"),
        upgrade.RollStep("talos-cp-2", "192.168.0.12", "controlplane"),
        upgrade.RollStep("talos-cp-3", "192.168.0.13", "controlplane"),
        upgrade.RollStep("talos-w-1", "192.168.0.21", "worker"),
    ),
)
IMAGE = f"ghcr.io/siderolabs/installer:{TALOS_BUMP}"


def test_the_upgrade_targets_one_node_and_waits() -> None:
    """`talosctl upgrade` sends the request to every `--nodes` target
    (siderolabs/talos@v1.13.9:cmd/talosctl/cmd/talos/upgrade.go `upgradeViaLifecycleService`,
    `multiplex.Streaming(ctx, nodes, ...)`): one node per step. `--wait` tracks the reboot until
    the node is back with a new boot ID (siderolabs/talos@v1.13.9:cmd/talosctl/cmd/talos/reboot.go
    `rebootInternal`, `BootIDChangedPostCheckFn`). `--preserve` is deprecated and read only on the
    legacy path (upgrade.go `MarkDeprecated`), so no other legacy flag is passed. The endpoints
    are chosen when the step runs (programs/talosctl.py `endpoints_for`; the flow tests show the
    node upgraded through the other control planes)."""
    for step in PLAN.steps:
        argv = upgrade.talosctl_upgrade_argv("/tmp/tc", step.ip, upgrade.CHOSEN, IMAGE)
        subcommand, flags, _ = parse_talosctl(argv)
        assert subcommand == "upgrade"
        assert flags["--nodes"] == [step.ip]
        assert flags["--image"] == IMAGE
        assert flags["--wait"] is True
        assert flags["--endpoints"] == [talosctl.ENDPOINTS]
        # Only the legacy fallback reads a deprecated flag; --preserve keeps data there.
        assert set(flags) & DEPRECATED_UPGRADE_FLAGS <= {"--preserve"}
        assert "--no-reboot" not in flags
        assert "--stage" not in flags


def test_upgrade_k8s_runs_through_exactly_one_control_plane() -> None:
    """upgrade-k8s refuses more than one node
    (siderolabs/talos@v1.13.9:cmd/talosctl/cmd/talos/upgrade-k8s.go `FailIfMultiNodes`) and
    discovers the nodes itself from Kubernetes
    (siderolabs/talos@v1.13.9:pkg/cluster/kubernetes/talos_managed.go `Upgrade`, `NodeIPs`)."""
    argv = upgrade.talosctl_upgrade_k8s_argv(
        "/tmp/tc", PLAN.control_plane_ips[0], PLAN.control_plane_ips, KUBERNETES_BUMP
    )
    subcommand, flags, _ = parse_talosctl(argv)
    assert subcommand == "upgrade-k8s"
    assert flags["--nodes"] == [PLAN.control_plane_ips[0]]
    assert flags["--to"] == KUBERNETES_BUMP
    assert "--from" not in flags  # detected from the running pods (detect.go)


def test_every_command_line_the_scripts_run_uses_only_talosctls_flags() -> None:
    for script in [
        *(upgrade.node_upgrade_script(PLAN, s, IMAGE) for s in PLAN.steps),
        *(upgrade.reboot_script(PLAN, s) for s in PLAN.steps),
        upgrade.kubernetes_upgrade_script(PLAN),
    ]:
        params = parameters(script)
        for key, value in params.items():
            if key.endswith("_argv"):
                parse_talosctl(value)


def test_the_scripts_are_deterministic() -> None:
    step = PLAN.steps[0]
    assert upgrade.node_upgrade_script(PLAN, step, IMAGE) == upgrade.node_upgrade_script(
        PLAN, step, IMAGE
    )
    assert upgrade.kubernetes_upgrade_script(PLAN) == upgrade.kubernetes_upgrade_script(PLAN)


# --- config changes that need a reboot ---------------------------------------------------------


def test_configs_stage_what_needs_a_reboot_and_the_nodes_reboot_one_by_one_after() -> None:
    """With `staged_if_needing_reboot` the provider dry-runs the apply and stages it when Talos
    answers that it needs a reboot (terraform-provider-talos@v0.11.0:
    pkg/talos/talos_machine_configuration_apply_resource.go `handleRebootPrevention`,
    `dryRunNeedsReboot`); the resolved mode is an output, which each reboot step reads."""
    render = render_config(with_worker(stack_raw_config()))
    applies = render.by_type(APPLY)
    assert {a.input("applyMode") for a in applies} == {upgrade.APPLY_MODE}
    reboots = {r.urn: r for r in render.by_type(COMMAND) if upgrade.REBOOT_STEP_INFIX in r.name}
    chain: list[ResourceRecord] = []
    while len(chain) < len(reboots):
        placed = {r.urn for r in chain}
        (ready,) = [
            r
            for u, r in reboots.items()
            if u not in placed and set(reboots).intersection(r.dependencies) <= placed
        ]
        chain.append(ready)
    assert [r.name for r in chain] == [
        "cluster-reboot-talos-cp-1",
        "cluster-reboot-talos-cp-2",
        "cluster-reboot-talos-cp-3",
        "cluster-reboot-talos-w-1",
    ]
    for record in chain:
        assert {a.urn for a in applies} <= set(record.dependencies)
        assert record.is_secret(f"environment.{upgrade.TALOSCONFIG_ENV}")
        # The offline engine resolves the mode as the provider does for a first install.
        assert record.input(f"environment.{upgrade.APPLY_MODE_ENV}") == "auto"

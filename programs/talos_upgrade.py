"""One node's step of the Talos roll: skip a node that already runs the target version from the
target schematic (a re-run after a failure resumes where it stopped) or is not installed yet (its
config installs the target); otherwise, with the cluster healthy, `talosctl upgrade` it with the
target installer, which re-images it and waits for the reboot, then check what it runs and the
cluster's health again before the next node may start."""

from __future__ import annotations

from programs.runtime import fail, say
from programs.talosctl import (
    MAINTENANCE,
    EndpointParams,
    HealthParams,
    StepParams,
    Talos,
    VersionParams,
    endpoints_for,
    healthy,
    node_version,
    passes,
    read_resources,
    schematic_of,
    step_talosconfig,
)


class Params(StepParams, HealthParams, VersionParams, EndpointParams):
    # The schematic IDs the target image may report: its own, or for the plain installer none
    # ("") and the empty schematic's.
    accepted_schematics: list[str]
    extensions_argv: list[str]
    image: str
    schematic: str
    upgrade_argv: list[str]
    upgrade_timeout_seconds: int


def running(params: Params, talos: Talos) -> tuple[str | None, str | None, str]:
    """(version, schematic or "", problem or "") of the node, or MAINTENANCE as its problem."""
    version, problem = node_version(params, talos, params["node_name"])
    if version is None:
        return None, None, problem or ""
    extensions = read_resources(
        talos, params["extensions_argv"], f"the extensions of {params['node_name']}"
    )
    return version, schematic_of(extensions) or "", ""


def describe(version: str | None, schematic: str | None) -> str:
    return f"{version} (schematic {schematic or 'none: the plain installer'})"


def roll_node(params: Params, talos: Talos) -> str:
    name, target, node = params["node_name"], params["talos_version"], params["node"]
    wanted = describe(target, params["schematic"])
    version, schematic, problem = running(params, talos)
    if problem == MAINTENANCE:
        say(
            f"{name} is in maintenance mode (not installed yet): its config installs {target}; skipped"
        )
        return f"{name}: not installed yet, skipped"
    if problem:
        fail(
            f"cannot read what {name} runs: {problem}; is it up and reachable? Fix it and run "
            f"`pulumi up` again (nodes that already run {wanted} are skipped)"
        )
    accepted = params["accepted_schematics"]
    if version == target and schematic in accepted:
        say(f"{name} already runs {wanted}; skipped")
        return f"{name}: {target} (already)"
    now = describe(version, schematic)
    if not healthy(params, talos):
        fail(
            f"the cluster is not healthy, so {name} was not upgraded (it still runs {now}); "
            "fix the cluster and run `pulumi up` again to resume the roll"
        )
    say(f"re-imaging {name} from {now} to {wanted} with {params['image']}")
    if not passes(params["upgrade_argv"], talos, params["upgrade_timeout_seconds"] + 300):
        fail(
            f"upgrading {name} to {wanted} failed (see talosctl above). Check the node "
            f"(`talosctl -n {node} dmesg`, `talosctl -n {node} version`), then run "
            f"`pulumi up` again: nodes that already run {wanted} are skipped, the roll resumes "
            f"with {name}"
        )
    version, schematic, problem = running(params, talos)
    if version != target or schematic not in accepted:
        fail(
            f"{name} came back running {problem or describe(version, schematic)}, not {wanted}: "
            f"is the installer image {params['image']} right? Fix it and run `pulumi up` again"
        )
    if not healthy(params, talos):
        fail(
            f"{name} now runs {wanted} but the cluster is not healthy after it (see talosctl "
            "above); the roll stops here. Fix the cluster and run `pulumi up` again: "
            f"{name} is skipped and the next node follows"
        )
    return f"{name}: {now} -> {wanted}"


def main(params: Params) -> str:
    with step_talosconfig(params) as path:
        return roll_node(params, endpoints_for(params, path)) + "\n"

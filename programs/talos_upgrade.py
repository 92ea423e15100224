"""One node's step of the Talos roll: skip a node already at the target (a re-run after a failure
resumes where it stopped) or not installed yet (its config installs the target); otherwise, with
the cluster healthy, `talosctl upgrade` it, which waits for the reboot, then check its version
and the cluster's health again before the next node may start."""

from __future__ import annotations

from programs.runtime import fail, say
from programs.talosctl import (
    MAINTENANCE,
    HealthParams,
    StepParams,
    VersionParams,
    healthy,
    node_version,
    passes,
    step_talosconfig,
)


class Params(StepParams, HealthParams, VersionParams):
    image: str
    node: str
    upgrade_argv: list[str]
    upgrade_timeout_seconds: int


def roll_node(params: Params, path: str) -> str:
    name, target, node = params["node_name"], params["talos_version"], params["node"]
    current, problem = node_version(params, path, name)
    if problem == MAINTENANCE:
        say(
            f"{name} is in maintenance mode (not installed yet): its config installs {target}; skipped"
        )
        return f"{name}: not installed yet, skipped"
    if problem is not None:
        fail(
            f"cannot read the Talos version of {name}: {problem}; is it up and reachable? Fix it "
            f"and run `pulumi up` again (nodes already at {target} are skipped)"
        )
    if current == target:
        say(f"{name} already runs {target}; skipped")
        return f"{name}: {target} (already)"
    if not healthy(params, path):
        fail(
            f"the cluster is not healthy, so {name} was not upgraded (it still runs {current}); "
            "fix the cluster and run `pulumi up` again to resume the roll"
        )
    say(f"upgrading {name} from {current} to {target}")
    if not passes(params["upgrade_argv"], path, params["upgrade_timeout_seconds"] + 300):
        fail(
            f"upgrading {name} from {current} to {target} failed (see talosctl above). Check the "
            f"node (`talosctl -n {node} dmesg`, `talosctl -n {node} version`), then run "
            f"`pulumi up` again: nodes already at {target} are skipped, the roll resumes with {name}"
        )
    now, problem = node_version(params, path, name)
    if now != target:
        fail(
            f"{name} came back running {now or problem}, not {target}: is the installer image "
            f"{params['image']} right? Fix it and run `pulumi up` again"
        )
    if not healthy(params, path):
        fail(
            f"{name} now runs {target} but the cluster is not healthy after it (see talosctl "
            "above); the roll stops here. Fix the cluster and run `pulumi up` again: "
            f"{name} is skipped and the next node follows"
        )
    return f"{name}: {current} -> {target}"


def main(params: Params) -> str:
    with step_talosconfig(params) as path:
        return roll_node(params, path) + "\n"

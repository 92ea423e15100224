"""One node's step of the rolling reboot after the config applies: reboot the node only when its
config change waits staged for a reboot (the apply's resolved mode, in the environment), with the
cluster healthy before and after, so control planes never reboot together."""

from __future__ import annotations

import os

from programs.runtime import fail, say
from programs.talosctl import HealthParams, StepParams, healthy, passes, step_talosconfig


class Params(StepParams, HealthParams):
    apply_mode_env: str
    node: str
    reboot_argv: list[str]
    staged: str
    upgrade_timeout_seconds: int


def reboot_node(params: Params, path: str) -> str:
    name, node = params["node_name"], params["node"]
    mode = os.environ.get(params["apply_mode_env"], "")
    if mode != params["staged"]:
        say(f"{name}: its config applied without a reboot ({mode or 'unknown'})")
        return f"{name}: no reboot needed"
    if not healthy(params, path):
        fail(
            f"the cluster is not healthy, so {name} was not rebooted; its new config stays staged "
            "until it reboots. Fix the cluster and run `pulumi up` again, or reboot it yourself: "
            f"talosctl -n {node} reboot"
        )
    say(f"rebooting {name} into its staged config")
    if not passes(params["reboot_argv"], path, params["upgrade_timeout_seconds"] + 300):
        fail(
            f"rebooting {name} failed (see talosctl above); check the node and run `pulumi up` "
            f"again, or reboot it yourself: talosctl -n {node} reboot"
        )
    if not healthy(params, path):
        fail(
            f"{name} rebooted into its new config but the cluster is not healthy after it; the "
            "rolling reboot stops here. Fix the cluster and run `pulumi up` again"
        )
    return f"{name}: rebooted into its staged config"


def main(params: Params) -> str:
    with step_talosconfig(params) as path:
        return reboot_node(params, path) + "\n"

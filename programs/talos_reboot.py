"""One node's step of the rolling reboot after the config applies: reboot the node only while a
config staged for the next boot is still waiting on it, with the cluster healthy before and after,
so control planes never reboot together.

Whether a config waits is read from the node (`talosctl get machineconfig`: the saved config
differs from the one it runs), not assumed from how its last apply resolved: a node rebooted since
(by this step on an earlier run, or by hand) has nothing waiting and is left alone. A node whose
last apply did not stage anything (the apply's resolved mode, in the environment) is not asked at
all: it may still be installing."""

from __future__ import annotations

import os

from programs.runtime import fail, say
from programs.talosctl import (
    EndpointParams,
    HealthParams,
    StepParams,
    Talos,
    endpoints_for,
    healthy,
    passes,
    read_resources,
    staged_pending,
    step_talosconfig,
)


class Params(StepParams, HealthParams, EndpointParams):
    apply_mode_env: str
    machineconfig_argv: list[str]
    reboot_argv: list[str]
    staged: str
    upgrade_timeout_seconds: int


def reboot_node(params: Params, talos: Talos) -> str:
    name, node = params["node_name"], params["node"]
    configs = read_resources(talos, params["machineconfig_argv"], f"the configs of {name}")
    if not staged_pending(configs):
        say(f"{name} already runs its latest config; no reboot")
        return f"{name}: no reboot needed"
    if not healthy(params, talos):
        fail(
            f"the cluster is not healthy, so {name} was not rebooted; its new config stays staged "
            "until it reboots. Fix the cluster and run `pulumi up` again, or reboot it yourself: "
            f"talosctl -n {node} reboot"
        )
    say(f"rebooting {name} into its staged config")
    if not passes(params["reboot_argv"], talos, params["upgrade_timeout_seconds"] + 300):
        fail(
            f"rebooting {name} failed (see talosctl above); check the node and run `pulumi up` "
            f"again, or reboot it yourself: talosctl -n {node} reboot"
        )
    if not healthy(params, talos):
        fail(
            f"{name} rebooted into its new config but the cluster is not healthy after it; the "
            "rolling reboot stops here. Fix the cluster and run `pulumi up` again"
        )
    return f"{name}: rebooted into its staged config"


def main(params: Params) -> str:
    mode = os.environ.get(params["apply_mode_env"], "")
    if mode != params["staged"]:
        say(f"{params['node_name']}: its config applied without a reboot ({mode or 'unknown'})")
        return f"{params['node_name']}: no reboot needed\n"
    with step_talosconfig(params) as path:
        return reboot_node(params, endpoints_for(params, path)) + "\n"

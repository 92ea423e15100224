"""Upgrades by bumping a pin: Talos node by node, then Kubernetes once, each step a Command.

pulumiverse-talos 0.8.1 has no upgrade resource, and a new `machine.install.image` never upgrades a
running node (the installer is only read at install time; components.md 1.3). So each upgrade
step is a `pulumi_command.local.Command` running `talosctl` on the workstation with the stack's
own talosconfig (a secret, in the environment, written to a 0600 temp file under umask 077 and
removed; never printed), like the health wait (components/cluster/talos_health.py):

- one **Talos step per node**, control planes first in config order, then workers, chained by
  `depends_on`. Each reads the node's version (`talosctl version`); a node already at the target
  is skipped, so a re-run after a failure resumes where it stopped. Otherwise it checks the
  cluster healthy (etcd quorum included), runs `talosctl upgrade --image <installer>`, which waits
  for the reboot, reads the version again and checks the cluster healthy before the next node may
  start. A failure stops the roll with a message naming the node and what to do.
- one **Kubernetes step** after the last Talos step: `talosctl upgrade-k8s --to <version>`, which
  moves the control-plane components node by node, then kube-proxy, the kubelets, and the
  bootstrap manifests (CoreDNS, flannel), unless every component already runs the target.

Each step's triggers name the step (order, node, target) and the installer, so a pin bump shows in
`pulumi preview` as a replacement of exactly these Commands, old → new target, and nothing runs
when nothing changed (a Command runs only on create and on a changed input: pulumi_command 1.2.1
local/command.py docstrings of `create` and `triggers`).

The steps run **before** the nodes' configuration applies (talos.py makes every apply depend on
the last step), not after them:

- the configs carry `kubernetes_version` (talos.py `get_configuration_output`). Applied first, a
  Kubernetes bump would reach every node at once, through the plain apply: every kubelet restarts
  together and every control plane swaps its static pods at the same moment. upgrade-k8s instead
  patches the image fields of each node's config itself (an apply with mode NO_REBOOT,
  siderolabs/talos@v1.13.9:pkg/cluster/kubernetes/patch.go `patchNodeConfig`), one component on
  one node at a time, waiting for each pod (talos_managed.go `upgradeStaticPodOnNode`), kubelets
  last; by the time Pulumi applies the regenerated config it matches what upgrade-k8s wrote, so
  the apply changes nothing on the node. This is the two-step order terraform-provider-talos
  documents for the same problem (PR #353, "Upgrading Kubernetes"), in one `up`;
- a Talos bump also changes each config's install image, which is harmless in either order.

After the applies, `rolling_reboots` reboots, one node at a time in the same order and with the
cluster healthy before and after each, the nodes whose config change needs a reboot: the applies
stage such a change (`apply_mode` staged_if_needing_reboot) instead of rebooting every node at once.

On a fresh cluster the steps therefore meet nodes in maintenance mode (not installed yet): they
are skipped, since the apply installs the target directly (`machine.install.image`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final

import pulumi
import pulumi_command as command
import pulumiverse_talos as talos

from components.cluster.talos_health import TALOSCONFIG_ENV as TALOSCONFIG_ENV
from components.cluster.talos_health import (
    TALOSCTL_RELEASES,
    WAIT_TIMEOUT_SECONDS,
    HealthTarget,
    talosctl_health_argv,
)
from components.cluster.talos_patches import installer_image
from components.shared.kubectl import INTERPRETER as INTERPRETER
from config.model import Cluster

# talosctl upgrade's own default (siderolabs/talos@v1.13.9: cmd/talosctl/cmd/talos/track.go
# `--timeout` 30m), stated so the script's own bound can exceed it.
UPGRADE_TIMEOUT_SECONDS: Final = 1800
# upgrade-k8s waits per pod and for the manifests (upgrade-k8s.go `--manifests-reconcile-timeout`
# 5m); a whole cluster takes longer than any single wait.
KUBERNETES_TIMEOUT_SECONDS: Final = 3600
RETRY_DELAY_SECONDS: Final = 10
# Resource names end with these (the render's upgrade plan finds the steps by them).
TALOS_STEP_INFIX: Final = "-talos-upgrade-"
KUBERNETES_STEP_SUFFIX: Final = "-kubernetes-upgrade"
REBOOT_STEP_INFIX: Final = "-reboot-"
# The mode the provider resolved for a node's last apply (`resolved_apply_mode`), handed to its
# reboot step: "staged" when the change waits for a reboot.
APPLY_MODE_ENV: Final = "HOMELAB_APPLY_MODE"
# Config applies stage a change that needs a reboot instead of rebooting: the provider dry-runs
# the apply and resolves `staged_if_needing_reboot` to "staged" when Talos would reboot, "auto"
# otherwise, also when it cannot ask the node (a node in maintenance mode: the first install)
# (terraform-provider-talos@v0.11.0: pkg/talos/talos_machine_configuration_apply_resource.go
# `handleRebootPrevention`, "Reboot prevented - using staged mode").
APPLY_MODE: Final = "staged_if_needing_reboot"
STAGED: Final = "staged"

# The server part of `talosctl version` (not --json, which is hidden and marked for removal):
# "Server:", then per node "\tNODE:        <node>" and the long version block whose first line is
# "\tTag:         <tag>" (siderolabs/talos@v1.13.9: cmd/talosctl/cmd/talos/version.go
# `cmdVersion`, pkg/machinery/version/version.go `versionTemplate`). The client's own block comes
# first, after "Client:", so only lines after "Server:" count.
SERVER_TAG_PATTERN: Final = r"^\s*Tag:\s+(\S+)\s*$"

# The Kubernetes components upgrade-k8s reads the running version from: kube-system pods labelled
# k8s-app=<name>, container <name>, image tag (siderolabs/talos@v1.13.9:
# pkg/cluster/kubernetes/detect.go `DetectLowestVersion`); kubelets report theirs in the Node
# status (`status.nodeInfo.kubeletVersion`).
KUBERNETES_COMPONENTS: Final = (
    "kube-apiserver",
    "kube-controller-manager",
    "kube-proxy",
    "kube-scheduler",
)


def default_installer_image(cluster: Cluster) -> str:
    """The installer the roll goes to unless another is given (e.g. an Image Factory schematic's).

    The same image the configs install (talos_patches.installer_image), from one place."""
    return installer_image(cluster)


@dataclass(frozen=True)
class RollStep:
    """One node of the Talos roll (the plan holds them in order)."""

    hostname: str
    ip: str
    role: str

    def describe(self, talos_version: str) -> str:
        """What the step does: its trigger, so the preview shows the old and the new target.

        The order is not in it (`depends_on` enforces that): a node added at the end then adds
        one step and replaces none."""
        return f"{self.role} {self.hostname} ({self.ip}) to Talos {talos_version}"


@dataclass(frozen=True)
class UpgradePlan:
    """The Talos roll (control planes first, one by one, then workers) and the Kubernetes target."""

    talos_version: str
    kubernetes_version: str
    steps: tuple[RollStep, ...]

    @property
    def control_plane_ips(self) -> tuple[str, ...]:
        return tuple(s.ip for s in self.steps if s.role == "controlplane")

    @property
    def worker_ips(self) -> tuple[str, ...]:
        return tuple(s.ip for s in self.steps if s.role != "controlplane")

    @property
    def health(self) -> HealthTarget:
        # The target version's minor: talosctl must match what the nodes are moving to.
        return HealthTarget(
            talos_version=self.talos_version,
            control_plane_nodes=self.control_plane_ips,
            worker_nodes=self.worker_ips,
            endpoints=self.control_plane_ips,
        )

    def endpoints_for(self, step: RollStep) -> tuple[str, ...]:
        """The Talos API endpoints while `step`'s node reboots: the other control planes.

        apid on an endpoint proxies a request to the `--nodes` target, so the connection that
        waits for the reboot is not the one going down; a single control plane has no other."""
        others = tuple(ip for ip in self.control_plane_ips if ip != step.ip)
        return others or self.control_plane_ips

    def describe_kubernetes(self) -> str:
        return f"after the Talos roll: Kubernetes {self.kubernetes_version} (talosctl upgrade-k8s)"


def plan_for(cluster: Cluster) -> UpgradePlan:
    """Control planes in config order, then workers in config order."""
    ordered = [*cluster.control_planes, *cluster.workers]
    return UpgradePlan(
        talos_version=cluster.talos_version,
        kubernetes_version=cluster.kubernetes_version,
        steps=tuple(
            RollStep(hostname=node.hostname, ip=node.talos_address, role=node.role)
            for node in ordered
        ),
    )


# --- command lines (flags of siderolabs/talos@v1.13.9: cmd/talosctl/cmd/talos) ------------------


def _talosctl(talosconfig: str, node: str, endpoints: Sequence[str]) -> list[str]:
    """talosctl with the stack's talosconfig, aimed at one node through `endpoints`."""
    return [
        "talosctl",
        "--talosconfig",
        talosconfig,
        "--endpoints",
        ",".join(endpoints),
        "--nodes",
        node,
    ]


def talosctl_version_argv(
    talosconfig: str, node: str, endpoints: Sequence[str], *, insecure: bool = False
) -> list[str]:
    """`talosctl version` of one node; `--insecure` asks the maintenance-mode API (version.go)."""
    if insecure:
        return ["talosctl", "--endpoints", node, "--nodes", node, "version", "--insecure"]
    return [*_talosctl(talosconfig, node, endpoints), "version"]


def talosctl_upgrade_argv(
    talosconfig: str, node: str, endpoints: Sequence[str], image: str
) -> list[str]:
    """`talosctl upgrade` of one node, waited on.

    With a >= v1.13.0-alpha.2 node talosctl uses the LifecycleService: pull the image, run the
    installer in upgrade mode, drain (`--drain`, default true), reboot, and with `--wait` (default
    true) track the reboot until the node is back with a new boot ID (upgrade.go
    `upgradeViaLifecycleService`, reboot.go `rebootInternal`). That path never wipes data.
    `--preserve` is deprecated there ("legacy flag for MachineService.Upgrade fallback"); it is
    still passed because an older node (a cluster upgraded across minors) gets the legacy call,
    where it keeps the node's data."""
    return [
        *_talosctl(talosconfig, node, endpoints),
        "upgrade",
        "--image",
        image,
        "--preserve",
        "--wait",
        "--timeout",
        f"{UPGRADE_TIMEOUT_SECONDS}s",
    ]


def talosctl_reboot_argv(talosconfig: str, node: str, endpoints: Sequence[str]) -> list[str]:
    """`talosctl reboot` of one node, drained first and waited on until it is back with a new
    boot ID (siderolabs/talos@v1.13.9: cmd/talosctl/cmd/talos/reboot.go: `--drain` defaults to
    false there, unlike upgrade's, and implies `--wait`)."""
    return [
        *_talosctl(talosconfig, node, endpoints),
        "reboot",
        "--drain",
        "--wait",
        "--timeout",
        f"{UPGRADE_TIMEOUT_SECONDS}s",
    ]


def talosctl_kubeconfig_argv(talosconfig: str, node: str, path: str) -> list[str]:
    """Fetch an admin kubeconfig to `path` (kubeconfig.go: with `--merge=false` it is written
    with mode 0600 as a new file)."""
    return [
        *_talosctl(talosconfig, node, [node]),
        "kubeconfig",
        path,
        "--merge=false",
        "--force",
    ]


def talosctl_upgrade_k8s_argv(
    talosconfig: str, node: str, endpoints: Sequence[str], version: str
) -> list[str]:
    """`talosctl upgrade-k8s --to <version>` through one control plane (it refuses several:
    upgrade-k8s.go `FailIfMultiNodes`); the version it upgrades from is detected
    (`DetectLowestVersion`)."""
    return [
        *_talosctl(talosconfig, node, endpoints),
        "upgrade-k8s",
        "--to",
        version,
    ]


# --- the script -------------------------------------------------------------------------------

_SCRIPT_BODY: Final = r"""
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

PLACEHOLDER = PARAMS["talosconfig_placeholder"]


def fail(message):
    sys.stderr.write(PARAMS["program"] + ": " + message + "\n")
    sys.exit(1)


def say(message):
    sys.stderr.write(PARAMS["program"] + ": " + message + "\n")


def child_env():
    hidden = (PARAMS["talosconfig_env"], "TALOSCONFIG", "KUBECONFIG", "PULUMI_COMMAND_STDOUT",
              "PULUMI_COMMAND_STDERR")
    return {k: v for k, v in os.environ.items() if k not in hidden}


def run(argv, path, timeout, capture=True, env=None):
    argv = [path if arg == PLACEHOLDER else arg for arg in argv]
    try:
        return subprocess.run(argv, env=env or child_env(), capture_output=capture, text=True,
                              timeout=timeout, stdin=subprocess.DEVNULL)
    except FileNotFoundError:
        fail(argv[0] + " is not on PATH (a prerequisite of `pulumi up`)")
    except subprocess.TimeoutExpired:
        return None


def check_client_version():
    shown = run(["talosctl", "version", "--client", "--short"], "", 60)
    found = re.search(r"\bv(\d+)\.(\d+)\.\d+", shown.stdout if shown else "")
    if shown is None or shown.returncode != 0 or found is None:
        fail("could not read talosctl's version")
    minor = "v" + found.group(1) + "." + found.group(2)
    if minor != PARAMS["talos_minor"]:
        fail("talosctl is " + found.group(0) + ", the roll goes to Talos " +
             PARAMS["talos_version"] + ": install talosctl " + PARAMS["talos_minor"] +
             ".x from " + PARAMS["releases"] + " and run `pulumi up` again")


def server_tag(stdout):
    _, marker, server = stdout.partition("\nServer:")
    if not marker:
        return None
    for line in server.splitlines():
        found = re.match(PARAMS["server_tag_pattern"], line)
        if found:
            return found.group(1)
    return None


def node_version(path, node, endpoints):
    # (tag, None) when the node answers with its credentials; (None, "maintenance") when only
    # the maintenance API answers (not installed yet); (None, error) otherwise.
    shown = run(PARAMS["version_argv"], path, 120)
    if shown is not None and shown.returncode == 0:
        tag = server_tag(shown.stdout)
        if tag is None:
            fail("could not read " + PARAMS["node_name"] + "'s version from `talosctl version`")
        return tag, None
    error = (shown.stderr.strip() if shown is not None else "timed out") or "no answer"
    insecure = run(PARAMS["insecure_version_argv"], path, 60)
    if insecure is not None and insecure.returncode == 0 and server_tag(insecure.stdout):
        return None, "maintenance"
    return None, error


def healthy(path):
    argv = PARAMS["health_argv"]
    deadline = time.monotonic() + PARAMS["health_timeout_seconds"]
    left = PARAMS["health_timeout_seconds"]
    while left >= 1:
        flag = argv.index("--wait-timeout")
        attempt = argv[: flag + 1] + [str(left) + "s"] + argv[flag + 2 :]
        checked = run(attempt, path, left + 60, capture=False)
        if checked is None:
            return False
        if checked.returncode == 0:
            return True
        if deadline - time.monotonic() <= PARAMS["retry_delay_seconds"]:
            return False
        time.sleep(PARAMS["retry_delay_seconds"])
        left = int(deadline - time.monotonic())
    return False


def roll_node(path):
    name, target = PARAMS["node_name"], PARAMS["talos_version"]
    current, problem = node_version(path, PARAMS["node"], PARAMS["endpoints"])
    if problem == "maintenance":
        say(name + " is in maintenance mode (not installed yet): its config installs " + target
            + "; skipped")
        return name + ": not installed yet, skipped"
    if problem is not None:
        fail("cannot read the Talos version of " + name + ": " + problem + "; is it up and "
             "reachable? Fix it and run `pulumi up` again (nodes already at " + target +
             " are skipped)")
    if current == target:
        say(name + " already runs " + target + "; skipped")
        return name + ": " + target + " (already)"
    if not healthy(path):
        fail("the cluster is not healthy, so " + name + " was not upgraded (it still runs " +
             current + "); fix the cluster and run `pulumi up` again to resume the roll")
    say("upgrading " + name + " from " + current + " to " + target)
    upgraded = run(PARAMS["upgrade_argv"], path, PARAMS["upgrade_timeout_seconds"] + 300,
                   capture=False)
    if upgraded is None or upgraded.returncode != 0:
        fail("upgrading " + name + " from " + current + " to " + target + " failed (see "
             "talosctl above). Check the node (`talosctl -n " + PARAMS["node"] + " dmesg`, "
             "`talosctl -n " + PARAMS["node"] + " version`), then run `pulumi up` again: nodes "
             "already at " + target + " are skipped, the roll resumes with " + name)
    now, problem = node_version(path, PARAMS["node"], PARAMS["endpoints"])
    if now != target:
        fail(name + " came back running " + str(now or problem) + ", not " + target + ": is "
             "the installer image " + PARAMS["image"] + " right? Fix it and run `pulumi up` again")
    if not healthy(path):
        fail(name + " now runs " + target + " but the cluster is not healthy after it (see "
             "talosctl above); the roll stops here. Fix the cluster and run `pulumi up` again: " +
             name + " is skipped and the next node follows")
    return name + ": " + current + " -> " + target


def reboot_node(path):
    name = PARAMS["node_name"]
    mode = os.environ.get(PARAMS["apply_mode_env"], "")
    if mode != PARAMS["staged"]:
        say(name + ": its config applied without a reboot (" + (mode or "unknown") + ")")
        return name + ": no reboot needed"
    if not healthy(path):
        fail("the cluster is not healthy, so " + name + " was not rebooted; its new config "
             "stays staged until it reboots. Fix the cluster and run `pulumi up` again, or "
             "reboot it yourself: talosctl -n " + PARAMS["node"] + " reboot")
    say("rebooting " + name + " into its staged config")
    rebooted = run(PARAMS["reboot_argv"], path, PARAMS["upgrade_timeout_seconds"] + 300,
                   capture=False)
    if rebooted is None or rebooted.returncode != 0:
        fail("rebooting " + name + " failed (see talosctl above); check the node and run "
             "`pulumi up` again, or reboot it yourself: talosctl -n " + PARAMS["node"] +
             " reboot")
    if not healthy(path):
        fail(name + " rebooted into its new config but the cluster is not healthy after it; "
             "the rolling reboot stops here. Fix the cluster and run `pulumi up` again")
    return name + ": rebooted into its staged config"


def kubernetes_versions(kubeconfig):
    env = dict(child_env(), KUBECONFIG=kubeconfig)
    pods = run(["kubectl", "get", "pods", "--namespace", "kube-system", "--output", "json"],
               "", 120, env=env)
    nodes = run(["kubectl", "get", "nodes", "--output", "json"], "", 120, env=env)
    if pods is None or nodes is None or pods.returncode != 0 or nodes.returncode != 0:
        fail("cannot read the running Kubernetes versions with the cluster's kubeconfig: " +
             ((pods and pods.stderr) or (nodes and nodes.stderr) or "timed out").strip())
    versions = {}
    for pod in json.loads(pods.stdout).get("items", []):
        app = ((pod.get("metadata") or {}).get("labels") or {}).get("k8s-app")
        if app not in PARAMS["components"]:
            continue
        for container in (pod.get("spec") or {}).get("containers", []):
            if container.get("name") != app:
                continue
            image = container.get("image", "").split("@")[0]
            _, colon, tag = image.rpartition(":")
            if colon:
                versions[app + " " + pod["metadata"].get("name", "")] = tag.lstrip("v")
    for node in json.loads(nodes.stdout).get("items", []):
        kubelet = ((node.get("status") or {}).get("nodeInfo") or {}).get("kubeletVersion", "")
        versions["kubelet " + node["metadata"].get("name", "")] = kubelet.lstrip("v")
    return versions


def upgrade_kubernetes(path):
    target = PARAMS["kubernetes_version"]
    current, problem = node_version(path, PARAMS["node"], PARAMS["endpoints"])
    if problem == "maintenance":
        say("the cluster is not installed yet: it starts at Kubernetes " + target + "; skipped")
        return "kubernetes: not installed yet, skipped"
    if problem is not None:
        fail("cannot reach the control plane " + PARAMS["node_name"] + ": " + problem +
             "; fix it and run `pulumi up` again")
    folder = tempfile.mkdtemp(prefix="homelab-kubeconfig-")
    try:
        kubeconfig = os.path.join(folder, "kubeconfig")
        argv = [kubeconfig if arg == PARAMS["kubeconfig_placeholder"] else arg
                for arg in PARAMS["kubeconfig_argv"]]
        fetched = run(argv, path, 120)
        if fetched is None or fetched.returncode != 0:
            fail("cannot fetch a kubeconfig from " + PARAMS["node_name"] + ": " +
                 (fetched.stderr.strip() if fetched else "timed out"))
        versions = kubernetes_versions(kubeconfig)
        behind = sorted(k for k, v in versions.items() if v != target)
        if versions and not behind:
            say("every component already runs Kubernetes " + target + "; skipped")
            return "kubernetes: " + target + " (already)"
        say("upgrading Kubernetes to " + target + "; behind: " + ", ".join(behind))
        upgraded = run(PARAMS["upgrade_k8s_argv"], path, PARAMS["kubernetes_timeout_seconds"],
                       capture=False)
        if upgraded is None or upgraded.returncode != 0:
            fail("talosctl upgrade-k8s --to " + target + " failed (see above). Components "
                 "already at " + target + " are left alone on a re-run: fix the cause and run "
                 "`pulumi up` again")
        return "kubernetes: -> " + target
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def main():
    talosconfig = os.environ.get(PARAMS["talosconfig_env"], "")
    if not talosconfig.strip():
        fail(PARAMS["talosconfig_env"] + " is empty")
    check_client_version()
    os.umask(0o077)
    handle, path = tempfile.mkstemp(prefix="homelab-talosconfig-")
    try:
        with os.fdopen(handle, "w") as file:
            file.write(talosconfig)
        if PARAMS["mode"] == "node":
            result = roll_node(path)
        elif PARAMS["mode"] == "reboot":
            result = reboot_node(path)
        else:
            result = upgrade_kubernetes(path)
    finally:
        os.unlink(path)
    sys.stdout.write(result + "\n")


main()
"""

TALOSCONFIG_PLACEHOLDER: Final = "@TALOSCONFIG@"
# Stands for the kubeconfig the Kubernetes step fetches into its own temp folder.
KUBECONFIG_PLACEHOLDER: Final = "@KUBECONFIG@"


def _script(params: dict[str, object]) -> str:
    common: dict[str, object] = {
        "releases": TALOSCTL_RELEASES,
        "talosconfig_env": TALOSCONFIG_ENV,
        "talosconfig_placeholder": TALOSCONFIG_PLACEHOLDER,
        "server_tag_pattern": SERVER_TAG_PATTERN,
    }
    literal = dict(sorted({**common, **params}.items()))
    return f"PARAMS = {literal!r}\n{_SCRIPT_BODY}"


def node_upgrade_script(
    plan: UpgradePlan,
    step: RollStep,
    image: str,
    *,
    health_timeout_seconds: int = WAIT_TIMEOUT_SECONDS,
    retry_delay_seconds: int = RETRY_DELAY_SECONDS,
) -> str:
    """The program of one node's Talos step."""
    endpoints = plan.endpoints_for(step)
    target = plan.health
    return _script(
        {
            "endpoints": list(endpoints),
            "health_argv": talosctl_health_argv(
                target, TALOSCONFIG_PLACEHOLDER, health_timeout_seconds
            ),
            "health_timeout_seconds": health_timeout_seconds,
            "image": image,
            "insecure_version_argv": talosctl_version_argv(
                TALOSCONFIG_PLACEHOLDER, step.ip, endpoints, insecure=True
            ),
            "mode": "node",
            "node": step.ip,
            "node_name": f"{step.hostname} ({step.ip})",
            "program": f"talos-upgrade {step.hostname}",
            "retry_delay_seconds": retry_delay_seconds,
            "talos_minor": target.talos_minor,
            "talos_version": plan.talos_version,
            "upgrade_argv": talosctl_upgrade_argv(
                TALOSCONFIG_PLACEHOLDER, step.ip, endpoints, image
            ),
            "upgrade_timeout_seconds": UPGRADE_TIMEOUT_SECONDS,
            "version_argv": talosctl_version_argv(TALOSCONFIG_PLACEHOLDER, step.ip, endpoints),
        }
    )


def reboot_script(
    plan: UpgradePlan,
    step: RollStep,
    *,
    health_timeout_seconds: int = WAIT_TIMEOUT_SECONDS,
    retry_delay_seconds: int = RETRY_DELAY_SECONDS,
) -> str:
    """The program of one node's reboot step: reboot it only when its config waits staged."""
    endpoints = plan.endpoints_for(step)
    return _script(
        {
            "apply_mode_env": APPLY_MODE_ENV,
            "health_argv": talosctl_health_argv(
                plan.health, TALOSCONFIG_PLACEHOLDER, health_timeout_seconds
            ),
            "health_timeout_seconds": health_timeout_seconds,
            "mode": "reboot",
            "node": step.ip,
            "node_name": f"{step.hostname} ({step.ip})",
            "program": f"reboot {step.hostname}",
            "reboot_argv": talosctl_reboot_argv(TALOSCONFIG_PLACEHOLDER, step.ip, endpoints),
            "retry_delay_seconds": retry_delay_seconds,
            "staged": STAGED,
            "talos_minor": plan.health.talos_minor,
            "talos_version": plan.talos_version,
            "upgrade_timeout_seconds": UPGRADE_TIMEOUT_SECONDS,
        }
    )


def kubernetes_upgrade_script(plan: UpgradePlan) -> str:
    """The program of the Kubernetes step, through the first control plane."""
    node = plan.control_plane_ips[0]
    endpoints = plan.control_plane_ips
    return _script(
        {
            "components": list(KUBERNETES_COMPONENTS),
            "endpoints": list(endpoints),
            "insecure_version_argv": talosctl_version_argv(
                TALOSCONFIG_PLACEHOLDER, node, endpoints, insecure=True
            ),
            "kubeconfig_argv": talosctl_kubeconfig_argv(
                TALOSCONFIG_PLACEHOLDER, node, KUBECONFIG_PLACEHOLDER
            ),
            "kubeconfig_placeholder": KUBECONFIG_PLACEHOLDER,
            "kubernetes_timeout_seconds": KUBERNETES_TIMEOUT_SECONDS,
            "kubernetes_version": plan.kubernetes_version,
            "mode": "kubernetes",
            "node": node,
            "node_name": f"{plan.steps[0].hostname} ({node})",
            "program": "kubernetes-upgrade",
            "talos_minor": plan.health.talos_minor,
            "talos_version": plan.talos_version,
            "upgrade_k8s_argv": talosctl_upgrade_k8s_argv(
                TALOSCONFIG_PLACEHOLDER, node, endpoints, plan.kubernetes_version
            ),
            "version_argv": talosctl_version_argv(TALOSCONFIG_PLACEHOLDER, node, endpoints),
        }
    )


@dataclass(frozen=True)
class UpgradeChain:
    """The Commands of a plan, in order; `done` is what must wait for the whole chain."""

    talos_steps: tuple[command.local.Command, ...]
    kubernetes_step: command.local.Command

    @property
    def done(self) -> command.local.Command:
        return self.kubernetes_step


def upgrade_chain(
    name: str,
    plan: UpgradePlan,
    *,
    installer_image: pulumi.Input[str],
    talosconfig: pulumi.Output[str],
    parent: pulumi.Resource,
    depends_on: Sequence[pulumi.Resource] = (),
) -> UpgradeChain:
    """The Talos steps one after the other, then the Kubernetes step."""
    secret_talosconfig: pulumi.Output[str] = pulumi.Output.secret(talosconfig)
    environment = {TALOSCONFIG_ENV: secret_talosconfig}
    image = pulumi.Output.from_input(installer_image)
    previous: list[pulumi.Resource] = list(depends_on)
    steps: list[command.local.Command] = []

    def script_for(step: RollStep) -> pulumi.Output[str]:
        return image.apply(lambda text: node_upgrade_script(plan, step, text))

    for step in plan.steps:
        script = script_for(step)
        created = command.local.Command(
            f"{name}{TALOS_STEP_INFIX}{step.hostname}",
            create=script,
            interpreter=list(INTERPRETER),
            environment=environment,
            # A new target, installer or place in the order replaces the Command, which runs
            # the step (or skips a node already there); nothing else runs it.
            triggers=[step.describe(plan.talos_version), image],
            logging=command.local.Logging.STDERR,
            opts=pulumi.ResourceOptions(parent=parent, depends_on=previous),
        )
        steps.append(created)
        previous = [created]
    kubernetes = command.local.Command(
        f"{name}{KUBERNETES_STEP_SUFFIX}",
        create=kubernetes_upgrade_script(plan),
        interpreter=list(INTERPRETER),
        environment=environment,
        triggers=[plan.describe_kubernetes()],
        logging=command.local.Logging.STDERR,
        opts=pulumi.ResourceOptions(parent=parent, depends_on=previous),
    )
    return UpgradeChain(talos_steps=tuple(steps), kubernetes_step=kubernetes)


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def rolling_reboots(
    name: str,
    plan: UpgradePlan,
    applies: Mapping[str, talos.machine.ConfigurationApply],
    *,
    talosconfig: pulumi.Output[str],
    parent: pulumi.Resource,
) -> tuple[command.local.Command, ...]:
    """After every apply, one node after the other (the roll's order): reboot a node whose
    config change was staged because it needs a reboot, with the cluster healthy before and
    after it, so control planes never reboot together and etcd keeps its quorum."""
    secret_talosconfig: pulumi.Output[str] = pulumi.Output.secret(talosconfig)
    previous: list[pulumi.Resource] = list(applies.values())
    reboots: list[command.local.Command] = []
    for step in plan.steps:
        apply = applies[step.hostname]
        # Runs again when the node's applied config changes. The digest is of the rendered
        # config, secrets included, so it shows no secret (a 64-bit prefix of SHA-256).
        config_digest = pulumi.Output.unsecret(apply.machine_configuration.apply(_digest))
        created = command.local.Command(
            f"{name}{REBOOT_STEP_INFIX}{step.hostname}",
            create=reboot_script(plan, step),
            interpreter=list(INTERPRETER),
            environment={
                TALOSCONFIG_ENV: secret_talosconfig,
                APPLY_MODE_ENV: apply.resolved_apply_mode,
            },
            triggers=[
                f"{step.role} {step.hostname} ({step.ip}): reboot if its config is staged",
                apply.resolved_apply_mode,
                config_digest,
            ],
            logging=command.local.Logging.STDERR,
            opts=pulumi.ResourceOptions(parent=parent, depends_on=previous),
        )
        reboots.append(created)
        previous = [*applies.values(), created]
    return tuple(reboots)

"""Upgrades by bumping a pin: Talos node by node, then Kubernetes once, each step a Command.

pulumiverse-talos 0.8.1 has no upgrade resource, and a new `machine.install.image` never upgrades a
running node (the installer is only read at install time; components.md 1.3). So each upgrade
step is a `pulumi_command.local.Command` running `talosctl` on the workstation with the stack's
own talosconfig (a secret, in the environment, written to a 0600 temp file under umask 077 and
removed; never printed), like the health wait (components/cluster/talos_health.py):

- one **Talos step per node**, control planes first in config order, then workers, chained by
  `depends_on`. Each reads what the node runs: its version (`talosctl version`) and the schematic
  its image was built from (`talosctl get extensions`: the Image Factory's virtual `schematic`
  extension); a node that runs the target version from the target schematic is skipped, so a
  re-run after a failure resumes where it stopped, and a new extension or kernel argument (a new
  schematic, same version) re-images every node. Otherwise it checks the cluster healthy (etcd
  quorum included), runs `talosctl upgrade --image <installer>`, which waits for the reboot,
  reads what the node runs again and checks the cluster healthy before the next node may start.
  A failure stops the roll with a message naming the node and what to do.
- one **Kubernetes step** after the last Talos step: `talosctl upgrade-k8s --to <version>`, which
  moves the control-plane components node by node, then kube-proxy, the kubelets, and the
  bootstrap manifests (CoreDNS, flannel), unless every component already runs the target.

Each step's triggers name the step (node, target) and the installer, so a pin bump shows in
`pulumi preview` as a replacement of exactly these Commands, old → new target, and nothing runs
when nothing changed (a Command runs only on create and on a changed input: pulumi_command 1.2.1
local/command.py docstrings of `create` and `triggers`). Every other change of a step's inputs (a
renewed talosconfig in its environment, a new node set in its command lines, a new text of its
program) is an update, whose program (programs/unchanged.py) does nothing: pulumi-command runs
`update` instead of `create` then (pulumi/pulumi-command@v1.2.1:
provider/pkg/provider/local/commandController.go `Update`). So the yearly client-certificate
renewal and a grown node set re-run no step. Which endpoints a step uses is decided when it runs:
the other control planes that take the cluster's credentials (a control plane still in
maintenance mode does not: TLS is checked per endpoint), else all of them
(programs/talosctl.py `endpoints_for`).

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
A reboot step asks the node whether a staged config still waits (programs/talos_reboot.py), so a
node rebooted since is never rebooted again.

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

from components.cluster.image_factory import EMPTY_SCHEMATIC_ID, schematic_of_installer
from components.cluster.talos_health import TALOSCONFIG_ENV as TALOSCONFIG_ENV
from components.cluster.talos_health import (
    TALOSCONFIG_PLACEHOLDER,
    TALOSCTL_RELEASES,
    WAIT_TIMEOUT_SECONDS,
    HealthTarget,
    talosctl_health_argv,
)
from components.cluster.talos_patches import installer_image
from config.model import Cluster
from programs import kubernetes_upgrade, talos_reboot, talos_upgrade, talosctl, unchanged
from programs.build import INTERPRETER, environment, program_text

# talosctl upgrade's own default (siderolabs/talos@v1.13.9: cmd/talosctl/cmd/talos/track.go
# `--timeout` 30m), stated so the program's own bound can exceed it.
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


# The endpoints a step chooses when it runs (programs/talosctl.py `endpoints_for`).
CHOSEN: Final = (talosctl.ENDPOINTS,)


def talosctl_probe_argv(talosconfig: str) -> list[str]:
    """Whether one control plane (CANDIDATE) takes the cluster's credentials: `talosctl version`
    of itself through itself."""
    candidate = talosctl.CANDIDATE
    return [*_talosctl(talosconfig, candidate, [candidate]), "version"]


def talosctl_get_argv(
    talosconfig: str, node: str, endpoints: Sequence[str], kind: str
) -> list[str]:
    """`talosctl get <kind> -o json` of one node (cmd/talosctl/cmd/talos/get.go)."""
    return [*_talosctl(talosconfig, node, endpoints), "get", kind, "--output", "json"]


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


def talosctl_kubeconfig_argv(
    talosconfig: str, node: str, path: str, endpoints: Sequence[str] = CHOSEN
) -> list[str]:
    """Fetch an admin kubeconfig to `path` (kubeconfig.go: with `--merge=false` it is written
    with mode 0600 as a new file)."""
    return [
        *_talosctl(talosconfig, node, endpoints),
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


# --- the programs (programs/talos_upgrade.py, talos_reboot.py, kubernetes_upgrade.py) -----------

# Stands for the kubeconfig the Kubernetes step fetches into its own temp folder.
KUBECONFIG_PLACEHOLDER: Final = talosctl.KUBECONFIG


def accepted_schematics(image: str) -> list[str]:
    """What the node may report for the target image: an Image Factory installer carries its
    schematic; the plain installer carries none, which an image of the empty schematic stands
    for too."""
    schematic = schematic_of_installer(image)
    return [schematic] if schematic else ["", EMPTY_SCHEMATIC_ID]


def node_upgrade_script(
    plan: UpgradePlan,
    step: RollStep,
    image: str,
    *,
    health_timeout_seconds: int = WAIT_TIMEOUT_SECONDS,
    retry_delay_seconds: int = RETRY_DELAY_SECONDS,
) -> str:
    """The text of one node's Talos step."""
    target = plan.health
    return program_text(
        talos_upgrade,
        talos_upgrade.Params(
            accepted_schematics=accepted_schematics(image),
            extensions_argv=talosctl_get_argv(
                TALOSCONFIG_PLACEHOLDER, step.ip, CHOSEN, "extensions"
            ),
            health_argv=talosctl_health_argv(
                target, TALOSCONFIG_PLACEHOLDER, health_timeout_seconds, CHOSEN
            ),
            health_timeout_seconds=health_timeout_seconds,
            image=image,
            insecure_version_argv=talosctl_version_argv(
                TALOSCONFIG_PLACEHOLDER, step.ip, CHOSEN, insecure=True
            ),
            node_name=f"{step.hostname} ({step.ip})",
            program=f"talos-upgrade {step.hostname}",
            releases=TALOSCTL_RELEASES,
            retry_delay_seconds=retry_delay_seconds,
            schematic=schematic_of_installer(image),
            talos_minor=target.talos_minor,
            talos_version=plan.talos_version,
            talosconfig_env=TALOSCONFIG_ENV,
            upgrade_argv=talosctl_upgrade_argv(TALOSCONFIG_PLACEHOLDER, step.ip, CHOSEN, image),
            upgrade_timeout_seconds=UPGRADE_TIMEOUT_SECONDS,
            version_argv=talosctl_version_argv(TALOSCONFIG_PLACEHOLDER, step.ip, CHOSEN),
            control_planes=list(plan.control_plane_ips),
            node=step.ip,
            probe_argv=talosctl_probe_argv(TALOSCONFIG_PLACEHOLDER),
        ),
    )


def reboot_script(
    plan: UpgradePlan,
    step: RollStep,
    *,
    health_timeout_seconds: int = WAIT_TIMEOUT_SECONDS,
    retry_delay_seconds: int = RETRY_DELAY_SECONDS,
) -> str:
    """The text of one node's reboot step: reboot it only while a staged config waits on it."""
    return program_text(
        talos_reboot,
        talos_reboot.Params(
            apply_mode_env=APPLY_MODE_ENV,
            health_argv=talosctl_health_argv(
                plan.health, TALOSCONFIG_PLACEHOLDER, health_timeout_seconds, CHOSEN
            ),
            health_timeout_seconds=health_timeout_seconds,
            machineconfig_argv=talosctl_get_argv(
                TALOSCONFIG_PLACEHOLDER, step.ip, CHOSEN, "machineconfig"
            ),
            node_name=f"{step.hostname} ({step.ip})",
            program=f"reboot {step.hostname}",
            reboot_argv=talosctl_reboot_argv(TALOSCONFIG_PLACEHOLDER, step.ip, CHOSEN),
            releases=TALOSCTL_RELEASES,
            retry_delay_seconds=retry_delay_seconds,
            staged=STAGED,
            talos_minor=plan.health.talos_minor,
            talos_version=plan.talos_version,
            talosconfig_env=TALOSCONFIG_ENV,
            upgrade_timeout_seconds=UPGRADE_TIMEOUT_SECONDS,
            control_planes=list(plan.control_plane_ips),
            node=step.ip,
            probe_argv=talosctl_probe_argv(TALOSCONFIG_PLACEHOLDER),
        ),
    )


def kubernetes_upgrade_script(plan: UpgradePlan) -> str:
    """The text of the Kubernetes step, through the first control plane."""
    node = plan.control_plane_ips[0]
    return program_text(
        kubernetes_upgrade,
        kubernetes_upgrade.Params(
            components=list(KUBERNETES_COMPONENTS),
            insecure_version_argv=talosctl_version_argv(
                TALOSCONFIG_PLACEHOLDER, node, CHOSEN, insecure=True
            ),
            kubeconfig_argv=talosctl_kubeconfig_argv(
                TALOSCONFIG_PLACEHOLDER, node, KUBECONFIG_PLACEHOLDER
            ),
            kubernetes_timeout_seconds=KUBERNETES_TIMEOUT_SECONDS,
            kubernetes_version=plan.kubernetes_version,
            node_name=f"{plan.steps[0].hostname} ({node})",
            program="kubernetes-upgrade",
            releases=TALOSCTL_RELEASES,
            talos_minor=plan.health.talos_minor,
            talos_version=plan.talos_version,
            talosconfig_env=TALOSCONFIG_ENV,
            upgrade_k8s_argv=talosctl_upgrade_k8s_argv(
                TALOSCONFIG_PLACEHOLDER, node, CHOSEN, plan.kubernetes_version
            ),
            version_argv=talosctl_version_argv(TALOSCONFIG_PLACEHOLDER, node, CHOSEN),
            control_planes=list(plan.control_plane_ips),
            node=node,
            probe_argv=talosctl_probe_argv(TALOSCONFIG_PLACEHOLDER),
        ),
    )


def unchanged_script(name: str) -> str:
    """The `update` of a step: nothing to do (programs/unchanged.py)."""
    return program_text(unchanged, unchanged.Params(program=name))


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
    image = pulumi.Output.from_input(installer_image)
    previous: list[pulumi.Resource] = list(depends_on)
    steps: list[command.local.Command] = []

    def script_for(step: RollStep) -> pulumi.Output[str]:
        return image.apply(lambda text: node_upgrade_script(plan, step, text))

    for step in plan.steps:
        script = script_for(step)
        step_name = f"{name}{TALOS_STEP_INFIX}{step.hostname}"
        created = command.local.Command(
            step_name,
            create=script,
            # Runs only when its triggers change (a replacement); any other change is an update,
            # which does nothing (programs/unchanged.py).
            update=unchanged_script(step_name),
            interpreter=list(INTERPRETER),
            environment={**environment(talos_upgrade), TALOSCONFIG_ENV: secret_talosconfig},
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
        update=unchanged_script(f"{name}{KUBERNETES_STEP_SUFFIX}"),
        interpreter=list(INTERPRETER),
        environment={**environment(kubernetes_upgrade), TALOSCONFIG_ENV: secret_talosconfig},
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
        step_name = f"{name}{REBOOT_STEP_INFIX}{step.hostname}"
        created = command.local.Command(
            step_name,
            create=reboot_script(plan, step),
            # A renewed credential or a new program text is an update, which reboots nothing.
            update=unchanged_script(step_name),
            interpreter=list(INTERPRETER),
            environment={
                **environment(talos_reboot),
                TALOSCONFIG_ENV: secret_talosconfig,
                APPLY_MODE_ENV: apply.resolved_apply_mode,
            },
            # Not the apply's resolved mode: an unchanged config keeps it, and whether a staged
            # config still waits is read from the node when the step runs.
            triggers=[
                f"{step.role} {step.hostname} ({step.ip}): reboot if its config is staged",
                config_digest,
            ],
            logging=command.local.Logging.STDERR,
            opts=pulumi.ResourceOptions(parent=parent, depends_on=previous),
        )
        reboots.append(created)
        previous = [*applies.values(), created]
    return tuple(reboots)

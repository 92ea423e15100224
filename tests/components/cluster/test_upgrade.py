"""Upgrades: the chain a pin bump yields (through the recording engine), the command lines against
talosctl's own flags, and the scripts against fake `talosctl`/`kubectl` at the process boundary:
a roll, a failure in the middle, a resumed re-run, a fresh cluster, Kubernetes."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from components.cluster import upgrade
from components.cluster.talos_health import TALOSCTL_RELEASES
from config import pins
from homelab import render as offline_render
from homelab.engine import Render, RenderError, ResourceRecord
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
SUBCOMMANDS = {
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


def test_the_upgrade_targets_one_node_waits_and_keeps_it_off_its_own_endpoint() -> None:
    """`talosctl upgrade` sends the request to every `--nodes` target
    (siderolabs/talos@v1.13.9:cmd/talosctl/cmd/talos/upgrade.go `upgradeViaLifecycleService`,
    `multiplex.Streaming(ctx, nodes, ...)`): one node per step. `--wait` tracks the reboot until
    the node is back with a new boot ID (siderolabs/talos@v1.13.9:cmd/talosctl/cmd/talos/reboot.go
    `rebootInternal`, `BootIDChangedPostCheckFn`). `--preserve` is deprecated and read only on the
    legacy path (upgrade.go `MarkDeprecated`), so no other legacy flag is passed."""
    for step in PLAN.steps:
        argv = upgrade.talosctl_upgrade_argv("/tmp/tc", step.ip, PLAN.endpoints_for(step), IMAGE)
        subcommand, flags, _ = parse_talosctl(argv)
        assert subcommand == "upgrade"
        assert flags["--nodes"] == [step.ip]
        assert flags["--image"] == IMAGE
        assert flags["--wait"] is True
        assert step.ip not in flags["--endpoints"]
        assert set(flags["--endpoints"]) <= set(PLAN.control_plane_ips)
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


# --- the scripts against fake CLIs -------------------------------------------------------------

# A fake talosctl. Its `version` output has the shape of siderolabs/talos@v1.13.9:
# cmd/talosctl/cmd/talos/version.go `cmdVersion` with pkg/machinery/version/version.go
# `versionTemplate` (and `Short()` = "Talos <tag>" for --client --short).
FAKE_TALOSCTL = r"""
import json, os, stat, sys
args = sys.argv[1:]
state_path = os.environ["FAKE_STATE"]
state = json.load(open(state_path))
entry = {"argv": args, "inherited": sorted(k for k in os.environ
                                          if k.startswith(("HOMELAB_", "PULUMI_", "TALOSCONFIG")))}
if "--talosconfig" in args:
    path = args[args.index("--talosconfig") + 1]
    entry["mode"] = stat.S_IMODE(os.stat(path).st_mode)
    entry["talosconfig"] = open(path).read()
with open(os.environ["FAKE_LOG"], "a") as log:
    log.write(json.dumps(entry) + "\n")


def value(flag):
    return args[args.index(flag) + 1] if flag in args else None


def long_block(tag):
    return ("\tTag:         " + tag + "\n\tSHA:         0123abcd\n\tBuilt:       \n"
            "\tGo version:  go1.25.5\n\tOS/Arch:     linux/amd64\n")


SUBS = ("version", "upgrade", "upgrade-k8s", "health", "kubeconfig", "reboot")
sub = [a for a in args if a in SUBS][0]
node = (value("--nodes") or "").split(",")[0]
nodes = state["nodes"]
if sub == "version":
    if "--short" in args:
        print("Client:\nTalos " + state["client"])
        sys.exit(0)
    out = "Client:\n" + long_block(state["client"])
    info = nodes.get(node, {})
    if not info.get("reachable", True):
        sys.stderr.write("error getting version: connection refused\n")
        sys.exit(1)
    if bool(info.get("maintenance")) != ("--insecure" in args):
        sys.stderr.write("error getting version: tls: certificate verification failed\n")
        sys.exit(1)
    print(out + "Server:\n\tNODE:        " + node + "\n" + long_block(info["version"]) +
          "\tEnabled:     RBAC")
    sys.exit(0)
if sub == "health":
    broken = state.get("unhealthy_once_upgraded")
    if state.get("unhealthy") or (broken and nodes[broken]["version"] == state["target"]):
        sys.stderr.write("waiting for etcd to be healthy: 1 error occurred\n")
        sys.exit(1)
    sys.exit(0)
if sub == "upgrade":
    if node in state.get("fail_upgrade", []):
        sys.stderr.write("error during upgrade: error pulling upgrade image\n")
        sys.exit(1)
    nodes[node]["version"] = value("--image").rpartition(":")[2]
    json.dump(state, open(state_path, "w"))
    sys.exit(0)
if sub == "reboot":
    sys.exit(1 if node in state.get("fail_reboot", []) else 0)
if sub == "kubeconfig":
    path = [a for a in args[args.index("kubeconfig") + 1:] if not a.startswith("--")][0]
    with open(path, "w") as file:
        file.write("FAKE-KUBECONFIG for " + node + "\n")
    os.chmod(path, 0o600)
    sys.exit(0)
if sub == "upgrade-k8s":
    if state.get("fail_upgrade_k8s"):
        sys.stderr.write("unsupported upgrade path 1.35->1.37\n")
        sys.exit(1)
    to = value("--to")
    state["kubernetes"] = {k: to for k in state["kubernetes"]}
    json.dump(state, open(state_path, "w"))
    sys.exit(0)
"""

# A fake kubectl: `get pods -n kube-system -o json` / `get nodes -o json` of a cluster whose
# component versions are in the state (pods labelled k8s-app=<component>, container <component>,
# as Talos renders its static pods and kube-proxy: detect.go `DetectLowestVersion`).
FAKE_KUBECTL = r"""
import json, os, sys
args = sys.argv[1:]
state = json.load(open(os.environ["FAKE_STATE"]))
kubeconfig = os.environ.get("KUBECONFIG", "")
with open(os.environ["FAKE_LOG"], "a") as log:
    log.write(json.dumps({"argv": ["kubectl", *args], "kubeconfig": open(kubeconfig).read()})
              + "\n")
versions = state["kubernetes"]
if args[:2] == ["get", "pods"]:
    items = [{"metadata": {"name": app + "-talos-cp-1", "labels": {"k8s-app": app}},
              "spec": {"containers": [{"name": app,
                                       "image": "registry.k8s.io/" + app + ":v" + version}]}}
             for app, version in versions.items() if app != "kubelet"]
    print(json.dumps({"items": items}))
elif args[:2] == ["get", "nodes"]:
    print(json.dumps({"items": [{"metadata": {"name": "talos-cp-1"},
                                 "status": {"nodeInfo": {"kubeletVersion":
                                                         "v" + versions["kubelet"]}}}]}))
else:
    sys.exit(2)
"""

TALOSCONFIG = "context: homelab\ncontexts:\n  homelab:\n    key: SENTINEL-talos-key\n"


class FakeCluster:
    """A directory with the fake CLIs on PATH and the cluster state they share."""

    def __init__(self, tmp_path: Path, **state: Any) -> None:
        self.root = tmp_path
        self.bin = tmp_path / "bin"
        self.bin.mkdir(exist_ok=True)
        for name, body in (("talosctl", FAKE_TALOSCTL), ("kubectl", FAKE_KUBECTL)):
            tool = self.bin / name
            tool.write_text(f"#!{sys.executable}\n{body}")
            tool.chmod(0o755)
        self.state_file = tmp_path / "state.json"
        self.log = tmp_path / "calls.jsonl"
        base: dict[str, Any] = {
            "client": TALOS_BUMP,
            "target": TALOS_BUMP,
            "nodes": {s.ip: {"version": pins.TALOS_VERSION} for s in PLAN.steps},
            "kubernetes": dict.fromkeys(
                [*upgrade.KUBERNETES_COMPONENTS, "kubelet"], pins.KUBERNETES_VERSION
            ),
        }
        self.state_file.write_text(json.dumps({**base, **state}))

    @property
    def state(self) -> dict[str, Any]:
        result: dict[str, Any] = json.loads(self.state_file.read_text())
        return result

    def update(self, **changes: Any) -> None:
        self.state_file.write_text(json.dumps({**self.state, **changes}))

    def calls(self) -> list[dict[str, Any]]:
        if not self.log.exists():
            return []
        return [json.loads(line) for line in self.log.read_text().splitlines()]

    def run(
        self, script: str, extra_env: Mapping[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        env = {
            **(extra_env or {}),
            # Only the fakes: a real talosctl or kubectl on the machine must not be found.
            "PATH": str(self.bin),
            "FAKE_STATE": str(self.state_file),
            "FAKE_LOG": str(self.log),
            "TMPDIR": str(self.root),
            "TALOSCONFIG": "/somewhere/else",
            upgrade.TALOSCONFIG_ENV: TALOSCONFIG,
        }
        return subprocess.run(
            [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=60
        )

    def roll(self) -> list[subprocess.CompletedProcess[str]]:
        """Run the steps in the chain's order, stopping at the first failure (as Pulumi does
        with a failed create: its dependents are not run)."""
        results = []
        for step in PLAN.steps:
            result = self.run(
                upgrade.node_upgrade_script(
                    PLAN, step, IMAGE, health_timeout_seconds=2, retry_delay_seconds=0
                )
            )
            results.append(result)
            if result.returncode != 0:
                break
        return results


def talos_calls(calls: list[dict[str, Any]], subcommand: str) -> list[dict[str, Any]]:
    return [c for c in calls if subcommand in c["argv"] and c["argv"][0] != "kubectl"]


def upgraded_nodes(calls: list[dict[str, Any]]) -> list[str]:
    return [
        parse_talosctl(["talosctl", *c["argv"]])[1]["--nodes"][0]
        for c in talos_calls(calls, "upgrade")
    ]


def test_a_roll_upgrades_every_node_in_order_with_health_before_and_after_each(
    tmp_path: Path,
) -> None:
    """The fake prints `talosctl version` as siderolabs/talos@v1.13.9 does
    (cmd/talosctl/cmd/talos/version.go `cmdVersion`: the client block, "Server:", then per node
    NODE and pkg/machinery/version/version.go `versionTemplate`, whose first line is the Tag):
    the script reads the server's tag, not the client's, which is already the target here."""
    cluster = FakeCluster(tmp_path)
    results = cluster.roll()
    assert [r.returncode for r in results] == [0, 0, 0, 0], [r.stderr for r in results]
    calls = cluster.calls()
    assert upgraded_nodes(calls) == [s.ip for s in PLAN.steps]
    # Between two upgrades the cluster was checked healthy (after one, before the next).
    sequence = [
        sub
        for c in calls
        for sub in ("upgrade", "health")
        if sub in c["argv"] and "upgrade-k8s" not in c["argv"]
    ]
    assert sequence == ["health", "upgrade", "health"] * len(PLAN.steps)
    assert all(n["version"] == TALOS_BUMP for n in cluster.state["nodes"].values())
    assert results[1].stdout == f"talos-cp-2 (192.168.0.12): {pins.TALOS_VERSION} -> {TALOS_BUMP}\n"
    # The talosconfig: a private temp file, gone afterwards, never in a child's environment.
    with_file = [c for c in calls if "mode" in c]
    assert with_file
    assert all(c["mode"] == 0o600 for c in with_file)
    assert all(c["talosconfig"] == TALOSCONFIG for c in with_file)
    assert all(c["inherited"] == [] for c in calls if "inherited" in c)
    assert not list(tmp_path.glob("homelab-talosconfig-*"))
    assert all("SENTINEL" not in r.stdout + r.stderr for r in results)


def test_a_failure_in_the_middle_stops_the_roll_and_a_rerun_resumes_it(tmp_path: Path) -> None:
    cluster = FakeCluster(tmp_path, fail_upgrade=["192.168.0.12"])
    first = cluster.roll()
    assert [r.returncode for r in first] == [0, 1]
    message = first[1].stderr
    assert "talos-cp-2 (192.168.0.12)" in message
    assert "pulumi up" in message
    assert "skipped" in message
    assert cluster.state["nodes"]["192.168.0.11"]["version"] == TALOS_BUMP
    assert cluster.state["nodes"]["192.168.0.13"]["version"] == pins.TALOS_VERSION
    assert upgraded_nodes(cluster.calls()) == ["192.168.0.11", "192.168.0.12"]

    # The cause is fixed; `pulumi up` runs the steps again from the failed one. A re-run of
    # every step (a Command recreated for another reason) changes nothing on talos-cp-1.
    cluster.update(fail_upgrade=[])
    cluster.log.unlink()
    again = cluster.roll()
    assert [r.returncode for r in again] == [0, 0, 0, 0], [r.stderr for r in again]
    calls = cluster.calls()
    assert upgraded_nodes(calls) == ["192.168.0.12", "192.168.0.13", "192.168.0.21"]
    assert again[0].stdout == f"talos-cp-1 (192.168.0.11): {TALOS_BUMP} (already)\n"
    assert "already runs" in again[0].stderr
    # A node already there costs only a version read: no health check, no upgrade.
    cluster.log.unlink()
    skipped = cluster.run(upgrade.node_upgrade_script(PLAN, PLAN.steps[0], IMAGE))
    assert skipped.returncode == 0, skipped.stderr
    assert [c["argv"][-1] for c in cluster.calls()] == ["--short", "version"]


def test_a_node_that_makes_the_cluster_unhealthy_stops_the_roll_naming_it(
    tmp_path: Path,
) -> None:
    cluster = FakeCluster(tmp_path, unhealthy_once_upgraded="192.168.0.11")
    results = cluster.roll()
    assert [r.returncode for r in results] == [1]
    assert "talos-cp-1 (192.168.0.11) now runs" in results[0].stderr
    assert "not healthy" in results[0].stderr
    assert upgraded_nodes(cluster.calls()) == ["192.168.0.11"]


def test_an_unhealthy_cluster_is_not_touched(tmp_path: Path) -> None:
    cluster = FakeCluster(tmp_path, unhealthy=True)
    results = cluster.roll()
    assert [r.returncode for r in results] == [1]
    assert "talos-cp-1 (192.168.0.11) was not upgraded" in results[0].stderr
    assert upgraded_nodes(cluster.calls()) == []


def test_an_unreachable_node_stops_the_roll_with_its_name(tmp_path: Path) -> None:
    cluster = FakeCluster(tmp_path)
    nodes = cluster.state["nodes"]
    nodes["192.168.0.12"]["reachable"] = False
    cluster.update(nodes=nodes)
    results = cluster.roll()
    assert [r.returncode for r in results] == [0, 1]
    assert "cannot read the Talos version of talos-cp-2 (192.168.0.12)" in results[1].stderr


def test_nodes_in_maintenance_mode_are_left_to_their_config(tmp_path: Path) -> None:
    """A fresh cluster: the steps run before the applies, the nodes answer only the maintenance
    API (`talosctl version --insecure`, siderolabs/talos@v1.13.9:cmd/talosctl/cmd/talos/version.go
    "use Talos maintenance mode API"); the apply installs the target itself, so nothing is
    upgraded and nothing waits for health."""
    cluster = FakeCluster(
        tmp_path,
        nodes={s.ip: {"version": "v1.13.2", "maintenance": True} for s in PLAN.steps},
    )
    results = cluster.roll()
    assert [r.returncode for r in results] == [0, 0, 0, 0]
    calls = cluster.calls()
    assert upgraded_nodes(calls) == []
    assert talos_calls(calls, "health") == []
    assert all("not installed yet" in r.stdout for r in results)


def test_talosctl_of_another_minor_is_refused_before_any_node_is_touched(tmp_path: Path) -> None:
    cluster = FakeCluster(tmp_path, client="v1.12.6")
    results = cluster.roll()
    assert results[0].returncode == 1
    assert "v1.12.6" in results[0].stderr
    assert TALOSCTL_RELEASES in results[0].stderr
    assert [c["argv"][-1] for c in cluster.calls()] == ["--short"]


# --- Kubernetes --------------------------------------------------------------------------------


def test_kubernetes_is_upgraded_once_through_upgrade_k8s(tmp_path: Path) -> None:
    cluster = FakeCluster(tmp_path)
    result = cluster.run(upgrade.kubernetes_upgrade_script(PLAN))
    assert result.returncode == 0, result.stderr
    calls = cluster.calls()
    (k8s,) = talos_calls(calls, "upgrade-k8s")
    _, flags, _ = parse_talosctl(["talosctl", *k8s["argv"]])
    assert flags["--to"] == KUBERNETES_BUMP
    # The versions were read with the kubeconfig talosctl fetched into a private folder.
    kubectl = [c for c in calls if c["argv"][0] == "kubectl"]
    assert kubectl
    assert all(c["kubeconfig"].startswith("FAKE-KUBECONFIG") for c in kubectl)
    assert not list(tmp_path.glob("homelab-kubeconfig-*"))
    assert not list(tmp_path.glob("homelab-talosconfig-*"))
    assert set(cluster.state["kubernetes"].values()) == {KUBERNETES_BUMP}


def test_a_cluster_already_at_the_version_is_left_alone(tmp_path: Path) -> None:
    """upgrade-k8s starts from the lowest version of the components
    (siderolabs/talos@v1.13.9:pkg/cluster/kubernetes/detect.go `DetectLowestVersion`); when every
    one, kubelets included, runs the target there is nothing to move, and the step does not run
    it."""
    cluster = FakeCluster(
        tmp_path,
        kubernetes=dict.fromkeys([*upgrade.KUBERNETES_COMPONENTS, "kubelet"], KUBERNETES_BUMP),
    )
    result = cluster.run(upgrade.kubernetes_upgrade_script(PLAN))
    assert result.returncode == 0, result.stderr
    assert talos_calls(cluster.calls(), "upgrade-k8s") == []
    assert "(already)" in result.stdout


def test_one_component_behind_is_enough_to_upgrade(tmp_path: Path) -> None:
    versions = dict.fromkeys([*upgrade.KUBERNETES_COMPONENTS, "kubelet"], KUBERNETES_BUMP)
    versions["kubelet"] = pins.KUBERNETES_VERSION
    cluster = FakeCluster(tmp_path, kubernetes=versions)
    result = cluster.run(upgrade.kubernetes_upgrade_script(PLAN))
    assert result.returncode == 0, result.stderr
    assert len(talos_calls(cluster.calls(), "upgrade-k8s")) == 1
    assert "kubelet talos-cp-1" in result.stderr


def test_a_failed_kubernetes_upgrade_says_what_to_do(tmp_path: Path) -> None:
    cluster = FakeCluster(tmp_path, fail_upgrade_k8s=True)
    result = cluster.run(upgrade.kubernetes_upgrade_script(PLAN))
    assert result.returncode == 1
    assert f"upgrade-k8s --to {KUBERNETES_BUMP} failed" in result.stderr
    assert "pulumi up" in result.stderr
    assert not list(tmp_path.glob("homelab-kubeconfig-*"))


def test_kubernetes_waits_for_no_cluster_that_is_not_installed(tmp_path: Path) -> None:
    cluster = FakeCluster(
        tmp_path,
        nodes={s.ip: {"version": "v1.13.2", "maintenance": True} for s in PLAN.steps},
    )
    result = cluster.run(upgrade.kubernetes_upgrade_script(PLAN))
    assert result.returncode == 0, result.stderr
    assert talos_calls(cluster.calls(), "upgrade-k8s") == []
    assert "not installed yet" in result.stdout


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


def reboot(cluster: FakeCluster, step: upgrade.RollStep, mode: str) -> Any:
    script = upgrade.reboot_script(PLAN, step, health_timeout_seconds=2, retry_delay_seconds=0)
    return cluster.run(script, {upgrade.APPLY_MODE_ENV: mode})


def test_a_staged_node_reboots_between_two_health_checks(tmp_path: Path) -> None:
    cluster = FakeCluster(tmp_path)
    result = reboot(cluster, PLAN.steps[1], upgrade.STAGED)
    assert result.returncode == 0, result.stderr
    calls = [c for c in cluster.calls() if "--short" not in c["argv"]]
    assert [c["argv"][c["argv"].index("--nodes") + 2] for c in calls] == [
        "health",
        "reboot",
        "health",
    ]
    _, flags, _ = parse_talosctl(["talosctl", *calls[1]["argv"]])
    assert flags["--nodes"] == ["192.168.0.12"]
    assert "192.168.0.12" not in flags["--endpoints"]
    assert flags["--wait"] is True
    assert not list(tmp_path.glob("homelab-talosconfig-*"))


def test_a_node_whose_config_applied_live_is_not_rebooted(tmp_path: Path) -> None:
    cluster = FakeCluster(tmp_path)
    result = reboot(cluster, PLAN.steps[0], "auto")
    assert result.returncode == 0, result.stderr
    assert [c["argv"][-1] for c in cluster.calls()] == ["--short"]
    assert "no reboot needed" in result.stdout


def test_an_unhealthy_cluster_reboots_nothing_and_names_the_node(tmp_path: Path) -> None:
    cluster = FakeCluster(tmp_path, unhealthy=True)
    result = reboot(cluster, PLAN.steps[0], upgrade.STAGED)
    assert result.returncode == 1
    assert "talos-cp-1 (192.168.0.11) was not rebooted" in result.stderr
    assert talos_calls(cluster.calls(), "reboot") == []

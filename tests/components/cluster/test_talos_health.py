"""The Talos health wait: the talosctl command line against talosctl's rules, the program against
the shared world (tests/world), and the Command's lifecycle (when it runs again, and when it does
not)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from components.cluster import talos_health
from components.cluster.talos_health import HealthTarget
from programs import talos_health as talos_health_program
from programs.build import PROGRAM_ENV, name_of, parameters
from tests.harness import render_config, stack_raw_config, with_changes
from tests.world import talos_model
from tests.world.world import World

COMMAND = "command:local:Command"
TARGET = HealthTarget(
    talos_version="v1.13.9",
    control_plane_nodes=("192.168.0.11", "192.168.0.12", "192.168.0.13"),
    worker_nodes=("192.168.0.21",),
    endpoints=("192.168.0.11", "192.168.0.12", "192.168.0.13"),
)

# talosctl's flags at siderolabs/talos@v1.13.9: the persistent ones every `talosctl talos`
# command has (cmd/talosctl/cmd/talos/root.go `addCommand`) and health's own
# (cmd/talosctl/cmd/talos/health.go `init`). Value-taking flags map to their kind.
PERSISTENT_FLAGS = {
    "--talosconfig": "string",
    "--nodes": "slice",
    "--endpoints": "slice",
    "--cluster": "string",
    "--context": "string",
    "--siderov1-keys-dir": "string",
}
HEALTH_FLAGS = {
    "--init-node": "string",
    "--control-plane-nodes": "slice",
    "--worker-nodes": "slice",
    "--wait-timeout": "duration",
    "--k8s-endpoint": "string",
    "--server": "bool",
    "--run-e2e": "bool",
}
GO_DURATION = re.compile(r"^(\d+(\.\d+)?(ns|us|µs|ms|s|m|h))+$")


Subcommands = Mapping[str, tuple[Mapping[str, str], int]]


def parse_talosctl_command(
    argv: list[str], subcommands: Subcommands
) -> tuple[str, dict[str, Any], list[str]]:
    """Parse argv the way cobra/pflag would: the persistent flags plus the subcommand's own
    (`subcommands`: name -> (flags, how many positional arguments it takes)); raise on an
    unknown subcommand or flag, a malformed duration or a surplus argument."""
    assert argv[0] == "talosctl"
    args = argv[1:]
    subcommand: str | None = None
    flags: dict[str, Any] = {}
    positional: list[str] = []
    i = 0
    while i < len(args):
        arg = args[i]
        if not arg.startswith("--"):
            if subcommand is None:
                assert arg in subcommands, f"unknown subcommand {arg!r}"
                subcommand = arg
            else:
                positional.append(arg)
            i += 1
            continue
        name, eq, inline = arg.partition("=")
        known = dict(PERSISTENT_FLAGS)
        if subcommand is not None:
            known.update(subcommands[subcommand][0])
        assert name in known, f"{name} is not a flag of `talosctl {subcommand or ''}`"
        kind = known[name]
        if kind == "bool":
            flags[name] = inline in ("", "true") if eq else True
            i += 1
            continue
        value = inline if eq else args[i + 1]
        i += 1 if eq else 2
        if kind == "slice":
            flags[name] = value.split(",") if value else []
        elif kind == "duration":
            assert GO_DURATION.fullmatch(value), f"{name}={value!r} is not a Go duration"
            flags[name] = value
        else:
            flags[name] = value
    assert subcommand is not None
    assert len(positional) <= subcommands[subcommand][1], f"surplus arguments {positional}"
    return subcommand, flags, positional


def parse_talosctl(argv: list[str]) -> tuple[str, dict[str, Any]]:
    """`talosctl health` (which takes no arguments) parsed; raise on an unknown flag."""
    subcommand, flags, _ = parse_talosctl_command(argv, {"health": (HEALTH_FLAGS, 0)})
    return subcommand, flags


def test_the_command_line_uses_only_talosctls_flags_and_checks_exactly_the_given_nodes() -> None:
    """Every flag is talosctl's, and the node lists are explicit.

    siderolabs/talos@v1.13.9:cmd/talosctl/cmd/talos/health.go: with `--control-plane-nodes` or
    `--worker-nodes` the checks use exactly those (`buildClusterInfo`), otherwise they discover
    members; the check then requires Kubernetes to report exactly that set (pkg/cluster/
    cluster.go `NodesMatch`: "can't find expected node" / "unexpected nodes"). The server-side
    check (`--server`, default true) runs on one node (`FailIfMultiNodes`) that must be a control
    plane (internal/app/machined/internal/server/v1alpha1/v1alpha1_cluster.go `HealthCheck`).
    """
    _, flags = parse_talosctl(talos_health.talosctl_health_argv(TARGET, "/tmp/tc"))
    assert flags["--talosconfig"] == "/tmp/tc"
    assert flags["--server"] is True
    assert len(flags["--nodes"]) == 1
    assert flags["--nodes"][0] in TARGET.control_plane_nodes
    assert flags["--control-plane-nodes"] == list(TARGET.control_plane_nodes)
    assert flags["--worker-nodes"] == list(TARGET.worker_nodes)
    assert set(flags["--endpoints"]) <= set(TARGET.control_plane_nodes)
    # The data source's own default read timeout (talos_cluster_health_data_source.go, 10 min).
    assert flags["--wait-timeout"] == "600s"


def test_a_cluster_without_workers_passes_no_empty_worker_list() -> None:
    target = HealthTarget("v1.13.9", ("10.0.0.1",), (), ("10.0.0.1",))
    _, flags = parse_talosctl(talos_health.talosctl_health_argv(target, "/tmp/tc"))
    assert "--worker-nodes" not in flags
    assert flags["--control-plane-nodes"] == ["10.0.0.1"]


def test_a_target_needs_a_control_plane() -> None:
    with pytest.raises(ValueError, match="control-plane"):
        HealthTarget("v1.13.9", (), ("10.0.0.2",), ("10.0.0.2",))


# --- the program against the shared world ----------------------------------------------------

WORLD_TARGET = HealthTarget(
    talos_version="v1.13.9",
    control_plane_nodes=("10.0.0.11", "10.0.0.12", "10.0.0.13"),
    worker_nodes=("10.0.0.21",),
    endpoints=("10.0.0.11", "10.0.0.12", "10.0.0.13"),
)


def health_world(tmp_path: Path, **kwargs: Any) -> World:
    world = World.create(tmp_path / "world", **kwargs)
    world.install_cluster(
        control_planes={"10.0.0.11": "cp-1", "10.0.0.12": "cp-2", "10.0.0.13": "cp-3"},
        workers={"10.0.0.21": "w-1"},
        vip="10.0.0.10",
    )
    return world


def wait(world: World, **environment: str) -> Any:
    """The health wait's program as its Command runs it, with a talosconfig the cluster takes."""
    credentials = {
        talos_health.TALOSCONFIG_ENV: world.talosconfig(list(WORLD_TARGET.endpoints)),
        "TALOSCONFIG": "/somewhere/else",
    }
    return world.run(talos_health.health_script(WORLD_TARGET), {**credentials, **environment})


def test_a_healthy_cluster_passes_with_the_talosconfig_in_a_private_temp_file(
    tmp_path: Path,
) -> None:
    world = health_world(tmp_path)
    result = wait(world)
    assert result.returncode == 0, result.stderr
    version, health = world.calls("talosctl")
    assert version["argv"][1:] == ["version", "--client", "--short"]
    argv = health["argv"]
    path = argv[argv.index("--talosconfig") + 1]
    assert argv == talos_health.talosctl_health_argv(WORLD_TARGET, path)
    assert health["config_mode"] == 0o600
    # The secret never travels in talosctl's environment, and the file is gone afterwards.
    for call in (version, health):
        assert [n for n in call["env"] if n.startswith(("HOMELAB_", "TALOSCONFIG"))] == []
    assert not list(world.tmp.glob("homelab-talosconfig-*"))
    assert result.stdout == "cluster healthy\n"


def test_an_attempt_that_ends_early_is_followed_by_one_with_the_time_left(
    tmp_path: Path,
) -> None:
    """The check node reboots: talosctl fails at once (its apid refuses connections), and the
    wait tries again after its pause with the time that is left, until the node is back."""
    world = health_world(tmp_path)
    with world.edit() as state:
        talos_model.reboot(state, talos_model.nodes(state)["10.0.0.11"])
    result = wait(world)
    assert result.returncode == 0, result.stderr
    attempts = [c["argv"] for c in world.calls("talosctl") if "health" in c["argv"]]
    assert len(attempts) > 1
    timeouts = [parse_talosctl(a)[1]["--wait-timeout"] for a in attempts]
    assert timeouts[0] == "600s"
    assert all(int(t.removesuffix("s")) < 600 for t in timeouts[1:])


def test_an_unhealthy_cluster_fails_with_a_way_forward(tmp_path: Path) -> None:
    world = health_world(tmp_path)
    world.node_dies("10.0.0.21")
    result = wait(world)
    assert result.returncode == 1
    assert "the cluster is not healthy after 600s" in result.stderr
    assert "pulumi up" in result.stderr
    assert not list(world.tmp.glob("homelab-talosconfig-*"))


def test_talosctl_of_another_minor_is_refused_before_the_cluster_is_touched(
    tmp_path: Path,
) -> None:
    world = health_world(tmp_path, talosctl_version="v1.12.6")
    result = wait(world)
    assert result.returncode == 1
    assert "talosctl is v1.12.6, the cluster runs Talos v1.13" in result.stderr
    assert talos_health.TALOSCTL_RELEASES in result.stderr
    assert [c["argv"][1:] for c in world.calls("talosctl")] == [["version", "--client", "--short"]]


def test_a_missing_talosctl_is_named_as_a_prerequisite(tmp_path: Path) -> None:
    world = health_world(tmp_path)
    empty = tmp_path / "empty"
    empty.mkdir()
    result = wait(world, PATH=str(empty))
    assert result.returncode == 1
    assert "talosctl is not on PATH (a prerequisite of `pulumi up`)" in result.stderr


def test_the_script_is_deterministic_and_names_only_the_minor() -> None:
    script = talos_health.health_script(TARGET)
    assert script == talos_health.health_script(TARGET)
    patch_bump = HealthTarget(
        "v1.13.10",
        *[getattr(TARGET, f) for f in ("control_plane_nodes", "worker_nodes", "endpoints")],
    )
    # A patch release of Talos does not rerun the health wait.
    assert talos_health.health_script(patch_bump) == script


# --- the Command's lifecycle ------------------------------------------------------------------


def _health(raw: dict[str, Any]) -> Any:
    render = render_config(raw)
    (found,) = [r for r in render.by_type(COMMAND) if r.name == "cluster-health"]
    return found, render


def test_the_wait_runs_again_when_the_node_set_changes_and_only_then() -> None:
    """pulumi-command replaces a Command when a trigger changes and runs `create` again; with
    unchanged inputs it does not run at all (pulumi_command@1.2.1 local/command.py docstrings of
    `triggers` and `create`). The triggers are the node set; a rebuilt cluster replaces the
    Command through `replace_with` the Bootstrap (whose id is a constant upstream)."""
    raw = stack_raw_config()
    base, render = _health(raw)
    again, _ = _health(raw)
    assert again.inputs == base.inputs
    worker = {"hostname": "talos-w-1", "ip": "192.168.0.21", "role": "worker"}
    grown, _ = _health(
        with_changes(
            raw,
            {
                "cluster.nodes": [*raw["cluster"]["nodes"], worker],
                "cluster.allowSchedulingOnControlPlanes": True,
            },
        )
    )
    assert grown.input("triggers") != base.input("triggers")
    assert "triggers[*]" in grown.replace_on_changes
    assert base.replace_with == (render.one("talos:machine/bootstrap:Bootstrap").urn,)
    # Its credentials are a secret input, never plaintext.
    assert base.is_secret(f"environment.{talos_health.TALOSCONFIG_ENV}")
    assert base.input(f"environment.{PROGRAM_ENV}") == name_of(talos_health_program)
    # Any other change (a renewed talosconfig, a new program text) is an update, which runs
    # `update` instead of `create` (pulumi/pulumi-command@v1.2.1:
    # provider/pkg/provider/local/commandController.go `Update`): it does nothing.
    assert parameters(base.input("update")) == {"program": "cluster-health"}
    assert "def main(params: Params) -> str:" in base.input("update")
    assert "PULUMI_COMMAND_STDOUT" in base.input("update")
    assert Path(base.input("interpreter")[0]).name == "python3"

"""The flows of docs/operations.md as a person meets them: a stack deployed onto the shared world
by real `up`s (tests/world/flow.py), then the events and the `up`s that follow, each with the
real rendered programs.

    homelab = deployed_copy(HA, tmp_path)          # the fixture homelab, three control planes
    result = homelab.up(changed(homelab.raw, {...}))
    assert result.ok, result.failure

A deployment is made once per configuration and test session and copied for each test (a first
`up` runs every Command of the stack).
"""

from __future__ import annotations

import copy
import functools
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import yaml

from tests import harness
from tests.world import flow
from tests.world.test_flow import serve_traefik_crds
from tests.world.world import World

CP1, CP2, CP3 = "192.168.0.11", "192.168.0.12", "192.168.0.13"
W1: Final = "192.168.0.21"
VIP: Final = "192.168.0.10"
WORKER: Final = {"hostname": "talos-w-1", "ip": W1, "role": "worker", "installDisk": "/dev/sda"}
STACK: Final = "homelab"


def changed(raw: Mapping[str, Any], changes: Mapping[str, Any]) -> dict[str, Any]:
    return harness.with_changes(raw, changes)


def ha_raw() -> dict[str, Any]:
    """The fixture homelab: three control planes behind a VIP, workloads on them."""
    return harness.stack_raw_config()


def ha_with_worker_raw() -> dict[str, Any]:
    raw = ha_raw()
    return changed(
        raw,
        {
            "cluster.nodes": [*raw["cluster"]["nodes"], WORKER],
            "cluster.allowSchedulingOnControlPlanes": True,
        },
    )


def single_raw(*, vip: bool = True) -> dict[str, Any]:
    """The fixture homelab on its first control plane alone (with or without the VIP)."""
    raw = ha_raw()
    raw = changed(raw, {"cluster.nodes": raw["cluster"]["nodes"][:1]})
    if not vip:
        del raw["cluster"]["vip"]
    return raw


@dataclass
class Homelab:
    """A world, the stack's state and the config of its last `up`."""

    world: World
    stack: flow.Stack
    raw: dict[str, Any]
    # The stack's outputs after its last successful `up`.
    outputs: dict[str, Any] = field(default_factory=dict)
    ups: list[flow.Up] = field(default_factory=list)

    def up(self, raw: Mapping[str, Any] | None = None, *, replace: Sequence[str] = ()) -> flow.Up:
        """`./scripts/up homelab` with `raw` as the stack's config (the last one by default)."""
        wanted = copy.deepcopy(dict(raw if raw is not None else self.raw))
        result = flow.up(
            self.world, self.stack, lambda: harness.render_config(wanted, STACK), replace=replace
        )
        self.stack = result.stack
        if result.ok and result.render is not None:
            self.raw = wanted
            self.outputs = dict(result.render.outputs)
        self.ups.append(result)
        return result

    def output(self, name: str) -> Any:
        return self.outputs[name]

    def talosconfig(self) -> str:
        """The stack's `talosconfig` output, as a person passes it to talosctl."""
        path = self.world.tmp / "talosconfig"
        path.write_text(str(self.output("talosconfig")))
        return str(path)

    def kubeconfig(self) -> str:
        path = self.world.tmp / "kubeconfig"
        path.write_text(str(self.output("kubeconfig")))
        return str(path)

    def talosctl(self, *argv: str) -> Any:
        return self.world.cli("talosctl", "--talosconfig", self.talosconfig(), *argv)

    def kubectl(self, *argv: str) -> Any:
        return self.world.cli("kubectl", "--kubeconfig", self.kubeconfig(), *argv)

    def calls(self, cli: str, *words: str) -> list[list[str]]:
        """The argv of each call to `cli` with all of `words` in it, since the world began."""
        return [c["argv"] for c in self.world.calls(cli) if all(w in c["argv"] for w in words)]


def first_up(root: Path, raw: Mapping[str, Any], machines: Sequence[str]) -> Homelab:
    """Machines booted from the ISO, then `up` until it succeeds (at most twice, as a person
    re-runs a failed first `up`)."""
    world = World.create(root, machines=list(machines))
    serve_traefik_crds(world)
    homelab = Homelab(world, flow.Stack(), copy.deepcopy(dict(raw)))
    if not homelab.up().ok:
        homelab.up()
    return homelab


@functools.cache
def _deployment(name: str, base: Path) -> tuple[Path, Homelab]:
    raw, machines = DEPLOYMENTS[name]()
    homelab = first_up(base / name, raw, machines)
    return homelab.world.root, homelab


DEPLOYMENTS: Final = {
    "ha": lambda: (ha_raw(), [CP1, CP2, CP3]),
    "ha-worker": lambda: (ha_with_worker_raw(), [CP1, CP2, CP3, W1]),
    "single": lambda: (single_raw(), [CP1]),
    "single-no-vip": lambda: (single_raw(vip=False), [CP1]),
}


def deployed_copy(name: str, base: Path, tmp_path: Path) -> Homelab:
    """A copy of the deployment `name` (made once, under `base`) for one test to change."""
    root, deployed = _deployment(name, base)
    assert deployed.ups[-1].ok, f"the first `up` of {name} failed: {deployed.ups[-1].failure}"
    shutil.copytree(root, tmp_path / "world")
    return Homelab(
        World(tmp_path / "world"),
        copy.deepcopy(deployed.stack),
        copy.deepcopy(deployed.raw),
        copy.deepcopy(deployed.outputs),
    )


def talosconfig_document(text: str) -> dict[str, Any]:
    found: dict[str, Any] = yaml.safe_load(text)
    return found

"""The text a Command runs: made of the programs' files as they are and the sorted parameters,
self-contained (it runs on a bare python3 outside the project), and refused when it would not be."""

from __future__ import annotations

import importlib
import pkgutil
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pytest

import programs
from components.cluster import change_guard, node_lifecycle, talos_health, upgrade
from components.cluster.talos_health import HealthTarget
from components.remote_access import keys
from components.shared import kubectl
from config.model import Cluster, Node
from programs import build, crd_gate, runtime
from programs import talos_health as talos_health_program
from programs.build import ProgramError

PACKAGE_DIR = Path(programs.__file__).parent
TARGET = HealthTarget(
    talos_version="v1.13.9",
    control_plane_nodes=("192.168.0.11", "192.168.0.12", "192.168.0.13"),
    worker_nodes=(),
    endpoints=("192.168.0.11", "192.168.0.12", "192.168.0.13"),
)
PLAN = upgrade.UpgradePlan(
    talos_version="v1.13.9",
    kubernetes_version="1.36.3",
    steps=(upgrade.RollStep("talos-cp-1", "192.168.0.11", "controlplane"),),
)
KEY = keys.KeyRequest(kind="apikey", expiration="90d")
HEADSCALE = keys.HeadscaleTarget("headscale", "deployment/headscale", "headscale")
NODES = (node_lifecycle.NodeEntry("192.168.0.11", "cp-1", "controlplane", "192.168.0.11"),)
CLUSTER = Cluster(
    name="homelab", nodes=[Node(hostname="cp-1", ip="192.168.0.11", role="controlplane")]
)

# Every program, as its component builds its text, and the first line it prints on stderr when
# run with nothing in its environment.
TEXTS: dict[str, tuple[Callable[[], str], str]] = {
    "webhook_gate": (
        lambda: kubectl.gate_script({"metadata": {"namespace": "n"}}, webhook="w"),
        f"webhook gate: {kubectl.KUBECONFIG_ENV} is empty",
    ),
    "crd_apply": (
        lambda: kubectl.crds_script(["https://example.invalid/crd.yaml"], ["a.example.com"]),
        f"CRDs: {kubectl.KUBECONFIG_ENV} is empty",
    ),
    "crd_gate": (
        lambda: kubectl.crd_gate_script("a.example.com", hint="h"),
        f"CRD gate: {kubectl.KUBECONFIG_ENV} is empty",
    ),
    "headscale_key": (
        lambda: keys.mint_script(KEY, HEADSCALE),
        f"headscale-key-mint: {keys.KUBECONFIG_ENV} is empty",
    ),
    "talos_health": (
        lambda: talos_health.health_script(TARGET),
        "talos-health: talosctl is not on PATH",
    ),
    "talos_upgrade": (
        lambda: upgrade.node_upgrade_script(PLAN, PLAN.steps[0], "installer:v1.13.9"),
        "talos-upgrade talos-cp-1: talosctl is not on PATH",
    ),
    "talos_reboot": (
        lambda: upgrade.reboot_script(PLAN, PLAN.steps[0]),
        # Without the apply's resolved mode it asks nothing of the node.
        "reboot talos-cp-1: talos-cp-1 (192.168.0.11): its config applied without a reboot",
    ),
    "unchanged": (
        lambda: upgrade.unchanged_script("cluster-reboot-talos-cp-1"),
        "cluster-reboot-talos-cp-1: only its credentials or its program text changed",
    ),
    "change_guard": (
        lambda: change_guard.guard_script(CLUSTER, "installer:v1.13.9", mode="check"),
        "homelab-cluster-changes: no previous record",
    ),
    "kubernetes_upgrade": (
        lambda: upgrade.kubernetes_upgrade_script(PLAN),
        "kubernetes-upgrade: talosctl is not on PATH",
    ),
    "node_set": (
        lambda: node_lifecycle.node_set_script(
            NODES, mode="reconcile", removed_node_action="shutdown"
        ),
        "homelab-node-set: no previous node set recorded",
    ),
}


def program_modules() -> list[ModuleType]:
    names = [m.name for m in pkgutil.iter_modules([str(PACKAGE_DIR)])]
    others = {*build.LIBRARIES, "build"}
    return [importlib.import_module(f"programs.{n}") for n in sorted(names) if n not in others]


def test_every_module_of_the_package_is_a_program_a_library_or_the_builder() -> None:
    for module in program_modules():
        assert callable(getattr(module, "main", None)), module.__name__
        assert isinstance(getattr(module, "Params", None), type), module.__name__
    assert sorted(build.name_of(m) for m in program_modules()) == sorted(TEXTS)


@pytest.mark.parametrize("name", sorted(TEXTS))
def test_each_text_runs_on_a_bare_python3_outside_the_project(name: str, tmp_path: Path) -> None:
    """`-I`: no user site, no PYTHON* variables and not the working directory on sys.path, so an
    import of the project would fail; an empty environment, so each stops at its first need."""
    make, first_line = TEXTS[name]
    result = subprocess.run(
        [sys.executable, "-I", "-c", make()],
        env={"PATH": str(tmp_path)},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.stderr.startswith(first_line), result.stderr
    assert "Traceback" not in result.stderr


def test_the_text_is_the_sources_in_order_then_the_sorted_parameters() -> None:
    text = talos_health.health_script(TARGET)
    assert text == talos_health.health_script(TARGET)
    assert text.startswith(f"{build.FUTURE}\n")
    markers = [line for line in text.splitlines() if line.startswith("# --- programs/")]
    assert markers == [f"# --- programs/{n}.py ---" for n in (*build.LIBRARIES, "talos_health")]
    for name in ("runtime", "talosctl", "talos_health"):
        body = (PACKAGE_DIR / f"{name}.py").read_text()
        # Every line but the imports of `__future__` and of the package is there as it is.
        kept = body.partition("class ")[2] if name == "talos_health" else body.split("\n\n\n", 1)[1]
        assert kept.strip() in text, name
    assert "from programs" not in text
    assert text.endswith(f"{build.ENTRY}\n")
    params = build.parameters(text)
    assert list(params) == sorted(params)
    assert params["talos_minor"] == "v1.13"


def test_a_changed_program_changes_its_text_there_and_only_there(tmp_path: Path) -> None:
    params = build.parameters(talos_health.health_script(TARGET))
    same, edited = tmp_path / "same" / "programs", tmp_path / "edited" / "programs"
    for copy in (same, edited):
        shutil.copytree(PACKAGE_DIR, copy)
    before = build.text_of(same, "talos_health", params)
    assert before == talos_health.health_script(TARGET)
    source = edited / "talos_health.py"
    source.write_text(source.read_text().replace("cluster healthy", "cluster is healthy"))
    runtime_source = edited / "runtime.py"
    runtime_source.write_text(runtime_source.read_text() + "\n\nRUNTIME_CHANGED = True\n")
    after = build.text_of(edited, "talos_health", params)
    removed = [line for line in before.splitlines() if line not in after.splitlines()]
    added = [line for line in after.splitlines() if line not in before.splitlines()]
    assert removed == ['    return "cluster healthy\\n"']
    assert added == ["RUNTIME_CHANGED = True", '    return "cluster is healthy\\n"']


def test_parameters_can_be_read_back_and_changed() -> None:
    text = kubectl.crd_gate_script("a.example.com", hint="h")
    fast = build.with_parameters(text, {"attempts": 2})
    assert build.parameters(fast) == {**build.parameters(text), "attempts": 2}
    assert fast.replace("'attempts': 2,", "'attempts': 60,") == text


def test_parameters_must_be_the_programs_and_literals() -> None:
    good = build.parameters(kubectl.crd_gate_script("a.example.com", hint="h"))
    with pytest.raises(ProgramError, match=r"missing \['hint'\]"):
        build.program_text(crd_gate, {k: v for k, v in good.items() if k != "hint"})
    with pytest.raises(ProgramError, match=r"unknown \['extra'\]"):
        build.program_text(crd_gate, {**good, "extra": 1})
    with pytest.raises(ProgramError, match="not a literal"):
        build.program_text(crd_gate, {**good, "hint": object()})


def test_only_programs_have_names_and_a_command_names_its_program() -> None:
    assert build.environment(talos_health_program) == {build.PROGRAM_ENV: "talos_health"}
    for module in (runtime, build, programs):
        with pytest.raises(ProgramError):
            build.name_of(module)


def package_with(tmp_path: Path, program: str) -> Path:
    """A copy of the package's libraries and one more program, `bad`."""
    folder = tmp_path / "programs"
    folder.mkdir()
    for library in build.LIBRARIES:
        shutil.copy(PACKAGE_DIR / f"{library}.py", folder)
    (folder / "bad.py").write_text(
        "from __future__ import annotations\n\n"
        + program
        + "\n\ndef main(params):\n    return ''\n"
    )
    return folder


@pytest.mark.parametrize(
    ("program", "refusal"),
    [
        ("from components.shared import kubectl", "imports components.shared"),
        ("import yaml", "imports yaml"),
        ("from programs.build import PARAMS", "imports programs.build"),
        ("from programs import runtime", "imports programs"),
        ("from .runtime import fail", "relative import"),
        ("def later():\n    from programs.runtime import fail", "at the top of the module"),
        ("from programs.runtime import nothing_here", "runtime does not define nothing_here"),
        ("def say(message):\n    return message", "binds say"),
        ("import os as time", "binds time"),
        ("PARAMS = {}", "PARAMS is the parameters' name"),
    ],
)
def test_what_a_program_may_not_do(program: str, refusal: str, tmp_path: Path) -> None:
    with pytest.raises(ProgramError, match=refusal):
        build.text_of(package_with(tmp_path, program), "bad", {"program": "bad"})


def test_a_program_may_use_the_standard_library_and_the_libraries(tmp_path: Path) -> None:
    folder = package_with(tmp_path, "import json\n\nfrom programs.runtime import say")
    text = build.text_of(folder, "bad", {"program": "bad"})
    ran = subprocess.run(
        [sys.executable, "-I", "-c", text], capture_output=True, text=True, check=False
    )
    assert ran.returncode == 0, ran.stderr

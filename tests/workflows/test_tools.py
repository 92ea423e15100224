"""The workstation tools: pinned once in mise.toml, equal to the pins they must match, and checked
by the scripts (scripts/_lib.sh) with a clear message; uv bootstrapped without the system pip."""

from __future__ import annotations

import re
import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest
import yaml

from config import pins
from homelab import engine

ROOT = engine.PROJECT_ROOT
LIB = ROOT / "scripts" / "_lib.sh"


def mise_tools() -> dict[str, str]:
    tools = tomllib.loads((ROOT / "mise.toml").read_text())["tools"]
    assert isinstance(tools, dict)
    return {str(k): str(v) for k, v in tools.items()}


def test_the_pinned_tools_match_the_versions_the_stack_uses() -> None:
    tools = mise_tools()
    sdk = re.search(r'"pulumi==([^"]+)"', (ROOT / "pyproject.toml").read_text())
    assert sdk is not None
    assert tools["pulumi"] == sdk.group(1)
    assert tools["talosctl"] == pins.TALOS_VERSION.removeprefix("v")
    assert tools["kubectl"] == pins.KUBERNETES_VERSION
    preview = yaml.safe_load((ROOT / ".github" / "workflows" / "preview.yml").read_text())
    setup_helm = [
        step
        for step in preview["jobs"]["render"]["steps"]
        if step.get("uses", "").startswith("azure/setup-helm@")
    ]
    assert [step["with"]["version"] for step in setup_helm] == [f"v{tools['helm']}"]


def _base_path(tmp_path: Path) -> str:
    """A PATH with only the utilities the scripts use, so no tool of this machine leaks in."""
    directory = tmp_path / "base-bin"
    directory.mkdir(exist_ok=True)
    for name in ("sh", "bash", "sed", "head", "mkdir", "cat", "chmod", "dirname", "rm"):
        found = shutil.which(name)
        assert found, name
        if not (directory / name).exists():
            (directory / name).symlink_to(found)
    return str(directory)


def _fake_tool(directory: Path, name: str, output: str) -> None:
    path = directory / name
    path.write_text(f"#!/bin/sh\nprintf '%s' '{output}'\n")
    path.chmod(0o755)


def _check(tool: str, need: str, bin_dir: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", "-c", f"source scripts/_lib.sh && check_tool {tool} {need} && echo checked"],
        cwd=ROOT,
        env={"PATH": f"{bin_dir}:{_base_path(bin_dir)}", "HOME": str(bin_dir)},
        capture_output=True,
        text=True,
        check=False,
    )


# What each tool prints for its version, with {version} for the version.
VERSION_OUTPUT = {
    "pulumi": "v{version}\n",
    # `kubectl version --client` prints "Client Version: v…" (as /usr/bin/kubectl 1.32 does here).
    "kubectl": "Client Version: v{version}\nKustomize Version: v5.7.1\n",
    # siderolabs/talos@v1.13.9:pkg/machinery/version/version.go versionTemplate, after
    # cmd/talosctl/cmd/talos/version.go prints "Client:".
    "talosctl": "Client:\n\tTag:         v{version}\n\tSHA:         abcdef0\n",
    "helm": "v{version}",
}


def _other(pin: str, minor_delta: int, patch: str = "0") -> str:
    major, minor, _ = pin.split(".")
    return f"{major}.{int(minor) + minor_delta}.{patch}"


@pytest.mark.parametrize("tool", list(VERSION_OUTPUT))
def test_a_tool_at_its_pin_passes_silently_and_another_patch_is_a_warning(
    tmp_path: Path, tool: str
) -> None:
    pin = mise_tools()[tool]
    _fake_tool(tmp_path, tool, VERSION_OUTPUT[tool].format(version=pin))
    result = _check(tool, "required", tmp_path)
    assert (result.returncode, result.stdout, result.stderr) == (0, "checked\n", "")
    other = _other(pin, 0, "999")
    _fake_tool(tmp_path, tool, VERSION_OUTPUT[tool].format(version=other))
    result = _check(tool, "required", tmp_path)
    assert result.returncode == 0
    assert result.stderr == (
        f"warning: {tool} {other} is on PATH but the project pins {pin} (mise.toml); "
        "`mise install` installs the pinned one\n"
    )


@pytest.mark.parametrize(
    ("tool", "minor_delta", "works"),
    [
        # Kubernetes' version skew policy: kubectl within one minor of the API server.
        ("kubectl", -1, True),
        ("kubectl", 1, True),
        ("kubectl", -2, False),
        ("kubectl", 2, False),
        # talosctl of the nodes' Talos minor or newer.
        ("talosctl", 1, True),
        ("talosctl", -1, False),
        # The others only warn.
        ("pulumi", -1, True),
        ("helm", -1, True),
    ],
)
def test_a_version_that_cannot_work_with_the_pin_stops_the_script(
    tmp_path: Path, tool: str, minor_delta: int, works: bool
) -> None:
    pin = mise_tools()[tool]
    found = _other(pin, minor_delta)
    _fake_tool(tmp_path, tool, VERSION_OUTPUT[tool].format(version=found))
    result = _check(tool, "required", tmp_path)
    assert result.returncode == (0 if works else 1), result.stderr
    if works:
        assert result.stderr.startswith(f"warning: {tool} {found} is on PATH")
    else:
        assert result.stderr.startswith(f"error: {tool} {found} is on PATH, but ")
        assert f"install {pin}" in result.stderr


def test_a_missing_required_tool_stops_the_script_and_an_optional_one_does_not(
    tmp_path: Path,
) -> None:
    result = _check("kubectl", "required", tmp_path)
    assert result.returncode == 1
    assert "error: kubectl is required but not on PATH" in result.stderr
    assert "mise install" in result.stderr
    result = _check("talosctl", "optional", tmp_path)
    assert (result.returncode, result.stdout) == (0, "checked\n")


# --- ./scripts/up and ./scripts/pulumi --------------------------------------------------------

FAKE_PULUMI = """#!/bin/sh
[ "$1" = version ] && printf 'v{version}\\n' && exit 0
echo "$PULUMI_BACKEND_URL $*" >> "{log}"
"""


def _scratch_project(tmp_path: Path, tools: dict[str, str]) -> tuple[Path, dict[str, str]]:
    """The scripts and mise.toml in an empty project, and an environment whose PATH has only the
    base utilities, a no-op uv and the given tools (name -> version) as fakes."""
    project = tmp_path / "project"
    shutil.copytree(ROOT / "scripts", project / "scripts")
    shutil.copyfile(ROOT / "mise.toml", project / "mise.toml")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "uv").write_text("#!/bin/sh\nexit 0\n")
    (bin_dir / "uv").chmod(0o755)
    for tool, version in tools.items():
        if tool == "pulumi":
            (bin_dir / tool).write_text(
                FAKE_PULUMI.format(version=version, log=tmp_path / "pulumi.log")
            )
            (bin_dir / tool).chmod(0o755)
        else:
            _fake_tool(bin_dir, tool, VERSION_OUTPUT[tool].format(version=version))
    env = {
        "PATH": f"{bin_dir}:{_base_path(tmp_path)}",
        "HOME": str(tmp_path),
        "XDG_STATE_HOME": str(tmp_path / "state"),
    }
    return project, env


def test_up_checks_every_tool_before_it_creates_anything(tmp_path: Path) -> None:
    pins_ = mise_tools()
    # talosctl is missing and kubectl too old: both named, and Pulumi never asked to act.
    project, env = _scratch_project(
        tmp_path, {"pulumi": pins_["pulumi"], "kubectl": _other(pins_["kubectl"], -2)}
    )
    result = subprocess.run(
        ["bash", "scripts/up", "homelab"], cwd=project, env=env, capture_output=True, text=True
    )
    assert result.returncode == 1
    assert "error: talosctl is required but not on PATH" in result.stderr
    assert f"error: kubectl {_other(pins_['kubectl'], -2)} is on PATH, but " in result.stderr
    assert "stopped before creating anything" in result.stderr
    assert not (tmp_path / "pulumi.log").exists()
    assert not (tmp_path / "state").exists()


def test_up_names_the_state_backend_before_and_after(tmp_path: Path) -> None:
    project, env = _scratch_project(
        tmp_path, {tool: mise_tools()[tool] for tool in ("pulumi", "kubectl", "talosctl")}
    )
    result = subprocess.run(
        ["bash", "scripts/up", "homelab"], cwd=project, env=env, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    backend = f"file://{tmp_path / 'state' / 'homelab-pulumi'}"
    said = f"Pulumi state: {backend} - keep it, and your passphrase, safe"
    assert result.stderr.count(said) == 2  # before and after, not once per pulumi call
    log = (tmp_path / "pulumi.log").read_text().splitlines()
    assert log == [
        f"{backend} stack select --create homelab --secrets-provider passphrase",
        f"{backend} up --stack homelab --policy-pack policies",
    ]
    # ./scripts/pulumi alone says it too, on stderr only.
    result = subprocess.run(
        ["bash", "scripts/pulumi", "stack", "ls"], cwd=project, env=env, capture_output=True,
        text=True,
    )  # fmt: skip
    assert (result.returncode, result.stdout) == (0, "")
    assert said in result.stderr


def _bootstrap(tmp_path: Path, python3: str) -> subprocess.CompletedProcess[str]:
    """ensure_uv in a scratch copy of the project root, with no uv and a fake python3."""
    project = tmp_path / "project"
    (project / "scripts").mkdir(parents=True)
    (project / "scripts" / "_lib.sh").write_text(LIB.read_text())
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "python3"
    fake.write_text(python3)
    fake.chmod(0o755)
    return subprocess.run(
        ["bash", "-c", "source scripts/_lib.sh && ensure_uv && command -v uv"],
        cwd=project,
        env={"PATH": f"{bin_dir}:{_base_path(tmp_path)}", "HOME": str(tmp_path)},
        capture_output=True,
        text=True,
        check=False,
    )


def test_uv_is_installed_into_a_project_virtualenv_not_the_system_python(tmp_path: Path) -> None:
    # A python3 whose venv module works: it makes .tools/bin/pip, which "installs" uv.
    python3 = (
        "#!/bin/sh\n"
        '[ "$1 $2" = "-m venv" ] || exit 3\n'
        'mkdir -p "$3/bin"\n'
        "cat > \"$3/bin/pip\" <<'PIP'\n"
        "#!/bin/sh\n"
        'echo "$@" > "$(dirname "$0")/pip-args"\n'
        'printf \'#!/bin/sh\\n\' > "$(dirname "$0")/uv"\n'
        'chmod +x "$(dirname "$0")/uv"\n'
        "PIP\n"
        'chmod +x "$3/bin/pip"\n'
    )
    result = _bootstrap(tmp_path, python3)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == str(tmp_path / "project" / ".tools" / "bin" / "uv")
    args = (tmp_path / "project" / ".tools" / "bin" / "pip-args").read_text().split()
    assert args[0] == "install"
    assert "uv==" + LIB.read_text().split('uv_requirement="uv==')[1].split('"')[0] in args


def test_without_the_venv_module_the_message_says_what_to_install(tmp_path: Path) -> None:
    result = _bootstrap(tmp_path, "#!/bin/sh\nexit 1\n")
    assert result.returncode == 1
    assert "sudo apt install python3-venv" in result.stderr
    assert "pipx install uv==" in result.stderr
    assert not (tmp_path / "project" / ".tools").exists()

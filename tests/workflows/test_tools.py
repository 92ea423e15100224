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


@pytest.mark.parametrize(
    ("tool", "output"),
    [
        ("pulumi", "v{pin}\n"),
        # `kubectl version --client` prints "Client Version: v…" (as /usr/bin/kubectl 1.32 does here).
        ("kubectl", "Client Version: v{pin}\nKustomize Version: v5.7.1\n"),
        # siderolabs/talos@v1.13.9:pkg/machinery/version/version.go versionTemplate, after
        # cmd/talosctl/cmd/talos/version.go prints "Client:".
        ("talosctl", "Client:\n\tTag:         v{pin}\n\tSHA:         abcdef0\n"),
        ("helm", "v{pin}"),
    ],
)
def test_a_tool_at_its_pin_passes_silently_and_another_version_is_named(
    tmp_path: Path, tool: str, output: str
) -> None:
    pin = mise_tools()[tool]
    _fake_tool(tmp_path, tool, output.format(pin=pin))
    result = _check(tool, "required", tmp_path)
    assert (result.returncode, result.stdout, result.stderr) == (0, "checked\n", "")
    _fake_tool(tmp_path, tool, output.format(pin="0.0.1"))
    result = _check(tool, "required", tmp_path)
    assert result.returncode == 0
    assert result.stderr == (
        f"warning: {tool} 0.0.1 is on PATH but the project pins {pin} (mise.toml); "
        "`mise install` installs the pinned one\n"
    )


def test_a_missing_required_tool_stops_the_script_and_an_optional_one_does_not(
    tmp_path: Path,
) -> None:
    result = _check("kubectl", "required", tmp_path)
    assert result.returncode == 1
    assert "error: kubectl is required but not on PATH" in result.stderr
    assert "mise install" in result.stderr
    result = _check("talosctl", "optional", tmp_path)
    assert (result.returncode, result.stdout) == (0, "checked\n")


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

"""Chart manifests in the render (`render --charts`): `helm template` of each release with its
values, tested on a chart of this project's own; without helm the render says so and completes."""

from __future__ import annotations

import io
import itertools
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from config import pins
from homelab import cli, render
from tests.harness import PROJECT_ROOT, yaml_documents
from tests.synthetic import record, render_of

CHARTS = PROJECT_ROOT / "tests" / "fixtures" / "charts"
TINY = CHARTS / "tiny"
RELEASE = "kubernetes:helm.sh/v3:Release"


def fake_helm(directory: Path) -> Path:
    """`helm` on a PATH of its own: tests/fixtures/charts/fake_helm.py under this Python."""
    directory.mkdir(parents=True, exist_ok=True)
    helm = directory / "helm"
    helm.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{CHARTS / "fake_helm.py"}" "$@"\n')
    helm.chmod(0o755)
    return helm


def tiny_release(**inputs: Any) -> Any:
    return record(
        RELEASE,
        "tiny",
        inputs={
            "name": "greeter",
            "chart": str(TINY),
            "namespace": "demo",
            "values": {"greeting": "hi from the values"},
            **inputs,
        },
    )


def test_each_release_is_templated_with_its_values_into_charts(tmp_path: Path) -> None:
    result = render.template_charts(render_of([tiny_release()]), helm=str(fake_helm(tmp_path)))
    assert result.skipped is None
    assert list(result.files) == ["charts/greeter.yaml"]
    text = result.files["charts/greeter.yaml"]
    assert text.startswith(f"# helm template of chart {TINY} ")
    (config_map,) = yaml_documents(text)
    assert config_map["metadata"] == {"name": "greeter-greeting", "namespace": "demo"}
    # The release's values win over the chart's defaults, and the pinned Kubernetes is what the
    # templates see as Capabilities.KubeVersion.
    assert config_map["data"] == {
        "greeting": "hi from the values",
        "kubeVersion": f"v{pins.KUBERNETES_VERSION}",
    }


def test_the_command_names_the_pinned_repository_version_and_namespace(tmp_path: Path) -> None:
    calls: list[list[str]] = []

    def run(command: list[str], **_: Any) -> subprocess.CompletedProcess[str]:
        calls.append(command)
        return subprocess.CompletedProcess(command, 0, stdout="---\n", stderr="")

    release = tiny_release(
        chart="traefik",
        version=pins.TRAEFIK_CHART_VERSION,
        repositoryOpts={"repo": pins.TRAEFIK_CHART_REPO},
    )
    render.template_charts(render_of([release]), helm="/opt/helm", run=run)
    (command,) = calls
    assert command[:4] == ["/opt/helm", "template", "greeter", "traefik"]
    flags = dict(itertools.pairwise(command[4:]))
    assert flags["--repo"] == pins.TRAEFIK_CHART_REPO
    assert flags["--version"] == pins.TRAEFIK_CHART_VERSION
    assert flags["--namespace"] == "demo"
    assert "--include-crds" in command


def test_a_secret_value_reaches_helm_only_redacted(tmp_path: Path) -> None:
    release = record(
        RELEASE,
        "tiny",
        inputs={"name": "greeter", "chart": str(TINY), "namespace": "demo",
                "values": {"greeting": "SENTINEL-value"}},
        secret_paths=["values.greeting"],
    )  # fmt: skip
    result = render.template_charts(render_of([release]), helm=str(fake_helm(tmp_path)))
    text = result.files["charts/greeter.yaml"]
    assert "SENTINEL" not in text
    assert f"greeting: {render.SECRET}" in text


@pytest.mark.stack_files  # the command renders the project's own stack file
def test_without_helm_the_charts_are_skipped_and_the_render_completes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    result = render.template_charts(render_of([tiny_release()]))
    assert result == render.ChartTemplates({}, "helm is not on PATH")
    out = io.StringIO()
    code = cli.main(["render", "--charts", "--out", str(tmp_path / "out")], out=out)
    assert code == 0
    assert "Charts not templated: helm is not on PATH (the rest is complete)" in out.getvalue()
    assert (tmp_path / "out" / "SUMMARY.md").is_file()
    assert not (tmp_path / "out" / "charts").exists()


def test_a_chart_helm_cannot_template_is_an_error_naming_it(tmp_path: Path) -> None:
    release = tiny_release(chart="traefik", repositoryOpts={"repo": "https://example.invalid"})
    with pytest.raises(render.RenderOutputError, match=r"helm template of traefik .*not a valid"):
        render.template_charts(render_of([release]), helm=str(fake_helm(tmp_path)))


def test_the_fake_refuses_a_flag_helm_does_not_have(tmp_path: Path) -> None:
    # Guards the tests above: the stand-in rejects what helm would reject.
    result = subprocess.run(
        [str(fake_helm(tmp_path)), "template", "x", str(TINY), "--valuez", "v.yaml"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 1
    assert result.stderr.startswith("Error: unknown flag")


def test_the_golden_render_has_no_charts() -> None:
    err = io.StringIO()
    assert cli.main(["render", "--update-golden", "--charts"], out=io.StringIO(), err=err) == 2
    assert "no charts" in err.getvalue()
    assert not (render.GOLDEN_DIR / "charts").exists()
    assert yaml.safe_load((TINY / "Chart.yaml").read_text())["name"] == "tiny"

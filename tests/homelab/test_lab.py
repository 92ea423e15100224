"""Lab environments: the lab CLI (Automation API faked at the workspace boundary), and labs that
are recreated identically and leave nothing behind."""

from __future__ import annotations

import base64
import io
import json
import shutil
import subprocess
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pulumi.automation as auto
import pytest

from config.lab_guard import load_stack_file
from config.loader import validate_config
from config.model import HomelabConfig
from homelab import cli, engine, lab
from homelab.engine import Render
from tests.harness import (
    committed_raw_config,
    committed_render,
    fixture_stack_file,
    stack_raw_config,
)

TEMPLATE = fixture_stack_file("lab")
CONFIGURATION_APPLY = "talos:machine/configurationApply:ConfigurationApply"

# --- fakes at the workspace boundary ---------------------------------------------------------


@dataclass
class FakeWorkspace:
    calls: list[str]
    stacks: list[auto.StackSummary] = field(default_factory=list)

    def remove_stack(
        self, stack_name: str, force: bool | None = None, preserve_config: bool | None = None
    ) -> None:
        self.calls.append(f"remove_stack {stack_name} preserve_config={preserve_config}")

    def list_stacks(self) -> list[auto.StackSummary]:
        self.calls.append("list_stacks")
        return self.stacks


@dataclass
class FakeStack:
    name: str
    calls: list[str]
    workspace: FakeWorkspace
    config: dict[str, Any] = field(default_factory=dict)
    fail_with: Exception | None = None
    stack_outputs: dict[str, auto.OutputValue] = field(default_factory=dict)
    state: list[dict[str, str]] = field(default_factory=list)

    def get_all_config(self) -> dict[str, Any]:
        return dict(self.config)

    def outputs(self) -> dict[str, auto.OutputValue]:
        self.calls.append("outputs")
        return dict(self.stack_outputs)

    def export_stack(self) -> auto.Deployment:
        self.calls.append("export_stack")
        return auto.Deployment(version=3, deployment={"resources": list(self.state)})

    def set_config(self, key: str, value: auto.ConfigValue) -> None:
        self.calls.append(f"set_config {key} secret={value.secret}")
        self.config[key] = value

    def remove_config(self, key: str) -> None:
        self.calls.append(f"remove_config {key}")
        self.config.pop(key)

    def _run(self, op: str, on_output: Callable[[str], None] | None) -> None:
        self.calls.append(op)
        assert on_output is not None, "progress must be streamed"
        on_output(f"{op} progress line")
        if self.fail_with is not None:
            raise self.fail_with

    def up(self, on_output: Callable[[str], None] | None = None, **_: Any) -> Any:
        self._run("up", on_output)
        return SimpleNamespace(summary=SimpleNamespace(resource_changes={"create": 12}))

    def preview(self, on_output: Callable[[str], None] | None = None, **_: Any) -> Any:
        self._run("preview", on_output)
        return SimpleNamespace(change_summary={"create": 12})

    def destroy(self, on_output: Callable[[str], None] | None = None, **_: Any) -> Any:
        self._run("destroy", on_output)
        return SimpleNamespace(summary=SimpleNamespace(resource_changes={"delete": 12}))


@dataclass
class Automation:
    """Records every Automation API call the lab CLI makes, in order."""

    calls: list[str] = field(default_factory=list)
    config: dict[str, Any] = field(default_factory=lambda: {lab.DNS_TOKEN_KEY: "stored"})
    fail_with: Exception | None = None
    options: list[auto.LocalWorkspaceOptions] = field(default_factory=list)
    stacks: list[auto.StackSummary] = field(default_factory=list)
    outputs: dict[str, auto.OutputValue] = field(default_factory=dict)
    state: list[dict[str, str]] = field(default_factory=list)

    def _stack(self, name: str) -> FakeStack:
        workspace = FakeWorkspace(self.calls, self.stacks)
        return FakeStack(
            name, self.calls, workspace, self.config, self.fail_with, self.outputs, self.state
        )

    def create_or_select_stack(
        self, stack_name: str, work_dir: str | None = None, opts: Any = None, **_: Any
    ) -> FakeStack:
        self.calls.append(f"create_or_select_stack {stack_name} work_dir={work_dir}")
        self.options.append(opts)
        return self._stack(stack_name)

    def select_stack(
        self, stack_name: str, work_dir: str | None = None, opts: Any = None, **_: Any
    ) -> FakeStack:
        self.calls.append(f"select_stack {stack_name} work_dir={work_dir}")
        self.options.append(opts)
        return self._stack(stack_name)

    def local_workspace(self, **kwargs: Any) -> FakeWorkspace:
        self.calls.append("LocalWorkspace")
        return FakeWorkspace(self.calls, self.stacks)


@pytest.fixture
def automation(monkeypatch: pytest.MonkeyPatch) -> Automation:
    fake = Automation()
    monkeypatch.setattr(auto, "create_or_select_stack", fake.create_or_select_stack)
    monkeypatch.setattr(auto, "select_stack", fake.select_stack)
    monkeypatch.setattr(auto, "LocalWorkspace", fake.local_workspace)
    monkeypatch.setattr(shutil, "which", lambda name: f"/usr/local/bin/{name}")
    return fake


@dataclass
class Command:
    argv: list[str]
    stdin: str | None
    env: dict[str, str]
    kubeconfig: str | None  # the KUBECONFIG file's content and mode while the command ran
    kubeconfig_mode: int | None


@dataclass
class Commands:
    """Workstation commands the lab CLI runs (kubectl, `pulumi config set`), answered by `reply`."""

    calls: list[str]
    seen: list[Command] = field(default_factory=list)
    replies: dict[str, subprocess.CompletedProcess[str]] = field(default_factory=dict)

    def __call__(
        self, argv: list[str], *, stdin: str | None, env: Mapping[str, str], cwd: Path
    ) -> subprocess.CompletedProcess[str]:
        path = env.get("KUBECONFIG")
        content = mode = None
        if path is not None and Path(path).exists():
            content, mode = Path(path).read_text(), Path(path).stat().st_mode & 0o777
        self.seen.append(Command(list(argv), stdin, dict(env), content, mode))
        self.calls.append(argv[0])
        return self.replies.get(argv[0], subprocess.CompletedProcess(argv, 0, "", ""))


@pytest.fixture
def commands(monkeypatch: pytest.MonkeyPatch, automation: Automation) -> Commands:
    fake = Commands(automation.calls)
    monkeypatch.setattr(lab, "_run_command", fake)
    return fake


@dataclass
class Run:
    code: int
    out: str
    err: str


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A project root holding the lab template and the homelab's stack file."""
    root = tmp_path / "project"
    root.mkdir()
    shutil.copyfile(TEMPLATE, root / "Pulumi.lab.yaml")
    shutil.copyfile(fixture_stack_file("homelab"), root / "Pulumi.homelab.yaml")
    return root


def run(project: Path, *argv: str, env: dict[str, str] | None = None, stdin: str = "") -> Run:
    out, err = io.StringIO(), io.StringIO()
    environment = {
        "PULUMI_CONFIG_PASSPHRASE": "test-passphrase",
        "XDG_STATE_HOME": str(project.parent / "state"),
    }
    environment.update(env or {})
    context = lab.Lab(root=project, env=environment, out=out, stdin=io.StringIO(stdin))
    code = cli.main(["lab", *argv], out=out, err=err, lab_context=context)
    return Run(code, out.getvalue(), err.getvalue())


# --- lab up / preview ------------------------------------------------------------------------


def test_up_creates_the_config_from_the_template_and_streams_progress(
    project: Path, automation: Automation
) -> None:
    result = run(project, "up", "demo")
    assert result.code == 0, result.err
    assert (project / "Pulumi.demo.yaml").read_bytes() == TEMPLATE.read_bytes()
    assert automation.calls == [
        "LocalWorkspace",
        "list_stacks",
        f"create_or_select_stack demo work_dir={project}",
        "up",
    ]
    assert "up progress line" in result.out
    assert "Lab 'demo' is up: 12 create." in result.out


def test_up_uses_the_same_backend_and_secrets_provider_as_scripts_up(
    project: Path, automation: Automation
) -> None:
    assert run(project, "up", "demo").code == 0
    (options,) = automation.options  # the create_or_select_stack call
    state = project.parent / "state" / "homelab-pulumi"
    assert options.env_vars == {"PULUMI_BACKEND_URL": f"file://{state}"}
    assert state.is_dir()
    assert options.secrets_provider == "passphrase"
    assert options.work_dir == str(project)


def test_an_explicit_backend_url_is_left_to_the_cli(project: Path, automation: Automation) -> None:
    assert run(project, "up", "demo", env={"PULUMI_BACKEND_URL": "s3://state"}).code == 0
    assert automation.options[0].env_vars == {}


def test_up_keeps_an_existing_lab_config(project: Path, automation: Automation) -> None:
    mine = TEMPLATE.read_text().replace("192.168.0.51", "192.168.0.61")
    (project / "Pulumi.demo.yaml").write_text(mine)
    assert run(project, "up", "demo").code == 0
    assert (project / "Pulumi.demo.yaml").read_text() == mine


def test_up_stores_the_dns_token_from_the_environment_as_a_secret(
    project: Path, automation: Automation
) -> None:
    automation.config.clear()
    result = run(project, "up", "demo", env={lab.DNS_TOKEN_ENV: "cf-token"})
    assert result.code == 0, result.err
    assert f"set_config {lab.DNS_TOKEN_KEY} secret=True" in automation.calls
    assert automation.calls.index(f"set_config {lab.DNS_TOKEN_KEY} secret=True") < (
        automation.calls.index("up")
    )
    assert "cf-token" not in result.out


def test_up_without_a_dns_token_stops_before_touching_anything(
    project: Path, automation: Automation
) -> None:
    automation.config.clear()
    result = run(project, "up", "demo")
    assert result.code == 2
    assert lab.DNS_TOKEN_ENV in result.err
    assert "up" not in automation.calls


def test_preview_previews_and_does_not_update(project: Path, automation: Automation) -> None:
    result = run(project, "preview", "demo")
    assert result.code == 0, result.err
    assert automation.calls[-1] == "preview"
    assert "up" not in automation.calls


def test_up_of_the_homelab_is_refused(project: Path, automation: Automation) -> None:
    result = run(project, "up", "homelab")
    assert result.code == 2
    assert "./scripts/up" in result.err
    assert automation.calls == []


def test_up_of_a_stack_whose_config_says_homelab_is_refused(
    project: Path, automation: Automation
) -> None:
    shutil.copyfile(project / "Pulumi.homelab.yaml", project / "Pulumi.prod.yaml")
    result = run(project, "up", "prod")
    assert result.code == 2
    assert "environment 'homelab'" in result.err
    assert automation.calls == []


@pytest.mark.parametrize("name", ["Lab", "lab_1", "lab-", "a" * 64, "lab/../x"])
def test_an_invalid_lab_name_is_refused(project: Path, automation: Automation, name: str) -> None:
    result = run(project, "up", name)
    assert result.code == 2
    assert "not valid" in result.err
    assert automation.calls == []


def test_a_copy_of_the_template_is_refused_while_the_template_lab_runs(
    project: Path, automation: Automation
) -> None:
    automation.stacks = [auto.StackSummary(name="lab", current=False, resource_count=12)]
    result = run(project, "up", "demo")
    assert result.code == 2
    assert "collides with a running lab" in result.err
    assert "lab 'lab'" in result.err
    assert not any(c.startswith("create_or_select_stack") for c in automation.calls)


def test_a_lab_with_its_own_addresses_runs_beside_another(
    project: Path, automation: Automation
) -> None:
    automation.stacks = [auto.StackSummary(name="lab", current=False, resource_count=12)]
    own = (
        TEMPLATE.read_text()
        .replace("192.168.0.5", "192.168.0.6")  # VIP and nodes
        .replace("192.168.0.240-192.168.0.249", "192.168.0.200-192.168.0.209")
        .replace("traefikIp: 192.168.0.240", "traefikIp: 192.168.0.200")
        .replace("stunIp: 192.168.0.241", "stunIp: 192.168.0.201")
        .replace("name: lab\n", "name: lab2\n")
        .replace("lab-cp-", "lab2-cp-")
        .replace("lab.sarma.love", "lab2.sarma.love")
    )
    (project / "Pulumi.lab2.yaml").write_text(own)
    # A valid config, so the check below really compared the two labs.
    assert isinstance(load_stack_file(project / "Pulumi.lab2.yaml"), HomelabConfig)
    result = run(project, "up", "lab2")
    assert result.code == 0, result.err
    assert automation.calls[-1] == "up"


# --- lab destroy -----------------------------------------------------------------------------


def test_destroy_destroys_then_removes_the_stack_and_keeps_its_config(
    project: Path, automation: Automation, commands: Commands
) -> None:
    shutil.copyfile(TEMPLATE, project / "Pulumi.demo.yaml")
    result = run(project, "destroy", "demo", "--yes")
    assert result.code == 0, result.err
    assert automation.calls == [
        f"select_stack demo work_dir={project}",
        "outputs",  # no kubeconfig output: nothing to save
        "destroy",
        "remove_stack demo preserve_config=True",
    ]
    assert "next `lab up` orders a new certificate" in result.out
    assert (project / "Pulumi.demo.yaml").exists()
    assert "destroy progress line" in result.out


def test_destroy_of_the_homelab_is_refused_without_the_explicit_flag(
    project: Path, automation: Automation
) -> None:
    result = run(project, "destroy", "homelab")
    assert result.code == 2
    assert "--force-homelab" in result.err
    assert "Traceback" not in result.err
    assert automation.calls == []


def test_destroy_of_any_stack_configured_as_the_homelab_is_refused(
    project: Path, automation: Automation
) -> None:
    shutil.copyfile(project / "Pulumi.homelab.yaml", project / "Pulumi.prod.yaml")
    result = run(project, "destroy", "prod")
    assert result.code == 2
    assert "--force-homelab" in result.err
    assert automation.calls == []


def test_forced_destroy_of_the_homelab_destroys_but_keeps_the_stack(
    project: Path, automation: Automation, commands: Commands
) -> None:
    result = run(project, "destroy", "homelab", "--force-homelab", "--yes")
    assert result.code == 0, result.err
    assert automation.calls == [f"select_stack homelab work_dir={project}", "outputs", "destroy"]


def test_destroy_of_a_stack_without_a_config_file_is_refused(
    project: Path, automation: Automation
) -> None:
    result = run(project, "destroy", "ghost")
    assert result.code == 2
    assert "cannot tell whether 'ghost' is a lab" in result.err
    assert automation.calls == []


def test_a_failed_destroy_keeps_the_stack_and_exits_1(
    project: Path, automation: Automation, commands: Commands
) -> None:
    shutil.copyfile(TEMPLATE, project / "Pulumi.demo.yaml")
    automation.fail_with = auto.CommandError(
        auto.CommandResult(
            stdout="", stderr="warning: x\nerror: node 192.168.0.51 timed out\n", code=255
        )
    )
    result = run(project, "destroy", "demo", "--yes")
    assert result.code == 1
    assert result.err == "error: the Pulumi operation failed: error: node 192.168.0.51 timed out\n"
    assert not any(c.startswith("remove_stack") for c in automation.calls)


# --- keeping the certificate across destroy/recreate ------------------------------------------

KUBECONFIG = (
    "apiVersion: v1\nkind: Config\nusers: [{name: admin, user: {client-key-data: SWEEP-kc}}]\n"
)
KEY_PEM = "-----BEGIN EC PRIVATE KEY-----\nSWEEP-lab-private-key\n-----END EC PRIVATE KEY-----\n"
CERT_PEM = "-----BEGIN CERTIFICATE-----\nSWEEP-lab-certificate\n-----END CERTIFICATE-----\n"


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def issued_secret() -> str:
    """`kubectl get secret wildcard-tls -o json` of a Secret cert-manager v1.21.1 issued
    (pkg/controller/certificates/issuing/internal/secret.go setValues: these annotations)."""
    return json.dumps(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "type": "kubernetes.io/tls",
            "metadata": {
                "name": "wildcard-tls",
                "namespace": "cert-manager",
                "annotations": {
                    "cert-manager.io/alt-names": "*.lab.sarma.love,lab.sarma.love",
                    "cert-manager.io/certificate-name": "wildcard",
                    "cert-manager.io/common-name": "lab.sarma.love",
                    "cert-manager.io/issuer-group": "cert-manager.io",
                    "cert-manager.io/issuer-kind": "ClusterIssuer",
                    "cert-manager.io/issuer-name": "letsencrypt-production",
                    "reflector.v1.k8s.emberstack.com/reflection-allowed": "true",
                },
                "labels": {"controller.cert-manager.io/fao": "true"},
            },
            "data": {"tls.crt": b64(CERT_PEM), "tls.key": b64(KEY_PEM)},
        }
    )


def test_destroy_saves_the_issued_certificate_as_a_secret_before_destroying(
    project: Path, automation: Automation, commands: Commands
) -> None:
    """pulumi/pulumi (pkg/cmd/pulumi/config/config_set.go `run`): with no value argument and a
    stdin that is not a terminal, `config set` reads the value from stdin, so the private key
    never appears in a process's argv."""
    shutil.copyfile(TEMPLATE, project / "Pulumi.demo.yaml")
    automation.outputs = {"kubeconfig": auto.OutputValue(value=KUBECONFIG, secret=True)}
    commands.replies["kubectl"] = subprocess.CompletedProcess([], 0, issued_secret(), "")
    result = run(project, "destroy", "demo", "--yes")
    assert result.code == 0, result.err
    assert automation.calls.index("pulumi") < automation.calls.index("destroy")
    kubectl, config_set = commands.seen
    assert kubectl.argv == [
        "kubectl",
        "-n",
        "cert-manager",
        "get",
        "secret",
        "wildcard-tls",
        "-o",
        "json",
    ]
    # The kubeconfig reached kubectl only as an owner-only file, gone afterwards.
    assert (kubectl.kubeconfig, kubectl.kubeconfig_mode) == (KUBECONFIG, 0o600)
    assert not Path(kubectl.env["KUBECONFIG"]).exists()
    assert config_set.argv == [
        "pulumi",
        "config",
        "set",
        "--secret",
        lab.CERTIFICATE_KEY,
        "--stack",
        "demo",
    ]
    assert config_set.env["PULUMI_CONFIG_PASSPHRASE"] == "test-passphrase"
    assert config_set.env["PULUMI_BACKEND_URL"].startswith("file://")
    stored = json.loads(config_set.stdin or "")
    assert stored == {
        "annotations": {
            "cert-manager.io/certificate-name": "wildcard",
            "cert-manager.io/issuer-group": "cert-manager.io",
            "cert-manager.io/issuer-kind": "ClusterIssuer",
            "cert-manager.io/issuer-name": "letsencrypt-production",
        },
        "tls.crt": b64(CERT_PEM),
        "tls.key": b64(KEY_PEM),
    }
    # What is stored is what the loader accepts for homelab:wildcardCertificate.
    raw = {**stack_raw_config("lab"), "wildcardCertificate": config_set.stdin}
    assert validate_config(raw).saved_certificate is not None
    for secret in ("SWEEP-kc", KEY_PEM, b64(KEY_PEM)):
        assert secret not in result.out + result.err
        assert not any(secret in " ".join(c.argv) for c in commands.seen)
    assert "Saved the wildcard certificate" in result.out


def test_a_certificate_that_cannot_be_read_does_not_stop_the_destroy(
    project: Path, automation: Automation, commands: Commands
) -> None:
    shutil.copyfile(TEMPLATE, project / "Pulumi.demo.yaml")
    automation.outputs = {"kubeconfig": auto.OutputValue(value=KUBECONFIG, secret=True)}
    commands.replies["kubectl"] = subprocess.CompletedProcess(
        [], 1, "", 'Error from server (NotFound): secrets "wildcard-tls" not found\n'
    )
    result = run(project, "destroy", "demo", "--yes")
    assert result.code == 0, result.err
    assert [c.argv[0] for c in commands.seen] == ["kubectl"]  # nothing stored
    assert "not found" in result.out
    assert "orders a new certificate" in result.out
    assert automation.calls[-1] == "remove_stack demo preserve_config=True"


def test_unreadable_stack_outputs_do_not_stop_the_destroy(
    project: Path, automation: Automation, commands: Commands, monkeypatch: pytest.MonkeyPatch
) -> None:
    shutil.copyfile(TEMPLATE, project / "Pulumi.demo.yaml")

    def broken(self: FakeStack) -> dict[str, auto.OutputValue]:
        raise auto.CommandError(
            auto.CommandResult(stdout="", stderr="error: no outputs\n", code=255)
        )

    monkeypatch.setattr(FakeStack, "outputs", broken)
    result = run(project, "destroy", "demo", "--yes")
    assert result.code == 0, result.err
    assert commands.seen == []
    assert "Could not read the stack outputs (error: no outputs)" in result.out
    assert "destroy" in automation.calls


def test_a_secret_cert_manager_has_not_filled_is_not_saved() -> None:
    empty = json.loads(issued_secret())
    empty["data"] = {}
    with pytest.raises(ValueError, match=r"tls\.crt"):
        lab.saved_certificate_from_secret(empty)


def test_up_says_it_reuses_a_saved_certificate(
    project: Path, automation: Automation, commands: Commands
) -> None:
    automation.config[lab.CERTIFICATE_KEY] = auto.ConfigValue(value="(encrypted)", secret=True)
    result = run(project, "up", "demo")
    assert result.code == 0, result.err
    assert "Reusing the wildcard certificate" in result.out


def test_a_running_lab_drops_the_saved_copy_instead_of_seeding_over_its_secret(
    project: Path, automation: Automation, commands: Commands
) -> None:
    """A second `up` of a running lab (or one after a destroy that failed once the certificate
    was saved) must not create the seed over the Secret the cluster already has; the seed is
    `retain_on_delete`, so dropping it from config leaves the Secret to cert-manager."""
    automation.stacks = [auto.StackSummary(name="demo", current=True, resource_count=140)]
    automation.config[lab.CERTIFICATE_KEY] = auto.ConfigValue(value="(encrypted)", secret=True)
    # An `up` that failed before the Certificate existed keeps the copy: nothing to collide with.
    early = run(project, "up", "demo")
    assert early.code == 0, early.err
    assert "Reusing the wildcard certificate" in early.out
    assert lab.CERTIFICATE_KEY in automation.config
    automation.state.append(
        {
            "urn": "urn:pulumi:demo::homelab::homelab:platform:CertManager$"
            "kubernetes:cert-manager.io/v1:Certificate::cert-manager-wildcard"
        }
    )
    automation.calls.clear()
    result = run(project, "up", "demo")
    assert result.code == 0, result.err
    assert automation.calls.index(f"remove_config {lab.CERTIFICATE_KEY}") < (
        automation.calls.index("up")
    )
    assert "Reusing" not in result.out
    automation.config[lab.CERTIFICATE_KEY] = auto.ConfigValue(value="(encrypted)", secret=True)
    automation.calls.clear()
    preview = run(project, "preview", "demo")  # a preview changes no config
    assert preview.code == 0, preview.err
    assert not any(c.startswith("remove_config") for c in automation.calls)
    assert lab.CERTIFICATE_KEY in automation.config


def certificate_timeout() -> auto.CommandError:
    """How pulumi-kubernetes reports the await timeout (pulumi/pulumi-kubernetes@v4.32.0:
    provider/pkg/provider/provider.go Create, "was successfully created, but ... failed to fully
    initialize or become live"; await/internal/awaiter.go: "timed out waiting for the
    condition")."""
    urn = (
        "urn:pulumi:demo::homelab::homelab:platform:CertManager$"
        "kubernetes:cert-manager.io/v1:Certificate::cert-manager-wildcard"
    )
    stdout = (
        "Diagnostics:\n  kubernetes:cert-manager.io/v1:Certificate (cert-manager-wildcard):\n"
        f'    error: resource "{urn}" was successfully created, but the Kubernetes API server '
        "reported that it failed to fully initialize or become live: timed out waiting for the "
        "condition\n"
    )
    return auto.CommandError(
        auto.CommandResult(stdout=stdout, stderr="error: update failed\n", code=255)
    )


def test_an_up_that_fails_at_the_certificate_names_it_and_the_dns01_solver(
    project: Path, automation: Automation, commands: Commands
) -> None:
    automation.fail_with = certificate_timeout()
    result = run(project, "up", "demo")
    assert result.code == 1
    assert result.err.count("\n") == 1
    assert "Certificate cert-manager/wildcard did not become Ready within 900 s" in result.err
    assert "DNS-01 via cloudflare in zone sarma.love" in result.err
    assert "kubectl -n cert-manager describe challenges" in result.err


def test_other_failures_keep_the_cli_last_line(
    project: Path, automation: Automation, commands: Commands
) -> None:
    automation.fail_with = auto.CommandError(
        auto.CommandResult(stdout="", stderr="error: node 192.168.0.51 timed out\n", code=255)
    )
    result = run(project, "up", "demo")
    assert result.code == 1
    assert result.err == "error: the Pulumi operation failed: error: node 192.168.0.51 timed out\n"


def test_destroy_asks_for_the_stack_name_and_destroys_only_when_it_is_typed(
    project: Path, automation: Automation, commands: Commands
) -> None:
    shutil.copyfile(TEMPLATE, project / "Pulumi.demo.yaml")
    result = run(project, "destroy", "demo", stdin="demo\n")
    assert result.code == 0, result.err
    assert "Type 'demo' to confirm" in result.out
    assert "Talos nodes are reset" in result.out
    assert "destroy" in automation.calls


@pytest.mark.parametrize("answer", ["", "y\n", "lab\n"])
def test_destroy_without_the_typed_name_destroys_nothing(
    project: Path, automation: Automation, commands: Commands, answer: str
) -> None:
    shutil.copyfile(TEMPLATE, project / "Pulumi.demo.yaml")
    result = run(project, "destroy", "demo", stdin=answer)
    assert result.code == 2
    assert "nothing was destroyed" in result.err
    assert "--yes" in result.err
    assert not any(c in ("destroy",) or c.startswith("select_stack") for c in automation.calls)


# --- prerequisites ---------------------------------------------------------------------------


def test_a_missing_pulumi_cli_is_one_line_and_exit_2(
    project: Path, automation: Automation, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(shutil, "which", lambda name: None)
    for argv in (["up", "demo"], ["preview", "demo"]):
        result = run(project, *argv)
        assert result.code == 2
        assert result.err.count("\n") == 1
        assert "Pulumi CLI is not installed" in result.err
    assert automation.calls == []
    assert not (project / "Pulumi.demo.yaml").exists()


def test_the_sdk_not_finding_the_cli_is_the_same_clear_error(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # `which` finds something, but the Automation API cannot run it (what it raises, verified
    # with pulumi 3.272 on a machine without the CLI).
    monkeypatch.setattr(shutil, "which", lambda name: "/stale/pulumi")

    def missing(*args: Any, **kwargs: Any) -> Any:
        raise FileNotFoundError(2, "No such file or directory", "pulumi")

    monkeypatch.setattr(auto, "create_or_select_stack", missing)
    result = run(project, "up", "demo")
    assert result.code == 2
    assert result.err == f"error: {lab.MISSING_CLI}\n"


def test_the_real_sdk_raises_file_not_found_without_the_cli(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Guards the fake above: with no `pulumi` on PATH the SDK raises FileNotFoundError.
    monkeypatch.setenv("PATH", str(project))
    with pytest.raises(FileNotFoundError):
        auto.LocalWorkspace(work_dir=str(project))


def test_a_missing_passphrase_is_refused_before_any_pulumi_call(
    project: Path, automation: Automation
) -> None:
    result = run(project, "up", "demo", env={"PULUMI_CONFIG_PASSPHRASE": ""})
    assert result.code == 2
    assert "PULUMI_CONFIG_PASSPHRASE" in result.err
    assert automation.calls == []


# --- lab list --------------------------------------------------------------------------------


def test_list_shows_stacks_and_stack_files_with_their_environment(
    project: Path, automation: Automation
) -> None:
    automation.stacks = [
        auto.StackSummary(name="homelab", current=False, resource_count=140),
        auto.StackSummary(name="organization/homelab/demo", current=True, resource_count=12),
    ]
    shutil.copyfile(TEMPLATE, project / "Pulumi.demo.yaml")
    result = run(project, "list")
    assert result.code == 0, result.err
    rows = [line.split() for line in result.out.splitlines()]
    assert rows[0] == ["NAME", "ENVIRONMENT", "STATE", "RESOURCES"]
    assert rows[1:] == [
        ["demo", "lab", "deployed", "12"],
        ["homelab", "homelab", "deployed", "140"],
        ["lab", "lab", "not", "created"],
    ]


def test_list_without_the_pulumi_cli_shows_the_stack_files(
    project: Path, automation: Automation, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(shutil, "which", lambda name: None)
    result = run(project, "list")
    assert result.code == 0, result.err
    lines = result.out.splitlines()
    assert [line.split() for line in lines[1:3]] == [
        ["homelab", "homelab", "unknown"],
        ["lab", "lab", "unknown"],
    ]
    assert "the Pulumi CLI is not on PATH" in lines[-1]
    assert automation.calls == []


# --- recreating a lab ------------------------------------------------------------------------


def _identities(render: Render) -> set[tuple[str, str, str]]:
    return {(r.type, r.name, r.urn) for r in render.resources}


@pytest.mark.stack_files
def test_rendering_the_lab_twice_creates_the_same_resources_with_the_same_names() -> None:
    first, second = engine.render("lab"), engine.render("lab")
    assert first.resources
    assert _identities(first) == _identities(second)
    assert first.fingerprint() == second.fingerprint()


@pytest.mark.stack_files
def test_resource_names_do_not_depend_on_the_lab_stack_name() -> None:
    config, secret_keys = engine.stack_config("lab")
    one = engine.render("lab", config=config, secret_keys=secret_keys)
    two = engine.render("lab-2", config=config, secret_keys=secret_keys)
    assert {(r.type, r.name) for r in one.resources} == {(r.type, r.name) for r in two.resources}


@pytest.mark.stack_files
def test_a_lab_adopts_reads_and_protects_nothing_so_destroy_leaves_nothing() -> None:
    render = committed_render("lab")
    assert render.reads == []
    assert [r.name for r in render.resources if r.import_id] == []
    assert [r.name for r in render.resources if r.protect] == []
    assert [r.name for r in render.resources if r.retain_on_delete] == []
    # Talos nodes are wiped on destroy (pulumi-talos on_destroy; peers.md "trip over" 9).
    for apply in render.by_type(CONFIGURATION_APPLY):
        assert apply.inputs["onDestroy"]["reset"] is True, apply.name


@pytest.mark.stack_files
def test_the_lab_template_is_a_throwaway_environment() -> None:
    config = validate_config(committed_raw_config("lab"))
    assert config.lifecycle.is_lab
    assert config.lifecycle.protect_stateful is False
    assert config.lifecycle.reset_on_destroy is True
    # Production: devices and the router trust only production roots (tailscale tlsdial).
    assert config.acme_environment == "production"


def test_the_engine_records_reads_and_imports(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Guards the test above: a program that reads or adopts something is caught.
    program = tmp_path / "__main__.py"
    program.write_text(
        "import pulumi\n"
        "import pulumi_random as random\n"
        "pulumi.StackReference('other', stack_name='org/homelab/homelab')\n"
        "random.RandomPet('pet', opts=pulumi.ResourceOptions(import_='pet-1'))\n"
    )
    monkeypatch.setattr(engine, "PROGRAM", program)
    render = engine.render("lab", config={}, secret_keys=[])
    assert [(r.type, r.name) for r in render.reads] == [("pulumi:pulumi:StackReference", "other")]
    assert [(r.name, r.import_id) for r in render.resources if r.import_id] == [("pet", "pet-1")]

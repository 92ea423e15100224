"""Lab environments: stacks of the same program that are safe to create, destroy and recreate.

    python -m homelab lab up NAME        create or update lab NAME (config: Pulumi.NAME.yaml)
    python -m homelab lab preview NAME   what `up` would change
    python -m homelab lab destroy NAME   destroy lab NAME (Talos nodes reset) and remove its stack;
                                         asks to type NAME first (--yes for scripts)
    python -m homelab lab list           every stack and stack file, with its environment (without
                                         the Pulumi CLI: the stack files only)

A lab's config is Pulumi.NAME.yaml; when that file does not exist it is created from the template
Pulumi.lab.yaml. The config loader refuses a lab whose addresses or names collide with the homelab
(config/lab_guard.py). The commands drive the Pulumi CLI through the Automation API
(pulumi/examples testing-integration-py: create_or_select_stack, up, destroy, remove_stack), with
the same state backend and secrets provider as ./scripts/up.

The real homelab is never touched by accident: `lab up homelab` is refused (use ./scripts/up), and
destroying a stack named `homelab`, or one whose config says `environment: homelab`, needs the
explicit `--force-homelab`.

Labs use Let's Encrypt production (Tailscale clients trust no staging certificate), which allows
5 certificates per exact set of names per 7 days. So `destroy` first saves the issued wildcard
Secret (read with `kubectl`, the kubeconfig in a 0600 temp file that is deleted afterwards) as the
secret config value homelab:wildcardCertificate, handed to `pulumi config set --secret` on stdin
(never on a command line, never printed); the next `up` pre-seeds the Secret from it and
cert-manager keeps it instead of ordering another (components/platform/cert_manager.py).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, TextIO, TypeVar

import pulumi.automation as auto
import yaml

from components.platform.cert_manager import (
    CERTIFICATE_TIMEOUT_SECONDS,
    WILDCARD_CERTIFICATE,
    WILDCARD_SECRET,
)
from components.shared.common import CERT_MANAGER_NAMESPACE
from config.lab_guard import check_against_file, load_stack_file
from config.model import SAVED_CERTIFICATE_ANNOTATIONS, SavedCertificate, parse_saved_certificate
from config.rules import Problem
from config.views import solver_description
from homelab import engine

HOMELAB_STACK: Final = "homelab"
TEMPLATE_STACK: Final = "lab"
DNS_TOKEN_KEY: Final = "homelab:dnsApiToken"
DNS_TOKEN_ENV: Final = "HOMELAB_DNS_API_TOKEN"
CERTIFICATE_KEY: Final = "homelab:wildcardCertificate"
KUBECONFIG_OUTPUT: Final = "kubeconfig"
# How the Certificate appears in a failed update's URN (pulumi-kubernetes @ v4.32.0 :
# provider/pkg/provider/provider.go Create: 'resource "<urn>" was successfully created, but ...').
CERTIFICATE_URN_PART: Final = "kubernetes:cert-manager.io/v1:Certificate::"
# A DNS label, so the name is also safe in file names and stack references.
_STACK_NAME: Final = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
MISSING_CLI: Final = (
    "the Pulumi CLI is not installed or not on PATH; the lab commands run it through the "
    "Automation API. Install it: https://www.pulumi.com/docs/install/"
)

T = TypeVar("T")


class LabError(Exception):
    """A refusal or a missing prerequisite: printed as one line, exit code 2."""


class LabOperationError(Exception):
    """The Pulumi operation itself failed (its output was streamed): one line, exit code 1.

    `details` is the whole CLI result, to recognise what failed; it is never printed.
    """

    def __init__(self, line: str, details: str = "") -> None:
        super().__init__(line)
        self.details = details


@dataclass(frozen=True)
class Lab:
    """Where the commands run: the project root, the environment, and where progress goes."""

    root: Path = engine.PROJECT_ROOT
    env: Mapping[str, str] = field(default_factory=lambda: dict(os.environ))
    out: TextIO = field(default_factory=lambda: sys.stdout)
    stdin: TextIO = field(default_factory=lambda: sys.stdin)

    def say(self, line: str) -> None:
        print(line, file=self.out, flush=True)

    def stack_file(self, name: str) -> Path:
        return self.root / f"Pulumi.{name}.yaml"

    def workspace_options(self) -> auto.LocalWorkspaceOptions:
        """The backend and secrets provider ./scripts/up uses, so both see the same stacks."""
        env_vars: dict[str, str] = {}
        if not self.env.get("PULUMI_BACKEND_URL"):
            state_home = self.env.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
            state_dir = Path(state_home) / "homelab-pulumi"
            state_dir.mkdir(parents=True, exist_ok=True)
            env_vars["PULUMI_BACKEND_URL"] = f"file://{state_dir}"
        return auto.LocalWorkspaceOptions(
            work_dir=str(self.root), env_vars=env_vars, secrets_provider="passphrase"
        )


def stack_environment(path: Path) -> str | None:
    """`homelab:lifecycle.environment` of a stack file, or None when it cannot be read."""
    try:
        document = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError):
        return None
    config = document.get("config") if isinstance(document, dict) else None
    lifecycle = config.get("homelab:lifecycle") if isinstance(config, dict) else None
    environment = lifecycle.get("environment") if isinstance(lifecycle, dict) else None
    return environment if isinstance(environment, str) else None


def _check_name(name: str) -> None:
    if not _STACK_NAME.fullmatch(name):
        raise LabError(
            f"lab name {name!r} is not valid: use 1-63 lowercase letters, digits or '-' "
            "(a DNS label), e.g. 'lab' or 'lab-2'"
        )


def _require_cli() -> None:
    if shutil.which("pulumi") is None:
        raise LabError(MISSING_CLI)


def _require_passphrase(lab: Lab) -> None:
    if not (
        lab.env.get("PULUMI_CONFIG_PASSPHRASE") or lab.env.get("PULUMI_CONFIG_PASSPHRASE_FILE")
    ):
        raise LabError(
            "set PULUMI_CONFIG_PASSPHRASE or PULUMI_CONFIG_PASSPHRASE_FILE: the stack secrets use "
            "the passphrase provider and the Automation API cannot prompt for it"
        )


def _last_line(error: Exception) -> str:
    """The last non-empty stderr line of a CommandError (its text is the whole CLI result)."""
    text = str(error)
    _, _, stderr = text.rpartition("stderr:")
    lines = [line.strip() for line in (stderr or text).splitlines() if line.strip()]
    return lines[-1] if lines else "see the Pulumi output above"


def _automation(call: Callable[[], T]) -> T:
    """Run an Automation API call; a missing CLI or a failed command becomes one clear line."""
    try:
        return call()
    except FileNotFoundError:  # the SDK runs `pulumi version` first and cannot find it
        raise LabError(MISSING_CLI) from None
    except auto.CommandError as error:
        raise LabOperationError(_last_line(error), details=str(error)) from None


def _run_command(
    argv: list[str], *, stdin: str | None, env: Mapping[str, str], cwd: Path
) -> subprocess.CompletedProcess[str]:
    """One workstation command, its output captured (never echoed: it may hold a key)."""
    return subprocess.run(
        argv, input=stdin, env=dict(env), cwd=cwd, capture_output=True, text=True, check=False
    )


def _ensure_dns_token(lab: Lab, stack: auto.Stack, name: str) -> None:
    """A new lab needs the DNS token for DNS-01; take it from the environment when missing."""
    if DNS_TOKEN_KEY in _automation(stack.get_all_config):
        return
    token = lab.env.get(DNS_TOKEN_ENV)
    if not token:
        raise LabError(
            f"lab {name!r} has no {DNS_TOKEN_KEY}: export {DNS_TOKEN_ENV}=<token> and rerun "
            f"(it is stored encrypted in Pulumi.{name}.yaml)"
        )
    _automation(lambda: stack.set_config(DNS_TOKEN_KEY, auto.ConfigValue(value=token, secret=True)))
    lab.say(f"Stored {DNS_TOKEN_KEY} (encrypted) from {DNS_TOKEN_ENV}.")


def _last_stderr_line(result: subprocess.CompletedProcess[str]) -> str:
    lines = [line.strip() for line in (result.stderr or "").splitlines() if line.strip()]
    return lines[-1] if lines else f"exit code {result.returncode}"


def saved_certificate_from_secret(secret: Mapping[str, Any]) -> SavedCertificate:
    """What is kept of the issued Secret (`kubectl get secret -o json`): its data as stored and
    the annotations cert-manager checks before reusing it (config/model.py)."""
    data = secret.get("data") or {}
    annotations = (secret.get("metadata") or {}).get("annotations") or {}
    kept = {k: v for k, v in sorted(annotations.items()) if k in SAVED_CERTIFICATE_ANNOTATIONS}
    saved = SavedCertificate(
        tls_crt=str(data.get("tls.crt", "")), tls_key=str(data.get("tls.key", "")), annotations=kept
    )
    # The loader must accept what is stored; a Secret cert-manager has not filled yet fails here.
    return parse_saved_certificate(saved.to_json())


@contextlib.contextmanager
def kubeconfig_file(kubeconfig: str) -> Iterator[str]:
    """The kubeconfig (a secret stack output) in a 0600 temp file, removed on the way out."""
    previous = os.umask(0o077)
    try:
        handle, path = tempfile.mkstemp(prefix="homelab-kubeconfig-")
    finally:
        os.umask(previous)
    try:
        with os.fdopen(handle, "w") as file:
            file.write(kubeconfig)
        yield path
    finally:
        with contextlib.suppress(FileNotFoundError):
            Path(path).unlink()


def read_issued_certificate(lab: Lab, kubeconfig: str) -> SavedCertificate:
    """The issued wildcard Secret, read with kubectl; ValueError says why it could not be."""
    with kubeconfig_file(kubeconfig) as path:
        env = {**lab.env, "KUBECONFIG": path}
        argv = ["kubectl", "-n", CERT_MANAGER_NAMESPACE, "get", "secret", WILDCARD_SECRET]
        result = _run_command([*argv, "-o", "json"], stdin=None, env=env, cwd=lab.root)
    if result.returncode != 0:
        raise ValueError(f"kubectl: {_last_stderr_line(result)}")
    try:
        secret = json.loads(result.stdout)
    except json.JSONDecodeError:
        raise ValueError("kubectl did not print the Secret as JSON") from None
    try:
        return saved_certificate_from_secret(secret)
    except ValueError as error:
        raise ValueError(f"the Secret is not an issued certificate ({error})") from None


def _save_certificate(lab: Lab, stack: auto.Stack, name: str) -> None:
    """Keep the lab's issued certificate in its stack config before the cluster goes.

    Best effort: a lab that cannot be read (never came up, cluster already gone) is destroyed
    anyway, with a line saying the next `up` orders a new certificate.
    """
    consequence = (
        "the next `lab up` orders a new certificate (Let's Encrypt allows 5 a week for these names)"
    )
    try:
        outputs = _automation(stack.outputs)
    except LabOperationError as error:
        lab.say(f"Could not read the stack outputs ({error}): {consequence}.")
        return
    kubeconfig = outputs.get(KUBECONFIG_OUTPUT)
    if kubeconfig is None or not isinstance(kubeconfig.value, str):
        lab.say(f"No kubeconfig output, so no certificate to save: {consequence}.")
        return
    try:
        saved = read_issued_certificate(lab, kubeconfig.value)
    except (OSError, ValueError) as error:
        lab.say(f"Could not read the wildcard certificate ({error}): {consequence}.")
        return
    env = {**lab.env, **(lab.workspace_options().env_vars or {})}
    # The value goes on stdin: `pulumi config set` reads it there when stdin is not a terminal
    # (pulumi/pulumi : pkg/cmd/pulumi/config/config_set.go run), keeping it out of argv.
    result = _run_command(
        ["pulumi", "config", "set", "--secret", CERTIFICATE_KEY, "--stack", name],
        stdin=saved.to_json(),
        env=env,
        cwd=lab.root,
    )
    if result.returncode != 0:
        lab.say(
            f"Could not save the wildcard certificate ({_last_stderr_line(result)}): {consequence}."
        )
        return
    lab.say(
        f"Saved the wildcard certificate as {CERTIFICATE_KEY} (encrypted in Pulumi.{name}.yaml): "
        "the next `lab up` reuses it instead of ordering a new one."
    )


def _has_certificate(stack: auto.Stack) -> bool:
    """Whether the stack's state holds the wildcard Certificate (its cluster has the Secret)."""
    state = _automation(stack.export_stack)
    resources = (state.deployment or {}).get("resources") or []
    return any(CERTIFICATE_URN_PART in str(r.get("urn", "")) for r in resources)


def certificate_failure(lab: Lab, name: str, details: str) -> str | None:
    """A clear line when the update failed at the wildcard Certificate, else None.

    pulumi-kubernetes reports an await timeout as "... failed to fully initialize or become
    live: timed out waiting for the condition" on the Certificate's URN; this names the cause.
    """
    if CERTIFICATE_URN_PART not in details:
        return None
    config = load_stack_file(lab.stack_file(name))
    solver = solver_description(config) if not isinstance(config, Problem) else "DNS-01"
    where = f"{CERT_MANAGER_NAMESPACE}/{WILDCARD_CERTIFICATE}"
    return (
        f"the wildcard Certificate {where} did not become Ready within "
        f"{CERTIFICATE_TIMEOUT_SECONDS} s: cert-manager could not complete {solver} (usually a "
        "DNS token without Zone:DNS:Edit, or a zone that does not hold the domain). See "
        f"`kubectl -n {CERT_MANAGER_NAMESPACE} describe certificate {WILDCARD_CERTIFICATE}` and "
        f"`kubectl -n {CERT_MANAGER_NAMESPACE} describe challenges` (README, Troubleshooting)"
    )


def _op_name(op: Any) -> str:
    """An OpType enum member's value ('create'), or the key as given."""
    return str(getattr(op, "value", op))


def _counts(changes: Mapping[Any, int] | None) -> str:
    if not changes:
        return "no changes"
    ordered = sorted(changes.items(), key=lambda item: _op_name(item[0]))
    return ", ".join(f"{count} {_op_name(op)}" for op, count in ordered)


def _running_stacks(lab: Lab) -> set[str]:
    """Stacks of the backend that currently have resources."""
    workspace = _automation(
        lambda: auto.LocalWorkspace(**_workspace_kwargs(lab.workspace_options()))
    )
    return {
        s.name.rsplit("/", 1)[-1] for s in _automation(workspace.list_stacks) if s.resource_count
    }


def _refuse_collisions_with_running_labs(lab: Lab, name: str, running: set[str]) -> None:
    """Two labs on one LAN must not share addresses or names either (a copy of the template
    would take over the running lab's machines). The homelab is the config loader's job."""
    own = load_stack_file(lab.stack_file(name))
    if isinstance(own, Problem):
        return  # the program itself reports what is wrong with the config
    problems: list[Problem] = []
    for other in sorted(running - {name, HOMELAB_STACK}):
        if lab.stack_file(other).exists():
            problems += check_against_file(own, lab.stack_file(other), f"lab {other!r}")
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise LabError(
            f"Pulumi.{name}.yaml collides with a running lab: {problems[0].line()}{more}; "
            "give this lab its own addresses and names"
        )


def up(lab: Lab, name: str, *, preview_only: bool = False) -> int:
    """Create or update lab `name` (or only preview it), streaming Pulumi's progress."""
    _check_name(name)
    if name == HOMELAB_STACK:
        raise LabError("'homelab' is the real homelab, not a lab: deploy it with ./scripts/up")
    _require_cli()
    _require_passphrase(lab)
    path = lab.stack_file(name)
    if not path.exists():
        template = lab.stack_file(TEMPLATE_STACK)
        if not template.exists():
            raise LabError(f"no {path.name} and no template {template.name} to create it from")
        shutil.copyfile(template, path)
        lab.say(
            f"Created {path.name} from the {template.name} template "
            "(a lab running beside another needs its own addresses and names: edit it)."
        )
    environment = stack_environment(path)
    if environment != "lab":
        raise LabError(
            f"{path.name} says environment {environment!r}; the lab commands only manage stacks "
            "with homelab:lifecycle.environment: lab"
        )
    running = _running_stacks(lab)
    _refuse_collisions_with_running_labs(lab, name, running)
    stack = _automation(
        lambda: auto.create_or_select_stack(
            stack_name=name, work_dir=str(lab.root), opts=lab.workspace_options()
        )
    )
    _ensure_dns_token(lab, stack, name)
    if CERTIFICATE_KEY in _automation(stack.get_all_config):
        if name not in running or not _has_certificate(stack):
            lab.say(
                f"Reusing the wildcard certificate saved in {CERTIFICATE_KEY}: cert-manager "
                "keeps it while it matches the names and is not due for renewal."
            )
        elif not preview_only:
            # The saved copy only seeds a cluster whose Certificate does not exist yet. Once it
            # does (the second `up` after a recreate, or a destroy that failed after saving) the
            # Secret is in the cluster: creating the seed then would fail on the existing object. Dropping the value drops the seed from the
            # state only (retain_on_delete), the Secret stays with cert-manager, and the next
            # destroy saves it again.
            _automation(lambda: stack.remove_config(CERTIFICATE_KEY))
            lab.say(
                f"Lab {name!r} is running, so its certificate is in the cluster: removed the "
                f"saved copy {CERTIFICATE_KEY} (the next `lab destroy` saves it again)."
            )
    if preview_only:
        preview = _automation(lambda: stack.preview(on_output=lab.say, diff=True))
        lab.say(f"Lab {name!r} preview: {_counts(preview.change_summary)}.")
        return 0
    try:
        result = _automation(lambda: stack.up(on_output=lab.say, suppress_outputs=True))
    except LabOperationError as failure:
        if (line := certificate_failure(lab, name, failure.details)) is not None:
            raise LabOperationError(line, details=failure.details) from None
        raise
    lab.say(f"Lab {name!r} is up: {_counts(result.summary.resource_changes)}.")
    return 0


def _confirm_destroy(lab: Lab, name: str, environment: str | None) -> None:
    """Destroying wipes machines (a lab's nodes are reset): the user types the name first."""
    wiped = "its Talos nodes are reset (wiped)" if environment == "lab" else "its resources go"
    print(
        f"Destroy stack {name!r} ({wiped})? Type {name!r} to confirm: ",
        end="",
        file=lab.out,
        flush=True,
    )
    answer = lab.stdin.readline().strip()
    if answer != name:
        raise LabError(
            f"not confirmed (got {answer!r}); nothing was destroyed. "
            "Type the stack name, or pass --yes in scripts"
        )


def destroy(lab: Lab, name: str, *, force_homelab: bool = False, yes: bool = False) -> int:
    """Destroy lab `name` and remove its stack (its Pulumi.NAME.yaml stays for a recreate).

    Asks for the stack name first unless `yes`."""
    _check_name(name)
    path = lab.stack_file(name)
    environment = stack_environment(path) if path.exists() else None
    is_homelab = name == HOMELAB_STACK or environment == HOMELAB_STACK
    if is_homelab and not force_homelab:
        raise LabError(
            f"refusing to destroy {name!r}: it is the real homelab (environment 'homelab'); "
            "pass --force-homelab to destroy it anyway"
        )
    if environment is None and not force_homelab:
        raise LabError(
            f"no readable homelab:lifecycle.environment in {path.name}: cannot tell whether "
            f"{name!r} is a lab, so it is not destroyed"
        )
    _require_cli()
    _require_passphrase(lab)
    if not yes:
        _confirm_destroy(lab, name, environment)
    stack = _automation(
        lambda: auto.select_stack(
            stack_name=name, work_dir=str(lab.root), opts=lab.workspace_options()
        )
    )
    _save_certificate(lab, stack, name)
    result = _automation(lambda: stack.destroy(on_output=lab.say, suppress_outputs=True))
    lab.say(f"Destroyed {name!r}: {_counts(result.summary.resource_changes)}.")
    if is_homelab:
        lab.say(
            f"Kept the {name!r} stack and its history; remove it with `./scripts/pulumi stack rm {name}`."
        )
        return 0
    # preserve_config: Pulumi.NAME.yaml is the lab's definition (and Pulumi.lab.yaml the
    # template); `stack rm` would delete it otherwise.
    _automation(lambda: stack.workspace.remove_stack(name, preserve_config=True))
    lab.say(f"Removed stack {name!r}; `lab up {name}` recreates it from {path.name}.")
    return 0


def list_labs(lab: Lab) -> int:
    """Every stack of the backend and every stack file, with its environment and state.

    Without the Pulumi CLI the backend cannot be asked: the stack files are listed, state unknown.
    """
    deployed: dict[str, auto.StackSummary] | None = None
    try:
        _require_cli()
        workspace = _automation(
            lambda: auto.LocalWorkspace(**_workspace_kwargs(lab.workspace_options()))
        )
        deployed = {s.name.rsplit("/", 1)[-1]: s for s in _automation(workspace.list_stacks)}
    except LabError:
        pass
    files = {
        p.name.removeprefix("Pulumi.").removesuffix(".yaml") for p in lab.root.glob("Pulumi.*.yaml")
    }
    rows = [("NAME", "ENVIRONMENT", "STATE", "RESOURCES")]
    for name in sorted(files | set(deployed or {})):
        summary = (deployed or {}).get(name)
        environment = stack_environment(lab.stack_file(name)) if name in files else None
        state = (
            "unknown" if deployed is None else "deployed" if summary is not None else "not created"
        )
        count = summary.resource_count if summary is not None else None
        rows.append((name, environment or "?", state, "" if count is None else str(count)))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        lab.say(
            "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        )
    if deployed is None:
        lab.say("(state unknown: the Pulumi CLI is not on PATH; install it to see deployed stacks)")
    return 0


def _workspace_kwargs(options: auto.LocalWorkspaceOptions) -> dict[str, Any]:
    return {
        "work_dir": options.work_dir,
        "env_vars": options.env_vars,
        "secrets_provider": options.secrets_provider,
    }

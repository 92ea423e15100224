"""Key minting: the Command resources, and the script's behaviour against a fake kubectl."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from components import keys
from config.loader import validate_config
from tests.components.remote_access import (
    COMMAND,
    DEPLOYMENT,
    HEADSCALE,
    ROUTER,
    child,
    children_of_type,
    looks_secret,
    plaintext_secrets,
    under,
)
from tests.harness import homelab_render, stack_raw_config

TARGET = keys.HeadscaleTarget("headscale", "deployment/headscale", "headscale")
ROUTER_KEY = keys.KeyRequest(
    kind="preauthkey", expiration="365d", user="admin", tags=("tag:k8s-router",), reusable=True
)
API_KEY = keys.KeyRequest(kind="apikey", expiration="90d")
KUBECONFIG = "apiVersion: v1\nkind: Config\nusers: [{name: a, user: {token: SENTINEL-kube}}]\n"

# A stand-in for kubectl: logs each call (argv, and what it saw of KUBECONFIG) and answers like
# the Headscale 0.28 CLI would, driven by a JSON state file.
FAKE_KUBECTL = r"""
import json, os, stat, sys
state_path = os.environ["FAKE_STATE"]
state = json.load(open(state_path))
args = sys.argv[1:]
kubeconfig = os.environ.get("KUBECONFIG", "")
mode = stat.S_IMODE(os.stat(kubeconfig).st_mode) if os.path.exists(kubeconfig) else None
seen = {"argv": args, "kubeconfig_mode": mode,
        "kubeconfig": open(kubeconfig).read() if mode is not None else None,
        "inherited": sorted(k for k in os.environ if k.startswith(("HOMELAB_", "PULUMI_")))}
with open(os.environ["FAKE_LOG"], "a") as log:
    log.write(json.dumps(seen) + "\n")
verb = args[2]
if verb == "rollout":
    sys.exit(state.get("rollout_rc", 0))
hs = args[args.index("--") + 2:] if "--" in args else []
if hs[:2] == ["users", "list"]:
    if state.get("cli_down"):
        sys.stderr.write("dial unix /var/run/headscale/headscale.sock: connect: no such file\n")
        sys.exit(1)
    print(json.dumps(state["users"]))
elif hs[:2] == ["users", "create"]:
    state["users"] = (state["users"] or []) + [{"id": 7, "name": hs[2]}]
    json.dump(state, open(state_path, "w"))
    print("User created")
elif hs[:2] in (["preauthkeys", "create"], ["apikeys", "create"]):
    print(state["key"])
"""


def run_script(
    tmp_path: Path,
    script: str,
    *,
    users: list[dict[str, Any]] | None = None,
    key: str = "hskey-auth-abcdefabcdef-SECRETPART",
    previous: str | None = None,
    **state: Any,
) -> tuple[subprocess.CompletedProcess[str], list[dict[str, Any]]]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    kubectl = bin_dir / "kubectl"
    kubectl.write_text(f"#!{sys.executable}\n{FAKE_KUBECTL}")
    kubectl.chmod(0o755)
    state_file = tmp_path / "state.json"
    state_file.write_text(json.dumps({"users": users, "key": key, **state}))
    log = tmp_path / "calls.jsonl"
    env = {
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        "FAKE_STATE": str(state_file),
        "FAKE_LOG": str(log),
        "TMPDIR": str(tmp_path),
        keys.KUBECONFIG_ENV: KUBECONFIG,
    }
    if previous is not None:
        env["PULUMI_COMMAND_STDOUT"] = previous
    result = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=60
    )
    calls = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
    return result, calls


def headscale_calls(calls: list[dict[str, Any]]) -> list[list[str]]:
    """The headscale CLI arguments of each `kubectl exec ... -- headscale <args>` call."""
    return [c["argv"][c["argv"].index("--") + 2 :] for c in calls if "--" in c["argv"]]


def quick(request: keys.KeyRequest) -> str:
    return keys.mint_script(request, TARGET, attempts=2, retry_delay_seconds=0)


# --- the script -------------------------------------------------------------------------------


def test_router_key_creates_the_missing_owner_then_a_tagged_reusable_key(tmp_path: Path) -> None:
    result, calls = run_script(tmp_path, quick(ROUTER_KEY), users=None)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "hskey-auth-abcdefabcdef-SECRETPART"
    commands = headscale_calls(calls)
    assert ["users", "create", "admin"] in commands
    (create,) = [c for c in commands if c[:2] == ["preauthkeys", "create"]]
    # Headscale 0.28 wants the numeric user ID, read back from `users list -o json`.
    assert create[create.index("--user") + 1] == "7"
    assert create[create.index("--tags") + 1] == "tag:k8s-router"
    assert create[create.index("--expiration") + 1] == "365d"
    assert "--reusable" in create


def test_an_existing_owner_is_reused_not_recreated(tmp_path: Path) -> None:
    users = [{"id": 3, "name": "someone"}, {"id": 4, "name": "admin"}]
    result, calls = run_script(tmp_path, quick(ROUTER_KEY), users=users)
    assert result.returncode == 0, result.stderr
    commands = headscale_calls(calls)
    assert not [c for c in commands if c[:2] == ["users", "create"]]
    (create,) = [c for c in commands if c[:2] == ["preauthkeys", "create"]]
    assert create[create.index("--user") + 1] == "4"


def test_an_update_re_emits_the_key_minted_before_without_touching_the_cluster(
    tmp_path: Path,
) -> None:
    previous = "hskey-auth-000000000000-PREVIOUS"
    result, calls = run_script(tmp_path, quick(ROUTER_KEY), users=[], previous=previous)
    assert result.returncode == 0, result.stderr
    assert result.stdout == previous
    assert calls == []


def test_it_waits_for_the_rollout_and_uses_the_workload_in_the_namespace(tmp_path: Path) -> None:
    _, calls = run_script(tmp_path, quick(API_KEY), users=[], key="hskey-api-abcdefabcdef-X")
    first = calls[0]["argv"]
    assert first[:4] == ["--namespace", "headscale", "rollout", "status"]
    assert "deployment/headscale" in first
    assert any(a.startswith("--timeout=") for a in first)
    for call in calls[1:]:
        argv = call["argv"]
        assert argv[:6] == [
            "--namespace",
            "headscale",
            "exec",
            "deployment/headscale",
            "--container",
            "headscale",
        ]


def test_the_kubeconfig_is_a_private_temp_file_that_is_removed(tmp_path: Path) -> None:
    result, calls = run_script(tmp_path, quick(ROUTER_KEY), users=[])
    assert result.returncode == 0, result.stderr
    assert {c["kubeconfig_mode"] for c in calls} == {0o600}
    assert {c["kubeconfig"] for c in calls} == {KUBECONFIG}
    # ...never handed on in the environment, and gone afterwards.
    assert {tuple(c["inherited"]) for c in calls} == {()}
    assert not list(tmp_path.glob("homelab-kubeconfig-*"))
    assert "SENTINEL" not in result.stdout + result.stderr


def test_api_key_needs_no_user(tmp_path: Path) -> None:
    result, calls = run_script(tmp_path, quick(API_KEY), users=[], key="hskey-api-abcdefabcdef-S")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "hskey-api-abcdefabcdef-S"
    commands = headscale_calls(calls)
    assert ["apikeys", "create", "--expiration", "90d"] in commands
    assert not [c for c in commands if c[:2] == ["users", "create"]]


def test_a_silent_cli_fails_after_the_bounded_attempts(tmp_path: Path) -> None:
    result, calls = run_script(tmp_path, quick(ROUTER_KEY), users=[], cli_down=True)
    assert result.returncode != 0
    assert len(headscale_calls(calls)) == 2
    assert result.stdout == ""
    assert "did not answer" in result.stderr


def test_a_failed_rollout_stops_before_any_exec(tmp_path: Path) -> None:
    result, calls = run_script(tmp_path, quick(ROUTER_KEY), users=[], rollout_rc=1)
    assert result.returncode != 0
    assert headscale_calls(calls) == []


def test_unexpected_output_is_refused_and_not_echoed(tmp_path: Path) -> None:
    result, _ = run_script(tmp_path, quick(ROUTER_KEY), users=[], key="SENTINEL-not a key")
    assert result.returncode != 0
    assert result.stdout == ""
    assert "SENTINEL" not in result.stderr


def test_script_is_deterministic_and_its_parameters_are_sorted() -> None:
    first = keys.mint_script(ROUTER_KEY, TARGET)
    assert first == keys.mint_script(ROUTER_KEY, TARGET)
    params = ast.literal_eval(first.splitlines()[0].removeprefix("PARAMS = "))
    assert list(params) == sorted(params)
    assert params["kind"] == "preauthkey"
    assert params["tags"] == ["tag:k8s-router"]


def test_requests_are_checked() -> None:
    with pytest.raises(ValueError, match="user"):
        keys.KeyRequest(kind="preauthkey", expiration="1h")
    with pytest.raises(ValueError, match="API key"):
        keys.KeyRequest(kind="apikey", expiration="1h", tags=("tag:x",))


# --- the Command resources --------------------------------------------------------------------


def test_commands_depend_on_the_deployment_and_take_the_kubeconfig_as_a_secret() -> None:
    render = homelab_render()
    deployment = child(render, HEADSCALE, DEPLOYMENT, "headscale-deployment")
    commands = children_of_type(render, HEADSCALE, COMMAND)
    assert {c.name for c in commands} == {"headscale-router-key", "headscale-headplane-api-key"}
    for command in commands:
        assert deployment.urn in command.dependencies
        assert command.is_secret(f"environment.{keys.KUBECONFIG_ENV}")
        # The cluster's own kubeconfig (the stack exports the same value, as a secret).
        assert command.input(f"environment.{keys.KUBECONFIG_ENV}") == render.outputs["kubeconfig"]
        assert command.input("interpreter") == list(keys.INTERPRETER)
        assert command.input("logging") == "stderr", "the key must not reach the logs"
        assert command.additional_secret_outputs == ("stdout",)
        assert command.input("update") == command.input("create")


def test_the_router_key_carries_the_router_tag_from_config() -> None:
    config = validate_config(stack_raw_config())
    command = child(homelab_render(), HEADSCALE, COMMAND, "headscale-router-key")
    script = command.input("create")
    assert repr(config.remote_access.router.tag) in script
    assert "'reusable': False" in script, "single-use: the router logs in once"
    assert f"'user': {config.remote_access.admin_user!r}" in script


def test_no_key_token_or_secret_appears_in_plaintext() -> None:
    render = homelab_render()
    records = under(render, HEADSCALE) + under(render, ROUTER)
    assert records
    leaks = {r.name: plaintext_secrets(r) for r in records if plaintext_secrets(r)}
    assert leaks == {}
    for name, value in render.outputs.items():
        if looks_secret(json.dumps(value)):
            assert render.output_is_secret(name), name


def test_a_leak_would_be_caught() -> None:
    # Guards the test above: the fakes it looks for do reach the stack, only as secrets.
    render = homelab_render()
    command = child(render, HEADSCALE, COMMAND, "headscale-router-key")
    assert looks_secret(command.outputs["stdout"])
    assert looks_secret(render.outputs["headplaneApiKey"])

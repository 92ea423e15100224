"""Key minting: the Command resources, and the script's behaviour against a fake kubectl."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from components.remote_access import keys
from config.loader import validate_config
from programs import headscale_key
from programs.build import INTERPRETER, PROGRAM_ENV, name_of, parameters
from tests.components.remote_access.remote_access import (
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
    kind="preauthkey", expiration="1h", user="admin", tags=("tag:k8s-router",)
)
API_KEY = keys.KeyRequest(kind="apikey", expiration="90d")
ROUTER_HOLDER = keys.HeldKey("tailscale", "router-key", "authkey", ("tailscale", "router-state"))
API_HOLDER = keys.HeldKey("headscale", "api-key", "api_key")
KUBECONFIG = "apiVersion: v1\nkind: Config\nusers: [{name: a, user: {token: SENTINEL-kube}}]\n"
# The scripts compare expiries with the real clock, so the fake lists times relative to it.
NOW = int(time.time())
DAY = 86400

# A stand-in for kubectl: logs each call (argv, and what it saw of KUBECONFIG) and answers like
# kubectl and the Headscale 0.28 CLI would, driven by a JSON state file. `list -o json` prints
# what juanfont/headscale@v0.28.0:cmd/headscale/cli/utils.go `output` makes of the response:
# encoding/json.MarshalIndent (tab indent) of []*v1.PreAuthKey / []*v1.ApiKey
# (gen/go/headscale/v1/preauthkey.pb.go, apikey.pb.go: json tags `id`, `key`/`prefix`, `used`,
# `expiration`, `acl_tags`, all omitempty), the key masked as `hskey-auth-<12>-***`
# (hscontrol/types/preauth_key.go, api_key.go Proto) and each timestamppb.Timestamp as
# {"seconds": N} (nanos omitted when 0).
FAKE_KUBECTL = r"""
import base64, json, os, stat, sys, time
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
namespace, verb = args[1], args[2]
def save():
    json.dump(state, open(state_path, "w"))
def listed(key):
    prefix = "hskey-auth-" if key.startswith("hskey-auth-") else "hskey-api-"
    return key[: len(prefix) + 12] + "-***"
if verb == "rollout":
    sys.exit(state.get("rollout_rc", 0))
if verb == "get":
    secret = state.get("secrets", {}).get(namespace + "/" + args[4])
    if secret is None:
        sys.stderr.write('Error from server (NotFound): secrets "' + args[4] + '" not found\n')
        sys.exit(1)
    data = {k: base64.b64encode(v.encode()).decode() for k, v in secret["data"].items()}
    print(json.dumps({"metadata": {"annotations": secret.get("annotations", {})}, "data": data}))
    sys.exit(0)
hs = args[args.index("--") + 2:] if "--" in args else []
if state.get("cli_down") and hs:
    sys.stderr.write("dial unix /var/run/headscale/headscale.sock: connect: no such file\n")
    sys.exit(1)
kind = "apikeys" if hs[:1] == ["apikeys"] else "preauthkeys"
keys = state.setdefault(kind, [])
if hs[:2] == ["users", "list"]:
    print(json.dumps(state["users"], indent="\t"))
elif hs[:2] == ["users", "create"]:
    state["users"] = (state["users"] or []) + [{"id": 7, "name": hs[2]}]
    save()
    print("User created")
elif hs[1:2] == ["create"]:
    entry = {"id": len(keys) + 1, "expiration": {"seconds": state["now"] + 3600},
             "created_at": {"seconds": state["now"]}}
    entry["key" if kind == "preauthkeys" else "prefix"] = listed(state["key"])
    keys.append(entry)
    save()
    print(state["key"])
elif hs[1:2] == ["list"]:
    print(json.dumps(keys, indent="\t"))
elif hs[1:2] == ["expire"]:
    state.setdefault("expired", []).append([kind, hs[hs.index("--id") + 1]])
    save()
    print("Key expired")
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
    state_file.write_text(json.dumps({"users": users, "key": key, "now": NOW, **state}))
    log = tmp_path / "calls.jsonl"
    log.unlink(missing_ok=True)
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


def fake_state(tmp_path: Path) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((tmp_path / "state.json").read_text())
    return loaded


def headscale_calls(calls: list[dict[str, Any]]) -> list[list[str]]:
    """The headscale CLI arguments of each `kubectl exec ... -- headscale <args>` call."""
    return [c["argv"][c["argv"].index("--") + 2 :] for c in calls if "--" in c["argv"]]


def quick(request: keys.KeyRequest) -> str:
    return keys.mint_script(request, TARGET, attempts=2, retry_delay_seconds=0)


def quick_expire(request: keys.KeyRequest) -> str:
    return keys.expire_script(request, TARGET, attempts=2, retry_delay_seconds=0)


def quick_check(request: keys.KeyRequest, held: keys.HeldKey) -> str:
    return keys.check_script(request, TARGET, held, attempts=2, retry_delay_seconds=0)


def expiry(seconds: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))


# --- the script -------------------------------------------------------------------------------


def test_router_key_creates_the_missing_owner_then_a_tagged_single_use_key(tmp_path: Path) -> None:
    """juanfont/headscale@v0.28.0:cmd/headscale/cli/preauthkeys.go create: `--user` is a
    Uint64 ID, `--reusable` defaults to false, `--expiration` a duration, `--tags` a slice."""
    result, calls = run_script(tmp_path, quick(ROUTER_KEY), users=None)
    assert result.returncode == 0, result.stderr
    # The key, then the expiry Headscale lists for it (`expiration.seconds`).
    assert result.stdout == f"hskey-auth-abcdefabcdef-SECRETPART\n{expiry(NOW + 3600)}"
    commands = headscale_calls(calls)
    assert ["users", "create", "admin"] in commands
    (create,) = [c for c in commands if c[:2] == ["preauthkeys", "create"]]
    # Headscale 0.28 wants the numeric user ID, read back from `users list -o json`.
    assert create[create.index("--user") + 1] == "7"
    assert create[create.index("--tags") + 1] == "tag:k8s-router"
    assert create[create.index("--expiration") + 1] == "1h"
    assert "--reusable" not in create


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
    previous = f"hskey-auth-000000000000-PREVIOUS\n{expiry(NOW)}"
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
    assert result.stdout.splitlines() == ["hskey-api-abcdefabcdef-S", expiry(NOW + 3600)]
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
    params = parameters(first)
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
        assert command.input("interpreter") == list(INTERPRETER)
        assert command.input("logging") == "stderr", "the key must not reach the logs"
        assert command.additional_secret_outputs == ("stdout",)
        assert command.input("update") == command.input("create")


def test_the_router_key_carries_the_router_tag_from_config() -> None:
    config = validate_config(stack_raw_config())
    command = child(homelab_render(), HEADSCALE, COMMAND, "headscale-router-key")
    params = parameters(command.input("create"))
    assert params["tags"] == [config.remote_access.router.tag]
    assert params["reusable"] is False, "single-use: the router logs in once"
    assert params["user"] == config.remote_access.admin_user


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


# --- expiring a replaced key ------------------------------------------------------------------


def listed_key(key_id: int, key: str, *, expires: int, used: bool = False) -> dict[str, Any]:
    """One entry of `preauthkeys list -o json` as Headscale 0.28 prints it (see FAKE_KUBECTL)."""
    entry: dict[str, Any] = {
        "id": key_id,
        "key": key[: len("hskey-auth-") + 12] + "-***",
        "expiration": {"seconds": expires},
        "acl_tags": ["tag:k8s-router"],
    }
    if used:
        entry["used"] = True
    return entry


ROUTER_SECRET = "hskey-auth-abcdefabcdef-SECRETPART"


def test_a_replaced_or_destroyed_key_is_expired_by_its_id(tmp_path: Path) -> None:
    """juanfont/headscale@v0.28.0:cmd/headscale/cli/preauthkeys.go expire takes only `--id`
    (Uint64; 0 is refused), found by the key's listed form in `preauthkeys list -o json`."""
    listed = [
        listed_key(3, "hskey-auth-zzzzzzzzzzzz-OTHER", expires=NOW + DAY),
        listed_key(4, ROUTER_SECRET, expires=NOW + DAY, used=True),
    ]
    previous = f"{ROUTER_SECRET}\n{expiry(NOW)}"
    result, calls = run_script(
        tmp_path, quick_expire(ROUTER_KEY), previous=previous, preauthkeys=listed
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == ""
    assert ["preauthkeys", "expire", "--id", "4"] in headscale_calls(calls)
    assert fake_state(tmp_path)["expired"] == [["preauthkeys", "4"]]


def test_an_api_key_is_expired_by_its_id_too(tmp_path: Path) -> None:
    """juanfont/headscale@v0.28.0:cmd/headscale/cli/api_key.go expire: `--id` or `--prefix`."""
    key = "hskey-api-abcdefabcdef-SECRET"
    listed = [{"id": 9, "prefix": "hskey-api-abcdefabcdef-***", "expiration": {"seconds": NOW}}]
    result, calls = run_script(
        tmp_path, quick_expire(API_KEY), previous=f"{key}\n{expiry(NOW)}", apikeys=listed
    )
    assert result.returncode == 0, result.stderr
    assert ["apikeys", "expire", "--id", "9"] in headscale_calls(calls)


def test_expiring_is_best_effort_when_headscale_is_gone(tmp_path: Path) -> None:
    previous = f"{ROUTER_SECRET}\n{expiry(NOW)}"
    result, calls = run_script(tmp_path, quick_expire(ROUTER_KEY), previous=previous, rollout_rc=1)
    assert result.returncode == 0, result.stderr
    assert "dies with it" in result.stderr
    assert headscale_calls(calls) == []


def test_a_key_unknown_to_headscale_needs_no_expiring(tmp_path: Path) -> None:
    previous = f"{ROUTER_SECRET}\n{expiry(NOW)}"
    result, calls = run_script(tmp_path, quick_expire(ROUTER_KEY), previous=previous)
    assert result.returncode == 0, result.stderr
    assert not [c for c in headscale_calls(calls) if "expire" in c]


# --- the renewal check ------------------------------------------------------------------------


def held_secret(key: str, generation: str = "initial") -> dict[str, Any]:
    return {
        "data": {"authkey": key, "api_key": key},
        "annotations": {keys.GENERATION_ANNOTATION: generation},
    }


LOGGED_IN = {"data": {"_current-profile": "profile-1a2b", "profile-1a2b": "{}"}}


def check(tmp_path: Path, request: keys.KeyRequest, holder: keys.HeldKey, **state: Any) -> str:
    result, _ = run_script(tmp_path, quick_check(request, holder), **state)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_no_held_key_yet_is_the_initial_generation(tmp_path: Path) -> None:
    assert check(tmp_path, API_KEY, API_HOLDER, secrets={}) == keys.INITIAL_GENERATION


def test_a_valid_key_repeats_its_generation_so_a_second_up_shows_no_diff(tmp_path: Path) -> None:
    key = "hskey-api-abcdefabcdef-SECRET"
    state = {
        "secrets": {"headscale/api-key": held_secret(key, "renew-0123")},
        "apikeys": [
            {
                "id": 2,
                "prefix": "hskey-api-abcdefabcdef-***",
                "expiration": {"seconds": NOW + 80 * DAY},
            }
        ],
    }
    first = check(tmp_path, API_KEY, API_HOLDER, **state)
    assert first == "renew-0123"
    assert check(tmp_path, API_KEY, API_HOLDER, **state) == first


def test_an_api_key_near_expiry_or_unknown_to_headscale_is_renewed(tmp_path: Path) -> None:
    key = "hskey-api-abcdefabcdef-SECRET"
    secrets = {"headscale/api-key": held_secret(key)}
    near = [{"id": 2, "prefix": "hskey-api-abcdefabcdef-***", "expiration": {"seconds": NOW + DAY}}]
    renewed = check(tmp_path, API_KEY, API_HOLDER, secrets=secrets, apikeys=near)
    assert renewed.startswith("renew-")
    # Headscale's database was lost: the key is listed no more.
    assert check(tmp_path, API_KEY, API_HOLDER, secrets=secrets, apikeys=[]) == renewed
    # ...and renewing again later gives the same generation for the same key: deterministic.
    assert check(tmp_path, API_KEY, API_HOLDER, secrets=secrets, apikeys=[]) == renewed


def test_a_used_router_key_is_renewed_only_while_the_router_must_log_in(tmp_path: Path) -> None:
    """A single-use key is `used` after the first login (listed with "used": true); the router
    needs another only when its state Secret has no profile: containerboot then runs `tailscale
    up` again (tailscale/tailscale@v1.102.3:cmd/containerboot/main.go, NeedsLogin)."""
    used = [listed_key(5, ROUTER_SECRET, expires=NOW - DAY, used=True)]
    secrets = {"tailscale/router-key": held_secret(ROUTER_SECRET, "initial")}
    logged_in = {**secrets, "tailscale/router-state": LOGGED_IN}
    assert check(tmp_path, ROUTER_KEY, ROUTER_HOLDER, secrets=logged_in, preauthkeys=used) == (
        "initial"
    )
    lost_state = check(tmp_path, ROUTER_KEY, ROUTER_HOLDER, secrets=secrets, preauthkeys=used)
    assert lost_state.startswith("renew-")
    unused = [listed_key(5, ROUTER_SECRET, expires=NOW + 3 * 3600)]
    assert check(tmp_path, ROUTER_KEY, ROUTER_HOLDER, secrets=secrets, preauthkeys=unused) == (
        "initial"
    )


def test_a_check_that_cannot_reach_headscale_keeps_the_key(tmp_path: Path) -> None:
    secrets = {"headscale/api-key": held_secret("hskey-api-abcdefabcdef-S", "renew-77")}
    assert check(tmp_path, API_KEY, API_HOLDER, secrets=secrets, rollout_rc=1) == "renew-77"


# --- renewal wiring ---------------------------------------------------------------------------


def test_each_key_is_replaced_exactly_when_its_check_reports_a_new_generation() -> None:
    render = homelab_render()
    checks = [i for i in render.invokes if i.token == "command:local:run"]
    checked = [parameters(i.args["command"]) for i in checks]
    for command in children_of_type(render, HEADSCALE, COMMAND):
        assert command.input(f"environment.{PROGRAM_ENV}") == name_of(headscale_key)
        params = parameters(command.input("create"))
        assert params["mode"] == "mint"
        delete = parameters(command.input("delete"))
        assert delete["mode"] == "expire"
        assert delete["kind"] == params["kind"]
        # The one trigger: the generation the fake check printed (no key held yet).
        assert command.input("triggers") == [keys.INITIAL_GENERATION]
        (check,) = [c for c in checked if c["kind"] == params["kind"]]
        assert check["mode"] == "check"
    for invoke in checks:
        assert keys.KUBECONFIG_ENV in invoke.args["environment"]
        assert invoke.args["environment"][PROGRAM_ENV] == name_of(headscale_key)


def test_the_held_keys_record_their_generation_where_the_check_reads_it() -> None:
    render = homelab_render()
    holders = {
        "headscale-headplane-api-key-secret": (HEADSCALE, "headplane-api-key", "api_key"),
        "subnet-router-authkey": (ROUTER, "subnet-router-authkey", "authkey"),
    }
    checks = [
        parameters(i.args["command"]) for i in render.invokes if i.token == "command:local:run"
    ]
    for resource_name, (component, secret_name, item) in holders.items():
        secret = child(render, component, "kubernetes:core/v1:Secret", resource_name)
        assert secret.input("metadata.name") == secret_name
        assert secret.input("metadata.annotations")[keys.GENERATION_ANNOTATION] == "initial"
        assert secret.is_secret(f"stringData.{item}")
        assert any(c["held_secret"] == secret_name and c["held_item"] == item for c in checks)


def test_each_keys_expiry_is_a_plain_stack_output() -> None:
    render = homelab_render()
    for name in ("routerAuthKeyExpiry", "headplaneApiKeyExpiry"):
        assert not render.output_is_secret(name), name
        # The fake Command reports a fixed expiry on the key's second line.
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", render.outputs[name]), name
    assert render.output_is_secret("headplaneApiKey")
    assert not render.outputs["headplaneApiKey"].count("\n")
